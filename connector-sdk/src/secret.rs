//! Where a connector's secret (a password, a token) comes from, and the type that holds it
//! once read: never the secret itself in a config, never printed.
//!
//! A config names a source: an environment variable (what ECS and Lambda inject from
//! Secrets Manager), a file (a mounted secret), or a systemd credential (`LoadCredential=`
//! in the EC2 unit: systemd copies a root-only file to `$CREDENTIALS_DIRECTORY/<name>`,
//! readable by the service's dynamic user alone). The value is read into a
//! [`SecretString`] (`secrecy`: zeroed on drop, `Debug` prints `[REDACTED]`), exposed only
//! where it is handed to the client library.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use secrecy::{ExposeSecret, SecretString};

use crate::error::ConnectorError;

/// Where a secret comes from: `{"env": "VAR"}`, `{"file": "/run/secrets/pg"}` or
/// `{"credential": "pg"}` (a systemd credential, `$CREDENTIALS_DIRECTORY/pg`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretSource {
    /// Name of an environment variable holding the secret.
    Env(String),
    /// Path of a file holding the secret (a trailing newline is ignored).
    File(PathBuf),
    /// Name of a systemd credential (`LoadCredential=<name>:<path>` in the unit): the file
    /// `$CREDENTIALS_DIRECTORY/<name>` (a trailing newline is ignored).
    Credential(String),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env(name) => write!(f, "Env({name:?})"),
            Self::File(path) => write!(f, "File({path:?})"),
            Self::Credential(name) => write!(f, "Credential({name:?})"),
        }
    }
}

impl SecretSource {
    /// Read the secret; `what` names it in errors ("password"). Errors name the variable,
    /// file or credential, never the value.
    pub fn resolve(&self, what: &str) -> Result<SecretString, ConnectorError> {
        let from_file = |path: &std::path::Path, described: String| {
            std::fs::read_to_string(path)
                .map(|s| SecretString::from(s.trim_end_matches(['\r', '\n']).to_string()))
                .map_err(|e| {
                    ConnectorError::config(format!(
                        "cannot read the {what} from {described}: {}",
                        e.kind()
                    ))
                })
        };
        match self {
            Self::Env(name) => std::env::var(name).map(SecretString::from).map_err(|_| {
                ConnectorError::config(format!(
                    "{what} environment variable `{name}` is not set (or not UTF-8)"
                ))
            }),
            Self::File(path) => from_file(path, format!("the file {}", path.display())),
            Self::Credential(name) => {
                if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                    return Err(ConnectorError::config(format!(
                        "{what} credential name {name:?} is not a file name; use the name given in LoadCredential=<name>:<path>"
                    )));
                }
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                    ConnectorError::config(format!(
                        "the {what} is the systemd credential `{name}`, but CREDENTIALS_DIRECTORY is not set: run under a unit with LoadCredential={name}:<file> (install.sh --credential {name}=<file>), or use {{\"env\": ...}} / {{\"file\": ...}}"
                    ))
                })?;
                let path = PathBuf::from(dir).join(name);
                from_file(
                    &path,
                    format!("the systemd credential `{name}` ({})", path.display()),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_never_print_the_value() {
        let s: SecretSource = serde_json::from_str(r#"{"credential": "pg"}"#).unwrap();
        assert_eq!(s, SecretSource::Credential("pg".into()));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pg"), "hunter2\n").unwrap();
        let file = SecretSource::File(dir.path().join("pg"));
        let secret = file.resolve("password").unwrap();
        assert_eq!(secret.expose_secret(), "hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        for bad in ["", "../pg", "a/b", ".."] {
            let e = SecretSource::Credential(bad.into())
                .resolve("password")
                .unwrap_err()
                .to_string();
            assert!(e.contains("not a file name"), "{bad}: {e}");
        }
        assert!(
            serde_json::from_str::<SecretSource>(r#"{"value": "hunter2"}"#).is_err(),
            "a secret itself is not a source"
        );
    }
}
