//! One test per source layer and one per conflict between layers for `fedsite send`
//! (`siteconf::resolve::send`): the flags, SSM's sender.cfg, fedsite.toml (`[ams]`, `[spool]`,
//! `[ledger]`, `[[destination]]`), the `REQUESTS_CA_BUNDLE` environment and the defaults. The
//! precedence is docs/configuration.md's: a flag, then sender.cfg when one is named
//! (fedsite.toml is then not read), then fedsite.toml, then the defaults.

use std::path::{Path, PathBuf};

use messaging::ams::Auth;
use messaging::config::PathType;
use openstack::config::Env;
use siteconf::Config;
use siteconf::resolve::send::{AmsSettings, SendFlags, send_plan};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn no_env() -> Env {
    Env::new()
}

/// SSM's sender.cfg with `host`, spool `path_type`, certificate and key.
fn sender_cfg(dir: &Path, host: &str, path_type: &str) -> PathBuf {
    let text = format!(
        "[sender]\nprotocol: AMS\n\n[broker]\nhost: {host}\n\n[certificates]\ncertificate: {d}/sender-cert.pem\n\
         key: {d}/sender-key.pem\n\n[messaging]\nams_project: cfg-project\ndestination: cfg-topic\n\
         path: {d}/sender-spool\npath_type: {path_type}\n",
        d = dir.display()
    );
    write(dir, "sender.cfg", &text)
}

/// A fedsite.toml with `[ams]`, `[spool]` and `[ledger]`, and `extra` after them.
fn fedsite_toml(dir: &Path, extra: &str) -> Config {
    let text = format!(
        "[site]\nname = \"TEST-SITE\"\n\n[ledger]\npath = \"{d}/toml-ledger.sqlite\"\n\n\
         [spool]\npath = \"{d}/toml-spool\"\nquarantine = \"{d}/toml-quarantine\"\n\n\
         [ams]\nhost = \"toml-ams.example:6443\"\nauthn_url = \"https://toml-ams.example:9443\"\nproject = \"toml-project\"\n\
         topic = \"toml-topic\"\nca = \"{d}/toml-ca.pem\"\ncertificate = \"{d}/toml-cert.pem\"\nkey = \"{d}/toml-key.pem\"\n{extra}",
        d = dir.display()
    );
    Config::load(&write(dir, "fedsite.toml", &text)).unwrap()
}

const TWO: &str = "\n[[destination]]\nname = \"compute\"\nrecord_types = [\"cloud\", \"ip\"]\nspool = \"/d/compute\"\n\n\
     [[destination]]\nname = \"block\"\nrecord_types = [\"storage\"]\nspool = \"/d/block\"\n\
     topic = \"block-topic\"\nhost = \"other.example.org\"\nproject = \"storage\"\n";

fn x509(auth: &Auth) -> (String, String, PathBuf, PathBuf) {
    match auth {
        Auth::X509 { authn_base, host, cert, key } => (authn_base.to_string(), host.clone(), cert.clone(), key.clone()),
        Auth::Token(_) => panic!("a static token, not the X.509 exchange"),
    }
}

#[test]
fn send_flags_alone() {
    let ams = AmsSettings {
        ams_url: Some("https://flag-ams.example:7443".into()),
        project: Some("flag-project".into()),
        cert: Some("/flag/cert.pem".into()),
        key: Some("/flag/key.pem".into()),
        concurrency: 4,
        timeout_secs: 10,
        ..Default::default()
    };
    let flags = SendFlags {
        ams,
        spool: Some(Path::new("/flag/spool")),
        topic: Some("flag-topic"),
        path_type: Some("directory"),
        chunk: 0,
        ..Default::default()
    };
    let plan = send_plan(&flags, None).unwrap();
    assert_eq!((plan.targets.len(), plan.ledger), (1, None), "no ledger: nothing recorded");
    let t = plan.targets[0].resolve(&flags).unwrap();
    assert_eq!((t.options.spool.as_path(), t.options.topic.as_str()), (Path::new("/flag/spool"), "flag-topic"));
    assert_eq!(t.options.path_type, PathType::Directory);
    assert_eq!(t.options.quarantine, messaging::sender::default_quarantine(Path::new("/flag/spool")));
    assert_eq!(t.options.chunk, 1, "at least one message per round");
    assert!(t.options.validate);
    assert_eq!((t.cert.as_path(), t.key.as_path()), (Path::new("/flag/cert.pem"), Path::new("/flag/key.pem")));
    let c = t.ams_config(&no_env()).unwrap();
    assert_eq!(
        (c.base_url.as_str(), c.project.as_str(), c.ca.as_deref()),
        ("https://flag-ams.example:7443/", "flag-project", None)
    );
    let (authn, host, _, _) = x509(&c.auth);
    assert_eq!((authn.as_str(), host.as_str()), ("https://flag-ams.example:8443/", "flag-ams.example"));
}

