//! A connector for the runner tests whose manifest does not declare `lambda` (nor `glue`,
//! nor `ec2`); with `LAMBDA_TEST_CONNECTOR=invalid-manifest`, a manifest that does not
//! parse; with `LAMBDA_TEST_CONNECTOR=ec2-only`, one that declares only `ec2`.
//! Every connector method appends its name to the file named by `LAMBDA_TEST_CALLS`, so a
//! test can prove that nothing was read.

use std::io::Write;

use connector_sdk::arrow::datatypes::{DataType, Field, Schema};
use connector_sdk::{
    Connector, ConnectorError, Partition, Plan, ReadContext, ReadStream, StreamDescriptor,
    async_trait,
};
use schemars::JsonSchema;
use serde::Deserialize;

/// The test connector's config.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TestConfig {
    /// Ignored.
    #[serde(default)]
    rows: u64,
}

/// `MODE` 0: a valid manifest declaring only `fargate`; 1: an invalid manifest; 2: a valid
/// manifest declaring only `ec2`.
struct TestConnector<const MODE: u8>;

const UNDECLARED: &str = r#"
name = "no-lambda"
version = "0.1.0"
description = "A connector that only runs on Fargate"
data_classification = "public"

[[streams]]
name = "items"

[runners.fargate]
memory_mb = 512
vcpu = 0.25
max_runtime_secs = 600

[[networking]]
pattern = "vpc-endpoint"
endpoints = ["s3.amazonaws.com:443"]
"#;

const EC2_ONLY: &str = r#"
name = "ec2-only"
version = "0.1.0"
description = "A connector that only runs on EC2"
data_classification = "public"

[[streams]]
name = "items"

[runners.ec2]
memory_mb = 512
vcpu = 1
max_runtime_secs = 600

[[networking]]
pattern = "vpc-endpoint"
endpoints = ["s3.amazonaws.com:443"]
"#;

const INVALID_MANIFEST: &str = "name = \"Not A Valid Name\"\n";

fn record(call: &str) {
    if let Some(path) = std::env::var_os("LAMBDA_TEST_CALLS")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{call}");
    }
}

#[async_trait]
impl<const MODE: u8> Connector for TestConnector<MODE> {
    type Config = TestConfig;
    type Cursor = u64;
    type PartitionSpec = ();
    type Checkpoint = u64;
    type Run = ();
    const MANIFEST: &'static str = match MODE {
        1 => INVALID_MANIFEST,
        2 => EC2_ONLY,
        _ => UNDECLARED,
    };

    async fn check(&self, _config: &TestConfig) -> Result<(), ConnectorError> {
        record("check");
        Ok(())
    }

    async fn discover(&self, config: &TestConfig) -> Result<Vec<StreamDescriptor>, ConnectorError> {
        record("discover");
        let _ = config.rows;
        Ok(vec![StreamDescriptor {
            name: "items".into(),
            // One column: a Delta table needs at least one.
            schema: std::sync::Arc::new(Schema::new(vec![Field::new(
                "id",
                DataType::Int64,
                false,
            )])),
            cursor_field: None,
            primary_key: vec![],
            write_disposition: None,
        }])
    }

    async fn plan(
        &self,
        _config: &TestConfig,
        _stream: &StreamDescriptor,
        _cursor: Option<&u64>,
    ) -> Result<Plan<(), u64>, ConnectorError> {
        record("plan");
        Ok(Plan {
            partitions: vec![],
            cursor: None,
        })
    }

    async fn open_run(&self, _: &TestConfig, _: &StreamDescriptor) -> Result<(), ConnectorError> {
        record("open_run");
        Ok(())
    }

    fn read<'a>(
        &'a self,
        _config: &'a TestConfig,
        _run: &'a (),
        _stream: &'a StreamDescriptor,
        _partition: &'a Partition<()>,
        _ctx: ReadContext<u64>,
    ) -> ReadStream<'a, u64> {
        record("read");
        Box::pin(connector_sdk::futures::stream::empty())
    }
}

fn main() -> std::process::ExitCode {
    match std::env::var("LAMBDA_TEST_CONNECTOR").as_deref() {
        Ok("invalid-manifest") => connector_cli::main(TestConnector::<1>),
        Ok("ec2-only") => connector_cli::main(TestConnector::<2>),
        _ => connector_cli::main(TestConnector::<0>),
    }
}
