"""Shared pieces of the ociman benchmark harness (Python 3 standard library only).

- UnixHTTPConnection / connect(): keep-alive HTTP over a unix socket or TCP (http.client).
- Client: a keep-alive JSON/bytes client that reconnects when the server closes.
- p50_ms(fn, n) / samples_ms(): latency sampling with perf_counter_ns.
- Ocimand: start/stop .build/release/ocimand per backend, wait for GET /health.
- engines: which engine sockets answer, and label-based clean-up of bench objects.
- wrk(): run wrk and parse req/s; rss_kb(): VmRSS of a pid.
- Results: rows of `metric | ociman | baseline | ratio | target | status`, printed and saved as JSON.

Every container or image the bench creates carries the label ociman.bench=1 and is removed in a
`finally` (and swept once more at the end of the run).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(REPO, "bench", "out")
DEFAULT_BINARY = os.path.join(REPO, ".build", "release", "ocimand")

OCIMAN_HOST = "127.0.0.1"
OCIMAN_PORT = 18420
NGINX_PORT = 18421

BENCH_LABEL_KEY = "ociman.bench"
BENCH_LABEL = {BENCH_LABEL_KEY: "1"}
BASE_IMAGE = "localhost/busybox:test"

ENGINE_SOCKETS = {
    "docker": "/var/run/docker.sock",
    "podman": "/run/podman/podman.sock",
}
ENGINE_CLI = {"docker": "docker", "podman": "podman"}
COMPAT = "/v1.41"            # dockerd 20.10 accepts at most 1.41; Podman's compat API takes it too
LIBPOD = "/v4.0.0/libpod"


class Skip(Exception):
    """A section or metric cannot run here (missing binary, route not implemented, ...)."""


class OcimandUnavailable(Skip):
    pass


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ HTTP plumbing

class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client connection over a unix socket (keep-alive like any HTTPConnection)."""

    def __init__(self, path: str, timeout: float = 60.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def connect(endpoint: str, timeout: float = 60.0) -> http.client.HTTPConnection:
    """endpoint: 'unix:/path' or a socket path starting with '/', or 'HOST:PORT'."""
    if endpoint.startswith("unix:"):
        return UnixHTTPConnection(endpoint[5:], timeout)
    if endpoint.startswith("/"):
        return UnixHTTPConnection(endpoint, timeout)
    host, _, port = endpoint.rpartition(":")
    return http.client.HTTPConnection(host, int(port), timeout=timeout)


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body) if self.body else None

    def __repr__(self):
        return f"<Response {self.status} {self.body[:200]!r}>"


class Client:
    """Keep-alive HTTP client for one endpoint. Reconnects when the server closed the connection."""

    def __init__(self, endpoint: str, timeout: float = 120.0):
        self.endpoint = endpoint
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def _conn(self):
        if self.conn is None:
            self.conn = connect(self.endpoint, self.timeout)
        return self.conn

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method: str, path: str, body=None, headers=None) -> Response:
        headers = dict(headers or {})
        for attempt in (0, 1):
            conn = self._conn()
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady):
                self.close()
                if attempt:
                    raise
                continue
            if resp.will_close:
                self.close()
            return Response(resp.status, resp.headers, data)
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, obj=None, headers=None) -> Response:
        """JSON request helper: encodes obj (if not None) and sets Content-Type."""
        headers = dict(headers or {})
        body = None
        if obj is not None:
            body = json.dumps(obj).encode()
            headers.setdefault("Content-Type", "application/json")
        headers.setdefault("Accept", "application/json")
        return self.request(method, path, body=body, headers=headers)

    def stream(self, method: str, path: str, body=None, headers=None):
        """Starts a request and returns the raw http.client response (caller reads and closes).
        Uses a fresh connection so the keep-alive one stays usable."""
        conn = connect(self.endpoint, self.timeout)
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        resp._bench_conn = conn  # keep it alive as long as the response
        return resp


def q(s: str) -> str:
    """Percent-encodes a path segment (image references: '/' as %2F)."""
    return urllib.parse.quote(s, safe="")


# ------------------------------------------------------------------ timing

def samples_ms(fn, n: int, warmup: int = 0) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    pc = time.perf_counter_ns
    for _ in range(n):
        t = pc()
        fn()
        out.append((pc() - t) / 1e6)
    return out


def p50_ms(fn, n: int, warmup: int = 0) -> float:
    """Median latency of fn() in milliseconds over n calls after `warmup` untimed calls."""
    return statistics.median(samples_ms(fn, n, warmup))


