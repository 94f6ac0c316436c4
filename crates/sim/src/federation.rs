//! A simulated federation: one simulated site per file of a catch-all sites folder
//! (`sites/*.yaml`), plus one simulated EGI Check-in (the OIDC provider every site trusts, and
//! GOCDB), for the central operations (`fedsite central`, its tests and benchmark).
//!
//! Each site is a copy of a template scenario (e.g. `tiny`) with, per VO share of its file,
//! a project of the share's `project_id` carrying the VO (`VO` property) — the story
//! (servers, volumes, IPs) of one of the template's projects when one is left, so the
//! central accounting has records to extract — its region the
//! file's, and the site federated with the Check-in issuer (identity provider `egi.eu`, the
//! file's protocol, a mapping granting `member` on the VO's project to the VO's members).
//! An `auth: v3applicationcredential` site gets one application credential per VO share,
//! written to a secrets directory as the central deployment keeps them
//! (`<dir>/<keystone host>/<vo>`, mode 0600). Every site listens on its own loopback address
//! (127.0.x.y), so Keystone hosts differ as they do in a real federation. The sites folder it
//! writes is the original one with each `endpoint` pointing at its simulated site; every other
//! key is kept as written. More sites than files: the files are used in turn, the copies named
//! `<file>-copy2`, `<file>-copy3`, … with fresh project ids.
//!
//! Per-site faults ([`SiteFault`], `fedsite sim --federation … --fault SITE=KIND`) break one site
//! on purpose with the single-site simulator's own mechanisms: a closed port, the scenario's
//! site faults (a project Keystone refuses, Swift's `read_only`), [`EndpointFault`]s, a slower
//! [`ServiceProfile`].
//!
//! The file is read here with its own minimal view (`gocdb`, `endpoint`, `protocol`, `auth`,
//! `region`, `vos[].name`, `vos[].auth.project_id`, `vos[].auth.region`), not through the
//! `sites` crate: the simulator never shares code with what it tests.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_yaml::Value as Yaml;

use crate::model::{ApplicationCredential, Assignment, AssignmentScope, Project};
use crate::scenario::{ADMIN_USER, Scenario};
use crate::{EndpointFault, Service, ServiceProfile, SimConfig, SimHandle};

/// What to build.
pub struct FederationConfig {
    /// The folder of site files to mirror.
    pub sites_dir: PathBuf,
    /// How many sites (0: one per file).
    pub count: usize,
    /// Where the simulated folder (`sites/`) and the secrets (`secrets/`) are written.
    pub out_dir: PathBuf,
    /// The scenario every site starts from.
    pub template: Scenario,
    /// Every site's services behave so (latency, faults), per service.
    pub profiles: BTreeMap<Service, ServiceProfile>,
    /// Sites broken on purpose: site id (file name without `.yaml`, copies included) → faults.
    pub faults: BTreeMap<String, Vec<SiteFault>>,
}

/// The latency a [`SiteFault::Slow`] site multiplies when the federation has none.
pub const SLOW_BASE_MS: u64 = 10;

/// A way to break one site of the federation, built from the single-site simulator's faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteFault {
    /// The site is down: its file's `endpoint` is a closed port on the site's own address.
    Down,
    /// Keystone refuses with 403 to scope a token to this VO's project
    /// ([`crate::model::SiteFaults::forbidden_projects`]), so nothing of that VO's works there;
    /// the site's other VOs do.
    ForbiddenVo(String),
    /// Every service answers this many times slower: each service's latency in the federation's
    /// profiles times the factor ([`SLOW_BASE_MS`] when the federation has no latency).
    Slow(u32),
    /// Nova's flavor listings (`/flavors`, `/flavors/detail`) answer 500 every time.
    BrokenFlavors,
    /// Swift refuses every write with 405, as its `read_only` middleware does
    /// ([`crate::model::SiteFaults::swift_read_only`]); reads still work.
    SwiftReadOnly,
}

/// Why a `--fault` value is not a [`SiteFault`] (the message names the value and the forms).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiteFaultError {
    /// `slow:FACTOR` without a whole factor of at least 1.
    #[error("{0:?}: slow:FACTOR needs a whole factor of at least 1")]
    SlowFactor(String),
    /// Not one of the fault kinds.
    #[error("{0:?} is not a site fault (down, forbidden-vo:VO, slow:FACTOR, broken-flavors, swift-read-only)")]
    Kind(String),
    /// A `--fault` value without `SITE=`.
    #[error("{0:?}: give SITE=KIND, e.g. CESGA=swift-read-only")]
    Assignment(String),
}