#[test]
fn send_flags_alone_say_what_is_missing_in_the_order_the_send_needs_it() {
    let err =
        |flags: &SendFlags<'_>| send_plan(flags, None).unwrap().targets[0].resolve(flags).unwrap_err().to_string();
    assert_eq!(err(&SendFlags::default()), "no spool: --spool or [messaging] path");
    let flags = SendFlags { spool: Some(Path::new("/s")), ..Default::default() };
    assert_eq!(err(&flags), "no topic: --topic or [messaging] destination");
    let flags = SendFlags { topic: Some("t"), path_type: Some("queue"), ..flags };
    assert_eq!(err(&flags), "--path-type \"queue\": expected dirq or directory");
    let flags = SendFlags { path_type: None, ..flags };
    assert_eq!(err(&flags), "signing needs --cert or [certificates] certificate");
    let ams = AmsSettings { cert: Some("/c".into()), key: Some("/k".into()), ..Default::default() };
    let flags = SendFlags { ams, ..flags };
    let t = send_plan(&flags, None).unwrap().targets[0].resolve(&flags).unwrap();
    assert_eq!(
        t.ams_config(&no_env()).unwrap_err().to_string(),
        "no AMS project: --project or [messaging] ams_project"
    );
    let ams = AmsSettings { project: Some("p".into()), ..t.ams.clone() };
    let e = ams.config(None, None, None, &no_env()).unwrap_err().to_string();
    assert!(e.starts_with("no AMS address: --ams-url"), "{e}");
}

#[test]
fn send_sender_cfg_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = sender_cfg(d, "cfg-ams.example:6162", "directory");
    let flags = SendFlags { sender_cfg: Some(&cfg), ..Default::default() };
    let plan = send_plan(&flags, None).unwrap();
    assert_eq!((plan.targets.len(), plan.targets[0].name.as_deref(), plan.ledger.as_deref()), (1, None, None));
    let t = plan.targets[0].resolve(&flags).unwrap();
    assert_eq!((t.options.spool.clone(), t.options.topic.as_str()), (d.join("sender-spool"), "cfg-topic"));
    assert_eq!(t.options.path_type, PathType::Directory);
    assert_eq!((t.cert.clone(), t.key.clone()), (d.join("sender-cert.pem"), d.join("sender-key.pem")));
    let c = t.ams_config(&no_env()).unwrap();
    assert_eq!((c.base_url.as_str(), c.project.as_str()), ("https://cfg-ams.example:6162/", "cfg-project"));
    let (authn, host, cert, _) = x509(&c.auth);
    assert_eq!(
        (authn.as_str(), host.as_str(), cert),
        ("https://cfg-ams.example:8443/", "cfg-ams.example", d.join("sender-cert.pem"))
    );
}

