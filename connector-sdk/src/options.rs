//! What an extract writes and where: output location, Parquet and upload settings.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An `s3://bucket/prefix` output location.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(with = "String")]
pub struct OutputLocation {
    /// The bucket.
    pub bucket: String,
    /// The key prefix, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl OutputLocation {
    /// The key of `rest` under the prefix.
    pub fn key(&self, rest: &str) -> String {
        if self.prefix.is_empty() {
            rest.to_string()
        } else {
            format!("{}/{}", self.prefix, rest)
        }
    }
}

impl FromStr for OutputLocation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Err(Error::request(format!(
                "output {s:?} is not a valid S3 location: {why}; expected s3://bucket/prefix"
            )))
        };
        let Some(rest) = s.strip_prefix("s3://") else {
            return bad("it must start with s3://");
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.len() < 3
            || bucket.len() > 63
            || !bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            || bucket.starts_with(['-', '.'])
            || bucket.ends_with(['-', '.'])
        {
            return bad("the bucket name must be 3-63 characters of a-z, 0-9, '-' and '.'");
        }
        let prefix = prefix.trim_matches('/');
        if prefix.contains("//") || prefix.split('/').any(|p| p == "." || p == "..") {
            return bad("the prefix must not contain empty, '.' or '..' segments");
        }
        Ok(OutputLocation {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

impl fmt::Display for OutputLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

impl Serialize for OutputLocation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OutputLocation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parquet compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// Zstandard (default).
    #[default]
    Zstd,
    /// Snappy.
    Snappy,
    /// LZ4 (raw).
    Lz4,
    /// No compression.
    None,
}

impl FromStr for Codec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "zstd" => Ok(Codec::Zstd),
            "snappy" => Ok(Codec::Snappy),
            "lz4" => Ok(Codec::Lz4),
            "none" | "uncompressed" => Ok(Codec::None),
            _ => Err(Error::request(format!(
                "codec {s:?} is unknown; use zstd, snappy, lz4 or none"
            ))),
        }
    }
}

/// Which columns are dictionary-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Dictionary {
    /// Decided per column from the first batch of each partition, at most 65 536 of its
    /// rows (default): off for a column whose values are mostly distinct (more than three
    /// in four of at least 1024 non-null values), where a dictionary costs hashing time
    /// and makes the file larger; on otherwise. Such a column stored as Parquet INT32/INT64
    /// (integers, dates, times, timestamps) is written DELTA_BINARY_PACKED, and one stored
    /// as BYTE_ARRAY (strings, binary) DELTA_BYTE_ARRAY, not PLAIN (readers before Spark
    /// 3.3 cannot decode them: use `always` for them).
    #[default]
    Auto,
    /// On for every column (what most Parquet writers do; a dictionary that grows too
    /// large falls back to PLAIN).
    Always,
    /// Off for every column.
    Never,
}

impl FromStr for Dictionary {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Dictionary::Auto),
            "always" => Ok(Dictionary::Always),
            "never" => Ok(Dictionary::Never),
            _ => Err(Error::request(format!(
                "dictionary mode {s:?} is unknown; use auto, always or never"
            ))),
        }
    }
}

/// What a run does when the source's schema differs from the stream's table (dlt's
/// schema contracts are the model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchemaEvolution {
    /// A new source column is added to the table (nullable: earlier files lack it).
    #[default]
    Evolve,
    /// A new source column is refused before anything is read, with the column named.
    Freeze,
    /// A new source column is dropped from every batch; the table keeps its columns.
    DiscardColumns,
}

impl FromStr for SchemaEvolution {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "evolve" => Ok(SchemaEvolution::Evolve),
            "freeze" => Ok(SchemaEvolution::Freeze),
            "discard_columns" => Ok(SchemaEvolution::DiscardColumns),
            _ => Err(Error::request(format!(
                "schema evolution policy {s:?} is unknown; use evolve, freeze or discard_columns"
            ))),
        }
    }
}

/// How a complete run's rows land in the stream's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteDisposition {
    /// The commit adds the run's files (the default for incremental streams).
    #[default]
    Append,
    /// The commit removes every file of the previous table version and adds the run's, in
    /// one commit (the default for streams without a cursor). A run that stops early
    /// stages its files; they become visible, and the old ones go, only when the plan
    /// completes: readers see the old table or the new one, never a mix.
    Replace,
    /// Upsert by the stream's `primary_key`: in one commit, the table's rows whose key the
    /// run has are replaced by the run's, and new keys are appended. The files holding
    /// replaced rows are rewritten without them (copy-on-write; no deletion vectors, so
    /// every Delta reader reads the table). The key columns must be declared and
    /// non-nullable, and a run must not hold one key twice.
    Merge,
}

impl FromStr for WriteDisposition {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "append" => Ok(WriteDisposition::Append),
            "replace" => Ok(WriteDisposition::Replace),
            "merge" => Ok(WriteDisposition::Merge),
            _ => Err(Error::request(format!(
                "write disposition {s:?} is unknown; use append, replace or merge"
            ))),
        }
    }
}

