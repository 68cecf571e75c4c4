#!/usr/bin/env bash
# `make bench`: every benchmark, each against its reference tool in the same
# run (age CLI, git, raw Ed25519 verify), printing ratios. Copy the figures
# into BENCHMARKS.md with the command that produced them.
set -euo pipefail
cd "$(dirname "$0")/.."
export COLLECTIVE_TOOLS_BIN="${COLLECTIVE_TOOLS_BIN:-$PWD/tools/node_modules/.bin}"

run() { echo; echo "== $*"; "$@"; }

run cargo bench -p collective-tree --bench tree_id
run cargo bench -p collective-vault --bench throughput
run cargo bench -p collective-attest --bench attest
run cargo bench -p collective-chain --bench chain_reads
run cargo bench -p collective-controller --bench replay
run cargo bench -p collective-e2e --bench approval_latency
