//! `fedsite accounting extract | republish | projects`'s settings: the extraction settings,
//! the rendering, the spools, the ledger and the cloud, each from its flag, else cASO's
//! caso.conf (`--caso-conf`, which replaces fedsite.toml: the file is then not read), else
//! fedsite.toml, else the defaults (docs/configuration.md). Owns only that precedence; the
//! run itself is `accounting::pipeline`'s, its windows `accounting::windows`'s.

use std::path::{Path, PathBuf};

use accounting::casoconf::CasoConf;
use accounting::pipeline::SpoolConfig;
use accounting::{CompatOptions, ExtractConfig, Extractor, InactiveTime, windows};
use apel::{ApelText, SiteName, Style, Window};
use chrono::{DateTime, Utc};
use ledger::SnapshotFilter;
use openstack::CloudConfig;
use openstack::config::Env;

use crate::Error;
use crate::resolve::{Config, extract_spools, ledger_path};

/// The CloudType cASO 5.2.2 writes (`--caso-compatible`).
pub const CASO_CLOUD_TYPE: &str = "caso/5.2.2 (OpenStack)";

/// What the command line says about the cloud, the site and the projects (the flags of
/// `extract` and `projects`; clap has applied its defaults).
#[derive(Debug, Clone, Default)]
pub struct SiteFlags<'a> {
    /// `--os-cloud` (or `OS_CLOUD`).
    pub os_cloud: Option<&'a str>,
    pub site_name: Option<&'a str>,
    pub service_name: Option<&'a str>,
    pub cloud_type: &'a str,
    pub projects: &'a [String],
    /// `--tag`; empty for none.
    pub tag: &'a str,
    pub vo_properties: &'a [String],
    pub unmapped_ok: &'a [String],
    pub voms_json: Option<&'a Path>,
    pub site_yaml: Option<&'a Path>,
    pub extractors: &'a [String],
    pub concurrency: usize,
    pub prometheus_endpoint: &'a str,
    pub prometheus_step_seconds: u32,
    pub cpu_normalization_factor: f64,
}

/// What `fedsite accounting extract`'s command line says.
#[derive(Debug, Clone, Default)]
pub struct ExtractFlags<'a> {
    pub site: SiteFlags<'a>,
    pub caso_conf: Option<&'a Path>,
    /// `--to`: the window end asked for.
    pub to: Option<DateTime<Utc>>,
    pub spool: Option<&'a Path>,
    pub ledger: Option<&'a Path>,
    pub style: Option<Style>,
    pub max_records: Option<usize>,
    pub inactive_time: Option<InactiveTime>,
    pub no_suspend_duration: bool,
    pub caso_compatible: bool,
    pub no_action_cache: bool,
    /// `--no-server-cache`: list every live server (no listed-server cache).
    pub no_server_cache: bool,
}

/// The cloud a run authenticates to, and how its errors name it.
#[derive(Debug, Clone)]
pub struct CloudTarget {
    pub config: CloudConfig,
    /// Whether errors name the file the credentials came from (caso.conf, fedsite.toml).
    named: bool,
}

impl CloudTarget {
    /// The context of an authentication failure: `authenticating to URL (source)`.
    pub fn authenticating(&self) -> String {
        match self.named {
            true => format!("authenticating to {} ({})", self.config.auth_url, self.config.source),
            false => format!("authenticating to {}", self.config.auth_url),
        }
    }
}

/// The resolved extraction run.
#[derive(Debug, Clone)]
pub struct ExtractPlan {
    pub config: ExtractConfig,
    pub spool: SpoolConfig,
    pub ledger: PathBuf,
    pub cloud: CloudTarget,
    /// The window end: `--to`, never later than `now` (a warning says so), else `now`.
    pub to: DateTime<Utc>,
    /// What caso.conf said that fedsite does otherwise (to log, `caso.conf: …`).
    pub notes: Vec<String>,
}

impl ExtractPlan {
    /// A dry run's one window: `from`, else the start of the month before [`ExtractPlan::to`].
    pub fn dry_run_window(&self, from: Option<DateTime<Utc>>) -> Result<Window, Error> {
        let from = from.unwrap_or_else(|| windows::previous_month_start(self.to));
        Window::new(from, self.to).map_err(|e| Error::Other(format!("--from/--to: {e}")))
    }
}

