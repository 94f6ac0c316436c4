//! One test per source layer and one per conflict between layers, for the commands whose
//! settings `siteconf::resolve` owns: `check` (flags, sender.cfg, fedsite.toml, sitecheck's
//! defaults), `receive` (flags, receiver.cfg), `serve` (flags, fedsite.toml, defaults),
//! `images sync` (flags, fedsite.toml), the VO robot's access token (file, variable),
//! `keystone federation|lint`, `probe` and `info`'s publishing (flags, defaults). The
//! precedence is docs/configuration.md's: a flag, then the original tool's file when one is
//! named, then fedsite.toml, then the defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use messaging::config::{PathType, ReceiverCfg, SenderCfg};
use sitecheck::probe::{InfoSource, Probe};
use siteconf::resolve::check::{CheckFlags, check_settings};
use siteconf::resolve::images::{ImagesFlags, sync_config};
use siteconf::resolve::info::{auditor_cloud, swift_target};
use siteconf::resolve::keystone::{FederationFlags, federation_spec, vo_properties};
use siteconf::resolve::probe::{ProbeFlags, probe_settings};
use siteconf::resolve::receive::{ReceiveFlags, Store, receive_plan};
use siteconf::resolve::serve::{ServeFlags, serve_plan};
use siteconf::resolve::token::access_token;
use siteconf::{Config, Error};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// SSM's sender.cfg with `host` (maybe `name:port`), spool `path_type`, certificate and key.
fn sender_cfg(dir: &Path, host: &str, path_type: &str) -> PathBuf {
    let text = format!(
        "[sender]\nprotocol: AMS\n\n[broker]\nhost: {host}\n\n[certificates]\ncertificate: {d}/sender-cert.pem\n\
         key: {d}/sender-key.pem\n\n[messaging]\nams_project: accounting\ndestination: eu-egi-cloud-accounting\n\
         path: {d}/sender-spool\npath_type: {path_type}\n",
        d = dir.display()
    );
    write(dir, "sender.cfg", &text)
}

/// A fedsite.toml with every key `check` and `serve` read.
fn fedsite_toml(dir: &Path) -> PathBuf {
    let text = format!(
        "[site]\nname = \"TEST-SITE\"\n\n[ledger]\npath = \"{d}/toml-ledger.sqlite\"\n\n\
         [spool]\npath = \"{d}/toml-spool\"\nquarantine = \"{d}/toml-quarantine\"\n\n\
         [ams]\nhost = \"toml-ams.example:6443\"\nauthn_url = \"https://toml-ams.example:9443\"\n\
         ca = \"{d}/toml-ca.pem\"\ncertificate = \"{d}/toml-cert.pem\"\nkey = \"{d}/toml-key.pem\"\n",
        d = dir.display()
    );
    write(dir, "fedsite.toml", &text)
}

fn receiver_cfg(dir: &Path) -> ReceiverCfg {
    let text = format!(
        "[receiver]\nprotocol: AMS\n\n[broker]\nhost: msg.example\n\n[certificates]\ncertificate: {d}/rcv-cert.pem\n\
         key: {d}/rcv-key.pem\ncapath: {d}/rcv-capath\n\n[messaging]\nams_project: accounting\n\
         destination: cfg-subscription\npath: {d}/rcv-queue\n",
        d = dir.display()
    );
    ReceiverCfg::parse(dir.join("receiver.cfg"), &text).unwrap()
}

// ------------------------------------------------------------------ check

#[test]
fn check_defaults_when_nothing_is_given() {
    let s = check_settings(&CheckFlags::default(), None).unwrap();
    assert_eq!(s.ams.host, "msg.argo.grnet.gr");
    assert_eq!(s.ams.ports, [443, 8443]);
    assert_eq!(s.ams.ca, None);
    assert_eq!((s.accounting.ledger, s.accounting.spool, s.accounting.quarantine), (None, None, None));
    assert!(!s.accounting.directory_spool);
    assert_eq!((s.cert, s.key), (None, None));
}

