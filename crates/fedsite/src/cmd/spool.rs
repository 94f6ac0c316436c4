//! `fedsite spool status`: what waits in the outgoing spool (count, oldest, locks, temporary
//! files) and what was quarantined, by reason; `fedsite spool requeue`: quarantined elements
//! back into the spool (messaging::quarantine).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use messaging::config::{PathType, SenderCfg};
use messaging::{quarantine, sender};

#[derive(Debug, Args)]
pub struct SpoolArgs {
    #[command(subcommand)]
    pub command: SpoolCommand,
}

#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// Counts, oldest element, locks and the quarantine by reason.
    Status(StatusArgs),
    /// Put quarantined elements back into the spool (and their ledger messages back to
    /// spooled), once the cause is fixed; the next `fedsite send` sends them.
    Requeue(RequeueArgs),
}

/// Which spool and quarantine.
#[derive(Debug, Args)]
pub struct SpoolLocation {
    /// SSM's sender.cfg (for [messaging] path and path_type); without it,
    /// fedsite.toml's [spool] (global --config).
    #[arg(long, value_name = "PATH")]
    pub sender_cfg: Option<PathBuf>,
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// `dirq` or `directory`.
    #[arg(long)]
    pub path_type: Option<String>,
    /// Default `<spool>.quarantine`.
    #[arg(long, value_name = "DIR")]
    pub quarantine: Option<PathBuf>,
    /// The spool of this fedsite.toml `[[destination]]` (default: the first destination's).
    #[arg(long, value_name = "NAME")]
    pub destination: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub at: SpoolLocation,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["all", "element", "reason"])))]
pub struct RequeueArgs {
    #[command(flatten)]
    pub at: SpoolLocation,
    /// Every quarantined element.
    #[arg(long)]
    pub all: bool,
    /// This element (`dir/file` as in `spool status`, or the quarantine file name); repeatable.
    #[arg(long, value_name = "NAME")]
    pub element: Vec<String>,
    /// The elements whose quarantine reason contains this text.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// The ledger (SQLite file or postgresql:// URL) whose messages go back to spooled
    /// (default: fedsite.toml's [ledger], when --config is given).
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
    /// Say what would be requeued, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait up to this many seconds for a `fedsite send` running on the spool (default:
    /// exit at once with code 75).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub wait: u64,
}

struct Resolved {
    spool: PathBuf,
    ty: PathType,
    quarantine: PathBuf,
    file: Option<siteconf::Config>,
}

fn resolve(a: &SpoolLocation) -> Result<Resolved> {
    let cfg = a.sender_cfg.as_deref().map(SenderCfg::load).transpose()?;
    // fedsite.toml's [spool] when there is no sender.cfg.
    let file = if cfg.is_none() { super::site_config()? } else { None };
    let flags = siteconf::resolve::SpoolFlags {
        path: a.spool.as_deref(),
        path_type: a.path_type.as_deref(),
        quarantine: a.quarantine.as_deref(),
        destination: a.destination.as_deref(),
    };
    let paths = siteconf::resolve::spool_paths(&flags, cfg.as_ref(), file.as_ref())?
        .context("no spool: --spool, --sender-cfg or --config fedsite.toml")?;
    Ok(Resolved { spool: paths.path, ty: paths.path_type, quarantine: paths.quarantine, file })
}

pub async fn run(args: SpoolArgs) -> Result<ExitCode> {
    match args.command {
        SpoolCommand::Status(a) => status(a),
        SpoolCommand::Requeue(a) => requeue(a),
    }
}

fn status(a: StatusArgs) -> Result<ExitCode> {
    let Resolved { spool, ty, quarantine, .. } = resolve(&a.at)?;
    let st = sender::spool_status(&spool, ty, &quarantine)?;
    if a.json {
        let v = serde_json::json!({
            "spool": spool, "elements": st.elements, "locked": st.locked, "temporary": st.temporary,
            "oldest": st.oldest.as_ref().map(|(n, t)| serde_json::json!({"element": n, "added": t})),
            "quarantine": quarantine, "quarantined": st.quarantined,
            "quarantine_reasons": st.quarantine.iter().map(|(n, r)| serde_json::json!({"element": n, "reason": r})).collect::<Vec<_>>(),
            "quarantine_by_reason": st.by_reason.iter().map(|(r, e)| serde_json::json!({"reason": r, "count": e.len(), "elements": e})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("spool {}: {} element(s), {} locked, {} temporary", spool.display(), st.elements, st.locked, st.temporary);
    match &st.oldest {
        Some((n, t)) => println!("oldest: {n} (added {})", t.format("%Y-%m-%dT%H:%M:%SZ")),
        None => println!("oldest: -"),
    }
    println!("quarantine {}: {} message(s)", quarantine.display(), st.quarantined);
    for (reason, elements) in &st.by_reason {
        println!("  {} × {}", elements.len(), if reason.is_empty() { "(no reason recorded)" } else { reason });
        for e in elements {
            println!("      {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn requeue(a: RequeueArgs) -> Result<ExitCode> {
    let Resolved { spool, ty, quarantine, file } = resolve(&a.at)?;
    let selection = if a.all {
        quarantine::Selection::All
    } else if let Some(r) = a.reason.clone() {
        quarantine::Selection::Reason(r)
    } else {
        quarantine::Selection::Elements(a.element.clone())
    };
    let ledger_path = siteconf::resolve::optional_ledger(a.ledger.as_deref(), file.as_ref());
    let mut ledger = match &ledger_path {
        Some(p) => Some(super::accounting::open_existing_ledger(p)?),
        None => None,
    };
    // No send may work on the spool while elements go back into it.
    let opts = sender::SenderOptions { path_type: ty, ..sender::SenderOptions::new(&spool, "-") };
    let _lock = if a.dry_run { None } else { Some(sender::lock_spool(&opts, std::time::Duration::from_secs(a.wait))?) };
    let r = quarantine::requeue(&spool, ty, &quarantine, &selection, ledger.as_mut(), a.dry_run)?;
    let verb = if a.dry_run { "would requeue" } else { "requeued" };
    for (e, reason) in &r.requeued {
        println!("{verb} {e} (was: {reason})");
    }
    for (e, why) in &r.skipped {
        eprintln!("fedsite spool requeue: {e} left in the quarantine: {why}");
    }
    for e in &r.not_found {
        eprintln!("fedsite spool requeue: {e} is not in {}", quarantine.display());
    }
    println!(
        "{verb} {} element(s) into {}{}; {} left in the quarantine",
        r.requeued.len(),
        spool.display(),
        if ledger.is_some() {
            format!(", {} ledger message(s) back to spooled", r.ledger_requeued)
        } else {
            String::new()
        },
        r.skipped.len()
    );
    Ok(if r.skipped.is_empty() && r.not_found.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
