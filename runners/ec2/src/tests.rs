//! Unit tests: config validation with line/field errors, manifest enforcement.

use std::path::Path;

use connector_sdk::{
    Connector, ConnectorError, ConnectorManifest, Partition, Plan, ReadContext, ReadStream,
    StreamDescriptor, async_trait,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::LoadedConfig;
use crate::error::Error;
use crate::schedule::Schedule;

/// Config of the test connectors.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TestConfig {
    /// Rows.
    rows: u64,
    /// A secret that must never appear in an error.
    #[serde(default)]
    password: Option<String>,
}

macro_rules! test_connector {
    ($name:ident, $runners:expr) => {
        #[derive(Debug)]
        struct $name;

        #[async_trait]
        impl Connector for $name {
            type Config = TestConfig;
            type Cursor = u64;
            type PartitionSpec = ();
            type Checkpoint = u64;
            type Run = ();
            const MANIFEST: &'static str = $runners;

            async fn check(&self, _: &TestConfig) -> Result<(), ConnectorError> {
                Ok(())
            }
            async fn discover(
                &self,
                _: &TestConfig,
            ) -> Result<Vec<StreamDescriptor>, ConnectorError> {
                Ok(vec![])
            }
            async fn plan(
                &self,
                _: &TestConfig,
                _: &StreamDescriptor,
                _: Option<&u64>,
            ) -> Result<Plan<(), u64>, ConnectorError> {
                Ok(Plan {
                    partitions: vec![],
                    cursor: None,
                })
            }
            async fn open_run(
                &self,
                _: &TestConfig,
                _: &StreamDescriptor,
            ) -> Result<(), ConnectorError> {
                Ok(())
            }
            fn read<'a>(
                &'a self,
                _: &'a TestConfig,
                _: &'a (),
                _: &'a StreamDescriptor,
                _: &'a Partition<()>,
                _: ReadContext<u64>,
            ) -> ReadStream<'a, u64> {
                Box::pin(connector_sdk::futures::stream::empty())
            }
        }
    };
}

const WITH_EC2: &str = r#"
name = "test-connector"
version = "0.1.0"
description = "test"
data_classification = "public"

[[streams]]
name = "items"

[[streams]]
name = "events"

[runners.ec2]
memory_mb = 512
vcpu = 1
max_runtime_secs = 600

[[networking]]
pattern = "vpc-endpoint"
endpoints = ["s3.amazonaws.com:443"]
"#;

const WITHOUT_EC2: &str = r#"
name = "test-connector"
version = "0.1.0"
description = "test"
data_classification = "public"

[[streams]]
name = "items"

[runners.lambda]
memory_mb = 512
vcpu = 1
max_runtime_secs = 600

[runners.fargate]
memory_mb = 512
vcpu = 1
max_runtime_secs = 600

[[networking]]
pattern = "vpc-endpoint"
endpoints = ["s3.amazonaws.com:443"]
"#;

test_connector!(Ec2Connector, WITH_EC2);
test_connector!(LambdaOnlyConnector, WITHOUT_EC2);

const GOOD: &str = r#"max_concurrent_jobs = 2
stall_timeout = "10m"

[[jobs]]
name = "items-hourly"
output = "s3://my-bucket/raw"
streams = ["items"]
cron = "0 * * * *"
config = { rows = 10 }
extract = { concurrency = 3, codec = "snappy" }

[[jobs]]
name = "all"
output = "s3://my-bucket/all"
every = "15m"
config = { rows = 20, password = "hunter2" }
"#;

fn parse(text: &str) -> Result<LoadedConfig, Error> {
    let manifest = ConnectorManifest::parse(WITH_EC2).unwrap();
    LoadedConfig::parse::<Ec2Connector>(Path::new("/etc/test/daemon.toml"), text, &manifest)
}

/// (line, column, message) of a config error.
fn config_error(text: &str) -> (usize, usize, String) {
    match parse(text) {
        Err(Error::Config {
            line,
            column,
            message,
            ..
        }) => (line, column, message),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn a_good_config_loads() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.max_concurrent_jobs, 2);
    assert_eq!(c.stall_timeout, std::time::Duration::from_secs(600));
    assert_eq!(c.jobs.len(), 2);
    assert_eq!(c.jobs[0].name, "items-hourly");
    assert_eq!(c.jobs[0].streams, vec!["items".to_string()]);
    assert!(matches!(c.jobs[0].schedule, Schedule::Cron(_)));
    assert_eq!(c.jobs[0].options.max_concurrent_partitions, 3);
    assert_eq!(c.jobs[0].options.output.to_string(), "s3://my-bucket/raw");
    assert_eq!(c.jobs[1].connector_config["rows"], 20);
    assert!(c.jobs[1].streams.is_empty());
    assert!(matches!(c.jobs[1].schedule, Schedule::Every(_)));
}

