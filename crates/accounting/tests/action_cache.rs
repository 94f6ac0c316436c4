//! The ledger's instance-action cache against the in-process sim (`tiny`): a second run on the
//! same ledger lists no actions of unchanged servers and produces the same ledger; a server
//! acted on through Nova's `POST /servers/{id}/action` is listed again and its SuspendDuration
//! follows; a server updated within the safety margin of the fetch is not cached; the switch
//! turns the cache off; records are the same as without the cache.

use std::collections::BTreeMap;

use accounting::ExtractConfig;
use accounting::pipeline::{self, RunReport, Windows};
use apel::{ApelText, CloudRecord, Record, SiteName, Window};
use chrono::{DateTime, Duration, Utc};
use ledger::{Ledger, SnapshotFilter, StoredSnapshot};

mod common;
use common::{ADMIN_TOKEN, Site, session, site, start, t};

const PROJ1: &str = "0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b";
const VM_RUNNING: &str = "11111111-1111-4111-8111-111111111111";
const VM_RESIZED: &str = "e0000006-0000-4000-8000-000000000006";
const VM_NANDU: &str = "e0000008-0000-4000-8000-000000000008";

fn cfg() -> ExtractConfig {
    ExtractConfig::new(SiteName::new("TEST-SITE").unwrap(), ApelText::new("TEST-SITE-cloud").unwrap())
}

/// Nova's `POST /servers/{id}/action` (e.g. `suspend`), as an admin.
async fn act(sim: &sim::SimHandle, server: &str, action: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}/compute/v2.1/servers/{server}/action", sim.base_url()))
        .header("X-Auth-Token", ADMIN_TOKEN)
        .json(&serde_json::json!({ action: null }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "{action} {server}: {}", r.text().await.unwrap());
}

