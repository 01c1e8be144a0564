// Reef dashboard: a hash-routed page over /v1/dashboard/* with live updates from
// /v1/dashboard/live. Hand-written, no dependencies; every value from the node is put in the
// page as text (never as HTML).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);

// el("tag", {attr: value, onclick: fn}, child, …): children are nodes or text.
function el(tag, attrs, ...children) {
  const svg = ["svg", "rect", "circle", "line", "polyline", "text", "g", "title", "desc"].includes(tag);
  const n = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else if (k === "text") n.textContent = v;
    else n.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return n;
}

async function api(path, opts = {}) {
  const r = await fetch(path, { credentials: "same-origin", headers: { "content-type": "application/json" }, ...opts });
  const text = await r.text();
  let body;
  try { body = text ? JSON.parse(text) : null; } catch { body = { message: text }; }
  if (!r.ok) {
    const e = new Error((body && body.message) || r.statusText);
    e.status = r.status;
    throw e;
  }
  return body;
}

// ---------- formatting ----------
const PHASE_TEXT = {
  bidding: "Bidding (sealed)", contest: "Contest", awaiting_award: "Awaiting award", working: "Working",
  evaluating: "Evaluating", settling: "Settling", awaiting_poster: "Poster reviews", settled: "Settled", failed: "Failed",
};
const phaseBadge = (p) => el("span", { class: `badge ph-${p}`, "data-phase": p }, PHASE_TEXT[p] || p);
const short = (h) => (h && h.length > 14 ? `${h.slice(0, 8)}…${h.slice(-4)}` : h || "");

