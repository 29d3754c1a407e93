//! Parquet files streamed to S3: an `ArrowWriter` whose output is drained into
//! multipart parts as it is produced, so a file never sits whole in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use arrow_schema::SchemaRef;
use aws_sdk_s3::types::CompletedPart;
use bytes::Bytes;
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, Encoding, Type as PhysicalType, ZstdLevel};
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::options::{Codec, Dictionary, ExtractOptions, ParquetOptions};
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
    /// Abort every open upload, all at once (a shutdown has a budget of milliseconds, and
    /// a run may hold one upload per partition); returns how many were aborted.
    pub async fn abort_all(&self, store: &S3Store) -> usize {
        let open: Vec<_> = match self.open.lock() {
            Ok(mut m) => m.drain().collect(),
            Err(_) => return 0,
        };
        let aborts = open.iter().map(|((bucket, key), id)| async move {
            match store.abort_multipart(bucket, key, id).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "could not abort multipart upload");
                    false
                }
            }
        });
        futures::future::join_all(aborts)
            .await
            .into_iter()
            .filter(|aborted| *aborted)
            .count()
    }
}

/// Limits shared by every upload of a run. A part buffer takes a permit when it starts
/// filling and gives it back when its upload has finished, so the bytes held in part
/// buffers never exceed `permits × part_bytes`. No deadlock for any number of permits: a
/// writer holds at most one filling buffer, and an uploading part needs nothing else to
/// finish and free its permit.
///
/// Buffers are reused: one freed after its upload goes back to `free` for the next part.
/// (Allocating a fresh 8 MiB buffer per part and freeing it on another thread than the
/// one that filled it left glibc's arenas holding the freed blocks: peak RSS grew with the
/// number of parts written.)
#[derive(Clone)]
pub(crate) struct UploadLimits {
    pub part_bytes: usize,
    permits: Arc<Semaphore>,
    free: Arc<Mutex<Vec<Vec<u8>>>>,
    pub open: Arc<OpenUploads>,
}

impl std::fmt::Debug for UploadLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadLimits")
            .field("part_bytes", &self.part_bytes)
            .field("free_permits", &self.permits.available_permits())
            .field("open_uploads", &self.open.len())
            .finish_non_exhaustive()
    }
}

impl UploadLimits {
    pub fn new(options: &ExtractOptions, open: Arc<OpenUploads>) -> Self {
        Self {
            part_bytes: options.upload.part_bytes,
            permits: Arc::new(Semaphore::new(options.buffered_parts())),
            free: Arc::default(),
            open,
        }
    }

    /// An empty part buffer of `part_bytes` capacity, once a permit is free.
    async fn take_buffer(&self) -> Result<PartBuffer> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::internal("upload semaphore closed"))?;
        let reused = self.free.lock().ok().and_then(|mut f| f.pop());
        let data = reused.unwrap_or_else(|| Vec::with_capacity(self.part_bytes));
        Ok(PartBuffer {
            data,
            lease: BufferLease {
                _permit: permit,
                free: self.free.clone(),
                part_bytes: self.part_bytes,
            },
        })
    }
}

/// A part buffer being filled, with its permit.
struct PartBuffer {
    data: Vec<u8>,
    lease: BufferLease,
}

impl PartBuffer {
    /// The filled bytes for the upload, and the lease to end once the upload is over.
    fn into_upload(self) -> (Bytes, BufferLease) {
        (Bytes::from(self.data), self.lease)
    }
}

/// The permit of a part buffer whose bytes are being uploaded.
struct BufferLease {
    _permit: OwnedSemaphorePermit,
    free: Arc<Mutex<Vec<Vec<u8>>>>,
    part_bytes: usize,
}

impl BufferLease {
    /// The upload is over: keep the buffer for the next part when no one else holds its
    /// bytes any more, then release the permit.
    fn end(self, part: Bytes) {
        if let Ok(bytes) = part.try_into_mut() {
            let mut data = Vec::from(bytes);
            if data.capacity() == self.part_bytes
                && let Ok(mut free) = self.free.lock()
            {
                data.clear();
                free.push(data);
            }
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
    /// The part being filled: `part_bytes` of capacity, handed to the upload task whole.
    /// (A growing `BytesMut` split into parts doubled its capacity and kept the shared
    /// allocations alive while their parts were in flight: peak memory grew with the
    /// file size.)
    buffer: Option<PartBuffer>,
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
            buffer: None,
            next_part: 1,
            in_flight: JoinSet::new(),
            parts: Vec::new(),
            bytes: 0,
        }
    }

