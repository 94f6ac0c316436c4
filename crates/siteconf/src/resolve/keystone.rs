//! `fedsite keystone federation|lint`'s settings: the federation to generate, apply or lint
//! from the flags (the VOs and their projects, their entitlements, the Check-in issuer: the
//! flag, else the demo issuer with `--demo`, else production), and the project properties the
//! lint reads the VO from (docs/keystone-oidc.md). The objects themselves are
//! `sitecheck::federation`'s.

use sitecheck::VoSpec;
use sitecheck::federation::{self, FedVo, FederationSpec};

use crate::Error;

/// What the command line says about the federation.
#[derive(Debug, Clone, Default)]
pub struct FederationFlags<'a> {
    /// `--vo VO[=PROJECT]`, in order.
    pub vos: &'a [String],
    /// `--entitlement VO=URN`, in order.
    pub entitlements: &'a [String],
    pub idp: &'a str,
    pub issuer: Option<&'a str>,
    pub demo: bool,
    pub mapping: &'a str,
    pub protocol: &'a str,
    pub role: &'a str,
    pub group_domain: &'a str,
}

/// The federation the flags describe; every error names its flag.
pub fn federation_spec(flags: &FederationFlags<'_>) -> Result<FederationSpec, Error> {
    let bad = |flag: &str, reason: String| Error::Flag { flag: flag.into(), reason };
    if !matches!(flags.protocol, "openid" | "oidc") {
        return Err(bad("--protocol", format!("{}: expected openid or oidc", flags.protocol)));
    }
    let mut vos = Vec::new();
    for v in flags.vos {
        let s = VoSpec::parse(v).map_err(|e| bad("--vo", e.to_string()))?;
        vos.push(FedVo::new(&s.vo, &s.project));
    }
    for e in flags.entitlements {
        let (vo, urn) = e.split_once('=').ok_or_else(|| bad("--entitlement", format!("{e:?}: expected VO=URN")))?;
        let v = vos
            .iter_mut()
            .find(|v| v.vo == vo.trim())
            .ok_or_else(|| bad("--entitlement", format!("{e:?}: VO {vo} is not given with --vo")))?;
        v.entitlement = urn.trim().to_string();
    }
    let issuer = match (flags.issuer, flags.demo) {
        (Some(i), _) => i.to_string(),
        (None, true) => federation::EGI_DEMO_ISSUER.into(),
        (None, false) => federation::EGI_ISSUER.into(),
    };
    Ok(FederationSpec {
        idp: flags.idp.to_string(),
        issuer,
        mapping: flags.mapping.to_string(),
        protocol: flags.protocol.to_string(),
        role: flags.role.to_string(),
        group_domain: flags.group_domain.to_string(),
        vos,
    })
}

/// The project properties holding the VO: `--vo-property`, else sitecheck's (egi.VO,
/// egi.eu:VO, egi.eu_VO, VO).
pub fn vo_properties(flag: Option<&str>) -> Vec<String> {
    match flag {
        Some(p) => vec![p.to_string()],
        None => sitecheck::inventory::VO_PROPERTIES.iter().map(|s| s.to_string()).collect(),
    }
}
