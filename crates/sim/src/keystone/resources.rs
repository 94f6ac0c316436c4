//! Keystone resources: projects (with tags and flat extra properties),
//! users, roles, grants and role assignments, domains and application
//! credentials, each behind Keystone 30's default policy rules.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value, json};

use super::*;
use crate::model::{ApplicationCredential, Assignment, AssignmentScope};

pub(super) fn routes() -> Router<std::sync::Arc<AppState>> {
    Router::new()
        .route("/v3/projects", get(list_projects).post(create_project))
        .route("/v3/projects/{id}", get(get_project).patch(update_project).delete(delete_project))
        .route("/v3/projects/{id}/tags", get(list_tags).put(replace_tags).delete(clear_tags))
        .route("/v3/projects/{id}/tags/{tag}", get(check_tag).put(add_tag).delete(delete_tag))
        .route("/v3/projects/{id}/users/{user}/roles", get(list_project_grants))
        .route(
            "/v3/projects/{id}/users/{user}/roles/{role}",
            get(check_project_grant).put(put_project_grant).delete(delete_project_grant),
        )
        .route("/v3/domains", get(list_domains))
        .route("/v3/domains/{id}", get(get_domain))
        .route("/v3/domains/{id}/users/{user}/roles", get(list_domain_grants))
        .route(
            "/v3/domains/{id}/users/{user}/roles/{role}",
            get(check_domain_grant).put(put_domain_grant).delete(delete_domain_grant),
        )
        .route("/v3/system/users/{user}/roles", get(list_system_grants))
        .route(
            "/v3/system/users/{user}/roles/{role}",
            get(check_system_grant).put(put_system_grant).delete(delete_system_grant),
        )
        .route("/v3/users", get(list_users).post(create_user))
        .route("/v3/users/{id}", get(get_user).patch(update_user).delete(delete_user))
        .route("/v3/users/{id}/projects", get(list_user_projects))
        .route("/v3/users/{id}/application_credentials", get(list_app_creds).post(create_app_cred))
        .route("/v3/users/{id}/application_credentials/{ac}", get(get_app_cred).delete(delete_app_cred))
        .route("/v3/roles", get(list_roles).post(create_role))
        .route("/v3/roles/{id}", get(get_role).delete(delete_role))
        .route("/v3/role_assignments", get(list_role_assignments))
}

fn json_ok(v: Value) -> ApiResult<Response> {
    Ok(axum::Json(v).into_response())
}
fn no_content() -> ApiResult<Response> {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// 404 for callers who may see everything, the rule's 403 for the others
/// (Keystone cannot build the policy target of a missing entity).
fn missing(tok: &TokenInfo, kind: &str, id: &str, rule: &str) -> ApiError {
    if tok.is_admin() || system_reader(tok) { not_found(kind, id) } else { forbidden(rule) }
}

/// Domain new entities go to when the request names none.
fn default_domain(site: &Site, tok: &TokenInfo) -> String {
    match &tok.scope {
        TokenScope::Domain { id, .. } => id.clone(),
        TokenScope::Project { domain_id, .. } => domain_id.clone(),
        _ => site.domains.iter().find(|d| d.id == "default").map(|d| d.id.clone()).unwrap_or_else(|| "default".into()),
    }
}

/// `role:<role> and domain_id:<domain>` with a domain-scoped token.
fn domain_role(tok: &TokenInfo, role: &str, domain: &str) -> bool {
    tok.has_role(role) && token_domain(tok) == Some(domain)
}

fn invalid(entity: &str, value: &Value, why: &str) -> ApiError {
    bad_request(format!("Invalid input for field/attribute {entity}. Value: {value}. {why}"))
}

// ---------- projects ----------

/// Project attributes that are not stored as extra properties.
const PROJECT_FIELDS: [&str; 9] =
    ["id", "name", "domain_id", "description", "enabled", "parent_id", "is_domain", "tags", "options"];

fn tag_list(q: &Query, key: &str) -> Option<Vec<String>> {
    q.get(key).map(|v| v.split(',').filter(|t| !t.is_empty()).map(String::from).collect())
}

fn parse_tags(v: &Value) -> ApiResult<Vec<String>> {
    let arr = v.as_array().ok_or_else(|| invalid("tags", v, &format!("{v} is not of type 'array'")))?;
    if arr.len() > 80 {
        return Err(invalid("tags", v, "Too many tags (at most 80)"));
    }
    let mut out: Vec<String> = Vec::new();
    for t in arr {
        out.push(check_tag_value(
            t.as_str().ok_or_else(|| invalid("tags", v, &format!("{t} is not of type 'string'")))?,
        )?);
    }
    out.dedup();
    Ok(out)
}

fn check_tag_value(t: &str) -> ApiResult<String> {
    if t.is_empty() || t.chars().count() > 255 || t.contains(',') || t.contains('/') {
        return Err(bad_request(format!(
            "Invalid input for field/attribute tags. Value: {t}. Tags must be 1 to 255 characters and must not contain ',' or '/'"
        )));
    }
    Ok(t.to_string())
}

async fn list_projects(State(state): St, headers: HeaderMap, uri: OriginalUri, q: Query) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(
        admin_or_reader(&tok, q.get("domain_id").map(String::as_str)) || admin_or_reader(&tok, None),
        "list_projects",
    )?;
    let limit = list_domain_limit(&tok);
    let (all, any, not_all, not_any) =
        (tag_list(&q, "tags"), tag_list(&q, "tags-any"), tag_list(&q, "not-tags"), tag_list(&q, "not-tags-any"));
    if q.get("is_domain").is_some_and(|v| parse_bool(v)) {
        return json_ok(json!({"projects": [], "links": list_links(&state, &uri)}));
    }
    let site = state.site.read().unwrap();
    let has = |p: &Project, t: &String| p.tags.contains(t);
    let projects: Vec<Value> = site
        .projects
        .iter()
        .filter(|p| limit.as_ref().is_none_or(|d| &p.domain_id == d))
        .filter(|p| q.get("name").is_none_or(|n| &p.name == n))
        .filter(|p| q.get("domain_id").is_none_or(|d| &p.domain_id == d))
        .filter(|p| q.get("parent_id").is_none_or(|d| &p.domain_id == d))
        .filter(|p| q.get("enabled").is_none_or(|e| p.enabled == parse_bool(e)))
        .filter(|p| all.as_ref().is_none_or(|ts| ts.iter().all(|t| has(p, t))))
        .filter(|p| any.as_ref().is_none_or(|ts| ts.iter().any(|t| has(p, t))))
        .filter(|p| not_all.as_ref().is_none_or(|ts| ts.is_empty() || !ts.iter().all(|t| has(p, t))))
        .filter(|p| not_any.as_ref().is_none_or(|ts| !ts.iter().any(|t| has(p, t))))
        .map(|p| project_json(&state, p))
        .collect();
    json_ok(json!({"projects": projects, "links": list_links(&state, &uri)}))
}

