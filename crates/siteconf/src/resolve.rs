//! From a parsed `fedsite.toml` to what the library crates take: the
//! extraction settings, the cloud credentials (through the same clouds.yaml
//! resolution as `openstack`), the spool and ledger, and an SSM-equivalent
//! sender configuration. Defaults are applied here, once; every error names
//! the file and the key.

pub mod check;
pub mod extract;
pub mod images;
pub mod info;
pub mod keystone;
pub mod os_cli;
pub mod probe;
pub mod receive;
pub mod send;
pub mod serve;
pub mod token;

use std::path::{Path, PathBuf};

use accounting::pipeline::{Route, SSM_KINDS, SpoolConfig};
use accounting::{CompatOptions, ExtractConfig, Extractor, InactiveTime};
use apel::{ApelText, RecordKind, SiteName, Style};
use messaging::config::{PathType, SenderCfg};
use openstack::CloudConfig;

use crate::Error;
use crate::model::{Ams, FedsiteToml};

/// The configuration every command reads when no `--config` / `FEDSITE_CONFIG` is given and
/// this file exists (the packages' units name it explicitly).
pub const DEFAULT_CONFIG: &str = "/etc/fedsite/fedsite.toml";
pub const DEFAULT_LEDGER: &str = "/var/lib/fedsite/ledger.sqlite";
pub const DEFAULT_SPOOL: &str = "/var/spool/apel/outgoing/openstack";
pub const DEFAULT_AMS_PROJECT: &str = "accounting";
pub const DEFAULT_TOPIC: &str = "eu-egi-cloud-accounting";
/// The name of the one destination of a `fedsite.toml` without `[[destination]]` tables.
pub const DEFAULT_DESTINATION: &str = "default";

/// A loaded `fedsite.toml` and the file it came from.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub toml: FedsiteToml,
}

/// One `[[destination]]`'s spool, for the readers that look at every destination's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationSpool {
    pub name: String,
    pub spool: PathBuf,
    /// None: `<spool>.quarantine`.
    pub quarantine: Option<PathBuf>,
}

impl Config {
    pub fn load(file: &Path) -> Result<Config, Error> {
        Ok(Config { file: file.to_path_buf(), toml: FedsiteToml::load(file)? })
    }

    fn err(&self, key: &str, reason: impl Into<String>) -> Error {
        Error::key(&self.file, key, reason)
    }

