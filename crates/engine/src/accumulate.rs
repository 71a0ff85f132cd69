//! Incremental aggregate state: `COUNT`, `SUM`, `AVG` (each also of `DISTINCT` values),
//! `MIN`, `MAX`, and the variances and standard deviations.
//!
//! DataFusion's accumulators emit and reset their state in one call and cannot evict one
//! window's groups out of the middle of their tables, which is what a streaming operator
//! does all day. These accumulators are small values that can be read without being reset,
//! merged (session windows merge), encoded into a checkpoint and decoded again. DataFusion
//! still computes their arguments (and has already coerced them: `AVG` sees `Float64`, `SUM`
//! sees `Int64`, `UInt64` or `Float64`); the result types are checked against DataFusion's
//! plan when a view is compiled, so streaming and batch produce the same types.
//!
//! `MIN`/`MAX`/`COUNT(DISTINCT)` keep values in Arrow's row format, whose byte order is the
//! value order: one comparison for every type.
//!
//! Over rows that change (an aggregate of an unbounded GROUP BY's rows, of an outer join's),
//! a [`AggSpec::retracting`] spec's accumulators can also take a value back: counts and
//! sums by subtraction (a sum keeps how many values it holds, so that it turns NULL again
//! when the last goes), `MIN`/`MAX`/`COUNT(DISTINCT)` by a multiset of the values. Float
//! sums and averages ([`FloatTally`]) sum with a compensation term, so that taking a large
//! value back does not lose the small ones added after it, and count infinities and NaNs
//! apart, so that taking one back leaves the finite sum.
//!
//! `SUM(DISTINCT)` and `AVG(DISTINCT)` count each value's occurrences ([`Acc::Gated`]) and
//! add a value to their sum when its first occurrence arrives, take it out when its last
//! goes. Variances keep Welford's count, mean and sum of squared deviations
//! ([`Moments`]), updated, taken back and merged with the same formulas as DataFusion's:
//! a streaming run and a batch run add the values in other orders, so they agree to
//! rounding.

use crate::error::{EngineError, Result, unsupported};
use arrow_array::builder::LargeStringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{ArrowPrimitiveType, Float32Type, Float64Type, Int64Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, ArrowNativeTypeOp, BooleanArray, Float64Array, Int64Array, ListArray,
    PrimitiveArray, UInt64Array, new_null_array,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{DataType, Field, SortOptions};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    /// `COUNT(x)`: non-null values.
    Count,
    /// `COUNT(DISTINCT x)`.
    CountDistinct,
    /// `SUM(x)`.
    Sum,
    /// `AVG(x)`.
    Avg,
    /// `MIN(x)`.
    Min,
    /// `MAX(x)`.
    Max,
    /// `FIRST_VALUE(x ORDER BY k)` and `LAST_VALUE(x ORDER BY k)` (the first in the reversed
    /// order): the argument is a struct of the `ORDER BY` values and `x`, ordered in the
    /// direction given (one for all keys), and the accumulator keeps the least, as `MIN`
    /// does; its last field is the result.
    First {
        /// The order is descending.
        descending: bool,
        /// NULL `ORDER BY` values come first.
        nulls_first: bool,
    },
    /// `MEDIAN(x)` (DataFusion makes an integer argument a double): the middle value held,
    /// or the mean of the two middle ones.
    Median,
    /// `ARRAY_AGG(x ORDER BY k, ...)` and `STRING_AGG(x, delimiter ORDER BY k, ...)`: every
    /// value held, in the order given. The argument is the struct of the `ORDER BY` values
    /// and `x`, as for `First`; the accumulator keeps a count of each.
    Collect {
        /// The order is descending.
        descending: bool,
        /// NULL `ORDER BY` values come first.
        nulls_first: bool,
        /// `DISTINCT`: each struct once.
        distinct: bool,
        /// `STRING_AGG`: the non-NULL values joined by [`AggSpec::joined_by`]'s delimiter,
        /// not a list.
        joined: bool,
    },
    /// `SUM(DISTINCT x)`.
    SumDistinct,
    /// `AVG(DISTINCT x)`.
    AvgDistinct,
    /// `VAR_SAMP(x)` (`VAR`), `VAR_POP(x)`, `STDDEV_SAMP(x)` (`STDDEV`),
    /// `STDDEV_POP(x)`.
    Variance {
        /// Of the population (divided by n), not of a sample (n - 1).
        population: bool,
        /// Its square root: the standard deviation.
        root: bool,
    },
}

impl AggKind {
    /// How SQL spells it, for errors.
    pub fn sql_name(self) -> &'static str {
        match self {
            AggKind::Count => "COUNT",
            AggKind::CountDistinct => "COUNT(DISTINCT)",
            AggKind::Sum => "SUM",
            AggKind::Avg => "AVG",
            AggKind::Min => "MIN",
            AggKind::Max => "MAX",
            AggKind::First { .. } => "FIRST_VALUE or LAST_VALUE",
            AggKind::Median => "MEDIAN",
            AggKind::Collect { joined: false, .. } => "ARRAY_AGG",
            AggKind::Collect { joined: true, .. } => "STRING_AGG",
            AggKind::SumDistinct => "SUM(DISTINCT)",
            AggKind::AvgDistinct => "AVG(DISTINCT)",
            AggKind::Variance {
                population: false,
                root: false,
            } => "VAR_SAMP",
            AggKind::Variance {
                population: true,
                root: false,
            } => "VAR_POP",
            AggKind::Variance {
                population: false,
                root: true,
            } => "STDDEV_SAMP",
            AggKind::Variance {
                population: true,
                root: true,
            } => "STDDEV_POP",
        }
    }
}

/// One aggregate of an operator: its function, argument type and result type.
pub struct AggSpec {
    /// The function.
    pub kind: AggKind,
    /// The argument's type (after DataFusion's coercion).
    pub arg_type: DataType,
    /// The result's type.
    pub out_type: DataType,
    rows: Option<RowConverter>,
    null_row: Box<[u8]>,
    /// Its accumulators can take values back ([`AggSpec::retract`]).
    retracts: bool,
    /// `STRING_AGG`'s delimiter.
    delimiter: String,
}

