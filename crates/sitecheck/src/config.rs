//! What `fedsite check` is told: the sessions it may use, the VOs and their
//! projects, the AMS host, the accounting ledger and spool, the host
//! certificate, the VM probe settings and the site information document.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use openstack::Session;

/// A VO and the project it is mapped to (name or id; the VO name when not given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoSpec {
    pub vo: String,
    pub project: String,
}

impl VoSpec {
    /// `vo` or `vo=project`.
    pub fn parse(s: &str) -> Result<VoSpec, crate::error::VoSpecError> {
        let (vo, project) = match s.split_once('=') {
            Some((v, p)) => (v.trim(), p.trim()),
            None => (s.trim(), s.trim()),
        };
        if vo.is_empty() || project.is_empty() {
            return Err(crate::error::VoSpecError { spec: s.to_string() });
        }
        Ok(VoSpec { vo: vo.into(), project: project.into() })
    }
}

/// The AMS host the sender must reach, and how its TLS is verified.
#[derive(Debug, Clone)]
pub struct AmsTarget {
    /// Host name (no port).
    pub host: String,
    /// 443 (messaging) and 8443 (X.509 token exchange) by default.
    pub ports: Vec<u16>,
    /// CA bundle (PEM) to verify with; the system's roots when None.
    pub ca: Option<PathBuf>,
}

impl Default for AmsTarget {
    fn default() -> Self {
        AmsTarget { host: "msg.argo.grnet.gr".into(), ports: vec![443, 8443], ca: None }
    }
}

/// The accounting spool and ledger.
#[derive(Debug, Clone, Default)]
pub struct AccountingTarget {
    /// Ledger: SQLite path or `postgresql://` URL.
    pub ledger: Option<String>,
    pub spool: Option<PathBuf>,
    /// `true`: SSM's flat directory layout instead of dirq.
    pub directory_spool: bool,
    /// Default: the reader's default for the spool (`<spool>.quarantine`).
    pub quarantine: Option<PathBuf>,
    /// Reads the spool (sitecheck does not know its layout: `fedsite` passes `messaging`'s
    /// reader). None: the spool check is skipped.
    pub read_spool: Option<SpoolReader>,
    /// The spools of the other destinations (fedsite.toml's `[[destination]]` tables after the
    /// first, whose spool is `spool`), each checked as `accounting.spool.<name>`.
    pub more_spools: Vec<NamedSpool>,
}

/// A destination's own dirq spool.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedSpool {
    /// The destination's name.
    pub name: String,
    pub spool: PathBuf,
    /// Default: the reader's default (`<spool>.quarantine`).
    pub quarantine: Option<PathBuf>,
}

/// What the accounting checks need from the outgoing spool and its quarantine directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpoolFacts {
    /// Elements waiting to be sent.
    pub elements: usize,
    /// Of those, the locked ones (being sent, or a lock a crash left).
    pub locked: usize,
    /// The oldest element and when it was added.
    pub oldest: Option<(String, DateTime<Utc>)>,
    /// (quarantined name, reason) of the quarantine directory, oldest first.
    pub quarantine: Vec<(String, String)>,
}

/// Reads `(spool, directory layout?, quarantine directory)` into [`SpoolFacts`]; a None
/// quarantine means the spool's default one.
pub type SpoolReader = fn(&Path, bool, Option<&Path>) -> Result<SpoolFacts, Box<dyn std::error::Error + Send + Sync>>;

/// The VM start probe.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub enabled: bool,
    /// The VO the probe runs as (`ops`).
    pub vo: String,
    /// Image name or id; by default the monitoring image (`ad:appid` 1017, or
    /// a name containing "monitoring").
    pub image: Option<String>,
    pub flavor: Option<String>,
    pub network: Option<String>,
    /// How long to wait for ACTIVE (EGI: 300 s).
    pub vm_timeout: Duration,
    pub poll_interval: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            enabled: true,
            vo: "ops".into(),
            image: None,
            flavor: None,
            network: None,
            vm_timeout: Duration::from_secs(300),
            poll_interval: Duration::from_secs(2),
        }
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// Families to run (all when empty): catalog, ports, ams, permissions,
    /// projects, flavors, accounting, certificate, vm, info.
    pub only: Vec<String>,
    pub vos: Vec<VoSpec>,
    /// Project property holding the VO; `egi.VO`, `egi.eu:VO`, `VO` when None.
    pub vo_property: Option<String>,
    /// Region of the catalog endpoints (any when None).
    pub region: Option<String>,
    /// Object storage is offered: Swift must be in the catalog.
    pub swift: bool,
    pub ams: AmsTarget,
    pub accounting: AccountingTarget,
    /// Host certificate and key used for signing.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub probe: ProbeConfig,
    /// GLUE 2.1 JSON of the site: a file path or an http(s) URL.
    pub info: Option<String>,
    /// The time freshness and expiry are judged at.
    pub now: DateTime<Utc>,
    /// A spool element older than this is stuck.
    pub stuck_after: chrono::Duration,
    /// Per connection attempt (ports, AMS, version documents).
    pub connect_timeout: Duration,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            only: Vec::new(),
            vos: Vec::new(),
            vo_property: None,
            region: None,
            swift: false,
            ams: AmsTarget::default(),
            accounting: AccountingTarget::default(),
            cert: None,
            key: None,
            probe: ProbeConfig::default(),
            info: None,
            now: Utc::now(),
            stuck_after: chrono::Duration::hours(24),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl CheckConfig {
    pub fn runs(&self, family: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|f| f == family)
    }
    /// The project property names a VO may be held in, in order.
    pub fn vo_properties(&self) -> Vec<String> {
        match &self.vo_property {
            Some(p) => vec![p.clone()],
            None => crate::inventory::VO_PROPERTIES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// The sessions of a run.
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    /// Admin (or system reader) of the site: catalog, projects, flavors.
    pub admin: Option<Session>,
    /// The accounting account (cASO's): permission checks.
    pub accounting: Option<Session>,
    /// Runs the VM probe; the admin session rescoped to the probe VO's
    /// project when None.
    pub probe: Option<Session>,
}

/// The families in the order they run.
pub const FAMILIES: [&str; 10] =
    ["catalog", "ports", "ams", "permissions", "projects", "flavors", "accounting", "certificate", "vm", "info"];
