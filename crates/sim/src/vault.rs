//! A HashiCorp Vault as EGI's central operations use it for sites whose credentials are
//! application credentials (`auth: v3applicationcredential`): JWT login with a Check-in
//! access token (`POST /v1/auth/jwt/login`, `{"role": "", "jwt": …}` → `auth.client_token`),
//! then the KV v1 secret `GET /v1/secrets/users/<sub>/cloudmon/<keystone host>/<vo>` with
//! `X-Vault-Token` (→ `{"data": {...}}`; a missing secret 404 `{"errors": []}`; another
//! user's path 403 `{"errors": ["permission denied"]}`), served under `/vault`. Only access
//! tokens the simulator's own OIDC provider issued and that have not expired log in; a client
//! token may read only `users/<its sub>/…`. The secrets come from [`crate::SimConfig::vault`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::state::AppState;

/// The Vault's secrets (path under the `secrets/` KV v1 mount → data) and the client tokens it
/// handed out (token → the JWT's `sub`).
#[derive(Debug, Default)]
pub struct VaultState {
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    pub client_tokens: HashMap<String, String>,
}

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new().route("/v1/auth/jwt/login", post(login)).route("/v1/secrets/{*path}", get(read))
}

fn errors(status: StatusCode, errors: &[&str]) -> Response {
    (status, axum::Json(json!({ "errors": errors }))).into_response()
}

async fn login(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return errors(StatusCode::BAD_REQUEST, &["failed to parse JSON input"]);
    };
    let Some(jwt) = body.get("jwt").and_then(|j| j.as_str()) else {
        return errors(StatusCode::BAD_REQUEST, &["missing token"]);
    };
    let Some((sub, exp)) = crate::keystone::access_token_subject(jwt) else {
        return errors(StatusCode::BAD_REQUEST, &["error validating token: invalid signature"]);
    };
    if exp <= chrono::Utc::now().timestamp() {
        return errors(StatusCode::BAD_REQUEST, &["error validating claims: token is expired"]);
    }
    let token = format!("hvs.{}", uuid::Uuid::new_v4().simple());
    state_of(&state).write().unwrap().client_tokens.insert(token.clone(), sub.clone());
    axum::Json(json!({
        "auth": {"client_token": token, "accessor": uuid::Uuid::new_v4().to_string(), "policies": ["default"],
                 "metadata": {"role": "", "sub": sub}, "lease_duration": 3600, "renewable": true},
    }))
    .into_response()
}

async fn read(State(state): State<Arc<AppState>>, Path(path): Path<String>, headers: HeaderMap) -> Response {
    let vault = state_of(&state);
    let vault = vault.read().unwrap();
    let sub = headers.get("x-vault-token").and_then(|t| t.to_str().ok()).and_then(|t| vault.client_tokens.get(t));
    let Some(sub) = sub else {
        return errors(StatusCode::FORBIDDEN, &["permission denied"]);
    };
    if !path.starts_with(&format!("users/{sub}/")) {
        return errors(StatusCode::FORBIDDEN, &["permission denied"]);
    }
    match vault.secrets.get(&path) {
        Some(data) => axum::Json(json!({"request_id": uuid::Uuid::new_v4().to_string(), "lease_id": "", "renewable": false,
                                        "lease_duration": 2764800, "data": data, "wrap_info": null, "warnings": null, "auth": null}))
        .into_response(),
        None => errors(StatusCode::NOT_FOUND, &[]),
    }
}

fn state_of(state: &AppState) -> &RwLock<VaultState> {
    &state.vault
}
