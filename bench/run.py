#!/usr/bin/env python3
"""ociman benchmark harness (SPEC §10): every number is a ratio against a baseline measured in
the same run on the same machine.

    python3 bench/run.py                      all sections
    python3 bench/run.py --only health        one section (repeatable, or comma-separated)
    python3 bench/run.py --list               section names

Prints `metric | ociman | baseline | ratio | target | PASS/FAIL` and writes bench/out/results.json.
ocimand is started by the harness: `.build/release/ocimand --listen 127.0.0.1:18420
--context-root <bench temp dir>` with OCIMAN_BACKEND=docker|podman; its log goes to
bench/out/ocimand-<backend>.log. Without the binary, or when a route answers 404, the ocimand side
is skipped with a message and the baselines are still measured and printed.

Adding a section: write `def section_x(ctx)` decorated with @section("x"); record rows with
ctx.results.add(...); raise Skip("why") to skip it whole; use ctx.ociman(backend) for a running
ocimand (raises OcimandUnavailable, a Skip) and helpers from bench/common.py.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tarfile
import threading
import time
import traceback
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (  # noqa: E402
    BASE_IMAGE, BENCH_LABEL, BENCH_LABEL_KEY, COMPAT, DEFAULT_BINARY, ENGINE_CLI, ENGINE_SOCKETS,
    LIBPOD, NGINX_PORT, OCIMAN_HOST, OUT_DIR, FAIL, INFO, PASS, SKIP, Client, OcimandPool, OcimandUnavailable,
    Results, Skip, TempDir, connect, engine_client, engine_remove, engine_run_detached, engine_up,
    have, log, p50_ms, pct, q, reference_hash_dir, require_route, rss_kb, samples_ms,
    sweep_bench_objects, time_cmd_ms, wrk,
)

MiB = 1 << 20
GiB = 1 << 30

SECTIONS: dict[str, callable] = {}


def section(name):
    def deco(fn):
        SECTIONS[name] = fn
        fn.section_name = name
        return fn
    return deco


class Ctx:
    def __init__(self, args):
        self.args = args
        self.results = Results()
        self.tmp = TempDir(keep=args.keep_tmp)
        self.pool = OcimandPool(self.tmp.path, args.binary)
        self.engines = [e for e in args.engines if engine_up(e)]
        for e in args.engines:
            if e not in self.engines:
                log(f"engine {e} does not answer {ENGINE_SOCKETS[e]} /_ping; its sections are skipped "
                    f"(run scripts/setup-engines.sh)")
        self._fixtures: dict[str, str] = {}

    @property
    def primary(self) -> str | None:
        """The backend used for engine-independent sections (health, hash, rss)."""
        return self.engines[0] if self.engines else None

    def ociman(self, backend, fresh=False, extra_args=()):
        return self.pool.get(backend, fresh=fresh, extra_args=extra_args)

    def add(self, *a, **kw):
        row = self.results.add(*a, **kw)
        log(f"{row['metric']}: ociman={row['ociman']} baseline={row['baseline']} "
            f"ratio={row['ratio']} [{row['status']}] {row['note']}")
        return row

    def require_engines(self):
        if not self.engines:
            raise Skip("no engine answers (run scripts/setup-engines.sh)")
        return self.engines

    # ---- fixtures inside the context root (created once per run)

    def big_file_dir(self) -> str:
        """A directory holding one 1 GiB file (SPEC §10 /hash throughput)."""
        if "big" not in self._fixtures:
            d = self.tmp.sub("ctx-big")
            size = self.args.big_mib * MiB
            block = os.urandom(MiB)
            log(f"writing a {size // MiB} MiB file in {d}")
            with open(os.path.join(d, "data.bin"), "wb") as f:
                for i in range(size // MiB):
                    # vary each block a little so no layer can deduplicate
                    f.write(i.to_bytes(8, "little") + block[8:])
            self._fixtures["big"] = d
        return self._fixtures["big"]

    def many_files_dir(self) -> str:
        """10 000 files of 4 KiB in 100 directories."""
        if "many" not in self._fixtures:
            d = self.tmp.sub("ctx-many")
            n = self.args.many_files
            per = 100
            log(f"writing {n} files of 4 KiB in {d}")
            for i in range(n):
                sub = os.path.join(d, f"d{i // per:03d}")
                if i % per == 0:
                    os.makedirs(sub, exist_ok=True)
                with open(os.path.join(sub, f"f{i:05d}.bin"), "wb") as f:
                    f.write(os.urandom(4096))
            self._fixtures["many"] = d
        return self._fixtures["many"]

    def build_dir(self) -> str:
        if "build" not in self._fixtures:
            d = self.tmp.sub("ctx-build")
            with open(os.path.join(d, "Dockerfile"), "w") as f:
                f.write(f"FROM {BASE_IMAGE}\nRUN echo ociman-bench-build\n")
            with open(os.path.join(d, "hello.txt"), "w") as f:
                f.write("hello\n")
            self._fixtures["build"] = d
        return self._fixtures["build"]


def ok200(r, what="request", codes=(200,)):
    if r.status not in codes:
        raise RuntimeError(f"{what}: HTTP {r.status}: {r.body[:300]!r}")
    return r


def join_notes(*parts) -> str:
    return "; ".join(p for p in parts if p)


def fmt_added(ms: float) -> str:
    return f"{ms:+.3f} ms"


def ociman_side(ctx, fn):
    """Runs the ocimand half of a measurement; returns (value, note). A Skip becomes (None, why)."""
    try:
        return fn(), ""
    except Skip as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        return None, msg


# ====================================================================== sections

class Nginx:
    """nginx `return 200` on 127.0.0.1:NGINX_PORT, a foreground child with its own prefix."""

    def __init__(self, root: str, port: int = NGINX_PORT, workers: int = 2):
        self.root = root
        self.port = port
        self.workers = workers
        self.proc = None

    def start(self):
        if not have("nginx"):
            raise Skip("nginx not installed (apt-get install nginx-light)")
        r = self.root
        for sub in ("logs", "tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            os.makedirs(os.path.join(r, sub), exist_ok=True)
        conf = os.path.join(r, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off;
master_process on;
worker_processes {self.workers};
pid {r}/nginx.pid;
error_log {r}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {r}/tmp/body;
    proxy_temp_path {r}/tmp/proxy;
    fastcgi_temp_path {r}/tmp/fastcgi;
    uwsgi_temp_path {r}/tmp/uwsgi;
    scgi_temp_path {r}/tmp/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            default_type application/json;
            return 200 '{{"status":"ok"}}';
        }}
    }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-p", r, "-c", conf, "-e", f"{r}/logs/error.log"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")
                raise RuntimeError(f"nginx exited: {err}")
            try:
                c = Client(f"127.0.0.1:{self.port}", timeout=1)
                r_ = c.request("GET", "/health")
                c.close()
                if r_.status == 200 and json.loads(r_.body) == {"status": "ok"}:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("nginx did not answer within 10 s")
            time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@section("health")
def section_health(ctx):
    """GET /health throughput vs nginx `return 200`, wrk -t2 -c16 (target ≥ 0.85×)."""
    a = ctx.args
    nginx = Nginx(ctx.tmp.sub("nginx")).start()
    best_nginx, best_oci, note, extra = 0.0, None, "", {}
    oci = None
    try:
        try:
            oci = ctx.ociman(ctx.primary)
            c = oci.client()
            r = require_route(c.request("GET", "/health"), "GET /health")
            c.close()
            if r.status != 200:
                raise Skip(f"GET /health answered {r.status}")
        except Skip as e:
            note = str(e).splitlines()[0]
            oci = None
        for rnd in range(a.rounds):
            w = wrk(f"http://127.0.0.1:{NGINX_PORT}/health", 2, 16, a.duration)
            log(f"round {rnd + 1}: nginx {w['rps']:.0f} req/s")
            best_nginx = max(best_nginx, w["rps"])
            if oci is not None:
                w = wrk(f"{oci.url}/health", 2, 16, a.duration)
                log(f"round {rnd + 1}: ocimand {w['rps']:.0f} req/s")
                best_oci = max(best_oci or 0.0, w["rps"])
                bad = [f"{k}={w[k]}" for k in ("non2xx", "socket_errors") if k in w]
                if bad:
                    note = "ocimand wrk: " + ", ".join(bad)
                extra["ocimand_latency_avg"] = w.get("latency_avg")
    finally:
        nginx.stop()
    ratio = best_oci / best_nginx if best_oci else None
    ctx.add("health", "GET /health req/s (wrk -t2 -c16)", best_oci, best_nginx, ratio, "≥ 0.85×",
            ok=(ratio >= 0.85) if ratio is not None else None, unit="req/s", note=note, **extra)


@section("backend_latency")
def section_backend_latency(ctx):
    """p50 of GET /backend on ocimand vs GET /_ping on the engine socket (keep-alive); added ms."""
    n, warm = ctx.args.latency_n, ctx.args.latency_warmup
    for kind in ctx.require_engines():
        eng = engine_client(kind)
        base = p50_ms(lambda: ok200(eng.request("GET", "/_ping"), "_ping"), n, warm)
        eng.close()

        def measure():
            o = ctx.ociman(kind)
            c = o.client()
            require_route(c.request("GET", "/backend"), "GET /backend")
            v = p50_ms(lambda: ok200(c.request("GET", "/backend"), "GET /backend"), n, warm)
            c.close()
            return v

        oci, note = ociman_side(ctx, measure)
        ctx.add("backend_latency", f"GET /backend p50 vs /_ping ({kind})", oci, base,
                fmt_added(oci - base) if oci is not None else None, "info", ok=None, unit="ms",
                note=note, status=INFO if oci is not None else SKIP)


@section("inspect_list")
def section_inspect_list(ctx):
    """Container inspect / list p50: ocimand vs the engine socket (≤ +0.25 ms) and vs the CLI (≥ 20×)."""
    n, warm = ctx.args.latency_n // 2, ctx.args.latency_warmup // 2
    cli_n = ctx.args.cli_n
    for kind in ctx.require_engines():
        cid = engine_run_detached(kind, ["sleep", "3600"])
        try:
            eng = engine_client(kind)
            flt = q(json.dumps({"label": [f"{BENCH_LABEL_KEY}=1"]}))
            variants_inspect = {"compat": f"{COMPAT}/containers/{cid}/json"}
            variants_list = {"compat": f"{COMPAT}/containers/json?all=1&filters={flt}"}
            if kind == "podman":
                variants_inspect["libpod"] = f"{LIBPOD}/containers/{cid}/json"
                variants_list["libpod"] = f"{LIBPOD}/containers/json?all=true&filters={flt}"
            base_i = {k: p50_ms(lambda p=p: ok200(eng.request("GET", p)), n, warm)
                      for k, p in variants_inspect.items()}
            base_l = {k: p50_ms(lambda p=p: ok200(eng.request("GET", p)), n, warm)
                      for k, p in variants_list.items()}
            eng.close()
            cli = ENGINE_CLI[kind]
            cli_i = statistics.median(time_cmd_ms([cli, "inspect", cid], cli_n))
            cli_l = statistics.median(time_cmd_ms(
                [cli, "ps", "-a", "--no-trunc", "--filter", f"label={BENCH_LABEL_KEY}=1"], cli_n))

            def measure():
                o = ctx.ociman(kind)
                c = o.client()
                r = require_route(c.request("GET", f"/containers/{cid}"), "GET /containers/{id}")
                ok200(r, "GET /containers/{id}")
                vi = p50_ms(lambda: ok200(c.request("GET", f"/containers/{cid}")), n, warm)
                lp = "/containers?" + urllib.parse.urlencode({"label": f"{BENCH_LABEL_KEY}=1"})
                r = ok200(require_route(c.request("GET", lp), "GET /containers"), "GET /containers")
                if not any(x.get("id", "").startswith(cid[:12]) for x in r.json()):
                    raise RuntimeError(f"GET {lp} does not list {cid[:12]}")
                vl = p50_ms(lambda: ok200(c.request("GET", lp)), n, warm)
                c.close()
                return vi, vl

            res, note = ociman_side(ctx, measure)
            oi, ol = res if res else (None, None)
            for what, o_ms, bases, cli_ms in (("inspect", oi, base_i, cli_i), ("list", ol, base_l, cli_l)):
                best = min(bases, key=bases.get)
                bnote = ", ".join(f"{k} {v:.3f} ms" for k, v in bases.items())
                added = o_ms - bases[best] if o_ms is not None else None
                ctx.add("inspect_list", f"{what} p50 vs socket ({kind})", o_ms, bases[best],
                        fmt_added(added) if added is not None else None, "≤ +0.25 ms",
                        ok=(added <= 0.25) if added is not None else None, unit="ms",
                        note=join_notes(note, f"socket: {bnote}"))
                speed = cli_ms / o_ms if o_ms else None
                ctx.add("inspect_list", f"{what} p50 vs `{cli}` CLI ({kind})", o_ms, cli_ms,
                        f"{speed:.1f}× faster" if speed else None, "≥ 20× faster",
                        ok=(speed >= 20) if speed else None, unit="ms", note=note)
        finally:
            engine_remove(kind, cid)


def direct_exec(eng: Client, kind: str, cid: str):
    """The engine API sequence for `exec true`: create -> start (attached, until exit) -> inspect."""
    r = ok200(eng.json("POST", f"{COMPAT}/containers/{cid}/exec",
                       {"Cmd": ["true"], "AttachStdout": True, "AttachStderr": True}),
              "exec create", (201,))
    eid = r.json()["Id"]
    ok200(eng.json("POST", f"{COMPAT}/exec/{eid}/start", {"Detach": False, "Tty": False}),
          "exec start")
    r = ok200(eng.json("GET", f"{COMPAT}/exec/{eid}/json"), "exec inspect")
    if r.json().get("ExitCode") != 0:
        raise RuntimeError(f"exec true exit code {r.json().get('ExitCode')}")


@section("exec")
def section_exec(ctx):
    """Exec round trip of `true`: ocimand vs the direct engine sequence (target ≤ 1.1×)."""
    n, warm = ctx.args.exec_n, 3
    for kind in ctx.require_engines():
        cid = engine_run_detached(kind, ["sleep", "3600"])
        try:
            eng = engine_client(kind)
            base_s = samples_ms(lambda: direct_exec(eng, kind, cid), n, warm)
            eng.close()

            def measure():
                o = ctx.ociman(kind)
                c = o.client()
                body = {"command": ["true"]}
                r = require_route(c.json("POST", f"/containers/{cid}/exec", body), "POST /containers/{id}/exec")
                ok200(r, "POST /containers/{id}/exec")
                if r.json().get("exit_code") != 0:
                    raise RuntimeError(f"ocimand exec true: {r.body[:200]!r}")
                s = samples_ms(lambda: ok200(c.json("POST", f"/containers/{cid}/exec", body)), n, warm)
                c.close()
                return s

            oci_s, note = ociman_side(ctx, measure)
            base = statistics.median(base_s)
            oci = statistics.median(oci_s) if oci_s else None
            ratio = oci / base if oci else None
            ctx.add("exec", f"exec `true` round trip p50 ({kind})", oci, base, ratio, "≤ 1.1×",
                    ok=(ratio <= 1.1) if ratio else None, unit="ms",
                    note=join_notes(note, (f"p90 ociman {pct(oci_s, 90):.1f} ms, " if oci_s else "") + f"p90 direct {pct(base_s, 90):.1f} ms"))
        finally:
            engine_remove(kind, cid)


def direct_run_exit_remove(eng: Client, kind: str, created: list):
    r = ok200(eng.json("POST", f"{COMPAT}/containers/create",
                       {"Image": BASE_IMAGE, "Cmd": ["true"], "Labels": BENCH_LABEL}),
              "create", (201,))
    cid = r.json()["Id"]
    created.append(cid)
    ok200(eng.request("POST", f"{COMPAT}/containers/{cid}/start"), "start", (204,))
    if kind == "podman":
        # libpod wait polls at the given interval; the compat /wait polls every 250 ms
        ok200(eng.request("POST", f"{LIBPOD}/containers/{cid}/wait?condition=exited&interval=10ms"), "wait")
    else:
        ok200(eng.request("POST", f"{COMPAT}/containers/{cid}/wait"), "wait")
    ok200(eng.request("DELETE", f"{COMPAT}/containers/{cid}"), "remove", (204,))
    created.remove(cid)


@section("run_remove")
def section_run_remove(ctx):
    """run `true` -> wait for exit -> remove: ocimand vs the best direct API sequence (≤ 1.1×)."""
    n, warm = ctx.args.run_n, 2
    for kind in ctx.require_engines():
        created: list[str] = []
        try:
            eng = engine_client(kind)
            base_s = samples_ms(lambda: direct_run_exit_remove(eng, kind, created), n, warm)
            eng.close()

            def one(c):
                r = ok200(require_route(c.json("POST", "/containers", {
                    "image": BASE_IMAGE, "command": ["true"], "labels": BENCH_LABEL}), "POST /containers"),
                    "POST /containers", (201,))
                cid = r.json()["id"]
                created.append(cid)
                r = ok200(c.request("POST", f"/containers/{cid}/wait"), "POST /containers/{id}/wait")
                ok200(c.request("DELETE", f"/containers/{cid}"), "DELETE /containers/{id}", (204,))
                created.remove(cid)

            def measure():
                o = ctx.ociman(kind)
                c = o.client()
                one(c)   # route check
                s = samples_ms(lambda: one(c), n, warm)
                c.close()
                return s

            oci_s, note = ociman_side(ctx, measure)
            base = statistics.median(base_s)
            oci = statistics.median(oci_s) if oci_s else None
            ratio = oci / base if oci else None
            ctx.add("run_remove", f"run→exit→remove p50 ({kind})", oci, base, ratio, "≤ 1.1×",
                    ok=(ratio <= 1.1) if ratio else None, unit="ms",
                    note=join_notes(note, "direct uses libpod wait (interval=10ms)" if kind == "podman" else ""))
        finally:
            for cid in created:
                engine_remove(kind, cid)


def _hash_via_ociman(ctx, path, n, expect):
    o = ctx.ociman(ctx.primary)
    c = o.client()
    body = {"context": {"path": path}}
    r = ok200(require_route(c.json("POST", "/hash", body), "POST /hash"), "POST /hash")
    got = r.json().get("tag")
    if got != expect:
        raise RuntimeError(f"/hash digest mismatch: ocimand {got}, reference {expect}")
    s = samples_ms(lambda: ok200(c.json("POST", "/hash", body)), n, 0)
    c.close()
    return min(s)


@section("hash_big")
def section_hash_big(ctx):
    """/hash of a 1 GiB single-file context vs `openssl dgst -sha256` (throughput ≥ 0.75×)."""
    if not have("openssl"):
        raise Skip("openssl not installed")
    d = ctx.big_file_dir()
    f = os.path.join(d, "data.bin")
    size = os.path.getsize(f)
    base_ms = min(time_cmd_ms(["openssl", "dgst", "-sha256", f], 3, warmup=1))
    base_gbs = size / (base_ms / 1000) / 1e9
    expect = None

    def measure():
        nonlocal expect
        if ctx.primary is None:
            raise Skip("no engine for ocimand to start with")
        expect = expect or reference_hash_dir(d)
        return _hash_via_ociman(ctx, d, 3, expect)

    oci_ms, note = ociman_side(ctx, measure)
    oci_gbs = size / (oci_ms / 1000) / 1e9 if oci_ms else None
    ratio = oci_gbs / base_gbs if oci_gbs else None
    ctx.add("hash_big", f"/hash {size // MiB} MiB file throughput", oci_gbs, base_gbs, ratio, "≥ 0.75×",
            ok=(ratio >= 0.75) if ratio else None, unit="GB/s",
            note=join_notes(note, (f"best of 3: ocimand {oci_ms:.0f} ms, " if oci_ms else "best of 3: ") + f"openssl {base_ms:.0f} ms"))


@section("hash_many")
def section_hash_many(ctx):
    """/hash of 10 000 × 4 KiB files vs `tar -cf - DIR | openssl dgst -sha256` (time ≤ 1.3×)."""
    if not have("openssl"):
        raise Skip("openssl not installed")
    d = ctx.many_files_dir()
    base_ms = min(time_cmd_ms("tar -cf - . | openssl dgst -sha256", 5, warmup=1, shell=True, cwd=d))

    def measure():
        if ctx.primary is None:
            raise Skip("no engine for ocimand to start with")
        return _hash_via_ociman(ctx, d, 5, reference_hash_dir(d))

    oci_ms, note = ociman_side(ctx, measure)
    ratio = oci_ms / base_ms if oci_ms else None
    ctx.add("hash_many", f"/hash {ctx.args.many_files} × 4 KiB files time", oci_ms, base_ms, ratio,
            "≤ 1.3×", ok=(ratio <= 1.3) if ratio else None, unit="ms", note=note or "best of 5")


def _tar_bytes(d: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name in sorted(os.listdir(d)):
            t.add(os.path.join(d, name), arcname=name)
    return buf.getvalue()


def _first_line_ms(resp, is_log, t0) -> tuple[float | None, list]:
    """Reads an ndjson-ish stream; returns (ms to the first line that is_log accepts, all objects)."""
    first = None
    objs = []
    buf = b""
    while True:
        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            objs.append(obj)
            if first is None and is_log(obj):
                first = (time.perf_counter_ns() - t0) / 1e6
    if buf.strip():
        try:
            objs.append(json.loads(buf))
        except ValueError:
            pass
    return first, objs


@section("build_first_line")
def section_build_first_line(ctx):
    """Build stream: time to the first log line, ocimand vs the engine's /build (≤ +20 ms)."""
    n = ctx.args.build_n
    d = ctx.build_dir()
    ctx_tar = _tar_bytes(d)
    for kind in ctx.require_engines():
        eng = engine_client(kind)
        tags = [f"localhost/ociman-bench:direct-{kind}", f"localhost/ociman-bench:ociman-{kind}"]
        try:
            def direct():
                params = urllib.parse.urlencode({"t": tags[0], "nocache": "1", "rm": "1", "forcerm": "1",
                                                 "labels": json.dumps(BENCH_LABEL)})
                t0 = time.perf_counter_ns()
                resp = eng.stream("POST", f"{COMPAT}/build?{params}", body=ctx_tar,
                                  headers={"Content-Type": "application/x-tar"})
                if resp.status != 200:
                    raise RuntimeError(f"{kind} /build: HTTP {resp.status} {resp.read()[:300]!r}")
                first, objs = _first_line_ms(resp, lambda o: "stream" in o, t0)
                resp._bench_conn.close()
                errs = [o for o in objs if "error" in o or "errorDetail" in o]
                if errs or first is None:
                    raise RuntimeError(f"{kind} /build failed: {errs or objs[-3:]}")
                return first

            base_s = [direct() for _ in range(n + 1)][1:]

            def measure():
                o = ctx.ociman(kind)
                c = o.client()
                body = json.dumps({"context": {"path": d}, "tag": tags[1], "labels": BENCH_LABEL,
                                   "no_cache": True}).encode()

                def once():
                    t0 = time.perf_counter_ns()
                    resp = c.stream("POST", "/images/build", body=body,
                                    headers={"Content-Type": "application/json",
                                             "Accept": "application/x-ndjson"})
                    if resp.status in (404, 405, 501):
                        raise Skip(f"ocimand POST /images/build answered {resp.status} (route not implemented yet?)")
                    if resp.status != 200:
                        raise RuntimeError(f"ocimand /images/build: HTTP {resp.status} {resp.read()[:300]!r}")
                    first, objs = _first_line_ms(resp, lambda o: o.get("type") == "log", t0)
                    resp._bench_conn.close()
                    if not objs or objs[-1].get("type") != "result" or first is None:
                        raise RuntimeError(f"ocimand build did not end in a result: {objs[-3:]}")
                    return first

                return [once() for _ in range(n + 1)][1:]

            oci_s, note = ociman_side(ctx, measure)
            base = statistics.median(base_s)
            oci = statistics.median(oci_s) if oci_s else None
            added = oci - base if oci is not None else None
            ctx.add("build_first_line", f"build: first log line ({kind})", oci, base,
                    fmt_added(added) if added is not None else None, "≤ +20 ms",
                    ok=(added <= 20) if added is not None else None, unit="ms", note=note)
        finally:
            for t in tags:
                try:
                    eng.request("DELETE", f"{COMPAT}/images/{q(t)}?force=1")
                except OSError:
                    pass
            eng.close()
            sweep_bench_objects(kind)   # images untagged by the repeated no-cache builds


