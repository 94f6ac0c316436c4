//! `fedsite central`: one fedsite for every site of a federation, from the
//! catch-all sites folder (docs/central.md). For now `validate`: the folder
//! checked file by file and key by key, as the `sites` crate reads it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
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
    }
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

/// The org.openstack.nova services of a GOCDB public API (`get_service`).
async fn gocdb_services(url: &str) -> Result<Vec<sites::GocdbService>> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .context("building the HTTP client")?;
    let resp = http
        .get(url)
        .query(&[("method", "get_service"), ("service_type", "org.openstack.nova")])
        .send()
        .await
        .with_context(|| format!("reading GOCDB {url}"))?;
    let status = resp.status();
    let body = resp.text().await.with_context(|| format!("reading GOCDB {url}"))?;
    if !status.is_success() {
        anyhow::bail!("reading GOCDB {url}: HTTP {status}");
    }
    let services = cloudinfo::gocdb::parse_services(&body).map_err(|e| anyhow::anyhow!("reading GOCDB {url}: {e}"))?;
    Ok(services
        .into_iter()
        .map(|s| sites::GocdbService { site: s.site_name.unwrap_or_default(), urls: s.urls })
        .collect())
}
