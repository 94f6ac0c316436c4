//! The VM start probe, as EGI's `eu.egi.cloud.OpenStack-VM` (novaprobe):
//! as the `ops` VO, remove leftover probe servers, pick the monitoring
//! image, the smallest flavor that fits it and a network, boot, wait for
//! ACTIVE, delete.

use openstack::Paged;
use std::time::Instant;

use openstack::glance::{Image, ListImages};
use openstack::neutron::ListNetworks;
use openstack::nova::{self, Flavor, ListFlavors, ListServers};
use openstack::{Scope, Session};

use crate::check::Check;
use crate::config::CheckConfig;

/// Name prefix of probe servers (leftovers are removed before each run).
pub const NAME_PREFIX: &str = "fedsite-probe-";
/// AppDB id of EGI's monitoring image.
pub const MONITORING_APPID: &str = "1017";

/// The monitoring image: by name or id when given, else the newest active
/// image with `ad:appid` 1017 or "monitoring" in its name.
pub fn pick_image<'a>(images: &'a [Image], wanted: Option<&str>) -> Option<&'a Image> {
    let active = images.iter().filter(|i| i.status == "active");
    match wanted {
        Some(w) => active.clone().find(|i| i.id == w).or_else(|| active.clone().find(|i| i.name.as_deref() == Some(w))),
        None => active
            .filter(|i| {
                i.property("ad:appid") == Some(MONITORING_APPID)
                    || i.name.as_deref().is_some_and(|n| n.to_ascii_lowercase().contains("monitoring"))
            })
            .max_by_key(|i| i.created_at),
    }
}

/// The smallest flavor (vCPUs, RAM, disk) that fits the image and has no GPU.
pub fn pick_flavor<'a>(flavors: &'a [Flavor], image: &Image, wanted: Option<&str>) -> Option<&'a Flavor> {
    if let Some(w) = wanted {
        return flavors.iter().find(|f| f.id == w).or_else(|| flavors.iter().find(|f| f.name == w));
    }
    flavors
        .iter()
        .filter(|f| !f.disabled && !crate::flavors::is_gpu(f))
        .filter(|f| f.ram >= image.min_ram.unwrap_or(0))
        .filter(|f| f.disk == 0 || f.disk >= image.min_disk.unwrap_or(0))
        .min_by_key(|f| (f.vcpus, f.ram, f.disk, f.id.clone()))
}

async fn session_for(
    cfg: &CheckConfig,
    probe: Option<&Session>,
    admin: Option<&Session>,
) -> Result<Session, (String, String)> {
    if let Some(s) = probe {
        return Ok(s.clone());
    }
    let Some(admin) = admin else {
        return Err((
            "no session to run the probe with".into(),
            "give --probe-cloud (a member of the ops VO project)".into(),
        ));
    };
    let vo = &cfg.probe.vo;
    let project = cfg.vos.iter().find(|v| &v.vo == vo).map(|v| v.project.clone()).unwrap_or_else(|| vo.clone());
    let projects = openstack::keystone::ListProjects::default().list(admin).await.unwrap_or_default();
    let Some(p) = projects.iter().find(|p| p.id == project || p.name == project) else {
        return Err((
            format!("the {vo} VO's project {project} does not exist"),
            format!(
                "create the {vo} project (openstack project create --property egi.VO={vo} {vo}) and map the VO to it"
            ),
        ));
    };
    admin.rescope(Scope::project_id(p.id.clone())).await.map_err(|e| {
        (
            format!("cannot scope to the {vo} project {} ({}): {e}", p.name, p.id),
            format!("give --probe-cloud, or a role on project {} to the account of --os-cloud", p.name),
        )
    })
}

