//! Relabeling, as Prometheus does it (`model/relabel/relabel.go`): `relabel_configs` on targets
//! before the scrape, `metric_relabel_configs` on samples after it. Regexes are fully anchored
//! and `.` matches newlines (Prometheus 3); replacements expand `$1`, `${1}`, `$name`.

use std::collections::BTreeMap;
use std::fmt;

use md5::{Digest, Md5};
use quiver_storage::legacy_label_name;
use regex::Regex;
use serde::{Deserialize, Deserializer};

/// A label set being relabeled: name → value (an empty value is no label).
pub type LabelMap = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        };
        f.write_str(s)
    }
}

/// An anchored relabel regex: compared by its source text.
#[derive(Debug, Clone)]
pub struct RelabelRegex {
    pub source: String,
    re: Regex,
}

impl RelabelRegex {
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        Ok(RelabelRegex {
            source: source.to_string(),
            re: quiver_storage::anchored_regex(source)?,
        })
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }
}

impl Default for RelabelRegex {
    fn default() -> Self {
        RelabelRegex::new("(.*)").expect("the default regex compiles")
    }
}

impl PartialEq for RelabelRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl<'de> Deserialize<'de> for RelabelRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RelabelRegex::new(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid regex {s:?}: {e}")))
    }
}

/// One relabeling step.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    #[serde(default)]
    pub source_labels: Vec<String>,
    #[serde(default = "default_separator")]
    pub separator: String,
    #[serde(default)]
    pub target_label: Option<String>,
    #[serde(default)]
    pub regex: RelabelRegex,
    #[serde(default)]
    pub modulus: Option<u64>,
    #[serde(default = "default_replacement")]
    pub replacement: String,
    #[serde(default)]
    pub action: Action,
}

fn default_separator() -> String {
    ";".into()
}
fn default_replacement() -> String {
    "$1".into()
}

