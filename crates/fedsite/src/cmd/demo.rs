//! `fedsite demo`: start the simulated site in-process and run the pipeline
//! that exists against it, printing a summary. Each capability extends it.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use openstack::{CloudConfig, Session};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Built-in scenario to run on.
    #[arg(long, default_value = "small")]
    pub scenario: String,
    #[command(flatten)]
    pub behaviour: super::sim::BehaviourArgs,
}

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let scenario = super::sim::load_scenario(&args.scenario, None)?;
    let mut config = sim::SimConfig::new(scenario);
    config.profiles = args.behaviour.profiles()?;
    config.fault_seed = args.behaviour.fault_seed;
    let handle = sim::start(config).await?;
    println!(
        "simulated site '{}' at {} (site time {})",
        args.scenario,
        handle.base_url(),
        handle.now().format("%Y-%m-%dT%H:%M:%SZ")
    );

    let cloud = CloudConfig::from_clouds_yaml(&handle.clouds_yaml(), None, "sim", "simulator clouds.yaml")?;
    let session = Session::connect(&cloud).await.context("authenticating to the simulated site")?;
    println!("\n== Inventory (admin view through the OpenStack APIs)");
    let inv = sitecheck::inventory::gather(&session).await.context("reading the site inventory")?;
    print!("{}", super::inventory::render(&inv));

    let counts = session.counters();
    let calls: u64 = counts.values().map(|c| c.calls).sum();
    let retries: u64 = counts.values().map(|c| c.retries).sum();
    println!(
        "\n{} API calls ({} retries) in {:.2} s",
        calls,
        retries,
        started.elapsed().as_secs_f64()
    );
    handle.stop().await;
    Ok(ExitCode::SUCCESS)
}
