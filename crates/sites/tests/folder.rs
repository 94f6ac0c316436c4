//! The sites folder loader against the twenty real catch-all files
//! (testdata/catchall-2026-07) and broken copies of them, and a generated
//! valid site that reads back equal.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use sites::{DiskFormat, Options, RunType, Severity, VoMappings};

fn real() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/catchall-2026-07")
}

/// A temporary copy of the real sites folder.
fn copy_of_real() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(real().join("sites")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    dir
}

#[test]
fn the_twenty_real_files_load_without_error() {
    let (m, mfind) = VoMappings::load(&real().join("vo-mappings.yaml")).unwrap();
    // The one entitlement of the real file with a space in it.
    assert_eq!(mfind.len(), 1, "{mfind:?}");
    assert_eq!(mfind[0].key.as_deref(), Some("vos[vo.imagine-ai.eu]"));
    let folder = sites::load(&real().join("sites"), &Options { vo_mappings: Some(&m), strict_vos: false }).unwrap();
    let errors: Vec<String> = folder.findings.iter().filter(|f| f.is_error()).map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(folder.files, 20);
    assert_eq!(folder.sites.len(), 20);
    // Every warning is a VO vo-mappings.yaml does not list (18 of them, some at two sites).
    assert!(folder.findings.iter().all(|f| f.reason.contains("is not in vo-mappings.yaml")), "{:#?}", folder.findings);
    let creodias = folder.sites.iter().find(|s| s.id == "CREODIAS").unwrap();
    assert_eq!(creodias.site.auth, sites::AuthMethod::ApplicationCredential);
    assert!(creodias.site.vos.iter().all(|v| v.auth.project_id.is_none()));
    let bari = folder.sites.iter().find(|s| s.id == "INFN-CLOUD-BARI").unwrap();
    assert_eq!(bari.site.protocol.as_str(), "openid");
    let cesnet = folder.sites.iter().find(|s| s.id == "CESNET-MCCG2").unwrap();
    assert_eq!(cesnet.site.images.formats, vec![DiskFormat::Raw]);
    assert_eq!(cesnet.site.vos.len(), 22);
    // Two files, two endpoints of one GOCDB site: both loaded.
    assert_eq!(folder.sites.iter().filter(|s| s.site.gocdb.as_str() == "fedcloud.srce.hr").count(), 2);
    // Without vo-mappings: not one finding.
    let folder = sites::load(&real().join("sites"), &Options::default()).unwrap();
    assert!(folder.findings.is_empty(), "{:#?}", folder.findings);
    // Strict: the unknown VOs are errors, and their sites are not loaded.
    let folder = sites::load(&real().join("sites"), &Options { vo_mappings: Some(&m), strict_vos: true }).unwrap();
    assert!(folder.errors() > 0 && folder.sites.len() < 20);
    assert!(folder.sites.iter().any(|s| s.id == "ELKH-CLOUD"));
}

#[test]
fn one_broken_file_does_not_hide_the_others() {
    let dir = copy_of_real();
    let d = dir.path();
    std::fs::write(d.join("ELKH-CLOUD.yaml"), "gocdb: ELKH-CLOUD\nendpoint: [https://sztaki\n").unwrap();
    let ifca = std::fs::read_to_string(d.join("IFCA-LCG2.yaml")).unwrap();
    std::fs::write(d.join("IFCA-LCG2.yaml"), ifca.replace("5eb8959a799240a98f4f303f5fbd80be", "5EB8959A")).unwrap();
    let grnet = std::fs::read_to_string(d.join("GRNET-OPENSTACK.yaml")).unwrap();
    std::fs::write(d.join("GRNET-OPENSTACK.yaml"), grnet.replace("project_id:", "projet_id:")).unwrap();
    // A copy of CENI under another file name: the same GOCDB site and endpoint twice.
    std::fs::copy(d.join("CENI.yaml"), d.join("CENI-copy.yaml")).unwrap();
    std::fs::write(d.join("old.yml"), "gocdb: OLD\n").unwrap();
    let folder = sites::load(d, &Options::default()).unwrap();
    let lines: Vec<String> = folder.findings.iter().map(ToString::to_string).collect();
    let has = |sev: Severity, file: &str, key: &str, why: &str| {
        folder.findings.iter().any(|f| {
            f.severity == sev
                && f.file.ends_with(file)
                && f.key.as_deref().is_some_and(|k| k.starts_with(key))
                && f.reason.contains(why)
        })
    };
    assert!(has(Severity::Error, "ELKH-CLOUD.yaml", "line ", "not valid YAML"), "{lines:#?}");
    assert!(
        has(Severity::Error, "IFCA-LCG2.yaml", "vos[2].auth.project_id", "not a Keystone project id"),
        "{lines:#?}"
    );
    assert!(has(Severity::Warning, "GRNET-OPENSTACK.yaml", "vos[0].auth.projet_id", "unknown key"), "{lines:#?}");
    assert!(has(Severity::Error, "CENI.yaml", "gocdb", "already described by"), "{lines:#?}");
    assert!(folder.findings.iter().any(|f| f.file.ends_with("old.yml") && f.reason.contains("*.yaml only")));
    // CENI-copy.yaml sorts first and is kept; CENI.yaml, ELKH-CLOUD and IFCA-LCG2 are not loaded.
    assert_eq!(folder.files, 21);
    assert_eq!(folder.sites.len(), 18);
    assert!(folder.sites.iter().any(|s| s.id == "GRNET-OPENSTACK"));
    assert!(!folder.sites.iter().any(|s| s.id == "IFCA-LCG2" || s.id == "ELKH-CLOUD" || s.id == "CENI"));
    assert_eq!(folder.errors(), 3, "{lines:#?}");
}

