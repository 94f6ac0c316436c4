//! Errors of the image sync: configuration, a source (registry, image list),
//! one image (download, checksum, conversion, Glance), with what and where.

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("configuration: {0}")]
    Config(String),
    /// A whole source could not be read or trusted; nothing from it is used.
    #[error("source {source_name}: {message}")]
    Source { source_name: String, message: String },
    #[error("downloading {url}: {message}")]
    Download { url: String, message: String },
    /// The server answered an error status (401: the token was refused).
    #[error("downloading {url}: HTTP {status}")]
    DownloadStatus { url: String, status: u16 },
    #[error("{what}: checksum mismatch: expected {expected}, got {actual}")]
    Checksum { what: String, expected: String, actual: String },
    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    Size { what: String, expected: u64, actual: u64 },
    #[error("converting {path} to {format}: {message}")]
    Convert { path: String, format: String, message: String },
    #[error("Glance: {0}")]
    Glance(#[from] openstack::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl SyncError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> SyncError {
        SyncError::Io { what: what.into(), source }
    }
}
