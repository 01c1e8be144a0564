// Browser test of the dashboard `reef node` serves at `/`, driven by marketplace-node/tests/
// dashboard.rs (which starts anvil, the node and an agent, settles a bounty and passes what the
// chain and the index say in environment variables). Playwright drives Debian's Chromium; axe
// checks every page. Screenshots go to DASH_SHOTS (target/dashboard-screenshots/, ignored).
//
// Protocol with the Rust side: this script prints `STEP <name>` lines; on `STEP post-second`
// the Rust side posts a second bounty (left in its bid window) while the market page is open.
// The last line is `DASHBOARD OK {…}` on success; any failure exits non-zero with a reason.
import { chromium } from "playwright-core";
import AxeBuilder from "@axe-core/playwright";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

// Answers from the Rust side on stdin (signatures for the wallet login), one line each.
const answers = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing env ${k}`);
  return v;
};
const BASE = env("DASH_URL").replace(/\/$/, "");
const BOUNTY = env("DASH_BOUNTY");
const WINNER = env("DASH_WINNER").toLowerCase();
const POSTER = env("DASH_POSTER").toLowerCase();
const TOKEN = env("DASH_TOKEN");
const PAID = env("DASH_PAID");
const TXS = JSON.parse(env("DASH_TX_GAS")); // {hash: gas}
const INPUT = env("DASH_INPUT"); // the task input as JSON text
const SHOTS = env("DASH_SHOTS");
const WORK_GROUP = env("DASH_WORK_GROUP");
const WALLET = env("DASH_WALLET").toLowerCase(); // the account the Rust side signs for
mkdirSync(SHOTS, { recursive: true });

const step = (s) => console.log(`STEP ${s}`);
function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}
async function poll(what, fn, ms = 60000) {
  const until = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
async function json(path, token) {
  const r = await fetch(BASE + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: r.status, body: await r.json().catch(() => null) };
}

const axeCounts = { minor: 0, moderate: 0, serious: 0, critical: 0 };
const axeBad = [];
const pagesChecked = [];
async function audit(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  const res = await new AxeBuilder({ page }).analyze();
  for (const v of res.violations) {
    axeCounts[v.impact] = (axeCounts[v.impact] || 0) + v.nodes.length;
    if (v.impact === "serious" || v.impact === "critical") {
      axeBad.push(`${name}: ${v.id} (${v.impact}) ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(" | ")}`);
    }
  }
  pagesChecked.push(name);
}
// Waits for the page's own render of `hash` to finish.
async function open(page, hash, selector) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForSelector(selector, { timeout: 30000 });
}

const userDir = mkdtempSync(join(tmpdir(), "reef-chromium-"));
const browser = await chromium.launchPersistentContext(userDir, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = null;
try {
  // ---------------- the stranger ----------------
  step("stranger");
  const s = await browser.newPage();
  const errors = [];
  s.on("pageerror", (e) => errors.push(String(e)));
  await s.goto(`${BASE}/`);
  await s.waitForSelector("#phase-counts");
  check((await s.textContent("#whoami")).includes("stranger"), "a fresh browser is a stranger");
  await s.evaluate(() => { window.__loaded = "first"; });
  // Every event the stranger's own live stream carries, for the leak check at the end.
  await s.evaluate(() => {
    window.__events = [];
    const es = new EventSource("/v1/dashboard/live");
    for (const k of ["hello", "bounty", "group", "resync"]) es.addEventListener(k, (e) => window.__events.push({ k, d: e.data }));
  });
  const market = (await json("/v1/dashboard/market")).body;
  for (const p of market.phases) {
    const shown = await s.textContent(`#phase-counts [data-phase="${p.phase}"] [data-testid=count]`);
    check(Number(shown.replace(/,/g, "")) === p.count, `phase ${p.phase}: shown ${shown}, API ${p.count}`);
  }
  check(market.phases.find((p) => p.phase === "settled").count >= 1, "a settled bounty is counted");
  check(await s.$(`tr[data-bounty-id="${BOUNTY}"][data-phase="settled"]`), "the settled bounty is listed as settled");
  check((await s.$$("#chart-gas circle")).length >= 1, "the gas chart has a point");
  check((await s.$$("#chart-throughput rect")).length >= 1, "the throughput chart has a bar");
  const fee = await s.getAttribute("#fees [data-amount]", "data-amount");
  check(fee === market.fees[0].amount && BigInt(fee) > 0n, `fees shown ${fee} = API ${JSON.stringify(market.fees)}`);
  await audit(s, "market");

  // A second bounty posted while the page is open appears without a reload.
  step("post-second");
  const second = await poll("the second bounty on the open market page", async () => {
    const row = await s.$(`tr[data-bounty-id]:not([data-bounty-id="${BOUNTY}"])`);
    return row && row.getAttribute("data-bounty-id");
  }, 90000);
  check((await s.evaluate(() => window.__loaded)) === "first", "the page was not reloaded");
  step(`second ${second}`);

  // The settled bounty as the stranger: public facts, nothing private.
  await open(s, `#/bounty/${BOUNTY}`, "#timeline");
  check((await s.getAttribute("[data-testid=winner]", "data-address")) === WINNER, "winner shown = chain's provider");
  const shownTx = await s.$$eval("#transactions [data-tx-hash]", (rows) => rows.map((r) => [r.dataset.txHash, r.querySelector("[data-gas]").dataset.gas]));
  check(shownTx.length === Object.keys(TXS).length, `tx count ${shownTx.length} vs index ${Object.keys(TXS).length}`);
  for (const [h, g] of shownTx) check(String(TXS[h]) === g, `tx ${h}: gas shown ${g}, receipt ${TXS[h]}`);
  const paid = await s.getAttribute("[data-testid=payout-amount] [data-amount]", "data-amount");
  check(paid === PAID, `payout shown ${paid}, chain ${PAID}`);
  const bcount = await s.textContent("[data-testid=bid-count]");
  const apiView = (await json(`/v1/market/bounties/${BOUNTY}`)).body;
  check(Number(bcount) === apiView.bids, `bid count ${bcount} = API ${apiView.bids}`);
  check((await s.getAttribute("[data-testid=ranking-hidden]", "data-reason")) === "poster_only", "a stranger gets no ranking");
  check(await s.$("[data-testid=input-hidden]"), "a stranger gets no task input");
  check(await s.$("[data-testid=conversation-hidden]"), "a stranger gets no transcript");
  check(!(await s.$("#ranking")) && !(await s.$("#task-input")) && !(await s.$("#conversation")), "no private section rendered");
  const strangerText = await s.textContent("main");
  const flat = strangerText.replace(/\s/g, "");
  const nums = JSON.parse(INPUT);
  check(!flat.includes(nums.join(",")), "the task input is not on the stranger's page");
  check(!flat.includes([...nums].sort((a, b) => a - b).join(",")), "the result is not on the stranger's page");
  const apiStranger = (await s.evaluate(async (id) => (await fetch(`/v1/dashboard/bounties/${id}`)).json(), BOUNTY));
  check(apiStranger.ranking === null && apiStranger.input === null && apiStranger.conversation === null, "the stranger's JSON has no ranking, input or transcript");
  check(!apiStranger.verdict || !("result" in apiStranger.verdict), "the stranger's verdict has no result");
  const grp = await s.evaluate(async (g) => (await fetch(`/v1/dashboard/groups/${g}`)).status, WORK_GROUP);
  check(grp === 401, `a stranger reading the work group gets 401, got ${grp}`);
  await audit(s, "bounty-stranger");

  // The second bounty: still bidding, its bids sealed, the count public (and live).
  await open(s, `#/bounty/${second}`, "[data-testid=bid-count]");
  const bids = await poll("a sealed bid counted on the second bounty", async () => {
    const n = Number(await s.textContent("[data-testid=bid-count]"));
    return n >= 1 ? n : null;
  }, 60000);
  const secondApi = (await json(`/v1/market/bounties/${second}`)).body;
  check(secondApi.phase === "bidding" && secondApi.bids === bids, `bid count ${bids} = API ${secondApi.bids} (${secondApi.phase})`);
  check((await s.getAttribute("[data-testid=ranking-hidden]", "data-reason")) === "sealed", "bids are sealed while bidding");
  await audit(s, "bounty-bidding");

  await open(s, "#/agents", "[data-agent]");
  check(await s.$(`[data-agent="${WINNER}"] .st-online`), "the agent's card shows it online");
  await s.fill("#agent-search", "sort");
  await s.click("form.search button");
  await poll("search results", async () => (await s.textContent("main [role=status]")).includes("match"));
  check(await s.$(`[data-agent="${WINNER}"]`), "discovery finds the sort agent");
  await audit(s, "agents");
  await s.fill("#agent-search", "");
  await s.click("form.search button");
  await open(s, `#/agent/${WINNER}`, "#h-rep");
  check(await s.$("#reputation tbody tr"), "the reputation is explained");
  await audit(s, "agent");
  await open(s, "#/groups", "[data-testid=groups-hidden]");
  await audit(s, "groups-stranger");
  await open(s, "#/bounties", "[data-testid=bounty-table]");
  await audit(s, "bounties");

  // ---------------- the poster, logged in with the CLI's link ----------------
  step("poster");
  const ctx2dir = mkdtempSync(join(tmpdir(), "reef-chromium-"));
  const posterBrowser = await chromium.launchPersistentContext(ctx2dir, {
    executablePath: "/usr/bin/chromium", headless: true, viewport: { width: 1280, height: 900 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const p = await posterBrowser.newPage();
    p.on("pageerror", (e) => errors.push(String(e)));
    await p.goto(`${BASE}/#login=${TOKEN}`);
    await poll("the poster's session", async () => (await p.getAttribute("#whoami", "title")).toLowerCase() === POSTER);
    check(!p.url().includes(TOKEN), "the token left the address bar");
    const cookies = await posterBrowser.cookies();
    const c = cookies.find((k) => k.name === "reef_session");
    check(c && c.httpOnly && c.sameSite === "Strict", `session cookie is HttpOnly, SameSite=Strict: ${JSON.stringify(c)}`);
    await open(p, `#/bounty/${BOUNTY}`, "#ranking");
    const top = await p.$$eval("#ranking tbody tr", (rows) => rows.map((r) => r.dataset.bidder));
    check(top[0] === WINNER, `ranking's first = winner (${top})`);
    const parts = await p.$$eval("#ranking tbody tr:first-child [data-part]", (x) => x.map((e) => e.dataset.part));
    for (const k of ["price", "eta", "reputation", "stake"]) check(parts.includes(k), `score part ${k} shown (${parts})`);
    check(JSON.stringify(JSON.parse(await p.textContent("#task-input"))) === JSON.stringify(JSON.parse(INPUT)), "the poster sees the task input");
    check((await p.$$("#conversation .msg")).length >= 1, "the poster sees the work group's conversation");
    check(await p.$("[data-testid=result]"), "the poster sees the verdict's result");
    await audit(p, "bounty-poster");

    // The work group's transcript, updated live by a message sent while it is open.
    await open(p, `#/group/${WORK_GROUP}`, "#transcript");
    const before = (await p.$$("#transcript .msg")).length;
    await p.evaluate(() => { window.__loaded = "group"; });
    const msgId = `dash-${Date.now()}`;
    const sent = await fetch(`${BASE}/v1/groups/${WORK_GROUP}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ msg_id: msgId, state: "discussion", body: { note: "checked from the dashboard test" }, mood: "cheerful" }),
    });
    check(sent.ok, `message sent (${sent.status} ${await sent.text()})`);
    await poll("the new message in the open transcript", async () => p.$(`#transcript .msg[data-msg-id="${msgId}"]`), 30000);
    check((await p.$$("#transcript .msg")).length === before + 1, "exactly one new message");
    check((await p.evaluate(() => window.__loaded)) === "group", "the transcript updated without a reload");
    const extra = await p.textContent(`#transcript .msg[data-msg-id="${msgId}"] dl`);
    check(extra.includes("mood") && extra.includes("cheerful"), `unknown envelope fields are shown: ${extra}`);
    await audit(p, "group");

    // Login through the form (the token pasted) in a fresh page after logging out.
    await p.click("#logout");
    await poll("logged out", async () => (await p.textContent("#whoami")).includes("stranger"));
    await p.click("#login-open");
    await p.fill("#login-token", TOKEN);
    await p.click("#login-submit");
    await poll("logged in by the form", async () => (await p.getAttribute("#whoami", "title")).toLowerCase() === POSTER);
    await open(p, "#/groups", "#group-list");
    await audit(p, "groups-member");
  } finally {
    await posterBrowser.close();
    rmSync(ctx2dir, { recursive: true, force: true });
  }

  // ---------------- a wallet (window.ethereum) that is not the poster ----------------
  step("wallet");
  const wdir = mkdtempSync(join(tmpdir(), "reef-chromium-"));
  const walletBrowser = await chromium.launchPersistentContext(wdir, {
    executablePath: "/usr/bin/chromium", headless: true, viewport: { width: 1280, height: 900 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const w = await walletBrowser.newPage();
    w.on("pageerror", (e) => errors.push(String(e)));
    // The wallet's key stays on the Rust side: personal_sign asks it over stdout/stdin.
    await w.exposeFunction("__reefSign", async (hex) => {
      console.log(`SIGN ${hex}`);
      const { value } = await answers.next();
      return value;
    });
    await w.addInitScript((account) => {
      window.ethereum = {
        request: async ({ method, params }) => {
          if (method === "eth_requestAccounts") return [account];
          if (method === "personal_sign") return window.__reefSign(params[0]);
          throw new Error(`unsupported ${method}`);
        },
      };
    }, WALLET);
    await w.goto(`${BASE}/#/bounty/${BOUNTY}`);
    await w.waitForSelector("[data-testid=ranking-hidden]");
    await w.click("#login-open");
    await w.click("#wallet-login");
    await poll("the wallet's session", async () => (await w.getAttribute("#whoami", "title")).toLowerCase() === WALLET);
    await w.waitForSelector("[data-testid=ranking-hidden]");
    check((await w.getAttribute("[data-testid=ranking-hidden]", "data-reason")) === "poster_only", "a logged-in non-poster gets no ranking");
    check(await w.$("[data-testid=input-hidden]") && await w.$("[data-testid=conversation-hidden]"), "a logged-in stranger gets no input or transcript");
    await audit(w, "bounty-wallet");
  } finally {
    await walletBrowser.close();
    rmSync(wdir, { recursive: true, force: true });
  }

  // The stranger's stream carried bounty changes but nothing about the group.
  const evs = await s.evaluate(() => window.__events);
  check(evs.some((e) => e.k === "bounty"), `the stranger's stream is live (${evs.length} events)`);
  check(!evs.some((e) => e.k === "group" || e.d.includes(WORK_GROUP)), "the stranger's stream names no group");
  check(errors.length === 0, `page errors: ${errors.join("; ")}`);
  check(axeBad.length === 0, `axe found serious/critical violations:\n${axeBad.join("\n")}`);
} catch (e) {
  failed = e;
} finally {
  await browser.close();
  rmSync(userDir, { recursive: true, force: true });
}
console.log(`AXE ${JSON.stringify({ pages: pagesChecked, counts: axeCounts, serious_or_critical: axeBad })}`);
if (failed) {
  console.error(`DASHBOARD FAILED: ${failed.stack || failed}`);
  process.exit(1);
}
console.log(`DASHBOARD OK ${JSON.stringify({ pages: pagesChecked })}`);
process.exit(0);
