//! JSON records to Arrow through the stream's declared schema (`arrow-json`'s decoder):
//! where the records are in a response, which column each field becomes, and a clear
//! error naming the record and field that do not fit. Through the SDK's fast paths for
//! arrow-json ([`connector_sdk::json_decoders`]): a record's keys are matched to columns by
//! the order the previous record gave them, and timestamps and dates in their canonical
//! text forms are read by [`connector_sdk::json_temporal`]'s decoders (the same values,
//! about twice as fast); anything else by arrow-json's own decoders.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use connector_sdk::ConnectorError;
pub use connector_sdk::columns::{ColumnSpec, data_type};
use connector_sdk::json_decoders::JsonDecoders;
use serde_json::Value;

/// The value at dotted `path` in `value` (`""`: the value itself). Array elements by
/// index (`items.0.id`).
pub fn value_at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// The records of a response body: the array at `records_path` (`""`: the body is the
/// array). A null or missing array is an empty page only when `allow_missing`.
pub fn records_at<'a>(
    body: &'a Value,
    records_path: &str,
    url: &url::Url,
) -> Result<&'a [Value], ConnectorError> {
    match value_at(body, records_path) {
        Some(Value::Array(a)) => Ok(a),
        Some(Value::Null) => Ok(&[]),
        found => {
            let what = match found {
                None => "nothing".to_string(),
                Some(Value::Object(_)) => "an object".into(),
                Some(Value::String(_)) => "a string".into(),
                Some(v) => format!("{v}"),
            };
            let shown = if records_path.is_empty() {
                "the body".to_string()
            } else {
                format!("records_path `{records_path}`")
            };
            Err(ConnectorError::source_error(format!(
                "{shown} is not an array of records in the answer of GET {url} (found {what}); set records_path to where the records are"
            )))
        }
    }
}

/// Decodes JSON records into batches of the declared schema.
#[derive(Debug, Clone)]
pub struct JsonToArrow {
    columns: Vec<(String, Vec<String>, bool)>,
    schema: SchemaRef,
}

impl JsonToArrow {
    /// A decoder for `columns` (validated: names unique and non-empty, types known).
    pub fn new(columns: &[ColumnSpec]) -> Result<JsonToArrow, ConnectorError> {
        let schema = connector_sdk::columns::schema_of(columns)?;
        let out = columns
            .iter()
            .map(|c| {
                let path = c.path.clone().unwrap_or_else(|| c.name.clone());
                let is_json = c.data_type.trim().eq_ignore_ascii_case("json");
                (
                    c.name.clone(),
                    path.split('.').map(str::to_string).collect(),
                    is_json,
                )
            })
            .collect();
        Ok(JsonToArrow {
            columns: out,
            schema,
        })
    }

    /// The Arrow schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// One record projected onto the columns (values cloned; `json` columns as text).
    fn project(&self, record: &Value) -> Value {
        let mut row = serde_json::Map::with_capacity(self.columns.len());
        for (name, path, is_json) in &self.columns {
            let mut v = Some(record);
            for key in path {
                v = v.and_then(|v| match v {
                    Value::Object(m) => m.get(key),
                    Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
                    _ => None,
                });
            }
            let v = match v {
                None | Some(Value::Null) => Value::Null,
                Some(v) if *is_json => Value::String(v.to_string()),
                Some(v) => v.clone(),
            };
            row.insert(name.clone(), v);
        }
        Value::Object(row)
    }

