//! Image sync: OCI registry and HEPiX image lists into Glance. Filled in by
//! issue #6.
