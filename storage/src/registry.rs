//! The series registry: label set <-> series id, with the inverted index and string interning.

use std::collections::HashMap;

use foldhash::fast::FixedState;

use crate::index::PostingsIndex;
use crate::labels::{Interner, Labels, SeriesId, hash_pairs};
use crate::matchers::Matchers;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Every series the engine knows (in the head or in a block), keyed both ways. Label sets are
/// found by a 64-bit hash and verified against the stored labels, so two label sets never share
/// an id and a lookup from borrowed strings allocates nothing.
#[derive(Debug, Default)]
pub struct SeriesRegistry {
    hasher: FixedState,
    by_hash: FastMap<u64, Vec<SeriesId>>,
    by_id: FastMap<SeriesId, Labels>,
    index: PostingsIndex,
    interner: Interner,
    next_id: u64,
    /// Series removed so far: an id resolved while this was unchanged is still registered.
    removals: u64,
    /// Series added or removed so far: a selection made while this was unchanged still holds.
    generation: u64,
    /// Per metric name, the generation at which a series of that name was last added or
    /// removed: a selection that names its metric holds while that is unchanged, whatever
    /// other series come and go.
    name_generations: FastMap<String, u64>,
}

impl SeriesRegistry {
    /// The id of `labels`, and whether it was created by this call.
    pub fn get_or_create(&mut self, labels: Labels) -> (SeriesId, bool) {
        if let Some(id) = self.get(&labels) {
            return (id, false);
        }
        let id = SeriesId(self.next_id);
        self.next_id += 1;
        self.insert(id, labels);
        (id, true)
    }

    /// Looks up an existing series.
    pub fn get(&self, labels: &Labels) -> Option<SeriesId> {
        let ids = self.by_hash.get(&labels.hash_with(&self.hasher))?;
        ids.iter()
            .copied()
            .find(|id| self.by_id.get(id) == Some(labels))
    }

    /// Looks up a series by canonical label pairs (see `labels::validate_pairs`).
    pub fn get_pairs(&self, pairs: &[(&str, &str)]) -> Option<SeriesId> {
        let ids = self
            .by_hash
            .get(&hash_pairs(&self.hasher, pairs.iter().copied()))?;
        ids.iter()
            .copied()
            .find(|id| self.by_id.get(id).is_some_and(|l| l.eq_pairs(pairs)))
    }

    /// Changes with every series added or removed: what [`SeriesRegistry::select`] answered
    /// still holds while this is unchanged.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Changes with every series of metric `name` added or removed (0 while there was none):
    /// a selection of that metric's series still holds while this is unchanged.
    pub fn generation_of(&self, name: &str) -> u64 {
        self.name_generations.get(name).copied().unwrap_or(0)
    }

    fn changed(&mut self, labels: &Labels) {
        self.generation += 1;
        let name = labels.metric_name().unwrap_or_default();
        match self.name_generations.get_mut(name) {
            Some(g) => *g = self.generation,
            None => {
                self.name_generations
                    .insert(name.to_string(), self.generation);
            }
        }
    }

    /// How many series were removed so far (see [`crate::WriteBatch::ids_valid_at`]).
    pub fn removals(&self) -> u64 {
        self.removals
    }

    /// Whether the id is registered.
    pub fn contains(&self, id: SeriesId) -> bool {
        self.by_id.contains_key(&id)
    }

    /// Registers a series whose id was assigned before (read from the WAL or a block).
    pub fn insert_known(&mut self, id: SeriesId, labels: Labels) {
        self.next_id = self.next_id.max(id.0 + 1);
        if self.by_id.contains_key(&id) {
            return;
        }
        self.insert(id, labels);
    }

    fn insert(&mut self, id: SeriesId, labels: Labels) {
        self.changed(&labels);
        let labels = labels.intern(&mut self.interner);
        self.index.add(id, &labels);
        self.by_hash
            .entry(labels.hash_with(&self.hasher))
            .or_default()
            .push(id);
        self.by_id.insert(id, labels);
    }

