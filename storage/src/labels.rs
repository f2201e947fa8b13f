//! Series identity: label sets, their validation, and the interning that keeps each distinct
//! string in memory once.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// A series' compact id: assigned once by the registry, never shared by two label sets, and
/// stored in the WAL and in block files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesId(pub u64);

impl fmt::Display for SeriesId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Milliseconds since the Unix epoch, as Prometheus counts them.
pub type Timestamp = i64;

/// The bit pattern Prometheus uses for a staleness marker (a NaN that no arithmetic produces).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is a staleness marker (not just any NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Whether `name` may name a label in data: Prometheus 3 accepts any UTF-8 name but the empty
/// one.
pub fn valid_label_name(name: &str) -> bool {
    !name.is_empty()
}

/// A legacy label name, `[a-zA-Z_][a-zA-Z0-9_]*`, as configuration and rule files require
/// (Prometheus 2's form).
pub fn legacy_label_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A legacy metric name, `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn legacy_metric_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// One label: a name and a non-empty value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: Arc<str>,
    pub value: Arc<str>,
}

/// A label set sorted by name, with unique names and no empty values: the identity of a series.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<Label>);

/// Limits on series identity, checked on every write.
#[derive(Debug, Clone)]
pub struct LabelLimits {
    pub max_labels_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
}

impl Default for LabelLimits {
    fn default() -> Self {
        LabelLimits {
            max_labels_per_series: 128,
            max_label_name_length: 1024,
            max_label_value_length: 16 * 1024,
        }
    }
}

/// Checks label pairs as Prometheus 3's remote-write receiver does and puts them in canonical
/// form: pairs with an empty value are dropped (an empty value is no label), the rest sorted by
/// name; names must be non-empty and unique, `__name__` present, limits kept.
pub fn validate_pairs<N: AsRef<str>, V: AsRef<str>>(
    pairs: &mut Vec<(N, V)>,
    limits: &LabelLimits,
) -> Result<()> {
    for (name, value) in pairs.iter() {
        let (name, value) = (name.as_ref(), value.as_ref());
        if name.is_empty() {
            return Err(Error::InvalidSeries("empty label name".into()));
        }
        if name.len() > limits.max_label_name_length {
            return Err(Error::LimitExceeded(format!(
                "label name {:?} is longer than {} bytes",
                truncate(name),
                limits.max_label_name_length
            )));
        }
        if value.len() > limits.max_label_value_length {
            return Err(Error::LimitExceeded(format!(
                "value of label {:?} is longer than {} bytes",
                truncate(name),
                limits.max_label_value_length
            )));
        }
        if value.is_empty() && name == METRIC_NAME {
            return Err(Error::InvalidSeries("empty metric name".into()));
        }
    }
    pairs.retain(|(_, v)| !v.as_ref().is_empty());
    if !pairs.is_sorted_by(|a, b| a.0.as_ref() <= b.0.as_ref()) {
        pairs.sort_unstable_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
    }
    if let Some(w) = pairs
        .windows(2)
        .find(|w| w[0].0.as_ref() == w[1].0.as_ref())
    {
        return Err(Error::InvalidSeries(format!(
            "duplicate label name {:?}",
            truncate(w[0].0.as_ref())
        )));
    }
    if pairs.is_empty() {
        return Err(Error::InvalidSeries("empty label set".into()));
    }
    if pairs.len() > limits.max_labels_per_series {
        return Err(Error::LimitExceeded(format!(
            "series has {} labels, more than the limit of {}",
            pairs.len(),
            limits.max_labels_per_series
        )));
    }
    if !pairs.iter().any(|(n, _)| n.as_ref() == METRIC_NAME) {
        let shown: Vec<String> = pairs
            .iter()
            .map(|(n, v)| format!("{}={:?}", n.as_ref(), v.as_ref()))
            .collect();
        return Err(Error::InvalidSeries(format!(
            "missing metric name (__name__ label) in {{{}}}",
            shown.join(", ")
        )));
    }
    Ok(())
}

impl Labels {
    /// Builds a label set from pairs in any order, checking it as Prometheus 3's remote-write
    /// receiver does: names are non-empty UTF-8, appear once, and `__name__` is present.
    /// A label with an empty value is the same as no label, so it is left out.
    pub fn try_from_pairs<N, V>(
        pairs: impl IntoIterator<Item = (N, V)>,
        limits: &LabelLimits,
    ) -> Result<Self>
    where
        N: Into<Arc<str>>,
        V: Into<Arc<str>>,
    {
        let mut pairs: Vec<(Arc<str>, Arc<str>)> = pairs
            .into_iter()
            .map(|(n, v)| (n.into(), v.into()))
            .collect();
        validate_pairs(&mut pairs, limits)?;
        Ok(Labels(
            pairs
                .into_iter()
                .map(|(name, value)| Label { name, value })
                .collect(),
        ))
    }

    /// Builds a label set from pairs that passed [`validate_pairs`] (sorted, canonical).
    pub fn from_validated(pairs: &[(&str, &str)]) -> Self {
        Labels(
            pairs
                .iter()
                .map(|(n, v)| Label {
                    name: Arc::from(*n),
                    value: Arc::from(*v),
                })
                .collect(),
        )
    }

    /// Whether these labels are exactly the canonical `pairs`.
    pub fn eq_pairs(&self, pairs: &[(&str, &str)]) -> bool {
        self.0.len() == pairs.len()
            && self
                .0
                .iter()
                .zip(pairs)
                .all(|(l, (n, v))| l.name.as_ref() == *n && l.value.as_ref() == *v)
    }

    /// A hash of the label pairs, equal for `Labels` and the same canonical pairs.
    pub fn hash_with(&self, state: &foldhash::fast::FixedState) -> u64 {
        hash_pairs(
            state,
            self.0.iter().map(|l| (l.name.as_ref(), l.value.as_ref())),
        )
    }

    /// Builds a label set from pairs already known to be valid (decoded from our own files).
    pub fn from_trusted(mut labels: Vec<Label>) -> Self {
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Labels(labels)
    }

    /// The metric name, if there is one.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_ref().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_ref())
    }

    /// The labels in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Replaces every string with the interned copy, so each distinct string is held once.
    pub fn intern(self, interner: &mut Interner) -> Self {
        Labels(
            self.0
                .into_iter()
                .map(|l| Label {
                    name: interner.intern(&l.name),
                    value: interner.intern(&l.value),
                })
                .collect(),
        )
    }

    /// Bytes held by this label set's strings, not counting sharing.
    pub fn byte_size(&self) -> usize {
        self.0.iter().map(|l| l.name.len() + l.value.len()).sum()
    }
}

impl fmt::Display for Labels {
    /// Prometheus's notation: `name{a="1", b="2"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name().unwrap_or("");
        write!(f, "{name}{{")?;
        let mut first = true;
        for l in self.0.iter().filter(|l| l.name.as_ref() != METRIC_NAME) {
            if !first {
                write!(f, ", ")?;
            }
            first = false;
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        write!(f, "}}")
    }
}