#[test]
fn errors_name_the_line_and_field() {
    // Unknown key in a job, line 5.
    let bad = GOOD.replace("streams = [\"items\"]", "streamz = [\"items\"]");
    let (line, _, m) = config_error(&bad);
    assert_eq!(line, 7, "{m}");
    assert!(m.contains("streamz"), "{m}");

    // Invalid interval, line 15.
    let bad = GOOD.replace("every = \"15m\"", "every = \"15 parsecs\"");
    let (line, _, m) = config_error(&bad);
    assert_eq!(line, 15, "{m}");
    assert!(m.contains("15 parsecs") && m.contains("15m"), "{m}");

    // Invalid cron, line 8.
    let bad = GOOD.replace("0 * * * *", "0 * * *");
    let (line, _, m) = config_error(&bad);
    assert_eq!(line, 8, "{m}");
    assert!(m.contains("cron"), "{m}");

    // Invalid output URL, line 14.
    let bad = GOOD.replace("s3://my-bucket/all", "my-bucket/all");
    let (line, _, m) = config_error(&bad);
    assert_eq!(line, 14, "{m}");
    assert!(m.contains("s3://"), "{m}");

    // Wrong type at the top, line 1.
    let bad = GOOD.replace("max_concurrent_jobs = 2", "max_concurrent_jobs = \"two\"");
    let (line, _, m) = config_error(&bad);
    assert_eq!(line, 1, "{m}");

    // Zero jobs at once.
    let bad = GOOD.replace("max_concurrent_jobs = 2", "max_concurrent_jobs = 0");
    let (line, _, m) = config_error(&bad);
    assert_eq!(line, 1, "{m}");
    assert!(m.contains("max_concurrent_jobs"), "{m}");

    // Undeclared stream, line 7.
    let bad = GOOD.replace("streams = [\"items\"]", "streams = [\"itemz\"]");
    let (line, _, m) = config_error(&bad);
    assert_eq!(line, 7, "{m}");
    assert!(m.contains("itemz") && m.contains("items, events"), "{m}");

    // Extract options the SDK rejects, line 10.
    let bad = GOOD.replace("concurrency = 3", "concurrency = 0");
    let (line, _, m) = config_error(&bad);
    assert_eq!(line, 10, "{m}");
    assert!(m.contains("concurrency = 0 is outside 1..=256"), "{m}");

    // Duplicate job names.
    let bad = GOOD.replace("name = \"all\"", "name = \"items-hourly\"");
    let (line, _, m) = config_error(&bad);
    assert_eq!(line, 13, "{m}");
    assert!(m.contains("unique"), "{m}");

    // TOML syntax error: an inline table left open on line 9 (toml reports where it
    // noticed, the start of line 10).
    let bad = GOOD.replace("config = { rows = 10 }", "config = { rows = 10");
    let (line, _, m) = config_error(&bad);
    assert!((9..=10).contains(&line), "{line}: {m}");
}

#[test]
fn connector_config_errors_name_the_field_and_hide_values() {
    // Unknown field of the connector config, on line 16.
    let bad = GOOD.replace("rows = 20,", "rowz = 20,");
    let (line, _, m) = config_error(&bad);
    assert_eq!(line, 16, "{m}");
    assert!(m.contains("rowz") && m.contains("job `all` config"), "{m}");
    // Wrong type of a secret: the value is not echoed.
    let bad = GOOD.replace(
        "password = \"hunter2\"",
        "password = 42, rows = \"hunter2\"",
    );
    let e = parse(&bad).unwrap_err().to_string();
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn schedule_and_config_source_are_exactly_one() {
    let bad = GOOD.replace("every = \"15m\"", "every = \"15m\"\ncron = \"* * * * *\"");
    let (line, _, m) = config_error(&bad);
    assert_eq!(line, 12, "the job's [[jobs]] header: {m}");
    assert!(m.contains("both `every` and `cron`"), "{m}");
    let bad = GOOD.replace("every = \"15m\"\n", "");
    let (_, _, m) = config_error(&bad);
    assert!(m.contains("no schedule"), "{m}");
    let bad = GOOD.replace("config = { rows = 20, password = \"hunter2\" }\n", "");
    let (_, _, m) = config_error(&bad);
    assert!(m.contains("no connector config"), "{m}");
}

#[test]
fn config_files_are_read_relative_to_the_daemon_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("items.json"), r#"{"rows": 5}"#).unwrap();
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"rows": 5, "colour": "red"}"#,
    )
    .unwrap();
    let manifest = ConnectorManifest::parse(WITH_EC2).unwrap();
    let path = dir.path().join("daemon.toml");
    let text = "[[jobs]]\nname = \"a\"\noutput = \"s3://bkt/a\"\nevery = \"1h\"\nconfig_file = \"items.json\"\n";
    let c = LoadedConfig::parse::<Ec2Connector>(&path, text, &manifest).unwrap();
    assert_eq!(c.jobs[0].connector_config["rows"], 5);
    let e = LoadedConfig::parse::<Ec2Connector>(&path, &text.replace("items", "bad"), &manifest)
        .unwrap_err()
        .to_string();
    assert!(e.contains(":5:") && e.contains("colour"), "{e}");
    let e =
        LoadedConfig::parse::<Ec2Connector>(&path, &text.replace("items", "missing"), &manifest)
            .unwrap_err()
            .to_string();
    assert!(e.contains(":5:") && e.contains("missing.json"), "{e}");
}

