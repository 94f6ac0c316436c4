//! Scenarios: a seeded, deterministic generator of simulated sites from a
//! small TOML file (explicit `[[project]]`/`[[server]]`/... entities plus an
//! optional `[generate]` table), and the built-in `tiny`/`small`/`medium`/`large`.
//!
//! Rules every scenario keeps: the well-known accounts below exist, ids come
//! from a ChaCha8 stream seeded by `seed` (same spec → same `Site`), and no
//! event falls in the quiet day `(reference_time, reference_time + 1 day]`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha224, Sha256};

use crate::model::*;

/// Well-known credentials every scenario has.
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PROJECT: &str = "admin";
pub const ACCOUNTING_USER: &str = "accounting";
pub const PASSWORD: &str = "secret";

const DAY: i64 = 86_400;

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

const TINY: &str = include_str!("../scenarios/tiny.toml");
const SMALL: &str = include_str!("../scenarios/small.toml");
const MEDIUM: &str = include_str!("../scenarios/medium.toml");
const LARGE: &str = include_str!("../scenarios/large.toml");

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

/// 32 lowercase hex from a name, stable across scenarios and seeds.
fn stable_hex(name: &str) -> String {
    hex::encode(&Sha256::digest(name.as_bytes())[..16])
}

fn hex32(rng: &mut ChaCha8Rng) -> String {
    format!("{:032x}", rng.random::<u128>())
}

/// A random UUID v4 in canonical form.
fn uuid4(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random::<[u8; 16]>()).into_uuid().to_string()
}

fn mac(rng: &mut ChaCha8Rng) -> String {
    let b: [u8; 3] = rng.random();
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

fn pick_weighted<'a>(rng: &mut ChaCha8Rng, items: &'a [(String, f64)]) -> &'a str {
    let total: f64 = items.iter().map(|(_, w)| w.max(0.0)).sum();
    let mut x = rng.random::<f64>() * total;
    for (k, w) in items {
        let w = w.max(0.0);
        if x < w {
            return k;
        }
        x -= w;
    }
    &items.last().expect("non-empty weights").0
}

/// Server index and per-server facts the builder needs for linking.
struct ServerLink {
    idx: usize,
    port_id: String,
    fixed_ip: String,
    deleted_at: Option<DateTime<Utc>>,
}

struct Builder<'a> {
    spec: &'a ScenarioSpec,
    rng: ChaCha8Rng,
    site: Site,
    reference: DateTime<Utc>,
    /// Time infrastructure (networks, default images) dates from.
    infra_time: DateTime<Utc>,
    admin_project: String,
    public_net: String,
    /// project id → private network id
    private_nets: HashMap<String, String>,
    /// project id → next host number on its private network
    next_host: HashMap<String, u32>,
    hosts: Vec<String>,
}

impl<'a> Builder<'a> {
    fn new(spec: &'a ScenarioSpec) -> Self {
        let reference = spec.reference_time.0;
        let history = spec.generate.as_ref().map_or(0, |g| g.history_days as i64);
        Builder {
            spec,
            rng: ChaCha8Rng::seed_from_u64(spec.seed),
            site: Site { region: spec.region.clone(), faults: spec.site_faults.clone(), ..Default::default() },
            reference,
            infra_time: reference - Duration::days(history.max(365) + 30),
            admin_project: stable_hex("project:admin"),
            public_net: String::new(),
            private_nets: HashMap::new(),
            next_host: HashMap::new(),
            hosts: Vec::new(),
        }
    }

    fn quiet(&self, t: DateTime<Utc>) -> bool {
        t > self.reference && t <= self.reference + Duration::days(1)
    }

    /// Domain, roles, the admin project, the well-known users, the public network.
    fn base(&mut self) {
        let s = &mut self.site;
        s.domains.push(Domain { id: "default".into(), name: "Default".into(), enabled: true });
        for r in ["admin", "member", "reader"] {
            s.roles.push(Role { id: stable_hex(&format!("role:{r}")), name: r.into() });
        }
        s.projects.push(Project {
            id: self.admin_project.clone(),
            name: ADMIN_PROJECT.into(),
            domain_id: "default".into(),
            description: "Bootstrap project for initializing the cloud.".into(),
            enabled: true,
            tags: vec![],
            extra: BTreeMap::new(),
        });
        for u in [ADMIN_USER, ACCOUNTING_USER] {
            s.users.push(User {
                id: stable_hex(&format!("user:{u}")),
                name: u.into(),
                domain_id: "default".into(),
                password: PASSWORD.into(),
                enabled: true,
                email: None,
            });
        }
        let admin_user = stable_hex("user:admin");
        let acc_user = stable_hex("user:accounting");
        let role = |n: &str| stable_hex(&format!("role:{n}"));
        s.assignments.push(Assignment {
            user_id: admin_user.clone(),
            role_id: role("admin"),
            scope: AssignmentScope::Project(self.admin_project.clone()),
        });
        s.assignments.push(Assignment { user_id: admin_user, role_id: role("admin"), scope: AssignmentScope::System });
        s.assignments.push(Assignment { user_id: acc_user, role_id: role("reader"), scope: AssignmentScope::System });
        self.public_net = uuid4(&mut self.rng);
        self.site.networks.push(Network {
            id: self.public_net.clone(),
            name: "public".into(),
            project_id: self.admin_project.clone(),
            external: true,
            shared: false,
            cidrs: vec![
                "192.0.2.0/24".into(),
                "198.51.100.0/24".into(),
                "172.16.0.0/12".into(),
                "2001:db8::/32".into(),
            ],
            created_at: self.infra_time,
        });
        let admin = self.admin_project.clone();
        self.add_private_net(&admin);
    }

