//! A connector for the Glue runner tests: the demo connector's orders, plus a fault that
//! fires exactly once (the first attempt at reading a chosen order fails, every later
//! attempt succeeds: a marker file records that it fired).
//!
//! With `GLUE_TEST_CONNECTOR=no-glue` its manifest does not declare `glue`. Every connector
//! method appends its name to the file named by `GLUE_TEST_CALLS`, so a test can prove
//! that nothing was called.

use std::io::Write;
use std::path::PathBuf;

use connector_sdk::futures::StreamExt;
use connector_sdk::{
    Connector, ConnectorError, ConnectorErrorKind, Partition, Plan, ReadContext, ReadItem,
    ReadStream, StreamDescriptor, async_trait,
};
use orders_demo::{OrderId, OrderRange, OrdersDemo, OrdersDemoConfig};
use schemars::JsonSchema;
use serde::Deserialize;

/// The test connector's config.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TestConfig {
    /// The demo source (see `OrdersDemoConfig`).
    demo: OrdersDemoConfig,
    /// Fail the first read of this order id only (`None`: never).
    #[serde(default)]
    fail_once_at_order_id: Option<u64>,
    /// Marker file created when the fault fires; while it exists the fault stays quiet.
    #[serde(default)]
    fail_once_marker: Option<PathBuf>,
}

/// `GLUE = true`: the manifest declares `glue`; `false`: only `fargate`.
struct TestConnector<const GLUE: bool>;

const WITH_GLUE: &str = r#"
name = "glue-test-connector"
version = "0.1.0"
description = "Demo orders with a fault that fires once"
data_classification = "public"

[[streams]]
name = "orders"
incremental = true

[runners.glue]
memory_mb = 16384
vcpu = 4
max_runtime_secs = 600
worker_type = "G.1X"
workers = 2

[[networking]]
pattern = "vpc-endpoint"
endpoints = ["s3.amazonaws.com:443"]
"#;

const WITHOUT_GLUE: &str = r#"
name = "no-glue"
version = "0.1.0"
description = "A connector that only runs on Fargate"
data_classification = "public"

[[streams]]
name = "orders"

[runners.fargate]
memory_mb = 512
vcpu = 0.25
max_runtime_secs = 600

[[networking]]
pattern = "vpc-endpoint"
endpoints = ["s3.amazonaws.com:443"]
"#;

fn record(call: &str) {
    if let Some(path) = std::env::var_os("GLUE_TEST_CALLS")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{call}");
    }
}

/// Whether the fault fires now: true exactly once per marker file.
fn fire_once(marker: &PathBuf) -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(marker)
        .is_ok()
}

#[async_trait]
impl<const GLUE: bool> Connector for TestConnector<GLUE> {
    type Config = TestConfig;
    type Cursor = OrderId;
    type PartitionSpec = OrderRange;
    type Checkpoint = OrderId;
    type Run = ();
    const MANIFEST: &'static str = if GLUE { WITH_GLUE } else { WITHOUT_GLUE };

    async fn check(&self, config: &TestConfig) -> Result<(), ConnectorError> {
        record("check");
        OrdersDemo.check(&config.demo).await
    }

    async fn discover(&self, config: &TestConfig) -> Result<Vec<StreamDescriptor>, ConnectorError> {
        record("discover");
        OrdersDemo.discover(&config.demo).await
    }

    async fn plan(
        &self,
        config: &TestConfig,
        stream: &StreamDescriptor,
        cursor: Option<&OrderId>,
    ) -> Result<Plan<OrderRange, OrderId>, ConnectorError> {
        record("plan");
        OrdersDemo.plan(&config.demo, stream, cursor).await
    }

    async fn open_run(&self, _: &TestConfig, _: &StreamDescriptor) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn read<'a>(
        &'a self,
        config: &'a TestConfig,
        run: &'a (),
        stream: &'a StreamDescriptor,
        partition: &'a Partition<OrderRange>,
        ctx: ReadContext<OrderId>,
    ) -> ReadStream<'a, OrderId> {
        record("read");
        let inner = OrdersDemo.read(&config.demo, run, stream, partition, ctx);
        let fault = config
            .fail_once_at_order_id
            .zip(config.fail_once_marker.clone());
        Box::pin(inner.map(move |item| {
            if let (Some((id, marker)), Ok(ReadItem::Batch(b))) = (&fault, &item) {
                let ids = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<connector_sdk::arrow::array::Int64Array>();
                let hit = ids.is_some_and(|a| a.values().contains(&(*id as i64)));
                if hit && fire_once(marker) {
                    return Err(ConnectorError::new(
                        ConnectorErrorKind::Source,
                        format!("injected one-time failure at order {id} (fail_once_at_order_id)"),
                    ));
                }
            }
            item
        }))
    }
}

fn main() -> std::process::ExitCode {
    if std::env::var("GLUE_TEST_CONNECTOR").as_deref() == Ok("no-glue") {
        connector_cli::main(TestConnector::<false>)
    } else {
        connector_cli::main(TestConnector::<true>)
    }
}
