//! Planning: the incremental window (cursor) and the partition ranges of a stream.

use connector_sdk::{ConnectorError, Partition, Plan};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::catalog::{ResolvedStream, column_sql, text_literal};
use crate::connect::pg_error;
use crate::types::KeyKind;

/// What one partition reads (the partition's `spec`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    /// Random id of the plan: partitions of one plan share an exported snapshot.
    pub plan: String,
    /// Index of this partition in the plan.
    pub index: u32,
    /// Partitions in the plan.
    pub count: u32,
    /// Inclusive lower bound of the partition column (None: unbounded, and NULLs included).
    pub lower: Option<i64>,
    /// Exclusive upper bound of the partition column (None: unbounded).
    pub upper: Option<i64>,
    /// Rows with cursor greater than this (the committed cursor), as server text.
    pub cursor_after: Option<String>,
    /// Rows with cursor up to this (the max at planning time), as server text.
    pub cursor_upto: Option<String>,
}

/// The stream cursor: the cursor column's maximum when the plan was made, as the
/// server's text of it (`{"value": "..."}`), so every cursor type compares exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamCursor {
    /// The server's text of the cursor column's value.
    pub value: String,
}

/// The point in time a cursor's server text stands for, when the cursor column is a
/// `timestamptz` (`2024-01-04 11:20:00.5+00`, offsets in hours or hours and minutes),
/// `timestamp` (taken as UTC) or `date` (its midnight UTC); `None` for any other text.
pub(crate) fn cursor_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
    // PostgreSQL prints an offset as `+00` or `+05:30`; chrono's `%#z` reads both.
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// SQL of a partition-column value (an i64 in the column's numeric view).
pub(crate) fn bound_sql(kind: KeyKind, v: i64) -> String {
    let micros = |base: &str| {
        let days = v.div_euclid(86_400_000_000);
        let rest = v.rem_euclid(86_400_000_000);
        format!("({base} + INTERVAL '{days} days' + INTERVAL '{rest} microseconds')")
    };
    match kind {
        KeyKind::Int | KeyKind::Text => v.to_string(),
        KeyKind::Date => format!("(DATE '1970-01-01' + {v})"),
        KeyKind::Timestamp => micros("TIMESTAMP '1970-01-01 00:00:00'"),
        KeyKind::Timestamptz => micros("TIMESTAMPTZ '1970-01-01 00:00:00+00'"),
    }
}

/// The column as an int8 in its numeric view (integers; days or microseconds since 1970).
fn numeric_view(kind: KeyKind, col: &str) -> String {
    match kind {
        KeyKind::Int | KeyKind::Text => format!("{col}::int8"),
        KeyKind::Date => format!("({col} - DATE '1970-01-01')::int8"),
        KeyKind::Timestamp | KeyKind::Timestamptz => {
            format!("(EXTRACT(EPOCH FROM {col}) * 1000000)::int8")
        }
    }
}

/// The cursor predicates of a partition.
pub(crate) fn cursor_predicates(stream: &ResolvedStream, spec: &PartitionSpec) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(ci) = stream.cursor {
        let col = column_sql(&stream.columns[ci]);
        if let Some(after) = &spec.cursor_after {
            out.push(format!("{col} > {}", text_literal(after)));
        }
        if let Some(upto) = &spec.cursor_upto {
            out.push(format!("{col} <= {}", text_literal(upto)));
        }
    }
    out
}

/// The partition-range predicates of a partition.
pub(crate) fn range_predicates(stream: &ResolvedStream, spec: &PartitionSpec) -> Vec<String> {
    let Some(pi) = stream.partition else {
        return vec![];
    };
    let Some(kind) = stream.columns[pi].ty.key_kind() else {
        return vec![];
    };
    let col = column_sql(&stream.columns[pi]);
    let mut out = Vec::new();
    match (spec.lower, spec.upper) {
        (None, None) => {}
        (Some(lo), None) => out.push(format!("{col} >= {}", bound_sql(kind, lo))),
        (None, Some(hi)) => out.push(format!(
            "({col} < {} OR {col} IS NULL)",
            bound_sql(kind, hi)
        )),
        (Some(lo), Some(hi)) => out.push(format!(
            "{col} >= {} AND {col} < {}",
            bound_sql(kind, lo),
            bound_sql(kind, hi)
        )),
    }
    out
}

