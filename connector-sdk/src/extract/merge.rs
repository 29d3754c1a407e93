//! The `merge` stage of a commit: upsert by the stream's key, copy-on-write.
//!
//! The run's files hold the new version of every key they contain. Before the commit, the
//! table's files (of the version the run planned from) are searched for those keys, and
//! each file that holds any is rewritten without them; the commit removes the old files
//! and adds the rewritten ones beside the run's, in one Delta commit.
//!
//! Copy-on-write rather than deletion vectors: a table with deletion vectors needs readers
//! that support the `deletionVectors` feature (Athena and older Spark and Trino do not),
//! and `delta_kernel` 0.30 has no writer for the vectors themselves. The cost is that a
//! merge rewrites every file that holds a replaced key; files are found by reading their
//! key columns only (Parquet projection, ranged reads).
//!
//! Keys are compared in Arrow's row format, which is exact for every type (the Arrow way
//! to hash and compare values of any schema). The run's keys are held in memory: about
//! the key's encoded size plus ~40 bytes per row of the run.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::{cast, filter_record_batch};
use arrow::row::{RowConverter, Rows, SortField};
use arrow::util::display::array_value_to_string;
use arrow_schema::{DataType, SchemaRef};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{
    AsyncFileReader, ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder,
};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::{ExtractCore, RunPlan};
use crate::connector::Connector;
use crate::dataset::DataFile;
use crate::error::{Error, Result};
use crate::s3::S3Store;
use crate::sink::ParquetObjectWriter;
use crate::table::{LiveFile, StatsCollector};

/// Partition id in the names of rewritten files. `~` is not allowed in a connector's
/// partition ids, so these names never collide with a partition's files.
pub(super) const REWRITE_PARTITION: &str = "~merge";

/// Rows per batch when reading a file back.
const READ_BATCH_ROWS: usize = 8192;

/// Bytes read from a file's end in the first request: the footer of a file with a few
/// hundred columns, so the metadata usually takes one request.
const FOOTER_HINT: usize = 64 * 1024;

/// A Parquet file in S3, read by byte ranges through our S3 client: the parquet crate's
/// `AsyncFileReader` (its own object_store reader is deprecated in favour of this, and it
/// would need object_store's client).
struct S3ParquetFile {
    store: S3Store,
    bucket: String,
    key: String,
    size: u64,
}

