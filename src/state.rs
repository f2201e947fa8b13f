//! The server's shared state: storage, engines, configuration, scrape pools, rules, limits and
//! credentials. The HTTP API, Flight, scraping and rules all reach each other's parts through
//! it, never through one another.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use quiver_ingest::remote_write2::Metadata;
use quiver_promql::{Engine, EngineOptions};
use quiver_sql::SqlSession;
use quiver_sql::system::SystemTable;
use quiver_storage::Db;
use tokio::sync::watch;

use crate::auth::{Auth, Principal};
use crate::config::{Config, Flags};
use crate::error::{ApiError, ErrorType};
use crate::metrics::ServerMetrics;
use crate::rules::RulesService;
use crate::scrape::ScrapeManager;
use crate::web::Web;

/// Most metric families whose pushed metadata is kept.
pub const MAX_PUSHED_METADATA: usize = 100_000;

/// Most bytes of a pushed help or unit text kept (the rest is cut).
pub const MAX_METADATA_TEXT: usize = 4096;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    /// Set once WAL replay is done; until then data endpoints answer 503.
    db: OnceLock<Arc<Db>>,
    /// The PromQL engine over `db`, set with it.
    engine: OnceLock<Arc<Engine>>,
    engine_options: EngineOptions,
    flags: Flags,
    metrics: Arc<ServerMetrics>,
    /// Set to true to shut the server down (`POST /-/quit`).
    shutdown: watch::Sender<bool>,
    /// The configuration in force.
    config: parking_lot::RwLock<Config>,
    /// The SQL session over `db`, set with it.
    sql: OnceLock<Arc<SqlSession>>,
    /// The scrape pools, set with the storage.
    scrape: OnceLock<Arc<ScrapeManager>>,
    /// Rule groups, notifications and SQL rules, set with the storage.
    rules: OnceLock<Arc<RulesService>>,
    /// The remote-write queues.
    remote_writer: Arc<crate::remote_write::RemoteWriter>,
    /// OTLP delta streams' running totals, with `--enable-feature=otlp-deltatocumulative`.
    otlp_delta: Option<Arc<parking_lot::Mutex<quiver_ingest::otlp::DeltaState>>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Per experiment run, the last arrival time given to a line without a timestamp.
    run_clocks: parking_lot::Mutex<std::collections::HashMap<(String, String), i64>>,
    /// Remote-write series ids by their encoded label bytes.
    series_cache: quiver_ingest::remote_write::SeriesCache,
    /// Metadata that remote write 2.0 senders pushed, by metric family (in memory: senders
    /// send it again with their series).
    pushed_metadata: parking_lot::Mutex<HashMap<String, Metadata>>,
    /// One permit per query running (`--query.max-concurrency`).
    queries: Arc<tokio::sync::Semaphore>,
    /// `--query.max-memory` in bytes (the pool itself is the engine options' runtime).
    sql_max_memory: usize,
    /// The web configuration in force and the credentials Flight and the HTTP API accept
    /// (`--flight.token-file`, the web configuration's users).
    web: Arc<Web>,
}