    async fn write(&mut self, data: &[u8]) -> Result<()> {
        match self.write_parts(data).await {
            Err(e) => Err(self.explain(e).await),
            ok => ok,
        }
    }

    /// A part upload or completion refused with a client error may mean the upload was
    /// aborted under this run (`gc`, a lifecycle rule): then say so, instead of the
    /// server's status (S3 answers 404 NoSuchUpload; some S3-compatible servers, `s3s-fs`
    /// among them, 403 AccessDenied, which reads as a credentials problem).
    async fn explain(&self, e: Error) -> Error {
        let (
            Error::S3 {
                operation: "UploadPart" | "CompleteMultipartUpload",
                retryable: false,
                ..
            },
            Some(upload_id),
        ) = (&e, &self.upload_id)
        else {
            return e;
        };
        match self
            .store
            .upload_is_open(&self.bucket, &self.key, upload_id)
            .await
        {
            Ok(false) => Error::UploadAborted {
                bucket: self.bucket.clone(),
                key: self.key.clone(),
                source: Box::new(e),
            },
            _ => e,
        }
    }

    async fn write_parts(&mut self, data: &[u8]) -> Result<()> {
        self.bytes += data.len() as u64;
        let mut data = data;
        while !data.is_empty() {
            let buffer = match &mut self.buffer {
                Some(b) => b,
                None => self.buffer.insert(self.limits.take_buffer().await?),
            };
            let room = self.limits.part_bytes - buffer.data.len();
            let (now, later) = data.split_at(room.min(data.len()));
            buffer.data.extend_from_slice(now);
            data = later;
            if buffer.data.len() == self.limits.part_bytes
                && let Some(full) = self.buffer.take()
            {
                self.send_part(full).await?;
            }
        }
        Ok(())
    }

    /// Upload `buffer` as the next part, in the background; its permit is released (and
    /// the buffer kept for reuse) when the upload ends.
    async fn send_part(&mut self, buffer: PartBuffer) -> Result<()> {
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
        let (part, lease) = buffer.into_upload();
        let (store, bucket, key) = (self.store.clone(), self.bucket.clone(), self.key.clone());
        let number = self.next_part;
        self.next_part += 1;
        self.in_flight.spawn(async move {
            let result = store
                .upload_part(&bucket, &key, &upload_id, number, part.clone())
                .await;
            lease.end(part);
            result
        });
        Ok(())
    }

    /// Upload what is left and make the object visible; returns its size.
    async fn finish(mut self) -> Result<u64> {
        if let Err(e) = self.finish_inner().await {
            let e = self.explain(e).await;
            self.abort().await;
            return Err(e);
        }
        Ok(self.bytes)
    }

    async fn finish_inner(&mut self) -> Result<()> {
        let Some(upload_id) = self.upload_id.clone() else {
            // One PutObject with the whole file; its buffer goes back like a part's.
            let buffer = match self.buffer.take() {
                Some(b) => b,
                None => self.limits.take_buffer().await?,
            };
            let (body, lease) = buffer.into_upload();
            let result = self
                .store
                .put(&self.bucket, &self.key, body.clone(), false)
                .await;
            lease.end(body);
            return result.map(|_| ());
        };
        if let Some(rest) = self.buffer.take() {
            self.send_part(rest).await?;
        }
        while let Some(done) = self.in_flight.join_next().await {
            self.parts.push(join_result(done)?);
        }
        let mut parts = std::mem::take(&mut self.parts);
        parts.sort_by_key(|p| p.part_number());
        if let Err(e) = self
            .store
            .complete_multipart(&self.bucket, &self.key, &upload_id, parts)
            .await
        {
            // S3 may apply a CompleteMultipartUpload whose reply is then lost: the SDK's
            // retry finds no upload (404 NoSuchUpload), which reads as an upload aborted
            // under the run. The key is this run's own (run id, partition, sequence), so an
            // object there with exactly the bytes written is this upload, complete.
            match self.store.head(&self.bucket, &self.key).await {
                Ok(Some(size)) if size == self.bytes => {
                    tracing::info!(key = %self.key, bytes = size, "CompleteMultipartUpload's reply was lost, but the object is complete with every byte written");
                }
                _ => return Err(e),
            }
        }
        self.limits.open.remove(&self.bucket, &self.key);
        Ok(())
    }

