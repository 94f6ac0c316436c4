//! ARGO's probes of an EGI cloud site, one result each in the Nagios contract
//! ([`crate::nagios`]): `vm` (eu.egi.cloud.OpenStack-VM-OIDC: boot, ACTIVE,
//! delete), `swift` (eu.egi.cloud.OpenStack-Swift: container, object, read
//! back, delete both), `info` (eu.egi.cloud.InfoProvider: the GLUE document is
//! there and fresh), `accounting` (eu.egi.cloud.APEL-Pub: the last send is
//! fresh), `keystone` (authentication and every catalog service answering)
//! and `ports` (TCP to every public endpoint). Owns the login of a VO robot
//! (an OIDC access token through OS-FEDERATION, scoped to the VO's project),
//! the overall timeout and which failures are UNKNOWN (the probe could not
//! run) rather than CRITICAL (the site failed).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use openstack::swift::ObjectStore;
use openstack::{CloudConfig, RetryPolicy, Scope, Session};

use crate::check::{Check, Report, Status};
use crate::config::CheckConfig;
use crate::nagios::{Outcome, Perf, State};

/// A probe by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Vm,
    Swift,
    Info,
    Accounting,
    Keystone,
    Ports,
}

/// (name, probe, the ARGO metric it stands for).
pub const PROBES: [(&str, Probe, &str); 6] = [
    ("vm", Probe::Vm, "eu.egi.cloud.OpenStack-VM-OIDC"),
    ("swift", Probe::Swift, "eu.egi.cloud.OpenStack-Swift"),
    ("info", Probe::Info, "eu.egi.cloud.InfoProvider"),
    ("accounting", Probe::Accounting, "eu.egi.cloud.APEL-Pub"),
    ("keystone", Probe::Keystone, "org.openstack.Keystone"),
    ("ports", Probe::Ports, "org.nagios.Keystone-TCP"),
];

/// A probe name that is not one of [`PROBES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown probe {0:?} (known: vm, swift, info, accounting, keystone, ports)")]
pub struct UnknownProbe(pub String);

impl std::str::FromStr for Probe {
    type Err = UnknownProbe;
    fn from_str(s: &str) -> Result<Probe, UnknownProbe> {
        PROBES.iter().find(|(n, _, _)| *n == s).map(|(_, p, _)| *p).ok_or_else(|| UnknownProbe(s.to_string()))
    }
}

impl Probe {
    pub fn name(self) -> &'static str {
        PROBES.iter().find(|(_, p, _)| *p == self).map_or("", |(n, _, _)| n)
    }
    /// The service name the status line starts with.
    pub fn service(self) -> &'static str {
        match self {
            Probe::Vm => "VM",
            Probe::Swift => "SWIFT",
            Probe::Info => "INFO",
            Probe::Accounting => "ACCOUNTING",
            Probe::Keystone => "KEYSTONE",
            Probe::Ports => "PORTS",
        }
    }
    /// Whether the probe logs in to the site.
    pub fn needs_login(self, settings: &Settings) -> bool {
        match self {
            Probe::Accounting => false,
            Probe::Info => matches!(settings.info, Some(InfoSource::Swift { .. })),
            _ => true,
        }
    }
}

/// Where the information document is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfoSource {
    /// A file, or an http(s) URL.
    Location(String),
    /// An object of the VO robot's project in Swift (`fedsite info --swift-container`).
    Swift { container: String, object: String },
}

/// What the probes are told besides the login.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The whole probe, login included.
    pub timeout: Duration,
    /// The VO the robot acts for: its project is scoped to when the login names none
    /// (the project named after the VO or carrying it as `egi.VO`, else the only one).
    pub vo: String,
    /// The check settings the probes reuse: `probe` (image, flavor, network, VM wait),
    /// `region`, `swift`, `vos` (info), `accounting.ledger`, `connect_timeout`, `now`.
    pub check: CheckConfig,
    pub info: Option<InfoSource>,
    /// Document age for WARNING and CRITICAL (ARGO's cloudinfo probe: 1 and 5 days).
    pub info_warn: chrono::Duration,
    pub info_crit: chrono::Duration,
    /// Last-send age for WARNING and CRITICAL (APEL-Pub: 7 and 30 days).
    pub accounting_warn: chrono::Duration,
    pub accounting_crit: chrono::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timeout: Duration::from_secs(120),
            vo: "ops".into(),
            check: CheckConfig::default(),
            info: None,
            info_warn: chrono::Duration::days(1),
            info_crit: chrono::Duration::days(5),
            accounting_warn: chrono::Duration::days(crate::accounting::WARN_DAYS),
            accounting_crit: chrono::Duration::days(crate::accounting::CRIT_DAYS),
        }
    }
}

