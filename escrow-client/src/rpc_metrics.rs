//! Counts of the JSON-RPC calls every [`crate::ReefClient`] makes, by method: a tower layer on
//! the client's transport, so each call is counted once as it goes out (a retried call counts
//! again). Read with [`snapshot`] (e.g. by `reef node`'s `GET /metrics`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::task::{Context, Poll};

use alloy::rpc::json_rpc::{Id, RequestPacket, ResponsePacket};
use alloy::transports::{TransportError, TransportFut};
use tower::{Layer, Service};

/// method → (calls, errors).
static CALLS: Mutex<BTreeMap<String, (u64, u64)>> = Mutex::new(BTreeMap::new());

fn with<R>(f: impl FnOnce(&mut BTreeMap<String, (u64, u64)>) -> R) -> R {
    f(&mut CALLS.lock().unwrap_or_else(|p| p.into_inner()))
}

/// `(method, calls, errors)` of every method called so far in this process, sorted by method.
/// An error is a transport failure or a JSON-RPC error answer (a revert included).
pub fn snapshot() -> Vec<(String, u64, u64)> {
    with(|m| m.iter().map(|(k, (c, e))| (k.clone(), *c, *e)).collect())
}

/// The layer (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingLayer;

impl<S> Layer<S> for CountingLayer {
    type Service = Counting<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Counting { inner }
    }
}

/// The service [`CountingLayer`] wraps a transport in.
#[derive(Debug, Clone)]
pub struct Counting<S> {
    inner: S,
}

impl<S> Service<RequestPacket> for Counting<S>
where
    S: Service<
            RequestPacket,
            Response = ResponsePacket,
            Error = TransportError,
            Future = TransportFut<'static>,
        > + Send
        + 'static,
{
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RequestPacket) -> Self::Future {
        let methods: Vec<(Id, String)> =
            req.requests().iter().map(|r| (r.id().clone(), r.method().to_string())).collect();
        with(|m| {
            for (_, name) in &methods {
                m.entry(name.clone()).or_default().0 += 1;
            }
        });
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            let failed: Vec<&str> = match &res {
                Err(_) => methods.iter().map(|(_, n)| n.as_str()).collect(),
                Ok(ResponsePacket::Single(r)) if r.is_error() => {
                    methods.iter().map(|(_, n)| n.as_str()).take(1).collect()
                }
                Ok(ResponsePacket::Single(_)) => Vec::new(),
                Ok(ResponsePacket::Batch(rs)) => rs
                    .iter()
                    .filter(|r| r.is_error())
                    .filter_map(|r| methods.iter().find(|(id, _)| *id == r.id))
                    .map(|(_, n)| n.as_str())
                    .collect(),
            };
            if !failed.is_empty() {
                with(|m| {
                    for name in failed {
                        m.entry(name.to_string()).or_default().1 += 1;
                    }
                });
            }
            res
        })
    }
}
