//! A simulated OpenStack site: Keystone v3, Nova v2.1, Cinder v3, Neutron
//! v2.0 and Glance v2 on one port with devstack-style path prefixes
//! (`/identity`, `/compute`, `/volume`, `/network`, `/image`), plus a
//! Prometheus API subset for energy metrics (`/prometheus`), driven by a
//! seeded scenario, with per-service latency, concurrency caps and faults.
//!
//! This crate shares no types with the `openstack` client crate on purpose:
//! everything it answers is plain JSON built from the OpenStack API
//! references, so a wrong field name cannot hide on both sides.
//!
//! Optionally ([`SimConfig::ams`]) it also runs a simulated ARGO Messaging
//! Service (data API + X.509 token exchange) on two HTTPS ports: see [`ams`].
//!
//! Not for: anything outside the simulation. `fedsite sim` and `fedsite demo`
//! start it; tests start it in-process with [`start`].

pub mod ams;
pub mod auth;
pub mod error;
pub mod federation;
pub mod gocdb;
pub mod harbor;
pub mod index;
pub mod layers;
pub mod model;
pub mod oci;
pub mod scenario;
pub mod state;

mod cinder;
mod glance;
mod keystone;
mod neutron;
mod nova;
pub mod prometheus;
mod swift;
pub mod vault;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;

pub use ams::{AmsConfig, AmsHandle, AmsPublished, AmsUser};
pub use keystone::oidc::{CLIENT_ID as OIDC_CLIENT_ID, CLIENT_SECRET as OIDC_CLIENT_SECRET};
pub use scenario::{Scenario, ScenarioSpec};
pub use state::{EndpointFault, ExternalKeystone, LoggedRequest, Service, ServiceProfile};

use state::{AppState, Clock};

/// How to run a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub scenario: Scenario,
    /// Reference time; the scenario's own when None.
    pub now: Option<DateTime<Utc>>,
    /// Address to listen on; port 0 picks a free one.
    pub bind: SocketAddr,
    pub profiles: BTreeMap<Service, ServiceProfile>,
    /// Seed of the fault/jitter generator.
    pub fault_seed: u64,
    /// Hybrid mode: validate tokens against a real Keystone.
    pub external_keystone: Option<ExternalKeystone>,
    /// Also run a simulated ARGO Messaging Service (own HTTPS ports).
    pub ams: Option<AmsConfig>,
    /// The simulated Vault's KV v1 secrets under `/vault` (path below the `secrets/` mount, e.g.
    /// `users/<sub>/cloudmon/<keystone host>/<vo>` → data).
    pub vault: BTreeMap<String, BTreeMap<String, String>>,
    /// Endpoints that fail every time (also settable later: [`SimHandle::set_endpoint_faults`]).
    pub endpoint_faults: Vec<EndpointFault>,
    /// The newest Nova microversion (minor of 2.x) the simulated Nova supports, as an older
    /// release's: its version document says so and newer requests get 406 (e.g. 60 for
    /// Queens: flavor listings without extra specs; 46: no embedded flavor). Default: the
    /// newest the simulator has (2.79).
    pub nova_max_minor: u32,
    /// The registry's guard: Harbor (default) or a lenient plain registry.
    pub registry: harbor::RegistryMode,
}

