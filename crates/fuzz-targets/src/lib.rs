//! The fuzz targets of fedsite: one function per parser taking arbitrary bytes, which must
//! never panic (and, where a parser has an inverse, must round-trip what it accepted).
//! `fuzz/` (cargo fuzz, outside the workspace) wraps each in `fuzz_target!`; this crate's test
//! runs the committed corpus `fuzz/corpus/<target>/` through every one in the normal suite.
//!
//! Adding a target (e.g. a parser `foo`): write `pub fn foo(data: &[u8])` here or in a module
//! of its family ([`image_sources`], [`site_info`], [`site_config`], [`site_check`],
//! [`openstack_json`]), add it to [`TARGETS`], copy `fuzz/fuzz_targets/apel_message.rs` to
//! `fuzz/fuzz_targets/foo.rs` changing the name, add its `[[bin]]` to `fuzz/Cargo.toml`, and
//! put a few real inputs in `fuzz/corpus/foo/`. docs/reliability.md has the commands.

use std::path::PathBuf;
use std::sync::OnceLock;

pub mod image_sources;
pub mod openstack_json;
pub mod site_check;
pub mod site_config;
pub mod site_info;

/// A fuzz target: takes any bytes, panics only on a bug.
pub type Target = fn(&[u8]);

/// Every target by name (the name of its `fuzz/fuzz_targets/<name>.rs` and corpus directory).
pub const TARGETS: &[(&str, Target)] = &[
    ("apel_message", apel_message),
    ("dirq_name", dirq_name),
    ("dirq_element", dirq_element),
    ("smime", smime),
    ("caso_conf", caso_conf),
    ("ssm_cfg", ssm_cfg),
    ("clouds_yaml", clouds_yaml),
    ("site_yaml", site_yaml),
    ("openstack_json", openstack_json::openstack_json),
    ("hepix_list", image_sources::hepix_list),
    ("oci_registry", image_sources::oci_registry),
    ("gocdb_xml", site_info::gocdb_xml),
    ("glue_json", site_info::glue_json),
    ("fedsite_toml", site_config::fedsite_toml),
    ("sitecheck_input", site_check::sitecheck_input),
    ("oidc_json", openstack_json::oidc_json),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Scratch space for targets that need files, on tmpfs when there is one.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::path::Path::new("/dev/shm");
        let dir =
            if base.is_dir() { tempfile::tempdir_in(base) } else { tempfile::tempdir() }.expect("a scratch directory");
        dir.keep()
    })
}

/// APEL messages of every type (cloud text, StAR XML, IP / accelerator JSON, energy JSON) with
/// the loader's rules. What parses must render in both styles (or fail cleanly) and what
/// renders must parse back to the same records.
pub fn apel_message(data: &[u8]) {
    let Ok((kind, records)) = apel::parse_message(data) else { return };
    assert!(!records.is_empty(), "a parsed message has records");
    for style in [apel::Style::Fedsite, apel::Style::CasoCompat] {
        let Ok(bytes) = apel::render_message(kind, &records, style) else { continue };
        let (kind2, again) = apel::parse_message(&bytes)
            .unwrap_or_else(|e| panic!("a rendered message does not parse: {e}\n{}", String::from_utf8_lossy(&bytes)));
        assert_eq!(kind2, kind, "kind changed in a round trip");
        if style == apel::Style::Fedsite {
            assert_eq!(again, records, "records changed in a round trip:\n{}", String::from_utf8_lossy(&bytes));
        } else {
            assert_eq!(again.len(), records.len());
        }
    }
}

fn queue() -> &'static messaging::dirq::QueueSimple {
    static Q: OnceLock<messaging::dirq::QueueSimple> = OnceLock::new();
    Q.get_or_init(|| messaging::dirq::QueueSimple::open(scratch().join("queue")).expect("a scratch queue"))
}

