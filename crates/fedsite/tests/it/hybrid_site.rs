//! The hybrid real site (issue #16 item 3): the site's state lives in the real
//! Keystone, Nova API, Cinder API, Neutron server and Glance that
//! `scripts/peers.sh` starts and `scripts/peers_seed_nova.py` seeds (servers in
//! every state, their actions, flavors incl. a private and a deleted one,
//! volumes, ports and floating IPs); the simulator only stands in for what has
//! no real service here: GOCDB (its hybrid mode lists the real Keystone as the
//! site's service) and AMS. On that site:
//!
//! 1. real cASO 5.2.2 and `fedsite accounting extract` give the same records
//!    except where a rule of docs/compat.md says (the rules of
//!    `differential.rs`, their facts read from the real APIs);
//! 2. real cloud-info-provider 1.2 and `fedsite info` write the same document
//!    (CreationTime masked);
//! 3. `fedsite check` passes (without its VM probe: no compute node runs here).
//!
//! These tests only read the seeded site; the VO robot they add to Keystone
//! (a member of the VO projects) is their own.

use crate::caso_diff;
use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use caso_diff::{SiteFacts, caso_extractor_failures, compare, parse_utc, per_kind, spool_records};
use chrono::{DateTime, Timelike, Utc};
use serde_json::{Value, json};

/// The window starts with the seeded month: every seeded Nova and Cinder time
/// is in November 2026 (one server lived in October). It ends now: Neutron
/// stamps the floating IPs with the time of the seed run, and both tools skip
/// an IP created after the window end.
const FROM: &str = "2026-11-01";
/// The project properties holding the VO, in fedsite's precedence, as a real
/// Keystone holds them: Keystone 30 stores a project's extra property
/// `egi.eu:VO` as `egi.eu_VO` (it turns `:` and `-` in the keys of a new
/// project into `_`), so the seed's `egi.eu:VO` comes back under that name;
/// both tools are told it (cASO's `vo_property`, fedsite's `--vo-property`).
const VO_KEYS: [&str; 3] = ["egi.VO", "egi.eu_VO", "VO"];
/// The VO robot the info test reads the VO projects as (`member` of each).
const ROBOT: &str = "hybrid-robot";
/// The accounting account cASO, `fedsite accounting` and `fedsite check`'s
/// permissions read as: `reader` on every seeded project (cASO and fedsite scope
/// to each) and `admin` on project `admin` (fedsite's run-wide listings). Not a
/// system reader: real Nova 34 and Glance 33 refuse system-scoped tokens (403 on
/// `servers/detail`, flavor extra specs, `GET /v2/images`) and Cinder 29 and
/// Neutron 29 answer them empty lists (docs/sim.md, "The hybrid real site").
const ACCOUNTING: &str = "hybrid-accounting";

/// An admin client of the real site.
struct Real {
    http: reqwest::Client,
    token: String,
}

impl Real {
    async fn login() -> Real {
        let http = reqwest::Client::new();
        let token = token(&http, "admin", Some("admin")).await;
        Real { http, token }
    }

    /// GET `url` with the admin token and `version` (OpenStack-API-Version); the JSON answer.
    async fn get(&self, url: &str, version: Option<&str>) -> Value {
        let mut req = self.http.get(url).header("X-Auth-Token", &self.token);
        if let Some(v) = version {
            req = req.header("OpenStack-API-Version", v);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "GET {url}: {status} {body}");
        body
    }

    async fn send(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method.clone(), url).header("X-Auth-Token", &self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {url}: {status} {body}");
        body
    }
}

/// A password token of the real Keystone for `user`, scoped to `project` (or unscoped).
async fn token(http: &reqwest::Client, user: &str, project: Option<&str>) -> String {
    let mut auth = json!({"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": common::real_admin_password()}}}});
    if let Some(p) = project {
        auth["scope"] = json!({"project": {"name": p, "domain": {"id": "default"}}});
    }
    let resp = http
        .post(format!("{}/auth/tokens", common::real_keystone()))
        .json(&json!({"auth": auth}))
        .send()
        .await
        .expect("reaching the real Keystone");
    assert_eq!(resp.status(), 201, "real Keystone token for {user}");
    resp.headers()["x-subject-token"].to_str().unwrap().to_string()
}

/// A seeded project as Keystone holds it: id, name, the property holding its VO.
#[derive(Debug, Clone)]
struct Project {
    id: String,
    name: String,
    vo_key: Option<&'static str>,
    vo: Option<String>,
}

