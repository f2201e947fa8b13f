//! Blocks read straight from their Parquet files by DataFusion's Parquet scan, for scans that
//! read much of the data (SQL analytics): streamed, split across partitions by byte range,
//! pruned by the series file's row locations and by statistics, and with the value columns
//! decoded ([`crate::block::values`]) as batches come.
//!
//! Only blocks that share no time with any other source are read this way (`Db::scan_sources`):
//! where sources overlap, a sample may be in two of them and only the newest counts, so those
//! stretches go through the merging read instead.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{Float64Type, Int64Type, SchemaRef, UInt8Type};
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, Result, Statistics};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::ParquetRowSelection;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, ReplaceChildrenOptions,
};
use futures::StreamExt;

use crate::block::{BlockReader, samples_file_schema, samples_schema, values};
use crate::db::Db;
use crate::labels::{SeriesId, Timestamp};

/// Where an output column comes from in the file scan's projected batch.
#[derive(Debug, Clone, Copy)]
enum Out {
    /// A file column as it is (`metric`, `series_id`, `timestamp`).
    Column(usize),
    /// `value`, from the file's `value`, `value_mantissa`, `value_scale` columns.
    Value(usize, usize, usize),
}

/// Plans the scan of `blocks` for the `samples` table's `projection` (indices into
/// `samples_schema`: metric, series_id, timestamp, value), or `None` when no block has a row
/// to read. `filters` are the pushed filters (for statistics pruning; they are applied again
/// above the scan).
pub(super) fn plan(
    db: &Db,
    state: &dyn Session,
    blocks: Vec<Arc<BlockReader>>,
    ids: Option<&[SeriesId]>,
    (mint, maxt): (Timestamp, Timestamp),
    projection: &[usize],
    filters: &[Expr],
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let out_schema = Arc::new(samples_schema().project(projection)?);
    let url = register_store(db, state)?;
    let mut files = Vec::new();
    let mut total_rows = 0usize;
    let mut pinned = Vec::new();
    for b in blocks {
        let (selection, n) = b.row_selection(ids, mint, maxt);
        if n == 0 {
            continue;
        }
        total_rows += n;
        let mut file =
            PartitionedFile::new(b.meta().samples_path().to_string(), b.meta().samples_bytes);
        if let Some(s) = selection {
            file = file.with_extension(ParquetRowSelection::new(s));
        }
        files.push(file);
        pinned.push(b);
    }
    if files.is_empty() {
        return Ok(None);
    }

    // The file columns the projection needs, and where each output column comes from.
    let mut file_columns: Vec<usize> = Vec::new();
    let outs: Vec<Out> = projection
        .iter()
        .map(|p| match p {
            3 => Out::Value(
                at(3, &mut file_columns),
                at(4, &mut file_columns),
                at(5, &mut file_columns),
            ),
            c => Out::Column(at(*c, &mut file_columns)),
        })
        .collect();
    if file_columns.is_empty() {
        // `count(*)`: read the cheapest column for the row counts.
        file_columns.push(1);
    }

    let file_schema = samples_file_schema();
    let mut source = ParquetSource::new(file_schema.clone());
    if let Some(predicate) = conjunction(filters.iter().cloned()) {
        let df_schema = DFSchema::try_from(file_schema.as_ref().clone())?;
        source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
    }
    let config = FileScanConfigBuilder::new(url, Arc::new(source))
        .with_file_group(FileGroup::new(files))
        .with_projection_indices(Some(file_columns))?
        .with_statistics(
            Statistics::new_unknown(&file_schema).with_num_rows(Precision::Inexact(total_rows)),
        )
        .build();
    let mut scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
    // Spread the files' row groups over the session's partitions.
    if let Some(split) =
        scan.repartitioned(state.config().target_partitions(), state.config_options())?
    {
        scan = split;
    }
    Ok(Some(Arc::new(BlockScanExec::new(
        scan, out_schema, outs, pinned, total_rows,
    ))))
}

/// The position of file column `c` in `columns`, added if missing.
fn at(c: usize, columns: &mut Vec<usize>) -> usize {
    match columns.iter().position(|x| *x == c) {
        Some(i) => i,
        None => {
            columns.push(c);
            columns.len() - 1
        }
    }
}

/// The object store URL of the database's block store, registered with the session's runtime.
fn register_store(db: &Db, state: &dyn Session) -> Result<ObjectStoreUrl> {
    // One URL per database, so two databases in one process never share a registration.
    let url = ObjectStoreUrl::parse(format!(
        "quiver-blocks://db-{:x}/",
        db as *const Db as usize
    ))?;
    let runtime = state.runtime_env();
    if runtime.object_store(&url).is_err() {
        runtime.register_object_store(url.as_ref(), db.options().block_store.clone());
    }
    Ok(url)
}

/// Decodes the file scan's batches into the `samples` table's columns, and keeps the blocks it
/// reads open (a compaction or retention that replaces them leaves their files until no scan
/// holds them).
#[derive(Debug)]
struct BlockScanExec {
    input: Arc<dyn ExecutionPlan>,
    outs: Vec<Out>,
    pinned: Vec<Arc<BlockReader>>,
    rows: usize,
    props: Arc<PlanProperties>,
}

impl BlockScanExec {
    fn new(
        input: Arc<dyn ExecutionPlan>,
        schema: SchemaRef,
        outs: Vec<Out>,
        pinned: Vec<Arc<BlockReader>>,
        rows: usize,
    ) -> Self {
        let input_props = input.properties();
        let props = PlanProperties::new(
            EquivalenceProperties::new(schema),
            input_props.partitioning.clone(),
            input_props.emission_type,
            input_props.boundedness,
        );
        BlockScanExec {
            input,
            outs,
            pinned,
            rows,
            props: Arc::new(props),
        }
    }
}

impl BlockScanExec {
    fn rebuild(&self, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(BlockScanExec::new(
            children.swap_remove(0),
            self.props.eq_properties.schema().clone(),
            self.outs.clone(),
            self.pinned.clone(),
            self.rows,
        )))
    }
}

impl DisplayAs for BlockScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "BlockScanExec: blocks={}, rows~{}",
            self.pinned.len(),
            self.rows
        )
    }
}

impl ExecutionPlan for BlockScanExec {
    fn name(&self) -> &str {
        "BlockScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.rebuild(children)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.rebuild(children)
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let mut s = Statistics::new_unknown(&self.schema());
        if args.partition().is_none() {
            s = s.with_num_rows(Precision::Inexact(self.rows));
        }
        Ok(Arc::new(s))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = self.schema();
        let outs = self.outs.clone();
        let pinned = self.pinned.clone();
        let stream = input.map(move |batch| {
            // The stream holds the blocks open while it runs.
            let _ = &pinned;
            decode(&batch?, &outs, &schema)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            stream,
        )))
    }
}

/// One file batch as the table's columns.
fn decode(batch: &RecordBatch, outs: &[Out], schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = outs
        .iter()
        .map(|o| match *o {
            Out::Column(i) => batch.column(i).clone(),
            Out::Value(v, m, s) => Arc::new(values::decode(
                batch.column(v).as_primitive::<Float64Type>(),
                batch.column(m).as_primitive::<Int64Type>(),
                batch.column(s).as_primitive::<UInt8Type>(),
            )) as Arc<dyn Array>,
        })
        .collect();
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}
