//! Parquet files streamed to S3: an `ArrowWriter` whose output is drained into
//! multipart parts as it is produced, so a file never sits whole in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;
use arrow_schema::SchemaRef;
use aws_sdk_s3::types::CompletedPart;
use bytes::{Bytes, BytesMut};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::options::{Codec, ParquetOptions, UploadOptions};
use crate::s3::S3Store;

/// Multipart uploads open right now, so they can be aborted on failure or on a
/// hard stop even when the task that owns them is gone.
#[derive(Debug, Default)]
pub struct OpenUploads {
    open: Mutex<HashMap<(String, String), String>>,
}

impl OpenUploads {
    fn insert(&self, bucket: &str, key: &str, upload_id: &str) {
        if let Ok(mut m) = self.open.lock() {
            m.insert((bucket.to_string(), key.to_string()), upload_id.to_string());
        }
    }
    fn remove(&self, bucket: &str, key: &str) {
        if let Ok(mut m) = self.open.lock() {
            m.remove(&(bucket.to_string(), key.to_string()));
        }
    }
    /// How many uploads are open.
    pub fn len(&self) -> usize {
        self.open.lock().map(|m| m.len()).unwrap_or(0)
    }
    /// Whether none are open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Abort every open upload; returns how many were aborted.
    pub async fn abort_all(&self, store: &S3Store) -> usize {
        let open: Vec<_> = match self.open.lock() {
            Ok(mut m) => m.drain().collect(),
            Err(_) => return 0,
        };
        let mut aborted = 0;
        for ((bucket, key), id) in open {
            match store.abort_multipart(&bucket, &key, &id).await {
                Ok(()) => aborted += 1,
                Err(e) => tracing::warn!(error = %e, "could not abort multipart upload"),
            }
        }
        aborted
    }
}

/// Limits shared by every upload of a run.
#[derive(Debug, Clone)]
pub(crate) struct UploadLimits {
    pub part_bytes: usize,
    pub permits: Arc<Semaphore>,
    pub open: Arc<OpenUploads>,
}

impl UploadLimits {
    pub fn new(options: &UploadOptions, open: Arc<OpenUploads>) -> Self {
        Self {
            part_bytes: options.part_bytes,
            permits: Arc::new(Semaphore::new(options.max_parts_in_flight)),
            open,
        }
    }
}

/// One object being uploaded: a single PutObject if it stays under one part, a
/// multipart upload otherwise, with a bounded number of parts in flight.
struct ObjectUpload {
    store: S3Store,
    bucket: String,
    key: String,
    limits: UploadLimits,
    upload_id: Option<String>,
    buffer: BytesMut,
    next_part: i32,
    in_flight: JoinSet<Result<CompletedPart>>,
    parts: Vec<CompletedPart>,
    bytes: u64,
}

impl ObjectUpload {
    fn new(store: S3Store, bucket: String, key: String, limits: UploadLimits) -> Self {
        Self {
            store,
            bucket,
            key,
            limits,
            upload_id: None,
            buffer: BytesMut::new(),
            next_part: 1,
            in_flight: JoinSet::new(),
            parts: Vec::new(),
            bytes: 0,
        }
    }

    async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.bytes += data.len() as u64;
        self.buffer.extend_from_slice(data);
        while self.buffer.len() >= self.limits.part_bytes {
            let part = self.buffer.split_to(self.limits.part_bytes).freeze();
            self.send_part(part).await?;
        }
        Ok(())
    }

    async fn send_part(&mut self, part: Bytes) -> Result<()> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self.store.create_multipart(&self.bucket, &self.key).await?;
                self.limits.open.insert(&self.bucket, &self.key, &id);
                tracing::debug!(key = %self.key, "multipart upload started");
                self.upload_id = Some(id.clone());
                id
            }
        };
        // Surface failures of earlier parts before queueing more.
        while let Some(done) = self.in_flight.try_join_next() {
            self.parts.push(join_result(done)?);
        }
        let permit = self
            .limits
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("upload semaphore closed".into()))?;
        let (store, bucket, key) = (self.store.clone(), self.bucket.clone(), self.key.clone());
        let number = self.next_part;
        self.next_part += 1;
        self.in_flight.spawn(async move {
            let result = store
                .upload_part(&bucket, &key, &upload_id, number, part)
                .await;
            drop(permit);
            result
        });
        Ok(())
    }

    /// Upload what is left and make the object visible; returns its size.
    async fn finish(mut self) -> Result<u64> {
        let result = self.finish_inner().await;
        if result.is_err() {
            self.abort().await;
        }
        result.map(|()| self.bytes)
    }

    async fn finish_inner(&mut self) -> Result<()> {
        let rest = std::mem::take(&mut self.buffer).freeze();
        let Some(upload_id) = self.upload_id.clone() else {
            self.store.put(&self.bucket, &self.key, rest, false).await?;
            return Ok(());
        };
        if !rest.is_empty() {
            self.send_part(rest).await?;
        }
        while let Some(done) = self.in_flight.join_next().await {
            self.parts.push(join_result(done)?);
        }
        let mut parts = std::mem::take(&mut self.parts);
        parts.sort_by_key(|p| p.part_number());
        self.store
            .complete_multipart(&self.bucket, &self.key, &upload_id, parts)
            .await?;
        self.limits.open.remove(&self.bucket, &self.key);
        Ok(())
    }

    /// Stop everything in flight and abort the multipart upload, if any.
    async fn abort(&mut self) {
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        if let Some(id) = self.upload_id.take() {
            if let Err(e) = self
                .store
                .abort_multipart(&self.bucket, &self.key, &id)
                .await
            {
                tracing::warn!(key = %self.key, error = %e, "could not abort multipart upload");
            } else {
                tracing::debug!(key = %self.key, "aborted multipart upload");
            }
            self.limits.open.remove(&self.bucket, &self.key);
        }
    }
}

