//! The Lambda runner end to end: the real `orders-demo` binary (and a test connector) run
//! as separate processes against the Runtime API test server and the local S3 server.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use connector_sdk::{Dataset, DatasetManifest, OutputLocation, RunStatus, S3Store};
use integration_tests::runtime_api::{Finished, RuntimeApiServer};
use integration_tests::{BUCKET, TestEnv, binary, read_committed};
use orders_demo::{ORDERS, OrdersDemoConfig, orders_batch};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// A connector binary running as a Lambda function against its own Runtime API server.
struct Function {
    server: RuntimeApiServer,
    child: Child,
    log: PathBuf,
}

impl Function {
    async fn start(env: &TestEnv, bin: &Path, name: &str, extra: &[(&str, &str)]) -> Function {
        let server = RuntimeApiServer::start().await;
        let log = env.dir.path().join(format!("{name}.log"));
        let child = Command::new(bin)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(TestEnv::process_env(&env.endpoint()))
            .envs(server.lambda_env(name, 512))
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(env.dir.path().join(format!("{name}.out"))).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("the function starts");
        Function { server, child, log }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn invoke(&self, event: &Value, timeout: Duration) -> Finished {
        self.server.invoke(event.to_string(), timeout).await
    }

    fn assert_alive(&mut self) {
        assert!(
            self.child.try_wait().expect("wait").is_none(),
            "the function exited; logs:\n{}",
            self.logs()
        );
    }
}

fn demo_bin() -> PathBuf {
    binary("orders-demo", "orders-demo")
}

fn config(rows: u64, rows_per_day: u64, batch_size: usize) -> OrdersDemoConfig {
    OrdersDemoConfig {
        rows,
        rows_per_day,
        batch_size,
        ..Default::default()
    }
}

fn config_json(c: &OrdersDemoConfig) -> Value {
    json!({
        "rows": c.rows,
        "rows_per_day": c.rows_per_day,
        "batch_size": c.batch_size,
        "batch_delay_ms": c.batch_delay_ms,
        "fail_at_order_id": c.fail_at_order_id,
        "checkpoint_every": c.checkpoint_every,
    })
}

fn output(env: &TestEnv, prefix: &str) -> OutputLocation {
    env.output(prefix)
}

async fn manifests(store: &S3Store, out: &OutputLocation) -> Vec<DatasetManifest> {
    Dataset::new(store.clone(), out.clone(), ORDERS)
        .manifests()
        .await
        .expect("manifests")
}

/// The smallest and largest `order_id` of one committed file.
async fn id_range(store: &S3Store, key: &str) -> (i64, i64) {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    let body = store.get(BUCKET, key).await.expect("get").expect("file");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(body)
        .expect("parquet")
        .build()
        .expect("reader");
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for b in reader {
        let b = b.expect("batch");
        let ids = b
            .column_by_name("order_id")
            .expect("order_id")
            .as_primitive::<Int64Type>();
        for v in ids.values() {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
    }
    (lo, hi)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_invocations_extract_the_exact_dataset() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let from_env = config(3_000, 1_000, 700);
    let from_env_text = config_json(&from_env).to_string();
    let mut f = Function::start(
        &env,
        &demo_bin(),
        "orders",
        &[("ORDERS_CONFIG", from_env_text.as_str())],
    )
    .await;

    // 1. A normal invocation with the config inline.
    let c = config(2_500, 1_000, 300);
    let event =
        json!({"config": config_json(&c), "output": "s3://test-bucket/normal", "stream": "orders"});
    let done = f.invoke(&event, Duration::from_secs(120)).await;
    let r = done.json();
    assert_eq!(r["status"], "complete", "{r}");
    assert!(r.get("continuation").is_none(), "{r}");
    assert_eq!(r["rows"], 2_500);
    assert_eq!(r["partitions"], 3);
    assert_eq!(r["partitions_done"], 3);
    assert_eq!(r["sequence"], 1);
    assert_eq!(r["request_id"], done.request_id.as_str());
    assert_eq!(r["dataset"], "s3://test-bucket/normal/orders");
    assert!(done.answered_ms <= done.deadline_ms);
    // The response is a summary: small, no config, no file list.
    let text = r.to_string();
    assert!(text.len() < 2_048, "{} bytes", text.len());
    let out = output(&env, "normal");
    let got = read_committed(&store, &out, ORDERS, "order_id")
        .await
        .expect("committed");
    assert_eq!(got, orders_batch(&c, 1, 2_500));
    let m = manifests(&store, &out).await;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].runner, "lambda");
    assert_eq!(m[0].status, RunStatus::Complete);
    // CloudWatch gets the run's metrics from an Embedded Metric Format log line, with the
    // stored run report's values.
    let stored: Value = serde_json::from_slice(
        &store
            .get(BUCKET, &format!("normal/orders/_reports/{:020}.json", 1))
            .await
            .unwrap()
            .expect("stored report"),
    )
    .unwrap();
    let emf = integration_tests::emf_lines(&f.logs());
    assert_eq!(emf.len(), 1, "{}", f.logs());
    integration_tests::assert_emf_matches_report(&emf[0], &stored);
    assert_eq!(emf[0]["Rows"], 2_500);