def pct(values: list[float], p: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def time_cmd_ms(argv, n: int, warmup: int = 1, shell: bool = False, cwd=None) -> list[float]:
    """Wall time of a whole command (process spawn included), n runs."""
    def run():
        r = subprocess.run(argv, shell=shell, cwd=cwd, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError(f"{argv!r} failed: {r.stderr.decode(errors='replace')[-500:]}")
    return samples_ms(run, n, warmup)


# ------------------------------------------------------------------ engines

def engine_up(kind: str) -> bool:
    path = ENGINE_SOCKETS[kind]
    if not os.path.exists(path):
        return False
    try:
        c = Client(path, timeout=3)
        r = c.request("GET", "/_ping")
        c.close()
        return r.status == 200 and r.body.strip() == b"OK"
    except OSError:
        return False


def engine_client(kind: str) -> Client:
    return Client(ENGINE_SOCKETS[kind])


def engine_run_detached(kind: str, cmd: list[str], name_hint: str = "bench") -> str:
    """Creates and starts a labelled busybox container on the engine directly; returns its id."""
    c = engine_client(kind)
    try:
        r = c.json("POST", f"{COMPAT}/containers/create", {
            "Image": BASE_IMAGE, "Cmd": cmd, "Labels": BENCH_LABEL,
            "HostConfig": {"Init": False},
        })
        if r.status != 201:
            raise RuntimeError(f"{kind} create: {r}")
        cid = r.json()["Id"]
        r = c.request("POST", f"{COMPAT}/containers/{cid}/start")
        if r.status not in (204, 304):
            engine_remove(kind, cid)
            raise RuntimeError(f"{kind} start: {r}")
        return cid
    finally:
        c.close()


def engine_remove(kind: str, cid: str) -> None:
    c = engine_client(kind)
    try:
        c.request("DELETE", f"{COMPAT}/containers/{cid}?force=1&v=1")
    except OSError:
        pass
    finally:
        c.close()


def sweep_bench_objects(kind: str) -> int:
    """Force-removes every container and image labelled ociman.bench=1 on the engine."""
    if not engine_up(kind):
        return 0
    c = engine_client(kind)
    n = 0
    try:
        flt = q(json.dumps({"label": [f"{BENCH_LABEL_KEY}=1"]}))
        r = c.json("GET", f"{COMPAT}/containers/json?all=1&filters={flt}")
        for ct in (r.json() or []) if r.status == 200 else []:
            c.request("DELETE", f"{COMPAT}/containers/{ct['Id']}?force=1&v=1")
            n += 1
        r = c.json("GET", f"{COMPAT}/images/json?filters={flt}")
        for im in (r.json() or []) if r.status == 200 else []:
            c.request("DELETE", f"{COMPAT}/images/{im['Id']}?force=1")
            n += 1
    except OSError as e:
        log(f"sweep on {kind} failed: {e}")
    finally:
        c.close()
    return n


# ------------------------------------------------------------------ ocimand process

class Ocimand:
    """Starts ocimand for one backend and stops it on close().

    Invocation: BINARY --listen 127.0.0.1:18420 --context-root DIR, with OCIMAN_BACKEND=<backend>.
    """

    def __init__(self, backend: str | None, context_root: str, binary: str = DEFAULT_BINARY,
                 port: int = OCIMAN_PORT, extra_args=(), startup_timeout: float = 30.0):
        self.backend = backend
        self.context_root = context_root
        self.binary = binary
        self.port = port
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(OUT_DIR, f"ocimand-{backend or 'auto'}.log")
        self.endpoint = f"{OCIMAN_HOST}:{port}"
        self.url = f"http://{OCIMAN_HOST}:{port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> "Ocimand":
        if not (os.path.isfile(self.binary) and os.access(self.binary, os.X_OK)):
            raise OcimandUnavailable(
                f"no ocimand binary at {os.path.relpath(self.binary)}")
        if _port_open(OCIMAN_HOST, self.port):
            raise OcimandUnavailable(f"port {self.port} is already in use; is another ocimand running?")
        env = dict(os.environ)
        env.pop("OCIMAN_LISTEN", None)
        if self.backend:
            env["OCIMAN_BACKEND"] = self.backend
        else:
            env.pop("OCIMAN_BACKEND", None)
        argv = [self.binary, "--listen", self.endpoint, "--context-root", self.context_root,
                *self.extra_args]
        os.makedirs(OUT_DIR, exist_ok=True)
        logf = open(self.log_path, "ab")
        logf.write(f"\n==== {time.strftime('%F %T')} {' '.join(argv)} "
                   f"(OCIMAN_BACKEND={self.backend})\n".encode())
        logf.flush()
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                rc, self.proc = self.proc.returncode, None
                raise OcimandUnavailable(
                    f"ocimand (backend {self.backend}) exited with status {rc} at start-up; "
                    f"log {self.log_path}:\n{_tail(self.log_path)}")
            try:
                c = Client(self.endpoint, timeout=2)
                r = c.request("GET", "/health")
                c.close()
                if r.status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise OcimandUnavailable(
                    f"ocimand did not answer GET /health within {self.startup_timeout:.0f} s; "
                    f"log {self.log_path}:\n{_tail(self.log_path)}")
            time.sleep(0.05)
        log(f"ocimand up (pid {self.proc.pid}, backend {self.backend}, {self.url})")
        return self

    def stop(self):
        if self.proc is None:
            return
        p, self.proc = self.proc, None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                log("ocimand did not stop on SIGTERM within 10 s; SIGKILL")
                p.kill()
                p.wait()

    def client(self) -> Client:
        return Client(self.endpoint)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class OcimandPool:
    """One ocimand at a time on the bench port; switching backend restarts it."""

    def __init__(self, context_root: str, binary: str = DEFAULT_BINARY):
        self.context_root = context_root
        self.binary = binary
        self.current: Ocimand | None = None
        self.failed: dict[str | None, str] = {}

    def get(self, backend: str | None, fresh: bool = False, extra_args=()) -> Ocimand:
        if backend in self.failed:
            raise OcimandUnavailable(self.failed[backend])
        if self.current is not None and (fresh or self.current.backend != backend
                                         or self.current.extra_args != list(extra_args)
                                         or self.current.proc is None
                                         or self.current.proc.poll() is not None):
            self.current.stop()
            self.current = None
        if self.current is None:
            o = Ocimand(backend, self.context_root, self.binary, extra_args=extra_args)
            try:
                o.start()
            except OcimandUnavailable as e:
                self.failed[backend] = str(e)
                log(f"ocimand unavailable for backend {backend}: {e}")
                raise
            self.current = o
        return self.current

    def close(self):
        if self.current is not None:
            self.current.stop()
            self.current = None


def _port_open(host, port) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def _tail(path, n=20) -> str:
    try:
        with open(path, "rb") as f:
            return b"".join(f.readlines()[-n:]).decode(errors="replace")
    except OSError:
        return ""


def require_route(resp: Response, what: str) -> Response:
    """Skips the metric when ocimand answers 404/405/501 (route not implemented yet)."""
    if resp.status in (404, 405, 501):
        raise Skip(f"ocimand {what} answered {resp.status} (route not implemented yet?)")
    return resp


# ------------------------------------------------------------------ tools

def have(cmd: str) -> bool:
    return shutil.which(cmd) is not None


_WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_WRK_ERRORS = re.compile(r"Socket errors:\s+(.*)")
_WRK_LAT = re.compile(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", re.M)


_WRK_PERCENTILE = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, threads: int = 2, conns: int = 16, duration: int = 10, script: str | None = None) -> dict:
    """Runs wrk; `script` is a Lua file (e.g. to rotate paths). Percentiles come back as p50..p99 in ms."""
    if not have("wrk"):
        raise Skip("wrk not installed (apt-get install wrk)")
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency", url]
    if script:
        argv[1:1] = ["-s", script]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=duration + 60)
    out = r.stdout
    m = _WRK_RPS.search(out)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({r.returncode}): {out[-800:]}")
    res = {"rps": float(m.group(1)), "raw": out}
    if (m := _WRK_NON2XX.search(out)):
        res["non2xx"] = int(m.group(1))
    if (m := _WRK_ERRORS.search(out)):
        res["socket_errors"] = m.group(1).strip()
    if (m := _WRK_LAT.search(out)):
        res["latency_avg"] = m.group(1)
    for m in _WRK_PERCENTILE.finditer(out):
        res[f"p{m.group(1)}"] = float(m.group(2)) * _UNIT_MS[m.group(3)]
    return res


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found for pid {pid}")


class TempDir:
    """The bench's scratch directory (also ocimand's --context-root)."""

    def __init__(self, keep: bool = False):
        base = os.environ.get("OCIMAN_BENCH_TMP") or None
        self.path = tempfile.mkdtemp(prefix="ociman-bench.", dir=base)
        self.keep = keep

    def sub(self, *parts) -> str:
        p = os.path.join(self.path, *parts)
        os.makedirs(p, exist_ok=True)
        return p

    def cleanup(self):
        if not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)


