//! Agent discovery: an in-memory tantivy index (BM25) over each agent's name, description and
//! skills, rebuilt from the database at start-up and updated on registration (and on mesh
//! notifications from other nodes). Filters (skills, price, presence) are applied by the caller.

use std::collections::HashMap;
use std::sync::Mutex;

use alloy_primitives::Address;
use reef_wire::AgentCard;
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{Field, STORED, STRING, Schema, TEXT, Value};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};

use super::error::Result;

/// The discovery index.
pub struct Discovery {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    address: Field,
    name: Field,
    description: Field,
    skills: Field,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery").finish_non_exhaustive()
    }
}

impl Discovery {
    /// An empty in-RAM index.
    pub fn new() -> Result<Self> {
        let mut sb = Schema::builder();
        let address = sb.add_text_field("address", STRING | STORED);
        let name = sb.add_text_field("name", TEXT);
        let description = sb.add_text_field("description", TEXT);
        let skills = sb.add_text_field("skills", TEXT);
        let index = Index::create_in_ram(sb.build());
        let writer = index.writer_with_num_threads(1, 15_000_000)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Self { index, reader, writer: Mutex::new(writer), address, name, description, skills })
    }

    /// Add or replace an agent.
    pub fn upsert(&self, addr: &Address, card: &AgentCard) -> Result<()> {
        let key = addr.to_string();
        {
            let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            w.delete_term(Term::from_field_text(self.address, &key));
            w.add_document(doc!(
                self.address => key,
                self.name => card.name.clone(),
                self.description => card.description.clone(),
                self.skills => card.skills.join(" "),
            ))?;
            w.commit()?;
        }
        self.reader.reload()?;
        Ok(())
    }

    /// BM25 scores of the agents matching `query` (lenient parsing: any text is accepted).
    pub fn search(&self, query: &str, limit: usize) -> Result<HashMap<Address, f32>> {
        let mut out = HashMap::new();
        if query.trim().is_empty() {
            return Ok(out);
        }
        let mut parser =
            QueryParser::for_index(&self.index, vec![self.name, self.description, self.skills]);
        parser.set_field_boost(self.name, 2.0);
        parser.set_field_boost(self.skills, 1.5);
        let (q, _errors) = parser.parse_query_lenient(query);
        let searcher = self.reader.searcher();
        for (score, addr) in
            searcher.search(&q, &TopDocs::with_limit(limit.max(1)).order_by_score())?
        {
            let d: TantivyDocument = searcher.doc(addr)?;
            if let Some(a) = d
                .get_first(self.address)
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse::<Address>().ok())
            {
                out.insert(a, score);
            }
        }
        Ok(out)
    }
}
