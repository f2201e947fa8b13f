//! A rule group: its rules, evaluated in order at one timestamp (so later rules see what
//! earlier ones wrote), with Prometheus's staleness for series a rule no longer returns and
//! its restoration of `for` state after a start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use quiver_promql::Engine;
use quiver_storage::{
    Db, Labels, Matcher, Matchers, STALE_NAN_BITS, SeriesId, Timestamp, WriteBatch, is_stale_nan,
};

use super::alerting::{Alert, AlertingRule, Notification};
use super::recording::RecordingRule;
use super::template::{Expander, QueryFn};
use super::{Labelset, OutSample};

/// What a group's evaluation needs from the server.
pub struct EvalContext {
    pub db: Arc<Db>,
    pub engine: Arc<Engine>,
    pub external_labels: BTreeMap<String, String>,
    /// `--web.external-url`: in `generatorURL` and `$externalURL`.
    pub external_url: String,
    /// Where firing and resolved alerts go (`None`: nowhere).
    pub notify: Option<Arc<dyn Fn(Vec<Notification>) + Send + Sync>>,
    pub resend_delay: Duration,
    pub for_outage_tolerance: Duration,
    pub for_grace_period: Duration,
}

/// A rule's body.
#[derive(Debug)]
pub enum RuleBody {
    Recording(RecordingRule),
    Alerting(AlertingRule),
}

/// Evaluation health, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// How a rule's last evaluation went.
#[derive(Debug, Clone)]
pub struct RuleStatus {
    pub health: Health,
    pub last_error: Option<String>,
    pub last_evaluation: Option<SystemTime>,
    pub evaluation_time: Duration,
}

/// One rule of a group.
#[derive(Debug)]
pub struct Rule {
    pub body: RuleBody,
    /// The expression as Prometheus prints it.
    pub query: String,
    status: Mutex<RuleStatus>,
    /// Series written by the last successful evaluation (to mark those that vanish stale).
    previous: Mutex<Written>,
}

/// The series a rule wrote at its last successful evaluation, with their storage ids once
/// learned: a rule writes the same series every interval, and a known id spares building and
/// looking up its label set again.
#[derive(Debug, Default, Clone)]
struct Written {
    series: foldhash::HashMap<Labelset, Option<SeriesId>>,
    /// The registry's removal count when the ids were learned (see `WriteBatch::ids_valid_at`).
    ids_at: u64,
}

impl Written {
    fn drain(&mut self) -> impl Iterator<Item = Labelset> + '_ {
        self.series.drain().map(|(l, _)| l)
    }
}

impl Rule {
    pub fn new(body: RuleBody) -> Self {
        let query = match &body {
            RuleBody::Recording(r) => r.expr.to_string(),
            RuleBody::Alerting(a) => a.expr.to_string(),
        };
        Rule {
            body,
            query,
            status: Mutex::new(RuleStatus {
                health: Health::Unknown,
                last_error: None,
                last_evaluation: None,
                evaluation_time: Duration::ZERO,
            }),
            previous: Mutex::new(Written::default()),
        }
    }

    pub fn name(&self) -> &str {
        match &self.body {
            RuleBody::Recording(r) => &r.name,
            RuleBody::Alerting(a) => &a.name,
        }
    }

    pub fn status(&self) -> RuleStatus {
        self.status.lock().clone()
    }

    /// Takes over the state of the rule this one replaces on a reload.
    fn adopt(&self, old: &Rule) {
        if let (RuleBody::Alerting(new), RuleBody::Alerting(old)) = (&self.body, &old.body) {
            new.adopt(old);
        }
        *self.previous.lock() = old.previous.lock().clone();
        *self.status.lock() = old.status();
    }
}

/// Counters of a group, for Quiver's `/metrics`.
#[derive(Debug, Default)]
pub struct GroupMetrics {
    pub evaluations: AtomicU64,
    pub failures: AtomicU64,
    pub missed: AtomicU64,
}

/// A rule group.
pub struct Group {
    pub name: String,
    pub file: String,
    pub interval: Duration,
    pub limit: u64,
    pub query_offset: Duration,
    pub rules: Vec<Rule>,
    pub metrics: GroupMetrics,
    last: Mutex<(Option<SystemTime>, Duration)>,
    /// Series of rules a reload removed from this group: marked stale at the next evaluation.
    stale_pending: Mutex<Vec<Labelset>>,
}

