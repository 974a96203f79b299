#!/bin/bash
# examples/go/run.sh NAME - build and run the Go example NAME offline and
# print its output (stdout and the log lines on stderr) with the
# "2006/01/02 15:04:05 " timestamp of the log package stripped, so it can be
# compared with examples/expected/NAME.txt. Exits 77 (skip) without go.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -f "$(dirname "$0")/$1/main.go" ]; then
	echo "usage: $0 NAME (a directory of examples/go)" >&2
	exit 2
fi
if ! command -v go >/dev/null 2>&1; then
	echo "examples/go/run.sh: go not found" >&2
	exit 77
fi
cd "$(dirname "$0")/$1"

# HOME may be unset or read-only (root in CI): fall back to a private cache.
if [ -z "${GOCACHE:-}" ]; then
	GOCACHE=$(go env GOCACHE 2>/dev/null || true)
	case "$GOCACHE" in
	"" | off) GOCACHE="${TMPDIR:-/tmp}/kanal-gocache-$(id -u)" ;;
	esac
fi
export GOCACHE GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS=

go run . 2>&1 | sed -E 's#^[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} ##'
