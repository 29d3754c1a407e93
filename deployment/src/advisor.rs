//! The runner advisor: a workload profile in, the runner and network pattern the
//! platform's decision guidance (deployment-options.md) recommends out, with the reasons,
//! and warnings where the connector's manifest does not declare them.
//!
//! The guidance, in the order it is applied:
//! 1. EC2 when specialised environments or drivers are required and containerisation is
//!    not possible.
//! 2. Glue for large batch (terabyte scale) or distributed extract jobs — not for low
//!    latency (event-triggered) or small extractions.
//! 3. Lambda whenever the connector is lightweight (runs within Lambda's 15 minutes, fits
//!    its memory, no large libraries), stateless, and needs fast startup; not for long
//!    running sessions (continuous).
//! 4. Fargate for larger dependencies, longer runtimes or higher concurrency.
//!
//! Network: VPN for enterprise systems that cannot be exposed to AWS; PrivateLink for a
//! source exposed as an AWS or partner endpoint service; VPC endpoints for AWS services;
//! NAT allowlists only for sources on the public internet (less secure; preferred
//! patterns first whenever possible).

use connector_sdk::governance::spelled;
use connector_sdk::{ConnectorManifest, NetworkPattern, Runner};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What starts a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// A schedule (cron, rate).
    Schedule,
    /// An event (a file landing, a webhook, a queue message): low latency.
    Event,
    /// Always on (a long-running session, streaming).
    Continuous,
}

/// Where the source is, as seen from the platform's VPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SourceLocation {
    /// An AWS service (S3, DynamoDB, ...).
    AwsService,
    /// A service exposed as an AWS PrivateLink endpoint service (RDS behind an endpoint
    /// service, a partner's SaaS).
    EndpointService,
    /// An enterprise or on-premises system that cannot be exposed to AWS directly.
    OnPremises,
    /// A system on the public internet (a SaaS API).
    PublicInternet,
}

/// A workload profile (`--profile FILE`, TOML).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadProfile {
    /// Expected run time of one run, in seconds.
    pub expected_runtime_secs: u64,
    /// Peak memory of one run, in MiB.
    pub memory_mb: u32,
    /// Data read per run, in GiB.
    pub data_volume_gb: f64,
    /// Partitions read at once.
    #[serde(default = "one")]
    pub parallelism: u32,
    /// What starts a run.
    pub trigger: Trigger,
    /// Where the source is.
    pub source: SourceLocation,
    /// The connector needs large libraries or heavy dependencies (beyond Lambda's
    /// package size).
    #[serde(default)]
    pub large_dependencies: bool,
    /// The connector needs a specialised environment (non-standard drivers or libraries,
    /// custom network adapters).
    #[serde(default)]
    pub specialized_environment: bool,
    /// The connector can run in a container.
    #[serde(default = "yes")]
    pub containerizable: bool,
    /// The extraction is distributed (Spark) by nature.
    #[serde(default)]
    pub distributed: bool,
    /// Runs keep no state between them but what the SDK commits with the data.
    #[serde(default = "yes")]
    pub stateless: bool,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// Lambda's hard limits.
const LAMBDA_MAX_SECS: u64 = 900;
const LAMBDA_MAX_MEMORY_MB: u32 = 10_240;
/// Beyond this many partitions at once, a run wants a container's vCPUs.
const LAMBDA_MAX_PARALLELISM: u32 = 2;
/// Terabyte scale: Glue's territory.
const GLUE_MIN_GB: f64 = 1000.0;

/// The advice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    /// The recommended runner.
    pub runner: Runner,
    /// The recommended network pattern.
    pub network_pattern: NetworkPattern,
    /// Why, one line per rule of the guidance that decided.
    pub reasons: Vec<String>,
    /// What to look at: undeclared runner or pattern, guidance caveats.
    pub warnings: Vec<String>,
}

impl WorkloadProfile {
    /// Parse a profile (TOML).
    pub fn parse(text: &str) -> Result<Self> {
        let p: WorkloadProfile = toml::from_str(text).map_err(|e| {
            Error::config(
                "workload profile",
                connector_sdk::governance::toml_error(text, &e),
            )
        })?;
        if !(p.data_volume_gb.is_finite() && p.data_volume_gb >= 0.0) {
            return Err(Error::config(
                "data_volume_gb",
                "must be a number of GiB, 0 or more",
            ));
        }
        if p.parallelism == 0 || p.memory_mb == 0 || p.expected_runtime_secs == 0 {
            return Err(Error::config(
                "parallelism, memory_mb, expected_runtime_secs",
                "must be at least 1",
            ));
        }
        Ok(p)
    }
}

