# Sourced by scripts/setup-engines.sh: what scripts/generated-clients-test.sh needs to generate
# ociman's Python clients from openapi.yaml and run them: Java 17 (openapi-generator's jar, which
# the openapi-generator-cli wheel bundles) and a venv, .venv-clients at the repository root, with
# both generators and the generated clients' runtime libraries at pinned versions.

CLIENTS_VENV="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.venv-clients"
CLIENTS_PINS=(
    openapi-python-client==0.29.1 openapi-generator-cli==7.26.0
    # openapi-python-client's clients
    httpx==0.28.1 attrs==26.1.0 python-dateutil==4.0.0
    # openapi-generator's clients
    urllib3==2.8.0 pydantic==2.14.4 typing-extensions==4.16.0
)

ensure_client_generators() {
    ensure_pkgs openjdk-17-jre-headless python3-venv
    local stamp="$CLIENTS_VENV/ociman-pins"
    [ "$(cat "$stamp" 2>/dev/null)" = "${CLIENTS_PINS[*]}" ] && return 0
    log "installing the client generators into $CLIENTS_VENV"
    [ -x "$CLIENTS_VENV/bin/python" ] || python3 -m venv "$CLIENTS_VENV" || die "cannot create $CLIENTS_VENV"
    "$CLIENTS_VENV/bin/pip" install --quiet --disable-pip-version-check "${CLIENTS_PINS[@]}" \
        || die "pip install of the client generators failed"
    echo "${CLIENTS_PINS[*]}" >"$stamp"
    ACTIONS+=("installed the client generators")
}
