//! The EC2 runner as systemd runs it: the real `orders-demo daemon` process, with
//! `NOTIFY_SOCKET` pointing at a datagram socket this test binds and `WATCHDOG_USEC` set,
//! writing to a real local S3 server.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connector_sdk::{Dataset, RunStatus};
use integration_tests::{BUCKET, TestEnv, binary, read_committed};
use orders_demo::{ORDERS, OrdersDemoConfig, orders_batch};

const WATCHDOG_USEC: u64 = 2_000_000;

/// Collects every datagram sent to the notify socket, with its arrival time.
struct NotifySocket {
    path: PathBuf,
    messages: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let messages: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let sink = Arc::downgrade(&messages);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let Some(sink) = sink.upgrade() else { return };
                if let Ok(n) = sock.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    sink.lock().unwrap().push((Instant::now(), text));
                }
            }
        });
        Self { path, messages }
    }

    fn all(&self) -> Vec<(Instant, String)> {
        self.messages.lock().unwrap().clone()
    }

    fn len(&self) -> usize {
        self.messages.lock().unwrap().len()
    }

    /// Lines `KEY=...` of messages from index `from` on.
    fn lines(&self, from: usize) -> Vec<(usize, Instant, String)> {
        self.all()
            .into_iter()
            .enumerate()
            .skip(from)
            .flat_map(|(i, (t, m))| m.lines().map(|l| (i, t, l.to_string())).collect::<Vec<_>>())
            .collect()
    }

    /// Wait for a line of a message at index >= `from` matching `pred`; returns the index
    /// of its message and the line.
    async fn wait_for(
        &self,
        from: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> (usize, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((i, _, l)) = self.lines(from).into_iter().find(|(_, _, l)| pred(l)) {
                return (i, l);
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got: {:#?}",
                self.all().iter().map(|(_, m)| m).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn watchdog_times(&self, from: usize) -> Vec<Instant> {
        self.lines(from)
            .into_iter()
            .filter(|(_, _, l)| l == "WATCHDOG=1")
            .map(|(_, t, _)| t)
            .collect()
    }
}

/// The daemon process and its stderr (JSON log lines).
struct DaemonProcess {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl DaemonProcess {
    fn spawn(env: &TestEnv, config: &Path, notify: &NotifySocket, state: &Path) -> Self {
        let mut child = Command::new(binary("orders-demo", "orders-demo"))
            .arg("daemon")
            .arg("--config")
            .arg(config)
            .envs(TestEnv::process_env(&env.endpoint()))
            .env("NOTIFY_SOCKET", &notify.path)
            .env("WATCHDOG_USEC", WATCHDOG_USEC.to_string())
            .env("STATE_DIRECTORY", state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("daemon starts");
        let stderr: Arc<Mutex<String>> = Arc::default();
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(&mut pipe)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("daemon: {line}");
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Self { child, stderr }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -s {sig} failed");
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    async fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("daemon did not exit within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn job_toml(name: &str, prefix: &str, config: &str, extra: &str) -> String {
    format!(
        "[[jobs]]\nname = \"{name}\"\noutput = \"s3://{BUCKET}/{prefix}\"\nstreams = [\"orders\"]\nevery = \"1h\"\nconfig = {config}\n{extra}\n"
    )
}

async fn wait_complete(env: &TestEnv, prefix: &str, timeout: Duration) {
    let store = env.store().await;
    let dataset = Dataset::new(store, env.output(prefix), ORDERS);
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(m)) = dataset.latest().await
            && m.status == RunStatus::Complete
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "dataset {prefix} not complete in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn assert_dataset_exact(env: &TestEnv, prefix: &str, config: &OrdersDemoConfig) {
    let store = env.store().await;
    let got = read_committed(&store, &env.output(prefix), ORDERS, "order_id")
        .await
        .unwrap_or_else(|| panic!("dataset {prefix} has no rows"));
    assert_eq!(
        got,
        orders_batch(config, 1, config.rows),
        "dataset {prefix}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_watchdog_status_reload_and_stop() {
    let env = TestEnv::start().await;
    let dir = env.dir.path();
    let notify = NotifySocket::bind(dir);
    let state = dir.join("state");
    let config_path = dir.join("daemon.toml");
    let first = OrdersDemoConfig {
        rows: 3000,
        rows_per_day: 1000,
        batch_size: 500,
        ..Default::default()
    };
    let first_job = job_toml(
        "first",
        "ec2/first",
        "{ rows = 3000, rows_per_day = 1000, batch_size = 500 }",
        "",
    );
    std::fs::write(
        &config_path,
        format!("max_concurrent_jobs = 2\n\n{first_job}"),
    )
    .unwrap();
    let mut daemon = DaemonProcess::spawn(&env, &config_path, &notify, &state);

    // READY=1, with a status line saying nothing ran yet.
    let (ready_at, _) = notify
        .wait_for(0, "READY=1", Duration::from_secs(60), |l| l == "READY=1")
        .await;
    let ready_status = notify.all()[ready_at].1.clone();
    assert!(
        ready_status.contains("STATUS=") && ready_status.contains("last: none yet"),
        "{ready_status}"
    );
    let ready_time = notify.all()[ready_at].0;

    // STATUS changes once the first run finished; the dataset equals a one-shot extract.
    let (_, status) = notify
        .wait_for(
            ready_at,
            "STATUS after the run",
            Duration::from_secs(60),
            |l| l.starts_with("STATUS=") && l.contains("last: first complete"),
        )
        .await;
    assert!(status.contains("orders complete +3000 rows"), "{status}");
    assert!(status.contains("next: first at "), "{status}");
    assert_dataset_exact(&env, "ec2/first", &first).await;
    let manifest = Dataset::new(env.store().await, env.output("ec2/first"), ORDERS)
        .latest()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(manifest.runner, "ec2");

    // WATCHDOG=1 at half of WATCHDOG_USEC (2 s): about one per second.
    let window_start = Instant::now().max(ready_time + Duration::from_millis(100));
    tokio::time::sleep(Duration::from_secs(6)).await;
    let pings: Vec<Instant> = notify
        .watchdog_times(ready_at)
        .into_iter()
        .filter(|t| *t >= window_start && *t <= window_start + Duration::from_secs(6))
        .collect();
    assert!(
        (4..=9).contains(&pings.len()),
        "expected ~6 watchdog pings in 6 s, got {}",
        pings.len()
    );
    let gaps: Vec<f64> = pings
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    assert!(
        gaps.iter().all(|g| *g > 0.5 && *g < 2.0),
        "watchdog gaps must be ~1 s and under WATCHDOG_USEC (2 s): {gaps:?}"
    );

    // SIGHUP with a new job: RELOADING=1, READY=1, and the new job runs.
    let second = OrdersDemoConfig {
        rows: 2000,
        rows_per_day: 1000,
        batch_size: 400,
        ..Default::default()
    };
    let second_job = job_toml(
        "second",
        "ec2/second",
        "{ rows = 2000, rows_per_day = 1000, batch_size = 400 }",
        "",
    );
    std::fs::write(
        &config_path,
        format!("max_concurrent_jobs = 2\n\n{first_job}\n{second_job}"),
    )
    .unwrap();
    let mark = notify.len();
    daemon.signal("HUP");
    let (reloading, _) = notify
        .wait_for(mark, "RELOADING=1", Duration::from_secs(20), |l| {
            l == "RELOADING=1"
        })
        .await;
    let reload_msg = notify.all()[reloading].1.clone();
    assert!(reload_msg.contains("MONOTONIC_USEC="), "{reload_msg}");
    notify
        .wait_for(
            reloading,
            "READY=1 after reload",
            Duration::from_secs(20),
            |l| l == "READY=1",
        )
        .await;
    wait_complete(&env, "ec2/second", Duration::from_secs(60)).await;
    assert_dataset_exact(&env, "ec2/second", &second).await;
    notify
        .wait_for(
            mark,
            "STATUS after the second job",
            Duration::from_secs(30),
            |l| l.starts_with("STATUS=2 job(s)") && l.contains("last: second complete"),
        )
        .await;

    // SIGHUP with a broken config: rejected with line and field logged, old one kept.
    let broken = format!("max_concurrent_jobs = 2\n\n{first_job}\n{second_job}")
        .replace("rows = 2000,", "rowz = 2000,");
    let broken_line = broken
        .lines()
        .position(|l| l.contains("rowz"))
        .expect("rowz line")
        + 1;
    std::fs::write(&config_path, &broken).unwrap();
    let mark = notify.len();
    daemon.signal("HUP");
    let (reloading, _) = notify
        .wait_for(mark, "RELOADING=1", Duration::from_secs(20), |l| {
            l == "RELOADING=1"
        })
        .await;
    let (_, _) = notify
        .wait_for(
            reloading,
            "READY=1 after a rejected reload",
            Duration::from_secs(20),
            |l| l == "READY=1",
        )
        .await;
    let (_, status) = notify
        .wait_for(
            reloading,
            "STATUS after a rejected reload",
            Duration::from_secs(20),
            |l| l.starts_with("STATUS=") && l.contains("reload rejected"),
        )
        .await;
    assert!(
        status.contains("2 job(s)"),
        "the old config is kept: {status}"
    );
    let log = daemon.stderr();
    let rejected = log
        .lines()
        .find(|l| l.contains("config reload rejected"))
        .unwrap_or_else(|| panic!("no rejection logged:\n{log}"));
    // The error names the line of the job's inline config and the unknown field.
    assert!(
        rejected.contains(&format!("daemon.toml:{broken_line}:")) && rejected.contains("rowz"),
        "{rejected}"
    );
    assert!(daemon.alive(), "the daemon must survive a bad reload");

    // SIGTERM: STOPPING=1 and exit 0.
    let mark = notify.len();
    daemon.signal("TERM");
    notify
        .wait_for(mark, "STOPPING=1", Duration::from_secs(20), |l| {
            l == "STOPPING=1"
        })
        .await;
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_extract_commits_and_restart_resumes_exactly() {
    let env = TestEnv::start().await;
    let dir = env.dir.path();
    let notify = NotifySocket::bind(dir);
    let state = dir.join("state");
    let config_path = dir.join("daemon.toml");
    // 4 partitions of 20 batches, 150 ms each, 2 at a time: about 6 s of reading.
    let config = OrdersDemoConfig {
        rows: 4000,
        rows_per_day: 1000,
        batch_size: 50,
        batch_delay_ms: 150,
        ..Default::default()
    };
    std::fs::write(
        &config_path,
        job_toml(
            "slow",
            "ec2/slow",
            "{ rows = 4000, rows_per_day = 1000, batch_size = 50, batch_delay_ms = 150 }",
            "extract = { concurrency = 2 }",
        ),
    )
    .unwrap();
    let mut daemon = DaemonProcess::spawn(&env, &config_path, &notify, &state);
    notify
        .wait_for(0, "READY=1", Duration::from_secs(60), |l| l == "READY=1")
        .await;
    notify
        .wait_for(0, "the job running", Duration::from_secs(30), |l| {
            l.starts_with("STATUS=") && l.contains("running: slow")
        })
        .await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let mark = notify.len();
    daemon.signal("TERM");
    notify
        .wait_for(mark, "STOPPING=1", Duration::from_secs(10), |l| {
            l == "STOPPING=1"
        })
        .await;
    assert_eq!(daemon.wait_exit(Duration::from_secs(60)).await, 0);
    let (_, status) = notify
        .wait_for(
            mark,
            "STATUS with the partial run",
            Duration::from_secs(5),
            |l| l.starts_with("STATUS=") && l.contains("last: slow partial"),
        )
        .await;
    assert!(status.contains("orders partial"), "{status}");

    // Partial progress is committed: some rows, not all, and a pending plan.
    let dataset = Dataset::new(env.store().await, env.output("ec2/slow"), ORDERS);
    let manifests = dataset.manifests().await.unwrap();
    assert_eq!(manifests.len(), 1, "one partial commit");
    let partial = &manifests[0];
    assert_eq!(partial.status, RunStatus::Partial);
    assert_eq!(partial.runner, "ec2");
    assert!(
        partial.rows > 0 && partial.rows < 4000,
        "partial rows: {}",
        partial.rows
    );
    assert!(partial.state.pending.is_some());
    let record = std::fs::read_to_string(state.join("slow.last-run.json")).unwrap();
    assert!(record.contains("\"partial\""), "{record}");

    // Restart: the job ran 2 s ago on a 1 h schedule, but stopped early, so it resumes now.
    let mark = notify.len();
    let mut daemon = DaemonProcess::spawn(&env, &config_path, &notify, &state);
    notify
        .wait_for(
            mark,
            "READY=1 after restart",
            Duration::from_secs(60),
            |l| l == "READY=1",
        )
        .await;
    let (_, status) = notify
        .wait_for(mark, "the resumed run", Duration::from_secs(90), |l| {
            l.starts_with("STATUS=") && l.contains("last: slow complete")
        })
        .await;
    assert!(
        status.contains(&format!("+{} rows", 4000 - partial.rows)),
        "the resumed run adds exactly the missing rows: {status}"
    );
    let manifests = dataset.manifests().await.unwrap();
    assert_eq!(manifests.last().unwrap().status, RunStatus::Complete);
    assert_eq!(manifests.iter().map(|m| m.rows).sum::<u64>(), 4000);
    assert_dataset_exact(&env, "ec2/slow", &config).await;

    let mark = notify.len();
    daemon.signal("TERM");
    notify
        .wait_for(mark, "STOPPING=1", Duration::from_secs(10), |l| {
            l == "STOPPING=1"
        })
        .await;
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_job_stops_the_watchdog_pings() {
    let env = TestEnv::start().await;
    let dir = env.dir.path();
    let notify = NotifySocket::bind(dir);
    let config_path = dir.join("daemon.toml");
    // The source sleeps 120 s before its first batch: no progress at all.
    std::fs::write(
        &config_path,
        format!(
            "stall_timeout = \"3s\"\n\n{}",
            job_toml(
                "stuck",
                "ec2/stuck",
                "{ rows = 100, rows_per_day = 100, batch_size = 10, batch_delay_ms = 120000 }",
                "",
            )
        ),
    )
    .unwrap();
    let mut daemon = DaemonProcess::spawn(&env, &config_path, &notify, &dir.join("state"));
    notify
        .wait_for(0, "READY=1", Duration::from_secs(60), |l| l == "READY=1")
        .await;
    let (stuck_at, status) = notify
        .wait_for(0, "STUCK status", Duration::from_secs(30), |l| {
            l.starts_with("STATUS=STUCK")
        })
        .await;
    assert!(
        status.contains("stuck") && status.contains("3s"),
        "{status}"
    );
    // Pings came before the job was declared stuck...
    assert!(
        !notify.watchdog_times(0).is_empty(),
        "no pings before the stall"
    );
    // ...and none after (a ping may already be in flight at the switch).
    let stuck_time = notify.all()[stuck_at].0;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let late: Vec<Instant> = notify
        .watchdog_times(stuck_at)
        .into_iter()
        .filter(|t| *t > stuck_time + Duration::from_millis(500))
        .collect();
    assert!(
        late.is_empty(),
        "{} watchdog pings after the job got stuck",
        late.len()
    );
    assert!(daemon.stderr().contains("stopping watchdog pings"));
    // SIGTERM still stops it cleanly (the core stops at the checkpoint it waits at).
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)).await, 0);
}

/// Two daemons (two instances) schedule the same stream into the same output at the same
/// time: both extract, the core's conditional commit lets exactly one commit, the loser
/// deletes its files, logs the conflict and waits for its next slot (it keeps running).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_one_stream_never_both_commit() {
    let env = TestEnv::start().await;
    let dir = env.dir.path();
    // 2 partitions of 10 batches, 300 ms each, read at once: about 3 s of reading, so the
    // two runs overlap (each daemon starts its run within milliseconds of READY).
    let config = OrdersDemoConfig {
        rows: 1000,
        rows_per_day: 500,
        batch_size: 50,
        batch_delay_ms: 300,
        ..Default::default()
    };
    let job = job_toml(
        "shared",
        "ec2/shared",
        "{ rows = 1000, rows_per_day = 500, batch_size = 50, batch_delay_ms = 300 }",
        "extract = { concurrency = 2 }",
    );
    let mut daemons = Vec::new();
    for instance in ["a", "b"] {
        let home = dir.join(instance);
        std::fs::create_dir_all(&home).unwrap();
        let config_path = home.join("daemon.toml");
        std::fs::write(&config_path, &job).unwrap();
        let notify = NotifySocket::bind(&home);
        let daemon = DaemonProcess::spawn(&env, &config_path, &notify, &home.join("state"));
        daemons.push((instance, notify, daemon));
    }
    let mut outcomes = Vec::new();
    for (instance, notify, _) in &daemons {
        let (_, status) = notify
            .wait_for(0, "the first run's result", Duration::from_secs(90), |l| {
                l.starts_with("STATUS=") && l.contains("last: shared")
            })
            .await;
        outcomes.push((*instance, status));
    }
    let complete: Vec<_> = outcomes
        .iter()
        .filter(|(_, s)| s.contains("last: shared complete"))
        .collect();
    let conflict: Vec<_> = outcomes
        .iter()
        .filter(|(_, s)| s.contains("conflict (another run committed first)"))
        .collect();
    assert_eq!(
        (complete.len(), conflict.len()),
        (1, 1),
        "exactly one winner and one loser: {outcomes:#?}"
    );
    // The loser waits for its next slot (1 h away) and stays up.
    let (loser, loser_status) = conflict[0];
    assert!(loser_status.contains("next: shared at"), "{loser_status}");
    let (_, _, loser_daemon) = daemons.iter_mut().find(|(i, _, _)| i == loser).unwrap();
    assert!(
        loser_daemon.stderr().contains("waiting for the next slot"),
        "the loser logs the conflict"
    );
    assert!(loser_daemon.alive(), "the loser keeps running");

    // One commit, the exact rows once, and no file of the losing run left behind.
    let store = env.store().await;
    let dataset = Dataset::new(store.clone(), env.output("ec2/shared"), ORDERS);
    let manifests = dataset.manifests().await.unwrap();
    assert_eq!(manifests.len(), 1, "one commit for the slot");
    assert_eq!(manifests[0].status, RunStatus::Complete);
    assert_eq!(manifests[0].rows, 1000);
    assert_dataset_exact(&env, "ec2/shared", &config).await;
    let committed: std::collections::BTreeSet<String> =
        manifests[0].files.iter().map(|f| f.key.clone()).collect();
    let stored: std::collections::BTreeSet<String> = env
        .keys("ec2/shared")
        .await
        .into_iter()
        .filter(|k| k.ends_with(".parquet"))
        .collect();
    assert_eq!(stored, committed, "only the winner's files are stored");

    for (_, _, daemon) in &mut daemons {
        daemon.signal("TERM");
        assert_eq!(daemon.wait_exit(Duration::from_secs(30)).await, 0);
    }
}
