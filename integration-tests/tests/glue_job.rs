//! The Glue job script on a local PySpark 3.5 (`spark-submit --master local[2,2]`: two
//! cores, two attempts per task, as Glue retries tasks): the driver plans, executors
//! extract partitions with the connector binary, the driver commits once. Needs
//! scripts/setup.d/50-glue.sh (PySpark in .venv) and Java 17.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use connector_sdk::Dataset;
use integration_tests::{
    BUCKET, TestEnv, assert_ids_exact, binary, read_committed, workspace_root,
};
use orders_demo::{ORDERS, OrdersDemoConfig, orders_batch};
use serde_json::{Value, json};
use tokio::process::Command;

fn venv_bin(name: &str) -> PathBuf {
    let p = workspace_root().join(".venv/bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.d/50-glue.sh",
        p.display()
    );
    p
}

fn job_script() -> PathBuf {
    workspace_root().join("runners/glue/job/connector_glue_job.py")
}

/// A command running the job script: through spark-submit on `master`, or (None) with
/// the virtualenv's python directly (argument errors are reported before Spark starts).
fn job_command(master: Option<&str>, endpoint: &str) -> Command {
    let python = venv_bin("python");
    let mut cmd = match master {
        Some(master) => {
            let mut c = Command::new(venv_bin("spark-submit"));
            c.args(["--master", master])
                .args(["--conf", "spark.ui.enabled=false"])
                .args(["--conf", "spark.driver.host=127.0.0.1"])
                .args(["--conf", "spark.driver.memory=512m"]);
            c
        }
        None => Command::new(&python),
    };
    cmd.arg(job_script())
        .envs(TestEnv::process_env(endpoint))
        .env("PYSPARK_PYTHON", &python)
        .env("PYSPARK_DRIVER_PYTHON", &python)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn finish(cmd: &mut Command) -> Output {
    tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .expect("the job ends within 5 minutes")
        .expect("the job runs")
}

fn job_args<'a>(
    binary: &'a Path,
    config: &'a Path,
    output: &'a str,
    endpoint: &'a str,
) -> Vec<String> {
    vec![
        "--JOB_NAME".into(),
        "glue-test".into(),
        "--connector_binary".into(),
        binary.display().to_string(),
        "--connector_config".into(),
        config.display().to_string(),
        "--output".into(),
        output.into(),
        "--s3_endpoint".into(),
        endpoint.into(),
        "--pass_env".into(),
        "AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,AWS_REGION,AWS_EC2_METADATA_DISABLED".into(),
    ]
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Everything the job printed. Under spark-submit the Python driver's stderr is merged
/// into stdout (Spark's PythonRunner redirects it), so lines are looked for in both.
fn all_output(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The job's summary: its last stdout line that is a `{"report": ...}` object.
fn summary(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "job failed with {:?}; output tail: {}",
        o.status.code(),
        tail(&all_output(o))
    );
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"report\""))
        .expect("a summary line");
    serde_json::from_str(line).expect("JSON summary")
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The job's error lines (`error: ...`).
fn error_lines(o: &Output) -> Vec<String> {
    all_output(o)
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(str::to_string)
        .collect()
}

/// Parquet keys under `prefix` in the bucket, and the keys the committed manifests list.
async fn files_on_disk_and_committed(env: &TestEnv, prefix: &str) -> (Vec<String>, Vec<String>) {
    let on_disk: Vec<String> = env
        .keys(&format!("{prefix}/{ORDERS}/"))
        .await
        .into_iter()
        .filter(|k| k.ends_with(".parquet"))
        .collect();
    let dataset = Dataset::new(env.store().await, env.output(prefix), ORDERS);
    let mut committed: Vec<String> = dataset
        .committed_files()
        .await
        .expect("manifests")
        .into_iter()
        .map(|f| f.key)
        .collect();
    committed.sort();
    (on_disk, committed)
}