    // 2. Config from an environment variable, and a deadline already in the past (some
    //    emulators send a constant): no deadline, a warning, a complete run.
    let event = json!({"config_env": "ORDERS_CONFIG", "output": "s3://test-bucket/fromenv", "stream": "orders"});
    let done = f
        .server
        .invoke_with_deadline(event.to_string(), 123, Duration::from_secs(120))
        .await;
    let r = done.json();
    assert_eq!(r["status"], "complete", "{r}");
    assert_eq!(r["rows"], 3_000);
    let got = read_committed(&store, &output(&env, "fromenv"), ORDERS, "order_id")
        .await
        .expect("committed");
    assert_eq!(got, orders_batch(&from_env, 1, 3_000));
    assert!(
        f.logs().contains("already past at the start"),
        "{}",
        f.logs()
    );

    // 3. One partition of the plan, then the rest with the continuation.
    let c = config(2_000, 1_000, 250);
    let mut event = json!({"config": config_json(&c), "output": "s3://test-bucket/part", "stream": "orders", "partition": "2024-01-02_1001"});
    let r = f.invoke(&event, Duration::from_secs(120)).await.json();
    assert_eq!(r["status"], "partial", "{r}");
    assert_eq!(r["rows"], 1_000);
    assert_eq!(r["partitions_done"], 1);
    let out = output(&env, "part");
    let got = read_committed(&store, &out, ORDERS, "order_id")
        .await
        .expect("committed");
    assert_eq!(got, orders_batch(&c, 1_001, 2_000));
    event.as_object_mut().unwrap().remove("partition");
    event["continuation"] = r["continuation"].clone();
    let r = f.invoke(&event, Duration::from_secs(120)).await.json();
    assert_eq!(r["status"], "complete", "{r}");
    assert_eq!(r["rows"], 1_000);
    let got = read_committed(&store, &out, ORDERS, "order_id")
        .await
        .expect("committed");
    assert_eq!(got, orders_batch(&c, 1, 2_000));
    // A partition that is not in the plan: a clear error, nothing new committed.
    let event = json!({"config": config_json(&c), "output": "s3://test-bucket/part2", "stream": "orders", "partition": "2030-01-01_1"});
    let (kind, msg) = f.invoke(&event, Duration::from_secs(60)).await.error();
    assert_eq!(kind, "NonRetryable.RequestError");
    assert!(
        msg.contains("partition `2030-01-01_1` is not in the plan")
            && msg.contains("2024-01-01_1, 2024-01-02_1001"),
        "{msg}"
    );
    f.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_deadline_chain_resumes_exactly_and_equals_one_shot() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let mut c = config(120_000, 30_000, 2_000);
    // 15 batches x 150 ms per day partition, 4 partitions, 2 at once: ~4.5 s of reading,
    // so a 3 s invocation (1 s safety margin) cannot finish it in one go.
    c.batch_delay_ms = 150;
    let mut f = Function::start(&env, &demo_bin(), "orders", &[]).await;
    let base =
        json!({"config": config_json(&c), "output": "s3://test-bucket/chain", "stream": "orders"});
    let mut event = base.clone();
    let mut responses = Vec::new();
    let mut first_continuation = None;
    for i in 1..=20u32 {
        let done = f.invoke(&event, Duration::from_secs(3)).await;
        // The commit is in before the deadline (Lambda would kill the process at it).
        assert!(
            done.answered_ms <= done.deadline_ms,
            "invocation {i} answered {} ms after its deadline",
            done.answered_ms - done.deadline_ms
        );
        let r = done.json();
        responses.push(r.clone());
        if r["status"] == "complete" {
            assert!(r.get("continuation").is_none());
            break;
        }
        assert_eq!(r["status"], "partial", "{r}");
        let cont = r["continuation"].clone();
        assert_eq!(cont["stream"], "orders");
        assert_eq!(cont["sequence"], r["sequence"], "{r}");
        assert_eq!(cont["run_id"], r["run_id"]);
        assert_eq!(cont["invocations"], i);
        first_continuation.get_or_insert(cont.clone());
        event = base.clone();
        event["continuation"] = cont;
    }
    let last = responses.last().expect("a response");
    assert_eq!(last["status"], "complete", "{responses:?}");
    assert!(
        responses.len() >= 3,
        "expected at least two partial invocations: {responses:?}"
    );
    let total: u64 = responses.iter().map(|r| r["rows"].as_u64().unwrap()).sum();
    assert_eq!(total, 120_000);

