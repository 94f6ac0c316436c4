//! One test per source layer and one per conflict between layers for `accounting extract`,
//! `republish` and `projects` (`siteconf::resolve::extract`): the flags, cASO's caso.conf,
//! fedsite.toml, the `OS_*` environment and the defaults. The precedence is
//! docs/configuration.md's: a flag, then caso.conf when one is named (fedsite.toml is then not
//! read), then fedsite.toml, then the defaults.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use accounting::InactiveTime;
use accounting::pipeline::SSM_KINDS;
use apel::{RecordKind, Style};
use chrono::{DateTime, TimeZone, Utc};
use openstack::config::Env;
use siteconf::Config;
use siteconf::resolve::extract::{
    CASO_CLOUD_TYPE, ExtractFlags, RepublishFlags, SiteFlags, extract_plan, projects_plan, republish_plan,
};
use siteconf::resolve::{DEFAULT_SPOOL, default_ledger};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap()
}

/// The `OS_*` credentials of an application credential.
fn os_env() -> Env {
    [
        ("OS_AUTH_URL", "https://env-keystone.example/v3"),
        ("OS_AUTH_TYPE", "v3applicationcredential"),
        ("OS_APPLICATION_CREDENTIAL_ID", "env-ac"),
        ("OS_APPLICATION_CREDENTIAL_SECRET", "env-secret"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

const EXTRACTORS: [&str; 3] = ["nova", "cinder", "neutron"];

/// The flags with clap's defaults, and `site_name`.
fn site_flags<'a>(extractors: &'a [String], vo: &'a [String], site_name: Option<&'a str>) -> SiteFlags<'a> {
    SiteFlags {
        site_name,
        cloud_type: "fedsite/test (OpenStack)",
        tag: "caso",
        vo_properties: vo,
        extractors,
        concurrency: 8,
        prometheus_endpoint: "http://localhost:9090",
        prometheus_step_seconds: 30,
        cpu_normalization_factor: 1.0,
        ..Default::default()
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A fedsite.toml with every key extract reads, and an inline `[cloud]`.
fn fedsite_toml(dir: &Path) -> Config {
    let text = format!(
        "[site]\nname = \"TOML-SITE\"\n\n[ledger]\npath = \"{d}/toml-ledger.sqlite\"\n\n[spool]\npath = \"{d}/toml-spool\"\n\n\
         [accounting]\nstyle = \"caso\"\nmax_records = 77\ninactive_time = \"suspended\"\nunmapped_ok = [\"toml-p\"]\n\
         cloud_type = \"toml-type\"\n\n\
         [cloud]\nauth_type = \"v3applicationcredential\"\n\n[cloud.auth]\nauth_url = \"https://toml-keystone.example/v3\"\n\
         application_credential_id = \"toml-ac\"\napplication_credential_secret = \"toml-secret\"\n",
        d = dir.display()
    );
    Config::load(&write(dir, "fedsite.toml", &text)).unwrap()
}

/// A caso.conf naming its site, spool, message size and credentials.
fn caso_conf(dir: &Path) -> PathBuf {
    let text = format!(
        "[DEFAULT]\nsite_name = CASO-SITE\nmessengers = ssm\n\n[messenger_ssm]\nrecord_types = cloud,storage\n\n\
         [keystone_auth]\nauth_type = v3applicationcredential\nauth_url = https://caso-keystone.example/v3\n\
         application_credential_id = caso-ac\napplication_credential_secret = caso-secret\n\n\
         [ssm]\noutput_path = {d}/caso-spool\nmax_size = 50\n",
        d = dir.display()
    );
    write(dir, "caso.conf", &text)
}

// ------------------------------------------------------------------ extract

#[test]
fn extract_flags_and_environment_alone_over_the_defaults() {
    let (ex, vo) = (strings(&EXTRACTORS), strings(&["VO"]));
    let flags = ExtractFlags { site: site_flags(&ex, &vo, Some("FLAG-SITE")), ..Default::default() };
    let p = extract_plan(&flags, None, &os_env(), Path::new("/"), now()).unwrap();
    assert_eq!(p.config.site_name.as_str(), "FLAG-SITE");
    assert_eq!(p.config.service_name.as_str(), "FLAG-SITE", "the service defaults to the site");
    assert_eq!(p.config.cloud_type.as_str(), "fedsite/test (OpenStack)");
    assert_eq!(p.config.project_tag.as_deref(), Some("caso"));
    assert_eq!(p.config.compat.inactive_time, InactiveTime::CountAsRunning);
    assert!(p.config.compat.suspend_duration && p.config.action_cache);
    assert_eq!(p.spool.spools(), [Path::new(DEFAULT_SPOOL)]);
    assert_eq!((p.spool.style, p.spool.max_records), (Style::Fedsite, apel::DEFAULT_MAX_RECORDS));
    assert_eq!(p.ledger, default_ledger());
    assert_eq!((p.to, p.notes.len()), (now(), 0));
    assert_eq!(p.cloud.config.auth_url, "https://env-keystone.example/v3");
    assert_eq!(p.cloud.authenticating(), "authenticating to https://env-keystone.example/v3");
}

#[test]
fn extract_flags_alone_say_what_is_missing_or_wrong() {
    let (ex, vo) = (strings(&EXTRACTORS), strings(&["VO"]));
    let err = |flags: &ExtractFlags<'_>| extract_plan(flags, None, &os_env(), Path::new("/"), now()).unwrap_err();
    let flags = ExtractFlags { site: site_flags(&ex, &vo, None), ..Default::default() };
    assert_eq!(err(&flags).to_string(), "--site-name (or FEDSITE_SITE_NAME) is required");
    let bad = strings(&["nova", "swift"]);
    let flags = ExtractFlags { site: site_flags(&bad, &vo, Some("S")), ..Default::default() };
    assert_eq!(err(&flags).to_string(), "--extractor: unknown extractor \"swift\" (nova, cinder, neutron, prometheus)");
    let flags = ExtractFlags { site: site_flags(&ex, &vo, Some("S")), max_records: Some(0), ..Default::default() };
    assert_eq!(err(&flags).to_string(), "--max-records must be at least 1");
    let mut site = site_flags(&ex, &vo, Some("S"));
    site.prometheus_step_seconds = 0;
    assert_eq!(
        err(&ExtractFlags { site, ..Default::default() }).to_string(),
        "--prometheus-step-seconds must be above 0"
    );
}

#[test]
fn extract_a_future_end_is_now() {
    let (ex, vo) = (strings(&EXTRACTORS), strings(&["VO"]));
    let past = now() - chrono::Duration::days(3);
    let flags = ExtractFlags { site: site_flags(&ex, &vo, Some("S")), to: Some(past), ..Default::default() };
    assert_eq!(extract_plan(&flags, None, &os_env(), Path::new("/"), now()).unwrap().to, past);
    let flags = ExtractFlags { to: Some(now() + chrono::Duration::days(3)), ..flags };
    let p = extract_plan(&flags, None, &os_env(), Path::new("/"), now()).unwrap();
    assert_eq!(p.to, now());
    let w = p.dry_run_window(None).unwrap();
    assert_eq!((w.from(), w.to()), (Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap(), now()));
}

#[test]
fn extract_fedsite_toml_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = fedsite_toml(d);
    let (ex, vo) = (strings(&EXTRACTORS), strings(&["VO"]));
    // No site name flag: fedsite.toml's is used; the environment's cloud is not.
    let flags = ExtractFlags { site: site_flags(&ex, &vo, None), ..Default::default() };
    let p = extract_plan(&flags, Some(&file), &os_env(), d, now()).unwrap();
    assert_eq!(p.config.site_name.as_str(), "TOML-SITE");
    assert_eq!(p.config.cloud_type.as_str(), "toml-type");
    assert_eq!(p.config.compat.inactive_time, InactiveTime::CountAsSuspended);
    assert_eq!(p.config.unmapped_ok, ["toml-p"]);
    assert_eq!(p.spool.spools(), [d.join("toml-spool").as_path()]);
    assert_eq!((p.spool.style, p.spool.max_records), (Style::CasoCompat, 77));
    assert_eq!(p.ledger, d.join("toml-ledger.sqlite"));
    assert_eq!(p.cloud.config.auth_url, "https://toml-keystone.example/v3");
    assert!(p.cloud.authenticating().contains("fedsite.toml"), "{}", p.cloud.authenticating());
}

#[test]
fn extract_flags_win_over_fedsite_toml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = fedsite_toml(d);
    let (ex, vo, unmapped) = (strings(&EXTRACTORS), strings(&["VO"]), strings(&["flag-p", "toml-p"]));
    let mut site = site_flags(&ex, &vo, Some("FLAG-SITE"));
    site.unmapped_ok = &unmapped;
    let spool = d.join("flag-spool");
    let ledger = d.join("flag-ledger.sqlite");
    let flags = ExtractFlags {
        site,
        spool: Some(&spool),
        ledger: Some(&ledger),
        style: Some(Style::Fedsite),
        max_records: Some(5),
        inactive_time: Some(InactiveTime::CountAsRunning),
        no_suspend_duration: true,
        no_action_cache: true,
        no_server_cache: true,
        ..Default::default()
    };
    let p = extract_plan(&flags, Some(&file), &os_env(), d, now()).unwrap();
    assert_eq!(p.spool.spools(), [spool.as_path()]);
    assert_eq!((p.spool.style, p.spool.max_records), (Style::Fedsite, 5));
    assert_eq!(p.ledger, ledger);
    assert_eq!(p.config.compat.inactive_time, InactiveTime::CountAsRunning);
    assert!(!p.config.compat.suspend_duration && !p.config.action_cache && !p.config.server_cache);
    // --unmapped-ok adds to the file's list, once each.
    assert_eq!(p.config.unmapped_ok, ["toml-p", "flag-p"]);
    // fedsite.toml's site wins over --site-name: the file describes the whole site.
    assert_eq!(p.config.site_name.as_str(), "TOML-SITE");
}

#[test]
fn extract_caso_conf_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let caso = caso_conf(d);
    let (ex, vo) = (strings(&EXTRACTORS), strings(&["VO"]));
    let flags = ExtractFlags { site: site_flags(&ex, &vo, None), caso_conf: Some(&caso), ..Default::default() };
    let p = extract_plan(&flags, None, &os_env(), d, now()).unwrap();
    assert_eq!(p.config.site_name.as_str(), "CASO-SITE");
    assert_eq!(p.config.cloud_type.as_str(), "fedsite/test (OpenStack)", "the --cloud-type flag's");
    assert_eq!(p.spool.routes().len(), 1);
    assert_eq!(p.spool.routes()[0].spool, d.join("caso-spool"));
    assert_eq!(p.spool.routes()[0].kinds, [RecordKind::Cloud, RecordKind::Storage]);
    assert_eq!((p.spool.style, p.spool.max_records), (Style::Fedsite, 50));
    assert_eq!(p.cloud.config.auth_url, "https://caso-keystone.example/v3");
    assert!(p.cloud.authenticating().contains("caso.conf"), "{}", p.cloud.authenticating());
}

