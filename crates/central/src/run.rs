//! `fedsite central run`: the tasks of every site of a sites folder from one process, each site
//! isolated from the others — all sites concurrently up to `max_sites`, each under its own
//! timeout, so a site that is down, refuses a VO, hangs or answers slowly never delays or
//! fails another beyond its own timeout. One result row per (site, task): ok / failed /
//! skipped, duration, what it did, the error and what to fix.
//!
//! Tasks so far: `info` — each site's GLUE 2.1 document, built by the same code as
//! `fedsite info` for that site alone (`cloudinfo::discover`, the Check-in token through
//! OS-FEDERATION, or each VO's application credential from Vault / the secrets directory),
//! written as `<dir>/<site id>.json` and, when asked ([`InfoSwift`]), published to Swift — the
//! site's own container (object `<gocdb>.json`, as `fedsite info --swift-container` names it) or
//! a central one (one object `<site id>.json` per site), through `cloudinfo::publish::to_swift`,
//! the same bytes as the file; `images` — the site's image sync (`imagesync`), as the
//! central deployment runs atrope: images uploaded into the `ops` VO's project (else the
//! first share's) and shared with each VO's project, each share accepted with that VO's own
//! login. Accounting and send come next (issue #15).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use openstack::{CloudConfig, Credentials, Interface, Scope};

use crate::credentials::{CheckinToken, CredentialError, IDENTITY_PROVIDER, SecretsDir, Vault};

/// A task of a central run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Task {
    /// Publish the site's GLUE2 info document.
    Info,
    /// Sync the VO images into the site's Glance.
    Images,
    /// Extract the site's accounting records into its spools.
    Accounting,
    /// Send the site's spools to AMS.
    Send,
}

impl Task {
    /// `info`, `images`, `accounting` or `send`.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Info => "info",
            Task::Images => "images",
            Task::Accounting => "accounting",
            Task::Send => "send",
        }
    }

    /// Every task, in the order a run does them.
    pub const ALL: [Task; 4] = [Task::Info, Task::Images, Task::Accounting, Task::Send];

    /// `info`, `images`, `accounting` or `send`.
    pub fn parse(s: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// How a (site, task) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Done.
    Ok,
    /// Not run (not configured for the site, or a setting is missing).
    Skipped,
    /// Run and failed.
    Failed,
}

impl Outcome {
    /// `ok`, `skipped` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }
}

/// One row of the summary.
#[derive(Debug, Clone)]
pub struct TaskResult {
    /// The site file's id (its file name without `.yaml`).
    pub site: String,
    /// The task.
    pub task: Task,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub duration: Duration,
    /// What was done (ok), or what went wrong (failed, skipped).
    pub detail: String,
    /// What to fix, when known.
    pub fix: Option<String>,
    /// VO shares that could not be read (the others were published).
    pub failed_vos: Vec<(String, String)>,
}

/// Where the application credentials of `auth: v3applicationcredential` sites come from.
#[derive(Debug, Clone)]
pub enum Secrets {
    /// Vault KV v1, logged in with the Check-in token.
    Vault(Vault),
    /// Private files in a directory.
    Dir(SecretsDir),
    /// None configured: such sites are skipped.
    None,
}

/// Everything a central run shares between sites.
#[derive(Debug)]
pub struct Central {
    /// The Check-in token every site's login uses.
    pub token: CheckinToken,
    /// Where application credentials come from.
    pub secrets: Secrets,
    /// GOCDB's public API (`get_service`) for the documents' OtherInfo.
    pub gocdb_url: String,
    /// The info documents go here, one `<site id>.json` each.
    pub info_dir: PathBuf,
    /// How many sites run at once.
    pub max_sites: usize,
    /// How long one (site, task) may take before it is failed.
    pub site_timeout: Duration,
    /// `CreationTime` of every object (the run's start; `central serve` stamps each task's own).
    pub creation_time: chrono::DateTime<chrono::Utc>,
    /// The images task's registry and cache (None: that task is skipped, saying why).
    pub images: Option<ImagesSettings>,
    /// The accounting and send tasks' ledger, spools and AMS (None: skipped, saying why).
    pub accounting: Option<crate::accounting::AccountingSettings>,
    /// Where the info task also publishes each document in Swift (None: the info directory only).
    pub info_swift: Option<InfoSwift>,
}

