//! Alert label and annotation templates: Go's `text/template` (through `gotmpl`) with the data
//! and functions Prometheus gives them.
//!
//! Like Prometheus, every template is run after the definitions
//! `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}`,
//! so `{{ $labels.instance }}` and `{{ .Labels.instance }}` both work. The functions are
//! Prometheus's: `humanize`, `humanize1024`, `humanizeDuration`, `humanizePercentage`,
//! `humanizeTimestamp`, `toUpper`, `toLower`, `title`, `stripPort`, `stripDomain`, `match`,
//! `reReplaceAll`, `graphLink`, `tableLink`, `parseDuration`, `toTime`, `args`, `safeHtml`,
//! `externalURL`, `pathPrefix`, and `query` with `first`, `label`, `value`, `sortByLabel`,
//! `strvalue` over its result. Numbers the helpers print follow Go's `%.4g`.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{Template, Value};

/// The variables Prometheus defines before every alert template.
const DEFS: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// Runs an instant PromQL query for the `query` template function: (labels, value) pairs.
pub type QueryFn =
    dyn Fn(&str) -> Result<Vec<(BTreeMap<String, String>, f64)>, String> + Send + Sync;

/// Expands templates for one alerting rule's evaluation.
#[derive(Clone)]
pub struct Expander {
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    /// `None` where no engine is at hand (checking a file): `query` then answers nothing.
    pub query: Option<Arc<QueryFn>>,
}

impl Expander {
    /// Checks that `text` parses (as `promtool check rules` does).
    pub fn check(text: &str) -> Result<(), String> {
        let e = Expander {
            external_labels: BTreeMap::new(),
            external_url: String::new(),
            query: None,
        };
        let t = e.template("check", text)?;
        // Go reports an unknown function when it parses; gotmpl when it runs: run once on
        // empty data and keep only that error (others depend on the data).
        match t.execute_to_string(&e.data(&BTreeMap::new(), 0.0)) {
            Err(err @ gotmpl::TemplateError::UndefinedFunction(_)) => Err(err.to_string()),
            _ => Ok(()),
        }
    }

    fn data(&self, labels: &BTreeMap<String, String>, value: f64) -> Value {
        Value::from_entries([
            ("Labels".into(), string_map(labels)),
            ("ExternalLabels".into(), string_map(&self.external_labels)),
            (
                "ExternalURL".into(),
                Value::String(self.external_url.as_str().into()),
            ),
            ("Value".into(), Value::Float(value)),
        ])
    }

    /// The expanded text, or Prometheus's `<error expanding template: …>` in its place.
    pub fn expand(
        &self,
        name: &str,
        text: &str,
        labels: &BTreeMap<String, String>,
        value: f64,
    ) -> String {
        // Plain text needs no template run (most label values).
        if !text.contains("{{") {
            return text.to_string();
        }
        let data = self.data(labels, value);
        match self
            .template(name, text)
            .and_then(|t| t.execute_to_string(&data).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => format!("<error expanding template: {e}>"),
        }
    }

    fn template(&self, name: &str, text: &str) -> Result<Template, String> {
        let mut t = Template::new(&format!("__alert_{name}"));
        for (fname, f) in self.functions() {
            t = t.func(fname, move |args| {
                f(args).map_err(gotmpl::TemplateError::Exec)
            });
        }
        t.parse(&format!("{DEFS}{text}")).map_err(|e| e.to_string())
    }

