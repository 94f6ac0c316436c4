//! Federated login with OpenID Connect, as a Keystone behind Apache
//! `mod_auth_openidc` does it for EGI Check-in: a small OIDC provider of the
//! simulator's own (discovery document, a `client_credentials` token endpoint
//! answering RS256 JWTs as EGI Check-in does — `kid` in the header, `iss`, `sub`,
//! `aud`, `iat`, `exp`, `eduperson_entitlement` — and their JWKS; the signing key is a
//! fixed test key, `oidc-signing-key.pem`) and
//! `OS-FEDERATION/identity_providers/{idp}/protocols/{proto}/auth`,
//! which takes the Bearer access token, checks the IdP's `remote_ids` against
//! the issuer, runs the protocol's mapping over the claims (`OIDC-sub`,
//! `OIDC-iss`, `OIDC-eduperson_entitlement`, …) and answers an unscoped token.
//! Mapping subset: remote `type` with `any_one_of` / `not_any_of` / `regex`,
//! direct maps `{0}`…; local `user` (ephemeral, shadowed in the IdP's domain,
//! or `type: local`) and `projects` with roles (auto-provisioned grants on
//! existing projects). Groups are not modelled: group-only rules grant nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::{SubsecRound, Utc};
use serde_json::{Value, json};

use super::*;

/// The simulator's OIDC client for `client_credentials` (client id, secret).
pub const CLIENT_ID: &str = "fedsite-sim";
pub const CLIENT_SECRET: &str = "secret";

/// Claims of the access tokens issued, by token (every sim in the process).
static ACCESS_TOKENS: LazyLock<Mutex<HashMap<String, Claims>>> = LazyLock::new(Default::default);

/// The RSA key the access tokens are signed with (a fixed test key) and its JWK.
const SIGNING_KEY_PEM: &str = include_str!("oidc-signing-key.pem");
const SIGNING_KEY_ID: &str = "fedsite-sim-1";
const SIGNING_KEY_N: &str = "iRtNKhxoRI4qGdas0fLokYHqLDjQw-hPF3Thw1fg0tVNB6ApTPP-NRCCfuJzEMWNRWlKv785Cp5mqiEvtv5xYhSkRQRGpnndRGqL243rU-9SWaIo5QL_Ojy-EsthqLBCvFtT-pYocsr7HGUHreiYpnzrQ5sQsLD4zrG_e1UhHiJ-wpadCF2sMQc30kP1-UFUEM4z0mAtMpPSBw8YuQikm-ETJEeTvTqFgUz4Ebju_aVGb_fG6KIQf1Hz47euTOSeelinlDImXhpnYWI2C20-VNP2XMSxpWlCE2tcWaG6RsUuobaOjSNo-PmmHXO76x5q9Dv2tmC_zI6Cv3cT9aFU4Q";
const SIGNING_KEY_E: &str = "AQAB";

/// Lifetime of the access tokens issued, seconds (Check-in's are one hour).
pub const ACCESS_TOKEN_LIFETIME: i64 = 3600;

#[derive(Debug, Clone)]
struct Claims {
    iss: String,
    sub: String,
    entitlements: Vec<String>,
    exp: i64,
}

/// The subject and expiry (Unix time) of an access token this provider issued, if any (for
/// the simulated Vault's JWT login).
pub(crate) fn access_token_subject(token: &str) -> Option<(String, i64)> {
    ACCESS_TOKENS.lock().unwrap().get(token).map(|c| (c.sub.clone(), c.exp))
}

pub(super) fn routes() -> Router<std::sync::Arc<AppState>> {
    Router::new()
        .route("/oidc/.well-known/openid-configuration", get(discovery))
        .route("/oidc/token", post(token))
        .route("/oidc/jwks", get(jwks))
        .route(
            "/v3/OS-FEDERATION/identity_providers/{idp}/protocols/{proto}/auth",
            get(federated_auth).post(federated_auth),
        )
}

fn issuer(state: &AppState) -> String {
    format!("{}/identity/oidc", state.base_url)
}

async fn discovery(State(state): St) -> Response {
    let iss = issuer(&state);
    axum::Json(json!({
        "issuer": iss,
        "token_endpoint": format!("{iss}/token"),
        "jwks_uri": format!("{iss}/jwks"),
        "id_token_signing_alg_values_supported": ["RS256"],
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "claims_supported": ["sub", "iss", "eduperson_entitlement"],
    }))
    .into_response()
}

