//! The S3 client the core writes through: `aws-sdk-s3` configured for AWS and for
//! S3-compatible servers, with errors mapped to one-line [`Error::S3`]s.

use crate::error::one_line;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{
    ConfigBag, Intercept, RequestChecksumCalculation, ResponseChecksumValidation, RuntimeComponents,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How to reach S3. Everything defaults to the AWS SDK's own chain (environment,
/// profile, IMDSv2 instance profile, ECS task role...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct S3Options {
    /// Custom endpoint (an S3-compatible server). Falls back to `AWS_ENDPOINT_URL_S3` /
    /// `AWS_ENDPOINT_URL`. Path-style addressing is used whenever an endpoint is set.
    pub endpoint_url: Option<String>,
    /// Region; falls back to the SDK chain, then `us-east-1`.
    pub region: Option<String>,
    /// Maximum attempts per request, including the first (SDK standard retry mode).
    pub max_attempts: Option<u32>,
    /// Seconds one attempt may take before it is abandoned and retried (a request that
    /// hangs); default 120 (an 8 MiB part on a slow link fits).
    pub attempt_timeout_secs: Option<u64>,
    /// Seconds one operation may take in all, its retries and their backoff included,
    /// before it fails; default 600.
    pub operation_timeout_secs: Option<u64>,
    /// Explicit credentials, for embedded S3-compatible servers only (quickstart, tests).
    /// Never read from files; on AWS leave unset and use the SDK's default chain.
    #[serde(skip)]
    #[schemars(skip)]
    pub static_credentials: Option<StaticCredentials>,
}

