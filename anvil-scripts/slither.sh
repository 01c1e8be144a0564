#!/usr/bin/env bash
# Static analysis of contracts/src with Slither (NOT part of `make test`).
#   anvil-scripts/slither.sh            run slither; exit 1 only on an UNJUSTIFIED High finding
#   anvil-scripts/slither.sh --strict   also exit 1 on an unjustified Medium finding
# Installs slither-analyzer with pip into a venv if `slither` is not on PATH
# (SLITHER_VENV, default ~/.cache/reef-slither-venv; SLITHER_VERSION, default 0.11.6).
# SLITHER_JSON=<path> also keeps slither's JSON report (all impacts) at <path>.
# Triage of every High/Medium finding: contracts/SECURITY.md ("Slither findings"); the
# ACCEPTED list below must stay in sync with that table.
#
# Why not plain `slither .`: forge hands the offline solc-js shim (tools/solc) the OpenZeppelin
# sources twice (`../node_modules/...` and `/abs/.../node_modules/...`), so forge's build-info holds
# two copies of every OZ contract; slither then resolves inheritance against the wrong copy and
# silently analyses BountyEscrow/PaymentChannel/AgentRegistry with EMPTY IR (only a handful of
# findings, "Missing inheritance" errors). We therefore compile contracts/src ourselves with the
# same shim and settings into a de-duplicated build-info and point slither at it:
#   slither . --ignore-compile --foundry-build-info-directory <dir> --filter-paths "test|node_modules|lib"
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$ROOT/node_modules/@foundry-rs/forge-linux-amd64/bin:$PATH"
STRICT=0
[[ "${1:-}" == "--strict" ]] && STRICT=1

SLITHER_VERSION="${SLITHER_VERSION:-0.11.6}"
if ! command -v slither >/dev/null 2>&1; then
  VENV="${SLITHER_VENV:-$HOME/.cache/reef-slither-venv}"
  if [[ ! -x "$VENV/bin/slither" ]]; then
    echo "slither not found: installing slither-analyzer==$SLITHER_VERSION into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "slither-analyzer==$SLITHER_VERSION"
  fi
  export PATH="$VENV/bin:$PATH"
  PY="$VENV/bin/python"
else
  PY="$(head -n1 "$(command -v slither)" | sed -n 's/^#!//p')"
  [[ -x "$PY" ]] || PY=python3
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# 1. De-duplicated build-info (same compiler, optimizer and EVM settings as foundry.toml).
#    Slither 0.11 also cannot build IR for OpenZeppelin 5.x ReentrancyGuardTransient (it fails to
#    resolve the overloaded `TransientSlot.tstore` on a user-defined value type), and a contract with
#    one IR failure gets no SSA at all (no data dependencies, no call graph: e.g. bogus
#    `msg-value-in-nonpayable` Highs). For the ANALYSIS build only, we substitute a stand-in with the
#    same slot, error, modifiers and functions written with inline tload/tstore. The deployed
#    bytecode (forge build) is unaffected.
"$PY" - "$ROOT/contracts" "$ROOT/tools/solc" "$WORK/build-info" <<'PY'
import glob, json, os, subprocess, sys

