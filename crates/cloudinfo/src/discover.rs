//! Discovery: the site's GLUE document from its OpenStack APIs, share by
//! share, following cloud-info-provider 1.2's OpenStack provider call for
//! call (identifiers, defaults, ordering, quirks), with the documented
//! fixes behind [`Fixes`].

use openstack::Paged;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use openstack::catalog::Service as OsService;
use openstack::{Call, CloudConfig, Credentials, ProjectRef, Scope, Secret, Session, glance, keystone, nova};

use crate::glue::*;
use crate::site::{SiteConfig, VoConfig};
use crate::{gocdb, tls};
use pyjson::{self, Json, Object};

/// `--select-flavors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlavorSelect {
    #[default]
    All,
    Public,
    Private,
}

/// Flavor extra-spec keys (`--property-flavor-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlavorKeys {
    pub infiniband: String,
    pub infiniband_value: String,
    pub gpu_number: String,
    pub gpu_vendor: String,
    pub gpu_model: String,
    pub gpu_memory: String,
    pub gpu_virt_type: String,
}

impl Default for FlavorKeys {
    fn default() -> Self {
        FlavorKeys {
            infiniband: "infiniband".into(),
            infiniband_value: "true".into(),
            gpu_number: "Accelerator:Number".into(),
            gpu_vendor: "Accelerator:Vendor".into(),
            gpu_model: "Accelerator:Model".into(),
            gpu_memory: "Accelerator:Memory".into(),
            gpu_virt_type: "Accelerator:VirtualizationType".into(),
        }
    }
}

/// Image property keys (`--property-image-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageKeys {
    pub gpu_driver: String,
    pub gpu_cuda: String,
    pub gpu_cudnn: String,
}

impl Default for ImageKeys {
    fn default() -> Self {
        ImageKeys { gpu_driver: "gpu_driver".into(), gpu_cuda: "gpu_cuda".into(), gpu_cudnn: "gpu_cudnn".into() }
    }
}

/// The original's mistakes, fixed on request (docs/compat.md). All off:
/// the document is the original's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fixes {
    /// Manager InstanceMax* = max over all shares, InstanceMin* = the
    /// smallest flavor (the original: the last share's max, and 0).
    pub manager_sizes: bool,
    /// Publish InfiniBand (`NetworkInfo: infiniband`), GPU memory and
    /// virtualization type, and the image GPU driver/CUDA/cuDNN properties.
    pub extra_properties: bool,
    /// A failed share's `HealthStateInfo` names the error (the original
    /// says "An unknown exception occurred." for Keystone's 401).
    pub share_error_details: bool,
}

/// Everything discovery needs besides the site file.
#[derive(Debug, Clone)]
pub struct Options {
    /// Base credentials (clouds.yaml / `OS_*`); each VO's `auth` is merged over.
    pub cloud: CloudConfig,
    /// The Endpoint's `Authentication` (the auth plugin name).
    pub auth_type: String,
    pub select_flavors: FlavorSelect,
    pub only_appdb_images: bool,
    pub flavor_keys: FlavorKeys,
    pub image_keys: ImageKeys,
    pub exit_on_share_errors: bool,
    /// `--auditor-role-cloud`: credentials to try `identity:list_users` with.
    pub auditor: Option<Result<CloudConfig, openstack::ConfigError>>,
    pub gocdb_url: String,
    pub timeout: Duration,
    /// No TLS verification (GOCDB and the CA probe).
    pub insecure: bool,
    /// CA bundle for the CA probe (default: the system's).
    pub ca_file: Option<PathBuf>,
    pub fixes: Fixes,
    /// `CreationTime` of every object (the run's start).
    pub creation_time: DateTime<Utc>,
}

impl Options {
    pub fn new(cloud: CloudConfig, auth_type: impl Into<String>) -> Options {
        Options {
            cloud,
            auth_type: auth_type.into(),
            select_flavors: FlavorSelect::All,
            only_appdb_images: false,
            flavor_keys: FlavorKeys::default(),
            image_keys: ImageKeys::default(),
            exit_on_share_errors: false,
            auditor: None,
            gocdb_url: gocdb::DEFAULT_URL.into(),
            timeout: Duration::from_secs(600),
            insecure: false,
            ca_file: None,
            fixes: Fixes::default(),
            creation_time: Utc::now(),
        }
    }
}

/// What `fedsite info` reports besides the document.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// (VO, error) of every share that failed.
    pub failed_shares: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("share of VO {vo}: {message}")]
    Share { vo: String, message: String },
}

