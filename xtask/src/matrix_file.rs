//! `matrix.toml`: which connectors the matrix runs, with what config; and each one's
//! declared runners, read from the manifest embedded in its binary (`<binary> spec`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;

/// The four runners, in table order.
pub const RUNNERS: [&str; 4] = ["lambda", "fargate", "ec2", "glue"];

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixFile {
    /// One entry per connector.
    pub connector: Vec<ConnectorEntry>,
}

/// One connector of the matrix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorEntry {
    /// The connector's directory (relative to the workspace root).
    pub dir: String,
    /// Cargo package of the binary.
    pub package: String,
    /// Binary name.
    pub binary: String,
    /// The stream every runner extracts.
    pub stream: String,
    /// How many rows every runner's dataset must hold (the one-shot extract is also
    /// checked against the source where the matrix can read it independently).
    pub rows: usize,
    /// The connector config (the same for every runner).
    pub config: Value,
    /// A source the matrix starts: `postgres` (its `seed` is SQL), `json_server`
    /// (json-server from npm; its `seed` is the JSON database, and "${SOURCE_URL}" in the
    /// config is replaced by the server's base URL) or `s3_objects` (its `seed` is a
    /// directory of CSV files put into the matrix's bucket under
    /// `matrix-sources/<connector>/`).
    #[serde(default)]
    pub source: Option<Source>,
    /// SQL run against the source server before the runners (with `source`).
    #[serde(default)]
    pub seed: Option<String>,
    /// Environment every runner gets.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// With `source`: the table the stream reads and its key column, which the matrix
    /// reads through an independent client to check the one-shot extract.
    #[serde(default)]
    pub source_table: Option<SourceTable>,
}

/// A source table and its key column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTable {
    /// Table name.
    pub table: String,
    /// An integer key column.
    pub key: String,
}

/// A source server started for a connector.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A throwaway PostgreSQL (integration_tests::postgres_server).
    Postgres,
    /// json-server (integration_tests::json_server) serving the seed's collections.
    JsonServer,
    /// The seed directory's files put into the matrix's bucket under
    /// `matrix-sources/<connector>/` (CSV with a header, for the source check).
    S3Objects,
}

impl MatrixFile {
    /// Read and validate `matrix.toml` under `root`: every connector directory of the
    /// workspace (a `connector.toml` under connectors/ or examples/) has an entry.
    pub fn load(root: &Path) -> Result<MatrixFile> {
        let path = root.join("matrix.toml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let file: MatrixFile =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        for dir in connector_dirs(root)? {
            if !file.connector.iter().any(|c| Path::new(&c.dir) == dir) {
                bail!(
                    "{} has a connector.toml but no [[connector]] entry in matrix.toml; add one (dir = \"{}\") so every runner it declares is tested",
                    dir.display(),
                    dir.display()
                );
            }
        }
        for c in &file.connector {
            if c.source.is_some() != c.source_table.is_some() {
                bail!(
                    "matrix.toml: connector `{}` with a `source` must name its `source_table` (table and key), so the one-shot extract is checked against it",
                    c.dir
                );
            }
            if c.source.is_some() != c.seed.is_some() {
                bail!(
                    "matrix.toml: connector `{}` must set both `source` and `seed`, or neither",
                    c.dir
                );
            }
        }
        Ok(file)
    }
}

/// Every `connectors/*` and `examples/*` directory holding a `connector.toml`, relative.
fn connector_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for parent in ["connectors", "examples"] {
        let Ok(entries) = std::fs::read_dir(root.join(parent)) else {
            continue;
        };
        for e in entries {
            let e = e?;
            if e.path().join("connector.toml").exists() {
                out.push(Path::new(parent).join(e.file_name()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What the binary's embedded manifest says (from `<binary> spec`).
#[derive(Debug, Clone)]
pub struct DeclaredManifest {
    /// The connector's name.
    pub name: String,
    /// Declared runners and their resource needs (`memory_mb`, ...).
    pub runners: BTreeMap<String, Value>,
}

impl DeclaredManifest {
    /// Run `<binary> spec` and read the manifest.
    pub fn from_binary(binary: &Path, env: &[(String, String)]) -> Result<DeclaredManifest> {
        let out = std::process::Command::new(binary)
            .arg("spec")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .with_context(|| format!("running {} spec", binary.display()))?;
        if !out.status.success() {
            bail!(
                "{} spec failed ({}): {}",
                binary.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let spec: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("{} spec printed no JSON", binary.display()))?;
        let manifest = &spec["manifest"];
        let name = manifest["name"]
            .as_str()
            .context("the manifest has no name")?
            .to_string();
        let runners = manifest["runners"]
            .as_object()
            .context("the manifest has no runners table")?
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(DeclaredManifest { name, runners })
    }

    /// Whether `runner` is declared.
    pub fn declares(&self, runner: &str) -> bool {
        self.runners.contains_key(runner)
    }

    /// The declared memory of `runner`, MB.
    pub fn memory_mb(&self, runner: &str) -> u32 {
        self.runners
            .get(runner)
            .and_then(|r| r["memory_mb"].as_u64())
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(512)
    }
}