// A short monospace hash; the whole value is in its title and copied on click.
function hash(h, kind = "value") {
  if (!h) return el("span", { class: "muted" }, "—");
  return el("button", {
    type: "button", class: "hash", title: `${h} (click to copy)`, "aria-label": `${kind} ${h}, copy`,
    "data-full": h,
    onclick: () => navigator.clipboard && navigator.clipboard.writeText(h).catch(() => {}),
  }, short(h));
}
function addr(a) {
  if (!a) return el("span", { class: "muted" }, "—");
  return el("a", { href: `#/agent/${a}`, class: "mono", title: a, "data-address": a.toLowerCase() }, short(a));
}
function bountyLink(id, text) {
  return el("a", { href: `#/bounty/${id}`, class: "mono", title: id }, text || short(id));
}
function ago(ms) {
  if (!ms) return el("span", { class: "muted" }, "—");
  const s = Math.round((Date.now() - ms) / 1000);
  const abs = Math.abs(s);
  const t = abs < 60 ? `${abs}s` : abs < 3600 ? `${Math.round(abs / 60)} min` : abs < 86400 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} d`;
  const d = new Date(ms);
  return el("time", { datetime: d.toISOString(), title: d.toLocaleString() }, s >= 0 ? `${t} ago` : `in ${t}`);
}
// Base units with 18 decimals, as "1.25"; the exact integer stays in data-amount.
function units(raw) {
  if (raw === null || raw === undefined || raw === "") return "—";
  let s = String(raw).replace(/^0+(?=\d)/, "");
  const neg = s.startsWith("-");
  if (neg) s = s.slice(1);
  s = s.padStart(19, "0");
  const whole = s.slice(0, -18).replace(/^0+(?=\d)/, "");
  const frac = s.slice(-18).replace(/0+$/, "").slice(0, 6);
  return (neg ? "-" : "") + whole + (frac ? `.${frac}` : "");
}
function amount(raw, token) {
  return el("span", { "data-amount": raw ?? "", title: raw ? `${raw} base units${token ? ` of ${token}` : ""}` : null }, units(raw), token ? el("span", { class: "muted" }, ` ${tokenName(token)}`) : null);
}
let TOKENS = {};
const tokenName = (t) => TOKENS[(t || "").toLowerCase()] || short(t);
const num = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en"));

// ---------- session ----------
let ME = null;
async function refreshSession() {
  try { ME = (await api("/v1/dashboard/session")).address; } catch { ME = null; }
  $("#whoami").textContent = ME ? `signed in as ${short(ME)}` : "stranger";
  $("#whoami").title = ME || "not logged in: you see public data only";
  $("#logout").hidden = !ME;
  $("#login-open").hidden = !!ME;
}
async function useToken(token) {
  await api("/v1/dashboard/session", { method: "POST", body: JSON.stringify({ token: token.trim() }) });
  $("#login").hidden = true;
  $("#login-token").value = "";
  await refreshSession();
  connectLive();
  render();
}
function setupLogin() {
  $("#login-open").addEventListener("click", () => { $("#login").hidden = false; $("#login-token").focus(); });
  $("#login-cancel").addEventListener("click", () => { $("#login").hidden = true; });
  $("#logout").addEventListener("click", async () => {
    await api("/v1/dashboard/session", { method: "DELETE" });
    await refreshSession();
    connectLive();
    render();
  });
  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#login-error").textContent = "";
    try { await useToken($("#login-token").value); } catch (e) { $("#login-error").textContent = `Login failed: ${e.message}`; }
  });
  $("#wallet-login").addEventListener("click", async () => {
    $("#login-error").textContent = "";
    const eth = window.ethereum;
    if (!eth) { $("#login-error").textContent = "No wallet in this browser (window.ethereum is missing): use a token from `reef dashboard login`."; return; }
    try {
      const [account] = await eth.request({ method: "eth_requestAccounts" });
      const ch = await api("/v1/auth/challenge", { method: "POST", body: "{}" });
      const hex = "0x" + Array.from(new TextEncoder().encode(ch.message), (b) => b.toString(16).padStart(2, "0")).join("");
      const signature = await eth.request({ method: "personal_sign", params: [hex, account] });
      const out = await api("/v1/auth/login", { method: "POST", body: JSON.stringify({ address: account, nonce: ch.nonce, signature }) });
      await useToken(out.token);
    } catch (e) { $("#login-error").textContent = `Wallet login failed: ${e.message}`; }
  });
}

// ---------- live updates ----------
let source = null;
let liveTimer = null;
function connectLive() {
  if (source) source.close();
  source = new EventSource("/v1/dashboard/live");
  const state = $("#live");
  source.addEventListener("open", () => { state.textContent = "live"; state.classList.add("on"); });
  source.addEventListener("error", () => { state.textContent = "reconnecting…"; state.classList.remove("on"); });
  source.addEventListener("bounty", (ev) => {
    const b = JSON.parse(ev.data);
    const r = route();
    if (r.page === "market" || r.page === "bounties" || (r.page === "bounty" && r.arg === b.id) || r.page === "agent") soon();
  });
  source.addEventListener("group", (ev) => {
    const g = JSON.parse(ev.data);
    const r = route();
    if ((r.page === "groups" || r.page === "group") && (!r.arg || r.arg === g.group_id)) soon();
    if (r.page === "bounty") soon();
  });
  source.addEventListener("resync", soon);
}
// Changes come in bursts: re-read at most every 300 ms.
function soon() {
  if (liveTimer) return;
  liveTimer = setTimeout(() => { liveTimer = null; render({ quiet: true }); }, 300);
}

// ---------- routing ----------
function route() {
  const [page, ...rest] = (location.hash.replace(/^#\/?/, "") || "market").split("/");
  return { page: page || "market", arg: rest.length ? decodeURIComponent(rest.join("/")) : null };
}
const PAGES = { market: marketPage, bounties: bountiesPage, bounty: bountyPage, agents: agentsPage, agent: agentPage, groups: groupsPage, group: groupsPage };
const NAV = { market: "market", bounties: "bounties", bounty: "bounties", agents: "agents", agent: "agents", groups: "groups", group: "groups" };
let rendering = 0;
async function render(opts = {}) {
  const r = route();
  if (r.page === "group") r.page = "groups";
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === NAV[r.page]) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const fn = PAGES[r.page] || notFound;
  const mine = ++rendering;
  try {
    const view = await fn(r.arg);
    if (mine !== rendering) return;
    const main = $("#main");
    const y = window.scrollY;
    main.replaceChildren(view);
    main.dataset.page = r.page;
    main.dataset.rendered = String(Date.now());
    if (opts.quiet) window.scrollTo(0, y); else main.focus({ preventScroll: true });
  } catch (e) {
    if (mine !== rendering) return;
    $("#main").replaceChildren(el("div", { class: "card" }, el("h1", {}, "Something went wrong"), el("p", { class: "error" }, e.message)));
  }
}
function notFound() { return el("div", { class: "card" }, el("h1", {}, "No such page"), el("p", {}, el("a", { href: "#/market" }, "Back to the market"))); }

// ---------- charts (inline SVG) ----------
function chart({ id, title, points, kind, yLabel }) {
  const W = 520, H = 200, L = 56, B = 28, T = 12, R = 12;
  const svg = el("svg", { id, class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${id}-t ${id}-d` });
  svg.append(el("title", { id: `${id}-t` }, title));
  const desc = points.length ? `${points.length} points; highest ${num(Math.max(...points.map((p) => p.y)))} ${yLabel}` : "no data yet";
  svg.append(el("desc", { id: `${id}-d` }, desc));
  if (!points.length) {
    svg.append(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "No settled bounties yet"));
    return svg;
  }
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (x1 === x0) { x0 -= 60_000; x1 += 60_000; }
  const y1 = Math.max(...ys) * 1.1 || 1;
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => H - B - (y / y1) * (H - B - T);
  svg.append(el("line", { class: "ax", x1: L, y1: H - B, x2: W - R, y2: H - B }), el("line", { class: "ax", x1: L, y1: T, x2: L, y2: H - B }));
  for (const f of [0, 0.5, 1]) {
    const v = y1 * f;
    svg.append(el("text", { x: L - 6, y: sy(v) + 4, "text-anchor": "end" }, v >= 1000 ? `${Math.round(v / 1000)}k` : String(Math.round(v * 10) / 10)));
  }
  for (const x of [x0, x1]) {
    svg.append(el("text", { x: sx(x), y: H - 8, "text-anchor": x === x0 ? "start" : "end" }, new Date(x).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
  }
  if (kind === "bars") {
    const bw = Math.max(4, Math.min(28, (W - L - R) / points.length - 4));
    for (const p of points) svg.append(el("rect", { class: "bar", x: sx(p.x) - bw / 2, y: sy(p.y), width: bw, height: H - B - sy(p.y) }, el("title", {}, p.label)));
  } else {
    svg.append(el("polyline", { class: "ln", points: points.map((p) => `${sx(p.x)},${sy(p.y)}`).join(" ") }));
    for (const p of points) svg.append(el("circle", { class: "pt", cx: sx(p.x), cy: sy(p.y), r: 4 }, el("title", {}, p.label)));
  }
  return svg;
}

// ---------- pages ----------
function bountyTable(rows, caption) {
  if (!rows.length) return el("p", { class: "muted" }, "No bounties yet.");
  return el("table", { "data-testid": "bounty-table" },
    caption ? el("caption", { class: "muted" }, caption) : null,
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Bounty"), el("th", { scope: "col" }, "Task"), el("th", { scope: "col" }, "Phase"),
      el("th", { scope: "col", class: "num" }, "Bids"), el("th", { scope: "col", class: "num" }, "Reward"), el("th", { scope: "col" }, "Winner"), el("th", { scope: "col" }, "Posted"))),
    el("tbody", {}, rows.map((b) => el("tr", { "data-bounty-id": b.id, "data-phase": b.phase },
      el("td", {}, bountyLink(b.id), b.parent ? el("div", { class: "muted" }, "sub-bounty of ", bountyLink(b.parent)) : null),
      el("td", {}, b.description.length > 70 ? `${b.description.slice(0, 70)}…` : b.description, b.contest ? el("span", { class: "badge sec sec-contest" }, " contest") : null),
      el("td", {}, phaseBadge(b.phase)),
      el("td", { class: "num", "data-testid": "bids" }, num(b.bids)),
      el("td", { class: "num" }, amount(b.reward, b.token)),
      el("td", {}, addr(b.winner)),
      el("td", {}, ago(b.created_ms))))));
}

