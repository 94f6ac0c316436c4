//! Keystone tokens: `POST/GET/HEAD/DELETE /v3/auth/tokens` (password, token
//! and application_credential methods; project, domain, system or no scope),
//! `/v3/auth/{catalog,projects,domains,system}`, and the service catalog with
//! its `/v3/services`, `/v3/endpoints` and `/v3/regions` views.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use rand::Rng;
use serde_json::{Value, json};

use super::*;
use crate::model::{ApplicationCredential, AssignmentScope};

pub(super) fn routes() -> Router<std::sync::Arc<AppState>> {
    Router::new()
        .route("/v3/auth/tokens", post(issue).get(check).delete(revoke))
        .route("/v3/auth/catalog", get(auth_catalog))
        .route("/v3/auth/projects", get(auth_projects))
        .route("/v3/auth/domains", get(auth_domains))
        .route("/v3/auth/system", get(auth_system))
        .route("/v3/services", get(list_services))
        .route("/v3/services/{id}", get(get_service))
        .route("/v3/endpoints", get(list_endpoints))
        .route("/v3/endpoints/{id}", get(get_endpoint))
        .route("/v3/regions", get(list_regions))
        .route("/v3/regions/{id}", get(get_region))
}

/// What a token body needs beyond `TokenInfo`.
#[derive(Debug, Clone)]
struct TokenExtra {
    audit_ids: Vec<String>,
    /// (id, name) of the application credential the token came from.
    app_cred: Option<(String, String)>,
    expires_at: DateTime<Utc>,
    revoked: bool,
}

/// Side table of issued tokens (token strings are random, so one table
/// serves every simulator in the process).
static EXTRA: LazyLock<Mutex<HashMap<String, TokenExtra>>> = LazyLock::new(Default::default);

const URLSAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub(super) fn random_urlsafe(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n).map(|_| URLSAFE[rng.random_range(0..URLSAFE.len())] as char).collect()
}

// ---------- catalog ----------

/// (type, name, path under the base URL); `{project_id}` only in volumev3.
const SERVICES: [(&str, &str, &str); 7] = [
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/v2.1"),
    ("volumev3", "cinderv3", "/volume/v3/%(project_id)s"),
    ("block-storage", "cinder", "/volume/v3"),
    ("network", "neutron", "/network"),
    ("image", "glance", "/image"),
    ("object-store", "swift", "/object-store/v1/AUTH_%(project_id)s"),
];
const INTERFACES: [&str; 3] = ["public", "internal", "admin"];

fn service_id(kind: &str) -> String {
    stable_id(&format!("service:{kind}"))
}
fn endpoint_id(kind: &str, interface: &str) -> String {
    stable_id(&format!("endpoint:{kind}:{interface}"))
}

/// The service catalog of a token: volumev3 (with the project id in its URL)
/// only for project-scoped tokens.
pub(crate) fn catalog(state: &AppState, site: &Site, project_id: Option<&str>) -> Value {
    let services: Vec<Value> = SERVICES
        .iter()
        .filter(|(kind, _, _)| !matches!(*kind, "volumev3" | "object-store") || project_id.is_some())
        .filter(|(kind, _, _)| !site.faults.catalog_omit.iter().any(|o| o == kind))
        .map(|(kind, name, path)| {
            let url = match site.faults.catalog_urls.get(*kind) {
                Some(u) => u.replace("%(project_id)s", project_id.unwrap_or("")),
                None => format!("{}{}", state.base_url, path.replace("%(project_id)s", project_id.unwrap_or(""))),
            };
            let endpoints: Vec<Value> = INTERFACES
                .iter()
                .map(|i| {
                    json!({"id": endpoint_id(kind, i), "interface": i, "region_id": site.region,
                           "url": url, "region": site.region})
                })
                .collect();
            json!({"endpoints": endpoints, "id": service_id(kind), "type": kind, "name": name})
        })
        .collect();
    json!(services)
}

fn service_json(state: &AppState, kind: &str, name: &str) -> Value {
    let id = service_id(kind);
    json!({"name": name, "id": id, "type": kind, "enabled": true,
           "links": {"self": v3_url(state, &format!("/services/{id}"))}})
}

