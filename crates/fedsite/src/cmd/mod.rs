//! One module per subcommand, and the global `--config` (fedsite.toml)
//! every subcommand can read.

pub mod accounting;
pub mod central;
pub mod check;
pub mod config;
pub mod demo;
pub mod external;
pub mod images;
pub mod info;
pub mod inventory;
pub mod keystone;
pub mod probe;
pub mod receive;
pub mod report;
pub mod send;
pub mod serve;
pub mod sim;
pub mod spool;

use std::path::PathBuf;
use std::sync::OnceLock;

/// Exit code of a `send` stopped by a failure every message would meet (wrong URL, project,
/// topic or credentials, AMS unreachable): nothing quarantined, every element left (docs/cli.md).
pub const EXIT_STOPPED: u8 = 3;
/// Exit code when another run holds the lock of the ledger, spool or store (EX_TEMPFAIL).
pub const EXIT_LOCKED: u8 = 75;

/// The exit code of a command that failed with `e`: [`EXIT_LOCKED`] when a run lock was busy.
pub fn error_exit_code(e: &anyhow::Error) -> std::process::ExitCode {
    std::process::ExitCode::from(error_code(e))
}

/// [`error_exit_code`] as a number.
pub fn error_code(e: &anyhow::Error) -> u8 {
    let busy = e.chain().any(|c| matches!(c.downcast_ref::<ledger::LockError>(), Some(ledger::LockError::Busy { .. })));
    if busy { EXIT_LOCKED } else { 1 }
}

static CONFIG_PATH: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Records the global `--config` once, at start.
pub fn set_config_path(path: Option<PathBuf>) {
    let _ = CONFIG_PATH.set(path);
}

/// The global `--config` path (or `FEDSITE_CONFIG`), else /etc/fedsite/fedsite.toml when it
/// exists (docs/configuration.md).
pub fn config_path() -> Option<PathBuf> {
    CONFIG_PATH.get().cloned().flatten().or_else(|| {
        let default = PathBuf::from(siteconf::resolve::DEFAULT_CONFIG);
        default.is_file().then_some(default)
    })
}

/// The loaded fedsite.toml, if `--config` (or FEDSITE_CONFIG) names one.
pub fn site_config() -> anyhow::Result<Option<siteconf::Config>> {
    Ok(config_path().map(|p| siteconf::Config::load(&p)).transpose()?)
}