#[test]
fn check_flags_alone() {
    let ports = [5671];
    let flags = CheckFlags {
        ams_host: Some("flag-ams.example"),
        ams_ports: &ports,
        ams_ca: Some(Path::new("/flag/ca.pem")),
        ledger: Some("postgresql://flag/ledger"),
        spool: Some(Path::new("/flag/spool")),
        quarantine: Some(Path::new("/flag/quarantine")),
        cert: Some(Path::new("/flag/cert.pem")),
        key: Some(Path::new("/flag/key.pem")),
        ..Default::default()
    };
    let s = check_settings(&flags, None).unwrap();
    assert_eq!((s.ams.host.as_str(), s.ams.ports.as_slice()), ("flag-ams.example", &[5671][..]));
    assert_eq!(s.ams.ca.as_deref(), Some(Path::new("/flag/ca.pem")));
    assert_eq!(s.accounting.ledger.as_deref(), Some("postgresql://flag/ledger"));
    assert_eq!(s.accounting.spool.as_deref(), Some(Path::new("/flag/spool")));
    assert_eq!(s.accounting.quarantine.as_deref(), Some(Path::new("/flag/quarantine")));
    assert_eq!(s.cert.as_deref(), Some(Path::new("/flag/cert.pem")));
    assert_eq!(s.key.as_deref(), Some(Path::new("/flag/key.pem")));
}

#[test]
fn check_sender_cfg_alone_host_port_spool_layout_and_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = sender_cfg(d, "sender-ams.example:6162", "directory");
    let s = check_settings(&CheckFlags { sender_cfg: Some(&cfg), ..Default::default() }, None).unwrap();
    // `[broker] host` name:port: the data API on that port, the token exchange on 8443.
    assert_eq!((s.ams.host.as_str(), s.ams.ports.as_slice()), ("sender-ams.example", &[6162, 8443][..]));
    assert_eq!(s.accounting.spool, Some(d.join("sender-spool")));
    assert!(s.accounting.directory_spool);
    assert_eq!(s.cert, Some(d.join("sender-cert.pem")));
    assert_eq!(s.key, Some(d.join("sender-key.pem")));
    assert_eq!(s.accounting.ledger, None, "sender.cfg names no ledger");
}

#[test]
fn check_fedsite_toml_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let toml = fedsite_toml(d);
    let s = check_settings(&CheckFlags::default(), Some(&toml)).unwrap();
    // `[ams] host` name:port, the token exchange on the port of `[ams] authn_url`.
    assert_eq!((s.ams.host.as_str(), s.ams.ports.as_slice()), ("toml-ams.example", &[6443, 9443][..]));
    assert_eq!(s.ams.ca, Some(d.join("toml-ca.pem")));
    assert_eq!(s.accounting.ledger, Some(d.join("toml-ledger.sqlite").display().to_string()));
    assert_eq!(s.accounting.spool, Some(d.join("toml-spool")));
    assert_eq!(s.accounting.quarantine, Some(d.join("toml-quarantine")));
    assert!(!s.accounting.directory_spool);
    assert_eq!(s.cert, Some(d.join("toml-cert.pem")));
    assert_eq!(s.key, Some(d.join("toml-key.pem")));
}

#[test]
fn check_flags_win_over_sender_cfg() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sender_cfg(dir.path(), "sender-ams.example:6162", "dirq");
    let flags = CheckFlags {
        sender_cfg: Some(&cfg),
        ams_host: Some("flag-ams.example"),
        spool: Some(Path::new("/flag/spool")),
        cert: Some(Path::new("/flag/cert.pem")),
        key: Some(Path::new("/flag/key.pem")),
        ..Default::default()
    };
    let s = check_settings(&flags, None).unwrap();
    // The flag's host has no port: the default ports, not sender.cfg's 6162.
    assert_eq!((s.ams.host.as_str(), s.ams.ports.as_slice()), ("flag-ams.example", &[443, 8443][..]));
    assert_eq!(s.accounting.spool.as_deref(), Some(Path::new("/flag/spool")));
    assert_eq!(s.cert.as_deref(), Some(Path::new("/flag/cert.pem")));
    assert_eq!(s.key.as_deref(), Some(Path::new("/flag/key.pem")));
}