/// The server's `updated` as Nova shows it.
async fn updated(sim: &sim::SimHandle, server: &str) -> DateTime<Utc> {
    let r: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/compute/v2.1/servers/{server}", sim.base_url()))
        .header("X-Auth-Token", ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    t(r["server"]["updated"].as_str().unwrap())
}

/// One extraction into the site's ledger and spool; the servers whose actions it listed.
async fn run(sim: &sim::SimHandle, cfg: &ExtractConfig, site: &Site, window: Window) -> (RunReport, Vec<String>) {
    let s = session(sim).await;
    sim.clear_requests();
    let ledger = Ledger::open(&site.ledger).unwrap();
    let (report, _) = pipeline::run(&s, cfg, ledger, Windows::Fixed(window), &site.spool).await.unwrap();
    assert!(report.is_complete() || report.projects.iter().all(|p| p.error.is_none() || p.vo.is_none()), "{report:#?}");
    let mut listed: Vec<String> = sim
        .requests()
        .iter()
        .filter_map(|r| {
            let path = r.uri.split('?').next()?;
            let id = path.strip_prefix("/compute/v2.1/servers/")?.strip_suffix("/os-instance-actions")?;
            (r.method == "GET").then(|| id.to_string())
        })
        .collect();
    listed.sort();
    (report, listed)
}

fn totals(r: &RunReport) -> (usize, usize) {
    (r.projects.iter().map(|p| p.actions_reused).sum(), r.projects.iter().map(|p| p.actions_fetched).sum())
}

fn snapshots(site: &Site) -> Vec<StoredSnapshot> {
    Ledger::open(&site.ledger).unwrap().latest_snapshots(&SnapshotFilter::default()).unwrap()
}

fn bodies(site: &Site) -> BTreeMap<String, String> {
    snapshots(site).into_iter().map(|s| (format!("{}/{}", s.snapshot.kind, s.snapshot.key), s.snapshot.body)).collect()
}

fn cloud_record(site: &Site, vm: &str) -> CloudRecord {
    let s = snapshots(site)
        .into_iter()
        .find(|s| s.snapshot.kind == "cloud" && s.snapshot.key.starts_with(vm))
        .unwrap_or_else(|| panic!("no cloud record of {vm}"));
    let (_, records) = apel::parse_message(s.snapshot.body.as_bytes()).unwrap();
    match records.into_iter().next() {
        Some(Record::Cloud(c)) => c,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_the_same_ledger_lists_no_actions_of_unchanged_servers() {
    let sim = start().await;
    let window = Window::new(t("2023-05-21T00:00:00Z"), t("2023-05-25T00:00:00Z")).unwrap();
    let cached = site();
    let (first, listed1) = run(&sim, &cfg(), &cached, window).await;
    assert!(listed1.len() >= 8, "tiny has servers suspended, paused, stopped, resized...: {listed1:?}");
    assert!(
        listed1.contains(&VM_RUNNING.to_string())
            && listed1.contains(&"e0000002-0000-4000-8000-000000000002".to_string())
    );
    assert_eq!(totals(&first), (0, listed1.len()));
    let after_first = snapshots(&cached);

    let (second, listed2) = run(&sim, &cfg(), &cached, window).await;
    assert_eq!(listed2, Vec::<String>::new(), "every list came from the ledger");
    assert_eq!(totals(&second), (listed1.len(), 0));
    // Same records: nothing new to spool, the ledger unchanged.
    assert!(second.projects.iter().all(|p| p.spooled.is_empty()), "{second:#?}");
    assert_eq!(snapshots(&cached), after_first);

    // The same records as a run that lists every action (a fresh ledger, cache off).
    let mut off = cfg();
    off.action_cache = false;
    let uncached = site();
    let (_, listed3) = run(&sim, &off, &uncached, window).await;
    assert_eq!(listed3, listed1);
    assert_eq!(bodies(&uncached), bodies(&cached));
    assert!(bodies(&cached).values().any(|b| b.contains("SuspendDuration: ")), "tiny has suspended time in the window");

    // Switched off on the cached ledger: every list again, nothing stored or read.
    let (third, listed4) = run(&sim, &off, &cached, window).await;
    assert_eq!((listed4, totals(&third)), (listed1.clone(), (0, 0)));
    assert_eq!(snapshots(&cached), after_first);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_suspended_since_is_listed_again_and_its_suspend_duration_follows() {
    let sim = start().await;
    // The window ends 6 h after the sim's reference time, when the suspension happens.
    let window = Window::new(t("2023-05-21T00:00:00Z"), t("2023-06-01T06:00:00Z")).unwrap();
    let cached = site();
    let (_, listed1) = run(&sim, &cfg(), &cached, window).await;
    assert!(listed1.contains(&VM_RUNNING.to_string()));
    let before = cloud_record(&cached, VM_RUNNING);
    assert_eq!(before.suspend_duration, None);

    let was = updated(&sim, VM_RUNNING).await;
    act(&sim, VM_RUNNING, "suspend").await;
    let now = updated(&sim, VM_RUNNING).await;
    assert!(now > was, "Nova moves `updated` on every action: {was} → {now}");

    let (second, listed2) = run(&sim, &cfg(), &cached, window).await;
    assert_eq!(listed2, [VM_RUNNING], "only the server acted on is listed again");
    assert_eq!(totals(&second), (listed1.len() - 1, 1));
    let after = cloud_record(&cached, VM_RUNNING);
    let suspended = after.suspend_duration.expect("suspended inside the window");
    let expected = (window.to() - now).num_seconds() as u64;
    assert!((expected.saturating_sub(1)..=expected).contains(&suspended), "{suspended} vs {expected}");
    assert_eq!(after.wall_duration, before.wall_duration.map(|w| w - suspended));
    // CpuDuration is WallDuration × vCPUs in both.
    assert_eq!(
        after.cpu_duration.unwrap() * before.wall_duration.unwrap(),
        before.cpu_duration.unwrap() * after.wall_duration.unwrap()
    );

    // The same record as a run without the cache.
    let mut off = cfg();
    off.action_cache = false;
    let uncached = site();
    run(&sim, &off, &uncached, window).await;
    assert_eq!(bodies(&uncached), bodies(&cached));

    // And the new list is cached in turn.
    let (_, listed3) = run(&sim, &cfg(), &cached, window).await;
    assert_eq!(listed3, Vec::<String>::new());
    assert_eq!(cloud_record(&cached, VM_RUNNING), after);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_updated_within_the_safety_margin_of_the_fetch_is_not_cached() {
    let sim = start().await;
    // The sim's clock near the real one: one server acted on 10 minutes ago (outside the
    // margin), one just now (inside it).
    sim.set_now(Utc::now() - Duration::minutes(10));
    act(&sim, VM_NANDU, "pause").await;
    sim.set_now(Utc::now());
    act(&sim, VM_RESIZED, "suspend").await;
    let recent = updated(&sim, VM_RESIZED).await;
    assert!((recent - Utc::now()).num_seconds().abs() < accounting::action_cache::SAFETY_MARGIN.num_seconds());
    assert!(Utc::now() - updated(&sim, VM_NANDU).await > accounting::action_cache::SAFETY_MARGIN);

    let window = Window::new(t("2023-05-21T00:00:00Z"), t("2023-05-25T00:00:00Z")).unwrap();
    let cached = site();
    let (first, listed1) = run(&sim, &cfg(), &cached, window).await;
    assert!(listed1.contains(&VM_RESIZED.to_string()) && listed1.contains(&VM_NANDU.to_string()), "{listed1:?}");
    let stored = Ledger::open(&cached.ledger).unwrap().cached_actions(PROJ1, &[VM_RUNNING]).unwrap();
    assert_eq!(stored.len(), 1, "proj1's vm-running (updated in 2023) is cached");
    let (second, listed2) = run(&sim, &cfg(), &cached, window).await;
    assert_eq!(listed2, [VM_RESIZED], "updated within the margin of its fetch: listed again");
    assert_eq!(totals(&second), (totals(&first).1 - 1, 1));
    assert!(second.projects.iter().all(|p| p.spooled.is_empty()), "same records: {second:#?}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_cache_costs_requests_never_the_run_and_is_reported() {
    let sim = start().await;
    let window = Window::new(t("2023-05-21T00:00:00Z"), t("2023-05-25T00:00:00Z")).unwrap();
    let broken = site();
    drop(Ledger::open(&broken.ledger).unwrap());
    drop_cache_table(&broken.ledger);
    let (report, listed) = run(&sim, &cfg(), &broken, window).await;
    assert!(listed.len() >= 8, "{listed:?}");
    assert!(
        report.projects.iter().any(|p| p.vo.is_some() && p.error.is_none() && !p.spooled.is_empty()),
        "{report:#?}"
    );
    let warnings: Vec<&str> = report.warnings.iter().map(|(_, m)| m.as_str()).collect();
    for needle in
        ["instance-action cache not read", "instance-action cache not updated", "pruning the instance-action cache"]
    {
        assert!(warnings.iter().any(|w| w.contains(needle)), "no {needle:?} in {warnings:#?}");
    }
    // The records are those of a run with a working cache.
    let fine = site();
    run(&sim, &cfg(), &fine, window).await;
    assert_eq!(bodies(&broken), bodies(&fine));
    sim.stop().await;
}

/// Drops the cache table of a ledger file (as a damaged or hand-edited ledger could be):
/// reading, writing and pruning the cache then fail.
fn drop_cache_table(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("DROP TABLE instance_actions").unwrap();
}
