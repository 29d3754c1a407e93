//! `cargo xtask govern`: deployment and governance as code, checked offline for every
//! connector in matrix.toml.
//!
//! 1. `<binary> govern --policy governance/policy.toml`: the manifest follows the policy.
//! 2. Every declared runner × declared network pattern: the connector's
//!    `deploy.example.toml` (or its `deploy.example.<pattern>.toml`, for a pattern whose
//!    config differs, e.g. another endpoint) with that runner and pattern, rendered by
//!    `<binary> deploy cloudformation`; plus every runner × all four patterns for a synthetic manifest
//!    that declares them all (so nat-allowlist and vpc-endpoint stacks of every runner
//!    are linted too).
//! 3. Every template: `<binary> govern` (the policy), `cfn-lint` (no errors) and
//!    `cfn-guard validate --rules governance/rules`.
//! 4. Each cfn-guard rule fails on a template broken for it (and `govern` names the same
//!    rule and resource), so a rule that checks nothing is caught.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use connector_sdk::{ConnectorManifest, Runner};
use serde_json::Value;

use crate::matrix_file::MatrixFile;
use crate::{entry_binary, workspace_root};

/// A manifest declaring every runner and every network pattern, for pattern coverage.
const COVERAGE_MANIFEST: &str = r#"
name = "pattern-coverage"
version = "1.0.0"
description = "Every runner and every network pattern, to lint every stack shape"
data_classification = "internal"
dynamic_streams = true
[runners.lambda]
memory_mb = 1024
vcpu = 1
max_runtime_secs = 900
[runners.fargate]
memory_mb = 2048
vcpu = 1
max_runtime_secs = 3600
[runners.ec2]
memory_mb = 2048
vcpu = 2
max_runtime_secs = 3600
[runners.glue]
memory_mb = 16384
vcpu = 4
max_runtime_secs = 3600
[[networking]]
pattern = "privatelink"
endpoints = ["{host}:{port}"]
[[networking]]
pattern = "vpn"
endpoints = ["{host}:{port}"]
[[networking]]
pattern = "nat-allowlist"
endpoints = ["api.example.com:443"]
[[networking]]
pattern = "vpc-endpoint"
endpoints = ["s3.amazonaws.com:443", "dynamodb.eu-west-1.amazonaws.com:443"]
"#;

fn tool(root: &Path, name: &str) -> PathBuf {
    let venv = root.join(".venv/bin").join(name);
    if venv.exists() {
        return venv;
    }
    let cargo = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cargo/bin")
        .join(name);
    if cargo.exists() {
        return cargo;
    }
    PathBuf::from(name)
}

struct Ran {
    code: i32,
    text: String,
}

fn run(cmd: &mut Command) -> Result<Ran> {
    let out = cmd
        .output()
        .with_context(|| format!("running {cmd:?} (did the setup scripts run?)"))?;
    Ok(Ran {
        code: out.status.code().unwrap_or(-1),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

fn spelled<T: serde::Serialize>(v: &T) -> String {
    connector_sdk::governance::spelled(v)
}

/// The connector's example deploy config for `pattern`: `deploy.example.<pattern>.toml`
/// when the connector has one (that pattern reaches another endpoint, so its config
/// differs), else `deploy.example.toml`.
fn example_config(dir: &Path, pattern: &str) -> Result<toml::Table> {
    let own = dir.join(format!("deploy.example.{pattern}.toml"));
    let path = if own.exists() {
        own
    } else {
        dir.join("deploy.example.toml")
    };
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} (every connector needs an example deploy config)",
            path.display()
        )
    })?;
    toml::from_str(&text).with_context(|| path.display().to_string())
}

/// The example deploy config of a connector, set to `runner` and `pattern`.
fn deploy_config(example: &toml::Table, runner: Runner, pattern: &str) -> toml::Table {
    let mut t = example.clone();
    t.insert("runner".into(), runner.as_str().into());
    t.insert("network_pattern".into(), pattern.into());
    if runner == Runner::Glue {
        // Glue jobs take no secrets from the template (their config file references them).
        t.remove("secrets");
    }
    t
}

