//! The extract core against the real local S3 server: round trip, rolling, multipart,
//! incremental, concurrency, S3 faults.

use std::time::Duration;

use connector_sdk::{
    Dataset, Dictionary, Error, ExtractCore, ExtractOptions, RunStatus, S3Store, StopSignal,
};
use integration_tests::{BUCKET, TestEnv, assert_ids_exact, read_committed};
use local_s3::{FaultConfig, FaultProxy};
use orders_demo::{ORDERS, OrdersDemo, OrdersDemoConfig, orders_batch};

fn demo(rows: u64, rows_per_day: u64) -> OrdersDemoConfig {
    OrdersDemoConfig {
        rows,
        rows_per_day,
        batch_size: 4096,
        ..Default::default()
    }
}

fn core(
    store: &S3Store,
    config: OrdersDemoConfig,
    options: ExtractOptions,
) -> ExtractCore<OrdersDemo> {
    ExtractCore::new(OrdersDemo, config, store.clone(), options, "test").expect("valid core")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_equals_the_source_exactly() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let config = demo(25_000, 7_000);
    let options = ExtractOptions::new(env.output("rt"));
    let report = core(&store, config.clone(), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .expect("extract succeeds");
    assert_eq!(report.status, RunStatus::Complete);
    assert_eq!(report.rows, 25_000);
    assert_eq!(report.partitions, 4);
    assert_eq!(report.sequence, Some(1));

    let got = read_committed(&store, &options.output, ORDERS, "order_id")
        .await
        .expect("data");
    // Types, nulls and values, all at once: the whole batch equals the generator's.
    assert_eq!(got, orders_batch(&config, 1, 25_000));

    // Layout: hive folders, deterministic names, the table's first log entry and the report.
    let keys = env.keys("rt/orders/").await;
    assert!(
        keys.iter()
            .any(|k| k.starts_with("rt/orders/dt=2024-01-01/part-")),
        "{keys:?}"
    );
    assert!(keys.contains(&"rt/orders/_delta_log/00000000000000000000.json".to_string()));
    assert!(keys.contains(&"rt/orders/_reports/00000000000000000001.json".to_string()));
    let manifest = Dataset::new(store.clone(), options.output.clone(), ORDERS)
        .latest()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(manifest.rows, 25_000);
    assert_eq!(
        manifest.state.cursor,
        Some(serde_json::json!({"order_id": 25_000}))
    );
    assert_eq!(manifest.schema, *orders_demo::orders_schema());
    assert_eq!(manifest.runner, "test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_roll_at_the_target_size_and_use_multipart() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    // One partition of 1.5M rows: ~29 MB of Parquet with a dictionary on every column
    // (pinned: `auto` would leave the demo's unique columns plain and the output smaller
    // than the two full files this test needs).
    let config = demo(1_500_000, 1_500_000);
    let mut options = ExtractOptions::new(env.output("roll"));
    options.parquet.target_file_bytes = 12 * 1024 * 1024;
    options.parquet.row_group_rows = 64 * 1024;
    options.parquet.dictionary = Dictionary::Always;
    options.upload.part_bytes = 5 * 1024 * 1024;
    let report = core(&store, config.clone(), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .expect("extract");
    let files = Dataset::new(store.clone(), options.output.clone(), ORDERS)
        .committed_files()
        .await
        .unwrap();
    assert!(files.len() >= 2, "expected several files, got {files:?}");
    assert_eq!(report.files, files.len() as u64);
    let (last, rest) = files.split_last().unwrap();
    for f in rest {
        // Rolled once the file's estimated size reached the target: within 5% below
        // it, at most one row group above.
        assert!(
            f.bytes >= 12 * 1024 * 1024 * 95 / 100,
            "{} is below the target: {}",
            f.key,
            f.bytes
        );
        assert!(
            f.bytes < 20 * 1024 * 1024,
            "{} overshoots the target: {}",
            f.key,
            f.bytes
        );
    }
    assert!(last.bytes <= 20 * 1024 * 1024);
    // Files over one part went up as multipart uploads of 5 MiB parts (the server
    // rejects smaller non-last parts), files under one part as a single PutObject.
    let ops = store.operation_counts();
    let multipart_files = files.iter().filter(|f| f.bytes > 5 * 1024 * 1024).count() as u64;
    assert!(multipart_files >= 2);
    assert_eq!(
        ops.get("CreateMultipartUpload"),
        Some(&multipart_files),
        "{ops:?}"
    );
    assert_eq!(
        ops.get("CompleteMultipartUpload"),
        Some(&multipart_files),
        "{ops:?}"
    );
    let expected_parts: u64 = files
        .iter()
        .filter(|f| f.bytes > 5 * 1024 * 1024)
        .map(|f| f.bytes.div_ceil(5 * 1024 * 1024))
        .sum();
    assert_eq!(ops.get("UploadPart"), Some(&expected_parts), "{ops:?}");
    let got = read_committed(&store, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&config, 1, 1_500_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_run_adds_only_new_rows() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let options = ExtractOptions::new(env.output("inc"));
    let first = core(&store, demo(30_000, 10_000), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .unwrap();
    assert_eq!(first.rows, 30_000);
    // The source grows; the second run reads only ids 30001..=52000.
    let config = demo(52_000, 10_000);
    let second = core(&store, config.clone(), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .unwrap();
    assert_eq!(second.rows, 22_000);
    assert_eq!(second.sequence, Some(2));
    let dataset = Dataset::new(store.clone(), options.output.clone(), ORDERS);
    let m2 = dataset.manifest(2).await.unwrap().unwrap();
    assert_eq!(m2.rows, 22_000);
    // Nothing new: no commit at all.
    let third = core(&store, config.clone(), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .unwrap();
    assert_eq!((third.rows, third.sequence), (0, None));
    let got = read_committed(&store, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&config, 1, 52_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_run_commits_progress_and_the_next_run_finishes_exactly() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let config = OrdersDemoConfig {
        batch_delay_ms: 20,
        ..demo(60_000, 20_000)
    };
    let mut options = ExtractOptions::new(env.output("stop"));
    options.max_concurrent_partitions = 1;
    let stop = StopSignal::new()
        .with_deadline(Some(std::time::Instant::now() + Duration::from_millis(300)));
    let partial = core(&store, config.clone(), options.clone())
        .run(ORDERS, &stop)
        .await
        .unwrap();
    assert_eq!(partial.status, RunStatus::Partial);
    assert!(
        partial.rows > 0 && partial.rows < 60_000,
        "rows {}",
        partial.rows
    );
    let m1 = Dataset::new(store.clone(), options.output.clone(), ORDERS)
        .latest()
        .await
        .unwrap()
        .unwrap();
    assert!(m1.state.pending.is_some());
    assert_eq!(
        m1.state.cursor, None,
        "the stream cursor must not run ahead of the data"
    );
    // Rows committed so far are exactly a prefix of each partition: no gap, no dup.
    let got = read_committed(&store, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got.num_rows() as u64, partial.rows);

    let rest = core(
        &store,
        OrdersDemoConfig {
            batch_delay_ms: 0,
            ..config.clone()
        },
        options.clone(),
    )
    .run(ORDERS, &StopSignal::new())
    .await
    .unwrap();
    assert_eq!(rest.status, RunStatus::Complete);
    assert_eq!(partial.rows + rest.rows, 60_000);
    let got = read_committed(&store, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&config, 1, 60_000));
}

/// A long run commits every `commit_interval` and reads on: every intermediate commit is
/// a clean prefix of each partition with its resume point, and the run as a whole is
/// exact. Before intermediate commits, this run committed once, at its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_commits_every_interval_and_stays_exact() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    // One partition of 15 batches, 200 ms each: ~3 s of reading.
    let config = OrdersDemoConfig {
        batch_delay_ms: 200,
        ..demo(60_000, 60_000)
    };
    let mut options = ExtractOptions::new(env.output("interval"));
    options.max_concurrent_partitions = 1;
    options.commit_interval.secs = 1;
    let report = core(&store, config.clone(), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Complete);
    assert_eq!(report.rows, 60_000, "the report counts every commit's rows");
    assert!(
        report.intermediate_commits >= 1,
        "a 3 s run with a 1 s interval committed once: {report:?}"
    );
    let dataset = Dataset::new(store.clone(), options.output.clone(), ORDERS);
    let manifests = dataset.manifests().await.unwrap();
    assert_eq!(
        manifests.len() as u64,
        report.intermediate_commits + 1,
        "one table version per commit"
    );
    assert_eq!(report.sequence, manifests.last().map(|m| m.sequence));
    let mut committed = 0u64;
    for m in &manifests[..manifests.len() - 1] {
        // An intermediate commit: the rows so far and where to resume, no cursor yet.
        assert_eq!(m.status, RunStatus::Partial);
        assert_eq!(m.state.cursor, None, "the cursor must not run ahead");
        committed += m.rows;
        let pending = m.state.pending.as_ref().expect("a pending plan");
        assert_eq!(
            pending.partitions[0].checkpoint,
            Some(serde_json::json!({ "order_id": committed })),
            "sequence {}: the resume point is exactly the rows committed",
            m.sequence
        );
        assert!(m.rows > 0, "an intermediate commit with no rows: {m:?}");
    }
    let last = manifests.last().unwrap();
    assert_eq!(last.status, RunStatus::Complete);
    assert_eq!(committed + last.rows, 60_000);
    let got = read_committed(&store, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&config, 1, 60_000));
    assert_eq!(
        integration_tests::deltalake_key_summary(&env, &options.output, ORDERS, "order_id"),
        (60_000, 60_000, Some(1), Some(60_000)),
        "delta-rs reads every row once"
    );

    // By volume: files of 64 KiB and a commit every 1 MiB of them; the source is slowed
    // (20 ms a batch) so the files do not all finish between two looks at the bytes.
    let config = OrdersDemoConfig {
        batch_delay_ms: 20,
        ..demo(450_000, 450_000)
    };
    let mut options = ExtractOptions::new(env.output("interval-size"));
    options.max_concurrent_partitions = 1;
    options.parquet.target_file_bytes = 64 << 10;
    options.commit_interval.bytes = 1 << 20;
    let report = core(&store, config.clone(), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Complete);
    assert_eq!(report.rows, 450_000);
    let manifests = Dataset::new(store.clone(), options.output.clone(), ORDERS)
        .manifests()
        .await
        .unwrap();
    assert_eq!(manifests.len() as u64, report.intermediate_commits + 1);
    let written: u64 = manifests.iter().map(|m| m.bytes).sum();
    assert!(
        written > 3 << 20,
        "the test needs > 3 MiB of files: {written}"
    );
    assert!(
        report.intermediate_commits >= 2,
        "{written} bytes of files, a commit due every 1 MiB, and {} intermediate commits",
        report.intermediate_commits
    );
    for m in &manifests[..manifests.len() - 1] {
        assert!(
            m.bytes >= 1 << 20,
            "sequence {} committed {} bytes: a commit before its interval was full",
            m.sequence,
            m.bytes
        );
    }
    let got = read_committed(&store, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&config, 1, 450_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_runs_exactly_one_commits() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let config = demo(40_000, 10_000);
    let options = ExtractOptions::new(env.output("race"));
    let (a, b) = (
        core(&store, config.clone(), options.clone()),
        core(&store, config.clone(), options.clone()),
    );
    // Both plan from the same (empty) state, then race to commit sequence 1.
    let (pa, pb) = (
        a.prepare(ORDERS).await.unwrap(),
        b.prepare(ORDERS).await.unwrap(),
    );
    let stop = StopSignal::new();
    let mut ra = Vec::new();
    let mut rb = Vec::new();
    for w in &pa.work {
        ra.push(
            a.extract_partition(&pa, &w.partition.id, &stop)
                .await
                .unwrap(),
        );
    }
    for w in &pb.work {
        rb.push(
            b.extract_partition(&pb, &w.partition.id, &stop)
                .await
                .unwrap(),
        );
    }
    let (ca, cb) = tokio::join!(a.commit(&pa, ra), b.commit(&pb, rb));
    let (winner, loser) = match (ca, cb) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        (Ok(_), Ok(_)) => panic!("both runs committed"),
        (Err(x), Err(y)) => panic!("neither committed: {x} / {y}"),
    };
    assert!(matches!(loser, Error::CommitConflict { .. }), "{loser}");
    let msg = loser.to_string();
    assert!(
        msg.contains("another run committed") && msg.contains(&winner.run_id),
        "{msg}"
    );
    // Only the winner's files exist: the loser left nothing behind.
    let dataset = Dataset::new(store.clone(), options.output.clone(), ORDERS);
    assert_eq!(dataset.sequences().await.unwrap(), vec![1]);
    let data_keys: Vec<String> = env.keys("race/orders/dt=").await;
    assert!(
        data_keys.iter().all(|k| k.contains(&winner.run_id)),
        "{data_keys:?}"
    );
    let got = read_committed(&store, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&config, 1, 40_000));

    // Fully concurrent runs (plan + read + commit racing): exactly one commits sequence 1;
    // the other either conflicts or, if it started after the commit, finds nothing new.
    let (x, y) = (
        core(
            &store,
            config.clone(),
            ExtractOptions::new(env.output("race2")),
        ),
        core(
            &store,
            config.clone(),
            ExtractOptions::new(env.output("race2")),
        ),
    );
    let stop = StopSignal::new();
    let (rx, ry) = tokio::join!(x.run(ORDERS, &stop), y.run(ORDERS, &stop));
    let committed_rows: u64 = [&rx, &ry]
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.rows)
        .sum();
    assert_eq!(committed_rows, 40_000, "{rx:?} {ry:?}");
    let out2 = env.output("race2");
    assert_ids_exact(
        &read_committed(&store, &out2, ORDERS, "order_id")
            .await
            .unwrap(),
        "order_id",
        1,
        40_000,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_faults_are_retried_and_the_output_is_identical() {
    let env = TestEnv::start().await;
    let clean_store = env.store().await;
    let config = demo(300_000, 100_000);
    let mut options = ExtractOptions::new(env.output("clean"));
    options.parquet.target_file_bytes = 1024 * 1024;
    options.upload.part_bytes = 5 * 1024 * 1024;
    core(&clean_store, config.clone(), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .unwrap();
    let clean = read_committed(&clean_store, &options.output, ORDERS, "order_id")
        .await
        .unwrap();

    let proxy = FaultProxy::start(
        env.s3.addr(),
        FaultConfig {
            slow_down_rate: 0.2,
            reset_rate: 0.2,
            fail_all: false,
            seed: 7,
            lose_reply_once: None,
            lose_complete_reply_once: false,
            answer_once: None,
            hang: None,
            throttle: None,
        },
    )
    .await
    .unwrap();
    let faulty_store = S3Store::connect(&TestEnv::s3_options(&proxy.endpoint())).await;
    let mut faulty_options = options.clone();
    faulty_options.output = env.output("faulty");
    let report = core(&faulty_store, config.clone(), faulty_options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .expect("faults are retried by the SDK");
    let stats = proxy.stats();
    assert!(
        stats.slow_downs > 0 && stats.resets > 0,
        "no faults were injected: {stats:?}"
    );
    assert!(report.s3_retries > 0, "the report counts retries");
    let faulty = read_committed(&clean_store, &faulty_options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(faulty, clean);
    assert_eq!(clean, orders_batch(&config, 1, 300_000));
    // delta-rs reads the table the fault storm committed: every row once.
    assert_eq!(
        integration_tests::deltalake_key_summary(&env, &faulty_options.output, ORDERS, "order_id"),
        (300_000, 300_000, Some(1), Some(300_000))
    );

    // Every request failing: a clear error, nothing committed, no upload left open.
    proxy.set_config(FaultConfig {
        slow_down_rate: 0.0,
        reset_rate: 0.0,
        fail_all: true,
        seed: 7,
        lose_reply_once: None,
        lose_complete_reply_once: false,
        answer_once: None,
        hang: None,
        throttle: None,
    });
    let mut failing = options.clone();
    failing.output = env.output("failing");
    let store = S3Store::connect(&connector_sdk::S3Options {
        max_attempts: Some(3),
        ..TestEnv::s3_options(&proxy.endpoint())
    })
    .await;
    let err = core(&store, config.clone(), failing.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .expect_err("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("HTTP 503") && msg.contains("ListObjectsV2"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    assert!(err.is_retryable());
    assert!(env.keys("failing/").await.is_empty());
    let open = clean_store.list_open_uploads(BUCKET, "").await.unwrap();
    assert!(open.is_empty(), "{open:?}");
    proxy.shutdown().await;
}

/// S3 applies the commit's log entry but its reply is lost: the SDK's retry meets
/// `If-None-Match` and the kernel reports a conflict, yet the run finds its own run id as
/// the table's transaction id and reports success. Nothing is applied twice, for the
/// commit that creates the table and for a later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_reply_is_lost_is_recognised_and_applied_once() {
    let env = TestEnv::start().await;
    let proxy = FaultProxy::start(
        env.s3.addr(),
        FaultConfig {
            lose_reply_once: Some("/_delta_log/00000000000000000000.json".into()),
            ..FaultConfig::default()
        },
    )
    .await
    .unwrap();
    let store = S3Store::connect(&TestEnv::s3_options(&proxy.endpoint())).await;
    let options = ExtractOptions::new(env.output("lost"));
    let first = core(&store, demo(10_000, 5_000), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .expect("the lost reply of the creating commit is recognised");
    assert_eq!(proxy.stats().lost_replies, 1);
    assert_eq!((first.sequence, first.rows), (Some(1), 10_000));

    proxy.set_config(FaultConfig {
        lose_reply_once: Some("/_delta_log/00000000000000000001.json".into()),
        ..FaultConfig::default()
    });
    let config = demo(16_000, 5_000);
    let second = core(&store, config.clone(), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .expect("the lost reply of a later commit is recognised");
    assert_eq!(proxy.stats().lost_replies, 2);
    assert_eq!((second.sequence, second.rows), (Some(2), 6_000));

    let clean = env.store().await;
    let dataset = Dataset::new(clean.clone(), options.output.clone(), ORDERS);
    assert_eq!(dataset.sequences().await.unwrap(), vec![1, 2]);
    let log: Vec<String> = env
        .keys("lost/orders/_delta_log/")
        .await
        .into_iter()
        .filter(|k| k.ends_with(".json"))
        .collect();
    assert_eq!(log.len(), 2, "{log:?}");
    let got = read_committed(&clean, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&config, 1, 16_000));
    proxy.shutdown().await;
}

/// S3 completes a multipart upload but the reply is lost: the SDK's retry finds no upload
/// (NoSuchUpload), which is not an upload aborted under the run: the object is there with
/// every byte, and the run commits it once. Before the fix the run failed with "aborted".
/// (The local server answers a retried complete with the object, as S3 does for a while;
/// here it is set to answer NoSuchUpload, as S3 does after that.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_upload_whose_reply_is_lost_is_recognised() {
    let env = TestEnv::start().await;
    env.s3.set_forget_completed_uploads(true);
    let proxy = FaultProxy::start(
        env.s3.addr(),
        FaultConfig {
            lose_complete_reply_once: true,
            ..FaultConfig::default()
        },
    )
    .await
    .unwrap();
    let store = S3Store::connect(&TestEnv::s3_options(&proxy.endpoint())).await;
    // One partition of ~15 MB: a multipart upload of 5 MiB parts.
    let config = demo(800_000, 800_000);
    let mut options = ExtractOptions::new(env.output("lost-complete"));
    options.upload.part_bytes = 5 * 1024 * 1024;
    options.parquet.dictionary = Dictionary::Always;
    let report = core(&store, config.clone(), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .expect("the lost reply of CompleteMultipartUpload is recognised");
    assert_eq!(proxy.stats().lost_replies, 1, "the fault was injected");
    let ops = store.operation_counts();
    assert!(
        ops.get("CompleteMultipartUpload").copied().unwrap_or(0) >= 1,
        "{ops:?}"
    );
    assert_eq!((report.rows, report.files), (800_000, 1));
    let clean = env.store().await;
    let got = read_committed(&clean, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&config, 1, 800_000));
    assert!(
        clean
            .list_open_uploads(BUCKET, "lost-complete/")
            .await
            .unwrap()
            .is_empty()
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_source_aborts_open_uploads_and_commits_nothing() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    // One big partition that fails after ~12 MiB were uploaded in 5 MiB parts.
    let config = OrdersDemoConfig {
        fail_at_order_id: Some(900_000),
        ..demo(1_000_000, 1_000_000)
    };
    let mut options = ExtractOptions::new(env.output("abort"));
    options.upload.part_bytes = 5 * 1024 * 1024;
    options.parquet.row_group_rows = 32 * 1024;
    let c = core(&store, config, options.clone());
    let err = c
        .run(ORDERS, &StopSignal::new())
        .await
        .expect_err("source fails");
    assert!(
        err.to_string().contains("injected failure at order 900000"),
        "{err}"
    );
    assert!(c.open_uploads().is_empty());
    let open = store.list_open_uploads(BUCKET, "").await.unwrap();
    assert!(open.is_empty(), "multipart uploads left open: {open:?}");
    let dataset = Dataset::new(store.clone(), options.output.clone(), ORDERS);
    assert!(dataset.sequences().await.unwrap().is_empty());
}

/// `gc`'s shortest grace period for orders-demo: its longest declared runtime
/// (fargate/ec2, 14 400 s) plus the 900 s margin.
const ORDERS_GC_FLOOR: u64 = 14_400 + 900;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_removes_only_files_of_uncommitted_runs() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let config = demo(10_000, 5_000);
    let options = ExtractOptions::new(env.output("gc"));
    let c = core(&store, config.clone(), options.clone());
    // Nothing committed yet: gc refuses (a wrong prefix must not be cleaned).
    let err = c.collect_garbage(ORDERS, None, false).await.unwrap_err();
    assert!(err.to_string().contains("has no committed run"), "{err}");
    // A run that writes files but never commits (as if it crashed before its commit).
    let plan = c.prepare(ORDERS).await.unwrap();
    let stop = StopSignal::new();
    for w in &plan.work {
        c.extract_partition(&plan, &w.partition.id, &stop)
            .await
            .unwrap();
    }
    let orphans = env.keys("gc/orders/dt=").await;
    assert_eq!(orphans.len(), 2);
    // Then a run that commits, and objects that are not data files of a run.
    c.run(ORDERS, &stop).await.unwrap();
    let foreign = [
        "gc/orders/README.txt",
        "gc/orders/dt=2024-01-01/part-x.parquet",
    ];
    for key in foreign {
        store
            .put(BUCKET, key, bytes::Bytes::from_static(b"not ours"), false)
            .await
            .unwrap();
    }
    let before = env.keys("gc/").await;

    // Young files are safe with the default grace; a shorter grace is refused.
    let r = c.collect_garbage(ORDERS, None, false).await.unwrap();
    assert!(r.deleted_objects.is_empty(), "{r:?}");
    assert_eq!(r.grace_secs, ORDERS_GC_FLOOR);
    let err = c
        .collect_garbage(ORDERS, Some(Duration::from_secs(3600)), false)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("too short") && msg.contains(&format!("at least {ORDERS_GC_FLOOR} s")),
        "{msg}"
    );
    assert!(matches!(err, Error::Request { .. }));
    // Streams the connector does not declare are refused.
    let err = c.collect_garbage("invoices", None, true).await.unwrap_err();
    assert!(
        err.to_string().contains("not a stream of connector"),
        "{err}"
    );

    // Once everything is older than the longest run: a dry run lists the orphans and
    // deletes nothing; the real run deletes exactly them.
    env.age_objects(ORDERS_GC_FLOOR + 60);
    let dry = c.collect_garbage(ORDERS, None, true).await.unwrap();
    assert!(dry.dry_run);
    let mut listed = dry.deleted_objects.clone();
    listed.sort();
    assert_eq!(listed, orphans);
    assert_eq!(env.keys("gc/").await, before, "a dry run deleted something");
    let report = c.collect_garbage(ORDERS, None, false).await.unwrap();
    let mut deleted = report.deleted_objects.clone();
    deleted.sort();
    assert_eq!(deleted, orphans);
    let left: Vec<String> = before
        .into_iter()
        .filter(|k| !orphans.contains(k))
        .collect();
    assert_eq!(env.keys("gc/").await, left);
    for key in foreign {
        assert!(left.contains(&key.to_string()), "{key} was deleted");
    }
    let got = read_committed(&store, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&config, 1, 10_000));
}

/// `gc` during a run that outlives its declared runtime deletes the run's finished
/// files: the commit must notice (HEAD of every file) and commit nothing, rather than
/// record rows that are gone and move the cursor past them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_refuses_files_deleted_under_the_run() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let options = ExtractOptions::new(env.output("lost"));
    core(&store, demo(10_000, 5_000), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .unwrap();
    // New orders at the source; a run reads them but has not committed yet...
    let config = demo(20_000, 5_000);
    let c = core(&store, config.clone(), options.clone());
    let plan = c.prepare(ORDERS).await.unwrap();
    let mut results = Vec::new();
    for w in plan.remaining() {
        results.push(
            c.extract_partition(&plan, &w.partition.id, &StopSignal::new())
                .await
                .unwrap(),
        );
    }
    // ...when gc, long after, deletes its files.
    env.age_objects(ORDERS_GC_FLOOR + 60);
    let gc = c.collect_garbage(ORDERS, None, false).await.unwrap();
    assert_eq!(gc.deleted_objects.len(), 2, "{gc:?}");
    let err = c.commit(&plan, results).await.unwrap_err();
    assert!(matches!(err, Error::DataFileMissing { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("is missing before the commit") && msg.contains("nothing was committed"),
        "{msg}"
    );
    let dataset = Dataset::new(store.clone(), options.output.clone(), ORDERS);
    assert_eq!(dataset.sequences().await.unwrap(), vec![1]);
    // The state did not move: a re-run extracts the new orders, exactly once.
    c.run(ORDERS, &StopSignal::new()).await.unwrap();
    let got = read_committed(&store, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&config, 1, 20_000));
}

/// A multipart upload aborted under a run (tried as a new user would: `gc` while a run
/// is writing) fails the run with that cause, not "403 AccessDenied; check the
/// credentials", and commits nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_aborted_under_the_run_is_named_as_such() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let mut options = ExtractOptions::new(env.output("aborted"));
    options.upload.part_bytes = 5 * 1024 * 1024;
    options.parquet.row_group_rows = 32 * 1024;
    core(&store, demo(1_000, 1_000_000), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .unwrap();
    // One slow partition of ~1 M orders: its file becomes a multipart upload.
    let config = OrdersDemoConfig {
        batch_delay_ms: 20,
        ..demo(1_000_000, 1_000_000)
    };
    let c = core(&store, config.clone(), options.clone());
    let run = {
        let c = c.clone();
        tokio::spawn(async move { c.run(ORDERS, &StopSignal::new()).await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while store
        .list_open_uploads(BUCKET, "aborted/")
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            !run.is_finished(),
            "the run ended before it opened an upload"
        );
        assert!(std::time::Instant::now() < deadline, "no upload opened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.age_objects(ORDERS_GC_FLOOR + 60);
    let gc = c.collect_garbage(ORDERS, None, false).await.unwrap();
    assert_eq!(gc.aborted_uploads, 1, "{gc:?}");
    let err = run.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::UploadAborted { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("was aborted while this run was writing it") && !msg.contains("credentials"),
        "{msg}"
    );
    let dataset = Dataset::new(store.clone(), options.output.clone(), ORDERS);
    assert_eq!(dataset.sequences().await.unwrap(), vec![1]);
    // A re-run (at full speed) lands everything exactly once.
    let config = OrdersDemoConfig {
        batch_delay_ms: 0,
        ..config
    };
    core(&store, config.clone(), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .unwrap();
    let got = read_committed(&store, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&config, 1, 1_000_000));
}

/// A server that ignores `If-None-Match: *` would let two runs both commit the same table
/// version: the probe at the start of a run finds out and refuses before anything is
/// read or written; the same server with conditional writes runs normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_if_none_match_is_refused_before_any_write() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let options = ExtractOptions::new(env.output("probe"));
    env.s3.set_ignore_if_none_match(true);
    let err = core(&store, demo(1_000, 1_000), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .expect_err("a server without conditional writes is refused");
    let msg = err.to_string();
    assert!(
        msg.contains("ignores If-None-Match") && msg.contains("exactly-once"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
    assert!(!err.is_retryable());
    assert!(
        env.keys("probe/").await.is_empty(),
        "nothing is left written"
    );

    env.s3.set_ignore_if_none_match(false);
    let fresh = S3Store::connect(&TestEnv::s3_options(&env.endpoint())).await;
    let report = core(&fresh, demo(1_000, 1_000), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .expect("conditional writes honoured");
    assert_eq!(report.rows, 1_000);
    assert!(
        !env.keys("probe/")
            .await
            .iter()
            .any(|k| k.contains("_probes")),
        "the probe object is deleted"
    );
}

/// Rewrite the last commit of `stream`'s table under `prefix` with `edit` (the log entry's
/// text in, the new text out), through S3.
async fn edit_last_log_entry(
    env: &TestEnv,
    prefix: &str,
    stream: &str,
    edit: impl Fn(&str) -> String,
) -> String {
    let store = env.store().await;
    let mut log: Vec<String> = env
        .keys(&format!("{prefix}/{stream}/_delta_log/"))
        .await
        .into_iter()
        .filter(|k| k.ends_with(".json"))
        .collect();
    log.sort();
    let key = log.pop().expect("a log entry");
    let text = store.get(BUCKET, &key).await.unwrap().unwrap();
    let text = String::from_utf8(text.to_vec()).unwrap();
    store
        .put(BUCKET, &key, edit(&text).into_bytes().into(), false)
        .await
        .unwrap();
    // The version's checksum summarises the entry as it was: gone, as if another writer
    // (one that writes no checksums) had made the entry, so readers replay the edited one.
    let crc = key.replace(".json", ".crc");
    store.delete(BUCKET, &crc).await.unwrap();
    key
}

/// The run record in a log entry's domain metadata, edited by `edit` (the record as JSON).
fn edit_record(entry: &str, edit: &dyn Fn(&mut serde_json::Value) -> String) -> String {
    entry
        .lines()
        .map(|line| {
            let mut action: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(dm) = action.get_mut("domainMetadata")
                && dm["domain"] == "connector-sdk.run"
            {
                let mut record: serde_json::Value =
                    serde_json::from_str(dm["configuration"].as_str().unwrap()).unwrap();
                dm["configuration"] = serde_json::Value::String(edit(&mut record));
            }
            action.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A committed state that is truncated, corrupt or of a newer format is a clear error
/// naming the problem, before anything is read or written: the table keeps exactly its
/// log and files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_truncated_or_newer_state_is_refused_and_nothing_is_overwritten() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let options = ExtractOptions::new(env.output("state"));
    core(&store, demo(2_000, 1_000), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .unwrap();
    let more = demo(3_000, 1_000);
    type Edit = Box<dyn Fn(&str) -> String>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "newer format",
            Box::new(|t: &str| {
                edit_record(t, &|r| {
                    r["format"] = serde_json::json!(2);
                    r.to_string()
                })
            }),
            "newer than this binary reads",
        ),
        (
            "corrupt record",
            Box::new(|t: &str| {
                edit_record(t, &|r| {
                    let full = r.to_string();
                    full[..full.len() / 2].to_string()
                })
            }),
            "corrupt or truncated",
        ),
        (
            "record without a format",
            Box::new(|t: &str| {
                edit_record(t, &|r| {
                    r.as_object_mut().unwrap().remove("format");
                    r.to_string()
                })
            }),
            "no format number",
        ),
        (
            "truncated log entry",
            Box::new(|t: &str| t[..t.len() / 2].to_string()),
            "",
        ),
    ];
    for (what, edit, needle) in cases {
        let original = edit_last_log_entry(&env, "state", ORDERS, |t| t.to_string()).await;
        let before_text = store.get(BUCKET, &original).await.unwrap().unwrap();
        edit_last_log_entry(&env, "state", ORDERS, |t| edit(t)).await;
        let edited = store.get(BUCKET, &original).await.unwrap().unwrap();
        let keys_before = env.keys("state/").await;
        let err = core(&store, more.clone(), options.clone())
            .run(ORDERS, &StopSignal::new())
            .await
            .expect_err(what);
        let msg = err.to_string();
        assert!(msg.contains(needle), "{what}: {msg}");
        assert!(!msg.contains('\n'), "{what}: {msg}");
        assert!(
            matches!(err, Error::CorruptManifest { .. } | Error::Table { .. }),
            "{what}: {err:?}"
        );
        assert_eq!(
            env.keys("state/").await,
            keys_before,
            "{what}: nothing written"
        );
        assert_eq!(
            store.get(BUCKET, &original).await.unwrap().unwrap(),
            edited,
            "{what}: the log entry is not overwritten"
        );
        // Put the entry back: the table is whole again.
        store
            .put(BUCKET, &original, before_text, false)
            .await
            .unwrap();
    }
    let report = core(&store, more.clone(), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .expect("the restored table runs");
    assert_eq!(report.rows, 1_000);
    let got = read_committed(&store, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&more, 1, 3_000));
}

/// Conditional writes answered `409 ConditionalRequestConflict` (a concurrent write was in
/// flight) are tried again: the commit lands once. Before, a 409 read as "the version
/// exists" and the run reported a conflict with no winner and deleted its files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_409_on_the_commit_is_retried_and_a_412_is_a_clean_conflict() {
    let env = TestEnv::start().await;
    let proxy = FaultProxy::start(
        env.s3.addr(),
        FaultConfig {
            answer_once: Some(("/_delta_log/00000000000000000000.json".into(), 409)),
            ..FaultConfig::default()
        },
    )
    .await
    .unwrap();
    let store = S3Store::connect(&TestEnv::s3_options(&proxy.endpoint())).await;
    let options = ExtractOptions::new(env.output("c409"));
    let report = core(&store, demo(5_000, 5_000), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .expect("a 409 is tried again");
    assert_eq!((report.sequence, report.rows), (Some(1), 5_000));
    let clean = env.store().await;
    let got = read_committed(&clean, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&demo(5_000, 5_000), 1, 5_000));

    // A 412 says another writer has the version: a conflict, this run's files deleted,
    // the table unchanged.
    proxy.set_config(FaultConfig {
        answer_once: Some(("/_delta_log/00000000000000000001.json".into(), 412)),
        ..FaultConfig::default()
    });
    let keys_before = env.keys("c409/").await;
    let err = core(&store, demo(8_000, 5_000), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .expect_err("a 412 is a conflict");
    assert!(matches!(err, Error::CommitConflict { .. }), "{err:?}");
    assert_eq!(
        env.keys("c409/").await,
        keys_before,
        "the losing run's files are deleted"
    );
    let got = read_committed(&clean, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got.num_rows(), 5_000, "the table is unchanged");
    proxy.shutdown().await;
}

/// A request that hangs is abandoned after the attempt timeout and retried; an operation
/// that hangs every time fails at its total deadline with an error that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_request_is_retried_and_bounded_by_a_total_deadline() {
    let env = TestEnv::start().await;
    let proxy = FaultProxy::start(
        env.s3.addr(),
        FaultConfig {
            hang: Some(("/part-".into(), 1)),
            ..FaultConfig::default()
        },
    )
    .await
    .unwrap();
    let s3 = |attempts: u32| connector_sdk::S3Options {
        max_attempts: Some(attempts),
        attempt_timeout_secs: Some(2),
        operation_timeout_secs: Some(5),
        ..TestEnv::s3_options(&proxy.endpoint())
    };
    let store = S3Store::connect(&s3(10)).await;
    let options = ExtractOptions::new(env.output("hang"));
    let config = demo(5_000, 5_000);
    let report = core(&store, config.clone(), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .expect("the hanging upload is retried");
    assert_eq!(report.rows, 5_000);
    assert!(report.s3_retries >= 1, "{report:?}");
    let got = read_committed(&env.store().await, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&config, 1, 5_000));

    // Every attempt hangs: the operation gives up at its 5 s deadline, not after
    // 50 attempts × 2 s.
    proxy.set_config(FaultConfig {
        hang: Some(("/part-".into(), u32::MAX)),
        ..FaultConfig::default()
    });
    let patient = S3Store::connect(&s3(50)).await;
    let started = std::time::Instant::now();
    let err = core(&patient, demo(9_000, 5_000), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .expect_err("an upload that always hangs fails");
    let msg = err.to_string();
    assert!(
        msg.contains("time limit") || msg.contains("timed out"),
        "{msg}"
    );
    assert!(err.is_retryable(), "{err:?}");
    // Generous bound (loaded machines), far below 50 × 2 s of attempts.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        read_committed(&env.store().await, &options.output, ORDERS, "order_id")
            .await
            .unwrap()
            .num_rows(),
        5_000,
        "nothing of the failed run is visible"
    );
    proxy.shutdown().await;
}

/// A partition that emits no checkpoint before its end (a stream without a key) cannot
/// stop part way: the run's deadline abandons it (its files deleted, nothing of it
/// committed, it restarts from its beginning), so a deadline runner never overruns on it;
/// a commit interval lets it finish instead. Before, the stop waited for its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_without_checkpoints_is_abandoned_at_the_deadline_not_run_past_it() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    // Two partitions of 8 batches, 100 ms each, one checkpoint at each partition's end.
    let config = OrdersDemoConfig {
        batch_delay_ms: 100,
        checkpoint_every: 1_000,
        ..demo(64_000, 32_000)
    };
    let mut options = ExtractOptions::new(env.output("keyless"));
    options.max_concurrent_partitions = 1;
    options.parquet.target_file_bytes = 16 << 10;
    let stop = StopSignal::new()
        .with_deadline(Some(std::time::Instant::now() + Duration::from_millis(300)));
    let started = std::time::Instant::now();
    let partial = core(&store, config.clone(), options.clone())
        .run(ORDERS, &stop)
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(partial.status, RunStatus::Partial);
    assert_eq!(
        (partial.rows, partial.files, partial.partitions_done),
        (0, 0, 0),
        "the first partition was abandoned, not read to its end: {partial:?} in {took:?}"
    );
    let pending = Dataset::new(store.clone(), options.output.clone(), ORDERS)
        .latest()
        .await
        .unwrap()
        .expect("a partial commit")
        .state
        .pending
        .expect("a pending plan");
    assert!(
        pending
            .partitions
            .iter()
            .all(|p| !p.done && p.checkpoint.is_none())
    );
    // The abandoned partition's finished files are gone: only the table's log remains.
    assert!(
        !env.keys("keyless/orders/")
            .await
            .iter()
            .any(|k| k.contains("part-")),
        "{:?}",
        env.keys("keyless/orders/").await
    );

    // A 1 s commit interval does not abandon it: the run reads it to its end and the
    // whole stream lands exactly.
    options.commit_interval.secs = 1;
    let report = core(&store, config.clone(), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Complete);
    assert_eq!(report.rows, 64_000);
    let got = read_committed(&store, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&config, 1, 64_000));
}

/// `sse_kms_key_id` and `expected_bucket_owner` reach every request of a run, as the
/// proxy in front of the server sees them: the owner on every request to the output
/// bucket, SSE-KMS with the key on every object written (single puts, multipart uploads
/// and the Delta commit); the data lands exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_carries_the_bucket_owner_and_every_write_sse_kms() {
    let env = TestEnv::start().await;
    let proxy = FaultProxy::start(env.s3.addr(), FaultConfig::default())
        .await
        .unwrap();
    let store = S3Store::connect(&TestEnv::s3_options(&proxy.endpoint())).await;
    // One multipart file (5 MiB parts) and several single-put files.
    let config = demo(600_000, 300_000);
    let mut options = ExtractOptions::new(env.output("secure"));
    options.upload.part_bytes = 5 * 1024 * 1024;
    options.parquet.dictionary = Dictionary::Always;
    options.sse_kms_key_id = Some("alias/connector-output".into());
    options.expected_bucket_owner = Some("123456789012".into());
    let report = core(&store, config.clone(), options.clone())
        .run(ORDERS, &StopSignal::new())
        .await
        .unwrap();
    assert_eq!(report.rows, 600_000);
    let seen = proxy.seen();
    assert!(seen.len() > 5, "{seen:?}");
    for r in &seen {
        assert_eq!(
            r.header("x-amz-expected-bucket-owner"),
            Some("123456789012"),
            "{} {}?{}",
            r.method,
            r.path,
            r.query
        );
        let is_upload_part = r.query.contains("partNumber=");
        let writes_an_object = (r.method == "PUT" && !is_upload_part)
            || (r.method == "POST"
                && r.query
                    .split('&')
                    .any(|q| q == "uploads" || q == "uploads="));
        if writes_an_object {
            assert_eq!(
                (
                    r.header("x-amz-server-side-encryption"),
                    r.header("x-amz-server-side-encryption-aws-kms-key-id")
                ),
                (Some("aws:kms"), Some("alias/connector-output")),
                "{} {}?{}",
                r.method,
                r.path,
                r.query
            );
        }
    }
    let creates = seen
        .iter()
        .filter(|r| r.method == "POST" && r.query.contains("uploads"))
        .count();
    let log_puts = seen
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/_delta_log/"))
        .count();
    assert!(
        creates >= 1 && log_puts >= 1,
        "multipart {creates}, log {log_puts}"
    );
    let got = read_committed(&env.store().await, &options.output, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&config, 1, 600_000));
    proxy.shutdown().await;
}
