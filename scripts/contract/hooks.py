"""Schemathesis hooks for the contract run (scripts/contract-test.sh).

The engines are shared with other suites running at the same time, so every request is made
safe before it is sent (`before_call` sees each case of every phase):

- container ids and image references in paths that could name something real are replaced by
  the run's own fixture (or a name that exists nowhere), unless the run itself created them (its
  containers, references in its namespace; never image ids); values that cannot name anything
  (other characters, judged after percent-decoding) go through unchanged, to test rejection;
- references a request would create (tag target, commit, build tag/name, pull, push) are moved
  into the run's namespace `localhost/ociman-contract-<run>` when they parse as references;
- new containers get a name in the run's namespace (when valid), the run label, a time-to-live (the reaper removes them even if this
  run dies), engine-chosen host ports, bind mounts of a scratch directory, anonymous volumes;
- waits are bounded (log follow off, wait/stop/exec/readiness timeouts of a few seconds).

`ndjson_stream` validates streamed answers (which schemathesis cannot): every line is one JSON
object valid against the event schema of the operation, and the last one is terminal.

`after_call` records what successful requests created (container ids, image ids, references)
in CONTRACT_RECORD for engine.py's clean-up.
"""

import hashlib
import io
import json
import os
import re
import tarfile
import time
from urllib.parse import unquote

import jsonschema_rs

import schemathesis
import yaml

RUN = os.environ["CONTRACT_RUN"]
FIXTURE_CONTAINER = os.environ["CONTRACT_CONTAINER"]
FIXTURE_IMAGE = os.environ["CONTRACT_IMAGE"]
SCRATCH = os.environ["CONTRACT_SCRATCH"]
RECORD = os.environ["CONTRACT_RECORD"]
NAMESPACE = f"localhost/ociman-contract-{RUN}"
MISSING = f"ociman-contract-{RUN}-missing"

# Could name a container (name, id or id prefix); anything else reaches no container.
CONTAINER_LIKE = re.compile(r"/?[A-Za-z0-9][A-Za-z0-9_.-]*")
CONTAINER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,255}")
# Could name an image (reference, id, id prefix).
IMAGE_LIKE = re.compile(r"[A-Za-z0-9_.:/@\[\]-]+")
# distribution/reference grammar, as far as it matters here.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?"
REPOSITORY = re.compile(rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*")
REFERENCE = re.compile(rf"{REPOSITORY.pattern}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9A-Fa-f]{{32,}})?")

created_containers = {FIXTURE_CONTAINER}


def _digest(value):
    return hashlib.sha256(repr(value).encode()).hexdigest()[:12]


def _pick(value, choices):
    return choices[int(_digest(value), 16) % len(choices)]


def _record(**entry):
    with open(RECORD, "a") as file:
        file.write(json.dumps(entry) + "\n")


def _own_reference(value):
    """A parseable reference moves into the run's namespace; anything else stays, to be refused."""
    if isinstance(value, str) and REFERENCE.fullmatch(value):
        return f"{NAMESPACE}:{_digest(value)}"
    return value


def _own_repository(value):
    if isinstance(value, str) and REPOSITORY.fullmatch(value):
        return f"{NAMESPACE}-{_digest(value)}"
    return value


def _bounded(value, limit):
    """A valid positive integer above `limit` becomes `limit`; anything else is left to be refused."""
    if isinstance(value, int) and not isinstance(value, bool) and value > limit:
        return limit
    # The coverage phase also sends numbers as their query-string spelling.
    if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) > limit:
        return str(limit)
    return value


def _safe_path(case):
    """Path parameters arrive percent-encoded or not (schemathesis sends `quote(unquote(value))`
    and ocimand decodes once), so the decision is made on the decoded value."""
    parameters = case.path_parameters or {}
    path = case.operation.path
    if path.startswith("/containers/{id}") and isinstance(parameters.get("id"), str):
        value = unquote(parameters["id"])
        if CONTAINER_LIKE.fullmatch(value) and value not in created_containers:
            parameters["id"] = _pick(value, [FIXTURE_CONTAINER, FIXTURE_CONTAINER, MISSING])
    if path.startswith("/images/{reference}") and isinstance(parameters.get("reference"), str):
        value = unquote(parameters["reference"])
        # Only the run's own references: never an id (a build of `FROM` alone has the base's id).
        if IMAGE_LIKE.fullmatch(value) and not value.startswith(NAMESPACE + ":"):
            parameters["reference"] = _pick(value, [FIXTURE_IMAGE, FIXTURE_IMAGE, f"{NAMESPACE}:missing"])


