//! Scenario generator tests: determinism, the exact `tiny` site of cASO's vectors
//! (testdata/caso-5.2.2) and its edge cases, the quiet-day rule, counts and history shape.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sim::model::*;
use sim::scenario::{self, ScenarioError, ScenarioSpec};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn tiny() -> sim::Scenario {
    scenario::builtin("tiny").unwrap().generate()
}

fn server<'a>(site: &'a Site, name: &str) -> &'a Server {
    site.servers.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no server {name}"))
}

const PROJ1: &str = "0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b";

#[test]
fn tiny_has_the_reference_time_and_region_of_the_caso_vectors() {
    let sc = tiny();
    assert_eq!(sc.name, "tiny");
    assert_eq!(sc.reference_time, Utc.with_ymd_and_hms(2023, 6, 1, 0, 0, 0).unwrap());
    assert_eq!(sc.site.region, "RegionOne");
    assert_eq!(sc.site.domains.len(), 1);
    assert_eq!((sc.site.domains[0].id.as_str(), sc.site.domains[0].name.as_str()), ("default", "Default"));
}

#[test]
fn tiny_proj1_is_the_caso_project() {
    let site = tiny().site;
    let p = site.project(PROJ1).unwrap();
    assert_eq!(p.name, "proj1");
    assert_eq!(p.tags, vec!["caso".to_string()]);
    assert_eq!(p.extra.get("VO"), Some(&serde_json::json!("vo.example.org")));
    assert_eq!(site.user("u-alice").unwrap().name, "alice@example.org");
    assert_eq!(site.user("u-bob").unwrap().name, "bob@example.org");
}

#[test]
fn tiny_flavor_f1_is_the_public_gpu_small_and_the_only_public_flavor() {
    let site = tiny().site;
    let f = site.flavor("f1").unwrap();
    assert_eq!(
        (f.name.as_str(), f.ram, f.vcpus, f.disk, f.ephemeral, f.is_public),
        ("gpu.small", 4096, 2, 20, 10, true)
    );
    let specs: Vec<(&str, &str)> = f.extra_specs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        specs,
        vec![
            ("Accelerator:Model", "A100"),
            ("Accelerator:Number", "1"),
            ("Accelerator:Type", "GPU"),
            ("Accelerator:Vendor", "NVIDIA"),
            ("accounting:benchmark_type", "HEPscore23"),
            ("accounting:benchmark_value", "12.5"),
        ]
    );
    let public: Vec<&str> = site.flavors.iter().filter(|f| f.is_public).map(|f| f.id.as_str()).collect();
    assert_eq!(public, vec!["f1"]);
    let egi = site.projects.iter().find(|p| p.name == "egi-proj").unwrap();
    let int = site.flavor("f-int").unwrap();
    assert_eq!(int.access, vec![egi.id.clone()]);
    assert_eq!(int.extra_specs["accounting:benchmark_value"], "99");
    assert!(site.flavor("f-priv").unwrap().extra_specs.is_empty());
}

