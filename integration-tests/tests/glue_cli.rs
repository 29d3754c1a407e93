//! The Glue runner's subcommands on the connector binary, as processes, without Spark:
//! `plan` → `extract-partition` (each partition) → `commit` gives the one-shot dataset;
//! retries rewrite the same files; commit is once; an undeclared runner is refused before
//! any I/O; `deploy glue` renders the job definition.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use connector_sdk::Dataset;
use integration_tests::{BUCKET, TestEnv, binary, read_committed, workspace_root};
use orders_demo::{ORDERS, OrdersDemoConfig, orders_batch};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

fn demo_bin() -> PathBuf {
    binary("orders-demo", "orders-demo")
}

/// Run `bin args...` with the local S3's environment and `stdin`; returns its output.
async fn run(bin: &Path, args: &[&str], endpoint: &str, stdin: Option<&str>) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .envs(TestEnv::process_env(endpoint))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        // A process that refuses its arguments exits before reading its input.
        if let Err(e) = pipe.write_all(text.as_bytes()).await {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
        drop(pipe);
    }
    tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .expect("exits within 2 minutes")
    .expect("output")
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}; stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "stdout is one line of JSON: {text}");
    serde_json::from_str(lines[0]).expect("JSON on stdout")
}

fn stderr_error_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_extract_partition_commit_gives_the_one_shot_dataset_and_commits_once() {
    let env = TestEnv::start().await;
    let endpoint = env.endpoint();
    let config = OrdersDemoConfig {
        rows: 30_000,
        rows_per_day: 10_000,
        batch_size: 1000,
        ..Default::default()
    };
    let cfg = env.write_json(
        "config.json",
        &json!({"rows": 30_000, "rows_per_day": 10_000, "batch_size": 1000}),
    );
    let cfg = cfg.to_str().unwrap();
    let out = format!("s3://{BUCKET}/steps");
    let bin = demo_bin();
    let common = ["--config", cfg, "--output", out.as_str()];

    let plan = stdout_json(&run(&bin, &[&["plan"][..], &common].concat(), &endpoint, None).await);
    let ids: Vec<String> = plan["work"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["partition"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        ["2024-01-01_1", "2024-01-02_10001", "2024-01-03_20001"],
        "one partition per day"
    );
    let plan_text = serde_json::to_string(&plan).unwrap();
    let plan_file = env.write_json("plan.json", &plan);
    let plan_file = plan_file.to_str().unwrap();

    let write = ["--target-file-size", "32KiB", "--row-group-rows", "2000"];
    let mut results = Vec::new();
    for id in &ids {
        let args = [
            &["extract-partition"][..],
            &common,
            &["--plan", "-", "--partition", id],
            &write,
        ]
        .concat();
        let r = stdout_json(&run(&bin, &args, &endpoint, Some(&plan_text)).await);
        assert_eq!(r["partition"], id.as_str());
        assert_eq!(r["rows"], 10_000);
        assert_eq!(r["done"], true);
        assert!(
            r["files"].as_array().unwrap().len() >= 2,
            "files roll at 32 KiB: {r}"
        );
        results.push(r);
    }
    // Nothing is committed by extract-partition.
    let dataset = Dataset::new(env.store().await, env.output("steps"), ORDERS);
    assert!(dataset.latest().await.unwrap().is_none());

    // A retried partition (same plan, same id) rewrites exactly the same keys.
    let args = [
        &["extract-partition"][..],
        &common,
        &["--plan", plan_file, "--partition", &ids[1]],
        &write,
    ]
    .concat();
    let again = stdout_json(&run(&bin, &args, &endpoint, None).await);
    let keys = |r: &Value| -> Vec<String> {
        r["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["key"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys(&again), keys(&results[1]));
    assert!(
        keys(&again).iter().all(|k| k.contains(&format!(
            "part-{}-{}-",
            plan["run_id"].as_str().unwrap(),
            ids[1]
        ))),
        "deterministic names: {:?}",
        keys(&again)
    );

    let results_file = env.write_json("results.json", &Value::Array(results.clone()));
    let results_file = results_file.to_str().unwrap();
    let commit_args = [
        &["commit"][..],
        &common,
        &["--plan", plan_file, "--results", results_file],
    ]
    .concat();
    let report = stdout_json(&run(&bin, &commit_args, &endpoint, None).await);
    assert_eq!(report["status"], "complete");
    assert_eq!(report["sequence"], 1);
    assert_eq!(report["runner"], "glue");
    assert_eq!(report["rows"], 30_000);

    let got = read_committed(&env.store().await, &env.output("steps"), ORDERS, "order_id")
        .await
        .expect("committed");
    assert_eq!(got, orders_batch(&config, 1, 30_000));

    // The same commit again (a driver retry) is a no-op: still one manifest, sequence 1,
    // and the committed files are all still there.
    let report2 = stdout_json(&run(&bin, &commit_args, &endpoint, None).await);
    assert_eq!(report2["sequence"], 1);
    assert_eq!(dataset.sequences().await.unwrap(), vec![1]);
    let got = read_committed(&env.store().await, &env.output("steps"), ORDERS, "order_id")
        .await
        .expect("committed");
    assert_eq!(got, orders_batch(&config, 1, 30_000));

    // Every data file in the bucket is in the manifest: no duplicates, no orphans.
    let mut committed: Vec<String> = dataset
        .committed_files()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.key)
        .collect();
    committed.sort();
    let on_disk: Vec<String> = env
        .keys("steps/orders/")
        .await
        .into_iter()
        .filter(|k| k.ends_with(".parquet"))
        .collect();
    assert_eq!(on_disk, committed);

    // Results listing a partition twice are refused: exit 2, one line naming it.
    let dup = env.write_json(
        "dup.json",
        &Value::Array(vec![results[0].clone(), results[0].clone()]),
    );
    let dup_args = [
        &["commit"][..],
        &common,
        &["--plan", plan_file, "--results", dup.to_str().unwrap()],
    ]
    .concat();
    let bad = run(&bin, &dup_args, &endpoint, None).await;
    assert_eq!(bad.status.code(), Some(2));
    let lines = stderr_error_lines(&bad);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("partition `2024-01-01_1` appears twice"),
        "{}",
        lines[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_step_inputs_get_one_line_and_exit_2() {
    let env = TestEnv::start().await;
    let endpoint = env.endpoint();
    let cfg = env.write_json("config.json", &json!({"rows": 100, "rows_per_day": 50}));
    let cfg = cfg.to_str().unwrap();
    let out = format!("s3://{BUCKET}/bad");
    let bin = demo_bin();
    let common = ["--config", cfg, "--output", out.as_str()];
    let not_json = env.dir.path().join("plan.txt");
    std::fs::write(&not_json, "plan: yes").unwrap();
    let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (
            vec!["extract-partition", "--plan", "-", "--partition", "p"],
            Some("{\"run_id\": \"x\"}"),
            "invalid plan in stdin: missing field",
        ),
        (
            vec![
                "extract-partition",
                "--plan",
                not_json.to_str().unwrap(),
                "--partition",
                "p",
            ],
            None,
            "expected the JSON object printed by `plan`",
        ),
        (
            vec![
                "commit",
                "--plan",
                "/nonexistent/plan.json",
                "--results",
                "-",
            ],
            None,
            "cannot read plan from /nonexistent/plan.json",
        ),
        (
            vec!["plan", "--stream", "customers"],
            None,
            "stream `customers` is not declared by connector `orders-demo`",
        ),
        (
            vec![
                "extract-partition",
                "--plan",
                "-",
                "--partition",
                "p",
                "--codec",
                "gzip",
            ],
            Some("{}"),
            "gzip",
        ),
    ];
    for (args, stdin, needle) in cases {
        let full = [&args[..1], &common[..], &args[1..]].concat();
        let o = run(&bin, &full, &endpoint, stdin).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let lines = stderr_error_lines(&o);
        assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
        assert!(lines[0].contains(needle), "{args:?}: {}", lines[0]);
        assert!(o.stdout.is_empty(), "{args:?} printed on stdout");
    }
    // A partition that is not in the plan: named, with the run.
    let plan = stdout_json(&run(&bin, &[&["plan"][..], &common].concat(), &endpoint, None).await);
    let plan_text = serde_json::to_string(&plan).unwrap();
    let args = [
        &["extract-partition"][..],
        &common,
        &["--plan", "-", "--partition", "2030-01-01_1"],
    ]
    .concat();
    let o = run(&bin, &args, &endpoint, Some(&plan_text)).await;
    assert_eq!(o.status.code(), Some(2));
    let lines = stderr_error_lines(&o);
    assert!(
        lines[0].contains("partition `2030-01-01_1` is not in the plan of run"),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_steps_are_refused_before_any_io_when_glue_is_not_declared() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.txt");
    let bin = binary("integration-tests", "glue_test_connector");
    // Nothing listens on port 9; the config file does not exist: the refusal must come
    // first, from the manifest alone.
    let endpoint = "http://127.0.0.1:9";
    let common = [
        "--config",
        "/nonexistent/config.json",
        "--output",
        "s3://test-bucket/x",
    ];
    let steps: Vec<Vec<&str>> = vec![
        vec!["plan"],
        vec!["extract-partition", "--plan", "-", "--partition", "p"],
        vec!["commit", "--plan", "-", "--results", "-"],
    ];
    for step in steps {
        let full = [&step[..1], &common[..], &step[1..]].concat();
        let o = Command::new(&bin)
            .args(&full)
            .envs(TestEnv::process_env(endpoint))
            .env("GLUE_TEST_CONNECTOR", "no-glue")
            .env("GLUE_TEST_CALLS", &calls)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("runs");
        assert_eq!(o.status.code(), Some(2), "{step:?}");
        assert!(o.stdout.is_empty());
        let lines = stderr_error_lines(&o);
        assert_eq!(
            lines,
            vec![
                "error: connector `no-glue` does not declare the `glue` runner in its manifest \
                 (declared: fargate); add [runners.glue] to connector.toml or use a declared runner"
                    .to_string()
            ],
            "{step:?}"
        );
    }
    assert!(
        !calls.exists(),
        "a connector method was called: {:?}",
        std::fs::read_to_string(&calls)
    );
    // `deploy glue` is refused the same way.
    let o = Command::new(&bin)
        .args([
            "deploy",
            "glue",
            "--role-arn",
            "arn:aws:iam::123456789012:role/r",
            "--script-location",
            "s3://a-bucket/job.py",
            "--binary-location",
            "s3://a-bucket/bin/c",
            "--config-location",
            "s3://a-bucket/c.json",
            "--output",
            "s3://lake/raw",
        ])
        .env("GLUE_TEST_CONNECTOR", "no-glue")
        .output()
        .await
        .expect("runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not declare the `glue` runner"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_glue_renders_the_job_definition_from_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("connector_glue_job.py");
    let o = Command::new(demo_bin())
        .args([
            "deploy",
            "glue",
            "--role-arn",
            "arn:aws:iam::123456789012:role/glue-connectors",
            "--script-location",
            "s3://artifacts-bucket/glue/connector_glue_job.py",
            "--binary-location",
            "s3://artifacts-bucket/bin/orders-demo",
            "--config-location",
            "s3://artifacts-bucket/config/orders.json",
            "--output",
            "s3://lake-bucket/raw/orders-demo",
            "--temp-dir",
            "s3://artifacts-bucket/tmp/",
            "--write-script",
            script.to_str().unwrap(),
        ])
        .output()
        .await
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let job: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    // The demo reaches only S3 (a gateway VPC endpoint): no VPC connection.
    assert_eq!(
        job,
        json!({
            "Name": "orders-demo-orders",
            "Description": "orders-demo 0.1.0: stream `orders` to s3://lake-bucket/raw/orders-demo",
            "Role": "arn:aws:iam::123456789012:role/glue-connectors",
            "Command": {
                "Name": "glueetl",
                "ScriptLocation": "s3://artifacts-bucket/glue/connector_glue_job.py",
                "PythonVersion": "3"
            },
            "GlueVersion": "5.0",
            "WorkerType": "G.1X",
            "NumberOfWorkers": 2,
            "Timeout": 120,
            "MaxRetries": 0,
            "ExecutionProperty": {"MaxConcurrentRuns": 1},
            "DefaultArguments": {
                "--job-language": "python",
                "--extra-files": "s3://artifacts-bucket/bin/orders-demo,s3://artifacts-bucket/config/orders.json",
                "--connector_binary": "orders-demo",
                "--connector_config": "orders.json",
                "--output": "s3://lake-bucket/raw/orders-demo",
                "--stream": "orders",
                "--TempDir": "s3://artifacts-bucket/tmp/",
                "--enable-continuous-cloudwatch-log": "true",
                "--enable-metrics": "true"
            },
            "Tags": {"connector": "orders-demo", "connector-version": "0.1.0", "stream": "orders"}
        })
    );
    let written = std::fs::read_to_string(&script).expect("script written");
    let source =
        std::fs::read_to_string(workspace_root().join("runners/glue/job/connector_glue_job.py"))
            .unwrap();
    assert_eq!(written, source);

    // A bad argument: exit 2, one line naming the flag and what would be right.
    let o = Command::new(demo_bin())
        .args([
            "deploy",
            "glue",
            "--role-arn",
            "glue-connectors",
            "--script-location",
            "s3://artifacts-bucket/glue/connector_glue_job.py",
            "--binary-location",
            "s3://artifacts-bucket/bin/orders-demo",
            "--config-location",
            "s3://artifacts-bucket/config/orders.json",
            "--output",
            "s3://lake-bucket/raw",
        ])
        .output()
        .await
        .expect("runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert_eq!(
        stderr_error_lines(&o),
        vec![
            "error: invalid job definition argument --role-arn: \"glue-connectors\" is not an IAM role ARN; use arn:aws:iam::<account>:role/<name>"
                .to_string()
        ]
    );
}

/// Each task attempt writes file names of its own (`--attempt`, Spark's task attempt id):
/// a retry does not touch the failed attempt's objects, and a zombie attempt that runs on
/// after another attempt's files were committed (here with different source data) cannot
/// overwrite them: the committed table stays exactly the committed attempt's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_write_their_own_files_and_a_zombie_cannot_overwrite_a_commit() {
    let env = TestEnv::start().await;
    let endpoint = env.endpoint();
    let config = OrdersDemoConfig {
        rows: 20_000,
        rows_per_day: 10_000,
        batch_size: 1000,
        ..Default::default()
    };
    let cfg = env.write_json(
        "config.json",
        &json!({"rows": 20_000, "rows_per_day": 10_000, "batch_size": 1000}),
    );
    // The zombie reads the source as it is later: other values for the same ids.
    let changed = env.write_json(
        "changed.json",
        &json!({"rows": 20_000, "rows_per_day": 10_000, "batch_size": 1000, "seed": 7}),
    );
    let out = format!("s3://{BUCKET}/attempts");
    let bin = demo_bin();
    let common = |cfg: &Path| {
        vec![
            "--config".to_string(),
            cfg.display().to_string(),
            "--output".to_string(),
            out.clone(),
        ]
    };
    let args = |parts: &[&[String]]| -> Vec<String> { parts.concat() };
    let call = |argv: Vec<String>, stdin: Option<String>| {
        let (bin, endpoint) = (bin.clone(), endpoint.clone());
        async move {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            run(&bin, &argv, &endpoint, stdin.as_deref()).await
        }
    };
    let plan = stdout_json(&call(args(&[&["plan".to_string()], &common(&cfg)]), None).await);
    let plan_text = serde_json::to_string(&plan).unwrap();
    let ids: Vec<String> = plan["work"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["partition"]["id"].as_str().unwrap().to_string())
        .collect();
    let extract = |cfg: &Path, id: &str, attempt: u64| {
        args(&[
            &["extract-partition".to_string()],
            &common(cfg),
            &[
                "--plan".into(),
                "-".into(),
                "--partition".into(),
                id.to_string(),
                "--attempt".into(),
                attempt.to_string(),
                "--target-file-size".into(),
                "32KiB".into(),
            ],
        ])
    };
    let keys = |r: &Value| -> Vec<String> {
        r["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["key"].as_str().unwrap().to_string())
            .collect()
    };
    // Attempt 11 of the first partition "fails" (its result is never collected); attempt
    // 12 succeeds. Their files are disjoint.
    let failed = stdout_json(&call(extract(&cfg, &ids[0], 11), Some(plan_text.clone())).await);
    let retried = stdout_json(&call(extract(&cfg, &ids[0], 12), Some(plan_text.clone())).await);
    assert!(
        keys(&failed).iter().all(|k| !keys(&retried).contains(k)),
        "attempts share a name: {:?} / {:?}",
        keys(&failed),
        keys(&retried)
    );
    assert!(
        keys(&retried)
            .iter()
            .all(|k| k.contains(&format!("-{:010}", 12))),
        "{:?}",
        keys(&retried)
    );
    let second = stdout_json(&call(extract(&cfg, &ids[1], 13), Some(plan_text.clone())).await);
    let results = env.write_json("results.json", &json!([retried, second]));
    let plan_file = env.write_json("plan.json", &plan);
    let report = stdout_json(
        &call(
            args(&[
                &["commit".to_string()],
                &common(&cfg),
                &[
                    "--plan".into(),
                    plan_file.display().to_string(),
                    "--results".into(),
                    results.display().to_string(),
                ],
            ]),
            None,
        )
        .await,
    );
    assert_eq!(
        (report["status"].as_str(), report["rows"].as_u64()),
        (Some("complete"), Some(20_000))
    );

    // The failed attempt, a zombie, runs on after the commit and reads changed data.
    let zombie = stdout_json(&call(extract(&changed, &ids[0], 11), Some(plan_text.clone())).await);
    assert_eq!(
        keys(&zombie),
        keys(&failed),
        "the zombie rewrites its own names"
    );
    let got = read_committed(
        &env.store().await,
        &env.output("attempts"),
        ORDERS,
        "order_id",
    )
    .await
    .expect("committed");
    assert_eq!(
        got,
        orders_batch(&config, 1, 20_000),
        "the committed rows are the committed attempt's"
    );
}

/// The connector binary the Glue job starts dies with the task's Python worker: SIGKILL
/// the worker and its child is gone (`PR_SET_PDEATHSIG`), so a killed task cannot leave a
/// writer behind.
#[test]
fn the_binary_dies_with_the_tasks_python_worker() {
    let python = workspace_root().join(".venv/bin/python");
    let job_dir = workspace_root().join("runners/glue/job");
    let mut worker = std::process::Command::new(&python)
        .arg("-c")
        .arg(format!(
            "import sys; sys.path.insert(0, {:?}); import connector_glue_job as j; j.run_binary(['sleep', '300'], 'zombie', die_with_parent=True)",
            job_dir.display().to_string()
        ))
        .spawn()
        .expect("python runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let child: u32 = loop {
        let out = std::process::Command::new("pgrep")
            .args(["-P", &worker.id().to_string(), "sleep"])
            .output()
            .expect("pgrep runs");
        if let Some(pid) = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
        {
            break pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the child never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    worker.kill().expect("SIGKILL the worker");
    worker.wait().expect("reaped");
    let gone = |pid: u32| match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie (Z) or dead (X) process no longer runs; it waits to be reaped.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gone(child) {
        assert!(
            std::time::Instant::now() < deadline,
            "the binary (pid {child}) outlived its worker"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `plan` and `commit` take the extract options too (they write: the If-None-Match probe
/// and the table's log), so the job gives every step `--sse-kms-key-id` and
/// `--expected-bucket-owner`: a malformed owner is refused by each step, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_commit_take_the_output_security_options() {
    let env = TestEnv::start().await;
    let endpoint = env.endpoint();
    let cfg = env.write_json("config.json", &json!({"rows": 100, "rows_per_day": 100}));
    let cfg = cfg.to_str().unwrap();
    let out = format!("s3://{BUCKET}/secure");
    let common = ["--config", cfg, "--output", out.as_str()];
    let bad = ["--expected-bucket-owner", "12345"];
    let plan_file = env.write_json("plan.json", &json!({}));
    let results_file = env.write_json("results.json", &json!([]));
    for args in [
        [&["plan"][..], &common, &bad].concat(),
        [
            &["commit"][..],
            &common,
            &[
                "--plan",
                plan_file.to_str().unwrap(),
                "--results",
                results_file.to_str().unwrap(),
            ],
            &bad,
        ]
        .concat(),
    ] {
        let o = run(&demo_bin(), &args, &endpoint, None).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let lines = stderr_error_lines(&o);
        assert!(
            lines.len() == 1 && lines[0].contains("expected_bucket_owner"),
            "{args:?}: {lines:?}"
        );
    }
    // Valid options: the plan runs under them.
    let good = [
        "--expected-bucket-owner",
        "123456789012",
        "--sse-kms-key-id",
        "alias/out",
    ];
    let plan = stdout_json(
        &run(
            &demo_bin(),
            &[&["plan"][..], &common, &good].concat(),
            &endpoint,
            None,
        )
        .await,
    );
    assert_eq!(plan["work"].as_array().unwrap().len(), 1);
}
