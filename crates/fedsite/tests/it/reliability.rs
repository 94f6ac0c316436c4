//! The whole accounting path (extract → spool → send → AMS → receive) under crashes and faults,
//! against the simulated site and AMS, with the ledger on SQLite and on PostgreSQL
//! (docs/reliability.md):
//!
//! - crash consistency: three cron-like cycles (extract up to May 11, 21, June 1; send;
//!   receive) where steps are SIGKILLed at random moments and rerun; at the end the records
//!   the receiver stored and the ledger's snapshots and checkpoints must equal one clean run's:
//!   no record missing, no VM snapshot regressed; AMS-level duplicates are counted and printed.
//!   `FEDSITE_PIPELINE_CRASH_RUNS` crashed runs per backend (default 2 in CI; 100 by hand),
//!   kill points from `FEDSITE_PIPELINE_CRASH_SEED`.
//! - fault injection: every service (Keystone, Nova, Cinder, Neutron, Glance, AMS and its
//!   token exchange) answers `FEDSITE_FAULT_RATE` (default 20 %) of requests with 500/503/429,
//!   timeouts, truncated or malformed JSON and slow bodies; each run either completes or exits
//!   non-zero for what did not, reruns finish the work, and the ledger and the receiver end as
//!   in a clean run.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ledger::{Ledger, SnapshotFilter};
use messaging::dirq::QueueSimple;
use sim::ams::{DEFAULT_PROJECT, DEFAULT_SUBSCRIPTION, DEFAULT_TOPIC, TEST_CLIENT_DN};
use sim::{Service, ServiceProfile};

const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// The cron cycles: each extracts up to its end (the first from May 1), then sends, then
/// receives. Later cycles carry newer snapshots of the same VMs.
const CYCLES: [(Option<&str>, &str); 3] = [
    (Some("2023-05-01T00:00:00Z"), "2023-05-11T00:00:00Z"),
    (None, "2023-05-21T00:00:00Z"),
    (None, "2023-06-01T00:00:00Z"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Extract(usize),
    Send,
    Receive,
}

fn steps() -> Vec<Step> {
    (0..CYCLES.len()).flat_map(|c| [Step::Extract(c), Step::Send, Step::Receive]).collect()
}

use common::{Rng, env_u64};

/// Where the ledgers of one test live.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A PostgreSQL database of its own (dropped with it) on the FEDSITE_TEST_PG server.
struct PgDb {
    name: String,
    url: String,
}

fn pg_admin_url() -> String {
    match std::env::var("FEDSITE_TEST_PG") {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "FEDSITE_TEST_PG is not set: run scripts/test (or scripts/peers.sh pg-start && eval \"$(scripts/peers.sh env)\")"
        ),
    }
}

