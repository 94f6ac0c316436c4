//! What `sitecheck` reads from outside: the host certificate and key (PEM, with its notAfter
//! and subject DN), the published GLUE document (its VOs), `--vo VO=PROJECT` values and the
//! entitlements of Keystone mapping rules.

use openssl::pkey::PKey;
use openssl::x509::X509;
use sitecheck::VoSpec;
use sitecheck::{certificate, federation, info};

/// The bytes as a host certificate (its notAfter and DN), a private key, a GLUE document (the
/// VOs it publishes are trimmed), a VO spec (both parts non-empty and trimmed) and an
/// entitlement (its regex form compiles, matches it alone and reads back to it).
pub fn sitecheck_input(data: &[u8]) {
    if let Ok(cert) = X509::from_pem(data) {
        let _ = certificate::not_after(&cert);
        let _ = messaging::smime::legacy_dn(cert.subject_name());
        let _ = messaging::smime::legacy_dn(cert.issuer_name());
    }
    let _ = PKey::private_key_from_pem(data);
    if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) {
        for vo in info::published_vos(&doc) {
            assert_eq!(vo, vo.trim());
        }
    }
    let Some(text) = crate::text(data) else { return };
    if let Ok(v) = VoSpec::parse(text) {
        assert!(!v.vo.is_empty() && !v.project.is_empty());
        assert_eq!((v.vo.trim(), v.project.trim()), (v.vo.as_str(), v.project.as_str()));
    }
    for line in text.lines().take(8) {
        let _ = federation::entitlement_problems(line, true);
        let _ = federation::entitlement_problems(line, false);
        let re = federation::entitlement_regex(line);
        assert_eq!(federation::unregex(&re), line, "unregex(entitlement_regex) changed {line:?}");
        let compiled = regex::Regex::new(&re).unwrap_or_else(|e| panic!("entitlement_regex({line:?}) = {re:?} does not compile: {e}"));
        assert!(compiled.is_match(line), "{re:?} does not match {line:?}");
        assert!(!compiled.is_match(&format!("{line}x")), "{re:?} is not anchored");
    }
}
