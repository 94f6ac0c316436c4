//! The simulated Harbor around the registry content of [`crate::oci`], as
//! registry.egi.eu serves it: users and robot accounts, public and private
//! projects, the token service (`GET /service/token`), the v2 authorization
//! rules (Bearer challenge without credentials, Basic accepted, `_catalog`
//! for system admins only) and the REST API v2.0 listings
//! (`/api/v2.0/projects`, repositories, artifacts) with Harbor's paging.
//! The facts followed are Harbor's (goharbor/harbor `src/server/middleware/v2auth`, `src/core/service/token`, the v2.0 REST API swagger); docs/sim.md
//! lists them and what is left out. [`RegistryMode::Lenient`] turns all of it
//! off (a plain registry with anonymous pull, no REST API).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use rand::Rng;
use serde_json::{Value, json};

use crate::oci::{MANIFEST_MEDIA_TYPE, Registry, oci_error};
use crate::state::AppState;

/// The seeded system administrator (Harbor's default admin password).
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "Harbor12345";
/// The seeded system-level robot account: pull on every project, no catalog.
pub const ROBOT_USER: &str = "robot$fedsite";
pub const ROBOT_PASSWORD: &str = "robot-secret";
/// The `service` of the token service's challenge.
pub const TOKEN_SERVICE: &str = "harbor-registry";

/// How the simulated registry guards its content.
#[derive(Debug, Clone)]
pub enum RegistryMode {
    /// Harbor as registry.egi.eu (the default).
    Harbor(HarborConfig),
    /// A plain OCI registry: anonymous pull of everything, `_catalog` open,
    /// no token service and no REST API.
    Lenient,
}

impl Default for RegistryMode {
    fn default() -> Self {
        RegistryMode::Harbor(HarborConfig::default())
    }
}

/// Users, project visibility and token lifetime of the simulated Harbor.
#[derive(Debug, Clone)]
pub struct HarborConfig {
    /// Projects anyone may pull from and list; the others are private.
    pub public_projects: BTreeSet<String>,
    pub users: Vec<HarborUser>,
    /// `expires_in` of the tokens (Harbor: `token_expiration` minutes × 60).
    pub token_expiry: Duration,
    /// For tests: a token is refused after this many registry requests
    /// (expiry without waiting); None = by time only.
    pub token_max_uses: Option<u32>,
}

impl Default for HarborConfig {
    fn default() -> Self {
        HarborConfig {
            public_projects: [crate::oci::SHARED_PROJECT.to_string()].into(),
            users: vec![
                HarborUser { name: ADMIN_USER.into(), password: ADMIN_PASSWORD.into(), admin: true, projects: None },
                HarborUser { name: ROBOT_USER.into(), password: ROBOT_PASSWORD.into(), admin: false, projects: None },
            ],
            token_expiry: Duration::from_secs(1800),
            token_max_uses: None,
        }
    }
}

/// A local user or robot account (HTTP Basic on `/v2/*`, the token service
/// and the REST API).
#[derive(Debug, Clone)]
pub struct HarborUser {
    pub name: String,
    pub password: String,
    /// System administrator: every project, and `_catalog`.
    pub admin: bool,
    /// Projects it may pull from and list besides the public ones; None = all.
    pub projects: Option<BTreeSet<String>>,
}

impl HarborUser {
    fn may_read(&self, project: &str) -> bool {
        self.admin || self.projects.as_ref().is_none_or(|p| p.contains(project))
    }
}

/// A token the token service issued.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// Repositories it may pull.
    pub pull: BTreeSet<String>,
    pub expires: Instant,
    pub uses_left: Option<u32>,
}

/// Tokens issued so far (by token string).
pub type TokenStore = HashMap<String, IssuedToken>;

/// Who is asking.
enum Caller {
    Anonymous,
    User(HarborUser),
    Token(IssuedToken),
    /// Credentials that are wrong, or a token that is unknown or expired.
    Refused,
}

