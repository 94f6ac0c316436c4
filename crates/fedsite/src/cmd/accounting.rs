//! `fedsite accounting extract | republish | records | projects`: what cASO
//! does for a site, through `accounting::pipeline`, the ledger and the
//! SSM-compatible spool.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use accounting::InactiveTime;
use accounting::pipeline;
use accounting::windows;
use anyhow::{Context, Result, bail};
use apel::{Style, Window};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand, ValueEnum};
use ledger::{Ledger, SnapshotFilter, SummaryGroup};
use openstack::Session;
use siteconf::resolve::extract::{
    ExtractFlags, ExtractPlan, RepublishFlags, RepublishPlan, SiteFlags, extract_plan, projects_plan, republish_plan,
};

#[derive(Debug, Args)]
pub struct AccountingArgs {
    #[command(subcommand)]
    pub command: AccountingCommand,
}

#[derive(Debug, Subcommand)]
pub enum AccountingCommand {
    /// Extract usage records into the ledger and the spool (what
    /// caso-extract does).
    Extract(ExtractArgs),
    /// Re-spool the latest records of a period from the ledger, without
    /// double counting.
    Republish(RepublishArgs),
    /// Show what the ledger holds: records or usage per VO and month.
    Records(RecordsArgs),
    /// List the projects accounted and the VO each maps to (like
    /// caso-projects).
    Projects(ProjectsArgs),
}

