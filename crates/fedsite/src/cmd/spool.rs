//! `fedsite spool status`: what waits in the outgoing spool (count, oldest, locks, temporary
//! files) and what was quarantined, with the reasons.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use messaging::config::{PathType, SenderCfg};
use messaging::sender;

#[derive(Debug, Args)]
pub struct SpoolArgs {
    #[command(subcommand)]
    pub command: SpoolCommand,
}

#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// Counts, oldest element, locks and the quarantine.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
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
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: SpoolArgs) -> Result<ExitCode> {
    let SpoolCommand::Status(a) = args.command;
    let cfg = a.sender_cfg.as_deref().map(SenderCfg::load).transpose()?;
    // fedsite.toml's [spool] when there is no sender.cfg.
    let file = if cfg.is_none() { super::site_config()? } else { None };
    let spool = a
        .spool
        .clone()
        .or(cfg.as_ref().map(|c| c.path.clone()))
        .or(file.as_ref().map(|f| f.spool()))
        .context("no spool: --spool, --sender-cfg or --config fedsite.toml")?;
    let ty = match a.path_type.as_deref() {
        Some("directory") => PathType::Directory,
        Some("dirq") => PathType::Dirq,
        Some(o) => anyhow::bail!("--path-type {o:?}: expected dirq or directory"),
        None => match (&cfg, &file) {
            (Some(c), _) => c.path_type,
            (None, Some(f)) => f.path_type()?,
            (None, None) => PathType::Dirq,
        },
    };
    let quarantine = a
        .quarantine
        .clone()
        .or(file.as_ref().and_then(|f| f.toml.spool.quarantine.clone()))
        .unwrap_or_else(|| sender::default_quarantine(&spool));
    let st = sender::spool_status(&spool, ty, &quarantine)?;
    if a.json {
        let v = serde_json::json!({
            "spool": spool, "elements": st.elements, "locked": st.locked, "temporary": st.temporary,
            "oldest": st.oldest.as_ref().map(|(n, t)| serde_json::json!({"element": n, "added": t})),
            "quarantine": quarantine, "quarantined": st.quarantined,
            "quarantine_reasons": st.quarantine.iter().map(|(n, r)| serde_json::json!({"element": n, "reason": r})).collect::<Vec<_>>(),
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
    for (n, r) in &st.quarantine {
        println!("  {n}: {r}");
    }
    Ok(ExitCode::SUCCESS)
}
