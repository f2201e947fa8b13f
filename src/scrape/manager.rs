//! Scrape pools, one per job: discovery feeds targets, each target runs its own loop.
//!
//! A reload compares each job with the running one: an unchanged job is left alone (its
//! targets keep scraping on their schedule); a changed job's loops stop and hand their caches to
//! the new pool, so a target that stays gets no staleness markers and no re-parsing; a target
//! that goes away (or a job that is removed) gets Prometheus's end-of-run staleness markers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use quiver_storage::Db;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::file::{ConfigFile, ScrapeJob};

use super::scraper::{LoopCtx, LoopState, ScrapeMetrics, Settings, Stop, TargetShared, run_loop};
use super::target::{Populated, targets_from_groups};
use crate::discovery::{self, FileSd, TargetGroup};
use crate::relabel::LabelMap;

/// A configuration's scrape jobs, with the clients of the new and changed ones built.
pub struct ScrapePlan {
    jobs: BTreeMap<String, ScrapeJob>,
    clients: HashMap<String, reqwest::Client>,
}

/// Every scrape pool.
pub struct ScrapeManager {
    db: Arc<Db>,
    metrics: Arc<ScrapeMetrics>,
    pools: tokio::sync::Mutex<BTreeMap<String, Arc<Pool>>>,
    /// A copy of the pools for readers that must not wait (the API).
    view: RwLock<Vec<Arc<Pool>>>,
}

/// What the API shows of a pool.
#[derive(Debug, Default, Clone)]
pub struct PoolView {
    pub active: Vec<Arc<TargetShared>>,
    pub dropped: Vec<LabelMap>,
    pub dropped_count: usize,
}

pub struct Pool {
    pub name: String,
    job: Arc<ScrapeJob>,
    client: reqwest::Client,
    inner: tokio::sync::Mutex<PoolInner>,
    view: RwLock<PoolView>,
    over_limit: Arc<Mutex<Option<String>>>,
    sd_stop: watch::Sender<bool>,
}

#[derive(Default)]
struct PoolInner {
    loops: HashMap<u64, LoopHandle>,
    /// Caches handed over by the previous pool of the same job.
    handover: HashMap<u64, (Arc<TargetShared>, LoopState)>,
    /// Loops of targets that went away, waiting to write staleness markers.
    stopping: HashMap<u64, watch::Sender<Stop>>,
    synced: bool,
}

struct LoopHandle {
    shared: Arc<TargetShared>,
    stop: watch::Sender<Stop>,
    task: JoinHandle<LoopState>,
}

impl ScrapeManager {
    pub fn new(db: Arc<Db>, metrics: Arc<ScrapeMetrics>) -> Arc<Self> {
        Arc::new(ScrapeManager {
            db,
            metrics,
            pools: tokio::sync::Mutex::new(BTreeMap::new()),
            view: RwLock::new(Vec::new()),
        })
    }

    /// Applies a (validated) configuration: an error (a TLS file that cannot be read) leaves
    /// the running pools as they were.
    pub async fn apply(&self, cfg: &ConfigFile) -> Result<(), String> {
        let plan = self.prepare(cfg).await?;
        self.apply_prepared(plan).await;
        Ok(())
    }

    /// Builds what a configuration needs (a client for every new or changed job) without
    /// changing anything: a reload prepares every part before it applies any.
    pub async fn prepare(&self, cfg: &ConfigFile) -> Result<ScrapePlan, String> {
        let jobs: BTreeMap<String, ScrapeJob> = cfg
            .jobs()
            .into_iter()
            .map(|j| (j.cfg.job_name.clone(), j))
            .collect();
        let pools = self.pools.lock().await;
        let mut clients = HashMap::new();
        for (name, job) in &jobs {
            if pools.get(name).is_some_and(|p| *p.job == *job) {
                continue;
            }
            let client = build_client(job, None)
                .map_err(|e| format!("scrape_configs (job {name:?}): {e}"))?;
            clients.insert(name.clone(), client);
        }
        Ok(ScrapePlan { jobs, clients })
    }

    /// Puts a prepared configuration in force (the caller serializes reloads, so the pools are
    /// the ones it was prepared against).
    pub async fn apply_prepared(&self, plan: ScrapePlan) {
        let ScrapePlan { jobs, mut clients } = plan;
        let mut pools = self.pools.lock().await;
        let names: Vec<String> = pools.keys().cloned().collect();
        let mut handovers: HashMap<String, HashMap<u64, (Arc<TargetShared>, LoopState)>> =
            HashMap::new();
        for name in names {
            let keep = jobs.get(&name).is_some_and(|j| *pools[&name].job == *j);
            if keep {
                continue;
            }
            let pool = pools.remove(&name).expect("listed");
            let changed = jobs.contains_key(&name);
            let states = pool
                .shut(if changed { Stop::Quiet } else { Stop::Stale })
                .await;
            if changed {
                handovers.insert(name, states);
            }
        }
        for (name, job) in &jobs {
            if pools.contains_key(name) {
                continue;
            }
            let Some(client) = clients.remove(name) else {
                // Prepared as unchanged, and still running: nothing to start.
                continue;
            };
            let name = name.clone();
            let job = Arc::new(job.clone());
            let pool = Pool::start(
                self.db.clone(),
                self.metrics.clone(),
                job,
                client,
                handovers.remove(&name).unwrap_or_default(),
            );
            pools.insert(name, pool);
        }
        *self.view.write() = pools.values().cloned().collect();
    }