    fn add_private_net(&mut self, project_id: &str) {
        let id = uuid4(&mut self.rng);
        self.site.networks.push(Network {
            id: id.clone(),
            name: "private".into(),
            project_id: project_id.into(),
            external: false,
            shared: false,
            cidrs: vec!["10.0.0.0/16".into()],
            created_at: self.infra_time,
        });
        self.private_nets.insert(project_id.into(), id);
    }

    fn next_fixed_ip(&mut self, project_id: &str) -> String {
        let n = self.next_host.entry(project_id.into()).or_insert(10);
        let h = *n;
        *n += 1;
        format!("10.0.{}.{}", h / 250, h % 250 + 2)
    }

    fn host_id(&mut self, project_id: &str) -> String {
        if self.hosts.is_empty() {
            self.hosts = (1..=8).map(|i| format!("compute-{i:02}")).collect();
        }
        let h = &self.hosts[self.rng.random_range(0..self.hosts.len())];
        hex::encode(Sha224::digest(format!("{project_id}{h}").as_bytes()))
    }

    /// Adds a server, its compute port and returns linking facts.
    fn push_server(&mut self, mut server: Server, port_name: String) -> ServerLink {
        let deleted_at = server.events.iter().find(|e| e.status == "DELETED").map(|e| e.at);
        let port_id = uuid4(&mut self.rng);
        let fixed_ip = server.fixed_ips.first().map(|f| f.1.clone()).unwrap_or_default();
        server.host_id = self.host_id(&server.project_id);
        self.site.ports.push(Port {
            id: port_id.clone(),
            name: port_name,
            project_id: server.project_id.clone(),
            network_id: self.private_nets.get(&server.project_id).cloned().unwrap_or_default(),
            device_id: server.id.clone(),
            device_owner: "compute:nova".into(),
            mac_address: mac(&mut self.rng),
            fixed_ips: vec![fixed_ip.clone()],
            created_at: server.created,
            deleted_at,
        });
        self.site.servers.push(server);
        ServerLink { idx: self.site.servers.len() - 1, port_id, fixed_ip, deleted_at }
    }

    fn push_fip(&mut self, mut fip: FloatingIp) {
        let port = Port {
            id: uuid4(&mut self.rng),
            name: String::new(),
            project_id: String::new(),
            network_id: self.public_net.clone(),
            device_id: String::new(),
            device_owner: "network:floatingip".into(),
            mac_address: mac(&mut self.rng),
            fixed_ips: vec![fip.address.clone()],
            created_at: fip.created_at,
            deleted_at: fip.deleted_at,
        };
        if fip.id.is_empty() {
            fip.id = uuid4(&mut self.rng);
        }
        let port = Port { device_id: fip.id.clone(), ..port };
        fip.floating_network_id = self.public_net.clone();
        fip.version = if fip.address.contains(':') { 6 } else { 4 };
        self.site.ports.push(port);
        self.site.floating_ips.push(fip);
    }

