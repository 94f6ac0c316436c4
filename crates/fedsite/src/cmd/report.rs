//! `fedsite report --ledger PATH [--from --to] [-o report.html]`: the ledger's usage per VO and
//! month, deliveries, pending messages and last runs as one self-contained HTML page
//! (`sitereport::report`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The ledger: a SQLite file, or a postgresql:// URL (default: fedsite.toml's [ledger]
    /// path, else /var/lib/fedsite/ledger.sqlite).
    #[arg(long, env = "FEDSITE_LEDGER")]
    pub ledger: Option<PathBuf>,
    /// First day of the period (UTC; YYYY-MM-DD, YYYY-MM or RFC 3339): months overlapping
    /// [from, to) are shown. All months by default.
    #[arg(long, value_parser = parse_day)]
    pub from: Option<DateTime<Utc>>,
    /// End of the period (exclusive).
    #[arg(long, value_parser = parse_day)]
    pub to: Option<DateTime<Utc>>,
    /// Runs listed with their warnings.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Write the page here (stdout by default).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `2026-05`, `2026-05-21` (UTC midnight) or RFC 3339.
fn parse_day(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = if s.len() == 7 { format!("{s}-01") } else { s.to_string() };
    NaiveDate::parse_from_str(&day, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| anyhow::anyhow!("{s:?} is not a UTC day (YYYY-MM, YYYY-MM-DD or RFC 3339)"))
}

pub fn run(a: ReportArgs) -> Result<ExitCode> {
    if let (Some(f), Some(t)) = (a.from, a.to)
        && f >= t
    {
        bail!("--from {f} must be before --to {t}");
    }
    let path = siteconf::resolve::ledger_path(a.ledger.as_deref(), super::site_config()?.as_ref());
    let ledger = super::accounting::open_existing_ledger(&path)?;
    let data = sitereport::report::gather(&ledger, a.from, a.to, a.runs)?;
    let html = sitereport::report::render(&data);
    match &a.output {
        Some(path) => {
            std::fs::write(path, &html).with_context(|| format!("writing {}", path.display()))?;
            let t = data.total();
            eprintln!(
                "report: {} ({} VOs, {} months, {:.1} VM-hours)",
                path.display(),
                data.vos().len(),
                data.months().len(),
                t.vm_hours
            );
        }
        None => print!("{html}"),
    }
    Ok(ExitCode::SUCCESS)
}
