//! `fedsite config import | check | show`: write a `fedsite.toml` from the
//! files a site has (caso.conf, sender.cfg, sites/*.yaml), validate one
//! naming every wrong key, and show what a run would use (secrets hidden).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use siteconf::{Config, Level};

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Write an equivalent fedsite.toml from caso.conf, sender.cfg and/or a
    /// catch-all sites/<SITE>.yaml, listing whatever could not be carried over.
    Import(ImportArgs),
    /// Validate a fedsite.toml (the global --config, or FEDSITE_CONFIG):
    /// every wrong key, and why. Exit 1 on any error.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// cASO's caso.conf.
    #[arg(long, value_name = "PATH")]
    pub caso: Option<PathBuf>,
    /// SSM's sender.cfg.
    #[arg(long, value_name = "PATH")]
    pub ssm: Option<PathBuf>,
    /// The EGI catch-all sites/<SITE>.yaml.
    #[arg(long, value_name = "PATH")]
    pub site: Option<PathBuf>,
    /// The host certificate fedsite signs with, instead of sender.cfg's (e.g. a copy the
    /// service user owns: docs/deploy.md).
    #[arg(long, value_name = "PEM", requires = "key")]
    pub certificate: Option<PathBuf>,
    /// The host key, instead of sender.cfg's (must be readable by its owner only).
    #[arg(long, value_name = "PEM", requires = "certificate")]
    pub key: Option<PathBuf>,
    /// Where to write (mode 0600); stdout when absent.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: ConfigArgs) -> Result<ExitCode> {
    match args.command {
        ConfigCommand::Import(a) => import(a),
        ConfigCommand::Check(a) => check(a),
    }
}

fn import(a: ImportArgs) -> Result<ExitCode> {
    if a.caso.is_none() && a.ssm.is_none() && a.site.is_none() {
        bail!("nothing to import: give --caso, --ssm and/or --site");
    }
    let mut imported = siteconf::import(a.caso.as_deref(), a.ssm.as_deref(), a.site.as_deref())?;
    if let (Some(cert), Some(key)) = (&a.certificate, &a.key) {
        imported.use_host_credentials(cert, key);
    }
    let sources: Vec<&std::path::Path> =
        [&a.caso, &a.ssm, &a.site].into_iter().flatten().map(|p| p.as_path()).collect();
    let text = siteconf::render(&imported, &sources)?;
    match &a.output {
        None => print!("{text}"),
        Some(out) => {
            if out.exists() && !a.force {
                bail!("{} exists; --force replaces it", out.display());
            }
            write_private(out, text.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
            eprintln!("fedsite: wrote {}", out.display());
        }
    }
    for n in &imported.not_carried {
        eprintln!("fedsite: not carried over: {n}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to `path` through a temporary file, mode 0600 from the start.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("fedsite.toml")));
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn check(a: CheckArgs) -> Result<ExitCode> {
    let path =
        super::config_path().context("no configuration to check: give --config fedsite.toml (or FEDSITE_CONFIG)")?;
    let config = Config::load(&path)?;
    let findings = siteconf::check(&config, &openstack::config::process_env(), &std::env::current_dir()?);
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    if a.json {
        let items: Vec<_> = findings
            .iter()
            .map(|f| serde_json::json!({"level": if f.level == Level::Error {"error"} else {"warning"}, "key": f.key, "message": f.message}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"file": path, "findings": items}))?);
    } else {
        for f in &findings {
            println!("{f}");
        }
        println!("{}: {} error(s), {} warning(s)", path.display(), errors, findings.len() - errors);
    }
    Ok(if errors > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
