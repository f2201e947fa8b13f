//! Scalars per step (`1`, `time()`), `scalar(v)`, and `count_values`.

use foldhash::{HashMap, HashMapExt};

use datafusion::arrow::array::RecordBatch;

use super::input::{
    Sample, VectorBuilder, decode_hist, for_each_sample, for_each_vector_row, scalar_batch,
};
use super::{Param, Steps};
use crate::error::Result;
use crate::functions::format_float;
use crate::labelset::{self, Grouping};

/// A scalar at every step.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StepsOp {
    /// The same number everywhere.
    Value(Steps, Param),
    /// `time()`: the step's time in seconds.
    Time(Steps),
}

impl StepsOp {
    pub(super) fn evaluate(&self) -> Result<RecordBatch> {
        match self {
            StepsOp::Value(steps, v) => scalar_batch(steps, vec![v.0; steps.len()]),
            StepsOp::Time(steps) => {
                scalar_batch(steps, steps.iter().map(|t| t as f64 / 1000.0).collect())
            }
        }
    }
}

/// `scalar(v)`: the value of the only element at each step, NaN if there are none or many.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScalarOfOp {
    pub steps: Steps,
}

impl ScalarOfOp {
    pub(super) fn evaluate(&self, input: &[RecordBatch]) -> Result<RecordBatch> {
        let mut values = vec![f64::NAN; self.steps.len()];
        let mut counts = vec![0u32; self.steps.len()];
        for_each_vector_row(input, |_, t, v| {
            if let Some(i) = self.steps.index(t) {
                counts[i] += 1;
                values[i] = if counts[i] == 1 { v } else { f64::NAN };
            }
        });
        scalar_batch(&self.steps, values)
    }
}

/// `count_values("label", v)`: per group and step, how many elements have each value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CountValuesOp {
    pub label: String,
    pub grouping: Grouping,
}

impl CountValuesOp {
    pub(super) fn evaluate(&self, input: &[RecordBatch]) -> Result<RecordBatch> {
        let mut counts: HashMap<(i64, Vec<u8>), f64> = HashMap::new();
        let mut order = Vec::new();
        let mut key = Vec::new();
        let mut failed = None;
        // A histogram's value is its text form (Prometheus's `FloatHistogram.String`).
        for_each_sample(input, |l, t, v| {
            let value = match v {
                Sample::Float(f) => format_float(f),
                Sample::Hist(h) => match decode_hist(h) {
                    Ok(h) => h.to_string(),
                    Err(e) => {
                        failed.get_or_insert(e);
                        return;
                    }
                },
            };
            self.grouping.key(l, &mut key);
            let labels = labelset::set(&key, &self.label, &value);
            *counts.entry((t, labels)).or_insert_with_key(|k| {
                order.push(k.clone());
                0.0
            }) += 1.0;
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let mut out = VectorBuilder::default();
        for k in order {
            out.push(&k.1, k.0, counts[&k]);
        }
        out.finish()
    }
}
