//! What the matrix checks of a committed dataset besides its rows: the schema, field by
//! field (row hashes do not record column names, decimal scale, timestamp unit or zone,
//! Utf8 vs Binary, or nullability), the committed state, the row count the matrix expects,
//! and — for the one-shot reference — the source itself.

use anyhow::{Context, Result, bail, ensure};
use connector_sdk::arrow::array::{Array, AsArray, RecordBatch};
use connector_sdk::arrow::datatypes::{Int64Type, Schema};
use connector_sdk::conformance::RowSet;
use connector_sdk::{Dataset, OutputLocation, RunStatus, S3Store, StreamState};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// A stream's committed dataset as the matrix compares it.
#[derive(Debug)]
pub struct Committed {
    /// The Arrow schema the last manifest records.
    pub schema: Schema,
    /// The state after the last commit.
    pub state: StreamState,
    /// Every committed row, as stable row hashes.
    pub rows: RowSet,
    /// Every committed row.
    pub batches: Vec<RecordBatch>,
}

impl Committed {
    /// Read the committed table of `stream` under `output`: every file its latest snapshot
    /// lists, each file's schema checked against the run records'.
    pub async fn read(store: &S3Store, output: &OutputLocation, stream: &str) -> Result<Committed> {
        let dataset = Dataset::new(store.clone(), output.clone(), stream);
        let manifests = dataset.manifests().await.context("reading the manifests")?;
        let last = manifests
            .last()
            .context("no dataset manifest was committed")?;
        ensure!(
            last.status == RunStatus::Complete,
            "the last commit is {:?}, not complete",
            last.status
        );
        for m in &manifests {
            if let Some(why) = schema_difference(&last.schema, &m.schema) {
                bail!(
                    "run record {} records another schema than the last one: {why}",
                    m.sequence
                );
            }
        }
        // The table's files: what its latest snapshot lists, as an engine would read it.
        let files = dataset
            .committed_files()
            .await
            .context("reading the table's snapshot")?;
        let mut rows = RowSet::new();
        let mut batches = Vec::new();
        for f in &files {
            let body = store
                .get(&output.bucket, &f.key)
                .await?
                .with_context(|| format!("table file {} is missing", f.key))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(body)
                .with_context(|| format!("{} is not Parquet", f.key))?;
            let file_schema = reader.schema().clone();
            if let Some(why) = schema_difference(&last.schema, &file_schema) {
                bail!("file {} does not have the table's schema: {why}", f.key);
            }
            for b in reader.build()? {
                let b = b?;
                rows.push(&b)?;
                batches.push(b);
            }
        }
        Ok(Committed {
            schema: last.schema.clone(),
            state: last.state.clone(),
            rows,
            batches,
        })
    }

    /// Compare with the reference: schema field by field, the committed state, then the
    /// rows. `Err` names the first difference.
    pub fn expect_equal(&self, reference: &Committed) -> Result<()> {
        if let Some(why) = schema_difference(&reference.schema, &self.schema) {
            bail!("the schema differs from the one-shot extract's: {why}");
        }
        ensure!(
            self.state == reference.state,
            "the committed state differs from the one-shot extract's: {} vs {}",
            serde_json::to_string(&self.state)?,
            serde_json::to_string(&reference.state)?
        );
        if self.rows.sorted_hashes() != reference.rows.sorted_hashes() {
            bail!(
                "the dataset differs from the one-shot extract: {}",
                reference.rows.diff(&self.rows)
            );
        }
        Ok(())
    }

    /// The sum, minimum and maximum of the Int64 column `column`, and its null count.
    pub fn int64_stats(&self, column: &str) -> Result<(i128, Option<i64>, Option<i64>, usize)> {
        let (mut sum, mut min, mut max, mut nulls) = (0i128, None::<i64>, None::<i64>, 0);
        for b in &self.batches {
            let c = b
                .column_by_name(column)
                .with_context(|| format!("no column `{column}`"))?;
            let c = c
                .as_primitive_opt::<Int64Type>()
                .with_context(|| format!("column `{column}` is {}, not Int64", c.data_type()))?;
            nulls += c.null_count();
            for v in c.iter().flatten() {
                sum += i128::from(v);
                min = Some(min.map_or(v, |m| m.min(v)));
                max = Some(max.map_or(v, |m| m.max(v)));
            }
        }
        Ok((sum, min, max, nulls))
    }

    /// Null count of every column, by name.
    pub fn null_counts(&self) -> Vec<(String, usize)> {
        self.schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                (
                    f.name().clone(),
                    self.batches.iter().map(|b| b.column(i).null_count()).sum(),
                )
            })
            .collect()
    }
}

/// `None` if `actual` has `expected`'s fields: the same number, and for each one the same
/// name, data type (decimal precision and scale, timestamp unit and zone, Utf8 vs Binary,
/// list item fields...), nullability and field metadata; and the same schema metadata.
pub fn schema_difference(expected: &Schema, actual: &Schema) -> Option<String> {
    let (e, a) = (expected.fields(), actual.fields());
    if e.len() != a.len() {
        return Some(format!("{} columns instead of {}", a.len(), e.len()));
    }
    for (i, (e, a)) in e.iter().zip(a.iter()).enumerate() {
        let at = format!("column {i} (`{}`)", e.name());
        if e.name() != a.name() {
            return Some(format!("{at} is named `{}`", a.name()));
        }
        if e.data_type() != a.data_type() {
            return Some(format!(
                "{at} is {} instead of {}",
                a.data_type(),
                e.data_type()
            ));
        }
        if e.is_nullable() != a.is_nullable() {
            return Some(format!(
                "{at} is {} instead of {}",
                nullability(a.is_nullable()),
                nullability(e.is_nullable())
            ));
        }
        if e.metadata() != a.metadata() {
            return Some(format!(
                "{at} has metadata {:?} instead of {:?}",
                a.metadata(),
                e.metadata()
            ));
        }
    }
    if expected.metadata() != actual.metadata() {
        return Some(format!(
            "schema metadata {:?} instead of {:?}",
            actual.metadata(),
            expected.metadata()
        ));
    }
    None
}

