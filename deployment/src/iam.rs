//! Least-privilege IAM statements: S3 only on the output prefix (and the artifacts the
//! runner reads), Secrets Manager only on the named secrets, KMS only on the given key,
//! logs only on the stack's log group. No `*` action anywhere; `*` resources only for the
//! actions whose service offers no resource scoping ([`UNSCOPABLE_ACTIONS`]).

use connector_sdk::OutputLocation;
use serde_json::{Value, json};

use crate::template::{Stack, r#ref, sub, sub_escape};

/// What a Glue job with a NETWORK connection does to place its workers in the VPC:
/// creating an interface names the subnet and security group, and the Describe calls take
/// no resource, so IAM cannot scope them. (Deleting, assigning addresses and tagging are
/// scoped to [`NETWORK_INTERFACES`].) A VPC-attached Lambda function needs the first two.
pub const VPC_PLACEMENT_ACTIONS: &[&str] = &[
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeVpcs",
    "ec2:DescribeVpcAttribute",
    "ec2:DescribeVpcEndpoints",
    "ec2:DescribeRouteTables",
];

/// This account's network interfaces in this region (an `Fn::Sub` string).
pub(crate) const NETWORK_INTERFACES: &str =
    "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:network-interface/*";

/// Actions IAM cannot scope to a resource, besides [`VPC_PLACEMENT_ACTIONS`] and
/// [`SESSION_MANAGER_ACTIONS`]: the only ones granted on `*`.
pub const UNSCOPABLE_ACTIONS: &[&str] = &[
    // ECR's registry login.
    "ecr:GetAuthorizationToken",
    // Glue's job metrics (scoped by a namespace condition instead).
    "cloudwatch:PutMetricData",
];

/// Session Manager (SSM access instead of SSH): what an instance needs to be reached
/// through it; none of these take a resource.
pub const SESSION_MANAGER_ACTIONS: &[&str] = &[
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
];

/// Whether IAM cannot scope `action` to a resource (the only actions granted on `*`).
pub fn is_unscopable(action: &str) -> bool {
    UNSCOPABLE_ACTIONS.contains(&action)
        || VPC_PLACEMENT_ACTIONS.contains(&action)
        || SESSION_MANAGER_ACTIONS.contains(&action)
}

/// A policy's statements.
#[derive(Default)]
pub(crate) struct Statements(Vec<Value>);

impl Statements {
    pub fn into_vec(self) -> Vec<Value> {
        self.0
    }

    pub fn allow(&mut self, sid: &str, actions: &[&str], resources: Value) -> &mut Self {
        self.0.push(json!({
            "Sid": sid,
            "Effect": "Allow",
            "Action": actions,
            "Resource": resources,
        }));
        self
    }

    pub fn allow_if(
        &mut self,
        sid: &str,
        actions: &[&str],
        resources: Value,
        condition: Value,
    ) -> &mut Self {
        self.0.push(json!({
            "Sid": sid,
            "Effect": "Allow",
            "Action": actions,
            "Resource": resources,
            "Condition": condition,
        }));
        self
    }

    /// Read (never write) the objects under `source` and list only that prefix: what a
    /// file connector ingests.
    pub fn source_read(&mut self, source: Option<&OutputLocation>) -> &mut Self {
        let Some(source) = source else {
            return self;
        };
        let bucket = sub_escape(&source.bucket);
        let prefix = sub_escape(source.prefix.trim_end_matches('/'));
        let objects = if prefix.is_empty() {
            format!("arn:${{AWS::Partition}}:s3:::{bucket}/*")
        } else {
            format!("arn:${{AWS::Partition}}:s3:::{bucket}/{prefix}/*")
        };
        let bucket_arn = sub(&format!("arn:${{AWS::Partition}}:s3:::{bucket}"));
        self.allow("SourceObjects", &["s3:GetObject"], json!([sub(&objects)]));
        if prefix.is_empty() {
            self.allow("SourceListing", &["s3:ListBucket"], json!([bucket_arn]))
        } else {
            let p = source.prefix.trim_end_matches('/');
            self.allow_if(
                "SourceListing",
                &["s3:ListBucket"],
                json!([bucket_arn]),
                json!({"StringLike": {"s3:prefix": [format!("{p}/*"), p]}}),
            )
        }
    }

    /// Read, write and delete the output's objects (data files, the Delta log, the
    /// `_probes/` of the conditional-write check) and list only under its prefix.
    pub fn output(&mut self, output: &OutputLocation) -> &mut Self {
        let bucket = sub_escape(&output.bucket);
        let prefix = sub_escape(output.prefix.trim_end_matches('/'));
        let objects = if prefix.is_empty() {
            format!("arn:${{AWS::Partition}}:s3:::{bucket}/*")
        } else {
            format!("arn:${{AWS::Partition}}:s3:::{bucket}/{prefix}/*")
        };
        let bucket_arn = sub(&format!("arn:${{AWS::Partition}}:s3:::{bucket}"));
        self.allow(
            "OutputObjects",
            &[
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            json!([sub(&objects)]),
        );
        if prefix.is_empty() {
            self.allow(
                "OutputListing",
                &["s3:ListBucket", "s3:ListBucketMultipartUploads"],
                json!([bucket_arn]),
            )
        } else {
            self.allow_if(
                "OutputListing",
                &["s3:ListBucket"],
                json!([bucket_arn.clone()]),
                json!({"StringLike": {"s3:prefix": [format!("{}/*", output.prefix.trim_end_matches('/')), output.prefix.trim_end_matches('/')]}}),
            );
            self.allow(
                "OutputUploads",
                &["s3:ListBucketMultipartUploads"],
                json!([bucket_arn]),
            )
        }
    }

    /// Encrypt and decrypt with the stack's key (SSE-KMS writes and reads).
    pub fn kms(&mut self, stack: &Stack) -> &mut Self {
        if stack.kms() {
            self.allow(
                "OutputKey",
                &["kms:GenerateDataKey", "kms:Decrypt"],
                json!([r#ref("KmsKeyArn")]),
            );
        }
        self
    }

    /// Read the named secrets (each secret's ARN ends in a random 6-character suffix).
    pub fn secrets(&mut self, stack: &Stack) -> &mut Self {
        if stack.config.secrets.is_empty() {
            return self;
        }
        let arns: Vec<Value> = stack
            .config
            .secrets
            .values()
            .map(|name| {
                sub(&format!(
                    "arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{}-??????",
                    sub_escape(name)
                ))
            })
            .collect();
        self.allow(
            "NamedSecrets",
            &["secretsmanager:GetSecretValue"],
            Value::Array(arns),
        )
    }

    /// Write to the log group `id` only.
    pub fn logs(&mut self, id: &str) -> &mut Self {
        self.allow(
            "OwnLogGroup",
            &["logs:CreateLogStream", "logs:PutLogEvents"],
            json!([{"Fn::GetAtt": [id, "Arn"]}]),
        )
    }

    /// Manage the ENIs of a VPC-attached function or job: create and describe (IAM cannot
    /// scope them), delete and (un)assign addresses only on this account's network
    /// interfaces in this region.
    pub fn vpc_interfaces(&mut self) -> &mut Self {
        self.allow(
            "VpcNetworkInterfaces",
            &VPC_PLACEMENT_ACTIONS[..2],
            json!("*"),
        )
        .allow(
            "OwnNetworkInterfaces",
            &[
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ],
            json!([sub(NETWORK_INTERFACES)]),
        )
    }
}
