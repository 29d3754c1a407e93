//! Example connector: deterministic sensor readings, no network and no files.
//!
//! Every sensor reports once a minute; reading `(sensor, minute)` is a pure function of
//! `(seed, sensor, minute)` ([`readings_batch`]), so any extract can be checked exactly.
//! The source holds minutes `1..=minutes`: raise `minutes` between runs to simulate time
//! passing. Each sensor is one partition; the cursor is the last minute extracted.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use connector_sdk::{
    Connector, ConnectorError, Cursor, Partition, Plan, ReadContext, ReadItem, ReadStream,
    StreamDescriptor, async_trait,
};
use serde::Deserialize;
use serde_json::json;

/// The one stream.
pub const READINGS: &str = "readings";
/// Minute 0 is 2024-01-01T00:00:00Z, in microseconds since the epoch.
const EPOCH_US: i64 = 1_704_067_200_000_000;

/// Configuration of the generated source.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SensorReadingsConfig {
    /// Number of sensors (1-1000); each one is a partition.
    pub sensors: u32,
    /// Minutes of readings the source holds (`1..=minutes`).
    pub minutes: u64,
    /// Minutes per Arrow batch (at least 1).
    #[serde(default = "default_batch_minutes")]
    pub batch_minutes: u64,
    /// Seed of the generator; the same seed gives the same readings.
    #[serde(default)]
    pub seed: u64,
    /// Sleep this long before each batch (simulates a slow source for stop tests).
    #[serde(default)]
    pub batch_delay_ms: u64,
}

fn default_batch_minutes() -> u64 {
    60
}

/// The connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct SensorReadings;

/// The Arrow schema of `readings`.
pub fn readings_schema() -> SchemaRef {
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("sensor", DataType::Utf8, false),
        Field::new("minute", DataType::Int64, false),
        Field::new("read_at", utc, false),
        Field::new("temperature_c", DataType::Float64, false),
        Field::new("humidity_pct", DataType::Float64, true),
    ]))
}

fn hash(seed: u64, sensor: u32, minute: u64) -> u64 {
    let mut z = seed ^ (u64::from(sensor) << 40) ^ minute.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 31)
}

/// Readings of `sensor` for minutes `first..=last`. Humidity is null on dropouts.
pub fn readings_batch(seed: u64, sensor: u32, first: u64, last: u64) -> RecordBatch {
    let minutes: Vec<i64> = (first as i64..=last as i64).collect();
    let h: Vec<u64> = (first..=last).map(|m| hash(seed, sensor, m)).collect();
    let name = format!("s{sensor:03}");
    let at = minutes.iter().map(|m| EPOCH_US + m * 60_000_000);
    let temperature = h.iter().map(|x| 15.0 + (x % 1500) as f64 / 100.0);
    let humidity = h
        .iter()
        .map(|x| (x % 29 != 0).then(|| 30.0 + ((x >> 16) % 600) as f64 / 10.0));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(minutes.iter().map(|_| &name))),
        Arc::new(Int64Array::from(minutes.clone())),
        Arc::new(TimestampMicrosecondArray::from_iter_values(at).with_timezone("UTC")),
        Arc::new(Float64Array::from_iter_values(temperature)),
        Arc::new(Float64Array::from_iter(humidity)),
    ];
    RecordBatch::try_new(readings_schema(), columns).expect("columns match the schema")
}

fn validate(config: &SensorReadingsConfig) -> Result<(), ConnectorError> {
    if !(1..=1000).contains(&config.sensors) {
        return Err(ConnectorError::config("sensors must be between 1 and 1000"));
    }
    if config.batch_minutes == 0 {
        return Err(ConnectorError::config("batch_minutes must be at least 1"));
    }
    Ok(())
}

/// `{"minute": n}` -> n.
fn minute_of(c: &Cursor) -> Result<u64, ConnectorError> {
    c.get("minute")
        .and_then(|m| m.as_u64())
        .ok_or_else(|| ConnectorError::internal(format!("cursor {c} is not {{\"minute\": <n>}}")))
}

#[async_trait]
impl Connector for SensorReadings {
    type Config = SensorReadingsConfig;
    const MANIFEST: &'static str = include_str!("../connector.toml");

    async fn check(&self, config: &Self::Config) -> Result<(), ConnectorError> {
        validate(config)
    }

    async fn discover(
        &self,
        config: &Self::Config,
    ) -> Result<Vec<StreamDescriptor>, ConnectorError> {
        validate(config)?;
        Ok(vec![StreamDescriptor {
            name: READINGS.into(),
            schema: readings_schema(),
            cursor_field: Some("minute".into()),
            primary_key: vec!["sensor".into(), "minute".into()],
            write_disposition: None,
        }])
    }

    async fn plan(
        &self,
        config: &Self::Config,
        _stream: &StreamDescriptor,
        cursor: Option<&Cursor>,
    ) -> Result<Plan, ConnectorError> {
        validate(config)?;
        let first = cursor.map(minute_of).transpose()?.unwrap_or(0) + 1;
        if first > config.minutes {
            return Ok(Plan {
                partitions: vec![],
                cursor: cursor.cloned(),
            });
        }
        let partitions = (1..=config.sensors)
            .map(|s| Partition {
                id: format!("s{s:03}-{first}"),
                hive: vec![("sensor".into(), format!("s{s:03}"))],
                spec: json!({"sensor": s, "first": first, "last": config.minutes}),
            })
            .collect();
        Ok(Plan {
            partitions,
            cursor: Some(json!({"minute": config.minutes})),
        })
    }

    fn read<'a>(
        &'a self,
        config: &'a Self::Config,
        _stream: &'a StreamDescriptor,
        partition: &'a Partition,
        ctx: ReadContext,
    ) -> ReadStream<'a> {
        Box::pin(async_stream::try_stream! {
            let spec = |k: &str| partition.spec.get(k).and_then(|v| v.as_u64()).ok_or_else(|| {
                ConnectorError::internal(format!("partition {} has no `{k}`", partition.id))
            });
            let (sensor, last) = (spec("sensor")? as u32, spec("last")?);
            // Resume right after the checkpoint, if the core hands one back.
            let mut next = match &ctx.checkpoint {
                Some(c) => minute_of(c)? + 1,
                None => spec("first")?,
            };
            while next <= last {
                if config.batch_delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(config.batch_delay_ms)).await;
                }
                let end = last.min(next + config.batch_minutes - 1);
                yield ReadItem::Batch(readings_batch(config.seed, sensor, next, end));
                // A checkpoint after every batch: the core can stop (and resume) here.
                yield ReadItem::Checkpoint(json!({"minute": end}));
                next = end + 1;
            }
        })
    }
}
