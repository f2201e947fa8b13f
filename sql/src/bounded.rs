//! DataFusion's functions whose answer can be far larger than their arguments, bounded.
//!
//! `repeat('x', 2000000000)`, `lpad('', 2000000000)`, `array_repeat(1, 2000000000)`,
//! `range(3000000000)` and `array_resize([1], 2000000000)` each build one value of gigabytes
//! inside one call: the memory pool does not see it (only operators reserve memory), and the
//! query's deadline cannot stop it (the call never yields). Each is registered again under its
//! own name as [`Bounded`], which estimates the call's output from its arguments first and
//! refuses one past [`MAX_OUTPUT`] with a resources error (422) naming the function.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use datafusion::prelude::SessionContext;

/// Most elements (or bytes, for strings) one call may produce across its batch.
pub const MAX_OUTPUT: u64 = 64 << 20;

/// How a function's output grows with its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: the length of `s` times `n`.
    Repeat,
    /// `lpad(s, n, …)`, `rpad`: `n` characters (up to four bytes each).
    Pad,
    /// `array_repeat(e, n)`: `n` times the size of `e` (its length when it is a list).
    ArrayRepeat,
    /// `array_resize(a, n, …)`: `n`.
    Resize,
    /// `range(stop)`, `range(start, stop[, step])`, `generate_series`: the integers between.
    Range,
}

/// A function with the output bound.
#[derive(Debug)]
pub struct Bounded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
}

impl PartialEq for Bounded {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner && self.growth == other.growth
    }
}

impl Eq for Bounded {}

impl Hash for Bounded {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
        self.growth.hash(state);
    }
}

/// Registers the bounded versions over the session's own functions of the same names.
pub fn register(ctx: &SessionContext) {
    let state = ctx.state();
    let functions = state.scalar_functions();
    for (name, growth) in [
        ("repeat", Growth::Repeat),
        ("lpad", Growth::Pad),
        ("rpad", Growth::Pad),
        ("array_repeat", Growth::ArrayRepeat),
        ("array_resize", Growth::Resize),
        ("range", Growth::Range),
        ("generate_series", Growth::Range),
    ] {
        if let Some(inner) = functions.get(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
                inner: inner.clone(),
                growth,
            }));
        }
    }
}

/// Each row's value of argument `i` as an integer (`None`: null, or not a number).
fn ints(args: &[ColumnarValue], i: usize, rows: usize) -> Result<Vec<Option<i64>>> {
    let Some(arg) = args.get(i) else {
        return Ok(vec![None; rows]);
    };
    let array: ArrayRef = arg.to_array(rows)?;
    if !array.data_type().is_integer() && !array.data_type().is_floating() {
        return Ok(vec![None; rows]);
    }
    let array = cast(&array, &DataType::Int64)?;
    let a = array.as_primitive::<Int64Type>();
    Ok((0..rows)
        .map(|r| a.is_valid(r).then(|| a.value(r)))
        .collect())
}

/// Each row's size of argument `i`: a string's bytes, a list's elements, else one.
fn sizes(args: &[ColumnarValue], i: usize, rows: usize) -> Result<Vec<u64>> {
    let Some(arg) = args.get(i) else {
        return Ok(vec![1; rows]);
    };
    if let ColumnarValue::Scalar(s) = arg {
        let size = match s {
            ScalarValue::Utf8(Some(v))
            | ScalarValue::LargeUtf8(Some(v))
            | ScalarValue::Utf8View(Some(v)) => v.len() as u64,
            ScalarValue::List(l) if !l.is_empty() => l.value_length(0) as u64,
            ScalarValue::LargeList(l) if !l.is_empty() => l.value_length(0) as u64,
            _ => 1,
        };
        return Ok(vec![size; rows]);
    }
    let array = arg.to_array(rows)?;
    let out = match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            (0..rows).map(|r| a.value(r).len() as u64).collect()
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            (0..rows).map(|r| a.value(r).len() as u64).collect()
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            (0..rows).map(|r| a.value(r).len() as u64).collect()
        }
        DataType::List(_) => {
            let a = array.as_list::<i32>();
            (0..rows).map(|r| a.value_length(r) as u64).collect()
        }
        DataType::LargeList(_) => {
            let a = array.as_list::<i64>();
            (0..rows).map(|r| a.value_length(r) as u64).collect()
        }
        _ => vec![1; rows],
    };
    Ok(out)
}