/// The seeded projects (scripts/peers_seed_nova.py), read from the real Keystone.
async fn seeded_projects(real: &Real) -> Vec<Project> {
    let seed = common::real_nova_seed();
    let mut out = Vec::new();
    for (name, id) in seed["projects"].as_object().expect("seed projects") {
        let id = id.as_str().unwrap();
        let p = real.get(&format!("{}/projects/{id}", common::real_keystone()), None).await["project"].clone();
        let vo_key = VO_KEYS.iter().copied().find(|k| p[*k].is_string());
        let vo = vo_key.map(|k| p[k].as_str().unwrap().to_string());
        out.push(Project { id: id.to_string(), name: name.clone(), vo_key, vo });
    }
    assert!(out.len() >= 4 && out.iter().any(|p| p.vo.is_none()), "{out:?}");
    out
}

/// A server as the real Nova shows it: its project, flavor id (2.46) and
/// embedded snapshot (2.47), last update and termination.
struct RealServer {
    project: String,
    flavor_id: String,
    snapshot: Value,
    updated: DateTime<Utc>,
    terminated: Option<DateTime<Utc>>,
}

/// A flavor as the real Nova lists it now (deleted ones are gone).
struct RealFlavor {
    id: String,
    name: String,
    public: bool,
    access: BTreeSet<String>,
    spec: (u64, u64, u64, u64, Value),
}

/// The facts the differential's rules need, read from the real APIs as admin.
struct RealFacts {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    servers: BTreeMap<String, RealServer>,
    flavors: Vec<RealFlavor>,
    /// (project, IP version, created)
    floating_ips: Vec<(String, u8, DateTime<Utc>)>,
    /// volume id → created
    volumes: BTreeMap<String, DateTime<Utc>>,
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    s.parse::<DateTime<Utc>>().ok().or_else(|| {
        chrono::NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f").ok().map(|t| t.and_utc())
    })
}

fn spec(v: &Value) -> (u64, u64, u64, u64, Value) {
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let specs = v.get("extra_specs").cloned().filter(|s| !s.is_null()).unwrap_or_else(|| json!({}));
    (n("vcpus"), n("ram"), n("disk"), n("OS-FLV-EXT-DATA:ephemeral").max(n("ephemeral")), specs)
}

