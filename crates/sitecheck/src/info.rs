//! The site information check: the GLUE 2.1 JSON document (cloud-info's
//! output, a file or a URL) lists every configured VO — in its
//! `MappingPolicy` / `AccessPolicy` rules (`VO:<vo>`) or share policy domains.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::check::Check;
use crate::config::CheckConfig;

/// The VOs a GLUE document publishes.
pub fn published_vos(doc: &Value) -> BTreeSet<String> {
    let mut vos = BTreeSet::new();
    for class in ["MappingPolicy", "AccessPolicy"] {
        for p in doc.get(class).and_then(Value::as_array).into_iter().flatten() {
            for r in p.get("Rule").and_then(Value::as_array).into_iter().flatten() {
                if let Some(vo) = r.as_str().and_then(|s| s.strip_prefix("VO:")) {
                    vos.insert(vo.trim().to_string());
                }
            }
            let domains = p.pointer("/Associations/PolicyUserDomain").and_then(Value::as_array);
            for d in domains.into_iter().flatten().filter_map(Value::as_str) {
                vos.insert(d.trim().to_string());
            }
        }
    }
    vos
}

/// The newest `CreationTime` of any object of a GLUE document (cloud-info stamps every
/// object with the run's start): when the document was produced.
pub fn creation_time(doc: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    let objects = doc.as_object()?.values().filter_map(Value::as_array).flatten();
    objects
        .filter_map(|o| o.get("CreationTime")?.as_str())
        .filter_map(|t| {
            chrono::DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&chrono::Utc)).ok().or_else(|| {
                // Python's naive isoformat(), as older cloud-info-provider releases wrote it: UTC.
                chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
            })
        })
        .max()
}

/// Reads a GLUE document from a file path or an http(s) URL.
pub async fn load(src: &str, timeout: std::time::Duration) -> Result<Value, InfoDocError> {
    let bytes = if src.starts_with("http://") || src.starts_with("https://") {
        let http = reqwest::Client::builder().timeout(timeout * 3).build().map_err(InfoDocError::Client)?;
        let r = http.get(src).send().await.map_err(|e| InfoDocError::Request(crate::catalog::error_chain(&e)))?;
        if !r.status().is_success() {
            return Err(InfoDocError::Status(r.status().as_u16()));
        }
        r.bytes().await.map_err(InfoDocError::Client)?.to_vec()
    } else {
        std::fs::read(src).map_err(|source| InfoDocError::Read { src: src.to_string(), source })?
    };
    serde_json::from_slice(&bytes).map_err(|source| InfoDocError::NotJson { src: src.to_string(), source })
}

/// Why the information document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InfoDocError {
    #[error("{0}")]
    Client(reqwest::Error),
    /// The request failed: the error with its causes.
    #[error("{0}")]
    Request(String),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("reading {src}: {source}")]
    Read { src: String, source: std::io::Error },
    #[error("{src} is not JSON: {source}")]
    NotJson { src: String, source: serde_json::Error },
}

/// The info family.
pub async fn run(cfg: &CheckConfig) -> Vec<Check> {
    let tested = "the site's information document (GLUE 2.1 JSON) lists every configured VO";
    let Some(src) = &cfg.info else {
        return vec![Check::skipped("info.vos", tested, "no information document given (--info FILE|URL)")];
    };
    if cfg.vos.is_empty() {
        return vec![Check::skipped("info.vos", tested, "no VOs configured (--vo)")];
    }
    let doc = match load(src, cfg.connect_timeout).await {
        Ok(d) => d,
        Err(e) => {
            return vec![Check::critical(
                "info.vos",
                tested,
                format!("cannot read the information document: {e}"),
                "run the site description (cloud-info) and publish its output where --info points",
            )];
        }
    };
    let published = published_vos(&doc);
    let missing: Vec<&str> = cfg.vos.iter().map(|v| v.vo.as_str()).filter(|v| !published.contains(*v)).collect();
    if missing.is_empty() {
        vec![Check::ok("info.vos", tested, format!("all {} VOs published ({})", cfg.vos.len(), src))]
    } else {
        vec![Check::critical(
            "info.vos",
            tested,
            format!(
                "{src} lacks VO(s) {} (it publishes: {})",
                missing.join(", "),
                if published.is_empty() {
                    "none".to_string()
                } else {
                    published.into_iter().collect::<Vec<_>>().join(", ")
                }
            ),
            "add the VO and its project to the site description's VO list (vos[] of the site YAML), and check the share's credentials can scope to the project",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_time_is_the_newest_of_any_object_in_either_spelling() {
        let doc = serde_json::json!({
            "CloudComputingService": [{"ID": "s", "CreationTime": "2026-01-10T10:00:00.000120+00:00"}],
            // Older cloud-info-provider releases: Python's naive isoformat, UTC.
            "MappingPolicy": [{"ID": "p", "CreationTime": "2026-01-11T08:30:00.5"}, {"ID": "q", "CreationTime": 7}],
            "Extra": {"CreationTime": "2030-01-01T00:00:00Z"},
        });
        let t = creation_time(&doc).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-11T08:30:00.500+00:00");
        assert_eq!(creation_time(&serde_json::json!({"MappingPolicy": [{"ID": "p"}]})), None);
    }
}
