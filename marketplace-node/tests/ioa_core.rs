//! IoA happy paths against a real `reef node` on SQLite (and, reusing the same scenario, on
//! Postgres): auth, registry, discovery, groups/ACL, ordered persisted chat, idempotency,
//! replay on reconnect, REST.

#[path = "ioa_support.rs"]
mod support;

use alloy_signer_local::PrivateKeySigner;
use reef_agent_sdk::{Client, Event};
use reef_wire::{AgentCard, AgentQuery, SendMessage, State};
use serde_json::{Map, json};
use support::*;

async fn next_message(ev: &mut reef_agent_sdk::Events) -> reef_wire::Envelope {
    loop {
        let e = tokio::time::timeout(DEADLINE, ev.recv())
            .await
            .expect("timed out")
            .expect("events closed");
        if let Event::Message(m) = e {
            return m;
        }
    }
}

fn card(name: &str, desc: &str, skills: &[&str], price: f64) -> AgentCard {
    AgentCard {
        name: name.into(),
        description: desc.into(),
        skills: skills.iter().map(|s| s.to_string()).collect(),
        price: Some(price),
        payment_tokens: vec!["USDC".into()],
        verification_modes: vec!["optimistic".into()],
        erc8004_id: None,
        image: None,
        embedding: None,
    }
}