class RssSampler(threading.Thread):
    def __init__(self, pid, interval=0.05):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            try:
                self.peak = max(self.peak, rss_kb(self.pid))
            except (OSError, RuntimeError):
                return
            self.stop_ev.wait(self.interval)

    def finish(self):
        self.stop_ev.set()
        self.join()
        return self.peak


def _tar_stream_of_file(path: str, arcname: str, chunk=MiB):
    size = os.path.getsize(path)
    info = tarfile.TarInfo(arcname)
    info.size = size
    info.mode = 0o644
    info.mtime = int(time.time())
    header = info.tobuf(format=tarfile.USTAR_FORMAT)
    pad = (512 - size % 512) % 512
    total = len(header) + size + pad + 1024

    def gen():
        yield header
        with open(path, "rb") as f:
            while (b := f.read(chunk)):
                yield b
        yield b"\0" * (pad + 1024)

    return total, gen()


@section("rss")
def section_rss(ctx):
    """ocimand RSS: idle (≤ 30 MB) and its growth during a 1 GiB tar upload (≤ 64 MB)."""
    if ctx.primary is None:
        raise Skip("no engine for ocimand to start with")
    try:
        o = ctx.ociman(ctx.primary, fresh=True)
    except Skip as e:
        for m, t in (("RSS idle", "≤ 30 MB"), (f"RSS growth, {ctx.args.big_mib} MiB tar upload to /hash", "≤ 64 MB")):
            ctx.add("rss", m, None, None, None, t, ok=None, unit="MB", note=str(e).splitlines()[0])
        return
    time.sleep(1.0)
    idle = rss_kb(o.pid) / 1024
    ctx.add("rss", "RSS idle", idle, None, None, "≤ 30 MB", ok=idle <= 30, unit="MB")


    # 1 GiB tar body streamed to POST /hash/tar: growth of RSS over the upload
    def upload():
        c = o.client()
        small = _tar_bytes(ctx.build_dir())
        r = c.request("POST", "/hash/tar", body=small, headers={"Content-Type": "application/x-tar"})
        require_route(r, "POST /hash (tar body)")
        if r.status == 415:
            raise Skip("POST /hash does not take a tar body yet (415)")
        ok200(r, "POST /hash (tar body)")
        c.close()
        big = ctx.big_file_dir()
        total, gen = _tar_stream_of_file(os.path.join(big, "data.bin"), "data.bin")
        time.sleep(0.5)
        before = rss_kb(o.pid) / 1024
        s = RssSampler(o.pid)
        s.start()
        try:
            conn = connect(o.endpoint, timeout=600)
            conn.request("POST", "/hash/tar", body=gen,
                         headers={"Content-Type": "application/x-tar", "Content-Length": str(total)})
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
        finally:
            pk = s.finish() / 1024
        if resp.status != 200:
            raise RuntimeError(f"POST /hash 1 GiB tar: HTTP {resp.status} {data[:300]!r}")
        return pk - before, before, pk

    res, note = ociman_side(ctx, upload)
    growth = res[0] if res else None
    ctx.add("rss", f"RSS growth, {ctx.args.big_mib} MiB tar upload to /hash", growth, res[1] if res else None, None, "≤ 64 MB",
            ok=(growth <= 64) if growth is not None else None, unit="MB",
            note=note or f"baseline = RSS before the upload; peak {res[2]:.1f} MB")