#[test]
fn tiny_servers_at_reference_match_caso_section_7_5() {
    let sc = tiny();
    let now = sc.reference_time;
    let site = &sc.site;

    let run = server(site, "vm-running");
    assert_eq!(run.id, "11111111-1111-4111-8111-111111111111");
    let v = run.view_at(now).unwrap();
    assert_eq!(v.status, "ACTIVE");
    assert_eq!(run.created, t("2023-05-20T10:00:00Z"));
    assert_eq!(v.launched_at, Some(t("2023-05-20T10:01:00Z")));
    assert_eq!(v.updated, t("2023-05-21T12:00:00Z"));
    assert_eq!(v.terminated_at, None);

    let del = server(site, "vm-deleted");
    assert_eq!(del.id, "22222222-2222-4222-8222-222222222222");
    let v = del.view_at(now).unwrap();
    assert_eq!(v.status, "DELETED");
    assert!(v.deleted);
    assert_eq!(del.created, t("2023-05-19T00:00:00Z"));
    assert_eq!(v.launched_at, Some(t("2023-05-19T00:01:00Z")));
    assert_eq!(v.terminated_at, Some(t("2023-05-22T06:00:00Z")));

    let quiet = server(site, "vm-quiet");
    assert_eq!(quiet.id, "33333333-3333-4333-8333-333333333333");
    let v = quiet.view_at(now).unwrap();
    assert_eq!(v.status, "SHUTOFF");
    assert_eq!(v.updated, t("2023-04-02T00:00:00Z"));
    assert_eq!(v.launched_at, Some(t("2023-04-01T00:01:00Z")));
    assert_eq!(v.terminated_at, None);
    // The instance's snapshot of the old f1, not today's gpu.small.
    assert_eq!(
        (v.flavor.id.as_str(), v.flavor.name.as_str(), v.flavor.vcpus, v.flavor.ram, v.flavor.disk, v.flavor.ephemeral),
        ("f1", "old", 4, 8192, 40, 0)
    );

    let ubuntu = site.images.iter().find(|i| i.name == "ubuntu").unwrap();
    assert!(uuid::Uuid::parse_str(&ubuntu.id).is_ok());
    assert_eq!((ubuntu.status.as_str(), ubuntu.visibility.as_str()), ("active", "public"));
    assert_eq!(ubuntu.properties["vmcatcher_event_ad_mpuri"], serde_json::json!("https://appdb.example/img/1"));
    assert_eq!(ubuntu.owner, site.projects.iter().find(|p| p.name == "admin").unwrap().id);
    let proj1: Vec<&Server> = site.servers.iter().filter(|s| s.project_id == PROJ1).collect();
    assert_eq!(proj1.len(), 3);
    for s in proj1 {
        assert_eq!(s.user_id, "u-alice");
        assert_eq!(s.image_id.as_deref(), Some(ubuntu.id.as_str()));
        assert_eq!(s.fixed_ips, vec![("private".to_string(), "10.0.0.5".to_string(), 4)]);
    }
}

#[test]
fn tiny_proj1_floating_ips_and_volumes_match_caso_section_7_5() {
    let sc = tiny();
    let now = sc.reference_time;
    let site = &sc.site;
    let mut fips: Vec<(&str, u8, DateTime<Utc>, &str)> = site
        .floating_ips
        .iter()
        .filter(|f| f.project_id == PROJ1)
        .map(|f| (f.address.as_str(), f.version, f.created_at, f.status_at(now)))
        .collect();
    fips.sort();
    assert_eq!(
        fips,
        vec![
            ("192.0.2.10", 4, t("2023-05-01T00:00:00Z"), "ACTIVE"),
            ("192.0.2.11", 4, t("2023-05-02T00:00:00Z"), "DOWN"),
            ("2001:db8::1", 6, t("2023-05-03T00:00:00Z"), "DOWN"),
        ]
    );
    let run = server(site, "vm-running");
    let fip = site.floating_ips.iter().find(|f| f.address == "192.0.2.10").unwrap();
    let assoc = fip.association_at(now).unwrap();
    let port = site.ports.iter().find(|p| p.id == assoc.port_id).unwrap();
    assert_eq!(port.device_id, run.id);
    assert_eq!(assoc.fixed_ip, "10.0.0.5");

    let vols: Vec<&Volume> = site.volumes.iter().filter(|v| v.project_id == PROJ1).collect();
    assert_eq!(vols.len(), 2);
    let data = vols.iter().find(|v| v.name == "data-vol").unwrap();
    assert_eq!(data.id, "44444444-4444-4444-8444-444444444444");
    assert_eq!((data.size, data.user_id.as_str(), data.status_at(now)), (50, "u-alice", "in-use"));
    assert_eq!(data.created_at, t("2023-05-10T00:00:00Z"));
    let a: Vec<&VolumeAttachment> = data.attachments_at(now).collect();
    assert_eq!((a[0].server_id.as_str(), a[0].attached_at), (run.id.as_str(), t("2023-05-20T11:00:00Z")));
    assert_eq!(run.volumes_attached, vec![data.id.clone()]);
    let scratch = vols.iter().find(|v| v.name == "scratch").unwrap();
    assert_eq!(scratch.id, "55555555-5555-4555-8555-555555555555");
    assert_eq!((scratch.size, scratch.user_id.as_str(), scratch.status_at(now)), (10, "u-bob", "available"));
    assert_eq!(scratch.created_at, t("2023-05-23T00:00:00Z"));
}

