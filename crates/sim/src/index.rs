//! Listing indexes: the site's servers, volumes, ports and floating IPs in
//! the orders the listing endpoints answer in, built once per view of the
//! site and shared by every request that sees the same view, so a page of
//! 1,000 costs about 1,000 and not the size of the site.
//!
//! Owns when a view stays valid: the site's write generation (every
//! `SiteLock::write` bumps it) and the interval between two of the site's
//! time points (creations, events, launches, deletions, attachments,
//! associations) that holds the view time. Within that interval every
//! "viewed at t" rule of `model` gives the same answer, so moving the
//! reference time (or the wall clock) inside it changes nothing, and moving
//! it outside rebuilds. Indexes hold positions into the site's vectors,
//! valid for the generation they were built for; a site with duplicate ids
//! (which the indexes' id maps could not tell apart) is flagged so the
//! handlers keep their full scans.
//!
//! A view also keeps the JSON of every server a `servers/detail` page has
//! rendered in it ([`Rendered`]), so a page asked again (the next hourly
//! run, a second client) is answered by concatenating those fragments.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};

use crate::model::Site;

/// Positions in one of the site's vectors (`u32` keeps the indexes small).
pub type Positions = Vec<u32>;

/// Every index of one view of the site, each built on first use.
pub struct Listings {
    generation: u64,
    /// The view holds for times in `[from, until)`; None is unbounded.
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    /// A time inside the interval, the one the indexes are built at.
    at: DateTime<Utc>,
    servers: OnceLock<ServerIndex>,
    volumes: OnceLock<VolumeIndex>,
    network: OnceLock<NetworkIndex>,
    servers_json: Rendered,
}

/// Items already rendered in one view, by (position in the site's vector,
/// variant of the rendering: microversion, role, ...), as serialized JSON.
/// Valid for the view's whole life: an item's JSON depends only on the site
/// at the view's generation and time, and on the variant.
#[derive(Default)]
pub struct Rendered(Mutex<HashMap<(u32, u64), Arc<str>>>);

impl Rendered {
    /// The rendered JSON of each of `positions` in `variant`, None where not yet rendered.
    pub fn get_many(&self, positions: impl Iterator<Item = u32>, variant: u64) -> Vec<Option<Arc<str>>> {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        positions.map(|p| m.get(&(p, variant)).cloned()).collect()
    }

    /// Keeps the rendered JSON of `position` in `variant`.
    pub fn put(&self, items: impl Iterator<Item = (u32, Arc<str>)>, variant: u64) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (p, json) in items {
            m.insert((p, variant), json);
        }
    }
}

impl Listings {
    /// The (empty, lazily filled) indexes of `site` (write generation
    /// `generation`) viewed at `now`.
    pub fn new(site: &Site, generation: u64, now: DateTime<Utc>) -> Listings {
        let (from, until) = view_interval(site, now);
        Listings {
            generation,
            from,
            until,
            at: now,
            servers: OnceLock::new(),
            volumes: OnceLock::new(),
            network: OnceLock::new(),
            servers_json: Rendered::default(),
        }
    }

    /// Whether these indexes answer for the site at `generation` viewed at `now`.
    pub fn covers(&self, generation: u64, now: DateTime<Utc>) -> bool {
        self.generation == generation && self.from.is_none_or(|f| f <= now) && self.until.is_none_or(|u| now < u)
    }

    /// `site` must be the site these indexes were made for (same generation).
    pub fn servers(&self, site: &Site) -> &ServerIndex {
        self.servers.get_or_init(|| ServerIndex::build(site, self.at))
    }

    pub fn volumes(&self, site: &Site) -> &VolumeIndex {
        self.volumes.get_or_init(|| VolumeIndex::build(site, self.at))
    }

    pub fn network(&self, site: &Site) -> &NetworkIndex {
        self.network.get_or_init(|| NetworkIndex::build(site, self.at))
    }

    /// Servers rendered in this view (`servers/detail` items).
    pub fn servers_json(&self) -> &Rendered {
        &self.servers_json
    }
}

