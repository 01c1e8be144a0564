//! Discovery benchmark (not a test): ranking quality and latency of the node's discovery.
//!
//! Quality: the evaluation set of `semantic/eval/` (agent cards and natural-language queries
//! with the agents that answer them, some sharing no keyword with their agents: `nokw`) is
//! registered on a node running the embedding model, and every query goes through
//! [`Node::discover_weighted`] three times: BM25 alone (the ranking of a node without a model),
//! vectors alone, and the hybrid the node uses. For each: recall@5 (the share of a query's
//! relevant agents among its first five hits, averaged over the queries) and MRR (the mean of
//! 1 / rank of the first relevant hit, 0 when none is among the hits), over all queries and
//! over the `kw` and `nokw` ones apart. The `nokw` marks are checked first (a query marked so
//! that shares a keyword with one of its agents stops the benchmark).
//!
//! Latency: `--cards` agents (the set plus cards synthesised from its parts) registered
//! through [`Node::register`] (embedding included), then `--queries` distinct
//! natural-language queries: p50/p99 of a whole discovery call, of the query's embedding and
//! of the brute-force vector search alone.
//!
//! `cargo run --release -p marketplace-node --example discovery_bench -- --model models/all-MiniLM-L6-v2`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, keccak256};
use clap::Parser;
use eyre::{Context, bail, eyre};
use marketplace_node::ioa::{self, Node, semantic::ModelChoice};
use reef_semantic::Weights;
use reef_wire::{AgentCard, AgentQuery};

/// Benchmark options.
#[derive(Debug, Parser)]
#[command(
    after_help = "Example:\n  cargo run --release -p marketplace-node --example discovery_bench -- \\\n    --model models/all-MiniLM-L6-v2 --cards 10000 --queries 500"
)]
struct Opts {
    /// The embedding model folder (`make model`).
    #[arg(long)]
    model: PathBuf,
    /// The evaluation set (cards.txt, queries.txt, stopwords.txt).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../semantic/eval"))]
    eval: PathBuf,
    /// Agents registered for the latency run (the set plus synthesised cards).
    #[arg(long, default_value_t = 10_000)]
    cards: usize,
    /// Distinct queries timed in the latency run.
    #[arg(long, default_value_t = 500)]
    queries: usize,
}

struct Card {
    id: String,
    card: AgentCard,
}

struct Query {
    relevant: Vec<String>,
    keywordless: bool,
    text: String,
}

fn lines(path: &Path) -> eyre::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect())
}

fn fields(line: &str, n: usize, file: &str) -> eyre::Result<Vec<String>> {
    let f: Vec<String> = line.split('|').map(|s| s.trim().to_string()).collect();
    if f.len() != n {
        bail!("{file}: expected {n} fields separated by `|`: {line}");
    }
    Ok(f)
}

fn load(dir: &Path) -> eyre::Result<(Vec<Card>, Vec<Query>, Vec<String>)> {
    let mut cards = Vec::new();
    for l in lines(&dir.join("cards.txt"))? {
        let f = fields(&l, 4, "cards.txt")?;
        cards.push(Card {
            id: f[0].clone(),
            card: AgentCard {
                name: f[1].clone(),
                skills: f[2].split(',').map(|s| s.trim().to_string()).collect(),
                description: f[3].clone(),
                ..Default::default()
            },
        });
    }
    let mut queries = Vec::new();
    for l in lines(&dir.join("queries.txt"))? {
        let f = fields(&l, 3, "queries.txt")?;
        let keywordless = match f[1].as_str() {
            "kw" => false,
            "nokw" => true,
            other => bail!("queries.txt: mark must be kw or nokw, not {other:?}: {l}"),
        };
        let relevant: Vec<String> = f[0].split(',').map(|s| s.trim().to_string()).collect();
        for r in &relevant {
            if !cards.iter().any(|c| &c.id == r) {
                bail!("queries.txt: unknown card {r}: {l}");
            }
        }
        queries.push(Query { relevant, keywordless, text: f[2].clone() });
    }
    let stop = lines(&dir.join("stopwords.txt"))?
        .iter()
        .flat_map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .collect();
    Ok((cards, queries, stop))
}

