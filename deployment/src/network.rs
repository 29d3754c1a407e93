//! The four network patterns as resources, and the runner's security group.
//!
//! Every security group is created with a placeholder egress rule that matches nothing,
//! so CloudFormation does not add its default allow-all egress; each permitted flow is
//! then one `AWS::EC2::SecurityGroupEgress`: 443 to the AWS service endpoints' group and
//! to S3's prefix list, and the source endpoints' ports to the pattern's destination —
//! the PrivateLink endpoint's group, the VPN's CIDR, or (nat-allowlist only) the internet.

use std::collections::BTreeSet;

use connector_sdk::NetworkPattern;
use serde_json::{Value, json};

use crate::error::Result;
use crate::template::{Stack, att, logical, r#ref, refuse, sub};

/// An AWS service a runner reaches through an interface endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum AwsService {
    EcrApi,
    EcrDkr,
    Logs,
    Sts,
    SecretsManager,
    Glue,
    Ssm,
    SsmMessages,
    Ec2Messages,
    /// Another service named by a vpc-endpoint source (`<name>.<region>.amazonaws.com`).
    Named(&'static str),
}

impl AwsService {
    fn endpoint_name(self) -> &'static str {
        match self {
            AwsService::EcrApi => "ecr.api",
            AwsService::EcrDkr => "ecr.dkr",
            AwsService::Logs => "logs",
            AwsService::Sts => "sts",
            AwsService::SecretsManager => "secretsmanager",
            AwsService::Glue => "glue",
            AwsService::Ssm => "ssm",
            AwsService::SsmMessages => "ssmmessages",
            AwsService::Ec2Messages => "ec2messages",
            AwsService::Named(n) => n,
        }
    }
}

/// The placeholder egress rule: ICMP type 252 code 86 to 255.255.255.255/32, which
/// matches no traffic. With it CloudFormation adds no allow-all egress.
pub(crate) fn no_egress() -> Value {
    json!([{
        "IpProtocol": "icmp",
        "FromPort": 252,
        "ToPort": 86,
        "CidrIp": "255.255.255.255/32",
        "Description": "No egress but the rules below"
    }])
}

fn is_s3_host(host: &str) -> bool {
    host == "s3.amazonaws.com" || (host.starts_with("s3.") && host.ends_with(".amazonaws.com"))
}

/// The service of an AWS API host (`dynamodb.eu-west-1.amazonaws.com` → `dynamodb`).
fn aws_service_of(host: &str) -> Option<&'static str> {
    const KNOWN: &[&str] = &[
        "dynamodb",
        "kinesis",
        "sqs",
        "sns",
        "secretsmanager",
        "athena",
        "glue",
        "logs",
        "monitoring",
        "states",
        "lambda",
        "kms",
        "sts",
        "events",
        "firehose",
        "rds-data",
    ];
    let first = host.strip_suffix(".amazonaws.com")?.split('.').next()?;
    KNOWN.iter().copied().find(|k| *k == first)
}