/// The info documents in Swift, besides the info directory: `container` in the site's own Swift
/// (the project of its `ops` VO share, else of its first share, logged in as that VO; object
/// `<gocdb>.json`), or, with `central`, in that cloud's account (object `<site id>.json`: site
/// ids are unique in a folder, GOCDB names need not be).
#[derive(Debug, Clone)]
pub struct InfoSwift {
    /// The Swift container.
    pub container: String,
    /// The central cloud whose account holds the documents; None: each site's own Swift.
    pub central: Option<CloudConfig>,
}

/// What the images task shares between sites: the registry every site's images come from
/// (with the robot's credentials), where downloads are cached (`<cache_dir>/<site id>`: sites
/// run at once, and two writers must never share a partial download), the Glance tag and the
/// name prefix.
#[derive(Debug, Clone)]
pub struct ImagesSettings {
    /// The registry and the robot's credentials.
    pub registry: imagesync::config::RegistryConfig,
    /// Downloads are cached under `<cache_dir>/<site id>`.
    pub cache_dir: PathBuf,
    /// The Glance tag of the managed images.
    pub tag: String,
    /// Prefix of the managed images' names.
    pub name_prefix: String,
}

/// Runs `tasks` for the sites of `folder` (only those named in `only`, by id or GOCDB name,
/// when it is not empty): up to `max_sites` sites at once, each site's tasks one after the
/// other, images before info (so the document describes the images this run synced, as
/// `fedsite info` run after it would), each under its own timeout. Results in site, then task
/// order.
pub async fn run(central: &Central, folder: &sites::Folder, tasks: &[Task], only: &[String]) -> Vec<TaskResult> {
    let chosen: Vec<&sites::LoadedSite> = folder
        .sites
        .iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| *o == s.id || *o == s.site.gocdb.as_str()))
        .collect();
    // Sites at once, up to `max_sites`; a site's tasks one after another (images, then info,
    // so the document shows what was just synced; accounting, then send, so `send` sends what
    // `accounting` spooled in the same run).
    let mut order = tasks.to_vec();
    order.sort_by_key(|t| match t {
        Task::Images => 0,
        Task::Info => 1,
        Task::Accounting => 2,
        Task::Send => 3,
    });
    order.dedup();
    let order = &order;
    let per_site: Vec<Vec<TaskResult>> = futures::stream::iter(chosen)
        .map(|site| async move {
            let mut rows = Vec::with_capacity(order.len());
            for task in order {
                rows.push(run_task(central, site, *task, central.creation_time).await);
            }
            rows
        })
        .buffer_unordered(central.max_sites.max(1))
        .collect()
        .await;
    let mut out: Vec<TaskResult> = per_site.into_iter().flatten().collect();
    out.sort_by(|a, b| (a.site.as_str(), a.task).cmp(&(b.site.as_str(), b.task)));
    out
}

/// Runs one task of one site under the site timeout (what [`run`] does for each pair, and
/// `central serve` for each claimed one); `creation_time` stamps what it publishes.
pub async fn run_task(
    central: &Central,
    site: &sites::LoadedSite,
    task: Task,
    creation_time: chrono::DateTime<chrono::Utc>,
) -> TaskResult {
    let started = Instant::now();
    let r = tokio::time::timeout(central.site_timeout, run_one(central, site, task, creation_time)).await;
    let mut row = match r {
        Ok(row) => row,
        Err(_) => TaskResult {
            site: site.id.clone(),
            task,
            outcome: Outcome::Failed,
            duration: Duration::ZERO,
            detail: format!("no answer within the site timeout ({} s)", central.site_timeout.as_secs()),
            fix: Some(format!("check that {} answers; the other sites were not held up", site.site.endpoint.as_str())),
            failed_vos: Vec::new(),
        },
    };
    row.duration = started.elapsed();
    tracing::info!(site = %row.site, task = row.task.as_str(), outcome = row.outcome.as_str(), detail = %row.detail, "central task done");
    row
}

