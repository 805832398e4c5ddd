#!/usr/bin/env bash
# make fuzz: builds a libFuzzer binary per pure parser (swiftc -sanitize=fuzzer,address,
# compiled straight from the parser's own source files, so no SwiftPM build and none of the
# NIO/OpenSSL dependencies) and runs each for FUZZ_SECONDS. Exits non-zero if any target
# crashes; the crashing input is left in .build-fuzz/artifacts/<target>/.
#
#   FUZZ_SECONDS=30        time per target
#   FUZZ_TARGETS="A B"     subset of: ImageReference FrameDecoder JSONStreamSplitter TarReader
#   FUZZ_JOBS=1            parallel fuzzing processes per target (libFuzzer -fork)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"

SECONDS_PER_TARGET=${FUZZ_SECONDS:-30}
TARGETS=${FUZZ_TARGETS:-ImageReference FrameDecoder JSONStreamSplitter TarReader}
OUT=.build-fuzz

# The source files each target needs: the parser and nothing that pulls in other modules.
sources() {
    case $1 in
        ImageReference) echo Sources/OcimanCore/Validation/ImageReference.swift ;;
        FrameDecoder) echo Sources/EngineDriver/FrameDecoder.swift ;;
        JSONStreamSplitter) echo Sources/EngineDriver/JSONStreamSplitter.swift ;;
        TarReader) echo Sources/OcimanCore/Hashing/TarReader.swift Sources/OcimanCore/Hashing/TarValidator.swift ;;
        *) echo "fuzz: unknown target $1" >&2; exit 2 ;;
    esac
}

# Largest input libFuzzer generates: tar needs several 512-byte blocks.
max_len() {
    case $1 in
        TarReader) echo 8192 ;;
        ImageReference) echo 512 ;;
        *) echo 4096 ;;
    esac
}

build() {
    local name=$1 binary=$OUT/bin/fuzz-$1
    local inputs=(Fuzz/"$name"/main.swift Fuzz/Support/*.swift $(sources "$name"))
    local newest
    newest=$(ls -t "${inputs[@]}" "$0" | head -1)
    if [[ -x $binary && $binary -nt $newest ]]; then return; fi
    echo "fuzz: building $name"
    mkdir -p "$OUT/bin" "$OUT/tmp/$name"
    swiftc -sanitize=fuzzer,address -parse-as-library -O -g -use-ld=lld \
        -module-name "Fuzz$name" -module-cache-path "$OUT/module-cache" \
        -o "$binary.tmp" "${inputs[@]}"
    mv "$binary.tmp" "$binary"
}

failed=()
for name in $TARGETS; do
    build "$name"
done
for name in $TARGETS; do
    # New coverage goes to the scratch corpus; the checked-in seeds stay as they are.
    corpus=$OUT/corpus/$name artifacts=$OUT/artifacts/$name
    mkdir -p "$corpus" "$artifacts"
    log=$OUT/$name.log
    echo "fuzz: $name for ${SECONDS_PER_TARGET}s"
    status=0
    # Swift's runtime keeps metadata caches for the life of the process; LeakSanitizer
    # reports them at exit, so leak checking is off (ASan still catches memory errors).
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
        "$OUT/bin/fuzz-$name" "$corpus" "Fuzz/corpus/$name" \
        -max_total_time="$SECONDS_PER_TARGET" -max_len="$(max_len "$name")" -timeout=10 \
        -rss_limit_mb=1024 -print_final_stats=1 ${FUZZ_JOBS:+-fork=$FUZZ_JOBS} \
        -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    coverage=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
    if [[ $status -ne 0 ]]; then
        echo "fuzz: $name FAILED (exit $status); log $log, input:"
        ls -1 "$artifacts"
        grep -E 'invariant violated|Fatal error|ERROR: AddressSanitizer|ERROR: libFuzzer|SUMMARY' "$log" | head -5
        failed+=("$name")
    else
        echo "fuzz: $name ok: ${runs:-?} runs, ${speed:-?} exec/s, ${coverage:-cov: ?}"
    fi
done

if ((${#failed[@]})); then
    echo "fuzz: crashes in ${failed[*]}; reproduce with $OUT/bin/fuzz-<target> <input>" >&2
    exit 1
fi
