//! The `series` table: `series_id`, `metric`, `labels` (a map without `__name__`).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, MapBuilder, RecordBatch, StringBuilder, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::block::labels_field;
use crate::db::Db;
use crate::labels::{METRIC_NAME, Timestamp};
use crate::matchers::Matchers;

/// The `series` table: `series_id`, `metric`, `labels` (a map without `__name__`).
#[derive(Debug)]
pub struct SeriesTable {
    db: Arc<Db>,
}

impl SeriesTable {
    pub fn new(db: Arc<Db>) -> Self {
        SeriesTable { db }
    }

    pub fn table_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("series_id", DataType::UInt64, false),
            Field::new("metric", DataType::Utf8, false),
            labels_field(),
        ]))
    }
}

#[async_trait]
impl TableProvider for SeriesTable {
    fn schema(&self) -> SchemaRef {
        Self::table_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let mut series = self
            .db
            .series(&Matchers::default(), Timestamp::MIN, Timestamp::MAX);
        series.sort_by_key(|(id, _)| *id);
        let mut ids = Vec::with_capacity(series.len());
        let mut metric = StringBuilder::new();
        let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        for (id, ls) in &series {
            ids.push(id.0);
            metric.append_value(ls.metric_name().unwrap_or_default());
            for l in ls.iter().filter(|l| l.name.as_ref() != METRIC_NAME) {
                labels.keys().append_value(&l.name);
                labels.values().append_value(&l.value);
            }
            labels.append(true)?;
        }
        let batch = RecordBatch::try_new(
            Self::table_schema(),
            vec![
                Arc::new(UInt64Array::from(ids)) as ArrayRef,
                Arc::new(metric.finish()),
                Arc::new(labels.finish()),
            ],
        )?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema(),
            projection.cloned(),
        )?)
    }
}
