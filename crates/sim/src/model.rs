//! The simulated site's data: every entity the services expose, with full
//! time histories so the same site can be viewed at any reference time.
//!
//! Owns the entity types and the "view at time t" rules (a server's status,
//! `updated`, `terminated_at`; whether a volume still exists). The services
//! render these into each API's JSON; the scenario module builds them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Everything the simulated site holds.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// Region name used in the catalog.
    pub region: String,
    pub domains: Vec<Domain>,
    pub projects: Vec<Project>,
    pub users: Vec<User>,
    pub roles: Vec<Role>,
    pub assignments: Vec<Assignment>,
    pub flavors: Vec<Flavor>,
    pub images: Vec<Image>,
    pub servers: Vec<Server>,
    pub volumes: Vec<Volume>,
    pub networks: Vec<Network>,
    pub ports: Vec<Port>,
    pub floating_ips: Vec<FloatingIp>,
    /// Per-project compute quotas (project id → quota); absent means defaults.
    pub quotas: BTreeMap<String, Quota>,
    /// OS-FEDERATION objects, created at run time through the API.
    pub identity_providers: Vec<Value>,
    pub mappings: Vec<Value>,
    /// (idp id, protocol JSON)
    pub protocols: Vec<(String, Value)>,
    pub application_credentials: Vec<ApplicationCredential>,
    /// Per-project block storage quotas; absent means Cinder's defaults.
    pub volume_quotas: BTreeMap<String, VolumeQuota>,
    /// Per-project network quotas; absent means Neutron's defaults.
    pub network_quotas: BTreeMap<String, NetworkQuota>,
    /// Glance attributes `Image` lacks, by image id (absent = defaults).
    pub image_extras: BTreeMap<String, ImageExtra>,
    /// The OCI registry (`/v2`): repositories, tags, manifests, blobs.
    pub registry: crate::oci::Registry,
    /// Deliberate breakage, for self-check tests (all off by default).
    pub faults: SiteFaults,
}

impl Site {
    /// Gives project `from` the id `to` everywhere the site names it (the project itself, its
    /// servers, volumes, networks, ports, floating IPs, role assignments, application
    /// credentials, quotas, flavor access, image owners and members), so its story serves
    /// another project id, e.g. a VO share's of a simulated federation.
    pub fn rehome_project(&mut self, from: &str, to: &str) {
        let mv = |x: &mut String| {
            if x == from {
                *x = to.to_owned();
            }
        };
        self.projects.iter_mut().for_each(|p| mv(&mut p.id));
        self.servers.iter_mut().for_each(|x| mv(&mut x.project_id));
        self.volumes.iter_mut().for_each(|x| mv(&mut x.project_id));
        self.networks.iter_mut().for_each(|x| mv(&mut x.project_id));
        self.ports.iter_mut().for_each(|x| mv(&mut x.project_id));
        self.floating_ips.iter_mut().for_each(|x| mv(&mut x.project_id));
        self.application_credentials.iter_mut().for_each(|x| mv(&mut x.project_id));
        for a in &mut self.assignments {
            if let AssignmentScope::Project(p) = &mut a.scope {
                mv(p);
            }
        }
        self.flavors.iter_mut().flat_map(|f| f.access.iter_mut()).for_each(mv);
        for i in &mut self.images {
            mv(&mut i.owner);
            i.members.iter_mut().for_each(|(m, _)| mv(m));
        }
        for e in self.image_extras.values_mut() {
            if let Some(t) = e.member_times.remove(from) {
                e.member_times.insert(to.to_owned(), t);
            }
        }
        for q in [&mut self.quotas as &mut dyn Rekey, &mut self.volume_quotas, &mut self.network_quotas] {
            q.rekey(from, to);
        }
    }

    /// Moves every time of the site's history by `by` (creations, events, launches,
    /// deletions, attachments, associations, memberships, expiries), so a scenario can be
    /// anchored to another "now" with the same story.
    pub fn shift(&mut self, by: chrono::Duration) {
        let t = |x: &mut DateTime<Utc>| *x += by;
        let o = |x: &mut Option<DateTime<Utc>>| {
            if let Some(x) = x {
                *x += by
            }
        };
        for i in &mut self.images {
            t(&mut i.created_at);
            t(&mut i.updated_at);
        }
        for e in self.image_extras.values_mut() {
            for (a, b) in e.member_times.values_mut() {
                t(a);
                t(b);
            }
        }
        for a in &mut self.application_credentials {
            o(&mut a.expires_at);
        }
        for s in &mut self.servers {
            t(&mut s.created);
            o(&mut s.launched_at);
            for e in &mut s.events {
                t(&mut e.at);
            }
        }
        for v in &mut self.volumes {
            t(&mut v.created_at);
            o(&mut v.deleted_at);
            for a in &mut v.attachments {
                t(&mut a.attached_at);
                o(&mut a.detached_at);
            }
        }
        for n in &mut self.networks {
            t(&mut n.created_at);
        }
        for p in &mut self.ports {
            t(&mut p.created_at);
            o(&mut p.deleted_at);
        }
        for f in &mut self.floating_ips {
            t(&mut f.created_at);
            o(&mut f.deleted_at);
            for a in &mut f.associations {
                t(&mut a.from);
                o(&mut a.to);
            }
        }
    }
}

