//! fedsite's native configuration, `fedsite.toml`: the schema ([`model`]),
//! its resolution into what the library crates take ([`resolve`]), the
//! checks of `fedsite config check` ([`check`]) and the import from the
//! files a site already has — `caso.conf`, `sender.cfg`, the catch-all
//! `sites/*.yaml` ([`import`]).

pub mod check;
pub mod import;
pub mod model;
pub mod resolve;

use std::path::{Path, PathBuf};

pub use check::{Finding, Level, check};
pub use import::{Imported, import, render};
pub use model::FedsiteToml;
pub use resolve::Config;

/// A configuration that cannot be used; names the file and, when known, the key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: {reason}")]
    File { file: PathBuf, reason: String },
    #[error("{file}: {key}: {reason}")]
    Key { file: PathBuf, key: String, reason: String },
    /// A command-line value that cannot be used.
    #[error("{flag} {reason}")]
    Flag { flag: String, reason: String },
    /// A setting no flag and no file gives: `no {what}: {sources}`.
    #[error("no {what}: {sources}")]
    Missing { what: &'static str, sources: &'static str },
    /// `images sync` with neither a site file nor a fedsite.toml.
    #[error("give --site sites/<SITE>.yaml and/or --config fedsite.toml (with [images])")]
    NoImagesSource,
    /// The image sync's own configuration (site file, `[images]`).
    #[error(transparent)]
    Images(#[from] imagesync::SyncError),
    /// An SSM configuration file (sender.cfg, receiver.cfg) that cannot be read.
    #[error("reading {}", file.display())]
    Ssm {
        file: PathBuf,
        #[source]
        source: messaging::config::ConfigError,
    },
    /// SSM's sender.cfg given to `send` (`--sender-cfg`) that cannot be read.
    #[error(transparent)]
    SenderCfg(#[from] messaging::config::ConfigError),
    /// AMS client settings that cannot be used (a bad URL).
    #[error(transparent)]
    Ams(#[from] messaging::ams::AmsError),
    /// cASO's caso.conf (`--caso-conf`) that cannot be used.
    #[error(transparent)]
    Caso(#[from] accounting::casoconf::CasoConfError),
    /// clouds.yaml or `OS_*` credentials that cannot be used.
    #[error(transparent)]
    Cloud(#[from] openstack::ConfigError),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn file(file: &Path, reason: impl Into<String>) -> Error {
        Error::File { file: file.to_path_buf(), reason: reason.into() }
    }
    pub(crate) fn key(file: &Path, key: &str, reason: impl Into<String>) -> Error {
        Error::Key { file: file.to_path_buf(), key: key.into(), reason: reason.into() }
    }
}