impl AggSpec {
    /// Check that `kind` over `arg_type` gives DataFusion's `expected` result type.
    pub fn new(kind: AggKind, arg_type: DataType, expected: &DataType) -> Result<AggSpec> {
        let out_type = match (kind, &arg_type) {
            (AggKind::Count | AggKind::CountDistinct, _) => DataType::Int64,
            (
                AggKind::Sum | AggKind::SumDistinct,
                DataType::Int64 | DataType::UInt64 | DataType::Float64,
            ) => arg_type.clone(),
            (AggKind::Avg | AggKind::AvgDistinct | AggKind::Variance { .. }, DataType::Float64) => {
                DataType::Float64
            }
            (AggKind::Min | AggKind::Max, t)
                if RowConverter::supports_fields(&[SortField::new(t.clone())]) =>
            {
                t.clone()
            }
            (AggKind::Median, DataType::Float32 | DataType::Float64) => arg_type.clone(),
            (AggKind::First { .. } | AggKind::Collect { .. }, DataType::Struct(fields))
                if RowConverter::supports_fields(&[SortField::new(arg_type.clone())]) =>
            {
                let last = fields
                    .last()
                    .ok_or_else(|| EngineError::Bug("an empty struct".into()))?
                    .data_type()
                    .clone();
                match kind {
                    AggKind::Collect { joined: true, .. } => DataType::LargeUtf8,
                    AggKind::Collect { joined: false, .. } => {
                        DataType::List(Arc::new(Field::new_list_field(last, true)))
                    }
                    _ => last,
                }
            }
            (k, t) => {
                // FIRST_VALUE's argument is the struct of its ORDER BY values and x.
                let t = match t {
                    DataType::Struct(fields) => fields
                        .iter()
                        .map(|f| f.data_type().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    t => t.to_string(),
                };
                return Err(unsupported(format!("{} over {t}", k.sql_name())));
            }
        };
        if &out_type != expected {
            return Err(unsupported(format!(
                "{} over {arg_type} gives {expected} in DataFusion",
                kind.sql_name()
            )));
        }
        let (rows, null_row) = match kind {
            AggKind::Min
            | AggKind::Max
            | AggKind::CountDistinct
            | AggKind::First { .. }
            | AggKind::Collect { .. }
            | AggKind::Median => {
                let options = match kind {
                    AggKind::First {
                        descending,
                        nulls_first,
                    }
                    | AggKind::Collect {
                        descending,
                        nulls_first,
                        ..
                    } => SortOptions {
                        descending,
                        nulls_first,
                    },
                    _ => SortOptions::default(),
                };
                let field = SortField::new_with_options(arg_type.clone(), options);
                let conv = RowConverter::new(vec![field])?;
                let null = conv.convert_columns(&[new_null_array(&arg_type, 1)])?;
                let null_row: Box<[u8]> = null.row(0).as_ref().into();
                (Some(conv), null_row)
            }
            _ => (None, Box::default()),
        };
        Ok(AggSpec {
            kind,
            arg_type,
            out_type,
            rows,
            null_row,
            retracts: false,
            delimiter: String::new(),
        })
    }

    /// The same `STRING_AGG`, joining values with `delimiter`.
    pub fn joined_by(self, delimiter: String) -> AggSpec {
        AggSpec { delimiter, ..self }
    }

    /// The same aggregate, with accumulators that can take values back.
    pub fn retracting(self) -> AggSpec {
        AggSpec {
            retracts: true,
            ..self
        }
    }

    /// Whether it keeps the least value held (`MIN`, `FIRST_VALUE`), not the greatest.
    fn keeps_least(&self) -> bool {
        matches!(self.kind, AggKind::Min | AggKind::First { .. })
    }

    /// A fresh accumulator.
    pub fn init(&self) -> Acc {
        match (self.kind, &self.arg_type) {
            (AggKind::Variance { .. }, _) => return Acc::Moments(Moments::default()),
            // Every value is kept, whether or not values are taken back.
            (AggKind::Median | AggKind::Collect { .. }, _) => return Acc::Bag(BTreeMap::new()),
            (AggKind::SumDistinct | AggKind::AvgDistinct, t) => {
                let tally = match t {
                    DataType::Int64 => Acc::TallyI(0, 0),
                    DataType::UInt64 => Acc::TallyU(0, 0),
                    _ => Acc::Floats(FloatTally::default()),
                };
                return Acc::Gated(HashMap::new(), Box::new(tally));
            }
            _ => {}
        }
        if self.retracts {
            return match (self.kind, &self.arg_type) {
                (AggKind::Count, _) => Acc::Count(0),
                (AggKind::Sum, DataType::Int64) => Acc::TallyI(0, 0),
                (AggKind::Sum, DataType::UInt64) => Acc::TallyU(0, 0),
                (AggKind::Sum | AggKind::Avg, _) => Acc::Floats(FloatTally::default()),
                (
                    AggKind::Min | AggKind::Max | AggKind::CountDistinct | AggKind::First { .. },
                    _,
                ) => Acc::Bag(BTreeMap::new()),
                _ => unreachable!("initialised above"),
            };
        }
        match (self.kind, &self.arg_type) {
            (AggKind::Count, _) => Acc::Count(0),
            (AggKind::CountDistinct, _) => Acc::Distinct(HashSet::new()),
            (AggKind::Sum, DataType::Int64) => Acc::SumI(0, false),
            (AggKind::Sum, DataType::UInt64) => Acc::SumU(0, false),
            (AggKind::Sum, _) => Acc::SumF(0.0, false),
            (AggKind::Avg, _) => Acc::Avg(0.0, 0),
            (AggKind::Min | AggKind::Max | AggKind::First { .. }, _) => Acc::Best(None),
            _ => unreachable!("initialised above"),
        }
    }

    /// Row-format bytes of `arg`, for the kinds that keep values.
    pub fn encode_values(&self, arg: &ArrayRef) -> Result<Option<arrow_row::Rows>> {
        Ok(match &self.rows {
            Some(conv) => Some(conv.convert_columns(std::slice::from_ref(arg))?),
            None => None,
        })
    }

    /// Fold row `i` of `arg` into `acc`. `values` is `encode_values(arg)`.
    #[inline]
    pub fn update(
        &self,
        acc: &mut Acc,
        arg: &ArrayRef,
        values: Option<&arrow_row::Rows>,
        i: usize,
    ) -> usize {
        if arg.is_null(i) {
            return 0;
        }
        match acc {
            Acc::Count(n) => {
                *n += 1;
                0
            }
            Acc::SumI(s, seen) => {
                *s = s.wrapping_add(arg.as_primitive::<Int64Type>().value(i));
                *seen = true;
                0
            }
            Acc::SumU(s, seen) => {
                *s = s.wrapping_add(arg.as_primitive::<UInt64Type>().value(i));
                *seen = true;
                0
            }
            Acc::SumF(s, seen) => {
                *s += arg.as_primitive::<Float64Type>().value(i);
                *seen = true;
                0
            }
            Acc::Avg(s, n) => {
                *s += arg.as_primitive::<Float64Type>().value(i);
                *n += 1;
                0
            }
            Acc::Best(best) => {
                let v = values.expect("MIN/MAX values are encoded").row(i);
                let better = match best {
                    None => true,
                    Some(b) if self.keeps_least() => v.as_ref() < &b[..],
                    Some(b) => v.as_ref() > &b[..],
                };
                if better {
                    let grew = v
                        .as_ref()
                        .len()
                        .saturating_sub(best.as_ref().map_or(0, |b| b.len()));
                    *best = Some(v.as_ref().into());
                    grew
                } else {
                    0
                }
            }
            Acc::Distinct(set) => {
                let v = values.expect("distinct values are encoded").row(i);
                if set.contains(v.as_ref()) {
                    0
                } else {
                    set.insert(v.as_ref().into());
                    v.as_ref().len() + 32
                }
            }
            Acc::TallyI(s, n) => {
                *s = s.wrapping_add(arg.as_primitive::<Int64Type>().value(i));
                *n += 1;
                0
            }
            Acc::TallyU(s, n) => {
                *s = s.wrapping_add(arg.as_primitive::<UInt64Type>().value(i));
                *n += 1;
                0
            }
            Acc::Floats(t) => {
                t.add(arg.as_primitive::<Float64Type>().value(i), 1);
                0
            }
            Acc::Bag(bag) => {
                let v = values.expect("kept values are encoded").row(i);
                match bag.get_mut(v.as_ref()) {
                    Some(c) => {
                        *c += 1;
                        0
                    }
                    None => {
                        bag.insert(v.as_ref().into(), 1);
                        v.as_ref().len() + BAG_ENTRY_BYTES
                    }
                }
            }
            Acc::Gated(seen, tally) => {
                let v = number_bits(arg, i);
                let c = seen.entry(v).or_insert(0);
                *c += 1;
                if *c == 1 {
                    tally_add(tally, v, 1);
                    GATE_ENTRY_BYTES
                } else {
                    0
                }
            }
            Acc::Moments(m) => {
                m.add(arg.as_primitive::<Float64Type>().value(i));
                0
            }
        }
    }

    /// Take row `i` of `arg`, folded in before, back out of `acc` (a [`AggSpec::retracting`]
    /// spec's); returns the heap bytes this frees.
    pub fn retract(
        &self,
        acc: &mut Acc,
        arg: &ArrayRef,
        values: Option<&arrow_row::Rows>,
        i: usize,
    ) -> usize {
        if arg.is_null(i) {
            return 0;
        }
        match acc {
            Acc::Count(n) => *n -= 1,
            Acc::Floats(t) => t.add(arg.as_primitive::<Float64Type>().value(i), -1),
            Acc::TallyI(s, n) => {
                *s = s.wrapping_sub(arg.as_primitive::<Int64Type>().value(i));
                *n -= 1;
            }
            Acc::TallyU(s, n) => {
                *s = s.wrapping_sub(arg.as_primitive::<UInt64Type>().value(i));
                *n -= 1;
            }
            Acc::Bag(bag) => {
                let v = values.expect("kept values are encoded").row(i);
                if let Some(c) = bag.get_mut(v.as_ref()) {
                    *c -= 1;
                    if *c == 0 {
                        bag.remove(v.as_ref());
                        return v.as_ref().len() + BAG_ENTRY_BYTES;
                    }
                }
            }
            Acc::Gated(seen, tally) => {
                let v = number_bits(arg, i);
                if let Some(c) = seen.get_mut(&v) {
                    *c -= 1;
                    if *c == 0 {
                        seen.remove(&v);
                        tally_add(tally, v, -1);
                        return GATE_ENTRY_BYTES;
                    }
                }
            }
            Acc::Moments(m) => m.take_back(arg.as_primitive::<Float64Type>().value(i)),
            Acc::SumI(..)
            | Acc::SumU(..)
            | Acc::SumF(..)
            | Acc::Avg(..)
            | Acc::Best(_)
            | Acc::Distinct(_) => {
                unreachable!("only a retracting spec's accumulators take values back")
            }
        }
        0
    }

    /// Merge `other` into `acc` (both from this spec).
    pub fn merge(&self, acc: &mut Acc, other: Acc) {
        match (acc, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::SumI(a, sa), Acc::SumI(b, sb)) => {
                *a = a.wrapping_add(b);
                *sa |= sb;
            }
            (Acc::SumU(a, sa), Acc::SumU(b, sb)) => {
                *a = a.wrapping_add(b);
                *sa |= sb;
            }
            (Acc::SumF(a, sa), Acc::SumF(b, sb)) => {
                *a += b;
                *sa |= sb;
            }
            (Acc::Avg(a, n), Acc::Avg(b, m)) => {
                *a += b;
                *n += m;
            }
            (Acc::Best(a), Acc::Best(b)) => {
                if let Some(b) = b {
                    let better = match a {
                        None => true,
                        Some(x) if self.keeps_least() => b < *x,
                        Some(x) => b > *x,
                    };
                    if better {
                        *a = Some(b);
                    }
                }
            }
            (Acc::Distinct(a), Acc::Distinct(b)) => a.extend(b),
            (Acc::TallyI(a, n), Acc::TallyI(b, m)) => {
                *a = a.wrapping_add(b);
                *n += m;
            }
            (Acc::TallyU(a, n), Acc::TallyU(b, m)) => {
                *a = a.wrapping_add(b);
                *n += m;
            }
            (Acc::Floats(a), Acc::Floats(b)) => a.merge(&b),
            (Acc::Bag(a), Acc::Bag(b)) => {
                for (v, c) in b {
                    *a.entry(v).or_insert(0) += c;
                }
            }
            (Acc::Gated(a, tally), Acc::Gated(b, _)) => {
                for (v, c) in b {
                    let held = a.entry(v).or_insert(0);
                    if *held == 0 {
                        tally_add(tally, v, 1);
                    }
                    *held += c;
                }
            }
            (Acc::Moments(a), Acc::Moments(b)) => a.merge(&b),
            _ => unreachable!("accumulators of one spec have one variant"),
        }
    }