/// Ways to break a simulated site on purpose (`[site_faults]` in a scenario).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteFaults {
    /// Servers booted through the API stay in BUILD (never become ACTIVE).
    pub boot_never_active: bool,
    /// Catalog service types left out of every token's catalog (e.g. `network`).
    pub catalog_omit: Vec<String>,
    /// Catalog service type → URL used instead of the simulator's own
    /// (e.g. a closed port).
    pub catalog_urls: BTreeMap<String, String>,
    /// Swift refuses every write (PUT, POST, DELETE) with 405, as its
    /// `read_only` middleware does; reads still work.
    pub swift_read_only: bool,
    /// Project ids Keystone refuses to scope a token to, with 403 (a site whose policy
    /// refuses one VO's project); every other project works.
    pub forbidden_projects: Vec<String>,
}

/// Glance image attributes beyond [`Image`]'s fields.
#[derive(Debug, Clone, Default)]
pub struct ImageExtra {
    /// Hidden from the default image list (`os_hidden`).
    pub os_hidden: bool,
    /// Bytes; Glance computes it on upload (null before).
    pub virtual_size: Option<u64>,
    /// The name is null (created without one); `Image::name` is then "".
    pub name_is_null: bool,
    /// Member project id → (created_at, updated_at) of the membership;
    /// members absent here show the image's `created_at`.
    pub member_times: BTreeMap<String, (DateTime<Utc>, DateTime<Utc>)>,
}

/// A Keystone application credential (auth method `application_credential`).
#[derive(Debug, Clone)]
pub struct ApplicationCredential {
    pub id: String,
    pub name: String,
    pub secret: String,
    pub user_id: String,
    pub project_id: String,
    /// Role names delegated.
    pub roles: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct Domain {
    pub id: String,
    pub name: String,
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub struct Project {
    /// 32 lowercase hex characters, as Keystone generates them.
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub description: String,
    pub enabled: bool,
    pub tags: Vec<String>,
    /// Extra properties returned flat on the project (e.g. `"egi.VO"`).
    pub extra: BTreeMap<String, Value>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub password: String,
    pub enabled: bool,
    pub email: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Role {
    pub id: String,
    pub name: String,
}

/// Where a role assignment applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignmentScope {
    Project(String),
    Domain(String),
    System,
}

#[derive(Debug, Clone)]
pub struct Assignment {
    pub user_id: String,
    pub role_id: String,
    pub scope: AssignmentScope,
}

#[derive(Debug, Clone)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    /// MiB
    pub ram: u64,
    /// GB
    pub disk: u64,
    /// GB
    pub ephemeral: u64,
    /// MiB (0 shown as "" by old microversions)
    pub swap: u64,
    pub is_public: bool,
    /// Projects granted access to a private flavor.
    pub access: Vec<String>,
    pub extra_specs: BTreeMap<String, String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub owner: String,
    /// public, private, shared, community
    pub visibility: String,
    /// queued, active, deactivated, ...
    pub status: String,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub size: Option<u64>,
    pub min_disk: u64,
    pub min_ram: u64,
    /// md5 hex
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub protected: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub tags: Vec<String>,
    /// Free-form properties, returned flat (e.g. `vmcatcher_event_ad_mpuri`).
    pub properties: BTreeMap<String, Value>,
    /// (member project id, status: pending/accepted/rejected)
    pub members: Vec<(String, String)>,
    /// Uploaded data, when any (scenario images have none; GET file serves a
    /// deterministic pattern of `size` bytes instead).
    pub data: Option<bytes::Bytes>,
}

/// One step in a server's life. `status` is the Nova API status the server
/// shows from `at` on (ACTIVE, SHUTOFF, SUSPENDED, PAUSED, SHELVED_OFFLOADED,
/// ERROR, DELETED, VERIFY_RESIZE, ...). `action` is the instance action name
/// that caused it (create, stop, start, suspend, resume, pause, unpause,
/// shelve, unshelve, resize, confirmResize, delete, ...).
#[derive(Debug, Clone)]
pub struct ServerEvent {
    pub at: DateTime<Utc>,
    pub action: String,
    pub status: String,
    /// For a resize, the flavor in effect from `at` on (a snapshot, as Nova
    /// keeps the instance's own copy of its flavor).
    pub flavor: Option<Flavor>,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    /// The instance's copy of its flavor at creation (Nova keeps one, so a
    /// flavor deleted or recreated later does not change it); resizes change
    /// it through events.
    pub flavor: Flavor,
    /// None for boot from volume (rendered as `"image": ""`).
    pub image_id: Option<String>,
    pub created: DateTime<Utc>,
    /// None when the server never launched (e.g. failed scheduling).
    pub launched_at: Option<DateTime<Utc>>,
    /// Ordered by time. The first is the `create` event (status BUILD at
    /// `created`); a server with no later event stays BUILD.
    pub events: Vec<ServerEvent>,
    pub key_name: Option<String>,
    pub availability_zone: String,
    pub host_id: String,
    /// Fixed addresses: (network name, address, version).
    pub fixed_ips: Vec<(String, String, u8)>,
    pub metadata: BTreeMap<String, String>,
    /// Volumes booted from / attached (ids).
    pub volumes_attached: Vec<String>,
}

/// A server as it looks at one instant.
#[derive(Debug, Clone)]
pub struct ServerView<'a> {
    pub server: &'a Server,
    pub status: &'a str,
    pub flavor: &'a Flavor,
    pub updated: DateTime<Utc>,
    pub launched_at: Option<DateTime<Utc>>,
    pub terminated_at: Option<DateTime<Utc>>,
    pub deleted: bool,
}

