//! fedsite.toml: parsing errors name the key, secrets need a private file,
//! the import of the reference caso.conf + sender.cfg resolves to exactly
//! what running from those files resolves to, and `check` names bad keys.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use accounting::casoconf::CasoConf;
use messaging::config::SenderCfg;
use siteconf::{Config, FedsiteToml, Level};

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// cASO's own example caso.conf (`etc/caso/caso.conf.sample` of cASO 5.2.2), with a few more keys fedsite does not carry.
fn caso_conf(dir: &Path) -> PathBuf {
    let text = format!(
        "[DEFAULT]\nsite_name = TEST-SITE\nservice_name = TEST-SITE-cloud\nmessengers = ssm,noop\n\
         spooldir = {d}/spool\nlock_path = {d}/spool\nextractor = nova,cinder,neutron\nvo_property = VO\n\
         mapping_file = {d}/nonexistent-voms.json\ndebug = true\n\n\
         [keystone_auth]\nauth_type = v3password\nauth_url = http://127.0.0.1:35357/v3\nusername = caso\n\
         password = secret\nuser_domain_id = default\nproject_domain_id = default\n\n\
         [benchmark]\nname_key = bench:type\n\n\
         [messenger_ssm]\nrecord_types = cloud,ip\n\n\
         [ssm]\noutput_path = {d}/outgoing\nmax_size = 100\n",
        d = dir.display()
    );
    write(dir, "caso.conf", &text, 0o600)
}

/// SSM's own example sender.cfg (`conf/sender.cfg` of apel/ssm).
fn sender_cfg(dir: &Path) -> PathBuf {
    let text = format!(
        "[sender]\nprotocol: AMS\n\n[broker]\nhost: localhost\n\n[certificates]\ncertificate: {d}/client-cert.pem\n\
         key: {d}/client-key.pem\ncapath: {d}/capath\n\n[messaging]\nams_project: accounting\n\
         destination: eu-egi-cloud-accounting\npath: {d}/outgoing\npath_type: dirq\n\n\
         [logging]\nlogfile: {d}/ssmsend.log\nlevel: DEBUG\nconsole: true\n",
        d = dir.display()
    );
    write(dir, "sender.cfg", &text, 0o600)
}

#[test]
fn import_of_the_reference_files_resolves_to_what_the_originals_resolve_to() {
    let dir = tempfile::tempdir().unwrap();
    let (caso, ssm) = (caso_conf(dir.path()), sender_cfg(dir.path()));
    let imported = siteconf::import(Some(&caso), Some(&ssm), None).unwrap();
    let text = siteconf::render(&imported, &[&caso, &ssm]).unwrap();
    let toml = write(dir.path(), "fedsite.toml", &text, 0o600);
    let config = Config::load(&toml).unwrap();

    let original = CasoConf::load(&caso).unwrap();
    let mine = config.extract_config("fedsite/test").unwrap();
    assert_eq!(mine.site_name, original.extract.site_name);
    assert_eq!(mine.service_name, original.extract.service_name);
    assert_eq!(mine.projects, original.extract.projects);
    assert_eq!(mine.project_tag, original.extract.project_tag);
    assert_eq!(mine.vo_properties, original.extract.vo_properties);
    assert_eq!(mine.voms_json, original.extract.voms_json);
    assert_eq!(mine.extractors, original.extract.extractors);
    assert_eq!(mine.benchmark.name_key, "bench:type");
    assert_eq!(mine.benchmark, original.extract.benchmark);
    assert_eq!(mine.accelerator, original.extract.accelerator);
    assert_eq!(config.max_records().unwrap(), original.max_records);
    assert_eq!(config.spool(), original.spool);

    let env = openstack::Env::new();
    let cloud = config.cloud_config(&env, dir.path()).unwrap();
    assert_eq!(cloud.auth_url, original.cloud.auth_url);
    assert_eq!(cloud.credentials, original.cloud.credentials);
    assert_eq!(cloud.scope, original.cloud.scope);
    assert_eq!(
        (cloud.region_name.clone(), cloud.interface, cloud.insecure),
        (None, openstack::Interface::Public, false)
    );

    let sender = SenderCfg::load(&ssm).unwrap();
    let mine = config.sender_cfg().unwrap();
    assert_eq!(
        (&mine.host, &mine.ams_project, &mine.destination, &mine.path, mine.path_type),
        (&sender.host, &sender.ams_project, &sender.destination, &sender.path, sender.path_type)
    );
    assert_eq!(
        (&mine.certificate, &mine.key, &mine.capath, &mine.token),
        (&sender.certificate, &sender.key, &sender.capath, &sender.token)
    );

    // What was left behind is listed, with the reason.
    let nc = imported.not_carried.join("\n");
    for key in ["[DEFAULT] spooldir", "[DEFAULT] lock_path", "[DEFAULT] debug", "[logging]"] {
        assert!(nc.contains(key), "{key} missing from the not-carried list:\n{nc}");
    }
    assert!(!nc.contains("site_name") && !nc.contains("[keystone_auth] password"), "{nc}");
    // `messengers = ssm,noop` with `[messenger_ssm] record_types = cloud,ip`: carried as the
    // one destination of cloud and ip records, on caso.conf's spool and sender.cfg's topic.
    assert!(!nc.contains("[messenger_ssm] record_types") && !nc.contains("messengers"), "{nc}");
    let routes = config.routes();
    assert_eq!(routes.len(), 1);
    assert_eq!(
        (&routes[0].spool, &routes[0].kinds),
        (&original.spool, &vec![apel::RecordKind::Cloud, apel::RecordKind::Ip])
    );
    assert_eq!(original.record_types, routes[0].kinds, "--caso-conf routes the same kinds");
    assert!(text.contains("# Not carried over:"), "{text}");
}

