//! `fedsite central run | serve`'s settings: from the command line's values (there is no
//! configuration file: the sites folder is the configuration) to the tasks, the folder and the
//! [`Central`] every task shares, with central's defaults (the per-site SQLite ledger of `run`,
//! `serve`'s PostgreSQL ledger and replica name). Owns that assembly; the runs are
//! [`crate::run`]'s and [`crate::schedule`]'s. Central's own policy lives here, not in
//! `siteconf`: no fedsite.toml or original tool's file takes part (docs/decisions.md).

use std::path::PathBuf;
use std::time::Duration;

use openstack::CloudConfig;

use crate::accounting::{AccountingSettings, SendSettings};
use crate::run::{Central, ImagesSettings, InfoSwift, Secrets, Task};
use crate::{CheckinConfig, CheckinToken, CredentialError, SecretsDir, Vault};

/// `central run`'s accounting ledger without `--accounting-ledger`: one SQLite file per site.
pub const DEFAULT_RUN_LEDGER: &str = "/var/lib/fedsite/central";

/// What the command line says (`run` and `serve` share these; clap has applied its defaults).
#[derive(Debug, Clone, Default)]
pub struct TaskFlags {
    /// `--sites-dir`: the folder of site files.
    pub sites_dir: PathBuf,
    /// `--vo-mappings`: the federation's vo-mappings.yaml.
    pub vo_mappings: Option<PathBuf>,
    /// `--task` values (info, images, accounting, send).
    pub tasks: Vec<String>,
    /// `--max-sites`: sites worked on at once.
    pub max_sites: usize,
    /// `--site-timeout`: seconds after which a site's task is given up.
    pub site_timeout_secs: u64,
    /// Check-in's OIDC discovery document URL.
    pub checkin_discovery: String,
    /// The central robot's Check-in client id.
    pub client_id: String,
    /// The private file holding the robot's client secret.
    pub client_secret_file: PathBuf,
    /// Vault URL for application-credential sites.
    pub vault: Option<String>,
    /// Or a directory of those credentials (`<dir>/<keystone host>/<vo>`).
    pub secrets_dir: Option<PathBuf>,
    /// GOCDB's public API, for the documents' OtherInfo.
    pub gocdb_url: String,
    /// Where the info documents go (`<dir>/<site id>.json`).
    pub info_dir: PathBuf,
    /// Also publish each document to this Swift container.
    pub info_swift_container: Option<String>,
    /// The clouds.yaml cloud whose Swift holds every document (else each site's own).
    pub info_swift_cloud: Option<String>,
    /// The images task's registry (None: the task is skipped).
    pub registry_url: Option<String>,
    /// The registry's robot account.
    pub registry_user: Option<String>,
    /// A private file holding the robot account's password.
    pub registry_password_file: Option<PathBuf>,
    /// Where image downloads are cached (`<dir>/<site id>` per site).
    pub image_cache: PathBuf,
    /// The Glance tag of the images the central sync manages.
    pub image_tag: String,
    /// The prefix of every image name.
    pub image_name_prefix: String,
    /// The accounting ledger: a directory (a SQLite file per site) or a postgresql:// URL.
    pub accounting_ledger: Option<String>,
    /// The spools' root: `<dir>/<site id>/<run type>`.
    pub spool_dir: PathBuf,
    /// The AMS host of sites whose file names none.
    pub ams_host: String,
    /// The AMS project the records are published in.
    pub ams_project: String,
    /// The host certificate the send task signs with (None with no key: send skipped).
    pub ams_cert: Option<PathBuf>,
    /// The host certificate's key.
    pub ams_key: Option<PathBuf>,
    /// A private file holding a static AMS token (instead of the X.509 exchange).
    pub ams_token_file: Option<PathBuf>,
    /// CAs trusted for AMS's TLS (default: the system's roots).
    pub ams_ca: Option<PathBuf>,
    /// The X.509 token exchange's base URL (default `https://<AMS host>:8443`).
    pub ams_authn_url: Option<String>,
}

