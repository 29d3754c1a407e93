//! `COPY ... TO STDOUT (FORMAT binary)` decoded straight into Arrow builders.
//!
//! The parsing is written by hand on purpose: no crate decodes the COPY binary stream into
//! Arrow on this toolchain (ConnectorX is not a library for this, `pgcopy`/`binary-copy`
//! readers in `tokio-postgres` produce per-row `Row`-like values), and the format is small
//! and stable (documented in the PostgreSQL manual, "COPY, Binary Format", and the
//! `*_send` functions of each type):
//!
//! - header: the 11-byte signature `PGCOPY\n\xff\r\n\0`, a 4-byte flags field, a 4-byte
//!   header-extension length and that many bytes;
//! - each tuple: a 2-byte field count (-1 ends the data), then per field a 4-byte length
//!   (-1 is NULL) and that many bytes; every integer is big-endian.
//!
//! Rows never become intermediate objects: each field is appended to its column's builder.

use std::sync::Arc;

use arrow::array::BooleanBufferBuilder;
use arrow::array::PrimitiveBuilder;
use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListArray,
    StringBuilder, StructArray, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{Field, Int32Type, Int64Type};

use crate::types::{NumericMapping, PgType, interval_fields};

/// 2000-01-01 (PostgreSQL's epoch) in days since 1970-01-01.
pub(crate) const PG_EPOCH_DAYS: i32 = 10_957;
/// 2000-01-01 in microseconds since 1970-01-01.
pub(crate) const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// A decoding failure; the caller adds the stream and column.
#[derive(Debug)]
pub(crate) struct DecodeError {
    /// Which column (index into the decoders), if known.
    pub column: Option<usize>,
    /// What is wrong, one line.
    pub message: String,
    /// Whether the value is valid PostgreSQL data Arrow cannot hold (vs a protocol error).
    pub unsupported: bool,
}

fn bad(message: impl Into<String>) -> DecodeError {
    DecodeError {
        column: None,
        message: message.into(),
        unsupported: false,
    }
}

fn unsupported(message: impl Into<String>) -> DecodeError {
    DecodeError {
        column: None,
        message: message.into(),
        unsupported: true,
    }
}

fn be_i16(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[0], b[1]])
}
fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn expect_len(v: &[u8], n: usize, what: &str) -> Result<(), DecodeError> {
    if v.len() == n {
        Ok(())
    } else {
        Err(bad(format!(
            "{what} value has {} bytes, expected {n}",
            v.len()
        )))
    }
}

fn utf8(v: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(v).map_err(|_| bad("text value is not valid UTF-8"))
}

/// The builders of an interval column (a struct of months, days, microseconds).
#[derive(Debug)]
pub(crate) struct IntervalBuilder {
    months: PrimitiveBuilder<Int32Type>,
    days: PrimitiveBuilder<Int32Type>,
    micros: PrimitiveBuilder<Int64Type>,
    valid: BooleanBufferBuilder,
}

