#!/usr/bin/env bash
# gpu-check.sh - checks qvgpu on a machine with an NVIDIA GPU and driver, in one go, and
# prints a table. Needs no package access (see docs/gpu-check.md for bringing the build's
# libraries along) and takes under 8 minutes.
#
#   scripts/gpu-check.sh [--no-build] [--logs DIR] [--quick] [--tests PATTERN] [--sim]
#
#   --no-build       use the programs already in $QVGPU_BUILD (default build/)
#   --logs DIR       where each part's log goes (default gpu-check-<date>-<time>/)
#   --quick          short compute windows (1 s instead of 6)
#   --tests PATTERN  run only the test binaries whose name contains PATTERN
#   --sim            the same plumbing on the simulated driver (build/sim), for machines
#                    without a GPU; `make test` runs it this way (tests/test_gpu_check.c)
#
# Parts, in order; each that cannot run says why (SKIP) and the rest go on:
#   build            make, the tests, the CUDA C++ program (when there is an nvcc)
#   driver           the driver and GPU found (never build/sim, unless --sim)
#   unit tests       the test suite on that driver; the binaries that only make sense on
#                    the simulated one (tests/sim-only.list) are skipped and listed
#   self-check       tests/progs/sim_selfcheck: devices, memory, copies, a timed PTX kernel
#   vGPU: ...        inside a Q2 vGPU: nvidia-smi, the CUDA C++ program, PyTorch, CuPy,
#                    JAX each see the 2 GiB quota (JAX preallocates 75% of it) and are
#                    refused past it
#   compute: ...     throughput alone in a vGPU vs without the shim; two vGPUs with
#                    share = limit = 30 and 70 (within 2 points); shares 10 and 30 without
#                    limits keep the GPU busy. PyTorch matmul loops where PyTorch has CUDA,
#                    else tests/progs/demo_worker's PTX spin kernels
#   demo             scripts/demo.sh, whose PTX kernel then runs on the real GPU
# Exit status: 0 when no part failed, 1 otherwise, 2 for a bad flag.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

usage() {
    sed -n '6,12p' "$0" | sed 's/^# \{0,1\}//'
}

build=1 quick=0 sim=0 logs= pattern=
while [ $# -gt 0 ]; do
    case $1 in
    --no-build) build=0 ;;
    --quick) quick=1 ;;
    --sim) sim=1 ;;
    --logs | --tests)
        [ $# -ge 2 ] || { usage >&2; exit 2; }
        if [ "$1" = --logs ]; then logs=$2; else pattern=$2; fi
        shift
        ;;
    -h | --help) usage; exit 0 ;;
    *) echo "gpu-check: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

