//! SQL for Quiver: a DataFusion session over `quiver-storage`.
//!
//! The catalog (DESIGN.md): `samples` (`series_id`, `metric`, `timestamp`, `value`, …),
//! `histograms` (native histogram samples, a struct column `histogram` that the functions of
//! [`histograms`] read) and `series` (`series_id`, `metric`, `labels`) in the default schema, and schema `metrics` with one
//! table per metric name: its labels as columns, then `timestamp` and `value`
//! (`SELECT gpu, avg(value) FROM metrics."DCGM_FI_DEV_GPU_UTIL" GROUP BY gpu`). A metric table is
//! a view over `samples` joined with `series`, built when a query names it, so new metrics and
//! labels appear without a restart. Schema `experiments` has ML runs ([`experiments`]); schema
//! `system` has `series` and whatever the server registers (`targets`). Window functions for ML
//! curves and counters are in [`functions`]; the server registers `promql()`.

pub mod bounded;
pub mod experiments;
pub mod functions;
mod group_keys;
pub mod guard;
mod histograms;
pub mod system;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::datasource::ViewTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{DataFrame, SessionContext};
pub use guard::SqlLimits;
use quiver_storage::provider::{HistogramsTable, SamplesTable, SeriesTable};
use quiver_storage::{Db, METRIC_NAME, Matcher, Matchers, Timestamp};

/// The SQL session: one per server, shared by every query. It only answers queries
/// ([`guard`]): nothing a client sends changes it or reaches the server's files.
#[derive(Clone)]
pub struct SqlSession {
    ctx: SessionContext,
    limits: SqlLimits,
}

impl SqlSession {
    /// A session whose queries run in `runtime` (its memory pool; see
    /// [`SqlLimits::runtime`]) and stop at `limits.timeout`.
    pub fn new(
        db: Arc<Db>,
        limits: SqlLimits,
        runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    ) -> Result<Self> {
        let ctx = SessionContext::new_with_config_rt(
            datafusion::prelude::SessionConfig::new().with_information_schema(true),
            runtime,
        );
        register_base_tables(&ctx, &db)?;
        for f in functions::window_functions() {
            ctx.register_udwf(f);
        }
        for f in histograms::histogram_functions() {
            ctx.register_udf(f);
        }
        bounded::register(&ctx);
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
        Ok(SqlSession { ctx, limits })
    }

    /// The bounds queries run under.
    pub fn limits(&self) -> &SqlLimits {
        &self.limits
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

    /// Plans a query; any other statement is refused ([`guard::check_statement`], then
    /// [`guard::read_only`] on the plan).
    pub async fn sql(&self, query: &str) -> Result<DataFrame> {
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        guard::check_text_bounds(query)?;
        let statement = state.sql_to_statement(query, &dialect)?;
        guard::check_statement(&statement)?;
        let plan = state.statement_to_plan(statement).await?;
        guard::read_only().verify_plan(&plan)?;
        self.ctx.execute_logical_plan(plan).await
    }

    /// Runs a planned query as a stream that ends with a timeout error past
    /// `--query.timeout`.
    pub async fn execute(&self, df: DataFrame) -> Result<SendableRecordBatchStream> {
        let timeout = self.limits.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let stream = tokio::time::timeout_at(deadline, df.execute_stream())
            .await
            .map_err(|_| DataFusionError::External(Box::new(guard::QueryTimeout(timeout))))??;
        Ok(Box::pin(guard::DeadlineStream::new(
            stream, deadline, timeout,
        )))
    }
}

fn register_base_tables(ctx: &SessionContext, db: &Arc<Db>) -> Result<()> {
    ctx.register_table("samples", Arc::new(SamplesTable::new(db.clone())))?;
    ctx.register_table("series", Arc::new(SeriesTable::new(db.clone())))?;
    ctx.register_table("histograms", Arc::new(HistogramsTable::new(db.clone())))?;
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

    fn session(db: Arc<Db>) -> SqlSession {
        let limits = SqlLimits::default();
        let runtime = limits.runtime().unwrap();
        SqlSession::new(db, limits, runtime).unwrap()
    }

    async fn rows(s: &SqlSession, q: &str) -> Vec<RecordBatch> {
        s.sql(q).await.unwrap().collect().await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metric_tables_have_labels_as_columns() {
        let dir = tempfile::tempdir().unwrap();
        let s = session(db_with_gpus(dir.path()).await);
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_session_refuses_statements_that_write_or_change_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = session(db_with_gpus(dir.path()).await);
        let target = dir.path().join("copied.csv");
        let copy = format!("COPY (SELECT 1) TO '{}' STORED AS CSV", target.display());
        for sql in [
            copy.as_str(),
            "SET datafusion.execution.batch_size = 1",
            "DROP TABLE samples",
            "CREATE TABLE t AS SELECT 1",
            // A query that creates a table: refused by the plan check.
            "SELECT 1 AS a INTO t",
        ] {
            let e = s.sql(sql).await.expect_err(sql).to_string();
            assert!(
                e.contains("read-only") || e.contains("not supported"),
                "{sql}: {e}"
            );
        }
        assert!(!target.exists(), "COPY wrote a file");
        // The session is unchanged: its tables and settings are still there.
        assert_eq!(
            rows(&s, "SELECT count(*) FROM samples").await[0].num_rows(),
            1
        );
        let t = rows(&s, "SHOW datafusion.execution.batch_size").await;
        let v = datafusion::arrow::util::display::array_value_to_string(t[0].column(1), 0).unwrap();
        assert_eq!(v, "8192");
        assert!(s.sql("SELECT * FROM t").await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_over_the_memory_bound_fails_and_the_next_one_runs() {
        let dir = tempfile::tempdir().unwrap();
        let limits = SqlLimits {
            max_memory: 16 << 20,
            ..SqlLimits::default()
        };
        let runtime = limits.runtime().unwrap();
        let s = SqlSession::new(db_with_gpus(dir.path()).await, limits, runtime).unwrap();
        let df = s
            // The key is not in the input's order, so the groups are held until the end.
            .sql("SELECT v * 7919 % 4999999 AS k, count(*) FROM generate_series(1, 5000000) AS g(v) GROUP BY k")
            .await
            .unwrap();
        let stream = s.execute(df).await.unwrap();
        let e = datafusion::physical_plan::common::collect(stream)
            .await
            .expect_err("over the pool");
        assert!(guard::is_resources_exhausted(&e), "{e}");
        assert_eq!(rows(&s, "SELECT 1").await[0].num_rows(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_past_its_timeout_ends_with_a_timeout_error() {
        let dir = tempfile::tempdir().unwrap();
        let limits = SqlLimits {
            timeout: std::time::Duration::from_millis(200),
            ..SqlLimits::default()
        };
        let runtime = limits.runtime().unwrap();
        let s = SqlSession::new(db_with_gpus(dir.path()).await, limits, runtime).unwrap();
        let df = s
            .sql("SELECT count(*) FROM generate_series(1, 1000000000000) AS a(x)")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let stream = s.execute(df).await.unwrap();
        let e = datafusion::physical_plan::common::collect(stream)
            .await
            .expect_err("timed out");
        assert!(guard::is_timeout(&e), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
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
