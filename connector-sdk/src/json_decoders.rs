//! The SDK's fast paths for `arrow-json`, in one [`DecoderFactory`] (the reader's own
//! extension point):
//!
//! ```
//! # use std::sync::Arc;
//! # use connector_sdk::arrow::datatypes::{DataType, Field, Schema};
//! use connector_sdk::json_decoders::JsonDecoders;
//! let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
//! let decoder = arrow_json::ReaderBuilder::new(schema)
//!     .with_decoder_factory(Arc::new(JsonDecoders))
//!     .build_decoder();
//! ```
//!
//! - objects (each record, and every struct column) have their keys matched to the
//!   schema's fields by the order the previous object gave them ([`KeyOrderObjects`]);
//! - canonical timestamps and dates are read by [`crate::json_temporal`];
//! - everything else is `arrow-json`'s own decoder.
//!
//! Values, nulls and errors are what `arrow-json` alone gives (tests hold the two to the
//! same batches and the same error messages).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, NullBufferBuilder, StructArray};
use arrow::datatypes::{DataType, FieldRef, Fields};
use arrow::error::ArrowError;
use arrow_json::StructMode;
use arrow_json::reader::{ArrayDecoder, DecoderContext, DecoderFactory, Tape, TapeElement};

use crate::json_temporal::temporal_decoder;

/// The [`DecoderFactory`] with every fast path of this module; other types are left to
/// `arrow-json`.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonDecoders;

impl DecoderFactory for JsonDecoders {
    fn make_default_decoder(
        &self,
        ctx: &DecoderContext,
        field: &FieldRef,
        is_nullable: bool,
    ) -> Result<Option<Box<dyn ArrayDecoder>>, ArrowError> {
        match field.data_type() {
            // Structs read as lists (`StructMode::ListOnly`) have no keys to match.
            DataType::Struct(fields) if ctx.struct_mode() == StructMode::ObjectOnly => Ok(Some(
                Box::new(KeyOrderObjects::new(ctx, fields.clone(), is_nullable)?),
            )),
            _ => temporal_decoder(ctx, field, is_nullable),
        }
    }
}

/// Objects decoded into a struct array, each key matched to its field by first trying the
/// field the key in the same place of the previous object matched.
///
/// Why not `arrow-json`'s own struct decoder: it finds each key's field by comparing the
/// key with the field names one after the other (a `memcmp` call per comparison; a hash
/// map from 16 fields on), which was ~9 % of a JSON Lines ingestion's CPU (`perf`,
/// `bench/s3-files`: `memcmp` 5.4 %, the struct decoder 4 %). Records of one source almost
/// always list their keys in the same order, so here a key is compared with one name,
/// inline, and the search (by name, as `arrow-json` does) runs only when the order changes.
/// A key the schema does not have is remembered in its place too, so the keys a projected
/// schema leaves out are not searched for in every record.
struct KeyOrderObjects {
    fields: Fields,
    /// Each field's name, for the inline comparison.
    names: Vec<Box<[u8]>>,
    children: Vec<Box<dyn ArrayDecoder>>,
    strict_mode: bool,
    ignore_type_conflicts: bool,
    is_nullable: bool,
    /// `order[k]`: what the `k`-th key of the last object that had one was.
    order: Vec<KeySlot>,
    /// The tape position of each field's value, field by field (`rows` per field); 0, the
    /// tape's leading null, where an object lacks the field.
    positions: Vec<u32>,
}

