# Sourced by scripts/setup-engines.sh before dockerd starts: dockerd also listens on
# tcp://127.0.0.1:2376 with mutual TLS (certificates from scripts/setup/test-pki.sh), set in
# /etc/docker/daemon.json so that every start of dockerd has it, --fresh-docker-root's included.
# A dockerd that runs without the listener (or with older certificates) is stopped here, and
# ensure_dockerd starts it again.
DOCKER_TLS_ADDRESS=127.0.0.1:2376
DOCKER_DAEMON_JSON=/etc/docker/daemon.json

docker_tls_answers() {
    local client=$OCIMAN_PKI/docker-client
    [ "$(curl -s --max-time 3 --cacert "$client/ca.pem" --cert "$client/cert.pem" --key "$client/key.pem" \
        "https://$DOCKER_TLS_ADDRESS/_ping" 2>/dev/null)" = OK ]
}

ensure_docker_tls_config() {
    local server=$OCIMAN_PKI/dockerd want
    want=$(jq -n --arg ca "$server/ca.pem" --arg cert "$server/cert.pem" --arg key "$server/key.pem" \
        --arg tcp "tcp://$DOCKER_TLS_ADDRESS" '
        {hosts: ["unix:///var/run/docker.sock", $tcp], tlsverify: true, tlscacert: $ca, tlscert: $cert, tlskey: $key}')
    local current='{}'
    [ -s "$DOCKER_DAEMON_JSON" ] && current=$(cat "$DOCKER_DAEMON_JSON")
    # Keys set by others stay; ours are added or corrected.
    local merged
    merged=$(jq -S --argjson want "$want" '. + $want' <<<"$current") || die "$DOCKER_DAEMON_JSON is not JSON"
    if [ "$(jq -S . <<<"$current")" != "$merged" ]; then
        mkdir -p "$(dirname "$DOCKER_DAEMON_JSON")"
        printf '%s\n' "$merged" >"$DOCKER_DAEMON_JSON"
        ACTIONS+=("wrote $DOCKER_DAEMON_JSON (TLS listener on $DOCKER_TLS_ADDRESS)")
    fi
    ping_sock "$DOCKER_SOCK" || return 0
    docker_tls_answers && return 0
    stop_dockerd "to restart it with its TLS listener on $DOCKER_TLS_ADDRESS"
    ACTIONS+=("stopped dockerd to add its TLS listener")
}

ensure_docker_tls_config
