//! JSON as Python writes it: `json.dumps` with default arguments (separators `", "` and
//! `": "`, `ensure_ascii=True`, floats as `repr`, `NaN` / `Infinity`), and `repr(float)`
//! itself. One writer for every byte-exact Python peer: cASO's JSON records (`apel`),
//! argo-ams-library's request bodies (`messaging`), cloud-info-provider's GLUE documents
//! (`cloudinfo`).
//!
//! [`Json`] is an insertion-ordered value (a Python `dict` keeps key order), parsed with
//! [`parse`] keeping that order and rendered with [`dumps`]. Knows nothing of what the
//! documents mean.

#![warn(missing_docs)]

use std::fmt::Write as _;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value whose objects keep their key order (Python `dict`).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `None` → `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer, written in full (Python ints are unbounded; i128 covers what the formats use).
    Int(i128),
    /// A float, written as Python's `repr` does (`1.0`, `1e+20`, `NaN`).
    Float(f64),
    /// A string, escaped as `json.dumps` does (non-ASCII as `\uXXXX`).
    Str(String),
    /// A list.
    List(Vec<Json>),
    /// An object, in insertion order.
    Object(Object),
}

/// An insertion-ordered object; setting an existing key keeps its place
/// and replaces its value, as a Python `dict` does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object(pub Vec<(String, Json)>);

impl Object {
    /// An empty object.
    pub fn new() -> Object {
        Object(Vec::new())
    }
    /// Sets `key`: a new key goes last, an existing one keeps its place.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Json>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }
    /// Inserts unless `value` is None (the formatter's null dropping).
    pub fn opt(&mut self, key: &str, value: Option<impl Into<Json>>) {
        if let Some(v) = value {
            self.insert(key, v);
        }
    }
    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    /// Takes `key` out (the others keep their order) and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Json> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }
    /// True when no key is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Python's `dict.update`.
    pub fn update(&mut self, other: Object) {
        for (k, v) in other.0 {
            self.insert(k, v);
        }
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_string())
    }
}
impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::Str(s)
    }
}
impl From<&String> for Json {
    fn from(s: &String) -> Json {
        Json::Str(s.clone())
    }
}
impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}
impl From<i64> for Json {
    fn from(n: i64) -> Json {
        Json::Int(n as i128)
    }
}
impl From<u64> for Json {
    fn from(n: u64) -> Json {
        Json::Int(n as i128)
    }
}
impl From<u32> for Json {
    fn from(n: u32) -> Json {
        Json::Int(n as i128)
    }
}
impl From<Object> for Json {
    fn from(o: Object) -> Json {
        Json::Object(o)
    }
}
impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(v: Vec<T>) -> Json {
        Json::List(v.into_iter().map(Into::into).collect())
    }
}
impl From<&serde_json::Value> for Json {
    /// serde_json's maps are sorted: use [`parse`] where order matters.
    fn from(v: &serde_json::Value) -> Json {
        use serde_json::Value as V;
        match v {
            V::Null => Json::Null,
            V::Bool(b) => Json::Bool(*b),
            V::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Json::Int(i as i128),
                (None, Some(u), _) => Json::Int(u as i128),
                (_, _, Some(f)) => Json::Float(f),
                _ => Json::Null,
            },
            V::String(s) => Json::Str(s.clone()),
            V::Array(a) => Json::List(a.iter().map(Json::from).collect()),
            V::Object(m) => Json::Object(Object(m.iter().map(|(k, v)| (k.clone(), Json::from(v))).collect())),
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_none<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
                Ok(Json::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
                Ok(Json::Int(n as i128))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
                Ok(Json::Int(n as i128))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
                Ok(Json::Float(n))
            }
            fn visit_str<E>(self, s: &str) -> Result<Json, E> {
                Ok(Json::Str(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<Json, E> {
                Ok(Json::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = a.next_element()? {
                    out.push(v);
                }
                Ok(Json::List(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut out = Object::new();
                while let Some((k, v)) = a.next_entry::<String, Json>()? {
                    out.insert(k, v);
                }
                Ok(Json::Object(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses JSON text keeping object key order (Python `json.loads`; a
/// repeated key keeps its first place and its last value).
pub fn parse(text: &str) -> Result<Json, serde_json::Error> {
    serde_json::from_str(text)
}

/// Python's `json.dumps(value)` with default arguments.
pub fn dumps(value: &Json) -> String {
    let mut out = String::new();
    value.write(&mut out);
    out
}

impl Json {
    /// Appends `json.dumps(self)` to `out`.
    pub fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(true) => out.push_str("true"),
            Json::Bool(false) => out.push_str("false"),
            Json::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Float(f) => out.push_str(&float(*f)),
            Json::Str(s) => write_str(out, s),
            Json::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(o) => write_object(out, &o.0),
        }
    }
}

/// Appends an object of `fields`, in their order, as `json.dumps` writes a `dict`
/// (`{"k": v, "k2": v2}`); keys are not checked for repeats.
pub fn write_object<K: AsRef<str>>(out: &mut String, fields: &[(K, Json)]) {
    out.push('{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_str(out, k.as_ref());
        out.push_str(": ");
        v.write(out);
    }
    out.push('}');
}

/// Appends a JSON string as `json.dumps` (`ensure_ascii=True`) writes it: `"` and `\`
/// escaped, `\n \r \t \b \f` by name, every other character outside printable ASCII as
/// `\uXXXX` (UTF-16 surrogate pairs beyond the BMP).
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if !(' '..='~').contains(&c) => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{:04x}", u);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON string literal as `json.dumps` writes it ([`write_str`]).
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_str(&mut out, s);
    out
}

