//! The accounting run: extract → validate → drop what the ledger holds newer
//! → spool (dirq, SSM's layout) → commit to the ledger, one project at a
//! time, and republishing a period from the ledger.
//!
//! Order and crash safety: a project's messages are spooled first, then its
//! snapshots, message names and checkpoint are committed in one ledger
//! transaction. A crash in between leaves spooled elements the ledger does
//! not know; the next run renders the same bytes for the same window and
//! *adopts* those elements (matched by content) instead of spooling them
//! again, so nothing is lost or doubled. Elements the ledger does not know
//! and nobody adopts are never deleted: they may be another tool's.
//!
//! With `ExtractConfig::action_cache`, the instance actions of servers not updated since
//! come from the ledger (`crate::action_cache`): one lookup per project before its servers'
//! facts are gathered, the fresh lists stored right after its commit (a failure there is a
//! warning, never the run's), and lists unseen for 30 days pruned at the end.
//!
//! With `ExtractConfig::server_cache`, the servers only the usage report names come from the
//! ledger's listed-server cache when it is proved current (`crate::server_cache`), instead of
//! a listing of every live server; what the run listed is stored back at its end, in batches
//! (a failure there is a warning: the next run lists the live servers again).
//!
//! Destinations: each record kind goes to the spool of its [`Route`] (one spool per AMS
//! destination, e.g. storage records to their own topic); a kind no route names is kept in
//! the ledger only. Every route's queue is scanned for orphans, and an orphan is adopted only
//! by a message of its own route.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;

use tracing::instrument::WithSubscriber;

use apel::{Record, RecordKind, Style, Window};
use chrono::{DateTime, Utc};
use ledger::{Ledger, NewMessage, ProjectCommit, RecordRef, Snapshot, SnapshotFilter, Unchanged, Upsert};
use messaging::dirq::QueueSimple;
use openstack::Session;
use sha2::{Digest, Sha256};

use crate::{ExtractConfig, Extraction, ProjectOutcome, stage};

/// The checkpoint name of an accounting run in the ledger.
pub const CHECKPOINT: &str = "accounting";

/// The kinds spooled when nothing routes them: what cASO's ssm messenger takes by default
/// (energy stays in the ledger).
pub const SSM_KINDS: [RecordKind; 4] =
    [RecordKind::Cloud, RecordKind::Ip, RecordKind::Accelerator, RecordKind::Storage];

/// One destination's spool and the record kinds written to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The destination's name (reports, errors).
    pub name: String,
    pub spool: PathBuf,
    pub kinds: Vec<RecordKind>,
}

/// Routes that cannot be used together.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    #[error("no destination: give at least one")]
    Empty,
    #[error("{kind} records are routed to both {first} and {second}: a kind goes to one destination")]
    KindTwice { kind: RecordKind, first: String, second: String },
    #[error("destinations {first} and {second} share the spool {}: each needs its own", spool.display())]
    SpoolTwice { first: String, second: String, spool: PathBuf },
    #[error("two destinations are named {0:?}")]
    NameTwice(String),
    #[error("more than 16 destinations: element names stay unique across spools through dirq's last hex digit")]
    TooMany,
}

/// How a run spools and where.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    routes: Vec<Route>,
    pub style: Style,
    pub max_records: usize,
    pub max_signed_bytes: usize,
}

impl SpoolConfig {
    /// One spool for [`SSM_KINDS`] (today's layout, SSM's one destination), with fedsite's
    /// rendering and APEL's default limits (records per message, signed message size).
    pub fn new(spool: impl Into<PathBuf>) -> SpoolConfig {
        SpoolConfig {
            routes: vec![Route { name: "default".into(), spool: spool.into(), kinds: SSM_KINDS.to_vec() }],
            style: Style::Fedsite,
            max_records: apel::DEFAULT_MAX_RECORDS,
            max_signed_bytes: apel::DEFAULT_MAX_SIGNED_BYTES,
        }
    }

