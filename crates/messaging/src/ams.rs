//! AMS (ARGO Messaging Service) REST v1 client, speaking to AMS as argo-ams-library does for
//! APEL SSM: X.509 → token exchange (cached, refreshed once on 401) or a static token, publish
//! (byte-identical JSON, several messages per request under a size limit, bounded concurrency),
//! pull and acknowledge. Errors are typed: retryable, too large, or permanent.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt as _;
use serde::Deserialize;
use url::Url;

/// Default limit on one publish request body: under 1 MB (EGI: AMS messages must be < 1 MB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 990_000;
/// Port of the X.509 → token service (argo-api-authn), as argo-ams-library assumes.
pub const DEFAULT_AUTHN_PORT: u16 = 8443;

/// How the client gets its AMS token.
#[derive(Clone, Debug)]
pub enum Auth {
    /// A fixed token (SSM `token:`); a 401 is then a permanent error.
    Token(String),
    /// `GET {authn_base}/v1/service-types/ams/hosts/{host}:authx509` with `cert`+`key` as the
    /// TLS client identity; the token is cached and fetched again once after a 401.
    X509 { authn_base: Url, host: String, cert: PathBuf, key: PathBuf },
}

#[derive(Clone, Debug)]
pub struct AmsConfig {
    /// `https://{host}` (an `http://` base is accepted, for tests).
    pub base_url: Url,
    pub project: String,
    pub auth: Auth,
    /// Trust only these CAs for the AMS and authn servers: a PEM bundle, or a directory of PEM
    /// files (e.g. /etc/grid-security/certificates). None: the system's roots.
    pub ca: Option<PathBuf>,
    /// Accept any server certificate. Logged as a warning; never the default.
    pub insecure: bool,
    /// Per request (connect + send + response), like SSM's `timeout=10`.
    pub timeout: Duration,
    /// Upper bound of one publish request body, in bytes.
    pub max_request_bytes: usize,
    /// Publish requests in flight at once.
    pub concurrency: usize,
    pub user_agent: String,
}

