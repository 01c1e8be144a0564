//! Runs an untrusted verifier program in a sandbox: no inherited environment (so no secrets),
//! a private empty working directory, a wall-clock timeout, address-space / CPU / file-size /
//! open-file limits (setrlimit), and a cap on how much output is read. The program gets the
//! task input and the provider's result as one JSON document on stdin; exit code 0 accepts.
//!
//! This is process-level isolation (rlimits + clean env), not a container: the program can
//! still read world-readable files. Run the node as an unprivileged user.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Limits applied to a verifier run.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    /// Wall-clock time before the process group is killed.
    pub timeout: Duration,
    /// Address-space limit in bytes (RLIMIT_AS).
    pub memory_bytes: u64,
    /// CPU seconds (RLIMIT_CPU).
    pub cpu_secs: u64,
    /// Largest file the program may write (RLIMIT_FSIZE).
    pub max_file_bytes: u64,
    /// Bytes of stdout/stderr kept (each); more output fails the run.
    pub max_output_bytes: usize,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            memory_bytes: 512 << 20,
            cpu_secs: 10,
            max_file_bytes: 16 << 20,
            max_output_bytes: 64 << 10,
        }
    }
}

/// Why a run did not accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Rejection {
    /// The program exited non-zero.
    Exit {
        /// Exit code (None if killed by a signal).
        code: Option<i32>,
    },
    /// The wall-clock timeout fired.
    Timeout,
    /// More output than allowed.
    OutputTooLarge,
    /// The program could not be started.
    Spawn {
        /// OS error text.
        error: String,
    },
}

/// Outcome of a verifier run.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxOutcome {
    /// True if the program exited 0 in time within limits.
    pub accepted: bool,
    /// Why not, when not accepted.
    pub rejection: Option<Rejection>,
    /// Captured stdout (truncated to the limit).
    pub stdout: String,
    /// Captured stderr (truncated to the limit).
    pub stderr: String,
    /// Wall time used.
    pub elapsed_ms: u64,
}

/// Runs `program` with `args`, feeding `stdin`, under `limits`.
pub async fn run_sandboxed(
    program: &str,
    args: &[String],
    stdin: &[u8],
    limits: &SandboxLimits,
) -> SandboxOutcome {
    let started = std::time::Instant::now();
    let workdir = scratch_dir();
    let _ = std::fs::create_dir_all(&workdir);
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &workdir)
        .env("LANG", "C.UTF-8")
        .current_dir(&workdir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let lim = limits.clone();
    // SAFETY: only async-signal-safe calls (setpgid, setrlimit) run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setpgid(0, 0);
            set_limit(libc::RLIMIT_AS, lim.memory_bytes);
            set_limit(libc::RLIMIT_CPU, lim.cpu_secs);
            set_limit(libc::RLIMIT_FSIZE, lim.max_file_bytes);
            set_limit(libc::RLIMIT_NOFILE, 64);
            set_limit(libc::RLIMIT_CORE, 0);
            Ok(())
        });
    }
    let done = |accepted, rejection, stdout: Vec<u8>, stderr: Vec<u8>| {
        let _ = std::fs::remove_dir_all(&workdir);
        SandboxOutcome {
            accepted,
            rejection,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed_ms: started.elapsed().as_millis() as u64,
        }
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return done(false, Some(Rejection::Spawn { error: e.to_string() }), vec![], vec![]);
        }
    };
    let pid = child.id();
    let kill_group = move || {
        if let Some(pid) = pid {
            // SAFETY: plain syscall; the group id is the child's pid (setpgid above).
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
        }
    };
    let mut child_in = child.stdin.take();
    let input = stdin.to_vec();
    let writer = tokio::spawn(async move {
        if let Some(w) = child_in.as_mut() {
            // A program that does not read its stdin is fine: ignore broken pipes.
            let _ = w.write_all(&input).await;
            let _ = w.shutdown().await;
        }
    });
    let max = limits.max_output_bytes;
    let out = child.stdout.take().map(|s| tokio::spawn(read_capped(s, max)));
    let err = child.stderr.take().map(|s| tokio::spawn(read_capped(s, max)));
    let waited = tokio::time::timeout(limits.timeout, child.wait()).await;
    let status = match waited {
        Ok(Ok(s)) => Some(s),
        Ok(Err(_)) | Err(_) => {
            kill_group();
            let _ = child.kill().await;
            None
        }
    };
    kill_group(); // stray grandchildren do not outlive the run
    writer.abort();
    let (stdout, out_over) = match out {
        Some(h) => h.await.unwrap_or_default(),
        None => (vec![], false),
    };
    let (stderr, err_over) = match err {
        Some(h) => h.await.unwrap_or_default(),
        None => (vec![], false),
    };
    match status {
        None => done(false, Some(Rejection::Timeout), stdout, stderr),
        Some(_) if out_over || err_over => {
            done(false, Some(Rejection::OutputTooLarge), stdout, stderr)
        }
        Some(s) if s.success() => done(true, None, stdout, stderr),
        Some(s) => done(false, Some(Rejection::Exit { code: s.code() }), stdout, stderr),
    }
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) {
    let lim = libc::rlimit { rlim_cur: value as libc::rlim_t, rlim_max: value as libc::rlim_t };
    // SAFETY: setrlimit with a valid pointer; failure leaves the inherited limit.
    unsafe {
        libc::setrlimit(resource, &lim);
    }
}