    /// The results of `accs` as one array of `out_type`.
    pub fn evaluate<'a>(&self, accs: impl Iterator<Item = &'a Acc>) -> Result<ArrayRef> {
        // A DISTINCT sum or average is its distinct values' sum or average.
        let accs = accs.map(|a| match a {
            Acc::Gated(_, tally) => tally.as_ref(),
            a => a,
        });
        Ok(match self.kind {
            AggKind::Count => Arc::new(Int64Array::from_iter_values(accs.map(|a| match a {
                Acc::Count(n) => *n,
                _ => 0,
            }))),
            AggKind::CountDistinct => {
                Arc::new(Int64Array::from_iter_values(accs.map(|a| match a {
                    Acc::Distinct(s) => s.len() as i64,
                    Acc::Bag(b) => b.len() as i64,
                    _ => 0,
                })))
            }
            AggKind::Sum | AggKind::SumDistinct => match self.out_type {
                DataType::Int64 => Arc::new(Int64Array::from_iter(accs.map(|a| match a {
                    Acc::SumI(s, true) => Some(*s),
                    Acc::TallyI(s, n) if *n > 0 => Some(*s),
                    _ => None,
                }))),
                DataType::UInt64 => Arc::new(UInt64Array::from_iter(accs.map(|a| match a {
                    Acc::SumU(s, true) => Some(*s),
                    Acc::TallyU(s, n) if *n > 0 => Some(*s),
                    _ => None,
                }))),
                _ => Arc::new(Float64Array::from_iter(accs.map(|a| match a {
                    Acc::SumF(s, true) => Some(*s),
                    Acc::Floats(t) => t.sum(),
                    _ => None,
                }))),
            },
            AggKind::Variance { population, root } => {
                Arc::new(Float64Array::from_iter(accs.map(|a| {
                    match a {
                        Acc::Moments(m) => m
                            .variance(population)
                            .map(|v| if root { v.sqrt() } else { v }),
                        _ => None,
                    }
                })))
            }
            AggKind::Avg | AggKind::AvgDistinct => {
                Arc::new(Float64Array::from_iter(accs.map(|a| match a {
                    Acc::Avg(s, n) if *n > 0 => Some(*s / *n as f64),
                    Acc::Floats(t) => t.sum().map(|s| s / t.n as f64),
                    _ => None,
                })))
            }
            AggKind::Min | AggKind::Max | AggKind::First { .. } => {
                let conv = self.rows.as_ref().expect("MIN/MAX have a row converter");
                let parser = conv.parser();
                let bytes: Vec<&[u8]> = accs
                    .map(|a| match a {
                        Acc::Best(Some(b)) => &b[..],
                        Acc::Bag(bag) => {
                            let best = if self.keeps_least() {
                                bag.first_key_value()
                            } else {
                                bag.last_key_value()
                            };
                            best.map_or(&self.null_row[..], |(v, _)| &v[..])
                        }
                        _ => &self.null_row[..],
                    })
                    .collect();
                let mut cols = conv.convert_rows(bytes.iter().map(|b| parser.parse(b)))?;
                let best = cols.pop().expect("one column");
                match self.kind {
                    AggKind::First { .. } => last_field(&best)?,
                    _ => best,
                }
            }
            AggKind::Collect {
                distinct, joined, ..
            } => {
                let conv = self.rows.as_ref().expect("ARRAY_AGG has a row converter");
                let parser = conv.parser();
                // Every group's values in order, and where each group's end.
                let mut held = Vec::new();
                let mut ends = Vec::new();
                for acc in accs {
                    if let Acc::Bag(bag) = acc {
                        for (v, &c) in bag {
                            let times = if distinct { 1 } else { c };
                            held.extend(std::iter::repeat_n(parser.parse(v), times as usize));
                        }
                    }
                    ends.push(held.len());
                }
                let structs = conv.convert_rows(held)?.pop().expect("one column");
                let values = structs
                    .as_struct()
                    .columns()
                    .last()
                    .ok_or_else(|| EngineError::Bug("an empty struct".into()))?
                    .clone();
                match joined {
                    true => joined_strings(&values, &ends, &self.delimiter)?,
                    false => lists(values, &ends)?,
                }
            }
            AggKind::Median => {
                let conv = self.rows.as_ref().expect("MEDIAN has a row converter");
                let parser = conv.parser();
                let (mut low, mut high, mut odd) = (Vec::new(), Vec::new(), Vec::new());
                for acc in accs {
                    let (l, h, one) = match acc {
                        Acc::Bag(bag) => middle(bag),
                        _ => None,
                    }
                    .unwrap_or((&self.null_row[..], &self.null_row[..], true));
                    odd.push(one);
                    low.push(parser.parse(l));
                    high.push(parser.parse(h));
                }
                let low = conv.convert_rows(low)?.pop().expect("one column");
                let high = conv.convert_rows(high)?.pop().expect("one column");
                midpoints(&low, &high, &odd)?
            }
        })
    }
}

