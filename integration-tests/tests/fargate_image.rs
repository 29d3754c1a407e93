//! The Fargate runner as a real container: the image is built with Podman
//! (runners/fargate/build-image.sh) and run against the local S3 and a fake ECS task
//! metadata endpoint. Run-to-completion containers use the `podman` command; the
//! stop-mid-extract container is driven by `testcontainers` over Podman's
//! Docker-compatible socket (Podman 4.3 reports an exited container as `stopped`, which
//! testcontainers cannot parse, so the exit code is read with `podman inspect`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use connector_sdk::{Dataset, RunStatus};
use integration_tests::ecs_metadata::{EcsMetadataServer, TASK_ARN};
use integration_tests::{BUCKET, TestEnv, binary, read_committed, workspace_root};
use orders_demo::{ORDERS, OrdersDemoConfig, orders_batch};
use serde_json::{Value, json};
use testcontainers::core::WaitFor;
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

const IMAGE: &str = "localhost/orders-demo";
const TAG: &str = "fargate-test";

/// The Docker-compatible socket testcontainers talks to: `DOCKER_HOST` when it is set,
/// else testcontainers' default `/var/run/docker.sock`. When nothing answers there, a
/// `podman system service` is started on it and stopped (socket removed) on drop.
/// (Setting `DOCKER_HOST` from inside the test would need `unsafe` `set_var`, which the
/// workspace forbids, so the test serves the default path instead.)
struct PodmanService {
    child: Option<std::process::Child>,
    socket: PathBuf,
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}

