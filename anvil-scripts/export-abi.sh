#!/usr/bin/env bash
# Export trimmed forge artifacts (ABI + creation bytecode) for escrow-client's `sol!` bindings.
#   anvil-scripts/export-abi.sh           write escrow-client/abi/*.json from contracts/out
#   anvil-scripts/export-abi.sh --check   fail if the committed files differ from a fresh build
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT_DIR="$ROOT/escrow-client/abi"
CONTRACTS=(BountyEscrow PaymentChannel AgentRegistry ReputationRegistry ValidationRegistry EvaluatorPanel ReefTestToken)
export PATH="$ROOT/node_modules/@foundry-rs/forge-linux-amd64/bin:$PATH"
(cd "$ROOT/contracts" && forge build --quiet)
TARGET="$OUT_DIR"
if [[ "${1:-}" == "--check" ]]; then TARGET="$(mktemp -d)"; fi
mkdir -p "$TARGET"
for c in "${CONTRACTS[@]}"; do
  # The default profile's artifact, by its exact name: a contract that imports BountyEscrow is
  # also compiled under the escrow-size profile (<name>.escrow-size.json), which is not deployed.
  src="$ROOT/contracts/out/$c.sol/$c.json"
  [[ -f "$src" ]] || { echo "artifact for $c not found in contracts/out" >&2; exit 1; }
  node -e '
    const a = require(process.argv[1]);
    const out = { abi: a.abi, bytecode: { object: a.bytecode.object } };
    process.stdout.write(JSON.stringify(out, null, 1) + "\n");
  ' "$src" > "$TARGET/$c.json"
done
if [[ "${1:-}" == "--check" ]]; then
  if ! diff -r -q "$OUT_DIR" "$TARGET" >/dev/null; then
    diff -r -q "$OUT_DIR" "$TARGET" >&2 || true
    echo "escrow-client/abi is stale: run anvil-scripts/export-abi.sh and commit the result" >&2
    exit 1
  fi
  echo "escrow-client/abi matches a fresh forge build"
fi