/// One column's builder.
#[derive(Debug)]
pub(crate) enum Decoder {
    Bool(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal {
        builder: Decimal128Builder,
        precision: u8,
        scale: i8,
    },
    NumericText(StringBuilder),
    Text(StringBuilder),
    Jsonb(StringBuilder),
    Bytea(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp {
        builder: TimestampMicrosecondBuilder,
        utc: bool,
    },
    /// Boxed: four builders would make every other variant as large.
    Interval(Box<IntervalBuilder>),
    Uuid(StringBuilder),
    List {
        offsets: Vec<i32>,
        valid: BooleanBufferBuilder,
        child: Box<Decoder>,
        item: Arc<Field>,
    },
}

impl Decoder {
    /// A decoder for `ty` with room for `capacity` values.
    pub(crate) fn new(ty: &PgType, capacity: usize) -> Self {
        match ty {
            PgType::Bool => Self::Bool(BooleanBuilder::with_capacity(capacity)),
            PgType::Int2 => Self::Int16(Int16Builder::with_capacity(capacity)),
            PgType::Int4 => Self::Int32(Int32Builder::with_capacity(capacity)),
            PgType::Int8 => Self::Int64(Int64Builder::with_capacity(capacity)),
            PgType::Float4 => Self::Float32(Float32Builder::with_capacity(capacity)),
            PgType::Float8 => Self::Float64(Float64Builder::with_capacity(capacity)),
            PgType::Numeric(NumericMapping::Decimal { precision, scale }) => Self::Decimal {
                builder: Decimal128Builder::with_capacity(capacity),
                precision: *precision,
                scale: *scale,
            },
            PgType::Numeric(NumericMapping::Text) => {
                Self::NumericText(StringBuilder::with_capacity(capacity, capacity * 8))
            }
            PgType::Text | PgType::Json => {
                Self::Text(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            PgType::Jsonb => Self::Jsonb(StringBuilder::with_capacity(capacity, capacity * 16)),
            PgType::Bytea => Self::Bytea(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            PgType::Date => Self::Date(Date32Builder::with_capacity(capacity)),
            PgType::Time => Self::Time(Time64MicrosecondBuilder::with_capacity(capacity)),
            PgType::Timestamp | PgType::Timestamptz => Self::Timestamp {
                builder: TimestampMicrosecondBuilder::with_capacity(capacity),
                utc: *ty == PgType::Timestamptz,
            },
            PgType::Interval => Self::Interval(Box::new(IntervalBuilder {
                months: PrimitiveBuilder::with_capacity(capacity),
                days: PrimitiveBuilder::with_capacity(capacity),
                micros: PrimitiveBuilder::with_capacity(capacity),
                valid: BooleanBufferBuilder::new(capacity),
            })),
            PgType::Uuid => Self::Uuid(StringBuilder::with_capacity(capacity, capacity * 36)),
            PgType::Array(elem) => {
                let mut offsets = Vec::with_capacity(capacity + 1);
                offsets.push(0);
                Self::List {
                    offsets,
                    valid: BooleanBufferBuilder::new(capacity),
                    child: Box::new(Decoder::new(elem, capacity)),
                    item: Arc::new(Field::new("item", elem.arrow_type(), true)),
                }
            }
        }
    }

    /// Append one field: `None` is SQL NULL.
    pub(crate) fn append(&mut self, value: Option<&[u8]>) -> Result<(), DecodeError> {
        let Some(v) = value else {
            self.append_null();
            return Ok(());
        };
        match self {
            Self::Bool(b) => {
                expect_len(v, 1, "bool")?;
                b.append_value(v[0] != 0);
            }
            Self::Int16(b) => {
                expect_len(v, 2, "int2")?;
                b.append_value(be_i16(v));
            }
            Self::Int32(b) => {
                expect_len(v, 4, "int4")?;
                b.append_value(be_i32(v));
            }
            Self::Int64(b) => {
                expect_len(v, 8, "int8")?;
                b.append_value(be_i64(v));
            }
            Self::Float32(b) => {
                expect_len(v, 4, "float4")?;
                b.append_value(f32::from_bits(be_i32(v) as u32));
            }
            Self::Float64(b) => {
                expect_len(v, 8, "float8")?;
                b.append_value(f64::from_bits(be_i64(v) as u64));
            }
            Self::Decimal {
                builder,
                precision,
                scale,
            } => builder.append_value(numeric_to_i128(v, *precision, *scale)?),
            Self::NumericText(b) => b.append_value(numeric_to_string(v)?),
            Self::Text(b) => b.append_value(utf8(v)?),
            Self::Jsonb(b) => match v.split_first() {
                Some((1, rest)) => b.append_value(utf8(rest)?),
                _ => return Err(bad("jsonb value has an unknown format version")),
            },
            Self::Bytea(b) => b.append_value(v),
            Self::Date(b) => {
                expect_len(v, 4, "date")?;
                let d = be_i32(v);
                if d == i32::MAX || d == i32::MIN {
                    return Err(unsupported(
                        "date value is ±infinity, which Arrow Date32 cannot hold",
                    ));
                }
                b.append_value(d + PG_EPOCH_DAYS);
            }
            Self::Time(b) => {
                expect_len(v, 8, "time")?;
                b.append_value(be_i64(v));
            }
            Self::Timestamp { builder, .. } => {
                expect_len(v, 8, "timestamp")?;
                let t = be_i64(v);
                if t == i64::MAX || t == i64::MIN {
                    return Err(unsupported(
                        "timestamp value is ±infinity, which Arrow Timestamp cannot hold",
                    ));
                }
                let t = t.checked_add(PG_EPOCH_MICROS).ok_or_else(|| {
                    unsupported("timestamp value is beyond year 294246, outside Arrow's range")
                })?;
                builder.append_value(t);
            }
            Self::Interval(interval) => {
                let IntervalBuilder {
                    months,
                    days,
                    micros,
                    valid,
                } = &mut **interval;
                expect_len(v, 16, "interval")?;
                micros.append_value(be_i64(&v[0..8]));
                days.append_value(be_i32(&v[8..12]));
                months.append_value(be_i32(&v[12..16]));
                valid.append(true);
            }
            Self::Uuid(b) => {
                expect_len(v, 16, "uuid")?;
                let text = format_uuid(v);
                b.append_value(std::str::from_utf8(&text).map_err(|_| bad("uuid text"))?);
            }
            Self::List {
                offsets,
                valid,
                child,
                ..
            } => {
                let n = decode_array(v, child)?;
                let last = *offsets.last().unwrap_or(&0);
                let next = i32::try_from(n)
                    .ok()
                    .and_then(|n| last.checked_add(n))
                    .ok_or_else(|| unsupported("more than 2^31 array elements in one batch"))?;
                offsets.push(next);
                valid.append(true);
            }
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match self {
            Self::Bool(b) => b.append_null(),
            Self::Int16(b) => b.append_null(),
            Self::Int32(b) => b.append_null(),
            Self::Int64(b) => b.append_null(),
            Self::Float32(b) => b.append_null(),
            Self::Float64(b) => b.append_null(),
            Self::Decimal { builder, .. } => builder.append_null(),
            Self::NumericText(b) | Self::Text(b) | Self::Jsonb(b) | Self::Uuid(b) => {
                b.append_null()
            }
            Self::Bytea(b) => b.append_null(),
            Self::Date(b) => b.append_null(),
            Self::Time(b) => b.append_null(),
            Self::Timestamp { builder, .. } => builder.append_null(),
            Self::Interval(interval) => {
                let IntervalBuilder {
                    months,
                    days,
                    micros,
                    valid,
                } = &mut **interval;
                months.append_value(0);
                days.append_value(0);
                micros.append_value(0);
                valid.append(false);
            }
            Self::List { offsets, valid, .. } => {
                offsets.push(*offsets.last().unwrap_or(&0));
                valid.append(false);
            }
        }
    }

    /// Values appended since the last `finish`.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Bool(b) => b.len(),
            Self::Int16(b) => b.len(),
            Self::Int32(b) => b.len(),
            Self::Int64(b) => b.len(),
            Self::Float32(b) => b.len(),
            Self::Float64(b) => b.len(),
            Self::Decimal { builder, .. } => builder.len(),
            Self::NumericText(b) | Self::Text(b) | Self::Jsonb(b) | Self::Uuid(b) => b.len(),
            Self::Bytea(b) => b.len(),
            Self::Date(b) => b.len(),
            Self::Time(b) => b.len(),
            Self::Timestamp { builder, .. } => builder.len(),
            Self::Interval(interval) => interval.valid.len(),
            Self::List { valid, .. } => valid.len(),
        }
    }

    /// The array of the values appended so far; the decoder is empty afterwards.
    pub(crate) fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Int16(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float32(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Decimal {
                builder,
                precision,
                scale,
            } => Arc::new(
                builder
                    .finish()
                    .with_precision_and_scale(*precision, *scale)
                    .expect("precision and scale were validated by the type mapping"),
            ),
            Self::NumericText(b) | Self::Text(b) | Self::Jsonb(b) | Self::Uuid(b) => {
                Arc::new(b.finish())
            }
            Self::Bytea(b) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Time(b) => Arc::new(b.finish()),
            Self::Timestamp { builder, utc } => {
                let a = builder.finish();
                if *utc {
                    Arc::new(a.with_timezone("UTC"))
                } else {
                    Arc::new(a)
                }
            }
            Self::Interval(interval) => {
                let IntervalBuilder {
                    months,
                    days,
                    micros,
                    valid,
                } = &mut **interval;
                let nulls = NullBuffer::new(valid.finish());
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(months.finish()),
                    Arc::new(days.finish()),
                    Arc::new(micros.finish()),
                ];
                Arc::new(StructArray::new(
                    interval_fields(),
                    columns,
                    (nulls.null_count() > 0).then_some(nulls),
                ))
            }
            Self::List {
                offsets,
                valid,
                child,
                item,
            } => {
                let values = child.finish();
                let offs = std::mem::replace(offsets, vec![0]);
                let nulls = NullBuffer::new(valid.finish());
                Arc::new(ListArray::new(
                    item.clone(),
                    OffsetBuffer::new(offs.into()),
                    values,
                    (nulls.null_count() > 0).then_some(nulls),
                ))
            }
        }
    }
}

/// Decode a binary array value into `child`; returns the number of elements.
fn decode_array(v: &[u8], child: &mut Decoder) -> Result<usize, DecodeError> {
    if v.len() < 12 {
        return Err(bad("array value is shorter than its header"));
    }
    let ndim = be_i32(v);
    // v[4..8]: has-nulls flag; v[8..12]: element type OID (the column type says it).
    match ndim {
        0 => return Ok(0),
        1 => {}
        n => {
            return Err(unsupported(format!(
                "array value has {n} dimensions; only one-dimensional arrays are supported"
            )));
        }
    }
    if v.len() < 20 {
        return Err(bad("array value is shorter than its dimension header"));
    }
    let count = be_i32(&v[12..16]);
    // v[16..20]: lower bound, not kept (Arrow lists start at 0).
    let count = usize::try_from(count).map_err(|_| bad("negative array length"))?;
    let mut pos = 20;
    for _ in 0..count {
        if v.len() < pos + 4 {
            return Err(bad("array value ends inside an element length"));
        }
        let len = be_i32(&v[pos..]);
        pos += 4;
        if len < 0 {
            child.append(None)?;
        } else {
            let end = pos + len as usize;
            if v.len() < end {
                return Err(bad("array value ends inside an element"));
            }
            child.append(Some(&v[pos..end]))?;
            pos = end;
        }
    }
    Ok(count)
}

const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

struct Numeric<'a> {
    weight: i16,
    sign: u16,
    dscale: u16,
    digits: &'a [u8],
}

impl Numeric<'_> {
    fn digit(&self, i: usize) -> i16 {
        be_i16(&self.digits[i * 2..])
    }
    fn ndigits(&self) -> usize {
        self.digits.len() / 2
    }
}

fn parse_numeric(v: &[u8]) -> Result<Numeric<'_>, DecodeError> {
    if v.len() < 8 {
        return Err(bad("numeric value is shorter than its header"));
    }
    let ndigits = be_i16(v);
    let n = Numeric {
        weight: be_i16(&v[2..]),
        sign: be_i16(&v[4..]) as u16,
        dscale: be_i16(&v[6..]) as u16,
        digits: &v[8..],
    };
    if ndigits < 0 || n.digits.len() != ndigits as usize * 2 {
        return Err(bad("numeric value length does not match its digit count"));
    }
    Ok(n)
}