fn start_podman_service() -> PodmanService {
    let socket = PathBuf::from(
        std::env::var("DOCKER_HOST")
            .ok()
            .and_then(|h| h.strip_prefix("unix://").map(str::to_owned))
            .unwrap_or_else(|| "/var/run/docker.sock".to_owned()),
    );
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        return PodmanService {
            child: None,
            socket,
        };
    }
    let _ = std::fs::remove_file(&socket);
    let child = std::process::Command::new("podman")
        .args(["system", "service", "--time=0"])
        .arg(format!("unix://{}", socket.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("podman is installed (scripts/setup.d/50-podman.sh)");
    let started = Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "podman socket {} did not appear",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    PodmanService {
        child: Some(child),
        socket,
    }
}

fn build_image() {
    let script = workspace_root().join("runners/fargate/build-image.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg(binary("orders-demo", "orders-demo"))
        .arg(format!("{IMAGE}:{TAG}"))
        .output()
        .expect("build-image.sh runs");
    assert!(
        out.status.success(),
        "image build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn podman(args: &[&str]) -> std::process::Output {
    std::process::Command::new("podman")
        .args(args)
        .output()
        .expect("podman runs")
}

/// The environment ECS would give the container.
fn container_env(
    env: &TestEnv,
    metadata: &EcsMetadataServer,
    config: &OrdersDemoConfig,
    prefix: &str,
) -> Vec<(String, String)> {
    let mut vars = TestEnv::process_env(&env.endpoint());
    vars.push((
        "CONNECTOR_CONFIG".into(),
        json!({
            "rows": config.rows, "rows_per_day": config.rows_per_day,
            "batch_size": config.batch_size, "batch_delay_ms": config.batch_delay_ms,
        })
        .to_string(),
    ));
    vars.push(("CONNECTOR_OUTPUT".into(), format!("s3://{BUCKET}/{prefix}")));
    vars.push(("ECS_CONTAINER_METADATA_URI_V4".into(), metadata.uri()));
    vars
}

/// `podman run` to completion (host network: the local S3 and the metadata endpoint are
/// on 127.0.0.1); returns (exit code, stdout, stderr).
fn podman_run(vars: &[(String, String)]) -> (i32, String, String) {
    let mut args: Vec<String> = vec!["run".into(), "--rm".into(), "--network=host".into()];
    for (k, v) in vars {
        args.push("-e".into());
        args.push(format!("{k}={v}"));
    }
    args.push(format!("{IMAGE}:{TAG}"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = podman(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_image_runs_stops_on_sigterm_and_resumes_exactly() {
    build_image();
    // The image is non-root, has CA certificates, and runs `container` by default.
    let inspect = podman(&[
        "image",
        "inspect",
        &format!("{IMAGE}:{TAG}"),
        "--format",
        "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&inspect.stdout).trim(),
        "65532:65532|[\"/usr/local/bin/connector\"]|[\"container\"]"
    );

    let env = TestEnv::start().await;
    let metadata = EcsMetadataServer::start(2.0).await;
    let store = env.store().await;

    // 1. A complete run gives the right dataset, with the task facts in the report.
    let small = OrdersDemoConfig {
        rows: 12_000,
        rows_per_day: 3_000,
        batch_size: 1_000,
        ..Default::default()
    };
    let (code, stdout, stderr) = podman_run(&container_env(&env, &metadata, &small, "once"));
    assert_eq!(code, 0, "stderr: {stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("report JSON");
    assert_eq!(report["status"], "complete");
    assert_eq!(report["runtime"]["task_arn"], TASK_ARN);
    assert!(stderr.contains(TASK_ARN), "logs carry the task ARN");
    let got = read_committed(&store, &env.output("once"), ORDERS, "order_id")
        .await
        .expect("committed");
    assert_eq!(got, orders_batch(&small, 1, 12_000));

    // 2. Stopping the container mid-extract (SIGTERM from `stop`) exits 0 within the
    //    budget with a committed partial dataset and cursor.
    let slow = OrdersDemoConfig {
        rows: 40_000,
        rows_per_day: 10_000,
        batch_size: 1_000,
        batch_delay_ms: 60,
        ..Default::default()
    };
    let service = start_podman_service();
    let mut image = GenericImage::new(IMAGE, TAG)
        .with_wait_for(WaitFor::message_on_stderr("\"message\":\"planned\""))
        // Host networking (the local S3 and the metadata endpoint listen on 127.0.0.1).
        // Set on the host config: `with_network("host")` would make testcontainers try
        // to create a network named "host", which Podman refuses.
        .with_host_config_modifier(|host| host.network_mode = Some("host".to_string()));
    for (k, v) in container_env(&env, &metadata, &slow, "stop") {
        image = image.with_env_var(k, v);
    }
    let container = image.start().await.expect("container starts");
    let id = container.id().to_string();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let stopping = Instant::now();
    container
        .stop_with_timeout(Some(30))
        .await
        .expect("podman stop");
    let took = stopping.elapsed();
    let state = podman(&["inspect", &id, "--format", "{{.State.ExitCode}}"]);
    let logs = podman(&["logs", &id]);
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&state.stdout).trim(),
        "0",
        "exit code after SIGTERM; logs: {logs}"
    );
    assert!(took < Duration::from_secs(25), "stop took {took:?}");
    assert!(
        logs.contains("stopped by signal with progress committed"),
        "{logs}"
    );
    drop(container);
    let out = env.output("stop");
    let latest = Dataset::new(store.clone(), out.clone(), ORDERS)
        .latest()
        .await
        .unwrap()
        .expect("a manifest is committed");
    assert_eq!(latest.status, RunStatus::Partial);
    assert!(
        latest.state.pending.is_some(),
        "the resume point is committed"
    );
    let partial = read_committed(&store, &out, ORDERS, "order_id")
        .await
        .expect("partial data");
    assert!(partial.num_rows() > 0 && (partial.num_rows() as u64) < slow.rows);

    // 3. Starting it again completes; the dataset equals a one-shot extract.
    let (code, stdout, stderr) = podman_run(&container_env(&env, &metadata, &slow, "stop"));
    assert_eq!(code, 0, "stderr: {stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("report JSON");
    assert_eq!(report["status"], "complete");
    let got = read_committed(&store, &out, ORDERS, "order_id")
        .await
        .unwrap();
    assert_eq!(got, orders_batch(&slow, 1, slow.rows));
    drop(service);
}