/// The message the original puts in `HealthStateInfo` for a failed share:
/// keystoneauth's `details` of Keystone's error, which Keystone never sends.
pub const UNKNOWN_EXCEPTION: &str = "An unknown exception occurred.";

/// The auth plugin name the original reports for `cfg` (`--os-auth-type`).
pub fn auth_type_of(cfg: &CloudConfig) -> &'static str {
    match cfg.credentials {
        Credentials::Password { .. } => "password",
        Credentials::ApplicationCredential { .. } => "v3applicationcredential",
        Credentials::Token { .. } => "token",
        Credentials::OidcAccessToken { .. } => "v3oidcaccesstoken",
        Credentials::OidcClientCredentials { .. } => "v3oidcclientcredentials",
    }
}

/// A VO's `auth` holds a key [`vo_config`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("vos[{vo}].auth: unsupported key {key:?}")]
pub struct VoAuthError {
    pub vo: String,
    pub key: String,
}

/// The base config with a VO's `auth` merged over: `project_id` /
/// `project_name` (+ domain) select the scope; application-credential keys
/// replace the credentials.
pub fn vo_config(base: &CloudConfig, vo: &VoConfig) -> Result<CloudConfig, VoAuthError> {
    let mut cfg = base.clone();
    let Some(auth) = &vo.auth else { return Ok(cfg) };
    for key in auth.keys() {
        let k = key.as_str().unwrap_or_default();
        if !matches!(
            k,
            "project_id"
                | "project_name"
                | "project_domain_id"
                | "project_domain_name"
                | "application_credential_id"
                | "application_credential_name"
                | "application_credential_secret"
                | "auth_url"
                | "region_name"
                | "region"
        ) {
            return Err(VoAuthError { vo: vo.name.clone(), key: k.to_string() });
        }
    }
    if let Some(id) = vo.auth_str("project_id") {
        cfg.scope = Scope::Project(ProjectRef::Id(id));
    } else if let Some(name) = vo.auth_str("project_name") {
        let domain = match (vo.auth_str("project_domain_id"), vo.auth_str("project_domain_name")) {
            (Some(id), _) => openstack::DomainRef::Id(id),
            (None, Some(n)) => openstack::DomainRef::Name(n),
            (None, None) => match &base.scope {
                Scope::Project(ProjectRef::Name { domain, .. }) => domain.clone(),
                _ => openstack::DomainRef::Id("default".into()),
            },
        };
        cfg.scope = Scope::Project(ProjectRef::Name { name, domain });
    }
    if let Some(secret) = vo.auth_str("application_credential_secret") {
        cfg.credentials = Credentials::ApplicationCredential {
            id: vo.auth_str("application_credential_id"),
            name: vo.auth_str("application_credential_name"),
            user: None,
            secret: Secret::new(secret),
        };
    }
    if let Some(u) = vo.auth_str("auth_url") {
        cfg.auth_url = u;
    }
    // `region` is the catch-all sites schema's name (the real CREODIAS.yaml has it); the
    // original hands every `auth` key to keystoneauth, which refuses it. Same as `region_name`.
    if let Some(r) = vo.auth_str("region_name").or_else(|| vo.auth_str("region")) {
        cfg.region_name = Some(r);
    }
    Ok(cfg)
}

/// One share's objects, added to the document only when the whole share
/// was read.
struct ShareParts {
    objects: Vec<Glue>,
    share: Share,
    min_cpu: Option<i64>,
    min_ram: Option<i64>,
}

struct Ctx<'a> {
    opts: &'a Options,
    time: String,
    service_id: String,
    manager_id: String,
    endpoint_id: String,
}

