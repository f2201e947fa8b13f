//! Label sets as they travel through a plan: one `Binary` value per row.
//!
//! A set is its pairs sorted by name, each written as `name 0xFF value 0xFE`. UTF-8 never
//! contains the bytes 0xFE or 0xFF, so the encoding is unambiguous, and two sets are equal
//! exactly when their encodings are: grouping, joining and hashing work on the bytes.

pub const METRIC_NAME: &str = "__name__";
/// A pseudo-label marking `__name__` for removal at the end of the query (Prometheus 3's
/// delayed name removal): functions and operators that drop the name set it, so the name
/// stays visible to `label_replace`, `by (__name__)` and matching until the result is built.
/// `\x01` sorts before every real label name, so the mark is always first.
pub const DROP_NAME: &str = "\u{1}";
const NAME_END: u8 = 0xFF;
const PAIR_END: u8 = 0xFE;

/// Encodes pairs that are already sorted by name and unique; empty values are left out
/// (an empty label value means the label is absent).
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in pairs {
        push(&mut out, n, v);
    }
    out
}

/// Encodes pairs in any order (the last value of a repeated name wins).
pub fn encode_unsorted(pairs: &[(String, String)]) -> Vec<u8> {
    let mut sorted: Vec<(String, String)> = pairs.to_vec();
    // A stable sort keeps repeated names in input order; keep the last of each.
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted.reverse();
    sorted.dedup_by(|b, a| a.0 == b.0);
    sorted.reverse();
    encode(sorted.iter().map(|(n, v)| (n.as_str(), v.as_str())))
}

fn push(out: &mut Vec<u8>, name: &str, value: &str) {
    push_raw(out, name.as_bytes(), value.as_bytes());
}

fn push_raw(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    if value.is_empty() {
        return;
    }
    out.extend_from_slice(name);
    out.push(NAME_END);
    out.extend_from_slice(value);
    out.push(PAIR_END);
}

/// The pairs as bytes, without UTF-8 checks (the encoding only ever holds valid UTF-8):
/// what rewrites use, since they compare and copy but never read characters.
fn raw_pairs(bytes: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    bytes
        .split(|b| *b == PAIR_END)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let at = p.iter().position(|b| *b == NAME_END).unwrap_or(p.len());
            (&p[..at], p.get(at + 1..).unwrap_or_default())
        })
}

/// The pairs of an encoded set, in name order.
pub fn pairs(bytes: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    bytes
        .split(|b| *b == PAIR_END)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let at = p.iter().position(|b| *b == NAME_END).unwrap_or(p.len());
            let (n, v) = (&p[..at], p.get(at + 1..).unwrap_or_default());
            (
                std::str::from_utf8(n).unwrap_or_default(),
                std::str::from_utf8(v).unwrap_or_default(),
            )
        })
}

/// The value of one label.
pub fn get<'a>(bytes: &'a [u8], name: &str) -> Option<&'a str> {
    raw_pairs(bytes)
        .find(|(n, _)| *n == name.as_bytes())
        .map(|(_, v)| std::str::from_utf8(v).unwrap_or_default())
}

/// Only the named labels (`by`, `on`).
pub fn keep(bytes: &[u8], names: &[String], out: &mut Vec<u8>) {
    out.clear();
    for (n, v) in raw_pairs(bytes) {
        if names.iter().any(|k| k.as_bytes() == n) {
            push_raw(out, n, v);
        }
    }
}

/// All labels but the named ones (`without`, `ignoring`).
pub fn drop(bytes: &[u8], names: &[String], out: &mut Vec<u8>) {
    out.clear();
    for (n, v) in raw_pairs(bytes) {
        if !names.iter().any(|k| k.as_bytes() == n) {
            push_raw(out, n, v);
        }
    }
}

/// The set without `__name__` (and its drop mark), and without `__type__` and `__unit__`,
/// which describe the metric the name stood for and go with it (Prometheus 3).
pub fn drop_name(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for (n, v) in raw_pairs(bytes) {
        if !matches!(n, b"__name__" | b"\x01" | b"__type__" | b"__unit__") {
            push_raw(&mut out, n, v);
        }
    }
    out
}

/// The set with its `__name__` marked for removal at the end of the query.
pub fn mark_drop_name(bytes: &[u8]) -> Vec<u8> {
    if has_drop_mark(bytes) || get(bytes, METRIC_NAME).is_none() {
        return bytes.to_vec();
    }
    set(bytes, DROP_NAME, "1")
}

