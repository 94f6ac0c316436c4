//! `fedsite central serve` (issue #15): two replicas of the binary on one PostgreSQL ledger
//! against a simulated federation, for FEDSITE_SERVE_INTERVALS (default 10, as the issue asks) intervals of 2 s:
//! every (site, task, interval) run exactly once between them, by both; and a replica
//! `kill -9`ed while it holds a claim: the other takes the claim over, finishes it, and the
//! info documents equal a clean `central run`'s; the same kill during the accounting task: the
//! ledger (one schema per site) holds the records a clean run's does, every spool is sent and
//! every record reached AMS on its own topic. The server is FEDSITE_TEST_PG.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sim::state::{Service, ServiceProfile};

const INTERVAL: &str = "2";

fn intervals() -> u32 {
    std::env::var("FEDSITE_SERVE_INTERVALS").ok().and_then(|v| v.parse().ok()).unwrap_or(10)
}

fn pg_admin_url() -> String {
    match std::env::var("FEDSITE_TEST_PG") {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "FEDSITE_TEST_PG is not set: run scripts/test (or scripts/peers.sh pg-start && eval \"$(scripts/peers.sh env)\")"
        ),
    }
}

/// A PostgreSQL database of its own (dropped with it).
struct PgDb {
    name: String,
    url: String,
}

impl PgDb {
    fn create(tag: &str) -> PgDb {
        let admin = pg_admin_url();
        let name = format!(
            "fedsite_serve_{}_{tag}_{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
        );
        let mut c = postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("FEDSITE_TEST_PG={admin}: {e}"));
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let mut url = url::Url::parse(&admin).expect("FEDSITE_TEST_PG is a postgresql:// URL");
        url.set_path(&format!("/{name}"));
        PgDb { name, url: url.to_string() }
    }

    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&pg_admin_url(), postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// A claim as stored: (interval start, site, task) → (replica, finished, outcome, taken over from).
type Claims = BTreeMap<(String, String, String), (String, bool, Option<String>, Option<String>)>;

fn claims(db: &PgDb) -> Claims {
    let rows = db.client().query(
        "SELECT to_char(interval_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), site, task, \
             replica, finished_at IS NOT NULL, outcome, taken_over_from FROM central_claims",
        &[],
    );
    let rows = match rows {
        // Before the first replica has migrated the ledger.
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => Vec::new(),
        r => r.unwrap(),
    };
    rows.iter().map(|r| ((r.get(0), r.get(1), r.get(2)), (r.get(3), r.get(4), r.get(5), r.get(6)))).collect()
}

struct Fed {
    fed: sim::federation::Federation,
    dir: tempfile::TempDir,
    secret: PathBuf,
}

/// Three sites of the real folder whose services answer slowly enough (each request 30 ms
/// later) that a task is still under way when a replica is stopped.
async fn federation() -> Fed {
    let dir = tempfile::tempdir().unwrap();
    let slow = ServiceProfile { latency_ms: 30, ..Default::default() };
    let fed = sim::federation::start(sim::federation::FederationConfig {
        sites_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/catchall-2026-07/sites"),
        count: 3,
        out_dir: dir.path().join("federation"),
        template: sim::scenario::builtin("tiny").unwrap().generate().anchored_at(chrono::Utc::now()),
        profiles: [(Service::Compute, slow.clone()), (Service::Image, slow)].into_iter().collect(),
        faults: Default::default(),
    })
    .await
    .unwrap();
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, format!("{}\n", sim::OIDC_CLIENT_SECRET)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    Fed { fed, dir, secret }
}

impl Fed {
    /// `fedsite central <sub> --task info` with the federation's credentials.
    fn central(&self, sub: &str, info_dir: &Path) -> Command {
        self.central_tasks(sub, "info", info_dir)
    }

    /// `fedsite central <sub> --task <tasks>` with the federation's credentials.
    fn central_tasks(&self, sub: &str, tasks: &str, info_dir: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fedsite"));
        c.args(["central", sub, "--task", tasks, "--client-id", sim::OIDC_CLIENT_ID])
            .arg("--sites-dir")
            .arg(&self.fed.sites_dir)
            .arg("--secrets-dir")
            .arg(&self.fed.secrets_dir)
            .arg("--checkin-discovery")
            .arg(format!("{}/.well-known/openid-configuration", self.fed.issuer()))
            .arg("--client-secret-file")
            .arg(&self.secret)
            .args(["--gocdb-url", &self.fed.gocdb_url(), "--site-timeout", "60"])
            .arg("--info-dir")
            .arg(info_dir);
        c
    }

