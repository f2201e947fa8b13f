//! Metric and label names as Prometheus 3 translates OpenTelemetry's (its `otlptranslator`):
//! the four translation strategies of the `otlp:` configuration, units turned into suffixes,
//! and attribute keys turned into label names.

use std::fmt;

/// `otlp.translation_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Names and labels escaped to `[a-zA-Z0-9_:]`, units and `_total`/`_ratio` added (the
    /// default).
    #[default]
    UnderscoreEscapingWithSuffixes,
    /// Escaped, no suffixes.
    UnderscoreEscapingWithoutSuffixes,
    /// UTF-8 names kept, suffixes added.
    NoUTF8EscapingWithSuffixes,
    /// Names and labels as sent.
    NoTranslation,
}

impl Strategy {
    pub fn parse(s: &str) -> Option<Strategy> {
        Some(match s {
            "UnderscoreEscapingWithSuffixes" => Strategy::UnderscoreEscapingWithSuffixes,
            "UnderscoreEscapingWithoutSuffixes" => Strategy::UnderscoreEscapingWithoutSuffixes,
            "NoUTF8EscapingWithSuffixes" => Strategy::NoUTF8EscapingWithSuffixes,
            "NoTranslation" => Strategy::NoTranslation,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::UnderscoreEscapingWithSuffixes => "UnderscoreEscapingWithSuffixes",
            Strategy::UnderscoreEscapingWithoutSuffixes => "UnderscoreEscapingWithoutSuffixes",
            Strategy::NoUTF8EscapingWithSuffixes => "NoUTF8EscapingWithSuffixes",
            Strategy::NoTranslation => "NoTranslation",
        }
    }

    /// Whether names and labels are escaped to the classic character set.
    pub fn escapes(self) -> bool {
        matches!(
            self,
            Strategy::UnderscoreEscapingWithSuffixes | Strategy::UnderscoreEscapingWithoutSuffixes
        )
    }

    pub fn suffixes(self) -> bool {
        matches!(
            self,
            Strategy::UnderscoreEscapingWithSuffixes | Strategy::NoUTF8EscapingWithSuffixes
        )
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a metric is, for naming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    MonotonicCounter,
    NonMonotonicCounter,
    Histogram,
    ExponentialHistogram,
    Summary,
}

/// OpenTelemetry's units (UCUM) and the words Prometheus names them with.
const UNITS: &[(&str, &str)] = &[
    ("d", "days"),
    ("h", "hours"),
    ("min", "minutes"),
    ("s", "seconds"),
    ("ms", "milliseconds"),
    ("us", "microseconds"),
    ("ns", "nanoseconds"),
    ("By", "bytes"),
    ("KiBy", "kibibytes"),
    ("MiBy", "mebibytes"),
    ("GiBy", "gibibytes"),
    ("TiBy", "tibibytes"),
    ("KBy", "kilobytes"),
    ("MBy", "megabytes"),
    ("GBy", "gigabytes"),
    ("TBy", "terabytes"),
    ("m", "meters"),
    ("V", "volts"),
    ("A", "amperes"),
    ("J", "joules"),
    ("W", "watts"),
    ("g", "grams"),
    ("Cel", "celsius"),
    ("Hz", "hertz"),
    ("1", ""),
    ("%", "percent"),
];

/// The units of a rate's denominator (`By/s`).
const PER_UNITS: &[(&str, &str)] = &[
    ("s", "second"),
    ("m", "minute"),
    ("h", "hour"),
    ("d", "day"),
    ("w", "week"),
    ("mo", "month"),
    ("y", "year"),
];

fn lookup(table: &[(&str, &'static str)], unit: &str) -> String {
    table
        .iter()
        .find(|(k, _)| *k == unit)
        .map_or_else(|| unit.to_string(), |(_, v)| (*v).to_string())
}

/// A unit's main and per parts as suffix words: `By/s` gives (`bytes`, `per_second`); an
/// annotation in braces (`{request}`) drops its part.
fn unit_suffixes(unit: &str) -> (String, String) {
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m, Some(p)),
        None => (unit, None),
    };
    let main = main.trim();
    let main = if !main.is_empty() && !main.contains(['{', '}']) {
        lookup(UNITS, main)
    } else {
        String::new()
    };
    let per = match per {
        Some(p) if !p.is_empty() => {
            let p = p.trim();
            let word = if !p.is_empty() && !p.contains(['{', '}']) {
                lookup(PER_UNITS, p)
            } else {
                String::new()
            };
            if word.is_empty() {
                word
            } else {
                format!("per_{word}")
            }
        }
        _ => String::new(),
    };
    (main, per)
}

/// `[a-zA-Z0-9:]`: what a metric name token is made of (`_` separates tokens).
fn metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// Every character outside the classic set becomes `_`, runs of `_` become one, one leading
/// `_` goes.
fn clean_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if metric_char(c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    match out.strip_prefix('_') {
        Some(rest) => rest.to_string(),
        None => out,
    }
}

/// The unit as Prometheus's metadata gives it: `By/s` gives `bytes_per_second`, `1` nothing.
pub fn unit_name(unit: &str) -> String {
    let (main, per) = unit_suffixes(unit);
    let (main, per) = (clean_unit(&main), clean_unit(&per));
    let u = match (main.is_empty(), per.is_empty()) {
        (false, false) => format!("{main}_{per}"),
        (false, true) => main,
        _ => per,
    };
    let u = u.strip_prefix('_').unwrap_or(&u);
    u.strip_suffix('_').unwrap_or(u).to_string()
}

/// A metric's Prometheus name under `strategy`, or why it has none.
pub fn metric_name(
    name: &str,
    unit: &str,
    kind: Kind,
    strategy: Strategy,
) -> Result<String, String> {
    let out = match strategy {
        Strategy::UnderscoreEscapingWithSuffixes => escaped_with_suffixes(name, unit, kind),
        Strategy::UnderscoreEscapingWithoutSuffixes => {
            let out = name
                .split(|c: char| !metric_char(c) && c != '_')
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join("_");
            if out.starts_with(|c: char| c.is_ascii_digit()) {
                format!("_{out}")
            } else {
                out
            }
        }
        Strategy::NoUTF8EscapingWithSuffixes => return Ok(utf8_with_suffixes(name, unit, kind)),
        Strategy::NoTranslation => return Ok(name.to_string()),
    };
    if out.is_empty() {
        return Err(format!(
            "normalization for metric {name:?} resulted in empty name"
        ));
    }
    if out != name && out.chars().all(|c| c == '_') {
        return Err(format!(
            "normalization for metric {name:?} resulted in invalid name {out:?}"
        ));
    }
    Ok(out)
}

fn escaped_with_suffixes(name: &str, unit: &str, kind: Kind) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !metric_char(c))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let (main, per) = unit_suffixes(unit);
    let (mut main, mut per) = (clean_unit(&main), clean_unit(&per));
    if tokens.contains(&main) {
        main.clear();
    }
    if per == "per_" {
        per.clear();
    } else {
        if per.ends_with('_') {
            per.pop();
        }
        if tokens.contains(&per) {
            per.clear();
        }
    }
    if !per.is_empty() && main.ends_with('_') {
        main.pop();
    }
    if !main.is_empty() {
        tokens.push(main);
    }
    if !per.is_empty() {
        tokens.push(per);
    }
    if kind == Kind::MonotonicCounter {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if unit == "1" && kind == Kind::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }
    let out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{out}")
    } else {
        out
    }
}

