//! The demo connector binary as a process: SIGKILL at several points then re-run, and
//! bad input answered with one line and the documented exit code.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use connector_sdk::Dataset;
use integration_tests::{BUCKET, TestEnv, binary, deltalake_key_summary, read_committed};
use orders_demo::{ORDERS, OrdersDemoConfig, orders_batch};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn demo_bin() -> std::path::PathBuf {
    binary("orders-demo", "orders-demo")
}

fn extract_cmd(endpoint: &str, config: &Path, output: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(demo_bin());
    cmd.arg("extract")
        .arg("--config")
        .arg(config)
        .arg("--output")
        .arg(output)
        .args(extra)
        .envs(TestEnv::process_env(endpoint))
        .env("RUST_LOG", "debug,aws=warn,hyper=warn,h2=warn,rustls=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Run an extract and SIGKILL it as soon as a log line with `message` appears.
/// Returns true if it was killed (false: it exited before the marker).
async fn kill_at(
    endpoint: &str,
    config: &Path,
    output: &str,
    extra: &[&str],
    message: &str,
) -> bool {
    kill_after(endpoint, config, output, extra, &[message]).await
}

/// Run an extract and SIGKILL it once log lines with each of `messages` have appeared,
/// in that order. Returns true if it was killed.
async fn kill_after(
    endpoint: &str,
    config: &Path,
    output: &str,
    extra: &[&str],
    messages: &[&str],
) -> bool {
    let mut child = extract_cmd(endpoint, config, output, extra)
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut needles = messages
        .iter()
        .map(|m| format!("\"message\":\"{m}\""))
        .peekable();
    let mut killed = false;
    while let Ok(Some(line)) = lines.next_line().await {
        if needles.peek().is_some_and(|n| line.contains(n.as_str())) {
            needles.next();
        }
        if needles.peek().is_none() {
            child.start_kill().expect("SIGKILL");
            killed = true;
            break;
        }
    }
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("exits")
        .expect("status");
    if killed {
        assert!(!status.success(), "killed process reported success");
    }
    killed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_any_point_then_rerun_gives_the_exact_dataset() {
    let env = TestEnv::start().await;
    let endpoint = env.endpoint();
    // Two partitions of 800k rows (~15.6 MB each): files roll at 12 MiB, so every
    // partition writes a multipart file (5 MiB parts) and then a second file.
    let config = OrdersDemoConfig {
        rows: 1_600_000,
        rows_per_day: 800_000,
        batch_size: 8192,
        batch_delay_ms: 3,
        ..Default::default()
    };
    let config_path = env.write_json(
        "demo.json",
        &json!({
            "rows": config.rows, "rows_per_day": config.rows_per_day,
            "batch_size": config.batch_size, "batch_delay_ms": config.batch_delay_ms,
        }),
    );
    let output = format!("s3://{BUCKET}/crash");
    let extra = [
        "--target-file-size",
        "6MiB",
        "--part-size",
        "5MiB",
        "--concurrency",
        "2",
    ];
    for marker in [
        "planned",
        "multipart upload started",
        "file written",
        "committing",
    ] {
        let killed = kill_at(&endpoint, &config_path, &output, &extra, marker).await;
        assert!(killed, "the process finished before reaching {marker:?}");
    }
    // The killed runs left garbage (files, open uploads) but never a half-visible
    // dataset: whatever is committed is exact so far.
    let store = env.store().await;
    let out = env.output("crash");
    if let Some(partial) = read_committed(&store, &out, ORDERS, "order_id").await {
        let n = partial.num_rows() as u64;
        assert_eq!(
            partial,
            orders_batch(&config, 1, n),
            "committed data is not a clean prefix"
        );
        // delta-rs sees the same rows: no file of a killed run.
        let (rows, distinct, _, _) = deltalake_key_summary(&env, &out, ORDERS, "order_id");
        assert_eq!((rows, distinct), (n, n));
    }
    // A run stopped by its deadline commits a partial state (exit 75)...
    let stopped = extract_cmd(
        &endpoint,
        &config_path,
        &output,
        &[&extra[..], &["--max-runtime-secs", "0.5"]].concat(),
    )
    .output()
    .await
    .unwrap();
    assert_eq!(
        stopped.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let pending = Dataset::new(store.clone(), out.clone(), ORDERS)
        .latest()
        .await
        .unwrap()
        .expect("a partial commit");
    assert!(
        pending.state.pending.is_some(),
        "the stop left a pending plan"
    );
    let committed_before = pending.rows;
    assert!(committed_before > 0 && committed_before < 1_600_000);
    // ...and the run that resumes it is killed mid-way, before and after it wrote files.
    for marker in ["planned", "file written"] {
        let killed = kill_at(&endpoint, &config_path, &output, &extra, marker).await;
        assert!(
            killed,
            "the resuming process finished before reaching {marker:?}"
        );
        let latest = Dataset::new(store.clone(), out.clone(), ORDERS)
            .latest()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            latest.sequence, pending.sequence,
            "a killed resuming run committed something"
        );
        let in_table: u64 = Dataset::new(store.clone(), out.clone(), ORDERS)
            .committed_files()
            .await
            .unwrap()
            .iter()
            .map(|f| f.rows)
            .sum();
        let (rows, distinct, _, _) = deltalake_key_summary(&env, &out, ORDERS, "order_id");
        assert_eq!(
            (rows, distinct),
            (in_table, in_table),
            "delta-rs sees exactly the committed partial rows"
        );
    }

    // Re-run to completion.
    let out_run = extract_cmd(&endpoint, &config_path, &output, &extra)
        .output()
        .await
        .unwrap();
    assert!(
        out_run.status.success(),
        "{}",
        String::from_utf8_lossy(&out_run.stderr)
    );
    let got = read_committed(&store, &out, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&config, 1, 1_600_000));
    assert_eq!(
        deltalake_key_summary(&env, &out, ORDERS, "order_id"),
        (1_600_000, 1_600_000, Some(1), Some(1_600_000)),
        "delta-rs reads every row once"
    );

    // Garbage from the killed runs goes away once it is older than the connector's
    // longest declared runtime (plus gc's margin); the dataset stays exact.
    env.age_objects(14_400 + 900 + 60);
    let gc = Command::new(demo_bin())
        .args(["gc", "--output", &output, "--config"])
        .arg(&config_path)
        .envs(TestEnv::process_env(&endpoint))
        .output()
        .await
        .unwrap();
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    let files = Dataset::new(store.clone(), out.clone(), ORDERS)
        .committed_files()
        .await
        .unwrap();
    let data_keys: Vec<String> = env.keys("crash/orders/dt=").await;
    let mut committed: Vec<String> = files.iter().map(|f| f.key.clone()).collect();
    committed.sort();
    assert_eq!(data_keys, committed, "only committed files remain after gc");
    assert!(
        store
            .list_open_uploads(BUCKET, "crash/")
            .await
            .unwrap()
            .is_empty()
    );
    let got = read_committed(&store, &out, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&config, 1, 1_600_000));
}

/// A hard kill loses at most one commit interval: the run commits every 1 MiB of files
/// and reads on; SIGKILLed in its third interval, it leaves the table with the first two
/// commits (a clean prefix and its resume point) and less than one interval of files of
/// its own; the next run reads exactly the rest. Before intermediate commits, the kill
/// left nothing committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_at_most_one_commit_interval() {
    let env = TestEnv::start().await;
    let endpoint = env.endpoint();
    let config = OrdersDemoConfig {
        rows: 600_000,
        rows_per_day: 600_000,
        batch_size: 8192,
        batch_delay_ms: 10,
        ..Default::default()
    };
    let config_path = env.write_json(
        "demo.json",
        &json!({
            "rows": config.rows, "rows_per_day": config.rows_per_day,
            "batch_size": config.batch_size, "batch_delay_ms": config.batch_delay_ms,
        }),
    );
    let output = format!("s3://{BUCKET}/interval");
    let interval: u64 = 1 << 20;
    let extra = [
        "--target-file-size",
        "256KiB",
        "--concurrency",
        "1",
        "--commit-interval-size",
        "1MiB",
    ];
    let killed = kill_after(
        &endpoint,
        &config_path,
        &output,
        &extra,
        &[
            "intermediate commit; reading on",
            "intermediate commit; reading on",
            "file written",
        ],
    )
    .await;
    assert!(killed, "the run finished before its third commit interval");
    let store = env.store().await;
    let out = env.output("interval");
    let dataset = Dataset::new(store.clone(), out.clone(), ORDERS);
    let latest = dataset
        .latest()
        .await
        .unwrap()
        .expect("intermediate commits");
    assert_eq!(
        latest.sequence, 2,
        "two intermediate commits before the kill"
    );
    let committed = read_committed(&store, &out, ORDERS, "order_id")
        .await
        .unwrap();
    let n = committed.num_rows() as u64;
    assert!(n > 0 && n < config.rows);
    assert_eq!(committed, orders_batch(&config, 1, n), "a clean prefix");
    let pending = latest.state.pending.as_ref().expect("a pending plan");
    assert_eq!(
        pending.partitions[0].checkpoint,
        Some(json!({ "order_id": n })),
        "the resume point is exactly the committed rows"
    );
    // What the kill lost: the finished files no commit lists, less than one interval.
    let live: Vec<String> = dataset
        .committed_files()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.key)
        .collect();
    let mut lost = 0u64;
    for key in env.keys("interval/orders/dt=").await {
        if !live.contains(&key) {
            lost += store.head(BUCKET, &key).await.unwrap().unwrap_or(0);
        }
    }
    assert!(
        lost > 0 && lost < interval,
        "the kill lost {lost} bytes of finished files; at most one interval ({interval}) may be lost"
    );

    // The next run reads exactly the rest, from the last intermediate commit.
    let rest = extract_cmd(&endpoint, &config_path, &output, &extra)
        .output()
        .await
        .unwrap();
    assert!(
        rest.status.success(),
        "{}",
        String::from_utf8_lossy(&rest.stderr)
    );
    let report: serde_json::Value = String::from_utf8_lossy(&rest.stdout)
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("a JSON report on stdout");
    assert_eq!(report["rows"], json!(config.rows - n), "{report}");
    let got = read_committed(&store, &out, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&config, 1, config.rows));
    assert_eq!(
        deltalake_key_summary(&env, &out, ORDERS, "order_id"),
        (config.rows, config.rows, Some(1), Some(config.rows as i64)),
        "delta-rs reads every row once"
    );
}

