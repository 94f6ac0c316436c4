//! `fedsite serve`'s settings: the ledger (flag or `FEDSITE_LEDGER`, else fedsite.toml's
//! `[ledger] path`, else the default), the spools whose counts it serves (flag, else every
//! fedsite.toml `[[destination]]`'s, else `[spool] path`), and the command lines of the extract and send runs it makes
//! every `--every`, each given the serve's ledger unless it names its own
//! (docs/configuration.md, docs/metrics.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Error;
use crate::resolve::{Config, ledger_path};

/// What `fedsite serve`'s command line says.
#[derive(Debug, Clone, Default)]
pub struct ServeFlags<'a> {
    pub ledger: Option<&'a Path>,
    pub spool: Option<&'a Path>,
    /// `--extract-arg` values, in order.
    pub extract_args: &'a [String],
    /// `--send-arg` values, in order.
    pub send_args: &'a [String],
}

/// The resolved settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServePlan {
    pub ledger: PathBuf,
    /// `None`: no spool metrics.
    pub spool: Option<PathBuf>,
    /// With several fedsite.toml `[[destination]]` tables and no `--spool`: every
    /// destination's spool, served with a `destination` label instead of `spool`'s gauges.
    pub destination_spools: Vec<crate::resolve::DestinationSpool>,
    /// The extract run's arguments (as `fedsite accounting extract` takes them), `--ledger`
    /// added unless given; `None` when no `--extract-arg` was given.
    pub extract_argv: Option<Vec<String>>,
    /// The send run's arguments (as `fedsite send` takes them), likewise.
    pub send_argv: Option<Vec<String>>,
}

impl ServePlan {
    /// Whether an interval and the runs go together: runs need `--every`, `--every` needs a run.
    pub fn check_schedule(&self, every: Option<Duration>) -> Result<(), Error> {
        let runs = self.extract_argv.is_some() || self.send_argv.is_some();
        match (every, runs) {
            (None, true) => Err(Error::Flag { flag: "--extract-arg/--send-arg".into(), reason: "need --every".into() }),
            (Some(_), false) => Err(Error::Flag {
                flag: "--every".into(),
                reason: "needs --extract-arg and/or --send-arg (what to run)".into(),
            }),
            _ => Ok(()),
        }
    }
}

/// The flags over fedsite.toml (`file`) over the defaults.
pub fn serve_plan(flags: &ServeFlags<'_>, file: Option<&Config>) -> ServePlan {
    let ledger = ledger_path(flags.ledger, file);
    let spool = flags.spool.map(Path::to_path_buf).or_else(|| file.map(Config::spool));
    let destination_spools = match (flags.spool, file) {
        (None, Some(f)) => f.destination_spools(),
        _ => Vec::new(),
    };
    let stage = |args: &[String]| (!args.is_empty()).then(|| with_ledger(args, &ledger));
    ServePlan {
        extract_argv: stage(flags.extract_args),
        send_argv: stage(flags.send_args),
        spool,
        destination_spools,
        ledger,
    }
}

/// The stage's arguments, with `--ledger` added unless given.
fn with_ledger(args: &[String], ledger: &Path) -> Vec<String> {
    let mut v = args.to_vec();
    if !v.iter().any(|a| a == "--ledger" || a.starts_with("--ledger=")) {
        v.push(format!("--ledger={}", ledger.display()));
    }
    v
}
