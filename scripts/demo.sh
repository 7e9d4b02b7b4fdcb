#!/usr/bin/env bash
# demo.sh - the main job: three vGPUs share one GPU, each keeping to its memory quota and
# getting its compute share.
#
#   scripts/demo.sh [--no-build] [--seconds S]
#
# 1. installs what is missing and builds (skipped with --no-build: then the programs are
#    taken from $QVGPU_BUILD, else build/);
# 2. starts qarbiter on the GPUs it finds (on the simulated GPU in build/sim, in a private
#    QSIM_NAMESPACE, where there is no NVIDIA driver), with temporary socket and state dirs;
# 3. creates three vGPUs on GPU 0: profiles Q2 (2 GiB, 20%) and Q4 (4 GiB, 40%), and a
#    custom one (1536 MiB, 40%), so that their shares add up to the whole GPU;
# 4. runs tests/progs/demo_worker in each at the same time (`qgpuctl run ID -- ...`): it
#    allocates within its quota, tries to allocate past it, then floods the GPU with spin
#    kernels for S seconds (default 4) and measures the GPU time it got;
# 5. prints one row per vGPU: profile, the memory quota the workload saw, what became of
#    its allocation past the quota, configured and achieved share;
# 6. stops the arbiter and removes what it made, also on Ctrl-C or an error.
#
# Exit status: 0 when every workload ran and every allocation past a quota was refused;
# 1 otherwise (what went wrong is said on stderr); 2 for a bad flag.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: scripts/demo.sh [--no-build] [--seconds S]"
}

build=1
secs=4
while [ $# -gt 0 ]; do
    case $1 in
    --no-build) build=0 ;;
    --seconds)
        [ $# -ge 2 ] || { usage >&2; exit 2; }
        secs=$2
        shift
        ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done
case $secs in
'' | *[!0-9]*) echo "demo: --seconds wants a whole number of seconds, not '$secs'" >&2; exit 2 ;;
esac
[ "$secs" -ge 1 ] && [ "$secs" -le 60 ] || { echo "demo: --seconds must be 1 to 60" >&2; exit 2; }

if [ $build = 1 ]; then
    scripts/install-deps.sh
    jobs=$(nproc 2>/dev/null || echo 2)
    make -j"$jobs"
    make -j"$jobs" build/tests/progs/demo_worker build/tests/progs/sim_selfcheck
    b=$PWD/build
else
    b=$(cd "${QVGPU_BUILD:-build}" && pwd)
fi
for f in qarbiter qgpuctl libqshim.so tests/progs/demo_worker tests/progs/sim_selfcheck; do
    [ -e "$b/$f" ] || { echo "demo: $b/$f is missing: run scripts/demo.sh without --no-build" >&2; exit 1; }
done

die() {
    echo "demo: $*" >&2
    exit 1
}

# ---- cleanup, whatever happens --------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/qvgpu-demo.XXXXXX")
arb_pid=
workers=()
sim_ns=
cleanup() {
    trap - EXIT INT TERM
    for p in "${workers[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${workers[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [ -n "$arb_pid" ]; then
        kill -TERM "$arb_pid" 2>/dev/null || true
        wait "$arb_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
    # The simulated host's shared memory, once nobody uses it.
    [ -z "$sim_ns" ] || rm -f "/dev/shm/qsim-$sim_ns"
}
trap cleanup EXIT
trap 'echo "demo: interrupted, cleaning up" >&2; exit 130' INT
trap 'exit 143' TERM

# ---- the driver: a real one, else the simulated GPU ------------------------------------
if "$b/tests/progs/sim_selfcheck" --probe 2>/dev/null; then
    echo "demo: an NVIDIA driver is present: running on the real GPUs"
else
    sim_ns=qvgpu-demo-$$
    export QSIM_NAMESPACE=$sim_ns
    export LD_LIBRARY_PATH="$b/sim${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "demo: no NVIDIA driver found: running on the simulated GPU (build/sim)"
fi

# ---- the arbiter ----------------------------------------------------------------------
mkdir -p "$tmp/run" "$tmp/state"
printf '[arbiter]\nlog_level = warn\n' >"$tmp/qarbiter.ini"
"$b/qarbiter" --socket-dir "$tmp/run" --state-dir "$tmp/state" --config "$tmp/qarbiter.ini" \
    2>"$tmp/qarbiter.log" &