/// The latest time point of the site at or before `now` and the first one
/// after it: between them no server, volume, port, floating IP or network
/// changes how it looks.
fn view_interval(site: &Site, now: DateTime<Utc>) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let mut from: Option<DateTime<Utc>> = None;
    let mut until: Option<DateTime<Utc>> = None;
    let mut see = |t: DateTime<Utc>| {
        if t <= now {
            from = Some(from.map_or(t, |f| f.max(t)));
        } else {
            until = Some(until.map_or(t, |u| u.min(t)));
        }
    };
    for s in &site.servers {
        see(s.created);
        s.launched_at.into_iter().for_each(&mut see);
        s.events.iter().for_each(|e| see(e.at));
    }
    for v in &site.volumes {
        see(v.created_at);
        v.deleted_at.into_iter().for_each(&mut see);
        for a in &v.attachments {
            see(a.attached_at);
            a.detached_at.into_iter().for_each(&mut see);
        }
    }
    for p in &site.ports {
        see(p.created_at);
        p.deleted_at.into_iter().for_each(&mut see);
    }
    for f in &site.floating_ips {
        see(f.created_at);
        f.deleted_at.into_iter().for_each(&mut see);
        for a in &f.associations {
            see(a.from);
            a.to.into_iter().for_each(&mut see);
        }
    }
    for n in &site.networks {
        see(n.created_at);
    }
    (from, until)
}

fn pos(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn all_unique<'a>(ids: impl Iterator<Item = &'a str>) -> bool {
    let mut seen = HashSet::new();
    ids.into_iter().all(|id| seen.insert(id))
}

/// One scope's servers in listing order, split by the `deleted` filter.
#[derive(Default)]
pub struct ServerLists {
    pub all: Positions,
    pub alive: Positions,
    pub deleted: Positions,
}

impl ServerLists {
    /// The list the `deleted` filter selects (None: deleted or not).
    pub fn get(&self, deleted: Option<bool>) -> &[u32] {
        match deleted {
            None => &self.all,
            Some(false) => &self.alive,
            Some(true) => &self.deleted,
        }
    }

    fn push(&mut self, p: u32, deleted: bool) {
        self.all.push(p);
        if deleted { self.deleted.push(p) } else { self.alive.push(p) }
    }
}

/// Rank of a server that does not exist at the view time.
pub const ABSENT: u32 = u32::MAX;

/// Nova's servers at one view.
pub struct ServerIndex {
    /// Ids are unique across `site.servers` (else the handlers scan).
    pub unique_ids: bool,
    /// Every existing server in Nova's default listing order
    /// (`created_at` desc, then the internal id, here the position, desc),
    /// split by deleted or not.
    pub order: ServerLists,
    /// Per position in `site.servers`: its rank in `order.all`, or [`ABSENT`].
    pub rank: Vec<u32>,
    /// Per position: `updated` and deleted as viewed (meaningful when present).
    pub updated: Vec<DateTime<Utc>>,
    pub deleted: Vec<bool>,
    /// Per project: its servers in listing order.
    pub projects: HashMap<String, ServerLists>,
    /// Existing servers by (`updated`, rank), for `changes-since`/`-before`.
    pub by_updated: Vec<(DateTime<Utc>, u32)>,
    /// Existing servers by (project id, id, position): os-simple-tenant-usage's order.
    pub usage: Positions,
    /// Id → first position in `site.servers`, existing at the view or not.
    pub first: HashMap<String, u32>,
    /// Server id → its ports (any time), in site order (MAC addresses).
    pub ports: HashMap<String, Positions>,
    /// Server id → (floating IP, association) associated at the view through
    /// one of its visible ports, in site order.
    pub floating: HashMap<String, Vec<(u32, u32)>>,
    /// Server id → volumes attached at the view, one per attachment, in site order.
    pub attached: HashMap<String, Positions>,
    /// Every volume id of the site (any time).
    pub volume_ids: HashSet<String>,
}

