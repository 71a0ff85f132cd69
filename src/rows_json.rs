//! Result rows as JSON objects with typed values: numbers as numbers, booleans as booleans,
//! times as RFC 3339 text in UTC, everything else as Arrow's display text. Used by
//! `freshet results --json` and the HTTP results endpoint, so both give the same shape.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, TimeUnit};
use freshet_engine::source::fmt_ms;
use serde_json::{Map, Number, Value};

/// Every row of `batch` as a JSON object keyed by column name.
pub fn rows(batch: &RecordBatch) -> anyhow::Result<Vec<Value>> {
    let schema = batch.schema();
    let columns: Vec<Vec<Value>> = batch
        .columns()
        .iter()
        .map(|c| column(c.as_ref()))
        .collect::<anyhow::Result<_>>()?;
    Ok((0..batch.num_rows())
        .map(|i| {
            let mut row = Map::with_capacity(columns.len());
            for (field, values) in schema.fields().iter().zip(&columns) {
                row.insert(field.name().clone(), values[i].clone());
            }
            Value::Object(row)
        })
        .collect())
}

fn column(array: &dyn Array) -> anyhow::Result<Vec<Value>> {
    macro_rules! ints {
        ($t:ty) => {
            array
                .as_primitive::<$t>()
                .iter()
                .map(|v| v.map_or(Value::Null, |v| Value::from(v)))
                .collect()
        };
    }
    macro_rules! floats {
        ($t:ty) => {
            array
                .as_primitive::<$t>()
                .iter()
                .map(|v| {
                    v.and_then(|v| Number::from_f64(f64::from(v)))
                        .map_or(Value::Null, Value::Number)
                })
                .collect()
        };
    }
    Ok(match array.data_type() {
        DataType::Int8 => ints!(Int8Type),
        DataType::Int16 => ints!(Int16Type),
        DataType::Int32 => ints!(Int32Type),
        DataType::Int64 => ints!(Int64Type),
        DataType::UInt8 => ints!(UInt8Type),
        DataType::UInt16 => ints!(UInt16Type),
        DataType::UInt32 => ints!(UInt32Type),
        DataType::UInt64 => ints!(UInt64Type),
        DataType::Float32 => floats!(Float32Type),
        DataType::Float64 => floats!(Float64Type),
        DataType::Boolean => array
            .as_boolean()
            .iter()
            .map(|v| v.map_or(Value::Null, Value::Bool))
            .collect(),
        DataType::Timestamp(..) => {
            let ms = arrow_cast::cast(array, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
            ms.as_primitive::<arrow_array::types::TimestampMillisecondType>()
                .iter()
                .map(|v| v.map_or(Value::Null, |v| Value::String(fmt_ms(v))))
                .collect()
        }
        _ => {
            let options = FormatOptions::default();
            let f = ArrayFormatter::try_new(array, &options)?;
            (0..array.len())
                .map(|i| {
                    if array.is_null(i) {
                        Value::Null
                    } else {
                        Value::String(f.value(i).to_string())
                    }
                })
                .collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        BooleanArray, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use std::sync::Arc;

    #[test]
    fn values_keep_their_types() {
        let batch = RecordBatch::try_from_iter(vec![
            ("n", Arc::new(Int64Array::from(vec![Some(7), None])) as _),
            ("x", Arc::new(Float64Array::from(vec![1.5, f64::NAN])) as _),
            ("b", Arc::new(BooleanArray::from(vec![true, false])) as _),
            ("s", Arc::new(StringArray::from(vec!["a", "b"])) as _),
            (
                "t",
                Arc::new(TimestampMillisecondArray::from(vec![10_000, 0])) as _,
            ),
        ])
        .unwrap();
        let rows = rows(&batch).unwrap();
        assert_eq!(
            rows[0],
            serde_json::json!({"n": 7, "x": 1.5, "b": true, "s": "a", "t": "1970-01-01T00:00:10.000Z"})
        );
        assert_eq!(rows[1]["n"], Value::Null);
        assert_eq!(rows[1]["x"], Value::Null, "NaN has no JSON number");
    }
}