async fn run_one(
    central: &Central,
    site: &sites::LoadedSite,
    task: Task,
    creation_time: chrono::DateTime<chrono::Utc>,
) -> TaskResult {
    let row = |outcome, detail: String, fix: Option<String>, failed_vos| TaskResult {
        site: site.id.clone(),
        task,
        outcome,
        duration: Duration::ZERO,
        detail,
        fix,
        failed_vos,
    };
    let done = match task {
        Task::Info => info(central, site, creation_time).await,
        Task::Images => images(central, site).await,
        Task::Accounting => accounting(central, site).await,
        Task::Send => send(central, site).await,
    };
    match done {
        Ok(Done { detail, failed_vos }) => row(Outcome::Ok, detail, None, failed_vos),
        Err(Fail::Skip(why)) => row(Outcome::Skipped, why, None, Vec::new()),
        Err(Fail::Error(e, fix)) => row(Outcome::Failed, e, fix, Vec::new()),
    }
}

struct Done {
    detail: String,
    failed_vos: Vec<(String, String)>,
}

enum Fail {
    Skip(String),
    /// The error and what to fix.
    Error(String, Option<String>),
}

impl From<CredentialError> for Fail {
    fn from(e: CredentialError) -> Fail {
        let fix = match &e {
            CredentialError::Status { status: 401 | 403, .. } => {
                Some("check the Check-in client id and secret, and the Vault role".into())
            }
            _ => None,
        };
        Fail::Error(e.to_string(), fix)
    }
}

/// The site's Keystone with the Check-in token through OS-FEDERATION, unscoped (each VO's
/// share is scoped to its project by `cloudinfo`).
fn site_cloud_config(site: &sites::Site, token: &crate::credentials::AccessToken) -> CloudConfig {
    CloudConfig {
        name: Some(site.gocdb.as_str().to_owned()),
        source: "the sites folder".into(),
        auth_url: site.endpoint.as_str().to_owned(),
        credentials: Credentials::OidcAccessToken {
            identity_provider: IDENTITY_PROVIDER.into(),
            protocol: site.protocol.as_str().to_owned(),
            access_token: token.token.clone(),
        },
        scope: Scope::Unscoped,
        region_name: site.region.as_ref().map(|r| r.as_str().to_owned()),
        interface: Interface::Public,
        cacert: None,
        insecure: false,
    }
}

async fn info(
    central: &Central,
    loaded: &sites::LoadedSite,
    creation_time: chrono::DateTime<chrono::Utc>,
) -> Result<Done, Fail> {
    let site = &loaded.site;
    let file = loaded.file.display().to_string();
    let text = std::fs::read_to_string(&loaded.file).map_err(|e| Fail::Error(format!("{file}: {e}"), None))?;
    let mut site_cfg = cloudinfo::SiteConfig::parse(&text, &file).map_err(|e| Fail::Error(e.to_string(), None))?;
    let token = central.token.get().await?;
    let mut skipped = Vec::new();
    if site.auth == sites::AuthMethod::ApplicationCredential {
        let (logins, missing) = vo_logins(central, site).await?;
        skipped.extend(missing.into_iter().map(|(vo, _)| vo));
        let mut kept = Vec::new();
        for mut vo in site_cfg.vos.take().unwrap_or_default() {
            let cred = logins.iter().find_map(|(share, login)| match login {
                crate::credentials::VoLogin::AppCredential(c) if share.name.as_str() == vo.name => Some(c),
                _ => None,
            });
            let Some(cred) = cred else { continue };
            let auth = vo.auth.get_or_insert_with(Default::default);
            auth.insert("application_credential_id".into(), cred.id.clone().into());
            auth.insert("application_credential_secret".into(), cred.secret.expose().into());
            kept.push(vo);
        }
        site_cfg.vos = Some(kept);
    }
    let base = site_cloud_config(site, &token);
    let mut opts = cloudinfo::Options::new(base.clone(), cloudinfo::discover::auth_type_of(&base));
    opts.gocdb_url = central.gocdb_url.clone();
    opts.timeout = central.site_timeout;
    opts.creation_time = creation_time;
    let (doc, report) = cloudinfo::discover(&site_cfg, &opts).await.map_err(|e| {
        Fail::Error(e.to_string(), Some("see the share's error; the site's other shares were not published".into()))
    })?;
    let data = cloudinfo::publish::payload(&doc.render());
    let path = central.info_dir.join(format!("{}.json", loaded.id));
    cloudinfo::publish::to_file(&path, &data).map_err(|e| Fail::Error(e.to_string(), None))?;
    // Every share failed: the document (written, as cloud-info-provider publishes it, with the
    // endpoint's health state saying so) describes nothing: the site's row fails, naming the
    // shares' cause (the site's Swift, behind the same login, is not tried).
    let tried = site_cfg.vos().len();
    if tried > 0 && report.failed_shares.len() == tried {
        let (vo, e) = &report.failed_shares[0];
        return Err(Fail::Error(
            format!("every VO share failed ({tried}); VO {vo}: {e}"),
            Some(format!(
                "check that {} answers and that the federation's token is mapped there",
                site.endpoint.as_str()
            )),
        ));
    }
    let uploaded = match &central.info_swift {
        Some(swift) => Some(publish_swift(central, loaded, swift, &data).await?),
        None => None,
    };
    let mut failed_vos = report.failed_shares.clone();
    failed_vos.extend(
        skipped.into_iter().map(|vo| (vo, "no application credential (Vault or secrets directory)".to_string())),
    );
    let shares = doc.shares().len();
    let mut detail = format!("{} bytes to {}", data.len(), path.display());
    if let Some(url) = uploaded {
        detail.push_str(&format!(" and {url}"));
    }
    Ok(Done { detail: format!("{detail}, {shares} share(s)"), failed_vos })
}