impl ServerIndex {
    pub fn build(site: &Site, at: DateTime<Utc>) -> ServerIndex {
        let n = site.servers.len();
        let mut updated = vec![DateTime::<Utc>::MIN_UTC; n];
        let mut deleted = vec![false; n];
        let mut existing: Vec<u32> = Vec::new();
        for (i, s) in site.servers.iter().enumerate() {
            if let Some(v) = s.view_at(at) {
                updated[i] = v.updated;
                deleted[i] = v.deleted;
                existing.push(pos(i));
            }
        }
        let created = |p: u32| site.servers[p as usize].created;
        let mut all = existing.clone();
        all.sort_unstable_by(|a, b| created(*b).cmp(&created(*a)).then(b.cmp(a)));
        let mut rank = vec![ABSENT; n];
        let mut order = ServerLists::default();
        let mut projects: HashMap<String, ServerLists> = HashMap::new();
        for (r, &p) in all.iter().enumerate() {
            rank[p as usize] = pos(r);
            let d = deleted[p as usize];
            order.push(p, d);
            let project = &site.servers[p as usize].project_id;
            match projects.get_mut(project) {
                Some(l) => l.push(p, d),
                None => {
                    let mut l = ServerLists::default();
                    l.push(p, d);
                    projects.insert(project.clone(), l);
                }
            }
        }
        let mut by_updated: Vec<(DateTime<Utc>, u32)> =
            existing.iter().map(|&p| (updated[p as usize], rank[p as usize])).collect();
        by_updated.sort_unstable();
        let mut usage = existing;
        usage.sort_unstable_by(|a, b| {
            let (x, y) = (&site.servers[*a as usize], &site.servers[*b as usize]);
            (&x.project_id, &x.id, a).cmp(&(&y.project_id, &y.id, b))
        });
        let mut first = HashMap::with_capacity(n);
        for (i, s) in site.servers.iter().enumerate() {
            first.entry(s.id.clone()).or_insert(pos(i));
        }
        let unique_ids = first.len() == n;

        let mut ports: HashMap<String, Positions> = HashMap::new();
        let mut owner: HashMap<&str, &str> = HashMap::new();
        for (i, p) in site.ports.iter().enumerate() {
            if p.device_id.is_empty() {
                continue;
            }
            ports.entry(p.device_id.clone()).or_default().push(pos(i));
            if p.visible_at(at) {
                owner.insert(&p.id, &p.device_id);
            }
        }
        let unique_ports = all_unique(site.ports.iter().map(|p| p.id.as_str()));
        let mut floating: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        for (i, f) in site.floating_ips.iter().enumerate().filter(|(_, f)| f.visible_at(at)) {
            let Some((k, a)) =
                f.associations.iter().enumerate().find(|(_, a)| a.from <= at && a.to.is_none_or(|t| t > at))
            else {
                continue;
            };
            if let Some(sid) = owner.get(a.port_id.as_str()) {
                floating.entry(sid.to_string()).or_default().push((pos(i), pos(k)));
            }
        }
        let mut attached: HashMap<String, Positions> = HashMap::new();
        for (i, v) in site.volumes.iter().enumerate().filter(|(_, v)| v.visible_at(at)) {
            for a in v.attachments_at(at) {
                attached.entry(a.server_id.clone()).or_default().push(pos(i));
            }
        }
        let volume_ids = site.volumes.iter().map(|v| v.id.clone()).collect();
        ServerIndex {
            unique_ids: unique_ids && unique_ports,
            order,
            rank,
            updated,
            deleted,
            projects,
            by_updated,
            usage,
            first,
            ports,
            floating,
            attached,
            volume_ids,
        }
    }

    /// Existing servers of `project` (every project when None) in listing
    /// order, as the `deleted` filter selects them.
    pub fn list(&self, project: Option<&str>, deleted: Option<bool>) -> &[u32] {
        match project {
            None => self.order.get(deleted),
            Some(p) => self.projects.get(p).map_or(&[], |l| l.get(deleted)),
        }
    }

    /// Position of the server `id` when it exists at the view.
    pub fn existing(&self, id: &str) -> Option<u32> {
        self.first.get(id).copied().filter(|p| self.rank[*p as usize] != ABSENT)
    }

