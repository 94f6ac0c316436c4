//! The `[generate]` bulk content: flavors, images, projects with their users,
//! servers with event histories, volumes and floating IPs, spread over a
//! timeline that skips the quiet day after the reference time.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::model::*;

use super::PASSWORD;
use super::builder::{Builder, hex32, pick_weighted, stable_hex, uuid4};
use super::spec::GenerateSpec;

const DAY: i64 = 86_400;

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
    pub(super) fn generated(&mut self, g: &GenerateSpec) {
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
        let mut ev: Vec<GenEvent> = vec![(v_created, "create", "BUILD", None)];
        let mut v_launch = None;
        let mut v_end = None;
        if state == "NEVER_LAUNCHED" {
            ev.push((v_created + rng.random_range(5..120), "create", "ERROR", None));
        } else {
            let vl = v_created + rng.random_range(20..300);
            v_launch = Some(vl);
            let flavors = &self.site.flavors[flavor_start..];
            v_end = launched_history(rng, g, tl, p, flavors, &flavor, &state, vl, &mut ev);
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

/// A generated event in virtual time: (time, action, status, new flavor).
type GenEvent = (i64, &'static str, &'static str, Option<Flavor>);

/// The life of a server launched at `vl` (its ACTIVE event already in `ev`):
/// stop/suspend/pause/shelve/resize round trips at random points, then the
/// event of its final `state` (for DELETED at the end of a random lifetime),
/// made strictly increasing and cut at the horizon. Returns the virtual
/// deletion time, if it is deleted before the horizon. `flavors` are the
/// generated flavors `p.flavors` indexes.
fn launched_history(
    rng: &mut ChaCha8Rng,
    g: &GenerateSpec,
    tl: &Timeline,
    p: &GenProject,
    flavors: &[Flavor],
    flavor: &Flavor,
    state: &str,
    vl: i64,
    ev: &mut Vec<GenEvent>,
) -> Option<i64> {
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
            .map(|_| &flavors[p.flavors[rng.random_range(0..p.flavors.len())]])
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
        let (a, s) = match state {
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
    ev.last().filter(|e| e.2 == "DELETED").map(|last| last.0)
}
