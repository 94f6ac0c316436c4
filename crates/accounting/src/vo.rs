//! VO (FQAN) of a project, from three sources in this precedence: the
//! `vos` list of an EGI catch-all `sites/<SITE>.yaml` (explicit, wins), the
//! Keystone project properties (`egi.VO`, `egi.eu:VO`, `egi.eu_VO`, `VO` by default, first
//! set wins), then the legacy cASO `voms.json` (by project id or name).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// Where a project's VO came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoSource {
    /// `vos[].auth.project_id` of the catch-all site file.
    SiteYaml,
    /// This Keystone project property.
    Property(String),
    /// The legacy `voms.json`.
    VomsJson,
}

impl std::fmt::Display for VoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VoSource::SiteYaml => f.write_str("the catch-all site YAML"),
            VoSource::Property(key) => write!(f, "Keystone project property {key}"),
            VoSource::VomsJson => f.write_str("voms.json"),
        }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct VoConfigError {
    pub path: String,
    pub message: String,
}

/// Why a `voms.json` or a catch-all site YAML gives no mapping (the file is
/// named by [`VoConfigError`]).
#[derive(Debug, thiserror::Error)]
pub enum VoFileError {
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("not YAML: {0}")]
    NotYaml(#[source] serde_yaml::Error),
    #[error("expected an object of VO → {{\"projects\": [...]}}")]
    NotAnObject,
    #[error("VO {vo:?}: expected an object")]
    VoNotAnObject { vo: String },
    #[error("VO {vo:?}: {key} must hold strings")]
    NotStrings { vo: String, key: String },
    #[error("VO {vo:?}: {key} must be a list of project ids")]
    NotAList { vo: String, key: String },
    #[error("vos must be a list")]
    VosNotAList,
    #[error("vos[{0}]: missing name")]
    MissingName(usize),
    #[error("project {project} is mapped to both {first:?} and {second:?}")]
    TwoVos { project: String, first: String, second: String },
}

/// The static parts of the VO mapping (files), loaded once per run.
#[derive(Debug, Clone, Default)]
pub struct VoMap {
    /// project id → VO, from the site YAML.
    pub site: BTreeMap<String, String>,
    /// project id or name → VO, from voms.json.
    pub voms: BTreeMap<String, String>,
    /// Property names, in order.
    pub properties: Vec<String>,
}

impl VoMap {
    /// Reads the files named by the config. A missing `voms.json` is an
    /// empty map (as cASO); a missing site YAML or a malformed file is an error.
    pub fn load(
        properties: &[String],
        voms_json: Option<&Path>,
        site_yaml: Option<&Path>,
    ) -> Result<VoMap, VoConfigError> {
        let mut map = VoMap { properties: properties.to_vec(), ..Default::default() };
        if let Some(p) = voms_json
            && p.exists()
        {
            let text = read(p)?;
            map.voms = parse_voms_json(&text).map_err(|e| err(p, e.to_string()))?;
        }
        if let Some(p) = site_yaml {
            let text = read(p)?;
            map.site = parse_site_yaml(&text).map_err(|e| err(p, e.to_string()))?;
        }
        Ok(map)
    }

    /// The VO of a project given its Keystone properties (flat extras).
    pub fn resolve(
        &self,
        project_id: &str,
        project_name: Option<&str>,
        extras: Option<&serde_json::Map<String, Value>>,
    ) -> Option<(String, VoSource)> {
        if let Some(vo) = self.site.get(project_id) {
            return Some((vo.clone(), VoSource::SiteYaml));
        }
        if let Some(extras) = extras {
            for key in &self.properties {
                if let Some(vo) = extras.get(key).and_then(Value::as_str).map(str::trim)
                    && !vo.is_empty()
                {
                    return Some((vo.to_string(), VoSource::Property(key.clone())));
                }
            }
        }
        self.voms
            .get(project_id)
            .or_else(|| project_name.and_then(|n| self.voms.get(n)))
            .map(|vo| (vo.clone(), VoSource::VomsJson))
    }
}

fn read(p: &Path) -> Result<String, VoConfigError> {
    std::fs::read_to_string(p).map_err(|e| err(p, e.to_string()))
}

fn err(p: &Path, m: impl Into<String>) -> VoConfigError {
    VoConfigError { path: p.display().to_string(), message: m.into() }
}

/// Project (id or name) → VO, as a mapping file gives it.
pub type ProjectVos = BTreeMap<String, String>;

