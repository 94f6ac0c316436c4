//! `Session`: authentication (Keystone v3 password, application credential,
//! token; project/domain/system/unscoped), the token and its catalog,
//! re-authentication, `rescope`, endpoint lookup, microversion negotiation,
//! and the one `send` path (retries, backoff, timeouts, counters, errors). What a call is lives
//! in `call`, the token and its wire form in `token`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::catalog::{self, Service};
use crate::config::{CloudConfig, Credentials, Scope};
use crate::error::{ConfigError, Error, RequestInfo, Result, extract_message};
use crate::microversion::{self, Microversion, VersionRange};
use crate::secret::Secret;

mod call;
mod raw;
mod token;
pub use call::{Call, CallStats, Response, RetryPolicy, RouteKey};
pub use raw::RawBody;
use token::TokenBody;
pub use token::{NamedRef, Token, TokenProject, TokenUser, auth_body};

struct Shared {
    http: reqwest::Client,
    config: CloudConfig,
    retry: RetryPolicy,
    reauth_margin: chrono::Duration,
    counters: Mutex<BTreeMap<RouteKey, CallStats>>,
    versions: tokio::sync::Mutex<HashMap<Service, Option<VersionRange>>>,
    identity_url: tokio::sync::Mutex<Option<String>>,
}

/// An authenticated session. Cheap to clone; clones share the token, the
/// HTTP client and the counters. See the crate docs.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
    scope: Scope,
    token: Arc<tokio::sync::Mutex<Option<Arc<Token>>>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("auth_url", &redact(&self.shared.config.auth_url))
            .field("scope", &self.scope)
            .finish()
    }
}

/// Options of a [`Session`] before it authenticates.
pub struct SessionBuilder {
    config: CloudConfig,
    scope: Option<Scope>,
    retry: RetryPolicy,
    reauth_margin: Duration,
    user_agent: String,
}

impl SessionBuilder {
    /// Scope other than the configured one.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = Some(scope);
        self
    }
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    /// Re-authenticate when the token expires within this (default 60 s).
    pub fn reauth_margin(mut self, margin: Duration) -> Self {
        self.reauth_margin = margin;
        self
    }
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }
    /// Builds the HTTP client and authenticates.
    pub async fn connect(self) -> Result<Session> {
        let mut b = reqwest::Client::builder().user_agent(self.user_agent).connect_timeout(Duration::from_secs(10));
        if let Some(ca) = &self.config.cacert {
            let label = format!("{} (cacert {})", self.config.source, ca.display());
            let pem = std::fs::read(ca).map_err(|e| ConfigError::new(&label, e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ConfigError::new(&label, e.to_string()))?;
            b = b.tls_certs_only(certs);
        }
        if self.config.insecure {
            tracing::warn!(
                cloud = %self.config.source,
                auth_url = %redact(&self.config.auth_url),
                "OpenStack client: TLS certificate verification is DISABLED (insecure / verify: false)"
            );
            b = b.danger_accept_invalid_certs(true);
        }
        let http =
            b.build().map_err(|e| ConfigError::new(&self.config.source, format!("building the HTTP client: {e}")))?;
        let scope = self.scope.unwrap_or_else(|| self.config.scope.clone());
        let session = Session {
            shared: Arc::new(Shared {
                http,
                config: self.config,
                retry: self.retry,
                reauth_margin: chrono::Duration::from_std(self.reauth_margin).unwrap_or(chrono::Duration::seconds(60)),
                counters: Mutex::new(BTreeMap::new()),
                versions: tokio::sync::Mutex::new(HashMap::new()),
                identity_url: tokio::sync::Mutex::new(None),
            }),
            scope,
            token: Arc::new(tokio::sync::Mutex::new(None)),
        };
        session.token().await?;
        Ok(session)
    }
}