/// Render the runner's security group (`RunnerSecurityGroup`), the AWS service endpoints
/// `services` and the pattern's resources.
pub(crate) fn render(stack: &mut Stack, services: &[AwsService]) -> Result<()> {
    let name = stack.manifest.name.clone();
    stack.param(
        "VpcId",
        json!({"Type": "AWS::EC2::VPC::Id", "Description": "The VPC the runner runs in"}),
    );
    stack.param(
        "PrivateSubnetIds",
        json!({"Type": "List<AWS::EC2::Subnet::Id>", "Description": "Private subnets (no route to an internet gateway) for the runner and the interface endpoints"}),
    );
    stack.param(
        "PrivateRouteTableId",
        json!({"Type": "String", "AllowedPattern": "^rtb-[0-9a-f]{8,17}$", "Description": "Route table of the private subnets (S3 gateway endpoint, NAT or VPN routes)"}),
    );
    stack.param(
        "S3PrefixListId",
        json!({"Type": "String", "AllowedPattern": "^pl-[0-9a-f]{8,17}$", "Description": "The region's S3 prefix list (com.amazonaws.<region>.s3), for the security group egress to the S3 gateway endpoint"}),
    );
    stack.param(
        "CreateS3GatewayEndpoint",
        json!({"Type": "String", "AllowedValues": ["true", "false"], "Default": "true", "Description": "false when the route table already has an S3 gateway endpoint"}),
    );
    stack.param(
        "ExistingEndpointsSecurityGroupId",
        json!({"Type": "String", "Default": "", "AllowedPattern": "^(sg-[0-9a-f]{8,17})?$", "Description": "Empty: create the interface endpoints the runner needs (private DNS). Otherwise the security group of the VPC's existing endpoints, which must admit this stack's RunnerSecurityGroup on 443"}),
    );
    stack.conditions.insert(
        "CreateS3Gateway".into(),
        json!({"Fn::Equals": [r#ref("CreateS3GatewayEndpoint"), "true"]}),
    );
    stack.conditions.insert(
        "CreateEndpoints".into(),
        json!({"Fn::Equals": [r#ref("ExistingEndpointsSecurityGroupId"), ""]}),
    );

    let glue = stack.config.runner == connector_sdk::Runner::Glue;
    stack.resource(
        "RunnerSecurityGroup",
        "AWS::EC2::SecurityGroup",
        json!({
            "GroupDescription": format!("{name}: the runner; egress only to the declared endpoints and the AWS endpoints it needs"),
            "VpcId": r#ref("VpcId"),
            "SecurityGroupEgress": no_egress(),
            "Tags": stack.tag_list(),
        }),
    );
    if glue {
        // Glue requires its workers to reach each other on every TCP port.
        stack.resource(
            "RunnerSelfIngress",
            "AWS::EC2::SecurityGroupIngress",
            json!({"GroupId": att("RunnerSecurityGroup", "GroupId"), "IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535,
                   "SourceSecurityGroupId": att("RunnerSecurityGroup", "GroupId"), "Description": "Glue workers to each other"}),
        );
        stack.resource(
            "RunnerSelfEgress",
            "AWS::EC2::SecurityGroupEgress",
            json!({"GroupId": att("RunnerSecurityGroup", "GroupId"), "IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535,
                   "DestinationSecurityGroupId": att("RunnerSecurityGroup", "GroupId"), "Description": "Glue workers to each other"}),
        );
    }

    // S3: a gateway endpoint on the private route table, egress to its prefix list.
    let s3 = stack.resource(
        "S3GatewayEndpoint",
        "AWS::EC2::VPCEndpoint",
        json!({
            "VpcEndpointType": "Gateway",
            "ServiceName": sub("com.amazonaws.${AWS::Region}.s3"),
            "VpcId": r#ref("VpcId"),
            "RouteTableIds": [r#ref("PrivateRouteTableId")],
        }),
    );
    s3.insert("Condition".into(), json!("CreateS3Gateway"));
    stack.resource(
        "RunnerEgressS3",
        "AWS::EC2::SecurityGroupEgress",
        json!({"GroupId": att("RunnerSecurityGroup", "GroupId"), "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
               "DestinationPrefixListId": r#ref("S3PrefixListId"), "Description": "S3 through the gateway endpoint"}),
    );

    // The pattern's own resources and the egress to the source.
    let ports: BTreeSet<u16> = stack.v.endpoints.iter().map(|e| e.port).collect();
    let mut services: Vec<AwsService> = services.to_vec();
    match stack.config.network_pattern {
        NetworkPattern::VpcEndpoint => {
            for e in stack.v.endpoints.clone() {
                if is_s3_host(&e.host) {
                    if e.port != 443 {
                        return Err(refuse(
                            "source_endpoints",
                            format!("{e}: S3 is reached on 443 through the gateway endpoint"),
                        ));
                    }
                    continue;
                }
                let Some(svc) = aws_service_of(&e.host) else {
                    return Err(refuse(
                        "source_endpoints",
                        format!(
                            "{e} is not an AWS service endpoint (<service>.<region>.amazonaws.com); the vpc-endpoint pattern reaches AWS services only — use privatelink for a service behind an endpoint service"
                        ),
                    ));
                };
                if e.port != 443 {
                    return Err(refuse(
                        "source_endpoints",
                        format!("{e}: interface endpoints of AWS services listen on 443"),
                    ));
                }
                services.push(AwsService::Named(svc));
            }
        }
        NetworkPattern::Privatelink => {
            stack.param(
                "SourceEndpointServiceName",
                json!({"Type": "String", "AllowedPattern": "^com\\.amazonaws\\.(vpce\\.)?[a-z0-9-]+\\.[a-zA-Z0-9._-]+$",
                       "Description": "The source's endpoint service, e.g. com.amazonaws.vpce.eu-west-1.vpce-svc-0123456789abcdef0"}),
            );
            stack.param(
                "SourceEndpointPrivateDns",
                json!({"Type": "String", "AllowedValues": ["true", "false"], "Default": "true",
                       "Description": "Private DNS for the source's endpoint (the provider must have verified its domain)"}),
            );
            stack.conditions.insert(
                "SourcePrivateDns".into(),
                json!({"Fn::Equals": [r#ref("SourceEndpointPrivateDns"), "true"]}),
            );
            let ingress: Vec<Value> = ports
                .iter()
                .map(|p| {
                    json!({"IpProtocol": "tcp", "FromPort": p, "ToPort": p,
                                "SourceSecurityGroupId": att("RunnerSecurityGroup", "GroupId"),
                                "Description": "From the runner only"})
                })
                .collect();
            stack.resource(
                "SourceEndpointSecurityGroup",
                "AWS::EC2::SecurityGroup",
                json!({
                    "GroupDescription": format!("{name}: PrivateLink endpoint of the source; admits only the runner"),
                    "VpcId": r#ref("VpcId"),
                    "SecurityGroupIngress": ingress,
                    "SecurityGroupEgress": no_egress(),
                    "Tags": stack.tag_list(),
                }),
            );
            stack.resource(
                "SourceEndpoint",
                "AWS::EC2::VPCEndpoint",
                json!({
                    "VpcEndpointType": "Interface",
                    "ServiceName": r#ref("SourceEndpointServiceName"),
                    "VpcId": r#ref("VpcId"),
                    "SubnetIds": r#ref("PrivateSubnetIds"),
                    "SecurityGroupIds": [att("SourceEndpointSecurityGroup", "GroupId")],
                    "PrivateDnsEnabled": {"Fn::If": ["SourcePrivateDns", true, false]},
                }),
            );
            for p in &ports {
                stack.resource(
                    &format!("RunnerEgressSource{p}"),
                    "AWS::EC2::SecurityGroupEgress",
                    json!({"GroupId": att("RunnerSecurityGroup", "GroupId"), "IpProtocol": "tcp", "FromPort": p, "ToPort": p,
                           "DestinationSecurityGroupId": att("SourceEndpointSecurityGroup", "GroupId"),
                           "Description": "The source, through its PrivateLink endpoint"}),
                );
            }
            stack.outputs.insert(
                "SourceEndpointDnsEntries".into(),
                json!({"Description": "DNS names of the source's PrivateLink endpoint",
                       "Value": {"Fn::Join": [",", att("SourceEndpoint", "DnsEntries")]}}),
            );
        }
        NetworkPattern::Vpn => {
            stack.param(
                "SourceCidr",
                json!({"Type": "String",
                       "AllowedPattern": "^((25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])/([89]|[12][0-9]|3[0-2])$",
                       "ConstraintDescription": "an IPv4 CIDR of /8 to /32 (never the internet)",
                       "Description": "The source network behind the VPN, e.g. 10.20.0.0/16"}),
            );
            stack.param(
                "VpnRouteTarget",
                json!({"Type": "String", "AllowedPattern": "^(vgw|tgw)-[0-9a-f]{8,17}$",
                       "Description": "The virtual private gateway (vgw-...) or transit gateway (tgw-...) the VPN is attached to (provisioning the VPN itself is out of scope)"}),
            );
            stack.conditions.insert(
                "VpnViaTransitGateway".into(),
                json!({"Fn::Equals": [{"Fn::Select": [0, {"Fn::Split": ["-", r#ref("VpnRouteTarget")]}]}, "tgw"]}),
            );
            stack.resource(
                "SourceRoute",
                "AWS::EC2::Route",
                json!({
                    "RouteTableId": r#ref("PrivateRouteTableId"),
                    "DestinationCidrBlock": r#ref("SourceCidr"),
                    "GatewayId": {"Fn::If": ["VpnViaTransitGateway", r#ref("AWS::NoValue"), r#ref("VpnRouteTarget")]},
                    "TransitGatewayId": {"Fn::If": ["VpnViaTransitGateway", r#ref("VpnRouteTarget"), r#ref("AWS::NoValue")]},
                }),
            );
            for p in &ports {
                stack.resource(
                    &format!("RunnerEgressSource{p}"),
                    "AWS::EC2::SecurityGroupEgress",
                    json!({"GroupId": att("RunnerSecurityGroup", "GroupId"), "IpProtocol": "tcp", "FromPort": p, "ToPort": p,
                           "CidrIp": r#ref("SourceCidr"), "Description": "The source, through the VPN"}),
                );
            }
        }
        NetworkPattern::NatAllowlist => {
            stack.param(
                "PublicSubnetId",
                json!({"Type": "AWS::EC2::Subnet::Id", "Description": "A public subnet (route to an internet gateway) for the NAT gateway"}),
            );
            stack.resource(
                "NatElasticIp",
                "AWS::EC2::EIP",
                json!({"Domain": "vpc", "Tags": stack.tag_list()}),
            );
            stack.resource(
                "NatGateway",
                "AWS::EC2::NatGateway",
                json!({
                    "AllocationId": att("NatElasticIp", "AllocationId"),
                    "SubnetId": r#ref("PublicSubnetId"),
                    "ConnectivityType": "public",
                    "Tags": stack.tag_list(),
                }),
            );
            stack.resource(
                "NatRoute",
                "AWS::EC2::Route",
                json!({"RouteTableId": r#ref("PrivateRouteTableId"), "DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": r#ref("NatGateway")}),
            );
            for p in &ports {
                stack.resource(
                    &format!("RunnerEgressSource{p}"),
                    "AWS::EC2::SecurityGroupEgress",
                    json!({"GroupId": att("RunnerSecurityGroup", "GroupId"), "IpProtocol": "tcp", "FromPort": p, "ToPort": p,
                           "CidrIp": "0.0.0.0/0", "Description": "The source on the internet, through the NAT gateway (its port only)"}),
                );
            }
            stack.outputs.insert(
                "NatPublicIp".into(),
                json!({"Description": "The fixed public IP the source must allowlist",
                       "Value": r#ref("NatElasticIp"),
                       "Export": {"Name": sub("${AWS::StackName}-NatPublicIp")}}),
            );
        }
    }

    // AWS service interface endpoints, private DNS, admitting only the runner.
    services.sort();
    services.dedup();
    if !services.is_empty() {
        let sg = stack.resource(
            "EndpointsSecurityGroup",
            "AWS::EC2::SecurityGroup",
            json!({
                "GroupDescription": format!("{name}: AWS service interface endpoints; admit only the runner"),
                "VpcId": r#ref("VpcId"),
                "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                    "SourceSecurityGroupId": att("RunnerSecurityGroup", "GroupId"), "Description": "From the runner only"}],
                "SecurityGroupEgress": no_egress(),
            }),
        );
        sg.insert("Condition".into(), json!("CreateEndpoints"));
        let tags = stack.tag_list();
        if let Some(p) = stack
            .resources
            .get_mut("EndpointsSecurityGroup")
            .and_then(|r| r.get_mut("Properties"))
        {
            p["Tags"] = tags;
        }
        for svc in &services {
            let id = format!(
                "{}Endpoint",
                logical(&svc.endpoint_name().replace('.', "_"))
            );
            let e = stack.resource(
                &id,
                "AWS::EC2::VPCEndpoint",
                json!({
                    "VpcEndpointType": "Interface",
                    "ServiceName": sub(&format!("com.amazonaws.${{AWS::Region}}.{}", svc.endpoint_name())),
                    "VpcId": r#ref("VpcId"),
                    "SubnetIds": r#ref("PrivateSubnetIds"),
                    "SecurityGroupIds": [att("EndpointsSecurityGroup", "GroupId")],
                    "PrivateDnsEnabled": true,
                }),
            );
            e.insert("Condition".into(), json!("CreateEndpoints"));
        }
        stack.resource(
            "RunnerEgressAwsEndpoints",
            "AWS::EC2::SecurityGroupEgress",
            json!({"GroupId": att("RunnerSecurityGroup", "GroupId"), "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                   "DestinationSecurityGroupId": {"Fn::If": ["CreateEndpoints", att("EndpointsSecurityGroup", "GroupId"), r#ref("ExistingEndpointsSecurityGroupId")]},
                   "Description": "AWS service interface endpoints"}),
        );
    }
    stack.outputs.insert(
        "RunnerSecurityGroupId".into(),
        json!({"Description": "The runner's security group (egress only to the declared endpoints)", "Value": att("RunnerSecurityGroup", "GroupId")}),
    );
    Ok(())
}
