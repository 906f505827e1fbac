#!/usr/bin/env bash
# Runs the contenders side by side and prints benchstat's summary and a
# markdown table of medians and ratios. Usage: bench/run.sh [count]
set -euo pipefail
cd "$(dirname "$0")"
export PATH="/usr/local/go/bin:$(go env GOPATH)/bin:$PATH"
count=${1:-10}
mkdir -p results
out=results/bench.txt
GOFLAGS= go install golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
go test -run '^$' -bench . -benchmem -count "$count" -timeout 60m . | tee "$out"
echo
benchstat "$out"
echo
go run ./cmd/ratios < "$out"
