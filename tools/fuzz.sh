#!/usr/bin/env bash
# In-process fuzzing of every reader with libFuzzer and AddressSanitizer (docs/robustness.md).
#
#   tools/fuzz.sh build                 build .build/fuzz/bin/fuzz-<target> and the seed corpora
#   tools/fuzz.sh run TARGET [RUNS]     fuzz one target (default 1,000,000 executions)
#   tools/fuzz.sh all [RUNS]            every target in turn
#   tools/fuzz.sh smoke                 every target for a few thousand executions
#   tools/fuzz.sh replay TARGET FILE..  run inputs once (a finding, a fixture)
#
# Targets: pickle, zip, npy, safetensors, aisw, image, hdf5. Each is tools/fuzz/<target>.swift
# plus tools/fuzz/FuzzSupport.swift, linked against the library targets built by SwiftPM with
# coverage and ASan (a separate build folder; the normal build is untouched). Seeds come from
# Tests/Fixtures. Every input must end in a clean result or a one-line FileError; anything
# else — a crash, an ASan report, a message over two lines, a run over 1 s (-timeout=1), an
# allocation over 512 MB (-malloc_limit_mb) — stops the run and leaves the input as
# .build/fuzz/findings/<target>/crash-* (or timeout-*, oom-*).
# hdf5 runs in libFuzzer's -fork mode with crashes ignored: libhdf5 is known to crash on
# corrupt files, which is why the commands read HDF5 in a separate process (HDF5Isolation);
# every crash found is replayed through aislfd-inspect, which must answer it in one line.
# Run from the repository root; Swift on the PATH (/opt/swift/usr/bin). Timed runs on the
# shared machine: `flock /tmp/aislfd-bench.lock tools/fuzz.sh all`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
BUILD=.build/fuzz
BIN=$BUILD/bin
CORPUS=$BUILD/corpus
FINDINGS=$BUILD/findings
TARGETS="pickle zip npy safetensors aisw image hdf5"
# Swift's runtime keeps allocations to the end of the process; leaks are not what this looks for.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:${ASAN_OPTIONS:-}"

modules_of() {
    case "$1" in
        aisw) echo "AISLFDCore AISLFDFormat" ;;
        image) echo "AISLFDCore AISLFDImages CImageShims" ;;
        *) echo "AISLFDCore AISLFDReaders" ;;
    esac
}