impl RelabelConfig {
    /// Prometheus's checks: which fields each action needs and which it forbids.
    pub fn validate(&self) -> Result<(), String> {
        let a = self.action;
        let needs_target = matches!(
            a,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        if needs_target && self.target_label.as_deref().unwrap_or("").is_empty() {
            return Err(format!(
                "relabel configuration for {a} action requires 'target_label' value"
            ));
        }
        if let Some(t) = &self.target_label {
            let ok = match a {
                // Templates like `${1}` are allowed in a replace target.
                Action::Replace => t.contains('$') || legacy_label_name(t),
                _ => legacy_label_name(t),
            };
            if !ok {
                return Err(format!("{t:?} is invalid 'target_label' for {a} action"));
            }
        }
        if a == Action::HashMod && self.modulus.unwrap_or(0) == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        if matches!(a, Action::LabelDrop | Action::LabelKeep)
            && (!self.source_labels.is_empty()
                || self.target_label.is_some()
                || self.modulus.is_some()
                || self.separator != ";"
                || self.replacement != "$1")
        {
            return Err(format!(
                "{a} action requires only 'regex', and no other fields"
            ));
        }
        if matches!(a, Action::KeepEqual | Action::DropEqual)
            && (self.source_labels.is_empty()
                || self.regex.source != "(.*)"
                || self.modulus.is_some()
                || self.separator != ";"
                || self.replacement != "$1")
        {
            return Err(format!(
                "{a} action requires only 'source_labels' and 'target_label', and no other fields"
            ));
        }
        if matches!(a, Action::Keep | Action::Drop | Action::HashMod)
            && self.source_labels.is_empty()
        {
            return Err(format!("{a} action requires 'source_labels'"));
        }
        Ok(())
    }

    /// Applies this step: `false` when the label set is dropped.
    pub fn apply(&self, labels: &mut LabelMap) -> bool {
        let value = || {
            let mut v = String::new();
            for (i, name) in self.source_labels.iter().enumerate() {
                if i > 0 {
                    v.push_str(&self.separator);
                }
                v.push_str(labels.get(name).map(String::as_str).unwrap_or(""));
            }
            v
        };
        let target = self.target_label.as_deref().unwrap_or("");
        match self.action {
            Action::Replace => {
                let val = value();
                let Some(caps) = self.regex.re.captures(&val) else {
                    return true;
                };
                let mut name = String::new();
                caps.expand(target, &mut name);
                if !legacy_label_name(&name) {
                    return true;
                }
                let mut res = String::new();
                caps.expand(&self.replacement, &mut res);
                set(labels, name, res);
            }
            Action::Lowercase => {
                let v = value().to_lowercase();
                set(labels, target.to_string(), v);
            }
            Action::Uppercase => {
                let v = value().to_uppercase();
                set(labels, target.to_string(), v);
            }
            Action::Keep => return self.regex.is_match(&value()),
            Action::Drop => return !self.regex.is_match(&value()),
            Action::KeepEqual => {
                return labels.get(target).map(String::as_str).unwrap_or("") == value();
            }
            Action::DropEqual => {
                return labels.get(target).map(String::as_str).unwrap_or("") != value();
            }
            Action::HashMod => {
                let sum = Md5::digest(value().as_bytes());
                let tail: [u8; 8] = sum[8..16].try_into().expect("md5 is 16 bytes");
                let m = u64::from_be_bytes(tail) % self.modulus.unwrap_or(1).max(1);
                set(labels, target.to_string(), m.to_string());
            }
            Action::LabelMap => {
                let mapped: Vec<(String, String)> = labels
                    .iter()
                    .filter(|(n, _)| self.regex.is_match(n))
                    .map(|(n, v)| {
                        let name = self.regex.re.replace_all(n, self.replacement.as_str());
                        (name.into_owned(), v.clone())
                    })
                    .collect();
                for (n, v) in mapped {
                    set(labels, n, v);
                }
            }
            Action::LabelDrop => labels.retain(|n, _| !self.regex.is_match(n)),
            Action::LabelKeep => labels.retain(|n, _| self.regex.is_match(n)),
        }
        true
    }
}

/// Sets a label; an empty value removes it.
fn set(labels: &mut LabelMap, name: String, value: String) {
    if value.is_empty() {
        labels.remove(&name);
    } else {
        labels.insert(name, value);
    }
}

/// Runs every step in order: `false` as soon as one drops the set.
pub fn process(labels: &mut LabelMap, cfgs: &[RelabelConfig]) -> bool {
    cfgs.iter().all(|c| c.apply(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> RelabelConfig {
        let c: RelabelConfig = serde_yaml_ng::from_str(yaml).unwrap();
        c.validate().unwrap();
        c
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelMap {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn replace_with_groups_and_default_regex() {
        let c = cfg(
            "{source_labels: [a, b], regex: '(.*);(.*)', target_label: c, replacement: '${2}-$1'}",
        );
        let mut l = labels(&[("a", "x"), ("b", "y")]);
        assert!(c.apply(&mut l));
        assert_eq!(l["c"], "y-x");
        // The default regex (.*) copies the joined value.
        let c = cfg("{source_labels: [a], target_label: d}");
        c.apply(&mut l);
        assert_eq!(l["d"], "x");
    }

    #[test]
    fn replace_is_anchored_and_a_miss_changes_nothing() {
        let c = cfg("{source_labels: [a], regex: 'b', target_label: t, replacement: hit}");
        let mut l = labels(&[("a", "abc")]);
        c.apply(&mut l);
        assert!(!l.contains_key("t"), "partial matches must not count");
    }

    #[test]
    fn replace_with_empty_result_deletes_the_target() {
        let c = cfg("{source_labels: [missing], target_label: a}");
        let mut l = labels(&[("a", "1")]);
        c.apply(&mut l);
        assert!(!l.contains_key("a"));
    }

    #[test]
    fn replace_target_label_may_use_groups() {
        let c = cfg("{source_labels: [k], regex: '(.+)', target_label: 'x_$1', replacement: v}");
        let mut l = labels(&[("k", "zone")]);
        c.apply(&mut l);
        assert_eq!(l["x_zone"], "v");
    }

    #[test]
    fn dot_matches_newline() {
        let c = cfg("{source_labels: [a], regex: 'x.y', action: keep}");
        assert!(c.apply(&mut labels(&[("a", "x\ny")])));
    }

    #[test]
    fn keep_and_drop() {
        let keep = cfg("{source_labels: [job], regex: 'node|api', action: keep}");
        assert!(keep.apply(&mut labels(&[("job", "api")])));
        assert!(!keep.apply(&mut labels(&[("job", "db")])));
        let drop = cfg("{source_labels: [__name__], regex: 'go_.*', action: drop}");
        assert!(!drop.apply(&mut labels(&[("__name__", "go_goroutines")])));
        assert!(drop.apply(&mut labels(&[("__name__", "up")])));
    }

    #[test]
    fn keepequal_and_dropequal() {
        let ke = cfg("{source_labels: [a], target_label: b, action: keepequal}");
        assert!(ke.apply(&mut labels(&[("a", "1"), ("b", "1")])));
        assert!(!ke.apply(&mut labels(&[("a", "1"), ("b", "2")])));
        let de = cfg("{source_labels: [a], target_label: b, action: dropequal}");
        assert!(!de.apply(&mut labels(&[("a", "1"), ("b", "1")])));
        assert!(de.apply(&mut labels(&[("a", "1"), ("b", "2")])));
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // Expected values from Prometheus's own relabel tests (model/relabel/relabel_test.go).
        let c = cfg("{source_labels: [a], target_label: h, modulus: 1000, action: hashmod}");
        let mut l = labels(&[("a", "baz")]);
        c.apply(&mut l);
        assert_eq!(l["h"], "976");
        let mut l = labels(&[("a", "foo\nbar")]);
        c.apply(&mut l);
        assert_eq!(l["h"], "734");
    }

    #[test]
    fn labelmap_copies_matching_names() {
        let c = cfg("{regex: '__meta_kubernetes_pod_label_(.+)', action: labelmap}");
        let mut l = labels(&[("__meta_kubernetes_pod_label_app", "web"), ("x", "1")]);
        c.apply(&mut l);
        assert_eq!(l["app"], "web");
        assert_eq!(l["__meta_kubernetes_pod_label_app"], "web");
    }

    #[test]
    fn labeldrop_and_labelkeep() {
        let d = cfg("{regex: 'tmp_.*', action: labeldrop}");
        let mut l = labels(&[("tmp_a", "1"), ("keep", "2"), ("__name__", "m")]);
        d.apply(&mut l);
        assert_eq!(l.keys().collect::<Vec<_>>(), ["__name__", "keep"]);
        let k = cfg("{regex: '__name__|keep', action: labelkeep}");
        let mut l = labels(&[("other", "1"), ("keep", "2"), ("__name__", "m")]);
        k.apply(&mut l);
        assert_eq!(l.keys().collect::<Vec<_>>(), ["__name__", "keep"]);
    }

    #[test]
    fn lowercase_and_uppercase() {
        let lo = cfg("{source_labels: [a], target_label: lo, action: lowercase}");
        let up = cfg("{source_labels: [a], target_label: up, action: uppercase}");
        let mut l = labels(&[("a", "MiXeD")]);
        lo.apply(&mut l);
        up.apply(&mut l);
        assert_eq!((l["lo"].as_str(), l["up"].as_str()), ("mixed", "MIXED"));
    }

    #[test]
    fn validation_errors() {
        let bad = |y: &str| {
            let c: RelabelConfig = serde_yaml_ng::from_str(y).unwrap();
            c.validate().unwrap_err()
        };
        assert!(bad("{action: hashmod, source_labels: [a], target_label: t}").contains("modulus"));
        assert!(bad("{action: replace, source_labels: [a]}").contains("target_label"));
        assert!(bad("{action: labeldrop, regex: a, source_labels: [a]}").contains("only 'regex'"));
        assert!(
            bad("{action: lowercase, source_labels: [a], target_label: '1x'}").contains("invalid")
        );
        assert!(serde_yaml_ng::from_str::<RelabelConfig>("{action: explode}").is_err());
        assert!(serde_yaml_ng::from_str::<RelabelConfig>("{regex: '(('}").is_err());
    }

    #[test]
    fn steps_run_in_order_and_stop_at_a_drop() {
        let cfgs = vec![
            cfg("{source_labels: [a], target_label: b}"),
            cfg("{source_labels: [b], regex: x, action: drop}"),
            cfg("{source_labels: [a], target_label: c}"),
        ];
        let mut l = labels(&[("a", "x")]);
        assert!(!process(&mut l, &cfgs));
        assert!(!l.contains_key("c"));
    }
}
