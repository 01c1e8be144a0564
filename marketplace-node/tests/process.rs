//! The `reef` process itself: what it sets up for its own memory before any command runs.

#[path = "ioa_support.rs"]
mod support;

use support::*;

/// `THP_enabled` of a running process (`/proc/<pid>/status`, Linux 5.0 and later).
fn thp_enabled(pid: u32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("THP_enabled:"))?;
    Some(line.trim() == "1")
}

#[test]
fn the_node_runs_without_transparent_huge_pages_unless_mimalloc_is_told_otherwise() {
    let Some(inherited) = thp_enabled(std::process::id()) else {
        eprintln!("skipped: this kernel's /proc/<pid>/status has no THP_enabled line");
        return;
    };
    let node = spawn_node(&sqlite_url(), &[]);
    assert_eq!(thp_enabled(node.child.id()), Some(false), "reef turns huge pages off for itself");
    // mimalloc's own option, when set, decides instead: here it keeps what the node inherited.
    let mut allowed = std::process::Command::new(env!("CARGO_BIN_EXE_reef"))
        .args(["node", "--listen", "127.0.0.1:0", "--json", "--database-url", &sqlite_url()])
        .env("MIMALLOC_ALLOW_THP", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn reef node");
    let mut line = String::new();
    let stdout = allowed.stdout.take().expect("piped stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    let thp = thp_enabled(allowed.id());
    let _ = allowed.kill();
    let _ = allowed.wait();
    assert!(line.contains("listen"), "the node started: {line:?}");
    assert_eq!(thp, Some(inherited), "MIMALLOC_ALLOW_THP=1 leaves the setting as inherited");
}
