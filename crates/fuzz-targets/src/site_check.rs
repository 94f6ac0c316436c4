//! What `sitecheck` reads from outside: the host certificate and key (PEM, with its notAfter
//! and subject DN), the published GLUE document (its VOs and age), `--vo VO=PROJECT` values, Keystone
//! mapping rules and their entitlements.

use openssl::x509::X509;
use serde_json::Value;
use sitecheck::VoSpec;
use sitecheck::federation::{FedVo, FederationSpec};
use sitecheck::{certificate, federation, info};

/// The bytes as a host certificate (its notAfter and DN), a private key, a GLUE document (the
/// VOs it publishes are trimmed), Keystone mapping rules (lint findings name their rule or VO),
/// a VO spec (both parts non-empty and trimmed), a VO name (the rules generated for it pass
/// the lint) and entitlements (the regex form compiles, matches it alone and reads back to it).
pub fn sitecheck_input(data: &[u8]) {
    if let Ok(cert) = X509::from_pem(data) {
        let _ = certificate::not_after(&cert);
        let _ = smime::legacy_dn(cert.subject_name());
        let _ = smime::legacy_dn(cert.issuer_name());
    }
    if let Ok(k) = certificate::read_private_key(data, "hostkey.pem") {
        let _ = k.public_key_to_pem();
    }
    if let Ok(doc) = serde_json::from_slice::<Value>(data) {
        for vo in info::published_vos(&doc) {
            assert_eq!(vo, vo.trim());
        }
        // The document's age as the info probe judges it: the newest CreationTime of any
        // object, so there is one only when some object carries a CreationTime string.
        if info::creation_time(&doc).is_some() {
            let mut objects =
                doc.as_object().into_iter().flat_map(|o| o.values()).filter_map(Value::as_array).flatten();
            assert!(objects.any(|o| o.get("CreationTime").is_some_and(Value::is_string)));
        }
        // Keystone's mapping rules, as `fedsite keystone lint` reads them.
        let rules = ["/rules", "/mapping/rules", ""].iter().find_map(|p| doc.pointer(p).and_then(Value::as_array));
        if let Some(rules) = rules {
            let spec = FederationSpec { vos: vec![FedVo::new("ops", "p1")], ..Default::default() };
            let lint = federation::lint_rules(rules, &spec);
            assert!(
                lint.problems.iter().all(|p| p.starts_with("rule ") || p.starts_with("VO ")),
                "{:?}",
                lint.problems
            );
            let unique: std::collections::BTreeSet<_> = lint.groups.iter().collect();
            assert_eq!(unique.len(), lint.groups.len(), "a group listed twice");
        }
    }
    let Some(text) = crate::text(data) else { return };
    if let Ok(v) = VoSpec::parse(text) {
        assert!(!v.vo.is_empty() && !v.project.is_empty());
        assert_eq!((v.vo.trim(), v.project.trim()), (v.vo.as_str(), v.project.as_str()));
    }
    if let Some(vo) = text
        .lines()
        .next()
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
    {
        // What `fedsite keystone federation` generates, its own lint accepts.
        let spec = FederationSpec { vos: vec![FedVo::new(vo, "p1")], ..Default::default() };
        let rules = federation::rules(&spec, &[]);
        let lint = federation::lint_rules(rules.as_array().expect("rules are an array"), &spec);
        assert_eq!(lint.problems, Vec::<String>::new(), "generated rules for VO {vo:?}");
        assert_eq!(lint.groups, vec![("name".to_string(), vo.to_string())]);
        assert_eq!(lint.issuers.into_iter().collect::<Vec<_>>(), vec![federation::EGI_ISSUER.to_string()]);
    }
    for line in text.lines().take(8) {
        let _ = federation::entitlement_problems(line, true);
        let _ = federation::entitlement_problems(line, false);
        let re = federation::entitlement_regex(line);
        assert_eq!(federation::unregex(&re), line, "unregex(entitlement_regex) changed {line:?}");
        let compiled = regex::Regex::new(&re)
            .unwrap_or_else(|e| panic!("entitlement_regex({line:?}) = {re:?} does not compile: {e}"));
        assert!(compiled.is_match(line), "{re:?} does not match {line:?}");
        assert!(!compiled.is_match(&format!("{line}x")), "{re:?} is not anchored");
    }
}