/// Run the binary with `args`; returns (exit code, stderr).
async fn run_cli(endpoint: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(demo_bin())
        .args(args)
        .envs(TestEnv::process_env(endpoint))
        .env("AWS_MAX_ATTEMPTS", "2")
        .output()
        .await
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_line_error(stderr: &str, code: i32, expected_code: i32, needle: &str) {
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "expected one error line, got: {stderr}");
    assert!(
        errors[0].contains(needle),
        "error line {:?} does not mention {needle:?}",
        errors[0]
    );
    assert_eq!(code, expected_code, "exit code; stderr: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_one_line_and_a_nonzero_exit() {
    let env = TestEnv::start().await;
    let ep = env.endpoint();
    let good = env.write_json("good.json", &json!({"rows": 1000}));
    let unknown = env.write_json("unknown.json", &json!({"rows": 1000, "colour": "red"}));
    let wrong_type = env.write_json("wrong.json", &json!({"rows": "hunter2"}));
    let malformed = env.dir.path().join("malformed.json");
    std::fs::write(&malformed, "{\"rows\": ").unwrap();
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let out = format!("s3://{BUCKET}/bad");

    let (code, err) = run_cli(
        &ep,
        &["extract", "--config", &p(&malformed), "--output", &out],
    )
    .await;
    assert_one_line_error(&err, code, 2, "is not valid JSON");

    let (code, err) = run_cli(
        &ep,
        &["extract", "--config", &p(&unknown), "--output", &out],
    )
    .await;
    assert_one_line_error(&err, code, 2, "unknown field `colour`");

    let (code, err) = run_cli(&ep, &["check", "--config", &p(&wrong_type)]).await;
    assert_one_line_error(&err, code, 2, "invalid type");
    assert!(!err.contains("hunter2"), "a config value was echoed: {err}");

    let (code, err) = run_cli(
        &ep,
        &[
            "extract",
            "--config",
            "/nonexistent/c.json",
            "--output",
            &out,
        ],
    )
    .await;
    assert_one_line_error(&err, code, 2, "cannot read config file /nonexistent/c.json");

    let (code, err) = run_cli(
        &ep,
        &[
            "extract",
            "--config",
            &p(&good),
            "--output",
            "bucket/prefix",
        ],
    )
    .await;
    assert_one_line_error(&err, code, 2, "expected s3://bucket/prefix");

    let (code, err) = run_cli(
        &ep,
        &[
            "extract",
            "--config",
            &p(&good),
            "--output",
            &out,
            "--part-size",
            "1MiB",
        ],
    )
    .await;
    assert_one_line_error(&err, code, 2, "5 MiB");

    let (code, err) = run_cli(
        &ep,
        &[
            "extract",
            "--config",
            &p(&good),
            "--output",
            &out,
            "--stream",
            "customers",
        ],
    )
    .await;
    assert_one_line_error(&err, code, 2, "stream `customers` is not declared");

    let (code, err) = run_cli(
        &ep,
        &[
            "extract",
            "--config",
            &p(&good),
            "--output",
            "s3://no-such-bucket/x",
        ],
    )
    .await;
    assert_one_line_error(&err, code, 4, "bucket `no-such-bucket` does not exist");

    let (code, err) = run_cli(
        "http://127.0.0.1:9",
        &[
            "extract",
            "--config",
            &p(&good),
            "--output",
            &out,
            "--max-attempts",
            "2",
        ],
    )
    .await;
    assert_one_line_error(&err, code, 4, "cannot reach S3 endpoint http://127.0.0.1:9");

    // gc never runs with a grace shorter than the longest declared run, nor on a
    // prefix with no committed run.
    let (code, err) = run_cli(
        &ep,
        &[
            "gc",
            "--config",
            &p(&good),
            "--output",
            &out,
            "--grace-secs",
            "0",
        ],
    )
    .await;
    assert_one_line_error(&err, code, 2, "use at least 15300 s");
    let (code, err) = run_cli(&ep, &["gc", "--config", &p(&good), "--output", &out]).await;
    assert_one_line_error(&err, code, 2, "stream `orders` has no committed run");

    let (code, err) = run_cli(&ep, &["extract", "--bogus"]).await;
    assert!(!err.contains("panicked"));
    assert_eq!(code, 2, "{err}");

    // Nothing was written by any of them.
    assert!(env.keys("bad/").await.is_empty());

    // And the good config works, with the report on stdout.
    let ok = Command::new(demo_bin())
        .args(["extract", "--config", &p(&good), "--output", &out])
        .envs(TestEnv::process_env(&ep))
        .output()
        .await
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&ok.stdout).expect("report JSON on stdout");
    assert_eq!(report["rows"], 1000);
    assert_eq!(report["status"], "complete");
}