    #[allow(clippy::type_complexity)]
    fn functions(
        &self,
    ) -> Vec<(
        &'static str,
        Arc<dyn Fn(&[Value]) -> Result<Value, String> + Send + Sync>,
    )> {
        let url = self.external_url.clone();
        let path_prefix = url::Url::parse(&url)
            .map(|u| u.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        let query = self.query.clone();
        let text = |s: String| Ok(Value::String(s.into()));
        vec![
            (
                "humanize",
                Arc::new(move |a: &[Value]| text(humanize(float(a, 0)?))),
            ),
            (
                "humanize1024",
                Arc::new(move |a: &[Value]| text(humanize1024(float(a, 0)?))),
            ),
            (
                "humanizeDuration",
                Arc::new(move |a: &[Value]| text(humanize_duration(float(a, 0)?))),
            ),
            (
                "humanizePercentage",
                Arc::new(move |a: &[Value]| text(format!("{}%", go_g(float(a, 0)? * 100.0, 4)))),
            ),
            (
                "humanizeTimestamp",
                Arc::new(move |a: &[Value]| text(humanize_timestamp(float(a, 0)?))),
            ),
            (
                "toTime",
                Arc::new(move |a: &[Value]| text(humanize_timestamp(float(a, 0)?))),
            ),
            (
                "toUpper",
                Arc::new(move |a: &[Value]| text(string(a, 0)?.to_uppercase())),
            ),
            (
                "toLower",
                Arc::new(move |a: &[Value]| text(string(a, 0)?.to_lowercase())),
            ),
            (
                "title",
                Arc::new(move |a: &[Value]| text(title(&string(a, 0)?))),
            ),
            (
                "stripPort",
                Arc::new(move |a: &[Value]| text(strip_port(&string(a, 0)?))),
            ),
            (
                "stripDomain",
                Arc::new(move |a: &[Value]| text(strip_domain(&string(a, 0)?))),
            ),
            ("safeHtml", Arc::new(move |a: &[Value]| text(string(a, 0)?))),
            (
                "match",
                Arc::new(move |a: &[Value]| {
                    let re = regex::Regex::new(&string(a, 0)?).map_err(|e| e.to_string())?;
                    Ok(Value::Bool(re.is_match(&string(a, 1)?)))
                }),
            ),
            (
                "reReplaceAll",
                Arc::new(move |a: &[Value]| {
                    let re = regex::Regex::new(&string(a, 0)?).map_err(|e| e.to_string())?;
                    text(
                        re.replace_all(&string(a, 2)?, string(a, 1)?.as_str())
                            .into_owned(),
                    )
                }),
            ),
            (
                "graphLink",
                Arc::new(move |a: &[Value]| {
                    text(format!(
                        "/graph?g0.expr={}&g0.tab=0",
                        query_escape(&string(a, 0)?)
                    ))
                }),
            ),
            (
                "tableLink",
                Arc::new(move |a: &[Value]| {
                    text(format!(
                        "/graph?g0.expr={}&g0.tab=1",
                        query_escape(&string(a, 0)?)
                    ))
                }),
            ),
            (
                "parseDuration",
                Arc::new(move |a: &[Value]| {
                    let s = string(a, 0)?;
                    crate::time::parse_prometheus_duration(&s)
                        .map(|ms| Value::Float(ms as f64 / 1000.0))
                        .ok_or_else(|| format!("not a valid duration string: {s:?}"))
                }),
            ),
            (
                "args",
                Arc::new(move |a: &[Value]| {
                    let map: BTreeMap<Arc<str>, Value> = a
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (Arc::from(format!("arg{i}")), v.clone()))
                        .collect();
                    Ok(Value::Map(Arc::new(map)))
                }),
            ),
            (
                "externalURL",
                Arc::new(move |_: &[Value]| text(url.clone())),
            ),
            (
                "pathPrefix",
                Arc::new(move |_: &[Value]| text(path_prefix.clone())),
            ),
            (
                "query",
                Arc::new(move |a: &[Value]| {
                    let q = string(a, 0)?;
                    let Some(query) = &query else {
                        return Ok(Value::List(Arc::from(Vec::new())));
                    };
                    let samples: Vec<Value> = query(&q)?
                        .into_iter()
                        .map(|(labels, v)| {
                            Value::from_entries([
                                ("Labels".into(), string_map(&labels)),
                                ("Value".into(), Value::Float(v)),
                            ])
                        })
                        .collect();
                    Ok(Value::List(Arc::from(samples)))
                }),
            ),
            (
                "first",
                Arc::new(move |a: &[Value]| match a.first() {
                    Some(Value::List(l)) => l
                        .first()
                        .cloned()
                        .ok_or_else(|| "first() called on vector with no elements".to_string()),
                    _ => Err("first() needs a query result".into()),
                }),
            ),
            (
                "label",
                Arc::new(move |a: &[Value]| {
                    let name = string(a, 0)?;
                    Ok(a.get(1)
                        .and_then(|s| s.field("Labels"))
                        .and_then(|l| l.field(&name))
                        .cloned()
                        .unwrap_or(Value::String("".into())))
                }),
            ),
            (
                "value",
                Arc::new(move |a: &[Value]| {
                    Ok(a.first()
                        .and_then(|s| s.field("Value"))
                        .cloned()
                        .unwrap_or(Value::Nil))
                }),
            ),
            (
                "strvalue",
                Arc::new(move |a: &[Value]| {
                    Ok(a.first()
                        .and_then(|s| s.field("Labels"))
                        .and_then(|l| l.field("__value__"))
                        .cloned()
                        .unwrap_or(Value::String("".into())))
                }),
            ),
            (
                "sortByLabel",
                Arc::new(move |a: &[Value]| {
                    let name = string(a, 0)?;
                    let Some(Value::List(l)) = a.get(1) else {
                        return Err("sortByLabel needs a label name and a query result".into());
                    };
                    let key = |v: &Value| {
                        v.field("Labels")
                            .and_then(|l| l.field(&name))
                            .and_then(|s| s.as_str().map(str::to_string))
                            .unwrap_or_default()
                    };
                    let mut sorted: Vec<Value> = l.to_vec();
                    sorted.sort_by_key(key);
                    Ok(Value::List(Arc::from(sorted)))
                }),
            ),
        ]
    }
}