fn endpoints(state: &AppState, site: &Site) -> Vec<Value> {
    let mut out = Vec::new();
    for (kind, _, path) in SERVICES {
        for i in INTERFACES {
            let id = endpoint_id(kind, i);
            out.push(json!({
                "id": id, "interface": i, "region_id": site.region, "service_id": service_id(kind),
                "url": format!("{}{}", state.base_url, path), "enabled": true, "region": site.region,
                "links": {"self": v3_url(state, &format!("/endpoints/{id}"))},
            }));
        }
    }
    out
}

fn region_json(state: &AppState, region: &str) -> Value {
    json!({"id": region, "description": "", "parent_region_id": null,
           "links": {"self": v3_url(state, &format!("/regions/{region}"))}})
}

async fn list_services(State(state): St, headers: HeaderMap, uri: OriginalUri, q: Query) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(tok.is_admin() || system_reader(&tok), "list_services")?;
    let services: Vec<Value> = SERVICES
        .iter()
        .filter(|(k, n, _)| q.get("type").is_none_or(|t| t == k) && q.get("name").is_none_or(|x| x == n))
        .map(|(k, n, _)| service_json(&state, k, n))
        .collect();
    Ok(axum::Json(json!({"services": services, "links": list_links(&state, &uri)})).into_response())
}

async fn get_service(State(state): St, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(tok.is_admin() || system_reader(&tok), "get_service")?;
    let (k, n, _) = SERVICES.iter().find(|(k, _, _)| service_id(k) == id).ok_or_else(|| not_found("service", &id))?;
    Ok(axum::Json(json!({"service": service_json(&state, k, n)})).into_response())
}

async fn list_endpoints(State(state): St, headers: HeaderMap, uri: OriginalUri, q: Query) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(tok.is_admin() || system_reader(&tok), "list_endpoints")?;
    let site = state.site.read().unwrap();
    let eps: Vec<Value> = endpoints(&state, &site)
        .into_iter()
        .filter(|e| {
            ["interface", "service_id", "region_id"].iter().all(|k| q.get(*k).is_none_or(|v| e[*k] == json!(v)))
        })
        .collect();
    Ok(axum::Json(json!({"endpoints": eps, "links": list_links(&state, &uri)})).into_response())
}

async fn get_endpoint(State(state): St, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(tok.is_admin() || system_reader(&tok), "get_endpoint")?;
    let site = state.site.read().unwrap();
    let ep = endpoints(&state, &site)
        .into_iter()
        .find(|e| e["id"] == json!(id))
        .ok_or_else(|| not_found("endpoint", &id))?;
    Ok(axum::Json(json!({"endpoint": ep})).into_response())
}

async fn list_regions(State(state): St, headers: HeaderMap, uri: OriginalUri) -> ApiResult<Response> {
    auth(&state, &headers).await?;
    let region = state.site.read().unwrap().region.clone();
    Ok(axum::Json(json!({"regions": [region_json(&state, &region)], "links": list_links(&state, &uri)}))
        .into_response())
}

async fn get_region(State(state): St, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    auth(&state, &headers).await?;
    let region = state.site.read().unwrap().region.clone();
    if region != id {
        return Err(not_found("region", &id));
    }
    Ok(axum::Json(json!({"region": region_json(&state, &region)})).into_response())
}

// ---------- issuing ----------

/// A user as resolved from an auth request.
struct Who {
    user_id: String,
    methods: Vec<String>,
    audit_parent: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    app_cred: Option<ApplicationCredential>,
}

/// `user` block of password/application_credential auth: by id, or by name
/// with a domain id or name.
fn find_user<'a>(site: &'a Site, u: &Value, method: &str) -> ApiResult<&'a User> {
    if let Some(id) = u.get("id").and_then(Value::as_str) {
        return site.user(id).ok_or_else(unauthorized);
    }
    let name = u.get("name").and_then(Value::as_str).ok_or_else(|| {
        bad_request(format!("Expecting to find id or name in user - the server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error. ({method})"))
    })?;
    let domain = u.get("domain").filter(|d| d.is_object()).ok_or_else(|| {
        bad_request("Expecting to find domain in user. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.")
    })?;
    let domain_id = find_domain(site, domain)?.id.clone();
    site.users.iter().find(|x| x.name == name && x.domain_id == domain_id).ok_or_else(unauthorized)
}

/// `domain` block by id or name (401 when unknown, as in Keystone's auth).
fn find_domain<'a>(site: &'a Site, d: &Value) -> ApiResult<&'a Domain> {
    let found = if let Some(id) = d.get("id").and_then(Value::as_str) {
        site.domains.iter().find(|x| x.id == id)
    } else if let Some(name) = d.get("name").and_then(Value::as_str) {
        site.domains.iter().find(|x| x.name == name)
    } else {
        return Err(bad_request(
            "Expecting to find id or name in domain. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.",
        ));
    };
    found.filter(|d| d.enabled).ok_or_else(unauthorized)
}

