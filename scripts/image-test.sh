#!/usr/bin/env bash
# make image-test: build the ocimand container image with Podman and prove it serves, on a machine
# where no image registry is reachable.
#
#  1. Runtime base: a minimal Debian bookworm made with debootstrap from the Debian mirror, imported
#     as localhost/debian:bookworm-slim-local (made once, reused).
#  2. The binary: `swift build -c release --static-swift-stdlib` on this host (Debian 12 too), copied
#     into a one-file build context and put in the image by the Dockerfile's `runtime-prebuilt` target.
#     Everything in that target except the source of the binary is the stage users get from the
#     default `runtime` target.
#     IMAGE_TEST_MODE=full builds the default `runtime` target instead, multi-stage: its build stage
#     runs in localhost/swift-builder:bookworm-local (the runtime base plus the toolchain's system
#     libraries, with this host's /opt/swift mounted in during the build) and fetches the Swift
#     packages from the local mirror /opt/swift-packages (git insteadOf, passed as build arguments).
#  3. Run the image against the host engine's socket with a token, as deploy/README.md documents,
#     and check: /health and /backend answer with the token, 401 without it, the image HEALTHCHECK
#     passes, the process is not root and the binary needs no Swift runtime.
#
# Environment: IMAGE_TEST_MODE=prebuilt|full (default prebuilt), IMAGE_TEST_ENGINE=docker|podman (the engine ocimand drives; default docker),
# IMAGE_TEST_PORT (host port, default 18480), KEEP=1 leaves the container running.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$PATH:/opt/swift/usr/bin"
WORK=.build-image
RUNTIME_BASE=localhost/debian:bookworm-slim-local
IMAGE=localhost/ocimand:image-test
CONTAINER=ocimand-image-test
ENGINE=${IMAGE_TEST_ENGINE:-docker}
MODE=${IMAGE_TEST_MODE:-prebuilt}
BUILDER=localhost/swift-builder:bookworm-local
PORT=${IMAGE_TEST_PORT:-18480}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'image-test: FAIL: %s\n' "$*" >&2; exit 1; }

mkdir -p "$WORK"

step "runtime base image $RUNTIME_BASE"
if podman image exists "$RUNTIME_BASE"; then
    echo "present"
else
    if ! command -v debootstrap >/dev/null; then
        apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
    fi
    rootfs="$WORK/rootfs-runtime"
    if [ ! -x "$rootfs/usr/bin/apt-get" ]; then
        rm -rf "$rootfs"
        debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR"
    fi
    # What debian:bookworm-slim has: updates and security suites, no package caches.
    cat > "$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
EOF
    # Like debian:bookworm-slim: no documentation, manual pages or translations, now or later.
    cat > "$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
    # …and no apt package caches left in image layers.
    cat > "$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar --numeric-owner -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$RUNTIME_BASE" >/dev/null
    echo "imported"
fi

if [ "$MODE" = full ]; then
    step "build-stage base image $BUILDER"
    if podman image exists "$BUILDER"; then
        echo "present"
    else
        # What the official swift:*-bookworm images install for the toolchain; the toolchain itself
        # is this host's /opt/swift, mounted into every RUN of the build.
        podman build --format docker -t "$BUILDER" --build-arg BASE="$RUNTIME_BASE" -f - "$WORK" <<'EOF'
ARG BASE
FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends binutils ca-certificates git \
        libc6-dev libcurl4 libedit2 libgcc-12-dev libncurses6 libsqlite3-0 libstdc++-12-dev \
        libxml2 libz3-4 pkg-config tzdata zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/swift/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EOF
    fi

    step "podman build (default target: multi-stage, compiles in the build stage)"
    podman build --format docker \
        --build-arg BUILD_IMAGE="$BUILDER" --build-arg RUNTIME_IMAGE="$RUNTIME_BASE" \
        --build-arg GIT_CONFIG_COUNT=1 \
        --build-arg GIT_CONFIG_KEY_0=url./opt/swift-packages/.insteadOf \
        --build-arg GIT_CONFIG_VALUE_0=https://github.com/ \
        -v /opt/swift:/opt/swift:ro -v /opt/swift-packages:/opt/swift-packages:ro \
        -f Dockerfile -t "$IMAGE" .