impl SimConfig {
    pub fn new(scenario: Scenario) -> Self {
        SimConfig {
            scenario,
            now: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            profiles: BTreeMap::new(),
            fault_seed: 0,
            external_keystone: None,
            ams: None,
            vault: BTreeMap::new(),
            endpoint_faults: Vec::new(),
            nova_max_minor: nova::MAX_MINOR,
            registry: harbor::RegistryMode::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("binding the simulator to {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("starting the simulated AMS: {0}")]
    Ams(String),
    /// A step of setting up the site's Keystone federation through its own API failed.
    #[error("federating the simulated site: {step}: {reason}")]
    Federate { step: String, reason: String },
    /// The AMS PKI could not issue a certificate.
    #[error("issuing the client certificate {name}: {reason}")]
    Certificate { name: String, reason: String },
}

/// A running simulator. Dropping it does not stop it; call [`SimHandle::stop`].
pub struct SimHandle {
    state: Arc<AppState>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    ams: Option<ams::AmsRuntime>,
}

/// Starts a simulator on `config.bind` and returns once it accepts requests.
pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| SimError::Bind { addr: config.bind, source })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind { addr: config.bind, source })?;
    let base_url = format!("http://{addr}");
    let reference = config.now.unwrap_or(config.scenario.reference_time);
    let limits = config
        .profiles
        .iter()
        .filter(|(_, p)| p.max_concurrent > 0)
        .map(|(s, p)| (*s, Arc::new(tokio::sync::Semaphore::new(p.max_concurrent))))
        .collect();
    let state = Arc::new(AppState {
        site: state::SiteLock::new(config.scenario.site),
        listings: Mutex::new(None),
        tokens: RwLock::new(HashMap::new()),
        clock: Clock::new(reference),
        base_url,
        profiles: config.profiles,
        limits,
        log: Mutex::new(Vec::new()),
        rng_seed: config.fault_seed,
        fault_counter: Default::default(),
        external_keystone: config.external_keystone,
        http: reqwest::Client::new(),
        external_cache: RwLock::new(HashMap::new()),
        vault: RwLock::new(vault::VaultState { secrets: config.vault, ..Default::default() }),
        endpoint_faults: RwLock::new(config.endpoint_faults),
        nova_max_minor: config.nova_max_minor.clamp(nova::MIN_MINOR, nova::MAX_MINOR),
        registry_mode: config.registry,
        harbor_tokens: Mutex::new(HashMap::new()),
    });
    let ams = match config.ams {
        Some(cfg) => Some(ams::start(cfg, state.clone()).await.map_err(SimError::Ams)?),
        None => None,
    };
    let app = router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(SimHandle { state, addr, shutdown: Some(tx), task: Some(task), ams })
}

/// The whole application: every service under its prefix, the behaviour
/// layer, and the simulator's own `/sim` control endpoints.
fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .nest(Service::Identity.prefix(), keystone::router())
        .nest(Service::Compute.prefix(), nova::router())
        .nest(Service::Volume.prefix(), cinder::router())
        .nest(Service::Network.prefix(), neutron::router())
        .nest(Service::Image.prefix(), glance::router())
        .nest(Service::Prometheus.prefix(), prometheus::router())
        .nest("/v2", oci::router())
        .route("/v2/", get(oci::root))
        .merge(harbor::router())
        .nest("/object-store", swift::router())
        .nest("/gocdb", gocdb::router())
        .nest("/vault", vault::router())
        // axum's `nest` never hands "<prefix>/" to the nested router; clients
        // doing version discovery ask for exactly that.
        .route("/identity/", get(keystone::versions))
        .route("/compute/", get(nova::misc::versions))
        .route("/volume/", get(cinder::versions_all))
        .route("/network/", get(neutron::versions))
        .route("/image/", get(glance::versions_root))
        .route("/sim/requests", get(sim_requests).delete(sim_clear_requests))
        .route("/sim/requests/counts", get(sim_request_counts))
        .route("/sim/now", get(sim_now).put(sim_set_now))
        .layer(axum::middleware::from_fn_with_state(state.clone(), layers::service_layer))
        .with_state(state)
}

async fn sim_requests(State(state): State<Arc<AppState>>) -> axum::Json<Vec<LoggedRequest>> {
    axum::Json(state.log.lock().unwrap().clone())
}

async fn sim_clear_requests(State(state): State<Arc<AppState>>) -> axum::http::StatusCode {
    state.log.lock().unwrap().clear();
    axum::http::StatusCode::NO_CONTENT
}

async fn sim_request_counts(State(state): State<Arc<AppState>>) -> axum::Json<BTreeMap<String, u64>> {
    axum::Json(state.request_counts())
}

async fn sim_now(State(state): State<Arc<AppState>>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"now": state.now().to_rfc3339()}))
}

#[derive(Deserialize)]
struct SetNow {
    now: DateTime<Utc>,
}