    /// The explicit entities of the spec; errors name what does not resolve
    /// or breaks the time rules.
    fn explicit(&mut self) -> Result<(), String> {
        let spec = self.spec;
        let mut project_ids: HashMap<String, String> = HashMap::new();
        project_ids.insert(ADMIN_PROJECT.into(), self.admin_project.clone());
        project_ids.insert(self.admin_project.clone(), self.admin_project.clone());
        let mut user_ids: HashMap<String, String> = HashMap::new();
        for u in &self.site.users {
            user_ids.insert(u.name.clone(), u.id.clone());
            user_ids.insert(u.id.clone(), u.id.clone());
        }
        for u in &spec.users {
            let id = u.id.clone().unwrap_or_else(|| hex32(&mut self.rng));
            if user_ids.contains_key(&id) || user_ids.contains_key(&u.name) {
                return Err(format!("user {:?}: duplicate id or name", u.name));
            }
            user_ids.insert(u.name.clone(), id.clone());
            user_ids.insert(id.clone(), id.clone());
            self.site.users.push(User {
                id,
                name: u.name.clone(),
                domain_id: "default".into(),
                password: u.password.clone().unwrap_or_else(|| PASSWORD.into()),
                enabled: true,
                email: u.email.clone(),
            });
        }
        let member = stable_hex("role:member");
        for p in &spec.projects {
            let id = p.id.clone().unwrap_or_else(|| hex32(&mut self.rng));
            if project_ids.contains_key(&id) || project_ids.contains_key(&p.name) {
                return Err(format!("project {:?}: duplicate id or name", p.name));
            }
            project_ids.insert(p.name.clone(), id.clone());
            project_ids.insert(id.clone(), id.clone());
            for m in &p.members {
                let uid = user_ids.get(m).ok_or_else(|| format!("project {:?}: unknown member {m:?}", p.name))?;
                self.site.assignments.push(Assignment {
                    user_id: uid.clone(),
                    role_id: member.clone(),
                    scope: AssignmentScope::Project(id.clone()),
                });
            }
            self.site.projects.push(Project {
                id: id.clone(),
                name: p.name.clone(),
                domain_id: "default".into(),
                description: p.description.clone(),
                enabled: p.enabled,
                tags: p.tags.clone(),
                extra: p.properties.clone(),
            });
            self.add_private_net(&id);
        }
        let project =
            |what: &str, r: &str| project_ids.get(r).cloned().ok_or_else(|| format!("{what}: unknown project {r:?}"));
        let user = |what: &str, r: &str| user_ids.get(r).cloned().ok_or_else(|| format!("{what}: unknown user {r:?}"));

        let mut flavors: HashMap<String, Flavor> = HashMap::new();
        for f in &spec.flavors {
            let access =
                f.access.iter().map(|a| project(&format!("flavor {:?}", f.id), a)).collect::<Result<Vec<_>, _>>()?;
            let flavor = Flavor { access, ..flavor_from(f) };
            if flavors.insert(f.id.clone(), flavor.clone()).is_some() {
                return Err(format!("flavor {:?}: duplicate id", f.id));
            }
            self.site.flavors.push(flavor);
        }
        let flavor = |what: &str, r: &FlavorRef| match r {
            FlavorRef::Id(id) => flavors.get(id).cloned().ok_or_else(|| format!("{what}: unknown flavor {id:?}")),
            FlavorRef::Inline(f) => Ok(flavor_from(f)),
        };

        let mut image_ids: HashMap<String, String> = HashMap::new();
        for i in &spec.images {
            let what = format!("image {:?}", i.name);
            let id = i.id.clone().unwrap_or_else(|| uuid4(&mut self.rng));
            let owner = match &i.owner {
                Some(o) => project(&what, o)?,
                None => self.admin_project.clone(),
            };
            let created = i.created.map_or(self.infra_time, |t| t.0);
            if self.quiet(created) {
                return Err(format!("{what}: created in the quiet day"));
            }
            image_ids.insert(i.name.clone(), id.clone());
            image_ids.insert(id.clone(), id.clone());
            let size = i.size.unwrap_or(2 << 30);
            self.site.images.push(Image {
                id,
                name: i.name.clone(),
                owner,
                visibility: i.visibility.clone().unwrap_or_else(|| "public".into()),
                status: i.status.clone().unwrap_or_else(|| "active".into()),
                disk_format: Some(i.disk_format.clone().unwrap_or_else(|| "qcow2".into())),
                container_format: Some(i.container_format.clone().unwrap_or_else(|| "bare".into())),
                size: Some(size),
                min_disk: i.min_disk,
                min_ram: i.min_ram,
                checksum: None,
                os_hash_algo: None,
                os_hash_value: None,
                protected: i.protected,
                created_at: created,
                updated_at: created,
                tags: i.tags.clone(),
                properties: i.properties.clone(),
                members: vec![],
                data: None,
            });
        }

        let mut servers: HashMap<String, ServerLink> = HashMap::new();
        let mut server_keys: Vec<(String, String)> = Vec::new();
        for s in &spec.servers {
            let what = format!("server {:?}", s.name);
            let project_id = project(&what, &s.project)?;
            let user_id = user(&what, &s.user)?;
            let fl = flavor(&what, &s.flavor)?;
            let image_id = match &s.image {
                Some(i) => Some(image_ids.get(i).cloned().ok_or_else(|| format!("{what}: unknown image {i:?}"))?),
                None => None,
            };
            let created = s.created.0;
            let mut events =
                vec![ServerEvent { at: created, action: "create".into(), status: "BUILD".into(), flavor: None }];
            for e in &s.events {
                events.push(ServerEvent {
                    at: e.at.0,
                    action: e.action.clone(),
                    status: e.status.clone(),
                    flavor: e.flavor.as_ref().map(|f| flavor(&what, f)).transpose()?,
                });
            }
            if events.windows(2).any(|w| w[1].at < w[0].at) {
                return Err(format!("{what}: events out of time order (or before created)"));
            }
            if events.iter().any(|e| self.quiet(e.at)) {
                return Err(format!("{what}: an event falls in the quiet day after the reference time"));
            }
            let launched_at =
                s.launched.map(|t| t.0).or_else(|| events.iter().find(|e| e.status == "ACTIVE").map(|e| e.at));
            let fixed_ip = match &s.fixed_ip {
                Some(ip) => ip.clone(),
                None => self.next_fixed_ip(&project_id),
            };
            let id = s.id.clone().unwrap_or_else(|| uuid4(&mut self.rng));
            let server = Server {
                id: id.clone(),
                name: s.name.clone(),
                project_id,
                user_id,
                flavor: fl,
                image_id,
                created,
                launched_at,
                events,
                key_name: s.key_name.clone(),
                availability_zone: s.availability_zone.clone().unwrap_or_else(|| "nova".into()),
                host_id: String::new(),
                fixed_ips: vec![("private".into(), fixed_ip, 4)],
                metadata: s.metadata.clone(),
                volumes_attached: vec![],
            };
            let link = self.push_server(server, String::new());
            server_keys.push((s.name.clone(), id.clone()));
            servers.insert(id, link);
        }
        let by_name: HashMap<String, String> = server_keys.into_iter().collect();
        let server = |what: &str, r: &str| {
            let id = by_name.get(r).map(String::as_str).unwrap_or(r);
            servers.get(id).ok_or_else(|| format!("{what}: unknown server {r:?}"))
        };

        for v in &spec.volumes {
            let what = format!("volume {:?}", v.name);
            let mut attachments = vec![];
            for (n, a) in v.attachments.iter().enumerate() {
                let link = server(&what, &a.server)?;
                let detached = a.detached.map(|t| t.0).or(link.deleted_at).or(v.deleted.map(|t| t.0));
                attachments.push(VolumeAttachment {
                    server_id: self.site.servers[link.idx].id.clone(),
                    attached_at: a.at.0,
                    detached_at: detached,
                    device: a.device.clone().unwrap_or_else(|| format!("/dev/vd{}", (b'b' + n as u8) as char)),
                });
            }
            let times = [Some(v.created.0), v.deleted.map(|t| t.0)]
                .into_iter()
                .flatten()
                .chain(attachments.iter().flat_map(|a| [Some(a.attached_at), a.detached_at]).flatten());
            if times.into_iter().any(|t| self.quiet(t)) {
                return Err(format!("{what}: a time falls in the quiet day after the reference time"));
            }
            self.site.volumes.push(Volume {
                id: v.id.clone().unwrap_or_else(|| uuid4(&mut self.rng)),
                name: v.name.clone(),
                project_id: project(&what, &v.project)?,
                user_id: user(&what, &v.user)?,
                size: v.size,
                volume_type: v.volume_type.clone().unwrap_or_else(|| "__DEFAULT__".into()),
                bootable: v.bootable,
                created_at: v.created.0,
                deleted_at: v.deleted.map(|t| t.0),
                attachments,
                availability_zone: "nova".into(),
            });
        }

        for f in &spec.floating_ips {
            let what = format!("floating ip {:?}", f.address);
            if f.address.parse::<std::net::IpAddr>().is_err() {
                return Err(format!("{what}: not an IP address"));
            }
            let mut associations = vec![];
            if let Some(sref) = &f.server {
                let link = server(&what, sref)?;
                let s = &self.site.servers[link.idx];
                let from = f.associated.map_or(f.created.0.max(s.created), |t| t.0);
                let to = f.disassociated.map(|t| t.0).or(link.deleted_at).or(f.deleted.map(|t| t.0));
                associations.push(FipAssociation {
                    port_id: link.port_id.clone(),
                    fixed_ip: link.fixed_ip.clone(),
                    from,
                    to,
                });
            }
            let times = [Some(f.created.0), f.deleted.map(|t| t.0)]
                .into_iter()
                .flatten()
                .chain(associations.iter().flat_map(|a| [Some(a.from), a.to]).flatten());
            if times.into_iter().any(|t| self.quiet(t)) {
                return Err(format!("{what}: a time falls in the quiet day after the reference time"));
            }
            self.push_fip(FloatingIp {
                id: f.id.clone().unwrap_or_default(),
                project_id: project(&what, &f.project)?,
                floating_network_id: String::new(),
                address: f.address.clone(),
                version: 4,
                created_at: f.created.0,
                deleted_at: f.deleted.map(|t| t.0),
                associations,
                description: f.description.clone(),
            });
        }
        Ok(())
    }