    /// `records` as one batch. A record that does not fit is an error naming its index
    /// (`where_` says which page) and the field.
    pub fn decode<'r>(
        &self,
        records: impl IntoIterator<Item = &'r Value>,
        where_: &str,
    ) -> Result<RecordBatch, ConnectorError> {
        let rows: Vec<Value> = records.into_iter().map(|r| self.project(r)).collect();
        match self.decode_rows(&rows) {
            Ok(b) => Ok(b),
            Err(e) => {
                // Find the first record that does not fit, to name it.
                let bad = rows
                    .iter()
                    .position(|r| self.decode_rows(std::slice::from_ref(r)).is_err());
                let at = bad.map_or(String::new(), |i| format!("record {i} of "));
                Err(ConnectorError::source_error(format!(
                    "{at}{where_} does not fit the declared schema: {e} (fix the column's type or nullable, or the source)"
                )))
            }
        }
    }

    fn decode_rows(&self, rows: &[Value]) -> Result<RecordBatch, arrow::error::ArrowError> {
        let mut decoder = arrow_json::ReaderBuilder::new(self.schema.clone())
            .with_batch_size(rows.len().max(1))
            .with_decoder_factory(Arc::new(JsonDecoders))
            .build_decoder()?;
        decoder.serialize(rows)?;
        Ok(decoder
            .flush()?
            .unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, Decimal128Array};
    use arrow::datatypes::{Date32Type, Int16Type, Int64Type, TimestampMicrosecondType};
    use serde_json::json;

    fn col(name: &str, t: &str, nullable: bool) -> ColumnSpec {
        ColumnSpec {
            name: name.into(),
            data_type: t.into(),
            nullable,
            path: None,
        }
    }

    #[test]
    fn values_at_the_limits_of_each_type_decode_exactly() {
        let mut city = col("city", "string", true);
        city.path = Some("address.city".into());
        let d = JsonToArrow::new(&[
            col("id", "int64", false),
            col("small", "int16", true),
            col("amount", "decimal(38,2)", true),
            col("at", "timestamp", true),
            col("day", "date", true),
            col("extra", "json", true),
            city,
        ])
        .unwrap();
        let records = vec![
            json!({"id": i64::MAX, "small": i16::MIN, "amount": "999999999999999999999999999999999999.99",
                   "at": "1970-01-01T00:00:00Z", "day": "0001-01-01", "extra": {"a": [1, null]},
                   "address": {"city": "Zürich \"\u{1F600}\""}}),
            json!({"id": i64::MIN, "small": i16::MAX, "amount": null, "at": "9999-12-31T23:59:59.999999Z",
                   "day": "9999-12-31", "ignored": 1}),
        ];
        let b = d.decode(&records, "page 1").unwrap();
        assert_eq!(b.num_rows(), 2);
        let ids = b.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.values().to_vec(), vec![i64::MAX, i64::MIN]);
        assert_eq!(
            b.column(1).as_primitive::<Int16Type>().values().to_vec(),
            vec![i16::MIN, i16::MAX]
        );
        let amounts = b
            .column(2)
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap();
        assert_eq!(
            amounts.value(0),
            99_999_999_999_999_999_999_999_999_999_999_999_999
        );
        assert!(amounts.is_null(1));
        let at = b.column(3).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(at.value(0), 0);
        assert_eq!(at.value(1), 253_402_300_799_999_999);
        let day = b.column(4).as_primitive::<Date32Type>();
        assert_eq!(day.value(0), -719_162);
        assert_eq!(day.value(1), 2_932_896);
        assert_eq!(b.column(5).as_string::<i32>().value(0), r#"{"a":[1,null]}"#);
        assert!(b.column(5).is_null(1));
        assert_eq!(
            b.column(6).as_string::<i32>().value(0),
            "Zürich \"\u{1F600}\""
        );
        assert!(b.column(6).is_null(1));
    }

    #[test]
    fn a_record_that_does_not_fit_is_named() {
        let d =
            JsonToArrow::new(&[col("id", "int64", false), col("name", "string", true)]).unwrap();
        let records = vec![json!({"id": 1}), json!({"id": 2}), json!({"id": "three"})];
        let e = d
            .decode(&records, "GET http://h/items?_page=4")
            .unwrap_err()
            .to_string();
        assert!(e.contains("record 2 of GET http://h/items?_page=4"), "{e}");
        let e = d
            .decode(&[json!({"name": "no id"})], "page 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("record 0"), "{e}");
        assert!(JsonToArrow::new(&[col("a", "int128", true)]).is_err());
        assert!(JsonToArrow::new(&[col("a", "decimal(39,2)", true)]).is_err());
        assert!(JsonToArrow::new(&[col("a", "decimal(5,6)", true)]).is_err());
        assert!(JsonToArrow::new(&[col("a", "string", true), col("a", "int64", true)]).is_err());
    }

    #[test]
    fn records_are_found_or_the_path_is_named() {
        let u = url::Url::parse("http://h/x").unwrap();
        let body = json!({"data": {"items": [1, 2]}, "n": null});
        assert_eq!(records_at(&body, "data.items", &u).unwrap().len(), 2);
        assert_eq!(records_at(&body, "n", &u).unwrap().len(), 0);
        let e = records_at(&body, "data", &u).unwrap_err().to_string();
        assert!(
            e.contains("records_path `data`") && e.contains("an object"),
            "{e}"
        );
        assert!(records_at(&json!([{"a": 1}]), "", &u).is_ok());
    }
}
