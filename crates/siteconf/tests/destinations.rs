//! `[[destination]]` tables: parsed and checked when the file is read (unknown kind, a kind
//! or spool twice: errors naming the file and key), resolved layer by layer (a destination's
//! own AMS keys over `[ams]`'s, `[ams]`'s over the defaults), no table = today's one
//! destination exactly, kinds routed nowhere a `config check` warning, and caso.conf's
//! messengers carried over by `config import`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use apel::RecordKind::{self, Accelerator, Cloud, Energy, Ip, Storage};
use siteconf::{Config, Level};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

const HEAD: &str = "[site]\nname = \"TEST-SITE\"\n\n[ams]\nhost = \"msg.argo.grnet.gr\"\nproject = \"accounting\"\n";

fn two(dir: &Path) -> String {
    format!(
        "{HEAD}\n[[destination]]\nname = \"compute\"\nrecord_types = [\"cloud\", \"ip\"]\nspool = \"{d}/compute\"\n\n\
         [[destination]]\nname = \"block\"\nrecord_types = [\"storage\"]\nspool = \"{d}/block\"\n\
         topic = \"eu-egi-storage-accounting\"\nhost = \"other.example.org\"\nproject = \"storage\"\n",
        d = dir.display()
    )
}

fn load_err(dir: &Path, text: &str) -> String {
    Config::load(&write(dir, "bad.toml", text)).unwrap_err().to_string()
}

#[test]
fn each_destination_resolves_its_own_keys_over_ams_and_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(&write(dir.path(), "fedsite.toml", &two(dir.path()))).unwrap();
    let routes = config.routes();
    assert_eq!(
        routes.iter().map(|r| (r.name.as_str(), r.kinds.clone())).collect::<Vec<_>>(),
        [("compute", vec![Cloud, Ip]), ("block", vec![Storage])]
    );
    let d = config.deliveries().unwrap();
    let view: Vec<(&str, &str, &str, &Path)> = d
        .iter()
        .map(|d| {
            (
                d.sender.host.as_str(),
                d.sender.ams_project.as_str(),
                d.sender.destination.as_str(),
                d.sender.path.as_path(),
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            ("msg.argo.grnet.gr", "accounting", "eu-egi-cloud-accounting", dir.path().join("compute").as_path()),
            ("other.example.org", "storage", "eu-egi-storage-accounting", dir.path().join("block").as_path()),
        ]
    );
    // `fedsite check` looks at every destination's spool, unless --spool names one.
    let path = dir.path().join("fedsite.toml");
    let flags = siteconf::resolve::check::CheckFlags::default();
    let c = siteconf::resolve::check::check_settings(&flags, Some(&path)).unwrap().accounting;
    assert_eq!(c.spool, Some(dir.path().join("compute")));
    assert_eq!(
        c.more_spools,
        [sitecheck::config::NamedSpool { name: "block".into(), spool: dir.path().join("block"), quarantine: None }]
    );
    let one = siteconf::resolve::check::CheckFlags { spool: Some(Path::new("/x")), ..Default::default() };
    let c = siteconf::resolve::check::check_settings(&one, Some(&path)).unwrap().accounting;
    assert_eq!((c.spool.as_deref(), c.more_spools.len()), (Some(Path::new("/x")), 0));
    // `serve` gives every destination's spool its gauges, unless --spool names one.
    let served = siteconf::resolve::serve::serve_plan(&Default::default(), Some(&config)).destination_spools;
    let names: Vec<(&str, &Path)> = served.iter().map(|d| (d.name.as_str(), d.spool.as_path())).collect();
    assert_eq!(
        names,
        [("compute", dir.path().join("compute").as_path()), ("block", dir.path().join("block").as_path())]
    );
    let one = siteconf::resolve::serve::ServeFlags { spool: Some(Path::new("/x")), ..Default::default() };
    assert!(siteconf::resolve::serve::serve_plan(&one, Some(&config)).destination_spools.is_empty());
    // `spool status` looks at the first destination's (`--destination` names another).
    assert_eq!(config.spool(), dir.path().join("compute"));
    assert_eq!(config.sender_cfg().unwrap().path, dir.path().join("compute"));
    // The extract's spools: the destinations, unless --spool names one.
    let s = siteconf::resolve::extract_spools(None, None, Some(&config)).unwrap();
    assert_eq!(s.spools(), [dir.path().join("compute"), dir.path().join("block")]);
    assert_eq!(s.route_of(Storage), Some(1));
    let one = siteconf::resolve::extract_spools(Some(Path::new("/x")), None, Some(&config)).unwrap();
    assert_eq!(one.spools(), [Path::new("/x")]);
}