#[test]
fn a_missing_folder_is_an_error_of_its_own() {
    let e = sites::load(Path::new("/nonexistent/sites"), &Options::default()).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/sites"), "{e}");
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._-]{0,20}"
}

prop_compose! {
    fn vo_share()(name in "[a-z][a-z0-9.-]{0,20}", pid in proptest::option::of("[0-9a-f]{32}"),
                  region in proptest::option::of("[A-Za-z0-9-]{1,10}")) -> (String, Option<String>, Option<String>) {
        (name, pid, region)
    }
}

prop_compose! {
    fn site_text()(gocdb in token(), host in "[a-z][a-z0-9-]{0,15}(\\.[a-z]{2,5}){1,2}",
                   port in proptest::option::of(1u16..), slash in any::<bool>(),
                   appcred in any::<bool>(), protocol in proptest::option::of("[a-z]{3,10}"),
                   sync in any::<bool>(), formats in proptest::sample::subsequence(
                       DiskFormat::ALL.iter().map(|f| f.as_str()).collect::<Vec<_>>(), 0..4),
                   vos in proptest::collection::vec(vo_share(), 0..5),
                   acct in proptest::option::of((any::<bool>(), proptest::option::of(token()),
                        proptest::option::of("[a-z][a-z0-9-]{0,10}\\.[a-z]{2,4}"), proptest::option::of(token())))) -> String {
        let mut t = format!("gocdb: \"{gocdb}\"\nendpoint: https://{host}{}/v3{}\n",
            port.map(|p| format!(":{p}")).unwrap_or_default(), if slash { "/" } else { "" });
        if appcred { t.push_str("auth: v3applicationcredential\n"); }
        if let Some(p) = protocol { t.push_str(&format!("protocol: \"{p}\"\n")); }
        t.push_str(&format!("images:\n  sync: {sync}\n  formats: [{}]\n", formats.join(", ")));
        t.push_str("vos:\n");
        let mut seen = std::collections::BTreeSet::new();
        for (i, (name, pid, region)) in vos.iter().enumerate() {
            if !seen.insert(name.clone()) { continue; }
            t.push_str(&format!("  - name: \"{name}\"\n    auth:\n"));
            // Distinct project ids: one project, one VO.
            if let Some(p) = pid { t.push_str(&format!("      project_id: \"{}{i:x}\"\n", &p[..31])); }
            if let Some(r) = region { t.push_str(&format!("      region: \"{r}\"\n")); }
        }
        if let Some((enabled, site_name, ams, dest)) = acct {
            t.push_str(&format!("accounting:\n  enabled: {enabled}\n"));
            if let Some(s) = site_name { t.push_str(&format!("  site_name: \"{s}\"\n")); }
            if let Some(a) = ams { t.push_str(&format!("  ams_host: \"{a}\"\n")); }
            if let Some(d) = dest { t.push_str(&format!("  destination: \"{d}\"\n")); }
        }
        t
    }
}

proptest! {
    #[test]
    fn a_generated_valid_site_has_no_error_and_reads_back_equal(text in site_text()) {
        let r = sites::parse(&text, Path::new("gen.yaml"));
        let errors: Vec<String> = r.findings.iter().filter(|f| f.is_error()).map(ToString::to_string).collect();
        prop_assert!(errors.is_empty(), "{}\n{:?}", text, errors);
        let site = r.site.unwrap();
        let again = sites::parse(&site.to_yaml(), Path::new("again.yaml"));
        prop_assert_eq!(again.site.as_ref(), Some(&site), "{}", site.to_yaml());
        prop_assert!(site.accounting.destinations.topic(RunType::Block).as_str() == "eu-egi-storage-accounting");
    }

    #[test]
    fn any_text_gives_findings_not_a_panic(text in "(gocdb|endpoint|vos|auth|images|- name|  |:|\\n|x|\\[|\\{|1)*") {
        let _ = sites::parse(&text, Path::new("any.yaml"));
    }
}
