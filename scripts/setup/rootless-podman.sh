# Sourced by scripts/setup-engines.sh: an unprivileged user with rootless Podman (SPEC §11) and its
# own API service on $XDG_RUNTIME_DIR/podman/podman.sock, with localhost/busybox:test imported.
# Needs: subuid/subgid ranges (useradd adds them), uidmap, slirp4netns, fuse-overlayfs,
# /dev/net/tun usable by the user (0666, as common distributions ship it), an XDG_RUNTIME_DIR of
# the user's own, and a containers.conf with runtime runc and the ulimits of §2.
ROOTLESS_USER=ociman-rootless
ROOTLESS_LOG=/var/log/ociman-podman-rootless.log

ensure_rootless_podman() {
    if ! id -u "$ROOTLESS_USER" >/dev/null 2>&1; then
        useradd --create-home --shell /bin/sh "$ROOTLESS_USER"
        ACTIONS+=("created user $ROOTLESS_USER")
    fi
    local uid
    uid=$(id -u "$ROOTLESS_USER")
    ROOTLESS_HOME=$(getent passwd "$ROOTLESS_USER" | cut -d: -f6)
    ROOTLESS_RUNTIME=/run/user/$uid
    ROOTLESS_SOCK=$ROOTLESS_RUNTIME/podman/podman.sock
    # A command prefix: what follows runs as the user, in the environment a login would give it.
    ROOTLESS_AS=(setpriv --reuid="$ROOTLESS_USER" --regid="$ROOTLESS_USER" --init-groups
        env -i HOME="$ROOTLESS_HOME" USER="$ROOTLESS_USER" PATH=/usr/local/bin:/usr/bin:/bin
        XDG_RUNTIME_DIR="$ROOTLESS_RUNTIME")
    local sub
    for sub in /etc/subuid /etc/subgid; do
        grep -q "^$ROOTLESS_USER:" "$sub" 2>/dev/null || { echo "$ROOTLESS_USER:200000:65536" >>"$sub"; ACTIONS+=("added $ROOTLESS_USER to $sub"); }
    done
    [ "$(stat -c %a /dev/net/tun)" = 666 ] || { chmod 0666 /dev/net/tun; ACTIONS+=("made /dev/net/tun 0666"); }
    install -d -m 700 -o "$ROOTLESS_USER" -g "$ROOTLESS_USER" "$ROOTLESS_RUNTIME" "$ROOTLESS_RUNTIME/podman"
    local conf_dir=$ROOTLESS_HOME/.config/containers
    install -d -o "$ROOTLESS_USER" -g "$ROOTLESS_USER" "$ROOTLESS_HOME/.config" "$conf_dir"
    if ! cmp -s <(printf '%s' "$CONF_TEXT") "$conf_dir/containers.conf"; then
        printf '%s' "$CONF_TEXT" >"$conf_dir/containers.conf"
        chown "$ROOTLESS_USER:" "$conf_dir/containers.conf"
        ACTIONS+=("wrote $conf_dir/containers.conf")
    fi
    local service
    service=$(pgrep -u "$ROOTLESS_USER" -f 'podman system service' || true)
    local why=""
    [ "${REGISTRIES_CONF_CHANGED:-0}" = 1 ] && why="for the new registries configuration"
    # As for the root service: one started in a directory since deleted starts no container.
    local p
    for p in $service; do
        cwd_deleted "$p" && why="whose working directory was deleted"
    done
    if [ -n "$service" ] && [ -n "$why" ]; then
        log "restarting $ROOTLESS_USER's Podman service (pid $service) $why"
        kill $service
        for _ in $(seq 1 50); do pgrep -u "$ROOTLESS_USER" -f 'podman system service' >/dev/null || break; sleep 0.1; done
    fi
    if ! ping_sock "$ROOTLESS_SOCK"; then
        rm -f "$ROOTLESS_SOCK"
        log "starting $ROOTLESS_USER's Podman API service on $ROOTLESS_SOCK (log: $ROOTLESS_LOG)"
        (cd / && exec setsid "${ROOTLESS_AS[@]}" podman system service --time=0 "unix://$ROOTLESS_SOCK") \
            >"$ROOTLESS_LOG" 2>&1 </dev/null &
        local pid=$!
        disown "$pid" 2>/dev/null || true
        wait_sock "$ROOTLESS_SOCK" 60 "$pid" || { tail -n 40 "$ROOTLESS_LOG" >&2; die "$ROOTLESS_USER's Podman service did not answer"; }
        ACTIONS+=("started $ROOTLESS_USER's podman service")
    fi
    local rootless
    rootless=$(curl -s --max-time 10 --unix-socket "$ROOTLESS_SOCK" http://localhost/v4.0.0/libpod/info | jq -r .host.security.rootless)
    [ "$rootless" = true ] || die "$ROOTLESS_USER's Podman does not report rootless: true (got $rootless)"
    if ! image_present "$ROOTLESS_SOCK" "$IMAGE"; then
        build_rootfs_tar
        import_rootfs "$ROOTLESS_SOCK" podman "$ROOTFS_TAR" "$IMAGE" 'CMD ["sh"]'
        local out
        out=$("${ROOTLESS_AS[@]}" podman run --rm "$IMAGE" echo ok 2>&1 | tail -n1)
        [ "$out" = ok ] || die "rootless 'podman run --rm $IMAGE echo ok' failed: $out"
        ACTIONS+=("imported $IMAGE into $ROOTLESS_USER's podman")
    fi
    ensure_postgres_image "$ROOTLESS_SOCK" podman   # (the engine kind picks the import route)
}

ensure_pkgs uidmap slirp4netns fuse-overlayfs
ensure_rootless_podman