#[test]
fn check_ams_port_flags_win_over_the_hosts_port() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sender_cfg(dir.path(), "sender-ams.example:6162", "dirq");
    let ports = [443];
    let s =
        check_settings(&CheckFlags { sender_cfg: Some(&cfg), ams_ports: &ports, ..Default::default() }, None).unwrap();
    assert_eq!((s.ams.host.as_str(), s.ams.ports.as_slice()), ("sender-ams.example", &[443][..]));
}

#[test]
fn check_flags_win_over_fedsite_toml() {
    let dir = tempfile::tempdir().unwrap();
    let toml = fedsite_toml(dir.path());
    let flags = CheckFlags {
        ams_host: Some("flag-ams.example"),
        ams_ca: Some(Path::new("/flag/ca.pem")),
        ledger: Some("/flag/ledger.sqlite"),
        spool: Some(Path::new("/flag/spool")),
        quarantine: Some(Path::new("/flag/quarantine")),
        cert: Some(Path::new("/flag/cert.pem")),
        ..Default::default()
    };
    let s = check_settings(&flags, Some(&toml)).unwrap();
    assert_eq!((s.ams.host.as_str(), s.ams.ports.as_slice()), ("flag-ams.example", &[443, 8443][..]));
    assert_eq!(s.ams.ca.as_deref(), Some(Path::new("/flag/ca.pem")));
    assert_eq!(s.accounting.ledger.as_deref(), Some("/flag/ledger.sqlite"));
    assert_eq!(s.accounting.spool.as_deref(), Some(Path::new("/flag/spool")));
    assert_eq!(s.accounting.quarantine.as_deref(), Some(Path::new("/flag/quarantine")));
    assert_eq!(s.cert.as_deref(), Some(Path::new("/flag/cert.pem")));
    // The key flag was not given: fedsite.toml's.
    assert_eq!(s.key, Some(dir.path().join("toml-key.pem")));
}

#[test]
fn check_a_named_sender_cfg_replaces_fedsite_toml_which_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = sender_cfg(d, "sender-ams.example", "dirq");
    let good = fedsite_toml(d);
    let s = check_settings(&CheckFlags { sender_cfg: Some(&cfg), ..Default::default() }, Some(&good)).unwrap();
    assert_eq!(s.ams.host, "sender-ams.example");
    assert_eq!(s.accounting.spool, Some(d.join("sender-spool")));
    // fedsite.toml's keys lose, even those sender.cfg does not have.
    assert_eq!((s.accounting.ledger, s.accounting.quarantine, s.ams.ca), (None, None, None));
    // Not read at all: a broken one is no error.
    let broken = write(d, "broken.toml", "[ledgr]\npath = 1\n");
    assert!(check_settings(&CheckFlags::default(), Some(&broken)).is_err());
    assert!(check_settings(&CheckFlags { sender_cfg: Some(&cfg), ..Default::default() }, Some(&broken)).is_ok());
}

#[test]
fn check_an_unreadable_sender_cfg_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.cfg");
    let e = check_settings(&CheckFlags { sender_cfg: Some(&missing), ..Default::default() }, None).unwrap_err();
    assert!(matches!(&e, Error::Ssm { file, .. } if file == &missing), "{e:?}");
    assert!(e.to_string().contains("nope.cfg"), "{e}");
}

// ------------------------------------------------------------------ receive