/// Where the cloud, the site and the selection of projects come from.
#[derive(Debug, Args, Clone)]
pub struct SiteArgs {
    /// Cloud of clouds.yaml (as `openstack --os-cloud`); OS_* variables when
    /// neither this nor OS_CLOUD is set.
    #[arg(long, env = "OS_CLOUD")]
    pub os_cloud: Option<String>,
    /// GOCDB site name (APEL SiteName).
    #[arg(long, env = "FEDSITE_SITE_NAME")]
    pub site_name: Option<String>,
    /// APEL CloudComputeService; the site name by default.
    #[arg(long, env = "FEDSITE_SERVICE_NAME")]
    pub service_name: Option<String>,
    /// APEL CloudType.
    #[arg(long, default_value = concat!("fedsite/", env!("CARGO_PKG_VERSION"), " (OpenStack)"))]
    pub cloud_type: String,
    /// Also account these projects (ids), besides the tagged ones.
    #[arg(long = "project", value_name = "ID")]
    pub projects: Vec<String>,
    /// Keystone tag of the projects to account ("" for none).
    #[arg(long, default_value = "caso")]
    pub tag: String,
    /// Project properties holding the VO, tried in order.
    #[arg(long = "vo-property", value_name = "KEY", default_values = ["egi.VO", "egi.eu:VO", "egi.eu_VO", "VO"])]
    pub vo_properties: Vec<String>,
    /// A project known to have no VO (id or name; `*` for every one): skipped with a warning
    /// instead of failing the run, so monitoring sees success. Repeatable.
    #[arg(long = "unmapped-ok", value_name = "PROJECT")]
    pub unmapped_ok: Vec<String>,
    /// Legacy cASO voms.json mapping.
    #[arg(long, value_name = "PATH")]
    pub voms_json: Option<PathBuf>,
    /// EGI catch-all `sites/<SITE>.yaml` (its `vos` list maps VOs to projects).
    #[arg(long, value_name = "PATH")]
    pub site_yaml: Option<PathBuf>,
    /// Extractors to run.
    #[arg(long = "extractor", value_delimiter = ',', default_value = "nova,cinder,neutron")]
    pub extractors: Vec<String>,
    /// Projects extracted at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Prometheus base URL for the `prometheus` (energy) extractor.
    #[arg(long, default_value = "http://localhost:9090")]
    pub prometheus_endpoint: String,
    /// Seconds between the power samples the energy extractor sums.
    #[arg(long, default_value_t = 30)]
    pub prometheus_step_seconds: u32,
    /// Multiplies the energy (cASO's cpu_normalization_factor).
    #[arg(long, default_value_t = 1.0)]
    pub cpu_normalization_factor: f64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StyleArg {
    /// fedsite's rendering (docs/compat.md).
    Fedsite,
    /// cASO 5.2.2's rendering, byte for byte.
    Caso,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InactiveArg {
    /// cASO's way: SHUTOFF and SHELVED time counts as running.
    Running,
    /// SHUTOFF and SHELVED time counts as suspended.
    Suspended,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    /// Start of the window (UTC; RFC 3339 or YYYY-MM-DD); each project's
    /// checkpoint when omitted, or the start of the previous month for a
    /// project without one.
    #[arg(long, value_parser = parse_time)]
    pub from: Option<DateTime<Utc>>,
    /// End of the window (UTC); now by default, and never later than now.
    #[arg(long, value_parser = parse_time)]
    pub to: Option<DateTime<Utc>>,
    /// The spool SSM's sender reads (dirq QueueSimple); /var/spool/apel/outgoing/openstack,
    /// or caso.conf's [ssm] output_path / fedsite.toml's [spool] path or [[destination]] spools,
    /// by default. Given, it is the one spool (fedsite.toml's destinations are not used).
    #[arg(long, env = "FEDSITE_SPOOL")]
    pub spool: Option<PathBuf>,
    /// Run from an existing cASO configuration: site, service, projects, VO
    /// property, extractors, extra-spec keys, [keystone_auth] credentials and
    /// the [ssm] spool come from it (the site and cloud options are ignored).
    #[arg(long, value_name = "PATH")]
    pub caso_conf: Option<PathBuf>,
    /// The ledger: a SQLite file, or a postgresql:// URL (default
    /// `[ledger] path` of fedsite.toml, else /var/lib/fedsite/ledger.sqlite).
    #[arg(long, env = "FEDSITE_LEDGER")]
    pub ledger: Option<PathBuf>,
    /// Print the messages instead of writing the ledger and the spool.
    #[arg(long)]
    pub dry_run: bool,
    /// Message rendering (default `[accounting] style`, else fedsite).
    #[arg(long, value_enum)]
    pub style: Option<StyleArg>,
    /// Records per message (cASO's [ssm] max_size; default 1000).
    #[arg(long)]
    pub max_records: Option<usize>,
    /// How SHUTOFF and SHELVED servers count (default running, as cASO).
    #[arg(long, value_enum)]
    pub inactive_time: Option<InactiveArg>,
    /// Do not compute SuspendDuration from instance actions (cASO's numbers).
    #[arg(long)]
    pub no_suspend_duration: bool,
    /// cASO 5.2.2's records, as far as a switch gives them: `--style caso`, cASO's CloudType
    /// (`caso/5.2.2 (OpenStack)`), no SuspendDuration, SHUTOFF and SHELVED time counted as
    /// running. The fixes that have no switch still apply (docs/compat.md says which).
    #[arg(long, conflicts_with_all = ["style", "inactive_time"])]
    pub caso_compatible: bool,
    /// List every server's instance actions again instead of reusing those cached in the
    /// ledger for servers not updated since (`[accounting] action_cache = false`).
    #[arg(long)]
    pub no_action_cache: bool,
    /// List every live server again for the servers only the usage report names, instead of
    /// taking them from the ledger's listed-server cache when it is proved current.
    #[arg(long)]
    pub no_server_cache: bool,
    /// After the run, write its Prometheus metrics here (atomically; for node_exporter's
    /// textfile collector, e.g. /var/lib/node_exporter/textfile/fedsite_extract.prom).
    #[arg(long, value_name = "PATH")]
    pub metrics_textfile: Option<PathBuf>,
    /// Wait up to this many seconds for another extract or republish on the same ledger to
    /// finish (default: exit at once with code 75; docs/cli.md).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub wait: u64,
}

#[derive(Debug, Args)]
pub struct RepublishArgs {
    #[arg(long, value_parser = parse_time)]
    pub from: DateTime<Utc>,
    #[arg(long, value_parser = parse_time)]
    pub to: DateTime<Utc>,
    /// Only this project.
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long, env = "FEDSITE_SPOOL")]
    pub spool: Option<PathBuf>,
    #[arg(long, env = "FEDSITE_LEDGER")]
    pub ledger: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub style: Option<StyleArg>,
    /// Wait up to this many seconds for another extract or republish on the same ledger to
    /// finish (default: exit at once with code 75).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub wait: u64,
}

#[derive(Debug, Args)]
pub struct RecordsArgs {
    #[arg(long, env = "FEDSITE_LEDGER")]
    pub ledger: Option<PathBuf>,
    /// cloud, ip, accelerator, storage or energy.
    #[arg(long)]
    pub kind: Option<String>,
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long)]
    pub vo: Option<String>,
    /// YYYY-MM
    #[arg(long)]
    pub month: Option<String>,
    /// Usage per VO and month instead of records.
    #[arg(long)]
    pub summary: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ProjectsArgs {
    #[command(flatten)]
    pub site: SiteArgs,
}

/// `2023-05-21`, `2023-05-21T00:00:00` (UTC) or RFC 3339.
fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return Ok(t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    bail!("{s:?} is not a UTC time (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS or RFC 3339)")
}