impl Bounded {
    /// The call's output, estimated from its arguments (saturating).
    fn estimate(&self, args: &[ColumnarValue], rows: usize) -> Result<u64> {
        let count = |v: Option<i64>| v.map_or(0, |n| n.max(0) as u64);
        let total = match self.growth {
            Growth::Repeat | Growth::ArrayRepeat => {
                let (unit, n) = (sizes(args, 0, rows)?, ints(args, 1, rows)?);
                unit.iter().zip(n).fold(0u64, |acc, (u, n)| {
                    acc.saturating_add(u.max(&1).saturating_mul(count(n)))
                })
            }
            Growth::Pad => ints(args, 1, rows)?.into_iter().fold(0u64, |acc, n| {
                acc.saturating_add(count(n).saturating_mul(4))
            }),
            Growth::Resize => ints(args, 1, rows)?
                .into_iter()
                .fold(0u64, |acc, n| acc.saturating_add(count(n))),
            Growth::Range => {
                let (a, b, c) = (
                    ints(args, 0, rows)?,
                    ints(args, 1, rows)?,
                    ints(args, 2, rows)?,
                );
                let mut total = 0u64;
                for r in 0..rows {
                    let (start, stop, step) = if args.len() == 1 {
                        (Some(0), a[r], Some(1))
                    } else {
                        (a[r], b[r], c[r].or(Some(1)))
                    };
                    // Non-integer ranges (dates, timestamps) are not estimated.
                    let (Some(start), Some(stop), Some(step)) = (start, stop, step) else {
                        continue;
                    };
                    let span = (stop as i128 - start as i128).unsigned_abs();
                    let n = span / (step as i128).unsigned_abs().max(1) + 1;
                    total = total.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
                }
                total
            }
        };
        Ok(total)
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let estimate = self.estimate(&args.args, args.number_rows.max(1))?;
        if estimate > MAX_OUTPUT {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{}() would build about {estimate} elements or bytes in one call; Quiver's SQL allows at most {MAX_OUTPUT}",
                self.inner.name()
            )));
        }
        self.inner.invoke_with_args(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn functions_that_would_build_huge_values_are_refused_and_small_ones_work() {
        let ctx = SessionContext::new();
        register(&ctx);
        for sql in [
            "SELECT repeat('x', 2000000000)",
            "SELECT lpad('', 2000000000)",
            "SELECT rpad('a', 2000000000, 'b')",
            "SELECT array_repeat(1, 2000000000)",
            "SELECT array_repeat(array_repeat(1, 10000), 10000)",
            "SELECT array_resize([1], 2000000000)",
            "SELECT range(3000000000)",
            "SELECT generate_series(-9223372036854775807, 9223372036854775807)",
            "SELECT repeat('xx', v) FROM (VALUES (40000000), (1)) AS t(v)",
        ] {
            let e = match ctx.sql(sql).await {
                Err(e) => e,
                Ok(df) => df.collect().await.expect_err(sql),
            };
            assert!(e.to_string().contains("allows at most"), "{sql}: {e}");
        }
        for (sql, want) in [
            ("SELECT length(repeat('ab', 3))", "6"),
            ("SELECT lpad('7', 3, '0')", "007"),
            ("SELECT cardinality(array_repeat(1, 5))", "5"),
            ("SELECT cardinality(range(10))", "10"),
            ("SELECT cardinality(generate_series(1, 10, 3))", "4"),
        ] {
            let b = ctx.sql(sql).await.unwrap().collect().await.unwrap();
            let got =
                datafusion::arrow::util::display::array_value_to_string(b[0].column(0), 0).unwrap();
            assert_eq!(got, want, "{sql}");
        }
    }
}