#[test]
fn receive_flags_alone() {
    let flags = ReceiveFlags {
        subscription: Some("flag-sub"),
        cert: Some(Path::new("/flag/cert.pem")),
        key: Some(Path::new("/flag/key.pem")),
        capath: Some(Path::new("/flag/capath")),
        queue: Some(Path::new("/flag/queue")),
        records: None,
    };
    let p = receive_plan(&flags, None).unwrap();
    assert_eq!(p.subscription, "flag-sub");
    assert_eq!(p.cert.as_deref(), Some(Path::new("/flag/cert.pem")));
    assert_eq!(p.key.as_deref(), Some(Path::new("/flag/key.pem")));
    assert_eq!(p.capath().unwrap(), Path::new("/flag/capath"));
    assert_eq!(p.store().unwrap(), &Store::Queue("/flag/queue".into()));
}

#[test]
fn receive_receiver_cfg_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = receiver_cfg(d);
    let p = receive_plan(&ReceiveFlags::default(), Some(&cfg)).unwrap();
    assert_eq!(p.subscription, "cfg-subscription");
    assert_eq!(p.cert, Some(d.join("rcv-cert.pem")));
    assert_eq!(p.key, Some(d.join("rcv-key.pem")));
    assert_eq!(p.capath().unwrap(), d.join("rcv-capath"));
    assert_eq!(p.store().unwrap(), &Store::Queue(d.join("rcv-queue")));
}

#[test]
fn receive_flags_win_over_receiver_cfg() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = receiver_cfg(dir.path());
    let flags = ReceiveFlags {
        subscription: Some("flag-sub"),
        cert: Some(Path::new("/flag/cert.pem")),
        key: Some(Path::new("/flag/key.pem")),
        capath: Some(Path::new("/flag/capath")),
        queue: Some(Path::new("/flag/queue")),
        records: None,
    };
    let p = receive_plan(&flags, Some(&cfg)).unwrap();
    assert_eq!(p.subscription, "flag-sub");
    assert_eq!(p.cert.as_deref(), Some(Path::new("/flag/cert.pem")));
    assert_eq!(p.key.as_deref(), Some(Path::new("/flag/key.pem")));
    assert_eq!(p.capath().unwrap(), Path::new("/flag/capath"));
    assert_eq!(p.store().unwrap(), &Store::Queue("/flag/queue".into()));
}

#[test]
fn receive_records_win_over_the_queue_and_the_cfgs_path() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = receiver_cfg(dir.path());
    let flags = ReceiveFlags { records: Some(Path::new("/flag/records.sqlite")), ..Default::default() };
    let p = receive_plan(&flags, Some(&cfg)).unwrap();
    assert_eq!(p.store().unwrap(), &Store::Records("/flag/records.sqlite".into()));
    let both = ReceiveFlags { subscription: Some("s"), queue: Some(Path::new("/flag/queue")), ..flags };
    assert_eq!(receive_plan(&both, None).unwrap().store().unwrap(), &Store::Records("/flag/records.sqlite".into()));
}

#[test]
fn receive_says_what_is_missing_and_where_to_give_it() {
    let e = receive_plan(&ReceiveFlags::default(), None).unwrap_err();
    assert_eq!(e.to_string(), "no subscription: --subscription or [messaging] destination");
    let p = receive_plan(&ReceiveFlags { subscription: Some("s"), ..Default::default() }, None).unwrap();
    assert_eq!(p.capath().unwrap_err().to_string(), "no CA to verify signers: --capath or [certificates] capath");
    assert_eq!(p.store().unwrap_err().to_string(), "no store: --queue, --records or [messaging] path");
    assert_eq!((p.cert, p.key), (None, None));
}

// ------------------------------------------------------------------ serve

#[test]
fn serve_defaults_without_flags_or_file() {
    let p = serve_plan(&ServeFlags::default(), None);
    assert_eq!(p.ledger, siteconf::resolve::default_ledger());
    assert_eq!((p.spool, p.extract_argv, p.send_argv), (None, None, None));
}

