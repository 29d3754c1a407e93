//! JSON Lines records of scalar fields decoded straight into Arrow columns, with no tape in
//! between; a batch with anything else in it is handed back, whole, to `arrow-json`.
//!
//! ```
//! # use std::sync::Arc;
//! # use connector_sdk::arrow::datatypes::{DataType, Field, Schema};
//! use connector_sdk::json_flat_lines::FlatLinesDecoder;
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("id", DataType::Int64, false),
//!     Field::new("name", DataType::Utf8, true),
//! ]));
//! let mut decoder = FlatLinesDecoder::new(&schema).expect("scalar fields");
//! let text = b"{\"id\":1,\"name\":\"a\"}\n{\"id\":2,\"tags\":[\"x\"]}\n";
//! let batch = decoder.decode(text, &[20, text.len()]).expect("plain records");
//! assert_eq!(batch.num_rows(), 2);
//! // A list where the schema has a string (or any other form this path does not read):
//! // decode the batch with arrow-json.
//! let text = b"{\"id\":1,\"name\":[\"a\"]}\n";
//! assert!(decoder.decode(text, &[text.len()]).is_none());
//! ```
//!
//! Why not `arrow-json` alone: its reader first writes every record onto a tape (a state
//! machine stepped byte by byte, then every string and number copied into the tape's own
//! buffer) and then reads the columns off the tape; the tape was 48 % of the instructions of
//! a JSON Lines ingestion (callgrind, `bench/s3-files`, 1 M rows) and the column decoders
//! reading it back 28 %. Machine-written JSON Lines are nearly always flat objects whose keys
//! come in the same order, unescaped: here such a record is read in one pass, each key
//! matched by comparing the text with the `"key":` the previous record had in that place, each
//! value parsed where it lies.
//!
//! What is read here is a subset of what `arrow-json` (with [`crate::json_decoders`], in its
//! default, non-strict mode) reads, and gives exactly its values: numbers are parsed by the
//! same `lexical-core` calls on the same text, strings are the text between the quotes
//! (with the tape's escape rules where there is a backslash),
//! timestamps and dates go through the same canonical parsers as [`crate::json_temporal`].
//! Anything else — an escape in a key, a nested value, a string where a number is
//! declared, an integer `lexical-core` does not take whole, a null or missing value in a
//! non-nullable field, a key twice, text that is not UTF-8, whitespace or a separator this
//! path does not expect — returns `None` for the whole batch, and the caller decodes it with
//! `arrow-json`, which gives the values, nulls and errors it always gives. A property test
//! holds the two to the same batches.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBufferBuilder, GenericStringBuilder, NullBufferBuilder};
use arrow::array::{BooleanArray, OffsetSizeTrait, PrimitiveArray, RecordBatch};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, SchemaRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};

use crate::json_decoders::same_bytes;
use crate::json_temporal::{canonical_date, canonical_timestamp};

/// Decodes batches of flat JSON Lines records for one schema (see the module's text); keeps
/// the key order of the last record it read, for the next.
pub struct FlatLinesDecoder {
    schema: SchemaRef,
    /// Each field's name to its index, for a key not in its usual place.
    by_name: HashMap<Box<[u8]>, usize>,
    /// The text from a key's opening quote to its colon, `"key":`, for each place in the last
    /// record that had one, and the field it names (`None`: a key the schema lacks).
    order: Vec<(Box<[u8]>, Option<usize>)>,
    /// How many string columns there are (their offsets cap a batch's text; they share its
    /// length as their first reservation).
    string_columns: usize,
}

