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
    /// One JSON document (findings, counts and the sites as read) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: CentralArgs) -> Result<ExitCode> {
    match args.command {
        CentralCommand::Validate(a) => validate(a),
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

fn validate(a: ValidateArgs) -> Result<ExitCode> {
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
    let folder = sites::load(&a.sites_dir, &opts)?;
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
        writeln!(out)?;
    }
    Ok(if errors > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