/// The vm family: one check.
pub async fn run(cfg: &CheckConfig, probe: Option<&Session>, admin: Option<&Session>) -> Vec<Check> {
    let p = &cfg.probe;
    let tested = format!(
        "as VO {}: monitoring image, smallest fitting flavor, a network; boot, ACTIVE within {} s, delete",
        p.vo,
        p.vm_timeout.as_secs()
    );
    if !p.enabled {
        return vec![Check::skipped("vm.start", tested, "disabled (--no-vm-probe)")];
    }
    let s = match session_for(cfg, probe, admin).await {
        Ok(s) => s,
        Err((m, f)) => return vec![Check::critical("vm.start", tested, m, f)],
    };
    match start_and_delete(cfg, &s).await {
        Ok(run) => vec![Check::ok("vm.start", tested, run.message)],
        Err(f) => vec![Check::critical("vm.start", tested, f.message, f.fix)],
    }
}

/// A probe server that became ACTIVE and was deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct VmRun {
    pub message: String,
    /// Seconds from the boot request to ACTIVE.
    pub active_secs: f32,
}

/// Why the probe failed: what happened and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct VmFailure {
    pub message: String,
    pub fix: String,
}

impl From<(String, String)> for VmFailure {
    fn from((message, fix): (String, String)) -> VmFailure {
        VmFailure { message, fix }
    }
}

/// As the session's project (the probe VO's): removes leftover probe servers, boots one
/// on the monitoring image and the smallest fitting flavor, waits for ACTIVE, deletes it.
pub async fn start_and_delete(cfg: &CheckConfig, s: &Session) -> Result<VmRun, VmFailure> {
    probe_once(cfg, s).await.map_err(VmFailure::from)
}

async fn probe_once(cfg: &CheckConfig, s: &Session) -> Result<VmRun, (String, String)> {
    let p = &cfg.probe;
    let api = |what: &str, e: openstack::Error| {
        (format!("{what}: {e}"), "read the error; the API and its account must work for EGI's users too".to_string())
    };
    // Leftovers of earlier runs.
    let mine = ListServers::default().list(s).await.map_err(|e| api("listing servers", e))?;
    for old in mine.iter().filter(|v| v.name.as_deref().is_some_and(|n| n.starts_with(NAME_PREFIX))) {
        let _ = nova::server_ops::delete(s, &old.id).await;
    }
    let images =
        ListImages { limit: Some(1000), ..Default::default() }.list(s).await.map_err(|e| api("listing images", e))?;
    let Some(image) = pick_image(&images, p.image.as_deref()) else {
        return Err((
            match &p.image {
                Some(w) => format!("no active image {w} visible to the {} project", p.vo),
                None => format!(
                    "no monitoring image (ad:appid {MONITORING_APPID} or \"monitoring\" in the name) visible to the {} project among {} images",
                    p.vo,
                    images.len()
                ),
            },
            format!("sync the EGI monitoring image for the {} VO (image sync) or name one with --probe-image", p.vo),
        ));
    };
    let flavors = ListFlavors::default().list(s).await.map_err(|e| api("listing flavors", e))?;
    let Some(flavor) = pick_flavor(&flavors, image, p.flavor.as_deref()) else {
        return Err((
            format!(
                "no flavor fits image {} (min RAM {} MB, min disk {} GB) among {} flavors",
                image.name.as_deref().unwrap_or(&image.id),
                image.min_ram.unwrap_or(0),
                image.min_disk.unwrap_or(0),
                flavors.len()
            ),
            format!("make a small public flavor available to the {} project", p.vo),
        ));
    };
    let pid = s.project_id().await.ok().flatten().unwrap_or_default();
    let network = match &p.network {
        Some(n) => Some(n.clone()),
        None => {
            let nets = ListNetworks::default().list(s).await.map_err(|e| api("listing networks", e))?;
            let usable: Vec<_> = nets.iter().filter(|n| !n.external).collect();
            let own = usable.iter().find(|n| n.project_id.as_deref() == Some(pid.as_str()));
            match own.or_else(|| usable.iter().find(|n| n.shared)) {
                Some(n) => Some(n.id.clone()),
                None => {
                    return Err((
                        format!("no network the {} project can boot on (own or shared, not external)", p.vo),
                        format!("create a network and subnet in the {} project, or share one with it", p.vo),
                    ));
                }
            }
        }
    };
    let name = format!("{NAME_PREFIX}{}", cfg.now.format("%Y%m%dT%H%M%S"));
    let create = nova::server_ops::CreateServer {
        name: name.clone(),
        image_id: image.id.clone(),
        flavor_id: flavor.id.clone(),
        network_id: network.clone(),
        metadata: vec![("eu.egi.cloud.probe".into(), "fedsite check".into())],
    };
    let started = Instant::now();
    let id = create.send(s).await.map_err(|e| {
        (
            format!("booting {name} (image {}, flavor {}) failed: {e}", image.id, flavor.name),
            "read Nova's message: quota, image or flavor access, network".to_string(),
        )
    })?;
    let outcome = wait_active(s, &id, p).await;
    let took = started.elapsed().as_secs_f32();
    let deleted = nova::server_ops::delete(s, &id).await;
    let gone = match &deleted {
        Ok(()) => wait_gone(s, &id, p).await,
        Err(_) => false,
    };
    match outcome {
        Ok(()) => match deleted {
            Err(e) => Err((
                format!("{name} ({id}) became ACTIVE in {took:.1} s but deleting it failed: {e}"),
                format!("delete it by hand: openstack server delete {id}"),
            )),
            Ok(()) => Ok(VmRun {
                message: format!(
                    "{name} ({id}) on image {}, flavor {}, network {}: ACTIVE in {took:.1} s, deleted{}",
                    image.name.as_deref().unwrap_or(&image.id),
                    flavor.name,
                    network.as_deref().unwrap_or("auto"),
                    if gone { "" } else { " (still going)" }
                ),
                active_secs: took,
            }),
        },
        Err((status, detail)) => Err((
            format!(
                "{name} ({id}) on image {}, flavor {}: {status} after {took:.1} s{detail}; it was deleted{}",
                image.name.as_deref().unwrap_or(&image.id),
                flavor.name,
                if deleted.is_ok() { "" } else { " — deleting it failed too" }
            ),
            format!(
                "look at why the server does not start: openstack server show {id} (fault), nova-scheduler and nova-compute logs, free capacity on the compute hosts"
            ),
        )),
    }
}

