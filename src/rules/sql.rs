//! SQL recording rules (Quiver's `sql_rules` section): a named SQL query run every `interval`;
//! its rows, each with the evaluation time as `evaluated_at`, become table `rules.<name>`
//! (`replace`: the latest answer; `append`: answers accumulate, the oldest rows dropped past
//! `max_rows`). An answer is read up to `max_rows` rows, and runs within `--query.timeout` and
//! the query memory pool, like every SQL query. Each table is kept as a Parquet file in the block store
//! (`rules/<name>.parquet`, replaced whole after each evaluation) and read back at start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, RecordBatch, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parking_lot::RwLock;
use quiver_sql::SqlSession;
use quiver_storage::block::timestamp_type;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::group::Health;
use crate::config::file::{SqlRuleConfig, SqlRuleMode};

/// How a SQL rule's last evaluation went, for the API and `system.rules`.
#[derive(Debug, Clone)]
pub struct SqlRuleStatus {
    pub config: SqlRuleConfig,
    pub interval: Duration,
    pub health: Health,
    pub last_error: Option<String>,
    pub last_evaluation: Option<SystemTime>,
    pub evaluation_time: Duration,
    pub rows: usize,
}

/// The running SQL rules.
pub struct SqlRules {
    session: Arc<SqlSession>,
    store: Arc<dyn ObjectStore>,
    running: tokio::sync::Mutex<Vec<(watch::Sender<bool>, JoinHandle<()>)>>,
    status: Arc<RwLock<BTreeMap<String, SqlRuleStatus>>>,
    /// Each table's rows now (what `rules.<name>` shows).
    tables: Arc<RwLock<BTreeMap<String, Vec<RecordBatch>>>>,
}

impl SqlRules {
    pub fn new(session: Arc<SqlSession>, store: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(SqlRules {
            session,
            store,
            running: tokio::sync::Mutex::new(Vec::new()),
            status: Arc::new(RwLock::new(BTreeMap::new())),
            tables: Arc::new(RwLock::new(BTreeMap::new())),
        })
    }

    pub fn status(&self) -> Vec<SqlRuleStatus> {
        self.status.read().values().cloned().collect()
    }

    /// Runs `rules` (each every `interval`, `default_interval` when unset) instead of the
    /// running ones. A rule's table is read back from its file when it has none yet.
    pub async fn apply(&self, rules: &[SqlRuleConfig], default_interval: Duration) {
        let mut running = self.running.lock().await;
        for (stop, _) in running.iter() {
            let _ = stop.send(true);
        }
        for (_, task) in running.drain(..) {
            let _ = task.await;
        }
        let mut status = BTreeMap::new();
        for cfg in rules {
            let interval = cfg.interval.map(|d| d.0).unwrap_or(default_interval);
            let old = self.status.read().get(&cfg.name).cloned();
            // A changed query starts a new table.
            let keep = old.as_ref().is_some_and(|o| o.config.query == cfg.query);
            let rule = Arc::new(SqlRule {
                cfg: cfg.clone(),
                interval,
                session: self.session.clone(),
                store: self.store.clone(),
                status: self.status.clone(),
                tables: self.tables.clone(),
            });
            if !keep && let Err(e) = rule.load().await {
                tracing::warn!(rule = %cfg.name, "SQL rule table not read back: {e}");
            }
            status.insert(
                cfg.name.clone(),
                old.filter(|_| keep).unwrap_or(SqlRuleStatus {
                    config: cfg.clone(),
                    interval,
                    health: Health::Unknown,
                    last_error: None,
                    last_evaluation: None,
                    evaluation_time: Duration::ZERO,
                    rows: rule.rows(),
                }),
            );
            let (stop, stopped) = watch::channel(false);
            running.push((stop, tokio::spawn(rule.run(stopped))));
        }
        // Tables of rules that are gone leave the schema (their files stay).
        for name in self.status.read().keys() {
            if !status.contains_key(name) {
                let _ = self.session.deregister_rules_table(name);
                self.tables.write().remove(name);
            }
        }
        *self.status.write() = status;
    }

    pub async fn stop(&self) {
        let mut running = self.running.lock().await;
        for (stop, _) in running.iter() {
            let _ = stop.send(true);
        }
        for (_, task) in running.drain(..) {
            let _ = task.await;
        }
    }
}

struct SqlRule {
    cfg: SqlRuleConfig,
    interval: Duration,
    session: Arc<SqlSession>,
    store: Arc<dyn ObjectStore>,
    status: Arc<RwLock<BTreeMap<String, SqlRuleStatus>>>,
    tables: Arc<RwLock<BTreeMap<String, Vec<RecordBatch>>>>,
}

impl SqlRule {
    fn path(&self) -> object_store::path::Path {
        object_store::path::Path::from(format!("rules/{}.parquet", self.cfg.name))
    }

    /// The rows of the table now.
    fn rows(&self) -> usize {
        self.batches().iter().map(|b| b.num_rows()).sum()
    }

    fn batches(&self) -> Vec<RecordBatch> {
        self.tables
            .read()
            .get(&self.cfg.name)
            .cloned()
            .unwrap_or_default()
    }