fn identify(
    state: &AppState,
    site: &Site,
    identity: &serde_json::Map<String, Value>,
    has_scope: bool,
) -> ApiResult<Who> {
    let methods: Vec<String> = identity
        .get("methods")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_request("'methods' is a required property"))?
        .iter()
        .map(|m| m.as_str().map(String::from).ok_or_else(|| bad_request("'methods' must be a list of strings")))
        .collect::<ApiResult<_>>()?;
    if methods.is_empty() {
        return Err(bad_request("'methods' must not be empty"));
    }
    let mut who: Option<Who> = None;
    for m in &methods {
        let block = identity.get(m.as_str()).filter(|b| b.is_object()).ok_or_else(|| {
            bad_request(format!("Expecting to find {m} in identity. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error."))
        })?;
        let found = match m.as_str() {
            "password" => {
                let u = block.get("user").ok_or_else(|| bad_request("Expecting to find user in password. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error."))?;
                let user = find_user(site, u, "password")?;
                let pw = u.get("password").and_then(Value::as_str).unwrap_or("");
                if user.password.is_empty() || pw != user.password {
                    return Err(unauthorized());
                }
                Who {
                    user_id: user.id.clone(),
                    methods: vec!["password".into()],
                    audit_parent: None,
                    expires_at: None,
                    app_cred: None,
                }
            }
            "token" => {
                let id = block
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_request("'id' is a required property"))?;
                let parent = state.tokens.read().unwrap().get(id).cloned().ok_or_else(unauthorized)?;
                if parent.expires_at <= state.clock.token_now() {
                    return Err(unauthorized());
                }
                if parent.methods.iter().any(|m| m == "application_credential") {
                    return Err(unauthorized());
                }
                let extra = EXTRA.lock().unwrap().get(id).cloned();
                let mut ms = vec!["token".to_string()];
                ms.extend(parent.methods.iter().filter(|m| *m != "token").cloned());
                Who {
                    user_id: parent.user_id.clone(),
                    methods: ms,
                    audit_parent: extra.and_then(|e| e.audit_ids.first().cloned()),
                    expires_at: Some(parent.expires_at),
                    app_cred: None,
                }
            }
            "application_credential" => {
                if has_scope {
                    return Err(err(
                        StatusCode::UNAUTHORIZED,
                        "Error authenticating with application credential: Application credentials cannot request a scope.",
                    ));
                }
                let ac = if let Some(id) = block.get("id").and_then(Value::as_str) {
                    site.application_credentials.iter().find(|a| a.id == id)
                } else {
                    let name = block.get("name").and_then(Value::as_str).ok_or_else(|| bad_request("Expecting to find id or name in application_credential. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error."))?;
                    let u = block.get("user").ok_or_else(|| bad_request("Expecting to find user in application_credential. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error."))?;
                    let user = find_user(site, u, "application_credential")?;
                    site.application_credentials.iter().find(|a| a.name == name && a.user_id == user.id)
                }
                .ok_or_else(unauthorized)?;
                let secret = block.get("secret").and_then(Value::as_str).unwrap_or("");
                if secret != ac.secret || ac.expires_at.is_some_and(|e| e <= state.clock.token_now()) {
                    return Err(unauthorized());
                }
                Who {
                    user_id: ac.user_id.clone(),
                    methods: vec!["application_credential".into()],
                    audit_parent: None,
                    expires_at: ac.expires_at,
                    app_cred: Some(ac.clone()),
                }
            }
            _ => return Err(err(StatusCode::UNAUTHORIZED, "Attempted to authenticate with an unsupported method.")),
        };
        match &mut who {
            None => who = Some(found),
            Some(w) if w.user_id == found.user_id => {
                w.methods.extend(found.methods);
                w.expires_at = match (w.expires_at, found.expires_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                w.audit_parent = w.audit_parent.take().or(found.audit_parent);
                w.app_cred = w.app_cred.take().or(found.app_cred);
            }
            Some(_) => return Err(unauthorized()),
        }
    }
    let mut who = who.ok_or_else(unauthorized)?;
    who.methods.dedup();
    Ok(who)
}

