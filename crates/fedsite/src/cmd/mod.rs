//! One module per subcommand, and the global `--config` (fedsite.toml)
//! every subcommand can read.

pub mod accounting;
pub mod check;
pub mod config;
pub mod bench;
pub mod demo;
pub mod images;
pub mod info;
pub mod inventory;
pub mod keystone;
pub mod receive;
pub mod report;
pub mod send;
pub mod serve;
pub mod sim;
pub mod spool;

use std::path::PathBuf;
use std::sync::OnceLock;

static CONFIG_PATH: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Records the global `--config` once, at start.
pub fn set_config_path(path: Option<PathBuf>) {
    let _ = CONFIG_PATH.set(path);
}

/// The global `--config` path, if given.
pub fn config_path() -> Option<PathBuf> {
    CONFIG_PATH.get().cloned().flatten()
}

/// The loaded fedsite.toml, if `--config` (or FEDSITE_CONFIG) names one.
pub fn site_config() -> anyhow::Result<Option<siteconf::Config>> {
    Ok(config_path().map(|p| siteconf::Config::load(&p)).transpose()?)
}