/// A binary numeric as the unscaled integer of Decimal128(precision, scale).
fn numeric_to_i128(v: &[u8], precision: u8, scale: i8) -> Result<i128, DecodeError> {
    let n = parse_numeric(v)?;
    match n.sign {
        NUMERIC_NAN | NUMERIC_PINF | NUMERIC_NINF => {
            return Err(unsupported(format!(
                "numeric value {} cannot be held by Decimal128; map the column to text \
                 (unconstrained_numeric = \"string\" or a cast in a custom query)",
                special_numeric(n.sign)
            )));
        }
        _ => {}
    }
    let too_big = || {
        unsupported(format!(
            "numeric value does not fit Decimal128({precision}, {scale})"
        ))
    };
    // The digits form the integer `acc`, worth acc * 10000^(weight - ndigits + 1).
    let mut acc: i128 = 0;
    for i in 0..n.ndigits() {
        acc = acc
            .checked_mul(10_000)
            .and_then(|a| a.checked_add(n.digit(i) as i128))
            .ok_or_else(too_big)?;
    }
    let exp10 = 4 * (n.weight as i32 - n.ndigits() as i32 + 1) + scale as i32;
    let mut value = if exp10 >= 0 {
        10i128
            .checked_pow(exp10 as u32)
            .and_then(|p| acc.checked_mul(p))
            .ok_or_else(too_big)?
    } else {
        let div = 10i128.checked_pow((-exp10) as u32);
        match div {
            Some(d) if acc % d == 0 => acc / d,
            None if acc == 0 => 0,
            _ => {
                return Err(unsupported(format!(
                    "numeric value has more than {scale} fractional digits, which Decimal128({precision}, {scale}) cannot hold exactly"
                )));
            }
        }
    };
    if value.unsigned_abs() >= 10u128.pow(precision as u32) {
        return Err(too_big());
    }
    if n.sign == NUMERIC_NEG {
        value = -value;
    }
    Ok(value)
}

