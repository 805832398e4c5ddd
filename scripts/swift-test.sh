#!/usr/bin/env bash
# `swift test` with its arguments, then:
#  - on failure, the recorded issues again at the end (a CI log that keeps only its last lines
#    still names the test that failed and why);
#  - the failed tests run once more, alone. Tests that drive real engines on 2 cores can lose a
#    race with them; a test that fails again fails the run, one that passes is reported as FLAKY
#    by name, loudly, so it gets fixed rather than forgotten.
set -uo pipefail
swift=${SWIFT:-swift}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# xunit FILE failed|passed|filter: the failed tests' names, how many passed, or a --filter
# matching exactly the failed ones (their identifiers are Module.Suite[/Inner]/function).
xunit() {
    python3 - "$@" <<'PY'
import re, sys, xml.etree.ElementTree as ET
path, what = sys.argv[1], sys.argv[2]
try:
    cases = list(ET.parse(path).getroot().iter("testcase"))
except (OSError, ET.ParseError):
    cases = []
failed = [c for c in cases if c.find("failure") is not None or c.find("error") is not None]
if what == "failed":
    for c in failed:
        print(f'{c.get("classname")}/{c.get("name")}')
elif what == "passed":
    print(len(cases) - len(failed))
else:
    print("|".join(
        "(^|[./])" + re.escape(c.get("classname").split(".")[-1]) + "/" + re.escape(c.get("name"))
        for c in failed))
PY
}

"$swift" test "$@" --xunit-output "$work/first.xml" 2>&1 | tee "$work/first.log"
status=${PIPESTATUS[0]}
[ "$status" = 0 ] && exit 0

echo "swift-test: failed (exit $status); the issues recorded:"
grep -a -A3 -E "✘|[Ff]atal error|Crash" "$work/first.log" | tail -n 80
mapfile -t failed < <(xunit "$work/first-swift-testing.xml" failed)
# A crash or a build failure leaves no test to name; many failures are no race: run none again.
if [ "${#failed[@]}" = 0 ] || [ "${#failed[@]}" -gt 3 ]; then
    echo "swift-test: ${#failed[@]} failed tests named; not running any again"
    exit "$status"
fi
echo "swift-test: running the failed tests once more: ${failed[*]}"
# The same arguments, with the failed tests as the only filter.
args=()
skip_next=0
for arg in "$@"; do
    if [ $skip_next = 1 ]; then skip_next=0; continue; fi
    case "$arg" in
        --filter) skip_next=1 ;;
        --skip-build) ;;
        *) args+=("$arg") ;;
    esac
done
"$swift" test --skip-build "${args[@]}" --filter "$(xunit "$work/first-swift-testing.xml" filter)" \
    --xunit-output "$work/again.xml" 2>&1 | tail -n 40
again=${PIPESTATUS[0]}
if [ "$again" = 0 ] && [ "$(xunit "$work/again-swift-testing.xml" passed)" = "${#failed[@]}" ]; then
    echo "swift-test: FLAKY — failed once, passed when run again: ${failed[*]}"
    exit 0
fi
echo "swift-test: failed again: ${failed[*]}"
exit "$status"
