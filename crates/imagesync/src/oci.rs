//! OCI distribution API v2 client: catalog and tag lists (paged with
//! `Link`), manifests with their annotations (`eu.egi.cloud.*`,
//! `org.openstack.glance.*`), blob URLs, each request authorized as the
//! registry asks ([`crate::auth`]: Harbor's tokens, or Basic); and the
//! listing of a plain registry as [`SourceImage`]s (newest matching tag per
//! repository). A Harbor is listed by [`crate::harbor`].

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::auth::{Auth, Challenge, TokenService};
use crate::config::{RegistryConfig, RegistryKind};
use crate::download::{ContentDigest, chain};
use crate::error::SyncError;
use crate::source::{SourceImage, SourceListing};

pub const MANIFEST_ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub annotations: Map<String, Value>,
}

impl Manifest {
    /// An image manifest as the registry sends it (JSON).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, NotAManifest> {
        serde_json::from_slice(bytes).map_err(NotAManifest)
    }
}

/// Bytes that are not an OCI image manifest.
#[derive(Debug, thiserror::Error)]
#[error("not an OCI manifest: {0}")]
pub struct NotAManifest(#[source] pub serde_json::Error);

/// A registry request that failed; each names the request (`GET <url or path>`).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No answer, or the body could not be read: the error with its causes.
    #[error("GET {url}: {chain}")]
    Request { url: String, chain: String },
    /// An error status, with the registry's first error message (or the body's start).
    #[error("GET {url}: HTTP {status}: {message}")]
    Status { url: String, status: u16, message: String },
    #[error("GET {path}: not JSON: {source}")]
    NotJson {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("more than 10000 pages at {first}")]
    TooManyPages { first: String },
    #[error("GET {path}: manifest digest {digest} differs from Docker-Content-Digest {header}")]
    DigestMismatch { path: String, digest: String, header: String },
    #[error("GET {path}: {source}")]
    Manifest {
        path: String,
        #[source]
        source: NotAManifest,
    },
    /// The token service refused or answered something else than a token.
    #[error("GET {url} (token service): HTTP {status}: {message}")]
    Token { url: String, status: u16, message: String },
    /// A `WWW-Authenticate` challenge that cannot be followed.
    #[error("GET {url}: authentication challenge: {message}")]
    Challenge { url: String, message: String },
    /// Still 401 after the token flow (and Basic, with credentials).
    #[error("GET {url}: HTTP 401: not authorized ({challenge}){hint}")]
    Unauthorized { url: String, challenge: String, hint: &'static str },
}

/// The registry's first error message in a body, or the body's start.
pub(crate) fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/errors/0/message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

/// Why a repository's manifest gives no image ([`image_from_manifest`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("the manifest has no layers")]
    NoLayers,
    #[error("the manifest has {0} layers; a disk image artifact has one")]
    Layers(usize),
    #[error("no eu.egi.cloud.tag annotation: not an EGI cloud image")]
    NotAnEgiImage,
    #[error("layer digest {0:?} is not sha256/sha512")]
    Digest(String),
}

/// The next page of a paged list from its `Link` header
/// (`<url>; rel="next"`, the distribution spec's form): the URL of the
/// first link, `None` when there is no complete `<...>`.
pub fn next_link(header: &str) -> Option<String> {
    let (_, rest) = header.split_once('<')?;
    let (url, _) = rest.split_once('>')?;
    Some(url.to_string())
}

/// The URL of the `rel="next"` link of a `Link` header (Harbor joins
/// `prev` and `next` with `" , "`; the distribution spec sends `next` alone).
pub fn link_next(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.trim().strip_prefix('<')?.split_once('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| url.to_string())
    })
}

