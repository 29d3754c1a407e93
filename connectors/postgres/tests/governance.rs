//! The run-time governance check, on the real binary: a config whose source endpoint the
//! deployment does not allow, or a runner the policy does not allow for the connector's
//! classification (confidential), is refused with exit 2 and one line naming the endpoint
//! (or rule) and what is allowed — before any connection: listening sockets standing in
//! for the source and for S3 see no connection attempt. The declared endpoint extracts.

mod support;

use std::net::TcpListener;
use std::process::{Command, Output};

use integration_tests::{TestEnv, read_committed};
use serde_json::json;
use support::PgServer;

/// A listener that must never be connected to.
struct Untouched(TcpListener);

impl Untouched {
    fn bind() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        Untouched(l)
    }
    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }
    fn assert_untouched(&self, what: &str) {
        match self.0.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok((_, from)) => panic!("{what} was connected to from {from}"),
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

fn binary() -> Command {
    Command::new(integration_tests::binary(
        "postgres-connector",
        "postgres-connector",
    ))
}

fn s3_env(s3: &Untouched) -> Vec<(String, String)> {
    TestEnv::process_env(&format!("http://127.0.0.1:{}", s3.port()))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_endpoint_the_deployment_does_not_allow_is_refused_before_any_connection() {
    let source = Untouched::bind();
    let s3 = Untouched::bind();
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "host": "127.0.0.1", "port": source.port(), "database": "d", "user": "u",
        "sslmode": "disable", "streams": [{"table": "t"}],
    });
    let path = dir.path().join("c.json");
    std::fs::write(&path, config.to_string()).unwrap();
    // The port differs from the pinned one; then the host differs.
    for allowed in [
        format!("127.0.0.1:{}", source.port().wrapping_add(1).max(1)),
        format!("db.internal:{}", source.port()),
    ] {
        let out = binary()
            .args(["extract", "--config"])
            .arg(&path)
            .args([
                "--output",
                "s3://bucket/gov",
                "--allowed-endpoints",
                &allowed,
            ])
            .envs(s3_env(&s3))
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        let line = err
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_default();
        assert!(
            line.contains(&format!(
                "source endpoint 127.0.0.1:{} is not declared",
                source.port()
            )) && line.contains(&format!("this deployment allows only {allowed}")),
            "{err}"
        );
        // The container (Fargate) takes the same pins from its environment.
        let out = binary()
            .arg("container")
            .env("CONNECTOR_CONFIG", config.to_string())
            .env("CONNECTOR_OUTPUT", "s3://bucket/gov")
            .env(
                "CONNECTOR_ALLOWED_ENDPOINTS",
                format!("other.internal:5432,{allowed}"),
            )
            .envs(s3_env(&s3))
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("is not declared") && err.contains(&allowed),
            "{err}"
        );
    }
    // A pin that is not host:port is refused as an option, naming it.
    let out = binary()
        .args(["extract", "--config"])
        .arg(&path)
        .args([
            "--output",
            "s3://bucket/gov",
            "--allowed-endpoints",
            "db.internal",
        ])
        .envs(s3_env(&s3))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("allowed_endpoints"),
        "{}",
        stderr(&out)
    );
    source.assert_untouched("the source");
    s3.assert_untouched("S3");
}

#[test]
fn a_runner_the_policy_forbids_for_the_classification_is_refused_before_any_io() {
    let source = Untouched::bind();
    let s3 = Untouched::bind();
    let dir = tempfile::tempdir().unwrap();
    let policy = connector_sdk::governance::DEFAULT_POLICY.replace(
        "[classification.confidential]\nrunners = [\"lambda\", \"fargate\", \"ec2\", \"glue\"]",
        "[classification.confidential]\nrunners = [\"lambda\", \"glue\"]",
    );
    assert_ne!(policy, connector_sdk::governance::DEFAULT_POLICY);
    let policy_path = dir.path().join("policy.toml");
    std::fs::write(&policy_path, policy).unwrap();
    let config = json!({
        "host": "127.0.0.1", "port": source.port(), "database": "d", "user": "u",
        "sslmode": "disable", "streams": [{"table": "t"}],
    });
    let out = binary()
        .arg("container")
        .env("CONNECTOR_CONFIG", config.to_string())
        .env("CONNECTOR_OUTPUT", "s3://bucket/gov")
        .env("CONNECTOR_GOVERNANCE_POLICY", &policy_path)
        .envs(s3_env(&s3))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("[allowed-runners]")
            && err.contains("confidential data, which the governance policy does not allow on `fargate` (allowed: lambda, glue)"),
        "{err}"
    );
    // The same binary and policy on the manifest: govern names the rule and the field.
    let out = binary()
        .args(["govern", "--policy"])
        .arg(&policy_path)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("[allowed-runners] manifest postgres-connector runners.fargate:")
            && err.contains("[allowed-runners] manifest postgres-connector runners.ec2:"),
        "{err}"
    );
    source.assert_untouched("the source");
    s3.assert_untouched("S3");
}

/// The pinned, declared endpoint extracts (the pins do not block what they allow).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allowed_endpoint_extracts() {
    let pg = PgServer::start();
    let env = TestEnv::start().await;
    pg.client()
        .await
        .batch_execute(
            "CREATE TABLE g (id int PRIMARY KEY); INSERT INTO g SELECT generate_series(1, 3);",
        )
        .await
        .unwrap();
    let config = pg.config(json!([{"table": "g"}]));
    let path = env.write_json("gov.json", &config);
    let port = config["port"].as_u64().unwrap();
    let out = binary()
        .args(["extract", "--config"])
        .arg(&path)
        .args([
            "--output",
            &format!("s3://{}/gov-ok", integration_tests::BUCKET),
            "--allowed-endpoints",
            &format!("db.internal:5432,127.0.0.1:{port}"),
        ])
        .envs(TestEnv::process_env(&env.endpoint()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let got = read_committed(&env.store().await, &env.output("gov-ok"), "g", "id")
        .await
        .unwrap();
    assert_eq!(got.num_rows(), 3);
}