    async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let interval = (self.interval.as_millis() as i64).max(1);
        loop {
            let now = quiver_storage::maintenance::now_ms();
            let next = now - now.rem_euclid(interval) + interval;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis((next - now) as u64)) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            let started = Instant::now();
            let result = self.evaluate(next).await;
            let mut status = self.status.write();
            if let Some(s) = status.get_mut(&self.cfg.name) {
                s.last_evaluation = Some(SystemTime::now());
                s.evaluation_time = started.elapsed();
                match result {
                    Ok(rows) => {
                        s.health = Health::Ok;
                        s.last_error = None;
                        s.rows = rows;
                    }
                    Err(e) => {
                        tracing::warn!(rule = %self.cfg.name, "SQL rule failed: {e}");
                        s.health = Health::Err;
                        s.last_error = Some(e);
                    }
                }
            }
        }
    }

    /// Runs the query once at `ts` (ms) and updates the table and its file; answers the rows.
    async fn evaluate(&self, ts: i64) -> Result<usize, String> {
        let df = self
            .session
            .sql(&self.cfg.query)
            .await
            .map_err(|e| e.to_string())?;
        // At most `max_rows` rows are kept, so no more are read (`--query.timeout` and the
        // memory pool bound the rest, as for every query).
        let mut stream = self.session.execute(df).await.map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        let mut rows = 0;
        while rows < self.cfg.max_rows {
            let Some(batch) = stream.next().await else {
                break;
            };
            let batch = batch.map_err(|e| e.to_string())?;
            let take = batch.num_rows().min(self.cfg.max_rows - rows);
            rows += take;
            answer.push(batch.slice(0, take));
        }
        let answer: Vec<RecordBatch> = answer
            .iter()
            .map(|b| with_evaluated_at(b, ts))
            .collect::<Result<_, _>>()?;
        let mut batches = match self.cfg.mode {
            SqlRuleMode::Replace => answer,
            SqlRuleMode::Append => {
                let mut old = self.batches();
                // A query whose columns changed starts the table again.
                if old
                    .first()
                    .zip(answer.first())
                    .is_some_and(|(o, n)| o.schema() != n.schema())
                {
                    old.clear();
                }
                old.extend(answer);
                trim_oldest(old, self.cfg.max_rows)
            }
        };
        batches.retain(|b| b.num_rows() > 0);
        let rows = batches.iter().map(|b| b.num_rows()).sum();
        self.install(batches.clone())?;
        self.persist(&batches).await?;
        Ok(rows)
    }

    fn install(&self, batches: Vec<RecordBatch>) -> Result<(), String> {
        let schema = batches
            .first()
            .map(|b| b.schema())
            .unwrap_or_else(|| Arc::new(Schema::empty()));
        let table = MemTable::try_new(schema, vec![batches.clone()]).map_err(|e| e.to_string())?;
        self.session
            .register_rules_table(&self.cfg.name, Arc::new(table))
            .map_err(|e| e.to_string())?;
        self.tables.write().insert(self.cfg.name.clone(), batches);
        Ok(())
    }

    async fn persist(&self, batches: &[RecordBatch]) -> Result<(), String> {
        let Some(first) = batches.first() else {
            return Ok(());
        };
        let mut buf = Vec::new();
        let mut w =
            datafusion::parquet::arrow::ArrowWriter::try_new(&mut buf, first.schema(), None)
                .map_err(|e| e.to_string())?;
        for b in batches {
            w.write(b).map_err(|e| e.to_string())?;
        }
        w.close().map_err(|e| e.to_string())?;
        self.store
            .put(&self.path(), PutPayload::from(Bytes::from(buf)))
            .await
            .map_err(|e| format!("writing {}: {e}", self.path()))?;
        Ok(())
    }

    /// Reads the table back from its file (nothing when there is none).
    async fn load(&self) -> Result<(), String> {
        let bytes = match self.store.get(&self.path()).await {
            Ok(r) => r.bytes().await.map_err(|e| e.to_string())?,
            Err(object_store::Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                bytes,
            )
            .map_err(|e| e.to_string())?
            .build()
            .map_err(|e| e.to_string())?;
        let batches: Vec<RecordBatch> = reader
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        self.install(batches)
    }
}

/// The batch with `evaluated_at` (the evaluation time) as its first column.
fn with_evaluated_at(b: &RecordBatch, ts: i64) -> Result<RecordBatch, String> {
    let mut fields = vec![Arc::new(Field::new(
        "evaluated_at",
        timestamp_type(),
        false,
    ))];
    fields.extend(b.schema().fields().iter().cloned());
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let mut columns: Vec<ArrayRef> = vec![Arc::new(
        TimestampMillisecondArray::from(vec![ts; b.num_rows()]).with_timezone("UTC"),
    )];
    columns.extend(b.columns().iter().cloned());
    RecordBatch::try_new(schema, columns).map_err(|e| e.to_string())
}

/// At most `max` rows, the newest.
fn trim_oldest(batches: Vec<RecordBatch>, max: usize) -> Vec<RecordBatch> {
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut skip = total.saturating_sub(max);
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        if skip >= b.num_rows() {
            skip -= b.num_rows();
            continue;
        }
        out.push(b.slice(skip, b.num_rows() - skip));
        skip = 0;
    }
    out
}
