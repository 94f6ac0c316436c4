//! Extraction settings: site identity, VO mapping sources, project
//! selection, flavor extra-spec keys, concurrency and the cASO-compatibility
//! switches. Defaults reproduce cASO 5.2.2 (see COMPAT-NOTES.md).

use std::path::PathBuf;

use apel::{ApelText, SiteName};

/// What to extract; cASO's `extractor` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Extractor {
    /// Nova: cloud records and accelerator records.
    Nova,
    /// Cinder: storage records.
    Cinder,
    /// Neutron: public IP records.
    Neutron,
    /// Prometheus: energy records (not in cASO's default list).
    Prometheus,
}

impl Extractor {
    pub fn as_str(&self) -> &'static str {
        match self {
            Extractor::Nova => "nova",
            Extractor::Cinder => "cinder",
            Extractor::Neutron => "neutron",
            Extractor::Prometheus => "prometheus",
        }
    }
    /// `nova`, `cinder`, `neutron`, `prometheus` (case-insensitive).
    pub fn parse(s: &str) -> Option<Extractor> {
        match s.trim().to_ascii_lowercase().as_str() {
            "nova" => Some(Extractor::Nova),
            "cinder" => Some(Extractor::Cinder),
            "neutron" => Some(Extractor::Neutron),
            "prometheus" => Some(Extractor::Prometheus),
            _ => None,
        }
    }
}

/// Flavor extra-spec keys of the benchmark (cASO `[benchmark]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchmarkKeys {
    pub name_key: String,
    pub value_key: String,
}

impl Default for BenchmarkKeys {
    fn default() -> Self {
        BenchmarkKeys { name_key: "accounting:benchmark_type".into(), value_key: "accounting:benchmark_value".into() }
    }
}

/// Flavor extra-spec keys of accelerators (cASO `[accelerator]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceleratorKeys {
    pub type_key: String,
    pub vendor_key: String,
    pub model_key: String,
    pub number_key: String,
}

impl Default for AcceleratorKeys {
    fn default() -> Self {
        AcceleratorKeys {
            type_key: "Accelerator:Type".into(),
            vendor_key: "Accelerator:Vendor".into(),
            model_key: "Accelerator:Model".into(),
            number_key: "Accelerator:Number".into(),
        }
    }
}

/// The energy extractor's settings (cASO `[prometheus]`, same names and
/// defaults), plus `count_window_end`.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusConfig {
    /// Prometheus base URL (the sim's is `<sim base>/prometheus`).
    pub prometheus_endpoint: String,
    pub prometheus_metric_name: String,
    /// The label holding the VM uuid.
    pub vm_uuid_label_name: String,
    /// Extra `key:value` label filters (an entry without `:` is ignored, as cASO).
    pub labels: Vec<String>,
    /// Seconds between samples (the query's `step`), > 0.
    pub prometheus_step_seconds: u32,
    pub prometheus_verify_ssl: bool,
    /// Multiplies `EnergyWh` (and is reported as `CPUNormalizationFactor`).
    pub cpu_normalization_factor: f64,
    /// Count the sample at the window end (cASO: yes, so consecutive windows
    /// count their shared boundary sample twice). Default false: samples at
    /// `from + k·step < to`, each standing for `[t, t + step)`.
    pub count_window_end: bool,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            prometheus_endpoint: "http://localhost:9090".into(),
            prometheus_metric_name: "prometheus_value".into(),
            vm_uuid_label_name: "uuid".into(),
            labels: vec!["type_instance:scaph_process_power_microwatts".into()],
            prometheus_step_seconds: 30,
            prometheus_verify_ssl: true,
            cpu_normalization_factor: 1.0,
            count_window_end: false,
        }
    }
}

/// How time a server spends SHUTOFF or SHELVED(_OFFLOADED) is accounted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InactiveTime {
    /// cASO: it is wall (and CPU) time like any other; a SHUTOFF server
    /// without `terminated_at` is reported `started`.
    #[default]
    CountAsRunning,
    /// It is added to `SuspendDuration` (like PAUSED/SUSPENDED time).
    CountAsSuspended,
}

