//! S3 file ingestion: the objects under a prefix (CSV, JSON Lines, Parquet; gzip or zstd)
//! into the stream's table.
//!
//! - **Plan**: list the prefix, keep the keys the glob matches whose version (ETag) is not
//!   in the cursor yet: one partition per object, or per byte range of a large
//!   uncompressed text object (ranges aligned to record boundaries when read: a range owns
//!   the records that start inside it).
//! - **Read**: the object body is streamed (decompressed on the fly) and cut into records;
//!   every `batch_rows` records are decoded with `arrow-csv` / `arrow-json` and followed by
//!   a checkpoint (the next record's offset and line), so memory follows the batch size,
//!   not the object size, and a stopped run resumes inside the object. Parquet is read row
//!   group by row group (checkpoint: the next row group).
//! - **Bad rows** fail the run naming object and line, or go to the rejects location with
//!   their line, byte offset and reason.
//! - **Cursor**: every ingested object's key and ETag, committed with the data: each
//!   object version is ingested exactly once; new and changed objects are picked up by the
//!   next run.

pub mod config;
mod parquet_read;
mod text_read;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use connector_sdk::{
    Connector, ConnectorError, ConnectorErrorKind, ListedObject, Partition, Plan, ReadContext,
    ReadStream, S3Options, S3Store, StreamDescriptor, async_trait,
};
use serde::{Deserialize, Serialize};

pub use config::{BadRows, Compression, Format, S3FilesConfig, StreamConfig};

/// The committed cursor: the ingested object versions (key → ETag) of the settle
/// window, and a watermark below which every object counts as ingested.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ingested {
    /// Key → ETag of each ingested object still in the settle window.
    pub objects: BTreeMap<String, String>,
    /// Key → last-modified (seconds since the epoch) of the same objects: what moves
    /// them out of the window. A key without one (a cursor written before the window
    /// existed) stays.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub modified: BTreeMap<String, i64>,
    /// Objects last modified before this (seconds since the epoch) count as ingested:
    /// the newest last-modified of the last full listing that moved it, less
    /// `settle_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_before: Option<i64>,
}

impl Ingested {
    /// Whether `o` (this version of it) is still to be ingested.
    fn wants(&self, o: &ListedObject) -> bool {
        if self.objects.get(&o.key) == Some(&version(o)) {
            return false;
        }
        // Older than the watermark and not remembered: ingested by a run that has since
        // let it out of the window (a changed object is modified again, so it is newer).
        // (An object listed without a last-modified time is never under it.)
        self.objects.contains_key(&o.key)
            || o.last_modified_secs <= 0
            || self
                .settled_before
                .is_none_or(|w| o.last_modified_secs >= w)
    }

    /// Remember `o` as ingested.
    fn insert(&mut self, o: &ListedObject) {
        self.objects.insert(o.key.clone(), version(o));
        if o.last_modified_secs > 0 {
            self.modified.insert(o.key.clone(), o.last_modified_secs);
        }
    }

    /// Move the watermark up to `watermark` (never down) and forget the objects below it.
    fn settle(&mut self, watermark: i64) {
        let w = self
            .settled_before
            .map_or(watermark, |old| old.max(watermark));
        self.settled_before = Some(w);
        let old: Vec<String> = self
            .modified
            .iter()
            .filter(|(_, m)| **m < w)
            .map(|(k, _)| k.clone())
            .collect();
        for k in old {
            self.objects.remove(&k);
            self.modified.remove(&k);
        }
    }
}

/// One partition's work: an object, or a byte range of one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPart {
    /// Object key.
    pub key: String,
    /// Its ETag when planned.
    pub etag: String,
    /// Its size when planned.
    pub size: u64,
    /// The compression it is read with.
    pub compression: Option<Compression>,
    /// The byte range `[start, end)` whose records this partition reads (records that
    /// start inside it); none: the whole object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<(u64, u64)>,
}

/// Where a partition's read stands: the next record's byte offset (in the decompressed
/// body) and line number (1-based; 0 when not known, in a range after the first), or for
/// Parquet the next row group (`offset`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Next record offset, or next row group.
    pub offset: u64,
    /// Next record's line number (0: unknown).
    pub line: u64,
}

/// The connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct S3Files;

/// What a run's partitions share: the S3 client for the source objects.
#[derive(Debug, Clone)]
pub struct Source {
    store: S3Store,
}