/// Words as the BM25 index sees them (tantivy's default tokenizer: runs of alphanumeric
/// characters, lower-cased).
fn words(text: &str) -> std::collections::HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Checks every query's mark: `nokw` queries share no word outside the stop words with any of
/// their agents, `kw` queries share at least one.
fn check_marks(cards: &[Card], queries: &[Query], stop: &[String]) -> eyre::Result<()> {
    for q in queries {
        let mut shared = Vec::new();
        for r in &q.relevant {
            let c = &cards.iter().find(|c| &c.id == r).expect("checked at load").card;
            let card_words = words(&format!("{} {} {}", c.name, c.skills.join(" "), c.description));
            shared.extend(
                words(&q.text)
                    .into_iter()
                    .filter(|w| !stop.contains(w) && card_words.contains(w))
                    .map(|w| format!("{w} ({r})")),
            );
        }
        if q.keywordless && !shared.is_empty() {
            bail!("query marked nokw shares {shared:?}: {}", q.text);
        }
        if !q.keywordless && shared.is_empty() {
            bail!("query marked kw shares no keyword with its agents: {}", q.text);
        }
    }
    Ok(())
}

fn address_of(id: &str) -> Address {
    Address::from_slice(&keccak256(id.as_bytes())[12..])
}

#[derive(Default, Clone, Copy)]
struct Quality {
    recall5: f64,
    mrr: f64,
    n: usize,
}

impl Quality {
    fn add(&mut self, hits: &[Address], relevant: &[Address]) {
        let top5 = hits.iter().take(5).filter(|h| relevant.contains(h)).count();
        self.recall5 += top5 as f64 / relevant.len() as f64;
        if let Some(rank) = hits.iter().position(|h| relevant.contains(h)) {
            self.mrr += 1.0 / (rank + 1) as f64;
        }
        self.n += 1;
    }