def _stalled_reader(port: int, request: bytes) -> socket.socket:
    """Sends a request, reads its response head, then stops reading, with a receive buffer as
    small as the kernel allows: only ocimand (or the engine behind it) can hold what is sent."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((OCIMAN_HOST, port))
    s.sendall(request)
    head = b""
    while b"\r\n\r\n" not in head:
        part = s.recv(1)
        if not part:
            raise RuntimeError("closed before the response head")
        head += part
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"stalled request answered {head[:60]!r}")
    return s


def _http_request(method: str, target: str, body: bytes = b"", accept: str | None = None) -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: {OCIMAN_HOST}\r\n"
    if body:
        head += "Content-Type: application/json\r\n"
    if accept:
        head += f"Accept: {accept}\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@section("backpressure")
def section_backpressure(ctx):
    """Stalled readers and large bodies (issue 10): a stalled streamed exec of `yes` and a stalled
    log follow for --stall-seconds (RSS growth ≤ 16 MB each), 50 stalled execs at once (≤ 100 MB),
    20 concurrent 30 MB exec bodies (peak ≤ 200 MB) and the same to a missing container (404,
    ≤ 100 MB). Baseline: the RSS of the same ocimand just before."""
    stall = ctx.args.stall_seconds
    stdin_body = json.dumps({"command": ["wc", "-c"], "stdin": "0123456789abcde\n" * (30_000_000 // 16)}).encode()
    for kind in ctx.require_engines():
        exec_cid = engine_run_detached(kind, ["sleep", "3600"])
        logs_cid = engine_run_detached(kind, ["sh", "-c", "yes ociman-logs | head -c 200000000; exec sleep 3600"])
        try:
            o = ctx.ociman(kind, fresh=True)
            port = int(o.endpoint.rsplit(":", 1)[1])

            def stalled_growth(request: bytes) -> tuple[float, float]:
                time.sleep(0.5)
                before = rss_kb(o.pid) / 1024
                sampler = RssSampler(o.pid, interval=0.2)
                sampler.start()
                reader = _stalled_reader(port, request)
                try:
                    time.sleep(stall)
                finally:
                    peak = sampler.finish() / 1024
                    reader.close()
                return peak - before, before

            exec_request = _http_request("POST", f"/containers/{exec_cid}/exec",
                                         json.dumps({"command": ["yes"]}).encode(), "application/x-ndjson")
            growth, before = stalled_growth(exec_request)
            ctx.add("backpressure", f"RSS growth, stalled exec of yes for {stall} s, {kind}", growth, before, None,
                    "≤ 16 MB", ok=growth <= 16, unit="MB", note="baseline = RSS before the stall")
            growth, before = stalled_growth(_http_request("GET", f"/containers/{logs_cid}/logs?follow=true"))
            ctx.add("backpressure", f"RSS growth, stalled log follow for {stall} s, {kind}", growth, before, None,
                    "≤ 16 MB", ok=growth <= 16, unit="MB", note="the container prints 200 MB as fast as it can")

            sampler = RssSampler(o.pid, interval=0.2)
            sampler.start()
            readers = [_stalled_reader(port, exec_request) for _ in range(50)]
            try:
                time.sleep(min(stall, 10))
            finally:
                peak = sampler.finish() / 1024
                for r in readers:
                    r.close()
            ctx.add("backpressure", f"peak RSS, 50 stalled execs of yes, {kind}", peak, None, None, "≤ 100 MB",
                    ok=peak <= 100, unit="MB")

            # A fresh ocimand, the missing container first: RSS a process has reached does not
            # fall back, so neither the stalled streams above nor the larger run may count here.
            o = ctx.ociman(kind, fresh=True)
            for target, expected, limit in (("ociman-bench-missing", 404, 100), (exec_cid, 200, 200)):
                sampler = RssSampler(o.pid, interval=0.05)
                sampler.start()
                statuses = []

                def send():
                    conn = connect(o.endpoint, timeout=600)
                    conn.request("POST", f"/containers/{target}/exec", body=stdin_body,
                                 headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    resp.read()
                    statuses.append(resp.status)
                    conn.close()

                threads = [threading.Thread(target=send) for _ in range(20)]
                started = time.monotonic()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                took = time.monotonic() - started
                peak = sampler.finish() / 1024
                what = "a running container" if expected == 200 else "a missing container (404)"
                ctx.add("backpressure", f"peak RSS, 20 concurrent 30 MB exec bodies to {what}, {kind}", peak, None,
                        None, f"≤ {limit} MB", ok=peak <= limit and statuses == [expected] * 20, unit="MB",
                        note=f"{took:.1f} s; statuses {sorted(set(statuses))}")
        finally:
            engine_remove(kind, exec_cid)
            engine_remove(kind, logs_cid)


# Each wrk connection walks its own rotation of the three routes, so all of them run concurrently.
_LOAD_SCRIPT = """
local paths = {%s}
local next_index = 0
request = function()
    next_index = next_index %% #paths + 1
    return wrk.format("GET", paths[next_index])