/// Run every check; `Ok(false)` when one failed.
pub fn run_all() -> Result<bool> {
    let root = workspace_root();
    let file = MatrixFile::load(&root)?;
    let policy = root.join("governance/policy.toml");
    let rules = root.join("governance/rules");
    let out = root.join("target/govern");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let mut ok = true;
    let mut templates: Vec<(PathBuf, PathBuf)> = Vec::new(); // (binary, template)
    let fail = |msg: String| {
        eprintln!("FAIL {msg}");
        false
    };

    for entry in &file.connector {
        let binary = entry_binary(entry)?;
        let spec = run(Command::new(&binary).arg("spec"))?;
        let spec: Value = serde_json::from_str(&spec.text).context("spec printed no JSON")?;
        let manifest: ConnectorManifest = serde_json::from_value(spec["manifest"].clone())?;
        let r = run(Command::new(&binary)
            .args(["govern", "--policy"])
            .arg(&policy))?;
        if r.code != 0 {
            ok &= fail(format!(
                "{}: the manifest breaks the policy:\n{}",
                manifest.name, r.text
            ));
        }
        let dir = out.join(&manifest.name);
        std::fs::create_dir_all(&dir)?;
        let mut patterns: Vec<String> = manifest
            .networking
            .iter()
            .map(|n| spelled(&n.pattern))
            .collect();
        patterns.dedup();
        for runner in manifest.runners.keys() {
            for pattern in &patterns {
                let example = example_config(&root.join(&entry.dir), pattern)?;
                let stem = format!("{runner}-{pattern}");
                let cfg = dir.join(format!("{stem}.deploy.toml"));
                std::fs::write(
                    &cfg,
                    toml::to_string(&deploy_config(&example, *runner, pattern))?,
                )?;
                let tpl = dir.join(format!("{stem}.json"));
                let r = run(Command::new(&binary)
                    .args(["deploy", "cloudformation", "--config"])
                    .arg(&cfg)
                    .arg("--out")
                    .arg(&tpl))?;
                if r.code != 0 {
                    ok &= fail(format!(
                        "{} {stem}: deploy cloudformation: {}",
                        manifest.name,
                        r.text.trim()
                    ));
                    continue;
                }
                templates.push((binary.clone(), tpl));
            }
        }
    }

    // Pattern coverage: every runner × every pattern, rendered by the library.
    let coverage = ConnectorManifest::parse(COVERAGE_MANIFEST)?;
    let dir = out.join(&coverage.name);
    std::fs::create_dir_all(&dir)?;
    for runner in Runner::ALL {
        for n in &coverage.networking {
            let pattern = spelled(&n.pattern);
            let endpoints = match pattern.as_str() {
                "privatelink" | "vpn" => r#"source_endpoints = ["db.internal:5432"]"#,
                _ => "",
            };
            let secrets = if runner == Runner::Glue {
                ""
            } else {
                "secrets = { API_TOKEN = \"prod/api/token\" }"
            };
            let text = format!(
                "runner = \"{runner}\"\nnetwork_pattern = \"{pattern}\"\noutput = \"s3://acme-lake/raw/coverage\"\nstreams = [\"items\"]\nschedule = \"rate(6 hours)\"\n{endpoints}\n{secrets}\nsse_kms = true\nconfig = {{ host = \"db.internal\" }}\ntags = {{ owner = \"data-platform\", cost-center = \"4711\" }}\n"
            );
            let cfg = deployment::DeployConfig::parse(&text)?;
            let t = deployment::render(&coverage, &cfg)
                .with_context(|| format!("pattern coverage {runner} {pattern}"))?;
            let path = dir.join(format!("{runner}-{pattern}.json"));
            std::fs::write(&path, serde_json::to_string_pretty(&t)?)?;
            let v = deployment::check_template(
                &connector_sdk::GovernancePolicy::from_file(&policy)?,
                &t,
            );
            if !v.is_empty() {
                ok &= fail(format!("pattern coverage {runner} {pattern}: {v:?}"));
            }
            templates.push((PathBuf::new(), path));
        }
    }
    eprintln!(
        "==> {} templates rendered under {}",
        templates.len(),
        out.display()
    );

    // The policy on every connector's templates, through its own binary.
    for (binary, tpl) in &templates {
        if binary.as_os_str().is_empty() {
            continue;
        }
        let r = run(Command::new(binary)
            .args(["govern", "--policy"])
            .arg(&policy)
            .arg(tpl))?;
        if r.code != 0 {
            ok &= fail(format!("govern {}:\n{}", tpl.display(), r.text));
        }
    }
    // cfn-lint: no errors (exit code bit 2; warnings 4 and informational 8 are printed).
    let mut lint = Command::new(tool(&root, "cfn-lint"));
    lint.args(templates.iter().map(|(_, t)| t));
    let r = run(&mut lint)?;
    // 1: cfn-lint itself failed; 2: errors.
    if r.code & 3 != 0 || r.code < 0 {
        ok &= fail(format!("cfn-lint found errors:\n{}", r.text));
    } else {
        eprintln!(
            "==> cfn-lint: no errors in {} templates{}",
            templates.len(),
            if r.text.trim().is_empty() {
                String::new()
            } else {
                format!("\n{}", r.text)
            }
        );
    }
    // cfn-guard on every template.
    for (_, tpl) in &templates {
        let r = run(Command::new(tool(&root, "cfn-guard"))
            .args(["validate", "-S", "fail", "--rules"])
            .arg(&rules)
            .arg("--data")
            .arg(tpl))?;
        if r.code != 0 {
            ok &= fail(format!("cfn-guard {}:\n{}", tpl.display(), r.text));
        }
    }
    eprintln!("==> cfn-guard: every template passes {}", rules.display());

    ok &= broken_templates_fail(&root, &file, &out, &policy, &rules)?;
    Ok(ok)
}

