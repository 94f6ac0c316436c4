//! Image sync: VM images from an OCI registry (Harbor style, as
//! registry.egi.eu) and from S/MIME-signed HEPiX image lists into Glance,
//! verified, converted, shared per VO and expired — what atrope does.
//!
//! - [`config`]: `sites/*.yaml` `images.*` + `fedsite.toml` `[images]`;
//! - [`harbor`] (REST API listing), [`oci`] (registry API, plain-registry
//!   listing), [`auth`] (Harbor's token flow, Basic), [`hepix`]: the
//!   sources, as [`source::SourceImage`]s;
//! - [`download`]: the digest-keyed cache and resumable, verified downloads;
//! - [`sync`]: plan (add / update / metadata / share / unshare / remove) and apply.

pub mod auth;
pub mod config;
pub mod download;
pub mod error;
pub mod harbor;
pub mod hepix;
pub mod oci;
pub mod source;
pub mod sync;

pub use config::SyncConfig;
pub use error::SyncError;
pub use sync::{Action, Report, RunOptions, Syncer};