end
"""


@section("load")
def section_load(ctx):
    """256 keep-alive connections of mixed inspect/list/health for --load-duration s (default 30):
    no errors, p99 reported, peak RSS ≤ 100 MB."""
    if ctx.primary is None:
        raise Skip("no engine for ocimand to start with")
    kind, seconds = ctx.primary, ctx.args.load_duration
    cid = engine_run_detached(kind, ["sleep", "3600"])
    try:
        # wrk opens all 256 connections from one address: past the per-client cap (default 64)
        # they would be refused by design, so this ocimand allows that many.
        o = ctx.ociman(kind, fresh=True, extra_args=["--max-connections-per-client", "256"])
        c = o.client()
        ok200(c.request("GET", f"/containers/{cid}"), "GET /containers/{id}")
        c.close()
        paths = ["/health", f"/containers/{cid}",
                 "/containers?" + urllib.parse.urlencode({"label": f"{BENCH_LABEL_KEY}=1"})]
        script = os.path.join(ctx.tmp.sub("load"), "mixed.lua")
        with open(script, "w") as f:
            f.write(_LOAD_SCRIPT % ", ".join(json.dumps(p) for p in paths))
        sampler = RssSampler(o.pid)
        sampler.start()
        try:
            w = wrk(f"{o.url}/health", 2, 256, seconds, script=script)
        finally:
            peak = sampler.finish() / 1024
    finally:
        engine_remove(kind, cid)
    errors = [f"{k}={w[k]}" for k in ("non2xx", "socket_errors") if k in w]
    shape = f"wrk -t2 -c256 -d{seconds}s, {kind}: {w['rps']:.0f} req/s, --max-connections-per-client 256"
    ctx.add("load", "errors under 256 connections (mixed)", len(errors), None, None, "0",
            ok=not errors, unit="", note=join_notes(shape, ", ".join(errors)))
    ctx.add("load", "p99 under 256 connections (mixed)", w.get("p99"), None, None, "info", ok=None,
            unit="ms", note=f"p50 {w.get('p50', float('nan')):.2f} ms, p90 {w.get('p90', float('nan')):.2f} ms",
            status=INFO)
    ctx.add("load", "peak RSS under 256 connections (mixed)", peak, None, None, "≤ 100 MB",
            ok=peak <= 100, unit="MB", note=shape, rps=w["rps"])


# ====================================================================== main

# ---------------------------------------------------------------- warm pools, readiness, events

PG_IMAGE = "localhost/ociman-postgres:15"
PG_READY_LINE = "database system is ready to accept connections"


def pg_select_one(port: int, timeout: float = 10.0) -> None:
    """`select 1` over PostgreSQL's wire protocol (trust auth), the smallest real client."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        params = b"user\0postgres\0database\0postgres\0\0"
        startup = (196608).to_bytes(4, "big") + params
        s.sendall((len(startup) + 4).to_bytes(4, "big") + startup)
        _pg_read_until_ready(s)
        query = b"select 1\0"
        s.sendall(b"Q" + (len(query) + 4).to_bytes(4, "big") + query)
        rows = [m for m in _pg_read_until_ready(s) if m[0] == b"D"]
        if len(rows) != 1 or not rows[0][1].endswith(b"1"):
            raise RuntimeError(f"select 1 answered {rows!r}")
        s.sendall(b"X" + (4).to_bytes(4, "big"))
    finally:
        s.close()