impl PgDb {
    fn create(tag: &str) -> PgDb {
        let admin = pg_admin_url();
        let name = format!(
            "fedsite_rel_{}_{tag}_{}",
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
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&pg_admin_url(), postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// One site's state: a spool, a ledger, a receiver store, in `dir`; its own sim and AMS.
struct Site {
    dir: PathBuf,
    sim: sim::SimHandle,
    ledger: String,
    _pg: Option<PgDb>,
    clouds: PathBuf,
    dns: PathBuf,
    /// Output files written so far (for the names of the next).
    runs: usize,
}

struct Env {
    rt: tokio::runtime::Runtime,
    projects: Vec<String>,
}

impl Env {
    fn new() -> Env {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let projects =
            sim::scenario::builtin("small").unwrap().generate().site.projects.iter().map(|p| p.id.clone()).collect();
        Env { rt, projects }
    }

    /// A fresh site in `dir`: the `small` scenario with its AMS, every service with `profile`.
    fn site(&self, dir: PathBuf, backend: Backend, profile: &ServiceProfile, seed: u64) -> Site {
        std::fs::create_dir_all(&dir).unwrap();
        let mut cfg = sim::SimConfig::new(sim::scenario::builtin("small").unwrap().generate());
        cfg.ams = Some(sim::AmsConfig::new(dir.join("pki")));
        for s in Service::ALL.into_iter().chain(Service::AMS) {
            cfg.profiles.insert(s, profile.clone());
        }
        cfg.fault_seed = seed;
        let sim = self.rt.block_on(sim::start(cfg)).expect("the sim starts");
        let clouds = dir.join("clouds.yaml");
        common::write_private(&clouds, sim.clouds_yaml());
        let dns = dir.join("dns");
        std::fs::write(&dns, format!("{TEST_CLIENT_DN}\n")).unwrap();
        let (ledger, pg) = match backend {
            Backend::Sqlite => (dir.join("ledger.sqlite").display().to_string(), None),
            Backend::Postgres => {
                let db = PgDb::create(dir.file_name().unwrap().to_str().unwrap());
                (db.url.clone(), Some(db))
            }
        };
        Site { dir, sim, ledger, _pg: pg, clouds, dns, runs: 0 }
    }
}

impl Site {
    fn spool(&self) -> PathBuf {
        self.dir.join("spool")
    }
    fn records(&self) -> PathBuf {
        self.dir.join("received.sqlite")
    }

    fn command(&mut self, step: Step) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fedsite"));
        c.env_remove("OS_CLOUD").env_remove("FEDSITE_LOG").stdin(Stdio::null());
        let a = self.sim.ams().unwrap();
        match step {
            Step::Extract(cycle) => {
                let (from, to) = CYCLES[cycle];
                c.args([
                    "--log",
                    "info",
                    "accounting",
                    "extract",
                    "--os-cloud",
                    "sim-accounting",
                    "--site-name",
                    "TEST-SITE",
                ]);
                if let Some(from) = from {
                    c.args(["--from", from]);
                }
                c.args(["--to", to]).arg("--spool").arg(self.spool()).arg("--ledger").arg(&self.ledger);
                // The scenario's projects without a VO are known as such, so an extraction exits 0
                // exactly when it did all its work: its exit code can only come from the faults.
                for p in unmapped_projects() {
                    c.args(["--unmapped-ok", &p]);
                }
                c.env("OS_CLIENT_CONFIG_FILE", &self.clouds);
            }
            Step::Send => {
                c.args(["--log", "info", "send", "--ams-url", &a.url(), "--authn-url", &a.authn_url()])
                    .args(["--project", DEFAULT_PROJECT, "--topic", DEFAULT_TOPIC])
                    .arg("--cert")
                    .arg(a.client_cert_path())
                    .arg("--key")
                    .arg(a.client_key_path())
                    .arg("--ca")
                    .arg(a.ca_pem_path())
                    .arg("--spool")
                    .arg(self.spool())
                    .arg("--ledger")
                    .arg(&self.ledger)
                    .args(["--retry-initial-ms", "5", "--retry-max-ms", "100", "--max-retries", "12", "--chunk", "10"])
                    .args(["--timeout-secs", "2", "--purge-maxlock-secs", "1"]);
            }
            Step::Receive => {
                c.args([
                    "--log",
                    "info",
                    "receive",
                    "--once",
                    "--batch",
                    "4",
                    "--ams-url",
                    &a.url(),
                    "--project",
                    DEFAULT_PROJECT,
                ])
                .args(["--subscription", DEFAULT_SUBSCRIPTION, "--token", &a.token("receiver").unwrap()])
                .args(["--timeout-secs", "2"])
                .arg("--ca")
                .arg(a.ca_pem_path())
                .arg("--capath")
                .arg(a.ca_pem_path())
                .arg("--dns")
                .arg(&self.dns)
                .arg("--records")
                .arg(self.records());
            }
        }
        self.runs += 1;
        let name = format!(
            "{:03}-{}",
            self.runs,
            match step {
                Step::Extract(c) => format!("extract{c}"),
                Step::Send => "send".into(),
                Step::Receive => "receive".into(),
            }
        );
        c.stdout(std::fs::File::create(self.dir.join(format!("{name}.out"))).unwrap());
        c.stderr(std::fs::File::create(self.dir.join(format!("{name}.err"))).unwrap());
        c
    }

    fn last_stderr(&self) -> String {
        let name = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".err"))
            .max()
            .unwrap();
        std::fs::read_to_string(self.dir.join(name)).unwrap()
    }

    /// Runs `step` to its end.
    fn run(&mut self, step: Step) -> (ExitStatus, Duration) {
        let start = Instant::now();
        let mut child = self.command(step).spawn().expect("starting fedsite");
        (wait(&mut child, step), start.elapsed())
    }

