//! A real PostgreSQL for the tests (integration_tests::postgres_server), and building
//! expected Arrow arrays from plain `SELECT`s (decoded by tokio-postgres,
//! not by the connector), to compare extracts against.

#![allow(dead_code)]

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    StructArray, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use tokio_postgres::Client;

#[allow(unused_imports)]
pub use integration_tests::postgres_server::{PASSWORD, PgServer};

/// Parse PostgreSQL numeric text into Decimal128's unscaled integer at `scale`.
pub fn parse_decimal(s: &str, scale: i8) -> i128 {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let scale = scale as usize;
    assert!(
        frac.len() <= scale,
        "{s} has more than {scale} fraction digits"
    );
    let digits = format!("{int}{frac:0<scale$}");
    let v: i128 = digits.parse().expect("decimal digits");
    if neg { -v } else { v }
}

/// SQL computing the expected value of column expression `c` for Arrow type `dt`, read back
/// with tokio-postgres's own binary decoding.
fn expected_expr(c: &str, dt: &DataType) -> String {
    match dt {
        // format() prints with the type's output function: char(n) keeps its padding.
        DataType::Utf8 => format!("CASE WHEN ({c}) IS NULL THEN NULL ELSE format('%s', {c}) END"),
        DataType::Decimal128(_, _) => format!("({c})::text"),
        DataType::Date32 => format!("(({c}) - DATE '1970-01-01')"),
        DataType::Time64(_) | DataType::Timestamp(_, _) => {
            format!("(EXTRACT(EPOCH FROM ({c})) * 1000000)::int8")
        }
        _ => c.to_string(),
    }
}

/// The expected array of column `col` of `from` (ordered by `order`), as type `dt`.
pub async fn expected_array(
    client: &Client,
    from: &str,
    order: &str,
    col: &str,
    dt: &DataType,
) -> ArrayRef {
    let q = |expr: String| format!("SELECT {expr} FROM {from} ORDER BY {order}");
    match dt {
        DataType::Struct(fields) => {
            // interval: months, days, microseconds
            let c = format!("\"{col}\"");
            let sql = q(format!(
                "(EXTRACT(YEAR FROM {c}) * 12 + EXTRACT(MONTH FROM {c}))::int4, EXTRACT(DAY FROM {c})::int4, \
                 (EXTRACT(HOUR FROM {c}) * 3600000000 + EXTRACT(MINUTE FROM {c}) * 60000000 + EXTRACT(MICROSECONDS FROM {c}))::int8, {c} IS NULL"
            ));
            let rows = client.query(&sql, &[]).await.expect("expected query");
            let mut m = Int32Builder::new();
            let mut d = Int32Builder::new();
            let mut us = Int64Builder::new();
            let mut valid = Vec::new();
            for r in &rows {
                let null: bool = r.get(3);
                m.append_value(r.get::<_, Option<i32>>(0).unwrap_or(0));
                d.append_value(r.get::<_, Option<i32>>(1).unwrap_or(0));
                us.append_value(r.get::<_, Option<i64>>(2).unwrap_or(0));
                valid.push(!null);
            }
            let nulls = arrow::buffer::NullBuffer::from(valid);
            Arc::new(StructArray::new(
                fields.clone(),
                vec![
                    Arc::new(m.finish()) as ArrayRef,
                    Arc::new(d.finish()),
                    Arc::new(us.finish()),
                ],
                (nulls.null_count() > 0).then_some(nulls),
            ))
        }
        DataType::List(item) => {
            let c = format!("\"{col}\"");
            let elem = expected_expr("u.e", item.data_type());
            let sql = q(format!(
                "CASE WHEN {c} IS NULL THEN NULL ELSE ARRAY(SELECT {elem} FROM unnest({c}) WITH ORDINALITY AS u(e, n) ORDER BY u.n) END"
            ));
            let rows = client.query(&sql, &[]).await.expect("expected list query");
            list_array(&rows, item)
        }
        _ => {
            let sql = q(expected_expr(&format!("\"{col}\""), dt));
            let rows = client.query(&sql, &[]).await.expect("expected query");
            scalar_array(&rows, dt)
        }
    }
}