def _pg_read_until_ready(s) -> list:
    buf, messages = b"", []
    while True:
        while len(buf) >= 5:
            kind, length = buf[:1], int.from_bytes(buf[1:5], "big")
            if len(buf) < 1 + length:
                break
            body, buf = buf[5:1 + length], buf[1 + length:]
            if kind == b"E":
                raise RuntimeError(f"postgres error: {body!r}")
            if kind == b"R" and int.from_bytes(body[:4], "big") != 0:
                raise RuntimeError("postgres asked for a password (the image should trust local clients)")
            messages.append((kind, body))
            if kind == b"Z":
                return messages
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("postgres closed the connection")
        buf += chunk


def pg_run_spec() -> dict:
    # Ready means a query answers, as a test suite needs it: the exec condition's psql is also the
    # server's first connection, which pays for building its catalog caches (10–40 ms here).
    return {
        "image": PG_IMAGE, "labels": BENCH_LABEL,
        "publish": [{"container_port": 5432, "host_ip": "127.0.0.1"}],
        "wait": {"timeout_seconds": 60, "tcp_port": 5432, "log": {"pattern": PG_READY_LINE},
                 "exec": {"command": ["psql", "-U", "postgres", "-Atc", "select 1"]}},
    }


# The pool's warm-up: the wait's psql is the server's first connection, and the second one still
# builds caches (about 12, 5, then 4 ms here), so the members' claimers get the third.
PG_WARM_UP = ["psql", "-U", "postgres", "-Atc", "select 1"]


