//! Accounting extraction: reads OpenStack through `openstack` and builds
//! `apel` records (cloud, accelerator, storage, public IP; energy from
//! Prometheus), the way cASO
//! 5.2.2 does except for the fixes in COMPAT-NOTES.md. The only crate that
//! knows both sides; windows and checkpoints belong to the caller (ledger).
//!
//! ```no_run
//! # async fn demo(session: openstack::Session, cfg: accounting::ExtractConfig, w: apel::Window) {
//! let run = accounting::Extract::new(&session, &cfg, |_project| w).run().await;
//! for p in &run.projects {
//!     match &p.result {
//!         Ok(records) => println!("{}: {} records", p.project_id, records.len()),
//!         Err(e) => eprintln!("{}: {e}", p.project_id),
//!     }
//! }
//! # }
//! ```
//!
//! Requests: the project list (one `GET /v3/projects?tags=`), flavors and
//! images once per run; with an admin or system-reader token the servers,
//! usage (per distinct window), volumes and floating IPs are listed once
//! for all projects; otherwise one project-scoped token per project is made
//! and reused. Per server: instance actions (SuspendDuration), and
//! `GET /servers/{id}` for the ones only the usage report knows; per
//! distinct user one `GET /v3/users/{id}`. Projects run concurrently
//! (`ExtractConfig::concurrency`).

#![allow(clippy::result_large_err)]

mod access;
pub mod action_cache;
pub mod casoconf;
pub mod cinder;
pub mod config;
pub mod error;
mod kept;
pub mod neutron;
pub mod nova;
pub mod pipeline;
pub mod prometheus;
pub mod server_cache;
pub mod stage;
pub mod suspend;
pub mod vo;
pub mod warnings;
pub mod windows;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use apel::{Fqan, Record, StorageRecord, Window};
use futures::StreamExt;
use openstack::Paged;
use openstack::Session;
use openstack::keystone::{ListProjects, Project};
use tracing::Instrument;

pub use access::FlavorFacts;
pub use cinder::GoneVolume;
pub use config::{
    AcceleratorKeys, BenchmarkKeys, CompatOptions, ExtractConfig, Extractor, InactiveTime, PrometheusConfig,
};
pub use error::ExtractError;
pub use nova::vm_status_from_nova;
pub use vo::{VoMap, VoSource};

use access::{Access, ProjectAccess, SYSTEM_ROLE};

/// A Keystone project id.
pub type ProjectId = str;

/// What happened to one project.
#[derive(Debug)]
pub struct ProjectOutcome {
    pub project_id: String,
    pub project_name: Option<String>,
    /// The VO and where it came from.
    pub vo: Option<(String, VoSource)>,
    pub window: Window,
    /// Every record of the project, or why not (then no checkpoint should move).
    pub result: Result<Vec<Record>, ProjectError>,
    /// Volumes closed this run (known to the caller, gone from Cinder).
    pub closed_volumes: Vec<String>,
    /// Instance-action lists fetched or reused through the ledger's cache (empty without one).
    pub action_cache: action_cache::ActionCacheUpdate,
    /// Skipped on purpose (a project known to have no VO, `ExtractConfig::unmapped_ok`): why.
    /// Nothing was extracted and its checkpoint must not move.
    pub skipped: Option<String>,
}

/// A project's failure: every extractor error, plus the records the other
/// extractors produced (cASO would still send those).
#[derive(Debug, thiserror::Error)]
#[error("{}", errors.iter().map(|(x, e)| match x { Some(x) => format!("{}: {e}", x.as_str()), None => e.to_string() }).collect::<Vec<_>>().join("; "))]
pub struct ProjectError {
    pub errors: Vec<(Option<Extractor>, ExtractError)>,
    pub partial: Vec<Record>,
}

/// The result of a run.
#[derive(Debug, Default)]
pub struct Extraction {
    /// One per project, sorted by project id.
    pub projects: Vec<ProjectOutcome>,
    /// A failure that stopped the whole run (no project was extracted).
    pub failure: Option<ExtractError>,
}

