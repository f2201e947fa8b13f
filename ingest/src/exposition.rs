//! The Prometheus text exposition format 0.0.4 and OpenMetrics 1.0, parsed as a stream of
//! entries without allocating for the common case.
//!
//! A sample's series is handed out as the raw text of its name and label set (`name{a="b"}`):
//! scrapers use that text as a cache key, so a series seen before costs neither label parsing
//! nor label allocation. [`parse_series`] turns it into label pairs when it is new.
//!
//! Text 0.0.4: `# HELP`/`# TYPE` lines (other `#` lines are comments), blank lines allowed,
//! timestamps in integer milliseconds, label-value escapes `\\`, `\"`, `\n`, HELP escapes `\\`
//! and `\n`. OpenMetrics 1.0: also `# UNIT`, a mandatory `# EOF` with nothing after it, no blank
//! lines, timestamps in float seconds, exemplars after ` # ` (parsed and dropped), and more
//! metric types. Both accept Prometheus 3's quoted UTF-8 names (`{"my.metric","a.b"="v"}`).

use std::fmt;

/// Which format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
}

impl Format {
    /// From a response's `Content-Type`: OpenMetrics when it says so, else the text format
    /// (as Prometheus 2 falls back).
    pub fn from_content_type(ct: Option<&str>) -> Format {
        match ct {
            Some(ct)
                if ct
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/openmetrics-text") =>
            {
                Format::OpenMetrics
            }
            _ => Format::Text,
        }
    }
}

/// A metric family's type, as the metadata API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl MetricType {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }

    fn parse(s: &str, format: Format) -> Option<Self> {
        Some(match (s, format) {
            ("counter", _) => MetricType::Counter,
            ("gauge", _) => MetricType::Gauge,
            ("histogram", _) => MetricType::Histogram,
            ("summary", _) => MetricType::Summary,
            ("untyped", Format::Text) => MetricType::Unknown,
            ("unknown", Format::OpenMetrics) => MetricType::Unknown,
            ("gaugehistogram", Format::OpenMetrics) => MetricType::GaugeHistogram,
            ("info", Format::OpenMetrics) => MetricType::Info,
            ("stateset", Format::OpenMetrics) => MetricType::StateSet,
            _ => return None,
        })
    }
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// The name and label set as written (`name{a="b"}`, or `{"name",a="b"}`).
    pub series: &'a str,
    pub value: f64,
    /// Milliseconds (OpenMetrics seconds are converted).
    pub timestamp_ms: Option<i64>,
}

/// One entry of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    Sample(Sample<'a>),
    Type(&'a str, MetricType),
    Help(&'a str, String),
    Unit(&'a str, &'a str),
}

/// A syntax error with its line (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// A streaming parser: iterate it for entries; the first error ends the stream.
pub struct Parser<'a> {
    input: &'a str,
    pos: usize,
    line: usize,
    format: Format,
    eof_seen: bool,
    failed: bool,
}

impl<'a> Parser<'a> {
    pub fn new(input: &'a str, format: Format) -> Self {
        Parser {
            input,
            pos: 0,
            line: 0,
            format,
            eof_seen: false,
            failed: false,
        }
    }

    /// The line of the entry last returned (1-based).
    pub fn line(&self) -> usize {
        self.line
    }