#[test]
fn extract_a_named_caso_conf_replaces_fedsite_toml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (file, caso) = (fedsite_toml(d), caso_conf(d));
    let (ex, vo) = (strings(&EXTRACTORS), strings(&["VO"]));
    let flags = ExtractFlags { site: site_flags(&ex, &vo, None), caso_conf: Some(&caso), ..Default::default() };
    let p = extract_plan(&flags, Some(&file), &os_env(), d, now()).unwrap();
    assert_eq!(p.config.site_name.as_str(), "CASO-SITE");
    assert_eq!(p.spool.routes()[0].spool, d.join("caso-spool"));
    assert_eq!((p.spool.style, p.spool.max_records), (Style::Fedsite, 50), "not [accounting]'s caso / 77");
    assert_eq!(p.config.compat.inactive_time, InactiveTime::CountAsRunning, "not [accounting]'s suspended");
    assert_eq!(p.ledger, default_ledger(), "not [ledger] path");
    assert!(p.config.unmapped_ok.is_empty());
}

#[test]
fn extract_flags_win_over_caso_conf() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let caso = caso_conf(d);
    let (ex, vo) = (strings(&EXTRACTORS), strings(&["VO"]));
    let spool = d.join("flag-spool");
    let flags = ExtractFlags {
        site: site_flags(&ex, &vo, None),
        caso_conf: Some(&caso),
        spool: Some(&spool),
        max_records: Some(9),
        ..Default::default()
    };
    let p = extract_plan(&flags, None, &os_env(), d, now()).unwrap();
    // --spool replaces [ssm] output_path; the kinds stay caso.conf's.
    assert_eq!(p.spool.routes()[0].spool, spool);
    assert_eq!(p.spool.routes()[0].kinds, [RecordKind::Cloud, RecordKind::Storage]);
    assert_eq!(p.spool.max_records, 9);
}

