# Sourced by scripts/setup-engines.sh (before rootless-podman.sh, which restarts the user's Podman
# service when the registries configuration changed): two Debian docker-registry instances (the reference registry)
#   127.0.0.1:5000  plain HTTP, no auth (Docker treats 127.0.0.0/8 as insecure by itself; Podman is
#                   told so in /etc/containers/registries.conf.d/ociman-test.conf)
#   127.0.0.1:5443  TLS with a certificate of the test CA (scripts/setup/test-pki.sh) and htpasswd
#                   auth; both engines trust the CA through their certs.d directories. The user and
#                   a password generated here are in /etc/ociman-test/registry-auth/credentials.json.
OCIMAN_REGISTRY_DIR=/etc/ociman-test
OCIMAN_REGISTRY_DATA=/var/lib/ociman-registry
OCIMAN_REGISTRY_USER=ociman
REGISTRIES_CONF_CHANGED=0

registry_start() {   # registry_start NAME PROBE_URL CURL_ARGS...
    local name=$1 url=$2; shift 2
    local config=$OCIMAN_REGISTRY_DIR/registry-$name/config.yml pidfile=/run/ociman-registry-$name.pid
    local pid code
    pid=$(cat "$pidfile" 2>/dev/null || true)
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$@" "$url" 2>/dev/null || true)
    if pid_alive "$pid" && [ "$code" != 000 ]; then return 0; fi
    pid_alive "$pid" && kill "$pid"
    log "starting the $name registry (log: /var/log/ociman-registry-$name.log)"
    (cd / && exec setsid docker-registry serve "$config") >"/var/log/ociman-registry-$name.log" 2>&1 </dev/null &
    pid=$!
    disown "$pid" 2>/dev/null || true
    echo "$pid" >"$pidfile"
    local i
    for ((i = 0; i < 100; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$@" "$url" 2>/dev/null || true)
        [ "$code" != 000 ] && { ACTIONS+=("started the $name registry"); return 0; }
        pid_alive "$pid" || break
        sleep 0.1
    done
    tail -n 20 "/var/log/ociman-registry-$name.log" >&2
    die "the $name registry does not answer $url"
}

ensure_registries() {
    local open=$OCIMAN_REGISTRY_DIR/registry-open auth=$OCIMAN_REGISTRY_DIR/registry-auth
    mkdir -p "$open" "$auth" "$OCIMAN_REGISTRY_DATA/open" "$OCIMAN_REGISTRY_DATA/auth"
    chmod 700 "$auth"
    cat >"$open/config.yml" <<CONF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $OCIMAN_REGISTRY_DATA/open}
  delete: {enabled: true}
http: {addr: "127.0.0.1:5000"}
CONF
    if [ ! -s "$auth/credentials.json" ] || [ ! -s "$auth/htpasswd" ]; then
        local password
        password=$(openssl rand -hex 16)
        htpasswd -Bbn "$OCIMAN_REGISTRY_USER" "$password" >"$auth/htpasswd"
        jq -n --arg u "$OCIMAN_REGISTRY_USER" --arg p "$password" '{username: $u, password: $p}' >"$auth/credentials.json"
        chmod 600 "$auth/credentials.json" "$auth/htpasswd"
        ACTIONS+=("made the auth registry's credentials")
    fi
    cat >"$auth/config.yml" <<CONF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $OCIMAN_REGISTRY_DATA/auth}
  delete: {enabled: true}
http:
  addr: "127.0.0.1:5443"
  tls: {certificate: $OCIMAN_PKI/registry/cert.pem, key: $OCIMAN_PKI/registry/key.pem}
auth:
  htpasswd: {realm: ociman-test, path: $auth/htpasswd}
CONF
    # The engines trust the test CA for the auth registry (rootless Podman reads /etc/containers too).
    local dir
    for dir in /etc/docker/certs.d/127.0.0.1:5443 /etc/containers/certs.d/127.0.0.1:5443; do
        mkdir -p "$dir"
        cmp -s "$OCIMAN_PKI/ca.pem" "$dir/ca.crt" || cp "$OCIMAN_PKI/ca.pem" "$dir/ca.crt"
    done
    # A running Podman service keeps the registries configuration it read first: restarted on a change.
    local insecure=/etc/containers/registries.conf.d/ociman-test.conf
    local text='# Written by scripts/setup/registries.sh: the test registry without TLS.
[[registry]]
location = "127.0.0.1:5000"
insecure = true'
    if [ "$(cat "$insecure" 2>/dev/null)" != "$text" ]; then
        mkdir -p "$(dirname "$insecure")"
        printf '%s\n' "$text" >"$insecure"
        REGISTRIES_CONF_CHANGED=1
        ACTIONS+=("wrote $insecure")
        stop_our_podman_service && ensure_podman_service
    fi
    # Test runs push seed snapshots and leave them (a registry frees space only by garbage
    # collection while it is stopped): past 2 GiB a store is emptied, it holds test images only.
    local name pidfile
    for name in open auth; do
        [ "$(du -sm "$OCIMAN_REGISTRY_DATA/$name" | cut -f1)" -gt 2048 ] || continue
        pidfile=/run/ociman-registry-$name.pid
        pid_alive "$(cat "$pidfile" 2>/dev/null)" && kill "$(cat "$pidfile")" && sleep 0.5
        find "$OCIMAN_REGISTRY_DATA/$name" -mindepth 1 -delete
        ACTIONS+=("emptied the $name registry's store")
    done
    registry_start open http://127.0.0.1:5000/v2/
    registry_start auth https://127.0.0.1:5443/v2/ --cacert "$OCIMAN_PKI/ca.pem"
}

ensure_pkgs docker-registry apache2-utils
ensure_registries
