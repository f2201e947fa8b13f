//! Quiver, the server: a columnar metrics database that speaks Prometheus.
//!
//! ```text
//!   remote write ─┐                                  ┌─► /api/v1/series, labels (index)
//!   text import  ─┼─► ingest ─► quiver_storage::Db ──┤
//!   scrape       ─┘   (4xx on bad input)  WAL, head, └─► DataFusion tables (SQL, PromQL)
//!                                         Parquet blocks via object_store
//! ```
//!
//! Layout:
//! - [`config`]: flags (Prometheus's names) and the configuration file;
//! - [`api`]: the HTTP API: routes, the error envelope, parameters;
//! - [`ingest`]: remote write and the exposition formats (text 0.0.4, OpenMetrics);
//! - [`scrape`]: targets, relabeling, scrape loops, staleness, reloads;
//! - [`flight`]: Arrow Flight and Flight SQL over the SQL session;
//! - [`auth`] and [`tls`]: credentials and TLS for both ports (`--web.config.file`);
//! - [`rules`]: recording and alerting rules, notifications to Alertmanager, SQL rules;
//! - [`metrics`]: Quiver's own `/metrics`.
//!
//! `main.rs` is thin: it parses flags and calls [`run`], which tests call too, on `127.0.0.1:0`.

pub mod alloc;
pub mod api;
pub mod auth;
pub mod config;
pub mod discovery;
pub mod error;
pub mod flight;
#[doc(hidden)]
pub mod fuzzing;
pub mod http_client;
pub mod ingest;
pub mod metrics;
pub mod relabel;
pub mod remote_write;
pub mod rules;
pub mod scrape;
pub mod state;
pub mod time;
pub mod tls;
pub mod web;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use object_store::ObjectStore;
use quiver_storage::{Db, Options};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::app;
use crate::auth::Auth;
use crate::config::web::WebConfig;
use crate::config::{Config, Flags};
use crate::metrics::ServerMetrics;
use crate::rules::RulesService;
use crate::scrape::ScrapeManager;
use crate::state::AppState;
use crate::time::parse_prometheus_duration;
use crate::web::Web;

/// Runs the server on `listener` until `shutdown` resolves (or `/-/quit` is called), with
/// Flight on `--flight.listen-address`. See [`run_with_flight`].
pub async fn run(
    flags: Flags,
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let flight = bind_flight(&flags).await?;
    run_with_flight(flags, config, listener, flight, shutdown).await
}

/// Binds `--flight.listen-address` (`None` when it is empty: no Flight).
pub async fn bind_flight(flags: &Flags) -> anyhow::Result<Option<TcpListener>> {
    if flags.flight_listen_address.is_empty() {
        return Ok(None);
    }
    let l = TcpListener::bind(&flags.flight_listen_address)
        .await
        .with_context(|| {
            format!(
                "binding --flight.listen-address {}",
                flags.flight_listen_address
            )
        })?;
    Ok(Some(l))
}

/// Reads `--flight.token-file`: the token is the file's content without surrounding whitespace.
fn read_token(flags: &Flags) -> anyhow::Result<Option<String>> {
    let Some(path) = &flags.flight_token_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--flight.token-file: reading {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        anyhow::bail!("--flight.token-file: {} is empty", path.display());
    }
    Ok(Some(token.to_string()))
}

/// Reads `--web.config.file` (none: no TLS, no users, no extra headers).
fn read_web_config(flags: &Flags) -> anyhow::Result<Option<WebConfig>> {
    let Some(path) = &flags.web_config_file else {
        return Ok(None);
    };
    let web = WebConfig::load(path).context("--web.config.file")?;
    if web.tls.is_none() && !web.users.is_empty() {
        tracing::warn!(
            "{}: basic auth without TLS sends passwords in the clear",
            web.source
        );
    }
    Ok(Some(web))
}

