//! Test support: a real local S3 server per test, S3 clients for it, reading a committed
//! dataset back, and locating/running the connector binaries as processes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::{Int64Type, SchemaRef};
use connector_sdk::{Dataset, OutputLocation, S3Options, S3Store, StaticCredentials};
use local_s3::LocalS3;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub mod ecs_metadata;
pub mod http_server;
pub mod json_server;
pub mod otlp_receiver;
pub mod postgres_server;
pub mod runtime_api;

/// The bucket every test writes to.
pub const BUCKET: &str = "test-bucket";

/// A local S3 server with one bucket, in a temporary directory.
#[derive(Debug)]
pub struct TestEnv {
    /// The server.
    pub s3: LocalS3,
    /// Its data directory (and room for config files).
    pub dir: tempfile::TempDir,
}

impl TestEnv {
    /// Start a server with bucket [`BUCKET`].
    pub async fn start() -> TestEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let s3 = LocalS3::start(dir.path().join("s3"))
            .await
            .expect("local S3 starts");
        s3.create_bucket(BUCKET).expect("bucket");
        TestEnv { s3, dir }
    }

    /// The server's endpoint.
    pub fn endpoint(&self) -> String {
        self.s3.endpoint()
    }

    /// S3 options for `endpoint` with the local server's credentials.
    pub fn s3_options(endpoint: &str) -> S3Options {
        S3Options {
            endpoint_url: Some(endpoint.to_string()),
            region: Some(local_s3::REGION.into()),
            max_attempts: Some(10),
            attempt_timeout_secs: None,
            operation_timeout_secs: None,
            static_credentials: Some(StaticCredentials {
                access_key_id: local_s3::ACCESS_KEY.into(),
                secret_access_key: local_s3::SECRET_KEY.into(),
            }),
        }
    }

    /// A store talking to the server directly.
    pub async fn store(&self) -> S3Store {
        S3Store::connect(&Self::s3_options(&self.endpoint())).await
    }

    /// An output location in the test bucket.
    pub fn output(&self, prefix: &str) -> OutputLocation {
        format!("s3://{BUCKET}/{prefix}")
            .parse()
            .expect("valid output")
    }

    /// Write `value` as a JSON file in the temp dir; returns its path.
    pub fn write_json(&self, name: &str, value: &serde_json::Value) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, serde_json::to_vec_pretty(value).expect("json")).expect("write");
        p
    }

    /// Environment for a connector process talking to `endpoint` as this server's client.
    pub fn process_env(endpoint: &str) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), endpoint.into()),
            ("AWS_ACCESS_KEY_ID".into(), local_s3::ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), local_s3::SECRET_KEY.into()),
            ("AWS_REGION".into(), local_s3::REGION.into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("RUST_LOG".into(), "info".into()),
        ]
    }

    /// Make every object and open multipart upload on the server `secs` older, as if
    /// that much time had passed (the server takes LastModified and Initiated from the
    /// files' modification times). For garbage-collection tests, whose grace periods
    /// are hours long.
    pub fn age_objects(&self, secs: u64) {
        fn walk(dir: &Path, by: std::time::Duration) {
            for entry in std::fs::read_dir(dir).expect("read server dir") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    walk(&path, by);
                    continue;
                }
                let file = std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .expect("open object file");
                let modified = file.metadata().and_then(|m| m.modified()).expect("mtime");
                file.set_modified(modified - by).expect("set mtime");
            }
        }
        walk(
            &self.dir.path().join("s3"),
            std::time::Duration::from_secs(secs),
        );
    }

    /// Every object key under `prefix` in the bucket (files on the server's disk).
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .store()
            .await
            .list(BUCKET, prefix)
            .await
            .expect("list")
            .into_iter()
            .map(|o| o.key)
            .collect();
        keys.sort();
        keys
    }
}