#[test]
fn send_flags_win_over_sender_cfg() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = sender_cfg(d, "cfg-ams.example", "directory");
    let ams = AmsSettings {
        ams_url: Some("https://flag-ams.example".into()),
        project: Some("flag-project".into()),
        token: Some("flag-token".into()),
        cert: Some("/flag/cert.pem".into()),
        ..Default::default()
    };
    let flags = SendFlags {
        sender_cfg: Some(&cfg),
        ams,
        spool: Some(Path::new("/flag/spool")),
        topic: Some("flag-topic"),
        path_type: Some("dirq"),
        quarantine: Some(Path::new("/flag/q")),
        ..Default::default()
    };
    let t = send_plan(&flags, None).unwrap().targets[0].resolve(&flags).unwrap();
    assert_eq!((t.options.spool.as_path(), t.options.topic.as_str()), (Path::new("/flag/spool"), "flag-topic"));
    assert_eq!((t.options.path_type, t.options.quarantine.as_path()), (PathType::Dirq, Path::new("/flag/q")));
    assert_eq!((t.cert.as_path(), t.key.clone()), (Path::new("/flag/cert.pem"), d.join("sender-key.pem")));
    let c = t.ams_config(&no_env()).unwrap();
    assert_eq!((c.base_url.as_str(), c.project.as_str()), ("https://flag-ams.example/", "flag-project"));
    assert!(matches!(&c.auth, Auth::Token(t) if t == "flag-token"));
}

#[test]
fn send_a_named_sender_cfg_replaces_fedsite_toml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = fedsite_toml(d, "");
    let cfg = sender_cfg(d, "cfg-ams.example", "dirq");
    let flags = SendFlags { sender_cfg: Some(&cfg), ..Default::default() };
    let plan = send_plan(&flags, Some(&file)).unwrap();
    assert_eq!(plan.ledger, None, "not [ledger] path");
    let t = plan.targets[0].resolve(&flags).unwrap();
    assert_eq!(t.options.quarantine, messaging::sender::default_quarantine(&d.join("sender-spool")));
    assert_eq!(t.ams_config(&no_env()).unwrap().ca, None, "not [ams] ca");
}

#[test]
fn send_an_unreadable_sender_cfg_is_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.cfg");
    let e = send_plan(&SendFlags { sender_cfg: Some(&missing), ..Default::default() }, None).unwrap_err();
    assert!(e.to_string().contains("nope.cfg"), "{e}");
}

#[test]
fn send_fedsite_toml_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = fedsite_toml(d, "");
    let flags = SendFlags::default();
    let plan = send_plan(&flags, Some(&file)).unwrap();
    assert_eq!(plan.ledger, Some(d.join("toml-ledger.sqlite")));
    assert_eq!((plan.targets.len(), plan.targets[0].name.as_deref()), (1, None));
    let t = plan.targets[0].resolve(&flags).unwrap();
    assert_eq!((t.options.spool.clone(), t.options.topic.as_str()), (d.join("toml-spool"), "toml-topic"));
    assert_eq!(t.options.quarantine, d.join("toml-quarantine"));
    assert_eq!((t.cert.clone(), t.key.clone()), (d.join("toml-cert.pem"), d.join("toml-key.pem")));
    let c = t.ams_config(&no_env()).unwrap();
    assert_eq!((c.base_url.as_str(), c.project.as_str()), ("https://toml-ams.example:6443/", "toml-project"));
    assert_eq!(c.ca, Some(d.join("toml-ca.pem")));
    assert_eq!(x509(&c.auth).0, "https://toml-ams.example:9443/");
}

#[test]
fn send_flags_win_over_fedsite_toml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = fedsite_toml(d, "");
    let ams = AmsSettings {
        authn_url: Some("https://flag-authn.example".into()),
        ca: Some("/flag/ca.pem".into()),
        key: Some("/flag/key.pem".into()),
        ..Default::default()
    };
    let flags = SendFlags {
        ams,
        ledger: Some(Path::new("/flag/ledger.sqlite")),
        quarantine: Some(Path::new("/flag/q")),
        server_cert: Some(Path::new("/flag/server.pem")),
        ..Default::default()
    };
    let plan = send_plan(&flags, Some(&file)).unwrap();
    assert_eq!(plan.ledger.as_deref(), Some(Path::new("/flag/ledger.sqlite")));
    let t = plan.targets[0].resolve(&flags).unwrap();
    assert_eq!(t.options.quarantine, Path::new("/flag/q"));
    assert_eq!((t.cert.clone(), t.key.as_path()), (d.join("toml-cert.pem"), Path::new("/flag/key.pem")));
    assert_eq!(t.server_cert.as_deref(), Some(Path::new("/flag/server.pem")));
    let c = t.ams_config(&no_env()).unwrap();
    assert_eq!(c.ca.as_deref(), Some(Path::new("/flag/ca.pem")));
    assert_eq!(x509(&c.auth).0, "https://flag-authn.example/");
}

