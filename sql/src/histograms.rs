//! Scalar functions of a native histogram (the `histogram` column of the `histograms` table),
//! computed as PromQL computes its functions of the same names:
//!
//! - `histogram_count(h)`, `histogram_sum(h)`, `histogram_avg(h)`;
//! - `histogram_stddev(h)`, `histogram_stdvar(h)`: estimated from the buckets;
//! - `histogram_quantile(q, h)`: the φ-quantile, interpolated inside its bucket;
//! - `histogram_fraction(lower, upper, h)`: the estimated share of observations in the range.
//!
//! The histogram argument comes last, as in PromQL. A NULL histogram or parameter gives NULL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use quiver_storage::FloatHistogram;
use quiver_storage::histogram::arrow::{histogram_struct_type, histograms_from_struct};

/// What a function computes from its parameters and one histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Stat {
    Count,
    Sum,
    Avg,
    Stddev,
    Stdvar,
    Quantile,
    Fraction,
}

impl Stat {
    fn name(self) -> &'static str {
        match self {
            Stat::Count => "histogram_count",
            Stat::Sum => "histogram_sum",
            Stat::Avg => "histogram_avg",
            Stat::Stddev => "histogram_stddev",
            Stat::Stdvar => "histogram_stdvar",
            Stat::Quantile => "histogram_quantile",
            Stat::Fraction => "histogram_fraction",
        }
    }

    /// How many float parameters come before the histogram.
    fn params(self) -> usize {
        match self {
            Stat::Quantile => 1,
            Stat::Fraction => 2,
            _ => 0,
        }
    }

    fn compute(self, p: &[f64], h: &FloatHistogram) -> f64 {
        match self {
            Stat::Count => h.count,
            Stat::Sum => h.sum,
            Stat::Avg => h.sum / h.count,
            Stat::Stddev => h.variance().sqrt(),
            Stat::Stdvar => h.variance(),
            Stat::Quantile => h.quantile(p[0]),
            Stat::Fraction => h.fraction(p[0], p[1]),
        }
    }
}

/// Every function of this module, to register in a session.
pub fn histogram_functions() -> Vec<ScalarUDF> {
    [
        Stat::Count,
        Stat::Sum,
        Stat::Avg,
        Stat::Stddev,
        Stat::Stdvar,
        Stat::Quantile,
        Stat::Fraction,
    ]
    .into_iter()
    .map(|stat| {
        let mut types = vec![DataType::Float64; stat.params()];
        types.push(histogram_struct_type());
        ScalarUDF::new_from_impl(HistogramFn {
            stat,
            signature: Signature::exact(types, Volatility::Immutable),
        })
    })
    .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct HistogramFn {
    stat: Stat,
    signature: Signature,
}

impl ScalarUDFImpl for HistogramFn {
    fn name(&self) -> &str {
        self.stat.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let n = self.stat.params();
        let params: Vec<ArrayRef> = args.args[..n]
            .iter()
            .map(|a| cast(&a.to_array(rows)?, &DataType::Float64).map_err(Into::into))
            .collect::<Result<_>>()?;
        let h = args.args[n].to_array(rows)?;
        let h = h.as_struct_opt().ok_or_else(|| {
            DataFusionError::Plan(format!("{}: expected a histogram", self.stat.name()))
        })?;
        let hists = histograms_from_struct(h)
            .map_err(|e| DataFusionError::Execution(format!("{}: {e}", self.stat.name())))?;
        let params: Vec<_> = params
            .iter()
            .map(|p| p.as_primitive::<Float64Type>())
            .collect();
        let mut p = vec![0.0; n];
        let out: Float64Array = hists
            .iter()
            .enumerate()
            .map(|(row, h)| {
                let h = h.as_ref()?;
                for (i, a) in params.iter().enumerate() {
                    if a.is_null(row) {
                        return None;
                    }
                    p[i] = a.value(row);
                }
                Some(self.stat.compute(&p, h))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
