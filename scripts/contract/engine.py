"""Snapshot and clean-up of what one contract run leaves in an engine.

The contract run shares the engines with other test suites running at the same time, so it
removes only what it can prove is its own: containers carrying its run label, image references
in its own repository namespace or recorded by the hooks as created by a successful request, and
image ids that did not exist before the run. Talks to the engine's Docker-compatible API over
its unix socket.

    engine.py snapshot ENGINE FILE          image ids and references before the run
    engine.py cleanup ENGINE RUN SNAPSHOT RECORD
"""

import http.client
import json
import socket
import sys
import urllib.parse

SOCKETS = {"docker": "/var/run/docker.sock", "podman": "/run/podman/podman.sock"}
RUN_LABEL = "ociman.contract"


def namespace(run):
    """The repository prefix the hooks rewrite every image reference a request creates into."""
    return f"localhost/ociman-contract-{run}"


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(self.socket_path)


def call(engine, method, path, query=None):
    connection = UnixConnection(SOCKETS[engine])
    if query:
        path += "?" + urllib.parse.urlencode(query)
    connection.request(method, path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, (json.loads(body) if body and body[:1] in b"[{" else body)


def images(engine):
    status, listed = call(engine, "GET", "/images/json", {"all": "true"})
    if status != 200:
        raise SystemExit(f"listing {engine} images: HTTP {status}: {listed}")
    return {image["Id"]: [tag for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"] for image in listed}


def run_children(engine, parents, before_ids):
    """Untagged images, new since the run began, whose parent is one of `parents`."""
    status, listed = call(engine, "GET", "/images/json", {"all": "true"})
    if status != 200:
        return []
    return sorted(image["Id"] for image in listed
                  if image.get("ParentId") in parents and image["Id"] not in before_ids
                  and not [tag for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"])


def canonical(reference):
    """`x`, `x:latest`, `docker.io/library/x:latest` and `localhost/x:latest` name the same local image."""
    name, _, digest = reference.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        name += ":latest"
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/", "localhost/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return name + ("@" + digest if digest else "")


def snapshot(engine, path):
    listed = images(engine)
    references = sorted({canonical(tag) for tags in listed.values() for tag in tags})
    with open(path, "w") as file:
        json.dump({"ids": sorted(listed), "references": references}, file)


def read_record(path):
    entries = []
    try:
        with open(path) as file:
            entries = [json.loads(line) for line in file if line.strip()]
    except FileNotFoundError:
        pass
    return entries


def cleanup(engine, run, snapshot_path, record_path):
    with open(snapshot_path) as file:
        before = json.load(file)
    before_ids, before_refs = set(before["ids"]), set(before["references"])
    record = read_record(record_path)
    removed = {"containers": 0, "references": 0, "images": 0}
    problems = []

    # Containers: every one the run created carries its label (the hooks add it to each run
    # request); ids answered by successful runs are removed too, in case one lacks it.
    status, listed = call(engine, "GET", "/containers/json",
                          {"all": "true", "filters": json.dumps({"label": [f"{RUN_LABEL}={run}"]})})
    ids = {container["Id"] for container in listed} if status == 200 else set()
    recorded = {entry["id"] for entry in record if entry["kind"] == "container"}
    for container in sorted(recorded - ids):
        status, inspected = call(engine, "GET", f"/containers/{container}/json")
        if status == 200:
            labels = inspected.get("Config", {}).get("Labels") or {}
            problems.append(f"container {container[:12]} created without the run label (labels {labels})")
            ids.add(container)
    for container in sorted(ids):
        status, body = call(engine, "DELETE", f"/containers/{container}", {"force": "true", "v": "true"})
        if status in (200, 204):
            removed["containers"] += 1
        elif status != 404:
            problems.append(f"cannot remove container {container[:12]}: HTTP {status} {body}")

    # Image references: the run's namespace, and any recorded reference that is new.
    current = images(engine)
    prefix = namespace(run)
    references = {tag for tags in current.values() for tag in tags if tag.startswith(prefix)}
    for entry in record:
        if entry["kind"] == "reference" and canonical(entry["reference"]) not in before_refs:
            for tags in current.values():
                references.update(tag for tag in tags if canonical(tag) == canonical(entry["reference"]))
    for reference in sorted(references):
        status, body = call(engine, "DELETE", "/images/" + urllib.parse.quote(reference, safe=""))
        if status == 200:
            removed["references"] += 1
        elif status != 404:
            problems.append(f"cannot remove image reference {reference}: HTTP {status} {body}")

    # Image ids the run produced (untagged builds, commits): only ones that did not exist before.
    new_ids = {entry["id"] for entry in record if entry["kind"] == "image"} - before_ids
    current = images(engine)
    pending = []
    for image in sorted(new_ids & set(current)):
        if current[image]:
            problems.append(f"image {image[:19]} created by the run still has references {current[image]}; left")
        else:
            pending.append(image)
    # An image the run built or committed on top of another of its images must go first: the
    # engine refuses to remove a parent (409, dependent child images), so retry those in rounds,
    # each led by the untagged children the run left (a build's layers are not recorded).
    for _ in range(10):
        if not pending:
            break
        refused = []
        for image in pending:
            status, body = call(engine, "DELETE", f"/images/{image}")
            if status == 200:
                removed["images"] += 1
            elif status == 409 and "child" in json.dumps(body):
                refused.append((image, status, body))
            elif status != 404:
                problems.append(f"cannot remove image {image[:19]}: HTTP {status} {body}")
        children = run_children(engine, {image for image, _, _ in refused}, before_ids)
        if len(refused) == len(pending) and not children:
            problems += [f"cannot remove image {image[:19]}: HTTP {status} {body}" for image, status, body in refused]
            break
        pending = children + [image for image, _, _ in refused]
    else:
        problems += [f"cannot remove image {image[:19]}: still a parent after 10 rounds" for image in pending]

    # References that existed before and are gone: other suites remove their own images, so this
    # only informs; the hooks keep the run away from every reference outside its namespace.
    after_refs = {canonical(tag) for tags in images(engine).values() for tag in tags}
    gone = sorted(before_refs - after_refs)
    if gone:
        print(f"contract: {engine}: references gone since the run started (by any suite): {', '.join(gone[:10])}")

    # The base image every suite shares must have survived the run.
    if call(engine, "GET", "/images/localhost%2Fbusybox:test/json")[0] != 200:
        problems.append("localhost/busybox:test is gone (run scripts/setup-engines.sh); the run must never touch it")

    print(f"contract: {engine} clean-up removed {removed['containers']} containers, "
          f"{removed['references']} image references, {removed['images']} untagged images")
    for problem in problems:
        print(f"contract: {engine} clean-up: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    command, engine, *rest = sys.argv[1:]
    if command == "snapshot":
        snapshot(engine, *rest)
    elif command == "cleanup":
        sys.exit(cleanup(engine, *rest))
    else:
        raise SystemExit(f"unknown command {command}")
