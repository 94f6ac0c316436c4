//! Registry authentication as Harbor wants it: the `WWW-Authenticate`
//! challenge (`Bearer realm=…,service=…,scope=…` or `Basic realm=…`), tokens
//! from the token service (anonymous or with HTTP Basic credentials) cached
//! per scope until shortly before `expires_in`, and HTTP Basic for plain
//! registries. Secrets are never logged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;

use crate::config::Secret;
use crate::oci::RegistryError;

/// A parsed `WWW-Authenticate` challenge (the first one of the header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer` or `basic` (lowercase).
    pub scheme: String,
    /// Parameters by lowercase name (`realm`, `service`, `scope`, …).
    pub params: HashMap<String, String>,
}

impl Challenge {
    /// Parses `Scheme k="v", k2=v2`; quoted values may hold commas and `\"`.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, mut rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return None;
        }
        let mut params = HashMap::new();
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if rest.is_empty() {
                break;
            }
            let (key, after) = rest.split_once('=')?;
            let key = key.trim().to_ascii_lowercase();
            if key.is_empty() || key.contains([' ', ',', '"']) {
                return None;
            }
            let after = after.trim_start();
            let (value, next) = if let Some(q) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = q.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => value.push(chars.next()?.1),
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &q[end?..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            };
            params.insert(key, value);
            rest = next;
        }
        Some(Challenge { scheme: scheme.to_ascii_lowercase(), params })
    }

    pub fn param(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
}

/// The token service's answer (`{"token","access_token","expires_in","issued_at"}`).
#[derive(Debug, Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// Where tokens come from (the realm and service of a Bearer challenge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenService {
    pub realm: String,
    pub service: Option<String>,
}

#[derive(Debug, Clone)]
struct Cached {
    token: Secret,
    refresh_at: Instant,
}

/// When a token of `expires_in` seconds, received at `got`, is to be
/// renewed: a tenth of its life (at most a minute) early; 60 s when the
/// answer gives no usable lifetime (the distribution spec's default).
pub fn refresh_at(got: Instant, expires_in: Option<i64>) -> Instant {
    let life = Duration::from_secs(expires_in.filter(|s| *s > 0).map_or(60, |s| s as u64));
    got + life - (life / 10).min(Duration::from_secs(60))
}

/// Credentials and the token cache of one registry.
#[derive(Debug)]
pub struct Auth {
    basic: Option<(String, Secret)>,
    service: Mutex<Option<TokenService>>,
    tokens: Mutex<HashMap<String, Cached>>,
    /// Tokens fetched so far (for the report and the tests).
    fetched: std::sync::atomic::AtomicU64,
}

impl Auth {
    pub fn new(basic: Option<(String, Secret)>) -> Auth {
        Auth { basic, service: Mutex::new(None), tokens: Mutex::new(HashMap::new()), fetched: Default::default() }
    }

    /// `Authorization: Basic …` of the configured credentials.
    pub fn basic_header(&self) -> Option<String> {
        let (u, p) = self.basic.as_ref()?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{}", p.expose()));
        Some(format!("Basic {b64}"))
    }

    pub fn has_credentials(&self) -> bool {
        self.basic.is_some()
    }

