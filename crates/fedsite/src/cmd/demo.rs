//! `fedsite demo`: start the simulated site in-process and run the pipeline
//! that exists against it, printing a summary. Each capability extends it.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::Timelike;
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
    let work = tempfile_dir()?;
    let mut config = sim::SimConfig::new(scenario);
    config.ams = Some(sim::AmsConfig::new(work.join("ams")));
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

    println!("\n== Accounting (the accounting account: reader on every project and on the system)");
    let reader_cloud =
        CloudConfig::from_clouds_yaml(&handle.clouds_yaml(), None, "sim-accounting", "simulator clouds.yaml")?;
    let reader = Session::connect(&reader_cloud).await.context("authenticating as the accounting account")?;
    let to = handle.now().with_nanosecond(0).expect("0 ns");
    let window = apel::Window::new(to - chrono::Duration::days(30), to).expect("30 days");
    let mut cfg = accounting::ExtractConfig::new(
        apel::SiteName::new("DEMO-SITE").expect("valid"),
        apel::ApelText::lossy("DEMO-SITE-cloud"),
    );
    cfg.cloud_type = apel::ApelText::lossy(concat!("fedsite/", env!("CARGO_PKG_VERSION"), " (OpenStack)"));
    let spool = accounting::pipeline::SpoolConfig::new(work.join("spool"));
    let ledger = ledger::Ledger::open(work.join("ledger.sqlite"))?;
    let (report, mut ledger) =
        accounting::pipeline::run(&reader, &cfg, ledger, accounting::pipeline::Windows::Fixed(window), &spool).await?;
    let ok = report.projects.iter().filter(|p| p.error.is_none()).count();
    let messages: usize = report.projects.iter().map(|p| p.messages.len()).sum();
    println!(
        "window {} → {}: {} of {} projects extracted, {} messages spooled in {}",
        window.from().format("%Y-%m-%d"),
        window.to().format("%Y-%m-%d"),
        ok,
        report.projects.len(),
        messages,
        spool.spool().display()
    );
    for p in report.projects.iter().filter(|p| p.error.is_some()) {
        println!(
            "  {} ({}): {}",
            p.project_id,
            p.project_name.as_deref().unwrap_or("?"),
            p.error.as_deref().unwrap_or("")
        );
    }
    let rows = ledger.usage_summary(
        &ledger::SnapshotFilter::default(),
        ledger::SummaryGroup { vo: true, project: false, month: true },
    )?;
    println!("\n{:<24} {:<8} {:>9} {:>12} {:>12}", "VO", "MONTH", "VM-MONTHS", "WALL h", "CPU h");
    for r in rows {
        println!(
            "{:<24} {:<8} {:>9} {:>12.1} {:>12.1}",
            r.vo.as_deref().unwrap_or("-"),
            r.month.as_deref().unwrap_or("-"),
            r.records,
            r.wall_seconds as f64 / 3600.0,
            r.cpu_seconds as f64 / 3600.0
        );
    }
    let by_kind: std::collections::BTreeMap<&str, usize> =
        report.projects.iter().flat_map(|p| p.spooled.iter()).fold(Default::default(), |mut m, (k, n)| {
            *m.entry(*k).or_default() += n;
            m
        });
    let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!("records spooled: {}", kinds.join(", "));

    println!("\n== Delivery: sign (S/MIME) → AMS (simulated, X.509 token) → receive, verify, store");
    let delivery = super::send::deliver_via_sim(&handle, spool.spool(), Some(&mut ledger), &work)
        .await
        .context("delivering the spool to the simulated AMS")?;
    println!("{}", delivery.sent.summary());
    println!("{}", delivery.received.summary());
    println!("\nAPEL's view (cloud summaries as the APEL server computes them):");
    super::receive::print_summaries(&delivery.summaries);

    println!("\n== Images (dry run: the simulated registry into the simulated Glance, raw only)");
    let vos = inv.projects.iter().filter_map(|p| p.vo.as_ref().map(|(vo, _)| (vo.clone(), p.id.clone())));
    match super::images::demo_plan(&handle, &session, vos, &work.join("images")).await {
        Ok(r) => {
            for a in &r.plan {
                println!("would {a}");
            }
            println!(
                "would sync {} images ({} entries skipped, {} errors)",
                r.plan
                    .iter()
                    .filter(|a| matches!(a, imagesync::Action::Add { .. } | imagesync::Action::Update { .. }))
                    .count(),
                r.skipped.len(),
                r.errors.len()
            );
        }
        Err(e) => println!("image sync plan failed: {e:#}"),
    }
    println!("\n== Information system: GLUE 2.1 JSON (cloud-info-provider) → Swift");
    super::info::demo_summary(&handle).await.context("describing the site (fedsite info)")?;

    let (mut calls, mut retries) = (0, 0);
    for c in session.counters().values().chain(reader.counters().values()) {
        calls += c.calls;
        retries += c.retries;
    }
    println!("\n{} API calls ({} retries) in {:.2} s", calls, retries, started.elapsed().as_secs_f64());
    handle.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// A fresh directory for the demo's ledger and spool, kept after the run so
/// they can be looked at.
fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("fedsite-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
