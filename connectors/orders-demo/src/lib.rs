//! Demo connector: deterministic synthetic orders.
//!
//! Order `i` (1-based) is a pure function of `(seed, i)`, so any extract can be checked
//! against [`orders_batch`]. Orders are spread over days (`rows_per_day` per day, from
//! 2024-01-01 UTC); each day is one partition with a `dt=` hive folder. The cursor is the
//! last extracted `order_id`: raise `rows` between runs to simulate new orders.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Builder, Float64Builder, Int32Builder, Int64Array,
    StringBuilder, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use connector_sdk::{
    Connector, ConnectorError, ConnectorErrorKind, Partition, Plan, ReadContext, ReadItem,
    ReadStream, StreamDescriptor, async_trait,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The one stream.
pub const ORDERS: &str = "orders";
/// 2024-01-01T00:00:00Z in microseconds since the epoch.
const EPOCH_2024_US: i64 = 1_704_067_200_000_000;
const DAY_US: i64 = 86_400_000_000;

/// Configuration of the demo source.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrdersDemoConfig {
    /// Orders the source holds: ids `1..=rows`. Raise it between runs to simulate new orders.
    #[serde(default = "default_rows")]
    pub rows: u64,
    /// Orders per day; each day is one partition (`dt=YYYY-MM-DD`).
    #[serde(default = "default_rows_per_day")]
    pub rows_per_day: u64,
    /// Rows per Arrow batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Seed of the value generator; the same seed gives the same orders.
    #[serde(default)]
    pub seed: u64,
    /// Sleep this many milliseconds before each batch (simulates a slow source).
    #[serde(default)]
    pub batch_delay_ms: u64,
    /// Fail with a source error when reading this order id (fault injection for tests).
    #[serde(default)]
    pub fail_at_order_id: Option<u64>,
    /// Batches between checkpoints (and always after a partition's last batch). A stop
    /// waits for the next checkpoint, so a larger value makes stopping slower.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// Also checkpoint after a partition's first batch (a partition that has checkpointed
    /// once can stop at its next checkpoint; one that never has is abandoned at a stop).
    #[serde(default)]
    pub checkpoint_first_batch: bool,
}

fn default_checkpoint_every() -> u64 {
    1
}

fn default_rows() -> u64 {
    1_000_000
}
fn default_rows_per_day() -> u64 {
    250_000
}
fn default_batch_size() -> usize {
    8192
}

impl Default for OrdersDemoConfig {
    fn default() -> Self {
        Self {
            rows: default_rows(),
            rows_per_day: default_rows_per_day(),
            batch_size: default_batch_size(),
            seed: 0,
            batch_delay_ms: 0,
            fail_at_order_id: None,
            checkpoint_every: default_checkpoint_every(),
            checkpoint_first_batch: false,
        }
    }
}

/// The demo connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrdersDemo;

/// The Arrow schema of `orders`.
pub fn orders_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("customer_id", DataType::Int32, false),
        Field::new("amount", DataType::Decimal128(12, 2), true),
        Field::new("currency", DataType::Utf8, false),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("is_gift", DataType::Boolean, true),
        Field::new("discount", DataType::Float64, true),
        Field::new("note", DataType::Utf8, true),
    ]))
}

