//! SQLite lock waits in microseconds instead of milliseconds.
//!
//! A `reef node` keeps several SQLite connections on one file: the marketplace's, the IoA
//! store's, its group-commit writer's and the indexer's. In WAL mode one of them writes at a
//! time; a connection that finds the write lock taken calls its busy handler and tries again.
//! The handler `PRAGMA busy_timeout` installs sleeps 1, 2, 5, 10, 15 … ms between tries, while
//! the transaction holding the lock lasts tens of microseconds. Under load the node's writes
//! spent most of their time in those sleeps (about 11 per bounty, 1.6 ms each, in
//! `market_bench`), and every statement queued behind them on the same connection waited too.
//!
//! [`install`] registers, for every SQLite connection the process opens from then on, a SQL
//! function `reef_busy_handler(timeout_ms)`. A pool calls it once per connection (see
//! [`connection_init`]); it replaces the connection's busy handler with one that tries again after
//! 20 µs, doubling up to 1 ms, and gives up with `SQLITE_BUSY` ("database is locked") once the
//! pauses add up to `timeout_ms`, as `busy_timeout` would.

use std::{
    ffi::{c_char, c_int, c_void},
    sync::OnceLock,
    time::Duration,
};

use libsqlite3_sys as ffi;

/// First pause after a busy try, in microseconds.
const FIRST_PAUSE_US: u64 = 20;
/// Longest pause between tries, in microseconds.
const MAX_PAUSE_US: u64 = 1_000;

/// Registers `reef_busy_handler` for every SQLite connection opened after this call (once per
/// process; later calls return the first result). False if SQLite refused the registration:
/// then [`connection_init`] falls back to `PRAGMA busy_timeout`.
pub fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        // SAFETY: `register` has the signature SQLite calls auto-extensions with and only
        // touches the connection it is given.
        let rc = unsafe { ffi::sqlite3_auto_extension(Some(register)) };
        if rc != ffi::SQLITE_OK {
            tracing::warn!(rc, "could not register reef_busy_handler; using busy_timeout");
        }
        rc == ffi::SQLITE_OK
    })
}

/// What each of the node's SQLite pools runs on a new connection: WAL with `synchronous =
/// NORMAL` (a commit survives the process being killed but is not fsynced, see
/// docs/protocol.md, "durability"), a wait of at most `timeout_ms` for the write lock
/// (`reef_busy_handler` when [`install`] succeeded, else `busy_timeout`), then the pool's own
/// `extra` pragmas.
pub fn connection_init(timeout_ms: u32, extra: &str) -> String {
    let busy = if install() {
        format!("SELECT reef_busy_handler({timeout_ms});")
    } else {
        format!("PRAGMA busy_timeout = {timeout_ms};")
    };
    format!("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; {busy} {extra}")
}

/// The pause before try `tries + 1` and the sum of the pauses before it, in microseconds.
fn backoff(tries: u32) -> (u64, u64) {
    let pause = |n: u32| FIRST_PAUSE_US.saturating_mul(1 << n.min(16)).min(MAX_PAUSE_US);
    // The doubling part is short (20 µs to 1 ms in 6 steps); the rest are whole milliseconds.
    let ramp = (0..tries.min(16)).map(pause).sum::<u64>();
    let flat = u64::from(tries.saturating_sub(16)) * MAX_PAUSE_US;
    (pause(tries), ramp + flat)
}

/// Auto-extension entry point: defines `reef_busy_handler(timeout_ms)` on `db`.
unsafe extern "C" fn register(
    db: *mut ffi::sqlite3,
    _err: *mut *mut c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    // SAFETY: `db` is the connection being opened; the name is a NUL-terminated literal and
    // the function keeps no state (no user data, no destructor). SQLITE_DIRECTONLY keeps it out
    // of triggers and views: only the node's own statements can call it.
    unsafe {
        ffi::sqlite3_create_function_v2(
            db,
            c"reef_busy_handler".as_ptr(),
            1,
            ffi::SQLITE_UTF8 | ffi::SQLITE_DIRECTONLY,
            std::ptr::null_mut(),
            Some(set_handler),
            None,
            None,
            None,
        )
    }
}