async fn jwks() -> Response {
    axum::Json(json!({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": SIGNING_KEY_ID, "n": SIGNING_KEY_N, "e": SIGNING_KEY_E}]})).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, axum::Json(json!({"error": error, "error_description": description}))).into_response()
}

/// `POST /oidc/token`: `grant_type=client_credentials`, client authenticated
/// by HTTP Basic or form fields. The client's entitlements: membership of
/// every VO a project of the site carries.
async fn token(State(state): St, headers: HeaderMap, body: Bytes) -> Response {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only client_credentials is supported");
    }
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(i, p)| (decode(i), decode(p))));
    let (id, secret) = match (basic, form.get("client_id"), form.get("client_secret")) {
        (Some(b), _, _) => b,
        (None, Some(i), Some(s)) => (i.clone(), s.clone()),
        _ => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication is required"),
    };
    if id != CLIENT_ID || secret != CLIENT_SECRET {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client or wrong secret");
    }
    let entitlements = {
        let site = state.site.read().unwrap();
        let mut vos: Vec<String> = site
            .projects
            .iter()
            .filter_map(|p| {
                ["egi.VO", "egi.eu:VO", "VO"].iter().find_map(|k| p.extra.get(*k)?.as_str().map(str::to_string))
            })
            .collect();
        vos.sort();
        vos.dedup();
        vos.into_iter().map(|vo| format!("urn:mace:egi.eu:group:{vo}:role=member#aai.egi.eu")).collect()
    };
    let iat = Utc::now().timestamp();
    let claims =
        Claims { iss: issuer(&state), sub: format!("{CLIENT_ID}@sim"), entitlements, exp: iat + ACCESS_TOKEN_LIFETIME };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(SIGNING_KEY_ID.into());
    let payload = json!({
        "iss": claims.iss, "sub": claims.sub, "aud": CLIENT_ID, "iat": iat, "exp": claims.exp,
        "jti": tokens::random_urlsafe(16), "eduperson_entitlement": claims.entitlements,
        "scope": form.get("scope").cloned().unwrap_or_else(|| "openid".into()),
    });
    let access_token = match jsonwebtoken::EncodingKey::from_rsa_pem(SIGNING_KEY_PEM.as_bytes())
        .and_then(|key| jsonwebtoken::encode(&header, &payload, &key))
    {
        Ok(t) => t,
        Err(e) => {
            return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &format!("signing the token: {e}"));
        }
    };
    ACCESS_TOKENS.lock().unwrap().insert(access_token.clone(), claims);
    axum::Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_LIFETIME,
        "scope": form.get("scope").cloned().unwrap_or_else(|| "openid".into()),
    }))
    .into_response()
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(s.as_bytes()).map(|(k, v)| format!("{k}{v}")).collect()
}