#[test]
fn tiny_vm_running_goes_away_after_the_quiet_day() {
    let sc = tiny();
    let site = &sc.site;
    let later = t("2023-06-11T00:00:00Z");
    let run = server(site, "vm-running");
    let v = run.view_at(later).unwrap();
    assert_eq!((v.status, v.terminated_at), ("DELETED", Some(t("2023-06-10T00:00:00Z"))));
    let data = site.volumes.iter().find(|v| v.name == "data-vol").unwrap();
    assert_eq!(data.status_at(later), "available");
    let fip = site.floating_ips.iter().find(|f| f.address == "192.0.2.10").unwrap();
    assert_eq!(fip.status_at(later), "DOWN");
    let port = site.ports.iter().find(|p| p.device_id == run.id).unwrap();
    assert!(port.visible_at(sc.reference_time) && !port.visible_at(later));
}

#[test]
fn tiny_edge_case_servers_show_the_documented_states() {
    let sc = tiny();
    let now = sc.reference_time;
    let site = &sc.site;
    let status = |n: &str| server(site, n).view_at(now).map(|v| v.status.to_string());
    for (name, want) in [
        ("vm-paused", "PAUSED"),
        ("vm-suspended", "SUSPENDED"),
        ("vm-shelved", "SHELVED_OFFLOADED"),
        ("vm-error", "ERROR"),
        ("vm-never", "ERROR"),
        ("vm-resized", "ACTIVE"),
        ("vm-bfv", "ACTIVE"),
        ("vm-ñandú", "ACTIVE"),
        ("vm-gone", "DELETED"),
        ("vm-future", "ACTIVE"),
        ("vm-ended-after", "DELETED"),
        ("vm-stopped", "SHUTOFF"),
        ("vm-novo", "ACTIVE"),
        ("vm-untagged", "ACTIVE"),
    ] {
        assert_eq!(status(name).as_deref(), Some(want), "{name}");
    }
    assert_eq!(server(site, "vm-never").launched_at, None);
    let resized = server(site, "vm-resized");
    assert_eq!(resized.flavor.id, "f-priv");
    assert_eq!(resized.view_at(now).unwrap().flavor.id, "f-int");
    assert_eq!(resized.view_at(t("2023-05-22T09:00:00Z")).unwrap().flavor.id, "f-priv");
    let bfv = server(site, "vm-bfv");
    assert_eq!(bfv.image_id, None);
    let root = site.volumes.iter().find(|v| v.id == bfv.volumes_attached[0]).unwrap();
    assert!(root.bootable);
    assert_eq!(server(site, "vm-gone").view_at(now).unwrap().terminated_at, Some(t("2023-05-10T00:00:00Z")));
    assert_eq!(server(site, "vm-ended-after").view_at(now).unwrap().terminated_at, Some(t("2023-05-27T00:00:00Z")));
    assert_eq!(server(site, "vm-future").created, t("2023-05-28T00:00:00Z"));
    let tmp = site.volumes.iter().find(|v| v.name == "tmp-vol").unwrap();
    assert!(tmp.visible_at(t("2023-05-22T00:00:00Z")) && !tmp.visible_at(t("2023-05-23T00:00:00Z")));
    assert_eq!(site.user(&server(site, "vm-ñandú").user_id).unwrap().name, "zoë@example.org");
}

#[test]
fn tiny_projects_carry_their_vo_properties_and_tags() {
    let site = tiny().site;
    let p = |n: &str| site.projects.iter().find(|p| p.name == n).unwrap();
    assert_eq!(p("egi-proj").extra.get("egi.VO"), Some(&serde_json::json!("vo.access.egi.eu")));
    assert_eq!(p("egi-proj").tags, vec!["caso".to_string()]);
    assert!(p("novo").extra.is_empty());
    assert_eq!(p("novo").tags, vec!["caso".to_string()]);
    assert!(p("untagged").tags.is_empty());
    assert_eq!(p("untagged").extra.get("egi.eu:VO"), Some(&serde_json::json!("vo.untagged.eu")));
    let egi_fips: Vec<u8> =
        site.floating_ips.iter().filter(|f| f.project_id == p("egi-proj").id).map(|f| f.version).collect();
    assert_eq!(egi_fips, vec![4, 6]);
}