impl KeyOrderObjects {
    fn new(ctx: &DecoderContext, fields: Fields, is_nullable: bool) -> Result<Self, ArrowError> {
        let children = fields
            .iter()
            // Children of a nullable struct may hold nulls under its null rows; `decode`
            // refuses nulls in a non-nullable child anywhere else.
            .map(|f| ctx.make_decoder(f, f.is_nullable() || is_nullable))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            names: fields
                .iter()
                .map(|f| f.name().as_bytes().to_vec().into_boxed_slice())
                .collect(),
            order: (0..fields.len()).map(KeySlot::Field).collect(),
            fields,
            children,
            strict_mode: ctx.strict_mode(),
            ignore_type_conflicts: ctx.ignore_type_conflicts(),
            is_nullable,
            positions: Vec::new(),
        })
    }

    /// The field of the `k`-th key of an object, named `key`.
    #[inline(always)]
    fn field_of(&mut self, k: usize, key: &[u8]) -> Option<usize> {
        match self.order.get(k) {
            Some(KeySlot::Field(f)) if same_bytes(&self.names[*f], key) => Some(*f),
            // The same key the schema does not have, in the same place: no field, without
            // a search (records often carry keys a projected schema leaves out).
            Some(KeySlot::Unknown(name)) if same_bytes(name, key) => None,
            _ => self.search(k, key),
        }
    }

    /// The field named `key`, found by name and remembered as the `k`-th key's (out of
    /// line: it runs only when the order of keys changes).
    #[inline(never)]
    fn search(&mut self, k: usize, key: &[u8]) -> Option<usize> {
        let found = self.names.iter().position(|n| same_bytes(n, key));
        // Keys are looked up in order, so `k` is at most one past the end.
        if k == self.order.len() {
            self.order.push(KeySlot::Field(0));
        }
        match (found, &mut self.order[k]) {
            (Some(f), slot) => *slot = KeySlot::Field(f),
            // Its buffer reused: keys that change from record to record (an object used as
            // a map) cost no allocation each.
            (None, KeySlot::Unknown(name)) => {
                name.clear();
                name.extend_from_slice(key);
            }
            (None, slot) => *slot = KeySlot::Unknown(key.to_vec()),
        }
        found
    }
}

/// What a key in one place of the last object was.
enum KeySlot {
    /// The name of this field of the schema.
    Field(usize),
    /// This name, which no field has.
    Unknown(Vec<u8>),
}

/// `a == b`, inline for names up to 16 bytes (two overlapping word comparisons instead of
/// a `memcmp` call).
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    fn word<const W: usize>(s: &[u8], at: usize) -> [u8; W] {
        s[at..at + W].try_into().expect("W bytes")
    }
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => {
            u32::from_ne_bytes(word(a, 0)) == u32::from_ne_bytes(word(b, 0))
                && u32::from_ne_bytes(word(a, n - 4)) == u32::from_ne_bytes(word(b, n - 4))
        }
        8..=16 => {
            u64::from_ne_bytes(word(a, 0)) == u64::from_ne_bytes(word(b, 0))
                && u64::from_ne_bytes(word(a, n - 8)) == u64::from_ne_bytes(word(b, n - 8))
        }
        _ => a == b,
    }
}