    /// Stop everything in flight and abort the multipart upload, if any.
    async fn abort(&mut self) {
        self.buffer = None;
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
    r.map_err(|e| Error::internal_caused(format!("part upload task failed: {e}"), e))?
}

/// Longest string bound a column chunk's statistics keep (Parquet's default: 64 bytes).
/// The file's Delta statistics are read from them ([`StatsCollector`](crate::table::StatsCollector)),
/// and Delta's bound of a string depends on up to its first 65 characters, which a cut
/// after 512 bytes keeps (4 bytes a character at most). The page index keeps its 64.
pub const STATISTICS_TRUNCATE_BYTES: usize = 512;

/// Writer properties for `options`.
pub(crate) fn writer_properties(options: &ParquetOptions) -> Result<WriterProperties> {
    let compression = match options.codec {
        Codec::Zstd => Compression::ZSTD(
            ZstdLevel::try_new(options.zstd_level)
                .map_err(|e| Error::request_caused(format!("parquet.zstd_level: {e}"), e))?,
        ),
        Codec::Snappy => Compression::SNAPPY,
        Codec::Lz4 => Compression::LZ4_RAW,
        Codec::None => Compression::UNCOMPRESSED,
    };
    Ok(WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(options.row_group_rows))
        .set_dictionary_enabled(options.dictionary != Dictionary::Never)
        .set_statistics_truncate_length(Some(STATISTICS_TRUNCATE_BYTES))
        .set_created_by(format!("connector-sdk {}", env!("CARGO_PKG_VERSION")))
        .build())
}

/// Fewest non-null values a column's sample needs before `auto` turns its dictionary off.
const DICTIONARY_SAMPLE_MIN: usize = 1024;
/// Most rows of a first batch `auto` looks at.
const DICTIONARY_SAMPLE_MAX: usize = 65_536;

/// `props` with dictionary encoding turned off for each top-level, non-nested column
/// whose values in `sample` are mostly distinct (more than 3 in 4): for such a column a
/// dictionary only costs hashing and makes the file larger (each value is stored once
/// anyway, plus an index per row). Nested columns and short samples keep `props`.
///
/// Such a column stored as Parquet INT32 or INT64 (integers, dates, times, timestamps,
/// durations) is written `DELTA_BINARY_PACKED` instead of `PLAIN`: ids, sequence numbers
/// and event times mostly grow by small steps, which delta packing stores in a few bits
/// each where `PLAIN` spends 4 or 8 bytes and leaves the compressor to find the pattern.
/// Measured on the 10 M-row orders benchmark (`bench/s3-files`): files 92 → 30 MB and
/// 12–16 % less wall time, as ZSTD gets a third of the bytes. Every reader of note reads it
/// in version 1 data pages (Spark ≥ 3.3's vectorized reader, Trino/Athena, DuckDB, Arrow,
/// `deltalake`); values in no order cost about what `PLAIN` does.
///
/// Such a column stored as BYTE_ARRAY (strings, binary) is written `DELTA_BYTE_ARRAY`
/// (each value as the length of the prefix it shares with the one before and the rest;
/// both lengths delta packed): keys, names and URLs mostly share prefixes with their
/// neighbours. On the same benchmark (a `customer-N` column): files 30 → 25 MB and ~1.5 %
/// less CPU, as ZSTD gets fewer bytes. The same readers read it.
pub(crate) fn adapt_dictionary(props: &WriterProperties, sample: &RecordBatch) -> WriterProperties {
    // A bounded sample: the row conversion and the set scale with it.
    let sample = sample.slice(0, sample.num_rows().min(DICTIONARY_SAMPLE_MAX));
    let encodings = delta_encodings(&sample.schema());
    let mut plain = Vec::new();
    for (field, column) in sample.schema().fields().iter().zip(sample.columns()) {
        let path = ColumnPath::from(field.name().as_str());
        if field.data_type().is_nested() || !props.dictionary_enabled(&path) {
            continue;
        }
        let values = column.len() - column.null_count();
        if values < DICTIONARY_SAMPLE_MIN {
            continue;
        }
        // More than 3 in 4 distinct: distinct > 3·values/4, i.e. > ⌊3·values/4⌋.
        // Otherwise, a column that would be delta packed if it lost its dictionary loses
        // it when that is estimated smaller.
        let delta_packed = encodings.get(&path) == Some(&Encoding::DELTA_BINARY_PACKED);
        if distinct_exceeds(column, values * 3 / 4) || (delta_packed && delta_packs_smaller(column))
        {
            plain.push(field.name().clone());
        }
    }
    if plain.is_empty() {
        return props.clone();
    }
    tracing::debug!(columns = ?plain, "dictionary encoding off: mostly distinct values, or integers that delta pack smaller");
    plain
        .into_iter()
        .fold(props.clone().into_builder(), |b, name| {
            let path = ColumnPath::from(name.as_str());
            let b = b.set_column_dictionary_enabled(path.clone(), false);
            match encodings.get(&path) {
                Some(encoding) => b.set_column_encoding(path, *encoding),
                None => b,
            }
        })
        .build()
}

