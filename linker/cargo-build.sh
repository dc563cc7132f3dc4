#!/bin/sh
# `cargo build --release --locked` of the init with its flags (arguments are passed on):
# the link arguments of linker/rustflags and linker/discard-eh-frame.ld, and remaps that
# keep every path of this machine out of the binary, so any clone, any HOME, builds the
# same bytes (panic locations name their source files):
#   the checkout                     -> imprint
#   CARGO_HOME                       -> cargo  (anything else cargo keeps there)
#   CARGO_HOME/registry/src/<index>  -> /deps  (the dependencies: /deps/<crate>-<version>/...)
#   the toolchain's sysroot          -> /rust  (the library's sources, if built from rust-src)
# Where two match, the later flag wins. The precompiled standard library already names its
# files /rustc/<commit>/library/..., which no flag can change (nor needs to).
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
flags="$flags --remap-path-prefix=$(rustc --print sysroot)=/rust"
RUSTFLAGS=$flags exec cargo build --release --locked --manifest-path "$root/Cargo.toml" "$@"