    fn replica(&self, name: &str, db: &PgDb, info_dir: &Path) -> Child {
        self.replica_with(name, db, info_dir, &[])
    }

    fn replica_with(&self, name: &str, db: &PgDb, info_dir: &Path, extra: &[&str]) -> Child {
        self.central("serve", info_dir)
            .args(extra)
            .args(["--ledger", &db.url, "--interval", INTERVAL, "--max-sites", "1", "--replica", name])
            .args(["--once-intervals", &intervals().to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// The (interval, site, task) of each line a replica printed, and the whole line.
fn finished_lines(out: &str) -> Vec<((String, String, String), String)> {
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert!(f.len() >= 5, "not a result line: {l}");
            ((f[0].to_owned(), f[1].to_owned(), f[2].to_owned()), l.to_owned())
        })
        .collect()
}

fn wait_output(child: Child, name: &str) -> String {
    let o = child.wait_with_output().unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "replica {name}: {:?}\n{out}\n{err}", o.status);
    out
}

/// Every claim finished ok, each (site, task) of every interval claimed, and the keys
/// printed by the replicas (each once) are the stored ones.
fn assert_every_interval_complete(
    claims: &Claims,
    printed: &BTreeMap<(String, String, String), String>,
    sites: &[String],
) {
    let seen: BTreeSet<&String> = claims.keys().map(|(i, _, _)| i).collect();
    assert!(seen.len() as u32 >= intervals(), "{seen:?}");
    for i in &seen {
        for s in sites {
            let key = ((*i).clone(), s.clone(), "info".to_owned());
            let (_, finished, outcome, _) =
                claims.get(&key).unwrap_or_else(|| panic!("{key:?} never claimed: {claims:?}"));
            assert!(*finished && outcome.as_deref() == Some("ok"), "{key:?}: {claims:?}");
        }
    }
    assert_eq!(claims.len(), seen.len() * sites.len(), "{claims:?}");
    assert_eq!(printed.keys().collect::<Vec<_>>(), claims.keys().collect::<Vec<_>>());
    for (key, replica) in printed {
        assert_eq!(&claims[key].0, replica, "{key:?} printed by {replica}, recorded for {}", claims[key].0);
    }
}

/// Merges the replicas' lines; a key printed twice (run twice) fails.
fn merge(outputs: &[(&str, &str)]) -> BTreeMap<(String, String, String), String> {
    let mut printed = BTreeMap::new();
    for (name, out) in outputs {
        for (key, line) in finished_lines(out) {
            if let Some(other) = printed.insert(key.clone(), (*name).to_owned()) {
                panic!("{key:?} ran twice: by {other} and by {name} ({line})");
            }
        }
    }
    printed
}

/// GET `path` from `addr` (HTTP/1.0, the whole answer's body), None when nothing answers.
fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut c = std::net::TcpStream::connect(addr).ok()?;
    write!(c, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    c.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    // hyper answers in the request's version: `HTTP/1.0 200 OK`.
    head.split(' ').nth(1).is_some_and(|code| code == "200").then(|| body.to_string())
}

/// `fedsite_central_runs_total` of `site`'s info task.
fn m_runs(metrics: &str, site: &str) -> u64 {
    let key = format!("fedsite_central_runs_total{{site=\"{site}\",task=\"info\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&key)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The simulated sites are served by their own runtime's threads; the test drives the
/// binaries and reads the ledger (blocking) from its own thread.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn two_replicas_run_every_site_once_per_interval_and_share_the_work() {
    let rt = runtime();
    let fed = rt.block_on(federation());
    let db = PgDb::create("share");
    let info = fed.dir.path().join("info");
    // Replica a also serves the status page and metrics (of both replicas' work).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let a = fed.replica_with("a", &db, &info, &["--listen", &listen]);
    let b = fed.replica("b", &db, &info);
    let sites: Vec<String> = fed.fed.sites.iter().map(|s| s.id.clone()).collect();
    // While they run: every site's info task shows on the page and in the metrics once it ran.
    let started = Instant::now();
    let (page, metrics) = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the status page never showed every site: {:?}",
            http_get(&listen, "/metrics")
        );
        if let (Some(p), Some(m)) = (http_get(&listen, "/"), http_get(&listen, "/metrics"))
            && sites.iter().all(|s| {
                m.contains(&format!("fedsite_central_last_success_timestamp_seconds{{site=\"{s}\",task=\"info\"}}"))
            })
        {
            break (p, m);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for s in &sites {
        assert!(page.contains(&format!("<td>{s}</td><td>info</td>")), "{s} on the page:\n{page}");
        assert!(m_runs(&metrics, s) >= 1, "{s}: {metrics}");
    }
    let (out_a, out_b) = (wait_output(a, "a"), wait_output(b, "b"));
    eprintln!("replica a:\n{out_a}replica b:\n{out_b}");
    let printed = merge(&[("a", &out_a), ("b", &out_b)]);
    assert_every_interval_complete(&claims(&db), &printed, &sites);
    for name in ["a", "b"] {
        assert!(printed.values().any(|r| r == name), "replica {name} ran nothing:\n{out_a}\n{out_b}");
    }
    rt.block_on(fed.fed.stop());
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
    assert!(st.success(), "kill {sig}");
}

#[test]
fn a_replica_killed_mid_work_is_taken_over_and_the_documents_equal_a_clean_run() {
    let rt = runtime();
    let fed = rt.block_on(federation());
    let clean = fed.dir.path().join("clean");
    let o = fed.central("run", &clean).output().unwrap();
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));

