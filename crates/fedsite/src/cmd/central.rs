//! `fedsite central`: one fedsite for every site of a federation, from the
//! catch-all sites folder (docs/central.md): `validate` (the folder checked file by file and
//! key by key, as the `sites` crate reads it) and `run` (the tasks of every site, `central::run`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use central::plan::{self, TaskFlags};
use clap::{Args, Subcommand};
use serde::Serialize;

#[derive(Debug, Args)]
pub struct CentralArgs {
    #[command(subcommand)]
    pub command: CentralCommand,
}

#[derive(Debug, Subcommand)]
pub enum CentralCommand {
    /// Check a catch-all sites folder (sites/*.yaml): every file, every key,
    /// GOCDB sites described twice, project ids, endpoints, VOs against
    /// vo-mappings.yaml. One line per finding; exit 1 on any error
    /// (warnings allowed).
    Validate(ValidateArgs),
    /// Run tasks for every site of the folder at once (each under its own timeout) and print
    /// one row per site and task; exit 1 when any failed.
    Run(RunArgs),
    /// Run the tasks of every site every interval, forever, from one or several replicas
    /// sharing a PostgreSQL ledger: each (site, task, interval) is claimed in the ledger and
    /// run once; work whose replica died is taken over. One line per finished task.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub tasks: TaskArgs,
    /// One JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub tasks: TaskArgs,
    /// Seconds between two runs of every task (intervals are aligned to the Unix epoch, so
    /// every replica names them alike).
    #[arg(long, value_name = "SECS")]
    pub interval: u64,
    /// The shared ledger the replicas claim work in: postgresql://… (several replicas need
    /// PostgreSQL; there is no SQLite mode).
    #[arg(long, value_name = "URL")]
    pub ledger: String,
    /// This replica's name in the claims (default: host name and process id).
    #[arg(long, value_name = "NAME")]
    pub replica: Option<String>,
    /// Stop after this many intervals and the work queued in them (tests, one-off catch-up).
    #[arg(long, value_name = "N")]
    pub once_intervals: Option<u32>,
    /// Serve the status page (`/`: every site's last result per task, its age and error) and
    /// Prometheus metrics (`/metrics`) here, read from the shared ledger (every replica's work).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

/// What `run` and `serve` share: the folder, the tasks and the credentials.
#[derive(Debug, Args)]
pub struct TaskArgs {
    /// The folder of site files.
    #[arg(long, value_name = "DIR")]
    pub sites_dir: PathBuf,
    /// The federation's vo-mappings.yaml (see `validate`).
    #[arg(long, value_name = "FILE")]
    pub vo_mappings: Option<PathBuf>,
    /// Tasks, comma-separated: info, images, accounting, send.
    #[arg(long, value_delimiter = ',', default_value = "info,images,accounting,send")]
    pub task: Vec<String>,
    /// Only this site (file id or GOCDB name); repeatable.
    #[arg(long = "site", value_name = "NAME")]
    pub sites: Vec<String>,
    /// Sites worked on at once.
    #[arg(long, default_value_t = 8)]
    pub max_sites: usize,
    /// Each site's task is given up after this many seconds; the others go on.
    #[arg(long, default_value_t = 600)]
    pub site_timeout: u64,
    /// Check-in's OIDC discovery document.
    #[arg(
        long,
        value_name = "URL",
        default_value = "https://aai.egi.eu/auth/realms/egi/.well-known/openid-configuration"
    )]
    pub checkin_discovery: String,
    /// The central robot's Check-in client id.
    #[arg(long, value_name = "ID")]
    pub client_id: String,
    /// A private file (0600) holding the client secret.
    #[arg(long, value_name = "FILE")]
    pub client_secret_file: PathBuf,
    /// Vault for the application credentials of `auth: v3applicationcredential` sites.
    #[arg(long, value_name = "URL", conflicts_with = "secrets_dir")]
    pub vault: Option<String>,
    /// Or a directory of them: `<dir>/<keystone host>/<vo>`, private files.
    #[arg(long, value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// GOCDB's public API, for the documents.
    #[arg(long, value_name = "URL", default_value = cloudinfo::gocdb::DEFAULT_URL)]
    pub gocdb_url: String,
    /// Where the info documents go: `<dir>/<site id>.json`.
    #[arg(long, value_name = "DIR", default_value = "info")]
    pub info_dir: PathBuf,
    /// Also publish each site's info document to this Swift container: the site's own Swift
    /// (object `<gocdb>.json` in its ops VO's project, else its first VO's), or with
    /// --info-swift-cloud a central one. A Swift refusing the write fails that site's row.
    #[arg(long, value_name = "NAME")]
    pub info_swift_container: Option<String>,
    /// The cloud (clouds.yaml, OS_CLIENT_CONFIG_FILE) whose Swift holds every site's document,
    /// one object `<site id>.json` per site.
    #[arg(long, value_name = "CLOUD", requires = "info_swift_container")]
    pub info_swift_cloud: Option<String>,
    /// The images task's registry, a Harbor (e.g. https://registry.egi.eu); without it the
    /// images task is skipped, saying so.
    #[arg(long, value_name = "URL")]
    pub registry_url: Option<String>,
    /// The registry's robot account (REST API listing and pulls).
    #[arg(long, value_name = "USER", requires = "registry_url")]
    pub registry_user: Option<String>,
    /// A private file holding the robot account's password.
    #[arg(long, value_name = "FILE", requires = "registry_user")]
    pub registry_password_file: Option<PathBuf>,
    /// Where image downloads are cached (one cache for every site).
    #[arg(long, value_name = "DIR", default_value = "/var/cache/fedsite/images")]
    pub image_cache: PathBuf,
    /// The Glance tag of the images the central sync manages.
    #[arg(long, default_value = "fedsite")]
    pub image_tag: String,
    /// The prefix of every image name (the catch-all's).
    #[arg(long, default_value = "registry.egi.eu ")]
    pub image_name_prefix: String,
    /// The accounting task's ledger: a directory (one SQLite file per site) or a
    /// postgresql:// URL (one schema per site); `serve` defaults to its --ledger.
    #[arg(long, value_name = "DIR|URL")]
    pub accounting_ledger: Option<String>,
    /// One spool per site and run type: `<dir>/<site id>/compute` and `…/block`.
    #[arg(long, value_name = "DIR", default_value = "/var/spool/apel/central")]
    pub spool_dir: PathBuf,
    /// The AMS host of the sites whose file names no `accounting.ams_host`.
    #[arg(long, value_name = "HOST", default_value = "msg.argo.grnet.gr")]
    pub ams_host: String,
    /// The AMS project the records are published in.
    #[arg(long, value_name = "NAME", default_value = "accounting")]
    pub ams_project: String,
    /// The host certificate the send task signs with (and exchanges for an AMS token);
    /// without it and --ams-key the send task is skipped, saying so.
    #[arg(long, value_name = "PEM", requires = "ams_key")]
    pub ams_cert: Option<PathBuf>,
    /// The host certificate's key.
    #[arg(long, value_name = "PEM", requires = "ams_cert")]
    pub ams_key: Option<PathBuf>,
    /// A private file holding a static AMS token (instead of the X.509 exchange).
    #[arg(long, value_name = "FILE")]
    pub ams_token_file: Option<PathBuf>,
    /// CAs trusted for AMS's TLS (PEM bundle or directory; default the system's roots).
    #[arg(long, value_name = "PATH")]
    pub ams_ca: Option<PathBuf>,
    /// The X.509 token exchange's base URL (default `https://<AMS host name>:8443`).
    #[arg(long, value_name = "URL")]
    pub ams_authn_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The folder of site files (`sites/` of fedcloud-catchall-operations).
    #[arg(long, value_name = "DIR")]
    pub sites_dir: PathBuf,
    /// The federation's vo-mappings.yaml (`vos:` VO name → Check-in
    /// entitlement): every VO of every site is looked up in it.
    #[arg(long, value_name = "FILE")]
    pub vo_mappings: Option<PathBuf>,
    /// A VO missing from --vo-mappings is an error, not a warning.
    #[arg(long, requires = "vo_mappings")]
    pub strict_vos: bool,
    /// Also check each file's GOCDB site and endpoint against GOCDB's
    /// org.openstack.nova services (the public API's URL; without a value,
    /// EGI's GOCDB), and list the services no file describes.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = cloudinfo::gocdb::DEFAULT_URL)]
    pub gocdb: Option<String>,
    /// One JSON document (findings, counts and the sites as read) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: CentralArgs) -> Result<ExitCode> {
    match args.command {
        CentralCommand::Validate(a) => validate(a).await,
        CentralCommand::Run(a) => run_tasks(a).await,
        CentralCommand::Serve(a) => serve(a).await,
    }
}

