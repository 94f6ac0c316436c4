//! Credentials as the federation's central deployment has them (issue #15 item 3, facts in
//! `testdata/catchall-2026-07/README.md`):
//! * [`CheckinToken`]: one EGI Check-in access token for every site, obtained with the OIDC
//!   `client_credentials` grant (token endpoint, or found through the discovery document),
//!   its RS256 signature checked against the provider's JWKS, cached and fetched again once it
//!   expires within a margin (20 minutes by default, as the central tools do);
//! * [`Vault`]: for `auth: v3applicationcredential` sites, JWT login with that token, then the
//!   KV v1 secret `users/<sub>/cloudmon/<keystone host>/<vo>` ([`secret_path`]); a missing
//!   secret is `None` (that VO is skipped), any other failure an error;
//! * [`SecretsDir`]: the same secrets as private files, `<dir>/<keystone host>/<vo>`;
//! * [`vo_cloud_config`]: the `openstack::CloudConfig` of one VO share of one site — the
//!   access token exchanged through OS-FEDERATION (identity provider `egi.eu`, the site's
//!   protocol) and scoped to the VO's project, or the VO's application credential.
//!
//! No secret reaches a log line or an error: tokens, client secrets and application-credential
//! secrets are held in `openstack::Secret` (redacted `Debug`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use openstack::{CloudConfig, Credentials, Interface, Scope, Secret};
use serde::Deserialize;

/// The identity provider the federation's Keystones know Check-in as.
pub const IDENTITY_PROVIDER: &str = "egi.eu";
/// Check-in's default scope for the central robot.
pub const DEFAULT_SCOPE: &str = "openid profile eduperson_entitlement entitlements email voperson_id";
/// A cached token is fetched again once it expires within this margin.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(20 * 60);

/// What went wrong getting or using a credential. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A request could not be made or answered.
    #[error("{what}: {source}")]
    Http {
        /// The request ("fetching the token", ...).
        what: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        /// The request.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The answer's body, for its message.
        body: String,
    },
    /// The answer is not what the protocol says.
    #[error("{what}: unexpected answer: {detail}")]
    Protocol {
        /// The request.
        what: String,
        /// What is wrong with the answer.
        detail: String,
    },
    /// The access token failed its checks (signature, issuer, expiry).
    #[error("the access token from {issuer}: {detail}")]
    Token {
        /// The token endpoint or issuer.
        issuer: String,
        /// The failed check.
        detail: String,
    },
    /// A secret file could not be used.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why (unreadable, not private, empty).
        reason: String,
    },
    /// The settings are incomplete or contradictory.
    #[error("configuration: {0}")]
    Config(String),
}

/// Where and as whom to get the Check-in token.
#[derive(Debug, Clone)]
pub struct CheckinConfig {
    /// The provider's `.well-known/openid-configuration` URL (gives the token endpoint and
    /// the JWKS), or…
    pub discovery_endpoint: Option<String>,
    /// …its token endpoint directly (then `jwks_uri` is needed to check signatures).
    pub token_endpoint: Option<String>,
    /// The provider's JWKS URL, when not taken from the discovery document.
    pub jwks_uri: Option<String>,
    /// The OIDC client (the robot) id.
    pub client_id: String,
    /// The OIDC client secret.
    pub client_secret: Secret,
    /// The scopes asked for ([`DEFAULT_SCOPE`] unless set).
    pub scope: String,
    /// A cached token this close to expiry is fetched again ([`DEFAULT_REFRESH_MARGIN`]).
    pub refresh_margin: Duration,
}

impl CheckinConfig {
    /// Client credentials with the discovery document; default scope and margin.
    pub fn discovery(url: &str, client_id: &str, client_secret: Secret) -> CheckinConfig {
        CheckinConfig {
            discovery_endpoint: Some(url.to_owned()),
            token_endpoint: None,
            jwks_uri: None,
            client_id: client_id.to_owned(),
            client_secret,
            scope: DEFAULT_SCOPE.to_owned(),
            refresh_margin: DEFAULT_REFRESH_MARGIN,
        }
    }

