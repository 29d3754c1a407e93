//! The Delta kernel's storage, backed by our own S3 client.
//!
//! The kernel's default engine reads and writes through an `object_store::ObjectStore`.
//! `object_store` has its own S3 client and credential chain; using it would give every
//! binary two clients, two credential chains and two retry policies. This adapter puts
//! the `ObjectStore` trait over [`S3Store`] (aws-sdk-s3) instead, bound to one bucket:
//! the kernel's paths are keys in that bucket.
//!
//! Every S3 request runs on the runtime that created the adapter (`Handle::spawn`): the
//! kernel drives its futures on its own executor thread, and the SDK's connection pool
//! belongs to the caller's runtime.

use std::fmt;
use std::ops::Range;

use aws_sdk_s3::error::SdkError;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use object_store::path::Path;
use object_store::{
    Attributes, CopyMode, CopyOptions, Extensions, GetOptions, GetRange, GetResult,
    GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use tokio::runtime::Handle;

use crate::error::Error;
use crate::s3::S3Store;

const STORE: &str = "S3";

/// `ObjectStore` over one bucket of an [`S3Store`].
#[derive(Debug, Clone)]
pub struct BucketStore {
    store: S3Store,
    bucket: String,
    runtime: Handle,
}

impl BucketStore {
    /// The adapter for `bucket`, on the current Tokio runtime (S3 requests run on it);
    /// an error outside one.
    pub fn new(store: S3Store, bucket: impl Into<String>) -> crate::error::Result<Self> {
        let runtime = Handle::try_current()
            .map_err(|_| Error::internal("a Delta table was opened outside a Tokio runtime"))?;
        Ok(Self {
            store,
            bucket: bucket.into(),
            runtime,
        })
    }

    /// Run `f` on the owning runtime and wait for it.
    async fn on_runtime<T, F>(&self, f: F) -> object_store::Result<T>
    where
        F: Future<Output = object_store::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.runtime
            .spawn(f)
            .await
            .map_err(|e| object_store::Error::Generic {
                store: STORE,
                source: Box::new(e),
            })?
    }
}

impl BucketStore {
    /// The objects under `prefix` (a directory: `prefix/`), after `start_after` if given.
    fn listed(
        &self,
        prefix: Option<&Path>,
        start_after: Option<String>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let this = self.clone();
        let prefix = prefix.map(|p| format!("{p}/")).unwrap_or_default();
        stream::once(async move {
            let (store, bucket) = (this.store.clone(), this.bucket.clone());
            this.on_runtime(async move {
                store
                    .list_after(&bucket, &prefix, start_after.as_deref(), None)
                    .await
                    .map_err(generic)
            })
            .await
        })
        .map(|listed| match listed {
            Ok(objects) => stream::iter(
                objects
                    .into_iter()
                    .map(|o| Ok(meta(&o.key, o.size, o.last_modified_secs, None))),
            )
            .boxed(),
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        })
        .flatten()
        .boxed()
    }
}

impl fmt::Display for BucketStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{} at {}", self.bucket, self.store.endpoint())
    }
}

/// Our error, kept whole as the source so the caller can recover it (its category and
/// retryability) from the kernel's error.
fn generic(e: Error) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(e),
    }
}

fn not_found(path: &str) -> object_store::Error {
    object_store::Error::NotFound {
        path: path.to_string(),
        source: format!("no object at {path}").into(),
    }
}

fn meta(key: &str, size: u64, modified_secs: i64, e_tag: Option<String>) -> ObjectMeta {
    ObjectMeta {
        location: Path::from(key),
        last_modified: DateTime::<Utc>::from_timestamp(modified_secs, 0).unwrap_or_default(),
        size,
        e_tag,
        version: None,
    }
}

/// `bytes=a-b` for an S3 Range header.
fn range_header(range: &GetRange) -> String {
    match range {
        GetRange::Bounded(r) => format!("bytes={}-{}", r.start, r.end.saturating_sub(1)),
        GetRange::Offset(o) => format!("bytes={o}-"),
        GetRange::Suffix(n) => format!("bytes=-{n}"),
    }
}

/// The byte range a `Content-Range: bytes a-b/total` header names, and the total.
fn content_range(header: Option<&str>, len: u64) -> (Range<u64>, Option<u64>) {
    let parsed = header.and_then(|h| {
        let rest = h.strip_prefix("bytes ")?;
        let (span, total) = rest.split_once('/')?;
        let (a, b) = span.split_once('-')?;
        Some((
            a.parse::<u64>().ok()?,
            b.parse::<u64>().ok()?,
            total.parse().ok(),
        ))
    });
    match parsed {
        Some((a, b, total)) => (a..b + 1, total),
        None => (0..len, Some(len)),
    }
}