fn string_map(m: &BTreeMap<String, String>) -> Value {
    Value::Map(Arc::new(
        m.iter()
            .map(|(k, v)| (Arc::from(k.as_str()), Value::String(v.as_str().into())))
            .collect(),
    ))
}

/// Argument `i` as a float, as Prometheus's `convertToFloat` takes it (numbers and numeric
/// strings).
fn float(args: &[Value], i: usize) -> Result<f64, String> {
    match args.get(i) {
        Some(Value::Float(f)) => Ok(*f),
        Some(Value::Int(n)) => Ok(*n as f64),
        Some(Value::Uint(n)) => Ok(*n as f64),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("can't convert {s:?} to float")),
        Some(other) => Err(format!("can't convert {other} to float")),
        None => Err("missing argument".into()),
    }
}

fn string(args: &[Value], i: usize) -> Result<String, String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.to_string()),
        Some(other) => Ok(other.to_string()),
        None => Err("missing argument".into()),
    }
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Go's `strings.Title`: the first letter of each word upper-cased.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

/// `host:port` → `host` (brackets of an IPv6 address dropped); anything else as it is.
fn strip_port(s: &str) -> String {
    if let Some(rest) = s.strip_prefix('[')
        && let Some((host, port)) = rest.split_once("]:")
        && port.chars().all(|c| c.is_ascii_digit())
    {
        return host.to_string();
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            host.to_string()
        }
        _ => s.to_string(),
    }
}

/// The first label of a host name, the port kept (`a.example.com:9100` → `a:9100`); IP
/// addresses as they are.
fn strip_domain(s: &str) -> String {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => (h, Some(p)),
        _ => (s, None),
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        return s.to_string();
    }
    let short = host.split('.').next().unwrap_or(host);
    match port {
        Some(p) => format!("{short}:{p}"),
        None => short.to_string(),
    }
}

/// Prometheus's `humanize`: SI prefixes, four significant digits.
pub fn humanize(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return go_g(v, 4);
    }
    let mut v = v;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        (v, prefix) = small_prefix(v);
    }
    format!("{}{prefix}", go_g(v, 4))
}

/// A value under 1 scaled up by thousands, with its SI prefix (`m`, `u`, … `y`), as
/// Prometheus's `humanize` and `humanizeDuration` print small values.
fn small_prefix(mut v: f64) -> (f64, &'static str) {
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    (v, prefix)
}

