//! `vo-mappings.yaml`: the federation's map of VO name → Check-in entitlement
//! (`vos: {<vo>: <entitlement>}`), the list of VOs the sites folder is
//! checked against.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::error::LoadError;
use crate::finding::{Finding, Findings};
use crate::values::VoName;

/// The VOs of `vo-mappings.yaml` and their entitlements.
#[derive(Debug, Clone)]
pub struct VoMappings {
    file: PathBuf,
    entitlements: BTreeMap<String, String>,
}

impl VoMappings {
    /// Reads the file; a file that cannot be read or has no `vos` mapping is
    /// an error, a doubtful entitlement a warning.
    pub fn load(path: &Path) -> Result<(VoMappings, Vec<Finding>), LoadError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LoadError::VoMappings { file: path.to_path_buf(), reason: format!("cannot read: {e}") })?;
        VoMappings::parse(&text, path)
    }

    /// Reads the text of a vo-mappings file; `file` names it in errors and findings.
    pub fn parse(text: &str, file: &Path) -> Result<(VoMappings, Vec<Finding>), LoadError> {
        let bad = |reason: String| LoadError::VoMappings { file: file.to_path_buf(), reason };
        let doc: Value = serde_yaml::from_str(text).map_err(|e| bad(format!("not valid YAML: {e}")))?;
        let Some(vos) = doc.get("vos").and_then(Value::as_mapping) else {
            return Err(bad("vos: missing or not a mapping of VO name to entitlement".into()));
        };
        let mut f = Findings::new(file.to_path_buf());
        let mut entitlements = BTreeMap::new();
        for (k, v) in vos {
            let Some(vo) = k.as_str() else {
                f.error("vos", format!("a VO name that is not text: {k:?}"));
                continue;
            };
            let key = format!("vos[{vo}]");
            let Some(ent) = v.as_str() else {
                f.error(key, "the entitlement is not text");
                continue;
            };
            if ent.chars().any(char::is_whitespace) {
                f.warn(
                    &key,
                    format!("entitlement {ent:?} contains a space: Keystone mappings built from it will not match"),
                );
            } else if !ent.starts_with("urn:") {
                f.warn(&key, format!("entitlement {ent:?} is not a URN (urn:mace:egi.eu:group:...)"));
            }
            entitlements.insert(vo.to_string(), ent.to_string());
        }
        Ok((VoMappings { file: file.to_path_buf(), entitlements }, f.list))
    }

    /// The `vo-mappings.yaml` read.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// How many VOs have an entitlement.
    pub fn len(&self) -> usize {
        self.entitlements.len()
    }

    /// True when no VO has one.
    pub fn is_empty(&self) -> bool {
        self.entitlements.is_empty()
    }

    /// The entitlement of a VO: its name as written, else (for a FQAN
    /// `/vo/...`) the VO's, as the central deployment's generator looks it up.
    pub fn entitlement(&self, vo: &VoName) -> Option<&str> {
        self.entitlements.get(vo.as_str()).or_else(|| self.entitlements.get(vo.vo())).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_name_then_by_the_vo_of_a_fqan() {
        let (m, findings) = VoMappings::parse(
            "vos:\n  biomed: \"urn:mace:egi.eu:group:biomed:role=vm_operator#aai.egi.eu\"\n  x: \"urn:mace:egi.eu: group:x\"\n",
            Path::new("vo-mappings.yaml"),
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert!(m.entitlement(&VoName::new("/biomed/vip").unwrap()).is_some());
        assert!(m.entitlement(&VoName::new("vip").unwrap()).is_none());
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].key.as_deref(), Some("vos[x]"));
        assert!(VoMappings::parse("- a\n", Path::new("v.yaml")).unwrap_err().to_string().contains("vos: missing"));
    }
}