impl<'a> Ctx<'a> {
    /// The identifiers of the site whose Keystone is `ep` (written verbatim).
    fn new(opts: &'a Options, ep: &str) -> Ctx<'a> {
        Ctx {
            opts,
            time: iso_time(opts.creation_time),
            service_id: format!("{ep}_cloud.compute"),
            manager_id: format!("{ep}_cloud.compute_manager"),
            endpoint_id: format!("{ep}_OpenStack_v3"),
        }
    }
}

/// One Glance image as [`discover`] publishes it in share `share_id` of the
/// site whose Keystone is `endpoint` (`None`: skipped, `only_appdb_images`).
/// Reads the image properties from outside: `APPLIANCE_ATTRIBUTES` (JSON in a
/// string), the marketplace URIs, the OS and GPU keys. Public for the fuzz targets.
pub fn image_object(
    opts: &Options,
    endpoint: &str,
    image: &glance::Image,
    share_id: &str,
    glance_url: &str,
) -> Option<CloudComputingImage> {
    build_image(&Ctx::new(opts, endpoint), image, share_id, glance_url)
}

/// One flavor and its extra specs as [`discover`] publishes them (the
/// InfiniBand and GPU keys of [`FlavorKeys`]): the instance type and its
/// accelerator. Public for the fuzz targets.
pub fn instance_type_object(
    opts: &Options,
    endpoint: &str,
    flavor: &nova::Flavor,
    specs: &BTreeMap<String, String>,
    share_id: &str,
) -> (CloudComputingInstanceType, Option<CloudComputingVirtualAccelerator>) {
    build_instance_type(&Ctx::new(opts, endpoint), flavor, specs, share_id)
}

/// Builds the document for `site`.
pub async fn discover(site: &SiteConfig, opts: &Options) -> Result<(Document, Report), DiscoverError> {
    let ctx = Ctx::new(opts, &site.endpoint);
    let time = ctx.time.clone();
    let gocdb_info =
        gocdb::lookup(&opts.gocdb_url, "org.openstack.nova", &site.endpoint, opts.insecure, opts.timeout).await;
    let mut service = service_entity(&ctx, site, gocdb_info);
    let mut manager = manager_entity(&ctx);
    let ca =
        tls::probe(&site.endpoint, opts.insecure, opts.ca_file.as_deref(), opts.timeout.min(Duration::from_secs(60)))
            .await;
    let mut endpoint = endpoint_entity(&ctx, site, ca);

    let mut shared = Document::default();
    let mut report = Report::default();
    let mut rules = Vec::new();
    let (mut total, mut running, mut halted, mut suspended) = (0, 0, 0, 0);
    let (mut max_cpu, mut min_cpu, mut max_ram, mut min_ram) = (0i64, 0i64, 0i64, 0i64);
    let (mut all_max_cpu, mut all_max_ram) = (None::<i64>, None::<i64>);
    let (mut all_min_cpu, mut all_min_ram) = (None::<i64>, None::<i64>);
    let mut last_working: Option<Session> = None;
    for vo in site.vos() {
        let session = match scope_vo(&ctx, vo).await {
            Ok(s) => s,
            Err(e) => {
                let message = e.to_string();
                if opts.exit_on_share_errors {
                    return Err(DiscoverError::Share { vo: vo.name.clone(), message });
                }
                tracing::warn!("share of VO {}: {message}", vo.name);
                endpoint.health_state = "warning".into();
                endpoint.health_state_info =
                    Some(if opts.fixes.share_error_details { message.clone() } else { UNKNOWN_EXCEPTION.into() });
                report.failed_shares.push((vo.name.clone(), message));
                continue;
            }
        };
        let parts = match build_share(&ctx, vo, &session).await {
            Ok(p) => p,
            Err(e) => {
                let message = e.to_string();
                if opts.exit_on_share_errors {
                    return Err(DiscoverError::Share { vo: vo.name.clone(), message });
                }
                tracing::warn!("share of VO {}: {message}", vo.name);
                endpoint.health_state = "warning".into();
                endpoint.health_state_info = Some(message.clone());
                report.failed_shares.push((vo.name.clone(), message));
                continue;
            }
        };
        last_working = Some(session);
        let share = &parts.share;
        max_ram = share.instance_max_ram.unwrap_or(0).max(0);
        min_ram = share.instance_min_ram.unwrap_or(0).min(0);
        max_cpu = share.instance_max_cpu.unwrap_or(0).max(0);
        min_cpu = share.instance_min_cpu.unwrap_or(0).min(0);
        if let (Some(a), Some(b)) = (share.instance_max_cpu, parts.min_cpu) {
            all_max_cpu = Some(all_max_cpu.map_or(a, |m| m.max(a)));
            all_min_cpu = Some(all_min_cpu.map_or(b, |m| m.min(b)));
        }
        if let (Some(a), Some(b)) = (share.instance_max_ram, parts.min_ram) {
            all_max_ram = Some(all_max_ram.map_or(a, |m| m.max(a)));
            all_min_ram = Some(all_min_ram.map_or(b, |m| m.min(b)));
        }
        running += share.running_vm.unwrap_or(0);
        halted += share.halted_vm.unwrap_or(0);
        suspended += share.suspended_vm.unwrap_or(0);
        total += share.total_vm.unwrap_or(0);
        let share_id = share.common.id.clone();
        for g in parts.objects {
            shared.add(g);
        }
        shared.add(Glue::Share(parts.share));
        let rule = format!("VO:{}", vo.name);
        rules.push(rule.clone());
        let mut mp = Policy::new(Common::new(format!("{share_id}_Policy"), None, &time), vec![rule]);
        mp.common.associate("Share", &share_id);
        mp.common.associate("PolicyUserDomain", &vo.name);
        shared.add(Glue::MappingPolicy(mp));
    }
    let mut ap = Policy::new(Common::new(format!("{}_policy", ctx.endpoint_id), None, &time), rules);
    ap.common.associate("CloudComputingEndpoint", &ctx.endpoint_id);
    shared.add(Glue::AccessPolicy(ap));

    service.running_vm = Some(running);
    service.halted_vm = Some(halted);
    service.suspended_vm = Some(suspended);
    service.total_vm = Some(total);
    if opts.fixes.manager_sizes {
        manager.instance_max_cpu = Some(all_max_cpu.unwrap_or(0));
        manager.instance_min_cpu = Some(all_min_cpu.unwrap_or(0));
        manager.instance_max_ram = Some(all_max_ram.unwrap_or(0));
        manager.instance_min_ram = Some(all_min_ram.unwrap_or(0));
    } else {
        manager.instance_max_ram = Some(max_ram);
        manager.instance_min_ram = Some(min_ram);
        manager.instance_max_cpu = Some(max_cpu);
        manager.instance_min_cpu = Some(min_cpu);
    }
    let share_count = shared.objects("Share").len();
    service.complexity = Some(format!("endpointType=1,share={share_count}"));

    match &last_working {
        Some(s) => {
            endpoint.interface_version = Some("2.0".into());
            endpoint.implementation_version = nova_version(s).await;
        }
        None => {
            endpoint.health_state = "unknown".into();
            endpoint.health_state_info = Some("No working authentication configured".into());
        }
    }
    if let Some(auditor) = &opts.auditor {
        let ok = auditor_lists_users(auditor).await;
        endpoint.common.other_info.insert("auditor_role", ok);
    }

    let mut doc = Document::default();
    doc.add(Glue::Service(service));
    doc.add(Glue::Manager(manager));
    doc.add(Glue::Endpoint(endpoint));
    for (_, list) in shared.classes {
        for g in list {
            doc.add(g);
        }
    }
    Ok((doc, report))
}

/// The site's compute service, before its VM counts are summed.
fn service_entity(ctx: &Ctx, site: &SiteConfig, gocdb_info: Object) -> CloudComputingService {
    let mut service = CloudComputingService {
        common: Common::new(&ctx.service_id, Some(format!("Cloud Compute service at {}", site.gocdb)), &ctx.time),
        service_type: "org.cloud.iaas".into(),
        quality_level: "production".into(),
        status_info: format!("https://argo.egi.eu/egi/report-status/Critical/SITES/{}", site.gocdb),
        service_aup: "http://go.egi.eu/aup".into(),
        complexity: None,
        capability: vec!["executionmanagement.dynamicvmdeploy".into(), "security.accounting".into()],
        total_vm: None,
        running_vm: None,
        suspended_vm: None,
        halted_vm: None,
    };
    service.common.other_info = gocdb_info;
    service.common.associate("AdminDomain", &site.gocdb);
    service
}

/// The site's compute manager, before its instance size bounds are known.
fn manager_entity(ctx: &Ctx) -> CloudComputingManager {
    let mut manager = CloudComputingManager {
        common: Common::new(&ctx.manager_id, None, &ctx.time),
        instance_max_cpu: None,
        instance_min_cpu: None,
        instance_max_ram: None,
        instance_min_ram: None,
    };
    manager.common.associate("CloudComputingService", &ctx.service_id);
    manager
}

/// The site's Keystone endpoint as healthy, with the CA its TLS probe found;
/// share and auth failures downgrade its health later.
fn endpoint_entity(ctx: &Ctx, site: &SiteConfig, ca: tls::CaInfo) -> CloudComputingEndpoint {
    let opts = ctx.opts;
    let mut endpoint = CloudComputingEndpoint {
        common: Common::new(
            &ctx.endpoint_id,
            Some(format!("Cloud computing endpoint for {}", ctx.endpoint_id)),
            &ctx.time,
        ),
        url: site.endpoint.clone(),
        capability: vec![],
        quality_level: "production".into(),
        serving_state: "production".into(),
        interface_name: "org.openstack.nova".into(),
        interface_version: None,
        health_state: "ok".into(),
        health_state_info: Some("Endpoint functioning properly".into()),
        technology: "webservice".into(),
        implementor: Some("OpenStack Foundation".into()),
        implementation_name: Some("OpenStack Nova".into()),
        implementation_version: None,
        downtime_info: Some(format!(
            "https://goc.egi.eu/portal/index.php?Page_Type=Downtimes_Calendar&site={}",
            site.gocdb
        )),
        semantics: Some("https://developer.openstack.org/api-ref/compute".into()),
        authentication: Some(opts.auth_type.clone()),
        issuer_ca: Some(ca.issuer),
        trusted_cas: Some(ca.trusted_cas),
    };
    endpoint.common.associate("CloudComputingService", &ctx.service_id);
    endpoint
}

/// Whether the auditor credentials can list Keystone users
/// (`identity:list_users`); every failure is logged and counts as no.
async fn auditor_lists_users(auditor: &Result<CloudConfig, openstack::ConfigError>) -> bool {
    match auditor {
        Ok(cfg) => match Session::connect(cfg).await {
            Ok(s) => match keystone::ListUsers::default().list(&s).await {
                Ok(users) => !users.is_empty(),
                Err(e) => {
                    tracing::warn!("Not able to list users: {e}");
                    false
                }
            },
            Err(e) => {
                tracing::warn!("Not able to list users: {e}");
                false
            }
        },
        Err(e) => {
            tracing::warn!("Not able to list users: {e}");
            false
        }
    }
}

/// Why a VO's share could not be read: its text is the share's failure in the
/// report and, with the fix, the endpoint's `HealthStateInfo`.
#[derive(Debug, thiserror::Error)]
enum ShareError {
    #[error("{0}")]
    VoAuth(#[from] VoAuthError),
    /// Authentication, the token or the catalog.
    #[error("{0}")]
    Auth(#[from] openstack::Error),
    #[error("the token is not scoped to a project (give vos[].auth.project_id)")]
    NotProjectScoped,
    #[error("no project in the token")]
    NoProject,
    /// A listing or read; `what` names it (`listing images`, `reading quotas`, …).
    #[error("{what}: {source}")]
    Request { what: &'static str, source: openstack::Error },
}

/// Authenticates for one VO (the original's `rescope_project`).
async fn scope_vo(ctx: &Ctx<'_>, vo: &VoConfig) -> Result<Session, ShareError> {
    let cfg = vo_config(&ctx.opts.cloud, vo)?;
    let session = Session::connect(&cfg).await?;
    let token = session.token().await?;
    if token.project.is_none() {
        return Err(ShareError::NotProjectScoped);
    }
    Ok(session)
}

/// `GET <compute endpoint>` → `version.version` (novaclient's
/// `versions.get_current()`).
async fn nova_version(s: &Session) -> Option<String> {
    let r: Result<serde_json::Value, _> = s.json(Call::get(OsService::Compute, "/", "")).await;
    match r {
        Ok(v) => v.pointer("/version/version").and_then(|x| x.as_str()).map(str::to_string),
        Err(e) => {
            tracing::warn!("reading the Nova version: {e}");
            None
        }
    }
}

fn err(what: &'static str) -> impl Fn(openstack::Error) -> ShareError {
    move |source| ShareError::Request { what, source }
}

async fn build_share(ctx: &Ctx<'_>, vo: &VoConfig, s: &Session) -> Result<ShareParts, ShareError> {
    let opts = ctx.opts;
    let token = s.token().await?;
    let project = token.project.clone().ok_or(ShareError::NoProject)?;
    let project_id = project.id.clone();
    let share_id = format!("{}_share_{}_{}", ctx.endpoint_id, vo.name, project_id);
    let mut share = Share {
        common: Common::new(&share_id, Some(format!("{} - {} share", vo.name, project_id)), &ctx.time),
        instance_max_cpu: None,
        instance_max_ram: None,
        instance_min_cpu: None,
        instance_min_ram: None,
        total_vm: None,
        running_vm: None,
        suspended_vm: None,
        halted_vm: None,
        max_vm: None,
        project_id: Some(project_id.clone()),
    };
    let opt_json = |v: Option<String>| v.map(Json::from).unwrap_or(Json::Null);
    share.common.other_info.insert("project_name", opt_json(project.name.clone()));
    share
        .common
        .other_info
        .insert("project_domain_name", opt_json(project.domain.as_ref().and_then(|d| d.name.clone())));
    share.common.associate("CloudComputingService", &ctx.service_id);
    share.common.associate("CloudComputingEndpoint", &ctx.endpoint_id);
    let mut objects = Vec::new();

    // Images (Glance v2, status=active).
    let cfg = s.config();
    let glance_url = token.catalog.url(OsService::Image, cfg.interface, cfg.region_name.as_deref())?;
    let images = glance::ListImages { status: Some("active".into()), ..Default::default() }
        .list(s)
        .await
        .map_err(err("listing images"))?;
    for image in &images {
        if let Some(img) = build_image(ctx, image, &share_id, &glance_url) {
            objects.push(Glue::Image(img));
        }
    }

    // Flavors (+ extra specs).
    let flavors = nova::ListFlavors { is_public: Some(nova::FlavorVisibility::All), ..Default::default() }
        .list(s)
        .await
        .map_err(err("listing flavors"))?;
    let (mut cpus, mut rams) = (Vec::new(), Vec::new());
    for f in &flavors {
        let keep = match opts.select_flavors {
            FlavorSelect::All => true,
            FlavorSelect::Public => f.is_public,
            FlavorSelect::Private => !f.is_public,
        };
        if !keep {
            continue;
        }
        let specs = match &f.extra_specs {
            Some(m) => m.clone(),
            None => nova::flavors::extra_specs(s, &f.id).await.map_err(err("reading flavor extra specs"))?,
        };
        let (itype, acc) = build_instance_type(ctx, f, &specs, &share_id);
        cpus.push(itype.cpu);
        rams.push(itype.ram);
        objects.push(Glue::InstanceType(itype));
        if let Some(a) = acc {
            objects.push(Glue::Accelerator(a));
        }
    }
    share.instance_max_ram = Some(rams.iter().copied().max().unwrap_or(0));
    share.instance_min_ram = Some(rams.iter().copied().min().unwrap_or(0));
    share.instance_max_cpu = Some(cpus.iter().copied().max().unwrap_or(0));
    share.instance_min_cpu = Some(cpus.iter().copied().min().unwrap_or(0));

    // Quotas (no microversion: the 2.1 set, as novaclient 2.0 reads it).
    let quotas = read_quotas(s, &project_id).await?;
    share.max_vm = Some(match quotas.get("instances") {
        Some(Json::Int(n)) => *n as i64,
        _ => 0,
    });
    share.common.other_info.insert("quotas", quotas);

    // Servers of the project.
    let servers = nova::ListServers::default().list(s).await.map_err(err("listing servers"))?;
    let (mut running, mut halted, mut suspended) = (0, 0, 0);
    for srv in &servers {
        match srv.status.as_str() {
            "SHUTOFF" => halted += 1,
            "SUSPENDED" => suspended += 1,
            _ => running += 1,
        }
    }
    share.running_vm = Some(running);
    share.halted_vm = Some(halted);
    share.suspended_vm = Some(suspended);
    share.total_vm = Some(running + halted + suspended);
    let (min_cpu, min_ram) = (cpus.iter().copied().min(), rams.iter().copied().min());
    Ok(ShareParts { objects, share, min_cpu, min_ram })
}

const QUOTA_RESOURCES: [&str; 14] = [
    "instances",
    "cores",
    "ram",
    "floating_ips",
    "fixed_ips",
    "metadata_items",
    "injected_files",
    "injected_file_content_bytes",
    "injected_file_path_bytes",
    "key_pairs",
    "security_groups",
    "security_group_rules",
    "server_groups",
    "server_group_members",
];

async fn read_quotas(s: &Session, project_id: &str) -> Result<Object, ShareError> {
    let call = Call::get(OsService::Compute, "/os-quota-sets/{project}", format!("/os-quota-sets/{project_id}"));
    let mut out = Object::new();
    match s.json::<serde_json::Value>(call).await {
        Ok(v) => {
            for r in QUOTA_RESOURCES {
                if let Some(x) = v.get("quota_set").and_then(|q| q.get(r)) {
                    out.insert(r, Json::from(x));
                }
            }
        }
        Err(e) if e.is_forbidden() => {}
        Err(e) => return Err(err("reading quotas")(e)),
    }
    Ok(out)
}

/// A string-valued image property as Python's `image.get(key)` sees it.
fn prop<'a>(image: &'a glance::Image, key: &str) -> Option<&'a serde_json::Value> {
    match key {
        "name" => None,
        _ => image.properties.get(key),
    }
}

fn as_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn build_image(ctx: &Ctx<'_>, image: &glance::Image, share_id: &str, glance_url: &str) -> Option<CloudComputingImage> {
    let text = |k: &str| prop(image, k).map(as_text);
    let description = text("vmcatcher_event_dc_description")
        .or_else(|| text("vmcatcher_event_dc_title"))
        .unwrap_or_else(|| "UNKNOWN".into());
    let mut marketplace = text("vmcatcher_event_ad_mpuri").or_else(|| text("marketplace"));
    let mut other = Object::new();
    let attrs_text = text("APPLIANCE_ATTRIBUTES").unwrap_or_else(|| "{}".into());
    let attrs = match pyjson::parse(&attrs_text) {
        Ok(Json::Object(o)) => o,
        Ok(_) | Err(_) => {
            tracing::warn!("Unexpected issue while getting json for '{attrs_text}'");
            Object::new()
        }
    };
    if let Some(b) = attrs.get("ad:base_mpuri") {
        other.insert("base_mpuri", b.clone());
    }
    other.update(attrs);
    if ctx.opts.fixes.extra_properties {
        let keys = &ctx.opts.image_keys;
        for (name, key) in
            [("gpu_driver", &keys.gpu_driver), ("gpu_cuda", &keys.gpu_cuda), ("gpu_cudnn", &keys.gpu_cudnn)]
        {
            if let Some(v) = text(key).filter(|v| !v.is_empty()) {
                other.insert(name, v);
            }
        }
    }
    if marketplace.as_deref().is_none_or(str::is_empty) {
        if ctx.opts.only_appdb_images {
            return None;
        }
        marketplace = Some(match &image.file {
            Some(f) if !f.is_empty() => url::Url::parse(glance_url)
                .and_then(|b| b.join(f))
                .map(|u| u.to_string())
                .unwrap_or_else(|_| format!("{}{f}", glance_url.trim_end_matches('/'))),
            _ => glance_url.to_string(),
        });
    }
    let os_field = |k: &str| text(k).unwrap_or_else(|| "UNKNOWN".into());
    let mut img = CloudComputingImage {
        common: Common::new(&image.id, image.name.clone(), &ctx.time),
        marketplace_url: marketplace,
        os_platform: os_field("architecture"),
        os_name: os_field("os_distro"),
        os_version: Some(os_field("os_version")),
        description: Some(description),
        access_info: "none".into(),
    };
    img.common.other_info = other;
    img.common.associate("Share", share_id);
    img.common.associate("CloudComputingEndpoint", &ctx.endpoint_id);
    img.common.associate("CloudComputingManager", &ctx.manager_id);
    Some(img)
}

/// A flavor size as GLUE's integer: beyond `i64::MAX` (no real flavor) it is
/// published as `i64::MAX` with a warning, never wrapped to a negative number.
fn size_field(f: &nova::Flavor, field: &str, value: u64) -> i64 {
    i64::try_from(value).unwrap_or_else(|_| {
        tracing::warn!("flavor {}: {field} = {value} is out of range; published as {}", f.id, i64::MAX);
        i64::MAX
    })
}

fn build_instance_type(
    ctx: &Ctx<'_>,
    f: &nova::Flavor,
    specs: &BTreeMap<String, String>,
    share_id: &str,
) -> (CloudComputingInstanceType, Option<CloudComputingVirtualAccelerator>) {
    let keys = &ctx.opts.flavor_keys;
    let get = |k: &str| specs.get(k).filter(|v| !v.is_empty()).cloned();
    let infiniband = get(&keys.infiniband).map(|v| v == keys.infiniband_value).unwrap_or(false);
    let mut itype = CloudComputingInstanceType {
        common: Common::new(&f.id, Some(f.name.clone()), &ctx.time),
        platform: "amd64".into(),
        cpu: i64::from(f.vcpus),
        ram: size_field(f, "ram", f.ram),
        disk: size_field(f, "disk", f.disk),
        network_in: Tristate::Unknown,
        network_out: Tristate::True,
        network_info: (ctx.opts.fixes.extra_properties && infiniband).then(|| "infiniband".to_string()),
    };
    itype.common.associate("Share", share_id);
    itype.common.associate("CloudComputingEndpoint", &ctx.endpoint_id);
    itype.common.associate("CloudComputingManager", &ctx.manager_id);
    let mut acc = None;
    if let Some(n) = get(&keys.gpu_number) {
        match n.trim().parse::<i64>() {
            Ok(number) => {
                let extra = ctx.opts.fixes.extra_properties;
                let mut a = CloudComputingVirtualAccelerator {
                    common: Common::new(format!("{}_gpu", f.id), Some(format!("{}_gpu", f.name)), &ctx.time),
                    accelerator_type: "GPU".into(),
                    number,
                    vendor: Some(get(&keys.gpu_vendor).unwrap_or_else(|| "UNKNOWN".into())),
                    model: Some(get(&keys.gpu_model).unwrap_or_else(|| "UNKNOWN".into())),
                    memory: if extra { get(&keys.gpu_memory).and_then(|m| m.trim().parse().ok()) } else { None },
                    compute_capability: vec![],
                    virtualization_type: if extra { get(&keys.gpu_virt_type) } else { None },
                };
                a.common.associate("CloudComputingInstanceType", &f.id);
                itype.common.associate("CloudComputingVirtualAccelerator", &a.common.id);
                acc = Some(a);
            }
            Err(_) => {
                tracing::warn!("flavor {}: {} = {n:?} is not a number; no accelerator published", f.id, keys.gpu_number)
            }
        }
    }
    (itype, acc)
}

/// Project properties naming a project's VO, in the order tried (the docs'
/// `egi.VO`, the legacy `VO`, catch-all cASO's `egi.eu:VO`).
pub const VO_PROPERTIES: [&str; 3] = ["egi.VO", "VO", "egi.eu:VO"];

/// Listing the projects for [`vos_from_projects`] failed.
#[derive(Debug, thiserror::Error)]
#[error("listing projects: {0}")]
pub struct ListVosError(#[source] pub openstack::Error);

/// VO shares found by project property: every enabled project with one of
/// [`VO_PROPERTIES`] (comma-separated VOs give one share each), scoped by
/// project id. Needs a credential that may list projects.
pub async fn vos_from_projects(s: &Session) -> Result<Vec<VoConfig>, ListVosError> {
    let projects = keystone::ListProjects::default().list(s).await.map_err(ListVosError)?;
    let mut out = Vec::new();
    for p in projects.iter().filter(|p| p.enabled) {
        let Some(vos) = VO_PROPERTIES.iter().find_map(|k| p.property(k)) else { continue };
        for vo in vos.split(',').map(str::trim).filter(|v| !v.is_empty()) {
            let mut auth = serde_yaml::Mapping::new();
            auth.insert("project_id".into(), p.id.clone().into());
            out.push(VoConfig { name: vo.to_string(), auth: Some(auth), other: Default::default() });
        }
    }
    Ok(out)
}

/// `site.vos` plus the shares of [`vos_from_projects`] whose project the
/// file does not list (the explicit YAML wins).
pub fn merge_vos(site: &mut SiteConfig, found: Vec<VoConfig>) {
    let listed: Vec<String> = site.vos().iter().filter_map(|v| v.auth_str("project_id")).collect();
    let vos = site.vos.get_or_insert_with(Vec::new);
    for v in found {
        if !v.auth_str("project_id").is_some_and(|p| listed.contains(&p)) {
            vos.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        let yaml = "clouds:\n  t:\n    auth:\n      auth_url: https://k.example:5000/v3\n      username: u\n      password: p\n      project_id: p1\n";
        Options::new(CloudConfig::from_clouds_yaml(yaml, None, "t", "clouds.yaml").unwrap(), "password")
    }

    #[test]
    fn flavor_sizes_beyond_i64_are_capped_not_wrapped() {
        // Caught by the glue_json fuzz target's invariant (fuzz/regressions/glue_json): RAM 2^64-1 was published as -1.
        let f: nova::Flavor = serde_json::from_str(
            r#"{"id": "huge", "name": "huge", "ram": 18446744073709551615, "vcpus": 4294967295, "disk": 9223372036854775808}"#,
        )
        .unwrap();
        let (t, acc) = instance_type_object(&opts(), "https://k.example:5000/v3", &f, &BTreeMap::new(), "s");
        assert_eq!((t.cpu, t.ram, t.disk), (4_294_967_295, i64::MAX, i64::MAX));
        assert!(acc.is_none());
        let doc = t.render();
        assert_eq!(doc.get("RAM"), Some(&Json::Int(i64::MAX as i128)));
    }

    #[test]
    fn gpu_number_with_spaces_gives_an_accelerator_and_a_bad_one_none() {
        let f: nova::Flavor =
            serde_json::from_str(r#"{"id": "g", "name": "g", "ram": 1024, "vcpus": 2, "disk": 10}"#).unwrap();
        let specs: BTreeMap<String, String> = [
            ("Accelerator:Number".to_string(), " 2 ".to_string()),
            ("Accelerator:Vendor".to_string(), "NVIDIA".to_string()),
        ]
        .into();
        let (t, acc) = instance_type_object(&opts(), "https://k.example:5000/v3", &f, &specs, "s");
        let acc = acc.unwrap();
        assert_eq!((acc.number, acc.vendor.as_deref(), acc.model.as_deref()), (2, Some("NVIDIA"), Some("UNKNOWN")));
        assert_eq!(t.common.associations.get("CloudComputingVirtualAccelerator"), Some(&Json::from(vec!["g_gpu"])));
        let bad: BTreeMap<String, String> = [("Accelerator:Number".to_string(), "two".to_string())].into();
        assert!(instance_type_object(&opts(), "https://k.example:5000/v3", &f, &bad, "s").1.is_none());
    }
}
