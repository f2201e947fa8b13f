//! The extension nodes: one logical node, [`PromNode`], and one physical node, [`PromExec`],
//! that carry a [`PromOp`] — the PromQL operator the node runs. Each operator's kernel lives in
//! its own file; they all read Arrow batches and write one.
//!
//! Every instant vector in a plan has the [`vector_schema`]: `labels` (an encoded label set,
//! see [`crate::labelset`]), `ts` (the evaluation step, ms) and `value`. Scalars have the
//! [`scalar_schema`]: `ts` and `value`, one row per step. Selectors read the storage
//! `samples` table (`series_id`, `timestamp`, `value`, sorted by series and time).

mod absent;
mod binary;
mod exec;
mod group_agg;
mod histogram;
mod info;
pub(crate) mod input;
mod range_fn;
mod scalar;
mod scalar_binary;
mod topk;
mod vector_select;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};

pub use absent::AbsentOp;
pub use binary::{BinaryOp, Cardinality, Matching, VectorOp};
pub use exec::{PromExec, PromPlanner};
pub use group_agg::{HistAggregateOp, StreamAgg};
pub use histogram::{HistogramFn, HistogramQuantileOp};
pub use info::InfoOp;
pub use input::LabelMap;
pub use range_fn::{RangeFn, RangeFnOp, RangeSource};
pub use scalar::{CountValuesOp, ScalarOfOp, StepsOp};
pub use scalar_binary::ScalarBinaryOp;
pub use topk::{TopKKind, TopKOp};
pub use vector_select::VectorSelectOp;

/// The evaluation grid: `start, start + step, …, ≤ end`, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Steps {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Steps {
    /// The single step of an instant query (its step width is 0, as `step()` reports).
    pub fn instant(t: i64) -> Self {
        Steps {
            start: t,
            end: t,
            step: 0,
        }
    }

    pub fn len(&self) -> usize {
        if self.end < self.start {
            0
        } else {
            ((self.end - self.start) / self.step.max(1)) as usize + 1
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = i64> + use<> {
        let s = *self;
        (0..s.len()).map(move |i| s.start + i as i64 * s.step)
    }

    /// The index of step time `t`, if it is on the grid.
    pub fn index(&self, t: i64) -> Option<usize> {
        if t < self.start || t > self.end || (t - self.start) % self.step.max(1) != 0 {
            return None;
        }
        Some(((t - self.start) / self.step.max(1)) as usize)
    }
}

/// Where an operator takes its reference time from at each step: the step itself, or a fixed
/// time (`@`), minus the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeShift {
    pub at: Option<i64>,
    pub offset: i64,
}

impl TimeShift {
    pub fn reference(&self, step: i64) -> i64 {
        self.at.unwrap_or(step) - self.offset
    }
}

/// The series a selector resolved, with their encoded label sets, keyed by storage id.
#[derive(Clone, PartialEq, Eq)]
pub struct SeriesMap {
    pub series: Arc<Vec<(u64, Vec<u8>)>>,
}

impl SeriesMap {
    pub fn new(mut series: Vec<(u64, Vec<u8>)>) -> Self {
        series.sort_by_key(|s| s.0);
        SeriesMap {
            series: Arc::new(series),
        }
    }

    pub fn labels(&self, id: u64) -> Option<&[u8]> {
        self.series
            .binary_search_by_key(&id, |s| s.0)
            .ok()
            .map(|i| self.series[i].1.as_slice())
    }
}

impl Hash for SeriesMap {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.series.len().hash(state);
        for (id, _) in self.series.iter() {
            id.hash(state);
        }
    }
}

impl fmt::Debug for SeriesMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut h = std::hash::DefaultHasher::new();
        for (id, _) in self.series.iter() {
            id.hash(&mut h);
        }
        write!(
            f,
            "{} series #{:x}",
            self.series.len(),
            h.finish() & 0xffff_ffff
        )
    }
}

/// A float parameter that can sit in a plan node (which must be `Eq` and `Hash`).
#[derive(Clone, Copy, PartialEq)]
pub struct Param(pub f64);

impl Eq for Param {}

impl Hash for Param {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}

impl fmt::Debug for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The PromQL operator a [`PromNode`] runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PromOp {
    /// Instant vector selector: the latest sample within the lookback of each step.
    VectorSelect(VectorSelectOp),
    /// A function over a range: a matrix selector or a subquery under `rate`, `*_over_time`…
    RangeFn(RangeFnOp),
    /// Vector-to-vector arithmetic, comparison and set operators with Prometheus's matching.
    Binary(BinaryOp),
    /// `topk`, `bottomk`, `limitk`.
    TopK(TopKOp),
    /// `count_values`.
    CountValues(CountValuesOp),
    /// `histogram_quantile` over classic buckets.
    HistogramQuantile(HistogramQuantileOp),
    /// `absent` and `absent_over_time`: one series where the input has none.
    Absent(AbsentOp),
    /// `scalar(v)`: the single value of each step, else NaN.
    ScalarOf(ScalarOfOp),
    /// A scalar per step: a number or `time()`.
    Steps(StepsOp),
    /// Fails on two series with the same label set at one step (after `label_replace`…).
    CheckUnique {
        /// The input may hold native histograms (they pass through).
        histograms: bool,
    },
    /// `info(v, {…})`: adds info series' data labels.
    Info(InfoOp),
    /// A vector that may hold native histograms with a scalar (`h * 2`, `-h`).
    ScalarBinary(ScalarBinaryOp),
    /// `sum` or `avg` of a vector that may hold native histograms, not fused into its input.
    HistAggregate(HistAggregateOp),
}