/// `reef_busy_handler(timeout_ms)`: installs [`on_busy`] on the calling connection; returns 1.
unsafe extern "C" fn set_handler(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: SQLite passes `argc` (1, as registered) valid values and a live context whose
    // connection is the caller's; the connection mutex is recursive, so setting its handler
    // from inside one of its statements is allowed. The timeout travels in the pointer's value,
    // nothing is dereferenced.
    unsafe {
        let timeout_ms = if argc == 1 { ffi::sqlite3_value_int64(*argv) } else { 0 };
        let timeout_ms = timeout_ms.clamp(0, i64::from(u32::MAX)) as usize;
        let db = ffi::sqlite3_context_db_handle(ctx);
        let rc = ffi::sqlite3_busy_handler(db, Some(on_busy), timeout_ms as *mut c_void);
        if rc == ffi::SQLITE_OK {
            ffi::sqlite3_result_int(ctx, 1);
        } else {
            ffi::sqlite3_result_error_code(ctx, rc);
        }
    }
}

/// Busy handler: 1 = try again after a pause, 0 = give up (the statement fails with
/// `SQLITE_BUSY`). `arg` carries the timeout in milliseconds.
unsafe extern "C" fn on_busy(arg: *mut c_void, tries: c_int) -> c_int {
    let timeout_us = (arg as usize as u64).saturating_mul(1_000);
    let (pause, waited) = backoff(u32::try_from(tries).unwrap_or(0));
    if waited >= timeout_us {
        return 0;
    }
    std::thread::sleep(Duration::from_micros(pause));
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Connection, Executor, SqliteConnection};

    #[test]
    fn pauses_start_short_and_add_up_to_the_timeout() {
        assert_eq!(backoff(0), (20, 0));
        assert_eq!(backoff(1), (40, 20));
        assert_eq!(backoff(5), (640, 20 + 40 + 80 + 160 + 320));
        assert_eq!(backoff(6).0, MAX_PAUSE_US);
        // 10 s of waiting is about 10,000 tries; the count cannot overflow the sum.
        let (pause, waited) = backoff(10_000);
        assert_eq!(pause, MAX_PAUSE_US);
        assert!((9_000_000..11_000_000).contains(&waited), "{waited}");
        assert!(backoff(u32::MAX).1 > 0);
    }

    /// With the handler installed, a writer that finds the lock taken waits for it (and
    /// succeeds once it is free), or gives up with "database is locked" past its timeout,
    /// not after SQLite's or sqlx's default one.
    #[tokio::test]
    async fn a_blocked_writer_waits_for_the_lock_then_gives_up_at_its_timeout() {
        assert!(install());
        let dir = std::env::temp_dir().join(format!("reef-busy-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/b.db?mode=rwc", dir.display());
        let mut holder = SqliteConnection::connect(&url).await.unwrap();
        holder.execute("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER)").await.unwrap();
        let mut waiter = SqliteConnection::connect(&url).await.unwrap();
        let set: (i64,) =
            sqlx::query_as("SELECT reef_busy_handler(50)").fetch_one(&mut waiter).await.unwrap();
        assert_eq!(set.0, 1);

        // Held far longer than the waiter's 50 ms: it gives up with SQLITE_BUSY.
        holder.execute("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)").await.unwrap();
        let blocked = waiter.execute("INSERT INTO t VALUES (2)");
        let err = tokio::time::timeout(Duration::from_secs(3), blocked)
            .await
            .expect("gave up long before sqlx's 5 s default")
            .expect_err("the lock was held throughout");
        assert!(err.to_string().contains("locked"), "{err}");

        // Released while the waiter waits (its timeout now 10 s): it gets the lock.
        sqlx::query("SELECT reef_busy_handler(10000)").execute(&mut waiter).await.unwrap();
        let release = async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            holder.execute("COMMIT").await.unwrap();
        };
        let (write, ()) = tokio::join!(waiter.execute("INSERT INTO t VALUES (3)"), release);
        write.expect("the writer got the lock once it was free");
        let n: (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM t").fetch_one(&mut waiter).await.unwrap();
        assert_eq!(n.0, 2, "1 and 3 stored; 2 was refused");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