/// Publishes one site's document to Swift (see [`InfoSwift`]); the URL of the object.
async fn publish_swift(
    central: &Central,
    loaded: &sites::LoadedSite,
    swift: &InfoSwift,
    data: &[u8],
) -> Result<String, Fail> {
    let site = &loaded.site;
    let (cfg, object, whose) = match &swift.central {
        Some(cfg) => (cfg.clone(), format!("{}.json", loaded.id), "the central Swift".to_string()),
        None => {
            let (logins, _) = vo_logins(central, site).await?;
            let owner = logins.iter().position(|(vo, _)| vo.name.as_str() == "ops").unwrap_or(0);
            let Some((vo, login)) = logins.into_iter().nth(owner) else {
                return Err(Fail::Error(
                    "publishing to the site's Swift: no VO share to log in with".into(),
                    Some("give the site a VO share (ops) whose project may write to Swift".into()),
                ));
            };
            let whose = format!("the site's Swift (VO {})", vo.name.as_str());
            (crate::credentials::vo_cloud_config(site, &vo, login), format!("{}.json", site.gocdb.as_str()), whose)
        }
    };
    let container = &swift.container;
    let failed = |e: String, status: Option<u16>| {
        let fix = match status {
            Some(405) => format!("{whose} refuses writes (read-only); publish to a central container instead"),
            Some(401 | 403) => format!("the login used for {whose} may not write to container {container}"),
            _ => format!("check that {whose} answers"),
        };
        Fail::Error(format!("publishing to {whose}, {container}/{object}: {e}"), Some(fix))
    };
    let session = openstack::Session::connect(&cfg).await.map_err(|e| failed(e.to_string(), e.status()))?;
    match cloudinfo::publish::to_swift(&session, container, &object, data).await {
        Ok(up) => Ok(up.url),
        Err(cloudinfo::publish::PublishError::Swift(e)) => Err(failed(e.to_string(), e.status())),
        Err(e) => Err(failed(e.to_string(), None)),
    }
}

