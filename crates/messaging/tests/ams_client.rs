//! The AMS client against small in-process mock servers (plain HTTP, and TLS with client
//! certificates for the X.509 token exchange): the SSM capture's publish request byte for
//! byte, token exchange and refresh, batching, concurrency, pull/ack, error classes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use messaging::ams::{self, AmsClient, AmsConfig, AmsError, Auth, ErrorClass, OutgoingMessage};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};
use tokio_rustls::rustls;

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ssm-4.0")
}

// ---------------------------------------------------------------- mock server

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    peer_dn: Option<String>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

struct Reply {
    status: u16,
    body: String,
    delay: Duration,
}

fn reply(status: u16, body: impl Into<String>) -> Reply {
    Reply { status, body: body.into(), delay: Duration::ZERO }
}

type Responder = Arc<dyn Fn(&Seen, usize) -> Reply + Send + Sync>;

#[derive(Clone)]
struct MockState {
    seen: Arc<Mutex<Vec<Seen>>>,
    responder: Responder,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct PeerDn(Option<String>);

struct Mock {
    addr: SocketAddr,
    state: MockState,
}

impl Mock {
    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
    fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    fn https_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }
}

async fn handle(
    axum::extract::State(st): axum::extract::State<MockState>,
    Extension(PeerDn(peer_dn)): Extension<PeerDn>,
    req: Request<Body>,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap().to_vec();
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        headers: parts.headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect(),
        body,
        peer_dn,
    };
    let n = {
        let mut s = st.seen.lock().unwrap();
        s.push(seen.clone());
        s.len() - 1
    };
    let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    st.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let r = (st.responder)(&seen, n);
    tokio::time::sleep(r.delay).await;
    st.in_flight.fetch_sub(1, Ordering::SeqCst);
    (StatusCode::from_u16(r.status).unwrap(), [("content-type", "application/json; charset=utf-8")], r.body)
        .into_response()
}

