//! OS-FEDERATION: identity providers, mappings and protocols, stored as JSON
//! values in `Site::{identity_providers, mappings, protocols}`, validated as
//! Keystone's JSON schemas do (400 naming the field, 409 on duplicates).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::*;

const F: &str = "/v3/OS-FEDERATION";

pub(super) fn routes() -> Router<std::sync::Arc<AppState>> {
    Router::new()
        .route(&format!("{F}/identity_providers"), get(list_idps))
        .route(
            &format!("{F}/identity_providers/{{idp}}"),
            get(get_idp).put(create_idp).patch(update_idp).delete(delete_idp),
        )
        .route(&format!("{F}/identity_providers/{{idp}}/protocols"), get(list_protocols))
        .route(
            &format!("{F}/identity_providers/{{idp}}/protocols/{{proto}}"),
            get(get_protocol).put(create_protocol).patch(update_protocol).delete(delete_protocol),
        )
        .route(&format!("{F}/mappings"), get(list_mappings))
        .route(
            &format!("{F}/mappings/{{id}}"),
            get(get_mapping).put(create_mapping).patch(update_mapping).delete(delete_mapping),
        )
}

fn reader(tok: &TokenInfo) -> bool {
    tok.is_admin() || system_reader(tok)
}

/// Checks the keys and types of a request object against `allowed`
/// (key, JSON type names accepted).
fn check_fields(entity: &str, obj: &Map<String, Value>, allowed: &[(&str, &[&str])]) -> ApiResult<()> {
    let value = Value::Object(obj.clone());
    for (k, v) in obj {
        let Some((_, types)) = allowed.iter().find(|(a, _)| a == k) else {
            return Err(bad_request(format!(
                "Invalid input for field/attribute {entity}. Value: {value}. Additional properties are not allowed ('{k}' was unexpected)"
            )));
        };
        let kind = match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.as_u64().is_some() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        if !types.contains(&kind) {
            return Err(bad_request(format!(
                "Invalid input for field/attribute {k}. Value: {v}. {v} is not of type {}",
                types.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ")
            )));
        }
        if kind == "array" && v.as_array().is_some_and(|a| a.iter().any(|x| !x.is_string())) {
            return Err(bad_request(format!(
                "Invalid input for field/attribute {k}. Value: {v}. Items must be strings"
            )));
        }
    }
    Ok(())
}

// ---------- identity providers ----------

/// An identity provider as Keystone 30 renders it: only the list adds the
/// `protocols` link (its single-resource answers carry `self` only).
fn idp_json(state: &AppState, idp: &Value, in_list: bool) -> Value {
    let id = idp["id"].as_str().unwrap_or_default();
    let mut v = idp.clone();
    v["links"] = json!({"self": v3_url(state, &format!("/OS-FEDERATION/identity_providers/{id}"))});
    if in_list {
        v["links"]["protocols"] = json!(v3_url(state, &format!("/OS-FEDERATION/identity_providers/{id}/protocols")));
    }
    v
}

const IDP_UPDATE: [(&str, &[&str]); 4] = [
    ("enabled", &["boolean"]),
    ("description", &["string", "null"]),
    ("remote_ids", &["array", "null"]),
    ("authorization_ttl", &["integer", "null"]),
];

/// 409 when another identity provider already has one of `remote_ids`.
fn check_remote_ids(site: &Site, idp: &str, obj: &Map<String, Value>) -> ApiResult<()> {
    for rid in obj.get("remote_ids").and_then(Value::as_array).into_iter().flatten() {
        let taken = site
            .identity_providers
            .iter()
            .any(|i| i["id"] != json!(idp) && i["remote_ids"].as_array().is_some_and(|r| r.contains(rid)));
        if taken {
            return Err(conflict(format!("identity_provider - Duplicate remote ID: {}.", rid.as_str().unwrap_or(""))));
        }
    }
    Ok(())
}

async fn list_idps(State(state): St, headers: HeaderMap, uri: OriginalUri, q: Query) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(reader(&tok), "list_identity_providers")?;
    let site = state.site.read().unwrap();
    let idps: Vec<Value> = site
        .identity_providers
        .iter()
        .filter(|i| q.get("id").is_none_or(|x| i["id"] == json!(x)))
        .filter(|i| q.get("enabled").is_none_or(|e| i["enabled"] == json!(parse_bool(e))))
        .map(|i| idp_json(&state, i, true))
        .collect();
    Ok(axum::Json(json!({"identity_providers": idps, "links": list_links(&state, &uri)})).into_response())
}

