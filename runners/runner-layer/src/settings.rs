//! The extract options a user sets, defined once and read the same way from every input:
//! CLI flags (`--part-size 16MiB`), the `CONNECTOR_*` environment (`CONNECTOR_PART_SIZE`,
//! how ECS passes them to the Fargate container), a Lambda event's `options`
//! (`{"part_size": "16MiB"}`), a daemon job's `extract` table (`part_size = "16MiB"`)
//! and a Glue job's `--extract_args` (the flags of `extract-partition`).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use connector_sdk::{
    COMMIT_INTERVAL_BYTES_RANGE, COMMIT_INTERVAL_SECS_RANGE, Codec, Dictionary, Error,
    ExtractOptions, OutputLocation, SchemaEvolution, WriteDisposition,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A size in bytes, written as a whole number with an optional binary unit: `5MiB`,
/// `512KiB`, `1GiB`, `4096` (bytes). In JSON and TOML also a plain integer of bytes.
///
/// Hand-written rather than the `bytesize` crate: that one accepts decimal units
/// (`5MB` = 5 000 000) and fractions, and a `5MB` part size that silently falls under
/// S3's 5 MiB multipart minimum is the kind of mistake this type exists to refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

const UNITS: [(&str, u64); 4] = [
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("B", 1),
];

