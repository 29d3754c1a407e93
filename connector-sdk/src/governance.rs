//! Governance: the platform's policy (per data classification: allowed runners and
//! network patterns, required tags, encryption) and the checks that need no I/O — a
//! manifest against the policy, and the source endpoints a config resolves to against the
//! endpoints the manifest (and the deployment) declare. The core runs the run-time half
//! before any I/O; `govern` runs the offline half on manifests and rendered templates.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest::{ConnectorManifest, DataClassification, NetworkPattern, Runner};

/// The repository's policy (`governance/policy.toml`), embedded in every binary: what the
/// run-time check uses unless a policy file is given.
pub const DEFAULT_POLICY: &str = include_str!("../../governance/policy.toml");

/// The governance policy file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GovernancePolicy {
    /// The rules of every data classification (all four must be listed).
    pub classification: BTreeMap<DataClassification, ClassificationRules>,
}

/// What a connector of one data classification may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassificationRules {
    /// Runners it may be deployed on.
    pub runners: Vec<Runner>,
    /// Network patterns it may reach its source through.
    pub network_patterns: Vec<NetworkPattern>,
    /// Whether a security group may allow egress to 0.0.0.0/0 (only with `nat-allowlist`).
    #[serde(default)]
    pub internet_egress: bool,
    /// The output must be encrypted with SSE-KMS under a given key.
    #[serde(default)]
    pub sse_kms: bool,
    /// Tag keys every taggable resource of a deployment carries.
    #[serde(default)]
    pub required_tags: Vec<String>,
}

/// One broken rule: which rule, on which resource (a manifest field, a template's logical
/// id), and what is wrong and what would be right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule's name (`allowed-runners`, `no-public-ip`, ...).
    pub rule: &'static str,
    /// Where: `manifest runners.ec2`, `template Resource TaskSecurityGroup`, ...
    pub resource: String,
    /// What is wrong and what would be right, one line.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.rule, self.resource, self.message)
    }
}

/// A TOML parse error as one line, `line N: message`, never quoting the input: toml's
/// own Display shows the offending source line, and a value in the wrong place (or a
/// file that is not what it should be) may be a secret.
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = crate::extract::redact_serde_message(e.message());
    let Some(span) = e.span() else {
        return msg;
    };
    let before = text.get(..span.start).unwrap_or("");
    let line_no = before.matches('\n').count() + 1;
    // The key of that line, when it has one (`key = value`): never the value.
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line.split_once('=').map(|(k, _)| k.trim()).filter(|k| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    });
    match key {
        Some(k) if !msg.contains(&format!("`{k}`")) => format!("line {line_no}, `{k}`: {msg}"),
        _ => format!("line {line_no}: {msg}"),
    }
}

/// A manifest enum as it is spelled in TOML (`vpc-endpoint`, `confidential`).
pub fn spelled<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

fn list<T: Serialize>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items.iter().map(spelled).collect::<Vec<_>>().join(", ")
}

impl GovernancePolicy {
    /// Parse and validate a policy. Errors name the field.
    pub fn parse(text: &str) -> Result<Self> {
        let policy: GovernancePolicy = toml::from_str(text).map_err(|e| {
            // The message only: toml's Display quotes the offending source line, and a
            // file that is not a policy (a mistyped path) may hold secrets.
            Error::config(format!("governance policy: {}", toml_error(text, &e)))
        })?;
        for c in [
            DataClassification::Public,
            DataClassification::Internal,
            DataClassification::Confidential,
            DataClassification::Restricted,
        ] {
            if !policy.classification.contains_key(&c) {
                return Err(Error::config(format!(
                    "governance policy: [classification.{}] is missing; every classification (public, internal, confidential, restricted) needs its rules",
                    spelled(&c)
                )));
            }
        }
        Ok(policy)
    }

