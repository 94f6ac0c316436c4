//! Catalog checks: Keystone, Nova, Cinder, Glance and Neutron (and Swift
//! when object storage is offered) have public endpoints, and each endpoint
//! answers its version document. Also the HTTP client the network checks use.

use std::time::Duration;

use openstack::Session;
use openstack::catalog::Catalog;
use serde_json::Value;

use crate::check::Check;
use crate::config::CheckConfig;
use crate::error::{HttpClientError, VersionDocError};

/// A service EGI requires of a FedCloud site.
#[derive(Debug, Clone, Copy)]
pub struct Required {
    /// Check id suffix and the type shown in messages.
    pub key: &'static str,
    pub label: &'static str,
    /// Catalog types accepted, most preferred first.
    pub types: &'static [&'static str],
    /// The port EGI's documentation lists.
    pub default_port: u16,
}

pub const REQUIRED: [Required; 5] = [
    Required { key: "identity", label: "Keystone", types: &["identity"], default_port: 5000 },
    Required { key: "compute", label: "Nova", types: &["compute"], default_port: 8774 },
    Required { key: "volume", label: "Cinder", types: &["block-storage", "volumev3", "volume"], default_port: 8776 },
    Required { key: "image", label: "Glance", types: &["image"], default_port: 9292 },
    Required { key: "network", label: "Neutron", types: &["network"], default_port: 9696 },
];

pub const SWIFT: Required =
    Required { key: "object-store", label: "Swift", types: &["object-store"], default_port: 8080 };

/// A public endpoint found in the catalog.
#[derive(Debug, Clone)]
pub struct Found {
    pub service: Required,
    /// The catalog type it was found under.
    pub catalog_type: String,
    /// Project-id templates filled.
    pub url: String,
}

/// The services to check: the five, plus Swift when offered (or present).
pub fn wanted(cfg: &CheckConfig, catalog: &Catalog) -> Vec<Required> {
    let mut v = REQUIRED.to_vec();
    if cfg.swift || catalog.0.iter().any(|e| e.service_type == "object-store") {
        v.push(SWIFT);
    }
    v
}

/// The public endpoint of `r` (in `region` when given).
pub fn find(catalog: &Catalog, r: Required, region: Option<&str>, project_id: Option<&str>) -> Option<Found> {
    for t in r.types {
        for e in catalog.0.iter().filter(|e| e.service_type == *t) {
            let ep = e.endpoints.iter().find(|ep| {
                ep.interface == "public"
                    && region.is_none_or(|r| ep.region_id.as_deref() == Some(r) || ep.region.as_deref() == Some(r))
            });
            if let Some(ep) = ep {
                return Some(Found {
                    service: r,
                    catalog_type: t.to_string(),
                    url: openstack::catalog::fill_project_templates(&ep.url, project_id),
                });
            }
        }
    }
    None
}

/// "type interface region" of every catalog endpoint, for messages.
pub fn describe(catalog: &Catalog) -> String {
    let v: Vec<String> = catalog
        .0
        .iter()
        .flat_map(|e| e.endpoints.iter().map(move |ep| format!("{} {}", e.service_type, ep.interface)))
        .filter(|s| s.ends_with(" public"))
        .collect();
    if v.is_empty() { "no public endpoints".into() } else { v.join(", ") }
}

/// An HTTP client that trusts what the cloud configuration trusts.
pub fn http_client(session: Option<&Session>, timeout: Duration) -> Result<reqwest::Client, HttpClientError> {
    let mut b = reqwest::Client::builder().connect_timeout(timeout).timeout(timeout * 3);
    if let Some(cfg) = session.map(|s| s.config()) {
        if let Some(ca) = &cfg.cacert {
            let pem = std::fs::read(ca).map_err(|source| HttpClientError::ReadCa { path: ca.clone(), source })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|source| HttpClientError::BadCa { path: ca.clone(), source })?;
            b = b.tls_certs_only(certs);
        }
        if cfg.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
    }
    b.build().map_err(HttpClientError::Build)
}

/// Where a catalog URL's version document is: the URL without a trailing
/// project id (Cinder `…/v3/<project>`, Swift `…/v1/AUTH_<project>` → `/info`).
pub fn version_url(found: &Found, project_id: Option<&str>) -> String {
    let url = found.url.trim_end_matches('/');
    if found.service.key == "object-store" {
        return match url::Url::parse(url) {
            Ok(mut u) => {
                // The proxy's root: whatever precedes `/v1/AUTH_…` (a path
                // prefix behind a reverse proxy included), then `/info`.
                let root = u.path().find("/v1").map(|i| u.path()[..i].to_string()).unwrap_or_default();
                u.set_path(&format!("{root}/info"));
                u.set_query(None);
                u.to_string()
            }
            Err(_) => format!("{url}/info"),
        };
    }
    if let Some(pid) = project_id
        && let Some(stripped) = url.strip_suffix(&format!("/{pid}"))
    {
        return format!("{stripped}/");
    }
    url.to_string()
}

