//! The real `orders-demo` binary under cargo-lambda's Runtime API emulator
//! (`cargo lambda watch --only-lambda-apis`), invoked with `cargo lambda invoke`: one
//! complete extract into the local S3. cargo-lambda comes from PyPI into `.venv`
//! (`scripts/setup.d/30-lambda.sh`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use integration_tests::{TestEnv, binary, read_committed, workspace_root};
use orders_demo::{ORDERS, OrdersDemoConfig, orders_batch};
use serde_json::{Value, json};
use tokio::process::Command;

fn cargo_lambda() -> PathBuf {
    let venv = workspace_root().join(".venv/bin/cargo-lambda");
    if venv.exists() {
        return venv;
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("cargo-lambda"))
            .find(|p| p.exists())
    });
    found.expect("cargo-lambda is not installed: run scripts/setup.d/30-lambda.sh")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_under_cargo_lambda_emulator_extracts_into_local_s3() {
    let env = TestEnv::start().await;
    // cargo-lambda reads `cargo metadata` of its working directory: give it an empty crate.
    let project = env.dir.path().join("emulator");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(
        project.join("Cargo.toml"),
        "[package]\nname = \"emulator\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(project.join("src/main.rs"), "fn main() {}\n").unwrap();
    let port = free_port();
    let watch_log = env.dir.path().join("watch.log");
    let mut watch = Command::new(cargo_lambda())
        .args(["lambda", "watch", "--only-lambda-apis", "--invoke-address"])
        .arg("127.0.0.1")
        .arg("--invoke-port")
        .arg(port.to_string())
        .current_dir(&project)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(env.dir.path().join("watch.out")).unwrap())
        .stderr(std::fs::File::create(&watch_log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("cargo lambda watch starts");
    let mut up = false;
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        assert!(
            watch.try_wait().unwrap().is_none(),
            "cargo lambda watch exited: {}",
            std::fs::read_to_string(&watch_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the emulator did not listen on {port}");

    // The function, with the variables the emulator says it must have.
    let function_log = env.dir.path().join("function.log");
    let mut function = Command::new(binary("orders-demo", "orders-demo"))
        .env_clear()
        .envs(TestEnv::process_env(&env.endpoint()))
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4096")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&function_log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("the function starts");

    let c = OrdersDemoConfig {
        rows: 20_000,
        rows_per_day: 6_000,
        batch_size: 1_500,
        ..Default::default()
    };
    let event = json!({
        "config": {"rows": c.rows, "rows_per_day": c.rows_per_day, "batch_size": c.batch_size},
        "output": "s3://test-bucket/emulated",
        "stream": "orders"
    });
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new(cargo_lambda())
            .args(["lambda", "invoke", "--invoke-address", "127.0.0.1"])
            .arg("--invoke-port")
            .arg(port.to_string())
            .arg("--data-ascii")
            .arg(event.to_string())
            .current_dir(&project)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("cargo lambda invoke answers")
    .expect("cargo lambda invoke runs");
    let function_logs = std::fs::read_to_string(&function_log).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "invoke failed: {stdout}\n{}\nfunction logs:\n{function_logs}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(stdout.trim()).expect("the response is JSON");
    assert_eq!(r["status"], "complete", "{r}");
    assert_eq!(r["rows"], 20_000);
    assert_eq!(r["partitions"], 4);
    let got = read_committed(
        &env.store().await,
        &env.output("emulated"),
        ORDERS,
        "order_id",
    )
    .await
    .expect("committed");
    assert_eq!(got, orders_batch(&c, 1, 20_000));
    // The emulator sends a constant deadline in the past: treated as no deadline.
    assert!(
        function_logs.contains("already past at the start"),
        "{function_logs}"
    );
    assert!(function.try_wait().unwrap().is_none(), "{function_logs}");
    function.kill().await.unwrap();
    watch.kill().await.unwrap();
}
