//! Recording rules: the query's result, renamed to the rule's `record` and relabeled, written
//! back as samples.

use std::collections::BTreeMap;

use promql_parser::parser::Expr;
use quiver_promql::Engine;

use super::{Labelset, OutSample};

/// A `record:` rule.
#[derive(Debug, Clone)]
pub struct RecordingRule {
    pub name: String,
    pub expr: Expr,
    /// The rule's labels (the group's labels under them); an empty value removes the label.
    pub labels: BTreeMap<String, String>,
}

impl RecordingRule {
    /// The samples this rule records at `t` (ms), or why it cannot.
    pub async fn eval(
        &self,
        engine: &Engine,
        t: i64,
        limit: u64,
    ) -> Result<Vec<OutSample>, String> {
        // The engine's label sets come encoded, as a `Labelset` keeps them.
        let vector = engine
            .instant_samples(&self.expr, t)
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(vector.len());
        for (labels, v, h) in vector {
            let mut labels = Labelset::from_encoded(labels);
            labels.set("__name__", &self.name);
            for (k, value) in &self.labels {
                labels.set(k, value);
            }
            out.push(OutSample { labels, t, v, h });
        }
        if limit > 0 && out.len() as u64 > limit {
            return Err(format!(
                "exceeded limit of {limit} with {} series",
                out.len()
            ));
        }
        let mut sets: Vec<&Labelset> = out.iter().map(|s| &s.labels).collect();
        sets.sort_unstable();
        if sets.windows(2).any(|w| w[0] == w[1]) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            );
        }
        Ok(out)
    }
}
