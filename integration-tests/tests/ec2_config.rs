//! A bad daemon config: the `daemon` subcommand exits non-zero with an error naming the
//! file, line and field, and never sends READY=1.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use integration_tests::{BUCKET, binary};

/// Run `orders-demo daemon --config <text>`; returns (exit code, stderr, notify messages).
fn run_daemon(config: &str) -> (i32, String, Vec<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let config_path = dir.path().join("daemon.toml");
    std::fs::write(&config_path, config).expect("write");
    let out = Command::new(binary("orders-demo", "orders-demo"))
        .arg("daemon")
        .arg("--config")
        .arg(&config_path)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "2000000")
        .env("STATE_DIRECTORY", dir.path().join("state"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("daemon runs");
    let mut messages = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = sock.recv(&mut buf) {
        messages.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
        messages,
    )
}

fn good() -> String {
    format!(
        "max_concurrent_jobs = 1\n\n[[jobs]]\nname = \"orders\"\noutput = \"s3://{BUCKET}/ec2/cfg\"\nstreams = [\"orders\"]\nevery = \"15m\"\nconfig = {{ rows = 10 }}\n"
    )
}

fn assert_rejected(config: &str, line: usize, must_contain: &[&str]) {
    let (code, stderr, messages) = run_daemon(config);
    assert_eq!(code, 2, "exit code for a bad config; stderr:\n{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line on stderr:\n{stderr}"));
    assert!(
        error.contains(&format!("daemon.toml:{line}:")),
        "error must name line {line}: {error}"
    );
    for s in must_contain {
        assert!(error.contains(s), "error must mention {s:?}: {error}");
    }
    assert!(
        messages.iter().all(|m| !m.contains("READY=1")),
        "READY=1 sent for a bad config: {messages:?}"
    );
}

#[test]
fn bad_configs_name_the_line_and_field_and_never_send_ready() {
    // The good config passes `--check` (validation only, nothing runs).
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("daemon.toml");
    std::fs::write(&path, good()).expect("write");
    let out = Command::new(binary("orders-demo", "orders-demo"))
        .args(["daemon", "--check", "--config"])
        .arg(&path)
        .env("STATE_DIRECTORY", dir.path().join("state"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok, 1 job(s)"));

    // Unknown key (line 7).
    assert_rejected(
        &good().replace("every = ", "evry = "),
        7,
        &["unknown field `evry`"],
    );
    // Bad schedule value (line 7).
    assert_rejected(
        &good().replace("\"15m\"", "\"soon\""),
        7,
        &["invalid duration \"soon\""],
    );
    // Bad cron expression (line 7).
    assert_rejected(
        &good().replace("every = \"15m\"", "cron = \"*/15 * *\""),
        7,
        &["invalid cron expression"],
    );
    // Unknown field of the connector config (line 8).
    assert_rejected(
        &good().replace("rows = 10", "rows = 10, colour = \"red\""),
        8,
        &["job `orders` config", "unknown field `colour`"],
    );
    // A stream the connector does not have (line 6).
    assert_rejected(
        &good().replace("[\"orders\"]", "[\"invoices\"]"),
        6,
        &["stream `invoices` is not declared by connector `orders-demo`"],
    );
    // Zero concurrency (line 1).
    assert_rejected(
        &good().replace("max_concurrent_jobs = 1", "max_concurrent_jobs = 0"),
        1,
        &["max_concurrent_jobs must be at least 1"],
    );
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let (code, stderr, messages) = run_daemon_missing();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cannot read daemon config") && stderr.contains("nope.toml"),
        "{stderr}"
    );
    assert!(messages.is_empty(), "{messages:?}");
}

fn run_daemon_missing() -> (i32, String, Vec<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let out = Command::new(binary("orders-demo", "orders-demo"))
        .args(["daemon", "--config"])
        .arg(dir.path().join("nope.toml"))
        .env("NOTIFY_SOCKET", &sock_path)
        .output()
        .expect("runs");
    let mut messages = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = sock.recv(&mut buf) {
        messages.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
        messages,
    )
}