#[tokio::test]
async fn spec_prints_the_manifest_and_config_schema() {
    let out = Command::new(demo_bin()).arg("spec").output().await.unwrap();
    assert!(out.status.success());
    let spec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(spec["manifest"]["name"], "orders-demo");
    assert_eq!(spec["manifest"]["runners"]["lambda"]["memory_mb"], 512);
    let props = &spec["config_schema"]["properties"];
    assert!(
        props["rows"]["description"]
            .as_str()
            .unwrap()
            .contains("Orders the source holds")
    );
    assert_eq!(spec["config_schema"]["additionalProperties"], false);
}

/// `deploy catalog-table` names the table an extract committed: the Glue table's location
/// (and the Athena DDL's) is the Delta table delta-rs reads; bad input is one line, exit 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_catalog_table_points_athena_at_the_committed_delta_table() {
    let env = TestEnv::start().await;
    let endpoint = env.endpoint();
    let config_path = env.write_json("demo.json", &json!({"rows": 5000, "rows_per_day": 2000}));
    let output = format!("s3://{BUCKET}/lake");
    let run = extract_cmd(&endpoint, &config_path, &output, &[])
        .output()
        .await
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let deploy = |args: &[&str]| {
        let mut cmd = Command::new(demo_bin());
        cmd.arg("deploy").arg("catalog-table").args(args);
        cmd.output()
    };
    let out = deploy(&["--output", &output, "--database", "analytics"])
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let template: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let table = &template["Resources"]["OrdersTable"];
    assert_eq!(table["Type"], json!("AWS::Glue::Table"));
    let input = &table["Properties"]["TableInput"];
    assert_eq!(input["Name"], json!("orders"));
    assert_eq!(input["TableType"], json!("EXTERNAL_TABLE"));
    assert_eq!(input["Parameters"]["table_type"], json!("DELTA"));
    assert_eq!(
        template["Parameters"]["DatabaseName"]["Default"],
        json!("analytics")
    );
    let location = input["StorageDescriptor"]["Location"].as_str().unwrap();
    assert_eq!(location, format!("s3://{BUCKET}/lake/orders/"));

    // The location is the committed table: delta-rs reads every row there.
    let key = location
        .strip_prefix(&format!("s3://{BUCKET}/"))
        .unwrap()
        .trim_end_matches('/');
    let lake = env.output("lake");
    assert_eq!(format!("{}/{ORDERS}", lake.prefix), key);
    assert_eq!(
        deltalake_key_summary(&env, &lake, ORDERS, "order_id"),
        (5000, 5000, Some(1), Some(5000))
    );

    let sql = deploy(&[
        "--output",
        &output,
        "--database",
        "analytics",
        "--format",
        "athena-sql",
    ])
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8(sql.stdout).unwrap(),
        format!(
            "CREATE EXTERNAL TABLE `analytics`.`orders`\nLOCATION '{location}'\nTBLPROPERTIES ('table_type' = 'DELTA');\n"
        )
    );

    for (args, needle) in [
        (
            vec!["--output", &output, "--database", "Analytics-DB"],
            "Analytics-DB",
        ),
        (
            vec!["--output", &output, "--database", "a", "--stream", "nope"],
            "nope",
        ),
        (vec!["--output", "http://x/y", "--database", "a"], "s3://"),
    ] {
        let bad = deploy(&args).await.unwrap();
        assert_eq!(bad.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&bad.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
        assert!(lines.len() == 1 && lines[0].contains(needle), "{err}");
    }
}
