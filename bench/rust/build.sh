#!/bin/sh
# bench/rust/build.sh OUTDIR - build OUTDIR/kn-bench-rust (impl "crossbeam")
# offline from Debian's packaged crates (librust-crossbeam-channel-dev, in
# /usr/share/cargo/registry) with Debian's cargo. Without them it prints a
# note and succeeds, so the other benchmarks still build.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
registry=/usr/share/cargo/registry
# Debian's cargo by path: a rustup toolchain earlier in PATH is not ours.
cargo=/usr/bin/cargo
if [ ! -x "$cargo" ] || ! ls -d "$registry"/crossbeam-channel-* >/dev/null 2>&1; then
	echo "bench/rust/build.sh: Debian's cargo or crossbeam-channel missing, kn-bench-rust not built"
	exit 0
fi

mkdir -p "$1"
out=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")" && pwd)

# CARGO_HOME in OUTDIR holds the source replacement (HOME may be unset or
# read-only); the lock file is generated there too, the tree stays clean.
mkdir -p "$out/cargo-home"
cat >"$out/cargo-home/config.toml" <<CONF
[source.crates-io]
replace-with = "debian"
[source.debian]
directory = "$registry"
[net]
offline = true
CONF
CARGO_HOME="$out/cargo-home" CARGO_TARGET_DIR="$out/target" \
	RUSTC=/usr/bin/rustc \
	"$cargo" build --release --quiet --manifest-path "$src/Cargo.toml"
cp "$out/target/release/kn-bench-rust" "$out/kn-bench-rust"
