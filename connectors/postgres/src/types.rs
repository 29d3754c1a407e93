//! PostgreSQL types the connector maps, and their Arrow types (the table in the README).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};

/// How a `numeric` column is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumericMapping {
    /// Decimal128(precision, scale).
    Decimal { precision: u8, scale: i8 },
    /// Utf8, the exact decimal text.
    Text,
}

/// A PostgreSQL type the connector decodes from the binary COPY format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric(NumericMapping),
    /// text, varchar, bpchar, name, citext-like text types and enums: UTF-8 in binary form.
    Text,
    Json,
    /// jsonb: a version byte (1) followed by the JSON text.
    Jsonb,
    Bytea,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Interval,
    Uuid,
    /// One-dimensional array of a scalar type.
    Array(Box<PgType>),
}

/// The unconstrained-numeric decimal mapping.
pub(crate) const UNCONSTRAINED_DECIMAL: NumericMapping = NumericMapping::Decimal {
    precision: 38,
    scale: 10,
};

impl PgType {
    /// The Arrow type of a column of this type.
    pub(crate) fn arrow_type(&self) -> DataType {
        match self {
            Self::Bool => DataType::Boolean,
            Self::Int2 => DataType::Int16,
            Self::Int4 => DataType::Int32,
            Self::Int8 => DataType::Int64,
            Self::Float4 => DataType::Float32,
            Self::Float8 => DataType::Float64,
            Self::Numeric(NumericMapping::Decimal { precision, scale }) => {
                DataType::Decimal128(*precision, *scale)
            }
            Self::Numeric(NumericMapping::Text)
            | Self::Text
            | Self::Json
            | Self::Jsonb
            | Self::Uuid => DataType::Utf8,
            Self::Bytea => DataType::Binary,
            Self::Date => DataType::Date32,
            // A Delta Lake table has no time-of-day type: PostgreSQL's text form.
            Self::Time => DataType::Utf8,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Self::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Self::Interval => DataType::Struct(interval_fields()),
            Self::Array(elem) => {
                DataType::List(Arc::new(Field::new("item", elem.arrow_type(), true)))
            }
        }
    }

    /// Whether values of this type can be a resume key or a partition bound.
    pub(crate) fn key_kind(&self) -> Option<KeyKind> {
        match self {
            Self::Int2 | Self::Int4 | Self::Int8 => Some(KeyKind::Int),
            Self::Text | Self::Uuid | Self::Numeric(_) => Some(KeyKind::Text),
            Self::Date => Some(KeyKind::Date),
            Self::Timestamp => Some(KeyKind::Timestamp),
            Self::Timestamptz => Some(KeyKind::Timestamptz),
            _ => None,
        }
    }
}

/// How a key value is carried in a checkpoint (JSON) and rendered back into SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// An integer (JSON number).
    Int,
    /// Text the server parses (JSON string; an untyped literal takes the column's type).
    Text,
    /// Days since 1970-01-01 (JSON number).
    Date,
    /// Microseconds since 1970-01-01 00:00 (JSON number).
    Timestamp,
    /// Microseconds since 1970-01-01 00:00 UTC (JSON number).
    Timestamptz,
}

/// The fields of the interval struct: every component kept, nothing normalised. (Arrow's
/// `Interval(MonthDayNano)` would hold it too, but the Parquet writer cannot write it.)
pub(crate) fn interval_fields() -> Fields {
    Fields::from(vec![
        Field::new("months", DataType::Int32, false),
        Field::new("days", DataType::Int32, false),
        Field::new("microseconds", DataType::Int64, false),
    ])
}

