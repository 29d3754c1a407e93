//! The `S3` implementation served by [`crate::LocalS3`]: `s3s_fs::FileSystem`
//! plus two additions.
//!
//! What `s3s-fs` 0.14.1 already does (read from its source):
//! - `PutObject` and `CompleteMultipartUpload` honour `If-None-Match: *` and
//!   `If-Match: <etag>` (412 `PreconditionFailed`), but as check-then-write:
//!   the existence check and the final `rename` are not atomic, so two
//!   concurrent conditional writers of the same key could both succeed.
//! - Multipart upload: Create/UploadPart/UploadPartCopy/ListParts/Complete/Abort
//!   (parts below 5 MiB except the last are rejected with `EntityTooSmall`).
//! - `ListObjectsV2` with prefix, delimiter, start-after, max-keys and
//!   continuation tokens (the token is the last key returned); `ListObjects` (v1).
//!   But it walks and reads the whole bucket for every listing (see [`crate::listing`]).
//! - `DeleteObject`, `DeleteObjects`, `CopyObject`, `HeadObject`, ranged `GetObject`,
//!   bucket create/delete/head/list/location.
//!
//! What this wrapper adds:
//! 1. Writes to one key (`PutObject`, `CompleteMultipartUpload`, `CopyObject`,
//!    `DeleteObject`) are serialised per `(bucket, key)`, and reads of its metadata
//!    (`HeadObject`, the ETags a listing fills in) wait for them, which makes the
//!    `If-None-Match: *` / `If-Match` check and the write atomic with respect
//!    to every other write that goes through this server (as on AWS, where
//!    exactly one of several racing conditional creates wins).
//! 2. `ListMultipartUploads`, which `s3s-fs` leaves `NotImplemented`, built from
//!    the files `s3s-fs` keeps for each in-progress upload in the data root.
//! 3. `DeleteBucket` on a bucket that still holds objects answers
//!    `BucketNotEmpty` (409); `s3s-fs` alone deletes the directory and every
//!    object in it.
//! 4. Object operations on a bucket that does not exist answer `NoSuchBucket`
//!    (404). `s3s-fs` alone would create the bucket directory on `PutObject`
//!    (and on `CompleteMultipartUpload`), so writes to a misspelt bucket would
//!    succeed here and fail on AWS.
//! 5. `GetObject` honours `If-Match` (412 `PreconditionFailed` when the object's ETag
//!    differs), which `s3s-fs` ignores.
//! 6. `ListObjectsV2` costs what its page holds, as on S3: [`crate::listing`] walks
//!    only the prefix's directories, in key order, and stops at the page.
//! 7. `GetObject` reads the file in 1 MiB chunks and only the range asked for (s3s-fs
//!    reads 4 KiB at a time, and a ranged read on to the file's end).
//! 8. `CompleteMultipartUpload` runs to its end whatever the client does, and answers a
//!    retry of a finished complete with the same object, as S3 does. `s3s-fs` forgets the
//!    upload id first and concatenates the parts after it, inside the request's future:
//!    a client that stopped waiting (a timeout during a long complete) dropped that future
//!    midway, and the object never appeared while its retry met a forgotten upload
//!    (`AccessDenied`) — the upload was lost. The parts are also checked before `s3s-fs`
//!    forgets the upload, so `EntityTooSmall` or a missing part leaves the upload in
//!    progress (it can be completed again or aborted, as on S3); an upload id this server
//!    never issued or has forgotten answers `NoSuchUpload` (404), not `AccessDenied`.
//!
//! Every other operation is delegated to `FileSystem` unchanged; operations
//! `FileSystem` does not implement keep the trait's `NotImplemented` default.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use s3s::dto::StreamingBlob;
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CommonPrefix,
    CompleteMultipartUploadInput, CompleteMultipartUploadOutput, CopyObjectInput, CopyObjectOutput,
    CreateBucketInput, CreateBucketOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput,
    DeleteBucketInput, DeleteBucketOutput, DeleteObjectInput, DeleteObjectOutput,
    DeleteObjectsInput, DeleteObjectsOutput, GetBucketLocationInput, GetBucketLocationOutput,
    GetObjectInput, GetObjectOutput, HeadBucketInput, HeadBucketOutput, HeadObjectInput,
    HeadObjectOutput, ListBucketsInput, ListBucketsOutput, ListMultipartUploadsInput,
    ListMultipartUploadsOutput, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input,
    ListObjectsV2Output, ListPartsInput, ListPartsOutput, MultipartUpload, Object, PutObjectInput,
    PutObjectOutput, Timestamp, UploadPartCopyInput, UploadPartCopyOutput, UploadPartInput,
    UploadPartOutput,
};
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use s3s_fs::FileSystem;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// `s3s_fs::FileSystem` with per-key write serialisation and `ListMultipartUploads`.
pub(crate) struct LocalFs {
    fs: Arc<FileSystem>,
    /// The canonical data root (the same directory `FileSystem` uses).
    root: PathBuf,
    key_locks: Arc<KeyLocks>,
    /// Multipart uploads completed lately, so a retried complete gets the same answer.
    completed_uploads: Arc<Mutex<CompletedUploads>>,
    /// Behave as a server that does not support conditional writes: `If-None-Match` on
    /// `PutObject` is ignored (the write always happens). For tests of clients that must
    /// detect such a server.
    pub(crate) ignore_if_none_match: Arc<std::sync::atomic::AtomicBool>,
    /// Behave as an S3 whose memory of a completed upload has lapsed: a retried
    /// `CompleteMultipartUpload` answers `NoSuchUpload` instead of the object. For testing
    /// clients that must recover from that answer.
    pub(crate) forget_completed_uploads: Arc<std::sync::atomic::AtomicBool>,
}