#[test]
fn unknown_keys_and_bad_values_name_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "fedsite.toml", "[site]\nname = \"S\"\n\n[accounting]\nextractor = [\"nova\"]\n", 0o644);
    let e = Config::load(&p).unwrap_err().to_string();
    assert!(e.contains("fedsite.toml") && e.contains("unknown field `extractor`") && e.contains("line 5"), "{e}");

    // Every wrong key at once, each with its line and table, not only the first.
    let p = write(
        dir.path(),
        "typos.toml",
        "[site]\nnmae = \"S\"\n\n[ledgr]\npath = \"x\"\n\n[ams]\nhots = \"h\"\ntopic = \"t\"\n[accounting]\nstlye = \"caso\"\n",
        0o644,
    );
    let e = Config::load(&p).unwrap_err().to_string();
    for want in [
        "line 2: unknown field `nmae` in [site]",
        "line 4: unknown field `ledgr`",
        "line 8: unknown field `hots` in [ams]",
        "line 11: unknown field `stlye` in [accounting]",
    ] {
        assert!(e.contains(want), "{want:?} in {e}");
    }

    let p = write(
        dir.path(),
        "bad.toml",
        "[site]\nname = \"S\"\n[accounting]\nextractors = [\"nova\", \"bogus\"]\nstyle = \"pretty\"\n",
        0o644,
    );
    let c = Config::load(&p).unwrap();
    let e = c.extract_config("x").unwrap_err().to_string();
    assert!(
        e.ends_with("[accounting] extractors: unknown extractor \"bogus\" (nova, cinder, neutron, prometheus)"),
        "{e}"
    );
    let e = c.style().unwrap_err().to_string();
    assert!(e.contains("bad.toml: [accounting] style: \"pretty\""), "{e}");

    let p = write(dir.path(), "noname.toml", "[site]\nservice = \"x\"\n", 0o644);
    let e = Config::load(&p).unwrap().extract_config("x").unwrap_err().to_string();
    assert!(e.contains("[site] name: is missing"), "{e}");
}

#[test]
fn a_file_holding_a_password_must_be_private() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[site]\nname = \"S\"\n[cloud]\nauth_type = \"password\"\n[cloud.auth]\nauth_url = \"http://k/v3\"\nusername = \"u\"\npassword = \"hunter2\"\nproject_id = \"p\"\n";
    let p = write(dir.path(), "fedsite.toml", text, 0o640);
    let e = Config::load(&p).unwrap_err().to_string();
    assert!(e.contains("[cloud.auth] password") && e.contains("chmod 600") && !e.contains("hunter2"), "{e}");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = Config::load(&p).unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
    let cloud = c.cloud_config(&openstack::Env::new(), dir.path()).unwrap();
    assert_eq!(cloud.scope, openstack::Scope::project_id("p"));
    // Without secrets, any mode is fine.
    let p = write(dir.path(), "open.toml", "[site]\nname = \"S\"\n", 0o644);
    assert!(Config::load(&p).is_ok());
}