/// Cuts `suffix` and the byte before it (taken to be a delimiter) off the end of `name`.
fn trim_suffix_and_delimiter<'a>(name: &'a str, suffix: &str) -> &'a str {
    if name.ends_with(suffix) && name.len() > suffix.len() + 1 {
        let cut = name.len() - suffix.len() - 1;
        // The byte before the suffix may be inside a character (`é`); Prometheus cuts bytes,
        // Quiver keeps the name whole rather than make it invalid UTF-8.
        if name.is_char_boundary(cut) {
            return &name[..cut];
        }
    }
    name
}

fn utf8_with_suffixes(name: &str, unit: &str, kind: Kind) -> String {
    let mut base = name;
    let ratio = unit == "1" && kind == Kind::Gauge;
    if ratio {
        base = trim_suffix_and_delimiter(base, "ratio");
    }
    let total = kind == Kind::MonotonicCounter;
    if total {
        base = trim_suffix_and_delimiter(base, "total");
    }
    let (main, per) = unit_suffixes(unit);
    if !per.is_empty() {
        base = trim_suffix_and_delimiter(base, &per);
    }
    let mut out = base.to_string();
    if !main.is_empty() && !out.ends_with(&main) {
        out.push('_');
        out.push_str(&main);
    }
    if !per.is_empty() {
        out.push('_');
        out.push_str(&per);
    }
    if total {
        out.push_str("_total");
    }
    if ratio {
        out.push_str("_ratio");
    }
    out
}

