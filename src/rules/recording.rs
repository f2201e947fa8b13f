//! Recording rules: the query's result, renamed to the rule's `record` and relabeled, written
//! back as samples.

use std::collections::{BTreeMap, HashSet};

use promql_parser::parser::Expr;
use quiver_promql::Engine;

use super::{Labelset, OutSample, instant_vector};

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
        let vector = instant_vector(engine, &self.expr, t).await?;
        let mut out = Vec::with_capacity(vector.len());
        let mut seen = HashSet::with_capacity(vector.len());
        for (mut labels, v) in vector {
            labels.insert("__name__".into(), self.name.clone());
            for (k, value) in &self.labels {
                if value.is_empty() {
                    labels.remove(k);
                } else {
                    labels.insert(k.clone(), value.clone());
                }
            }
            let labels: Labelset = labels.into_iter().collect();
            if !seen.insert(labels.clone()) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .into(),
                );
            }
            out.push(OutSample { labels, t, v });
        }
        if limit > 0 && out.len() as u64 > limit {
            return Err(format!(
                "exceeded limit of {limit} with {} series",
                out.len()
            ));
        }
        Ok(out)
    }
}