    /// Forgets a series (after retention dropped its last samples).
    pub fn remove(&mut self, id: SeriesId) {
        if let Some(labels) = self.by_id.remove(&id) {
            self.removals += 1;
            self.changed(&labels);
            self.index.remove(id, &labels);
            let h = labels.hash_with(&self.hasher);
            if let Some(ids) = self.by_hash.get_mut(&h) {
                ids.retain(|x| *x != id);
                if ids.is_empty() {
                    self.by_hash.remove(&h);
                }
            }
        }
    }

    /// Drops interned strings no series uses any more.
    pub fn collect_garbage(&mut self) {
        self.interner.collect_garbage();
    }

    pub fn labels(&self, id: SeriesId) -> Option<&Labels> {
        self.by_id.get(&id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Makes sure ids below `next` are never handed out (they were, before a restart).
    pub fn reserve_ids(&mut self, next: u64) {
        self.next_id = self.next_id.max(next);
    }

    /// The next id that would be handed out.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    pub fn index(&self) -> &PostingsIndex {
        &self.index
    }

    /// Every id, unsorted.
    pub fn ids(&self) -> impl Iterator<Item = SeriesId> + '_ {
        self.by_id.keys().copied()
    }

    /// The series that all matchers select, in id order.
    pub fn select(&self, matchers: &Matchers) -> Vec<SeriesId> {
        let candidates = match self.index.candidates(matchers) {
            Some(c) => c,
            None => {
                let mut all: Vec<SeriesId> = self.by_id.keys().copied().collect();
                all.sort_unstable();
                all
            }
        };
        candidates
            .into_iter()
            .filter(|id| self.by_id.get(id).is_some_and(|l| matchers.matches(l)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{LabelLimits, validate_pairs};

    #[test]
    fn borrowed_pairs_find_the_series_their_labels_created() {
        let mut reg = SeriesRegistry::default();
        let mut pairs = vec![("job", "a"), ("__name__", "up"), ("instance", "x:1")];
        validate_pairs(&mut pairs, &LabelLimits::default()).unwrap();
        let (id, created) = reg.get_or_create(Labels::from_validated(&pairs));
        assert!(created);
        assert_eq!(reg.get_pairs(&pairs), Some(id));
        assert_eq!(reg.get_pairs(&[("__name__", "up")]), None);
        // Two label sets that concatenate alike still differ.
        let mut other = vec![("__name__", "up"), ("instance", "x:"), ("job", "1a")];
        validate_pairs(&mut other, &LabelLimits::default()).unwrap();
        assert_eq!(reg.get_pairs(&other), None);
    }

    #[test]
    fn a_metric_generation_moves_only_with_its_own_series() {
        let mut reg = SeriesRegistry::default();
        let labels = |name: &str, gpu: &str| {
            let mut pairs = vec![("__name__", name), ("gpu", gpu)];
            validate_pairs(&mut pairs, &LabelLimits::default()).unwrap();
            Labels::from_validated(&pairs)
        };
        assert_eq!(reg.generation_of("util"), 0);
        let (a, _) = reg.get_or_create(labels("util", "0"));
        let util = reg.generation_of("util");
        assert_ne!(util, 0);
        reg.get_or_create(labels("temp", "0"));
        reg.get_or_create(labels("util", "0")); // known: nothing changes
        assert_eq!(
            reg.generation_of("util"),
            util,
            "other metrics leave it alone"
        );
        assert_ne!(reg.generation_of("temp"), 0);
        reg.get_or_create(labels("util", "1"));
        let added = reg.generation_of("util");
        assert_ne!(added, util);
        reg.remove(a);
        assert_ne!(reg.generation_of("util"), added, "a removal moves it too");
        assert_eq!(reg.generation(), 4);
    }
}
