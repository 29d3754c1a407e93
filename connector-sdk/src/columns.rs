//! Declared columns: how a connector's config names a stream's columns and their types
//! (`{name, type, nullable, path}`), for sources whose records carry no schema of their
//! own (JSON APIs, CSV and JSON Lines files). Shared by the HTTP toolkit and the file
//! connector, so one type name means one Arrow type everywhere.

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ConnectorError;

/// One column of a stream: its name, type and where its value is in a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Column name in the table.
    pub name: String,
    /// `string`, `boolean`, `int16`, `int32`, `int64`, `float32`, `float64`, `date`
    /// (`YYYY-MM-DD`), `timestamp` (RFC 3339, stored as microseconds in UTC),
    /// `decimal(p,s)` (p ≤ 38), or `json` (any value, kept as its JSON text).
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether the value may be null or missing (default true). A null in a column that
    /// is not nullable is an error naming the record.
    #[serde(default = "default_true")]
    pub nullable: bool,
    /// Dotted path of the value in the record (default: the column name), e.g.
    /// `address.city`.
    #[serde(default)]
    pub path: Option<String>,
}

fn default_true() -> bool {
    true
}

/// The Arrow type of a column type name; the error lists the names.
pub fn data_type(name: &str) -> Result<DataType, ConnectorError> {
    let t = name.trim().to_ascii_lowercase();
    Ok(match t.as_str() {
        "string" | "json" => DataType::Utf8,
        "boolean" | "bool" => DataType::Boolean,
        "int16" => DataType::Int16,
        "int32" => DataType::Int32,
        "int64" => DataType::Int64,
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        "date" => DataType::Date32,
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        _ => match t
            .strip_prefix("decimal(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|r| r.split_once(','))
        {
            Some((p, s)) => {
                let (p, s): (u8, i8) = match (p.trim().parse(), s.trim().parse()) {
                    (Ok(p), Ok(s)) => (p, s),
                    _ => return Err(unknown_type(name)),
                };
                if !(1..=38).contains(&p) || s < 0 || s as u8 > p {
                    return Err(ConnectorError::config(format!(
                        "column type {name:?}: a decimal needs 1 ≤ precision ≤ 38 and 0 ≤ scale ≤ precision"
                    )));
                }
                DataType::Decimal128(p, s)
            }
            None => return Err(unknown_type(name)),
        },
    })
}

fn unknown_type(name: &str) -> ConnectorError {
    ConnectorError::config(format!(
        "column type {name:?} is not one of string, boolean, int16, int32, int64, float32, float64, date, timestamp, decimal(p,s), json"
    ))
}

/// The Arrow schema of `columns` (names unique and non-empty, types known).
pub fn schema_of(columns: &[ColumnSpec]) -> Result<SchemaRef, ConnectorError> {
    if columns.is_empty() {
        return Err(ConnectorError::config(
            "the stream's schema has no column; declare at least one ({name, type})",
        ));
    }
    let mut fields = Vec::with_capacity(columns.len());
    for c in columns {
        if c.name.is_empty() {
            return Err(ConnectorError::config("a column has an empty name"));
        }
        if columns.iter().filter(|o| o.name == c.name).count() > 1 {
            return Err(ConnectorError::config(format!(
                "column `{}` is declared twice",
                c.name
            )));
        }
        fields.push(Field::new(&c.name, data_type(&c.data_type)?, c.nullable));
    }
    Ok(std::sync::Arc::new(Schema::new(fields)))
}
