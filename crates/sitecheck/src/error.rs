//! The errors of the site check's building blocks. A check turns them into
//! its message (`Check::critical(.., e.to_string(), ..)`); the texts are the
//! ones the checks have always shown.

use std::path::PathBuf;

/// One TCP connection attempt ([`crate::ports::connect`]).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {secs} s (filtered?)")]
    Timeout { secs: f32 },
}

/// Building the HTTP client that trusts what the cloud configuration trusts
/// ([`crate::catalog::http_client`]).
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error("reading {}: {source}", path.display())]
    ReadCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    BadCa {
        path: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error("building the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// Why a URL did not answer with a version document
/// ([`crate::catalog::fetch_version_doc`]).
#[derive(Debug, thiserror::Error)]
pub enum VersionDocError {
    /// The request failed: the error with its causes.
    #[error("{0}")]
    Request(String),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("HTTP {0} but the body is not JSON")]
    NotJson(u16),
    #[error("HTTP {0} but no version document (no version/versions in the JSON)")]
    NoVersion(u16),
}

/// Why a PEM private key cannot be used ([`crate::certificate::read_private_key`]);
/// `origin` names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{origin} is an encrypted private key: the sender needs it unencrypted (openssl pkey -in {origin} -out {origin})"
    )]
    Encrypted { origin: String },
    #[error("{origin} is not a PEM private key: {source}")]
    NotPem {
        origin: String,
        #[source]
        source: openssl::error::ErrorStack,
    },
}

/// A `--vo` value that is neither `VO` nor `VO=PROJECT` ([`crate::VoSpec::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{spec:?}: expected VO or VO=PROJECT")]
pub struct VoSpecError {
    pub spec: String,
}

/// Reading delivery facts from the ledger ([`crate::accounting::ledger_facts`]).
#[derive(Debug, thiserror::Error)]
pub enum LedgerFactsError {
    #[error("ledger {0} does not exist")]
    Missing(String),
    #[error("{0}")]
    Ledger(#[from] ledger::Error),
    #[error("reading the ledger: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Applying the Keystone federation setup ([`crate::federation::apply`]).
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// A Keystone request failed; `what` is the step (`listing roles`, `creating the mapping`, …).
    #[error("{what}: {source}")]
    Request {
        what: &'static str,
        #[source]
        source: openstack::Error,
    },
    #[error("role {0} does not exist")]
    NoRole(String),
    #[error("project {project} of VO {vo} does not exist: openstack project create --property egi.VO={vo} {project}")]
    NoProject { project: String, vo: String },
}