pub use openstack::error::chain as error_chain;

/// GET `url` and judge it a version document: 200 or 300 with JSON holding
/// `version`/`versions` (Swift's `/info`: `swift`). A 401 is asked again with
/// `token`: a real Cinder serves its `/v3/` document only behind
/// keystonemiddleware (Nova, Glance, Neutron and Keystone answer without one).
pub async fn fetch_version_doc(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> Result<String, VersionDocError> {
    let get = |token: Option<&str>| {
        let mut req = http.get(url).header("Accept", "application/json");
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        req.send()
    };
    let mut resp = get(None).await.map_err(|e| VersionDocError::Request(error_chain(&e)))?;
    if resp.status() == reqwest::StatusCode::UNAUTHORIZED
        && let Some(t) = token
    {
        resp = get(Some(t)).await.map_err(|e| VersionDocError::Request(error_chain(&e)))?;
    }
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| VersionDocError::Request(error_chain(&e)))?;
    if !matches!(status, 200 | 300) {
        return Err(VersionDocError::Status(status));
    }
    let doc: Value = serde_json::from_slice(&body).map_err(|_| VersionDocError::NotJson(status))?;
    if let Some(v) = doc.get("version").and_then(|v| v.get("id")).and_then(Value::as_str) {
        return Ok(v.to_string());
    }
    let values = doc
        .pointer("/versions/values")
        .and_then(Value::as_array)
        .or_else(|| doc.get("versions").and_then(Value::as_array));
    if let Some(vs) = values {
        let ids: Vec<&str> = vs.iter().filter_map(|v| v.get("id").and_then(Value::as_str)).collect();
        if !ids.is_empty() {
            return Ok(ids.join(", "));
        }
    }
    if let Some(v) = doc.pointer("/swift/version").and_then(Value::as_str) {
        return Ok(format!("swift {v}"));
    }
    Err(VersionDocError::NoVersion(status))
}

/// The catalog family: one check per service.
pub async fn run(cfg: &CheckConfig, admin: &Session) -> Vec<Check> {
    let token = match admin.token().await {
        Ok(t) => t,
        Err(e) => {
            return vec![Check::critical(
                "catalog.token",
                "a token with its service catalog",
                format!("authentication failed: {e}"),
                "check the cloud's credentials (clouds.yaml / OS_*)",
            )];
        }
    };
    let pid = token.project.as_ref().map(|p| p.id.as_str());
    let http = match http_client(Some(admin), cfg.connect_timeout) {
        Ok(h) => h,
        Err(e) => {
            return vec![Check::critical("catalog.client", "an HTTP client", e.to_string(), "fix the cloud's cacert")];
        }
    };
    let mut out = Vec::new();
    for r in wanted(cfg, &token.catalog) {
        let id = format!("catalog.{}", r.key);
        let tested = format!("a public {} endpoint ({}) answering its version document", r.label, r.types.join(" or "));
        let Some(found) = find(&token.catalog, r, cfg.region.as_deref(), pid) else {
            let region = cfg.region.as_deref().unwrap_or("RegionOne");
            out.push(Check::critical(
                id,
                tested,
                format!(
                    "no public {} endpoint in the catalog{} (it has: {})",
                    r.types[0],
                    cfg.region.as_deref().map(|r| format!(" for region {r}")).unwrap_or_default(),
                    describe(&token.catalog)
                ),
                format!(
                    "register it: openstack endpoint create --region {region} {} public https://<public host>:{}/…",
                    r.types[0], r.default_port
                ),
            ));
            continue;
        };
        let url = version_url(&found, pid);
        match fetch_version_doc(&http, &url, Some(token.id.expose())).await {
            Ok(v) => out.push(Check::ok(id, tested, format!("{} {} answers ({v})", found.catalog_type, found.url))),
            Err(e) => out.push(Check::critical(
                id,
                tested,
                format!("{} endpoint {} does not answer its version document at {url}: {e}", found.catalog_type, found.url),
                format!(
                    "make {} reachable at its public catalog URL (service running, proxy and TLS in place), or correct the endpoint: openstack endpoint set --url <URL> <endpoint id>",
                    r.label
                ),
            )),
        }
    }
    out
}
