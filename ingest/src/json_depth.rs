//! A bound on JSON nesting, checked before a body is parsed. simd-json builds values and
//! drops them recursively, one stack frame per level: `[[[[…]]]]` a few hundred kilobytes deep
//! overflows a worker's stack and aborts the server. Every JSON body Quiver parses with
//! simd-json passes through [`check`] first. (serde_json, used for Flight tickets and file SD,
//! stops at 128 levels by itself.)

/// Deepest nesting accepted: far more than run metrics or parameters use.
pub const MAX_DEPTH: usize = 64;

/// Fails when arrays and objects in `json` nest more than [`MAX_DEPTH`] levels deep.
/// Brackets inside strings do not count. One pass, no allocation.
pub fn check(json: &[u8]) -> Result<(), String> {
    let mut depth = 0usize;
    let deep = outside_strings(json, |b| {
        match b {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        depth > MAX_DEPTH
    });
    if deep {
        return Err(format!(
            "JSON nested more than {MAX_DEPTH} levels deep is not accepted"
        ));
    }
    Ok(())
}

/// How many `{`, `[` and `,` lie outside strings: at least one per value of an array or an
/// object, so a bound on the values a parse will build.
pub fn structure(json: &[u8]) -> usize {
    let mut n = 0usize;
    outside_strings(json, |b| {
        n += usize::from(matches!(b, b'{' | b'[' | b','));
        false
    });
    n
}

/// Calls `f` with every byte outside strings, until it answers true (then answers true).
fn outside_strings(json: &[u8], mut f: impl FnMut(u8) -> bool) -> bool {
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        if b == b'"' {
            in_string = true;
        } else if f(b) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_past_the_bound_is_refused_and_strings_do_not_count() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(check(deep.as_bytes()).is_err());
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(check(ok.as_bytes()).is_ok());
        let in_string = format!(
            "{{\"a\": \"{}\\\"{}\"}}",
            "[".repeat(1000),
            "{".repeat(1000)
        );
        assert!(check(in_string.as_bytes()).is_ok());
        // An unclosed array a million levels deep is refused early, not parsed.
        assert!(check("[".repeat(1_000_000).as_bytes()).is_err());
    }
}
