//! Window functions for training curves and counters, where DataFusion has none:
//!
//! - `smooth(value, weight) OVER (… ORDER BY step)`: TensorBoard's debiased exponential moving
//!   average (`last = last·w + (1−w)·x`, divided by `1 − w^n` so early points are not pulled
//!   towards zero); non-finite points pass through unsmoothed, as TensorBoard shows them.
//! - `counter_rate(value, timestamp) OVER (… ORDER BY timestamp)`: per-second increase since the
//!   previous row, counter-aware (a drop is a reset: the increase is the new value); NULL for a
//!   partition's first row.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
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
        WindowUDF::new_from_impl(Smooth::new()),
        WindowUDF::new_from_impl(CounterRate::new()),
    ]
}

fn floats(a: &ArrayRef) -> Result<Float64Array> {
    Ok(cast(a, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Smooth {
    signature: Signature,
}

impl Smooth {
    pub fn new() -> Self {
        Smooth {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl Default for Smooth {
    fn default() -> Self {
        Self::new()
    }
}

impl WindowUDFImpl for Smooth {
    fn name(&self) -> &str {
        "smooth"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(SmoothEval))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            field_args.name(),
            DataType::Float64,
            true,
        )))
    }
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

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CounterRate {
    signature: Signature,
}

impl CounterRate {
    pub fn new() -> Self {
        CounterRate {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl Default for CounterRate {
    fn default() -> Self {
        Self::new()
    }
}

impl WindowUDFImpl for CounterRate {
    fn name(&self) -> &str {
        "counter_rate"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(CounterRateEval))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            field_args.name(),
            DataType::Float64,
            true,
        )))
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
