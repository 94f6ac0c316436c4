//! The simulated AMS's TLS side: a throw-away CA generated at start (rcgen),
//! the server certificate (SAN localhost, 127.0.0.1, ::1), a client
//! certificate for tests, and the HTTPS accept loop (tokio-rustls + hyper)
//! that hands the client certificate, when one was presented, to handlers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use chrono::{Datelike, Duration, Utc};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tower::ServiceExt;

/// DN of the client certificate written for tests and bound to the default
/// `sender` user (OpenSSL one-line form).
pub const TEST_CLIENT_DN: &str = "/C=XX/O=Test/CN=sender.example.org";

/// The DER client certificate the peer presented on this connection.
#[derive(Debug, Clone)]
pub struct PeerCert(pub Option<Vec<u8>>);

/// The generated CA and where its files are.
pub struct Pki {
    issuer: Issuer<'static, KeyPair>,
    pub ca_der: CertificateDer<'static>,
    pub dir: PathBuf,
    pub server_chain: Vec<CertificateDer<'static>>,
    pub server_key_pem: String,
}

fn validity(params: &mut CertificateParams) {
    let from = Utc::now() - Duration::days(1);
    let to = Utc::now() + Duration::days(3650);
    params.not_before = rcgen::date_time_ymd(from.year(), from.month() as u8, from.day() as u8);
    params.not_after = rcgen::date_time_ymd(to.year(), to.month() as u8, to.day() as u8);
}

/// Parses `/C=XX/O=Test/CN=x` (OpenSSL) or `CN=x,O=Test,C=XX` (RFC 2253)
/// into (type, value) pairs in certificate order.
pub fn parse_dn(dn: &str) -> Vec<(String, String)> {
    let pair = |s: &str| {
        let (k, v) = s.split_once('=').unwrap_or((s, ""));
        (k.trim().to_ascii_uppercase(), v.trim().to_string())
    };
    if dn.starts_with('/') {
        dn.split('/').filter(|s| !s.is_empty()).map(pair).collect()
    } else {
        let mut v: Vec<_> = dn.split(',').filter(|s| !s.trim().is_empty()).map(pair).collect();
        v.reverse();
        v
    }
}

fn distinguished_name(dn: &str) -> Result<DistinguishedName, String> {
    let mut out = DistinguishedName::new();
    for (k, v) in parse_dn(dn) {
        let ty = match k.as_str() {
            "C" => DnType::CountryName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "CN" => DnType::CommonName,
            "L" => DnType::LocalityName,
            "ST" => DnType::StateOrProvinceName,
            "DC" => DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]),
            other => return Err(format!("unsupported DN attribute {other} in {dn}")),
        };
        out.push(ty, v);
    }
    Ok(out)
}

/// Subject of a DER certificate as (type, value) pairs in certificate order.
pub fn cert_subject(der: &[u8]) -> Option<Vec<(String, String)>> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let mut out = Vec::new();
    for rdn in cert.subject().iter() {
        for atv in rdn.iter() {
            let oid = atv.attr_type();
            let name = match x509_parser::objects::oid2abbrev(oid, registry) {
                Ok("domainComponent") => "DC".to_string(),
                Ok(n) => n.to_ascii_uppercase(),
                Err(_) => oid.to_id_string(),
            };
            out.push((name, atv.as_str().unwrap_or_default().to_string()));
        }
    }
    Some(out)
}

/// OpenSSL one-line form of (type, value) pairs: `/C=XX/O=Test/CN=x`.
pub fn openssl_dn(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("/{k}={v}")).collect()
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

impl Pki {
    /// Generates the CA, server and test-client certificates into `dir`:
    /// `ca.pem`, `ca-key.pem`, `server-cert.pem`, `server-key.pem`,
    /// `client-cert.pem`, `client-key.pem` and `client.pem` (cert + key).
    pub(crate) fn generate(dir: &Path) -> Result<Pki, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let e = |e: rcgen::Error| format!("generating certificates: {e}");