fn config(state: &AppState) -> Option<&HarborConfig> {
    match &state.registry_mode {
        RegistryMode::Harbor(c) => Some(c),
        RegistryMode::Lenient => None,
    }
}

fn basic(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok();
    let pair = decoded.and_then(|d| String::from_utf8(d).ok()).and_then(|s| {
        let (u, p) = s.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    });
    Some(pair.ok_or(()))
}

fn user(cfg: &HarborConfig, name: &str, password: &str) -> Option<HarborUser> {
    cfg.users.iter().find(|u| u.name == name && u.password == password).cloned()
}

/// The caller of a request; a Bearer token use is counted.
fn caller(state: &AppState, cfg: &HarborConfig, headers: &HeaderMap, bearer_ok: bool) -> Caller {
    let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Caller::Anonymous;
    };
    if let Some(b) = basic(headers) {
        return match b.ok().and_then(|(u, p)| user(cfg, &u, &p)) {
            Some(u) => Caller::User(u),
            None => Caller::Refused,
        };
    }
    match v.strip_prefix("Bearer ") {
        Some(t) if bearer_ok => {
            let mut tokens = state.harbor_tokens.lock().unwrap_or_else(|e| e.into_inner());
            let Some(tok) = tokens.get_mut(t.trim()) else { return Caller::Refused };
            if tok.expires <= Instant::now() || tok.uses_left == Some(0) {
                return Caller::Refused;
            }
            if let Some(n) = tok.uses_left.as_mut() {
                *n -= 1;
            }
            Caller::Token(tok.clone())
        }
        _ => Caller::Refused,
    }
}

fn realm(state: &AppState, headers: &HeaderMap) -> String {
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => format!("http://{host}/service/token"),
        None => format!("{}/service/token", state.base_url),
    }
}

fn unauthorized(challenge: String, message: &str) -> Response {
    let mut r = oci_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message.to_string());
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

const BASIC_CHALLENGE: &str = "Basic realm=\"harbor\"";

/// The repository a `/v2/<rest>` path is about.
fn repository_of(rest: &str) -> Option<&str> {
    rest.strip_suffix("/tags/list")
        .or_else(|| rest.rsplit_once("/manifests/").map(|(r, _)| r))
        .or_else(|| rest.rsplit_once("/blobs/").map(|(r, _)| r))
}

/// Harbor's v2 authorization (goharbor/harbor `src/server/middleware/v2auth`): `None` lets the request
/// through, `Some` is the 401 to answer. `rest` is the path below `/v2/`.
pub(crate) fn v2_gate(state: &AppState, rest: &str, headers: &HeaderMap) -> Option<Response> {
    let cfg = config(state)?;
    let who = caller(state, cfg, headers, rest != "_catalog");
    if rest == "_catalog" {
        return match who {
            Caller::User(u) if u.admin => None,
            _ => Some(unauthorized(BASIC_CHALLENGE.into(), "unauthorized to list catalog")),
        };
    }
    let bearer = |scope: Option<String>| {
        let mut c = format!("Bearer realm=\"{}\",service=\"{TOKEN_SERVICE}\"", realm(state, headers));
        if let Some(s) = scope {
            c.push_str(&format!(",scope=\"{s}\""));
        }
        unauthorized(c, "unauthorized: authentication required")
    };
    let Some(repo) = repository_of(rest) else {
        // `GET /v2/` (and unknown paths): any valid caller.
        return match who {
            Caller::Anonymous => Some(bearer(None)),
            Caller::Refused => Some(unauthorized(BASIC_CHALLENGE.into(), "unauthorized")),
            _ => None,
        };
    };
    let project = repo.split('/').next().unwrap_or("");
    let allowed = match &who {
        Caller::Anonymous => return Some(bearer(Some(format!("repository:{repo}:pull")))),
        Caller::User(u) => u.may_read(project) || cfg.public_projects.contains(project),
        Caller::Token(t) => t.pull.contains(repo),
        Caller::Refused => false,
    };
    (!allowed).then(|| unauthorized(BASIC_CHALLENGE.into(), &format!("unauthorized to access repository: {repo}")))
}