#[tokio::test]
async fn undeclared_runner_is_refused_before_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daemon.toml");
    std::fs::write(
        &path,
        "[[jobs]]\nname = \"a\"\noutput = \"s3://bkt/a\"\nevery = \"1h\"\nconfig = { rows = 1 }\n",
    )
    .unwrap();
    let err = crate::start(LambdaOnlyConnector, Some(&path))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sdk(connector_sdk::Error::RunnerNotDeclared { .. })
        ),
        "{err:?}"
    );
    assert!(err.is_input_error());
    let m = err.to_string();
    assert!(
        m.contains("does not declare the `ec2` runner") && m.contains("lambda, fargate"),
        "{m}"
    );
    // The same config is accepted for a connector that declares ec2.
    let d = crate::start(Ec2Connector, Some(&path)).await.unwrap();
    assert_eq!(d.config().jobs.len(), 1);
}

#[test]
fn every_config_field_has_a_description() {
    let schema = crate::daemon_config_schema();
    fn walk(v: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
            for (k, p) in props {
                if p.get("description").is_none() {
                    missing.push(format!("{path}.{k}"));
                }
            }
        }
        if let Some(defs) = v.get("$defs").and_then(|d| d.as_object()) {
            for (k, d) in defs {
                walk(d, k, missing);
            }
        }
    }
    let mut missing = Vec::new();
    walk(&schema, "DaemonConfig", &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a doc comment: {missing:?}"
    );
    let jobs = &schema["$defs"]["JobConfig"]["properties"];
    for k in [
        "name",
        "config",
        "config_file",
        "output",
        "streams",
        "every",
        "cron",
        "extract",
    ] {
        assert!(jobs.get(k).is_some(), "{k} missing from the schema");
    }
}

/// Property tests (proptest): the daemon config with random edits before its last line
/// (which holds an inline password) loads or gives an error, never a panic, and no error
/// quotes the password, however the edits confuse the TOML parser.
mod fuzz {
    use proptest::prelude::*;

    use super::parse;

    const SECRET_LINE: &str = "config = { rows = 20, password = \"s3cr3t-Pa55\" }\n";

    #[derive(Debug, Clone)]
    enum Edit {
        Insert(usize, char),
        Delete(usize),
        Replace(usize, char),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let ch = prop::sample::select(vec![
            '"', '\'', '=', '[', ']', '{', '}', ',', '\n', '#', ' ', 'a', '0', '\\', '.', 'é',
        ]);
        prop_oneof![
            (any::<usize>(), ch.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
            any::<usize>().prop_map(Edit::Delete),
            (any::<usize>(), ch).prop_map(|(i, c)| Edit::Replace(i, c)),
        ]
    }

    fn apply(text: &str, edits: &[Edit]) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        for e in edits {
            let n = chars.len().max(1);
            match *e {
                Edit::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
                Edit::Delete(i) if !chars.is_empty() => {
                    chars.remove(i % n);
                }
                Edit::Replace(i, c) if !chars.is_empty() => chars[i % n] = c,
                _ => {}
            }
        }
        chars.into_iter().collect()
    }

    proptest! {
        #[test]
        fn edited_configs_load_or_fail_without_quoting_secrets(
            edits in prop::collection::vec(edit(), 0..6),
        ) {
            let head = "max_concurrent_jobs = 2\nstall_timeout = \"10m\"\n\n[[jobs]]\nname = \"all\"\noutput = \"s3://my-bucket/all\"\nevery = \"15m\"\n";
            let text = format!("{}{SECRET_LINE}", apply(head, &edits));
            if let Err(e) = parse(&text) {
                let m = e.to_string();
                prop_assert!(!m.contains("s3cr3t-Pa55"), "{}", m);
            }
        }

        #[test]
        fn any_text_loads_or_fails_without_panicking(text in ".{0,200}") {
            let _ = parse(&text);
        }
    }
}
