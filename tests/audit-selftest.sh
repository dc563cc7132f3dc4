#!/usr/bin/env bash
# `make audit` must fail when the boot path gains a dependency, an unsafe block outside
# src/sys, an unsafe block without a SAFETY comment, an undocumented libc call, or a
# reference to tool mode (src/tool). Each
# is made in a scratch copy of this tree; the audit must pass on the copy first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d /tmp/imprint-audit.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

fresh_copy() {
	rm -rf "$scratch/tree" && mkdir -p "$scratch/tree"
	(cd "$root" && git ls-files -co --exclude-standard | while IFS= read -r f; do [[ -e $f ]] && printf '%s\0' "$f"; done |
		tar --null -T - -c) | tar -x -C "$scratch/tree"
}

audit() { python3 "$scratch/tree/tests/audit.py" --no-build >"$scratch/out" 2>&1; }

expect_failure() { # what expected-message
	if audit; then
		echo "audit-selftest: FAILED: the audit passed with $1"; cat "$scratch/out"; exit 1
	fi
	grep -qF -- "$2" "$scratch/out" || { echo "audit-selftest: FAILED: no '$2' for $1"; cat "$scratch/out"; exit 1; }
	echo "audit-selftest: ok: fails with $1"
}

fresh_copy
audit || { echo "audit-selftest: FAILED: the audit fails on an unchanged copy"; cat "$scratch/out"; exit 1; }
echo "audit-selftest: ok: passes on an unchanged copy"

# Budgets and ceilings (tests/budgets): over a ceiling fails; over a budget under its
# ceiling passes with OVER BUDGET, and fails with --strict.
sed -i -E 's/^lines( +)[0-9]+( +)[0-9]+$/lines 10 99999/' "$scratch/tree/tests/budgets"
audit || { echo "audit-selftest: FAILED: over a budget but under its ceiling must pass"; cat "$scratch/out"; exit 1; }
grep -q "OVER BUDGET: lines" "$scratch/out" || { echo "audit-selftest: FAILED: no OVER BUDGET note"; cat "$scratch/out"; exit 1; }
if python3 "$scratch/tree/tests/audit.py" --no-build --strict >"$scratch/out" 2>&1; then
	echo "audit-selftest: FAILED: --strict passed over a budget"; exit 1
fi
echo "audit-selftest: ok: over a budget passes under its ceiling, fails with --strict"
sed -i -E 's/^lines( +)[0-9]+( +)[0-9]+$/lines 10 20/' "$scratch/tree/tests/budgets"
expect_failure "lines over their ceiling" "over the ceiling of 20"

sed -i 's/^\[dependencies\]$/[dependencies]\nitoa = "1"/' "$scratch/tree/Cargo.toml"
expect_failure "a new dependency" "Cargo.toml [dependencies] has 'itoa'"

fresh_copy
printf '\nfn sneaky() -> u8 { let x = 1u8; unsafe { *(&x as *const u8) } }\n' >>"$scratch/tree/src/tool/mod.rs"
expect_failure "unsafe outside src/sys" "src/tool/mod.rs:"

fresh_copy
printf '\n\n\n\n\n\n\n\n\n\npub fn peek(p: *const u8) -> u8 {\n    unsafe { *p }\n}\n' >>"$scratch/tree/src/sys/time.rs"
expect_failure "an unsafe block without SAFETY" "unsafe block without a // SAFETY: comment"

fresh_copy
printf '\n// SAFETY: test\npub fn uid() -> u32 { unsafe { libc::getuid() } }\n' >>"$scratch/tree/src/sys/time.rs"
expect_failure "an undocumented libc call" "libc::getuid is called in src/sys/time.rs but not listed for sys::time"

# Lines are counted as rustfmt lays them out: code packed onto fewer lines fails.
fresh_copy
printf '\npub fn packed(a: u8) -> u8 { let b = a + 1; let c = b * 2; c - a }\n' >>"$scratch/tree/src/tool/mod.rs"
expect_failure "code packed onto fewer lines" "not formatted as rustfmt.toml says"

# Tool mode (src/tool) is counted apart from the boot path because the boot never runs it:
# a boot-path file that calls into it fails, in a `use` as in a path.
fresh_copy
printf '\npub fn usage_status() -> i32 {\n    crate::tool::EXIT_USAGE\n}\n' >>"$scratch/tree/src/net/ipconfig.rs"
expect_failure "the boot path calling tool mode" "the boot path refers to tool mode (\`crate::tool::EXIT_USAGE\`)"

fresh_copy
printf '\n#[allow(unused_imports)]\nuse super::tool;\n' >>"$scratch/tree/src/disk/mod.rs"
expect_failure "the boot path importing tool mode" "the boot path refers to tool mode (\`use super::tool;\`)"
