//! The GLUE 2.1 site description EGI's information system reads, as
//! cloud-info-provider 1.2 writes it (byte for byte by default): the model
//! ([`glue`]), Python-compatible JSON (the [`pyjson`] crate), the site file ([`site`]),
//! discovery over the OpenStack APIs ([`discover`]), the GOCDB lookup
//! ([`gocdb`]), the endpoint's TLS facts ([`tls`]) and publishing ([`publish`]).

pub mod discover;
pub mod glue;
pub mod gocdb;
pub mod publish;
pub mod site;
pub mod tls;

pub use discover::{DiscoverError, Fixes, FlavorKeys, FlavorSelect, ImageKeys, Options, Report, discover};
pub use glue::Document;
pub use site::SiteConfig;