    /// Reader role for `accounting` on every non-admin project; servers'
    /// `volumes_attached` from the volumes' attachments.
    fn finish(&mut self) {
        let reader = stable_hex("role:reader");
        let acc = stable_hex("user:accounting");
        for p in self.site.projects.iter().filter(|p| p.id != self.admin_project) {
            self.site.assignments.push(Assignment {
                user_id: acc.clone(),
                role_id: reader.clone(),
                scope: AssignmentScope::Project(p.id.clone()),
            });
        }
        let index: HashMap<&str, usize> =
            self.site.servers.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
        let mut attached: Vec<(usize, String)> = vec![];
        for v in &self.site.volumes {
            for a in &v.attachments {
                if let Some(&i) = index.get(a.server_id.as_str()) {
                    attached.push((i, v.id.clone()));
                }
            }
        }
        for (i, vid) in attached {
            let list = &mut self.site.servers[i].volumes_attached;
            if !list.contains(&vid) {
                list.push(vid);
            }
        }
    }
}

fn flavor_from(f: &FlavorSpec) -> Flavor {
    Flavor {
        id: f.id.clone(),
        name: f.name.clone(),
        vcpus: f.vcpus,
        ram: f.ram,
        disk: f.disk,
        ephemeral: f.ephemeral,
        swap: f.swap,
        is_public: f.is_public,
        access: vec![],
        extra_specs: f.extra_specs.clone(),
        description: f.description.clone(),
    }
}

// ------------------------------------------------------------- generation

const VOS: [&str; 12] = [
    "vo.access.egi.eu",
    "fedcloud.egi.eu",
    "vo.notebooks.egi.eu",
    "training.egi.eu",
    "biomed",
    "eosc-synergy.eu",
    "vo.emso-eric.eu",
    "cms",
    "atlas",
    "vo.cite.gr",
    "enmr.eu",
    "vo.pangeo.eu",
];
const WORDS: [&str; 12] =
    ["worker", "jupyter", "k8s-node", "db", "web", "gpu-train", "analysis", "batch", "proxy", "ci", "dask", "portal"];
const IMAGE_NAMES: [&str; 8] = [
    "Ubuntu 22.04",
    "Ubuntu 20.04",
    "AlmaLinux 9",
    "Rocky Linux 8",
    "Debian 12",
    "CentOS 7",
    "EGI Docker",
    "EGI Notebooks",
];
const GPUS: [(&str, &str); 5] =
    [("NVIDIA", "A100"), ("NVIDIA", "V100"), ("NVIDIA", "T4"), ("NVIDIA", "H100"), ("AMD", "MI250")];

/// Timeline of generated content in "virtual" seconds from the history
/// start, with the quiet day cut out: `real(v)` never lands in it.
struct Timeline {
    start: DateTime<Utc>,
    reference_offset: i64,
    quiet: i64,
    /// Virtual length.
    len: i64,
}

