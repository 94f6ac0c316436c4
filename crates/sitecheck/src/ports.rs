//! Network checks: the inbound ports of the catalog's public endpoints take
//! TCP connections, and the outbound ones to the AMS host (443, 8443)
//! connect with TLS verified.

use std::time::Duration;

use openstack::Session;

use crate::catalog::{self, error_chain};
use crate::check::Check;
use crate::config::CheckConfig;
use crate::error::ConnectError;

/// host and port of a URL (the scheme's default port when none).
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let u = url::Url::parse(url).ok()?;
    Some((u.host_str()?.trim_matches(['[', ']']).to_string(), u.port_or_known_default()?))
}

/// One TCP connection attempt.
pub async fn connect(host: &str, port: u16, timeout: Duration) -> Result<(), ConnectError> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(ConnectError::Io(e)),
        Err(_) => Err(ConnectError::Timeout { secs: timeout.as_secs_f32() }),
    }
}

/// host:port, the first service's key, the services' labels and usual ports, a URL.
type PortGroup = ((String, u16), &'static str, Vec<&'static str>, Vec<u16>, String);

/// The inbound family: one check per distinct host:port of the public
/// endpoints.
pub async fn inbound(cfg: &CheckConfig, admin: &Session) -> Vec<Check> {
    let token = match admin.token().await {
        Ok(t) => t,
        Err(e) => {
            return vec![Check::critical(
                "ports.token",
                "a token with its catalog",
                e.to_string(),
                "check the credentials",
            )];
        }
    };
    let pid = token.project.as_ref().map(|p| p.id.as_str());
    let mut groups: Vec<PortGroup> = Vec::new();
    let mut out = Vec::new();
    for r in catalog::wanted(cfg, &token.catalog) {
        let Some(found) = catalog::find(&token.catalog, r, cfg.region.as_deref(), pid) else {
            out.push(Check::skipped(
                format!("ports.{}", r.key),
                format!("inbound TCP to the public {} endpoint", r.label),
                format!("no public {} endpoint in the catalog (see catalog.{})", r.types[0], r.key),
            ));
            continue;
        };
        let Some(hp) = host_port(&found.url) else {
            out.push(Check::critical(
                format!("ports.{}", r.key),
                format!("inbound TCP to the public {} endpoint", r.label),
                format!("cannot read host and port from {}", found.url),
                "correct the endpoint URL: openstack endpoint set --url <URL> <endpoint id>",
            ));
            continue;
        };
        match groups.iter_mut().find(|g| g.0 == hp) {
            Some(g) => {
                g.2.push(r.label);
                g.3.push(r.default_port);
            }
            None => groups.push((hp, r.key, vec![r.label], vec![r.default_port], found.url.clone())),
        }
    }
    for ((host, port), key, labels, defaults, url) in groups {
        let who = labels.join(", ");
        let usual: Vec<String> = defaults.iter().map(u16::to_string).collect();
        let tested = format!("inbound TCP {host}:{port} ({who} public endpoint; EGI's usual port {})", usual.join("/"));
        match connect(&host, port, cfg.connect_timeout).await {
            Ok(()) => out.push(Check::ok(format!("ports.{key}"), tested, format!("{host}:{port} accepts connections ({who})"))),
            Err(e) => out.push(Check::critical(
                format!("ports.{key}"),
                tested,
                format!("cannot connect to {host}:{port} ({who} {url}): {e}"),
                format!(
                    "open TCP {port} inbound to {host} for the Internet (host firewall, security groups, site firewall) and make sure {who} listens there"
                ),
            )),
        }
    }
    out
}

/// The outbound family: a verified TLS connection to each AMS port.
pub async fn outbound_ams(cfg: &CheckConfig) -> Vec<Check> {
    let ams = &cfg.ams;
    let mut b = reqwest::Client::builder().connect_timeout(cfg.connect_timeout).timeout(cfg.connect_timeout * 3);
    if let Some(ca) = &ams.ca {
        let certs = std::fs::read(ca)
            .map_err(|e| format!("reading {}: {e}", ca.display()))
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("{}: {e}", ca.display())));
        match certs {
            Ok(c) => b = b.tls_certs_only(c),
            Err(e) => {
                return vec![Check::critical(
                    "ams.ca",
                    "the CA bundle AMS's certificate is verified with",
                    e,
                    "point --ams-ca (or [broker] capath) at a PEM bundle holding the IGTF/system CAs",
                )];
            }
        }
    }
    let http = match b.build() {
        Ok(h) => h,
        Err(e) => return vec![Check::critical("ams.client", "an HTTPS client", e.to_string(), "-")],
    };
    let mut out = Vec::new();
    for port in &ams.ports {
        let host = &ams.host;
        let id = format!("ams.{port}");
        let tested = format!("outbound TLS to {host}:{port} with the server certificate verified");
        if let Err(e) = connect(host, *port, cfg.connect_timeout).await {
            out.push(Check::critical(
                id,
                tested,
                format!("cannot connect to {host}:{port}: {e}"),
                format!(
                    "allow outbound TCP {port} to {host} (site firewall, proxy); SSM/fedsite send needs 443 and 8443"
                ),
            ));
            continue;
        }
        match http.get(format!("https://{host}:{port}/")).send().await {
            Ok(resp) => out.push(Check::ok(
                id,
                tested,
                format!("TLS to {host}:{port} verified (HTTP {})", resp.status().as_u16()),
            )),
            Err(e) => out.push(Check::critical(
                id,
                tested,
                format!("TCP connects but TLS to {host}:{port} fails: {}", error_chain(&e)),
                "install the CA that signed AMS's certificate (IGTF/system CA bundle, --ams-ca) and check no proxy intercepts TLS",
            )),
        }
    }
    out
}
