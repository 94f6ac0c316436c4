//! Scenarios: a seeded, deterministic generator of simulated sites from a
//! small TOML file, and the built-in scenarios (`tiny`, `small`, `medium`,
//! `large`).
//!
//! PLACEHOLDER: the generator is being written; today only the well-known
//! accounts exist.

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

use crate::model::*;

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
}

/// A scenario as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    pub name: String,
    #[serde(default)]
    pub seed: u64,
}

/// A generated site and the reference time its history ends at.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub seed: u64,
    pub reference_time: DateTime<Utc>,
    pub site: Site,
}

pub fn builtin(name: &str) -> Result<ScenarioSpec, ScenarioError> {
    match name {
        "tiny" | "small" | "medium" | "large" => Ok(ScenarioSpec { name: name.into(), seed: 1 }),
        other => Err(ScenarioError::Unknown(other.into())),
    }
}

impl ScenarioSpec {
    pub fn generate(&self) -> Scenario {
        let mut site = Site { region: "RegionOne".into(), ..Default::default() };
        site.domains.push(Domain { id: "default".into(), name: "Default".into(), enabled: true });
        Scenario {
            name: self.name.clone(),
            seed: self.seed,
            reference_time: Utc.with_ymd_and_hms(2023, 6, 1, 0, 0, 0).unwrap(),
            site,
        }
    }
}