impl AsyncFileReader for S3ParquetFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.bucket, &self.key, range)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(FOOTER_HINT))
                .load_and_finish(&mut *self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// What a merge changes besides adding the run's files.
#[derive(Debug, Default)]
pub(super) struct Rewrite {
    /// Files of the base version that hold replaced keys: the commit removes them.
    pub removed: Vec<String>,
    /// Those files without the replaced rows (none for a file whose every row was
    /// replaced): the commit adds them.
    pub written: Vec<DataFile>,
    /// Rows of the table the run's rows replaced.
    pub replaced_rows: u64,
}

/// One table file that held replaced keys.
struct FileRewrite {
    /// The file, removed by the commit.
    old: LiveFile,
    /// Its rows that stay, if any.
    new: Option<DataFile>,
    /// Rows the run replaced.
    replaced: u64,
}

/// The key columns of a stream and the run's keys.
struct RunKeys {
    /// Key column names and the stream's types for them.
    columns: Vec<(String, DataType)>,
    converter: RowConverter,
    rows: Rows,
}

impl RunKeys {
    /// The key columns of `batch`, cast to the stream's key types (an older file may hold
    /// a narrower type the table has since widened).
    fn key_arrays(&self, batch: &RecordBatch, what: &str) -> Result<Vec<ArrayRef>> {
        self.columns
            .iter()
            .map(|(name, ty)| {
                let column = batch.column_by_name(name).ok_or_else(|| {
                    Error::internal(format!("{what} has no key column `{name}`"))
                })?;
                if column.data_type() == ty {
                    Ok(column.clone())
                } else {
                    cast(column, ty).map_err(|e| {
                        Error::internal_caused(format!(
                            "{what}: key column `{name}` of type {} cannot be compared with the run's {ty}: {e}",
                            column.data_type()
                        ), e)
                    })
                }
            })
            .collect()
    }

    /// The key at `index` of `rows`, as text (for an error message).
    fn describe(&self, index: usize) -> String {
        let Ok(arrays) = self.converter.convert_rows([self.rows.row(index)]) else {
            return "?".into();
        };
        arrays
            .iter()
            .map(|a| array_value_to_string(a, 0).unwrap_or_else(|_| "?".into()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl<C: Connector> ExtractCore<C> {
    /// Stage 3 (`merge`): find the rows of the table (at the version `plan` started from) whose keys are in
    /// `adds`, and rewrite the files holding them without those rows. Refuses a run whose
    /// rows repeat a key ([`Error::DuplicateMergeKey`]). On error, the files it wrote are
    /// deleted.
    pub(super) async fn rewrite_for_merge(
        &self,
        plan: &RunPlan,
        adds: &[DataFile],
    ) -> Result<Rewrite> {
        let stream = &plan.stream;
        let columns = stream
            .primary_key
            .iter()
            .map(|name| {
                let f = stream.schema.field_with_name(name).map_err(|_| {
                    Error::request(format!(
                        "stream `{}`: primary_key column `{name}` is not a column of the stream",
                        stream.name
                    ))
                })?;
                Ok((name.clone(), f.data_type().clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        let converter = RowConverter::new(
            columns
                .iter()
                .map(|(_, ty)| SortField::new(ty.clone()))
                .collect(),
        )
        .map_err(|e| {
            Error::request_caused(
                format!(
                    "stream `{}`: its key ({}) cannot be compared: {e}",
                    stream.name,
                    stream.primary_key.join(", ")
                ),
                e,
            )
        })?;
        let rows = converter.empty_rows(0, 0);
        let mut keys = RunKeys {
            columns,
            converter,
            rows,
        };
        // The run's keys, in the order its files list them.
        for f in adds {
            let mut batches = self.read_keys(&f.key, f.bytes, &keys).await?;
            while let Some(batch) = batches.next().await {
                let batch = batch.map_err(|e| Error::Parquet {
                    what: f.key.clone(),
                    source: e,
                })?;
                let arrays = keys.key_arrays(&batch, &f.key)?;
                let mut rows = std::mem::replace(&mut keys.rows, keys.converter.empty_rows(0, 0));
                keys.converter.append(&mut rows, &arrays).map_err(|e| {
                    Error::internal_caused(format!("encoding the keys of {}: {e}", f.key), e)
                })?;
                keys.rows = rows;
            }
        }
        let mut set = HashSet::with_capacity(keys.rows.num_rows());
        for (i, row) in keys.rows.iter().enumerate() {
            if !set.insert(row) {
                return Err(Error::DuplicateMergeKey {
                    stream: stream.name.clone(),
                    key: stream.primary_key.join(", "),
                    value: keys.describe(i),
                });
            }
        }
        if set.is_empty() || plan.base_sequence == 0 {
            return Ok(Rewrite::default());
        }
        let table = self.dataset(&stream.name);
        let table = table.table()?;
        let base = plan.base_sequence - 1;
        let snapshot = Box::pin(table.snapshot(Some(base))).await?.ok_or_else(|| {
            Error::internal(format!(
                "{}: version {base} was planned from, but the table is gone",
                table.uri()
            ))
        })?;
        let files = table.files(&snapshot).await?;
        let seq = AtomicU32::new(0);
        let (keys, set, seq) = (&keys, &set, &seq);
        let results: Vec<Result<Option<FileRewrite>>> = futures::stream::iter(files)
            .map(|file| async move { self.rewrite_one(plan, file, keys, set, seq).await })
            .buffer_unordered(self.options.max_concurrent_partitions.max(1))
            .collect()
            .await;
        let mut rewrite = Rewrite::default();
        let mut first_error = None;
        for r in results {
            match r {
                Ok(Some(FileRewrite { old, new, replaced })) => {
                    rewrite.removed.push(old.key);
                    rewrite.written.extend(new);
                    rewrite.replaced_rows += replaced;
                }
                Ok(None) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            self.clean_up(&rewrite.written).await;
            return Err(e);
        }
        rewrite.removed.sort();
        rewrite.written.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(rewrite)
    }

    /// Rewrite `file` without the rows whose keys are in `set`. `None` if it holds none;
    /// otherwise the file, its rewrite (`None` if no row is left) and the rows dropped.
    async fn rewrite_one(
        &self,
        plan: &RunPlan,
        file: LiveFile,
        keys: &RunKeys,
        set: &HashSet<arrow::row::Row<'_>>,
        seq: &AtomicU32,
    ) -> Result<Option<FileRewrite>> {
        // Pass 1: the key columns only; which rows go.
        let mut drop = Vec::new();
        let mut batches = self.read_keys(&file.key, file.bytes, keys).await?;
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(|e| Error::Parquet {
                what: file.key.clone(),
                source: e,
            })?;
            let arrays = keys.key_arrays(&batch, &file.key)?;
            let rows = keys.converter.convert_columns(&arrays).map_err(|e| {
                Error::internal_caused(format!("encoding the keys of {}: {e}", file.key), e)
            })?;
            drop.extend(rows.iter().map(|r| set.contains(&r)));
        }
        let replaced = drop.iter().filter(|d| **d).count() as u64;
        if replaced == 0 {
            return Ok(None);
        }
        if replaced == drop.len() as u64 {
            return Ok(Some(FileRewrite {
                old: file,
                new: None,
                replaced,
            }));
        }
        // Pass 2: every column; write the rows that stay.
        let mut batches = self.read_whole_file(&file).await?;
        let schema: SchemaRef = batches.schema().clone();
        let dir = file.key.rsplit_once('/').map_or("", |(d, _)| d);
        let key = format!(
            "{dir}/part-{}-{REWRITE_PARTITION}-{:05}.parquet",
            plan.run_id,
            seq.fetch_add(1, Ordering::Relaxed)
        );
        let mut writer = ParquetObjectWriter::new(
            self.store.clone(),
            self.options.output.bucket.clone(),
            key.clone(),
            schema.clone(),
            self.props.clone(),
            self.limits.clone(),
        )?;
        let mut stats = StatsCollector::new(&schema, &self.props)?;
        let mut offset = 0usize;
        let written: Result<()> = async {
            while let Some(batch) = batches.next().await {
                let batch = batch.map_err(|e| Error::Parquet {
                    what: file.key.clone(),
                    source: e,
                })?;
                let n = batch.num_rows();
                let keep: BooleanArray = drop
                    .get(offset..offset + n)
                    .ok_or_else(|| {
                        Error::internal(format!(
                            "{} changed between two reads (more rows the second time)",
                            file.key
                        ))
                    })?
                    .iter()
                    .map(|d| Some(!d))
                    .collect();
                offset += n;
                let kept = filter_record_batch(&batch, &keep).map_err(|e| {
                    Error::internal_caused(format!("filtering the rows of {}: {e}", file.key), e)
                })?;
                if kept.num_rows() > 0 {
                    writer.write(&kept).await?;
                    stats.add(&kept)?;
                }
            }
            if offset != drop.len() {
                return Err(Error::internal(format!(
                    "{} changed between two reads (fewer rows the second time)",
                    file.key
                )));
            }
            Ok(())
        }
        .await;
        if let Err(e) = written {
            writer.abort().await;
            return Err(e);
        }
        let written = writer.finish().await?;
        let new = DataFile {
            key,
            partition: REWRITE_PARTITION.to_string(),
            rows: written.rows,
            bytes: written.bytes,
            stats: Some(stats.finish(&written.row_groups)?),
        };
        Ok(Some(FileRewrite {
            old: file,
            new: Some(new),
            replaced,
        }))
    }

    /// The key columns of the Parquet file `key`, batch by batch (ranged reads of the
    /// footer and the key columns' chunks only).
    async fn read_keys(
        &self,
        key: &str,
        size: u64,
        keys: &RunKeys,
    ) -> Result<ParquetRecordBatchStream<S3ParquetFile>> {
        let builder = self.open_file(key, size).await?;
        let indices: Vec<usize> = keys
            .columns
            .iter()
            .map(|(name, _)| {
                builder.schema().index_of(name).map_err(|_| {
                    Error::internal(format!(
                        "data file s3://{}/{key} has no key column `{name}`",
                        self.options.output.bucket
                    ))
                })
            })
            .collect::<Result<_>>()?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
        builder
            .with_projection(mask)
            .with_batch_size(READ_BATCH_ROWS)
            .build()
            .map_err(|e| Error::Parquet {
                what: key.to_string(),
                source: e,
            })
    }

    /// Every column of `file`, batch by batch.
    async fn read_whole_file(
        &self,
        file: &LiveFile,
    ) -> Result<ParquetRecordBatchStream<S3ParquetFile>> {
        self.open_file(&file.key, file.bytes)
            .await?
            .with_batch_size(READ_BATCH_ROWS)
            .build()
            .map_err(|e| Error::Parquet {
                what: file.key.clone(),
                source: e,
            })
    }

    async fn open_file(
        &self,
        key: &str,
        size: u64,
    ) -> Result<ParquetRecordBatchStreamBuilder<S3ParquetFile>> {
        let file = S3ParquetFile {
            store: self.store.clone(),
            bucket: self.options.output.bucket.clone(),
            key: key.to_string(),
            size,
        };
        ParquetRecordBatchStreamBuilder::new(file)
            .await
            .map_err(|e| Error::Parquet {
                what: format!("s3://{}/{key}", self.options.output.bucket),
                source: e,
            })
    }
}