impl std::str::FromStr for SiteFault {
    type Err = SiteFaultError;

    /// `down`, `forbidden-vo:VO`, `slow:FACTOR`, `broken-flavors`, `swift-read-only`.
    fn from_str(s: &str) -> Result<SiteFault, SiteFaultError> {
        let (kind, arg) = s.split_once(':').map_or((s, None), |(k, a)| (k, Some(a)));
        match (kind, arg) {
            ("down", None) => Ok(SiteFault::Down),
            ("forbidden-vo", Some(vo)) if !vo.is_empty() => Ok(SiteFault::ForbiddenVo(vo.to_string())),
            ("slow", Some(f)) => match f.parse::<u32>() {
                Ok(f) if f >= 1 => Ok(SiteFault::Slow(f)),
                _ => Err(SiteFaultError::SlowFactor(s.to_string())),
            },
            ("broken-flavors", None) => Ok(SiteFault::BrokenFlavors),
            ("swift-read-only", None) => Ok(SiteFault::SwiftReadOnly),
            _ => Err(SiteFaultError::Kind(s.to_string())),
        }
    }
}

impl SiteFault {
    /// `SITE=KIND` (the `--fault` option's form): the site id and the fault.
    pub fn parse_assignment(s: &str) -> Result<(String, SiteFault), SiteFaultError> {
        let (site, kind) = s.split_once('=').ok_or_else(|| SiteFaultError::Assignment(s.to_string()))?;
        Ok((site.to_string(), kind.parse()?))
    }
}

/// A running simulated federation.
pub struct Federation {
    /// The simulated Check-in (its OIDC provider at [`Federation::issuer`]) and GOCDB.
    pub checkin: SimHandle,
    pub sites: Vec<FederatedSite>,
    /// The simulated sites folder (`<out>/sites`).
    pub sites_dir: PathBuf,
    /// The application credentials of the `auth: v3applicationcredential` sites (`<out>/secrets`).
    pub secrets_dir: PathBuf,
}

/// One site of the federation.
pub struct FederatedSite {
    /// The file name without `.yaml` (what `fedsite central` names the site by).
    pub id: String,
    pub gocdb: String,
    pub file: PathBuf,
    pub handle: SimHandle,
    /// The VO shares: (VO, project id).
    pub shares: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("{0}")]
    Start(#[from] crate::SimError),
    #[error("federating {site}: {reason}")]
    Federate { site: String, reason: String },
    /// A fault names a site or VO the federation does not have.
    #[error("fault {fault:?} for site {site}: {reason}")]
    Fault { site: String, fault: String, reason: String },
}

impl Federation {
    /// The Check-in issuer every site trusts; its discovery document is
    /// `<issuer>/.well-known/openid-configuration`.
    pub fn issuer(&self) -> String {
        format!("{}/identity/oidc", self.checkin.base_url())
    }

    /// GOCDB's public API (the Check-in sim serves it).
    pub fn gocdb_url(&self) -> String {
        format!("{}/gocdb/gocdbpi/public/", self.checkin.base_url())
    }

    pub async fn stop(self) {
        for s in self.sites {
            s.handle.stop().await;
        }
        self.checkin.stop().await;
    }
}

/// One VO share as the file writes it.
struct Share {
    vo: String,
    project_id: Option<String>,
    region: Option<String>,
}

/// The minimal view of a site file.
struct SiteFile {
    id: String,
    path: PathBuf,
    doc: Yaml,
    gocdb: String,
    protocol: String,
    app_credentials: bool,
    region: Option<String>,
    shares: Vec<Share>,
}