b=$(cd "${QVGPU_BUILD:-build}" 2>/dev/null && pwd) || b=$root/build
logs=${logs:-$root/gpu-check-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$logs" || { echo "gpu-check: cannot make $logs" >&2; exit 2; }
logs=$(cd "$logs" && pwd)
py=${PYTHON:-python3}
started=$(date +%s)
echo "gpu-check: logs in $logs"

# ---- the table ----------------------------------------------------------------------
names=() results=() details=()
row() {
    names+=("$1") results+=("$2") details+=("$3")
    printf 'gpu-check: %-30s %-4s %s\n' "$1" "$2" "$3"
}

# ---- the driver: the real one, never build/sim (unless --sim) ----------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/qvgpu-gpu-check.XXXXXX")
if [ $sim = 1 ]; then
    export LD_LIBRARY_PATH="$b/sim${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export QSIM_NAMESPACE=${QSIM_NAMESPACE:-gpu-check-$$}
    export QV_TEST_DRIVER=sim
else
    LD_LIBRARY_PATH=$(printf '%s' "${LD_LIBRARY_PATH:-}" | tr ':' '\n' | grep -vx "$b/sim" |
        paste -sd: -)
    export LD_LIBRARY_PATH
    export QV_TEST_DRIVER=real
fi

arb_pid=
cleanup() {
    trap - EXIT INT TERM
    [ -n "$arb_pid" ] && kill -TERM "$arb_pid" 2>/dev/null && wait "$arb_pid" 2>/dev/null
    [ $sim = 1 ] && rm -f "/dev/shm/qsim-$QSIM_NAMESPACE"
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build --------------------------------------------------------------------------
built=1
if [ $build = 1 ]; then
    t0=$(date +%s)
    jobs=$(nproc 2>/dev/null || echo 4)
    if make -j"$jobs" build-tests > "$logs/build.log" 2>&1; then
        row build PASS "$(($(date +%s) - t0)) s ($logs/build.log)"
    else
        built=0
        row build FAIL "make failed: $(grep -m1 -iE 'error|missing' "$logs/build.log" | cut -c1-90)"
    fi
else
    row build SKIP "--no-build: using $b"
fi
for f in qarbiter qgpuctl libqshim.so tests/progs/sim_selfcheck tests/progs/demo_worker; do
    [ -e "$b/$f" ] || { built=0; echo "gpu-check: $b/$f is missing" >> "$logs/build.log"; }
done

# ---- driver -------------------------------------------------------------------------
gpu=0
if [ $built = 0 ]; then
    row driver SKIP "no build"
elif [ $sim = 1 ]; then
    gpu=1
    row driver PASS "simulated (build/sim), QSIM_NAMESPACE=$QSIM_NAMESPACE"
elif "$b/tests/progs/sim_selfcheck" --probe 2> "$logs/driver.log"; then
    gpu=1
    if command -v nvidia-smi > /dev/null; then
        row driver PASS "$(nvidia-smi --query-gpu=name,driver_version,memory.total \
            --format=csv,noheader -i 0 2>/dev/null | head -1)"
    else
        row driver PASS "NVML reports a GPU (no nvidia-smi)"
    fi
else
    row driver FAIL "no NVIDIA driver with a GPU found (--sim checks the plumbing without one)"
fi
skip_no_gpu() {
    row "$1" SKIP "$([ $built = 0 ] && echo "no build" || echo "no GPU")"
}

# ---- unit tests ---------------------------------------------------------------------
if [ $gpu = 1 ]; then
    T=$pattern timeout 240 scripts/run-tests.sh "$b" > "$logs/unit-tests.log" 2>&1
    rc=$?
    passed=$(grep -o 'all [0-9]* test binaries passed' "$logs/unit-tests.log" | grep -o '[0-9]*')
    skipped=$(grep -o 'skipped [0-9]* binaries' "$logs/unit-tests.log" | grep -o '[0-9]*')
    if [ $rc = 0 ]; then
        row "unit tests" PASS "${passed:-?} binaries passed, ${skipped:-0} skipped as sim-only (listed in unit-tests.log)"
    elif [ $rc = 124 ]; then
        row "unit tests" FAIL "timed out after 240 s (unit-tests.log)"
    else
        row "unit tests" FAIL "$(grep -m1 'run-tests: FAILED' "$logs/unit-tests.log" | cut -c12-110)"
    fi
else
    skip_no_gpu "unit tests"
fi

# ---- self-check ---------------------------------------------------------------------
if [ $gpu = 1 ]; then
    if timeout 60 "$b/tests/progs/sim_selfcheck" > "$logs/self-check.log" 2>&1; then
        row self-check PASS "$(grep -m1 'kernel' "$logs/self-check.log" | sed 's/^ *//' | cut -c1-90)"
    else
        row self-check FAIL "$(grep -m1 -i 'fail' "$logs/self-check.log" | cut -c1-90)"
    fi
else
    skip_no_gpu self-check
fi

# ---- an arbiter and a Q2 vGPU -------------------------------------------------------
ctl() {
    "$b/qgpuctl" --socket-dir "$tmp/run" "$@"
}
arbiter_up() {
    mkdir -p "$tmp/run" "$tmp/state"
    "$b/qarbiter" --socket-dir "$tmp/run" --state-dir "$tmp/state" --http off \
        > "$logs/arbiter.log" 2>&1 &
    arb_pid=$!
    for _ in $(seq 100); do
        ctl gpus > /dev/null 2>&1 && return 0
        kill -0 "$arb_pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
have_python() {
    command -v "$py" > /dev/null
}

q2=
if [ $gpu = 1 ]; then
    if arbiter_up && q2=$(ctl create --vm gpu-check-q2 --profile Q2 2>> "$logs/arbiter.log"); then
        quota=2048
    else
        q2=
        echo "gpu-check: the arbiter did not start or refused the vGPU" >> "$logs/arbiter.log"
    fi
fi
vgpu_row() { # NAME: the row's name, after a failed start of the arbiter or without a GPU
    if [ $gpu = 0 ]; then skip_no_gpu "$1"; else row "$1" FAIL "no vGPU (arbiter.log)"; fi
}

# nvidia-smi inside the vGPU: the vGPU's memory.
if [ -z "$q2" ]; then
    vgpu_row "vGPU: nvidia-smi"
elif ! command -v nvidia-smi > /dev/null; then
    row "vGPU: nvidia-smi" SKIP "nvidia-smi not installed"
else
    ctl run "$q2" -- nvidia-smi --query-gpu=memory.total,memory.used --format=csv,noheader,nounits \
        > "$logs/vgpu-nvidia-smi.log" 2>&1
    total=$(head -1 "$logs/vgpu-nvidia-smi.log" | cut -d, -f1 | tr -d ' ')
    if [ "$total" = "$quota" ]; then
        row "vGPU: nvidia-smi" PASS "memory.total $total MiB = the quota"
    else
        row "vGPU: nvidia-smi" FAIL "memory.total '$total' MiB, quota $quota MiB"
    fi
fi

# The CUDA C++ program (runtime linked statically, as nvcc does by default).
if [ -z "$q2" ]; then
    vgpu_row "vGPU: CUDA C++ (nvcc)"
elif [ ! -x "$b/tests/progs/cudart_work" ]; then
    row "vGPU: CUDA C++ (nvcc)" SKIP "not built: no nvcc in ${CUDA_HOME:-/usr/local/cuda}/bin"
else
    ctl run "$q2" -- "$b/tests/progs/cudart_work" > "$logs/vgpu-cudart.log" 2>&1
    rc=$?
    total=$(awk '$1 == "meminfo" {print $4}' "$logs/vgpu-cudart.log")
    if [ $rc = 0 ] && [ "$total" = $((quota << 20)) ]; then
        row "vGPU: CUDA C++ (nvcc)" PASS "cudaMemGetInfo total = quota, refused past it, kernel $(awk '$1 == "launch" {print $3}' "$logs/vgpu-cudart.log") ms"
    else
        row "vGPU: CUDA C++ (nvcc)" FAIL "exit $rc, cudaMemGetInfo total '$total' (vgpu-cudart.log)"
    fi
fi

# The frameworks, through scripts/gpu-check.py: 0 ran, 3 skip=REASON, else failed.
framework() { # ROW SUBCOMMAND LOG
    if [ -z "$q2" ]; then
        vgpu_row "$1"
        return 1
    fi
    if ! have_python; then
        row "$1" SKIP "no $py"
        return 1
    fi
    timeout 180 "$b/qgpuctl" --socket-dir "$tmp/run" run "$q2" -- \
        "$py" "$root/scripts/gpu-check.py" "$2" "$quota" > "$logs/$3" 2>&1
    rc=$?
    line=$(grep -E '^(total_mib|bytes_limit_mib|skip|error)=' "$logs/$3" | tail -1)
    case $rc in
    0) return 0 ;;
    3) row "$1" SKIP "$(printf '%s' "${line#skip=}" | tr _ ' ')" ;;
    *) row "$1" FAIL "exit $rc: ${line:-see $3}" ;;
    esac
    return 1
}
field() { # KEY LINE
    printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

if framework "vGPU: PyTorch" torch-vgpu vgpu-torch.log; then
    t=$(field total_mib "$line") past=$(field past "$line")
    l0=$(field loss_first "$line") l1=$(field loss_last "$line")
    if [ "$t" = "$quota" ] && [ "$past" = OutOfMemoryError ] &&
        awk -v a="$l1" -v b="$l0" 'BEGIN { exit !(a < b) }'; then
        row "vGPU: PyTorch" PASS "mem_get_info total $t MiB, OutOfMemoryError past it, loss $l0 -> $l1"
    else
        row "vGPU: PyTorch" FAIL "total $t MiB (quota $quota), past the quota: $past, loss $l0 -> $l1"
    fi
fi
if framework "vGPU: CuPy" cupy-vgpu vgpu-cupy.log; then
    t=$(field total_mib "$line") past=$(field past "$line")
    if [ "$t" = "$quota" ] && [ "$past" = OutOfMemoryError ]; then
        row "vGPU: CuPy" PASS "memGetInfo total $t MiB, OutOfMemoryError past it"
    else
        row "vGPU: CuPy" FAIL "total $t MiB (quota $quota), past the quota: $past"
    fi
fi
if framework "vGPU: JAX" jax-vgpu vgpu-jax.log; then
    f=$(field fraction "$line") m=$(field bytes_limit_mib "$line")
    if awk -v f="$f" 'BEGIN { exit !(f >= 0.70 && f <= 0.80) }'; then
        row "vGPU: JAX" PASS "preallocated $m MiB = $f of the quota (default 0.75)"
    else
        row "vGPU: JAX" FAIL "preallocated $m MiB = $f of the quota, not about 0.75"
    fi
fi
[ -n "$q2" ] && ctl destroy "$q2" >> "$logs/arbiter.log" 2>&1

# ---- compute ------------------------------------------------------------------------
# A measurement runs one worker per target (a vGPU id, or - for no shim) over the same
# window and prints each one's figure: demo_worker's achieved GPU share in percent, or
# PyTorch's matmuls per second.
secs=$([ $quick = 1 ] && echo 1 || echo 6)
workload=demo
if [ $gpu = 1 ] && have_python &&
    "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    workload=torch
fi
# Seconds for the workers to get ready before the window opens.
lead=$([ $workload = torch ] && echo 10 || echo $((quick ? 1 : 2)))
measure() { # LOG TARGET...
    local log=$1
    shift
    local start=$(($(date +%s%N) + lead * 1000000000)) pids=() i=0
    for target in "$@"; do
        local cmd=("$b/tests/progs/demo_worker" --start-at "$start" --seconds "$secs")
        [ $workload = torch ] && cmd=("$py" "$root/scripts/gpu-check.py" torch-matmul "$start" "$secs")
        if [ "$target" = - ]; then
            "${cmd[@]}" > "$tmp/w$i" 2>&1 &
        else
            ctl run "$target" -- "${cmd[@]}" > "$tmp/w$i" 2>&1 &
        fi
        pids+=($!)
        i=$((i + 1))
    done
    i=0
    for p in "${pids[@]}"; do
        wait "$p"
        { echo "== worker $i ($1)"; cat "$tmp/w$i"; } >> "$logs/$log"
        if [ $workload = torch ]; then
            sed -n 's/.*rate=\([0-9.]*\).*/\1/p' "$tmp/w$i" | tail -1
        else
            sed -n 's/.*achieved_pct=\([0-9.]*\).*/\1/p' "$tmp/w$i" | tail -1
        fi
        i=$((i + 1))
        shift
    done
}
mk() { # VM ARGS... : a vGPU's id, or nothing
    ctl create --vm "$1" "${@:2}" 2>> "$logs/arbiter.log"
}
pct() { # FIGURE BASELINE: FIGURE as a percentage of BASELINE
    awk -v f="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", 100 * f / b; else print "?" }'
}
mem=$([ $workload = torch ] && echo 4GiB || echo 1GiB)
if [ $gpu = 0 ] || [ -z "$arb_pid" ]; then
    for r in "compute: alone vs no shim" "compute: limits 30/70" "compute: shares 10/30 busy"; do
        vgpu_row "$r"
    done
else
    echo "workload: $workload, window $secs s" > "$logs/compute.log"
    # Every figure is taken relative to one worker's without the shim: matmul rates, or
    # demo_worker's share of GPU time (about 100% alone).
    base=$(measure compute.log -)
    a=$(mk gpu-check-alone --memory $mem --share 30)
    if [ -n "$a" ]; then
        f=$(measure compute.log "$a")
        r=$(pct "$f" "$base")
        ctl destroy "$a" >> "$logs/arbiter.log" 2>&1
        if awk -v r="$r" 'BEGIN { exit !(r >= 90) }'; then
            row "compute: alone vs no shim" PASS "$r% of the no-shim throughput ($workload)"
        else
            row "compute: alone vs no shim" FAIL "$r% of the no-shim throughput ($workload), want >= 90%"
        fi
    else
        row "compute: alone vs no shim" FAIL "could not create the vGPU (arbiter.log)"
    fi
    l30=$(mk gpu-check-l30 --memory $mem --share 30 --limit 30)
    l70=$(mk gpu-check-l70 --memory $mem --share 70 --limit 70)
    if [ -n "$l30" ] && [ -n "$l70" ]; then
        figs=($(measure compute.log "$l30" "$l70"))
        p30=$(pct "${figs[0]:-0}" "$base") p70=$(pct "${figs[1]:-0}" "$base")
        if awk -v a="$p30" -v b="$p70" 'BEGIN { exit !(a >= 28 && a <= 32 && b >= 68 && b <= 72) }'; then
            row "compute: limits 30/70" PASS "achieved $p30% and $p70% ($workload)"
        else
            row "compute: limits 30/70" FAIL "achieved $p30% and $p70% ($workload), want 30 and 70 within 2 points"
        fi
    else
        row "compute: limits 30/70" FAIL "could not create the vGPUs (arbiter.log)"
    fi
    for v in $l30 $l70; do ctl destroy "$v" >> "$logs/arbiter.log" 2>&1; done
    s10=$(mk gpu-check-s10 --memory $mem --share 10)
    s30=$(mk gpu-check-s30 --memory $mem --share 30)
    if [ -n "$s10" ] && [ -n "$s30" ]; then
        figs=($(measure compute.log "$s10" "$s30"))
        p10=$(pct "${figs[0]:-0}" "$base") p30=$(pct "${figs[1]:-0}" "$base")
        sum=$(awk -v a="$p10" -v b="$p30" 'BEGIN { printf "%.1f", a + b }')
        if awk -v s="$sum" 'BEGIN { exit !(s >= 90) }'; then
            row "compute: shares 10/30 busy" PASS "achieved $p10% + $p30% = $sum% ($workload)"
        else
            row "compute: shares 10/30 busy" FAIL "achieved $p10% + $p30% = $sum% ($workload), want >= 90%"
        fi
    else
        row "compute: shares 10/30 busy" FAIL "could not create the vGPUs (arbiter.log)"
    fi
    for v in $s10 $s30; do ctl destroy "$v" >> "$logs/arbiter.log" 2>&1; done
fi
if [ -n "$arb_pid" ]; then
    kill -TERM "$arb_pid" 2>/dev/null
    wait "$arb_pid" 2>/dev/null
    arb_pid=
fi

# ---- the demo -----------------------------------------------------------------------
if [ $gpu = 1 ]; then
    if QVGPU_BUILD=$b timeout 120 scripts/demo.sh --no-build --seconds "$([ $quick = 1 ] && echo 1 || echo 4)" \
        > "$logs/demo.log" 2>&1; then
        row demo PASS "$(grep -m1 -o 'GPU 0 was busy.*window' "$logs/demo.log")"
    else
        row demo FAIL "$(tail -1 "$logs/demo.log" | cut -c1-90)"
    fi
else
    skip_no_gpu demo
fi

# ---- the table ----------------------------------------------------------------------
failed=0
{
    printf '%-30s %-6s %s\n' PART RESULT DETAIL
    for i in "${!names[@]}"; do
        printf '%-30s %-6s %s\n' "${names[$i]}" "${results[$i]}" "${details[$i]}"
        [ "${results[$i]}" = FAIL ] && failed=1
    done
    echo
    echo "$(($(date +%s) - started)) s; driver: $([ $sim = 1 ] && echo simulated || echo real); logs: $logs"
} > "$logs/summary.txt"
echo
cat "$logs/summary.txt"
exit $failed
