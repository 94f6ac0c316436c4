//! Routes: each record kind spooled to its destination's spool (`SpoolConfig::with_routes`),
//! against the in-process sim's `tiny` scenario. Element names stay unique across the spools
//! of one run (the ledger knows a message by its name alone), a kind no route names is kept in
//! the ledger only, and after a crash between spooling and the ledger commit each spool's
//! orphans are adopted by the next run instead of spooled again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use accounting::ExtractConfig;
use accounting::pipeline::{self, Route, RouteError, SpoolConfig, Windows};
use apel::{ApelText, RecordKind, SiteName, Window};
use messaging::dirq::QueueSimple;

fn window() -> Window {
    Window::new("2023-05-01T00:00:00Z".parse().unwrap(), "2023-06-01T00:00:00Z".parse().unwrap()).unwrap()
}

fn cfg() -> ExtractConfig {
    let mut c = ExtractConfig::new(SiteName::new("TEST-SITE").unwrap(), ApelText::new("TEST-SITE-cloud").unwrap());
    c.project_tag = None;
    c.projects = vec!["0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b".into(), "e91c0a2f4b7c4d1e8f9a0b1c2d3e4f51".into()];
    c
}

async fn session(sim: &sim::SimHandle) -> openstack::Session {
    let c =
        openstack::CloudConfig::from_clouds_yaml(&sim.clouds_yaml(), None, "sim-accounting", "clouds.yaml").unwrap();
    openstack::Session::connect(&c).await.unwrap()
}

fn route(name: &str, spool: PathBuf, kinds: &[RecordKind]) -> Route {
    Route { name: name.into(), spool, kinds: kinds.to_vec() }
}

/// Compute (cloud, accelerator) and block (storage) spools; ip is routed nowhere.
fn two_routes(dir: &Path) -> SpoolConfig {
    SpoolConfig::with_routes(vec![
        route("compute", dir.join("compute"), &[RecordKind::Cloud, RecordKind::Accelerator]),
        route("block", dir.join("block"), &[RecordKind::Storage]),
    ])
    .unwrap()
}

/// (element name, message kind) of every element of a spool.
fn elements(spool: &Path) -> Vec<(String, RecordKind)> {
    let q = QueueSimple::open(spool).unwrap();
    q.iter()
        .unwrap()
        .into_iter()
        .map(|n| {
            let kind = apel::parse_message(&std::fs::read(q.path().join(n.as_str())).unwrap()).unwrap().0;
            (n.as_str().to_string(), kind)
        })
        .collect()
}

#[test]
fn routes_that_overlap_are_refused() {
    let r = |n: &str, s: &str, k: &[RecordKind]| route(n, PathBuf::from(s), k);
    assert_eq!(SpoolConfig::with_routes(vec![]).unwrap_err(), RouteError::Empty);
    let e = SpoolConfig::with_routes(vec![
        r("a", "/s/a", &[RecordKind::Cloud, RecordKind::Storage]),
        r("b", "/s/b", &[RecordKind::Storage]),
    ])
    .unwrap_err();
    assert_eq!(e, RouteError::KindTwice { kind: RecordKind::Storage, first: "a".into(), second: "b".into() });
    let e = SpoolConfig::with_routes(vec![r("a", "/s", &[RecordKind::Cloud]), r("b", "/s", &[RecordKind::Storage])])
        .unwrap_err();
    assert!(matches!(e, RouteError::SpoolTwice { .. }), "{e}");
    let e = SpoolConfig::with_routes(vec![r("a", "/s/a", &[RecordKind::Cloud]), r("a", "/s/b", &[RecordKind::Ip])])
        .unwrap_err();
    assert_eq!(e, RouteError::NameTwice("a".into()));
    let ok = SpoolConfig::with_routes(vec![r("a", "/s/a", &[RecordKind::Cloud]), r("b", "/s/b", &[RecordKind::Ip])])
        .unwrap();
    assert_eq!((ok.route_of(RecordKind::Ip), ok.route_of(RecordKind::Storage)), (Some(1), None));
}

#[tokio::test(flavor = "multi_thread")]
async fn each_kind_goes_to_its_routes_spool_with_names_unique_across_spools() {
    let sim = sim::start(sim::SimConfig::new(sim::scenario::builtin("tiny").unwrap().generate())).await.unwrap();
    let s = session(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = two_routes(dir.path());
    let ledger = ledger::Ledger::open(dir.path().join("l.sqlite")).unwrap();
    let (report, ledger) = pipeline::run(&s, &cfg(), ledger, Windows::Fixed(window()), &spool).await.unwrap();
    assert!(report.is_complete(), "{report:?}");

    let compute = elements(&dir.path().join("compute"));
    let block = elements(&dir.path().join("block"));
    assert!(compute.iter().any(|(_, k)| *k == RecordKind::Cloud), "{compute:?}");
    assert!(compute.iter().all(|(_, k)| matches!(k, RecordKind::Cloud | RecordKind::Accelerator)), "{compute:?}");
    assert!(!block.is_empty() && block.iter().all(|(_, k)| *k == RecordKind::Storage), "{block:?}");
    // Each spool's names end with its route's hex digit: never the same name in two spools.
    assert!(compute.iter().all(|(n, _)| n.ends_with('0')) && block.iter().all(|(n, _)| n.ends_with('1')));
    let names: BTreeSet<&str> = compute.iter().chain(&block).map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), compute.len() + block.len());
    // The ledger knows every element; ip records were extracted but routed nowhere.
    for n in &names {
        assert!(ledger.message(n).unwrap().is_some(), "{n} unknown to the ledger");
    }
    let extracted_ip: usize = report.projects.iter().filter_map(|p| p.extracted.get("ip")).sum();
    let spooled_ip: usize = report.projects.iter().filter_map(|p| p.spooled.get("ip")).sum();
    assert!(extracted_ip > 0, "tiny has floating IPs");
    assert_eq!(spooled_ip, 0);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_before_the_commit_leaves_orphans_each_spool_adopts() {
    let sim = sim::start(sim::SimConfig::new(sim::scenario::builtin("tiny").unwrap().generate())).await.unwrap();
    let s = session(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = two_routes(dir.path());
    // The first run's spooling, without its ledger (as if it died before committing).
    let lost = ledger::Ledger::open(dir.path().join("lost.sqlite")).unwrap();
    pipeline::run(&s, &cfg(), lost, Windows::Fixed(window()), &spool).await.unwrap();
    let before = (elements(&dir.path().join("compute")), elements(&dir.path().join("block")));

    let ledger = ledger::Ledger::open(dir.path().join("l.sqlite")).unwrap();
    let (report, ledger) = pipeline::run(&s, &cfg(), ledger, Windows::Fixed(window()), &spool).await.unwrap();
    let after = (elements(&dir.path().join("compute")), elements(&dir.path().join("block")));
    assert_eq!(after, before, "nothing spooled twice: every orphan adopted in its own spool");
    let adopted: BTreeSet<&str> = report.projects.iter().flat_map(|p| p.messages.iter().map(String::as_str)).collect();
    let spooled: BTreeSet<&str> = before.0.iter().chain(&before.1).map(|(n, _)| n.as_str()).collect();
    assert_eq!(adopted, spooled);
    for n in adopted {
        assert!(ledger.message(n).unwrap().is_some());
    }
    sim.stop().await;
}
