//! Each runner's matrix scenario, against the local stand-ins: a complete extract of one
//! stream through the runner's real entrypoint (Lambda: the Runtime API; Fargate: the
//! container image under Podman; EC2: the daemon with a notify socket; Glue: the job
//! script on local PySpark), and, for a runner the manifest does not declare, the check
//! that the entrypoint refuses it with its documented error.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use connector_sdk::{Dataset, OutputLocation, RunStatus};
use integration_tests::ecs_metadata::EcsMetadataServer;
use integration_tests::runtime_api::{Outcome, RuntimeApiServer};
use integration_tests::{TestEnv, workspace_root};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::matrix_file::DeclaredManifest;

/// What one connector's cells share.
#[derive(Debug)]
pub struct ConnectorRun<'a> {
    /// The local S3.
    pub env: &'a TestEnv,
    /// The built binary.
    pub binary: PathBuf,
    /// Its embedded manifest.
    pub manifest: DeclaredManifest,
    /// The stream every runner extracts.
    pub stream: String,
    /// The connector config.
    pub config: Value,
    /// The config as a file.
    pub config_file: PathBuf,
    /// Environment every runner gets (besides the S3 client's).
    pub extra_env: Vec<(String, String)>,
    /// Scratch space.
    pub work: PathBuf,
}

