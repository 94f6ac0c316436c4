//! Site self-check and Keystone OIDC federation generation (issue #7).
//!
//! Today it owns the site inventory: what a site holds, read through the
//! OpenStack APIs, which the self-check and `fedsite demo` build on.

pub mod inventory;