    /// The client secret read from a private file (mode 0600, as every secret file).
    pub fn secret_from_file(path: &Path) -> Result<Secret, CredentialError> {
        openstack::secret::check_private_file(path)
            .map_err(|reason| CredentialError::File { path: path.to_owned(), reason: reason.to_string() })?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| CredentialError::File { path: path.to_owned(), reason: e.to_string() })?;
        let secret = text.trim();
        if secret.is_empty() {
            return Err(CredentialError::File { path: path.to_owned(), reason: "is empty".into() });
        }
        Ok(Secret::new(secret))
    }
}

/// A valid access token and what the central tools read from it.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The access token (a JWT).
    pub token: Secret,
    /// The JWT's `sub` (the Vault path's user).
    pub sub: String,
    /// The JWT's `exp`.
    pub expires_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct Discovery {
    token_endpoint: String,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

#[derive(Deserialize)]
struct TokenClaims {
    sub: String,
    exp: i64,
}

/// One Check-in access token shared by every site (see the module doc).
#[derive(Debug)]
pub struct CheckinToken {
    cfg: CheckinConfig,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<AccessToken>>,
    fetches: AtomicU64,
}

impl CheckinToken {
    /// A token source for `cfg` (nothing fetched yet); a config with neither a discovery nor
    /// a token endpoint is an error.
    pub fn new(cfg: CheckinConfig) -> Result<CheckinToken, CredentialError> {
        if cfg.discovery_endpoint.is_none() && cfg.token_endpoint.is_none() {
            return Err(CredentialError::Config("a discovery endpoint or a token endpoint is needed".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|source| CredentialError::Http { what: "building the HTTP client".into(), source })?;
        Ok(CheckinToken { cfg, http, cached: tokio::sync::Mutex::new(None), fetches: AtomicU64::new(0) })
    }

    /// How many tokens were fetched (the rest came from the cache).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The cached token, or a new one when there is none or it expires within the margin.
    pub async fn get(&self) -> Result<AccessToken, CredentialError> {
        let mut cached = self.cached.lock().await;
        let margin = chrono::Duration::from_std(self.cfg.refresh_margin).unwrap_or(chrono::Duration::zero());
        if let Some(t) = cached.as_ref()
            && t.expires_at - margin > Utc::now()
        {
            return Ok(t.clone());
        }
        let fresh = self.fetch().await?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, CredentialError> {
        let resp = req.send().await.map_err(|source| CredentialError::Http { what: what.to_owned(), source })?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|source| CredentialError::Http { what: what.to_owned(), source })?;
        if !(200..300).contains(&status) {
            return Err(CredentialError::Status { what: what.to_owned(), status, body: snippet(&body) });
        }
        serde_json::from_slice(&body)
            .map_err(|e| CredentialError::Protocol { what: what.to_owned(), detail: e.to_string() })
    }

    async fn fetch(&self) -> Result<AccessToken, CredentialError> {
        let (token_endpoint, jwks_uri, issuer) = match &self.cfg.discovery_endpoint {
            Some(url) => {
                let d: Discovery =
                    self.json(&format!("reading the OIDC discovery document {url}"), self.http.get(url)).await?;
                (d.token_endpoint, d.jwks_uri.or(self.cfg.jwks_uri.clone()), d.issuer.unwrap_or_else(|| url.clone()))
            }
            None => {
                // `new` refuses a config with neither endpoint.
                let te = self.cfg.token_endpoint.clone().ok_or_else(|| {
                    CredentialError::Config("a discovery endpoint or a token endpoint is needed".into())
                })?;
                (te.clone(), self.cfg.jwks_uri.clone(), te)
            }
        };
        let what = format!("getting an access token from {token_endpoint}");
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.cfg.client_id.as_str()),
            ("client_secret", self.cfg.client_secret.expose()),
            ("scope", self.cfg.scope.as_str()),
        ];
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let req =
            self.http.post(&token_endpoint).header("content-type", "application/x-www-form-urlencoded").body(body);
        let answer: TokenAnswer = self.json(&what, req).await?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let jwks_uri = jwks_uri.ok_or_else(|| CredentialError::Token {
            issuer: issuer.clone(),
            detail: "no jwks_uri to check the token's signature with".into(),
        })?;
        let jwks: jsonwebtoken::jwk::JwkSet =
            self.json(&format!("reading the JWKS {jwks_uri}"), self.http.get(&jwks_uri)).await?;
        let claims = verify(&answer.access_token, &jwks)
            .map_err(|detail| CredentialError::Token { issuer: issuer.clone(), detail })?;
        let expires_at = DateTime::from_timestamp(claims.exp, 0).ok_or_else(|| CredentialError::Token {
            issuer: issuer.clone(),
            detail: format!("exp {} is not a time", claims.exp),
        })?;
        tracing::info!(%issuer, sub = %claims.sub, %expires_at, "Check-in access token obtained");
        Ok(AccessToken { token: Secret::new(answer.access_token), sub: claims.sub, expires_at })
    }
}

/// Checks the JWT's RS256 signature against the key its `kid` names, and that it has not
/// expired; its audience is not checked (Check-in's varies with the client).
fn verify(jwt: &str, jwks: &jsonwebtoken::jwk::JwkSet) -> Result<TokenClaims, String> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| format!("not a JWT: {e}"))?;
    let kid = header.kid.ok_or("its header has no kid")?;
    let jwk = jwks.find(&kid).ok_or_else(|| format!("no key {kid:?} in the JWKS"))?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid:?}: {e}"))?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "sub"]);
    jsonwebtoken::decode::<TokenClaims>(jwt, &key, &validation).map(|d| d.claims).map_err(|e| format!("rejected: {e}"))
}

