# Sourced by scripts/setup-engines.sh: an sshd of its own on 127.0.0.1:2222 (key login for root
# only), a key for root, the host key in root's known_hosts and a `Host ociman-engine` block in
# root's ~/.ssh/config, so that DOCKER_HOST=ssh://root@ociman-engine reaches this machine's
# engines the way a user reaches a remote one: through the system ssh client and its config.
OCIMAN_SSHD_PORT=2222
OCIMAN_SSHD_DIR=/etc/ociman-test/sshd
OCIMAN_SSHD_PID=/run/ociman-sshd.pid
OCIMAN_SSH_KEY=/root/.ssh/ociman_test_ed25519
OCIMAN_SSH_ALIAS=ociman-engine

ensure_test_sshd() {
    mkdir -p "$OCIMAN_SSHD_DIR" /run/sshd /root/.ssh && chmod 700 /root/.ssh
    [ -s "$OCIMAN_SSHD_DIR/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C 'ociman test sshd' -f "$OCIMAN_SSHD_DIR/host_ed25519"
    [ -s "$OCIMAN_SSH_KEY" ] || ssh-keygen -q -t ed25519 -N '' -C 'ociman test client' -f "$OCIMAN_SSH_KEY"
    cat >"$OCIMAN_SSHD_DIR/sshd_config" <<CONF
# Written by scripts/setup/sshd.sh: the test engine host.
ListenAddress 127.0.0.1:$OCIMAN_SSHD_PORT
HostKey $OCIMAN_SSHD_DIR/host_ed25519
PidFile $OCIMAN_SSHD_PID
AuthorizedKeysFile $OCIMAN_SSHD_DIR/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers root
MaxSessions 100
MaxStartups 100:30:200
AcceptEnv LANG
Subsystem sftp internal-sftp
CONF
    # sshd insists on strict modes for the authorized keys it reads.
    install -m 600 "$OCIMAN_SSH_KEY.pub" "$OCIMAN_SSHD_DIR/authorized_keys"
    local known="[127.0.0.1]:$OCIMAN_SSHD_PORT $(cut -d' ' -f1,2 "$OCIMAN_SSHD_DIR/host_ed25519.pub")"
    touch /root/.ssh/known_hosts
    grep -qxF "$known" /root/.ssh/known_hosts || { printf '%s\n' "$known" >>/root/.ssh/known_hosts; ACTIONS+=("added the test sshd to root's known_hosts"); }
    if ! grep -q "^Host $OCIMAN_SSH_ALIAS\$" /root/.ssh/config 2>/dev/null; then
        # Prepended: ssh uses the first value it finds, so a catch-all `Host *` later cannot override it.
        local rest=""
        [ -f /root/.ssh/config ] && rest=$(cat /root/.ssh/config)
        printf '# ociman test engine host (scripts/setup/sshd.sh)\nHost %s\n    HostName 127.0.0.1\n    Port %s\n    User root\n    IdentityFile %s\n    IdentitiesOnly yes\n\n%s\n' \
            "$OCIMAN_SSH_ALIAS" "$OCIMAN_SSHD_PORT" "$OCIMAN_SSH_KEY" "$rest" >/root/.ssh/config
        chmod 600 /root/.ssh/config
        ACTIONS+=("added Host $OCIMAN_SSH_ALIAS to /root/.ssh/config")
    fi
    local pid
    pid=$(cat "$OCIMAN_SSHD_PID" 2>/dev/null || true)
    if pid_alive "$pid" && grep -qa sshd "/proc/$pid/cmdline"; then
        kill -HUP "$pid"    # re-reads sshd_config (a no-op when unchanged)
    else
        /usr/sbin/sshd -t -f "$OCIMAN_SSHD_DIR/sshd_config" || die "sshd rejects $OCIMAN_SSHD_DIR/sshd_config"
        /usr/sbin/sshd -f "$OCIMAN_SSHD_DIR/sshd_config" -E /var/log/ociman-sshd.log
        ACTIONS+=("started sshd on 127.0.0.1:$OCIMAN_SSHD_PORT")
    fi
    local i
    for ((i = 0; i < 50; i++)); do
        ssh -o BatchMode=yes -o ConnectTimeout=5 "$OCIMAN_SSH_ALIAS" true 2>/dev/null && return 0
        sleep 0.1
    done
    die "ssh $OCIMAN_SSH_ALIAS true fails; see /var/log/ociman-sshd.log"
}

ensure_pkgs openssh-server openssh-client
ensure_test_sshd