/// Why the VO robot could not log in.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// No credentials were given (the probe cannot run).
    #[error("no credentials: {0}")]
    NoCredentials(String),
    /// Keystone did not answer (the probe cannot run).
    #[error("Keystone at {url} unreachable: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: openstack::Error,
    },
    /// Keystone answered and refused the credentials.
    #[error("Keystone at {url} refused the login: {source}")]
    Refused {
        url: String,
        #[source]
        source: openstack::Error,
    },
    #[error("listing the projects the login may scope to at {url}: {source}")]
    Projects {
        url: String,
        #[source]
        source: openstack::Error,
    },
    #[error("the login may scope to no project of VO {vo} (it may scope to: {available})")]
    NoProject { vo: String, available: String },
}

impl LoginError {
    /// UNKNOWN when the probe could not run (no credentials, Keystone unreachable),
    /// CRITICAL when the site refused.
    pub fn state(&self) -> State {
        match self {
            LoginError::NoCredentials(_) | LoginError::Unreachable { .. } => State::Unknown,
            _ => State::Critical,
        }
    }
}

fn unreachable(e: &openstack::Error) -> bool {
    matches!(e, openstack::Error::Transport { .. } | openstack::Error::Config(_))
}

/// Logs in as `cfg` says; an unscoped login (an OIDC access token and no project) is
/// scoped to the project of `vo`, as ARGO's novaprobe finds the ops project.
pub async fn login(cfg: &CloudConfig, vo: &str, timeout: Duration) -> Result<Session, LoginError> {
    let url = cfg.auth_url.clone();
    let retry = RetryPolicy { max_attempts: 2, timeout, ..RetryPolicy::default() };
    let s = Session::builder(cfg.clone()).retry(retry).connect().await.map_err(|source| {
        if unreachable(&source) {
            LoginError::Unreachable { url: url.clone(), source }
        } else {
            LoginError::Refused { url: url.clone(), source }
        }
    })?;
    if !matches!(s.scope(), Scope::Unscoped) {
        return Ok(s);
    }
    let projects = openstack::keystone::projects::list_for_token(&s)
        .await
        .map_err(|source| LoginError::Projects { url: url.clone(), source })?;
    let of_vo = |p: &&openstack::keystone::Project| {
        p.name == vo || crate::inventory::VO_PROPERTIES.iter().any(|k| p.property(k) == Some(vo))
    };
    let chosen = projects.iter().find(of_vo).or(if projects.len() == 1 { projects.first() } else { None });
    let Some(p) = chosen else {
        let names: Vec<&str> = projects.iter().map(|p| p.name.as_str()).collect();
        return Err(LoginError::NoProject {
            vo: vo.to_string(),
            available: if names.is_empty() { "none".into() } else { names.join(", ") },
        });
    };
    s.rescope(Scope::project_id(p.id.clone())).await.map_err(|source| LoginError::Refused { url, source })
}

/// Runs `probe` within `settings.timeout`. `login_cfg` is the robot's cloud, or why none
/// could be resolved ([`resolve_login`]). Past the timeout: UNKNOWN while still
/// logging in, CRITICAL after.
pub async fn run(probe: Probe, login_cfg: Result<&CloudConfig, &LoginError>, settings: &Settings) -> Outcome {
    let logged_in = Arc::new(AtomicBool::new(!probe.needs_login(settings)));
    let started = Instant::now();
    let flag = logged_in.clone();
    let body = async move {
        let session = if probe.needs_login(settings) {
            let cfg = match login_cfg {
                Ok(c) => c,
                Err(e) => return Outcome::new(probe.service(), e.state(), e.to_string()),
            };
            match login(cfg, &settings.vo, settings.check.connect_timeout.max(Duration::from_secs(1)) * 3).await {
                Ok(s) => {
                    flag.store(true, Ordering::SeqCst);
                    Some(s)
                }
                Err(e) => {
                    // The keystone probe tests Keystone itself: not answering is its failure.
                    let state = if probe == Probe::Keystone { State::Critical } else { e.state() };
                    return Outcome::new(probe.service(), state, e.to_string());
                }
            }
        } else {
            None
        };
        match (probe, session) {
            (Probe::Vm, Some(s)) => vm(settings, started, &s).await,
            (Probe::Swift, Some(s)) => swift(&s).await,
            (Probe::Info, s) => info(settings, s.as_ref()).await,
            (Probe::Accounting, _) => accounting(settings).await,
            (Probe::Keystone, Some(s)) => keystone(settings, &s).await,
            (Probe::Ports, Some(s)) => ports(settings, &s).await,
            (_, None) => Outcome::unknown(probe.service(), "no session"),
        }
    };
    let out = match tokio::time::timeout(settings.timeout, body).await {
        Ok(o) => o,
        Err(_) if !logged_in.load(Ordering::SeqCst) => Outcome::unknown(
            probe.service(),
            format!("the login did not finish within {} s (--timeout)", settings.timeout.as_secs()),
        ),
        Err(_) => Outcome::critical(
            probe.service(),
            format!("the probe did not finish within {} s (--timeout)", settings.timeout.as_secs()),
        ),
    };
    let mut out = out.with_perf(Perf::seconds("time", started.elapsed().as_secs_f64()));
    if let Ok(cfg) = login_cfg {
        out = out.redact(&[cfg.credentials.secret().expose()]);
    }
    out
}

