//! A local S3 server for the checks that write through the real core.

use crate::conformance::{ConformanceFailure, S3Target};
use crate::{S3Options, S3Store, StaticCredentials};

/// The bucket [`LocalS3Target`] creates.
pub const LOCAL_BUCKET: &str = "conformance";

/// A real S3-compatible server (`local-s3`, on `s3s-fs`) in a temporary directory, with
/// one bucket, for the checks that need S3. Stops when dropped.
#[derive(Debug)]
pub struct LocalS3Target {
    /// Where the checks write.
    pub target: S3Target,
    server: local_s3::LocalS3,
    _dir: tempfile::TempDir,
}

impl LocalS3Target {
    /// Start a server on `127.0.0.1:<free port>` with bucket [`LOCAL_BUCKET`]. Must be
    /// called inside a tokio runtime.
    pub async fn start() -> Result<Self, ConformanceFailure> {
        let setup = |what: &str, e: &dyn std::fmt::Display| ConformanceFailure::Setup {
            message: format!("{what}: {e}"),
        };
        let dir = tempfile::tempdir().map_err(|e| setup("creating a temporary directory", &e))?;
        let server = local_s3::LocalS3::start(dir.path().join("s3"))
            .await
            .map_err(|e| setup("starting the local S3 server", &e))?;
        server
            .create_bucket(LOCAL_BUCKET)
            .map_err(|e| setup("creating the bucket", &e))?;
        let store = S3Store::connect(&S3Options {
            endpoint_url: Some(server.endpoint()),
            region: Some(local_s3::REGION.into()),
            max_attempts: Some(5),
            attempt_timeout_secs: None,
            operation_timeout_secs: None,
            static_credentials: Some(StaticCredentials {
                access_key_id: local_s3::ACCESS_KEY.into(),
                secret_access_key: local_s3::SECRET_KEY.into(),
            }),
        })
        .await;
        let output = format!("s3://{LOCAL_BUCKET}/datasets")
            .parse()
            .map_err(|e| setup("output location", &e))?;
        Ok(Self {
            target: S3Target { store, output },
            server,
            _dir: dir,
        })
    }

    /// The server's endpoint URL.
    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }
}