impl AmsConfig {
    /// As SSM: AMS at `https://{host}`, tokens from `https://{host}:8443` with the host cert.
    pub fn x509(
        host: &str,
        project: &str,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Result<AmsConfig, AmsError> {
        let authn_base = parse_url(&format!("https://{host}:{DEFAULT_AUTHN_PORT}"))?;
        let auth = Auth::X509 { authn_base, host: host.to_owned(), cert: cert.into(), key: key.into() };
        AmsConfig::new(&format!("https://{host}"), project, auth)
    }

    pub fn new(base_url: &str, project: &str, auth: Auth) -> Result<AmsConfig, AmsError> {
        Ok(AmsConfig {
            base_url: parse_url(base_url)?,
            project: project.to_owned(),
            auth,
            ca: None,
            insecure: false,
            timeout: Duration::from_secs(10),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            concurrency: 4,
            user_agent: format!("fedsite/{}", env!("CARGO_PKG_VERSION")),
        })
    }
}

fn parse_url(s: &str) -> Result<Url, AmsError> {
    let u = Url::parse(s).map_err(|e| AmsError::Config(format!("invalid URL {s:?}: {e}")))?;
    match u.scheme() {
        "https" | "http" => Ok(u),
        other => Err(AmsError::Config(format!("URL {s:?}: scheme {other:?} is not http(s)"))),
    }
}

/// What the caller should do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Network failure, timeout, 408, 429 or 5xx: try again later (the message may or may not
    /// have been stored: at-least-once).
    Retryable,
    /// 413 from AMS, or refused locally before sending: split the message.
    TooLarge,
    /// 400/401/403/404/409 and other client errors, bad configuration: retrying won't help.
    Permanent,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum AmsError {
    #[error("{what}: {kind}: {}", chain(source.as_ref()))]
    Network {
        what: String,
        /// What kind of network failure (refused, DNS, TLS, timeout...), read off the cause.
        kind: NetKind,
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// An HTTP error status, with AMS's `{"error":{"code","message","status"}}` when present.
    #[error("{what}: HTTP {status}: {message}{}", ams_status.as_ref().map(|s| format!(" ({s})")).unwrap_or_default())]
    Http { what: String, status: u16, message: String, ams_status: Option<String> },
    #[error("{what}: message of {size} bytes in a request exceeds the {limit}-byte limit; not sent")]
    TooLargeLocal { what: String, size: usize, limit: usize },
    /// A success status with a body that is not what AMS answers.
    #[error("{what}: unexpected response: {detail}")]
    Protocol { what: String, detail: String },
    #[error("AMS client configuration: {0}")]
    Config(String),
    /// The X.509 → token exchange failed (the wrapped error says how): no request reached AMS.
    #[error(transparent)]
    TokenExchange(Box<AmsError>),
}

/// The kind of a network failure, for the operator: which setting to look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetKind {
    /// Nothing listens there (ECONNREFUSED).
    Refused,
    /// The host name does not resolve.
    Dns,
    /// The TLS handshake failed: most often a server certificate the configured CAs do not trust.
    Tls,
    /// Another failure to connect (unreachable network, reset during connect...).
    Connect,
    /// No answer within the timeout.
    Timeout,
    /// The connection broke after the request was sent, or the body could not be read.
    Other,
}

impl NetKind {
    fn of(e: &reqwest::Error) -> NetKind {
        if e.is_timeout() {
            return NetKind::Timeout;
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        let mut text = String::new();
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::ConnectionRefused
            {
                return NetKind::Refused;
            }
            text.push_str(&s.to_string().to_ascii_lowercase());
            text.push('\n');
            source = s.source();
        }
        if text.contains("dns error") || text.contains("failed to lookup address") {
            NetKind::Dns
        } else if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
            NetKind::Tls
        } else if e.is_connect() {
            NetKind::Connect
        } else {
            NetKind::Other
        }
    }
}

impl std::fmt::Display for NetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NetKind::Refused => "connection refused",
            NetKind::Dns => "host name not resolved",
            NetKind::Tls => "TLS handshake failed",
            NetKind::Connect => "cannot connect",
            NetKind::Timeout => "timed out",
            NetKind::Other => "connection failed",
        })
    }
}

/// An error and its causes, `a: b: c`, leaving out a cause whose text its parent already holds.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        source = s.source();
    }
    out
}

impl AmsError {
    pub fn class(&self) -> ErrorClass {
        match self {
            AmsError::Network { .. } | AmsError::Protocol { .. } => ErrorClass::Retryable,
            AmsError::Http { status, .. } => classify_status(*status),
            AmsError::TooLargeLocal { .. } => ErrorClass::TooLarge,
            AmsError::Config(_) => ErrorClass::Permanent,
            AmsError::TokenExchange(inner) => match inner.class() {
                ErrorClass::TooLarge => ErrorClass::Permanent,
                c => c,
            },
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            AmsError::Http { status, .. } => Some(*status),
            AmsError::TokenExchange(inner) => inner.status(),
            _ => None,
        }
    }

