//! Swift (Object Storage v1): the account of the session's project from the
//! token catalog (`object-store`), container PUT/HEAD, object PUT/GET/HEAD
//! with raw bodies (the JSON `Session::send` path cannot carry bytes).
//!
//! Uses its own HTTP client built from the session's TLS settings; the
//! token comes from the session (re-authenticated near expiry).

use md5::{Digest, Md5};
use reqwest::Method;
use reqwest::header::HeaderMap;

use crate::catalog::fill_project_templates;
use crate::error::{ConfigError, Error, RequestInfo, Result, extract_message};
use crate::session::Session;

/// The object store account of a project-scoped session.
#[derive(Clone)]
pub struct ObjectStore {
    session: Session,
    http: reqwest::Client,
    /// `https://swift.example/v1/AUTH_<project>` (no trailing slash).
    pub account_url: String,
}

/// An object read back: its bytes and the headers Swift sent.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub data: Vec<u8>,
    pub etag: Option<String>,
    pub content_type: Option<String>,
    pub headers: HeaderMap,
}

/// Percent-encodes one path segment (object names may hold `/`, kept).
fn encode_path(p: &str) -> String {
    p.split('/')
        .map(|s| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20"))
        .collect::<Vec<_>>()
        .join("/")
}

impl ObjectStore {
    /// Finds the `object-store` endpoint (configured interface and region)
    /// in the session's token catalog.
    pub async fn new(session: &Session) -> Result<ObjectStore> {
        let token = session.token().await?;
        let cfg = session.config();
        let pid = token.project.as_ref().map(|p| p.id.as_str());
        let want = cfg.interface;
        let region = cfg.region_name.as_deref();
        let found = token
            .catalog
            .0
            .iter()
            .filter(|e| e.service_type == "object-store")
            .flat_map(|e| e.endpoints.iter())
            .find(|ep| {
                crate::config::Interface::parse(&ep.interface) == Some(want)
                    && region.is_none_or(|r| ep.region_id.as_deref() == Some(r) || ep.region.as_deref() == Some(r))
            })
            .map(|ep| ep.url.clone());
        let Some(url) = found else {
            return Err(Error::NoEndpoint {
                service: "object-store".into(),
                interface: want.as_str().into(),
                region: region.map(|r| format!(" in region {r}")).unwrap_or_default(),
                available: token.catalog.0.iter().map(|e| e.service_type.clone()).collect::<Vec<_>>().join(", "),
            });
        };
        let mut b = reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(10));
        if let Some(ca) = &cfg.cacert {
            let label = format!("{} (cacert {})", cfg.source, ca.display());
            let pem = std::fs::read(ca).map_err(|e| ConfigError::new(&label, e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ConfigError::new(&label, e.to_string()))?;
            b = b.tls_certs_only(certs);
        }
        if cfg.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        let http = b.build().map_err(|e| ConfigError::new(&cfg.source, format!("building the HTTP client: {e}")))?;
        Ok(ObjectStore {
            session: session.clone(),
            http,
            account_url: fill_project_templates(&url, pid).trim_end_matches('/').to_string(),
        })
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<(u16, HeaderMap, Vec<u8>)> {
        let url = format!("{}/{}", self.account_url, encode_path(path));
        let info = RequestInfo { service: "object-store".into(), method: method.to_string(), url: url.clone() };
        let token = self.session.token().await?;
        let mut rb = self
            .http
            .request(method, &url)
            .timeout(std::time::Duration::from_secs(120))
            .header("X-Auth-Token", token.id.expose());
        if let Some((bytes, content_type)) = body {
            let etag = hex::encode(Md5::digest(&bytes));
            rb = rb.header("Content-Type", content_type).header("ETag", etag).body(bytes);
        }
        let resp = rb.send().await.map_err(|e| Error::Transport {
            request: info.clone(),
            message: e.to_string(),
            attempts: 1,
            timeout: e.is_timeout(),
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| Error::Transport {
            request: info.clone(),
            message: e.to_string(),
            attempts: 1,
            timeout: e.is_timeout(),
        })?;
        if status >= 400 {
            return Err(Error::Api {
                request: info,
                status,
                message: extract_message(&bytes),
                request_id: headers.get("x-trans-id").and_then(|v| v.to_str().ok()).map(str::to_string),
            });
        }
        Ok((status, headers, bytes.to_vec()))
    }

    /// `PUT /v1/{account}/{container}`: true when created (201), false when
    /// it already existed (202).
    pub async fn create_container(&self, container: &str) -> Result<bool> {
        let (status, _, _) = self.request(Method::PUT, container, None).await?;
        Ok(status == 201)
    }

    /// `HEAD /v1/{account}/{container}`: the container's headers.
    pub async fn head_container(&self, container: &str) -> Result<HeaderMap> {
        Ok(self.request(Method::HEAD, container, None).await?.1)
    }

    /// `PUT /v1/{account}/{container}/{object}` with an `ETag` Swift checks;
    /// returns the ETag Swift answered.
    pub async fn put_object(&self, container: &str, object: &str, data: Vec<u8>, content_type: &str) -> Result<String> {
        let (_, h, _) = self.request(Method::PUT, &format!("{container}/{object}"), Some((data, content_type))).await?;
        Ok(h.get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().trim_matches('"').to_string())
    }

    /// `GET /v1/{account}/{container}/{object}`.
    pub async fn get_object(&self, container: &str, object: &str) -> Result<StoredObject> {
        let (_, headers, data) = self.request(Method::GET, &format!("{container}/{object}"), None).await?;
        let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
        Ok(StoredObject { etag: h("etag"), content_type: h("content-type"), data, headers })
    }

    /// `HEAD /v1/{account}/{container}/{object}`: its headers.
    pub async fn head_object(&self, container: &str, object: &str) -> Result<HeaderMap> {
        Ok(self.request(Method::HEAD, &format!("{container}/{object}"), None).await?.1)
    }

    /// `DELETE /v1/{account}/{container}/{object}`.
    pub async fn delete_object(&self, container: &str, object: &str) -> Result<()> {
        self.request(Method::DELETE, &format!("{container}/{object}"), None).await.map(|_| ())
    }

    /// `DELETE /v1/{account}/{container}` (Swift answers 409 while it holds objects).
    pub async fn delete_container(&self, container: &str) -> Result<()> {
        self.request(Method::DELETE, container, None).await.map(|_| ())
    }
}