async function marketPage() {
  const m = await api("/v1/dashboard/market");
  const root = el("div", {});
  root.append(el("h1", {}, "Market"));
  if (!m.market) {
    root.append(el("div", { class: "card" }, el("p", {}, `Node ${m.node_id} runs no marketplace; agents (${m.agents}) and groups are still shown.`)));
    return root;
  }
  const settledAt = m.settled.map((s) => s.at * 1000);
  root.append(el("section", { class: "card", "aria-labelledby": "h-phases" },
    el("h2", { id: "h-phases" }, "Bounties by phase"),
    el("ul", { class: "stats", id: "phase-counts" }, m.phases.map((p) => el("li", { "data-phase": p.phase },
      el("span", { class: "n", "data-testid": "count" }, num(p.count)), el("span", { class: "l" }, phaseBadge(p.phase))))),
  ));
  // Throughput: settlements per minute.
  const perMin = new Map();
  for (const t of settledAt) { const k = Math.floor(t / 60000) * 60000; perMin.set(k, (perMin.get(k) || 0) + 1); }
  const thr = [...perMin.entries()].sort((a, b) => a[0] - b[0]).map(([x, y]) => ({ x, y, label: `${y} settled in the minute from ${new Date(x).toLocaleTimeString()}` }));
  const gasPts = m.settled.filter((s) => s.gas !== null).map((s) => ({ x: s.at * 1000, y: s.gas, label: `${short(s.id)}: ${num(s.gas)} gas (${s.outcome})` }));
  root.append(el("div", { class: "grid" },
    el("section", { class: "card", "aria-labelledby": "h-thr" }, el("h2", { id: "h-thr" }, "Throughput"), el("p", { class: "muted" }, "Bounties settled on-chain per minute."), chart({ id: "chart-throughput", title: "Settled bounties per minute", points: thr, kind: "bars", yLabel: "per minute" })),
    el("section", { class: "card", "aria-labelledby": "h-gas" }, el("h2", { id: "h-gas" }, "Gas per settled bounty"), el("p", { class: "muted" }, "All transactions of each bounty, from their receipts."), chart({ id: "chart-gas", title: "Gas per settled bounty", points: gasPts, kind: "line", yLabel: "gas" })),
  ));
  root.append(el("div", { class: "grid" },
    el("section", { class: "card", "aria-labelledby": "h-fees" }, el("h2", { id: "h-fees" }, "Fees earned"),
      m.fees.length ? el("ul", { id: "fees", class: "stats" }, m.fees.map((f) => el("li", { "data-token": f.token }, el("span", { class: "n" }, amount(f.amount, f.token)), el("span", { class: "l" }, "token ", hash(f.token, "token")))))
        : el("p", { id: "fees", class: "muted" }, "No fees yet."),
      el("p", { class: "muted" }, `Platform fee ${m.fee_bps === null ? "unknown" : `${m.fee_bps / 100}%`} of each price.`)),
    el("section", { class: "card", "aria-labelledby": "h-node" }, el("h2", { id: "h-node" }, "This node"),
      el("ul", { class: "stats" },
        el("li", {}, el("span", { class: "n" }, num(m.agents_online)), el("span", { class: "l" }, `agents online of ${m.agents}`)),
        el("li", {}, el("span", { class: "n" }, num(m.settled.length)), el("span", { class: "l" }, "recent settlements"))),
      el("p", {}, "Node ", el("code", {}, m.node_id), " · evaluator ", addr(m.evaluator), m.indexed ? "" : " · no embedded indexer: no on-chain history"))));
  root.append(el("section", { class: "card", "aria-labelledby": "h-latest" }, el("h2", { id: "h-latest" }, "Latest bounties"), bountyTable(m.bounties.slice(0, 15))));
  return root;
}

