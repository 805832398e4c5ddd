#!/usr/bin/env bash
# Contract test: schemathesis (PyPI, pinned) against a live ocimand on each engine, every route
# in openapi.yaml, all checks, a bounded number of examples. Run by `make test` after `swift test`.
#
#   CONTRACT_ENGINES="docker podman"   engines to run against (each gets its own ocimand)
#   CONTRACT_MAX_EXAMPLES=25           test cases per operation and phase
#   CONTRACT_SEED=20250115             fixed so a failure reproduces; set "random" for a fresh one
#   CONTRACT_ARGS="..."                extra `st run` arguments (e.g. --include-operation-id runContainer)
#
# The engines are shared with other suites: scripts/contract/hooks.py keeps every request on the
# run's own fixture and namespace, and scripts/contract/engine.py removes what the run created.
# Schemathesis runs one phase at a time (examples, coverage, fuzzing, stateful); after each, the
# same ocimand process must still be alive and answer /health, or the run fails there.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
ENGINES=${CONTRACT_ENGINES:-docker podman}
MAX_EXAMPLES=${CONTRACT_MAX_EXAMPLES:-25}
SEED=${CONTRACT_SEED:-20250115}
VENV=.venv
source scripts/lib/ocimand.sh

if [[ ! -x $VENV/bin/st ]] || [[ $($VENV/bin/st --version 2>/dev/null) != *" $SCHEMATHESIS_VERSION" ]]; then
    echo "contract: installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

RUN=$(date +%s)-$$
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/ociman-contract.XXXXXX")
failed=()
trap 'ocimand_stop; rm -rf "$SCRATCH"' EXIT

# POST JSON to ocimand; prints the status code.
post() {
    curl -sS -o "$SCRATCH/answer" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data "$2" "$OCIMAND_URL$1"
}

run_engine() {
    local engine=$1 dir=$SCRATCH/$1
    mkdir -p "$dir/state" "$dir/context" "$dir/bind"
    printf 'FROM localhost/busybox:test\n' >"$dir/context/Dockerfile"
    ocimand_start "$engine" "$dir/ocimand.log" --state-dir "$dir/state" --context-root "$dir/context" || return 1

    python3 scripts/contract/engine.py snapshot "$engine" "$dir/snapshot.json"
    local container=ociman-contract-$RUN image=localhost/ociman-contract-$RUN:fixture status
    # The fixture: what container ids and image references in paths are pointed at.
    status=$(post /containers "{\"image\":\"localhost/busybox:test\",\"name\":\"$container\",\"command\":[\"sleep\",\"300\"],\"labels\":{\"ociman.contract\":\"$RUN\"},\"ttl_seconds\":300}")
    [[ $status == 201 ]] || { echo "contract: fixture container: HTTP $status $(cat "$SCRATCH/answer")" >&2; return 1; }
    status=$(post /images/localhost%2Fbusybox:test/tag "{\"target\":\"$image\"}")
    [[ $status == 201 ]] || { echo "contract: fixture image: HTTP $status $(cat "$SCRATCH/answer")" >&2; return 1; }

    echo "contract: schemathesis against ocimand on $engine ($OCIMAND_URL, run $RUN)"
    local seed_args=(--seed "$SEED")
    [[ $SEED == random ]] && seed_args=()
    local status_st=0 phase
    for phase in examples coverage fuzzing stateful; do
        CONTRACT_RUN=$RUN CONTRACT_CONTAINER=$container CONTRACT_IMAGE=$image CONTRACT_SCRATCH=$dir/bind \
        CONTRACT_RECORD=$dir/created.ndjson CONTRACT_TRACE=${CONTRACT_TRACE:-} PYTHONPATH=scripts/contract SCHEMATHESIS_HOOKS=hooks \
            "$VENV/bin/st" --config-file scripts/contract/schemathesis.toml run openapi.yaml \
            --url "$OCIMAND_URL" --phases "$phase" --max-examples "$MAX_EXAMPLES" "${seed_args[@]}" \
            --request-timeout 30 --generation-database none --no-color ${CONTRACT_ARGS:-} || status_st=$?
        if ! ocimand_alive; then
            echo "contract: ocimand ($engine) is gone after the $phase phase; log tail:" >&2
            tail -n 40 "$dir/ocimand.log" >&2
            status_st=1
            break
        fi
    done

    ocimand_stop
    python3 scripts/contract/engine.py cleanup "$engine" "$RUN" "$dir/snapshot.json" "$dir/created.ndjson" || status_st=1
    if grep -qE 'Fatal error|panic' "$dir/ocimand.log"; then
        echo "contract: ocimand ($engine) crashed:" >&2
        grep -E -B2 -A10 'Fatal error|panic' "$dir/ocimand.log" >&2
        status_st=1
    fi
    return $status_st
}

for engine in $ENGINES; do
    run_engine "$engine" || failed+=("$engine")
done
if ((${#failed[@]})); then
    echo "contract: FAILED on ${failed[*]}" >&2
    exit 1
fi
echo "contract: passed on $ENGINES"
