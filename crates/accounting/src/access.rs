//! How the extractor reaches OpenStack: one run-wide state holding the
//! caller's session, run-wide caches (flavors, images, users: fetched once
//! per run) and the all-projects listings (servers, usage, volumes, floating
//! IPs: one listing per run with an admin or system-reader token), with a
//! per-project fallback to ONE project-scoped token when a policy refuses.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use openstack::Paged;
use openstack::cinder::{ListVolumes, Volume};
use openstack::glance::{Image, ListImages};
use openstack::neutron::{FloatingIp, ListFloatingIps};
use openstack::nova::{
    Flavor, FlavorVisibility, GetTenantUsage, InstanceAction, ListFlavors, ListInstanceActions, ListServers,
    ListTenantUsages, Server, ServerFlavor, ServerUsage,
};
use openstack::{Scope, Session};
use tokio::sync::OnceCell;
use tracing::Instrument;

use crate::error::ExtractError;
use crate::kept::{Interner, KeptServer, KeptUsage, ListedServer, ServersById, slim_volume};

/// The role hint for calls made with the system / admin token.
pub(crate) const SYSTEM_ROLE: &str = "the reader role on the system (openstack role add --user <accounting user> --user-domain <domain> --system all reader)";

/// The role hint for calls made in a project.
pub(crate) fn project_role(pid: &str) -> String {
    format!("the reader role on project {pid} (openstack role add --user <accounting user> --project {pid} reader)")
}

/// Calls that may be refused to the system / admin token, each remembered
/// once refused so the run stops trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Kind {
    Usage,
    ServerGet,
    Actions,
    Images,
    Project,
}

const KINDS: usize = 5;

/// A run-wide listing: fetched, refused by policy, or failed.
#[derive(Clone)]
pub(crate) enum Global<T> {
    Have(Arc<T>),
    Denied,
    Failed(Arc<ExtractError>),
}

type Cell<T> = Arc<OnceCell<T>>;

/// Per-key once-only lookups shared by concurrent projects.
struct Memo<T> {
    cells: Mutex<HashMap<String, Cell<T>>>,
}

impl<T: Clone> Memo<T> {
    fn new() -> Self {
        Memo { cells: Mutex::new(HashMap::new()) }
    }
    async fn get<F, Fut>(&self, key: &str, f: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let cell = self.cells.lock().unwrap().entry(key.to_string()).or_default().clone();
        cell.get_or_init(f).await.clone()
    }
}

/// Facts about a server's flavor the records need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlavorFacts {
    /// For messages: the flavor id or name.
    pub label: String,
    pub vcpus: u32,
    /// MiB.
    pub ram: u64,
    /// Root + ephemeral, GB.
    pub disk: u64,
    /// Shared by every server of the flavor.
    pub extra_specs: Arc<BTreeMap<String, String>>,
    /// False when the flavor could not be found (cASO: zeros).
    pub known: bool,
}

/// The run-wide state (see the module docs).
pub(crate) struct Access {
    pub primary: Session,
    /// System-scoped or admin: all-projects listings are tried first.
    pub privileged: bool,
    /// Admin role: single servers/images of any project are visible (a
    /// system reader's are not: Nova and Glance answer 404).
    pub admin: bool,
    denied: [AtomicBool; KINDS],
    flavors: OnceCell<Result<Arc<FlavorIndex>, Arc<ExtractError>>>,
    flavor_by_id: Memo<Result<Option<Flavor>, Arc<ExtractError>>>,
    flavor_specs: Memo<Result<Arc<BTreeMap<String, String>>, Arc<ExtractError>>>,
    images: OnceCell<Arc<HashMap<String, Image>>>,
    image_by_id: Memo<Result<Option<Image>, Arc<ExtractError>>>,
    users: Memo<Result<Option<String>, Arc<ExtractError>>>,
    users_denied: AtomicBool,
    /// Every user's name from one `GET /v3/users` (None: refused or failed).
    user_index: OnceCell<Option<Arc<HashMap<String, String>>>>,
    /// The servers only os-simple-tenant-usage names, from one all-projects
    /// listing (None: not worth it, or refused: `GET /servers/{id}` each).
    usage_only: OnceCell<Option<Arc<UsageOnly>>>,
    servers: OnceCell<Global<HashMap<String, Vec<KeptServer>>>>,
    /// Where the changed-server listing starts: the earliest window start, less
    /// `server_cache::SKEW_MARGIN` when the listed-server cache is on.
    servers_since: DateTime<Utc>,
    /// The earliest window start.
    windows_from: DateTime<Utc>,
    /// Our clock before the first request (the listed-server cache's next `valid_at`).
    started_at: DateTime<Utc>,
    usages: Memo<Global<HashMap<String, Vec<KeptUsage>>>>,
    volumes: OnceCell<Global<HashMap<String, Vec<Volume>>>>,
    fips: OnceCell<Global<HashMap<String, Vec<FloatingIp>>>>,
    pub warned: Mutex<HashSet<String>>,
}