impl Group {
    pub fn new(
        name: String,
        file: String,
        interval: Duration,
        limit: u64,
        query_offset: Duration,
        rules: Vec<Rule>,
    ) -> Self {
        Group {
            name,
            file,
            interval,
            limit,
            query_offset,
            rules,
            metrics: GroupMetrics::default(),
            last: Mutex::new((None, Duration::ZERO)),
            stale_pending: Mutex::new(Vec::new()),
        }
    }

    /// When the last evaluation started, and how long it took.
    pub fn last_evaluation(&self) -> (Option<SystemTime>, Duration) {
        *self.last.lock()
    }

    /// This group's evaluation phase within its interval (ms): groups spread over the interval
    /// by a hash of their name and file, as Prometheus spreads them.
    pub fn offset_ms(&self) -> i64 {
        // FNV-1a: stable across runs and builds, so a restart keeps the group's phase.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.name.bytes().chain([0xff]).chain(self.file.bytes()) {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        (h % (self.interval.as_millis() as u64).max(1)) as i64
    }

    /// The first evaluation time after `now` (ms) on this group's grid.
    pub fn next_slot(&self, now: i64) -> i64 {
        let interval = (self.interval.as_millis() as i64).max(1);
        let offset = self.offset_ms();
        let base = now - offset;
        base - base.rem_euclid(interval) + offset + interval
    }

    /// Takes over the state of the group this one replaces (same file and name) on a reload:
    /// rules are matched by name, in order.
    pub fn adopt(&self, old: &Group) {
        let mut used = vec![false; old.rules.len()];
        for r in &self.rules {
            if let Some(i) =
                (0..old.rules.len()).find(|&i| !used[i] && old.rules[i].name() == r.name())
            {
                used[i] = true;
                r.adopt(&old.rules[i]);
            }
        }
        *self.last.lock() = old.last_evaluation();
        // The rules that are gone: their series go stale at the next evaluation.
        let mut stale = self.stale_pending.lock();
        stale.extend(old.stale_pending.lock().drain(..));
        for (i, r) in old.rules.iter().enumerate() {
            if !used[i] {
                stale.extend(r.previous.lock().drain());
            }
        }
    }

    /// Evaluates every rule at `ts` (ms), in order, writing what each returns (and staleness
    /// markers for what it stopped returning) before the next one runs.
    pub async fn evaluate(&self, ts: i64, ctx: &EvalContext) {
        let started = Instant::now();
        let wall = SystemTime::now();
        self.metrics.evaluations.fetch_add(1, Ordering::Relaxed);
        let offset = self.query_offset.as_millis() as i64;
        let t = ts - offset;
        let expander = self.expander(ctx, t);
        let gone = std::mem::take(&mut *self.stale_pending.lock());
        if !gone.is_empty() {
            write_stale(&gone, t, &ctx.db, &self.name).await;
        }
        for rule in &self.rules {
            let rule_start = Instant::now();
            let result = match &rule.body {
                RuleBody::Recording(r) => r.eval(&ctx.engine, t, self.limit).await,
                RuleBody::Alerting(a) => {
                    a.eval(&ctx.engine, ts, offset, self.limit, &expander).await
                }
            };
            let result = match result {
                Ok(samples) => self.write(rule, samples, t, ctx).await,
                Err(e) => Err(e),
            };
            if let (RuleBody::Alerting(a), Some(notify)) = (&rule.body, &ctx.notify) {
                let url = generator_url(&ctx.external_url, &rule.query);
                let due = a.due(ts, ctx.resend_delay, self.interval, &url);
                if !due.is_empty() {
                    notify(due);
                }
            }
            let mut status = rule.status.lock();
            status.last_evaluation = Some(wall);
            status.evaluation_time = rule_start.elapsed();
            match result {
                Ok(()) => {
                    status.health = Health::Ok;
                    status.last_error = None;
                }
                Err(e) => {
                    self.metrics.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(group = %self.name, rule = %rule.name(), "rule evaluation failed: {e}");
                    status.health = Health::Err;
                    status.last_error = Some(e);
                }
            }
        }
        *self.last.lock() = (Some(wall), started.elapsed());
    }