/// The pull scope of a `/v2/<repo>/{manifests,blobs,tags}/…` path.
pub fn pull_scope(path: &str) -> Option<String> {
    let rest = path.split("/v2/").nth(1)?.split('?').next()?;
    let repo = rest
        .strip_suffix("/tags/list")
        .or_else(|| rest.rsplit_once("/manifests/").map(|(r, _)| r))
        .or_else(|| rest.rsplit_once("/blobs/").map(|(r, _)| r))?;
    Some(format!("repository:{repo}:pull"))
}

/// A registry client: anonymous, HTTP Basic (a robot account) or Harbor's
/// token flow, with the tokens cached per scope.
#[derive(Debug, Clone)]
pub struct Registry {
    pub base: String,
    pub host: String,
    pub kind: RegistryKind,
    http: reqwest::Client,
    auth: Arc<Auth>,
}

impl Registry {
    pub fn new(cfg: &RegistryConfig, http: reqwest::Client) -> Result<Registry, SyncError> {
        let url =
            url::Url::parse(&cfg.url).map_err(|e| SyncError::Config(format!("registry url {:?}: {e}", cfg.url)))?;
        let host = cfg.host.clone().unwrap_or_else(|| match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
            None => url.host_str().unwrap_or("").to_string(),
        });
        let basic = match (&cfg.username, &cfg.password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            _ => None,
        };
        Ok(Registry {
            base: cfg.url.trim_end_matches('/').to_string(),
            host,
            kind: cfg.kind,
            http,
            auth: Arc::new(Auth::new(basic)),
        })
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Credentials and tokens.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The `Authorization` value to download `url` with (a blob of this
    /// registry): a cached or new token on a Harbor, Basic on a plain
    /// registry with credentials, none otherwise.
    pub async fn authorization(&self, url: &str) -> Result<Option<String>, RegistryError> {
        let scope = pull_scope(url).filter(|_| url.starts_with(&self.base));
        let (RegistryKind::Harbor, Some(scope)) = (self.kind, scope) else { return Ok(self.auth.basic_header()) };
        if let Some(h) = self.auth.cached(&scope) {
            return Ok(Some(h));
        }
        let svc = match self.auth.token_service() {
            Some(s) => s,
            None => self.discover_token_service().await?,
        };
        self.auth.fetch_token(&self.http, &svc, &scope).await.map(Some)
    }

    /// The registry refused the token used for `url`: the next
    /// [`Registry::authorization`] fetches a new one.
    pub fn refused(&self, url: &str) {
        if let Some(scope) = pull_scope(url) {
            self.auth.forget(&scope);
        }
    }

    /// `GET /v2/` without credentials: the realm of its Bearer challenge.
    async fn discover_token_service(&self) -> Result<TokenService, RegistryError> {
        let url = format!("{}/v2/", self.base);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| RegistryError::Request { url: url.clone(), chain: chain(&e) })?;
        let c = resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).and_then(Challenge::parse);
        match c.and_then(|c| token_service(&c)) {
            Some(s) => {
                self.auth.learn(s.clone());
                Ok(s)
            }
            None => Err(RegistryError::Challenge { url, message: "no Bearer challenge with a realm".into() }),
        }
    }

    /// GET with the registry's authorization dance: a cached token for the
    /// path's scope (Harbor) or Basic (plain registry); on 401 a token for
    /// the challenge's scope, once, then Basic with credentials, once.
    pub(crate) async fn get(&self, path: &str, accept: &str) -> Result<reqwest::Response, RegistryError> {
        let url = if path.starts_with("http") { path.to_string() } else { format!("{}{path}", self.base) };
        let scope = pull_scope(&url);
        let mut header = match self.kind {
            RegistryKind::Oci => self.auth.basic_header(),
            RegistryKind::Harbor => scope.as_deref().and_then(|s| self.auth.cached(s)),
        };
        let (mut fresh_token, mut tried_basic) = (false, false);
        loop {
            let mut req = self.http.get(&url).header("Accept", accept);
            if let Some(h) = &header {
                req = req.header("Authorization", h);
            }
            let resp = req.send().await.map_err(|e| RegistryError::Request { url: url.clone(), chain: chain(&e) })?;
            let status = resp.status().as_u16();
            if status == 401 {
                let raw =
                    resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let challenge = Challenge::parse(&raw);
                if let Some(svc) = challenge.as_ref().and_then(token_service) {
                    self.auth.learn(svc);
                }
                let want = challenge.as_ref().and_then(|c| c.param("scope")).map(str::to_string).or(scope.clone());
                if !fresh_token && let (Some(want), Some(svc)) = (want, self.auth.token_service()) {
                    self.auth.forget(&want);
                    header = Some(self.auth.fetch_token(&self.http, &svc, &want).await?);
                    fresh_token = true;
                    continue;
                }
                if !tried_basic && let Some(b) = self.auth.basic_header() {
                    header = Some(b);
                    tried_basic = true;
                    continue;
                }
                let hint =
                    if self.auth.has_credentials() { "" } else { "; a private project needs username and password" };
                return Err(RegistryError::Unauthorized { url, challenge: raw, hint });
            }
            if !(200..300).contains(&status) {
                let body = resp.text().await.unwrap_or_default();
                return Err(RegistryError::Status { url, status, message: error_message(&body) });
            }
            return Ok(resp);
        }
    }

    /// Follows `Link: <...>; rel="next"` pages of a JSON list under `field`.
    async fn paged(&self, first: &str, field: &str) -> Result<Vec<String>, RegistryError> {
        let mut out = Vec::new();
        let mut next = Some(first.to_string());
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(RegistryError::TooManyPages { first: first.to_string() });
            }
            let resp = self.get(&path, "application/json").await?;
            next = resp.headers().get("link").and_then(|v| v.to_str().ok()).and_then(link_next);
            let v: Value = resp.json().await.map_err(|source| RegistryError::NotJson { path: path.clone(), source })?;
            for item in v.get(field).and_then(Value::as_array).into_iter().flatten() {
                if let Some(s) = item.as_str() {
                    out.push(s.to_string());
                }
            }
        }
        Ok(out)
    }

    /// `GET /v2/` (the registry answers at all).
    pub async fn ping(&self) -> Result<(), RegistryError> {
        self.get("/v2/", "application/json").await.map(|_| ())
    }

    /// `GET /v2/_catalog` (all pages).
    pub async fn catalog(&self) -> Result<Vec<String>, RegistryError> {
        self.paged("/v2/_catalog?n=100", "repositories").await
    }

    /// `GET /v2/<repo>/tags/list` (all pages).
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, RegistryError> {
        self.paged(&format!("/v2/{repo}/tags/list?n=100"), "tags").await
    }

    /// `GET /v2/<repo>/manifests/<reference>`: the digest (`Docker-Content-Digest`,
    /// checked against the bytes) and the manifest.
    pub async fn manifest(&self, repo: &str, reference: &str) -> Result<(String, Manifest), RegistryError> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let resp = self.get(&path, MANIFEST_ACCEPT).await?;
        let header = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = resp.bytes().await.map_err(|e| RegistryError::Request { url: path.clone(), chain: chain(&e) })?;
        let digest = sim_free_sha256(&bytes);
        if let Some(h) = header
            && h != digest
        {
            return Err(RegistryError::DigestMismatch { path, digest, header: h });
        }
        let m = Manifest::parse(&bytes).map_err(|source| RegistryError::Manifest { path, source })?;
        Ok((digest, m))
    }

    pub fn blob_url(&self, repo: &str, digest: &str) -> String {
        format!("{}/v2/{repo}/blobs/{digest}", self.base)
    }
}

