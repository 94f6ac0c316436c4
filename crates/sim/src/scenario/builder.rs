//! The site builder: the well-known base (domain, roles, admin project,
//! accounts, public network) and the explicit entities of a spec, with the
//! id/MAC/host helpers the generator shares.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha224, Sha256};

use crate::model::*;

use super::spec::*;
use super::{ACCOUNTING_USER, ADMIN_PROJECT, ADMIN_USER, PASSWORD};

/// 32 lowercase hex from a name, stable across scenarios and seeds.
pub(super) fn stable_hex(name: &str) -> String {
    hex::encode(&Sha256::digest(name.as_bytes())[..16])
}

pub(super) fn hex32(rng: &mut ChaCha8Rng) -> String {
    format!("{:032x}", rng.random::<u128>())
}

/// A random UUID v4 in canonical form.
pub(super) fn uuid4(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random::<[u8; 16]>()).into_uuid().to_string()
}

pub(super) fn mac(rng: &mut ChaCha8Rng) -> String {
    let b: [u8; 3] = rng.random();
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

pub(super) fn pick_weighted<'a>(rng: &mut ChaCha8Rng, items: &'a [(String, f64)]) -> &'a str {
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
pub(super) struct ServerLink {
    pub(super) idx: usize,
    pub(super) port_id: String,
    pub(super) fixed_ip: String,
    pub(super) deleted_at: Option<DateTime<Utc>>,
}

pub(super) struct Builder<'a> {
    pub(super) spec: &'a ScenarioSpec,
    pub(super) rng: ChaCha8Rng,
    pub(super) site: Site,
    pub(super) reference: DateTime<Utc>,
    /// Time infrastructure (networks, default images) dates from.
    pub(super) infra_time: DateTime<Utc>,
    pub(super) admin_project: String,
    pub(super) public_net: String,
    /// project id → private network id
    pub(super) private_nets: HashMap<String, String>,
    /// project id → next host number on its private network
    pub(super) next_host: HashMap<String, u32>,
    pub(super) hosts: Vec<String>,
}

