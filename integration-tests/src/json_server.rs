//! A real REST API for the HTTP connectors' tests: `json-server` 0.17 (npm, installed by
//! `scripts/setup.d/90-json-server.sh` into `.tools/json-server`) serving a JSON database
//! from a temporary directory on `127.0.0.1:<free port>`. It pages (`_page`/`_limit` with
//! `Link` headers, `_start`/`_limit`), filters (`id_gte`, `id_lte`), sorts (`_sort`,
//! `_order`) and takes writes (POST, PATCH), so a test can grow or change the source
//! between runs through the server itself.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::workspace_root;

/// A running json-server; stopped on drop.
#[derive(Debug)]
pub struct JsonServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl JsonServer {
    /// Serve `db` (an object of collections: `{"items": [{"id": 1, ...}]}`). Blocks until
    /// the server answers. Panics with the install command when json-server is missing.
    pub fn start(db: &serde_json::Value) -> JsonServer {
        let bin = Self::binary();
        assert!(
            bin.is_file(),
            "{} is missing: run `bash scripts/setup.d/90-json-server.sh`",
            bin.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("db.json");
        std::fs::write(&file, serde_json::to_vec(db).expect("json")).expect("write db");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = Command::new(&bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--quiet",
            ])
            .arg(&file)
            // No ./public or routes from wherever the test runs.
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut server = JsonServer { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("json-server exited ({status}): {}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "json-server did not start: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The database file the server reads and writes.
    pub fn db_file(&self) -> PathBuf {
        self.dir.path().join("db.json")
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The installed json-server.
    pub fn binary() -> PathBuf {
        workspace_root().join(".tools/json-server/node_modules/.bin/json-server")
    }
}

impl Drop for JsonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
