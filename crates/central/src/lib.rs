//! Central operations of a federation, as EGI runs cloud-info-provider, image sync and
//! accounting for every site from one place (issue #15). Owns the credentials the central
//! deployment logs in with ([`credentials`]); the per-site runs build on it and on the `sites`
//! crate (the sites folder).

pub mod credentials;

pub use credentials::{AccessToken, AppCredential, CheckinConfig, CheckinToken, CredentialError, SecretsDir, Vault, VoLogin, vo_cloud_config};
