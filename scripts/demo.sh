#!/usr/bin/env bash
# demo.sh - the main job, for now: install what is missing, build, then run a short
# self-check of the GPU driver found (tests/progs/sim_selfcheck.c) and print what it
# found: devices, memory, a timed kernel against its model, NVML's view.
#
# With a real NVIDIA driver (libnvidia-ml.so.1 loadable without build/sim and reporting
# a device) the self-check runs against it and says so; otherwise against the simulated
# GPU in build/sim (QSIM_GPUS and QSIM_NAMESPACE are honoured, see sim/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs"
make -j"$jobs" build/tests/progs/sim_selfcheck

check=build/tests/progs/sim_selfcheck
if "$check" --probe 2>/dev/null; then
    echo "demo: a real NVIDIA driver is present: checking it, not the simulator"
    exec "$check"
fi
echo "demo: no NVIDIA driver found: checking the simulated GPU in build/sim"
export LD_LIBRARY_PATH="$PWD/build/sim${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$check" --sim
