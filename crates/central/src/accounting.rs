//! The central `accounting` and `send` tasks, as the central deployment runs cASO and SSM for
//! the sites that opt in (`accounting.enabled`), from one process:
//!
//! * **accounting**: each VO share's project extracted with that VO's own login (the
//!   Check-in token through OS-FEDERATION, or its application credential), the project's VO
//!   from the site file (as cASO's `catchall_site_yaml`), records under the site's
//!   `accounting.site_name`; each run type to its own spool — `compute` (cloud, IP and
//!   accelerator records) and `block` (storage records), `<spool dir>/<site id>/<run type>`;
//!   per-project checkpoints as a single site keeps them, in the site's own namespace of the
//!   one ledger (a PostgreSQL schema, or a SQLite file per site in a directory:
//!   [`ledger::LedgerOptions::namespace`]).
//! * **send**: each of the site's spools to the site's AMS host (`accounting.ams_host`, else
//!   the configured one) and the run type's topic (`accounting.destination`), signed with
//!   the central host certificate; the site's ledger records what was sent.
//!
//! A site that has not opted in is skipped, saying so.

use std::path::PathBuf;
use std::time::Duration;

use accounting::pipeline::{self, Route, SpoolConfig};
use apel::RecordKind;
use ledger::{Ledger, LedgerOptions, OpenMode};
use messaging::ams::{AmsClient, AmsConfig, Auth};
use messaging::sender::{self, SenderOptions};
use sites::RunType;

/// What the accounting and send tasks share between sites.
#[derive(Debug, Clone)]
pub struct AccountingSettings {
    /// A PostgreSQL URL (one schema per site) or a directory (one SQLite file per site).
    pub ledger: String,
    /// `<spool_dir>/<site id>/<run type>`: one spool per site and destination.
    pub spool_dir: PathBuf,
    /// The AMS host of the sites whose file names none (`accounting.ams_host`).
    pub ams_host: Option<String>,
    /// How `send` reaches AMS (None: the send task is skipped, saying why).
    pub send: Option<SendSettings>,
}

/// How the send task signs and authenticates.
#[derive(Debug, Clone)]
pub struct SendSettings {
    /// The AMS project (EGI's accounting: `accounting`).
    pub project: String,
    /// The host certificate and key: S/MIME signing, and AMS's X.509 token exchange.
    pub cert: PathBuf,
    /// The host key (private: mode 0600).
    pub key: PathBuf,
    /// A static AMS token instead of the X.509 exchange.
    pub token: Option<String>,
    /// CAs trusted for AMS's TLS (None: the system's roots).
    pub ca: Option<PathBuf>,
    /// The token exchange's base URL (default `https://<ams host name>:8443`).
    pub authn_url: Option<String>,
}

/// The record kinds of a run type.
pub fn kinds(run: RunType) -> Vec<RecordKind> {
    match run {
        RunType::Compute => vec![RecordKind::Cloud, RecordKind::Ip, RecordKind::Accelerator],
        RunType::Block => vec![RecordKind::Storage],
    }
}

/// The spool of one site and run type.
pub fn spool_of(settings: &AccountingSettings, site_id: &str, run: RunType) -> PathBuf {
    settings.spool_dir.join(site_id).join(run.as_str())
}

/// The site's spools: one route per run type.
pub fn spools(settings: &AccountingSettings, site_id: &str) -> SpoolConfig {
    let routes = RunType::ALL
        .iter()
        .map(|r| Route { name: r.as_str().to_owned(), spool: spool_of(settings, site_id, *r), kinds: kinds(*r) })
        .collect();
    SpoolConfig::with_routes(routes).expect("two run types, distinct names, spools and kinds")
}

/// The site's namespace of the ledger.
pub fn open_ledger(settings: &AccountingSettings, site_id: &str) -> Result<Ledger, ledger::Error> {
    LedgerOptions { mode: OpenMode::CreateIfMissing, namespace: Some(site_id.into()), ..Default::default() }
        .open(&settings.ledger)
}

/// What one VO share's extraction did.
#[derive(Debug)]
pub struct ShareRun {
    /// The VO of the share.
    pub vo: String,
    /// What the extraction did.
    pub report: pipeline::RunReport,
}