/// Role ids assigned to `user` directly at `scope`.
fn direct_roles(site: &Site, user: &str, scope: &AssignmentScope) -> Vec<String> {
    site.assignments.iter().filter(|a| a.user_id == user && &a.scope == scope).map(|a| a.role_id.clone()).collect()
}

/// Resolves the requested scope and the user's effective role names in it.
fn resolve_scope(site: &Site, user: &User, scope: Option<&Value>, who: &Who) -> ApiResult<(TokenScope, Vec<String>)> {
    if let Some(ac) = &who.app_cred {
        let p = site.project(&ac.project_id).filter(|p| p.enabled).ok_or_else(unauthorized)?;
        let have = expand_roles(site, &direct_roles(site, &user.id, &AssignmentScope::Project(p.id.clone())));
        let roles: Vec<String> = have.into_iter().map(|r| r.1).filter(|n| ac.roles.contains(n)).collect();
        if roles.is_empty() {
            return Err(unauthorized());
        }
        return Ok((
            TokenScope::Project { id: p.id.clone(), name: p.name.clone(), domain_id: p.domain_id.clone() },
            roles,
        ));
    }
    let scope = match scope {
        None | Some(Value::Null) => return Ok((TokenScope::Unscoped, vec![])),
        Some(Value::String(s)) if s == "unscoped" => return Ok((TokenScope::Unscoped, vec![])),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(bad_request("'scope' must be an object")),
    };
    let kinds: Vec<&String> =
        scope.keys().filter(|k| ["project", "domain", "system", "OS-TRUST:trust"].contains(&k.as_str())).collect();
    if kinds.len() != 1 {
        return Err(bad_request(
            "Specify exactly one of project, domain or system in scope. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.",
        ));
    }
    let (tscope, ascope) = match kinds[0].as_str() {
        "project" => {
            let p = &scope["project"];
            let project = if let Some(id) = p.get("id").and_then(Value::as_str) {
                site.project(id)
            } else if let Some(name) = p.get("name").and_then(Value::as_str) {
                let d = p.get("domain").filter(|d| d.is_object()).ok_or_else(|| {
                    bad_request("Expecting to find domain in project. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.")
                })?;
                let did = find_domain(site, d)?.id.clone();
                site.projects.iter().find(|x| x.name == name && x.domain_id == did)
            } else {
                return Err(bad_request(
                    "Expecting to find id or name in project. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.",
                ));
            };
            let project = project.filter(|p| p.enabled).ok_or_else(unauthorized)?;
            if !site.domains.iter().any(|d| d.id == project.domain_id && d.enabled) {
                return Err(unauthorized());
            }
            if site.faults.forbidden_projects.contains(&project.id) {
                return Err(err(StatusCode::FORBIDDEN, "You are not authorized to perform the requested action."));
            }
            (
                TokenScope::Project {
                    id: project.id.clone(),
                    name: project.name.clone(),
                    domain_id: project.domain_id.clone(),
                },
                AssignmentScope::Project(project.id.clone()),
            )
        }
        "domain" => {
            let d = find_domain(site, &scope["domain"])?;
            (TokenScope::Domain { id: d.id.clone(), name: d.name.clone() }, AssignmentScope::Domain(d.id.clone()))
        }
        "system" => {
            if scope["system"].get("all") != Some(&Value::Bool(true)) {
                return Err(bad_request("Only {\"all\": true} is a valid system scope."));
            }
            (TokenScope::System, AssignmentScope::System)
        }
        _ => return Err(err(StatusCode::FORBIDDEN, "Trusts are not supported by the simulator.")),
    };
    let roles: Vec<String> =
        expand_roles(site, &direct_roles(site, &user.id, &ascope)).into_iter().map(|r| r.1).collect();
    if roles.is_empty() {
        return Err(unauthorized());
    }
    Ok((tscope, roles))
}