def _host_port(container: dict) -> int:
    return container["ports"][0]["host_port"]


def _wait_pool_ready(c, name: str, count: int, limit: float = 600.0) -> float:
    t0 = time.monotonic()
    while True:
        r = ok200(c.request("GET", f"/pools/{name}"), "GET /pools/{name}")
        if r.json()["ready"] >= count:
            return time.monotonic() - t0
        if time.monotonic() - t0 > limit:
            raise RuntimeError(f"pool {name} has {r.json()} after {limit:.0f} s")
        time.sleep(0.2)


@section("pools")
def section_pools(ctx):
    """warm pools of PostgreSQL 15: claim→select 1 vs cold POST /containers (≥ 50×), 100 claim/query/release vs cold (≥ 20×)."""
    cold_n, claim_n, loop_n = ctx.args.pool_cold_n, ctx.args.pool_claim_n, ctx.args.pool_iterations
    for kind in ctx.require_engines():
        o = ctx.ociman(kind)
        c = o.client()
        name = f"bench-{kind}-{os.getpid()}"
        created: list[str] = []
        try:
            # Cold: the same run specification and wait, through POST /containers.
            ready_ms, total_ms = [], []
            for _ in range(cold_n):
                t0 = time.perf_counter()
                r = ok200(c.json("POST", "/containers", pg_run_spec()), "POST /containers", (201,))
                created.append(r.json()["id"])
                pg_select_one(_host_port(r.json()))
                ready_ms.append((time.perf_counter() - t0) * 1000)
                ok200(c.request("DELETE", f"/containers/{created[-1]}?force=true"), "DELETE", (204,))
                created.pop()
                total_ms.append((time.perf_counter() - t0) * 1000)
            cold = statistics.median(ready_ms)

            # A suite warms what it will claim; nothing boots while it runs.
            spec = {"run": pg_run_spec(), "size": claim_n + loop_n, "max": claim_n + loop_n, "boot_concurrency": 4,
                    "warm_up": {"command": PG_WARM_UP}}
            ok200(c.json("PUT", f"/pools/{name}", spec), "PUT /pools/{name}")
            warm_s = _wait_pool_ready(c, name, claim_n + loop_n)
            spec["size"] = 0
            ok200(c.json("PUT", f"/pools/{name}", spec), "PUT /pools/{name}")
            # Let the boots' after-effects pass: Podman cleans up each exec (a readiness wait
            # runs one or two per member) exit_command_delay = 10 s after it ended.
            time.sleep(12)

            def iteration():
                r = ok200(c.json("POST", f"/pools/{name}/claim", {}), "claim", (201,))
                pg_select_one(_host_port(r.json()))
                return r.json()["id"]

            claim_ms = []
            for _ in range(claim_n):
                t0 = time.perf_counter()
                member = iteration()
                claim_ms.append((time.perf_counter() - t0) * 1000)
                ok200(c.request("DELETE", f"/pools/{name}/members/{member}"), "release", (202,))
            claim = statistics.median(claim_ms)
            ratio = cold / claim
            ctx.add("pools", f"claim→select 1 p50 ({kind})", claim, cold, ratio, "≥ 50× faster",
                    ok=ratio >= 50, unit="ms",
                    note=f"baseline: cold POST /containers with the same wait → select 1, p50 of {cold_n}; "
                         f"claim p50 of {claim_n}, p90 {pct(claim_ms, 90):.1f} ms; the pool's members ran a "
                         f"psql warm-up after their wait")

            t0 = time.perf_counter()
            for _ in range(loop_n):
                member = iteration()
                ok200(c.request("DELETE", f"/pools/{name}/members/{member}"), "release", (202,))
            loop_total = (time.perf_counter() - t0) * 1000
            cold_total = statistics.mean(total_ms) * loop_n
            ratio = cold_total / loop_total
            ctx.add("pools", f"{loop_n}× claim/select 1/release total ({kind})", loop_total, cold_total, ratio,
                    "≥ 20× faster", ok=ratio >= 20, unit="ms",
                    note=f"baseline: {loop_n} × the mean of {cold_n} cold run/select 1/remove iterations; "
                         f"the pool was warmed beforehand ({claim_n + loop_n} members in {warm_s:.0f} s) "
                         f"and booted nothing while measured")
        finally:
            c.request("DELETE", f"/pools/{name}")
            for cid in created:
                engine_remove(kind, cid)
            # Released members are removed in the background: wait for them, so that the next
            # engine's PostgreSQL containers do not boot next to these (all run as the same uid,
            # under one nproc limit).
            deadline = time.monotonic() + 180
            members = []
            while time.monotonic() < deadline:
                r = c.request("GET", "/containers?" + urllib.parse.urlencode({"label": f"ociman.pool={name}"}))
                members = [m["id"] for m in r.json()] if r.status == 200 else []
                if not members:
                    break
                time.sleep(0.5)
            for cid in members:
                engine_remove(kind, cid)
            c.close()


