//! `deploy fargate`: an ECS task definition (and the `run-task` input) rendered from the
//! connector manifest, so the size, stop timeout and networking never drift from what the
//! connector declares.

use clap::{Args, ValueEnum};
use connector_sdk::governance::spelled;
use connector_sdk::{ConnectorManifest, Runner};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// CPU units Fargate accepts, each with the memory sizes (MiB) it accepts:
/// `(cpu, min, max, step)` — from the ECS task definition parameters documentation.
pub const FARGATE_SIZES: &[(u32, u32, u32, u32)] = &[
    (256, 512, 2048, 512), // 512, 1024, 2048 (1536 is not offered; see is_valid_size)
    (512, 1024, 4096, 1024),
    (1024, 2048, 8192, 1024),
    (2048, 4096, 16384, 1024),
    (4096, 8192, 30720, 1024),
    (8192, 16384, 61440, 4096),
    (16384, 32768, 122880, 8192),
];

/// Whether Fargate accepts `cpu` units with `memory` MiB.
pub fn is_valid_size(cpu: u32, memory: u32) -> bool {
    if cpu == 256 {
        return matches!(memory, 512 | 1024 | 2048);
    }
    FARGATE_SIZES.iter().any(|&(c, min, max, step)| {
        c == cpu && (min..=max).contains(&memory) && memory.is_multiple_of(step)
    })
}

/// The smallest Fargate size with at least `vcpu` vCPUs and `memory_mb` MiB.
pub fn fargate_size(vcpu: f64, memory_mb: u32) -> Result<(u32, u32)> {
    let want_cpu = (vcpu * 1024.0).ceil().max(1.0) as u32;
    for &(cpu, min, max, step) in FARGATE_SIZES {
        if cpu < want_cpu || memory_mb > max {
            continue;
        }
        let mut memory = min.max(memory_mb);
        memory = memory.div_ceil(step) * step;
        if cpu == 256 && memory == 1536 {
            memory = 2048;
        }
        if is_valid_size(cpu, memory) {
            return Ok((cpu, memory));
        }
    }
    Err(Error::TaskDefinition(format!(
        "the manifest asks fargate for {vcpu} vCPU and {memory_mb} MiB; the largest Fargate task is 16 vCPU with 120 GiB"
    )))
}

/// Which document to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Document {
    /// Input of `aws ecs register-task-definition --cli-input-json`.
    TaskDefinition,
    /// Input of `aws ecs run-task --cli-input-json` (awsvpc, no public IP).
    RunTask,
}

/// Arguments of `deploy fargate`.
#[derive(Debug, Clone, Args)]
pub struct TaskDefinitionArgs {
    /// Container image, e.g. 111122223333.dkr.ecr.us-east-1.amazonaws.com/orders-demo:0.1.0.
    #[arg(long)]
    pub image: String,
    /// IAM role the task's code runs as (S3 writes, secrets it reads itself).
    #[arg(long, value_name = "ARN")]
    pub task_role_arn: String,
    /// IAM role ECS uses to pull the image, write logs and inject `secrets`.
    #[arg(long, value_name = "ARN")]
    pub execution_role_arn: String,
    /// AWS region (for the log configuration).
    #[arg(long)]
    pub region: String,
    /// Task definition family [default: the connector name].
    #[arg(long)]
    pub family: Option<String>,
    /// CloudWatch log group [default: /ecs/<connector>].
    #[arg(long)]
    pub log_group: Option<String>,
    /// Output location the task writes to (CONNECTOR_OUTPUT), s3://bucket/prefix.
    #[arg(long, value_name = "S3_URL")]
    pub output: String,
    /// Streams to extract (CONNECTOR_STREAMS; default: every stream).
    #[arg(long = "stream", value_name = "NAME")]
    pub streams: Vec<String>,
    /// The connector config as a Secrets Manager secret, injected as CONNECTOR_CONFIG.
    #[arg(long, value_name = "ARN")]
    pub config_secret_arn: Option<String>,
    /// More secrets injected as environment variables, NAME=ARN (repeatable), e.g.
    /// PGPASSWORD=arn:aws:secretsmanager:us-east-1:111122223333:secret:pg-AbCdEf.
    #[arg(long = "secret", value_name = "NAME=ARN")]
    pub secrets: Vec<String>,
    /// Seconds the container has after SIGTERM to commit its progress.
    #[arg(long, default_value_t = 25)]
    pub stop_budget_secs: u64,
    /// Subnets for `run-task` (private subnets; repeatable).
    #[arg(long = "subnet")]
    pub subnets: Vec<String>,
    /// Security groups for `run-task` (repeatable).
    #[arg(long = "security-group")]
    pub security_groups: Vec<String>,
    /// ECS cluster for `run-task`.
    #[arg(long, default_value = "default")]
    pub cluster: String,
    /// Which document to print.
    #[arg(long, value_enum, default_value_t = Document::TaskDefinition)]
    pub print: Document,
}