async fn issue(State(state): St, q: Query, body: Bytes) -> ApiResult<Response> {
    let body = parse_body(&body)?;
    let auth_req = member(&body, "auth")?;
    let identity = auth_req
        .get("identity")
        .and_then(Value::as_object)
        .ok_or_else(|| bad_request("'identity' is a required property"))?;
    let now = state.clock.token_now().trunc_subsecs(0);
    let (token, info, extra) = {
        let site = state.site.read().unwrap();
        let scope = auth_req.get("scope");
        let who = identify(&state, &site, identity, scope.is_some_and(|s| !s.is_null()))?;
        let user = site.user(&who.user_id).filter(|u| u.enabled).ok_or_else(unauthorized)?;
        if !site.domains.iter().any(|d| d.id == user.domain_id && d.enabled) {
            return Err(unauthorized());
        }
        let (scope, roles) = resolve_scope(&site, user, scope, &who)?;
        let mut expires_at = now + Duration::hours(1);
        if let Some(e) = who.expires_at {
            expires_at = expires_at.min(e);
        }
        let info = TokenInfo {
            user_id: user.id.clone(),
            user_name: user.name.clone(),
            user_domain_id: user.domain_id.clone(),
            scope,
            roles,
            methods: who.methods.clone(),
            issued_at: now,
            expires_at,
        };
        let mut audit_ids = vec![random_urlsafe(22)];
        audit_ids.extend(who.audit_parent.clone());
        let extra = TokenExtra {
            audit_ids,
            app_cred: who.app_cred.as_ref().map(|a| (a.id.clone(), a.name.clone())),
            expires_at,
            revoked: false,
        };
        (format!("gAAAAAB{}", random_urlsafe(176)), info, extra)
    };
    Ok(store_and_render(&state, token, info, extra, !q.contains_key("nocatalog")))
}

/// Mints a token for `info` (no application credential): what the
/// OS-FEDERATION `.../auth` endpoint answers.
pub(super) fn mint(state: &AppState, info: TokenInfo) -> Response {
    let extra =
        TokenExtra { audit_ids: vec![random_urlsafe(22)], app_cred: None, expires_at: info.expires_at, revoked: false };
    store_and_render(state, format!("gAAAAAB{}", random_urlsafe(176)), info, extra, true)
}

fn store_and_render(
    state: &AppState,
    token: String,
    info: TokenInfo,
    extra: TokenExtra,
    with_catalog: bool,
) -> Response {
    let now = info.issued_at;
    state.tokens.write().unwrap().insert(token.clone(), info.clone());
    {
        let mut table = EXTRA.lock().unwrap();
        if table.len() > 50_000 {
            let cutoff = now - Duration::days(1);
            table.retain(|_, e| e.expires_at > cutoff);
        }
        table.insert(token.clone(), extra.clone());
    }
    let body = token_body(state, &info, &extra, with_catalog);
    let mut resp = created(json!({"token": body}));
    if let Ok(v) = HeaderValue::from_str(&token) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    resp
}

/// A token's body as Keystone renders it.
fn token_body(state: &AppState, t: &TokenInfo, extra: &TokenExtra, with_catalog: bool) -> Value {
    let site = state.site.read().unwrap();
    let mut body = json!({
        "methods": t.methods,
        "user": {"domain": domain_ref(&site, &t.user_domain_id), "id": t.user_id, "name": t.user_name,
                 "password_expires_at": null},
        "audit_ids": extra.audit_ids,
        "expires_at": token_time(t.expires_at),
        "issued_at": token_time(t.issued_at),
    });
    let project_id = match &t.scope {
        TokenScope::Unscoped => return body,
        TokenScope::Project { id, name, domain_id } => {
            body["project"] = json!({"domain": domain_ref(&site, domain_id), "id": id, "name": name});
            body["is_domain"] = json!(false);
            Some(id.as_str())
        }
        TokenScope::Domain { id, name } => {
            body["domain"] = json!({"id": id, "name": name});
            None
        }
        TokenScope::System => {
            body["system"] = json!({"all": true});
            None
        }
    };
    body["roles"] =
        t.roles.iter().filter_map(|n| role_ref(&site, n)).map(|(id, name)| json!({"id": id, "name": name})).collect();
    if with_catalog {
        body["catalog"] = catalog(state, &site, project_id);
    }
    if let Some((id, name)) = &extra.app_cred {
        body["application_credential"] = json!({"id": id, "name": name, "restricted": true});
    }
    body
}

// ---------- validate / check / revoke ----------

async fn check(State(state): St, method: Method, headers: HeaderMap, q: Query) -> ApiResult<Response> {
    let caller = auth(&state, &headers).await?;
    let (subject, info, extra) = subject(&state, &headers)?;
    let rule = if method == Method::HEAD { "check_token" } else { "validate_token" };
    let service = method != Method::HEAD && caller.has_role("service");
    enforce(caller.is_admin() || system_reader(&caller) || service || caller.user_id == info.user_id, rule)?;
    let body = token_body(&state, &info, &extra, !q.contains_key("nocatalog"));
    let mut resp = axum::Json(json!({"token": body})).into_response();
    if let Ok(v) = HeaderValue::from_str(&subject) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    Ok(resp)
}