# ------------------------------------------------------------------ reference content hash (SPEC §5)

def _push(h, b: bytes) -> None:
    h.update(len(b).to_bytes(8, "little"))
    h.update(b)


def _push_tail(h, build_args: dict, labels: dict) -> None:
    _push(h, b"build-arguments")
    for k in sorted(build_args, key=lambda s: s.encode()):
        _push(h, k.encode())
        _push(h, build_args[k].encode())
    _push(h, b"labels")
    for k in sorted(labels, key=lambda s: s.encode()):
        _push(h, k.encode())
        _push(h, labels[k].encode())


def reference_hash_instructions(text: str, build_args=None, labels=None) -> str:
    import hashlib
    h = hashlib.sha256()
    _push(h, b"content")
    _push(h, text.encode())
    _push_tail(h, build_args or {}, labels or {})
    return h.hexdigest()


def reference_hash_dir(root: str, build_args=None, labels=None) -> str:
    """The ociman content hash of a directory context, to check ocimand's /hash answers."""
    import hashlib
    import stat as st_

    h = hashlib.sha256()
    _push(h, b"directory")

    def walk(d: bytes, rel: bytes):
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            st = os.lstat(p)
            r = rel + b"/" + name if rel else name
            if st_.S_ISDIR(st.st_mode):
                walk(p, r)
            elif st_.S_ISREG(st.st_mode):
                _push(h, b"file.path")
                _push(h, r)
                _push(h, b"file.content")
                h.update(st.st_size.to_bytes(8, "little"))
                with open(p, "rb") as f:
                    while (b := f.read(1 << 20)):
                        h.update(b)

    walk(os.fsencode(root), b"")
    _push_tail(h, build_args or {}, labels or {})
    return h.hexdigest()