/// Prometheus's `humanize1024`: binary prefixes.
pub fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return go_g(v, 4);
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", go_g(v, 4))
}

/// Prometheus's `humanizeDuration`: `1d 2h 3m 4s`, or seconds with SI prefixes below one.
pub fn humanize_duration(v: f64) -> String {
    if !v.is_finite() {
        return go_g(v, 4);
    }
    if v == 0.0 {
        return format!("{}s", go_g(v, 4));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        let v = v.abs();
        let d = v as i64;
        let (seconds, minutes, hours, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        return if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", go_g(v, 4))
        };
    }
    let (v, prefix) = small_prefix(v);
    format!("{}{prefix}s", go_g(v, 4))
}

/// Prometheus's `humanizeTimestamp`: Go's `time.Time` string in UTC.
pub fn humanize_timestamp(v: f64) -> String {
    if !v.is_finite() {
        return go_g(v, 4);
    }
    // As Prometheus: nanoseconds, truncated to the millisecond (`model.TimeFromUnixNano`).
    let ns = v * 1e9;
    if ns >= i64::MAX as f64 || ns <= i64::MIN as f64 {
        return go_g(v, 4);
    }
    let ms = (ns as i64) / 1_000_000;
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => {
            let frac = match t.timestamp_subsec_millis() {
                0 => String::new(),
                m => format!(".{m:03}").trim_end_matches('0').to_string(),
            };
            format!("{}{frac} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S"))
        }
        None => go_g(v, 4),
    }
}

/// The decimal digits of `v` (no sign, no trailing zeros) and the position of the decimal
/// point, rounded to `prec` significant digits (`None`: the shortest that reads back).
fn decimal(v: f64, prec: Option<usize>) -> (String, i32) {
    let s = match prec {
        Some(p) => format!("{:.*e}", p.max(1) - 1, v.abs()),
        None => format!("{:e}", v.abs()),
    };
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0').to_string();
    if digits.is_empty() {
        return (String::new(), 0);
    }
    (digits, exp + 1)
}

/// How Go's `strconv.FormatFloat` prints NaN and the infinities, in every format.
fn go_special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else {
        None
    }
}

