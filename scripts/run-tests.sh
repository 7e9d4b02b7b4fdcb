#!/usr/bin/env bash
# run-tests.sh BUILD_DIR - runs every Criterion binary in BUILD_DIR/tests against the
# simulated driver and exits non-zero if any test fails. Called by `make test`.
#   T=pattern   runs only the binaries whose name contains pattern (make test T=sim)
#   QV_TEST_DRIVER=real   runs against the installed NVIDIA driver instead (no build/sim
#               on the library path) and skips, listing them, the binaries that
#               tests/sim-only.list names (scripts/gpu-check.sh sets it)
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
    if ! timeout 900 "$t" --jobs "${QV_TEST_JOBS:-2}" --short-filename; then
        failed+=("$name")
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
