#!/usr/bin/env bash
# install-bundle.sh LIBDIR VERSION FILE... - installs the shim bundle (docs/containers.md)
# into LIBDIR/qvgpu/VERSION/ and points LIBDIR/qvgpu/current at it.
#
# Running containers map the shim of the version they started with, read-only: a file
# is never rewritten in place (that is how a node's every workload gets SIGSEGV). Each
# file is written under a temporary name and renamed over the old one (a new inode: a
# process that maps the old keeps it intact), a new version goes to a directory of its
# own, and `current` is switched with a rename too. Old versions stay until nothing
# uses them; removing them is the package manager's business (issue 14).
set -euo pipefail
libdir=$1 version=$2
shift 2
[ -n "$version" ] || { echo "install-bundle: no VERSION" >&2; exit 2; }
dir="$libdir/qvgpu/$version"
mkdir -p "$dir"
for f in "$@"; do
    name=$(basename "$f")
    case "$name" in
        *.so | qvgpu-container-hook) mode=0755 ;;
        *) mode=0644 ;;
    esac
    install -m "$mode" "$f" "$dir/.$name.tmp"
    mv -f "$dir/.$name.tmp" "$dir/$name"
done
ln -sfn "$version" "$libdir/qvgpu/.current.tmp"
mv -fT "$libdir/qvgpu/.current.tmp" "$libdir/qvgpu/current"
