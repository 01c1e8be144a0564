//! Two `reef node` processes sharing Postgres and meshed over NATS (127.0.0.1:4222): members
//! of one group connected to different nodes see the same messages in the same order.

#[path = "ioa_support.rs"]
mod support;

use alloy_signer_local::PrivateKeySigner;
use reef_agent_sdk::{Client, Event};
use reef_wire::{AgentQuery, State};
use serde_json::json;
use support::*;

async fn collect(ev: &mut reef_agent_sdk::Events, n: usize) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        if let Event::Message(m) =
            tokio::time::timeout(DEADLINE, ev.recv()).await.expect("timed out").expect("closed")
        {
            out.push((m.seq, m.msg_id));
        }
    }
    out
}

#[tokio::test]
async fn ioa_two_nodes_same_order() {
    let db = PgDb::new();
    let nats = ["--nats-url", "nats://127.0.0.1:4222"];
    let n1 = spawn_node(&db.url, &nats);
    let n2 = spawn_node(&db.url, &nats);
    let (k1, k2, k3) =
        (PrivateKeySigner::random(), PrivateKeySigner::random(), PrivateKeySigner::random());
    let (a, mut ea) = Client::connect(&n1.ws_url(), k1.clone()).await.unwrap();
    let (b, mut eb) = Client::connect(&n2.ws_url(), k2.clone()).await.unwrap();
    let (c, mut ec) = Client::connect(&n2.ws_url(), k3.clone()).await.unwrap();
    assert_ne!(a.node_id(), b.node_id());

    // Registration on node 1 is discoverable on node 2 (index updated over the mesh).
    a.register(reef_wire::AgentCard {
        name: "Oracle".into(),
        description: "weather forecasts".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let hits = poll(|| {
        let b = b.clone();
        async move {
            let h = b
                .discover(AgentQuery { query: "weather".into(), ..Default::default() })
                .await
                .unwrap();
            (!h.is_empty()).then_some(h)
        }
    })
    .await;
    assert_eq!(hits[0].address, k1.address());

    let g = a.create_group("mesh", &[k2.address(), k3.address()], None).await.unwrap();
    for cl in [&a, &b, &c] {
        cl.join(&g.group_id, Some(0)).await.unwrap();
    }
    // Concurrent senders on both nodes.
    let n = 60;
    let send_all = |cl: Client, tag: &'static str| {
        let gid = g.group_id.clone();
        tokio::spawn(async move {
            for i in 0..n {
                cl.send_message(reef_wire::SendMessage {
                    group_id: gid.clone(),
                    msg_id: format!("{tag}-{i}"),
                    state: State::Discussion,
                    task_desc: None,
                    body: Some(json!(i)),
                    extra: Default::default(),
                })
                .await
                .unwrap();
            }
        })
    };
    let (t1, t2, t3) =
        (send_all(a.clone(), "a"), send_all(b.clone(), "b"), send_all(c.clone(), "c"));
    t1.await.unwrap();
    t2.await.unwrap();
    t3.await.unwrap();
    let total = 3 * n;
    let (ra, rb, rc) = (
        collect(&mut ea, total).await,
        collect(&mut eb, total).await,
        collect(&mut ec, total).await,
    );
    let seqs: Vec<u64> = ra.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>(), "gap-free, duplicate-free seqs");
    assert_eq!(ra, rb, "same messages, same order on both nodes");
    assert_eq!(rb, rc);
}