fn can_read_project(tok: &TokenInfo, p: &Project) -> bool {
    tok.is_admin() || system_reader(tok) || domain_reader(tok, &p.domain_id) || tok.project_id() == Some(p.id.as_str())
}

fn can_write_project(tok: &TokenInfo, domain: &str) -> bool {
    tok.is_admin() || domain_role(tok, "manager", domain)
}

async fn get_project(State(state): St, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    let site = state.site.read().unwrap();
    let p = site.project(&id).ok_or_else(|| missing(&tok, "project", &id, "get_project"))?;
    enforce(can_read_project(&tok, p), "get_project")?;
    json_ok(json!({"project": project_json(&state, p)}))
}

async fn create_project(State(state): St, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    let body = parse_body(&body)?;
    let obj = member(&body, "project")?;
    let value = Value::Object(obj.clone());
    let name =
        opt_str(obj, "project", "name")?.ok_or_else(|| invalid("project", &value, "'name' is a required property"))?;
    if name.is_empty() || name.chars().count() > 64 {
        return Err(invalid("project", &value, "'name' must be 1 to 64 characters"));
    }
    let mut site = state.site.write().unwrap();
    let domain_id = opt_str(obj, "project", "domain_id")?.unwrap_or_else(|| default_domain(&site, &tok));
    enforce(can_write_project(&tok, &domain_id), "create_project")?;
    if !site.domains.iter().any(|d| d.id == domain_id) {
        return Err(not_found("domain", &domain_id));
    }
    if let Some(parent) = opt_str(obj, "project", "parent_id")?.filter(|p| p != &domain_id) {
        return Err(bad_request(format!(
            "Invalid parent_id {parent}: the simulator has no nested projects (parent_id must be the domain id)"
        )));
    }
    if obj.get("is_domain") == Some(&Value::Bool(true)) {
        return Err(bad_request("Invalid is_domain: the simulator cannot create domains as projects"));
    }
    let tags = match obj.get("tags") {
        Some(t) => parse_tags(t)?,
        None => vec![],
    };
    let id = match opt_str(obj, "project", "id")? {
        Some(id) => id,
        None => new_id(),
    };
    if site.projects.iter().any(|p| p.id == id || (p.name == name && p.domain_id == domain_id)) {
        return Err(conflict(format!(
            "project - it is not permitted to have two projects with either the same name or same id in the same domain: name is {name}, project id {id}."
        )));
    }
    let project = Project {
        id,
        name,
        domain_id,
        description: opt_str(obj, "project", "description")?.unwrap_or_default(),
        enabled: opt_bool(obj, "project", "enabled")?.unwrap_or(true),
        tags,
        extra: obj
            .iter()
            .filter(|(k, _)| !PROJECT_FIELDS.contains(&k.as_str()) && k.as_str() != "links")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let out = project_json(&state, &project);
    site.projects.push(project);
    Ok(created(json!({"project": out})))
}

async fn update_project(
    State(state): St,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    let body = parse_body(&body)?;
    let obj = member(&body, "project")?;
    let value = Value::Object(obj.clone());
    let mut site = state.site.write().unwrap();
    let idx =
        site.projects.iter().position(|p| p.id == id).ok_or_else(|| missing(&tok, "project", &id, "update_project"))?;
    let domain = site.projects[idx].domain_id.clone();
    enforce(can_write_project(&tok, &domain), "update_project")?;
    if let Some(d) = opt_str(obj, "project", "domain_id")?.filter(|d| d != &domain) {
        return Err(bad_request(format!("Cannot update domain_id of a project (to {d}).")));
    }
    if obj.get("id").is_some_and(|v| v != &json!(id)) {
        return Err(invalid("project", &value, "'id' cannot be updated"));
    }
    if let Some(name) = opt_str(obj, "project", "name")? {
        if name.is_empty() || name.chars().count() > 64 {
            return Err(invalid("project", &value, "'name' must be 1 to 64 characters"));
        }
        if site.projects.iter().any(|p| p.id != id && p.name == name && p.domain_id == domain) {
            return Err(conflict(format!(
                "project - it is not permitted to have two projects with either the same name or same id in the same domain: name is {name}, project id {id}."
            )));
        }
        site.projects[idx].name = name;
    }
    let tags = match obj.get("tags") {
        Some(t) => Some(parse_tags(t)?),
        None => None,
    };
    let description = opt_str(obj, "project", "description")?;
    let enabled = opt_bool(obj, "project", "enabled")?;
    let p = &mut site.projects[idx];
    if let Some(t) = tags {
        p.tags = t;
    }
    if let Some(d) = description {
        p.description = d;
    }
    if let Some(e) = enabled {
        p.enabled = e;
    }
    for (k, v) in obj.iter().filter(|(k, _)| !PROJECT_FIELDS.contains(&k.as_str()) && k.as_str() != "links") {
        p.extra.insert(k.clone(), v.clone());
    }
    let mut out = project_json(&state, p);
    if !p.extra.is_empty() {
        // Keystone echoes the extra properties once more on update.
        out["extra"] = json!(p.extra);
    }
    json_ok(json!({"project": out}))
}

async fn delete_project(State(state): St, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    let mut site = state.site.write().unwrap();
    let p = site.project(&id).ok_or_else(|| missing(&tok, "project", &id, "delete_project"))?;
    enforce(can_write_project(&tok, &p.domain_id.clone()), "delete_project")?;
    site.projects.retain(|p| p.id != id);
    site.assignments.retain(|a| a.scope != AssignmentScope::Project(id.clone()));
    drop(site);
    state.tokens.write().unwrap().retain(|_, t| t.project_id() != Some(id.as_str()));
    no_content()
}

fn tags_body(state: &AppState, p: &Project) -> Value {
    json!({"links": {"self": v3_url(state, &format!("/projects/{}/tags", p.id))}, "tags": p.tags})
}

async fn list_tags(State(state): St, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    let site = state.site.read().unwrap();
    let p = site.project(&id).ok_or_else(|| missing(&tok, "project", &id, "list_project_tags"))?;
    enforce(can_read_project(&tok, p), "list_project_tags")?;
    json_ok(tags_body(&state, p))
}

async fn check_tag(
    State(state): St,
    headers: HeaderMap,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    let site = state.site.read().unwrap();
    let p = site.project(&id).ok_or_else(|| missing(&tok, "project", &id, "get_project_tag"))?;
    enforce(can_read_project(&tok, p), "get_project_tag")?;
    if !p.tags.contains(&tag) {
        return Err(not_found("project tag", &tag));
    }
    no_content()
}

/// Runs `f` on a project the caller may write, by `rule`.
fn with_project<T>(
    state: &AppState,
    tok: &TokenInfo,
    id: &str,
    rule: &str,
    f: impl FnOnce(&mut Project) -> ApiResult<T>,
) -> ApiResult<T> {
    let mut site = state.site.write().unwrap();
    let p = site.projects.iter_mut().find(|p| p.id == id).ok_or_else(|| missing(tok, "project", id, rule))?;
    enforce(can_write_project(tok, &p.domain_id), rule)?;
    f(p)
}

async fn replace_tags(
    State(state): St,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    let body = parse_body(&body)?;
    let tags = parse_tags(body.get("tags").ok_or_else(|| bad_request("'tags' is a required property"))?)?;
    let out = with_project(&state, &tok, &id, "update_project_tags", |p| {
        p.tags = tags;
        Ok(tags_body(&state, p))
    })?;
    json_ok(out)
}

async fn clear_tags(State(state): St, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    with_project(&state, &tok, &id, "delete_project_tags", |p| {
        p.tags.clear();
        Ok(())
    })?;
    no_content()
}

async fn add_tag(State(state): St, headers: HeaderMap, Path((id, tag)): Path<(String, String)>) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    let tag = check_tag_value(&tag)?;
    with_project(&state, &tok, &id, "create_project_tag", |p| {
        if !p.tags.contains(&tag) {
            if p.tags.len() >= 80 {
                return Err(bad_request("Invalid input for field/attribute tags. Too many tags (at most 80)"));
            }
            p.tags.push(tag.clone());
        }
        Ok(())
    })?;
    let mut resp = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&v3_url(&state, &format!("/projects/{id}/tags/{tag}"))) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