    /// How many tokens the token service gave so far.
    pub fn tokens_fetched(&self) -> u64 {
        self.fetched.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The token service learnt from a Bearer challenge.
    pub fn token_service(&self) -> Option<TokenService> {
        self.service.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn learn(&self, service: TokenService) {
        *self.service.lock().unwrap_or_else(|e| e.into_inner()) = Some(service);
    }

    /// `Bearer …` for `scope` while its cached token is fresh.
    pub fn cached(&self, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let c = tokens.get(scope).filter(|c| c.refresh_at > Instant::now())?;
        Some(format!("Bearer {}", c.token.expose()))
    }

    /// Forgets the token of `scope` (the registry refused it).
    pub fn forget(&self, scope: &str) {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner()).remove(scope);
    }

    /// Asks the token service for `scope` (with the Basic credentials when
    /// configured), caches and returns `Bearer …`.
    pub async fn fetch_token(
        &self,
        http: &reqwest::Client,
        svc: &TokenService,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let mut url = url::Url::parse(&svc.realm)
            .map_err(|e| RegistryError::Challenge { url: svc.realm.clone(), message: format!("realm: {e}") })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = &svc.service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope);
        }
        let shown = url.to_string();
        let mut req = http.get(url).header("Accept", "application/json");
        if let Some(h) = self.basic_header() {
            req = req.header("Authorization", h);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| RegistryError::Request { url: shown.clone(), chain: crate::download::chain(&e) })?;
        let status = resp.status().as_u16();
        let got = Instant::now();
        let body = resp.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(RegistryError::Token { url: shown, status, message: crate::oci::error_message(&body) });
        }
        let a: TokenAnswer = serde_json::from_str(&body).map_err(|e| RegistryError::Token {
            url: shown.clone(),
            status,
            message: format!("not a token answer: {e}"),
        })?;
        // Harbor fills only `token`; `access_token` is the OAuth2 spelling.
        let token = if a.token.is_empty() { a.access_token } else { a.token };
        if token.is_empty() {
            return Err(RegistryError::Token { url: shown, status, message: "the answer holds no token".into() });
        }
        self.fetched.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(target: "imagesync", scope, expires_in = ?a.expires_in, "registry token");
        let header = format!("Bearer {token}");
        let cached = Cached { token: Secret::new(token), refresh_at: refresh_at(got, a.expires_in) };
        self.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(scope.to_string(), cached);
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harbor_bearer_challenge_with_a_comma_in_the_scope() {
        let c = Challenge::parse(
            r#"Bearer realm="https://registry.egi.eu/service/token",service="harbor-registry",scope="repository:egi_vm_images/ubuntu:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://registry.egi.eu/service/token"));
        assert_eq!(c.param("service"), Some("harbor-registry"));
        assert_eq!(c.param("scope"), Some("repository:egi_vm_images/ubuntu:pull,push"));
        let b = Challenge::parse(r#"Basic realm="harbor""#).unwrap();
        assert_eq!((b.scheme.as_str(), b.param("realm")), ("basic", Some("harbor")));
        let t = Challenge::parse(r#"Bearer realm=plain, error="invalid_token", error_description="a \"b\"""#).unwrap();
        assert_eq!(t.param("realm"), Some("plain"));
        assert_eq!(t.param("error_description"), Some("a \"b\""));
        assert!(Challenge::parse(r#"Bearer realm="unterminated"#).is_none());
        assert!(Challenge::parse("").is_none());
    }

    #[test]
    fn tokens_are_renewed_before_they_expire() {
        let t0 = Instant::now();
        assert_eq!(refresh_at(t0, Some(1800)), t0 + Duration::from_secs(1740));
        assert_eq!(refresh_at(t0, Some(100)), t0 + Duration::from_secs(90));
        assert_eq!(refresh_at(t0, None), t0 + Duration::from_secs(54));
        assert_eq!(refresh_at(t0, Some(-5)), refresh_at(t0, None));
    }

    #[test]
    fn an_expired_cached_token_is_not_used_and_secrets_do_not_show() {
        let a = Auth::new(Some(("robot$x".into(), Secret::new("s3cret"))));
        a.tokens.lock().unwrap().insert(
            "repository:p/r:pull".into(),
            Cached { token: Secret::new("old"), refresh_at: Instant::now() - Duration::from_secs(1) },
        );
        assert_eq!(a.cached("repository:p/r:pull"), None);
        a.tokens.lock().unwrap().insert(
            "repository:p/r:pull".into(),
            Cached { token: Secret::new("new"), refresh_at: Instant::now() + Duration::from_secs(60) },
        );
        assert_eq!(a.cached("repository:p/r:pull").as_deref(), Some("Bearer new"));
        let shown = format!("{a:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("new\""), "{shown}");
    }
}
