//! Each runner's compute, roles, logs and schedule. Each returns the AWS services its
//! runner reaches through interface endpoints when it runs in the VPC (`None`: it does
//! not, and the stack has no network resources).

use connector_sdk::{NetworkPattern, Runner};
use serde_json::{Map, Value, json};

use crate::error::Result;
use crate::iam::Statements;
use crate::network::AwsService;
use crate::template::{Stack, att, logical, r#ref, refuse, sub, sub_escape, with_secrets};

fn artifact_params(stack: &mut Stack) {
    stack.param(
        "ArtifactBucket",
        json!({"Type": "String", "AllowedPattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
               "Description": "Bucket holding the connector's build artifacts"}),
    );
    stack.param(
        "ArtifactPrefix",
        json!({"Type": "String", "Default": format!("connectors/{}/{}/", stack.manifest.name, stack.manifest.version),
               "AllowedPattern": "^([A-Za-z0-9!_.*'()-]+/)*$",
               "Description": "Key prefix of the artifacts, ending in /"}),
    );
}

/// The extract options every runner passes at run time, as `(name, value)`: the
/// deployment's pinned endpoints, the KMS key and the owner of the output bucket.
fn run_options(stack: &Stack) -> Vec<(&'static str, Value)> {
    let mut o = vec![("allowed_endpoints", json!(stack.allowed_endpoints()))];
    if stack.kms() {
        o.push(("sse_kms_key_id", json!("${KmsKeyArn}")));
    }
    o.push(("expected_bucket_owner", json!("${AWS::AccountId}")));
    o
}

fn lambda_in_vpc(pattern: NetworkPattern) -> bool {
    // vpc-endpoint sources are AWS services Lambda reaches without a VPC.
    pattern != NetworkPattern::VpcEndpoint
}

/// Lambda: function, version + alias, reserved concurrency, on-failure queue, VPC config,
/// a Step Functions loop over the continuation, one schedule per stream.
pub(crate) fn lambda(stack: &mut Stack) -> Result<Option<Vec<AwsService>>> {
    let needs = stack.manifest.require_runner(Runner::Lambda)?.clone();
    artifact_params(stack);
    let in_vpc = lambda_in_vpc(stack.config.network_pattern);
    stack.log_group("LogGroup");

    let mut q = json!({"MessageRetentionPeriod": 1_209_600, "Tags": stack.tag_list()});
    if stack.kms() {
        q["KmsMasterKeyId"] = r#ref("KmsKeyArn");
    } else {
        q["SqsManagedSseEnabled"] = json!(true);
    }
    stack.resource("FailureQueue", "AWS::SQS::Queue", q);

    let mut st = Statements::default();
    st.logs("LogGroup")
        .output(&stack.v.output)
        .source_read(stack.v.source.as_ref())
        .kms(stack)
        .allow(
            "OnFailureQueue",
            &["sqs:SendMessage"],
            json!([att("FailureQueue", "Arn")]),
        );
    if in_vpc {
        st.vpc_interfaces();
    }
    stack.role("FunctionRole", "lambda.amazonaws.com", st);

    let mut env = Map::new();
    env.insert("CONNECTOR_CONFIG_JSON".into(), json!(stack.config_json()));
    // The pins whoever invokes the function cannot widen (the event may only narrow them).
    env.insert(
        "CONNECTOR_ALLOWED_ENDPOINTS".into(),
        json!(stack.allowed_endpoints().join(",")),
    );
    // What S3 object events run (they carry no request of their own).
    if let Some(stream) = stack.v.streams.first()
        && stack.v.source.is_some()
    {
        env.insert(
            "CONNECTOR_EVENT_REQUEST".into(),
            json!(
                json!({"config_env": "CONNECTOR_CONFIG_JSON", "output": stack.v.output.to_string(), "stream": stream})
                    .to_string()
            ),
        );
    }
    for (name, secret) in &stack.config.secrets {
        // Resolved by CloudFormation at deploy time: the template holds only the name.
        env.insert(
            name.clone(),
            json!(format!(
                "{{{{resolve:secretsmanager:{secret}:SecretString}}}}"
            )),
        );
    }
    let streams = stack.v.streams.len() as u32;
    let mut f = json!({
        "Description": format!("{} {}", stack.manifest.name, stack.manifest.version),
        "Runtime": "provided.al2023",
        "Handler": "bootstrap",
        "Architectures": [stack.config.lambda.architecture],
        // The function package runners/lambda/package.sh builds.
        "Code": {"S3Bucket": r#ref("ArtifactBucket"), "S3Key": sub("${ArtifactPrefix}lambda.zip")},
        "MemorySize": needs.memory_mb,
        "Timeout": needs.max_runtime_secs,
        "Role": att("FunctionRole", "Arn"),
        "ReservedConcurrentExecutions": stack.config.lambda.reserved_concurrency.unwrap_or(streams),
        "LoggingConfig": {"LogGroup": r#ref("LogGroup"), "LogFormat": "Text"},
        "Environment": {"Variables": env},
        "Tags": stack.tag_list(),
    });
    if stack.kms() {
        f["KmsKeyArn"] = r#ref("KmsKeyArn");
    }
    if in_vpc {
        f["VpcConfig"] = json!({
            "SubnetIds": r#ref("PrivateSubnetIds"),
            "SecurityGroupIds": [att("RunnerSecurityGroup", "GroupId")],
        });
    }
    stack.resource("Function", "AWS::Lambda::Function", f);
    // A new logical id per connector version: CloudFormation publishes a new version (and
    // moves the alias) when the connector version changes, not only when this resource's
    // properties do.
    let version_id = format!(
        "FunctionVersion{}",
        stack
            .manifest
            .version
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { 'x' })
            .collect::<String>()
    );
    stack.resource(
        &version_id,
        "AWS::Lambda::Version",
        json!({"FunctionName": r#ref("Function"), "Description": stack.manifest.version}),
    );
    stack.resource(
        "FunctionAlias",
        "AWS::Lambda::Alias",
        json!({"FunctionName": r#ref("Function"), "Name": "live",
               "FunctionVersion": att(&version_id, "Version")}),
    );
    let cfg = stack.resource(
        "FunctionInvokeConfig",
        "AWS::Lambda::EventInvokeConfig",
        json!({"FunctionName": r#ref("Function"), "Qualifier": "live", "MaximumRetryAttempts": 0,
               "DestinationConfig": {"OnFailure": {"Destination": att("FailureQueue", "Arn")}}}),
    );
    cfg.insert("DependsOn".into(), json!("FunctionAlias"));

    // Object events: EventBridge invokes the live alias (asynchronously: a failure goes
    // to the failure queue through the invoke config) for each object created under the
    // source prefix.
    if let (Some(src), true) = (
        stack.v.source.clone(),
        stack
            .config
            .source_objects
            .as_ref()
            .is_some_and(|s| s.events),
    ) {
        let prefix = src.prefix.trim_end_matches('/');
        let key = if prefix.is_empty() {
            json!([{"prefix": ""}])
        } else {
            json!([{"prefix": format!("{prefix}/")}])
        };
        stack.resource(
            "ObjectCreatedRule",
            "AWS::Events::Rule",
            json!({
                "Description": format!("{}: objects created under {src}", stack.manifest.name),
                "State": "ENABLED",
                "EventPattern": {
                    "source": ["aws.s3"],
                    "detail-type": ["Object Created"],
                    "detail": {"bucket": {"name": [src.bucket]}, "object": {"key": key}}
                },
                "Targets": [{"Arn": r#ref("FunctionAlias"), "Id": "connector"}]
            }),
        );
        stack.resource(
            "ObjectCreatedPermission",
            "AWS::Lambda::Permission",
            json!({
                "Action": "lambda:InvokeFunction",
                "FunctionName": r#ref("FunctionAlias"),
                "Principal": "events.amazonaws.com",
                "SourceArn": att("ObjectCreatedRule", "Arn")
            }),
        );
    }

    // The loop the Lambda README describes: invoke; while the response says partial,
    // invoke again with the event plus the response's continuation.
    let definition = json!({
        "Comment": "Invoke the connector until its run is complete, passing each continuation on",
        "StartAt": "Extract",
        "States": {
            "Extract": {
                "Type": "Task",
                "Resource": "arn:${AWS::Partition}:states:::lambda:invoke",
                "Parameters": {"FunctionName": "${FunctionAlias}", "Payload.$": "$.event"},
                "ResultSelector": {"result.$": "$.Payload"},
                "ResultPath": "$.last",
                "Retry": [{
                    "ErrorEquals": ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException", "Lambda.TooManyRequestsException"],
                    "IntervalSeconds": 2, "MaxAttempts": 6, "BackoffRate": 2
                }],
                // A synchronous invoke never reaches the function's on-failure
                // destination: a failed run is sent to the queue from here.
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ReportFailure"}],
                "Next": "Complete?"
            },
            "ReportFailure": {
                "Type": "Task",
                "Resource": "arn:${AWS::Partition}:states:::sqs:sendMessage",
                "Parameters": {"QueueUrl": "${FailureQueue}", "MessageBody.$": "$"},
                "Next": "Failed"
            },
            "Failed": {"Type": "Fail", "Error": "ExtractFailed", "Cause": "The connector run failed; the event and error are in the failure queue"},
            "Complete?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.last.result.status", "StringEquals": "partial", "Next": "TakeContinuation"}],
                "Default": "Done"
            },
            "TakeContinuation": {
                "Type": "Pass",
                "Parameters": {"continuation.$": "$.last.result.continuation"},
                "ResultPath": "$.patch",
                "Next": "Continue"
            },
            "Continue": {
                "Type": "Pass",
                "Parameters": {"event.$": "States.JsonMerge($.event, $.patch, false)"},
                "Next": "Extract"
            },
            "Done": {"Type": "Succeed"}
        }
    });
    let mut sm_st = Statements::default();
    sm_st
        .allow(
            "InvokeLiveAlias",
            &["lambda:InvokeFunction"],
            json!([r#ref("FunctionAlias")]),
        )
        .allow(
            "ReportFailures",
            &["sqs:SendMessage"],
            json!([att("FailureQueue", "Arn")]),
        );
    if stack.kms() {
        // Sending to the queue encrypted with the key.
        sm_st.allow(
            "FailureQueueKey",
            &["kms:GenerateDataKey", "kms:Decrypt"],
            json!([r#ref("KmsKeyArn")]),
        );
    }
    stack.role("StateMachineRole", "states.amazonaws.com", sm_st);
    stack.resource(
        "StateMachine",
        "AWS::StepFunctions::StateMachine",
        json!({
            "StateMachineType": "STANDARD",
            "DefinitionString": sub(&serde_json::to_string_pretty(&definition).unwrap_or_default()),
            "RoleArn": att("StateMachineRole", "Arn"),
            "Tags": stack.tag_list(),
        }),
    );
    let mut sch = Statements::default();
    sch.allow(
        "StartLoop",
        &["states:StartExecution"],
        json!([r#ref("StateMachine")]),
    );
    if stack.kms() {
        // The schedule's input is encrypted with the key.
        sch.allow(
            "ScheduleInputKey",
            &["kms:Decrypt"],
            json!([r#ref("KmsKeyArn")]),
        );
    }
    stack.role("SchedulerRole", "scheduler.amazonaws.com", sch);
    let options: Map<String, Value> = run_options(stack)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    for stream in stack.v.streams.clone() {
        let event = json!({"event": {
            "config_env": "CONNECTOR_CONFIG_JSON",
            "output": sub_escape(&stack.v.output.to_string()),
            "stream": stream,
            "options": options,
        }});
        let mut schedule = json!({
            "Description": format!("{}: extract {stream}", stack.manifest.name),
            "ScheduleExpression": stack.schedule_expression(),
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED",
            "Target": {
                "Arn": r#ref("StateMachine"),
                "RoleArn": att("SchedulerRole", "Arn"),
                "Input": sub(&event.to_string()),
                "RetryPolicy": {"MaximumRetryAttempts": 0},
            },
        });
        if stack.kms() {
            schedule["KmsKeyArn"] = r#ref("KmsKeyArn");
        }
        stack.resource(
            &format!("Schedule{}", logical(&stream)),
            "AWS::Scheduler::Schedule",
            schedule,
        );
    }
    stack.outputs.insert(
        "StateMachineArn".into(),
        json!({"Description": "Start an execution with {\"event\": <extract request>} to run now", "Value": r#ref("StateMachine")}),
    );
    Ok(in_vpc.then(|| with_secrets(vec![AwsService::Sts], stack)))
}

/// Fargate: ECR repository, cluster, task definition, roles, log group, a scheduled
/// run-task in private subnets without a public IP.
pub(crate) fn fargate(stack: &mut Stack) -> Result<Option<Vec<AwsService>>> {
    let needs = stack.manifest.require_runner(Runner::Fargate)?.clone();
    let (cpu, memory) = fargate_runner::task_definition::fargate_size(needs.vcpu, needs.memory_mb)
        .map_err(|e| refuse("runners.fargate", e.to_string()))?;
    stack.param(
        "ImageTag",
        json!({"Type": "String", "Default": stack.manifest.version, "AllowedPattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
               "Description": "Tag of the image pushed to the stack's repository (runners/fargate/build-image.sh)"}),
    );
    let mut repo = json!({
        "ImageTagMutability": "IMMUTABLE",
        "ImageScanningConfiguration": {"ScanOnPush": true},
        "Tags": stack.tag_list(),
    });
    repo["EncryptionConfiguration"] = if stack.kms() {
        json!({"EncryptionType": "KMS", "KmsKey": r#ref("KmsKeyArn")})
    } else {
        json!({"EncryptionType": "AES256"})
    };
    stack.resource("Repository", "AWS::ECR::Repository", repo);
    stack.resource(
        "Cluster",
        "AWS::ECS::Cluster",
        json!({"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}], "Tags": stack.tag_list()}),
    );
    stack.log_group("LogGroup");

    let mut exec = Statements::default();
    exec.allow("RegistryLogin", &["ecr:GetAuthorizationToken"], json!("*"))
        .allow(
            "PullOwnImage",
            &[
                "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchGetImage",
            ],
            json!([att("Repository", "Arn")]),
        )
        .logs("LogGroup")
        .secrets(stack);
    stack.role("ExecutionRole", "ecs-tasks.amazonaws.com", exec);
    let mut task = Statements::default();
    task.output(&stack.v.output)
        .source_read(stack.v.source.as_ref())
        .kms(stack);
    stack.role("TaskRole", "ecs-tasks.amazonaws.com", task);

    let mut env = vec![
        json!({"Name": "CONNECTOR_CONFIG", "Value": stack.config_json()}),
        json!({"Name": "CONNECTOR_OUTPUT", "Value": stack.v.output.to_string()}),
        json!({"Name": "CONNECTOR_STREAMS", "Value": stack.v.streams.join(",")}),
        json!({"Name": "CONNECTOR_STOP_BUDGET_SECS", "Value": "25"}),
        json!({"Name": "CONNECTOR_ALLOWED_ENDPOINTS", "Value": stack.allowed_endpoints().join(",")}),
        json!({"Name": "CONNECTOR_EXPECTED_BUCKET_OWNER", "Value": r#ref("AWS::AccountId")}),
    ];
    if stack.kms() {
        env.push(json!({"Name": "CONNECTOR_SSE_KMS_KEY_ID", "Value": r#ref("KmsKeyArn")}));
    }
    let secrets: Vec<Value> = stack
        .config
        .secrets
        .iter()
        .map(|(name, secret)| {
            json!({"Name": name, "ValueFrom": sub(&format!(
                "arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{}", sub_escape(secret)))})
        })
        .collect();
    let name = stack.manifest.name.clone();
    stack.resource(
        "TaskDefinition",
        "AWS::ECS::TaskDefinition",
        json!({
            "RequiresCompatibilities": ["FARGATE"],
            "NetworkMode": "awsvpc",
            "Cpu": cpu.to_string(),
            "Memory": memory.to_string(),
            "RuntimePlatform": {"CpuArchitecture": "X86_64", "OperatingSystemFamily": "LINUX"},
            "ExecutionRoleArn": att("ExecutionRole", "Arn"),
            "TaskRoleArn": att("TaskRole", "Arn"),
            "ContainerDefinitions": [{
                "Name": name,
                "Image": sub("${Repository.RepositoryUri}:${ImageTag}"),
                "Essential": true,
                "Command": ["container"],
                "StopTimeout": 30,
                "ReadonlyRootFilesystem": true,
                "Environment": env,
                "Secrets": secrets,
                "LogConfiguration": {"LogDriver": "awslogs", "Options": {
                    "awslogs-group": r#ref("LogGroup"),
                    "awslogs-region": r#ref("AWS::Region"),
                    "awslogs-stream-prefix": name,
                }},
            }],
            "Tags": stack.tag_list(),
        }),
    );
    let mut sch = Statements::default();
    sch.allow_if(
        "RunOwnTask",
        &["ecs:RunTask"],
        json!([r#ref("TaskDefinition")]),
        json!({"ArnEquals": {"ecs:cluster": att("Cluster", "Arn")}}),
    )
    .allow(
        "PassTaskRoles",
        &["iam:PassRole"],
        json!([att("ExecutionRole", "Arn"), att("TaskRole", "Arn")]),
    );
    stack.role("SchedulerRole", "scheduler.amazonaws.com", sch);
    stack.resource(
        "Schedule",
        "AWS::Scheduler::Schedule",
        json!({
            "Description": format!("{}: extract {}", stack.manifest.name, stack.v.streams.join(", ")),
            "ScheduleExpression": stack.schedule_expression(),
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED",
            "Target": {
                "Arn": att("Cluster", "Arn"),
                "RoleArn": att("SchedulerRole", "Arn"),
                "RetryPolicy": {"MaximumRetryAttempts": 0},
                "EcsParameters": {
                    "TaskDefinitionArn": r#ref("TaskDefinition"),
                    "LaunchType": "FARGATE",
                    "PlatformVersion": "LATEST",
                    "TaskCount": 1,
                    "NetworkConfiguration": {"AwsvpcConfiguration": {
                        "Subnets": r#ref("PrivateSubnetIds"),
                        "SecurityGroups": [att("RunnerSecurityGroup", "GroupId")],
                        "AssignPublicIp": "DISABLED",
                    }},
                },
            },
        }),
    );
    stack.outputs.insert(
        "RepositoryUri".into(),
        json!({"Description": "Push the connector image here, tagged ImageTag", "Value": att("Repository", "RepositoryUri")}),
    );
    Ok(Some(with_secrets(
        vec![
            AwsService::EcrApi,
            AwsService::EcrDkr,
            AwsService::Logs,
            AwsService::Sts,
        ],
        stack,
    )))
}

/// Every string in `v` escaped for `Fn::Sub`.
fn escape_strings(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(sub_escape(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(escape_strings).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (sub_escape(&k), escape_strings(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The smallest current general-purpose instance type with `vcpu` and `memory_mb`.
fn instance_type(vcpu: f64, memory_mb: u32) -> Option<&'static str> {
    const TYPES: &[(&str, f64, u32)] = &[
        ("t3.small", 2.0, 2048),
        ("t3.medium", 2.0, 4096),
        ("m7i.large", 2.0, 8192),
        ("m7i.xlarge", 4.0, 16384),
        ("m7i.2xlarge", 8.0, 32768),
        ("m7i.4xlarge", 16.0, 65536),
        ("m7i.8xlarge", 32.0, 131_072),
        ("m7i.16xlarge", 64.0, 262_144),
    ];
    TYPES
        .iter()
        .find(|(_, c, m)| *c >= vcpu && *m >= memory_mb)
        .map(|(t, _, _)| *t)
}

/// The EC2 daemon's config for this deployment: one job extracting every stream on the
/// schedule, with the run-time options.
pub fn daemon_toml(
    stack_streams: &[String],
    output: &str,
    schedule: &crate::config::Schedule,
    config: &Map<String, Value>,
    options: &[(&'static str, Value)],
) -> Result<String> {
    let mut job = toml::Table::new();
    job.insert("name".into(), "scheduled".into());
    job.insert("output".into(), output.into());
    job.insert(
        "streams".into(),
        toml::Value::Array(stack_streams.iter().map(|s| s.as_str().into()).collect()),
    );
    let (key, value) = schedule.daemon_toml()?;
    job.insert(key.into(), value.into());
    let config = toml::Value::try_from(Value::Object(config.clone())).map_err(|e| {
        refuse(
            "config",
            format!("cannot be written as the EC2 daemon's TOML ({e}); TOML has no null: leave the field out"),
        )
    })?;
    job.insert("config".into(), config);
    let mut extract = toml::Table::new();
    for (k, v) in options {
        let v = toml::Value::try_from(v.clone()).map_err(|e| refuse("config", e.to_string()))?;
        extract.insert((*k).into(), v);
    }
    job.insert("extract".into(), toml::Value::Table(extract));
    let mut root = toml::Table::new();
    root.insert(
        "jobs".into(),
        toml::Value::Array(vec![toml::Value::Table(job)]),
    );
    toml::to_string(&root).map_err(|e| refuse("config", e.to_string()))
}

/// EC2: launch template (user data installs the binary and the hardened unit), an Auto
/// Scaling group of one, an instance profile, Session Manager instead of SSH.
pub(crate) fn ec2(stack: &mut Stack) -> Result<Option<Vec<AwsService>>> {
    let needs = stack.manifest.require_runner(Runner::Ec2)?.clone();
    let itype = match &stack.config.ec2.instance_type {
        Some(t) => t.clone(),
        None => instance_type(needs.vcpu, needs.memory_mb)
            .ok_or_else(|| {
                refuse(
                    "ec2.instance_type",
                    format!(
                        "no default instance type has {} vCPU and {} MiB; name one",
                        needs.vcpu, needs.memory_mb
                    ),
                )
            })?
            .to_string(),
    };
    artifact_params(stack);
    stack.param(
        "AmiId",
        json!({"Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
               "Default": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
               "Description": "Amazon Linux 2023 (systemd 252+, the AWS CLI)"}),
    );
    let bin = stack.manifest.name.clone();
    let mut st = Statements::default();
    st.allow(
        "SessionManager",
        crate::iam::SESSION_MANAGER_ACTIONS,
        json!("*"),
    )
    .allow(
        "ReadArtifacts",
        &["s3:GetObject"],
        json!([sub(
            "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${ArtifactPrefix}*"
        )]),
    )
    .output(&stack.v.output)
    .source_read(stack.v.source.as_ref())
    .kms(stack)
    .secrets(stack);
    stack.role("InstanceRole", "ec2.amazonaws.com", st);
    stack.resource(
        "InstanceProfile",
        "AWS::IAM::InstanceProfile",
        json!({"Roles": [r#ref("InstanceRole")]}),
    );

    let options: Vec<(&'static str, Value)> = run_options(stack);
    // User values are escaped for Fn::Sub; the run options' ${KmsKeyArn} and
    // ${AWS::AccountId} are substituted. Secrets arrive as systemd credentials here.
    let escaped = match escape_strings(Value::Object(stack.runner_config())) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let daemon = daemon_toml(
        &stack.v.streams,
        &sub_escape(&stack.v.output.to_string()),
        &stack.v.schedule,
        &escaped,
        &options,
    )?;
    let mut script = String::from(
        "#!/bin/bash\n# Installs the connector as the hardened connector@ unit (runners/ec2/install.sh).\nset -euo pipefail\numask 077\nwork=$(mktemp -d)\n",
    );
    for file in [bin.as_str(), "install.sh", "connector@.service"] {
        script += &format!(
            "aws s3 cp --only-show-errors \"s3://${{ArtifactBucket}}/${{ArtifactPrefix}}{file}\" \"$work/{file}\"\n"
        );
    }
    // A quoted heredoc: nothing in it is expanded, and it ends only at a line that is
    // exactly the terminator, which no line of the config may be (TOML writes a string
    // with newlines across lines).
    if daemon.lines().any(|l| l.trim_end() == "DAEMON_TOML") {
        return Err(refuse(
            "config",
            "has a line `DAEMON_TOML` in a multi-line string, which would end the user data's heredoc".into(),
        ));
    }
    script += &format!("cat > \"$work/daemon.toml\" <<'DAEMON_TOML'\n{daemon}DAEMON_TOML\n");
    let mut credentials = String::new();
    if !stack.config.secrets.is_empty() {
        script += &format!("install -d -m 0700 /etc/{bin}/credentials\n");
        for (name, secret) in &stack.config.secrets {
            script += &format!(
                "aws secretsmanager get-secret-value --secret-id '{}' --query SecretString --output text > /etc/{bin}/credentials/{name}\n",
                sub_escape(secret)
            );
            credentials += &format!(" --credential {name}=/etc/{bin}/credentials/{name}");
        }
    }
    script += &format!(
        "chmod 0755 \"$work/{bin}\"\nbash \"$work/install.sh\" \"$work/{bin}\" \"$work/daemon.toml\"{credentials}\nrm -rf \"$work\"\n"
    );

    let mut ebs = json!({"Encrypted": true, "VolumeSize": 16, "VolumeType": "gp3", "DeleteOnTermination": true});
    if stack.kms() {
        ebs["KmsKeyId"] = r#ref("KmsKeyArn");
    }
    let tags = stack.tag_list();
    stack.resource(
        "LaunchTemplate",
        "AWS::EC2::LaunchTemplate",
        json!({
            "LaunchTemplateData": {
                "ImageId": r#ref("AmiId"),
                "InstanceType": itype,
                "IamInstanceProfile": {"Arn": att("InstanceProfile", "Arn")},
                "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
                "NetworkInterfaces": [{
                    "DeviceIndex": 0,
                    "AssociatePublicIpAddress": false,
                    "Groups": [att("RunnerSecurityGroup", "GroupId")],
                    "DeleteOnTermination": true,
                }],
                "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": ebs}],
                "UserData": {"Fn::Base64": sub(&script)},
                "TagSpecifications": [
                    {"ResourceType": "instance", "Tags": tags},
                    {"ResourceType": "volume", "Tags": tags},
                ],
            },
            "TagSpecifications": [{"ResourceType": "launch-template", "Tags": tags}],
        }),
    );
    let asg_tags: Vec<Value> = stack
        .tag_pairs()
        .into_iter()
        .map(|(k, v)| json!({"Key": k, "Value": v, "PropagateAtLaunch": true}))
        .collect();
    stack.resource(
        "AutoScalingGroup",
        "AWS::AutoScaling::AutoScalingGroup",
        json!({
            "MinSize": "1",
            "MaxSize": "1",
            "DesiredCapacity": "1",
            "VPCZoneIdentifier": r#ref("PrivateSubnetIds"),
            "LaunchTemplate": {"LaunchTemplateId": r#ref("LaunchTemplate"), "Version": att("LaunchTemplate", "LatestVersionNumber")},
            "HealthCheckType": "EC2",
            "Tags": asg_tags,
        }),
    );
    Ok(Some(with_secrets(
        vec![
            AwsService::Ssm,
            AwsService::SsmMessages,
            AwsService::Ec2Messages,
            AwsService::Sts,
        ],
        stack,
    )))
}

/// Glue: a job per stream (today's job definition), a NETWORK connection when the
/// pattern needs the VPC, a scheduled trigger, a security configuration with SSE-KMS.
pub(crate) fn glue(stack: &mut Stack) -> Result<Option<Vec<AwsService>>> {
    stack.manifest.require_runner(Runner::Glue)?;
    artifact_params(stack);
    let cron = stack.v.schedule.glue_cron().ok_or_else(|| {
        refuse(
            "schedule",
            format!("{:?} is not expressible as a Glue cron trigger; use a rate that divides an hour or a day, or cron(...)", stack.config.schedule),
        )
    })?;
    let patterns = [stack.config.network_pattern];
    let endpoints: Vec<String> = stack.allowed_endpoints();
    let in_vpc = glue_runner::job_definition::needs_vpc_connection(patterns[0], &endpoints);
    let bin = stack.manifest.name.clone();
    const BUCKET: &str = "artifact-bucket-placeholder";
    if in_vpc {
        stack.param(
            "SubnetAvailabilityZone",
            json!({"Type": "AWS::EC2::AvailabilityZone::Name", "Description": "Availability zone of the first private subnet (the Glue connection's)"}),
        );
        // One connection per stack: two stacks of one connector in an account must not clash.
        let name = sub("${AWS::StackName}-network");
        stack.resource(
            "GlueConnection",
            "AWS::Glue::Connection",
            json!({
                "CatalogId": r#ref("AWS::AccountId"),
                "ConnectionInput": {
                    "Name": name,
                    "ConnectionType": "NETWORK",
                    "Description": format!("{bin}: private subnet and security group of the job"),
                    "PhysicalConnectionRequirements": {
                        "SubnetId": {"Fn::Select": [0, r#ref("PrivateSubnetIds")]},
                        "SecurityGroupIdList": [att("RunnerSecurityGroup", "GroupId")],
                        "AvailabilityZone": r#ref("SubnetAvailabilityZone"),
                    },
                },
            }),
        );
    }
    if stack.kms() {
        stack.resource(
            "SecurityConfiguration",
            "AWS::Glue::SecurityConfiguration",
            json!({
                "Name": sub(&format!("${{AWS::StackName}}-{bin}")),
                "EncryptionConfiguration": {
                    "S3Encryptions": [{"S3EncryptionMode": "SSE-KMS", "KmsKeyArn": r#ref("KmsKeyArn")}],
                    "CloudWatchEncryption": {"CloudWatchEncryptionMode": "SSE-KMS", "KmsKeyArn": r#ref("KmsKeyArn")},
                    "JobBookmarksEncryption": {"JobBookmarksEncryptionMode": "CSE-KMS", "KmsKeyArn": r#ref("KmsKeyArn")},
                },
            }),
        );
    }
    let mut st = Statements::default();
    st.allow(
        "ReadArtifacts",
        &["s3:GetObject"],
        json!([sub(
            "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${ArtifactPrefix}*"
        )]),
    )
    .allow(
        "TempFiles",
        &["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
        json!([sub(
            "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${ArtifactPrefix}tmp/*"
        )]),
    )
    .allow(
        "JobLogs",
        &[
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "logs:AssociateKmsKey",
        ],
        json!([sub(
            "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws-glue/*"
        )]),
    )
    .allow_if(
        "JobMetrics",
        &["cloudwatch:PutMetricData"],
        json!("*"),
        json!({"StringEquals": {"cloudwatch:namespace": "Glue"}}),
    )
    .output(&stack.v.output)
    .source_read(stack.v.source.as_ref())
    .kms(stack);
    if in_vpc {
        st.allow(
            "JobNetwork",
            crate::iam::VPC_PLACEMENT_ACTIONS,
            json!("*"),
        )
        .allow(
            "JobNetworkInterfaces",
            &["ec2:DeleteNetworkInterface"],
            json!([sub(crate::iam::NETWORK_INTERFACES)]),
        )
        // Glue tags the interfaces it creates with aws-glue-service-resource; only that.
        .allow_if(
            "JobNetworkInterfaceTags",
            &["ec2:CreateTags", "ec2:DeleteTags"],
            json!([sub(crate::iam::NETWORK_INTERFACES)]),
            json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["aws-glue-service-resource"]}}),
        )
        .allow(
            "OwnConnection",
            &["glue:GetConnection"],
            json!([
                sub("arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:catalog"),
                sub("arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:connection/${AWS::StackName}-network")
            ]),
        );
    }
    stack.role("JobRole", "glue.amazonaws.com", st);

    let extract_args: Vec<String> = run_options(stack)
        .into_iter()
        .flat_map(|(k, v)| {
            let flag = format!("--{}", k.replace('_', "-"));
            match v {
                Value::Array(items) => items
                    .into_iter()
                    .filter_map(|i| i.as_str().map(|s| format!("{flag} {s}")))
                    .collect::<Vec<_>>(),
                Value::String(s) => vec![format!("{flag} {s}")],
                other => vec![format!("{flag} {other}")],
            }
        })
        .collect();
    for stream in stack.v.streams.clone() {
        let args = glue_runner::JobDefinitionArgs {
            job_name: None,
            role_arn: "arn:aws:iam::000000000000:role/placeholder".into(),
            script_location: format!("s3://{BUCKET}/{}", glue_runner::JOB_SCRIPT_NAME),
            binary_location: format!("s3://{BUCKET}/{bin}"),
            config_location: format!("s3://{BUCKET}/{bin}.json"),
            output: stack.v.output.to_string(),
            stream: Some(stream.clone()),
            connections: if in_vpc {
                vec![format!("{bin}-network")]
            } else {
                vec![]
            },
            temp_dir: Some(format!("s3://{BUCKET}/tmp/")),
            spark_partitions: None,
            write_script: None,
        };
        // The stack deploys one of the declared patterns: the job definition's network
        // check looks at that one (another declared pattern may need a connection this
        // stack does not use).
        let mut deployed = stack.manifest.clone();
        deployed
            .networking
            .retain(|n| n.pattern == stack.config.network_pattern);
        let mut job = glue_runner::job_definition(&deployed, &args)
            .map_err(|e| refuse("glue", e.to_string()))?;
        // The account-specific parts become references to the stack's own resources.
        job["Role"] = att("JobRole", "Arn");
        job["Command"]["ScriptLocation"] = sub(&format!(
            "s3://${{ArtifactBucket}}/${{ArtifactPrefix}}{}",
            glue_runner::JOB_SCRIPT_NAME
        ));
        if let Some(defaults) = job["DefaultArguments"].as_object_mut() {
            for (_, v) in defaults.iter_mut() {
                if let Some(s) = v.as_str()
                    && s.contains(BUCKET)
                {
                    *v = sub(&s.replace(
                        &format!("s3://{BUCKET}/"),
                        "s3://${ArtifactBucket}/${ArtifactPrefix}",
                    ));
                }
            }
            defaults.insert("--extract_args".into(), sub(&extract_args.join(" ")));
        }
        if in_vpc {
            job["Connections"] = json!({"Connections": [r#ref("GlueConnection")]});
        }
        if stack.kms() {
            job["SecurityConfiguration"] = r#ref("SecurityConfiguration");
        }
        job["Tags"] = stack.tag_map();
        let id = logical(&stream);
        stack.resource(&format!("Job{id}"), "AWS::Glue::Job", job);
        stack.resource(
            &format!("Trigger{id}"),
            "AWS::Glue::Trigger",
            json!({
                "Type": "SCHEDULED",
                "Schedule": cron,
                "StartOnCreation": true,
                "Actions": [{"JobName": r#ref(&format!("Job{id}"))}],
                "Tags": stack.tag_map(),
            }),
        );
    }
    stack.outputs.insert(
        "ConfigObject".into(),
        json!({"Description": "Upload the connector config (JSON) here, the binary and the job script beside it",
               "Value": sub(&format!("s3://${{ArtifactBucket}}/${{ArtifactPrefix}}{bin}.json"))}),
    );
    Ok(in_vpc.then(|| vec![AwsService::Glue, AwsService::Logs, AwsService::Sts]))
}