/// SplitMix64: a fast, well-mixed hash of `(seed, id)`.
fn mix(seed: u64, id: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(id)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const CURRENCIES: [&str; 4] = ["USD", "EUR", "GBP", "JPY"];
const NOTES: [&str; 4] = [
    "",
    "leave at the door",
    "gift wrap, please",
    "żółć – ünïcödé ✓",
];

/// Orders `first..=last` as one batch.
pub fn orders_batch(config: &OrdersDemoConfig, first: u64, last: u64) -> RecordBatch {
    let n = (last + 1).saturating_sub(first) as usize;
    let rpd = config.rows_per_day.max(1);
    let mut customer = Int32Builder::with_capacity(n);
    let mut amount = Decimal128Builder::with_capacity(n);
    let mut currency = StringBuilder::with_capacity(n, n * 3);
    let mut gift = BooleanBuilder::with_capacity(n);
    let mut discount = Float64Builder::with_capacity(n);
    let mut note = StringBuilder::with_capacity(n, n);
    let mut created = Vec::with_capacity(n);
    for id in first..=last {
        let h = mix(config.seed, id);
        customer.append_value((h % 100_000) as i32 + 1);
        if id % 17 == 0 {
            amount.append_null();
        } else {
            // Cents up to 9_999_999.99; every 1000th order is a large refund (negative).
            let cents = ((h >> 8) % 1_000_000_000) as i128;
            amount.append_value(if id % 1000 == 0 { -cents } else { cents });
        }
        currency.append_value(CURRENCIES[((h >> 40) % 4) as usize]);
        let idx = id - 1;
        created.push(
            EPOCH_2024_US
                + (idx / rpd) as i64 * DAY_US
                + ((idx % rpd) as i64 * DAY_US) / rpd as i64,
        );
        if id % 13 == 0 {
            gift.append_null();
        } else {
            gift.append_value(h & 1 == 1);
        }
        match id % 5 {
            0 => discount.append_null(),
            _ => discount.append_value(((h >> 20) % 5000) as f64 / 100.0),
        }
        if id % 7 == 0 {
            note.append_value(NOTES[((h >> 50) % 4) as usize]);
        } else {
            note.append_null();
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(first as i64..=last as i64)),
        Arc::new(customer.finish()),
        Arc::new(
            amount
                .finish()
                .with_precision_and_scale(12, 2)
                .expect("12,2 is a valid decimal precision and scale"),
        ),
        Arc::new(currency.finish()),
        Arc::new(TimestampMicrosecondArray::from(created).with_timezone("UTC")),
        Arc::new(gift.finish()),
        Arc::new(discount.finish()),
        Arc::new(note.finish()),
    ];
    RecordBatch::try_new(orders_schema(), columns).expect("columns match the orders schema")
}

fn day_label(day: u64) -> String {
    let secs = EPOCH_2024_US / 1_000_000 + day as i64 * 86_400;
    // Days since 1970-01-01 -> civil date (Howard Hinnant's algorithm), to avoid a
    // date-library dependency for one label.
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The stream cursor and a partition's checkpoint: the last order id extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderId {
    /// The order id.
    pub order_id: u64,
}

/// A partition: the orders `first..=last` (one day's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRange {
    /// The first order id.
    pub first: u64,
    /// The last order id.
    pub last: u64,
}

fn validate(config: &OrdersDemoConfig) -> Result<(), ConnectorError> {
    if config.rows_per_day == 0 {
        return Err(ConnectorError::config("rows_per_day must be at least 1"));
    }
    if config.batch_size == 0 {
        return Err(ConnectorError::config("batch_size must be at least 1"));
    }
    Ok(())
}

