//! Values given as text, converted to a stream column's type, with why each one that does
//! not convert is wrong. CSV reads every field this way; NDJSON reads integer and decimal
//! columns this way (arrow-json hands over the JSON number's own text), so that both
//! formats take and refuse the same values:
//!
//! - integers: whole numbers in any notation (`7`, `-7`, `7.0`, `2e3`), refused with a
//!   fraction (`1.5`, `1e-20`) or out of the column's range, exactly (no float on the way);
//! - timestamps: RFC 3339 or integer epoch milliseconds;
//! - decimals and the rest: Arrow's cast, a decimal's text first checked to be short
//!   enough for Arrow's parser (whose digit and exponent counters overflow on absurd input).

use crate::def::ColumnDef;
use crate::error::Result;
use arrow_array::types::{Int8Type, Int16Type, Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, PrimitiveArray, StringArray, TimestampMillisecondArray,
};
use arrow_cast::cast::{CastOptions, cast_with_options};
use arrow_schema::{DataType, TimeUnit};
use std::sync::Arc;

/// Longest decimal text handed to Arrow's parser.
const DECIMAL_TEXT_MAX: usize = 80;

/// `text` as `col`'s type, and per row why its value is wrong (`None` where it converted
/// or was NULL).
pub(crate) fn convert(
    col: &ColumnDef,
    text: &StringArray,
) -> Result<(ArrayRef, Vec<Option<String>>)> {
    let mut wrong: Vec<Option<String>> = vec![None; text.len()];
    let converted: ArrayRef = match &col.data_type {
        DataType::Int8 => integers::<Int8Type>(col, text, &mut wrong),
        DataType::Int16 => integers::<Int16Type>(col, text, &mut wrong),
        DataType::Int32 => integers::<Int32Type>(col, text, &mut wrong),
        DataType::Int64 => integers::<Int64Type>(col, text, &mut wrong),
        DataType::Timestamp(TimeUnit::Millisecond, tz) => {
            let values: TimestampMillisecondArray = text
                .iter()
                .map(|v| v.and_then(parse_timestamp_ms))
                .collect();
            Arc::new(values.with_timezone_opt(tz.clone()))
        }
        DataType::Decimal128(..) => {
            // Too long for Arrow's parser to count safely: refused before it sees it.
            let safe: StringArray = text
                .iter()
                .map(|v| v.filter(|s| decimal_text_fits(s)))
                .collect();
            cast(&safe, &col.data_type)?
        }
        other => cast(text, other)?,
    };
    for (row, slot) in wrong.iter_mut().enumerate() {
        if slot.is_none() && text.is_valid(row) && converted.is_null(row) {
            *slot = Some(format!(
                "column `{}`: cannot read {:?} as {}",
                col.name,
                text.value(row),
                col.sql_type
            ));
        }
    }
    Ok((converted, wrong))
}

fn cast(text: &StringArray, to: &DataType) -> Result<ArrayRef> {
    let options = CastOptions {
        safe: true,
        ..CastOptions::default()
    };
    Ok(cast_with_options(text, to, &options)?)
}

/// `text` as integers of `T`, noting in `wrong` the values that are not whole numbers in
/// `T`'s range.
fn integers<T>(col: &ColumnDef, text: &StringArray, wrong: &mut [Option<String>]) -> ArrayRef
where
    T: ArrowPrimitiveType,
    T::Native: TryFrom<i128>,
{
    let values: PrimitiveArray<T> = text
        .iter()
        .zip(wrong.iter_mut())
        .map(|(value, slot)| {
            let value = value?;
            let why = match whole(value) {
                Whole::Value(v) => match T::Native::try_from(v) {
                    Ok(v) => return Some(v),
                    Err(_) => "is out of range for",
                },
                Whole::OutOfRange => "is out of range for",
                Whole::Fraction => "is not a whole number, so not a",
                Whole::NotANumber => {
                    *slot = Some(format!(
                        "column `{}`: {value:?} is not a number, so not a {}",
                        col.name, col.sql_type
                    ));
                    return None;
                }
            };
            *slot = Some(format!(
                "column `{}`: {value} {why} {}",
                col.name, col.sql_type
            ));
            None
        })
        .collect();
    Arc::new(values)
}

/// The whole number `s` writes, read as integer columns read it; None for a fraction,
/// for text that is not a number, or beyond 128 bits.
pub(super) fn whole_number(s: &str) -> Option<i128> {
    match whole(s) {
        Whole::Value(v) => Some(v),
        _ => None,
    }
}

/// What a number's text holds.
#[derive(Debug, PartialEq, Eq)]
enum Whole {
    /// A whole number.
    Value(i128),
    /// A number with a fraction.
    Fraction,
    /// A whole number beyond 128 bits.
    OutOfRange,
    /// Not a number: empty, letters, spaces.
    NotANumber,
}

