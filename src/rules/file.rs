//! Rule files in Prometheus's format, read strictly and checked as `promtool check rules` does.
//! An error names the file, the line, the group and the rule (`rules.yml:12:1: group "gpu",
//! rule 2 (alert "GpuHot"): expr: …`).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::template::Expander;
use crate::config::ConfigError;
use crate::config::file::{PromDuration, locate, parse_strict};
use quiver_storage::{legacy_label_name, legacy_metric_name};

/// A rule file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFileSpec {
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
}

/// One group of a rule file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub name: String,
    /// Default: `global.evaluation_interval`.
    #[serde(default)]
    pub interval: Option<PromDuration>,
    /// Evaluate this far in the past (Prometheus 3; default `global.rule_query_offset`).
    #[serde(default)]
    pub query_offset: Option<PromDuration>,
    /// At most this many series (recording) or alerts (alerting) per rule; 0 is no limit.
    #[serde(default)]
    pub limit: u64,
    /// Labels added to every rule of the group (Prometheus 3).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// One rule as written: `record` or `alert`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    #[serde(default)]
    pub record: Option<String>,
    #[serde(default)]
    pub alert: Option<String>,
    #[serde(default, deserialize_with = "scalar_text")]
    pub expr: String,
    #[serde(default, rename = "for")]
    pub for_: Option<PromDuration>,
    #[serde(default)]
    pub keep_firing_for: Option<PromDuration>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// `expr: 1` is a YAML number; Prometheus reads any scalar as the expression's text.
fn scalar_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_yaml_ng::Value::deserialize(d)? {
        serde_yaml_ng::Value::String(s) => Ok(s),
        serde_yaml_ng::Value::Number(n) => Ok(n.to_string()),
        serde_yaml_ng::Value::Bool(b) => Ok(b.to_string()),
        serde_yaml_ng::Value::Null => Ok(String::new()),
        _ => Err(serde::de::Error::custom("expr must be a string")),
    }
}

/// What kind of rule a spec is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Recording,
    Alerting,
}

impl RuleSpec {
    pub fn kind(&self) -> RuleKind {
        if self.record.is_some() {
            RuleKind::Recording
        } else {
            RuleKind::Alerting
        }
    }

    /// The rule's name: its record or its alert.
    pub fn name(&self) -> &str {
        self.record
            .as_deref()
            .or(self.alert.as_deref())
            .unwrap_or_default()
    }

    pub fn hold(&self) -> Duration {
        self.for_.map(|d| d.0).unwrap_or_default()
    }

    pub fn keep_firing_for(&self) -> Duration {
        self.keep_firing_for.map(|d| d.0).unwrap_or_default()
    }
}

/// Reads and checks one rule file (`file` names it in errors).
pub fn parse(file: &str, yaml: &str) -> Result<RuleFileSpec, ConfigError> {
    let spec: RuleFileSpec = parse_strict(file, yaml)?;
    check(file, yaml, &spec)?;
    Ok(spec)
}

/// The checks `promtool check rules` makes, each error at its line.
fn check(file: &str, yaml: &str, spec: &RuleFileSpec) -> Result<(), ConfigError> {
    let at = |path: &str, message: String| ConfigError {
        file: file.to_string(),
        location: locate(yaml, path).map(|l| (l, 1)),
        message,
    };
    let mut names = HashSet::new();
    for (g, group) in spec.groups.iter().enumerate() {
        let gpath = format!("groups[{g}]");
        if group.name.is_empty() {
            return Err(at(&gpath, "group name must not be empty".into()));
        }
        if !names.insert(group.name.as_str()) {
            return Err(at(
                &format!("{gpath}.name"),
                format!("group {:?}: repeated in the same file", group.name),
            ));
        }
        if group.interval.is_some_and(|d| d.0.is_zero()) {
            return Err(at(
                &format!("{gpath}.interval"),
                format!("group {:?}: interval must be positive", group.name),
            ));
        }
        for name in group.labels.keys() {
            if !legacy_label_name(name) || name == "__name__" {
                return Err(at(
                    &format!("{gpath}.labels"),
                    format!("group {:?}: invalid label name {name:?}", group.name),
                ));
            }
        }
        for (r, rule) in group.rules.iter().enumerate() {
            let rpath = format!("{gpath}.rules[{r}]");
            let what = match (&rule.record, &rule.alert) {
                (Some(n), None) => format!("record {n:?}"),
                (None, Some(n)) => format!("alert {n:?}"),
                _ => String::new(),
            };
            let err = |field: &str, message: String| {
                let path = if field.is_empty() {
                    rpath.clone()
                } else {
                    format!("{rpath}.{field}")
                };
                let located = at(&path, String::new()).location;
                ConfigError {
                    file: file.to_string(),
                    location: located.or_else(|| at(&rpath, String::new()).location),
                    message: format!(
                        "group {:?}, rule {} ({what}): {}{message}",
                        group.name,
                        r + 1,
                        if field.is_empty() {
                            String::new()
                        } else {
                            format!("{field}: ")
                        }
                    ),
                }
            };
            check_rule(rule, &err)?;
        }
    }
    Ok(())
}