    /// Set when this failure is not about one message but would meet every message of a run
    /// (a wrong URL, project or topic, refused credentials, AMS unreachable, an untrusted
    /// certificate): what to fix. A sender stops at such an error and blames no message.
    /// `None` for errors about one message (400, 413) and transient ones (5xx, timeouts).
    pub fn systemic(&self) -> Option<&'static str> {
        match self {
            AmsError::TokenExchange(inner) => match inner.as_ref() {
                AmsError::Network { kind: NetKind::Timeout | NetKind::Other, .. } => None,
                AmsError::Network { kind, .. } => Some(net_hint(*kind)),
                e if e.class() == ErrorClass::Retryable => None,
                _ => Some(
                    "the X.509 token exchange: check its URL (--authn-url / [ams] authn_url, \
                     by default https://<AMS host name>:8443), the host certificate and key \
                     (--cert / --key, [certificates]) and that the certificate's DN is an AMS \
                     user; or give a static token (--token, [messaging] token)",
                ),
            },
            AmsError::Http { status: 401 | 403, .. } => Some(
                "AMS refused the credentials: check the token (--token, [messaging] token) or \
                 that the host certificate's DN is an AMS user allowed to publish to the topic",
            ),
            AmsError::Http { status: 404, .. } => Some(
                "AMS has no such project or topic: check the project (--project, [messaging] \
                 ams_project) and the topic (--topic, [messaging] destination)",
            ),
            AmsError::Network { kind: NetKind::Timeout | NetKind::Other, .. } => None,
            AmsError::Network { kind, .. } => Some(net_hint(*kind)),
            AmsError::Config(_) => Some("the AMS client configuration"),
            _ => None,
        }
    }
}

fn net_hint(kind: NetKind) -> &'static str {
    match kind {
        NetKind::Tls => {
            "the server's certificate is not trusted: give the CA bundle or directory with --ca \
             ([ams] ca) or REQUESTS_CA_BUNDLE, or check that the URL names the right server"
        }
        NetKind::Dns => {
            "the host name does not resolve: check the AMS host (--ams-url, [broker] host, [ams] \
             url) and --authn-url"
        }
        _ => {
            "AMS cannot be reached: check the AMS URL and port (--ams-url, [broker] host, [ams] \
             url), --authn-url, and the network or firewall"
        }
    }
}

/// 408/429/5xx → retryable (argo-ams-library retries 408, 500, 502, 503, 504); 413 → too
/// large; anything else → permanent.
pub fn classify_status(status: u16) -> ErrorClass {
    match status {
        408 | 429 | 500..=599 => ErrorClass::Retryable,
        413 => ErrorClass::TooLarge,
        _ => ErrorClass::Permanent,
    }
}

/// One message to publish: attributes (in this order) and the raw payload, which is sent base64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub attributes: Vec<(String, String)>,
    pub data: Vec<u8>,
}

impl OutgoingMessage {
    /// What SSM publishes for a spool element: `{"empaid": "<dir>/<name>"}` and the S/MIME text.
    pub fn ssm(empaid: &str, smime: &[u8]) -> OutgoingMessage {
        OutgoingMessage { attributes: vec![("empaid".into(), empaid.into())], data: smime.to_vec() }
    }

    /// `{"attributes": {...}, "data": "<std base64>"}` exactly as json.dumps writes it.
    pub fn to_json(&self) -> String {
        let attrs = pyjson::str_object(self.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let data = base64::engine::general_purpose::STANDARD.encode(&self.data);
        format!("{{\"attributes\": {attrs}, \"data\": {}}}", pyjson::string(&data))
    }
}

/// The publish body for already-encoded messages: `{"messages": [m1, m2]}`.
pub fn publish_body(encoded: &[String]) -> String {
    format!("{{\"messages\": {}}}", pyjson::list(encoded))
}

/// Size of the publish body holding messages of these encoded sizes.
fn body_size(sizes: &[usize]) -> usize {
    r#"{"messages": []}"#.len() + sizes.iter().sum::<usize>() + 2 * sizes.len().saturating_sub(1)
}

/// Groups consecutive messages (by encoded size) into requests whose body stays within `max`.
/// `Err(i)` marks a message that alone exceeds the limit.
pub fn plan_batches(sizes: &[usize], max: usize) -> Vec<Result<Range<usize>, usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < sizes.len() {
        if body_size(&sizes[i..=i]) > max {
            if start < i {
                out.push(Ok(start..i));
            }
            out.push(Err(i));
            i += 1;
            start = i;
            continue;
        }
        if body_size(&sizes[start..=i]) > max {
            out.push(Ok(start..i));
            start = i;
        }
        i += 1;
    }
    if start < sizes.len() {
        out.push(Ok(start..sizes.len()));
    }
    out
}

