//! Faster `arrow-json` decoding of timestamps and dates written in their canonical text
//! forms, plugged in through the reader's own extension point
//! ([`arrow_json::reader::DecoderFactory`]):
//!
//! ```
//! # use std::sync::Arc;
//! # use connector_sdk::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
//! use connector_sdk::json_temporal::CanonicalTemporalDecoders;
//! let schema = Arc::new(Schema::new(vec![Field::new(
//!     "at", DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())), true)]));
//! let decoder = arrow_json::ReaderBuilder::new(schema)
//!     .with_decoder_factory(Arc::new(CanonicalTemporalDecoders))
//!     .build_decoder();
//! ```
//!
//! Why this is not left to `arrow-json` alone: for every value its decoders call
//! `arrow_cast`'s general parser (many layouts, a time zone resolved through `chrono` per
//! value, a `chrono::NaiveDate` built and counted back to days), which was ~14 % of a JSON
//! Lines ingestion's CPU (`perf`, `bench/s3-files`). Here only the layouts machines write are
//! read — `YYYY-MM-DD`, and `YYYY-MM-DD` `T`|`t`|space `HH:MM:SS[.1-9 digits][Z|z|±HH:MM]` —
//! with fixed-position digit arithmetic. Anything else in a batch (another layout, an extended
//! year, a leap second, a number, an out-of-range value, a column in a named time zone)
//! hands the whole batch to `arrow-json`'s own decoder, so values, nulls and errors are always
//! exactly what `arrow-json` gives; a property test holds the fast path to `arrow_cast`'s
//! result on generated text.

use std::sync::Arc;