impl SiteArgs {
    /// The flags as siteconf's resolver takes them.
    fn flags(&self) -> SiteFlags<'_> {
        SiteFlags {
            os_cloud: self.os_cloud.as_deref(),
            site_name: self.site_name.as_deref(),
            service_name: self.service_name.as_deref(),
            cloud_type: &self.cloud_type,
            projects: &self.projects,
            tag: &self.tag,
            vo_properties: &self.vo_properties,
            unmapped_ok: &self.unmapped_ok,
            voms_json: self.voms_json.as_deref(),
            site_yaml: self.site_yaml.as_deref(),
            extractors: &self.extractors,
            concurrency: self.concurrency,
            prometheus_endpoint: &self.prometheus_endpoint,
            prometheus_step_seconds: self.prometheus_step_seconds,
            cpu_normalization_factor: self.cpu_normalization_factor,
        }
    }
}

impl StyleArg {
    fn style(self) -> Style {
        match self {
            StyleArg::Fedsite => Style::Fedsite,
            StyleArg::Caso => Style::CasoCompat,
        }
    }
}

impl InactiveArg {
    fn inactive_time(self) -> InactiveTime {
        match self {
            InactiveArg::Running => InactiveTime::CountAsRunning,
            InactiveArg::Suspended => InactiveTime::CountAsSuspended,
        }
    }
}

/// `--ledger`, else fedsite.toml's `[ledger] path`, else the default.
fn ledger_path(flag: Option<PathBuf>, file: Option<&siteconf::Config>) -> PathBuf {
    siteconf::resolve::ledger_path(flag.as_deref(), file)
}

/// An existing ledger (a command that only reads or repairs it never creates an empty one).
pub fn open_existing_ledger(path: &PathBuf) -> Result<Ledger> {
    match ledger::LedgerOptions::mode(ledger::OpenMode::MustExist).open(path) {
        Err(ledger::Error::Missing { location }) => {
            bail!("ledger {location} does not exist (--ledger, or [ledger] path in fedsite.toml)")
        }
        r => Ok(r?),
    }
}

/// The ledger of a command that writes records: created (with its directory) when missing.
pub fn open_ledger(path: &PathBuf) -> Result<Ledger> {
    Ok(ledger::LedgerOptions::mode(ledger::OpenMode::CreateIfMissing).open(path)?)
}

pub async fn run(args: AccountingArgs) -> Result<ExitCode> {
    match args.command {
        AccountingCommand::Extract(a) => extract(a).await,
        AccountingCommand::Republish(a) => republish(a),
        AccountingCommand::Records(a) => records(a),
        AccountingCommand::Projects(a) => projects(a).await,
    }
}

/// What one extraction run did, for `fedsite serve`'s metrics.
pub struct ExtractDone {
    pub code: ExitCode,
    /// None for a dry run.
    pub report: Option<pipeline::RunReport>,
    /// The OpenStack API calls the run made.
    pub counters: BTreeMap<openstack::RouteKey, openstack::CallStats>,
}

async fn extract(a: ExtractArgs) -> Result<ExitCode> {
    extract_run(a).await.map(|d| d.code)
}