/// One planned publish request of [`AmsClient::publish_requests`].
#[derive(Debug)]
pub enum PublishRequest {
    /// Message `index` alone exceeds the request limit (its JSON is `encoded_size` bytes): not sent.
    TooLarge { index: usize, encoded_size: usize },
    /// One request carrying `messages` (indices into the input): their AMS ids, or its error.
    Sent { messages: Range<usize>, result: Result<Vec<String>, AmsError> },
}

/// A pulled message. `data` is the base64-decoded payload, or why it could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub ack_id: String,
    pub message_id: String,
    pub attributes: BTreeMap<String, String>,
    pub data: Result<Vec<u8>, NotBase64>,
    pub publish_time: String,
}

/// A pulled message whose `data` is not base64.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("data is not base64: {0}")]
pub struct NotBase64(#[source] pub base64::DecodeError);

#[derive(Deserialize)]
struct PullResponse {
    #[serde(rename = "receivedMessages", default)]
    received: Vec<RawReceived>,
}

#[derive(Deserialize)]
struct RawReceived {
    #[serde(rename = "ackId")]
    ack_id: String,
    message: RawMessage,
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(rename = "messageId", default)]
    message_id: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    data: String,
    #[serde(rename = "publishTime", default)]
    publish_time: String,
}

#[derive(Deserialize)]
struct PublishResponse {
    #[serde(rename = "messageIds")]
    message_ids: Vec<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// The AMS client. Cheap to share (`Arc`); all methods take `&self`.
pub struct AmsClient {
    cfg: AmsConfig,
    http: reqwest::Client,
    authn: Option<reqwest::Client>,
    token: tokio::sync::Mutex<Option<String>>,
    exchanges: AtomicU64,
}

impl std::fmt::Debug for AmsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmsClient")
            .field("base_url", &self.cfg.base_url.as_str())
            .field("project", &self.cfg.project)
            .finish()
    }
}

fn load_roots(path: &Path) -> Result<Vec<reqwest::Certificate>, AmsError> {
    let cfg_err = |e: String| AmsError::Config(format!("CA {}: {e}", path.display()));
    let files: Vec<PathBuf> = if path.is_dir() {
        let rd = std::fs::read_dir(path).map_err(|e| cfg_err(e.to_string()))?;
        let mut v: Vec<PathBuf> =
            rd.map(|e| e.map(|e| e.path()).map_err(|e| cfg_err(e.to_string()))).collect::<Result<Vec<_>, _>>()?;
        v.retain(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            matches!(ext, "pem" | "crt") || ext.chars().all(|c| c.is_ascii_digit()) && !ext.is_empty()
        });
        v.sort();
        v
    } else {
        vec![path.to_owned()]
    };
    let mut roots = Vec::new();
    for f in &files {
        let pem = std::fs::read(f).map_err(|e| cfg_err(format!("reading {}: {e}", f.display())))?;
        match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(certs) => roots.extend(certs),
            Err(e) if !path.is_dir() => return Err(cfg_err(e.to_string())),
            Err(_) => {}
        }
    }
    if roots.is_empty() {
        return Err(cfg_err("no certificates found".into()));
    }
    Ok(roots)
}