/// How attribute keys become label names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelNamer {
    pub escape: bool,
    /// `label_name_underscore_sanitization`: `_x` becomes `key_x`.
    pub underscore_sanitization: bool,
    /// `label_name_preserve_multiple_underscores`.
    pub preserve_multiple_underscores: bool,
}

impl LabelNamer {
    /// The label name for attribute key `key`, or why it has none.
    pub fn build(&self, key: &str) -> Result<String, String> {
        if key.is_empty() {
            return Err("label name is empty".into());
        }
        let only_underscores = |s: &str| s.chars().all(|c| c == '_');
        if !self.escape {
            if only_underscores(key) {
                return Err(format!("label name {key:?} contains only underscores"));
            }
            return Ok(key.to_string());
        }
        let mut out = self.sanitize(key);
        if out.starts_with(|c: char| c.is_ascii_digit()) {
            out.insert_str(0, "key_");
        } else if self.underscore_sanitization && out.starts_with('_') && !out.starts_with("__") {
            out.insert_str(0, "key");
        }
        if only_underscores(&out) {
            return Err(format!(
                "normalization for label name {key:?} resulted in invalid name {out:?}"
            ));
        }
        Ok(out)
    }

    fn sanitize(&self, key: &str) -> String {
        let label_char = |c: char| c.is_ascii_alphanumeric();
        if self.preserve_multiple_underscores {
            return key
                .chars()
                .map(|c| if label_char(c) { c } else { '_' })
                .collect();
        }
        // `__x__` keeps its wrapping; the inside is sanitized.
        let reserved = key.len() >= 4 && key.starts_with("__") && key.ends_with("__");
        let inner = if reserved {
            &key[2..key.len() - 2]
        } else {
            key
        };
        let mut out = String::with_capacity(key.len());
        for c in inner.chars() {
            if label_char(c) {
                out.push(c);
            } else if !out.ends_with('_') {
                out.push('_');
            }
        }
        if reserved { format!("__{out}__") } else { out }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str, unit: &str, kind: Kind) -> String {
        metric_name(n, unit, kind, Strategy::UnderscoreEscapingWithSuffixes).unwrap()
    }

    // The cases of otlptranslator's metric_namer_test.go, default strategy.
    #[test]
    fn names_and_units_as_prometheus_translates_them() {
        use Kind::*;
        assert_eq!(name("requests", "", MonotonicCounter), "requests_total");
        assert_eq!(name("cpu_usage", "1", Gauge), "cpu_usage_ratio");
        assert_eq!(name("items", "1", MonotonicCounter), "items_total");
        assert_eq!(name("requests", "1/s", Gauge), "requests_per_second");
        assert_eq!(
            name("throughput", "By/s", Gauge),
            "throughput_bytes_per_second"
        );
        assert_eq!(
            name("custom_metric", "custom_unit", Gauge),
            "custom_metric_custom_unit"
        );
        assert_eq!(name("custom_metric", "{custom}", Gauge), "custom_metric");
        assert_eq!(
            name("custom_metric", "By/{custom}", Gauge),
            "custom_metric_bytes"
        );
        assert_eq!(
            name("requests_total", "", MonotonicCounter),
            "requests_total"
        );
        assert_eq!(
            name("total_requests", "", MonotonicCounter),
            "requests_total"
        );
        assert_eq!(
            name("response_time_seconds", "s", Gauge),
            "response_time_seconds"
        );
        assert_eq!(
            name(
                "metric__with__multiple__underscores",
                "unit__multiple__underscores",
                Gauge
            ),
            "metric_with_multiple_underscores_unit_multiple_underscores"
        );
        assert_eq!(
            name("custom_metric", "unit@with#special/chars", Gauge),
            "custom_metric_unit_with_special_per_chars"
        );
        assert_eq!(name("metric", " By / s ", Gauge), "metric_bytes_per_second");
        assert_eq!(name("metric", "/", Gauge), "metric");
        assert_eq!(
            name("http.request.duration", "ms", Histogram),
            "http_request_duration_milliseconds"
        );
        assert_eq!(
            name("http.requests", "1", MonotonicCounter),
            "http_requests_total"
        );
        assert_eq!(
            name("test.counter", "By", MonotonicCounter),
            "test_counter_bytes_total"
        );
        assert_eq!(name("0xdead", "", Gauge), "_0xdead");
        assert_eq!(name("up.down", "{request}", NonMonotonicCounter), "up_down");
        assert!(metric_name("@#$%", "", Gauge, Strategy::UnderscoreEscapingWithSuffixes).is_err());
    }