/// The delta encoding of each leaf column of `schema` that has one, by the Parquet physical
/// type the Arrow writer maps it to: INT32 and INT64 (integers, dates, times, timestamps,
/// durations) are `DELTA_BINARY_PACKED`, BYTE_ARRAY (strings, binary) `DELTA_BYTE_ARRAY`.
/// A decimal or an interval stored otherwise is never given an encoding its type does not
/// allow. A path that two columns share (two fields of one name) gets an encoding only if
/// both have the same one: properties are set per path, and a column given an encoding its
/// type does not allow would fail the write.
fn delta_encodings(schema: &SchemaRef) -> HashMap<ColumnPath, Encoding> {
    let Ok(parquet) = ArrowSchemaConverter::new().convert(schema) else {
        return HashMap::new();
    };
    let mut chosen: HashMap<ColumnPath, Option<Encoding>> = HashMap::new();
    for c in parquet.columns() {
        let encoding = match c.physical_type() {
            PhysicalType::INT32 | PhysicalType::INT64 => Some(Encoding::DELTA_BINARY_PACKED),
            PhysicalType::BYTE_ARRAY => Some(Encoding::DELTA_BYTE_ARRAY),
            _ => None,
        };
        chosen
            .entry(c.path().clone())
            .and_modify(|e| {
                if *e != encoding {
                    *e = None;
                }
            })
            .or_insert(encoding);
    }
    chosen
        .into_iter()
        .filter_map(|(path, encoding)| Some((path, encoding?)))
        .collect()
}

/// Whether an integer-like column (integers, dates, times, timestamps, durations: Parquet
/// INT32/INT64, which [`delta_encodings`] delta packs) that a dictionary would encode is
/// estimated to take fewer bits delta packed than as dictionary indices plus the
/// dictionary. E.g. a date column that steps through a cycle of days (1 in 2 values distinct): 12-bit dictionary indices against ~0.1 bit per
/// value of deltas; on the 10 M-row orders benchmark (`bench/s3-files`) its files went from
/// 25.3 to 21.0 MB, with ~1.5 % fewer instructions (dictionary hashing cost more than
/// packing deltas). Values that repeat in no order (a status code, a country id) keep the
/// dictionary: their deltas need more bits than the indices.
fn delta_packs_smaller(column: &ArrayRef) -> bool {
    use arrow::datatypes::DataType;
    let data_type = column.data_type();
    let width = match data_type.primitive_width() {
        // (Not a decimal stored as INT32/INT64: cast to Int64 it would lose its scale.)
        Some(w) if data_type.is_integer() || data_type.is_temporal() => w,
        _ => return false,
    };
    let Ok(values) = arrow::compute::cast(column, &DataType::Int64) else {
        return false;
    };
    let values = values.as_primitive::<arrow::datatypes::Int64Type>();
    // The values a Parquet page holds: nulls are left out of both encodings.
    let values: Vec<i64> = values.iter().flatten().collect();
    if values.len() < 2 {
        return false;
    }
    delta_packed_bits(&values) < dictionary_bits(&values, width.max(4))
}

/// Estimated bits of `values` as `DELTA_BINARY_PACKED`: blocks of 128 deltas, each with its
/// minimum (a zigzag varint) and 4 bit widths, then 4 miniblocks of 32 deltas packed at the
/// width of their largest delta above the block's minimum (the layout of the Parquet spec
/// and of parquet-rs's encoder).
fn delta_packed_bits(values: &[i64]) -> u64 {
    let deltas: Vec<i64> = values.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    let mut bits = 0u64;
    for block in deltas.chunks(128) {
        let min = block.iter().copied().min().unwrap_or(0);
        let zigzag = ((min << 1) ^ (min >> 63)) as u64;
        let varint_bytes = u64::from((64 - zigzag.leading_zeros()).max(1)).div_ceil(7);
        bits += 8 * (varint_bytes + 4);
        for mini in block.chunks(32) {
            let spread = mini
                .iter()
                .map(|d| d.wrapping_sub(min) as u64)
                .max()
                .unwrap_or(0);
            bits += 32 * u64::from(64 - spread.leading_zeros());
        }
    }
    bits
}