#[test]
fn extract_an_unreadable_caso_conf_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.conf");
    let (ex, vo) = (strings(&EXTRACTORS), strings(&["VO"]));
    let flags = ExtractFlags { site: site_flags(&ex, &vo, None), caso_conf: Some(&missing), ..Default::default() };
    let e = extract_plan(&flags, None, &os_env(), dir.path(), now()).unwrap_err().to_string();
    assert!(e.starts_with(&format!("reading {}", missing.display())), "{e}");
}

#[test]
fn extract_caso_compatible_wins_over_fedsite_toml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = fedsite_toml(d);
    let (ex, vo) = (strings(&EXTRACTORS), strings(&["VO"]));
    let flags = ExtractFlags { site: site_flags(&ex, &vo, None), caso_compatible: true, ..Default::default() };
    let p = extract_plan(&flags, Some(&file), &os_env(), d, now()).unwrap();
    assert_eq!(p.config.cloud_type.as_str(), CASO_CLOUD_TYPE);
    assert_eq!(p.spool.style, Style::CasoCompat);
    assert!(!p.config.compat.suspend_duration);
    assert_eq!(p.config.compat.inactive_time, InactiveTime::CountAsRunning, "over [accounting]'s suspended");
}

// ------------------------------------------------------------------ republish

fn republish_flags<'a>() -> RepublishFlags<'a> {
    RepublishFlags {
        from: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        to: Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap(),
        project: None,
        spool: None,
        ledger: None,
        style: None,
    }
}