#[test]
fn os_cloud_reads_the_named_clouds_yaml_and_conflicts_with_inline_auth() {
    let dir = tempfile::tempdir().unwrap();
    let clouds = write(
        dir.path(),
        "clouds.yaml",
        "clouds:\n  acct:\n    auth:\n      auth_url: http://k:5000/v3\n      username: a\n      password: p\n      system_scope: all\n    region_name: R1\n",
        0o600,
    );
    let text = format!("[site]\nname = \"S\"\n[cloud]\nos_cloud = \"acct\"\nclouds_yaml = \"{}\"\n", clouds.display());
    let p = write(dir.path(), "fedsite.toml", &text, 0o644);
    let cloud = Config::load(&p).unwrap().cloud_config(&openstack::Env::new(), dir.path()).unwrap();
    assert_eq!(
        (cloud.auth_url.as_str(), cloud.scope.clone(), cloud.region_name.as_deref()),
        ("http://k:5000/v3", openstack::Scope::System, Some("R1"))
    );

    let text = format!("{text}[cloud.auth]\nauth_url = \"http://x/v3\"\n");
    let p = write(dir.path(), "both.toml", &text, 0o644);
    let e = Config::load(&p).unwrap().cloud_config(&openstack::Env::new(), dir.path()).unwrap_err().to_string();
    assert!(e.contains("[cloud] os_cloud: given together with [cloud.auth]"), "{e}");

    let p = write(dir.path(), "missing.toml", "[site]\nname = \"S\"\n[cloud]\nos_cloud = \"nope\"\n", 0o644);
    let env: openstack::Env = [("HOME".to_string(), dir.path().join("home").display().to_string())].into();
    let e = Config::load(&p).unwrap().cloud_config(&env, dir.path()).unwrap_err().to_string();
    assert!(e.contains("missing.toml: [cloud] os_cloud:") && e.contains("nope"), "{e}");
}

