//! Reading one partition: a snapshot, one `COPY (SELECT ...) TO STDOUT (FORMAT binary)`,
//! decoded into Arrow batches, each followed by a checkpoint (the last key read).

use std::sync::{Arc, Weak};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Int16Type, Int32Type, Int64Type, SchemaRef, TimestampMicrosecondType,
};
use connector_sdk::{ConnectorError, ConnectorErrorKind, ReadItem};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::catalog::{ResolvedStream, column_sql, text_literal};
use crate::config::PostgresConfig;
use crate::connect::{connect, pg_error};
use crate::copy_binary::{CopyParser, DecodeError, Decoder, Fed};
use crate::plan::{PartitionSpec, bound_sql, cursor_predicates, range_predicates};
use crate::types::KeyKind;

/// A partition's resume point: the key of the last row read (`{"key": [...]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyCheckpoint {
    /// One value per key column, in key order.
    pub key: Vec<KeyValue>,
}

/// One key column's value in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeyValue {
    /// Integers, and dates (days) and timestamps (microseconds) since 1970-01-01.
    Int(i64),
    /// Text, uuid and numeric keys, as the server's text.
    Text(String),
}

impl std::fmt::Display for KeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyValue::Int(i) => write!(f, "{i}"),
            KeyValue::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// What the partitions of one run share in this process: the snapshot exported for them,
/// so that partitions read on separate connections see one consistent state of the source.
/// Dropping it (the run's reads ended) closes the connection that holds the snapshot.
#[derive(Debug)]
pub struct PostgresRun {
    snapshot: Arc<Mutex<Option<Exported>>>,
    hold: Duration,
}

/// An exported snapshot and the connection whose open transaction keeps it importable.
#[derive(Debug)]
struct Exported {
    /// The plan whose partitions import it.
    plan: String,
    id: String,
    /// Partitions of the plan that have not imported it yet.
    remaining: u32,
    _holder: Client,
}

impl PostgresRun {
    /// A run that exports its snapshot on first use and releases it after
    /// `snapshot_hold_secs` even if some partitions never come.
    pub fn new(config: &PostgresConfig) -> Self {
        Self {
            snapshot: Arc::default(),
            hold: Duration::from_secs(config.snapshot_hold_secs),
        }
    }

    /// The id of the snapshot shared by the partitions of `spec.plan`, exporting it on
    /// first use.
    async fn shared_snapshot(
        &self,
        config: &PostgresConfig,
        spec: &PartitionSpec,
    ) -> Option<String> {
        let mut slot = self.snapshot.lock().await;
        if let Some(e) = slot.as_ref()
            && e.plan == spec.plan
        {
            return Some(e.id.clone());
        }
        let holder = connect(config).await.ok()?;
        let exported = async {
            holder
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await?;
            let row = holder.query_one("SELECT pg_export_snapshot()", &[]).await?;
            Ok::<String, tokio_postgres::Error>(row.get(0))
        }
        .await;
        let id = match exported {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, "cannot export a snapshot; partitions read their own snapshots");
                return None;
            }
        };
        *slot = Some(Exported {
            plan: spec.plan.clone(),
            id: id.clone(),
            remaining: spec.count,
            _holder: holder,
        });
        // Release the snapshot after the hold time even if some partitions never come.
        let (weak, plan, hold) = (Arc::downgrade(&self.snapshot), spec.plan.clone(), self.hold);
        tokio::spawn(release_after(weak, plan, hold));
        Some(id)
    }

    /// One more partition of `plan` imported the snapshot; the last one releases it.
    async fn snapshot_imported(&self, plan: &str) {
        let mut slot = self.snapshot.lock().await;
        if let Some(e) = slot.as_mut()
            && e.plan == plan
        {
            e.remaining = e.remaining.saturating_sub(1);
            if e.remaining == 0 {
                *slot = None;
            }
        }
    }
}

async fn release_after(slot: Weak<Mutex<Option<Exported>>>, plan: String, hold: Duration) {
    tokio::time::sleep(hold).await;
    if let Some(slot) = slot.upgrade() {
        let mut slot = slot.lock().await;
        if slot.as_ref().is_some_and(|e| e.plan == plan) {
            *slot = None;
        }
    }
}

/// Open the read connection and its repeatable-read transaction, on the plan's shared
/// snapshot when there is one.
pub(crate) async fn open(
    config: &PostgresConfig,
    run: &PostgresRun,
    spec: &PartitionSpec,
) -> Result<Client, ConnectorError> {
    let snapshot = if config.shared_snapshot && spec.count > 1 {
        run.shared_snapshot(config, spec).await
    } else {
        None
    };
    let client = connect(config).await?;
    let begin = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
    client
        .batch_execute(begin)
        .await
        .map_err(|e| pg_error("starting the read transaction", e))?;
    if let Some(id) = snapshot {
        match client
            .batch_execute(&format!("SET TRANSACTION SNAPSHOT {}", text_literal(&id)))
            .await
        {
            Ok(()) => {
                tracing::debug!(plan = %spec.plan, partition = spec.index, snapshot = %id, "imported the plan's snapshot");
                run.snapshot_imported(&spec.plan).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, partition = spec.index, "cannot import the plan's snapshot; this partition reads its own");
                client
                    .batch_execute(&format!("ROLLBACK; {begin}"))
                    .await
                    .map_err(|e| pg_error("starting the read transaction", e))?;
            }
        }
    }
    Ok(client)
}

