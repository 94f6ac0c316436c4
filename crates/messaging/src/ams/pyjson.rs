//! JSON written byte for byte as Python's `json.dumps` with default arguments
//! (separators `", "` / `": "`, `ensure_ascii=True`), which is what argo-ams-library sends.

/// A JSON string literal as `json.dumps` writes it.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    apel::write_py_json_str(&mut out, s);
    out
}

/// An object of string values, keys in the given order.
pub fn str_object<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let items: Vec<String> = pairs
        .into_iter()
        .map(|(k, v)| format!("{}: {}", string(k), string(v)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// A list of already-encoded JSON values.
pub fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_python_json_dumps() {
        assert_eq!(
            string("a\"b\\c\n\u{1}é😀"),
            r#""a\"b\\c\n\u0001\u00e9\ud83d\ude00""#
        );
        assert_eq!(
            str_object([("maxMessages", "1"), ("returnImmediately", "false")]),
            r#"{"maxMessages": "1", "returnImmediately": "false"}"#
        );
        assert_eq!(list(&["1".into(), "2".into()]), "[1, 2]");
        assert_eq!(str_object([]), "{}");
    }
}