impl fmt::Debug for LocalFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalFs")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl LocalFs {
    pub(crate) fn new(fs: FileSystem, root: PathBuf) -> Self {
        Self {
            fs: Arc::new(fs),
            root,
            key_locks: Arc::default(),
            completed_uploads: Arc::default(),
            ignore_if_none_match: Arc::default(),
            forget_completed_uploads: Arc::default(),
        }
    }

    /// `NoSuchBucket` unless the bucket directory exists. `s3s-fs` does not
    /// check this for object operations: its `PutObject` would silently
    /// create the bucket directory, and reads answer `NoSuchKey`.
    fn ensure_bucket(&self, bucket: &str) -> S3Result<()> {
        // s3s has validated the bucket name (no `/`, no `..`) before we get here.
        if self.root.join(bucket).is_dir() {
            Ok(())
        } else {
            Err(s3_error!(
                NoSuchBucket,
                "The specified bucket does not exist"
            ))
        }
    }
}

impl LocalFs {
    /// `ListObjectsV2` by [`crate::listing`] (in key order, bounded by the page), or
    /// `None` for a request it leaves to `s3s-fs`.
    async fn list_in_order(
        &self,
        input: &ListObjectsV2Input,
    ) -> S3Result<Option<ListObjectsV2Output>> {
        self.ensure_bucket(&input.bucket)?;
        let bucket_root = self.root.join(&input.bucket);
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone();
        // Like `s3s-fs`: the continuation token is the last key or prefix returned, and
        // the listing resumes after the later of it and the start-after key.
        let start_after = match (
            input.continuation_token.as_deref(),
            input.start_after.as_deref(),
        ) {
            (Some(t), Some(s)) => Some(t.max(s).to_owned()),
            (t, s) => t.or(s).map(str::to_owned),
        };
        let max_keys = input.max_keys.unwrap_or(1000);
        let limit = usize::try_from(max_keys).unwrap_or(0);
        let page = tokio::task::spawn_blocking(move || {
            crate::listing::list(
                &bucket_root,
                &prefix,
                delimiter.as_deref(),
                start_after.as_deref(),
                limit,
            )
        })
        .await
        .map_err(|e| s3_error!(InternalError, "listing task failed: {e}"))?;
        let Some(page) = page else {
            return Ok(None);
        };
        let page = page.map_err(|e| s3_error!(InternalError, "listing failed: {e}"))?;
        let key_count = page.objects.len() + page.common_prefixes.len();
        let contents: Vec<Object> = page
            .objects
            .into_iter()
            .map(|o| Object {
                key: Some(o.key),
                last_modified: Some(Timestamp::from(o.modified)),
                size: Some(i64::try_from(o.size).unwrap_or(i64::MAX)),
                ..Default::default()
            })
            .collect();
        let common_prefixes: Vec<CommonPrefix> = page
            .common_prefixes
            .into_iter()
            .map(|p| CommonPrefix { prefix: Some(p) })
            .collect();
        Ok(Some(ListObjectsV2Output {
            key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
            max_keys: Some(max_keys),
            is_truncated: Some(page.truncated),
            contents: (!contents.is_empty()).then_some(contents),
            common_prefixes: (!common_prefixes.is_empty()).then_some(common_prefixes),
            continuation_token: input.continuation_token.clone(),
            next_continuation_token: if page.truncated { page.last } else { None },
            delimiter: input.delimiter.clone(),
            encoding_type: input.encoding_type.clone(),
            name: Some(input.bucket.clone()),
            prefix: input.prefix.clone(),
            start_after: input.start_after.clone(),
            ..Default::default()
        }))
    }
}

