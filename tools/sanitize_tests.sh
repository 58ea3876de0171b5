#!/usr/bin/env bash
# Runs the whole test suite under AddressSanitizer, then under UndefinedBehaviorSanitizer
# (which checks the C targets: CKernels, CImageShims; Swift checks its own arithmetic and
# bounds in every build), each in a build folder of its own (.build/asan, .build/ubsan), in
# release as the numeric tests need. Any sanitizer report fails the test that triggered it.
# SwiftPM has no --sanitize=undefined for Linux targets, so the C targets are compiled with
# clang's -fsanitize=undefined in trap mode: undefined behaviour stops the test process.
#   tools/sanitize_tests.sh [address|undefined] [swift test options, e.g. --filter Readers]
# Leak checking is off: the Swift runtime and libhdf5 keep allocations until exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
kinds=${1:-"address undefined"}
[ $# -gt 0 ] && shift
status=0
for kind in $kinds; do
    case "$kind" in
        address) path=.build/asan; flags=(--sanitize=address) ;;
        undefined) path=.build/ubsan; flags=(-Xcc -fsanitize=undefined -Xcc -fsanitize-trap=undefined) ;;
        *) echo "unknown sanitizer '$kind' (address or undefined)" >&2; exit 2 ;;
    esac
    echo "== swift test -c release ${flags[*]} $*"
    start=$SECONDS
    if swift test -c release --build-path "$path" "${flags[@]}" "$@" 2>&1 | tee "$path.log" \
        | grep -E "^Test Suite 'All tests'|Executed [0-9]+ tests|error:|ERROR: AddressSanitizer|runtime error:|SUMMARY:" | tail -40; then
        :
    fi
    # A trap or a crash ends the test process early: no "All tests passed" line then.
    last=$(grep -E "Executed [0-9]+ tests" "$path.log" | tail -1 || true)
    if grep -qE "ERROR: AddressSanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer" "$path.log" \
        || [[ "$last" != *"with 0 failures"* ]] || ! grep -q "^Test Suite 'All tests' passed" "$path.log"; then
        echo "$kind: FAILED ($((SECONDS - start)) s; log: $path.log)"
        status=1
    else
        echo "$kind: clean ($((SECONDS - start)) s; log: $path.log)"
    fi
done
exit $status
