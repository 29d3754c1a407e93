//! Rows as a multiset of stable row hashes, and the difference of two such multisets.

use std::collections::HashMap;
use std::fmt;

use arrow::array::RecordBatch;
use arrow::array::{Array, ArrayRef};
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, SortField};
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// A stable hash of one row: FNV-1a (128 bit) over the row's bytes in Arrow's row format
/// (every column, in order; nulls and types included). The same values give the same hash
/// in every process built with the same Arrow version, so datasets written by different
/// runners can be compared by their row hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowHash(pub u128);

impl fmt::Display for RowHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME))
}

/// The stable hash of every row of `batch`, in row order.
pub fn row_hashes(batch: &RecordBatch) -> Result<Vec<RowHash>, arrow::error::ArrowError> {
    let fields = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields)?;
    let rows = converter.convert_columns(batch.columns())?;
    Ok((0..rows.num_rows())
        .map(|i| RowHash(fnv1a_128(rows.row(i).as_ref())))
        .collect())
}

/// A multiset of rows, remembering where each came from so differences can be shown.
#[derive(Debug, Clone, Default)]
pub struct RowSet {
    batches: Vec<RecordBatch>,
    /// (hash, batch index, row index)
    rows: Vec<(RowHash, usize, usize)>,
}

impl RowSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add every row of `batch`.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<(), arrow::error::ArrowError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let b = self.batches.len();
        for (i, h) in row_hashes(batch)?.into_iter().enumerate() {
            self.rows.push((h, b, i));
        }
        self.batches.push(batch.clone());
        Ok(())
    }

    /// Number of rows (with multiplicity).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows' hashes, sorted: equal for two sets with the same rows in any order.
    pub fn sorted_hashes(&self) -> Vec<RowHash> {
        let mut h: Vec<RowHash> = self.rows.iter().map(|r| r.0).collect();
        h.sort_unstable();
        h
    }

    /// The rows of `self` from position `start` on (in insertion order).
    pub fn tail(&self, start: usize) -> RowSet {
        RowSet {
            batches: self.batches.clone(),
            rows: self.rows[start.min(self.rows.len())..].to_vec(),
        }
    }

    /// The rows whose hash `keep` accepts, in insertion order.
    pub fn filter(&self, mut keep: impl FnMut(RowHash) -> bool) -> RowSet {
        RowSet {
            batches: self.batches.clone(),
            rows: self.rows.iter().copied().filter(|r| keep(r.0)).collect(),
        }
    }

    /// One row as `{col=value, ...}`, shortened to about 300 characters.
    fn render(&self, batch: usize, row: usize) -> String {
        let b = &self.batches[batch];
        let opts = FormatOptions::default().with_null("null");
        let mut out = String::from("{");
        for (i, (field, col)) in b.schema_ref().fields().iter().zip(b.columns()).enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let v = render_value(col, row, &opts);
            out.push_str(&format!("{}={v}", field.name()));
            if out.len() > 300 {
                out.truncate(300);
                out.push('…');
                break;
            }
        }
        out.push('}');
        out
    }

    /// What `actual` has too few (lost) and too many (extra or duplicated) of, compared
    /// with `self` as the expected rows.
    pub fn diff(&self, actual: &RowSet) -> RowDiff {
        let mut counts: HashMap<RowHash, i64> = HashMap::new();
        for r in &self.rows {
            *counts.entry(r.0).or_default() += 1;
        }
        for r in &actual.rows {
            *counts.entry(r.0).or_default() -= 1;
        }
        let mut diff = RowDiff {
            expected: self.len(),
            actual: actual.len(),
            ..Default::default()
        };
        let mut lost_left = counts.clone();
        for &(h, b, i) in &self.rows {
            let c = lost_left.entry(h).or_default();
            if *c > 0 {
                if diff.lost.len() < 3 {
                    diff.lost.push(self.render(b, i));
                }
                diff.lost_count += 1;
                *c -= 1;
            }
        }
        let mut seen_in_actual: HashMap<RowHash, usize> = HashMap::new();
        for &(h, _, _) in &actual.rows {
            *seen_in_actual.entry(h).or_default() += 1;
        }
        let mut extra_left = counts;
        for &(h, b, i) in &actual.rows {
            let c = extra_left.entry(h).or_default();
            if *c < 0 {
                if diff.extra.len() < 3 {
                    let times = seen_in_actual.get(&h).copied().unwrap_or(0);
                    diff.extra
                        .push(format!("{} (present {times}x)", actual.render(b, i)));
                }
                diff.extra_count += 1;
                *c += 1;
            }
        }
        diff
    }
}