impl RealFacts {
    async fn read(real: &Real, from: DateTime<Utc>, to: DateTime<Utc>) -> RealFacts {
        let nova = common::real_nova();
        // Every server, deleted ones included (changes-since).
        let url = format!("{nova}/servers/detail?all_tenants=1&changes-since=2000-01-01T00:00:00Z");
        let with_ids = real.get(&url, Some("compute 2.46")).await;
        let with_snapshots = real.get(&url, Some("compute 2.47")).await;
        let snapshots: BTreeMap<&str, &Value> = with_snapshots["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].as_str().unwrap(), &s["flavor"]))
            .collect();
        let mut servers = BTreeMap::new();
        for s in with_ids["servers"].as_array().unwrap() {
            let id = s["id"].as_str().unwrap();
            servers.insert(
                id.to_string(),
                RealServer {
                    project: s["tenant_id"].as_str().unwrap().to_string(),
                    flavor_id: s["flavor"]["id"].as_str().unwrap().to_string(),
                    snapshot: snapshots[id].clone(),
                    updated: time(&s["updated"]).expect("updated"),
                    terminated: time(&s["OS-SRV-USG:terminated_at"]),
                },
            );
        }
        let mut flavors = Vec::new();
        let listed = real.get(&format!("{nova}/flavors/detail?is_public=None"), Some("compute 2.61")).await;
        for f in listed["flavors"].as_array().unwrap() {
            let id = f["id"].as_str().unwrap().to_string();
            let public = f["os-flavor-access:is_public"].as_bool().unwrap_or(true);
            let mut access = BTreeSet::new();
            if !public {
                let a = real.get(&format!("{nova}/flavors/{id}/os-flavor-access"), None).await;
                access = a["flavor_access"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x["tenant_id"].as_str().unwrap().to_string())
                    .collect();
            }
            flavors.push(RealFlavor {
                name: f["name"].as_str().unwrap().to_string(),
                id,
                public,
                access,
                spec: spec(f),
            });
        }
        let fips = real.get(&format!("{}/v2.0/floatingips", common::real_neutron()), None).await;
        let floating_ips = fips["floatingips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let version = if f["floating_ip_address"].as_str().unwrap().contains(':') { 6 } else { 4 };
                (f["project_id"].as_str().unwrap().to_string(), version, time(&f["created_at"]).expect("created_at"))
            })
            .collect();
        let vols =
            real.get(&format!("{}/volumes/detail?all_tenants=1", common::real_cinder()), Some("volume 3.60")).await;
        let volumes = vols["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["id"].as_str().unwrap().to_string(), time(&v["created_at"]).expect("created_at")))
            .collect();
        RealFacts { from, to, servers, flavors, floating_ips, volumes }
    }

    fn current_flavor(&self, server_id: &str) -> Option<&RealFlavor> {
        let s = self.servers.get(server_id)?;
        self.flavors.iter().find(|f| f.id == s.flavor_id && (f.public || f.access.contains(&s.project)))
    }
}

impl SiteFacts for RealFacts {
    fn label(&self) -> &str {
        "hybrid"
    }
    fn window_end(&self) -> DateTime<Utc> {
        self.to
    }
    fn flavor_drift(&self, server_id: &str) -> bool {
        let Some(s) = self.servers.get(server_id) else { return false };
        self.current_flavor(server_id).is_none_or(|f| f.spec != spec(&s.snapshot))
    }
    fn snapshot_vcpus(&self, server_id: &str) -> Option<u64> {
        self.servers.get(server_id).map(|s| spec(&s.snapshot).0)
    }
    fn current_vcpus(&self, server_id: &str) -> Option<u64> {
        self.current_flavor(server_id).map(|f| f.spec.0)
    }
    fn snapshot_sizes(&self, server_id: &str) -> Option<[u64; 3]> {
        let (vcpus, ram, disk, ephemeral, _) = spec(&self.servers.get(server_id)?.snapshot);
        Some([vcpus, ram, disk + ephemeral])
    }
    fn current_sizes(&self, server_id: &str) -> Option<[u64; 3]> {
        self.current_flavor(server_id).map(|f| [f.spec.0, f.spec.1, f.spec.2 + f.spec.3])
    }
    fn flavor_note(&self, server_id: &str) -> String {
        let Some(s) = self.servers.get(server_id) else { return "?".into() };
        let current = match self.flavors.iter().find(|f| f.id == s.flavor_id) {
            None => "none of that id (deleted)".to_string(),
            Some(f) if !(f.public || f.access.contains(&s.project)) => format!("{:?}, private, not shared", f.name),
            Some(f) => format!("{:?} ({} vCPUs)", f.name, f.spec.0),
        };
        format!(
            "snapshot {} {} ({} vCPUs) vs current: {current}",
            s.flavor_id,
            s.snapshot["original_name"],
            spec(&s.snapshot).0
        )
    }
    fn both_ip_versions(&self, project: &str) -> bool {
        let v: BTreeSet<u8> =
            self.floating_ips.iter().filter(|(p, _, c)| p == project && *c <= self.to).map(|(_, v, _)| *v).collect();
        v.len() == 2
    }
    fn volume_after_window(&self, id: &str) -> bool {
        self.volumes.get(id).is_some_and(|c| *c > self.to)
    }
    fn project_of_server(&self, id: &str) -> Option<String> {
        self.servers.get(id).map(|s| s.project.clone())
    }
    fn usage_only_ended_in_window(&self, project: &str) -> Vec<String> {
        self.servers
            .iter()
            .filter(|(_, s)| s.project == project && s.updated < self.from)
            .filter(|(_, s)| s.terminated.is_some_and(|t| t >= self.from && t <= self.to))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// clouds.yaml for the real site: `hybrid` (admin, project admin) and
/// `hybrid-accounting` ([`ACCOUNTING`], project admin).
fn clouds_yaml() -> String {
    let (ks, pw) = (common::real_keystone(), common::real_admin_password());
    let tail = "    region_name: RegionOne\n    interface: public\n    identity_api_version: 3\n";
    format!(
        "clouds:\n  hybrid:\n    auth:\n      auth_url: {ks}\n      username: admin\n      password: {pw}\n      \
         user_domain_name: Default\n      project_name: admin\n      project_domain_name: Default\n{tail}  \
         hybrid-accounting:\n    auth:\n      auth_url: {ks}\n      username: {ACCOUNTING}\n      password: {pw}\n      \
         user_domain_name: Default\n      project_name: admin\n      project_domain_name: Default\n{tail}"
    )
}

/// Runs the fedsite binary with `clouds` as its clouds.yaml, `envs` added.
async fn fedsite(args: &[&str], clouds: &Path, envs: &[(&str, &str)]) -> common::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"));
    cmd.args(args)
        .env("OS_CLIENT_CONFIG_FILE", clouds)
        .env("FEDSITE_LOG", "warn")
        .env_remove("OS_CLOUD")
        .env_remove("FEDSITE_SPOOL")
        .env_remove("FEDSITE_LEDGER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.spawn().expect("starting fedsite").wait_with_output())
        .await
        .expect("fedsite finished within 180 s")
        .unwrap();
    common::Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedsite_equals_caso_on_the_hybrid_real_site_except_the_documented_deviations() {
    let real = Real::login().await;
    let projects = seeded_projects(&real).await;
    // The window's end: now, to the second (cASO reads naive times as UTC, TZ=UTC).
    let to = Utc::now().with_nanosecond(0).unwrap() - chrono::Duration::seconds(1);
    let (to_caso, to_fedsite) =
        (to.format("%Y-%m-%dT%H:%M:%S").to_string(), to.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    let facts = RealFacts::read(&real, parse_utc(FROM), to).await;
    accounting_user(&real, &projects).await;
    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    common::write_private(&clouds, clouds_yaml());
    let started = Utc::now();

    // cASO: one run per VO property in use, exactly its projects; the project
    // without a VO goes with the `VO` run (cASO drops its records, COMPAT #6).
    let mut runs: Vec<(&str, String)> = Vec::new();
    for key in VO_KEYS {
        let ids: Vec<&str> = projects
            .iter()
            .filter(|p| p.vo_key == Some(key) || (key == "VO" && p.vo_key.is_none()))
            .map(|p| p.id.as_str())
            .collect();
        if !ids.is_empty() {
            runs.push((key, ids.join(",")));
        }
    }
    let auth = common::real_keystone();
    let pw = common::real_admin_password();
    let caso_runs = futures::future::join_all(runs.iter().map(|(key, ids)| {
        let (auth, pw, to_caso) = (&auth, &pw, &to_caso);
        async move {
            let run = common::CasoRun {
                vo_property: key,
                projects: Some(ids),
                caso_tag: "no-project-has-this-tag",
                from: FROM,
                to: to_caso.as_str(),
            };
            common::run_caso_at(auth, ACCOUNTING, pw, &run).await
        }
    }));
    let (spool, ledger) = (dir.path().join("spool"), dir.path().join("ledger.sqlite"));
    let mut args: Vec<String> = [
        "accounting",
        "extract",
        "--vo-property",
        VO_KEYS[0],
        "--vo-property",
        VO_KEYS[1],
        "--vo-property",
        VO_KEYS[2],
        "--os-cloud",
        "hybrid-accounting",
        "--site-name",
        "TEST-SITE",
        "--service-name",
        "TEST-SITE-cloud",
        "--cloud-type",
        "caso/5.2.2 (OpenStack)",
        "--style",
        "caso",
        "--tag",
        "",
        "--from",
        FROM,
        "--to",
        &to_fedsite,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--spool".into(), spool.display().to_string(), "--ledger".into(), ledger.display().to_string()]);
    for p in &projects {
        args.extend(["--project".into(), p.id.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (caso_outs, fed_out) =
        tokio::join!(caso_runs, fedsite(&args, &clouds, &[("TZ", "Pacific/Chatham"), ("FEDSITE_LOG", "info")]));
    let caso_log: String = caso_outs.iter().map(|o| o.log.as_str()).collect::<Vec<_>>().join("\n");
    let ctx = format!("--- fedsite stdout\n{}\n--- fedsite stderr\n{}", fed_out.stdout, fed_out.stderr);

    // fedsite fails exactly for the project without a VO (COMPAT #6), naming it.
    let no_vo: Vec<&Project> = projects.iter().filter(|p| p.vo.is_none()).collect();
    let failures: Vec<&str> = fed_out.stderr.lines().filter(|l| l.starts_with("fedsite: accounting:")).collect();
    for line in &failures {
        assert!(no_vo.iter().any(|p| line.contains(&p.id)) && line.contains("no VO mapping"), "{line}\n{ctx}");
    }
    for p in &no_vo {
        assert!(failures.iter().any(|l| l.contains(&p.id)), "no error for {} without VO\n{ctx}", p.name);
    }
    assert!(!fed_out.status.success(), "{ctx}");

    for (extractor, project) in caso_extractor_failures(&caso_log) {
        assert!(
            no_vo.iter().any(|p| p.id == project),
            "cASO's {extractor} extractor failed for {project}, no rule covers it\ncASO log:\n{caso_log}"
        );
    }
    let caso_elements: Vec<PathBuf> = caso_outs.iter().flat_map(|o| common::dirq_elements(&o.outgoing())).collect();
    let caso = spool_records(&caso_elements, "cASO");
    let fed = spool_records(&common::dirq_elements(&spool), "fedsite");
    let c = compare(&facts, &caso, &fed, &caso_log, started);
    eprintln!(
        "[hybrid] {FROM} → {to_fedsite}: projects {:?}; cASO {:?}, fedsite {:?}; rules applied {:?}",
        projects.iter().map(|p| (&p.name, p.vo_key)).collect::<Vec<_>>(),
        per_kind(&caso),
        per_kind(&fed),
        c.applied
    );
    assert!(
        c.findings.is_empty(),
        "[hybrid] {} undocumented differences (record key, field, cASO value, fedsite value):\n{}\n{ctx}",
        c.findings.len(),
        c.report()
    );

    // The comparison had the seeded site to compare: a record for each server that
    // ran in the window in a VO project, volumes and floating IPs, and the deleted
    // flavor's server (FlavorSnapshot).
    let seed = common::real_nova_seed();
    let vo_projects: BTreeSet<&str> = projects.iter().filter(|p| p.vo.is_some()).map(|p| p.id.as_str()).collect();
    let want_servers: BTreeSet<String> = facts
        .servers
        .iter()
        .filter(|(_, s)| vo_projects.contains(s.project.as_str()) && s.terminated.is_none_or(|t| t >= facts.from))
        .map(|(id, _)| id.clone())
        .collect();
    let got = |m: &BTreeMap<caso_diff::Key, apel::Record>, kind| -> BTreeSet<String> {
        m.keys().filter(|k| k.0 == kind).map(|k| k.1.split('/').next().unwrap().to_string()).collect()
    };
    assert_eq!(got(&fed, apel::RecordKind::Cloud), want_servers, "fedsite's cloud records");
    assert_eq!(got(&caso, apel::RecordKind::Cloud), want_servers, "cASO's cloud records");
    assert!(got(&fed, apel::RecordKind::Storage).contains(seed["volumes"]["data-in-use"].as_str().unwrap()));
    assert!(got(&fed, apel::RecordKind::Accelerator).contains(seed["servers"]["gpu-active"].as_str().unwrap()));
    assert!(c.applied.contains_key(&caso_diff::Rule::FlavorSnapshot), "the deleted flavor's server: {:?}", c.applied);
    // Floating IPs: vo-access's three, vo-notebooks's released and never-associated ones.
    let ips: BTreeSet<String> = fed.keys().filter(|k| k.0 == apel::RecordKind::Ip).map(|k| k.1.clone()).collect();
    for p in ["vo-access", "vo-notebooks"] {
        assert!(ips.contains(&format!("{}/4", seed["projects"][p].as_str().unwrap())), "{p}: {ips:?}");
    }
}

/// The test's own user `name` (password as admin's), made on first use, with
/// `role` on each of `projects` (role assignments are idempotent; tests running
/// at once may both get here); its id.
async fn own_user(real: &Real, name: &str, role: &str, projects: &[&Project]) -> String {
    let ks = common::real_keystone();
    let lookup = || async {
        real.get(&format!("{ks}/users?name={name}"), None).await["users"][0]["id"].as_str().map(String::from)
    };
    let user = match lookup().await {
        Some(id) => id,
        None => {
            let body = json!({"user": {"name": name, "domain_id": "default",
                "password": common::real_admin_password(), "enabled": true}});
            let made =
                real.http.post(format!("{ks}/users")).header("X-Auth-Token", &real.token).json(&body).send().await;
            let made = made.unwrap_or_else(|e| panic!("creating user {name}: {e}"));
            if made.status() == 409 {
                lookup().await.unwrap_or_else(|| panic!("user {name}: 409 on create, then not found"))
            } else {
                let v: Value = made.json().await.unwrap();
                v["user"]["id"].as_str().unwrap_or_else(|| panic!("creating user {name}: {v}")).to_string()
            }
        }
    };
    let roles = real.get(&format!("{ks}/roles?name={role}"), None).await;
    let role_id = roles["roles"][0]["id"].as_str().unwrap().to_string();
    for p in projects {
        real.send(reqwest::Method::PUT, &format!("{ks}/projects/{}/users/{user}/roles/{role_id}", p.id), None).await;
    }
    user
}

/// [`ACCOUNTING`] with its roles: reader on each project, admin on project admin, reader on
/// the system (cASO's user lookups).
async fn accounting_user(real: &Real, projects: &[Project]) {
    let ks = common::real_keystone();
    let user = own_user(real, ACCOUNTING, "reader", &projects.iter().collect::<Vec<_>>()).await;
    let admin_project = real.get(&format!("{ks}/projects?name=admin"), None).await["projects"][0]["id"]
        .as_str()
        .expect("project admin")
        .to_string();
    let admin_role = real.get(&format!("{ks}/roles?name=admin"), None).await["roles"][0]["id"]
        .as_str()
        .expect("role admin")
        .to_string();
    real.send(reqwest::Method::PUT, &format!("{ks}/projects/{admin_project}/users/{user}/roles/{admin_role}"), None)
        .await;
    // cASO reads user names with a system-scoped client (`system_scope="all"`): without a
    // system role it has none and leaves GlobalUserName out (a fresh Keystone shows it).
    let reader = real.get(&format!("{ks}/roles?name=reader"), None).await["roles"][0]["id"]
        .as_str()
        .expect("role reader")
        .to_string();
    real.send(reqwest::Method::PUT, &format!("{ks}/system/users/{user}/roles/{reader}"), None).await;
}

/// The simulator in hybrid mode, for what cannot run here: its GOCDB lists the
/// real Keystone as site [`sim::gocdb::SITE_NAME`]'s service; with `ams`, AMS too.
async fn hybrid_sim(real: &Real, ams: Option<&Path>) -> sim::SimHandle {
    let scenario = sim::scenario::builtin("tiny").unwrap().generate();
    let mut config = sim::SimConfig::new(scenario);
    config.external_keystone =
        Some(sim::ExternalKeystone { auth_url: common::real_keystone(), service_token: real.token.clone() });
    if let Some(dir) = ams {
        config.ams = Some(sim::AmsConfig::new(dir));
    }
    sim::start(config).await.expect("starting the sim")
}

/// Every `"CreationTime": "<time>"` value replaced by `T`.
fn mask_times(doc: &str) -> String {
    common::mask_creation_time(doc.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_info_provider_and_fedsite_info_write_the_same_document_for_the_hybrid_real_site() {
    let real = Real::login().await;
    let projects = seeded_projects(&real).await;
    let vo_projects: Vec<&Project> = projects.iter().filter(|p| p.vo.is_some()).collect();
    own_user(&real, ROBOT, "member", &vo_projects).await;
    let sim = hybrid_sim(&real, None).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut yaml = format!("gocdb: {}\nendpoint: {}/\nvos:\n", sim::gocdb::SITE_NAME, common::real_keystone());
    let vos: Vec<&Project> = projects.iter().filter(|p| p.vo.is_some()).collect();
    for p in &vos {
        yaml.push_str(&format!("  - name: {}\n    auth:\n      project_id: \"{}\"\n", p.vo.as_ref().unwrap(), p.id));
    }
    std::fs::write(d.join("site.yaml"), yaml).unwrap();
    let gocdb = format!("{}/gocdb/gocdbpi/public/", sim.base_url());
    let pw = common::real_admin_password();
    let envs = [
        ("OS_AUTH_TYPE", "password"),
        ("OS_USERNAME", ROBOT),
        ("OS_PASSWORD", pw.as_str()),
        ("OS_USER_DOMAIN_NAME", "Default"),
        ("FEDSITE_GOCDB_URL", gocdb.as_str()),
    ];
    let launcher = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/run_cloud_info_provider.py");
    let site = d.join("site.yaml");
    let original = common::run_venv(
        "python",
        &[launcher.to_str().unwrap(), site.to_str().unwrap()],
        &envs,
        Some(d),
        Duration::from_secs(180),
    )
    .await;
    original.assert_success("cloud-info-provider-service");
    let clouds = d.join("no-clouds.yaml");
    let ours = fedsite(&["info", site.to_str().unwrap(), "--gocdb-url", &gocdb], &clouds, &envs).await;
    ours.assert_success("fedsite info");
    assert_eq!(
        mask_times(&original.stdout),
        mask_times(&ours.stdout),
        "--- cloud-info-provider\n{}\n--- fedsite\n{}",
        original.stdout,
        ours.stdout
    );

    // What the shared document says of the real site (so a change on both sides still shows).
    let doc: Value = serde_json::from_str(&ours.stdout).unwrap();
    let svc = &doc["CloudComputingService"][0];
    assert_eq!(svc["OtherInfo"], json!({"gocdb_id": sim::gocdb::SERVICE_ID, "site_name": sim::gocdb::SITE_NAME}));
    assert_eq!(doc["CloudComputingEndpoint"][0]["HealthState"], "ok", "{}", ours.stdout);
    let shares = doc["Share"].as_array().unwrap();
    assert_eq!(shares.len(), vos.len(), "{}", ours.stdout);
    // The servers alive in the VO projects (deleted ones are not listed): in
    // vo-access web-active, gpu-active, resized (ACTIVE) and batch-shutoff (SHUTOFF);
    // in vo-biomed private-flavor (ACTIVE), paused, suspended; in vo-notebooks shelved.
    let alive = RealFacts::read(&real, Utc::now(), Utc::now()).await;
    let vo_ids: BTreeSet<&str> = vos.iter().map(|p| p.id.as_str()).collect();
    let total =
        alive.servers.values().filter(|s| vo_ids.contains(s.project.as_str()) && s.terminated.is_none()).count();
    assert_eq!((svc["TotalVM"].as_u64(), total), (Some(8), 8), "{svc:#}");
    let states = ["RunningVM", "HaltedVM", "SuspendedVM"].map(|k| svc[k].as_i64());
    // cloud-info-provider counts SHUTOFF as halted, SUSPENDED as suspended, any
    // other status (PAUSED, SHELVED_OFFLOADED too) as running.
    assert_eq!(states, [Some(6), Some(1), Some(1)], "running, halted, suspended: {svc:#}");
    // The private flavor (shared with two VO projects) and the GPU flavor are published;
    // the deleted flavor is not.
    let types: BTreeSet<&str> =
        doc["CloudComputingInstanceType"].as_array().unwrap().iter().filter_map(|f| f["Name"].as_str()).collect();
    assert!(types.contains("p1.private") && types.contains("g1.v100") && !types.contains("m1.retired"), "{types:?}");
    assert!(
        doc["CloudComputingVirtualAccelerator"].as_array().is_some_and(|a| !a.is_empty()),
        "the GPU flavor's accelerator"
    );
    sim.stop().await;
}

/// A self-signed host certificate valid for a year, key mode 0600.
fn host_cert(dir: &Path) -> (PathBuf, PathBuf) {
    use chrono::Datelike;
    use std::os::unix::fs::PermissionsExt;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["host.example.org".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "host.example.org");
    let (from, to) = (Utc::now() - chrono::Duration::days(2), Utc::now() + chrono::Duration::days(365));
    params.not_before = rcgen::date_time_ymd(from.year(), from.month() as u8, from.day() as u8);
    params.not_after = rcgen::date_time_ymd(to.year(), to.month() as u8, to.day() as u8);
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (dir.join("hostcert.pem"), dir.join("hostkey.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    (c, k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedsite_check_passes_on_the_hybrid_real_site() {
    let real = Real::login().await;
    let projects = seeded_projects(&real).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    accounting_user(&real, &projects).await;
    let sim = hybrid_sim(&real, Some(&d.join("ams"))).await;
    let clouds = d.join("clouds.yaml");
    common::write_private(&clouds, clouds_yaml());
    let (cert, key) = host_cert(d);

    // What the accounting leaves: a ledger with a message AMS took an hour ago, a
    // spool with a fresh element; the information document publishing the VOs.
    let ledger = d.join("ledger.sqlite");
    {
        let mut l = ledger::Ledger::open(&ledger).unwrap();
        let msg = ledger::NewMessage {
            element: "5f000000/5f000000000000".into(),
            kind: "cloud".into(),
            created_at: Utc::now() - chrono::Duration::hours(1),
            records: vec![],
        };
        l.record_message(&msg, None).unwrap();
        l.mark_sent(&msg.element, "ams-1").unwrap();
    }
    let spool = d.join("outgoing");
    let t = (Utc::now() - chrono::Duration::minutes(30)).timestamp() as u32;
    std::fs::create_dir_all(spool.join(format!("{:08x}", t - t % 60))).unwrap();
    std::fs::write(spool.join(format!("{:08x}/{t:08x}000001", t - t % 60)), b"APEL-cloud-message: v0.4\n").unwrap();
    // The VO projects the information document below lists (`egi.VO`, `VO`): not
    // vo-notebooks, whose `egi.eu:VO` Keystone keeps as `egi.eu_VO`.
    let vos: Vec<&Project> = projects.iter().filter(|p| matches!(p.vo_key, Some("egi.VO" | "VO"))).collect();
    assert_eq!(vos.len(), 2, "{projects:?}");
    let policies: Vec<Value> = vos
        .iter()
        .map(|p| {
            let vo = p.vo.as_ref().unwrap();
            json!({"ID": format!("share_{vo}_Policy"), "Scheme": "org.glite.standard",
                   "Rule": [format!("VO:{vo}")], "Associations": {"PolicyUserDomain": [vo]}})
        })
        .collect();
    let info = d.join("glue.json");
    std::fs::write(&info, serde_json::to_vec(&json!({"MappingPolicy": policies})).unwrap()).unwrap();

    let port = |u: String| u.rsplit(':').next().unwrap().to_string();
    let (p1, p2) = (port(sim.ams_url().unwrap()), port(sim.ams_authn_url().unwrap()));
    let ca = sim.ams_ca_pem_path().unwrap();
    let vo_args: Vec<String> = vos.iter().map(|p| format!("{}={}", p.vo.as_ref().unwrap(), p.name)).collect();
    let mut args: Vec<&str> = vec!["check", "--os-cloud", "hybrid", "--json", "--connect-timeout", "5"];
    for v in &vo_args {
        args.extend(["--vo", v.as_str()]);
    }
    let (ledger_s, spool_s, cert_s, key_s, info_s, ca_s) = (
        ledger.display().to_string(),
        spool.display().to_string(),
        cert.display().to_string(),
        key.display().to_string(),
        info.display().to_string(),
        ca.display().to_string(),
    );
    args.extend([
        "--accounting-cloud",
        "hybrid-accounting",
        "--ams-host",
        "localhost",
        "--ams-port",
        &p1,
        "--ams-port",
        &p2,
        "--ams-ca",
        &ca_s,
        "--ledger",
        &ledger_s,
        "--spool",
        &spool_s,
        "--cert",
        &cert_s,
        "--key",
        &key_s,
        "--info",
        &info_s,
        // No compute node runs here: a server the real Nova API accepts is never built.
        "--no-vm-probe",
    ]);
    let out = fedsite(&args, &clouds, &[]).await;
    let report: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("fedsite check printed no JSON ({e}):\n{}\n{}", out.stdout, out.stderr));
    let checks = report["checks"].as_array().unwrap();
    // Every check passes but two the seed makes so on purpose: the VM probe, told to
    // skip, and the benchmark check, which finds the one flavor seeded without
    // benchmark metadata (`m1.nobench`, cASO's and fedsite's no-benchmark case).
    let get = |id: &str| checks.iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no {id}: {report:#}"));
    assert_eq!(get("vm.start")["status"], "skipped", "{report:#}");
    let bench = get("flavors.benchmark");
    assert_eq!(bench["status"], "warning", "{bench:#}");
    assert!(
        bench["message"].as_str().unwrap().starts_with("1 of 5 flavors lack benchmark metadata: m1.nobench "),
        "{bench:#}"
    );
    let not_ok: Vec<&Value> = checks
        .iter()
        .filter(|c| c["status"] != "ok" && c["id"] != "vm.start" && c["id"] != "flavors.benchmark")
        .collect();
    assert!(not_ok.is_empty(), "not ok: {not_ok:#?}");
    assert_eq!((out.status.code(), report["status"].as_str()), (Some(1), Some("warning")), "{report:#}");
    // The flavors seen are the real Nova's: the accelerator check found the GPU flavor.
    assert!(get("flavors.accelerator")["message"].as_str().unwrap().contains("all 1 GPU flavors"), "{report:#}");
    let ids: BTreeSet<&str> = checks.iter().filter_map(|c| c["id"].as_str()).collect();
    for want in [
        "catalog.identity",
        "catalog.compute",
        "catalog.volume",
        "catalog.image",
        "catalog.network",
        "ports.identity",
        "permissions.list-users",
        "permissions.list-projects",
        "permissions.projects",
        "flavors.benchmark",
        "flavors.accelerator",
        "accounting.last-send",
        "accounting.spool",
        "certificate.expiry",
        "info.vos",
    ] {
        assert!(ids.contains(want), "no {want} in {ids:?}");
    }
    for p in &vos {
        assert!(ids.contains(format!("projects.{}", p.vo.as_ref().unwrap()).as_str()), "{ids:?}");
    }
    assert!(ids.contains(format!("ams.{p1}").as_str()) && ids.contains(format!("ams.{p2}").as_str()), "{ids:?}");
    sim.stop().await;
}