impl Session {
    pub fn builder(config: CloudConfig) -> SessionBuilder {
        SessionBuilder {
            config,
            scope: None,
            retry: RetryPolicy::default(),
            reauth_margin: Duration::from_secs(60),
            user_agent: concat!("fedsite-openstack/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }

    /// Authenticates with the defaults.
    pub async fn connect(config: &CloudConfig) -> Result<Session> {
        Session::builder(config.clone()).connect().await
    }

    /// A new session with the same credentials scoped to `scope`, sharing
    /// the HTTP client, counters and version cache. Authenticates now.
    pub async fn rescope(&self, scope: Scope) -> Result<Session> {
        let s = Session { shared: self.shared.clone(), scope, token: Arc::new(tokio::sync::Mutex::new(None)) };
        s.token().await?;
        Ok(s)
    }

    pub fn config(&self) -> &CloudConfig {
        &self.shared.config
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// A valid token, re-authenticating when it nears expiry.
    pub async fn token(&self) -> Result<Arc<Token>> {
        let mut guard = self.token.lock().await;
        if let Some(t) = guard.as_ref()
            && t.expires_at - Utc::now() > self.shared.reauth_margin
        {
            return Ok(t.clone());
        }
        let fresh = Arc::new(self.authenticate().await?);
        *guard = Some(fresh.clone());
        Ok(fresh)
    }

    /// Drops `stale` (if still current) and authenticates again.
    async fn reauthenticate(&self, stale: &Arc<Token>) -> Result<Arc<Token>> {
        let mut guard = self.token.lock().await;
        if let Some(t) = guard.as_ref()
            && !Arc::ptr_eq(t, stale)
        {
            return Ok(t.clone());
        }
        let fresh = Arc::new(self.authenticate().await?);
        *guard = Some(fresh.clone());
        Ok(fresh)
    }

    /// The project id of the current token, if project-scoped.
    pub async fn project_id(&self) -> Result<Option<String>> {
        Ok(self.token().await?.project.as_ref().map(|p| p.id.clone()))
    }

    /// Request counters by route.
    pub fn counters(&self) -> BTreeMap<RouteKey, CallStats> {
        self.shared.counters.lock().unwrap().clone()
    }

    pub fn reset_counters(&self) {
        self.shared.counters.lock().unwrap().clear()
    }

    /// The API base URL of `service` (catalog, configured interface and
    /// region, version suffix, project templates filled).
    pub async fn endpoint(&self, service: Service) -> Result<String> {
        let token = self.token().await?;
        self.base_for(service, &token).await
    }

    /// The microversion negotiated for `service` (None: not used).
    pub async fn microversion(&self, service: Service) -> Result<Option<Microversion>> {
        let token = self.token().await?;
        let base = self.base_for(service, &token).await?;
        Ok(self.negotiated(service, &base, &token).await)
    }

    async fn base_for(&self, service: Service, token: &Token) -> Result<String> {
        let cfg = &self.shared.config;
        let pid = token.project.as_ref().map(|p| p.id.as_str());
        match token.catalog.url(service, cfg.interface, cfg.region_name.as_deref()) {
            Ok(url) => Ok(catalog::api_base(service, &url, pid)),
            Err(_) if service == Service::Identity => Ok(self.identity_url().await),
            Err(e) => Err(e),
        }
    }

    /// The Keystone v3 URL: `auth_url` if it ends with `/v3`, else the v3
    /// link of its version document, else `auth_url` + `/v3`.
    async fn identity_url(&self) -> String {
        let mut guard = self.shared.identity_url.lock().await;
        if let Some(u) = guard.as_ref() {
            return u.clone();
        }
        let auth_url = self.shared.config.auth_url.trim_end_matches('/').to_string();
        let resolved = if auth_url.ends_with("/v3") {
            auth_url
        } else {
            let key = RouteKey { service: "identity".into(), method: "GET".into(), route: "/".into() };
            let found = match self.shared.execute(&key, Method::GET, &auth_url, &[], &[], None, None, true).await {
                Ok(resp) => serde_json::from_slice::<Value>(&resp.body).ok().and_then(|doc| v3_link(&doc)),
                Err(_) => None,
            };
            found.unwrap_or_else(|| format!("{auth_url}/v3"))
        };
        *guard = Some(resolved.clone());
        resolved
    }

    async fn authenticate(&self) -> Result<Token> {
        let creds = &self.shared.config.credentials;
        if matches!(creds, Credentials::OidcAccessToken { .. } | Credentials::OidcClientCredentials { .. }) {
            let identity = self.identity_url().await;
            let unscoped =
                crate::oidc::federated_token(&self.shared.http, self.shared.retry.timeout, creds, &identity).await?;
            // The unscoped federated token, exchanged for one in the configured scope.
            return self.token_request(&Credentials::Token { token: unscoped }).await;
        }
        self.token_request(creds).await
    }

    async fn token_request(&self, creds: &Credentials) -> Result<Token> {
        let url = format!("{}/auth/tokens", self.identity_url().await);
        let body = auth_body(creds, &self.scope);
        let key = RouteKey { service: "identity".into(), method: "POST".into(), route: "/auth/tokens".into() };
        let resp = self.shared.execute(&key, Method::POST, &url, &[], &[], Some(&body), None, true).await?;
        let auth_err = |m: &str| Error::Auth { url: url.clone(), message: m.to_string() };
        let id = resp
            .header("x-subject-token")
            .ok_or_else(|| auth_err("no X-Subject-Token header in the response"))?
            .to_string();
        let t: TokenBody = resp.json()?;
        let t = t.token;
        Ok(Token {
            id: Secret::new(id),
            expires_at: t.expires_at,
            issued_at: t.issued_at,
            methods: t.methods,
            user: t.user,
            project: t.project,
            domain: t.domain,
            system: t.system.is_some_and(|s| s.get("all").and_then(Value::as_bool).unwrap_or(false)),
            roles: t.roles,
            catalog: t.catalog,
        })
    }

    async fn negotiated(&self, service: Service, base: &str, token: &Token) -> Option<Microversion> {
        let want = microversion::client_max(service)?;
        let mut cache = self.shared.versions.lock().await;
        let range = match cache.get(&service) {
            Some(r) => *r,
            None => {
                let pid = token.project.as_ref().map(|p| p.id.as_str());
                let url = catalog::version_doc_url(base, pid);
                let key = RouteKey { service: service.as_str().into(), method: "GET".into(), route: "/".into() };
                let auth = [("X-Auth-Token", token.id.expose().to_string())];
                match self.shared.execute(&key, Method::GET, &url, &[], &auth, None, None, true).await {
                    Ok(resp) => {
                        let r = serde_json::from_slice::<Value>(&resp.body)
                            .ok()
                            .and_then(|d| microversion::parse_version_doc(&d, want.major));
                        cache.insert(service, r);
                        r
                    }
                    // A definite answer (e.g. 404 on an old cloud): no microversions.
                    Err(Error::Api { status, .. }) if status < 500 && status != 429 => {
                        cache.insert(service, None);
                        None
                    }
                    Err(_) => None,
                }
            }
        };
        microversion::negotiate(want, range)
    }

    /// Sends `call`: token, endpoint, microversion, retries, one re-auth on 401.
    pub async fn send(&self, call: Call) -> Result<Response> {
        let token = self.token().await?;
        let base = self.base_for(call.service, &token).await?;
        let mv = if call.versioned { self.negotiated(call.service, &base, &token).await } else { None };
        let url = if call.path.starts_with("http://") || call.path.starts_with("https://") {
            call.path.clone()
        } else {
            format!("{}{}", base.trim_end_matches('/'), call.path)
        };
        let key = RouteKey {
            service: call.service.as_str().into(),
            method: call.method.as_str().into(),
            route: call.route.into(),
        };
        let idempotent =
            matches!(call.method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS);
        let mut headers: Vec<(&'static str, String)> =
            mv.map(|v| microversion::headers(call.service, v)).unwrap_or_default();
        headers.push(("X-Auth-Token", token.id.expose().to_string()));
        let first = self
            .shared
            .execute(&key, call.method.clone(), &url, &call.query, &headers, call.body.as_ref(), mv, idempotent)
            .await;
        match first {
            Err(e) if e.is_unauthorized() => {
                let fresh = self.reauthenticate(&token).await?;
                headers.retain(|(k, _)| *k != "X-Auth-Token");
                headers.push(("X-Auth-Token", fresh.id.expose().to_string()));
                self.shared
                    .execute(&key, call.method, &url, &call.query, &headers, call.body.as_ref(), mv, idempotent)
                    .await
            }
            other => other,
        }
    }

    /// [`Session::send`] and decode the JSON body.
    pub async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        self.send(call).await?.json()
    }
}

fn v3_link(doc: &Value) -> Option<String> {
    let values = doc
        .pointer("/versions/values")
        .and_then(Value::as_array)
        .or_else(|| doc.get("versions").and_then(Value::as_array));
    let entries: Vec<&Value> = match (values, doc.get("version")) {
        (Some(v), _) => v.iter().collect(),
        (None, Some(v)) => vec![v],
        _ => return None,
    };
    entries.into_iter().find_map(|e| {
        let id = e.get("id")?.as_str()?;
        if !id.starts_with("v3") {
            return None;
        }
        e.get("links")?
            .as_array()?
            .iter()
            .find(|l| l.get("rel").and_then(Value::as_str) == Some("self"))
            .and_then(|l| l.get("href")?.as_str())
            .map(|h| h.trim_end_matches('/').to_string())
    })
}

enum Attempt {
    Done(u16, HeaderMap, Vec<u8>),
    Failed(reqwest::Error),
}

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
}

impl Shared {
    /// The one place requests go out: retries, backoff, timeout, counters,
    /// error mapping.
    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &self,
        key: &RouteKey,
        method: Method,
        url: &str,
        query: &[(String, String)],
        headers: &[(&'static str, String)],
        body: Option<&Value>,
        mv: Option<Microversion>,
        idempotent: bool,
    ) -> Result<Response> {
        let request = RequestInfo { service: key.service.clone(), method: method.to_string(), url: redact(url) };
        let max = self.retry.max_attempts.max(1);
        let mut attempt = 0;
        let started = std::time::Instant::now();
        let outcome = loop {
            attempt += 1;
            let mut rb =
                self.http.request(method.clone(), url).timeout(self.retry.timeout).header("Accept", "application/json");
            if !query.is_empty() {
                rb = rb.query(query);
            }
            for (k, v) in headers {
                rb = rb.header(*k, v);
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let result = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let h = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(b) => Attempt::Done(status, h, b.to_vec()),
                        Err(e) => Attempt::Failed(e),
                    }
                }
                Err(e) => Attempt::Failed(e),
            };
            tracing::debug!(target: "openstack", %key, url, attempt, ok = matches!(result, Attempt::Done(..)), "request");
            let delay = match &result {
                Attempt::Done(s, h, _) if idempotent && (*s == 429 || matches!(s, 500 | 502 | 503 | 504)) => Some(
                    retry_after(h)
                        .map(|d| d.min(self.retry.max_retry_after))
                        .unwrap_or_else(|| self.retry.backoff(attempt)),
                ),
                Attempt::Failed(e)
                    if idempotent && (e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()) =>
                {
                    Some(self.retry.backoff(attempt))
                }
                // Every API answer this client reads is JSON: a success whose body is not
                // (cut short, garbled, an HTML page from a proxy) is retried like a 503.
                Attempt::Done(s, _, b)
                    if idempotent && method != Method::HEAD && (200..300).contains(s) && *s != 204 && !is_json(b) =>
                {
                    tracing::warn!(target: "openstack", %key, url, attempt, status = *s, bytes = b.len(), "the answer is not valid JSON; retrying");
                    Some(self.retry.backoff(attempt))
                }
                _ => None,
            };
            match delay {
                Some(d) if attempt < max => tokio::time::sleep(d).await,
                _ => break result,
            }
        };
        let result = match outcome {
            Attempt::Done(status, headers, body) if status < 400 => {
                Ok(Response { status, headers, body, microversion: mv, request: request.clone() })
            }
            Attempt::Done(status, headers, body) => Err(Error::Api {
                request: request.clone(),
                status,
                message: extract_message(&body),
                request_id: ["x-openstack-request-id", "x-compute-request-id"]
                    .iter()
                    .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()).map(str::to_string)),
            }),
            Attempt::Failed(e) => Err(Error::Transport {
                request: request.clone(),
                message: error_chain(&e),
                attempts: attempt,
                timeout: e.is_timeout(),
            }),
        };
        let mut counters = self.counters.lock().unwrap();
        let c = counters.entry(key.clone()).or_default();
        c.calls += 1;
        c.attempts += attempt as u64;
        c.retries += attempt as u64 - 1;
        c.failures += result.is_err() as u64;
        c.latency_micros = c.latency_micros.saturating_add(started.elapsed().as_micros().min(u64::MAX as u128) as u64);
        result
    }
}

/// Whether `body` is one complete JSON document.
fn is_json(body: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

/// An error and its sources, `: `-joined (reqwest's own message is terse).
fn error_chain(e: &reqwest::Error) -> String {
    let mut out = String::from(if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    });
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let m = s.to_string();
        if !out.ends_with(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        src = s.source();
    }
    out
}

/// `url` without any `user:password@` part.
pub(crate) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}
