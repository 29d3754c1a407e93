//! The `local-s3` binary: startup line, clean stop on SIGTERM, bind failures.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_local-s3");

#[test]
fn prints_endpoint_creates_buckets_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let mut child = Command::new(BIN)
        .args([
            "--port",
            "0",
            "--bucket",
            "first-bucket",
            "--bucket",
            "second-bucket",
            "--root",
        ])
        .arg(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("local-s3 listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(line.contains("access key local-access-key"), "{line}");
    assert!(line.contains("region us-east-1"), "{line}");
    let port: u16 = line["local-s3 listening on http://127.0.0.1:".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(port, 0);
    assert!(root.join("first-bucket").is_dir());
    assert!(root.join("second-bucket").is_dir());
    std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "local-s3 did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn bind_failure_is_one_line_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--port", &port.to_string(), "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("failed to bind 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn invalid_bucket_name_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--port", "0", "--bucket", "Bad_Name", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("invalid bucket name \"Bad_Name\""),
        "{stderr}"
    );
}
