//! The Prometheus text exposition format (0.0.4), as `/api/v1/import/prometheus` takes it:
//! `name{label="value",...} value [timestamp_ms]` lines, `# HELP`/`# TYPE` and comments,
//! escapes `\\`, `\"`, `\n` in label values, and Prometheus 3's quoted UTF-8 names
//! (`{"my.metric","label.name"="v"}`).

use std::fmt;

/// One parsed sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSample {
    /// Labels as written, `__name__` first.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// A parse error with its line (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct TextError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses every sample line of `input`.
pub fn parse(input: &str) -> Result<Vec<TextSample>, TextError> {
    let mut out = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line
            .trim_start_matches([' ', '\t'])
            .trim_end_matches(['\r', ' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sample = parse_line(line).map_err(|message| TextError {
            line: i + 1,
            message,
        })?;
        out.push(sample);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<TextSample, String> {
    let mut p = Cursor {
        s: line.as_bytes(),
        pos: 0,
        line,
    };
    let mut labels = Vec::new();
    if p.peek() != Some(b'{') {
        labels.push(("__name__".to_string(), p.name()?));
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
                p.name()?
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
    if labels.first().is_none_or(|(n, _)| n != "__name__")
        && !labels.iter().any(|(n, _)| n == "__name__")
    {
        return Err("missing metric name".into());
    }
    p.skip_blanks();
    let rest = &line[p.pos..];
    let mut fields = rest.split([' ', '\t']).filter(|f| !f.is_empty());
    let value = fields.next().ok_or("missing value")?;
    let value = parse_float(value).ok_or_else(|| format!("invalid value {value:?}"))?;
    let timestamp_ms = match fields.next() {
        None => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| format!("invalid timestamp {t:?}"))?,
        ),
    };
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected {extra:?} after the timestamp"));
    }
    Ok(TextSample {
        labels,
        value,
        timestamp_ms,
    })
}

/// Go's `ParseFloat` spellings: numbers, `NaN`, `+Inf`, `-Inf`, `Inf` (any case).
pub fn parse_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "+inf" | "inf" | "+infinity" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => s
            .parse::<f64>()
            .ok()
            .filter(|_| !s.contains(['i', 'I', 'n', 'N'])),
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
    line: &'a str,
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

    /// A bare name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    fn name(&mut self) -> Result<String, String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphabetic()
                || c == b'_'
                || c == b':'
                || (self.pos > start && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(format!("expected a name at column {}", start + 1));
        }
        Ok(self.line[start..self.pos].to_string())
    }

    /// A double-quoted string with `\\`, `\"` and `\n` escapes.
    fn quoted(&mut self) -> Result<String, String> {
        if self.peek() != Some(b'"') {
            return Err(format!("expected '\"' at column {}", self.pos + 1));
        }
        self.pos += 1;
        let mut out = String::new();
        let rest = &self.line[self.pos..];
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

    #[test]
    fn parses_names_labels_values_and_timestamps() {
        let got = parse(
            "# HELP x y\n# TYPE up gauge\nup{job=\"a\",instance=\"b\",} 1 1700000000000\nfoo 2.5\n",
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].labels,
            vec![
                ("__name__".into(), "up".into()),
                ("job".into(), "a".into()),
                ("instance".into(), "b".into())
            ]
        );
        assert_eq!(got[0].timestamp_ms, Some(1_700_000_000_000));
        assert_eq!(got[1].value, 2.5);
        assert_eq!(got[1].timestamp_ms, None);
    }

    #[test]
    fn escapes_and_special_values() {
        let got = parse("a{l=\"x\\\"y\\\\z\\n\"} NaN\nb +Inf -5\nc -Inf\n").unwrap();
        assert_eq!(got[0].labels[1].1, "x\"y\\z\n");
        assert!(got[0].value.is_nan());
        assert_eq!(got[1].value, f64::INFINITY);
        assert_eq!(got[1].timestamp_ms, Some(-5));
        assert_eq!(got[2].value, f64::NEG_INFINITY);
    }

    #[test]
    fn quoted_utf8_names() {
        let got = parse("{\"my.metric\",\"label.name\"=\"v\"} 1\n").unwrap();
        assert_eq!(
            got[0].labels,
            vec![
                ("__name__".into(), "my.metric".into()),
                ("label.name".into(), "v".into())
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("ok 1\nbad{l=\"x\" 1\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = parse("x notanumber\n").unwrap_err();
        assert!(err.message.contains("invalid value"), "{err}");
        let err = parse("x 1 2 3\n").unwrap_err();
        assert!(err.message.contains("unexpected"), "{err}");
    }
}
