//! Connection safety against a real PostgreSQL: TLS verified by default (a real
//! TLS-only server with a test CA), the session's settings forced whatever the role sets,
//! text keys with quotes and backslashes resumed exactly.

mod support;

use std::time::Duration;

use connector_sdk::{
    ConnectorErrorKind, Error, ExtractCore, ExtractOptions, RunStatus, StopSignal,
};
use integration_tests::{TestEnv, read_committed};
use postgres_connector::{PostgresConfig, PostgresConnector};
use serde_json::{Value, json};
use support::{PASSWORD, PgServer, assert_batches_equal, expected_batch};

async fn core(env: &TestEnv, config: Value, prefix: &str) -> ExtractCore<PostgresConnector> {
    let config: PostgresConfig = serde_json::from_value(config).expect("valid config");
    ExtractCore::new(
        PostgresConnector,
        config,
        env.store().await,
        ExtractOptions::new(env.output(prefix)),
        "test",
    )
    .expect("core")
}

/// `config` without `sslmode` (the default applies), connecting by `host`.
fn default_tls(mut config: Value, host: &str) -> Value {
    let o = config.as_object_mut().unwrap();
    o.remove("sslmode");
    o.insert("host".into(), json!(host));
    config
}

fn connector_error(e: &Error) -> (ConnectorErrorKind, String) {
    match e {
        Error::Connector(c) => (c.kind(), e.to_string()),
        other => panic!("expected a connector error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_is_the_default_and_checks_a_real_tls_server() {
    let pg = PgServer::start_with_tls();
    let env = TestEnv::start().await;
    let client = pg.client().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, note text);
             INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 500) g;",
        )
        .await
        .unwrap();
    let streams = json!([{"table": "t"}]);
    let ca = pg.ca_file().expect("a TLS server has a CA").to_path_buf();

    // Default sslmode, the test CA as sslrootcert, the name in the certificate: the
    // connection is verified TLS (the server takes nothing else over TCP) and exact.
    let mut config = default_tls(pg.config(streams.clone()), "localhost");
    config["sslrootcert"] = json!(ca);
    let report = core(&env, config, "tls")
        .await
        .run("t", &StopSignal::new())
        .await
        .expect("verified TLS connection");
    assert_eq!((report.status, report.rows), (RunStatus::Complete, 500));
    let got = read_committed(&env.store().await, &env.output("tls"), "t", "id")
        .await
        .unwrap();
    assert_batches_equal(
        &got,
        &expected_batch(&client, "t", "id", &got.schema()).await,
    );

    // The same server without its CA: the certificate does not verify against the
    // system roots; the error says so and what to set, and never the password.
    let config = default_tls(pg.config(streams.clone()), "localhost");
    let err = core(&env, config, "tls-untrusted")
        .await
        .run("t", &StopSignal::new())
        .await
        .expect_err("an unknown CA is refused");
    let (kind, msg) = connector_error(&err);
    assert_eq!(kind, ConnectorErrorKind::Config, "{msg}");
    assert!(
        msg.contains("does not verify")
            && msg.contains("system's root certificates")
            && msg.contains("sslrootcert")
            && msg.contains("require"),
        "{msg}"
    );
    assert!(!msg.contains('\n') && !msg.contains(PASSWORD), "{msg}");

    // A name the certificate does not hold is refused too, even with the right CA.
    let mut config = default_tls(pg.config(streams.clone()), "localhost.");
    config["sslrootcert"] = json!(ca);
    config["connect_timeout_secs"] = json!(5);
    let err = core(&env, config, "tls-name")
        .await
        .run("t", &StopSignal::new())
        .await
        .expect_err("a certificate for another name is refused");
    let (_, msg) = connector_error(&err);
    assert!(
        msg.contains("does not verify") || msg.contains("cannot connect"),
        "{msg}"
    );

    // `require` encrypts without verifying: it connects (and only TLS gets in).
    let mut config = default_tls(pg.config(streams), "127.0.0.1");
    config["sslmode"] = json!("require");
    let report = core(&env, config, "tls-require")
        .await
        .run("t", &StopSignal::new())
        .await
        .expect("require connects over TLS without verifying");
    assert_eq!(report.rows, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_sslmode_on_a_server_without_tls_says_what_to_set() {
    let pg = PgServer::start();
    let env = TestEnv::start().await;
    pg.client()
        .await
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .unwrap();
    let config = default_tls(pg.config(json!([{"table": "t"}])), "127.0.0.1");
    let err = core(&env, config, "plain")
        .await
        .run("t", &StopSignal::new())
        .await
        .expect_err("verify-full needs TLS");
    let (kind, msg) = connector_error(&err);
    assert_eq!(kind, ConnectorErrorKind::Config, "{msg}");
    assert!(
        msg.contains("does not offer TLS")
            && msg.contains("verify-full")
            && msg.contains("sslmode = \"disable\""),
        "{msg}"
    );
    assert!(!msg.contains('\n') && !msg.contains(PASSWORD), "{msg}");
    assert!(env.keys("plain/").await.is_empty(), "nothing written");
}

/// Text keys with quotes and backslashes, a role that turns `standard_conforming_strings`
/// off (backslashes in literals become escapes) and sets its transactions writable: the
/// connector's session forces both back, so a stopped run resumes after exactly its last
/// key and nothing is skipped or read twice. Before, the resume literal of a key ending
/// in a backslash was read as an escape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_keys_with_quotes_and_backslashes_resume_exactly_whatever_the_role_sets() {
    let pg = PgServer::start();
    let env = TestEnv::start().await;
    let client = pg.client().await;
    client
        .batch_execute("CREATE TABLE tk (k text PRIMARY KEY, v int NOT NULL)")
        .await
        .unwrap();
    let tails = ["'", "\\", "\\'", "''", "\\\\", "a'b\\c", "'\\", ""];
    let insert = client
        .prepare("INSERT INTO tk (k, v) VALUES ($1, $2)")
        .await
        .unwrap();
    for i in 0..40_000i32 {
        // Every key ends in a backslash: whichever row a checkpoint lands on, its resume
        // literal ends in `\'`, an escaped quote when standard_conforming_strings is off.
        let key = format!("{i:06}{}\\", tails[i as usize % tails.len()]);
        client.execute(&insert, &[&key, &i]).await.unwrap();
    }
    client
        .batch_execute(
            "ALTER ROLE postgres SET standard_conforming_strings = off;
             ALTER ROLE postgres SET default_transaction_read_only = off;",
        )
        .await
        .unwrap();
    let mut config = pg.config(json!([{"table": "tk"}]));
    config["batch_rows"] = json!(100);
    let first = core(&env, config.clone(), "keys").await;
    let stop = StopSignal::new();
    let (progress, cancel) = (first.progress(), stop.cancel.clone());
    let watcher = tokio::spawn(async move {
        while progress.rows() < 10_000 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        cancel.cancel();
    });
    let r1 = first.run("tk", &stop).await.expect("first run");
    watcher.abort();
    assert_eq!(r1.status, RunStatus::Partial, "the run stopped early");
    assert!(r1.rows > 0 && r1.rows < 40_000, "{} rows", r1.rows);
    let r2 = core(&env, config, "keys")
        .await
        .run("tk", &StopSignal::new())
        .await
        .expect("the resumed run");
    assert_eq!(r2.status, RunStatus::Complete);
    assert_eq!(r1.rows + r2.rows, 40_000, "every row once");
    let got = read_committed(&env.store().await, &env.output("keys"), "tk", "k")
        .await
        .unwrap();
    assert_batches_equal(
        &got,
        &expected_batch(&client, "tk", "k", &got.schema()).await,
    );

    // Every transaction of the session is read-only, whatever the role sets: a query
    // stream whose function would delete is refused by the server and deletes nothing.
    client
        .batch_execute(
            "CREATE FUNCTION zap() RETURNS SETOF tk LANGUAGE sql AS 'DELETE FROM tk RETURNING *'",
        )
        .await
        .unwrap();
    let config = pg.config(json!([{
        "name": "sneaky",
        "query": "SELECT k, v FROM zap()",
        "key": ["k"],
    }]));
    let err = core(&env, config, "sneaky")
        .await
        .run("sneaky", &StopSignal::new())
        .await
        .expect_err("a writing query is refused");
    assert!(err.to_string().contains("read-only"), "{err}");
    let left: i64 = client
        .query_one("SELECT count(*) FROM tk", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 40_000, "nothing was deleted");
}