arb_pid=$!
for _ in $(seq 100); do
    [ -S "$tmp/run/admin.sock" ] && break
    kill -0 "$arb_pid" 2>/dev/null || { cat "$tmp/qarbiter.log" >&2; arb_pid=; die "qarbiter did not start"; }
    sleep 0.1
done
[ -S "$tmp/run/admin.sock" ] || { cat "$tmp/qarbiter.log" >&2; die "qarbiter did not come up in 10 s"; }

ctl() {
    "$b/qgpuctl" --socket-dir "$tmp/run" "$@"
}
echo
ctl gpus
echo

# ---- three vGPUs on GPU 0 -------------------------------------------------------------
names=(demo-q2 demo-q4 demo-custom)
specs=("--profile Q2" "--profile Q4" "--memory 1536MiB --share 40")
ids=()
for i in "${!names[@]}"; do
    # shellcheck disable=SC2086
    id=$(ctl create --vm "${names[$i]}" ${specs[$i]} --gpu 0) || die "cannot create vGPU ${names[$i]}"
    ids+=("$id")
    echo "demo: created $id (vm ${names[$i]}: ${specs[$i]})"
done

# ---- the workloads, at the same time --------------------------------------------------
# The measuring window opens once every worker has had time to start (about 0.1 s each on
# a quiet machine), so that all of them measure the same seconds.
start=$(($(date +%s%N) + 1500000000))
echo "demo: running a workload in each vGPU for $secs s ..."
for id in "${ids[@]}"; do
    timeout -s KILL $((secs + 15)) "$b/qgpuctl" --socket-dir "$tmp/run" run "$id" -- \
        "$b/tests/progs/demo_worker" --alloc-past-quota --start-at "$start" --seconds "$secs" \
        >"$tmp/$id.out" 2>"$tmp/$id.err" &
    workers+=($!)
done
failed=0
for i in "${!workers[@]}"; do
    if ! wait "${workers[$i]}"; then
        echo "demo: the workload in ${ids[$i]} failed:" >&2
        cat "$tmp/${ids[$i]}.out" "$tmp/${ids[$i]}.err" >&2
        failed=1
    fi
done
workers=()

# ---- the table ------------------------------------------------------------------------
# A word's value from a worker's "memory ..." or "compute ..." line.
field() {
    sed -n "s/^$2 .*\b$3=\([^ ]*\).*/\1/p" "$tmp/$1.out"
}
echo
printf '%-8s %-12s %-8s %12s  %-36s %6s %9s\n' VGPU VM PROFILE "MEMORY QUOTA" \
    "ALLOCATION PAST THE QUOTA" SHARE ACHIEVED
total=0
for i in "${!ids[@]}"; do
    id=${ids[$i]}
    info=$(ctl info "$id")
    profile=$(sed -n 's/^profile: *//p' <<<"$info")
    share=$(sed -n 's/^share: *//p' <<<"$info")
    quota=$(field "$id" memory quota_mib)
    within=$(field "$id" memory within)
    past=$(field "$id" memory past)
    achieved=$(field "$id" compute achieved_pct)
    if [ "$past" = CUDA_ERROR_OUT_OF_MEMORY ]; then
        verdict="refused (CUDA_ERROR_OUT_OF_MEMORY)"
    else
        verdict="NOT refused (${past:-no result})"
        failed=1
    fi
    [ "$within" = CUDA_SUCCESS ] ||
        { echo "demo: $id could not allocate within its quota: ${within:-no result}" >&2; failed=1; }
    [ "$(field "$id" compute late)" != 1 ] ||
        echo "demo: $id started after the window opened: its share is measured over less" >&2
    printf '%-8s %-12s %-8s %8s MiB  %-36s %6s %8.1f%%\n' "$id" "${names[$i]}" "$profile" \
        "${quota:-?}" "$verdict" "$share" "${achieved:-0}"
    total=$(awk -v a="$total" -v b="${achieved:-0}" 'BEGIN { printf "%.2f", a + b }')
done
echo
echo "GPU 0 was busy ${total}% of the ${secs} s window with these three workloads."
echo "Achieved = kernels completed x kernel length / window, as each workload measured it."
[ $failed = 0 ] || die "something above did not work as it should"