/// One `accounting extract`, returning its report and API counters (and writing
/// `--metrics-textfile`).
pub async fn extract_run(a: ExtractArgs) -> Result<ExtractDone> {
    let flags = ExtractFlags {
        site: a.site.flags(),
        caso_conf: a.caso_conf.as_deref(),
        to: a.to,
        spool: a.spool.as_deref(),
        ledger: a.ledger.as_deref(),
        style: a.style.map(StyleArg::style),
        max_records: a.max_records,
        inactive_time: a.inactive_time.map(InactiveArg::inactive_time),
        no_suspend_duration: a.no_suspend_duration,
        caso_compatible: a.caso_compatible,
        no_action_cache: a.no_action_cache,
        no_server_cache: a.no_server_cache,
    };
    // fedsite.toml (global --config) when no caso.conf is given.
    let file = if a.caso_conf.is_none() { super::site_config()? } else { None };
    let now = Utc::now().with_nanosecond_zero();
    let plan = extract_plan(&flags, file.as_ref(), &openstack::config::process_env(), &std::env::current_dir()?, now)?;
    for n in &plan.notes {
        tracing::info!("caso.conf: {n}");
    }
    let ExtractPlan { config: cfg, spool, ledger: ledger_path, cloud, .. } = &plan;
    let session = Session::connect(&cloud.config).await.with_context(|| cloud.authenticating())?;
    if a.dry_run {
        let window = plan.dry_run_window(a.from)?;
        let dry = pipeline::dry_run(&session, cfg, window, spool).await;
        for (project, kind, bytes) in &dry.messages {
            println!("# project {project}, {} message", kind.as_str());
            println!("{}", String::from_utf8_lossy(bytes));
        }
        let unrendered =
            |id: &str| dry.unrendered.iter().find(|(p, _)| p == id).map(|(_, e)| format!("rendering its records: {e}"));
        let failed = report_failures(
            dry.extraction.failure.as_ref().map(|e| e.to_string()),
            dry.extraction.projects.iter().map(|p| {
                let error = p.result.as_ref().err().map(|e| e.to_string()).or_else(|| unrendered(&p.project_id));
                (p.project_id.as_str(), p.project_name.as_deref(), error)
            }),
        );
        let code = if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        return Ok(ExtractDone { code, report: None, counters: session.counters() });
    }
    let mut ledger = open_ledger(ledger_path)?;
    // One extract or republish at a time per ledger (docs/delivery.md): held to the end.
    let _lock = ledger.run_lock(ledger::RUN_LOCK_EXTRACT, std::time::Duration::from_secs(a.wait))?;
    let windows = windows::plan(&ledger, windows::Request { from: a.from, to: a.to }, now)?.windows;
    // A spinner counting committed projects on a terminal; nothing otherwise (JSON logs).
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos} projects extracted ({elapsed}) {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    });
    let progress = |p: &pipeline::ProjectReport| {
        if let Some(bar) = &bar {
            bar.inc(1);
            bar.set_message(p.project_name.clone().unwrap_or_else(|| p.project_id.clone()));
        }
    };
    let result = pipeline::run_with_progress(&session, cfg, ledger, windows, spool, &progress).await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let (report, ledger) = result.with_context(|| {
        format!(
            "accounting run (ledger {}, spool {})",
            ledger_path.display(),
            spool.spools().iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })?;
    for p in &report.projects {
        let name = p.project_name.as_deref().unwrap_or("?");
        if p.up_to_date {
            println!("{} ({name}): up to date (committed by the interrupted run)", p.project_id);
        } else if let Some(why) = &p.skipped {
            println!("{} ({name}): skipped: {why}", p.project_id);
        } else if p.error.is_none() {
            let spooled: Vec<String> = p.spooled.iter().map(|(k, n)| format!("{n} {k}")).collect();
            println!(
                "{} ({name}) VO {}: {} spooled in {} messages, {} unchanged{} [{} → {}]",
                p.project_id,
                p.vo.as_deref().unwrap_or("-"),
                if spooled.is_empty() { "nothing".into() } else { spooled.join(", ") },
                p.messages.len(),
                p.unchanged,
                if p.kept_newer > 0 {
                    format!(", {} older than the ledger's dropped", p.kept_newer)
                } else {
                    String::new()
                },
                p.window.from().format("%Y-%m-%dT%H:%M:%SZ"),
                p.window.to().format("%Y-%m-%dT%H:%M:%SZ"),
            );
        }
    }
    let failed = report_failures(
        report.failure.clone(),
        report.projects.iter().map(|p| (p.project_id.as_str(), p.project_name.as_deref(), p.error.clone())),
    );
    let counters = session.counters();
    if let Some(path) = &a.metrics_textfile {
        let mut m = sitereport::metrics::Metrics::new();
        sitereport::metrics::stage_from_ledger(&mut m, &ledger, sitereport::metrics::Stage::Extract)?;
        sitereport::metrics::ledger_records(&mut m, &ledger)?;
        sitereport::metrics::project_successes(&mut m, &ledger)?;
        sitereport::metrics::extract_run(&mut m, &report);
        sitereport::metrics::api(&mut m, &counters);
        m.write_textfile(path)?;
    }
    let code = if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    Ok(ExtractDone { code, report: Some(report), counters })
}

/// Prints every failure on stderr, naming each failed project by id and name; true when
/// there was any.
fn report_failures<'a>(
    failure: Option<String>,
    projects: impl Iterator<Item = (&'a str, Option<&'a str>, Option<String>)>,
) -> bool {
    let mut failed = false;
    if let Some(f) = failure {
        eprintln!("fedsite: accounting: {f}");
        failed = true;
    }
    for (project, name, error) in projects {
        if let Some(e) = error {
            let named = match name {
                Some(n) if !e.contains(n) => format!("{project} ({n})"),
                _ => project.to_owned(),
            };
            // Extraction errors already name the project by id; ledger and spool errors do not.
            let e = if e.contains(project) { e.replacen(project, &named, 1) } else { format!("project {named}: {e}") };
            eprintln!("fedsite: accounting: {e} (its checkpoint did not move)");
            failed = true;
        }
    }
    failed
}