/// Why a site's accounting or send task failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountingError {
    /// The site's ledger.
    #[error("{0}")]
    Ledger(#[from] ledger::Error),
    /// Another run holds the site's run lock.
    #[error("{0}")]
    Lock(#[from] ledger::LockError),
    /// Planning the windows from the checkpoints.
    #[error("{0}")]
    Windows(#[from] accounting::windows::WindowError),
    /// The extraction of a share.
    #[error("{0}")]
    Run(#[from] pipeline::RunError),
    /// The site's APEL name is not valid: (name, reason).
    #[error("accounting.site_name {0:?}: {1}")]
    SiteName(String, String),
    /// No usable AMS for the site.
    #[error("AMS {host}: {reason}")]
    Ams {
        /// The AMS host.
        host: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// Sending a spool.
    #[error("{0}")]
    Send(#[from] messaging::sender::SendError),
    /// The host certificate or key cannot sign.
    #[error("{0}")]
    Smime(String),
}

/// Extracts each session's project (one VO share each) into the site's spools and ledger.
/// `sessions`: (VO, project id, its session). The windows run from each project's
/// checkpoint to now, as an hourly `fedsite accounting extract` does.
pub async fn extract(
    settings: &AccountingSettings,
    loaded: &sites::LoadedSite,
    sessions: &[(String, String, openstack::Session)],
) -> Result<Vec<ShareRun>, AccountingError> {
    let site = &loaded.site;
    let name = site.accounting_site_name();
    let site_name = apel::SiteName::new(name.as_str())
        .map_err(|e| AccountingError::SiteName(name.as_str().to_owned(), e.to_string()))?;
    let service = apel::ApelText::lossy(site.endpoint.as_str());
    let spool = spools(settings, &loaded.id);
    let mut ledger = open_ledger(settings, &loaded.id)?;
    let lock = ledger.run_lock(ledger::RUN_LOCK_EXTRACT, Duration::from_secs(60))?;
    let mut out = Vec::new();
    for (vo, project, session) in sessions {
        let mut cfg = accounting::ExtractConfig::new(site_name.clone(), service.clone());
        cfg.project_tag = None;
        cfg.projects = vec![project.clone()];
        // The project's VO as the site file names it (cASO's catchall_site_yaml).
        cfg.catchall_site_yaml = Some(loaded.file.clone());
        // Whole seconds, as `fedsite accounting extract` ends its windows.
        let now = chrono::Utc::now();
        let now = chrono::DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        let planned = accounting::windows::plan(&ledger, accounting::windows::Request::default(), now)?;
        let (report, back) = pipeline::run(session, &cfg, ledger, planned.windows, &spool).await?;
        ledger = back;
        out.push(ShareRun { vo: vo.clone(), report });
    }
    drop(lock);
    Ok(out)
}

/// What one spool's sending did.
#[derive(Debug)]
pub struct SpoolSend {
    /// The run type whose spool this is.
    pub run: RunType,
    /// The AMS topic it went to.
    pub topic: String,
    /// What sending did.
    pub report: sender::SendReport,
}

/// Sends each of the site's spools to its AMS host and run type's topic.
pub async fn send(
    settings: &AccountingSettings,
    loaded: &sites::LoadedSite,
) -> Result<Vec<SpoolSend>, AccountingError> {
    let Some(s) = &settings.send else {
        return Err(AccountingError::Ams {
            host: "-".into(),
            reason: "no AMS credentials configured (--ams-cert/--ams-key)".into(),
        });
    };
    let site = &loaded.site;
    let host = site
        .accounting
        .ams_host
        .as_ref()
        .map(|h| h.as_str().to_owned())
        .or_else(|| settings.ams_host.clone())
        .ok_or_else(|| AccountingError::Ams {
        host: "-".into(),
        reason: "the site file names no accounting.ams_host and none is configured (--ams-host)".into(),
    })?;
    let client = client(s, &host)?;
    let signer = messaging::smime::Signer::new(&s.cert, &s.key).map_err(|e| AccountingError::Smime(e.to_string()))?;
    let mut ledger = open_ledger(settings, &loaded.id)?;
    let mut out = Vec::new();
    for run in RunType::ALL {
        let spool = spool_of(settings, &loaded.id, run);
        if !spool.exists() {
            continue;
        }
        let topic = site.accounting.destinations.topic(run).as_str().to_owned();
        let opts = SenderOptions::new(&spool, &topic);
        let _lock = sender::lock_spool(&opts, Duration::from_secs(60))?;
        let report = sender::send_all(&opts, &client, &signer, None, Some(&mut ledger)).await?;
        out.push(SpoolSend { run, topic, report });
    }
    Ok(out)
}

fn client(s: &SendSettings, host: &str) -> Result<AmsClient, AccountingError> {
    let err = |reason: String| AccountingError::Ams { host: host.to_owned(), reason };
    let base = format!("https://{host}");
    let auth = match &s.token {
        Some(t) => Auth::Token(t.clone()),
        None => {
            let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
            let authn = s.authn_url.clone().unwrap_or_else(|| format!("https://{name}:8443"));
            Auth::X509 {
                authn_base: authn.parse().map_err(|e| err(format!("token exchange URL {authn}: {e}")))?,
                host: name.to_owned(),
                cert: s.cert.clone(),
                key: s.key.clone(),
            }
        }
    };
    let mut cfg = AmsConfig::new(&base, &s.project, auth).map_err(|e| err(e.to_string()))?;
    cfg.ca = s.ca.clone();
    AmsClient::new(cfg).map_err(|e| err(e.to_string()))
}
