//! The connector manifest (`connector.toml`): what a connector is, which runners and
//! network patterns it supports. Parsed and validated without any I/O.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The places a connector binary can run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Runner {
    /// AWS Lambda custom runtime (`provided.al2023`).
    Lambda,
    /// AWS Fargate (ECS task).
    Fargate,
    /// Amazon EC2 (systemd service).
    Ec2,
    /// AWS Glue (Spark job).
    Glue,
}

impl Runner {
    /// Every runner, in documentation order.
    pub const ALL: [Runner; 4] = [Runner::Lambda, Runner::Fargate, Runner::Ec2, Runner::Glue];

    /// The name used in manifests and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Runner::Lambda => "lambda",
            Runner::Fargate => "fargate",
            Runner::Ec2 => "ec2",
            Runner::Glue => "glue",
        }
    }
}

impl fmt::Display for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Network patterns a connector can reach its source through.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkPattern {
    /// AWS PrivateLink to a service or partner endpoint.
    Privatelink,
    /// A VPC endpoint (S3, DynamoDB, other AWS services).
    VpcEndpoint,
    /// NAT gateway with the source allow-listing the NAT's fixed IPs.
    NatAllowlist,
    /// VPN or site-to-site tunnel.
    Vpn,
}

/// How sensitive the data the connector extracts is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DataClassification {
    /// May be published.
    Public,
    /// Internal to the organisation.
    Internal,
    /// Business-confidential.
    Confidential,
    /// Personal or regulated data.
    Restricted,
}

/// The parsed `connector.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorManifest {
    /// Connector name, kebab-case (`[a-z][a-z0-9-]*`, at most 64 characters).
    pub name: String,
    /// Semantic version `MAJOR.MINOR.PATCH`.
    pub version: String,
    /// One-line description.
    pub description: String,
    /// Sensitivity of the extracted data.
    pub data_classification: DataClassification,
    /// The streams the connector can extract (at least one). Connectors whose streams
    /// are only known at run time (database tables) declare `dynamic_streams = true`.
    #[serde(default)]
    pub streams: Vec<StreamDeclaration>,
    /// The stream names come from the config at run time (e.g. database tables).
    #[serde(default)]
    pub dynamic_streams: bool,
    /// Supported runners and their resource needs, keyed by runner name.
    pub runners: BTreeMap<Runner, RunnerRequirements>,
    /// Network patterns the connector works with, and the endpoints it reaches.
    pub networking: Vec<NetworkRequirement>,
}

/// A stream declared in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamDeclaration {
    /// Stream name (`[a-z][a-z0-9_]*`).
    pub name: String,
    /// What the stream holds.
    #[serde(default)]
    pub description: String,
    /// Whether the stream supports incremental extracts (a cursor).
    #[serde(default)]
    pub incremental: bool,
    /// How a run's rows land in the stream's table unless the run says otherwise
    /// (`--write-disposition`): `append`, `replace` or `merge`. Unset: `append` for a
    /// stream with a cursor field, `replace` for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_disposition: Option<crate::options::WriteDisposition>,
}

/// Resources a connector needs on one runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunnerRequirements {
    /// Memory in MB.
    pub memory_mb: u32,
    /// vCPUs (fractions allowed, e.g. 0.25 on Fargate).
    pub vcpu: f64,
    /// Expected maximum run time of one invocation/run, in seconds.
    pub max_runtime_secs: u64,
    /// Glue only: worker type (`G.1X`, `G.2X`, `G.4X`, `G.8X`, `G.025X`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_type: Option<String>,
    /// Glue only: number of workers (2 or more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
}

/// A network pattern and the endpoints reached through it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkRequirement {
    /// The pattern.
    pub pattern: NetworkPattern,
    /// Endpoints as `host:port`; `{field}` placeholders name config fields
    /// (e.g. `{host}:{port}`).
    pub endpoints: Vec<String>,
    /// Glue/Fargate VPC connection name needed for this pattern, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_connection: Option<String>,
}

