//! Token checks shared by every simulated service.
//!
//! Services accept only tokens the simulator's Keystone issued, or, in
//! hybrid mode, tokens a real Keystone validates (`GET /v3/auth/tokens`).
//! Also owns the small policy helpers the services share.

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Service, TokenInfo, TokenScope};

/// The token carried by a request, validated.
pub async fn authenticate(state: &AppState, service: Service, headers: &HeaderMap) -> ApiResult<TokenInfo> {
    let token =
        headers.get("x-auth-token").and_then(|v| v.to_str().ok()).ok_or_else(|| ApiError::unauthorized(service))?;
    validate(state, service, token).await
}

/// Validates a token string.
pub async fn validate(state: &AppState, service: Service, token: &str) -> ApiResult<TokenInfo> {
    if let Some(ext) = &state.external_keystone {
        if let Some(info) = state.external_cache.read().unwrap().get(token).cloned()
            && info.expires_at > state.clock.token_now()
        {
            return Ok(info);
        }
        let info = validate_external(state, ext, service, token).await?;
        state.external_cache.write().unwrap().insert(token.to_string(), info.clone());
        return Ok(info);
    }
    let info = state.tokens.read().unwrap().get(token).cloned().ok_or_else(|| ApiError::unauthorized(service))?;
    if info.expires_at <= state.clock.token_now() {
        return Err(ApiError::unauthorized(service));
    }
    Ok(info)
}

async fn validate_external(
    state: &AppState,
    ext: &crate::state::ExternalKeystone,
    service: Service,
    token: &str,
) -> ApiResult<TokenInfo> {
    let url = format!("{}/auth/tokens", ext.auth_url.trim_end_matches('/'));
    let resp = state
        .http
        .get(&url)
        .header("X-Auth-Token", &ext.service_token)
        .header("X-Subject-Token", token)
        .send()
        .await
        .map_err(|e| {
            ApiError::new(
                service,
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot reach the external Keystone at {url}: {e}"),
            )
        })?;
    if !resp.status().is_success() {
        return Err(ApiError::unauthorized(service));
    }
    let body: Value = resp.json().await.map_err(|_| ApiError::unauthorized(service))?;
    token_info_from_keystone(&body["token"]).ok_or_else(|| ApiError::unauthorized(service))
}

/// Reads a Keystone v3 token body into a `TokenInfo`.
pub fn token_info_from_keystone(t: &Value) -> Option<TokenInfo> {
    let user = &t["user"];
    let scope = if let Some(p) = t.get("project") {
        TokenScope::Project {
            id: p["id"].as_str()?.to_string(),
            name: p["name"].as_str().unwrap_or_default().to_string(),
            domain_id: p["domain"]["id"].as_str().unwrap_or("default").to_string(),
        }
    } else if t.get("system").is_some() {
        TokenScope::System
    } else if let Some(d) = t.get("domain") {
        TokenScope::Domain {
            id: d["id"].as_str()?.to_string(),
            name: d["name"].as_str().unwrap_or_default().to_string(),
        }
    } else {
        TokenScope::Unscoped
    };
    let parse =
        |k: &str| t[k].as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|d| d.with_timezone(&Utc));
    Some(TokenInfo {
        user_id: user["id"].as_str()?.to_string(),
        user_name: user["name"].as_str().unwrap_or_default().to_string(),
        user_domain_id: user["domain"]["id"].as_str().unwrap_or("default").to_string(),
        scope,
        roles: t["roles"]
            .as_array()
            .map(|r| r.iter().filter_map(|x| x["name"].as_str().map(String::from)).collect())
            .unwrap_or_default(),
        methods: t["methods"]
            .as_array()
            .map(|m| m.iter().filter_map(|x| x.as_str().map(String::from)).collect())
            .unwrap_or_default(),
        issued_at: parse("issued_at").unwrap_or_else(Utc::now),
        expires_at: parse("expires_at").unwrap_or_else(|| Utc::now() + chrono::Duration::hours(1)),
    })
}

/// Whether `token` may act on resources of `project_id` as a project member
/// would: scoped to that project, or an admin.
pub fn can_access_project(token: &TokenInfo, project_id: &str) -> bool {
    token.is_admin() || token.project_id() == Some(project_id)
}

/// Whether the token may use `all_tenants`/`all_projects` (Nova, Cinder,
/// Neutron: admin role; system-scoped readers may list too, as under the new
/// default policies).
pub fn can_list_all_projects(token: &TokenInfo) -> bool {
    token.is_admin() || (token.is_system() && token.has_role("reader"))
}