fn check_arn(what: &str, arn: &str, must_contain: &str, example: &str) -> Result<()> {
    if arn.starts_with("arn:") && arn.contains(must_contain) {
        Ok(())
    } else {
        Err(Error::TaskDefinition(format!(
            "{what} `{arn}` is not a valid ARN; expected something like {example}"
        )))
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Render the document `args.print` asks for.
pub fn render(manifest: &ConnectorManifest, args: &TaskDefinitionArgs) -> Result<Value> {
    let needs = manifest.require_runner(Runner::Fargate)?;
    let (cpu, memory) = fargate_size(needs.vcpu, needs.memory_mb)?;
    let family = args.family.clone().unwrap_or_else(|| manifest.name.clone());
    check_arn(
        "--task-role-arn",
        &args.task_role_arn,
        ":role/",
        "arn:aws:iam::111122223333:role/orders-demo-task",
    )?;
    check_arn(
        "--execution-role-arn",
        &args.execution_role_arn,
        ":role/",
        "arn:aws:iam::111122223333:role/ecsTaskExecutionRole",
    )?;
    let output: connector_sdk::OutputLocation = args.output.parse()?;
    if !(1..=115).contains(&args.stop_budget_secs) {
        return Err(Error::TaskDefinition(format!(
            "--stop-budget-secs {} is out of range; ECS allows a stopTimeout of at most 120 s, so use 1 to 115",
            args.stop_budget_secs
        )));
    }
    let mut secrets = Vec::new();
    if let Some(arn) = &args.config_secret_arn {
        check_arn(
            "--config-secret-arn",
            arn,
            ":secretsmanager:",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:connector-config-AbCdEf",
        )?;
        secrets.push(json!({"name": "CONNECTOR_CONFIG", "valueFrom": arn}));
    }
    for s in &args.secrets {
        let Some((name, arn)) = s.split_once('=') else {
            return Err(Error::TaskDefinition(format!(
                "--secret `{}` is not NAME=ARN; e.g. PGPASSWORD=arn:aws:secretsmanager:us-east-1:111122223333:secret:pg-AbCdEf",
                s.split('=').next().unwrap_or_default()
            )));
        };
        if !is_env_name(name) {
            return Err(Error::TaskDefinition(format!(
                "--secret name `{name}` is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
            )));
        }
        if !(arn.starts_with("arn:") && (arn.contains(":secretsmanager:") || arn.contains(":ssm:")))
        {
            return Err(Error::TaskDefinition(format!(
                "--secret {name}: the value must be a Secrets Manager or SSM parameter ARN"
            )));
        }
        secrets.push(json!({"name": name, "valueFrom": arn}));
    }
    let mut environment = vec![
        json!({"name": "CONNECTOR_OUTPUT", "value": output.to_string()}),
        json!({"name": "CONNECTOR_STOP_BUDGET_SECS", "value": args.stop_budget_secs.to_string()}),
    ];
    if !args.streams.is_empty() {
        environment.push(json!({"name": "CONNECTOR_STREAMS", "value": args.streams.join(",")}));
    }
    let log_group = args
        .log_group
        .clone()
        .unwrap_or_else(|| format!("/ecs/{}", manifest.name));
    let patterns: Vec<String> = manifest
        .networking
        .iter()
        .map(|n| spelled(&n.pattern))
        .collect();
    let task_definition = json!({
        "family": family,
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "cpu": cpu.to_string(),
        "memory": memory.to_string(),
        "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
        "taskRoleArn": args.task_role_arn,
        "executionRoleArn": args.execution_role_arn,
        "containerDefinitions": [{
            "name": manifest.name,
            "image": args.image,
            "essential": true,
            "command": ["container"],
            // The budget, plus room to exit, before ECS sends SIGKILL.
            "stopTimeout": args.stop_budget_secs + 5,
            "readonlyRootFilesystem": true,
            "environment": environment,
            "secrets": secrets,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": log_group,
                    "awslogs-region": args.region,
                    "awslogs-stream-prefix": manifest.name,
                    "awslogs-create-group": "true"
                }
            }
        }],
        "tags": [
            {"key": "connector", "value": manifest.name},
            {"key": "connector-version", "value": manifest.version},
            {"key": "data-classification", "value": spelled(&manifest.data_classification)},
            {"key": "network-patterns", "value": patterns.join(" ")}
        ]
    });
    Ok(match args.print {
        Document::TaskDefinition => task_definition,
        Document::RunTask => {
            if args.subnets.is_empty() {
                return Err(Error::TaskDefinition(
                    "run-task needs at least one --subnet (a private subnet; the task gets no public IP)".into(),
                ));
            }
            json!({
                "cluster": args.cluster,
                "taskDefinition": family,
                "launchType": "FARGATE",
                "count": 1,
                "networkConfiguration": {"awsvpcConfiguration": {
                    "subnets": args.subnets,
                    "securityGroups": args.security_groups,
                    "assignPublicIp": "DISABLED"
                }},
                "propagateTags": "TASK_DEFINITION"
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_a_valid_pair() {
        assert_eq!(fargate_size(0.25, 512).unwrap(), (256, 512));
        assert_eq!(fargate_size(0.25, 1500).unwrap(), (256, 2048));
        assert_eq!(fargate_size(0.25, 3000).unwrap(), (512, 3072));
        assert_eq!(fargate_size(1.0, 2048).unwrap(), (1024, 2048));
        assert_eq!(fargate_size(1.0, 100).unwrap(), (1024, 2048));
        assert_eq!(fargate_size(1.0, 9000).unwrap(), (2048, 9216));
        assert_eq!(fargate_size(3.0, 8192).unwrap(), (4096, 8192));
        assert_eq!(fargate_size(8.0, 20000).unwrap(), (8192, 20480));
        assert_eq!(fargate_size(16.0, 122880).unwrap(), (16384, 122880));
        assert!(fargate_size(32.0, 1024).is_err());
        assert!(fargate_size(1.0, 200_000).is_err());
        for &(cpu, min, max, step) in FARGATE_SIZES {
            let mut m = min;
            while m <= max {
                if cpu != 256 || m != 1536 {
                    assert!(is_valid_size(cpu, m), "{cpu}/{m}");
                }
                m += step;
            }
        }
        assert!(!is_valid_size(256, 1536));
        assert!(!is_valid_size(1024, 1024));
        assert!(!is_valid_size(300, 1024));
    }
}