/// `values` cut into one list per group, group `g`'s ending at `ends[g]` (NULL for a group
/// without values, as `ARRAY_AGG` over no rows gives).
fn lists(values: ArrayRef, ends: &[usize]) -> Result<ArrayRef> {
    let mut offsets = Vec::with_capacity(ends.len() + 1);
    offsets.push(0i32);
    let mut valid = Vec::with_capacity(ends.len());
    for &end in ends {
        let start = *offsets.last().expect("one offset") as usize;
        valid.push(end > start);
        offsets.push(i32::try_from(end).map_err(|_| {
            EngineError::ResourceLimit("an ARRAY_AGG result over 2^31 values".into())
        })?);
    }
    let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
    Ok(Arc::new(ListArray::try_new(
        field,
        OffsetBuffer::new(offsets.into()),
        values,
        Some(NullBuffer::from(valid)),
    )?))
}

/// Per group (ending at `ends[g]` in `values`), its non-NULL strings joined by
/// `delimiter`; NULL where it has none (as DataFusion's `STRING_AGG`).
fn joined_strings(values: &ArrayRef, ends: &[usize], delimiter: &str) -> Result<ArrayRef> {
    let values = arrow_cast::cast(values, &DataType::LargeUtf8)?;
    let values = values.as_string::<i64>();
    let mut start = 0;
    let mut out = LargeStringBuilder::new();
    for &end in ends {
        let parts: Vec<&str> = (start..end)
            .filter(|&i| values.is_valid(i))
            .map(|i| values.value(i))
            .collect();
        match parts.is_empty() {
            true => out.append_null(),
            false => out.append_value(parts.join(delimiter)),
        }
        start = end;
    }
    Ok(Arc::new(out.finish()))
}

/// The middle value of a multiset (twice, and `true`: it holds an odd number), or its two
/// middle values (and `false`); `None` when it is empty.
fn middle(bag: &BTreeMap<Box<[u8]>, u64>) -> Option<(&[u8], &[u8], bool)> {
    let held: u64 = bag.values().sum();
    if held == 0 {
        return None;
    }
    // The 0-based ranks of the middle values.
    let (lo, hi) = ((held - 1) / 2, held / 2);
    let mut seen = 0;
    let mut low = None;
    for (v, c) in bag {
        seen += c;
        if low.is_none() && seen > lo {
            low = Some(&v[..]);
        }
        if seen > hi {
            return low.map(|l| (l, &v[..], held % 2 == 1));
        }
    }
    None
}