impl TaskArgs {
    /// The flags as `central::plan` takes them.
    fn flags(&self) -> TaskFlags {
        TaskFlags {
            sites_dir: self.sites_dir.clone(),
            vo_mappings: self.vo_mappings.clone(),
            tasks: self.task.clone(),
            max_sites: self.max_sites,
            site_timeout_secs: self.site_timeout,
            checkin_discovery: self.checkin_discovery.clone(),
            client_id: self.client_id.clone(),
            client_secret_file: self.client_secret_file.clone(),
            vault: self.vault.clone(),
            secrets_dir: self.secrets_dir.clone(),
            gocdb_url: self.gocdb_url.clone(),
            info_dir: self.info_dir.clone(),
            info_swift_container: self.info_swift_container.clone(),
            info_swift_cloud: self.info_swift_cloud.clone(),
            registry_url: self.registry_url.clone(),
            registry_user: self.registry_user.clone(),
            registry_password_file: self.registry_password_file.clone(),
            image_cache: self.image_cache.clone(),
            image_tag: self.image_tag.clone(),
            image_name_prefix: self.image_name_prefix.clone(),
            accounting_ledger: self.accounting_ledger.clone(),
            spool_dir: self.spool_dir.clone(),
            ams_host: self.ams_host.clone(),
            ams_project: self.ams_project.clone(),
            ams_cert: self.ams_cert.clone(),
            ams_key: self.ams_key.clone(),
            ams_token_file: self.ams_token_file.clone(),
            ams_ca: self.ams_ca.clone(),
            ams_authn_url: self.ams_authn_url.clone(),
        }
    }
}

