//! Quickstart: the demo connector end to end into an embedded local S3 server.
//! No AWS account, no configuration. Data lands under `./quickstart-data/`.

use std::path::Path;
use std::process::ExitCode;

use connector_sdk::{
    Dataset, ExtractCore, ExtractOptions, S3Options, S3Store, StaticCredentials, StopSignal,
};
use orders_demo::{ORDERS, OrdersDemo, OrdersDemoConfig};

const BUCKET: &str = "quickstart";

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = connector_cli::init_tracing_with_default(true, "warn", "orders-demo");
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let root = Path::new("quickstart-data");
    if root.exists() {
        std::fs::remove_dir_all(root)?;
    }
    let s3 = local_s3::LocalS3::start(root).await?;
    s3.create_bucket(BUCKET)?;
    println!(
        "local S3 server: {} (data under {})",
        s3.endpoint(),
        root.display()
    );

    let store = S3Store::connect(&S3Options {
        endpoint_url: Some(s3.endpoint()),
        region: Some(local_s3::REGION.into()),
        max_attempts: None,
        attempt_timeout_secs: None,
        operation_timeout_secs: None,
        static_credentials: Some(StaticCredentials {
            access_key_id: local_s3::ACCESS_KEY.into(),
            secret_access_key: local_s3::SECRET_KEY.into(),
        }),
    })
    .await;
    let config = OrdersDemoConfig {
        rows: 1_000_000,
        ..Default::default()
    };
    let options = ExtractOptions::new(format!("s3://{BUCKET}/demo").parse()?);
    let core = ExtractCore::new(OrdersDemo, config, store.clone(), options.clone(), "cli")?;
    let bar = connector_cli::progress_bar(core.progress(), ORDERS);
    let report = core.run(ORDERS, &StopSignal::new()).await;
    bar.finish_and_clear();
    let report = report?;

    let dataset = Dataset::new(store, options.output.clone(), ORDERS);
    let mut files = dataset.committed_files().await?;
    files.sort_by(|a, b| a.key.cmp(&b.key));
    println!();
    println!(
        "extracted {} rows of `{ORDERS}` in {} ms ({:.0} rows/s)",
        report.rows,
        report.duration_ms,
        report.rows_per_sec()
    );
    println!("Delta table files ({}):", files.len());
    for f in &files {
        println!(
            "  s3://{BUCKET}/{}  ({} rows, {} bytes)  -> {}",
            f.key,
            f.rows,
            f.bytes,
            root.join(BUCKET).join(&f.key).display()
        );
    }
    if let Some(m) = &report.manifest {
        let key = m.trim_start_matches(&format!("s3://{BUCKET}/"));
        println!(
            "commit (Delta log entry): {m}  -> {}",
            root.join(BUCKET).join(key).display()
        );
    }
    println!(
        "row count (from the table's snapshot): {}",
        files.iter().map(|f| f.rows).sum::<u64>()
    );
    let table = root.join(BUCKET).join(options.output.key(ORDERS));
    println!();
    println!(
        "query the table with any Delta Lake reader, e.g. Python (pip install deltalake pyarrow):"
    );
    println!(
        "  python3 -c \"from deltalake import DeltaTable; t = DeltaTable('{}').to_pyarrow_table(); print(t.num_rows, t.schema)\"",
        table.display()
    );
    println!("or DuckDB:");
    println!(
        "  duckdb -c \"INSTALL delta; LOAD delta; SELECT count(*), sum(amount) FROM delta_scan('{}')\"",
        std::path::absolute(&table)
            .unwrap_or(table.clone())
            .display()
    );
    s3.shutdown().await;
    Ok(())
}
