//! The simulated ARGO Messaging Service (AMS): the REST data API (the "443"
//! role) and the X.509 → token exchange of argo-api-authn (the "8443" role),
//! each on its own HTTPS port with a CA generated at start. Owns the AMS
//! configuration, the in-memory topics/subscriptions/messages and the
//! inspection handle tests use to see what was published.
//!
//! Pointing clients at it: python `argo-ams-library` builds `https://{host}`
//! for data and `https://{host}:{authn_port}` for the token exchange. Give it
//! `ArgoMessagingService(endpoint="localhost", authn_port=<authn port>,
//! cert=..., key=...)` to fetch a token, then set `.endpoint =
//! "localhost:<data port>"` (or construct with `endpoint="localhost:<port>",
//! token=...` directly), with `REQUESTS_CA_BUNDLE=<cert_dir>/ca.pem`.

mod api;
mod authn;
pub mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use chrono::{DateTime, Utc};

use crate::state::{AppState, Service};

pub use tls::TEST_CLIENT_DN;

pub const DEFAULT_PROJECT: &str = "accounting";
pub const DEFAULT_TOPIC: &str = "eu-egi-cloud-accounting";
pub const DEFAULT_SUBSCRIPTION: &str = "eu-egi-cloud-accounting-sub";
/// Token of the default `sender` user (publisher on the default topic; bound
/// to [`TEST_CLIENT_DN`] for authx509).
pub const SENDER_TOKEN: &str = "sim-ams-sender-token";
/// Token of the default `receiver` user (consumer of the default subscription).
pub const RECEIVER_TOKEN: &str = "sim-ams-receiver-token";
/// Token of the default `admin` user (project_admin of every project).
pub const ADMIN_TOKEN: &str = "sim-ams-admin-token";
/// AMS's Kafka `MaxMessageBytes`, applied to a message's base64 `data`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_500_000;

/// One AMS user.
#[derive(Debug, Clone)]
pub struct AmsUser {
    pub name: String,
    /// Sent as `x-api-key` (or `?key=`).
    pub token: String,
    /// Roles in every project: `project_admin`, `publisher`, `consumer`
    /// (`service_admin` is allowed everything).
    pub roles: Vec<String>,
    /// Certificate subject bound to this user in the authn service, OpenSSL
    /// form `/C=XX/O=Test/CN=host` or RFC 2253 `CN=host,O=Test,C=XX`.
    pub dn: Option<String>,
}

impl AmsUser {
    pub fn new(name: &str, token: &str, roles: &[&str]) -> Self {
        AmsUser {
            name: name.into(),
            token: token.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            dn: None,
        }
    }
    pub fn with_dn(mut self, dn: &str) -> Self {
        self.dn = Some(dn.into());
        self
    }
}

#[derive(Debug, Clone)]
pub struct AmsTopicSpec {
    pub name: String,
    /// Users allowed to publish (publishers outside it get 403).
    pub acl: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct AmsSubscriptionSpec {
    pub name: String,
    pub topic: String,
    pub ack_deadline_seconds: u32,
    /// Users allowed to pull (consumers outside it get 403).
    pub acl: Vec<String>,
}

/// How to run the simulated AMS (both listeners).
#[derive(Debug, Clone)]
pub struct AmsConfig {
    /// Where the generated PEM files go (`ca.pem`, `client-cert.pem`, ...).
    pub cert_dir: PathBuf,
    /// Data API listener (port 0 = any free one).
    pub bind: SocketAddr,
    /// X.509 token exchange listener (port 0 = any free one).
    pub authn_bind: SocketAddr,
    /// The project the topics and subscriptions below live in.
    pub project: String,
    pub topics: Vec<AmsTopicSpec>,
    pub subscriptions: Vec<AmsSubscriptionSpec>,
    pub users: Vec<AmsUser>,
    /// Largest base64 `data` accepted; larger → 413.
    pub max_message_bytes: usize,
    /// Extra PEM files of CAs whose client certificates authx509 accepts
    /// (the sim CA is always accepted).
    pub client_ca_files: Vec<PathBuf>,
    /// Hosts registered for service type `ams` in authn (the `{host}` path
    /// segment); others get 404 "Host was not found".
    pub authn_hosts: Vec<String>,
    /// How long a pull with `returnImmediately: "false"` waits for a message.
    pub pull_wait_ms: u64,
}

impl AmsConfig {
    /// The EGI accounting layout: project `accounting`, topic
    /// `eu-egi-cloud-accounting` (publisher `sender`), subscription
    /// `eu-egi-cloud-accounting-sub` (consumer `receiver`, 10 s ack deadline),
    /// plus `admin` (project_admin).
    pub fn new(cert_dir: impl Into<PathBuf>) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        AmsConfig {
            cert_dir: cert_dir.into(),
            bind: any,
            authn_bind: any,
            project: DEFAULT_PROJECT.into(),
            topics: vec![AmsTopicSpec { name: DEFAULT_TOPIC.into(), acl: vec!["sender".into()] }],
            subscriptions: vec![AmsSubscriptionSpec {
                name: DEFAULT_SUBSCRIPTION.into(),
                topic: DEFAULT_TOPIC.into(),
                ack_deadline_seconds: 10,
                acl: vec!["receiver".into()],
            }],
            users: vec![
                AmsUser::new("sender", SENDER_TOKEN, &["publisher"]).with_dn(TEST_CLIENT_DN),
                AmsUser::new("receiver", RECEIVER_TOKEN, &["consumer"]),
                AmsUser::new("admin", ADMIN_TOKEN, &["project_admin"]),
            ],
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            client_ca_files: Vec::new(),
            authn_hosts: vec!["localhost".into(), "127.0.0.1".into()],
            pull_wait_ms: 5000,
        }
    }
}