    /// Stops every loop without staleness markers (the server is shutting down).
    pub async fn stop(&self) {
        let mut pools = self.pools.lock().await;
        for (_, pool) in std::mem::take(&mut *pools) {
            pool.shut(Stop::Quiet).await;
        }
        self.view.write().clear();
    }

    /// The pools, for the API.
    pub fn pools(&self) -> Vec<Arc<Pool>> {
        self.view.read().clone()
    }

    pub fn metrics(&self) -> &Arc<ScrapeMetrics> {
        &self.metrics
    }
}

/// The HTTP client of a job; `resolve` pins a host name to an address (for `server_name`).
fn build_client(
    job: &ScrapeJob,
    resolve: Option<(&str, std::net::SocketAddr)>,
) -> Result<reqwest::Client, String> {
    let cfg = &job.cfg;
    crate::http_client::build_client(
        cfg.tls_config.as_ref(),
        cfg.follow_redirects,
        cfg.enable_compression,
        resolve,
    )
}

/// With `tls_config.server_name`, the request goes to that name (so TLS checks the certificate
/// against it), resolved to the target's address by a client of its own.
fn client_for_target(
    job: &ScrapeJob,
    pool_client: &reqwest::Client,
    target_url: &str,
) -> (reqwest::Client, String) {
    let keep = || (pool_client.clone(), target_url.to_string());
    let Some(name) = job
        .cfg
        .tls_config
        .as_ref()
        .and_then(|t| t.server_name.as_deref())
    else {
        return keep();
    };
    let Ok(mut url) = url::Url::parse(target_url) else {
        return keep();
    };
    let (Some(host), Some(port)) = (
        url.host_str().map(str::to_string),
        url.port_or_known_default(),
    ) else {
        return keep();
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addr = match std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .ok()
        .and_then(|mut a| a.next())
    {
        Some(a) => a,
        None => {
            tracing::warn!(job = %job.cfg.job_name, "cannot resolve {host} for server_name {name}");
            return keep();
        }
    };
    match build_client(job, Some((name, addr))) {
        Ok(client) if url.set_host(Some(name)).is_ok() => (client, url.to_string()),
        _ => keep(),
    }
}

impl Pool {
    fn start(
        db: Arc<Db>,
        metrics: Arc<ScrapeMetrics>,
        job: Arc<ScrapeJob>,
        client: reqwest::Client,
        handover: HashMap<u64, (Arc<TargetShared>, LoopState)>,
    ) -> Arc<Pool> {
        let (sd_stop, mut sd_rx) = watch::channel(false);
        let pool = Arc::new(Pool {
            name: job.cfg.job_name.clone(),
            job: job.clone(),
            client,
            inner: tokio::sync::Mutex::new(PoolInner {
                handover,
                ..Default::default()
            }),
            view: RwLock::new(PoolView::default()),
            over_limit: Arc::new(Mutex::new(None)),
            sd_stop,
        });
        let static_groups = discovery::static_groups(&job.cfg.static_configs);
        let mut file_sd = FileSd::new(job.cfg.file_sd_configs.clone());
        let p = pool.clone();
        tokio::spawn(async move {
            let mut file_groups: Vec<TargetGroup> = Vec::new();
            let mut first = true;
            loop {
                let (changed, errors) = if file_sd.is_empty() {
                    (None, Vec::new())
                } else {
                    file_sd.poll(false)
                };
                for e in errors {
                    tracing::warn!(job = %p.name, "{e}");
                }
                let resync = first || changed.is_some();
                if let Some(g) = changed {
                    file_groups = g;
                }
                if resync {
                    let mut all = static_groups.clone();
                    all.extend(file_groups.iter().cloned());
                    p.sync(&db, &metrics, &all).await;
                    first = false;
                }
                if file_sd.is_empty() {
                    let _ = sd_rx.wait_for(|s| *s).await;
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(discovery::FILE_POLL) => {}
                    _ = sd_rx.wait_for(|s| *s) => return,
                }
            }
        });
        pool
    }

    /// Starts loops for new targets and stops those that went away.
    async fn sync(&self, db: &Arc<Db>, metrics: &Arc<ScrapeMetrics>, groups: &[TargetGroup]) {
        let job = &self.job;
        let (populated, errors) = targets_from_groups(job, groups);
        for e in errors {
            tracing::warn!(job = %self.name, "dropping a target: {e}");
        }
        let mut active = Vec::new();
        let mut dropped = Vec::new();
        let mut keys = HashSet::new();
        for p in populated {
            match p {
                Populated::Active(t) => {
                    if keys.insert(t.key()) {
                        active.push(t);
                    }
                }
                Populated::Dropped(d) => dropped.push(d),
            }
        }
        *self.over_limit.lock() = (job.target_limit > 0 && active.len() as u64 > job.target_limit)
            .then(|| {
                format!(
                    "target_limit exceeded (number of targets: {}, limit: {})",
                    active.len(),
                    job.target_limit
                )
            });
        let mut inner = self.inner.lock().await;
        let gone: Vec<u64> = inner
            .loops
            .keys()
            .filter(|k| !keys.contains(k))
            .copied()
            .collect();
        inner.stopping.retain(|_, tx| !tx.is_closed());
        for k in gone {
            let h = inner.loops.remove(&k).expect("listed");
            let _ = h.stop.send(Stop::Stale);
            inner.stopping.insert(k, h.stop);
        }
        for t in active {
            let key = t.key();
            if inner.loops.contains_key(&key) {
                continue;
            }
            // Back before its staleness markers were written: they must not be.
            if let Some(old) = inner.stopping.remove(&key) {
                let _ = old.send(Stop::Quiet);
            }
            let (shared, state) = match inner.handover.remove(&key) {
                Some((old, state)) => {
                    // Keep the status and metadata the API showed.
                    let shared = Arc::new(TargetShared::new(t, self.name.clone()));
                    *shared.status.lock() = old.status.lock().clone();
                    *shared.metadata.lock() = old.metadata.lock().clone();
                    (shared, state)
                }
                None => (
                    Arc::new(TargetShared::new(t, self.name.clone())),
                    LoopState::default(),
                ),
            };
            let handle = self.spawn(db, metrics, shared, state, Stop::Running);
            inner.loops.insert(key, handle);
        }
        if !inner.synced {
            inner.synced = true;
            // Targets of the old pool that this one does not have: end-of-run staleness.
            for (_, (shared, state)) in inner.handover.drain().collect::<Vec<_>>() {
                let _ = self.spawn(db, metrics, shared, state, Stop::Stale);
            }
        }
        let mut active: Vec<Arc<TargetShared>> =
            inner.loops.values().map(|h| h.shared.clone()).collect();
        active.sort_by(|a, b| a.target.labels.cmp(&b.target.labels));
        let dropped_count = dropped.len();
        if job.cfg.keep_dropped_targets.unwrap_or(0) > 0 {
            dropped.truncate(job.cfg.keep_dropped_targets.unwrap_or(0) as usize);
        }
        *self.view.write() = PoolView {
            active,
            dropped,
            dropped_count,
        };
    }

    fn spawn(
        &self,
        db: &Arc<Db>,
        metrics: &Arc<ScrapeMetrics>,
        shared: Arc<TargetShared>,
        state: LoopState,
        initial: Stop,
    ) -> LoopHandle {
        let settings = Settings::new(&self.job, &shared.target, db.limits().labels.clone());
        let (stop, rx) = watch::channel(initial);
        let (client, url) = client_for_target(&self.job, &self.client, &shared.target.url);
        let ctx = LoopCtx {
            db: db.clone(),
            client,
            url,
            job: self.job.clone(),
            shared: shared.clone(),
            settings,
            metrics: metrics.clone(),
            over_limit: self.over_limit.clone(),
        };
        let task = tokio::spawn(run_loop(ctx, state, rx));
        LoopHandle { shared, stop, task }
    }

    /// Stops discovery and every loop: with `Quiet`, waits for them and returns their caches;
    /// with `Stale`, lets them write their staleness markers in the background.
    async fn shut(&self, how: Stop) -> HashMap<u64, (Arc<TargetShared>, LoopState)> {
        let _ = self.sd_stop.send(true);
        let mut inner = self.inner.lock().await;
        if how == Stop::Quiet {
            // Shutting down or handing over: no staleness markers from targets that went away
            // just before either.
            for (_, tx) in inner.stopping.drain() {
                let _ = tx.send(Stop::Quiet);
            }
        }
        let mut out = HashMap::new();
        for (k, h) in inner.loops.drain() {
            let _ = h.stop.send(how);
            if how == Stop::Quiet
                && let Ok(state) = h.task.await
            {
                out.insert(k, (h.shared, state));
            }
        }
        out
    }

    pub fn view(&self) -> PoolView {
        self.view.read().clone()
    }

    pub fn job(&self) -> &ScrapeJob {
        &self.job
    }
}
