//! `fedsite bench`: the benchmark is a program of its own, `fedsite-bench` (crates/bench), kept
//! out of this binary and its package (docs/decisions.md). As git and cargo run their external
//! subcommands, `fedsite bench ARGS` runs `fedsite-bench ARGS`, found beside this binary, else
//! on PATH, with this binary as the fedsite it measures; absent, the error says what to build.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::Args;

/// The benchmark's program.
pub const BENCH: &str = "fedsite-bench";
/// What `fedsite-bench` reads to find the fedsite it drives (crates/bench).
const FEDSITE_EXE_ENV: &str = "FEDSITE_EXE";

#[derive(Debug, Args)]
#[command(disable_help_flag = true, disable_version_flag = true)]
pub struct BenchArgs {
    /// Arguments of fedsite-bench (`fedsite bench --help` shows them; docs/performance.md).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., value_name = "ARGS")]
    pub args: Vec<OsString>,
}

/// `fedsite-bench` beside `exe`, else the first on `path` (a PATH value).
pub fn find(exe: &std::path::Path, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let beside = exe.parent().map(|d| d.join(BENCH)).filter(|p| p.is_file());
    beside.or_else(|| path.into_iter().flat_map(std::env::split_paths).map(|d| d.join(BENCH)).find(|p| p.is_file()))
}

/// Replaces this process with `fedsite-bench args`; the log filter and format fedsite resolved
/// go along (`FEDSITE_LOG`, `FEDSITE_LOG_FORMAT`), the arguments win over them.
pub fn exec_bench(args: BenchArgs, log: &str, log_format: &str) -> Result<ExitCode> {
    let me = std::env::current_exe().context("locating the fedsite binary")?;
    let Some(bench) = find(&me, std::env::var_os("PATH").as_deref()) else {
        bail!(
            "`fedsite bench` runs {BENCH}, which is not beside {} nor on PATH: build it with \
             `cargo build --release -p bench` (docs/performance.md)",
            me.display()
        );
    };
    let err = Command::new(&bench)
        .args(&args.args)
        .env(FEDSITE_EXE_ENV, &me)
        .env("FEDSITE_LOG", log)
        .env("FEDSITE_LOG_FORMAT", log_format)
        .exec();
    Err(err).with_context(|| format!("running {}", bench.display()))
}
