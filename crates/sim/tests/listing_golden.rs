//! Golden answers of the listing endpoints: a broad set of listing requests
//! (Nova servers and usage, Cinder volumes, Neutron floating IPs and ports,
//! Glance images) against the `small` and `tiny` scenarios, at several
//! reference times and after changes through the API, each body hashed and
//! compared with `tests/golden/listing_hashes.txt`.
//!
//! The hashes were recorded from the simulator that scanned and sorted every
//! object per page, before listings were answered from indexes: this test is
//! what proves the indexes give byte-identical answers. `UPDATE_GOLDEN=1`
//! rewrites the file (review the diff like code).

use std::fmt::Write as _;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sim::model::Site;
use sim::state::{TokenInfo, TokenScope};

const GOLDEN: &str = "tests/golden/listing_hashes.txt";

fn token(user: &str, scope: TokenScope, roles: &[&str]) -> TokenInfo {
    TokenInfo {
        user_id: user.into(),
        user_name: user.into(),
        user_domain_id: "default".into(),
        scope,
        roles: roles.iter().map(|r| r.to_string()).collect(),
        methods: vec!["password".into()],
        issued_at: Utc::now() - Duration::hours(1),
        expires_at: Utc::now() + Duration::days(3650),
    }
}

fn project_scope(id: &str) -> TokenScope {
    TokenScope::Project { id: id.into(), name: id.into(), domain_id: "default".into() }
}

/// Records every answer as `<sha256 of status and masked body>  <label>`.
struct Recorder {
    sim: sim::SimHandle,
    http: reqwest::Client,
    lines: String,
}

impl Recorder {
    /// The body with what depends on the wall clock or the port masked: the
    /// base URL, timestamps of the day after the reference (the time of
    /// changes made through the API) and `uptime` (seconds since launch at
    /// the moment of the request).
    fn mask(&self, body: &str) -> String {
        let body = body.replace(self.sim.base_url(), "BASE");
        let mut out = String::with_capacity(body.len());
        let mut rest = body.as_str();
        while let Some(i) = rest.find("2023-06-01T") {
            out.push_str(&rest[..i + 11]);
            out.push('*');
            rest = rest[i + 11..].trim_start_matches(|c: char| c.is_ascii_digit() || matches!(c, ':' | '.' | 'Z'));
        }
        out.push_str(rest);
        let body = out;
        let mut out = String::with_capacity(body.len());
        let mut rest = body.as_str();
        while let Some(i) = rest.find("\"uptime\":") {
            out.push_str(&rest[..i + 9]);
            out.push('*');
            rest = rest[i + 9..].trim_start_matches(|c: char| c.is_ascii_digit() || c == '-');
        }
        out.push_str(rest);
        out
    }