/// Two tables whose names map to one stream name (`public.a_b` and `a.b` are both `a_b`)
/// are an error naming both, not one of them silently left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tables_with_one_stream_name_are_an_error() {
    use connector_sdk::Connector;
    let pg = PgServer::start();
    let client = pg.client().await;
    client
        .batch_execute(
            "CREATE SCHEMA a;
             CREATE TABLE public.a_b (id int PRIMARY KEY);
             CREATE TABLE a.b (id int PRIMARY KEY);",
        )
        .await
        .unwrap();
    let mut config = pg.config(json!([]));
    config["schemas"] = json!(["public", "a"]);
    let config: PostgresConfig = serde_json::from_value(config).unwrap();
    let err = PostgresConnector
        .discover(&config)
        .await
        .expect_err("a name clash is an error");
    let msg = err.to_string();
    assert_eq!(err.kind(), ConnectorErrorKind::Config, "{msg}");
    assert!(
        msg.contains("a.b") && msg.contains("public.a_b") && msg.contains("`a_b`"),
        "{msg}"
    );
}

/// The server drops the connection in the middle of a partition's COPY
/// (`pg_terminate_backend`): the run fails retryably and commits nothing, and the retry
/// reads the table exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_copy_fails_retryably_and_the_retry_is_exact() {
    let pg = PgServer::start();
    let env = TestEnv::start().await;
    let client = pg.client().await;
    client
        .batch_execute(
            "CREATE TABLE big AS SELECT g::int8 AS id, md5(g::text) AS s \
               FROM generate_series(1, 400000) g;
             ALTER TABLE big ADD PRIMARY KEY (id);",
        )
        .await
        .unwrap();
    let mut config =
        pg.config(json!([{"table": "big", "partition_column": "id", "partitions": 2}]));
    config["batch_rows"] = json!(1000);
    let first = core(&env, config.clone(), "dropped").await;
    let progress = first.progress();
    let killer = {
        let client = pg.client().await;
        tokio::spawn(async move {
            // Once rows flow, end every COPY the connector has open.
            while progress.rows() < 20_000 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            client
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = 'postgres-connector' AND query LIKE 'COPY%'",
                    &[],
                )
                .await
                .unwrap()
                .len()
        })
    };
    let result = first.run("big", &StopSignal::new()).await;
    let terminated = killer.await.unwrap();
    assert!(terminated >= 1, "no COPY was running to drop");
    let err = result.expect_err("a dropped connection fails the run");
    assert!(err.is_retryable(), "{err:?}");
    assert!(!err.to_string().contains('\n'), "{err}");
    assert!(
        read_committed(&env.store().await, &env.output("dropped"), "big", "id")
            .await
            .is_none(),
        "nothing of the failed run is visible"
    );
    let report = core(&env, config, "dropped")
        .await
        .run("big", &StopSignal::new())
        .await
        .expect("the retry");
    assert_eq!(report.rows, 400_000);
    let got = read_committed(&env.store().await, &env.output("dropped"), "big", "id")
        .await
        .unwrap();
    assert_batches_equal(
        &got,
        &expected_batch(&client, "big", "id", &got.schema()).await,
    );
}

