//! `fedsite.toml` (`siteconf`): parsing, re-serialising (a fixed point), the resolution into
//! every crate's settings and `config check`, and its `[images]` table as `imagesync` reads it.

use siteconf::{Config, FedsiteToml};

/// `fedsite.toml` as `fedsite` reads it: what parses serialises back to TOML that parses to the
/// same configuration; resolving it (extraction settings, cloud, spool, sender) and checking it
/// give clean errors naming the file; its `[images]` build an image sync configuration or fail.
pub fn fedsite_toml(data: &[u8]) {
    let Some(text) = crate::text(data) else { return };
    let file = crate::scratch().join("fedsite.toml");
    let parsed = match FedsiteToml::parse(&file, text) {
        Ok(p) => p,
        Err(e) => {
            assert!(e.to_string().starts_with(&format!("{}: ", file.display())), "{e}");
            return;
        }
    };
    let out = toml::to_string(&parsed).unwrap_or_else(|e| panic!("a parsed fedsite.toml does not serialise: {e}"));
    let again = FedsiteToml::parse(&file, &out)
        .unwrap_or_else(|e| panic!("re-serialised fedsite.toml does not parse: {e}\n{out}"));
    if !text.contains("nan") {
        assert_eq!(again, parsed, "fedsite.toml changed in a round trip:\n{out}");
    }
    assert_eq!(toml::to_string(&again).expect("serialises"), out);

    std::fs::write(&file, text).expect("writing the scratch fedsite.toml");
    let mut config = Config { file: file.clone(), toml: parsed };
    if let Some(ams) = config.toml.ams.as_mut() {
        // Files named by the input are only stat'ed, never read whole.
        ams.token_file = None;
    }
    let named = |r: Result<(), siteconf::Error>| {
        if let Err(e) = r {
            assert!(e.to_string().contains(&file.display().to_string()), "{e}");
        }
    };
    named(config.extract_config("fedsite").map(|_| ()));
    named(config.style().map(|_| ()));
    named(config.max_records().map(|n| assert!(n >= 1)));
    named(config.path_type().map(|_| ()));
    let env = openstack::Env::new();
    let cwd = crate::scratch();
    let _ = config.cloud_config(&env, cwd);
    named(config.sender_cfg().map(|_| ()));
    let _ = config.ledger();
    let _ = config.spool();
    for f in siteconf::check(&config, &env, cwd) {
        assert!(f.key.starts_with('['), "{f}");
    }
    if let Ok(images) = imagesync::config::parse_toml(text, "fedsite.toml")
        && let Ok(c) = imagesync::SyncConfig::build(None, images)
    {
        assert!(
            c.formats.iter().all(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        );
    }
}