    /// The slice of `by_updated` with `updated` in `[since, before]`.
    pub fn changed(&self, since: Option<DateTime<Utc>>, before: Option<DateTime<Utc>>) -> &[(DateTime<Utc>, u32)] {
        let lo = since.map_or(0, |t| self.by_updated.partition_point(|(u, _)| *u < t));
        let hi = before.map_or(self.by_updated.len(), |t| self.by_updated.partition_point(|(u, _)| *u <= t));
        self.by_updated.get(lo..hi.max(lo)).unwrap_or(&[])
    }

    /// The usage order restricted to `project` (every project when None).
    pub fn usage_of(&self, site: &Site, project: Option<&str>) -> &[u32] {
        let Some(p) = project else { return &self.usage };
        let of = |i: &u32| site.servers[*i as usize].project_id.as_str();
        let lo = self.usage.partition_point(|i| of(i) < p);
        let hi = self.usage.partition_point(|i| of(i) <= p);
        &self.usage[lo..hi.max(lo)]
    }
}

/// Cinder's volumes at one view, in its default order.
pub struct VolumeIndex {
    pub unique_ids: bool,
    /// Visible volumes, `created_at` desc then id desc.
    pub order: Positions,
    /// Per project: its visible volumes in that order.
    pub projects: HashMap<String, Positions>,
}

impl VolumeIndex {
    pub fn build(site: &Site, at: DateTime<Utc>) -> VolumeIndex {
        let vol = |p: &u32| &site.volumes[*p as usize];
        let mut order: Positions =
            site.volumes.iter().enumerate().filter(|(_, v)| v.visible_at(at)).map(|(i, _)| pos(i)).collect();
        order.sort_unstable_by(|a, b| {
            let (x, y) = (vol(a), vol(b));
            (y.created_at, &y.id).cmp(&(x.created_at, &x.id))
        });
        let mut projects: HashMap<String, Positions> = HashMap::new();
        for p in &order {
            projects.entry(vol(p).project_id.clone()).or_default().push(*p);
        }
        VolumeIndex { unique_ids: all_unique(site.volumes.iter().map(|v| v.id.as_str())), order, projects }
    }

    /// Visible volumes of `project` (every project when None), in order.
    pub fn list(&self, project: Option<&str>) -> &[u32] {
        match project {
            None => &self.order,
            Some(p) => self.projects.get(p).map_or(&[], Vec::as_slice),
        }
    }
}

/// Neutron's ports and floating IPs at one view, by id.
pub struct NetworkIndex {
    pub unique_ids: bool,
    /// Visible ports by id ascending, and per project.
    pub ports: Positions,
    pub project_ports: HashMap<String, Positions>,
    /// Visible port id → position (the port a floating IP points at).
    pub port_by_id: HashMap<String, u32>,
    /// Visible floating IPs by id ascending, and per project.
    pub fips: Positions,
    pub project_fips: HashMap<String, Positions>,
    /// Visible floating IP id → position.
    pub fip_by_id: HashMap<String, u32>,
}

