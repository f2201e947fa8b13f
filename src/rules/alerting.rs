//! Alerting rules: Prometheus's alert state machine.
//!
//! Every evaluation, each sample of the query's result is an alert, identified by its labels
//! (the sample's, without `__name__`, plus the rule's expanded labels and `alertname`). A new
//! alert is `pending` from the evaluation that first saw it (`active_at`) and `firing` once it
//! has been active for `for`; one no longer returned becomes `inactive` (resolved), unless
//! `keep_firing_for` keeps a firing alert firing a while longer. Resolved alerts are kept for
//! 15 minutes so Alertmanager hears that they resolved. While active, each alert is written as
//! `ALERTS{alertstate=…} 1` and `ALERTS_FOR_STATE <active_at seconds>`, from which `for` state
//! is restored after a restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use promql_parser::parser::Expr;
use quiver_promql::Engine;

use super::template::Expander;
use super::{Labelset, OutSample, instant_vector};

/// How long a resolved alert is kept (and re-sent as resolved).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// An alert's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule (times in ms).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    pub value: f64,
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub last_sent_at: Option<i64>,
    pub valid_until: i64,
    pub keep_firing_since: Option<i64>,
}

/// An alert as it goes to Alertmanager.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// ms
    pub starts_at: i64,
    /// ms
    pub ends_at: i64,
    pub generator_url: String,
}

/// An `alert:` rule and its alerts.
#[derive(Debug)]
pub struct AlertingRule {
    pub name: String,
    pub expr: Expr,
    pub hold: Duration,
    pub keep_firing_for: Duration,
    /// Label templates (the group's labels under the rule's).
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    state: Mutex<RuleAlerts>,
}

#[derive(Debug, Default)]
struct RuleAlerts {
    active: HashMap<Labelset, Alert>,
    /// False until `for` state is restored after a start (ALERTS series wait for it).
    restored: bool,
}

impl AlertingRule {
    pub fn new(
        name: String,
        expr: Expr,
        hold: Duration,
        keep_firing_for: Duration,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
        restored: bool,
    ) -> Self {
        AlertingRule {
            name,
            expr,
            hold,
            keep_firing_for,
            labels,
            annotations,
            state: Mutex::new(RuleAlerts {
                active: HashMap::new(),
                restored,
            }),
        }
    }