/// Estimated bits of `values` dictionary encoded: the dictionary (each distinct value at
/// `width` bytes) and the indices at the width of the largest, a run of 8 or more equal
/// values as one run (RLE) and the others bit-packed.
fn dictionary_bits(values: &[i64], width: usize) -> u64 {
    let distinct = values
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len() as u64;
    let index_width = u64::from(64 - distinct.saturating_sub(1).leading_zeros());
    let mut bits = distinct * width as u64 * 8;
    let mut rest = values;
    while let Some(first) = rest.first() {
        let run = rest.iter().take_while(|v| *v == first).count();
        bits += if run >= 8 {
            8 * (2 + index_width.div_ceil(8))
        } else {
            run as u64 * index_width
        };
        rest = &rest[run..];
    }
    bits
}

/// Whether `column` has more than `limit` distinct non-null values. Values are compared
/// in Arrow's row format, which works for every type (`RowConverter` is the Arrow way
/// to hash and compare arbitrary values).
fn distinct_exceeds(column: &ArrayRef, limit: usize) -> bool {
    let Ok(converter) = RowConverter::new(vec![SortField::new(column.data_type().clone())]) else {
        return false;
    };
    let Ok(rows) = converter.convert_columns(std::slice::from_ref(column)) else {
        return false;
    };
    let mut seen = std::collections::HashSet::with_capacity(limit + 1);
    for (i, row) in rows.iter().enumerate() {
        if column.is_valid(i) && seen.insert(row) && seen.len() > limit {
            return true;
        }
    }
    false
}

/// A Parquet file written and visible.
pub(crate) struct WrittenFile {
    pub rows: u64,
    pub bytes: u64,
    /// Its row groups' metadata (statistics included), as in its footer.
    pub row_groups: Vec<RowGroupMetaData>,
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