/// Read every Parquet file of the committed dataset of `stream`, as one batch sorted by
/// `sort_column` (an Int64 column), with the schema the files carry.
pub async fn read_committed(
    store: &S3Store,
    output: &OutputLocation,
    stream: &str,
    sort_column: &str,
) -> Option<RecordBatch> {
    let dataset = Dataset::new(store.clone(), output.clone(), stream);
    let files = dataset.committed_files().await.expect("manifests readable");
    let mut batches = Vec::new();
    let mut schema: Option<SchemaRef> = None;
    for f in files {
        let body = store
            .get(&output.bucket, &f.key)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("committed file {} is missing", f.key));
        assert_eq!(
            body.len() as u64,
            f.bytes,
            "size of {} differs from its manifest entry",
            f.key
        );
        let reader = ParquetRecordBatchReaderBuilder::try_new(body)
            .expect("parquet footer")
            .build()
            .expect("reader");
        let mut rows = 0;
        for b in reader {
            let b = b.expect("batch");
            rows += b.num_rows() as u64;
            schema.get_or_insert_with(|| b.schema());
            batches.push(b);
        }
        assert_eq!(
            rows, f.rows,
            "row count of {} differs from its manifest entry",
            f.key
        );
    }
    let schema = schema?;
    let all = concat_batches(&schema, &batches).expect("concat");
    Some(sort_batch(&all, sort_column))
}

/// The committed dataset of `stream` as read by pyarrow (a reader that is not ours), from
/// the server's files on disk, in commit order: `{"schema": [[name, type, nullable]],
/// "rows": N, "columns": {name: [values]}}` (see `python/read_parquet.py` for the value
/// forms). Needs the repository's `.venv` with pyarrow (`scripts/setup.d/60-readers.sh`).
pub async fn read_with_pyarrow(
    env: &TestEnv,
    output: &OutputLocation,
    stream: &str,
) -> serde_json::Value {
    let store = env.store().await;
    let files = Dataset::new(store, output.clone(), stream)
        .committed_files()
        .await
        .expect("manifests readable");
    let paths: Vec<PathBuf> = files
        .iter()
        .map(|f| env.dir.path().join("s3").join(&output.bucket).join(&f.key))
        .collect();
    let python = workspace_root().join(".venv/bin/python");
    let out = Command::new(&python)
        .arg(workspace_root().join("integration-tests/python/read_parquet.py"))
        .args(&paths)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "pyarrow failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from read_parquet.py")
}

/// The Delta table of `stream` as read by delta-rs (Python `deltalake`, a reader that is
/// not ours) from the server's files on disk: its latest snapshot, in the same JSON form as
/// [`read_with_pyarrow`]. Needs the repository's `.venv` (`scripts/setup.d/60-readers.sh`).
pub fn read_with_deltalake(
    env: &TestEnv,
    output: &OutputLocation,
    stream: &str,
) -> serde_json::Value {
    read_table_with(env, output, stream, "--delta")
}

/// The Delta table of `stream` as DuckDB's `delta_scan` reads it (DuckDB 1.4.4 with the
/// `duckdb-ext-delta` wheel), in the same JSON form as [`read_with_pyarrow`].
pub fn read_with_duckdb(env: &TestEnv, output: &OutputLocation, stream: &str) -> serde_json::Value {
    read_table_with(env, output, stream, "--duckdb")
}

/// Rows, distinct values, minimum and maximum of the integer column `key` of the Delta
/// table of `stream`, as delta-rs reads it: for tables too large to print whole (exact
/// when the keys are `1..=N`: rows = distinct = N, min 1, max N).
pub fn deltalake_key_summary(
    env: &TestEnv,
    output: &OutputLocation,
    stream: &str,
    key: &str,
) -> (u64, u64, Option<i64>, Option<i64>) {
    let v = read_table_with(env, output, stream, &format!("--delta-key\0{key}"));
    (
        v["rows"].as_u64().unwrap_or(0),
        v["distinct"].as_u64().unwrap_or(0),
        v["min"].as_i64(),
        v["max"].as_i64(),
    )
}

fn read_table_with(
    env: &TestEnv,
    output: &OutputLocation,
    stream: &str,
    reader: &str,
) -> serde_json::Value {
    let table = env
        .dir
        .path()
        .join("s3")
        .join(&output.bucket)
        .join(output.key(stream));
    let python = workspace_root().join(".venv/bin/python");
    let out = Command::new(&python)
        .arg(workspace_root().join("integration-tests/python/read_parquet.py"))
        .arg(reader.split('\0').next().unwrap_or(reader))
        .arg(&table)
        .args(reader.split('\0').skip(1))
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{reader} failed to read {}: {}",
        table.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from read_parquet.py")
}

