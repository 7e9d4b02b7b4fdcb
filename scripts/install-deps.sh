#!/usr/bin/env bash
# install-deps.sh - installs what qvgpu builds and tests against, when it is missing.
#
# On Debian 12 as root it installs the missing packages with apt-get; anywhere else it
# says in one line what to install. It never touches the CUDA toolkit (not a Debian
# package in the version we need): the build names CUDA_HOME when the headers are missing.
set -eu

pkgs="build-essential pkg-config libzmq3-dev libmsgpack-dev libcriterion-dev libffi-dev
      libjansson-dev libinih-dev
      munge slurmctld slurmd slurm-client libslurm-dev
      podman runc crun mmdebstrap uidmap"
libs="libzmq msgpack criterion libffi jansson inih"

# Slurm (the SPANK plugin's headers; its tests run a real munged, slurmctld and slurmd).
slurm_files="/usr/include/slurm/spank.h /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd
             /usr/bin/srun"
have_slurm() {
    for f in $slurm_files; do [ -e "$f" ] || return 1; done
}

# Containers (docs/containers.md): the tests run podman, runc and crun on root file
# systems mmdebstrap builds (Debian 11 and 12, from deb.debian.org, cached in build/).
container_cmds="podman runc crun mmdebstrap newuidmap"
have_containers() {
    for c in $container_cmds; do command -v "$c" >/dev/null || return 1; done
}

# A machine whose compiler and pkg-config already find every library needs nothing
# (this is also how a machine without apt, set up with ../shared/gpu, passes: there Slurm
# and the container tools are optional, and without them their tests are skipped).
if command -v cc >/dev/null && command -v pkg-config >/dev/null &&
   pkg-config --exists $libs 2>/dev/null &&
   { { have_slurm && have_containers; } || ! command -v apt-get >/dev/null; }; then
    exit 0
fi

missing=""
if command -v dpkg-query >/dev/null; then
    for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
            missing="$missing $p"
    done
else
    missing=" $pkgs"
fi
[ -n "$missing" ] || exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "install-deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "install-deps: missing Debian packages:$missing (as root: apt-get install$missing)" >&2
    exit 1
fi