/// The S3 client for the source bucket: the runner's settings, or the config's
/// connection.
async fn source_store(config: &S3FilesConfig) -> Result<S3Store, ConnectorError> {
    let mut options = S3Options::default();
    if let Some(c) = &config.connection {
        options.endpoint_url = c.endpoint_url.clone();
        options.region = c.region.clone();
        if let (Some(id), Some(secret)) = (&c.access_key_id, &c.secret_access_key) {
            let secret = secret.resolve("secret access key")?;
            options.static_credentials = Some(connector_sdk::StaticCredentials {
                access_key_id: id.clone(),
                secret_access_key: connector_sdk::ExposeSecret::expose_secret(&secret).to_string(),
            });
        }
    }
    Ok(S3Store::connect(&options).await)
}

fn stream_config<'a>(
    config: &'a S3FilesConfig,
    name: &str,
) -> Result<&'a StreamConfig, ConnectorError> {
    connector_sdk::config_stream(&config.streams, name, |s| s.name.as_str())
}

fn s3_error(what: &str, e: connector_sdk::Error) -> ConnectorError {
    let retryable = e.is_retryable();
    let kind = if retryable {
        ConnectorErrorKind::Source
    } else {
        ConnectorErrorKind::Config
    };
    ConnectorError::new(
        kind,
        format!("{what}: {}", connector_sdk::one_line(&e.to_string())),
    )
    .with_source(e)
}

/// The objects of `stream` (sorted by key): under its prefix, matching its glob, not
/// directory markers, and among `config.objects` when set.
async fn list_objects(
    store: &S3Store,
    config: &S3FilesConfig,
    s: &StreamConfig,
) -> Result<Vec<ListedObject>, ConnectorError> {
    let pattern = s
        .glob
        .as_deref()
        .map(glob::Pattern::new)
        .transpose()
        .map_err(|e| ConnectorError::config(format!("stream `{}`: glob: {e}", s.name)))?;
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let mut listed = store
        .list(&config.bucket, &s.prefix)
        .await
        .map_err(|e| s3_error(&format!("listing s3://{}/{}", config.bucket, s.prefix), e))?;
    listed.retain(|o| {
        let rest = &o.key[s.prefix.len().min(o.key.len())..];
        !o.key.ends_with('/')
            && pattern
                .as_ref()
                .is_none_or(|p| p.matches_with(rest, options))
            && config
                .objects
                .as_ref()
                .is_none_or(|only| only.contains(&o.key))
    });
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(listed)
}

/// An object's version as the cursor records it: its ETag, or — from an S3-compatible
/// server that lists none — its size and modification time.
fn version(o: &ListedObject) -> String {
    if o.etag.is_empty() {
        format!("{NO_ETAG}{}-{}", o.size, o.last_modified_secs)
    } else {
        o.etag.clone()
    }
}

/// The prefix of a version that is not an ETag (never sent as `If-Match`).
pub(crate) const NO_ETAG: &str = "size+mtime:";

/// FNV-1a, for stable partition ids.
/// The byte ranges an object of `size` bytes (more than `split`) is read as: ranges of
/// `split` bytes, except that the last stretch (more than `split`, at most twice it) is cut
/// into halving pieces — a half, a quarter and two eighths of it. Partitions start in plan
/// order, so the small pieces come last and the workers (or Glue executors) finish
/// together, instead of one reading a last full range while the others idle.
fn byte_ranges(size: u64, split: u64) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    let mut start = 0;
    while size - start > split.saturating_mul(2) {
        ranges.push((start, start + split));
        start += split;
    }
    let tail = size - start;
    for piece in [tail / 2, tail / 4, tail / 8] {
        ranges.push((start, start + piece));
        start += piece;
    }
    ranges.push((start, size));
    ranges
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The stream's schema: declared, or inferred from its first object.
async fn stream_schema(
    store: &S3Store,
    config: &S3FilesConfig,
    s: &StreamConfig,
) -> Result<SchemaRef, ConnectorError> {
    if let Some(cols) = &s.schema {
        return connector_sdk::columns::schema_of(cols);
    }
    let mut unrestricted = config.clone();
    unrestricted.objects = None;
    let objects = list_objects(store, &unrestricted, s).await?;
    let first = objects.first().ok_or_else(|| {
        ConnectorError::config(format!(
            "stream `{}`: no object under s3://{}/{} to infer the schema from; declare `schema`",
            s.name, config.bucket, s.prefix
        ))
    })?;
    match &s.format {
        Format::Parquet => parquet_read::schema(store, &config.bucket, first).await,
        _ => text_read::infer_schema(store, &config.bucket, s, first).await,
    }
}