async fn delete_tag(
    State(state): St,
    headers: HeaderMap,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    with_project(&state, &tok, &id, "delete_project_tag", |p| {
        let before = p.tags.len();
        p.tags.retain(|t| t != &tag);
        if p.tags.len() == before { Err(not_found("project tag", &tag)) } else { Ok(()) }
    })?;
    no_content()
}

// ---------- users ----------

async fn list_users(State(state): St, headers: HeaderMap, uri: OriginalUri, q: Query) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(admin_or_reader(&tok, None), "list_users")?;
    let limit = list_domain_limit(&tok);
    let site = state.site.read().unwrap();
    let users: Vec<Value> = site
        .users
        .iter()
        .filter(|u| limit.as_ref().is_none_or(|d| &u.domain_id == d))
        .filter(|u| q.get("name").is_none_or(|n| &u.name == n))
        .filter(|u| q.get("domain_id").is_none_or(|d| &u.domain_id == d))
        .filter(|u| q.get("enabled").is_none_or(|e| u.enabled == parse_bool(e)))
        .map(|u| user_json(&state, u))
        .collect();
    json_ok(json!({"users": users, "links": list_links(&state, &uri)}))
}

fn can_read_user(tok: &TokenInfo, u: &User) -> bool {
    tok.is_admin() || system_reader(tok) || domain_reader(tok, &u.domain_id) || tok.user_id == u.id
}