fn read_site(path: &Path) -> Result<SiteFile, FederationError> {
    let err = |reason: String| FederationError::File { path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let doc: Yaml = serde_yaml::from_str(&text).map_err(|e| err(e.to_string()))?;
    let s = |v: &Yaml| v.as_str().map(str::to_string);
    let gocdb = s(&doc["gocdb"]).ok_or_else(|| err("no gocdb".into()))?;
    let auth = s(&doc["auth"]).or_else(|| s(&doc["auth_type"]));
    let mut shares = Vec::new();
    for v in doc["vos"].as_sequence().into_iter().flatten() {
        let vo = s(&v["name"]).ok_or_else(|| err("a VO share without a name".into()))?;
        shares.push(Share { vo, project_id: s(&v["auth"]["project_id"]), region: s(&v["auth"]["region"]) });
    }
    Ok(SiteFile {
        id: path.file_stem().unwrap_or_default().to_string_lossy().into_owned(),
        path: path.to_path_buf(),
        gocdb,
        protocol: s(&doc["protocol"]).unwrap_or_else(|| "openid".into()),
        app_credentials: auth.as_deref() == Some("v3applicationcredential"),
        region: s(&doc["region"]),
        shares,
        doc,
    })
}

/// A Keystone-style id (32 lowercase hex) derived from `seed`.
fn hex_id(seed: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(seed.as_bytes())[..16])
}

/// The n-th site's own loopback address (127.0.0.1 is the Check-in's).
fn site_addr(n: usize) -> SocketAddr {
    let n = n + 2;
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, (n / 250) as u8, (n % 250 + 1) as u8)), 0)
}

/// Starts the federation (see the module docs).
pub async fn start(cfg: FederationConfig) -> Result<Federation, FederationError> {
    let originals = read_sites(&cfg.sites_dir)?;
    let count = if cfg.count == 0 { originals.len() } else { cfg.count };
    let sites_dir = cfg.out_dir.join("sites");
    let secrets_dir = cfg.out_dir.join("secrets");
    for d in [&sites_dir, &secrets_dir] {
        std::fs::create_dir_all(d).map_err(|e| FederationError::File { path: d.clone(), reason: e.to_string() })?;
    }

    // Check-in: its robot is a member of every VO of the federation (the sim's OIDC token
    // carries the VOs of its own projects as entitlements).
    let mut vos: Vec<&str> = originals.iter().flat_map(|f| f.shares.iter().map(|s| s.vo.as_str())).collect();
    vos.sort();
    vos.dedup();
    let mut checkin = cfg.template.clone();
    for vo in &vos {
        checkin.site.projects.push(project(&hex_id(&format!("checkin:{vo}")), &format!("checkin-{vo}"), vo));
    }
    let checkin = crate::start(SimConfig::new(checkin)).await?;
    let issuer = format!("{}/identity/oidc", checkin.base_url());

    let ids: Vec<String> = (0..count)
        .map(|n| {
            let (original, copy) = (&originals[n % originals.len()], n / originals.len());
            if copy == 0 { original.id.clone() } else { format!("{}-copy{}", original.id, copy + 1) }
        })
        .collect();
    if let Some((site, faults)) = cfg.faults.iter().find(|(site, _)| !ids.contains(site)) {
        return Err(FederationError::Fault {
            site: site.clone(),
            fault: format!("{faults:?}"),
            reason: "no such site in the federation (a file name without .yaml, or <file>-copyN)".into(),
        });
    }
    let mut sites = Vec::with_capacity(count);
    for n in 0..count {
        let original = &originals[n % originals.len()];
        let copy = n / originals.len();
        // Copies get a suffix no real file name ends in (`fedcloud.srce.hr-2` is a real file).
        let id = ids[n].clone();
        let faults = cfg.faults.get(&id).map(Vec::as_slice).unwrap_or_default();
        let mut sc = cfg.template.clone();
        if faults.contains(&SiteFault::SwiftReadOnly) {
            sc.site.faults.swift_read_only = true;
        }
        if let Some(region) = original.region.clone().or_else(|| original.shares.iter().find_map(|s| s.region.clone()))
        {
            sc.site.region = region;
        }
        let (shares, credentials) = add_shares(&mut sc.site, original, &id, copy)?;
        let mut sim_cfg = SimConfig::new(sc);
        sim_cfg.bind = site_addr(n);
        sim_cfg.profiles = cfg.profiles.clone();
        apply_faults(&mut sim_cfg, faults, &shares, &id)?;
        let handle = crate::start(sim_cfg).await?;
        if !original.app_credentials {
            let mapped: Vec<(String, String)> = original
                .shares
                .iter()
                .enumerate()
                .map(|(i, s)| (s.vo.clone(), format!("{}-{i}", s.vo.trim_matches('/').replace('/', "-"))))
                .collect();
            handle
                .federate_egi_vos(&issuer, &original.protocol, &mapped, "member")
                .await
                .map_err(|e| FederationError::Federate { site: id.clone(), reason: e.to_string() })?;
        }
        let host = handle.addr().ip().to_string();
        for (vo, cred_id, secret) in credentials {
            let path = secrets_dir.join(&host).join(&vo);
            write_private(
                &path,
                &format!("application_credential_id = {cred_id}\napplication_credential_secret = {secret}\n"),
            )?;
        }
        let file = write_site_file(&sites_dir, &id, original, copy, faults, &handle, &shares)?;
        sites.push(FederatedSite { id, gocdb: original.gocdb.clone(), file, handle, shares });
    }
    Ok(Federation { checkin, sites, sites_dir, secrets_dir })
}