# The container's own wall-clock time (µs, the host's clock: containers share the kernel's) when it
# became ready, printed on its ready line: Podman's log timestamps have whole seconds only.
READY_LINE = ("echo ready $(adjtimex | awk '/tv_sec/ {s = $2} /tv_usec/ {u = $2} "
              "END {printf \"%d.%06d\", s, u}')")


def _readiness_lag_ms(c, run: dict) -> float:
    """POST /containers with `run`, then: wall time of the 201 minus the time on its `ready` line."""
    r = ok200(c.json("POST", "/containers", run), "POST /containers", (201,))
    answered = time.time()
    cid = r.json()["id"]
    try:
        # A TCP wait can answer before the line is out: the server listens before it is printed.
        deadline = time.monotonic() + 5
        while True:
            logs = ok200(c.request("GET", f"/containers/{cid}/logs"), "logs")
            lines = [json.loads(x) for x in logs.body.decode().splitlines() if x.strip()]
            ready = [float(x["line"].split()[1]) for x in lines if x.get("line", "").startswith("ready ")]
            if ready:
                return (answered - ready[0]) * 1000
            if time.monotonic() > deadline:
                raise RuntimeError(f"no ready line in {lines!r}")
            time.sleep(0.01)
    finally:
        c.request("DELETE", f"/containers/{cid}?force=true")


@section("readiness")
def section_readiness(ctx):
    """readiness lag (container ready → 201) of TCP and exec waits (≤ 5 ms), a log wait as baseline."""
    n = ctx.args.readiness_n
    tcp_cmd = f"sleep 0.3; httpd -p 8080; {READY_LINE}; exec sleep 3600"
    exec_cmd = f"sleep 0.3; touch /tmp/ready; {READY_LINE}; exec sleep 3600"
    base = {"image": BASE_IMAGE, "labels": BENCH_LABEL}
    runs = {
        "log": dict(base, command=["sh", "-c", tcp_cmd], wait={"timeout_seconds": 10, "log": {"pattern": "^ready "}}),
        "tcp": dict(base, command=["sh", "-c", tcp_cmd],
                    publish=[{"container_port": 8080, "host_ip": "127.0.0.1"}],
                    wait={"timeout_seconds": 10, "tcp_port": 8080}),
        "exec": dict(base, command=["sh", "-c", exec_cmd],
                     wait={"timeout_seconds": 10, "exec": {"command": ["test", "-f", "/tmp/ready"]}}),
    }
    for kind in ctx.require_engines():
        o = ctx.ociman(kind)
        c = o.client()
        try:
            lags = {}
            for _ in range(n):   # interleaved, so load changes hit every condition alike
                for cond, run in runs.items():
                    lags.setdefault(cond, []).append(_readiness_lag_ms(c, run))
            baseline = statistics.median(lags["log"])
            for cond in ("tcp", "exec"):
                p50 = statistics.median(lags[cond])
                ctx.add("readiness", f"readiness lag p50, {cond} wait ({kind})", p50, baseline,
                        p50 / baseline if baseline > 0 else None, "≤ 5 ms", ok=p50 <= 5, unit="ms",
                        note=f"baseline: the same container with a log wait; p90 {pct(lags[cond], 90):.1f} ms; "
                             f"container's clock when ready (printed on its ready line) → 201 received, {n} runs")
        finally:
            c.close()


def _first_line_at(resp, out: dict, key: str, match) -> None:
    """Reads ndjson-ish lines from `resp` until one satisfies `match`; records its arrival time."""
    try:
        while True:
            line = resp.readline()
            if not line:
                return
            if line.strip() and match(json.loads(line)):
                out[key] = time.monotonic()
                return
    except (OSError, ValueError):
        return