async fn get_user(State(state): St, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    let site = state.site.read().unwrap();
    let u = site.user(&id).ok_or_else(|| missing(&tok, "user", &id, "get_user"))?;
    enforce(can_read_user(&tok, u), "get_user")?;
    json_ok(json!({"user": user_json(&state, u)}))
}

async fn create_user(State(state): St, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    let body = parse_body(&body)?;
    let obj = member(&body, "user")?;
    let value = Value::Object(obj.clone());
    let name = opt_str(obj, "user", "name")?.ok_or_else(|| invalid("user", &value, "'name' is a required property"))?;
    if name.is_empty() || name.chars().count() > 255 {
        return Err(invalid("user", &value, "'name' must be 1 to 255 characters"));
    }
    let mut site = state.site.write().unwrap();
    let domain_id = opt_str(obj, "user", "domain_id")?.unwrap_or_else(|| default_domain(&site, &tok));
    enforce(tok.is_admin() || domain_role(&tok, "manager", &domain_id), "create_user")?;
    if !site.domains.iter().any(|d| d.id == domain_id) {
        return Err(not_found("domain", &domain_id));
    }
    if site.users.iter().any(|u| u.name == name && u.domain_id == domain_id) {
        return Err(conflict(format!("user - Duplicate entry found with name {name} at domain ID {domain_id}.")));
    }
    let user = User {
        id: new_id(),
        name,
        domain_id,
        password: opt_str(obj, "user", "password")?.unwrap_or_default(),
        enabled: opt_bool(obj, "user", "enabled")?.unwrap_or(true),
        email: opt_str(obj, "user", "email")?,
    };
    let out = user_json(&state, &user);
    site.users.push(user);
    Ok(created(json!({"user": out})))
}

async fn update_user(State(state): St, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    let body = parse_body(&body)?;
    let obj = member(&body, "user")?;
    let mut site = state.site.write().unwrap();
    let idx = site.users.iter().position(|u| u.id == id).ok_or_else(|| missing(&tok, "user", &id, "update_user"))?;
    let domain = site.users[idx].domain_id.clone();
    enforce(tok.is_admin() || domain_role(&tok, "manager", &domain), "update_user")?;
    if let Some(d) = opt_str(obj, "user", "domain_id")?.filter(|d| d != &domain) {
        return Err(bad_request(format!("Cannot update domain_id of a user (to {d}).")));
    }
    let name = opt_str(obj, "user", "name")?;
    if let Some(n) = &name
        && site.users.iter().any(|u| u.id != id && &u.name == n && u.domain_id == domain)
    {
        return Err(conflict(format!("user - Duplicate entry found with name {n} at domain ID {domain}.")));
    }
    let (password, enabled, email) = (
        opt_str(obj, "user", "password")?,
        opt_bool(obj, "user", "enabled")?,
        obj.get("email").map(|e| e.as_str().map(String::from)),
    );
    let u = &mut site.users[idx];
    if let Some(n) = name {
        u.name = n;
    }
    if let Some(p) = password {
        u.password = p;
    }
    if let Some(e) = enabled {
        u.enabled = e;
    }
    if let Some(e) = email {
        u.email = e;
    }
    let out = user_json(&state, u);
    let disabled = !u.enabled;
    drop(site);
    if disabled {
        super::tokens::drop_tokens(&state, Some(&id), None);
    }
    json_ok(json!({"user": out}))
}

async fn delete_user(State(state): St, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    {
        let mut site = state.site.write().unwrap();
        let u = site.user(&id).ok_or_else(|| missing(&tok, "user", &id, "delete_user"))?;
        enforce(tok.is_admin() || domain_role(&tok, "manager", &u.domain_id.clone()), "delete_user")?;
        site.users.retain(|u| u.id != id);
        site.assignments.retain(|a| a.user_id != id);
        site.application_credentials.retain(|a| a.user_id != id);
    }
    super::tokens::drop_tokens(&state, Some(&id), None);
    no_content()
}

async fn list_user_projects(
    State(state): St,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    let site = state.site.read().unwrap();
    let u = site.user(&id).ok_or_else(|| missing(&tok, "user", &id, "list_user_projects"))?;
    enforce(
        tok.is_admin() || system_reader(&tok) || domain_reader(&tok, &u.domain_id) || tok.user_id == id,
        "list_user_projects",
    )?;
    let projects: Vec<Value> = site
        .projects
        .iter()
        .filter(|p| {
            site.assignments.iter().any(|a| a.user_id == id && a.scope == AssignmentScope::Project(p.id.clone()))
        })
        .map(|p| project_json(&state, p))
        .collect();
    json_ok(json!({"projects": projects, "links": list_links(&state, &uri)}))
}

