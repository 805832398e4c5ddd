"""Shared by the lifecycles of the generated Python clients (scripts/generated-clients-test.sh).

Neither generator reads ndjson (the media type of ociman's streams: one JSON object per line), so
the clients hand over the raw body and `ndjson_events` below reads the lines; each line is then
parsed with the client's own generated model for the event.
"""
import io
import json
import socket
import sys
import tarfile
import time


def ndjson_events(body: bytes, parse):
    """The events of an ndjson body: one JSON object per non-empty line, each given to
    `parse(line_text, object)`, which returns the client's model for it."""
    events = []
    for line in body.decode("utf-8").splitlines():
        if line.strip():
            events.append(parse(line, json.loads(line)))
    return events


def tar_of(files):
    """An uncompressed tar archive (bytes) of {name: text}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def port_answers(port):
    """True when something accepts TCP connections on 127.0.0.1:port."""
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        return True


class Checks:
    """Collects failed expectations so one run reports all of them; `done` exits non-zero."""

    def __init__(self, name):
        self.name = name
        self.failures = []
        self.started = time.monotonic()

    def expect(self, condition, what):
        if not condition:
            self.failures.append(what)
            print(f"{self.name}: FAILED {what}", file=sys.stderr)

    def equal(self, actual, expected, what):
        self.expect(actual == expected, f"{what}: expected {expected!r}, got {actual!r}")

    def done(self):
        elapsed = time.monotonic() - self.started
        if self.failures:
            print(f"{self.name}: {len(self.failures)} failed expectation(s) in {elapsed:.1f} s", file=sys.stderr)
            sys.exit(1)
        print(f"{self.name}: lifecycle passed in {elapsed:.1f} s")


# What each lifecycle runs, so both clients do the same thing.
BASE_IMAGE = "localhost/busybox:test"
HTTPD_COMMAND = ["sh", "-c", "echo started; exec httpd -f -p 8080"]
DOCKERFILE = "FROM localhost/busybox:test\nRUN echo {kind} > /built\n"