/// The token service of a Bearer challenge (None for Basic or no realm).
fn token_service(c: &Challenge) -> Option<TokenService> {
    (c.scheme == "bearer").then_some(())?;
    Some(TokenService { realm: c.param("realm")?.to_string(), service: c.param("service").map(str::to_string) })
}

fn sim_free_sha256(b: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

/// Orders tags with numeric runs compared as numbers (`2023.5.10` > `2023.5.9`).
pub fn tag_cmp(a: &str, b: &str) -> Ordering {
    fn parts(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let d = c.is_ascii_digit();
            match out.last_mut() {
                Some((ld, cur)) if *ld == d => cur.push(c),
                _ => out.push((d, c.to_string())),
            }
        }
        out
    }
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let o = match (x.0, y.0) {
            (true, true) => {
                let (xs, ys) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
                xs.len().cmp(&ys.len()).then_with(|| xs.cmp(ys))
            }
            _ => x.1.cmp(&y.1),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len()).then_with(|| a.cmp(b))
}

fn s(map: &Map<String, Value>, k: &str) -> Option<String> {
    map.get(k).and_then(Value::as_str).map(str::to_string).filter(|v| !v.is_empty())
}

/// Lists the registry as source images: repositories of the shared project
/// (for every VO) and of each VO's project (for that VO), the newest tag
/// matching the pattern, its manifest merged with the first layer's
/// annotations; entries without `eu.egi.cloud.tag` are skipped (as atrope).
pub async fn list(reg: &Registry, cfg: &RegistryConfig, vos: &BTreeSet<String>) -> Result<SourceListing, SyncError> {
    let src_err = |m: String| SyncError::Source { source_name: cfg.name.clone(), message: m };
    let pattern = regex::Regex::new(&cfg.tag_pattern).map_err(|e| src_err(format!("tag_pattern: {e}")))?;
    let repos = reg.catalog().await.map_err(|e| src_err(e.to_string()))?;
    let vo_by_project: BTreeMap<String, String> = vos.iter().map(|v| (v.to_ascii_lowercase(), v.clone())).collect();
    let mut out = SourceListing::default();
    for repo in repos {
        let Some((project, _)) = repo.split_once('/') else { continue };
        let share: BTreeSet<String> = if project == cfg.shared_project {
            vos.clone()
        } else if cfg.vo_projects
            && let Some(vo) = vo_by_project.get(project)
        {
            [vo.clone()].into()
        } else {
            continue;
        };
        if !cfg.repositories.is_empty() && !cfg.repositories.contains(&repo) {
            continue;
        }
        let tags = match reg.tags(&repo).await {
            Ok(t) => t,
            Err(e) => {
                out.skipped.push((repo.clone(), e.to_string()));
                continue;
            }
        };
        let Some(tag) = tags.iter().filter(|t| pattern.is_match(t)).max_by(|a, b| tag_cmp(a, b)).cloned() else {
            out.skipped.push((repo.clone(), format!("no tag matches {}", cfg.tag_pattern)));
            continue;
        };
        let (digest, manifest) = match reg.manifest(&repo, &tag).await {
            Ok(m) => m,
            Err(e) => {
                out.skipped.push((format!("{repo}:{tag}"), e.to_string()));
                continue;
            }
        };
        match image_from_manifest(reg, cfg, &repo, &tag, &digest, &manifest, share) {
            Ok(img) => out.images.push(img),
            Err(e) => out.skipped.push((format!("{repo}:{tag}"), e.to_string())),
        }
    }
    Ok(out)
}