impl Server {
    /// Whether the server exists at `now` at all (created by then).
    pub fn exists_at(&self, now: DateTime<Utc>) -> bool {
        self.created <= now
    }

    /// The server as the API shows it at `now`; None before creation.
    pub fn view_at(&self, now: DateTime<Utc>) -> Option<ServerView<'_>> {
        if !self.exists_at(now) {
            return None;
        }
        let mut status = "BUILD";
        let mut flavor = &self.flavor;
        let mut updated = self.created;
        let mut terminated = None;
        for e in self.events.iter().filter(|e| e.at <= now) {
            status = e.status.as_str();
            updated = e.at;
            if let Some(f) = &e.flavor {
                flavor = f;
            }
            if e.status == "DELETED" {
                terminated = Some(e.at);
            }
        }
        let launched_at = self.launched_at.filter(|l| *l <= now);
        Some(ServerView {
            server: self,
            status,
            flavor,
            updated,
            launched_at,
            terminated_at: terminated,
            deleted: status == "DELETED",
        })
    }
}

#[derive(Debug, Clone)]
pub struct VolumeAttachment {
    pub server_id: String,
    pub attached_at: DateTime<Utc>,
    pub detached_at: Option<DateTime<Utc>>,
    pub device: String,
}

#[derive(Debug, Clone)]
pub struct Volume {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    /// GiB
    pub size: u64,
    pub volume_type: String,
    pub bootable: bool,
    pub created_at: DateTime<Utc>,
    /// Deleted volumes vanish from the API from this time on, as in Cinder.
    pub deleted_at: Option<DateTime<Utc>>,
    pub attachments: Vec<VolumeAttachment>,
    pub availability_zone: String,
}

impl Volume {
    /// Whether the volume is listed at `now`.
    pub fn visible_at(&self, now: DateTime<Utc>) -> bool {
        self.created_at <= now && self.deleted_at.is_none_or(|d| d > now)
    }

    /// Attachments active at `now`.
    pub fn attachments_at(&self, now: DateTime<Utc>) -> impl Iterator<Item = &VolumeAttachment> {
        self.attachments.iter().filter(move |a| a.attached_at <= now && a.detached_at.is_none_or(|d| d > now))
    }

    /// `in-use` when attached at `now`, otherwise `available`.
    pub fn status_at(&self, now: DateTime<Utc>) -> &'static str {
        if self.attachments_at(now).next().is_some() { "in-use" } else { "available" }
    }

    /// Last change visible at `now`.
    pub fn updated_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut t = self.created_at;
        for a in &self.attachments {
            if a.attached_at <= now {
                t = t.max(a.attached_at);
            }
            if let Some(d) = a.detached_at.filter(|d| *d <= now) {
                t = t.max(d);
            }
        }
        t
    }
}