impl NetworkIndex {
    pub fn build(site: &Site, at: DateTime<Utc>) -> NetworkIndex {
        let mut ports: Positions =
            site.ports.iter().enumerate().filter(|(_, p)| p.visible_at(at)).map(|(i, _)| pos(i)).collect();
        ports.sort_unstable_by(|a, b| site.ports[*a as usize].id.cmp(&site.ports[*b as usize].id));
        let mut project_ports: HashMap<String, Positions> = HashMap::new();
        for p in &ports {
            project_ports.entry(site.ports[*p as usize].project_id.clone()).or_default().push(*p);
        }
        // In site order, so the last of equal ids wins, as a scan's map.
        let mut port_by_id = HashMap::with_capacity(ports.len());
        for (i, p) in site.ports.iter().enumerate().filter(|(_, p)| p.visible_at(at)) {
            port_by_id.insert(p.id.clone(), pos(i));
        }
        let mut fips: Positions =
            site.floating_ips.iter().enumerate().filter(|(_, f)| f.visible_at(at)).map(|(i, _)| pos(i)).collect();
        fips.sort_unstable_by(|a, b| site.floating_ips[*a as usize].id.cmp(&site.floating_ips[*b as usize].id));
        let mut project_fips: HashMap<String, Positions> = HashMap::new();
        let mut fip_by_id = HashMap::with_capacity(fips.len());
        for f in &fips {
            let fip = &site.floating_ips[*f as usize];
            project_fips.entry(fip.project_id.clone()).or_default().push(*f);
            fip_by_id.insert(fip.id.clone(), *f);
        }
        let unique_ids = all_unique(site.ports.iter().map(|p| p.id.as_str()))
            && all_unique(site.floating_ips.iter().map(|f| f.id.as_str()));
        NetworkIndex { unique_ids, ports, project_ports, port_by_id, fips, project_fips, fip_by_id }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flavor, Server, ServerEvent};
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2023, 5, 1, h, 0, 0).unwrap()
    }

    fn server(id: &str, project: &str, created: u32, events: &[(u32, &str)]) -> Server {
        Server {
            id: id.into(),
            name: id.into(),
            project_id: project.into(),
            user_id: "u".into(),
            flavor: Flavor {
                id: "f".into(),
                name: "f".into(),
                vcpus: 1,
                ram: 1,
                disk: 1,
                ephemeral: 0,
                swap: 0,
                is_public: true,
                access: vec![],
                extra_specs: Default::default(),
                description: None,
            },
            image_id: None,
            created: t(created),
            launched_at: Some(t(created)),
            events: events
                .iter()
                .map(|(h, st)| ServerEvent { at: t(*h), action: "x".into(), status: st.to_string(), flavor: None })
                .collect(),
            key_name: None,
            availability_zone: "nova".into(),
            host_id: String::new(),
            fixed_ips: vec![],
            metadata: Default::default(),
            volumes_attached: vec![],
        }
    }

    fn site() -> Site {
        Site {
            servers: vec![
                server("a", "p", 1, &[(1, "ACTIVE"), (5, "DELETED")]),
                server("b", "q", 2, &[(2, "ACTIVE")]),
                server("c", "p", 2, &[(2, "ACTIVE"), (3, "SHUTOFF")]),
                server("d", "p", 8, &[(8, "ACTIVE")]),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn a_view_holds_between_two_time_points_and_for_one_generation() {
        let s = site();
        let l = Listings::new(&s, 7, t(4));
        assert!(l.covers(7, t(3)) && l.covers(7, t(4)));
        assert!(!l.covers(7, t(5)), "the deletion at 5 changes the view");
        assert!(!l.covers(7, t(2)) && !l.covers(8, t(4)));
        let late = Listings::new(&s, 7, t(9));
        assert!(late.covers(7, t(23)), "no point after the last one");
    }

    #[test]
    fn servers_are_listed_newest_first_ties_by_later_position_and_split_by_deleted() {
        let s = site();
        let ix = ServerIndex::build(&s, t(6));
        assert_eq!(ix.order.all, [2, 1, 0], "d does not exist yet; c and b tie on created");
        assert_eq!((ix.order.alive.as_slice(), ix.order.deleted.as_slice()), (&[2u32, 1][..], &[0u32][..]));
        assert_eq!(ix.list(Some("p"), None), [2, 0]);
        assert!(ix.list(Some("nope"), None).is_empty());
        assert_eq!(ix.existing("d"), None);
        assert_eq!(ix.existing("a"), Some(0));
        let changed: Vec<u32> = ix.changed(Some(t(3)), None).iter().map(|(_, r)| ix.order.all[*r as usize]).collect();
        assert_eq!(changed, [2, 0], "c stopped at 3, a deleted at 5");
        assert_eq!(ix.usage_of(&s, Some("p")), [0, 2]);
        assert_eq!(ix.usage, [0, 2, 1]);
    }

    #[test]
    fn duplicate_ids_are_flagged_so_the_handlers_scan() {
        let mut s = site();
        assert!(ServerIndex::build(&s, t(6)).unique_ids);
        s.servers.push(server("a", "q", 3, &[(3, "ACTIVE")]));
        let ix = ServerIndex::build(&s, t(6));
        assert!(!ix.unique_ids);
        assert_eq!(ix.existing("a"), Some(0), "the first of equal ids, as a scan finds it");
    }
}