/// A central setting that cannot be used; names the flag or file.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A `--task` value that names no task.
    #[error("--task {0:?}: not a task (info, images, accounting, send)")]
    Task(String),
    /// `serve`'s ledger is not a PostgreSQL URL.
    #[error("--ledger {0:?}: central serve needs a PostgreSQL ledger (postgresql://…)")]
    NotPostgres(String),
    /// The sites folder cannot be read.
    #[error(transparent)]
    Folder(#[from] sites::LoadError),
    /// A credential (client secret, Vault, secrets directory) cannot be used.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The info directory cannot be created.
    #[error("creating {}", dir.display())]
    InfoDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--info-swift-cloud` names no usable cloud.
    #[error("--info-swift-cloud {name}: reading clouds.yaml")]
    SwiftCloud {
        /// The cloud's name.
        name: String,
        /// Why.
        #[source]
        source: openstack::ConfigError,
    },
}

/// The tasks and the folder, with its findings (the caller reports the broken files, which
/// are left out).
pub fn tasks_and_folder(a: &TaskFlags) -> Result<(Vec<Task>, sites::Folder), PlanError> {
    let tasks = a
        .tasks
        .iter()
        .map(|t| Task::parse(t).ok_or_else(|| PlanError::Task(t.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let mappings = match &a.vo_mappings {
        Some(p) => Some(sites::VoMappings::load(p)?.0),
        None => None,
    };
    let folder = sites::load(&a.sites_dir, &sites::Options { vo_mappings: mappings.as_ref(), strict_vos: false })?;
    Ok((tasks, folder))
}

/// What every task shares: the robot's Check-in token, the sites' secrets, the documents'
/// directory (created here) and Swift, the images registry and the accounting ledger, spools
/// and AMS. `default_ledger`: the accounting ledger without `--accounting-ledger`
/// ([`DEFAULT_RUN_LEDGER`] for `run`, the shared ledger for `serve`).
pub fn central(a: &TaskFlags, default_ledger: &str) -> Result<Central, PlanError> {
    let secret = CheckinConfig::secret_from_file(&a.client_secret_file)?;
    let token = CheckinToken::new(CheckinConfig::discovery(&a.checkin_discovery, &a.client_id, secret))?;
    let secrets = match (&a.vault, &a.secrets_dir) {
        (Some(v), _) => Secrets::Vault(Vault::new(v)?),
        (None, Some(d)) => Secrets::Dir(SecretsDir::new(d)),
        (None, None) => Secrets::None,
    };
    std::fs::create_dir_all(&a.info_dir).map_err(|source| PlanError::InfoDir { dir: a.info_dir.clone(), source })?;
    let info_swift = match &a.info_swift_container {
        Some(container) => Some(InfoSwift {
            container: container.clone(),
            central: match &a.info_swift_cloud {
                Some(name) => Some(
                    CloudConfig::load(Some(name))
                        .map_err(|source| PlanError::SwiftCloud { name: name.clone(), source })?,
                ),
                None => None,
            },
        }),
        None => None,
    };
    let send = match (&a.ams_cert, &a.ams_key) {
        (Some(cert), Some(key)) => Some(SendSettings {
            project: a.ams_project.clone(),
            cert: cert.clone(),
            key: key.clone(),
            token: a
                .ams_token_file
                .as_deref()
                .map(|p| CheckinConfig::secret_from_file(p).map(|s| s.expose().to_owned()))
                .transpose()?,
            ca: a.ams_ca.clone(),
            authn_url: a.ams_authn_url.clone(),
        }),
        _ => None,
    };
    Ok(Central {
        token,
        secrets,
        gocdb_url: a.gocdb_url.clone(),
        info_dir: a.info_dir.clone(),
        max_sites: a.max_sites.max(1),
        site_timeout: Duration::from_secs(a.site_timeout_secs.max(1)),
        creation_time: chrono::Utc::now(),
        images: a.registry_url.as_ref().map(|url| ImagesSettings {
            registry: imagesync::config::RegistryConfig {
                username: a.registry_user.clone(),
                password_file: a.registry_password_file.clone(),
                ..imagesync::config::RegistryConfig::new(url)
            },
            cache_dir: a.image_cache.clone(),
            tag: a.image_tag.clone(),
            name_prefix: a.image_name_prefix.clone(),
        }),
        accounting: Some(AccountingSettings {
            ledger: a.accounting_ledger.clone().unwrap_or_else(|| default_ledger.to_owned()),
            spool_dir: a.spool_dir.clone(),
            ams_host: Some(a.ams_host.clone()),
            send,
        }),
        info_swift,
    })
}

/// `central serve`'s shared ledger: only PostgreSQL (the replicas claim work in it).
pub fn serve_ledger(url: &str) -> Result<&str, PlanError> {
    match url.starts_with("postgresql://") || url.starts_with("postgres://") {
        true => Ok(url),
        false => Err(PlanError::NotPostgres(url.to_owned())),
    }
}

/// This replica's name in the claims: `replica`, else `<host name>:<process id>` (`localhost`
/// when /etc/hostname is empty or unreadable).
pub fn replica_name(replica: Option<&str>) -> String {
    replica.map(str::to_owned).unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
        format!("{}:{}", if host.is_empty() { "localhost" } else { &host }, std::process::id())
    })
}
