#!/usr/bin/env bash
# Deploy Reef's contracts with contracts/script/Deploy.s.sol and print deployments/<chainId>.json.
#   anvil-scripts/deploy.sh                       local anvil (http://127.0.0.1:8545, dev key 0)
#   RPC_URL=... PRIVATE_KEY=... anvil-scripts/deploy.sh
# Parameters: REEF_FEE_BPS, REEF_DISPUTE_BOND, REEF_SLASH_BPS, REEF_UNBONDING_DELAY,
# REEF_MIN_BOND, REEF_FEE_RECIPIENT, REEF_OWNER (see script/Deploy.s.sol).
# Extra arguments are passed to `forge script` (e.g. --slow, -vvvv).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$ROOT/node_modules/@foundry-rs/forge-linux-amd64/bin:$ROOT/node_modules/@foundry-rs/cast-linux-amd64/bin:$PATH"
RPC_URL="${RPC_URL:-http://127.0.0.1:8545}"
# anvil dev account 0 (public test key; never use it on a real network)
PRIVATE_KEY="${PRIVATE_KEY:-0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80}"

CHAIN_ID="$(cast chain-id --rpc-url "$RPC_URL")"
OUT="$ROOT/deployments/$CHAIN_ID.json"
# forge may only write inside a folder that exists (fs_permissions): a fresh clone has none yet.
mkdir -p "$ROOT/deployments"

# forge writes the deployments file while simulating, before the transactions are sent: keep the
# previous file and put it back if the broadcast fails, so a failed run never leaves bogus addresses.
BACKUP=""
if [[ -f "$OUT" ]]; then BACKUP="$(mktemp)"; cp "$OUT" "$BACKUP"; fi
restore() {
  echo "deploy.sh: deployment failed; $OUT left as before" >&2
  if [[ -n "$BACKUP" ]]; then mv "$BACKUP" "$OUT"; else rm -f "$OUT"; fi
  exit 1
}

cd "$ROOT/contracts"
forge script script/Deploy.s.sol:Deploy \
  --rpc-url "$RPC_URL" \
  --private-key "$PRIVATE_KEY" \
  --broadcast \
  --non-interactive \
  "$@" </dev/null || restore

[[ -f "$OUT" ]] || restore
# every address in the file must hold code on the chain
for addr in $(grep -oE '0x[0-9a-fA-F]{40}' "$OUT"); do
  [[ "$(cast code "$addr" --rpc-url "$RPC_URL")" != "0x" ]] || { echo "deploy.sh: no code at $addr" >&2; restore; }
done
[[ -z "$BACKUP" ]] || rm -f "$BACKUP"
echo "== $OUT"
cat "$OUT"
