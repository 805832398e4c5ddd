#!/usr/bin/env bash
# `swift test` with its arguments, and on failure the recorded issues again at the end: a CI log
# that keeps only its last lines then still names the test that failed and why.
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"${SWIFT:-swift}" test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" != 0 ]; then
    echo "swift-test: failed (exit $status); the issues recorded:"
    grep -A3 -E "✘|[Ff]atal error|Crash" "$log" | tail -n 80
fi
exit "$status"