#[test]
fn serve_flags_alone() {
    let extract = vec!["--os-cloud=site".to_string()];
    let flags = ServeFlags {
        ledger: Some(Path::new("/flag/ledger.sqlite")),
        spool: Some(Path::new("/flag/spool")),
        extract_args: &extract,
        send_args: &[],
    };
    let p = serve_plan(&flags, None);
    assert_eq!(p.ledger, Path::new("/flag/ledger.sqlite"));
    assert_eq!(p.spool.as_deref(), Some(Path::new("/flag/spool")));
    // The stage gets the serve's ledger.
    assert_eq!(p.extract_argv.unwrap(), ["--os-cloud=site", "--ledger=/flag/ledger.sqlite"]);
    assert_eq!(p.send_argv, None);
}

#[test]
fn serve_fedsite_toml_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = Config::load(&fedsite_toml(d)).unwrap();
    let p = serve_plan(&ServeFlags::default(), Some(&file));
    assert_eq!(p.ledger, d.join("toml-ledger.sqlite"));
    assert_eq!(p.spool, Some(d.join("toml-spool")));
}

#[test]
fn serve_flags_win_over_fedsite_toml() {
    let dir = tempfile::tempdir().unwrap();
    let file = Config::load(&fedsite_toml(dir.path())).unwrap();
    let send = vec!["--sender-cfg=/etc/apel/sender.cfg".to_string()];
    let flags = ServeFlags {
        ledger: Some(Path::new("/flag/ledger.sqlite")),
        spool: Some(Path::new("/flag/spool")),
        extract_args: &[],
        send_args: &send,
    };
    let p = serve_plan(&flags, Some(&file));
    assert_eq!(p.ledger, Path::new("/flag/ledger.sqlite"));
    assert_eq!(p.spool.as_deref(), Some(Path::new("/flag/spool")));
    assert_eq!(p.send_argv.unwrap(), ["--sender-cfg=/etc/apel/sender.cfg", "--ledger=/flag/ledger.sqlite"]);
}

#[test]
fn serve_a_stages_own_ledger_wins_over_the_serves() {
    let dir = tempfile::tempdir().unwrap();
    let file = Config::load(&fedsite_toml(dir.path())).unwrap();
    for own in [vec!["--ledger".to_string(), "/own.sqlite".to_string()], vec!["--ledger=/own.sqlite".to_string()]] {
        let p = serve_plan(&ServeFlags { extract_args: &own, ..Default::default() }, Some(&file));
        assert_eq!(p.extract_argv.unwrap(), own, "no second --ledger");
    }
}

#[test]
fn serve_runs_and_interval_go_together() {
    let extract = vec!["--os-cloud=site".to_string()];
    let with_runs = serve_plan(&ServeFlags { extract_args: &extract, ..Default::default() }, None);
    let without = serve_plan(&ServeFlags::default(), None);
    let every = Some(Duration::from_secs(60));
    assert!(with_runs.check_schedule(every).is_ok());
    assert!(without.check_schedule(None).is_ok());
    assert_eq!(with_runs.check_schedule(None).unwrap_err().to_string(), "--extract-arg/--send-arg need --every");
    assert_eq!(
        without.check_schedule(every).unwrap_err().to_string(),
        "--every needs --extract-arg and/or --send-arg (what to run)"
    );
}

// ------------------------------------------------------------------ images sync

fn site_yaml(dir: &Path, name: &str, sync: bool) -> PathBuf {
    let text = format!(
        "gocdb: TEST-SITE\nendpoint: https://keystone.example:5000/v3\nimages:\n  sync: {sync}\n  formats: [qcow2]\n\
         vos:\n- name: {name}\n  auth:\n    project_id: p-{name}\n"
    );
    write(dir, &format!("{name}.yaml"), &text)
}

#[test]
fn images_site_flag_alone() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_yaml(dir.path(), "flagvo", true);
    let cfg = sync_config(&ImagesFlags { site: Some(&site), cache_dir: None }, None).unwrap();
    assert!(cfg.enabled);
    assert_eq!(cfg.vos.get("flagvo").map(String::as_str), Some("p-flagvo"));
}

