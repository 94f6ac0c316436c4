//! The ledger's listed-server cache against the in-process sim (`tiny`): a second run on the
//! same ledger takes the usage-only servers from it and lists no live servers, with the same
//! ledger; servers stopped, deleted or moved to another project between runs are never taken
//! from it, and the records follow exactly as with the cache off; an unreadable entry is listed
//! again; a cache that cannot be proved current is not used and starts afresh.

use std::collections::BTreeMap;

use accounting::ExtractConfig;
use accounting::pipeline::{self, RunReport, Windows};
use apel::{ApelText, SiteName, Window};
use chrono::{DateTime, Utc};
use ledger::{Ledger, SnapshotFilter};

mod common;
use common::{ADMIN_TOKEN, Site, session, site, start, t};

const VM_RESIZED: &str = "e0000006-0000-4000-8000-000000000006";
const VM_BFV: &str = "e0000007-0000-4000-8000-000000000007";
const VM_NANDU: &str = "e0000008-0000-4000-8000-000000000008";

fn cfg(server_cache: bool) -> ExtractConfig {
    let mut c = ExtractConfig::new(SiteName::new("TEST-SITE").unwrap(), ApelText::new("TEST-SITE-cloud").unwrap());
    c.server_cache = server_cache;
    c
}

/// Nova's `POST /servers/{id}/action` or `DELETE /servers/{id}`, as an admin.
async fn write(sim: &sim::SimHandle, server: &str, action: Option<&str>) {
    let c = reqwest::Client::new();
    let url = format!("{}/compute/v2.1/servers/{server}", sim.base_url());
    let r = match action {
        Some(a) => c.post(format!("{url}/action")).json(&serde_json::json!({ a: null })),
        None => c.delete(url),
    };
    let r = r.header("X-Auth-Token", ADMIN_TOKEN).send().await.unwrap();
    assert!(r.status().is_success(), "{action:?} {server}: {}", r.text().await.unwrap());
}

/// What a run asked Nova for servers.
#[derive(Debug)]
struct Asked {
    /// Pages of the live-server listing (`servers/detail` without `changes-since`).
    live_pages: usize,
    /// Servers read one by one (`GET /servers/{id}`).
    got: Vec<String>,
}

async fn run(sim: &sim::SimHandle, cfg: &ExtractConfig, site: &Site, window: Window) -> (RunReport, Asked) {
    let s = session(sim).await;
    sim.clear_requests();
    let ledger = Ledger::open(&site.ledger).unwrap();
    let (report, _) = pipeline::run(&s, cfg, ledger, Windows::Fixed(window), &site.spool).await.unwrap();
    assert!(report.is_complete() || report.projects.iter().all(|p| p.error.is_none() || p.vo.is_none()), "{report:#?}");
    let mut asked = Asked { live_pages: 0, got: Vec::new() };
    for r in sim.requests().iter().filter(|r| r.method == "GET") {
        let (path, query) = r.uri.split_once('?').unwrap_or((&r.uri, ""));
        let Some(rest) = path.strip_prefix("/compute/v2.1/servers/") else { continue };
        if rest == "detail" {
            asked.live_pages += usize::from(!query.contains("changes-since"));
        } else if !rest.contains('/') {
            asked.got.push(rest.to_string());
        }
    }
    asked.got.sort();
    (report, asked)
}

fn bodies(site: &Site) -> BTreeMap<String, String> {
    Ledger::open(&site.ledger)
        .unwrap()
        .latest_snapshots(&SnapshotFilter::default())
        .unwrap()
        .into_iter()
        .map(|s| (format!("{}/{}", s.snapshot.kind, s.snapshot.key), s.snapshot.body))
        .collect()
}

fn raw(site: &Site) -> rusqlite::Connection {
    rusqlite::Connection::open(&site.ledger).unwrap()
}

/// The cache's entries: server id → (project, stored body as JSON).
fn entries(site: &Site) -> BTreeMap<String, (String, serde_json::Value)> {
    let c = raw(site);
    let mut st = c.prepare("SELECT server_id, project_id, body FROM listed_servers").unwrap();
    st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
        .unwrap()
        .map(|r| {
            let (id, project, body) = r.unwrap();
            (id, (project, serde_json::from_str(&body).unwrap()))
        })
        .collect()
}