/// A message as stored (and as tests see it).
#[derive(Debug, Clone, PartialEq)]
pub struct AmsPublished {
    pub project: String,
    pub topic: String,
    /// Kafka-style offset in the topic; `messageId` is its decimal string.
    pub offset: u64,
    pub attributes: BTreeMap<String, String>,
    /// The base64 `data` exactly as published.
    pub data_b64: String,
    /// `data` decoded (None when it is not valid standard base64; AMS
    /// itself does not check).
    pub data: Option<Vec<u8>>,
    pub publish_time: DateTime<Utc>,
    /// Name of the user who published it.
    pub publisher: String,
}

impl AmsPublished {
    pub fn message_id(&self) -> String {
        self.offset.to_string()
    }
    /// Decoded data as UTF-8 text, when it is.
    pub fn text(&self) -> Option<String> {
        self.data.as_ref().and_then(|d| String::from_utf8(d.clone()).ok())
    }
}

/// Counters of what the AMS did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AmsCounts {
    /// `:publish` requests answered 200.
    pub publish_requests: u64,
    pub messages_published: u64,
    /// Publish requests refused with 413.
    pub too_large: u64,
    pub pull_requests: u64,
    pub messages_delivered: u64,
    /// `:acknowledge` requests answered 200.
    pub acks: u64,
    /// Tokens handed out by authx509.
    pub token_exchanges: u64,
}

pub(crate) struct Topic {
    pub messages: Vec<AmsPublished>,
    pub acl: Vec<String>,
}

pub(crate) struct Subscription {
    pub topic: String,
    pub ack_deadline: u32,
    /// Next offset to deliver (everything below is acknowledged).
    pub offset: u64,
    /// Offset after the last pull; 0 = no ack pending (as AMS's store).
    pub next_offset: u64,
    /// Unix seconds of the last pull (AMS compares whole seconds).
    pub pending_since: i64,
    pub acl: Vec<String>,
}

#[derive(Default)]
pub(crate) struct Project {
    pub topics: BTreeMap<String, Topic>,
    pub subs: BTreeMap<String, Subscription>,
}

pub(crate) struct Store {
    pub projects: BTreeMap<String, Project>,
    pub counts: AmsCounts,
}

/// Shared state of the two AMS servers.
pub(crate) struct AmsState {
    pub app: Arc<AppState>,
    pub users: Vec<AmsUser>,
    pub store: Mutex<Store>,
    /// Woken on every publish (for waiting pulls).
    pub published: tokio::sync::Notify,
    pub max_message_bytes: usize,
    pub authn_hosts: Vec<String>,
    pub pull_wait: std::time::Duration,
}

/// A running simulated AMS: addresses, certificate paths and inspection.
pub struct AmsHandle {
    state: Arc<AmsState>,
    pki: tls::Pki,
    addr: SocketAddr,
    authn_addr: SocketAddr,
}

