//! JSON shapes for the contract tests (sim against the real services): the
//! keys and JSON types of a body, recursively, and the differences between a
//! real and a simulated body. One copy, shared by every contract_real* file.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// path → JSON types seen there. Arrays merge their elements under `[]`,
/// free-form maps (see [`FREE_FORM`]) their values under `.*`.
pub type Shape = BTreeMap<String, BTreeSet<&'static str>>;

/// Objects whose keys are data, not schema (`extra_specs`, `metadata`): their
/// values merge under `.*`, whatever keys the seed or the scenario chose.
pub const FREE_FORM: &[&str] = &["extra_specs", "metadata"];

/// A difference known and accepted: the path (and everything under it), and why.
pub type Known<'a> = &'a [(&'a str, &'a str)];

pub fn shape(v: &Value) -> Shape {
    fn walk(path: &str, v: &Value, out: &mut Shape) {
        let ty = match v {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(items) => {
                items.iter().for_each(|i| walk(&format!("{path}[]"), i, out));
                "array"
            }
            Value::Object(map) => {
                let free = FREE_FORM.iter().any(|f| path == *f || path.ends_with(&format!(".{f}")));
                for (k, child) in map {
                    let k = if free { "*" } else { k.as_str() };
                    walk(&if path.is_empty() { k.to_string() } else { format!("{path}.{k}") }, child, out);
                }
                "object"
            }
        };
        out.entry(path.to_string()).or_default().insert(ty);
    }
    let mut out = Shape::new();
    walk("", v, &mut out);
    out
}

/// Whether `path` is one of `known` or under one of them.
pub fn is_known(path: &str, known: Known) -> bool {
    known.iter().any(|(p, _)| {
        path == *p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    })
}

/// Paths (and everything under them) in one body and not the other, or with
/// other JSON types (`null` matches anything: whether a field is null depends
/// on the data), minus the `known` ones. A free-form map's values (`….*`)
/// count only when both sides have some: an empty map on one side is data.
pub fn shape_diff(real: &Value, sim: &Value, known: Known) -> Vec<String> {
    let skip = |p: &str| p.ends_with(".*") || p.contains(".*.") || p == "*" || is_known(p, known);
    let (r, s) = (shape(real), shape(sim));
    let mut out = Vec::new();
    for (path, rt) in &r {
        if skip(path) {
            continue;
        }
        match s.get(path) {
            None => out.push(format!("missing in sim: {path} ({})", join(rt))),
            Some(st) => {
                let rt: BTreeSet<_> = rt.iter().filter(|t| **t != "null").collect();
                let st: BTreeSet<_> = st.iter().filter(|t| **t != "null").collect();
                if !rt.is_empty() && !st.is_empty() && rt != st {
                    out.push(format!("type differs at {path}: real {rt:?}, sim {st:?}"));
                }
            }
        }
    }
    for (path, st) in &s {
        if !r.contains_key(path) && !skip(path) {
            out.push(format!("extra in sim: {path} ({})", join(st)));
        }
    }
    // Free-form values present on both sides must have the same types.
    for (path, rt) in r.iter().filter(|(p, _)| p.ends_with(".*") && !is_known(p, known)) {
        if let Some(st) = s.get(path)
            && rt != st
        {
            out.push(format!("type differs at {path}: real {rt:?}, sim {st:?}"));
        }
    }
    out
}

fn join(t: &BTreeSet<&str>) -> String {
    t.iter().copied().collect::<Vec<_>>().join("|")
}

/// Fails with both bodies unless their shapes agree (apart from `known`).
#[track_caller]
pub fn assert_same_shape(what: &str, real: &Value, sim: &Value, known: Known) {
    let diff = shape_diff(real, sim, known);
    assert!(
        diff.is_empty(),
        "{what}: the sim's JSON shape differs from the real service's:\n  {}\n--- real\n{}\n--- sim\n{}",
        diff.join("\n  "),
        serde_json::to_string_pretty(real).unwrap(),
        serde_json::to_string_pretty(sim).unwrap()
    );
}
