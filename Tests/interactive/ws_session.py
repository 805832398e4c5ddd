#!/usr/bin/env python3
"""Interactive sessions of a running ocimand, driven with Python's `websockets` package.

Usage: ws_session.py BASE_URL LABEL_KEY LABEL_VALUE [SCENARIO...]

Every container it creates carries the label LABEL_KEY=LABEL_VALUE (the calling suite removes
them afterwards, whatever happens here). Prints one line per scenario and exits non-zero when
any failed. OCIMAN_TOKEN, when set, is sent as the bearer token.
"""
import asyncio
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request

import websockets

STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
SUBPROTOCOL = "channel.v1.ociman"
IMAGE = "localhost/busybox:test"

BASE, LABEL_KEY, LABEL_VALUE = sys.argv[1], sys.argv[2], sys.argv[3]
TOKEN = os.environ.get("OCIMAN_TOKEN")


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


def http(method, path, body=None, expect=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if TOKEN:
        request.add_header("Authorization", "Bearer " + TOKEN)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    if expect is not None:
        check(status == expect, f"{method} {path}: expected {expect}, got {status}: {text[:300]!r}")
    return status, (json.loads(text) if text else None)


def run_container(command, **extra):
    body = {"image": IMAGE, "command": command, "labels": {LABEL_KEY: LABEL_VALUE}}
    body.update(extra)
    return http("POST", "/containers", body, expect=201)[1]["id"]


def exec_session(container, command, tty, stdin=True):
    body = {"command": command, "tty": tty, "stdin": stdin}
    return http("POST", f"/containers/{container}/exec-sessions", body, expect=201)[1]["id"]


def ws_url(path):
    return BASE.replace("http://", "ws://", 1) + path


def connect(path):
    headers = {"Authorization": "Bearer " + TOKEN} if TOKEN else None
    return websockets.connect(
        ws_url(path), subprotocols=[SUBPROTOCOL], additional_headers=headers, max_size=2 << 20, open_timeout=30)


class Session:
    """Collects output per channel and the status, reading in the background."""

    def __init__(self, ws):
        self.ws = ws
        self.output = {STDOUT: bytearray(), STDERR: bytearray()}
        self.status = None
        self.closed = asyncio.Event()
        self.changed = asyncio.Event()
        self.reader = asyncio.create_task(self.read())

    async def read(self):
        try:
            async for message in self.ws:
                check(isinstance(message, bytes), f"a text message: {message!r}")
                channel, payload = message[0], message[1:]
                if channel == STATUS:
                    check(self.status is None, "a second status message")
                    self.status = json.loads(payload)
                else:
                    check(channel in self.output, f"a message on channel {channel}")
                    check(self.status is None, "output after the status")
                    self.output[channel] += payload
                self.changed.set()
        except websockets.exceptions.ConnectionClosedError:
            pass  # the status (or its absence) is what the scenarios check
        finally:
            self.closed.set()
            self.changed.set()

    async def send(self, channel, payload=b""):
        await self.ws.send(bytes([channel]) + payload)

    async def resize(self, rows, columns):
        await self.send(RESIZE, json.dumps({"rows": rows, "columns": columns}).encode())

    async def wait_for(self, needle, timeout=15):
        deadline = time.monotonic() + timeout
        while needle not in self.output[STDOUT]:
            remaining = deadline - time.monotonic()
            check(remaining > 0 and not self.closed.is_set(),
                  f"{needle!r} did not appear; output so far: {bytes(self.output[STDOUT][-400:])!r}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def finished(self, timeout=30):
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.status


async def tty_resize_and_exit_code():
    """A shell with a TTY resized to 40x120 says `40 120`; `exit 3` yields 3."""
    container = run_container(["sleep", "600"])
    async with connect(f"/exec-sessions/{exec_session(container, ['sh'], tty=True)}/attach") as ws:
        check(ws.subprotocol == SUBPROTOCOL, f"subprotocol {ws.subprotocol!r}")
        session = Session(ws)
        await session.resize(40, 120)
        await session.send(STDIN, b"stty size\n")
        await session.wait_for(b"40 120")
        await session.send(STDIN, b"exit 3\n")
        status = await session.finished()
        check(status == {"exit_code": 3}, f"status {status}")
        check(ws.close_code == 1000, f"close code {ws.close_code}")


async def ctrl_c_interrupts():
    """Ctrl-C (0x03 on a TTY) interrupts a `sleep 100` and the shell answers again."""
    container = run_container(["sleep", "600"])
    async with connect(f"/exec-sessions/{exec_session(container, ['sh'], tty=True)}/attach") as ws:
        session = Session(ws)
        await session.send(STDIN, b"sleep 100; echo slept-$((40+2))\n")
        await asyncio.sleep(1)
        started = time.monotonic()
        await session.send(STDIN, b"\x03")
        await session.send(STDIN, b"echo back-$((20+3))\n")
        await session.wait_for(b"back-23", timeout=10)
        check(b"slept-42" not in session.output[STDOUT], "sleep ran to its end")
        check(time.monotonic() - started < 10, "the interrupt took too long")
        await session.send(STDIN, b"exit\n")
        check(await session.finished() == {"exit_code": 0}, f"status {session.status}")


async def binary_round_trip():
    """10 MB of random bytes through `cat` without a TTY come back identical, stderr apart."""
    container = run_container(["sleep", "600"])
    payload = os.urandom(10 * 1000 * 1000)
    async with connect(f"/exec-sessions/{exec_session(container, ['sh', '-c', 'cat; echo done >&2'], tty=False)}/attach") as ws:
        session = Session(ws)
        for offset in range(0, len(payload), 64 << 10):
            await session.send(STDIN, payload[offset:offset + (64 << 10)])
        await session.send(CLOSE, bytes([STDIN]))
        status = await session.finished(timeout=120)
        check(status == {"exit_code": 0}, f"status {status}")
        got = bytes(session.output[STDOUT])
        check(len(got) == len(payload), f"{len(got)} bytes came back, not {len(payload)}")
        check(hashlib.sha256(got).digest() == hashlib.sha256(payload).digest(), "the bytes differ")
        check(bytes(session.output[STDERR]) == b"done\n", f"stderr {bytes(session.output[STDERR])!r}")


async def dropped_socket_ends_process():
    """A client whose socket drops (no close frame) ends the process."""
    container = run_container(["sleep", "600"])
    exec_id = exec_session(container, ["sh", "-c", "echo started; exec sleep 987"], tty=False)
    ws = await connect(f"/exec-sessions/{exec_id}/attach")
    session = Session(ws)
    await session.wait_for(b"started")
    check(http("GET", f"/exec-sessions/{exec_id}", expect=200)[1]["running"], "the exec is not running")
    ws.transport.abort()
    deadline = time.monotonic() + 15
    while http("GET", f"/exec-sessions/{exec_id}", expect=200)[1]["running"]:
        check(time.monotonic() < deadline, "the exec still runs 15 s after its client dropped")
        await asyncio.sleep(0.2)
    _, result = http("POST", f"/containers/{container}/exec", {"command": ["ps"]}, expect=200)
    check("sleep 987" not in result["stdout"], f"sleep 987 is still running:\n{result['stdout']}")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


async def stalled_reader():
    """A client that stops reading pauses the process's output: ocimand's memory stays flat while
    `cat /dev/zero` could write gigabytes (OCIMAND_PID names the server)."""
    pid = int(os.environ["OCIMAND_PID"])
    container = run_container(["sleep", "600"])
    exec_id = exec_session(container, ["cat", "/dev/zero"], tty=False, stdin=False)
    async with connect(f"/exec-sessions/{exec_id}/attach") as ws:
        ws.transport.pause_reading()   # the kernel buffers fill, then nothing more is read
        await asyncio.sleep(1)
        before = rss_kib(pid)
        await asyncio.sleep(4)
        grown = rss_kib(pid) - before
        check(grown < 64 * 1024, f"ocimand grew by {grown} KiB in 4 s while the client read nothing")
        check(http("GET", f"/exec-sessions/{exec_id}", expect=200)[1]["running"], "the exec ended")
        ws.transport.resume_reading()
        received = 0
        while received < 4 << 20:
            received += len(await asyncio.wait_for(ws.recv(), 10)) - 1
        # Leaving without a close handshake: the flood would hold the close frames back for long.
        ws.transport.abort()
    print(f"     stalled: ocimand grew {grown} KiB in 4 s; {received} bytes flowed once reading resumed", flush=True)


async def stalled_stdin():
    """A process that never reads its stdin holds the client's writes back: ocimand reads no more
    from the socket than the engine takes, and its memory stays flat (OCIMAND_PID)."""
    pid = int(os.environ["OCIMAND_PID"])
    container = run_container(["sleep", "600"])
    exec_id = exec_session(container, ["sh", "-c", "echo started; exec sleep 600"], tty=False)
    async with connect(f"/exec-sessions/{exec_id}/attach") as ws:
        session = Session(ws)
        await session.wait_for(b"started")
        chunk = bytes(64 << 10)
        sent = 0

        async def flood():
            nonlocal sent
            while True:
                await session.send(STDIN, chunk)
                sent += len(chunk)

        writer = asyncio.create_task(flood())
        await asyncio.sleep(1)
        before = rss_kib(pid)
        await asyncio.sleep(4)
        grown = rss_kib(pid) - before
        writer.cancel()
        check(grown < 64 * 1024, f"ocimand grew by {grown} KiB in 4 s while the process read nothing")
        # Unheld, a loopback socket takes gigabytes in 5 s; held, the buffers on the way fill.
        check(sent < 256 << 20, f"the client sent {sent >> 20} MiB to a process that reads nothing")
        ws.transport.abort()
    print(f"     stalled stdin: ocimand grew {grown} KiB in 4 s; the client got {sent >> 20} MiB out", flush=True)


async def ping_pong():
    """An idle session answers pings (and stays open)."""
    container = run_container(["sleep", "600"])
    async with connect(f"/exec-sessions/{exec_session(container, ['cat'], tty=False)}/attach") as ws:
        session = Session(ws)
        for _ in range(3):
            latency = await asyncio.wait_for(await ws.ping(b"are you there"), 5)
            check(latency >= 0, "no pong")
        await session.send(STDIN, b"still here\n")
        await session.wait_for(b"still here\n")
        await session.send(CLOSE, bytes([STDIN]))
        check(await session.finished() == {"exit_code": 0}, f"status {session.status}")


async def attach_run_exit_autoremove():
    """Attach to a container run with a TTY and open stdin, type, exit 4; auto_remove removes it."""
    container = run_container(["sh"], tty=True, stdin_open=True, auto_remove=True)
    async with connect(f"/containers/{container}/attach") as ws:
        session = Session(ws)
        await session.resize(30, 100)
        await session.send(STDIN, b"stty size; echo hi-$((2+3))\n")
        await session.wait_for(b"hi-5")
        await session.wait_for(b"30 100")
        await session.send(STDIN, b"exit 4\n")
        check(await session.finished() == {"exit_code": 4}, f"status {session.status}")
    deadline = time.monotonic() + 15
    while http("GET", f"/containers/{container}")[0] != 404:
        check(time.monotonic() < deadline, "the auto_remove container is still there")
        await asyncio.sleep(0.2)


async def attach_detach_keeps_running():
    """Closing the socket of an attach detaches: the container keeps running."""
    container = run_container(["sh"], tty=True, stdin_open=True)
    async with connect(f"/containers/{container}/attach") as ws:
        session = Session(ws)
        await session.send(STDIN, b"echo attached-$((1+6))\n")
        await session.wait_for(b"attached-7")
    await asyncio.sleep(1)
    _, inspected = http("GET", f"/containers/{container}", expect=200)
    check(inspected["state"]["running"], f"the container stopped after a detach: {inspected['state']}")


async def refusals():
    """A plain GET is 426; unknown sessions are 404; a started session cannot be attached twice."""
    container = run_container(["sleep", "600"])
    status, problem = http("GET", f"/exec-sessions/{exec_session(container, ['true'], tty=False)}/attach")
    check(status == 426, f"plain GET: {status} {problem}")
    for path in ("/exec-sessions/no-such-session/attach", "/containers/no-such-container/attach"):
        try:
            async with connect(path):
                raise Failed(f"{path} was accepted")
        except websockets.exceptions.InvalidStatus as error:
            check(error.response.status_code == 404, f"{path}: {error.response.status_code}")
    exec_id = exec_session(container, ["cat"], tty=False)
    async with connect(f"/exec-sessions/{exec_id}/attach") as ws:
        session = Session(ws)
        try:
            async with connect(f"/exec-sessions/{exec_id}/attach"):
                raise Failed("a second attach was accepted")
        except websockets.exceptions.InvalidStatus as error:
            check(error.response.status_code == 409, f"second attach: {error.response.status_code}")
        await session.send(CLOSE, bytes([STDIN]))
        check(await session.finished() == {"exit_code": 0}, f"status {session.status}")


async def needs_token():
    """With a token configured the handshake without it is refused 401."""
    global TOKEN
    container = run_container(["sleep", "600"])
    exec_id = exec_session(container, ["true"], tty=False)
    token, TOKEN = TOKEN, None
    try:
        async with connect(f"/exec-sessions/{exec_id}/attach"):
            raise Failed("accepted without a token")
    except websockets.exceptions.InvalidStatus as error:
        check(error.response.status_code == 401, f"without a token: {error.response.status_code}")
    finally:
        TOKEN = token


SCENARIOS = {
    "tty": tty_resize_and_exit_code,
    "interrupt": ctrl_c_interrupts,
    "binary": binary_round_trip,
    "drop": dropped_socket_ends_process,
    "ping": ping_pong,
    "stalled": stalled_reader,
    "stalled-stdin": stalled_stdin,
    "attach": attach_run_exit_autoremove,
    "detach": attach_detach_keeps_running,
    "refusals": refusals,
    "token": needs_token,
}


async def main(names):
    failed = 0
    for name in names:
        started = time.monotonic()
        try:
            await asyncio.wait_for(SCENARIOS[name](), 180)
            print(f"ok   {name} ({time.monotonic() - started:.2f} s)", flush=True)
        except Exception as error:  # noqa: BLE001 - every failure is reported
            failed += 1
            print(f"FAIL {name}: {type(error).__name__}: {error}", flush=True)
    return failed


if __name__ == "__main__":
    chosen = sys.argv[4:] or [name for name in SCENARIOS if name not in ("token", "stalled", "stalled-stdin")]
    sys.exit(1 if asyncio.run(main(chosen)) else 0)