impl AppState {
    pub fn new(
        flags: Flags,
        engine_options: EngineOptions,
        metrics: Arc<ServerMetrics>,
        shutdown: watch::Sender<bool>,
        config: Config,
        web: Arc<Web>,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                db: OnceLock::new(),
                engine: OnceLock::new(),
                engine_options,
                flags: flags.clone(),
                metrics,
                shutdown,
                config: parking_lot::RwLock::new(config),
                scrape: OnceLock::new(),
                rules: OnceLock::new(),
                sql: OnceLock::new(),
                reloading: tokio::sync::Mutex::new(()),
                run_clocks: Default::default(),
                series_cache: Default::default(),
                pushed_metadata: Default::default(),
                otlp_delta: flags
                    .enable_feature
                    .iter()
                    .any(|f| f.trim() == "otlp-deltatocumulative")
                    .then(Default::default),
                remote_writer: crate::remote_write::RemoteWriter::new(
                    crate::time::parse_prometheus_duration(&flags.remote_flush_deadline)
                        .filter(|ms| *ms >= 0)
                        .map_or(std::time::Duration::from_secs(60), |ms| {
                            std::time::Duration::from_millis(ms as u64)
                        }),
                ),
                queries: Arc::new(tokio::sync::Semaphore::new(
                    flags.query_max_concurrency.max(1),
                )),
                // Checked at start-up (`engine_options`), which reads the same flags first.
                sql_max_memory: crate::sql_limits(&flags).map_or(0, |l| l.max_memory),
                web,
            }),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> Config {
        self.inner.config.read().clone()
    }

    /// The SQL session, or 503 while the WAL is still replaying.
    pub fn sql(&self) -> Result<&Arc<SqlSession>, ApiError> {
        self.inner
            .sql
            .get()
            .ok_or_else(|| ApiError::unavailable("the storage is not ready yet (WAL replay)"))
    }

    /// The scrape pools, or 503 while the WAL is still replaying.
    pub fn scrape(&self) -> Result<&Arc<ScrapeManager>, ApiError> {
        self.inner
            .scrape
            .get()
            .ok_or_else(|| ApiError::unavailable("the storage is not ready yet (WAL replay)"))
    }

    /// Starts scraping with the configuration in force.
    pub async fn start_scraping(&self, manager: Arc<ScrapeManager>) -> Result<(), String> {
        let _guard = self.inner.reloading.lock().await;
        let cfg = self.config();
        let _ = self.inner.scrape.set(manager.clone());
        manager.apply(&cfg.file).await
    }

    /// Starts the rules of the configuration in force (a bad rule file fails the start).
    pub async fn start_rules(&self, rules: Arc<RulesService>) -> Result<(), String> {
        let _guard = self.inner.reloading.lock().await;
        let cfg = self.config();
        let loaded = RulesService::load(&cfg)?;
        let _ = self.inner.rules.set(rules.clone());
        rules.apply(&cfg, &loaded).await
    }

    /// Starts the remote-write queues of the configuration in force.
    pub async fn start_remote_write(&self) -> Result<(), String> {
        let _guard = self.inner.reloading.lock().await;
        let db = self.db().map_err(|e| e.message)?.clone();
        self.inner
            .remote_writer
            .apply(&db, &self.config().file)
            .await
    }

    /// How OTLP metrics become series now: the configuration's `otlp:` section (read under the
    /// lock, not cloned) and the lookback that spaces `target_info`.
    pub fn otlp_options(&self) -> Result<quiver_ingest::otlp::Options, String> {
        let lookback_ms = self.inner.engine_options.lookback.as_millis() as i64;
        self.inner.config.read().file.otlp.options(lookback_ms)
    }

    /// The OTLP delta state, when delta conversion is on.
    pub fn otlp_delta(&self) -> Option<Arc<parking_lot::Mutex<quiver_ingest::otlp::DeltaState>>> {
        self.inner.otlp_delta.clone()
    }

    pub fn remote_writer(&self) -> &Arc<crate::remote_write::RemoteWriter> {
        &self.inner.remote_writer
    }

    /// The rule groups, or 503 while the WAL is still replaying.
    pub fn rules(&self) -> Result<&Arc<crate::rules::RuleManager>, ApiError> {
        self.rules_service().map(|r| &r.manager)
    }

    /// The Alertmanager notifier, or 503 while the WAL is still replaying.
    pub fn notifier(&self) -> Result<&Arc<crate::rules::notifier::Notifier>, ApiError> {
        self.rules_service().map(|r| &r.notifier)
    }

    pub fn rules_service(&self) -> Result<&Arc<RulesService>, ApiError> {
        self.inner
            .rules
            .get()
            .ok_or_else(|| ApiError::unavailable("the storage is not ready yet (WAL replay)"))
    }

    /// Re-reads the configuration file and its rule files and applies them; on any error the
    /// running configuration (scrape pools and rules) stays in force and the error is returned.
    pub async fn reload(&self) -> Result<(), String> {
        let _guard = self.inner.reloading.lock().await;
        let result = async {
            let current = self.config();
            let next = match &self.inner.flags.config_file {
                Some(path) => Config::load(Some(path)).map_err(|e| e.to_string())?,
                // The embedded default does not change.
                None => current.clone(),
            };
            // All or nothing: every rule file is read and every client (scrape targets,
            // Alertmanagers) built before any part of the running configuration is replaced.
            let loaded = RulesService::load(&next)?;
            let rules_plan = RulesService::prepare(&next)?;
            let scrape_plan = match self.inner.scrape.get() {
                Some(m) => Some(m.prepare(&next.file).await?),
                None => None,
            };
            // Clients are built before any queue changes: an error here leaves them all.
            if let Some(db) = self.inner.db.get() {
                self.inner.remote_writer.apply(db, &next.file).await?;
            }
            if let (Some(m), Some(plan)) = (self.inner.scrape.get(), scrape_plan) {
                m.apply_prepared(plan).await;
            }
            if let Some(r) = self.inner.rules.get() {
                r.apply_prepared(&next, &loaded, rules_plan).await;
            }
            *self.inner.config.write() = next;
            Ok::<(), String>(())
        }
        .await;
        let m = self.metrics();
        m.config_reload_failed
            .store(result.is_err(), std::sync::atomic::Ordering::Relaxed);
        match &result {
            Ok(()) => {
                m.config_last_success.store(
                    (quiver_storage::maintenance::now_ms() / 1000) as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
                tracing::info!("configuration reloaded");
            }
            Err(e) => tracing::error!("configuration reload failed, keeping the running one: {e}"),
        }
        result
    }

    /// Waits for a turn to run a query (`--query.max-concurrency`); a query that cannot start
    /// within `--query.timeout` gets `timeout` (503).
    pub async fn query_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        let timeout = self.inner.engine_options.timeout;
        match tokio::time::timeout(timeout, self.inner.queries.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(ApiError::unavailable("the server is shutting down")),
            Err(_) => Err(ApiError::new(
                ErrorType::Timeout,
                format!(
                    "query timed out in {timeout:?} waiting for a turn (--query.max-concurrency {})",
                    self.inner.flags.query_max_concurrency
                ),
            )),
        }
    }

    /// `--query.timeout`.
    pub fn query_timeout(&self) -> std::time::Duration {
        self.inner.engine_options.timeout
    }

    /// The credentials Flight and the HTTP API accept.
    pub fn auth(&self) -> &Arc<Auth> {
        self.inner.web.auth()
    }

    /// The web configuration in force.
    pub fn web(&self) -> &Arc<Web> {
        &self.inner.web
    }

    /// Checks a request to an endpoint the token guards (`/api/v1/sql`) when a token is
    /// configured: the request must carry it, or the auth layer must have let it in as a user
    /// of the web configuration (who have full access, as in Prometheus).
    pub fn authorize(
        &self,
        headers: &axum::http::HeaderMap,
        principal: Option<&Principal>,
    ) -> Result<(), ApiError> {
        if self.auth().token().is_none() || matches!(principal, Some(Principal::User(_))) {
            return Ok(());
        }
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match header {
            Some(h) if self.auth().token_matches(h) => Ok(()),
            Some(_) => Err(ApiError::new(
                ErrorType::Unauthorized,
                "the bearer token is not valid",
            )),
            None => Err(ApiError::new(
                ErrorType::Unauthorized,
                "this endpoint needs \"Authorization: Bearer <token>\" (--flight.token-file)",
            )),
        }
    }

    /// Reserves `n` consecutive milliseconds of arrival time for a run's lines without
    /// timestamps, after any the run was given before: no two such lines share a sample.
    pub fn reserve_arrival_times(&self, experiment: &str, run: &str, n: usize) -> i64 {
        let now = quiver_storage::maintenance::now_ms();
        let mut clocks = self.inner.run_clocks.lock();
        let last = clocks
            .entry((experiment.to_string(), run.to_string()))
            .or_insert(i64::MIN);
        let base = now.max(last.saturating_add(1));
        *last = base + n as i64 - 1;
        base
    }

    /// Makes the storage available (the server is ready from now on).
    pub fn set_db(&self, db: Arc<Db>) {
        let engine = Arc::new(Engine::new(db.clone(), self.inner.engine_options.clone()));
        let _ = self.inner.engine.set(engine.clone());
        let limits = quiver_sql::SqlLimits {
            timeout: self.inner.engine_options.timeout,
            max_memory: self.inner.sql_max_memory,
        };
        match SqlSession::new(
            db.clone(),
            limits,
            self.inner.engine_options.runtime.clone(),
        ) {
            Ok(s) => {
                // PromQL inside SQL: the two query crates stay siblings, wired here.
                s.context().register_udtf(
                    "promql",
                    Arc::new(quiver_promql::PromqlTableFunction::new(engine)),
                );
                self.register_system_tables(&s);
                let _ = self.inner.sql.set(Arc::new(s));
            }
            Err(e) => tracing::error!("the SQL session could not be set up: {e}"),
        }
        let _ = self.inner.db.set(db);
    }

    /// The server's state as tables of schema `system`. They read the state through a weak
    /// reference: the session belongs to the state and must not keep it alive.
    fn register_system_tables(&self, session: &SqlSession) {
        let weak = Arc::downgrade(&self.inner);
        let targets = Arc::new(SystemTable::new(
            crate::scrape::table::targets_schema(),
            Arc::new(move || {
                let pools = weak
                    .upgrade()
                    .and_then(|inner| inner.scrape.get().map(|m| m.pools()))
                    .unwrap_or_default();
                crate::scrape::table::targets_batch(&pools)
            }),
        ));
        if let Err(e) = session.register_system_table("targets", targets) {
            tracing::error!("system.targets could not be registered: {e}");
        }
        let rules_of = |inner: &Inner| {
            inner
                .rules
                .get()
                .map(|r| (r.manager.groups(), r.sql.status()))
                .unwrap_or_default()
        };
        let weak = Arc::downgrade(&self.inner);
        let rules = Arc::new(SystemTable::new(
            crate::rules::table::rules_schema(),
            Arc::new(move || {
                let (groups, sql) = weak.upgrade().map(|i| rules_of(&i)).unwrap_or_default();
                crate::rules::table::rules_batch(&groups, &sql)
            }),
        ));
        let weak = Arc::downgrade(&self.inner);
        let alerts = Arc::new(SystemTable::new(
            crate::rules::table::alerts_schema(),
            Arc::new(move || {
                let (groups, _) = weak.upgrade().map(|i| rules_of(&i)).unwrap_or_default();
                crate::rules::table::alerts_batch(&groups)
            }),
        ));
        for (name, table) in [("rules", rules), ("alerts", alerts)] {
            if let Err(e) = session.register_system_table(name, table) {
                tracing::error!("system.{name} could not be registered: {e}");
            }
        }
    }

    /// The PromQL engine, or 503 while the WAL is still replaying.
    pub fn engine(&self) -> Result<&Arc<Engine>, ApiError> {
        self.inner
            .engine
            .get()
            .ok_or_else(|| ApiError::unavailable("the storage is not ready yet (WAL replay)"))
    }

    /// The storage, or 503 while the WAL is still replaying.
    pub fn db(&self) -> Result<&Arc<Db>, ApiError> {
        self.inner
            .db
            .get()
            .ok_or_else(|| ApiError::unavailable("the storage is not ready yet (WAL replay)"))
    }

    pub fn flags(&self) -> &Flags {
        &self.inner.flags
    }

    pub fn metrics(&self) -> &Arc<ServerMetrics> {
        &self.inner.metrics
    }

    /// Remote-write series ids by their encoded label bytes.
    pub fn series_cache(&self) -> &quiver_ingest::remote_write::SeriesCache {
        &self.inner.series_cache
    }

    /// Keeps pushed metadata, the latest for each family; past [`MAX_PUSHED_METADATA`]
    /// families, new ones are not kept (known ones still change).
    pub fn record_metadata(&self, entries: Vec<(String, Metadata)>) {
        if entries.is_empty() {
            return;
        }
        let mut kept = self.inner.pushed_metadata.lock();
        for (family, mut m) in entries {
            if kept.len() >= MAX_PUSHED_METADATA && !kept.contains_key(&family) {
                continue;
            }
            // Bounded per entry too: help and unit past MAX_METADATA_TEXT bytes are cut.
            for text in [&mut m.help, &mut m.unit] {
                if text.len() > MAX_METADATA_TEXT {
                    let mut end = MAX_METADATA_TEXT;
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    *text = std::sync::Arc::from(&text[..end]);
                }
            }
            kept.insert(family, m);
        }
    }

    /// The pushed metadata, by family.
    pub fn pushed_metadata(&self) -> Vec<(String, Metadata)> {
        let kept = self.inner.pushed_metadata.lock();
        kept.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn request_shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
    }
}