async fn sim_set_now(
    State(state): State<Arc<AppState>>,
    axum::Json(body): axum::Json<SetNow>,
) -> axum::http::StatusCode {
    state.clock.set_reference(body.now);
    axum::http::StatusCode::NO_CONTENT
}

impl SimHandle {
    /// `http://127.0.0.1:<port>`
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// Keystone v3 URL, as clouds.yaml's `auth_url`.
    /// Federates this site with an EGI Check-in–like issuer, as a site admin does it, through
    /// the site's own OS-FEDERATION API (admin token): identity provider `egi.eu` trusting
    /// `issuer`, protocol `openid`, and a mapping granting `reader` on `project` (by name) to
    /// members of `vo`. For tests whose subject is not the federation itself.
    pub async fn federate_egi(&self, issuer: &str, vo: &str, project: &str) -> Result<(), SimError> {
        self.federate_egi_with_role(issuer, vo, project, "reader").await
    }

    /// [`SimHandle::federate_egi`] granting `role` instead of `reader` (`member` for a VO
    /// robot that boots servers and writes to Swift, as EGI's monitoring does).
    pub async fn federate_egi_with_role(
        &self,
        issuer: &str,
        vo: &str,
        project: &str,
        role: &str,
    ) -> Result<(), SimError> {
        self.federate_egi_vos(issuer, "openid", &[(vo.to_string(), project.to_string())], role).await
    }