use arrow::array::NullBufferBuilder;
use arrow::array::{ArrayRef, PrimitiveArray};
use arrow::datatypes::{
    ArrowPrimitiveType, ArrowTimestampType, DataType, Date32Type, FieldRef, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow::error::ArrowError;
use arrow_json::reader::{ArrayDecoder, DecoderContext, DecoderFactory, Tape, TapeElement};

/// The [`DecoderFactory`] that reads canonical timestamps (in a UTC or zone-less column) and
/// dates with a fast path, and leaves every other type to `arrow-json`.
#[derive(Debug, Default, Clone, Copy)]
pub struct CanonicalTemporalDecoders;

impl DecoderFactory for CanonicalTemporalDecoders {
    fn make_default_decoder(
        &self,
        ctx: &DecoderContext,
        field: &FieldRef,
        is_nullable: bool,
    ) -> Result<Option<Box<dyn ArrayDecoder>>, ArrowError> {
        temporal_decoder(ctx, field, is_nullable)
    }
}

/// The fast decoder for `field` when it is a timestamp (UTC or without a zone) or a date;
/// `None` for every other type.
pub(crate) fn temporal_decoder(
    ctx: &DecoderContext,
    field: &FieldRef,
    is_nullable: bool,
) -> Result<Option<Box<dyn ArrayDecoder>>, ArrowError> {
    let data_type = field.data_type().clone();
    let fallback = || ctx.make_builtin_decoder(field, is_nullable);
    Ok(match &data_type {
        // A text without an offset is UTC in these columns, as `arrow-json` reads it;
        // in a named zone it is local time there, which is left to `arrow-json`.
        // ("Z" is no zone arrow-json accepts: it refuses such a column itself.)
        DataType::Timestamp(unit, tz)
            if tz.as_deref().is_none_or(|z| matches!(z, "+00:00" | "UTC")) =>
        {
            let fallback = fallback()?;
            Some(match unit {
                TimeUnit::Second => timestamp_decoder::<TimestampSecondType>(data_type, fallback),
                TimeUnit::Millisecond => {
                    timestamp_decoder::<TimestampMillisecondType>(data_type, fallback)
                }
                TimeUnit::Microsecond => {
                    timestamp_decoder::<TimestampMicrosecondType>(data_type, fallback)
                }
                TimeUnit::Nanosecond => {
                    timestamp_decoder::<TimestampNanosecondType>(data_type, fallback)
                }
            })
        }
        DataType::Date32 => Some(fast_path::<Date32Type>(
            data_type,
            |s| canonical_date(s).map(|days| days as i32),
            fallback()?,
        )),
        _ => None,
    })
}

fn timestamp_decoder<T: ArrowTimestampType>(
    data_type: DataType,
    fallback: Box<dyn ArrayDecoder>,
) -> Box<dyn ArrayDecoder> {
    // One closure type per unit (taken from the array type, so the two cannot disagree):
    // the unit is a constant in the inlined parse.
    match T::UNIT {
        TimeUnit::Second => fast_path::<T>(data_type, |s| canonical_timestamp(s, 1), fallback),
        TimeUnit::Millisecond => {
            fast_path::<T>(data_type, |s| canonical_timestamp(s, 1_000), fallback)
        }
        TimeUnit::Microsecond => {
            fast_path::<T>(data_type, |s| canonical_timestamp(s, 1_000_000), fallback)
        }
        TimeUnit::Nanosecond => fast_path::<T>(
            data_type,
            |s| canonical_timestamp(s, 1_000_000_000),
            fallback,
        ),
    }
}

fn fast_path<T: ArrowPrimitiveType>(
    data_type: DataType,
    parse: impl Fn(&[u8]) -> Option<T::Native> + Send + 'static,
    fallback: Box<dyn ArrayDecoder>,
) -> Box<dyn ArrayDecoder> {
    Box::new(FastPathDecoder::<T, _> {
        data_type,
        parse,
        fallback,
        _type: std::marker::PhantomData,
    })
}

/// Strings (and nulls) parsed by `parse`; the first value it does not take sends the whole
/// batch to `fallback`, `arrow-json`'s own decoder for the field.
struct FastPathDecoder<T: ArrowPrimitiveType, P> {
    data_type: DataType,
    parse: P,
    fallback: Box<dyn ArrayDecoder>,
    _type: std::marker::PhantomData<fn() -> T>,
}

impl<T, P> ArrayDecoder for FastPathDecoder<T, P>
where
    T: ArrowPrimitiveType,
    P: Fn(&[u8]) -> Option<T::Native> + Send,
{
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let mut values = Vec::with_capacity(pos.len());
        let mut nulls = NullBufferBuilder::new(pos.len());
        for p in pos {
            match tape.get(*p) {
                TapeElement::Null => {
                    values.push(T::Native::default());
                    nulls.append_null();
                }
                TapeElement::String(idx) => match (self.parse)(tape.get_string(idx).as_bytes()) {
                    Some(v) => {
                        values.push(v);
                        nulls.append_non_null();
                    }
                    None => return self.fallback.decode(tape, pos),
                },
                _ => return self.fallback.decode(tape, pos),
            }
        }
        let array = PrimitiveArray::<T>::new(values.into(), nulls.finish())
            .with_data_type(self.data_type.clone());
        Ok(Arc::new(array))
    }
}

/// Days since 1970-01-01 of `YYYY-MM-DD` at the start of `s` (years 0000-9999, a real
/// day of the month), or `None`. Every byte is checked before any branch on its value.
#[inline(always)]
fn date_prefix(s: &[u8]) -> Option<i64> {
    let text: &[u8; 10] = s.get(..10)?.try_into().ok()?;
    let d = text.map(|c| c.wrapping_sub(b'0'));
    let digits = [0, 1, 2, 3, 5, 6, 8, 9]
        .iter()
        .fold(true, |ok, &i| ok & (d[i] < 10));
    if !(digits & (text[4] == b'-') & (text[7] == b'-')) {
        return None;
    }
    let n = |i: usize| u32::from(d[i]);
    let year = n(0) * 1000 + n(1) * 100 + n(2) * 10 + n(3);
    let (month, day) = (n(5) * 10 + n(6), n(8) * 10 + n(9));
    // A static, not a const: a const array is copied to the stack on every call.
    static MONTH_DAYS: [u32; 13] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&month) || day == 0 {
        return None;
    }
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    if day > MONTH_DAYS[month as usize] + u32::from(leap && month == 2) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// Days from 1970-01-01 to a proleptic Gregorian date of the years 0-9999 (H. Hinnant's
/// `days_from_civil`, counted from the year -400 so that every step is unsigned).
#[inline(always)]
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let y = year + 400 - u32::from(month <= 2);
    let (era, yoe) = (y / 400, y % 400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    i64::from(era * 146_097 + doe) - 146_097 - 719_468
}