/// Runs the server on `listener` (HTTP) and `flight` until `shutdown` resolves (or `/-/quit`
/// is called): serves the API at once (answering 503 for data until WAL replay is done), opens
/// the storage, runs maintenance in the background, and on shutdown stops taking writes and
/// closes the WAL.
pub async fn run_with_flight(
    flags: Flags,
    config: Config,
    listener: TcpListener,
    flight: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let opts = storage_options(&flags)?;
    let token = read_token(&flags)?;
    let web = read_web_config(&flags)?;
    let maintenance_every =
        duration_flag("storage.maintenance-interval", &flags.maintenance_interval)?;
    let port = listener
        .local_addr()
        .context("reading the listen address")?
        .port();
    // The embedded default scrapes Quiver itself, on the port it really listens on.
    let config = if config.source == config::EMBEDDED {
        Config::embedded(port)
    } else {
        config
    };
    tracing::info!(config = %config.source, "configuration loaded");
    let metrics = Arc::new(ServerMetrics::default());
    metrics.config_last_success.store(
        (quiver_storage::maintenance::now_ms() / 1000) as u64,
        std::sync::atomic::Ordering::Relaxed,
    );

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let auth = Arc::new(Auth::new(
        token,
        web.as_ref().map(|w| w.users.clone()).unwrap_or_default(),
    ));
    if let Some(w) = &web {
        tracing::info!(
            file = %w.source,
            tls = w.tls.is_some(),
            client_auth = ?w.client_auth,
            users = w.users.len(),
            "web configuration loaded"
        );
    }
    let web = Web::new(flags.web_config_file.clone(), web.as_ref(), auth);
    duration_flag(
        "storage.remote.flush-deadline",
        &flags.remote_flush_deadline,
    )?;
    for feature in &flags.enable_feature {
        match feature.trim() {
            "otlp-deltatocumulative" => {
                tracing::info!("OTLP delta temporality is converted to cumulative")
            }
            "" => {}
            other => tracing::warn!(
                "--enable-feature={other}: accepted and not acted on (Quiver acts on otlp-deltatocumulative)"
            ),
        }
    }
    let state = AppState::new(
        flags.clone(),
        engine_options(&flags)?,
        metrics.clone(),
        stop_tx.clone(),
        config,
        web.clone(),
    );
    let router = app(state.clone());
    let server_stop = stop_rx.clone();
    let server = if web.tls_on() {
        // The HTTP port speaks HTTP/1.1 (axum is built without HTTP/2).
        tokio::spawn(serve_http(
            tls::TlsListener::new(listener, web.tls_source(), &[b"http/1.1"]),
            router,
            server_stop,
        ))
    } else {
        tokio::spawn(serve_http(listener, router, server_stop))
    };

    let flight_server = flight.map(|l| {
        let mut stop = stop_rx.clone();
        tokio::spawn(flight::serve(state.clone(), l, async move {
            let _ = stop.wait_for(|s| *s).await;
        }))
    });

    // One writer per bucket prefix: the lease is taken before the storage opens (opening
    // deletes orphans, which another writer's blocks in flight would look like).
    let lease = match opts.local_block_dir {
        Some(_) => None,
        None => {
            let ttl = duration_flag("storage.lease-ttl", &flags.storage_lease_ttl)?;
            let owner = format!(
                "{}:{port} pid {}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "quiver".into()),
                std::process::id()
            );
            quiver_storage::lease::Lease::acquire(opts.block_store.clone(), owner, ttl)
                .await
                .context("--storage.object-store.url")?
                .map(Arc::new)
        }
    };
    let renewer = lease.clone().map(|lease| {
        let mut stop = stop_rx.clone();
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(lease.renew_every()) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                match lease.renew().await {
                    Ok(()) => {}
                    Err(e @ quiver_storage::lease::LeaseError::Lost(_)) => {
                        tracing::error!("{e}; shutting down");
                        let _ = stop_tx.send(true);
                        return;
                    }
                    // Tried again at the next turn; two may fail before the lease expires.
                    Err(e) => tracing::warn!("renewing the block store's lease: {e}"),
                }
            }
        })
    });
    // A start that fails from here on gives the lease back rather than leaving it to expire.
    let give_back = |lease: Option<Arc<quiver_storage::lease::Lease>>| async move {
        if let Some(lease) = lease {
            let _ = lease.release().await;
        }
    };
    let db = match Db::open(opts).await {
        Ok(db) => {
            if let Some(lease) = &lease {
                db.hold_lease(lease.clone());
            }
            db
        }
        Err(e) => {
            let _ = stop_tx.send(true);
            give_back(lease).await;
            return Err(anyhow::Error::new(e).context("opening the storage"));
        }
    };
    state.set_db(db.clone());
    tracing::info!("storage ready");
    // Remote write first: its queues read the WAL from here on, so the first scrapes are sent.
    if let Err(e) = state.start_remote_write().await {
        let _ = stop_tx.send(true);
        db.close().await;
        give_back(lease).await;
        anyhow::bail!("starting remote write: {e}");
    }
    let scraper = ScrapeManager::new(db.clone(), metrics.scrape.clone());
    if let Err(e) = state.start_scraping(scraper.clone()).await {
        let _ = stop_tx.send(true);
        db.close().await;
        give_back(lease).await;
        anyhow::bail!("starting the scrape pools: {e}");
    }
    let rules = RulesService::new(
        db.clone(),
        state
            .engine()
            .map_err(|e| anyhow::anyhow!(e.message))?
            .clone(),
        state.sql().map_err(|e| anyhow::anyhow!(e.message))?.clone(),
        rule_options(&flags, port)?,
    );
    if let Err(e) = state.start_rules(rules.clone()).await {
        let _ = stop_tx.send(true);
        scraper.stop().await;
        rules.stop().await;
        db.close().await;
        give_back(lease).await;
        anyhow::bail!("starting the rules: {e}");
    }
    let reloader = tokio::spawn(reload_on_sighup(state.clone(), stop_rx.clone()));

    let maintenance = tokio::spawn({
        let db = db.clone();
        let mut stop = stop_rx.clone();
        async move {
            let mut tick = tokio::time::interval(maintenance_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                if let Err(e) = db.maintain(false).await {
                    tracing::error!("storage maintenance failed: {}", error::error_chain(&e));
                }
            }
        }
    });

    tokio::select! {
        _ = shutdown => {}
        _ = stop_rx.wait_for(|s| *s) => {}
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    reloader.abort();
    scraper.stop().await;
    rules.stop().await;
    state.remote_writer().stop().await;
    let _ = maintenance.await;
    db.close().await;
    if let Some(r) = renewer {
        let _ = r.await;
    }
    if let Some(lease) = &lease
        && let Err(e) = lease.release().await
    {
        tracing::warn!("releasing the block store's lease: {e}");
    }
    if let Some(f) = flight_server {
        match f.await {
            Ok(Err(e)) => tracing::error!("serving Flight: {e}"),
            Err(e) => tracing::error!("the Flight task failed: {e}"),
            Ok(Ok(())) => {}
        }
    }
    server
        .await
        .context("server task")?
        .context("serving HTTP")?;
    tracing::info!("stopped");
    Ok(())
}

