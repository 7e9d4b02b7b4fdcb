#!/usr/bin/env bash
# install-deps.sh - installs what qvgpu builds and tests against, when it is missing.
#
# On Debian 12 as root it installs the missing packages with apt-get; anywhere else it
# says in one line what to install. It never touches the CUDA toolkit (not a Debian
# package in the version we need): the build names CUDA_HOME when the headers are missing.
set -eu

pkgs="build-essential pkg-config libzmq3-dev libmsgpack-dev libcriterion-dev libffi-dev
      libjansson-dev libinih-dev libmicrohttpd-dev libsystemd-dev libjs-chart.js python3
      python3-pytest prometheus chromium
      debhelper fakeroot dpkg-dev man-db bash-completion systemd
      munge slurmctld slurmd slurm-client libslurm-dev
      podman runc crun mmdebstrap uidmap
      clang libclang-rt-14-dev"
# libmicrohttpd and libsystemd are optional (qarbiter is built without HTTP, or without
# telling systemd it is ready, when they are missing): installed here, not required.
libs="libzmq msgpack criterion libffi jansson inih"

# Slurm (the SPANK plugin's headers; its tests run a real munged, slurmctld and slurmd).
slurm_files="/usr/include/slurm/spank.h /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd
             /usr/bin/srun"
have_slurm() {
    for f in $slurm_files; do [ -e "$f" ] || return 1; done
}

# What the HTTP and Python tests run: the dashboard's Chart.js (served by qarbiter),
# Python with pytest (the qvgpu package), a Prometheus server and a headless browser.
# The container tests (docs/containers.md): podman, runc and crun on root file systems
# mmdebstrap builds (Debian 11 and 12, from deb.debian.org, cached in build/). The
# package tests: debhelper and fakeroot (make deb), man-db (man -l), systemd
# (systemd-analyze verify) and bash-completion. The fuzz target (make fuzz, and 20 s of it
# in make test): clang with libFuzzer's runtime (libclang-rt-14-dev).
have_tools() {
    [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import pytest' 2>/dev/null &&
        [ -x /usr/bin/prometheus ] && [ -x /usr/bin/chromium ] &&
        ls /usr/share/javascript/chart.js/chart*.js >/dev/null 2>&1 &&
        [ -f /usr/share/bash-completion/bash_completion ] &&
        for c in podman runc crun mmdebstrap newuidmap dh fakeroot dpkg-deb man systemd-analyze clang; do
            command -v "$c" >/dev/null || return 1
        done
}

# A machine whose compiler and pkg-config already find every library needs nothing
# (this is also how a machine without apt, set up with ../shared/gpu, passes: there Slurm
# and the test tools are optional, and without them the plugin is not built and the
# tests that need them are skipped).
if command -v cc >/dev/null && command -v pkg-config >/dev/null &&
   pkg-config --exists $libs 2>/dev/null &&
   { { have_slurm && have_tools; } || ! command -v apt-get >/dev/null; }; then
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