pub fn has_drop_mark(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x01\xFF")
}

/// The set as a query returns it: a marked `__name__` removed.
pub fn finish(bytes: &[u8]) -> Vec<u8> {
    if has_drop_mark(bytes) {
        drop_name(bytes)
    } else {
        bytes.to_vec()
    }
}

/// The set with `name` set to `value` (removed when `value` is empty).
pub fn set(bytes: &[u8], name: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + name.len() + value.len() + 2);
    let mut done = false;
    for (n, v) in raw_pairs(bytes) {
        if !done && n >= name.as_bytes() {
            push(&mut out, name, value);
            done = true;
            if n == name.as_bytes() {
                continue;
            }
        }
        push_raw(&mut out, n, v);
    }
    if !done {
        push(&mut out, name, value);
    }
    out
}

/// `{a="b", c="d"}` in Prometheus's notation, for messages.
pub fn display(bytes: &[u8]) -> String {
    let inner: Vec<String> = pairs(bytes)
        .filter(|(n, _)| *n != DROP_NAME)
        .map(|(n, v)| format!("{n}={v:?}"))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// The labels an aggregation groups by: `by (…)` keeps the named ones, `without (…)` drops
/// them and `__name__`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Grouping {
    By(Vec<String>),
    Without(Vec<String>),
}

impl Grouping {
    /// Whether the key keeps `__name__` (so a pending removal must be carried along).
    pub fn keeps_name(&self) -> bool {
        matches!(self, Grouping::By(n) if n.iter().any(|n| n == METRIC_NAME))
    }

    pub fn key(&self, labels: &[u8], out: &mut Vec<u8>) {
        match self {
            // A pending removal of `__name__` is not part of the key: the aggregation carries
            // it separately (see `planner::aggregate`).
            Grouping::By(names) => keep(labels, names, out),
            Grouping::Without(names) => {
                drop(labels, names, out);
                if get(out, METRIC_NAME).is_some() || has_drop_mark(out) {
                    *out = drop_name(out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_orders_by_name() {
        let e = encode_unsorted(&[("b".into(), "2".into()), ("a".into(), "1".into())]);
        assert_eq!(pairs(&e).collect::<Vec<_>>(), vec![("a", "1"), ("b", "2")]);
        assert_eq!(get(&e, "b"), Some("2"));
        assert_eq!(get(&e, "c"), None);
    }

    #[test]
    fn set_inserts_replaces_and_removes_in_order() {
        let e = encode([("a", "1"), ("c", "3")]);
        assert_eq!(
            set(&e, "b", "2"),
            encode([("a", "1"), ("b", "2"), ("c", "3")])
        );
        assert_eq!(set(&e, "c", "9"), encode([("a", "1"), ("c", "9")]));
        assert_eq!(set(&e, "a", ""), encode([("c", "3")]));
        assert_eq!(
            set(&e, "z", "0"),
            encode([("a", "1"), ("c", "3"), ("z", "0")])
        );
    }

    #[test]
    fn keep_drop_and_drop_name_select_labels() {
        let e = encode([("__name__", "m"), ("a", "1"), ("b", "2")]);
        let mut out = Vec::new();
        keep(&e, &["b".to_string()], &mut out);
        assert_eq!(out, encode([("b", "2")]));
        drop(&e, &["b".to_string()], &mut out);
        assert_eq!(out, encode([("__name__", "m"), ("a", "1")]));
        assert_eq!(drop_name(&e), encode([("a", "1"), ("b", "2")]));
        let upper = encode([("A", "x"), ("__name__", "m")]);
        assert_eq!(drop_name(&upper), encode([("A", "x")]));
        let typed = encode([
            ("__name__", "m"),
            ("__type__", "counter"),
            ("__unit__", "s"),
            ("a", "1"),
        ]);
        assert_eq!(drop_name(&typed), encode([("a", "1")]));
    }

    #[test]
    fn a_marked_name_stays_until_the_result_is_finished() {
        let e = encode([("__name__", "m"), ("a", "1")]);
        let marked = mark_drop_name(&e);
        assert_eq!(get(&marked, METRIC_NAME), Some("m"));
        assert!(has_drop_mark(&marked));
        assert_eq!(finish(&marked), encode([("a", "1")]));
        assert_eq!(finish(&e), e);
    }
}
