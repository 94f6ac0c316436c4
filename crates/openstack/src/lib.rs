//! Thin typed async clients for what fedsite needs from Keystone v3, Nova
//! v2.1, Cinder v3, Neutron v2.0, Glance v2 and Swift v1 (reqwest + rustls +
//! serde): reads, and the few writes fedsite makes (see "What it is not").
//!
//! # What it is
//! - [`config::CloudConfig`]: clouds.yaml (+ secure.yaml; `OS_CLOUD` or an
//!   explicit name) or `OS_*` variables, as python-openstackclient reads
//!   them. Pure functions of an env map, so tests never touch the process env.
//! - [`Session`]: Keystone v3 authentication (password, application
//!   credential, token, OIDC access token or client credentials through
//!   OS-FEDERATION ([`oidc`]); project / domain / system / unscoped), auth-URL
//!   discovery, token + catalog, re-authentication near expiry and once on
//!   401, [`Session::rescope`], endpoint lookup ([`Service`] aliases,
//!   interface, region, version suffixes, project-id templates), microversion
//!   negotiation (one version document read per service), and the one
//!   [`Session::send`] path: retries with backoff + jitter on 5xx/429
//!   (`Retry-After`)/connect errors/timeouts for idempotent requests, a
//!   per-attempt timeout, and per-route counters ([`Session::counters`]).
//! - One module per API resource with a typed query struct per list call
//!   (`nova::ListServers { all_tenants, project_id, changes_since, .. }`)
//!   offering `.list(&session)` (all pages collected) and `.stream(&session)`,
//!   plus `get`-style functions. Paging lives in [`paging`] only;
//!   microversions in [`microversion`] only.
//! - [`Error`]: status, service, method, URL and the server's own message
//!   (Keystone, Nova/Cinder, Neutron and Glance error shapes); 403 keeps
//!   the policy message. Secrets are [`Secret`]s and never print.
//!
//! # What it is not
//! Not a general SDK: it creates only what fedsite needs (tokens, Glance images and
//! members, Nova servers for the VM probe, Keystone federation objects, Swift containers
//! and objects), no Placement, no codegen, no caching of responses. Calls not covered can still go
//! through [`Session::send`] with a hand-built [`Call`].
//!
//! ```no_run
//! # async fn demo() -> openstack::Result<()> {
//! use openstack::{CloudConfig, Paged, Session, Scope, nova};
//! let cfg = CloudConfig::load(Some("mycloud"))?;
//! let admin = Session::connect(&cfg).await?;
//! let project = admin.rescope(Scope::project_id("0b9f...")).await?;
//! let servers = nova::ListServers { limit: Some(200), ..Default::default() }.list(&project).await?;
//! # Ok(()) }
//! ```

pub mod catalog;
pub mod cinder;
pub mod config;
pub mod error;
pub mod glance;
pub mod keystone;
pub mod microversion;
pub mod neutron;
pub mod nova;
pub mod oidc;
pub mod paging;
pub mod secret;
pub mod session;
pub mod swift;
pub mod time;

pub use catalog::{Catalog, Service};
pub use config::{CloudConfig, CloudOptions, Credentials, DomainRef, Env, Interface, ProjectRef, Scope, UserRef};
pub use error::{ConfigError, Error, RequestInfo, Result};
pub use microversion::Microversion;
pub use paging::Paged;
pub use secret::Secret;
pub use session::{Call, CallStats, Response, RetryPolicy, RouteKey, Session, SessionBuilder, Token};