fn check_rule(
    rule: &RuleSpec,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    match (&rule.record, &rule.alert) {
        (None, None) => return Err(err("", "one of 'record' or 'alert' must be set".into())),
        (Some(_), Some(_)) => {
            return Err(err(
                "",
                "only one of 'record' and 'alert' must be set".into(),
            ));
        }
        _ => {}
    }
    if rule.expr.trim().is_empty() {
        return Err(err("expr", "field 'expr' must be set in rule".into()));
    }
    if let Err(e) = quiver_promql::parse(&rule.expr) {
        return Err(err("expr", format!("could not parse expression: {e}")));
    }
    if let Some(record) = &rule.record {
        if !legacy_metric_name(record) {
            return Err(err(
                "record",
                format!("invalid recording rule name: {record}"),
            ));
        }
        if !rule.annotations.is_empty() {
            return Err(err(
                "annotations",
                "invalid field 'annotations' in recording rule".into(),
            ));
        }
        if rule.for_.is_some() {
            return Err(err("for", "invalid field 'for' in recording rule".into()));
        }
        if rule.keep_firing_for.is_some() {
            return Err(err(
                "keep_firing_for",
                "invalid field 'keep_firing_for' in recording rule".into(),
            ));
        }
    }
    if let Some(alert) = &rule.alert
        && alert.is_empty()
    {
        return Err(err("alert", "invalid alert name: empty".into()));
    }
    for (name, value) in &rule.labels {
        if !legacy_label_name(name) {
            return Err(err("labels", format!("invalid label name: {name}")));
        }
        if name == "__name__" && rule.record.is_some() {
            return Err(err(
                "labels",
                "invalid recording rule label name: __name__".into(),
            ));
        }
        if rule.alert.is_some() {
            Expander::check(value)
                .map_err(|e| err(&format!("labels.{name}"), format!("template: {e}")))?;
        }
    }
    for (name, value) in &rule.annotations {
        if !legacy_label_name(name) {
            return Err(err(
                "annotations",
                format!("invalid annotation name: {name}"),
            ));
        }
        Expander::check(value)
            .map_err(|e| err(&format!("annotations.{name}"), format!("template: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(yaml: &str) -> String {
        parse("rules.yml", yaml).unwrap_err().to_string()
    }

    #[test]
    fn a_good_file_reads_with_every_field() {
        let spec = parse(
            "rules.yml",
            r#"
groups:
  - name: gpu
    interval: 30s
    limit: 10
    query_offset: 1m
    rules:
      - record: job:gpu_util:avg
        expr: avg by (job) (gpu_util)
        labels: {team: ml}
      - alert: GpuHot
        expr: gpu_temp > 85
        for: 5m
        keep_firing_for: 1m
        labels: {severity: page}
        annotations:
          summary: "GPU {{ $labels.gpu }} is at {{ $value | humanize }}C"
      - record: one
        expr: 1
"#,
        )
        .unwrap();
        let g = &spec.groups[0];
        assert_eq!(g.interval.unwrap().0, Duration::from_secs(30));
        assert_eq!(g.rules.len(), 3);
        assert_eq!(g.rules[1].kind(), RuleKind::Alerting);
        assert_eq!(g.rules[1].hold(), Duration::from_secs(300));
        assert_eq!(g.rules[2].expr, "1");
    }

    #[test]
    fn errors_name_the_line_group_and_rule() {
        let e = error(
            "groups:\n  - name: gpu\n    rules:\n      - record: ok\n        expr: up\n      - alert: Bad\n        expr: sum(\n",
        );
        assert!(e.starts_with("rules.yml:7:1: "), "{e}");
        assert!(
            e.contains("group \"gpu\", rule 2 (alert \"Bad\"): expr: could not parse expression"),
            "{e}"
        );

        let e = error(
            "groups:\n  - name: g\n    rules:\n      - record: 'bad name'\n        expr: up\n",
        );
        assert!(e.contains("rules.yml:4:1:"), "{e}");
        assert!(e.contains("invalid recording rule name: bad name"), "{e}");

        let e = error("groups:\n  - name: g\n    rules:\n      - expr: up\n");
        assert!(e.contains("one of 'record' or 'alert' must be set"), "{e}");

        let e = error(
            "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n        annotations: {a: b}\n",
        );
        assert!(
            e.contains("invalid field 'annotations' in recording rule"),
            "{e}"
        );

        let e = error("groups:\n  - name: g\n    rules: []\n  - name: g\n    rules: []\n");
        assert!(
            e.contains("rules.yml:4:1:") && e.contains("repeated"),
            "{e}"
        );

        let e = error(
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        annotations:\n          summary: '{{ $labels.x '\n",
        );
        assert!(e.contains("rules.yml:7:1:"), "{e}");
        assert!(e.contains("annotations.summary: template:"), "{e}");

        let e = error(
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        unknown: 1\n",
        );
        assert!(e.contains("unknown field `unknown`"), "{e}");
    }
}
