//! Test data for the S3 file connector: rows as an Arrow batch (the expected table) and the
//! same rows written as CSV, JSON Lines and Parquet, compressed or not.

#![allow(dead_code)]

use std::io::Write;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde_json::{Value, json};

/// The declared columns of every test stream.
pub fn columns() -> Value {
    json!([
        {"name": "id", "type": "int64", "nullable": false},
        {"name": "name", "type": "string"},
        {"name": "amount", "type": "float64"},
        {"name": "day", "type": "date"},
        {"name": "at", "type": "timestamp"},
        {"name": "flag", "type": "boolean"}
    ])
}

pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("day", DataType::Date32, true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("flag", DataType::Boolean, true),
    ]))
}

/// Row `i`: strings with the delimiter, quotes, backslashes and non-ASCII; floats with
/// exact decimal forms, including the extremes a CSV round trip keeps; dates and
/// timestamps from the first to the last representable day of year 9999; nulls.
pub struct Row {
    pub id: i64,
    pub name: Option<String>,
    pub amount: Option<f64>,
    pub day: Option<i32>,
    pub at: Option<i64>,
    pub flag: Option<bool>,
}

pub fn row(i: i64) -> Row {
    Row {
        id: i,
        name: (i % 9 != 0).then(|| {
            format!(
                "name {i}, \"quoted\" \\ é€😀{}",
                "x".repeat((i % 5) as usize)
            )
        }),
        amount: (i % 7 != 0).then(|| match i % 11 {
            0 => f64::MAX,
            1 => -f64::MIN_POSITIVE,
            _ => (i as f64) * 0.5 - 1000.25,
        }),
        day: (i % 6 != 0).then(|| match i % 13 {
            0 => -719_162,  // 0001-01-01
            1 => 2_932_896, // 9999-12-31
            _ => 19_000 + (i % 3000) as i32,
        }),
        at: (i % 8 != 0).then(|| 1_704_067_200_000_000 + i * 1_000_123),
        flag: (i % 4 != 0).then_some(i % 2 == 0),
    }
}

pub fn batch(ids: impl IntoIterator<Item = i64>) -> RecordBatch {
    let rows: Vec<Row> = ids.into_iter().map(row).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.name.clone()))),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.amount))),
        Arc::new(Date32Array::from_iter(rows.iter().map(|r| r.day))),
        Arc::new(
            TimestampMicrosecondArray::from_iter(rows.iter().map(|r| r.at)).with_timezone("UTC"),
        ),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.flag))),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

fn date_text(days: i32) -> String {
    (chrono_like_date(days)).to_string()
}

/// `YYYY-MM-DD` of a day count since 1970-01-01 (civil from days, H. Hinnant).
fn chrono_like_date(days: i32) -> String {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

fn ts_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400) as i32;
    let rem = secs.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}.{frac:06}Z",
        chrono_like_date(days),
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn float_text(f: f64) -> String {
    // Rust's shortest round-trip form.
    format!("{f:?}")
}

/// Rows `ids` as CSV with a header (every string quoted, quotes doubled; null = empty).
pub fn csv(ids: impl IntoIterator<Item = i64>) -> Vec<u8> {
    let mut out = b"id,name,amount,day,at,flag\n".to_vec();
    for i in ids {
        let r = row(i);
        let name = r
            .name
            .map_or(String::new(), |n| format!("\"{}\"", n.replace('"', "\"\"")));
        let line = format!(
            "{},{},{},{},{},{}\n",
            r.id,
            name,
            r.amount.map_or(String::new(), float_text),
            r.day.map_or(String::new(), date_text),
            r.at.map_or(String::new(), ts_text),
            r.flag.map_or(String::new(), |b| b.to_string()),
        );
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// Rows `ids` as JSON Lines (nulls as JSON null, or the field left out).
pub fn jsonl(ids: impl IntoIterator<Item = i64>) -> Vec<u8> {
    let mut out = Vec::new();
    for i in ids {
        let r = row(i);
        let mut v = json!({
            "id": r.id,
            "name": r.name,
            "amount": r.amount,
            "day": r.day.map(date_text),
            "at": r.at.map(ts_text),
            "extra": {"ignored": [1, 2]},
        });
        if let Some(f) = r.flag {
            v["flag"] = json!(f);
        }
        out.extend_from_slice(v.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// Rows `ids` as Parquet, in row groups of `group_rows`.
pub fn parquet(ids: impl IntoIterator<Item = i64>, group_rows: usize) -> Vec<u8> {
    let b = batch(ids);
    let mut out = Vec::new();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(group_rows))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, b.schema(), Some(props)).unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
    out
}

/// gzip of `parts`, one member each (a multi-member file when several).
pub fn gzip(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(p).unwrap();
        out.extend(e.finish().unwrap());
    }
    out
}

/// zstd of `parts`, one frame each.
pub fn zstd(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend(zstd::encode_all(*p, 3).unwrap());
    }
    out
}