/// An access key pair given in code. Its `Debug` hides the secret.
#[derive(Clone, PartialEq)]
pub struct StaticCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Counts request attempts and operations, so a run report can state its retries.
#[derive(Debug, Default)]
struct AttemptCounter {
    operations: AtomicU64,
    attempts: AtomicU64,
    by_operation: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

#[derive(Debug, Clone)]
struct CountAttempts(Arc<AttemptCounter>);

impl Intercept for CountAttempts {
    fn name(&self) -> &'static str {
        "CountAttempts"
    }
    fn read_before_execution(
        &self,
        _context: &aws_sdk_s3::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> std::result::Result<(), aws_sdk_s3::error::BoxError> {
        self.0.operations.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn read_after_serialization(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), aws_sdk_s3::error::BoxError> {
        // Once per operation; the operation's metadata is in the bag by now.
        if let Some(meta) = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            && let Ok(mut m) = self.0.by_operation.lock()
        {
            *m.entry(meta.name().to_string()).or_default() += 1;
        }
        Ok(())
    }
    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> std::result::Result<(), aws_sdk_s3::error::BoxError> {
        self.0.attempts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// An S3 client plus the endpoint it talks to.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    endpoint: String,
    counter: Arc<AttemptCounter>,
    /// Buckets whose server was seen to honour `If-None-Match: *`.
    conditional_writes: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    /// How requests to particular buckets are made (owner check, encryption).
    buckets: Arc<std::collections::BTreeMap<String, BucketSettings>>,
}

/// How every request to one bucket is made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketSettings {
    /// The account that must own the bucket: sent as `ExpectedBucketOwner` on every
    /// request, so a bucket of another account (a deleted bucket's name taken over, a
    /// typo) answers 403 instead of receiving the data.
    pub expected_owner: Option<String>,
    /// Encrypt every object written with SSE-KMS under this key (id, ARN or alias);
    /// `None`: the bucket's default encryption.
    pub sse_kms_key_id: Option<String>,
}

/// One listed object.
#[derive(Debug, Clone)]
pub struct ListedObject {
    /// Key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modified, seconds since the epoch.
    pub last_modified_secs: i64,
    /// The ETag, as S3 lists it (with its quotes); empty if the server gave none.
    pub etag: String,
}

/// One open multipart upload.
#[derive(Debug, Clone)]
pub struct OpenUpload {
    /// Key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// When it was started, seconds since the epoch (0 if unknown).
    pub initiated_secs: i64,
}

impl S3Store {
    /// Build a client from the SDK's default chain plus `options`.
    pub async fn connect(options: &S3Options) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &options.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(c) = &options.static_credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                None,
                None,
                "static",
            ));
        }
        let shared = loader.load().await;
        let endpoint = options
            .endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|e| !e.is_empty());
        let counter = Arc::new(AttemptCounter::default());
        let mut builder = aws_sdk_s3::config::Builder::from(&shared)
            // S3-compatible servers do not all speak the newer flexible checksums.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(options.max_attempts.unwrap_or(8))
                    .with_initial_backoff(Duration::from_millis(50))
                    .with_max_backoff(Duration::from_secs(5)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(
                        options.attempt_timeout_secs.unwrap_or(120).max(1),
                    ))
                    .operation_timeout(Duration::from_secs(
                        options.operation_timeout_secs.unwrap_or(600).max(1),
                    ))
                    .build(),
            )
            .interceptor(CountAttempts(counter.clone()));
        if shared.region().is_none() {
            builder = builder.region(aws_config::Region::new("us-east-1"));
        }
        if let Some(e) = &endpoint {
            builder = builder.endpoint_url(e).force_path_style(true);
        }
        let display = endpoint.unwrap_or_else(|| "AWS S3".to_string());
        Self {
            client: Client::from_conf(builder.build()),
            endpoint: display,
            counter,
            conditional_writes: Arc::default(),
            buckets: Arc::default(),
        }
    }

    /// This store, making every request to `bucket` with `settings`.
    pub fn with_bucket_settings(mut self, bucket: &str, settings: BucketSettings) -> Self {
        let mut buckets = self.buckets.as_ref().clone();
        buckets.insert(bucket.to_string(), settings);
        self.buckets = Arc::new(buckets);
        self
    }

    /// The account that must own `bucket`, if checked.
    pub(crate) fn expected_owner(&self, bucket: &str) -> Option<String> {
        self.buckets
            .get(bucket)
            .and_then(|b| b.expected_owner.clone())
    }

    /// `aws:kms` and the key, when objects written to `bucket` are encrypted with SSE-KMS.
    fn sse_kms(&self, bucket: &str) -> (Option<ServerSideEncryption>, Option<String>) {
        match self
            .buckets
            .get(bucket)
            .and_then(|b| b.sse_kms_key_id.clone())
        {
            Some(key) => (Some(ServerSideEncryption::AwsKms), Some(key)),
            None => (None, None),
        }
    }

    /// The underlying SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The endpoint, for messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Attempts beyond the first, over all requests so far.
    pub fn retries(&self) -> u64 {
        self.counter
            .attempts
            .load(Ordering::Relaxed)
            .saturating_sub(self.counter.operations.load(Ordering::Relaxed))
    }

    /// Requests made so far per S3 operation name (`UploadPart`, `PutObject`...).
    pub fn operation_counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.counter
            .by_operation
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// Requests made so far (operations, not attempts).
    pub fn requests(&self) -> u64 {
        self.counter.operations.load(Ordering::Relaxed)
    }

    fn err<E>(
        &self,
        operation: &'static str,
        bucket: &str,
        key: &str,
        e: SdkError<E, HttpResponse>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        s3_error(operation, bucket, key, &self.endpoint, e)
    }

    /// Check that the bucket exists and is reachable, by listing at most one key under
    /// `prefix` (the output's): unlike HeadBucket, which needs `s3:ListBucket` on the whole
    /// bucket, this works with a policy that allows listing only under the output prefix.
    pub async fn check_bucket(&self, bucket: &str, prefix: &str) -> Result<()> {
        match self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .set_expected_bucket_owner(self.expected_owner(bucket))
            .prefix(prefix)
            .max_keys(1)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => Err(Error::S3 {
                operation: "ListObjectsV2",
                bucket: bucket.to_string(),
                key: prefix.to_string(),
                message: format!(
                    "bucket `{bucket}` does not exist at {}; create it or fix the output URL",
                    self.endpoint
                ),
                retryable: false,
                source: Some(Box::new(SdkError::ServiceError(e))),
            }),
            Err(e) => Err(self.err("ListObjectsV2", bucket, prefix, e)),
        }
    }

    /// PutObject. With `if_absent`, the put only succeeds when the key does not exist
    /// (`If-None-Match: *`); `Ok(false)` means it existed.
    ///
    /// A conditional put answered `409 ConditionalRequestConflict` (another write to the
    /// key was in flight) is tried again: S3 says the key may or may not exist, and only
    /// `412 PreconditionFailed` says it does.
    pub async fn put(&self, bucket: &str, key: &str, body: Bytes, if_absent: bool) -> Result<bool> {
        const CONFLICT_ATTEMPTS: u32 = 5;
        let (sse, kms_key) = self.sse_kms(bucket);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .client
                .put_object()
                .bucket(bucket)
                .set_expected_bucket_owner(self.expected_owner(bucket))
                .set_server_side_encryption(sse.clone())
                .set_ssekms_key_id(kms_key.clone())
                .key(key)
                .body(ByteStream::from(body.clone()));
            if if_absent {
                req = req.if_none_match("*");
            }
            match req.send().await {
                Ok(_) => return Ok(true),
                Err(SdkError::ServiceError(e)) if if_absent && e.raw().status().as_u16() == 412 => {
                    return Ok(false);
                }
                Err(SdkError::ServiceError(e))
                    if if_absent
                        && e.raw().status().as_u16() == 409
                        && attempt < CONFLICT_ATTEMPTS =>
                {
                    let backoff =
                        Duration::from_millis((50u64 << attempt) + rand::random::<u64>() % 50);
                    tracing::debug!(%key, attempt, "conditional put answered 409 ConditionalRequestConflict; trying again");
                    tokio::time::sleep(backoff).await;
                }
                Err(e) => return Err(self.err("PutObject", bucket, key, e)),
            }
        }
    }

    /// Check that the server honours `If-None-Match: *` on PutObject, which every
    /// exactly-once commit depends on: create `probe_key` conditionally, create it again
    /// (it must be refused with 412), delete it. Done once per bucket and client; a server
    /// that lets the second create through is refused with an error naming it.
    pub async fn check_conditional_writes(&self, bucket: &str, probe_key: &str) -> Result<()> {
        if self
            .conditional_writes
            .lock()
            .is_ok_and(|seen| seen.contains(bucket))
        {
            return Ok(());
        }
        let body = Bytes::from_static(b"If-None-Match probe; safe to delete\n");
        let created = self.put(bucket, probe_key, body.clone(), true).await?;
        let again = self.put(bucket, probe_key, body, true).await;
        if let Err(e) = self.delete(bucket, probe_key).await {
            tracing::warn!(key = %probe_key, error = %e, "could not delete the If-None-Match probe");
        }
        match (created, again?) {
            (true, false) => {
                if let Ok(mut seen) = self.conditional_writes.lock() {
                    seen.insert(bucket.to_string());
                }
                Ok(())
            }
            (false, _) => Err(Error::S3 {
                operation: "PutObject",
                bucket: bucket.to_string(),
                key: probe_key.to_string(),
                // Also what a lost reply looks like: the first create applied, its reply
                // lost, the SDK's retry answered 412. A fresh attempt tells them apart.
                message: format!(
                    "the If-None-Match probe {probe_key} existed at its first create (a lost reply, or a server that answers conditional writes wrongly at {}); run again",
                    self.endpoint
                ),
                retryable: true,
                source: None,
            }),
            (true, true) => Err(Error::S3 {
                operation: "PutObject",
                bucket: bucket.to_string(),
                key: probe_key.to_string(),
                message: format!(
                    "the server at {} ignores If-None-Match: * (a second conditional create of {probe_key} succeeded instead of answering 412); exactly-once commits depend on it, so nothing was written. Use AWS S3 or an S3-compatible server with conditional writes",
                    self.endpoint
                ),
                retryable: false,
                source: None,
            }),
        }
    }

    /// GetObject, whole body. `Ok(None)` when the key does not exist.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Option<Bytes>> {
        match self
            .client
            .get_object()
            .bucket(bucket)
            .set_expected_bucket_owner(self.expected_owner(bucket))
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(read_body(out.body, bucket, key).await?)),
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => Ok(None),
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => Ok(None),
            Err(e) => Err(self.err("GetObject", bucket, key, e)),
        }
    }

    /// GetObject of the bytes `range` (end exclusive). A missing key is an error here: the
    /// caller knows the object exists (it has its size).
    pub async fn get_range(&self, bucket: &str, key: &str, range: Range<u64>) -> Result<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .set_expected_bucket_owner(self.expected_owner(bucket))
            .key(key)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await
            .map_err(|e| self.err("GetObject", bucket, key, e))?;
        let body = read_body(out.body, bucket, key).await?;
        if body.len() as u64 != range.end - range.start {
            return Err(Error::S3 {
                operation: "GetObject",
                bucket: bucket.to_string(),
                key: key.to_string(),
                message: format!(
                    "asked for bytes {}..{}, got {} bytes (the object is shorter than expected)",
                    range.start,
                    range.end,
                    body.len()
                ),
                retryable: false,
                source: None,
            });
        }
        Ok(body)
    }

    /// HeadObject: the object's size, or `None` when the key does not exist.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<Option<u64>> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .set_expected_bucket_owner(self.expected_owner(bucket))
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.content_length().unwrap_or(0).max(0) as u64)),
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => Ok(None),
            Err(e) => Err(self.err("HeadObject", bucket, key, e)),
        }
    }

    /// Whether multipart upload `upload_id` of `key` is still open (not completed, not
    /// aborted). Used to name the real cause when a part upload is refused.
    pub async fn upload_is_open(&self, bucket: &str, key: &str, upload_id: &str) -> Result<bool> {
        Ok(self
            .list_open_uploads(bucket, key)
            .await?
            .iter()
            .any(|u| u.key == key && u.upload_id == upload_id))
    }

    /// Every object under `prefix` (all pages).
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ListedObject>> {
        self.list_after(bucket, prefix, None, None).await
    }

    /// The objects under `prefix` whose keys sort after `start_after` (S3 `StartAfter`),
    /// at most `limit` of them (all pages when `None`).
    pub async fn list_after(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<ListedObject>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .set_expected_bucket_owner(self.expected_owner(bucket))
                .prefix(prefix)
                .set_start_after(start_after.map(str::to_string))
                .set_max_keys(limit.map(|n| n.min(1000) as i32))
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(|e| self.err("ListObjectsV2", bucket, prefix, e))?;
            for o in resp.contents() {
                if let Some(key) = o.key() {
                    out.push(ListedObject {
                        key: key.to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        last_modified_secs: o.last_modified().map(|t| t.secs()).unwrap_or(0),
                        etag: o.e_tag().unwrap_or_default().to_string(),
                    });
                }
            }
            if limit.is_some_and(|n| out.len() >= n) {
                out.truncate(limit.unwrap_or(out.len()));
                break;
            }
            match resp.next_continuation_token() {
                Some(t) if resp.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// DeleteObject (idempotent).
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(bucket)
            .set_expected_bucket_owner(self.expected_owner(bucket))
            .key(key)
            .send()
            .await
            .map_err(|e| self.err("DeleteObject", bucket, key, e))?;
        Ok(())
    }

    /// CreateMultipartUpload; returns the upload id.
    pub async fn create_multipart(&self, bucket: &str, key: &str) -> Result<String> {
        let (sse, kms_key) = self.sse_kms(bucket);
        let out = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .set_expected_bucket_owner(self.expected_owner(bucket))
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .key(key)
            .content_type("application/vnd.apache.parquet")
            .send()
            .await
            .map_err(|e| self.err("CreateMultipartUpload", bucket, key, e))?;
        out.upload_id()
            .map(str::to_string)
            .ok_or_else(|| Error::S3 {
                operation: "CreateMultipartUpload",
                bucket: bucket.to_string(),
                key: key.to_string(),
                message: "the response carried no upload id".into(),
                retryable: false,
                source: None,
            })
    }

    /// UploadPart; returns the completed part.
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        body: Bytes,
    ) -> Result<CompletedPart> {
        let out = self
            .client
            .upload_part()
            .bucket(bucket)
            .set_expected_bucket_owner(self.expected_owner(bucket))
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.err("UploadPart", bucket, key, e))?;
        Ok(CompletedPart::builder()
            .set_e_tag(out.e_tag().map(str::to_string))
            .part_number(part_number)
            .build())
    }

    /// CompleteMultipartUpload.
    pub async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<()> {
        self.client
            .complete_multipart_upload()
            .bucket(bucket)
            .set_expected_bucket_owner(self.expected_owner(bucket))
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.err("CompleteMultipartUpload", bucket, key, e))?;
        Ok(())
    }

    /// AbortMultipartUpload. A missing upload counts as aborted.
    pub async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(bucket)
            .set_expected_bucket_owner(self.expected_owner(bucket))
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => Ok(()),
            Err(e) => Err(self.err("AbortMultipartUpload", bucket, key, e)),
        }
    }

    /// Open multipart uploads under `prefix`. Servers that do not implement
    /// ListMultipartUploads yield an empty list.
    pub async fn list_open_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<OpenUpload>> {
        let mut out = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut id_marker: Option<String> = None;
        loop {
            let resp = match self
                .client
                .list_multipart_uploads()
                .bucket(bucket)
                .set_expected_bucket_owner(self.expected_owner(bucket))
                .prefix(prefix)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await
            {
                Ok(r) => r,
                Err(SdkError::ServiceError(e))
                    if matches!(e.raw().status().as_u16(), 501 | 405)
                        || e.err().code() == Some("NotImplemented") =>
                {
                    return Ok(out);
                }
                Err(e) => return Err(self.err("ListMultipartUploads", bucket, prefix, e)),
            };
            for u in resp.uploads() {
                if let (Some(key), Some(id)) = (u.key(), u.upload_id()) {
                    out.push(OpenUpload {
                        key: key.to_string(),
                        upload_id: id.to_string(),
                        initiated_secs: u.initiated().map(|t| t.secs()).unwrap_or(0),
                    });
                }
            }
            if resp.is_truncated().unwrap_or(false) {
                key_marker = resp.next_key_marker().map(str::to_string);
                id_marker = resp.next_upload_id_marker().map(str::to_string);
                if key_marker.is_none() {
                    break;
                }
            } else {
                break;
            }
        }
        Ok(out)
    }
}

