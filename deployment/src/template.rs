//! `deploy cloudformation`: one complete CloudFormation stack per connector × runner,
//! rendered from the manifest and a [`DeployConfig`]. No I/O.
//!
//! Every stack has: the runner's compute and schedule, the network pattern's resources
//! ([`crate::network`]), least-privilege IAM ([`crate::iam`]), a log group, the tags, and
//! `Metadata.Connector` (name, version, runner, pattern, classification, endpoints), which
//! `govern` reads. Account-specific ids are parameters.

use connector_sdk::governance::spelled;
use connector_sdk::{ConnectorManifest, Runner};
use serde_json::{Map, Value, json};

use crate::config::{DeployConfig, Validated};
use crate::error::{Error, Result};
use crate::iam::Statements;
use crate::network::AwsService;

/// The stack being built.
pub(crate) struct Stack<'a> {
    pub manifest: &'a ConnectorManifest,
    pub config: &'a DeployConfig,
    pub v: Validated,
    pub resources: Map<String, Value>,
    pub parameters: Map<String, Value>,
    pub conditions: Map<String, Value>,
    pub outputs: Map<String, Value>,
}

/// `{"Ref": id}`.
pub(crate) fn r#ref(id: &str) -> Value {
    json!({ "Ref": id })
}

/// `{"Fn::GetAtt": [id, attr]}`.
pub(crate) fn att(id: &str, attr: &str) -> Value {
    json!({ "Fn::GetAtt": [id, attr] })
}

/// `{"Fn::Sub": s}`.
pub(crate) fn sub(s: &str) -> Value {
    json!({ "Fn::Sub": s })
}

/// `text` safe inside `Fn::Sub`: a literal `${` is written `${!`.
pub(crate) fn sub_escape(text: &str) -> String {
    text.replace("${", "${!")
}

impl<'a> Stack<'a> {
    pub fn param(&mut self, name: &str, spec: Value) {
        self.parameters.insert(name.into(), spec);
    }

    pub fn resource(&mut self, id: &str, ty: &str, properties: Value) -> &mut Map<String, Value> {
        self.resources
            .insert(id.into(), json!({"Type": ty, "Properties": properties}));
        self.resources
            .get_mut(id)
            .and_then(Value::as_object_mut)
            .expect("just inserted")
    }

    /// The tags: the config's, plus connector, connector-version, data-classification.
    pub fn tag_pairs(&self) -> Vec<(String, String)> {
        let mut tags = self.config.tags.clone();
        tags.entry("connector".into())
            .or_insert_with(|| self.manifest.name.clone());
        tags.entry("connector-version".into())
            .or_insert_with(|| self.manifest.version.clone());
        tags.entry("data-classification".into())
            .or_insert_with(|| spelled(&self.manifest.data_classification));
        tags.into_iter().collect()
    }

    /// Tags as `[{"Key", "Value"}]`.
    pub fn tag_list(&self) -> Value {
        Value::Array(
            self.tag_pairs()
                .into_iter()
                .map(|(k, v)| json!({"Key": k, "Value": v}))
                .collect(),
        )
    }

