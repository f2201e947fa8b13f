//! Prometheus's series notation (`ParseSeriesDesc`): a series as `name{label="value"}` and its
//! values as `1+2x3 _ 10-1x2 stale`, one per step. The PromQL test files' `load` blocks use it,
//! and so do rule unit tests (`promtool test rules`).

/// A label set, sorted, `__name__` included.
pub type LabelList = Vec<(String, String)>;

/// The bits of Prometheus's staleness marker.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        "stale" => Some(f64::from_bits(STALE_NAN)),
        // `0x3` is "0 three more times", never hex.
        _ => s.parse::<f64>().ok(),
    }
}

/// Expands `1+2x3 _ 5 _x2 stale` into one value per step (`None` for `_`).
pub fn expand_values(s: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        if tok == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad token {tok}"))?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        if let Some(v) = parse_value(tok) {
            out.push(Some(v));
            continue;
        }
        // start[+-]incxN or startxN
        let (head, times) = tok.rsplit_once('x').ok_or(format!("bad token {tok}"))?;
        let times: usize = times.parse().map_err(|_| format!("bad token {tok}"))?;
        let bytes = head.as_bytes();
        let sep = (1..bytes.len()).find(|&i| {
            (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E')
        });
        let (start, inc) = match sep {
            Some(i) => {
                let inc = parse_value(&head[i + 1..]).ok_or(format!("bad token {tok}"))?;
                let inc = if bytes[i] == b'-' { -inc } else { inc };
                (
                    parse_value(&head[..i]).ok_or(format!("bad token {tok}"))?,
                    inc,
                )
            }
            None => (parse_value(head).ok_or(format!("bad token {tok}"))?, 0.0),
        };
        if start.to_bits() == STALE_NAN {
            out.extend(std::iter::repeat_n(Some(start), times + 1));
            continue;
        }
        for k in 0..=times {
            out.push(Some(start + inc * k as f64));
        }
    }
    Ok(out)
}

/// `name{a="b", "c"="d"}` (either part optional) and the rest of the line.
pub fn parse_labels(s: &str) -> Result<(LabelList, &str), String> {
    let mut labels = Vec::new();
    let s = s.trim_start();
    let name_end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(s.len());
    if name_end > 0 {
        labels.push(("__name__".to_string(), s[..name_end].to_string()));
    }
    let mut rest = &s[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut r = inner.trim_start();
        loop {
            if let Some(after) = r.strip_prefix('}') {
                rest = after;
                break;
            }
            let (name, after) = if r.starts_with('"') {
                read_quoted(r)?
            } else {
                let end = r
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '.'))
                    .unwrap_or(r.len());
                (r[..end].to_string(), &r[end..])
            };
            let after = after.trim_start();
            if let Some(v) = after.strip_prefix('=') {
                let (value, after) = read_quoted(v.trim_start())?;
                labels.push((name, value));
                r = after.trim_start();
            } else {
                // A bare quoted string is the metric name.
                labels.push(("__name__".to_string(), name));
                r = after;
            }
            r = r.trim_start();
            if let Some(after) = r.strip_prefix(',') {
                r = after.trim_start();
            }
        }
    }
    labels.retain(|(_, v)| !v.is_empty());
    labels.sort();
    Ok((labels, rest.trim()))
}

pub fn read_quoted(s: &str) -> Result<(String, &str), String> {
    let q = s.chars().next().ok_or("expected a quoted string")?;
    if q != '"' && q != '\'' && q != '`' {
        return Err(format!("expected a quoted string at {s:?}"));
    }
    let mut out = String::new();
    let mut chars = s[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        if c == q {
            return Ok((out, &s[1 + i + 1..]));
        }
        if c == '\\' && q != '`' {
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\'')) => out.push('\''),
                Some((_, c)) => {
                    out.push('\\');
                    out.push(c);
                }
                None => break,
            }
        } else {
            out.push(c);
        }
    }
    Err(format!("unterminated string in {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expand_as_prometheus_documents() {
        assert_eq!(
            expand_values("1+2x3 _ 10-1x2 _x2").unwrap(),
            vec![
                Some(1.0),
                Some(3.0),
                Some(5.0),
                Some(7.0),
                None,
                Some(10.0),
                Some(9.0),
                Some(8.0),
                None,
                None
            ]
        );
    }
}