/// One repository's image from its manifest (the first layer's annotations
/// over the manifest's); an error says why it is skipped. Public for the fuzz
/// targets.
pub fn image_from_manifest(
    reg: &Registry,
    cfg: &RegistryConfig,
    repo: &str,
    tag: &str,
    manifest_digest: &str,
    m: &Manifest,
    vos: BTreeSet<String>,
) -> Result<SourceImage, SkipReason> {
    let layer = single_layer(m)?;
    let mut ann = m.annotations.clone();
    for (k, v) in &layer.annotations {
        ann.insert(k.clone(), v.clone());
    }
    image_from_layer(reg, cfg, repo, tag, manifest_digest, layer, ann, vos)
}

/// The disk layer of an image artifact (exactly one).
pub(crate) fn single_layer(m: &Manifest) -> Result<&Descriptor, SkipReason> {
    let layer = m.layers.first().ok_or(SkipReason::NoLayers)?;
    if m.layers.len() > 1 {
        return Err(SkipReason::Layers(m.layers.len()));
    }
    Ok(layer)
}

/// The image of `repo:tag` whose data is `layer`, described by `ann`
/// (skipped without `eu.egi.cloud.tag`, as atrope).
#[allow(clippy::too_many_arguments)]
pub(crate) fn image_from_layer(
    reg: &Registry,
    cfg: &RegistryConfig,
    repo: &str,
    tag: &str,
    manifest_digest: &str,
    layer: &Descriptor,
    mut ann: Map<String, Value>,
    vos: BTreeSet<String>,
) -> Result<SourceImage, SkipReason> {
    if s(&ann, "eu.egi.cloud.tag").is_none() {
        return Err(SkipReason::NotAnEgiImage);
    }
    let digest = ContentDigest::parse(&layer.digest).ok_or_else(|| SkipReason::Digest(layer.digest.clone()))?;
    let identifier = format!("{}/{repo}:{tag}-{manifest_digest}", reg.host);
    ann.insert("eu.egi.cloud.image_ref".into(), Value::String(format!("{}/{repo}:{tag}", reg.host)));
    Ok(SourceImage {
        key: format!("oci:{}/{repo}", reg.host),
        source: cfg.name.clone(),
        title: format!("{repo}:{tag}"),
        identifier,
        description: s(&ann, "eu.egi.cloud.description").unwrap_or_default(),
        url: reg.blob_url(repo, &layer.digest),
        digest,
        size: Some(layer.size),
        disk_format: s(&ann, "org.openstack.glance.disk_format").unwrap_or_else(|| "raw".into()).to_ascii_lowercase(),
        container_format: s(&ann, "org.openstack.glance.container_format").unwrap_or_else(|| "bare".into()),
        os_distro: s(&ann, "org.openstack.glance.os_distro"),
        os_version: s(&ann, "org.openstack.glance.os_version"),
        architecture: s(&ann, "org.openstack.glance.architecture"),
        attributes: Value::Object(ann),
        vos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_order_numerically() {
        let mut t = vec!["2023.5.10", "2023.5.9", "2023.05.02", "1", "2023.5.9a"];
        t.sort_by(|a, b| tag_cmp(a, b));
        assert_eq!(t, vec!["1", "2023.05.02", "2023.5.9", "2023.5.9a", "2023.5.10"]);
    }

    #[test]
    fn the_next_link_is_found_after_prev() {
        let h = r#"</api/v2.0/projects?page=1&page_size=10>; rel="prev" , </api/v2.0/projects?page=3&page_size=10>; rel="next""#;
        assert_eq!(link_next(h).as_deref(), Some("/api/v2.0/projects?page=3&page_size=10"));
        assert_eq!(link_next(r#"</v2/_catalog?last=b&n=2>; rel="next""#).as_deref(), Some("/v2/_catalog?last=b&n=2"));
        assert_eq!(link_next(r#"</p?page=1>; rel="prev""#), None);
    }

    #[test]
    fn pull_scopes_of_registry_paths() {
        assert_eq!(pull_scope("http://h/v2/p/a/b/blobs/sha256:00").as_deref(), Some("repository:p/a/b:pull"));
        assert_eq!(pull_scope("/v2/p/r/manifests/1.0").as_deref(), Some("repository:p/r:pull"));
        assert_eq!(pull_scope("/v2/p/r/tags/list?n=100").as_deref(), Some("repository:p/r:pull"));
        assert_eq!(pull_scope("/v2/_catalog?n=100"), None);
    }
}