/// The `*.yaml` site files of `dir`, in file name order; none is an error.
fn read_sites(dir: &Path) -> Result<Vec<SiteFile>, FederationError> {
    let unreadable = |e: std::io::Error| FederationError::File { path: dir.to_path_buf(), reason: e.to_string() };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .map(|e| e.map(|e| e.path()).map_err(unreadable))
        .collect::<Result<Vec<_>, _>>()?;
    files.retain(|p| p.extension().is_some_and(|x| x == "yaml"));
    files.sort();
    let originals = files.iter().map(|p| read_site(p)).collect::<Result<Vec<_>, _>>()?;
    if originals.is_empty() {
        return Err(FederationError::File { path: dir.to_path_buf(), reason: "no *.yaml site file".into() });
    }
    Ok(originals)
}

/// Gives each share of `original` a project on the site (the n-th copy's own
/// ids), taking over the story of an unused template project when one is
/// left, and for an application-credential site a credential of the admin
/// user. Returns (VO, project id) per share and (VO, credential id, secret)
/// per credential; a template without the admin user or the `member` role is an error.
fn add_shares(
    site: &mut crate::model::Site,
    original: &SiteFile,
    id: &str,
    copy: usize,
) -> Result<(Vec<(String, String)>, Vec<(String, String, String)>), FederationError> {
    let missing =
        |what: &str| FederationError::Federate { site: id.to_string(), reason: format!("the template has no {what}") };
    let admin =
        site.users.iter().find(|u| u.name == ADMIN_USER).map(|u| u.id.clone()).ok_or_else(|| missing("admin user"))?;
    // The VO robot manages images and boots VMs in its VO's project (EGI's sites map it
    // to `member`).
    let member =
        site.roles.iter().find(|r| r.name == "member").map(|r| r.id.clone()).ok_or_else(|| missing("member role"))?;
    let mut shares = Vec::new();
    let mut credentials = Vec::new();
    let mut stories = story_projects(site).into_iter();
    for (i, share) in original.shares.iter().enumerate() {
        let pid = match (&share.project_id, copy) {
            (Some(p), 0) => p.clone(),
            _ => hex_id(&format!("{id}:{}:{i}", share.vo)),
        };
        let name = format!("{}-{i}", share.vo.trim_matches('/').replace('/', "-"));
        // The share's project takes over the story (servers, volumes, IPs) of a template
        // project still unused, so its accounting has records; else it starts empty.
        match stories.next() {
            Some(from) => {
                site.rehome_project(&from, &pid);
                if let Some(p) = site.projects.iter_mut().find(|p| p.id == pid) {
                    *p = Project { tags: std::mem::take(&mut p.tags), ..project(&pid, &name, &share.vo) };
                }
            }
            None => site.projects.push(project(&pid, &name, &share.vo)),
        }
        if original.app_credentials {
            site.assignments.push(Assignment {
                user_id: admin.clone(),
                role_id: member.clone(),
                scope: AssignmentScope::Project(pid.clone()),
            });
            let cred = ApplicationCredential {
                id: hex_id(&format!("appcred:{id}:{i}")),
                name: format!("central-{name}"),
                secret: hex_id(&format!("appcred-secret:{id}:{i}")),
                user_id: admin.clone(),
                project_id: pid.clone(),
                roles: vec!["member".into()],
                expires_at: None,
            };
            credentials.push((share.vo.clone(), cred.id.clone(), cred.secret.clone()));
            site.application_credentials.push(cred);
        }
        shares.push((share.vo.clone(), pid));
    }
    Ok((shares, credentials))
}