#[test]
fn images_fedsite_toml_alone_names_the_site_file_and_the_images_section() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let site = site_yaml(d, "tomlvo", true);
    let toml = write(
        d,
        "fedsite.toml",
        &format!(
            "[site]\nname = \"TEST-SITE\"\ncatchall_yaml = \"{}\"\n\n[images]\ncache_dir = \"{}/toml-cache\"\n",
            site.display(),
            d.display()
        ),
    );
    let cfg = sync_config(&ImagesFlags::default(), Some(&toml)).unwrap();
    assert_eq!(cfg.vos.get("tomlvo").map(String::as_str), Some("p-tomlvo"));
    assert_eq!(cfg.cache_dir, d.join("toml-cache"));
}

#[test]
fn images_flags_win_over_fedsite_toml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let toml_site = site_yaml(d, "tomlvo", true);
    let flag_site = site_yaml(d, "flagvo", false);
    let toml = write(
        d,
        "fedsite.toml",
        &format!(
            "[site]\nname = \"TEST-SITE\"\ncatchall_yaml = \"{}\"\n\n[images]\ncache_dir = \"{}/toml-cache\"\n",
            toml_site.display(),
            d.display()
        ),
    );
    let flags = ImagesFlags { site: Some(&flag_site), cache_dir: Some(Path::new("/flag/cache")) };
    let cfg = sync_config(&flags, Some(&toml)).unwrap();
    assert!(!cfg.enabled, "the flag's site file says sync: false");
    assert_eq!(cfg.vos.keys().collect::<Vec<_>>(), ["flagvo"]);
    assert_eq!(cfg.cache_dir, Path::new("/flag/cache"));
}

#[test]
fn images_without_a_site_file_or_fedsite_toml_says_what_to_give() {
    let e = sync_config(&ImagesFlags::default(), None).unwrap_err();
    assert!(matches!(e, Error::NoImagesSource), "{e:?}");
    assert!(e.to_string().contains("--site sites/<SITE>.yaml"), "{e}");
}

// ------------------------------------------------------------------ the robot's access token

#[test]
fn token_from_the_variable_alone() {
    assert_eq!(access_token(None, Some("from-env")).unwrap().as_deref(), Some("from-env"));
    assert_eq!(access_token(None, None).unwrap(), None);
}

#[test]
fn token_from_the_file_alone_its_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "token", "  from-file  \nsecond line\n");
    assert_eq!(access_token(Some(&f), None).unwrap().as_deref(), Some("from-file"));
}

#[test]
fn token_file_wins_over_the_variable_and_a_bad_file_is_no_fall_back() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "token", "from-file\n");
    assert_eq!(access_token(Some(&f), Some("from-env")).unwrap().as_deref(), Some("from-file"));
    let empty = write(dir.path(), "empty", "\n");
    assert!(access_token(Some(&empty), Some("from-env")).is_err());
    assert!(access_token(Some(&dir.path().join("none")), Some("from-env")).is_err());
}

#[test]
fn sender_cfg_type_is_what_the_check_reads() {
    // The helper's files parse as SSM's would (a guard on the fixtures above).
    let dir = tempfile::tempdir().unwrap();
    let c = SenderCfg::load(sender_cfg(dir.path(), "h", "directory")).unwrap();
    assert_eq!(c.path_type, PathType::Directory);
}

// ------------------------------------------------------------------ keystone federation

fn federation_flags<'a>(vos: &'a [String], entitlements: &'a [String]) -> FederationFlags<'a> {
    FederationFlags {
        vos,
        entitlements,
        idp: "egi.eu",
        issuer: None,
        demo: false,
        mapping: "egi-mapping",
        protocol: "openid",
        role: "member",
        group_domain: "default",
    }
}

