//! The endpoint's TLS facts: a TLS 1.2 handshake (with SNI) that records the
//! server certificate's issuer DN and the client CAs the server accepts
//! (`CertificateRequest`), both as OpenSSL one-line DNs (`/C=../O=../CN=..`).
//! Plain-HTTP endpoints and failed handshakes give `UNKNOWN`, as in the original.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// Issuer and accepted client CAs of an HTTPS endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaInfo {
    pub issuer: String,
    pub trusted_cas: Vec<String>,
}

impl CaInfo {
    pub fn unknown() -> CaInfo {
        CaInfo { issuer: "UNKNOWN".into(), trusted_cas: vec!["UNKNOWN".into()] }
    }
}

/// OpenSSL short names of the usual DN attributes.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.12" => "title",
        "2.5.4.17" => "postalCode",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// `X509_NAME_oneline`: `/SN=value` per attribute, bytes outside
/// printable ASCII as `\xHH`.
pub fn oneline(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    for rdn in name.iter() {
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            out.push('/');
            out.push_str(short_name(&oid).unwrap_or(&oid));
            out.push('=');
            for &b in attr.attr_value().data.iter() {
                if (b' '..=b'~').contains(&b) {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("\\x{b:02X}"));
                }
            }
        }
    }
    out
}

/// A DER `Name` as a one-line DN.
pub fn oneline_der(der: &[u8]) -> Option<String> {
    X509Name::from_der(der).ok().map(|(_, n)| oneline(&n))
}

#[derive(Debug)]
struct Recorder {
    inner: Option<Arc<WebPkiServerVerifier>>,
    cert: Mutex<Option<Vec<u8>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.cert.lock().unwrap() = Some(end_entity.to_vec());
        match &self.inner {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            None => Ok(ServerCertVerified::assertion()),
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[derive(Debug, Default)]
struct CaNames(Mutex<Option<Vec<Vec<u8>>>>);

impl ResolvesClientCert for CaNames {
    fn resolve(&self, hints: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<rustls::sign::CertifiedKey>> {
        *self.0.lock().unwrap() = Some(hints.iter().map(|h| h.to_vec()).collect());
        None
    }
    fn has_certs(&self) -> bool {
        false
    }
}

/// Probes `endpoint_url`. `insecure` skips verification; otherwise the
/// server must chain to `ca_file` (PEM) or, without one, to the system CAs.
pub async fn probe(endpoint_url: &str, insecure: bool, ca_file: Option<&Path>, timeout: Duration) -> CaInfo {
    match probe_inner(endpoint_url, insecure, ca_file, timeout).await {
        Ok(Some(info)) => info,
        Ok(None) => CaInfo::unknown(),
        Err(e) => {
            tracing::warn!("Issue when getting CA info from endpoint: {e}");
            CaInfo::unknown()
        }
    }
}

/// Why the endpoint's CA could not be found out (logged; the document then says unknown).
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("{url}: {source}")]
    Url { url: String, source: url::ParseError },
    #[error("no host")]
    NoHost,
    #[error("reading {}: {source}", path.display())]
    ReadCa { path: std::path::PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    BadCa { path: std::path::PathBuf, source: rustls::Error },
    #[error("{0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    #[error("{0}")]
    Tls(#[from] rustls::Error),
    #[error("{host}: {source}")]
    ServerName { host: String, source: rustls::pki_types::InvalidDnsNameError },
    /// The TCP connection or the TLS handshake failed.
    #[error("{0}")]
    Connect(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("no server certificate")]
    NoCertificate,
    #[error("{0}")]
    Certificate(#[from] x509_parser::nom::Err<x509_parser::error::X509Error>),
}

async fn probe_inner(
    endpoint_url: &str,
    insecure: bool,
    ca_file: Option<&Path>,
    timeout: Duration,
) -> Result<Option<CaInfo>, ProbeError> {
    let url =
        url::Url::parse(endpoint_url).map_err(|source| ProbeError::Url { url: endpoint_url.to_string(), source })?;
    if url.scheme() != "https" {
        return Ok(None);
    }
    let host = url.host_str().ok_or(ProbeError::NoHost)?.trim_matches(['[', ']']).to_string();
    let port = url.port().unwrap_or(443);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let inner = if insecure {
        None
    } else {
        let mut roots = RootCertStore::empty();
        match ca_file {
            Some(p) => {
                let pem = std::fs::read(p).map_err(|source| ProbeError::ReadCa { path: p.to_owned(), source })?;
                for c in rustls_pemfile_certs(&pem) {
                    roots.add(c).map_err(|source| ProbeError::BadCa { path: p.to_owned(), source })?;
                }
            }
            None => {
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(c);
                }
            }
        }
        Some(WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?)
    };
    let recorder = Arc::new(Recorder { inner, cert: Mutex::new(None), provider: provider.clone() });
    let names = Arc::new(CaNames::default());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_client_cert_resolver(names.clone());
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let server_name =
        ServerName::try_from(host.clone()).map_err(|source| ProbeError::ServerName { host: host.clone(), source })?;
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let mut tls = connector.connect(server_name, tcp).await?;
        use tokio::io::AsyncWriteExt;
        let _ = tls.shutdown().await;
        Ok::<(), std::io::Error>(())
    };
    tokio::time::timeout(timeout, handshake).await.map_err(|_| ProbeError::Timeout)??;
    let cert = recorder.cert.lock().unwrap().clone().ok_or(ProbeError::NoCertificate)?;
    let (_, parsed) = X509Certificate::from_der(&cert)?;
    let issuer = oneline(parsed.issuer());
    let trusted_cas =
        names.0.lock().unwrap().clone().unwrap_or_default().iter().filter_map(|d| oneline_der(d)).collect();
    Ok(Some(CaInfo { issuer, trusted_cas }))
}

/// The certificates of a PEM bundle.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oneline_escapes_like_openssl() {
        let mut params = rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "NL");
        dn.push(rcgen::DnType::OrganizationName, "GÉANT Vereniging");
        dn.push(rcgen::DnType::CommonName, "GEANT OV RSA CA 4");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (_, parsed) = X509Certificate::from_der(cert.der()).unwrap();
        assert_eq!(oneline(parsed.subject()), "/C=NL/O=G\\xC3\\x89ANT Vereniging/CN=GEANT OV RSA CA 4");
    }
}
