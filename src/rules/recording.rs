//! Recording rules: the query's result, renamed to the rule's `record` and relabeled, written
//! back as samples.

use std::collections::BTreeMap;

use promql_parser::parser::Expr;
use quiver_promql::{Engine, Value};

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
        let vector: Vec<(Labelset, f64)> = match engine.instant_expr(&self.expr, t).await {
            // The engine's label pairs are sorted by name, as a `Labelset` is.
            Ok(Value::Vector(samples)) => samples.into_iter().map(|s| (s.labels, s.v)).collect(),
            Ok(Value::Scalar { v, .. }) => vec![(Vec::new(), v)],
            Ok(_) => return Err("rule result is not a vector or scalar".into()),
            Err(e) => return Err(e.to_string()),
        };
        let mut out = Vec::with_capacity(vector.len());
        for (mut labels, v) in vector {
            set_label(&mut labels, "__name__", &self.name);
            for (k, value) in &self.labels {
                set_label(&mut labels, k, value);
            }
            out.push(OutSample { labels, t, v });
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

/// Sets a label in a label set sorted by name; an empty value removes it.
fn set_label(labels: &mut Labelset, name: &str, value: &str) {
    match labels.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
        Ok(i) if value.is_empty() => {
            labels.remove(i);
        }
        Ok(i) => value.clone_into(&mut labels[i].1),
        Err(_) if value.is_empty() => {}
        Err(i) => labels.insert(i, (name.to_string(), value.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_label_keeps_the_set_sorted_and_removes_on_empty() {
        let mut l: Labelset = vec![("b".into(), "1".into()), ("d".into(), "2".into())];
        set_label(&mut l, "__name__", "r");
        set_label(&mut l, "c", "3");
        set_label(&mut l, "d", "4");
        set_label(&mut l, "b", "");
        set_label(&mut l, "z", "");
        let names: Vec<(&str, &str)> = l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(names, [("__name__", "r"), ("c", "3"), ("d", "4")]);
    }
}