else
    step "release binary with the static Swift standard library"
    swift build -c release --product ocimand --static-swift-stdlib 2>&1 | tail -n 2
    binary="$(swift build -c release --show-bin-path)/ocimand"
    if ldd "$binary" | grep -q 'libswift\|libFoundation'; then
        fail "$binary still links the Swift runtime dynamically"
    fi
    context="$WORK/context"
    rm -rf "$context" && mkdir -p "$context"
    install -s -m 0755 "$binary" "$context/ocimand"  # stripped, as the build stage does
    echo "$(du -h "$context/ocimand" | cut -f1) $binary"

    step "podman build --target runtime-prebuilt"
    # --format docker: the OCI image format has no HEALTHCHECK.
    podman build --format docker --target runtime-prebuilt \
        --build-arg RUNTIME_IMAGE="$RUNTIME_BASE" \
        -f Dockerfile -t "$IMAGE" "$context"
fi
podman run --rm --entrypoint /bin/sh "$IMAGE" -c \
    'if ldd /usr/local/bin/ocimand | grep -q "not found\|libswift"; then ldd /usr/local/bin/ocimand; exit 1; fi' \
    || fail "the binary in the image misses libraries or links the Swift runtime"
podman image inspect "$IMAGE" --format 'size {{.Size}} bytes, user {{.Config.User}}, healthcheck {{.Config.Healthcheck.Test}}'

step "run it against the $ENGINE engine socket"
case "$ENGINE" in
    docker) socket=/var/run/docker.sock ;;
    podman) socket=/run/podman/podman.sock ;;
    *) fail "IMAGE_TEST_ENGINE must be docker or podman" ;;
esac
[ -S "$socket" ] || fail "no engine socket at $socket (run scripts/setup-engines.sh)"
token_file="$WORK/ocimand-token"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$token_file"
chmod 0444 "$token_file"  # the container user (uid 10001) reads it; it lives under .build-image only
token=$(cat "$token_file")
# The container user reaches the socket through the group that owns it (docker's is "docker").
socket_group=$(stat -c %g "$socket")

podman rm -f "$CONTAINER" >/dev/null 2>&1 || true
cleanup() {
    status=$?
    if [ "$status" -ne 0 ]; then
        echo "--- container log" >&2
        podman logs "$CONTAINER" >&2 2>&1 || true
    fi
    if [ "${KEEP:-0}" != 1 ]; then podman rm -f "$CONTAINER" >/dev/null 2>&1 || true; fi
    exit "$status"
}
trap cleanup EXIT
podman run -d --name "$CONTAINER" \
    -p "127.0.0.1:$PORT:8420" \
    -v "$socket:$socket" --group-add "$socket_group" -e OCIMAN_BACKEND="$ENGINE" \
    -v "$PWD/$token_file:/run/secrets/ocimand-token:ro" \
    "$IMAGE" >/dev/null

base="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null -H "Authorization: Bearer $token" "$base/health" 2>/dev/null; then break; fi
    podman container exists "$CONTAINER" && [ "$(podman inspect -f '{{.State.Running}}' "$CONTAINER")" = true ] \
        || fail "the container exited"
    sleep 0.1
done

step "GET /health and /backend through the container"
health=$(curl -fsS -H "Authorization: Bearer $token" "$base/health") || fail "/health"
echo "/health  $health"
[ "$health" = '{"status":"ok"}' ] || fail "/health answered $health"
backend=$(curl -fsS -H "Authorization: Bearer $token" "$base/backend") || fail "/backend"
echo "/backend $backend"
echo "$backend" | grep -q "\"kind\":\"$ENGINE\"" || fail "/backend does not report $ENGINE"

unauthenticated=$(curl -s -o /dev/null -w '%{http_code}' "$base/backend")
echo "/backend without the token: HTTP $unauthenticated"
[ "$unauthenticated" = 401 ] || fail "listening on 0.0.0.0 without requiring the token (HTTP $unauthenticated)"

step "image HEALTHCHECK (ocimand healthcheck, no curl)"
podman healthcheck run "$CONTAINER" && echo "healthy" || fail "HEALTHCHECK failed"

step "runs as"
podman exec "$CONTAINER" id
[ "$(podman exec "$CONTAINER" id -u)" = 10001 ] || fail "not running as uid 10001"

step "first log lines (JSON)"
podman logs "$CONTAINER" 2>&1 | head -n 3

echo
echo "image-test: OK ($IMAGE, $ENGINE engine, http://127.0.0.1:$PORT)"
