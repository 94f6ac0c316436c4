//! APEL records and their wire formats (cloud v0.4, public IP, accelerator,
//! StAR storage, energy), parse and render, and the APEL loader's
//! validation rules.
//!
//! Knows nothing of OpenStack. Filled in by the accounting issue (#3); the
//! crate exists from day one so the boundary is fixed.
