//! `fedsite images sync [--dry-run]`: VM images from the OCI registry and
//! signed HEPiX lists into Glance (imagesync), configured from a catch-all
//! `sites/<SITE>.yaml` (`images.sync`, `images.formats`, `vos`) and/or the
//! `[images]` section of a fedsite.toml.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use imagesync::{Report, RunOptions, SyncConfig, Syncer};
use openstack::{CloudConfig, Session};

#[derive(Debug, Args)]
pub struct ImagesArgs {
    #[command(subcommand)]
    pub command: ImagesCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Sync images into Glance: add, update, share, unshare, remove.
    Sync(SyncArgs),
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The catch-all site file (`images.sync`, `images.formats`, `vos[].auth.project_id`);
    /// default: fedsite.toml's `[site] catchall_yaml`. The `[images]` section of
    /// fedsite.toml (global --config) adds the registry, HEPiX lists, cache and tag.
    #[arg(long)]
    pub site: Option<PathBuf>,
    /// Cloud of clouds.yaml, scoped to the project owning the images (as `openstack --os-cloud`).
    #[arg(long, env = "OS_CLOUD")]
    pub os_cloud: Option<String>,
    /// Only print the plan (add / update / metadata / share / unshare / remove).
    #[arg(long)]
    pub dry_run: bool,
    /// Cache directory (overrides the configuration).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

pub async fn run(args: ImagesArgs) -> Result<ExitCode> {
    match args.command {
        ImagesCommand::Sync(a) => sync(a).await,
    }
}

async fn sync(args: SyncArgs) -> Result<ExitCode> {
    let flags =
        siteconf::resolve::images::ImagesFlags { site: args.site.as_deref(), cache_dir: args.cache_dir.as_deref() };
    let cfg = siteconf::resolve::images::sync_config(&flags, super::config_path().as_deref())?;
    if !cfg.enabled {
        println!("images.sync is false: nothing to do");
        return Ok(ExitCode::SUCCESS);
    }
    let cloud = CloudConfig::load(args.os_cloud.as_deref())?;
    let session = Session::connect(&cloud).await.with_context(|| format!("authenticating to {}", cloud.auth_url))?;
    // Each VO's own credentials (images.vo_clouds), for private images and accepting shares.
    let mut vo_sessions = std::collections::BTreeMap::new();
    for (vo, name) in &cfg.vo_clouds {
        let c = CloudConfig::load(Some(name)).with_context(|| format!("images.vo_clouds.{vo}: cloud {name}"))?;
        let s = Session::connect(&c)
            .await
            .with_context(|| format!("images.vo_clouds.{vo}: authenticating to {} as cloud {name}", c.auth_url))?;
        vo_sessions.insert(vo.clone(), s);
    }
    let refs = vo_sessions.iter().map(|(k, v)| (k.clone(), v)).collect();
    let report = Syncer::new(&cfg, &session)
        .with_vo_sessions(refs)
        .run(&RunOptions { dry_run: args.dry_run, now: None })
        .await?;
    print_report(&report);
    Ok(if report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub fn print_report(r: &Report) {
    if r.plan.is_empty() {
        println!("nothing to do: Glance matches the sources");
    }
    for a in &r.plan {
        println!("{}{a}", if r.dry_run { "would " } else { "" });
    }
    for s in &r.skipped {
        println!("skipped  {}: {}", s.item, s.message);
    }
    for e in &r.errors {
        println!("error    {}: {}", e.item, e.message);
    }
    if !r.dry_run {
        println!("{}", r.summary());
    }
}

/// `fedsite demo`: what a sync from the simulated registry (a Harbor, read
/// with its robot account) into the simulated Glance would do (dry run; VO
/// projects from the inventory).
pub async fn demo_plan(
    handle: &sim::SimHandle,
    session: &Session,
    vos: impl IntoIterator<Item = (String, String)>,
    cache: &std::path::Path,
) -> Result<Report> {
    let toml = format!(
        "[images]\nsync = true\nformats = [\"raw\"]\nname_prefix = \"registry.egi.eu \"\n[images.registry]\nurl = \"{}\"\nusername = \"{}\"\npassword = \"{}\"\n",
        handle.base_url(),
        sim::harbor::ROBOT_USER,
        sim::harbor::ROBOT_PASSWORD,
    );
    let mut cfg = SyncConfig::build(None, imagesync::config::parse_toml(&toml, "demo")?)?;
    cfg.vos = vos.into_iter().collect();
    cfg.cache_dir = cache.to_path_buf();
    cfg.progress = false;
    Ok(Syncer::new(&cfg, session).run(&RunOptions { dry_run: true, now: None }).await?)
}
