//! `fedsite send`'s settings: which spools go where, and for each its sender options, signing
//! certificate and AMS client, each from its flag, else SSM's sender.cfg (`--sender-cfg`,
//! which replaces fedsite.toml: the file is then not read), else fedsite.toml's `[ams]`,
//! `[spool]` and `[[destination]]` tables, else the defaults (docs/configuration.md). Also the
//! AMS client settings `receive` shares ([`AmsSettings`]). Owns only that precedence; sending
//! and its run bookkeeping are `messaging::sender`'s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use messaging::ams::{AmsConfig, Auth};
use messaging::config::{PathType, SenderCfg};
use messaging::sender::{RetryPolicy, SenderOptions};
use openstack::config::Env;

use crate::Error;
use crate::resolve::{Config, optional_ledger};

/// How to reach AMS: the flags `send` and `receive` share (owned: a destination's file values
/// are merged into them).
#[derive(Debug, Clone, Default)]
pub struct AmsSettings {
    /// AMS data API base URL (default `https://{host}`).
    pub ams_url: Option<String>,
    /// X.509 token exchange base URL (default `https://{host name}:8443`).
    pub authn_url: Option<String>,
    pub project: Option<String>,
    /// A static token (no X.509 exchange).
    pub token: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// CAs trusted for AMS's TLS (default `REQUESTS_CA_BUNDLE`, else the system's).
    pub ca: Option<PathBuf>,
    pub concurrency: usize,
    pub timeout_secs: u64,
}

impl AmsSettings {
    /// The AMS client's configuration: these settings over the configuration file's host,
    /// project and token; `env` gives `REQUESTS_CA_BUNDLE`.
    pub fn config(
        &self,
        host: Option<&str>,
        project: Option<&str>,
        cfg_token: Option<&str>,
        env: &Env,
    ) -> Result<AmsConfig, Error> {
        let project = self
            .project
            .as_deref()
            .or(project)
            .ok_or(Error::Missing { what: "AMS project", sources: "--project or [messaging] ams_project" })?;
        let base = match (&self.ams_url, host) {
            (Some(u), _) => u.clone(),
            (None, Some(h)) => format!("https://{h}"),
            (None, None) => {
                return Err(Error::Missing {
                    what: "AMS address",
                    sources: "--ams-url, --sender-cfg with [broker] host, or fedsite.toml [ams] host",
                });
            }
        };
        let auth = match self.token.as_deref().or(cfg_token) {
            Some(t) => Auth::Token(t.to_owned()),
            None => {
                let name = host_name(&base).ok_or_else(|| Error::Other(format!("AMS URL {base} has no host")))?;
                let authn = self.authn_url.clone().unwrap_or_else(|| format!("https://{name}:8443"));
                Auth::X509 {
                    authn_base: authn.parse().map_err(|e| Error::Other(format!("authn URL {authn}: {e}")))?,
                    host: name,
                    cert: self.cert.clone().ok_or_else(|| {
                        Error::Other("X.509 token exchange needs --cert (or a static --token)".into())
                    })?,
                    key: self.key.clone().ok_or_else(|| Error::Other("X.509 token exchange needs --key".into()))?,
                }
            }
        };
        let mut cfg = AmsConfig::new(&base, project, auth)?;
        cfg.ca = self.ca.clone().or_else(|| env.get("REQUESTS_CA_BUNDLE").map(PathBuf::from));
        cfg.concurrency = self.concurrency.max(1);
        cfg.timeout = Duration::from_secs(self.timeout_secs.max(1));
        Ok(cfg)
    }
}

/// `name` of `https://name:port/path`.
fn host_name(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next()?;
    let name = authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority);
    (!name.is_empty()).then(|| name.to_owned())
}

