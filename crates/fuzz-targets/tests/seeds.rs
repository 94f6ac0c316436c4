//! The seeds of the image-source targets reach past the parsers' front doors: the signed seed
//! list verifies against the test CA and yields its images, and the seed manifest is an image;
//! a fuzzer mutating them then explores the checks behind.

use std::path::{Path, PathBuf};

fn corpus(target: &str, file: &str) -> Vec<u8> {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target).join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn cfg(dir: &Path) -> imagesync::config::HepixConfig {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, include_bytes!("../../messaging/tests/data/ssm-4.0/test-ca.pem")).unwrap();
    imagesync::config::HepixConfig {
        name: "seed".into(),
        url: "list.smime".into(),
        ca_dir: ca,
        endorser_dn: fuzz_targets::image_sources::ENDORSER_DN.into(),
        endorser_ca: Some(fuzz_targets::image_sources::ENDORSER_CA.into()),
        vos: vec![],
        images: vec![],
        visibility: Default::default(),
    }
}

#[test]
fn the_signed_seed_list_verifies_and_lists_its_images() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    let now = chrono::DateTime::parse_from_rfc3339("2027-01-01T00:00:00Z").unwrap().to_utc();
    let v = imagesync::hepix::verify(&cfg, &corpus("hepix_list", "list.smime"), now).unwrap();
    assert_eq!(v.issuer_dn, "/CN=fedsite test CA");
    let vos = ["ops".to_string(), "vo.access.egi.eu".to_string()].into();
    let l = imagesync::hepix::images(&cfg, &v, &vos, now);
    let keys: Vec<&str> = l.images.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        ["hepix:5b5e7b9c-0b6e-4b4e-9d7e-6e1d4b0c9a11:img-1", "hepix:5b5e7b9c-0b6e-4b4e-9d7e-6e1d4b0c9a11:img-2"]
    );
    assert_eq!(l.images[1].size, Some(2048));
    assert!(l.images.iter().all(|i| i.vos == ["vo.access.egi.eu".to_string()].into()));
    let e = imagesync::hepix::verify(&cfg, &corpus("hepix_list", "expired.smime"), now).unwrap_err().to_string();
    assert!(e.contains("the list expired at 2026-01-01T00:00:00Z"), "{e}");
}

#[test]
fn the_skipped_seed_list_says_why_for_each_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    let now = chrono::DateTime::parse_from_rfc3339("2027-01-01T00:00:00Z").unwrap().to_utc();
    let body = corpus("hepix_list", "skipped.json");
    let v =
        imagesync::hepix::check_list(&cfg, cfg.endorser_dn.clone(), "/CN=fedsite test CA".into(), &body, now).unwrap();
    let l = imagesync::hepix::images(&cfg, &v, &["ops".to_string()].into(), now);
    assert!(l.images.is_empty());
    let why: Vec<(&str, &str)> = l.skipped.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(
        why,
        [
            ("img-old", "expired at 2026-01-01T00:00:00Z"),
            ("img-bad", "sl:checksum:sha512 is not 128 hex digits"),
            ("hv:images[2]", "no hv:image object"),
            ("hv:images[3]", "missing dc:identifier"),
        ]
    );
}