    let db = PgDb::create("kill");
    let info = fed.dir.path().join("info");
    let (mut a, b) = (fed.replica("a", &db, &info), fed.replica("b", &db, &info));
    // Stop `a` while it holds an unfinished claim (checked once it cannot move), then kill -9.
    let started = Instant::now();
    let held = loop {
        assert!(started.elapsed() < Duration::from_secs(60), "replica a never held a claim: {:?}", claims(&db));
        let mid = claims(&db).into_iter().find(|(_, (r, finished, _, _))| r == "a" && !finished);
        if mid.is_some() {
            signal(&a, "-STOP");
            let now = claims(&db)
                .into_iter()
                .find(|(k, (r, finished, _, _))| r == "a" && !finished && mid.as_ref().is_some_and(|(m, _)| m == k));
            if let Some((key, _)) = now {
                signal(&a, "-KILL");
                break key;
            }
            signal(&a, "-CONT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = a.wait();
    let out_b = wait_output(b, "b");

    let stored = claims(&db);
    let (replica, finished, outcome, from) = &stored[&held];
    assert_eq!(
        (replica.as_str(), *finished, outcome.as_deref(), from.as_deref()),
        ("b", true, Some("ok"), Some("a")),
        "{held:?}: {stored:?}"
    );
    let line = finished_lines(&out_b).into_iter().find(|(k, _)| *k == held).map(|(_, l)| l);
    assert!(line.as_deref().is_some_and(|l| l.contains("(taken over from a)")), "{held:?}: {out_b}");
    assert!(
        stored.values().all(|(_, finished, outcome, _)| *finished && outcome.as_deref() == Some("ok")),
        "{stored:?}"
    );

    // The documents equal a clean run's (but for their CreationTime).
    let names = |d: &Path| -> BTreeSet<String> {
        std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
    };
    assert_eq!(names(&info), names(&clean));
    assert_eq!(names(&clean).len(), fed.fed.sites.len());
    for n in names(&clean) {
        assert_eq!(
            common::mask_creation_time(&std::fs::read(info.join(&n)).unwrap()),
            common::mask_creation_time(&std::fs::read(clean.join(&n)).unwrap()),
            "{n}"
        );
    }
    rt.block_on(fed.fed.stop());
}

/// (kind, key) of every record a site's ledger holds.
fn ledger_keys(target: &str, site: &str) -> BTreeSet<(String, String)> {
    let l =
        ledger::LedgerOptions { mode: ledger::OpenMode::MustExist, namespace: Some(site.into()), ..Default::default() }
            .open(target)
            .unwrap();
    l.latest_snapshots(&ledger::SnapshotFilter::default())
        .unwrap()
        .into_iter()
        .map(|s| (s.snapshot.kind, s.snapshot.key))
        .collect()
}

#[test]
fn a_replica_killed_mid_accounting_is_taken_over_and_ledger_spools_and_records_equal_a_clean_run() {
    const STORAGE_TOPIC: &str = "eu-egi-storage-accounting";
    let rt = runtime();
    let fed = rt.block_on(federation());
    let d = fed.dir.path();
    let ams = rt.block_on(async {
        let mut cfg = sim::SimConfig::new(sim::scenario::builtin("tiny").unwrap().generate());
        let mut a = sim::AmsConfig::new(d.join("ams"));
        a.topics.push(sim::ams::AmsTopicSpec { name: STORAGE_TOPIC.into(), acl: vec!["sender".into()] });
        cfg.ams = Some(a);
        sim::start(cfg).await.unwrap()
    });
    let a = ams.ams().unwrap();
    let host = a.url().trim_start_matches("https://").to_string();
    for site in &fed.fed.sites {
        let text = std::fs::read_to_string(&site.file).unwrap();
        std::fs::write(&site.file, format!("{text}accounting:\n  enabled: true\n  ams_host: \"{host}\"\n")).unwrap();
    }
    let with_ams = |mut c: Command, ledger: &str, spool: &Path| {
        c.args(["--accounting-ledger", ledger, "--ams-authn-url", &a.authn_url()])
            .arg("--spool-dir")
            .arg(spool)
            .arg("--ams-cert")
            .arg(a.client_cert_path())
            .arg("--ams-key")
            .arg(a.client_key_path())
            .arg("--ams-ca")
            .arg(a.ca_pem_path());
        c
    };
    let topics = [sim::ams::DEFAULT_TOPIC, STORAGE_TOPIC];

    // The clean run: one process, SQLite ledgers.
    let clean_ledger = d.join("clean-ledger").display().to_string();
    let o = with_ams(
        fed.central_tasks("run", "accounting,send", &d.join("clean-info")),
        &clean_ledger,
        &d.join("clean-spool"),
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let clean_sent: Vec<usize> = topics.iter().map(|t| common::ams_published(&ams, t).len()).collect();

    // Two replicas on PostgreSQL; `a` is killed while it holds an accounting claim.
    let db = PgDb::create("acct");
    let spool = d.join("spool");
    let replica = |name: &str| {
        with_ams(fed.central_tasks("serve", "accounting,send", &d.join("info")), &db.url, &spool)
            .args(["--ledger", &db.url, "--interval", INTERVAL, "--max-sites", "1", "--replica", name])
            .args(["--once-intervals", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (mut ra, rb) = (replica("a"), replica("b"));
    let started = Instant::now();
    let held = loop {
        assert!(started.elapsed() < Duration::from_secs(120), "a never held an accounting claim: {:?}", claims(&db));
        let unfinished = |c: &Claims| {
            c.iter()
                .find(|((_, _, t), (r, finished, _, _))| t == "accounting" && r == "a" && !finished)
                .map(|(k, _)| k.clone())
        };
        if let Some(mid) = unfinished(&claims(&db)) {
            signal(&ra, "-STOP");
            if unfinished(&claims(&db)).as_ref() == Some(&mid) {
                signal(&ra, "-KILL");
                break mid;
            }
            signal(&ra, "-CONT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = ra.wait();
    let out_b = wait_output(rb, "b");
    let stored = claims(&db);
    let (by, finished, outcome, from) = &stored[&held];
    assert_eq!(
        (by.as_str(), *finished, outcome.as_deref(), from.as_deref()),
        ("b", true, Some("ok"), Some("a")),
        "{held:?}: {stored:?}\n{out_b}"
    );
    assert!(stored.values().all(|(_, f, o, _)| *f && o.as_deref() == Some("ok")), "{stored:?}\n{out_b}");

    // The ledger holds the same records as the clean run's, every spool was sent, and every
    // record reached AMS on its own topic.
    let served: Vec<(apel::RecordKind, String)> =
        topics.iter().zip(&clean_sent).flat_map(|(t, n)| common::ams_published(&ams, t).split_off(*n)).collect();
    let served_keys: BTreeSet<(String, String)> =
        served.iter().map(|(k, key)| (k.as_str().to_owned(), key.clone())).collect();
    let mut all = BTreeSet::new();
    for site in &fed.fed.sites {
        let keys = ledger_keys(&db.url, &site.id);
        assert!(keys.iter().any(|(k, _)| k == "cloud"), "{}: records extracted", site.id);
        assert_eq!(keys, ledger_keys(&clean_ledger, &site.id), "{}: the ledger equals a clean run's", site.id);
        for run in ["compute", "block"] {
            let q = spool.join(&site.id).join(run);
            assert!(common::dirq_elements(&q).is_empty(), "{} left in {}", site.id, q.display());
        }
        all.extend(keys);
    }
    assert_eq!(served_keys, all, "every record of the ledgers reached AMS");
    assert!(common::ams_published(&ams, STORAGE_TOPIC).iter().all(|(k, _)| *k == apel::RecordKind::Storage));
    assert!(common::ams_published(&ams, sim::ams::DEFAULT_TOPIC).iter().all(|(k, _)| *k != apel::RecordKind::Storage));
    rt.block_on(ams.stop());
    rt.block_on(fed.fed.stop());
}