/// Go's `strconv.FormatFloat(v, 'g', prec, 64)`, as `fmt.Sprintf("%.4g")` prints.
pub fn go_g(v: f64, prec: usize) -> String {
    if let Some(s) = go_special(v) {
        return s;
    }
    let neg = v.is_sign_negative() && v != 0.0;
    let (digits, dp) = decimal(v, Some(prec));
    let nd = digits.len() as i32;
    let mut eprec = prec as i32;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    let exp = dp - 1;
    let body = if digits.is_empty() {
        "0".to_string()
    } else if exp < -4 || exp >= eprec {
        fmt_e(&digits, dp)
    } else {
        fmt_f(&digits, dp)
    };
    if neg { format!("-{body}") } else { body }
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: the shortest digits in exponent form
/// (`1e+00`, `1.5e+03`): how Prometheus prints an alert's value.
pub fn go_e(v: f64) -> String {
    if let Some(s) = go_special(v) {
        return s;
    }
    let (digits, dp) = decimal(v, None);
    let body = if digits.is_empty() {
        "0e+00".to_string()
    } else {
        fmt_e(&digits, dp)
    };
    if v.is_sign_negative() && v != 0.0 {
        format!("-{body}")
    } else {
        body
    }
}

fn fmt_e(digits: &str, dp: i32) -> String {
    let exp = dp - 1;
    let mut out = digits[..1].to_string();
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    out.push_str(&format!("{:02}", exp.abs()));
    out
}

fn fmt_f(digits: &str, dp: i32) -> String {
    if dp <= 0 {
        format!("0.{}{digits}", "0".repeat((-dp) as usize))
    } else if dp as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(dp as usize - digits.len()))
    } else {
        format!("{}.{}", &digits[..dp as usize], &digits[dp as usize..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(text: &str, value: f64) -> String {
        let e = Expander {
            external_labels: [("cluster".to_string(), "eu1".to_string())].into(),
            external_url: "http://quiver:9090/q".into(),
            query: Some(Arc::new(|q: &str| {
                Ok(vec![([("job".to_string(), q.to_string())].into(), 42.0)])
            })),
        };
        let labels = [
            (
                "instance".to_string(),
                "node-1.example.com:9100".to_string(),
            ),
            ("job".to_string(), "node".to_string()),
        ]
        .into();
        e.expand("Test", text, &labels, value)
    }

    #[test]
    fn go_number_formats_match_prometheus() {
        for (v, want) in [
            (0.0, "0"),
            (1.5, "1.5"),
            (100.0, "100"),
            (1234.5, "1234"),
            (12345.0, "1.234e+04"),
            (100000.0, "1e+05"),
            (0.5, "0.5"),
            (0.00001234, "1.234e-05"),
            (-2.25, "-2.25"),
            (9999.5, "1e+04"),
        ] {
            assert_eq!(go_g(v, 4), want, "{v}");
        }
        for (v, want) in [
            (1.0, "1e+00"),
            (1234.5, "1.2345e+03"),
            (0.0, "0e+00"),
            (-0.25, "-2.5e-01"),
        ] {
            assert_eq!(go_e(v), want, "{v}");
        }
    }

    #[test]
    fn humanize_helpers_match_prometheus() {
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(0.0012), "1.2m");
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize1024(1048576.0), "1Mi");
        assert_eq!(humanize1024(512.0), "512");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(61.0), "1m 1s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(0.0015), "1.5ms");
        assert_eq!(
            humanize_timestamp(1435065584.128),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(go_g(0.1234 * 100.0, 4), "12.34");
    }

    #[test]
    fn templates_see_labels_value_and_functions() {
        assert_eq!(
            expand(
                "{{ $labels.instance }} is at {{ $value | humanize }}",
                1234567.0
            ),
            "node-1.example.com:9100 is at 1.235M"
        );
        assert_eq!(
            expand("{{ .Labels.job }}/{{ $externalLabels.cluster }}", 1.0),
            "node/eu1"
        );
        assert_eq!(expand("{{ humanizePercentage $value }}", 0.256), "25.6%");
        assert_eq!(
            expand("{{ $labels.instance | stripPort }}", 0.0),
            "node-1.example.com"
        );
        assert_eq!(
            expand("{{ $labels.instance | stripDomain }}", 0.0),
            "node-1:9100"
        );
        assert_eq!(
            expand("{{ if gt $value 80.0 }}hot{{ else }}ok{{ end }}", 85.0),
            "hot"
        );
        assert_eq!(expand("{{ printf \"%.1f\" $value }}", 2.25), "2.2");
        assert_eq!(
            expand(
                "{{ with query \"up\" }}{{ . | first | value }}{{ end }}",
                0.0
            ),
            "42"
        );
        assert_eq!(
            expand("{{ range query \"up\" }}{{ .Labels.job }}{{ end }}", 0.0),
            "up"
        );
        assert_eq!(
            expand("{{ $externalURL }}{{ pathPrefix }}", 0.0),
            "http://quiver:9090/q/q"
        );
        assert_eq!(expand("{{ title \"hello world\" }}", 0.0), "Hello World");
        assert_eq!(
            expand("{{ reReplaceAll \"(a+)\" \"<$1>\" \"baaad\" }}", 0.0),
            "b<aaa>d"
        );
        assert_eq!(expand("plain text", 0.0), "plain text");
        let broken = expand("{{ humanize \"not a number\" }}", 0.0);
        assert!(
            broken.starts_with("<error expanding template: "),
            "{broken}"
        );
        assert!(Expander::check("{{ humanize $value }}").is_ok());
        assert!(Expander::check("{{ nosuchfunction $value }}").is_err());
        assert!(Expander::check("{{ $labels.x ").is_err());
    }
}