/// The token service and the REST API (Harbor mode only: 404 otherwise).
pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new().route("/service/token", get(token)).route("/api/v2.0/{*rest}", get(rest_api))
}

fn harbor_error(status: StatusCode, code: &str, message: String) -> Response {
    (status, axum::Json(json!({"errors": [{"code": code, "message": message}]}))).into_response()
}

/// `GET /service/token?service=…&scope=…` (goharbor/harbor `src/core/service/token`).
async fn token(
    State(state): State<Arc<AppState>>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let Some(cfg) = config(&state) else {
        return harbor_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no token service".into());
    };
    let who = match basic(&headers) {
        None if headers.contains_key(header::AUTHORIZATION) => None,
        None => Some(None),
        Some(b) => b.ok().and_then(|(u, p)| user(cfg, &u, &p)).map(Some),
    };
    let Some(who) = who else {
        return harbor_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "invalid credentials".into());
    };
    let scopes: Vec<&str> =
        q.iter().filter(|(k, _)| k == "scope").flat_map(|(_, v)| v.split(' ')).filter(|s| !s.is_empty()).collect();
    if who.is_none() && scopes.is_empty() {
        return harbor_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "anonymous token request without scope".into());
    }
    let mut pull = BTreeSet::new();
    for scope in scopes {
        let mut parts = scope.splitn(2, ':');
        let (Some("repository"), Some(rest)) = (parts.next(), parts.next()) else { continue };
        let Some((repo, actions)) = rest.rsplit_once(':') else { continue };
        let project = repo.split('/').next().unwrap_or("");
        let readable = cfg.public_projects.contains(project) || who.as_ref().is_some_and(|u| u.may_read(project));
        if readable && actions.split(',').any(|a| a == "pull" || a == "*") {
            pull.insert(repo.to_string());
        }
    }
    let token: String = {
        let mut rng = rand::rng();
        (0..32).map(|_| format!("{:02x}", rng.random::<u8>())).collect()
    };
    let issued = IssuedToken { pull, expires: Instant::now() + cfg.token_expiry, uses_left: cfg.token_max_uses };
    state.harbor_tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(token.clone(), issued);
    axum::Json(json!({
        "token": token,
        "access_token": "",
        "expires_in": cfg.token_expiry.as_secs(),
        "issued_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }))
    .into_response()
}

/// One page of a REST list with `X-Total-Count` and `Link` (Harbor's v2.0 REST API: `X-Total-Count`, `Link`).
fn rest_page(items: Vec<Value>, q: &[(String, String)], path: &str) -> Response {
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let page = get("page").and_then(|v| v.parse::<usize>().ok()).filter(|p| *p > 0).unwrap_or(1);
    let size = match get("page_size").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            return harbor_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "UNPROCESSABLE_ENTITY",
                "page_size in query should be between 1 and 100".into(),
            );
        }
    };
    let total = items.len();
    let body: Vec<Value> = items.into_iter().skip((page - 1) * size).take(size).collect();
    let others: String = q
        .iter()
        .filter(|(k, _)| k != "page" && k != "page_size")
        .map(|(k, v)| format!("&{}={}", enc(k), enc(v)))
        .collect();
    let link = |p: usize, rel: &str| format!("<{path}?page={p}&page_size={size}{others}>; rel=\"{rel}\"");
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if size * page < total {
        links.push(link(page + 1, "next"));
    }
    let mut r = axum::Json(body).into_response();
    r.headers_mut().insert("x-total-count", HeaderValue::from(total));
    if !links.is_empty()
        && let Ok(v) = HeaderValue::from_str(&links.join(" , "))
    {
        r.headers_mut().insert(header::LINK, v);
    }
    r
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn time(seq: u64) -> String {
    let t = chrono::DateTime::parse_from_rfc3339("2023-05-01T00:00:00Z").map(|t| t.to_utc()).unwrap_or_default()
        + chrono::Duration::minutes(seq as i64);
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Projects (name → id), from the repositories' first path segment.
fn projects(reg: &Registry) -> BTreeMap<String, u64> {
    let names: BTreeSet<&str> = reg.repositories.keys().filter_map(|r| r.split_once('/').map(|(p, _)| p)).collect();
    names.into_iter().enumerate().map(|(i, n)| (n.to_string(), i as u64 + 1)).collect()
}

/// `GET /api/v2.0/…`: projects, repositories, artifacts (Basic or anonymous).
async fn rest_api(
    State(state): State<Arc<AppState>>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let Some(cfg) = config(&state) else {
        return harbor_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no REST API on a plain registry".into());
    };
    let who = match caller(&state, cfg, &headers, false) {
        Caller::Anonymous => None,
        Caller::User(u) => Some(u),
        _ => return harbor_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "invalid credentials".into()),
    };
    // Harbor routes on the once-decoded path: a `%2F` becomes a `/` there.
    let full = decode(uri.path());
    let rest = full.strip_prefix("/api/v2.0/").unwrap_or("");
    let seg: Vec<&str> = rest.split('/').collect();
    let site = state.site.read().unwrap();
    let reg = &site.registry;
    let projects = projects(reg);
    let readable = |p: &str| cfg.public_projects.contains(p) || who.as_ref().is_some_and(|u| u.may_read(p));
    let not_found = |what: String| harbor_error(StatusCode::NOT_FOUND, "NOT_FOUND", what);
    if seg.first() != Some(&"projects") {
        return not_found(format!("no such API: {}", uri.path()));
    }
    let Some(project) = seg.get(1).copied() else {
        let list = projects
            .iter()
            .filter(|(p, _)| readable(p))
            .map(|(p, id)| {
                json!({
                    "project_id": id, "name": p, "owner_id": 1, "owner_name": "admin",
                    "metadata": {"public": cfg.public_projects.contains(p).to_string()},
                    "repo_count": reg.repositories.keys().filter(|r| r.starts_with(&format!("{p}/"))).count(),
                    "creation_time": time(0), "update_time": time(0), "deleted": false,
                })
            })
            .collect();
        return rest_page(list, &q, "/api/v2.0/projects");
    };
    let Some(project_id) = projects.get(project).copied() else {
        return not_found(format!("project {project} not found"));
    };
    if !readable(project) {
        return match who {
            None => harbor_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "unauthorized".into()),
            Some(_) => harbor_error(StatusCode::FORBIDDEN, "FORBIDDEN", "forbidden".into()),
        };
    }
    let repos: Vec<(u64, &String)> = reg
        .repositories
        .keys()
        .enumerate()
        .map(|(i, r)| (i as u64 + 1, r))
        .filter(|(_, r)| r.starts_with(&format!("{project}/")))
        .collect();
    match seg.as_slice() {
        [_, _, "repositories"] => {
            let list = repos
                .iter()
                .map(|(id, r)| {
                    let arts: BTreeSet<&String> = reg.repositories[*r].values().collect();
                    let last = arts.iter().filter_map(|d| reg.pushed.get(&format!("{r}@{d}"))).max().copied();
                    json!({
                        "id": id, "project_id": project_id, "name": r, "description": "",
                        "artifact_count": arts.len(), "pull_count": 0,
                        "creation_time": time(0), "update_time": time(last.unwrap_or(0)),
                    })
                })
                .collect();
            rest_page(list, &q, &format!("/api/v2.0/projects/{project}/repositories"))
        }
        [_, _, "repositories", name, "artifacts"] => {
            let name = decode(name);
            let full_name = format!("{project}/{name}");
            let Some((repo_id, _)) = repos.iter().find(|(_, r)| **r == full_name) else {
                return not_found(format!("repository {full_name} not found"));
            };
            let list = artifacts(reg, &full_name, project_id, *repo_id, &q);
            let path = format!("/api/v2.0/projects/{project}/repositories/{}/artifacts", enc(&enc(&name)));
            rest_page(list, &q, &path)
        }
        _ => not_found(format!("no such API: {}", uri.path())),
    }
}