    /// Each kind to its route's spool (e.g. the central deployment's compute destination with
    /// cloud and ip, block with storage). Checked: at least one route, names, spools and kinds
    /// each used once, at most 16 routes.
    pub fn with_routes(routes: Vec<Route>) -> Result<SpoolConfig, RouteError> {
        if routes.is_empty() {
            return Err(RouteError::Empty);
        }
        if routes.len() > 16 {
            return Err(RouteError::TooMany);
        }
        for (i, a) in routes.iter().enumerate() {
            for b in &routes[..i] {
                if a.name == b.name {
                    return Err(RouteError::NameTwice(a.name.clone()));
                }
                if a.spool == b.spool {
                    return Err(RouteError::SpoolTwice {
                        first: b.name.clone(),
                        second: a.name.clone(),
                        spool: a.spool.clone(),
                    });
                }
                if let Some(kind) = a.kinds.iter().find(|k| b.kinds.contains(k)) {
                    return Err(RouteError::KindTwice { kind: *kind, first: b.name.clone(), second: a.name.clone() });
                }
            }
        }
        Ok(SpoolConfig { routes, ..SpoolConfig::new(PathBuf::new()) })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The first route's spool: the only one of [`SpoolConfig::new`].
    pub fn spool(&self) -> &std::path::Path {
        &self.routes[0].spool
    }

    /// The spools, in route order.
    pub fn spools(&self) -> Vec<&std::path::Path> {
        self.routes.iter().map(|r| r.spool.as_path()).collect()
    }

    /// The route of `kind`, as its index in [`SpoolConfig::routes`]; `None`: kept in the ledger only.
    pub fn route_of(&self, kind: RecordKind) -> Option<usize> {
        self.routes.iter().position(|r| r.kinds.contains(&kind))
    }

    /// Opens every route's queue. With several, each queue object ends its names with its own
    /// hex digit (its route's index), so no two elements of one run share a name whatever
    /// their spool: the ledger knows a message by its element name alone.
    fn open_queues(&self) -> Result<Vec<QueueSimple>, RunError> {
        if self.routes.len() == 1 {
            return Ok(vec![QueueSimple::open(&self.routes[0].spool)?]);
        }
        self.routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let opts = messaging::dirq::Options { rndhex: Some(i as u8), ..Default::default() };
                Ok(QueueSimple::open_with(&r.spool, opts)?)
            })
            .collect()
    }
}