        let ca_key = KeyPair::generate().map_err(e)?;
        let mut ca = CertificateParams::default();
        ca.distinguished_name = distinguished_name("/C=XX/O=Test/CN=fedsite sim AMS CA")?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        validity(&mut ca);
        let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
        write(&dir.join("ca.pem"), &ca_cert.pem())?;
        write_private(&dir.join("ca-key.pem"), &ca_key.serialize_pem())?;
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate().map_err(e)?;
        let mut server =
            CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]).map_err(e)?;
        server.distinguished_name = distinguished_name("/C=XX/O=Test/CN=localhost")?;
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        server.use_authority_key_identifier_extension = true;
        validity(&mut server);
        let server_cert = server.signed_by(&server_key, &issuer).map_err(e)?;
        write(&dir.join("server-cert.pem"), &server_cert.pem())?;
        write_private(&dir.join("server-key.pem"), &server_key.serialize_pem())?;

        let pki = Pki {
            ca_der: ca_cert.der().clone(),
            server_chain: vec![server_cert.der().clone(), ca_cert.der().clone()],
            server_key_pem: server_key.serialize_pem(),
            issuer,
            dir: dir.to_path_buf(),
        };
        pki.issue_client(TEST_CLIENT_DN, "client")?;
        Ok(pki)
    }

    /// Issues a client certificate (EKU clientAuth) for `dn` signed by the
    /// sim CA, written as `<name>-cert.pem`, `<name>-key.pem` and `<name>.pem`
    /// (cert then key, for reqwest's `Identity::from_pem`).
    pub(crate) fn issue_client(&self, dn: &str, name: &str) -> Result<(PathBuf, PathBuf), String> {
        let e = |e: rcgen::Error| format!("generating a client certificate: {e}");
        let key = KeyPair::generate().map_err(e)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(dn)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params);
        let cert = params.signed_by(&key, &self.issuer).map_err(e)?;
        let cert_path = self.dir.join(format!("{name}-cert.pem"));
        let key_path = self.dir.join(format!("{name}-key.pem"));
        write(&cert_path, &cert.pem())?;
        write_private(&key_path, &key.serialize_pem())?;
        write_private(&self.dir.join(format!("{name}.pem")), &format!("{}{}", cert.pem(), key.serialize_pem()))?;
        Ok((cert_path, key_path))
    }

    /// rustls server config; `client_roots` = Some(..) requests (but does not
    /// require) a client certificate chained to one of those roots, as
    /// argo-api-authn's Go server with `VerifyClientCertIfGiven`.
    pub(crate) fn server_config(
        &self,
        client_roots: Option<Vec<CertificateDer<'static>>>,
    ) -> Result<rustls::ServerConfig, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS config: {e}"))?;
        let builder = match client_roots {
            None => builder.with_no_client_auth(),
            Some(roots) => {
                let mut store = RootCertStore::empty();
                for r in roots {
                    store.add(r).map_err(|e| format!("adding a client CA: {e}"))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider)
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| format!("client verifier: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let key =
            PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).map_err(|e| format!("server key: {e}"))?;
        let mut config =
            builder.with_single_cert(self.server_chain.clone(), key).map_err(|e| format!("server certificate: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Reads every certificate of a PEM file (extra client CAs).
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("reading {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certs)
}

/// Serves `app` over TLS on `listener` until `shutdown` fires; each request
/// carries a [`PeerCert`] extension. Open connections are dropped on stop.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: rustls::ServerConfig,
    app: Router,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok((tcp, _peer)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let app = app.clone();
                conns.spawn(async move {
                    // A failed handshake (untrusted client certificate, plain
                    // HTTP, ...) just closes the connection, as a Go server does.
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
                    let svc = app.map_request(move |mut req: Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(PeerCert(cert.clone()));
                        req
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc))
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Binds `addr`, returning the listener and the port actually used.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let l = tokio::net::TcpListener::bind(addr).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}
