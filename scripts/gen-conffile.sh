#!/usr/bin/env bash
# gen-conffile.sh QARBITER OUT - writes the packaged /etc/qvgpu/qarbiter.conf: every key
# of qarbiter's configuration, commented out at its built-in default, as
# `QARBITER --config off --print-config` prints them from arbiter/config.c's table, so
# that the file cannot drift from the program (tests/test_package.c checks it).
set -euo pipefail
qarbiter=$1 out=$2
settings=$("$qarbiter" --config off --print-config)
{
    cat <<'HEAD'
# /etc/qvgpu/qarbiter.conf - settings of qarbiter, the qvgpu arbiter (qarbiter(8),
# docs/configuration.md). qarbiter reads this file when it starts without --config.
#
# Every key is shown commented out at its built-in default: remove the '#' before a
# key to change it, then `systemctl restart qarbiter`. Each key may be set once. A bad
# file stops the start with FILE:LINE and the problem (see `journalctl -u qarbiter`);
# `qarbiter --print-config` prints the settings in force and checks the file.

HEAD
    # the [arbiter] and [audit] sections, their keys commented out; the header dropped
    printf '%s\n' "$settings" | sed -n '/^\[/,$p' | sed -E 's/^([a-z_]+ = )/#\1/'
    cat <<'TAIL'

# Profiles of your own, used as `qgpuctl create --profile NAME`: a name of 1-32 letters,
# digits, '.', '_' or '-' (Q1, Q2, Q4 and Q8 are built in), memory, share (percent) and
# an optional limit (percent, not below the share). For example:
#[profile Q16]
#memory = 16GiB
#share = 60
#limit = 90
TAIL
} > "$out.tmp"
mv -f "$out.tmp" "$out"
