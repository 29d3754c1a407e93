//! The deploy config (`deploy.toml`): the few choices a manifest cannot make — which
//! runner and network pattern this stack uses, where the output goes, how often it runs,
//! the source endpoints the connector config resolves to, the non-secret config, the
//! secrets by name and the tags. Account-specific ids (VPC, subnets, key, buckets) are
//! template parameters, never config.
//!
//! ```toml
//! runner = "fargate"
//! network_pattern = "privatelink"
//! output = "s3://acme-lake/raw/orders"
//! streams = ["public_orders"]
//! schedule = "rate(1 hour)"
//! source_endpoints = ["orders.cluster-abc.eu-west-1.rds.amazonaws.com:5432"]
//! sse_kms = true
//! config = { host = "orders.cluster-abc.eu-west-1.rds.amazonaws.com", database = "orders", user = "extract", password = { env = "PGPASSWORD" } }
//! secrets = { PGPASSWORD = "prod/orders/extract-password" }
//! tags = { owner = "data-platform", cost-center = "4711" }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use connector_sdk::governance::{Endpoint, endpoint_matches, spelled};
use connector_sdk::{ConnectorManifest, NetworkPattern, OutputLocation, Runner};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// The deploy config file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// The runner this stack runs the connector on (one the manifest declares).
    pub runner: Runner,
    /// How the runner reaches the source (one the manifest declares).
    pub network_pattern: NetworkPattern,
    /// Where the tables go: `s3://bucket/prefix`. The IAM policies allow exactly this
    /// prefix.
    pub output: String,
    /// Streams to extract [default: every declared stream]. Lambda and Glue run one
    /// schedule (state machine execution, job) per stream.
    #[serde(default)]
    pub streams: Vec<String>,
    /// An EventBridge schedule expression: `rate(N minutes|hours|days)` or
    /// `cron(min hour day-of-month month day-of-week year)` [default: `rate(1 day)`].
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// The source endpoints (`host:port`) the connector config resolves to; each must
    /// match an endpoint the manifest declares for `network_pattern`. They open the
    /// security group egress (ports) and are pinned at run time (`allowed_endpoints`).
    /// Required when the manifest's endpoints have `{field}` placeholders.
    #[serde(default)]
    pub source_endpoints: Vec<String>,
    /// The connector config, without secrets (they come from `secrets`).
    #[serde(default)]
    pub config: serde_json::Map<String, Value>,
    /// Secrets the connector reads, `NAME = "secret-name"` (AWS Secrets Manager): an
    /// environment variable NAME on Lambda (a CloudFormation dynamic reference, resolved
    /// at deploy time) and Fargate (ECS `secrets`), a systemd credential NAME on EC2
    /// (fetched at boot, root-only). Glue jobs take no secrets from the template.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Tags on every taggable resource (`connector`, `connector-version` and
    /// `data-classification` are added).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Encrypt the output, the logs, the queue, the image repository and the disks with
    /// the customer-managed KMS key given as the `KmsKeyArn` parameter.
    #[serde(default)]
    pub sse_kms: bool,
    /// Days CloudWatch keeps the logs [default: 30].
    #[serde(default = "default_log_retention")]
    pub log_retention_days: u32,
    /// S3 objects the connector reads (file connectors such as s3-files) [default: none].
    #[serde(default)]
    pub source_objects: Option<SourceObjects>,
    /// Lambda settings.
    #[serde(default)]
    pub lambda: LambdaDeploy,
    /// EC2 settings.
    #[serde(default)]
    pub ec2: Ec2Deploy,
}

/// The S3 objects a file connector reads.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceObjects {
    /// `s3://bucket/prefix`: the runner's role may read and list exactly this (nothing
    /// else of the bucket, no write).
    pub location: String,
    /// Lambda only: invoke the function for every object created under `location` (an
    /// EventBridge rule on the bucket's "Object Created" events, which needs the bucket's
    /// EventBridge notifications turned on). The function runs its
    /// `CONNECTOR_EVENT_REQUEST` (the stack's one stream) restricted to the object; the
    /// schedule still sweeps what no event delivered.
    #[serde(default)]
    pub events: bool,
}