/// The VM probe's wait for ACTIVE, kept inside what is left of the overall timeout with as
/// much room again to delete the server and see it gone (that wait is as long at most).
fn vm_settings(settings: &Settings, started: Instant) -> CheckConfig {
    let mut c = settings.check.clone();
    let left = settings.timeout.saturating_sub(started.elapsed());
    c.probe.vm_timeout = c.probe.vm_timeout.min(left.mul_f64(0.45).max(Duration::from_secs(1)));
    c.probe.vo = settings.vo.clone();
    c
}

async fn vm(settings: &Settings, started: Instant, s: &Session) -> Outcome {
    let cfg = vm_settings(settings, started);
    match crate::vmprobe::start_and_delete(&cfg, s).await {
        Ok(run) => Outcome::ok(Probe::Vm.service(), run.message).with_perf(
            Perf::seconds("active", f64::from(run.active_secs))
                .thresholds(None, Some(cfg.probe.vm_timeout.as_secs_f64())),
        ),
        Err(f) => Outcome::critical(Probe::Vm.service(), f.message).with_line(format!("fix: {}", f.fix)),
    }
}

/// The text ARGO's swiftprobe writes.
const SWIFT_DATA: &[u8] = b"This is just an ASCII file\n";

async fn swift(s: &Session) -> Outcome {
    let svc = Probe::Swift.service();
    let store = match ObjectStore::new(s).await {
        Ok(st) => st,
        Err(e) => return Outcome::critical(svc, format!("no Swift account for the probe's project: {e}")),
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (container, object) = (format!("fedsite-probe-{id}"), format!("file-{id}"));
    let mut done = Vec::new();
    let step = |what: &str, e: openstack::Error| format!("{what}: {e}");
    if let Err(e) = store.create_container(&container).await {
        return Outcome::critical(svc, step(&format!("could not create container {container}"), e));
    }
    done.push(format!("created container {container}"));
    let fail = |msg: String, done: &[String]| {
        let mut o = Outcome::critical(svc, msg);
        o.long.extend(done.iter().cloned());
        o
    };
    let written = store.put_object(&container, &object, SWIFT_DATA.to_vec(), "text/plain").await;
    let result = match written {
        Err(e) => Err(step(&format!("could not write object {object} in {container}"), e)),
        Ok(_) => {
            done.push(format!("wrote object {object} ({} bytes)", SWIFT_DATA.len()));
            match store.get_object(&container, &object).await {
                Err(e) => Err(step(&format!("could not read back object {object}"), e)),
                Ok(back) if back.data != SWIFT_DATA => Err(format!(
                    "object {object} read back differs: {} bytes instead of the {} written",
                    back.data.len(),
                    SWIFT_DATA.len()
                )),
                Ok(_) => {
                    done.push(format!("read back object {object}"));
                    Ok(())
                }
            }
        }
    };
    // Clean up whatever the outcome.
    let deleted_object = store.delete_object(&container, &object).await;
    let deleted_container = store.delete_container(&container).await;
    if let Err(msg) = result {
        let cleanup = if deleted_container.is_ok() { "" } else { "; the container could not be deleted" };
        return fail(format!("{msg}{cleanup}"), &done);
    }
    if let Err(e) = deleted_object {
        return fail(step(&format!("could not delete object {object}"), e), &done);
    }
    done.push(format!("deleted object {object}"));
    if let Err(e) = deleted_container {
        return fail(step(&format!("could not delete container {container}"), e), &done);
    }
    Outcome::ok(
        svc,
        format!("container {container} created and deleted, object {object} written, read back and deleted"),
    )
}

/// Age as `N h` under two days, `N days` after.
fn age_text(d: chrono::Duration) -> String {
    if d.num_hours() < 48 { format!("{} h", d.num_hours()) } else { format!("{} days", d.num_days()) }
}

/// OK / WARNING / CRITICAL by age against the thresholds.
fn by_age(age: chrono::Duration, warn: chrono::Duration, crit: chrono::Duration) -> State {
    if age > crit {
        State::Critical
    } else if age > warn {
        State::Warning
    } else {
        State::Ok
    }
}

fn age_perf(label: &str, age: chrono::Duration, warn: chrono::Duration, crit: chrono::Duration) -> Perf {
    let secs = |d: chrono::Duration| d.num_seconds() as f64;
    Perf::seconds(label, secs(age).max(0.0)).thresholds(Some(secs(warn)), Some(secs(crit)))
}

async fn info(settings: &Settings, s: Option<&Session>) -> Outcome {
    let svc = Probe::Info.service();
    let (doc, src) = match (&settings.info, s) {
        (None, _) => {
            return Outcome::unknown(svc, "no information document given (--info FILE|URL or --swift-container)");
        }
        (Some(InfoSource::Location(loc)), _) => match crate::info::load(loc, settings.check.connect_timeout).await {
            Ok(d) => (d, loc.clone()),
            Err(e) => return Outcome::critical(svc, format!("cannot read the information document: {e}")),
        },
        (Some(InfoSource::Swift { container, object }), Some(s)) => {
            let where_ = format!("Swift {container}/{object}");
            let got = match ObjectStore::new(s).await {
                Ok(st) => st.get_object(container, object).await,
                Err(e) => Err(e),
            };
            match got.map(|o| serde_json::from_slice::<serde_json::Value>(&o.data)) {
                Ok(Ok(d)) => (d, where_),
                Ok(Err(e)) => return Outcome::critical(svc, format!("{where_} is not JSON: {e}")),
                Err(e) => return Outcome::critical(svc, format!("cannot read the information document {where_}: {e}")),
            }
        }
        (Some(InfoSource::Swift { .. }), None) => return Outcome::unknown(svc, "no session to read Swift with"),
    };
    let Some(created) = crate::info::creation_time(&doc) else {
        return Outcome::critical(svc, format!("{src} holds no GLUE object with a CreationTime"));
    };
    let age = settings.check.now - created;
    let state = by_age(age, settings.info_warn, settings.info_crit);
    let published = crate::info::published_vos(&doc);
    let missing: Vec<&str> =
        settings.check.vos.iter().map(|v| v.vo.as_str()).filter(|v| !published.contains(*v)).collect();
    let stamp = created.format("%Y-%m-%dT%H:%M:%SZ");
    let mut o = match state {
        State::Ok => Outcome::ok(svc, format!("{src} produced {} ago ({stamp})", age_text(age))),
        _ => Outcome::new(
            svc,
            state,
            format!(
                "{src} is {} old ({stamp}), over the {} limit: the site description does not run or publish",
                age_text(age),
                age_text(if state == State::Critical { settings.info_crit } else { settings.info_warn })
            ),
        ),
    };
    if !missing.is_empty() {
        o.state = o.state.max(State::Critical);
        o.summary = format!("{}; it lacks VO(s) {}", o.summary, missing.join(", "));
    }
    o.with_perf(age_perf("age", age, settings.info_warn, settings.info_crit))
        .with_perf(Perf::new("vos", published.len() as f64, "").min(0.0))
}

async fn accounting(settings: &Settings) -> Outcome {
    let svc = Probe::Accounting.service();
    let Some(target) = settings.check.accounting.ledger.clone() else {
        return Outcome::unknown(svc, "no ledger given (--ledger)");
    };
    let t = target.clone();
    let facts = tokio::task::spawn_blocking(move || crate::accounting::ledger_facts(&t))
        .await
        .unwrap_or_else(|e| Err(crate::error::LedgerFactsError::Join(e)));
    let f = match facts {
        Ok(f) => f,
        Err(e) => return Outcome::unknown(svc, format!("cannot read the ledger {target}: {e}")),
    };
    let (warn, crit) = (settings.accounting_warn, settings.accounting_crit);
    let pending = Perf::new("pending", f.pending.len() as f64, "").min(0.0);
    match f.last_sent {
        None => Outcome::critical(
            svc,
            format!("nothing was ever sent to AMS ({} message(s) wait in the ledger {target})", f.pending.len()),
        )
        .with_perf(pending),
        Some(t) => {
            let age = settings.check.now - t;
            let stamp = t.format("%Y-%m-%dT%H:%M:%SZ");
            let state = by_age(age, warn, crit);
            let text = match state {
                State::Ok => format!("last send {} ago ({stamp})", age_text(age)),
                _ => format!(
                    "accounting data is {} old: last send {stamp}, over the {} limit",
                    age_text(age),
                    age_text(if state == State::Critical { crit } else { warn })
                ),
            };
            Outcome::new(svc, state, text).with_perf(age_perf("age", age, warn, crit)).with_perf(pending)
        }
    }
}

/// A family's checks as one result.
fn checks(service: &str, checks: Vec<Check>) -> Outcome {
    crate::nagios::from_report(service, &Report { checks })
}

async fn keystone(settings: &Settings, s: &Session) -> Outcome {
    let found = crate::catalog::run(&settings.check, s).await;
    let answering = found.iter().filter(|c| c.status == Status::Ok).count();
    checks(Probe::Keystone.service(), found).with_perf(Perf::new("answering", answering as f64, "").min(0.0))
}

async fn ports(settings: &Settings, s: &Session) -> Outcome {
    checks(Probe::Ports.service(), crate::ports::inbound(&settings.check, s).await)
}

/// The login of a probe: the robot's URL and token when a URL is given (a token is then
/// required), else the clouds.yaml entry `os_cloud`, else the `OS_*` variables.
pub fn resolve_login(robot: Option<&Robot>, os_cloud: Option<&str>) -> Result<CloudConfig, LoginError> {
    match robot {
        Some(r) if r.access_token.is_empty() => Err(LoginError::NoCredentials(format!(
            "--os-auth-url {} without an access token (--access-token FILE, --os-access-token or OS_ACCESS_TOKEN)",
            r.auth_url
        ))),
        Some(r) => r.cloud().map_err(|e| LoginError::NoCredentials(e.to_string())),
        None => CloudConfig::load(os_cloud).map_err(|e| LoginError::NoCredentials(e.to_string())),
    }
}

/// How a VO robot logs in from the command line alone: Keystone's URL and an OIDC access
/// token presented through OS-FEDERATION (keystoneauth's `v3oidcaccesstoken`).
#[derive(Debug, Clone, Default)]
pub struct Robot {
    pub auth_url: String,
    pub access_token: openstack::Secret,
    /// `egi.eu` by default.
    pub identity_provider: String,
    /// `openid` by default.
    pub protocol: String,
    /// None: the VO's project is found ([`login`]).
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub region: Option<String>,
    pub cacert: Option<PathBuf>,
}

impl Robot {
    /// The cloud configuration; errors name the option (`--os-auth-url`).
    pub fn cloud(&self) -> Result<CloudConfig, openstack::ConfigError> {
        let mut o = std::collections::BTreeMap::new();
        o.insert("auth_type".to_string(), "v3oidcaccesstoken".to_string());
        o.insert("auth_url".into(), self.auth_url.clone());
        o.insert("access_token".into(), self.access_token.expose().to_string());
        let or = |v: &str, d: &str| if v.is_empty() { d.to_string() } else { v.to_string() };
        o.insert("identity_provider".into(), or(&self.identity_provider, "egi.eu"));
        o.insert("protocol".into(), or(&self.protocol, "openid"));
        let opt =
            [("project_id", &self.project_id), ("project_name", &self.project_name), ("region_name", &self.region)];
        for (k, v) in opt {
            if let Some(v) = v {
                o.insert(k.into(), v.clone());
            }
        }
        if let Some(ca) = &self.cacert {
            o.insert("cacert".into(), ca.display().to_string());
        }
        CloudConfig::from_auth_options(&o, "the command line", &|k| format!("--os-{}", k.replace('_', "-")))
    }
}

/// A secret read from a file (ARGO's `--access-token FILE`): the first line, trimmed.
pub fn read_token_file(path: &std::path::Path) -> Result<String, TokenFileError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| TokenFileError::Read { path: path.to_path_buf(), source })?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(TokenFileError::Empty(path.to_path_buf()));
    }
    Ok(token)
}

/// Why an access-token file gave no token.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("reading the access token {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the access token file {} is empty", .0.display())]
    Empty(PathBuf),
}
