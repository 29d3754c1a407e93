//! A connector with an invalid manifest cannot build an extract core; the error names
//! the field. No I/O happens before that check.

use connector_sdk::{
    Connector, ConnectorError, Error, ExtractCore, ExtractOptions, Partition, Plan, ReadContext,
    ReadStream, S3Options, S3Store, StreamDescriptor, async_trait,
};

#[derive(Debug)]
struct BadManifest;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[async_trait]
impl Connector for BadManifest {
    type Config = Empty;
    type Cursor = u64;
    type PartitionSpec = ();
    type Checkpoint = u64;
    type Run = ();
    const MANIFEST: &'static str = r#"
name = "bad"
version = "1.0.0"
description = "x"
data_classification = "public"
[[streams]]
name = "s"
[runners.lambda]
memory_mb = 64
vcpu = 1
max_runtime_secs = 10
[[networking]]
pattern = "vpn"
endpoints = ["db:5432"]
"#;
    async fn check(&self, _: &Empty) -> Result<(), ConnectorError> {
        panic!("check must not be called")
    }
    async fn discover(&self, _: &Empty) -> Result<Vec<StreamDescriptor>, ConnectorError> {
        panic!("discover must not be called")
    }
    async fn plan(
        &self,
        _: &Empty,
        _: &StreamDescriptor,
        _: Option<&u64>,
    ) -> Result<Plan<(), u64>, ConnectorError> {
        panic!("plan must not be called")
    }
    async fn open_run(&self, _: &Empty, _: &StreamDescriptor) -> Result<(), ConnectorError> {
        panic!("open_run must not be called")
    }
    fn read<'a>(
        &'a self,
        _: &'a Empty,
        _: &'a (),
        _: &'a StreamDescriptor,
        _: &'a Partition<()>,
        _: ReadContext<u64>,
    ) -> ReadStream<'a, u64> {
        panic!("read must not be called")
    }
}

#[tokio::test]
async fn invalid_manifest_is_refused_with_the_field_named() {
    let store = S3Store::connect(&S3Options {
        endpoint_url: Some("http://127.0.0.1:9".into()),
        ..Default::default()
    })
    .await;
    let options = ExtractOptions::new("s3://bucket/prefix".parse().unwrap());
    let err = ExtractCore::new(BadManifest, Empty {}, store, options, "test").unwrap_err();
    assert!(matches!(err, Error::Manifest { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("runners.lambda.memory_mb") && msg.contains("128..=10240"),
        "{msg}"
    );
    assert!(err.is_input_error());
}
