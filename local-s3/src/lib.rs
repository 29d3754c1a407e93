//! A local S3-compatible server for tests and the quickstart, and a
//! fault-injecting HTTP proxy to put in front of it.
//!
//! [`LocalS3`] serves the [`s3s-fs`](s3s_fs) filesystem backend through the
//! `s3s` service on `127.0.0.1`, path-style addressing, SigV4 authentication
//! with [`ACCESS_KEY`] / [`SECRET_KEY`] in region [`REGION`]. Buckets are
//! directories under the data root; objects are files inside them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), local_s3::LocalS3Error> {
//! let dir = std::env::temp_dir().join("local-s3-demo");
//! let s3 = local_s3::LocalS3::start(&dir).await?;
//! s3.create_bucket("my-bucket")?;
//! println!("S3 endpoint: {}", s3.endpoint());
//! s3.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! See `backend.rs` for what the backend supports beyond plain `s3s-fs`
//! (atomic conditional writes, `ListMultipartUploads`).

mod backend;
mod error;
pub mod fault_proxy;
mod listing;
mod server;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

pub use crate::error::LocalS3Error;
pub use crate::fault_proxy::{FaultConfig, FaultProxy, FaultStats, SeenRequest, Throttle};

use crate::backend::LocalFs;
use crate::server::ServerHandle;

/// The access key id the server accepts (SigV4).
pub const ACCESS_KEY: &str = "local-access-key";
/// The secret access key that goes with [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "local-secret-key";
/// The region clients should sign for.
pub const REGION: &str = "us-east-1";

