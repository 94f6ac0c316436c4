//! Python-compatible number parsing: `int()` and `float()` as the APEL loader
//! does them. (Writing Python's `repr(float)` and `json.dumps` is the `pyjson`
//! crate's.)

/// Removes the underscores Python allows between digits (`1_000`); `None` if
/// an underscore is misplaced.
fn strip_underscores(s: &str) -> Option<String> {
    if !s.contains('_') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if *c == b'_' {
            let ok = i > 0 && i + 1 < b.len() && b[i - 1].is_ascii_digit() && b[i + 1].is_ascii_digit();
            if !ok {
                return None;
            }
        }
    }
    Some(s.replace('_', ""))
}

/// Python `int(s)` on an already stripped string: optional sign, decimal
/// digits (underscores between digits allowed). No decimals, no exponent.
pub fn parse_int(s: &str) -> Option<i128> {
    let t = strip_underscores(s)?;
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, &t[..]),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let v: i128 = digits.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// Python `float(s)` on an already stripped string (`1`, `2.5`, `.5`, `1e3`,
/// `inf`, `nan`...). Non-finite values are returned; callers reject them.
pub fn parse_float(s: &str) -> Option<f64> {
    let t = strip_underscores(s)?;
    let body = t.strip_prefix(['+', '-']).unwrap_or(&t);
    let lower = body.to_ascii_lowercase();
    let word = matches!(lower.as_str(), "inf" | "infinity" | "nan");
    let numeric = !body.is_empty()
        && body.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        && body.bytes().any(|c| c.is_ascii_digit());
    if !(word || numeric) {
        return None;
    }
    t.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_parsing_follows_python_int() {
        assert_eq!(parse_int("42"), Some(42));
        assert_eq!(parse_int("-7"), Some(-7));
        assert_eq!(parse_int("+7"), Some(7));
        assert_eq!(parse_int("1_000"), Some(1000));
        for bad in ["1.5", "1e3", "", "-", "_1", "1_", "0x10", "1 2"] {
            assert_eq!(parse_int(bad), None, "{bad}");
        }
    }

    #[test]
    fn float_parsing_follows_python_float() {
        assert_eq!(parse_float("1"), Some(1.0));
        assert_eq!(parse_float(".5"), Some(0.5));
        assert_eq!(parse_float("1e3"), Some(1000.0));
        assert!(parse_float("nan").unwrap().is_nan());
        assert_eq!(parse_float("-Infinity"), Some(f64::NEG_INFINITY));
        for bad in ["", "abc", "1,5", "0x1p3", "e", "."] {
            assert_eq!(parse_float(bad), None, "{bad}");
        }
    }
}
