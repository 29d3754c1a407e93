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

/// Set in the copy of this test binary that runs inside the namespace.
const IN_NAMESPACE: &str = "GOVERNANCE_EGRESS_NAMESPACE";

fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes the namespace, whatever happened.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Egress deny by default, as the stacks' security groups render it: in a network
/// namespace whose nftables output policy drops everything but the declared endpoints
/// (the source and S3, on loopback), the connector extracts through them; a config
/// pointing elsewhere fails with a clear error and commits nothing — refused by the
/// run-time check when the deployment pins its endpoints, and by the firewall when it
/// does not. The test binary re-runs itself inside the namespace (`ip netns exec`).
#[test]
fn in_a_deny_by_default_namespace_only_the_declared_endpoint_is_reachable() {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        return inside_the_namespace();
    }
    let ns = Namespace(format!("govegress{}", std::process::id()));
    sh("ip", &["netns", "add", &ns.0]);
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "in_a_deny_by_default_namespace_only_the_declared_endpoint_is_reachable",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(IN_NAMESPACE, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("test result: ok. 1 passed"), "{text}");
    assert!(
        text.contains("egress checked: declared extracts, undeclared refused twice"),
        "{text}"
    );
    println!("{text}");
}

fn inside_the_namespace() {
    sh("ip", &["link", "set", "lo", "up"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pg = PgServer::start();
        let env = TestEnv::start().await;
        let elsewhere = Untouched::bind();
        let pg_port = pg.config(json!([]))["port"].as_u64().unwrap();
        let s3_port = env
            .endpoint()
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .parse::<u16>()
            .unwrap();
        pg.client()
            .await
            .batch_execute("CREATE TABLE e (id bigint PRIMARY KEY, v text); INSERT INTO e SELECT g, 'r' || g FROM generate_series(1, 500) g;")
            .await
            .unwrap();
        // Deny by default: only the declared endpoints (and their replies) leave.
        let rules = format!(
            "table inet egress {{\n chain out {{\n  type filter hook output priority 0; policy drop;\n  oifname \"lo\" tcp dport {{ {pg_port}, {s3_port} }} accept\n  oifname \"lo\" tcp sport {{ {pg_port}, {s3_port} }} accept\n  meta l4proto tcp reject with tcp reset\n  reject\n }}\n}}\n"
        );
        let file = env.write_json("unused.json", &json!({}));
        let rules_path = file.with_file_name("egress.nft");
        std::fs::write(&rules_path, rules).unwrap();
        sh("nft", &["-f", rules_path.to_str().unwrap()]);

        let declared = pg.config(json!([{"table": "e"}]));
        let mut undeclared = declared.clone();
        undeclared["port"] = json!(elsewhere.port());
        // Dropped packets, as a security group drops them: the connect times out.
        undeclared["connect_timeout_secs"] = json!(2);
        let run = |config: &serde_json::Value, name: &str, pins: Option<String>| {
            let path = env.write_json(&format!("{name}.json"), config);
            let mut cmd = binary();
            cmd.args(["extract", "--config"])
                .arg(&path)
                .args(["--output", &format!("s3://{}/{name}", integration_tests::BUCKET)])
                .envs(TestEnv::process_env(&env.endpoint()));
            if let Some(p) = pins {
                cmd.args(["--allowed-endpoints", &p]);
            }
            cmd.output().unwrap()
        };
        let pinned = format!("127.0.0.1:{pg_port}");

        let out = run(&declared, "declared", Some(pinned.clone()));
        assert!(out.status.success(), "{}", stderr(&out));
        let got = read_committed(&env.store().await, &env.output("declared"), "e", "id")
            .await
            .unwrap();
        assert_eq!(got.num_rows(), 500);

        // Pinned: the run-time check refuses before any connection.
        let out = run(&undeclared, "pinned", Some(pinned));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("source endpoint 127.0.0.1:{} is not declared", elsewhere.port())), "{err}");
        // Not pinned: the firewall refuses; the connector says it cannot reach the source.
        let out = run(&undeclared, "unpinned", None);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{err}");
        println!("unpinned, refused by the firewall: {}", err.trim());
        assert!(
            err.contains(&format!("cannot connect to 127.0.0.1:{}", elsewhere.port()))
                && err.contains("check `host`, `port` and the network path"),
            "{err}"
        );
        elsewhere.assert_untouched("the undeclared endpoint");
        for name in ["pinned", "unpinned"] {
            assert!(
                read_committed(&env.store().await, &env.output(name), "e", "id")
                    .await
                    .is_none(),
                "{name}: nothing may be committed"
            );
        }
        println!("egress checked: declared extracts, undeclared refused twice");
    });
}