/// A running local S3 server. Stop it with [`LocalS3::shutdown`]; dropping it
/// stops accepting new connections too.
#[derive(Debug)]
pub struct LocalS3 {
    root: PathBuf,
    server: ServerHandle,
    ignore_if_none_match: std::sync::Arc<std::sync::atomic::AtomicBool>,
    forget_completed_uploads: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LocalS3 {
    /// Starts on `127.0.0.1:<free port>`, data under `root` (created if
    /// missing). Spawns on the current tokio runtime.
    ///
    /// # Errors
    /// [`LocalS3Error::Io`] if `root` cannot be created or resolved,
    /// [`LocalS3Error::Backend`] if `s3s-fs` refuses it,
    /// [`LocalS3Error::Bind`] if no port could be bound.
    pub async fn start(root: impl AsRef<Path>) -> Result<LocalS3, LocalS3Error> {
        Self::start_on(root, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Like [`LocalS3::start`], listening on `addr` (port 0 picks a free port).
    ///
    /// # Errors
    /// As [`LocalS3::start`]; [`LocalS3Error::Bind`] names `addr`.
    pub async fn start_on(
        root: impl AsRef<Path>,
        addr: SocketAddr,
    ) -> Result<LocalS3, LocalS3Error> {
        let root = root.as_ref();
        let io_err = |source| LocalS3Error::Io {
            path: root.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(root).map_err(io_err)?;
        let root = root.canonicalize().map_err(io_err)?;
        let fs = s3s_fs::FileSystem::new(&root).map_err(|e| LocalS3Error::Backend {
            path: root.clone(),
            message: format!("{e:?}"),
        })?;

        let backend = LocalFs::new(fs, root.clone());
        let ignore_if_none_match = backend.ignore_if_none_match.clone();
        let forget_completed_uploads = backend.forget_completed_uploads.clone();
        let service = {
            let mut builder = S3ServiceBuilder::new(backend);
            builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            // No `set_host`: without a host parser s3s treats every request as
            // path-style (`/bucket/key`), which is what clients using
            // `force_path_style(true)` send.
            builder.build()
        };

        let listener = server::bind(addr).await?;
        let http = ConnBuilder::new(TokioExecutor::new());
        let server = ServerHandle::spawn(listener, move |socket, graceful| {
            let conn = http.serve_connection(TokioIo::new(socket), service.clone());
            let conn = graceful.watch(conn.into_owned());
            tokio::spawn(async move {
                if let Err(err) = conn.await {
                    tracing::debug!(error = %err, "local-s3 connection ended with an error");
                }
            });
        })?;
        tracing::debug!(addr = %server.addr(), root = %root.display(), "local-s3 started");
        Ok(LocalS3 {
            root,
            server,
            ignore_if_none_match,
            forget_completed_uploads,
        })
    }

    /// The base URL to give S3 clients, e.g. `http://127.0.0.1:40123`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        server::endpoint_for(self.server.addr())
    }

    /// The address the server listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Behave (`true`) as an S3-compatible server without conditional writes: a
    /// `PutObject` with `If-None-Match: *` overwrites an existing key instead of answering
    /// 412. For testing clients that must detect such a server.
    pub fn set_ignore_if_none_match(&self, ignore: bool) {
        self.ignore_if_none_match
            .store(ignore, std::sync::atomic::Ordering::Relaxed);
    }

    /// Behave (`true`) as an S3 whose memory of a completed multipart upload has lapsed: a
    /// retried `CompleteMultipartUpload` answers 404 `NoSuchUpload` instead of the object
    /// (S3 answers a retry with the object only for a while). For testing clients that must
    /// recover from that answer.
    pub fn set_forget_completed_uploads(&self, forget: bool) {
        self.forget_completed_uploads
            .store(forget, std::sync::atomic::Ordering::Relaxed);
    }

    /// The data root, canonicalised (absolute, symlinks resolved).
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates bucket `name` (a directory under the root). Succeeds if the
    /// bucket already exists.
    ///
    /// # Errors
    /// [`LocalS3Error::InvalidBucketName`] if `name` breaks the S3 naming rules
    /// (see [`validate_bucket_name`]), [`LocalS3Error::Io`] if the directory
    /// cannot be created.
    pub fn create_bucket(&self, name: &str) -> Result<(), LocalS3Error> {
        validate_bucket_name(name)?;
        let path = self.root.join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
            Err(source) => Err(LocalS3Error::Io { path, source }),
        }
    }

    /// Stops accepting connections, lets in-flight requests finish (up to 5 s)
    /// and ends the server task.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Checks `name` against the S3 general-purpose bucket naming rules:
/// 3 to 63 characters; only lowercase letters, digits, `.` and `-`; begins
/// and ends with a letter or digit; no `..`; not shaped like an IPv4 address;
/// not starting with `xn--` or `sthree-`; not ending with `-s3alias` or `--ol-s3`.
///
/// # Errors
/// [`LocalS3Error::InvalidBucketName`] naming the first rule broken.
pub fn validate_bucket_name(name: &str) -> Result<(), LocalS3Error> {
    let fail = |rule: &'static str| {
        Err(LocalS3Error::InvalidBucketName {
            name: name.to_owned(),
            rule,
        })
    };
    if !(3..=63).contains(&name.len()) {
        return fail("must be between 3 and 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return fail("may contain only lowercase letters, digits, '.' and '-'");
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = name.as_bytes();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return fail("must begin and end with a lowercase letter or digit");
    }
    if name.contains("..") {
        return fail("must not contain two adjacent periods");
    }
    if name.parse::<Ipv4Addr>().is_ok() {
        return fail("must not be formatted as an IP address");
    }
    if name.starts_with("xn--") || name.starts_with("sthree-") {
        return fail("must not start with the reserved prefixes 'xn--' or 'sthree-'");
    }
    if name.ends_with("-s3alias") || name.ends_with("--ol-s3") {
        return fail("must not end with the reserved suffixes '-s3alias' or '--ol-s3'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket", "a.b.c", "bucket-123", &"a".repeat(63)] {
            assert!(validate_bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "My-Bucket",
            "my_bucket",
            "-abc",
            "abc-",
            "a..b",
            "192.168.1.1",
            "xn--abc",
            "abc-s3alias",
            "",
        ] {
            let err = validate_bucket_name(bad).unwrap_err();
            assert!(
                err.to_string().contains("invalid bucket name"),
                "{bad}: {err}"
            );
        }
    }
}