    // Each invocation resumed exactly where the previous one stopped: for every partition
    // left pending, the next commit's files of that partition start right after its
    // checkpoint, and the checkpoint is the last row committed so far.
    let out = output(&env, "chain");
    let m = manifests(&store, &out).await;
    assert_eq!(m.len(), responses.len());
    for (k, pair) in m.windows(2).enumerate() {
        let (before, after) = (&pair[0], &pair[1]);
        assert_eq!(before.status, RunStatus::Partial, "manifest {k}");
        assert_eq!(after.sequence, before.sequence + 1);
        let pending = before.state.pending.as_ref().expect("pending plan");
        for p in pending.partitions.iter().filter(|p| !p.done) {
            let first = p.partition.spec["first"].as_i64().unwrap();
            let resume = p
                .checkpoint
                .as_ref()
                .map(|c| c["order_id"].as_i64().unwrap() + 1)
                .unwrap_or(first);
            // Rows of this partition committed so far end right before `resume`.
            let mut committed_max = first - 1;
            for mk in &m[..=k] {
                for file in mk.files.iter().filter(|f| f.partition == p.partition.id) {
                    committed_max = committed_max.max(id_range(&store, &file.key).await.1);
                }
            }
            assert_eq!(committed_max + 1, resume, "partition {}", p.partition.id);
            let mut next_min = i64::MAX;
            for file in after.files.iter().filter(|f| f.partition == p.partition.id) {
                next_min = next_min.min(id_range(&store, &file.key).await.0);
            }
            if next_min != i64::MAX {
                assert_eq!(next_min, resume, "partition {}", p.partition.id);
            }
        }
    }
    assert_eq!(m.last().unwrap().status, RunStatus::Complete);

    // A stale continuation (the dataset moved on) is refused, nothing is read.
    let mut stale = base.clone();
    stale["continuation"] = first_continuation.expect("a partial invocation");
    let (kind, msg) = f.invoke(&stale, Duration::from_secs(60)).await.error();
    assert_eq!(kind, "NonRetryable.ContinuationMismatch");
    assert!(msg.contains("the latest commit is sequence"), "{msg}");