#[test]
fn keystone_defaults_the_production_issuer_and_each_vos_project_is_its_name() {
    let vos = vec!["fedcloud.egi.eu".to_string(), "ops=ops-project".to_string()];
    let spec = federation_spec(&federation_flags(&vos, &[])).unwrap();
    assert_eq!(spec.issuer, sitecheck::federation::EGI_ISSUER);
    let got: Vec<(&str, &str)> = spec.vos.iter().map(|v| (v.vo.as_str(), v.project.as_str())).collect();
    assert_eq!(got, [("fedcloud.egi.eu", "fedcloud.egi.eu"), ("ops", "ops-project")]);
}

#[test]
fn keystone_demo_flag_alone_is_the_demo_issuer() {
    let spec = federation_spec(&FederationFlags { demo: true, ..federation_flags(&[], &[]) }).unwrap();
    assert_eq!(spec.issuer, sitecheck::federation::EGI_DEMO_ISSUER);
}

#[test]
fn keystone_issuer_flag_wins_over_demo() {
    let flags = FederationFlags { demo: true, issuer: Some("https://issuer.example"), ..federation_flags(&[], &[]) };
    assert_eq!(federation_spec(&flags).unwrap().issuer, "https://issuer.example");
}

#[test]
fn keystone_an_entitlement_flag_wins_over_the_vos_default_entitlement() {
    let vos = vec!["ops".to_string(), "vo.example".to_string()];
    let default = federation_spec(&federation_flags(&vos, &[])).unwrap();
    let ents = vec!["ops = urn:example:ops".to_string()];
    let spec = federation_spec(&federation_flags(&vos, &ents)).unwrap();
    assert_eq!(spec.vos[0].entitlement, "urn:example:ops");
    assert_ne!(default.vos[0].entitlement, "urn:example:ops");
    assert_eq!(spec.vos[1].entitlement, default.vos[1].entitlement, "the other VO keeps its default");
}

#[test]
fn keystone_bad_flags_name_the_flag() {
    let vos = vec!["ops".to_string()];
    let e = federation_spec(&FederationFlags { protocol: "saml2", ..federation_flags(&vos, &[]) }).unwrap_err();
    assert_eq!(e.to_string(), "--protocol saml2: expected openid or oidc");
    let ents = vec!["nourn".to_string()];
    assert_eq!(
        federation_spec(&federation_flags(&vos, &ents)).unwrap_err().to_string(),
        "--entitlement \"nourn\": expected VO=URN"
    );
    let ents = vec!["other=urn:x".to_string()];
    assert_eq!(
        federation_spec(&federation_flags(&vos, &ents)).unwrap_err().to_string(),
        "--entitlement \"other=urn:x\": VO other is not given with --vo"
    );
    let bad_vo = vec!["=p".to_string()];
    assert!(federation_spec(&federation_flags(&bad_vo, &[])).unwrap_err().to_string().starts_with("--vo "));
}

#[test]
fn keystone_vo_property_flag_wins_over_the_default_list() {
    assert_eq!(vo_properties(None), ["egi.VO", "egi.eu:VO", "egi.eu_VO", "VO"]);
    assert_eq!(vo_properties(Some("my.vo")), ["my.vo"]);
}

// ------------------------------------------------------------------ info publishing

#[test]
fn info_swift_object_and_cloud_flags_win_over_the_defaults() {
    assert_eq!(swift_target(None, Some("x.json"), Some("c"), "SITE"), None, "no container, no upload");
    let t = swift_target(Some("glue"), None, None, "TEST-SITE").unwrap();
    assert_eq!((t.container.as_str(), t.object.as_str(), t.cloud), ("glue", "TEST-SITE.json", None));
    let t = swift_target(Some("glue"), Some("site.json"), Some("swift-account"), "TEST-SITE").unwrap();
    assert_eq!((t.object.as_str(), t.cloud.as_deref()), ("site.json", Some("swift-account")));
}

#[test]
fn info_an_empty_auditor_cloud_is_none() {
    assert_eq!(auditor_cloud(Some("")), None);
    assert_eq!(auditor_cloud(None), None);
    assert_eq!(auditor_cloud(Some("auditor")), Some("auditor"));
}

// ------------------------------------------------------------------ probe