/// How Parquet files are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ParquetOptions {
    /// Compression codec.
    pub codec: Codec,
    /// Zstandard level (1..=22), when `codec` is `zstd`.
    pub zstd_level: i32,
    /// Maximum rows per row group.
    pub row_group_rows: usize,
    /// Dictionary encoding: `auto`, `always` or `never`.
    pub dictionary: Dictionary,
    /// A file is closed and a new one started once it reaches this many bytes.
    pub target_file_bytes: u64,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        Self {
            codec: Codec::Zstd,
            zstd_level: 1,
            row_group_rows: 64 * 1024,
            dictionary: Dictionary::Auto,
            target_file_bytes: 128 * 1024 * 1024,
        }
    }
}

/// How files are uploaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UploadOptions {
    /// Multipart part size in bytes (at least 5 MiB, S3's minimum).
    pub part_bytes: usize,
    /// Part buffers held in memory at once across the whole run, being filled or being
    /// uploaded: memory for parts is at most this many × `part_bytes`, however many rows
    /// the run writes. Default (unset): one per partition read at once
    /// (`max_concurrent_partitions`), so a partition waits for its part's upload before it
    /// fills the next; a larger value lets partitions keep encoding while parts upload.
    pub max_buffered_parts: Option<usize>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            part_bytes: 8 * 1024 * 1024,
            max_buffered_parts: None,
        }
    }
}

/// How often a run commits what it has read so far and goes on reading, so a hard kill
/// (SIGKILL, an OOM kill, a Lambda timeout) loses at most one interval of work: the next
/// run resumes from the last intermediate commit. A commit is due when either limit is
/// reached; the run stops its partitions at their next checkpoint, commits (a partial
/// commit: the pending plan and the files so far, exactly as a stopped run's) and goes on
/// from that commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CommitInterval {
    /// Seconds of reading between commits.
    pub secs: u64,
    /// Bytes of finished data files between commits.
    pub bytes: u64,
}

/// The default commit interval: five minutes (a third of Lambda's longest invocation).
pub const DEFAULT_COMMIT_INTERVAL_SECS: u64 = 300;
/// The default commit interval in bytes of data files: 1 GiB.
pub const DEFAULT_COMMIT_INTERVAL_BYTES: u64 = 1 << 30;
/// Bounds of [`CommitInterval`]: at least a second and 1 MiB (each commit costs a table
/// version and stops every partition at a checkpoint), at most a week and 1 TiB.
pub const COMMIT_INTERVAL_SECS_RANGE: std::ops::RangeInclusive<u64> = 1..=7 * 86_400;
/// See [`COMMIT_INTERVAL_SECS_RANGE`].
pub const COMMIT_INTERVAL_BYTES_RANGE: std::ops::RangeInclusive<u64> = (1 << 20)..=(1 << 40);

impl Default for CommitInterval {
    fn default() -> Self {
        Self {
            secs: DEFAULT_COMMIT_INTERVAL_SECS,
            bytes: DEFAULT_COMMIT_INTERVAL_BYTES,
        }
    }
}

/// Everything about one extract except the connector config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractOptions {
    /// Where the dataset goes: `s3://bucket/prefix`.
    pub output: OutputLocation,
    /// Parquet settings.
    #[serde(default)]
    pub parquet: ParquetOptions,
    /// Upload settings.
    #[serde(default)]
    pub upload: UploadOptions,
    /// Partitions of a stream read at once.
    #[serde(default = "default_concurrency")]
    pub max_concurrent_partitions: usize,
    /// What to do with a source column the table does not have.
    #[serde(default)]
    pub schema_evolution: SchemaEvolution,
    /// How rows land; `None`: `append` for incremental streams (with a cursor field),
    /// `replace` for the others.
    #[serde(default)]
    pub write_disposition: Option<WriteDisposition>,
    /// How often a long run commits what it has so far (bounded loss on a hard kill).
    #[serde(default)]
    pub commit_interval: CommitInterval,
    /// Encrypt every object the run writes (data files, the table's log, reports) with
    /// SSE-KMS under this key: a key id, key ARN or `alias/...`. Unset: the bucket's
    /// default encryption.
    #[serde(default)]
    pub sse_kms_key_id: Option<String>,
    /// The 12-digit AWS account that must own the output bucket: every request carries
    /// it (`ExpectedBucketOwner`), and a bucket of another account refuses them (403).
    #[serde(default)]
    pub expected_bucket_owner: Option<String>,
    /// The source endpoints (`host:port`) this deployment may reach; the config's
    /// endpoints must be among them as well as among the manifest's. Empty: only the
    /// manifest's are checked.
    #[serde(default)]
    pub allowed_endpoints: Vec<String>,
    /// The governance policy file checked before any I/O; unset: the policy embedded in
    /// the binary (`governance/policy.toml`).
    #[serde(default)]
    pub governance_policy: Option<std::path::PathBuf>,
}

fn default_concurrency() -> usize {
    2
}

