//! Site self-check and Keystone OIDC federation generation. Filled in by
//! issue #7.