/// The flags over caso.conf (`flags.caso_conf`, read here) or else fedsite.toml (`file`) over
/// the defaults. `env` and `cwd` find clouds.yaml and the `OS_*` credentials; `now` bounds the
/// window. Each error is the one the first unusable setting gives, in this order: caso.conf,
/// the extraction settings, the spools, the rendering, the cloud.
pub fn extract_plan(
    flags: &ExtractFlags<'_>,
    file: Option<&Config>,
    env: &Env,
    cwd: &Path,
    now: DateTime<Utc>,
) -> Result<ExtractPlan, Error> {
    let caso = flags.caso_conf.map(CasoConf::load).transpose()?;
    // A caso.conf replaces fedsite.toml.
    let file = if caso.is_some() { None } else { file };
    let mut cfg = match (&caso, file) {
        (Some(c), _) => {
            let mut cfg = c.extract.clone();
            cfg.cloud_type = flag_text("--cloud-type", flags.site.cloud_type)?;
            cfg
        }
        (None, Some(f)) => f.extract_config(flags.site.cloud_type)?,
        (None, None) => site_extract_config(&flags.site)?,
    };
    let defaults = file.map(|f| f.extract_config(flags.site.cloud_type)).transpose()?.map(|c| c.compat);
    let defaults = defaults.unwrap_or_default();
    cfg.compat = CompatOptions {
        suspend_duration: defaults.suspend_duration && !flags.no_suspend_duration && !flags.caso_compatible,
        inactive_time: match flags.inactive_time {
            Some(t) => t,
            None if flags.caso_compatible => InactiveTime::CountAsRunning,
            None => defaults.inactive_time,
        },
        ..CompatOptions::default()
    };
    if flags.caso_compatible {
        cfg.cloud_type = flag_text("--cloud-type", CASO_CLOUD_TYPE)?;
    }
    cfg.action_cache &= !flags.no_action_cache;
    cfg.server_cache &= !flags.no_server_cache;
    // --unmapped-ok adds to fedsite.toml's [accounting] unmapped_ok (a caso.conf has none).
    let extra: Vec<String> = flags.site.unmapped_ok.iter().filter(|u| !cfg.unmapped_ok.contains(u)).cloned().collect();
    cfg.unmapped_ok.extend(extra);
    // Said before anything else can fail (a future end is now: usage past now would be counted).
    let to = windows::end(flags.to, now);
    let mut spool = extract_spools(flags.spool, caso.as_ref(), file)?;
    spool.style = match (flags.style, file) {
        _ if flags.caso_compatible => Style::CasoCompat,
        (Some(s), _) => s,
        (None, Some(f)) => f.style()?,
        (None, None) => Style::Fedsite,
    };
    spool.max_records = match (flags.max_records, &caso, file) {
        (Some(n), _, _) => n,
        (None, Some(c), _) => c.max_records,
        (None, None, Some(f)) => f.max_records()?,
        (None, None, None) => apel::DEFAULT_MAX_RECORDS,
    };
    if spool.max_records == 0 {
        return Err(Error::Flag { flag: "--max-records".into(), reason: "must be at least 1".into() });
    }
    let cloud = match (&caso, file) {
        (Some(c), _) => CloudTarget { config: c.cloud.clone(), named: true },
        (None, Some(f)) => CloudTarget { config: f.cloud_config(env, cwd)?, named: true },
        (None, None) => CloudTarget { config: CloudConfig::load_with(flags.site.os_cloud, env, cwd)?, named: false },
    };
    let notes = caso.map(|c| c.messenger_notes).unwrap_or_default();
    Ok(ExtractPlan { config: cfg, spool, ledger: ledger_path(flags.ledger, file), cloud, to, notes })
}

/// What `fedsite accounting republish`'s command line says.
#[derive(Debug, Clone)]
pub struct RepublishFlags<'a> {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub project: Option<&'a str>,
    pub spool: Option<&'a Path>,
    pub ledger: Option<&'a Path>,
    pub style: Option<Style>,
}

/// The resolved republish.
#[derive(Debug, Clone)]
pub struct RepublishPlan {
    pub ledger: PathBuf,
    pub spool: SpoolConfig,
    /// The snapshots to spool again.
    pub filter: SnapshotFilter,
}