fn special_numeric(sign: u16) -> &'static str {
    match sign {
        NUMERIC_NAN => "NaN",
        NUMERIC_PINF => "Infinity",
        _ => "-Infinity",
    }
}

/// A binary numeric as PostgreSQL prints it (`numeric_out`): exact, `dscale` fraction digits.
fn numeric_to_string(v: &[u8]) -> Result<String, DecodeError> {
    let n = parse_numeric(v)?;
    if matches!(n.sign, NUMERIC_NAN | NUMERIC_PINF | NUMERIC_NINF) {
        return Ok(special_numeric(n.sign).to_string());
    }
    let mut s = String::with_capacity(n.ndigits() * 4 + 4);
    if n.sign == NUMERIC_NEG {
        s.push('-');
    }
    let digit_at = |i: i32| -> i16 {
        if i >= 0 && (i as usize) < n.ndigits() {
            n.digit(i as usize)
        } else {
            0
        }
    };
    if n.weight < 0 {
        s.push('0');
    } else {
        for i in 0..=n.weight as i32 {
            let d = digit_at(i);
            if i == 0 {
                s.push_str(&d.to_string());
            } else {
                s.push_str(&format!("{d:04}"));
            }
        }
    }
    if n.dscale > 0 {
        s.push('.');
        let mut frac = String::with_capacity(n.dscale as usize + 4);
        let mut i = n.weight as i32 + 1;
        while frac.len() < n.dscale as usize {
            frac.push_str(&format!("{:04}", digit_at(i)));
            i += 1;
        }
        frac.truncate(n.dscale as usize);
        s.push_str(&frac);
    }
    Ok(s)
}

