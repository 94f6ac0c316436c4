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

impl SiteConfig {
    /// Parses YAML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<SiteConfig, String> {
        let raw: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| format!("{origin}: not YAML: {e}"))?;
        let map = raw.as_mapping().ok_or_else(|| format!("{origin}: the site file must be a mapping"))?;
        for field in ["gocdb", "endpoint", "vos"] {
            if !map.contains_key(field) {
                return Err(format!("{origin}: `{field}` not available in site config"));
            }
        }
        serde_yaml::from_value(raw).map_err(|e| format!("{origin}: {e}"))
    }

    pub fn load(path: &Path) -> Result<SiteConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
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
        let e = SiteConfig::parse("gocdb: X\nendpoint: https://x/v3\n", "X.yaml").unwrap_err();
        assert_eq!(e, "X.yaml: `vos` not available in site config");
        assert!(SiteConfig::parse("- a\n", "L.yaml").unwrap_err().contains("mapping"));
    }
}