/// Cached servers not updated since `from` (with this status, if given): after a run over a
/// window starting there, those it found in the live listing (usage-only).
fn usage_only(site: &Site, from: DateTime<Utc>, status: Option<&str>) -> Vec<String> {
    entries(site)
        .into_iter()
        .filter(|(_, (_, b))| status.is_none_or(|s| b["s"] == s) && b["up"].as_str().is_some_and(|u| t(u) < from))
        .map(|(id, _)| id)
        .collect()
}

fn cache_report(r: &RunReport) -> accounting::server_cache::ServerCacheReport {
    r.server_cache.clone().expect("the run used the listed-server cache")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_takes_the_usage_only_servers_from_the_cache_and_lists_no_live_servers() {
    let sim = start().await;
    let window = Window::new(t("2023-05-21T00:00:00Z"), t("2023-05-25T00:00:00Z")).unwrap();
    let cached = site();
    let (first, asked1) = run(&sim, &cfg(true), &cached, window).await;
    assert!(asked1.live_pages >= 1, "tiny's window has usage-only servers: {asked1:?}");
    let r1 = cache_report(&first);
    assert_eq!((r1.used, r1.reset, r1.error.as_deref()), (0, true, None), "{r1:?}");
    let taken = usage_only(&cached, window.from(), None);
    assert!(taken.len() >= 2, "{taken:?}");
    assert_eq!(r1.stored, entries(&cached).len());
    let after_first = bodies(&cached);

    let (second, asked2) = run(&sim, &cfg(true), &cached, window).await;
    assert_eq!((asked2.live_pages, asked2.got.len()), (0, 0), "{asked2:?}");
    let r2 = cache_report(&second);
    assert_eq!((r2.used, r2.reset), (taken.len(), false), "{r2:?}");
    assert!(second.projects.iter().all(|p| p.spooled.is_empty()), "{second:#?}");
    assert_eq!(bodies(&cached), after_first);

    // The same records as runs that list the live servers (a fresh ledger, cache off).
    let uncached = site();
    let (off1, asked3) = run(&sim, &cfg(false), &uncached, window).await;
    let (_, asked4) = run(&sim, &cfg(false), &uncached, window).await;
    assert_eq!((asked3.live_pages, asked4.live_pages), (asked1.live_pages, asked1.live_pages));
    assert!(off1.server_cache.is_none() && entries(&uncached).is_empty());
    assert_eq!(bodies(&uncached), after_first);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_stopped_deleted_or_moved_between_runs_are_never_taken_from_the_cache() {
    let sim = start().await;
    let w1 = Window::new(t("2023-05-25T00:00:00Z"), t("2023-05-27T00:00:00Z")).unwrap();
    let (cached, uncached) = (site(), site());
    run(&sim, &cfg(true), &cached, w1).await;
    run(&sim, &cfg(false), &uncached, w1).await;
    let taken = usage_only(&cached, w1.from(), None);
    let active = usage_only(&cached, w1.from(), Some("ACTIVE"));
    // Usage-only in the window, of project egi-proj: resized before it, booted from a volume, ñandú.
    let [stopped, moved, deleted] = [VM_RESIZED, VM_BFV, VM_NANDU].map(String::from);
    let (stopped, moved, deleted) = (&stopped, &moved, &deleted);
    assert!([stopped, moved, deleted].iter().all(|id| active.contains(id)), "{active:?}");
    let before = bodies(&cached);

    write(&sim, stopped, Some("os-stop")).await;
    write(&sim, deleted, None).await;
    // The sim deletes a second later: past it.
    sim.set_now(sim.now() + chrono::Duration::seconds(5));
    // A server moved to another project without its `updated` moving (a database edit): its
    // entry names the old project, so the usage entry of its new one does not match it.
    raw(&cached)
        .execute(
            "UPDATE listed_servers SET body = json_set(body, '$.t', 'another-project') WHERE server_id = ?1",
            [moved],
        )
        .unwrap();
    // An hourly run: the window's end moves past the changes (usage totals change).
    let w2 = Window::new(w1.from(), sim.now() + chrono::Duration::hours(1)).unwrap();
    let (second, asked) = run(&sim, &cfg(true), &cached, w2).await;
    run(&sim, &cfg(false), &uncached, w2).await;
    assert_eq!(bodies(&cached), bodies(&uncached), "the same records as listing the live servers");
    assert_eq!(asked.live_pages, 0, "{asked:?}");
    assert_eq!(
        asked.got,
        std::slice::from_ref(moved),
        "only the moved server is read again: the others are listed as changed"
    );
    let r = cache_report(&second);
    assert_eq!((r.used, r.reset), (taken.len() - 2, false), "the moved one is found, then refused: {r:?}");
    let after = entries(&cached);
    assert!(!after.contains_key(deleted.as_str()), "a deleted server leaves the cache");
    assert_eq!(after[stopped.as_str()].1["s"], "SHUTOFF", "a changed server is stored as listed");
    // The deleted server's records changed (it ended), as the cache-off run has them.
    let records = |b: BTreeMap<String, String>| -> Vec<String> {
        b.into_iter().filter(|(k, _)| k.contains(deleted.as_str())).map(|(_, v)| v).collect()
    };
    let (now, then) = (records(bodies(&cached)), records(before));
    assert!(now != then && now.iter().any(|b| b.contains("Status: completed")), "{now:#?}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_entry_is_listed_again_and_a_cache_not_proved_current_starts_afresh() {
    let sim = start().await;
    let window = Window::new(t("2023-05-21T00:00:00Z"), t("2023-05-25T00:00:00Z")).unwrap();
    let cached = site();
    run(&sim, &cfg(true), &cached, window).await;
    let after_first = bodies(&cached);
    let taken = usage_only(&cached, window.from(), None);
    raw(&cached).execute("UPDATE listed_servers SET body = 'not json' WHERE server_id = ?1", [&taken[0]]).unwrap();
    let (second, asked) = run(&sim, &cfg(true), &cached, window).await;
    assert_eq!((asked.live_pages, asked.got.clone()), (0, vec![taken[0].clone()]), "{asked:?}");
    assert_eq!(cache_report(&second).used, taken.len() - 1);
    assert_eq!(bodies(&cached), after_first);

    // Valid only up to just before the window (the changed-server listing starts a margin
    // before the window, so it would need the cache valid a margin after that): not used, the
    // live servers are listed, the cache starts afresh.
    let valid = window.from() - chrono::Duration::seconds(1);
    raw(&cached).execute("UPDATE listed_servers_state SET valid_at = ?1", [ledger::format_time(valid)]).unwrap();
    raw(&cached)
        .execute("INSERT INTO listed_servers (server_id, project_id, body) VALUES ('gone', 'p', '{}')", [])
        .unwrap();
    let (third, asked) = run(&sim, &cfg(true), &cached, window).await;
    assert!(asked.live_pages >= 1, "{asked:?}");
    let r = cache_report(&third);
    assert_eq!((r.used, r.reset), (0, true), "{r:?}");
    assert!(!entries(&cached).contains_key("gone"), "older entries are deleted");
    assert_eq!(bodies(&cached), after_first);
    let (_, asked) = run(&sim, &cfg(true), &cached, window).await;
    assert_eq!((asked.live_pages, asked.got.len()), (0, 0), "valid again from the run that started afresh");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_updated_just_before_the_window_comes_from_the_listing_started_a_margin_earlier() {
    let sim = start().await;
    // VM_RESIZED was last updated at 10:05: inside the margin before the window, so the
    // changed-server listing (cache on) holds it, yet it is usage-only for the window.
    let window = Window::new(t("2023-05-22T10:06:00Z"), t("2023-05-25T00:00:00Z")).unwrap();
    let (cached, uncached) = (site(), site());
    let (_, asked) = run(&sim, &cfg(true), &cached, window).await;
    run(&sim, &cfg(false), &uncached, window).await;
    assert!(!asked.got.contains(&VM_RESIZED.to_string()), "{asked:?}");
    assert_eq!(bodies(&cached), bodies(&uncached));
    assert!(bodies(&cached).keys().any(|k| k.contains(VM_RESIZED)), "its record is built");
    let (_, asked) = run(&sim, &cfg(true), &cached, window).await;
    assert_eq!((asked.live_pages, asked.got.len()), (0, 0), "{asked:?}");
    assert_eq!(bodies(&cached), bodies(&uncached));
    sim.stop().await;
}