    /// Runs `step` and SIGKILLs it after `after` (true), unless it ended before (false).
    fn run_killed(&mut self, step: Step, after: Duration) -> bool {
        let start = Instant::now();
        let mut child = self.command(step).spawn().expect("starting fedsite");
        loop {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if start.elapsed() >= after {
                child.kill().expect("SIGKILL");
                child.wait().unwrap();
                return true;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    fn spool_count(&self) -> usize {
        QueueSimple::open(self.spool()).unwrap().count().unwrap()
    }

    /// Sends until the spool is empty and receives until the subscription is drained (the
    /// killed runs' locks go stale after 1 s and the next run's purge releases them).
    fn drain(&mut self, max_runs: usize) -> Result<(), String> {
        for _ in 0..max_runs {
            if self.spool_count() == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1100));
            self.run(Step::Send);
        }
        if self.spool_count() != 0 {
            return Err(format!(
                "{} elements still spooled after {max_runs} sends:\n{}",
                self.spool_count(),
                self.last_stderr()
            ));
        }
        let published = self.published() as u64;
        for _ in 0..max_runs {
            let a = self.sim.ams().unwrap();
            if a.subscription_offset(DEFAULT_PROJECT, DEFAULT_SUBSCRIPTION).unwrap() >= published {
                return Ok(());
            }
            self.run(Step::Receive);
        }
        Err(format!("subscription not drained after {max_runs} receives:\n{}", self.last_stderr()))
    }

    /// What the steps change, to tell a kill that landed mid-work (the state moved, but not as
    /// far as the step's own rerun takes it) from one before any work or after all of it.
    fn progress(&self, projects: &[String]) -> (Checkpoints, usize, usize, u64) {
        let offset = self.sim.ams().unwrap().subscription_offset(DEFAULT_PROJECT, DEFAULT_SUBSCRIPTION).unwrap();
        (self.checkpoints(projects), self.spool_count(), self.published(), offset)
    }

    fn published(&self) -> usize {
        self.sim.ams().unwrap().published(DEFAULT_PROJECT, DEFAULT_TOPIC).len()
    }

    fn checkpoints(&self, projects: &[String]) -> Checkpoints {
        let ledger = Ledger::open(&self.ledger).unwrap();
        projects.iter().map(|p| (p.clone(), ledger.checkpoint(p, accounting::pipeline::CHECKPOINT).unwrap())).collect()
    }

    fn observe(&self, projects: &[String]) -> Observed {
        let db = rusqlite::Connection::open(self.records()).unwrap();
        let mut stored = BTreeMap::new();
        let mut q = db.prepare("SELECT vmuuid, year, month, measurement_time, body FROM cloud_records").unwrap();
        for row in q
            .query_map([], |r| {
                Ok((
                    format!("cloud {} {}-{:02}", r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?),
                    (r.get::<_, Option<i64>>(3)?, r.get::<_, String>(4)?),
                ))
            })
            .unwrap()
        {
            let (k, v) = row.unwrap();
            stored.insert(k, v);
        }
        let mut q = db.prepare("SELECT kind, key, body FROM records").unwrap();
        for row in q
            .query_map([], |r| {
                Ok((format!("{} {}", r.get::<_, String>(0)?, r.get::<_, String>(1)?), (None, r.get::<_, String>(2)?)))
            })
            .unwrap()
        {
            let (k, v) = row.unwrap();
            stored.insert(k, v);
        }
        let extra_arrivals: i64 =
            db.query_row("SELECT COALESCE(SUM(arrivals - 1), 0) FROM receipts", [], |r| r.get(0)).unwrap();
        let redelivered: i64 =
            db.query_row("SELECT COALESCE(SUM(arrivals - 1), 0) FROM messages", [], |r| r.get(0)).unwrap();
        let rejected: i64 = db.query_row("SELECT COUNT(*) FROM rejected", [], |r| r.get(0)).unwrap();
        let ledger = Ledger::open(&self.ledger).unwrap();
        let snapshots =
            ledger.latest_snapshots(&SnapshotFilter::default()).unwrap().into_iter().map(|s| s.snapshot).collect();
        let checkpoints = self.checkpoints(projects);
        let unsent = ledger.pending().unwrap().iter().filter(|m| m.state != ledger::MessageState::Sent).count();
        Observed {
            stored,
            extra_arrivals: extra_arrivals as u64,
            redelivered: redelivered as u64,
            rejected: rejected as u64,
            published: self.published(),
            ams_duplicates: {
                let mut seen = BTreeSet::new();
                let all = self.sim.ams().unwrap().published(DEFAULT_PROJECT, DEFAULT_TOPIC);
                all.iter().filter(|p| !seen.insert(p.attributes.get("empaid").cloned().unwrap_or_default())).count()
            },
            snapshots,
            checkpoints,
            unsent,
        }
    }
}

fn wait(child: &mut Child, what: Step) -> ExitStatus {
    common::wait_child(child, &format!("{what:?}"), RUN_TIMEOUT)
}

/// What a site ended with.
struct Observed {
    /// Receiver: the stored record per key (cloud: per VM and month) with its measurement time.
    stored: BTreeMap<String, (Option<i64>, String)>,
    /// Record versions that arrived more than once, and AMS messages delivered again.
    extra_arrivals: u64,
    redelivered: u64,
    rejected: u64,
    /// Messages AMS holds, and how many of them carry an `empaid` (a spool element) AMS
    /// already held: the AMS-level duplicates.
    published: usize,
    ams_duplicates: usize,
    snapshots: Vec<ledger::Snapshot>,
    checkpoints: Checkpoints,
    /// Ledger messages not marked sent.
    unsent: usize,
}

impl Observed {
    /// Every way `self` falls short of `clean`: missing records, regressed (older) snapshots,
    /// other differences, ledger differences.
    fn differences(&self, clean: &Observed) -> Vec<String> {
        let mut out = Vec::new();
        for (k, (t, body)) in &clean.stored {
            match self.stored.get(k) {
                None => out.push(format!("record missing at the receiver: {k}")),
                Some((t2, b2)) if b2 != body => {
                    let what = if t2 < t { "REGRESSED to an older snapshot" } else { "differs" };
                    out.push(format!("{k} {what}:\n  got  {b2:?}\n  want {body:?}"));
                }
                _ => {}
            }
        }
        for k in self.stored.keys().filter(|k| !clean.stored.contains_key(*k)) {
            out.push(format!("record the clean run never stored: {k}"));
        }
        if self.rejected != 0 {
            out.push(format!("{} messages rejected by the receiver", self.rejected));
        }
        if self.snapshots != clean.snapshots {
            let index = |o: &Observed| {
                o.snapshots.iter().map(|s| ((s.kind.clone(), s.key.clone()), s.clone())).collect::<BTreeMap<_, _>>()
            };
            let (got, want) = (index(self), index(clean));
            for k in got.keys().chain(want.keys()).collect::<BTreeSet<_>>() {
                if got.get(k) != want.get(k) {
                    out.push(format!(
                        "ledger snapshot {} {}:\n  got  {:?}\n  want {:?}",
                        k.0,
                        k.1,
                        got.get(k),
                        want.get(k)
                    ));
                }
            }
        }
        if self.checkpoints != clean.checkpoints {
            out.push(format!("checkpoints:\n  got  {:?}\n  want {:?}", self.checkpoints, clean.checkpoints));
        }
        if self.unsent != 0 {
            out.push(format!("{} ledger messages not marked sent", self.unsent));
        }
        out
    }
}

type Checkpoints = BTreeMap<String, Option<chrono::DateTime<chrono::Utc>>>;

/// What one clean step did: its exit code, how long it took, the checkpoints after it.
struct CleanStep {
    code: Option<i32>,
    took: Duration,
    checkpoints: Checkpoints,
}

/// A clean run of every step.
fn clean_run(env: &Env, dir: PathBuf, backend: Backend, profile: &ServiceProfile) -> (Site, Vec<CleanStep>) {
    let mut site = env.site(dir, backend, profile, 1);
    let mut results = Vec::new();
    for step in steps() {
        let (status, took) = site.run(step);
        assert!(status.success(), "clean {step:?} failed ({status}):\n{}", site.last_stderr());
        results.push(CleanStep { code: status.code(), took, checkpoints: site.checkpoints(&env.projects) });
    }
    site.drain(2).unwrap();
    (site, results)
}

fn crash_consistency(backend: Backend) {
    let runs = env_u64("FEDSITE_PIPELINE_CRASH_RUNS", 2) as usize;
    let seed = env_u64("FEDSITE_PIPELINE_CRASH_SEED", 0xC4A5_0001);
    let mut rng = Rng(seed ^ backend as u64);
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    // Latency and a cap on concurrency make a run long enough to be killed inside.
    let profile = ServiceProfile { latency_ms: 3, max_concurrent: 2, ..Default::default() };
    let started = Instant::now();
    let (clean, clean_steps) = clean_run(&env, tmp.path().join("clean"), backend, &profile);
    let want = clean.observe(&env.projects);
    let clean_time = started.elapsed();
    assert!(want.stored.len() > 10 && want.snapshots.len() > 10, "the clean run stored {} records", want.stored.len());
    assert!(want.stored.keys().any(|k| k.starts_with("cloud ")), "no cloud record");
    assert_eq!((want.extra_arrivals, want.redelivered, want.rejected, want.ams_duplicates), (0, 0, 0, 0));
    eprintln!(
        "{backend:?} clean run: {clean_time:.1?}, {} messages, {} records stored, steps {:?}",
        want.published,
        want.stored.len(),
        clean_steps.iter().map(|c| format!("{:?} {:.1?}", c.code, c.took)).collect::<Vec<_>>()
    );
    drop(clean);

    let (mut kills, mut dup_messages, mut dup_records, mut redelivered) = (0, 0usize, 0u64, 0u64);
    // Kills after which the state had moved part of the way (per step kind).
    let mut mid_work: BTreeMap<String, usize> = BTreeMap::new();
    let mut runs_with_duplicates = 0;
    let mut per_step: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..runs {
        let mut site = env.site(tmp.path().join(format!("crash{i}")), backend, &profile, 1);
        let mut log = Vec::new();
        // At least one kill per run; each step is killed with probability 1/3.
        let forced = rng.below(steps().len() as u64) as usize;
        for (n, step) in steps().into_iter().enumerate() {
            let mut killed_at = None;
            if n == forced || rng.below(3) == 0 {
                let after = Duration::from_micros(rng.below(clean_steps[n].took.as_micros() as u64 + 1));
                let before = site.progress(&env.projects);
                let killed = site.run_killed(step, after);
                log.push(format!("{step:?} {} after {after:.1?}", if killed { "killed" } else { "finished" }));
                if killed {
                    kills += 1;
                    *per_step.entry(format!("{step:?}")).or_default() += 1;
                    killed_at = Some((before, site.progress(&env.projects)));
                }
                if step == Step::Send {
                    // The killed run's locks go stale, so this cron run's purge frees them.
                    std::thread::sleep(Duration::from_millis(1100));
                }
            }
            let (status, _) = site.run(step);
            if let Some((before, at_kill)) = killed_at {
                let after = site.progress(&env.projects);
                if at_kill != before && at_kill != after {
                    *mid_work.entry(format!("{step:?}").split('(').next().unwrap().to_string()).or_default() += 1;
                    log.push("(mid-work)".into());
                }
            }
            if status.code() != clean_steps[n].code {
                let kept = tmp.keep();
                panic!(
                    "crash {i} (seed {seed}): {step:?} after {log:?} exited {status}, the clean run {:?} (kept in {}):\n{}",
                    clean_steps[n].code,
                    kept.display(),
                    site.last_stderr()
                );
            }
        }
        if let Err(e) = site.drain(4) {
            let kept = tmp.keep();
            panic!("crash {i} (seed {seed}), {log:?}: {e} (kept in {})", kept.display());
        }
        let got = site.observe(&env.projects);
        let diffs = got.differences(&want);
        if !diffs.is_empty() {
            let kept = tmp.keep();
            panic!(
                "crash {i} (FEDSITE_PIPELINE_CRASH_SEED={seed}, {backend:?}), {log:?}: differs from the clean run \
                 (kept in {}):\n{}",
                kept.display(),
                diffs.join("\n")
            );
        }
        dup_messages += got.ams_duplicates;
        runs_with_duplicates += usize::from(got.ams_duplicates > 0);
        dup_records += got.extra_arrivals;
        redelivered += got.redelivered;
        eprintln!(
            "crash {i}: {log:?}; AMS messages {} (clean {}), AMS duplicates {}, record versions received again {}, redeliveries {}",
            got.published, want.published, got.ams_duplicates, got.extra_arrivals, got.redelivered
        );
    }
    eprintln!(
        "{backend:?}: {runs} crashed runs, {kills} kills {per_step:?}: nothing missing, nothing regressed; \
         AMS duplicates {dup_messages} (in {runs_with_duplicates} runs), record versions received more than once \
         {dup_records}, redeliveries {redelivered}; {:.1?}",
        started.elapsed()
    );
    assert!(kills >= runs, "{kills} kills in {runs} runs");
    // The kills hit work in progress, not only processes that had not started or had finished.
    eprintln!("{backend:?}: kills that landed mid-work (partial state seen before the rerun): {mid_work:?}");
    assert!(mid_work.values().sum::<usize>() >= 1, "no kill landed mid-work: {per_step:?}");
}

#[test]
fn killed_pipeline_ends_as_one_clean_run_sqlite() {
    crash_consistency(Backend::Sqlite);
}

#[test]
fn killed_pipeline_ends_as_one_clean_run_postgres() {
    crash_consistency(Backend::Postgres);
}

/// The `small` scenario's projects that have no VO in any property fedsite reads.
fn unmapped_projects() -> Vec<String> {
    let site = sim::scenario::builtin("small").unwrap().generate().site;
    let has_vo = |p: &sim::model::Project| {
        ["egi.VO", "egi.eu:VO", "VO"].iter().any(|k| p.extra.get(*k).is_some_and(|v| !v.is_null()))
    };
    let out: Vec<String> = site.projects.iter().filter(|p| !has_vo(p)).map(|p| p.id.clone()).collect();
    assert!(!out.is_empty() && out.len() < site.projects.len(), "small has projects with and without a VO");
    out
}

/// The fault-injection run: every step is rerun (as cron would) until it did its work; a run
/// that left work undone must have said so with a non-zero exit.
fn fault_run(backend: Backend) {
    let rate = env_u64("FEDSITE_FAULT_PERCENT", 20) as f64 / 100.0;
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (clean, clean_steps) = clean_run(&env, tmp.path().join("clean"), backend, &ServiceProfile::default());
    let want = clean.observe(&env.projects);
    drop(clean);
    // The rate split over the five kinds of fault.
    let part = rate / 5.0;
    let faulty = ServiceProfile {
        error_rate: part,
        timeout_rate: part,
        timeout_ms: 300,
        truncate_rate: part,
        malformed_rate: part,
        slow_body_rate: part,
        slow_body_ms: 200,
        ..Default::default()
    };
    let mut site = env.site(tmp.path().join("faults"), backend, &faulty, env_u64("FEDSITE_FAULT_SEED", 9));
    let mut attempts: BTreeMap<String, Vec<Option<i32>>> = BTreeMap::new();
    let max_attempts = 8;
    for (n, step) in steps().into_iter().enumerate() {
        let codes = attempts.entry(format!("{n}:{step:?}")).or_default();
        loop {
            if codes.len() == max_attempts {
                let kept = tmp.keep();
                panic!(
                    "{step:?} did not get through in {max_attempts} runs {codes:?} (kept in {}):\n{}",
                    kept.display(),
                    site.last_stderr()
                );
            }
            if step == Step::Send && !codes.is_empty() {
                std::thread::sleep(Duration::from_millis(1100));
            }
            let (status, _) = site.run(step);
            codes.push(status.code());
            let done = match step {
                Step::Extract(_) => site.checkpoints(&env.projects) == clean_steps[n].checkpoints,
                Step::Send => site.spool_count() == 0,
                Step::Receive => {
                    let a = site.sim.ams().unwrap();
                    a.subscription_offset(DEFAULT_PROJECT, DEFAULT_SUBSCRIPTION).unwrap() >= site.published() as u64
                }
            };
            if done {
                assert!(status.success(), "{step:?} did its work but exited {status}:\n{}", site.last_stderr());
                break;
            }
            // Work left undone: the run must have failed loudly.
            assert!(!status.success(), "{step:?} exited 0 with its work undone:\n{}", site.last_stderr());
        }
    }
    let got = site.observe(&env.projects);
    let injected: BTreeMap<String, usize> =
        site.sim.requests().iter().filter_map(|r| r.injected.clone()).fold(BTreeMap::new(), |mut m, k| {
            *m.entry(k).or_default() += 1;
            m
        });
    let total = site.sim.requests().len();
    let diffs = got.differences(&want);
    if !diffs.is_empty() {
        let kept = tmp.keep();
        panic!("{backend:?} fault run differs from the clean run (kept in {}):\n{}", kept.display(), diffs.join("\n"));
    }
    let reruns: usize = attempts.values().map(|c| c.len() - 1).sum();
    eprintln!(
        "{backend:?} fault run at {:.0} %: {total} requests, faults injected {injected:?}; \
         {reruns} reruns {attempts:?}; AMS messages {} (clean {}), AMS duplicates {}, record versions received again {}; \
         ledger and receiver equal the clean run's; {:.1?}",
        rate * 100.0,
        got.published,
        want.published,
        got.ams_duplicates,
        got.extra_arrivals,
        started.elapsed()
    );
    assert!(injected.values().sum::<usize>() > 20, "hardly any fault injected: {injected:?}");
}

#[test]
fn faulty_services_end_as_one_clean_run_sqlite() {
    fault_run(Backend::Sqlite);
}

#[test]
fn faulty_services_end_as_one_clean_run_postgres() {
    fault_run(Backend::Postgres);
}