#[derive(Default)]
struct FlavorIndex {
    by_id: HashMap<String, Flavor>,
    by_name: HashMap<String, String>,
    /// The extra specs the listing embedded (2.61+), by flavor id.
    specs: HashMap<String, Arc<BTreeMap<String, String>>>,
}

impl Access {
    /// `windows_from`: the earliest window start; `server_cache`: the listed-server cache is
    /// used (the changed-server listing then starts its margin earlier).
    pub async fn new(
        primary: Session,
        windows_from: DateTime<Utc>,
        server_cache: bool,
    ) -> Result<Access, ExtractError> {
        let started_at = Utc::now();
        let servers_since = if server_cache { windows_from - crate::server_cache::SKEW_MARGIN } else { windows_from };
        let token = primary
            .token()
            .instrument(listing())
            .await
            .map_err(|e| ExtractError::api("authenticating", e, SYSTEM_ROLE))?;
        let admin = token.roles.iter().any(|r| r.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case("admin")));
        let privileged = token.system || admin;
        Ok(Access {
            primary,
            privileged,
            admin,
            denied: Default::default(),
            flavors: OnceCell::new(),
            flavor_by_id: Memo::new(),
            flavor_specs: Memo::new(),
            images: OnceCell::new(),
            image_by_id: Memo::new(),
            users: Memo::new(),
            users_denied: AtomicBool::new(false),
            user_index: OnceCell::new(),
            usage_only: OnceCell::new(),
            servers: OnceCell::new(),
            servers_since,
            windows_from,
            started_at,
            usages: Memo::new(),
            volumes: OnceCell::new(),
            fips: OnceCell::new(),
            warned: Mutex::new(HashSet::new()),
        })
    }

    /// Logs `message` at warn level once per run per `key`.
    pub fn warn_once(&self, key: &str, message: impl FnOnce() -> String) {
        if self.warned.lock().unwrap().insert(key.to_string()) {
            tracing::warn!(target: "accounting", "{}", message());
        }
    }

    fn is_denied(&self, k: Kind) -> bool {
        self.denied[k as usize].load(Ordering::Relaxed)
    }

    fn deny(&self, k: Kind, e: &openstack::Error) {
        if !self.denied[k as usize].swap(true, Ordering::Relaxed) {
            tracing::info!(target: "accounting", kind = ?k, error = %e, "refused to the system/admin token; using project-scoped tokens for these calls");
        }
    }

    /// Runs `f` with the privileged session; on a policy refusal (or a
    /// catalog that needs a project) with the project's own token.
    pub async fn call<T, F, Fut>(
        &self,
        p: &ProjectAccess,
        kind: Kind,
        what: &dyn Fn() -> String,
        f: F,
    ) -> Result<T, ExtractError>
    where
        F: Fn(Session) -> Fut,
        Fut: Future<Output = openstack::Result<T>>,
    {
        match self.call_raw(p, kind, f).await? {
            Ok(v) => Ok(v),
            Err((e, true)) => Err(ExtractError::api(what(), e, &project_role(&p.id))),
            Err((e, false)) => Err(ExtractError::api(what(), e, SYSTEM_ROLE)),
        }
    }

    /// Runs `f` with the privileged session, then (on a policy refusal, or
    /// a 404: Nova hides other projects' servers from non-admin tokens) with
    /// the project's own token; a kind that needed the project token once
    /// goes there directly from then on. The error carries whether it came
    /// from the project-scoped attempt.
    pub async fn call_raw<T, F, Fut>(
        &self,
        p: &ProjectAccess,
        kind: Kind,
        f: F,
    ) -> Result<Result<T, (openstack::Error, bool)>, ExtractError>
    where
        F: Fn(Session) -> Fut,
        Fut: Future<Output = openstack::Result<T>>,
    {
        let mut hidden = None;
        let per_object = matches!(kind, Kind::ServerGet | Kind::Actions | Kind::Images);
        if self.privileged && !self.is_denied(kind) && (self.admin || !per_object) {
            match f(self.primary.clone()).instrument(listing()).await {
                Err(e) if refused(&e) => self.deny(kind, &e),
                Err(e) if e.is_not_found() => hidden = Some(e),
                Ok(v) => return Ok(Ok(v)),
                Err(e) => return Ok(Err((e, false))),
            }
        }
        let s = p.session(self).await?;
        let r = f(s).instrument(listing()).await;
        if let Some(e) = hidden {
            match &r {
                Ok(_) => self.deny(kind, &e),
                Err(e2) if e2.is_not_found() => return Ok(Err((e, false))),
                Err(_) => {}
            }
        }
        Ok(r.map_err(|e| (e, true)))
    }

    // ------------------------------------------------------------ flavors

    /// Every flavor (public and private), listed once per run, with the extra specs the listing
    /// embeds (2.61+) shared per flavor. A failed listing fails every project that needs a
    /// flavor: the current flavor's extra specs give Benchmark and the accelerator records, and
    /// nothing else tells them.
    async fn flavor_index(&self) -> Result<Arc<FlavorIndex>, ExtractError> {
        self.flavors
            .get_or_init(|| {
                async {
                    let list = ListFlavors { is_public: Some(FlavorVisibility::All), ..Default::default() }
                        .list(&self.primary)
                        .await
                        .map_err(|e| Arc::new(ExtractError::api("listing flavors", e, SYSTEM_ROLE)))?;
                    let mut idx = FlavorIndex::default();
                    for f in list {
                        if let Some(s) = &f.extra_specs {
                            idx.specs.insert(f.id.clone(), Arc::new(s.clone()));
                        }
                        idx.by_name.insert(f.name.clone(), f.id.clone());
                        idx.by_id.insert(f.id.clone(), f);
                    }
                    Ok(Arc::new(idx))
                }
                .instrument(listing())
            })
            .await
            .clone()
            .map_err(ExtractError::Shared)
    }

    /// A flavor's extra specs: from its listing (2.61+, shared per flavor), else
    /// `GET /flavors/{id}/os-extra_specs` (once per flavor and run). An error fails the projects
    /// that need them.
    async fn flavor_extra_specs(&self, f: &Flavor) -> Result<Arc<BTreeMap<String, String>>, ExtractError> {
        if let Some(s) = self.flavor_index().await?.specs.get(&f.id) {
            return Ok(s.clone());
        }
        if let Some(s) = &f.extra_specs {
            return Ok(Arc::new(s.clone()));
        }
        let id = f.id.clone();
        self.flavor_specs
            .get(&id, || {
                async {
                    openstack::nova::flavors::extra_specs(&self.primary, &id).await.map(Arc::new).map_err(|e| {
                        Arc::new(ExtractError::api(format!("reading the extra specs of flavor {id}"), e, SYSTEM_ROLE))
                    })
                }
                .instrument(listing())
            })
            .await
            .map_err(ExtractError::Shared)
    }

    /// The flavor facts of a server: the embedded flavor (2.47+) for sizes,
    /// the current flavor of that name (else the embedded copy) for extra
    /// specs; before 2.47 the flavor by id (list, then `GET /flavors/{id}`).
    /// An error reading a flavor fails the server's project; a flavor that no longer exists
    /// (404) is a fact: sizes 0 as cASO writes them, or the embedded copy from 2.47.
    pub async fn flavor_facts(&self, sf: Option<&ServerFlavor>) -> Result<FlavorFacts, ExtractError> {
        let idx = self.flavor_index().await?;
        let Some(sf) = sf else { return Ok(FlavorFacts::default()) };
        if let Some(vcpus) = sf.vcpus {
            let name = sf.original_name.clone().unwrap_or_default();
            let current = idx.by_name.get(&name).and_then(|id| idx.by_id.get(id));
            let extra_specs = match current {
                Some(f) => self.flavor_extra_specs(f).await?,
                None => Arc::new(sf.extra_specs.clone().unwrap_or_default()),
            };
            return Ok(FlavorFacts {
                label: name,
                vcpus,
                ram: sf.ram.unwrap_or(0),
                disk: sf.disk.unwrap_or(0) + sf.ephemeral.unwrap_or(0),
                extra_specs,
                known: true,
            });
        }
        let Some(id) = sf.id.clone() else { return Ok(FlavorFacts::default()) };
        let flavor = match idx.by_id.get(&id) {
            Some(f) => Some(f.clone()),
            None => self
                .flavor_by_id
                .get(&id, || {
                    async {
                        match openstack::nova::flavors::get(&self.primary, &id).await {
                            Ok(f) => Ok(Some(f)),
                            Err(e) if e.is_not_found() => Ok(None),
                            Err(e) => Err(Arc::new(ExtractError::api(format!("reading flavor {id}"), e, SYSTEM_ROLE))),
                        }
                    }
                    .instrument(listing())
                })
                .await
                .map_err(ExtractError::Shared)?,
        };
        Ok(match flavor {
            Some(f) => FlavorFacts {
                label: f.id.clone(),
                vcpus: f.vcpus,
                ram: f.ram,
                disk: f.disk + f.ephemeral,
                extra_specs: self.flavor_extra_specs(&f).await?,
                known: true,
            },
            None => FlavorFacts { label: id, ..Default::default() },
        })
    }

    // ------------------------------------------------------------- images

    async fn image_index(&self) -> Arc<HashMap<String, Image>> {
        self.images
            .get_or_init(|| {
                async {
                    match ListImages::default().list(&self.primary).await {
                        Ok(l) => Arc::new(l.into_iter().map(|i| (i.id.clone(), i)).collect()),
                        Err(e) => {
                            tracing::warn!(target: "accounting", error = %e, "cannot list images; looking images up one by one");
                            Arc::new(HashMap::new())
                        }
                    }
                }
                .instrument(listing())
            })
            .await
            .clone()
    }

    /// The image as the project sees it: from the run-wide list, else
    /// `GET /v2/images/{id}` (system/admin token, then the project's). `None`: the image is
    /// gone or the project cannot see it (404; the record carries the raw image id,
    /// docs/compat.md); any other error fails the project (its ImageId would change).
    pub async fn image(&self, p: &ProjectAccess, id: &str) -> Result<Option<Image>, ExtractError> {
        if let Some(i) = self.image_index().await.get(id) {
            return Ok(Some(i.clone()));
        }
        self.image_by_id
            .get(id, || {
                async {
                    let r = self
                        .call_raw(p, Kind::Images, |s| {
                            let id = id.to_string();
                            async move { openstack::glance::images::get(&s, &id).await }
                        })
                        .await
                        .map_err(Arc::new)?;
                    match r {
                        Ok(i) => Ok(Some(i)),
                        Err((e, _)) if e.is_not_found() => Ok(None),
                        Err((e, true)) => {
                            Err(Arc::new(ExtractError::api(format!("reading image {id}"), e, &project_role(&p.id))))
                        }
                        Err((e, false)) => {
                            Err(Arc::new(ExtractError::api(format!("reading image {id}"), e, SYSTEM_ROLE)))
                        }
                    }
                }
                .instrument(listing())
            })
            .await
            .map_err(ExtractError::Shared)
    }

    // -------------------------------------------------------------- users

    /// Every user's name, listed once with the privileged token.
    async fn user_index(&self) -> Option<Arc<HashMap<String, String>>> {
        if !self.privileged {
            return None;
        }
        self.user_index
            .get_or_init(|| async {
                match openstack::keystone::ListUsers::default().list(&self.primary).await {
                    Ok(list) => Some(Arc::new(list.into_iter().map(|u| (u.id, u.name)).collect())),
                    Err(e) => {
                        tracing::info!(target: "accounting", error = %e, "cannot list Keystone users; reading them one by one");
                        None
                    }
                }
            }.instrument(listing()))
            .await
            .clone()
    }

    /// The Keystone user name: from the run-wide user list, else `GET /v3/users/{id}` (a user
    /// the list did not hold: another domain, a truncated list). `None` when the user is gone
    /// (404) or users cannot be read at all (403: the documented degradation, docs/compat.md:
    /// GlobalUserName left out, one warning kept with the run); any other error fails the
    /// project (cASO leaves GlobalUserName out on any error, silently).
    pub async fn user_name(&self, user_id: &str) -> Result<Option<String>, ExtractError> {
        if user_id.is_empty() || self.users_denied.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if let Some(name) = self.user_index().await.and_then(|idx| idx.get(user_id).cloned()) {
            return Ok(Some(name));
        }
        self.users
            .get(user_id, || async {
                match openstack::keystone::users::get(&self.primary, user_id).await {
                    Ok(u) => Ok(Some(u.name)),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) if e.is_forbidden() => {
                        self.users_denied.store(true, Ordering::Relaxed);
                        self.warn_once("users-forbidden", || {
                            format!("cannot read Keystone users ({e}); GlobalUserName is left out. The accounting account needs {SYSTEM_ROLE}")
                        });
                        Ok(None)
                    }
                    Err(e) => Err(Arc::new(ExtractError::api(format!("reading Keystone user {user_id}"), e, SYSTEM_ROLE))),
                }
            }.instrument(listing()))
            .await
            .map_err(ExtractError::Shared)
    }

    // ------------------------------------------------- all-projects lists

    /// Servers changed since the earliest window start, by project, kept
    /// compact as the pages arrive.
    pub async fn all_servers(&self) -> Global<HashMap<String, Vec<KeptServer>>> {
        if !self.privileged {
            return Global::Denied;
        }
        self.servers
            .get_or_init(|| {
                async {
                    let q = ListServers {
                        all_tenants: true,
                        changes_since: Some(self.servers_since),
                        ..Default::default()
                    };
                    let mut stream = q.stream_as::<ListedServer>(&self.primary);
                    let mut interner = Interner::default();
                    let mut m: HashMap<String, Vec<KeptServer>> = HashMap::new();
                    while let Some(s) = futures::StreamExt::next(&mut stream).await {
                        match s {
                            Ok(s) => {
                                let k = KeptServer::new(s, &mut interner);
                                if let Some(t) = k.tenant_id() {
                                    m.entry(t.to_string()).or_default().push(k);
                                }
                            }
                            Err(e) => return listing_failed(e, "listing every project's servers"),
                        }
                    }
                    m.values_mut().for_each(Vec::shrink_to_fit);
                    Global::Have(Arc::new(m))
                }
                .instrument(listing())
            })
            .await
            .clone()
    }

    /// Usage of every project over one window, by project.
    pub async fn all_usages(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Global<HashMap<String, Vec<KeptUsage>>> {
        if !self.privileged || self.is_denied(Kind::Usage) {
            return Global::Denied;
        }
        let key = format!("{}/{}", from.timestamp(), to.timestamp());
        let g = self
            .usages
            .get(&key, || {
                async {
                    let q = ListTenantUsages { start: from, end: to, detailed: true, limit: None };
                    // Kept compact page by page; a project split across pages comes once per page.
                    let mut interner = Interner::default();
                    let mut m: HashMap<String, Vec<KeptUsage>> = HashMap::new();
                    let mut items = q.stream(&self.primary);
                    let listed = loop {
                        match futures::TryStreamExt::try_next(&mut items).await {
                            Ok(Some(t)) => m
                                .entry(t.tenant_id)
                                .or_default()
                                .extend(t.server_usages.into_iter().map(|u| KeptUsage::new(u, &mut interner))),
                            Ok(None) => break Ok(()),
                            Err(e) => break Err(e),
                        }
                    };
                    m.values_mut().for_each(Vec::shrink_to_fit);
                    match listed {
                        Ok(()) => Global::Have(Arc::new(m)),
                        Err(e) if refused(&e) => Global::Denied,
                        Err(e) => {
                            Global::Failed(Arc::new(ExtractError::api("listing every project's usage", e, SYSTEM_ROLE)))
                        }
                    }
                }
                .instrument(listing())
            })
            .await;
        if matches!(g, Global::Denied) {
            self.denied[Kind::Usage as usize].store(true, Ordering::Relaxed);
        }
        g
    }

    pub async fn all_volumes(&self) -> Global<HashMap<String, Vec<Volume>>> {
        if !self.privileged {
            return Global::Denied;
        }
        self.volumes
            .get_or_init(|| {
                async {
                    let list = futures::TryStreamExt::try_collect::<Vec<Volume>>(futures::TryStreamExt::map_ok(
                        ListVolumes { all_tenants: true, ..Default::default() }.stream(&self.primary),
                        slim_volume,
                    ))
                    .await;
                    // Without the tenant attribute the volumes cannot be told apart.
                    if let Ok(v) = &list
                        && v.iter().any(|v| v.project_id.is_none())
                    {
                        return Global::Denied;
                    }
                    global(list, "listing every project's volumes", |v: &Volume| v.project_id.clone())
                }
                .instrument(listing())
            })
            .await
            .clone()
    }

    pub async fn all_floating_ips(&self) -> Global<HashMap<String, Vec<FloatingIp>>> {
        if !self.privileged {
            return Global::Denied;
        }
        self.fips
            .get_or_init(|| {
                async {
                    let list = ListFloatingIps::default().list(&self.primary).await;
                    global(list, "listing every project's floating IPs", |f: &FloatingIp| {
                        f.project_id.clone().or_else(|| f.tenant_id.clone())
                    })
                }
                .instrument(listing())
            })
            .await
            .clone()
    }

    /// Starts every run-wide listing the extractors will need at once,
    /// instead of one after another as the first project reaches each: each
    /// listing is a chain of pages, so the run waits for the longest chain
    /// rather than their sum. `usage_window`: the window every project
    /// shares, if they do.
    pub async fn prefetch(
        &self,
        usage_window: Option<(DateTime<Utc>, DateTime<Utc>)>,
        servers: bool,
        nova: bool,
        cinder: bool,
        neutron: bool,
    ) {
        if !self.privileged {
            return;
        }
        let servers = async {
            if servers || nova {
                self.all_servers().await;
            }
        };
        let usage = async {
            if let (true, Some((from, to))) = (nova, usage_window) {
                self.all_usages(from, to).await;
            }
        };
        let flavors = async {
            if nova {
                // Kept in the run-wide cell: each project that needs a flavor gets the error.
                let _ = self.flavor_index().await;
            }
        };
        let images = async {
            if nova {
                self.image_index().await;
            }
        };
        let users = async {
            if nova || cinder {
                self.user_index().await;
            }
        };
        let volumes = async {
            if cinder {
                self.all_volumes().await;
            }
        };
        let fips = async {
            if neutron {
                self.all_floating_ips().await;
            }
        };
        futures::join!(servers, usage, flavors, images, users, volumes, fips);
    }

    // ------------------------------------------------- per-project calls

    pub async fn project_servers(&self, p: &ProjectAccess, since: DateTime<Utc>) -> Result<Vec<Server>, ExtractError> {
        match self.all_servers().await {
            Global::Have(m) => {
                return Ok(m
                    .get(&p.id)
                    .map(|v| {
                        v.iter().filter(|s| s.updated().is_none_or(|u| u >= since)).map(KeptServer::server).collect()
                    })
                    .unwrap_or_default());
            }
            Global::Failed(e) => return Err(ExtractError::Shared(e)),
            Global::Denied => {}
        }
        let s = p.session(self).await?;
        let list = ListServers { changes_since: Some(since), ..Default::default() }.list(&s).await.map_err(|e| {
            ExtractError::api(
                format!("project {}: listing servers changed since {since}", p.id),
                e,
                &project_role(&p.id),
            )
        })?;
        Ok(list.into_iter().filter(|s| s.tenant_id.as_deref().is_none_or(|t| t == p.id)).collect())
    }

    pub async fn project_usage(
        &self,
        p: &ProjectAccess,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ServerUsage>, ExtractError> {
        match self.all_usages(from, to).await {
            Global::Have(m) => {
                return Ok(m.get(&p.id).map(|v| v.iter().map(KeptUsage::usage).collect()).unwrap_or_default());
            }
            Global::Failed(e) => return Err(ExtractError::Shared(e)),
            Global::Denied => {}
        }
        let q = GetTenantUsage { project_id: p.id.clone(), start: from, end: to, limit: None };
        let what = || format!("project {}: reading os-simple-tenant-usage", p.id);
        self.call(p, Kind::Usage, &what, |s| {
            let q = q.clone();
            async move { q.get(&s).await }
        })
        .await
        .map(|u| u.server_usages)
    }

    pub async fn project_volumes(&self, p: &ProjectAccess) -> Result<Vec<Volume>, ExtractError> {
        match self.all_volumes().await {
            Global::Have(m) => return Ok(m.get(&p.id).cloned().unwrap_or_default()),
            Global::Failed(e) => return Err(ExtractError::Shared(e)),
            Global::Denied => {}
        }
        let s = p.session(self).await?;
        let list = ListVolumes::default()
            .list(&s)
            .await
            .map_err(|e| ExtractError::api(format!("project {}: listing volumes", p.id), e, &project_role(&p.id)))?;
        Ok(list.into_iter().filter(|v| v.project_id.as_deref().is_none_or(|t| t == p.id)).collect())
    }

    pub async fn project_floating_ips(&self, p: &ProjectAccess) -> Result<Vec<FloatingIp>, ExtractError> {
        match self.all_floating_ips().await {
            Global::Have(m) => return Ok(m.get(&p.id).cloned().unwrap_or_default()),
            Global::Failed(e) => return Err(ExtractError::Shared(e)),
            Global::Denied => {}
        }
        let s = p.session(self).await?;
        let list =
            ListFloatingIps { project_id: Some(p.id.clone()), ..Default::default() }.list(&s).await.map_err(|e| {
                ExtractError::api(format!("project {}: listing floating IPs", p.id), e, &project_role(&p.id))
            })?;
        Ok(list
            .into_iter()
            .filter(|f| f.project_id.as_deref().or(f.tenant_id.as_deref()).is_none_or(|t| t == p.id))
            .collect())
    }

    /// The servers os-simple-tenant-usage names that are not in the
    /// changes-since list: those the changed-server listing holds only because it started
    /// before the earliest window (the listed-server cache's margin), then those the
    /// listed-server cache holds (`crate::server_cache`, when it can stand in for the live
    /// listing), then the rest from one all-projects listing of the live servers when that
    /// takes fewer requests than one `GET` each (more such servers than pages of the
    /// listing). Only the wanted ones are kept.
    async fn usage_only_index(&self, cache: Option<crate::server_cache::Lookup<'_>>) -> Option<Arc<UsageOnly>> {
        if !self.privileged {
            return None;
        }
        self.usage_only
            .get_or_init(|| async {
                let Global::Have(changed) = self.all_servers().await else { return None };
                let usages: Vec<Arc<HashMap<String, Vec<KeptUsage>>>> = {
                    let cells: Vec<_> = self.usages.cells.lock().unwrap().values().cloned().collect();
                    cells.iter().filter_map(|c| match c.get() {
                        Some(Global::Have(m)) => Some(m.clone()),
                        _ => None,
                    }).collect()
                };
                // Listed only for the margin: not changed within any window.
                let early: HashMap<&str, &KeptServer> = changed
                    .values()
                    .flatten()
                    .filter(|s| s.updated().is_some_and(|u| u < self.windows_from))
                    .map(|s| (s.id(), s))
                    .collect();
                let changed_ids: HashSet<&str> =
                    changed.values().flatten().map(KeptServer::id).filter(|id| !early.contains_key(id)).collect();
                let mut entries = 0usize;
                let mut wanted: HashSet<String> = HashSet::new();
                for m in &usages {
                    for u in m.values().flatten() {
                        entries += 1;
                        if !changed_ids.contains(u.instance_id()) {
                            wanted.insert(u.instance_id().to_string());
                        }
                    }
                }
                drop(changed_ids);
                let mut known: Vec<KeptServer> = Vec::new();
                wanted.retain(|id| match early.get(id.as_str()) {
                    Some(s) => {
                        known.push((*s).clone());
                        false
                    }
                    None => true,
                });
                let mut interner = Interner::default();
                let mut used = 0;
                if let Some(lookup) = cache.filter(|_| !wanted.is_empty()) {
                    let _stage = tracing::info_span!(crate::stage::LEDGER).entered();
                    let mut ids: Vec<String> = wanted.iter().cloned().collect();
                    ids.sort_unstable();
                    // In batches, each decoded before the next is read: the stored form of
                    // tens of thousands of servers is not held at once.
                    for batch in ids.chunks(crate::server_cache::BATCH) {
                        let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
                        let Some(stored) = lookup(&batch).filter(|l| crate::server_cache::usable(l.valid_at, self.servers_since))
                        else {
                            break;
                        };
                        for e in stored.found {
                            match KeptServer::decode(&e.server_id, &e.body, &mut interner) {
                                Ok(k) => {
                                    wanted.remove(k.id());
                                    known.push(k);
                                    used += 1;
                                }
                                Err(err) => tracing::debug!(target: "accounting", server = %e.server_id,
                                    "listed-server cache entry unreadable, listed again: {err}"),
                            }
                        }
                    }
                }
                let known = ServersById::new(known);
                // The listing's pages are about the live servers, which the
                // usage entries approximate from above.
                let pages = entries / LISTING_PAGE + 1;
                if wanted.len() <= pages {
                    return Some(Arc::new(UsageOnly { known, live: None, used }));
                }
                let mut found = Vec::with_capacity(wanted.len());
                let mut stream =
                    ListServers { all_tenants: true, ..Default::default() }.stream_as::<ListedServer>(&self.primary);
                while let Some(s) = futures::StreamExt::next(&mut stream).await {
                    match s {
                        Ok(s) if wanted.contains(s.id()) => found.push(KeptServer::new(s, &mut interner)),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::info!(target: "accounting", error = %e, "cannot list every project's live servers; reading them one by one");
                            return Some(Arc::new(UsageOnly { known, live: None, used }));
                        }
                    }
                }
                Some(Arc::new(UsageOnly { known, live: Some(Arc::new(ServersById::new(found))), used }))
            }.instrument(listing()))
            .await
            .clone()
    }

    /// The usage-only servers of a project (see [`Access::server`]): from
    /// the run-wide listings or the listed-server cache when they hold them, else one `GET` each.
    pub async fn usage_only_servers(
        &self,
        p: &ProjectAccess,
        ids: &[&str],
        conc: usize,
        cache: Option<crate::server_cache::Lookup<'_>>,
    ) -> Vec<Result<Option<Server>, ExtractError>> {
        let index = if ids.is_empty() { None } else { self.usage_only_index(cache).await };
        futures::StreamExt::collect(futures::StreamExt::buffered(
            futures::stream::iter(ids.iter().map(|id| {
                let hit = index
                    .as_ref()
                    .and_then(|m| m.get(id))
                    .filter(|s| s.tenant_id().is_none_or(|t| t == p.id))
                    .map(KeptServer::server);
                async move {
                    match hit {
                        Some(s) => Ok(Some(s)),
                        _ => self.server(p, id).await,
                    }
                }
            })),
            conc,
        ))
        .await
    }

    /// What the run listed, for the listed-server cache (`crate::server_cache`): None when the
    /// changed-server listing did not complete.
    pub fn server_capture(&self) -> Option<crate::server_cache::Capture> {
        let Some(Global::Have(changed)) = self.servers.get() else { return None };
        let usage_only = self.usage_only.get().cloned().flatten();
        Some(crate::server_cache::Capture {
            started_at: self.started_at,
            listed_since: self.servers_since,
            changed: changed.clone(),
            live: usage_only.as_ref().and_then(|u| u.live.clone()),
            used: usage_only.map_or(0, |u| u.used),
        })
    }

    /// `GET /servers/{id}`; Ok(None) when Nova answers a client error (cASO
    /// warns and skips: "Cannot find VM in API").
    pub async fn server(&self, p: &ProjectAccess, id: &str) -> Result<Option<Server>, ExtractError> {
        let r = self
            .call_raw(p, Kind::ServerGet, |s| {
                let id = id.to_string();
                async move { openstack::nova::servers::get(&s, &id).await }
            })
            .await?;
        match r.map_err(|(e, _)| e) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.status().is_some_and(|s| (400..500).contains(&s) && s != 401 && s != 403) => {
                tracing::warn!(target: "accounting", server = %id, project = %p.id, error = %e,
                    "server in os-simple-tenant-usage but not found in the API (see cASO troubleshooting: cannot find VM in API); skipped");
                Ok(None)
            }
            Err(e) => Err(ExtractError::api(format!("project {}: reading server {id}", p.id), e, &project_role(&p.id))),
        }
    }

    /// The server's instance actions; None when Nova no longer has them
    /// (404: purged), so SuspendDuration is left out for it.
    pub async fn instance_actions(
        &self,
        p: &ProjectAccess,
        id: &str,
    ) -> Result<Option<Vec<InstanceAction>>, ExtractError> {
        let r = self
            .call_raw(p, Kind::Actions, |s| {
                let q = ListInstanceActions::new(id);
                async move { q.list(&s).await }
            })
            .await?;
        match r {
            Ok(v) => Ok(Some(v)),
            Err((e, _)) if e.is_not_found() => {
                tracing::warn!(target: "accounting", server = %id, error = %e, "no instance actions; SuspendDuration left out");
                Ok(None)
            }
            Err((e, scoped)) => Err(ExtractError::api(
                format!("project {}: listing instance actions of server {id}", p.id),
                e,
                &if scoped { project_role(&p.id) } else { SYSTEM_ROLE.to_string() },
            )),
        }
    }
}

