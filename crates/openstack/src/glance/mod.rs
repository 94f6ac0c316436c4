//! Glance v2: images (paged by `next`, property filters), one image, the
//! image schema; writes (create, upload, patch, delete, deactivate) and
//! image members.

pub mod images;
pub mod manage;
pub mod members;

pub use images::{Image, ListImages};