fn snippet(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s = s.trim();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// An application credential of one VO at one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCredential {
    /// `application_credential_id`.
    pub id: String,
    /// `application_credential_secret`.
    pub secret: Secret,
}

impl AppCredential {
    /// From a secret's keystoneauth option names (`application_credential_id`,
    /// `application_credential_secret`).
    fn from_options(options: &BTreeMap<String, String>, what: &str) -> Result<AppCredential, CredentialError> {
        let get = |k: &str| {
            options.get(k).filter(|v| !v.is_empty()).cloned().ok_or_else(|| CredentialError::Protocol {
                what: what.to_owned(),
                detail: format!("the secret has no {k}"),
            })
        };
        Ok(AppCredential {
            id: get("application_credential_id")?,
            secret: Secret::new(get("application_credential_secret")?),
        })
    }
}

/// `users/<sub>/cloudmon/<keystone host>/<vo>`, the KV v1 path of a VO's secret.
pub fn secret_path(sub: &str, keystone_host: &str, vo: &str) -> String {
    format!("users/{sub}/cloudmon/{keystone_host}/{vo}")
}

/// A Vault with the JWT auth method and a KV v1 mount (`secrets`).
#[derive(Debug, Clone)]
pub struct Vault {
    base: String,
    mount: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct LoginAnswer {
    auth: LoginAuth,
}

#[derive(Deserialize)]
struct LoginAuth {
    client_token: String,
}

#[derive(Deserialize)]
struct SecretAnswer {
    data: BTreeMap<String, serde_json::Value>,
}

impl Vault {
    /// `base`: the Vault's address (`https://vault.example.org:8200`); the secrets mount is
    /// `secrets`, as the central deployment's.
    pub fn new(base: &str) -> Result<Vault, CredentialError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|source| CredentialError::Http { what: "building the HTTP client".into(), source })?;
        Ok(Vault { base: base.trim_end_matches('/').to_owned(), mount: "secrets".into(), http })
    }

    /// JWT login with the access token: the Vault token to read with.
    pub async fn login(&self, token: &AccessToken) -> Result<Secret, CredentialError> {
        let what = format!("logging in to Vault {} with the access token of {}", self.base, token.sub);
        let body = serde_json::json!({"role": "", "jwt": token.token.expose()});
        let resp = self
            .http
            .post(format!("{}/v1/auth/jwt/login", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|source| CredentialError::Http { what: what.clone(), source })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|source| CredentialError::Http { what: what.clone(), source })?;
        if !(200..300).contains(&status) {
            return Err(CredentialError::Status { what, status, body: snippet(&bytes) });
        }
        let a: LoginAnswer =
            serde_json::from_slice(&bytes).map_err(|e| CredentialError::Protocol { what, detail: e.to_string() })?;
        Ok(Secret::new(a.auth.client_token))
    }

    /// The application credential of `vo` at the site whose Keystone is `keystone_host`;
    /// `None` when Vault has no such secret (404): that VO is skipped.
    pub async fn app_credential(
        &self,
        vault_token: &Secret,
        sub: &str,
        keystone_host: &str,
        vo: &str,
    ) -> Result<Option<AppCredential>, CredentialError> {
        let path = secret_path(sub, keystone_host, vo);
        let what = format!("reading {}/{path} from Vault {}", self.mount, self.base);
        let resp = self
            .http
            .get(format!("{}/v1/{}/{path}", self.base, self.mount))
            .header("X-Vault-Token", vault_token.expose())
            .send()
            .await
            .map_err(|source| CredentialError::Http { what: what.clone(), source })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|source| CredentialError::Http { what: what.clone(), source })?;
        match status {
            404 => return Ok(None),
            200..=299 => {}
            _ => return Err(CredentialError::Status { what, status, body: snippet(&bytes) }),
        }
        let a: SecretAnswer = serde_json::from_slice(&bytes)
            .map_err(|e| CredentialError::Protocol { what: what.clone(), detail: e.to_string() })?;
        let options: BTreeMap<String, String> =
            a.data.into_iter().filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned()))).collect();
        AppCredential::from_options(&options, &what).map(Some)
    }
}

