//! A connector for the Lambda runner tests whose manifest does not declare `lambda`
//! (or, with `LAMBDA_TEST_CONNECTOR=invalid-manifest`, a manifest that does not parse).
//! Every connector method appends its name to the file named by `LAMBDA_TEST_CALLS`, so a
//! test can prove that nothing was read.

use std::io::Write;

use connector_sdk::arrow::datatypes::Schema;
use connector_sdk::{
    Connector, ConnectorError, Cursor, Partition, Plan, ReadContext, ReadStream, StreamDescriptor,
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

/// `INVALID = false`: a valid manifest without `lambda`; `true`: an invalid manifest.
struct TestConnector<const INVALID: bool>;

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
impl<const INVALID: bool> Connector for TestConnector<INVALID> {
    type Config = TestConfig;
    const MANIFEST: &'static str = if INVALID {
        INVALID_MANIFEST
    } else {
        UNDECLARED
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
            schema: std::sync::Arc::new(Schema::empty()),
            cursor_field: None,
            primary_key: vec![],
        }])
    }

    async fn plan(
        &self,
        _config: &TestConfig,
        _stream: &StreamDescriptor,
        _cursor: Option<&Cursor>,
    ) -> Result<Plan, ConnectorError> {
        record("plan");
        Ok(Plan {
            partitions: vec![],
            cursor: None,
        })
    }

    fn read<'a>(
        &'a self,
        _config: &'a TestConfig,
        _stream: &'a StreamDescriptor,
        _partition: &'a Partition,
        _ctx: ReadContext,
    ) -> ReadStream<'a> {
        record("read");
        Box::pin(connector_sdk::futures::stream::empty())
    }
}

fn main() -> std::process::ExitCode {
    if std::env::var("LAMBDA_TEST_CONNECTOR").as_deref() == Ok("invalid-manifest") {
        connector_cli::main(TestConnector::<true>)
    } else {
        connector_cli::main(TestConnector::<false>)
    }
}