/// Ok once ACTIVE; Err((status text, fault detail)) on ERROR or timeout.
async fn wait_active(s: &Session, id: &str, p: &crate::config::ProbeConfig) -> Result<(), (String, String)> {
    let deadline = Instant::now() + p.vm_timeout;
    loop {
        let last = match nova::servers::get(s, id).await {
            Ok(v) if v.status == "ACTIVE" => return Ok(()),
            Ok(v) if v.status == "ERROR" => {
                let fault = v.extra.get("fault").and_then(|f| f.get("message")).and_then(|m| m.as_str());
                return Err(("ERROR".into(), fault.map(|f| format!(" ({f})")).unwrap_or_default()));
            }
            Ok(v) => v.status,
            Err(e) => format!("unreadable ({e})"),
        };
        if Instant::now() >= deadline {
            return Err((format!("still {last}, not ACTIVE within {} s", p.vm_timeout.as_secs()), String::new()));
        }
        tokio::time::sleep(p.poll_interval).await;
    }
}

/// True once the server is gone (404 or DELETED), polling at most 30 s.
async fn wait_gone(s: &Session, id: &str, p: &crate::config::ProbeConfig) -> bool {
    let deadline = Instant::now() + p.vm_timeout.min(std::time::Duration::from_secs(30));
    loop {
        match nova::servers::get(s, id).await {
            Err(e) if e.is_not_found() => return true,
            Ok(v) if v.status == "DELETED" => return true,
            _ => {}
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(p.poll_interval).await;
    }
}
