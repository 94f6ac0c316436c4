//! Central operations of a federation, as EGI runs cloud-info-provider, image sync and
//! accounting for every site from one place (issue #15). Owns the credentials the central
//! deployment logs in with ([`credentials`]) and the run of tasks for every site of a sites
//! folder ([`run`]), once or every interval from replicas sharing a PostgreSQL ledger
//! ([`schedule`]), on top of the `sites` crate (the sites folder).

#![warn(missing_docs)]

pub mod accounting;
pub mod credentials;
pub mod plan;
pub mod run;
pub mod schedule;
pub mod status;

pub use credentials::{
    AccessToken, AppCredential, CheckinConfig, CheckinToken, CredentialError, SecretsDir, Vault, VoLogin,
    vo_cloud_config,
};
