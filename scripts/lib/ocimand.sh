# Sourced by the scripts that check a live ocimand (contract-test.sh, readme-check.sh): start the
# debug build on a free loopback port for one engine, wait until it is ready, stop it.
#
#   ocimand_start ENGINE LOGFILE [ocimand arguments...]   sets OCIMAND_PID and OCIMAND_URL
#   ocimand_alive                                         the process started last runs and answers /health
#   ocimand_stop                                          SIGTERM, then wait (exits 0 when graceful)

OCIMAND_BINARY=${OCIMAND_BINARY:-.build/debug/ocimand}
OCIMAND_PID=
OCIMAND_URL=

ocimand_start() {
    local engine=$1 log=$2 port tries=0
    shift 2
    if [[ ! -x $OCIMAND_BINARY ]]; then
        PATH="$PATH:/opt/swift/usr/bin" swift build --product ocimand
    fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$OCIMAND_BINARY" --listen "127.0.0.1:$port" --backend "$engine" --log-level warning "$@" >"$log" 2>&1 &
    OCIMAND_PID=$!
    OCIMAND_URL=http://127.0.0.1:$port
    until curl -sf "$OCIMAND_URL/ready" >/dev/null; do
        if ((++tries > 100)) || ! kill -0 "$OCIMAND_PID" 2>/dev/null; then
            echo "ocimand ($engine) did not become ready; log:" >&2
            cat "$log" >&2
            ocimand_stop
            return 1
        fi
        sleep 0.1
    done
}

ocimand_alive() {
    [[ -n $OCIMAND_PID ]] && kill -0 "$OCIMAND_PID" 2>/dev/null \
        && curl -sf --max-time 10 "$OCIMAND_URL/health" >/dev/null
}

ocimand_stop() {
    if [[ -n $OCIMAND_PID ]]; then
        kill -TERM "$OCIMAND_PID" 2>/dev/null || true
        wait "$OCIMAND_PID" 2>/dev/null || true
        OCIMAND_PID=
    fi
}