@section("events")
def section_events(ctx):
    """GET /events vs the engine's own /events: added delay for a container started with the CLI (≤ 5 ms)."""
    n = ctx.args.events_n
    for kind in ctx.require_engines():
        o = ctx.ociman(kind)
        c = o.client()
        eng = engine_client(kind)
        added = []
        try:
            now = time.time()
            require_route(c.request("GET", f"/events?since={now - 1:.3f}&until={now:.3f}"), "GET /events")
            for i in range(n):
                tag = f"ociman.bench.event={os.getpid()}-{i}"
                oci = c.stream("GET", f"/events?label={q(tag)}&type=start")
                filters = json.dumps({"label": [tag], "type": ["container"], "event": ["start"]})
                direct = eng.stream("GET", f"{COMPAT}/events?filters={q(filters)}")
                seen: dict = {}
                readers = [
                    threading.Thread(target=_first_line_at, args=(oci, seen, "ociman", lambda e: e.get("type") == "start")),
                    threading.Thread(target=_first_line_at, args=(direct, seen, "engine", lambda e: e.get("Action") == "start")),
                ]
                for t in readers:
                    t.start()
                time.sleep(0.2)
                subprocess.run([ENGINE_CLI[kind], "run", "-d", "--rm", "--label", tag, "--label", f"{BENCH_LABEL_KEY}=1",
                                BASE_IMAGE, "true"], check=True, stdout=subprocess.DEVNULL)
                for t in readers:
                    t.join(timeout=10)
                for resp in (oci, direct):
                    resp._bench_conn.sock.shutdown(socket.SHUT_RDWR)
                    resp._bench_conn.close()
                if "ociman" in seen and "engine" in seen:
                    added.append((seen["ociman"] - seen["engine"]) * 1000)
            if not added:
                raise RuntimeError("no start event arrived on both streams")
            p50 = statistics.median(added)
            ctx.add("events", f"/events start event after the engine's ({kind})", p50, 0.0, None, "≤ 5 ms",
                    ok=p50 <= 5, unit="ms",
                    note=f"arrival at the client, ociman stream minus the engine's own /events stream; "
                         f"p50 of {len(added)}/{n}, max {max(added):.2f} ms; container run with the {kind} CLI")
        finally:
            eng.close()
            c.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[],
                    help="run only this section (repeatable or comma-separated)")
    ap.add_argument("--skip", action="append", default=[], help="skip this section")
    ap.add_argument("--list", action="store_true", help="list sections and exit")
    ap.add_argument("--binary", default=os.environ.get("OCIMAN_BIN", DEFAULT_BINARY))
    ap.add_argument("--engines", default="docker,podman")
    ap.add_argument("--duration", type=int, default=10, help="wrk seconds (default 10)")
    ap.add_argument("--load-duration", type=int, default=30, help="seconds of the 256-connection load")
    ap.add_argument("--rounds", type=int, default=1, help="alternating wrk rounds in health (best kept)")
    ap.add_argument("--latency-n", type=int, default=2000)
    ap.add_argument("--latency-warmup", type=int, default=200)
    ap.add_argument("--cli-n", type=int, default=10)
    ap.add_argument("--exec-n", type=int, default=30)
    ap.add_argument("--run-n", type=int, default=15)
    ap.add_argument("--build-n", type=int, default=5)
    ap.add_argument("--big-mib", type=int, default=1024, help="size of the big /hash file (MiB)")
    ap.add_argument("--many-files", type=int, default=10000)
    ap.add_argument("--stall-seconds", type=int, default=60, help="how long the backpressure readers stall")
    ap.add_argument("--pool-cold-n", type=int, default=5, help="cold PostgreSQL boots measured in pools")
    ap.add_argument("--pool-claim-n", type=int, default=20, help="claims measured in pools")
    ap.add_argument("--pool-iterations", type=int, default=100, help="claim/query/release iterations in pools")
    ap.add_argument("--readiness-n", type=int, default=30, help="runs per wait condition in readiness")
    ap.add_argument("--events-n", type=int, default=10, help="containers started in events")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--strict", action="store_true", help="exit 1 when any row FAILs")
    ap.add_argument("--json", default=os.path.join(OUT_DIR, "results.json"))
    args = ap.parse_args(argv)

    if args.list:
        for name, fn in SECTIONS.items():
            print(f"{name:18} {(fn.__doc__ or '').strip().splitlines()[0]}")
        return 0
    args.engines = [e for e in args.engines.split(",") if e]
    for e in args.engines:
        if e not in ENGINE_SOCKETS:
            ap.error(f"unknown engine {e!r}")
    only = [s for o in args.only for s in o.split(",") if s]
    skip = [s for o in args.skip for s in o.split(",") if s]
    for s in only + skip:
        if s not in SECTIONS:
            ap.error(f"unknown section {s!r}; known: {', '.join(SECTIONS)}")
    names = [n for n in SECTIONS if (not only or n in only) and n not in skip]

    os.makedirs(OUT_DIR, exist_ok=True)
    ctx = Ctx(args)
    if not (os.path.isfile(args.binary) and os.access(args.binary, os.X_OK)):
        log(f"NOTE: {args.binary} does not exist: only the baselines are measured "
            f"(build it with `swift build -c release`)")
    started = time.time()
    try:
        for name in names:
            fn = SECTIONS[name]
            log(f"=== {name}: {(fn.__doc__ or '').strip().splitlines()[0]}")
            t0 = time.monotonic()
            try:
                fn(ctx)
                ctx.results.section_status(name, "ok")
            except Skip as e:
                log(f"{name} skipped: {e}")
                ctx.results.section_status(name, SKIP, str(e))
            except Exception as e:  # one broken section must not hide the others
                traceback.print_exc()
                ctx.results.section_status(name, "ERROR", f"{type(e).__name__}: {e}")
                ctx.results.add(name, f"{name} (error)", None, None, None, "", status="ERROR",
                                note=f"{type(e).__name__}: {str(e)[:300]}")
            log(f"=== {name} done in {time.monotonic() - t0:.1f} s")
    finally:
        ctx.pool.close()
        for e in ctx.engines:
            n = sweep_bench_objects(e)
            if n:
                log(f"removed {n} leftover ociman.bench=1 objects on {e}")
        ctx.tmp.cleanup()

    print()
    print(ctx.results.table())
    meta = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "host": platform.node(), "cpus": os.cpu_count(), "kernel": platform.release(),
        "binary": args.binary, "binary_present": os.path.isfile(args.binary),
        "engines": ctx.engines, "sections_run": names,
        "invocation": f"{args.binary} --listen 127.0.0.1:18420 --context-root <tmp> (OCIMAN_BACKEND=<engine>)",
    }
    ctx.results.write_json(args.json, meta)
    if not meta["binary_present"]:
        print(f"\nocimand was not measured: {args.binary} does not exist "
              f"(build it with `swift build -c release`, or run `make bench`)")
    print(f"\nresults: {os.path.relpath(args.json)}")
    failed = [r for r in ctx.results.rows if r["status"] in (FAIL, "ERROR")]
    return 1 if (args.strict and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
