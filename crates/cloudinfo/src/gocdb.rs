//! GOCDB lookup: `get_service` for a service type, and the service whose
//! `URL` or any `ENDPOINTS/ENDPOINT/URL` matches the site endpoint (same
//! scheme and host[:port], paths equal up to `/`): its `PRIMARY_KEY` and
//! `SITENAME` become the Service's `OtherInfo`.

use std::time::Duration;

use quick_xml::Reader;
use quick_xml::events::Event;

use pyjson::{Json, Object};

/// GOCDB's public API, as the original hard-codes it.
pub const DEFAULT_URL: &str = "https://goc.egi.eu/gocdbpi/public/";

/// One `SERVICE_ENDPOINT` of the answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GocService {
    pub primary_key: String,
    pub site_name: Option<String>,
    pub urls: Vec<String>,
}

/// `(scheme, netloc, path)` as Python's `urlparse` splits them.
fn split(url: &str) -> (String, String, String) {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => (String::new(), url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let netloc = rest[..end].to_string();
    let path_part = &rest[end..];
    let path_end = path_part.find(['?', '#']).unwrap_or(path_part.len());
    (scheme, netloc, path_part[..path_end].to_string())
}

/// The original's URL comparison: scheme and netloc equal, paths equal
/// once leading and trailing `/` are stripped.
pub fn urls_similar(a: &str, b: &str) -> bool {
    let (s1, n1, p1) = split(a);
    let (s2, n2, p2) = split(b);
    s1 == s2 && n1 == n2 && p1.trim_matches('/') == p2.trim_matches('/')
}

/// A GOCDB answer that is not well-formed XML.
#[derive(Debug, thiserror::Error)]
#[error("GOCDB answer: {0}")]
pub struct GocdbError(#[from] quick_xml::Error);

/// Parses a `get_service` XML answer.
pub fn parse_services(xml: &str) -> Result<Vec<GocService>, GocdbError> {
    let mut reader = Reader::from_str(xml);
    let mut out = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut cur: Option<GocService> = None;
    let mut text = String::new();
    loop {
        match reader.read_event()? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if name == "SERVICE_ENDPOINT" && stack.len() == 1 {
                    let mut svc = GocService::default();
                    for a in e.attributes().flatten() {
                        if a.key.as_ref() == b"PRIMARY_KEY" {
                            svc.primary_key = a.unescape_value().map(|v| v.into_owned()).unwrap_or_default();
                        }
                    }
                    cur = Some(svc);
                }
                stack.push(name);
                text.clear();
            }
            Event::Text(t) => {
                text.push_str(&t.xml_content().map_err(quick_xml::Error::from)?);
            }
            Event::GeneralRef(r) => {
                let name = String::from_utf8_lossy(r.as_ref()).into_owned();
                let resolved: Option<String> = match name.as_str() {
                    "amp" => Some("&".into()),
                    "lt" => Some("<".into()),
                    "gt" => Some(">".into()),
                    "quot" => Some("\"".into()),
                    "apos" => Some("'".into()),
                    n => {
                        let code = match n.strip_prefix("#x").or_else(|| n.strip_prefix("#X")) {
                            Some(hex) => u32::from_str_radix(hex, 16).ok(),
                            None => n.strip_prefix('#').and_then(|d| d.parse().ok()),
                        };
                        code.and_then(char::from_u32).map(String::from)
                    }
                };
                if let Some(r) = resolved {
                    text.push_str(&r);
                }
            }
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                let path: Vec<&str> = stack.iter().map(String::as_str).collect();
                if let Some(svc) = cur.as_mut() {
                    match (name.as_str(), path.as_slice()) {
                        ("URL", [_, "SERVICE_ENDPOINT"]) => svc.urls.insert(0, text.trim().to_string()),
                        ("URL", [_, "SERVICE_ENDPOINT", "ENDPOINTS", "ENDPOINT"]) => {
                            svc.urls.push(text.trim().to_string())
                        }
                        ("SITENAME", [_, "SERVICE_ENDPOINT"]) => svc.site_name = Some(text.trim().to_string()),
                        ("SERVICE_ENDPOINT", [_]) => {
                            if let Some(s) = cur.take() {
                                out.push(s);
                            }
                        }
                        _ => {}
                    }
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

/// Why `get_service` could not be read; each names GOCDB's URL.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("reading GOCDB {url}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("reading GOCDB {url}: HTTP {status}")]
    Status { url: String, status: reqwest::StatusCode },
    /// Not flattened into a source: the message already carries the parse error.
    #[error("reading GOCDB {url}: {error}")]
    Parse { url: String, error: GocdbError },
}

/// Every service of `service_type` GOCDB's public API at `url` lists (`get_service`); unlike
/// [`lookup`], a GOCDB that cannot be read is an error.
pub async fn services(url: &str, service_type: &str, timeout: Duration) -> Result<Vec<GocService>, FetchError> {
    let http = reqwest::Client::builder().timeout(timeout).build().map_err(FetchError::Client)?;
    let request = |source| FetchError::Request { url: url.to_owned(), source };
    let resp = http
        .get(url)
        .query(&[("method", "get_service"), ("service_type", service_type)])
        .send()
        .await
        .map_err(request)?;
    let status = resp.status();
    let body = resp.text().await.map_err(request)?;
    if !status.is_success() {
        return Err(FetchError::Status { url: url.to_owned(), status });
    }
    parse_services(&body).map_err(|error| FetchError::Parse { url: url.to_owned(), error })
}

/// The Service `OtherInfo` for `endpoint`: `{gocdb_id, site_name}` of the
/// first matching service, or empty (with a warning) when none matches or
/// GOCDB cannot be read.
pub async fn lookup(gocdb_url: &str, service_type: &str, endpoint: &str, insecure: bool, timeout: Duration) -> Object {
    let http = match reqwest::Client::builder().danger_accept_invalid_certs(insecure).timeout(timeout).build() {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!("GOCDB: building the HTTP client: {e}");
            return Object::new();
        }
    };
    let resp = http.get(gocdb_url).query(&[("method", "get_service"), ("service_type", service_type)]).send().await;
    let body = match resp {
        Ok(r) if r.status().as_u16() == 200 => r.text().await.unwrap_or_default(),
        Ok(r) => {
            tracing::warn!("Something went wrong with GOC: HTTP {}", r.status());
            return Object::new();
        }
        Err(e) => {
            tracing::warn!("GOCDB {gocdb_url}: {e}");
            return Object::new();
        }
    };
    match parse_services(&body) {
        Ok(services) => match find(&services, endpoint) {
            Some(o) => o,
            None => {
                tracing::warn!("Unable to find URL {endpoint} in GOCDB!");
                Object::new()
            }
        },
        Err(e) => {
            tracing::warn!("Something went wrong with parsing GOC output: {e}");
            Object::new()
        }
    }
}

/// `{gocdb_id, site_name}` of the first service with a URL like `endpoint`.
pub fn find(services: &[GocService], endpoint: &str) -> Option<Object> {
    services.iter().find(|s| s.urls.iter().any(|u| urls_similar(endpoint, u))).map(|s| {
        let mut o = Object::new();
        o.insert("gocdb_id", s.primary_key.as_str());
        o.insert("site_name", s.site_name.clone().map(Json::from).unwrap_or(Json::Null));
        o
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<results>
  <SERVICE_ENDPOINT PRIMARY_KEY="1G0"><PRIMARY_KEY>1G0</PRIMARY_KEY><SITENAME>A</SITENAME>
    <URL>https://a.example:5000/v3</URL><ENDPOINTS/></SERVICE_ENDPOINT>
  <SERVICE_ENDPOINT PRIMARY_KEY="2G0"><SITENAME>B&amp;C</SITENAME>
    <ENDPOINTS><ENDPOINT><ID>1</ID><URL>https://b.example/identity/v3/</URL></ENDPOINT></ENDPOINTS></SERVICE_ENDPOINT>
</results>"#;

    #[test]
    fn matches_url_or_endpoint_url_ignoring_slashes() {
        let s = parse_services(XML).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].site_name.as_deref(), Some("B&C"));
        let o = find(&s, "https://b.example/identity/v3").unwrap();
        assert_eq!(pyjson::dumps(&Json::Object(o)), r#"{"gocdb_id": "2G0", "site_name": "B&C"}"#);
        assert!(find(&s, "https://a.example:5000/v3/").is_some());
        assert!(find(&s, "https://a.example/v3").is_none(), "the port is part of netloc");
        assert!(find(&s, "http://a.example:5000/v3").is_none());
    }

    /// A one-connection HTTP server answering `status` with `body`; its base URL.
    async fn answer(status: &'static str, body: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/gocdbpi/public/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut c, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf).await;
            let reply =
                format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            c.write_all(reply.as_bytes()).await.unwrap();
        });
        url
    }

    #[tokio::test]
    async fn services_are_read_and_an_unreadable_gocdb_is_an_error_naming_it() {
        let url = answer("200 OK", XML).await;
        let s = services(&url, "org.openstack.nova", Duration::from_secs(5)).await.unwrap();
        assert_eq!(s.iter().map(|s| s.primary_key.as_str()).collect::<Vec<_>>(), ["1G0", "2G0"]);
        let url = answer("503 Service Unavailable", "down").await;
        let e = services(&url, "org.openstack.nova", Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(e.to_string(), format!("reading GOCDB {url}: HTTP 503 Service Unavailable"));
        let url = answer("200 OK", "<results><SERVICE_ENDPOINT></results>").await;
        let e = services(&url, "org.openstack.nova", Duration::from_secs(5)).await.unwrap_err();
        assert!(e.to_string().starts_with(&format!("reading GOCDB {url}: GOCDB answer: ")), "{e}");
        let e = services("http://127.0.0.1:1/", "org.openstack.nova", Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(e.to_string(), "reading GOCDB http://127.0.0.1:1/");
        assert!(std::error::Error::source(&e).is_some(), "the connection error is its source");
    }
}