/// Serves the API on `listener` (plain TCP or TLS) until `stop` turns true.
async fn serve_http<L>(
    listener: L,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}

/// Reloads the configuration on SIGHUP, as Prometheus does.
async fn reload_on_sighup(state: AppState, mut stop: watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = hup.recv() => { let _ = state.reload().await; }
                _ = &mut stopped => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = stop.wait_for(|s| *s).await;
        drop(state);
    }
}

/// Storage options from the flags: the WAL under the storage path, blocks in the object store.
pub fn storage_options(flags: &Flags) -> anyhow::Result<Options> {
    std::fs::create_dir_all(&flags.storage_path).with_context(|| {
        format!(
            "creating the storage folder {}",
            flags.storage_path.display()
        )
    })?;
    let (store, local) = block_store(flags)?;
    let mut opts = Options::new(flags.storage_path.join("wal"), store);
    opts.local_block_dir = local;
    opts.retention_ms =
        duration_flag("storage.retention.time", &flags.storage_retention_time)?.as_millis() as i64;
    let block =
        duration_flag("storage.tsdb.min-block-duration", &flags.block_duration)?.as_millis() as i64;
    if block <= 0 {
        anyhow::bail!("--storage.tsdb.min-block-duration must be positive");
    }
    opts.block_duration_ms = block;
    opts.compaction_ranges_ms = vec![block, (block * 12).max(86_400_000)];
    Ok(opts)
}