/// Per row, `low` where `odd` (one middle value), else the mean of `low` and `high` as
/// DataFusion's `MEDIAN` computes it: `(low + high) / 2` in their own precision.
fn midpoints(low: &ArrayRef, high: &ArrayRef, odd: &[bool]) -> Result<ArrayRef> {
    fn mid<T: ArrowPrimitiveType>(low: &ArrayRef, high: &ArrayRef, odd: &[bool]) -> ArrayRef {
        let (l, h) = (low.as_primitive::<T>(), high.as_primitive::<T>());
        let two = T::Native::ONE.add_wrapping(T::Native::ONE);
        Arc::new(PrimitiveArray::<T>::from_iter((0..odd.len()).map(|i| {
            (!l.is_null(i)).then(|| match odd[i] {
                true => l.value(i),
                false => l.value(i).add_wrapping(h.value(i)).div_wrapping(two),
            })
        })))
    }
    Ok(match low.data_type() {
        DataType::Float32 => mid::<Float32Type>(low, high, odd),
        DataType::Float64 => mid::<Float64Type>(low, high, odd),
        t => return Err(EngineError::Bug(format!("MEDIAN over {t}"))),
    })
}

/// One group's state for one aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum Acc {
    /// Count so far.
    Count(i64),
    /// Integer sum and whether any value was seen.
    SumI(i64, bool),
    /// Unsigned sum and whether any value was seen.
    SumU(u64, bool),
    /// Float sum and whether any value was seen.
    SumF(f64, bool),
    /// Sum and count of an average.
    Avg(f64, i64),
    /// The best value so far in row format.
    Best(Option<Box<[u8]>>),
    /// Distinct values in row format.
    Distinct(HashSet<Box<[u8]>>),
    /// A retracting integer sum and how many values it holds.
    TallyI(i64, i64),
    /// A retracting unsigned sum and how many values it holds.
    TallyU(u64, i64),
    /// A retracting float sum or average.
    Floats(FloatTally),
    /// A retracting `MIN`/`MAX`/`COUNT(DISTINCT)`: each value in row format, and how many
    /// times it is held.
    Bag(BTreeMap<Box<[u8]>, u64>),
    /// `SUM(DISTINCT)`, `AVG(DISTINCT)`: how many times each value (its bits,
    /// [`number_bits`]) is held, and the sum of the distinct values (a `TallyI`, `TallyU`
    /// or `Floats`).
    Gated(HashMap<u64, u64>, Box<Acc>),
    /// A variance's moments.
    Moments(Moments),
}

/// A `FIRST_VALUE`'s result: the last field of the struct it kept, NULL where the struct is
/// (a group that holds no row).
fn last_field(best: &ArrayRef) -> Result<ArrayRef> {
    let best = best.as_struct();
    let value = best
        .columns()
        .last()
        .ok_or_else(|| EngineError::Bug("an empty struct".into()))?;
    Ok(match best.nulls() {
        Some(nulls) => {
            arrow_select::nullif::nullif(value, &BooleanArray::new(!nulls.inner(), None))?
        }
        None => value.clone(),
    })
}

/// Approximate bytes of a [`Acc::Gated`] entry (a value, its count and the hash table's
/// spare room).
const GATE_ENTRY_BYTES: usize = 24;

/// A number's bits as a distinct value. Floats are told apart by their bits, as
/// DataFusion's `DISTINCT` sums tell them apart (0.0 and -0.0 are two values there).
fn number_bits(arg: &ArrayRef, i: usize) -> u64 {
    match arg.data_type() {
        DataType::Int64 => arg.as_primitive::<Int64Type>().value(i) as u64,
        DataType::UInt64 => arg.as_primitive::<UInt64Type>().value(i),
        _ => arg.as_primitive::<Float64Type>().value(i).to_bits(),
    }
}

/// Add a distinct value (`times` = 1) to a gated sum, or take it out (-1).
fn tally_add(tally: &mut Acc, v: u64, times: i64) {
    match tally {
        Acc::TallyI(s, n) => {
            *s = s.wrapping_add((v as i64).wrapping_mul(times));
            *n += times;
        }
        Acc::TallyU(s, n) => {
            *s = if times > 0 {
                s.wrapping_add(v)
            } else {
                s.wrapping_sub(v)
            };
            *n += times;
        }
        Acc::Floats(t) => t.add(f64::from_bits(v), times),
        _ => unreachable!("a gated sum's tally"),
    }
}

/// Welford's moments of the values held: how many, their mean and their sum of squared
/// deviations from it (as DataFusion's variance keeps them).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn add(&mut self, v: f64) {
        self.n += 1;
        let d1 = v - self.mean;
        self.mean += d1 / self.n as f64;
        self.m2 += d1 * (v - self.mean);
    }

    /// The inverse of [`Moments::add`]: taking the last value back leaves no moments.
    fn take_back(&mut self, v: f64) {
        if self.n <= 1 {
            *self = Moments::default();
            return;
        }
        self.n -= 1;
        let d1 = self.mean - v;
        self.mean += d1 / self.n as f64;
        self.m2 -= d1 * (self.mean - v);
    }

    /// Chan's formula for the moments of both sets.
    fn merge(&mut self, other: &Moments) {
        if other.n == 0 {
            return;
        }
        let n = self.n + other.n;
        let delta = self.mean - other.mean;
        self.mean = self.mean * self.n as f64 / n as f64 + other.mean * other.n as f64 / n as f64;
        self.m2 += other.m2 + delta * delta * self.n as f64 * other.n as f64 / n as f64;
        self.n = n;
    }

    /// The population's (`m2 / n`) or a sample's (`m2 / (n - 1)`) variance: NULL over no
    /// values, and a sample's over one; a population of one value has none (0). Rounding
    /// in taking values back can leave `m2` a hair below zero, where it is 0.
    fn variance(&self, population: bool) -> Option<f64> {
        match (self.n, population) {
            (0, _) | (1, false) => None,
            (1, true) => Some(0.0),
            (n, _) => {
                let divisor = if population { n } else { n - 1 };
                Some(self.m2.max(0.0) / divisor as f64)
            }
        }
    }
}

/// A float sum that values can be taken back from: the finite values' sum with a
/// compensation term (Neumaier's), and how many values, infinities and NaNs it holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FloatTally {
    sum: f64,
    compensation: f64,
    /// Values held (all of them, finite or not).
    n: i64,
    pos_inf: i64,
    neg_inf: i64,
    nan: i64,
}

impl FloatTally {
    /// Add `v` (`times` = 1) or take it back (`times` = -1).
    fn add(&mut self, v: f64, times: i64) {
        self.n += times;
        if v.is_nan() {
            self.nan += times;
        } else if v == f64::INFINITY {
            self.pos_inf += times;
        } else if v == f64::NEG_INFINITY {
            self.neg_inf += times;
        } else {
            self.add_finite(if times < 0 { -v } else { v });
        }
        if self.n == self.pos_inf + self.neg_inf + self.nan {
            // No finite value left: nothing of their sum may linger.
            self.sum = 0.0;
            self.compensation = 0.0;
        }
    }

    /// One step of Neumaier's compensated summation.
    fn add_finite(&mut self, x: f64) {
        let t = self.sum + x;
        if !t.is_finite() {
            // Overflowed: the sum is infinite as a plain sum is, with nothing to compensate.
            self.sum = t;
            return;
        }
        self.compensation += if self.sum.abs() >= x.abs() {
            (self.sum - t) + x
        } else {
            (x - t) + self.sum
        };
        self.sum = t;
    }