    /// Read and parse a policy file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config_caused(
                format!("cannot read governance policy {}: {e}", path.display()),
                e,
            )
        })?;
        Self::parse(&text).map_err(|e| match e {
            Error::Config { message, source } => Error::Config {
                message: format!("{}: {message}", path.display()),
                source,
            },
            other => other,
        })
    }

    /// The embedded repository policy ([`DEFAULT_POLICY`]).
    pub fn embedded() -> Self {
        // The embedded file is checked by this module's tests; a broken one is a bug.
        Self::parse(DEFAULT_POLICY).expect("governance/policy.toml is valid")
    }

    /// The rules for `classification`.
    pub fn rules(&self, classification: DataClassification) -> &ClassificationRules {
        // `parse` guarantees every classification is present.
        &self.classification[&classification]
    }

    /// Every rule `manifest` breaks: a declared runner or network pattern the policy does
    /// not allow for the manifest's classification.
    pub fn check_manifest(&self, manifest: &ConnectorManifest) -> Vec<Violation> {
        let class = manifest.data_classification;
        let rules = self.rules(class);
        let mut out = Vec::new();
        for runner in manifest.runners.keys() {
            if !rules.runners.contains(runner) {
                out.push(Violation {
                    rule: "allowed-runners",
                    resource: format!("manifest {} runners.{runner}", manifest.name),
                    message: format!(
                        "the `{runner}` runner is not allowed for {} data (allowed: {}); remove [runners.{runner}] or reclassify the connector",
                        spelled(&class),
                        list(&rules.runners)
                    ),
                });
            }
        }
        for (i, n) in manifest.networking.iter().enumerate() {
            if !rules.network_patterns.contains(&n.pattern) {
                out.push(Violation {
                    rule: "allowed-network-patterns",
                    resource: format!("manifest {} networking[{i}]", manifest.name),
                    message: format!(
                        "the `{}` network pattern is not allowed for {} data (allowed: {})",
                        spelled(&n.pattern),
                        spelled(&class),
                        list(&rules.network_patterns)
                    ),
                });
            }
        }
        out
    }

    /// `Ok` when `runner` may run a connector with `manifest`'s classification; otherwise
    /// [`Error::PolicyViolation`] naming the rule.
    pub fn require_runner_allowed(
        &self,
        manifest: &ConnectorManifest,
        runner: Runner,
    ) -> Result<()> {
        let class = manifest.data_classification;
        let rules = self.rules(class);
        if rules.runners.contains(&runner) {
            return Ok(());
        }
        Err(Error::PolicyViolation {
            message: format!(
                "[allowed-runners] connector `{}` holds {} data, which the governance policy does not allow on `{runner}` (allowed: {})",
                manifest.name,
                spelled(&class),
                list(&rules.runners)
            ),
        })
    }
}

/// A network endpoint: host (a name or an IP address) and TCP port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Host name (lower case) or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Endpoint {
    /// `host` and `port` as an endpoint (the host lower-cased: DNS names are
    /// case-insensitive).
    pub fn new(host: &str, port: u16) -> Self {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        // `db.internal.` (fully qualified) is `db.internal`.
        let host = host.strip_suffix('.').unwrap_or(host);
        Endpoint {
            host: host.to_ascii_lowercase(),
            port,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for Endpoint {
    type Err = Error;

    /// `host:port` or `[v6]:port`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::request(format!(
                "endpoint {s:?} is not host:port (e.g. db.internal:5432 or [fd00::1]:5432)"
            ))
        };
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        // A DNS name (letters, digits, dots, dashes, underscores) or an IP address; an
        // IPv6 address in brackets.
        let ipv6 = bare.parse::<std::net::Ipv6Addr>().is_ok();
        let name_ok = !bare.is_empty()
            && bare
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        let bracketed = host.starts_with('[') || host.ends_with(']');
        let bracketed_ok = host.starts_with('[') && host.ends_with(']');
        if port == 0 || !((ipv6 && bracketed_ok) || (!bracketed && name_ok)) {
            return Err(bad());
        }
        Ok(Endpoint::new(bare, port))
    }
}

