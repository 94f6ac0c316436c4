//! Shared state of a running simulator: the site (behind a lock that counts
//! writes), its cached listing indexes, the token store, the clock, the
//! request log and the per-service behaviour profiles.
//!
//! Every service handler gets an `Arc<AppState>`. Tokens are opaque random
//! strings mapped to who they belong to and what they are scoped to.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LockResult, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::index::Listings;
use crate::model::Site;

/// The services the simulator serves, each under its own path prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Identity,
    Compute,
    Volume,
    Network,
    Image,
    /// Prometheus HTTP API (energy metrics; no Keystone token).
    Prometheus,
    /// The ARGO Messaging Service data API (the "443" role), on its own
    /// HTTPS port when `SimConfig::ams` is set.
    Ams,
    /// The AMS X.509 → token exchange (argo-api-authn, the "8443" role).
    #[serde(rename = "ams-authn")]
    AmsAuthn,
}

impl Service {
    /// The services on the simulator's main port (path prefixes).
    pub const ALL: [Service; 6] =
        [Service::Identity, Service::Compute, Service::Volume, Service::Network, Service::Image, Service::Prometheus];
    /// The AMS services, each on its own HTTPS port.
    pub const AMS: [Service; 2] = [Service::Ams, Service::AmsAuthn];

    /// Path prefix on the simulator's single port (devstack style).
    pub fn prefix(self) -> &'static str {
        match self {
            Service::Identity => "/identity",
            Service::Compute => "/compute",
            Service::Volume => "/volume",
            Service::Network => "/network",
            Service::Image => "/image",
            Service::Prometheus => "/prometheus",
            // Own ports, no prefix.
            Service::Ams | Service::AmsAuthn => "",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::Identity => "identity",
            Service::Compute => "compute",
            Service::Volume => "volume",
            Service::Network => "network",
            Service::Image => "image",
            Service::Prometheus => "prometheus",
            Service::Ams => "ams",
            Service::AmsAuthn => "ams-authn",
        }
    }

    pub fn from_path(path: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| path == s.prefix() || path.starts_with(&format!("{}/", s.prefix())))
    }

    pub fn parse(name: &str) -> Option<Service> {
        Service::ALL.into_iter().chain(Service::AMS).find(|s| s.name() == name)
    }
}

/// What a token is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    Unscoped,
    Project { id: String, name: String, domain_id: String },
    Domain { id: String, name: String },
    System,
}

/// What the simulator knows about an issued token.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub user_id: String,
    pub user_name: String,
    pub user_domain_id: String,
    pub scope: TokenScope,
    /// Role names effective in the scope (implied roles included:
    /// admin ⇒ member ⇒ reader).
    pub roles: Vec<String>,
    pub methods: Vec<String>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl TokenInfo {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
    pub fn is_admin(&self) -> bool {
        self.has_role("admin")
    }
    /// Project id of a project-scoped token.
    pub fn project_id(&self) -> Option<&str> {
        match &self.scope {
            TokenScope::Project { id, .. } => Some(id),
            _ => None,
        }
    }
    pub fn is_system(&self) -> bool {
        self.scope == TokenScope::System
    }
}

/// Latency, concurrency and fault settings of one service.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceProfile {
    /// Fixed delay added to every request, in milliseconds.
    pub latency_ms: u64,
    /// Uniform random extra delay in [0, jitter_ms].
    pub jitter_ms: u64,
    /// At most this many requests are served at once (0 = unlimited), like a
    /// fixed pool of API workers; the others wait.
    pub max_concurrent: usize,
    /// Fraction (0..1) of requests answered 500, 503 or 429.
    pub error_rate: f64,
    /// Fraction of requests that hang for `timeout_ms` and then drop.
    pub timeout_rate: f64,
    pub timeout_ms: u64,
    /// Fraction of requests whose JSON body is cut in half.
    pub truncate_rate: f64,
    /// Fraction of requests answered 200 with a malformed JSON body (the
    /// real answer with its structure broken: a cut string, a stray byte).
    pub malformed_rate: f64,
    /// Fraction of answers whose body is sent in small pieces spread over
    /// `slow_body_ms` (a congested link or an overloaded proxy).
    pub slow_body_rate: f64,
    pub slow_body_ms: u64,
}

