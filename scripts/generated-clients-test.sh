#!/usr/bin/env bash
# Generated clients: generate a Python client from openapi.yaml with openapi-python-client and
# one with openapi-generator (generator `python`), fail on any generator warning the contract
# could avoid, and run one container and image lifecycle through each against a live ocimand
# on each engine (scripts/generated_clients/lifecycle_*.py). Run by `make test`; needs the venv
# that scripts/setup-engines.sh makes (scripts/setup/client-generators.sh).
#
#   CLIENTS_ENGINES="docker podman"   engines to run against (each gets its own ocimand)
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINES=${CLIENTS_ENGINES:-docker podman}
VENV=.venv-clients
source scripts/lib/ocimand.sh
[[ -x $VENV/bin/openapi-python-client && -x $VENV/bin/openapi-generator-cli ]] \
    || { echo "generated-clients: $VENV is missing; run scripts/setup-engines.sh" >&2; exit 1; }

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/ociman-clients.XXXXXX")
trap 'ocimand_stop; rm -rf "$SCRATCH"' EXIT

# openapi-generator warns about two things whatever the contract says: its OpenAPI 3.1 support
# being beta, and "Failed to get the schema name: null", which it prints for any document with
# a component schema (a one-schema OpenAPI 3.0.3 document gets it too). Any other warning fails.
OGEN_KNOWN_WARNINGS='OpenAPI 3.1 support is still in beta|Failed to get the schema name: null'

echo "generated-clients: openapi-python-client"
"$VENV/bin/openapi-python-client" generate --path openapi.yaml --meta none --output-path "$SCRATCH/ociman_opc" \
    --config scripts/generated_clients/opc-config.yaml >"$SCRATCH/opc.log" 2>&1 \
    || { cat "$SCRATCH/opc.log" >&2; exit 1; }
if grep -qiE 'warning|error|unsupported|cannot|skipping|will not be generated' "$SCRATCH/opc.log"; then
    echo "generated-clients: openapi-python-client warned:" >&2
    cat "$SCRATCH/opc.log" >&2
    exit 1
fi

echo "generated-clients: openapi-generator (python)"
"$VENV/bin/openapi-generator-cli" generate -i openapi.yaml -g python -o "$SCRATCH/ogen" --package-name ociman_ogen \
    --global-property apiTests=false,modelTests=false,apiDocs=false,modelDocs=false >"$SCRATCH/ogen.log" 2>&1 \
    || { cat "$SCRATCH/ogen.log" >&2; exit 1; }
if grep -E '\b(WARN|ERROR)\b' "$SCRATCH/ogen.log" | grep -vqE "$OGEN_KNOWN_WARNINGS"; then
    echo "generated-clients: openapi-generator warned:" >&2
    grep -E '\b(WARN|ERROR)\b' "$SCRATCH/ogen.log" | grep -vE "$OGEN_KNOWN_WARNINGS" >&2
    exit 1
fi

failed=()
for engine in $ENGINES; do
    ocimand_start "$engine" "$SCRATCH/ocimand-$engine.log" || { failed+=("$engine: ocimand"); continue; }
    run=$(date +%s)-$$
    for client in opc ogen; do
        if ! PYTHONPATH="scripts/generated_clients:$SCRATCH:$SCRATCH/ogen" \
            timeout 300 "$VENV/bin/python" "scripts/generated_clients/lifecycle_$client.py" "$OCIMAND_URL" "$run-$engine"; then
            failed+=("$engine: $client")
        fi
    done
    ocimand_stop
done
if ((${#failed[@]})); then
    echo "generated-clients: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "generated-clients: both clients passed their lifecycle on: $ENGINES"