#[async_trait::async_trait]
impl ObjectStore for BucketStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let if_absent = match opts.mode {
            PutMode::Overwrite => false,
            PutMode::Create => true,
            PutMode::Update(_) => {
                return Err(object_store::Error::NotImplemented {
                    operation: "put with PutMode::Update".into(),
                    implementer: "BucketStore".into(),
                });
            }
        };
        let (store, bucket, key) = (
            self.store.clone(),
            self.bucket.clone(),
            location.to_string(),
        );
        let body = Bytes::from(payload);
        self.on_runtime(async move {
            if store
                .put(&bucket, &key, body, if_absent)
                .await
                .map_err(generic)?
            {
                Ok(PutResult {
                    e_tag: None,
                    version: None,
                    extensions: Extensions::default(),
                })
            } else {
                Err(object_store::Error::AlreadyExists {
                    path: key.clone(),
                    source: format!("{key} exists (If-None-Match: *)").into(),
                })
            }
        })
        .await
    }

    async fn put_multipart_opts(
        &self,
        _location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        // The kernel writes only log entries and checkpoints through this store, each one
        // PUT; data files go through the core's own multipart writer.
        Err(object_store::Error::NotImplemented {
            operation: "put_multipart".into(),
            implementer: "BucketStore".into(),
        })
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let (store, bucket, key) = (
            self.store.clone(),
            self.bucket.clone(),
            location.to_string(),
        );
        self.on_runtime(async move {
            if options.head {
                let out = store
                    .client()
                    .head_object()
                    .bucket(&bucket)
                    .set_expected_bucket_owner(store.expected_owner(&bucket))
                    .key(&key)
                    .send()
                    .await;
                return match out {
                    Ok(out) => {
                        let size = out.content_length().unwrap_or(0).max(0) as u64;
                        let modified = out.last_modified().map(|t| t.secs()).unwrap_or(0);
                        Ok(GetResult {
                            payload: GetResultPayload::Stream(stream::empty().boxed()),
                            meta: meta(&key, size, modified, out.e_tag().map(str::to_string)),
                            range: 0..size,
                            attributes: Attributes::default(),
                            extensions: Extensions::default(),
                        })
                    }
                    Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => {
                        Err(not_found(&key))
                    }
                    Err(e) => Err(generic(crate::s3::s3_error(
                        "HeadObject",
                        &bucket,
                        &key,
                        store.endpoint(),
                        e,
                    ))),
                };
            }
            let mut req = store
                .client()
                .get_object()
                .bucket(&bucket)
                .set_expected_bucket_owner(store.expected_owner(&bucket))
                .key(&key);
            if let Some(r) = &options.range {
                req = req.range(range_header(r));
            }
            let out = match req.send().await {
                Ok(out) => out,
                Err(SdkError::ServiceError(e))
                    if e.err().is_no_such_key() || e.raw().status().as_u16() == 404 =>
                {
                    return Err(not_found(&key));
                }
                Err(e) => {
                    return Err(generic(crate::s3::s3_error(
                        "GetObject",
                        &bucket,
                        &key,
                        store.endpoint(),
                        e,
                    )));
                }
            };
            let modified = out.last_modified().map(|t| t.secs()).unwrap_or(0);
            let e_tag = out.e_tag().map(str::to_string);
            let header = out.content_range().map(str::to_string);
            let body = out
                .body
                .collect()
                .await
                .map_err(|e| {
                    generic(Error::S3 {
                        operation: "GetObject",
                        bucket: bucket.clone(),
                        key: key.clone(),
                        message: format!("reading the body failed: {e}"),
                        retryable: true,
                        source: Some(Box::new(e)),
                    })
                })?
                .into_bytes();
            let (range, total) = content_range(header.as_deref(), body.len() as u64);
            let size = total.unwrap_or(range.end);
            Ok(GetResult {
                payload: GetResultPayload::Stream(stream::once(async move { Ok(body) }).boxed()),
                meta: meta(&key, size, modified, e_tag),
                range,
                attributes: Attributes::default(),
                extensions: Extensions::default(),
            })
        })
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let this = self.clone();
        locations
            .then(move |path| {
                let this = this.clone();
                async move {
                    let path = path?;
                    let (store, bucket, key) =
                        (this.store.clone(), this.bucket.clone(), path.to_string());
                    this.on_runtime(async move {
                        store.delete(&bucket, &key).await.map_err(generic)?;
                        Ok(path)
                    })
                    .await
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.listed(prefix, None)
    }

    /// Natively, with S3's `StartAfter`: the kernel lists the log from its last checkpoint,
    /// and the default (list everything, then filter) would grow with the log.
    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.listed(prefix, Some(offset.to_string()))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let base = prefix.map(|p| format!("{p}/")).unwrap_or_default();
        let (store, bucket, listed_prefix) =
            (self.store.clone(), self.bucket.clone(), base.clone());
        let objects = self
            .on_runtime(async move { store.list(&bucket, &listed_prefix).await.map_err(generic) })
            .await?;
        let mut common_prefixes = std::collections::BTreeSet::new();
        let mut direct = Vec::new();
        for o in objects {
            let rest = &o.key[base.len()..];
            match rest.split_once('/') {
                Some((dir, _)) => {
                    common_prefixes.insert(format!("{base}{dir}"));
                }
                None => direct.push(meta(&o.key, o.size, o.last_modified_secs, None)),
            }
        }
        Ok(ListResult {
            common_prefixes: common_prefixes.into_iter().map(Path::from).collect(),
            objects: direct,
            extensions: Extensions::default(),
        })
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let (store, bucket) = (self.store.clone(), self.bucket.clone());
        let (from, to) = (from.to_string(), to.to_string());
        let if_absent = matches!(options.mode, CopyMode::Create);
        self.on_runtime(async move {
            let body = store
                .get(&bucket, &from)
                .await
                .map_err(generic)?
                .ok_or_else(|| not_found(&from))?;
            if store
                .put(&bucket, &to, body, if_absent)
                .await
                .map_err(generic)?
            {
                Ok(())
            } else {
                Err(object_store::Error::AlreadyExists {
                    path: to.clone(),
                    source: format!("{to} exists").into(),
                })
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_become_headers_and_back() {
        assert_eq!(range_header(&GetRange::Bounded(0..10)), "bytes=0-9");
        assert_eq!(range_header(&GetRange::Offset(7)), "bytes=7-");
        assert_eq!(range_header(&GetRange::Suffix(8)), "bytes=-8");
        assert_eq!(content_range(Some("bytes 5-9/20"), 5), (5..10, Some(20)));
        assert_eq!(content_range(None, 12), (0..12, Some(12)));
        assert_eq!(content_range(Some("garbage"), 3), (0..3, Some(3)));
    }
}
