//! The inverted index: label pair -> sorted series ids. Matchers resolve to series ids here,
//! before any sample is read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::labels::{Labels, SeriesId};
use crate::matchers::{MatchOp, Matcher, Matchers};

/// Postings lists per label name and value. Ids are appended in increasing order, so each list
/// stays sorted without sorting.
#[derive(Debug, Default)]
pub struct PostingsIndex {
    postings: HashMap<Arc<str>, BTreeMap<Arc<str>, Vec<SeriesId>>>,
}

impl PostingsIndex {
    /// Adds a series. Ids must arrive in increasing order per list (the registry hands them out so).
    pub fn add(&mut self, id: SeriesId, labels: &Labels) {
        for l in labels.iter() {
            let list = self
                .postings
                .entry(l.name.clone())
                .or_default()
                .entry(l.value.clone())
                .or_default();
            match list.last() {
                Some(last) if *last >= id => {
                    let pos = list.partition_point(|x| *x < id);
                    if list.get(pos) != Some(&id) {
                        list.insert(pos, id);
                    }
                }
                _ => list.push(id),
            }
        }
    }

    /// Removes a series.
    pub fn remove(&mut self, id: SeriesId, labels: &Labels) {
        for l in labels.iter() {
            if let Some(values) = self.postings.get_mut(&l.name) {
                if let Some(list) = values.get_mut(&l.value) {
                    if let Ok(pos) = list.binary_search(&id) {
                        list.remove(pos);
                    }
                    if list.is_empty() {
                        values.remove(&l.value);
                    }
                }
                if values.is_empty() {
                    self.postings.remove(&l.name);
                }
            }
        }
    }

    /// All label names, sorted.
    pub fn label_names(&self) -> Vec<Arc<str>> {
        let mut names: Vec<_> = self.postings.keys().cloned().collect();
        names.sort();
        names
    }

    /// All values of one label, sorted.
    pub fn label_values(&self, name: &str) -> Vec<Arc<str>> {
        self.postings
            .get(name)
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The ids of series that carry label `name` with `value`.
    pub fn postings(&self, name: &str, value: &str) -> &[SeriesId] {
        self.postings
            .get(name)
            .and_then(|v| v.get(value))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Candidate series for the matchers that do not match the empty string, intersected.
    /// `None` means no such matcher: every series is a candidate. Matchers that match the empty
    /// string must still be checked on each candidate's labels.
    pub fn candidates(&self, matchers: &Matchers) -> Option<Vec<SeriesId>> {
        let mut result: Option<Vec<SeriesId>> = None;
        for m in matchers.0.iter().filter(|m| !m.matches_empty()) {
            let ids = self.resolve(m);
            result = Some(match result {
                None => ids,
                Some(prev) => intersect(&prev, &ids),
            });
            if result.as_ref().is_some_and(Vec::is_empty) {
                break;
            }
        }
        result
    }

    /// Series ids for one matcher that does not match the empty string.
    fn resolve(&self, m: &Matcher) -> Vec<SeriesId> {
        let Some(values) = self.postings.get(m.name.as_str()) else {
            return Vec::new();
        };
        if m.op == MatchOp::Equal {
            return values.get(m.value.as_str()).cloned().unwrap_or_default();
        }
        let lists: Vec<&Vec<SeriesId>> = values
            .iter()
            .filter(|(v, _)| m.matches(v))
            .map(|(_, ids)| ids)
            .collect();
        union(&lists)
    }
}

fn intersect(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(a.len().min(b.len())));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn union(lists: &[&Vec<SeriesId>]) -> Vec<SeriesId> {
    match lists {
        [] => Vec::new(),
        [one] => (*one).clone(),
        _ => {
            let mut out: Vec<SeriesId> = lists.iter().flat_map(|l| l.iter().copied()).collect();
            out.sort_unstable();
            out.dedup();
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LabelLimits;

    fn series(pairs: &[(&str, &str)]) -> Labels {
        Labels::try_from_pairs(pairs.iter().map(|(n, v)| (*n, *v)), &LabelLimits::default())
            .unwrap()
    }

    fn index() -> (PostingsIndex, Vec<Labels>) {
        let all = vec![
            series(&[("__name__", "up"), ("job", "a")]),
            series(&[("__name__", "up"), ("job", "b"), ("env", "prod")]),
            series(&[("__name__", "down"), ("job", "a")]),
        ];
        let mut idx = PostingsIndex::default();
        for (i, l) in all.iter().enumerate() {
            idx.add(SeriesId(i as u64), l);
        }
        (idx, all)
    }

    fn select(idx: &PostingsIndex, all: &[Labels], ms: Vec<Matcher>) -> Vec<u64> {
        let ms = Matchers(ms);
        let cands = idx
            .candidates(&ms)
            .unwrap_or_else(|| (0..all.len() as u64).map(SeriesId).collect());
        cands
            .into_iter()
            .filter(|id| ms.matches(&all[id.0 as usize]))
            .map(|id| id.0)
            .collect()
    }

    #[test]
    fn equality_and_regex_matchers_resolve_through_postings() {
        let (idx, all) = index();
        assert_eq!(
            select(&idx, &all, vec![Matcher::equal("__name__", "up")]),
            [0, 1]
        );
        let re = Matcher::new(MatchOp::RegexMatch, "__name__", "u.|do.*").unwrap();
        assert_eq!(select(&idx, &all, vec![re]), [0, 1, 2]);
        let both = vec![Matcher::equal("__name__", "up"), Matcher::equal("job", "a")];
        assert_eq!(select(&idx, &all, both), [0]);
    }

    #[test]
    fn matchers_that_match_empty_select_series_without_the_label() {
        let (idx, all) = index();
        let ms = vec![
            Matcher::equal("job", "a").clone(),
            Matcher::new(MatchOp::NotEqual, "env", "prod").unwrap(),
        ];
        assert_eq!(select(&idx, &all, ms), [0, 2]);
        let ms = vec![Matcher::new(MatchOp::RegexNoMatch, "job", "a").unwrap()];
        assert_eq!(select(&idx, &all, ms), [1]);
        let ms = vec![Matcher::equal("__name__", "up"), Matcher::equal("env", "")];
        assert_eq!(select(&idx, &all, ms), [0]);
    }

    #[test]
    fn removing_a_series_drops_empty_lists() {
        let (mut idx, all) = index();
        idx.remove(SeriesId(1), &all[1]);
        assert_eq!(idx.label_values("env"), Vec::<Arc<str>>::new());
        assert_eq!(idx.postings("__name__", "up"), &[SeriesId(0)]);
    }
}
