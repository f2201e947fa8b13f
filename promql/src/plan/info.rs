//! `info(v, {selector})` (Prometheus 3, experimental): each series of `v` gains the data
//! labels of the info series (`target_info` unless the selector names others) that share its
//! identifying labels (`instance`, `job`) at the step. Labels the series already has win; with
//! data-label matchers only the named labels are added, and a series without a matching info
//! series is dropped when a matcher cannot match the empty string.

use foldhash::{HashMap, HashMapExt};

use datafusion::arrow::array::RecordBatch;
use quiver_storage::{MatchOp, Matcher};

use super::input::{VectorBuilder, intern_rows, intern_samples};
use crate::error::{Error, Result};
use crate::labelset::{self, DROP_NAME, METRIC_NAME};

/// The labels that tie a series to its info series.
const IDENTIFYING: [&str; 2] = ["instance", "job"];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InfoOp {
    /// Matchers on `__name__` that pick the info metrics; a base series they all match is an
    /// info series itself and stays as it is.
    pub name_matchers: Vec<(String, MatchOp, String)>,
    /// Matchers on data labels of the info series.
    pub data_matchers: Vec<(String, MatchOp, String)>,
    /// The base vector may hold native histograms (they gain the labels as floats do).
    pub histograms: bool,
}

/// The values of the identifying labels.
type Identity = Vec<String>;

/// An info series that passed the data matchers: its identity and the labels it may add.
type Candidate = (Identity, Vec<(String, String)>);

fn compile(ms: &[(String, MatchOp, String)]) -> Result<Vec<Matcher>> {
    ms.iter()
        .map(|(n, op, v)| {
            Matcher::new(*op, n.clone(), v.clone()).map_err(|e| Error::BadData(e.to_string()))
        })
        .collect()
}

impl InfoOp {
    /// `base` is the vector to enrich; `info` the info series selected at the same steps, with
    /// their sample times (s) as values, so the newest wins where two overlap.
    pub(super) fn evaluate(
        &self,
        base: &[RecordBatch],
        info: &[RecordBatch],
    ) -> Result<RecordBatch> {
        let names = compile(&self.name_matchers)?;
        let data = compile(&self.data_matchers)?;
        let requires_match = data.iter().any(|m| !m.matches_empty());
        let ident = |l: &[u8]| -> Identity {
            IDENTIFYING
                .iter()
                .map(|n| labelset::get(l, n).unwrap_or("").to_string())
                .collect()
        };

        // Info series that pass the data matchers, with the labels they can add.
        let info = intern_rows(info);
        let candidates: Vec<Option<Candidate>> = info
            .labels
            .iter()
            .map(|l| {
                let passes = data
                    .iter()
                    .all(|m| m.matches(labelset::get(l, &m.name).unwrap_or("")));
                if !passes {
                    return None;
                }
                let labels = labelset::pairs(l)
                    .filter(|(n, _)| {
                        *n != METRIC_NAME && *n != DROP_NAME && !IDENTIFYING.contains(n)
                    })
                    .filter(|(n, _)| data.is_empty() || data.iter().any(|m| m.name == *n))
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect();
                Some((ident(l), labels))
            })
            .collect();
        // step -> identifying values -> (sample time, info series)
        let mut at_step: HashMap<i64, HashMap<Identity, Vec<(f64, u32)>>> = HashMap::new();
        for (t, k, sample_time) in &info.rows {
            if let Some((id, _)) = &candidates[*k as usize] {
                at_step
                    .entry(*t)
                    .or_default()
                    .entry(id.clone())
                    .or_default()
                    .push((*sample_time, *k));
            }
        }

        let (base, base_hists) = intern_samples(base, self.histograms);
        let is_info: Vec<bool> = base
            .labels
            .iter()
            .map(|l| {
                // An info series itself: picked by a positive name matcher and not excluded.
                let name = labelset::get(l, METRIC_NAME).unwrap_or("");
                names
                    .iter()
                    .any(|m| matches!(m.op, MatchOp::Equal | MatchOp::RegexMatch))
                    && names.iter().all(|m| m.matches(name))
            })
            .collect();
        let idents: Vec<Identity> = base.labels.iter().map(|l| ident(l)).collect();
        let mut out = VectorBuilder::with_histograms(self.histograms);
        let mut push = |labels: &[u8], t: i64, k: u32, v: f64| match base_hists.get(&(t, k)) {
            Some(h) => out.push_hist(labels, t, h),
            None => {
                out.push(labels, t, v);
                Ok(())
            }
        };
        for (t, k, v) in &base.rows {
            let labels = &base.labels[*k as usize];
            if is_info[*k as usize] {
                push(labels, *t, *k, *v)?;
                continue;
            }
            let matches = at_step
                .get(t)
                .and_then(|m| m.get(&idents[*k as usize]))
                .cloned()
                .unwrap_or_default();
            if matches.is_empty() {
                if !requires_match {
                    push(labels, *t, *k, *v)?;
                }
                continue;
            }
            // Newest info sample first: its labels win over older overlapping series.
            let mut matches = matches;
            matches.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut enriched = labels.clone();
            // label -> the info metric that set it
            let mut set_by: HashMap<&str, &str> = HashMap::new();
            for (_, i) in matches {
                let Some((_, add)) = &candidates[i as usize] else {
                    continue;
                };
                let metric = labelset::get(&info.labels[i as usize], METRIC_NAME).unwrap_or("");
                for (n, val) in add {
                    match set_by.get(n.as_str()) {
                        // An older sample of the same info metric: the newest already won.
                        Some(m) if *m == metric => {}
                        Some(_) if labelset::get(&enriched, n) != Some(val.as_str()) => {
                            return Err(Error::Execution(format!(
                                "conflicting label: {n} has different values in info metrics"
                            )));
                        }
                        Some(_) => {}
                        None if labelset::get(&enriched, n).is_some() => {}
                        None => {
                            enriched = labelset::set(&enriched, n, val);
                            set_by.insert(n, metric);
                        }
                    }
                }
            }
            push(&enriched, *t, *k, *v)?;
        }
        out.finish()
    }
}
