//! The crate's typed errors: a value that fails its check ([`InvalidValue`]),
//! a folder or vo-mappings file that cannot be used at all ([`LoadError`]).
//! Problems inside one site file are not errors of this kind: they are
//! [`crate::Finding`]s, so one broken file never hides another.

use std::path::PathBuf;

/// A value that is not what its key requires; the message is the reason
/// (the caller adds the file and key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct InvalidValue {
    /// Why the value is refused, e.g. what it must look like.
    pub reason: String,
}

impl InvalidValue {
    pub(crate) fn new(reason: impl Into<String>) -> InvalidValue {
        InvalidValue { reason: reason.into() }
    }
}

/// A sites folder or vo-mappings file that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The folder cannot be listed.
    #[error("reading the sites folder {dir}")]
    Dir {
        /// The folder.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `vo-mappings.yaml` cannot be read or parsed.
    #[error("{file}: {reason}")]
    VoMappings {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
}
