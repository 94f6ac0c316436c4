//! HEPiX image lists: a signed list verifies and yields its images; one
//! changed byte, another signer DN, an untrusted CA or an expired list is
//! refused with a clear reason; per-image expiry and missing fields skip
//! only that image.

mod pki;

use std::collections::BTreeSet;

use chrono::{TimeZone, Utc};
use imagesync::config::HepixConfig;
use imagesync::hepix;

fn cfg(ca_dir: &std::path::Path, dn: &str) -> HepixConfig {
    HepixConfig {
        name: "appdb-test".into(),
        url: "unused".into(),
        ca_dir: ca_dir.to_path_buf(),
        endorser_dn: dn.into(),
        endorser_ca: Some(pki::CA_DN.into()),
        vos: vec![],
        images: vec![],
        visibility: Default::default(),
    }
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2023, 6, 1, 0, 0, 0).unwrap()
}

#[test]
fn signed_list_verifies_and_tampering_or_another_signer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut pki = pki::Pki::new(dir.path());
    let (dn, signer) = pki.signer("appdb.test");
    let (other_dn, other) = pki.signer("intruder.test");
    let sha = "ab".repeat(64);
    let mut expired = pki::image("img-old", "Old", "https://x/old.qcow2", &sha, 10, "QCOW2");
    expired["dc:date:expires"] = "2023-05-15T00:00:00Z".into();
    let mut broken = pki::image("img-broken", "Broken", "https://x/b.qcow2", &sha, 10, "QCOW2");
    broken.as_object_mut().unwrap().remove("hv:size");
    let list = pki::image_list(
        &dn,
        "2023-07-01T00:00:00Z",
        Some("vo.test"),
        vec![pki::image("img-1", "CentOS 9", "https://x/c9.qcow2", &sha, 10, "QCOW2"), expired, broken],
    );
    let body = serde_json::to_vec_pretty(&list).unwrap();
    let signed = signer.sign(&body).unwrap();
    let c = cfg(&pki.ca_dir, &dn);

    let v = hepix::verify(&c, &signed, now()).unwrap();
    assert_eq!(v.signer_dn, dn);
    assert_eq!(v.issuer_dn, pki::CA_DN);
    let vos: BTreeSet<String> = ["vo.test".to_string(), "ops".to_string()].into();
    let l = hepix::images(&c, &v, &vos, now());
    assert_eq!(l.images.len(), 1);
    let img = &l.images[0];
    assert_eq!(img.key, "hepix:5b5e7b9c-0b6e-4b4e-9d7e-6e1d4b0c9a11:img-1");
    assert_eq!(img.digest.to_string(), format!("sha512:{sha}"));
    assert_eq!((img.disk_format.as_str(), img.size), ("qcow2", Some(10)));
    assert_eq!(img.identifier, "https://appdb.example/store/vm/image/img-1:1/");
    assert_eq!(img.vos, ["vo.test".to_string()].into(), "ad:vo limits the VOs");
    let skipped: Vec<String> = l.skipped.iter().map(|(i, m)| format!("{i}: {m}")).collect();
    assert_eq!(skipped, vec!["img-old: expired at 2023-05-15T00:00:00Z", "img-broken: missing hv:size"]);

    // One byte of the signed content changed.
    let text = String::from_utf8(signed.clone()).unwrap();
    let tampered = text.replacen("CentOS 9", "CentOS 8", 1).into_bytes();
    assert_ne!(tampered, signed);
    let e = hepix::verify(&c, &tampered, now()).unwrap_err().to_string();
    assert!(e.contains("appdb-test") && e.contains("signature refused"), "{e}");

    // Signed (validly, same CA) by another DN.
    let e = hepix::verify(&c, &other.sign(&body).unwrap(), now()).unwrap_err().to_string();
    assert!(e.contains(&format!("signed by {other_dn}, not by the expected endorser {dn}")), "{e}");

    // A list naming another endorser than its signer.
    let lying = serde_json::to_vec(&pki::image_list(&other_dn, "2023-07-01T00:00:00Z", None, vec![])).unwrap();
    let e = hepix::verify(&c, &signer.sign(&lying).unwrap(), now()).unwrap_err().to_string();
    assert!(e.contains("hv:endorser hv:dn") && e.contains("is not the signer"), "{e}");

    // A CA directory that does not hold the signer's CA.
    let other_dir = tempfile::tempdir().unwrap();
    let stranger = pki::Pki::new(other_dir.path());
    let e = hepix::verify(&cfg(&stranger.ca_dir, &dn), &signed, now()).unwrap_err().to_string();
    assert!(e.contains("signature refused"), "{e}");

    // Expired list.
    let old = serde_json::to_vec(&pki::image_list(&dn, "2023-05-31T23:59:59Z", None, vec![])).unwrap();
    let e = hepix::verify(&c, &signer.sign(&old).unwrap(), now()).unwrap_err().to_string();
    assert!(e.contains("the list expired at 2023-05-31T23:59:59Z"), "{e}");
}
