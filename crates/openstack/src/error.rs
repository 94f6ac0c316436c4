//! Error types: `ConfigError` for clouds.yaml / OS_* problems (naming the
//! file and key) and `Error` for everything on the wire (status, service,
//! method, URL without secrets, and the server's own message).

use std::fmt;

/// A problem with the cloud configuration. `origin` is the file path (with
/// `~` for the home directory) or `environment`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reading {origin}: {message}")]
pub struct ConfigError {
    pub origin: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(origin: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { origin: origin.into(), message: message.into() }
    }
}

/// The HTTP method and URL of a failed request (query strings kept; they
/// never carry secrets in these APIs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub service: String,
    pub method: String,
    pub url: String,
}

impl fmt::Display for RequestInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.service, self.method, self.url)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The service answered with a non-success status.
    #[error("{request}: HTTP {status}: {message}")]
    Api { request: RequestInfo, status: u16, message: String, request_id: Option<String> },
    /// Connecting, sending or reading failed (after the retries allowed).
    #[error("{request}: {message} (after {attempts} attempt(s))")]
    Transport { request: RequestInfo, message: String, attempts: u32, timeout: bool },
    /// The response body is not what the API reference says.
    #[error("{request}: decoding the response: {message}")]
    Decode { request: RequestInfo, message: String },
    /// The token catalog has no endpoint for the service.
    #[error("no {service} endpoint with interface {interface}{region} in the catalog (catalog has: {available})")]
    NoEndpoint { service: String, interface: String, region: String, available: String },
    /// A token response without what a token must have.
    #[error("authenticating at {url}: {message}")]
    Auth { url: String, message: String },
}

impl Error {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
    /// 403: the message names the missing role or policy rule when the
    /// service says so.
    pub fn is_forbidden(&self) -> bool {
        self.status() == Some(403)
    }
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401)
    }
    /// The server's message of an API error.
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Api { message, .. } => Some(message),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message of an error body in any service's shape: Keystone
/// `{"error":{"message"}}`, Nova/Cinder `{"itemNotFound":{"message"}}`,
/// Neutron `{"NeutronError":{"message"}}`, plain `{"message"}`, or
/// Glance/webob text/HTML (tags stripped, whitespace collapsed).
pub fn extract_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        && let Some(m) = json_message(&v)
    {
        return m;
    }
    let mut out = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut msg: String = collapsed.chars().take(500).collect();
    if msg.is_empty() {
        msg = "(empty body)".into();
    }
    msg
}

fn json_message(v: &serde_json::Value) -> Option<String> {
    let obj = v.as_object()?;
    for key in ["message", "error_message", "faultstring", "detail"] {
        if let Some(s) = obj.get(key).and_then(|m| m.as_str()) {
            return Some(s.to_string());
        }
    }
    // {"error": {...}}, {"itemNotFound": {...}}, {"NeutronError": {...}}, ...
    for inner in obj.values() {
        if let Some(o) = inner.as_object() {
            if let Some(s) = o.get("message").and_then(|m| m.as_str()) {
                return Some(s.to_string());
            }
        } else if let Some(s) = inner.as_str() {
            // {"error_message": "{\"faultstring\": ...}"} style
            if let Ok(nested) = serde_json::from_str::<serde_json::Value>(s)
                && let Some(m) = json_message(&nested)
            {
                return Some(m);
            }
        }
    }
    None
}

/// An error and its sources, `: `-joined, each message once (HTTP client errors often
/// repeat their source's text): what imagesync and sitecheck print for a failed request.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn a_chain_names_each_source_once() {
        let e = E(
            "GET https://x/: error sending request",
            Some(Box::new(E("error sending request", Some(Box::new(E("connection refused", None)))))),
        );
        assert_eq!(chain(&e), "GET https://x/: error sending request: connection refused");
        assert_eq!(chain(&E("alone", None)), "alone");
    }
}