impl ByteSize {
    /// `n` mebibytes.
    pub const fn mib(n: u64) -> Self {
        Self(n << 20)
    }
    /// `n` kibibytes.
    pub const fn kib(n: u64) -> Self {
        Self(n << 10)
    }
}

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(digits);
        let unit = unit.trim();
        let bad = || {
            format!(
                "{s:?} is not a size; use a whole number with KiB, MiB or GiB (e.g. 8MiB), or bytes"
            )
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        let factor = if unit.is_empty() {
            1
        } else if let Some((_, f)) = UNITS.iter().find(|(u, _)| u.eq_ignore_ascii_case(unit)) {
            *f
        } else if ["kb", "mb", "gb", "k", "m", "g"].contains(&unit.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{s:?} uses a decimal or ambiguous unit; use binary units KiB, MiB or GiB (e.g. 8MiB)"
            ));
        } else {
            return Err(bad());
        };
        n.checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that divides the size exactly: `8MiB`, `1536KiB`, `100B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, factor) in UNITS {
            if self.0 >= factor && self.0.is_multiple_of(factor) {
                return write!(f, "{}{unit}", self.0 / factor);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a size: a whole number with KiB, MiB or GiB (e.g. \"8MiB\"), or bytes",
            )
        })? {
            Raw::Bytes(n) => Ok(ByteSize(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A size: a whole number with KiB, MiB or GiB (e.g. \"8MiB\"), or bytes.",
            "type": ["string", "integer"],
            "pattern": "^[0-9]+ *([KMG]iB|B)?$",
            "minimum": 0
        })
    }
}

/// Every extract option a user can set, with the same name on every input path. Unset
/// options take the defaults below; [`ExtractSettings::resolve`] checks every value and
/// turns them into the core's [`ExtractOptions`].
///
/// On the command line `--<name-with-dashes>`; in the environment `CONNECTOR_<NAME>`
/// (flags win); in a Lambda event's `options`, a daemon job's `extract` table and the JSON
/// Schema (`spec`) `<name>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ExtractSettings {
    /// Parquet compression codec: zstd, snappy, lz4 or none [default: zstd]
    #[arg(long, env = "CONNECTOR_CODEC", value_name = "CODEC", value_parser = parse_codec)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<Codec>,
    /// Zstandard level, 1..=22, when the codec is zstd [default: 1]
    #[arg(long, env = "CONNECTOR_ZSTD_LEVEL", value_name = "LEVEL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zstd_level: Option<i32>,
    /// Maximum rows per Parquet row group, 1..=16777216 [default: 65536]
    #[arg(long, env = "CONNECTOR_ROW_GROUP_ROWS", value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_group_rows: Option<usize>,
    /// Dictionary encoding: auto (off for mostly-distinct columns), always or never
    /// [default: auto]
    #[arg(long, env = "CONNECTOR_DICTIONARY", value_name = "MODE", value_parser = parse_dictionary)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dictionary: Option<Dictionary>,
    /// Roll to a new file once a file reaches this size, 1KiB..=10000 × part_size (S3's
    /// part count limit) [default: 128MiB]
    #[arg(long, env = "CONNECTOR_TARGET_FILE_SIZE", value_name = "SIZE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_file_size: Option<ByteSize>,
    /// Multipart part size, 5MiB..=512MiB [default: 8MiB]
    #[arg(long, env = "CONNECTOR_PART_SIZE", value_name = "SIZE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<ByteSize>,
    /// Part buffers in memory at once, being filled or uploaded: memory for parts is at
    /// most this × part_size, 1..=256 [default: one per partition read at once]
    #[arg(long, env = "CONNECTOR_MAX_BUFFERED_PARTS", value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_buffered_parts: Option<usize>,
    /// Partitions of a stream read at once, 1..=256 [default: 2; Fargate: the task's
    /// vCPUs; Glue: one per Spark task, so it does not apply]
    #[arg(long, env = "CONNECTOR_CONCURRENCY", value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Stop reading after this many seconds, commit what was read and report a partial
    /// run (run again to continue), up to 604800 (7 days) [default: no limit but the
    /// runner's own: Lambda's deadline]
    #[arg(long, env = "CONNECTOR_MAX_RUNTIME_SECS", value_name = "SECS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runtime_secs: Option<f64>,
    /// A source column the stream's table does not have: evolve (add it to the table),
    /// freeze (refuse the run before reading, naming the column) or discard_columns (drop
    /// it from the data) [default: evolve]
    #[arg(long, env = "CONNECTOR_SCHEMA_EVOLUTION", value_name = "POLICY", value_parser = parse_schema_evolution)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_evolution: Option<SchemaEvolution>,
    /// How a complete run's rows land: append (add files), replace (the table becomes
    /// exactly this run's rows, in one commit) or merge (upsert by the stream's primary
    /// key) [default: append for incremental streams, replace for the others]
    #[arg(long, env = "CONNECTOR_WRITE_DISPOSITION", value_name = "MODE", value_parser = parse_write_disposition)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_disposition: Option<WriteDisposition>,
    /// Commit what has been read every this many seconds and read on, so a hard kill
    /// (SIGKILL, an OOM kill, a timeout) loses at most this much work; the next run resumes
    /// from the last commit. 1..=604800 [default: 300]
    #[arg(long, env = "CONNECTOR_COMMIT_INTERVAL_SECS", value_name = "SECS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_interval_secs: Option<u64>,
    /// Also commit and read on once this much data has been written since the last
    /// commit, 1MiB..=1024GiB [default: 1GiB]
    #[arg(long, env = "CONNECTOR_COMMIT_INTERVAL_SIZE", value_name = "SIZE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_interval_size: Option<ByteSize>,
    /// Encrypt every object written (data files, the table's log) with SSE-KMS under this
    /// key: key id, key ARN or alias/NAME [default: the bucket's default encryption]
    #[arg(long, env = "CONNECTOR_SSE_KMS_KEY_ID", value_name = "KEY")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_kms_key_id: Option<String>,
    /// The 12-digit AWS account that must own the output bucket; every request carries
    /// it (ExpectedBucketOwner) and another account's bucket refuses them [default: not
    /// checked]
    #[arg(long, env = "CONNECTOR_EXPECTED_BUCKET_OWNER", value_name = "ACCOUNT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_bucket_owner: Option<String>,
    /// A source endpoint (host:port) this deployment may reach (repeatable; the
    /// environment takes a comma-separated list): the config's endpoints must be among
    /// them, as well as among the manifest's declared ones, or the run is refused before
    /// any connection [default: only the manifest's are checked]
    #[arg(
        long,
        env = "CONNECTOR_ALLOWED_ENDPOINTS",
        value_name = "HOST:PORT",
        value_delimiter = ','
    )]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_endpoints: Vec<String>,
    /// The governance policy file (TOML) whose runner rules are checked before any I/O
    /// [default: the policy embedded in the binary, governance/policy.toml]
    #[arg(long, env = "CONNECTOR_GOVERNANCE_POLICY", value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub governance_policy: Option<std::path::PathBuf>,
}

/// `s` as a codec; the message without the SDK's "invalid request:" prefix (clap adds
/// its own).
fn parse_codec(s: &str) -> Result<Codec, String> {
    s.parse().map_err(|e| request_message(&e))
}

fn parse_dictionary(s: &str) -> Result<Dictionary, String> {
    s.parse().map_err(|e| request_message(&e))
}

fn parse_schema_evolution(s: &str) -> Result<SchemaEvolution, String> {
    s.parse().map_err(|e| request_message(&e))
}

fn parse_write_disposition(s: &str) -> Result<WriteDisposition, String> {
    s.parse().map_err(|e| request_message(&e))
}