#[test]
fn without_destinations_it_is_the_one_spool_and_ams_topic_of_before() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{HEAD}\n[spool]\npath = \"{}/out\"\n", dir.path().display());
    let config = Config::load(&write(dir.path(), "fedsite.toml", &text)).unwrap();
    let routes = config.routes();
    assert_eq!(routes.len(), 1);
    assert_eq!(
        (routes[0].spool.clone(), routes[0].kinds.clone()),
        (dir.path().join("out"), vec![Cloud, Ip, Accelerator, Storage])
    );
    let d = config.deliveries().unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].sender.destination, "eu-egi-cloud-accounting");
    assert_eq!(d[0].sender.path, dir.path().join("out"));
}

#[test]
fn bad_destinations_are_refused_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let e = load_err(
        dir.path(),
        &format!("{HEAD}[[destination]]\nname = \"a\"\nrecord_types = [\"strage\"]\nspool = \"{d}/a\"\n"),
    );
    assert!(e.contains("bad.toml") && e.contains("strage") && e.contains("record_types"), "{e}");
    let e = load_err(
        dir.path(),
        &format!(
            "{HEAD}[[destination]]\nname = \"a\"\nrecord_types = [\"cloud\", \"storage\"]\nspool = \"{d}/a\"\n\n\
         [[destination]]\nname = \"b\"\nrecord_types = [\"storage\"]\nspool = \"{d}/b\"\n"
        ),
    );
    assert!(
        e.contains("bad.toml")
            && e.contains("[[destination]]")
            && e.contains("storage records are routed to both a and b"),
        "{e}"
    );
    let e = load_err(
        dir.path(),
        &format!(
            "{HEAD}[[destination]]\nname = \"a\"\nrecord_types = [\"cloud\"]\nspool = \"{d}/s\"\n\n\
         [[destination]]\nname = \"b\"\nrecord_types = [\"storage\"]\nspool = \"{d}/s\"\n"
        ),
    );
    assert!(e.contains("share the spool"), "{e}");
    let e =
        load_err(dir.path(), &format!("{HEAD}[[destination]]\nname = \"a\"\nrecord_types = []\nspool = \"{d}/a\"\n"));
    assert!(e.contains("[[destination]] a record_types") && e.contains("is empty"), "{e}");
    let e = load_err(
        dir.path(),
        &format!("{HEAD}[[destination]]\nname = \"a\"\nrecord_types = [\"cloud\"]\nspool = \"{d}/a\"\ntopik = \"x\"\n"),
    );
    assert!(e.contains("topik"), "{e}");
}

#[test]
fn check_warns_of_extracted_kinds_no_destination_takes() {
    let dir = tempfile::tempdir().unwrap();
    // nova, cinder, neutron by default: accelerator (nova) and nothing else is unrouted.
    let config = Config::load(&write(dir.path(), "fedsite.toml", &two(dir.path()))).unwrap();
    assert_eq!(config.unrouted_kinds().unwrap(), [Accelerator]);
    let findings = siteconf::check(&config, &openstack::Env::new(), dir.path());
    let f = findings.iter().find(|f| f.key == "[[destination]]").expect("a finding on the destinations");
    assert_eq!(f.level, Level::Warning);
    assert!(f.message.contains("accelerator"), "{f}");
    // Energy (prometheus) is not spooled by default either, and nothing warns of an extractor
    // that is not configured.
    let text = format!("{HEAD}[accounting]\nextractors = [\"nova\", \"prometheus\"]\n");
    let config = Config::load(&write(dir.path(), "e.toml", &text)).unwrap();
    assert_eq!(config.unrouted_kinds().unwrap(), [Energy]);
}

