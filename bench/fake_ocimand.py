#!/usr/bin/env python3
"""A stand-in for ocimand, for testing the bench harness itself -- NOT a benchmark subject.

    python3 bench/run.py --binary bench/fake_ocimand.py --only exec

It speaks just enough of the SPEC §8 routes the harness uses (health, backend, container
inspect/list/exec/run/wait/remove, /hash, /images/build) by proxying to the engine socket chosen by
OCIMAN_BACKEND, so every ocimand-side code path of bench/run.py can be exercised before the real
service exists. Its numbers mean nothing.
"""

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import COMPAT, ENGINE_SOCKETS, LIBPOD, Client, reference_hash_dir, _push, _push_tail  # noqa: E402

BACKEND = os.environ.get("OCIMAN_BACKEND", "docker")
SOCK = ENGINE_SOCKETS[BACKEND]


def container_view(j):
    st = j.get("State") or {}
    return {"id": j["Id"], "name": j.get("Name", "").lstrip("/"), "image": j.get("Config", {}).get("Image"),
            "state": {"status": st.get("Status"), "running": st.get("Running"), "exit_code": st.get("ExitCode")},
            "labels": j.get("Config", {}).get("Labels") or {}, "created": j.get("Created")}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def eng(self) -> Client:
        if not hasattr(self, "_eng"):
            self._eng = Client(SOCK)
        return self._eng

    def send(self, status, obj=None, ctype="application/json"):
        body = b"" if obj is None else (obj if isinstance(obj, bytes) else json.dumps(obj).encode())
        self.send_response(status)
        if obj is not None:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        parts = u.path.strip("/").split("/")
        if u.path == "/health":
            return self.send(200, {"status": "ok"})
        if u.path == "/backend":
            r = self.eng().request("GET", "/_ping")
            return self.send(200, {"kind": BACKEND, "api_version": r.headers.get("Api-Version")})
        if parts[0] == "containers" and len(parts) == 2:
            r = self.eng().request("GET", f"{COMPAT}/containers/{parts[1]}/json")
            return self.send(r.status, container_view(r.json()) if r.status == 200 else {"status": r.status})
        if u.path == "/containers":
            labels = urllib.parse.parse_qs(u.query).get("label", [])
            flt = urllib.parse.quote(json.dumps({"label": labels}))
            r = self.eng().request("GET", f"{COMPAT}/containers/json?all=1&filters={flt}")
            return self.send(200, [{"id": c["Id"], "labels": c.get("Labels")} for c in r.json()])
        self.send(404, {"status": 404})

    def do_DELETE(self):
        parts = urllib.parse.urlsplit(self.path).path.strip("/").split("/")
        if parts[0] == "containers" and len(parts) == 2:
            r = self.eng().request("DELETE", f"{COMPAT}/containers/{parts[1]}")
            return self.send(204 if r.status == 204 else r.status)
        self.send(404, {"status": 404})

    def do_POST(self):
        u = urllib.parse.urlsplit(self.path)
        parts = u.path.strip("/").split("/")
        raw = self.body()
        if u.path == "/containers":
            b = json.loads(raw)
            r = self.eng().json("POST", f"{COMPAT}/containers/create",
                                {"Image": b["image"], "Cmd": b.get("command"), "Labels": b.get("labels")})
            cid = r.json()["Id"]
            self.eng().request("POST", f"{COMPAT}/containers/{cid}/start")
            return self.send(201, {"id": cid})
        if parts[0] == "containers" and len(parts) == 3 and parts[2] == "wait":
            cid = parts[1]
            if BACKEND == "podman":
                r = self.eng().request("POST", f"{LIBPOD}/containers/{cid}/wait?condition=exited&interval=10ms")
                code = int(r.body or b"0")
            else:
                r = self.eng().request("POST", f"{COMPAT}/containers/{cid}/wait")
                code = r.json()["StatusCode"]
            return self.send(200, {"exit_code": code})
        if parts[0] == "containers" and len(parts) == 3 and parts[2] == "exec":
            b = json.loads(raw)
            r = self.eng().json("POST", f"{COMPAT}/containers/{parts[1]}/exec",
                                {"Cmd": b["command"], "AttachStdout": True, "AttachStderr": True})
            eid = r.json()["Id"]
            self.eng().json("POST", f"{COMPAT}/exec/{eid}/start", {"Detach": False, "Tty": False})
            r = self.eng().request("GET", f"{COMPAT}/exec/{eid}/json")
            return self.send(200, {"exit_code": r.json()["ExitCode"], "stdout": "", "stderr": ""})
        if u.path in ("/hash", "/hash/tar"):
            if u.path == "/hash/tar":
                h = hashlib.sha256()
                _push(h, b"directory")
                with tarfile.open(fileobj=io.BytesIO(raw)) as t:
                    for m in sorted((m for m in t.getmembers() if m.isfile()), key=lambda m: m.name.encode()):
                        data = t.extractfile(m).read()
                        for seg in (b"file.path", m.name.encode(), b"file.content", data):
                            _push(h, seg)
                _push_tail(h, {}, {})
                tag = h.hexdigest()
            else:
                tag = reference_hash_dir(json.loads(raw)["context"]["path"])
            return self.send(200, {"digest": "sha256:" + tag, "tag": tag})
        if u.path == "/images/build":
            b = json.loads(raw)
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as t:
                d = b["context"]["path"]
                for name in sorted(os.listdir(d)):
                    t.add(os.path.join(d, name), arcname=name)
            q = urllib.parse.urlencode({"t": b["tag"], "nocache": "1" if b.get("no_cache") else "0",
                                        "labels": json.dumps(b.get("labels") or {})})
            resp = self.eng().stream("POST", f"{COMPAT}/build?{q}", body=buf.getvalue(),
                                     headers={"Content-Type": "application/x-tar"})
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def emit(obj):
                data = json.dumps(obj).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            while (line := resp.readline()):
                try:
                    o = json.loads(line)
                except ValueError:
                    continue
                if "stream" in o:
                    emit({"type": "log", "line": o["stream"].rstrip("\n")})
            emit({"type": "result", "reference": b["tag"], "cached": False})
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send(404, {"status": 404})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:8420")
    ap.add_argument("--context-root", default="/")
    a = ap.parse_args()
    host, _, port = a.listen.rpartition(":")
    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer((host, int(port)), H)
    srv.serve_forever()


if __name__ == "__main__":
    main()