fn request_message(e: &Error) -> String {
    match e {
        Error::Request { message: m, .. } => m.clone(),
        other => other.to_string(),
    }
}

/// Bounds of the settings (memory and S3 limits).
const MAX_ROW_GROUP_ROWS: usize = 1 << 24;
const MIN_PART: ByteSize = ByteSize::mib(5);
const MAX_PART: ByteSize = ByteSize::mib(512);
const MIN_TARGET_FILE: ByteSize = ByteSize::kib(1);
/// S3 allows at most 10 000 parts per multipart upload.
const MAX_PARTS_PER_FILE: u64 = 10_000;
const MAX_BUFFERED_PARTS: usize = 256;
const MAX_CONCURRENCY: usize = 256;
const MAX_RUNTIME_SECS: f64 = 7.0 * 86_400.0;

impl ExtractSettings {
    /// The names of every option, as on every input path (snake_case; dashes on the
    /// command line, `CONNECTOR_` + upper case in the environment).
    pub fn names() -> Vec<String> {
        let schema = schemars::schema_for!(ExtractSettings);
        schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// `self` with every option `other` sets taking precedence.
    pub fn overridden_by(&self, other: &ExtractSettings) -> ExtractSettings {
        ExtractSettings {
            codec: other.codec.or(self.codec),
            zstd_level: other.zstd_level.or(self.zstd_level),
            row_group_rows: other.row_group_rows.or(self.row_group_rows),
            dictionary: other.dictionary.or(self.dictionary),
            target_file_size: other.target_file_size.or(self.target_file_size),
            part_size: other.part_size.or(self.part_size),
            max_buffered_parts: other.max_buffered_parts.or(self.max_buffered_parts),
            concurrency: other.concurrency.or(self.concurrency),
            max_runtime_secs: other.max_runtime_secs.or(self.max_runtime_secs),
            schema_evolution: other.schema_evolution.or(self.schema_evolution),
            write_disposition: other.write_disposition.or(self.write_disposition),
            commit_interval_secs: other.commit_interval_secs.or(self.commit_interval_secs),
            commit_interval_size: other.commit_interval_size.or(self.commit_interval_size),
            sse_kms_key_id: other
                .sse_kms_key_id
                .clone()
                .or_else(|| self.sse_kms_key_id.clone()),
            expected_bucket_owner: other
                .expected_bucket_owner
                .clone()
                .or_else(|| self.expected_bucket_owner.clone()),
            allowed_endpoints: if other.allowed_endpoints.is_empty() {
                self.allowed_endpoints.clone()
            } else {
                other.allowed_endpoints.clone()
            },
            governance_policy: other
                .governance_policy
                .clone()
                .or_else(|| self.governance_policy.clone()),
        }
    }

    /// Check every value and build the core's options for `output`. No I/O. Errors name
    /// the option and the range that would be valid.
    pub fn resolve(&self, output: OutputLocation) -> Result<ExtractOptions, Error> {
        let bad = |m: String| Err(Error::request(m));
        let mut o = ExtractOptions::new(output);
        if let Some(c) = self.codec {
            o.parquet.codec = c;
        }
        if let Some(level) = self.zstd_level {
            if !(1..=22).contains(&level) {
                return bad(format!("zstd_level = {level} is outside 1..=22"));
            }
            o.parquet.zstd_level = level;
        }
        if let Some(n) = self.row_group_rows {
            if !(1..=MAX_ROW_GROUP_ROWS).contains(&n) {
                return bad(format!(
                    "row_group_rows = {n} is outside 1..={MAX_ROW_GROUP_ROWS}"
                ));
            }
            o.parquet.row_group_rows = n;
        }
        if let Some(d) = self.dictionary {
            o.parquet.dictionary = d;
        }
        if let Some(p) = self.schema_evolution {
            o.schema_evolution = p;
        }
        o.write_disposition = self.write_disposition;
        if let Some(p) = self.part_size {
            if !(MIN_PART..=MAX_PART).contains(&p) {
                return bad(format!(
                    "part_size = {p} is outside {MIN_PART}..={MAX_PART} (S3's 5 MiB multipart minimum; the upper bound keeps memory bounded)"
                ));
            }
            o.upload.part_bytes = p.0 as usize;
        }
        let part = o.upload.part_bytes as u64;
        if let Some(t) = self.target_file_size {
            let max = ByteSize(part.saturating_mul(MAX_PARTS_PER_FILE));
            if !(MIN_TARGET_FILE..=max).contains(&t) {
                return bad(format!(
                    "target_file_size = {t} is outside {MIN_TARGET_FILE}..={max} (at most 10000 parts of part_size = {})",
                    ByteSize(part)
                ));
            }
            o.parquet.target_file_bytes = t.0;
        }
        if let Some(n) = self.max_buffered_parts {
            if !(1..=MAX_BUFFERED_PARTS).contains(&n) {
                return bad(format!(
                    "max_buffered_parts = {n} is outside 1..={MAX_BUFFERED_PARTS}"
                ));
            }
            o.upload.max_buffered_parts = Some(n);
        }
        if let Some(n) = self.concurrency {
            if !(1..=MAX_CONCURRENCY).contains(&n) {
                return bad(format!(
                    "concurrency = {n} is outside 1..={MAX_CONCURRENCY}"
                ));
            }
            o.max_concurrent_partitions = n;
        }
        if let Some(s) = self.max_runtime_secs
            && !(s.is_finite() && s > 0.0 && s <= MAX_RUNTIME_SECS)
        {
            return bad(format!(
                "max_runtime_secs = {s} is not a number of seconds in (0, {MAX_RUNTIME_SECS}]"
            ));
        }
        if let Some(secs) = self.commit_interval_secs {
            if !COMMIT_INTERVAL_SECS_RANGE.contains(&secs) {
                return bad(format!(
                    "commit_interval_secs = {secs} is outside {}..={} (a second to a week)",
                    COMMIT_INTERVAL_SECS_RANGE.start(),
                    COMMIT_INTERVAL_SECS_RANGE.end()
                ));
            }
            o.commit_interval.secs = secs;
        }
        if let Some(size) = self.commit_interval_size {
            let (min, max) = (
                ByteSize(*COMMIT_INTERVAL_BYTES_RANGE.start()),
                ByteSize(*COMMIT_INTERVAL_BYTES_RANGE.end()),
            );
            if !(min..=max).contains(&size) {
                return bad(format!(
                    "commit_interval_size = {size} is outside {min}..={max}"
                ));
            }
            o.commit_interval.bytes = size.0;
        }
        o.sse_kms_key_id = self.sse_kms_key_id.clone();
        o.expected_bucket_owner = self.expected_bucket_owner.clone();
        o.allowed_endpoints = self.allowed_endpoints.clone();
        o.governance_policy = self.governance_policy.clone();
        o.validate()?;
        Ok(o)
    }

    /// When a run started at `start` must stop reading: `start + max_runtime_secs`
    /// (`None`: no limit). Call after [`resolve`](Self::resolve), which checks the value.
    pub fn deadline(&self, start: Instant) -> Option<Instant> {
        let secs = self.max_runtime_secs?;
        if !(secs.is_finite() && secs > 0.0) {
            return None;
        }
        start.checked_add(Duration::from_secs_f64(secs.min(MAX_RUNTIME_SECS)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out() -> OutputLocation {
        "s3://bkt/p".parse().unwrap()
    }

    #[test]
    fn sizes_parse_in_binary_units_only() {
        for (text, bytes) in [
            ("8MiB", 8 << 20),
            ("8 mib", 8 << 20),
            ("512KiB", 512 << 10),
            ("1GiB", 1 << 30),
            ("4096", 4096),
            ("0", 0),
            ("7B", 7),
        ] {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)), "{text}");
        }
        for bad in [
            "",
            "MiB",
            "1.5MiB",
            "-1MiB",
            "8MB",
            "8m",
            "8 TiB",
            "99999999999999GiB",
        ] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad}");
        }
        assert!(
            "8MB"
                .parse::<ByteSize>()
                .unwrap_err()
                .contains("binary units")
        );
        for size in [
            ByteSize::mib(8),
            ByteSize::kib(1536),
            ByteSize(100),
            ByteSize(0),
        ] {
            assert_eq!(size.to_string().parse::<ByteSize>(), Ok(size));
        }
        assert_eq!(ByteSize::mib(8).to_string(), "8MiB");
    }

    #[test]
    fn defaults_are_the_cores() {
        assert_eq!(
            ExtractSettings::default().resolve(out()).unwrap(),
            ExtractOptions::new(out())
        );
    }

    #[test]
    fn every_limit_is_checked_with_the_option_named() {
        let cases: Vec<(ExtractSettings, &str)> = vec![
            (
                ExtractSettings {
                    zstd_level: Some(0),
                    ..Default::default()
                },
                "zstd_level",
            ),
            (
                ExtractSettings {
                    zstd_level: Some(23),
                    ..Default::default()
                },
                "zstd_level",
            ),
            (
                ExtractSettings {
                    row_group_rows: Some(0),
                    ..Default::default()
                },
                "row_group_rows",
            ),
            (
                ExtractSettings {
                    row_group_rows: Some(usize::MAX),
                    ..Default::default()
                },
                "row_group_rows",
            ),
            (
                ExtractSettings {
                    part_size: Some(ByteSize(0)),
                    ..Default::default()
                },
                "part_size",
            ),
            (
                ExtractSettings {
                    part_size: Some(ByteSize(5 * 1024 * 1024 - 1)),
                    ..Default::default()
                },
                "part_size",
            ),
            (
                ExtractSettings {
                    part_size: Some(ByteSize(u64::MAX)),
                    ..Default::default()
                },
                "part_size",
            ),
            (
                ExtractSettings {
                    target_file_size: Some(ByteSize(1023)),
                    ..Default::default()
                },
                "target_file_size",
            ),
            (
                ExtractSettings {
                    target_file_size: Some(ByteSize(u64::MAX)),
                    ..Default::default()
                },
                "target_file_size",
            ),
            (
                ExtractSettings {
                    max_buffered_parts: Some(0),
                    ..Default::default()
                },
                "max_buffered_parts",
            ),
            (
                ExtractSettings {
                    max_buffered_parts: Some(257),
                    ..Default::default()
                },
                "max_buffered_parts",
            ),
            (
                ExtractSettings {
                    concurrency: Some(0),
                    ..Default::default()
                },
                "concurrency",
            ),
            (
                ExtractSettings {
                    concurrency: Some(usize::MAX),
                    ..Default::default()
                },
                "concurrency",
            ),
        ];
        let mut cases = cases;
        for s in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300] {
            cases.push((
                ExtractSettings {
                    max_runtime_secs: Some(s),
                    ..Default::default()
                },
                "max_runtime_secs",
            ));
        }
        for secs in [0, 604_801, u64::MAX] {
            cases.push((
                ExtractSettings {
                    commit_interval_secs: Some(secs),
                    ..Default::default()
                },
                "commit_interval_secs",
            ));
        }
        for size in [0, (1 << 20) - 1, (1 << 40) + 1, u64::MAX] {
            cases.push((
                ExtractSettings {
                    commit_interval_size: Some(ByteSize(size)),
                    ..Default::default()
                },
                "commit_interval_size",
            ));
        }
        for (settings, name) in cases {
            let e = settings.resolve(out()).unwrap_err().to_string();
            assert!(e.contains(name), "{settings:?}: {e}");
            assert!(matches!(
                settings.resolve(out()),
                Err(Error::Request { .. })
            ));
        }
        // The edges themselves are accepted.
        let edges = ExtractSettings {
            zstd_level: Some(22),
            row_group_rows: Some(1 << 24),
            part_size: Some(ByteSize::mib(512)),
            target_file_size: Some(ByteSize(512 * 1024 * 1024 * 10_000)),
            max_buffered_parts: Some(256),
            concurrency: Some(256),
            max_runtime_secs: Some(604_800.0),
            commit_interval_secs: Some(604_800),
            commit_interval_size: Some(ByteSize(1 << 40)),
            ..Default::default()
        };
        let o = edges.resolve(out()).unwrap();
        assert_eq!(o.upload.part_bytes, 512 << 20);
        assert_eq!(o.commit_interval.secs, 604_800);
        assert_eq!(o.commit_interval.bytes, 1 << 40);
        assert!(edges.deadline(Instant::now()).is_some());
        let low = ExtractSettings {
            zstd_level: Some(1),
            row_group_rows: Some(1),
            part_size: Some(ByteSize::mib(5)),
            target_file_size: Some(ByteSize::kib(1)),
            max_buffered_parts: Some(1),
            concurrency: Some(1),
            max_runtime_secs: Some(f64::MIN_POSITIVE),
            commit_interval_secs: Some(1),
            commit_interval_size: Some(ByteSize::mib(1)),
            ..Default::default()
        };
        assert!(low.resolve(out()).is_ok());
    }

    #[test]
    fn later_inputs_override_earlier_ones() {
        let base = ExtractSettings {
            codec: Some(Codec::Snappy),
            concurrency: Some(3),
            ..Default::default()
        };
        let top = ExtractSettings {
            concurrency: Some(5),
            ..Default::default()
        };
        let merged = base.overridden_by(&top);
        assert_eq!(merged.codec, Some(Codec::Snappy));
        assert_eq!(merged.concurrency, Some(5));
    }
}