// ---------- roles ----------

fn can_read_roles(tok: &TokenInfo) -> bool {
    tok.is_admin() || system_reader(tok) || (tok.has_role("manager") && token_domain(tok).is_some())
}

async fn list_roles(State(state): St, headers: HeaderMap, uri: OriginalUri, q: Query) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(can_read_roles(&tok), "list_roles")?;
    let site = state.site.read().unwrap();
    let roles: Vec<Value> = site
        .roles
        .iter()
        .filter(|r| q.get("name").is_none_or(|n| &r.name == n))
        .map(|r| role_json(&state, r))
        .collect();
    json_ok(json!({"roles": roles, "links": list_links(&state, &uri)}))
}

async fn get_role(State(state): St, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(can_read_roles(&tok), "get_role")?;
    let site = state.site.read().unwrap();
    let r = site.role(&id).ok_or_else(|| not_found("role", &id))?;
    json_ok(json!({"role": role_json(&state, r)}))
}

async fn create_role(State(state): St, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(tok.is_admin(), "create_role")?;
    let body = parse_body(&body)?;
    let obj = member(&body, "role")?;
    let name =
        opt_str(obj, "role", "name")?.filter(|n| !n.is_empty() && n.chars().count() <= 255).ok_or_else(|| {
            invalid("role", &Value::Object(obj.clone()), "'name' is a required property (1 to 255 characters)")
        })?;
    let mut site = state.site.write().unwrap();
    if site.roles.iter().any(|r| r.name.eq_ignore_ascii_case(&name)) {
        return Err(conflict(format!("role - Duplicate entry found with name {name}.")));
    }
    let role = Role { id: new_id(), name };
    let out = role_json(&state, &role);
    site.roles.push(role);
    Ok(created(json!({"role": out})))
}

async fn delete_role(State(state): St, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(tok.is_admin(), "delete_role")?;
    let mut site = state.site.write().unwrap();
    if site.role(&id).is_none() {
        return Err(not_found("role", &id));
    }
    site.roles.retain(|r| r.id != id);
    site.assignments.retain(|a| a.role_id != id);
    no_content()
}

// ---------- grants ----------

/// The assignment scope named by a grant path, checked to exist, and the
/// domain it lives in (for domain-scoped policy checks).
fn grant_target(site: &Site, scope: &AssignmentScope) -> ApiResult<Option<String>> {
    match scope {
        AssignmentScope::Project(p) => {
            Ok(Some(site.project(p).ok_or_else(|| not_found("project", p))?.domain_id.clone()))
        }
        AssignmentScope::Domain(d) => {
            site.domains.iter().find(|x| &x.id == d).ok_or_else(|| not_found("domain", d))?;
            Ok(Some(d.clone()))
        }
        AssignmentScope::System => Ok(None),
    }
}

fn scope_label(scope: &AssignmentScope) -> String {
    match scope {
        AssignmentScope::Project(p) => p.clone(),
        AssignmentScope::Domain(d) => d.clone(),
        AssignmentScope::System => "system".into(),
    }
}

enum GrantOp {
    Check,
    Put,
    Delete,
}

async fn grant(
    state: &AppState,
    headers: &HeaderMap,
    scope: AssignmentScope,
    user: String,
    role: String,
    op: GrantOp,
) -> ApiResult<Response> {
    let tok = auth(state, headers).await?;
    let system = scope == AssignmentScope::System;
    let rule = match (&op, system) {
        (GrantOp::Check, false) => "check_grant",
        (GrantOp::Put, false) => "create_grant",
        (GrantOp::Delete, false) => "revoke_grant",
        (GrantOp::Check, true) => "check_system_grant_for_user",
        (GrantOp::Put, true) => "create_system_grant_for_user",
        (GrantOp::Delete, true) => "revoke_system_grant_for_user",
    };
    let mut site = state.site.write().unwrap();
    let domain = grant_target(&site, &scope)?;
    let allowed = match op {
        GrantOp::Check => {
            admin_or_reader(&tok, domain.as_deref()) && (!system || tok.is_admin() || system_reader(&tok))
        }
        _ => tok.is_admin() || domain.as_deref().is_some_and(|d| domain_role(&tok, "manager", d)),
    };
    enforce(allowed, rule)?;
    site.user(&user).ok_or_else(|| not_found("user", &user))?;
    site.role(&role).ok_or_else(|| not_found("role", &role))?;
    let pos = site.assignments.iter().position(|a| a.user_id == user && a.role_id == role && a.scope == scope);
    let absent = || {
        err(
            StatusCode::NOT_FOUND,
            format!(
                "Could not find role assignment with role: {role}, user or group: {user}, project, domain, or system: {}.",
                scope_label(&scope)
            ),
        )
    };
    match op {
        GrantOp::Check => {
            pos.ok_or_else(absent)?;
        }
        GrantOp::Put => {
            if pos.is_none() {
                site.assignments.push(Assignment {
                    user_id: user.clone(),
                    role_id: role.clone(),
                    scope: scope.clone(),
                });
            }
        }
        GrantOp::Delete => {
            let i = pos.ok_or_else(absent)?;
            site.assignments.remove(i);
        }
    }
    no_content()
}

