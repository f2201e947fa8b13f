//! SQL for Quiver: a DataFusion session over `quiver-storage`.
//!
//! The catalog (DESIGN.md): `samples` (`series_id`, `metric`, `timestamp`, `value`, …) and
//! `series` (`series_id`, `metric`, `labels`) in the default schema, and schema `metrics` with one
//! table per metric name: its labels as columns, then `timestamp` and `value`
//! (`SELECT gpu, avg(value) FROM metrics."DCGM_FI_DEV_GPU_UTIL" GROUP BY gpu`). A metric table is
//! a view over `samples` joined with `series`, built when a query names it, so new metrics and
//! labels appear without a restart. Schema `experiments` has ML runs ([`experiments`]); schema
//! `system` has `series` and whatever the server registers (`targets`). Window functions for ML
//! curves and counters are in [`functions`]; the server registers `promql()`.

pub mod experiments;
pub mod functions;
mod group_keys;
pub mod system;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::datasource::ViewTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::{DataFrame, SessionContext};
use quiver_storage::provider::{SamplesTable, SeriesTable};
use quiver_storage::{Db, METRIC_NAME, Matcher, Matchers, Timestamp};

/// The SQL session: one per server, shared by every query.
#[derive(Clone)]
pub struct SqlSession {
    ctx: SessionContext,
}

impl SqlSession {
    pub fn new(db: Arc<Db>) -> Result<Self> {
        let ctx = SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new().with_information_schema(true),
        );
        register_base_tables(&ctx, &db)?;
        for f in functions::window_functions() {
            ctx.register_udwf(f);
        }
        ctx.add_optimizer_rule(Arc::new(group_keys::GroupByDictionaryValues));
        // The views of `metrics` are planned in a context of their own (holding only the base
        // tables), so the session does not own itself.
        let base = SessionContext::new();
        register_base_tables(&base, &db)?;
        let catalog = ctx
            .catalog("datafusion")
            .ok_or_else(|| DataFusionError::Internal("no default catalog".into()))?;
        catalog.register_schema(
            "metrics",
            Arc::new(MetricsSchema {
                db: db.clone(),
                base,
            }),
        )?;
        catalog.register_schema(
            "experiments",
            Arc::new(experiments::ExperimentsSchema::new(db.clone())),
        )?;
        // SQL recording rules put their tables here (the server runs them).
        catalog.register_schema("rules", Arc::new(MemorySchemaProvider::new()))?;
        let system = Arc::new(MemorySchemaProvider::new());
        system.register_table("series".into(), Arc::new(SeriesTable::new(db)))?;
        catalog.register_schema("system", system)?;
        Ok(SqlSession { ctx })
    }

    /// The DataFusion context (the server registers more functions in it).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Adds a table to schema `system` (the server's targets, rules, alerts).
    pub fn register_system_table(&self, name: &str, table: Arc<dyn TableProvider>) -> Result<()> {
        self.schema("system")?.register_table(name.into(), table)?;
        Ok(())
    }

    /// Puts (or replaces) table `rules.<name>`, a SQL recording rule's answer.
    pub fn register_rules_table(&self, name: &str, table: Arc<dyn TableProvider>) -> Result<()> {
        let schema = self.schema("rules")?;
        schema.deregister_table(name)?;
        schema.register_table(name.into(), table)?;
        Ok(())
    }

    /// Takes table `rules.<name>` away.
    pub fn deregister_rules_table(&self, name: &str) -> Result<()> {
        self.schema("rules")?.deregister_table(name)?;
        Ok(())
    }

    fn schema(&self, name: &str) -> Result<Arc<dyn SchemaProvider>> {
        self.ctx
            .catalog("datafusion")
            .and_then(|c| c.schema(name))
            .ok_or_else(|| DataFusionError::Internal(format!("no schema {name}")))
    }

    /// Plans a statement.
    pub async fn sql(&self, query: &str) -> Result<DataFrame> {
        self.ctx.sql(query).await
    }
}

fn register_base_tables(ctx: &SessionContext, db: &Arc<Db>) -> Result<()> {
    ctx.register_table("samples", Arc::new(SamplesTable::new(db.clone())))?;
    ctx.register_table("series", Arc::new(SeriesTable::new(db.clone())))?;
    Ok(())
}

/// Schema `metrics`: a table per metric name.
struct MetricsSchema {
    db: Arc<Db>,
    base: SessionContext,
}

impl std::fmt::Debug for MetricsSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsSchema")
    }
}

impl MetricsSchema {
    fn metric_names(&self) -> Vec<String> {
        self.db
            .label_values(METRIC_NAME, &[], Timestamp::MIN, Timestamp::MAX)
    }
}

