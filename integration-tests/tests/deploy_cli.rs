//! `deploy cloudformation`, `govern` and `advise` on a real connector binary: the
//! rendered stack on stdout, bad input as one `error:` line naming the field with exit 2,
//! the advisor's JSON and warnings.

use std::process::{Command, Output};

use serde_json::Value;

fn orders_demo(args: &[&str]) -> Output {
    Command::new(integration_tests::binary("orders-demo", "orders-demo"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

const GOOD: &str = "runner = \"fargate\"\nnetwork_pattern = \"vpc-endpoint\"\noutput = \"s3://lake/raw/demo\"\nconfig = { rows = 10 }\ntags = { owner = \"o\", cost-center = \"c\" }\n";

#[test]
fn deploy_renders_a_stack_the_binary_governs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(&dir, "deploy.toml", GOOD);
    let out = orders_demo(&["deploy", "cloudformation", "--config", &cfg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["Metadata"]["Connector"]["Runner"], "fargate");
    assert_eq!(
        t["Resources"]["TaskDefinition"]["Type"],
        "AWS::ECS::TaskDefinition"
    );
    let tpl = write(&dir, "t.json", &String::from_utf8_lossy(&out.stdout));
    let out = orders_demo(&["govern", &tpl]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 template(s) follow"));
    let out = orders_demo(&["deploy", "cloudformation", "--print-schema"]);
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        schema["properties"]["network_pattern"].is_object(),
        "{schema}"
    );
}

#[test]
fn bad_deploy_input_is_one_line_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for (text, names) in [
        (format!("{GOOD}vpc = \"vpc-1\"\n"), "unknown field `vpc`"),
        (
            GOOD.replace("vpc-endpoint", "privatelink"),
            "network_pattern: `privatelink` is not declared by connector `orders-demo`; its manifest declares vpc-endpoint",
        ),
        (
            GOOD.replace("rows = 10", "rows = 10, colour = 1"),
            "config: ",
        ),
        (GOOD.replace("s3://lake/raw/demo", "lake/raw"), "output: "),
        (
            format!("{GOOD}schedule = \"every day\"\n"),
            "schedule: \"every day\" is not a schedule expression",
        ),
        (
            format!("{GOOD}log_retention_days = 31\n"),
            "log_retention_days: 31 is not a CloudWatch Logs retention",
        ),
        (
            format!("{GOOD}secrets = {{ PW = \"s3cr3t value!\" }}\n"),
            "secrets: PW: the value must be a Secrets Manager secret name",
        ),
    ] {
        let cfg = write(&dir, "bad.toml", &text);
        let out = orders_demo(&["deploy", "cloudformation", "--config", &cfg]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("error: ") && err.contains(names),
            "{names}: {err}"
        );
        assert!(out.stdout.is_empty());
        assert!(!err.contains("s3cr3t"), "{err}");
    }
    let junk = write(&dir, "junk.json", "Resources: {}");
    let out = orders_demo(&["govern", &junk]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not a JSON CloudFormation template"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn advise_recommends_with_reasons_and_warns_about_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "p.toml",
        "expected_runtime_secs = 7200\nmemory_mb = 4096\ndata_volume_gb = 20\nparallelism = 4\ntrigger = \"schedule\"\nsource = \"on-premises\"\n",
    );
    let out = orders_demo(&["advise", "--profile", &p]);
    assert!(out.status.success(), "{}", stderr(&out));
    let a: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(a["runner"], "fargate");
    assert_eq!(a["network_pattern"], "vpn");
    assert!(
        a["reasons"][0]
            .as_str()
            .unwrap()
            .contains("7200 s exceed Lambda's 900 s"),
        "{a}"
    );
    // orders-demo declares only vpc-endpoint: warned.
    assert!(
        stderr(&out)
            .contains("warning: connector `orders-demo` does not declare the vpn network pattern"),
        "{}",
        stderr(&out)
    );
    let bad = write(&dir, "bad.toml", "memory_mb = 1\n");
    let out = orders_demo(&["advise", "--profile", &bad]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing field"), "{}", stderr(&out));
}