/// `{GET,POST} /v3/OS-FEDERATION/identity_providers/{idp}/protocols/{proto}/auth`.
async fn federated_auth(
    State(state): St,
    Path((idp_id, proto_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(unauthorized)?;
    let claims = ACCESS_TOKENS.lock().unwrap().get(bearer).cloned().ok_or_else(unauthorized)?;
    if claims.exp <= Utc::now().timestamp() {
        return Err(unauthorized());
    }
    let now = state.clock.token_now().trunc_subsecs(0);
    let info = {
        let mut site = state.site.write().unwrap();
        let idp = site
            .identity_providers
            .iter()
            .find(|i| i["id"] == idp_id.as_str())
            .cloned()
            .ok_or_else(|| not_found("identity provider", &idp_id))?;
        if idp["enabled"] == false {
            return Err(err(StatusCode::FORBIDDEN, format!("Identity Provider {idp_id} is disabled")));
        }
        let remote_ids: Vec<&str> =
            idp["remote_ids"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        if !remote_ids.contains(&claims.iss.as_str()) {
            return Err(err(
                StatusCode::UNAUTHORIZED,
                format!("The issuer {} is not a remote id of identity provider {idp_id}.", claims.iss),
            ));
        }
        let protocol = site
            .protocols
            .iter()
            .find(|(i, p)| *i == idp_id && p["id"] == proto_id.as_str())
            .map(|(_, p)| p.clone())
            .ok_or_else(|| not_found("federated protocol", &proto_id))?;
        let mapping_id = protocol["mapping_id"].as_str().unwrap_or_default().to_string();
        let rules = site
            .mappings
            .iter()
            .find(|m| m["id"] == mapping_id.as_str())
            .map(|m| m["rules"].clone())
            .ok_or_else(|| not_found("mapping", &mapping_id))?;
        let assertion = BTreeMap::from([
            ("OIDC-sub".to_string(), vec![claims.sub.clone()]),
            ("OIDC-iss".to_string(), vec![claims.iss.clone()]),
            ("OIDC-eduperson_entitlement".to_string(), claims.entitlements.clone()),
        ]);
        let mapped = apply_rules(&rules, &assertion);
        let name = mapped.user.ok_or_else(|| err(StatusCode::UNAUTHORIZED, "Could not map any identity to a user."))?;
        let domain_id = idp["domain_id"]
            .as_str()
            .filter(|d| site.domains.iter().any(|x| x.id == *d))
            .unwrap_or("default")
            .to_string();
        let user_id = match site.users.iter().find(|u| u.name == name && u.domain_id == domain_id) {
            Some(u) => u.id.clone(),
            None if mapped.local => {
                return Err(err(StatusCode::UNAUTHORIZED, format!("Could not find local user {name}.")));
            }
            None => {
                let id = stable_id(&format!("{idp_id}/{name}"));
                site.users.push(User {
                    id: id.clone(),
                    name: name.clone(),
                    domain_id: domain_id.clone(),
                    password: new_id(),
                    enabled: true,
                    email: None,
                });
                id
            }
        };
        for (project, roles) in &mapped.projects {
            let Some(pid) = site.projects.iter().find(|p| &p.name == project).map(|p| p.id.clone()) else { continue };
            for role in roles {
                let Some(rid) = site.roles.iter().find(|r| &r.name == role).map(|r| r.id.clone()) else { continue };
                let exists = site.assignments.iter().any(|a| {
                    a.user_id == user_id
                        && a.role_id == rid
                        && matches!(&a.scope, crate::model::AssignmentScope::Project(p) if *p == pid)
                });
                if !exists {
                    site.assignments.push(crate::model::Assignment {
                        user_id: user_id.clone(),
                        role_id: rid,
                        scope: crate::model::AssignmentScope::Project(pid.clone()),
                    });
                }
            }
        }
        TokenInfo {
            user_id,
            user_name: name,
            user_domain_id: domain_id,
            scope: TokenScope::Unscoped,
            roles: Vec::new(),
            methods: vec![proto_id.clone()],
            issued_at: now,
            expires_at: now + chrono::Duration::hours(1),
        }
    };
    Ok(tokens::mint(&state, info))
}

/// What the mapping rules produced.
#[derive(Debug, Default)]
struct Mapped {
    user: Option<String>,
    /// `type: local`: an existing user, not a shadow.
    local: bool,
    projects: Vec<(String, Vec<String>)>,
}

/// Keystone's mapping engine, the subset described in the module doc: every
/// rule whose remote conditions all hold contributes its locals.
fn apply_rules(rules: &Value, assertion: &BTreeMap<String, Vec<String>>) -> Mapped {
    let mut out = Mapped::default();
    for rule in rules.as_array().into_iter().flatten() {
        let mut direct: Vec<String> = Vec::new();
        let mut matched = true;
        for cond in rule["remote"].as_array().into_iter().flatten() {
            let Some(values) = cond["type"].as_str().and_then(|t| assertion.get(t)) else {
                matched = false;
                break;
            };
            let regex = cond["regex"].as_bool().unwrap_or(false);
            let hit = |pattern: &str, v: &str| if regex { simple_regex(pattern, v) } else { pattern == v };
            if let Some(any) = cond["any_one_of"].as_array() {
                if !values.iter().any(|v| any.iter().filter_map(Value::as_str).any(|p| hit(p, v))) {
                    matched = false;
                    break;
                }
            } else if let Some(none) = cond["not_any_of"].as_array() {
                if values.iter().any(|v| none.iter().filter_map(Value::as_str).any(|p| hit(p, v))) {
                    matched = false;
                    break;
                }
            } else {
                direct.push(values.join(";"));
            }
        }
        if !matched {
            continue;
        }
        let fill = |s: &str| {
            let mut s = s.to_string();
            for (i, v) in direct.iter().enumerate() {
                s = s.replace(&format!("{{{i}}}"), v);
            }
            s
        };
        for local in rule["local"].as_array().into_iter().flatten() {
            if let Some(name) = local["user"]["name"].as_str() {
                out.user = Some(fill(name));
                out.local = local["user"]["type"] == "local";
            }
            for p in local["projects"].as_array().into_iter().flatten() {
                let roles = p["roles"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["name"].as_str().map(String::from))
                    .collect();
                if let Some(name) = p["name"].as_str() {
                    out.projects.push((fill(name), roles));
                }
            }
        }
    }
    out
}

/// `.*` wildcards and literal text only — enough for entitlement patterns.
fn simple_regex(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.trim_start_matches('^').trim_end_matches('$').split(".*").collect();
    let mut rest = value;
    for (i, part) in parts.iter().enumerate() {
        let part = part.replace('\\', "");
        if i == 0 && !rest.starts_with(&part) && !pattern.starts_with(".*") {
            return false;
        }
        match rest.find(&part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    pattern.ends_with(".*") || rest.is_empty()
}