    fn merge(&mut self, other: &FloatTally) {
        self.add_finite(other.sum);
        self.add_finite(other.compensation);
        self.n += other.n;
        self.pos_inf += other.pos_inf;
        self.neg_inf += other.neg_inf;
        self.nan += other.nan;
    }

    /// The sum (NULL when it holds no value).
    fn sum(&self) -> Option<f64> {
        let sum = if self.nan > 0 || (self.pos_inf > 0 && self.neg_inf > 0) {
            f64::NAN
        } else if self.pos_inf > 0 {
            f64::INFINITY
        } else if self.neg_inf > 0 {
            f64::NEG_INFINITY
        } else if !self.sum.is_finite() {
            self.sum
        } else {
            self.sum + self.compensation
        };
        (self.n > 0).then_some(sum)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sum.to_le_bytes());
        out.extend_from_slice(&self.compensation.to_le_bytes());
        for c in [self.n, self.pos_inf, self.neg_inf, self.nan] {
            out.extend_from_slice(&c.to_le_bytes());
        }
    }

    fn decode(input: &mut &[u8]) -> Result<FloatTally> {
        let f = |input: &mut &[u8]| Ok::<_, EngineError>(f64::from_le_bytes(take8(input)?));
        let i = |input: &mut &[u8]| Ok::<_, EngineError>(i64::from_le_bytes(take8(input)?));
        Ok(FloatTally {
            sum: f(input)?,
            compensation: f(input)?,
            n: i(input)?,
            pos_inf: i(input)?,
            neg_inf: i(input)?,
            nan: i(input)?,
        })
    }
}

/// Approximate bytes of a multiset entry besides its value.
const BAG_ENTRY_BYTES: usize = 48;

impl Acc {
    /// Approximate heap bytes, for the state cap.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Acc::Best(Some(b)) => b.len(),
            Acc::Distinct(s) => s.iter().map(|v| v.len() + 32).sum(),
            Acc::Bag(b) => b.keys().map(|v| v.len() + BAG_ENTRY_BYTES).sum(),
            Acc::Gated(seen, _) => seen.len() * GATE_ENTRY_BYTES,
            _ => 0,
        }
    }

    /// Append a checkpoint encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Acc::Count(n) => {
                out.push(1);
                out.extend_from_slice(&n.to_le_bytes());
            }
            Acc::SumI(s, seen) => {
                out.push(2);
                out.extend_from_slice(&s.to_le_bytes());
                out.push(u8::from(*seen));
            }
            Acc::SumU(s, seen) => {
                out.push(3);
                out.extend_from_slice(&s.to_le_bytes());
                out.push(u8::from(*seen));
            }
            Acc::SumF(s, seen) => {
                out.push(4);
                out.extend_from_slice(&s.to_le_bytes());
                out.push(u8::from(*seen));
            }
            Acc::Avg(s, n) => {
                out.push(5);
                out.extend_from_slice(&s.to_le_bytes());
                out.extend_from_slice(&n.to_le_bytes());
            }
            Acc::Best(b) => {
                out.push(6);
                match b {
                    None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
                    Some(b) => put_bytes(out, b),
                }
            }
            Acc::Distinct(set) => {
                out.push(7);
                out.extend_from_slice(&(set.len() as u32).to_le_bytes());
                for v in set {
                    put_bytes(out, v);
                }
            }
            Acc::TallyI(s, n) => {
                out.push(8);
                out.extend_from_slice(&s.to_le_bytes());
                out.extend_from_slice(&n.to_le_bytes());
            }
            Acc::TallyU(s, n) => {
                out.push(9);
                out.extend_from_slice(&s.to_le_bytes());
                out.extend_from_slice(&n.to_le_bytes());
            }
            Acc::Floats(t) => {
                out.push(10);
                t.encode(out);
            }
            Acc::Bag(bag) => {
                out.push(11);
                out.extend_from_slice(&(bag.len() as u32).to_le_bytes());
                for (v, c) in bag {
                    put_bytes(out, v);
                    out.extend_from_slice(&c.to_le_bytes());
                }
            }
            Acc::Gated(seen, tally) => {
                out.push(12);
                out.extend_from_slice(&(seen.len() as u32).to_le_bytes());
                for (v, c) in seen {
                    out.extend_from_slice(&v.to_le_bytes());
                    out.extend_from_slice(&c.to_le_bytes());
                }
                tally.encode(out);
            }
            Acc::Moments(m) => {
                out.push(13);
                out.extend_from_slice(&m.n.to_le_bytes());
                out.extend_from_slice(&m.mean.to_le_bytes());
                out.extend_from_slice(&m.m2.to_le_bytes());
            }
        }
    }

    /// Decode one accumulator from the front of `input`.
    pub fn decode(input: &mut &[u8]) -> Result<Acc> {
        let tag = take(input, 1)?[0];
        Ok(match tag {
            1 => Acc::Count(i64::from_le_bytes(take8(input)?)),
            2 => Acc::SumI(i64::from_le_bytes(take8(input)?), take(input, 1)?[0] != 0),
            3 => Acc::SumU(u64::from_le_bytes(take8(input)?), take(input, 1)?[0] != 0),
            4 => Acc::SumF(f64::from_le_bytes(take8(input)?), take(input, 1)?[0] != 0),
            5 => Acc::Avg(
                f64::from_le_bytes(take8(input)?),
                i64::from_le_bytes(take8(input)?),
            ),
            6 => {
                let len = u32::from_le_bytes(take(input, 4)?.try_into().expect("4 bytes"));
                if len == u32::MAX {
                    Acc::Best(None)
                } else {
                    Acc::Best(Some(take(input, len as usize)?.into()))
                }
            }
            7 => {
                let n = u32::from_le_bytes(take(input, 4)?.try_into().expect("4 bytes"));
                let mut set = HashSet::with_capacity(n as usize);
                for _ in 0..n {
                    set.insert(get_bytes(input)?.into());
                }
                Acc::Distinct(set)
            }
            8 => Acc::TallyI(
                i64::from_le_bytes(take8(input)?),
                i64::from_le_bytes(take8(input)?),
            ),
            9 => Acc::TallyU(
                u64::from_le_bytes(take8(input)?),
                i64::from_le_bytes(take8(input)?),
            ),
            10 => Acc::Floats(FloatTally::decode(input)?),
            11 => {
                let n = u32::from_le_bytes(take(input, 4)?.try_into().expect("4 bytes"));
                let mut bag = BTreeMap::new();
                for _ in 0..n {
                    let v: Box<[u8]> = get_bytes(input)?.into();
                    bag.insert(v, u64::from_le_bytes(take8(input)?));
                }
                Acc::Bag(bag)
            }
            12 => {
                let n = u32::from_le_bytes(take(input, 4)?.try_into().expect("4 bytes"));
                let mut seen = HashMap::with_capacity(n as usize);
                for _ in 0..n {
                    let v = u64::from_le_bytes(take8(input)?);
                    seen.insert(v, u64::from_le_bytes(take8(input)?));
                }
                Acc::Gated(seen, Box::new(Acc::decode(input)?))
            }
            13 => Acc::Moments(Moments {
                n: u64::from_le_bytes(take8(input)?),
                mean: f64::from_le_bytes(take8(input)?),
                m2: f64::from_le_bytes(take8(input)?),
            }),
            other => {
                return Err(EngineError::Bug(format!(
                    "unknown accumulator tag {other} in a checkpoint"
                )));
            }
        })
    }
}