/// What `fedsite send`'s command line says.
#[derive(Debug, Clone, Default)]
pub struct SendFlags<'a> {
    pub sender_cfg: Option<&'a Path>,
    pub ams: AmsSettings,
    pub topic: Option<&'a str>,
    /// Only this `[[destination]]` of fedsite.toml.
    pub destination: Option<&'a str>,
    pub spool: Option<&'a Path>,
    /// `dirq` or `directory`.
    pub path_type: Option<&'a str>,
    pub quarantine: Option<&'a Path>,
    pub ledger: Option<&'a Path>,
    pub server_cert: Option<&'a Path>,
    pub retry: RetryPolicy,
    pub chunk: usize,
    pub purge_maxlock: Duration,
    pub no_validate: bool,
}

/// The spools one `fedsite send` delivers, and the ledger its runs are recorded in.
#[derive(Debug, Clone)]
pub struct SendPlan {
    /// In order: fedsite.toml's `[[destination]]` tables, else the one spool.
    pub targets: Vec<SendTarget>,
    /// `--ledger`, else fedsite.toml's `[ledger] path`; `None`: nothing recorded.
    pub ledger: Option<PathBuf>,
}

/// One spool and where it goes, as sender.cfg or fedsite.toml says; [`SendTarget::resolve`]
/// puts the flags over it (one destination's bad setting does not stop the others).
#[derive(Debug, Clone)]
pub struct SendTarget {
    /// The `[[destination]]` name (None: the one spool of sender.cfg, the flags or `[spool]`).
    pub name: Option<String>,
    cfg: Option<SenderCfg>,
    quarantine: Option<PathBuf>,
    url: Option<String>,
    authn_url: Option<String>,
    ca: Option<PathBuf>,
}

/// One spool's resolved send.
#[derive(Debug, Clone)]
pub struct TargetPlan {
    pub options: SenderOptions,
    /// The host certificate and key messages are signed with.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Encrypt to this certificate.
    pub server_cert: Option<PathBuf>,
    /// The flags with the file's CA, URLs, certificate and key merged in.
    pub ams: AmsSettings,
    host: Option<String>,
    project: Option<String>,
    token: Option<String>,
}

impl TargetPlan {
    /// The AMS client's configuration ([`AmsSettings::config`] over the file's host, project
    /// and token).
    pub fn ams_config(&self, env: &Env) -> Result<AmsConfig, Error> {
        self.ams.config(self.host.as_deref(), self.project.as_deref(), self.token.as_deref(), env)
    }
}

impl SendTarget {
    /// What the file said that SSM does otherwise, `file: note` (to log before sending).
    pub fn notes(&self) -> Vec<String> {
        self.cfg.iter().flat_map(|c| c.notes.iter().map(move |n| format!("{}: {n}", c.file.display()))).collect()
    }

