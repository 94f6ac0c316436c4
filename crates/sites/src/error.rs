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
    #[error("reading the sites folder {dir}")]
    Dir { dir: PathBuf, source: std::io::Error },
    #[error("{file}: {reason}")]
    VoMappings { file: PathBuf, reason: String },
}