/// SQL of one key value of a checkpoint.
fn key_value_sql(kind: KeyKind, v: &KeyValue) -> Result<String, ConnectorError> {
    Ok(match (kind, v) {
        (KeyKind::Text, KeyValue::Text(t)) => text_literal(t),
        (KeyKind::Int, KeyValue::Int(i)) => i.to_string(),
        (KeyKind::Text, KeyValue::Int(_)) | (_, KeyValue::Text(_)) => {
            return Err(ConnectorError::internal(format!(
                "checkpoint key value {v} does not match its column type ({kind:?}); did the stream's key change?"
            )));
        }
        (k, KeyValue::Int(i)) => bound_sql(k, *i),
    })
}

/// The statement a partition runs.
pub(crate) fn copy_sql(
    stream: &ResolvedStream,
    spec: &PartitionSpec,
    checkpoint: Option<&KeyCheckpoint>,
) -> Result<String, ConnectorError> {
    let select: Vec<String> = stream.columns.iter().map(column_sql).collect();
    let mut predicates = range_predicates(stream, spec);
    predicates.extend(cursor_predicates(stream, spec));
    let key_cols: Vec<String> = stream
        .key
        .iter()
        .map(|&i| column_sql(&stream.columns[i]))
        .collect();
    if let Some(c) = checkpoint {
        if key_cols.is_empty() {
            return Err(ConnectorError::internal(format!(
                "stream `{}` has a checkpoint but no key",
                stream.name
            )));
        }
        let kinds = stream.key_kinds();
        if c.key.len() != kinds.len() {
            return Err(ConnectorError::internal(format!(
                "stream `{}`: the checkpoint has {} key values, the stream's key has {} columns; did the stream's key change?",
                stream.name,
                c.key.len(),
                kinds.len()
            )));
        }
        let lits = kinds
            .iter()
            .zip(&c.key)
            .map(|(k, v)| key_value_sql(*k, v))
            .collect::<Result<Vec<_>, _>>()?;
        predicates.push(format!("({}) > ({})", key_cols.join(", "), lits.join(", ")));
    }
    let mut sql = format!(
        "COPY (SELECT {} FROM {}",
        select.join(", "),
        stream.source.sql_from_clause()
    );
    if !predicates.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&predicates.join(" AND "));
    }
    if !key_cols.is_empty() {
        sql.push_str(" ORDER BY ");
        sql.push_str(&key_cols.join(", "));
    }
    sql.push_str(") TO STDOUT (FORMAT binary)");
    Ok(sql)
}

/// The checkpoint after `batch`: the key of its last row.
fn checkpoint_after(
    stream: &ResolvedStream,
    batch: &RecordBatch,
) -> Result<Option<KeyCheckpoint>, ConnectorError> {
    if stream.key.is_empty() || batch.num_rows() == 0 {
        return Ok(None);
    }
    let row = batch.num_rows() - 1;
    let mut values = Vec::with_capacity(stream.key.len());
    for &i in &stream.key {
        let a = batch.column(i);
        if a.is_null(row) {
            return Err(ConnectorError::config(format!(
                "stream `{}`: key column `{}` is NULL; `key` columns must be non-null and unique",
                stream.name,
                stream.column_name(i)
            )));
        }
        let v = match a.data_type() {
            DataType::Int16 => KeyValue::Int(a.as_primitive::<Int16Type>().value(row).into()),
            DataType::Int32 => KeyValue::Int(a.as_primitive::<Int32Type>().value(row).into()),
            DataType::Int64 => KeyValue::Int(a.as_primitive::<Int64Type>().value(row)),
            DataType::Date32 => KeyValue::Int(a.as_primitive::<Date32Type>().value(row).into()),
            DataType::Timestamp(_, _) => {
                KeyValue::Int(a.as_primitive::<TimestampMicrosecondType>().value(row))
            }
            DataType::Utf8 => KeyValue::Text(a.as_string::<i32>().value(row).to_string()),
            DataType::Decimal128(_, _) => KeyValue::Text(
                a.as_primitive::<arrow::datatypes::Decimal128Type>()
                    .value_as_string(row),
            ),
            other => {
                return Err(ConnectorError::internal(format!(
                    "stream `{}`: key column `{}` has Arrow type {other}",
                    stream.name,
                    stream.column_name(i)
                )));
            }
        };
        values.push(v);
    }
    Ok(Some(KeyCheckpoint { key: values }))
}

