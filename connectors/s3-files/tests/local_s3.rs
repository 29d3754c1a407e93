//! The S3 file connector against the local S3 server: objects are put into the server, the
//! connector reads them back through its own S3 client and commits a table through the
//! core; tables are compared with the rows the objects were made from, and the split
//! object with pyarrow reading it whole (a reader that is not ours).

mod support;

use std::process::Command;

use arrow::array::RecordBatch;
use bytes::Bytes;
use connector_sdk::{Error, ExtractCore, ExtractOptions, RunReport, StopSignal};
use integration_tests::{BUCKET, TestEnv, read_committed, workspace_root};
use s3_files::{S3Files, S3FilesConfig};
use serde_json::{Value, json};
use support::*;

async fn put(env: &TestEnv, key: &str, body: Vec<u8>) {
    env.store()
        .await
        .put(BUCKET, key, Bytes::from(body), false)
        .await
        .expect("put");
}

fn config(env: &TestEnv, streams: Value) -> Value {
    let secret = env.dir.path().join("s3-secret");
    std::fs::write(&secret, local_s3::SECRET_KEY).unwrap();
    json!({
        "bucket": BUCKET,
        "connection": {
            "endpoint_url": env.endpoint(),
            "region": local_s3::REGION,
            "access_key_id": local_s3::ACCESS_KEY,
            "secret_access_key": {"file": secret}
        },
        "rejects": format!("s3://{BUCKET}/rejects"),
        "streams": streams
    })
}

fn stream(name: &str, prefix: &str, glob: Option<&str>, format: Value) -> Value {
    let mut s = json!({"name": name, "prefix": prefix, "format": format, "schema": columns(), "batch_rows": 333});
    if let Some(g) = glob {
        s["glob"] = json!(g);
    }
    s
}

fn csv_format() -> Value {
    json!({"type": "csv"})
}

async fn core(env: &TestEnv, config: &Value, prefix: &str) -> ExtractCore<S3Files> {
    let config: S3FilesConfig = serde_json::from_value(config.clone()).expect("valid config");
    ExtractCore::new(
        S3Files,
        config,
        env.store().await,
        ExtractOptions::new(env.output(&format!("out/{prefix}"))),
        "test",
    )
    .expect("core")
}

async fn run(env: &TestEnv, config: &Value, prefix: &str, stream: &str) -> RunReport {
    core(env, config, prefix)
        .await
        .run(stream, &StopSignal::new())
        .await
        .unwrap_or_else(|e| panic!("extract {stream}: {e}"))
}

async fn table(env: &TestEnv, prefix: &str, stream: &str) -> RecordBatch {
    read_committed(
        &env.store().await,
        &env.output(&format!("out/{prefix}")),
        stream,
        "id",
    )
    .await
    .expect("a committed table")
}

