//! `fedsite images sync`'s configuration: the catch-all site file from `--site`, else
//! fedsite.toml's `[site] catchall_yaml`; the `[images]` section of fedsite.toml (the global
//! `--config`); `--cache-dir` over both (docs/imagesync.md). Owns only where each part comes
//! from; `imagesync::SyncConfig::build` merges the site file and `[images]`.

use std::path::Path;

use imagesync::SyncConfig;

use crate::Error;
use crate::resolve::Config;

/// What `fedsite images sync`'s command line says.
#[derive(Debug, Clone, Default)]
pub struct ImagesFlags<'a> {
    /// `--site sites/<SITE>.yaml`.
    pub site: Option<&'a Path>,
    /// `--cache-dir`.
    pub cache_dir: Option<&'a Path>,
}

/// The sync configuration from `flags` and fedsite.toml (`config`: the global `--config`, or
/// the default file when it exists).
pub fn sync_config(flags: &ImagesFlags<'_>, config: Option<&Path>) -> Result<SyncConfig, Error> {
    let file = config.map(Config::load).transpose()?;
    let site =
        flags.site.map(Path::to_path_buf).or_else(|| file.as_ref().and_then(|f| f.toml.site.catchall_yaml.clone()));
    if site.is_none() && config.is_none() {
        return Err(Error::NoImagesSource);
    }
    let site = site.as_deref().map(imagesync::config::read_site).transpose()?;
    let toml = match config {
        Some(p) => imagesync::config::read_toml(p)?,
        None => None,
    };
    let mut cfg = SyncConfig::build(site, toml)?;
    if let Some(c) = flags.cache_dir {
        cfg.cache_dir = c.to_path_buf();
    }
    Ok(cfg)
}