impl ArrayDecoder for KeyOrderObjects {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let rows = pos.len();
        self.positions.clear();
        let cells = self.fields.len().checked_mul(rows).ok_or_else(|| {
            ArrowError::JsonError(format!(
                "{rows} rows of {} fields overflow the positions' size",
                self.fields.len()
            ))
        })?;
        self.positions.resize(cells, 0);
        let mut nulls = self.is_nullable.then(|| NullBufferBuilder::new(rows));
        for (row, &p) in pos.iter().enumerate() {
            // As arrow-json's struct decoder: a null, or (when conflicts are ignored)
            // anything but an object, is a null struct where the struct may be null.
            let end = match (tape.get(p), nulls.as_mut()) {
                (TapeElement::StartObject(end), None) => end,
                (TapeElement::StartObject(end), Some(nulls)) => {
                    nulls.append_non_null();
                    end
                }
                (TapeElement::Null, Some(nulls)) => {
                    nulls.append_null();
                    continue;
                }
                (_, Some(nulls)) if self.ignore_type_conflicts => {
                    nulls.append_null();
                    continue;
                }
                _ => return Err(tape.error(p, "{")),
            };
            let mut at = p + 1;
            let mut k = 0;
            while at < end {
                let key = match tape.get(at) {
                    TapeElement::String(s) => tape.get_string(s),
                    _ => return Err(tape.error(at, "field name")),
                };
                match self.field_of(k, key.as_bytes()) {
                    // A key given twice: its last value, as arrow-json reads it.
                    Some(f) => self.positions[f * rows + row] = at + 1,
                    None if self.strict_mode => {
                        return Err(ArrowError::JsonError(format!(
                            "column '{key}' missing from schema"
                        )));
                    }
                    None => {}
                }
                at = tape.next(at + 1, "field value")?;
                k += 1;
            }
        }
        let mut columns = Vec::with_capacity(self.fields.len());
        for (f, (child, field)) in self.children.iter_mut().zip(&self.fields).enumerate() {
            let column = child
                .decode(tape, &self.positions[f * rows..(f + 1) * rows])
                .map_err(|e| match e {
                    ArrowError::JsonError(s) => ArrowError::JsonError(format!(
                        "whilst decoding field '{}': {s}",
                        field.name()
                    )),
                    e => e,
                })?;
            columns.push(column);
        }
        let nulls = nulls.as_mut().and_then(NullBufferBuilder::finish);
        for (column, field) in columns.iter().zip(&self.fields) {
            if let Some(child_nulls) = column.nulls() {
                let masked = nulls.as_ref().is_some_and(|n| n.contains(child_nulls));
                if !field.is_nullable() && !masked {
                    return Err(ArrowError::JsonError(format!(
                        "Encountered unmasked nulls in non-nullable StructArray child: {field}"
                    )));
                }
            }
        }
        Ok(Arc::new(StructArray::try_new_with_length(
            self.fields.clone(),
            columns,
            nulls,
            rows,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema, TimeUnit};
    use arrow::record_batch::RecordBatch;
    use proptest::prelude::*;

    #[test]
    fn same_bytes_is_equality_at_every_length() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n as u8).map(|i| b'a' + i % 26).collect();
            assert!(same_bytes(&a, &a.clone()), "{n}");
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 1;
                assert!(!same_bytes(&a, &b), "length {n}, byte {i} differs");
            }
            assert!(!same_bytes(&a, &a[..n.saturating_sub(1)]) || n == 0);
        }
    }

    fn decode(
        schema: &Arc<Schema>,
        text: &str,
        fast: bool,
        strict: bool,
        ignore_conflicts: bool,
        batch_size: usize,
    ) -> Result<Vec<RecordBatch>, String> {
        let mut b = arrow_json::ReaderBuilder::new(schema.clone())
            .with_strict_mode(strict)
            .with_ignore_type_conflicts(ignore_conflicts)
            .with_batch_size(batch_size);
        if fast {
            b = b.with_decoder_factory(Arc::new(JsonDecoders));
        }
        let mut d = b.build_decoder().map_err(|e| e.to_string())?;
        let mut batches = Vec::new();
        let mut rest = text.as_bytes();
        loop {
            let used = d.decode(rest).map_err(|e| e.to_string())?;
            rest = &rest[used..];
            match d.flush().map_err(|e| e.to_string())? {
                Some(b) => batches.push(b),
                None if rest.is_empty() => return Ok(batches),
                None => {}
            }
        }
    }

    fn schema(nullable_id: bool, nullable_struct: bool) -> Arc<Schema> {
        let inner = Fields::from(vec![
            Field::new("x", DataType::Int32, true),
            Field::new("yy", DataType::Utf8, false),
        ]);
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, nullable_id),
            Field::new("customer", DataType::Utf8, true),
            Field::new("a_name_longer_than_16", DataType::Float64, true),
            Field::new("id2", DataType::Int64, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("é", DataType::Boolean, true),
            Field::new("", DataType::Int8, true),
            Field::new("s", DataType::Struct(inner), nullable_struct),
        ]))
    }

    /// Batches that mix key orders, missing, unknown and repeated keys, names that differ
    /// in one byte at the same length, nulls where they are refused, non-objects.
    #[test]
    fn records_decode_as_arrow_json_decodes_them() {
        let texts = [
            // one order, then another, then keys missing and unknown
            "{\"id\":1,\"customer\":\"a\",\"at\":\"2024-01-01T00:00:00Z\",\"s\":{\"x\":1,\"yy\":\"q\"}}\n\
             {\"customer\":\"b\",\"id\":2,\"s\":{\"yy\":\"r\",\"x\":null}}\n\
             {\"id\":3,\"unknown\":[1,{\"id\":9}],\"id2\":4,\"é\":true,\"\":-128}\n\
             {\"id\":4,\"a_name_longer_than_16\":1.5,\"a_name_longer_than_17\":2.5}\n",
            // keys the schema lacks, in the same places and then moved, one of a known
            // name's length, and an object used as a map (a new unknown key each record)
            "{\"zz\":0,\"id\":1,\"extra\":[1],\"customer\":\"a\"}\n\
             {\"zz\":0,\"id\":2,\"extra\":{},\"customer\":\"b\"}\n\
             {\"id\":3,\"zz\":0,\"customer\":\"c\",\"extra\":null}\n\
             {\"id\":4,\"ie\":0,\"id2\":5}\n\
             {\"id\":5,\"k1\":1}\n{\"id\":6,\"k2\":2}\n{\"id\":7,\"k3\":3,\"customer\":\"d\"}\n",
            // the same key twice: the last value
            "{\"id\":1,\"id\":2,\"customer\":\"x\",\"customer\":null}\n",
            // names of one length that differ in one byte
            "{\"id\":1,\"ie\":5,\"id2\":7,\"id3\":8,\"customes\":\"no\"}\n",
            // a missing or null non-nullable value
            "{\"id\":1}\n{\"customer\":\"no id\"}\n",
            "{\"id\":null}\n",
            "{\"id\":1,\"s\":{\"x\":1}}\n",
            "{\"id\":1,\"s\":null}\n{\"id\":2}\n",
            // not an object, at the top and in the struct
            "[1,2]\n",
            "{\"id\":1,\"s\":[1]}\n",
            "{\"id\":1,\"s\":\"text\"}\n",
            // a value of the wrong type
            "{\"id\":\"one\"}\n",
            "{\"id\":1,\"s\":{\"x\":\"one\",\"yy\":\"\"}}\n",
            "",
        ];
        for nullable_id in [false, true] {
            for nullable_struct in [false, true] {
                let schema = schema(nullable_id, nullable_struct);
                for (strict, ignore_conflicts) in [(false, false), (true, false), (false, true)] {
                    for text in texts {
                        for batch_size in [1, 2, 1024] {
                            let ours =
                                decode(&schema, text, true, strict, ignore_conflicts, batch_size);
                            let theirs =
                                decode(&schema, text, false, strict, ignore_conflicts, batch_size);
                            assert_eq!(
                                ours, theirs,
                                "id nullable={nullable_id} struct nullable={nullable_struct} strict={strict} ignore_type_conflicts={ignore_conflicts} batch={batch_size}: {text}"
                            );
                        }
                    }
                }
            }
        }
    }

    fn record() -> impl Strategy<Value = String> {
        // Each key from the schema's names and near misses, in any order, some repeated,
        // each with a value of its field's type, of another type, or null.
        let key = prop::sample::select(vec![
            "id",
            "ie",
            "customer",
            "customes",
            "a_name_longer_than_16",
            "id2",
            "at",
            "é",
            "",
            "s",
            "zz",
        ]);
        let value = prop::sample::select(vec![
            "1",
            "-9223372036854775808",
            "1.5",
            "\"text\"",
            "\"2024-02-29T23:59:59.999999Z\"",
            "true",
            "null",
            "{\"x\":1,\"yy\":\"v\"}",
            "{\"yy\":\"v\",\"x\":2}",
            "{}",
            "[]",
        ]);
        prop::collection::vec((key, value), 0..8).prop_map(|kvs| {
            let body: Vec<String> = kvs
                .iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
                .collect();
            format!("{{{}}}\n", body.join(","))
        })
    }

    proptest! {
        #[test]
        fn generated_records_decode_as_arrow_json_decodes_them(
            records in prop::collection::vec(record(), 1..12),
            nullable_id in any::<bool>(),
            nullable_struct in any::<bool>(),
            strict in any::<bool>(),
            ignore_conflicts in any::<bool>(),
            batch_size in 1usize..5,
        ) {
            let schema = schema(nullable_id, nullable_struct);
            let text = records.concat();
            prop_assert_eq!(
                decode(&schema, &text, true, strict, ignore_conflicts, batch_size),
                decode(&schema, &text, false, strict, ignore_conflicts, batch_size)
            );
        }
    }
}