/// The number written in `s` (an optional sign, digits with an optional point, an optional
/// exponent), if it is whole; exactly, whatever the notation.
fn whole(s: &str) -> Whole {
    let b = s.as_bytes();
    let (negative, b) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let digits_end = |from: usize| {
        b[from..]
            .iter()
            .position(|c| !c.is_ascii_digit())
            .map_or(b.len(), |p| from + p)
    };
    let int_end = digits_end(0);
    let (int, mut i) = (&b[..int_end], int_end);
    let mut frac: &[u8] = &[];
    if b.get(i) == Some(&b'.') {
        let end = digits_end(i + 1);
        frac = &b[i + 1..end];
        i = end;
    }
    if int.is_empty() && frac.is_empty() {
        return Whole::NotANumber;
    }
    let mut exp: i64 = 0;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let sign = match b.get(i) {
            Some(b'-') => {
                i += 1;
                -1
            }
            Some(b'+') => {
                i += 1;
                1
            }
            _ => 1,
        };
        let end = digits_end(i);
        if end == i {
            return Whole::NotANumber;
        }
        // Beyond any 128-bit value either way: saturate rather than overflow.
        exp = b[i..end]
            .iter()
            .try_fold(0i64, |e, d| {
                e.checked_mul(10)?.checked_add(i64::from(d - b'0'))
            })
            .map_or(i64::MAX / 2, |e| e.min(i64::MAX / 2))
            * sign;
        i = end;
    }
    if i != b.len() {
        return Whole::NotANumber;
    }
    // The digits of int and frac, one after the other; the value is them times
    // 10^(exp - frac.len()).
    let total = int.len() + frac.len();
    let digit = |k: usize| match k < int.len() {
        true => int[k],
        false => frac[k - int.len()],
    };
    let Some(first) = (0..total).find(|&k| digit(k) != b'0') else {
        return Whole::Value(0);
    };
    let shift = exp - frac.len() as i64;
    let end = if shift >= 0 {
        total
    } else {
        // The last -shift digits are after the point: all zeros, or a fraction.
        let cut = usize::try_from(-shift).unwrap_or(usize::MAX);
        if cut > total - first || (total - cut..total).any(|k| digit(k) != b'0') {
            return Whole::Fraction;
        }
        total - cut
    };
    let mut value: i128 = 0;
    for k in first..end {
        let Some(v) = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(digit(k) - b'0')))
        else {
            return Whole::OutOfRange;
        };
        value = v;
    }
    if shift > 0 {
        let Some(v) = u32::try_from(shift)
            .ok()
            .and_then(|s| 10i128.checked_pow(s))
            .and_then(|p| value.checked_mul(p))
        else {
            return Whole::OutOfRange;
        };
        value = v;
    }
    Whole::Value(if negative { -value } else { value })
}

/// Whether a decimal's text is short enough for Arrow's parser: at most
/// [`DECIMAL_TEXT_MAX`] characters and an exponent of at most four digits.
fn decimal_text_fits(s: &str) -> bool {
    let exponent = s
        .find(['e', 'E'])
        .map(|at| s[at + 1..].trim_start_matches(['-', '+']).len());
    s.len() <= DECIMAL_TEXT_MAX && exponent.is_none_or(|digits| digits <= 4)
}

/// An RFC 3339 timestamp or integer epoch milliseconds.
pub(crate) fn parse_timestamp_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    arrow_cast::parse::string_to_datetime(&chrono_utc(), s)
        .ok()
        .map(|d| d.timestamp_millis())
}

fn chrono_utc() -> arrow_array::timezone::Tz {
    "+00:00".parse().expect("UTC offset parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_in_any_notation_and_nothing_else() {
        for (text, value) in [
            ("7", 7),
            ("-7", -7),
            ("+7", 7),
            ("007", 7),
            ("7.0", 7),
            ("7.", 7),
            ("2e3", 2000),
            ("2E+3", 2000),
            ("2.50e1", 25),
            ("1200e-2", 12),
            ("-0", 0),
            ("0.000", 0),
            ("0e999999999999999999999", 0),
            ("9223372036854775808", 9_223_372_036_854_775_808),
        ] {
            assert_eq!(whole(text), Whole::Value(value), "{text}");
        }
        for text in [
            "1.5",
            "-0.25",
            "1e-20",
            "7.00000000001",
            "1.0000000000000002",
            "5e-1",
        ] {
            assert_eq!(whole(text), Whole::Fraction, "{text}");
        }
        let huge = format!("1{}", "0".repeat(300));
        for text in [huge.as_str(), "1e39", "1e65536", "1e99999999999999999999"] {
            assert_eq!(whole(text), Whole::OutOfRange, "{text}");
        }
        for text in [
            "", "-", "x", " 7", "7 ", "1e", "1e+", ".", "1.2.3", "0x10", "true",
        ] {
            assert_eq!(whole(text), Whole::NotANumber, "{text:?}");
        }
    }

    #[test]
    fn decimal_text_too_long_for_arrow_is_refused_before_it() {
        assert!(decimal_text_fits("12.50"));
        assert!(decimal_text_fits("1.5e-3"));
        assert!(!decimal_text_fits("1e65536"));
        assert!(!decimal_text_fits(&"9".repeat(300)));
    }
}