/// Application credentials as private files: `<dir>/<keystone host>/<vo>`, each holding
/// `application_credential_id = …` and `application_credential_secret = …` lines (`:` works
/// too; `#` comments), mode 0600.
#[derive(Debug, Clone)]
pub struct SecretsDir {
    dir: PathBuf,
}

impl SecretsDir {
    /// The secrets under `dir` (`<dir>/<keystone host>/<vo>`).
    pub fn new(dir: impl Into<PathBuf>) -> SecretsDir {
        SecretsDir { dir: dir.into() }
    }

    /// The file of `vo` at `keystone_host`.
    pub fn path(&self, keystone_host: &str, vo: &str) -> PathBuf {
        self.dir.join(keystone_host).join(vo)
    }

    /// `None` when there is no file for that VO (it is skipped); an error when the file is
    /// readable by others or lacks a key.
    pub fn app_credential(&self, keystone_host: &str, vo: &str) -> Result<Option<AppCredential>, CredentialError> {
        let path = self.path(keystone_host, vo);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CredentialError::File { path, reason: e.to_string() }),
        };
        openstack::secret::check_private_file(&path)
            .map_err(|reason| CredentialError::File { path: path.clone(), reason: reason.to_string() })?;
        let options: BTreeMap<String, String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once(['=', ':']).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())))
            .collect();
        AppCredential::from_options(&options, &path.display().to_string()).map(Some)
    }
}

/// How one VO share of a site is logged in to.
#[derive(Debug, Clone)]
pub enum VoLogin {
    /// The Check-in access token, through OS-FEDERATION with the site's protocol.
    Oidc(AccessToken),
    /// The VO's application credential (scoped to its project).
    AppCredential(AppCredential),
}

/// The `CloudConfig` of one VO share: the site's Keystone, the VO's project (when the site
/// file names one) and region (the VO's, else the site's), and the login.
pub fn vo_cloud_config(site: &sites::Site, vo: &sites::VoShare, login: VoLogin) -> CloudConfig {
    let credentials = match login {
        VoLogin::Oidc(t) => Credentials::OidcAccessToken {
            identity_provider: IDENTITY_PROVIDER.into(),
            protocol: site.protocol.as_str().to_owned(),
            access_token: t.token,
        },
        VoLogin::AppCredential(a) => {
            Credentials::ApplicationCredential { id: Some(a.id), name: None, user: None, secret: a.secret }
        }
    };
    let scope = match &vo.auth.project_id {
        Some(p) => Scope::project_id(p.as_str()),
        // An application credential carries its own project.
        None => Scope::Unscoped,
    };
    CloudConfig {
        name: Some(format!("{}/{}", site.gocdb.as_str(), vo.name.as_str())),
        source: "the sites folder".into(),
        auth_url: site.endpoint.as_str().to_owned(),
        credentials,
        scope,
        region_name: vo.auth.region.as_ref().or(site.region.as_ref()).map(|r| r.as_str().to_owned()),
        interface: Interface::Public,
        cacert: None,
        insecure: false,
    }
}