const WRITE_ARGS: &str = "--target-file-size 48KiB --row-group-rows 2000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_extracts_a_multi_partition_stream_equal_to_a_one_shot_extract() {
    let env = TestEnv::start().await;
    let endpoint = env.endpoint();
    let config = OrdersDemoConfig {
        rows: 40_000,
        rows_per_day: 10_000,
        batch_size: 1000,
        ..Default::default()
    };
    let cfg = env.write_json(
        "orders.json",
        &json!({"rows": 40_000, "rows_per_day": 10_000, "batch_size": 1000}),
    );
    let bin = binary("orders-demo", "orders-demo");
    let output = format!("s3://{BUCKET}/glue");
    let mut cmd = job_command(Some("local[2,2]"), &endpoint);
    cmd.args(job_args(&bin, &cfg, &output, &endpoint))
        .args(["--extract_args", WRITE_ARGS]);
    let o = finish(&mut cmd).await;
    let s = summary(&o);
    assert_eq!(s["report"]["status"], "complete");
    assert_eq!(s["report"]["runner"], "glue");
    assert_eq!(s["report"]["sequence"], 1);
    assert_eq!(s["report"]["rows"], 40_000);
    assert_eq!(s["report"]["partitions"], 4);
    assert_eq!(s["timings"]["partitions"], 4);
    assert_eq!(s["timings"]["spark_partitions"], 4);
    // The partitions ran as Spark tasks.
    let log = all_output(&o);
    for id in [
        "2024-01-01_1",
        "2024-01-02_10001",
        "2024-01-03_20001",
        "2024-01-04_30001",
    ] {
        assert!(
            log.contains(&format!("partition {id} extracted in")),
            "no executor log for {id}"
        );
    }

    // The one-shot extract of the same source.
    let one_shot = Command::new(&bin)
        .args(["extract", "--config"])
        .arg(&cfg)
        .args(["--output", &format!("s3://{BUCKET}/one-shot")])
        .envs(TestEnv::process_env(&endpoint))
        .output()
        .await
        .expect("one-shot extract runs");
    assert!(one_shot.status.success(), "{}", stderr(&one_shot));

    let store = env.store().await;
    let glue = read_committed(&store, &env.output("glue"), ORDERS, "order_id")
        .await
        .expect("glue dataset committed");
    let single = read_committed(&store, &env.output("one-shot"), ORDERS, "order_id")
        .await
        .expect("one-shot dataset committed");
    assert_ids_exact(&glue, "order_id", 1, 40_000);
    assert_eq!(
        glue, single,
        "glue dataset differs from the one-shot extract"
    );
    assert_eq!(glue, orders_batch(&config, 1, 40_000));

    // Files roll at 48 KiB, so each partition wrote several; all are committed, none
    // is left over.
    let (on_disk, committed) = files_on_disk_and_committed(&env, "glue").await;
    assert_eq!(on_disk, committed);
    assert!(committed.len() >= 8, "{committed:?}");
    let latest = Dataset::new(store, env.output("glue"), ORDERS)
        .latest()
        .await
        .unwrap()
        .expect("manifest");
    assert_eq!(latest.runner, "glue");
    assert_eq!(latest.state.cursor, Some(json!({"order_id": 40_000})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_failing_once_is_retried_by_spark_and_the_dataset_is_exact() {
    let env = TestEnv::start().await;
    let endpoint = env.endpoint();
    let demo = OrdersDemoConfig {
        rows: 40_000,
        rows_per_day: 10_000,
        batch_size: 1000,
        ..Default::default()
    };
    let marker = env.dir.path().join("fault-fired");
    // Order 17_500 is in the second day's partition, 7_500 rows in: by then the first
    // attempt has finished several 48 KiB files, which the retry must overwrite.
    let cfg = env.write_json(
        "orders.json",
        &json!({
            "demo": {"rows": 40_000, "rows_per_day": 10_000, "batch_size": 1000},
            "fail_once_at_order_id": 17_500,
            "fail_once_marker": marker,
        }),
    );
    let bin = binary("integration-tests", "glue_test_connector");
    let output = format!("s3://{BUCKET}/retry");
    let mut cmd = job_command(Some("local[2,2]"), &endpoint);
    cmd.args(job_args(&bin, &cfg, &output, &endpoint))
        .args(["--extract_args", WRITE_ARGS])
        // The file names each attempt writes are logged at debug.
        .env("RUST_LOG", "info,connector_sdk::extract=debug,aws=warn");
    let o = finish(&mut cmd).await;
    let s = summary(&o);
    assert_eq!(s["report"]["status"], "complete");
    assert_eq!(s["report"]["rows"], 40_000);

    // The fault fired, once, and Spark retried the task.
    assert!(marker.exists(), "the injected fault never fired");
    let log = stderr(&o);
    assert!(
        log.contains("[connector-glue] partition `2024-01-02_10001` failed (exit 3): partition `2024-01-02_10001` of stream `orders`")
            && log.contains("injected one-time failure at order 17500"),
        "no failed attempt in the log: {}",
        tail(&log)
    );
    assert!(
        log.contains("Lost task"),
        "Spark did not report the lost task"
    );
    // The first attempt finished files before failing; the retry wrote files of its own
    // attempt (`--attempt`: Spark's task attempt id in the names), never the same keys.
    let written: Vec<String> = log
        .lines()
        .filter(|l| l.contains("\"message\":\"file written\"") && l.contains("-2024-01-02_10001-"))
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l.split_once("] ").map_or(l, |(_, j)| j)).ok()?;
            v["key"].as_str().map(str::to_string)
        })
        .collect();
    // `...-<attempt:010><seq:05>.parquet`
    let attempt_of = |key: &str| -> String {
        let digits = key.rsplit('-').next().unwrap().trim_end_matches(".parquet");
        assert_eq!(digits.len(), 15, "{key}");
        digits[..10].to_string()
    };
    let mut attempts: Vec<String> = written.iter().map(|k| attempt_of(k)).collect();
    attempts.sort();
    attempts.dedup();
    assert_eq!(attempts.len(), 2, "two attempts wrote files: {written:#?}");
    let mut unique = written.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        written.len(),
        "a key was written twice: {written:#?}"
    );

    let store = env.store().await;
    let got = read_committed(&store, &env.output("retry"), ORDERS, "order_id")
        .await
        .expect("committed");
    assert_ids_exact(&got, "order_id", 1, 40_000);
    assert_eq!(got, orders_batch(&demo, 1, 40_000));
    let (on_disk, committed) = files_on_disk_and_committed(&env, "retry").await;
    // The committed files of the retried partition are the retry's; the failed
    // attempt's files are left to gc, never in the table.
    let retried: Vec<&String> = committed
        .iter()
        .filter(|k| k.contains("-2024-01-02_10001-"))
        .collect();
    assert!(!retried.is_empty());
    assert!(
        retried.iter().all(|k| attempt_of(k) == attempts[1]),
        "{retried:?}"
    );
    let orphans: Vec<&String> = on_disk.iter().filter(|k| !committed.contains(k)).collect();
    assert!(
        orphans.iter().all(|k| attempt_of(k) == attempts[0]),
        "only the failed attempt's files are outside the table: {orphans:?}"
    );
    let mut dedup = committed.clone();
    dedup.dedup();
    assert_eq!(dedup, committed, "a file is listed twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_failing_on_every_attempt_fails_the_job_and_commits_nothing() {
    let env = TestEnv::start().await;
    let endpoint = env.endpoint();
    let cfg = env.write_json(
        "orders.json",
        &json!({"rows": 40_000, "rows_per_day": 10_000, "batch_size": 1000,
                "fail_at_order_id": 25_000}),
    );
    let bin = binary("orders-demo", "orders-demo");
    let output = format!("s3://{BUCKET}/failing");
    let mut cmd = job_command(Some("local[2,2]"), &endpoint);
    cmd.args(job_args(&bin, &cfg, &output, &endpoint))
        .args(["--extract_args", WRITE_ARGS]);
    let o = finish(&mut cmd).await;
    assert_eq!(
        o.status.code(),
        Some(3),
        "the connector's exit code (source error)"
    );
    let errors = error_lines(&o);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert!(
        e.starts_with("error: partition `2024-01-03_20001` failed on all 2 attempts (exit 3): partition `2024-01-03_20001` of stream `orders` (run "),
        "{e}"
    );
    assert!(
        e.ends_with("failed: source error: injected failure at order 25000 (fail_at_order_id); nothing was committed"),
        "{e}"
    );
    assert!(
        !String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.starts_with("{\"report\"")),
        "no summary on failure"
    );
    let dataset = Dataset::new(env.store().await, env.output("failing"), ORDERS);
    assert!(
        dataset.latest().await.unwrap().is_none(),
        "a manifest was committed"
    );
    assert!(dataset.sequences().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_job_arguments_give_one_clear_line_and_a_non_zero_exit() {
    let env = TestEnv::start().await;
    let endpoint = env.endpoint();
    let cfg = env.write_json("orders.json", &json!({"rows": 100}));
    let bad_cfg = env.write_json("bad.json", &json!({"rows": 100, "colour": "red"}));
    let bin = binary("orders-demo", "orders-demo");
    let output = format!("s3://{BUCKET}/args");
    let base = job_args(&bin, &cfg, &output, &endpoint);
    let with = |name: &str, value: &str| -> Vec<String> {
        let mut a = base.clone();
        match a.iter().position(|x| x == name) {
            Some(i) => a[i + 1] = value.to_string(),
            None => a.extend([name.to_string(), value.to_string()]),
        }
        a
    };
    let without = |name: &str| -> Vec<String> {
        let mut a = base.clone();
        let i = a.iter().position(|x| x == name).expect("present");
        a.drain(i..i + 2);
        a
    };
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            without("--output"),
            2,
            "error: the following arguments are required: --output",
        ),
        (
            with("--output", "bucket/prefix"),
            2,
            "error: --output 'bucket/prefix' is not an S3 URL; use s3://bucket/prefix",
        ),
        (
            with("--connector_binary", "/nonexistent/orders-demo"),
            2,
            "error: --connector_binary '/nonexistent/orders-demo' not found: pass a path, or ship the file with --extra-files and pass its file name",
        ),
        (
            with("--spark_partitions", "zero"),
            2,
            "error: --spark_partitions 'zero' is not a positive integer",
        ),
        (
            with("--pass_env", "AWS REGION"),
            2,
            "error: --pass_env names 'AWS REGION', which is not an environment variable name",
        ),
        (
            with("--connector_config", bad_cfg.to_str().unwrap()),
            2,
            "error: plan failed (exit 2): invalid connector config: ",
        ),
        (
            with("--stream", "customers"),
            2,
            "error: plan failed (exit 2): invalid request: stream `customers` is not declared by connector `orders-demo`",
        ),
    ];
    for (args, code, needle) in cases {
        let mut cmd = job_command(None, &endpoint);
        cmd.args(&args);
        let o = finish(&mut cmd).await;
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        let errors: Vec<String> = stderr(&o)
            .lines()
            .filter(|l| l.starts_with("error: ") || l.contains(": error: "))
            .map(|l| {
                l.split_once("py: ")
                    .map(|(_, r)| r)
                    .unwrap_or(l)
                    .to_string()
            })
            .collect();
        assert_eq!(errors.len(), 1, "{args:?}: {errors:?}");
        assert!(errors[0].starts_with(needle), "{args:?}: {}", errors[0]);
        assert!(o.stdout.is_empty());
    }
    // Through spark-submit too: the exit code reaches the caller.
    let mut cmd = job_command(Some("local[1]"), &endpoint);
    cmd.args(without("--connector_config"));
    let o = finish(&mut cmd).await;
    assert_eq!(o.status.code(), Some(2), "{}", tail(&all_output(&o)));
    assert!(all_output(&o).contains("the following arguments are required: --connector_config"));

    // A connector that does not declare glue: the job stops at plan with the refusal.
    let no_glue = binary("integration-tests", "glue_test_connector");
    let mut cmd = job_command(None, &endpoint);
    cmd.args(job_args(&no_glue, &cfg, &output, &endpoint))
        .env("GLUE_TEST_CONNECTOR", "no-glue");
    let o = finish(&mut cmd).await;
    assert_eq!(o.status.code(), Some(2));
    let errors = error_lines(&o);
    assert_eq!(
        errors,
        vec!["error: plan failed (exit 2): connector `no-glue` does not declare the `glue` runner in its manifest (declared: fargate); add [runners.glue] to connector.toml or use a declared runner".to_string()]
    );
}