    // The same extract in one invocation with time enough.
    let one_shot = json!({"config": config_json(&c), "output": "s3://test-bucket/oneshot", "stream": "orders"});
    let r = f.invoke(&one_shot, Duration::from_secs(300)).await.json();
    assert_eq!(r["status"], "complete", "{r}");
    assert_eq!(r["rows"], 120_000);
    let chained = read_committed(&store, &out, ORDERS, "order_id")
        .await
        .expect("chain");
    let once = read_committed(&store, &output(&env, "oneshot"), ORDERS, "order_id")
        .await
        .expect("one shot");
    assert_eq!(chained, once);
    assert_eq!(chained, orders_batch(&c, 1, 120_000));
    f.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_failing_source_is_reported_through_error_and_bad_events_are_answered() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let mut f = Function::start(&env, &demo_bin(), "orders", &[]).await;

    // A failing source: /error, retryable, nothing committed, no upload left open.
    let mut c = config(5_000, 5_000, 500);
    c.fail_at_order_id = Some(2_600);
    let event = json!({"config": config_json(&c), "output": "s3://test-bucket/failing", "stream": "orders"});
    let done = f.invoke(&event, Duration::from_secs(60)).await;
    let (kind, msg) = done.error();
    assert_eq!(kind, "Retryable.SourceError");
    assert_eq!(
        msg,
        "source error: injected failure at order 2600 (fail_at_order_id)"
    );
    assert!(env.keys("failing/").await.is_empty());
    assert!(
        store
            .list_open_uploads(BUCKET, "failing/")
            .await
            .unwrap()
            .is_empty()
    );
    f.assert_alive();

