//! Label matchers as PromQL has them: `=`, `!=`, `=~`, `!~`, with regexes anchored at both ends
//! and `.` matching newlines (Prometheus 3).

use regex::Regex;

use crate::error::{Error, Result};
use crate::labels::Labels;

/// The compiled size a regular expression may reach. The `regex` crate's default (10 MiB)
/// lets six characters (`\w{100}`: Unicode word characters, a hundred times) take 6 MiB and
/// 30 ms each, so a query of a few kilobytes could hold gigabytes of regexes. 2 MiB is far more
/// than label regexes use (an alternation of a thousand pod names is a few hundred KiB); the
/// number of regexes a request holds is bounded where requests are read.
pub const REGEX_SIZE_LIMIT: usize = 2 << 20;

/// Compiles `pattern` as Prometheus does everywhere (matchers, `label_replace`, relabeling):
/// anchored at both ends, `.` matching newlines. The one place Quiver builds such a regex.
/// The pattern must be a whole regular expression on its own: `a)|(b` would otherwise escape
/// the anchors (`^(?s:a)|(b)$`); Prometheus refuses it too.
pub fn anchored_regex(pattern: &str) -> std::result::Result<Regex, regex::Error> {
    if let Err(e) = regex_syntax::ast::parse::Parser::new().parse(pattern) {
        return Err(regex::Error::Syntax(e.to_string()));
    }
    regex::RegexBuilder::new(&format!("^(?s:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// Why `pattern` is too large to compile, if it is (its syntax is not judged here).
pub fn regex_too_large(pattern: &str) -> Option<String> {
    match anchored_regex(pattern) {
        Err(regex::Error::CompiledTooBig(limit)) => Some(format!(
            "the regular expression {} compiles to more than {limit} bytes",
            quote_short(pattern)
        )),
        _ => None,
    }
}

/// A pattern as a message quotes it: at most 64 characters.
fn quote_short(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{:?}…", &s[..i]),
        None => format!("{s:?}"),
    }
}

/// How a matcher compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    RegexMatch,
    RegexNoMatch,
}

/// One label matcher. A missing label matches as the empty string, as in Prometheus.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

impl Matcher {
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let (name, value) = (name.into(), value.into());
        let regex = match op {
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                Some(anchored_regex(&value).map_err(|e| {
                    Error::InvalidMatcher(format!("invalid regular expression {value:?}: {e}"))
                })?)
            }
            _ => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            regex,
        })
    }

    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
        }
    }

    /// Whether the label value `v` (empty for a missing label) matches.
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::RegexMatch => self.regex.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::RegexNoMatch => !self.regex.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// Whether this matcher also selects series that lack the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// Whether the series with these labels matches.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

/// A conjunction of matchers: a series is selected when all match.
#[derive(Debug, Clone, Default)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|m| m.matches_labels(labels))
    }

    /// Prometheus refuses selectors whose every matcher matches the empty string (they would
    /// select every series).
    pub fn has_non_empty_matcher(&self) -> bool {
        self.0.iter().any(|m| !m.matches_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_cannot_escape_its_anchors() {
        for p in ["a)|(b", "a)(?-s:.*", ")", "("] {
            assert!(anchored_regex(p).is_err(), "{p:?} was accepted");
        }
        let re = anchored_regex("a|b").unwrap();
        assert!(re.is_match("a") && !re.is_match("ab") && !re.is_match("xa"));
    }

    #[test]
    fn regexes_are_anchored_and_dot_matches_newline() {
        let m = Matcher::new(MatchOp::RegexMatch, "a", "fo.").unwrap();
        assert!(m.matches("foo"));
        assert!(m.matches("fo\n"));
        assert!(!m.matches("xfoo"));
        assert!(!m.matches("fooo"));
    }

    #[test]
    fn missing_label_matches_as_empty() {
        assert!(
            Matcher::new(MatchOp::NotEqual, "a", "x")
                .unwrap()
                .matches_empty()
        );
        assert!(
            Matcher::new(MatchOp::RegexMatch, "a", ".*")
                .unwrap()
                .matches_empty()
        );
        assert!(
            !Matcher::new(MatchOp::RegexMatch, "a", ".+")
                .unwrap()
                .matches_empty()
        );
        assert!(
            Matcher::new(MatchOp::Equal, "a", "")
                .unwrap()
                .matches_empty()
        );
    }

    #[test]
    fn bad_regex_is_a_clear_error() {
        let err = Matcher::new(MatchOp::RegexMatch, "a", "(").unwrap_err();
        assert!(
            err.to_string().contains("invalid regular expression"),
            "{err}"
        );
    }
}