/// The tasks, the folder (its broken files reported) and what every task shares
/// (`central::plan`); `default_ledger`: the accounting ledger when --accounting-ledger is not
/// given.
fn prepare(
    a: &TaskArgs,
    default_ledger: &str,
) -> Result<(Vec<central::run::Task>, sites::Folder, central::run::Central)> {
    let flags = a.flags();
    let (tasks, folder) = plan::tasks_and_folder(&flags)?;
    for f in folder.findings.iter().filter(|f| f.is_error()) {
        eprintln!("fedsite central: {f} (that site is left out)");
    }
    let c = plan::central(&flags, default_ledger)?;
    Ok((tasks, folder, c))
}

/// Serves `central::status` on `addr` from a connection of its own to the ledger, until the
/// process ends.
async fn status_server(addr: std::net::SocketAddr, ledger_url: &str) -> Result<()> {
    use axum::http::header;
    use axum::response::IntoResponse;
    use std::sync::{Arc, Mutex};
    let url = ledger_url.to_owned();
    let store = tokio::task::spawn_blocking(move || ledger::PgStore::open(&url, ledger::PgOptions::default()))
        .await
        .context("opening the ledger for the status page")??;
    let store = Arc::new(Mutex::new(store));
    let read = |store: Arc<Mutex<ledger::PgStore>>| async move {
        tokio::task::spawn_blocking(move || {
            let s = store.lock().unwrap_or_else(|e| e.into_inner());
            s.claims().map(|c| central::status::summarize(&c))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    };
    let (page_store, metrics_store) = (store.clone(), store);
    let router = axum::Router::new()
        .route(
            "/",
            axum::routing::get(move || {
                let store = page_store.clone();
                async move {
                    match read(store).await {
                        Ok(st) => (
                            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                            central::status::html(&st, chrono::Utc::now()),
                        )
                            .into_response(),
                        Err(e) => {
                            (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("ledger: {e}\n")).into_response()
                        }
                    }
                }
            }),
        )
        .route(
            "/metrics",
            axum::routing::get(move || {
                let store = metrics_store.clone();
                async move {
                    match read(store).await {
                        Ok(st) => {
                            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], central::status::metrics(&st))
                                .into_response()
                        }
                        Err(e) => {
                            (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("ledger: {e}\n")).into_response()
                        }
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("--listen {addr}"))?;
    eprintln!("fedsite central serve: status page on http://{}/ (metrics: /metrics)", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(())
}

async fn serve(a: ServeArgs) -> Result<ExitCode> {
    plan::serve_ledger(&a.ledger)?;
    let (tasks, folder, c) = prepare(&a.tasks, &a.ledger)?;
    let replica = plan::replica_name(a.replica.as_deref());
    let ledger_url = a.ledger.clone();
    let mut store =
        tokio::task::spawn_blocking(move || ledger::PgStore::open(&ledger_url, ledger::PgOptions::default()))
            .await
            .context("opening the ledger")??;
    if let Some(addr) = a.listen {
        status_server(addr, &a.ledger).await?;
    }
    let cfg = central::schedule::ServeConfig {
        interval: std::time::Duration::from_secs(a.interval),
        tasks,
        only: a.tasks.sites.clone(),
        replica,
        once_intervals: a.once_intervals,
    };
    eprintln!(
        "fedsite central serve: replica {} on {}, every {} s, {} site(s)",
        cfg.replica,
        a.ledger.split('@').next_back().unwrap_or_default(),
        a.interval,
        folder.sites.len()
    );
    let mut failed = false;
    central::schedule::serve(&c, &folder, &mut store, &cfg, |f| {
        let r = &f.result;
        failed |= r.outcome == central::run::Outcome::Failed || f.record_error.is_some();
        let mut line = format!(
            "{} {} {} {} {:.1}s",
            f.key.interval_start.format("%Y-%m-%dT%H:%M:%SZ"),
            r.site,
            r.task.as_str(),
            r.outcome.as_str(),
            r.duration.as_secs_f64()
        );
        if let Some(from) = &f.taken_over_from {
            line.push_str(&format!(" (taken over from {from})"));
        }
        line.push_str(&format!(": {}", r.detail));
        if let Some(e) = &f.record_error {
            line.push_str(&format!(" (not recorded: {e})"));
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    })
    .await?;
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn run_tasks(r: RunArgs) -> Result<ExitCode> {
    let a = &r.tasks;
    let (tasks, folder, c) = prepare(a, plan::DEFAULT_RUN_LEDGER)?;
    let rows = central::run::run(&c, &folder, &tasks, &a.sites).await;
    let failed = rows.iter().any(|r| r.outcome == central::run::Outcome::Failed) || folder.errors() > 0;
    let mut out = std::io::stdout().lock();
    if r.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "site": r.site, "task": r.task.as_str(), "outcome": r.outcome.as_str(),
                    "duration_seconds": r.duration.as_secs_f64(), "detail": r.detail, "fix": r.fix,
                    "failed_vos": r.failed_vos.iter().map(|(vo, e)| serde_json::json!({"vo": vo, "error": e})).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &serde_json::json!({"results": v, "folder_errors": folder.errors()}))?;
        writeln!(out)?;
    } else {
        writeln!(out, "{:<28} {:<6} {:<8} {:>8}  detail", "SITE", "TASK", "RESULT", "SECONDS")?;
        for r in &rows {
            writeln!(
                out,
                "{:<28} {:<6} {:<8} {:>8.1}  {}",
                r.site,
                r.task.as_str(),
                r.outcome.as_str(),
                r.duration.as_secs_f64(),
                r.detail
            )?;
            for (vo, e) in &r.failed_vos {
                writeln!(out, "{:<28} {:<6} {:<8} {:>8}    VO {vo}: {e}", "", "", "", "")?;
            }
            if let Some(fix) = &r.fix {
                writeln!(out, "{:<28} {:<6} {:<8} {:>8}    fix: {fix}", "", "", "", "")?;
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

#[derive(Serialize)]
struct Report<'a> {
    sites_dir: &'a std::path::Path,
    vo_mappings: Option<&'a std::path::Path>,
    /// Site files read.
    files: usize,
    /// Sites usable (files without error).
    usable: usize,
    errors: usize,
    warnings: usize,
    findings: &'a [sites::Finding],
    /// With --gocdb: the org.openstack.nova services no file describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    missing_from_folder: Option<&'a [sites::Missing]>,
    sites: Vec<SiteJson<'a>>,
}

#[derive(Serialize)]
struct SiteJson<'a> {
    id: &'a str,
    file: &'a std::path::Path,
    accounting_site_name: sites::SiteName,
    #[serde(flatten)]
    site: &'a sites::Site,
}

async fn validate(a: ValidateArgs) -> Result<ExitCode> {
    let mut findings = Vec::new();
    let mappings = match &a.vo_mappings {
        Some(p) => {
            let (m, f) = sites::VoMappings::load(p)?;
            findings.extend(f);
            Some(m)
        }
        None => None,
    };
    let opts = sites::Options { vo_mappings: mappings.as_ref(), strict_vos: a.strict_vos };
    let mut folder = sites::load(&a.sites_dir, &opts)?;
    let missing = match &a.gocdb {
        Some(url) => {
            let services = gocdb_services(url).await?;
            Some(sites::gocdb::compare(&mut folder, &services, "GOCDB"))
        }
        None => None,
    };
    findings.extend(folder.findings.iter().cloned());
    let errors = findings.iter().filter(|f| f.is_error()).count();
    let warnings = findings.len() - errors;
    let mut out = std::io::stdout().lock();
    if a.json {
        let report = Report {
            sites_dir: &a.sites_dir,
            vo_mappings: a.vo_mappings.as_deref(),
            files: folder.files,
            usable: folder.sites.len(),
            errors,
            warnings,
            findings: &findings,
            missing_from_folder: missing.as_deref(),
            sites: folder
                .sites
                .iter()
                .map(|s| SiteJson {
                    id: &s.id,
                    file: &s.file,
                    accounting_site_name: s.site.accounting_site_name(),
                    site: &s.site,
                })
                .collect(),
        };
        serde_json::to_writer_pretty(&mut out, &report).context("writing the JSON report")?;
        writeln!(out)?;
    } else {
        for f in &findings {
            writeln!(out, "{f}")?;
        }
        for m in missing.iter().flatten() {
            writeln!(out, "missing: GOCDB site {} ({}): no file in {}", m.site, m.url, a.sites_dir.display())?;
        }
        let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        write!(
            out,
            "{}, {}, {}",
            plural(folder.files, "site", "sites"),
            plural(errors, "error", "errors"),
            plural(warnings, "warning", "warnings")
        )?;
        if folder.sites.len() < folder.files {
            write!(out, " ({} usable)", folder.sites.len())?;
        }
        if let Some(m) = &missing {
            write!(out, "; {} in GOCDB without a file", plural(m.len(), "service", "services"))?;
        }
        writeln!(out)?;
    }
    Ok(if errors > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The org.openstack.nova services of a GOCDB public API (`get_service`), as `sites` compares
/// them.
async fn gocdb_services(url: &str) -> Result<Vec<sites::GocdbService>> {
    let services = cloudinfo::gocdb::services(url, "org.openstack.nova", std::time::Duration::from_secs(60)).await?;
    Ok(services
        .into_iter()
        .map(|s| sites::GocdbService { site: s.site_name.unwrap_or_default(), urls: s.urls })
        .collect())
}
