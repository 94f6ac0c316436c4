//! The token's service catalog: endpoint lookup by service type (with
//! aliases), interface and region, project-id templates, and the version
//! suffix each API's base URL must end with.

use serde::Deserialize;

use crate::config::Interface;
use crate::error::Error;

/// The five services fedsite talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Identity,
    Compute,
    Volume,
    Network,
    Image,
}

impl Service {
    /// Official service type (counters, messages, microversion headers).
    pub fn as_str(&self) -> &'static str {
        match self {
            Service::Identity => "identity",
            Service::Compute => "compute",
            Service::Volume => "volume",
            Service::Network => "network",
            Service::Image => "image",
        }
    }
    /// Catalog types accepted for the service, most preferred first.
    pub fn catalog_types(&self) -> &'static [&'static str] {
        match self {
            Service::Identity => &["identity"],
            Service::Compute => &["compute"],
            Service::Volume => &["block-storage", "volumev3", "volume", "block-store"],
            Service::Network => &["network"],
            Service::Image => &["image"],
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct CatalogEntry {
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct CatalogEndpoint {
    #[serde(default)]
    pub id: Option<String>,
    pub interface: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub region_id: Option<String>,
    pub url: String,
}

/// The catalog of a token.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Catalog(pub Vec<CatalogEntry>);

impl Catalog {
    /// The raw catalog URL of `service` for `interface` and `region` (any
    /// region when None), trying the service's type aliases in order.
    pub fn url(&self, service: Service, interface: Interface, region: Option<&str>) -> Result<String, Error> {
        for t in service.catalog_types() {
            for entry in self.0.iter().filter(|e| e.service_type == *t) {
                let found = entry.endpoints.iter().find(|ep| {
                    Interface::parse(&ep.interface) == Some(interface)
                        && region.is_none_or(|r| ep.region_id.as_deref() == Some(r) || ep.region.as_deref() == Some(r))
                });
                if let Some(ep) = found {
                    return Ok(ep.url.clone());
                }
            }
        }
        let available = self
            .0
            .iter()
            .flat_map(|e| {
                e.endpoints.iter().map(move |ep| {
                    format!(
                        "{} {} {}",
                        e.service_type,
                        ep.interface,
                        ep.region_id.as_deref().or(ep.region.as_deref()).unwrap_or("-")
                    )
                })
            })
            .collect::<Vec<_>>();
        Err(Error::NoEndpoint {
            service: service.as_str().into(),
            interface: interface.as_str().into(),
            region: region.map(|r| format!(" in region {r}")).unwrap_or_default(),
            available: if available.is_empty() { "nothing".into() } else { available.join(", ") },
        })
    }
}

/// Fills `$(project_id)s`, `%(project_id)s`, `$(tenant_id)s`, `%(tenant_id)s`.
pub fn fill_project_templates(url: &str, project_id: Option<&str>) -> String {
    let mut out = url.to_string();
    if let Some(pid) = project_id {
        for t in ["$(project_id)s", "%(project_id)s", "$(tenant_id)s", "%(tenant_id)s"] {
            out = out.replace(t, pid);
        }
    }
    out
}

fn segments(url: &str) -> Vec<String> {
    match url::Url::parse(url) {
        Ok(u) => {
            u.path_segments().map(|s| s.filter(|x| !x.is_empty()).map(str::to_string).collect()).unwrap_or_default()
        }
        Err(_) => Vec::new(),
    }
}

fn is_version(seg: &str, major: &str) -> bool {
    seg.strip_prefix('v')
        .is_some_and(|rest| rest == major || rest.strip_prefix(major).is_some_and(|r| r.starts_with('.')))
}

/// The API base of a catalog URL: the version suffix each service needs
/// (identity `/v3`, compute `/v2.1`, volume `/v3[/<project>]`, network
/// `/v2.0`, image `/v2`) appended when the URL has none; URLs that carry
/// a version are used as given.
pub fn api_base(service: Service, catalog_url: &str, project_id: Option<&str>) -> String {
    let url = fill_project_templates(catalog_url, project_id);
    let url = url.trim_end_matches('/').to_string();
    let segs = segments(&url);
    let has = |major: &str| segs.iter().any(|s| is_version(s, major));
    match service {
        Service::Identity if !has("3") => format!("{url}/v3"),
        Service::Compute if !has("2") => format!("{url}/v2.1"),
        Service::Volume if !has("3") => match project_id {
            Some(pid) => format!("{url}/v3/{pid}"),
            None => format!("{url}/v3"),
        },
        Service::Network if !has("2") => format!("{url}/v2.0"),
        Service::Image if !has("2") => format!("{url}/v2"),
        _ => url,
    }
}

/// Where the version document of an API base lives: the base itself with a
/// trailing project id dropped (Cinder `.../v3/<pid>` → `.../v3/`).
pub fn version_doc_url(base: &str, project_id: Option<&str>) -> String {
    let mut b = base.trim_end_matches('/').to_string();
    if let Some(pid) = project_id
        && let Some(stripped) = b.strip_suffix(&format!("/{pid}"))
    {
        b = stripped.to_string();
    }
    format!("{b}/")
}
