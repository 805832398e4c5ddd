"""One container and image lifecycle through the client openapi-python-client generated.

    python lifecycle_opc.py BASE_URL RUN_ID     (the generated package `ociman_opc` on PYTHONPATH)

Everything it makes carries the label `ociman.generated-clients=RUN_ID` or a reference with
RUN_ID in it, and is removed at the end whether the run passed or not.
"""
import sys
from http import HTTPStatus

import httpx

from common import BASE_IMAGE, DOCKERFILE, HTTPD_COMMAND, Checks, ndjson_events, port_answers, tar_of
from ociman_opc import Client
from ociman_opc.api.containers import (commit_container, exec_in_container, get_container_logs, inspect_container,
                                       list_containers, remove_container, run_container)
from ociman_opc.api.images import (build_image, build_image_from_tar, check_image, inspect_image, remove_image,
                                   tag_image)
from ociman_opc.api.sessions import create_session, delete_session, renew_session
from ociman_opc.models import (BuildContext, BuildLogEvent, BuildRequest, BuildRequestLabels, BuildResultEvent,
                               CommitRequest, ErrorEvent, ExecRequest, LogEndEvent, LogLineEvent, PublishSpec,
                               RunContainerRequest, RunContainerRequestLabels, SessionLease, TagRequest, WaitSpec)
from ociman_opc.types import File

EVENT_MODELS = {"log": BuildLogEvent, "result": BuildResultEvent, "error": ErrorEvent,
                "stdout": LogLineEvent, "stderr": LogLineEvent, "end": LogEndEvent}


def event(_line, obj):
    """The generated model of one stream line, chosen by its `type` (the contract's discriminator)."""
    return EVENT_MODELS[obj["type"]].from_dict(obj)


def main(base_url, run_id):
    checks = Checks("openapi-python-client")
    client = Client(base_url=base_url, timeout=httpx.Timeout(120.0))
    label = {"ociman.generated-clients": run_id}
    label_filter = f"ociman.generated-clients={run_id}"
    repository = f"localhost/ociman-gen-opc-{run_id}"
    images = [f"{repository}:json", f"{repository}:tar", f"{repository}:commit", f"{repository}:extra"]
    containers = []
    session_id = None
    try:
        session = create_session.sync_detailed(client=client, body=SessionLease(lease_seconds=300))
        checks.equal(session.status_code, HTTPStatus.CREATED, "create session")
        session_id = session.parsed.id
        renewed = renew_session.sync_detailed(session_id, client=client, body=SessionLease(lease_seconds=600))
        checks.expect(renewed.parsed.expires_at > session.parsed.expires_at, "a renewed lease ends later")

        run = run_container.sync_detailed(client=client, body=RunContainerRequest(
            image=BASE_IMAGE, command=HTTPD_COMMAND, labels=RunContainerRequestLabels.from_dict(label),
            publish=[PublishSpec(container_port=8080, host_ip="127.0.0.1")],
            wait=WaitSpec(timeout_seconds=60, tcp_port=8080), ttl_seconds=600, session=session_id))
        checks.equal(run.status_code, HTTPStatus.CREATED, f"run with a readiness wait: {run.content[:300]!r}")
        container = run.parsed
        containers.append(container.id)
        host_port = container.ports[0].host_port
        checks.expect(port_answers(host_port), "the published host port answers once ready")

        inspected = inspect_container.sync_detailed(container.id, client=client)
        checks.equal(inspected.parsed.state.running, True, "inspect: running")
        checks.equal(inspected.parsed.ports[0].host_port, host_port, "inspect: host port")
        checks.expect(inspected.parsed.created.year >= 2024, "created is a date-time")

        listed = list_containers.sync_detailed(client=client, label=[label_filter])
        checks.equal([summary.id for summary in listed.parsed], [container.id], "list by label")

        counted = exec_in_container.sync_detailed(container.id, client=client,
                                                  body=ExecRequest(command=["wc", "-c"], stdin="four"))
        checks.equal(counted.parsed.exit_code, 0, "exec with stdin: exit code")
        checks.equal(counted.parsed.stdout.strip(), "4", "exec with stdin: output")
        failed = exec_in_container.sync_detailed(container.id, client=client,
                                                 body=ExecRequest(command=["sh", "-c", "echo oops >&2; exit 3"]))
        checks.equal((failed.parsed.exit_code, failed.parsed.stderr), (3, "oops\n"), "exec with a non-zero exit")

        logs = get_container_logs.sync_detailed(container.id, client=client)
        lines = ndjson_events(logs.content, event)
        checks.equal([type(line).__name__ for line in lines], ["LogLineEvent", "LogEndEvent"], "logs: events")
        checks.equal(lines[0].line, "started", "logs: the first line")

        built = build_image.sync_detailed(client=client, body=BuildRequest(
            context=BuildContext(instructions=DOCKERFILE.format(kind="json")), tag=images[0],
            labels=BuildRequestLabels.from_dict(label)))
        result = ndjson_events(built.content, event)[-1]
        checks.expect(isinstance(result, BuildResultEvent) and result.reference == images[0],
                      f"build from a JSON body: {built.content[-300:]!r}")

        tar = tar_of({"Dockerfile": DOCKERFILE.format(kind="tar")})
        built = build_image_from_tar.sync_detailed(client=client, body=File(payload=tar), tag=images[1],
                                                   labels=[label_filter])
        result = ndjson_events(built.content, event)[-1]
        checks.expect(isinstance(result, BuildResultEvent) and result.reference == images[1],
                      f"build from a tar: {built.content[-300:]!r}")

        committed = commit_container.sync_detailed(container.id, client=client, body=CommitRequest(reference=images[2]))
        checks.equal(committed.status_code, HTTPStatus.CREATED, "commit")
        image = inspect_image.sync_detailed(images[2], client=client)
        checks.expect(images[2] in image.parsed.references, "image inspect lists the reference")
        checks.equal(check_image.sync_detailed(images[2], client=client).status_code, HTTPStatus.OK, "HEAD an image")
        tagged = tag_image.sync_detailed(images[2], client=client, body=TagRequest(target=images[3]))
        checks.equal(tagged.status_code, HTTPStatus.CREATED, "tag")
        checks.equal(remove_image.sync_detailed(images[3], client=client).status_code, HTTPStatus.NO_CONTENT, "remove")
        checks.equal(check_image.sync_detailed(images[3], client=client).status_code, HTTPStatus.NOT_FOUND,
                     "HEAD a removed image")

        ended = delete_session.sync_detailed(session_id, client=client)
        session_id = None
        checks.equal(ended.parsed.removed_containers, 1, "ending the session removes its container")
        checks.equal(inspect_container.sync_detailed(container.id, client=client).status_code, HTTPStatus.NOT_FOUND,
                     "the session's container is gone")
    finally:
        if session_id:
            delete_session.sync_detailed(session_id, client=client)
        for container_id in containers:
            remove_container.sync_detailed(container_id, client=client, force=True)
        for reference in images:
            remove_image.sync_detailed(reference, client=client, force=True)
    checks.done()


if __name__ == "__main__":
    main(*sys.argv[1:3])
