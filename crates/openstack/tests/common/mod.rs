//! Test helpers: a tiny axum server that records every request and answers
//! through a closure, a Keystone token responder with a realistic catalog,
//! and ready-made configs.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use chrono::Utc;
use openstack::{CloudConfig, Credentials, Interface, RetryPolicy, Scope, Secret, Session, UserRef};
use serde_json::{Value, json};

pub const PID: &str = "0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b";

#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub base: String,
}

impl Req {
    pub fn header(&self, k: &str) -> Option<String> {
        self.headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
    pub fn param(&self, k: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes()).find(|(a, _)| a == k).map(|(_, v)| v.into_owned())
    }
    pub fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, v: Value) -> Reply {
        Reply { status, headers: vec![("content-type".into(), "application/json".into())], body: v.to_string() }
    }
    pub fn text(status: u16, t: &str) -> Reply {
        Reply { status, headers: vec![("content-type".into(), "text/html".into())], body: t.into() }
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
}

pub struct Mock {
    pub base: String,
    pub log: Arc<Mutex<Vec<Req>>>,
}

impl Mock {
    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests().iter().filter(|r| r.is(method, path)).count()
    }
    pub fn auth_url(&self) -> String {
        format!("{}/identity/v3", self.base)
    }
}

/// Starts a server answering every request with `f`.
pub async fn mock(f: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Mock {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log: Arc<Mutex<Vec<Req>>> = Arc::default();
    let f = Arc::new(f);
    let (l2, b2) = (log.clone(), base.clone());
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let (log, f, base) = (l2.clone(), f.clone(), b2.clone());
        async move {
            let req = Req {
                method: method.to_string(),
                path: uri.path().to_string(),
                query: uri.query().unwrap_or("").to_string(),
                headers,
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                base,
            };
            log.lock().unwrap().push(req.clone());
            let r = f(&req);
            let mut h = HeaderMap::new();
            for (k, v) in &r.headers {
                h.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
            }
            (StatusCode::from_u16(r.status).unwrap(), h, r.body).into_response()
        }
    });
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Mock { base, log }
}

/// The catalog of every token: devstack-style prefixes, two regions, and
/// internal endpoints on a different host for interface tests.
pub fn catalog(base: &str, pid: &str) -> Value {
    let ep = |iface: &str, region: &str, url: String| json!({"id": format!("{iface}-{region}"), "interface": iface, "region": region, "region_id": region, "url": url});
    json!([
        {"type": "identity", "name": "keystone", "endpoints": [ep("public", "RegionOne", format!("{base}/identity"))]},
        {"type": "compute", "name": "nova", "endpoints": [
            ep("public", "RegionOne", format!("{base}/compute/v2.1")),
            ep("internal", "RegionOne", "http://internal.example:8774/v2.1".into()),
            ep("public", "RegionTwo", format!("{base}/r2/compute/v2.1/$(project_id)s")),
        ]},
        {"type": "volumev3", "name": "cinderv3", "endpoints": [ep("public", "RegionOne", format!("{base}/volume/v3/{pid}"))]},
        {"type": "network", "name": "neutron", "endpoints": [ep("public", "RegionOne", format!("{base}/network"))]},
        {"type": "image", "name": "glance", "endpoints": [ep("public", "RegionOne", format!("{base}/image"))]},
    ])
}

/// A Keystone token answer for the scope requested in `req`'s body.
pub fn token_reply(req: &Req, token: &str, expires_in_secs: i64) -> Reply {
    let scope = &req.body["auth"]["scope"];
    let mut t = json!({
        "methods": req.body["auth"]["identity"]["methods"],
        "expires_at": (Utc::now() + chrono::Duration::seconds(expires_in_secs)).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        "issued_at": Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        "user": {"id": "u-admin", "name": "admin", "domain": {"id": "default", "name": "Default"}},
        "roles": [{"id": "r1", "name": "reader"}],
    });
    let pid = scope["project"]["id"].as_str().unwrap_or(PID).to_string();
    if scope.get("project").is_some() || req.body["auth"]["identity"]["methods"][0] == "application_credential" {
        t["project"] = json!({"id": pid, "name": "demo", "domain": {"id": "default", "name": "Default"}});
        t["catalog"] = catalog(&req.base, &pid);
    } else if scope.get("system").is_some() {
        t["system"] = json!({"all": true});
        t["catalog"] = catalog(&req.base, &pid);
    } else if scope.get("domain").is_some() {
        t["domain"] = json!({"id": "default", "name": "Default"});
        t["catalog"] = catalog(&req.base, &pid);
    }
    Reply::json(201, json!({"token": t})).header("X-Subject-Token", token)
}

/// Answers token requests (`tok-<n>`, 1 h), None for anything else.
pub fn keystone(req: &Req) -> Option<Reply> {
    if req.is("POST", "/identity/v3/auth/tokens") {
        return Some(token_reply(req, "tok-1", 3600));
    }
    None
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        timeout: Duration::from_secs(5),
        max_retry_after: Duration::from_secs(2),
    }
}

pub fn config(auth_url: &str, scope: Scope) -> CloudConfig {
    CloudConfig {
        name: Some("test".into()),
        source: "test".into(),
        auth_url: auth_url.into(),
        credentials: Credentials::Password {
            user: UserRef::Name { name: "admin".into(), domain: openstack::DomainRef::Name("Default".into()) },
            password: Secret::new("s3cret-pw"),
        },
        scope,
        region_name: None,
        interface: Interface::Public,
        cacert: None,
        insecure: false,
    }
}

pub async fn session(m: &Mock) -> Session {
    Session::builder(config(&m.auth_url(), Scope::project_id(PID))).retry(fast_retry()).connect().await.unwrap()
}

/// Nova/Cinder version documents: compute max 2.90, volume max 3.70.
pub fn version_docs(req: &Req) -> Option<Reply> {
    if req.is("GET", "/compute/v2.1/") {
        return Some(Reply::json(
            200,
            json!({"version": {"id": "v2.1", "status": "CURRENT", "version": "2.90", "min_version": "2.1"}}),
        ));
    }
    if req.is("GET", "/volume/v3/") {
        return Some(Reply::json(
            200,
            json!({"versions": [{"id": "v3.0", "status": "CURRENT", "version": "3.70", "min_version": "3.0"}]}),
        ));
    }
    None
}