/// `"name"` with `"` doubled.
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `'text'` with `'` doubled.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The view a metric table is: its labels as columns (a label named like a fixed column gets
/// the prefix `label_`), `timestamp`, `value`.
pub fn metric_view_sql(metric: &str, label_names: &[String]) -> String {
    let mut cols = Vec::new();
    for name in label_names.iter().filter(|n| *n != METRIC_NAME) {
        let column = match name.as_str() {
            "timestamp" | "value" | "series_id" => format!("label_{name}"),
            _ => name.clone(),
        };
        cols.push(format!("s.labels[{}] AS {}", literal(name), ident(&column)));
    }
    cols.push("x.series_id AS series_id".into());
    cols.push("x.timestamp AS timestamp".into());
    cols.push("x.value AS value".into());
    format!(
        "SELECT {} FROM samples x JOIN series s ON x.series_id = s.series_id WHERE x.metric = {}",
        cols.join(", "),
        literal(metric)
    )
}

#[async_trait]
impl SchemaProvider for MetricsSchema {
    fn table_names(&self) -> Vec<String> {
        self.metric_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let selector = Matchers(vec![Matcher::equal(METRIC_NAME, name)]);
        let labels = self
            .db
            .label_names(&[selector], Timestamp::MIN, Timestamp::MAX);
        if labels.is_empty() {
            return Ok(None);
        }
        let sql = metric_view_sql(name, &labels);
        let plan = self.base.sql(&sql).await?.into_unoptimized_plan();
        Ok(Some(Arc::new(ViewTable::new(plan, Some(sql)))))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.metric_names().iter().any(|m| m == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, RecordBatch};
    use datafusion::arrow::datatypes::{Float64Type, Int64Type};
    use quiver_storage::{LabelLimits, Labels, Options, WriteBatch};

    async fn db_with_gpus(dir: &std::path::Path) -> Arc<Db> {
        let blocks = dir.join("blocks");
        std::fs::create_dir_all(&blocks).unwrap();
        let store =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&blocks).unwrap());
        let mut o = Options::new(dir.join("wal"), store);
        o.retention_ms = i64::MAX / 4;
        let db = Db::open(o).await.unwrap();
        let mut b = WriteBatch::default();
        for gpu in 0..3 {
            let gpu = gpu.to_string();
            let l = Labels::try_from_pairs(
                [
                    ("__name__", "gpu_util"),
                    ("gpu", gpu.as_str()),
                    ("host", "a"),
                ],
                &LabelLimits::default(),
            )
            .unwrap();
            let i = b.push_series(l);
            for t in 0..4 {
                b.push_sample(i, t * 15_000, (t * 10) as f64 + gpu.parse::<f64>().unwrap());
            }
        }
        let other = b.push_series(
            Labels::try_from_pairs(
                [("__name__", "loss"), ("run", "r1")],
                &LabelLimits::default(),
            )
            .unwrap(),
        );
        b.push_sample(other, 0, 0.5);
        db.append(b).await.unwrap();
        db
    }

    async fn rows(s: &SqlSession, q: &str) -> Vec<RecordBatch> {
        s.sql(q).await.unwrap().collect().await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metric_tables_have_labels_as_columns() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqlSession::new(db_with_gpus(dir.path()).await).unwrap();
        let b = rows(
            &s,
            "SELECT gpu, count(*) AS n, sum(value) AS total FROM metrics.gpu_util WHERE host = 'a' GROUP BY gpu ORDER BY gpu",
        )
        .await;
        let b = &b[0];
        assert_eq!(b.num_rows(), 3);
        let gpu = datafusion::arrow::util::display::array_value_to_string(b.column(0), 2).unwrap();
        assert_eq!(gpu, "2");
        assert_eq!(b.column(1).as_primitive::<Int64Type>().value(2), 4);
        assert_eq!(
            b.column(2).as_primitive::<Float64Type>().value(2),
            0.0 + 10.0 + 20.0 + 30.0 + 4.0 * 2.0
        );
        let t = rows(
            &s,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'metrics' ORDER BY 1",
        )
        .await;
        let names: Vec<String> = (0..t[0].num_rows())
            .map(|i| {
                datafusion::arrow::util::display::array_value_to_string(t[0].column(0), i).unwrap()
            })
            .collect();
        assert_eq!(names, ["gpu_util", "loss"]);
        assert!(s.sql("SELECT * FROM metrics.nope").await.is_err());
    }

    #[test]
    fn view_sql_quotes_names_and_renames_clashing_labels() {
        let sql = metric_view_sql(
            "it's",
            &[
                "__name__".into(),
                "gpu".into(),
                "value".into(),
                "a\"b".into(),
            ],
        );
        assert!(sql.contains("s.labels['gpu'] AS \"gpu\""), "{sql}");
        assert!(
            sql.contains("s.labels['value'] AS \"label_value\""),
            "{sql}"
        );
        assert!(sql.contains("AS \"a\"\"b\""), "{sql}");
        assert!(sql.ends_with("x.metric = 'it''s'"), "{sql}");
    }
}
