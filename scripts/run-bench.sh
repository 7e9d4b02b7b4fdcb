#!/usr/bin/env bash
# run-bench.sh BUILD_DIR - runs every benchmark in BUILD_DIR/bench on the simulated driver
# (or the real one with QVGPU_REAL_DRIVER=1) and prints its figures. Called by `make bench`.
#   B=pattern   runs only the benchmarks whose name contains pattern (make bench B=alloc)
set -u
b=${1:-build}
QVGPU_BUILD=$(readlink -f "$b")
export QVGPU_BUILD
if [ "${QVGPU_REAL_DRIVER:-0}" != 1 ]; then
    export LD_LIBRARY_PATH="$QVGPU_BUILD/sim${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
status=0
for x in "$b"/bench/*; do
    [ -x "$x" ] || continue
    name=$(basename "$x")
    case "$name" in *"${B:-}"*) ;; *) continue ;; esac
    echo "== $name"
    "$x" || status=1
done
exit $status