    /// [`SimHandle::federate_egi`] for several VOs at once, each granted `reader` on its own
    /// project (by name) with `role`, with the federation protocol `protocol`.
    pub async fn federate_egi_vos(
        &self,
        issuer: &str,
        protocol: &str,
        vos: &[(String, String)],
        role: &str,
    ) -> Result<(), SimError> {
        let http = reqwest::Client::new();
        let auth = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": scenario::ADMIN_USER, "domain": {"id": "default"}, "password": scenario::PASSWORD}}},
            "scope": {"project": {"name": scenario::ADMIN_PROJECT, "domain": {"id": "default"}}},
        }});
        let base = self.auth_url();
        let base = base.trim_end_matches('/');
        let fail = |step: &str, reason: String| SimError::Federate { step: step.to_string(), reason };
        let r = http
            .post(format!("{base}/auth/tokens"))
            .json(&auth)
            .send()
            .await
            .map_err(|e| fail("admin login", e.to_string()))?;
        let token = r
            .headers()
            .get("x-subject-token")
            .and_then(|t| t.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| fail("admin login", format!("HTTP {}", r.status())))?;
        let rules: Vec<serde_json::Value> = vos
            .iter()
            .map(|(vo, project)| {
                serde_json::json!({
                    "local": [{"user": {"name": "{0}"}}, {"projects": [{"name": project, "roles": [{"name": role}]}]}],
                    "remote": [{"type": "OIDC-sub"}, {"type": "OIDC-eduperson_entitlement",
                                "any_one_of": [format!("urn:mace:egi.eu:group:{vo}:role=member#aai.egi.eu")]}],
                })
            })
            .collect();
        let protocol_path = format!("OS-FEDERATION/identity_providers/egi.eu/protocols/{protocol}");
        for (path, body) in [
            (
                "OS-FEDERATION/identity_providers/egi.eu",
                serde_json::json!({"identity_provider": {"enabled": true, "remote_ids": [issuer]}}),
            ),
            ("OS-FEDERATION/mappings/egi-mapping", serde_json::json!({"mapping": {"rules": rules}})),
            (protocol_path.as_str(), serde_json::json!({"protocol": {"mapping_id": "egi-mapping"}})),
        ] {
            let r = http
                .put(format!("{base}/{path}"))
                .header("x-auth-token", &token)
                .json(&body)
                .send()
                .await
                .map_err(|e| fail(&format!("PUT {path}"), e.to_string()))?;
            if !r.status().is_success() {
                return Err(fail(&format!("PUT {path}"), format!("HTTP {}", r.status())));
            }
        }
        Ok(())
    }

    pub fn auth_url(&self) -> String {
        format!("{}/identity/v3", self.state.base_url)
    }
    /// The reference time the site is viewed at.
    pub fn now(&self) -> DateTime<Utc> {
        self.state.now()
    }
    /// Moves the reference time; VMs and volumes come and go accordingly.
    pub fn set_now(&self, t: DateTime<Utc>) {
        self.state.clock.set_reference(t)
    }
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state.log.lock().unwrap().clone()
    }
    pub fn clear_requests(&self) {
        self.state.log.lock().unwrap().clear()
    }
    /// Requests by `METHOD /route/{id}`.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.state.request_counts()
    }
    /// Registers a token as if Keystone had issued it (tests).
    /// Every token the simulated Keystone issued so far (the secret-leak test
    /// looks for them in logs).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.tokens.read().unwrap().keys().cloned().collect()
    }
    pub fn insert_token(&self, token: &str, info: crate::state::TokenInfo) {
        self.state.tokens.write().unwrap().insert(token.to_string(), info);
    }
    pub fn region(&self) -> String {
        self.state.site.read().unwrap().region.clone()
    }

    /// A `clouds:` YAML document with password auth for the well-known
    /// accounts: `sim` (admin in the admin project) and `sim-accounting`
    /// (the reader account, scoped to the admin project's domain default).
    /// Replaces the endpoints that fail every time ([`EndpointFault`]); empty: none.
    pub fn set_endpoint_faults(&self, faults: Vec<EndpointFault>) {
        *self.state.endpoint_faults.write().unwrap() = faults;
    }

    /// An access token from this sim's OIDC provider (Check-in's client-credentials grant,
    /// the well-known client `OIDC_CLIENT_ID`): a member of every VO of the site's projects.
    pub async fn oidc_access_token(&self) -> Result<String, SimError> {
        let fail = |reason: String| SimError::Federate { step: "the OIDC token request".into(), reason };
        let v: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/identity/oidc/token", self.base_url()))
            .basic_auth(OIDC_CLIENT_ID, Some(OIDC_CLIENT_SECRET))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&scope=openid")
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?
            .json()
            .await
            .map_err(|e| fail(e.to_string()))?;
        v["access_token"].as_str().map(str::to_string).ok_or_else(|| fail(format!("no access_token in {v}")))
    }

    pub fn clouds_yaml(&self) -> String {
        let region = self.region();
        let mut out = String::from("clouds:\n");
        for (name, user, project) in [
            ("sim", scenario::ADMIN_USER, Some(scenario::ADMIN_PROJECT)),
            ("sim-accounting", scenario::ACCOUNTING_USER, None),
        ] {
            out.push_str(&format!("  {name}:\n    auth:\n      auth_url: {}\n", self.auth_url()));
            out.push_str(&format!("      username: {user}\n      password: {}\n", scenario::PASSWORD));
            out.push_str("      user_domain_name: Default\n");
            if let Some(p) = project {
                out.push_str(&format!("      project_name: {p}\n      project_domain_name: Default\n"));
            } else {
                out.push_str("      system_scope: all\n");
            }
            out.push_str(&format!("    region_name: {region}\n    interface: public\n    identity_api_version: 3\n"));
        }
        out
    }

    /// The simulated AMS, when configured.
    pub fn ams(&self) -> Option<&AmsHandle> {
        self.ams.as_ref().map(|a| &a.handle)
    }
    /// AMS data API base URL (`https://localhost:<port>`), when configured.
    pub fn ams_url(&self) -> Option<String> {
        self.ams().map(|a| a.url())
    }
    /// AMS token exchange base URL (`https://localhost:<port>`), when configured.
    pub fn ams_authn_url(&self) -> Option<String> {
        self.ams().map(|a| a.authn_url())
    }
    /// The AMS CA certificate (PEM), when configured.
    pub fn ams_ca_pem_path(&self) -> Option<std::path::PathBuf> {
        self.ams().map(|a| a.ca_pem_path())
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(ams) = self.ams.take() {
            let _ = ams.shutdown.send(true);
            for t in ams.tasks {
                let _ = t.await;
            }
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}
