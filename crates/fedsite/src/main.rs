//! The `fedsite` command line: parses arguments and wires the library crates
//! together. Each subcommand lives in its own module under `cmd/`; nothing
//! here knows an API or a format.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// fedsite: make an OpenStack site a well-behaved member of the EGI
/// Federated Cloud.
#[derive(Debug, Parser)]
#[command(name = "fedsite", version, about, long_about = None)]
struct Cli {
    /// Log level filter (error, warn, info, debug, trace, or a
    /// tracing-subscriber directive). Logs go to stderr.
    #[arg(long, global = true, env = "FEDSITE_LOG", default_value = "info")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a simulated OpenStack site and print a clouds.yaml for it.
    Sim(cmd::sim::SimArgs),
    /// Start the simulated site in-process and run the pipeline against it.
    Demo(cmd::demo::DemoArgs),
    /// Accounting: extract APEL records into the ledger and the spool,
    /// republish a period, inspect the ledger.
    Accounting(cmd::accounting::AccountingArgs),
    /// Show what a site holds: projects, VOs, flavors, servers, volumes,
    /// floating IPs and images, read through the OpenStack APIs.
    Inventory(cmd::inventory::InventoryArgs),
    /// Send the outgoing spool to AMS once, as cron runs ssmsend (reads SSM's sender.cfg).
    Send(cmd::send::SendArgs),
    /// Pull accounting messages from an AMS subscription, verify and store them.
    Receive(cmd::receive::ReceiveArgs),
    /// Inspect the outgoing spool and its quarantine.
    Spool(cmd::spool::SpoolArgs),
    /// Benchmark fedsite against cASO and SSM on the simulated site (docs/performance.md).
    Bench(cmd::bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fedsite: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sim(args) => cmd::sim::run(args).await,
            Command::Demo(args) => cmd::demo::run(args).await,
            Command::Inventory(args) => cmd::inventory::run(args).await,
            Command::Accounting(args) => cmd::accounting::run(args).await,
            Command::Send(args) => cmd::send::run(args).await,
            Command::Receive(args) => cmd::receive::run(args).await,
            Command::Spool(args) => cmd::spool::run(args).await,
            Command::Bench(args) => cmd::bench::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fedsite: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