/// cASO's `voms.json`: `{"<VO>": {"projects": [..]}}`; the legacy keys
/// `tenant` (one) and `tenants` (list) are used when `projects` is absent.
pub fn parse_voms_json(text: &str) -> Result<ProjectVos, VoFileError> {
    let v: Value = serde_json::from_str(text).map_err(VoFileError::NotJson)?;
    let obj = v.as_object().ok_or(VoFileError::NotAnObject)?;
    let mut out = BTreeMap::new();
    for (vo, m) in obj {
        let m = m.as_object().ok_or_else(|| VoFileError::VoNotAnObject { vo: vo.clone() })?;
        let strings = |k: &str| -> Result<Vec<String>, VoFileError> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(vec![]),
                Some(Value::String(s)) => Ok(vec![s.clone()]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| VoFileError::NotStrings { vo: vo.clone(), key: k.to_string() })
                    })
                    .collect(),
                Some(_) => Err(VoFileError::NotAList { vo: vo.clone(), key: k.to_string() }),
            }
        };
        let projects = if m.contains_key("projects") {
            strings("projects")?
        } else {
            let mut t = strings("tenants")?;
            t.extend(strings("tenant")?);
            t
        };
        if projects.is_empty() {
            tracing::warn!(vo = %vo, "voms.json: no project mapped to this VO");
        }
        for p in projects {
            out.insert(p, vo.clone());
        }
    }
    Ok(out)
}

/// The `vos` list of a catch-all site file: each `{name, auth: {project_id}}`;
/// entries without a project id (discovered projects) are skipped.
pub fn parse_site_yaml(text: &str) -> Result<ProjectVos, VoFileError> {
    let v: serde_yaml::Value = serde_yaml::from_str(text).map_err(VoFileError::NotYaml)?;
    let mut out = BTreeMap::new();
    let Some(vos) = v.get("vos") else { return Ok(out) };
    let vos = vos.as_sequence().ok_or(VoFileError::VosNotAList)?;
    for (i, entry) in vos.iter().enumerate() {
        let name = entry.get("name").and_then(|n| n.as_str()).ok_or(VoFileError::MissingName(i))?;
        if let Some(pid) = entry.get("auth").and_then(|a| a.get("project_id")).and_then(|p| p.as_str())
            && let Some(prev) = out.insert(pid.to_string(), name.to_string())
            && prev != name
        {
            return Err(VoFileError::TwoVos { project: pid.to_string(), first: prev, second: name.to_string() });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voms_json_accepts_projects_and_the_legacy_tenant_keys() {
        let m = parse_voms_json(
            r#"{"vo.a": {"projects": ["p1", "p2"]}, "vo.b": {"tenant": "p3"}, "vo.c": {"tenants": ["p4"]}}"#,
        )
        .unwrap();
        assert_eq!(m["p1"], "vo.a");
        assert_eq!(m["p2"], "vo.a");
        assert_eq!(m["p3"], "vo.b");
        assert_eq!(m["p4"], "vo.c");
    }

    #[test]
    fn site_yaml_maps_project_ids_and_skips_discovered_entries() {
        let m = parse_site_yaml(
            "gocdb: X\nendpoint: https://k/v3\nvos:\n  - name: ops\n    auth:\n      project_id: abc\n  - name: vo.x\n    auth: {}\n",
        )
        .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m["abc"], "ops");
    }

    #[test]
    fn the_default_properties_read_keystone_30s_egi_eu_vo() {
        let cfg = crate::ExtractConfig::new(
            apel::SiteName::new("TEST-SITE").unwrap(),
            apel::ApelText::new("TEST-SITE-cloud").unwrap(),
        );
        let map = VoMap { site: Default::default(), voms: Default::default(), properties: cfg.vo_properties };
        // Keystone 30 stores a new project's `egi.eu:VO` as `egi.eu_VO`.
        let renamed: serde_json::Map<String, Value> = serde_json::from_str(r#"{"egi.eu_VO": "vo.a"}"#).unwrap();
        assert_eq!(
            map.resolve("p", None, Some(&renamed)).unwrap(),
            ("vo.a".into(), VoSource::Property("egi.eu_VO".into()))
        );
        let both: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"egi.eu_VO": "vo.b", "egi.eu:VO": "vo.a", "VO": "vo.c"}"#).unwrap();
        assert_eq!(map.resolve("p", None, Some(&both)).unwrap().0, "vo.a", "egi.eu:VO first, VO last");
    }

    #[test]
    fn precedence_is_site_yaml_then_properties_in_order_then_voms_json() {
        let map = VoMap {
            site: [("p1".to_string(), "from-yaml".to_string())].into(),
            voms: [("p1".to_string(), "from-voms".to_string()), ("p2".to_string(), "from-voms".to_string())].into(),
            properties: vec!["egi.VO".into(), "VO".into()],
        };
        let props: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"VO": "second", "egi.VO": "first"}"#).unwrap();
        assert_eq!(map.resolve("p1", None, Some(&props)).unwrap(), ("from-yaml".into(), VoSource::SiteYaml));
        assert_eq!(
            map.resolve("p2", None, Some(&props)).unwrap(),
            ("first".into(), VoSource::Property("egi.VO".into()))
        );
        assert_eq!(map.resolve("p2", None, None).unwrap(), ("from-voms".into(), VoSource::VomsJson));
        assert_eq!(map.resolve("p3", Some("p2"), None).unwrap().0, "from-voms");
        assert!(map.resolve("p9", None, None).is_none());
    }
}