/// The faults a site's simulator itself carries (a down site and a read-only
/// Swift are set elsewhere); a VO the site has no share of is an error.
fn apply_faults(
    sim_cfg: &mut SimConfig,
    faults: &[SiteFault],
    shares: &[(String, String)],
    id: &str,
) -> Result<(), FederationError> {
    for fault in faults {
        match fault {
            SiteFault::ForbiddenVo(vo) => {
                let pids: Vec<&String> = shares.iter().filter(|(v, _)| v == vo).map(|(_, p)| p).collect();
                if pids.is_empty() {
                    return Err(FederationError::Fault {
                        site: id.to_string(),
                        fault: format!("{fault:?}"),
                        reason: format!("the site has no share of VO {vo}"),
                    });
                }
                sim_cfg.scenario.site.faults.forbidden_projects.extend(pids.into_iter().cloned());
            }
            SiteFault::Slow(factor) => {
                for service in Service::ALL {
                    let p = sim_cfg.profiles.entry(service).or_default();
                    let base = if p.latency_ms > 0 { p.latency_ms } else { SLOW_BASE_MS };
                    p.latency_ms = base * u64::from(*factor);
                }
            }
            SiteFault::BrokenFlavors => {
                for path in ["/compute/v2.1/flavors", "/compute/v2.1/flavors/detail"] {
                    sim_cfg.endpoint_faults.push(EndpointFault::new("GET", path, 500));
                }
            }
            SiteFault::Down | SiteFault::SwiftReadOnly => {}
        }
    }
    Ok(())
}

/// Writes the site file `<id>.yaml`: the original with its endpoint (a closed
/// port for a down site) and, for a copy, its project ids replaced.
fn write_site_file(
    sites_dir: &Path,
    id: &str,
    original: &SiteFile,
    copy: usize,
    faults: &[SiteFault],
    handle: &SimHandle,
    shares: &[(String, String)],
) -> Result<PathBuf, FederationError> {
    let mut doc = original.doc.clone();
    doc["endpoint"] = Yaml::String(if faults.contains(&SiteFault::Down) {
        closed_port_url(handle.addr().ip())
            .map_err(|reason| FederationError::Federate { site: id.to_string(), reason })?
    } else {
        handle.auth_url()
    });
    if copy > 0
        && let Some(vos) = doc["vos"].as_sequence_mut()
    {
        for (v, (_, pid)) in vos.iter_mut().zip(shares) {
            if v["auth"]["project_id"].is_string() {
                v["auth"]["project_id"] = Yaml::String(pid.clone());
            }
        }
    }
    let file = sites_dir.join(format!("{id}.yaml"));
    if file.exists() {
        return Err(FederationError::File { path: file, reason: "two simulated sites would share this file".into() });
    }
    let text = serde_yaml::to_string(&doc)
        .map_err(|e| FederationError::File { path: original.path.clone(), reason: e.to_string() })?;
    std::fs::write(&file, text).map_err(|e| FederationError::File { path: file.clone(), reason: e.to_string() })?;
    Ok(file)
}

/// The template's projects that own servers or volumes, in the template's order.
fn story_projects(site: &crate::model::Site) -> Vec<String> {
    site.projects
        .iter()
        .filter(|p| {
            site.servers.iter().any(|s| s.project_id == p.id) || site.volumes.iter().any(|v| v.project_id == p.id)
        })
        .map(|p| p.id.clone())
        .collect()
}

/// A Keystone URL on `ip` where nothing listens (a port the system just handed out, released).
fn closed_port_url(ip: IpAddr) -> Result<String, String> {
    let l = std::net::TcpListener::bind(SocketAddr::new(ip, 0)).map_err(|e| format!("finding a closed port: {e}"))?;
    let port = l.local_addr().map_err(|e| e.to_string())?.port();
    drop(l);
    Ok(format!("http://{ip}:{port}/identity/v3"))
}

fn project(id: &str, name: &str, vo: &str) -> Project {
    Project {
        id: id.into(),
        name: name.into(),
        domain_id: "default".into(),
        description: String::new(),
        enabled: true,
        tags: vec![],
        extra: BTreeMap::from([("VO".to_string(), Value::String(vo.into()))]),
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), FederationError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| FederationError::File { path: path.to_path_buf(), reason: e.to_string() };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut f =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)
}