impl LocalFs {
    /// The body of a GET whose headers s3s-fs has answered, read in 1 MiB chunks and only
    /// the range asked for. s3s-fs streams the file in 4 KiB reads, each one a hop
    /// through tokio's blocking pool, and a ranged read goes on reading (and dropping)
    /// the file up to its end: serving ranges of a large object cost the server more CPU
    /// than decoding them cost the client. `None` for a key that is no plain path (its
    /// body stays s3s-fs's).
    async fn object_body(
        &self,
        bucket: &str,
        key: &str,
        output: &GetObjectOutput,
    ) -> S3Result<Option<StreamingBlob>> {
        if key.starts_with('/')
            || key
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Ok(None);
        }
        let length = u64::try_from(output.content_length.unwrap_or(0)).unwrap_or(0);
        // s3s-fs writes `bytes <first>-<last>/<size>` for a range.
        let start = match output.content_range.as_deref() {
            None => 0,
            Some(range) => match range
                .strip_prefix("bytes ")
                .and_then(|r| r.split_once('-'))
                .and_then(|(first, _)| first.parse::<u64>().ok())
            {
                Some(first) => first,
                None => return Ok(None),
            },
        };
        let path = self.root.join(bucket).join(key);
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| s3_error!(InternalError, "opening {key}: {e}"))?;
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| s3_error!(InternalError, "seeking {key}: {e}"))?;
        let chunks = tokio_util::io::ReaderStream::with_capacity(file.take(length), 1 << 20);
        Ok(Some(StreamingBlob::wrap(chunks)))
    }
}

/// The write lock of one object.
type KeyLock = Arc<tokio::sync::Mutex<()>>;

/// One async mutex per `(bucket, key)` currently being written.
#[derive(Default)]
struct KeyLocks {
    map: Mutex<HashMap<(String, String), KeyLock>>,
}

impl KeyLocks {
    /// Runs `f` while holding the lock of `(bucket, key)`.
    async fn with_lock<T, F>(&self, bucket: &str, key: &str, f: F) -> T
    where
        F: Future<Output = T>,
    {
        let id = (bucket.to_owned(), key.to_owned());
        let lock = {
            let mut map = self
                .map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(map.entry(id.clone()).or_default())
        };
        let out = {
            let _guard = lock.lock().await;
            f.await
        };
        // Forget the entry when nobody else holds or waits for it.
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if Arc::strong_count(&lock) == 2 {
            map.remove(&id);
        }
        out
    }
}

/// An upload that completed: what a retry of its complete is answered with.
struct CompletedUpload {
    upload_id: String,
    bucket: String,
    key: String,
    e_tag: s3s::dto::ETag,
}

/// The last [`CompletedUploads::KEPT`] completed uploads, oldest first. (S3 answers a
/// retried complete for a while after it finished; a bounded memory serves a test server.)
#[derive(Default)]
struct CompletedUploads {
    uploads: std::collections::VecDeque<CompletedUpload>,
}

impl CompletedUploads {
    const KEPT: usize = 4096;

    fn find(&self, upload_id: &str) -> Option<&CompletedUpload> {
        self.uploads.iter().find(|u| u.upload_id == upload_id)
    }

    fn remember(&mut self, upload: CompletedUpload) {
        if self.uploads.len() == Self::KEPT {
            self.uploads.pop_front();
        }
        self.uploads.push_back(upload);
    }
}