fn join_result(
    r: std::result::Result<Result<CompletedPart>, tokio::task::JoinError>,
) -> Result<CompletedPart> {
    r.map_err(|e| Error::Internal(format!("part upload task failed: {e}")))?
}

/// Writer properties for `options`.
pub(crate) fn writer_properties(options: &ParquetOptions) -> Result<WriterProperties> {
    let compression = match options.codec {
        Codec::Zstd => Compression::ZSTD(
            ZstdLevel::try_new(options.zstd_level)
                .map_err(|e| Error::Request(format!("parquet.zstd_level: {e}")))?,
        ),
        Codec::Snappy => Compression::SNAPPY,
        Codec::Lz4 => Compression::LZ4_RAW,
        Codec::None => Compression::UNCOMPRESSED,
    };
    Ok(WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(options.row_group_rows))
        .set_created_by(format!("connector-sdk {}", env!("CARGO_PKG_VERSION")))
        .build())
}

/// A Parquet file being written straight to S3.
pub(crate) struct ParquetObjectWriter {
    writer: ArrowWriter<Vec<u8>>,
    upload: ObjectUpload,
    rows: u64,
}

impl ParquetObjectWriter {
    pub fn new(
        store: S3Store,
        bucket: String,
        key: String,
        schema: SchemaRef,
        props: WriterProperties,
        limits: UploadLimits,
    ) -> Result<Self> {
        let writer =
            ArrowWriter::try_new(Vec::new(), schema, Some(props)).map_err(|e| Error::Parquet {
                what: key.clone(),
                source: e,
            })?;
        Ok(Self {
            writer,
            upload: ObjectUpload::new(store, bucket, key, limits),
            rows: 0,
        })
    }

    pub fn key(&self) -> &str {
        &self.upload.key
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Estimated size of the file if closed now: the bytes of finished row groups plus
    /// the open row group, scaled by the compressed bytes per row seen so far (the
    /// writer's own estimate of an open row group is uncompressed, so it overshoots).
    pub fn estimated_size(&self) -> u64 {
        let open_rows = self.writer.in_progress_rows() as u64;
        let flushed_rows = self.rows - open_rows;
        let written = self.upload.bytes + self.writer.inner().len() as u64;
        if flushed_rows > 0 && written > 0 {
            written + open_rows * written / flushed_rows
        } else {
            written + self.writer.in_progress_size() as u64
        }
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|e| Error::Parquet {
            what: self.upload.key.clone(),
            source: e,
        })?;
        self.rows += batch.num_rows() as u64;
        let produced = std::mem::take(self.writer.inner_mut());
        if !produced.is_empty() {
            self.upload.write(&produced).await?;
        }
        Ok(())
    }

    /// Close the file (footer), upload the rest, make it visible. Returns (rows, bytes).
    pub async fn finish(self) -> Result<(u64, u64)> {
        let Self {
            writer,
            mut upload,
            rows,
        } = self;
        let tail = match writer.into_inner() {
            Ok(t) => t,
            Err(e) => {
                upload.abort().await;
                return Err(Error::Parquet {
                    what: upload.key.clone(),
                    source: e,
                });
            }
        };
        if let Err(e) = upload.write(&tail).await {
            upload.abort().await;
            return Err(e);
        }
        let bytes = upload.finish().await?;
        Ok((rows, bytes))
    }

    /// Give up on the file: abort its multipart upload.
    pub async fn abort(mut self) {
        self.upload.abort().await;
    }
}