/// Stops the AMS listeners.
pub(crate) struct AmsRuntime {
    pub handle: AmsHandle,
    pub shutdown: tokio::sync::watch::Sender<bool>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub(crate) fn format_publish_time(t: DateTime<Utc>) -> String {
    // Go's RFC3339Nano: trailing zeros of the fraction dropped.
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

pub(crate) async fn start(config: AmsConfig, app: Arc<AppState>) -> Result<AmsRuntime, String> {
    let pki = tls::Pki::generate(&config.cert_dir)?;
    let mut client_roots = vec![pki.ca_der.clone()];
    for f in &config.client_ca_files {
        client_roots.extend(tls::read_certs(f)?);
    }
    let data_tls = pki.server_config(None)?;
    let authn_tls = pki.server_config(Some(client_roots))?;

    let mut projects: BTreeMap<String, Project> = BTreeMap::new();
    let project = projects.entry(config.project.clone()).or_default();
    for t in &config.topics {
        project.topics.insert(t.name.clone(), Topic { messages: Vec::new(), acl: t.acl.clone() });
    }
    for s in &config.subscriptions {
        project.subs.insert(
            s.name.clone(),
            Subscription {
                topic: s.topic.clone(),
                ack_deadline: s.ack_deadline_seconds,
                offset: 0,
                next_offset: 0,
                pending_since: 0,
                acl: s.acl.clone(),
            },
        );
    }
    let state = Arc::new(AmsState {
        app: app.clone(),
        users: config.users.clone(),
        store: Mutex::new(Store { projects, counts: AmsCounts::default() }),
        published: tokio::sync::Notify::new(),
        max_message_bytes: config.max_message_bytes,
        authn_hosts: config.authn_hosts.clone(),
        pull_wait: std::time::Duration::from_millis(config.pull_wait_ms),
    });

    let (data_listener, addr) =
        tls::bind(config.bind).await.map_err(|e| format!("binding AMS to {}: {e}", config.bind))?;
    let (authn_listener, authn_addr) =
        tls::bind(config.authn_bind).await.map_err(|e| format!("binding AMS authn to {}: {e}", config.authn_bind))?;
    let layer =
        |svc: Service| axum::middleware::from_fn_with_state((app.clone(), svc), crate::layers::fixed_service_layer);
    let data_app = api::router(state.clone()).layer(layer(Service::Ams));
    let authn_app = authn::router(state.clone()).layer(layer(Service::AmsAuthn));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let tasks = vec![
        tokio::spawn(tls::serve(data_listener, data_tls, data_app, rx.clone())),
        tokio::spawn(tls::serve(authn_listener, authn_tls, authn_app, rx)),
    ];
    Ok(AmsRuntime { handle: AmsHandle { state, pki, addr, authn_addr }, shutdown: tx, tasks })
}

impl AmsHandle {
    /// Data API base URL, `https://localhost:<port>`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }
    /// `localhost:<port>`: the `endpoint`/`host` to give argo-ams-library
    /// (with a static token) or SSM's `[broker] host`.
    pub fn host(&self) -> String {
        format!("localhost:{}", self.addr.port())
    }
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    /// Token exchange base URL, `https://localhost:<authn port>`.
    pub fn authn_url(&self) -> String {
        format!("https://localhost:{}", self.authn_addr.port())
    }
    pub fn authn_port(&self) -> u16 {
        self.authn_addr.port()
    }
    /// The full authx509 URL for `host` (as argo-ams-library builds it).
    pub fn authx509_url(&self, host: &str) -> String {
        format!("{}/v1/service-types/ams/hosts/{host}:authx509", self.authn_url())
    }
    pub fn cert_dir(&self) -> &Path {
        &self.pki.dir
    }
    /// The sim CA (`REQUESTS_CA_BUNDLE`, reqwest root certificate).
    pub fn ca_pem_path(&self) -> PathBuf {
        self.pki.dir.join("ca.pem")
    }
    /// Client certificate with DN [`TEST_CLIENT_DN`], bound to `sender`.
    pub fn client_cert_path(&self) -> PathBuf {
        self.pki.dir.join("client-cert.pem")
    }
    pub fn client_key_path(&self) -> PathBuf {
        self.pki.dir.join("client-key.pem")
    }
    /// Client certificate and key in one PEM (reqwest `Identity::from_pem`).
    pub fn client_identity_pem_path(&self) -> PathBuf {
        self.pki.dir.join("client.pem")
    }
    /// Issues another client certificate from the sim CA (e.g. one whose DN
    /// is bound to nobody): returns (cert, key) paths; `<name>.pem` holds both.
    pub fn issue_client_cert(&self, name: &str, dn: &str) -> Result<(PathBuf, PathBuf), crate::SimError> {
        self.pki
            .issue_client(dn, name)
            .map_err(|reason| crate::SimError::Certificate { name: name.to_string(), reason })
    }
    /// Token of a configured user.
    pub fn token(&self, user: &str) -> Option<String> {
        self.state.users.iter().find(|u| u.name == user).map(|u| u.token.clone())
    }
    /// Messages published to a topic so far, in offset order.
    pub fn published(&self, project: &str, topic: &str) -> Vec<AmsPublished> {
        let store = self.state.store.lock().unwrap();
        store.projects.get(project).and_then(|p| p.topics.get(topic)).map(|t| t.messages.clone()).unwrap_or_default()
    }
    /// Messages of every topic, in (project, topic, offset) order.
    pub fn all_published(&self) -> Vec<AmsPublished> {
        let store = self.state.store.lock().unwrap();
        store.projects.values().flat_map(|p| p.topics.values()).flat_map(|t| t.messages.clone()).collect()
    }
    pub fn counts(&self) -> AmsCounts {
        self.state.store.lock().unwrap().counts.clone()
    }
    /// Current (acknowledged) offset of a subscription.
    pub fn subscription_offset(&self, project: &str, sub: &str) -> Option<u64> {
        let store = self.state.store.lock().unwrap();
        store.projects.get(project).and_then(|p| p.subs.get(sub)).map(|s| s.offset)
    }
    /// Changes a subscription's ack deadline (tests of the 408 path).
    pub fn set_ack_deadline(&self, project: &str, sub: &str, seconds: u32) -> bool {
        let mut store = self.state.store.lock().unwrap();
        match store.projects.get_mut(project).and_then(|p| p.subs.get_mut(sub)) {
            Some(s) => {
                s.ack_deadline = seconds;
                true
            }
            None => false,
        }
    }
}

pub(crate) fn decode_b64(data: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(data).ok()
}