# ------------------------------------------------------------------ results

PASS, FAIL, SKIP, INFO = "PASS", "FAIL", "SKIP", "INFO"


class Results:
    def __init__(self):
        self.rows: list[dict] = []
        self.sections: dict[str, dict] = {}

    def add(self, section: str, metric: str, ociman=None, baseline=None, ratio=None,
            target: str = "", ok: bool | None = None, unit: str = "", note: str = "",
            status: str | None = None, **extra) -> dict:
        if status is None:
            if ociman is None or ok is None:
                status = SKIP if ociman is None and target else INFO
            else:
                status = PASS if ok else FAIL
        row = {"section": section, "metric": metric, "ociman": ociman, "baseline": baseline,
               "ratio": ratio, "target": target, "status": status, "unit": unit, "note": note}
        row.update(extra)
        self.rows.append(row)
        return row

    def section_status(self, name: str, status: str, message: str = ""):
        self.sections[name] = {"status": status, "message": message}

    @staticmethod
    def _fmt(v, unit=""):
        if v is None:
            return "n/a"
        if isinstance(v, str):
            return v
        if isinstance(v, float):
            a = abs(v)
            s = f"{v:.0f}" if a >= 1000 else f"{v:.1f}" if a >= 100 else f"{v:.2f}" if a >= 1 else f"{v:.3f}"
        else:
            s = str(v)
        return f"{s} {unit}".strip()

    def table(self) -> str:
        head = ["metric", "ociman", "baseline", "ratio", "target", "PASS/FAIL"]
        rows = []
        for r in self.rows:
            rows.append([r["metric"], self._fmt(r["ociman"], r["unit"]),
                         self._fmt(r["baseline"], r["unit"]),
                         self._fmt(r["ratio"]) if not isinstance(r["ratio"], str) else r["ratio"],
                         r["target"] or "-", r["status"]])
        widths = [max(len(h), *(len(x[i]) for x in rows)) if rows else len(h)
                  for i, h in enumerate(head)]
        line = lambda cells: " | ".join(c.ljust(w) for c, w in zip(cells, widths))
        out = [line(head), "-+-".join("-" * w for w in widths)]
        out += [line(r) for r in rows]
        # identical notes (e.g. "binary not found" on every row) are printed once
        grouped: dict[str, list[str]] = {}
        for r in self.rows:
            if r.get("note"):
                grouped.setdefault(r["note"], []).append(r["metric"])
        if grouped:
            out += ["", "notes:"]
            for note, metrics in grouped.items():
                who = metrics[0] if len(metrics) == 1 else f"{len(metrics)} rows"
                out.append(f"  {who}: {note}")
        return "\n".join(out)

    def write_json(self, path: str, meta: dict):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump({"meta": meta, "sections": self.sections, "results": self.rows}, f, indent=2)
            f.write("\n")
