#!/bin/sh
# `cargo build --release --locked` of the init with its flags (arguments are passed on):
# the link arguments of linker/rustflags and linker/discard-eh-frame.ld, and remaps that
# keep every path of this machine out of the binary, so any clone, any HOME, builds the
# same bytes (panic locations name their source files):
#   the checkout                     -> imprint
#   CARGO_HOME                       -> cargo  (anything else cargo keeps there)
#   CARGO_HOME/registry/src/<index>  -> /deps  (the dependencies: /deps/<crate>-<version>/...)
#   the toolchain's rust-src         -> /rustc/<commit>
# Where two match, the later flag wins. The precompiled standard library names its files
# /rustc/<commit>/library/...; with the rust-src component installed, rustc names them by
# their local copy instead: mapped back, the bytes are the same with or without it.
# Two of linker/rustflags' link arguments are about padding: --sort-section=alignment
# packs each output section's pieces by alignment (0.4 KB less), and -z common-page-size=64
# stops ld from page-aligning the data segment in the file whenever the code ends late in
# a page (up to 1.3 KB of zeros, depending on where the code ends).
set -eu
LC_ALL=C && export LC_ALL # one order of the registry directories, whatever the locale
root=$(cd "$(dirname "$0")/.." && pwd -P)
cargo_home=${CARGO_HOME:-$HOME/.cargo}
# The registry's source directories must exist before they can be named: on a fresh
# machine the build would otherwise fetch them only after the flags were set.
cargo fetch --locked --quiet --manifest-path "$root/Cargo.toml"
flags="$(tr '\n' ' ' <"$root/linker/rustflags") -C link-arg=-Wl,-T,$root/linker/discard-eh-frame.ld"
flags="$flags --remap-path-prefix=$root=imprint --remap-path-prefix=$cargo_home=cargo"
for dir in "$cargo_home"/registry/src/*/; do
	[ -d "$dir" ] && flags="$flags --remap-path-prefix=${dir%/}=/deps"
done
commit=$(rustc -vV | sed -n 's/^commit-hash: //p')
flags="$flags --remap-path-prefix=$(rustc --print sysroot)/lib/rustlib/src/rust=/rustc/$commit"
RUSTFLAGS=$flags exec cargo build --release --locked --manifest-path "$root/Cargo.toml" "$@"
