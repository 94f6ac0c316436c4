//! Glance v2: images (paged by `next`, property filters), one image, the
//! image schema.

pub mod images;

pub use images::{Image, ListImages};