/// Append a length-prefixed byte string.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Read a length-prefixed byte string.
pub fn get_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8]> {
    let len = u32::from_le_bytes(take(input, 4)?.try_into().expect("4 bytes"));
    take(input, len as usize)
}

/// Take `n` bytes from the front of `input`.
pub fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if input.len() < n {
        return Err(EngineError::Bug("a checkpoint entry is truncated".into()));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

/// Take 8 bytes.
pub fn take8(input: &mut &[u8]) -> Result<[u8; 8]> {
    Ok(take(input, 8)?.try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringArray;

    fn fold(spec: &AggSpec, arg: ArrayRef) -> Acc {
        let mut acc = spec.init();
        let values = spec.encode_values(&arg).unwrap();
        for i in 0..arg.len() {
            spec.update(&mut acc, &arg, values.as_ref(), i);
        }
        acc
    }

    #[test]
    fn min_max_count_distinct_over_strings_skip_nulls() {
        let arg: ArrayRef = Arc::new(StringArray::from(vec![
            Some("b"),
            None,
            Some("a"),
            Some("b"),
        ]));
        let min = AggSpec::new(AggKind::Min, DataType::Utf8, &DataType::Utf8).unwrap();
        let max = AggSpec::new(AggKind::Max, DataType::Utf8, &DataType::Utf8).unwrap();
        let cd = AggSpec::new(AggKind::CountDistinct, DataType::Utf8, &DataType::Int64).unwrap();
        let m = fold(&min, arg.clone());
        let x = fold(&max, arg.clone());
        let d = fold(&cd, arg);
        let out = min.evaluate([&m].into_iter()).unwrap();
        assert_eq!(out.as_string::<i32>().value(0), "a");
        let out = max.evaluate([&x].into_iter()).unwrap();
        assert_eq!(out.as_string::<i32>().value(0), "b");
        let out = cd.evaluate([&d].into_iter()).unwrap();
        assert_eq!(out.as_primitive::<Int64Type>().value(0), 2);
    }

    #[test]
    fn merge_and_checkpoint_round_trip() {
        let avg = AggSpec::new(AggKind::Avg, DataType::Float64, &DataType::Float64).unwrap();
        let mut a = fold(&avg, Arc::new(Float64Array::from(vec![1.0, 2.0])));
        let b = fold(&avg, Arc::new(Float64Array::from(vec![6.0])));
        avg.merge(&mut a, b);
        let mut bytes = Vec::new();
        a.encode(&mut bytes);
        let back = Acc::decode(&mut &bytes[..]).unwrap();
        assert_eq!(back, a);
        let out = avg.evaluate([&back].into_iter()).unwrap();
        assert_eq!(out.as_primitive::<Float64Type>().value(0), 3.0);
    }

    fn retract_all(spec: &AggSpec, acc: &mut Acc, arg: ArrayRef) {
        let values = spec.encode_values(&arg).unwrap();
        for i in 0..arg.len() {
            spec.retract(acc, &arg, values.as_ref(), i);
        }
    }

    fn round_trip(acc: &Acc) -> Acc {
        let mut bytes = Vec::new();
        acc.encode(&mut bytes);
        let mut input = &bytes[..];
        let back = Acc::decode(&mut input).unwrap();
        assert!(input.is_empty(), "the encoding is read to its end");
        back
    }

    #[test]
    fn distinct_sums_count_each_value_once_until_its_last_copy_goes() {
        for retracting in [false, true] {
            let spec = |kind, t: DataType, out: DataType| {
                let spec = AggSpec::new(kind, t, &out).unwrap();
                if retracting { spec.retracting() } else { spec }
            };
            let sum = spec(AggKind::SumDistinct, DataType::Int64, DataType::Int64);
            let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(5), None, Some(5), Some(-2)]));
            let mut acc = fold(&sum, ints);
            let out = sum.evaluate([&round_trip(&acc)].into_iter()).unwrap();
            assert_eq!(out.as_primitive::<Int64Type>().value(0), 3);
            // Sessions merge: a value both hold counts once.
            let other = fold(&sum, Arc::new(Int64Array::from(vec![5, 7])));
            sum.merge(&mut acc, other);
            let out = sum.evaluate([&acc].into_iter()).unwrap();
            assert_eq!(out.as_primitive::<Int64Type>().value(0), 10);
            let avg = spec(AggKind::AvgDistinct, DataType::Float64, DataType::Float64);
            // 0.0 and -0.0 are two values, as in DataFusion.
            let floats = Arc::new(Float64Array::from(vec![1.0, 0.0, -0.0, 1.0, 4.0]));
            let mut acc = fold(&avg, floats);
            let out = avg.evaluate([&acc].into_iter()).unwrap();
            assert_eq!(out.as_primitive::<Float64Type>().value(0), 5.0 / 4.0);
            if retracting {
                // One 1.0 of two goes: still held; 4.0 goes: out of the average.
                retract_all(&avg, &mut acc, Arc::new(Float64Array::from(vec![1.0, 4.0])));
                let out = avg.evaluate([&round_trip(&acc)].into_iter()).unwrap();
                assert_eq!(out.as_primitive::<Float64Type>().value(0), 1.0 / 3.0);
                retract_all(
                    &avg,
                    &mut acc,
                    Arc::new(Float64Array::from(vec![1.0, -0.0, 0.0])),
                );
                let out = avg.evaluate([&acc].into_iter()).unwrap();
                assert!(out.is_null(0), "no value left: NULL");
            }
        }
    }

    #[test]
    fn variances_follow_welford_and_take_values_back() {
        let kind = |population, root| AggKind::Variance { population, root };
        let samp = AggSpec::new(kind(false, false), DataType::Float64, &DataType::Float64)
            .unwrap()
            .retracting();
        let pop_sd = AggSpec::new(kind(true, true), DataType::Float64, &DataType::Float64).unwrap();
        let values = || -> ArrayRef {
            Arc::new(Float64Array::from(vec![
                Some(2.0),
                None,
                Some(4.0),
                Some(9.0),
            ]))
        };
        let value = |spec: &AggSpec, acc: &Acc| {
            let out = spec.evaluate([acc].into_iter()).unwrap();
            (!out.is_null(0)).then(|| out.as_primitive::<Float64Type>().value(0))
        };
        let mut acc = fold(&samp, values());
        // Mean 5, squared deviations 9 + 1 + 16.
        assert_eq!(value(&samp, &round_trip(&acc)), Some(13.0));
        assert_eq!(
            value(&pop_sd, &fold(&pop_sd, values())),
            Some((26.0f64 / 3.0).sqrt())
        );
        // Merged from parts, as sessions are: the same moments.
        let mut part = fold(&samp, Arc::new(Float64Array::from(vec![2.0])));
        samp.merge(
            &mut part,
            fold(&samp, Arc::new(Float64Array::from(vec![4.0, 9.0]))),
        );
        assert_eq!(value(&samp, &part), Some(13.0));
        retract_all(
            &samp,
            &mut acc,
            Arc::new(Float64Array::from(vec![9.0, 2.0])),
        );
        assert_eq!(
            value(&samp, &acc),
            None,
            "a sample of one value has no variance"
        );
        assert_eq!(
            value(&pop_sd, &acc),
            Some(0.0),
            "a population of one has none either"
        );
        retract_all(&samp, &mut acc, Arc::new(Float64Array::from(vec![4.0])));
        assert_eq!(
            acc,
            samp.init(),
            "taking the last value back leaves nothing"
        );
        assert_eq!(value(&pop_sd, &acc), None);
        // Rounding in taking 0.1 back leaves m2 below zero: the variance is 0, not
        // negative, and its square root 0, not NaN.
        let pop = AggSpec::new(kind(true, false), DataType::Float64, &DataType::Float64)
            .unwrap()
            .retracting();
        let mut acc = fold(&pop, Arc::new(Float64Array::from(vec![0.1, 0.7, 0.7])));
        retract_all(&pop, &mut acc, Arc::new(Float64Array::from(vec![0.1])));
        assert_eq!(value(&pop, &acc), Some(0.0));
        assert_eq!(value(&pop_sd, &acc), Some(0.0));
    }

    #[test]
    fn retracting_accumulators_take_values_back_and_round_trip() {
        let arg: ArrayRef = Arc::new(Int64Array::from(vec![Some(5), Some(3), None, Some(5)]));
        let specs: Vec<AggSpec> = [
            AggKind::Sum,
            AggKind::Min,
            AggKind::Max,
            AggKind::CountDistinct,
            AggKind::Count,
        ]
        .into_iter()
        .map(|k| {
            AggSpec::new(k, DataType::Int64, &DataType::Int64)
                .unwrap()
                .retracting()
        })
        .collect();
        let value = |spec: &AggSpec, acc: &Acc| {
            let out = spec.evaluate([acc].into_iter()).unwrap();
            (!out.is_null(0)).then(|| out.as_primitive::<Int64Type>().value(0))
        };
        for spec in &specs {
            let mut acc = fold(spec, arg.clone());
            let values = spec.encode_values(&arg).unwrap();
            // Take the 5 at row 0 and the NULL back: one 5 and the 3 remain.
            spec.retract(&mut acc, &arg, values.as_ref(), 0);
            spec.retract(&mut acc, &arg, values.as_ref(), 2);
            let mut bytes = Vec::new();
            acc.encode(&mut bytes);
            let back = Acc::decode(&mut &bytes[..]).unwrap();
            assert_eq!(back, acc);
            let expected = match spec.kind {
                AggKind::Sum => 8,
                AggKind::Min => 3,
                AggKind::Max => 5,
                _ => 2,
            };
            assert_eq!(value(spec, &back), Some(expected), "{:?}", spec.kind);
            // Taking the rest back empties it: a sum, a minimum and a maximum are NULL.
            spec.retract(&mut acc, &arg, values.as_ref(), 1);
            spec.retract(&mut acc, &arg, values.as_ref(), 3);
            let empty = match spec.kind {
                AggKind::Count | AggKind::CountDistinct => Some(0),
                _ => None,
            };
            assert_eq!(value(spec, &acc), empty, "{:?}", spec.kind);
            assert_eq!(acc.heap_bytes(), 0);
        }
    }

    #[test]
    fn retracting_float_sums_keep_small_values_and_leave_infinities_behind() {
        let sum = AggSpec::new(AggKind::Sum, DataType::Float64, &DataType::Float64)
            .unwrap()
            .retracting();
        let avg = AggSpec::new(AggKind::Avg, DataType::Float64, &DataType::Float64)
            .unwrap()
            .retracting();
        let arg: ArrayRef = Arc::new(Float64Array::from(vec![1e17, 1.0, f64::INFINITY, 3.0]));
        let value = |spec: &AggSpec, acc: &Acc| {
            let out = spec.evaluate([acc].into_iter()).unwrap();
            (!out.is_null(0)).then(|| out.as_primitive::<Float64Type>().value(0))
        };
        for spec in [&sum, &avg] {
            let mut acc = fold(spec, arg.clone());
            assert_eq!(value(spec, &acc), Some(f64::INFINITY));
            // Taking the infinity and the large value back leaves 1 + 3 exactly.
            spec.retract(&mut acc, &arg, None, 2);
            spec.retract(&mut acc, &arg, None, 0);
            let mut bytes = Vec::new();
            acc.encode(&mut bytes);
            let back = Acc::decode(&mut &bytes[..]).unwrap();
            assert_eq!(back, acc);
            let expected = if spec.kind == AggKind::Sum { 4.0 } else { 2.0 };
            assert_eq!(value(spec, &back), Some(expected));
            spec.retract(&mut acc, &arg, None, 1);
            spec.retract(&mut acc, &arg, None, 3);
            assert_eq!(value(spec, &acc), None);
        }
    }

    #[test]
    fn a_retracting_float_sum_that_overflows_is_infinite() {
        let sum = AggSpec::new(AggKind::Sum, DataType::Float64, &DataType::Float64)
            .unwrap()
            .retracting();
        let acc = fold(&sum, Arc::new(Float64Array::from(vec![1e308, 1e308])));
        let out = sum.evaluate([&acc].into_iter()).unwrap();
        assert_eq!(out.as_primitive::<Float64Type>().value(0), f64::INFINITY);
    }

    #[test]
    fn empty_sum_is_null_and_wrong_types_are_refused() {
        let sum = AggSpec::new(AggKind::Sum, DataType::Int64, &DataType::Int64).unwrap();
        let out = sum.evaluate([&sum.init()].into_iter()).unwrap();
        assert!(out.is_null(0));
        assert!(AggSpec::new(AggKind::Avg, DataType::Utf8, &DataType::Float64).is_err());
    }
}