/// Hashes canonical label pairs (names and values with separators, so `a=bc` and `ab=c` differ).
pub fn hash_pairs<'a>(
    state: &foldhash::fast::FixedState,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = state.build_hasher();
    for (n, v) in pairs {
        h.write(n.as_bytes());
        h.write_u8(0xff);
        h.write(v.as_bytes());
        h.write_u8(0xfe);
    }
    h.finish()
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Holds one shared copy of each label string.
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashSet<Arc<str>>,
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(found) = self.strings.get(s) {
            return found.clone();
        }
        let arc: Arc<str> = Arc::from(s);
        self.strings.insert(arc.clone());
        arc
    }

    /// Drops strings nobody else holds any more.
    pub fn collect_garbage(&mut self) {
        self.strings.retain(|s| Arc::strong_count(s) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Result<Labels> {
        Labels::try_from_pairs(pairs.iter().map(|(n, v)| (*n, *v)), &LabelLimits::default())
    }

    #[test]
    fn labels_are_sorted_by_name() {
        let l = labels(&[("job", "a"), ("__name__", "up"), ("instance", "x")]).unwrap();
        let names: Vec<_> = l.iter().map(|l| l.name.to_string()).collect();
        assert_eq!(names, ["__name__", "instance", "job"]);
        assert_eq!(l.to_string(), r#"up{instance="x", job="a"}"#);
    }

    #[test]
    fn duplicate_label_names_are_rejected() {
        let err = labels(&[("__name__", "up"), ("a", "1"), ("a", "2")]).unwrap_err();
        assert!(err.to_string().contains("duplicate label name"), "{err}");
    }

    #[test]
    fn missing_metric_name_and_empty_sets_are_rejected() {
        assert!(
            labels(&[("a", "1")])
                .unwrap_err()
                .to_string()
                .contains("missing metric name")
        );
        assert!(
            labels(&[])
                .unwrap_err()
                .to_string()
                .contains("empty label set")
        );
        assert!(
            labels(&[("", "x"), ("__name__", "up")])
                .unwrap_err()
                .to_string()
                .contains("empty label name")
        );
    }

    #[test]
    fn empty_values_mean_no_label() {
        let l = labels(&[("__name__", "up"), ("a", "")]).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l.get("a"), None);
    }

    #[test]
    fn limits_are_enforced() {
        let limits = LabelLimits {
            max_labels_per_series: 2,
            max_label_name_length: 4,
            max_label_value_length: 3,
        };
        let err = Labels::try_from_pairs([("__name__", "up"), ("a", "1"), ("b", "2")], &limits)
            .unwrap_err();
        assert!(matches!(err, Error::LimitExceeded(_)));
        let err =
            Labels::try_from_pairs([("__name__", "up"), ("abcde", "1")], &limits).unwrap_err();
        assert!(matches!(err, Error::LimitExceeded(_)));
        let err = Labels::try_from_pairs([("__name__", "upup")], &limits).unwrap_err();
        assert!(matches!(err, Error::LimitExceeded(_)));
    }

    #[test]
    fn interning_shares_strings() {
        let mut interner = Interner::default();
        let a = labels(&[("__name__", "up"), ("job", "x")])
            .unwrap()
            .intern(&mut interner);
        let b = labels(&[("__name__", "up"), ("job", "y")])
            .unwrap()
            .intern(&mut interner);
        let (la, lb) = (a.iter().next().unwrap(), b.iter().next().unwrap());
        assert!(Arc::ptr_eq(&la.value, &lb.value));
    }
}
