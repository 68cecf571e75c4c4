#!/usr/bin/env bash
# Recompiles the contracts from scratch and fails if the committed artifacts in
# contracts/artifacts/ differ: chain/ binds those files, so a source change
# without regenerated artifacts would ship stale bytecode.
# Regenerate with: contracts/check-artifacts.sh --update
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tools="${COLLECTIVE_TOOLS_BIN:-$here/../tools/node_modules/.bin}"
[ -x "$tools/forge" ] || { echo "check-artifacts: forge not found at $tools/forge (run make tools)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$here"
"$tools/forge" build --skip test --force --out "$tmp/out" --cache-path "$tmp/cache" >"$tmp/build.log" 2>&1 \
  || { cat "$tmp/build.log" >&2; exit 1; }
node "$here/export-artifacts.js" "$tmp/out" "$tmp/artifacts"
if [ "${1:-}" = "--update" ]; then
  rm -rf "$here/artifacts"
  cp -r "$tmp/artifacts" "$here/artifacts"
  echo "check-artifacts: updated $here/artifacts"
  exit 0
fi
if ! diff -r "$here/artifacts" "$tmp/artifacts" >"$tmp/diff" 2>&1; then
  echo "check-artifacts: contracts/artifacts/ differs from a fresh compile; run contracts/check-artifacts.sh --update and commit" >&2
  head -c 2000 "$tmp/diff" >&2
  exit 1
fi
echo "check-artifacts: artifacts match a fresh compile"