impl PromOp {
    fn name(&self) -> &'static str {
        match self {
            PromOp::VectorSelect(_) => "VectorSelect",
            PromOp::RangeFn(_) => "RangeFn",
            PromOp::Binary(_) => "VectorBinary",
            PromOp::TopK(_) => "TopK",
            PromOp::CountValues(_) => "CountValues",
            PromOp::HistogramQuantile(_) => "HistogramQuantile",
            PromOp::Absent(_) => "Absent",
            PromOp::ScalarOf(_) => "ScalarOf",
            PromOp::Steps(_) => "Steps",
            PromOp::CheckUnique { .. } => "CheckUnique",
            PromOp::Info(_) => "Info",
            PromOp::ScalarBinary(_) => "ScalarBinary",
            PromOp::HistAggregate(_) => "HistAggregate",
        }
    }

    /// Whether the node yields a scalar (`ts`, `value`) rather than a vector.
    fn yields_scalar(&self) -> bool {
        matches!(self, PromOp::ScalarOf(_) | PromOp::Steps(_))
    }

    /// Whether the node's vector may hold native histograms (the [`hist_vector_schema`]).
    fn yields_histograms(&self) -> bool {
        match self {
            PromOp::VectorSelect(op) => op.yields_histograms(),
            PromOp::RangeFn(op) => op.yields_histograms(),
            PromOp::ScalarBinary(_) | PromOp::HistAggregate(_) => true,
            PromOp::Binary(op) => op.histograms,
            PromOp::TopK(op) => op.histograms,
            PromOp::Info(op) => op.histograms,
            PromOp::CheckUnique { histograms } => *histograms,
            _ => false,
        }
    }

    /// The schema of the node's output.
    fn schema(&self) -> SchemaRef {
        if self.yields_scalar() {
            scalar_schema()
        } else if self.yields_histograms() {
            hist_vector_schema()
        } else {
            vector_schema()
        }
    }
}

pub fn vector_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("labels", DataType::BinaryView, false),
            Field::new("ts", DataType::Int64, false),
            Field::new("value", DataType::Float64, false),
        ]))
    });
    S.clone()
}

/// An instant vector that may hold native histograms: the [`vector_schema`] and `hist`, the
/// encoded histogram (`quiver_storage::FloatHistogram::encode`) of a histogram sample, null
/// for a float one (whose `value` is then the sample; a histogram row's `value` is 0). Only
/// plans whose selectors found histograms have it, so float queries keep their shape.
pub fn hist_vector_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("labels", DataType::BinaryView, false),
            Field::new("ts", DataType::Int64, false),
            Field::new("value", DataType::Float64, false),
            Field::new("hist", DataType::BinaryView, true),
        ]))
    });
    S.clone()
}

/// Whether a plan's rows may hold native histograms.
pub fn has_hist(schema: &datafusion::arrow::datatypes::Schema) -> bool {
    schema.index_of("hist").is_ok()
}

pub fn scalar_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Int64, false),
            Field::new("value", DataType::Float64, false),
        ]))
    });
    S.clone()
}

/// The logical extension node.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PromNode {
    pub op: PromOp,
    pub inputs: Vec<LogicalPlan>,
    schema: DFSchemaRef,
}

impl PromNode {
    pub fn new(op: PromOp, inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        let schema = op.schema();
        Ok(PromNode {
            op,
            inputs,
            schema: Arc::new(DFSchema::try_from(schema.as_ref().clone())?),
        })
    }

    pub fn into_plan(self) -> LogicalPlan {
        LogicalPlan::Extension(datafusion::logical_expr::Extension {
            node: Arc::new(self),
        })
    }
}

impl fmt::Debug for PromNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.op.name(), self.op)
    }
}

impl PartialOrd for PromNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        format!("{:?}", self.op)
            .partial_cmp(&format!("{:?}", other.op))
            .filter(|o| o.is_ne())
            .or_else(|| self.inputs.partial_cmp(&other.inputs))
    }
}

impl UserDefinedLogicalNodeCore for PromNode {
    fn name(&self) -> &str {
        self.op.name()
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        self.inputs.iter().collect()
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{self:?}")
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        Ok(PromNode {
            op: self.op.clone(),
            inputs,
            schema: self.schema.clone(),
        })
    }

    /// Each input is read whole except the scan's `metric` column, which no kernel needs.
    fn necessary_children_exprs(&self, _output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        Some(
            self.inputs
                .iter()
                .map(|i| {
                    i.schema()
                        .fields()
                        .iter()
                        .enumerate()
                        .filter(|(_, f)| f.name() != "metric")
                        .map(|(i, _)| i)
                        .collect()
                })
                .collect(),
        )
    }
}
