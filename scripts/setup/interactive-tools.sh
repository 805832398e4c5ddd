# Sourced by scripts/setup-engines.sh: what the interactive tests drive ocimand with.
#
#   tmux                        a real terminal for `ociman exec -it` / `ociman run -it`
#   /opt/ociman-venv-ws         a venv with Python's `websockets` (pinned), the WebSocket client
#                               nobody on this project wrote (Tests/interactive/ws_session.py)

WS_VENV=/opt/ociman-venv-ws
WS_VERSION=17.4

ensure_interactive_tools() {
    ensure_pkgs tmux python3-venv
    if ! "$WS_VENV/bin/python" -c "import websockets, sys; sys.exit(websockets.__version__ != '$WS_VERSION')" 2>/dev/null; then
        log "installing websockets $WS_VERSION into $WS_VENV"
        [ -x "$WS_VENV/bin/python" ] || python3 -m venv "$WS_VENV"
        "$WS_VENV/bin/pip" install --quiet --disable-pip-version-check "websockets==$WS_VERSION"
        ACTIONS+=("websockets $WS_VERSION in $WS_VENV")
    fi
}