/// The password as a systemd credential (`{"credential": "pg"}`, the EC2 unit's
/// `LoadCredential=`): read from `$CREDENTIALS_DIRECTORY/pg` by the real binary; without
/// that directory, a config error that says how to provide it, never the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_can_be_a_systemd_credential() {
    let pg = PgServer::start();
    let env = TestEnv::start().await;
    pg.client()
        .await
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);")
        .await
        .unwrap();
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("pg"), format!("{PASSWORD}\n")).unwrap();
    let mut config = pg.config(json!([{"table": "t"}]));
    config["password"] = json!({"credential": "pg"});
    let config_path = env.write_json("pg-credential.json", &config);
    let run = |with_creds: bool| {
        let mut cmd = std::process::Command::new(integration_tests::binary(
            "postgres-connector",
            "postgres-connector",
        ));
        cmd.args(["extract", "--config"])
            .arg(&config_path)
            .args([
                "--output",
                &format!("s3://{}/cred", integration_tests::BUCKET),
            ])
            .envs(TestEnv::process_env(&env.endpoint()))
            .env_remove("CREDENTIALS_DIRECTORY");
        if with_creds {
            cmd.env("CREDENTIALS_DIRECTORY", creds.path());
        }
        cmd.output().expect("the binary runs")
    };
    let out = run(false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("CREDENTIALS_DIRECTORY is not set") && err.contains("LoadCredential=pg:"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
    let out = run(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = read_committed(&env.store().await, &env.output("cred"), "t", "id")
        .await
        .unwrap();
    assert_eq!(got.num_rows(), 2);
}
