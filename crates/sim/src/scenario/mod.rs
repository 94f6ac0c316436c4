//! Scenarios: a seeded, deterministic generator of simulated sites from a
//! small TOML file (explicit `[[project]]`/`[[server]]`/... entities plus an
//! optional `[generate]` table), and the built-in `tiny`/`small`/`medium`/`large`.
//!
//! Rules every scenario keeps: the well-known accounts below exist, ids come
//! from a ChaCha8 stream seeded by `seed` (same spec → same `Site`), and no
//! event falls in the quiet day `(reference_time, reference_time + 1 day]`.
//!
//! Layout: `spec` is the TOML schema and its checks, `builder` turns the
//! explicit entities into a `Site`, `generator` adds the `[generate]` bulk.

mod builder;
mod generator;
mod spec;

use chrono::{DateTime, Utc};

use crate::model::Site;

pub use spec::{
    AttachmentSpec, EventSpec, FlavorRef, FlavorSpec, FloatingIpSpec, GenerateSpec, ImageSpec, ProjectSpec,
    ScenarioSpec, ServerSpec, Time, UserSpec, VolumeSpec,
};

/// Well-known credentials every scenario has.
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PROJECT: &str = "admin";
pub const ACCOUNTING_USER: &str = "accounting";
pub const PASSWORD: &str = "secret";

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("unknown built-in scenario {0:?} (known: tiny, small, medium, large)")]
    Unknown(String),
    #[error("reading scenario {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("parsing scenario {path}: {source}")]
    Parse { path: String, source: toml::de::Error },
    #[error("invalid scenario {path}: {message}")]
    Invalid { path: String, message: String },
}

/// A generated site and the reference time its history ends at.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub seed: u64,
    pub reference_time: DateTime<Utc>,
    pub site: Site,
}

impl Scenario {
    /// The same story with its reference time at `now` (whole seconds): every time of the
    /// site moves by the same amount, so durations, orders and the quiet day after the
    /// reference are kept, and a client whose clock is the host's sees VMs of their real age.
    pub fn anchored_at(mut self, now: DateTime<Utc>) -> Scenario {
        let now = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        let by = now - self.reference_time;
        self.site.shift(by);
        self.reference_time = now;
        self
    }
}

const TINY: &str = include_str!("../../scenarios/tiny.toml");
const SMALL: &str = include_str!("../../scenarios/small.toml");
const MEDIUM: &str = include_str!("../../scenarios/medium.toml");
const LARGE: &str = include_str!("../../scenarios/large.toml");

/// The spec of a built-in scenario.
pub fn builtin(name: &str) -> Result<ScenarioSpec, ScenarioError> {
    let text = match name {
        "tiny" => TINY,
        "small" => SMALL,
        "medium" => MEDIUM,
        "large" => LARGE,
        other => return Err(ScenarioError::Unknown(other.into())),
    };
    ScenarioSpec::from_toml_str(text, &format!("builtin:{name}"))
}
