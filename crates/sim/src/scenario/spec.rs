//! The scenario file's schema (`ScenarioSpec` and its entity tables, the
//! `[generate]` knobs with their defaults) and the checks run when it is parsed.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::model::*;

use super::builder::Builder;
use super::{Scenario, ScenarioError};

/// A point in time in a scenario file: RFC 3339 (quoted or a TOML datetime),
/// `YYYY-MM-DDTHH:MM:SS` (UTC) or `YYYY-MM-DD` (midnight UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = match toml::Value::deserialize(d)? {
            toml::Value::String(s) => s,
            toml::Value::Datetime(dt) => dt.to_string(),
            other => return Err(serde::de::Error::custom(format!("expected a time, got {other}"))),
        };
        parse_time(&s).map(Time).ok_or_else(|| serde::de::Error::custom(format!("bad time {s:?}")))
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| d.and_hms_opt(0, 0, 0).unwrap().and_utc())
}

fn default_reference() -> Time {
    Time(Utc.with_ymd_and_hms(2023, 6, 1, 0, 0, 0).unwrap())
}
fn default_region() -> String {
    "RegionOne".into()
}
fn yes() -> bool {
    true
}

/// A scenario as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_reference")]
    pub reference_time: Time,
    #[serde(default = "default_region")]
    pub region: String,
    /// Random bulk content.
    #[serde(default)]
    pub generate: Option<GenerateSpec>,
    #[serde(default, rename = "project")]
    pub projects: Vec<ProjectSpec>,
    #[serde(default, rename = "user")]
    pub users: Vec<UserSpec>,
    #[serde(default, rename = "flavor")]
    pub flavors: Vec<FlavorSpec>,
    #[serde(default, rename = "image")]
    pub images: Vec<ImageSpec>,
    #[serde(default, rename = "server")]
    pub servers: Vec<ServerSpec>,
    #[serde(default, rename = "volume")]
    pub volumes: Vec<VolumeSpec>,
    #[serde(default, rename = "floating_ip")]
    pub floating_ips: Vec<FloatingIpSpec>,
    /// Deliberate breakage (`[site_faults]`), for self-check tests.
    #[serde(default)]
    pub site_faults: SiteFaults,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSpec {
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Flat extra properties (e.g. `"egi.VO"`).
    #[serde(default)]
    pub properties: BTreeMap<String, Value>,
    /// Users (id or name) given role `member`.
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub id: Option<String>,
    pub name: String,
    pub email: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlavorSpec {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub ram: u64,
    pub disk: u64,
    #[serde(default)]
    pub ephemeral: u64,
    #[serde(default)]
    pub swap: u64,
    #[serde(default = "yes")]
    pub is_public: bool,
    /// Projects (id or name) granted access to a private flavor.
    #[serde(default)]
    pub access: Vec<String>,
    #[serde(default)]
    pub extra_specs: BTreeMap<String, String>,
    pub description: Option<String>,
}

/// A flavor by id (from `[[flavor]]`) or an inline snapshot of a flavor the
/// site no longer has.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FlavorRef {
    Id(String),
    Inline(FlavorSpec),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    pub id: Option<String>,
    pub name: String,
    /// Project id or name; the admin project when absent.
    pub owner: Option<String>,
    pub visibility: Option<String>,
    pub status: Option<String>,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub size: Option<u64>,
    #[serde(default)]
    pub min_disk: u64,
    #[serde(default)]
    pub min_ram: u64,
    #[serde(default)]
    pub protected: bool,
    pub created: Option<Time>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub properties: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    pub at: Time,
    pub action: String,
    pub status: String,
    pub flavor: Option<FlavorRef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    pub id: Option<String>,
    pub name: String,
    pub project: String,
    pub user: String,
    pub flavor: FlavorRef,
    /// None: boot from volume.
    pub image: Option<String>,
    pub created: Time,
    /// Defaults to the first ACTIVE event.
    pub launched: Option<Time>,
    /// Events after the implicit `create`/BUILD at `created`.
    #[serde(default)]
    pub events: Vec<EventSpec>,
    /// Defaults to the next free 10.0.0.x of the project's network.
    pub fixed_ip: Option<String>,
    pub key_name: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub availability_zone: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentSpec {
    pub server: String,
    pub at: Time,
    /// Defaults to the server's deletion, if any.
    pub detached: Option<Time>,
    pub device: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    pub id: Option<String>,
    pub name: String,
    pub project: String,
    pub user: String,
    pub size: u64,
    pub volume_type: Option<String>,
    #[serde(default)]
    pub bootable: bool,
    pub created: Time,
    pub deleted: Option<Time>,
    #[serde(default)]
    pub attachments: Vec<AttachmentSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloatingIpSpec {
    pub id: Option<String>,
    pub address: String,
    pub project: String,
    pub created: Time,
    pub deleted: Option<Time>,
    /// Server (id or name) whose port it is associated with.
    pub server: Option<String>,
    /// Start of the association; defaults to max(created, server created).
    pub associated: Option<Time>,
    /// End of the association; defaults to the server's deletion, if any.
    pub disassociated: Option<Time>,
    #[serde(default)]
    pub description: String,
}

fn d_history() -> u32 {
    180
}
fn d_future() -> u32 {
    30
}
fn d_users() -> u32 {
    3
}
fn d_flavors() -> u32 {
    12
}
fn d_images() -> u32 {
    10
}
fn d_vols() -> f64 {
    3.0
}
fn d_fips() -> f64 {
    1.0
}
fn d_life() -> f64 {
    20.0
}
fn d_vo_keys() -> BTreeMap<String, f64> {
    [("egi.VO", 6.0), ("egi.eu:VO", 2.0), ("VO", 1.0), ("none", 1.0)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}
fn d_states() -> BTreeMap<String, f64> {
    [
        ("ACTIVE", 45.0),
        ("SHUTOFF", 10.0),
        ("SUSPENDED", 3.0),
        ("PAUSED", 2.0),
        ("SHELVED_OFFLOADED", 4.0),
        ("ERROR", 2.0),
        ("DELETED", 32.0),
        ("NEVER_LAUNCHED", 2.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The `[generate]` table: bulk random content over
/// `[reference - history_days, reference + future_days]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    #[serde(default = "d_history")]
    pub history_days: u32,
    #[serde(default = "d_future")]
    pub future_days: u32,
    #[serde(default)]
    pub projects: u32,
    #[serde(default)]
    pub servers: u32,
    #[serde(default = "d_users")]
    pub users_per_project: u32,
    #[serde(default = "d_flavors")]
    pub flavors: u32,
    /// Fraction of flavors with HEPscore23 benchmark extra specs.
    #[serde(default)]
    pub benchmark_fraction: f64,
    /// Fraction of flavors with Accelerator:* extra specs.
    #[serde(default)]
    pub gpu_fraction: f64,
    /// Fraction of flavors that are private (granted to a few projects).
    #[serde(default)]
    pub private_flavor_fraction: f64,
    /// Flavors deleted from the site that old servers still carry snapshots of.
    #[serde(default)]
    pub retired_flavors: u32,
    #[serde(default = "d_images")]
    pub images: u32,
    /// Fraction of images with AppDB marketplace properties.
    #[serde(default)]
    pub marketplace_fraction: f64,
    #[serde(default = "d_vols")]
    pub volumes_per_project: f64,
    #[serde(default)]
    pub volume_delete_fraction: f64,
    #[serde(default = "d_fips")]
    pub floating_ips_per_project: f64,
    #[serde(default)]
    pub ipv6_fraction: f64,
    /// Fraction of projects tagged `caso`.
    #[serde(default)]
    pub caso_tag_fraction: f64,
    /// Weights of the property holding a project's VO; key `none` for no VO.
    #[serde(default = "d_vo_keys")]
    pub vo_keys: BTreeMap<String, f64>,
    /// Weights of a server's final state: ACTIVE, SHUTOFF, SUSPENDED, PAUSED,
    /// SHELVED_OFFLOADED, ERROR, DELETED, NEVER_LAUNCHED.
    #[serde(default = "d_states")]
    pub states: BTreeMap<String, f64>,
    /// Fraction of servers resized once during their life.
    #[serde(default)]
    pub resize_fraction: f64,
    /// Fraction of servers booted from a volume.
    #[serde(default)]
    pub boot_from_volume_fraction: f64,
    /// Mean lifetime of servers that end up DELETED, in days.
    #[serde(default = "d_life")]
    pub mean_deleted_lifetime_days: f64,
}

impl ScenarioSpec {
    /// Parses and checks a scenario; `origin` names it in errors (and is the
    /// default name, minus directory and extension).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        let mut spec: ScenarioSpec =
            toml::from_str(text).map_err(|source| ScenarioError::Parse { path: origin.into(), source })?;
        if spec.name.is_empty() {
            let stem = origin.rsplit(['/', ':']).next().unwrap_or(origin);
            spec.name = stem.strip_suffix(".toml").unwrap_or(stem).to_string();
        }
        spec.validate().map_err(|message| ScenarioError::Invalid { path: origin.into(), message })?;
        Ok(spec)
    }

    /// Reads and parses a scenario file.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: shown.clone(), source })?;
        Self::from_toml_str(&text, &shown)
    }

    /// Checks references, event order and the quiet day of the explicit
    /// entities (cheap: the generator keeps these rules by construction).
    pub(crate) fn validate(&self) -> Result<(), String> {
        if let Some(g) = &self.generate {
            if g.servers > 0 && g.projects == 0 {
                return Err("generate.servers > 0 needs generate.projects > 0".into());
            }
            if g.states.values().all(|w| *w <= 0.0) {
                return Err("generate.states has no positive weight".into());
            }
            for k in g.states.keys() {
                if !STATES.contains(&k.as_str()) {
                    return Err(format!("generate.states: unknown state {k:?} (known: {})", STATES.join(", ")));
                }
            }
        }
        let mut b = Builder::new(self);
        b.base();
        b.explicit()
    }

    /// Builds the site. Deterministic: the same spec gives the same site.
    pub fn generate(&self) -> Scenario {
        let mut b = Builder::new(self);
        b.base();
        // Checked by from_toml_str; a hand-built invalid spec just skips what
        // it cannot resolve.
        let _ = b.explicit();
        if let Some(g) = &self.generate {
            b.generated(g);
        }
        b.finish();
        b.site.registry = crate::oci::generate(&b.site);
        Scenario { name: self.name.clone(), seed: self.seed, reference_time: self.reference_time.0, site: b.site }
    }
}

const STATES: [&str; 8] =
    ["ACTIVE", "SHUTOFF", "SUSPENDED", "PAUSED", "SHELVED_OFFLOADED", "ERROR", "DELETED", "NEVER_LAUNCHED"];