impl ConnectorRun<'_> {
    /// Where `cell` writes: `s3://<bucket>/matrix/<connector>/<cell>`.
    pub fn output(&self, cell: &str) -> OutputLocation {
        self.env
            .output(&format!("matrix/{}/{cell}", self.manifest.name))
    }

    fn output_url(&self, cell: &str) -> String {
        let o = self.output(cell);
        format!("s3://{}/{}", o.bucket, o.prefix)
    }

    /// The S3 client's environment plus the connector's.
    fn process_env(&self) -> Vec<(String, String)> {
        let mut vars = TestEnv::process_env(&self.env.endpoint());
        vars.extend(self.extra_env.iter().cloned());
        vars
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.envs(self.process_env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// The phrase every runner's refusal contains.
    fn refusal(runner: &str) -> String {
        format!("does not declare the `{runner}` runner")
    }

    /// The reference: a one-shot `<binary> extract` into `one-shot`.
    pub async fn one_shot(&self) -> Result<()> {
        let out = finish(
            self.command()
                .arg("extract")
                .arg("--config")
                .arg(&self.config_file)
                .args(["--output", &self.output_url("one-shot")])
                .args(["--stream", &self.stream]),
            Duration::from_secs(300),
        )
        .await?;
        expect_exit(&out, 0, "extract")?;
        self.expect_complete("one-shot").await
    }

    /// The latest committed manifest of `cell` is complete.
    async fn expect_complete(&self, cell: &str) -> Result<()> {
        let dataset = Dataset::new(self.env.store().await, self.output(cell), &self.stream);
        let latest = dataset
            .latest()
            .await
            .context("reading the committed manifests")?
            .context("no dataset manifest was committed")?;
        ensure!(
            latest.status == RunStatus::Complete,
            "the last commit is {:?}, not complete",
            latest.status
        );
        ensure!(
            latest.runner == cell || cell == "one-shot",
            "the manifest names runner `{}`",
            latest.runner
        );
        Ok(())
    }

    /// Lambda: the binary as a function behind a Runtime API server; invoked (with the
    /// response's `continuation` while it is partial) until the run is complete.
    pub async fn lambda(&self) -> Result<()> {
        let server = RuntimeApiServer::start().await;
        let log = self.work.join("lambda.log");
        let mut child = Command::new(&self.binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.process_env())
            .envs(server.lambda_env(&self.manifest.name, self.manifest.memory_mb("lambda")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("starting the function")?;
        let mut event = json!({
            "config": self.config, "output": self.output_url("lambda"), "stream": self.stream,
        });
        let result = async {
            for _ in 0..50 {
                let done = server
                    .invoke(event.to_string(), Duration::from_secs(300))
                    .await;
                match done.outcome {
                    Outcome::Response(body) => {
                        let r: Value = serde_json::from_slice(&body)?;
                        if r["status"] == "complete" {
                            return self.expect_complete("lambda").await;
                        }
                        let c = r
                            .get("continuation")
                            .context(format!("a partial response without continuation: {r}"))?;
                        event["continuation"] = c.clone();
                    }
                    Outcome::Error {
                        error_type,
                        error_message,
                        ..
                    } => bail!("invocation failed: {error_type}: {error_message}"),
                }
            }
            bail!("not complete after 50 invocations")
        }
        .await;
        let _ = child.kill().await;
        result.map_err(|e| e.context(log_tail(&log)))
    }

    /// Lambda, undeclared: every invocation is answered with `RunnerNotDeclared`.
    pub async fn lambda_refused(&self) -> Result<()> {
        let server = RuntimeApiServer::start().await;
        let mut child = Command::new(&self.binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.process_env())
            .envs(server.lambda_env(&self.manifest.name, 512))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the function")?;
        let event = json!({
            "config": self.config, "output": self.output_url("lambda"), "stream": self.stream,
        });
        let done = server
            .invoke(event.to_string(), Duration::from_secs(60))
            .await;
        let _ = child.kill().await;
        match done.outcome {
            Outcome::Error {
                error_type,
                error_message,
                ..
            } => {
                ensure!(
                    error_type == "NonRetryable.RunnerNotDeclared"
                        && error_message.contains(&Self::refusal("lambda")),
                    "unexpected error {error_type}: {error_message}"
                );
                self.expect_nothing_written("lambda").await
            }
            Outcome::Response(b) => bail!(
                "the undeclared runner answered: {}",
                String::from_utf8_lossy(&b)
            ),
        }
    }

    /// The container's environment (as the task definition sets it).
    fn container_env(&self, metadata: Option<&EcsMetadataServer>) -> Vec<(String, String)> {
        let mut vars = self.process_env();
        vars.push(("CONNECTOR_CONFIG".into(), self.config.to_string()));
        vars.push(("CONNECTOR_OUTPUT".into(), self.output_url("fargate")));
        vars.push(("CONNECTOR_STREAMS".into(), self.stream.clone()));
        if let Some(m) = metadata {
            vars.push(("ECS_CONTAINER_METADATA_URI_V4".into(), m.uri()));
        }
        vars
    }

    /// Fargate: the image built from the binary (runners/fargate/build-image.sh), run
    /// with Podman against the local S3 and a fake ECS task metadata endpoint.
    pub async fn fargate(&self) -> Result<()> {
        let tag = format!("localhost/matrix-{}:latest", self.manifest.name);
        let build = finish(
            Command::new("bash")
                .arg(workspace_root().join("runners/fargate/build-image.sh"))
                .arg(&self.binary)
                .arg(&tag)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true),
            Duration::from_secs(600),
        )
        .await?;
        expect_exit(&build, 0, "build-image.sh")?;
        let vcpu = self
            .manifest
            .runners
            .get("fargate")
            .and_then(|r| r["vcpu"].as_f64())
            .unwrap_or(1.0);
        let metadata = EcsMetadataServer::start(vcpu).await;
        let mut podman = Command::new("podman");
        podman.args(["run", "--rm", "--network=host"]);
        for (k, v) in self.container_env(Some(&metadata)) {
            podman.arg("-e").arg(format!("{k}={v}"));
        }
        podman
            .arg(&tag)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = finish(&mut podman, Duration::from_secs(300)).await?;
        expect_exit(&out, 0, "the container")?;
        ensure!(
            metadata.requests() > 0,
            "the container did not read the task metadata"
        );
        self.expect_complete("fargate").await
    }

    /// Fargate, undeclared: the container entrypoint exits 2 with the refusal.
    pub async fn fargate_refused(&self) -> Result<()> {
        let out = finish(
            self.command()
                .arg("container")
                .envs(self.container_env(None)),
            Duration::from_secs(60),
        )
        .await?;
        self.expect_refusal(&out, "fargate").await
    }

    fn daemon_config(&self) -> Result<PathBuf> {
        let doc = json!({"jobs": [{
            "name": "matrix",
            "output": self.output_url("ec2"),
            "streams": [self.stream],
            "every": "1h",
            "config": self.config,
        }]});
        let path = self.work.join("daemon.toml");
        std::fs::write(
            &path,
            toml::to_string(&doc).context("daemon config as TOML")?,
        )?;
        Ok(path)
    }

    fn daemon(&self, config: &Path, notify: &Path) -> Command {
        let mut c = self.command();
        c.arg("daemon")
            .arg("--config")
            .arg(config)
            .env("NOTIFY_SOCKET", notify)
            .env("STATE_DIRECTORY", self.work.join("state"));
        c
    }

    /// EC2: the daemon as systemd runs it (a notify socket bound here): READY=1, the
    /// job's run complete, then SIGTERM and exit 0.
    pub async fn ec2(&self) -> Result<()> {
        let config = self.daemon_config()?;
        let notify_path = self.work.join("notify.sock");
        let _ = std::fs::remove_file(&notify_path);
        let messages = collect_notify(&notify_path)?;
        let mut child = self
            .daemon(&config, &notify_path)
            .stderr(Stdio::null())
            .spawn()
            .context("starting the daemon")?;
        let started = Instant::now();
        let dataset = Dataset::new(self.env.store().await, self.output("ec2"), &self.stream);
        loop {
            let ready = messages
                .lock()
                .unwrap()
                .iter()
                .any(|m| m.contains("READY=1"));
            let complete =
                matches!(dataset.latest().await, Ok(Some(m)) if m.status == RunStatus::Complete);
            if ready && complete {
                break;
            }
            if let Some(status) = child.try_wait()? {
                bail!("the daemon exited early ({status})");
            }
            ensure!(
                started.elapsed() < Duration::from_secs(300),
                "no READY=1 and complete run within 300 s (ready: {ready}, complete: {complete})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let pid = child.id().context("the daemon's pid")?;
        let kill = Command::new("kill")
            .args(["-s", "TERM", &pid.to_string()])
            .status()
            .await?;
        ensure!(kill.success(), "kill -s TERM failed");
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .context("the daemon did not exit within 60 s of SIGTERM")??;
        ensure!(
            status.code() == Some(0),
            "the daemon exited with {status} on SIGTERM"
        );
        // The daemon sent its messages before it exited, but the collecting task may not
        // have taken the last datagram off the socket yet (a loaded machine): give it time.
        let exited = Instant::now();
        while !messages
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.contains("STOPPING=1"))
        {
            ensure!(
                exited.elapsed() < Duration::from_secs(10),
                "no STOPPING=1 before exit"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.expect_complete("ec2").await
    }

    /// EC2, undeclared: the daemon exits 2 with the refusal.
    pub async fn ec2_refused(&self) -> Result<()> {
        let config = self.daemon_config()?;
        let notify_path = self.work.join("notify.sock");
        let _ = std::fs::remove_file(&notify_path);
        let _messages = collect_notify(&notify_path)?;
        let out = finish(
            &mut self.daemon(&config, &notify_path),
            Duration::from_secs(60),
        )
        .await?;
        self.expect_refusal(&out, "ec2").await
    }

    /// Glue: the job script under spark-submit on `local[2,2]`.
    pub async fn glue(&self) -> Result<()> {
        let venv = workspace_root().join(".venv/bin");
        ensure!(
            venv.join("spark-submit").exists(),
            "{} is missing: run scripts/setup.d/50-glue.sh",
            venv.join("spark-submit").display()
        );
        let pass_env: Vec<String> = self.process_env().into_iter().map(|(k, _)| k).collect();
        let mut cmd = Command::new(venv.join("spark-submit"));
        cmd.args(["--master", "local[2,2]"])
            .args(["--conf", "spark.ui.enabled=false"])
            .args(["--conf", "spark.driver.host=127.0.0.1"])
            .args(["--conf", "spark.driver.memory=512m"])
            .arg(workspace_root().join("runners/glue/job/connector_glue_job.py"))
            .args(["--JOB_NAME", "matrix"])
            .arg("--connector_binary")
            .arg(&self.binary)
            .arg("--connector_config")
            .arg(&self.config_file)
            .args(["--output", &self.output_url("glue")])
            .args(["--stream", &self.stream])
            .args(["--s3_endpoint", &self.env.endpoint()])
            .args(["--pass_env", &pass_env.join(",")])
            .envs(self.process_env())
            .env("PYSPARK_PYTHON", venv.join("python"))
            .env("PYSPARK_DRIVER_PYTHON", venv.join("python"))
            .env("SPARK_LOCAL_IP", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = finish(&mut cmd, Duration::from_secs(600)).await?;
        expect_exit(&out, 0, "the Glue job")?;
        // Under spark-submit the driver's stderr is merged into stdout.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("{\"report\""))
            .context("the job printed no summary line")?;
        let summary: Value = serde_json::from_str(summary)?;
        ensure!(
            summary["report"]["status"] == "complete",
            "the job's report: {}",
            summary["report"]
        );
        self.expect_complete("glue").await
    }

    /// Glue, undeclared: the driver's first step (`plan`) exits 2 with the refusal.
    pub async fn glue_refused(&self) -> Result<()> {
        let out = finish(
            self.command()
                .arg("plan")
                .arg("--config")
                .arg(&self.config_file)
                .args(["--output", &self.output_url("glue")])
                .args(["--stream", &self.stream]),
            Duration::from_secs(60),
        )
        .await?;
        self.expect_refusal(&out, "glue").await
    }

    /// Exit 2, one `error:` line naming the runner, nothing written.
    async fn expect_refusal(&self, out: &Output, runner: &str) -> Result<()> {
        expect_exit(out, 2, runner)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        ensure!(
            errors.len() == 1 && errors[0].contains(&Self::refusal(runner)),
            "expected one `error:` line with \"{}\", got: {errors:?}",
            Self::refusal(runner)
        );
        self.expect_nothing_written(runner).await
    }

    async fn expect_nothing_written(&self, cell: &str) -> Result<()> {
        let keys = self
            .env
            .keys(&format!("matrix/{}/{cell}/", self.manifest.name))
            .await;
        ensure!(keys.is_empty(), "the refused runner wrote {keys:?}");
        Ok(())
    }
}

/// Bind a notify socket at `path`; every datagram is appended to the returned list.
fn collect_notify(path: &Path) -> Result<Arc<Mutex<Vec<String>>>> {
    let sock = tokio::net::UnixDatagram::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    let messages: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::downgrade(&messages);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = sock.recv(&mut buf).await {
            let Some(sink) = sink.upgrade() else { return };
            sink.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    Ok(messages)
}

/// Run to completion within `timeout` (killed after it).
async fn finish(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let program = format!("{:?}", cmd.as_std().get_program());
    tokio::time::timeout(timeout, cmd.output())
        .await
        .with_context(|| format!("{program} did not finish within {timeout:?}"))?
        .with_context(|| format!("running {program}"))
}

fn expect_exit(out: &Output, code: i32, what: &str) -> Result<()> {
    if out.status.code() == Some(code) {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    bail!(
        "{what} exited with {} (expected {code}): {}",
        out.status,
        tail(&text, 15)
    )
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn log_tail(path: &Path) -> String {
    format!(
        "function log tail:\n{}",
        tail(&std::fs::read_to_string(path).unwrap_or_default(), 15)
    )
}