/// Lambda settings of a deploy config.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LambdaDeploy {
    /// Reserved concurrency (at least 1) [default: the number of streams: one chain each].
    #[serde(default)]
    pub reserved_concurrency: Option<u32>,
    /// `x86_64` or `arm64` [default: x86_64, what runners/lambda/package.sh builds].
    #[serde(default = "default_arch")]
    pub architecture: String,
}

impl Default for LambdaDeploy {
    fn default() -> Self {
        Self {
            reserved_concurrency: None,
            architecture: default_arch(),
        }
    }
}

/// EC2 settings of a deploy config.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ec2Deploy {
    /// Instance type [default: the smallest general-purpose type with the manifest's vCPUs
    /// and memory].
    #[serde(default)]
    pub instance_type: Option<String>,
}

fn default_schedule() -> String {
    "rate(1 day)".into()
}

fn default_log_retention() -> u32 {
    30
}

fn default_arch() -> String {
    "x86_64".into()
}

/// Retention periods CloudWatch Logs accepts.
const LOG_RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `rate(value unit)`, in minutes.
    Rate {
        /// Minutes between runs.
        minutes: u64,
    },
    /// `cron(...)`: the six EventBridge fields.
    Cron {
        /// minute hour day-of-month month day-of-week year.
        fields: [String; 6],
    },
}

impl Schedule {
    /// Parse an EventBridge expression.
    pub fn parse(expr: &str) -> Result<Self> {
        let bad = |why: &str| {
            Err(Error::config(
                "schedule",
                format!(
                    "{expr:?} {why}; use rate(N minutes|hours|days) or cron(min hour day-of-month month day-of-week year)"
                ),
            ))
        };
        if let Some(inner) = expr.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
            let mut parts = inner.split_whitespace();
            let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
                return bad("is not rate(value unit)");
            };
            let Ok(n) = n.parse::<u64>() else {
                return bad("has a rate value that is not a whole number");
            };
            if n == 0 || n > 1_000_000 {
                return bad("has a rate value outside 1..=1000000");
            }
            let per = match (unit, n) {
                ("minute", 1) | ("minutes", 2..) => 1,
                ("hour", 1) | ("hours", 2..) => 60,
                ("day", 1) | ("days", 2..) => 1440,
                _ => {
                    return bad(
                        "has a unit other than minute(s), hour(s), day(s) (singular for 1)",
                    );
                }
            };
            return Ok(Schedule::Rate { minutes: n * per });
        }
        if let Some(inner) = expr.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
            let fields: Vec<String> = inner.split_whitespace().map(str::to_string).collect();
            let Ok(fields) = <[String; 6]>::try_from(fields) else {
                return bad("does not have the six cron fields");
            };
            if fields.iter().any(|f| {
                !f.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ",-*/?LW#".contains(c))
            }) {
                return bad("has a cron field with characters EventBridge does not accept");
            }
            if fields[2] != "?" && fields[4] != "?" {
                return bad("sets both day-of-month and day-of-week; one of them must be ?");
            }
            return Ok(Schedule::Cron { fields });
        }
        bad("is not a schedule expression")
    }

    /// The expression as a Glue trigger takes it (cron only); `None` for a rate no cron
    /// step expresses (e.g. every 90 minutes).
    pub fn glue_cron(&self) -> Option<String> {
        Some(match self {
            Schedule::Cron { fields } => format!("cron({})", fields.join(" ")),
            Schedule::Rate { minutes } if *minutes < 60 && 60 % minutes == 0 => {
                format!("cron(0/{minutes} * * * ? *)")
            }
            Schedule::Rate { minutes }
                if *minutes < 1440 && minutes % 60 == 0 && 1440 % minutes == 0 =>
            {
                format!("cron(0 0/{} * * ? *)", minutes / 60)
            }
            Schedule::Rate { minutes } if *minutes == 1440 => "cron(0 0 * * ? *)".into(),
            Schedule::Rate { .. } => return None,
        })
    }

    /// The schedule as the EC2 daemon's job takes it: `every = "<n>m"` or a five-field
    /// `cron` (UTC). EventBridge numbers the days of the week 1-7 from Sunday, the
    /// daemon's cron 0-6 from Sunday: numeric days are shifted. `L`, `W` and `#` and a
    /// year other than `*` have no daemon equivalent and are refused.
    pub fn daemon_toml(&self) -> Result<(&'static str, String)> {
        match self {
            Schedule::Rate { minutes } => Ok(("every", format!("{minutes}m"))),
            Schedule::Cron { fields } => {
                let refuse = |why: &str| {
                    Err(Error::config(
                        "schedule",
                        format!(
                            "cron({}) {why} for the EC2 daemon; use rate(...) or a plain cron",
                            fields.join(" ")
                        ),
                    ))
                };
                if fields[5] != "*" {
                    return refuse("names years, which the daemon's cron cannot");
                }
                if fields.iter().any(|f| f.contains(['L', 'W', '#'])) {
                    return refuse("uses L, W or #, which the daemon's cron does not have");
                }
                let mut f: Vec<String> = fields[..5].iter().map(|f| f.replace('?', "*")).collect();
                // Shift every number of the day-of-week field (`1-5`, `2,4`, `*/2` keeps
                // its step: only numbers before a `/` or without one are days).
                let mut dow = String::new();
                for (i, part) in f[4].split('/').enumerate() {
                    if i > 0 {
                        dow.push('/');
                        dow.push_str(part);
                        continue;
                    }
                    let mut num = String::new();
                    for c in part.chars().chain(std::iter::once(' ')) {
                        if c.is_ascii_digit() {
                            num.push(c);
                            continue;
                        }
                        if !num.is_empty() {
                            let n: u32 = num.parse().unwrap_or(0);
                            if !(1..=7).contains(&n) {
                                return refuse("has a day of the week outside 1-7");
                            }
                            dow.push_str(&(n - 1).to_string());
                            num.clear();
                        }
                        if c != ' ' {
                            dow.push(c);
                        }
                    }
                }
                f[4] = dow;
                Ok(("cron", f.join(" ")))
            }
        }
    }
}