#[test]
fn send_the_ca_variable_is_below_the_flag_and_fedsite_toml() {
    let env: Env = [("REQUESTS_CA_BUNDLE".to_string(), "/env/ca.pem".to_string())].into_iter().collect();
    let s = AmsSettings { token: Some("t".into()), project: Some("p".into()), ..Default::default() };
    assert_eq!(s.config(Some("h"), None, None, &env).unwrap().ca.as_deref(), Some(Path::new("/env/ca.pem")));
    let flag = AmsSettings { ca: Some("/flag/ca.pem".into()), ..s.clone() };
    assert_eq!(flag.config(Some("h"), None, None, &env).unwrap().ca.as_deref(), Some(Path::new("/flag/ca.pem")));
    // fedsite.toml's [ams] ca is merged into the settings as a flag would be, so it wins too.
    let dir = tempfile::tempdir().unwrap();
    let file = fedsite_toml(dir.path(), "");
    let flags = SendFlags::default();
    let t = send_plan(&flags, Some(&file)).unwrap().targets[0].resolve(&flags).unwrap();
    assert_eq!(t.ams_config(&env).unwrap().ca, Some(dir.path().join("toml-ca.pem")));
}

#[test]
fn send_a_token_flag_wins_over_the_files_token() {
    let s = AmsSettings { project: Some("p".into()), ..Default::default() };
    let c = s.config(Some("h"), None, Some("file-token"), &no_env()).unwrap();
    assert!(matches!(&c.auth, Auth::Token(t) if t == "file-token"));
    let s = AmsSettings { token: Some("flag-token".into()), ..s };
    let c = s.config(Some("h"), None, Some("file-token"), &no_env()).unwrap();
    assert!(matches!(&c.auth, Auth::Token(t) if t == "flag-token"));
}

#[test]
fn send_fedsite_toml_destinations_each_a_target_and_destination_picks_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = fedsite_toml(dir.path(), TWO);
    let flags = SendFlags::default();
    let plan = send_plan(&flags, Some(&file)).unwrap();
    let names: Vec<_> = plan.targets.iter().map(|t| t.name.clone()).collect();
    assert_eq!(names, [Some("compute".to_string()), Some("block".to_string())]);
    let block = plan.targets[1].resolve(&flags).unwrap();
    assert_eq!((block.options.spool.as_path(), block.options.topic.as_str()), (Path::new("/d/block"), "block-topic"));
    let c = block.ams_config(&no_env()).unwrap();
    assert_eq!((c.base_url.as_str(), c.project.as_str()), ("https://other.example.org/", "storage"));
    // Its own host: not [ams]'s authn_url.
    assert_eq!(x509(&c.auth).0, "https://other.example.org:8443/");

    let flags = SendFlags { destination: Some("block"), ..Default::default() };
    let plan = send_plan(&flags, Some(&file)).unwrap();
    assert_eq!(plan.targets.iter().map(|t| t.name.clone()).collect::<Vec<_>>(), [Some("block".to_string())]);
    let flags = SendFlags { destination: Some("nope"), ..Default::default() };
    let e = send_plan(&flags, Some(&file)).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("--destination nope: {} has no such destination (it has: compute, block)", file.file.display())
    );
}

#[test]
fn send_a_spool_flag_wins_over_fedsite_toml_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let file = fedsite_toml(dir.path(), TWO);
    let flags = SendFlags { spool: Some(Path::new("/flag/spool")), ..Default::default() };
    let plan = send_plan(&flags, Some(&file)).unwrap();
    assert_eq!((plan.targets.len(), plan.targets[0].name.as_deref()), (1, None));
    let flags = SendFlags { destination: Some("block"), ..flags };
    let e = send_plan(&flags, Some(&file)).unwrap_err().to_string();
    assert_eq!(e, "--destination needs fedsite.toml [[destination]] tables (and no --sender-cfg / --spool)");
}
