//! `fedsite inventory`: what a site holds, through the OpenStack APIs.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use openstack::{CloudConfig, Session};
use sitecheck::inventory::{self, Inventory};

#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Cloud of clouds.yaml to use (as `openstack --os-cloud`); OS_* variables
    /// when neither this nor OS_CLOUD is set.
    #[arg(long, env = "OS_CLOUD")]
    pub os_cloud: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: InventoryArgs) -> Result<ExitCode> {
    let config = CloudConfig::load(args.os_cloud.as_deref())?;
    let session = Session::connect(&config).await.with_context(|| format!("authenticating to {}", config.auth_url))?;
    let inv = inventory::gather(&session).await.context("reading the site inventory")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&inv)?);
    } else {
        print!("{}", render(&inv));
    }
    Ok(ExitCode::SUCCESS)
}

/// The inventory as a human-readable report.
pub fn render(inv: &Inventory) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let servers: usize = inv.servers_by_status.values().sum();
    let _ = writeln!(
        out,
        "{} projects, {} servers, {} volumes ({} GiB), {} floating IPs, {} flavors, {} images",
        inv.projects.len(),
        servers,
        inv.volumes,
        inv.volume_gib,
        inv.floating_ips.values().sum::<usize>(),
        inv.flavors,
        inv.images
    );
    let statuses: Vec<String> = inv.servers_by_status.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let _ = writeln!(out, "servers by status: {}", statuses.join(", "));
    let fips: Vec<String> = inv.floating_ips.iter().map(|(v, n)| format!("IPv{v} {n}")).collect();
    let _ = writeln!(out, "floating IPs: {}", if fips.is_empty() { "none".into() } else { fips.join(", ") });
    let _ = writeln!(
        out,
        "flavors: {} public, {} with a benchmark, {} with GPUs; images: {} from the marketplace",
        inv.public_flavors, inv.flavors_with_benchmark, inv.gpu_flavors, inv.marketplace_images
    );
    let without_vo = inv.projects.iter().filter(|p| p.vo.is_none()).count();
    let _ = writeln!(out, "projects without a VO property: {without_vo}");
    let shown = 20;
    let _ = writeln!(
        out,
        "\n{:<34} {:<22} {:<24} {:>7} {:>7} {:>4}",
        "PROJECT", "NAME", "VO", "SERVERS", "VOLUMES", "FIPS"
    );
    for p in inv.projects.iter().take(shown) {
        let vo = p.vo.as_ref().map(|(vo, _)| vo.as_str()).unwrap_or("-");
        let _ = writeln!(
            out,
            "{:<34} {:<22} {:<24} {:>7} {:>7} {:>4}",
            p.id, p.name, vo, p.servers, p.volumes, p.floating_ips
        );
    }
    if inv.projects.len() > shown {
        let _ = writeln!(out, "… and {} more projects (--json lists all)", inv.projects.len() - shown);
    }
    out
}
