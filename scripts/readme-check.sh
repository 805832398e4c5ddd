#!/usr/bin/env bash
# scripts/readme-check.sh: run every example in README.md against a live ocimand and check the
# output the README shows for it, so the README cannot silently rot (issue 6).
#
#   OCIMAN_BACKEND=docker .build/release/ocimand &      # or make run; then, in another shell:
#   scripts/readme-check.sh                             # OCIMAN_URL=http://127.0.0.1:8420 by default
#   scripts/readme-check.sh --engine podman             # or let it start a debug ocimand of its own
#
# Run it once per engine (restart ocimand with OCIMAN_BACKEND=podman). Needs curl, python3 and tar
# (jq is used when installed; otherwise a small stand-in covering the README's jq filters).
# OCIMAN_TOKEN, when set, is sent as a bearer token; README=path checks another copy.
#
# What runs: every fenced ```sh / ```bash block of README.md that calls curl (the make block does
# not), top to bottom in one bash shell, as written; only http://127.0.0.1:8420 is replaced by
# $OCIMAN_URL. Each command (split where `bash -n` says it is complete) must exit 0 and get no
# HTTP status >= 400 unless the README shows that status for it. When `# ...` lines follow a
# command they are its expected output:
#   - text after a run of 3+ spaces is a remark and ignored;
#   - a line `…` stands for any number of lines, a leading `… ` for any lines before this one;
#   - JSON is compared by structure: same members (`…` as a member allows more), same values,
#     `…` inside a value matches anything; what the engine itself decides (the /backend and
#     /ready facts, the build's log lines) is compared by type only;
#   - other lines compare exactly (`…` matches anything); a Prometheus sample's value may differ.
# Exits 1 at the first failing example, showing its output.
#
# Clean-up (trap, also on failure or ^C): containers and image references that did not exist
# before the run and that the README names (web, pg-demo, pg-demo-2, localhost/web:snapshot,
# localhost/tar-example:1, localhost/ociman-example:<hash>, localhost/pg-demo:seeded, ...), the
# sessions the examples opened (as $SESSION), and /tmp directories the README's `mkdir -p`
# created. It refuses to start when a container the README names already exists (the examples
# would collide with it).
# make readme-check (part of make test) runs it on both engines against a debug build.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OCIMAND_BINARY=${OCIMAND_BINARY:-$here/../.build/debug/ocimand}
source "$here/lib/ocimand.sh"
README=${README:-$(cd "$here/.." && pwd)/README.md}
RC_WORK=$(mktemp -d "${TMPDIR:-/tmp}/readme-check.XXXXXX")
export RC_WORK

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -f "$RC_WORK/before.json" ]; then
        python3 "$RC_WORK/check.py" cleanup || rc=1
    fi
    ocimand_stop
    rm -rf "$RC_WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --engine ENGINE: check against an ocimand of our own (the debug build, contexts under /tmp).
if [[ ${1:-} == --engine ]]; then
    [[ -n ${2:-} ]] || { echo "readme-check: --engine needs docker or podman" >&2; exit 2; }
    ocimand_start "$2" "$RC_WORK/ocimand.log" --context-root /tmp
    OCIMAN_URL=$OCIMAND_URL
    echo "readme-check: README examples on $2"
