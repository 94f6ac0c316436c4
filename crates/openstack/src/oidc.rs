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

/// Why an OpenID provider's discovery document or token answer is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("OIDC discovery document: {0}")]
    DiscoveryNotJson(String),
    #[error("the discovery document has no token_endpoint")]
    NoTokenEndpoint,
    #[error("the discovery document's token_endpoint {0:?} is not an http(s) URL")]
    TokenEndpointNotHttp(String),
    /// The token endpoint answered with an error status: the provider's
    /// `error_description` / `error`, or `no detail`.
    #[error("OIDC token request refused ({status}): {why}")]
    Refused { status: reqwest::StatusCode, why: String },
    #[error("the OIDC token response has an empty access_token")]
    EmptyAccessToken,
    #[error("the OIDC token response has no access_token")]
    NoAccessToken,
}

fn auth_error(url: &str, message: impl Into<String>) -> Error {
    Error::Auth { url: crate::session::redact(url), message: message.into() }
}

/// The unscoped token of a federated login with `creds` (an OIDC variant).
pub(crate) async fn federated_token(
    http: &reqwest::Client,
    timeout: Duration,
    creds: &Credentials,
    identity_v3: &str,
) -> Result<Secret> {
    let (idp, protocol, access_token) = match creds {
        Credentials::OidcAccessToken { identity_provider, protocol, access_token } => {
            (identity_provider, protocol, access_token.clone())
        }
        Credentials::OidcClientCredentials { identity_provider, protocol, .. } => {
            (identity_provider, protocol, client_credentials(http, timeout, creds).await?)
        }
        _ => return Err(auth_error(identity_v3, "not an OIDC credential")),
    };
    let url = format!(
        "{}/OS-FEDERATION/identity_providers/{idp}/protocols/{protocol}/auth",
        identity_v3.trim_end_matches('/')
    );
    let resp = http
        .post(&url)
        .timeout(timeout)
        .header("Accept", "application/json")
        .bearer_auth(access_token.expose())
        .send()
        .await
        .map_err(|e| Error::Transport {
            request: crate::error::RequestInfo {
                service: "identity".into(),
                method: "POST".into(),
                url: crate::session::redact(&url),
            },
            message: format!("federated login: {}", crate::error::chain(&e)),
            attempts: 1,
            timeout: e.is_timeout(),
        })?;
    let status = resp.status();
    let token = resp.headers().get("x-subject-token").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        let detail = crate::error::extract_message(body.as_bytes());
        return Err(auth_error(&url, format!("federated login refused ({status}): {detail}")));
    }
    token
        .map(Secret::new)
        .ok_or_else(|| auth_error(&url, "no X-Subject-Token header in the federated login's response"))
}

/// An access token from the provider, `client_credentials` grant, client
/// authenticated with HTTP Basic (as keystoneauth does).
async fn client_credentials(http: &reqwest::Client, timeout: Duration, creds: &Credentials) -> Result<Secret> {
    let Credentials::OidcClientCredentials {
        client_id,
        client_secret,
        discovery_endpoint,
        access_token_endpoint,
        openid_scope,
        ..
    } = creds
    else {
        return Err(auth_error("", "not OIDC client credentials"));
    };
    let endpoint = match (access_token_endpoint, discovery_endpoint) {
        (Some(e), _) => e.clone(),
        (None, Some(d)) => {
            let doc = get_body(http, timeout, d).await?;
            token_endpoint(&doc).map_err(|e| auth_error(d, e.to_string()))?
        }
        (None, None) => {
            return Err(auth_error("", "no discovery_endpoint or access_token_endpoint"));
        }
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
    let body = resp.bytes().await.unwrap_or_default();
    access_token(status, &body).map_err(|e| auth_error(&endpoint, e.to_string()))
}

/// The `token_endpoint` of an OpenID provider's discovery document
/// (`.well-known/openid-configuration`): an absolute http(s) URL, or why not.
pub fn token_endpoint(doc: &[u8]) -> std::result::Result<String, OidcError> {
    let doc: Value = serde_json::from_slice(doc).map_err(|e| OidcError::DiscoveryNotJson(e.to_string()))?;
    let url = doc.get("token_endpoint").and_then(Value::as_str).ok_or(OidcError::NoTokenEndpoint)?;
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(url.to_string()),
        _ => Err(OidcError::TokenEndpointNotHttp(url.to_string())),
    }
}

/// The access token of a token endpoint's answer with `status`, or why not
/// (the provider's `error_description` / `error` when it refused).
pub fn access_token(status: reqwest::StatusCode, body: &[u8]) -> std::result::Result<Secret, OidcError> {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if !status.is_success() {
        let why =
            body.get("error_description").or_else(|| body.get("error")).and_then(Value::as_str).unwrap_or("no detail");
        return Err(OidcError::Refused { status, why: why.to_string() });
    }
    match body.get("access_token").and_then(Value::as_str) {
        Some("") => Err(OidcError::EmptyAccessToken),
        Some(t) => Ok(Secret::new(t)),
        None => Err(OidcError::NoAccessToken),
    }
}

async fn get_body(http: &reqwest::Client, timeout: Duration, url: &str) -> Result<Vec<u8>> {
    let resp =
        http.get(url).timeout(timeout).send().await.map_err(|e| auth_error(url, format!("OIDC discovery: {e}")))?;
    if !resp.status().is_success() {
        return Err(auth_error(url, format!("OIDC discovery answered {}", resp.status())));
    }
    resp.bytes().await.map(|b| b.to_vec()).map_err(|e| auth_error(url, format!("OIDC discovery document: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn the_token_endpoint_must_be_an_http_url() {
        let doc = br#"{"issuer": "https://aai.egi.eu/auth/realms/egi", "token_endpoint": "https://aai.egi.eu/auth/realms/egi/protocol/openid-connect/token"}"#;
        assert_eq!(token_endpoint(doc).unwrap(), "https://aai.egi.eu/auth/realms/egi/protocol/openid-connect/token");
        assert_eq!(token_endpoint(b"{}").unwrap_err().to_string(), "the discovery document has no token_endpoint");
        assert_eq!(
            token_endpoint(br#"{"token_endpoint": "/token"}"#).unwrap_err().to_string(),
            "the discovery document's token_endpoint \"/token\" is not an http(s) URL"
        );
        assert!(token_endpoint(b"<html>").unwrap_err().to_string().starts_with("OIDC discovery document: "));
    }

    #[test]
    fn token_answers_give_the_token_or_the_providers_reason() {
        assert_eq!(
            access_token(StatusCode::OK, br#"{"access_token": "eyJ", "token_type": "Bearer"}"#).unwrap().expose(),
            "eyJ"
        );
        assert_eq!(
            access_token(
                StatusCode::UNAUTHORIZED,
                br#"{"error": "invalid_client", "error_description": "Invalid client secret"}"#
            )
            .unwrap_err()
            .to_string(),
            "OIDC token request refused (401 Unauthorized): Invalid client secret"
        );
        assert_eq!(
            access_token(StatusCode::BAD_GATEWAY, b"<html>").unwrap_err().to_string(),
            "OIDC token request refused (502 Bad Gateway): no detail"
        );
        assert_eq!(
            access_token(StatusCode::OK, br#"{"access_token": ""}"#).unwrap_err().to_string(),
            "the OIDC token response has an empty access_token"
        );
        assert_eq!(
            access_token(StatusCode::OK, b"{}").unwrap_err().to_string(),
            "the OIDC token response has no access_token"
        );
    }
}
