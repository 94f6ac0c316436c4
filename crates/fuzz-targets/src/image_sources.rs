//! The image sources of `imagesync`: signed HEPiX image lists (S/MIME against a test CA, then
//! the `hv:imagelist` JSON with its dates and per-image expiry) and the OCI registry's answers
//! (manifests and their annotations, tag lists and their order, `Link` paging headers, digests).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat, Utc};
use imagesync::config::{HepixConfig, RegistryConfig};
use imagesync::download::ContentDigest;
use imagesync::{hepix, oci};
use serde_json::Value;

/// The signer of the committed signed lists (messaging's test sender) and its CA.
pub const ENDORSER_DN: &str = "/C=XX/O=Test/CN=sender.example.org";
pub const ENDORSER_CA: &str = "/CN=fedsite test CA";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2027-01-01T00:00:00Z").expect("a time").with_timezone(&Utc)
}

fn hepix_cfg() -> &'static HepixConfig {
    static C: OnceLock<HepixConfig> = OnceLock::new();
    C.get_or_init(|| {
        let ca = crate::scratch().join("hepix-ca.pem");
        std::fs::write(&ca, include_bytes!("../../messaging/tests/data/ssm-4.0/test-ca.pem")).expect("writing the CA");
        HepixConfig {
            name: "fuzz-list".into(),
            url: "https://lists.example/image.list".into(),
            ca_dir: ca,
            endorser_dn: ENDORSER_DN.into(),
            endorser_ca: Some(ENDORSER_CA.into()),
            vos: vec![],
            images: vec![],
            visibility: Default::default(),
        }
    })
}

/// A HEPiX image list: any bytes as the signed list (refused cleanly unless signed by the
/// test endorser), and the same bytes as the signed content (the `hv:imagelist` checks), then
/// its images: what is accepted has every required field, a sha512 digest, is not expired;
/// every entry is either listed or skipped with a reason.
pub fn hepix_list(data: &[u8]) {
    let cfg = hepix_cfg();
    let all_vos: BTreeSet<String> = ["ops", "vo.access.egi.eu"].into_iter().map(String::from).collect();
    if let Ok(v) = hepix::verify(cfg, data, now()) {
        assert_eq!(v.signer_dn, ENDORSER_DN);
        check_images(cfg, &v, &all_vos);
    }
    if let Ok(v) = hepix::check_list(cfg, ENDORSER_DN.into(), ENDORSER_CA.into(), data, now()) {
        assert_eq!(v.list.pointer("/hv:endorser/hv:x509/hv:dn").and_then(Value::as_str), Some(ENDORSER_DN));
        let expires =
            v.list.get("dc:date:expires").and_then(Value::as_str).expect("an accepted list has dc:date:expires");
        assert!(hepix::parse_date(expires).expect("a date") > now(), "expired list {expires:?} accepted");
        check_images(cfg, &v, &all_vos);
    }
    if let Some(t) = std::str::from_utf8(data).ok().and_then(hepix::parse_date) {
        // A parsed date is UTC and reads back the same in RFC 3339.
        let again = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
        assert_eq!(hepix::parse_date(&again), Some(t), "{again}");
    }
}

fn check_images(cfg: &HepixConfig, v: &hepix::VerifiedList, all_vos: &BTreeSet<String>) {
    let listing = hepix::images(cfg, v, all_vos, now());
    let entries = v.list.get("hv:images").and_then(Value::as_array).map_or(0, Vec::len);
    assert_eq!(listing.images.len() + listing.skipped.len(), entries, "an entry neither listed nor skipped");
    for (what, why) in &listing.skipped {
        assert!(!what.is_empty() && !why.is_empty());
    }
    let list_id = v.list.get("dc:identifier").and_then(Value::as_str).unwrap_or(&cfg.name);
    for img in &listing.images {
        let a = &img.attributes;
        let id = a.get("dc:identifier").and_then(Value::as_str).expect("an image has dc:identifier");
        assert_eq!(img.key, format!("hepix:{list_id}:{id}"));
        assert_eq!(img.digest.algo, "sha512");
        assert!(
            img.digest.hex.len() == 128
                && img.digest.hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert!(img.size.is_some() && !img.url.is_empty() && !img.title.is_empty());
        assert_eq!(img.disk_format, img.disk_format.to_ascii_lowercase());
        if let Some(exp) = a.get("dc:date:expires").and_then(Value::as_str) {
            assert!(hepix::parse_date(exp).expect("a date") > now(), "expired image {exp:?} listed");
        }
        assert!(img.vos.is_subset(all_vos));
    }
}

fn registry() -> &'static (oci::Registry, RegistryConfig) {
    static R: OnceLock<(oci::Registry, RegistryConfig)> = OnceLock::new();
    R.get_or_init(|| {
        let cfg: RegistryConfig = serde_json::from_value(serde_json::json!({"url": "https://registry.example:5000"}))
            .expect("a registry config");
        let reg = oci::Registry::new(&cfg, reqwest::Client::new()).expect("a registry");
        (reg, cfg)
    })
}