#[test]
fn republish_defaults_and_the_window_includes_its_end() {
    let p = republish_plan(&RepublishFlags { project: Some("p1"), ..republish_flags() }, None).unwrap();
    assert_eq!(p.ledger, default_ledger());
    assert_eq!(p.spool.spools(), [Path::new(DEFAULT_SPOOL)]);
    assert_eq!(p.spool.routes()[0].kinds, SSM_KINDS);
    assert_eq!(p.spool.style, Style::Fedsite);
    assert_eq!(p.filter.to, Some(republish_flags().to + chrono::Duration::microseconds(1)));
    assert_eq!(p.filter.project.as_deref(), Some("p1"));
    let backwards = RepublishFlags { from: republish_flags().to, to: republish_flags().from, ..republish_flags() };
    let e = republish_plan(&backwards, None).unwrap_err().to_string();
    assert_eq!(e, "--from 2026-02-01 00:00:00 UTC must be before --to 2026-01-01 00:00:00 UTC");
}

#[test]
fn republish_fedsite_toml_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = fedsite_toml(dir.path());
    let p = republish_plan(&republish_flags(), Some(&file)).unwrap();
    assert_eq!(p.ledger, dir.path().join("toml-ledger.sqlite"));
    assert_eq!(p.spool.spools(), [dir.path().join("toml-spool").as_path()]);
    assert_eq!(p.spool.style, Style::CasoCompat);
}

#[test]
fn republish_flags_win_over_fedsite_toml() {
    let dir = tempfile::tempdir().unwrap();
    let file = fedsite_toml(dir.path());
    let (spool, ledger) = (dir.path().join("s"), dir.path().join("l.sqlite"));
    let flags =
        RepublishFlags { spool: Some(&spool), ledger: Some(&ledger), style: Some(Style::Fedsite), ..republish_flags() };
    let p = republish_plan(&flags, Some(&file)).unwrap();
    assert_eq!((p.ledger, p.spool.spools(), p.spool.style), (ledger.clone(), vec![spool.as_path()], Style::Fedsite));
}

// ------------------------------------------------------------------ projects

#[test]
fn projects_flags_alone_need_no_site_name_and_run_no_extractor() {
    let (ex, vo) = (strings(&EXTRACTORS), strings(&["VO"]));
    let (cfg, cloud) = projects_plan(&site_flags(&ex, &vo, None), None, &os_env(), Path::new("/")).unwrap();
    assert_eq!(cfg.site_name.as_str(), "unnamed");
    assert!(cfg.extractors.is_empty());
    assert_eq!(cloud.config.auth_url, "https://env-keystone.example/v3");
}

#[test]
fn projects_fedsite_toml_wins_over_the_flags_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = fedsite_toml(dir.path());
    let (ex, vo) = (strings(&EXTRACTORS), strings(&["VO"]));
    let (cfg, cloud) = projects_plan(&site_flags(&ex, &vo, Some("F")), Some(&file), &os_env(), dir.path()).unwrap();
    assert_eq!(cfg.site_name.as_str(), "TOML-SITE");
    assert!(cfg.extractors.is_empty());
    assert_eq!(cloud.config.auth_url, "https://toml-keystone.example/v3");
}