async function bountiesPage() {
  const phase = new URLSearchParams(location.hash.split("?")[1] || "").get("phase") || "";
  const rows = await api(`/v1/dashboard/bounties${phase ? `?phase=${encodeURIComponent(phase)}` : ""}`);
  const sel = el("select", { id: "phase-filter", onchange: (e) => { location.hash = e.target.value ? `#/bounties?phase=${e.target.value}` : "#/bounties"; } },
    el("option", { value: "" }, "all phases"), Object.keys(PHASE_TEXT).map((p) => el("option", { value: p, selected: p === phase }, PHASE_TEXT[p])));
  // A tree: sub-bounties under their parent when both are listed.
  const ids = new Set(rows.map((r) => r.id));
  const top = rows.filter((r) => !r.parent || !ids.has(r.parent));
  const kids = (id) => rows.filter((r) => r.parent === id);
  const flat = [];
  const walk = (r) => { flat.push(r); kids(r.id).forEach(walk); };
  top.forEach(walk);
  return el("div", {}, el("h1", {}, "Bounties"),
    el("div", { class: "card" }, el("label", { for: "phase-filter" }, "Show "), sel, " ", el("span", { class: "muted" }, `${rows.length} bounties`)),
    el("section", { class: "card", "aria-label": "Bounty list" }, bountyTable(flat)));
}

const SECTION_TEXT = { cfp: "call", bids: "bids", award: "award", work: "work", contest: "contest", panel: "panel", verdict: "verdict", payout: "payout", dispute: "dispute", takeover: "take-over", failure: "failure", other: "note" };