/// The row order that sorts pyarrow's `read` (from [`read_with_pyarrow`]) by its integer
/// column `column`: `order[k]` is the index of the k-th smallest row.
pub fn pyarrow_order_by(read: &serde_json::Value, column: &str) -> Vec<usize> {
    let ids: Vec<i64> = read["columns"][column]
        .as_array()
        .unwrap_or_else(|| panic!("pyarrow read no column `{column}`"))
        .iter()
        .map(|v| v.as_i64().expect("integer key"))
        .collect();
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i]);
    order
}

/// The CloudWatch Embedded Metric Format lines in `log` (JSON lines with an `_aws` key).
pub fn emf_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect()
}

/// Assert `emf` is the metric line of `report` (a run report as JSON): the metrics
/// declared under `_aws` with the report's values, the dimensions set.
pub fn assert_emf_matches_report(emf: &serde_json::Value, report: &serde_json::Value) {
    let declared = &emf["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(declared["Namespace"], "ConnectorRuntime", "{emf}");
    assert_eq!(
        declared["Dimensions"],
        serde_json::json!([["Connector", "Stream", "Runner"]])
    );
    let names: Vec<&str> = declared["Metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| m["Name"].as_str().expect("name"))
        .collect();
    for (metric, field) in [
        ("Rows", "rows"),
        ("Bytes", "bytes"),
        ("Files", "files"),
        ("Partitions", "partitions"),
        ("PartitionsDone", "partitions_done"),
        ("S3Retries", "s3_retries"),
        ("DurationMs", "duration_ms"),
    ] {
        assert!(names.contains(&metric), "{metric} not declared: {emf}");
        assert_eq!(emf[metric], report[field], "{metric}: {emf} vs {report}");
    }
    // The cursor lag, when the connector knows it, and only then.
    let lag = report.get("cursor_lag_secs").filter(|v| !v.is_null());
    assert_eq!(names.contains(&"CursorLagSeconds"), lag.is_some(), "{emf}");
    assert_eq!(emf.get("CursorLagSeconds"), lag, "{emf} vs {report}");
    assert_eq!(emf["Connector"], report["connector"]);
    assert_eq!(emf["Stream"], report["stream"]);
    assert_eq!(emf["Runner"], report["runner"]);
    assert_eq!(emf["RunId"], report["run_id"]);
}

/// `batch` sorted by the Int64 column `column`.
pub fn sort_batch(batch: &RecordBatch, column: &str) -> RecordBatch {
    let col = batch.column_by_name(column).expect("sort column");
    let idx = sort_to_indices(col, None, None).expect("sort");
    take_record_batch(batch, &idx).expect("take")
}

/// Assert that the Int64 column `column` has no duplicates and is exactly `first..=last`.
pub fn assert_ids_exact(batch: &RecordBatch, column: &str, first: i64, last: i64) {
    let ids = batch
        .column_by_name(column)
        .expect("id column")
        .as_primitive::<Int64Type>();
    assert_eq!(ids.null_count(), 0);
    let expected: Vec<i64> = (first..=last).collect();
    let got: Vec<i64> = ids.values().to_vec();
    if got != expected {
        let dup = got.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]);
        panic!(
            "ids differ: expected {} rows {first}..={last}, got {} rows (first duplicate: {dup:?})",
            expected.len(),
            got.len()
        );
    }
}

/// Path of a workspace binary, built once per test process with cargo if needed.
pub fn binary(package: &str, bin: &str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<Vec<String>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    let path = target_dir().join("debug").join(bin);
    // The test command builds every binary first and says so: running cargo again from
    // inside a test sees the test's environment (variables build scripts watch) and
    // can rebuild half the dependency tree.
    let prebuilt = std::env::var_os("INTEGRATION_TESTS_PREBUILT").is_some() && path.is_file();
    if !prebuilt && !built.contains(&bin.to_string()) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            // --workspace: the same feature unification as the test command's build,
            // so an already-built binary is not rebuilt with other features.
            .args(["build", "--quiet", "--workspace", "--bin", bin])
            .current_dir(workspace_root())
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "building {bin} (package {package}) failed"
        );
        built.push(bin.to_string());
    }
    path
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}
