#!/bin/sh
# bench/go/build.sh OUTDIR - build OUTDIR/kn-bench-go offline (GOPATH mode,
# golang.org/x/sync from Debian's /usr/share/gocode). Without a Go toolchain
# it prints a note and succeeds, so the C benchmarks still build.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
if ! command -v go >/dev/null 2>&1; then
	echo "bench/go/build.sh: go not found, kn-bench-go not built"
	exit 0
fi

mkdir -p "$1"
out=$(cd "$1" && pwd)
cd "$(dirname "$0")"

# The cache lives in OUTDIR: HOME may be unset or read-only (root in CI).
GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOCACHE="$out/gocache" \
	go build -o "$out/kn-bench-go" .