    /// Tags as `{"key": "value"}` (Glue, SSM).
    pub fn tag_map(&self) -> Value {
        Value::Object(
            self.tag_pairs()
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    }

    pub fn kms(&self) -> bool {
        self.config.sse_kms
    }

    pub fn log_group(&mut self, id: &str) {
        let mut props = json!({
            "RetentionInDays": self.config.log_retention_days,
            "Tags": self.tag_list(),
        });
        if self.kms() {
            props["KmsKeyId"] = r#ref("KmsKeyArn");
        }
        self.resource(id, "AWS::Logs::LogGroup", props);
    }

    /// A role `service` assumes, with one inline policy of `statements`.
    pub fn role(&mut self, id: &str, service: &str, statements: Statements) {
        let mut trust = json!({
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole",
        });
        // The confused-deputy guard, for the services documented to send
        // aws:SourceAccount when they assume a role (Lambda, ECS tasks, EC2 and Glue do
        // not, and would then be unable to assume it).
        if matches!(service, "scheduler.amazonaws.com" | "states.amazonaws.com") {
            trust["Condition"] =
                json!({"StringEquals": {"aws:SourceAccount": r#ref("AWS::AccountId")}});
        }
        let props = json!({
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [trust]
            },
            "Policies": [{
                "PolicyName": "least-privilege",
                "PolicyDocument": {"Version": "2012-10-17", "Statement": statements.into_vec()}
            }],
            "Tags": self.tag_list(),
        });
        self.resource(id, "AWS::IAM::Role", props);
    }

    /// The run-time extract options every runner passes: the deployment's endpoints
    /// (pinned), the KMS key and the bucket owner (this account).
    pub fn allowed_endpoints(&self) -> Vec<String> {
        self.v.endpoints.iter().map(|e| e.to_string()).collect()
    }

    /// The config as this runner delivers the secrets named in `secrets`: a secret source
    /// `{"env": NAME}` or `{"credential": NAME}` whose NAME is a key of `secrets` becomes
    /// `{"credential": NAME}` on EC2 (a systemd credential) and `{"env": NAME}` elsewhere
    /// (an environment variable), so one config serves every runner.
    pub fn runner_config(&self) -> Map<String, Value> {
        let want = if self.config.runner == Runner::Ec2 {
            "credential"
        } else {
            "env"
        };
        fn walk(v: &mut Value, secrets: &std::collections::BTreeMap<String, String>, want: &str) {
            match v {
                Value::Object(o) => {
                    if o.len() == 1 {
                        let (k, name) = o
                            .iter()
                            .next()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .unwrap_or_default();
                        if (k == "env" || k == "credential")
                            && name.as_str().is_some_and(|n| secrets.contains_key(n))
                        {
                            o.clear();
                            o.insert(want.to_string(), name);
                            return;
                        }
                    }
                    for x in o.values_mut() {
                        walk(x, secrets, want);
                    }
                }
                Value::Array(a) => a.iter_mut().for_each(|x| walk(x, secrets, want)),
                _ => {}
            }
        }
        let mut v = Value::Object(self.config.config.clone());
        walk(&mut v, &self.config.secrets, want);
        match v {
            Value::Object(o) => o,
            _ => Map::new(),
        }
    }

    /// The config as compact JSON (without secrets: those come from `secrets`).
    pub fn config_json(&self) -> String {
        Value::Object(self.runner_config()).to_string()
    }

    pub fn schedule_expression(&self) -> String {
        self.config.schedule.clone()
    }
}

/// Render the stack for `config.runner`.
pub fn render(manifest: &ConnectorManifest, config: &DeployConfig) -> Result<Value> {
    let v = config.validate(manifest)?;
    let mut stack = Stack {
        manifest,
        config,
        v,
        resources: Map::new(),
        parameters: Map::new(),
        conditions: Map::new(),
        outputs: Map::new(),
    };
    if stack.kms() {
        stack.param(
            "KmsKeyArn",
            json!({
                "Type": "String",
                "Description": "ARN of the customer-managed KMS key for the output (SSE-KMS), logs, queue, image repository and disks",
                "AllowedPattern": "^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[a-zA-Z0-9-]+$",
                "ConstraintDescription": "a KMS key ARN, arn:aws:kms:<region>:<account>:key/<id>"
            }),
        );
    }
    let services = match config.runner {
        Runner::Lambda => crate::runners::lambda(&mut stack)?,
        Runner::Fargate => crate::runners::fargate(&mut stack)?,
        Runner::Ec2 => crate::runners::ec2(&mut stack)?,
        Runner::Glue => crate::runners::glue(&mut stack)?,
    };
    if let Some(services) = services {
        crate::network::render(&mut stack, &services)?;
    }
    let endpoints: Vec<String> = stack.allowed_endpoints();
    let mut template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!(
            "{} {} on {} ({} network pattern), rendered by `{} deploy cloudformation`",
            manifest.name,
            manifest.version,
            config.runner,
            spelled(&config.network_pattern),
            manifest.name
        ),
        "Metadata": {"Connector": {
            "Name": manifest.name,
            "Version": manifest.version,
            "Runner": config.runner.as_str(),
            "NetworkPattern": spelled(&config.network_pattern),
            "DataClassification": spelled(&manifest.data_classification),
            "SourceEndpoints": endpoints,
            "Streams": stack.v.streams,
            "SseKms": config.sse_kms,
        }},
        "Parameters": Value::Object(stack.parameters),
        "Resources": Value::Object(stack.resources),
    });
    if !stack.conditions.is_empty() {
        template["Conditions"] = Value::Object(stack.conditions);
    }
    if !stack.outputs.is_empty() {
        template["Outputs"] = Value::Object(stack.outputs);
    }
    Ok(template)
}

/// A CloudFormation logical id from a stream name (`public_orders` → `PublicOrders`).
pub(crate) fn logical(name: &str) -> String {
    name.split(['_', '-'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The services a runner in a VPC reaches through interface endpoints.
pub(crate) fn with_secrets(mut services: Vec<AwsService>, stack: &Stack) -> Vec<AwsService> {
    if !stack.config.secrets.is_empty() {
        services.push(AwsService::SecretsManager);
    }
    services
}

/// An error about the stack, naming the field.
pub(crate) fn refuse(field: &str, message: String) -> Error {
    Error::config(field, message)
}