fn role_id(site: &Site, name: &str) -> String {
    site.role_by_name(name).unwrap().id.clone()
}

#[test]
fn every_scenario_has_the_well_known_accounts_and_roles() {
    for name in ["tiny", "small"] {
        let site = scenario::builtin(name).unwrap().generate().site;
        let mut roles: Vec<&str> = site.roles.iter().map(|r| r.name.as_str()).collect();
        roles.sort();
        assert_eq!(roles, vec!["admin", "member", "reader"]);
        for r in &site.roles {
            assert!(r.id.len() == 32 && r.id.chars().all(|c| c.is_ascii_hexdigit()), "{}", r.id);
        }
        let admin = site.users.iter().find(|u| u.name == scenario::ADMIN_USER).unwrap();
        let acc = site.users.iter().find(|u| u.name == scenario::ACCOUNTING_USER).unwrap();
        assert_eq!((admin.password.as_str(), acc.password.as_str()), (scenario::PASSWORD, scenario::PASSWORD));
        let admin_project = site.projects.iter().find(|p| p.name == scenario::ADMIN_PROJECT).unwrap();
        let has = |user: &str, role: &str, scope: AssignmentScope| {
            site.assignments.iter().any(|a| a.user_id == user && a.role_id == role_id(&site, role) && a.scope == scope)
        };
        assert!(has(&admin.id, "admin", AssignmentScope::Project(admin_project.id.clone())));
        assert!(has(&admin.id, "admin", AssignmentScope::System));
        assert!(has(&acc.id, "reader", AssignmentScope::System));
        for p in site.projects.iter().filter(|p| p.id != admin_project.id) {
            assert!(has(&acc.id, "reader", AssignmentScope::Project(p.id.clone())), "{name}: {}", p.name);
        }
        assert!(!has(&acc.id, "reader", AssignmentScope::Project(admin_project.id.clone())));
    }
}

fn assert_quiet_day(sc: &sim::Scenario) {
    let (lo, hi) = (sc.reference_time, sc.reference_time + Duration::days(1));
    let quiet = |x: DateTime<Utc>| x > lo && x <= hi;
    let s = &sc.site;
    for srv in &s.servers {
        assert!(!quiet(srv.created), "{}: {} created {}", sc.name, srv.id, srv.created);
        for e in &srv.events {
            assert!(!quiet(e.at), "{}: server {} event {} at {}", sc.name, srv.id, e.action, e.at);
        }
    }
    for v in &s.volumes {
        let mut ts = vec![Some(v.created_at), v.deleted_at];
        ts.extend(v.attachments.iter().flat_map(|a| [Some(a.attached_at), a.detached_at]));
        assert!(ts.into_iter().flatten().all(|x| !quiet(x)), "{}: volume {}", sc.name, v.id);
    }
    for f in &s.floating_ips {
        let mut ts = vec![Some(f.created_at), f.deleted_at];
        ts.extend(f.associations.iter().flat_map(|a| [Some(a.from), a.to]));
        assert!(ts.into_iter().flatten().all(|x| !quiet(x)), "{}: fip {}", sc.name, f.address);
    }
    for p in &s.ports {
        assert!(!quiet(p.created_at) && !p.deleted_at.is_some_and(quiet), "{}: port {}", sc.name, p.id);
    }
    for i in &s.images {
        assert!(!quiet(i.created_at) && !quiet(i.updated_at), "{}: image {}", sc.name, i.id);
    }
}

fn assert_histories_well_formed(sc: &sim::Scenario) {
    for s in &sc.site.servers {
        let first = &s.events[0];
        assert_eq!(
            (first.action.as_str(), first.status.as_str(), first.at),
            ("create", "BUILD", s.created),
            "{}",
            s.id
        );
        assert!(s.events.windows(2).all(|w| w[0].at <= w[1].at), "{}: events out of order", s.id);
        if let Some(l) = s.launched_at {
            assert!(l >= s.created, "{}", s.id);
        }
        assert!(uuid::Uuid::parse_str(&s.id).is_ok(), "{}", s.id);
    }
}

