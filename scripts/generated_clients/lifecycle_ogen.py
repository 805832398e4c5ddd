"""One container and image lifecycle through the client openapi-generator (`python`) generated.

    python lifecycle_ogen.py BASE_URL RUN_ID     (the generated package `ociman_ogen` on PYTHONPATH)

Everything it makes carries the label `ociman.generated-clients=RUN_ID` or a reference with
RUN_ID in it, and is removed at the end whether the run passed or not.
"""
import sys

from common import BASE_IMAGE, DOCKERFILE, HTTPD_COMMAND, Checks, ndjson_events, port_answers, tar_of
from ociman_ogen import ApiClient, Configuration
from ociman_ogen.api import ContainersApi, ImagesApi, SessionsApi
from ociman_ogen.exceptions import ApiException, NotFoundException
from ociman_ogen.models import (BuildContext, BuildEvent, BuildRequest, BuildResultEvent, CommitRequest, ExecRequest,
                                LogEndEvent, LogEvent, LogLineEvent, PublishSpec, RunContainerRequest, SessionLease,
                                TagRequest, WaitSpec)


def log_event(line, _obj):
    """The generated oneOf model picks the event's schema; `actual_instance` is that schema's model."""
    return LogEvent.from_json(line).actual_instance


def build_event(line, _obj):
    return BuildEvent.from_json(line).actual_instance


def ignoring_errors(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ApiException:
        pass


def main(base_url, run_id):
    checks = Checks("openapi-generator")
    api_client = ApiClient(Configuration(host=base_url))
    containers, images_api, sessions = ContainersApi(api_client), ImagesApi(api_client), SessionsApi(api_client)
    label = {"ociman.generated-clients": run_id}
    label_filter = f"ociman.generated-clients={run_id}"
    repository = f"localhost/ociman-gen-ogen-{run_id}"
    images = [f"{repository}:json", f"{repository}:tar", f"{repository}:commit", f"{repository}:extra"]
    created = []
    session_id = None
    try:
        session = sessions.create_session(SessionLease(lease_seconds=300))
        session_id = session.id
        renewed = sessions.renew_session(session_id, SessionLease(lease_seconds=600))
        checks.expect(renewed.expires_at > session.expires_at, "a renewed lease ends later")

        container = containers.run_container(RunContainerRequest(
            image=BASE_IMAGE, command=HTTPD_COMMAND, labels=label,
            publish=[PublishSpec(container_port=8080, host_ip="127.0.0.1")],
            wait=WaitSpec(timeout_seconds=60, tcp_port=8080), ttl_seconds=600, session=session_id))
        created.append(container.id)
        host_port = container.ports[0].host_port
        checks.expect(port_answers(host_port), "the published host port answers once ready")

        inspected = containers.inspect_container(container.id)
        checks.equal(inspected.state.running, True, "inspect: running")
        checks.equal(inspected.ports[0].host_port, host_port, "inspect: host port")
        checks.expect(inspected.created.year >= 2024, "created is a date-time")

        listed = containers.list_containers(label=[label_filter])
        checks.equal([summary.id for summary in listed], [container.id], "list by label")

        counted = containers.exec_in_container(container.id, ExecRequest(command=["wc", "-c"], stdin="four"))
        checks.equal((counted.exit_code, counted.stdout.strip()), (0, "4"), "exec with stdin")
        failed = containers.exec_in_container(container.id, ExecRequest(command=["sh", "-c", "echo oops >&2; exit 3"]))
        checks.equal((failed.exit_code, failed.stderr), (3, "oops\n"), "exec with a non-zero exit")

        lines = ndjson_events(bytes(containers.get_container_logs(container.id)), log_event)
        checks.equal([type(line) for line in lines], [LogLineEvent, LogEndEvent], "logs: events")
        checks.equal(lines[0].line, "started", "logs: the first line")

        body = bytes(images_api.build_image(BuildRequest(
            context=BuildContext(instructions=DOCKERFILE.format(kind="json")), tag=images[0], labels=label)))
        result = ndjson_events(body, build_event)[-1]
        checks.expect(isinstance(result, BuildResultEvent) and result.reference == images[0],
                      f"build from a JSON body: {body[-300:]!r}")

        tar = tar_of({"Dockerfile": DOCKERFILE.format(kind="tar")})
        body = bytes(images_api.build_image_from_tar(tar, tag=images[1], labels=[label_filter]))
        result = ndjson_events(body, build_event)[-1]
        checks.expect(isinstance(result, BuildResultEvent) and result.reference == images[1],
                      f"build from a tar: {body[-300:]!r}")

        committed = containers.commit_container(container.id, CommitRequest(reference=images[2]))
        checks.equal(committed.reference, images[2], "commit")
        image = images_api.inspect_image(images[2])
        checks.expect(images[2] in image.references, "image inspect lists the reference")
        images_api.check_image(images[2])  # raises unless 200
        images_api.tag_image(images[2], TagRequest(target=images[3]))
        images_api.remove_image(images[3])
        try:
            images_api.check_image(images[3])
            checks.expect(False, "HEAD a removed image: expected 404, got 200")
        except NotFoundException:
            pass

        ended = sessions.delete_session(session_id)
        session_id = None
        checks.equal(ended.removed_containers, 1, "ending the session removes its container")
        try:
            containers.inspect_container(container.id)
            checks.expect(False, "the session's container is gone: inspect answered 200")
        except NotFoundException:
            pass
    except ApiException as error:
        checks.expect(False, f"unexpected answer: {error.status} {error.body}")
    finally:
        if session_id:
            ignoring_errors(sessions.delete_session, session_id)
        for container_id in created:
            ignoring_errors(containers.remove_container, container_id, force=True)
        for reference in images:
            ignoring_errors(images_api.remove_image, reference, force=True)
    checks.done()


if __name__ == "__main__":
    main(*sys.argv[1:3])
