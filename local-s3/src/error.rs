//! The crate's one error type.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong when starting or driving the local S3 server
/// or the fault proxy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalS3Error {
    /// The TCP listener could not be bound (port in use, no permission, ...).
    #[error("failed to bind {addr}: {source}")]
    Bind {
        /// The address we tried to listen on.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },

    /// A bucket name broke one of the S3 bucket naming rules.
    #[error("invalid bucket name {name:?}: {rule}")]
    InvalidBucketName {
        /// The rejected name.
        name: String,
        /// The rule it broke, in words.
        rule: &'static str,
    },

    /// A filesystem operation failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The path the operation was about.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },

    /// The `s3s-fs` backend refused to open the data root.
    #[error("s3s-fs backend could not use root {}: {message}", path.display())]
    Backend {
        /// The data root.
        path: PathBuf,
        /// What the backend reported.
        message: String,
    },
}
