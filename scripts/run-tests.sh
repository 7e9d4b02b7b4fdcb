#!/usr/bin/env bash
# run-tests.sh BUILD_DIR - runs every Criterion binary in BUILD_DIR/tests against the
# simulated driver and exits non-zero if any test fails. Called by `make test`.
#   T=pattern   runs only the binaries whose name contains pattern (make test T=sim)
#   QV_TEST_DRIVER=real   runs against the installed NVIDIA driver instead (no build/sim
#               on the library path) and skips, listing them, the binaries that
#               tests/sim-only.list names (scripts/gpu-check.sh sets it)
#   FUZZ_SECONDS=N  how long each fuzz target in BUILD_DIR/fuzz runs at most (20; 0: not
#               run); they run when built (make fuzz, which make test does when clang is
#               there), from a fixed seed (FUZZ_SEED, 1) for FUZZ_RUNS inputs (500000) at
#               most, so that a run is a prefix of the same sequence on any machine: what
#               fails on a slow one fails on a fast one, and nothing fails by chance
set -u
b=${1:-build}
QVGPU_BUILD=$(readlink -f "$b")
export QVGPU_BUILD
driver=${QV_TEST_DRIVER:-sim}
case "$driver" in
sim) export LD_LIBRARY_PATH="$QVGPU_BUILD/sim${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
real)
    # Whatever the caller's environment says, the loader must not find build/sim.
    LD_LIBRARY_PATH=$(printf '%s' "${LD_LIBRARY_PATH:-}" | tr ':' '\n' | grep -vx "$QVGPU_BUILD/sim" |
        paste -sd: -)
    export LD_LIBRARY_PATH QV_TEST_DRIVER=real
    ;;
*) echo "run-tests: QV_TEST_DRIVER must be sim or real, not '$driver'" >&2; exit 2 ;;
esac
sim_only=$(dirname "$0")/../tests/sim-only.list
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
skipped=()
ran=0
for t in "$b"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    case "$name" in *"${T:-}"*) ;; *) continue ;; esac
    if [ "$driver" = real ]; then
        why=$(awk -v n="$name" '$1 == n { $1 = ""; sub(/^ +/, ""); print; exit }' "$sim_only")
        if [ -n "$why" ]; then
            skipped+=("$name ($why)")
            continue
        fi
    fi
    ran=$((ran + 1))
    echo "== $name"
    # Two jobs: the tests time GPU work on the simulated engine, which runs on the wall
    # clock, so they tolerate a busy machine but not an unbounded queue of processes.
    # A leak in a test's child process (where each test runs) is reported at its exit,
    # after Criterion counted the test as passed: in a SAN=1 build the report itself
    # fails the binary (Criterion's own runner is not checked: tests/runner_support.c).
    out=$(mktemp)
    timeout 900 "$t" --jobs "${QV_TEST_JOBS:-2}" --short-filename 2>&1 | tee "$out"
    if [ "${PIPESTATUS[0]}" -ne 0 ]; then
        failed+=("$name")
    elif grep -q 'ERROR: LeakSanitizer' "$out"; then
        failed+=("$name (LeakSanitizer: see its output)")
    fi
    rm -f "$out"
done
# The fuzz targets start from the committed seeds and write what they find new into
# BUILD_DIR/fuzz/corpus-NAME (never into the repository); a crash is a failure, its
# input saved beside them. README.md "Fuzzing" says how to run one for longer.
for f in "$b"/fuzz/*; do
    [ -f "$f" ] && [ -x "$f" ] || continue
    name=$(basename "$f")
    case "$name" in *"${T:-}"*) ;; *) continue ;; esac
    [ "${FUZZ_SECONDS:-20}" -gt 0 ] || continue
    ran=$((ran + 1))
    echo "== $name (${FUZZ_SECONDS:-20} s)"
    mkdir -p "$b/fuzz/corpus-$name"
    if ! timeout $((${FUZZ_SECONDS:-20} + 60)) "$f" "$b/fuzz/corpus-$name" tests/fuzz/corpus \
        -seed="${FUZZ_SEED:-1}" -runs="${FUZZ_RUNS:-500000}" \
        -max_total_time="${FUZZ_SECONDS:-20}" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$b/fuzz/" >"$b/fuzz/$name.log" 2>&1; then
        tail -40 "$b/fuzz/$name.log"
        failed+=("$name")
    else
        grep -E '^Done [0-9]+ runs' "$b/fuzz/$name.log" || true
    fi
done
echo
if [ ${#skipped[@]} -gt 0 ]; then
    echo "run-tests: skipped ${#skipped[@]} binaries that need the simulated driver:"
    printf '  %s\n' "${skipped[@]}"
fi
if [ "$ran" -eq 0 ]; then
    echo "run-tests: no test binary in $b/tests matches '${T:-}'" >&2
    exit 1
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "run-tests: FAILED ${#failed[@]} of $ran: ${failed[*]}" >&2
    exit 1
fi
echo "run-tests: all $ran test binaries passed"