pub(crate) async fn scenario(node: &NodeProc) {
    let (ka, kb, kc) =
        (PrivateKeySigner::random(), PrivateKeySigner::random(), PrivateKeySigner::random());
    let (a, mut ea) = Client::connect(&node.ws_url(), ka.clone()).await.unwrap();
    let (b, mut eb) = Client::connect(&node.ws_url(), kb.clone()).await.unwrap();
    let (c, _ec) = Client::connect(&node.ws_url(), kc.clone()).await.unwrap();
    assert_eq!(a.node_id(), node.node_id);

    // Registry + discovery (BM25 ranking, filters, presence).
    a.register(card(
        "Translator",
        "translates French and German legal documents",
        &["translation", "french"],
        5.0,
    ))
    .await
    .unwrap();
    b.register(card(
        "Summarizer",
        "summarizes long documents into bullet points",
        &["summarization"],
        2.0,
    ))
    .await
    .unwrap();
    c.register(card(
        "Coder",
        "writes Rust code and reviews pull requests",
        &["rust", "code-review"],
        50.0,
    ))
    .await
    .unwrap();
    let hits = b
        .discover(AgentQuery { query: "translate french documents".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(hits[0].address, ka.address(), "{hits:?}");
    assert!(hits[0].score > 0.0 && hits[0].online);
    let hits = b
        .discover(AgentQuery {
            query: "documents".into(),
            max_price: Some(3.0),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(hits.iter().map(|h| h.address).collect::<Vec<_>>(), vec![kb.address()]);
    let hits =
        b.discover(AgentQuery { skills: vec!["rust".into()], ..Default::default() }).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].card.name, "Coder");

    // Group with ACL: a creates with b; c is not a member.
    let g = a.create_group("deal", &[kb.address()], None).await.unwrap();
    assert_eq!(g.members.len(), 2);
    let gid = g.group_id.clone();
    assert!(matches!(b.join(&gid, None).await, Ok(0)));
    a.join(&gid, None).await.unwrap();
    let err = c.join(&gid, None).await.unwrap_err();
    assert!(err.to_string().contains("forbidden"), "{err}");
    let err = c.send(&gid, State::Discussion, Some(json!("hi")), None).await.unwrap_err();
    assert!(err.to_string().contains("forbidden"), "{err}");
    let err = c.invite(&gid, kc.address()).await.unwrap_err();
    assert!(err.to_string().contains("forbidden"), "{err}");
    let err = b.invite(&gid, kc.address()).await.unwrap_err();
    assert!(err.to_string().contains("forbidden"), "only the creator invites: {err}");

    // Ordered delivery, node-assigned seq, unknown fields kept, unknown state delivered as-is.
    for i in 0..20 {
        let mut extra = Map::new();
        extra.insert("mood".into(), json!(i));
        let st = if i == 7 { State::Other("haggling".into()) } else { State::Discussion };
        a.send_message(SendMessage {
            group_id: gid.clone(),
            msg_id: format!("m{i}"),
            state: st,
            task_desc: None,
            body: Some(json!(i)),
            extra,
        })
        .await
        .unwrap();
    }
    for i in 0..20u64 {
        let m = next_message(&mut eb).await;
        assert_eq!((m.seq, m.body.clone(), m.sender_id), (i + 1, Some(json!(i)), ka.address()));
        assert_eq!(m.extra["mood"], json!(i));
        if i == 7 {
            assert_eq!(m.state, State::Other("haggling".into()));
        }
        assert_eq!(next_message(&mut ea).await.seq, i + 1);
    }
    // Idempotent msg_id.
    let (seq, dup) = a
        .send_message(SendMessage {
            group_id: gid.clone(),
            msg_id: "m3".into(),
            state: State::Discussion,
            task_desc: None,
            body: Some(json!("again")),
            extra: Map::new(),
        })
        .await
        .unwrap();
    assert_eq!((seq, dup), (4, true));

    // Invite c; c joins from the start and gets the full history in order.
    a.invite(&gid, kc.address()).await.unwrap();
    let (c2, mut ec2) = Client::connect(&node.ws_url(), kc.clone()).await.unwrap();
    c2.join(&gid, Some(0)).await.unwrap();
    for i in 1..=20u64 {
        assert_eq!(next_message(&mut ec2).await.seq, i);
    }
    // Replay after a gap: a fresh client of b asks since_seq 15.
    b.send(&gid, State::Discussion, Some(json!("from b")), None).await.unwrap();
    let (b2, mut eb2) = Client::connect(&node.ws_url(), kb.clone()).await.unwrap();
    b2.join(&gid, Some(15)).await.unwrap();
    let seqs: Vec<u64> = {
        let mut v = Vec::new();
        for _ in 0..6 {
            v.push(next_message(&mut eb2).await.seq);
        }
        v
    };
    assert_eq!(seqs, vec![16, 17, 18, 19, 20, 21]);
    assert_eq!(next_message(&mut ec2).await.sender_id, kb.address());

    // Removal ends access.
    a.remove(&gid, kc.address()).await.unwrap();
    let err = c2.send(&gid, State::Discussion, None, None).await.unwrap_err();
    assert!(err.to_string().contains("forbidden"), "{err}");

    // REST: same data, bearer auth, non-member rejected.
    let ta = rest_login(&node.addr, &ka);
    let (st, v) = http(
        &node.addr,
        "GET",
        &format!("/v1/groups/{gid}/messages?since_seq=19"),
        Some(&ta),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["messages"].as_array().unwrap().len(), 2);
    let (st, v) = http(
        &node.addr,
        "POST",
        &format!("/v1/groups/{gid}/messages"),
        Some(&ta),
        Some(
            &json!({"msg_id":"rest-1","state":"conclusion","body":{"ok":true},"sender_id":"0x0000000000000000000000000000000000000001"}),
        ),
    );
    assert_eq!((st, v["seq"].as_u64()), (200, Some(22)), "{v}");
    assert_eq!(next_message(&mut eb).await.seq, 21);
    let m = next_message(&mut eb).await;
    assert_eq!(
        (m.seq, m.sender_id, m.state),
        (22, ka.address(), State::Conclusion),
        "sender is the authenticated caller"
    );
    let tc = rest_login(&node.addr, &kc);
    let (st, v) = http(&node.addr, "GET", &format!("/v1/groups/{gid}/messages"), Some(&tc), None);
    assert_eq!((st, v["code"].as_str()), (403, Some("forbidden")));
    let (st, _) = http(&node.addr, "GET", &format!("/v1/groups/{gid}/messages"), None, None);
    assert_eq!(st, 401);
    let (st, v) =
        http(&node.addr, "POST", "/v1/discover", None, Some(&json!({"query":"rust code"})));
    assert_eq!(st, 200);
    assert_eq!(v["agents"][0]["card"]["name"], "Coder");
}

#[tokio::test]
async fn ioa_sqlite_end_to_end() {
    let node = spawn_node(&sqlite_url(), &[]);
    scenario(&node).await;
}

#[tokio::test]
async fn ioa_messages_survive_node_restart() {
    let url = sqlite_url();
    let k = PrivateKeySigner::random();
    let gid = {
        let node = spawn_node(&url, &[]);
        let (a, _e) = Client::connect(&node.ws_url(), k.clone()).await.unwrap();
        let g = a.create_group("durable", &[], None).await.unwrap();
        for i in 0..5 {
            a.send(&g.group_id, State::Discussion, Some(json!(i)), None).await.unwrap();
        }
        g.group_id
    };
    let node = spawn_node(&url, &[]);
    let (a, mut ev) = Client::connect(&node.ws_url(), k.clone()).await.unwrap();
    assert_eq!(a.join(&gid, Some(2)).await.unwrap(), 5);
    assert_eq!(next_message(&mut ev).await.seq, 3);
    assert_eq!(next_message(&mut ev).await.seq, 4);
    assert_eq!(next_message(&mut ev).await.seq, 5);
    assert_eq!(a.send(&gid, State::Discussion, None, None).await.unwrap(), 6);
}

#[tokio::test]
async fn ioa_postgres_end_to_end() {
    let db = PgDb::new();
    let node = spawn_node(&db.url, &[]);
    scenario(&node).await;
}