/// The usage-only servers the run found without a `GET` each.
pub(crate) struct UsageOnly {
    /// From the changed-server listing's margin and the listed-server cache.
    known: ServersById,
    /// From the live-server listing.
    live: Option<Arc<ServersById>>,
    /// Taken from the listed-server cache.
    used: usize,
}

impl UsageOnly {
    fn get(&self, id: &str) -> Option<&KeptServer> {
        self.known.get(id).or_else(|| self.live.as_ref().and_then(|l| l.get(id)))
    }
}

/// The span of reading OpenStack (`crate::stage::LISTING`).
fn listing() -> tracing::Span {
    tracing::info_span!(crate::stage::LISTING)
}

/// The page size the all-projects server listing gets (Nova's default
/// `osapi_max_limit`).
const LISTING_PAGE: usize = 1000;

/// A 403, or the errors a catalog without a project-less endpoint gives.
fn refused(e: &openstack::Error) -> bool {
    e.is_forbidden() || matches!(e, openstack::Error::NoEndpoint { .. })
}

fn global<T: Clone>(
    list: openstack::Result<Vec<T>>,
    what: &str,
    project_of: impl Fn(&T) -> Option<String>,
) -> Global<HashMap<String, Vec<T>>> {
    match list {
        Ok(items) => {
            let mut m: HashMap<String, Vec<T>> = HashMap::new();
            for it in items {
                if let Some(p) = project_of(&it) {
                    m.entry(p).or_default().push(it);
                }
            }
            Global::Have(Arc::new(m))
        }
        Err(e) => listing_failed(e, what),
    }
}