impl AmsClient {
    pub fn new(cfg: AmsConfig) -> Result<AmsClient, AmsError> {
        if cfg.project.is_empty() || !valid_name(&cfg.project) {
            return Err(AmsError::Config(format!("invalid AMS project name {:?}", cfg.project)));
        }
        if cfg.max_request_bytes == 0 || cfg.concurrency == 0 {
            return Err(AmsError::Config("max_request_bytes and concurrency must be positive".into()));
        }
        let roots = cfg.ca.as_deref().map(load_roots).transpose()?;
        let builder = || {
            let mut b = reqwest::Client::builder().timeout(cfg.timeout).user_agent(cfg.user_agent.clone());
            if let Some(roots) = &roots {
                b = b.tls_certs_only(roots.iter().cloned());
            }
            if cfg.insecure {
                b = b.tls_danger_accept_invalid_certs(true);
            }
            b
        };
        if cfg.insecure {
            tracing::warn!(base_url = %cfg.base_url, "AMS client: TLS certificate verification is DISABLED (insecure)");
        }
        let build_err =
            |what: &str, e: reqwest::Error| AmsError::Config(format!("building the {what} HTTP client: {e}"));
        let http = builder().build().map_err(|e| build_err("AMS", e))?;
        let authn = match &cfg.auth {
            Auth::Token(_) => None,
            Auth::X509 { cert, key, .. } => {
                let read =
                    |p: &Path| std::fs::read(p).map_err(|e| AmsError::Config(format!("reading {}: {e}", p.display())));
                let mut pem = read(cert)?;
                pem.push(b'\n');
                pem.extend(read(key)?);
                let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    AmsError::Config(format!("client identity from {} and {}: {e}", cert.display(), key.display()))
                })?;
                Some(builder().identity(id).build().map_err(|e| build_err("authn", e))?)
            }
        };
        Ok(AmsClient { cfg, http, authn, token: tokio::sync::Mutex::new(None), exchanges: AtomicU64::new(0) })
    }

    pub fn config(&self) -> &AmsConfig {
        &self.cfg
    }

    /// How many X.509 token exchanges this client made.
    pub fn token_exchanges(&self) -> u64 {
        self.exchanges.load(Ordering::Relaxed)
    }

    /// The current token: the static one, or the cached one, or a fresh exchange (whose
    /// failures are [`AmsError::TokenExchange`]).
    pub async fn token(&self) -> Result<String, AmsError> {
        self.token_inner().await.map_err(|e| AmsError::TokenExchange(Box::new(e)))
    }

    async fn token_inner(&self) -> Result<String, AmsError> {
        let Auth::X509 { authn_base, host, .. } = &self.cfg.auth else {
            let Auth::Token(t) = &self.cfg.auth else { unreachable!() };
            return Ok(t.clone());
        };
        let mut guard = self.token.lock().await;
        if let Some(t) = guard.as_ref() {
            return Ok(t.clone());
        }
        let url = join(authn_base, &format!("v1/service-types/ams/hosts/{host}:authx509"))?;
        let what = format!("X.509 token exchange at {url}");
        let client = self.authn.as_ref().expect("authn client exists for X509 auth");
        self.exchanges.fetch_add(1, Ordering::Relaxed);
        let resp = client.get(url.clone()).send().await.map_err(|e| net(&what, e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| net(&what, e))?;
        if !(200..300).contains(&status) {
            return Err(http_error(&what, status, &body));
        }
        let token = serde_json::from_slice::<TokenResponse>(&body)
            .ok()
            .and_then(|t| t.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AmsError::Protocol {
                what: what.clone(),
                detail: format!("no token in {}", snippet(&body)),
            })?;
        tracing::info!(%url, "AMS token obtained with the host certificate");
        *guard = Some(token.clone());
        Ok(token)
    }

    /// Forgets `stale` (unless another task already replaced it).
    async fn invalidate(&self, stale: &str) {
        let mut guard = self.token.lock().await;
        if guard.as_deref() == Some(stale) {
            *guard = None;
        }
    }

    /// POST `body` to `path` (under the base URL) with the token; on 401 with X.509 auth, gets
    /// a new token and tries once more.
    async fn post(&self, what: &str, path: &str, body: String) -> Result<bytes::Bytes, AmsError> {
        let url = join(&self.cfg.base_url, path)?;
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            let resp = self
                .http
                .post(url.clone())
                .header("x-api-key", &token)
                .body(body.clone())
                .send()
                .await
                .map_err(|e| net(what, e))?;
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.map_err(|e| net(what, e))?;
            if (200..300).contains(&status) {
                return Ok(bytes);
            }
            if status == 401 && !refreshed && matches!(self.cfg.auth, Auth::X509 { .. }) {
                tracing::info!(what, "AMS answered 401: getting a new token");
                refreshed = true;
                self.invalidate(&token).await;
                continue;
            }
            return Err(http_error(what, status, &bytes));
        }
    }

    /// Publishes one request holding all `messages`; returns their AMS ids in order.
    pub async fn publish_batch(&self, topic: &str, messages: &[OutgoingMessage]) -> Result<Vec<String>, AmsError> {
        let encoded: Vec<String> = messages.iter().map(OutgoingMessage::to_json).collect();
        self.publish_encoded(topic, &encoded).await
    }

    async fn publish_encoded(&self, topic: &str, encoded: &[String]) -> Result<Vec<String>, AmsError> {
        check_name("topic", topic)?;
        let what = format!("publishing {} message(s) to topic {topic}", encoded.len());
        let path = format!("v1/projects/{}/topics/{topic}:publish", self.cfg.project);
        let body = self.post(&what, &path, publish_body(encoded)).await?;
        let ids = serde_json::from_slice::<PublishResponse>(&body)
            .map_err(|e| AmsError::Protocol { what: what.clone(), detail: format!("{e}: {}", snippet(&body)) })?
            .message_ids;
        if ids.len() != encoded.len() {
            return Err(AmsError::Protocol {
                what,
                detail: format!("{} messageIds for {} messages", ids.len(), encoded.len()),
            });
        }
        Ok(ids)
    }

    /// Publishes `messages`, several per request within `max_request_bytes`, with at most
    /// `concurrency` requests in flight. One result per message, in order: its AMS id, or the
    /// error of the request that carried it (messages alone over the limit are not sent).
    pub async fn publish(&self, topic: &str, messages: &[OutgoingMessage]) -> Vec<Result<String, AmsError>> {
        let mut results: Vec<Option<Result<String, AmsError>>> = vec![None; messages.len()];
        for request in self.publish_requests(topic, messages).await {
            match request {
                PublishRequest::TooLarge { index, encoded_size } => {
                    let what = format!("publishing message {index} to topic {topic}");
                    let (size, limit) = (body_size(&[encoded_size]), self.cfg.max_request_bytes);
                    results[index] = Some(Err(AmsError::TooLargeLocal { what, size, limit }));
                }
                PublishRequest::Sent { messages: r, result: Ok(ids) } => {
                    r.zip(ids).for_each(|(i, id)| results[i] = Some(Ok(id)))
                }
                PublishRequest::Sent { messages: r, result: Err(e) } => {
                    r.for_each(|i| results[i] = Some(Err(e.clone())))
                }
            }
        }
        results.into_iter().map(|r| r.expect("every message has a result")).collect()
    }

    /// The one publish planner: groups `messages` into requests within `max_request_bytes`
    /// ([`plan_batches`]) and publishes them, `concurrency` requests in flight. Returns the
    /// messages alone over the limit (not sent) first, then each request's outcome in the order
    /// the requests completed. [`AmsClient::publish`] and the sender both publish through it.
    pub async fn publish_requests(&self, topic: &str, messages: &[OutgoingMessage]) -> Vec<PublishRequest> {
        let encoded: Vec<String> = messages.iter().map(OutgoingMessage::to_json).collect();
        let sizes: Vec<usize> = encoded.iter().map(String::len).collect();
        let mut out = Vec::new();
        let mut ranges = Vec::new();
        for plan in plan_batches(&sizes, self.cfg.max_request_bytes) {
            match plan {
                Ok(r) => ranges.push(r),
                Err(index) => out.push(PublishRequest::TooLarge { index, encoded_size: sizes[index] }),
            }
        }
        let mut done = futures::stream::iter(ranges)
            .map(|r| {
                let encoded = &encoded[r.clone()];
                async move { PublishRequest::Sent { result: self.publish_encoded(topic, encoded).await, messages: r } }
            })
            .buffer_unordered(self.cfg.concurrency);
        while let Some(request) = done.next().await {
            out.push(request);
        }
        out
    }

    /// `POST …/subscriptions/{sub}:pull` with `{"maxMessages": "<n>", "returnImmediately": "<bool>"}`.
    pub async fn pull(
        &self,
        subscription: &str,
        max_messages: u32,
        return_immediately: bool,
    ) -> Result<Vec<ReceivedMessage>, AmsError> {
        check_name("subscription", subscription)?;
        let what = format!("pulling from subscription {subscription}");
        let path = format!("v1/projects/{}/subscriptions/{subscription}:pull", self.cfg.project);
        let (max, ri) = (max_messages.to_string(), return_immediately.to_string());
        let body = pyjson::str_object([("maxMessages", max.as_str()), ("returnImmediately", ri.as_str())]);
        let bytes = self.post(&what, &path, body).await?;
        // AMS answers `{"receivedMessages": []}` when there is nothing: an empty
        // body is a broken answer (retried), never "the subscription is drained".
        let resp: PullResponse = serde_json::from_slice(&bytes)
            .map_err(|e| AmsError::Protocol { what, detail: format!("{e}: {}", snippet(&bytes)) })?;
        Ok(resp
            .received
            .into_iter()
            .map(|r| ReceivedMessage {
                ack_id: r.ack_id,
                message_id: r.message.message_id,
                attributes: r.message.attributes,
                data: base64::engine::general_purpose::STANDARD.decode(r.message.data.trim()).map_err(NotBase64),
                publish_time: r.message.publish_time,
            })
            .collect())
    }

    /// `POST …/subscriptions/{sub}:acknowledge` with `{"ackIds": [...]}`.
    pub async fn acknowledge(&self, subscription: &str, ack_ids: &[String]) -> Result<(), AmsError> {
        check_name("subscription", subscription)?;
        let what = format!("acknowledging {} message(s) on subscription {subscription}", ack_ids.len());
        let path = format!("v1/projects/{}/subscriptions/{subscription}:acknowledge", self.cfg.project);
        let ids: Vec<String> = ack_ids.iter().map(|a| pyjson::string(a)).collect();
        self.post(&what, &path, format!("{{\"ackIds\": {}}}", pyjson::list(&ids))).await.map(|_| ())
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '~'))
}

