#!/usr/bin/env bash
# Build imprint's kernel: `make tinyconfig`, merge our fragments over it, build bzImage.
# The result is cached outside the checkout, keyed by the sha256 of the merged .config,
# so a warm machine (or a second checkout) never rebuilds an unchanged kernel.
#
# usage: build.sh OUT_BZIMAGE FRAGMENT...
#        build.sh --check FRAGMENT...   merge and check only (seconds), build nothing
# env:   KERNEL_SRC    kernel tree or linux-source tarball (default: Debian's linux-source)
#        KERNEL_CACHE  cache directory (default: ~/.cache/imprint/kernel)
set -euo pipefail

check_only= out=
if [[ $1 == --check ]]; then check_only=1; else out=$1; fi
shift
here=$(cd "$(dirname "$0")" && pwd)
cache=${KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imprint/kernel}
mkdir -p "$cache"

fragments=()
for name in "$@"; do
	f=$here/$name.config
	[[ -f $f ]] || { echo "kernel: no fragment $f" >&2; exit 1; }
	fragments+=("$f")
done

# The source: a tree given by KERNEL_SRC, or Debian's linux-source tarball unpacked once
# into the cache (unpacking takes a minute; the tarball itself is never modified).
src=${KERNEL_SRC:-}
if [[ -z $src || -f $src ]]; then
	tarball=${src:-$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | sort -V | tail -n1)}
	if [[ -z $tarball ]]; then
		echo "kernel: installing linux-source (Debian package)" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			linux-source bc flex bison libelf-dev libssl-dev >&2
		tarball=$(ls /usr/src/linux-source-*.tar.xz | sort -V | tail -n1)
	fi
	name=$(basename "$tarball" .tar.xz)
	src=$cache/src/$name
	if [[ ! -f $src/.imprint-unpacked ]]; then
		echo "kernel: unpacking $tarball" >&2
		rm -rf "$src" && mkdir -p "$cache/src"
		tar -C "$cache/src" -xf "$tarball"
		touch "$src/.imprint-unpacked"
	fi
fi

# Merge the configuration in a scratch build directory (seconds), then hash it.
scratch=$(mktemp -d "$cache/merge.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
make -s -C "$src" O="$scratch" tinyconfig >/dev/null
KCONFIG_CONFIG="$scratch/.config" "$src/scripts/kconfig/merge_config.sh" -m -O "$scratch" \
	"$scratch/.config" "${fragments[@]}" >/dev/null
make -s -C "$src" O="$scratch" olddefconfig >/dev/null

# Every option a fragment asks for must survive the merge: a typo or a missing
# dependency otherwise silently drops a driver.
missing=0
for f in "${fragments[@]}"; do
	while IFS= read -r line; do
		[[ $line =~ ^CONFIG_ ]] || continue
		opt=${line%%=*} val=${line#*=}
		if [[ $val == n ]]; then
			grep -qx "$opt=[ym]" "$scratch/.config" && { echo "kernel: $opt is set but $f asks for n" >&2; missing=1; }
		elif ! grep -qx "$line" "$scratch/.config"; then
			echo "kernel: $(basename "$f") asks for $line; the merged config has: $(grep -E "^(# )?$opt[= ]" "$scratch/.config" || echo nothing)" >&2
			missing=1
		fi
	done <"$f"
done
((missing == 0)) || exit 1
if [[ -n $check_only ]]; then
	echo "kernel: fragments $* merge cleanly over tinyconfig" >&2
	exit 0
fi

hash=$(sha256sum "$scratch/.config" | cut -c1-16)
cached=$cache/$hash/bzImage
if [[ -f $cached ]]; then
	echo "kernel: cached $cached" >&2
else
	echo "kernel: building config $hash (a few minutes on 2 cores)" >&2
	objdir=$cache/build-$hash
	mkdir -p "$objdir"
	cp "$scratch/.config" "$objdir/.config"
	# Fixed build identity so the same config gives the same kernel on any machine.
	KBUILD_BUILD_TIMESTAMP='1970-01-01' KBUILD_BUILD_USER=imprint KBUILD_BUILD_HOST=imprint \
		make -s -C "$src" O="$objdir" -j"$(nproc)" bzImage >&2
	mkdir -p "$cache/$hash"
	cp "$objdir/.config" "$cache/$hash/config"
	cp "$objdir/arch/x86/boot/bzImage" "$cached.tmp" && mv "$cached.tmp" "$cached"
	rm -rf "$objdir"
fi
mkdir -p "$(dirname "$out")"
cp "$cached" "$out"
cp "$cache/$hash/config" "$out.config"
