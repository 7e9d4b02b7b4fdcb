#!/usr/bin/env bash
# entry-points.sh - keeps the lists of entry points in sim/README.md true to the built
# simulated libcuda.so.1.
#
# Usage: sim/entry-points.sh --check|--update README LIBCUDA
#
# An implemented entry point is one the library defines strongly (nm -D type T); every
# other exported cu* symbol is the weak stub of build/gen/sim_stubs.c (type W), which
# returns CUDA_ERROR_NOT_SUPPORTED. The README holds each list, names wrapped in a text
# block, between the marker lines <!-- entry-points:NAME --> and <!-- /entry-points:NAME -->
# (NAME: implemented, unsupported). --check exits 1 with one line when they differ
# (tests/test_sim_readme.c runs it); --update rewrites them.
set -euo pipefail
mode=${1:-} readme=${2:-} lib=${3:-}
if [ "$mode" != --check ] && [ "$mode" != --update ] || [ ! -r "$readme" ] || [ ! -r "$lib" ]; then
    echo "usage: sim/entry-points.sh --check|--update README LIBCUDA" >&2
    exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Names of type $1 (T or W), space-separated, wrapped at 96 columns.
names() {
    nm -D --defined-only "$lib" | awk -v t="$1" '$2 == t && $3 ~ /^cu/ {print $3}' | LC_ALL=C sort |
        awk '{ if (len && len + 1 + length($0) > 96) { printf "\n"; len = 0 }
               printf "%s%s", len ? " " : "", $0; len += (len ? 1 : 0) + length($0) }
             END { if (len) printf "\n" }'
}
names T > "$tmp/implemented"
names W > "$tmp/unsupported"

# The README with both lists replaced by the generated ones.
awk -v dir="$tmp" '
    /^<!-- entry-points:[a-z]+ -->$/ {
        print
        name = $0; sub(/^<!-- entry-points:/, "", name); sub(/ -->$/, "", name)
        print "```text"
        while ((getline line < (dir "/" name)) > 0) print line
        print "```"
        skip = 1
        next
    }
    /^<!-- \/entry-points:[a-z]+ -->$/ { skip = 0 }
    !skip { print }
' "$readme" > "$tmp/readme"

for list in implemented unsupported; do
    if ! grep -q "^<!-- entry-points:$list -->\$" "$readme"; then
        echo "entry-points: $readme has no <!-- entry-points:$list --> block" >&2
        exit 1
    fi
done

if [ "$mode" = --update ]; then
    cp "$tmp/readme" "$readme"
elif ! cmp -s "$tmp/readme" "$readme"; then
    echo "entry-points: the lists in $readme are not those of $lib: run sim/entry-points.sh --update $readme $lib" >&2
    exit 1
fi