    /// Encode and upload `batch`: [`encode`](Self::encode), then
    /// [`upload_encoded`](Self::upload_encoded).
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.encode(batch)?;
        self.upload_encoded().await
    }

    /// Encode `batch` into the file: CPU work only, no I/O (a finished row group waits in
    /// memory for [`upload_encoded`](Self::upload_encoded)), so it can run on a thread of
    /// its own.
    pub fn encode(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|e| Error::Parquet {
            what: self.upload.key.clone(),
            source: e,
        })?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Hand what encoding produced (finished row groups) to the upload, if anything.
    pub async fn upload_encoded(&mut self) -> Result<()> {
        // Copy what the writer produced into the part buffer and keep the writer's
        // vector (its capacity is about one row group) for the next row group.
        let produced = self.writer.inner_mut();
        if !produced.is_empty() {
            self.upload.write(produced).await?;
            produced.clear();
        }
        Ok(())
    }

    /// Close the file (footer), upload the rest, make it visible. Returns the rows, the
    /// bytes and the row groups (their metadata, as in the footer).
    pub async fn finish(self) -> Result<WrittenFile> {
        let Self {
            mut writer,
            mut upload,
            rows,
        } = self;
        let tail = match writer
            .flush()
            .and_then(|()| Ok((writer.flushed_row_groups().to_vec(), writer.into_inner()?)))
        {
            Ok(t) => t,
            Err(e) => {
                upload.abort().await;
                return Err(Error::Parquet {
                    what: upload.key.clone(),
                    source: e,
                });
            }
        };
        let (row_groups, tail) = tail;
        if let Err(e) = upload.write(&tail).await {
            upload.abort().await;
            return Err(e);
        }
        let bytes = upload.finish().await?;
        Ok(WrittenFile {
            rows,
            bytes,
            row_groups,
        })
    }

    /// Give up on the file: abort its multipart upload.
    pub async fn abort(mut self) {
        self.upload.abort().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The size estimates at the limits of the values: deltas that wrap (i64::MIN after
    /// i64::MAX), a single value, nulls only, unsigned values above i64::MAX.
    #[test]
    fn delta_or_dictionary_estimates_hold_at_the_limits() {
        use arrow::array::{Int64Array, UInt64Array};
        let extremes: ArrayRef = Arc::new(Int64Array::from_iter_values(
            (0..4096).map(|i| [i64::MIN, i64::MAX, 0, -1][i % 4]),
        ));
        // 2-bit indices against 64-bit deltas: the dictionary.
        assert!(!delta_packs_smaller(&extremes));
        let one: ArrayRef = Arc::new(Int64Array::from(vec![i64::MIN]));
        assert!(!delta_packs_smaller(&one));
        let nulls: ArrayRef = Arc::new(Int64Array::from(vec![None::<i64>; 4096]));
        assert!(!delta_packs_smaller(&nulls));
        let big: ArrayRef = Arc::new(UInt64Array::from_iter_values(
            (0..4096u64).map(|i| u64::MAX - (i % 2048)),
        ));
        assert!(
            !delta_packs_smaller(&big),
            "not cast to i64: nothing to estimate"
        );
        assert_eq!(delta_packed_bits(&[5, 5]), 8 * (1 + 4));
        // One 8-byte entry, and one run of 0-bit indices (a 2-byte header).
        assert_eq!(dictionary_bits(&[7; 8], 8), 64 + 16);
        let steps: Vec<i64> = (0..4096).collect();
        assert!(delta_packed_bits(&steps) < dictionary_bits(&steps, 8));
    }

    #[test]
    fn auto_dictionary_is_off_only_for_mostly_distinct_flat_columns() {
        use arrow::array::{
            Decimal128Array, Float64Array, Int16Array, Int64Array, ListArray, StringArray,
            TimestampMicrosecondArray,
        };
        use arrow::datatypes::Int64Type;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

        let n = 4096i64;
        let unique = Int64Array::from_iter_values(0..n);
        let repeated = StringArray::from_iter_values((0..n).map(|i| format!("mode-{}", i % 7)));
        // 3/4 distinct exactly is not "more than 3 in 4": stays on (values spread over the
        // whole range, so delta packing would not be smaller than the dictionary).
        let mix = |v: i64| {
            // A bijection of u64 (splitmix64's finalizer): distinct in, distinct out.
            let mut x = v as u64;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (x ^ (x >> 31)) as i64
        };
        let boundary = Int64Array::from_iter_values((0..n).map(|i| mix(i % (n / 4 * 3))));
        let lists =
            ListArray::from_iter_primitive::<Int64Type, _, _>((0..n).map(|i| Some(vec![Some(i)])));
        // Mostly distinct columns of every kind, at the limits of their types: the integer
        // ones (Parquet INT32/INT64) are delta packed, strings and binary prefix-coded, the
        // others keep PLAIN.
        let extremes_i64 = Int64Array::from_iter((0..n).map(|i| match i % 4 {
            0 => Some(i64::MIN + i),
            1 => Some(i64::MAX - i),
            2 => None,
            _ => Some(i * 1_000_003 - n / 2),
        }));
        let extremes_i16 = Int16Array::from_iter_values(
            (0..n).map(|i| i16::try_from(i).unwrap() * if i % 2 == 0 { 8 } else { -8 }),
        );
        let mut edges = vec![i16::MIN, i16::MAX, i16::MIN + 1, i16::MAX - 1];
        edges.extend(extremes_i16.values().iter().skip(4));
        let extremes_i16 = Int16Array::from(edges);
        let stamps =
            TimestampMicrosecondArray::from_iter_values((0..n).map(|i| 1_704_067_200_000_000 + i))
                .with_timezone("UTC");
        let floats = Float64Array::from_iter_values((0..n).map(|i| i as f64 / 3.0));
        let text = StringArray::from_iter_values((0..n).map(|i| format!("id-{i}")));
        // Byte-array columns at their limits: empty values, a value that shares no prefix
        // with the one before it, multi-byte UTF-8 cut nowhere by the prefix (the shared
        // prefix of "é…" and "è…" ends inside a character), a value longer than a page, nulls.
        let long = "x".repeat(2 * 1024 * 1024);
        let odd_text = arrow::array::LargeStringArray::from_iter((0..n).map(|i| match i % 8 {
            _ if i == 1 => Some(String::new()),
            _ if i == 2 => Some(long.clone()),
            0 => None,
            3 => Some(format!("{}", n - i)),
            k if k % 2 == 0 => Some(format!("é{i}")),
            _ => Some(format!("è{i}")),
        }));
        let bytes = arrow::array::BinaryArray::from_iter_values((0..n).map(|i| {
            (i as u32)
                .to_be_bytes()
                .repeat(usize::from(i > 0) * (1 + (i % 3) as usize))
        }));
        let view = arrow::array::StringViewArray::from_iter_values(
            (0..n).map(|i| format!("a-long-shared-prefix-longer-than-twelve-bytes-{i}")),
        );
        let decimals = Decimal128Array::from_iter_values(
            (0..n).map(|i| i128::from(i) * 10i128.pow(30) + i128::from(i)),
        )
        .with_precision_and_scale(38, 2)
        .unwrap();
        // Few distinct values: dates stepping through a cycle of 1024 days (delta packed:
        // their deltas take ~0 bits where indices take 10) and codes 0-4 in no order (the
        // dictionary stays: 3-bit indices, where deltas need 4).
        let cycling_days = arrow::array::Date32Array::from_iter(
            (0..n).map(|i| (i % 7 != 3).then_some(18_000 + (i as i32 & 1023))),
        );
        let codes =
            arrow::array::Int32Array::from_iter_values((0..n).map(|i| (i * 7919 % 5) as i32));
        let batch = RecordBatch::try_from_iter([
            ("unique", Arc::new(unique) as ArrayRef),
            ("repeated", Arc::new(repeated) as ArrayRef),
            ("boundary", Arc::new(boundary) as ArrayRef),
            ("lists", Arc::new(lists) as ArrayRef),
            ("extremes_i64", Arc::new(extremes_i64) as ArrayRef),
            ("extremes_i16", Arc::new(extremes_i16) as ArrayRef),
            ("stamps", Arc::new(stamps) as ArrayRef),
            ("floats", Arc::new(floats) as ArrayRef),
            ("text", Arc::new(text) as ArrayRef),
            ("decimals", Arc::new(decimals) as ArrayRef),
            ("odd_text", Arc::new(odd_text) as ArrayRef),
            ("bytes", Arc::new(bytes) as ArrayRef),
            ("view", Arc::new(view) as ArrayRef),
            ("cycling_days", Arc::new(cycling_days) as ArrayRef),
            ("codes", Arc::new(codes) as ArrayRef),
        ])
        .unwrap();
        let base = writer_properties(&ParquetOptions::default()).unwrap();
        let props = adapt_dictionary(&base, &batch);
        let on = |name: &str| props.dictionary_enabled(&ColumnPath::from(name));
        assert!(!on("unique"));
        assert!(on("repeated"));
        assert!(on("boundary"));
        assert!(!on("cycling_days"));
        assert_eq!(
            props.encoding(&ColumnPath::from("cycling_days")),
            Some(Encoding::DELTA_BINARY_PACKED)
        );
        assert!(on("codes"));
        let item = ColumnPath::new(vec!["lists".into(), "list".into(), "item".into()]);
        assert!(
            props.dictionary_enabled(&item),
            "nested columns keep the default"
        );
        assert_ne!(
            props.encoding(&item),
            Some(Encoding::DELTA_BINARY_PACKED),
            "nested columns keep the default"
        );
        // A sample shorter than the minimum decides nothing.
        let short = adapt_dictionary(&base, &batch.slice(0, DICTIONARY_SAMPLE_MIN - 1));
        assert!(short.dictionary_enabled(&ColumnPath::from("unique")));

        // The file written with these properties reads back equal, and the encodings
        // in its metadata are the ones chosen.
        let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        let file = Bytes::from(writer.into_inner().unwrap());
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let row_group = reader.metadata().row_group(0).clone();
        let read: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
        assert_eq!(
            arrow::compute::concat_batches(&batch.schema(), &read).unwrap(),
            batch
        );
        let dictionary_page = |i: usize| row_group.column(i).dictionary_page_offset().is_some();
        assert!(
            !dictionary_page(0),
            "unique: {:?}",
            row_group.column(0).encodings().collect::<Vec<Encoding>>()
        );
        assert!(dictionary_page(1));
        let encodings = |i: usize| row_group.column(i).encodings().collect::<Vec<Encoding>>();
        for (i, name) in [
            (0, "unique"),
            (4, "extremes_i64"),
            (5, "extremes_i16"),
            (6, "stamps"),
        ] {
            assert!(!dictionary_page(i), "{name}: {:?}", encodings(i));
            assert!(
                encodings(i).contains(&Encoding::DELTA_BINARY_PACKED),
                "{name}: {:?}",
                encodings(i)
            );
        }
        assert!(!dictionary_page(13), "cycling_days: {:?}", encodings(13));
        assert!(encodings(13).contains(&Encoding::DELTA_BINARY_PACKED));
        assert!(dictionary_page(14), "codes: {:?}", encodings(14));
        // Mostly distinct strings and binary (Parquet BYTE_ARRAY) are prefix-coded
        // (DELTA_BYTE_ARRAY): shared prefixes are stored once, the lengths delta packed.
        for (i, name) in [(8, "text"), (10, "odd_text"), (11, "bytes"), (12, "view")] {
            assert!(!dictionary_page(i), "{name}: {:?}", encodings(i));
            assert!(
                encodings(i).contains(&Encoding::DELTA_BYTE_ARRAY),
                "{name}: {:?}",
                encodings(i)
            );
        }
        for (i, name) in [(7, "floats"), (9, "decimals")] {
            assert!(!dictionary_page(i), "{name}: {:?}", encodings(i));
            assert!(
                !encodings(i).contains(&Encoding::DELTA_BINARY_PACKED)
                    && !encodings(i).contains(&Encoding::DELTA_BYTE_ARRAY),
                "{name}: {:?}",
                encodings(i)
            );
        }
        assert!(
            !encodings(1).contains(&Encoding::DELTA_BINARY_PACKED)
                && !encodings(1).contains(&Encoding::DELTA_BYTE_ARRAY),
            "a dictionary column keeps its encodings: {:?}",
            encodings(1)
        );

        // Two mostly-distinct fields of one name, an integer and a string: the path is not
        // delta packed (the string could not be), and the file is written.
        let twins = RecordBatch::try_new(
            Arc::new(arrow_schema::Schema::new(vec![
                arrow_schema::Field::new("twin", arrow_schema::DataType::Int64, false),
                arrow_schema::Field::new("twin", arrow_schema::DataType::Utf8, false),
            ])),
            vec![
                Arc::new(Int64Array::from_iter_values(0..n)) as ArrayRef,
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("t-{i}")),
                )),
            ],
        )
        .unwrap();
        let twin_props = adapt_dictionary(&base, &twins);
        assert_eq!(twin_props.encoding(&ColumnPath::from("twin")), None);
        let mut writer =
            ArrowWriter::try_new(Vec::new(), twins.schema(), Some(twin_props)).unwrap();
        writer.write(&twins).unwrap();
        writer.close().unwrap();

        // `never` turns it off everywhere.
        let never = writer_properties(&ParquetOptions {
            dictionary: Dictionary::Never,
            ..ParquetOptions::default()
        })
        .unwrap();
        assert!(!never.dictionary_enabled(&ColumnPath::from("repeated")));
    }

    fn limits(buffered: usize) -> UploadLimits {
        let mut options = ExtractOptions::new("s3://bucket/prefix".parse().unwrap());
        options.upload.max_buffered_parts = Some(buffered);
        UploadLimits::new(&options, Arc::default())
    }

    #[tokio::test]
    async fn no_more_part_buffers_than_permits() {
        let limits = limits(2);
        let a = limits.take_buffer().await.unwrap();
        let _b = limits.take_buffer().await.unwrap();
        assert_eq!(a.data.capacity(), limits.part_bytes);
        let third = tokio::time::timeout(Duration::from_millis(100), limits.take_buffer()).await;
        assert!(
            third.is_err(),
            "a third buffer was handed out while two are held"
        );
        // Once a part's upload ends, its permit comes back. Here a clone of the bytes is
        // still alive (as if the HTTP client held it), so the buffer is not reused.
        let (body, lease) = a.into_upload();
        let still_held = body.clone();
        lease.end(body);
        let c = tokio::time::timeout(Duration::from_secs(5), limits.take_buffer())
            .await
            .expect("the permit came back")
            .unwrap();
        assert!(c.data.is_empty());
        assert_ne!(c.data.as_ptr(), still_held.as_ptr());
    }

    #[tokio::test]
    async fn a_buffer_is_reused_after_its_upload() {
        let limits = limits(1);
        let mut a = limits.take_buffer().await.unwrap();
        a.data.extend_from_slice(b"part bytes");
        let address = a.data.as_ptr();
        let (body, lease) = a.into_upload();
        lease.end(body);
        let b = limits.take_buffer().await.unwrap();
        assert_eq!(b.data.as_ptr(), address, "the freed buffer is reused");
        assert!(b.data.is_empty());
        assert_eq!(b.data.capacity(), limits.part_bytes);
    }
}