build() {
    local flags=(-c release --build-path "$BUILD" -Xswiftc -sanitize=fuzzer,address
                 -Xcc -fsanitize=fuzzer-no-link,address)
    for target in AISLFDReaders AISLFDFormat AISLFDImages; do
        swift build "${flags[@]}" --target "$target" 2>&1 | grep -v "ld.gold: warning" | tail -1
    done
    mkdir -p "$BIN"
    local libs
    libs="$(pkg-config --libs hdf5 zlib libpng libjpeg)"
    for t in $TARGETS; do
        local objects=()
        for m in $(modules_of "$t"); do objects+=("$BUILD"/release/"$m".build/*.o); done
        # shellcheck disable=SC2086
        swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name "Fuzz_$t" \
            -I "$BUILD/release/Modules" -I Sources/CHDF5 -I Sources/CZlib -I Sources/CPNG -I Sources/CJPEG \
            -Xcc -fmodule-map-file="$BUILD/release/CImageShims.build/module.modulemap" $(pkg-config --cflags-only-I hdf5 | sed 's/-I/-Xcc -I/g') \
            tools/fuzz/FuzzSupport.swift "tools/fuzz/$t.swift" "${objects[@]}" $libs -o "$BIN/fuzz-$t" 2>&1 \
            | grep -v "ld.gold: warning" || true
        [ -x "$BIN/fuzz-$t" ] || { echo "fuzz-$t did not build" >&2; exit 1; }
    done
    seeds
}

# The committed fixtures of each format (hostile ones included) as the starting corpus.
seeds() {
    # The seeds afresh; what the runs added (<target>.new) stays.
    for t in $TARGETS; do rm -rf "${CORPUS:?}/$t"; mkdir -p "$CORPUS/$t" "$CORPUS/$t.new" "$FINDINGS/$t"; done
    local f
    for f in Tests/Fixtures/torch/*.pth Tests/Fixtures/torch/training/*.pth Weights/*.pth; do
        # The pickle target takes data.pkl alone.
        local entry
        entry=$(unzip -Z1 "$f" 2>/dev/null | grep 'data\.pkl$' | head -1 || true)
        if [ -n "$entry" ]; then unzip -p "$f" "$entry" > "$CORPUS/pickle/$(basename "$f").pkl"; fi
    done
    cp Tests/Fixtures/npz/*.npz Tests/Fixtures/zip/*.zip Tests/Fixtures/torch/*.pth "$CORPUS/zip/"
    cp Tests/Fixtures/npz/*.npy Tests/Fixtures/images/*.npy Tests/Fixtures/inputs/*.npy "$CORPUS/npy/"
    cp Tests/Fixtures/safetensors/*.safetensors "$CORPUS/safetensors/"
    cp Tests/Fixtures/aisw/*.aisw "$CORPUS/aisw/"
    cp Tests/Fixtures/images-io/*.png Tests/Fixtures/images-io/*.jpg Tests/Fixtures/images/*.png \
       Tests/Fixtures/images/*.jpg "$CORPUS/image/"
    cp Tests/Fixtures/hdf5/*.h5 "$CORPUS/hdf5/"
}

max_len() {
    case "$1" in
        image) echo 16384 ;;   # a 16 kB JPEG may still claim 8 megapixels: enough, and fast
        hdf5) echo 65536 ;;
        *) echo 65536 ;;
    esac
}

run() {
    local t=$1 runs=${2:-1000000}
    [ -x "$BIN/fuzz-$t" ] || build
    mkdir -p "$FINDINGS/$t" "$CORPUS/$t.new"
    local common=(-runs="$runs" -timeout=1 -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len="$(max_len "$t")"
                  -artifact_prefix="$FINDINGS/$t/" -print_final_stats=1)
    local start=$SECONDS log=$BUILD/logs/$t.log status=0
    mkdir -p "$BUILD/logs"
    if [ "$t" = hdf5 ]; then
        # Each job a process of its own; crashes inside libhdf5 recorded, not fatal. The run ends
        # after -runs executions or HDF5_SECONDS, whichever comes first. Its exit status counts
        # the ignored crashes (71 after a run with crashes), so the replay below decides instead.
        "$BIN/fuzz-$t" "${common[@]}" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
            -max_total_time="${HDF5_SECONDS:-1800}" "$CORPUS/$t.new" "$CORPUS/$t" > "$log" 2>&1 || true
        grep -E "^#[0-9]+: cov" "$log" | tail -1
        replay_hdf5 || status=1
    else
        "$BIN/fuzz-$t" "${common[@]}" "$CORPUS/$t.new" "$CORPUS/$t" > "$log" 2>&1 || status=$?
        grep -E "^#[0-9]+ *DONE|stat::number_of_executed_units|stat::peak_rss_mb|ERROR|Fatal error|SUMMARY|Test unit written" "$log" | head -20
    fi
    echo "$t: $((SECONDS - start)) s, exit $status; findings: $(find "$FINDINGS/$t" -type f | wc -l) (log: $log)"
    return $status
}

# Every libhdf5 crash the fuzzer kept, through the real isolated reader: one line, exit 2.
replay_hdf5() {
    swift build -c release --product aislfd-inspect 2>&1 | tail -1
    local f out bad=0
    for f in "$FINDINGS"/hdf5/crash-* "$FINDINGS"/hdf5/timeout-* "$FINDINGS"/hdf5/oom-*; do
        [ -e "$f" ] || continue
        set +e
        out=$(.build/release/aislfd-inspect "$f" 2>&1 >/dev/null)
        local status=$?
        set -e
        # libhdf5 may read past its buffers without crashing outside ASan: then the file reads.
        if [ "$status" -gt 2 ] || { [ "$status" -ne 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" -ne 1 ]; }; then
            echo "isolation did not hold for $f: exit $status: $out" >&2
            bad=1
        fi
    done
    echo "hdf5: $(find "$FINDINGS/hdf5" -type f | wc -l) libhdf5 findings replayed through aislfd-inspect"
    return $bad
}

replay() {
    local t=$1
    shift
    [ -x "$BIN/fuzz-$t" ] || build
    "$BIN/fuzz-$t" -runs=1 -timeout=1 -malloc_limit_mb=512 "$@"
}

case "${1:-}" in
    build) build ;;
    run) run "$2" "${3:-1000000}" ;;
    all) failed=0; for t in $TARGETS; do run "$t" "${2:-1000000}" || failed=1; done; exit $failed ;;
    smoke)
        build
        failed=0
        for t in $TARGETS; do
            if [ "$t" = hdf5 ]; then HDF5_SECONDS=20 run hdf5 || failed=1; else run "$t" 3000 || failed=1; fi
        done
        exit $failed ;;
    replay) replay "${@:2}" ;;
    *) sed -n '2,8p' "$0"; exit 2 ;;
esac
