//! Federated login with OpenID Connect, as keystoneauth's `v3oidcaccesstoken`
//! and `v3oidcclientcredentials` plugins do it: get an access token (given,
//! or from the provider's token endpoint with the `client_credentials` grant,
//! found through its discovery document), present it as a Bearer token to
//! `{auth_url}/OS-FEDERATION/identity_providers/{idp}/protocols/{protocol}/auth`,
//! and return the unscoped Keystone token (the Session then scopes it).

use std::time::Duration;

use serde_json::Value;

use crate::config::Credentials;
use crate::error::{Error, Result};
use crate::secret::Secret;

fn auth_error(url: &str, message: impl Into<String>) -> Error {
    Error::Auth { url: crate::session::redact(url), message: message.into() }
}

/// The unscoped token of a federated login with `creds` (an OIDC variant).
pub(crate) async fn federated_token(http: &reqwest::Client, timeout: Duration, creds: &Credentials, identity_v3: &str) -> Result<Secret> {
    let (idp, protocol, access_token) = match creds {
        Credentials::OidcAccessToken { identity_provider, protocol, access_token } => {
            (identity_provider, protocol, access_token.clone())
        }
        Credentials::OidcClientCredentials { identity_provider, protocol, .. } => {
            (identity_provider, protocol, client_credentials(http, timeout, creds).await?)
        }
        _ => return Err(auth_error(identity_v3, "not an OIDC credential")),
    };
    let url = format!("{}/OS-FEDERATION/identity_providers/{idp}/protocols/{protocol}/auth", identity_v3.trim_end_matches('/'));
    let resp = http
        .post(&url)
        .timeout(timeout)
        .header("Accept", "application/json")
        .bearer_auth(access_token.expose())
        .send()
        .await
        .map_err(|e| auth_error(&url, format!("federated login: {e}")))?;
    let status = resp.status();
    let token = resp.headers().get("x-subject-token").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        let detail = crate::error::extract_message(body.as_bytes());
        return Err(auth_error(&url, format!("federated login refused ({status}): {detail}")));
    }
    token.map(Secret::new).ok_or_else(|| auth_error(&url, "no X-Subject-Token header in the federated login's response"))
}

/// An access token from the provider, `client_credentials` grant, client
/// authenticated with HTTP Basic (as keystoneauth does).
async fn client_credentials(http: &reqwest::Client, timeout: Duration, creds: &Credentials) -> Result<Secret> {
    let Credentials::OidcClientCredentials { client_id, client_secret, discovery_endpoint, access_token_endpoint, openid_scope, .. } = creds else {
        return Err(auth_error("", "not OIDC client credentials"));
    };
    let endpoint = match (access_token_endpoint, discovery_endpoint) {
        (Some(e), _) => e.clone(),
        (None, Some(d)) => {
            let doc: Value = get_json(http, timeout, d).await?;
            doc.get("token_endpoint")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| auth_error(d, "the discovery document has no token_endpoint"))?
        }
        (None, None) => return Err(auth_error("", "no discovery_endpoint or access_token_endpoint")),
    };
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("scope", openid_scope)
        .finish();
    let resp = http
        .post(&endpoint)
        .timeout(timeout)
        .basic_auth(client_id, Some(client_secret.expose()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .map_err(|e| auth_error(&endpoint, format!("OIDC token request: {e}")))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let why = body.get("error_description").or_else(|| body.get("error")).and_then(Value::as_str).unwrap_or("no detail");
        return Err(auth_error(&endpoint, format!("OIDC token request refused ({status}): {why}")));
    }
    body.get("access_token")
        .and_then(Value::as_str)
        .map(Secret::new)
        .ok_or_else(|| auth_error(&endpoint, "the OIDC token response has no access_token"))
}

async fn get_json(http: &reqwest::Client, timeout: Duration, url: &str) -> Result<Value> {
    let resp = http.get(url).timeout(timeout).send().await.map_err(|e| auth_error(url, format!("OIDC discovery: {e}")))?;
    if !resp.status().is_success() {
        return Err(auth_error(url, format!("OIDC discovery answered {}", resp.status())));
    }
    resp.json().await.map_err(|e| auth_error(url, format!("OIDC discovery document: {e}")))
}