fn scalar_array(rows: &[tokio_postgres::Row], dt: &DataType) -> ArrayRef {
    macro_rules! prim {
        ($b:ty, $t:ty) => {{
            let mut b = <$b>::new();
            for r in rows {
                b.append_option(r.get::<_, Option<$t>>(0));
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    match dt {
        DataType::Boolean => prim!(BooleanBuilder, bool),
        DataType::Int16 => prim!(Int16Builder, i16),
        DataType::Int32 => prim!(Int32Builder, i32),
        DataType::Int64 => prim!(Int64Builder, i64),
        DataType::Float32 => prim!(Float32Builder, f32),
        DataType::Float64 => prim!(Float64Builder, f64),
        DataType::Utf8 => {
            let mut b = StringBuilder::new();
            for r in rows {
                b.append_option(r.get::<_, Option<String>>(0));
            }
            Arc::new(b.finish())
        }
        DataType::Binary => {
            let mut b = BinaryBuilder::new();
            for r in rows {
                b.append_option(r.get::<_, Option<Vec<u8>>>(0));
            }
            Arc::new(b.finish())
        }
        DataType::Decimal128(p, s) => {
            let mut b = Decimal128Builder::new();
            for r in rows {
                b.append_option(r.get::<_, Option<String>>(0).map(|t| parse_decimal(&t, *s)));
            }
            Arc::new(b.finish().with_precision_and_scale(*p, *s).unwrap())
        }
        DataType::Date32 => prim!(Date32Builder, i32),
        DataType::Time64(_) => prim!(Time64MicrosecondBuilder, i64),
        DataType::Timestamp(_, tz) => {
            let mut b = TimestampMicrosecondBuilder::new();
            for r in rows {
                b.append_option(r.get::<_, Option<i64>>(0));
            }
            let a = b.finish();
            match tz {
                Some(tz) => Arc::new(a.with_timezone(tz.as_ref())),
                None => Arc::new(a),
            }
        }
        other => panic!("no expected-array builder for {other}"),
    }
}

fn list_array(rows: &[tokio_postgres::Row], item: &Arc<Field>) -> ArrayRef {
    macro_rules! list {
        ($b:expr, $t:ty, $map:expr) => {{
            let mut b = ListBuilder::new($b).with_field(item.clone());
            for r in rows {
                match r.get::<_, Option<Vec<Option<$t>>>>(0) {
                    None => b.append_null(),
                    Some(v) => {
                        for e in v {
                            b.values().append_option(e.map($map));
                        }
                        b.append(true);
                    }
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    match item.data_type() {
        DataType::Boolean => list!(BooleanBuilder::new(), bool, |x| x),
        DataType::Int16 => list!(Int16Builder::new(), i16, |x| x),
        DataType::Int32 => list!(Int32Builder::new(), i32, |x| x),
        DataType::Int64 => list!(Int64Builder::new(), i64, |x| x),
        DataType::Float64 => list!(Float64Builder::new(), f64, |x| x),
        DataType::Utf8 => list!(StringBuilder::new(), String, |x| x),
        DataType::Date32 => list!(Date32Builder::new(), i32, |x| x),
        DataType::Timestamp(_, tz) => {
            let b = TimestampMicrosecondBuilder::new().with_timezone_opt(tz.clone());
            list!(b, i64, |x| x)
        }
        DataType::Decimal128(p, s) => {
            let b = Decimal128Builder::new()
                .with_precision_and_scale(*p, *s)
                .unwrap();
            let s = *s;
            list!(b, String, |t: String| parse_decimal(&t, s))
        }
        other => panic!("no expected-list builder for {other}"),
    }
}

/// The expected batch of `from` ordered by `order`, with `schema`'s columns and types.
pub async fn expected_batch(
    client: &Client,
    from: &str,
    order: &str,
    schema: &arrow::datatypes::SchemaRef,
) -> RecordBatch {
    let mut cols = Vec::new();
    for f in schema.fields() {
        cols.push(expected_array(client, from, order, f.name(), f.data_type()).await);
    }
    RecordBatch::try_new(schema.clone(), cols).expect("expected batch")
}

/// Assert two batches are equal column by column, naming the first differing row.
pub fn assert_batches_equal(got: &RecordBatch, expected: &RecordBatch) {
    assert_eq!(got.num_rows(), expected.num_rows(), "row counts differ");
    assert_eq!(
        got.num_columns(),
        expected.num_columns(),
        "column counts differ"
    );
    for (i, f) in expected.schema().fields().iter().enumerate() {
        let (g, e) = (got.column(i), expected.column(i));
        assert_eq!(g.data_type(), e.data_type(), "column `{}` type", f.name());
        if g.as_ref() != e.as_ref() {
            let first = (0..g.len())
                .find(|&r| g.slice(r, 1).as_ref() != e.slice(r, 1).as_ref())
                .unwrap_or(0);
            panic!(
                "column `{}` differs first at row {first}: got {:?}, expected {:?}",
                f.name(),
                g.slice(first, 1),
                e.slice(first, 1)
            );
        }
    }
}
