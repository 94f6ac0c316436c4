//! Site self-check and Keystone OIDC federation (issue #7).
//!
//! [`run::run`] checks what EGI requires of a FedCloud site, one module per
//! family (catalog, ports, permissions, projects, flavors, accounting,
//! certificate, vm, info), each returning [`check::Check`]s with a status,
//! what was tested and the fix. [`federation`] generates, applies and lints
//! the Keystone OS-FEDERATION setup for EGI Check-in. [`inventory`] is what
//! a site holds, read through the OpenStack APIs. [`probe`] runs ARGO's
//! probes of a site (VM, Swift, information document, accounting, Keystone,
//! ports) with a VO robot's login, each one result in the Nagios plugin
//! contract that [`nagios`] renders.

pub mod accounting;
pub mod catalog;
pub mod certificate;
pub mod check;
pub mod config;
pub mod error;
pub mod federation;
pub mod flavors;
pub mod info;
pub mod inventory;
pub mod nagios;
pub mod permissions;
pub mod ports;
pub mod probe;
pub mod projects;
pub mod run;
pub mod vmprobe;

pub use check::{Check, Report, Status};
pub use config::{CheckConfig, Sessions, VoSpec};