#[async_trait]
impl Connector for S3Files {
    type Config = S3FilesConfig;
    type Cursor = Ingested;
    type PartitionSpec = ObjectPart;
    type Checkpoint = Position;
    type Run = Source;

    const MANIFEST: &'static str = include_str!("../connector.toml");

    fn source_endpoints(&self, config: &S3FilesConfig) -> Vec<String> {
        config
            .connection
            .as_ref()
            .and_then(|c| c.endpoint_url.as_deref())
            .and_then(config::url_endpoint)
            .into_iter()
            .collect()
    }

    fn for_objects(
        &self,
        config: &S3FilesConfig,
        objects: &[(String, String)],
    ) -> Option<Result<S3FilesConfig, ConnectorError>> {
        if let Some((bucket, key)) = objects.iter().find(|(b, _)| *b != config.bucket) {
            return Some(Err(ConnectorError::config(format!(
                "the event names s3://{bucket}/{key}, but the connector reads bucket `{}`; send this bucket's notifications to a function configured for it",
                config.bucket
            ))));
        }
        let mut restricted = config.clone();
        let mut keys: Vec<String> = objects.iter().map(|(_, k)| k.clone()).collect();
        keys.sort();
        keys.dedup();
        restricted.objects = Some(keys);
        Some(Ok(restricted))
    }

    async fn check(&self, config: &S3FilesConfig) -> Result<(), ConnectorError> {
        config::validate(config)?;
        let store = source_store(config).await?;
        for s in &config.streams {
            list_objects(&store, config, s).await?;
        }
        Ok(())
    }

    async fn discover(
        &self,
        config: &S3FilesConfig,
    ) -> Result<Vec<StreamDescriptor>, ConnectorError> {
        config::validate(config)?;
        let store = source_store(config).await?;
        let mut out = Vec::new();
        for s in &config.streams {
            out.push(StreamDescriptor {
                name: s.name.clone(),
                schema: stream_schema(&store, config, s).await?,
                cursor_field: None,
                primary_key: s.primary_key.clone(),
                write_disposition: Some(
                    s.write_disposition
                        .unwrap_or(connector_sdk::WriteDisposition::Append),
                ),
            });
        }
        Ok(out)
    }

    async fn plan(
        &self,
        config: &S3FilesConfig,
        stream: &StreamDescriptor,
        cursor: Option<&Ingested>,
    ) -> Result<Plan<ObjectPart, Ingested>, ConnectorError> {
        config::validate(config)?;
        let s = stream_config(config, &stream.name)?;
        let store = source_store(config).await?;
        let listed = list_objects(&store, config, s).await?;
        let previous = cursor.cloned().unwrap_or_default();
        let new: Vec<&ListedObject> = listed.iter().filter(|o| previous.wants(o)).collect();
        if let Some(only) = &config.objects {
            for k in only {
                if !listed.iter().any(|o| o.key == *k) && k.starts_with(&s.prefix) {
                    tracing::warn!(stream = %s.name, key = %k, "an object the event names is not there (deleted, or not matched by the glob); skipped");
                }
            }
        }
        if new.is_empty() {
            return Ok(Plan {
                partitions: Vec::new(),
                cursor: None,
            });
        }
        let splittable = |o: &ListedObject| match &s.format {
            Format::Csv {
                quoted_newlines, ..
            } => !quoted_newlines && s.compression.of(&o.key) == Compression::None,
            Format::Jsonl => s.compression.of(&o.key) == Compression::None,
            Format::Parquet => false,
        };
        let mut partitions = Vec::new();
        let mut next = previous.clone();
        // The watermark moves only on a full listing (an event's run lists only its own
        // keys, so it cannot vouch for the others), and on the store's clock: the newest
        // last-modified listed, not this host's time, so a runner clock ahead of S3 cannot
        // put it in the future.
        if config.objects.is_none()
            && let Some(newest) = listed.iter().map(|o| o.last_modified_secs).max()
            && newest > 0
        {
            next.settle(newest.saturating_sub(s.settle_secs as i64));
        }
        for o in new {
            let etag = version(o);
            next.insert(o);
            let id = format!("{:016x}", fnv(&format!("{}\n{etag}", o.key)));
            let compression = Some(s.compression.of(&o.key));
            if splittable(o) && o.size > s.split_bytes {
                for (i, range) in byte_ranges(o.size, s.split_bytes).into_iter().enumerate() {
                    partitions.push(Partition {
                        id: format!("{id}-{i}"),
                        hive: Vec::new(),
                        spec: ObjectPart {
                            key: o.key.clone(),
                            etag: etag.clone(),
                            size: o.size,
                            compression,
                            range: Some(range),
                        },
                    });
                }
            } else {
                partitions.push(Partition {
                    id,
                    hive: Vec::new(),
                    spec: ObjectPart {
                        key: o.key.clone(),
                        etag: etag.clone(),
                        size: o.size,
                        compression,
                        range: None,
                    },
                });
            }
        }
        Ok(Plan {
            partitions,
            cursor: Some(next),
        })
    }