/// Whether `endpoint` matches the manifest endpoint `declared` (`host:port`, where a
/// `{field}` part stands for whatever the config says).
pub fn endpoint_matches(declared: &str, endpoint: &Endpoint) -> bool {
    let Some((host, port)) = declared.rsplit_once(':') else {
        return false;
    };
    // A placeholder stands for a whole part: `{a}.corp.{b}` is not one.
    let placeholder = |s: &str| {
        s.len() > 2
            && s.starts_with('{')
            && s.ends_with('}')
            && !s[1..s.len() - 1].contains(['{', '}'])
    };
    let host_ok = placeholder(host)
        || Endpoint::new(host, endpoint.port).host == endpoint.host
        || host.strip_prefix("*.").is_some_and(|suffix| {
            endpoint
                .host
                .ends_with(&format!(".{}", suffix.to_ascii_lowercase()))
        });
    let port_ok = placeholder(port) || port.parse::<u16>().is_ok_and(|p| p == endpoint.port);
    host_ok && port_ok
}

/// The run-time endpoint check, before any I/O: every endpoint the connector says its
/// config reaches must match an endpoint the manifest declares and, when the deployment
/// pins endpoints (`allowed_endpoints`, rendered by `deploy`), be one of them.
pub fn require_declared_endpoints(
    manifest: &ConnectorManifest,
    resolved: &[String],
    allowed: &[Endpoint],
) -> Result<()> {
    let declared: Vec<&str> = manifest
        .networking
        .iter()
        .flat_map(|n| n.endpoints.iter().map(String::as_str))
        .collect();
    for raw in resolved {
        let endpoint: Endpoint = raw.parse().map_err(|_| Error::EndpointNotDeclared {
            endpoint: raw.clone(),
            declared: format!(
                "the config's source endpoint is not host:port; the manifest declares {}",
                declared.join(", ")
            ),
        })?;
        if !declared.iter().any(|d| endpoint_matches(d, &endpoint)) {
            return Err(Error::EndpointNotDeclared {
                endpoint: endpoint.to_string(),
                declared: format!(
                    "connector `{}` declares only {} in its manifest's [[networking]]",
                    manifest.name,
                    declared.join(", ")
                ),
            });
        }
        if !allowed.is_empty() && !allowed.contains(&endpoint) {
            return Err(Error::EndpointNotDeclared {
                endpoint: endpoint.to_string(),
                declared: format!(
                    "this deployment allows only {} (allowed_endpoints)",
                    allowed
                        .iter()
                        .map(Endpoint::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(class: &str, runners: &[&str], patterns: &[(&str, &str)]) -> ConnectorManifest {
        let mut t = format!(
            "name = \"x\"\nversion = \"1.0.0\"\ndescription = \"d\"\ndata_classification = \"{class}\"\ndynamic_streams = true\n"
        );
        for r in runners {
            t += &format!("[runners.{r}]\nmemory_mb = 512\nvcpu = 1\nmax_runtime_secs = 60\n");
        }
        for (p, e) in patterns {
            t += &format!("[[networking]]\npattern = \"{p}\"\nendpoints = [\"{e}\"]\n");
        }
        ConnectorManifest::parse(&t).unwrap()
    }

    #[test]
    fn the_embedded_policy_parses_and_a_missing_classification_is_named() {
        let p = GovernancePolicy::embedded();
        assert!(p.rules(DataClassification::Confidential).sse_kms);
        assert!(
            !p.rules(DataClassification::Restricted)
                .runners
                .contains(&Runner::Ec2)
        );
        let err = GovernancePolicy::parse(
            "[classification.public]\nrunners = []\nnetwork_patterns = []\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("[classification.internal] is missing"),
            "{err}"
        );
        let err = GovernancePolicy::parse("[classification.public]\nrunners = [\"k8s\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("k8s"), "{err}");
    }

    #[test]
    fn a_manifest_breaking_the_policy_names_the_rule_and_the_field() {
        let p = GovernancePolicy::embedded();
        let ok = manifest(
            "confidential",
            &["fargate"],
            &[("privatelink", "{host}:5432")],
        );
        assert!(p.check_manifest(&ok).is_empty());
        let bad = manifest(
            "restricted",
            &["ec2", "lambda"],
            &[
                ("nat-allowlist", "api.example.com:443"),
                ("vpn", "{host}:{port}"),
            ],
        );
        let v = p.check_manifest(&bad);
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].rule, "allowed-runners");
        assert_eq!(v[0].resource, "manifest x runners.ec2");
        assert_eq!(v[1].rule, "allowed-network-patterns");
        assert_eq!(v[1].resource, "manifest x networking[0]");
        assert!(v[1].message.contains("nat-allowlist"), "{}", v[1]);
        let e = p.require_runner_allowed(&bad, Runner::Ec2).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::INPUT);
        assert!(
            e.to_string().contains("allowed: lambda, fargate, glue"),
            "{e}"
        );
        assert!(p.require_runner_allowed(&bad, Runner::Lambda).is_ok());
    }

    #[test]
    fn endpoints_parse_and_match_at_their_limits() {
        for bad in [
            "",
            "host",
            "host:",
            ":5432",
            "host:0",
            "host:65536",
            "fd00::1:5432",
            "a b:1",
            "u@h:1",
            "${x}:1",
            "h'o:1",
            "a,b:1",
            "[not-v6]:1",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "DB.Internal:65535".parse::<Endpoint>().unwrap(),
            Endpoint::new("db.internal", 65535)
        );
        assert_eq!(
            "[FD00::1]:1".parse::<Endpoint>().unwrap().to_string(),
            "[fd00::1]:1"
        );
        let e = Endpoint::new("db.internal", 5432);
        assert!(endpoint_matches("{host}:{port}", &e));
        assert!(endpoint_matches("{host}:5432", &e));
        assert!(!endpoint_matches("{host}:5433", &e));
        assert!(endpoint_matches("DB.INTERNAL:{port}", &e));
        assert!(!endpoint_matches("db.internal.evil:5432", &e));
        assert!(endpoint_matches("*.internal:5432", &e));
        assert!(!endpoint_matches(
            "*.internal:5432",
            &Endpoint::new("internal", 5432)
        ));
        assert!(!endpoint_matches(
            "*.internal:5432",
            &Endpoint::new("x.evilinternal", 5432)
        ));
        assert!(!endpoint_matches(
            "{a}.corp.{b}:5432",
            &Endpoint::new("evil.example.com", 5432)
        ));
        assert_eq!("DB.internal.:5432".parse::<Endpoint>().unwrap(), e);
    }

    #[test]
    fn undeclared_or_unpinned_endpoints_are_refused_naming_what_is_declared() {
        let m = manifest(
            "public",
            &["lambda"],
            &[("nat-allowlist", "api.example.com:443")],
        );
        assert!(require_declared_endpoints(&m, &["api.example.com:443".into()], &[]).is_ok());
        let e = require_declared_endpoints(&m, &["api.example.com:8443".into()], &[]).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::INPUT);
        let msg = e.to_string();
        assert!(
            msg.contains("api.example.com:8443")
                && msg.contains("declares only api.example.com:443"),
            "{msg}"
        );
        assert!(require_declared_endpoints(&m, &["evil.example.com:443".into()], &[]).is_err());
        let pg = manifest(
            "confidential",
            &["fargate"],
            &[("privatelink", "{host}:{port}")],
        );
        let pinned = [Endpoint::new("db.internal", 5432)];
        assert!(require_declared_endpoints(&pg, &["db.internal:5432".into()], &pinned).is_ok());
        let msg = require_declared_endpoints(&pg, &["db.internal:5433".into()], &pinned)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("db.internal:5433") && msg.contains("allows only db.internal:5432"),
            "{msg}"
        );
        assert!(require_declared_endpoints(&pg, &["10.0.0.9:5432".into()], &pinned).is_err());
        assert!(require_declared_endpoints(&pg, &["not an endpoint".into()], &[]).is_err());
    }
}