/// A run-wide listing that failed: refused (or not offered: 400/404), so the
/// projects are read one by one, or broken.
fn listing_failed<T>(e: openstack::Error, what: &str) -> Global<T> {
    if refused(&e) || e.status() == Some(404) || e.status() == Some(400) {
        Global::Denied
    } else {
        Global::Failed(Arc::new(ExtractError::api(what, e, SYSTEM_ROLE)))
    }
}

/// One project's access: its id and, made on first need, ONE
/// project-scoped session reused for every call of the run.
pub(crate) struct ProjectAccess {
    pub id: String,
    scoped: OnceCell<Result<Session, Arc<openstack::Error>>>,
}

impl ProjectAccess {
    pub fn new(id: impl Into<String>) -> Self {
        ProjectAccess { id: id.into(), scoped: OnceCell::new() }
    }

    pub async fn session(&self, a: &Access) -> Result<Session, ExtractError> {
        let r = self
            .scoped
            .get_or_init(|| {
                async { a.primary.rescope(Scope::project_id(self.id.clone())).await.map_err(Arc::new) }
                    .instrument(listing())
            })
            .await;
        r.clone().map_err(|e| ExtractError::Forbidden {
            what: format!("project {}: getting a project-scoped token", self.id),
            rule: None,
            missing_role: project_role(&self.id),
            message: e.to_string(),
        })
    }
}
