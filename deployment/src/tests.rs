use connector_sdk::{ConnectorManifest, GovernancePolicy, Runner};
use serde_json::Value;

use crate::{DeployConfig, check_template, render};

const PG: &str = include_str!("../../connectors/postgres/connector.toml");
const DEMO: &str = include_str!("../../connectors/orders-demo/connector.toml");

fn pg() -> ConnectorManifest {
    ConnectorManifest::parse(PG).unwrap()
}

fn pg_config(runner: &str, pattern: &str) -> DeployConfig {
    DeployConfig::parse(&format!(
        r#"
runner = "{runner}"
network_pattern = "{pattern}"
output = "s3://acme-lake/raw/orders"
streams = ["public_orders"]
schedule = "rate(1 hour)"
source_endpoints = ["orders.internal:5432"]
sse_kms = true
config = {{ host = "orders.internal", database = "orders", user = "extract" }}
tags = {{ owner = "data-platform", cost-center = "4711" }}
"#
    ))
    .unwrap()
}

#[test]
fn every_runner_renders_for_postgres_and_passes_the_policy() {
    let policy = GovernancePolicy::embedded();
    for runner in ["lambda", "fargate", "ec2", "glue"] {
        for pattern in ["privatelink", "vpn"] {
            let t = render(&pg(), &pg_config(runner, pattern)).unwrap();
            let v = check_template(&policy, &t);
            assert!(v.is_empty(), "{runner}/{pattern}: {v:#?}");
            assert_eq!(t["Metadata"]["Connector"]["Runner"], runner);
        }
    }
}