impl std::fmt::Debug for FlatLinesDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlatLinesDecoder")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// A value as it lies in the text.
#[derive(Clone, Copy)]
enum Token<'a> {
    /// The text between the quotes (no escape in it).
    Str(&'a str),
    /// A number's text, as `arrow-json`'s tape cuts it (a `-` or digit, then any of
    /// `0-9 + - . e E`).
    Num(&'a [u8]),
    Bool(bool),
    Null,
}

/// One column being built; `push` says whether it took the value (`false`: the batch goes
/// to `arrow-json`).
trait Column {
    fn push(&mut self, token: Token<'_>) -> bool;
    fn finish(&mut self) -> ArrayRef;
}

struct PrimitiveColumn<T: ArrowPrimitiveType, P> {
    data_type: DataType,
    nullable: bool,
    values: Vec<T::Native>,
    nulls: NullBufferBuilder,
    parse: P,
}

impl<T, P> Column for PrimitiveColumn<T, P>
where
    T: ArrowPrimitiveType,
    P: Fn(Token<'_>) -> Option<T::Native>,
{
    #[inline]
    fn push(&mut self, token: Token<'_>) -> bool {
        if let Token::Null = token {
            if !self.nullable {
                return false;
            }
            self.values.push(T::Native::default());
            self.nulls.append_null();
            return true;
        }
        match (self.parse)(token) {
            Some(v) => {
                self.values.push(v);
                self.nulls.append_non_null();
                true
            }
            None => false,
        }
    }

    fn finish(&mut self) -> ArrayRef {
        let values = std::mem::take(&mut self.values);
        Arc::new(
            PrimitiveArray::<T>::new(values.into(), self.nulls.finish())
                .with_data_type(self.data_type.clone()),
        )
    }
}

struct BooleanColumn {
    nullable: bool,
    values: BooleanBufferBuilder,
    nulls: NullBufferBuilder,
}

impl Column for BooleanColumn {
    #[inline]
    fn push(&mut self, token: Token<'_>) -> bool {
        match token {
            Token::Bool(b) => {
                self.values.append(b);
                self.nulls.append_non_null();
            }
            Token::Null if self.nullable => {
                self.values.append(false);
                self.nulls.append_null();
            }
            _ => return false,
        }
        true
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(BooleanArray::new(self.values.finish(), self.nulls.finish()))
    }
}

struct StringColumn<O: OffsetSizeTrait> {
    nullable: bool,
    builder: GenericStringBuilder<O>,
}

impl<O: OffsetSizeTrait> Column for StringColumn<O> {
    #[inline]
    fn push(&mut self, token: Token<'_>) -> bool {
        match token {
            Token::Str(s) => self.builder.append_value(s),
            Token::Null if self.nullable => self.builder.append_null(),
            _ => return false,
        }
        true
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.builder.finish())
    }
}

/// A number column: the text parsed by `lexical-core` as `arrow-json` first parses it
/// (integers it takes only through its float fallback, e.g. `1e3` or `1.0`, are left to it).
fn number_column<T>(data_type: &DataType, nullable: bool, rows: usize) -> Box<dyn Column>
where
    T: ArrowPrimitiveType,
    T::Native: lexical_core::FromLexical,
{
    primitive::<T>(data_type, nullable, rows, |t| match t {
        Token::Num(text) => lexical_core::parse::<T::Native>(text).ok(),
        _ => None,
    })
}

fn primitive<T: ArrowPrimitiveType>(
    data_type: &DataType,
    nullable: bool,
    rows: usize,
    parse: impl Fn(Token<'_>) -> Option<T::Native> + 'static,
) -> Box<dyn Column> {
    Box::new(PrimitiveColumn::<T, _> {
        data_type: data_type.clone(),
        nullable,
        values: Vec::with_capacity(rows),
        nulls: NullBufferBuilder::new(rows),
        parse,
    })
}

fn timestamp<T: ArrowPrimitiveType<Native = i64>>(
    data_type: &DataType,
    nullable: bool,
    rows: usize,
    per_second: i64,
) -> Box<dyn Column> {
    primitive::<T>(data_type, nullable, rows, move |t| match t {
        Token::Str(s) => canonical_timestamp(s.as_bytes(), per_second),
        _ => None,
    })
}

/// An empty column of `data_type` for up to `rows` values and `bytes` bytes of strings;
/// `None` for a type this path does not read.
fn new_column(
    data_type: &DataType,
    nullable: bool,
    rows: usize,
    bytes: usize,
) -> Option<Box<dyn Column>> {
    let d = data_type;
    Some(match d {
        DataType::Boolean => Box::new(BooleanColumn {
            nullable,
            values: BooleanBufferBuilder::new(rows),
            nulls: NullBufferBuilder::new(rows),
        }),
        DataType::Int8 => number_column::<Int8Type>(d, nullable, rows),
        DataType::Int16 => number_column::<Int16Type>(d, nullable, rows),
        DataType::Int32 => number_column::<Int32Type>(d, nullable, rows),
        DataType::Int64 => number_column::<Int64Type>(d, nullable, rows),
        DataType::UInt8 => number_column::<UInt8Type>(d, nullable, rows),
        DataType::UInt16 => number_column::<UInt16Type>(d, nullable, rows),
        DataType::UInt32 => number_column::<UInt32Type>(d, nullable, rows),
        DataType::UInt64 => number_column::<UInt64Type>(d, nullable, rows),
        DataType::Float32 => number_column::<Float32Type>(d, nullable, rows),
        DataType::Float64 => number_column::<Float64Type>(d, nullable, rows),
        DataType::Utf8 => Box::new(StringColumn::<i32> {
            nullable,
            builder: GenericStringBuilder::with_capacity(rows, bytes),
        }),
        DataType::LargeUtf8 => Box::new(StringColumn::<i64> {
            nullable,
            builder: GenericStringBuilder::with_capacity(rows, bytes),
        }),
        DataType::Date32 => primitive::<Date32Type>(d, nullable, rows, |t| match t {
            Token::Str(s) => canonical_date(s.as_bytes()).map(|days| days as i32),
            _ => None,
        }),
        // In a named zone a text without an offset is local time there: arrow-json's.
        DataType::Timestamp(unit, tz)
            if tz.as_deref().is_none_or(|z| matches!(z, "+00:00" | "UTC")) =>
        {
            match unit {
                TimeUnit::Second => timestamp::<TimestampSecondType>(d, nullable, rows, 1),
                TimeUnit::Millisecond => {
                    timestamp::<TimestampMillisecondType>(d, nullable, rows, 1_000)
                }
                TimeUnit::Microsecond => {
                    timestamp::<TimestampMicrosecondType>(d, nullable, rows, 1_000_000)
                }
                TimeUnit::Nanosecond => {
                    timestamp::<TimestampNanosecondType>(d, nullable, rows, 1_000_000_000)
                }
            }
        }
        _ => return None,
    })
}

/// How deep the objects and lists of a skipped value may nest here (deeper: `arrow-json`).
const MAX_DEPTH: u32 = 64;

/// The whitespace `arrow-json`'s tape skips.
#[inline(always)]
fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

#[inline(always)]
fn skip_whitespace(line: &[u8], mut p: usize) -> usize {
    while p < line.len() && is_whitespace(line[p]) {
        p += 1;
    }
    p
}

/// The value at `p` of `line` (`text`'s bytes) and where it ends; `None` for a value this
/// path does not read (an object, a list, anything malformed). A string with escapes is
/// unescaped into `scratch`.
#[inline(always)]
fn token_at<'a>(
    text: &'a str,
    line: &'a [u8],
    p: usize,
    scratch: &'a mut String,
) -> Option<(Token<'a>, usize)> {
    match *line.get(p)? {
        b'"' => {
            let len = memchr::memchr2(b'"', b'\\', &line[p + 1..])?;
            let end = p + 1 + len;
            if line[end] == b'"' {
                Some((Token::Str(&text[p + 1..end]), end + 1))
            } else {
                let end = unescape(text, p + 1, scratch)?;
                Some((Token::Str(scratch.as_str()), end))
            }
        }
        b'-' | b'0'..=b'9' => {
            let mut end = p + 1;
            while end < line.len()
                && matches!(line[end], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
            {
                end += 1;
            }
            Some((Token::Num(&line[p..end]), end))
        }
        b't' if line[p..].starts_with(b"true") => Some((Token::Bool(true), p + 4)),
        b'f' if line[p..].starts_with(b"false") => Some((Token::Bool(false), p + 5)),
        b'n' if line[p..].starts_with(b"null") => Some((Token::Null, p + 4)),
        _ => None,
    }
}

/// Where the value at `p` of `line` (`text`'s bytes) ends: the value of a key the schema
/// lacks, which is only skipped — objects and lists too (at most `depth` deep), checked as
/// strict JSON (a subset of what the tape takes: it also takes a missing or doubled comma),
/// every string's escapes too (the tape refuses bad ones anywhere). `None` for anything else.
fn skip_value(
    text: &str,
    line: &[u8],
    p: usize,
    scratch: &mut String,
    depth: u32,
) -> Option<usize> {
    let (open, close) = match *line.get(p)? {
        b'{' => (b'{', b'}'),
        b'[' => (b'[', b']'),
        _ => return token_at(text, line, p, scratch).map(|(_, end)| end),
    };
    let depth = depth.checked_sub(1)?;
    let mut q = skip_whitespace(line, p + 1);
    if line.get(q) == Some(&close) {
        return Some(q + 1);
    }
    loop {
        if open == b'{' {
            if line.get(q) != Some(&b'"') {
                return None;
            }
            let (_, after) = token_at(text, line, q, scratch)?;
            q = skip_whitespace(line, after);
            if line.get(q) != Some(&b':') {
                return None;
            }
            q = skip_whitespace(line, q + 1);
        }
        q = skip_whitespace(line, skip_value(text, line, q, scratch, depth)?);
        match *line.get(q)? {
            b',' => q = skip_whitespace(line, q + 1),
            b if b == close => return Some(q + 1),
            _ => return None,
        }
    }
}

/// The number four hex digits write (either case), or `None`.
fn hex4(digits: Option<&[u8]>) -> Option<u32> {
    let digits = digits?;
    if digits.len() != 4 {
        return None;
    }
    digits
        .iter()
        .try_fold(0u32, |n, d| Some(n << 4 | char::from(*d).to_digit(16)?))
}

/// `text` with every escaped UTF-16 surrogate pair (`\uD83D\uDE00`) written as its
/// character's UTF-8 bytes instead; `None` when it holds none. For a batch `arrow-json` is
/// to read: its tape (`char_from_surrogate_pair`, arrow-json 60) joins the two halves with a
/// bitwise or where an addition belongs, so every character of the planes 2, 4, 6 ... 16
/// (CJK extensions B to F, the tags of flag sequences, private use) comes out as one of the
/// plane below, silently — U+20000 as U+10000, U+10FFFF as U+FFFFF; the same character
/// unescaped is read right. Escapes are followed as
/// JSON has them (in `\\uD840\uDC00` the first backslash escapes the second). Anything that
/// is not a whole pair is left as it is, for `arrow-json` to read or refuse.
pub fn escaped_pairs_as_utf8(text: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    // text[..copied] is in `out`.
    let mut copied = 0;
    let mut i = 0;
    while i < text.len() {
        let Some(k) = memchr::memchr(b'\\', &text[i..]) else {
            break;
        };
        let at = i + k;
        match escaped_pair(&text[at..]) {
            Some(c) => {
                let out = out.get_or_insert_with(|| Vec::with_capacity(text.len()));
                out.extend_from_slice(&text[copied..at]);
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                copied = at + 12;
                i = at + 12;
            }
            // The backslash and the character it escapes.
            None => i = at + 2,
        }
    }
    let mut out = out?;
    out.extend_from_slice(&text[copied..]);
    Some(out)
}

/// The character of the `\uHHHH\uLLLL` surrogate pair `s` starts with.
fn escaped_pair(s: &[u8]) -> Option<char> {
    if s.get(1) != Some(&b'u') || s.get(6..8) != Some(b"\\u") {
        return None;
    }
    let high = hex4(s.get(2..6))?;
    let low = hex4(s.get(8..12))?;
    if !(0xD800..=0xDBFF).contains(&high) || !(0xDC00..=0xDFFF).contains(&low) {
        return None;
    }
    char::from_u32(0x1_0000 + ((high - 0xD800) << 10) + (low - 0xDC00))
}

/// The string whose text starts at `start` of `text` (after its opening quote), escapes
/// replaced as `arrow-json`'s tape replaces them, into `out`; returns where the string ends
/// (after its closing quote). `None` where the tape would fail: an unknown escape, a `\u`
/// without four hex digits, a UTF-16 surrogate that is not half of a pair.
///
/// (Hand-written rather than serde_json's: this is the tape's exact rule set, which is what
/// the values must equal, and it runs only on strings that hold an escape.)
#[cold]
fn unescape(text: &str, start: usize, out: &mut String) -> Option<usize> {
    let line = text.as_bytes();
    out.clear();
    let mut i = start;
    loop {
        let len = memchr::memchr2(b'"', b'\\', line.get(i..)?)?;
        out.push_str(&text[i..i + len]);
        i += len;
        if line[i] == b'"' {
            return Some(i + 1);
        }
        let escaped = *line.get(i + 1)?;
        i += 2;
        let c = match escaped {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = hex4(line.get(i..i + 4))?;
                i += 4;
                match char::from_u32(high) {
                    Some(c) => c,
                    None => {
                        // A surrogate: the high half of a pair that started 6 bytes back.
                        let c = escaped_pair(line.get(i - 6..)?)?;
                        i += 6;
                        c
                    }
                }
            }
            _ => return None,
        };
        out.push(c);
    }
}

impl FlatLinesDecoder {
    /// A decoder for `schema`, or `None` when a field has a type this path does not read
    /// (structs, lists, decimals, binary, a timestamp in a named zone...) or two fields share
    /// a name: such a schema is always decoded by `arrow-json`.
    pub fn new(schema: &SchemaRef) -> Option<Self> {
        let mut by_name = HashMap::new();
        for (i, field) in schema.fields().iter().enumerate() {
            if new_column(field.data_type(), true, 0, 0).is_none()
                || by_name.insert(field.name().as_bytes().into(), i).is_some()
            {
                return None;
            }
        }
        let string_columns = schema
            .fields()
            .iter()
            .filter(|f| matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8))
            .count();
        Some(Self {
            schema: schema.clone(),
            by_name,
            order: Vec::new(),
            string_columns,
        })
    }

    /// The records of `text`, one per line: record `i` is `text[ends[i-1]..ends[i]]` (from 0
    /// for the first), each ending in its line break, and `text` ends at the last. `None`
    /// when any record holds something this path does not read: decode the batch with
    /// `arrow-json` (see the module's text).
    pub fn decode(&mut self, text: &[u8], ends: &[usize]) -> Option<RecordBatch> {
        let rows = ends.len();
        // A string column's i32 offsets cannot pass i32::MAX; `arrow-json` says so itself.
        if self.string_columns > 0 && text.len() > i32::MAX as usize {
            return None;
        }
        if ends.last().copied().unwrap_or(0) != text.len() {
            return None;
        }
        // Validated once, so that every string between two quotes (ASCII bytes, so char
        // boundaries) is a `&str` with no check of its own.
        let text = std::str::from_utf8(text).ok()?;
        let fields = self.schema.fields();
        // Every type was checked by `new`; the string columns share the text's length.
        let bytes = text.len() / self.string_columns.max(1);
        let mut columns: Vec<Box<dyn Column>> = fields
            .iter()
            .map(|f| new_column(f.data_type(), f.is_nullable(), rows, bytes))
            .collect::<Option<_>>()?;
        // The last row each field had a value in.
        let mut seen = vec![usize::MAX; fields.len()];
        // A string with escapes, unescaped.
        let mut scratch = String::new();
        let mut start = 0;
        for (row, &end) in ends.iter().enumerate() {
            let line_text = text.get(start..end)?;
            let line = line_text.as_bytes();
            start = end;
            let mut p = skip_whitespace(line, 0);
            if line.get(p) != Some(&b'{') {
                return None;
            }
            p = skip_whitespace(line, p + 1);
            let mut found = 0;
            if line.get(p) == Some(&b'}') {
                p += 1;
            } else {
                let mut place = 0;
                loop {
                    let field = match self.order.get(place) {
                        Some((key, field))
                            if line.len() - p >= key.len()
                                && same_bytes(&line[p..p + key.len()], key) =>
                        {
                            p += key.len();
                            *field
                        }
                        _ => {
                            let (field, after) = self.key_at(line, p)?;
                            self.order.truncate(place);
                            self.order.push((line[p..after].into(), field));
                            p = after;
                            field
                        }
                    };
                    let at = skip_whitespace(line, p);
                    let after = match field {
                        Some(f) => {
                            let (token, after) = token_at(line_text, line, at, &mut scratch)?;
                            if seen[f] == row || !columns[f].push(token) {
                                return None;
                            }
                            seen[f] = row;
                            found += 1;
                            after
                        }
                        // The value of a key the schema lacks is skipped, as `arrow-json`
                        // skips it (a number's text is never parsed).
                        None => skip_value(line_text, line, at, &mut scratch, MAX_DEPTH)?,
                    };
                    p = skip_whitespace(line, after);
                    match line.get(p) {
                        Some(b',') => p = skip_whitespace(line, p + 1),
                        Some(b'}') => {
                            p += 1;
                            break;
                        }
                        _ => return None,
                    }
                    place += 1;
                }
            }
            // Nothing but whitespace after the record, up to and including its line break.
            if skip_whitespace(line, p) != line.len() {
                return None;
            }
            if found < fields.len() {
                for (f, column) in columns.iter_mut().enumerate() {
                    if seen[f] != row && !column.push(Token::Null) {
                        return None;
                    }
                }
            }
        }
        let columns = columns.iter_mut().map(|c| c.finish()).collect();
        RecordBatch::try_new(self.schema.clone(), columns).ok()
    }

    /// The key whose opening quote is at `p` (an unescaped string followed by a colon): the
    /// field it names, and where its colon ends.
    #[cold]
    fn key_at(&self, line: &[u8], p: usize) -> Option<(Option<usize>, usize)> {
        if line.get(p) != Some(&b'"') {
            return None;
        }
        let len = memchr::memchr2(b'"', b'\\', &line[p + 1..])?;
        let close = p + 1 + len;
        if line[close] != b'"' {
            return None;
        }
        let colon = skip_whitespace(line, close + 1);
        if line.get(colon) != Some(&b':') {
            return None;
        }
        let field = self.by_name.get(&line[p + 1..close]).copied();
        Some((field, colon + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_decoders::JsonDecoders;
    use arrow::array::AsArray;
    use arrow::datatypes::{Field, Schema};
    use proptest::prelude::*;

    /// One field of every type this path reads; `nullable` for all but `id`.
    fn schema(nullable_id: bool) -> SchemaRef {
        let mut nullable = [true; 20];
        nullable[0] = nullable_id;
        schema_with(&nullable)
    }

    /// The same fields, each nullable as `nullable` says.
    fn schema_with(nullable: &[bool]) -> SchemaRef {
        let schema = schema_fields();
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .zip(nullable)
            .map(|(f, n)| f.as_ref().clone().with_nullable(*n))
            .collect();
        Arc::new(Schema::new(fields))
    }

    fn schema_fields() -> SchemaRef {
        let ts = |unit, tz: Option<&str>| DataType::Timestamp(unit, tz.map(Into::into));
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("i8", DataType::Int8, true),
            Field::new("i16", DataType::Int16, true),
            Field::new("i32", DataType::Int32, true),
            Field::new("u8", DataType::UInt8, true),
            Field::new("u16", DataType::UInt16, true),
            Field::new("u32", DataType::UInt32, true),
            Field::new("u64", DataType::UInt64, true),
            Field::new("f32", DataType::Float32, true),
            Field::new("f64", DataType::Float64, true),
            Field::new("flag", DataType::Boolean, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("a_name_longer_than_16", DataType::LargeUtf8, true),
            Field::new("é", DataType::Utf8, true),
            Field::new("", DataType::Int32, true),
            Field::new("day", DataType::Date32, true),
            Field::new("s", ts(TimeUnit::Second, None), true),
            Field::new("ms", ts(TimeUnit::Millisecond, Some("+00:00")), true),
            Field::new("us", ts(TimeUnit::Microsecond, Some("UTC")), true),
            Field::new("ns", ts(TimeUnit::Nanosecond, Some("UTC")), true),
        ]))
    }

    /// The batch `arrow-json` (with the SDK's decoders, as s3-files builds it) gives for
    /// `text`, which must hold exactly `rows` records.
    fn arrow_json(schema: &SchemaRef, text: &[u8], rows: usize) -> Result<RecordBatch, String> {
        let mut d = arrow_json::ReaderBuilder::new(schema.clone())
            .with_batch_size(rows.max(1))
            .with_decoder_factory(Arc::new(JsonDecoders))
            .build_decoder()
            .map_err(|e| e.to_string())?;
        let used = d.decode(text).map_err(|e| e.to_string())?;
        let batch = d.flush().map_err(|e| e.to_string())?;
        match batch {
            Some(b) if used == text.len() && b.num_rows() == rows => Ok(b),
            other => Err(format!(
                "{rows} records, {} rows, {used} of {} bytes",
                other.map_or(0, |b| b.num_rows()),
                text.len()
            )),
        }
    }

    /// `lines` (each ending in a line break) as one text and where each ends.
    fn joined(lines: &[String]) -> (Vec<u8>, Vec<usize>) {
        let mut text = Vec::new();
        let mut ends = Vec::new();
        for line in lines {
            text.extend_from_slice(line.as_bytes());
            ends.push(text.len());
        }
        (text, ends)
    }

    /// This path's batch for `lines`, which must be the batch `arrow-json` gives when there
    /// is one.
    fn decode_checked(schema: &SchemaRef, lines: &[String]) -> Option<RecordBatch> {
        let (text, ends) = joined(lines);
        let ours = FlatLinesDecoder::new(schema).unwrap().decode(&text, &ends);
        if let Some(b) = &ours {
            // (arrow-json reads escaped pairs wrong: see `escaped_pairs_as_utf8`.)
            let text = escaped_pairs_as_utf8(&text).unwrap_or(text);
            let text = String::from_utf8(text).expect("this path reads only UTF-8");
            let theirs = arrow_json(schema, text.as_bytes(), lines.len())
                .unwrap_or_else(|e| panic!("arrow-json refuses what this path read: {e}\n{text}"));
            for (i, field) in schema.fields().iter().enumerate() {
                assert_eq!(
                    b.column(i).as_ref(),
                    theirs.column(i).as_ref(),
                    "column {:?} of\n{text}",
                    field.name()
                );
            }
            assert_eq!(b, &theirs);
        }
        ours
    }

    fn lines(text: &str) -> Vec<String> {
        text.split_inclusive('\n').map(str::to_string).collect()
    }

    #[test]
    fn values_at_the_limits_of_every_type_are_read_here_as_arrow_json_reads_them() {
        let schema = schema(false);
        let text = concat!(
            r#"{"id":-9223372036854775808,"i8":-128,"i16":-32768,"i32":-2147483648,"u8":0,"u16":0,"u32":0,"u64":0,"f32":-3.4028235e38,"f64":-1.7976931348623157e308,"flag":false,"name":"","a_name_longer_than_16":"","é":"","":-2147483648,"day":"0000-01-01","s":"0000-01-01T00:00:00Z","ms":"1970-01-01T00:00:00.001Z","us":"1677-09-21T00:12:43.145225Z","ns":"1677-09-21T00:12:43.145224192Z"}"#,
            "\n",
            r#"{"id":9223372036854775807,"i8":127,"i16":32767,"i32":2147483647,"u8":255,"u16":65535,"u32":4294967295,"u64":18446744073709551615,"f32":3.4028235e38,"f64":1.7976931348623157e308,"flag":true,"name":"tab	del","a_name_longer_than_16":"𝄞 ü ✓ ","é":"ß","":2147483647,"day":"9999-12-31","s":"9999-12-31T23:59:59+00:00","ms":"2262-04-11 23:47:16.854","us":"9999-12-31T23:59:59.999999-23:59","ns":"2262-04-11T23:47:16.854775807Z"}"#,
            "\n",
            // escapes, of every kind, in known and unknown keys' values
            r#"{"id":0,"name":"a\"\\\/\b\f\n\r\t","a_name_longer_than_16":"\u0001\u00e9\uFFFF\ud83d\ude00\uDBFF\uDFFF","zz":"\"\u0000"}"#,
            "\n",
            // -0, the smallest subnormal, underflow to zero, exponents; nulls; keys missing,
            // unknown and reordered; whitespace around every token; CRLF
            " \t{ \"f64\" : -0 , \"id\":0,\"f32\":1e-46 ,\"zz\":[{\"a\":[]}],\"u64\":1E2}\r\n",
            "{\"id\":1,\"f64\":5e-324,\"extra\":\"x\",\"f32\":1.5E+3,\"name\":null,\"flag\":null,\"day\":null,\"us\":null}\n",
            "{\"id\":2,\"f64\":4.9e-325,\"unknown\":-1.5e+1000,\"other\":true,\"third\":null}\n",
            "{\"id\":3}\n",
        );
        // Row 3 (u64 1E2: an integer lexical-core takes only as a float) is arrow-json's
        // alone.
        let all = lines(text);
        assert!(decode_checked(&schema, &all).is_none());
        let plain: Vec<String> = [0usize, 1, 2, 4, 5, 6]
            .iter()
            .map(|i| all[*i].clone())
            .collect();
        let batch = decode_checked(&schema, &plain).expect("plain records");
        assert_eq!(batch.num_rows(), 6);
    }

    #[test]
    fn a_record_this_path_does_not_read_hands_the_batch_to_arrow_json() {
        let schema = schema(false);
        let plain = "{\"id\":1,\"name\":\"a\"}\n".to_string();
        let odd = [
            // escapes, in a value and in a key
            "{\"id\":1,\"name\":\"\\x\"}\n",
            "{\"id\":1,\"name\":\"\\u00e\"}\n",
            "{\"id\":1,\"name\":\"\\uZZZZ\"}\n",
            "{\"id\":1,\"name\":\"\\ud800\"}\n",
            "{\"id\":1,\"name\":\"\\ud800x\"}\n",
            "{\"id\":1,\"name\":\"\\ud800\\u0041\"}\n",
            "{\"id\":1,\"name\":\"\\ud800\\ud800\"}\n",
            "{\"id\":1,\"name\":\"\\udc00\\ud800\"}\n",
            "{\"id\":1,\"name\":\"a\\\"}\n",
            "{\"id\":1,\"na\\u006de\":\"a\"}\n",
            "{\"id\":1,\"unknown\":\"\\q\"}\n",
            // nested values, of known and unknown keys
            "{\"id\":1,\"unknown\":{\"a\":1,}}\n",
            "{\"id\":1,\"unknown\":{\"a\" 1}}\n",
            "{\"id\":1,\"unknown\":[1 2]}\n",
            "{\"id\":1,\"unknown\":[\"\\x\"]}\n",
            "{\"id\":1,\"name\":[\"a\"]}\n",
            // another type than declared (arrow-json reads some, refuses others)
            "{\"id\":\"1\"}\n",
            "{\"id\":1.0}\n",
            "{\"id\":1e3}\n",
            "{\"id\":9223372036854775808}\n",
            "{\"id\":1,\"i8\":128}\n",
            "{\"id\":1,\"u8\":-1}\n",
            "{\"id\":1,\"name\":1}\n",
            "{\"id\":1,\"flag\":\"true\"}\n",
            "{\"id\":1,\"flag\":1}\n",
            "{\"id\":1,\"day\":\"2024-02-30\"}\n",
            "{\"id\":1,\"day\":19000}\n",
            "{\"id\":1,\"us\":\"2024-01-01T00:00:00 Europe/Paris\"}\n",
            // null or missing where the schema refuses it; a key twice
            "{\"id\":null}\n",
            "{\"name\":\"no id\"}\n",
            "{}\n",
            "{\"id\":1,\"id\":2}\n",
            "{\"id\":1,\"name\":\"a\",\"name\":null}\n",
            // separators and layouts arrow-json's tape reads (or refuses) and this path
            // does not
            "{\"id\":1,}\n",
            "{\"id\":1,,\"name\":\"a\"}\n",
            "{,\"id\":1}\n",
            "{\"id\":1 \"name\":\"a\"}\n",
            "{\"id\":1}{\"id\":2}\n",
            "{\"id\":1} x\n",
            "[{\"id\":1}]\n",
            "\u{feff}{\"id\":1}\n",
            "{\"id\":1,\"flag\":tru}\n",
            "{\"id\":1,\"flag\":tru }\n",
            "{\"id\":1,\"name\":nul ,\"flag\":true}\n",
            "{\"id\":1,\"flag\":falsy}\n",
            "{\"id\":-}\n",
            "{\"id\":1,\"name\":\"a}\n",
            "{\"id\" 1}\n",
            "{\"id\":1\n",
        ];
        for line in odd {
            let lines = [plain.clone(), line.to_string(), plain.clone()];
            assert!(decode_checked(&schema, &lines).is_none(), "{line}");
        }
        // Not UTF-8.
        let mut text = b"{\"id\":1,\"name\":\"".to_vec();
        text.extend_from_slice(&[0xff, b'"', b'}', b'\n']);
        let end = text.len();
        assert!(
            FlatLinesDecoder::new(&schema)
                .unwrap()
                .decode(&text, &[end])
                .is_none()
        );
        // A record that is not the whole of its line, or a line that is not a whole record.
        let (text, ends) = joined(&[plain.clone(), plain.clone()]);
        assert!(
            FlatLinesDecoder::new(&schema)
                .unwrap()
                .decode(&text, &[ends[1]])
                .is_none()
        );
        assert!(
            FlatLinesDecoder::new(&schema)
                .unwrap()
                .decode(&text, &[5, ends[1]])
                .is_none()
        );
        // Text past the last record's end.
        let mut decoder = FlatLinesDecoder::new(&schema).unwrap();
        assert!(decoder.decode(&text, &[ends[0]]).is_none());
        assert!(decoder.decode(&text[..ends[0]], &[ends[0]]).is_some());
    }

    #[test]
    fn escaped_pairs_of_the_even_planes_are_read_right_here_and_by_arrow_json_once_unescaped() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        // Three pairs, and the text of one after an escaped backslash.
        let text = concat!(
            r#"{"s":"\uD840\uDC00 \ud83d\ude00 \uDBFF\uDFFF \\uD840\\uDC00"}"#,
            "\n"
        )
        .as_bytes();
        let right = "\u{20000} \u{1F600} \u{10FFFF} \\uD840\\uDC00";
        let strings = |b: &RecordBatch| b.column(0).as_string::<i32>().value(0).to_string();
        let unescaped = escaped_pairs_as_utf8(text).unwrap();
        assert_eq!(
            String::from_utf8(unescaped.clone()).unwrap(),
            "{\"s\":\"\u{20000} \u{1F600} \u{10FFFF} \\\\uD840\\\\uDC00\"}\n"
        );
        let ours = FlatLinesDecoder::new(&schema)
            .unwrap()
            .decode(text, &[text.len()])
            .unwrap();
        assert_eq!(strings(&ours), right);
        let theirs = arrow_json(&schema, &unescaped, 1).unwrap();
        assert_eq!(strings(&theirs), right);
        // The upstream mistake this works around: when this fails, arrow-json reads pairs
        // right, and `escaped_pairs_as_utf8` can go.
        let wrong = arrow_json(&schema, text, 1).unwrap();
        assert_eq!(
            strings(&wrong),
            right
                .replace('\u{20000}', "\u{10000}")
                .replace('\u{10FFFF}', "\u{FFFFF}")
        );
        // Nothing to unescape: no pair, a pair's text after an escaped backslash, half a pair.
        for text in [
            r#"{"s":"a"}"#,
            r#"{"s":"\\ud83d\ude00"}"#,
            r#"{"s":"\ud83d"}"#,
            r#"\"#,
        ] {
            assert_eq!(escaped_pairs_as_utf8(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn a_null_or_missing_value_of_a_required_field_of_any_type_is_arrow_jsons() {
        let schema = schema_with(&[false; 20]);
        let values = [
            "1",
            "-1",
            "2",
            "3",
            "4",
            "5",
            "6",
            "7",
            "1.5",
            "2.5",
            "true",
            "\"a\"",
            "\"b\"",
            "\"c\"",
            "8",
            "\"2024-02-29\"",
            "\"2024-02-29T00:00:01Z\"",
            "\"2024-02-29T00:00:01.5Z\"",
            "\"2024-02-29T00:00:01.25Z\"",
            "\"2024-02-29T00:00:01.125Z\"",
        ];
        let record = |skip: Option<usize>, null: Option<usize>| {
            let kvs: Vec<String> = NAMES
                .iter()
                .zip(values)
                .enumerate()
                .filter(|(i, _)| Some(*i) != skip)
                .map(|(i, (k, v))| format!("\"{k}\":{}", if Some(i) == null { "null" } else { v }))
                .collect();
            format!("{{{}}}\n", kvs.join(","))
        };
        assert!(decode_checked(&schema, &[record(None, None)]).is_some());
        for f in 0..NAMES.len() {
            assert!(
                decode_checked(&schema, &[record(Some(f), None)]).is_none(),
                "{}",
                NAMES[f]
            );
            assert!(
                decode_checked(&schema, &[record(None, Some(f))]).is_none(),
                "{}",
                NAMES[f]
            );
            // Nullable, the same records are read here.
            let mut nullable = [false; 20];
            nullable[f] = true;
            let schema = schema_with(&nullable);
            assert!(decode_checked(&schema, &[record(Some(f), None)]).is_some());
            assert!(decode_checked(&schema, &[record(None, Some(f))]).is_some());
        }
    }

    #[test]
    fn a_skipped_value_nests_up_to_the_limit_here_and_deeper_in_arrow_json() {
        let schema = schema(false);
        let nested = |depth: usize| {
            format!(
                "{{\"id\":1,\"zz\":{}1{}}}\n",
                "[{\"a\":".repeat(depth / 2) + &"[".repeat(depth % 2),
                "]".repeat(depth % 2) + &"}]".repeat(depth / 2)
            )
        };
        for depth in [1, 2, 63, 64] {
            assert!(
                decode_checked(&schema, &[nested(depth)]).is_some(),
                "{depth}"
            );
        }
        for depth in [65, 66, 200] {
            let line = nested(depth);
            assert!(
                decode_checked(&schema, std::slice::from_ref(&line)).is_none(),
                "{depth}"
            );
            assert!(arrow_json(&schema, line.as_bytes(), 1).is_ok(), "{depth}");
        }
    }

    #[test]
    fn a_schema_with_a_type_this_path_does_not_read_is_always_arrow_jsons() {
        for data_type in [
            DataType::Struct(vec![Field::new("x", DataType::Int32, true)].into()),
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            DataType::Decimal128(10, 2),
            DataType::Binary,
            DataType::Float16,
            DataType::Utf8View,
            DataType::Timestamp(TimeUnit::Microsecond, Some("Europe/Paris".into())),
        ] {
            let schema = Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("x", data_type.clone(), true),
            ]));
            assert!(FlatLinesDecoder::new(&schema).is_none(), "{data_type}");
        }
        let twice = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("id", DataType::Utf8, true),
        ]));
        assert!(FlatLinesDecoder::new(&twice).is_none());
    }

    /// A field's value as JSON text, drawn over its whole range (canonical temporal texts).
    fn value_of(name: &'static str) -> BoxedStrategy<String> {
        // Seconds since the epoch from 0000-01-01 to 9999-12-31 (or, in nanoseconds, what
        // an i64 holds), with a fraction of `fraction` digits.
        let timestamp = |fraction: u32| {
            let seconds = match fraction {
                9 => -9_223_300_000i64..9_223_300_000,
                _ => -62_167_219_200..253_402_300_800,
            };
            (
                seconds,
                0u32..1_000_000_000,
                prop::sample::select(vec!["T", " "]),
            )
                .prop_flat_map(move |(secs, nanos, sep)| {
                    let t = chrono::DateTime::from_timestamp(secs, nanos).unwrap();
                    let digits = 10u32.pow(9 - fraction);
                    let t = t.with_nanosecond(nanos / digits * digits).unwrap();
                    let offset = prop::sample::select(vec!["Z", "+00:00", "-05:30", "+14:00", ""]);
                    offset.prop_map(move |z| {
                        let frac = match fraction {
                            0 => String::new(),
                            f => {
                                format!(".{:0width$}", t.nanosecond() / digits, width = f as usize)
                            }
                        };
                        format!(
                            "\"{}{sep}{}{frac}{z}\"",
                            t.format("%Y-%m-%d"),
                            t.format("%H:%M:%S")
                        )
                    })
                })
        };
        use chrono::Timelike;
        match name {
            "id" => any::<i64>().prop_map(|v| v.to_string()).boxed(),
            "i8" => any::<i8>().prop_map(|v| v.to_string()).boxed(),
            "i16" => any::<i16>().prop_map(|v| v.to_string()).boxed(),
            "i32" | "" => any::<i32>().prop_map(|v| v.to_string()).boxed(),
            "u8" => any::<u8>().prop_map(|v| v.to_string()).boxed(),
            "u16" => any::<u16>().prop_map(|v| v.to_string()).boxed(),
            "u32" => any::<u32>().prop_map(|v| v.to_string()).boxed(),
            "u64" => any::<u64>().prop_map(|v| v.to_string()).boxed(),
            "f32" => (
                any::<f32>().prop_filter("finite", |v| v.is_finite()),
                any::<bool>(),
            )
                .prop_map(|(v, e)| {
                    if e {
                        format!("{v:e}")
                    } else {
                        format!("{v:?}")
                    }
                })
                .boxed(),
            "f64" => (
                any::<f64>().prop_filter("finite", |v| v.is_finite()),
                any::<bool>(),
            )
                .prop_map(|(v, e)| if e { format!("{v:E}") } else { format!("{v}") })
                .boxed(),
            "flag" => any::<bool>().prop_map(|v| v.to_string()).boxed(),
            "name" | "a_name_longer_than_16" | "é" => (any::<String>(), 0..3u8)
                .prop_map(|(s, style)| json_string(&s, style))
                .boxed(),
            "day" => (0i32..3_652_425)
                .prop_map(|d| {
                    let day = chrono::NaiveDate::from_ymd_opt(0, 1, 1).unwrap()
                        + chrono::Duration::days(d.into());
                    format!("\"{}\"", day.format("%Y-%m-%d"))
                })
                .boxed(),
            "s" => timestamp(0).boxed(),
            "ms" => timestamp(3).boxed(),
            "us" => timestamp(6).boxed(),
            "ns" => timestamp(9).boxed(),
            _ => Just("null".to_string()).boxed(),
        }
    }

    /// `s` as a JSON string: `style` 0 as serde_json writes it (escapes only where JSON
    /// requires them), 1 with every character past ASCII and every control character as
    /// `\uXXXX` (UTF-16 pairs past U+FFFF; as Python's `json.dumps` writes), 2 with the
    /// short escapes where there are some (`\/` too) and upper-case hex digits.
    fn json_string(s: &str, style: u8) -> String {
        if style == 0 {
            return serde_json::to_string(s).unwrap();
        }
        let mut out = String::from('"');
        for c in s.chars() {
            match (c, style) {
                ('"', _) => out.push_str("\\\""),
                ('\\', _) => out.push_str("\\\\"),
                ('/', 2) => out.push_str("\\/"),
                ('\n', 2) => out.push_str("\\n"),
                ('\t', 2) => out.push_str("\\t"),
                ('\u{8}', 2) => out.push_str("\\b"),
                ('\u{c}', 2) => out.push_str("\\f"),
                ('\r', 2) => out.push_str("\\r"),
                (c, _) if (c as u32) < 0x20 || !c.is_ascii() => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        if style == 2 {
                            out.push_str(&format!("\\u{unit:04X}"));
                        } else {
                            out.push_str(&format!("\\u{unit:04x}"));
                        }
                    }
                }
                (c, _) => out.push(c),
            }
        }
        out.push('"');
        out
    }

    const NAMES: [&str; 20] = [
        "id",
        "i8",
        "i16",
        "i32",
        "u8",
        "u16",
        "u32",
        "u64",
        "f32",
        "f64",
        "flag",
        "name",
        "a_name_longer_than_16",
        "é",
        "",
        "day",
        "s",
        "ms",
        "us",
        "ns",
    ];

    /// A plain record: `id` and any of the other fields (each once, a value of its type or
    /// null), keys the schema lacks with scalar values, in any order, with any whitespace
    /// around the tokens and either line ending.
    fn plain_record() -> impl Strategy<Value = String> {
        let fields = NAMES.iter().map(|n| {
            (
                value_of(n),
                prop::bool::weighted(0.15),
                prop::bool::weighted(0.85),
            )
                .prop_map(move |(v, null, present)| {
                    let v = if null && *n != "id" { "null".into() } else { v };
                    (present || *n == "id").then(|| (n.to_string(), v))
                })
        });
        let unknown = prop::collection::vec(
            (
                prop::sample::select(vec!["zz", "i", "idd", "nam", "Name"]),
                prop::sample::select(vec![
                    "1",
                    "-2.5e-3",
                    "\"x\"",
                    "true",
                    "false",
                    "null",
                    "--1",
                    "\"\\u00e9\\\"\"",
                    "{}",
                    "[]",
                    "[[[]]]",
                    "{\"a\":[1,{\"b\":null}],\"c\":\"\\ud83d\\ude00\"}",
                    "[ 1 , \"x\" , { \"k\" : [ true ] } ]",
                    "{\"\":{\"\":{}}}",
                ]),
            ),
            0..3,
        );
        let ws = || prop::sample::select(vec!["", "", "", " ", "\t", " \t "]);
        (fields.collect::<Vec<_>>(), unknown)
            .prop_flat_map(move |(fields, unknown)| {
                let mut kvs: Vec<(String, String)> = fields.into_iter().flatten().collect();
                kvs.extend(
                    unknown
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v.to_string())),
                );
                let n = kvs.len();
                (
                    Just(kvs).prop_shuffle(),
                    prop::collection::vec((ws(), ws(), ws(), ws()), n),
                    (ws(), ws(), prop::sample::select(vec!["\n", "\r\n"])),
                )
            })
            .prop_map(|(kvs, spaces, (lead, trail, eol))| {
                let body: Vec<String> = kvs
                    .iter()
                    .zip(&spaces)
                    .map(|((k, v), (a, b, c, d))| format!("{a}\"{k}\"{b}:{c}{v}{d}"))
                    .collect();
                format!("{lead}{{{}}}{trail}{eol}", body.join(","))
            })
    }

    /// A record of keys (the schema's, near misses, unknown) and values of any type, plain or
    /// not (escapes, nested values, numbers arrow-json reads only as floats or not at all),
    /// with separators and layouts the tape takes or refuses.
    fn any_record() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec![
            "\"id\"",
            "\"i8\"",
            "\"u64\"",
            "\"f32\"",
            "\"flag\"",
            "\"name\"",
            "\"é\"",
            "\"\"",
            "\"day\"",
            "\"us\"",
            "\"zz\"",
            "\"i\\u0064\"",
            "\"nam\"",
        ]);
        let value = prop::sample::select(vec![
            "0",
            "-0",
            "1",
            "-1",
            "127",
            "128",
            "255",
            "256",
            "-129",
            "01",
            "1.0",
            "1e2",
            "1E+2",
            "-",
            "+1",
            "1.5",
            "-9223372036854775808",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "3.4028236e38",
            "1e400",
            "\"text\"",
            "\"\"",
            "\"1\"",
            "\"a\\\"b\"",
            "\"\\u00e9\"",
            "\"\\ud83d\\ude00\"",
            "\"\\ud83d\"",
            "\"\\ude00\"",
            "\"\\ud83d\\u0041\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"a\\\\\"",
            "\"\\/\\b\\f\\n\\r\\t\"",
            "\"2024-02-29\"",
            "\"2024-02-30\"",
            "\"2024-01-01T00:00:00Z\"",
            "\"2024-01-01T00:00:00.1234567891Z\"",
            "[1,]",
            "[1 2]",
            "[1,,2]",
            "{\"a\" 1}",
            "{1:2}",
            "{\"a\":[}",
            "{\"a\":1,}",
            "{\"x\":\"\\q\"}",
            "[\"\\ud800\"]",
            "{\"a\":1",
            "[[[[",
            "{\"a\":{\"b\":[1,{\"c\":2}]}}",
            "true",
            "false",
            "null",
            "tru",
            "nul",
            "tru ",
            "nul ",
            "fals ",
            "truee",
            "{}",
            "{\"a\":1}",
            "[]",
            "[1,{\"b\":[]}]",
        ]);
        let separator = prop::sample::select(vec![",", ",", ",", " , ", ",,", " ", ""]);
        (
            prop::collection::vec((key, value, separator), 0..6),
            prop::sample::select(vec!["", " ", "x", "{}", ","]),
            prop::sample::select(vec!["{", "{", " {", "[", "{,"]),
        )
            .prop_map(|(kvs, trail, open)| {
                let mut s = open.to_string();
                for (i, (k, v, sep)) in kvs.iter().enumerate() {
                    if i > 0 {
                        s.push_str(sep);
                    }
                    s.push_str(&format!("{k}:{v}"));
                }
                format!("{s}}}{trail}\n")
            })
    }

    proptest! {
        #[test]
        fn escaped_pairs_unescaped_are_the_same_string(s in any::<String>(), style in 0..3u8) {
            let json = json_string(&s, style);
            let unescaped = escaped_pairs_as_utf8(json.as_bytes()).unwrap_or(json.clone().into_bytes());
            let unescaped = String::from_utf8(unescaped).unwrap();
            prop_assert_eq!(serde_json::from_str::<String>(&unescaped).unwrap(), s);
        }

        #[test]
        fn plain_records_are_read_here_and_equal_arrow_jsons(
            records in prop::collection::vec(plain_record(), 1..16),
            nullable_id in any::<bool>(),
        ) {
            let schema = schema(nullable_id);
            prop_assert!(decode_checked(&schema, &records).is_some(), "{:?}", records);
        }

        #[test]
        fn whatever_this_path_reads_equals_arrow_json(
            records in prop::collection::vec(
                prop_oneof![3 => plain_record(), 2 => any_record()], 1..10),
            nullable in prop::collection::vec(any::<bool>(), 20),
        ) {
            // decode_checked asserts the equality whenever this path gives a batch.
            decode_checked(&schema_with(&nullable), &records);
        }

        #[test]
        fn one_decoder_over_many_batches_equals_a_new_one_for_each(
            batches in prop::collection::vec(
                prop::collection::vec(prop_oneof![3 => plain_record(), 1 => any_record()], 1..6),
                1..6),
        ) {
            // The key order kept from batch to batch (and from a batch handed back) changes
            // no value.
            let schema = schema(true);
            let mut kept = FlatLinesDecoder::new(&schema).unwrap();
            for records in &batches {
                let (text, ends) = joined(records);
                let fresh = FlatLinesDecoder::new(&schema).unwrap().decode(&text, &ends);
                prop_assert_eq!(kept.decode(&text, &ends), fresh);
            }
        }
    }
}