impl Extraction {
    /// Every record of the projects that succeeded.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.projects.iter().filter_map(|p| p.result.as_ref().ok()).flatten()
    }
    pub fn is_complete(&self) -> bool {
        self.failure.is_none() && self.projects.iter().all(|p| p.result.is_ok())
    }
}

/// How far past the clock a window may end (the clocks of this host and of Nova differ a little).
pub const FUTURE_WINDOW_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// `known_volumes` when the caller holds no storage records.
type NoVolumes = fn(&ProjectId, &HashSet<String>) -> Result<Vec<StorageRecord>, String>;

/// The one way to run an extraction: every selected project (tagged `cfg.project_tag`, plus
/// `cfg.projects`) over the window `window_for` gives it. Optionally the volumes the caller
/// holds records for ([`Extract::known_volumes`]: those Cinder no longer lists get a closing
/// record); then every outcome at once ([`Extract::run`]) or each as soon as it is complete
/// ([`Extract::each`]).
#[must_use = "an extraction does nothing until `run` or `each` is awaited"]
pub struct Extract<'a, W, K = NoVolumes> {
    session: &'a Session,
    cfg: &'a ExtractConfig,
    window_for: W,
    known_volumes: K,
    caches: Caches<'a>,
}

impl<'a, W> Extract<'a, W>
where
    W: Fn(&ProjectId) -> Window + Sync,
{
    /// An extraction of `cfg`'s projects through `session`, each over `window_for(project)`.
    pub fn new(session: &'a Session, cfg: &'a ExtractConfig, window_for: W) -> Self {
        Extract { session, cfg, window_for, known_volumes: |_, _| Ok(Vec::new()), caches: Caches::default() }
    }
}

impl<'a, W, K> Extract<'a, W, K>
where
    W: Fn(&ProjectId) -> Window + Sync,
    K: Fn(&ProjectId, &HashSet<String>) -> Result<Vec<StorageRecord>, String> + Sync,
{
    /// The last records of the volumes the caller holds records for, per project: those Cinder
    /// no longer lists get a closing record. It is given the ids Cinder lists now, whose
    /// records it may leave out (they are not used). An error fails the project's storage
    /// records ([`ExtractError::KnownVolumes`]): a closing record is never dropped quietly.
    pub fn known_volumes<K2>(self, known_volumes: K2) -> Extract<'a, W, K2>
    where
        K2: Fn(&ProjectId, &HashSet<String>) -> Result<Vec<StorageRecord>, String> + Sync,
    {
        let Extract { session, cfg, window_for, caches, .. } = self;
        Extract { session, cfg, window_for, known_volumes, caches }
    }

    /// The ledger-side caches the run may read: instance actions of servers whose list
    /// `caches.actions` still holds (see [`action_cache`]; each outcome says what to store
    /// back), and usage-only servers from `caches.servers` when it can stand in for the live
    /// listing (see [`server_cache`]).
    pub(crate) fn caches(mut self, caches: Caches<'a>) -> Self {
        self.caches = caches;
        self
    }

    /// Every project's outcome, sorted by project id.
    pub async fn run(self) -> Extraction {
        let mut projects = Vec::new();
        let failure = self.each(|o| projects.push(o)).await;
        projects.sort_by(|a, b| a.project_id.cmp(&b.project_id));
        Extraction { projects, failure }
    }

    /// Hands each project's outcome to `on_done` as soon as it is complete (in completion
    /// order), so the caller can store it while the other projects are still being read, and
    /// need not hold every record of the run at once. Returns the failure that stopped the
    /// whole run, if any (then `on_done` was never called).
    pub async fn each(self, on_done: impl FnMut(ProjectOutcome)) -> Option<ExtractError> {
        self.each_captured(on_done).await.0
    }

    /// [`Extract::each`], returning with the failure what the run listed for the server cache
    /// (with `caches.servers` only).
    pub(crate) async fn each_captured(
        self,
        on_done: impl FnMut(ProjectOutcome),
    ) -> (Option<ExtractError>, Option<server_cache::Capture>) {
        extract_projects(self.session, self.cfg, self.window_for, self.known_volumes, self.caches, on_done).await
    }
}

