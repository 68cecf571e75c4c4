#!/usr/bin/env bash
# `make demo`: the whole collective story on a local devnet, narrated.
#
# Contributors encrypt data to a node, a requester opens a pull request with
# a training job, the DAO approves that exact tree through the Governor and
# timelock, the node deploys it and runs the job in a sandbox, the requester
# decrypts the model, an unapproved change is refused, and an auditor verifies
# the node's log against the chain and the repository.
#
# Exits non-zero as soon as any step does not do what it says. DEMO_KEEP=1
# leaves the devnet and the node running afterwards so you can look around;
# DEMO_DIR picks where its files go (default .demo/).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
C="$ROOT/target/debug/collective"
D="${DEMO_DIR:-$ROOT/.demo}"
export COLLECTIVE_TOOLS_BIN="${COLLECTIVE_TOOLS_BIN:-$ROOT/tools/node_modules/.bin}"
export RUST_LOG="${RUST_LOG:-warn}"

bold=$(printf '\033[1m'); off=$(printf '\033[0m')
[ -t 1 ] || { bold=""; off=""; }
n=0
step() { n=$((n + 1)); printf '\n%s%2d. %s%s\n' "$bold" "$n" "$*" "$off"; }
say() { printf '    %s\n' "$*"; }
fail() { printf '\nDEMO FAILED at step %d: %s\n' "$n" "$*" >&2; exit 1; }
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d[int(k)] if isinstance(d,list) else d[k]
print(d)' "$1"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