fn mock_state(responder: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> MockState {
    MockState {
        seen: Default::default(),
        responder: Arc::new(responder),
        in_flight: Default::default(),
        max_in_flight: Default::default(),
    }
}

async fn start_http(responder: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Mock {
    let state = mock_state(responder);
    let app = axum::Router::new().fallback(handle).with_state(state.clone()).layer(Extension(PeerDn(None)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Mock { addr, state }
}

/// A TLS server with `pki`'s server certificate, asking for (not requiring) a client
/// certificate from `pki`'s CA; the client's DN reaches the handler.
async fn start_tls(pki: &Pki, responder: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Mock {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.to_der().unwrap().into()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(pki.server_key.private_key_to_pkcs8().unwrap().into());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server.to_der().unwrap().into()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let state = mock_state(responder);
    let app = axum::Router::new().fallback(handle).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let dn = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| smime::legacy_dn(X509::from_der(c.as_ref()).unwrap().subject_name()));
                let svc = hyper_util::service::TowerToHyperService::new(app.layer(Extension(PeerDn(dn))));
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Mock { addr, state }
}

// ---------------------------------------------------------------- test PKI

struct Pki {
    dir: tempfile::TempDir,
    ca: X509,
    server: X509,
    server_key: PKey<Private>,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn new_cert(
    subject: &[(&str, &str)],
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    kind: &str,
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    for (k, v) in subject {
        name.append_entry_by_text(k, v).unwrap();
    }
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    static SERIAL: AtomicUsize = AtomicUsize::new(1);
    b.set_serial_number(
        &BigNum::from_u32(SERIAL.fetch_add(1, Ordering::SeqCst) as u32).unwrap().to_asn1_integer().unwrap(),
    )
    .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map(|(c, _)| c.subject_name()).unwrap_or(&name)).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
    b.set_pubkey(key).unwrap();
    match kind {
        "ca" => b.append_extension(BasicConstraints::new().critical().ca().build().unwrap()).unwrap(),
        "server" => {
            let san = SubjectAlternativeName::new()
                .dns("localhost")
                .ip("127.0.0.1")
                .build(&b.x509v3_context(issuer.map(|(c, _)| c.as_ref()), None))
                .unwrap();
            b.append_extension(san).unwrap();
            b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap()).unwrap();
        }
        _ => b.append_extension(ExtendedKeyUsage::new().client_auth().build().unwrap()).unwrap(),
    }
    b.sign(issuer.map(|(_, k)| k).unwrap_or(key), MessageDigest::sha256()).unwrap();
    b.build()
}

fn pki() -> Pki {
    use std::os::unix::fs::PermissionsExt;
    let key = || PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let (ca_key, server_key, client_key) = (key(), key(), key());
    let ca = new_cert(&[("CN", "mock AMS CA")], &ca_key, None, "ca");
    let server = new_cert(&[("CN", "localhost")], &server_key, Some((&ca, &ca_key)), "server");
    let client = new_cert(
        &[("C", "XX"), ("O", "Test"), ("CN", "sender.example.org")],
        &client_key,
        Some((&ca, &ca_key)),
        "client",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.to_pem().unwrap()).unwrap();
    std::fs::write(dir.path().join("client-cert.pem"), client.to_pem().unwrap()).unwrap();
    let key_path = dir.path().join("client-key.pem");
    std::fs::write(&key_path, client_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    Pki { dir, ca, server, server_key }
}

fn token_cfg(base: &str, token: &str) -> AmsConfig {
    AmsConfig::new(base, "accounting", Auth::Token(token.into())).unwrap()
}

fn x509_cfg(pki: &Pki, base: &str, authn: &Mock) -> AmsConfig {
    let auth = Auth::X509 {
        authn_base: authn.https_url().parse().unwrap(),
        host: "localhost".into(),
        cert: pki.path("client-cert.pem"),
        key: pki.path("client-key.pem"),
    };
    let mut cfg = AmsConfig::new(base, "accounting", auth).unwrap();
    cfg.ca = Some(pki.path("ca.pem"));
    cfg
}

fn ids_reply(seen: &Seen, first: usize) -> Reply {
    let n = serde_json::from_slice::<serde_json::Value>(&seen.body).unwrap()["messages"].as_array().unwrap().len();
    let ids: Vec<String> = (first..first + n).map(|i| i.to_string()).collect();
    reply(200, serde_json::json!({ "messageIds": ids }).to_string())
}

const TOPIC: &str = "eu-egi-cloud-accounting";

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn publish_request_matches_the_ssm_capture_byte_for_byte() {
    let capture: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vectors().join("requests.json")).unwrap()).unwrap();
    let want = &capture["publish_request"];
    let want_body = want["body"].as_str().unwrap();
    let sent: serde_json::Value = serde_json::from_str(want_body).unwrap();
    let empaid = sent["messages"][0]["attributes"]["empaid"].as_str().unwrap();
    let smime = std::fs::read(vectors().join("published-data.smime")).unwrap();

    let mock = start_http(|_, _| reply(200, r#"{"messageIds": ["42"]}"#)).await;
    let client = AmsClient::new(token_cfg(&mock.http_url(), "tok-from-cert")).unwrap();
    let ids = client.publish(TOPIC, &[OutgoingMessage::ssm(empaid, &smime)]).await;
    assert_eq!(ids.into_iter().map(Result::unwrap).collect::<Vec<_>>(), ["42"]);

    let seen = mock.seen();
    assert_eq!(seen.len(), 1);
    let got = &seen[0];
    assert_eq!(got.method, want["m"].as_str().unwrap());
    assert_eq!(got.path, want["path"].as_str().unwrap());
    assert_eq!(std::str::from_utf8(&got.body).unwrap(), want_body, "body byte-identical to SSM's");
    assert_eq!(got.header("x-api-key"), want["headers"]["x-api-key"].as_str());
    assert_eq!(got.header("content-length"), want["headers"]["Content-Length"].as_str());
    assert_eq!(got.header("content-type"), None, "SSM sends no Content-Type");
    assert_eq!(got.header("accept"), Some("*/*"));
    assert!(got.header("user-agent").unwrap().starts_with("fedsite/"));
}

#[tokio::test]
async fn several_messages_share_one_request_in_python_json_layout() {
    let mock = start_http(|s, _| ids_reply(s, 7)).await;
    let client = AmsClient::new(token_cfg(&mock.http_url(), "t")).unwrap();
    let msgs = [OutgoingMessage::ssm("a/1", b"one"), OutgoingMessage::ssm("a/2", b"two")];
    let ids: Vec<String> = client.publish(TOPIC, &msgs).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(ids, ["7", "8"]);
    assert_eq!(
        String::from_utf8(mock.seen()[0].body.clone()).unwrap(),
        r#"{"messages": [{"attributes": {"empaid": "a/1"}, "data": "b25l"}, {"attributes": {"empaid": "a/2"}, "data": "dHdv"}]}"#
    );
}

#[tokio::test]
async fn x509_token_exchange_uses_the_client_certificate_and_is_cached() {
    let pki = pki();
    let authn = start_tls(&pki, |_, _| reply(200, "{\n \"token\": \"tok-1\"\n}")).await;
    let ams = start_http(ids_reply).await;
    let client = AmsClient::new(x509_cfg(&pki, &ams.http_url(), &authn)).unwrap();
    for _ in 0..3 {
        assert!(client.publish(TOPIC, &[OutgoingMessage::ssm("d/e", b"x")]).await[0].is_ok());
    }
    assert_eq!(client.token_exchanges(), 1);
    let ex = &authn.seen()[0];
    assert_eq!((ex.method.as_str(), ex.path.as_str()), ("GET", "/v1/service-types/ams/hosts/localhost:authx509"));
    assert_eq!(ex.peer_dn.as_deref(), Some("/C=XX/O=Test/CN=sender.example.org"));
    assert_eq!(ex.header("x-api-key"), None);
    assert!(ams.seen().iter().all(|s| s.header("x-api-key") == Some("tok-1")));
}

#[tokio::test]
async fn a_401_gets_one_new_token_and_one_retry() {
    let pki = pki();
    let authn = start_tls(&pki, |_, n| reply(200, format!(r#"{{"token": "tok-{}"}}"#, n + 1))).await;
    let unauthorized = r#"{"error": {"code": 401, "message": "Unauthorized", "status": "UNAUTHORIZED"}}"#;
    let ams =
        start_http(
            move |s, n| {
                if s.header("x-api-key") == Some("tok-2") { ids_reply(s, n) } else { reply(401, unauthorized) }
            },
        )
        .await;
    let client = AmsClient::new(x509_cfg(&pki, &ams.http_url(), &authn)).unwrap();
    let r = client.publish(TOPIC, &[OutgoingMessage::ssm("d/e", b"x")]).await;
    assert_eq!(r[0].as_deref().unwrap(), "1");
    assert_eq!(client.token_exchanges(), 2);
    let keys: Vec<_> = ams.seen().iter().map(|s| s.header("x-api-key").unwrap().to_owned()).collect();
    assert_eq!(keys, ["tok-1", "tok-2"]);

    // A server that keeps refusing: exactly one refresh, then a permanent error.
    let ams = start_http(move |_, _| reply(401, unauthorized)).await;
    let client = AmsClient::new(x509_cfg(&pki, &ams.http_url(), &authn)).unwrap();
    let err = client.publish(TOPIC, &[OutgoingMessage::ssm("d/e", b"x")]).await.remove(0).unwrap_err();
    assert_eq!((err.status(), err.class()), (Some(401), ErrorClass::Permanent));
    assert_eq!(client.token_exchanges(), 2);
    assert_eq!(ams.seen().len(), 2);
}

#[tokio::test]
async fn static_token_401_is_permanent_without_refresh() {
    let ams = start_http(|_, _| {
        reply(401, r#"{"error": {"code": 401, "message": "Unauthorized", "status": "UNAUTHORIZED"}}"#)
    })
    .await;
    let client = AmsClient::new(token_cfg(&ams.http_url(), "stale")).unwrap();
    let err = client.publish(TOPIC, &[OutgoingMessage::ssm("d/e", b"x")]).await.remove(0).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert_eq!(
        err.to_string(),
        "publishing 1 message(s) to topic eu-egi-cloud-accounting: HTTP 401: Unauthorized (UNAUTHORIZED)"
    );
    assert_eq!(ams.seen().len(), 1);
}

#[tokio::test]
async fn token_exchange_errors_carry_the_authn_message() {
    let pki = pki();
    let authn = start_tls(&pki, |_, _| {
        reply(404, r#"{"error": {"message": "Binding was not found", "code": 404, "status": "NOT FOUND"}}"#)
    })
    .await;
    let ams = start_http(ids_reply).await;
    let client = AmsClient::new(x509_cfg(&pki, &ams.http_url(), &authn)).unwrap();
    let err = client.token().await.unwrap_err();
    assert_eq!((err.status(), err.class()), (Some(404), ErrorClass::Permanent));
    assert!(err.to_string().contains("X.509 token exchange at https://localhost:"), "{err}");
    assert!(err.to_string().ends_with("HTTP 404: Binding was not found (NOT FOUND)"), "{err}");
    let authn_no_token = start_tls(&pki, |_, _| reply(200, "{}")).await;
    let client = AmsClient::new(x509_cfg(&pki, &ams.http_url(), &authn_no_token)).unwrap();
    assert!(matches!(
        client.token().await.unwrap_err(),
        AmsError::TokenExchange(inner) if matches!(*inner, AmsError::Protocol { .. })
    ));
    assert!(ams.seen().is_empty());
}

#[tokio::test]
async fn server_certificate_is_verified_against_the_configured_ca_unless_insecure() {
    let pki = pki();
    let ams = start_tls(&pki, ids_reply).await;
    let msg = [OutgoingMessage::ssm("d/e", b"x")];

    let mut cfg = token_cfg(&ams.https_url(), "t");
    cfg.ca = Some(pki.path("ca.pem"));
    assert_eq!(AmsClient::new(cfg).unwrap().publish(TOPIC, &msg).await[0].as_deref().unwrap(), "0");

    // A directory of PEM files works as a CA path too.
    let capath = pki.path("capath");
    std::fs::create_dir(&capath).unwrap();
    std::fs::copy(pki.path("ca.pem"), capath.join("mock.pem")).unwrap();
    std::fs::write(capath.join("mock.signing_policy"), "not a cert").unwrap();
    let mut cfg = token_cfg(&ams.https_url(), "t");
    cfg.ca = Some(capath);
    assert!(AmsClient::new(cfg).unwrap().publish(TOPIC, &msg).await[0].is_ok());

    // The vector CA did not issue the mock's certificate: refused, as a network error.
    let mut cfg = token_cfg(&ams.https_url(), "t");
    cfg.ca = Some(vectors().join("test-ca.pem"));
    let err = AmsClient::new(cfg).unwrap().publish(TOPIC, &msg).await.remove(0).unwrap_err();
    assert!(matches!(err, AmsError::Network { .. }), "{err}");
    let mut cfg = token_cfg(&ams.https_url(), "t");
    cfg.insecure = true;
    assert!(AmsClient::new(cfg).unwrap().publish(TOPIC, &msg).await[0].is_ok());
    assert_eq!(ams.seen().len(), 3);
}

#[test]
fn plan_batches_respects_the_limit_and_isolates_oversize_messages() {
    // body = 16 + sum + 2 per separator
    assert_eq!(ams::plan_batches(&[10, 10, 10], 16 + 30 + 4), vec![Ok(0..3)]);
    assert_eq!(ams::plan_batches(&[10, 10, 10], 16 + 30 + 3), vec![Ok(0..2), Ok(2..3)]);
    assert_eq!(ams::plan_batches(&[10, 100, 10, 10], 50), vec![Ok(0..1), Err(1), Ok(2..4)]);
    assert_eq!(ams::plan_batches(&[], 50), vec![]);
}

#[tokio::test]
async fn publish_batches_within_the_size_limit_and_keeps_ids_in_order() {
    let mock = start_http(|s, _| {
        let v: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
        let ids: Vec<String> = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("id-{}", m["attributes"]["empaid"].as_str().unwrap()))
            .collect();
        reply(200, serde_json::json!({ "messageIds": ids }).to_string())
    })
    .await;
    let mut cfg = token_cfg(&mock.http_url(), "t");
    let msgs: Vec<OutgoingMessage> = (0..10).map(|i| OutgoingMessage::ssm(&format!("d/{i}"), &[b'x'; 300])).collect();
    let one = msgs[0].to_json().len();
    cfg.max_request_bytes = 16 + 3 * one + 4; // three per request
    let mut msgs = msgs;
    msgs.insert(4, OutgoingMessage::ssm("d/big", &[b'y'; 2000]));
    let results = AmsClient::new(cfg.clone()).unwrap().publish(TOPIC, &msgs).await;
    for (m, r) in msgs.iter().zip(&results) {
        let empaid = &m.attributes[0].1;
        if empaid == "d/big" {
            let e = r.as_ref().unwrap_err();
            assert_eq!(e.class(), ErrorClass::TooLarge);
            assert!(matches!(e, AmsError::TooLargeLocal { limit, .. } if *limit == cfg.max_request_bytes));
        } else {
            assert_eq!(r.as_deref().unwrap(), format!("id-{empaid}"));
        }
    }
    let seen = mock.seen();
    assert_eq!(seen.len(), 4, "10 messages, 3 per request");
    assert!(seen.iter().all(|s| s.body.len() <= cfg.max_request_bytes));
    assert!(seen.iter().all(|s| !String::from_utf8_lossy(&s.body).contains("d/big")));
}

#[tokio::test]
async fn default_limit_keeps_each_request_under_one_megabyte() {
    let mock = start_http(ids_reply).await;
    let client = AmsClient::new(token_cfg(&mock.http_url(), "t")).unwrap();
    let msgs: Vec<OutgoingMessage> =
        (0..12).map(|i| OutgoingMessage::ssm(&format!("d/{i}"), &vec![b'z'; 200_000])).collect();
    assert!(client.publish(TOPIC, &msgs).await.iter().all(Result::is_ok));
    let seen = mock.seen();
    assert!(seen.len() >= 4);
    assert!(
        seen.iter().all(|s| s.body.len() < 1_000_000),
        "{:?}",
        seen.iter().map(|s| s.body.len()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let mock = start_http(|s, n| Reply { delay: Duration::from_millis(150), ..ids_reply(s, n) }).await;
    let mut cfg = token_cfg(&mock.http_url(), "t");
    cfg.concurrency = 2;
    let msgs: Vec<OutgoingMessage> = (0..6).map(|i| OutgoingMessage::ssm(&format!("d/{i}"), &[b'x'; 100])).collect();
    cfg.max_request_bytes = 16 + msgs[0].to_json().len(); // one per request
    assert!(AmsClient::new(cfg).unwrap().publish(TOPIC, &msgs).await.iter().all(Result::is_ok));
    assert_eq!(mock.seen().len(), 6);
    assert_eq!(mock.state.max_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn error_statuses_are_classified_with_the_ams_message() {
    let cases = [
        (400, "Invalid Request Body", "BAD_REQUEST", ErrorClass::Permanent),
        (403, "Access to this resource is forbidden", "FORBIDDEN", ErrorClass::Permanent),
        (404, "Topic doesn't exist", "NOT_FOUND", ErrorClass::Permanent),
        (408, "Request timeout", "TIMEOUT", ErrorClass::Retryable),
        (413, "Message size is too large", "INVALID_ARGUMENT", ErrorClass::TooLarge),
        (500, "Backend Error", "INTERNAL_SERVER_ERROR", ErrorClass::Retryable),
        (502, "Bad gateway", "UNAVAILABLE", ErrorClass::Retryable),
        (503, "Service unavailable", "UNAVAILABLE", ErrorClass::Retryable),
        (504, "Gateway timeout", "TIMEOUT", ErrorClass::Retryable),
    ];
    for (status, message, ams_status, class) in cases {
        let body = serde_json::json!({"error": {"code": status, "message": message, "status": ams_status}}).to_string();
        let mock = start_http(move |_, _| reply(status, body.clone())).await;
        let client = AmsClient::new(token_cfg(&mock.http_url(), "t")).unwrap();
        let err = client.publish(TOPIC, &[OutgoingMessage::ssm("d/e", b"x")]).await.remove(0).unwrap_err();
        assert_eq!(err.class(), class, "{status}");
        assert_eq!(err.is_retryable(), class == ErrorClass::Retryable);
        match &err {
            AmsError::Http { status: s, message: m, ams_status: a, .. } => {
                assert_eq!((*s, m.as_str(), a.as_deref()), (status, message, Some(ams_status)))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(mock.seen().len(), 1, "the client itself does not retry");
    }
    // Non-JSON error bodies are kept as the message.
    let mock = start_http(|_, _| reply(502, "<html>bad gateway</html>")).await;
    let err = AmsClient::new(token_cfg(&mock.http_url(), "t"))
        .unwrap()
        .publish(TOPIC, &[OutgoingMessage::ssm("d/e", b"x")])
        .await
        .remove(0)
        .unwrap_err();
    assert!(matches!(&err, AmsError::Http { message, .. } if message == "<html>bad gateway</html>"), "{err}");
}

#[tokio::test]
async fn network_failures_and_timeouts_are_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let client = AmsClient::new(token_cfg(&format!("http://{closed}"), "t")).unwrap();
    let err = client.publish(TOPIC, &[OutgoingMessage::ssm("d/e", b"x")]).await.remove(0).unwrap_err();
    assert!(matches!(err, AmsError::Network { .. }) && err.is_retryable(), "{err}");

    let slow = start_http(|s, n| Reply { delay: Duration::from_secs(3), ..ids_reply(s, n) }).await;
    let mut cfg = token_cfg(&slow.http_url(), "t");
    cfg.timeout = Duration::from_millis(300);
    let err =
        AmsClient::new(cfg).unwrap().publish(TOPIC, &[OutgoingMessage::ssm("d/e", b"x")]).await.remove(0).unwrap_err();
    assert!(matches!(&err, AmsError::Network { source, .. } if source.is_timeout()), "{err}");
    assert!(err.is_retryable());

    // A 200 without messageIds: the message may be stored; retrying is the safe choice.
    let odd = start_http(|_, _| reply(200, "{}")).await;
    let err = AmsClient::new(token_cfg(&odd.http_url(), "t"))
        .unwrap()
        .publish(TOPIC, &[OutgoingMessage::ssm("d/e", b"x")])
        .await
        .remove(0)
        .unwrap_err();
    assert!(matches!(err, AmsError::Protocol { .. }) && err.is_retryable());
}

#[tokio::test]
async fn pull_and_acknowledge_send_what_ssm_receiver_sends() {
    let smime = std::fs::read(vectors().join("published-data.smime")).unwrap();
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&smime)
    };
    let pulled = serde_json::json!({"receivedMessages": [
        {"ackId": "projects/accounting/subscriptions/sub:5",
         "message": {"attributes": {"empaid": "6b0bfb60/6b0bfb8c5f2505"}, "data": b64, "messageId": "5", "publishTime": "2026-11-29T10:16:46.123456789Z"}},
        {"ackId": "projects/accounting/subscriptions/sub:6",
         "message": {"data": "%%%", "messageId": "6", "publishTime": "2026-11-29T10:16:47Z"}}
    ]})
    .to_string();
    let mock =
        start_http(move |s, _| if s.path.ends_with(":pull") { reply(200, pulled.clone()) } else { reply(200, "{}") })
            .await;
    let client = AmsClient::new(token_cfg(&mock.http_url(), "t")).unwrap();
    let got = client.pull("sub", 1, false).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].ack_id, "projects/accounting/subscriptions/sub:5");
    assert_eq!(got[0].message_id, "5");
    assert_eq!(got[0].attributes.get("empaid").map(String::as_str), Some("6b0bfb60/6b0bfb8c5f2505"));
    assert_eq!(got[0].data.as_deref().unwrap(), &smime[..]);
    assert_eq!(got[0].publish_time, "2026-11-29T10:16:46.123456789Z");
    assert!(got[1].attributes.is_empty() && got[1].data.is_err());
    client.acknowledge("sub", &[got[0].ack_id.clone(), got[1].ack_id.clone()]).await.unwrap();

    let seen = mock.seen();
    assert_eq!(seen[0].path, "/v1/projects/accounting/subscriptions/sub:pull");
    assert_eq!(String::from_utf8_lossy(&seen[0].body), r#"{"maxMessages": "1", "returnImmediately": "false"}"#);
    assert_eq!(seen[1].path, "/v1/projects/accounting/subscriptions/sub:acknowledge");
    assert_eq!(
        String::from_utf8_lossy(&seen[1].body),
        r#"{"ackIds": ["projects/accounting/subscriptions/sub:5", "projects/accounting/subscriptions/sub:6"]}"#
    );
    assert!(seen.iter().all(|s| s.header("x-api-key") == Some("t")));

    let empty = start_http(|_, _| reply(200, r#"{"receivedMessages": []}"#)).await;
    assert!(AmsClient::new(token_cfg(&empty.http_url(), "t")).unwrap().pull("sub", 10, true).await.unwrap().is_empty());
    assert_eq!(String::from_utf8_lossy(&empty.seen()[0].body), r#"{"maxMessages": "10", "returnImmediately": "true"}"#);
}

#[tokio::test]
async fn bad_names_and_urls_are_configuration_errors() {
    assert!(matches!(AmsConfig::new("ftp://x", "p", Auth::Token("t".into())), Err(AmsError::Config(_))));
    assert!(AmsClient::new(token_cfg("http://127.0.0.1:1", "t")).is_ok());
    let mut cfg = token_cfg("http://127.0.0.1:1", "t");
    cfg.project = "a/b".into();
    assert!(matches!(AmsClient::new(cfg), Err(AmsError::Config(_))));
    let client = AmsClient::new(token_cfg("http://127.0.0.1:1", "t")).unwrap();
    let err = client.publish("../x", &[OutgoingMessage::ssm("d/e", b"x")]).await.remove(0).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    let cfg =
        AmsConfig::x509("msg.example.org", "accounting", "/nonexistent/cert.pem", "/nonexistent/key.pem").unwrap();
    assert_eq!(cfg.base_url.as_str(), "https://msg.example.org/");
    assert!(
        matches!(&cfg.auth, Auth::X509 { authn_base, host, .. } if authn_base.as_str() == "https://msg.example.org:8443/" && host == "msg.example.org")
    );
    let err = AmsClient::new(cfg).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
}

#[test]
fn client_and_its_futures_can_cross_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let client = AmsClient::new(token_cfg("http://127.0.0.1:1", "t")).unwrap();
    send_sync(&client);
    let msgs = [OutgoingMessage::ssm("d/e", b"x")];
    send(client.publish(TOPIC, &msgs));
    send(client.pull("sub", 1, true));
    send(client.acknowledge("sub", &[]));
    fn send_sync_type<T: Send + Sync>() {}
    send_sync_type::<smime::Signer>();
    send_sync_type::<smime::Verifier>();
}