/// Turn a decode error into a connector error naming the stream and column.
fn decode_error(stream: &ResolvedStream, e: DecodeError) -> ConnectorError {
    let column = e
        .column
        .map(|i| format!(" column `{}`", stream.column_name(i)))
        .unwrap_or_default();
    let kind = if e.unsupported {
        ConnectorErrorKind::Unsupported
    } else {
        ConnectorErrorKind::Source
    };
    ConnectorError::new(
        kind,
        format!(
            "stream `{}` ({}){column}: {}",
            stream.name,
            stream.source.display(),
            e.message
        ),
    )
}

/// The batch of the values in `decoders`, which are replaced by empty ones sized like
/// this batch (a finished Arrow builder keeps no capacity: refilling it from empty would
/// grow and copy every buffer about sixteen times per batch).
fn finish_batch(
    stream: &ResolvedStream,
    schema: &SchemaRef,
    decoders: &mut [Decoder],
    batch_rows: usize,
) -> Result<RecordBatch, ConnectorError> {
    let mut columns = Vec::with_capacity(decoders.len());
    for (i, (decoder, column)) in decoders.iter_mut().zip(&stream.columns).enumerate() {
        let array = decoder.finish().map_err(|mut e| {
            e.column = Some(i);
            decode_error(stream, *e)
        })?;
        *decoder = Decoder::new(&column.ty, batch_rows.min(1 << 18), value_bytes(&array));
        columns.push(array);
    }
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| ConnectorError::internal(format!("building a batch: {e}")))
}

/// The bytes of values (not offsets) of a variable-length array, else 0.
fn value_bytes(array: &dyn Array) -> usize {
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().values().len(),
        DataType::Binary => array.as_binary::<i32>().values().len(),
        _ => 0,
    }
}

/// Read one partition: batches, each followed by its checkpoint when the stream has a key.
pub(crate) fn read_partition<'a>(
    config: &'a PostgresConfig,
    run: &'a PostgresRun,
    stream_name: &'a str,
    spec: &'a PartitionSpec,
    checkpoint: Option<KeyCheckpoint>,
) -> impl futures::Stream<Item = Result<ReadItem<KeyCheckpoint>, ConnectorError>> + Send + 'a {
    async_stream::try_stream! {
        let client = open(config, run, spec).await?;
        let stream = crate::catalog::resolve_named(&client, config, stream_name).await?;
        let schema = stream.descriptor().schema;
        let sql = copy_sql(&stream, spec, checkpoint.as_ref())?;
        tracing::debug!(stream = %stream.name, partition = spec.index, resumed = checkpoint.is_some(), "copy started");
        let copy = client
            .copy_out(sql.as_str())
            .await
            .map_err(|e| pg_error(&format!("stream `{}`: starting the COPY", stream.name), e))?;
        futures::pin_mut!(copy);
        let batch_rows = config.batch_rows;
        let mut decoders: Vec<Decoder> = stream
            .columns
            .iter()
            .map(|c| Decoder::new(&c.ty, batch_rows.min(16_384), 0))
            .collect();
        let mut parser = CopyParser::new(decoders.len());
        let mut rows = 0u64;
        while let Some(chunk) = copy.next().await {
            let chunk = chunk.map_err(|e| pg_error(&format!("stream `{}`: reading the COPY", stream.name), e))?;
            let mut data: &[u8] = &chunk;
            loop {
                let fed = parser
                    .feed(data, &mut decoders, batch_rows)
                    .map_err(|e| decode_error(&stream, *e))?;
                data = &[];
                if fed != Fed::BatchFull {
                    break;
                }
                let batch = finish_batch(&stream, &schema, &mut decoders, batch_rows)?;
                rows += batch.num_rows() as u64;
                let cp = checkpoint_after(&stream, &batch)?;
                yield ReadItem::Batch(batch);
                if let Some(cp) = cp {
                    yield ReadItem::Checkpoint(cp);
                }
            }
        }
        if !parser.is_done() {
            Err(ConnectorError::source_error(format!(
                "stream `{}`: the COPY stream ended before its trailer",
                stream.name
            )))?;
        }
        if decoders.first().map(Decoder::len).unwrap_or(0) > 0 {
            let batch = finish_batch(&stream, &schema, &mut decoders, batch_rows)?;
            rows += batch.num_rows() as u64;
            let cp = checkpoint_after(&stream, &batch)?;
            yield ReadItem::Batch(batch);
            if let Some(cp) = cp {
                yield ReadItem::Checkpoint(cp);
            }
        }
        tracing::debug!(stream = %stream.name, partition = spec.index, rows, "copy finished");
        drop(client);
    }
}
