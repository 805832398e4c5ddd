#!/usr/bin/env bash
# Machine set-up for ociman: Debian packages, Podman config, dockerd, the Podman API
# service, the base image localhost/busybox:test and the PostgreSQL image localhost/ociman-postgres:15
# (scripts/setup/postgres-image.sh) in both engines.
#
# Idempotent and fast when everything is already up (a few dpkg/curl calls).
#
# Usage:
#   scripts/setup-engines.sh                    full set-up (what `make test` / `make bench` / CI use)
#   scripts/setup-engines.sh --build-deps-only  only the packages needed to build ocimand
#   scripts/setup-engines.sh --run              build packages + enough of an engine to run ocimand
#                                               (installs Podman + containers.conf when the machine
#                                               has no engine at all; starts no daemon: ocimand
#                                               auto-detects and supervises its own Podman service)
#   scripts/setup-engines.sh --quiet            print only the summary line (and errors)
#   scripts/setup-engines.sh --fresh-docker-root
#                                               full set-up, with dockerd on an empty data root
#                                               (/tmp/ociman-dockerd-root.*) as on a machine where it
#                                               never ran: its bridge network then has no IPAM
#                                               gateway (SPEC §11). CI only (needs CI=true): a dockerd
#                                               running on another data root is stopped first.
#
# Everything it starts is detached (setsid, stdin from /dev/null, logs under /var/log) so it
# outlives this script: CI runs the tests after it.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export NEEDRESTART_SUSPEND=1 NEEDRESTART_MODE=a
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

MODE=full
QUIET=0
FRESH_DOCKER_ROOT=0
for arg in "$@"; do
    case "$arg" in
        --build-deps-only) MODE=build ;;
        --run) MODE=run ;;
        --quiet|-q) QUIET=1 ;;
        --fresh-docker-root) FRESH_DOCKER_ROOT=1 ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "setup-engines: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

BUILD_PKGS=(libmicrohttpd-dev libssl-dev pkg-config)
ENGINE_PKGS=(docker.io podman runc busybox-static iptables uidmap)
# python3-yaml: the integration tests read openapi.yaml through it (IntegerBoundsTests).
TOOL_PKGS=(nginx-light wrk curl jq python3-venv python3-yaml openssl tar debootstrap postgresql-client)
PODMAN_PKGS=(podman runc uidmap)

DOCKER_SOCK=/var/run/docker.sock
PODMAN_SOCK=/run/podman/podman.sock
DOCKER_LOG=/var/log/ociman-dockerd.log
PODMAN_LOG=/var/log/ociman-podman.log
PODMAN_PIDFILE=/run/ociman-podman.pid
CONTAINERS_CONF=/etc/containers/containers.conf
IMAGE_REPO=localhost/busybox
IMAGE_TAG=test
IMAGE="$IMAGE_REPO:$IMAGE_TAG"

# shellcheck source=setup/postgres-image.sh
. "$(dirname "$0")/setup/postgres-image.sh"
# shellcheck source=setup/interactive-tools.sh
. "$(dirname "$0")/setup/interactive-tools.sh"
# shellcheck source=setup/client-generators.sh
. "$(dirname "$0")/setup/client-generators.sh"
SETUP_DIR=$(dirname "$0")/setup   # the parts in files of their own, sourced (they use the helpers here)

T0=$(date +%s%N)
ROOTFS_DIR=""
trap '[ -z "$ROOTFS_DIR" ] || rm -rf "$ROOTFS_DIR"' EXIT
ACTIONS=()          # what this run changed/started, for the summary line

log() { [ "$QUIET" = 1 ] || echo "setup-engines: $*"; }
die() { echo "setup-engines: ERROR: $*" >&2; exit 1; }
elapsed() { echo "$(( ($(date +%s%N) - T0) / 1000000 ))"; }

[ "$(id -u)" = 0 ] || die "must run as root (installs packages, starts dockerd)"

# ---------------------------------------------------------------- packages
APT_UPDATED=0
apt_update_once() {
    [ "$APT_UPDATED" = 1 ] && return 0
    log "apt-get update"
    # A failing third-party source must not stop us; a missing package will fail the install.
    apt-get -o DPkg::Lock::Timeout=300 update -qq || log "apt-get update reported errors (continuing)"
    APT_UPDATED=1
}