    fn show(&self) -> String {
        let n = self.n.max(1) as f64;
        format!("recall@5 {:.3}  MRR {:.3}", self.recall5 / n, self.mrr / n)
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn open_node(dir: &Path, model: &Path) -> eyre::Result<Node> {
    let config = ioa::Config {
        node_id: "discovery-bench".into(),
        database_url: format!("sqlite://{}/node.db", dir.display()),
        embedding_model: ModelChoice::Dir(model.to_path_buf()),
        ..ioa::Config::default()
    };
    Ok(Node::open(config).await?)
}

/// A card made of the parts of two cards of the set (another agent in the same trade).
fn synthesise(i: usize, cards: &[Card]) -> AgentCard {
    const PREFIX: [&str; 8] =
        ["Swift", "Prime", "Open", "Nordic", "Metro", "Budget", "Expert", "Quick"];
    let a = &cards[(i * 7919) % cards.len()].card;
    let b = &cards[(i * 104_729 + 13) % cards.len()].card;
    let (a_words, b_words): (Vec<&str>, Vec<&str>) =
        (a.description.split(' ').collect(), b.description.split(' ').collect());
    let description = format!(
        "{} {}",
        a_words[..a_words.len().div_ceil(2)].join(" "),
        b_words[b_words.len() / 2..].join(" ")
    );
    AgentCard {
        name: format!("{} {} {i}", PREFIX[i % PREFIX.len()], a.name),
        description,
        skills: a.skills.iter().chain(b.skills.iter().take(1)).cloned().collect(),
        price: Some((i % 50) as f64 + 1.0),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let opts = Opts::parse();
    let (cards, queries, stop) = load(&opts.eval)?;
    check_marks(&cards, &queries, &stop)?;
    let nokw = queries.iter().filter(|q| q.keywordless).count();
    println!(
        "evaluation set: {} cards, {} queries ({} sharing no keyword with their agents)",
        cards.len(),
        queries.len(),
        nokw
    );

    // Quality on the evaluation set.
    let dir = std::env::temp_dir().join(format!("reef-discovery-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let node = open_node(&dir, &opts.model).await?;
    if !node.semantic().enabled() {
        bail!("the embedding model did not load from {}", opts.model.display());
    }
    for c in &cards {
        node.register(&address_of(&c.id), c.card.clone()).await?;
    }
    let mut rankers = vec![
        ("BM25 alone".to_string(), Weights::KEYWORD),
        ("vector alone".to_string(), Weights::VECTOR),
        ("hybrid (node)".to_string(), Weights::HYBRID),
    ];
    // How the hybrid moves with the share of BM25 (reputation kept at its weight).
    for b in [0.05f32, 0.1, 0.2, 0.3, 0.45] {
        let w = Weights { bm25: b, semantic: 0.9 - b, reputation: 0.1 };
        if w != Weights::HYBRID {
            rankers.push((format!("  bm25 {b:.2} sem {:.2}", 0.9 - b), w));
        }
    }
    println!("\nranking quality ({} queries; hits: up to 100 per query)", queries.len());
    println!("{:<22} {:<28} {:<28} {:<28}", "ranker", "all", "kw", "nokw");
    for (name, weights) in rankers {
        let (mut all, mut kw, mut nk) =
            (Quality::default(), Quality::default(), Quality::default());
        for q in &queries {
            let hits: Vec<Address> = node
                .discover_weighted(
                    &AgentQuery { query: q.text.clone(), limit: Some(100), ..Default::default() },
                    weights,
                )
                .await?
                .iter()
                .map(|a| a.address)
                .collect();
            let relevant: Vec<Address> = q.relevant.iter().map(|r| address_of(r)).collect();
            all.add(&hits, &relevant);
            if q.keywordless { nk.add(&hits, &relevant) } else { kw.add(&hits, &relevant) }
        }
        println!("{name:<22} {:<28} {:<28} {:<28}", all.show(), kw.show(), nk.show());
    }

    // Latency at `--cards` agents.
    let t = Instant::now();
    let extra = opts.cards.saturating_sub(cards.len());
    for i in 0..extra {
        node.register(&address_of(&format!("synthetic-{i}")), synthesise(i, &cards)).await?;
    }
    let reg = t.elapsed();
    let total = cards.len() + extra;
    println!(
        "\nlatency with {total} agents ({extra} synthesised; registering them took {:.1} s, {:.2} ms each, embedding included)",
        reg.as_secs_f64(),
        reg.as_secs_f64() * 1e3 / extra.max(1) as f64
    );
    if node.semantic().len() != total {
        bail!("{} vectors for {total} agents", node.semantic().len());
    }
    let texts: Vec<String> = (0..opts.queries)
        .map(|i| {
            let q = &queries[i % queries.len()].text;
            match i / queries.len() {
                0 => q.clone(),
                round => format!("{q} (request {round})"),
            }
        })
        .collect();
    let (mut whole, mut embed, mut search, mut bm25) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, text) in texts.iter().enumerate() {
        // Embedding and vector search alone, on a text the cache has not seen.
        let fresh = format!("{text} [{i}]");
        let t = Instant::now();
        let v = node.semantic().query_vector(&fresh).await?.ok_or_else(|| eyre!("no model"))?;
        embed.push(t.elapsed());
        let t = Instant::now();
        let sims = node.semantic().similarities(&v, 1000, []);
        search.push(t.elapsed());
        std::hint::black_box(sims);
        let t = Instant::now();
        std::hint::black_box(node.discovery().search(text, 1000)?);
        bm25.push(t.elapsed());
        // The whole call, as a client sees it (its query not cached yet).
        let asked = format!("{text} (query {i})");
        let t = Instant::now();
        let hits = node
            .discover(&AgentQuery { query: asked, limit: Some(20), ..Default::default() })
            .await?;
        whole.push(t.elapsed());
        std::hint::black_box(hits);
    }
    for v in [&mut whole, &mut embed, &mut search, &mut bm25] {
        v.sort();
    }
    println!("{:<40} {:>10} {:>10}", "", "p50", "p99");
    for (name, v) in [
        ("discover (hybrid, whole call)", &whole),
        ("  query embedding (model, 1 sentence)", &embed),
        ("  vector search (brute force)", &search),
        ("  BM25 search (tantivy)", &bm25),
    ] {
        println!("{name:<40} {:>10} {:>10}", ms(pct(v, 0.5)), ms(pct(v, 0.99)));
    }
    println!("({} queries, each discover call embeds a query the node has not seen)", texts.len());
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
