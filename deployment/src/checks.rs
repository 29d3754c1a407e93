//! `govern`: the governance policy checked on a manifest and on CloudFormation templates
//! (ours or hand-edited). Each violation names the rule and the resource.
//!
//! Rules on a template:
//! - `allowed-runners`, `allowed-network-patterns`: the template's `Metadata.Connector`
//!   runner and pattern are allowed for its data classification;
//! - `no-public-ip`: no launch template, network interface or scheduled task with a
//!   public IP;
//! - `no-internet-egress`: no security group without explicit egress (CloudFormation's
//!   default is allow-all) and no egress to 0.0.0.0/0 or ::/0, unless the pattern is
//!   `nat-allowlist` and the classification allows internet egress;
//! - `encryption-at-rest`: disks encrypted always; with SSE-KMS required for the
//!   classification, the output key, logs, queues, repositories and Glue jobs use KMS;
//! - `no-wildcard-actions`: no IAM action `*` or `service:*`;
//! - `no-wildcard-resources`: `Resource: "*"` only for actions IAM cannot scope;
//! - `required-tags`: every taggable resource carries the classification's tag keys.

use std::path::Path;

use connector_sdk::governance::{GovernancePolicy, Violation, spelled};
use connector_sdk::{ConnectorManifest, DataClassification, NetworkPattern, Runner};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::iam::is_unscopable;

/// Read a template file (JSON; CloudFormation's YAML short forms are not read).
pub fn read_template(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Template(format!("cannot read template {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Template(format!(
            "{} is not a JSON CloudFormation template: {e} (render one with `deploy cloudformation`)",
            path.display()
        ))
    })
}

/// Every violation of `manifest` (see [`GovernancePolicy::check_manifest`]).
pub fn check_manifest(policy: &GovernancePolicy, manifest: &ConnectorManifest) -> Vec<Violation> {
    policy.check_manifest(manifest)
}

fn parse_spelled<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
    serde_json::from_value(v.clone()).ok()
}

/// Where tags are, per taggable resource type we render or expect.
fn tag_keys(ty: &str, props: &Value) -> Option<Vec<String>> {
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.get("Key").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let map = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    Some(match ty {
        "AWS::Lambda::Function"
        | "AWS::SQS::Queue"
        | "AWS::StepFunctions::StateMachine"
        | "AWS::IAM::Role"
        | "AWS::Logs::LogGroup"
        | "AWS::EC2::SecurityGroup"
        | "AWS::ECR::Repository"
        | "AWS::ECS::Cluster"
        | "AWS::ECS::TaskDefinition"
        | "AWS::EC2::EIP"
        | "AWS::EC2::NatGateway"
        | "AWS::AutoScaling::AutoScalingGroup" => list(&props["Tags"]),
        "AWS::Glue::Job" | "AWS::Glue::Trigger" => map(&props["Tags"]),
        "AWS::EC2::LaunchTemplate" => props["LaunchTemplateData"]["TagSpecifications"]
            .as_array()
            .and_then(|specs| {
                specs
                    .iter()
                    .find(|s| s["ResourceType"] == "instance")
                    .map(|s| list(&s["Tags"]))
            })
            .unwrap_or_default(),
        _ => return None,
    })
}

fn as_strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    }
}

fn is_internet(rule: &Value) -> bool {
    rule.get("CidrIp").and_then(Value::as_str) == Some("0.0.0.0/0")
        || rule.get("CidrIpv6").and_then(Value::as_str) == Some("::/0")
}