/// The answer to a complete of `upload`, first or retried.
fn completed_output(upload: &CompletedUpload) -> CompleteMultipartUploadOutput {
    CompleteMultipartUploadOutput {
        bucket: Some(upload.bucket.clone()),
        key: Some(upload.key.clone()),
        e_tag: Some(upload.e_tag.clone()),
        ..Default::default()
    }
}

/// Checks a complete's part list against the parts on disk before `s3s-fs` forgets the
/// upload (it checks them only while concatenating, after that): numbers 1, 2, 3, … in
/// order (`s3s-fs` accepts no gaps), each part present, every part but the last at least
/// 5 MiB.
fn check_parts_to_complete(
    root: &Path,
    upload_id: &str,
    parts: &[s3s::dto::CompletedPart],
) -> S3Result<()> {
    if parts.is_empty() {
        return Err(s3_error!(InvalidPart, "You must specify at least one part"));
    }
    for (i, part) in parts.iter().enumerate() {
        let number = part
            .part_number
            .ok_or_else(|| s3_error!(InvalidRequest, "missing part number"))?;
        if usize::try_from(number).ok() != Some(i + 1) {
            return Err(s3_error!(
                InvalidPartOrder,
                "part {number} is listed at place {}: list the parts 1, 2, 3, ... in order",
                i + 1
            ));
        }
        let path = upload_part_path(root, upload_id, number);
        let size = match std::fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(s3_error!(InvalidPart, "part {number} was not uploaded"));
            }
            Err(e) => return Err(s3_error!(e, InternalError)),
        };
        if i + 1 < parts.len() && size < 5 * 1024 * 1024 {
            return Err(s3_error!(
                EntityTooSmall,
                "part {number} is {size} bytes: every part but the last must be at least 5 MiB"
            ));
        }
    }
    Ok(())
}

/// The file `s3s-fs` keeps while upload `upload_id` is in progress (deleted on complete
/// and abort).
fn upload_info_path(root: &Path, upload_id: &str) -> PathBuf {
    root.join(format!(".upload-{upload_id}.json"))
}

/// The file `s3s-fs` keeps part `number` of upload `upload_id` in.
fn upload_part_path(root: &Path, upload_id: &str, number: i32) -> PathBuf {
    root.join(format!(".upload_id-{upload_id}.part-{number}"))
}

/// Whether `s` looks like the UUIDs `s3s-fs` issues as upload ids (hex and `-` only).
fn uuid_shaped(s: &str) -> bool {
    s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Decodes unpadded URL-safe base64 (the encoding `s3s-fs` uses in its
/// metadata file names). Returns `None` on any invalid input.
fn decode_base64_url(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'-' => Some(62),
            b'_' => Some(63),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc: u32 = 0;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let [_, b0, b1, b2] = acc.to_be_bytes();
        out.push(b0);
        if chunk.len() > 2 {
            out.push(b1);
        }
        if chunk.len() > 3 {
            out.push(b2);
        }
    }
    Some(out)
}

/// Whether `dir` or any directory below it holds a file (an object; empty
/// directories are left behind by deletes of `a/b`-style keys).
fn contains_file(dir: &Path) -> std::io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            if contains_file(&entry.path())? {
                return Ok(true);
            }
        } else {
            return Ok(true);
        }
    }
    Ok(false)
}

/// An in-progress multipart upload found in the data root.
struct PendingUpload {
    key: String,
    upload_id: String,
    initiated: Option<Timestamp>,
}

/// Parses `.bucket-{b64 bucket}.object-{b64 key}.upload-{uuid}.metadata.json`.
fn parse_upload_metadata_name(name: &str) -> Option<(String, String, String)> {
    let rest = name
        .strip_prefix(".bucket-")?
        .strip_suffix(".metadata.json")?;
    let (bucket_b64, rest) = rest.split_once(".object-")?;
    let (key_b64, upload_id) = rest.split_once(".upload-")?;
    let bucket = String::from_utf8(decode_base64_url(bucket_b64)?).ok()?;
    let key = String::from_utf8(decode_base64_url(key_b64)?).ok()?;
    Some((bucket, key, upload_id.to_owned()))
}

