//! The Prometheus text exposition format (0.0.4) as `/api/v1/import/prometheus` takes it: every
//! sample line with its labels parsed (see [`super::exposition`] for the streaming parser that
//! scrapes use).

use super::exposition::{Entry, Format, Parser, parse_series};

pub use super::exposition::ParseError as TextError;

/// One parsed sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSample {
    /// Labels as written, `__name__` first.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// Parses every sample line of `input`.
pub fn parse(input: &str) -> Result<Vec<TextSample>, TextError> {
    let mut parser = Parser::new(input, Format::Text);
    let mut out = Vec::new();
    while let Some(entry) = parser.next() {
        if let Entry::Sample(s) = entry? {
            let labels = parse_series(s.series).map_err(|message| TextError {
                line: parser.line(),
                message,
            })?;
            out.push(TextSample {
                labels,
                value: s.value,
                timestamp_ms: s.timestamp_ms,
            });
        }
    }
    Ok(out)
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
    fn label_errors_name_the_line() {
        let err = parse("ok 1\nbad{1=\"x\"} 1\n").unwrap_err();
        assert_eq!(err.line, 2, "{err}");
    }
}