impl DeployConfig {
    /// Parse a deploy config (TOML). Errors name the field; values are never echoed.
    pub fn parse(text: &str) -> Result<Self> {
        toml::from_str(text)
            // The message only: toml's Display quotes the offending source line.
            .map_err(|e| {
                Error::config(
                    "deploy config",
                    connector_sdk::governance::toml_error(text, &e),
                )
            })
    }

    /// Read and parse a deploy config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(
                "deploy config",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        Self::parse(&text).map_err(|e| match e {
            Error::Config { field, message } => Error::Config {
                field,
                message: format!("{}: {message}", path.display()),
            },
            other => other,
        })
    }

    /// Check the config against the manifest; returns the output location, the streams,
    /// the parsed schedule and the source endpoints.
    pub fn validate(&self, manifest: &ConnectorManifest) -> Result<Validated> {
        manifest
            .require_runner(self.runner)
            .map_err(|e| Error::config("runner", e.to_string()))?;
        let declared: Vec<&str> = manifest
            .networking
            .iter()
            .filter(|n| n.pattern == self.network_pattern)
            .flat_map(|n| n.endpoints.iter().map(String::as_str))
            .collect();
        if declared.is_empty() {
            return Err(Error::config(
                "network_pattern",
                format!(
                    "`{}` is not declared by connector `{}`; its manifest declares {}",
                    spelled(&self.network_pattern),
                    manifest.name,
                    manifest
                        .networking
                        .iter()
                        .map(|n| spelled(&n.pattern))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let output: OutputLocation = self
            .output
            .parse()
            .map_err(|e: connector_sdk::Error| Error::config("output", e.to_string()))?;
        let streams = if self.streams.is_empty() {
            if manifest.dynamic_streams {
                return Err(Error::config(
                    "streams",
                    format!(
                        "is empty: connector `{}` finds its streams in the config at run time, so name the streams this stack extracts",
                        manifest.name
                    ),
                ));
            }
            manifest.stream_names()
        } else {
            let mut logical_ids = std::collections::BTreeSet::new();
            for s in &self.streams {
                manifest
                    .require_stream(s)
                    .map_err(|e| Error::config("streams", e.to_string()))?;
                // Stream names become folder names and CloudFormation logical ids.
                let mut chars = s.chars();
                let valid = s.len() <= 64
                    && chars.next().is_some_and(|c| c.is_ascii_lowercase())
                    && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !valid {
                    return Err(Error::config(
                        "streams",
                        format!(
                            "{s:?} is not a stream name ([a-z][a-z0-9_]*, at most 64 characters)"
                        ),
                    ));
                }
                if !logical_ids.insert(crate::template::logical(s)) {
                    return Err(Error::config(
                        "streams",
                        format!(
                            "{s:?} is listed twice, or differs from another stream only in underscores"
                        ),
                    ));
                }
            }
            self.streams.clone()
        };
        let schedule = Schedule::parse(&self.schedule)?;
        let mut endpoints = Vec::new();
        for raw in &self.source_endpoints {
            let e: Endpoint = raw.parse().map_err(|e: connector_sdk::Error| {
                Error::config("source_endpoints", e.to_string())
            })?;
            if !declared.iter().any(|d| endpoint_matches(d, &e)) {
                return Err(Error::config(
                    "source_endpoints",
                    format!(
                        "{e} does not match what connector `{}` declares for {}: {}",
                        manifest.name,
                        spelled(&self.network_pattern),
                        declared.join(", ")
                    ),
                ));
            }
            endpoints.push(e);
        }
        if endpoints.is_empty() {
            // Literal declared endpoints need no config; placeholders and wildcards do.
            for d in &declared {
                match d.parse::<Endpoint>() {
                    Ok(e) if !d.contains(['{', '*']) => endpoints.push(e),
                    _ => {
                        return Err(Error::config(
                            "source_endpoints",
                            format!(
                                "is empty, but the manifest's endpoint {d:?} depends on the config (or is a wildcard); list the host:port the config resolves to"
                            ),
                        ));
                    }
                }
            }
        }
        if !LOG_RETENTION_DAYS.contains(&self.log_retention_days) {
            return Err(Error::config(
                "log_retention_days",
                format!(
                    "{} is not a CloudWatch Logs retention; use one of {}",
                    self.log_retention_days,
                    LOG_RETENTION_DAYS.map(|d| d.to_string()).join(", ")
                ),
            ));
        }
        if !matches!(self.lambda.architecture.as_str(), "x86_64" | "arm64") {
            return Err(Error::config(
                "lambda.architecture",
                "must be x86_64 or arm64",
            ));
        }
        if self.lambda.reserved_concurrency == Some(0) {
            return Err(Error::config(
                "lambda.reserved_concurrency",
                "must be at least 1 (0 would stop the function from ever running)",
            ));
        }
        for (name, secret) in &self.secrets {
            let env_ok = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !env_ok {
                return Err(Error::config(
                    "secrets",
                    format!(
                        "key {name:?} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
                    ),
                ));
            }
            let secret_ok = !secret.is_empty()
                && secret.len() <= 512
                && secret
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c));
            if !secret_ok {
                return Err(Error::config(
                    "secrets",
                    format!(
                        "{name}: the value must be a Secrets Manager secret name (1-512 of A-Za-z0-9/_+=.@-), not the secret itself"
                    ),
                ));
            }
        }
        if self.runner == Runner::Glue && !self.secrets.is_empty() {
            return Err(Error::config(
                "secrets",
                "Glue jobs take no secrets from the template; reference them from the config file the job ships (connector secret sources)",
            ));
        }
        for (k, v) in &self.tags {
            if k.is_empty() || k.len() > 128 || v.len() > 256 || k.starts_with("aws:") {
                return Err(Error::config(
                    "tags",
                    format!(
                        "{k:?}: tag keys are 1-128 characters not starting with aws:, values at most 256"
                    ),
                ));
            }
        }
        let source = match &self.source_objects {
            None => None,
            Some(src) => {
                let location: OutputLocation =
                    src.location.parse().map_err(|e: connector_sdk::Error| {
                        Error::config("source_objects.location", e.to_string())
                    })?;
                if src.events && self.runner != Runner::Lambda {
                    return Err(Error::config(
                        "source_objects.events",
                        format!(
                            "object events invoke a Lambda function; this stack's runner is {} (leave events out: the schedule sweeps the prefix)",
                            spelled(&self.runner)
                        ),
                    ));
                }
                if src.events && streams.len() != 1 {
                    return Err(Error::config(
                        "source_objects.events",
                        format!(
                            "object events run one stream, and the stack extracts {}; list exactly one in `streams` (one stack per stream)",
                            streams.len()
                        ),
                    ));
                }
                Some(location)
            }
        };
        Ok(Validated {
            source,
            output,
            streams,
            schedule,
            endpoints,
        })
    }
}

/// What [`DeployConfig::validate`] derives.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The output location.
    pub output: OutputLocation,
    /// The streams this stack extracts.
    pub streams: Vec<String>,
    /// The schedule.
    pub schedule: Schedule,
    /// The source endpoints.
    pub endpoints: Vec<Endpoint>,
    /// The S3 objects the connector reads, if any.
    pub source: Option<OutputLocation>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_at_their_limits_and_convert() {
        assert_eq!(
            Schedule::parse("rate(1 minute)").unwrap(),
            Schedule::Rate { minutes: 1 }
        );
        assert_eq!(
            Schedule::parse("rate(2 hours)").unwrap(),
            Schedule::Rate { minutes: 120 }
        );
        let glue = |e: &str| Schedule::parse(e).unwrap().glue_cron();
        assert_eq!(glue("rate(1 day)").as_deref(), Some("cron(0 0 * * ? *)"));
        assert_eq!(
            glue("rate(15 minutes)").as_deref(),
            Some("cron(0/15 * * * ? *)")
        );
        assert_eq!(
            glue("rate(3 hours)").as_deref(),
            Some("cron(0 0/3 * * ? *)")
        );
        assert_eq!(glue("rate(7 minutes)"), None);
        assert_eq!(glue("rate(5 hours)"), None);
        assert_eq!(glue("rate(2 days)"), None);
        let daemon = |e: &str| {
            Schedule::parse(e)
                .unwrap()
                .daemon_toml()
                .map(|(k, v)| format!("{k} = {v}"))
        };
        assert_eq!(
            daemon("cron(5 2 ? * MON-FRI *)").unwrap(),
            "cron = 5 2 * * MON-FRI"
        );
        assert_eq!(daemon("rate(90 minutes)").unwrap(), "every = 90m");
        // EventBridge 1 = Sunday, 7 = Saturday; the daemon's cron 0 = Sunday.
        assert_eq!(daemon("cron(0 3 ? * 2-6 *)").unwrap(), "cron = 0 3 * * 1-5");
        assert_eq!(daemon("cron(0 3 ? * 1,7 *)").unwrap(), "cron = 0 3 * * 0,6");
        assert_eq!(daemon("cron(0 3 ? * 2/2 *)").unwrap(), "cron = 0 3 * * 1/2");
        assert_eq!(
            daemon("cron(0/15 * * * ? *)").unwrap(),
            "cron = 0/15 * * * *"
        );
        for bad in [
            "cron(0 3 ? * 6L *)",
            "cron(0 3 ? * 2#1 *)",
            "cron(0 3 L * ? *)",
            "cron(0 3 * * ? 2027)",
            "cron(0 3 ? * 8 *)",
        ] {
            let e = daemon(bad).unwrap_err().to_string();
            assert!(e.contains("EC2 daemon"), "{bad}: {e}");
        }
        for bad in [
            "rate(0 minutes)",
            "rate(1 minutes)",
            "rate(2 minute)",
            "rate(1 week)",
            "rate(-1 days)",
            "rate(1000001 minutes)",
            "cron(0 0 * * *)",
            "cron(0 0 1 * MON *)",
            "cron(0 0 * * ? *; rm)",
            "every 5m",
            "",
        ] {
            let e = Schedule::parse(bad).unwrap_err().to_string();
            assert!(e.contains("schedule"), "{bad}: {e}");
        }
    }
}