/// The ledger-side caches a run may read (the pipeline's; none by default).
#[derive(Clone, Copy, Default)]
pub(crate) struct Caches<'a> {
    /// Instance-action lists ([`action_cache`]).
    pub actions: Option<action_cache::Lookup<'a>>,
    /// Listed servers ([`server_cache`]).
    pub servers: Option<server_cache::Lookup<'a>>,
}

async fn extract_projects(
    session: &Session,
    cfg: &ExtractConfig,
    window_for: impl Fn(&ProjectId) -> Window + Sync,
    known_volumes: impl Fn(&ProjectId, &HashSet<String>) -> Result<Vec<StorageRecord>, String> + Sync,
    caches: Caches<'_>,
    mut on_done: impl FnMut(ProjectOutcome),
) -> (Option<ExtractError>, Option<server_cache::Capture>) {
    let vo_map = match VoMap::load(&cfg.vo_properties, cfg.voms_json.as_deref(), cfg.catchall_site_yaml.as_deref()) {
        Ok(m) => m,
        Err(e) => return (Some(e.into()), None),
    };
    let tagged = match &cfg.project_tag {
        Some(tag) => {
            match ListProjects::tagged(tag.clone()).list(session).instrument(tracing::info_span!(stage::LISTING)).await
            {
                Ok(l) => l,
                Err(e) if e.is_forbidden() => {
                    tracing::warn!(target: "accounting", error = %e,
                    "cannot list projects tagged {tag:?}; using only the configured projects. The accounting account needs {SYSTEM_ROLE}");
                    vec![]
                }
                Err(e) => {
                    return (Some(ExtractError::api(format!("listing projects tagged {tag:?}"), e, SYSTEM_ROLE)), None);
                }
            }
        }
        None => vec![],
    };
    let mut projects: BTreeMap<String, Option<Project>> = tagged.into_iter().map(|p| (p.id.clone(), Some(p))).collect();
    for p in &cfg.projects {
        projects.entry(p.clone()).or_insert(None);
    }
    let windows: BTreeMap<String, Window> = projects.keys().map(|p| (p.clone(), window_for(p))).collect();
    let Some(earliest) = windows.values().map(|w| w.from()).min() else { return (None, None) };
    let access = match Access::new(session.clone(), earliest, caches.servers.is_some()).await {
        Ok(a) => a,
        Err(e) => return (Some(e), None),
    };
    let access = &access;
    // Only projects with a VO are read; without any, nothing is listed.
    if projects.iter().any(|(id, p)| {
        vo_map.resolve(id, p.as_ref().map(|p| p.name.as_str()), p.as_ref().map(|p| &p.extra)).is_some() || p.is_none()
    }) {
        let mut ws = windows.values();
        let first = ws.next().copied();
        let common = first.filter(|w| ws.all(|x| x == w)).map(|w| (w.from(), w.to()));
        let has = |x: Extractor| cfg.extractors.contains(&x);
        access
            .prefetch(
                common,
                has(Extractor::Prometheus),
                has(Extractor::Nova),
                has(Extractor::Cinder),
                has(Extractor::Neutron),
            )
            .await;
    }
    let vo_map = &vo_map;
    let known_volumes = &known_volumes;
    futures::stream::iter(projects.into_iter().map(|(id, project)| {
        let window = windows[&id];
        async move { one_project(access, cfg, vo_map, id, project, window, known_volumes, caches).await }
            .instrument(tracing::info_span!(stage::BUILDING))
    }))
    .buffer_unordered(cfg.concurrency.max(1))
    .for_each(|o| {
        on_done(o);
        futures::future::ready(())
    })
    .await;
    (None, caches.servers.and_then(|_| access.server_capture()))
}