# Prints the packages (of the arguments) that are not installed.
missing_pkgs() {
    local p st out=()
    for p in "$@"; do
        st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [ "$st" = installed ] || out+=("$p")
    done
    echo "${out[*]:-}"
}

ensure_pkgs() {
    local missing
    missing=$(missing_pkgs "$@")
    [ -n "$missing" ] || return 0
    log "installing: $missing"
    # Update first when the lists are empty or a package has no candidate yet.
    local need_update=0 p
    if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then need_update=1; fi
    for p in $missing; do
        # (no `apt-cache | grep -q` pipe: with pipefail, grep's early exit fails it via SIGPIPE)
        case "$(apt-cache policy "$p" 2>/dev/null)" in
            *"Candidate: (none)"*|"") need_update=1 ;;
        esac
    done
    [ "$need_update" = 1 ] && apt_update_once
    # Keep package scripts from starting daemons (there is no init system here): this script
    # starts dockerd and the Podman service itself. policy-rc.d exit 101 = "action forbidden".
    local policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 0755 "$policy"
        trap 'rm -f /usr/sbin/policy-rc.d; [ -z "$ROOTFS_DIR" ] || rm -rf "$ROOTFS_DIR"' EXIT
        POLICY_TMP=1
    fi
    # shellcheck disable=SC2086
    if ! apt-get -o DPkg::Lock::Timeout=300 install -y -qq $missing; then
        apt_update_once
        # shellcheck disable=SC2086
        apt-get -o DPkg::Lock::Timeout=300 install -y -qq $missing \
            || die "apt-get install $missing failed"
    fi
    if [ "${POLICY_TMP:-0}" = 1 ]; then rm -f "$policy"; POLICY_TMP=0; fi
    ACTIONS+=("installed $missing")
}

# ---------------------------------------------------------------- containers.conf
CONF_TEXT='# Written by ociman scripts/setup-engines.sh.
# crun fails on this hybrid-cgroup host ("cgroups in hybrid mode not supported") and the default
# rlimits exceed the hard limits, so use runc and modest ulimits.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
# Each exec through the API leaves two conmon processes sleeping this long before they clean up
# (300 s by default, "to mimic Docker"); readiness probes exec many times a second.
exit_command_delay = 10
'
CONF_CHANGED=0

conf_equivalent() {
    [ -f "$CONTAINERS_CONF" ] || return 1
    [ "$(cat "$CONTAINERS_CONF")" = "$(printf '%s' "$CONF_TEXT")" ] && return 0
    command -v python3 >/dev/null 2>&1 || return 1
    python3 - "$CONTAINERS_CONF" <<'EOF' >/dev/null 2>&1
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    c = tomllib.load(f)
ok = (c.get("engine", {}).get("runtime") == "runc"
      and c.get("engine", {}).get("exit_command_delay") == 10
      and set(c.get("containers", {}).get("default_ulimits", [])) >= {"nofile=1024:1024", "nproc=1024:1024"})
sys.exit(0 if ok else 1)
EOF
}

ensure_containers_conf() {
    conf_equivalent && return 0
    mkdir -p "$(dirname "$CONTAINERS_CONF")"
    if [ -f "$CONTAINERS_CONF" ]; then
        local bak
        bak="$CONTAINERS_CONF.ociman-bak.$(date +%Y%m%d%H%M%S)"
        cp -p "$CONTAINERS_CONF" "$bak"
        log "existing $CONTAINERS_CONF is not equivalent; saved it as $bak"
    fi
    printf '%s' "$CONF_TEXT" >"$CONTAINERS_CONF"
    log "wrote $CONTAINERS_CONF (runtime runc, nofile/nproc 1024, exit_command_delay 10 s)"
    CONF_CHANGED=1
    ACTIONS+=("wrote $CONTAINERS_CONF")
}

# ---------------------------------------------------------------- engine sockets
ping_sock() {   # ping_sock SOCKET -> 0 when GET /_ping answers OK
    [ -S "$1" ] || return 1
    [ "$(curl -s --max-time 2 --unix-socket "$1" http://localhost/_ping 2>/dev/null)" = OK ]
}

