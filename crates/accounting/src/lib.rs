//! Accounting extraction: reads OpenStack through `openstack` and builds
//! `apel` records. The only crate that knows both. Filled in by issue #3.