#[test]
fn a_pattern_or_runner_the_manifest_does_not_declare_is_refused() {
    let e = render(&pg(), &pg_config("lambda", "nat-allowlist"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("network_pattern") && e.contains("privatelink, vpn"),
        "{e}"
    );
    let demo = ConnectorManifest::parse(DEMO).unwrap();
    let mut c = pg_config("lambda", "vpc-endpoint");
    c.streams = vec![];
    c.source_endpoints = vec![];
    c.config = Default::default();
    for r in Runner::ALL {
        c.runner = r;
        let out = render(&demo, &c);
        assert_eq!(out.is_ok(), demo.runners.contains_key(&r), "{r}: {out:?}");
    }
    let mut c = pg_config("fargate", "privatelink");
    c.source_endpoints = vec!["orders.internal:5433".into()];
    let mut manifest = pg();
    manifest.networking[0].endpoints = vec!["{host}:5432".into()];
    let e = render(&manifest, &c).unwrap_err().to_string();
    assert!(
        e.contains("source_endpoints") && e.contains("orders.internal:5433"),
        "{e}"
    );
    c.source_endpoints = vec![];
    let e = render(&pg(), &c).unwrap_err().to_string();
    assert!(
        e.contains("source_endpoints") && e.contains("depends on the config"),
        "{e}"
    );
}

#[test]
fn secrets_never_appear_in_a_template_only_their_names() {
    let mut c = pg_config("fargate", "privatelink");
    c.secrets
        .insert("PGPASSWORD".into(), "prod/orders/pg".into());
    let t = render(&pg(), &c).unwrap().to_string();
    assert!(t.contains("secret:prod/orders/pg"), "{t}");
    c.secrets
        .insert("PGPASSWORD".into(), "hunter2 is my password".into());
    let e = render(&pg(), &c).unwrap_err().to_string();
    assert!(e.contains("secret name") && !e.contains("hunter2"), "{e}");
}

#[test]
fn the_ec2_daemon_config_in_the_user_data_is_one_the_daemon_accepts() {
    let demo = ConnectorManifest::parse(DEMO).unwrap();
    let c = DeployConfig::parse(
        r#"
runner = "ec2"
network_pattern = "vpc-endpoint"
output = "s3://acme-lake/raw/${not-a-substitution}"
schedule = "cron(5 2 ? * MON-FRI *)"
sse_kms = true
config = { rows = 1000 }
"#,
    )
    .unwrap();
    let t = render(&demo, &c).unwrap();
    let script = t["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]
        ["Fn::Base64"]["Fn::Sub"]
        .as_str()
        .unwrap()
        .to_string();
    let toml = script
        .split("<<'DAEMON_TOML'\n")
        .nth(1)
        .unwrap()
        .split("DAEMON_TOML\n")
        .next()
        .unwrap()
        // What Fn::Sub does at deploy time.
        .replace("${KmsKeyArn}", "arn:aws:kms:eu-west-1:123456789012:key/abc")
        .replace("${AWS::AccountId}", "123456789012")
        .replace("${!", "${");
    let loaded = ec2_runner::LoadedConfig::parse::<orders_demo::OrdersDemo>(
        std::path::Path::new("/etc/orders-demo/daemon.toml"),
        &toml,
        &demo,
    )
    .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let job = &loaded.jobs[0];
    assert_eq!(
        job.settings.expected_bucket_owner.as_deref(),
        Some("123456789012")
    );
    assert_eq!(
        job.settings.sse_kms_key_id.as_deref(),
        Some("arn:aws:kms:eu-west-1:123456789012:key/abc")
    );
    assert_eq!(
        job.settings.allowed_endpoints,
        vec!["s3.amazonaws.com:443".to_string()]
    );
    assert_eq!(
        job.options.output.to_string(),
        "s3://acme-lake/raw/${not-a-substitution}"
    );
    assert!(script.contains("raw/${!not-a-substitution}"), "{script}");
    assert!(toml.contains("cron = \"5 2 * * MON-FRI\""), "{toml}");
}

fn violations(t: &Value) -> Vec<(String, String)> {
    check_template(&GovernancePolicy::embedded(), t)
        .into_iter()
        .map(|v| (v.rule.to_string(), v.resource))
        .collect()
}

#[test]
fn each_broken_template_fails_the_rule_it_breaks_naming_the_resource() {
    let good = render(&pg(), &pg_config("fargate", "privatelink")).unwrap();
    assert!(violations(&good).is_empty());
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut t = good.clone();
        f(&mut t);
        violations(&t)
    };
    let r = &|t: &mut Value| {
        t["Resources"]["Schedule"]["Properties"]["Target"]["EcsParameters"]["NetworkConfiguration"]
            ["AwsvpcConfiguration"]["AssignPublicIp"] = "ENABLED".into()
    };
    assert_eq!(
        broken(r),
        vec![("no-public-ip".into(), "Resources.Schedule".into())]
    );
    let r = &|t: &mut Value| {
        t["Resources"]["RunnerEgressSource5432"]["Properties"]["CidrIp"] = "0.0.0.0/0".into();
    };
    assert_eq!(
        broken(r),
        vec![(
            "no-internet-egress".into(),
            "Resources.RunnerEgressSource5432".into()
        )]
    );
    let r = &|t: &mut Value| {
        t["Resources"]["RunnerSecurityGroup"]["Properties"]
            .as_object_mut()
            .unwrap()
            .remove("SecurityGroupEgress");
    };
    assert_eq!(
        broken(r),
        vec![(
            "no-internet-egress".into(),
            "Resources.RunnerSecurityGroup".into()
        )]
    );
    let r = &|t: &mut Value| {
        t["Resources"]["LogGroup"]["Properties"]
            .as_object_mut()
            .unwrap()
            .remove("KmsKeyId");
    };
    assert_eq!(
        broken(r),
        vec![("encryption-at-rest".into(), "Resources.LogGroup".into())]
    );
    let r = &|t: &mut Value| {
        t["Resources"]["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]
            ["Action"] = serde_json::json!(["s3:*"]);
    };
    assert_eq!(
        broken(r),
        vec![("no-wildcard-actions".into(), "Resources.TaskRole".into())]
    );
    let r = &|t: &mut Value| {
        t["Resources"]["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]
            ["Resource"] = "*".into();
    };
    assert_eq!(
        broken(r)
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>(),
        [(
            "no-wildcard-resources".to_string(),
            "Resources.TaskRole".to_string()
        )]
        .into()
    );
    let r = &|t: &mut Value| {
        let tags = t["Resources"]["Cluster"]["Properties"]["Tags"]
            .as_array_mut()
            .unwrap();
        tags.retain(|t| t["Key"] != "owner");
    };
    assert_eq!(
        broken(r),
        vec![("required-tags".into(), "Resources.Cluster".into())]
    );
    let r = &|t: &mut Value| t["Metadata"]["Connector"]["Runner"] = "ec2".into();
    assert!(broken(r).is_empty(), "ec2 is allowed for confidential");
    let r = &|t: &mut Value| t["Metadata"]["Connector"]["DataClassification"] = "restricted".into();
    assert_eq!(broken(r), vec![]);
    let r = &|t: &mut Value| {
        t["Metadata"]["Connector"]["DataClassification"] = "restricted".into();
        t["Metadata"]["Connector"]["Runner"] = "ec2".into();
    };
    assert_eq!(
        broken(r),
        vec![("allowed-runners".into(), "Resources.(template)".into())]
    );
}

#[test]
fn a_nat_allowlist_stack_opens_only_the_source_port_to_the_internet_and_exports_the_ip() {
    let demo_like = ConnectorManifest::parse(
        r#"
name = "saas-api"
version = "1.0.0"
description = "d"
data_classification = "internal"
dynamic_streams = true
[runners.lambda]
memory_mb = 512
vcpu = 1
max_runtime_secs = 900
[[networking]]
pattern = "nat-allowlist"
endpoints = ["api.example.com:443"]
"#,
    )
    .unwrap();
    let c = DeployConfig::parse(
        r#"
runner = "lambda"
network_pattern = "nat-allowlist"
output = "s3://acme-lake/raw/saas"
streams = ["items"]
tags = { owner = "x", cost-center = "y" }
"#,
    )
    .unwrap();
    let t = render(&demo_like, &c).unwrap();
    assert!(violations(&t).is_empty(), "{:?}", violations(&t));
    let egress = &t["Resources"]["RunnerEgressSource443"]["Properties"];
    assert_eq!(egress["CidrIp"], "0.0.0.0/0");
    assert_eq!(egress["FromPort"], 443);
    assert_eq!(t["Outputs"]["NatPublicIp"]["Value"]["Ref"], "NatElasticIp");
    assert!(t["Resources"]["Function"]["Properties"]["VpcConfig"].is_object());
    // The same stack for confidential data breaks the policy.
    let mut t2 = t.clone();
    t2["Metadata"]["Connector"]["DataClassification"] = "confidential".into();
    let v = violations(&t2);
    assert!(
        v.contains(&(
            "no-internet-egress".into(),
            "Resources.RunnerEgressSource443".into()
        )),
        "{v:?}"
    );
    assert!(
        v.contains(&(
            "allowed-network-patterns".into(),
            "Resources.(template)".into()
        )),
        "{v:?}"
    );
}

/// Every statement of every role, for every runner: S3 only on the output prefix (listing
/// only under it) and the artifacts, Secrets Manager only on the named secret, KMS only on
/// the key, logs only on the stack's log group; no wildcard action; `*` only for actions
/// IAM cannot scope.
#[test]
fn every_role_is_least_privilege() {
    for runner in ["lambda", "fargate", "ec2", "glue"] {
        let mut c = pg_config(runner, "privatelink");
        if runner != "glue" {
            c.secrets
                .insert("PGPASSWORD".into(), "prod/orders/pg".into());
        }
        let t = render(&pg(), &c).unwrap();
        let mut seen_s3 = false;
        for (id, res) in t["Resources"].as_object().unwrap() {
            if res["Type"] != "AWS::IAM::Role" {
                continue;
            }
            for policy in res["Properties"]["Policies"].as_array().unwrap() {
                for s in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
                    let actions: Vec<&str> = s["Action"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a.as_str().unwrap())
                        .collect();
                    let resources: Vec<Value> = match &s["Resource"] {
                        Value::Array(a) => a.clone(),
                        other => vec![other.clone()],
                    };
                    let ctx = format!("{runner} {id} {}", s["Sid"]);
                    for a in &actions {
                        assert!(!a.contains('*'), "{ctx}: {a}");
                    }
                    for r in &resources {
                        if r == "*" {
                            for a in &actions {
                                assert!(crate::iam::is_unscopable(a), "{ctx}: {a} on *");
                            }
                            continue;
                        }
                        let sub = r["Fn::Sub"].as_str().unwrap_or_default();
                        let service = actions[0].split(':').next().unwrap();
                        match service {
                            "s3" => {
                                seen_s3 = true;
                                assert!(
                                    sub == "arn:${AWS::Partition}:s3:::acme-lake/raw/orders/*"
                                        || sub == "arn:${AWS::Partition}:s3:::acme-lake"
                                        || sub.starts_with("arn:${AWS::Partition}:s3:::${ArtifactBucket}/${ArtifactPrefix}"),
                                    "{ctx}: {r}"
                                );
                                if actions.contains(&"s3:ListBucket") {
                                    assert_eq!(
                                        s["Condition"]["StringLike"]["s3:prefix"],
                                        serde_json::json!(["raw/orders/*", "raw/orders"]),
                                        "{ctx}"
                                    );
                                }
                            }
                            "secretsmanager" => assert_eq!(
                                sub,
                                "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:prod/orders/pg-??????",
                                "{ctx}"
                            ),
                            "kms" => {
                                assert_eq!(r, &serde_json::json!({"Ref": "KmsKeyArn"}), "{ctx}")
                            }
                            "logs" if runner == "glue" => assert_eq!(
                                sub,
                                "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws-glue/*",
                                "{ctx}"
                            ),
                            "logs" => assert_eq!(
                                r,
                                &serde_json::json!({"Fn::GetAtt": ["LogGroup", "Arn"]}),
                                "{ctx}"
                            ),
                            "sqs" => assert_eq!(
                                r,
                                &serde_json::json!({"Fn::GetAtt": ["FailureQueue", "Arn"]}),
                                "{ctx}"
                            ),
                            "ecr" => assert_eq!(
                                r,
                                &serde_json::json!({"Fn::GetAtt": ["Repository", "Arn"]}),
                                "{ctx}"
                            ),
                            "lambda" => {
                                assert_eq!(r, &serde_json::json!({"Ref": "FunctionAlias"}), "{ctx}")
                            }
                            "states" => {
                                assert_eq!(r, &serde_json::json!({"Ref": "StateMachine"}), "{ctx}")
                            }
                            "ecs" => assert_eq!(
                                r,
                                &serde_json::json!({"Ref": "TaskDefinition"}),
                                "{ctx}"
                            ),
                            "iam" => assert!(
                                [
                                    serde_json::json!({"Fn::GetAtt": ["ExecutionRole", "Arn"]}),
                                    serde_json::json!({"Fn::GetAtt": ["TaskRole", "Arn"]})
                                ]
                                .contains(r),
                                "{ctx}"
                            ),
                            "glue" => assert!(
                                sub.ends_with(":catalog")
                                    || sub.ends_with(":connection/${AWS::StackName}-network"),
                                "{ctx}"
                            ),
                            "ec2" => assert_eq!(
                                sub,
                                "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:network-interface/*",
                                "{ctx}"
                            ),
                            other => panic!("{ctx}: unexpected service {other} on {r}"),
                        }
                    }
                }
            }
        }
        assert!(seen_s3, "{runner}");
        let text = t.to_string();
        assert!(
            !text.contains("\"s3:*\"") && !text.contains("\"Action\":\"*\""),
            "{runner}"
        );
    }
}

/// The Lambda stack's loop: the schedule starts the state machine with the extract
/// request; a partial response is invoked again with its continuation merged in.
#[test]
fn the_lambda_loop_passes_the_continuation_on() {
    let mut c = pg_config("lambda", "vpn");
    c.secrets
        .insert("PGPASSWORD".into(), "prod/orders/pg".into());
    let t = render(&pg(), &c).unwrap();
    let r = &t["Resources"];
    let def: Value = serde_json::from_str(
        r["StateMachine"]["Properties"]["DefinitionString"]["Fn::Sub"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        def["States"]["Complete?"]["Choices"][0]["StringEquals"],
        "partial"
    );
    assert_eq!(
        def["States"]["TakeContinuation"]["Parameters"]["continuation.$"],
        "$.last.result.continuation"
    );
    assert_eq!(def["States"]["Continue"]["Next"], "Extract");
    let input: Value = serde_json::from_str(
        r["SchedulePublicOrders"]["Properties"]["Target"]["Input"]["Fn::Sub"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let event = &input["event"];
    assert_eq!(event["config_env"], "CONNECTOR_CONFIG_JSON");
    assert_eq!(event["stream"], "public_orders");
    assert_eq!(
        event["options"]["allowed_endpoints"],
        serde_json::json!(["orders.internal:5432"])
    );
    assert_eq!(event["options"]["sse_kms_key_id"], "${KmsKeyArn}");
    let f = &r["Function"]["Properties"];
    assert_eq!(f["Runtime"], "provided.al2023");
    assert_eq!(f["MemorySize"], 1024);
    assert_eq!(f["Timeout"], 900);
    assert_eq!(
        f["Environment"]["Variables"]["PGPASSWORD"],
        "{{resolve:secretsmanager:prod/orders/pg:SecretString}}"
    );
    let cfg: Value = serde_json::from_str(
        f["Environment"]["Variables"]["CONNECTOR_CONFIG_JSON"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["host"], "orders.internal");
    assert!(f["VpcConfig"].is_object());
    assert_eq!(
        r["FunctionInvokeConfig"]["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"]
            [0],
        "FailureQueue"
    );
    assert_eq!(r["SourceRoute"]["Type"], "AWS::EC2::Route");
}

/// One config serves every runner: a secret named in `secrets` reaches the connector as an
/// environment variable on Lambda and Fargate and as a systemd credential on EC2.
#[test]
fn secret_references_follow_the_runner() {
    for (runner, want) in [("lambda", "env"), ("fargate", "env"), ("ec2", "credential")] {
        let mut c = pg_config(runner, "vpn");
        c.config
            .insert("password".into(), serde_json::json!({"env": "PGPASSWORD"}));
        c.secrets
            .insert("PGPASSWORD".into(), "prod/orders/pg".into());
        let t = render(&pg(), &c).unwrap();
        let text = t.to_string();
        let expected = format!("\\\"password\\\":{{\\\"{want}\\\":\\\"PGPASSWORD\\\"}}");
        let toml_expected = format!("{want} = \\\"PGPASSWORD\\\"");
        assert!(
            text.contains(&expected) || text.contains(&toml_expected),
            "{runner}: {text}"
        );
        if runner == "ec2" {
            assert!(
                text.contains(
                    "--credential PGPASSWORD=/etc/postgres-connector/credentials/PGPASSWORD"
                ),
                "{text}"
            );
        }
    }
}

#[test]
fn an_empty_egress_list_is_allow_all_and_breaks_the_rule() {
    let mut t = render(&pg(), &pg_config("fargate", "vpn")).unwrap();
    t["Resources"]["RunnerSecurityGroup"]["Properties"]["SecurityGroupEgress"] =
        serde_json::json!([]);
    assert_eq!(
        violations(&t),
        vec![(
            "no-internet-egress".into(),
            "Resources.RunnerSecurityGroup".into()
        )]
    );
}

const FILES: &str = include_str!("../../connectors/s3-files/connector.toml");

fn files_config(runner: &str, events: bool) -> DeployConfig {
    DeployConfig::parse(&format!(
        r#"
runner = "{runner}"
network_pattern = "vpc-endpoint"
output = "s3://acme-lake/raw/drops"
streams = ["orders"]
config = {{ bucket = "acme-landing" }}
source_objects = {{ location = "s3://acme-landing/partner/orders", events = {events} }}
tags = {{ owner = "data-platform", cost-center = "4711" }}
"#
    ))
    .unwrap()
}

#[test]
fn a_file_connector_reads_only_its_source_prefix_and_lambda_takes_object_events() {
    let manifest = ConnectorManifest::parse(FILES).unwrap();
    let policy = GovernancePolicy::embedded();
    for runner in ["lambda", "fargate", "glue"] {
        let t = render(&manifest, &files_config(runner, runner == "lambda")).unwrap();
        let v = check_template(&policy, &t);
        assert!(v.is_empty(), "{runner}: {v:?}");
        // Some role reads the source prefix, read-only, and lists only under it.
        let text = t.to_string();
        assert!(
            text.contains("acme-landing/partner/orders/*"),
            "{runner}: no source read"
        );
        let statements: Vec<&Value> = t["Resources"]
            .as_object()
            .unwrap()
            .values()
            .filter(|r| r["Type"] == "AWS::IAM::Role")
            .flat_map(|r| r["Properties"]["Policies"].as_array().unwrap())
            .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap())
            .filter(|s| s["Resource"].to_string().contains("acme-landing"))
            .collect();
        assert!(!statements.is_empty(), "{runner}");
        for s in statements {
            let actions = s["Action"].to_string();
            assert!(
                !actions.contains("Put") && !actions.contains("Delete"),
                "{runner}: {s}"
            );
            if actions.contains("ListBucket") {
                assert!(
                    s["Condition"]["StringLike"]["s3:prefix"]
                        .to_string()
                        .contains("partner/orders"),
                    "{s}"
                );
            }
        }
    }
    let t = render(&manifest, &files_config("lambda", true)).unwrap();
    let rule = &t["Resources"]["ObjectCreatedRule"]["Properties"];
    assert_eq!(rule["EventPattern"]["detail-type"][0], "Object Created");
    assert_eq!(
        rule["EventPattern"]["detail"]["bucket"]["name"][0],
        "acme-landing"
    );
    assert_eq!(
        rule["EventPattern"]["detail"]["object"]["key"][0]["prefix"],
        "partner/orders/"
    );
    let permission = &t["Resources"]["ObjectCreatedPermission"]["Properties"];
    assert_eq!(permission["Principal"], "events.amazonaws.com");
    let env = &t["Resources"]["Function"]["Properties"]["Environment"]["Variables"];
    let request: Value =
        serde_json::from_str(env["CONNECTOR_EVENT_REQUEST"].as_str().unwrap()).unwrap();
    assert_eq!(request["stream"], "orders");
    assert_eq!(request["output"], "s3://acme-lake/raw/drops");
    assert_eq!(request["config_env"], "CONNECTOR_CONFIG_JSON");
    // Without events: no rule.
    let t = render(&manifest, &files_config("lambda", false)).unwrap();
    assert!(t["Resources"].get("ObjectCreatedRule").is_none());
    // Events on a runner that is not Lambda, or for two streams: refused by name.
    let e = render(&manifest, &files_config("glue", true))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("source_objects.events") && e.contains("glue"),
        "{e}"
    );
    let mut c = files_config("lambda", true);
    c.streams.push("refunds".into());
    let e = render(&manifest, &c).unwrap_err().to_string();
    assert!(e.contains("one stream"), "{e}");
}