#[async_trait]
impl Connector for OrdersDemo {
    type Config = OrdersDemoConfig;
    type Cursor = OrderId;
    type PartitionSpec = OrderRange;
    type Checkpoint = OrderId;
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
            name: ORDERS.into(),
            schema: orders_schema(),
            cursor_field: Some("order_id".into()),
            primary_key: vec!["order_id".into()],
            write_disposition: None,
        }])
    }

    async fn plan(
        &self,
        config: &Self::Config,
        stream: &StreamDescriptor,
        cursor: Option<&OrderId>,
    ) -> Result<Plan<OrderRange, OrderId>, ConnectorError> {
        validate(config)?;
        if stream.name != ORDERS {
            return Err(ConnectorError::config(format!(
                "unknown stream `{}`; the demo has `orders`",
                stream.name
            )));
        }
        let after = cursor.map_or(0, |c| c.order_id);
        let first = after + 1;
        let last = config.rows;
        if first > last {
            return Ok(Plan {
                partitions: vec![],
                cursor: cursor.copied(),
            });
        }
        let rpd = config.rows_per_day;
        let partitions = ((first - 1) / rpd..=(last - 1) / rpd)
            .map(|day| {
                let lo = first.max(day * rpd + 1);
                let hi = last.min((day + 1) * rpd);
                let dt = day_label(day);
                Partition {
                    id: format!("{dt}_{lo}"),
                    hive: vec![("dt".into(), dt)],
                    spec: OrderRange {
                        first: lo,
                        last: hi,
                    },
                }
            })
            .collect();
        Ok(Plan {
            partitions,
            cursor: Some(OrderId { order_id: last }),
        })
    }

    async fn open_run(&self, _: &Self::Config, _: &StreamDescriptor) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn read<'a>(
        &'a self,
        config: &'a Self::Config,
        _run: &'a (),
        _stream: &'a StreamDescriptor,
        partition: &'a Partition<OrderRange>,
        ctx: ReadContext<OrderId>,
    ) -> ReadStream<'a, OrderId> {
        let OrderRange {
            first: lo,
            last: hi,
        } = partition.spec;
        let mut next = ctx.checkpoint.map_or(lo, |c| c.order_id + 1);
        Box::pin(async_stream::try_stream! {
            let mut batches = 0u64;
            while next <= hi {
                if config.batch_delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(config.batch_delay_ms)).await;
                }
                let end = hi.min(next + config.batch_size as u64 - 1);
                if let Some(f) = config.fail_at_order_id && (next..=end).contains(&f) {
                    Err(ConnectorError::new(
                        ConnectorErrorKind::Source,
                        format!("injected failure at order {f} (fail_at_order_id)"),
                    ))?;
                }
                yield ReadItem::Batch(orders_batch(config, next, end));
                batches += 1;
                if end == hi
                    || batches.is_multiple_of(config.checkpoint_every.max(1))
                    || (batches == 1 && config.checkpoint_first_batch)
                {
                    yield ReadItem::Checkpoint(OrderId { order_id: end });
                }
                next = end + 1;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config error keeps the file system's error as its source; a parse error keeps
    /// none, since the parser's message quotes values (a misplaced secret).
    #[test]
    fn config_errors_keep_the_file_error_and_never_a_config_value() {
        let e = connector_sdk::config_from_file::<OrdersDemo>(std::path::Path::new(
            "/nonexistent/orders.json",
        ))
        .unwrap_err();
        assert_eq!((e.class(), e.exit_code()), ("ConfigError", 2));
        let io = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the io error is kept");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        assert!(
            e.to_string().starts_with(
                "invalid connector config: cannot read config file /nonexistent/orders.json: "
            ),
            "{e}"
        );

        let e =
            connector_sdk::config_from_value::<OrdersDemo>(serde_json::json!({"rows": "hunter2"}))
                .unwrap_err();
        assert_eq!(e.class(), "ConfigError");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(std::error::Error::source(&e).is_none());
    }

    #[test]
    fn day_labels() {
        assert_eq!(day_label(0), "2024-01-01");
        assert_eq!(day_label(59), "2024-02-29");
        assert_eq!(day_label(366), "2025-01-01");
    }

    #[test]
    fn batches_are_deterministic_and_split_freely() {
        let c = OrdersDemoConfig::default();
        let whole = orders_batch(&c, 1, 100);
        let a = orders_batch(&c, 1, 40);
        let b = orders_batch(&c, 41, 100);
        let joined = arrow::compute::concat_batches(&orders_schema(), [&a, &b]).unwrap();
        assert_eq!(whole, joined);
    }

    #[tokio::test]
    async fn plan_covers_exactly_the_rows_after_the_cursor() {
        let c = OrdersDemoConfig {
            rows: 1000,
            rows_per_day: 300,
            ..Default::default()
        };
        let s = &OrdersDemo.discover(&c).await.unwrap()[0];
        let cursor = OrderId { order_id: 250 };
        let plan = OrdersDemo.plan(&c, s, Some(&cursor)).await.unwrap();
        let ranges: Vec<(u64, u64)> = plan
            .partitions
            .iter()
            .map(|p| (p.spec.first, p.spec.last))
            .collect();
        assert_eq!(
            ranges,
            vec![(251, 300), (301, 600), (601, 900), (901, 1000)]
        );
        assert_eq!(plan.cursor, Some(OrderId { order_id: 1000 }));
    }
}