wait_sock() {   # wait_sock SOCKET SECONDS PID(optional) -> 0 when it answers
    local sock=$1 secs=$2 pid=${3:-} i
    for ((i = 0; i < secs * 10; i++)); do
        ping_sock "$sock" && return 0
        if [ -n "$pid" ] && ! pid_alive "$pid"; then return 1; fi
        sleep 0.1
    done
    return 1
}

# A pid counts as alive when it exists and is not a zombie: here PID 1 reaps orphans lazily, so a
# killed dockerd/containerd can linger as a zombie for a while and `kill -0` still succeeds.
pid_alive() {
    [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ] || return 1
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

cwd_deleted() {   # cwd_deleted PID -> 0 when the process's working directory was deleted
    [[ "$(readlink "/proc/$1/cwd" 2>/dev/null)" == *" (deleted)" ]]
}

# Removes pidfiles that name dead (or zombie) processes: dockerd refuses to start while
# /var/run/docker.pid names a live pid, and waits 15 s then fails ("timeout waiting for
# containerd to start") when /var/run/docker/containerd/containerd.pid names a zombie.
clean_stale_docker_pidfiles() {
    local f pid
    for f in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null || true)
        if ! pid_alive "$pid"; then rm -f "$f"; fi
    done
}

DOCKERD_ARGS=()

# stop_dockerd WHY: stops the running dockerd (its pidfile names it) and waits up to 30 s for it.
stop_dockerd() {
    local pid i
    pid=$(cat /var/run/docker.pid 2>/dev/null || true)
    [ -n "$pid" ] || die "dockerd answers on $DOCKER_SOCK but /var/run/docker.pid is missing ($1)"
    log "stopping dockerd (pid $pid; $1)"
    kill "$pid"
    for ((i = 0; i < 300; i++)); do pid_alive "$pid" || break; sleep 0.1; done
    pid_alive "$pid" && die "dockerd (pid $pid) did not stop within 30 s"
    return 0
}

# --fresh-docker-root: a dockerd already on a fresh root is kept (the script stays idempotent);
# one on any other root is stopped, and the next start uses a new empty directory.
use_fresh_docker_root() {
    [ "${CI:-}" = true ] || die "--fresh-docker-root stops the running dockerd; it runs only with CI=true"
    if ping_sock "$DOCKER_SOCK"; then
        local root
        root=$(curl -s --max-time 5 --unix-socket "$DOCKER_SOCK" http://localhost/info | jq -r .DockerRootDir)
        case "$root" in /tmp/ociman-dockerd-root.*) return 0 ;; esac
        stop_dockerd "data root $root, for a fresh data root"
        ACTIONS+=("stopped dockerd on $root")
    fi
    DOCKERD_ARGS=(--data-root "$(mktemp -d /tmp/ociman-dockerd-root.XXXXXX)")
}

ensure_dockerd() {
    ping_sock "$DOCKER_SOCK" && return 0
    local pid="" attempt
    clean_stale_docker_pidfiles
    if [ -f /var/run/docker.pid ]; then
        pid=$(cat /var/run/docker.pid 2>/dev/null || true)
        if grep -qa dockerd "/proc/$pid/cmdline" 2>/dev/null; then
            log "dockerd (pid $pid) is running but not answering yet; waiting"
        else
            rm -f /var/run/docker.pid
            pid=""
        fi
    fi
    for attempt in 1 2; do
        if [ -z "$pid" ]; then
            command -v dockerd >/dev/null || die "dockerd not found (is docker.io installed?)"
            log "starting dockerd ${DOCKERD_ARGS[*]} (log: $DOCKER_LOG)"
            (cd / && exec setsid dockerd "${DOCKERD_ARGS[@]}") >"$DOCKER_LOG" 2>&1 </dev/null &
            pid=$!
            disown "$pid" 2>/dev/null || true
        fi
        wait_sock "$DOCKER_SOCK" 60 "$pid" && break
        if [ "$attempt" = 1 ] && ! pid_alive "$pid"; then
            # it exited early (typically a stale containerd pidfile); clean up and retry once
            log "dockerd exited during start-up; cleaning stale pidfiles and retrying"
            sleep 1
            clean_stale_docker_pidfiles
            pid=""
            continue
        fi
        echo "setup-engines: ERROR: dockerd did not answer $DOCKER_SOCK /_ping within 60 s; log tail:" >&2
        tail -n 40 "$DOCKER_LOG" >&2 || true
        exit 1
    done
    ACTIONS+=("started dockerd (pid $pid)")
}