/// A fault on one endpoint, every time: a request whose method is `method` and whose path
/// matches `path` segment by segment (`*` stands for one segment, e.g.
/// `/compute/v2.1/flavors/*/os-extra_specs`) is answered `status` with the service's own error
/// body, before any of the profile's random faults. Tests break one call of a run with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointFault {
    pub method: String,
    pub path: String,
    pub status: u16,
}

impl EndpointFault {
    pub fn new(method: &str, path: &str, status: u16) -> EndpointFault {
        EndpointFault { method: method.to_ascii_uppercase(), path: path.to_string(), status }
    }

    /// Whether a request (`method`, `path` without the query) is this fault's.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        let (mut want, mut got) = (self.path.trim_end_matches('/').split('/'), path.trim_end_matches('/').split('/'));
        loop {
            match (want.next(), got.next()) {
                (None, None) => return true,
                (Some(w), Some(g)) if w == "*" || w == g => {}
                _ => return false,
            }
        }
    }
}

/// One logged request.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    pub service: Option<Service>,
    pub method: String,
    /// Path and query as received.
    pub uri: String,
    pub status: u16,
    /// `OpenStack-API-Version` / `X-OpenStack-Nova-API-Version` as sent.
    pub microversion: Option<String>,
    /// Set by the fault layer when it injected the answer.
    pub injected: Option<String>,
    /// CPU time the sim spent answering it, in microseconds: the thread CPU time of each poll
    /// of its handler (routing, the handler, serialising the body), not the injected latency.
    pub cpu_us: u64,
}

/// The simulator's clock: the scenario's reference time plus the wall time
/// elapsed since start, so objects created at run time get fresh times while
/// the scenario's history (which ends at the reference time) stays fixed.
#[derive(Debug)]
pub struct Clock {
    reference: RwLock<DateTime<Utc>>,
    initial: DateTime<Utc>,
    started: Instant,
}

impl Clock {
    pub fn new(reference: DateTime<Utc>) -> Self {
        Clock { reference: RwLock::new(reference), initial: reference, started: Instant::now() }
    }
    /// Time for token issue and expiry: the host's real clock, shifted by as
    /// much as the reference time was moved since start. Clients such as
    /// keystoneauth compare `expires_at` with the host clock, so tokens
    /// stamped with a 2023 scenario time would look expired and be re-issued
    /// before every call; moving the reference still expires tokens.
    pub fn token_now(&self) -> DateTime<Utc> {
        Utc::now() + (self.reference() - self.initial)
    }
    /// The reference time ("now" of the scenario).
    pub fn reference(&self) -> DateTime<Utc> {
        *self.reference.read().unwrap()
    }
    /// Moves the reference time forward (or back) between runs.
    pub fn set_reference(&self, t: DateTime<Utc>) {
        *self.reference.write().unwrap() = t;
    }
    /// Current simulated time: reference + elapsed wall time.
    pub fn now(&self) -> DateTime<Utc> {
        self.reference() + Duration::from_std(self.started.elapsed()).unwrap_or_else(|_| Duration::zero())
    }
}

/// Hybrid mode: tokens are validated against a real Keystone instead of the
/// simulator's own token store.
#[derive(Debug, Clone)]
pub struct ExternalKeystone {
    /// e.g. `http://127.0.0.1:5000/v3`
    pub auth_url: String,
    /// A token allowed to validate others (admin or service token).
    pub service_token: String,
}

/// The site behind a read-write lock that counts the times it was taken for
/// writing, so cached indexes know when the site may have changed.
#[derive(Debug)]
pub struct SiteLock {
    inner: RwLock<Site>,
    generation: AtomicU64,
}

