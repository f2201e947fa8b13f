//! PromQL's plain aggregations (`sum`, `avg`, `min`, `max`, `count`, `group`, `stddev`,
//! `stdvar`, `quantile`) as DataFusion aggregate functions, so an aggregation is an ordinary
//! `Aggregate` grouped by (label key, step) that the optimizer can work on.
//!
//! They fold in Prometheus's arithmetic (compensated sums, NaN handling of `min`/`max`,
//! incremental means on overflow), which DataFusion's built-ins do not.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, TypeSignature, Volatility,
};

use super::{kahan_inc, mean, quantile};
use crate::plan::Param;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggKind {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Quantile(Param),
}

impl AggKind {
    pub fn from_name(name: &str, param: Option<f64>) -> Option<Self> {
        Some(match name {
            "sum" => AggKind::Sum,
            "avg" => AggKind::Avg,
            "min" => AggKind::Min,
            "max" => AggKind::Max,
            "count" => AggKind::Count,
            "group" => AggKind::Group,
            "stddev" => AggKind::Stddev,
            "stdvar" => AggKind::Stdvar,
            "quantile" => AggKind::Quantile(Param(param?)),
            _ => return None,
        })
    }

    /// The aggregate of one group's values, in input order.
    pub fn fold(self, vs: &mut [f64]) -> f64 {
        match self {
            AggKind::Sum => {
                let (mut s, mut c) = (0.0, 0.0);
                for v in vs.iter() {
                    (s, c) = kahan_inc(*v, s, c);
                }
                s + c
            }
            AggKind::Avg => mean(vs.iter().copied()),
            AggKind::Min => vs
                .iter()
                .fold(vs[0], |m, v| if m > *v || m.is_nan() { *v } else { m }),
            AggKind::Max => vs
                .iter()
                .fold(vs[0], |m, v| if m < *v || m.is_nan() { *v } else { m }),
            AggKind::Count => vs.len() as f64,
            AggKind::Group => 1.0,
            AggKind::Stddev | AggKind::Stdvar => {
                let (mut mean, mut var, mut n) = (0.0, 0.0, 0.0);
                for v in vs.iter() {
                    n += 1.0;
                    let delta = v - mean;
                    mean += delta / n;
                    var += delta * (v - mean);
                }
                let var = var / n;
                if self == AggKind::Stddev {
                    var.sqrt()
                } else {
                    var
                }
            }
            AggKind::Quantile(q) => quantile(q.0, vs),
        }
    }
}

/// The aggregate function; `name()` is what `EXPLAIN` shows (`prom_sum`, …).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PromAggregate {
    kind: AggKind,
    name: String,
    signature: Signature,
}

impl PromAggregate {
    pub fn udaf(kind: AggKind) -> Arc<AggregateUDF> {
        let name = match kind {
            AggKind::Quantile(q) => format!("prom_quantile({})", q.0),
            k => format!("prom_{}", format!("{k:?}").to_lowercase()),
        };
        Arc::new(AggregateUDF::new_from_impl(PromAggregate {
            kind,
            name,
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Float64]),
                    TypeSignature::Exact(vec![DataType::Float64, DataType::Float64]),
                ],
                Volatility::Immutable,
            ),
        }))
    }
}

impl AggregateUDFImpl for PromAggregate {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(Values {
            kind: self.kind,
            values: Vec::new(),
            param: None,
        }))
    }

    fn state_fields(&self, _args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                "values",
                DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
                true,
            )),
            Arc::new(Field::new("param", DataType::Float64, true)),
        ])
    }
}

/// Keeps a group's values and folds them at the end, so the result does not depend on how
/// DataFusion splits the input.
#[derive(Debug)]
struct Values {
    kind: AggKind,
    values: Vec<f64>,
    /// The parameter when it comes per row (the same within a step).
    param: Option<f64>,
}

impl Accumulator for Values {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let a = values[0].as_primitive::<Float64Type>();
        self.values.extend(a.iter().flatten());
        if let Some(p) = values.get(1) {
            let p = p.as_primitive::<Float64Type>();
            if let Some(v) = p.iter().flatten().last() {
                self.param = Some(v);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        if self.values.is_empty() {
            return Ok(ScalarValue::Float64(None));
        }
        let kind = match (self.kind, self.param) {
            (AggKind::Quantile(_), Some(q)) => AggKind::Quantile(Param(q)),
            (k, _) => k,
        };
        Ok(ScalarValue::Float64(Some(kind.fold(&mut self.values))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.capacity() * 8
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let list = ListArray::from_iter_primitive::<Float64Type, _, _>([Some(
            self.values.iter().map(|v| Some(*v)),
        )]);
        Ok(vec![
            ScalarValue::List(Arc::new(list)),
            ScalarValue::Float64(self.param),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let lists = states[0].as_list::<i32>();
        for i in 0..lists.len() {
            if lists.is_null(i) {
                continue;
            }
            let inner = lists.value(i);
            self.values
                .extend(inner.as_primitive::<Float64Type>().iter().flatten());
        }
        if let Some(p) = states.get(1)
            && let Some(v) = p.as_primitive::<Float64Type>().iter().flatten().last()
        {
            self.param = Some(v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_and_max_skip_nan_unless_all_are_nan() {
        assert_eq!(AggKind::Min.fold(&mut [f64::NAN, 3.0, 1.0]), 1.0);
        assert_eq!(AggKind::Max.fold(&mut [2.0, f64::NAN, 1.0]), 2.0);
        assert!(AggKind::Max.fold(&mut [f64::NAN]).is_nan());
    }

    #[test]
    fn stdvar_is_the_population_variance() {
        assert_eq!(AggKind::Stdvar.fold(&mut [1.0, 3.0]), 1.0);
        assert_eq!(
            AggKind::Stddev.fold(&mut [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]),
            2.0
        );
    }
}