stop_our_podman_service() {   # stop_our_podman_service WHY
    local pid
    pid=$(cat "$PODMAN_PIDFILE" 2>/dev/null || true)
    if pid_alive "$pid" && grep -qa 'system' "/proc/$pid/cmdline" 2>/dev/null; then
        log "restarting the Podman service (pid $pid) $1"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do pid_alive "$pid" || break; sleep 0.1; done
        pid_alive "$pid" && kill -9 "$pid" 2>/dev/null || true
        rm -f "$PODMAN_PIDFILE"
        return 0
    fi
    return 1
}

ensure_podman_service() {
    if ping_sock "$PODMAN_SOCK"; then
        if [ "$CONF_CHANGED" = 1 ]; then
            stop_our_podman_service "to pick up $CONTAINERS_CONF" \
                || log "WARNING: a Podman service not started by this script answers $PODMAN_SOCK; restart it to apply $CONTAINERS_CONF"
        fi
        # Daemons start from / (below), but an older set-up started this one where make ran: once
        # that directory is deleted, every conmon it starts fails ("Failed to get working directory").
        if cwd_deleted "$(cat "$PODMAN_PIDFILE" 2>/dev/null || echo 0)"; then
            stop_our_podman_service "whose working directory was deleted" || true
        fi
        ping_sock "$PODMAN_SOCK" && return 0
    fi
    local pid
    pid=$(cat "$PODMAN_PIDFILE" 2>/dev/null || true)
    if pid_alive "$pid" && grep -qa podman "/proc/$pid/cmdline" 2>/dev/null; then
        log "Podman service (pid $pid) is running but not answering yet; waiting"
    else
        command -v podman >/dev/null || die "podman not found"
        mkdir -p "$(dirname "$PODMAN_SOCK")"
        rm -f "$PODMAN_SOCK"    # a stale socket file makes the service fail to bind
        log "starting the Podman API service on $PODMAN_SOCK (log: $PODMAN_LOG)"
        (cd / && exec setsid podman system service --time=0 "unix://$PODMAN_SOCK") >"$PODMAN_LOG" 2>&1 </dev/null &
        pid=$!
        disown "$pid" 2>/dev/null || true
        echo "$pid" >"$PODMAN_PIDFILE"
    fi
    if ! wait_sock "$PODMAN_SOCK" 60 "$pid"; then
        echo "setup-engines: ERROR: Podman service did not answer $PODMAN_SOCK /_ping within 60 s; log tail:" >&2
        tail -n 40 "$PODMAN_LOG" >&2 || true
        exit 1
    fi
    ACTIONS+=("started podman service (pid $pid)")
}

# ---------------------------------------------------------------- base image
image_present() {   # image_present SOCKET REFERENCE
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --unix-socket "$1" \
        "http://localhost/v1.41/images/$2/json" 2>/dev/null || true)
    [ "$code" = 200 ]
}

ROOTFS_TAR=""
build_rootfs_tar() {
    [ -n "$ROOTFS_TAR" ] && return 0
    local dir applet
    dir=$(mktemp -d /tmp/ociman-rootfs.XXXXXX)
    mkdir -p "$dir/rootfs/bin" "$dir/rootfs/etc" "$dir/rootfs/tmp" "$dir/rootfs/root"
    chmod 1777 "$dir/rootfs/tmp"
    chmod 0700 "$dir/rootfs/root"
    cp /bin/busybox "$dir/rootfs/bin/busybox"
    chmod 0755 "$dir/rootfs/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] && continue
        ln -sf busybox "$dir/rootfs/bin/$applet"
    done
    cat >"$dir/rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$dir/rootfs/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
EOF
    tar -C "$dir/rootfs" --numeric-owner --owner=0 --group=0 -cf "$dir/rootfs.tar" .
    ROOTFS_TAR="$dir/rootfs.tar"
    ROOTFS_DIR="$dir"
}