NODE_PID=""
cleanup() {
  [ -n "$NODE_PID" ] && kill "$NODE_PID" 2>/dev/null && wait "$NODE_PID" 2>/dev/null
  [ -f "$D/devnet.yaml" ] && "$C" dev down --devnet "$D/devnet.yaml" >/dev/null 2>&1
  true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$C" ] || fail "build the CLI first: cargo build --bin collective"
rm -rf "$D"; mkdir -p "$D"
START=$(date +%s)

step "Start a local devnet and deploy the contracts (token, Governor, timelock, registries)"
CHAIN_PORT=$(free_port)
"$C" dev up --port "$CHAIN_PORT" --out "$D/devnet.yaml" | sed 's/^/    /'
DEVNET="$D/devnet.yaml"
RPC="http://127.0.0.1:$CHAIN_PORT"
addr() { grep -E "^  $1:" "$DEVNET" | awk '{print $2}'; }
key_of() { python3 - "$DEVNET" "$1" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
for i, l in enumerate(lines):
    if l.strip() == f"- name: {sys.argv[2]}":
        print(lines[i + 2].split(":", 1)[1].strip()); break
PY
}

step "The operator creates the node's keys (RSA-4096 age recipient, Ed25519 log key)"
ORIGIN="demo.collective/node-1"
"$C" keys init --dir "$D/node/keys" >/dev/null
KEYS_JSON=$("$C" --json keys show --dir "$D/node/keys" --origin "$ORIGIN")
NODE_ID=$(echo "$KEYS_JSON" | jget node_id)
LOG_KEY=$(echo "$KEYS_JSON" | jget log_verifier_key)
say "node id      $NODE_ID"
say "log key      $LOG_KEY"
say "recipient    $(cut -c1-60 "$D/node/keys/node.pub")..."

step "The DAO registers the node on-chain (proposal -> vote -> timelock -> execute)"
NODE_PORT=$(free_port)
ENDPOINT="http://127.0.0.1:$NODE_PORT"
REG=$("$C" --json proposal register-node --devnet "$DEVNET" --as operator \
  --node-id "$NODE_ID" --keys "$D/node/keys" --origin "$ORIGIN" --endpoint "$ENDPOINT" --operator operator \
  --description "Register node-1 at $ENDPOINT")
REG_ID=$(echo "$REG" | jget id)
for v in voter1 voter2 voter3; do "$C" proposal vote "$REG_ID" --devnet "$DEVNET" --as "$v" >/dev/null; done
"$C" proposal queue "$REG_ID" --devnet "$DEVNET" --as voter1 >/dev/null
"$C" proposal execute "$REG_ID" --devnet "$DEVNET" --as voter1 >/dev/null
say "proposal $REG_ID executed: node-1 is in NodeRegistry"

step "Three contributors encrypt their data to the node and register it on-chain"
STORE="$D/node/store"
i=0
for who in contributor spare1 spare2; do
  f=$(ls "$ROOT"/examples/data/*.csv | sed -n "$((i + 1))p"); i=$((i + 1))
  if [ "$who" = spare2 ]; then
    # Any stock age client works: this contributor uses the age CLI itself.
    age -R "$D/node/keys/node.pub" -o "$D/$(basename "$f").age" "$f"
    out=$("$C" --json contribute --encrypted "$D/$(basename "$f").age" --store "$STORE" --register --rpc "$RPC" \
      --data-registry "$(addr data_registry)" --node-id "$NODE_ID" --private-key "$(key_of "$who")")
    say "$who encrypted $(basename "$f") with the stock age CLI"
  else
    out=$("$C" --json contribute "$f" --to "$D/node/keys/node.pub" --store "$STORE" --register --rpc "$RPC" \
      --data-registry "$(addr data_registry)" --node-id "$NODE_ID" --private-key "$(key_of "$who")")
    say "$who encrypted $(basename "$f") with collective contribute"
  fi
  say "  ciphertext sha256 $(echo "$out" | jget 0.sha256 2>/dev/null || echo "$out" | jget sha256)"
done
grep -rqs "diabetes\|age,\|label" "$STORE" && fail "plaintext found in the dataset store"
say "the store holds only age ciphertext"

step "The code repository the node watches (deploy branch: main)"
REPO="$D/repo"
git init -q -b main "$REPO"
git -C "$REPO" config user.name "Collective maintainers"; git -C "$REPO" config user.email maintainers@collective.invalid
printf '# collective jobs\n\nCode the DAO approved to run on node-1.\n' > "$REPO/README.md"
git -C "$REPO" add -A; git -C "$REPO" commit -qm "Initial commit"
say "main at $(git -C "$REPO" rev-parse --short HEAD): no jobs yet"

step "The operator starts the node"
cat > "$D/node/node.yaml" <<YAML
node:
  id: "$NODE_ID"
  key_dir: keys
chain:
  rpc_url: $RPC
  chain_id: 31337
  deployment: ../devnet.yaml
  confirmations: 1
  poll_interval_ms: 300
  operator_key_env: COLLECTIVE_OPERATOR_KEY
repository:
  path: ../repo
  branch: main
  fetch_interval_secs: 2
data:
  store: file://$STORE
sandbox:
  bwrap: $(command -v bwrap)
  on_interrupted: fail
policy:
  allowed_kinds: [batch, export]
  max_limits:
    cpu_seconds: 600
    memory: 2GiB
    wall_seconds: 900
    output: 64MiB
    processes: 64
  max_jobs: 8
http:
  listen: 127.0.0.1:$NODE_PORT
log:
  dir: log
  origin: $ORIGIN
  anchor_interval_secs: 5
paths:
  work_dir: work
  outbox_dir: outbox
YAML
COLLECTIVE_OPERATOR_KEY=$(key_of operator) "$C" node run --config "$D/node/node.yaml" > "$D/node/node.out" 2>&1 &
NODE_PID=$!
for _ in $(seq 1 100); do curl -fsS "$ENDPOINT/v1/status" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "$ENDPOINT/v1/status" >/dev/null || { cat "$D/node/node.out"; fail "node did not come up"; }
say "node serving $ENDPOINT (status page, log tiles, outbox, metrics)"

step "A requester opens a pull request with a training job (examples/pull-requests/train-model)"
age-keygen -o "$D/requester.key" 2>/dev/null
REQUESTER=$(age-keygen -y "$D/requester.key")
git -C "$REPO" checkout -q -b pr/train-model
cp -r "$ROOT/examples/pull-requests/train-model/jobs" "$REPO/"
git -C "$REPO" add -A; git -C "$REPO" commit -qm "Train a diabetes-risk model (outputs weights and metrics only)"
git -C "$REPO" checkout -q main
IDS=$("$C" --json tree-id pr/train-model --repo "$REPO")
SHA1=$(echo "$IDS" | jget tree_sha1); SHA256=$(echo "$IDS" | jget tree_sha256)
say "tree sha1   $SHA1"
say "tree sha256 $SHA256"
say "requester's age recipient $REQUESTER"

step "The requester submits the DAO proposal approving that exact tree and recipient"
P=$("$C" --json proposal submit --devnet "$DEVNET" --as requester --tree-sha256 "$SHA256" --tree-sha1 "$SHA1" \
  --recipient "$REQUESTER" --uri "pr/train-model" --description "Approve train-model (tree $SHA256)")
PID_=$(echo "$P" | jget id)
say "proposal $PID_"

step "Before the vote, the maintainers merge the PR: the node refuses the unapproved tree"
git -C "$REPO" merge -q --ff-only pr/train-model
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local t=$1 what=$2; shift 2
  for _ in $(seq 1 $((t * 4))); do "$@" && return 0; sleep 0.25; done
  fail "timed out waiting for: $what"
}
log_has() { curl -fsS "$ENDPOINT/v1/status" | grep -q "$1"; }
wait_for 60 "a refusal of $SHA256" sh -c "curl -fsS '$ENDPOINT/v1/runs' '$ENDPOINT/v1/status' | grep -q refused"
say "refused and logged: the tree is not approved on-chain"

step "DAO members vote; the timelock executes CodeRegistry.approve"
for v in voter1 voter2 voter3; do "$C" proposal vote "$PID_" --devnet "$DEVNET" --as "$v" >/dev/null; say "$v voted for"; done
"$C" proposal queue "$PID_" --devnet "$DEVNET" --as voter1 >/dev/null; say "queued in the timelock"
"$C" proposal execute "$PID_" --devnet "$DEVNET" --as voter1 >/dev/null; say "executed: the tree is approved"
"$C" proposal status "$PID_" --devnet "$DEVNET" | sed 's/^/    /'

step "The node deploys the approved tree and runs the job in a bubblewrap sandbox"
finished() { curl -fsS "$ENDPOINT/v1/runs" | python3 -c 'import json,sys
runs=json.load(sys.stdin)["runs"]
sys.exit(0 if any(r["decision"]=="job-finished" and r["job"]=="train-model" for r in runs) else 1)'; }
wait_for 180 "the train-model job to finish" finished
curl -fsS "$ENDPOINT/v1/runs" | python3 -c 'import json,sys
for r in json.load(sys.stdin)["runs"]:
    print("    log #%s %-13s %s %s" % (r["index"], r["decision"], r["job"], r["reason"]))'


step "The requester fetches the encrypted outputs and decrypts them with their own key"
mkdir -p "$D/requester"
for f in $(curl -fsS "$ENDPOINT/v1/runs" | python3 -c 'import json,sys
for r in json.load(sys.stdin)["runs"]:
    if r["decision"] == "job-finished":
        for o in r["outputs"]:
            if o["name"].startswith("out/"): print(r["tree_sha256"] + "/" + r["job"] + "/" + o["name"])'); do
  name=$(basename "$f" .age)
  curl -fsS "$ENDPOINT/v1/outbox/$f" -o "$D/requester/$name.age"
  age -d -i "$D/requester.key" -o "$D/requester/$name" "$D/requester/$name.age"
  say "fetched /v1/outbox/.../$name.age and decrypted it with the requester's key"
done
[ -s "$D/requester/metrics.json" ] || fail "no metrics.json among the decrypted outputs"
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print("    model metrics:", {k: m[k] for k in list(m)[:6]})' "$D/requester/metrics.json"

step "Someone pushes an unapproved change to main: refused, the approved tree keeps running"
echo 'print(open("/data/" + __import__("os").listdir("/data")[0]).read())' >> "$REPO/jobs/train-model/train.py"
git -C "$REPO" commit -qam "Print the raw data (not approved)"
BAD=$("$C" --json tree-id main --repo "$REPO" | jget tree_sha256)
wait_for 60 "a refusal of $BAD" sh -c "curl -fsS '$ENDPOINT/v1/status' | grep -q '$BAD'"
curl -fsS "$ENDPOINT/v1/status" | grep -q "$SHA256" || fail "the approved tree is no longer deployed"
say "refused $BAD; still deployed: $SHA256"

step "An auditor verifies the node's log against the chain and the repository"
sleep 6  # let the node anchor its latest checkpoint
set +e
"$C" audit --log "$ENDPOINT/log" --log-key "$LOG_KEY" --state "$D/auditor.state" \
  --rpc "$RPC" --node-registry "$(addr node_registry)" --code-registry "$(addr code_registry)" \
  --node-id "$NODE_ID" --repo "$REPO" | sed 's/^/    /'
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 0 ] || fail "collective audit exited $rc"

printf '\n%sDemo complete in %ss: every step did what it said.%s\n' "$bold" "$(( $(date +%s) - START ))" "$off"

if [ "${DEMO_KEEP:-0}" = 1 ]; then
  say "DEMO_KEEP=1: the devnet and the node keep running until you press Ctrl-C."
  say "status page  $ENDPOINT/"
  say "metrics      $ENDPOINT/metrics"
  say "chain        $RPC (devnet file $DEVNET)"
  wait "$NODE_PID"
fi
