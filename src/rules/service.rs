//! The rules as the server runs them: rule groups, the notifier and SQL rules, started with the
//! storage and replaced together on a reload.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use quiver_promql::Engine;
use quiver_sql::SqlSession;
use quiver_storage::Db;
use tokio::sync::watch;

use super::group::EvalContext;
use super::manager::{self, Loaded, RuleManager};
use super::notifier::Notifier;
use super::sql::SqlRules;
use crate::config::Config;

/// Settings from the flags.
#[derive(Debug, Clone)]
pub struct RuleOptions {
    /// `--web.external-url`.
    pub external_url: String,
    /// `--rules.alert.resend-delay`.
    pub resend_delay: Duration,
    /// `--rules.alert.for-outage-tolerance`.
    pub for_outage_tolerance: Duration,
    /// `--rules.alert.for-grace-period`.
    pub for_grace_period: Duration,
    /// `--alertmanager.notification-queue-capacity`.
    pub queue_capacity: usize,
}

/// Rule groups, notifications and SQL rules.
/// What a configuration's rules need that can fail to build, built before anything changes.
pub struct RulesPlan {
    alertmanagers: Vec<Arc<super::notifier::AmSet>>,
}

pub struct RulesService {
    pub manager: Arc<RuleManager>,
    pub notifier: Arc<Notifier>,
    pub sql: Arc<SqlRules>,
    db: Arc<Db>,
    engine: Arc<Engine>,
    opts: RuleOptions,
    stop: watch::Sender<bool>,
}

impl RulesService {
    pub fn new(
        db: Arc<Db>,
        engine: Arc<Engine>,
        session: Arc<SqlSession>,
        opts: RuleOptions,
    ) -> Arc<Self> {
        let notifier = Notifier::new(opts.queue_capacity);
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(notifier.clone().run(stopped));
        Arc::new(RulesService {
            manager: RuleManager::new(),
            notifier,
            sql: SqlRules::new(session, db.options().block_store.clone()),
            db,
            engine,
            opts,
            stop,
        })
    }

    /// Reads the rule files a configuration names (before anything is applied, so that a bad
    /// file leaves everything as it runs).
    pub fn load(config: &Config) -> Result<Loaded, String> {
        manager::load(config)
    }

    /// Runs what `config` and its loaded rule files say.
    pub async fn apply(&self, config: &Config, loaded: &Loaded) -> Result<(), String> {
        let plan = Self::prepare(config)?;
        self.apply_prepared(config, loaded, plan).await;
        Ok(())
    }

    /// Builds what can fail in applying `config` (the Alertmanager clients), changing nothing.
    pub fn prepare(config: &Config) -> Result<RulesPlan, String> {
        Ok(RulesPlan {
            alertmanagers: Notifier::prepare(&config.file.alerting)?,
        })
    }

    /// Puts a prepared configuration in force; nothing here fails.
    pub async fn apply_prepared(&self, config: &Config, loaded: &Loaded, plan: RulesPlan) {
        let global = &config.file.global;
        self.notifier.install(
            global.external_labels.clone(),
            &config.file.alerting,
            plan.alertmanagers,
        );
        let notifier = self.notifier.clone();
        let ctx = Arc::new(EvalContext {
            db: self.db.clone(),
            engine: self.engine.clone(),
            external_labels: global.external_labels.clone(),
            external_url: self.opts.external_url.clone(),
            notify: Some(Arc::new(move |alerts| notifier.send(alerts))),
            resend_delay: self.opts.resend_delay,
            for_outage_tolerance: self.opts.for_outage_tolerance,
            for_grace_period: self.opts.for_grace_period,
        });
        self.manager
            .apply(manager::build(loaded, config), ctx)
            .await;
        self.sql
            .apply(&config.file.sql_rules, global.evaluation_interval.0)
            .await;
    }

    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        self.manager.stop().await;
        self.sql.stop().await;
    }

    /// Quiver's rule and notification metrics, in the text format.
    pub fn render_metrics(&self, out: &mut String) {
        let groups = self.manager.groups();
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, f64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let per_group = |f: &dyn Fn(&super::group::Group) -> f64| -> Vec<(String, f64)> {
            groups
                .iter()
                .map(|g| {
                    let key = format!("{};{}", g.file, g.name);
                    (format!("{{rule_group={}}}", quote(&key)), f(g))
                })
                .collect()
        };
        family(
            "quiver_rule_evaluations_total",
            "counter",
            "Rule group evaluations.",
            per_group(&|g| g.metrics.evaluations.load(Ordering::Relaxed) as f64),
        );
        family(
            "quiver_rule_evaluation_failures_total",
            "counter",
            "Rule evaluations that failed.",
            per_group(&|g| g.metrics.failures.load(Ordering::Relaxed) as f64),
        );
        family(
            "quiver_rule_group_iterations_missed_total",
            "counter",
            "Rule group evaluations skipped because the previous one overran its interval.",
            per_group(&|g| g.metrics.missed.load(Ordering::Relaxed) as f64),
        );
        family(
            "quiver_rule_group_last_duration_seconds",
            "gauge",
            "How long the last evaluation of the group took.",
            per_group(&|g| g.last_evaluation().1.as_secs_f64()),
        );
        family(
            "quiver_rule_group_interval_seconds",
            "gauge",
            "The group's evaluation interval.",
            per_group(&|g| g.interval.as_secs_f64()),
        );
        family(
            "quiver_rule_group_rules",
            "gauge",
            "Rules in the group.",
            per_group(&|g| g.rules.len() as f64),
        );
        let n = &self.notifier;
        let one = |v: f64| vec![(String::new(), v)];
        family(
            "quiver_notifications_sent_total",
            "counter",
            "Alerts delivered to Alertmanager.",
            one(n.metrics.sent.load(Ordering::Relaxed) as f64),
        );
        family(
            "quiver_notifications_errors_total",
            "counter",
            "Requests to an Alertmanager that failed.",
            one(n.metrics.errors.load(Ordering::Relaxed) as f64),
        );
        family(
            "quiver_notifications_dropped_total",
            "counter",
            "Alerts dropped: relabeled away, no Alertmanager, or the queue full.",
            one(n.metrics.dropped.load(Ordering::Relaxed) as f64),
        );
        family(
            "quiver_notifications_queue_length",
            "gauge",
            "Alerts waiting to be delivered.",
            one(n.queue_length() as f64),
        );
        family(
            "quiver_notifications_queue_capacity",
            "gauge",
            "The most alerts the queue holds.",
            one(n.capacity() as f64),
        );
        family(
            "quiver_notifications_alertmanagers_discovered",
            "gauge",
            "Alertmanagers alerts are sent to.",
            one(n.alertmanagers().0.len() as f64),
        );
    }
}

/// A label value in the text format's quoting.
fn quote(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

/// `http://<host name>:<port>`: the default external URL, as Prometheus derives it.
pub fn default_external_url(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("http://{host}:{port}")
}
