//! Retry with exponential backoff for RPC calls that failed for transport reasons.
//!
//! Only failures that say nothing about the request itself are retried: connection refused or
//! reset, HTTP 5xx/429, a dropped backend. A JSON-RPC error answer (a revert, "insufficient
//! funds", a bad nonce) is final and returned at once.

use std::{future::Future, time::Duration};

use alloy::transports::{RpcError, TransportErrorKind};

/// How often and how patiently to retry an RPC request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total (1 = no retry).
    pub attempts: u32,
    /// Delay before the first retry; doubled after each failure.
    pub initial_backoff: Duration,
    /// Upper bound for one delay.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Rides out an RPC outage of about 35 s (0.2 s doubling to 5 s, 12 attempts).
    fn default() -> Self {
        Self {
            attempts: 12,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// A short policy (about 1 s) for the first contact with an endpoint, so a wrong or dead
    /// URL is reported quickly instead of after the long outage budget.
    pub const fn quick() -> Self {
        Self {
            attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_millis(800),
        }
    }

    /// A policy that never retries (useful in tests of the failure paths).
    pub const fn none() -> Self {
        Self { attempts: 1, initial_backoff: Duration::ZERO, max_backoff: Duration::ZERO }
    }

    /// Runs `op` until it succeeds, fails with a non-retryable error, or attempts run out.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, RpcError<TransportErrorKind>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RpcError<TransportErrorKind>>>,
    {
        let mut delay = self.initial_backoff;
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < self.attempts && is_retryable(&e) => {
                    tracing::debug!(attempt, error = %e, "rpc request failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.max_backoff);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether an RPC error is a transport failure worth retrying.
pub fn is_retryable(err: &RpcError<TransportErrorKind>) -> bool {
    match err {
        RpcError::Transport(kind) => match kind {
            TransportErrorKind::HttpError(h) => h.status == 429 || h.status >= 500,
            TransportErrorKind::NonRetryable(_) => false,
            _ => true,
        },
        // Providers signal rate limits with these JSON-RPC codes.
        RpcError::ErrorResp(p) => p.code == 429 || p.code == -32005,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn transport_err() -> RpcError<TransportErrorKind> {
        RpcError::Transport(TransportErrorKind::BackendGone)
    }

    #[tokio::test]
    async fn retries_transport_errors_then_succeeds() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy {
            attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        };
        let out = policy
            .run(|| async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 { Err(transport_err()) } else { Ok(7) }
            })
            .await;
        assert_eq!(out.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_after_attempts() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        };
        let out: Result<(), _> = policy
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(transport_err())
            })
            .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn does_not_retry_error_responses() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy::default();
        let out: Result<(), _> = policy
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(RpcError::ErrorResp(alloy::rpc::json_rpc::ErrorPayload {
                    code: 3,
                    message: "execution reverted".into(),
                    data: None,
                }))
            })
            .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