#[derive(Debug, Clone)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub external: bool,
    pub shared: bool,
    /// Subnet CIDRs (v4 and v6).
    pub cidrs: Vec<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Port {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub network_id: String,
    /// Server id for compute ports, "" otherwise.
    pub device_id: String,
    /// e.g. `compute:nova`, `network:floatingip`
    pub device_owner: String,
    pub mac_address: String,
    /// Addresses on this port.
    pub fixed_ips: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Port {
    pub fn visible_at(&self, now: DateTime<Utc>) -> bool {
        self.created_at <= now && self.deleted_at.is_none_or(|d| d > now)
    }
}

/// A floating IP's association with a port over a time interval.
#[derive(Debug, Clone)]
pub struct FipAssociation {
    pub port_id: String,
    pub fixed_ip: String,
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct FloatingIp {
    pub id: String,
    pub project_id: String,
    pub floating_network_id: String,
    pub address: String,
    /// 4 or 6
    pub version: u8,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub associations: Vec<FipAssociation>,
    pub description: String,
}

impl FloatingIp {
    pub fn visible_at(&self, now: DateTime<Utc>) -> bool {
        self.created_at <= now && self.deleted_at.is_none_or(|d| d > now)
    }

    /// The association in effect at `now`, if any.
    pub fn association_at(&self, now: DateTime<Utc>) -> Option<&FipAssociation> {
        self.associations.iter().find(|a| a.from <= now && a.to.is_none_or(|t| t > now))
    }

    /// ACTIVE when associated at `now`, DOWN otherwise.
    pub fn status_at(&self, now: DateTime<Utc>) -> &'static str {
        if self.association_at(now).is_some() { "ACTIVE" } else { "DOWN" }
    }
}

/// Compute quota set of a project.
#[derive(Debug, Clone)]
pub struct Quota {
    pub instances: i64,
    pub cores: i64,
    pub ram: i64,
    pub key_pairs: i64,
    pub server_groups: i64,
    pub server_group_members: i64,
    pub metadata_items: i64,
}

impl Default for Quota {
    /// Nova's defaults.
    fn default() -> Self {
        Quota {
            instances: 10,
            cores: 20,
            ram: 51200,
            key_pairs: 100,
            server_groups: 10,
            server_group_members: 10,
            metadata_items: 128,
        }
    }
}

/// Block storage quota set of a project (-1 = unlimited).
#[derive(Debug, Clone)]
pub struct VolumeQuota {
    pub volumes: i64,
    pub gigabytes: i64,
    pub snapshots: i64,
    pub backups: i64,
    pub backup_gigabytes: i64,
    pub groups: i64,
    pub per_volume_gigabytes: i64,
}

impl Default for VolumeQuota {
    /// Cinder's defaults.
    fn default() -> Self {
        VolumeQuota {
            volumes: 10,
            gigabytes: 1000,
            snapshots: 10,
            backups: 10,
            backup_gigabytes: 1000,
            groups: 10,
            per_volume_gigabytes: -1,
        }
    }
}

/// Network quota set of a project (-1 = unlimited).
#[derive(Debug, Clone)]
pub struct NetworkQuota {
    pub floatingip: i64,
    pub network: i64,
    pub port: i64,
    pub router: i64,
    pub subnet: i64,
    pub subnetpool: i64,
    pub security_group: i64,
    pub security_group_rule: i64,
    pub rbac_policy: i64,
}

impl Default for NetworkQuota {
    /// Neutron's defaults.
    fn default() -> Self {
        NetworkQuota {
            floatingip: 50,
            network: 100,
            port: 500,
            router: 10,
            subnet: 100,
            subnetpool: -1,
            security_group: 10,
            security_group_rule: 100,
            rbac_policy: 10,
        }
    }
}

impl Site {
    pub fn project(&self, id: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.id == id)
    }
    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }
    pub fn flavor(&self, id: &str) -> Option<&Flavor> {
        self.flavors.iter().find(|f| f.id == id)
    }
    /// Deletes flavor `id` as Nova does: gone from listings, `GET /flavors/{id}` (404) and
    /// its extra specs, while the servers that used it keep their embedded copy. The
    /// flavor deleted, if there was one.
    pub fn delete_flavor(&mut self, id: &str) -> Option<Flavor> {
        let i = self.flavors.iter().position(|f| f.id == id)?;
        Some(self.flavors.remove(i))
    }
    pub fn image(&self, id: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.id == id)
    }
    pub fn server(&self, id: &str) -> Option<&Server> {
        self.servers.iter().find(|s| s.id == id)
    }
    pub fn role(&self, id: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.id == id)
    }
    pub fn role_by_name(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }
}

/// A map keyed by project id ([`Site::rehome_project`]).
trait Rekey {
    fn rekey(&mut self, from: &str, to: &str);
}

impl<V> Rekey for BTreeMap<String, V> {
    fn rekey(&mut self, from: &str, to: &str) {
        if let Some(v) = self.remove(from) {
            self.insert(to.to_owned(), v);
        }
    }
}