#[test]
fn check_reports_every_broken_key_and_passes_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[site]\nname = \"None\"\ncatchall_yaml = \"{d}/nope.yaml\"\n[accounting]\nmax_records = 0\n\
         [spool]\npath_type = \"tree\"\n[cloud]\nos_cloud = \"nope\"\nclouds_yaml = \"{d}/clouds.yaml\"\n\
         [ams]\nhost = \"msg.example.org\"\ncertificate = \"{d}/cert.pem\"\nkey = \"{d}/key.pem\"\n",
        d = dir.path().display()
    );
    let p = write(dir.path(), "fedsite.toml", &text, 0o600);
    let findings = siteconf::check(&Config::load(&p).unwrap(), &openstack::Env::new(), dir.path());
    let keys: Vec<&str> = findings.iter().filter(|f| f.level == Level::Error).map(|f| f.key.as_str()).collect();
    for key in [
        "[site] name",
        "[accounting] max_records",
        "[spool] path_type",
        "[cloud]",
        "[site] catchall_yaml",
        "[ams] certificate",
    ] {
        assert!(keys.contains(&key), "{key} not reported: {findings:#?}");
    }
    assert!(findings.iter().any(|f| f.message.contains("SiteName")), "{findings:#?}");

    let good = write(
        dir.path(),
        "good.toml",
        &format!(
            "[site]\nname = \"S\"\n[ledger]\npath = \"{d}/l.sqlite\"\n[spool]\npath = \"{d}/out\"\n",
            d = dir.path().display()
        ),
        0o600,
    );
    let env: openstack::Env =
        [("OS_AUTH_URL", "http://k/v3"), ("OS_USERNAME", "u"), ("OS_PASSWORD", "p"), ("OS_PROJECT_ID", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let findings = siteconf::check(&Config::load(&good).unwrap(), &env, dir.path());
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn render_then_parse_is_the_same_config() {
    let dir = tempfile::tempdir().unwrap();
    let (caso, ssm) = (caso_conf(dir.path()), sender_cfg(dir.path()));
    let site = write(
        dir.path(),
        "SITE.yaml",
        "gocdb: TEST-SITE\nendpoint: http://127.0.0.1:35357/v3\nimages:\n  sync: true\nvos:\n  - name: ops\n    auth: {project_id: abc}\n",
        0o644,
    );
    let imported = siteconf::import(Some(&caso), Some(&ssm), Some(&site)).unwrap();
    assert_eq!(imported.config.site.catchall_yaml.as_deref(), Some(site.as_path()));
    let text = siteconf::render(&imported, &[]).unwrap();
    let back = FedsiteToml::parse(Path::new("x.toml"), &text).unwrap();
    assert_eq!(back, imported.config);
}

#[test]
fn the_instance_action_cache_is_on_unless_the_accounting_section_turns_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let on = write(dir.path(), "on.toml", "[site]\nname = \"S\"\n", 0o644);
    assert!(Config::load(&on).unwrap().extract_config("x").unwrap().action_cache);
    let off = write(dir.path(), "off.toml", "[site]\nname = \"S\"\n\n[accounting]\naction_cache = false\n", 0o644);
    assert!(!Config::load(&off).unwrap().extract_config("x").unwrap().action_cache);
    let bad = write(dir.path(), "bad.toml", "[site]\nname = \"S\"\n\n[accounting]\naction_cache = \"no\"\n", 0o644);
    let e = Config::load(&bad).unwrap_err().to_string();
    assert!(e.contains("bad.toml") && e.contains("action_cache"), "{e}");
}

#[test]
fn the_listed_server_cache_is_on_unless_the_accounting_section_turns_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let on = write(dir.path(), "on.toml", "[site]\nname = \"S\"\n", 0o644);
    assert!(Config::load(&on).unwrap().extract_config("x").unwrap().server_cache);
    let off = write(dir.path(), "off.toml", "[site]\nname = \"S\"\n\n[accounting]\nserver_cache = false\n", 0o644);
    let cfg = Config::load(&off).unwrap().extract_config("x").unwrap();
    assert!(!cfg.server_cache && cfg.action_cache, "only the listed-server cache is off");
}

#[test]
fn import_reads_casos_own_readable_file_and_lists_every_key_it_drops() {
    let dir = tempfile::tempdir().unwrap();
    let caso = caso_conf(dir.path());
    std::fs::set_permissions(&caso, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text =
        std::fs::read_to_string(&caso).unwrap().replace("[keystone_auth]\n", "[keystone_auth]\ninsecure = True\n");
    std::fs::write(&caso, text).unwrap();
    // Running from it refuses it; importing it reads it and says so.
    assert!(CasoConf::load(&caso).is_err());
    let ssm = sender_cfg(dir.path());
    let text = std::fs::read_to_string(&ssm)
        .unwrap()
        .replace("host: localhost\n", "host: localhost\nport: 6162\nuse_ssl: true\n");
    std::fs::write(&ssm, text).unwrap();
    let imported = siteconf::import(Some(&caso), Some(&ssm), None).unwrap();
    let nc = imported.not_carried.join("\n");
    for want in [
        "read for this import although",
        "[keystone_auth] insecure = true carried as [cloud] verify = false",
        "[broker] port: STOMP's port",
        "[broker] use_ssl: AMS is always HTTPS",
    ] {
        assert!(nc.contains(want), "{want:?} missing from:\n{nc}");
    }
    assert_eq!(imported.config.cloud.verify, Some(false));
}

#[test]
fn a_missing_capath_is_a_warning_that_says_what_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let (caso, ssm) = (caso_conf(dir.path()), sender_cfg(dir.path()));
    let imported = siteconf::import(Some(&caso), Some(&ssm), None).unwrap();
    let text = siteconf::render(&imported, &[&caso, &ssm]).unwrap();
    let toml = write(dir.path(), "fedsite.toml", &text, 0o600);
    let findings = siteconf::check(&Config::load(&toml).unwrap(), &openstack::Env::new(), dir.path());
    let capath = findings.iter().find(|f| f.key == "[ams] capath").expect("a capath finding");
    assert_eq!(capath.level, Level::Warning, "{capath:?}");
    assert!(capath.message.contains("receiving does"), "{capath:?}");
}