    /// The template expander of one evaluation: `query` runs at the evaluation's time.
    fn expander(&self, ctx: &EvalContext, t: i64) -> Expander {
        let engine = ctx.engine.clone();
        let handle = tokio::runtime::Handle::current();
        let query: Arc<QueryFn> = Arc::new(move |q: &str| {
            handle.block_on(async {
                match quiver_promql::parse(q) {
                    Ok(expr) => super::instant_vector(&engine, &expr, t).await,
                    Err(e) => Err(e.to_string()),
                }
            })
        });
        Expander {
            external_labels: ctx.external_labels.clone(),
            external_url: ctx.external_url.clone(),
            query: Some(query),
        }
    }

    /// Writes a rule's samples, and staleness markers for the series it wrote last time and
    /// not now, as one batch.
    async fn write(
        &self,
        rule: &Rule,
        samples: Vec<OutSample>,
        t: i64,
        ctx: &EvalContext,
    ) -> Result<(), String> {
        let mut previous = std::mem::take(&mut *rule.previous.lock());
        let current: foldhash::HashSet<&Labelset> = samples.iter().map(|s| &s.labels).collect();
        // Per sample, the id its series had last time (if still to be trusted).
        let mut ids: Vec<Option<SeriesId>> = Vec::new();
        let mut removals = 0;
        let mut result: Result<(), String> = Ok(());
        for attempt in 0..2 {
            removals = ctx.db.series_removals();
            if previous.ids_at != removals || attempt > 0 {
                // Series were removed since the ids were learned: they may be gone.
                previous.series.values_mut().for_each(|id| *id = None);
            }
            ids = samples
                .iter()
                .map(|s| previous.series.get(&s.labels).copied().flatten())
                .collect();
            let gone: Vec<(&Labelset, Option<SeriesId>)> = previous
                .series
                .iter()
                .filter(|(l, _)| !current.contains(l))
                .map(|(l, id)| (l, *id))
                .collect();
            let batch = match result_batch(&samples, &ids, &gone, removals, t, ctx) {
                Ok(b) if b.is_empty() => break,
                Ok(b) => b,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            let appended = ctx.db.append(batch).await;
            // A known id was removed meanwhile: once more, every series by its labels.
            let retry = matches!(appended, Err(quiver_storage::Error::Retry(_)));
            result = appended.map_err(|e| format!("writing the results: {e}"));
            if !retry {
                break;
            }
        }
        if result.is_err() {
            *rule.previous.lock() = previous;
            return result;
        }
        // The series written now, with their ids (learned for those written for the first time).
        let reg = ctx.db.registry();
        let series = samples
            .into_iter()
            .zip(ids)
            .map(|(s, id)| {
                let id = id.or_else(|| {
                    let pairs: Vec<(&str, &str)> = s.labels.pairs().collect();
                    reg.get_pairs(&pairs)
                });
                (s.labels, id)
            })
            .collect();
        drop(reg);
        *rule.previous.lock() = Written {
            series,
            ids_at: removals,
        };
        Ok(())
    }

    /// Staleness markers at `t` for every series the group's rules wrote last (the group is
    /// going away: Prometheus marks its series stale).
    pub async fn mark_stale(&self, t: i64, db: &Db) {
        let mut all: Vec<Labelset> = std::mem::take(&mut *self.stale_pending.lock());
        for rule in &self.rules {
            all.extend(rule.previous.lock().drain());
        }
        write_stale(&all, t, db, &self.name).await;
    }

    /// After the first evaluation since a start, moves the pending alerts' active time back to
    /// when they became active before the restart (from `ALERTS_FOR_STATE`), as Prometheus does:
    /// the `for` clock pauses while Quiver was down, and an alert about to fire waits at least
    /// the grace period.
    pub async fn restore_for_state(&self, ts: i64, ctx: &EvalContext) {
        let tolerance = ctx.for_outage_tolerance.as_millis() as i64;
        let grace = ctx.for_grace_period.as_millis() as i64;
        for rule in &self.rules {
            let RuleBody::Alerting(a) = &rule.body else {
                continue;
            };
            let hold = a.hold.as_millis() as i64;
            if hold < grace {
                a.set_restored();
                continue;
            }
            // What each alert's ALERTS_FOR_STATE series last said, read before touching state.
            let mut last: Vec<(Labelset, Option<(Timestamp, f64)>)> = Vec::new();
            for alert in a.active_alerts() {
                let labels = a.for_state_labels(&alert);
                let found = last_sample(&ctx.db, &labels, ts - tolerance, ts).await;
                last.push((labels, found));
            }
            a.restore(|rule, alert: &Alert| {
                let labels = rule.for_state_labels(alert);
                let (_, found) = last.iter().find(|(l, _)| *l == labels)?;
                let (down_at, v) = (*found)?;
                if is_stale_nan(v) {
                    return None;
                }
                let down_at = down_at / 1000 * 1000;
                let active_at = (v as i64) * 1000;
                let remaining = hold - (down_at - active_at);
                Some(if remaining <= 0 {
                    active_at
                } else if remaining < grace {
                    ts + grace - hold
                } else {
                    active_at + (ts - down_at)
                })
            });
            a.set_restored();
        }
    }
}

/// One evaluation's write: its samples (by id where `ids` has one), and staleness markers for
/// the series that are `gone`.
fn result_batch(
    samples: &[OutSample],
    ids: &[Option<SeriesId>],
    gone: &[(&Labelset, Option<SeriesId>)],
    removals: u64,
    t: i64,
    ctx: &EvalContext,
) -> Result<WriteBatch, String> {
    let limits = &ctx.db.limits().labels;
    let mut batch = WriteBatch::default();
    // Results are visible to the next rule at once; their WAL record is written without
    // waiting for the fsync (Prometheus does not fsync rule results either).
    batch.defer_sync();
    // Every id given was learned while the registry's removal count was `removals`.
    batch.ids_valid_at(removals);
    let slot = |batch: &mut WriteBatch, labels: &Labelset, id: Option<SeriesId>| match id {
        Some(id) => Ok(batch.push_known(id)),
        None => Labels::try_from_pairs(labels.pairs(), limits).map(|l| batch.push_series(l)),
    };
    for (s, id) in samples.iter().zip(ids) {
        // What the engine makes may be an invalid histogram (`-h`, `idelta` of a gauge have
        // negative counts): that sample is left out and the rest written, as Prometheus's
        // appender refuses it alone.
        if let Some(Err(e)) = s.h.as_ref().map(|h| h.validate()) {
            tracing::warn!(series = ?s.labels, "a rule's native histogram result is not stored: {e}");
            continue;
        }
        let i = slot(&mut batch, &s.labels, *id)
            .map_err(|e| format!("result series {:?}: {e}", s.labels))?;
        match &s.h {
            Some(h) => batch.push_histogram(i, s.t, (**h).clone()),
            None => batch.push_sample(i, s.t, s.v),
        }
    }
    for (labels, id) in gone {
        if let Ok(i) = slot(&mut batch, labels, *id) {
            batch.push_sample(i, t, f64::from_bits(STALE_NAN_BITS));
        }
    }
    Ok(batch)
}

/// Staleness markers at `t` for these series.
async fn write_stale(series: &[Labelset], t: i64, db: &Db, group: &str) {
    let limits = db.limits().labels.clone();
    let mut batch = WriteBatch::default();
    batch.defer_sync();
    for l in series {
        if let Ok(labels) = Labels::try_from_pairs(l.pairs(), &limits) {
            let i = batch.push_series(labels);
            batch.push_sample(i, t, f64::from_bits(STALE_NAN_BITS));
        }
    }
    if batch.num_samples() > 0
        && let Err(e) = db.append(batch).await
    {
        tracing::warn!(group, "writing staleness markers failed: {e}");
    }
}

/// The last sample in `[mint, maxt]` of the series with exactly `labels`.
async fn last_sample(db: &Db, labels: &Labelset, mint: i64, maxt: i64) -> Option<(Timestamp, f64)> {
    let matchers = Matchers(labels.pairs().map(|(k, v)| Matcher::equal(k, v)).collect());
    let id = db
        .series(&matchers, mint, maxt)
        .into_iter()
        .find(|(_, l)| l.len() == labels.len())
        .map(|(id, _)| id)?;
    let data = db.read(&[id], mint, maxt).await.ok()?;
    let s = data.into_iter().next()?;
    Some((*s.timestamps.last()?, *s.values.last()?))
}

/// The link back to the expression, as Prometheus builds it (`/graph?g0.expr=…&g0.tab=1`).
pub fn generator_url(external_url: &str, expr: &str) -> String {
    let q: String = url::form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    format!(
        "{}/graph?g0.expr={q}&g0.tab=1",
        external_url.trim_end_matches('/')
    )
}
