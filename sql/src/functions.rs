//! Window functions for training curves and counters, where DataFusion has none:
//!
//! - `smooth(value, weight) OVER (… ORDER BY step)`: TensorBoard's debiased exponential moving
//!   average (`last = last·w + (1−w)·x`, divided by `1 − w^n` so early points are not pulled
//!   towards zero); non-finite points pass through unsmoothed, as TensorBoard shows them.
//! - `counter_rate(value, timestamp) OVER (… ORDER BY timestamp)`: per-second increase since the
//!   previous row, counter-aware (a drop is a reset: the increase is the new value); NULL for a
//!   partition's first row.
//! - `lttb(timestamp, value, n) OVER (… ORDER BY timestamp)`: whether the row is one of the `n`
//!   points largest-triangle-three-buckets keeps for plotting (`… WHERE keep`); with `n` ≥ the
//!   partition's rows, or `n` < 3, every row is kept.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type, TimeUnit};
use datafusion::error::Result;
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{
    PartitionEvaluator, Signature, Volatility, WindowUDF, WindowUDFImpl,
};

/// Every function of this module, to register in a session.
pub fn window_functions() -> Vec<WindowUDF> {
    vec![
        MlWindow::udf("smooth", 2, DataType::Float64, || Box::new(SmoothEval)),
        MlWindow::udf("counter_rate", 2, DataType::Float64, || {
            Box::new(CounterRateEval)
        }),
        MlWindow::udf("lttb", 3, DataType::Boolean, || Box::new(LttbEval)),
    ]
}

/// One of this module's window functions: a name, its arity, its output type, and the
/// evaluator that computes a whole partition at once. Equal by name (names are unique).
#[derive(Debug)]
struct MlWindow {
    name: &'static str,
    signature: Signature,
    output: DataType,
    evaluator: fn() -> Box<dyn PartitionEvaluator>,
}

impl PartialEq for MlWindow {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for MlWindow {}

impl std::hash::Hash for MlWindow {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl MlWindow {
    fn udf(
        name: &'static str,
        arity: usize,
        output: DataType,
        evaluator: fn() -> Box<dyn PartitionEvaluator>,
    ) -> WindowUDF {
        WindowUDF::new_from_impl(MlWindow {
            name,
            signature: Signature::any(arity, Volatility::Immutable),
            output,
            evaluator,
        })
    }
}

impl WindowUDFImpl for MlWindow {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        Ok((self.evaluator)())
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            field_args.name(),
            self.output.clone(),
            true,
        )))
    }
}

fn floats(a: &ArrayRef) -> Result<Float64Array> {
    Ok(cast(a, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

#[derive(Debug)]
struct SmoothEval;

impl PartitionEvaluator for SmoothEval {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let xs = floats(&values[0])?;
        let ws = floats(&values[1])?;
        let w = if ws.is_empty() || ws.is_null(0) {
            0.0
        } else {
            ws.value(0)
        };
        let w = if w.is_finite() {
            w.clamp(0.0, 0.999_999)
        } else {
            0.0
        };
        let mut last = 0.0;
        let mut n = 0i32;
        let out: Float64Array = (0..num_rows)
            .map(|i| {
                if xs.is_null(i) {
                    return None;
                }
                let x = xs.value(i);
                if !x.is_finite() {
                    return Some(x);
                }
                last = last * w + (1.0 - w) * x;
                n += 1;
                Some(last / (1.0 - w.powi(n)))
            })
            .collect();
        Ok(Arc::new(out))
    }
}

#[derive(Debug)]
struct CounterRateEval;

/// Milliseconds from a timestamp (any unit) or a number of seconds.
fn millis(a: &ArrayRef) -> Result<Vec<Option<f64>>> {
    Ok(match a.data_type() {
        DataType::Timestamp(_, tz) => {
            let ms = cast(a, &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()))?;
            let ms = cast(&ms, &DataType::Int64)?;
            ms.as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map(|v| v as f64))
                .collect()
        }
        _ => floats(a)?.iter().map(|v| v.map(|s| s * 1000.0)).collect(),
    })
}

impl PartitionEvaluator for CounterRateEval {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let vs = floats(&values[0])?;
        let ts = millis(&values[1])?;
        let mut prev: Option<(f64, f64)> = None;
        let out: Float64Array = (0..num_rows)
            .map(|i| {
                let (Some(t), false) = (ts[i], vs.is_null(i)) else {
                    return None;
                };
                let v = vs.value(i);
                let rate = prev.and_then(|(pt, pv)| {
                    let dt = (t - pt) / 1000.0;
                    let inc = if v >= pv { v - pv } else { v };
                    (dt > 0.0).then(|| inc / dt)
                });
                prev = Some((t, v));
                rate
            })
            .collect();
        Ok(Arc::new(out))
    }
}

#[derive(Debug)]
struct LttbEval;

impl PartitionEvaluator for LttbEval {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let xs: Vec<f64> = millis(&values[0])?
            .into_iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect();
        let ys = floats(&values[1])?;
        let ys: Vec<f64> = (0..num_rows)
            .map(|i| if ys.is_null(i) { f64::NAN } else { ys.value(i) })
            .collect();
        let ns = floats(&values[2])?;
        let n = if ns.is_empty() || ns.is_null(0) {
            0
        } else {
            ns.value(0).max(0.0) as usize
        };
        Ok(Arc::new(BooleanArray::from(lttb_keep(&xs, &ys, n))))
    }
}

/// Which of the points largest-triangle-three-buckets keeps (Steinarsson 2013): the first and
/// the last, and in each of `n − 2` buckets the point making the largest triangle with the
/// point kept before it and the average of the next bucket.
pub fn lttb_keep(xs: &[f64], ys: &[f64], n: usize) -> Vec<bool> {
    let len = xs.len();
    if n >= len || n < 3 {
        return vec![true; len];
    }
    let mut keep = vec![false; len];
    keep[0] = true;
    keep[len - 1] = true;
    let every = (len - 2) as f64 / (n - 2) as f64;
    let mut a = 0;
    for i in 0..n - 2 {
        let (next_start, next_end) = (
            ((i + 1) as f64 * every) as usize + 1,
            (((i + 2) as f64 * every) as usize + 1).min(len),
        );
        let span = (next_end - next_start).max(1) as f64;
        let (avg_x, avg_y) = (next_start..next_end).fold((0.0, 0.0), |(sx, sy), j| {
            (sx + xs[j] / span, sy + ys[j] / span)
        });
        let (start, end) = (
            (i as f64 * every) as usize + 1,
            ((i + 1) as f64 * every) as usize + 1,
        );
        let mut best = start;
        let mut best_area = -1.0;
        for j in start..end.min(len - 1) {
            let area =
                ((xs[a] - avg_x) * (ys[j] - ys[a]) - (xs[a] - xs[j]) * (avg_y - ys[a])).abs();
            if area > best_area {
                best_area = area;
                best = j;
            }
        }
        keep[best] = true;
        a = best;
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lttb_keeps_the_ends_and_the_extremes() {
        // A flat line with one spike: the spike survives downsampling to 3 points.
        let xs: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let mut ys = vec![0.0; 10];
        ys[6] = 100.0;
        let keep = lttb_keep(&xs, &ys, 3);
        let kept: Vec<usize> = (0..10).filter(|i| keep[*i]).collect();
        assert_eq!(kept, [0, 6, 9]);
        // Enough room: everything stays.
        assert!(lttb_keep(&xs, &ys, 10).iter().all(|k| *k));
        assert_eq!(lttb_keep(&xs, &ys, 5).iter().filter(|k| **k).count(), 5);
    }
}
