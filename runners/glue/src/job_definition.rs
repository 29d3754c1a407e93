//! `<binary> deploy glue`: the Glue job definition (the JSON `aws glue create-job
//! --cli-input-json` takes) for a connector, from its manifest. No I/O.

use std::path::PathBuf;

use connector_sdk::{ConnectorManifest, NetworkPattern, Runner};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::{JOB_SCRIPT_NAME, resolve_stream};

/// The Glue version the job script is written for (Spark 3.5, Python 3.11, Java 17).
pub const GLUE_VERSION: &str = "5.0";
/// Worker type when the manifest names none.
pub const DEFAULT_WORKER_TYPE: &str = "G.1X";
/// Number of workers when the manifest names none (Glue's minimum).
pub const DEFAULT_WORKERS: u32 = 2;

/// Arguments of `deploy glue`.
#[derive(Debug, Clone, clap::Args)]
pub struct JobDefinitionArgs {
    /// Glue job name [default: <connector>-<stream>].
    #[arg(long, value_name = "NAME")]
    pub job_name: Option<String>,
    /// IAM role the job runs as (arn:aws:iam::<account>:role/<name>).
    #[arg(long, value_name = "ARN")]
    pub role_arn: String,
    /// S3 URL of the job script (upload the file `--write-script` writes).
    #[arg(long, value_name = "S3_URL")]
    pub script_location: String,
    /// S3 URL of the connector binary built for glibc 2.34 (runners/glue/package.sh).
    #[arg(long, value_name = "S3_URL")]
    pub binary_location: String,
    /// S3 URL of the connector config file (JSON, or TOML named *.toml).
    #[arg(long, value_name = "S3_URL")]
    pub config_location: String,
    /// Output location of the dataset, s3://bucket/prefix.
    #[arg(long, value_name = "S3_URL")]
    pub output: String,
    /// Stream the job extracts [default: the connector's only stream].
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// Glue connection(s) placing the job in the VPC (repeatable) [default: the
    /// manifest's `networking[].vpc_connection` where the network pattern needs one].
    #[arg(long = "connection", value_name = "NAME")]
    pub connections: Vec<String>,
    /// S3 URL for Glue's temporary files (`--TempDir`).
    #[arg(long, value_name = "S3_URL")]
    pub temp_dir: Option<String>,
    /// Spark partitions the work is spread over [default: one per planned partition].
    #[arg(long, value_name = "N")]
    pub spark_partitions: Option<u32>,
    /// Also write the job script to this file (to upload to --script-location).
    #[arg(long, value_name = "FILE")]
    pub write_script: Option<PathBuf>,
}

fn bad(arg: &'static str, message: String) -> Error {
    Error::JobDefinition { arg, message }
}

fn check_s3_url(arg: &'static str, url: &str, file: bool) -> Result<()> {
    let Some(rest) = url.strip_prefix("s3://") else {
        return Err(bad(
            arg,
            format!("{url:?} is not an S3 URL; use s3://bucket/key"),
        ));
    };
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.len() < 3 {
        return Err(bad(
            arg,
            format!("{url:?} has no valid bucket name; use s3://bucket/key"),
        ));
    }
    if file && (key.is_empty() || key.ends_with('/')) {
        return Err(bad(
            arg,
            format!("{url:?} names no file; use s3://bucket/path/to/file"),
        ));
    }
    Ok(())
}

fn file_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// Whether reaching `endpoints` through `pattern` needs the job placed in a VPC (a Glue
/// NETWORK connection). Glue reaches S3 without one; everything private needs one.
pub fn needs_vpc_connection(pattern: NetworkPattern, endpoints: &[String]) -> bool {
    let s3_only = endpoints.iter().all(|e| {
        let host = e.rsplit_once(':').map(|(h, _)| h).unwrap_or(e);
        host == "s3.amazonaws.com" || (host.starts_with("s3.") && host.ends_with(".amazonaws.com"))
    });
    !(pattern == NetworkPattern::VpcEndpoint && s3_only)
}