/// An object of string values, keys in the given order.
pub fn str_object<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let items: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{}: {}", string(k), string(v))).collect();
    format!("{{{}}}", items.join(", "))
}

/// A list of already-encoded JSON values.
pub fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// A float as `json.dumps` writes it: [`float_repr`], except `NaN`, `Infinity` and
/// `-Infinity` for the values JSON has no word for.
pub fn float(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity".into() } else { "-Infinity".into() }
    } else {
        float_repr(x)
    }
}

/// Python `repr(x)` / `str(x)` of a float: shortest round-trip digits, fixed
/// notation for decimal exponents -4..16 (`12.5`, `99.0`, `0.0001`), else
/// scientific with a signed two-digit-minimum exponent (`1e+16`, `1.5e-05`);
/// `nan`, `inf`, `-inf`.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Rust `{:e}` gives the shortest round-trip digits: "-1.25e1", "1e16", "0e0".
    let sci = format!("{:e}", x);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (12.5, "12.5"),
            (99.0, "99.0"),
            (1.0, "1.0"),
            (0.5, "0.5"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1e16, "1e+16"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (123456789012345.6, "123456789012345.6"),
            (123456789.125, "123456789.125"),
            (1e15, "1000000000000000.0"),
            (5.0 * 30.0 / 3600.0 / 1e6, "4.166666666666666e-08"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (-2.5, "-2.5"),
            (-2.25, "-2.25"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (x, want) in cases {
            assert_eq!(float_repr(x), want, "{x:e}");
        }
    }

    #[test]
    fn json_floats_name_what_json_has_no_number_for() {
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::INFINITY), "Infinity");
        assert_eq!(float(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(float(1e16), "1e+16");
        assert_eq!(dumps(&Json::List(vec![Json::Float(-0.0), Json::Float(f64::NAN)])), "[-0.0, NaN]");
    }

    #[test]
    fn dumps_like_python() {
        let v = parse(r#"{"b": 1, "a": [true, null, "zoë \"q\" \u0001 😀"], "b": 2.0, "c": {}}"#).unwrap();
        assert_eq!(dumps(&v), r#"{"b": 2.0, "a": [true, null, "zo\u00eb \"q\" \u0001 \ud83d\ude00"], "c": {}}"#);
        assert_eq!(dumps(&Json::Str("\u{7f}/\t".into())), r#""\u007f/\t""#);
        assert_eq!(dumps(&Json::List(vec![])), "[]");
    }

    #[test]
    fn strings_escape_like_python_json_dumps() {
        assert_eq!(string("a\"b\\c\n\u{1}é😀"), r#""a\"b\\c\n\u0001\u00e9\ud83d\ude00""#);
        assert_eq!(string("\r\u{8}\u{c}~ "), r#""\r\b\f~ ""#);
    }

    #[test]
    fn request_bodies_like_argo_ams_library() {
        assert_eq!(
            str_object([("maxMessages", "1"), ("returnImmediately", "false")]),
            r#"{"maxMessages": "1", "returnImmediately": "false"}"#
        );
        assert_eq!(list(&["1".into(), "2".into()]), "[1, 2]");
        assert_eq!(str_object([]), "{}");
    }

    #[test]
    fn objects_keep_their_order_and_take_static_keys() {
        let mut out = String::new();
        write_object(&mut out, &[("Z", Json::Int(-3)), ("A", Json::Float(99.0)), ("m", "x".into())]);
        assert_eq!(out, r#"{"Z": -3, "A": 99.0, "m": "x"}"#);
        let mut o = Object::new();
        o.insert("b", 1i64);
        o.insert("a", true);
        o.insert("b", "two");
        o.opt("none", None::<&str>);
        assert_eq!(dumps(&o.into()), r#"{"b": "two", "a": true}"#);
    }
}