async fn get_idp(State(state): St, headers: HeaderMap, Path(idp): Path<String>) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(reader(&tok), "get_identity_provider")?;
    let site = state.site.read().unwrap();
    let i = site
        .identity_providers
        .iter()
        .find(|i| i["id"] == json!(idp))
        .ok_or_else(|| not_found("Identity Provider", &idp))?;
    Ok(axum::Json(json!({"identity_provider": idp_json(&state, i, false)})).into_response())
}

async fn create_idp(State(state): St, headers: HeaderMap, Path(idp): Path<String>, body: Bytes) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(tok.is_admin(), "create_identity_provider")?;
    let body = parse_body(&body)?;
    let obj = member(&body, "identity_provider")?;
    let mut allowed = IDP_UPDATE.to_vec();
    allowed.push(("domain_id", &["string", "null"]));
    check_fields("identity_provider", obj, &allowed)?;
    let mut site = state.site.write().unwrap();
    if site.identity_providers.iter().any(|i| i["id"] == json!(idp)) {
        return Err(conflict(format!("identity_provider - Duplicate entry found with ID {idp}.")));
    }
    check_remote_ids(&site, &idp, obj)?;
    let domain_id = match obj.get("domain_id").and_then(Value::as_str) {
        Some(d) => {
            site.domains.iter().find(|x| x.id == d).ok_or_else(|| not_found("domain", d))?;
            d.to_string()
        }
        None => {
            // Keystone creates a domain named after its own id for the IdP.
            let id = new_id();
            site.domains.push(Domain { id: id.clone(), name: id.clone(), enabled: true });
            id
        }
    };
    let stored = json!({
        "id": idp,
        "domain_id": domain_id,
        "enabled": obj.get("enabled").cloned().unwrap_or(json!(false)),
        "description": obj.get("description").cloned().unwrap_or(Value::Null),
        "remote_ids": obj.get("remote_ids").filter(|r| !r.is_null()).cloned().unwrap_or(json!([])),
        "authorization_ttl": obj.get("authorization_ttl").cloned().unwrap_or(Value::Null),
    });
    let out = idp_json(&state, &stored, false);
    site.identity_providers.push(stored);
    Ok(created(json!({"identity_provider": out})))
}

async fn update_idp(State(state): St, headers: HeaderMap, Path(idp): Path<String>, body: Bytes) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(tok.is_admin(), "update_identity_provider")?;
    let body = parse_body(&body)?;
    let obj = member(&body, "identity_provider")?;
    check_fields("identity_provider", obj, &IDP_UPDATE)?;
    let mut site = state.site.write().unwrap();
    check_remote_ids(&site, &idp, obj)?;
    let i = site
        .identity_providers
        .iter_mut()
        .find(|i| i["id"] == json!(idp))
        .ok_or_else(|| not_found("Identity Provider", &idp))?;
    for (k, v) in obj {
        i[k] = if k == "remote_ids" && v.is_null() { json!([]) } else { v.clone() };
    }
    let out = idp_json(&state, i, false);
    Ok(axum::Json(json!({"identity_provider": out})).into_response())
}

async fn delete_idp(State(state): St, headers: HeaderMap, Path(idp): Path<String>) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(tok.is_admin(), "delete_identity_provider")?;
    let mut site = state.site.write().unwrap();
    let before = site.identity_providers.len();
    site.identity_providers.retain(|i| i["id"] != json!(idp));
    if site.identity_providers.len() == before {
        return Err(not_found("Identity Provider", &idp));
    }
    site.protocols.retain(|(i, _)| i != &idp);
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

// ---------- mappings ----------

fn mapping_json(state: &AppState, m: &Value) -> Value {
    let mut v = m.clone();
    v["links"] =
        json!({"self": v3_url(state, &format!("/OS-FEDERATION/mappings/{}", m["id"].as_str().unwrap_or_default()))});
    v
}