/// Every violation of `template` against `policy`.
pub fn check_template(policy: &GovernancePolicy, template: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut v = |rule: &'static str, resource: &str, message: String| {
        out.push(Violation {
            rule,
            resource: format!("Resources.{resource}"),
            message,
        })
    };
    let meta = &template["Metadata"]["Connector"];
    let Some(class) = parse_spelled::<DataClassification>(&meta["DataClassification"]) else {
        v(
            "connector-metadata",
            "(template)",
            "Metadata.Connector.DataClassification is missing or unknown; render the template with `deploy cloudformation`, which records the connector, runner, pattern and classification".into(),
        );
        return out;
    };
    let rules = policy.rules(class);
    let pattern = parse_spelled::<NetworkPattern>(&meta["NetworkPattern"]);
    let runner = parse_spelled::<Runner>(&meta["Runner"]);
    let class_name = spelled(&class);
    match runner {
        Some(r) if !rules.runners.contains(&r) => v(
            "allowed-runners",
            "(template)",
            format!("runner `{r}` is not allowed for {class_name} data"),
        ),
        None => v(
            "allowed-runners",
            "(template)",
            "Metadata.Connector.Runner is missing or unknown".into(),
        ),
        _ => {}
    }
    match pattern {
        Some(p) if !rules.network_patterns.contains(&p) => v(
            "allowed-network-patterns",
            "(template)",
            format!(
                "network pattern `{}` is not allowed for {class_name} data",
                spelled(&p)
            ),
        ),
        None => v(
            "allowed-network-patterns",
            "(template)",
            "Metadata.Connector.NetworkPattern is missing or unknown".into(),
        ),
        _ => {}
    }
    let internet_ok = pattern == Some(NetworkPattern::NatAllowlist) && rules.internet_egress;
    let kms_required = rules.sse_kms;
    if kms_required && meta["SseKms"] != Value::Bool(true) {
        v(
            "encryption-at-rest",
            "(template)",
            format!(
                "{class_name} data must be written with SSE-KMS: set sse_kms = true in the deploy config (KmsKeyArn parameter)"
            ),
        );
    }
    let empty = serde_json::Map::new();
    let resources = template["Resources"].as_object().unwrap_or(&empty);
    for (id, res) in resources {
        let ty = res["Type"].as_str().unwrap_or_default();
        let p = &res["Properties"];
        if let Some(keys) = tag_keys(ty, p) {
            let missing: Vec<&String> = rules
                .required_tags
                .iter()
                .filter(|t| !keys.contains(t))
                .collect();
            if !missing.is_empty() {
                v(
                    "required-tags",
                    id,
                    format!(
                        "{ty} lacks the tag(s) {} that {class_name} deployments require",
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
        match ty {
            "AWS::EC2::SecurityGroup" => match p
                .get("SecurityGroupEgress")
                .filter(|e| e.as_array().is_none_or(|a| !a.is_empty()))
            {
                // Missing or empty: CloudFormation adds its allow-all egress.
                None => v(
                    "no-internet-egress",
                    id,
                    "has no (or an empty) SecurityGroupEgress, so CloudFormation allows all egress; list the permitted egress".into(),
                ),
                Some(rules_) => {
                    for r in rules_.as_array().into_iter().flatten() {
                        if is_internet(r) && !internet_ok {
                            v(
                                "no-internet-egress",
                                id,
                                "allows egress to the internet (0.0.0.0/0 or ::/0); only nat-allowlist deployments of classifications that allow it may".into(),
                            );
                        }
                    }
                }
            },
            "AWS::EC2::SecurityGroupEgress" if is_internet(p) && !internet_ok => v(
                "no-internet-egress",
                id,
                "allows egress to the internet (0.0.0.0/0 or ::/0); only nat-allowlist deployments of classifications that allow it may".into(),
            ),
            "AWS::EC2::LaunchTemplate" => {
                let data = &p["LaunchTemplateData"];
                let nics = data["NetworkInterfaces"].as_array();
                let public = match nics {
                    None => true,
                    Some(n) => n
                        .iter()
                        .any(|nic| nic["AssociatePublicIpAddress"] != Value::Bool(false)),
                };
                if public {
                    v(
                        "no-public-ip",
                        id,
                        "instances may get a public IP: set NetworkInterfaces[].AssociatePublicIpAddress = false".into(),
                    );
                }
                for bd in data["BlockDeviceMappings"].as_array().into_iter().flatten() {
                    if bd["Ebs"].is_object() && bd["Ebs"]["Encrypted"] != Value::Bool(true) {
                        v("encryption-at-rest", id, "an EBS volume is not encrypted".into());
                    }
                    if kms_required && bd["Ebs"].is_object() && bd["Ebs"].get("KmsKeyId").is_none() {
                        v("encryption-at-rest", id, format!("{class_name} data: EBS volumes use the KMS key (KmsKeyId)"));
                    }
                }
                if data["MetadataOptions"]["HttpTokens"] != "required" {
                    v("no-public-ip", id, "IMDSv2 is not required (MetadataOptions.HttpTokens = required)".into());
                }
            }
            "AWS::EC2::Subnet" if p["MapPublicIpOnLaunch"] == Value::Bool(true) => v(
                "no-public-ip",
                id,
                "maps public IPs on launch".into(),
            ),
            "AWS::Scheduler::Schedule" | "AWS::ECS::Service" => {
                let aws = if ty == "AWS::ECS::Service" {
                    &p["NetworkConfiguration"]["AwsvpcConfiguration"]
                } else {
                    &p["Target"]["EcsParameters"]["NetworkConfiguration"]["AwsvpcConfiguration"]
                };
                if aws.is_object() && aws["AssignPublicIp"] != "DISABLED" {
                    v("no-public-ip", id, "tasks may get a public IP: set AssignPublicIp = DISABLED".into());
                }
            }
            "AWS::Logs::LogGroup" if kms_required && p.get("KmsKeyId").is_none() => v(
                "encryption-at-rest",
                id,
                format!("{class_name} data: the log group is encrypted with the KMS key (KmsKeyId)"),
            ),
            "AWS::SQS::Queue" if kms_required && p.get("KmsMasterKeyId").is_none() => v(
                "encryption-at-rest",
                id,
                format!("{class_name} data: the queue is encrypted with the KMS key (KmsMasterKeyId)"),
            ),
            "AWS::SQS::Queue"
                if p.get("KmsMasterKeyId").is_none() && p["SqsManagedSseEnabled"] != Value::Bool(true) =>
            {
                v("encryption-at-rest", id, "the queue is not encrypted (KmsMasterKeyId or SqsManagedSseEnabled)".into())
            }
            "AWS::ECR::Repository"
                if kms_required && p["EncryptionConfiguration"]["EncryptionType"] != "KMS" =>
            {
                v(
                    "encryption-at-rest",
                    id,
                    format!("{class_name} data: the repository is encrypted with the KMS key (EncryptionConfiguration)"),
                )
            }
            "AWS::Glue::Job" if kms_required && p.get("SecurityConfiguration").is_none() => v(
                "encryption-at-rest",
                id,
                format!("{class_name} data: the job uses a security configuration with SSE-KMS"),
            ),
            "AWS::Lambda::Function" if kms_required && p.get("KmsKeyArn").is_none() => v(
                "encryption-at-rest",
                id,
                format!("{class_name} data: the function's environment is encrypted with the KMS key (KmsKeyArn)"),
            ),
            "AWS::IAM::Role" | "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" => {
                let mut docs: Vec<&Value> = Vec::new();
                if ty == "AWS::IAM::Role" {
                    for pol in p["Policies"].as_array().into_iter().flatten() {
                        docs.push(&pol["PolicyDocument"]);
                    }
                } else {
                    docs.push(&p["PolicyDocument"]);
                }
                for doc in docs {
                    let statements = match &doc["Statement"] {
                        Value::Array(a) => a.iter().collect::<Vec<_>>(),
                        s @ Value::Object(_) => vec![s],
                        _ => vec![],
                    };
                    for s in statements {
                        if s["Effect"] != "Allow" {
                            continue;
                        }
                        let actions = as_strings(&s["Action"]);
                        let sid = s["Sid"].as_str().unwrap_or("(no Sid)");
                        if s.get("NotAction").is_some() {
                            v("no-wildcard-actions", id, format!("statement {sid} uses NotAction, which allows everything else"));
                        }
                        for a in &actions {
                            if a == "*" || a.ends_with(":*") {
                                v("no-wildcard-actions", id, format!("statement {sid} allows the wildcard action {a:?}; list the actions"));
                            }
                        }
                        if as_strings(&s["Resource"]).iter().any(|r| r == "*") {
                            for a in &actions {
                                if !is_unscopable(a) {
                                    v("no-wildcard-resources", id, format!("statement {sid} allows {a} on every resource; scope it to the resources it needs"));
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}
