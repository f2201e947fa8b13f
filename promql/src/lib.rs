//! PromQL for Quiver: `promql-parser` ASTs compiled to DataFusion logical plans over
//! `quiver-storage`'s samples, planned and executed by DataFusion.
//!
//! ```text
//!  "sum by (job) (rate(x[5m]))"
//!        │ promql-parser
//!        ▼
//!  AST ── planner/ (by node kind) ──► LogicalPlan
//!        selectors: matchers → series ids in the index → TableScan(SeriesScan: ids, time)
//!        rate(x[5m]) → RangeFn node (window kernels per series)
//!        sum by (job) → inside the selector or RangeFn node below it, or else
//!                       Aggregate(prom_group_key(labels), ts; prom_sum(value))
//!        a + b       → VectorBinary node (matching) / projection for scalars
//!        │ DefaultPhysicalPlanner with PromPlanner (+ DataFusion's physical optimizer)
//!        ▼
//!  ExecutionPlan ──► batches (labels, ts, value) ──► engine: Vector / Matrix / Scalar
//! ```
//!
//! Every instant vector in a plan has three columns: `labels` (the label set, encoded as
//! sorted pairs in one binary value, see [`labelset`]), `ts` (the evaluation step, ms) and
//! `value`. Start reading at [`Engine`] (`engine.rs`), then [`planner`] and [`plan`].

pub mod bounds;
mod engine;
pub mod error;
pub mod functions;
mod guard;
pub mod labelset;
pub mod plan;
pub mod planner;
pub mod series_desc;
pub mod table_function;

pub use engine::{
    Engine, EngineOptions, LabelPairs, MAX_POINTS, Sample, Series, Value, parse, range_steps,
};
pub use error::{Error, ErrorKind, Result};
pub use table_function::PromqlTableFunction;