fn nullability(nullable: bool) -> &'static str {
    if nullable { "nullable" } else { "non-nullable" }
}

/// The reference against its source, for the connectors the matrix can read
/// independently.
pub enum SourceCheck {
    /// A synthetic connector: its rows straight from the connector (one uninterrupted read
    /// of a fresh plan, the conformance kit's `source_rows`).
    Rows(RowSet),
    /// A source table read through an independent client (a PostgreSQL table through
    /// tokio-postgres, a json-server collection from its database file): row count,
    /// sum/min/max of the key column, and every column's null count.
    Facts(SourceFacts),
    /// No independent reader (a test connector): the expected row count is the check.
    None,
}

/// Facts of a source table: of a PostgreSQL table from `SELECT` through `tokio-postgres`
/// (not through the connector's COPY reader), of a JSON collection from the records.
#[derive(Debug)]
pub struct SourceFacts {
    /// `count(*)`.
    pub rows: i64,
    /// The key column's name, `sum`, `min` and `max`.
    pub key: (String, i128, Option<i64>, Option<i64>),
    /// Null count of every column.
    pub nulls: Vec<(String, i64)>,
}

impl SourceFacts {
    /// Read the facts of `table` (key column `key`) through `client`.
    pub async fn read(client: &tokio_postgres::Client, table: &str, key: &str) -> Result<Self> {
        let columns: Vec<String> = client
            .query(
                "SELECT column_name::text FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
                &[&table],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        ensure!(!columns.is_empty(), "table {table} has no columns");
        let nulls_sql: Vec<String> = columns
            .iter()
            .map(|c| format!("count(*) - count(\"{c}\")"))
            .collect();
        let sql = format!(
            "SELECT count(*), sum(\"{key}\")::text, min(\"{key}\"), max(\"{key}\"), {} FROM \"{table}\"",
            nulls_sql.join(", ")
        );
        let row = client.query_one(&sql, &[]).await?;
        let sum: Option<String> = row.get(1);
        let sum: i128 = sum.as_deref().unwrap_or("0").parse()?;
        Ok(SourceFacts {
            rows: row.get(0),
            key: (key.to_string(), sum, row.get(2), row.get(3)),
            nulls: columns
                .iter()
                .enumerate()
                .map(|(i, c)| (c.clone(), row.get::<_, i64>(4 + i)))
                .collect(),
        })
    }
}

impl SourceFacts {
    /// The facts of JSON `records` (objects) with the integer key `key`; every field any
    /// record has is a column (missing counts as null).
    pub fn from_json_records(records: &[serde_json::Value], key: &str) -> Result<Self> {
        let mut columns: Vec<String> = Vec::new();
        for r in records {
            let obj = r.as_object().context("a record is not a JSON object")?;
            for k in obj.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
        let keys: Vec<i64> = records
            .iter()
            .map(|r| {
                r[key]
                    .as_i64()
                    .with_context(|| format!("a record has no integer `{key}`"))
            })
            .collect::<Result<_>>()?;
        Ok(SourceFacts {
            rows: records.len() as i64,
            key: (
                key.to_string(),
                keys.iter().map(|&k| k as i128).sum(),
                keys.iter().min().copied(),
                keys.iter().max().copied(),
            ),
            nulls: columns
                .iter()
                .map(|c| {
                    let n = records.iter().filter(|r| r[c.as_str()].is_null()).count();
                    (c.clone(), n as i64)
                })
                .collect(),
        })
    }
}

impl SourceCheck {
    /// `Err` if `committed` is not what the source holds.
    pub fn expect_matches(&self, committed: &Committed) -> Result<()> {
        match self {
            SourceCheck::None => Ok(()),
            SourceCheck::Rows(source) => {
                if committed.rows.sorted_hashes() != source.sorted_hashes() {
                    bail!(
                        "the one-shot extract differs from the source: {}",
                        source.diff(&committed.rows)
                    );
                }
                Ok(())
            }
            SourceCheck::Facts(facts) => {
                ensure!(
                    committed.rows.len() as i64 == facts.rows,
                    "the one-shot extract has {} rows, the table {}",
                    committed.rows.len(),
                    facts.rows
                );
                let (name, sum, min, max) = &facts.key;
                let (csum, cmin, cmax, cnulls) = committed.int64_stats(name)?;
                ensure!(
                    (csum, cmin, cmax, cnulls) == (*sum, *min, *max, 0),
                    "key column `{name}`: sum/min/max {csum}/{cmin:?}/{cmax:?} ({cnulls} nulls) in the extract, {sum}/{min:?}/{max:?} in the table"
                );
                let extracted: Vec<(String, usize)> = committed.null_counts();
                for (column, n) in &facts.nulls {
                    let got = extracted
                        .iter()
                        .find(|(c, _)| c == column)
                        .map(|(_, n)| *n as i64)
                        .with_context(|| format!("the extract has no column `{column}`"))?;
                    ensure!(
                        got == *n,
                        "column `{column}`: {got} nulls in the extract, {n} in the table"
                    );
                }
                Ok(())
            }
        }
    }
}