/// The recommendation for `profile`, with warnings against `manifest` when given.
pub fn advise(profile: &WorkloadProfile, manifest: Option<&ConnectorManifest>) -> Advice {
    let mut reasons = Vec::new();
    let mut warnings = Vec::new();
    let p = profile;
    let runner = if p.specialized_environment && !p.containerizable {
        reasons.push("EC2: the connector needs a specialised environment or drivers and cannot be containerised (use EC2 when specialised environments or drivers are required and containerisation is not possible)".into());
        warnings.push("EC2 needs explicit lifecycle management: the scaling group, patching and monitoring are the operator's".into());
        Runner::Ec2
    } else if p.distributed || p.data_volume_gb >= GLUE_MIN_GB {
        reasons.push(format!(
            "Glue: {} (use Glue for large batch or distributed extract jobs)",
            if p.distributed {
                "the extraction is distributed".to_string()
            } else {
                format!("{} GiB per run is terabyte scale", p.data_volume_gb)
            }
        ));
        if p.trigger != Trigger::Schedule {
            warnings.push("Glue is not recommended for low latency: its jobs take minutes to start; keep event-driven or continuous work on Lambda or Fargate".into());
        }
        Runner::Glue
    } else {
        let mut not_lambda = Vec::new();
        if p.expected_runtime_secs > LAMBDA_MAX_SECS {
            not_lambda.push(format!(
                "runs of {} s exceed Lambda's {LAMBDA_MAX_SECS} s",
                p.expected_runtime_secs
            ));
        }
        if p.memory_mb > LAMBDA_MAX_MEMORY_MB {
            not_lambda.push(format!(
                "{} MiB exceeds Lambda's {LAMBDA_MAX_MEMORY_MB} MiB",
                p.memory_mb
            ));
        }
        if p.large_dependencies {
            not_lambda.push("large libraries do not fit Lambda's package size".into());
        }
        if p.specialized_environment {
            not_lambda.push("specialised drivers or libraries are not lightweight".into());
        }
        if p.trigger == Trigger::Continuous {
            not_lambda.push("long-running sessions should not use Lambda".into());
        }
        if !p.stateless {
            not_lambda.push("the connector keeps state between runs".into());
        }
        if p.parallelism > LAMBDA_MAX_PARALLELISM {
            not_lambda.push(format!(
                "{} parallel reads need more concurrency than one function invocation",
                p.parallelism
            ));
        }
        if not_lambda.is_empty() {
            reasons.push(format!(
                "Lambda: lightweight ({} s, {} MiB), stateless, {} (use Lambda whenever the connector is lightweight, stateless, and requires fast startup)",
                p.expected_runtime_secs,
                p.memory_mb,
                match p.trigger {
                    Trigger::Event => "event-driven: fast startup matters",
                    _ => "scheduled",
                }
            ));
            Runner::Lambda
        } else {
            if !p.containerizable {
                reasons.push(format!(
                    "EC2: not lightweight enough for Lambda ({}), and the connector cannot be containerised for Fargate (use EC2 when containerisation is not possible)",
                    not_lambda.join("; ")
                ));
                warnings.push("EC2 needs explicit lifecycle management: the scaling group, patching and monitoring are the operator's".into());
                return finish(p, manifest, Runner::Ec2, reasons, warnings);
            }
            reasons.push(format!(
                "Fargate: {} (use Fargate for larger dependencies, longer runtimes, or higher concurrency)",
                not_lambda.join("; ")
            ));
            if p.specialized_environment {
                reasons.push("the specialised environment can be containerised, so EC2's explicit lifecycle management is not needed".into());
            }
            Runner::Fargate
        }
    };
    finish(p, manifest, runner, reasons, warnings)
}

