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
    StringArray, StringBuilder, StructArray, TimestampMicrosecondBuilder,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{Field, Int32Type, Int64Type, i256};

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

// Errors are boxed and built in cold functions: the per-field decode path stays small
// (a pointer-sized result, no formatting code inlined into it).
#[cold]
fn bad(message: impl Into<String>) -> Box<DecodeError> {
    Box::new(DecodeError {
        column: None,
        message: message.into(),
        unsupported: false,
    })
}

#[cold]
fn unsupported(message: impl Into<String>) -> Box<DecodeError> {
    Box::new(DecodeError {
        column: None,
        message: message.into(),
        unsupported: true,
    })
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

#[inline]
fn expect_len(v: &[u8], n: usize, what: &str) -> Result<(), Box<DecodeError>> {
    if v.len() == n {
        Ok(())
    } else {
        Err(wrong_len(v.len(), n, what))
    }
}

#[cold]
fn wrong_len(len: usize, n: usize, what: &str) -> Box<DecodeError> {
    bad(format!("{what} value has {len} bytes, expected {n}"))
}

/// The text values collected in `b` as a string array, validated as UTF-8 in one pass.
fn utf8_array(b: &mut BinaryBuilder) -> Result<StringArray, Box<DecodeError>> {
    StringArray::try_from_binary(b.finish()).map_err(|_| bad("text value is not valid UTF-8"))
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
    /// Text is collected as bytes and validated as UTF-8 once per batch in
    /// [`Decoder::finish`] (one pass over the whole values buffer is several times
    /// cheaper than a `from_utf8` call per short value).
    Text(BinaryBuilder),
    /// The jsonb text without its version byte; validated like `Text`.
    Jsonb(BinaryBuilder),
    Bytea(BinaryBuilder),
    Date(Date32Builder),
    /// `time` as PostgreSQL's own text form (`HH:MM:SS[.ffffff]`): a Delta Lake table has
    /// no time-of-day type, and this form sorts in time order.
    Time(StringBuilder),
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
    /// A decoder for `ty` with room for `capacity` values and, for variable-length types,
    /// `value_bytes` bytes of values (0: a guess of 16 bytes per value).
    pub(crate) fn new(ty: &PgType, capacity: usize, value_bytes: usize) -> Self {
        let bytes = |per_value: usize| {
            if value_bytes > 0 {
                value_bytes
            } else {
                capacity * per_value
            }
        };
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
                Self::NumericText(StringBuilder::with_capacity(capacity, bytes(8)))
            }
            PgType::Text | PgType::Json => {
                Self::Text(BinaryBuilder::with_capacity(capacity, bytes(16)))
            }
            PgType::Jsonb => Self::Jsonb(BinaryBuilder::with_capacity(capacity, bytes(16))),
            PgType::Bytea => Self::Bytea(BinaryBuilder::with_capacity(capacity, bytes(16))),
            PgType::Date => Self::Date(Date32Builder::with_capacity(capacity)),
            PgType::Time => Self::Time(StringBuilder::with_capacity(capacity, bytes(15))),
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
                    child: Box::new(Decoder::new(elem, capacity, 0)),
                    item: Arc::new(Field::new("item", elem.arrow_type(), true)),
                }
            }
        }
    }

    /// Append one field: `None` is SQL NULL.
    pub(crate) fn append(&mut self, value: Option<&[u8]>) -> Result<(), Box<DecodeError>> {
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
            Self::Text(b) => b.append_value(v),
            Self::Jsonb(b) => match v.split_first() {
                Some((1, rest)) => b.append_value(rest),
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
                b.append_value(time_text(be_i64(v)));
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
            Self::NumericText(b) | Self::Uuid(b) => b.append_null(),
            Self::Text(b) | Self::Jsonb(b) | Self::Bytea(b) => b.append_null(),
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
            Self::NumericText(b) | Self::Uuid(b) => b.len(),
            Self::Text(b) | Self::Jsonb(b) | Self::Bytea(b) => b.len(),
            Self::Date(b) => b.len(),
            Self::Time(b) => b.len(),
            Self::Timestamp { builder, .. } => builder.len(),
            Self::Interval(interval) => interval.valid.len(),
            Self::List { valid, .. } => valid.len(),
        }
    }

    /// The array of the values appended so far; the decoder is empty afterwards. Fails
    /// when a text value is not valid UTF-8.
    pub(crate) fn finish(&mut self) -> Result<ArrayRef, Box<DecodeError>> {
        Ok(match self {
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
            Self::NumericText(b) | Self::Uuid(b) => Arc::new(b.finish()),
            Self::Text(b) | Self::Jsonb(b) => Arc::new(utf8_array(b)?),
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
                let values = child.finish()?;
                let offs = std::mem::replace(offsets, vec![0]);
                let nulls = NullBuffer::new(valid.finish());
                Arc::new(ListArray::new(
                    item.clone(),
                    OffsetBuffer::new(offs.into()),
                    values,
                    (nulls.null_count() > 0).then_some(nulls),
                ))
            }
        })
    }
}