/// The difference between expected and actual rows (multisets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowDiff {
    /// Expected row count.
    pub expected: usize,
    /// Actual row count.
    pub actual: usize,
    /// Rows expected but missing (with multiplicity).
    pub lost_count: usize,
    /// Rows present beyond what was expected: duplicates or rows that should not be there.
    pub extra_count: usize,
    /// Up to three lost rows, rendered.
    pub lost: Vec<String>,
    /// Up to three extra rows, rendered with how often they occur.
    pub extra: Vec<String>,
}

impl RowDiff {
    /// Whether the two sets hold the same rows.
    pub fn is_empty(&self) -> bool {
        self.lost_count == 0 && self.extra_count == 0
    }
}

impl fmt::Display for RowDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected {} rows, got {}: {} lost, {} extra or duplicated",
            self.expected, self.actual, self.lost_count, self.extra_count
        )?;
        if !self.lost.is_empty() {
            write!(f, "; first lost: {}", self.lost.join("; "))?;
        }
        if !self.extra.is_empty() {
            write!(f, "; first extra: {}", self.extra.join("; "))?;
        }
        Ok(())
    }
}

/// One value as text. A timestamp with a named zone (`UTC`, `Europe/Paris`) is shown in
/// its UTC wall time with the zone's name after it: Arrow formats named zones only with
/// its `chrono-tz` feature (a time-zone database in every connector binary, for error
/// messages alone).
fn render_value(col: &ArrayRef, row: usize, opts: &FormatOptions) -> String {
    let shown = match col.data_type() {
        DataType::Timestamp(_, Some(_)) if col.is_null(row) => Some("null".to_string()),
        DataType::Timestamp(unit, Some(tz)) => {
            arrow::compute::cast(&col.slice(row, 1), &DataType::Timestamp(*unit, None))
                .ok()
                .and_then(|c| {
                    ArrayFormatter::try_new(c.as_ref(), opts)
                        .ok()
                        .map(|f| format!("{} {tz}", f.value(0)))
                })
        }
        _ => None,
    };
    shown.unwrap_or_else(|| {
        ArrayFormatter::try_new(col.as_ref(), opts)
            .map(|f| f.value(row).to_string())
            .unwrap_or_else(|e| format!("<{e}>"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use std::sync::Arc;

    fn batch(ids: &[i64], names: &[Option<&str>]) -> RecordBatch {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
            (
                "name",
                Arc::new(StringArray::from(names.to_vec())) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn hashes_are_stable_and_see_every_column() {
        let a = row_hashes(&batch(&[1, 2], &[Some("x"), None])).unwrap();
        let b = row_hashes(&batch(&[2, 1], &[None, Some("x")])).unwrap();
        assert_eq!(a[0], b[1]);
        assert_eq!(a[1], b[0]);
        let c = row_hashes(&batch(&[1], &[Some("y")])).unwrap();
        assert_ne!(a[0], c[0]);
        // Pinned: the hash must not change between builds of the same Arrow version
        // (datasets written by different runners and processes are compared by it).
        assert_eq!(a[0].to_string(), "3dc64777fa9ffb769a05055162d78d52");
        assert_eq!(a[1].to_string(), "c6225bd3d389d931bfed3b81c73503de");
    }

    #[test]
    fn named_time_zones_are_shown() {
        use arrow::array::TimestampMicrosecondArray;
        let ts = TimestampMicrosecondArray::from(vec![Some(1_704_067_200_000_000), None])
            .with_timezone("UTC");
        let b = RecordBatch::try_from_iter([("at", Arc::new(ts) as ArrayRef)]).unwrap();
        let mut set = RowSet::new();
        set.push(&b).unwrap();
        assert_eq!(set.render(0, 0), "{at=2024-01-01T00:00:00 UTC}");
        assert_eq!(set.render(0, 1), "{at=null}");
    }

    #[test]
    fn diff_counts_lost_and_duplicated_rows() {
        let mut expected = RowSet::new();
        expected
            .push(&batch(&[1, 2, 3], &[Some("a"), Some("b"), Some("c")]))
            .unwrap();
        let mut actual = RowSet::new();
        actual
            .push(&batch(&[1, 1, 3], &[Some("a"), Some("a"), Some("c")]))
            .unwrap();
        let d = expected.diff(&actual);
        assert_eq!((d.lost_count, d.extra_count), (1, 1));
        assert_eq!(d.lost, vec!["{id=2, name=b}".to_string()]);
        assert_eq!(d.extra, vec!["{id=1, name=a} (present 2x)".to_string()]);
        assert!(expected.diff(&expected.clone()).is_empty());
    }
}