/// How each VO share of a site logs in: the Check-in token through OS-FEDERATION, or (an
/// application-credential site) the VO's credential from Vault or the secrets directory.
/// A VO without a credential is listed with its reason, not dropped silently.
async fn vo_logins(
    central: &Central,
    site: &sites::Site,
) -> Result<(Vec<(sites::VoShare, crate::credentials::VoLogin)>, Vec<(String, String)>), Fail> {
    use crate::credentials::VoLogin;
    let token = central.token.get().await?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    if site.auth != sites::AuthMethod::ApplicationCredential {
        return Ok((site.vos.iter().map(|v| (v.clone(), VoLogin::Oidc(token.clone()))).collect(), missing));
    }
    let host = site.endpoint.host();
    let vault_token = match &central.secrets {
        Secrets::Vault(v) => Some(v.login(&token).await?),
        Secrets::Dir(_) => None,
        Secrets::None => {
            return Err(Fail::Skip(
                "an application-credential site, and no Vault or secrets directory is configured".into(),
            ));
        }
    };
    for vo in &site.vos {
        let cred = match (&central.secrets, &vault_token) {
            (Secrets::Vault(v), Some(t)) => v.app_credential(t, &token.sub, &host, vo.name.as_str()).await?,
            (Secrets::Dir(d), _) => d.app_credential(&host, vo.name.as_str())?,
            _ => None,
        };
        match cred {
            Some(c) => out.push((vo.clone(), VoLogin::AppCredential(c))),
            None => missing.push((
                vo.name.as_str().to_owned(),
                "no application credential (Vault or secrets directory)".to_string(),
            )),
        }
    }
    Ok((out, missing))
}

/// Each VO share's own session, scoped to its project (the project id when the site file
/// names it), and the VO shares that could not log in. No session at all is the site's failure.
#[allow(clippy::type_complexity)]
async fn vo_sessions(
    central: &Central,
    site: &sites::Site,
) -> Result<(Vec<(String, Option<String>, openstack::Session)>, Vec<(String, String)>), Fail> {
    let (logins, mut failed_vos) = vo_logins(central, site).await?;
    // Each VO's own session, scoped to its project.
    let mut sessions: Vec<(String, Option<String>, openstack::Session)> = Vec::new();
    for (vo, login) in logins {
        let cfg = crate::credentials::vo_cloud_config(site, &vo, login);
        match openstack::Session::connect(&cfg).await {
            Ok(s) => sessions.push((
                vo.name.as_str().to_owned(),
                vo.auth.project_id.as_ref().map(|p| p.as_str().to_owned()),
                s,
            )),
            Err(e) => failed_vos.push((vo.name.as_str().to_owned(), e.to_string())),
        }
    }
    if sessions.is_empty() {
        let why = failed_vos.first().map(|(vo, e)| format!("; VO {vo}: {e}")).unwrap_or_default();
        return Err(Fail::Error(
            format!("no VO share could log in{why}"),
            Some(format!(
                "check that {} answers and that the federation's token is mapped there",
                site.endpoint.as_str()
            )),
        ));
    }
    Ok((sessions, failed_vos))
}

/// The images task of one site (see the module docs).
async fn images(central: &Central, loaded: &sites::LoadedSite) -> Result<Done, Fail> {
    let site = &loaded.site;
    if !site.images.sync {
        return Err(Fail::Skip("images.sync is false".into()));
    }
    let Some(settings) = &central.images else {
        return Err(Fail::Skip("no registry configured for the images task (--registry-url)".into()));
    };
    let (sessions, failed_vos) = vo_sessions(central, site).await?;
    // The images live in the ops VO's project (the central deployment's owner), else the first.
    let owner = sessions.iter().position(|(vo, _, _)| vo == "ops").unwrap_or(0);
    let mut vos = std::collections::BTreeMap::new();
    for (vo, project, s) in &sessions {
        let project = match project {
            Some(p) => Some(p.clone()),
            None => s.project_id().await.map_err(|e| Fail::Error(format!("VO {vo}: {e}"), None))?,
        };
        if let Some(p) = project {
            vos.insert(vo.clone(), p);
        }
    }
    let site_images = imagesync::config::SiteImages {
        sync: true,
        formats: site.images.formats.iter().map(|f| f.as_str().to_owned()).collect(),
    };
    let toml = imagesync::config::ImagesToml {
        tag: Some(settings.tag.clone()),
        name_prefix: Some(settings.name_prefix.clone()),
        cache_dir: Some(settings.cache_dir.join(&loaded.id)),
        registry: Some(settings.registry.clone()),
        ..Default::default()
    };
    let mut cfg = imagesync::config::SyncConfig::build(Some((site_images, vos)), Some(toml))
        .map_err(|e| Fail::Error(e.to_string(), None))?;
    cfg.progress = false;
    let own = &sessions[owner].2;
    let others =
        sessions.iter().filter(|(vo, _, _)| vo != &sessions[owner].0).map(|(vo, _, s)| (vo.clone(), s)).collect();
    let report = imagesync::sync::Syncer::new(&cfg, own)
        .with_vo_sessions(others)
        .run(&imagesync::sync::RunOptions::default())
        .await
        .map_err(|e| Fail::Error(e.to_string(), None))?;
    if let Some(first) = report.errors.first() {
        return Err(Fail::Error(
            format!("{} image error(s); {}: {} ({})", report.errors.len(), first.item, first.message, report.summary()),
            None,
        ));
    }
    Ok(Done { detail: report.summary(), failed_vos })
}