fn republish(a: RepublishArgs) -> Result<ExitCode> {
    let flags = RepublishFlags {
        from: a.from,
        to: a.to,
        project: a.project.as_deref(),
        spool: a.spool.as_deref(),
        ledger: a.ledger.as_deref(),
        style: a.style.map(StyleArg::style),
    };
    let RepublishPlan { ledger, spool, filter } = republish_plan(&flags, super::site_config()?.as_ref())?;
    let mut ledger = open_ledger(&ledger)?;
    let _lock = ledger.run_lock(ledger::RUN_LOCK_EXTRACT, std::time::Duration::from_secs(a.wait))?;
    let out = pipeline::republish(&mut ledger, &filter, &spool)?;
    let records: usize = out.iter().map(|(_, _, n)| n).sum();
    for (element, kind, n) in &out {
        println!("{element} {kind} {n} records");
    }
    println!("republished {records} records in {} messages", out.len());
    Ok(ExitCode::SUCCESS)
}

fn records(a: RecordsArgs) -> Result<ExitCode> {
    let ledger = open_existing_ledger(&ledger_path(a.ledger.clone(), super::site_config()?.as_ref()))?;
    let filter = SnapshotFilter { project: a.project, kind: a.kind, vo: a.vo, month: a.month, ..Default::default() };
    if a.summary {
        let rows = ledger.usage_summary(&filter, SummaryGroup { vo: true, project: false, month: true })?;
        if a.json {
            let rows: Vec<_> = rows
                .iter()
                .map(|r| serde_json::json!({"vo": r.vo, "month": r.month, "records": r.records, "wall_seconds": r.wall_seconds, "cpu_seconds": r.cpu_seconds}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        } else {
            println!("{:<28} {:<8} {:>8} {:>12} {:>12}", "VO", "MONTH", "RECORDS", "WALL h", "CPU h");
            for r in rows {
                println!(
                    "{:<28} {:<8} {:>8} {:>12.1} {:>12.1}",
                    r.vo.as_deref().unwrap_or("-"),
                    r.month.as_deref().unwrap_or("-"),
                    r.records,
                    r.wall_seconds as f64 / 3600.0,
                    r.cpu_seconds as f64 / 3600.0
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows = ledger.latest_snapshots(&filter)?;
    if a.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|s| {
                let s = &s.snapshot;
                serde_json::json!({"kind": s.kind, "key": s.key, "project_id": s.project_id, "vo": s.vo,
                    "measured_at": s.measured_at, "status": s.status, "wall_seconds": s.wall_seconds,
                    "cpu_seconds": s.cpu_seconds, "body": s.body})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{:<12} {:<46} {:<34} {:<20} {:<10} {:>10}", "KIND", "KEY", "PROJECT", "VO", "STATUS", "WALL s");
        for s in rows {
            let s = s.snapshot;
            println!(
                "{:<12} {:<46} {:<34} {:<20} {:<10} {:>10}",
                s.kind,
                s.key,
                s.project_id,
                s.vo.as_deref().unwrap_or("-"),
                s.status.as_deref().unwrap_or("-"),
                s.wall_seconds.map(|w| w.to_string()).unwrap_or_else(|| "-".into())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn projects(a: ProjectsArgs) -> Result<ExitCode> {
    let file = super::site_config()?;
    let env = openstack::config::process_env();
    let (cfg, cloud) = projects_plan(&a.site.flags(), file.as_ref(), &env, &std::env::current_dir()?)?;
    let session = Session::connect(&cloud.config).await.with_context(|| cloud.authenticating())?;
    let window = Window::new(Utc::now() - chrono::Duration::seconds(1), Utc::now()).expect("valid");
    let extraction = accounting::Extract::new(&session, &cfg, |_| window).run().await;
    if let Some(f) = &extraction.failure {
        bail!("{f}");
    }
    let mut failed = false;
    for p in &extraction.projects {
        let name = p.project_name.as_deref().unwrap_or("?");
        match &p.vo {
            Some((vo, source)) => println!("{} ({name}) mapped to VO '{vo}' (from {source})", p.project_id),
            None => {
                failed = true;
                println!("{} ({name}) has no VO", p.project_id)
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

trait NoNanos {
    fn with_nanosecond_zero(self) -> Self;
}

impl NoNanos for DateTime<Utc> {
    fn with_nanosecond_zero(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).expect("0 ns is valid")
    }
}