/// caso.conf with the given messengers lines; its spool is `<dir>/outgoing`.
fn caso(dir: &Path, messengers: &str) -> PathBuf {
    let text = format!(
        "[DEFAULT]\nsite_name = TEST-SITE\n{messengers}\n\n[keystone_auth]\nauth_type = v3password\n\
         auth_url = http://127.0.0.1:35357/v3\nusername = caso\npassword = secret\nuser_domain_id = default\n\
         project_domain_id = default\n\n[ssm]\noutput_path = {d}/outgoing\n",
        d = dir.display()
    );
    write(dir, "caso.conf", &text)
}

fn import(dir: &Path, messengers: &str) -> (Vec<(Vec<RecordKind>, PathBuf)>, String) {
    let p = caso(dir, messengers);
    let imported = siteconf::import(Some(&p), None, None).unwrap();
    let text = siteconf::render(&imported, &[&p]).unwrap();
    let config = Config::load(&write(dir, "imported.toml", &text)).unwrap();
    // The import and the original resolve to the same spool and kinds.
    let original = accounting::casoconf::CasoConf::load(&p).unwrap();
    let routes = config.routes();
    assert_eq!(routes.len(), 1);
    assert_eq!((&routes[0].kinds, &routes[0].spool), (&original.record_types, &original.spool));
    (routes.into_iter().map(|r| (r.kinds, r.spool)).collect(), imported.not_carried.join("\n"))
}

#[test]
fn import_maps_casos_messengers_and_record_types() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("outgoing");
    // The ssm messenger's default: today's [spool], no destination.
    let (r, nc) = import(dir.path(), "messengers = ssm");
    assert_eq!(r, [(vec![Cloud, Ip, Accelerator, Storage], out.clone())]);
    assert!(!nc.contains("messengers"), "{nc}");
    // Its record_types: a destination of those kinds on caso.conf's spool.
    let (r, _) = import(dir.path(), "messengers = ssm\n\n[messenger_ssm]\nrecord_types = storage");
    assert_eq!(r, [(vec![Storage], out.clone())]);
    // ssm and ssmv4 together: one spool, the union, and a note that cASO spools twice.
    let (r, nc) = import(
        dir.path(),
        "messengers = ssm, ssmv4\n\n[messenger_ssm]\nrecord_types = cloud\n\n[messenger_ssmv4]\nrecord_types = cloud,ip",
    );
    assert_eq!(r, [(vec![Cloud, Ip], out.clone())]);
    assert!(nc.contains("spools the kinds they share twice"), "{nc}");
    // Energy: cASO's ssm messenger fails on it; kept in the ledger, said so.
    let (r, nc) = import(dir.path(), "messengers = ssm\n\n[messenger_ssm]\nrecord_types = cloud,energy");
    assert_eq!(r, [(vec![Cloud], out.clone())]);
    assert!(nc.contains("Unexpected record format"), "{nc}");
    // Messengers fedsite does not have, and the record_types of a messenger not enabled.
    let (_, nc) =
        import(dir.path(), "messengers = ssm,logstash,greendigit_cim\n\n[messenger_ssmv4]\nrecord_types = cloud");
    assert!(nc.contains("messengers: logstash: no fedsite equivalent"), "{nc}");
    assert!(nc.contains("messengers: greendigit_cim: no fedsite equivalent"), "{nc}");
    assert!(nc.contains("[messenger_ssmv4] record_types: only the record_types"), "{nc}");
}

#[test]
fn the_spool_commands_find_a_destinations_spool_by_name() {
    use siteconf::resolve::{SpoolFlags, spool_paths};
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(&write(dir.path(), "fedsite.toml", &two(dir.path()))).unwrap();
    let first = spool_paths(&SpoolFlags::default(), None, Some(&config)).unwrap().unwrap();
    assert_eq!(first.path, dir.path().join("compute"));
    let flags = SpoolFlags { destination: Some("block"), ..Default::default() };
    let block = spool_paths(&flags, None, Some(&config)).unwrap().unwrap();
    assert_eq!((block.path, block.quarantine), (dir.path().join("block"), dir.path().join("block.quarantine")));
    let flags = SpoolFlags { destination: Some("nope"), ..Default::default() };
    let e = spool_paths(&flags, None, Some(&config)).unwrap_err().to_string();
    assert!(e.contains("--destination") && e.contains("nope") && e.contains("compute, block"), "{e}");
}