async function bountyPage(id) {
  const b = await api(`/v1/dashboard/bounties/${encodeURIComponent(id)}`);
  const s = b.summary;
  const root = el("div", { "data-bounty-id": s.id });
  root.append(el("h1", {}, "Bounty ", hash(s.id, "bounty id"), " ", phaseBadge(s.phase), s.contest ? el("span", { class: "badge sec sec-contest" }, "contest") : ""));
  if (b.parent) root.append(el("p", {}, "Sub-bounty of ", bountyLink(b.parent.id), ` — ${b.parent.description}`));
  const facts = el("ul", { class: "stats" },
    el("li", {}, el("span", { class: "n", "data-testid": "bid-count" }, num(s.bids)), el("span", { class: "l" }, s.phase === "bidding" ? "sealed bids so far" : "bids")),
    el("li", {}, el("span", { class: "n" }, amount(s.reward, s.token)), el("span", { class: "l" }, "reward budget")),
    el("li", {}, el("span", { class: "n", "data-testid": "winner", "data-address": (s.winner || "").toLowerCase() }, s.winner ? addr(s.winner) : "—"), el("span", { class: "l" }, "winner")),
    el("li", {}, el("span", { class: "n", "data-testid": "total-gas" }, num(b.total_gas)), el("span", { class: "l" }, "gas, all transactions")));
  root.append(el("section", { class: "card", "aria-labelledby": "h-cfp" },
    el("h2", { id: "h-cfp" }, "Call for proposals"),
    el("p", { "data-testid": "description" }, b.cfp.description),
    el("ul", { class: "tags", "aria-label": "skills" }, b.cfp.skills.map((k) => el("li", {}, k))),
    el("p", { class: "muted" }, "Posted by ", addr(s.poster), ` · verification: ${b.cfp.verify || "—"}`, ` · window ${Math.round(b.cfp.bid_window_ms / 100) / 10}s · closes `, ago(b.cfp.bid_close_at * 1000),
      b.cfp.deadline ? [" · deadline ", ago(b.cfp.deadline * 1000)] : ""),
    b.cfp.panel.length ? el("div", { "data-testid": "panel" }, el("h3", {}, `Evaluator panel${b.cfp.quorum ? ` (quorum ${b.cfp.quorum})` : ""}`), el("ul", { class: "tags" }, b.cfp.panel.map((a) => el("li", {}, addr(a))))) : "",
    facts));
  // Task input.
  root.append(el("section", { class: "card", "aria-labelledby": "h-input" }, el("h2", { id: "h-input" }, "Task input"),
    b.input !== null && b.input !== undefined
      ? el("pre", { class: "json", id: "task-input", tabindex: "0" }, JSON.stringify(b.input, null, 2))
      : el("p", { class: "private", "data-testid": "input-hidden" }, "Only the poster and the assigned provider see the task input. Log in as one of them.")));
  // Ranking.
  const rk = el("section", { class: "card", "aria-labelledby": "h-rank" }, el("h2", { id: "h-rank" }, "Ranking"));
  if (b.ranking) {
    rk.append(el("table", { id: "ranking" },
      el("thead", {}, el("tr", {}, ["#", "Bidder", "Price", "ETA", "Score", "Parts (value × weight)"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, b.ranking.map((r) => el("tr", { "data-bidder": r.bidder.toLowerCase() },
        el("td", {}, String(r.rank)), el("td", {}, addr(r.bidder), r.failed ? el("span", { class: "badge sec sec-takeover" }, "missed ETA") : ""),
        el("td", { class: "num" }, amount(r.price)), el("td", { class: "num" }, `${r.eta_secs}s`), el("td", { class: "num" }, r.score.toFixed(3)),
        el("td", {}, el("span", { class: "parts" }, r.parts.map((p) => el("span", { class: "part", "data-part": p.name }, `${p.name} ${p.value.toFixed(2)} × ${p.weight}`)))))))));
  } else {
    const why = { sealed: "Bids are sealed until the window closes; only their number is public.", poster_only: "The ranking (every sealed bid and its score) is shown to the bounty's poster only. Log in as the poster.", none: "No ranking for this bounty." };
    rk.append(el("p", { class: "private", "data-testid": "ranking-hidden", "data-reason": b.ranking_note }, why[b.ranking_note] || "No ranking."));
  }
  root.append(rk);
  // Award, verdict, payout.
  const v = b.verdict;
  root.append(el("div", { class: "grid" },
    el("section", { class: "card", "aria-labelledby": "h-award" }, el("h2", { id: "h-award" }, "Award"),
      b.award ? el("p", { "data-testid": "award" }, "Awarded to ", addr(b.award.actor), " at ", amount(b.award.amount, s.token), el("br"), "tx ", hash(b.award.tx_hash, "transaction")) : el("p", { class: "muted" }, "Not awarded on-chain yet.")),
    el("section", { class: "card", "aria-labelledby": "h-verdict" }, el("h2", { id: "h-verdict" }, "Verdict"),
      v ? el("div", { "data-testid": "verdict" },
        el("p", {}, v.pending ? el("span", { class: "badge ph-evaluating" }, "with the evaluators") : el("span", { class: `badge ${v.accept ? "ph-settled" : "ph-failed"}` }, v.accept ? "accepted" : "rejected")),
        v.reason ? el("p", {}, "Verifier: ", el("q", {}, v.reason)) : "",
        "result" in v ? el("pre", { class: "json", tabindex: "0", "data-testid": "result" }, JSON.stringify(v.result)) : el("p", { class: "muted" }, "The result itself is shown to the poster and the provider."))
        : el("p", { class: "muted" }, "No verdict yet.")),
    el("section", { class: "card", "aria-labelledby": "h-payout" }, el("h2", { id: "h-payout" }, "Payout"),
      b.payouts.length ? el("ul", { class: "plain", "data-testid": "payouts" }, b.payouts.map((x) => el("li", { "data-testid": "payout" }, `${x.event}: `, el("span", { "data-testid": "payout-amount" }, amount(x.amount, s.token)), " to ", addr(x.actor), el("br"), "tx ", hash(x.tx_hash, "transaction"))))
        : b.payout ? el("p", {}, `${b.payout.event} · tx `, hash(b.payout.tx_hash, "transaction")) : el("p", { class: "muted" }, "Not paid out yet."))));
  // Timeline.
  root.append(el("section", { class: "card", "aria-labelledby": "h-time" }, el("h2", { id: "h-time" }, "Timeline"),
    el("ol", { class: "timeline", id: "timeline" }, b.timeline.map((t) => el("li", { "data-source": t.source, "data-event": t.event, "data-section": t.section, "data-tx": t.tx_hash || null },
      el("div", {}, ago(t.at_ms), el("div", { class: "src" }, t.source === "chain" ? `on-chain · block ${t.block}` : "node")),
      el("div", {}, el("span", { class: `badge sec sec-${t.section}` }, SECTION_TEXT[t.section] || t.section)),
      el("div", {}, el("span", { class: "what" }, t.event), t.tx_hash ? [" · tx ", hash(t.tx_hash, "transaction"), ` · ${num(t.gas)} gas`] : "",
        t.detail ? el("div", { class: "det" }, t.detail) : ""))))));
  root.append(el("section", { class: "card", "aria-labelledby": "h-tx" }, el("h2", { id: "h-tx" }, "On-chain transactions"),
    b.transactions.length ? el("table", { id: "transactions" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Transaction"), el("th", { scope: "col" }, "Events"), el("th", { scope: "col", class: "num" }, "Block"), el("th", { scope: "col", class: "num" }, "Gas"), el("th", { scope: "col" }, "When"))),
      el("tbody", {}, b.transactions.map((t) => el("tr", { "data-tx-hash": t.tx_hash },
        el("td", {}, hash(t.tx_hash, "transaction")), el("td", {}, t.events.join(", ")), el("td", { class: "num" }, num(t.block)), el("td", { class: "num", "data-gas": t.gas ?? "" }, num(t.gas)), el("td", {}, ago(t.at * 1000)))))) : el("p", { class: "muted" }, "None indexed yet.")));
  // Contest entrants.
  if (s.contest) root.append(el("section", { class: "card", "aria-labelledby": "h-contest" }, el("h2", { id: "h-contest" }, "Contest entries"),
    b.entrants.length ? el("ul", { class: "tags" }, b.entrants.map((a) => el("li", {}, addr(a)))) : el("p", { class: "muted" }, "No entries yet.")));
  // Conversation.
  const conv = el("section", { class: "card", "aria-labelledby": "h-conv" }, el("h2", { id: "h-conv" }, "Work group conversation"));
  if (b.conversation) conv.append(transcript(b.conversation, "conversation"));
  else conv.append(el("p", { class: "private", "data-testid": "conversation-hidden" }, b.work_group ? "The work group's transcript is shown to its members (the poster and the provider). Log in as one of them." : "No work group yet."));
  root.append(conv);
  // Sub-bounties.
  if (b.children.length) root.append(el("section", { class: "card", "aria-labelledby": "h-sub" }, el("h2", { id: "h-sub" }, "Sub-bounties"),
    el("ul", { class: "tree", id: "children" }, b.children.map((c) => el("li", { "data-bounty-id": c.id }, bountyLink(c.id), " ", phaseBadge(c.phase), ` ${c.description}`)))));
  return root;
}

const KNOWN_MSG = new Set(["seq", "ts", "sender_id", "state", "body", "task_desc", "msg_id", "group_id", "v"]);
function transcript(messages, id) {
  if (!messages.length) return el("p", { class: "muted", id }, "No messages yet.");
  return el("ol", { class: "transcript", id }, messages.map((m) => {
    const extra = Object.entries(m).filter(([k]) => !KNOWN_MSG.has(k));
    const body = m.body !== undefined ? m.body : m.task_desc;
    return el("li", { class: `msg${ME && (m.sender_id || "").toLowerCase() === ME.toLowerCase() ? " mine" : ""}`, "data-seq": m.seq, "data-msg-id": m.msg_id },
      el("header", {}, addr(m.sender_id), el("span", { class: "badge sec" }, m.state || "—"), ago(m.ts), el("span", { class: "muted" }, `#${m.seq}`)),
      m.task_desc !== undefined && m.body !== undefined ? el("pre", { tabindex: "0", "aria-label": "task" }, `task: ${JSON.stringify(m.task_desc, null, 1)}`) : "",
      body !== undefined ? el("pre", { tabindex: "0", "aria-label": "message body" }, typeof body === "string" ? body : JSON.stringify(body, null, 1)) : "",
      extra.length ? el("dl", { "aria-label": "other fields" }, extra.map(([k, v]) => [el("dt", {}, k), el("dd", {}, typeof v === "string" ? v : JSON.stringify(v))])) : "");
  }));
}

let agentQuery = "";
async function agentsPage() {
  const data = await api(`/v1/dashboard/agents${agentQuery ? `?q=${encodeURIComponent(agentQuery)}` : ""}`);
  const input = el("input", { id: "agent-search", type: "search", name: "q", value: agentQuery, placeholder: "e.g. sort numbers, translate, judge" });
  const form = el("form", { class: "search", role: "search", onsubmit: (e) => { e.preventDefault(); agentQuery = input.value.trim(); render(); } },
    el("label", { for: "agent-search", class: "muted" }, "Find agents"), input, el("button", { type: "submit" }, "Search"));
  const cards = data.agents.map((a) => el("article", { class: "card agent", "data-agent": a.address.toLowerCase() },
    el("h2", {}, el("a", { href: `#/agent/${a.address}` }, a.card.name || short(a.address)), " ", el("span", { class: `badge ${a.online ? "st-online" : "st-offline"}` }, a.online ? "online" : "offline")),
    el("p", { class: "mono muted", title: a.address }, short(a.address)),
    a.card.description ? el("p", {}, a.card.description) : "",
    el("ul", { class: "tags", "aria-label": "skills" }, (a.card.skills || []).map((k) => el("li", {}, k))),
    el("p", {}, "Stake ", amount(a.stake), " ETH · reputation ", a.reputation === null ? "—" : el("strong", { "data-testid": "reputation" }, a.reputation.toFixed(2)), " · seen ", ago(a.last_seen * 1000))));
  return el("div", {}, el("h1", {}, "Agents"), form,
    el("p", { class: "muted", role: "status" }, agentQuery ? `${data.agents.length} agents match “${agentQuery}” (the node's discovery)` : `${data.agents.length} agents`),
    data.agents.length ? el("div", { class: "agents" }, cards) : el("p", { class: "muted" }, "No agents."));
}

async function agentPage(address) {
  const p = await api(`/v1/dashboard/agents/${encodeURIComponent(address)}`);
  const a = p.agent;
  const root = el("div", { "data-agent": a.address.toLowerCase() });
  root.append(el("h1", {}, a.card.name || "Agent", " ", el("span", { class: `badge ${a.online ? "st-online" : "st-offline"}` }, a.online ? "online" : "offline")));
  root.append(el("section", { class: "card", "aria-labelledby": "h-card" }, el("h2", { id: "h-card" }, "Card"),
    el("p", {}, hash(a.address, "address")), a.card.description ? el("p", {}, a.card.description) : "",
    el("ul", { class: "tags", "aria-label": "skills" }, (a.card.skills || []).map((k) => el("li", {}, k))),
    el("ul", { class: "stats" },
      el("li", {}, el("span", { class: "n" }, amount(a.stake)), el("span", { class: "l" }, "stake (ETH)")),
      el("li", {}, el("span", { class: "n" }, a.reputation === null ? "—" : a.reputation.toFixed(3)), el("span", { class: "l" }, "reputation")),
      el("li", {}, el("span", { class: "n" }, a.card.price ?? "—"), el("span", { class: "l" }, "price hint")))));
  const r = p.reputation;
  root.append(el("section", { class: "card", "aria-labelledby": "h-rep" }, el("h2", { id: "h-rep" }, "Reputation, explained"),
    r ? [el("p", {}, `Score ${r.value.toFixed(3)} with confidence ${r.confidence.toFixed(2)}: ${r.counts.completed} completed, ${r.counts.rejected} rejected, ${r.counts.expired} expired, ${r.counts.disputes_lost} disputes lost.`),
      el("table", { id: "reputation" }, el("thead", {}, el("tr", {}, ["Component", "Value", "Weight", "Why"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, r.components.map((c) => el("tr", {}, el("th", { scope: "row" }, c.name),
          el("td", {}, el("div", { class: "meter", role: "meter", "aria-valuemin": 0, "aria-valuemax": 1, "aria-valuenow": c.value.toFixed(2), "aria-label": `${c.name} ${c.value.toFixed(2)}` }, meterFill(c.value)), c.value.toFixed(2)),
          el("td", { class: "num" }, c.weight.toFixed(2)), el("td", {}, c.explanation)))))]
      : el("p", { class: "muted" }, "No reputation (this node does not index the chain).")));
  root.append(el("section", { class: "card", "aria-labelledby": "h-hist" }, el("h2", { id: "h-hist" }, "On-chain history"),
    p.history.length ? el("table", {}, el("thead", {}, el("tr", {}, ["When", "Event", "Bounty", "Amount", "Transaction"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, p.history.map((e) => el("tr", {}, el("td", {}, ago(e.at * 1000)), el("td", {}, e.kind), el("td", {}, e.ref_id ? bountyLink(e.ref_id) : "—"), el("td", { class: "num" }, amount(e.amount)), el("td", {}, hash(e.tx_hash, "transaction"))))))
      : el("p", { class: "muted" }, "No on-chain events yet.")));
  root.append(el("section", { class: "card", "aria-labelledby": "h-won" }, el("h2", { id: "h-won" }, "Bounties won here"), bountyTable(p.bounties)));
  return root;
}
// The meter's fill width is set through the CSSOM (the page's CSP allows no style attributes).
function meterFill(v) { const s = el("span", {}); s.style.width = `${Math.round(Math.max(0, Math.min(1, v)) * 100)}%`; return s; }

async function groupsPage(id) {
  const r = route();
  const gid = r.page === "group" ? r.arg : id;
  const root = el("div", {}, el("h1", {}, "Groups"));
  if (!ME) {
    root.append(el("div", { class: "card" }, el("p", { class: "private", "data-testid": "groups-hidden" }, "Group transcripts are shown to the groups' members only. Log in to see yours.")));
    return root;
  }
  const { groups } = await api("/v1/dashboard/groups");
  const list = el("nav", { class: "card", "aria-label": "Your groups" }, el("h2", {}, "Your groups"),
    groups.length ? el("ul", { class: "grouplist", id: "group-list" }, groups.map((g) => el("li", { "data-group-id": g.group_id },
      el("a", { href: `#/group/${g.group_id}`, "aria-current": g.group_id === gid ? "true" : null }, g.name || g.group_id, el("span", { class: "muted" }, ` · ${g.last_seq} msgs`)))))
      : el("p", { class: "muted" }, "You are in no group."));
  let pane;
  if (gid) {
    const g = await api(`/v1/dashboard/groups/${encodeURIComponent(gid)}`);
    pane = el("section", { class: "card", "aria-labelledby": "h-group", "data-group-id": g.group.group_id },
      el("h2", { id: "h-group" }, g.group.name || "Group", " ", hash(g.group.group_id, "group id")),
      el("p", { class: "muted" }, `${g.group.members.length} members · created by `, addr(g.group.creator), g.group.parent_group_id ? [" · parent ", hash(g.group.parent_group_id, "group id")] : ""),
      transcript(g.messages, "transcript"));
  } else {
    pane = el("section", { class: "card" }, el("p", { class: "muted" }, "Pick a group to read its transcript; it updates live."));
  }
  root.append(el("div", { class: "split" }, list, pane));
  return root;
}

// ---------- start ----------
async function start() {
  setupLogin();
  // The skip link moves focus without touching the route (the hash is the route here).
  $(".skip").addEventListener("click", (ev) => { ev.preventDefault(); $("#main").focus(); });
  // A login link from `reef dashboard login`: #login=<token> is exchanged for the session
  // cookie and removed from the address bar.
  const m = location.hash.match(/^#login=([0-9a-fA-F]+)/);
  if (m) {
    history.replaceState(null, "", location.pathname + "#/market");
    try { await useToken(m[1]); } catch (e) { $("#login").hidden = false; $("#login-error").textContent = `Login failed: ${e.message}`; }
  }
  await refreshSession();
  try {
    const info = await api("/v1/market/info");
    const t = info.deployment && info.deployment.testToken;
    if (t) TOKENS[t.toLowerCase()] = "rUSD";
  } catch { /* no marketplace on this node */ }
  window.addEventListener("hashchange", () => render());
  connectLive();
  render();
}
start();
