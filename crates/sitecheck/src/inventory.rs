//! The site inventory: projects and their VOs, flavors, servers by status,
//! volumes, floating IPs and images, gathered with an admin or system-reader
//! session in a handful of paginated list calls run concurrently.

use openstack::Paged;
use std::collections::BTreeMap;

use openstack::{Session, cinder, glance, keystone, neutron, nova};
use serde::Serialize;

/// Project properties that may hold a project's VO, in the order tried.
pub const VO_PROPERTIES: [&str; 4] = ["egi.VO", "egi.eu:VO", "egi.eu_VO", "VO"];

#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub projects: Vec<ProjectSummary>,
    pub flavors: usize,
    pub public_flavors: usize,
    /// Flavors carrying `accounting:benchmark_type`.
    pub flavors_with_benchmark: usize,
    /// Flavors carrying `Accelerator:Type`.
    pub gpu_flavors: usize,
    pub images: usize,
    /// Images with a marketplace id (`vmcatcher_event_ad_mpuri` or `ad:appid`).
    pub marketplace_images: usize,
    /// Servers by status, all projects.
    pub servers_by_status: BTreeMap<String, usize>,
    pub volumes: usize,
    pub volume_gib: u64,
    /// Floating IPs by IP version.
    pub floating_ips: BTreeMap<u8, usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectSummary {
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    /// The VO and the property it came from.
    pub vo: Option<(String, String)>,
    pub servers: usize,
    pub volumes: usize,
    pub floating_ips: usize,
}

/// Gathers the inventory. `session` must be allowed to list every project's
/// resources (admin, or reader with system scope).
pub async fn gather(session: &Session) -> openstack::Result<Inventory> {
    let page = Some(1000);
    let projects = keystone::ListProjects::default();
    let flavors = nova::ListFlavors { is_public: Some(nova::FlavorVisibility::All), ..Default::default() };
    let images = glance::ListImages { limit: page, ..Default::default() };
    let servers = nova::ListServers { all_tenants: true, limit: page, ..Default::default() };
    let volumes = cinder::ListVolumes { all_tenants: true, limit: page, ..Default::default() };
    let fips = neutron::ListFloatingIps { limit: page, ..Default::default() };
    let (projects, flavors, images, servers, volumes, fips) = futures::try_join!(
        projects.list(session),
        flavors.list(session),
        images.list(session),
        servers.list(session),
        volumes.list(session),
        fips.list(session),
    )?;

    let mut per_project: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    let mut servers_by_status = BTreeMap::new();
    for s in &servers {
        *servers_by_status.entry(s.status.clone()).or_insert(0) += 1;
        if let Some(p) = &s.tenant_id {
            per_project.entry(p).or_default().0 += 1;
        }
    }
    for v in &volumes {
        if let Some(p) = &v.project_id {
            per_project.entry(p).or_default().1 += 1;
        }
    }
    let mut floating_ips = BTreeMap::new();
    for f in &fips {
        *floating_ips.entry(f.ip_version()).or_insert(0) += 1;
        if let Some(p) = f.project_id.as_deref().or(f.tenant_id.as_deref()) {
            per_project.entry(p).or_default().2 += 1;
        }
    }
    let projects = projects
        .iter()
        .map(|p| {
            let (servers, volumes, floating_ips) = per_project.get(p.id.as_str()).copied().unwrap_or_default();
            ProjectSummary {
                id: p.id.clone(),
                name: p.name.clone(),
                tags: p.tags.clone(),
                vo: VO_PROPERTIES.iter().find_map(|k| p.property(k).map(|v| (v.to_string(), k.to_string()))),
                servers,
                volumes,
                floating_ips,
            }
        })
        .collect();

    let spec = |f: &nova::Flavor, key: &str| f.extra_specs.as_ref().is_some_and(|s| s.contains_key(key));
    Ok(Inventory {
        projects,
        flavors: flavors.len(),
        public_flavors: flavors.iter().filter(|f| f.is_public).count(),
        flavors_with_benchmark: flavors.iter().filter(|f| spec(f, "accounting:benchmark_type")).count(),
        gpu_flavors: flavors.iter().filter(|f| spec(f, "Accelerator:Type")).count(),
        images: images.len(),
        marketplace_images: images
            .iter()
            .filter(|i| i.property("vmcatcher_event_ad_mpuri").is_some() || i.property("ad:appid").is_some())
            .count(),
        servers_by_status,
        volumes: volumes.len(),
        volume_gib: volumes.iter().map(|v| v.size).sum(),
        floating_ips,
    })
}