/// Where each project's window comes from.
#[derive(Debug, Clone, Copy)]
pub enum Windows {
    /// The same window for every project (`--from/--to`).
    Fixed(Window),
    /// From the project's checkpoint (or `default_from` without one) to `to`.
    FromCheckpoints { to: DateTime<Utc>, default_from: DateTime<Utc> },
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("ledger {0}")]
    Ledger(#[from] ledger::Error),
    #[error("spool: {0}")]
    Spool(#[from] messaging::dirq::Error),
    #[error("rendering {kind} records of project {project}: {source}")]
    Render { kind: &'static str, project: String, source: apel::Error },
    #[error("extraction: {0}")]
    Extract(#[from] crate::ExtractError),
    #[error("window of project {project}: checkpoint {from} is not before {to}")]
    Window { project: String, from: DateTime<Utc>, to: DateTime<Utc> },
}

/// What happened to one project in a run.
#[derive(Debug)]
pub struct ProjectReport {
    pub project_id: String,
    pub project_name: Option<String>,
    pub vo: Option<String>,
    pub window: Window,
    /// Every record extracted, by kind (spooled or not).
    pub extracted: BTreeMap<&'static str, usize>,
    /// Records by kind that were new or changed (spooled).
    pub spooled: BTreeMap<&'static str, usize>,
    /// Records unchanged since the ledger's snapshot (not spooled again).
    pub unchanged: usize,
    /// Records older than the ledger's snapshot (dropped).
    pub kept_newer: usize,
    /// Spool elements written (or adopted from a crashed run).
    pub messages: Vec<String>,
    pub error: Option<String>,
    /// Skipped on purpose (no VO, and `unmapped_ok` names it): not a failure, nothing committed.
    pub skipped: Option<String>,
    /// Its checkpoint already was the window's end: nothing to do.
    pub up_to_date: bool,
    /// Instance-action lists taken from the ledger's cache (`crate::action_cache`).
    pub actions_reused: usize,
    /// Instance-action lists fetched from Nova.
    pub actions_fetched: usize,
}

#[derive(Debug, Default)]
pub struct RunReport {
    pub projects: Vec<ProjectReport>,
    /// A failure before any project could run (e.g. listing projects).
    pub failure: Option<String>,
    /// The ledger's id of this run (its warnings are stored with it).
    pub run_id: Option<ledger::RunId>,
    /// Warnings and errors of the run, as stored in the ledger (level, message).
    pub warnings: Vec<(String, String)>,
    /// What the run did with the listed-server cache (None: off, or nothing listed).
    pub server_cache: Option<crate::server_cache::ServerCacheReport>,
}

impl RunReport {
    /// True when every project went through.
    pub fn is_complete(&self) -> bool {
        self.failure.is_none() && self.projects.iter().all(|p| p.error.is_none())
    }
}

/// The window of one project, resolved from the ledger; `None` when the
/// project's checkpoint already is the window's end (it was committed by an
/// interrupted run that this one resumes).
fn window_for(ledger: &Mutex<Ledger>, windows: Windows, project: &str) -> Result<Option<Window>, RunError> {
    match windows {
        Windows::Fixed(w) => Ok(Some(w)),
        Windows::FromCheckpoints { to, default_from } => {
            let from = ledger.lock().unwrap().checkpoint(project, CHECKPOINT)?.unwrap_or(default_from);
            if from == to {
                return Ok(None);
            }
            Window::new(from, to).map(Some).map_err(|_| RunError::Window { project: project.into(), from, to })
        }
    }
}

/// What a dry run gives: the extraction, and the messages of every project whose records all
/// rendered.
pub struct DryRun {
    pub extraction: Extraction,
    /// (project id, kind, message) in project order.
    pub messages: Vec<(String, RecordKind, Vec<u8>)>,
    /// Projects extracted whose records could not be rendered: none of their messages is in
    /// `messages`, and the run is a failure (a dry run must not print a partial project).
    pub unrendered: Vec<(String, apel::Error)>,
}

/// Extracts every project and renders its messages without touching the
/// ledger or the spool (`--dry-run`).
pub async fn dry_run(session: &Session, cfg: &ExtractConfig, window: Window, spool: &SpoolConfig) -> DryRun {
    let extraction = crate::Extract::new(session, cfg, |_| window).run().await;
    let mut messages = Vec::new();
    let mut unrendered = Vec::new();
    for p in &extraction.projects {
        let Ok(records) = &p.result else { continue };
        let mut project = Vec::new();
        let rendered = by_kind(records).into_iter().try_for_each(|(kind, recs)| {
            if kind == RecordKind::Energy {
                // Printed as the JSON array cASO posts to GreenDIGIT CIM.
                project.push((p.project_id.clone(), kind, apel::render_message(kind, &recs, spool.style)?));
            } else {
                let batches = apel::batch(kind, &recs, spool.style, spool.max_records, spool.max_signed_bytes)?;
                project.extend(batches.into_iter().map(|m| (p.project_id.clone(), kind, m)));
            }
            Ok::<_, apel::Error>(())
        });
        match rendered {
            Ok(()) => messages.extend(project),
            Err(e) => unrendered.push((p.project_id.clone(), e)),
        }
    }
    DryRun { extraction, messages, unrendered }
}

/// One extraction run into the ledger and the spool.
pub async fn run(
    session: &Session,
    cfg: &ExtractConfig,
    ledger: Ledger,
    windows: Windows,
    spool: &SpoolConfig,
) -> Result<(RunReport, Ledger), RunError> {
    run_with_progress(session, cfg, ledger, windows, spool, &|_| {}).await
}

/// [`run`], calling `progress` once per project as soon as it is committed
/// (or failed), e.g. for a progress bar.
pub async fn run_with_progress(
    session: &Session,
    cfg: &ExtractConfig,
    ledger: Ledger,
    windows: Windows,
    spool: &SpoolConfig,
    progress: &(dyn Fn(&ProjectReport) + Sync),
) -> Result<(RunReport, Ledger), RunError> {
    let queues = spool.open_queues()?;
    let ledger = Mutex::new(ledger);
    let (from, to) = match windows {
        Windows::Fixed(w) => (Some(w.from()), Some(w.to())),
        Windows::FromCheckpoints { to, .. } => (None, Some(to)),
    };
    let run_id = ledger.lock().unwrap().begin_run(&ledger::NewRun {
        command: ledger::runs::EXTRACT.into(),
        window_from: from,
        window_to: to,
    })?;

    // Windows and known volumes come from the ledger; extraction cannot fail
    // on them, so a bad checkpoint is reported per project afterwards.
    let window_errors = Mutex::new(HashMap::new());
    let up_to_date = Mutex::new(std::collections::HashSet::new());
    // A one-second window at the end, for projects that are not extracted:
    // it keeps the shared all-projects listings as narrow as the run's.
    let end = to.unwrap_or_else(Utc::now);
    let fallback = Window::new(end - chrono::Duration::seconds(1), end).expect("one second");
    let warnings = crate::warnings::Capture::new();
    // Spool elements no message of the ledger names: left by an interrupted
    // run (adopted below when a message renders to the same bytes).
    let mut orphans = {
        let ledger = ledger.lock().unwrap();
        queues.iter().map(|q| orphan_elements(q, &ledger)).collect::<Result<Vec<_>, _>>()?
    };
    let mut report = RunReport::default();
    // The ledger's instance-action cache: one batch lookup per project (a failed read is a
    // warning and every list is fetched).
    let lookup = |project: &str, servers: &[&str]| {
        let _stage = tracing::info_span!(stage::LEDGER).entered();
        match ledger.lock().unwrap().cached_actions(project, servers) {
            Ok(hits) => hits,
            Err(e) => {
                tracing::warn!(target: "accounting", project = %project, "instance-action cache not read, listing every action again: {e}");
                Vec::new()
            }
        }
    };
    // The ledger's listed-server cache: one lookup for the run's usage-only servers.
    let servers_lookup = |ids: &[&str]| match ledger.lock().unwrap().listed_servers(ids) {
        Ok(found) => Some(found),
        Err(e) => {
            tracing::warn!(target: "accounting", "listed-server cache not read, listing the live servers: {e}");
            None
        }
    };
    let caches = crate::Caches {
        actions: cfg.action_cache.then_some(&lookup as crate::action_cache::Lookup),
        servers: cfg.server_cache.then_some(&servers_lookup as crate::server_cache::Lookup),
    };
    // Each project is committed (ledger + spool) as soon as it is extracted,
    // while the others are still being read; windows (and so the errors and
    // up-to-date projects below) are all worked out before the first one.
    let (failure, capture) = crate::Extract::new(session, cfg, |project| match window_for(&ledger, windows, project) {
        Ok(Some(w)) => w,
        Ok(None) => {
            up_to_date.lock().unwrap().insert(project.to_string());
            fallback
        }
        Err(e) => {
            window_errors.lock().unwrap().insert(project.to_string(), e.to_string());
            fallback
        }
    })
    .known_volumes(|project, listed| known_volumes(&ledger, project, listed))
    .caches(caches)
    .each_captured(|outcome| {
        let mut pr = ProjectReport {
            project_id: outcome.project_id.clone(),
            project_name: outcome.project_name.clone(),
            vo: outcome.vo.as_ref().map(|(vo, _)| vo.clone()),
            window: outcome.window,
            extracted: BTreeMap::new(),
            spooled: BTreeMap::new(),
            unchanged: 0,
            kept_newer: 0,
            messages: Vec::new(),
            error: window_errors.lock().unwrap().get(&outcome.project_id).cloned(),
            up_to_date: up_to_date.lock().unwrap().contains(&outcome.project_id),
            skipped: outcome.skipped.clone(),
            actions_reused: outcome.action_cache.reused,
            actions_fetched: outcome.action_cache.fetched,
        };
        let _stage = tracing::info_span!(stage::LEDGER).entered();
        let mut ledger = ledger.lock().unwrap();
        if pr.error.is_none()
            && !pr.up_to_date
            && pr.skipped.is_none()
            && let Err(e) =
                commit_project(&queues, &mut ledger, run_id, &cfg.site_name, &outcome, spool, &mut orphans, &mut pr)
        {
            pr.error = Some(e.to_string());
        }
        store_action_cache(&mut ledger, &outcome);
        drop(ledger);
        drop(_stage);
        progress(&pr);
        report.projects.push(pr);
    })
    .with_subscriber(warnings.dispatch())
    .await;
    report.failure = failure.as_ref().map(|e| e.to_string());
    report.projects.sort_by(|a, b| a.project_id.cmp(&b.project_id));
    let ledger = ledger.into_inner().unwrap();
    let outcome = if report.is_complete() {
        ledger::RunOutcome::Succeeded
    } else if report.projects.iter().any(|p| p.error.is_none()) {
        ledger::RunOutcome::Partial
    } else {
        ledger::RunOutcome::Failed
    };
    let mut ledger = ledger;
    report.run_id = Some(run_id);
    report.server_cache = capture.map(|c| {
        let _stage = tracing::info_span!(stage::LEDGER).entered();
        store_server_cache(&mut ledger, &c)
    });
    report.warnings = run_warnings(&warnings, &report);
    if let Some(e) = report.server_cache.as_ref().and_then(|r| r.error.clone()) {
        report.warnings.push(("warn".into(), e));
    }
    if cfg.action_cache
        && let Err(e) = ledger.prune_cached_actions(Utc::now() - crate::action_cache::PRUNE_AFTER)
    {
        tracing::warn!(target: "accounting", "pruning the instance-action cache: {e}");
        report.warnings.push(("warn".into(), format!("pruning the instance-action cache: {e}")));
    }
    for (level, message) in &report.warnings {
        ledger.add_run_warning(run_id, level, message)?;
    }
    ledger.finish_run(run_id, outcome, report.failure.as_deref())?;
    Ok((report, ledger))
}

/// What the run logged at warn/error level, then its failures and dropped records.
fn run_warnings(capture: &crate::warnings::Capture, report: &RunReport) -> Vec<(String, String)> {
    let (captured, left_out) = capture.take();
    let mut out: Vec<(String, String)> = captured.into_iter().map(|c| (c.level.to_string(), c.message)).collect();
    if left_out > 0 {
        out.push(("warn".into(), format!("{left_out} more warnings were logged (not kept)")));
    }
    if let Some(f) = &report.failure {
        out.push(("error".into(), f.clone()));
    }
    for p in &report.projects {
        if let Some(e) = &p.error {
            let e = if e.contains(&p.project_id) { e.clone() } else { format!("project {}: {e}", p.project_id) };
            out.push(("error".into(), format!("{e} (its checkpoint did not move)")));
        }
        if let Some(why) = &p.skipped {
            out.push(("warn".into(), why.clone()));
        }
        if p.kept_newer > 0 {
            out.push((
                "warn".into(),
                format!("project {}: {} records older than the ledger's were dropped", p.project_id, p.kept_newer),
            ));
        }
    }
    out
}

/// Stores the instance-action lists a project fetched (and marks those it reused as seen),
/// right after its commit. The lists are facts read from Nova, whatever became of the
/// project's records; failing to store them costs requests next run, never the run: a warning.
fn store_action_cache(ledger: &mut Ledger, outcome: &ProjectOutcome) {
    let u = &outcome.action_cache;
    if u.reused + u.fetched > 0 {
        tracing::debug!(target: "accounting", project = %outcome.project_id,
            "instance actions: {} lists reused, {} fetched ({} to cache)", u.reused, u.fetched, u.fresh.len());
    }
    if u.fresh.is_empty() && u.touch.is_empty() {
        return;
    }
    let touch: Vec<&str> = u.touch.iter().map(String::as_str).collect();
    if let Err(e) = ledger.store_cached_actions(&outcome.project_id, &u.fresh, &touch, Utc::now()) {
        tracing::warn!(target: "accounting", project = %outcome.project_id,
            "instance-action cache not updated ({} lists); the next run lists them again: {e}", u.fresh.len());
    }
}

/// Stores what the run listed in the listed-server cache (`crate::server_cache`) after every
/// project, a transaction per batch (`Capture::updates`): a failure is reported, never the
/// run's (the next run lists the live servers again).
fn store_server_cache(ledger: &mut Ledger, c: &crate::server_cache::Capture) -> crate::server_cache::ServerCacheReport {
    let mut report = crate::server_cache::ServerCacheReport { used: c.used, ..Default::default() };
    let stored = ledger.listed_servers(&[]).and_then(|before| {
        for update in c.updates(before.valid_at) {
            report.stored += update.put.len();
            report.removed += update.remove.len();
            report.reset |= update.reset;
            ledger.store_listed_servers(&update)?;
        }
        Ok(())
    });
    if let Err(e) = stored {
        tracing::warn!(target: "accounting", "listed-server cache not updated; the next run lists the live servers: {e}");
        report.error = Some(format!("listed-server cache not updated; the next run lists the live servers: {e}"));
    }
    tracing::debug!(target: "accounting", "listed-server cache: {} usage-only servers taken from it, {} stored, {} removed{}",
        report.used, report.stored, report.removed, if report.reset { " (started afresh)" } else { "" });
    report
}

/// The ledger's open storage records of a project (closing records excluded) whose volumes
/// Cinder does not list (`listed`): only those are read and parsed. A read or a stored body
/// that fails fails the project's storage records (the closing record would be lost).
fn known_volumes(
    ledger: &Mutex<Ledger>,
    project: &str,
    listed: &HashSet<String>,
) -> Result<Vec<apel::StorageRecord>, String> {
    let _stage = tracing::info_span!(stage::LEDGER).entered();
    let ledger = ledger.lock().unwrap();
    let seen = ledger.seen("storage", project).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for s in seen.iter().filter(|s| s.status.as_deref() != Some(CLOSED) && !listed.contains(&s.key)) {
        let Some(stored) = ledger.snapshot("storage", &s.key).map_err(|e| e.to_string())? else { continue };
        let record = apel::parse_message(stored.snapshot.body.as_bytes())
            .map_err(|e| format!("storage snapshot {}: {e}", s.key))?
            .1
            .into_iter()
            .find_map(|r| match r {
                Record::Storage(st) => Some(st),
                _ => None,
            })
            .ok_or_else(|| format!("storage snapshot {}: no storage record in its body", s.key))?;
        out.push(record);
    }
    Ok(out)
}

/// Status stored on a storage snapshot once its closing record was made.
const CLOSED: &str = "closed";

/// Spool elements the ledger knows nothing of, by content hash.
fn orphan_elements(queue: &QueueSimple, ledger: &Ledger) -> Result<HashMap<String, String>, RunError> {
    let mut out = HashMap::new();
    for name in queue.iter()? {
        if ledger.message(name.as_str())?.is_some() {
            continue;
        }
        // Another process may take it meanwhile: skip what vanished.
        if let Ok(bytes) = std::fs::read(queue.path().join(name.as_str())) {
            out.insert(hex(&bytes), name.as_str().to_string());
        }
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Records grouped by kind, in the spool order cASO uses.
fn by_kind(records: &[Record]) -> Vec<(RecordKind, Vec<Record>)> {
    let mut out: Vec<(RecordKind, Vec<Record>)> = Vec::new();
    for kind in [RecordKind::Cloud, RecordKind::Ip, RecordKind::Accelerator, RecordKind::Storage, RecordKind::Energy] {
        let recs: Vec<Record> = records.iter().filter(|r| r.kind() == kind).cloned().collect();
        if !recs.is_empty() {
            out.push((kind, recs));
        }
    }
    out
}

/// The ledger snapshot of one record (with its fingerprint).
pub fn snapshot_of(
    record: &Record,
    project: &str,
    vo: Option<&str>,
    site: &str,
    measured_at: DateTime<Utc>,
) -> Result<Snapshot, apel::Error> {
    snapshot_with(record, record.fingerprint(), project, vo, site, measured_at)
}

fn snapshot_with(
    record: &Record,
    fingerprint: String,
    project: &str,
    vo: Option<&str>,
    site: &str,
    measured_at: DateTime<Utc>,
) -> Result<Snapshot, apel::Error> {
    let body = String::from_utf8(apel::render_message(record.kind(), std::slice::from_ref(record), Style::Fedsite)?)
        .expect("APEL messages are ASCII");
    let mut s = Snapshot {
        kind: record.kind().as_str().to_string(),
        key: record.key(),
        project_id: project.to_string(),
        vo: vo.map(String::from),
        site: site.to_string(),
        measured_at,
        month: None,
        start_time: None,
        end_time: None,
        wall_seconds: None,
        cpu_seconds: None,
        status: None,
        body,
        fingerprint: Some(fingerprint),
    };
    match record {
        Record::Cloud(r) => {
            s.month = r.measurement_time().map(ledger::month_of);
            s.start_time = r.start_time;
            s.end_time = r.end_time;
            s.wall_seconds = r.wall_duration;
            s.cpu_seconds = r.cpu_duration;
            s.status = r.status.map(|st| st.as_str().to_string());
        }
        Record::Storage(r) => {
            s.start_time = Some(r.start_time);
            s.end_time = Some(r.end_time);
        }
        Record::Accelerator(r) => {
            s.month = Some(format!("{:04}-{:02}", r.measurement_year, r.measurement_month));
            s.wall_seconds = Some(r.available_duration);
        }
        Record::Ip(_) | Record::Energy(_) => {}
    }
    Ok(s)
}

fn commit_project(
    queues: &[QueueSimple],
    ledger: &mut Ledger,
    run: ledger::RunId,
    site: &apel::SiteName,
    outcome: &ProjectOutcome,
    spool: &SpoolConfig,
    orphans: &mut [HashMap<String, String>],
    pr: &mut ProjectReport,
) -> Result<(), RunError> {
    let records = match &outcome.result {
        Ok(records) => records,
        Err(e) => {
            pr.error = Some(e.to_string());
            return Ok(());
        }
    };
    for r in records {
        *pr.extracted.entry(r.kind().as_str()).or_default() += 1;
    }
    let measured_at = outcome.window.to();
    let vo = outcome.vo.as_ref().map(|(vo, _)| vo.as_str());
    // The configured site (a validated, non-empty name), whatever kinds the project has.
    let site = site.as_str();
    // A record whose fingerprint the ledger stored with its snapshot renders to the stored body:
    // it is unchanged, and only its `measured_at` may move, without rendering or hashing it. A
    // key that comes twice in the batch is left to the comparison of bodies (later ones see
    // earlier ones there).
    let mut stored_fps = HashMap::new();
    for kind in RecordKind::ALL {
        if records.iter().any(|r| r.kind() == kind) {
            stored_fps.insert(kind, ledger.fingerprints(kind.as_str(), &outcome.project_id)?);
        }
    }
    let keys: Vec<String> = records.iter().map(Record::key).collect();
    let mut times: HashMap<(RecordKind, &str), usize> = HashMap::new();
    for (r, k) in records.iter().zip(&keys) {
        *times.entry((r.kind(), k.as_str())).or_default() += 1;
    }
    let mut unchanged = Vec::new();
    let mut rendered = Vec::with_capacity(records.len());
    let mut snapshots = Vec::with_capacity(records.len());
    for (r, key) in records.iter().zip(keys.iter()) {
        let fp = r.fingerprint();
        let stored = stored_fps.get(&r.kind()).and_then(|m| m.get(key));
        if let Some(stored) = stored
            && stored.fingerprint == fp
            && times[&(r.kind(), key.as_str())] == 1
        {
            pr.unchanged += 1;
            if stored.measured_at < measured_at {
                unchanged.push(Unchanged { kind: r.kind().as_str().to_string(), key: key.clone(), measured_at });
            }
            continue;
        }
        let mut s = snapshot_with(r, fp, &outcome.project_id, vo, site, measured_at).map_err(|source| {
            RunError::Render { kind: r.kind().as_str(), project: outcome.project_id.clone(), source }
        })?;
        if let Record::Storage(st) = r
            && outcome.closed_volumes.iter().any(|v| v == st.record_id.as_str())
        {
            s.status = Some(CLOSED.into());
        }
        rendered.push(r);
        snapshots.push(s);
    }
    // Only what is new or changed is spooled; nothing older than the ledger's. An unchanged
    // record whose stored snapshot is as recent is not committed again (nothing to write).
    let verdicts = ledger.preview(&snapshots)?;
    let mut to_send: Vec<(Record, Snapshot)> = Vec::new();
    let mut keep = Vec::new();
    for ((r, s), v) in rendered.into_iter().zip(snapshots).zip(verdicts) {
        match v.upsert {
            Upsert::Inserted | Upsert::Replaced => to_send.push((r.clone(), s)),
            Upsert::Unchanged => {
                pr.unchanged += 1;
                if v.writes {
                    keep.push(s);
                }
            }
            Upsert::KeptNewer => pr.kept_newer += 1,
        }
    }
    let mut messages = Vec::new();
    // Each kind to its route's spool; a kind no route names (energy by default: APEL's SSM
    // path does not take it, nor does cASO's ssm messenger) is kept in the ledger only.
    for kind in RecordKind::ALL {
        let Some(route) = spool.route_of(kind) else { continue };
        let (recs, snaps): (Vec<Record>, Vec<&Snapshot>) =
            to_send.iter().filter(|(r, _)| r.kind() == kind).map(|(r, s)| (r.clone(), s)).unzip();
        if recs.is_empty() {
            continue;
        }
        let _spool = tracing::info_span!(stage::SPOOL).entered();
        let batches = apel::batch_ranges(kind, &recs, spool.style, spool.max_records, spool.max_signed_bytes)
            .map_err(|source| RunError::Render { kind: kind.as_str(), project: outcome.project_id.clone(), source })?;
        for (range, bytes) in batches {
            let element = match orphans[route].remove(&hex(&bytes)) {
                Some(adopted) => {
                    tracing::info!(element = %adopted, "adopting a spooled message left by an interrupted run");
                    adopted
                }
                None => queues[route].add(&bytes)?.as_str().to_string(),
            };
            messages.push(NewMessage {
                element: element.clone(),
                kind: kind.as_str().to_string(),
                created_at: Utc::now(),
                records: snaps[range.clone()].iter().map(|s| RecordRef::of(s)).collect(),
            });
            *pr.spooled.entry(kind.as_str()).or_default() += range.len();
            pr.messages.push(element);
        }
    }
    let mut all: Vec<Snapshot> = to_send.into_iter().map(|(_, s)| s).collect();
    all.extend(keep);
    ledger.commit_project(&ProjectCommit {
        run: Some(run),
        project_id: outcome.project_id.clone(),
        checkpoint_kind: CHECKPOINT.into(),
        snapshots: all,
        messages,
        unchanged,
        checkpoint_to: Some(outcome.window.to()),
    })?;
    Ok(())
}

/// Re-spools the latest snapshots of a period (by `measured_at`), optionally
/// of one project, so APEL gets them again without double counting: APEL
/// keeps one record per VM and month, and these are the newest the site has.
pub fn republish(
    ledger: &mut Ledger,
    filter: &SnapshotFilter,
    spool: &SpoolConfig,
) -> Result<Vec<(String, String, usize)>, RunError> {
    let queues = spool.open_queues()?;
    let run = ledger.begin_run(&ledger::NewRun {
        command: ledger::runs::REPUBLISH.into(),
        window_from: filter.from,
        window_to: filter.to,
    })?;
    let snapshots = ledger.latest_snapshots(filter)?;
    let mut by_kind: BTreeMap<String, Vec<(Record, Snapshot)>> = BTreeMap::new();
    for stored in snapshots {
        let s = stored.snapshot;
        let (_, records) = apel::parse_message(s.body.as_bytes()).map_err(|source| RunError::Render {
            kind: "stored",
            project: s.project_id.clone(),
            source,
        })?;
        for r in records {
            by_kind.entry(s.kind.clone()).or_default().push((r, s.clone()));
        }
    }
    let mut out = Vec::new();
    for (kind_name, items) in by_kind {
        let kind: RecordKind =
            kind_name.parse().map_err(|source| RunError::Render { kind: "stored", project: String::new(), source })?;
        // A kind no route names is not spooled (see commit_project).
        let Some(route) = spool.route_of(kind) else { continue };
        let (recs, snaps): (Vec<Record>, Vec<Snapshot>) = items.into_iter().unzip();
        for (range, bytes) in apel::batch_ranges(kind, &recs, spool.style, spool.max_records, spool.max_signed_bytes)
            .map_err(|source| RunError::Render { kind: kind.as_str(), project: String::new(), source })?
        {
            let element = queues[route].add(&bytes)?.as_str().to_string();
            ledger.record_message(
                &NewMessage {
                    element: element.clone(),
                    kind: kind_name.clone(),
                    created_at: Utc::now(),
                    records: snaps[range.clone()].iter().map(RecordRef::of).collect(),
                },
                Some(run),
            )?;
            out.push((element, kind_name.clone(), range.len()));
        }
    }
    ledger.finish_run(run, ledger::RunOutcome::Succeeded, None)?;
    Ok(out)
}