async fn scan_pending_uploads(root: &Path, bucket: &str) -> std::io::Result<Vec<PendingUpload>> {
    let mut uploads = Vec::new();
    let mut dir = tokio::fs::read_dir(root).await?;
    while let Some(entry) = dir.next_entry().await? {
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        let Some((b, key, upload_id)) = parse_upload_metadata_name(name) else {
            continue;
        };
        if b != bucket {
            continue;
        }
        // `s3s-fs` deletes `.upload-{id}.json` on complete and abort: only
        // uploads that still have it are in progress.
        if !upload_info_path(root, &upload_id).exists() {
            continue;
        }
        let initiated = entry
            .metadata()
            .await
            .ok()
            .and_then(|m| m.modified().ok())
            .map(Timestamp::from);
        uploads.push(PendingUpload {
            key,
            upload_id,
            initiated,
        });
    }
    Ok(uploads)
}

#[async_trait::async_trait]
impl S3 for LocalFs {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.ensure_bucket(&req.input.bucket)?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        self.key_locks
            .with_lock(&bucket, &key, self.fs.copy_object(req))
            .await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        // s3s-fs removes the directory recursively, objects and all.
        let dir = self.root.join(&req.input.bucket);
        if dir.is_dir() && contains_file(&dir).map_err(s3s::S3Error::internal_error)? {
            return Err(s3_error!(
                BucketNotEmpty,
                "The bucket you tried to delete is not empty"
            ));
        }
        self.fs.delete_bucket(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.ensure_bucket(&req.input.bucket)?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        self.key_locks
            .with_lock(&bucket, &key, self.fs.delete_object(req))
            .await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.ensure_bucket(&req.input.bucket)?;
        self.fs.delete_objects(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.fs.get_bucket_location(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.ensure_bucket(&req.input.bucket)?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let condition = req.input.if_match.clone();
        let head = head_request(&req, &bucket, &key)?;
        // The If-Match check, s3s-fs's open and ours happen under the key's write lock, so
        // a write cannot land between them (s3s-fs renames the new file in before it
        // stores its ETag): the body is the version the headers describe.
        self.key_locks
            .with_lock(&bucket, &key, async {
                // S3 answers a GET whose If-Match names another version 412, before
                // looking at the range; s3s-fs ignores the header and would serve the
                // current object.
                if let Some(condition) = &condition {
                    let current = self.fs.head_object(head).await?.output.e_tag;
                    let matches = match (condition, &current) {
                        (s3s::dto::ETagCondition::Any, _) => true,
                        (s3s::dto::ETagCondition::ETag(want), Some(have)) => have.strong_cmp(want),
                        (s3s::dto::ETagCondition::ETag(_), None) => false,
                    };
                    if !matches {
                        return Err(s3_error!(
                            PreconditionFailed,
                            "At least one of the pre-conditions you specified did not hold"
                        ));
                    }
                }
                let mut response = self.fs.get_object(req).await?;
                if let Some(body) = self.object_body(&bucket, &key, &response.output).await? {
                    response.output.body = Some(body);
                }
                Ok(response)
            })
            .await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.ensure_bucket(&req.input.bucket)?;
        // Under the key's write lock: s3s-fs moves a completed object into place before it
        // saves its multipart ETag, and a HEAD in between would answer a plain MD5 instead.
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        self.key_locks
            .with_lock(&bucket, &key, self.fs.head_object(req))
            .await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.fs.list_buckets(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.fs.list_objects(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let bucket = req.input.bucket.clone();
        let template = S3Request {
            input: (),
            method: hyper::Method::HEAD,
            uri: req.uri.clone(),
            headers: Default::default(),
            extensions: Default::default(),
            credentials: req.credentials.clone(),
            region: req.region.clone(),
            service: req.service.clone(),
            trailing_headers: None,
        };
        let mut response = match self.list_in_order(&req.input).await? {
            Some(output) => S3Response::new(output),
            None => self.fs.list_objects_v2(req).await?,
        };
        // S3 lists every object's ETag; s3s-fs leaves it out. Fill it in from the object's
        // own metadata (HEAD through s3s-fs), so clients that track versions by listing
        // (the file connector's "each version once") see what they would on S3.
        if let Some(contents) = response.output.contents.as_mut() {
            for object in contents.iter_mut() {
                let Some(key) = object.key.clone() else {
                    continue;
                };
                let head = head_request(&template, &bucket, &key)?;
                // Under the key's lock, as `head_object`: never an ETag of a write midway.
                let head = self
                    .key_locks
                    .with_lock(&bucket, &key, self.fs.head_object(head))
                    .await;
                if let Ok(h) = head {
                    object.e_tag = h.output.e_tag;
                }
            }
        }
        Ok(response)
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.ensure_bucket(&req.input.bucket)?;
        let mut req = req;
        if self
            .ignore_if_none_match
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            req.input.if_none_match = None;
        }
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        self.key_locks
            .with_lock(&bucket, &key, self.fs.put_object(req))
            .await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.ensure_bucket(&req.input.bucket)?;
        self.fs.create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.ensure_bucket(&req.input.bucket)?;
        self.fs.upload_part(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.ensure_bucket(&req.input.bucket)?;
        self.fs.upload_part_copy(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.ensure_bucket(&req.input.bucket)?;
        self.fs.list_parts(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.ensure_bucket(&req.input.bucket)?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let upload_id = req.input.upload_id.clone();
        let (fs, key_locks, completed) = (
            Arc::clone(&self.fs),
            Arc::clone(&self.key_locks),
            Arc::clone(&self.completed_uploads),
        );
        let root = self.root.clone();
        let forget = self
            .forget_completed_uploads
            .load(std::sync::atomic::Ordering::Relaxed);
        // Spawned, so that a client that stops waiting cannot stop it midway (see 8. above).
        let complete = tokio::spawn(async move {
            key_locks
                .with_lock(&bucket, &key, async {
                    let done = completed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .find(&upload_id)
                        .filter(|u| !forget && u.bucket == bucket && u.key == key)
                        .map(completed_output);
                    if let Some(output) = done {
                        return Ok(S3Response::new(output));
                    }
                    // The upload id is a UUID: no path can be smuggled through it.
                    if uuid_shaped(&upload_id)
                        .then(|| upload_info_path(&root, &upload_id))
                        .is_none_or(|info| !info.exists())
                    {
                        return Err(s3_error!(
                            NoSuchUpload,
                            "no multipart upload {upload_id} is in progress for {key}"
                        ));
                    }
                    let parts = req
                        .input
                        .multipart_upload
                        .as_ref()
                        .and_then(|m| m.parts.as_deref())
                        .unwrap_or_default();
                    check_parts_to_complete(&root, &upload_id, parts)?;
                    let mut response = fs.complete_multipart_upload(req).await?;
                    // `s3s-fs` leaves its answer in a future, for s3s to await while it
                    // sends keep-alive whitespace; awaited here, inside the spawned task.
                    if let Some(answer) = response.output.future.take() {
                        response.output = answer.await?;
                    }
                    let e_tag = response
                        .output
                        .e_tag
                        .clone()
                        .ok_or_else(|| s3_error!(InternalError, "the complete gave no ETag"))?;
                    completed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remember(CompletedUpload {
                            upload_id: upload_id.clone(),
                            bucket: bucket.clone(),
                            key: key.clone(),
                            e_tag,
                        });
                    Ok(response)
                })
                .await
        });
        complete
            .await
            .map_err(|e| s3_error!(InternalError, "the multipart complete task failed: {e}"))?
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.ensure_bucket(&req.input.bucket)?;
        self.fs.abort_multipart_upload(req).await
    }

    /// Not in `s3s-fs`: lists uploads still in progress, sorted by key then
    /// upload id, with prefix, delimiter, key/upload-id markers and max-uploads.
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        self.ensure_bucket(&input.bucket)?;
        let mut uploads = scan_pending_uploads(&self.root, &input.bucket)
            .await
            .map_err(s3s::S3Error::internal_error)?;
        let prefix = input.prefix.as_deref().unwrap_or("");
        uploads.retain(|u| u.key.starts_with(prefix));
        uploads.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));

        if let Some(key_marker) = input.key_marker.as_deref().filter(|m| !m.is_empty()) {
            match input.upload_id_marker.as_deref().filter(|m| !m.is_empty()) {
                Some(id_marker) => {
                    uploads.retain(|u| {
                        (u.key.as_str(), u.upload_id.as_str()) > (key_marker, id_marker)
                    });
                }
                None => uploads.retain(|u| u.key.as_str() > key_marker),
            }
        }

        let max_uploads =
            usize::try_from(input.max_uploads.unwrap_or(1000).clamp(0, 1000)).unwrap_or(1000);
        let delimiter = input.delimiter.as_deref().filter(|d| !d.is_empty());

        let mut listed: Vec<MultipartUpload> = Vec::new();
        let mut common_prefixes: BTreeSet<String> = BTreeSet::new();
        let mut last: Option<(String, String)> = None;
        let mut is_truncated = false;
        for u in uploads {
            let rolled_up = delimiter.and_then(|d| {
                let rest = &u.key[prefix.len()..];
                rest.find(d)
                    .map(|pos| format!("{prefix}{}", &rest[..pos + d.len()]))
            });
            let is_new_entry = rolled_up
                .as_ref()
                .is_none_or(|cp| !common_prefixes.contains(cp));
            if is_new_entry && listed.len() + common_prefixes.len() >= max_uploads {
                is_truncated = true;
                break;
            }
            last = Some((u.key.clone(), u.upload_id.clone()));
            match rolled_up {
                Some(cp) => {
                    common_prefixes.insert(cp);
                }
                None => listed.push(MultipartUpload {
                    key: Some(u.key),
                    upload_id: Some(u.upload_id),
                    initiated: u.initiated,
                    ..Default::default()
                }),
            }
        }

        let (next_key_marker, next_upload_id_marker) = match (is_truncated, last) {
            (true, Some((k, id))) => (Some(k), Some(id)),
            _ => (None, None),
        };
        let output = ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            delimiter: input.delimiter,
            encoding_type: input.encoding_type,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(i32::try_from(max_uploads).unwrap_or(1000)),
            is_truncated: Some(is_truncated),
            next_key_marker,
            next_upload_id_marker,
            uploads: Some(listed),
            common_prefixes: (!common_prefixes.is_empty()).then(|| {
                common_prefixes
                    .into_iter()
                    .map(|p| CommonPrefix { prefix: Some(p) })
                    .collect()
            }),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }
}

/// A `HeadObject` request for `bucket`/`key` with `like`'s URI, credentials, region and
/// service (what s3s-fs needs to serve it from inside another operation).
fn head_request<T>(
    like: &S3Request<T>,
    bucket: &str,
    key: &str,
) -> S3Result<S3Request<HeadObjectInput>> {
    let input = HeadObjectInput::builder()
        .bucket(bucket.to_owned())
        .key(key.to_owned())
        .build()
        .map_err(|e| s3_error!(InternalError, "{e}"))?;
    Ok(S3Request {
        input,
        method: hyper::Method::HEAD,
        uri: like.uri.clone(),
        headers: Default::default(),
        extensions: Default::default(),
        credentials: like.credentials.clone(),
        region: like.region.clone(),
        service: like.service.clone(),
        trailing_headers: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_url_round_trips_known_values() {
        assert_eq!(decode_base64_url("").unwrap(), b"");
        assert_eq!(decode_base64_url("Zg").unwrap(), b"f");
        assert_eq!(decode_base64_url("Zm8").unwrap(), b"fo");
        assert_eq!(decode_base64_url("Zm9v").unwrap(), b"foo");
        assert_eq!(decode_base64_url("Zm9vYg").unwrap(), b"foob");
        assert_eq!(decode_base64_url("_-8").unwrap(), [0xff, 0xef]);
        assert!(decode_base64_url("Z").is_none());
        assert!(decode_base64_url("Zm9v=").is_none());
    }

    #[test]
    fn parses_upload_metadata_file_names() {
        // "bucket" and "a/b/c" in unpadded URL-safe base64, as s3s-fs names them.
        let name = ".bucket-YnVja2V0.object-YS9iL2M.upload-1234.metadata.json";
        let (b, k, id) = parse_upload_metadata_name(name).unwrap();
        assert_eq!(
            (b.as_str(), k.as_str(), id.as_str()),
            ("bucket", "a/b/c", "1234")
        );
        assert!(
            parse_upload_metadata_name(".bucket-YnVja2V0.object-YS9iL2M.metadata.json").is_none()
        );
        assert!(parse_upload_metadata_name(".upload-1234.json").is_none());
    }
}
