#!/usr/bin/env bash
# Local devnet: anvil + Reef's contracts + funded dev accounts.
#   anvil-scripts/devnet.sh up [--port 8545]   start (idempotent), deploy, write deployments/31337.json
#   anvil-scripts/devnet.sh status [--json]
#   anvil-scripts/devnet.sh down
# Thin wrapper over `reef devnet` (built on first use) so scripts and the CLI share one code path.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
[[ -d node_modules/@foundry-rs ]] || npm ci --no-audit --no-fund --loglevel=error
exec cargo run -q -p marketplace-node --bin reef -- devnet "$@"
