//! Tables of schema `system` that show the server's state (scrape targets, rules, alerts): the
//! server hands a function that builds the current rows, called each time a query reads the
//! table, so an answer is always a fresh snapshot.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// Builds a system table's rows (in the table's schema).
pub type RowsFn = dyn Fn() -> Result<RecordBatch> + Send + Sync;

/// A system table: a schema and the function that builds its rows.
pub struct SystemTable {
    schema: SchemaRef,
    rows: Arc<RowsFn>,
}

impl SystemTable {
    pub fn new(schema: SchemaRef, rows: Arc<RowsFn>) -> Self {
        SystemTable { schema, rows }
    }
}

impl fmt::Debug for SystemTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemTable")
            .field("schema", &self.schema)
            .finish()
    }
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = (self.rows)()?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}
