//! The s3-files binary as a Lambda function (the Runtime API test server, the real
//! process) invoked with the events AWS sends: an S3 notification, SQS batches carrying
//! notifications (with duplicates, a test event and an object that is gone), an
//! EventBridge "Object Created" event and a scheduled event. Each object is committed
//! once, whatever the delivery.

mod support;

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use integration_tests::runtime_api::RuntimeApiServer;
use integration_tests::{BUCKET, TestEnv, binary, read_committed};
use serde_json::{Value, json};
use support::*;

fn notification(keys: &[&str]) -> Value {
    let records: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                   "eventName": "ObjectCreated:Put",
                   "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": BUCKET, "arn": format!("arn:aws:s3:::{BUCKET}")},
                          "object": {"key": k, "size": 1, "eTag": "0"}}})
        })
        .collect();
    json!({"Records": records})
}

fn sqs(bodies: &[Value]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"messageId": format!("m{i}"), "eventSource": "aws:sqs", "body": b.to_string()}))
        .collect();
    json!({"Records": records})
}

/// The s3-files binary serving `server`'s invocations with `config` and the event request
/// `request`; its log in `log` under the test's directory.
fn function(
    env: &TestEnv,
    server: &RuntimeApiServer,
    config: &Value,
    request: &Value,
    log: &str,
) -> tokio::process::Child {
    tokio::process::Command::new(binary("s3-files", "s3-files"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(TestEnv::process_env(&env.endpoint()))
        .envs(server.lambda_env("files", 1024))
        .env("CONNECTOR_CONFIG", config.to_string())
        .env("CONNECTOR_EVENT_REQUEST", request.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(env.dir.path().join(log)).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_sqs_eventbridge_and_scheduled_events_commit_each_object_once() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let put = |key: &'static str, body: Vec<u8>| {
        let store = store.clone();
        async move {
            store
                .put(BUCKET, key, Bytes::from(body), false)
                .await
                .unwrap()
        }
    };
    put("ev/new file (1).csv", csv(1..=10)).await;
    put("ev/b.csv", csv(11..=20)).await;
    put("ev/c.csv", csv(21..=30)).await;
    put("ev/d.csv", csv(31..=40)).await;
    let config = json!({"bucket": BUCKET, "streams": [{"name": "ev", "prefix": "ev/", "format": {"type": "csv"}, "schema": columns()}]});
    let request = json!({"config_env": "CONNECTOR_CONFIG", "output": format!("s3://{BUCKET}/out/lambda"), "stream": "ev"});

    let server = RuntimeApiServer::start().await;
    let mut child = function(&env, &server, &config, &request, "fn.log");
    let invoke = |event: Value| {
        let server = &server;
        async move {
            let done = server
                .invoke(event.to_string(), Duration::from_secs(60))
                .await;
            done.json()
        }
    };

    // S3 notification: the key URL-encoded as S3 sends it (space as +, parentheses escaped).
    let r = invoke(notification(&["ev/new+file+%281%29.csv"])).await;
    assert_eq!(
        (r["status"].as_str(), r["rows"].as_u64()),
        (Some("complete"), Some(10)),
        "{r}"
    );
    // The same notification delivered again: nothing twice.
    assert_eq!(
        invoke(notification(&["ev/new+file+%281%29.csv"])).await["rows"],
        0
    );
    // SQS: b twice, a test event, an object that is gone.
    let batch = sqs(&[
        notification(&["ev/b.csv"]),
        json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET}),
        notification(&["ev/b.csv", "ev/gone.csv"]),
    ]);
    assert_eq!(invoke(batch.clone()).await["rows"], 10);
    assert_eq!(
        invoke(batch).await["rows"],
        0,
        "a redelivered SQS batch commits nothing"
    );
    // EventBridge.
    let eb = json!({"version": "0", "source": "aws.s3", "detail-type": "Object Created",
        "detail": {"bucket": {"name": BUCKET}, "object": {"key": "ev/c.csv", "size": 1, "etag": "0"}, "reason": "PutObject"}});
    assert_eq!(invoke(eb).await["rows"], 10);
    // A schedule sweeps what no event named (d), once.
    let tick = json!({"version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    assert_eq!(invoke(tick.clone()).await["rows"], 10);
    assert_eq!(invoke(tick).await["rows"], 0);
    // An event for another bucket: refused by name.
    let other = json!({"source": "aws.s3", "detail-type": "Object Created",
        "detail": {"bucket": {"name": "other-bucket"}, "object": {"key": "x.csv"}}});
    let done = server
        .invoke(other.to_string(), Duration::from_secs(60))
        .await;
    let (kind, message) = done.error();
    assert!(kind.contains("NonRetryable"), "{kind}: {message}");
    assert!(message.contains("s3://other-bucket/x.csv"), "{message}");

    let t = read_committed(&store, &env.output("out/lambda"), "ev", "id")
        .await
        .unwrap();
    integration_tests::assert_ids_exact(&t, "id", 1, 40);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the function is still serving"
    );
}

/// An event's invocation that stops (at its deadline) before the event's objects are read
/// commits its progress and fails (retryable), so SQS or the asynchronous retry delivers the event again; answering
/// "partial" would acknowledge it with objects unread (no caller continues an AWS event).
/// The redelivery reads them: every object once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stopped_at_its_deadline_fails_and_its_redelivery_reads_every_object() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let keys = ["late/a.csv", "late/b.csv", "late/c.csv"];
    for (i, key) in keys.iter().enumerate() {
        let first = i as i64 * 5_000 + 1;
        store
            .put(BUCKET, key, Bytes::from(csv(first..=first + 4_999)), false)
            .await
            .unwrap();
    }
    let config = json!({"bucket": BUCKET, "streams": [{"name": "late", "prefix": "late/", "format": {"type": "csv"}, "schema": columns(), "batch_rows": 100}]});
    let output = format!("s3://{BUCKET}/out/late");
    let event = sqs(&[notification(&keys)]);

    // A run limit that has passed before the stream begins: a clear, non-retryable error
    // naming the limit; nothing committed.
    let server = RuntimeApiServer::start().await;
    let none = json!({"config_env": "CONNECTOR_CONFIG", "output": output, "stream": "late",
                      "options": {"max_runtime_secs": 0.000001}});
    let mut f = function(&env, &server, &config, &none, "none.log");
    let (kind, message) = server
        .invoke(event.to_string(), Duration::from_secs(60))
        .await
        .error();
    assert_eq!(kind, "NonRetryable.NotStarted", "{message}");
    assert!(message.contains("max_runtime_secs"), "{message}");
    f.kill().await.unwrap();
    assert!(env.keys("out/late/").await.is_empty());

    // The first delivery stops with one object read (deterministically: its event request
    // names one partition of the plan, so the run ends partial as at a deadline).
    let config_file = env.dir.path().join("late.json");
    std::fs::write(&config_file, config.to_string()).unwrap();
    let plan = std::process::Command::new(binary("s3-files", "s3-files"))
        .args(["plan", "--stream", "late", "--output", &output, "--config"])
        .arg(&config_file)
        .envs(TestEnv::process_env(&env.endpoint()))
        .output()
        .unwrap();
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let first_partition = plan["work"][0]["partition"]["id"].clone();
    assert_eq!(plan["work"].as_array().unwrap().len(), 3, "{plan}");
    let server = RuntimeApiServer::start().await;
    let short = json!({"config_env": "CONNECTOR_CONFIG", "output": output, "stream": "late",
                       "partition": first_partition});
    let mut first = function(&env, &server, &config, &short, "short.log");
    let done = server
        .invoke(event.to_string(), Duration::from_secs(60))
        .await;
    let (kind, message) = done.error();
    assert_eq!(kind, "Retryable.EventUnfinished", "{message}");
    assert!(
        message.contains("stream `late`")
            && message.contains("5000 rows")
            && message.contains("delivered again"),
        "{message}"
    );
    first.kill().await.unwrap();

    // The redelivery (a function without the limit): the committed plan, then the rest.
    let server = RuntimeApiServer::start().await;
    let request = json!({"config_env": "CONNECTOR_CONFIG", "output": output, "stream": "late"});
    let _second = function(&env, &server, &config, &request, "second.log");
    let r = server
        .invoke(event.to_string(), Duration::from_secs(60))
        .await
        .json();
    assert_eq!(r["status"], "complete", "{r}");
    let t = read_committed(&store, &env.output("out/late"), "late", "id")
        .await
        .unwrap();
    integration_tests::assert_ids_exact(&t, "id", 1, 15_000);
    // Delivered once more: nothing twice.
    let r = server
        .invoke(event.to_string(), Duration::from_secs(60))
        .await
        .json();
    assert_eq!(
        (r["status"].as_str(), r["rows"].as_u64()),
        (Some("complete"), Some(0)),
        "{r}"
    );
}