/// Validates a mapping body: non-empty `rules`, each with `local` and
/// `remote` arrays (remote non-empty); schema_version 1.0 (default), 2.0, 3.0.
fn check_mapping(obj: &Map<String, Value>) -> ApiResult<(Value, String)> {
    // Keystone's mapping schema allows other top-level keys (clients send `id`).
    let rules = obj.get("rules").ok_or_else(|| bad_request("'rules' is a required property\n"))?;
    let list = rules.as_array().ok_or_else(|| bad_request(format!("{rules} is not of type 'array'\n")))?;
    if list.is_empty() {
        return Err(bad_request("[] should be non-empty\n"));
    }
    for r in list {
        let r = r.as_object().ok_or_else(|| bad_request(format!("{r} is not of type 'object'\n")))?;
        for key in ["local", "remote"] {
            let v = r.get(key).ok_or_else(|| bad_request(format!("'{key}' is a required property\n")))?;
            let a = v.as_array().ok_or_else(|| bad_request(format!("{v} is not of type 'array'\n")))?;
            if key == "remote" && a.is_empty() {
                return Err(bad_request("[] should be non-empty\n"));
            }
        }
    }
    let version = match obj.get("schema_version") {
        None | Some(Value::Null) => "1.0".to_string(),
        Some(Value::String(s)) if ["1.0", "2.0", "3.0"].contains(&s.as_str()) => s.clone(),
        Some(v) => {
            return Err(bad_request(format!("Invalid schema_version {v}: expected \"1.0\", \"2.0\" or \"3.0\"")));
        }
    };
    Ok((rules.clone(), version))
}

async fn list_mappings(State(state): St, headers: HeaderMap, uri: OriginalUri) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(reader(&tok), "list_mappings")?;
    let site = state.site.read().unwrap();
    let ms: Vec<Value> = site.mappings.iter().map(|m| mapping_json(&state, m)).collect();
    Ok(axum::Json(json!({"mappings": ms, "links": list_links(&state, &uri)})).into_response())
}

async fn get_mapping(State(state): St, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(reader(&tok), "get_mapping")?;
    let site = state.site.read().unwrap();
    let m = site.mappings.iter().find(|m| m["id"] == json!(id)).ok_or_else(|| not_found("mapping", &id))?;
    Ok(axum::Json(json!({"mapping": mapping_json(&state, m)})).into_response())
}

async fn create_mapping(
    State(state): St,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(tok.is_admin(), "create_mapping")?;
    let body = parse_body(&body)?;
    let (rules, version) = check_mapping(member(&body, "mapping")?)?;
    let mut site = state.site.write().unwrap();
    if site.mappings.iter().any(|m| m["id"] == json!(id)) {
        return Err(conflict(format!("mapping - Duplicate entry found with ID {id}.")));
    }
    let stored = json!({"id": id, "rules": rules, "schema_version": version});
    let out = mapping_json(&state, &stored);
    site.mappings.push(stored);
    Ok(created(json!({"mapping": out})))
}

async fn update_mapping(
    State(state): St,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(tok.is_admin(), "update_mapping")?;
    let body = parse_body(&body)?;
    let obj = member(&body, "mapping")?;
    let (rules, version) = check_mapping(obj)?;
    let mut site = state.site.write().unwrap();
    let m = site.mappings.iter_mut().find(|m| m["id"] == json!(id)).ok_or_else(|| not_found("mapping", &id))?;
    m["rules"] = rules;
    if obj.contains_key("schema_version") {
        m["schema_version"] = json!(version);
    }
    let out = mapping_json(&state, m);
    Ok(axum::Json(json!({"mapping": out})).into_response())
}