    async fn raw(&self, tok: &str, path: &str, mv: Option<&str>) -> (u16, String) {
        let url = if path.starts_with("http") { path.to_string() } else { format!("{}{path}", self.sim.base_url()) };
        let mut req = self.http.get(url).header("X-Auth-Token", tok);
        if let Some(mv) = mv {
            req = req.header("OpenStack-API-Version", mv);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    fn record(&mut self, label: &str, status: u16, body: &str) {
        let masked = self.mask(body);
        let mut h = Sha256::new();
        h.update(status.to_string().as_bytes());
        h.update([0]);
        h.update(masked.as_bytes());
        let hash = hex::encode(&h.finalize()[..12]);
        writeln!(self.lines, "{hash}  {status}  {label}").unwrap();
    }

    /// One request.
    async fn one(&mut self, label: &str, tok: &str, path: &str, mv: Option<&str>) -> Value {
        let (status, body) = self.raw(tok, path, mv).await;
        self.record(&format!("{label} {tok} {mv:?} {}", self.mask(path)), status, &body);
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    /// A request and every page its `next` links lead to.
    async fn walk(&mut self, label: &str, tok: &str, path: &str, mv: Option<&str>) -> usize {
        let mut url = path.to_string();
        let mut pages = 0;
        loop {
            let body = self.one(&format!("{label}#{pages}"), tok, &url, mv).await;
            pages += 1;
            assert!(pages < 400, "{label}: too many pages");
            match next_link(&body) {
                Some(next) if next != url => url = next,
                _ => return pages,
            }
        }
    }
}

/// The `rel: next` href of any `*_links` list, or Glance's `next`.
fn next_link(body: &Value) -> Option<String> {
    let obj = body.as_object()?;
    for (k, v) in obj {
        if k.ends_with("_links")
            && let Some(l) = v.as_array()?.iter().find(|l| l["rel"] == "next")
        {
            return l["href"].as_str().map(String::from);
        }
    }
    obj.get("next").and_then(Value::as_str).map(|n| format!("/image{n}"))
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn naive(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Projects of the site with the most servers, most first (ties by id).
fn busy_projects(site: &Site) -> Vec<String> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in &site.servers {
        *counts.entry(s.project_id.as_str()).or_default() += 1;
    }
    let mut v: Vec<(&str, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.into_iter().map(|(p, _)| p.to_string()).collect()
}

struct Names {
    /// The admin token's project (Cinder wants it in the URL).
    admin: String,
    p1: String,
    p2: String,
    /// A server of p2 (marker from another project).
    other_server: String,
    /// A deleted server (marker that exists but is not listed by default).
    deleted_server: String,
    volume_p2: Option<String>,
    fip_p2: Option<String>,
}

fn names(site: &Site) -> Names {
    let busy = busy_projects(site);
    let (p1, p2) = (busy[0].clone(), busy[1].clone());
    let other_server = site.servers.iter().find(|s| s.project_id == p2).map(|s| s.id.clone()).unwrap_or_default();
    let deleted_server = site
        .servers
        .iter()
        .find(|s| s.events.iter().any(|e| e.status == "DELETED"))
        .map(|s| s.id.clone())
        .unwrap_or_default();
    let volume_p2 = site.volumes.iter().find(|v| v.project_id == p2).map(|v| v.id.clone());
    let fip_p2 = site.floating_ips.iter().find(|f| f.project_id == p2).map(|f| f.id.clone());
    Names { admin: site.projects[0].id.clone(), p1, p2, other_server, deleted_server, volume_p2, fip_p2 }
}

/// Every listing request of one phase; `r` is the phase's reference time.
async fn listings(rec: &mut Recorder, phase: &str, n: &Names, r: DateTime<Utc>) {
    let (p1, p2, ap) = (n.p1.as_str(), n.p2.as_str(), n.admin.as_str());
    let l = |s: &str| format!("{phase} {s}");
    let since = [r - Duration::days(120), r - Duration::days(30), r - Duration::days(7), r - Duration::days(1), r];

    // ------------------------------------------------------------ servers
    for mv in [Some("compute 2.1"), Some("compute 2.47"), Some("compute 2.79")] {
        rec.walk(&l("servers all"), "admin", "/compute/v2.1/servers/detail?all_tenants=1", mv).await;
    }
    for mv in [Some("compute 2.1"), Some("compute 2.79")] {
        rec.walk(&l("servers all paged"), "admin", "/compute/v2.1/servers/detail?all_tenants=1&limit=17", mv).await;
        rec.walk(&l("servers summary paged"), "admin", "/compute/v2.1/servers?all_tenants=1&limit=23", mv).await;
        rec.walk(&l("servers reader paged"), "system", "/compute/v2.1/servers/detail?all_tenants=True&limit=29", mv)
            .await;
    }
    let mv = Some("compute 2.79");
    for t in since {
        let t = iso(t);
        rec.walk(&l("since"), "admin", &format!("/compute/v2.1/servers/detail?all_tenants=1&changes-since={t}"), mv)
            .await;
        rec.walk(
            &l("since paged"),
            "system",
            &format!("/compute/v2.1/servers/detail?all_tenants=1&changes-since={t}&limit=11"),
            mv,
        )
        .await;
        rec.walk(
            &l("since project"),
            "admin",
            &format!("/compute/v2.1/servers/detail?all_tenants=1&project_id={p1}&changes-since={t}&limit=5"),
            mv,
        )
        .await;
        rec.walk(&l("since own"), "p1", &format!("/compute/v2.1/servers/detail?changes-since={t}&limit=4"), mv).await;
        for d in ["false", "yes"] {
            rec.walk(
                &l("since deleted"),
                "admin",
                &format!("/compute/v2.1/servers/detail?all_tenants=1&changes-since={t}&deleted={d}&limit=21"),
                mv,
            )
            .await;
        }
    }
    let (a, b) = (iso(since[2]), iso(since[1]));
    rec.one(
        &l("before"),
        "admin",
        &format!("/compute/v2.1/servers/detail?all_tenants=1&changes-since={b}&changes-before={a}"),
        mv,
    )
    .await;
    rec.one(
        &l("before 2.65"),
        "admin",
        &format!("/compute/v2.1/servers/detail?all_tenants=1&changes-since={b}&changes-before={a}"),
        Some("compute 2.65"),
    )
    .await;
    rec.one(
        &l("before only"),
        "admin",
        &format!("/compute/v2.1/servers/detail?all_tenants=1&changes-before={a}&limit=50"),
        mv,
    )
    .await;
    rec.one(
        &l("before < since"),
        "admin",
        &format!("/compute/v2.1/servers/detail?all_tenants=1&changes-since={a}&changes-before={b}"),
        mv,
    )
    .await;
    rec.one(&l("since bad"), "admin", "/compute/v2.1/servers/detail?all_tenants=1&changes-since=yesterday", mv).await;
    for d in ["true", "false"] {
        rec.walk(
            &l("deleted"),
            "admin",
            &format!("/compute/v2.1/servers/detail?all_tenants=1&deleted={d}&limit=13"),
            mv,
        )
        .await;
    }
    rec.walk(&l("status DELETED"), "admin", "/compute/v2.1/servers/detail?all_tenants=1&status=DELETED&limit=13", mv)
        .await;
    for key in ["project_id", "tenant_id"] {
        rec.walk(
            &l("project filter"),
            "admin",
            &format!("/compute/v2.1/servers/detail?all_tenants=1&{key}={p2}&limit=6"),
            mv,
        )
        .await;
        rec.walk(
            &l("project filter reader"),
            "system",
            &format!("/compute/v2.1/servers?all_tenants=1&{key}={p1}&limit=13"),
            mv,
        )
        .await;
    }
    rec.one(&l("project filter unknown"), "admin", "/compute/v2.1/servers/detail?all_tenants=1&project_id=nope", mv)
        .await;
    rec.walk(&l("own"), "p1", "/compute/v2.1/servers/detail?limit=3", mv).await;
    rec.walk(&l("own ignores project_id"), "p1", &format!("/compute/v2.1/servers/detail?project_id={p2}&limit=8"), mv)
        .await;
    rec.one(&l("own all_tenants"), "p1", "/compute/v2.1/servers/detail?all_tenants=1", mv).await;
    rec.one(&l("own deleted ignored"), "p1", "/compute/v2.1/servers/detail?deleted=true", mv).await;
    rec.one(&l("admin own project"), "admin", "/compute/v2.1/servers/detail", mv).await;
    rec.one(&l("system no all_tenants"), "system", "/compute/v2.1/servers/detail", mv).await;
    rec.one(&l("all_tenants=0"), "admin", "/compute/v2.1/servers/detail?all_tenants=0", mv).await;
    rec.one(&l("all_tenants empty"), "admin", "/compute/v2.1/servers/detail?all_tenants=&limit=5", mv).await;
    rec.one(&l("all_tenants bad"), "admin", "/compute/v2.1/servers/detail?all_tenants=maybe", mv).await;
    for lim in ["0", "1", "1000", "5000", "abc", "-1"] {
        rec.one(&l("limit"), "admin", &format!("/compute/v2.1/servers/detail?all_tenants=1&limit={lim}"), mv).await;
    }
    for m in ["nope", n.other_server.as_str(), n.deleted_server.as_str()] {
        rec.one(&l("marker"), "admin", &format!("/compute/v2.1/servers/detail?all_tenants=1&limit=10&marker={m}"), mv)
            .await;
        rec.one(
            &l("marker project"),
            "admin",
            &format!("/compute/v2.1/servers/detail?all_tenants=1&project_id={p1}&limit=10&marker={m}"),
            mv,
        )
        .await;
        rec.one(
            &l("marker since"),
            "admin",
            &format!("/compute/v2.1/servers/detail?all_tenants=1&changes-since={}&limit=10&marker={m}", iso(since[1])),
            mv,
        )
        .await;
        rec.one(&l("marker own"), "p1", &format!("/compute/v2.1/servers/detail?limit=10&marker={m}"), mv).await;
    }
    // Filters and sorting (served by a full scan).
    for q in [
        "status=ACTIVE&limit=31",
        "status=shutoff&status=SUSPENDED",
        "status=BOGUS",
        "name=vm-0&limit=15",
        "sort_key=display_name&sort_dir=asc&limit=29",
        "sort_key=updated_at&limit=33",
        "sort_key=bogus",
        "sort_dir=asc",
        "sort_key=id&limit=40",
        "vm_state=stopped",
        "host=compute-001",
        "flavor=nope",
        "ip=10.0.0",
        "tags=a",
    ] {
        rec.walk(&l("filter"), "admin", &format!("/compute/v2.1/servers/detail?all_tenants=1&{q}"), mv).await;
    }
    rec.one(&l("user filter"), "admin", "/compute/v2.1/servers/detail?all_tenants=1&user_id=nope", mv).await;

    // -------------------------------------------------------------- usage
    let end = naive(r);
    for start in [r - Duration::days(30), r - Duration::days(3)] {
        let start = naive(start);
        let q = format!("start={start}&end={end}");
        for mv in [Some("compute 2.1"), Some("compute 2.40"), Some("compute 2.79")] {
            rec.walk(&l("usage"), "system", &format!("/compute/v2.1/os-simple-tenant-usage?{q}"), mv).await;
            rec.walk(
                &l("usage detailed"),
                "admin",
                &format!("/compute/v2.1/os-simple-tenant-usage?{q}&detailed=1"),
                mv,
            )
            .await;
            rec.walk(&l("usage tenant"), "p1", &format!("/compute/v2.1/os-simple-tenant-usage/{p1}?{q}"), mv).await;
        }
        let mv = Some("compute 2.40");
        rec.walk(
            &l("usage paged"),
            "system",
            &format!("/compute/v2.1/os-simple-tenant-usage?{q}&detailed=1&limit=15"),
            mv,
        )
        .await;
        rec.walk(&l("usage paged summary"), "admin", &format!("/compute/v2.1/os-simple-tenant-usage?{q}&limit=19"), mv)
            .await;
        rec.walk(
            &l("usage tenant paged"),
            "system",
            &format!("/compute/v2.1/os-simple-tenant-usage/{p2}?{q}&limit=3"),
            mv,
        )
        .await;
        for m in ["nope", n.other_server.as_str(), n.deleted_server.as_str()] {
            rec.one(
                &l("usage marker"),
                "admin",
                &format!("/compute/v2.1/os-simple-tenant-usage?{q}&limit=5&marker={m}"),
                mv,
            )
            .await;
            rec.one(
                &l("usage tenant marker"),
                "admin",
                &format!("/compute/v2.1/os-simple-tenant-usage/{p1}?{q}&limit=5&marker={m}"),
                mv,
            )
            .await;
        }
    }
    rec.one(&l("usage forbidden"), "p1", "/compute/v2.1/os-simple-tenant-usage", Some("compute 2.40")).await;
    rec.one(
        &l("usage bad window"),
        "admin",
        &format!("/compute/v2.1/os-simple-tenant-usage?start={end}&end={end}"),
        None,
    )
    .await;
    rec.one(&l("usage other tenant"), "p1", &format!("/compute/v2.1/os-simple-tenant-usage/{p2}?end={end}"), None)
        .await;
    rec.one(&l("usage empty tenant"), "admin", &format!("/compute/v2.1/os-simple-tenant-usage/nope?end={end}"), None)
        .await;

    // ------------------------------------------------------------ volumes
    for mv in [None, Some("volume 3.45"), Some("volume 3.71")] {
        rec.walk(&l("volumes all"), "admin", &format!("/volume/v3/{ap}/volumes/detail?all_tenants=1"), mv).await;
        rec.walk(
            &l("volumes all paged"),
            "admin",
            &format!("/volume/v3/{ap}/volumes/detail?all_tenants=1&limit=6"),
            mv,
        )
        .await;
        rec.walk(&l("volumes summary paged"), "admin", &format!("/volume/v3/{ap}/volumes?all_tenants=1&limit=7"), mv)
            .await;
        rec.walk(&l("volumes own"), "p1", &format!("/volume/v3/{p1}/volumes/detail?limit=2"), mv).await;
        rec.walk(
            &l("volumes project"),
            "admin",
            &format!("/volume/v3/{ap}/volumes/detail?all_tenants=1&project_id={p2}&limit=2"),
            mv,
        )
        .await;
    }
    let mv = Some("volume 3.71");
    rec.walk(&l("volumes reader"), "system", "/volume/v3/volumes/detail?all_tenants=True&limit=5", mv).await;
    rec.one(
        &l("volumes count"),
        "admin",
        &format!("/volume/v3/{ap}/volumes/detail?all_tenants=1&with_count=true&limit=3"),
        mv,
    )
    .await;
    rec.walk(
        &l("volumes caso"),
        "p1",
        &format!("/volume/v3/{p1}/volumes/detail?changes-since={}&limit=3", naive(since[1])),
        None,
    )
    .await;
    for q in
        ["sort=size:asc,created_at&limit=5", "sort_key=name&sort_dir=asc&limit=4", "status=in-use", "offset=3&limit=4"]
    {
        rec.walk(&l("volumes filter"), "admin", &format!("/volume/v3/{ap}/volumes/detail?all_tenants=1&{q}"), mv).await;
    }
    let vol_markers = ["nope".to_string(), n.volume_p2.clone().unwrap_or_default()];
    for m in &vol_markers {
        rec.one(
            &l("volumes marker"),
            "admin",
            &format!("/volume/v3/{ap}/volumes/detail?all_tenants=1&limit=4&marker={m}"),
            mv,
        )
        .await;
        rec.one(&l("volumes marker own"), "p1", &format!("/volume/v3/{p1}/volumes/detail?limit=4&marker={m}"), mv)
            .await;
    }

    // ------------------------------------------------------------ network
    for tok in ["admin", "system", "p1"] {
        rec.walk(&l("fips"), tok, "/network/v2.0/floatingips", None).await;
        rec.walk(&l("fips paged"), tok, "/network/v2.0/floatingips?limit=6", None).await;
        rec.walk(&l("ports paged"), tok, "/network/v2.0/ports?limit=37", None).await;
    }
    rec.one(&l("ports all"), "admin", "/network/v2.0/ports", None).await;
    for q in [
        format!("project_id={p2}&limit=9"),
        format!("tenant_id={p1}"),
        "limit=25&page_reverse=true".to_string(),
        "sort_key=created_at&sort_dir=desc&limit=26".to_string(),
        "status=ACTIVE&limit=28".to_string(),
        "limit=x".to_string(),
        "bogus=1".to_string(),
    ] {
        rec.walk(&l("fips query"), "admin", &format!("/network/v2.0/floatingips?{q}"), None).await;
        rec.walk(&l("ports query"), "admin", &format!("/network/v2.0/ports?{q}"), None).await;
    }
    for m in ["nope".to_string(), n.fip_p2.clone().unwrap_or_default()] {
        rec.one(&l("fips marker"), "admin", &format!("/network/v2.0/floatingips?limit=3&marker={m}"), None).await;
        rec.one(&l("fips marker own"), "p1", &format!("/network/v2.0/floatingips?limit=3&marker={m}"), None).await;
    }
    rec.one(&l("ports device"), "admin", &format!("/network/v2.0/ports?device_id={}", n.other_server), None).await;

    // ------------------------------------------------------------- images
    for tok in ["admin", "p1"] {
        rec.walk(&l("images"), tok, "/image/v2/images", None).await;
        rec.walk(&l("images paged"), tok, "/image/v2/images?limit=3", None).await;
    }
}

async fn start(scenario: &str) -> (Recorder, Names, DateTime<Utc>) {
    let sc = sim::scenario::builtin(scenario).unwrap().generate();
    let names = names(&sc.site);
    let admin_project = sc.site.projects[0].id.clone();
    let reference = sc.reference_time;
    let sim = sim::start(sim::SimConfig::new(sc)).await.unwrap();
    sim.insert_token("admin", token("admin", project_scope(&admin_project), &["admin", "member", "reader"]));
    sim.insert_token("system", token("accounting", TokenScope::System, &["reader"]));
    sim.insert_token("p1", token("member1", project_scope(&names.p1), &["member", "reader"]));
    let rec = Recorder { sim, http: reqwest::Client::new(), lines: String::new() };
    (rec, names, reference)
}

async fn post(rec: &Recorder, tok: &str, path: &str, body: Option<Value>) -> u16 {
    let url = format!("{}{path}", rec.sim.base_url());
    let req = match body {
        Some(b) => rec.http.post(url).json(&b),
        None => rec.http.delete(url),
    };
    req.header("X-Auth-Token", tok).send().await.unwrap().status().as_u16()
}

/// The scenario's answers: at the reference time, moved back and forward
/// (with `move_time`),
/// and after a suspend, a stop and a delete through the API.
async fn scenario_answers(scenario: &str, move_time: bool) -> String {
    let (mut rec, n, r) = start(scenario).await;
    listings(&mut rec, &format!("{scenario}@ref"), &n, r).await;
    let moves = if move_time {
        &[("back40d", r - Duration::days(40) + Duration::seconds(7_777)), ("fwd9d", r + Duration::days(9))][..]
    } else {
        &[]
    };
    for &(label, t) in moves {
        rec.sim.set_now(t);
        listings(&mut rec, &format!("{scenario}@{label}"), &n, t).await;
    }
    rec.sim.set_now(r);
    // Changes through the API, on the first three ACTIVE servers.
    let (status, body) = rec.raw("admin", "/compute/v2.1/servers/detail?all_tenants=1&status=ACTIVE", None).await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    let active: Vec<String> =
        body["servers"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert!(active.len() >= 3, "{scenario}: {} active servers", active.len());
    let mut changes = Vec::new();
    changes.push(
        post(&rec, "admin", &format!("/compute/v2.1/servers/{}/action", active[0]), Some(json!({"suspend": null})))
            .await,
    );
    changes.push(
        post(&rec, "admin", &format!("/compute/v2.1/servers/{}/action", active[1]), Some(json!({"os-stop": null})))
            .await,
    );
    changes.push(post(&rec, "admin", &format!("/compute/v2.1/servers/{}", active[2]), None).await);
    assert_eq!(changes, [202, 202, 204]);
    // The delete takes effect a second later.
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    listings(&mut rec, &format!("{scenario}@changed"), &n, r).await;
    rec.sim.stop().await;
    rec.lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_answer_byte_for_byte_as_recorded() {
    // Both at once; `tiny` (hand-made edge cases) at its reference time only.
    let (small, tiny) = tokio::join!(scenario_answers("small", true), scenario_answers("tiny", false));
    let all = small + &tiny;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &all).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    let diff: Vec<String> = want
        .lines()
        .zip(all.lines())
        .filter(|(w, g)| w != g)
        .take(20)
        .map(|(w, g)| format!("want {w}\n got {g}"))
        .collect();
    assert!(
        diff.is_empty() && want.lines().count() == all.lines().count(),
        "{} answers, {} recorded; first differences:\n{}",
        all.lines().count(),
        want.lines().count(),
        diff.join("\n")
    );
}

/// The `servers` of a listing, and of the same listing with a filter that
/// keeps every server but makes the simulator scan instead of using its
/// index (`locked=false`, 2.73+).
async fn indexed_and_scanned(rec: &Recorder, tok: &str, query: &str) -> (Value, Value) {
    let mv = Some("compute 2.79");
    let path = format!("/compute/v2.1/servers/detail?{query}");
    let (s1, indexed) = rec.raw(tok, &path, mv).await;
    let (s2, scanned) = rec.raw(tok, &format!("{path}&locked=false"), mv).await;
    assert_eq!((s1, s2), (200, 200), "{query}: {indexed} {scanned}");
    let servers = |b: &str| serde_json::from_str::<Value>(b).unwrap()["servers"].clone();
    (servers(&indexed), servers(&scanned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_and_deleted_servers_are_listed_from_the_index_as_a_scan_lists_them() {
    let sc = sim::scenario::builtin("small").unwrap().generate();
    let flavor = sc.site.flavors.iter().find(|f| f.is_public && f.vcpus <= 2 && f.ram <= 4096).unwrap();
    let image = sc
        .site
        .images
        .iter()
        .find(|i| i.visibility == "public" && i.status == "active" && i.min_ram <= flavor.ram)
        .unwrap();
    let create = json!({"server": {"name": "probe", "flavorRef": flavor.id, "imageRef": image.id, "networks": "auto"}});
    let (rec, n, r) = start("small").await;
    let since = iso(r - Duration::days(1));
    let queries = [
        "all_tenants=1".to_string(),
        "all_tenants=1&limit=7".to_string(),
        format!("all_tenants=1&project_id={}", n.admin),
        format!("all_tenants=1&changes-since={since}"),
        format!("all_tenants=1&changes-since={since}&deleted=true"),
        "limit=3".to_string(),
    ];
    let compare = |stage: &'static str| {
        let rec = &rec;
        let queries = &queries;
        async move {
            let mut firsts = Vec::new();
            for q in queries {
                let (indexed, scanned) = indexed_and_scanned(rec, "admin", q).await;
                let ids = |v: &Value| v.as_array().map(|a| a.iter().map(|s| s["id"].clone()).collect::<Vec<_>>());
                assert_eq!(ids(&indexed), ids(&scanned), "{stage}: {q}");
                assert!(indexed == scanned, "{stage}: {q}: same servers, different bodies");
                firsts.push(indexed[0]["id"].as_str().map(String::from));
            }
            firsts
        }
    };
    compare("before").await;
    let mut created = Vec::new();
    for _ in 0..2 {
        let url = format!("{}/compute/v2.1/servers", rec.sim.base_url());
        let resp = rec
            .http
            .post(url)
            .header("X-Auth-Token", "admin")
            .header("OpenStack-API-Version", "compute 2.37")
            .json(&create)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
        let body: Value = resp.json().await.unwrap();
        created.push(body["server"]["id"].as_str().unwrap().to_string());
    }
    let newest = Some(created[1].clone());
    let firsts = compare("building").await;
    assert_eq!(firsts[..4], [newest.clone(), newest.clone(), newest.clone(), newest.clone()]);
    rec.sim.set_now(rec.sim.now() + Duration::seconds(3));
    let firsts = compare("active").await;
    assert_eq!(firsts[0], newest);
    let deleted = post(&rec, "admin", &format!("/compute/v2.1/servers/{}", created[1]), None).await;
    assert_eq!(deleted, 204);
    rec.sim.set_now(rec.sim.now() + Duration::seconds(2));
    let firsts = compare("deleted").await;
    assert_eq!(firsts[0], Some(created[0].clone()), "the deleted one is no longer listed");
    assert_eq!(firsts[4], newest, "but is with deleted=true");
    rec.sim.stop().await;
}
