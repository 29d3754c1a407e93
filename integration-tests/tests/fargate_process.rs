//! The Fargate runner's container mode as a plain process (the fast tests): a complete
//! run with ECS task metadata, SIGTERM checkpoint-and-resume, a second signal and an
//! exhausted stop budget, bad config, an undeclared runner, and `deploy fargate`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, UInt64Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::Int64Type;
use arrow::record_batch::RecordBatch;
use connector_sdk::{Dataset, RunStatus};
use integration_tests::ecs_metadata::{AVAILABILITY_ZONE, EcsMetadataServer, TASK_ARN};
use integration_tests::{BUCKET, TestEnv, binary, read_committed};
use orders_demo::{ORDERS, OrdersDemoConfig, orders_batch};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

fn demo_bin() -> std::path::PathBuf {
    binary("orders-demo", "orders-demo")
}

fn config_json(c: &OrdersDemoConfig) -> String {
    json!({
        "rows": c.rows, "rows_per_day": c.rows_per_day,
        "batch_size": c.batch_size, "batch_delay_ms": c.batch_delay_ms,
        "checkpoint_every": c.checkpoint_every,
        "checkpoint_first_batch": c.checkpoint_first_batch,
    })
    .to_string()
}

/// `orders-demo container` with the environment ECS would give it.
fn container_cmd(endpoint: &str, config: &str, prefix: &str) -> Command {
    let mut cmd = Command::new(demo_bin());
    cmd.arg("container")
        .envs(TestEnv::process_env(endpoint))
        .env("CONNECTOR_CONFIG", config)
        .env("CONNECTOR_OUTPUT", format!("s3://{BUCKET}/{prefix}"))
        .env_remove("ECS_CONTAINER_METADATA_URI_V4")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn signal(child: &Child, sig: &str) {
    let pid = child.id().expect("running").to_string();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// Read stderr until a JSON log line with `message` appears; returns the lines so far.
async fn wait_for_log(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    message: &str,
) -> Vec<String> {
    let needle = format!("\"message\":\"{message}\"");
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let hit = line.contains(&needle);
            seen.push(line);
            if hit {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(found, "no log line {message:?}; got:\n{}", seen.join("\n"));
    seen
}

/// The rows of `full` (ids 1..) whose ids `partial` holds, in id order.
fn rows_with_ids_of(full: &RecordBatch, partial: &RecordBatch) -> RecordBatch {
    let ids = partial
        .column_by_name("order_id")
        .expect("order_id")
        .as_primitive::<Int64Type>();
    let idx = UInt64Array::from_iter_values(ids.values().iter().map(|id| (*id - 1) as u64));
    take_record_batch(full, &idx).expect("take")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_mode_extracts_with_task_metadata() {
    let env = TestEnv::start().await;
    let metadata = EcsMetadataServer::start(2.0).await;
    let config = OrdersDemoConfig {
        rows: 20_000,
        rows_per_day: 5_000,
        batch_size: 1_000,
        ..Default::default()
    };
    let out = container_cmd(&env.endpoint(), &config_json(&config), "full")
        .env("ECS_CONTAINER_METADATA_URI_V4", metadata.uri())
        .output()
        .await
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(
        metadata.requests() >= 1,
        "the metadata endpoint was not asked"
    );

    // The run report (stdout) carries the task facts and the runner.
    let report: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    assert_eq!(report["status"], "complete");
    assert_eq!(report["runner"], "fargate");
    assert_eq!(report["rows"], 20_000);
    assert_eq!(report["runtime"]["task_arn"], TASK_ARN);
    assert_eq!(report["runtime"]["availability_zone"], AVAILABILITY_ZONE);
    assert_eq!(report["runtime"]["task_vcpu"], 2.0);
    // CloudWatch gets the run's metrics from one Embedded Metric Format log line.
    let emf = integration_tests::emf_lines(&stderr);
    assert_eq!(emf.len(), 1, "{stderr}");
    integration_tests::assert_emf_matches_report(&emf[0], &report);
    assert_eq!(emf[0]["Rows"], 20_000);
    // Logs carry them too, and the concurrency came from the task's 2 vCPUs.
    let start_line = stderr
        .lines()
        .find(|l| l.contains("container mode starting"))
        .unwrap_or_else(|| panic!("no start line: {stderr}"));
    assert!(start_line.contains("\"concurrency\":2"), "{start_line}");
    assert!(start_line.contains(TASK_ARN), "{start_line}");

    // The report stored beside the manifest has them as well.
    let store = env.store().await;
    let seq = report["sequence"].as_u64().expect("committed");
    let dataset = Dataset::new(store.clone(), env.output("full"), ORDERS);
    let key = dataset.key(&format!("_reports/{seq:020}.json"));
    let stored = store
        .get(BUCKET, &key)
        .await
        .unwrap()
        .expect("stored report");
    let stored: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(stored["runtime"]["task_arn"], TASK_ARN);

    let got = read_committed(&store, &env.output("full"), ORDERS, "order_id")
        .await
        .expect("committed");
    assert_eq!(got, orders_batch(&config, 1, 20_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_commits_progress_exits_zero_and_the_next_start_completes() {
    let env = TestEnv::start().await;
    // 4 partitions of 10k rows, 1000-row batches every 40 ms: ~0.4 s per partition.
    let config = OrdersDemoConfig {
        rows: 40_000,
        rows_per_day: 10_000,
        batch_size: 1_000,
        batch_delay_ms: 40,
        ..Default::default()
    };
    let total = config.rows;
    let mut child = container_cmd(&env.endpoint(), &config_json(&config), "stop")
        .env("CONNECTOR_CONCURRENCY", "1")
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    wait_for_log(&mut lines, "planned").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let signalled = Instant::now();
    signal(&child, "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(25), child.wait())
        .await
        .expect("exits within the 25 s budget")
        .unwrap();
    let took = signalled.elapsed();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "stopped-and-checkpointed exits 0");
    assert!(took < Duration::from_secs(25), "took {took:?}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("report JSON");
    assert_eq!(report["status"], "partial", "{report}");

    // The committed partial dataset is exact so far: real rows, none twice, not all.
    let store = env.store().await;
    let out = env.output("stop");
    let full = orders_batch(&config, 1, total);
    let partial = read_committed(&store, &out, ORDERS, "order_id")
        .await
        .expect("a partial dataset is committed");
    let n = partial.num_rows() as u64;
    assert!(n > 0 && n < total, "{n} rows committed after the stop");
    assert_eq!(partial, rows_with_ids_of(&full, &partial));
    let latest = Dataset::new(store.clone(), out.clone(), ORDERS)
        .latest()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.status, RunStatus::Partial);
    assert!(
        latest.state.pending.is_some(),
        "the resume point is committed"
    );

    // The next start resumes from the committed checkpoints and completes.
    let out2 = container_cmd(&env.endpoint(), &config_json(&config), "stop")
        .output()
        .await
        .unwrap();
    assert_eq!(
        out2.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out2.stderr)
    );
    let report: Value = serde_json::from_slice(&out2.stdout).unwrap();
    assert_eq!(report["status"], "complete");
    let got = read_committed(&store, &out, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, full, "stopped + resumed equals a one-shot extract");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_signal_or_exhausted_budget_aborts_and_commits_nothing() {
    let env = TestEnv::start().await;
    // A checkpoint after the first batch, then every 50 batches of 100 ms: after SIGTERM
    // the next one is ~5 s away. (A partition with no checkpoint yet would be abandoned at
    // once instead.)
    let config = OrdersDemoConfig {
        rows: 40_000,
        rows_per_day: 10_000,
        batch_size: 100,
        batch_delay_ms: 100,
        checkpoint_every: 50,
        checkpoint_first_batch: true,
        ..Default::default()
    };
    let store = env.store().await;
    for (prefix, second_signal) in [("second", true), ("budget", false)] {
        let mut child = container_cmd(&env.endpoint(), &config_json(&config), prefix)
            .env("CONNECTOR_STOP_BUDGET_SECS", "1.5")
            .spawn()
            .expect("spawn");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        wait_for_log(&mut lines, "planned").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let signalled = Instant::now();
        signal(&child, "-TERM");
        if second_signal {
            tokio::time::sleep(Duration::from_millis(300)).await;
            signal(&child, "-TERM");
        }
        let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .expect("exits")
            .unwrap();
        let took = signalled.elapsed();
        let mut rest = Vec::new();
        while let Ok(Some(l)) = lines.next_line().await {
            rest.push(l);
        }
        let rest = rest.join("\n");
        assert_eq!(status.code(), Some(130), "{prefix}: {rest}");
        // Well before the next checkpoint (5 s away).
        assert!(
            took < Duration::from_millis(4_500),
            "{prefix}: took {took:?}"
        );
        let expected = if second_signal {
            "aborted by a second stop signal"
        } else {
            "aborted by the stop budget (1.5 s) ran out"
        };
        assert!(rest.contains(expected), "{prefix}: {rest}");
        let latest = Dataset::new(store.clone(), env.output(prefix), ORDERS)
            .latest()
            .await
            .unwrap();
        assert!(latest.is_none(), "{prefix}: an aborted run committed");
        assert!(
            store
                .list_open_uploads(BUCKET, &format!("{prefix}/"))
                .await
                .unwrap()
                .is_empty(),
            "{prefix}: open uploads left"
        );
    }
}

/// Run `bin` with `envs` (and no config unless given); returns (exit code, stderr).
async fn run_bad(bin: std::path::PathBuf, envs: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(bin);
    cmd.arg("container")
        // Nothing listens here: a run that got as far as S3 would fail differently.
        .envs(TestEnv::process_env("http://127.0.0.1:9"))
        .env("AWS_MAX_ATTEMPTS", "1")
        .env_remove("CONNECTOR_CONFIG")
        .env_remove("CONNECTOR_CONFIG_FILE")
        .env_remove("CONNECTOR_OUTPUT")
        .env_remove("ECS_CONTAINER_METADATA_URI_V4");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_line(stderr: &str, code: i32, needle: &str) {
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "expected one error line: {stderr}");
    assert!(
        errors[0].contains(needle),
        "{:?} lacks {needle:?}",
        errors[0]
    );
    assert_eq!(code, 2, "exit code; stderr: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_and_undeclared_runner_exit_2_with_one_line() {
    let out = "s3://test-bucket/x";
    let (code, err) = run_bad(demo_bin(), &[("CONNECTOR_OUTPUT", out)]).await;
    assert_one_line(
        &err,
        code,
        "set CONNECTOR_CONFIG (the config as JSON) or CONNECTOR_CONFIG_FILE",
    );

    let (code, err) = run_bad(
        demo_bin(),
        &[
            ("CONNECTOR_OUTPUT", out),
            ("CONNECTOR_CONFIG", "{\"rows\": 10,"),
        ],
    )
    .await;
    assert_one_line(&err, code, "CONNECTOR_CONFIG is not valid JSON");

    let (code, err) = run_bad(
        demo_bin(),
        &[
            ("CONNECTOR_OUTPUT", out),
            ("CONNECTOR_CONFIG", "{\"rows\": 10, \"colour\": 1}"),
        ],
    )
    .await;
    assert_one_line(&err, code, "unknown field `colour`");

    // A secret in the wrong place is never echoed.
    let (code, err) = run_bad(
        demo_bin(),
        &[
            ("CONNECTOR_OUTPUT", out),
            ("CONNECTOR_CONFIG", "{\"rows\": \"hunter2-s3cr3t\"}"),
        ],
    )
    .await;
    assert_one_line(&err, code, "CONNECTOR_CONFIG");
    assert!(!err.contains("hunter2"), "secret echoed: {err}");

    let (code, err) = run_bad(demo_bin(), &[("CONNECTOR_CONFIG", "{\"rows\": 10}")]).await;
    assert_one_line(&err, code, "set CONNECTOR_OUTPUT to s3://bucket/prefix");

    let (code, err) = run_bad(
        demo_bin(),
        &[
            ("CONNECTOR_CONFIG", "{\"rows\": 10}"),
            ("CONNECTOR_OUTPUT", "/tmp/out"),
        ],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("s3://"), "{err}");

    let (code, err) = run_bad(
        demo_bin(),
        &[
            ("CONNECTOR_CONFIG", "{\"rows\": 10}"),
            ("CONNECTOR_CONFIG_FILE", "/nonexistent.json"),
            ("CONNECTOR_OUTPUT", out),
        ],
    )
    .await;
    assert_one_line(&err, code, "set exactly one");

    // A connector whose manifest does not declare fargate refuses before any I/O.
    let bin = binary("integration-tests", "lambda_test_connector");
    let started = Instant::now();
    let (code, err) = run_bad(
        bin,
        &[
            ("LAMBDA_TEST_CONNECTOR", "ec2-only"),
            ("CONNECTOR_CONFIG", "{}"),
            ("CONNECTOR_OUTPUT", out),
        ],
    )
    .await;
    assert_one_line(&err, code, "fargate");
    assert!(err.contains("ec2"), "names what is declared: {err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Memory sizes (MiB) Fargate accepts for each CPU value, written out from the ECS
/// documentation independently of the runner's table.
fn fargate_accepts(cpu: u64, memory: u64) -> bool {
    let gib = |g: u64| g * 1024;
    match cpu {
        256 => [512, 1024, 2048].contains(&memory),
        512 => (1..=4).map(gib).any(|m| m == memory),
        1024 => (2..=8).map(gib).any(|m| m == memory),
        2048 => (4..=16).map(gib).any(|m| m == memory),
        4096 => (8..=30).map(gib).any(|m| m == memory),
        8192 => (16..=60).step_by(4).map(gib).any(|m| m == memory),
        16384 => (32..=120).step_by(8).map(gib).any(|m| m == memory),
        _ => false,
    }
}

#[tokio::test]
async fn deploy_fargate_renders_a_valid_task_definition() {
    let args = [
        "deploy",
        "fargate",
        "--image",
        "111122223333.dkr.ecr.eu-west-1.amazonaws.com/orders-demo:0.1.0",
        "--task-role-arn",
        "arn:aws:iam::111122223333:role/orders-demo-task",
        "--execution-role-arn",
        "arn:aws:iam::111122223333:role/ecsTaskExecutionRole",
        "--region",
        "eu-west-1",
        "--output",
        "s3://lake/raw",
        "--secret",
        "PGPASSWORD=arn:aws:secretsmanager:eu-west-1:111122223333:secret:pg-AbCdEf",
        "--config-secret-arn",
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders-config-AbCdEf",
    ];
    let out = Command::new(demo_bin()).args(args).output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let td: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cpu: u64 = td["cpu"].as_str().unwrap().parse().unwrap();
    let memory: u64 = td["memory"].as_str().unwrap().parse().unwrap();
    assert!(fargate_accepts(cpu, memory), "{cpu}/{memory}");
    // The demo's manifest asks fargate for 1 vCPU, 2048 MiB.
    assert_eq!((cpu, memory), (1024, 2048));
    assert_eq!(td["networkMode"], "awsvpc");
    assert_eq!(td["requiresCompatibilities"], json!(["FARGATE"]));
    let c = &td["containerDefinitions"][0];
    assert_eq!(c["stopTimeout"], 30);
    assert_eq!(c["command"], json!(["container"]));
    assert_eq!(c["logConfiguration"]["logDriver"], "awslogs");
    assert_eq!(
        c["secrets"],
        json!([
            {"name": "CONNECTOR_CONFIG", "valueFrom": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders-config-AbCdEf"},
            {"name": "PGPASSWORD", "valueFrom": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:pg-AbCdEf"}
        ])
    );
    assert!(
        !td.to_string()
            .contains("\"value\":\"arn:aws:secretsmanager"),
        "secrets must not be plain environment values"
    );

    let mut run_args = args.to_vec();
    run_args.extend([
        "--print",
        "run-task",
        "--subnet",
        "subnet-0abc",
        "--security-group",
        "sg-0abc",
    ]);
    let out = Command::new(demo_bin())
        .args(&run_args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rt: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rt["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"],
        "DISABLED"
    );
    assert_eq!(rt["launchType"], "FARGATE");

    // A bad role ARN: one line, exit 2.
    let mut bad = args.to_vec();
    bad[5] = "orders-demo-task";
    let out = Command::new(demo_bin()).args(&bad).output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_one_line(&err, out.status.code().unwrap_or(-1), "--task-role-arn");
}