/// The flags over fedsite.toml over the defaults (as `extract` without a caso.conf).
pub fn republish_plan(flags: &RepublishFlags<'_>, file: Option<&Config>) -> Result<RepublishPlan, Error> {
    if flags.from >= flags.to {
        return Err(Error::Other(format!("--from {} must be before --to {}", flags.from, flags.to)));
    }
    let ledger = ledger_path(flags.ledger, file);
    let mut spool = extract_spools(flags.spool, None, file)?;
    spool.style = match (flags.style, file) {
        (Some(s), _) => s,
        (None, Some(f)) => f.style()?,
        (None, None) => Style::Fedsite,
    };
    // Snapshots are stamped with the end of the window that measured them:
    // include `--to` itself, so a republish with an extract's own --to finds it.
    let to = flags.to + chrono::Duration::microseconds(1);
    let filter = SnapshotFilter {
        from: Some(flags.from),
        to: Some(to),
        project: flags.project.map(str::to_string),
        ..Default::default()
    };
    Ok(RepublishPlan { ledger, spool, filter })
}

/// `fedsite accounting projects`: the extraction settings without extractors (the projects and
/// their VOs only) and the cloud, from fedsite.toml when given, else the flags (a missing or
/// unusable site name does not matter for listing projects).
pub fn projects_plan(
    site: &SiteFlags<'_>,
    file: Option<&Config>,
    env: &Env,
    cwd: &Path,
) -> Result<(ExtractConfig, CloudTarget), Error> {
    let (mut cfg, cloud) = match file {
        Some(f) => {
            let cloud = CloudTarget { config: f.cloud_config(env, cwd)?, named: true };
            (f.extract_config(site.cloud_type)?, cloud)
        }
        None => {
            let cfg = site_extract_config(site)
                .or_else(|_| site_extract_config(&SiteFlags { site_name: Some("unnamed"), ..site.clone() }))?;
            (cfg, CloudTarget { config: CloudConfig::load_with(site.os_cloud, env, cwd)?, named: false })
        }
    };
    cfg.extractors.clear();
    Ok((cfg, cloud))
}

/// The extraction settings from the flags alone (neither caso.conf nor fedsite.toml).
pub fn site_extract_config(s: &SiteFlags<'_>) -> Result<ExtractConfig, Error> {
    let site = s.site_name.ok_or_else(|| Error::Other("--site-name (or FEDSITE_SITE_NAME) is required".into()))?;
    let site_name = SiteName::new(site).map_err(|e| Error::Other(format!("--site-name: {e}")))?;
    let service = flag_text("--service-name", s.service_name.unwrap_or(site))?;
    let mut cfg = ExtractConfig::new(site_name, service);
    cfg.cloud_type = flag_text("--cloud-type", s.cloud_type)?;
    cfg.projects = s.projects.to_vec();
    cfg.project_tag = (!s.tag.is_empty()).then(|| s.tag.to_string());
    cfg.vo_properties = s.vo_properties.to_vec();
    cfg.voms_json = s.voms_json.map(Path::to_path_buf);
    cfg.unmapped_ok = s.unmapped_ok.to_vec();
    cfg.catchall_site_yaml = s.site_yaml.map(Path::to_path_buf);
    cfg.concurrency = s.concurrency.max(1);
    cfg.extractors = s
        .extractors
        .iter()
        .map(|e| {
            Extractor::parse(e).ok_or_else(|| {
                Error::Other(format!("--extractor: unknown extractor {e:?} (nova, cinder, neutron, prometheus)"))
            })
        })
        .collect::<Result<_, _>>()?;
    cfg.prometheus.prometheus_endpoint = s.prometheus_endpoint.to_string();
    if s.prometheus_step_seconds == 0 {
        return Err(Error::Flag { flag: "--prometheus-step-seconds".into(), reason: "must be above 0".into() });
    }
    cfg.prometheus.prometheus_step_seconds = s.prometheus_step_seconds;
    cfg.prometheus.cpu_normalization_factor = s.cpu_normalization_factor;
    Ok(cfg)
}

/// `value` checked as APEL text, the error naming `flag`.
fn flag_text(flag: &str, value: &str) -> Result<ApelText, Error> {
    ApelText::for_field(flag, value).map_err(|e| Error::Other(e.to_string()))
}