    /// Evaluates at `ts` (ms; the query runs at `ts - offset`): updates the alerts and answers
    /// the `ALERTS` and `ALERTS_FOR_STATE` samples to write.
    pub async fn eval(
        &self,
        engine: &Arc<Engine>,
        ts: i64,
        offset: i64,
        limit: u64,
        expander: &Expander,
    ) -> Result<Vec<OutSample>, String> {
        let t = ts - offset;
        let vector = instant_vector(engine, &self.expr, t).await?;
        let found = self.expand(vector, expander, ts).await?;
        let mut state = self.state.lock();
        for (key, alert) in found.iter() {
            match state.active.get_mut(key) {
                Some(a) if a.state != AlertState::Inactive => {
                    a.value = alert.value;
                    a.annotations = alert.annotations.clone();
                }
                _ => {
                    state.active.insert(key.clone(), alert.clone());
                }
            }
        }
        let restored = state.restored;
        let keep_for = self.keep_firing_for.as_millis() as i64;
        let hold = self.hold.as_millis() as i64;
        let mut out = Vec::new();
        let mut active = 0u64;
        state.active.retain(|key, a| {
            if !found.contains_key(key) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep_for > 0 {
                    let since = *a.keep_firing_since.get_or_insert(ts);
                    keep_firing = ts - since < keep_for;
                }
                // Pending alerts go at once; resolved ones after the retention.
                if a.state == AlertState::Pending
                    || a.resolved_at
                        .is_some_and(|r| ts - r > RESOLVED_RETENTION_MS)
                {
                    return false;
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at = Some(ts);
                }
                if !keep_firing {
                    return true;
                }
            } else {
                a.keep_firing_since = None;
            }
            active += 1;
            if a.state == AlertState::Pending && ts - a.active_at >= hold {
                a.state = AlertState::Firing;
                a.fired_at = Some(ts);
            }
            if restored {
                out.push(self.alerts_sample(a, t));
                out.push(self.for_state_sample(a, t));
            }
            true
        });
        if limit > 0 && active > limit {
            state.active.clear();
            return Err(format!("exceeded limit of {limit} with {active} alerts"));
        }
        Ok(out)
    }

    /// The query's samples as alerts, their label and annotation templates expanded. Templates
    /// may call `query`, which blocks on the engine: they run on the blocking pool.
    async fn expand(
        &self,
        vector: Vec<(BTreeMap<String, String>, f64)>,
        expander: &Expander,
        ts: i64,
    ) -> Result<HashMap<Labelset, Alert>, String> {
        let name = self.name.clone();
        let labels = self.labels.clone();
        let annotations = self.annotations.clone();
        let expander = expander.clone();
        let templated = labels
            .values()
            .chain(annotations.values())
            .any(|t| t.contains("{{"));
        let build = move || -> Result<HashMap<Labelset, Alert>, String> {
            let mut out = HashMap::with_capacity(vector.len());
            for (mut sample_labels, value) in vector {
                sample_labels.remove("__name__");
                let mut alert_labels = sample_labels.clone();
                for (k, text) in &labels {
                    alert_labels.insert(
                        k.clone(),
                        expander.expand(&name, text, &sample_labels, value),
                    );
                }
                alert_labels.insert("alertname".into(), name.clone());
                let annotations = annotations
                    .iter()
                    .map(|(k, text)| {
                        (
                            k.clone(),
                            expander.expand(&name, text, &sample_labels, value),
                        )
                    })
                    .collect();
                let key: Labelset = alert_labels.clone().into_iter().collect();
                let alert = Alert {
                    labels: alert_labels,
                    annotations,
                    state: AlertState::Pending,
                    value,
                    active_at: ts,
                    fired_at: None,
                    resolved_at: None,
                    last_sent_at: None,
                    valid_until: 0,
                    keep_firing_since: None,
                };
                if out.insert(key, alert).is_some() {
                    return Err(
                        "vector contains metrics with the same labelset after applying alert labels"
                            .to_string(),
                    );
                }
            }
            Ok(out)
        };
        if templated {
            tokio::task::spawn_blocking(build)
                .await
                .map_err(|e| format!("template task failed: {e}"))?
        } else {
            build()
        }
    }

    fn alerts_sample(&self, a: &Alert, t: i64) -> OutSample {
        let mut l = a.labels.clone();
        l.insert("__name__".into(), "ALERTS".into());
        l.insert("alertname".into(), self.name.clone());
        l.insert("alertstate".into(), a.state.as_str().into());
        OutSample {
            labels: l.into_iter().collect(),
            t,
            v: 1.0,
            h: None,
        }
    }

    fn for_state_sample(&self, a: &Alert, t: i64) -> OutSample {
        OutSample {
            labels: self.for_state_labels(a),
            t,
            v: (a.active_at / 1000) as f64,
            h: None,
        }
    }

    /// The labels of an alert's `ALERTS_FOR_STATE` series.
    pub fn for_state_labels(&self, a: &Alert) -> Labelset {
        let mut l = a.labels.clone();
        l.insert("__name__".into(), "ALERTS_FOR_STATE".into());
        l.insert("alertname".into(), self.name.clone());
        l.into_iter().collect()
    }

    /// The alerts due to be sent at `ts`: firing ones every `resend_delay`, and resolved ones
    /// (until they have been sent as resolved and then for the retention). Each is valid for
    /// four times the larger of the resend delay and the group interval.
    pub fn due(
        &self,
        ts: i64,
        resend_delay: Duration,
        interval: Duration,
        generator_url: &str,
    ) -> Vec<Notification> {
        let delta = resend_delay.max(interval).as_millis() as i64;
        let resend = resend_delay.as_millis() as i64;
        let mut out = Vec::new();
        for a in self.state.lock().active.values_mut() {
            if a.state == AlertState::Pending {
                continue;
            }
            let due = match (a.resolved_at, a.last_sent_at) {
                (Some(r), Some(s)) if r > s => true,
                (_, Some(s)) => s + resend < ts,
                (_, None) => true,
            };
            if !due {
                continue;
            }
            a.last_sent_at = Some(ts);
            a.valid_until = ts + 4 * delta;
            out.push(Notification {
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at: a.fired_at.unwrap_or(a.active_at),
                ends_at: a.resolved_at.unwrap_or(a.valid_until),
                generator_url: generator_url.to_string(),
            });
        }
        out
    }

    /// The pending and firing alerts, for the API.
    pub fn active_alerts(&self) -> Vec<Alert> {
        let mut v: Vec<Alert> = self
            .state
            .lock()
            .active
            .values()
            .filter(|a| a.state != AlertState::Inactive)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    /// The rule's state: its most advanced alert's.
    pub fn state(&self) -> AlertState {
        self.state
            .lock()
            .active
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }

    pub fn is_restored(&self) -> bool {
        self.state.lock().restored
    }

    pub fn set_restored(&self) {
        self.state.lock().restored = true;
    }

    /// Takes over the alerts of the rule this one replaces on a reload.
    pub fn adopt(&self, old: &AlertingRule) {
        let old = old.state.lock();
        let mut new = self.state.lock();
        new.active = old.active.clone();
        new.restored = old.restored;
    }

    /// Moves the active time of alerts that were pending before a restart (see
    /// `Group::restore_for_state`): `f` answers an alert's new `active_at`, if any.
    pub fn restore(&self, mut f: impl FnMut(&Self, &Alert) -> Option<i64>) {
        let mut state = self.state.lock();
        let keys: Vec<Labelset> = state.active.keys().cloned().collect();
        for k in keys {
            let a = state.active[&k].clone();
            if let Some(t) = f(self, &a)
                && let Some(a) = state.active.get_mut(&k)
            {
                a.active_at = t;
            }
        }
    }
}