fn probe_flags() -> ProbeFlags<'static> {
    ProbeFlags { timeout_secs: 120, vo: "ops", connect_timeout_secs: 10, vm_poll_secs: 2.0, ..Default::default() }
}

#[test]
fn probe_defaults_are_argos_thresholds() {
    let s = probe_settings("info".parse::<Probe>().unwrap(), &probe_flags()).unwrap();
    let d = sitecheck::probe::Settings::default();
    assert_eq!((s.info_warn, s.info_crit), (d.info_warn, d.info_crit));
    assert_eq!((s.accounting_warn, s.accounting_crit), (d.accounting_warn, d.accounting_crit));
    assert_eq!(s.info, None);
    assert_eq!(s.vo, "ops");
}

#[test]
fn probe_thresholds_flags_win_for_the_probes_own_age_only() {
    let flags = ProbeFlags { warning_days: Some(2.0), critical_days: Some(0.5), ..probe_flags() };
    let d = sitecheck::probe::Settings::default();
    let info = probe_settings("info".parse::<Probe>().unwrap(), &flags).unwrap();
    assert_eq!((info.info_warn, info.info_crit), (chrono::Duration::days(2), chrono::Duration::hours(12)));
    assert_eq!((info.accounting_warn, info.accounting_crit), (d.accounting_warn, d.accounting_crit));
    let acc = probe_settings("accounting".parse::<Probe>().unwrap(), &flags).unwrap();
    assert_eq!((acc.accounting_warn, acc.accounting_crit), (chrono::Duration::days(2), chrono::Duration::hours(12)));
    assert_eq!((acc.info_warn, acc.info_crit), (d.info_warn, d.info_crit));
}

#[test]
fn probe_info_location_wins_over_the_swift_object() {
    let swift = ProbeFlags { swift_container: Some("glue"), swift_object: Some("SITE.json"), ..probe_flags() };
    let s = probe_settings("info".parse::<Probe>().unwrap(), &swift).unwrap();
    assert!(
        matches!(&s.info, Some(InfoSource::Swift { container, object }) if container == "glue" && object == "SITE.json")
    );
    let both = ProbeFlags { info: Some("https://site.example/glue.json"), ..swift };
    let s = probe_settings("info".parse::<Probe>().unwrap(), &both).unwrap();
    assert!(matches!(&s.info, Some(InfoSource::Location(l)) if l == "https://site.example/glue.json"));
    let container_only = ProbeFlags { swift_object: None, ..swift };
    assert!(probe_settings("info".parse::<Probe>().unwrap(), &container_only).unwrap().info.is_none());
}

#[test]
fn probe_flags_alone_reach_the_check_settings() {
    let vos = vec!["biomed".to_string()];
    let flags = ProbeFlags {
        timeout_secs: 0,
        region: Some("RegionTwo"),
        image: Some("img"),
        ledger: Some("/flag/ledger.sqlite"),
        vm_poll_secs: 1000.0,
        publishes_vo: &vos,
        ..probe_flags()
    };
    let s = probe_settings("vm".parse::<Probe>().unwrap(), &flags).unwrap();
    assert_eq!(s.timeout, Duration::from_secs(1), "at least one second");
    assert_eq!(s.check.region.as_deref(), Some("RegionTwo"));
    assert_eq!(s.check.probe.image.as_deref(), Some("img"));
    assert_eq!(s.check.accounting.ledger.as_deref(), Some("/flag/ledger.sqlite"));
    assert_eq!(s.check.probe.poll_interval, Duration::from_secs(60));
    assert_eq!(s.check.vos.iter().map(|v| v.vo.as_str()).collect::<Vec<_>>(), ["biomed"]);
    let bad = vec!["=x".to_string()];
    let e = probe_settings("vm".parse::<Probe>().unwrap(), &ProbeFlags { publishes_vo: &bad, ..probe_flags() });
    assert!(e.unwrap_err().to_string().starts_with("--publishes-vo "));
}