async fn read_capped<R: tokio::io::AsyncRead + Unpin>(mut r: R, max: usize) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return (buf, false),
            Ok(n) => {
                if buf.len() + n > max {
                    let room = max - buf.len();
                    buf.extend_from_slice(&chunk[..room]);
                    return (buf, true);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "reef-verify-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> (String, Vec<String>) {
        ("/bin/sh".into(), vec!["-c".into(), script.into()])
    }

    #[tokio::test]
    async fn exit_zero_accepts_and_reads_stdin() {
        let (p, a) = sh("read line; test \"$line\" = '{\"ok\":true}'");
        let o = run_sandboxed(&p, &a, b"{\"ok\":true}\n", &SandboxLimits::default()).await;
        assert!(o.accepted, "{o:?}");
    }

    #[tokio::test]
    async fn non_zero_exit_rejects() {
        let (p, a) = sh("exit 3");
        let o = run_sandboxed(&p, &a, b"", &SandboxLimits::default()).await;
        assert_eq!(o.rejection, Some(Rejection::Exit { code: Some(3) }));
    }

    #[tokio::test]
    async fn timeout_kills_the_process_group() {
        let (p, a) = sh("sleep 30 & sleep 30");
        let limits = SandboxLimits { timeout: Duration::from_millis(300), ..Default::default() };
        let o = run_sandboxed(&p, &a, b"", &limits).await;
        assert_eq!(o.rejection, Some(Rejection::Timeout));
    }

    #[tokio::test]
    async fn secrets_in_the_environment_are_not_inherited() {
        // SAFETY: test-only; no other thread of this test reads the variable concurrently.
        unsafe { std::env::set_var("REEF_PRIVATE_KEY", "0xsecret") };
        let (p, a) = sh("env");
        let o = run_sandboxed(&p, &a, b"", &SandboxLimits::default()).await;
        assert!(o.accepted);
        assert!(!o.stdout.contains("0xsecret"), "{}", o.stdout);
    }

    #[tokio::test]
    async fn output_flood_is_capped_and_rejected() {
        let (p, a) = sh("head -c 1000000 /dev/zero");
        let limits = SandboxLimits { max_output_bytes: 1024, ..Default::default() };
        let o = run_sandboxed(&p, &a, b"", &limits).await;
        assert_eq!(o.rejection, Some(Rejection::OutputTooLarge));
        assert_eq!(o.stdout.len(), 1024);
    }

    #[tokio::test]
    async fn memory_limit_stops_a_hog() {
        // python allocating 1 GiB under a 256 MiB address-space limit fails with MemoryError.
        let p = "python3".to_string();
        let a = vec!["-c".to_string(), "x = bytearray(1 << 30)".to_string()];
        let limits = SandboxLimits { memory_bytes: 256 << 20, ..Default::default() };
        let o = run_sandboxed(&p, &a, b"", &limits).await;
        assert!(!o.accepted, "{o:?}");
    }

    #[tokio::test]
    async fn missing_program_is_a_rejection_not_a_panic() {
        let o = run_sandboxed("/nonexistent/verifier", &[], b"", &SandboxLimits::default()).await;
        assert!(matches!(o.rejection, Some(Rejection::Spawn { .. })));
    }
}