async fn revoke(State(state): St, headers: HeaderMap) -> ApiResult<Response> {
    let caller = auth(&state, &headers).await?;
    let (subject, info, _) = subject(&state, &headers)?;
    enforce(caller.is_admin() || caller.user_id == info.user_id, "revoke_token")?;
    state.tokens.write().unwrap().remove(&subject);
    if let Some(e) = EXTRA.lock().unwrap().get_mut(&subject) {
        e.revoked = true;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The `X-Subject-Token` of a request, valid (404 like Keystone otherwise).
fn subject(state: &AppState, headers: &HeaderMap) -> ApiResult<(String, TokenInfo, TokenExtra)> {
    let subject = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| err(StatusCode::NOT_FOUND, "No token in the request"))?
        .to_string();
    let extra = EXTRA.lock().unwrap().get(&subject).cloned();
    let info = state.tokens.read().unwrap().get(&subject).cloned();
    match (info, extra) {
        (Some(info), Some(extra)) if info.expires_at > state.clock.token_now() => Ok((subject, info, extra)),
        (Some(info), None) if info.expires_at > state.clock.token_now() => {
            let extra = TokenExtra {
                audit_ids: vec![random_urlsafe(22)],
                app_cred: None,
                expires_at: info.expires_at,
                revoked: false,
            };
            Ok((subject, info, extra))
        }
        (None, None) => Err(err(StatusCode::NOT_FOUND, "Could not recognize Fernet token")),
        _ => Err(err(StatusCode::NOT_FOUND, "Failed to validate token")),
    }
}

// ---------- /v3/auth/* ----------

async fn auth_catalog(State(state): St, headers: HeaderMap, uri: OriginalUri) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    if tok.scope == TokenScope::Unscoped {
        return Err(err(StatusCode::FORBIDDEN, "You are not authorized to perform the requested action."));
    }
    let site = state.site.read().unwrap();
    let cat = catalog(&state, &site, tok.project_id());
    let pq = uri.0.path().to_string();
    Ok(axum::Json(json!({"catalog": cat, "links": {"self": format!("{}{pq}", state.base_url)}})).into_response())
}

async fn auth_projects(State(state): St, headers: HeaderMap, uri: OriginalUri) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    let site = state.site.read().unwrap();
    let projects: Vec<Value> = site
        .projects
        .iter()
        .filter(|p| p.enabled && !direct_roles(&site, &tok.user_id, &AssignmentScope::Project(p.id.clone())).is_empty())
        .map(|p| project_json(&state, p))
        .collect();
    Ok(axum::Json(json!({"projects": projects, "links": list_links(&state, &uri)})).into_response())
}

async fn auth_domains(State(state): St, headers: HeaderMap, uri: OriginalUri) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    let site = state.site.read().unwrap();
    let domains: Vec<Value> = site
        .domains
        .iter()
        .filter(|d| d.enabled && !direct_roles(&site, &tok.user_id, &AssignmentScope::Domain(d.id.clone())).is_empty())
        .map(|d| domain_json(&state, &site, d))
        .collect();
    Ok(axum::Json(json!({"domains": domains, "links": list_links(&state, &uri)})).into_response())
}

async fn auth_system(State(state): St, headers: HeaderMap, uri: OriginalUri) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    let site = state.site.read().unwrap();
    let system = if direct_roles(&site, &tok.user_id, &AssignmentScope::System).is_empty() {
        json!([])
    } else {
        json!([{"all": true}])
    };
    Ok(axum::Json(json!({"system": system, "links": {"self": format!("{}{}", state.base_url, uri.0.path())}}))
        .into_response())
}

/// Forgets the tokens of an application credential (deleted) or user.
pub(super) fn drop_tokens(state: &AppState, user_id: Option<&str>, app_cred: Option<&str>) {
    let extra = EXTRA.lock().unwrap();
    state.tokens.write().unwrap().retain(|k, t| {
        let by_user = user_id.is_some_and(|u| t.user_id == u);
        let by_ac =
            app_cred.is_some_and(|a| extra.get(k).and_then(|e| e.app_cred.as_ref()).is_some_and(|(id, _)| id == a));
        !(by_user || by_ac)
    });
}