    #[test]
    fn the_other_strategies() {
        use Kind::*;
        let s = Strategy::UnderscoreEscapingWithoutSuffixes;
        assert_eq!(
            metric_name("metric@@##$$name", "s", Gauge, s).unwrap(),
            "metric_name"
        );
        assert_eq!(
            metric_name("a._b", "", MonotonicCounter, s).unwrap(),
            "a__b"
        );
        assert_eq!(
            metric_name("123metric", "", Gauge, s).unwrap(),
            "_123metric"
        );
        assert_eq!(metric_name("___", "", Gauge, s).unwrap(), "___");
        assert!(metric_name("@_#_$_%", "", Gauge, s).is_err());
        let s = Strategy::NoUTF8EscapingWithSuffixes;
        assert_eq!(
            metric_name("test.counter", "By", MonotonicCounter, s).unwrap(),
            "test.counter_bytes_total"
        );
        assert_eq!(
            metric_name("requêsts", "", MonotonicCounter, s).unwrap(),
            "requêsts_total"
        );
        assert_eq!(
            metric_name("cpu_usagé", "1", Gauge, s).unwrap(),
            "cpu_usagé_ratio"
        );
        assert_eq!(
            metric_name("cpu_seconds_total", "s", MonotonicCounter, s).unwrap(),
            "cpu_seconds_total"
        );
        assert_eq!(
            metric_name("otelcol_process_cpu_seconds", "s", MonotonicCounter, s).unwrap(),
            "otelcol_process_cpu_seconds_total"
        );
        assert_eq!(
            metric_name("@#$%", "", MonotonicCounter, s).unwrap(),
            "@#$%_total"
        );
        let s = Strategy::NoTranslation;
        assert_eq!(
            metric_name("test.counter", "By", MonotonicCounter, s).unwrap(),
            "test.counter"
        );
    }

    #[test]
    fn units_in_metadata() {
        assert_eq!(unit_name("By/s"), "bytes_per_second");
        assert_eq!(unit_name("1"), "");
        assert_eq!(unit_name("s"), "seconds");
        assert_eq!(unit_name("{request}"), "");
    }

    #[test]
    fn label_names() {
        let n = LabelNamer {
            escape: true,
            underscore_sanitization: true,
            preserve_multiple_underscores: true,
        };
        assert_eq!(n.build("label:with:colons").unwrap(), "label_with_colons");
        assert_eq!(n.build("label.with.dots").unwrap(), "label_with_dots");
        assert_eq!(n.build("123label").unwrap(), "key_123label");
        assert_eq!(n.build("_private").unwrap(), "key_private");
        assert_eq!(n.build("_metric_private").unwrap(), "key_metric_private");
        assert_eq!(n.build("metric___multi").unwrap(), "metric___multi");
        assert_eq!(n.build("__reserved__").unwrap(), "__reserved__");
        assert_eq!(
            n.build("字符").unwrap_err(),
            "normalization for label name \"字符\" resulted in invalid name \"__\""
        );
        assert!(n.build("").is_err());
        let collapse = LabelNamer {
            preserve_multiple_underscores: false,
            ..n
        };
        assert_eq!(collapse.build("metric___multi").unwrap(), "metric_multi");
        assert_eq!(
            collapse.build("__reserved__label__name__").unwrap(),
            "__reserved_label_name__"
        );
        assert_eq!(
            collapse.build("label.name__with&&special##chars").unwrap(),
            "label_name_with_special_chars"
        );
        let utf8 = LabelNamer { escape: false, ..n };
        assert_eq!(utf8.build("foo.bar").unwrap(), "foo.bar");
        assert!(utf8.build("__").is_err());
    }
}
