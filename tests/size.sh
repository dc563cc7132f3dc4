#!/usr/bin/env bash
# `make size`: the init's and the initramfs's bytes against the budgets in DESIGN.md.
set -euo pipefail
init=$1 initramfs=$2
init_budget=$((128 * 1024)) initramfs_budget=$((64 * 1024))
fail=0
report() { # name path budget
	local bytes; bytes=$(stat -Lc %s "$2")
	local verdict=ok
	((bytes <= $3)) || { verdict="OVER BUDGET"; fail=1; }
	printf '%-24s %7d bytes  (budget %7d, %3d%%)  %s\n' "$1" "$bytes" "$3" $((bytes * 100 / $3)) "$verdict"
}
report "init (stripped)" "$init" $init_budget
report "initramfs.cpio.gz" "$initramfs" $initramfs_budget
exit $fail