/// PromQL engine options from the `--query.*` flags.
pub fn engine_options(flags: &Flags) -> anyhow::Result<quiver_promql::EngineOptions> {
    let lookback = duration_flag("query.lookback-delta", &flags.query_lookback_delta)?;
    if lookback.is_zero() {
        anyhow::bail!("--query.lookback-delta must be positive");
    }
    let sql = sql_limits(flags)?;
    Ok(quiver_promql::EngineOptions {
        lookback,
        subquery_step: Duration::from_secs(60),
        max_samples: flags.query_max_samples,
        timeout: sql.timeout,
        runtime: sql.runtime().context("setting up the query memory pool")?,
    })
}

/// SQL's bounds from the `--query.*` flags (PromQL shares the timeout and the memory pool).
pub fn sql_limits(flags: &Flags) -> anyhow::Result<quiver_sql::SqlLimits> {
    let max_memory = config::parse_memory_limit(&flags.query_max_memory, config::machine_memory())
        .filter(|b| *b > 0)
        .with_context(|| {
            format!(
                "--query.max-memory: {:?} is not a byte size (4GB, 512MiB) or a share of memory (25%)",
                flags.query_max_memory
            )
        })?;
    if flags.query_max_concurrency == 0 {
        anyhow::bail!("--query.max-concurrency must be at least 1");
    }
    Ok(quiver_sql::SqlLimits {
        timeout: duration_flag("query.timeout", &flags.query_timeout)?,
        max_memory,
    })
}

/// The rules' settings from the flags.
fn rule_options(flags: &Flags, port: u16) -> anyhow::Result<rules::RuleOptions> {
    Ok(rules::RuleOptions {
        external_url: flags
            .web_external_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| rules::service::default_external_url(port)),
        resend_delay: duration_flag("rules.alert.resend-delay", &flags.rules_alert_resend_delay)?,
        for_outage_tolerance: duration_flag(
            "rules.alert.for-outage-tolerance",
            &flags.rules_alert_for_outage_tolerance,
        )?,
        for_grace_period: duration_flag(
            "rules.alert.for-grace-period",
            &flags.rules_alert_for_grace_period,
        )?,
        queue_capacity: flags.alertmanager_queue_capacity,
    })
}

fn duration_flag(name: &str, value: &str) -> anyhow::Result<Duration> {
    parse_prometheus_duration(value)
        .filter(|ms| *ms >= 0)
        .map(|ms| Duration::from_millis(ms as u64))
        .with_context(|| format!("--{name}: {value:?} is not a duration (like 15d, 12h, 30m)"))
}

/// The block store: a local folder by default, or an `s3://`, `gs://`, `az://` URL; with the
/// folder when it is local (`file://` too), whose writes the storage syncs itself.
fn block_store(flags: &Flags) -> anyhow::Result<(Arc<dyn ObjectStore>, Option<PathBuf>)> {
    let local = |dir: PathBuf| -> anyhow::Result<(Arc<dyn ObjectStore>, Option<PathBuf>)> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)?
            .with_automatic_cleanup(true);
        Ok((Arc::new(store), Some(dir)))
    };
    let Some(raw) = &flags.storage_object_store_url else {
        return local(flags.storage_path.join("blocks"));
    };
    let url = url::Url::parse(raw)
        .with_context(|| format!("--storage.object-store.url: {raw:?} is not a URL"))?;
    if url.scheme() == "file" {
        let dir = url
            .to_file_path()
            .map_err(|_| anyhow::anyhow!("--storage.object-store.url: bad file URL {raw:?}"))?;
        return local(dir);
    }
    let env = std::env::vars().map(|(k, v)| (k.to_ascii_lowercase(), v));
    let (store, prefix) = object_store::parse_url_opts(&url, env)
        .with_context(|| format!("--storage.object-store.url: cannot use {raw:?}"))?;
    let store: Arc<dyn ObjectStore> = Arc::from(store);
    if prefix.as_ref().is_empty() {
        Ok((store, None))
    } else {
        Ok((
            Arc::new(object_store::prefix::PrefixStore::new(store, prefix)),
            None,
        ))
    }
}
