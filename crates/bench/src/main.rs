//! `fedsite-bench`: fedsite side by side with the tools it replaces, on the simulated site
//! (docs/performance.md). A program of its own, outside the shipped `fedsite` binary and its
//! package; `fedsite bench …` runs it (docs/decisions.md). It owns the measuring (`bench`:
//! wait4, the census, the table and JSON; `bench_central`: the federation's information task)
//! and drives the `fedsite` binary it finds (`fedsite_exe`) as child processes: the sim, the
//! extraction and the sending it measures.

mod bench;
mod bench_central;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;

/// The environment variable `fedsite bench` sets to its own path, so that the sim and the
/// measured runs are that very fedsite.
pub const FEDSITE_EXE_ENV: &str = "FEDSITE_EXE";

/// Benchmark fedsite against cASO and SSM on the simulated site (docs/performance.md).
#[derive(Debug, Parser)]
#[command(name = "fedsite-bench", version, about, long_about = None)]
struct Cli {
    /// Log level filter (error, warn, info, debug, trace, or a tracing-subscriber directive).
    #[arg(long, env = "FEDSITE_LOG", default_value = "info")]
    log: String,
    /// Log format: text on a terminal, JSON lines otherwise (auto), or forced.
    #[arg(long, env = "FEDSITE_LOG_FORMAT", value_enum, default_value = "auto")]
    log_format: LogFormat,
    /// Only errors (same as --log error).
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// More detail: -v debug, -vv trace.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(flatten)]
    args: bench::BenchArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Auto,
    Text,
    Json,
}

/// The `fedsite` binary the bench drives: `FEDSITE_EXE` (set by `fedsite bench`), else the
/// `fedsite` beside this program (a cargo target directory, /usr/bin), else one on PATH.
pub fn fedsite_exe() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(FEDSITE_EXE_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe().context("locating the fedsite-bench binary")?;
    if let Some(beside) = me.parent().map(|d| d.join("fedsite")).filter(|p| p.is_file()) {
        return Ok(beside);
    }
    let on_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("fedsite"))
        .find(|p| p.is_file());
    match on_path {
        Some(p) => Ok(p),
        None => bail!(
            "no fedsite binary beside {} nor on PATH: build it (cargo build --release -p fedsite) or set {FEDSITE_EXE_ENV}",
            me.display()
        ),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match (cli.quiet, cli.verbose) {
        (true, _) => "error".to_string(),
        (false, 0) => cli.log.clone(),
        (false, 1) => "debug".to_string(),
        (false, _) => "trace".to_string(),
    };
    init_logging(&filter, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fedsite-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench::run(cli.args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fedsite-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, as fedsite's: text on a terminal, JSON lines otherwise.
fn init_logging(filter: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}