/// Turn an SDK error into a one-line [`Error::S3`].
pub(crate) fn s3_error<E>(
    operation: &'static str,
    bucket: &str,
    key: &str,
    endpoint: &str,
    e: SdkError<E, HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (message, retryable) = match &e {
        SdkError::DispatchFailure(d) => {
            let what = if d.is_timeout() {
                "timed out"
            } else if d.is_io() {
                "connection failed"
            } else {
                "could not send the request"
            };
            (
                format!(
                    "cannot reach S3 endpoint {endpoint}: {what} ({}); check the endpoint URL and network",
                    one_line(
                        &aws_smithy_types::error::display::DisplayErrorContext(&e).to_string()
                    )
                ),
                true,
            )
        }
        SdkError::TimeoutError(_) => (
            format!(
                "no answer from {endpoint} within the operation's time limit (attempt_timeout_secs / operation_timeout_secs, retries included); the server hangs or the network drops packets"
            ),
            true,
        ),
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("");
            let msg = se.err().message().unwrap_or("");
            let retryable = status >= 500
                || status == 429
                || code == "SlowDown"
                || code == "ConditionalRequestConflict";
            let hint = match (status, code) {
                (_, "NoSuchBucket") => format!("; bucket `{bucket}` does not exist at {endpoint}"),
                (403, _) => "; check the credentials and the bucket policy".to_string(),
                (500.., _) | (429, _) => {
                    "; the server kept failing after the SDK's retries".to_string()
                }
                _ => String::new(),
            };
            let detail = match (code, msg) {
                ("", "") => String::new(),
                (c, "") => format!(" {c}"),
                ("", m) => format!(": {m}"),
                (c, m) => format!(" {c}: {m}"),
            };
            (format!("HTTP {status}{detail}{hint}"), retryable)
        }
        SdkError::ResponseError(_) => (
            format!(
                "unreadable response from {endpoint}: {}",
                one_line(&aws_smithy_types::error::display::DisplayErrorContext(&e).to_string())
            ),
            true,
        ),
        _ => (
            one_line(&aws_smithy_types::error::display::DisplayErrorContext(&e).to_string()),
            false,
        ),
    };
    Error::S3 {
        operation,
        bucket: bucket.to_string(),
        key: key.to_string(),
        message,
        retryable,
        source: Some(Box::new(e)),
    }
}

/// The whole body of a GetObject response; a connection that breaks while it streams is a
/// retryable S3 error of that object.
async fn read_body(body: ByteStream, bucket: &str, key: &str) -> Result<Bytes> {
    let collected = body.collect().await.map_err(|e| Error::S3 {
        operation: "GetObject",
        bucket: bucket.to_string(),
        key: key.to_string(),
        message: format!("reading the body failed: {e}"),
        retryable: true,
        source: Some(Box::new(e)),
    })?;
    Ok(collected.into_bytes())
}