/// The OCI registry's answers: the bytes as an image manifest (an image built from it carries
/// `eu.egi.cloud.tag`, the layer's digest and size), as a tag or catalog list (the tag order is
/// a total order), as a `Link` header (the next URL is the one between `<` and `>`), and every
/// string in it as a digest (what parses prints back the same, lowercased).
pub fn oci_registry(data: &[u8]) {
    if let Ok(m) = oci::Manifest::parse(data) {
        let (reg, cfg) = registry();
        let vos: BTreeSet<String> = ["ops".to_string()].into();
        let digest = format!("sha256:{}", "0".repeat(64));
        if let Ok(img) = oci::image_from_manifest(reg, cfg, "egi_vm_images/ubuntu", "22.04", &digest, &m, vos.clone()) {
            let layer = m.layers.first().expect("an image has a layer");
            assert_eq!(m.layers.len(), 1);
            assert!(img.attributes.get("eu.egi.cloud.tag").and_then(Value::as_str).is_some_and(|t| !t.is_empty()));
            assert_eq!(img.digest.to_string(), layer.digest.to_ascii_lowercase());
            assert_eq!(img.size, Some(layer.size));
            assert!(img.url.ends_with(&layer.digest));
            assert_eq!(img.disk_format, img.disk_format.to_ascii_lowercase());
            assert_eq!(img.vos, vos);
        }
    }
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        let mut strings = Vec::new();
        collect_strings(&v, &mut strings, 64);
        for s in &strings {
            digest(s);
        }
        let tags: Vec<&str> = ["tags", "repositories"]
            .iter()
            .filter_map(|k| v.get(*k).and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        tag_order(&tags);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        digest(text);
        if let Some(next) = oci::next_link(text) {
            assert!(text.contains(&format!("<{next}>")), "{next:?} is not a <...> of {text:?}");
            assert!(!next.contains('>'));
        }
        let lines: Vec<&str> = text.lines().take(16).collect();
        tag_order(&lines);
    }
}

fn collect_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>, max: usize) {
    if out.len() >= max {
        return;
    }
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out, max)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k);
            collect_strings(x, out, max)
        }),
        _ => {}
    }
}

fn digest(s: &str) {
    if let Some(d) = ContentDigest::parse(s) {
        assert_eq!(d.to_string(), s.to_ascii_lowercase());
        assert_eq!(ContentDigest::parse(&d.to_string()), Some(d.clone()));
        assert_eq!(d.hex.len(), if d.algo == "sha256" { 64 } else { 128 });
    }
}

/// `tag_cmp` is a total order consistent with equality (the newest tag is well defined, and
/// sorting never meets an inconsistent comparison).
fn tag_order(tags: &[&str]) {
    let tags = &tags[..tags.len().min(12)];
    for a in tags {
        for b in tags {
            let ab = oci::tag_cmp(a, b);
            assert_eq!(ab, oci::tag_cmp(b, a).reverse(), "tag_cmp({a:?}, {b:?}) is not antisymmetric");
            assert_eq!(ab == std::cmp::Ordering::Equal, a == b, "tag_cmp({a:?}, {b:?})");
            for c in tags {
                if ab.is_le() && oci::tag_cmp(b, c).is_le() {
                    assert!(oci::tag_cmp(a, c).is_le(), "tag_cmp not transitive on {a:?} <= {b:?} <= {c:?}");
                }
            }
        }
    }
    let mut sorted = tags.to_vec();
    sorted.sort_by(|a, b| oci::tag_cmp(a, b));
    assert!(sorted.windows(2).all(|w| oci::tag_cmp(w[0], w[1]).is_le()));
}
