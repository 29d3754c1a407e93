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
    /// The test CA's certificate, when the server takes TLS.
    ca: Option<PathBuf>,
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

/// Make a test CA and a server certificate it signs (for `localhost` and 127.0.0.1) in
/// `dir`, with the `openssl` tool (PostgreSQL's packages depend on it, through
/// `ssl-cert`). Returns the CA certificate's path.
fn make_test_certificates(dir: &Path) -> PathBuf {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (it comes with PostgreSQL's ssl-cert dependency)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    openssl(
        &[
            &["req", "-x509", "-nodes", "-days", "2"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=connector-sdk test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req", "-nodes"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extension file");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "server.crt",
        "-extfile",
        "server.ext",
    ]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("key permissions");
    dir.join("ca.crt")
}

impl PgServer {
    /// initdb + start. Panics with the server log on failure.
    pub fn start() -> PgServer {
        Self::start_with(false)
    }

    /// initdb + start with TLS on and only TLS connections accepted over TCP
    /// (`hostssl` in `pg_hba.conf`), its certificate signed by a test CA
    /// ([`PgServer::ca_file`]) for `localhost` and 127.0.0.1.
    pub fn start_with_tls() -> PgServer {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> PgServer {
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
        let ca = tls.then(|| make_test_certificates(dir.path()));
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
            ca,
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
        let mut tls_opts = String::new();
        if server.ca.is_some() {
            let d = server.dir.path().display();
            tls_opts = format!(
                " -c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key"
            );
            // TCP only with TLS: a plain connection is refused, so one that works is TLS.
            let hba = data.join("pg_hba.conf");
            let text = std::fs::read_to_string(&hba).expect("pg_hba.conf");
            let text: String = text
                .lines()
                .map(|l| match l.strip_prefix("host ") {
                    Some(rest) => format!("hostssl {rest}\n"),
                    None => format!("{l}\n"),
                })
                .collect();
            std::fs::write(&hba, text).expect("pg_hba.conf");
        }
        for attempt in 0..5 {
            let port = free_port();
            let opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50{tls_opts}",
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

    /// A superuser client with the password: over TCP, or over the Unix socket when the
    /// server only takes TLS on TCP.
    pub async fn client(&self) -> Client {
        let mut config = tokio_postgres::Config::new();
        if self.ca.is_some() {
            config.host_path(self.dir.path());
        } else {
            config.host("127.0.0.1");
        }
        let (client, conn) = config
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

    /// The test CA's certificate (PEM) that signed the server's, for a TLS server.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca.as_deref()
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
