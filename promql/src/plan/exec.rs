//! [`PromExec`], the physical node of every [`PromOp`], and [`PromPlanner`], which turns
//! [`PromNode`]s into it.
//!
//! A PromQL operator needs all of a step's series before it can answer (matching, ranking,
//! absence), so the node gathers its inputs into one partition, runs its kernel once, and
//! emits the result.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
    ReplaceChildrenOptions,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::TryStreamExt;

use super::{PromNode, PromOp};
use crate::error::Error;
use crate::guard::QueryGuard;

/// Runs one [`PromOp`] over its gathered inputs.
#[derive(Debug)]
pub struct PromExec {
    op: PromOp,
    children: Vec<Arc<dyn ExecutionPlan>>,
    props: Arc<PlanProperties>,
}

impl PromExec {
    pub fn new(op: PromOp, children: Vec<Arc<dyn ExecutionPlan>>) -> Self {
        let schema = op.schema();
        let props = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        PromExec {
            op,
            children,
            props: Arc::new(props),
        }
    }

    pub fn op(&self) -> &PromOp {
        &self.op
    }
}

impl DisplayAs for PromExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}Exec: {:?}", self.op.name(), self.op)
    }
}

impl ExecutionPlan for PromExec {
    fn name(&self) -> &str {
        "PromExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.children.iter().collect()
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition; self.children.len()]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(PromExec::new(self.op.clone(), children)))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(PromExec::new(self.op.clone(), children)))
    }

    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let streams = self
            .children
            .iter()
            .map(|c| c.execute(0, context.clone()))
            .collect::<DfResult<Vec<_>>>()?;
        let guard = context
            .session_config()
            .get_extension::<QueryGuard>()
            .unwrap_or_default();
        let op = self.op.clone();
        let schema = self.schema();
        let fut = async move {
            let mut inputs = Vec::with_capacity(streams.len());
            for s in streams {
                inputs.push(s.try_collect::<Vec<RecordBatch>>().await?);
            }
            guard.check_deadline().map_err(Error::into_df)?;
            let rows: usize = inputs.iter().flatten().map(RecordBatch::num_rows).sum();
            if rows <= INLINE_KERNEL_ROWS {
                // Microseconds of work: a thread hand-off would cost more than the kernel.
                return op.evaluate(&inputs, &guard).map_err(Error::into_df);
            }
            // The kernel is CPU work: off the runtime's workers, so the query's deadline (a
            // timer on the runtime) still fires while it runs.
            tokio::task::spawn_blocking(move || op.evaluate(&inputs, &guard))
                .await
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?
                .map_err(Error::into_df)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(fut),
        )))
    }
}

/// Input rows up to which a kernel runs on the runtime's worker (a small query's kernels take
/// microseconds, less than handing them to the blocking pool and back; rules run hundreds).
const INLINE_KERNEL_ROWS: usize = 16_384;

impl PromOp {
    fn evaluate(
        &self,
        inputs: &[Vec<RecordBatch>],
        guard: &QueryGuard,
    ) -> crate::Result<RecordBatch> {
        let first = || inputs.first().map(Vec::as_slice).unwrap_or_default();
        match self {
            PromOp::VectorSelect(op) => op.evaluate(first(), guard),
            PromOp::RangeFn(op) => op.evaluate(first(), inputs.get(1).map(Vec::as_slice), guard),
            PromOp::Binary(op) => op.evaluate(&inputs[0], &inputs[1]),
            PromOp::TopK(op) => op.evaluate(first(), inputs.get(1).map(Vec::as_slice)),
            PromOp::CountValues(op) => op.evaluate(first()),
            PromOp::HistogramQuantile(op) => op.evaluate(first()),
            PromOp::Absent(op) => op.evaluate(first()),
            PromOp::ScalarOf(op) => op.evaluate(first()),
            PromOp::Steps(op) => op.evaluate(),
            PromOp::CheckUnique { histograms } => super::topk::check_unique(first(), *histograms),
            PromOp::Info(op) => op.evaluate(&inputs[0], &inputs[1]),
            PromOp::ScalarBinary(op) => op.evaluate(first(), inputs.get(1).map(Vec::as_slice)),
            PromOp::HistAggregate(op) => op.evaluate(first()),
        }
    }
}

/// Plans [`PromNode`]s as [`PromExec`]s.
#[derive(Debug, Default)]
pub struct PromPlanner;

#[async_trait]
impl ExtensionPlanner for PromPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _ctx: &PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        Ok(node.as_any().downcast_ref::<PromNode>().map(|n| {
            Arc::new(PromExec::new(n.op.clone(), physical_inputs.to_vec()))
                as Arc<dyn ExecutionPlan>
        }))
    }
}