/// The artifacts of one repository, newest push first, with their tags.
fn artifacts(reg: &Registry, repo: &str, project_id: u64, repo_id: u64, q: &[(String, String)]) -> Vec<Value> {
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let with_tag = get("with_tag") != Some("false");
    let tagged_only = get("q") == Some("tags=*");
    let mut by_digest: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
    for (tag, digest) in reg.repositories.get(repo).into_iter().flatten() {
        by_digest.entry(digest).or_default().push(tag);
    }
    let mut arts: Vec<(u64, &String, Vec<&String>)> = by_digest
        .into_iter()
        .map(|(d, tags)| (reg.pushed.get(&format!("{repo}@{d}")).copied().unwrap_or(0), d, tags))
        .filter(|(_, _, tags)| !tagged_only || !tags.is_empty())
        .collect();
    arts.sort_by_key(|a| std::cmp::Reverse(a.0));
    arts.into_iter()
        .map(|(seq, digest, tags)| {
            let m: Value =
                reg.manifests.get(digest).and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null);
            let config_type = m.pointer("/config/mediaType").cloned().unwrap_or(Value::Null);
            let size = reg.manifests.get(digest).map_or(0, |b| b.len() as u64)
                + m.get("layers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .chain(m.get("config"))
                    .filter_map(|d| d.get("size").and_then(Value::as_u64))
                    .sum::<u64>();
            let id = seq;
            let tags: Value = if with_tag {
                tags.iter()
                    .enumerate()
                    .map(|(i, t)| {
                        json!({"id": id * 100 + i as u64, "repository_id": repo_id, "artifact_id": id, "name": t,
                               "push_time": time(seq), "pull_time": "0001-01-01T00:00:00.000Z", "immutable": false})
                    })
                    .collect()
            } else {
                Value::Null
            };
            json!({
                "id": id, "type": "UNKNOWN", "media_type": config_type,
                "manifest_media_type": m.get("mediaType").cloned().unwrap_or(json!(MANIFEST_MEDIA_TYPE)),
                "artifact_type": m.get("artifactType").cloned().unwrap_or(config_type),
                "project_id": project_id, "repository_id": repo_id, "repository_name": repo,
                "digest": digest, "size": size, "icon": "",
                "push_time": time(seq), "pull_time": "0001-01-01T00:00:00.000Z",
                "extra_attrs": {}, "annotations": m.get("annotations").cloned().unwrap_or(json!({})),
                "references": null, "tags": tags, "addition_links": {}, "labels": null, "accessories": null,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_of_a_v2_path() {
        assert_eq!(repository_of("p/a/b/manifests/1.0"), Some("p/a/b"));
        assert_eq!(repository_of("p/a/tags/list"), Some("p/a"));
        assert_eq!(repository_of("p/a/blobs/sha256:00"), Some("p/a"));
        assert_eq!(repository_of("_catalog"), None);
    }

    #[test]
    fn paging_links_prev_and_next_while_more_remain() {
        let items: Vec<Value> = (0..25).map(|i| json!(i)).collect();
        let q = vec![("page".to_string(), "2".to_string()), ("with_tag".into(), "true".into())];
        let r = rest_page(items, &q, "/api/v2.0/projects");
        assert_eq!(r.headers()["x-total-count"], "25");
        assert_eq!(
            r.headers()[header::LINK],
            "</api/v2.0/projects?page=1&page_size=10&with_tag=true>; rel=\"prev\" , \
             </api/v2.0/projects?page=3&page_size=10&with_tag=true>; rel=\"next\""
        );
        let last = rest_page((0..25).map(|i| json!(i)).collect(), &[("page".into(), "3".into())], "/x");
        assert!(!last.headers()[header::LINK].to_str().unwrap().contains("next"));
    }
}
