//! A real PostgreSQL for tests and the runner matrix: `initdb` in a temporary directory,
//! started on a free port on 127.0.0.1 as a non-root user, stopped (immediate) and removed
//! on drop. Installs PostgreSQL (scripts/setup.d/20-postgres.sh) when it is missing.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use tokio_postgres::{Client, NoTls};

/// The superuser's password (the tests' only secret).
pub const PASSWORD: &str = "s3cret-Pa55";
pub const SUPERUSER: &str = "postgres";

/// A running throwaway cluster.
#[derive(Debug)]
pub struct PgServer {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<String>,
}

fn bin_dir() -> PathBuf {
    let find = || -> Option<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .collect();
        dirs.sort_by_key(|p| {
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        });
        dirs.pop()
    };
    if let Some(d) = find() {
        return d;
    }
    // Not installed: run the project's setup script (apt-get install -y postgresql).
    let script = crate::workspace_root().join("scripts/setup.d/20-postgres.sh");
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .expect("bash runs");
    assert!(status.success(), "{} failed", script.display());
    find().expect("PostgreSQL binaries under /usr/lib/postgresql/*/bin after setup")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl PgServer {
    /// initdb + start. Panics with the server log on failure.
    pub fn start() -> PgServer {
        let bin = bin_dir();
        let run_as = if is_root() {
            let user = "postgres";
            let exists = Command::new("id")
                .arg(user)
                .output()
                .map(|o| o.status.success());
            if !exists.unwrap_or(false) {
                let st = Command::new("useradd")
                    .args([
                        "--system",
                        "--no-create-home",
                        "--shell",
                        "/usr/sbin/nologin",
                        user,
                    ])
                    .status()
                    .expect("useradd runs");
                assert!(st.success(), "useradd {user} failed");
            }
            Some(user.to_string())
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("pgtest-")
            .tempdir()
            .expect("temp dir");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).expect("pwfile");
        if let Some(u) = &run_as {
            let st = Command::new("chown")
                .args(["-R", u])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(st.success());
        }
        let mut server = PgServer {
            port: 0,
            dir,
            bin,
            run_as,
        };
        let data = server.dir.path().join("data");
        server.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                SUPERUSER,
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        for attempt in 0..5 {
            let port = free_port();
            let opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50",
                server.dir.path().display()
            );
            let log = server.dir.path().join("server.log");
            let ok = server.try_run(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-l",
                    log.to_str().unwrap(),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    &opts,
                    "start",
                ],
            );
            if ok {
                server.port = port;
                return server;
            }
            eprintln!(
                "postgres start attempt {attempt} on port {port} failed: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("postgres did not start");
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let exe = self.bin.join(tool);
        match &self.run_as {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(exe).args(args);
                c
            }
            None => {
                let mut c = Command::new(exe);
                c.args(args);
                c
            }
        }
    }

    fn try_run(&self, tool: &str, args: &[&str]) -> bool {
        let out = self
            .command(tool, args)
            .current_dir(self.dir.path())
            .output()
            .expect("postgres tool runs");
        if !out.status.success() {
            eprintln!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status.success()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        assert!(self.try_run(tool, args), "{tool} failed");
    }

    /// A superuser client over TCP with the password.
    pub async fn client(&self) -> Client {
        let (client, conn) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(SUPERUSER)
            .password(PASSWORD)
            .dbname("postgres")
            .connect(NoTls)
            .await
            .expect("connect to the test server");
        tokio::spawn(conn);
        client
    }

    /// A file holding the password (for `{"file": ...}` password sources).
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("pw")
    }

    /// Connector config JSON for this server with `streams`.
    pub fn config(&self, streams: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "host": "127.0.0.1",
            "port": self.port,
            "database": "postgres",
            "user": SUPERUSER,
            "password": {"file": self.password_file()},
            "sslmode": "disable",
            "streams": streams,
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self
            .command(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            )
            .output();
    }
}