/// Map a builtin type OID (scalar or array) to a [`PgType`]; `None` when the OID is not a
/// builtin the connector knows (enums and domains are resolved from the catalog).
pub(crate) fn builtin(oid: u32, typmod: i32, unconstrained: NumericMapping) -> Option<PgType> {
    Some(match oid {
        16 => PgType::Bool,
        17 => PgType::Bytea,
        19 | 25 | 1042 | 1043 => PgType::Text,
        20 => PgType::Int8,
        21 => PgType::Int2,
        23 => PgType::Int4,
        114 => PgType::Json,
        700 => PgType::Float4,
        701 => PgType::Float8,
        1082 => PgType::Date,
        1083 => PgType::Time,
        1114 => PgType::Timestamp,
        1184 => PgType::Timestamptz,
        1186 => PgType::Interval,
        1700 => PgType::Numeric(numeric_mapping(typmod, unconstrained)),
        2950 => PgType::Uuid,
        3802 => PgType::Jsonb,
        _ => {
            let elem = match oid {
                1000 => 16,
                1001 => 17,
                1003 => 19,
                1009 => 25,
                1014 => 1042,
                1015 => 1043,
                1016 => 20,
                1005 => 21,
                1007 => 23,
                199 => 114,
                1021 => 700,
                1022 => 701,
                1182 => 1082,
                1183 => 1083,
                1115 => 1114,
                1185 => 1184,
                1187 => 1186,
                1231 => 1700,
                2951 => 2950,
                3807 => 3802,
                _ => return None,
            };
            // An array column's typmod is its element's typmod.
            PgType::Array(Box::new(builtin(elem, typmod, unconstrained)?))
        }
    })
}

/// The mapping of `numeric` with type modifier `typmod`.
pub(crate) fn numeric_mapping(typmod: i32, unconstrained: NumericMapping) -> NumericMapping {
    if typmod < 4 {
        return unconstrained;
    }
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    // The scale is an 11-bit signed value since PostgreSQL 15 (negative scales).
    let scale = ((t & 0x7ff) ^ 0x400) - 0x400;
    // A Delta Lake decimal has 0 <= scale <= precision <= 38. numeric(p, s) with s < 0
    // holds integers of up to p - s digits (numeric(5,-2): multiples of 100 below 10^7):
    // Decimal128(p - s, 0). With s > p it holds fractions below 10^(p-s) with s digits
    // after the point (numeric(2,5): up to 0.00099): Decimal128(s, s). Both hold every
    // value exactly; whatever needs more than 38 digits is the exact text.
    let (precision, scale) = if scale < 0 {
        (precision - scale, 0)
    } else if scale > precision {
        (scale, scale)
    } else {
        (precision, scale)
    };
    if (1..=38).contains(&precision) && (0..=precision).contains(&scale) {
        NumericMapping::Decimal {
            precision: precision as u8,
            scale: scale as i8,
        }
    } else {
        NumericMapping::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_typmods() {
        // numeric(15,2) has typmod ((15 << 16) | 2) + 4.
        assert_eq!(
            numeric_mapping((15 << 16 | 2) + 4, NumericMapping::Text),
            NumericMapping::Decimal {
                precision: 15,
                scale: 2
            }
        );
        assert_eq!(
            numeric_mapping(-1, NumericMapping::Text),
            NumericMapping::Text
        );
        assert_eq!(
            numeric_mapping((50 << 16) + 4, UNCONSTRAINED_DECIMAL),
            NumericMapping::Text
        );
        // numeric(5,-2): scale stored as 11-bit two's complement; integers of up to 7
        // digits, a Delta-valid Decimal128(7, 0).
        assert_eq!(
            numeric_mapping((5 << 16 | (0x800 - 2)) + 4, NumericMapping::Text),
            NumericMapping::Decimal {
                precision: 7,
                scale: 0
            }
        );
        // numeric(2,5): fractions up to 0.00099, Decimal128(5, 5).
        assert_eq!(
            numeric_mapping((2 << 16 | 5) + 4, NumericMapping::Text),
            NumericMapping::Decimal {
                precision: 5,
                scale: 5
            }
        );
        // numeric(37,-2) needs 39 digits; numeric(10,40) 40: the exact text.
        assert_eq!(
            numeric_mapping((37 << 16 | (0x800 - 2)) + 4, UNCONSTRAINED_DECIMAL),
            NumericMapping::Text
        );
        assert_eq!(
            numeric_mapping((10 << 16 | 40) + 4, UNCONSTRAINED_DECIMAL),
            NumericMapping::Text
        );
    }
}