/// The canonical text of a 16-byte UUID: lowercase, hyphenated (8-4-4-4-12).
fn format_uuid(v: &[u8]) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 36];
    let mut o = 0;
    for (i, byte) in v.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            o += 1;
        }
        out[o] = HEX[(byte >> 4) as usize];
        out[o + 1] = HEX[(byte & 0xf) as usize];
        o += 2;
    }
    out
}

/// Where the parser is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Tuples,
    Done,
}

/// Incremental parser of the COPY binary stream: feed it the chunks `copy_out` yields.
#[derive(Debug)]
pub(crate) struct CopyParser {
    state: State,
    /// Bytes of an incomplete header or tuple carried to the next chunk.
    carry: Vec<u8>,
    columns: usize,
}

/// What [`CopyParser::feed`] stopped at.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fed {
    /// Every complete tuple of the chunk was decoded (a partial one is carried over).
    NeedMore,
    /// `max_rows` rows are in the decoders; call `feed` again with an empty chunk after
    /// taking the batch to continue with the rest of this chunk.
    BatchFull,
    /// The trailer was read: the data is complete.
    Done,
}

impl CopyParser {
    pub(crate) fn new(columns: usize) -> Self {
        Self {
            state: State::Header,
            carry: Vec::new(),
            columns,
        }
    }

    /// Whether the trailer was seen.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decode the tuples of `chunk` (after any carried bytes) into `decoders`, stopping when
    /// they hold `max_rows` values.
    pub(crate) fn feed(
        &mut self,
        chunk: &[u8],
        decoders: &mut [Decoder],
        max_rows: usize,
    ) -> Result<Fed, DecodeError> {
        if self.carry.is_empty() {
            let (fed, used) = self.parse(chunk, decoders, max_rows)?;
            self.carry.extend_from_slice(&chunk[used..]);
            Ok(fed)
        } else {
            let mut buf = std::mem::take(&mut self.carry);
            buf.extend_from_slice(chunk);
            let (fed, used) = self.parse(&buf, decoders, max_rows)?;
            buf.drain(..used);
            self.carry = buf;
            Ok(fed)
        }
    }