/// Render the Glue job definition of the connector with `manifest`. Refuses when the
/// manifest does not declare `glue`, or when its network pattern needs a VPC connection
/// and none is named.
pub fn job_definition(manifest: &ConnectorManifest, args: &JobDefinitionArgs) -> Result<Value> {
    let glue = manifest.require_runner(Runner::Glue)?;
    let stream = resolve_stream(manifest, args.stream.as_deref())?;
    manifest
        .require_stream(&stream)
        .map_err(|e| bad("--stream", crate::error::sdk_message(&e)))?;
    let job_name = args
        .job_name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", manifest.name, stream.replace('_', "-")));
    if job_name.is_empty()
        || job_name.len() > 255
        || !job_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(bad(
            "--job-name",
            format!("{job_name:?} is invalid; use 1-255 characters of [A-Za-z0-9._-]"),
        ));
    }
    let role_ok = args.role_arn.starts_with("arn:aws")
        && args.role_arn.split(':').nth(5).is_some_and(|r| {
            r.strip_prefix("role/")
                .is_some_and(|n| !n.is_empty() && !n.ends_with('/'))
        });
    if !role_ok {
        return Err(bad(
            "--role-arn",
            format!(
                "{:?} is not an IAM role ARN; use arn:aws:iam::<account>:role/<name>",
                args.role_arn
            ),
        ));
    }
    check_s3_url("--script-location", &args.script_location, true)?;
    check_s3_url("--binary-location", &args.binary_location, true)?;
    check_s3_url("--config-location", &args.config_location, true)?;
    check_s3_url("--output", &args.output, false)?;
    if let Some(t) = &args.temp_dir {
        check_s3_url("--temp-dir", t, false)?;
    }
    if file_name(&args.binary_location) == file_name(&args.config_location) {
        return Err(bad(
            "--config-location",
            "has the same file name as --binary-location; both land in the job's working directory, so give them different names".into(),
        ));
    }
    if args.spark_partitions == Some(0) {
        return Err(bad("--spark-partitions", "must be at least 1".into()));
    }

    // Network: security before cost — every pattern that reaches something private needs
    // the job in the VPC; the manifest names the connection, or the operator does.
    let needing: Vec<_> = manifest
        .networking
        .iter()
        .filter(|n| needs_vpc_connection(n.pattern, &n.endpoints))
        .collect();
    let mut connections: Vec<String> = args.connections.clone();
    if connections.is_empty() {
        for n in &needing {
            if let Some(c) = &n.vpc_connection
                && !connections.contains(c)
            {
                connections.push(c.clone());
            }
        }
    }
    if !needing.is_empty() && connections.is_empty() {
        let patterns: Vec<String> = needing
            .iter()
            .map(|n| connector_sdk::governance::spelled(&n.pattern))
            .collect();
        return Err(bad(
            "--connection",
            format!(
                "is required: connector `{}` reaches its source through {} and the manifest names no vpc_connection; pass --connection <Glue NETWORK connection in the source's VPC>",
                manifest.name,
                patterns.join(" or ")
            ),
        ));
    }

    let mut defaults = serde_json::Map::new();
    let mut arg = |k: &str, v: String| {
        defaults.insert(k.to_string(), Value::String(v));
    };
    arg("--job-language", "python".into());
    arg(
        "--extra-files",
        format!("{},{}", args.binary_location, args.config_location),
    );
    arg(
        "--connector_binary",
        file_name(&args.binary_location).into(),
    );
    arg(
        "--connector_config",
        file_name(&args.config_location).into(),
    );
    arg("--output", args.output.clone());
    arg("--stream", stream.clone());
    if let Some(n) = args.spark_partitions {
        arg("--spark_partitions", n.to_string());
    }
    if let Some(t) = &args.temp_dir {
        arg("--TempDir", t.clone());
    }
    arg("--enable-continuous-cloudwatch-log", "true".into());
    arg("--enable-metrics", "true".into());

    let mut job = json!({
        "Name": job_name,
        "Description": format!("{} {}: stream `{stream}` to {}", manifest.name, manifest.version, args.output),
        "Role": args.role_arn,
        "Command": {
            "Name": "glueetl",
            "ScriptLocation": args.script_location,
            "PythonVersion": "3",
        },
        "GlueVersion": GLUE_VERSION,
        "WorkerType": glue.worker_type.clone().unwrap_or_else(|| DEFAULT_WORKER_TYPE.into()),
        "NumberOfWorkers": glue.workers.unwrap_or(DEFAULT_WORKERS),
        "Timeout": glue.max_runtime_secs.div_ceil(60),
        // A failed run committed nothing; re-running it plans again from the committed
        // state. Leave retries to the scheduler so failures are seen.
        "MaxRetries": 0,
        // Two runs of one stream would race for the same manifest sequence.
        "ExecutionProperty": {"MaxConcurrentRuns": 1},
        "DefaultArguments": defaults,
        "Tags": {
            "connector": manifest.name,
            "connector-version": manifest.version,
            "stream": stream,
        },
    });
    if !connections.is_empty() {
        job["Connections"] = json!({ "Connections": connections });
    }
    if !args.script_location.ends_with(".py") {
        return Err(bad(
            "--script-location",
            format!(
                "{:?} is not a Python file; upload {JOB_SCRIPT_NAME} and point at it",
                args.script_location
            ),
        ));
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
name = "pg"
version = "1.2.3"
description = "test"
data_classification = "confidential"
dynamic_streams = true
[runners.glue]
memory_mb = 16384
vcpu = 4
max_runtime_secs = 7230
worker_type = "G.2X"
workers = 5
"#;

    fn args() -> JobDefinitionArgs {
        JobDefinitionArgs {
            job_name: None,
            role_arn: "arn:aws:iam::123456789012:role/glue-connector".into(),
            script_location: "s3://artifacts/glue/connector_glue_job.py".into(),
            binary_location: "s3://artifacts/bin/pg".into(),
            config_location: "s3://artifacts/config/pg.json".into(),
            output: "s3://lake/raw/pg".into(),
            stream: Some("public_orders".into()),
            connections: vec![],
            temp_dir: None,
            spark_partitions: None,
            write_script: None,
        }
    }

    fn manifest(networking: &str) -> ConnectorManifest {
        ConnectorManifest::parse(&format!("{BASE}{networking}")).unwrap()
    }

    #[test]
    fn privatelink_needs_a_connection_from_the_manifest_or_the_operator() {
        let net = "[[networking]]\npattern = \"privatelink\"\nendpoints = [\"{host}:{port}\"]\n";
        let m = manifest(net);
        let err = job_definition(&m, &args()).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let msg = err.one_line();
        assert!(
            msg.contains("--connection") && msg.contains("through privatelink"),
            "{msg}"
        );
        let mut a = args();
        a.connections = vec!["pg-vpc".into()];
        let job = job_definition(&m, &a).unwrap();
        assert_eq!(job["Connections"], json!({"Connections": ["pg-vpc"]}));

        let m = manifest(&format!("{net}vpc_connection = \"from-manifest\"\n"));
        let job = job_definition(&m, &args()).unwrap();
        assert_eq!(
            job["Connections"],
            json!({"Connections": ["from-manifest"]})
        );
        assert_eq!(job["WorkerType"], "G.2X");
        assert_eq!(job["NumberOfWorkers"], 5);
        assert_eq!(job["Timeout"], 121);
        assert_eq!(job["Name"], "pg-public-orders");
        assert_eq!(job["DefaultArguments"]["--stream"], "public_orders");
    }

    #[test]
    fn s3_only_vpc_endpoint_needs_no_connection() {
        let m = manifest(
            "[[networking]]\npattern = \"vpc-endpoint\"\nendpoints = [\"s3.eu-west-1.amazonaws.com:443\"]\n",
        );
        let job = job_definition(&m, &args()).unwrap();
        assert!(job.get("Connections").is_none(), "{job}");
        // An interface endpoint to anything else is reached from inside the VPC.
        let m = manifest(
            "[[networking]]\npattern = \"vpc-endpoint\"\nendpoints = [\"api.partner.example:443\"]\n",
        );
        assert!(job_definition(&m, &args()).is_err());
    }

    #[test]
    fn bad_arguments_name_the_flag() {
        let m = manifest(
            "[[networking]]\npattern = \"vpc-endpoint\"\nendpoints = [\"s3.amazonaws.com:443\"]\n",
        );
        type Edit = fn(&mut JobDefinitionArgs);
        let cases: Vec<(Edit, &str)> = vec![
            (|a| a.role_arn = "glue-role".into(), "--role-arn"),
            (
                |a| a.binary_location = "/tmp/pg".into(),
                "--binary-location",
            ),
            (
                |a| a.script_location = "s3://artifacts/glue/".into(),
                "--script-location",
            ),
            (
                |a| a.script_location = "s3://artifacts/glue/job.sh".into(),
                "--script-location",
            ),
            (
                |a| a.config_location = "s3://other/pg".into(),
                "--config-location",
            ),
            (|a| a.output = "lake/raw".into(), "--output"),
            (|a| a.job_name = Some("my job".into()), "--job-name"),
            (|a| a.spark_partitions = Some(0), "--spark-partitions"),
        ];
        for (edit, flag) in cases {
            let mut a = args();
            edit(&mut a);
            let msg = job_definition(&m, &a).unwrap_err().one_line();
            assert!(
                msg.starts_with(&format!("invalid job definition argument {flag}:")),
                "{flag}: {msg}"
            );
        }
    }

    #[test]
    fn undeclared_glue_is_refused() {
        let m = ConnectorManifest::parse(
            &BASE.replace("[runners.glue]", "[runners.fargate]").replace(
                "worker_type = \"G.2X\"\nworkers = 5\n",
                "[[networking]]\npattern = \"vpn\"\nendpoints = [\"db:5432\"]\n",
            ),
        )
        .unwrap();
        let msg = job_definition(&m, &args()).unwrap_err().one_line();
        assert!(msg.contains("does not declare the `glue` runner"), "{msg}");
    }
}