/// The network pattern, and the warnings against the manifest.
fn finish(
    p: &WorkloadProfile,
    manifest: Option<&ConnectorManifest>,
    runner: Runner,
    mut reasons: Vec<String>,
    mut warnings: Vec<String>,
) -> Advice {
    let network_pattern = match p.source {
        NetworkSource::OnPremises => {
            reasons.push("VPN: the source is an enterprise system that cannot be exposed directly to AWS (use VPN or site-to-site tunnels)".into());
            NetworkPattern::Vpn
        }
        NetworkSource::EndpointService => {
            reasons.push("PrivateLink: the source is exposed as an AWS or partner endpoint service (PrivateLink is preferred; no public IPs, no internet)".into());
            NetworkPattern::Privatelink
        }
        NetworkSource::AwsService => {
            reasons.push("VPC endpoint: the source is an AWS service reachable on the AWS backbone (prefer VPC endpoints over NAT gateways)".into());
            NetworkPattern::VpcEndpoint
        }
        NetworkSource::PublicInternet => {
            reasons.push("NAT allowlist: the source is on the public internet, the only case for a NAT gateway with fixed IPs".into());
            warnings.push("a NAT allowlist is less secure than PrivateLink or VPN: ask the provider for a PrivateLink endpoint service first".into());
            NetworkPattern::NatAllowlist
        }
    };
    if let Some(m) = manifest {
        if !m.runners.contains_key(&runner) {
            warnings.push(format!(
                "connector `{}` does not declare the {runner} runner (declared: {}); add [runners.{runner}] to connector.toml and test it in the runner matrix before deploying",
                m.name,
                m.runners.keys().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        if !m.networking.iter().any(|n| n.pattern == network_pattern) {
            warnings.push(format!(
                "connector `{}` does not declare the {} network pattern (declared: {})",
                m.name,
                spelled(&network_pattern),
                m.networking
                    .iter()
                    .map(|n| spelled(&n.pattern))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Advice {
        runner,
        network_pattern,
        reasons,
        warnings,
    }
}

use SourceLocation as NetworkSource;

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(extra: &str) -> WorkloadProfile {
        // A lightweight scheduled API pull, changed by `extra` (later keys win).
        let mut t: toml::Table = toml::from_str(
            "expected_runtime_secs = 120\nmemory_mb = 512\ndata_volume_gb = 0.5\ntrigger = \"schedule\"\nsource = \"public-internet\"\n",
        )
        .unwrap();
        let e: toml::Table = toml::from_str(extra).unwrap();
        t.extend(e);
        WorkloadProfile::parse(&toml::to_string(&t).unwrap()).unwrap()
    }

    fn runner(extra: &str) -> Runner {
        advise(&profile(extra), None).runner
    }

    /// Every row of deployment-options.md's decision guidance, and the runner sections'
    /// limits, as a case with the expected runner and pattern.
    #[test]
    fn every_row_of_the_decision_guidance() {
        // "Use Lambda whenever the connector is lightweight, stateless, and requires fast startup."
        assert_eq!(runner(""), Runner::Lambda);
        assert_eq!(runner("trigger = \"event\""), Runner::Lambda);
        assert_eq!(
            runner("expected_runtime_secs = 900\nmemory_mb = 10240\nparallelism = 2"),
            Runner::Lambda
        );
        // "Use Fargate for connectors with larger dependencies, longer runtimes, or higher
        // concurrency requirements."
        assert_eq!(runner("large_dependencies = true"), Runner::Fargate);
        assert_eq!(runner("expected_runtime_secs = 901"), Runner::Fargate);
        assert_eq!(runner("parallelism = 3"), Runner::Fargate);
        assert_eq!(runner("memory_mb = 10241"), Runner::Fargate);
        // Lambda constraints: long running sessions should not use Lambda; stateful neither.
        assert_eq!(runner("trigger = \"continuous\""), Runner::Fargate);
        assert_eq!(runner("stateless = false"), Runner::Fargate);
        // "Use EC2 when specialized environments or drivers are required and
        // containerization is not possible."
        assert_eq!(
            runner("specialized_environment = true\ncontainerizable = false"),
            Runner::Ec2
        );
        // ... and only then: a containerisable specialised environment is a container.
        assert_eq!(runner("specialized_environment = true"), Runner::Fargate);
        assert_eq!(runner("containerizable = false"), Runner::Lambda);
        // Not lightweight and not containerisable: only EC2 is left.
        assert_eq!(
            runner("containerizable = false\nexpected_runtime_secs = 3600"),
            Runner::Ec2
        );
        // "Use Glue for large batch or distributed extract jobs."
        assert_eq!(runner("data_volume_gb = 1000"), Runner::Glue);
        assert_eq!(runner("data_volume_gb = 999.9"), Runner::Lambda);
        assert_eq!(
            runner("distributed = true\ndata_volume_gb = 50"),
            Runner::Glue
        );
        let a = advise(&profile("data_volume_gb = 5000\ntrigger = \"event\""), None);
        assert_eq!(a.runner, Runner::Glue);
        assert!(
            a.warnings
                .iter()
                .any(|w| w.contains("not recommended for low latency")),
            "{a:?}"
        );
        let a = advise(
            &profile("distributed = true\ndata_volume_gb = 1\nsource = \"aws-service\""),
            None,
        );
        assert!(a.warnings.is_empty(), "distributed by nature: {a:?}");
        let a = advise(
            &profile("data_volume_gb = 1000\nsource = \"aws-service\""),
            None,
        );
        assert!(a.warnings.is_empty(), "{a:?}");

        // Networking rows.
        let pattern = |s: &str| advise(&profile(&format!("source = \"{s}\"")), None);
        // "Prefer PrivateLink or VPC endpoints over NAT gateways whenever possible."
        assert_eq!(
            pattern("endpoint-service").network_pattern,
            NetworkPattern::Privatelink
        );
        assert_eq!(
            pattern("aws-service").network_pattern,
            NetworkPattern::VpcEndpoint
        );
        // "Use VPN or site to site tunnels when connecting to enterprise systems that
        // cannot be exposed directly to AWS."
        assert_eq!(pattern("on-premises").network_pattern, NetworkPattern::Vpn);
        // NAT allowlists: only for the public internet, with the caveat.
        let nat = pattern("public-internet");
        assert_eq!(nat.network_pattern, NetworkPattern::NatAllowlist);
        assert!(
            nat.warnings.iter().any(|w| w.contains("less secure")),
            "{nat:?}"
        );
        for a in [
            pattern("endpoint-service"),
            pattern("aws-service"),
            pattern("on-premises"),
        ] {
            assert!(a.warnings.is_empty(), "{a:?}");
            assert_eq!(a.reasons.len(), 2, "{a:?}");
        }
    }

    #[test]
    fn the_manifest_is_warned_about_when_it_does_not_declare_the_advice() {
        let pg = ConnectorManifest::parse(include_str!("../../connectors/postgres/connector.toml"))
            .unwrap();
        let a = advise(
            &profile("source = \"on-premises\"\nexpected_runtime_secs = 3600"),
            Some(&pg),
        );
        assert_eq!(
            (a.runner, a.network_pattern),
            (Runner::Fargate, NetworkPattern::Vpn)
        );
        assert!(a.warnings.is_empty(), "{a:?}");
        let a = advise(
            &profile(
                "source = \"public-internet\"\nspecialized_environment = true\ncontainerizable = false",
            ),
            Some(&pg),
        );
        assert_eq!(a.runner, Runner::Ec2);
        assert!(
            a.warnings.iter().any(|w| w.contains(
                "does not declare the nat-allowlist network pattern (declared: privatelink, vpn)"
            )),
            "{a:?}"
        );
        let mut lambda_only = pg.clone();
        lambda_only.runners.retain(|r, _| *r == Runner::Lambda);
        let a = advise(
            &profile("parallelism = 8\nsource = \"endpoint-service\""),
            Some(&lambda_only),
        );
        assert!(
            a.warnings
                .iter()
                .any(|w| w.contains("does not declare the fargate runner (declared: lambda)")),
            "{a:?}"
        );
    }

    #[test]
    fn a_bad_profile_names_the_field() {
        for (bad, field) in [
            (
                "expected_runtime_secs = 1\nmemory_mb = 1\ndata_volume_gb = 1\ntrigger = \"cron\"\nsource = \"aws-service\"",
                "trigger",
            ),
            (
                "expected_runtime_secs = 1\nmemory_mb = 1\ndata_volume_gb = -1\ntrigger = \"event\"\nsource = \"aws-service\"",
                "data_volume_gb",
            ),
            (
                "expected_runtime_secs = 1\nmemory_mb = 1\ndata_volume_gb = 1\ntrigger = \"event\"\nsource = \"aws-service\"\nparallelism = 0",
                "parallelism",
            ),
            (
                "expected_runtime_secs = 1\nmemory_mb = 1\ndata_volume_gb = 1\ntrigger = \"event\"\nsource = \"aws-service\"\ngpu = true",
                "gpu",
            ),
            (
                "memory_mb = 1\ndata_volume_gb = 1\ntrigger = \"event\"\nsource = \"aws-service\"",
                "expected_runtime_secs",
            ),
        ] {
            let e = WorkloadProfile::parse(bad).unwrap_err().to_string();
            assert!(e.contains(field), "{bad}: {e}");
        }
    }
}