    /// The extraction settings; `default_cloud_type` when
    /// `[accounting] cloud_type` is absent.
    pub fn extract_config(&self, default_cloud_type: &str) -> Result<ExtractConfig, Error> {
        let (s, a) = (&self.toml.site, &self.toml.accounting);
        let name = s.name.as_deref().ok_or_else(|| self.err("[site] name", "is missing (the GOCDB site name)"))?;
        let site = SiteName::new(name).map_err(|e| self.err("[site] name", e.to_string()))?;
        let service = ApelText::for_field("service", s.service.as_deref().unwrap_or(name))
            .map_err(|e| self.err("[site] service", e.to_string()))?;
        let mut cfg = ExtractConfig::new(site, service);
        cfg.cloud_type = ApelText::for_field("cloud_type", a.cloud_type.as_deref().unwrap_or(default_cloud_type))
            .map_err(|e| self.err("[accounting] cloud_type", e.to_string()))?;
        cfg.catchall_site_yaml = s.catchall_yaml.clone();
        cfg.projects = a.projects.clone();
        if let Some(tag) = &a.tag {
            cfg.project_tag = (!tag.is_empty()).then(|| tag.clone());
        }
        if let Some(v) = &a.vo_properties {
            if v.is_empty() {
                return Err(self.err("[accounting] vo_properties", "is empty: name at least one project property"));
            }
            cfg.vo_properties = v.clone();
        }
        cfg.voms_json = a.voms_json.clone();
        if let Some(c) = a.concurrency {
            if c == 0 {
                return Err(self.err("[accounting] concurrency", "must be at least 1"));
            }
            cfg.concurrency = c;
        }
        if let Some(list) = &a.extractors {
            cfg.extractors = list
                .iter()
                .map(|e| {
                    Extractor::parse(e).ok_or_else(|| {
                        self.err(
                            "[accounting] extractors",
                            format!("unknown extractor {e:?} (nova, cinder, neutron, prometheus)"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        cfg.compat = self.compat()?;
        cfg.unmapped_ok = a.unmapped_ok.clone();
        if let Some(v) = a.action_cache {
            cfg.action_cache = v;
        }
        if let Some(v) = a.server_cache {
            cfg.server_cache = v;
        }
        if let Some(b) = &a.benchmark {
            set(&mut cfg.benchmark.name_key, &b.name_key);
            set(&mut cfg.benchmark.value_key, &b.value_key);
        }
        if let Some(x) = &a.accelerator {
            set(&mut cfg.accelerator.type_key, &x.type_key);
            set(&mut cfg.accelerator.vendor_key, &x.vendor_key);
            set(&mut cfg.accelerator.model_key, &x.model_key);
            set(&mut cfg.accelerator.number_key, &x.number_key);
        }
        if let Some(p) = &a.prometheus {
            set(&mut cfg.prometheus.prometheus_endpoint, &p.endpoint);
            set(&mut cfg.prometheus.prometheus_metric_name, &p.metric_name);
            if let Some(s) = p.step_seconds {
                if s == 0 {
                    return Err(self.err("[accounting.prometheus] step_seconds", "must be above 0"));
                }
                cfg.prometheus.prometheus_step_seconds = s;
            }
            if let Some(f) = p.cpu_normalization_factor {
                cfg.prometheus.cpu_normalization_factor = f;
            }
            if let Some(v) = p.verify_ssl {
                cfg.prometheus.prometheus_verify_ssl = v;
            }
        }
        Ok(cfg)
    }

    fn compat(&self) -> Result<CompatOptions, Error> {
        let a = &self.toml.accounting;
        let mut c = CompatOptions::default();
        if let Some(v) = a.suspend_duration {
            c.suspend_duration = v;
        }
        c.inactive_time = match a.inactive_time.as_deref() {
            None | Some("running") => InactiveTime::CountAsRunning,
            Some("suspended") => InactiveTime::CountAsSuspended,
            Some(o) => {
                return Err(self.err("[accounting] inactive_time", format!("{o:?}: expected running or suspended")));
            }
        };
        Ok(c)
    }

    /// `[accounting] style`.
    pub fn style(&self) -> Result<Style, Error> {
        match self.toml.accounting.style.as_deref() {
            None | Some("fedsite") => Ok(Style::Fedsite),
            Some("caso") => Ok(Style::CasoCompat),
            Some(o) => Err(self.err("[accounting] style", format!("{o:?}: expected fedsite or caso"))),
        }
    }

    /// `[accounting] max_records`.
    pub fn max_records(&self) -> Result<usize, Error> {
        match self.toml.accounting.max_records {
            None => Ok(apel::DEFAULT_MAX_RECORDS),
            Some(0) => Err(self.err("[accounting] max_records", "must be at least 1")),
            Some(n) => Ok(n),
        }
    }

    /// The cloud: `os_cloud` from clouds.yaml, the inline clouds.yaml keys, or
    /// the `OS_*` variables of `env` when `[cloud]` is empty.
    pub fn cloud_config(&self, env: &openstack::config::Env, cwd: &Path) -> Result<CloudConfig, Error> {
        let c = &self.toml.cloud;
        let inline = c.auth.is_some() || c.auth_type.is_some();
        match (&c.os_cloud, inline) {
            (Some(_), true) => {
                Err(self.err("[cloud] os_cloud", "given together with [cloud.auth]: use one or the other"))
            }
            (Some(name), false) => {
                let result = match &c.clouds_yaml {
                    Some(p) => CloudConfig::from_clouds_files(name, std::slice::from_ref(p), &[], env),
                    None => CloudConfig::load_with(Some(name), env, cwd),
                };
                result.map_err(|e| self.err("[cloud] os_cloud", e.to_string()))
            }
            (None, true) => {
                // The section is a clouds.yaml cloud: resolve it with the same code.
                let mut entry = serde_yaml::to_value(c).map_err(|e| self.err("[cloud]", e.to_string()))?;
                if let Some(m) = entry.as_mapping_mut() {
                    m.remove("os_cloud");
                    m.remove("clouds_yaml");
                }
                let mut clouds = serde_yaml::Mapping::new();
                clouds.insert("fedsite.toml".into(), entry);
                let mut doc = serde_yaml::Mapping::new();
                doc.insert("clouds".into(), clouds.into());
                let text = serde_yaml::to_string(&doc).map_err(|e| self.err("[cloud]", e.to_string()))?;
                let label = format!("{} [cloud]", self.file.display());
                let mut cloud = CloudConfig::from_clouds_yaml(&text, None, "fedsite.toml", &label)
                    .map_err(|e| Error::file(&self.file, format!("[cloud]: {e}")))?;
                cloud.name = None;
                cloud.source = self.file.display().to_string();
                Ok(cloud)
            }
            (None, false) => {
                CloudConfig::load_with(None, env, cwd).map_err(|e| self.err("[cloud]", format!("is empty and {e}")))
            }
        }
    }

    /// `[ledger] path`, else [`default_ledger`].
    pub fn ledger(&self) -> String {
        self.toml.ledger.path.clone().unwrap_or_else(|| default_ledger().display().to_string())
    }

    /// The spool the spool-reading commands (`spool`, `check`, `serve`'s metrics) look at:
    /// `[spool] path`, or with `[[destination]]` tables the first destination's.
    pub fn spool(&self) -> PathBuf {
        match self.toml.destinations.first() {
            Some(d) => d.spool.clone(),
            None => self.toml.spool.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_SPOOL)),
        }
    }

    /// Every `[[destination]]`'s spool when the file has more than one (the readers then report
    /// each under its name); empty with one destination or none ([`Config::spool`] is the one).
    pub fn destination_spools(&self) -> Vec<DestinationSpool> {
        if self.toml.destinations.len() < 2 {
            return Vec::new();
        }
        self.toml
            .destinations
            .iter()
            .map(|d| DestinationSpool {
                name: d.name.clone(),
                spool: d.spool.clone(),
                quarantine: d.quarantine.clone(),
            })
            .collect()
    }

    /// The quarantine of [`Config::spool`], when the file names one.
    pub fn quarantine(&self) -> Option<PathBuf> {
        match self.toml.destinations.first() {
            Some(d) => d.quarantine.clone(),
            None => self.toml.spool.quarantine.clone(),
        }
    }

    /// Where extraction writes each record kind: one route per `[[destination]]`, or without
    /// them the one `[spool] path` for cloud, ip, accelerator and storage records (energy kept
    /// in the ledger), as cASO's ssm messenger.
    pub fn routes(&self) -> Vec<Route> {
        if self.toml.destinations.is_empty() {
            return vec![Route { name: DEFAULT_DESTINATION.into(), spool: self.spool(), kinds: SSM_KINDS.to_vec() }];
        }
        self.toml.routes()
    }

    /// The record kinds the configured extractors produce that no destination takes (kept in
    /// the ledger only).
    pub fn unrouted_kinds(&self) -> Result<Vec<RecordKind>, Error> {
        let extractors = self.extract_config("fedsite")?.extractors;
        let routes = self.routes();
        let produced = |k: RecordKind| {
            extractors.iter().any(|e| match e {
                Extractor::Nova => matches!(k, RecordKind::Cloud | RecordKind::Accelerator),
                Extractor::Cinder => k == RecordKind::Storage,
                Extractor::Neutron => k == RecordKind::Ip,
                Extractor::Prometheus => k == RecordKind::Energy,
            })
        };
        Ok(RecordKind::ALL
            .into_iter()
            .filter(|k| produced(*k) && !routes.iter().any(|r| r.kinds.contains(k)))
            .collect())
    }

    /// `[spool] path_type`.
    pub fn path_type(&self) -> Result<PathType, Error> {
        match self.toml.spool.path_type.as_deref() {
            None | Some("dirq") => Ok(PathType::Dirq),
            Some("directory") => Ok(PathType::Directory),
            Some(o) => Err(self.err("[spool] path_type", format!("{o:?}: expected dirq or directory"))),
        }
    }

    /// `[ams]` as SSM's sender.cfg would say it (so `fedsite send` takes
    /// either); the static token is read from `token_file`. With `[[destination]]` tables,
    /// the first destination's.
    pub fn sender_cfg(&self) -> Result<SenderCfg, Error> {
        Ok(self.deliveries()?.swap_remove(0).sender)
    }

    /// Every destination `fedsite send` delivers to, in file order: each `[[destination]]`
    /// with the `[ams]` keys it leaves out, or without them the one `[ams]` + `[spool]`.
    pub fn deliveries(&self) -> Result<Vec<Delivery>, Error> {
        let a = self.toml.ams.clone().unwrap_or_default();
        if self.toml.destinations.is_empty() {
            let sender = self.sender(&a, "[ams]", self.spool(), self.path_type()?)?;
            return Ok(vec![Delivery {
                name: DEFAULT_DESTINATION.into(),
                kinds: SSM_KINDS.to_vec(),
                quarantine: self.toml.spool.quarantine.clone(),
                url: a.url.clone(),
                authn_url: a.authn_url.clone(),
                sender,
            }]);
        }
        self.toml
            .destinations
            .iter()
            .map(|d| {
                let own_host = d.host.is_some();
                let ams = Ams {
                    host: d.host.clone().or_else(|| (!own_host).then(|| a.host.clone()).flatten()),
                    url: d.url.clone().or_else(|| (!own_host).then(|| a.url.clone()).flatten()),
                    authn_url: d.authn_url.clone().or_else(|| (!own_host).then(|| a.authn_url.clone()).flatten()),
                    project: d.project.clone().or_else(|| a.project.clone()),
                    topic: d.topic.clone().or_else(|| a.topic.clone()),
                    token_file: d.token_file.clone().or_else(|| a.token_file.clone()),
                    ..a.clone()
                };
                let section = format!("[[destination]] {}", d.name);
                let sender = self.sender(&ams, &section, d.spool.clone(), PathType::Dirq)?;
                Ok(Delivery {
                    name: d.name.clone(),
                    kinds: d.record_types.clone(),
                    quarantine: d.quarantine.clone(),
                    url: ams.url,
                    authn_url: ams.authn_url,
                    sender,
                })
            })
            .collect()
    }

    /// One destination's sender.cfg equivalent; `section` names it in errors.
    fn sender(&self, a: &Ams, section: &str, path: PathBuf, path_type: PathType) -> Result<SenderCfg, Error> {
        let host = match (&a.host, &a.url) {
            (Some(h), _) => h.clone(),
            (None, Some(u)) => u.split_once("://").map_or(u.as_str(), |(_, r)| r).trim_end_matches('/').to_string(),
            (None, None) => {
                return Err(self.err(&format!("{section} host"), "is missing (e.g. msg.argo.grnet.gr)"));
            }
        };
        let token = match &a.token_file {
            Some(p) => {
                let key = format!("{section} token_file");
                crate::model::check_private(p, "the AMS token").map_err(|e| self.err(&key, e.to_string()))?;
                let t = std::fs::read_to_string(p).map_err(|e| self.err(&key, format!("{}: {e}", p.display())))?;
                let t = t.trim().to_string();
                if t.is_empty() {
                    return Err(self.err(&key, format!("{} is empty", p.display())));
                }
                Some(t)
            }
            None => None,
        };
        Ok(SenderCfg {
            file: self.file.clone(),
            host,
            certificate: a.certificate.clone(),
            key: a.key.clone(),
            capath: a.capath.clone(),
            server_cert: a.server_cert.clone(),
            verify_server_cert: a.verify_server_cert.unwrap_or(true),
            ams_project: a.project.clone().unwrap_or_else(|| DEFAULT_AMS_PROJECT.into()),
            destination: a.topic.clone().unwrap_or_else(|| DEFAULT_TOPIC.into()),
            token,
            path,
            path_type,
            notes: Vec::new(),
        })
    }
}

/// One destination `fedsite send` delivers to: its spool and AMS settings as SSM's sender.cfg
/// says them, plus what sender.cfg has no key for.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `[[destination]] name`, or [`DEFAULT_DESTINATION`].
    pub name: String,
    /// The record kinds extraction writes to its spool.
    pub kinds: Vec<RecordKind>,
    pub sender: SenderCfg,
    /// Its quarantine, when the file names one (default `<spool>.quarantine`).
    pub quarantine: Option<PathBuf>,
    /// AMS data API and token-exchange base URLs, when the file names them.
    pub url: Option<String>,
    pub authn_url: Option<String>,
}

fn set(field: &mut String, value: &Option<String>) {
    if let Some(v) = value {
        *field = v.clone();
    }
}

/// The ledger a command uses: `flag` (the `--ledger` flag or its `FEDSITE_LEDGER` variable),
/// else fedsite.toml's `[ledger] path`, else [`default_ledger`].
pub fn ledger_path(flag: Option<&Path>, file: Option<&Config>) -> PathBuf {
    match (flag, file) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(f)) => PathBuf::from(f.ledger()),
        (None, None) => default_ledger(),
    }
}

/// The ledger of a command that works without one (`send`, `spool requeue`): `flag`, else
/// fedsite.toml's `[ledger] path`; `None` (no default) when neither names one.
pub fn optional_ledger(flag: Option<&Path>, file: Option<&Config>) -> Option<PathBuf> {
    flag.map(Path::to_path_buf).or_else(|| file.map(|f| PathBuf::from(f.ledger())))
}

/// The default ledger: `ledger.sqlite` in systemd's state directory when the unit has one
/// (`$STATE_DIRECTORY`, which the packaged units' `StateDirectory=fedsite` sets to
/// /var/lib/fedsite; its first path when it lists several), else [`DEFAULT_LEDGER`].
pub fn default_ledger() -> PathBuf {
    match std::env::var_os("STATE_DIRECTORY") {
        Some(dirs) if !dirs.is_empty() => {
            let dirs = dirs.to_string_lossy().to_string();
            PathBuf::from(dirs.split(':').next().unwrap_or(&dirs)).join("ledger.sqlite")
        }
        _ => PathBuf::from(DEFAULT_LEDGER),
    }
}

/// Where an extract or republish writes: with a caso.conf, its `[ssm] output_path` (or the
/// `--spool` flag) for the kinds its ssm messengers take (`CasoConf::record_types`); else the
/// `--spool` flag as the one spool of cloud, ip, accelerator and storage records; else
/// fedsite.toml's destinations ([`Config::routes`]); else [`DEFAULT_SPOOL`]. Style and limits
/// are the defaults: the caller sets them.
pub fn extract_spools(
    flag: Option<&Path>,
    caso: Option<&accounting::casoconf::CasoConf>,
    file: Option<&Config>,
) -> Result<SpoolConfig, Error> {
    match (caso, flag, file) {
        (Some(c), _, _) => {
            let spool = flag.unwrap_or(&c.spool).to_path_buf();
            let route = Route { name: DEFAULT_DESTINATION.into(), spool, kinds: c.record_types.clone() };
            SpoolConfig::with_routes(vec![route]).map_err(|e| Error::Other(e.to_string()))
        }
        (None, Some(p), _) => Ok(SpoolConfig::new(p)),
        (None, None, Some(f)) => {
            SpoolConfig::with_routes(f.routes()).map_err(|e| f.err("[[destination]]", e.to_string()))
        }
        (None, None, None) => Ok(SpoolConfig::new(DEFAULT_SPOOL)),
    }
}

/// The outgoing spool, its layout and its quarantine directory, as every command that
/// touches the spool resolves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolPaths {
    pub path: PathBuf,
    pub path_type: PathType,
    pub quarantine: PathBuf,
}

/// What the command line says about the spool.
#[derive(Debug, Clone, Default)]
pub struct SpoolFlags<'a> {
    pub path: Option<&'a Path>,
    /// `dirq` or `directory`.
    pub path_type: Option<&'a str>,
    pub quarantine: Option<&'a Path>,
    /// A `[[destination]]` name of fedsite.toml: its spool and quarantine.
    pub destination: Option<&'a str>,
}