    // Bad events: a clear error each, and the runtime keeps serving.
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "this is not json".into(),
            "NonRetryable.InvalidEvent",
            "invalid invocation event: the payload is not JSON (expected ident at line 1 column 2); send an extract request object",
        ),
        (
            json!({"config": {}, "stream": "orders"}).to_string(),
            "NonRetryable.InvalidEvent",
            "missing field `output`",
        ),
        (
            json!({"config": {}, "output": "s3://test-bucket/x", "stream": "orders", "bogus": 1})
                .to_string(),
            "NonRetryable.InvalidEvent",
            "unknown field `bogus`",
        ),
        (
            json!({"output": "s3://test-bucket/x", "stream": "orders"}).to_string(),
            "NonRetryable.InvalidEvent",
            "missing field `config` (or `config_env`)",
        ),
        (
            json!({"config": {"rows": 10, "password": "hunter2"}, "output": "s3://test-bucket/x", "stream": "orders"}).to_string(),
            "NonRetryable.ConfigError",
            "unknown field `password`",
        ),
        (
            json!({"config": {"rows": "hunter2"}, "output": "s3://test-bucket/x", "stream": "orders"}).to_string(),
            "NonRetryable.ConfigError",
            "invalid type: string (value hidden), expected u64",
        ),
        (
            json!({"config": {}, "output": "s3://test-bucket/x", "stream": "nope"}).to_string(),
            "NonRetryable.RequestError",
            "stream `nope` is not declared by connector `orders-demo`",
        ),
        (
            json!({"config_env": "NOT_SET_ANYWHERE", "output": "s3://test-bucket/x", "stream": "orders"}).to_string(),
            "NonRetryable.ConfigError",
            "`NOT_SET_ANYWHERE`, which is not set",
        ),
    ];
    for (payload, want_kind, want_msg) in &cases {
        let done = f
            .server
            .invoke(payload.clone(), Duration::from_secs(30))
            .await;
        let (kind, msg) = done.error();
        assert_eq!(&kind, want_kind, "{payload}: {msg}");
        assert!(msg.contains(want_msg), "{payload}: {msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        f.assert_alive();
    }
    assert!(env.keys("x/").await.is_empty());

    // ... and still extracts.
    let c = config(1_500, 1_000, 400);
    let event =
        json!({"config": config_json(&c), "output": "s3://test-bucket/after", "stream": "orders"});
    let r = f.invoke(&event, Duration::from_secs(60)).await.json();
    assert_eq!(r["status"], "complete");
    let got = read_committed(&store, &output(&env, "after"), ORDERS, "order_id")
        .await
        .expect("committed");
    assert_eq!(got, orders_batch(&c, 1, 1_500));
    assert!(!f.logs().contains("hunter2"), "a secret reached the logs");
    // Every invocation was taken from /next, and the runtime is back waiting on it.
    assert!(
        f.server
            .wait_next_calls(cases.len() + 3, Duration::from_secs(10))
            .await
    );
    assert_eq!(f.server.next_calls().len(), cases.len() + 3);
    f.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_undeclared_runner_is_refused_and_nothing_is_read() {
    let env = TestEnv::start().await;
    let bin = binary("integration-tests", "lambda_test_connector");
    let calls = env.dir.path().join("calls.txt");
    let calls_s = calls.to_string_lossy().to_string();
    let mut f = Function::start(
        &env,
        &bin,
        "no-lambda",
        &[("LAMBDA_TEST_CALLS", calls_s.as_str())],
    )
    .await;
    let event =
        json!({"config": {"rows": 1}, "output": "s3://test-bucket/undeclared", "stream": "items"});
    for _ in 0..2 {
        let (kind, msg) = f.invoke(&event, Duration::from_secs(30)).await.error();
        assert_eq!(kind, "NonRetryable.RunnerNotDeclared");
        assert!(
            msg.contains("connector `no-lambda` does not declare the `lambda` runner")
                && msg.contains("(declared: fargate)"),
            "{msg}"
        );
        f.assert_alive();
    }
    // Even a bad event gets the runner error first: nothing is parsed or read.
    let done = f
        .server
        .invoke("not json at all", Duration::from_secs(30))
        .await;
    assert_eq!(done.error().0, "NonRetryable.RunnerNotDeclared");
    assert!(
        !calls.exists(),
        "the connector was called: {:?}",
        std::fs::read_to_string(&calls)
    );
    assert!(env.keys("").await.is_empty());

    // A manifest that does not parse: /runtime/init/error, exit 1, no invocation taken.
    let mut f = Function::start(
        &env,
        &bin,
        "invalid",
        &[("LAMBDA_TEST_CONNECTOR", "invalid-manifest")],
    )
    .await;
    let status = tokio::time::timeout(Duration::from_secs(30), f.child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert_eq!(status.code(), Some(1), "{}", f.logs());
    let init = f.server.init_errors();
    assert_eq!(init.len(), 1, "{init:?}");
    assert_eq!(init[0].error_type, "NonRetryable.ManifestError");
    assert!(init[0].error_message.contains("invalid connector manifest"));
    assert!(f.server.next_calls().is_empty());
    assert!(!f.logs().contains("panicked"), "{}", f.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_missing_environment_is_an_init_error_not_a_panic() {
    let env = TestEnv::start().await;
    let server = RuntimeApiServer::start().await;
    let log = env.dir.path().join("missing.log");
    let status = Command::new(demo_bin())
        .env_clear()
        .envs(TestEnv::process_env(&env.endpoint()))
        .env("AWS_LAMBDA_RUNTIME_API", server.endpoint())
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .await
        .expect("runs");
    let logs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
    let init = server.init_errors();
    assert_eq!(init.len(), 1);
    assert_eq!(init[0].error_type, "NonRetryable.EnvironmentError");
    assert!(
        init[0].error_message.contains(
            "AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_MEMORY_SIZE, AWS_LAMBDA_FUNCTION_VERSION"
        ),
        "{init:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_sigterm_aborts_open_multipart_uploads() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let mut f = Function::start(&env, &demo_bin(), "orders", &[]).await;
    let mut c = config(2_000_000, 2_000_000, 20_000);
    c.batch_delay_ms = 100;
    let event = json!({
        "config": config_json(&c),
        "output": "s3://test-bucket/sigterm",
        "stream": "orders",
        "options": {"codec": "none", "row_group_rows": 20000, "part_size": "5MiB"}
    });
    let deadline_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 600_000;
    let (_id, _rx) = f.server.enqueue(event.to_string(), deadline_ms);
    let mut open = Vec::new();
    for _ in 0..300 {
        open = store.list_open_uploads(BUCKET, "sigterm/").await.unwrap();
        if !open.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !open.is_empty(),
        "no multipart upload opened; logs:\n{}",
        f.logs()
    );
    assert!(
        f.server
            .extensions()
            .contains(&lambda_runner::SHUTDOWN_EXTENSION.to_string()),
        "{:?}",
        f.server.extensions()
    );
    let pid = f.child.id().expect("pid").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(10), f.child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}\n{}", f.logs());
    assert!(
        store
            .list_open_uploads(BUCKET, "sigterm/")
            .await
            .unwrap()
            .is_empty(),
        "uploads left open"
    );
    assert!(
        env.keys("sigterm/").await.is_empty(),
        "files or manifests left"
    );
    assert!(f.logs().contains("aborted_uploads"), "{}", f.logs());
}

/// A chain whose invocations never reach a checkpoint before their deadline (a batch
/// takes longer than the time left) fails after `MAX_STALLED` invocations in a row with
/// `NonRetryable.NoProgress`, instead of being invoked forever; the stalled invocations
/// continue the last commit (not a run that committed nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_chain_without_progress_stops_with_a_clear_error() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let mut c = config(10_000, 10_000, 1_000);
    // 3 s invocations stop reading after 2 s; each batch takes 2.5 s.
    c.batch_delay_ms = 2_500;
    let f = Function::start(&env, &demo_bin(), "orders", &[]).await;
    let base = json!({"config": config_json(&c), "output": "s3://test-bucket/stalled", "stream": "orders"});
    let mut event = base.clone();
    let mut stalled = Vec::new();
    for i in 1..=(lambda_runner::MAX_STALLED + 1) {
        let done = f.invoke(&event, Duration::from_secs(3)).await;
        if i <= lambda_runner::MAX_STALLED {
            let r = done.json();
            assert_eq!(r["status"], "partial", "invocation {i}: {r}");
            assert_eq!(r["rows"], 0, "invocation {i}: {r}");
            let cont = r["continuation"].clone();
            // The first invocation commits the plan (nothing read yet); the next ones
            // commit nothing and continue that commit.
            assert_eq!(cont["sequence"], 1, "invocation {i}: {r}");
            stalled.push(cont["stalled"].as_u64().unwrap_or(0));
            event = base.clone();
            event["continuation"] = cont;
        } else {
            let (kind, msg) = done.error();
            assert_eq!(kind, "NonRetryable.NoProgress");
            assert!(
                msg.contains("3 invocations in a row committed no progress"),
                "{msg}"
            );
        }
    }
    assert_eq!(stalled, vec![0, 1, 2]);
    let manifests = manifests(&store, &output(&env, "stalled")).await;
    assert_eq!(manifests.len(), 1, "only the plan was committed");
    assert_eq!(manifests[0].rows, 0);
}

/// A partition without checkpoints (a stream without a key) longer than an invocation:
/// each invocation abandons it at its deadline (answering in time, nothing of it
/// committed, no file left) instead of running into the function timeout, and the chain
/// ends with `NonRetryable.NoProgress` naming the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_partition_without_checkpoints_is_bounded_by_the_deadline() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    // One partition of 10 batches of 1 s, checkpointed only at its end.
    let mut c = config(10_000, 10_000, 1_000);
    c.batch_delay_ms = 1_000;
    c.checkpoint_every = 1_000;
    let f = Function::start(&env, &demo_bin(), "orders", &[]).await;
    let base = json!({"config": config_json(&c), "output": "s3://test-bucket/keyless", "stream": "orders"});
    let mut event = base.clone();
    for i in 1..=(lambda_runner::MAX_STALLED + 1) {
        let done = f.invoke(&event, Duration::from_secs(3)).await;
        if i <= lambda_runner::MAX_STALLED {
            let r = done.json();
            assert_eq!(r["status"], "partial", "invocation {i}: {r}");
            assert_eq!(r["rows"], 0, "invocation {i}: {r}");
            event = base.clone();
            event["continuation"] = r["continuation"].clone();
        } else {
            let (kind, msg) = done.error();
            assert_eq!(kind, "NonRetryable.NoProgress");
            assert!(msg.contains("without a key"), "{msg}");
        }
    }
    let manifests = manifests(&store, &output(&env, "keyless")).await;
    assert_eq!(manifests.len(), 1, "only the plan was committed");
    assert_eq!(manifests[0].rows, 0);
    assert!(
        !env.keys("keyless/orders/")
            .await
            .iter()
            .any(|k| k.contains("part-")),
        "the abandoned partition's files are deleted"
    );
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, each invocation's spans and run metrics reach
/// the OTLP receiver before the invocation's response (a function may be frozen right
/// after), while the function keeps serving; metrics are cumulative over invocations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_exports_spans_and_metrics_before_each_response() {
    use integration_tests::otlp_receiver::OtlpReceiver;
    let env = TestEnv::start().await;
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let mut f = Function::start(
        &env,
        &demo_bin(),
        "orders-otlp",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            // No periodic export within the test: only the flush at each response.
            ("OTEL_METRIC_EXPORT_INTERVAL", "3600000"),
        ],
    )
    .await;
    let last_rows = |r: &OtlpReceiver| {
        r.points()
            .iter()
            .rev()
            .find(|p| p.metric == "connector.rows")
            .map(|p| p.value)
    };
    let mut expected_rows = 0.0;
    for (prefix, rows) in [("otlp-a", 2_500), ("otlp-b", 1_200)] {
        let c = config(rows, 1_000, 300);
        let event = json!({"config": config_json(&c), "output": format!("s3://test-bucket/{prefix}"), "stream": "orders"});
        let r = f.invoke(&event, Duration::from_secs(120)).await.json();
        assert_eq!(r["status"], "complete", "{r}");
        let run_id = r["run_id"].as_str().expect("run id").to_string();
        f.assert_alive();
        let spans = receiver.spans();
        let run: Vec<_> = spans
            .iter()
            .filter(|s| s.name == "run" && s.attribute("run_id") == Some(run_id.as_str()))
            .collect();
        assert_eq!(
            run.len(),
            1,
            "the run's span arrived before the response: {spans:#?}"
        );
        assert_eq!(run[0].attribute("runner"), Some("lambda"));
        let children: Vec<&str> = spans
            .iter()
            .filter(|s| s.parent_span_id == run[0].span_id)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            children.iter().filter(|n| **n == "partition").count(),
            rows.div_ceil(1_000) as usize,
            "{children:?}"
        );
        assert!(
            children.contains(&"plan") && children.contains(&"commit"),
            "{children:?}"
        );
        expected_rows += rows as f64;
        assert_eq!(last_rows(&receiver), Some(expected_rows), "cumulative rows");
    }
    assert_eq!(receiver.errors(), Vec::<String>::new());
}

/// With `RUST_LOG=trace` (even naming lambda_runtime's own target), the runtime library's
/// "raw JSON event received" line never reaches the log: an event may hold an inline
/// config with secrets. The distinctive seed stands in for a secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logging_never_prints_the_raw_event() {
    let env = TestEnv::start().await;
    let f = Function::start(
        &env,
        &demo_bin(),
        "orders",
        &[(
            "RUST_LOG",
            "trace,lambda_runtime::layers::api_response=trace,aws=warn,hyper=warn,h2=warn",
        )],
    )
    .await;
    let mut config = config_json(&config(1_000, 1_000, 500));
    config["seed"] = json!(987_654_321_987u64);
    let event = json!({"config": config, "output": "s3://test-bucket/trace", "stream": "orders"});
    let done = f.invoke(&event, Duration::from_secs(30)).await;
    assert_eq!(done.json()["status"], "complete");
    let logs = f.logs();
    assert!(
        logs.contains("\"level\":\"TRACE\""),
        "trace logging is on:\n{logs}"
    );
    assert!(
        !logs.contains("987654321987"),
        "the raw event reached the log:\n{logs}"
    );
}