# import_rootfs SOCKET ENGINE TAR REFERENCE [CHANGE...]: imports a root filesystem tar as an image;
# each CHANGE is a Dockerfile instruction (CMD, ENV, USER, ...) applied to the image's config.
import_rootfs() {
    local sock=$1 engine=$2 tar=$3 ref=$4 change query="" out code url
    shift 4
    for change in "$@"; do query+="&changes=$(jq -rn --arg c "$change" '$c|@uri')"; done
    if [ "$engine" = podman ]; then
        # Podman 4.3's compat /images/create?fromSrc=- ignores `tag` (it imports as
        # localhost/busybox:latest), so use libpod's import, which takes a full reference.
        url="http://localhost/v4.0.0/libpod/images/import?reference=$ref$query"
    else
        url="http://localhost/v1.41/images/create?fromSrc=-&repo=${ref%:*}&tag=${ref##*:}$query"
    fi
    out=$(mktemp)
    code=$(curl -s -o "$out" -w '%{http_code}' --max-time 600 --unix-socket "$sock" \
        -H 'Content-Type: application/x-tar' --data-binary "@$tar" "$url" || true)
    if [ "$code" != 200 ] || grep -q '"error' "$out"; then
        echo "setup-engines: ERROR: importing $ref into $engine failed (HTTP $code):" >&2
        cat "$out" >&2; rm -f "$out"
        exit 1
    fi
    rm -f "$out"
    image_present "$sock" "$ref" || die "$ref not listed by $engine after import"
}

verify_run() {      # verify_run CLI NAME
    local out
    if ! out=$("$1" run --rm "$IMAGE" echo ok 2>&1) || [ "$(printf '%s' "$out" | tail -n1)" != ok ]; then
        echo "setup-engines: ERROR: '$1 run --rm $IMAGE echo ok' failed:" >&2
        echo "$out" >&2
        exit 1
    fi
    log "$2: '$1 run --rm $IMAGE echo ok' -> ok"
}

ensure_image() {    # ensure_image SOCKET NAME CLI
    image_present "$1" "$IMAGE" && return 0
    log "importing $IMAGE into $2"
    build_rootfs_tar
    # The default command makes `run IMAGE` without arguments start a shell.
    import_rootfs "$1" "$2" "$ROOTFS_TAR" "$IMAGE" 'CMD ["sh"]'
    verify_run "$3" "$2"
    ACTIONS+=("imported $IMAGE into $2")
}

# ---------------------------------------------------------------- main
case "$MODE" in
build)
    ensure_pkgs "${BUILD_PKGS[@]}"
    ;;
run)
    ensure_pkgs "${BUILD_PKGS[@]}"
    if ! command -v podman >/dev/null 2>&1 && ! command -v dockerd >/dev/null 2>&1 \
        && ! ping_sock "$DOCKER_SOCK"; then
        ensure_pkgs "${PODMAN_PKGS[@]}"
    fi
    command -v podman >/dev/null 2>&1 && ensure_containers_conf
    ;;
full)
    ensure_pkgs "${BUILD_PKGS[@]}" "${ENGINE_PKGS[@]}" "${TOOL_PKGS[@]}"
    ensure_containers_conf
    . "$SETUP_DIR/test-pki.sh"
    . "$SETUP_DIR/docker-tls.sh"
    [ "$FRESH_DOCKER_ROOT" = 0 ] || use_fresh_docker_root
    ensure_dockerd
    docker_tls_answers || die "dockerd does not answer on its TLS listener $DOCKER_TLS_ADDRESS; see $DOCKER_LOG"
    ensure_podman_service
    ensure_image "$DOCKER_SOCK" docker docker
    ensure_image "$PODMAN_SOCK" podman podman
    ensure_postgres_image "$DOCKER_SOCK" docker
    ensure_postgres_image "$PODMAN_SOCK" podman
    ensure_interactive_tools
    ensure_client_generators
    . "$SETUP_DIR/sshd.sh"
    . "$SETUP_DIR/registries.sh"
    . "$SETUP_DIR/rootless-podman.sh"
    ;;
esac

if [ "${#ACTIONS[@]}" = 0 ]; then
    case "$MODE" in
    full) echo "setup-engines: all up (dockerd $DOCKER_SOCK, podman $PODMAN_SOCK, $IMAGE and $PG_IMAGE in both), nothing to do ($(elapsed) ms)" ;;
    *)    echo "setup-engines ($MODE): all present, nothing to do ($(elapsed) ms)" ;;
    esac
else
    summary=$(printf '%s; ' "${ACTIONS[@]}")
    echo "setup-engines ($MODE): ${summary%; } ($(elapsed) ms)"
fi
