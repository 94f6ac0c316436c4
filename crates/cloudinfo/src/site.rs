//! The site description of fedcloud-catchall-operations (`sites/<SITE>.yaml`):
//! `gocdb`, `endpoint`, `vos[] {name, auth}` (plus keys cloud-info ignores).

use std::path::Path;

use serde::Deserialize;

/// One `sites/*.yaml` file.
#[derive(Debug, Clone, Deserialize)]
pub struct SiteConfig {
    /// GOCDB site name.
    pub gocdb: String,
    /// Keystone v3 URL, as written (identifiers are built from it verbatim).
    pub endpoint: String,
    /// `vos: null` is allowed (no shares); the key itself is required.
    pub vos: Option<Vec<VoConfig>>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(flatten)]
    pub other: serde_yaml::Mapping,
}

/// One VO share: its name and the auth options merged over the base ones.
#[derive(Debug, Clone, Deserialize)]
pub struct VoConfig {
    pub name: String,
    #[serde(default)]
    pub auth: Option<serde_yaml::Mapping>,
    #[serde(flatten)]
    pub other: serde_yaml::Mapping,
}

impl VoConfig {
    /// A string option of `auth`.
    pub fn auth_str(&self, key: &str) -> Option<String> {
        let v = self.auth.as_ref()?.get(key)?;
        match v {
            serde_yaml::Value::String(s) => Some(s.clone()),
            serde_yaml::Value::Number(n) => Some(n.to_string()),
            serde_yaml::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// Why the site file cannot be used; `origin` names the file.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: not YAML: {source}")]
    NotYaml {
        origin: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{origin}: the site file must be a mapping")]
    NotAMapping { origin: String },
    #[error("{origin}: `{field}` not available in site config")]
    Missing { origin: String, field: &'static str },
    #[error("{origin}: {source}")]
    Invalid {
        origin: String,
        #[source]
        source: serde_yaml::Error,
    },
}

impl SiteConfig {
    /// Parses YAML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<SiteConfig, SiteError> {
        let origin_ = || origin.to_string();
        let raw: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|source| SiteError::NotYaml { origin: origin_(), source })?;
        let map = raw.as_mapping().ok_or_else(|| SiteError::NotAMapping { origin: origin_() })?;
        for field in ["gocdb", "endpoint", "vos"] {
            if !map.contains_key(field) {
                return Err(SiteError::Missing { origin: origin_(), field });
            }
        }
        serde_yaml::from_value(raw).map_err(|source| SiteError::Invalid { origin: origin_(), source })
    }

    pub fn load(path: &Path) -> Result<SiteConfig, SiteError> {
        let text = std::fs::read_to_string(path).map_err(|source| SiteError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn vos(&self) -> &[VoConfig] {
        self.vos.as_deref().unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_catchall_example_and_names_missing_fields() {
        let s = SiteConfig::parse(
            "gocdb: IFCA-LCG2\nendpoint: https://api.cloud.ifca.es:5000/v3/\nimages:\n  sync: true\nvos:\n  - name: ops\n    auth:\n      project_id: a372\n  - name: vo.access.egi.eu\n    auth: {project_id: 999f}\n  - name: empty\n    auth:\n",
            "IFCA.yaml",
        )
        .unwrap();
        assert_eq!(s.gocdb, "IFCA-LCG2");
        assert_eq!(s.vos().len(), 3);
        assert_eq!(s.vos()[1].auth_str("project_id").as_deref(), Some("999f"));
        assert_eq!(s.vos()[2].auth_str("project_id"), None);
        let e = SiteConfig::parse("gocdb: X\nendpoint: https://x/v3\n", "X.yaml").unwrap_err().to_string();
        assert_eq!(e, "X.yaml: `vos` not available in site config");
        assert!(SiteConfig::parse("- a\n", "L.yaml").unwrap_err().to_string().contains("mapping"));
    }
}