impl SiteLock {
    pub fn new(site: Site) -> Self {
        SiteLock { inner: RwLock::new(site), generation: AtomicU64::new(0) }
    }
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, Site>> {
        self.inner.read()
    }
    /// The site for changing; bumps the generation while the lock is held,
    /// so a reader sees either the old site and generation or the new ones.
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, Site>> {
        let guard = self.inner.write();
        self.generation.fetch_add(1, Ordering::SeqCst);
        guard
    }
    /// How many times the site was taken for writing (read it while
    /// holding a read guard to pair it with what the guard shows).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

pub struct AppState {
    pub site: SiteLock,
    /// The listing indexes of the latest view of the site ([`AppState::listings`]).
    pub listings: Mutex<Option<Arc<Listings>>>,
    pub tokens: RwLock<HashMap<String, TokenInfo>>,
    pub clock: Clock,
    /// Base URL the simulator is reachable at (for catalog and links).
    pub base_url: String,
    pub profiles: BTreeMap<Service, ServiceProfile>,
    pub limits: BTreeMap<Service, Arc<tokio::sync::Semaphore>>,
    pub log: Mutex<Vec<LoggedRequest>>,
    pub rng_seed: u64,
    pub fault_counter: std::sync::atomic::AtomicU64,
    pub external_keystone: Option<ExternalKeystone>,
    pub http: reqwest::Client,
    /// Validated external tokens, cached.
    pub external_cache: RwLock<HashMap<String, TokenInfo>>,
    /// The simulated Vault (`/vault`).
    pub vault: RwLock<crate::vault::VaultState>,
    /// Endpoints that fail every time ([`EndpointFault`]).
    pub endpoint_faults: RwLock<Vec<EndpointFault>>,
    /// The newest Nova microversion minor served (`SimConfig::nova_max_minor`).
    pub nova_max_minor: u32,
    /// Harbor (default) or a lenient plain registry ([`crate::harbor`]).
    pub registry_mode: crate::harbor::RegistryMode,
    /// Tokens the simulated Harbor's token service issued.
    pub harbor_tokens: Mutex<crate::harbor::TokenStore>,
}

impl AppState {
    /// The time the site is viewed at: the reference time plus the wall
    /// time since start. Scenario histories have no events in the day after
    /// the reference time, so answers stay reproducible, while servers
    /// created at run time move through BUILD → ACTIVE in real seconds.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The listing indexes for `site` (read through `self.site.read()`, the
    /// guard still held) viewed at `now`: the cached ones while the site is
    /// unchanged and `now` in the same view interval, else new ones.
    pub fn listings(&self, site: &Site, now: DateTime<Utc>) -> Arc<Listings> {
        let generation = self.site.generation();
        let mut cache = self.listings.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = cache.as_ref().filter(|l| l.covers(generation, now)) {
            return l.clone();
        }
        let l = Arc::new(Listings::new(site, generation, now));
        *cache = Some(l.clone());
        l
    }

    /// Counts of logged requests by (service, method, route template).
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        let log = self.log.lock().unwrap();
        let mut counts = BTreeMap::new();
        for r in log.iter() {
            let path = r.uri.split('?').next().unwrap_or("");
            *counts.entry(format!("{} {}", r.method, route_template(path))).or_insert(0) += 1;
        }
        counts
    }
}

/// Replaces ids in a path with `{id}` so request counts group by endpoint.
pub fn route_template(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let looks_like_id = seg.len() >= 8
                && seg.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
                && seg.chars().any(|c| c.is_ascii_digit());
            if looks_like_id { "{id}" } else { seg }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_fault_matches_its_method_and_path_segment_by_segment() {
        let f = EndpointFault::new("get", "/compute/v2.1/flavors/*/os-extra_specs", 500);
        assert!(f.matches("GET", "/compute/v2.1/flavors/f1/os-extra_specs"));
        assert!(f.matches("GET", "/compute/v2.1/flavors/f1/os-extra_specs/"));
        assert!(!f.matches("POST", "/compute/v2.1/flavors/f1/os-extra_specs"));
        assert!(!f.matches("GET", "/compute/v2.1/flavors/f1"));
        assert!(!f.matches("GET", "/compute/v2.1/flavors/f1/os-extra_specs/key"));
        let list = EndpointFault::new("GET", "/compute/v2.1/flavors/detail", 503);
        assert!(list.matches("GET", "/compute/v2.1/flavors/detail"));
        assert!(!list.matches("GET", "/compute/v2.1/flavors/f1"));
    }

    #[test]
    fn route_template_hides_ids_only() {
        assert_eq!(
            route_template("/compute/v2.1/servers/11111111-1111-4111-8111-111111111111"),
            "/compute/v2.1/servers/{id}"
        );
        assert_eq!(
            route_template("/volume/v3/0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b/volumes/detail"),
            "/volume/v3/{id}/volumes/detail"
        );
        assert_eq!(route_template("/identity/v3/auth/tokens"), "/identity/v3/auth/tokens");
    }

    #[test]
    fn service_from_path_needs_a_segment_boundary() {
        assert_eq!(Service::from_path("/compute/v2.1/servers"), Some(Service::Compute));
        assert_eq!(Service::from_path("/identity"), Some(Service::Identity));
        assert_eq!(Service::from_path("/imagery"), None);
    }
}