fi
OCIMAN_URL=${OCIMAN_URL:-http://127.0.0.1:8420}
OCIMAN_URL=${OCIMAN_URL%/}
export OCIMAN_URL README

cat > "$RC_WORK/check.py" <<'PY'
import json, os, re, select, signal, subprocess, sys, textwrap, time, urllib.parse

URL = os.environ["OCIMAN_URL"]
README = os.environ["README"]
NAME = os.path.basename(README)
WORK = os.environ["RC_WORK"]
DOC_URL = "http://127.0.0.1:8420"
ELL = "\u2026"
TIMEOUT = 180  # seconds one command may take

# Members whose value the engine decides (compared by type only).
ENGINE_KEYS = {"api_version", "backend", "bridge_subnets", "endpoint", "host_gateway", "kind",
               "rootless", "version"}


def die(msg):
    print(f"readme-check: {msg}", file=sys.stderr)
    sys.exit(1)


def api(method, path, body=None):
    """One call to ocimand; (status, parsed JSON or None)."""
    cmd = ["curl", "-s", "-m", "60", "-X", method, "-o", f"{WORK}/api.out", "-w", "%{http_code}"]
    if os.environ.get("OCIMAN_TOKEN"):
        cmd += ["-H", "Authorization: Bearer " + os.environ["OCIMAN_TOKEN"]]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    p = subprocess.run(cmd + [URL + path], capture_output=True, text=True)
    status = int(p.stdout or 0)
    try:
        with open(f"{WORK}/api.out") as f:
            data = json.load(f)
    except (OSError, ValueError):
        data = None
    return status, data


# ---------------------------------------------------------------- README parsing

def blocks():
    """(first line number, dedented text) of every runnable ```sh/```bash block."""
    lines = open(README).read().split("\n")
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"^( *)```(sh|bash|shell)\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent, start, body = m.group(1), i + 2, []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        i += 1
        text = textwrap.dedent("\n".join(body))
        if re.search(r"(^|[\s|(])curl\s", text):  # talks to the service (the make block does not)
            out.append((start, text))
    return out


def complete(code):
    if code.rstrip().endswith("\\"):
        return False
    return subprocess.run(["bash", "-n"], input=code, text=True,
                          capture_output=True).returncode == 0


class Cmd:
    def __init__(self, line, code):
        self.line, self.code, self.expect = line, code, []


def commands():
    cmds = []
    for start, text in blocks():
        pending, first = [], 0
        for n, line in enumerate(text.split("\n")):
            if not pending and line.lstrip().startswith("#"):
                if cmds and cmds[-1].line >= start:
                    cmds[-1].expect.append(line.lstrip()[1:])
                continue
            if not pending and not line.strip():
                continue
            if not pending:
                first = start + n
            pending.append(line)
            code = "\n".join(pending)
            if complete(code):
                cmds.append(Cmd(first, code))
                pending = []
        if pending:
            die(f"{NAME}:{first}: incomplete shell command")
    return cmds


# ---------------------------------------------------------------- expected output

def json_depth(s):
    depth, instr, esc = 0, False, False
    for c in s:
        if instr:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                instr = False
        elif c == '"':
            instr = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
    return depth


class Gap:
    pass


def expected_items(raw):
    """The README's `# …` lines after a command as a list of Gap, ("json", v) and ("text", s)."""
    items, buf = [], ""
    for line in raw:
        line = re.split(r"\s{3,}", line.strip(), maxsplit=1)[0]
        if buf:
            buf += line
            if json_depth(buf) > 0:
                continue
            line, buf = buf, ""
        elif line[:1] in "{[" and json_depth(line) > 0:
            buf = line
            continue
        if line == ELL:
            items.append(Gap())
            continue
        if line.startswith(ELL + " "):
            items.append(Gap())
            line = line[2:]
        if line[:1] in "{[":
            items.append(("json", parse_expected_json(line)))
        elif line:
            items.append(("text", line))
    if buf:
        die(f"unbalanced JSON in expected output: {buf}")
    return items


MORE = ELL + "more"   # an object member `…`: further members allowed
ANY = ELL             # a value `…`: anything


def parse_expected_json(s):
    out, stack, instr, esc = [], [], False, False
    for c in s:
        if instr:
            out.append(c)
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                instr = False
            continue
        if c == '"':
            instr = True
        elif c in "{[":
            stack.append(c)
        elif c in "}]":
            stack.pop()
        if c == ELL:
            prev = "".join(out).rstrip()[-1:]
            if prev == ":":
                out.append(json.dumps(ANY))
            elif stack and stack[-1] == "{":
                out.append(json.dumps(MORE) + ":null")
            else:
                out.append(json.dumps(MORE))
            continue
        out.append(c)
    try:
        return json.loads("".join(out))
    except ValueError as e:
        die(f"cannot read expected JSON {s!r}: {e}")


def glob(pattern, s):
    rx = ".*".join(re.escape(p) for p in pattern.split(ELL))
    return re.fullmatch(rx, s, re.S) is not None


def same_type(e, a):
    if isinstance(e, bool) or isinstance(a, bool):
        return isinstance(e, bool) and isinstance(a, bool)
    if isinstance(e, (int, float)):
        return isinstance(a, (int, float))
    return type(e) is type(a)


def match_json(e, a, loose=False):
    if e == ANY:
        return True
    if isinstance(e, dict):
        if not isinstance(a, dict):
            return False
        more = MORE in e
        keys = set(e) - {MORE}
        if not keys <= set(a) or (not more and set(a) != keys):
            return False
        build_log = e.get("type") == "log"
        return all(match_json(e[k], a[k], loose or k in ENGINE_KEYS or (build_log and k == "line"))
                   for k in keys)
    if isinstance(e, list):
        if not isinstance(a, list):
            return False
        if e and e[-1] == MORE:
            return len(a) >= len(e) - 1 and all(match_json(x, y, loose) for x, y in zip(e[:-1], a))
        return len(e) == len(a) and all(match_json(x, y, loose) for x, y in zip(e, a))
    if loose:
        return same_type(e, a)
    if isinstance(e, str):
        return isinstance(a, str) and glob(e, a)
    return same_type(e, a) and e == a


PROM = re.compile(r"^([A-Za-z_:][\w:]*(?:\{.*\})?) [-+0-9.eE]+$")


def match_record(item, rec):
    kind, e = item
    if kind == "json":
        try:
            return match_json(e, json.loads(rec))
        except ValueError:
            return False
    m, n = PROM.match(e), PROM.match(rec)
    if m and n:
        return m.group(1) == n.group(1)
    return glob(e, rec)


def records(out):
    """Output as records: lines, with a JSON document that spans lines kept whole."""
    lines, recs, i = out.rstrip("\n").split("\n"), [], 0
    while i < len(lines):
        j = i
        if lines[i][:1] in "{[":
            for j in range(i, len(lines)):
                try:
                    json.loads("\n".join(lines[i:j + 1]))
                    break
                except ValueError:
                    pass
            else:
                j = i
        recs.append("\n".join(lines[i:j + 1]))
        i = j + 1
    return recs


def matches(items, recs):
    if not items:
        return not recs
    if isinstance(items[0], Gap):
        return any(matches(items[1:], recs[k:]) for k in range(len(recs) + 1))
    return bool(recs) and match_record(items[0], recs[0]) and matches(items[1:], recs[1:])


def shown_statuses(items):
    codes = set()
    for it in items:
        if isinstance(it, Gap):
            continue
        kind, v = it
        if kind == "text" and re.fullmatch(r"\d{3}", v):
            codes.add(int(v))
        if kind == "json" and isinstance(v, dict) and isinstance(v.get("status"), int):
            codes.add(v["status"])
    return codes


# ---------------------------------------------------------------- names the README uses

def readme_names():
    """Container names, image references (repository alone: any tag) and directories the
    README's runnable blocks use."""
    text = "\n".join(t for _, t in blocks())
    containers = set(re.findall(r'"name":\s*"([^"/:]+)"', text))
    containers |= set(re.findall(r"/containers/([A-Za-z0-9][\w.-]*)", text))
    refs = set(re.findall(r'"(?:reference|target|image|name)":\s*"([^"]+/[^"]+)"', text))
    refs |= set(re.findall(r"[?&]tag=([^&'\"\s]+)", text))
    refs |= {urllib.parse.unquote(r) for r in re.findall(r"/images/([^/?'\"\s]+%2F[^/?'\"\s]+)", text)}
    # Only a command's own `mkdir -p /tmp/...` (not one inside a container's command line).
    dirs = {d for d in re.findall(r"^mkdir -p (/tmp/[\w.-]+)(?:\s|$)", text, re.M)}
    return containers, refs, dirs


def ours(ref, refs):
    """Is the engine's reference one of the README's (a repository without tag: any tag)?"""
    def norm(r):
        r = r[len("docker.io/"):] if r.startswith("docker.io/") else r
        return r[len("library/"):] if r.startswith("library/") else r
    refs = {norm(r) for r in refs}
    return norm(ref) in refs or norm(repo(ref)) in refs


def repo(ref):
    ref = ref.split("@")[0]
    head, _, tail = ref.rpartition("/")
    return (head + "/" if head else "") + tail.split(":")[0]


def engine_state():
    s1, cs = api("GET", "/containers")
    s2, ims = api("GET", "/images")
    if s1 != 200 or s2 != 200:
        die(f"cannot list containers/images at {URL} ({s1}, {s2})")
    return ({c["name"] for c in cs},
            sorted({r for im in ims for r in im.get("references", [])}))


# ---------------------------------------------------------------- commands

def snapshot():
    status, ready = api("GET", "/ready")
    if status != 200:
        die(f"no ready ocimand at {URL} (GET /ready: {status or 'no answer'})")
    containers, _, dirs = readme_names()
    names, refs = engine_state()
    taken = sorted(names & containers)
    if taken:
        die("containers the README creates already exist: " + ", ".join(taken) +
            " (remove them first)")
    json.dump({"names": sorted(names), "refs": refs,
               "dirs": [d for d in dirs if os.path.exists(d)]}, open(f"{WORK}/before.json", "w"))
    print(f"readme-check: {README} against {URL} ({ready.get('backend')})")


SHELL_INIT = r'''
__rc_auth=()
[ -n "${OCIMAN_TOKEN-}" ] && __rc_auth=(-H "Authorization: Bearer $OCIMAN_TOKEN")
curl() { command curl -D "$(mktemp "$RC_WORK/hdr.XXXXXX")" "${__rc_auth[@]}" "$@"; }
command -v jq >/dev/null 2>&1 || jq() { python3 "$RC_WORK/check.py" jq "$@"; }
'''


def run():
    cmds = commands()
    sh = subprocess.Popen(["bash", "--norc", "--noprofile"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
                          cwd=WORK)
    sh.stdin.write(SHELL_INIT)
    sessions, n_ok = set(), 0
    try:
        for i, c in enumerate(cmds):
            code = c.code.replace(DOC_URL, URL)
            with open(f"{WORK}/cmd.{i}", "w") as f:
                f.write(code + "\n")
            for h in os.listdir(WORK):
                if h.startswith("hdr."):
                    os.unlink(f"{WORK}/{h}")
            sh.stdin.write(f'{{ . "$RC_WORK/cmd.{i}"; }} >"$RC_WORK/out.{i}" 2>&1 </dev/null; '
                           f'echo "__rc $? ${{SESSION-}}"\n')
            sh.stdin.flush()
            deadline, line = time.time() + TIMEOUT, ""
            while not line.startswith("__rc "):
                if not select.select([sh.stdout], [], [], max(0, deadline - time.time()))[0]:
                    fail(c, i, f"no answer within {TIMEOUT} s")
                line = sh.stdout.readline()
                if not line:
                    fail(c, i, "the shell exited")
            parts = line.split()
            rc = int(parts[1])
            if len(parts) > 2:
                sessions.add(parts[2])
                json.dump(sorted(sessions), open(f"{WORK}/sessions.json", "w"))
            out = open(f"{WORK}/out.{i}", errors="replace").read()
            statuses = []
            for h in sorted(os.listdir(WORK)):
                if h.startswith("hdr."):
                    heads = re.findall(r"^HTTP/\S+ (\d{3})", open(f"{WORK}/{h}").read(), re.M)
                    statuses += [int(heads[-1])] if heads else []
            items = expected_items(c.expect)
            allowed = shown_statuses(items)
            bad = [s for s in statuses if s >= 400 and s not in allowed]
            if rc != 0:
                fail(c, i, f"exit status {rc}", out)
            if bad:
                fail(c, i, f"HTTP {bad[0]} not shown in the README", out)
            if items and not matches(items, records(out)):
                fail(c, i, "output differs from the README's", out,
                     "\n".join("#" + e for e in c.expect))
            n_ok += 1
            print(f"ok    {NAME}:{c.line}  {c.code.splitlines()[0][:90]}")
    finally:
        sh.stdin.close()
        try:
            sh.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sh.kill()
    print(f"readme-check: all {n_ok} README commands passed against {URL}")


def fail(c, i, why, out=None, shown=None):
    print(f"FAIL  {NAME}:{c.line}: {why}\n--- command\n{c.code}")
    if shown is not None:
        print(f"--- README shows\n{shown}")
    if out is not None:
        print(f"--- got\n{out.rstrip()}")
    sys.exit(1)


def cleanup():
    before = json.load(open(f"{WORK}/before.json"))
    containers, readme_refs, dirs = readme_names()
    try:
        sessions = json.load(open(f"{WORK}/sessions.json"))
    except OSError:
        sessions = []
    ok = True
    for s in sessions:
        status, _ = api("DELETE", "/sessions/" + urllib.parse.quote(s, safe=""))
        ok &= status in (200, 404)
    names, refs = engine_state()
    for name in sorted((names & containers) - set(before["names"])):
        status, _ = api("DELETE", f"/containers/{name}?force=true")
        print(f"readme-check: clean-up: removed container {name} ({status})")
        ok &= status in (204, 404)
    for ref in sorted(set(refs) - set(before["refs"])):
        if ours(ref, readme_refs):
            status, _ = api("DELETE", "/images/" + urllib.parse.quote(ref, safe=":") + "?force=true")
            print(f"readme-check: clean-up: removed image {ref} ({status})")
            ok &= status in (204, 404)
    for d in sorted(dirs - set(before["dirs"])):
        subprocess.run(["rm", "-rf", "--", d])
    sys.exit(0 if ok else 1)


# ---------------------------------------------------------------- jq stand-in

def jq(args):
    raw = "-r" in args
    rest = [a for a in args if a != "-r"]
    if len(rest) != 1 or any(a.startswith("-") for a in rest):
        die(f"jq is not installed and the stand-in does not support: jq {' '.join(args)}")
    filt = rest[0].strip()

    def path(expr, v):
        vals = [v]
        toks = re.findall(r"\.[A-Za-z_]\w*|\[\d*\]|\.", expr)
        if "".join(toks) != expr:
            die(f"jq is not installed and the stand-in does not support the filter {filt!r}")
        for t in toks:
            nxt = []
            for x in vals:
                if t == ".":
                    nxt.append(x)
                elif t == "[]":
                    nxt += list(x.values()) if isinstance(x, dict) else list(x or [])
                elif t.startswith("["):
                    k = int(t[1:-1])
                    nxt.append(x[k] if isinstance(x, list) and k < len(x) else None)
                else:
                    nxt.append(x.get(t[1:]) if isinstance(x, dict) else None)
            vals = nxt
        return vals

    def evaluate(v):
        if filt.startswith("{") and filt.endswith("}"):
            obj = {}
            for part in filt[1:-1].split(","):
                k, _, e = part.partition(":")
                k = k.strip()
                obj[k] = path(e.strip() or "." + k, v)[0]
            return [obj]
        return path(filt, v)

    text = sys.stdin.read()
    dec, pos = json.JSONDecoder(), 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        v, pos = dec.raw_decode(text, pos)
        for r in evaluate(v):
            print(r if raw and isinstance(r, str) else json.dumps(r, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        {"snapshot": snapshot, "run": run, "cleanup": cleanup,
         "jq": lambda: jq(sys.argv[2:])}[sys.argv[1]]()
    except KeyboardInterrupt:
        die("interrupted")
PY

python3 "$RC_WORK/check.py" snapshot
python3 "$RC_WORK/check.py" run