fn check_name(kind: &str, s: &str) -> Result<(), AmsError> {
    if valid_name(s) { Ok(()) } else { Err(AmsError::Config(format!("invalid AMS {kind} name {s:?}"))) }
}

/// `base` + `path`, keeping any path prefix of the base (`https://h/prefix` + `v1/...`).
fn join(base: &Url, path: &str) -> Result<Url, AmsError> {
    let s = format!("{}/{}", base.as_str().trim_end_matches('/'), path);
    Url::parse(&s).map_err(|e| AmsError::Config(format!("invalid URL {s:?}: {e}")))
}

fn net(what: &str, e: reqwest::Error) -> AmsError {
    AmsError::Network { what: what.to_owned(), kind: NetKind::of(&e), source: Arc::new(e) }
}

fn snippet(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s = s.trim();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn http_error(what: &str, status: u16, body: &[u8]) -> AmsError {
    let (message, ams_status) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error: ErrorDetail { message: Some(m), status } }) => (m, status),
        Ok(ErrorBody { error: ErrorDetail { message: None, status } }) => (snippet(body), status),
        Err(_) if body.iter().all(u8::is_ascii_whitespace) => {
            let reason =
                reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("no body");
            (reason.to_owned(), None)
        }
        Err(_) => (snippet(body), None),
    };
    AmsError::Http { what: what.to_owned(), status, message, ams_status }
}
