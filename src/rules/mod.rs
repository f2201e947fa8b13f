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
use quiver_promql::{Engine, Value};

pub use manager::RuleManager;
pub use service::{RuleOptions, RulesService};

/// A label set as sorted name/value pairs (`__name__` included where there is one).
pub type Labelset = Vec<(String, String)>;

/// A sample a rule writes.
#[derive(Debug, Clone, PartialEq)]
pub struct OutSample {
    pub labels: Labelset,
    /// ms
    pub t: i64,
    pub v: f64,
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