/// Added to the longest declared runtime to get `gc`'s shortest grace period: time for
/// the commit after the deadline, and for clock skew between this host and S3.
pub const GC_MARGIN_SECS: u64 = 900;

const GLUE_WORKER_TYPES: [&str; 5] = ["G.025X", "G.1X", "G.2X", "G.4X", "G.8X"];

impl ConnectorManifest {
    /// Parse and validate a manifest. No I/O. Every error names the field and what would
    /// be valid.
    pub fn parse(text: &str) -> Result<Self> {
        let manifest: ConnectorManifest = toml::from_str(text).map_err(|e| {
            Error::manifest(
                e.to_string()
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Check every rule serde cannot express.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, msg: String| Err(Error::manifest(format!("`{field}` {msg}")));
        if !is_kebab(&self.name) || self.name.len() > 64 {
            return bad(
                "name",
                format!(
                    "= {:?} is invalid: use kebab-case `[a-z][a-z0-9-]*`, at most 64 characters",
                    self.name
                ),
            );
        }
        if !is_semver(&self.version) {
            return bad(
                "version",
                format!(
                    "= {:?} is invalid: use MAJOR.MINOR.PATCH, e.g. \"1.0.0\"",
                    self.version
                ),
            );
        }
        if self.description.trim().is_empty() {
            return bad(
                "description",
                "is empty: say in one line what the connector extracts".into(),
            );
        }
        if self.streams.is_empty() && !self.dynamic_streams {
            return bad(
                "streams",
                "is empty: declare at least one [[streams]] entry, or set dynamic_streams = true"
                    .into(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in self.streams.iter().enumerate() {
            if !is_stream_name(&s.name) {
                return bad(
                    &format!("streams[{i}].name"),
                    format!(
                        "= {:?} is invalid: use `[a-z][a-z0-9_]*`, at most 64 characters",
                        s.name
                    ),
                );
            }
            if !seen.insert(&s.name) {
                return bad(
                    &format!("streams[{i}].name"),
                    format!("= {:?} is declared twice", s.name),
                );
            }
        }
        if self.runners.is_empty() {
            return bad(
                "runners",
                "is empty: declare at least one of [runners.lambda], [runners.fargate], [runners.ec2], [runners.glue]".into(),
            );
        }
        for (runner, req) in &self.runners {
            let field = |f: &str| format!("runners.{runner}.{f}");
            if req.memory_mb == 0 {
                return bad(&field("memory_mb"), "must be greater than 0".into());
            }
            if !(req.vcpu > 0.0 && req.vcpu.is_finite()) {
                return bad(
                    &field("vcpu"),
                    format!("= {} must be a positive number", req.vcpu),
                );
            }
            if req.max_runtime_secs == 0 {
                return bad(&field("max_runtime_secs"), "must be greater than 0".into());
            }
            if *runner != Runner::Glue && (req.worker_type.is_some() || req.workers.is_some()) {
                return bad(
                    &field("worker_type"),
                    "is only valid for the glue runner: remove worker_type/workers".into(),
                );
            }
            match runner {
                Runner::Lambda => {
                    if !(128..=10_240).contains(&req.memory_mb) {
                        return bad(
                            &field("memory_mb"),
                            format!("= {} is outside Lambda's 128..=10240 MB", req.memory_mb),
                        );
                    }
                    if req.max_runtime_secs > 900 {
                        return bad(
                            &field("max_runtime_secs"),
                            format!(
                                "= {} exceeds Lambda's 900-second limit: declare fargate for longer runs",
                                req.max_runtime_secs
                            ),
                        );
                    }
                    if req.vcpu > 6.0 {
                        return bad(
                            &field("vcpu"),
                            format!("= {} exceeds Lambda's 6 vCPUs", req.vcpu),
                        );
                    }
                }
                Runner::Fargate => {
                    if req.vcpu > 16.0 {
                        return bad(
                            &field("vcpu"),
                            format!("= {} exceeds Fargate's 16 vCPUs", req.vcpu),
                        );
                    }
                    if req.memory_mb > 122_880 {
                        return bad(
                            &field("memory_mb"),
                            format!("= {} exceeds Fargate's 122880 MB", req.memory_mb),
                        );
                    }
                }
                Runner::Glue => {
                    if let Some(t) = &req.worker_type
                        && !GLUE_WORKER_TYPES.contains(&t.as_str())
                    {
                        return bad(
                            &field("worker_type"),
                            format!(
                                "= {t:?} is invalid: use one of {}",
                                GLUE_WORKER_TYPES.join(", ")
                            ),
                        );
                    }
                    if let Some(w) = req.workers
                        && w < 2
                    {
                        return bad(
                            &field("workers"),
                            format!("= {w} is invalid: Glue needs at least 2 workers"),
                        );
                    }
                }
                Runner::Ec2 => {}
            }
        }
        if self.networking.is_empty() {
            return bad(
                "networking",
                "is empty: declare at least one [[networking]] entry with pattern = \"privatelink\" | \"vpc-endpoint\" | \"nat-allowlist\" | \"vpn\"".into(),
            );
        }
        for (i, n) in self.networking.iter().enumerate() {
            if n.endpoints.is_empty() {
                return bad(
                    &format!("networking[{i}].endpoints"),
                    "is empty: list the host:port endpoints reached through this pattern".into(),
                );
            }
            for (j, e) in n.endpoints.iter().enumerate() {
                if !is_endpoint(e) {
                    return bad(
                        &format!("networking[{i}].endpoints[{j}]"),
                        format!(
                            "= {e:?} is invalid: use host:port, e.g. \"db.internal:5432\" or \"{{host}}:{{port}}\""
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// The manifest of connector `C` (`C::MANIFEST`), parsed and validated once per
    /// process and shared: every runner mode and the core ask here.
    pub fn of<C: crate::Connector>() -> Result<Arc<ConnectorManifest>> {
        type Parsed = std::result::Result<Arc<ConnectorManifest>, String>;
        static PARSED: OnceLock<Mutex<HashMap<&'static str, Parsed>>> = OnceLock::new();
        let mut parsed = PARSED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        parsed
            .entry(C::MANIFEST)
            .or_insert_with(|| match ConnectorManifest::parse(C::MANIFEST) {
                Ok(m) => Ok(Arc::new(m)),
                Err(Error::Manifest { message: m, .. }) => Err(m),
                Err(other) => Err(other.to_string()),
            })
            .clone()
            .map_err(Error::manifest)
    }

    /// `Ok` if `stream` is one of the declared streams (always, for a connector with
    /// dynamic streams: those are checked against `discover` when the run starts).
    pub fn require_stream(&self, stream: &str) -> Result<()> {
        if self.dynamic_streams || self.streams.iter().any(|s| s.name == stream) {
            return Ok(());
        }
        Err(Error::request(format!(
            "stream `{stream}` is not declared by connector `{}`; declared streams: {}",
            self.name,
            self.stream_names().join(", ")
        )))
    }

    /// The requirements for `runner`, or [`Error::RunnerNotDeclared`].
    pub fn require_runner(&self, runner: Runner) -> Result<&RunnerRequirements> {
        self.runners
            .get(&runner)
            .ok_or_else(|| Error::RunnerNotDeclared {
                connector: self.name.clone(),
                runner: runner.to_string(),
                declared: self
                    .runners
                    .keys()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The runner with the longest declared `max_runtime_secs`, and that runtime: no run
    /// of this connector is expected to last longer, so garbage collection leaves files
    /// younger than this (plus [`GC_MARGIN_SECS`]) alone.
    pub fn longest_runtime(&self) -> (Runner, u64) {
        self.runners
            .iter()
            .map(|(r, req)| (*r, req.max_runtime_secs))
            .max_by_key(|(_, secs)| *secs)
            .unwrap_or((Runner::Fargate, 0))
    }

    /// The shortest grace period `gc` accepts: the longest declared runtime plus
    /// [`GC_MARGIN_SECS`]. A shorter one could delete the finished files of a run still
    /// in flight, whose commit would then list rows that no longer exist.
    pub fn min_gc_grace_secs(&self) -> u64 {
        self.longest_runtime().1.saturating_add(GC_MARGIN_SECS)
    }

    /// The declared stream `name`, if declared.
    pub fn stream(&self, name: &str) -> Option<&StreamDeclaration> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// The declared stream names.
    pub fn stream_names(&self) -> Vec<String> {
        self.streams.iter().map(|s| s.name.clone()).collect()
    }
}

fn is_kebab(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.ends_with('-')
}

/// Stream names become folder names: `[a-z][a-z0-9_]*`.
pub(crate) fn is_stream_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 64
        && matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_semver(s: &str) -> bool {
    let core = s.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn is_endpoint(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && !host.contains(char::is_whitespace)
        && (port.parse::<u16>().is_ok_and(|p| p > 0)
            || (port.starts_with('{') && port.ends_with('}')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
name = "orders-demo"
version = "0.1.0"
description = "Synthetic orders"
data_classification = "public"

[[streams]]
name = "orders"
incremental = true

[runners.lambda]
memory_mb = 512
vcpu = 1
max_runtime_secs = 900

[runners.glue]
memory_mb = 16384
vcpu = 4
max_runtime_secs = 7200
worker_type = "G.1X"
workers = 2

[[networking]]
pattern = "vpc-endpoint"
endpoints = ["s3.amazonaws.com:443", "{host}:{port}"]
"#;

    fn expect_err(text: &str, needle: &str) {
        match ConnectorManifest::parse(text) {
            Ok(_) => panic!("expected an error mentioning {needle:?}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(needle),
                    "error {msg:?} does not mention {needle:?}"
                );
                assert!(!msg.contains('\n'), "error is not one line: {msg:?}");
            }
        }
    }

    #[test]
    fn valid_manifest_parses() {
        let m = ConnectorManifest::parse(VALID).unwrap();
        assert_eq!(m.name, "orders-demo");
        assert!(m.require_runner(Runner::Lambda).is_ok());
        let err = m.require_runner(Runner::Fargate).unwrap_err().to_string();
        assert!(
            err.contains("fargate") && err.contains("declared: lambda, glue"),
            "{err}"
        );
    }

    #[test]
    fn invalid_manifests_name_the_field() {
        expect_err(&VALID.replace("orders-demo", "Orders Demo"), "`name`");
        expect_err(&VALID.replace("0.1.0", "one"), "`version`");
        expect_err(
            &VALID.replace("\"public\"", "\"secret\""),
            "data_classification",
        );
        expect_err(
            &VALID.replace("max_runtime_secs = 900", "max_runtime_secs = 1200"),
            "runners.lambda.max_runtime_secs",
        );
        expect_err(
            &VALID.replace("[runners.lambda]", "[runners.kubernetes]"),
            "kubernetes",
        );
        expect_err(
            &VALID.replace("\"G.1X\"", "\"G.3X\""),
            "runners.glue.worker_type",
        );
        expect_err(
            &VALID.replace("\"vpc-endpoint\"", "\"internet\""),
            "internet",
        );
        expect_err(
            &VALID.replace("\"{host}:{port}\"", "\"nohost\""),
            "networking[0].endpoints[1]",
        );
        expect_err(
            &VALID.replace("incremental = true", "incremental = true\ncolour = 1"),
            "colour",
        );
        expect_err(
            &VALID.replace("name = \"orders\"", "name = \"Orders!\""),
            "streams[0].name",
        );
        expect_err(
            &VALID.replace("workers = 2", "workers = 1"),
            "runners.glue.workers",
        );
    }
}
