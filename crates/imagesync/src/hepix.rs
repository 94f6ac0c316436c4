//! HEPiX image lists (`hv:imagelist` JSON in an S/MIME signature): signature
//! and chain verification against a CA directory, signer DN/issuer pinned to
//! the configured endorser and to `hv:endorser`, list and per-image expiry.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDateTime, Utc};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::X509;
use serde_json::Value;

use crate::config::HepixConfig;
use crate::download::ContentDigest;
use crate::error::SyncError;
use crate::source::{SourceImage, SourceListing};

/// A verified list: who signed it and the parsed `hv:imagelist`.
#[derive(Debug, Clone)]
pub struct VerifiedList {
    pub signer_dn: String,
    pub issuer_dn: String,
    pub list: Value,
}

fn src(cfg: &HepixConfig, m: impl Into<String>) -> SyncError {
    SyncError::Source { source_name: cfg.name.clone(), message: m.into() }
}

/// `YYYY-MM-DDThh:mm:ssZ` (cloudkeeper's strict format), also with offsets
/// (RFC 3339). The year is four digits: a sign or a fifth digit (which
/// chrono's `%Y` would take, making a list expire in year 99999 or before
/// year 0) is refused.
pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if !(b.len() > 4 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-') {
        return None;
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ") {
        return Some(t.and_utc());
    }
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// Verifies a signed list: the S/MIME signature and the signer's chain to a
/// CA in `cfg.ca_dir`, the signer DN (and issuer when pinned) against the
/// configuration and against the list's own `hv:endorser`, and the list's
/// expiry against `now`.
pub fn verify(cfg: &HepixConfig, signed: &[u8], now: DateTime<Utc>) -> Result<VerifiedList, SyncError> {
    let verifier = smime::Verifier::new(&cfg.ca_dir).map_err(|e| src(cfg, format!("CA directory: {e}")))?;
    let verified = verifier.verify(signed).map_err(|e| src(cfg, format!("signature refused: {e}")))?;
    let (p7, _) = Pkcs7::from_smime(signed).map_err(|e| src(cfg, format!("parsing the signature: {e}")))?;
    let none = Stack::<X509>::new().map_err(|e| src(cfg, e.to_string()))?;
    let signers = p7.signers(&none, Pkcs7Flags::empty()).map_err(|e| src(cfg, format!("signer certificate: {e}")))?;
    let signer = signers.iter().next().ok_or_else(|| src(cfg, "no signer certificate"))?;
    let issuer_dn = smime::legacy_dn(signer.issuer_name());
    let signer_dn = verified.signer_dn;
    if signer_dn != cfg.endorser_dn {
        return Err(src(cfg, format!("signed by {signer_dn}, not by the expected endorser {}", cfg.endorser_dn)));
    }
    if let Some(ca) = &cfg.endorser_ca
        && &issuer_dn != ca
    {
        return Err(src(cfg, format!("signer certificate issued by {issuer_dn}, not by the expected {ca}")));
    }
    check_list(cfg, signer_dn, issuer_dn, &verified.body, now)
}

/// The list checks of [`verify`] once the signature holds: `body` (the signed
/// content) is a JSON `hv:imagelist` whose `hv:endorser` names the signer
/// (and its issuer when `cfg.endorser_ca` is pinned) and which has not expired
/// at `now`. Public so the fuzz targets reach it without a signature.
#[allow(clippy::result_large_err)] // SyncError, as every fallible function of the crate
pub fn check_list(
    cfg: &HepixConfig,
    signer_dn: String,
    issuer_dn: String,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<VerifiedList, SyncError> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| src(cfg, format!("the signed content is not JSON: {e}")))?;
    let list = doc.get("hv:imagelist").cloned().ok_or_else(|| src(cfg, "no hv:imagelist object"))?;
    let x509 = list.pointer("/hv:endorser/hv:x509").ok_or_else(|| src(cfg, "hv:imagelist: no hv:endorser.hv:x509"))?;
    let list_dn = x509.get("hv:dn").and_then(Value::as_str).unwrap_or_default();
    if list_dn != signer_dn {
        return Err(src(cfg, format!("hv:endorser hv:dn {list_dn:?} is not the signer {signer_dn}")));
    }
    if cfg.endorser_ca.is_some() {
        let list_ca = x509.get("hv:ca").and_then(Value::as_str).unwrap_or_default();
        if list_ca != issuer_dn {
            return Err(src(cfg, format!("hv:endorser hv:ca {list_ca:?} is not the signer's issuer {issuer_dn}")));
        }
    }
    let expires = list
        .get("dc:date:expires")
        .and_then(Value::as_str)
        .ok_or_else(|| src(cfg, "hv:imagelist: no dc:date:expires"))?;
    let expires = parse_date(expires)
        .ok_or_else(|| src(cfg, format!("hv:imagelist dc:date:expires {expires:?} is not a date")))?;
    if expires <= now {
        return Err(src(cfg, format!("the list expired at {}", expires.format("%Y-%m-%dT%H:%M:%SZ"))));
    }
    Ok(VerifiedList { signer_dn, issuer_dn, list })
}