#[test]
fn tiny_and_small_keep_the_quiet_day_and_well_formed_histories() {
    for name in ["tiny", "small"] {
        let sc = scenario::builtin(name).unwrap().generate();
        assert_quiet_day(&sc);
        assert_histories_well_formed(&sc);
    }
}

#[test]
fn medium_has_200_projects_and_20000_servers_and_keeps_the_rules() {
    let sc = scenario::builtin("medium").unwrap().generate();
    let non_admin = sc.site.projects.iter().filter(|p| p.name != "admin").count();
    assert_eq!(non_admin, 200);
    assert_eq!(sc.site.servers.len(), 20_000);
    assert_quiet_day(&sc);
    assert_histories_well_formed(&sc);
    let ids: std::collections::HashSet<&str> = sc.site.servers.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), 20_000, "server ids are unique");
    for p in &sc.site.projects {
        assert!(p.id.len() == 32 && p.id.chars().all(|c| c.is_ascii_hexdigit()), "{}", p.id);
    }
    // The mix shows up at the reference time, and some history lies in the future.
    let now = sc.reference_time;
    let mut statuses = std::collections::BTreeMap::new();
    for s in &sc.site.servers {
        if let Some(v) = s.view_at(now) {
            *statuses.entry(v.status.to_string()).or_insert(0u32) += 1;
        }
    }
    for st in ["ACTIVE", "SHUTOFF", "SUSPENDED", "PAUSED", "SHELVED_OFFLOADED", "ERROR", "DELETED"] {
        assert!(statuses.get(st).copied().unwrap_or(0) > 20, "{st}: {statuses:?}");
    }
    let future = sc.site.servers.iter().filter(|s| s.events.iter().any(|e| e.at > now)).count();
    assert!(future > 100, "{future} servers change after the reference time");
    assert!(sc.site.servers.iter().any(|s| s.image_id.is_none()), "boot from volume");
    assert!(sc.site.servers.iter().any(|s| s.launched_at.is_none()), "never launched");
    assert!(sc.site.servers.iter().any(|s| s.events.iter().any(|e| e.flavor.is_some())), "resized");
    assert!(sc.site.floating_ips.iter().any(|f| f.version == 6) && sc.site.floating_ips.iter().any(|f| f.version == 4));
    assert!(sc.site.images.iter().any(|i| i.properties.contains_key("vmcatcher_event_ad_mpuri")));
    let vo_keys: std::collections::BTreeSet<&str> =
        sc.site.projects.iter().flat_map(|p| p.extra.keys().map(String::as_str)).collect();
    assert_eq!(vo_keys.into_iter().collect::<Vec<_>>(), vec!["VO", "egi.VO", "egi.eu:VO"]);
}

fn fingerprint(sc: &sim::Scenario) -> String {
    format!("{:?}", sc.site)
}

#[test]
fn the_same_spec_gives_the_same_site_and_another_seed_a_different_one() {
    let spec = scenario::builtin("small").unwrap();
    let a = fingerprint(&spec.generate());
    let b = fingerprint(&spec.generate());
    assert_eq!(a, b);
    let other = ScenarioSpec { seed: spec.seed + 1, ..spec.clone() };
    assert_ne!(a, fingerprint(&other.generate()));
    assert_eq!(fingerprint(&tiny()), fingerprint(&tiny()));
}

#[test]
fn large_spec_asks_for_2000_projects_and_200000_servers() {
    let g = scenario::builtin("large").unwrap().generate.unwrap();
    assert_eq!((g.projects, g.servers), (2000, 200_000));
}

