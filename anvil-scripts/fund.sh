#!/usr/bin/env bash
# Fund an address on the local devnet with ETH and the devnet token (rUSD).
#   anvil-scripts/fund.sh 0xADDRESS [ETH=10] [RUSD=1000]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$ROOT/node_modules/@foundry-rs/cast-linux-amd64/bin:$PATH"
ADDR="${1:?usage: fund.sh 0xADDRESS [ETH] [RUSD]}"
ETH="${2:-10}"
RUSD="${3:-1000}"
RPC_URL="${RPC_URL:-http://127.0.0.1:8545}"
CHAIN_ID="$(cast chain-id --rpc-url "$RPC_URL")"
DEP="$ROOT/deployments/$CHAIN_ID.json"
[[ -f "$DEP" ]] || { echo "no $DEP: run anvil-scripts/devnet.sh up first" >&2; exit 1; }
TOKEN="$(node -e 'const d=require(process.argv[1]); if(!d.testToken){process.exit(1)} console.log(d.testToken)' "$DEP")" \
  || { echo "$DEP has no testToken (not a devnet?)" >&2; exit 1; }
# anvil dev account 0 (well-known key, local chains only)
KEY="${PRIVATE_KEY:-0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80}"
cast send --rpc-url "$RPC_URL" --private-key "$KEY" "$ADDR" --value "$(cast to-wei "$ETH")" >/dev/null
cast send --rpc-url "$RPC_URL" --private-key "$KEY" "$TOKEN" "mint(address,uint256)" "$ADDR" "$(cast to-wei "$RUSD")" >/dev/null
echo "funded $ADDR with $ETH ETH and $RUSD rUSD on chain $CHAIN_ID"