/// The spool: each of path, type and quarantine from the flag, else SSM's sender.cfg
/// (`[messaging] path`, `path_type`) when one is given, else fedsite.toml's `[spool]`, else
/// (quarantine) `<spool>.quarantine`. `None` when nothing names a spool.
pub fn spool_paths(
    flags: &SpoolFlags<'_>,
    sender: Option<&SenderCfg>,
    file: Option<&Config>,
) -> Result<Option<SpoolPaths>, Error> {
    if let Some(name) = flags.destination {
        let flag = |reason: String| Error::Flag { flag: "--destination".into(), reason };
        let f = file.ok_or_else(|| flag("needs fedsite.toml [[destination]] tables (no --sender-cfg)".into()))?;
        let d = f.toml.destinations.iter().find(|d| d.name == name).ok_or_else(|| {
            let names: Vec<&str> = f.toml.destinations.iter().map(|d| d.name.as_str()).collect();
            flag(format!("{name}: {} has no such destination (it has: {})", f.file.display(), names.join(", ")))
        })?;
        let path = flags.path.map(Path::to_path_buf).unwrap_or_else(|| d.spool.clone());
        let quarantine = flags
            .quarantine
            .map(Path::to_path_buf)
            .or_else(|| d.quarantine.clone())
            .unwrap_or_else(|| messaging::sender::default_quarantine(&path));
        return Ok(Some(SpoolPaths { path, path_type: PathType::Dirq, quarantine }));
    }
    let path = flags
        .path
        .map(Path::to_path_buf)
        .or_else(|| sender.map(|c| c.path.clone()))
        .or_else(|| file.map(Config::spool));
    let Some(path) = path else { return Ok(None) };
    let path_type = match flags.path_type {
        Some("dirq") => PathType::Dirq,
        Some("directory") => PathType::Directory,
        Some(o) => {
            return Err(Error::Flag {
                flag: "--path-type".into(),
                reason: format!("{o:?}: expected dirq or directory"),
            });
        }
        None => match (sender, file) {
            (Some(c), _) => c.path_type,
            (None, Some(f)) if f.toml.destinations.is_empty() => f.path_type()?,
            (None, _) => PathType::Dirq,
        },
    };
    let quarantine = flags
        .quarantine
        .map(Path::to_path_buf)
        .or_else(|| file.and_then(Config::quarantine))
        .unwrap_or_else(|| messaging::sender::default_quarantine(&path));
    Ok(Some(SpoolPaths { path, path_type, quarantine }))
}