/// Element names given to dirq (spool) operations and to the receiver's incoming queue: a name
/// that is not `<8 hex>/<14 hex>` is refused, and no accepted name points outside the queue.
pub fn dirq_name(data: &[u8]) {
    let Some(name) = text(data) else { return };
    let q = queue();
    let parsed = messaging::dirq::ElementName::parse(name);
    match q.get_path(name) {
        Ok(p) => {
            assert!(parsed.is_ok(), "get_path accepted {name:?} that ElementName refuses");
            assert!(p.starts_with(q.path()) && !name.contains(".."), "{name:?} escapes the queue: {}", p.display());
        }
        Err(_) => assert!(parsed.is_err(), "valid name {name:?} refused"),
    }
    if parsed.is_err() {
        assert!(q.lock(name, true).is_err(), "lock accepted {name:?}");
        assert!(q.remove(name).is_err(), "remove accepted {name:?}");
        assert!(q.touch(name).is_err(), "touch accepted {name:?}");
    }
    // The receiver's incoming queue: a name or field that is not one is refused as such.
    let incoming = messaging::receiver::DirQueue::open(scratch().join("incoming")).expect("a scratch queue");
    for (n, key) in [(name, "body"), ("6b0bf3a4/6b0bf3de56c97b", name)] {
        if let Err(e) = incoming.field(n, key)
            && e.kind() != std::io::ErrorKind::InvalidInput
        {
            assert!(parsed.is_ok() || n != name, "{n:?}/{key:?} reached the file system: {e}");
        }
    }
}

/// Spool elements: any bytes go into the queue and come back the same; then they are read as
/// the sender reads an element (an APEL message).
pub fn dirq_element(data: &[u8]) {
    let q = queue();
    let name = q.add(data).expect("adding an element");
    assert!(q.lock(name.as_str(), false).expect("locking"), "fresh element locked by someone else");
    assert_eq!(q.get(name.as_str()).expect("reading"), data);
    q.remove(name.as_str()).expect("removing");
    apel_message(data);
}

fn verifier() -> &'static (smime::Verifier, smime::Signer) {
    static V: OnceLock<(smime::Verifier, smime::Signer)> = OnceLock::new();
    V.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch().join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            p
        };
        let ca = write("ca.pem", include_bytes!("../../messaging/tests/data/ssm-4.0/test-ca.pem"));
        let cert = write("cert.pem", include_bytes!("../../messaging/tests/data/ssm-4.0/test-sender-cert.pem"));
        let key = write("key.pem", include_bytes!("../../messaging/tests/data/ssm-4.0/test-sender-key.pem"));
        let verifier = smime::Verifier::new(ca).expect("the test CA");
        // Signing checks the certificate's remaining validity; the fuzzer only decrypts.
        let signer = smime::Signer::new(cert, key).expect("the test signer");
        (verifier, signer)
    })
}

/// S/MIME input as the receiver gets it: encrypted or not, then verified against the CA.
pub fn smime(data: &[u8]) {
    let (verifier, signer) = verifier();
    let _ = smime::universal_newlines(data);
    if smime::is_encrypted(data) {
        if let Ok(inner) = signer.decrypt(data) {
            let _ = verifier.verify(&inner);
        }
    } else if let Ok(v) = verifier.verify(data) {
        let _ = apel::parse_message(&v.body);
    }
}

/// cASO's caso.conf (oslo.config INI).
pub fn caso_conf(data: &[u8]) {
    let Some(t) = text(data) else { return };
    if let Err(e) = accounting::casoconf::CasoConf::parse("caso.conf", t) {
        assert!(e.to_string().starts_with("reading caso.conf: "), "{e}");
    }
}

/// SSM's sender.cfg and receiver.cfg (configparser INI) and the `dns` file.
pub fn ssm_cfg(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let _ = messaging::config::SenderCfg::parse("sender.cfg", t);
    let _ = messaging::config::ReceiverCfg::parse("receiver.cfg", t);
    let _ = messaging::config::parse_dns(t);
}

/// clouds.yaml, with an optional secure.yaml after a line `#secure`; the cloud named on the
/// first line (`# cloud: NAME`), else `sim`.
pub fn clouds_yaml(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let (clouds, secure) = match t.split_once("\n#secure\n") {
        Some((c, s)) => (c, Some(("secure.yaml", s))),
        None => (t, None),
    };
    let name = t.lines().next().and_then(|l| l.strip_prefix("# cloud: ")).unwrap_or("sim").trim();
    if let Ok(cfg) = openstack::CloudConfig::from_clouds_yaml(clouds, secure, name, "clouds.yaml") {
        let _ = format!("{cfg:?}");
    }
}

/// The catch-all `sites/<SITE>.yaml` (`vos[].auth.project_id`) and cASO's voms.json.
pub fn site_yaml(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let _ = accounting::vo::parse_site_yaml(t);
    let _ = accounting::vo::parse_voms_json(t);
}