#[allow(clippy::too_many_arguments)]
async fn one_project(
    a: &Access,
    cfg: &ExtractConfig,
    vo_map: &VoMap,
    id: String,
    project: Option<Project>,
    window: Window,
    known_volumes: &(impl Fn(&ProjectId, &HashSet<String>) -> Result<Vec<StorageRecord>, String> + Sync),
    caches: Caches<'_>,
) -> ProjectOutcome {
    let p = ProjectAccess::new(id.clone());
    let mut outcome = ProjectOutcome {
        project_id: id.clone(),
        project_name: project.as_ref().map(|p| p.name.clone()),
        vo: None,
        window,
        result: Ok(vec![]),
        closed_volumes: vec![],
        action_cache: Default::default(),
        skipped: None,
    };
    let fail = |e: ExtractError| Err(ProjectError { errors: vec![(None, e)], partial: vec![] });
    // A window ending in the future would count a running VM's usage past now (Nova's usage
    // runs to the period's end): refused, beyond a margin for clock skew (the CLI clamps
    // `--to` to now; compat row 21).
    let now = chrono::Utc::now();
    if window.to() > now + FUTURE_WINDOW_MARGIN {
        outcome.result = fail(ExtractError::Window {
            project: id.clone(),
            message: format!(
                "it ends at {}, after now ({}): usage past now would be counted",
                window.to().format("%Y-%m-%dT%H:%M:%SZ"),
                now.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        });
        return outcome;
    }
    // The project's properties: from the tag listing, else GET (system
    // token, then the project's own).
    let project = match project {
        Some(p) => p,
        None => {
            let what = || format!("project {id}: reading the Keystone project");
            let got = a
                .call(&p, access::Kind::Project, &what, |s| {
                    let id = id.clone();
                    async move { openstack::keystone::projects::get(&s, &id).await }
                })
                .await;
            match got {
                Ok(pr) => pr,
                Err(e) => {
                    outcome.result = fail(e);
                    return outcome;
                }
            }
        }
    };
    outcome.project_name = Some(project.name.clone());
    let Some((vo, source)) = vo_map.resolve(&id, Some(&project.name), Some(&project.extra)) else {
        if cfg.unmapped_ok.iter().any(|u| u == "*" || *u == id || *u == project.name) {
            outcome.skipped = Some(format!(
                "project {id} ({}) has no VO mapping; skipped, as unmapped_ok says (its checkpoint does not move)",
                project.name
            ));
            return outcome;
        }
        outcome.result = fail(ExtractError::NoVo { project: id.clone(), properties: cfg.vo_properties.clone() });
        return outcome;
    };
    outcome.vo = Some((vo.clone(), source));
    let fqan = match Fqan::new(vo.clone()) {
        Ok(f) => f,
        Err(e) => {
            outcome.result = fail(ExtractError::record(format!("project {id}: VO {vo:?}"), e));
            return outcome;
        }
    };
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let mut done: BTreeSet<Extractor> = BTreeSet::new();
    for x in cfg.extractors.iter().filter(|x| done.insert(**x)) {
        let r = match x {
            Extractor::Nova => nova::extract(a, &p, cfg, &fqan, window, caches).await.map(|(r, cache)| {
                outcome.action_cache = cache;
                r
            }),
            Extractor::Cinder => {
                let known = |listed: &HashSet<String>| match known_volumes(&id, listed) {
                    Ok(v) => Ok(v.into_iter().map(|last| GoneVolume { last, deleted_at: None }).collect()),
                    Err(message) => Err(ExtractError::KnownVolumes { project: id.clone(), message }),
                };
                cinder::extract(a, &p, cfg, &fqan, window, known).await.map(|(r, closed)| {
                    outcome.closed_volumes = closed;
                    r
                })
            }
            Extractor::Neutron => neutron::extract(a, &p, cfg, &fqan, window).await,
            Extractor::Prometheus => prometheus::extract(a, &p, cfg, &fqan, window).await,
        };
        match r {
            Ok(r) => records.extend(r),
            Err(e) => {
                tracing::error!(target: "accounting", project = %id, extractor = x.as_str(), error = %e, "extractor failed");
                errors.push((Some(*x), e));
            }
        }
    }
    outcome.result = if errors.is_empty() { Ok(records) } else { Err(ProjectError { errors, partial: records }) };
    outcome
}