    /// The flags over this target's file values. Errors in the order the send needs them:
    /// spool, topic, layout, signing certificate and key.
    pub fn resolve(&self, flags: &SendFlags<'_>) -> Result<TargetPlan, Error> {
        let cfg = self.cfg.as_ref();
        let spool = flags
            .spool
            .map(Path::to_path_buf)
            .or(cfg.map(|c| c.path.clone()))
            .ok_or(Error::Missing { what: "spool", sources: "--spool or [messaging] path" })?;
        let topic = flags
            .topic
            .map(str::to_string)
            .or(cfg.map(|c| c.destination.clone()))
            .ok_or(Error::Missing { what: "topic", sources: "--topic or [messaging] destination" })?;
        let mut options = SenderOptions::new(&spool, &topic);
        options.path_type = match flags.path_type {
            Some("dirq") => PathType::Dirq,
            Some("directory") => PathType::Directory,
            Some(o) => {
                return Err(Error::Flag {
                    flag: "--path-type".into(),
                    reason: format!("{o:?}: expected dirq or directory"),
                });
            }
            None => cfg.map(|c| c.path_type).unwrap_or(PathType::Dirq),
        };
        if let Some(q) = flags.quarantine.map(Path::to_path_buf).or(self.quarantine.clone()) {
            options.quarantine = q;
        }
        options.retry = flags.retry;
        options.chunk = flags.chunk.max(1);
        options.purge_maxlock = flags.purge_maxlock;
        options.validate = !flags.no_validate;
        let mut ams = flags.ams.clone();
        ams.ca = ams.ca.or(self.ca.clone());
        ams.ams_url = ams.ams_url.or(self.url.clone());
        ams.authn_url = ams.authn_url.or(self.authn_url.clone());
        ams.cert = ams.cert.or(cfg.and_then(|c| c.certificate.clone()));
        ams.key = ams.key.or(cfg.and_then(|c| c.key.clone()));
        let cert = ams
            .cert
            .clone()
            .ok_or_else(|| Error::Other("signing needs --cert or [certificates] certificate".into()))?;
        let key = ams.key.clone().ok_or_else(|| Error::Other("signing needs --key or [certificates] key".into()))?;
        let server_cert = flags.server_cert.map(Path::to_path_buf).or(cfg.and_then(|c| c.server_cert.clone()));
        Ok(TargetPlan {
            options,
            cert,
            key,
            server_cert,
            ams,
            host: cfg.map(|c| c.host.clone()),
            project: cfg.map(|c| c.ams_project.clone()),
            token: cfg.and_then(|c| c.token.clone()),
        })
    }
}

/// The targets: `--sender-cfg` (read here) when given; else fedsite.toml's destinations (only
/// `--destination`'s when given), or with `--spool` its one `[ams]`; else the flags alone.
/// The ledger: `--ledger`, else fedsite.toml's `[ledger] path` (no default: without either,
/// nothing is recorded).
pub fn send_plan(flags: &SendFlags<'_>, file: Option<&Config>) -> Result<SendPlan, Error> {
    let file = if flags.sender_cfg.is_some() { None } else { file };
    let file_ams = file.and_then(|f| f.toml.ams.clone()).unwrap_or_default();
    let bare = |cfg: Option<SenderCfg>| SendTarget {
        name: None,
        cfg,
        quarantine: None,
        url: None,
        authn_url: None,
        ca: file_ams.ca.clone(),
    };
    let targets = match (flags.sender_cfg, file) {
        (Some(p), _) => vec![bare(Some(SenderCfg::load(p)?))],
        // fedsite.toml's destinations, unless --spool names the one spool.
        (None, Some(f)) if flags.spool.is_none() => {
            let named = !f.toml.destinations.is_empty();
            let mut all = f.deliveries()?;
            if let Some(want) = flags.destination {
                let names: Vec<String> = all.iter().map(|d| d.name.clone()).collect();
                all.retain(|d| d.name == want);
                if all.is_empty() {
                    return Err(Error::Flag {
                        flag: "--destination".into(),
                        reason: format!(
                            "{want}: {} has no such destination (it has: {})",
                            f.file.display(),
                            names.join(", ")
                        ),
                    });
                }
            }
            all.into_iter()
                .map(|d| SendTarget {
                    name: named.then_some(d.name),
                    cfg: Some(d.sender),
                    quarantine: d.quarantine,
                    url: d.url,
                    authn_url: d.authn_url,
                    ca: file_ams.ca.clone(),
                })
                .collect()
        }
        (None, Some(f)) => vec![SendTarget {
            quarantine: f.quarantine(),
            url: file_ams.url.clone(),
            authn_url: file_ams.authn_url.clone(),
            ..bare(Some(f.sender_cfg()?))
        }],
        (None, None) => vec![bare(None)],
    };
    if flags.destination.is_some() && targets.iter().all(|t| t.name.is_none()) {
        return Err(Error::Flag {
            flag: "--destination".into(),
            reason: "needs fedsite.toml [[destination]] tables (and no --sender-cfg / --spool)".into(),
        });
    }
    Ok(SendPlan { targets, ledger: optional_ledger(flags.ledger, file) })
}