    async fn open_run(
        &self,
        config: &S3FilesConfig,
        _stream: &StreamDescriptor,
    ) -> Result<Source, ConnectorError> {
        Ok(Source {
            store: source_store(config).await?,
        })
    }

    fn read<'a>(
        &'a self,
        config: &'a S3FilesConfig,
        run: &'a Source,
        stream: &'a StreamDescriptor,
        partition: &'a Partition<ObjectPart>,
        ctx: ReadContext<Position>,
    ) -> ReadStream<'a, Position> {
        let s = match stream_config(config, &stream.name) {
            Ok(s) => s,
            Err(e) => return Box::pin(futures::stream::once(async { Err(e) })),
        };
        let store = run.store.clone();
        match &s.format {
            Format::Parquet => parquet_read::read(
                store,
                config.bucket.clone(),
                stream.schema.clone(),
                s.batch_rows,
                partition.spec.clone(),
                ctx.checkpoint,
            ),
            _ => text_read::read(
                Arc::new(text_read::TextRead {
                    store,
                    bucket: config.bucket.clone(),
                    rejects: config.rejects.as_deref().and_then(config::parse_s3_url),
                    stream: s.clone(),
                    schema: stream.schema.clone(),
                    partition_id: partition.id.clone(),
                    part: partition.spec.clone(),
                    null_regex: match &s.format {
                        config::Format::Csv { null_values, .. } => {
                            text_read::null_regex(null_values)
                        }
                        _ => None,
                    },
                }),
                ctx.checkpoint,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::byte_ranges;

    #[test]
    fn byte_ranges_cover_the_object_once_with_halving_last_pieces() {
        let cases = [
            (1025, 1024),
            (2048, 1024),
            (2049, 1024),
            (3 * 1024 + 1, 1024),
            (1_388_186_073, 128 << 20),
            (777_986_126, 128 << 20),
            (10 * (128 << 20), 128 << 20),
            (u64::MAX, u64::MAX - 1),
            (u64::MAX, 1 << 40),
        ];
        for (size, split) in cases {
            let r = byte_ranges(size, split);
            // Contiguous from 0 to the end, none empty, none above `split`.
            assert_eq!(r[0].0, 0, "{size} {split}");
            assert_eq!(r.last().unwrap().1, size, "{size} {split}");
            for w in r.windows(2) {
                assert_eq!(w[0].1, w[1].0, "{size} {split}: {r:?}");
            }
            assert!(r.iter().all(|(a, b)| b > a && b - a <= split), "{r:?}");
            // Full ranges, then a tail of more than one and at most two ranges' worth,
            // in four pieces: half, quarter, eighth, the rest.
            let (full, tail) = r.split_at(r.len() - 4);
            assert!(full.iter().all(|(a, b)| b - a == split), "{r:?}");
            let tail_len = size - tail[0].0;
            assert!(tail_len > split && tail_len <= 2 * split.min(u64::MAX / 2) + 1);
            let lens: Vec<u64> = tail.iter().map(|(a, b)| b - a).collect();
            assert_eq!(lens[..3], [tail_len / 2, tail_len / 4, tail_len / 8]);
            assert!(lens[3] >= lens[2] && lens[3] <= lens[2] + 3, "{lens:?}");
        }
        // The benchmark's 1.39 GB object at 128 MiB: 9 full ranges, then 1.34 ranges'
        // worth in four.
        assert_eq!(byte_ranges(1_388_186_073, 128 << 20).len(), 13);
    }
}