/// Column by column, so a difference names the column.
fn assert_same(got: &RecordBatch, want: &RecordBatch) {
    assert_eq!(got.num_rows(), want.num_rows(), "row count");
    for (i, f) in want.schema().fields().iter().enumerate() {
        let g = got
            .column_by_name(f.name())
            .unwrap_or_else(|| panic!("no column {}", f.name()));
        assert_eq!(g.data_type(), f.data_type(), "type of {}", f.name());
        if g.as_ref() != want.column(i).as_ref() {
            let row = (0..want.num_rows())
                .find(|&r| g.slice(r, 1).as_ref() != want.column(i).slice(r, 1).as_ref())
                .unwrap_or(0);
            panic!(
                "column {} differs first at row {row}: {:?} vs {:?}",
                f.name(),
                g.slice(row, 1),
                want.column(i).slice(row, 1)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_and_compression_ingests_exactly() {
    let env = TestEnv::start().await;
    let half = |a: &[u8]| a.len() / 2;
    // CSV: plain, gzip (two members: the header and first rows, then the rest), zstd (two
    // frames). JSON Lines likewise. Parquet in row groups of 100.
    let csv_gz = csv(1001..=1500);
    let (a, b) = csv_gz.split_at(half(&csv_gz));
    let b = b.to_vec();
    put(&env, "landing/csv/a.csv", csv(1..=500)).await;
    put(&env, "landing/csv/sub/b.csv.gz", gzip(&[a, &b])).await;
    let csv_zst = csv(2001..=2500);
    let (a, b) = csv_zst.split_at(half(&csv_zst));
    put(&env, "landing/csv/c.csv.zst", zstd(&[a, b])).await;
    put(
        &env,
        "landing/csv/empty.csv",
        b"id,name,amount,day,at,flag\n".to_vec(),
    )
    .await;
    put(&env, "landing/csv/zero.csv", Vec::new()).await;
    put(
        &env,
        "landing/csv/notes.txt",
        b"not matched by the glob".to_vec(),
    )
    .await;
    put(&env, "landing/json/a.jsonl", jsonl(3001..=3400)).await;
    let j = jsonl(3401..=3800);
    let (a, b) = j.split_at(half(&j));
    put(&env, "landing/json/b.jsonl.gz", gzip(&[a, b])).await;
    put(
        &env,
        "landing/json/c.jsonl.zst",
        zstd(&[&jsonl(3801..=4000)]),
    )
    .await;
    put(&env, "landing/parquet/a.parquet", parquet(5001..=5999, 100)).await;

    let c = config(
        &env,
        json!([
            stream("csv_files", "landing/csv/", Some("**/*.csv*"), csv_format()),
            stream(
                "json_files",
                "landing/json/",
                None,
                json!({"type": "jsonl"})
            ),
            stream(
                "parquet_files",
                "landing/parquet/",
                Some("*.parquet"),
                json!({"type": "parquet"})
            ),
        ]),
    );
    let want = |ranges: &[std::ops::RangeInclusive<i64>]| {
        batch(ranges.iter().flat_map(|r| r.clone()).collect::<Vec<_>>())
    };
    let r = run(&env, &c, "formats", "csv_files").await;
    assert_eq!(r.partitions, 5, "a, b, c, empty and zero, not notes.txt");
    assert_same(
        &table(&env, "formats", "csv_files").await,
        &want(&[1..=500, 1001..=1500, 2001..=2500]),
    );
    run(&env, &c, "formats", "json_files").await;
    assert_same(
        &table(&env, "formats", "json_files").await,
        &want(&[3001..=4000]),
    );
    run(&env, &c, "formats", "parquet_files").await;
    assert_same(
        &table(&env, "formats", "parquet_files").await,
        &want(&[5001..=5999]),
    );

    // A schema inferred from the first object: the CSV's own column names and types.
    let mut inferred = stream("inferred", "landing/csv/", Some("a.csv"), csv_format());
    inferred.as_object_mut().unwrap().remove("schema");
    let c = config(&env, json!([inferred]));
    let d =
        connector_sdk::Connector::discover(&S3Files, &serde_json::from_value(c.clone()).unwrap())
            .await
            .unwrap();
    let names: Vec<&str> = d[0]
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["id", "name", "amount", "day", "at", "flag"]);
    assert_eq!(run(&env, &c, "inferred", "inferred").await.rows, 500);
}

/// pyarrow reads the CSV object whole from the server's disk, delta-rs reads the table;
/// the rows must be equal. Prints the row count.
fn pyarrow_equals_table(env: &TestEnv, key: &str, prefix: &str, stream: &str) -> u64 {
    let object = env.dir.path().join("s3").join(BUCKET).join(key);
    let table = env
        .dir
        .path()
        .join("s3")
        .join(BUCKET)
        .join("out")
        .join(prefix)
        .join(stream);
    let script = r#"
import sys, pyarrow as pa, pyarrow.csv as pc, pyarrow.compute as pcomp, deltalake
schema = pa.schema([("id", pa.int64()), ("name", pa.string()), ("amount", pa.float64()),
                    ("day", pa.date32()), ("at", pa.timestamp("us", tz="UTC")), ("flag", pa.bool_())])
src = pc.read_csv(sys.argv[1], convert_options=pc.ConvertOptions(column_types=schema, strings_can_be_null=True, quoted_strings_can_be_null=False))
src = src.select(schema.names).cast(schema).sort_by("id")
got = deltalake.DeltaTable(sys.argv[2]).to_pyarrow_table().select(schema.names).cast(schema).sort_by("id")
if not src.equals(got):
    for name in schema.names:
        if not src[name].equals(got[name]):
            print(f"column {name} differs; rows {src.num_rows} vs {got.num_rows}", file=sys.stderr)
    sys.exit(1)
print(src.num_rows)
"#;
    let out = Command::new(workspace_root().join(".venv/bin/python"))
        .args(["-c", script])
        .arg(&object)
        .arg(&table)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "pyarrow and the table differ: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_object_split_into_ranges_equals_reading_it_whole() {
    let env = TestEnv::start().await;
    // ~14 MiB of CSV, in ranges of 257 KiB (an odd size: boundaries fall anywhere in a
    // record, on its line break, and right after it).
    let rows = 120_000;
    let body = csv(1..=rows);
    let size = body.len() as u64;
    put(&env, "big/orders.csv", body).await;
    let mut s = stream("big", "big/", None, csv_format());
    s["split_bytes"] = json!(257 * 1024);
    s["batch_rows"] = json!(4096);
    let c = config(&env, json!([s]));
    let report = run(&env, &c, "split", "big").await;
    // Full ranges, and the last stretch in four halving pieces: two partitions more than
    // ranges of 257 KiB alone.
    assert_eq!(report.partitions, size.div_ceil(257 * 1024) + 2);
    assert_eq!(report.rows, rows as u64);
    let t = table(&env, "split", "big").await;
    integration_tests::assert_ids_exact(&t, "id", 1, rows);
    assert_eq!(
        pyarrow_equals_table(&env, "big/orders.csv", "split", "big"),
        rows as u64
    );

    // Ranges of exactly one record's length and less: every boundary case of alignment.
    let small = csv(1..=40);
    put(&env, "tiny/t.csv", small).await;
    for split in [1024u64, 1100, 1500] {
        let mut s = stream("tiny", "tiny/", None, csv_format());
        s["split_bytes"] = json!(split);
        s["batch_rows"] = json!(7);
        let prefix = format!("tiny-{split}");
        run(&env, &config(&env, json!([s])), &prefix, "tiny").await;
        assert_same(&table(&env, &prefix, "tiny").await, &batch(1..=40));
    }
    // JSON Lines split the same way.
    put(&env, "jbig/a.jsonl", jsonl(1..=20_000)).await;
    let mut s = stream("jbig", "jbig/", None, json!({"type": "jsonl"}));
    s["split_bytes"] = json!(100_000);
    let r = run(&env, &config(&env, json!([s])), "jsplit", "jbig").await;
    assert!(r.partitions > 10, "{}", r.partitions);
    assert_same(&table(&env, "jsplit", "jbig").await, &batch(1..=20_000));
}

async fn rejects(env: &TestEnv) -> Vec<Value> {
    let store = env.store().await;
    let mut out: Vec<Value> = Vec::new();
    for key in env.keys("rejects/").await {
        let body = store.get(BUCKET, &key).await.unwrap().unwrap();
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            out.push(serde_json::from_slice(line).unwrap());
        }
    }
    out.sort_by_key(|v| {
        (
            v["object"].as_str().unwrap().to_string(),
            v["line"].as_u64(),
        )
    });
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_rows_go_to_rejects_with_their_line_numbers() {
    let env = TestEnv::start().await;
    // Rows 1..=300 with bad rows replacing some lines: line n holds row n - 1 (line 1 is
    // the header).
    let good = String::from_utf8(csv(1..=300)).unwrap();
    let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
    let bad: [(usize, &str); 4] = [
        (
            5,
            "not-a-number,\"x\",1.0,2024-01-01,2024-01-01T00:00:00Z,true",
        ),
        (
            77,
            "77,\"too\",1.0,2024-01-01,2024-01-01T00:00:00Z,true,extra",
        ),
        (
            150,
            "150,\"bad date\",1.0,2024-13-45,2024-01-01T00:00:00Z,true",
        ),
        (
            301,
            "300,\"bad bool\",1.0,2024-01-01,2024-01-01T00:00:00Z,maybe",
        ),
    ];
    for (line, text) in bad {
        lines[line - 1] = text.to_string();
    }
    let body = lines.join("\n") + "\n";
    let bad_ids = [4i64, 76, 149, 300];
    put(&env, "in/rows.csv", body.clone().into_bytes()).await;
    let mut s = stream("rows", "in/", None, csv_format());
    s["bad_rows"] = json!("reject");
    s["batch_rows"] = json!(64);
    run(&env, &config(&env, json!([s.clone()])), "rejects", "rows").await;
    let ids: Vec<i64> = (1..=300).filter(|i| !bad_ids.contains(i)).collect();
    assert_same(&table(&env, "rejects", "rows").await, &batch(ids.clone()));
    let r = rejects(&env).await;
    let got: Vec<u64> = r.iter().map(|v| v["line"].as_u64().unwrap()).collect();
    assert_eq!(got, [5, 77, 150, 301]);
    for (v, (line, text)) in r.iter().zip(bad) {
        assert_eq!(v["row"], text, "line {line}");
        assert_eq!(v["object"], format!("s3://{BUCKET}/in/rows.csv"));
        let offset: usize = lines[..line - 1].iter().map(|l| l.len() + 1).sum();
        assert_eq!(v["byte_offset"], offset, "line {line}");
        assert!(!v["reason"].as_str().unwrap().is_empty());
    }

    // The same object split into ranges: the line numbers of rows in later ranges are
    // still exact.
    put(&env, "split/rows.csv", body.into_bytes()).await;
    let mut s2 = s.clone();
    s2["name"] = json!("split_rows");
    s2["prefix"] = json!("split/");
    s2["split_bytes"] = json!(4096);
    run(
        &env,
        &config(&env, json!([s2])),
        "rejects-split",
        "split_rows",
    )
    .await;
    assert_same(
        &table(&env, "rejects-split", "split_rows").await,
        &batch(ids),
    );
    let lines_split: Vec<u64> = rejects(&env)
        .await
        .iter()
        .filter(|v| v["object"].as_str().unwrap().ends_with("split/rows.csv"))
        .map(|v| v["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines_split, [5, 77, 150, 301]);

    // bad_rows = fail: the object and line named, nothing committed.
    s["bad_rows"] = json!("fail");
    let e = core(&env, &config(&env, json!([s])), "fail")
        .await
        .run("rows", &StopSignal::new())
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!("s3://{BUCKET}/in/rows.csv line 5")),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
    assert!(env.keys("out/fail/rows/_delta_log").await.is_empty());
}

/// JSON Lines written as Python's `json.dumps` writes them (every character past ASCII
/// escaped, UTF-16 pairs past U+FFFF, characters of the planes arrow-json misreads too), in
/// batches read by
/// the SDK's flat-records path and batches with a malformed row that `arrow-json` reads:
/// the same values either way, the bad rows in the rejects with their lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_with_escapes_read_the_same_by_either_path_and_bad_rows_go_to_rejects() {
    let env = TestEnv::start().await;
    const ASTRAL: &str = "\u{20000} \u{2A6DF} \u{10FFFF} \u{1F600} \"é\"";
    let astral_ids = [10i64, 100, 149];
    let ascii_escaped = |v: &Value| -> String {
        let mut out = String::new();
        for c in v.to_string().chars() {
            if c.is_ascii() {
                out.push(c);
            } else {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        out
    };
    let text = String::from_utf8(jsonl(1..=300)).unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .zip(1i64..)
        .map(|(line, id)| {
            let mut v: Value = serde_json::from_str(line).unwrap();
            if astral_ids.contains(&id) {
                v["name"] = json!(ASTRAL);
            }
            ascii_escaped(&v)
        })
        .collect();
    assert!(lines[99].contains("\\ud840\\udc00"), "{}", lines[99]);
    // Batches of 64: the 1st and 3rd hold a bad row each (arrow-json reads them), the
    // others are read by the flat-records path.
    // (Escaped pairs in the bad rows too: the rejects keep the rows as the object has them.)
    let bad = [
        (5usize, "{\"id\":\"five \\ud840\\udc00\"}"),
        (
            150,
            "{\"id\":150,\"name\":\"\\ud840\\udc00\",\"day\":\"2024-13-45\"}",
        ),
    ];
    for (line, text) in bad {
        lines[line - 1] = text.to_string();
    }
    put(
        &env,
        "jx/rows.jsonl",
        (lines.join("\n") + "\n").into_bytes(),
    )
    .await;
    // The other batches are the flat-records path's: it reads this schema.
    assert!(connector_sdk::json_flat_lines::FlatLinesDecoder::new(&schema()).is_some());
    let mut s = stream("jx", "jx/", None, json!({"type": "jsonl"}));
    s["bad_rows"] = json!("reject");
    s["batch_rows"] = json!(64);
    run(&env, &config(&env, json!([s])), "jx", "jx").await;
    let ids: Vec<i64> = (1..=300).filter(|i| ![5, 150].contains(i)).collect();
    let want = batch(ids.clone());
    let names = arrow::array::StringArray::from_iter(ids.iter().map(|id| {
        if astral_ids.contains(id) {
            Some(ASTRAL.to_string())
        } else {
            row(*id).name
        }
    }));
    let mut columns = want.columns().to_vec();
    columns[1] = std::sync::Arc::new(names);
    let want = RecordBatch::try_new(want.schema(), columns).unwrap();
    assert_same(&table(&env, "jx", "jx").await, &want);
    let r = rejects(&env).await;
    let got: Vec<(u64, &str)> = r
        .iter()
        .map(|v| (v["line"].as_u64().unwrap(), v["row"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [(5, bad[0].1), (150, bad[1].1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_runs_ingest_each_object_version_once() {
    let env = TestEnv::start().await;
    put(&env, "inc/a.csv", csv(1..=100)).await;
    put(&env, "inc/b.csv", csv(101..=200)).await;
    let c = config(&env, json!([stream("inc", "inc/", None, csv_format())]));
    assert_eq!(run(&env, &c, "inc", "inc").await.rows, 200);
    let again = run(&env, &c, "inc", "inc").await;
    assert_eq!((again.rows, again.partitions), (0, 0), "nothing new");
    // A new object, and a changed one (a new ETag): both read, nothing else.
    put(&env, "inc/c.csv", csv(201..=250)).await;
    put(&env, "inc/a.csv", csv(1001..=1050)).await;
    let r = run(&env, &c, "inc", "inc").await;
    assert_eq!((r.rows, r.partitions), (100, 2));
    let ids: Vec<i64> = (1..=250).chain(1001..=1050).collect();
    assert_same(&table(&env, "inc", "inc").await, &batch(ids));
    assert_eq!(run(&env, &c, "inc", "inc").await.rows, 0);
}

/// A stopped run's pending plan names object versions; one replaced and one deleted
/// before the plan is continued are not read (the reads ask for the planned ETag, which
/// the local server enforces as S3 does) and the continuation completes instead of failing
/// on them forever; the replaced object's new version is the next run's, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_plan_continues_past_objects_replaced_or_deleted_since() {
    let env = TestEnv::start().await;
    for (format, ext, body) in [
        (
            "csv",
            "csv",
            csv as fn(std::ops::RangeInclusive<i64>) -> Vec<u8>,
        ),
        ("parquet", "parquet", |ids| parquet(ids, 7)),
    ] {
        let prefix = format!("chg-{format}/");
        put(&env, &format!("{prefix}a.{ext}"), body(1..=30)).await;
        put(&env, &format!("{prefix}b.{ext}"), body(31..=60)).await;
        put(&env, &format!("{prefix}c.{ext}"), body(61..=90)).await;
        let name = format!("chg_{format}");
        let c = config(
            &env,
            json!([stream(&name, &prefix, None, json!({"type": format}))]),
        );
        // Plan, then read and commit only a's partition: b and c stay pending.
        let core = core(&env, &c, &name).await;
        let plan = core.prepare(&name).await.unwrap();
        let a = plan
            .work
            .iter()
            .find(|w| {
                w.partition.spec["key"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("a.{ext}"))
            })
            .unwrap()
            .partition
            .id
            .clone();
        let result = core
            .extract_partition(&plan, &a, &StopSignal::new())
            .await
            .unwrap();
        let partial = core.commit(&plan, vec![result]).await.unwrap();
        assert_eq!(partial.rows, 30, "{format}");
        // b replaced, c deleted, before the plan is continued.
        put(&env, &format!("{prefix}b.{ext}"), body(1031..=1060)).await;
        env.store()
            .await
            .delete(BUCKET, &format!("{prefix}c.{ext}"))
            .await
            .unwrap();
        let r = run(&env, &c, &name, &name).await;
        assert_eq!(r.rows, 0, "{format}: the pending plan's b and c are gone");
        let next = run(&env, &c, &name, &name).await;
        assert_eq!(next.rows, 30, "{format}: b's new version");
        assert_eq!(run(&env, &c, &name, &name).await.rows, 0, "{format}");
        let ids: Vec<i64> = (1..=30).chain(1031..=1060).collect();
        assert_same(&table(&env, &name, &name).await, &batch(ids));
    }
}

/// The committed cursor of `stream` under `out/<prefix>`.
async fn cursor(env: &TestEnv, c: &Value, prefix: &str, stream: &str) -> Value {
    let latest = core(env, c, prefix)
        .await
        .dataset(stream)
        .latest()
        .await
        .expect("read the table")
        .expect("a commit");
    latest.state.cursor.expect("a cursor")
}

/// The cursor remembers each object's version only within the settle window and a
/// watermark below it, so it does not grow with every object ever ingested; objects
/// below the watermark are never read again, changed ones are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_remembers_only_the_settle_window_and_reads_nothing_twice() {
    let env = TestEnv::start().await;
    put(&env, "win/a.csv", csv(1..=10)).await;
    let mut s = stream("win", "win/", None, csv_format());
    s["settle_secs"] = json!(2);
    let c = config(&env, json!([s]));
    assert_eq!(run(&env, &c, "win", "win").await.rows, 10);
    let first = cursor(&env, &c, "win", "win").await;
    assert!(first["objects"].get("win/a.csv").is_some(), "{first}");

    // Past the window: a is forgotten by key and covered by the watermark.
    tokio::time::sleep(std::time::Duration::from_millis(3_200)).await;
    put(&env, "win/b.csv", csv(11..=20)).await;
    let r = run(&env, &c, "win", "win").await;
    assert_eq!((r.rows, r.partitions), (10, 1), "only b");
    let second = cursor(&env, &c, "win", "win").await;
    let objects: Vec<&String> = second["objects"].as_object().unwrap().keys().collect();
    assert_eq!(objects, ["win/b.csv"], "{second}");
    assert!(
        second["settled_before"].as_i64().unwrap()
            > first["modified"]["win/a.csv"].as_i64().unwrap(),
        "{second}"
    );
    assert_eq!(
        run(&env, &c, "win", "win").await.rows,
        0,
        "a is not read again"
    );
    // A run for an event's objects lists only those keys: it does not move the watermark.
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    put(&env, "win/d.csv", csv(21..=25)).await;
    let mut event = c.clone();
    event["objects"] = json!(["win/d.csv"]);
    assert_eq!(run(&env, &event, "win", "win").await.rows, 5);
    let third = cursor(&env, &event, "win", "win").await;
    assert_eq!(third["settled_before"], second["settled_before"], "{third}");

    // A changed object is modified again: above the watermark, read once.
    put(&env, "win/a.csv", csv(101..=110)).await;
    assert_eq!(run(&env, &c, "win", "win").await.rows, 10);
    assert_eq!(run(&env, &c, "win", "win").await.rows, 0);
    let ids: Vec<i64> = (1..=25).chain(101..=110).collect();
    assert_same(&table(&env, "win", "win").await, &batch(ids));

    // settle_secs 0 is refused by name.
    let mut bad = stream("win", "win/", None, csv_format());
    bad["settle_secs"] = json!(0);
    let e = core(&env, &config(&env, json!([bad])), "bad")
        .await
        .run("win", &StopSignal::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("settle_secs is 0"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_named_by_an_event_are_ingested_once() {
    let env = TestEnv::start().await;
    put(&env, "ev/a.csv", csv(1..=10)).await;
    put(&env, "ev/b.csv", csv(11..=20)).await;
    put(&env, "ev/c.csv", csv(21..=30)).await;
    let mut c = config(&env, json!([stream("ev", "ev/", None, csv_format())]));
    // A batch naming b twice and an object that no longer exists.
    c["objects"] = json!(["ev/b.csv", "ev/b.csv", "ev/gone.csv"]);
    let r = run(&env, &c, "ev", "ev").await;
    assert_eq!((r.rows, r.partitions), (10, 1));
    // The same event delivered again: nothing committed twice.
    assert_eq!(run(&env, &c, "ev", "ev").await.rows, 0);
    // A later sweep without an event picks up the others once.
    c.as_object_mut().unwrap().remove("objects");
    assert_eq!(run(&env, &c, "ev", "ev").await.rows, 20);
    assert_same(&table(&env, "ev", "ev").await, &batch(1..=30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_and_bad_objects_are_one_clear_line() {
    let env = TestEnv::start().await;
    put(&env, "gz/not-gzip.csv.gz", csv(1..=10)).await;
    let c = config(&env, json!([stream("gz", "gz/", None, csv_format())]));
    let e = core(&env, &c, "gz")
        .await
        .run("gz", &StopSignal::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("compressed"), "{e}");
    assert!(env.keys("out/gz/gz/_delta_log").await.is_empty());
    let parse = |patch: Value| -> String {
        let mut c = config(&env, json!([stream("s", "p/", None, csv_format())]));
        for (k, v) in patch.as_object().unwrap() {
            if k == "stream" {
                for (sk, sv) in v.as_object().unwrap() {
                    c["streams"][0][sk] = sv.clone();
                }
            } else {
                c[k] = v.clone();
            }
        }
        let parsed: Result<S3FilesConfig, _> = serde_json::from_value(c);
        match parsed {
            Err(e) => e.to_string(),
            Ok(p) => s3_files::config::validate(&p).unwrap_err().to_string(),
        }
    };
    assert!(parse(json!({"bucket": "s3://b/x"})).contains("not a bucket name"));
    assert!(parse(json!({"stream": {"split_bytes": 1023}})).contains("split_bytes"));
    assert!(parse(json!({"stream": {"bad_rows": "reject"}, "rejects": null})).contains("rejects"));
    assert!(
        parse(json!({"stream": {"format": {"type": "csv", "delimiter": ";;"}}}))
            .contains("delimiter")
    );
    assert!(parse(json!({"stream": {"glob": "[a"}})).contains("glob"));
    assert!(parse(json!({"stream": {"format": {"type": "xml"}}})).contains("xml"));
    // An unreachable endpoint names host and port, not the secret.
    let mut c = config(&env, json!([stream("s", "p/", None, csv_format())]));
    c["connection"]["endpoint_url"] = json!("http://127.0.0.1:9");
    let e = core(&env, &c, "unreachable")
        .await
        .run("s", &StopSignal::new())
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(!text.contains(local_s3::SECRET_KEY), "{text}");
    assert!(matches!(e, Error::Connector(_)), "{e}");
}

/// SIGKILLed inside a gzip object after two intermediate commits: the table holds a clean
/// prefix of the object (each committed checkpoint inside it), nothing of the killed
/// interval; the re-run resumes inside the object and the table is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_object_then_rerun_is_exact() {
    use tokio::io::AsyncBufReadExt;
    let env = TestEnv::start().await;
    let rows = 1_000_000;
    put(&env, "kill/a.csv.gz", gzip(&[&csv(1..=rows)])).await;
    let mut s = stream("kill", "kill/", None, csv_format());
    s["batch_rows"] = json!(2000);
    // The process reaches the source with the runner's settings (the environment).
    let mut c = config(&env, json!([s]));
    c.as_object_mut().unwrap().remove("connection");
    let config_path = env.write_json("kill.json", &c);
    let output = format!("s3://{BUCKET}/out/kill");
    let command = || {
        let mut cmd =
            tokio::process::Command::new(integration_tests::binary("s3-files", "s3-files"));
        cmd.args(["extract", "--config"])
            .arg(&config_path)
            .args(["--output", &output, "--stream", "kill"])
            .args([
                "--target-file-size",
                "256KiB",
                "--concurrency",
                "1",
                "--commit-interval-size",
                "1MiB",
            ])
            .envs(TestEnv::process_env(&env.endpoint()))
            .env("RUST_LOG", "debug,aws=warn,hyper=warn,h2=warn,rustls=warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        cmd
    };
    let mut child = command().spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut commits = 0;
    let mut killed = false;
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains("intermediate commit; reading on") {
            commits += 1;
        }
        if commits >= 2 && line.contains("\"message\":\"file written\"") {
            child.start_kill().unwrap();
            killed = true;
            break;
        }
    }
    child.wait().await.unwrap();
    assert!(
        killed,
        "the run ended before its second intermediate commit"
    );
    let after_kill = table(&env, "kill", "kill").await;
    let n = after_kill.num_rows() as i64;
    assert!(n > 0 && n < rows, "{n} rows committed before the kill");
    integration_tests::assert_ids_exact(&after_kill, "id", 1, n);

    let out = command().output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = table(&env, "kill", "kill").await;
    assert_same(&t, &batch(1..=rows));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_makes_the_table_the_whole_source_every_run() {
    let env = TestEnv::start().await;
    put(&env, "rep/a.csv", csv(1..=100)).await;
    put(&env, "rep/b.csv", csv(101..=150)).await;
    let mut s = stream("rep", "rep/", None, csv_format());
    s["write_disposition"] = json!("replace");
    let c = config(&env, json!([s]));
    run(&env, &c, "rep", "rep").await;
    assert_same(&table(&env, "rep", "rep").await, &batch(1..=150));
    put(&env, "rep/c.csv", csv(151..=160)).await;
    run(&env, &c, "rep", "rep").await;
    assert_same(&table(&env, "rep", "rep").await, &batch(1..=160));
    // Nothing new: still the whole source, never an empty table.
    run(&env, &c, "rep", "rep").await;
    assert_same(&table(&env, "rep", "rep").await, &batch(1..=160));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_endings_blank_lines_and_headers() {
    let env = TestEnv::start().await;
    let text = String::from_utf8(csv(1..=50)).unwrap();
    // CRLF line endings, blank lines first and between rows, no final line break.
    let crlf = format!(
        "\r\n\n{}",
        text.replace('\n', "\r\n")
            .replacen("\r\n5,", "\r\n\r\n5,", 1)
    );
    put(&env, "le/crlf.csv", crlf.trim_end().as_bytes().to_vec()).await;
    let c = config(
        &env,
        json!([stream("le", "le/", Some("crlf.csv"), csv_format())]),
    );
    run(&env, &c, "le", "le").await;
    assert_same(&table(&env, "le", "le").await, &batch(1..=50));
    // Carriage returns alone: not split into rows by the reader, so a clear error, not
    // rows lost in silence.
    put(&env, "cr/cr.csv", text.replace('\n', "\r").into_bytes()).await;
    let c = config(&env, json!([stream("cr", "cr/", None, csv_format())]));
    let e = core(&env, &c, "cr")
        .await
        .run("cr", &StopSignal::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("carriage return"), "{e}");
    assert!(env.keys("out/cr/cr/_delta_log").await.is_empty());
    // An unbalanced quote swallowing the following rows is an error, not fewer rows.
    let broken = text.replacen("\n3,\"", "\n3,\"\"", 1);
    put(&env, "uq/u.csv", broken.into_bytes()).await;
    let c = config(&env, json!([stream("uq", "uq/", None, csv_format())]));
    let e = core(&env, &c, "uq")
        .await
        .run("uq", &StopSignal::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not fit"), "{e}");
}
