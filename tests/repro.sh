#!/usr/bin/env bash
# Reproducible builds: the same source gives bit-identical build/init and
# build/initramfs.cpio.gz whatever the checkout's path, the user's HOME, the time zone,
# the locale or the umask. Builds two copies of this tree in different directories with
# different clean environments and compares them with each other and with this checkout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d /tmp/imprint-repro.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
cargo_home=${CARGO_HOME:-$HOME/.cargo}
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}

copy_tree() { # the tracked and untracked-but-not-ignored files, as a clone would have them
	(cd "$root" && git ls-files -co --exclude-standard | while IFS= read -r f; do [[ -e $f ]] && printf '%s\0' "$f"; done |
		tar --null -T - -c) | tar -x -C "$1"
}

build() { # dir home tz lang umask
	mkdir -p "$1" "$2"
	copy_tree "$1"
	(umask "$5" && env -i PATH="$cargo_home/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		HOME="$2" CARGO_HOME="$cargo_home" RUSTUP_HOME="$rustup_home" TZ="$3" LANG="$4" LC_ALL="$4" \
		make -C "$1" --no-print-directory build/init build/initramfs.cpio.gz >"$1.log" 2>&1) ||
		{ cat "$1.log"; echo "repro: build in $1 failed"; exit 1; }
}

build "$scratch/a/imprint" "$scratch/a/home" UTC C.UTF-8 022
build "$scratch/second/checkout/elsewhere" "$scratch/home-of-someone-else" Pacific/Auckland C 077

status=0
# No path of the build machine in the binary (panic locations): the checkouts, cargo's
# registry and home, the toolchain (its rust-src copy, when installed).
for path in "$scratch" "$root" "$cargo_home" "$rustup_home" registry/src; do
	if grep -qaF -- "$path" "$scratch/a/imprint/build/init"; then
		echo "repro: build/init contains the path $path"; status=1
	fi
done
for f in build/init build/initramfs.cpio.gz; do
	sums=$(sha256sum "$scratch/a/imprint/$f" "$scratch/second/checkout/elsewhere/$f" | cut -d' ' -f1 | sort -u)
	if [[ $(wc -l <<<"$sums") != 1 ]]; then
		echo "repro: $f differs between the two builds"; status=1; continue
	fi
	if [[ -f $root/$f ]] && [[ $(sha256sum <"$root/$f" | cut -d' ' -f1) != "$sums" ]]; then
		echo "repro: $f of this checkout differs from the two scratch builds (rebuild it: make $f)"; status=1; continue
	fi
	echo "repro: $f reproducible: sha256 $sums"
done
exit $status