/// The accounting task of one site (`crate::accounting`).
async fn accounting(central: &Central, loaded: &sites::LoadedSite) -> Result<Done, Fail> {
    let site = &loaded.site;
    if !site.accounting.enabled {
        return Err(Fail::Skip("accounting.enabled is not true in the site file".into()));
    }
    let Some(settings) = &central.accounting else {
        return Err(Fail::Skip("no accounting ledger configured (--ledger)".into()));
    };
    let (sessions, failed_vos) = vo_sessions(central, site).await?;
    let mut shares = Vec::new();
    for (vo, project, s) in sessions {
        let project = match project {
            Some(p) => p,
            None => match s.project_id().await {
                Ok(Some(p)) => p,
                Ok(None) => return Err(Fail::Error(format!("VO {vo}: the login is not scoped to a project"), None)),
                Err(e) => return Err(Fail::Error(format!("VO {vo}: {e}"), None)),
            },
        };
        shares.push((vo, project, s));
    }
    let runs =
        crate::accounting::extract(settings, loaded, &shares).await.map_err(|e| Fail::Error(e.to_string(), None))?;
    let mut spooled: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut errors = Vec::new();
    for r in &runs {
        if let Some(f) = &r.report.failure {
            errors.push(format!("VO {}: {f}", r.vo));
        }
        for p in &r.report.projects {
            if let Some(e) = &p.error {
                errors.push(format!("VO {} project {}: {e}", r.vo, p.project_id));
            }
            for (k, n) in &p.spooled {
                *spooled.entry(k).or_default() += n;
            }
        }
    }
    if let Some(first) = errors.first() {
        return Err(Fail::Error(
            format!("{} project(s) failed (checkpoints kept); {first}", errors.len()),
            Some("see the error; the next run extracts the same window again".into()),
        ));
    }
    let what: Vec<String> = spooled.iter().map(|(k, n)| format!("{n} {k}")).collect();
    Ok(Done {
        detail: format!(
            "{} project(s), {} spooled",
            runs.iter().map(|r| r.report.projects.len()).sum::<usize>(),
            if what.is_empty() { "nothing".into() } else { what.join(", ") }
        ),
        failed_vos,
    })
}

/// The send task of one site (`crate::accounting`).
async fn send(central: &Central, loaded: &sites::LoadedSite) -> Result<Done, Fail> {
    if !loaded.site.accounting.enabled {
        return Err(Fail::Skip("accounting.enabled is not true in the site file".into()));
    }
    let Some(settings) = &central.accounting else {
        return Err(Fail::Skip("no accounting ledger configured (--ledger)".into()));
    };
    if settings.send.is_none() {
        return Err(Fail::Skip("no AMS credentials configured (--ams-cert/--ams-key)".into()));
    }
    let sent = crate::accounting::send(settings, loaded).await.map_err(|e| Fail::Error(e.to_string(), None))?;
    let mut parts = Vec::new();
    let mut problems = Vec::new();
    for s in &sent {
        parts.push(format!("{}: {}", s.topic, s.report.summary()));
        if !s.report.complete() {
            let why = s.report.stopped.clone().or_else(|| s.report.errors.first().cloned()).unwrap_or_default();
            problems.push(format!("{} ({}): {why}", s.topic, s.run.as_str()));
        }
    }
    if let Some(first) = problems.first() {
        return Err(Fail::Error(
            format!("{} spool(s) not sent completely; {first}", problems.len()),
            Some("what was not sent stays in the spool for the next run".into()),
        ));
    }
    Ok(Done {
        detail: if parts.is_empty() { "nothing spooled".into() } else { parts.join("; ") },
        failed_vos: Vec::new(),
    })
}