/// Decode a binary array value into `child`; returns the number of elements.
fn decode_array(v: &[u8], child: &mut Decoder) -> Result<usize, Box<DecodeError>> {
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

fn parse_numeric(v: &[u8]) -> Result<Numeric<'_>, Box<DecodeError>> {
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
fn numeric_to_i128(v: &[u8], precision: u8, scale: i8) -> Result<i128, Box<DecodeError>> {
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
    // The digits form the integer `acc`, worth acc * 10000^(weight - ndigits + 1).
    let exp10 = 4 * (n.weight as i32 - n.ndigits() as i32 + 1) + scale as i32;
    let magnitude = match small_numeric(&n, exp10) {
        Some(small) => small.map(i128::from),
        None => large_numeric(&n, exp10),
    }
    .map_err(|misfit| match misfit {
        Misfit::TooBig => too_big(precision, scale),
        Misfit::Inexact => inexact(precision, scale),
    })?;
    if magnitude.unsigned_abs() >= POW10_U128[precision as usize] {
        return Err(too_big(precision, scale));
    }
    Ok(if n.sign == NUMERIC_NEG {
        -magnitude
    } else {
        magnitude
    })
}

/// 10^i for i in 0..=38 (Decimal128's largest precision).
const POW10_U128: [u128; 39] = {
    let mut t = [1u128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

#[cold]
fn too_big(precision: u8, scale: i8) -> Box<DecodeError> {
    unsupported(format!(
        "numeric value does not fit Decimal128({precision}, {scale})"
    ))
}

#[cold]
fn inexact(precision: u8, scale: i8) -> Box<DecodeError> {
    unsupported(format!(
        "numeric value has more than {scale} fractional digits, which \
         Decimal128({precision}, {scale}) cannot hold exactly"
    ))
}

/// Why a numeric does not fit the column's Decimal128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Misfit {
    /// More integer digits than the precision allows.
    TooBig,
    /// More fractional digits than the scale.
    Inexact,
}

/// The common case in 64-bit arithmetic (128-bit division is a slow library call): at most
/// four base-10000 digits (< 10^16) and a shift of at most 18 decimal places. `None` when
/// the value is outside this case (or overflows i64).
fn small_numeric(n: &Numeric<'_>, exp10: i32) -> Option<Result<i64, Misfit>> {
    if n.ndigits() > 4 || !(-18..=18).contains(&exp10) {
        return None;
    }
    let mut acc: i64 = 0;
    for i in 0..n.ndigits() {
        acc = acc * 10_000 + n.digit(i) as i64;
    }
    let pow = POW10_U128[exp10.unsigned_abs() as usize] as i64;
    if exp10 >= 0 {
        acc.checked_mul(pow).map(Ok)
    } else if acc % pow == 0 {
        Some(Ok(acc / pow))
    } else {
        Some(Err(Misfit::Inexact))
    }
}

/// The general case in 128-bit arithmetic.
fn large_numeric(n: &Numeric<'_>, exp10: i32) -> Result<i128, Misfit> {
    // A 256-bit accumulator (Arrow's `i256`): the base-10000 groups carry up to three more
    // decimal digits than the value has at its scale (a numeric(38,9) value of 38 digits
    // spans 41 in its groups), which a 128-bit accumulator refused as too big before the
    // scale division took them off. Found by the property test of this module.
    let ten = i256::from_i128(10);
    let mut acc = i256::ZERO;
    for i in 0..n.ndigits() {
        acc = acc
            .checked_mul(i256::from_i128(10_000))
            .and_then(|a| a.checked_add(i256::from_i128(n.digit(i) as i128)))
            .ok_or(Misfit::TooBig)?;
    }
    let scaled = if exp10 >= 0 {
        ten.checked_pow(exp10 as u32)
            .and_then(|p| acc.checked_mul(p))
            .ok_or(Misfit::TooBig)?
    } else {
        match ten.checked_pow((-exp10) as u32) {
            Some(d) if acc.checked_rem(d) == Some(i256::ZERO) => {
                acc.checked_div(d).ok_or(Misfit::TooBig)?
            }
            None if acc == i256::ZERO => i256::ZERO,
            _ => return Err(Misfit::Inexact),
        }
    };
    scaled.to_i128().ok_or(Misfit::TooBig)
}

fn special_numeric(sign: u16) -> &'static str {
    match sign {
        NUMERIC_NAN => "NaN",
        NUMERIC_PINF => "Infinity",
        _ => "-Infinity",
    }
}

/// A binary numeric as PostgreSQL prints it (`numeric_out`): exact, `dscale` fraction digits.
fn numeric_to_string(v: &[u8]) -> Result<String, Box<DecodeError>> {
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
    ) -> Result<Fed, Box<DecodeError>> {
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
    ) -> Result<(Fed, usize), Box<DecodeError>> {
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

    #[test]
    fn the_64_bit_and_128_bit_numeric_paths_agree() {
        // Every shape the fast path takes (1..=4 digits, shifts up and down), checked
        // against the 128-bit path on the same value.
        let cases: &[(i16, u16, &[i16])] = &[
            (0, 2, &[12, 5000]),
            (3, 0, &[9999, 9999, 9999, 9999]),
            (-1, 4, &[12]),
            (-2, 8, &[1]),
            (1, 2, &[1, 2300]),
            (4, 0, &[1]),
            (0, 0, &[]),
        ];
        for &(weight, dscale, digits) in cases {
            let v = numeric_bytes(weight, 0, dscale, digits);
            let n = parse_numeric(&v).unwrap();
            for scale in [0i8, 2, 4, 8, 18] {
                let exp10 = 4 * (n.weight as i32 - n.ndigits() as i32 + 1) + scale as i32;
                let large = large_numeric(&n, exp10);
                match small_numeric(&n, exp10) {
                    Some(Ok(small)) => assert_eq!(Ok(small as i128), large, "{digits:?} {scale}"),
                    Some(Err(misfit)) => assert_eq!(large, Err(misfit), "{digits:?} {scale}"),
                    None => {}
                }
            }
        }
        // Through the public function: 12.50 as numeric(15,2), -0.0012 rejected at scale 2.
        let v = numeric_bytes(0, 0, 2, &[12, 5000]);
        assert_eq!(numeric_to_i128(&v, 15, 2).unwrap(), 1250);
        let v = numeric_bytes(-1, NUMERIC_NEG, 4, &[12]);
        let e = numeric_to_i128(&v, 15, 2).unwrap_err();
        assert!(
            e.unsupported && e.message.contains("fractional digits"),
            "{}",
            e.message
        );
        // 10^16 needs five base-10000 digits: the 128-bit path, and precision is enforced.
        let v = numeric_bytes(4, 0, 0, &[1]);
        assert_eq!(numeric_to_i128(&v, 17, 0).unwrap(), 10i128.pow(16));
        assert!(
            numeric_to_i128(&v, 16, 0)
                .unwrap_err()
                .message
                .contains("does not fit")
        );
    }

    #[test]
    fn text_is_validated_once_per_batch_and_invalid_utf8_is_an_error() {
        let mut d = Decoder::new(&PgType::Text, 4, 0);
        d.append(Some("héllo".as_bytes())).unwrap();
        d.append(None).unwrap();
        d.append(Some(b"")).unwrap();
        let a = d.finish().unwrap();
        let a = a.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            [Some("héllo"), None, Some("")]
        );
        // After finish the decoder is empty and reusable.
        d.append(Some(&[0x66, 0xff, 0x6f])).unwrap();
        let e = d.finish().unwrap_err();
        assert_eq!(e.message, "text value is not valid UTF-8");
    }
}