async fn delete_mapping(State(state): St, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(tok.is_admin(), "delete_mapping")?;
    let mut site = state.site.write().unwrap();
    let before = site.mappings.len();
    site.mappings.retain(|m| m["id"] != json!(id));
    if site.mappings.len() == before {
        return Err(not_found("mapping", &id));
    }
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

// ---------- protocols ----------

fn protocol_json(state: &AppState, idp: &str, p: &Value, with_idp: bool) -> Value {
    let id = p["id"].as_str().unwrap_or_default();
    let mut v = json!({"id": id, "mapping_id": p["mapping_id"]});
    if with_idp {
        v["idp_id"] = json!(idp);
    }
    if let Some(r) = p.get("remote_id_attribute").filter(|r| !r.is_null()) {
        v["remote_id_attribute"] = r.clone();
    }
    v["links"] = json!({
        "self": v3_url(state, &format!("/OS-FEDERATION/identity_providers/{idp}/protocols/{id}")),
        "identity_provider": v3_url(state, &format!("/OS-FEDERATION/identity_providers/{idp}")),
    });
    v
}

const PROTOCOL_FIELDS: [(&str, &[&str]); 2] =
    [("mapping_id", &["string"]), ("remote_id_attribute", &["string", "null"])];

/// Validates a protocol body (`mapping_id` required on create and update,
/// as in Keystone's schemas).
fn check_protocol(site: &Site, idp: &str, obj: &Map<String, Value>) -> ApiResult<()> {
    check_fields("protocol", obj, &PROTOCOL_FIELDS)?;
    if !site.identity_providers.iter().any(|i| i["id"] == json!(idp)) {
        return Err(not_found("Identity Provider", idp));
    }
    match obj.get("mapping_id").and_then(Value::as_str) {
        Some(m) if !site.mappings.iter().any(|x| x["id"] == json!(m)) => {
            Err(bad_request(format!("Invalid mapping id: {m}")))
        }
        None => Err(bad_request(format!(
            "Invalid input for field/attribute protocol. Value: {}. 'mapping_id' is a required property",
            Value::Object(obj.clone())
        ))),
        _ => Ok(()),
    }
}

async fn list_protocols(
    State(state): St,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(idp): Path<String>,
) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(reader(&tok), "list_protocols")?;
    let site = state.site.read().unwrap();
    if !site.identity_providers.iter().any(|i| i["id"] == json!(idp)) {
        return Err(not_found("Identity Provider", &idp));
    }
    let ps: Vec<Value> =
        site.protocols.iter().filter(|(i, _)| i == &idp).map(|(i, p)| protocol_json(&state, i, p, true)).collect();
    Ok(axum::Json(json!({"protocols": ps, "links": list_links(&state, &uri)})).into_response())
}

fn protocol_missing(idp: &str, proto: &str) -> ApiError {
    err(
        axum::http::StatusCode::NOT_FOUND,
        format!("Could not find federated protocol {proto} for Identity Provider: {idp}."),
    )
}

async fn get_protocol(
    State(state): St,
    headers: HeaderMap,
    Path((idp, proto)): Path<(String, String)>,
) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(reader(&tok), "get_protocol")?;
    let site = state.site.read().unwrap();
    let (_, p) = site
        .protocols
        .iter()
        .find(|(i, p)| i == &idp && p["id"] == json!(proto))
        .ok_or_else(|| protocol_missing(&idp, &proto))?;
    Ok(axum::Json(json!({"protocol": protocol_json(&state, &idp, p, false)})).into_response())
}

async fn create_protocol(
    State(state): St,
    headers: HeaderMap,
    Path((idp, proto)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(tok.is_admin(), "create_protocol")?;
    let body = parse_body(&body)?;
    let obj = member(&body, "protocol")?;
    let mut site = state.site.write().unwrap();
    check_protocol(&site, &idp, obj)?;
    if site.protocols.iter().any(|(i, p)| i == &idp && p["id"] == json!(proto)) {
        return Err(conflict(format!("federation_protocol - Duplicate entry found with ID {proto}.")));
    }
    let stored = json!({
        "id": proto,
        "mapping_id": obj["mapping_id"],
        "remote_id_attribute": obj.get("remote_id_attribute").cloned().unwrap_or(Value::Null),
    });
    let out = protocol_json(&state, &idp, &stored, false);
    site.protocols.push((idp, stored));
    Ok(created(json!({"protocol": out})))
}

async fn update_protocol(
    State(state): St,
    headers: HeaderMap,
    Path((idp, proto)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(tok.is_admin(), "update_protocol")?;
    let body = parse_body(&body)?;
    let obj = member(&body, "protocol")?;
    let mut site = state.site.write().unwrap();
    check_protocol(&site, &idp, obj)?;
    let (_, p) = site
        .protocols
        .iter_mut()
        .find(|(i, p)| i == &idp && p["id"] == json!(proto))
        .ok_or_else(|| protocol_missing(&idp, &proto))?;
    for (k, v) in obj {
        p[k] = v.clone();
    }
    let out = protocol_json(&state, &idp, p, false);
    Ok(axum::Json(json!({"protocol": out})).into_response())
}

async fn delete_protocol(
    State(state): St,
    headers: HeaderMap,
    Path((idp, proto)): Path<(String, String)>,
) -> ApiResult<Response> {
    let tok = auth(&state, &headers).await?;
    enforce(tok.is_admin(), "delete_protocol")?;
    let mut site = state.site.write().unwrap();
    let before = site.protocols.len();
    site.protocols.retain(|(i, p)| !(i == &idp && p["id"] == json!(proto)));
    if site.protocols.len() == before {
        return Err(protocol_missing(&idp, &proto));
    }
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}
