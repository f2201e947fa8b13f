//! Rules, as Prometheus runs them: recording rules whose results are written back as series
//! (tables for SQL too), alerting rules with Prometheus's alert states, notifications to
//! Alertmanager, and SQL recording rules whose answers become tables of schema `rules`.
//!
//! ```text
//!  rule_files (globs) ─ file.rs (checked, file:line) ─► manager.rs: a Group per rule group
//!      group.rs: every `interval`, at aligned times: rules in order, each an instant query
//!        ├─ recording.rs: rename + relabel ─────────────┐
//!        └─ alerting.rs: pending → firing → resolved ──┼─► Db::append (WAL first; staleness
//!             │  templates: template.rs              │    markers for vanished series)
//!             └─► notifier.rs ─► Alertmanager API v2  └─► ALERTS, ALERTS_FOR_STATE
//!  sql_rules ─ sql.rs: every `interval`, a SQL query ─► rules.<name> (Parquet in the block store)
//! ```
//!
//! Evaluation state (health, last error, timings) is read by `/api/v1/rules`, `/api/v1/alerts`,
//! and the SQL tables `system.rules` and `system.alerts` ([`table`]).

pub mod alerting;
pub mod file;
pub mod group;
pub mod manager;
pub mod notifier;
pub mod recording;
pub mod service;
pub mod sql;
pub mod table;
pub mod template;

use std::collections::BTreeMap;

use promql_parser::parser::Expr;
use quiver_promql::{Engine, Value, labelset};

pub use manager::RuleManager;
pub use service::{RuleOptions, RulesService};

/// A label set a rule writes (`__name__` included where there is one), encoded as the query
/// engine encodes label sets (pairs sorted by name; see [`quiver_promql::labelset`]): one
/// allocation to keep, hash and compare, and decoded only when its series is new to storage.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labelset(Vec<u8>);

impl Labelset {
    /// A set as the engine answers it.
    pub fn from_encoded(bytes: Vec<u8>) -> Self {
        Labelset(bytes)
    }

    /// The pairs, in name order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        labelset::pairs(&self.0)
    }

    /// How many labels.
    pub fn len(&self) -> usize {
        self.pairs().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets a label; an empty value removes it.
    pub fn set(&mut self, name: &str, value: &str) {
        self.0 = labelset::set(&self.0, name, value);
    }
}

/// From pairs in any order (the last of a repeated name wins; empty values are left out).
impl FromIterator<(String, String)> for Labelset {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let pairs: Vec<(String, String)> = iter.into_iter().collect();
        Labelset(labelset::encode_unsorted(&pairs))
    }
}

impl std::fmt::Debug for Labelset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&labelset::display(&self.0))
    }
}

/// A sample a rule writes.
#[derive(Debug, Clone, PartialEq)]
pub struct OutSample {
    pub labels: Labelset,
    /// ms
    pub t: i64,
    pub v: f64,
    /// A native histogram result (`v` is then 0).
    pub h: Option<std::sync::Arc<quiver_storage::FloatHistogram>>,
}

/// An instant query for a rule: the samples of a vector (a scalar is one sample without
/// labels), as Prometheus's rule query function answers.
pub async fn instant_vector(
    engine: &Engine,
    expr: &Expr,
    t: i64,
) -> Result<Vec<(BTreeMap<String, String>, f64)>, String> {
    match engine.instant_expr(expr, t).await {
        Ok(Value::Vector(samples)) => Ok(samples
            .into_iter()
            .map(|s| (s.labels.into_iter().collect(), s.v))
            .collect()),
        Ok(Value::Scalar { v, .. }) => Ok(vec![(BTreeMap::new(), v)]),
        Ok(_) => Err("rule result is not a vector or scalar".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(l: &Labelset) -> Vec<(&str, &str)> {
        l.pairs().collect()
    }

    #[test]
    fn a_labelset_stays_sorted_and_an_empty_value_removes() {
        let mut l: Labelset = [("d", "2"), ("b", "1"), ("b", "0"), ("e", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            pairs(&l),
            [("b", "0"), ("d", "2")],
            "last value wins, empty left out"
        );
        l.set("__name__", "r");
        l.set("c", "3");
        l.set("d", "4");
        l.set("b", "");
        l.set("z", "");
        assert_eq!(pairs(&l), [("__name__", "r"), ("c", "3"), ("d", "4")]);
        assert_eq!(l.len(), 3);
        assert_eq!(format!("{l:?}"), r#"{__name__="r", c="3", d="4"}"#);
        let same: Labelset = [("d", "4"), ("c", "3"), ("__name__", "r")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(l, same, "equal sets encode alike");
    }
}