/// The subscribed, unexpired images of a verified list. Entries that lack a
/// required field are skipped with a reason; the others go on.
pub fn images(cfg: &HepixConfig, v: &VerifiedList, all_vos: &BTreeSet<String>, now: DateTime<Utc>) -> SourceListing {
    let mut out = SourceListing::default();
    let list_id = v.list.get("dc:identifier").and_then(Value::as_str).unwrap_or(&cfg.name).to_string();
    let vos: BTreeSet<String> = if !cfg.vos.is_empty() {
        cfg.vos.iter().filter(|vo| all_vos.contains(*vo)).cloned().collect()
    } else if let Some(vo) = v.list.get("ad:vo").and_then(Value::as_str) {
        all_vos.iter().filter(|x| *x == vo).cloned().collect()
    } else {
        all_vos.clone()
    };
    for (i, entry) in v.list.get("hv:images").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let Some(img) = entry.get("hv:image") else {
            out.skipped.push((format!("hv:images[{i}]"), "no hv:image object".into()));
            continue;
        };
        let get = |k: &str| img.get(k).and_then(Value::as_str).map(str::to_string);
        let id = get("dc:identifier").unwrap_or_default();
        let label = if id.is_empty() { format!("hv:images[{i}]") } else { id.clone() };
        if !cfg.images.is_empty() && !cfg.images.contains(&id) {
            continue;
        }
        let mut missing = vec![];
        for k in ["dc:identifier", "dc:title", "hv:uri", "hv:format", "sl:checksum:sha512"] {
            if get(k).is_none_or(|v| v.is_empty()) {
                missing.push(k);
            }
        }
        let size = img.get("hv:size").and_then(|s| s.as_u64().or_else(|| s.as_str().and_then(|x| x.parse().ok())));
        if size.is_none() {
            missing.push("hv:size");
        }
        if !missing.is_empty() {
            out.skipped.push((label, format!("missing {}", missing.join(", "))));
            continue;
        }
        let Some(digest) = ContentDigest::sha512(&get("sl:checksum:sha512").unwrap_or_default()) else {
            out.skipped.push((label, "sl:checksum:sha512 is not 128 hex digits".into()));
            continue;
        };
        if let Some(exp) = get("dc:date:expires") {
            match parse_date(&exp) {
                Some(t) if t <= now => {
                    out.skipped.push((label, format!("expired at {exp}")));
                    continue;
                }
                Some(_) => {}
                None => {
                    out.skipped.push((label, format!("dc:date:expires {exp:?} is not a date")));
                    continue;
                }
            }
        }
        let mpuri = get("ad:mpuri").unwrap_or_else(|| format!("{list_id}:{id}"));
        out.images.push(SourceImage {
            key: format!("hepix:{list_id}:{id}"),
            source: cfg.name.clone(),
            title: get("dc:title").unwrap_or_default(),
            identifier: mpuri,
            description: get("dc:description").unwrap_or_default(),
            url: get("hv:uri").unwrap_or_default(),
            digest,
            size,
            disk_format: get("hv:format").unwrap_or_default().to_ascii_lowercase(),
            container_format: "bare".into(),
            os_distro: get("sl:osname").map(|s| s.to_ascii_lowercase()),
            os_version: get("sl:osversion"),
            architecture: get("sl:arch"),
            attributes: img.clone(),
            vos: vos.clone(),
        });
    }
    out
}

/// Reads the list bytes from `cfg.url` (http(s) or a local path).
pub async fn fetch_list(cfg: &HepixConfig, http: &reqwest::Client) -> Result<Vec<u8>, SyncError> {
    if cfg.url.starts_with("http://") || cfg.url.starts_with("https://") {
        let resp = http
            .get(&cfg.url)
            .send()
            .await
            .map_err(|e| src(cfg, format!("GET {}: {}", cfg.url, crate::download::chain(&e))))?;
        if !resp.status().is_success() {
            return Err(src(cfg, format!("GET {}: HTTP {}", cfg.url, resp.status().as_u16())));
        }
        Ok(resp.bytes().await.map_err(|e| src(cfg, format!("GET {}: {e}", cfg.url)))?.to_vec())
    } else {
        std::fs::read(&cfg.url).map_err(|e| src(cfg, format!("reading {}: {e}", cfg.url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_have_four_digit_years() {
        let t = parse_date("2027-06-01T00:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2027-06-01T00:00:00+00:00");
        assert_eq!(parse_date("2027-06-01T02:00:00+02:00"), Some(t));
        assert_eq!(parse_date("0000-01-01T00:00:00Z").map(|t| t.timestamp()), Some(-62_167_219_200));
        // Found by the hepix_list fuzz target (fuzz/regressions/hepix_list): chrono's %Y took
        // these, so a list could claim to expire in year 12345 or before year 0.
        for bad in [
            "+12345-01-01T00:00:00Z",
            "-0001-01-01T00:00:00Z",
            "12345-01-01T00:00:00Z",
            "",
            "2027",
            "２０２７-01-01T00:00:00Z",
            "abcé-01-01",
        ] {
            assert_eq!(parse_date(bad), None, "{bad:?}");
        }
    }
}
