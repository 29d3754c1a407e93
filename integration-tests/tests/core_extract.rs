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
        msg.contains("HTTP 503") && msg.contains("HeadBucket"),
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
