//! Packaging: `runners/lambda/package.sh` builds a `provided.al2023` zip with
//! cargo-zigbuild for glibc 2.34, and the packaged `bootstrap` serves invocations.
//!
//! The test builds with `LAMBDA_PROFILE=unoptimized` (no optimisation, no debug info,
//! stripped): the glibc symbol versions a binary needs come from the target triple's glibc
//! (`.2.34`) and the link, not from the optimisation level, and this cross-linked build
//! cannot reuse the host build's artifacts, so it is the cheapest profile to compile (4 min
//! 53 s on a 2-core machine; the `dev` build, dependencies at opt-level 1, took 17 min in
//! CI). The release zip (the one to deploy, and the one whose size is reported) is built
//! by `bench/lambda/cold_start.sh`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use integration_tests::runtime_api::RuntimeApiServer;
use integration_tests::{TestEnv, read_committed, workspace_root};
use orders_demo::{ORDERS, OrdersDemoConfig, orders_batch};
use serde_json::json;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn glibc_versions(binary: &std::path::Path) -> Vec<Vec<u32>> {
    let out = std::process::Command::new("objdump")
        .arg("-T")
        .arg(binary)
        .output()
        .expect("objdump runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut versions: Vec<Vec<u32>> = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| v.split('.').map(|p| p.parse().ok()).collect())
        .collect();
    versions.sort();
    versions.dedup();
    versions
}

/// Run a packaging script (`<script> orders-demo orders-demo`) with the `unoptimized`
/// profile in `profile_var`.
fn run_package_script(script: &str, profile_var: &str) -> std::process::Output {
    let root = workspace_root();
    std::process::Command::new("bash")
        .arg(root.join(script))
        .args(["orders-demo", "orders-demo"])
        .env(profile_var, "unoptimized")
        .current_dir(&root)
        // The test command's clippy wrapper and `-D warnings` (scripts/test.sh) buy
        // nothing in this cross-build, which cannot reuse the host build anyway.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap_or_else(|e| panic!("{script} runs: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_package_zip_runs_on_glibc_2_34_and_serves_invocations() {
    let root = workspace_root();
    let out = run_package_script("runners/lambda/package.sh", "LAMBDA_PROFILE");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "package.sh failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("glibc: highest GLIBC_ version needed by bootstrap is 2."),
        "{stdout}"
    );

    // The zip holds exactly `bootstrap`, executable, at its root.
    let dir = target_dir().join("lambda/orders-demo");
    let zip = dir.join("bootstrap.zip");
    let listing = std::process::Command::new("unzip")
        .arg("-Z")
        .arg(&zip)
        .output()
        .expect("unzip runs");
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    let entries: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with('-') || l.starts_with('d'))
        .collect();
    assert_eq!(entries.len(), 1, "{listing}");
    assert!(entries[0].starts_with("-rwxr-xr-x"), "{listing}");
    assert!(entries[0].ends_with(" bootstrap"), "{listing}");

    // Independently of the script: no GLIBC_ symbol version above 2.34.
    let tmp = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("unzip")
        .args(["-q", "-o"])
        .arg(&zip)
        .arg("-d")
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(status.success());
    let bootstrap = tmp.path().join("bootstrap");
    let versions = glibc_versions(&bootstrap);
    let highest = versions.last().expect("links glibc").clone();
    assert!(highest <= vec![2, 34], "needs GLIBC_{highest:?}");
    // The checker is not vacuous: a lower limit than what the binary needs fails.
    let check = std::process::Command::new("bash")
        .arg(root.join("runners/lambda/check-glibc.sh"))
        .arg(&bootstrap)
        .arg("2.2.5")
        .output()
        .unwrap();
    assert!(!check.status.success());

    // Named `bootstrap`, it is a Lambda runtime even without AWS_LAMBDA_RUNTIME_API: it
    // says what is missing instead of printing CLI usage.
    let bare = tokio::process::Command::new(&bootstrap)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let bare_err = String::from_utf8_lossy(&bare.stderr);
    assert_eq!(bare.status.code(), Some(1), "{bare_err}");
    assert!(
        bare_err.contains("missing environment variable(s) AWS_LAMBDA_RUNTIME_API"),
        "{bare_err}"
    );

    // The packaged binary serves an invocation.
    let env = TestEnv::start().await;
    let server = RuntimeApiServer::start().await;
    let mut child = tokio::process::Command::new(&bootstrap)
        .env_clear()
        .envs(TestEnv::process_env(&env.endpoint()))
        .envs(server.lambda_env("orders", 512))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let c = OrdersDemoConfig {
        rows: 1_200,
        rows_per_day: 500,
        batch_size: 250,
        ..Default::default()
    };
    let event = json!({"config": {"rows": 1200, "rows_per_day": 500, "batch_size": 250}, "output": "s3://test-bucket/zip", "stream": "orders"});
    let r = server
        .invoke(event.to_string(), Duration::from_secs(60))
        .await
        .json();
    assert_eq!(r["status"], "complete", "{r}");
    let got = read_committed(&env.store().await, &env.output("zip"), ORDERS, "order_id")
        .await
        .expect("committed");
    assert_eq!(got, orders_batch(&c, 1, 1_200));
    child.kill().await.unwrap();

    glue_package_is_the_glibc_2_34_build_beside_the_job_script().await;
}

/// Glue shares the glibc-2.34 build: `runners/glue/package.sh` puts that binary (under
/// its own name) beside the job script, and it runs the Glue steps. Called after the
/// Lambda packaging (not a test of its own: both scripts write target/lambda/, and the
/// build is cached by then).
async fn glue_package_is_the_glibc_2_34_build_beside_the_job_script() {
    let root = workspace_root();
    let out = run_package_script("runners/glue/package.sh", "GLUE_PROFILE");
    assert!(
        out.status.success(),
        "glue package.sh failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = target_dir().join("glue/orders-demo");
    let job = std::fs::read_to_string(dir.join("connector_glue_job.py")).expect("job script");
    assert_eq!(
        job,
        std::fs::read_to_string(root.join("runners/glue/job/connector_glue_job.py")).unwrap()
    );
    let binary = dir.join("orders-demo");
    let versions = glibc_versions(&binary);
    let highest = versions.last().expect("links glibc").clone();
    assert!(highest <= vec![2, 34], "needs GLIBC_{highest:?}");

    // It is the connector binary with the Glue steps: `plan` against the local S3.
    let env = TestEnv::start().await;
    let cfg = env.write_json(
        "orders.json",
        &json!({"rows": 1200, "rows_per_day": 500, "batch_size": 250}),
    );
    let plan = tokio::process::Command::new(&binary)
        .arg("plan")
        .arg("--config")
        .arg(&cfg)
        .args(["--output", "s3://test-bucket/glue-pkg"])
        .envs(TestEnv::process_env(&env.endpoint()))
        .output()
        .await
        .expect("the packaged binary runs");
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("plan JSON");
    assert_eq!(plan["work"].as_array().map(Vec::len), Some(3), "{plan}");
}