/// Behaviour switches where fedsite can differ from cASO 5.2.2. Every
/// default is cASO's, except the fixes listed in COMPAT-NOTES.md that have
/// no switch because cASO's behaviour there is a plain bug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatOptions {
    /// Compute `SuspendDuration` from instance actions (one
    /// `os-instance-actions` list per server). cASO never emits it.
    pub suspend_duration: bool,
    /// SHUTOFF / SHELVED time (cASO: running).
    pub inactive_time: InactiveTime,
    /// Subtract `SuspendDuration` from `WallDuration` and `CpuDuration`
    /// (cASO: no; it has no suspend time at all).
    pub exclude_suspended_from_wall: bool,
    /// Report both the IPv4 and the IPv6 public-IP record of a project
    /// (cASO keeps only the last one, IPv6 over IPv4).
    pub ip_both_versions: bool,
}

impl Default for CompatOptions {
    fn default() -> Self {
        CompatOptions {
            suspend_duration: true,
            inactive_time: InactiveTime::CountAsRunning,
            exclude_suspended_from_wall: false,
            ip_both_versions: true,
        }
    }
}

/// Everything [`crate::Extract`] needs besides the session and windows.
#[derive(Debug, Clone)]
pub struct ExtractConfig {
    /// GOCDB site name (`SiteName`).
    pub site_name: SiteName,
    /// `CloudComputeService` / StAR `StorageSystem` (cASO `service_name`).
    pub service_name: ApelText,
    /// `CloudType` (cASO: `caso/5.2.2 (OpenStack)`).
    pub cloud_type: ApelText,
    /// Keystone project properties holding the VO, first found wins.
    pub vo_properties: Vec<String>,
    /// Legacy cASO `voms.json`.
    pub voms_json: Option<PathBuf>,
    /// An EGI fedcloud-catchall-operations `sites/<SITE>.yaml`.
    pub catchall_site_yaml: Option<PathBuf>,
    /// Keystone project tag selecting projects (cASO `caso_tag`); None: only
    /// `projects`.
    pub project_tag: Option<String>,
    /// Projects (ids) always extracted (cASO `projects`).
    pub projects: Vec<String>,
    pub benchmark: BenchmarkKeys,
    pub accelerator: AcceleratorKeys,
    /// Projects extracted at the same time.
    pub concurrency: usize,
    /// Requests in flight per project (instance actions, server lookups).
    pub per_project_concurrency: usize,
    pub extractors: Vec<Extractor>,
    pub compat: CompatOptions,
    /// The `prometheus` (energy) extractor's settings.
    pub prometheus: PrometheusConfig,
    /// Reuse instance-action lists cached in the ledger for servers whose `updated` did not
    /// move (`crate::action_cache`; only `pipeline::run`, which has a ledger). Default true.
    pub action_cache: bool,
    /// Take the servers only the usage report names from the ledger's listed-server cache
    /// instead of listing every live server, when the cache is proved current
    /// (`crate::server_cache`; only `pipeline::run`). Default true.
    pub server_cache: bool,
    /// Projects known to have no VO (ids or names; `*` for every project): such a project is
    /// skipped with a warning instead of failing the run (its checkpoint does not move).
    pub unmapped_ok: Vec<String>,
}

impl ExtractConfig {
    /// cASO's defaults for a site: tag `caso`, extractors nova, cinder,
    /// neutron, VO properties `egi.VO`, `egi.eu:VO`, `egi.eu_VO`, `VO`.
    pub fn new(site_name: SiteName, service_name: ApelText) -> ExtractConfig {
        ExtractConfig {
            site_name,
            service_name,
            cloud_type: ApelText::lossy("caso/5.2.2 (OpenStack)"),
            vo_properties: vec!["egi.VO".into(), "egi.eu:VO".into(), "egi.eu_VO".into(), "VO".into()],
            voms_json: None,
            catchall_site_yaml: None,
            project_tag: Some("caso".into()),
            projects: Vec::new(),
            benchmark: BenchmarkKeys::default(),
            accelerator: AcceleratorKeys::default(),
            concurrency: 4,
            per_project_concurrency: 8,
            extractors: vec![Extractor::Nova, Extractor::Cinder, Extractor::Neutron],
            compat: CompatOptions::default(),
            prometheus: PrometheusConfig::default(),
            action_cache: true,
            server_cache: true,
            unmapped_ok: Vec::new(),
        }
    }
}