/// Plan a stream: the cursor window, then `partitions` ranges of the partition column.
pub(crate) async fn plan(
    client: &Client,
    stream: &ResolvedStream,
    cursor: Option<&StreamCursor>,
) -> Result<Plan<PartitionSpec, StreamCursor>, ConnectorError> {
    let from = stream.source.sql_from_clause();
    let mut spec = PartitionSpec {
        plan: format!("{:016x}", rand::random::<u64>()),
        index: 0,
        count: 1,
        lower: None,
        upper: None,
        cursor_after: None,
        cursor_upto: None,
    };
    let mut next_cursor = None;
    if let Some(ci) = stream.cursor {
        let col = column_sql(&stream.columns[ci]);
        spec.cursor_after = cursor.map(|c| c.value.clone());
        let filter = spec
            .cursor_after
            .as_ref()
            .map(|a| format!(" WHERE {col} > {}", text_literal(a)))
            .unwrap_or_default();
        let sql = format!("SELECT max({col})::text FROM {from}{filter}");
        let row = client.query_one(&sql, &[]).await.map_err(|e| {
            pg_error(
                &format!("stream `{}`: reading the cursor maximum", stream.name),
                e,
            )
        })?;
        let max: Option<String> = row.get(0);
        match max {
            None => {
                // Nothing after the committed cursor.
                return Ok(Plan {
                    partitions: vec![],
                    cursor: cursor.cloned(),
                });
            }
            Some(m) => {
                next_cursor = Some(StreamCursor { value: m.clone() });
                spec.cursor_upto = Some(m);
            }
        }
    }
    let mut ranges: Vec<(Option<i64>, Option<i64>)> = vec![(None, None)];
    if let Some(pi) = stream.partition
        && stream.partitions > 1
        && let Some(kind) = stream.columns[pi].ty.key_kind()
    {
        let col = column_sql(&stream.columns[pi]);
        let view = numeric_view(kind, &col);
        let filters = cursor_predicates(stream, &spec);
        let filter = if filters.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", filters.join(" AND "))
        };
        let sql = format!("SELECT min({view}), max({view}) FROM {from}{filter}");
        let row = client.query_one(&sql, &[]).await.map_err(|e| {
            pg_error(
                &format!(
                    "stream `{}`: reading min/max of partition column `{}`",
                    stream.name, stream.columns[pi].name
                ),
                e,
            )
        })?;
        let (min, max): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
        if let (Some(min), Some(max)) = (min, max) {
            ranges = split(min, max, stream.partitions);
        }
    }
    let count = ranges.len() as u32;
    let partitions = ranges
        .into_iter()
        .enumerate()
        .map(|(i, (lower, upper))| {
            let spec = PartitionSpec {
                index: i as u32,
                count,
                lower,
                upper,
                ..spec.clone()
            };
            Partition {
                id: format!("p{:03}-of-{count:03}", i),
                hive: vec![],
                spec,
            }
        })
        .collect();
    Ok(Plan {
        partitions,
        cursor: next_cursor.or_else(|| cursor.cloned()),
    })
}

/// Split `[min, max]` into up to `n` ranges: the first is open below (and takes NULLs),
/// the last open above, so rows outside the planned range are still read.
pub(crate) fn split(min: i64, max: i64, n: u32) -> Vec<(Option<i64>, Option<i64>)> {
    let span = max as i128 - min as i128 + 1;
    let n = (n as i128).min(span).max(1);
    let bounds: Vec<i64> = (1..n)
        .map(|i| (min as i128 + span * i / n) as i64)
        .collect();
    let mut out = Vec::with_capacity(n as usize);
    let mut lower = None;
    for b in bounds {
        out.push((lower, Some(b)));
        lower = Some(b);
    }
    out.push((lower, None));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_times_of_every_date_and_time_text() {
        let at = |s: &str| cursor_time(s).map(|t| t.to_rfc3339());
        assert_eq!(
            at("2024-01-04 11:20:00+00").as_deref(),
            Some("2024-01-04T11:20:00+00:00")
        );
        assert_eq!(
            at("2024-01-04 11:20:00.123456+05:30").as_deref(),
            Some("2024-01-04T05:50:00.123456+00:00")
        );
        assert_eq!(
            at("2024-01-04 11:20:00-08").as_deref(),
            Some("2024-01-04T19:20:00+00:00")
        );
        assert_eq!(
            at("2024-01-04 11:20:00.5").as_deref(),
            Some("2024-01-04T11:20:00.500+00:00")
        );
        assert_eq!(
            at("2024-01-04").as_deref(),
            Some("2024-01-04T00:00:00+00:00")
        );
        // Not points in time, or outside what chrono holds: no lag, never a panic.
        for text in [
            "12345",
            "abc",
            "",
            "294276-12-31 23:59:59.999999+00",
            "4713-01-01 00:00:00+00 BC",
            "infinity",
        ] {
            assert_eq!(at(text), None, "{text}");
        }
    }

    #[test]
    fn ranges_cover_everything_once() {
        assert_eq!(
            split(1, 100, 4),
            vec![
                (None, Some(26)),
                (Some(26), Some(51)),
                (Some(51), Some(76)),
                (Some(76), None)
            ]
        );
        assert_eq!(split(5, 6, 4), vec![(None, Some(6)), (Some(6), None)]);
        assert_eq!(split(7, 7, 3), vec![(None, None)]);
        assert_eq!(split(i64::MIN, i64::MAX, 2).len(), 2);
    }

    #[test]
    fn bounds_render_exactly() {
        assert_eq!(bound_sql(KeyKind::Int, -5), "-5");
        assert_eq!(
            bound_sql(KeyKind::Date, 19_000),
            "(DATE '1970-01-01' + 19000)"
        );
        assert_eq!(
            bound_sql(KeyKind::Timestamp, -1),
            "(TIMESTAMP '1970-01-01 00:00:00' + INTERVAL '-1 days' + INTERVAL '86399999999 microseconds')"
        );
    }
}