#[test]
fn unknown_builtin_and_bad_files_are_named_errors() {
    assert!(matches!(scenario::builtin("huge"), Err(ScenarioError::Unknown(n)) if n == "huge"));
    let err = ScenarioSpec::from_toml_str("seed = \"x\"", "bad.toml").unwrap_err();
    assert!(matches!(&err, ScenarioError::Parse { path, .. } if path == "bad.toml"), "{err}");
    let quiet = r#"
        reference_time = "2023-06-01T00:00:00Z"
        [[project]]
        name = "p"
        [[user]]
        name = "u"
        [[flavor]]
        id = "f"
        name = "f"
        vcpus = 1
        ram = 512
        disk = 1
        [[server]]
        name = "s"
        project = "p"
        user = "u"
        flavor = "f"
        created = "2023-06-01T12:00:00Z"
    "#;
    let err = ScenarioSpec::from_toml_str(quiet, "q.toml").unwrap_err();
    assert!(err.to_string().contains("quiet day"), "{err}");
    let unknown = quiet.replace("project = \"p\"", "project = \"nope\"").replace("06-01T12", "05-01T12");
    let err = ScenarioSpec::from_toml_str(&unknown, "u.toml").unwrap_err();
    assert!(err.to_string().contains("unknown project \"nope\""), "{err}");
    let ok = ScenarioSpec::from_toml_str(&quiet.replace("06-01T12", "05-01T12"), "dir/mine.toml").unwrap();
    assert_eq!(ok.name, "mine");
    let sc = ok.generate();
    assert_eq!(sc.site.server(&sc.site.servers[0].id).unwrap().view_at(sc.reference_time).unwrap().status, "BUILD");
}

#[test]
fn load_reads_a_scenario_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.toml");
    std::fs::write(&path, "seed = 7\n[generate]\nprojects = 2\nservers = 5\n").unwrap();
    let spec = ScenarioSpec::load(&path).unwrap();
    assert_eq!((spec.name.as_str(), spec.seed), ("one", 7));
    assert_eq!(spec.generate().site.servers.len(), 5);
    assert!(matches!(ScenarioSpec::load(dir.path().join("missing.toml")), Err(ScenarioError::Read { .. })));
}

/// About 6 s in a debug build.
#[test]
fn large_generates_200000_servers_and_keeps_the_rules() {
    let start = std::time::Instant::now();
    let sc = scenario::builtin("large").unwrap().generate();
    eprintln!("large generated in {:?}", start.elapsed());
    assert_eq!(sc.site.servers.len(), 200_000);
    assert_eq!(sc.site.projects.len(), 2001);
    assert_quiet_day(&sc);
    assert_histories_well_formed(&sc);
}

/// `anchored_at` moves the whole story: the reference time is the new now, every server's
/// creation and events move by the same amount, and what the site shows at its reference time
/// is what it showed before (statuses, counts, durations).
#[test]
fn an_anchored_scenario_tells_the_same_story_at_another_now() {
    let before = sim::scenario::builtin("tiny").unwrap().generate();
    let now = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:30:00Z").unwrap().with_timezone(&chrono::Utc);
    let after = before.clone().anchored_at(now);
    let by = now - before.reference_time;
    assert_eq!(after.reference_time, now);
    assert_eq!(before.site.servers.len(), after.site.servers.len());
    for (a, b) in before.site.servers.iter().zip(&after.site.servers) {
        assert_eq!(b.created, a.created + by, "{}", a.name);
        assert_eq!(b.launched_at, a.launched_at.map(|t| t + by));
        assert_eq!(
            b.events.iter().map(|e| e.at - by).collect::<Vec<_>>(),
            a.events.iter().map(|e| e.at).collect::<Vec<_>>()
        );
        let (va, vb) = (a.view_at(before.reference_time), b.view_at(now));
        assert_eq!(va.map(|v| v.status), vb.map(|v| v.status), "{}", a.name);
    }
    for (a, b) in before.site.volumes.iter().zip(&after.site.volumes) {
        assert_eq!((b.created_at, b.deleted_at), (a.created_at + by, a.deleted_at.map(|t| t + by)));
        assert_eq!(a.status_at(before.reference_time), b.status_at(now));
    }
    for (a, b) in before.site.floating_ips.iter().zip(&after.site.floating_ips) {
        assert_eq!(a.visible_at(before.reference_time), b.visible_at(now));
    }
}
