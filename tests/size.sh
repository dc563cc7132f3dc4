#!/usr/bin/env bash
# `make size`: the init's and the initramfs's bytes against the budgets and ceilings in
# tests/budgets (see there). STRICT=1 fails over the budget, not just over the ceiling.
set -euo pipefail
init=$1 initramfs=$2
here=$(dirname "$0")
limit() { awk -v n="$1" -v col="$2" '$1 == n { print $col }' "$here/budgets"; }
fail=0
report() { # name path
	local bytes budget ceiling verdict
	bytes=$(stat -Lc %s "$2") budget=$(limit "$1" 2) ceiling=$(limit "$1" 3)
	if ((bytes > ceiling)); then
		verdict="OVER THE CEILING ($ceiling): fails"; fail=1
	elif ((bytes > budget)); then
		verdict="OVER BUDGET by $((bytes - budget)) (ceiling $ceiling)"
		[[ ${STRICT:-} == 1 ]] && fail=1
	else
		verdict=ok
	fi
	printf '%-24s %7d bytes  (budget %7d, %3d%%)  %s\n' "$1" "$bytes" "$budget" $((bytes * 100 / budget)) "$verdict"
}
report init "$init"
report initramfs "$initramfs"
exit $fail