contracts, solc, out_dir = sys.argv[1:4]
os.chdir(contracts)
srcs = sorted(glob.glob("src/**/*.sol", recursive=True))
GUARD = "../node_modules/@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol"
GUARD_STANDIN = """// SPDX-License-Identifier: MIT
// Slither-only stand-in for OpenZeppelin 5.x ReentrancyGuardTransient (see anvil-scripts/slither.sh).
pragma solidity ^0.8.24;

abstract contract ReentrancyGuardTransient {
    bytes32 private constant REENTRANCY_GUARD_STORAGE =
        0x9b779b17422d0df92223018b32b4d1fa46e071723d6817e2486d003becc55f00;

    error ReentrancyGuardReentrantCall();

    modifier nonReentrant() {
        _nonReentrantBefore();
        _;
        _nonReentrantAfter();
    }

    modifier nonReentrantView() {
        _nonReentrantBeforeView();
        _;
    }

    function _nonReentrantBeforeView() private view {
        if (_reentrancyGuardEntered()) revert ReentrancyGuardReentrantCall();
    }

    function _nonReentrantBefore() private {
        _nonReentrantBeforeView();
        bytes32 slot = _reentrancyGuardStorageSlot();
        assembly ("memory-safe") { tstore(slot, 1) }
    }

    function _nonReentrantAfter() private {
        bytes32 slot = _reentrancyGuardStorageSlot();
        assembly ("memory-safe") { tstore(slot, 0) }
    }

    function _reentrancyGuardEntered() internal view returns (bool entered) {
        bytes32 slot = _reentrancyGuardStorageSlot();
        assembly ("memory-safe") { entered := tload(slot) }
    }

    function _reentrancyGuardStorageSlot() internal pure virtual returns (bytes32) {
        return REENTRANCY_GUARD_STORAGE;
    }
}
"""
sources = {p: {"content": open(p, encoding="utf8").read()} for p in srcs}
sources[GUARD] = {"content": GUARD_STANDIN}
std_in = {
    "language": "Solidity",
    "sources": sources,
    "settings": {
        "remappings": ["@openzeppelin/=../node_modules/@openzeppelin/"],
        "optimizer": {"enabled": True, "runs": 10000},
        "evmVersion": "cancun",
        "outputSelection": {
            "*": {"": ["ast"], "*": ["abi", "evm.bytecode", "evm.deployedBytecode", "userdoc", "devdoc"]}
        },
    },
}
r = subprocess.run([solc, "--standard-json", "--base-path", ".", "--include-path", ".."],
                   input=json.dumps(std_in), capture_output=True, text=True, check=True)
out = json.loads(r.stdout)
errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
if errors:
    sys.exit("solc errors:\n" + "\n".join(e.get("formattedMessage", str(e)) for e in errors))
dups = [k for k in out["sources"] if os.path.isabs(k)]
if dups:
    sys.exit(f"duplicate absolute-path sources in the build: {dups[:3]}")
long_ver = subprocess.run([solc, "--version"], capture_output=True, text=True, check=True).stdout
long_ver = long_ver.strip().split("Version: ")[-1]
os.makedirs(out_dir, exist_ok=True)
with open(os.path.join(out_dir, "reef.json"), "w") as f:
    json.dump({"id": "reef", "_format": "hh-sol-build-info-1", "solcVersion": long_ver.split("+")[0],
               "solcLongVersion": long_ver, "input": std_in, "output": out}, f)
print(f"build-info: {len(out['sources'])} sources, solc {long_ver}")
PY

# 2. Slither (non-zero exit just means "there are findings"; the triage below decides).
cd "$ROOT/contracts"
set +e
slither . --ignore-compile --foundry-build-info-directory "$WORK/build-info" \
  --filter-paths "test|node_modules|lib" --json "$WORK/slither.json" 2>"$WORK/slither.log"
set -e
if grep -q "Missing inheritance\|Failed to resolved name\|Impossible to generate IR\|Failed to generate IR" "$WORK/slither.log"; then
  cat "$WORK/slither.log" >&2
  echo "slither.sh: slither could not build the IR of every contract; results are incomplete" >&2
  exit 2
fi
[[ -s "$WORK/slither.json" ]] || { cat "$WORK/slither.log" >&2; exit 2; }
# SLITHER_JSON=<path> keeps slither's full JSON report (every impact, for triaging Low findings).
if [[ -n "${SLITHER_JSON:-}" ]]; then cp "$WORK/slither.json" "$SLITHER_JSON"; fi
sed -e '/^INFO:Detectors:$/d' "$WORK/slither.log"

# 3. Triage against the findings justified in contracts/SECURITY.md.
"$PY" - "$WORK/slither.json" "$STRICT" <<'PY'
import collections, json, re, sys