impl Timeline {
    fn new(reference: DateTime<Utc>, g: &GenerateSpec) -> Self {
        let hist = g.history_days.max(1) as i64 * DAY;
        let quiet = if g.future_days >= 1 { DAY } else { 0 };
        let fut = (g.future_days as i64 * DAY - quiet).max(0);
        Timeline { start: reference - Duration::seconds(hist), reference_offset: hist, quiet, len: hist + fut }
    }
    fn real(&self, v: i64) -> DateTime<Utc> {
        let v = if v > self.reference_offset { v + self.quiet } else { v };
        self.start + Duration::seconds(v)
    }
}

struct GenProject {
    id: String,
    users: Vec<String>,
    flavors: Vec<usize>,
    images: Vec<usize>,
}

/// What the volume/IP generator needs to know of a generated server.
struct GenServer {
    idx: usize,
    port_id: String,
    fixed_ip: String,
    /// Virtual launch and end (None: alive to the horizon).
    v_launch: Option<i64>,
    v_end: Option<i64>,
}

impl Builder<'_> {
    fn generated(&mut self, g: &GenerateSpec) {
        let tl = Timeline::new(self.reference, g);
        let flavor_start = self.site.flavors.len();
        let (flavors, retired) = self.gen_flavors(g);
        let image_start = self.site.images.len();
        self.gen_images(g);
        let vo_keys: Vec<(String, f64)> = g.vo_keys.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let states: Vec<(String, f64)> = g.states.iter().map(|(k, v)| (k.clone(), *v)).collect();

        // Projects and their users.
        let member = stable_hex("role:member");
        let mut projects = vec![];
        for i in 0..g.projects {
            let id = hex32(&mut self.rng);
            let vo = VOS[self.rng.random_range(0..VOS.len())];
            let mut extra = BTreeMap::new();
            if !vo_keys.is_empty() {
                let key = pick_weighted(&mut self.rng, &vo_keys);
                if key != "none" && !key.is_empty() {
                    extra.insert(key.to_string(), Value::String(vo.into()));
                }
            }
            let tags =
                if self.rng.random_bool(g.caso_tag_fraction.clamp(0.0, 1.0)) { vec!["caso".into()] } else { vec![] };
            let name = format!("{}-{:04}", vo.replace('.', "-"), i + 1);
            let mut users = vec![];
            for u in 0..g.users_per_project.max(1) {
                let uid = hex32(&mut self.rng);
                let uname = if self.rng.random_ratio(1, 40) {
                    format!("josé.núñez{}{}@example.org", i + 1, u)
                } else {
                    format!("{}@egi.eu", &hex32(&mut self.rng)[..24])
                };
                self.site.users.push(User {
                    id: uid.clone(),
                    name: uname,
                    domain_id: "default".into(),
                    password: PASSWORD.into(),
                    enabled: true,
                    email: None,
                });
                self.site.assignments.push(Assignment {
                    user_id: uid.clone(),
                    role_id: member.clone(),
                    scope: AssignmentScope::Project(id.clone()),
                });
                users.push(uid);
            }
            self.site.projects.push(Project {
                id: id.clone(),
                name,
                domain_id: "default".into(),
                description: format!("Project of VO {vo}"),
                enabled: true,
                tags,
                extra,
            });
            self.add_private_net(&id);
            projects.push(GenProject { id, users, flavors: vec![], images: vec![] });
        }
        if projects.is_empty() {
            return;
        }
        // Private flavors get a few projects; each project lists what it may use.
        for &fi in &flavors {
            let f = &mut self.site.flavors[flavor_start + fi];
            if !f.is_public {
                for _ in 0..self.rng.random_range(1..=3usize) {
                    let p = &projects[self.rng.random_range(0..projects.len())].id;
                    if !f.access.contains(p) {
                        f.access.push(p.clone());
                    }
                }
            }
        }
        let n_images = self.site.images.len() - image_start;
        for p in &mut projects {
            p.flavors = flavors
                .iter()
                .copied()
                .filter(|&i| {
                    let f = &self.site.flavors[flavor_start + i];
                    f.is_public || f.access.contains(&p.id)
                })
                .collect();
            p.images = (0..n_images).filter(|&i| self.site.images[image_start + i].visibility == "public").collect();
        }
        // A few private images owned by random projects.
        for i in 0..n_images {
            if self.rng.random_ratio(1, 5) {
                let pi = self.rng.random_range(0..projects.len());
                let img = &mut self.site.images[image_start + i];
                img.visibility = "private".into();
                img.owner = projects[pi].id.clone();
                projects[pi].images.push(i);
            }
        }

        // Servers per project: skewed weights, exact total.
        let weights: Vec<f64> = (0..projects.len()).map(|_| self.rng.random::<f64>().powi(3) + 0.02).collect();
        let total: f64 = weights.iter().sum();
        let mut counts: Vec<u32> = weights.iter().map(|w| (g.servers as f64 * w / total).floor() as u32).collect();
        let mut left = g.servers - counts.iter().sum::<u32>();
        while left > 0 {
            let i = self.rng.random_range(0..counts.len());
            counts[i] += 1;
            left -= 1;
        }

        for (pi, p) in projects.iter().enumerate() {
            let mut gen_servers = Vec::with_capacity(counts[pi] as usize);
            for _ in 0..counts[pi] {
                let s = self.gen_server(g, &tl, p, &states, flavor_start, &retired);
                gen_servers.push(s);
            }
            self.gen_volumes(g, &tl, p, &gen_servers);
            self.gen_fips(g, &tl, p, &gen_servers);
            let n = counts[pi] as i64;
            self.site.quotas.insert(
                p.id.clone(),
                Quota {
                    instances: (n * 2).max(10),
                    cores: (n * 16).max(20),
                    ram: (n * 32768).max(51200),
                    ..Default::default()
                },
            );
        }
    }

    /// Site flavors (indices relative to the first generated) and retired snapshots.
    fn gen_flavors(&mut self, g: &GenerateSpec) -> (Vec<usize>, Vec<Flavor>) {
        let sizes = [("small", 1u32), ("medium", 2), ("large", 4), ("xlarge", 8), ("2xlarge", 16), ("4xlarge", 32)];
        let families = [("m1", 2048u64), ("c1", 1024), ("r1", 8192)];
        let mut made = vec![];
        let mut retired = vec![];
        let start = self.site.flavors.len();
        for i in 0..(g.flavors + g.retired_flavors) {
            let gpu = self.rng.random_bool(g.gpu_fraction.clamp(0.0, 1.0));
            let (size, vcpus) = sizes[self.rng.random_range(0..sizes.len())];
            let (fam, per_cpu) = if gpu { ("g1", 8192) } else { families[self.rng.random_range(0..families.len())] };
            let mut extra_specs = BTreeMap::new();
            if self.rng.random_bool(g.benchmark_fraction.clamp(0.0, 1.0)) {
                extra_specs.insert("accounting:benchmark_type".into(), "HEPscore23".into());
                let per = self.rng.random_range(8.0..20.0f64);
                let v = per * vcpus as f64;
                let value =
                    if self.rng.random_ratio(1, 4) { format!("{}", v.round() as u64) } else { format!("{v:.1}") };
                extra_specs.insert("accounting:benchmark_value".into(), value);
            }
            if gpu {
                let (vendor, model) = GPUS[self.rng.random_range(0..GPUS.len())];
                let n = [1, 1, 2, 4][self.rng.random_range(0..4usize)];
                extra_specs.insert("Accelerator:Type".into(), "GPU".into());
                extra_specs.insert("Accelerator:Vendor".into(), vendor.into());
                extra_specs.insert("Accelerator:Model".into(), model.into());
                extra_specs.insert("Accelerator:Number".into(), n.to_string());
                extra_specs.insert("pci_passthrough:alias".into(), format!("{model}:{n}"));
            }
            let is_retired = i >= g.flavors;
            let f = Flavor {
                id: uuid4(&mut self.rng),
                name: if is_retired { format!("{fam}.{size}.old{i}") } else { format!("{fam}.{size}") },
                vcpus,
                ram: per_cpu * vcpus as u64,
                disk: [20u64, 40, 80, 160][self.rng.random_range(0..4usize)],
                ephemeral: if self.rng.random_ratio(1, 4) { 10 * vcpus as u64 } else { 0 },
                swap: 0,
                is_public: !self.rng.random_bool(g.private_flavor_fraction.clamp(0.0, 1.0)),
                access: vec![],
                extra_specs,
                description: None,
            };
            if is_retired {
                retired.push(Flavor { is_public: true, ..f });
            } else {
                made.push(self.site.flavors.len() - start);
                self.site.flavors.push(f);
            }
        }
        // Names must be unique in Nova.
        let mut seen: HashMap<String, u32> = HashMap::new();
        for f in &mut self.site.flavors[start..] {
            let n = seen.entry(f.name.clone()).or_insert(0);
            *n += 1;
            if *n > 1 {
                f.name = format!("{}-{}", f.name, n);
            }
        }
        (made, retired)
    }

    fn gen_images(&mut self, g: &GenerateSpec) {
        for i in 0..g.images {
            let id = uuid4(&mut self.rng);
            let base = IMAGE_NAMES[i as usize % IMAGE_NAMES.len()];
            let name = if (i as usize) < IMAGE_NAMES.len() { base.to_string() } else { format!("{base} ({})", i + 1) };
            let created = self.infra_time + Duration::days(self.rng.random_range(0..30));
            let mut properties = BTreeMap::new();
            properties
                .insert("os_distro".into(), Value::String(base.split(' ').next().unwrap_or("linux").to_lowercase()));
            if self.rng.random_bool(g.marketplace_fraction.clamp(0.0, 1.0)) {
                let appid = self.rng.random_range(100..2000u32);
                let ver = self.rng.random_range(1..50u32);
                let mpuri = format!("https://appdb.egi.eu/store/vm/image/{}:{ver}/", uuid4(&mut self.rng));
                properties.insert("vmcatcher_event_ad_mpuri".into(), Value::String(mpuri.clone()));
                properties.insert("ad:appid".into(), Value::String(appid.to_string()));
                let attrs = serde_json::json!({
                    "ad:appid": appid.to_string(),
                    "ad:mpuri": mpuri,
                    "ad:base_mpuri": format!("https://appdb.egi.eu/store/vm/image/{appid}/"),
                    "dc:title": name,
                    "sl:osversion": "",
                });
                properties.insert("APPLIANCE_ATTRIBUTES".into(), Value::String(attrs.to_string()));
            }
            self.site.images.push(Image {
                id,
                name,
                owner: self.admin_project.clone(),
                visibility: "public".into(),
                status: "active".into(),
                disk_format: Some("qcow2".into()),
                container_format: Some("bare".into()),
                size: Some(self.rng.random_range(300u64..4000) << 20),
                min_disk: 0,
                min_ram: 0,
                checksum: None,
                os_hash_algo: None,
                os_hash_value: None,
                protected: false,
                created_at: created,
                updated_at: created,
                tags: vec![],
                properties,
                members: vec![],
                data: None,
            });
        }
    }

    fn gen_server(
        &mut self,
        g: &GenerateSpec,
        tl: &Timeline,
        p: &GenProject,
        states: &[(String, f64)],
        flavor_start: usize,
        retired: &[Flavor],
    ) -> GenServer {
        let rng = &mut self.rng;
        let id = uuid4(rng);
        let name = format!(
            "{}-{}{}",
            WORDS[rng.random_range(0..WORDS.len())],
            &id[..6],
            if rng.random_ratio(1, 100) { "-ñ" } else { "" }
        );
        let user_id = p.users[rng.random_range(0..p.users.len())].clone();
        let v_created = rng.random_range(0..tl.len.max(1));
        let flavor = if !retired.is_empty() && v_created < tl.len / 2 && rng.random_ratio(1, 10) {
            retired[rng.random_range(0..retired.len())].clone()
        } else if p.flavors.is_empty() {
            retired.first().cloned().unwrap_or_else(|| Flavor {
                id: "m1.default".into(),
                name: "m1.default".into(),
                vcpus: 1,
                ram: 2048,
                disk: 20,
                ephemeral: 0,
                swap: 0,
                is_public: true,
                access: vec![],
                extra_specs: BTreeMap::new(),
                description: None,
            })
        } else {
            self.site.flavors[flavor_start + p.flavors[rng.random_range(0..p.flavors.len())]].clone()
        };
        let bfv = rng.random_bool(g.boot_from_volume_fraction.clamp(0.0, 1.0)) || p.images.is_empty();
        let image_id = if bfv {
            None
        } else {
            let base = self.site.images.len() - g.images as usize;
            Some(self.site.images[base + p.images[rng.random_range(0..p.images.len())]].id.clone())
        };
        let state = pick_weighted(rng, states).to_string();
        let mut ev: Vec<(i64, &'static str, &'static str, Option<Flavor>)> = vec![(v_created, "create", "BUILD", None)];
        let mut v_launch = None;
        let mut v_end = None;
        if state == "NEVER_LAUNCHED" {
            ev.push((v_created + rng.random_range(5..120), "create", "ERROR", None));
        } else {
            let vl = v_created + rng.random_range(20..300);
            v_launch = Some(vl);
            ev.push((vl, "create", "ACTIVE", None));
            let end = if state == "DELETED" {
                let life = -(1.0 - rng.random::<f64>()).ln() * g.mean_deleted_lifetime_days * DAY as f64;
                (vl + 60 + life as i64).min(tl.len + 1)
            } else {
                tl.len
            };
            let mut ops: Vec<u8> =
                (0..[0, 0, 0, 0, 1, 1, 2, 3][rng.random_range(0..8usize)]).map(|_| rng.random_range(0..4u8)).collect();
            let resize_to = if rng.random_bool(g.resize_fraction.clamp(0.0, 1.0)) && p.flavors.len() > 1 {
                let f = (0..4)
                    .map(|_| &self.site.flavors[flavor_start + p.flavors[rng.random_range(0..p.flavors.len())]])
                    .find(|f| f.id != flavor.id)
                    .cloned();
                if f.is_some() {
                    ops.insert(rng.random_range(0..=ops.len()), 4);
                }
                f
            } else {
                None
            };
            let finale = state != "ACTIVE";
            let n_points = ops.len() * 2 + finale as usize;
            let span = (end - vl).max(1);
            let mut points: Vec<i64> = (0..n_points).map(|_| vl + 1 + rng.random_range(0..span)).collect();
            points.sort_unstable();
            let mut k = 0;
            for op in ops {
                let (a, sa, b) = match op {
                    0 => ("stop", "SHUTOFF", "start"),
                    1 => ("suspend", "SUSPENDED", "resume"),
                    2 => ("pause", "PAUSED", "unpause"),
                    3 => ("shelve", "SHELVED_OFFLOADED", "unshelve"),
                    _ => ("resize", "VERIFY_RESIZE", "confirmResize"),
                };
                let fl = if op == 4 { resize_to.clone() } else { None };
                ev.push((points[k], a, sa, fl));
                let t2 = if op == 4 { points[k] + rng.random_range(60..900) } else { points[k + 1] };
                ev.push((t2, b, "ACTIVE", None));
                k += 2;
            }
            if finale {
                let (a, s) = match state.as_str() {
                    "SHUTOFF" => ("stop", "SHUTOFF"),
                    "SUSPENDED" => ("suspend", "SUSPENDED"),
                    "PAUSED" => ("pause", "PAUSED"),
                    "SHELVED_OFFLOADED" => ("shelve", "SHELVED_OFFLOADED"),
                    "ERROR" => ("reboot", "ERROR"),
                    _ => ("delete", "DELETED"),
                };
                let t = if state == "DELETED" { end } else { points[k] };
                ev.push((t, a, s, None));
            }
            // Strictly increasing; drop what runs past the horizon.
            for i in 1..ev.len() {
                if ev[i].0 <= ev[i - 1].0 {
                    ev[i].0 = ev[i - 1].0 + 1;
                }
            }
            ev.retain(|e| e.0 <= tl.len);
            if let Some(last) = ev.last().filter(|e| e.2 == "DELETED") {
                v_end = Some(last.0);
            }
        }
        let events: Vec<ServerEvent> = ev
            .into_iter()
            .map(|(t, a, s, f)| ServerEvent { at: tl.real(t), action: a.into(), status: s.into(), flavor: f })
            .collect();
        let fixed_ip = self.next_fixed_ip(&p.id);
        let key_name = self.rng.random_bool(0.5).then(|| "default-key".to_string());
        let server = Server {
            id,
            name,
            project_id: p.id.clone(),
            user_id,
            flavor,
            image_id,
            created: tl.real(v_created),
            launched_at: v_launch.map(|v| tl.real(v)),
            events,
            key_name,
            availability_zone: "nova".into(),
            host_id: String::new(),
            fixed_ips: vec![("private".into(), fixed_ip, 4)],
            metadata: BTreeMap::new(),
            volumes_attached: vec![],
        };
        let bfv_size = server.flavor.disk.max(20);
        let (sid, uid) = (server.id.clone(), server.user_id.clone());
        let link = self.push_server(server, String::new());
        if bfv {
            let vid = uuid4(&mut self.rng);
            self.site.volumes.push(Volume {
                id: vid,
                name: String::new(),
                project_id: p.id.clone(),
                user_id: uid,
                size: bfv_size,
                volume_type: "__DEFAULT__".into(),
                bootable: true,
                created_at: tl.real((v_created - 30).max(0)),
                deleted_at: v_end.map(|v| tl.real(v)),
                attachments: vec![VolumeAttachment {
                    server_id: sid,
                    attached_at: tl.real(v_created + 10),
                    detached_at: v_end.map(|v| tl.real(v)),
                    device: "/dev/vda".into(),
                }],
                availability_zone: "nova".into(),
            });
        }
        GenServer { idx: link.idx, port_id: link.port_id, fixed_ip: link.fixed_ip, v_launch, v_end }
    }

    /// A random live interval [from, to) inside [lo, hi) of a random server, if any.
    fn pick_server_window(
        &mut self,
        servers: &[GenServer],
        lo: i64,
        hi: Option<i64>,
    ) -> Option<(usize, i64, Option<i64>)> {
        for _ in 0..3 {
            if servers.is_empty() {
                return None;
            }
            let k = self.rng.random_range(0..servers.len());
            let s = &servers[k];
            let Some(vl) = s.v_launch else { continue };
            let from = lo.max(vl) + self.rng.random_range(30..3600);
            let until = match (s.v_end, hi) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if until.is_none_or(|u| from < u) {
                return Some((k, from, until));
            }
        }
        None
    }

    fn gen_volumes(&mut self, g: &GenerateSpec, tl: &Timeline, p: &GenProject, servers: &[GenServer]) {
        let n = self.rng.random_range(0..=(g.volumes_per_project * 2.0).round() as u32);
        for _ in 0..n {
            let v_created = self.rng.random_range(0..tl.len.max(1));
            let v_deleted = self
                .rng
                .random_bool(g.volume_delete_fraction.clamp(0.0, 1.0))
                .then(|| v_created + self.rng.random_range(3600..(30 * DAY)))
                .filter(|v| *v <= tl.len);
            let mut attachments = vec![];
            if self.rng.random_bool(0.6)
                && let Some((k, from, until)) = self.pick_server_window(servers, v_created, v_deleted)
                && from <= tl.len
            {
                attachments.push(VolumeAttachment {
                    server_id: self.site.servers[servers[k].idx].id.clone(),
                    attached_at: tl.real(from),
                    detached_at: until.map(|u| tl.real(u)),
                    device: "/dev/vdb".into(),
                });
            }
            let id = uuid4(&mut self.rng);
            let name = format!("vol-{}", &id[..8]);
            let size = [1u64, 10, 20, 50, 100, 500, 1000][self.rng.random_range(0..7usize)];
            let user_id = p.users[self.rng.random_range(0..p.users.len())].clone();
            let volume_type = if self.rng.random_ratio(1, 4) { "ssd" } else { "__DEFAULT__" };
            self.site.volumes.push(Volume {
                id,
                name,
                project_id: p.id.clone(),
                user_id,
                size,
                volume_type: volume_type.into(),
                bootable: false,
                created_at: tl.real(v_created),
                deleted_at: v_deleted.map(|v| tl.real(v)),
                attachments,
                availability_zone: "nova".into(),
            });
        }
    }

    fn gen_fips(&mut self, g: &GenerateSpec, tl: &Timeline, p: &GenProject, servers: &[GenServer]) {
        let n = self.rng.random_range(0..=(g.floating_ips_per_project * 2.0).round() as u32);
        for _ in 0..n {
            let v6 = self.rng.random_bool(g.ipv6_fraction.clamp(0.0, 1.0));
            let c = self.site.floating_ips.len() as u32;
            let address = if v6 {
                format!("2001:db8:f1::{:x}", c + 1)
            } else {
                std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(172, 16, 0, 10)) + c).to_string()
            };
            let v_created = self.rng.random_range(0..tl.len.max(1));
            let v_deleted = self.rng.random_ratio(1, 10).then(|| v_created + self.rng.random_range(DAY..(60 * DAY)));
            let v_deleted = v_deleted.filter(|v| *v <= tl.len);
            let mut associations = vec![];
            if self.rng.random_bool(0.7)
                && let Some((k, from, until)) = self.pick_server_window(servers, v_created, v_deleted)
                && from <= tl.len
            {
                associations.push(FipAssociation {
                    port_id: servers[k].port_id.clone(),
                    fixed_ip: servers[k].fixed_ip.clone(),
                    from: tl.real(from),
                    to: until.map(|u| tl.real(u)),
                });
            }
            self.push_fip(FloatingIp {
                id: String::new(),
                project_id: p.id.clone(),
                floating_network_id: String::new(),
                address,
                version: 4,
                created_at: tl.real(v_created),
                deleted_at: v_deleted.map(|v| tl.real(v)),
                associations,
                description: String::new(),
            });
        }
    }
}