impl ExtractOptions {
    /// Options with defaults for `output`.
    pub fn new(output: OutputLocation) -> Self {
        Self {
            output,
            parquet: ParquetOptions::default(),
            upload: UploadOptions::default(),
            max_concurrent_partitions: default_concurrency(),
            schema_evolution: SchemaEvolution::default(),
            write_disposition: None,
            commit_interval: CommitInterval::default(),
            sse_kms_key_id: None,
            expected_bucket_owner: None,
            allowed_endpoints: Vec::new(),
            governance_policy: None,
        }
    }

    /// Part buffers held in memory at once: `upload.max_buffered_parts`, or one per
    /// partition read at once.
    pub fn buffered_parts(&self) -> usize {
        self.upload
            .max_buffered_parts
            .unwrap_or(self.max_concurrent_partitions)
            .max(1)
    }

    /// Check the values; no I/O.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::request(m));
        if self.upload.part_bytes < 5 * 1024 * 1024 {
            return bad(format!(
                "upload.part_bytes = {} is below S3's 5 MiB multipart minimum (5242880)",
                self.upload.part_bytes
            ));
        }
        if self.upload.part_bytes > 512 * 1024 * 1024 {
            return bad(format!(
                "upload.part_bytes = {} is above 512 MiB; use a smaller part size to bound memory",
                self.upload.part_bytes
            ));
        }
        if self.upload.max_buffered_parts == Some(0) {
            return bad(
                "upload.max_buffered_parts must be at least 1 (or unset: one per partition read at once)"
                    .into(),
            );
        }
        if self.max_concurrent_partitions == 0 {
            return bad("max_concurrent_partitions must be at least 1".into());
        }
        if self.parquet.row_group_rows == 0 {
            return bad("parquet.row_group_rows must be at least 1".into());
        }
        if self.parquet.target_file_bytes < 1024 {
            return bad(format!(
                "parquet.target_file_bytes = {} is too small; use at least 1024",
                self.parquet.target_file_bytes
            ));
        }
        if !COMMIT_INTERVAL_SECS_RANGE.contains(&self.commit_interval.secs) {
            return bad(format!(
                "commit_interval.secs = {} is outside {}..={}",
                self.commit_interval.secs,
                COMMIT_INTERVAL_SECS_RANGE.start(),
                COMMIT_INTERVAL_SECS_RANGE.end()
            ));
        }
        if !COMMIT_INTERVAL_BYTES_RANGE.contains(&self.commit_interval.bytes) {
            return bad(format!(
                "commit_interval.bytes = {} is outside {}..={} (1 MiB..=1 TiB)",
                self.commit_interval.bytes,
                COMMIT_INTERVAL_BYTES_RANGE.start(),
                COMMIT_INTERVAL_BYTES_RANGE.end()
            ));
        }
        for e in &self.allowed_endpoints {
            if e.parse::<crate::governance::Endpoint>().is_err() {
                return bad(format!(
                    "allowed_endpoints: {e:?} is not host:port (e.g. db.internal:5432 or [fd00::1]:5432)"
                ));
            }
        }
        if let Some(owner) = &self.expected_bucket_owner
            && !(owner.len() == 12 && owner.bytes().all(|b| b.is_ascii_digit()))
        {
            return bad(format!(
                "expected_bucket_owner = {owner:?} is not an AWS account id; use the 12 digits of the account that owns the output bucket"
            ));
        }
        if let Some(key) = &self.sse_kms_key_id
            && (key.is_empty()
                || key.len() > 2048
                || key.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return bad(format!(
                "sse_kms_key_id = {key:?} is not a KMS key: use a key id, a key ARN (arn:aws:kms:...) or an alias (alias/...)"
            ));
        }
        if self.parquet.codec == Codec::Zstd && !(1..=22).contains(&self.parquet.zstd_level) {
            return bad(format!(
                "parquet.zstd_level = {} is outside 1..=22",
                self.parquet.zstd_level
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_urls() {
        let o: OutputLocation = "s3://my-bucket/a/b/".parse().unwrap();
        assert_eq!(o.bucket, "my-bucket");
        assert_eq!(o.prefix, "a/b");
        assert_eq!(o.key("x"), "a/b/x");
        assert_eq!(o.to_string(), "s3://my-bucket/a/b");
        let o: OutputLocation = "s3://my-bucket".parse().unwrap();
        assert_eq!(o.key("x"), "x");
        for bad in [
            "my-bucket/x",
            "s3://ab/x",
            "s3://Bad_Bucket/x",
            "http://b/x",
            "s3://bkt/a/../b",
        ] {
            let e = bad.parse::<OutputLocation>().unwrap_err().to_string();
            assert!(e.contains("expected s3://bucket/prefix"), "{e}");
        }
    }

    #[test]
    fn options_reject_small_parts() {
        let mut o = ExtractOptions::new("s3://bkt/p".parse().unwrap());
        assert!(o.validate().is_ok());
        o.upload.part_bytes = 1024;
        assert!(o.validate().unwrap_err().to_string().contains("5 MiB"));
    }
}