    fn fail(&mut self, message: impl Into<String>) -> Option<Result<Entry<'a>, ParseError>> {
        self.failed = true;
        Some(Err(ParseError {
            line: self.line,
            message: message.into(),
        }))
    }

    fn next_line(&mut self) -> Option<&'a str> {
        if self.pos >= self.input.len() {
            return None;
        }
        let rest = &self.input[self.pos..];
        let end = rest.find('\n').unwrap_or(rest.len());
        self.pos += end + 1;
        self.line += 1;
        Some(&rest[..end])
    }

    fn comment(&mut self, line: &'a str) -> Option<Result<Entry<'a>, ParseError>> {
        let body = &line[1..];
        let om = self.format == Format::OpenMetrics;
        if om && body == " EOF" {
            self.eof_seen = true;
            return self.next();
        }
        let mut words = body.trim_start_matches([' ', '\t']).splitn(2, [' ', '\t']);
        let keyword = words.next().unwrap_or("");
        let rest = words.next().unwrap_or("");
        let (kind @ ("HELP" | "TYPE" | "UNIT"), true) = (keyword, body.starts_with(' ') || !om)
        else {
            if om {
                return self.fail(format!(
                    "unexpected comment {line:?}: OpenMetrics allows only HELP, TYPE, UNIT and EOF"
                ));
            }
            return self.next();
        };
        if kind == "UNIT" && !om {
            return self.next();
        }
        let rest = rest.trim_start_matches([' ', '\t']);
        let (name, text) = match split_name(rest) {
            Ok(v) => v,
            Err(e) => return self.fail(format!("# {kind}: {e}")),
        };
        match kind {
            "HELP" => {
                let text = if om {
                    text.strip_prefix(' ').unwrap_or(text)
                } else {
                    text.trim_start_matches([' ', '\t'])
                };
                Some(Ok(Entry::Help(name, unescape_help(text, om))))
            }
            "TYPE" => {
                let t = text.trim_matches([' ', '\t']);
                match MetricType::parse(t, self.format) {
                    Some(t) => Some(Ok(Entry::Type(name, t))),
                    None => self.fail(format!("# TYPE {name}: unknown metric type {t:?}")),
                }
            }
            _ => {
                let unit = text.trim_matches([' ', '\t']);
                if !unit.is_empty() && !name.ends_with(&format!("_{unit}")) {
                    return self.fail(format!(
                        "# UNIT {name}: the metric name must end with the unit {unit:?}"
                    ));
                }
                Some(Ok(Entry::Unit(name, unit)))
            }
        }
    }

    fn sample(&mut self, line: &'a str) -> Option<Result<Entry<'a>, ParseError>> {
        let scanned = if self.format == Format::Text {
            scan_series_text(line)
        } else {
            scan_series(line)
        };
        let series_len = match scanned {
            Ok(n) => n,
            Err(e) => return self.fail(e),
        };
        let series = line[..series_len].trim_end_matches([' ', '\t']);
        let rest = &line[series_len..];
        let om = self.format == Format::OpenMetrics;
        // Exemplars (OpenMetrics only) are parsed past and dropped.
        let rest = match om.then(|| rest.find(" # ")).flatten() {
            Some(i) => &rest[..i],
            None => rest,
        };
        let mut fields = rest.split([' ', '\t']).filter(|f| !f.is_empty());
        let Some(value) = fields.next() else {
            return self.fail(format!("missing value after {series}"));
        };
        let Some(value) = parse_float(value) else {
            return self.fail(format!("invalid value {value:?} for {series}"));
        };
        let timestamp_ms = match fields.next() {
            None => None,
            Some(t) if om => match parse_float(t) {
                Some(s) if s.is_finite() => Some((s * 1000.0) as i64),
                _ => return self.fail(format!("invalid timestamp {t:?} for {series}")),
            },
            Some(t) => match t.parse::<i64>() {
                Ok(ms) => Some(ms),
                Err(_) => return self.fail(format!("invalid timestamp {t:?} for {series}")),
            },
        };
        if let Some(extra) = fields.next() {
            return self.fail(format!(
                "unexpected {extra:?} after the timestamp of {series}"
            ));
        }
        Some(Ok(Entry::Sample(Sample {
            series,
            value,
            timestamp_ms,
        })))
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let om = self.format == Format::OpenMetrics;
        let Some(raw) = self.next_line() else {
            if om && !self.eof_seen {
                self.line += 1;
                return self.fail("the exposition does not end with # EOF");
            }
            return None;
        };
        if self.eof_seen {
            return self.fail("content after # EOF");
        }
        let line = if om {
            raw
        } else {
            raw.trim_start_matches([' ', '\t'])
                .trim_end_matches(['\r', ' ', '\t'])
        };
        if line.is_empty() {
            if om {
                return self.fail("unexpected empty line");
            }
            return self.next();
        }
        if line.starts_with('#') {
            return self.comment(line);
        }
        self.sample(line)
    }
}

/// Splits a metadata line into the metric name (bare or quoted) and the rest.
fn split_name(s: &str) -> Result<(&str, &str), String> {
    if let Some(q) = s.strip_prefix('"') {
        let end = q.find('"').ok_or("unterminated quoted name")?;
        return Ok((&q[..end], &q[end + 1..]));
    }
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    let name = &s[..end];
    if !quiver_storage::legacy_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    Ok((name, &s[end..]))
}

fn unescape_help(s: &str, om: bool) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some('"') if om => out.push('"'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// The length of the series text at the start of `line`: a name, a `{…}` label set, or both.
/// Jumps between the bytes that matter (`"`, `\\`, `}`) with memchr: label sets are long.
fn scan_series(line: &str) -> Result<usize, String> {
    let b = line.as_bytes();
    let name_end = memchr::memchr3(b'{', b' ', b'\t', b).unwrap_or(b.len());
    if name_end == 0 && b.first() != Some(&b'{') {
        return Err(format!("expected a metric name at the start of {line:?}"));
    }
    let mut i = name_end;
    while i < b.len() && matches!(b[i], b' ' | b'\t') {
        i += 1;
    }
    if b.get(i) != Some(&b'{') {
        return Ok(name_end);
    }
    i += 1;
    let unterminated = || format!("unterminated label set in {line:?}");
    loop {
        i += memchr::memchr2(b'"', b'}', &b[i..]).ok_or_else(unterminated)?;
        if b[i] == b'}' {
            return Ok(i + 1);
        }
        // Inside a quoted string: skip escapes up to the closing quote.
        i += 1;
        loop {
            i +=
                memchr::memchr2(b'"', b'\\', b.get(i..).unwrap_or(&[])).ok_or_else(unterminated)?;
            if b[i] == b'\\' {
                i += 2;
                continue;
            }
            i += 1;
            break;
        }
    }
}

/// The text format's fast path: a value and a timestamp never hold `}`, so a label set ends at
/// the line's last `}`. Quotes are not checked here: a series text is parsed (and rejected if
/// malformed) by [`parse_series`] the first time it is seen, and a cached text is byte-equal to
/// one that parsed.
fn scan_series_text(line: &str) -> Result<usize, String> {
    let b = line.as_bytes();
    let name_end = memchr::memchr3(b'{', b' ', b'\t', b).unwrap_or(b.len());
    if b.get(name_end) != Some(&b'{') {
        return scan_series(line);
    }
    match memchr::memrchr(b'}', b) {
        Some(end) if end > name_end => Ok(end + 1),
        _ => Err(format!("unterminated label set in {line:?}")),
    }
}

/// Parses a series text into label pairs, `__name__` first.
pub fn parse_series(series: &str) -> Result<Vec<(String, String)>, String> {
    let mut p = Cursor {
        s: series.as_bytes(),
        pos: 0,
        text: series,
    };
    let mut labels = Vec::new();
    if p.peek() != Some(b'{') {
        let name = p.name(true)?;
        labels.push(("__name__".to_string(), name));
    }
    p.skip_blanks();
    if p.peek() == Some(b'{') {
        p.pos += 1;
        loop {
            p.skip_blanks();
            match p.peek() {
                Some(b'}') => {
                    p.pos += 1;
                    break;
                }
                None => return Err("unterminated label set".into()),
                _ => {}
            }
            let name = if p.peek() == Some(b'"') {
                p.quoted()?
            } else {
                p.name(false)?
            };
            p.skip_blanks();
            if p.peek() != Some(b'=') {
                // A lone quoted string is the metric name (Prometheus 3).
                if matches!(p.peek(), Some(b',') | Some(b'}')) && labels.is_empty() {
                    labels.push(("__name__".to_string(), name));
                } else {
                    return Err(format!("expected '=' after label name {name:?}"));
                }
            } else {
                p.pos += 1;
                p.skip_blanks();
                let value = p.quoted()?;
                if labels.iter().any(|(n, _)| *n == name) {
                    return Err(format!("duplicate label name {name:?}"));
                }
                labels.push((name, value));
            }
            p.skip_blanks();
            match p.peek() {
                Some(b',') => p.pos += 1,
                Some(b'}') => {}
                _ => return Err("expected ',' or '}' in label set".into()),
            }
        }
    }
    if p.pos != p.s.len() {
        return Err(format!(
            "unexpected {:?} after the label set",
            &series[p.pos..]
        ));
    }
    if !labels.iter().any(|(n, _)| n == "__name__") {
        return Err("missing metric name".into());
    }
    Ok(labels)
}

/// Go's `ParseFloat` spellings: numbers, `NaN`, `+Inf`, `-Inf`, `Inf` (any case).
pub fn parse_float(s: &str) -> Option<f64> {
    if let Ok(v) = s.parse::<f64>() {
        // Rust also takes "inf"/"nan" spellings, which are fine; it takes nothing Go rejects.
        return Some(v);
    }
    match s.to_ascii_lowercase().as_str() {
        "+nan" | "-nan" => Some(f64::NAN),
        "+inf" | "+infinity" => Some(f64::INFINITY),
        _ => None,
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
    text: &'a str,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ') | Some(b'\t')) {
            self.pos += 1;
        }
    }

    /// A bare name: `[a-zA-Z_:][a-zA-Z0-9_:]*` for metrics, without `:` for labels.
    fn name(&mut self, metric: bool) -> Result<String, String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphabetic()
                || c == b'_'
                || (metric && c == b':')
                || (self.pos > start && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(format!(
                "invalid {} name at column {} of {:?}",
                if metric { "metric" } else { "label" },
                start + 1,
                self.text
            ));
        }
        Ok(self.text[start..self.pos].to_string())
    }

    /// A double-quoted string with `\\`, `\"` and `\n` escapes.
    fn quoted(&mut self) -> Result<String, String> {
        if self.peek() != Some(b'"') {
            return Err(format!(
                "expected '\"' at column {} of {:?}",
                self.pos + 1,
                self.text
            ));
        }
        self.pos += 1;
        let mut out = String::new();
        let rest = &self.text[self.pos..];
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, '"')) => out.push('"'),
                    Some((_, other)) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err("unterminated quoted string".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &str, f: Format) -> Result<Vec<Entry<'_>>, ParseError> {
        Parser::new(input, f).collect()
    }

    type Row = (Vec<(String, String)>, f64, Option<i64>);

    fn samples(input: &str, f: Format) -> Vec<Row> {
        all(input, f)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                Entry::Sample(s) => {
                    Some((parse_series(s.series).unwrap(), s.value, s.timestamp_ms))
                }
                _ => None,
            })
            .collect()
    }

    fn l(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn text_format_with_metadata_histogram_and_timestamps() {
        let input = "# HELP http_requests_total The total number of HTTP requests.\n\
# TYPE http_requests_total counter\n\
http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n\
\n\
# A normal comment.\n\
# TYPE req histogram\n\
req_bucket{le=\"0.05\"} 24054\n\
req_bucket{le=\"+Inf\"} 144320\n\
req_sum 53423\n\
req_count 144320\n\
# TYPE rpc summary\n\
rpc{quantile=\"0.5\"} 4773\n\
rpc_sum 1.7560473e+07\n\
something_weird{problem=\"division by zero\"} +Inf -3982045\n";
        let entries = all(input, Format::Text).unwrap();
        assert_eq!(
            entries[0],
            Entry::Help(
                "http_requests_total",
                "The total number of HTTP requests.".into()
            )
        );
        assert_eq!(
            entries[1],
            Entry::Type("http_requests_total", MetricType::Counter)
        );
        let s = samples(input, Format::Text);
        assert_eq!(s.len(), 9);
        assert_eq!(
            s[0].0,
            l(&[
                ("__name__", "http_requests_total"),
                ("method", "post"),
                ("code", "200")
            ])
        );
        assert_eq!((s[0].1, s[0].2), (1027.0, Some(1395066363000)));
        assert_eq!(s[1].1, 3.0);
        assert_eq!(s[3].0[1], ("le".into(), "+Inf".into()));
        assert_eq!(s[8].1, f64::INFINITY);
        assert_eq!(s[8].2, Some(-3982045));
    }

    #[test]
    fn text_escapes_empty_braces_and_trailing_comma() {
        let s = samples(
            "a{l=\"x\\\"y\\\\z\\n\",} NaN\nb{} 1\n# HELP c line\\nbreak \\\\ and \\\"\n",
            Format::Text,
        );
        assert_eq!(s[0].0[1].1, "x\"y\\z\n");
        assert!(s[0].1.is_nan());
        assert_eq!(s[1].0, l(&[("__name__", "b")]));
        let e = all("# HELP c line\\nbreak \\\\ and \\\"\n", Format::Text).unwrap();
        assert_eq!(e[0], Entry::Help("c", "line\nbreak \\ and \\\"".into()));
    }

    #[test]
    fn series_text_is_the_cache_key() {
        let e = all("m{a=\"}\"} 1\nm{a=\"}\"}  2 5\n", Format::Text).unwrap();
        let keys: Vec<&str> = e
            .iter()
            .map(|e| match e {
                Entry::Sample(s) => s.series,
                _ => "",
            })
            .collect();
        assert_eq!(keys, ["m{a=\"}\"}", "m{a=\"}\"}"]);
        // An escaped quote does not close the string.
        let e = all("m{a=\"x\\\"} y\",b=\"\\\\\"} 7\n", Format::Text).unwrap();
        let Entry::Sample(smp) = &e[0] else { panic!() };
        assert_eq!(smp.value, 7.0);
        assert_eq!(parse_series(smp.series).unwrap()[1].1, "x\"} y");
        assert_eq!(parse_series(smp.series).unwrap()[2].1, "\\");
    }

    #[test]
    fn quoted_utf8_names() {
        let s = samples("{\"my.metric\",\"label.name\"=\"v\"} 1\n", Format::Text);
        assert_eq!(s[0].0, l(&[("__name__", "my.metric"), ("label.name", "v")]));
    }

    #[test]
    fn text_errors_name_the_line() {
        let err = all("ok 1\nbad{l=\"x\" 1\n", Format::Text).unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        let err = all("x notanumber\n", Format::Text).unwrap_err();
        assert!(err.message.contains("invalid value"), "{err}");
        let err = all("x 1 2 3\n", Format::Text).unwrap_err();
        assert!(err.message.contains("unexpected"), "{err}");
        let err = all("x 1 1.5\n", Format::Text).unwrap_err();
        assert!(err.message.contains("timestamp"), "{err}");
        let err = all("# TYPE x counterz\n", Format::Text).unwrap_err();
        assert!(err.message.contains("unknown metric type"), "{err}");
        assert!(
            parse_series("x{a=\"1\",a=\"2\"}")
                .unwrap_err()
                .contains("duplicate")
        );
        assert!(parse_series("x{1a=\"1\"}").is_err());
        assert!(parse_series("x{a=1}").is_err());
    }

    #[test]
    fn openmetrics_with_units_exemplars_and_second_timestamps() {
        let input = "# TYPE foo_seconds counter\n\
# UNIT foo_seconds seconds\n\
# HELP foo_seconds Some \\\"text\\\".\n\
foo_seconds_total{a=\"b\"} 17.0 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n\
foo_seconds_created{a=\"b\"} 1520430000.123\n\
# TYPE st stateset\n\
st{st=\"a\"} 1\n\
# TYPE i info\n\
i_info{version=\"1\"} 1\n\
# EOF\n";
        let e = all(input, Format::OpenMetrics).unwrap();
        assert_eq!(e[1], Entry::Unit("foo_seconds", "seconds"));
        assert_eq!(e[2], Entry::Help("foo_seconds", "Some \"text\".".into()));
        let s = samples(input, Format::OpenMetrics);
        assert_eq!(s[0].2, Some(1520879607789));
        assert_eq!(s[0].1, 17.0);
        assert_eq!(s[1].0[0].1, "foo_seconds_created");
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn openmetrics_is_strict() {
        let err = all("a 1\n", Format::OpenMetrics).unwrap_err();
        assert!(err.message.contains("# EOF"), "{err}");
        let err = all("a 1\n# EOF\nb 2\n", Format::OpenMetrics).unwrap_err();
        assert!(err.message.contains("after # EOF"), "{err}");
        let err = all("a 1\n\n# EOF\n", Format::OpenMetrics).unwrap_err();
        assert_eq!(err.line, 2);
        let err = all("# random comment\n# EOF\n", Format::OpenMetrics).unwrap_err();
        assert!(err.message.contains("comment"), "{err}");
        let err = all("# TYPE x untyped\n# EOF\n", Format::OpenMetrics).unwrap_err();
        assert!(err.message.contains("unknown metric type"), "{err}");
        let err = all("# UNIT x_bytes seconds\n# EOF\n", Format::OpenMetrics).unwrap_err();
        assert!(err.message.contains("unit"), "{err}");
        // # EOF without the final newline is fine.
        assert_eq!(all("a 1\n# EOF", Format::OpenMetrics).unwrap().len(), 1);
    }

    #[test]
    fn content_type_picks_the_parser() {
        assert_eq!(
            Format::from_content_type(Some(
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::from_content_type(Some("text/plain; version=0.0.4")),
            Format::Text
        );
        assert_eq!(Format::from_content_type(None), Format::Text);
    }

    #[test]
    fn floats_as_go_spells_them() {
        for (s, v) in [
            ("1e3", 1000.0),
            ("-Inf", f64::NEG_INFINITY),
            ("+Inf", f64::INFINITY),
            ("0x10", f64::NAN),
        ] {
            match parse_float(s) {
                Some(x) if v.is_nan() => panic!("{s} parsed as {x}"),
                Some(x) => assert_eq!(x, v, "{s}"),
                None => assert!(v.is_nan(), "{s}"),
            }
        }
        assert!(parse_float("NaN").unwrap().is_nan());
    }
}