impl<'a> Builder<'a> {
    pub(super) fn new(spec: &'a ScenarioSpec) -> Self {
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

    pub(super) fn quiet(&self, t: DateTime<Utc>) -> bool {
        t > self.reference && t <= self.reference + Duration::days(1)
    }

    /// Domain, roles, the admin project, the well-known users, the public network.
    pub(super) fn base(&mut self) {
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

    pub(super) fn add_private_net(&mut self, project_id: &str) {
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

    pub(super) fn next_fixed_ip(&mut self, project_id: &str) -> String {
        let n = self.next_host.entry(project_id.into()).or_insert(10);
        let h = *n;
        *n += 1;
        format!("10.0.{}.{}", h / 250, h % 250 + 2)
    }

    pub(super) fn host_id(&mut self, project_id: &str) -> String {
        if self.hosts.is_empty() {
            self.hosts = (1..=8).map(|i| format!("compute-{i:02}")).collect();
        }
        let h = &self.hosts[self.rng.random_range(0..self.hosts.len())];
        hex::encode(Sha224::digest(format!("{project_id}{h}").as_bytes()))
    }

    /// Adds a server, its compute port and returns linking facts.
    pub(super) fn push_server(&mut self, mut server: Server, port_name: String) -> ServerLink {
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

    pub(super) fn push_fip(&mut self, mut fip: FloatingIp) {
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
    /// or breaks the time rules. Entities are added in file order, kind by
    /// kind, each kind resolving its references against the kinds before it.
    pub(super) fn explicit(&mut self) -> Result<(), String> {
        let mut refs = Refs::default();
        refs.projects.insert(ADMIN_PROJECT.into(), self.admin_project.clone());
        refs.projects.insert(self.admin_project.clone(), self.admin_project.clone());
        for u in &self.site.users {
            refs.users.insert(u.name.clone(), u.id.clone());
            refs.users.insert(u.id.clone(), u.id.clone());
        }
        self.explicit_users(&mut refs)?;
        self.explicit_projects(&mut refs)?;
        self.explicit_flavors(&mut refs)?;
        self.explicit_images(&mut refs)?;
        self.explicit_servers(&mut refs)?;
        self.explicit_volumes(&refs)?;
        self.explicit_floating_ips(&refs)
    }

    /// `[[user]]`: ids and names must be new.
    fn explicit_users(&mut self, refs: &mut Refs) -> Result<(), String> {
        let spec = self.spec;
        for u in &spec.users {
            let id = u.id.clone().unwrap_or_else(|| hex32(&mut self.rng));
            if refs.users.contains_key(&id) || refs.users.contains_key(&u.name) {
                return Err(format!("user {:?}: duplicate id or name", u.name));
            }
            refs.users.insert(u.name.clone(), id.clone());
            refs.users.insert(id.clone(), id.clone());
            self.site.users.push(User {
                id,
                name: u.name.clone(),
                domain_id: "default".into(),
                password: u.password.clone().unwrap_or_else(|| PASSWORD.into()),
                enabled: true,
                email: u.email.clone(),
            });
        }
        Ok(())
    }

    /// `[[project]]`: ids and names must be new; members get role `member`,
    /// and each project its private network.
    fn explicit_projects(&mut self, refs: &mut Refs) -> Result<(), String> {
        let spec = self.spec;
        let member = stable_hex("role:member");
        for p in &spec.projects {
            let id = p.id.clone().unwrap_or_else(|| hex32(&mut self.rng));
            if refs.projects.contains_key(&id) || refs.projects.contains_key(&p.name) {
                return Err(format!("project {:?}: duplicate id or name", p.name));
            }
            refs.projects.insert(p.name.clone(), id.clone());
            refs.projects.insert(id.clone(), id.clone());
            for m in &p.members {
                let uid = refs.users.get(m).ok_or_else(|| format!("project {:?}: unknown member {m:?}", p.name))?;
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
        Ok(())
    }

    /// `[[flavor]]`: ids must be new; `access` names projects.
    fn explicit_flavors(&mut self, refs: &mut Refs) -> Result<(), String> {
        let spec = self.spec;
        for f in &spec.flavors {
            let access = f
                .access
                .iter()
                .map(|a| refs.project(&format!("flavor {:?}", f.id), a))
                .collect::<Result<Vec<_>, _>>()?;
            let flavor = Flavor { access, ..flavor_from(f) };
            if refs.flavors.insert(f.id.clone(), flavor.clone()).is_some() {
                return Err(format!("flavor {:?}: duplicate id", f.id));
            }
            self.site.flavors.push(flavor);
        }
        Ok(())
    }

    /// `[[image]]`, owned by the admin project unless `owner` says otherwise,
    /// created with the infrastructure unless `created` says otherwise.
    fn explicit_images(&mut self, refs: &mut Refs) -> Result<(), String> {
        let spec = self.spec;
        for i in &spec.images {
            let what = format!("image {:?}", i.name);
            let id = i.id.clone().unwrap_or_else(|| uuid4(&mut self.rng));
            let owner = match &i.owner {
                Some(o) => refs.project(&what, o)?,
                None => self.admin_project.clone(),
            };
            let created = i.created.map_or(self.infra_time, |t| t.0);
            if self.quiet(created) {
                return Err(format!("{what}: created in the quiet day"));
            }
            refs.images.insert(i.name.clone(), id.clone());
            refs.images.insert(id.clone(), id.clone());
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

        Ok(())
    }

    /// `[[server]]`: a BUILD event at `created`, then the given events in time
    /// order, with its compute port on the project's private network.
    fn explicit_servers(&mut self, refs: &mut Refs) -> Result<(), String> {
        let spec = self.spec;
        for s in &spec.servers {
            let what = format!("server {:?}", s.name);
            let project_id = refs.project(&what, &s.project)?;
            let user_id = refs.user(&what, &s.user)?;
            let fl = refs.flavor(&what, &s.flavor)?;
            let image_id = match &s.image {
                Some(i) => Some(refs.images.get(i).cloned().ok_or_else(|| format!("{what}: unknown image {i:?}"))?),
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
                    flavor: e.flavor.as_ref().map(|f| refs.flavor(&what, f)).transpose()?,
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
            refs.server_names.insert(s.name.clone(), id.clone());
            refs.servers.insert(id, link);
        }
        Ok(())
    }

    /// `[[volume]]` and its attachments (detached when the server or volume
    /// goes, unless `detached` says when).
    fn explicit_volumes(&mut self, refs: &Refs) -> Result<(), String> {
        let spec = self.spec;
        for v in &spec.volumes {
            let what = format!("volume {:?}", v.name);
            let mut attachments = vec![];
            for (n, a) in v.attachments.iter().enumerate() {
                let link = refs.server(&what, &a.server)?;
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
                project_id: refs.project(&what, &v.project)?,
                user_id: refs.user(&what, &v.user)?,
                size: v.size,
                volume_type: v.volume_type.clone().unwrap_or_else(|| "__DEFAULT__".into()),
                bootable: v.bootable,
                created_at: v.created.0,
                deleted_at: v.deleted.map(|t| t.0),
                attachments,
                availability_zone: "nova".into(),
            });
        }

        Ok(())
    }

    /// `[[floating_ip]]`, associated with a server's port from `associated`
    /// (or its creation) until `disassociated`, the server's deletion or its own.
    fn explicit_floating_ips(&mut self, refs: &Refs) -> Result<(), String> {
        let spec = self.spec;
        for f in &spec.floating_ips {
            let what = format!("floating ip {:?}", f.address);
            if f.address.parse::<std::net::IpAddr>().is_err() {
                return Err(format!("{what}: not an IP address"));
            }
            let mut associations = vec![];
            if let Some(sref) = &f.server {
                let link = refs.server(&what, sref)?;
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
                project_id: refs.project(&what, &f.project)?,
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
    pub(super) fn finish(&mut self) {
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

/// What the explicit entities resolve their references against: each map
/// takes a name or an id to the id (or the flavor, or the server's links).
#[derive(Default)]
struct Refs {
    projects: HashMap<String, String>,
    users: HashMap<String, String>,
    flavors: HashMap<String, Flavor>,
    images: HashMap<String, String>,
    /// server id → links
    servers: HashMap<String, ServerLink>,
    /// server name → id
    server_names: HashMap<String, String>,
}

impl Refs {
    fn project(&self, what: &str, r: &str) -> Result<String, String> {
        self.projects.get(r).cloned().ok_or_else(|| format!("{what}: unknown project {r:?}"))
    }

    fn user(&self, what: &str, r: &str) -> Result<String, String> {
        self.users.get(r).cloned().ok_or_else(|| format!("{what}: unknown user {r:?}"))
    }

    fn flavor(&self, what: &str, r: &FlavorRef) -> Result<Flavor, String> {
        match r {
            FlavorRef::Id(id) => self.flavors.get(id).cloned().ok_or_else(|| format!("{what}: unknown flavor {id:?}")),
            FlavorRef::Inline(f) => Ok(flavor_from(f)),
        }
    }

    /// A server by name or id.
    fn server(&self, what: &str, r: &str) -> Result<&ServerLink, String> {
        let id = self.server_names.get(r).map(String::as_str).unwrap_or(r);
        self.servers.get(id).ok_or_else(|| format!("{what}: unknown server {r:?}"))
    }
}

pub(super) fn flavor_from(f: &FlavorSpec) -> Flavor {
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
