//! A GOCDB public API subset (`/gocdb/gocdbpi/public/?method=get_service`):
//! the `SERVICE_ENDPOINT` XML answer, listing this simulator's Keystone (in
//! hybrid mode: the real Keystone it validates tokens with, with no simulated
//! compute endpoint) as an `org.openstack.nova` service of site [`SITE_NAME`],
//! next to other sites' services (one whose URL is only under `ENDPOINTS`) and
//! a Swift service.
//!
//! Filters: `service_type`, `sitename`, `hostname`. Other methods answer
//! GOCDB's XML error.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

/// GOCDB site name of the simulated site.
pub const SITE_NAME: &str = "SIM-CLOUD";
/// GOCDB primary key of the simulated site's Nova service.
pub const SERVICE_ID: &str = "9001G0";

/// The GOCDB routes, nested under `/gocdb`.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/gocdbpi/public/", get(public)).route("/gocdbpi/public", get(public))
}

struct Svc {
    key: &'static str,
    host: String,
    site: &'static str,
    country: &'static str,
    service_type: &'static str,
    url: Option<String>,
    endpoints: Vec<String>,
}

fn services(state: &AppState) -> Vec<Svc> {
    let host = url::Url::parse(&state.base_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "127.0.0.1".into());
    // Hybrid mode: the site is the real Keystone's (GOCDB is what cannot run here).
    let (site_url, site_endpoints) = match &state.external_keystone {
        Some(ks) => (format!("{}/", ks.auth_url.trim_end_matches('/')), vec![]),
        None => (format!("{}/identity/v3/", state.base_url), vec![format!("{}/compute/v2.1", state.base_url)]),
    };
    vec![
        Svc {
            key: "8812G0",
            host: "keystone.other.example".into(),
            site: "OTHER-SITE",
            country: "Spain",
            service_type: "org.openstack.nova",
            url: Some("https://keystone.other.example:5000/v3".into()),
            endpoints: vec![],
        },
        Svc {
            key: SERVICE_ID,
            host: host.clone(),
            site: SITE_NAME,
            country: "Netherlands",
            service_type: "org.openstack.nova",
            url: Some(site_url),
            endpoints: site_endpoints,
        },
        Svc {
            key: "8813G0",
            host: "cloud.third.example".into(),
            site: "THIRD-SITE",
            country: "Italy",
            service_type: "org.openstack.nova",
            url: None,
            endpoints: vec!["https://cloud.third.example:5000/v3".into()],
        },
        Svc {
            key: "9002G0",
            host,
            site: SITE_NAME,
            country: "Netherlands",
            service_type: "org.openstack.swift",
            url: Some(format!("{}/object-store/v1", state.base_url)),
            endpoints: vec![],
        },
    ]
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/xml; charset=UTF-8")], body).into_response()
}

async fn public(State(state): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Response {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("method") != Some("get_service") {
        return xml(
            StatusCode::BAD_REQUEST,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>Unsupported API method</error>\n".into(),
        );
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<results>\n");
    for s in services(&state) {
        if get("service_type").is_some_and(|t| t != s.service_type)
            || get("sitename").is_some_and(|t| t != s.site)
            || get("hostname").is_some_and(|t| t != s.host)
        {
            continue;
        }
        out.push_str(&format!(
            "  <SERVICE_ENDPOINT PRIMARY_KEY=\"{key}\">\n    <PRIMARY_KEY>{key}</PRIMARY_KEY>\n    \
             <HOSTNAME>{host}</HOSTNAME>\n    \
             <GOCDB_PORTAL_URL>https://goc.egi.eu/portal/index.php?Page_Type=Service&amp;id={num}</GOCDB_PORTAL_URL>\n    \
             <BETA>N</BETA>\n    <SERVICE_TYPE>{t}</SERVICE_TYPE>\n    <CORE></CORE>\n    \
             <IN_PRODUCTION>Y</IN_PRODUCTION>\n    <NODE_MONITORED>Y</NODE_MONITORED>\n    \
             <NOTIFICATIONS>Y</NOTIFICATIONS>\n    <SITENAME>{site}</SITENAME>\n    \
             <COUNTRY_NAME>{country}</COUNTRY_NAME>\n    <COUNTRY_CODE>XX</COUNTRY_CODE>\n    \
             <ROC_NAME>NGI_SIM</ROC_NAME>\n",
            key = s.key,
            num = s.key.trim_end_matches("G0"),
            host = esc(&s.host),
            t = s.service_type,
            site = s.site,
            country = s.country,
        ));
        if let Some(u) = &s.url {
            out.push_str(&format!("    <URL>{}</URL>\n", esc(u)));
        }
        if s.endpoints.is_empty() {
            out.push_str("    <ENDPOINTS/>\n");
        } else {
            out.push_str("    <ENDPOINTS>\n");
            for (i, e) in s.endpoints.iter().enumerate() {
                out.push_str(&format!(
                    "      <ENDPOINT>\n        <ID>{id}</ID>\n        <NAME>{site}-{i}</NAME>\n        \
                     <EXTENSIONS/>\n        <URL>{url}</URL>\n        <INTERFACENAME>{t}</INTERFACENAME>\n        \
                     <ENDPOINT_MONITORED>Y</ENDPOINT_MONITORED>\n      </ENDPOINT>\n",
                    id = 7000 + i,
                    site = s.site,
                    url = esc(e),
                    t = s.service_type,
                ));
            }
            out.push_str("    </ENDPOINTS>\n");
        }
        out.push_str(
            "    <SCOPES>\n      <SCOPE>EGI</SCOPE>\n    </SCOPES>\n    <EXTENSIONS/>\n  </SERVICE_ENDPOINT>\n",
        );
    }
    out.push_str("</results>\n");
    xml(StatusCode::OK, out)
}