/// Microseconds since midnight as PostgreSQL prints a `time`: `HH:MM:SS`, then `.` and the
/// fraction without trailing zeros when it is not zero (`24:00:00` is a valid `time`).
fn time_text(micros: i64) -> String {
    let (secs, frac) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        let digits = format!("{frac:06}");
        format!("{h:02}:{m:02}:{s:02}.{}", digits.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod time_text_tests {
    #[test]
    fn times_print_as_postgres_does() {
        assert_eq!(super::time_text(0), "00:00:00");
        assert_eq!(super::time_text(86_399_999_999), "23:59:59.999999");
        assert_eq!(super::time_text(86_400_000_000), "24:00:00");
        assert_eq!(super::time_text(45_296_000_001), "12:34:56.000001");
        assert_eq!(super::time_text(500_000), "00:00:00.5");
    }
}

/// Property tests (proptest) of the COPY binary parser: any bytes in any chunking are
/// decoded or refused, never a panic; generated rows encoded as PostgreSQL sends them
/// decode to exactly the same values however the stream is split and batched; any
/// numeric PostgreSQL can send at a scale decodes exactly or is refused, never rounded.
#[cfg(test)]
mod fuzz {
    use arrow::array::{Array, BinaryArray, BooleanArray, Float64Array, Int64Array, StringArray};
    use proptest::prelude::*;

    use super::*;

    const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

    /// One row of the round-trip table: int8, text, bool, float8 (bits), bytea.
    type Row = (
        Option<i64>,
        Option<String>,
        Option<bool>,
        Option<u64>,
        Option<Vec<u8>>,
    );

    fn types() -> Vec<PgType> {
        vec![
            PgType::Int8,
            PgType::Text,
            PgType::Bool,
            PgType::Float8,
            PgType::Bytea,
        ]
    }

    fn field(out: &mut Vec<u8>, value: Option<&[u8]>) {
        match value {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
    }

    /// The COPY binary stream PostgreSQL sends for `rows`.
    fn encode(rows: &[Row]) -> Vec<u8> {
        let mut out = HEADER.to_vec();
        for (a, b, c, d, e) in rows {
            out.extend_from_slice(&5i16.to_be_bytes());
            field(
                &mut out,
                a.map(|v| v.to_be_bytes()).as_ref().map(|v| &v[..]),
            );
            field(&mut out, b.as_deref().map(str::as_bytes));
            field(&mut out, c.map(|v| [v as u8]).as_ref().map(|v| &v[..]));
            field(
                &mut out,
                d.map(|v| v.to_be_bytes()).as_ref().map(|v| &v[..]),
            );
            field(&mut out, e.as_deref());
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    /// Feed `stream` cut at `cuts` (positions, any order) with batches of `max_rows`; the
    /// finished batches and whether the trailer was seen.
    fn decode(
        stream: &[u8],
        cuts: &[usize],
        types: &[PgType],
        max_rows: usize,
    ) -> Result<(Vec<Vec<ArrayRef>>, bool), Box<DecodeError>> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.push(0);
        cuts.push(stream.len());
        cuts.sort_unstable();
        cuts.dedup();
        let mut parser = CopyParser::new(types.len());
        let mut decoders: Vec<Decoder> = types.iter().map(|t| Decoder::new(t, 8, 64)).collect();
        let mut batches = Vec::new();
        let mut finish = |decoders: &mut [Decoder]| -> Result<(), Box<DecodeError>> {
            let batch = decoders
                .iter_mut()
                .map(Decoder::finish)
                .collect::<Result<Vec<_>, _>>()?;
            batches.push(batch);
            Ok(())
        };
        for w in cuts.windows(2) {
            let mut chunk = &stream[w[0]..w[1]];
            while parser.feed(chunk, &mut decoders, max_rows)? == Fed::BatchFull {
                finish(&mut decoders)?;
                chunk = &[];
            }
        }
        if decoders.first().is_some_and(|d| d.len() > 0) {
            finish(&mut decoders)?;
        }
        Ok((batches, parser.is_done()))
    }

    fn row_strategy() -> impl Strategy<Value = Row> {
        (
            prop::option::of(any::<i64>()),
            prop::option::of(".{0,12}"),
            prop::option::of(any::<bool>()),
            prop::option::of(any::<u64>()),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..12)),
        )
    }

    /// PostgreSQL's binary numeric for `value * 10^-scale`, with `dscale = scale`.
    fn numeric(value: i128, scale: u16) -> Vec<u8> {
        let negative = value < 0;
        let mut digits_text = value.unsigned_abs().to_string();
        // Pad so the integer and fraction parts split on a 4-digit group boundary.
        let frac_len = scale as usize;
        while digits_text.len() <= frac_len {
            digits_text.insert(0, '0');
        }
        let (int_part, frac_part) = digits_text.split_at(digits_text.len() - frac_len);
        let mut int_part = int_part.to_string();
        while int_part.len() % 4 != 0 {
            int_part.insert(0, '0');
        }
        let mut frac_part = frac_part.to_string();
        while frac_part.len() % 4 != 0 {
            frac_part.push('0');
        }
        let groups: Vec<i16> = int_part
            .as_bytes()
            .chunks(4)
            .chain(frac_part.as_bytes().chunks(4))
            .map(|g| std::str::from_utf8(g).unwrap().parse().unwrap())
            .collect();
        let int_groups = int_part.len() / 4;
        // Strip leading and trailing zero groups, as PostgreSQL does.
        let first = groups.iter().position(|g| *g != 0);
        let mut out = Vec::new();
        let (weight, kept): (i16, &[i16]) = match first {
            None => (0, &[]),
            Some(first) => {
                let last = groups.iter().rposition(|g| *g != 0).unwrap();
                (int_groups as i16 - 1 - first as i16, &groups[first..=last])
            }
        };
        out.extend_from_slice(&(kept.len() as i16).to_be_bytes());
        out.extend_from_slice(&weight.to_be_bytes());
        let sign: u16 = if negative && !kept.is_empty() {
            NUMERIC_NEG
        } else {
            0
        };
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&scale.to_be_bytes());
        for g in kept {
            out.extend_from_slice(&g.to_be_bytes());
        }
        out
    }

    proptest! {
        /// Any bytes, any chunking, any column types: rows or an error, never a panic.
        #[test]
        fn any_bytes_decode_or_fail_cleanly(
            body in prop::collection::vec(any::<u8>(), 0..256),
            with_header in any::<bool>(),
            cuts in prop::collection::vec(any::<usize>(), 0..6),
            max_rows in 1usize..8,
            columns in prop::collection::vec(prop::sample::select(vec![
                PgType::Bool, PgType::Int2, PgType::Int4, PgType::Int8, PgType::Float4,
                PgType::Float8, PgType::Text, PgType::Json, PgType::Jsonb, PgType::Bytea,
                PgType::Date, PgType::Time, PgType::Timestamp, PgType::Timestamptz,
                PgType::Interval, PgType::Uuid,
                PgType::Numeric(NumericMapping::Text),
                PgType::Numeric(NumericMapping::Decimal { precision: 38, scale: 10 }),
                PgType::Numeric(NumericMapping::Decimal { precision: 5, scale: -2 }),
                PgType::Array(Box::new(PgType::Int4)),
                PgType::Array(Box::new(PgType::Text)),
            ]), 1..4),
        ) {
            let stream = if with_header {
                [HEADER, &body[..]].concat()
            } else {
                body
            };
            let _ = decode(&stream, &cuts, &columns, max_rows);
        }

        /// Rows encoded as PostgreSQL sends them come back exactly, however the stream is
        /// cut into chunks and batches.
        #[test]
        fn encoded_rows_round_trip_in_any_chunking(
            rows in prop::collection::vec(row_strategy(), 0..40),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
            max_rows in 1usize..16,
        ) {
            let stream = encode(&rows);
            let (batches, done) = decode(&stream, &cuts, &types(), max_rows).unwrap();
            prop_assert!(done, "the trailer was read");
            let mut got: Vec<Row> = Vec::new();
            for b in &batches {
                prop_assert!(b[0].len() <= max_rows);
                let a = b[0].as_any().downcast_ref::<Int64Array>().unwrap();
                let t = b[1].as_any().downcast_ref::<StringArray>().unwrap();
                let c = b[2].as_any().downcast_ref::<BooleanArray>().unwrap();
                let d = b[3].as_any().downcast_ref::<Float64Array>().unwrap();
                let e = b[4].as_any().downcast_ref::<BinaryArray>().unwrap();
                for i in 0..a.len() {
                    got.push((
                        a.is_valid(i).then(|| a.value(i)),
                        t.is_valid(i).then(|| t.value(i).to_string()),
                        c.is_valid(i).then(|| c.value(i)),
                        d.is_valid(i).then(|| d.value(i).to_bits()),
                        e.is_valid(i).then(|| e.value(i).to_vec()),
                    ));
                }
            }
            prop_assert_eq!(got, rows);
        }

        /// A trailer followed by more bytes, or a stream cut short, is never taken as
        /// complete data.
        #[test]
        fn truncated_streams_are_never_complete(
            rows in prop::collection::vec(row_strategy(), 1..10),
            cut in any::<usize>(),
        ) {
            let stream = encode(&rows);
            let cut = cut % stream.len();
            if let Ok((_, done)) = decode(&stream[..cut], &[], &types(), 4) {
                prop_assert!(!done, "a stream cut at {} of {} bytes read as complete", cut, stream.len());
            }
        }

        /// Any value a `numeric(38, s)` column holds, at any scale 0..=38, decodes to the
        /// exact decimal; at a smaller target scale it is refused rather than rounded unless
        /// the dropped digits are zeros.
        #[test]
        fn numerics_decode_exactly_at_every_scale(
            value in (-(10i128.pow(38)) + 1)..10i128.pow(38),
            scale in 0u16..=38,
            target_scale in 0i8..=38,
        ) {
            let bytes = numeric(value, scale);
            prop_assert_eq!(numeric_to_i128(&bytes, 38, scale as i8).unwrap(), value);
            let text = numeric_to_string(&bytes).unwrap();
            let expected_text = {
                let digits = value.unsigned_abs().to_string();
                let digits = format!("{digits:0>width$}", width = scale as usize + 1);
                let (i, f) = digits.split_at(digits.len() - scale as usize);
                let sign = if value < 0 { "-" } else { "" };
                if scale == 0 { format!("{sign}{i}") } else { format!("{sign}{i}.{f}") }
            };
            prop_assert_eq!(text, expected_text);
            let shift = target_scale as i32 - scale as i32;
            let expected = if shift >= 0 {
                value.checked_mul(10i128.pow(shift as u32)).filter(|v| v.unsigned_abs() < 10u128.pow(38))
            } else {
                let p = 10i128.pow((-shift) as u32);
                (value % p == 0).then_some(value / p)
            };
            match (numeric_to_i128(&bytes, 38, target_scale), expected) {
                (Ok(v), Some(e)) => prop_assert_eq!(v, e),
                (Err(_), None) => {}
                (got, e) => prop_assert!(false, "{value}e-{scale} at scale {target_scale}: got {got:?}, expected {e:?}"),
            }
        }
    }
}