# (detector, regex on the finding's description) -> justified in contracts/SECURITY.md
ACCEPTED = [
    # payouts of the caller's own unbonded / slashed balance (to == msg.sender at both call sites)
    ("arbitrary-send-eth", r"^AgentRegistry\._sendOrRevert\(address,uint256\) "),
    # fee taken on the rounded gross share: intended, conserves value
    ("divide-before-multiply", r"^BountyEscrow\._payWinners\("),
    ("divide-before-multiply", r"^BountyEscrow\.resolve\("),
    # equality of the Status enum decoded from the record word (word also holds a timestamp)
    ("incorrect-equality", r"^BountyEscrow\.(cancel|dispute|refundExpired)\(.*\n\s*- s == Status\.[A-Za-z]+ \("),
    # the PLEDGED flag (bit 48 of the record word) tested against 0: an exact bit test, not a
    # comparison of the timestamp that shares the word (issue 18 triage)
    ("incorrect-equality", r"^BountyEscrow\.(resolve|_settle|postFromReward)\(.*\n\s*- .*(PLEDGED|pledged) == 0"),
    # Solidity zero-initialises locals; the zero value is the intended start value
    ("uninitialized-local", r"^(BountyEscrow|PaymentChannel|ReputationRegistry|EvaluatorPanel)\.[A-Za-z_]+\(.*\)\.[A-Za-z_]+ "),
    # the ignored third value is only diagnostic data (the RecoverError is checked)
    ("unused-return", r"^(BountyEscrow|PaymentChannel)\._isValidSig\(address,bytes32,bytes\) .*ECDSA\.tryRecoverCalldata"),
    ("unused-return", r"^AgentRegistry\.setAgentWallet\(uint256,address,uint256,bytes\) .*ECDSA\.tryRecoverCalldata"),
    ("unused-return", r"^EvaluatorPanel\._validSigners\(.*\) ignores return value by \(signer,err,None\) = ECDSA\.tryRecover\("),
    # the panel needs one of statusOf's two values: only `status` (open/cancel: bounty not posted
    # yet) or only `stamp` (settleFees: status already checked by escrow.verifyRecord)
    ("unused-return", r"^EvaluatorPanel\.(openPanel|cancelPanel)\(.* ignores return value by \(status,None\) = escrow\.statusOf\(id\)"),
    ("unused-return", r"^EvaluatorPanel\.settleFees\(.* ignores return value by \(None,stamp\) = escrow\.statusOf\(id\)"),
]

data = json.load(open(sys.argv[1]))
strict = sys.argv[2] == "1"
if not data.get("success", False):
    sys.exit(f"slither failed: {data.get('error')}")
results = data.get("results", {}).get("detectors", [])
count = collections.Counter(r["impact"] for r in results)
print("\n== slither summary: " + ", ".join(f"{k} {count.get(k, 0)}" for k in
                                         ("High", "Medium", "Low", "Informational", "Optimization")))
unjustified = collections.defaultdict(list)
for r in results:
    if r["impact"] not in ("High", "Medium"):
        continue
    desc = r["description"].strip()
    ok = any(r["check"] == c and re.search(p, desc, re.S) for c, p in ACCEPTED)
    tag = "justified" if ok else "UNJUSTIFIED"
    # an unjustified finding is printed whole (its source lines), so it can be triaged
    print(f"[{r['impact']}] {r['check']} ({tag}): {desc.splitlines()[0] if ok else desc}")
    if not ok:
        unjustified[r["impact"]].append(desc)
fail = bool(unjustified["High"]) or (strict and bool(unjustified["Medium"]))
if unjustified["High"] or unjustified["Medium"]:
    print(f"\n{len(unjustified['High'])} High / {len(unjustified['Medium'])} Medium finding(s) are not"
          " triaged in contracts/SECURITY.md: fix them or justify them there and in anvil-scripts/slither.sh")
else:
    print("all High/Medium findings are triaged in contracts/SECURITY.md")
sys.exit(1 if fail else 0)
PY