/// One template broken per rule: cfn-guard fails naming the rule, and `govern` names its
/// own rule and the resource.
fn broken_templates_fail(
    root: &Path,
    file: &MatrixFile,
    out: &Path,
    policy: &Path,
    rules: &Path,
) -> Result<bool> {
    let pg = file
        .connector
        .iter()
        .find(|c| c.binary == "postgres-connector")
        .context("matrix.toml has no postgres-connector")?;
    let binary = entry_binary(pg)?;
    let base = |name: &str| -> Result<Value> {
        let p = out.join("postgres-connector").join(name);
        Ok(serde_json::from_str(
            &std::fs::read_to_string(&p).with_context(|| p.display().to_string())?,
        )?)
    };
    type Break = fn(&mut Value);
    let cases: Vec<(&str, &str, &str, &str, Break)> = vec![
        (
            "fargate-privatelink.json",
            "no_public_ip",
            "no-public-ip",
            "Schedule",
            |t| {
                t["Resources"]["Schedule"]["Properties"]["Target"]["EcsParameters"]["NetworkConfiguration"]
                    ["AwsvpcConfiguration"]["AssignPublicIp"] = "ENABLED".into();
            },
        ),
        (
            "ec2-vpn.json",
            "no_public_ip",
            "no-public-ip",
            "LaunchTemplate",
            |t| {
                t["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["NetworkInterfaces"]
                    [0]["AssociatePublicIpAddress"] = true.into();
            },
        ),
        (
            "fargate-privatelink.json",
            "no_internet_egress_for_private_patterns",
            "no-internet-egress",
            "RunnerEgressSource5432",
            |t| {
                t["Resources"]["RunnerEgressSource5432"]["Properties"]["CidrIp"] =
                    "0.0.0.0/0".into();
                if let Some(p) =
                    t["Resources"]["RunnerEgressSource5432"]["Properties"].as_object_mut()
                {
                    p.remove("DestinationSecurityGroupId");
                }
            },
        ),
        (
            "lambda-vpn.json",
            "no_internet_egress_for_private_patterns",
            "no-internet-egress",
            "RunnerSecurityGroup",
            |t| {
                if let Some(p) = t["Resources"]["RunnerSecurityGroup"]["Properties"].as_object_mut()
                {
                    p.remove("SecurityGroupEgress");
                }
            },
        ),
        (
            "lambda-privatelink.json",
            "encryption_at_rest",
            "encryption-at-rest",
            "LogGroup",
            |t| {
                if let Some(p) = t["Resources"]["LogGroup"]["Properties"].as_object_mut() {
                    p.remove("KmsKeyId");
                }
            },
        ),
        (
            "ec2-privatelink.json",
            "encryption_at_rest",
            "encryption-at-rest",
            "LaunchTemplate",
            |t| {
                t["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["BlockDeviceMappings"]
                    [0]["Ebs"]["Encrypted"] = false.into();
            },
        ),
        (
            "glue-vpn.json",
            "no_wildcard_iam_actions",
            "no-wildcard-actions",
            "JobRole",
            |t| {
                t["Resources"]["JobRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                    [0]["Action"] = serde_json::json!(["s3:*"]);
            },
        ),
        (
            "fargate-vpn.json",
            "no_wildcard_iam_actions",
            "no-wildcard-actions",
            "TaskRole",
            |t| {
                t["Resources"]["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                    [0]["Action"] = serde_json::json!("*");
            },
        ),
    ];
    let dir = out.join("broken");
    std::fs::create_dir_all(&dir)?;
    let mut ok = true;
    for (i, (from, guard_rule, govern_rule, resource, breaks)) in cases.into_iter().enumerate() {
        let mut t = base(from)?;
        breaks(&mut t);
        let path = dir.join(format!("{i}-{guard_rule}-{from}"));
        std::fs::write(&path, serde_json::to_string_pretty(&t)?)?;
        let g = run(Command::new(tool(root, "cfn-guard"))
            .args(["validate", "-S", "fail", "--rules"])
            .arg(rules)
            .arg("--data")
            .arg(&path))?;
        let names_rule = g.text.contains(&format!("Rule = {guard_rule}"))
            || g.text.contains(&format!("{guard_rule} FAIL"));
        if g.code == 0 || !names_rule {
            ok = false;
            eprintln!(
                "FAIL cfn-guard rule {guard_rule} did not fail on {} (exit {}):\n{}",
                path.display(),
                g.code,
                g.text
            );
        }
        let v = run(Command::new(&binary)
            .args(["govern", "--policy"])
            .arg(policy)
            .arg(&path))?;
        let line = format!("[{govern_rule}] {} Resources.{resource}:", path.display());
        if v.code != 2 || !v.text.contains(&line) {
            ok = false;
            eprintln!(
                "FAIL govern did not report `{line}` (exit {}):\n{}",
                v.code, v.text
            );
        }
    }
    if ok {
        eprintln!("==> every cfn-guard rule and govern rule fails on its broken template");
    }
    if !ok {
        bail!("a governance rule let a broken template through");
    }
    Ok(ok)
}
