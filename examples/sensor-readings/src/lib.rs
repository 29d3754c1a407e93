//! Example connector: deterministic sensor readings, no network and no files.
//!
//! Every sensor reports once a minute; reading `(sensor, minute)` is a pure function of
//! `(seed, sensor, minute)` ([`readings_batch`]), so any extract can be checked exactly.
//! The source holds minutes `1..=minutes`: raise `minutes` between runs to simulate time
//! passing. Each sensor is one partition; the cursor is the last minute extracted, and a
//! checkpoint the last minute read in a partition. The core stores these typed values as
//! JSON in the table's state: the connector never parses JSON.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use connector_sdk::{
    Connector, ConnectorError, Partition, Plan, ReadContext, ReadItem, ReadStream,
    StreamDescriptor, async_trait,
};
use serde::{Deserialize, Serialize};

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

/// The stream cursor and a partition's checkpoint: the last minute extracted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Minute {
    /// The minute.
    pub minute: u64,
}

/// One sensor's minutes `first..=last`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorSpan {
    /// The sensor.
    pub sensor: u32,
    /// The first minute to read.
    pub first: u64,
    /// The last minute to read.
    pub last: u64,
}

#[async_trait]
impl Connector for SensorReadings {
    type Config = SensorReadingsConfig;
    type Cursor = Minute;
    type PartitionSpec = SensorSpan;
    type Checkpoint = Minute;
    type Run = ();
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
        cursor: Option<&Minute>,
    ) -> Result<Plan<SensorSpan, Minute>, ConnectorError> {
        validate(config)?;
        let first = cursor.map_or(0, |c| c.minute) + 1;
        if first > config.minutes {
            return Ok(Plan {
                partitions: vec![],
                cursor: cursor.copied(),
            });
        }
        let partitions = (1..=config.sensors)
            .map(|sensor| Partition {
                id: format!("s{sensor:03}-{first}"),
                hive: vec![("sensor".into(), format!("s{sensor:03}"))],
                spec: SensorSpan {
                    sensor,
                    first,
                    last: config.minutes,
                },
            })
            .collect();
        Ok(Plan {
            partitions,
            cursor: Some(Minute {
                minute: config.minutes,
            }),
        })
    }

    /// The cursor's minute is a point in time: runners report how far it is behind.
    fn cursor_time(&self, cursor: &Minute) -> Option<chrono::DateTime<chrono::Utc>> {
        let micros =
            EPOCH_US.checked_add(i64::try_from(cursor.minute).ok()?.checked_mul(60_000_000)?)?;
        chrono::DateTime::from_timestamp_micros(micros)
    }

    async fn open_run(&self, _: &Self::Config, _: &StreamDescriptor) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn read<'a>(
        &'a self,
        config: &'a Self::Config,
        _run: &'a (),
        _stream: &'a StreamDescriptor,
        partition: &'a Partition<SensorSpan>,
        ctx: ReadContext<Minute>,
    ) -> ReadStream<'a, Minute> {
        let SensorSpan {
            sensor,
            first,
            last,
        } = partition.spec;
        // Resume right after the checkpoint, if the core hands one back.
        let mut next = ctx.checkpoint.map_or(first, |c| c.minute + 1);
        Box::pin(async_stream::try_stream! {
            while next <= last {
                if config.batch_delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(config.batch_delay_ms)).await;
                }
                let end = last.min(next + config.batch_minutes - 1);
                yield ReadItem::Batch(readings_batch(config.seed, sensor, next, end));
                // A checkpoint after every batch: the core can stop (and resume) here.
                yield ReadItem::Checkpoint(Minute { minute: end });
                next = end + 1;
            }
        })
    }
}