async fn list_grants(
    state: &AppState,
    headers: &HeaderMap,
    uri: &OriginalUri,
    scope: AssignmentScope,
    user: String,
) -> ApiResult<Response> {
    let tok = auth(state, headers).await?;
    let site = state.site.read().unwrap();
    let domain = grant_target(&site, &scope)?;
    let (rule, allowed) = if scope == AssignmentScope::System {
        ("list_system_grants_for_user", tok.is_admin() || system_reader(&tok))
    } else {
        ("list_grants", admin_or_reader(&tok, domain.as_deref()))
    };
    enforce(allowed, rule)?;
    site.user(&user).ok_or_else(|| not_found("user", &user))?;
    let roles: Vec<Value> = site
        .assignments
        .iter()
        .filter(|a| a.user_id == user && a.scope == scope)
        .filter_map(|a| site.role(&a.role_id))
        .map(|r| role_json(state, r))
        .collect();
    json_ok(json!({"roles": roles, "links": list_links(state, uri)}))
}

async fn list_project_grants(
    State(s): St,
    h: HeaderMap,
    uri: OriginalUri,
    Path((p, u)): Path<(String, String)>,
) -> ApiResult<Response> {
    list_grants(&s, &h, &uri, AssignmentScope::Project(p), u).await
}
async fn check_project_grant(
    State(s): St,
    h: HeaderMap,
    Path((p, u, r)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    grant(&s, &h, AssignmentScope::Project(p), u, r, GrantOp::Check).await
}
async fn put_project_grant(
    State(s): St,
    h: HeaderMap,
    Path((p, u, r)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    grant(&s, &h, AssignmentScope::Project(p), u, r, GrantOp::Put).await
}
async fn delete_project_grant(
    State(s): St,
    h: HeaderMap,
    Path((p, u, r)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    grant(&s, &h, AssignmentScope::Project(p), u, r, GrantOp::Delete).await
}
async fn list_domain_grants(
    State(s): St,
    h: HeaderMap,
    uri: OriginalUri,
    Path((d, u)): Path<(String, String)>,
) -> ApiResult<Response> {
    list_grants(&s, &h, &uri, AssignmentScope::Domain(d), u).await
}
async fn check_domain_grant(
    State(s): St,
    h: HeaderMap,
    Path((d, u, r)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    grant(&s, &h, AssignmentScope::Domain(d), u, r, GrantOp::Check).await
}
async fn put_domain_grant(
    State(s): St,
    h: HeaderMap,
    Path((d, u, r)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    grant(&s, &h, AssignmentScope::Domain(d), u, r, GrantOp::Put).await
}
async fn delete_domain_grant(
    State(s): St,
    h: HeaderMap,
    Path((d, u, r)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    grant(&s, &h, AssignmentScope::Domain(d), u, r, GrantOp::Delete).await
}
async fn list_system_grants(
    State(s): St,
    h: HeaderMap,
    uri: OriginalUri,
    Path(u): Path<String>,
) -> ApiResult<Response> {
    list_grants(&s, &h, &uri, AssignmentScope::System, u).await
}
async fn check_system_grant(State(s): St, h: HeaderMap, Path((u, r)): Path<(String, String)>) -> ApiResult<Response> {
    grant(&s, &h, AssignmentScope::System, u, r, GrantOp::Check).await
}
async fn put_system_grant(State(s): St, h: HeaderMap, Path((u, r)): Path<(String, String)>) -> ApiResult<Response> {
    grant(&s, &h, AssignmentScope::System, u, r, GrantOp::Put).await
}
async fn delete_system_grant(State(s): St, h: HeaderMap, Path((u, r)): Path<(String, String)>) -> ApiResult<Response> {
    grant(&s, &h, AssignmentScope::System, u, r, GrantOp::Delete).await
}

// ---------- role assignments ----------

fn assignment_path(scope: &AssignmentScope, user: &str, role: &str) -> String {
    match scope {
        AssignmentScope::Project(p) => format!("/projects/{p}/users/{user}/roles/{role}"),
        AssignmentScope::Domain(d) => format!("/domains/{d}/users/{user}/roles/{role}"),
        AssignmentScope::System => format!("/system/users/{user}/roles/{role}"),
    }
}

async fn list_role_assignments(
    State(state): St,
    headers: HeaderMap,
    uri: OriginalUri,
    q: Query,
) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(admin_or_reader(&tok, None), "list_role_assignments")?;
    let limit = list_domain_limit(&tok);
    let names = flag(&q, "include_names");
    let effective = flag(&q, "effective");
    let site = state.site.read().unwrap();
    let in_limit = |scope: &AssignmentScope| match (&limit, scope) {
        (None, _) => true,
        (Some(d), AssignmentScope::Domain(x)) => d == x,
        (Some(d), AssignmentScope::Project(p)) => site.project(p).is_some_and(|p| &p.domain_id == d),
        (Some(_), AssignmentScope::System) => false,
    };
    let scope_ok = |scope: &AssignmentScope| {
        q.get("scope.project.id").is_none_or(|p| scope == &AssignmentScope::Project(p.clone()))
            && q.get("scope.domain.id").is_none_or(|d| scope == &AssignmentScope::Domain(d.clone()))
            && (!q.contains_key("scope.system") || scope == &AssignmentScope::System)
    };
    // (assignment, role id, prior role id when implied)
    let mut rows: Vec<(&Assignment, String, Option<String>)> = Vec::new();
    if !q.contains_key("group.id") {
        let direct: Vec<&Assignment> = site
            .assignments
            .iter()
            .filter(|a| q.get("user.id").is_none_or(|u| &a.user_id == u))
            .filter(|a| scope_ok(&a.scope) && in_limit(&a.scope))
            .collect();
        rows.extend(direct.iter().map(|a| (*a, a.role_id.clone(), None)));
        if effective {
            for a in &direct {
                let mut queue: Vec<(String, String)> =
                    site.role(&a.role_id).map(|r| vec![(r.id.clone(), r.name.clone())]).unwrap_or_default();
                while let Some((pid, pname)) = (!queue.is_empty()).then(|| queue.remove(0)) {
                    for (cid, cname) in implied_by(&site, &pname) {
                        let seen =
                            rows.iter().any(|(b, rid, _)| b.user_id == a.user_id && b.scope == a.scope && rid == &cid);
                        if !seen {
                            rows.push((a, cid.clone(), Some(pid.clone())));
                            queue.push((cid, cname));
                        }
                    }
                }
            }
        }
    }
    let out: Vec<Value> = rows
        .into_iter()
        .filter(|(_, rid, _)| q.get("role.id").is_none_or(|r| r == rid))
        .map(|(a, rid, prior)| {
            let mut links = json!({"assignment": v3_url(&state, &assignment_path(&a.scope, &a.user_id, prior.as_deref().unwrap_or(&rid)))});
            if let Some(p) = &prior {
                links["prior_role"] = json!(v3_url(&state, &format!("/roles/{p}/implies/{rid}")));
            }
            let mut scope = match &a.scope {
                AssignmentScope::Project(p) => json!({"project": {"id": p}}),
                AssignmentScope::Domain(d) => json!({"domain": {"id": d}}),
                AssignmentScope::System => json!({"system": {"all": true}}),
            };
            let mut user = json!({"id": a.user_id});
            let mut role = json!({"id": rid});
            if names {
                if let Some(u) = site.user(&a.user_id) {
                    user["name"] = json!(u.name);
                    user["domain"] = domain_ref(&site, &u.domain_id);
                }
                if let Some(n) = site.role(&rid).map(|r| r.name.clone()).or_else(|| {
                    ["admin", "member", "reader"].iter().find(|n| stable_id(&format!("role:{n}")) == rid).map(|n| n.to_string())
                }) {
                    role["name"] = json!(n);
                }
                match &a.scope {
                    AssignmentScope::Project(p) => {
                        if let Some(p) = site.project(p) {
                            scope["project"]["name"] = json!(p.name);
                            scope["project"]["domain"] = domain_ref(&site, &p.domain_id);
                        }
                    }
                    AssignmentScope::Domain(d) => scope["domain"]["name"] = domain_ref(&site, d)["name"].clone(),
                    AssignmentScope::System => {}
                }
            }
            json!({"links": links, "scope": scope, "user": user, "role": role})
        })
        .collect();
    json_ok(json!({"role_assignments": out, "links": list_links(&state, &uri)}))
}

// ---------- domains ----------

async fn list_domains(State(state): St, headers: HeaderMap, uri: OriginalUri, q: Query) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(admin_or_reader(&tok, None), "list_domains")?;
    let limit = list_domain_limit(&tok);
    let site = state.site.read().unwrap();
    let domains: Vec<Value> = site
        .domains
        .iter()
        .filter(|d| limit.as_ref().is_none_or(|l| &d.id == l))
        .filter(|d| q.get("name").is_none_or(|n| &d.name == n))
        .filter(|d| q.get("enabled").is_none_or(|e| d.enabled == parse_bool(e)))
        .map(|d| domain_json(&state, &site, d))
        .collect();
    json_ok(json!({"domains": domains, "links": list_links(&state, &uri)}))
}

async fn get_domain(State(state): St, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    let site = state.site.read().unwrap();
    let d = site.domains.iter().find(|d| d.id == id).ok_or_else(|| missing(&tok, "domain", &id, "get_domain"))?;
    let project_domain = match &tok.scope {
        TokenScope::Project { domain_id, .. } => Some(domain_id.as_str()),
        _ => None,
    };
    enforce(
        tok.is_admin()
            || tok.is_system()
            || token_domain(&tok) == Some(id.as_str())
            || project_domain == Some(id.as_str()),
        "get_domain",
    )?;
    json_ok(json!({"domain": domain_json(&state, &site, d)}))
}

// ---------- application credentials ----------

fn app_cred_json(state: &AppState, site: &Site, ac: &ApplicationCredential) -> Value {
    let roles: Vec<Value> = ac
        .roles
        .iter()
        .filter_map(|n| role_ref(site, n))
        .map(|(id, name)| json!({"id": id, "name": name, "domain_id": null, "description": null, "options": {}}))
        .collect();
    json!({
        "id": ac.id,
        "name": ac.name,
        "description": null,
        "user_id": ac.user_id,
        "project_id": ac.project_id,
        "system": null,
        "expires_at": ac.expires_at.map(|e| e.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()),
        "unrestricted": null,
        "roles": roles,
        "links": {"self": v3_url(state, &format!("/application_credentials/{}", ac.id))},
    })
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).map(|d| d.with_timezone(&Utc)).ok().or_else(|| {
        NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
    })
}

async fn create_app_cred(
    State(state): St,
    headers: HeaderMap,
    Path(uid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(tok.user_id == uid, "create_application_credential")?;
    if tok.methods.iter().any(|m| m == "application_credential") {
        return Err(err(
            StatusCode::FORBIDDEN,
            "Using method 'application_credential' is not allowed for managing additional application credentials.",
        ));
    }
    let project_id = tok
        .project_id()
        .ok_or_else(|| bad_request("Application credentials must be created with a project-scoped token."))?
        .to_string();
    let body = parse_body(&body)?;
    let obj: &Map<String, Value> = member(&body, "application_credential")?;
    let value = Value::Object(obj.clone());
    let name = opt_str(obj, "application_credential", "name")?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid("application_credential", &value, "'name' is a required property"))?;
    let secret = opt_str(obj, "application_credential", "secret")?.unwrap_or_else(|| super::tokens::random_urlsafe(86));
    let expires_at = match opt_str(obj, "application_credential", "expires_at")? {
        Some(s) => Some(
            parse_time(&s)
                .ok_or_else(|| invalid("application_credential", &value, &format!("'{s}' is not a 'date-time'")))?,
        ),
        None => None,
    };
    // Empty or absent: the token's roles; given: those plus what they imply,
    // all of which the token must carry.
    let roles: Vec<String> = match obj.get("roles") {
        None | Some(Value::Null) => tok.roles.clone(),
        Some(Value::Array(rs)) if rs.is_empty() => tok.roles.clone(),
        Some(Value::Array(rs)) => {
            let site = state.site.read().unwrap();
            let mut ids = Vec::new();
            for r in rs {
                let role = match (r["id"].as_str(), r["name"].as_str()) {
                    (Some(id), _) => site.role(id),
                    (None, Some(n)) => site.role_by_name(n),
                    _ => None,
                };
                ids.push(
                    role.ok_or_else(|| not_found("role", r["id"].as_str().or(r["name"].as_str()).unwrap_or("")))?
                        .id
                        .clone(),
                );
            }
            let names: Vec<String> = expand_roles(&site, &ids).into_iter().map(|r| r.1).collect();
            if names.iter().any(|n| !tok.roles.contains(n)) {
                return Err(bad_request(
                    "Invalid application credential: Cannot create an application credential with unassigned role",
                ));
            }
            names
        }
        Some(v) => return Err(invalid("application_credential", v, "'roles' must be an array")),
    };
    let mut site = state.site.write().unwrap();
    if site.application_credentials.iter().any(|a| a.user_id == uid && a.name == name) {
        return Err(conflict(format!("application_credential - Duplicate entry found with name {name}.")));
    }
    let ac = ApplicationCredential {
        id: new_id(),
        name,
        secret: secret.clone(),
        user_id: uid,
        project_id,
        roles,
        expires_at,
    };
    let mut out = app_cred_json(&state, &site, &ac);
    out["description"] = obj.get("description").cloned().unwrap_or(Value::Null);
    out["unrestricted"] = obj.get("unrestricted").cloned().unwrap_or(Value::Null);
    out["secret"] = json!(secret);
    site.application_credentials.push(ac);
    Ok(created(json!({"application_credential": out})))
}

fn can_read_app_creds(tok: &TokenInfo, uid: &str) -> bool {
    tok.is_admin() || system_reader(tok) || tok.user_id == uid
}

async fn list_app_creds(
    State(state): St,
    headers: HeaderMap,
    uri: OriginalUri,
    q: Query,
    Path(uid): Path<String>,
) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(can_read_app_creds(&tok, &uid), "list_application_credentials")?;
    let site = state.site.read().unwrap();
    let acs: Vec<Value> = site
        .application_credentials
        .iter()
        .filter(|a| a.user_id == uid && q.get("name").is_none_or(|n| &a.name == n))
        .map(|a| app_cred_json(&state, &site, a))
        .collect();
    json_ok(json!({"application_credentials": acs, "links": list_links(&state, &uri)}))
}

async fn get_app_cred(
    State(state): St,
    headers: HeaderMap,
    Path((uid, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(can_read_app_creds(&tok, &uid), "get_application_credential")?;
    let site = state.site.read().unwrap();
    let ac = site
        .application_credentials
        .iter()
        .find(|a| a.id == id && a.user_id == uid)
        .ok_or_else(|| not_found("Application Credential", &id))?;
    json_ok(json!({"application_credential": app_cred_json(&state, &site, ac)}))
}

async fn delete_app_cred(
    State(state): St,
    headers: HeaderMap,
    Path((uid, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(tok.is_admin() || tok.user_id == uid, "delete_application_credential")?;
    {
        let mut site = state.site.write().unwrap();
        let before = site.application_credentials.len();
        site.application_credentials.retain(|a| !(a.id == id && a.user_id == uid));
        if site.application_credentials.len() == before {
            return Err(not_found("Application Credential", &id));
        }
    }
    super::tokens::drop_tokens(&state, None, Some(&id));
    no_content()
}