/// Days since 1970-01-01 of a text that is exactly `YYYY-MM-DD`.
#[inline]
pub(crate) fn canonical_date(s: &[u8]) -> Option<i64> {
    if s.len() != 10 {
        return None;
    }
    date_prefix(s)
}

/// A canonical timestamp as a count of `1 / per_second` seconds since the epoch (UTC;
/// truncated below the unit, as `arrow-json` does), or `None` for any other text (10 or more
/// fraction digits too, which arrow truncates) or a value the unit cannot hold.
#[inline(always)]
pub(crate) fn canonical_timestamp(s: &[u8], per_second: i64) -> Option<i64> {
    let days = date_prefix(s)?;
    let text: &[u8; 9] = s.get(10..19)?.try_into().ok()?;
    let d = text.map(|c| c.wrapping_sub(b'0'));
    let digits = [1, 2, 4, 5, 7, 8]
        .iter()
        .fold(true, |ok, &i| ok & (d[i] < 10));
    let separators = matches!(text[0], b'T' | b't' | b' ') & (text[3] == b':') & (text[6] == b':');
    if !(digits & separators) {
        return None;
    }
    let n = |i: usize| u32::from(d[i]);
    let (hour, minute, second) = (n(1) * 10 + n(2), n(4) * 10 + n(5), n(7) * 10 + n(8));
    if (hour > 23) | (minute > 59) | (second > 59) {
        return None;
    }
    let mut at = 19;
    let mut nanos = 0u32;
    if s.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        // At most 9 digits (one more, and the text is left to arrow).
        while at < s.len() && at - start < 10 {
            let digit = s[at].wrapping_sub(b'0');
            if digit >= 10 {
                break;
            }
            nanos = nanos.wrapping_mul(10).wrapping_add(u32::from(digit));
            at += 1;
        }
        let digits = at - start;
        if digits == 0 || digits > 9 {
            return None;
        }
        static SCALE: [u32; 10] = [
            1_000_000_000,
            100_000_000,
            10_000_000,
            1_000_000,
            100_000,
            10_000,
            1_000,
            100,
            10,
            1,
        ];
        nanos *= SCALE[digits];
    }
    let offset_seconds = match &s[at..] {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h0, b':', m1, m0] => {
            let d = [h1, h0, m1, m0].map(|c| c.wrapping_sub(b'0'));
            if d.iter().any(|x| *x >= 10) {
                return None;
            }
            let (h, m) = (u32::from(d[0] * 10 + d[1]), u32::from(d[2] * 10 + d[3]));
            if h > 23 || m > 59 {
                return None;
            }
            let seconds = i64::from(h * 3600 + m * 60);
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_seconds;
    let fraction = i64::from(nanos) / (1_000_000_000 / per_second);
    if seconds < 0 && fraction > 0 {
        // Before the epoch, from the next second down: i64::MIN nanoseconds is
        // -9223372037 s + 145224192 ns, and -9223372037 s alone does not fit.
        (seconds + 1)
            .checked_mul(per_second)?
            .checked_add(fraction - per_second)
    } else {
        seconds.checked_mul(per_second)?.checked_add(fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::timezone::Tz;
    use arrow::array::{Array, RecordBatch};
    use arrow::compute::kernels::cast_utils::{Parser, string_to_datetime};
    use arrow::datatypes::{Field, Schema};
    use chrono::Utc;
    use proptest::prelude::*;

    /// What `arrow-json`'s own decoder gives for `unit` (`None` where it errors), in the
    /// zones the fast path serves: naive (read as UTC), "+00:00" and "UTC"; they must agree.
    fn arrow_timestamp(s: &str, per_second: i64) -> Option<i64> {
        fn value<Z: chrono::TimeZone>(t: chrono::DateTime<Z>, per_second: i64) -> Option<i64> {
            match per_second {
                1 => Some(t.timestamp()),
                1_000 => Some(t.timestamp_millis()),
                1_000_000 => Some(t.timestamp_micros()),
                _ => t.timestamp_nanos_opt(),
            }
        }
        let naive = string_to_datetime(&Utc, s)
            .ok()
            .and_then(|t| value(t, per_second));
        for zone in ["+00:00", "UTC"] {
            let tz: Tz = zone.parse().expect("a zone arrow knows");
            let zoned = string_to_datetime(&tz, s)
                .ok()
                .and_then(|t| value(t, per_second));
            assert_eq!(zoned, naive, "{s} in {zone}");
        }
        naive
    }

    const UNITS: [i64; 4] = [1, 1_000, 1_000_000, 1_000_000_000];

    /// Text near the canonical layouts, with the mistakes a source makes.
    fn timestamp_text() -> impl Strategy<Value = String> {
        (
            0u32..=9999,
            0u32..=13,
            0u32..=32,
            0u32..=24,
            0u32..=60,
            0u32..=60,
            prop::sample::select(vec!["T", "t", " ", "X", ""]),
            prop::option::of("[0-9]{0,11}"),
            prop::sample::select(vec![
                "", "Z", "z", "+00:00", "-00:00", "+05:30", "-23:59", "+24:00", "+0530", "+05",
                " UTC", "Zx", "+5:30",
            ]),
        )
            .prop_map(|(y, mo, d, h, mi, s, sep, frac, off)| {
                let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
                format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{off}")
            })
    }

    /// Text in exactly the canonical layouts, every field valid (days up to 28, so every
    /// month has them).
    fn valid_timestamp_text() -> impl Strategy<Value = String> {
        (
            0u32..=9999,
            1u32..=12,
            1u32..=28,
            0u32..=23,
            0u32..=59,
            0u32..=59,
            prop::sample::select(vec!["T", "t", " "]),
            prop::option::of("[0-9]{1,9}"),
            prop::option::of((prop::bool::ANY, 0u32..=23, 0u32..=59)),
            prop::bool::ANY,
        )
            .prop_map(|(y, mo, d, h, mi, s, sep, frac, offset, lower_z)| {
                let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
                let offset = match offset {
                    Some((east, oh, om)) => {
                        format!("{}{oh:02}:{om:02}", if east { '+' } else { '-' })
                    }
                    None if lower_z => "z".to_string(),
                    None => "Z".to_string(),
                };
                format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{offset}")
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// Every valid canonical text takes the fast path (for every unit that can hold it)
        /// and gives arrow's value.
        #[test]
        fn a_valid_canonical_timestamp_takes_the_fast_path(s in valid_timestamp_text()) {
            for per_second in UNITS {
                let arrow = arrow_timestamp(&s, per_second);
                let fast = canonical_timestamp(s.as_bytes(), per_second);
                prop_assert_eq!(fast, arrow, "{} per second of {}", per_second, s);
                // Only nanoseconds outside 1677-2262 are left to arrow (which refuses them).
                prop_assert!(fast.is_some() || per_second == 1_000_000_000, "{}", s);
            }
            let date = &s[..10];
            prop_assert!(canonical_date(date.as_bytes()).is_some(), "{}", date);
        }

        /// Where the fast path takes a text, it gives arrow's value for every unit.
        #[test]
        fn a_canonical_timestamp_is_what_arrow_reads(s in timestamp_text()) {
            for per_second in UNITS {
                if let Some(v) = canonical_timestamp(s.as_bytes(), per_second) {
                    prop_assert_eq!(Some(v), arrow_timestamp(&s, per_second), "{} per second of {}", per_second, s);
                }
            }
        }

        /// Any text at all: the fast path never takes one arrow would read differently.
        #[test]
        fn any_text_is_read_as_arrow_reads_it_or_left_to_arrow(s in "[0-9T:. Zz+-]{0,32}") {
            for per_second in UNITS {
                if let Some(v) = canonical_timestamp(s.as_bytes(), per_second) {
                    prop_assert_eq!(Some(v), arrow_timestamp(&s, per_second), "{} per second of {}", per_second, s);
                }
            }
            if let Some(days) = canonical_date(s.as_bytes()) {
                prop_assert_eq!(Some(days as i32), Date32Type::parse(&s), "{}", s);
            }
        }

        #[test]
        fn a_canonical_date_is_what_arrow_reads(y in 0u32..=9999, m in 0u32..=13, d in 0u32..=32) {
            let s = format!("{y:04}-{m:02}-{d:02}");
            let arrow = Date32Type::parse(&s);
            match canonical_date(s.as_bytes()) {
                Some(days) => prop_assert_eq!(Some(days as i32), arrow, "{}", s),
                // Only an invalid date is left to arrow, which refuses it too.
                None => prop_assert_eq!(arrow, None, "{}", s),
            }
        }
    }

    #[test]
    fn the_limits_of_each_unit_are_exact_or_left_to_arrow() {
        for s in [
            "0000-01-01T00:00:00Z",
            "0000-01-01T00:00:00.000000001Z",
            "9999-12-31T23:59:59.999999999Z",
            "9999-12-31T23:59:59.999999999-23:59",
            "0000-01-01T00:00:00+23:59",
            "1677-09-21T00:12:43.145224192Z", // i64::MIN nanoseconds
            "1677-09-21T00:12:43.145224191Z", // one below: nanoseconds overflow
            "2262-04-11T23:47:16.854775807Z", // i64::MAX nanoseconds
            "2262-04-11T23:47:16.854775808Z", // one above
            "1969-12-31T23:59:59.999999999Z",
            "1970-01-01 00:00:00",
            "2000-02-29T12:00:00.5+05:30",
            "1900-02-29T00:00:00Z", // not a leap year
            "2024-01-01T00:00:60Z", // a leap second: left to arrow
        ] {
            for per_second in UNITS {
                let arrow = arrow_timestamp(s, per_second);
                match canonical_timestamp(s.as_bytes(), per_second) {
                    Some(v) => assert_eq!(Some(v), arrow, "{per_second} per second of {s}"),
                    None => assert!(
                        arrow.is_none() || s.ends_with(":60Z"),
                        "{s} left to arrow, which reads it"
                    ),
                }
            }
        }
        assert_eq!(
            canonical_timestamp(b"1677-09-21T00:12:43.145224192Z", 1_000_000_000),
            Some(i64::MIN)
        );
        assert_eq!(
            canonical_timestamp(b"2262-04-11T23:47:16.854775807Z", 1_000_000_000),
            Some(i64::MAX)
        );
    }

    /// A batch through `arrow-json` with and without the factory: the same array, or the
    /// same error, whatever the batch mixes.
    #[test]
    fn batches_decode_as_arrow_json_decodes_them() {
        let types = [
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            DataType::Timestamp(TimeUnit::Second, Some("UTC".into())),
            DataType::Timestamp(TimeUnit::Millisecond, Some("America/New_York".into())),
            DataType::Date32,
        ];
        let batches = [
            // canonical timestamps with nulls and a missing field: the fast path throughout
            "{\"v\":\"2024-01-01T00:00:01.000003Z\"}\n{\"v\":null}\n{}\n{\"v\":\"1969-12-31 23:59:59.9-01:30\"}\n",
            // canonical dates with nulls and a missing field
            "{\"v\":\"2024-02-29\"}\n{}\n{\"v\":null}\n{\"v\":\"0000-01-01\"}\n",
            "{\"v\":\"2024-01-01T00:00:01.000003Z\"}\n{\"v\":null}\n{}\n{\"v\":\"1970-01-01\"}\n",
            "{\"v\":\"2024-02-29\"}\n{\"v\":null}\n",
            // a number, another layout, an invalid date, a named zone: arrow's own decoder
            "{\"v\":\"2024-01-01T00:00:01Z\"}\n{\"v\":1700000000}\n",
            "{\"v\":\"2024-01-01T00:00:01 +01:00\"}\n",
            "{\"v\":\"2023-02-29\"}\n",
            "{\"v\":\"2024-03-10T02:30:00\"}\n{\"v\":\"2024-03-10T02:30:00+01:00\"}\n",
            "{\"v\":true}\n",
        ];
        for data_type in types {
            for (nullable, strict, ignore_conflicts) in [
                (true, false, false),
                (false, false, false),
                (true, true, false),
                (true, false, true),
            ] {
                let schema = Arc::new(Schema::new(vec![Field::new(
                    "v",
                    data_type.clone(),
                    nullable,
                )]));
                for text in batches {
                    let decode = |fast: bool| -> Result<Option<RecordBatch>, String> {
                        let mut b = arrow_json::ReaderBuilder::new(schema.clone())
                            .with_strict_mode(strict)
                            .with_ignore_type_conflicts(ignore_conflicts);
                        if fast {
                            b = b.with_decoder_factory(Arc::new(CanonicalTemporalDecoders));
                        }
                        let mut d = b.build_decoder().map_err(|e| e.to_string())?;
                        d.decode(text.as_bytes()).map_err(|e| e.to_string())?;
                        d.flush().map_err(|e| e.to_string())
                    };
                    let (ours, theirs) = (decode(true), decode(false));
                    assert_eq!(
                        ours, theirs,
                        "{data_type} nullable={nullable} strict={strict} ignore_type_conflicts={ignore_conflicts}: {text}"
                    );
                    if let Ok(Some(b)) = &ours {
                        assert_eq!(b.column(0).data_type(), &data_type);
                        assert_eq!(b.column(0).len(), b.num_rows());
                    }
                }
            }
        }
    }

    /// Inside a struct (nullable or not, a missing struct, a null struct, a missing child),
    /// the same batch as `arrow-json` alone.
    #[test]
    fn nested_columns_decode_as_arrow_json_decodes_them() {
        use arrow::datatypes::Fields;
        let text = concat!(
            "{\"s\":{\"at\":\"2024-01-01T00:00:01.5Z\",\"d\":\"2024-01-01\"}}\n",
            "{\"s\":{\"at\":null}}\n",
            "{\"s\":null}\n",
            "{}\n",
            "{\"s\":{\"d\":\"1999-12-31\",\"at\":\"1999-12-31t23:59:59+01:00\"}}\n",
        );
        for (outer, inner) in [(true, true), (true, false), (false, true)] {
            let children = Fields::from(vec![
                Field::new(
                    "at",
                    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                    inner,
                ),
                Field::new("d", DataType::Date32, inner),
            ]);
            let schema = Arc::new(Schema::new(vec![Field::new(
                "s",
                DataType::Struct(children),
                outer,
            )]));
            let decode = |fast: bool| -> Result<Option<RecordBatch>, String> {
                let mut b = arrow_json::ReaderBuilder::new(schema.clone());
                if fast {
                    b = b.with_decoder_factory(Arc::new(CanonicalTemporalDecoders));
                }
                let mut d = b.build_decoder().map_err(|e| e.to_string())?;
                d.decode(text.as_bytes()).map_err(|e| e.to_string())?;
                d.flush().map_err(|e| e.to_string())
            };
            assert_eq!(decode(true), decode(false), "outer={outer} inner={inner}");
        }
    }
}