def _number(value):
    """A query value as a number (schemathesis may send it as text); None when it is not one."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _safe_query(case):
    query = case.query
    if not isinstance(query, dict):
        return
    path = case.operation.path
    if path == "/containers/{id}/logs" and query.get("follow") in (True, "true"):
        query["follow"] = "false"
    if path == "/containers/{id}/wait":
        query["timeout"] = _bounded(query.get("timeout", 2), 2)
    if path == "/events":
        # The stream ends at `until`: at most a second from now, replaying at most a minute.
        now = time.time()
        until, since = _number(query.get("until")), _number(query.get("since"))
        if until is None or until > now + 1:
            query["until"] = round(now + 1, 3)
        if since is not None and since < now - 60:
            query["since"] = round(now - 60, 3)
    if path == "/containers/{id}/stop":
        query["timeout"] = _bounded(query.get("timeout", 1), 1)
    if path in ("/images/build/tar", "/hash/tar"):
        for key in ("tag",):
            if key in query:
                query[key] = _own_reference(query[key])
        if "name" in query:
            query["name"] = _own_repository(query["name"])


def _safe_run_body(body):
    # Example names (`web`) may be in use by other suites' containers at the same time.
    name = body.get("name")
    if isinstance(name, str) and CONTAINER_NAME.fullmatch(name):
        body["name"] = f"ociman-contract-{RUN}-{_digest(name)}"
    labels = body.get("labels")
    if labels is None:
        body["labels"] = {"ociman.contract": RUN}
    elif isinstance(labels, dict):
        labels["ociman.contract"] = RUN
    if "ttl_seconds" not in body:
        body["ttl_seconds"] = 300
    else:
        body["ttl_seconds"] = _bounded(body["ttl_seconds"], 300)
    for port in body.get("publish") or []:
        if isinstance(port, dict) and isinstance(port.get("host_port"), int) and not isinstance(port["host_port"], bool):
            if 0 < port["host_port"] <= 65535:
                port["host_port"] = 0
    for mount in body.get("mounts") or []:
        if not isinstance(mount, dict):
            continue
        if mount.get("type") == "bind" and isinstance(mount.get("source"), str) and mount["source"].startswith("/"):
            mount["source"] = SCRATCH
        if mount.get("type") == "volume" and isinstance(mount.get("source"), str):
            del mount["source"]  # anonymous: removed with the container
    wait = body.get("wait")
    if isinstance(wait, dict) and "timeout_seconds" in wait:
        wait["timeout_seconds"] = _bounded(wait["timeout_seconds"], 3)


def _safe_pool_body(body):
    # A pool boots its members at once and keeps them: few, labelled, short waits; no member
    # name, session or time-to-live (a pool refuses them).
    run = body.get("run")
    if isinstance(run, dict):
        _safe_run_body(run)
        for key in ("name", "ttl_seconds", "session", "auto_remove"):
            run.pop(key, None)
    for key in ("size", "max"):
        if key in body:
            body[key] = _bounded(body[key], 2)
    if "boot_concurrency" in body:
        body["boot_concurrency"] = _bounded(body["boot_concurrency"], 1)
    warm_up = body.get("warm_up")
    if isinstance(warm_up, dict) and "timeout_seconds" in warm_up:
        warm_up["timeout_seconds"] = _bounded(warm_up["timeout_seconds"], 3)


def _safe_body(case):
    body = case.body
    if not isinstance(body, dict):
        return
    path = case.operation.path
    if path == "/containers":
        _safe_run_body(body)
    elif path == "/pools/{name}":
        _safe_pool_body(body)
    elif path == "/pools/{name}/claim":
        body["timeout_seconds"] = _bounded(body.get("timeout_seconds", 1), 1)
    elif path == "/containers/{id}/exec":
        body["timeout_seconds"] = _bounded(body.get("timeout_seconds", 5), 5)
    elif path == "/containers/{id}/commit" and "reference" in body:
        body["reference"] = _own_reference(body["reference"])
    elif path == "/images/{reference}/tag" and "target" in body:
        body["target"] = _own_reference(body["target"])
    elif path in ("/images/pull", "/images/push") and "reference" in body:
        body["reference"] = _own_reference(body["reference"])
    elif path == "/images/build":
        if "tag" in body:
            body["tag"] = _own_reference(body["tag"])
        if "name" in body:
            body["name"] = _own_repository(body["name"])


def _tar(files):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@schemathesis.serializer("application/x-tar")
def tar_body(ctx, value):
    """Tar bodies (POST /images/build/tar, /hash/tar): the generated bytes as they are (mostly not
    a tar, which must be a 400), or, for one case in four, a one-file context that builds."""
    # Generated binary strings arrive as schemathesis' Binary (a str whose bytes are in `.data`).
    data = value if isinstance(value, bytes) else getattr(value, "data", None)
    if not isinstance(data, bytes):
        data = str(value).encode()
    if int(hashlib.sha256(data).hexdigest(), 16) % 4 == 0:
        data = _tar({"Dockerfile": b"FROM localhost/busybox:test\n"})
    return data


@schemathesis.hook
def before_call(context, case, kwargs):
    _safe_path(case)
    _safe_query(case)
    _safe_body(case)
    if os.environ.get("CONTRACT_TRACE"):
        with open(os.environ["CONTRACT_TRACE"], "a") as file:
            file.write(json.dumps([case.method, case.operation.path, case.path_parameters, case.query,
                                   case.body if isinstance(case.body, (dict, list, str)) else None], default=str) + "\n")
    # Every request may take at most this long (streams included); a hang fails the run.
    kwargs.setdefault("timeout", 30)


def _json(response):
    try:
        return response.json()
    except Exception:
        return None


def _stream_results(response):
    for line in (response.text or "").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") == "result":
            yield event


@schemathesis.hook
def after_call(context, case, response):
    path, status = case.operation.path, response.status_code
    if os.environ.get("CONTRACT_TRACE"):
        with open(os.environ["CONTRACT_TRACE"], "a") as file:
            file.write(json.dumps(["answer", case.method, path, status, round(response.elapsed, 3)]) + "\n")
    if path == "/containers" and case.method.upper() == "POST":
        answer = _json(response)
        if not isinstance(answer, dict):
            return
        if status == 201:
            for key in ("id", "name"):
                if isinstance(answer.get(key), str):
                    created_containers.add(answer[key])
            if isinstance(answer.get("id"), str):
                _record(kind="container", id=answer["id"])
        elif isinstance(answer.get("container_id"), str):
            created_containers.add(answer["container_id"])
            _record(kind="container", id=answer["container_id"])
    elif path == "/containers/{id}/commit" and status == 201:
        answer = _json(response) or {}
        if isinstance(answer, dict):
            if answer.get("image_id"):
                _record(kind="image", id=answer["image_id"])
            if answer.get("reference"):
                _record(kind="reference", reference=answer["reference"])
    elif path == "/images/{reference}/tag" and status == 201 and isinstance(case.body, dict):
        _record(kind="reference", reference=str(case.body.get("target")))
    elif path in ("/images/build", "/images/build/tar", "/images/pull") and status == 200:
        for event in _stream_results(response):
            if event.get("image_id"):
                _record(kind="image", id=event["image_id"])
            if event.get("reference"):
                _record(kind="reference", reference=event["reference"])


NDJSON = "application/x-ndjson"
TERMINAL_EVENTS = {"result", "exit", "end", "error"}
with open(os.path.join(os.path.dirname(__file__), "..", "..", "openapi.yaml")) as _file:
    _CONTRACT = yaml.safe_load(_file)
_event_validators = {}


def _event_validator(operation):
    """The validator of one line of the operation's ndjson answer (`$ref`s resolved in the contract)."""
    key = (operation.method.upper(), operation.path)
    if key not in _event_validators:
        definition = _CONTRACT["paths"][operation.path][operation.method.lower()]
        # The body is a binary string; `x-itemSchema` is the schema of each line (OpenAPI 3.2's itemSchema).
        schema = definition["responses"]["200"]["content"][NDJSON]["x-itemSchema"]
        _event_validators[key] = jsonschema_rs.Draft202012Validator(
            {**schema, "components": _CONTRACT["components"]})
    return _event_validators[key]


@schemathesis.check
def ndjson_stream(ctx, response, case):
    """A 200 ndjson answer: one event object per line, each valid, ending with a terminal event."""
    content_type = (response.headers.get("content-type") or [""])[0]
    if response.status_code != 200 or not content_type.startswith(NDJSON):
        return None
    validator = _event_validator(case.operation)
    text = response.content.decode("utf-8")
    assert text.endswith("\n"), f"the stream does not end with a newline: {text[-200:]!r}"
    lines = text.split("\n")[:-1]
    assert lines, "the stream is empty"
    for number, line in enumerate(lines, 1):
        try:
            event = json.loads(line)
        except ValueError as error:
            raise AssertionError(f"line {number} is not JSON ({error}): {line[:200]!r}")
        errors = [error.message for error in validator.iter_errors(event)]
        assert not errors, f"line {number} violates the event schema: {errors[:3]}: {line[:300]}"
        terminal = isinstance(event, dict) and event.get("type") in TERMINAL_EVENTS
        if number < len(lines):
            assert not terminal, f"terminal event on line {number} of {len(lines)}: {line[:200]}"
        else:
            assert terminal, f"the stream does not end with a terminal event: {line[:200]}"
    return None