    /// Parse from `buf`; returns what stopped it and how many bytes were consumed.
    fn parse(
        &mut self,
        buf: &[u8],
        decoders: &mut [Decoder],
        max_rows: usize,
    ) -> Result<(Fed, usize), DecodeError> {
        let mut pos = 0;
        if self.state == State::Header {
            if buf.len() < 19 {
                return Ok((Fed::NeedMore, 0));
            }
            if &buf[..11] != SIGNATURE {
                return Err(bad(
                    "the COPY stream does not start with the binary signature",
                ));
            }
            let flags = be_i32(&buf[11..]);
            if flags & (1 << 16) != 0 {
                return Err(bad("the COPY stream has OIDs, which were not requested"));
            }
            let ext = be_i32(&buf[15..]);
            let ext = usize::try_from(ext).map_err(|_| bad("negative header extension"))?;
            if buf.len() < 19 + ext {
                return Ok((Fed::NeedMore, 0));
            }
            pos = 19 + ext;
            self.state = State::Tuples;
        }
        if self.state == State::Done {
            return if pos < buf.len() {
                Err(bad("data after the COPY trailer"))
            } else {
                Ok((Fed::Done, pos))
            };
        }
        let rows_at_start = decoders.first().map(Decoder::len).unwrap_or(0);
        let mut rows = rows_at_start;
        loop {
            if rows >= max_rows {
                return Ok((Fed::BatchFull, pos));
            }
            let rest = &buf[pos..];
            if rest.len() < 2 {
                return Ok((Fed::NeedMore, pos));
            }
            let count = be_i16(rest);
            if count == -1 {
                self.state = State::Done;
                pos += 2;
                if pos < buf.len() {
                    return Err(bad("data after the COPY trailer"));
                }
                return Ok((Fed::Done, pos));
            }
            if count as usize != self.columns {
                return Err(bad(format!(
                    "a COPY tuple has {count} fields, expected {}",
                    self.columns
                )));
            }
            // First pass: is the whole tuple here?
            let mut p = 2;
            let mut complete = true;
            for _ in 0..self.columns {
                if rest.len() < p + 4 {
                    complete = false;
                    break;
                }
                let len = be_i32(&rest[p..]);
                p += 4;
                if len > 0 {
                    p += len as usize;
                    if rest.len() < p {
                        complete = false;
                        break;
                    }
                }
            }
            if !complete {
                return Ok((Fed::NeedMore, pos));
            }
            // Second pass: decode each field into its column.
            let mut p = 2;
            for (i, d) in decoders.iter_mut().enumerate() {
                let len = be_i32(&rest[p..]);
                p += 4;
                let value = if len < 0 {
                    None
                } else {
                    let v = &rest[p..p + len as usize];
                    p += len as usize;
                    Some(v)
                };
                d.append(value).map_err(|mut e| {
                    e.column = Some(i);
                    e
                })?;
            }
            pos += p;
            rows += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(digits.len() as i16).to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_decode_exactly() {
        // 12345.6789 = [1, 2345, 6789], weight 1, dscale 4.
        let v = numeric_bytes(1, 0, 4, &[1, 2345, 6789]);
        assert_eq!(numeric_to_i128(&v, 10, 4).unwrap(), 123_456_789);
        assert_eq!(numeric_to_i128(&v, 12, 6).unwrap(), 12_345_678_900);
        assert!(numeric_to_i128(&v, 10, 2).is_err());
        assert_eq!(numeric_to_string(&v).unwrap(), "12345.6789");
        // -0.0012 = [12], weight -1, dscale 4.
        let v = numeric_bytes(-1, NUMERIC_NEG, 4, &[12]);
        assert_eq!(numeric_to_i128(&v, 5, 4).unwrap(), -12);
        assert_eq!(numeric_to_string(&v).unwrap(), "-0.0012");
        // 1e8 = [1], weight 2 (digits stripped of trailing zero groups), dscale 0.
        let v = numeric_bytes(2, 0, 0, &[1]);
        assert_eq!(numeric_to_i128(&v, 20, 2).unwrap(), 10_000_000_000);
        assert_eq!(numeric_to_string(&v).unwrap(), "100000000");
        // 0 with dscale 2.
        let v = numeric_bytes(0, 0, 2, &[]);
        assert_eq!(numeric_to_i128(&v, 5, 2).unwrap(), 0);
        assert_eq!(numeric_to_string(&v).unwrap(), "0.00");
        let v = numeric_bytes(0, NUMERIC_NAN, 0, &[]);
        assert!(numeric_to_i128(&v, 5, 2).unwrap_err().unsupported);
        assert_eq!(numeric_to_string(&v).unwrap(), "NaN");
    }
}
