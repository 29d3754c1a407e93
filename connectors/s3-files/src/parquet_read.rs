//! Parquet passthrough: the object read row group by row group through parquet's async
//! reader over our S3 client (ranged GETs: the footer, then one row group's column chunks
//! at a time), each batch brought to the stream's schema by column name.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{ArrayRef, new_null_array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use connector_sdk::{ConnectorError, ListedObject, ReadItem, ReadStream, S3Store};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::{ObjectPart, Position};

/// A Parquet object read with ranged GETs through the connector's S3 client (parquet's
/// own object_store reader would bring a second S3 client and credential chain).
#[derive(Debug, Clone)]
struct S3ParquetReader {
    store: S3Store,
    bucket: String,
    key: String,
    size: u64,
    etag: String,
}

impl AsyncFileReader for S3ParquetReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            // The planned version only (If-Match): a file replaced since the plan is not
            // read as a mix of two versions.
            let mut request = self
                .store
                .client()
                .get_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .range(format!(
                    "bytes={}-{}",
                    range.start,
                    range.end.saturating_sub(1)
                ));
            if !self.etag.is_empty() && !self.etag.starts_with(crate::NO_ETAG) {
                request = request.if_match(&self.etag);
            }
            let response = request.send().await.map_err(|e| {
                if matches!(
                    e.raw_response().map(|r| r.status().as_u16()),
                    Some(404 | 412)
                ) {
                    return ParquetError::External(Box::new(ObjectChanged));
                }
                ParquetError::External(
                    connector_sdk::one_line(&format!(
                        "{}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    ))
                    .into(),
                )
            })?;
            let body = response
                .body
                .collect()
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))?;
            Ok(body.into_bytes())
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let reader = ParquetMetaDataReader::new().with_arrow_reader_options(options);
            Ok(Arc::new(reader.load_and_finish(self, size).await?))
        }
        .boxed()
    }
}

fn reader(
    store: &S3Store,
    bucket: &str,
    key: &str,
    size: u64,
    etag: &str,
) -> Result<S3ParquetReader, ConnectorError> {
    Ok(S3ParquetReader {
        store: store.clone(),
        bucket: bucket.to_string(),
        key: key.to_string(),
        size,
        etag: etag.to_string(),
    })
}

/// The object was deleted or replaced since it was planned (404, or 412 to `If-Match`).
#[derive(Debug, thiserror::Error)]
#[error("the object was deleted or replaced since the plan")]
struct ObjectChanged;

/// Whether `e` is [`ObjectChanged`].
fn is_object_changed(e: &ParquetError) -> bool {
    matches!(e, ParquetError::External(inner) if inner.is::<ObjectChanged>())
}

fn parquet_error(bucket: &str, key: &str, e: parquet::errors::ParquetError) -> ConnectorError {
    ConnectorError::source_error(format!(
        "reading Parquet s3://{bucket}/{key}: {}",
        connector_sdk::one_line(&e.to_string())
    ))
    .with_source(e)
}

async fn metadata(
    store: &S3Store,
    bucket: &str,
    key: &str,
    size: u64,
    etag: &str,
) -> Result<ArrowReaderMetadata, ConnectorError> {
    let mut r = reader(store, bucket, key, size, etag)?;
    ArrowReaderMetadata::load_async(&mut r, ArrowReaderOptions::new())
        .await
        .map_err(|e| parquet_error(bucket, key, e))
}

/// The Arrow schema of a Parquet object (its footer).
pub(crate) async fn schema(
    store: &S3Store,
    bucket: &str,
    object: &ListedObject,
) -> Result<SchemaRef, ConnectorError> {
    let m = metadata(store, bucket, &object.key, object.size, "").await?;
    // Without the file's key-value metadata: the stream's schema is the columns.
    let fields = m.schema().fields().clone();
    Ok(Arc::new(arrow::datatypes::Schema::new(fields)))
}

/// `batch` with the columns of `schema`, by name: cast where the type differs, nulls
/// where a nullable column is missing.
fn conform(
    batch: &RecordBatch,
    schema: &SchemaRef,
    object: &str,
) -> Result<RecordBatch, ConnectorError> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let column = match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => c.clone(),
            // Not the safe cast: a value that does not convert is an error, never a null.
            Some(c) => arrow::compute::cast_with_options(
                c,
                f.data_type(),
                &arrow::compute::CastOptions {
                    safe: false,
                    ..Default::default()
                },
            )
            .map_err(|e| {
                ConnectorError::config(format!(
                    "{object}: column `{}` is {} in the file, {} in the stream's schema, and does not convert: {e}",
                    f.name(),
                    c.data_type(),
                    f.data_type()
                ))
            })?,
            None if f.is_nullable() => new_null_array(f.data_type(), batch.num_rows()),
            None => {
                return Err(ConnectorError::config(format!(
                    "{object} has no column `{}`, which the stream's schema declares not nullable",
                    f.name()
                )));
            }
        };
        columns.push(column);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| {
        ConnectorError::config(format!("{object} does not fit the stream's schema: {e}"))
    })
}

/// The read stream of a Parquet object, from row group `checkpoint.offset`.
pub(crate) fn read<'a>(
    store: S3Store,
    bucket: String,
    schema: SchemaRef,
    batch_rows: usize,
    part: ObjectPart,
    checkpoint: Option<Position>,
) -> ReadStream<'a, Position> {
    Box::pin(async_stream::try_stream! {
        let object = format!("s3://{bucket}/{}", part.key);
        let first = checkpoint.map_or(0, |c| c.offset as usize);
        yield ReadItem::Checkpoint(Position { offset: first as u64, line: 0 });
        // A version deleted or replaced since the plan ends the partition (as for text
        // objects): the rest of it is not read, the new version is the next run's. Failing
        // instead would fail every retry of the pending plan that names it.
        let changed = |key: &str| {
            tracing::warn!(
                key = %key,
                "the object was deleted or replaced since the plan: the rest of this version is not read; a new version is ingested by the next run"
            );
        };
        let mut r = reader(&store, &bucket, &part.key, part.size, &part.etag)?;
        let meta = match ArrowReaderMetadata::load_async(&mut r, ArrowReaderOptions::new()).await {
            Ok(m) => Some(m),
            Err(e) if is_object_changed(&e) => None,
            Err(e) => Err(parquet_error(&bucket, &part.key, e))?,
        };
        let groups = meta.as_ref().map_or(0, |m| m.metadata().num_row_groups());
        if meta.is_none() {
            changed(&part.key);
        }
        'groups: for group in first..groups {
            let Some(meta) = meta.as_ref() else { break };
            let r = reader(&store, &bucket, &part.key, part.size, &part.etag)?;
            let mut batches = ParquetRecordBatchStreamBuilder::new_with_metadata(r, meta.clone())
                .with_row_groups(vec![group])
                .with_batch_size(batch_rows)
                .build()
                .map_err(|e| parquet_error(&bucket, &part.key, e))?;
            while let Some(b) = batches.next().await {
                let b = match b {
                    Ok(b) => b,
                    Err(e) if is_object_changed(&e) => {
                        changed(&part.key);
                        break 'groups;
                    }
                    Err(e) => Err(parquet_error(&bucket, &part.key, e))?,
                };
                yield ReadItem::Batch(conform(&b, &schema, &object)?);
            }
            yield ReadItem::Checkpoint(Position { offset: group as u64 + 1, line: 0 });
        }
    })
}
