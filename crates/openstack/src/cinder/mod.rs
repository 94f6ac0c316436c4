//! Cinder v3 (microversion negotiated up to 3.60): volumes.

pub mod volumes;

pub use volumes::{ListVolumes, Volume, VolumeAttachment};
