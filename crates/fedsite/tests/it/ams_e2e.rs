//! End to end over HTTPS: messages signed with `smime`, published with
//! `messaging::ams` (X.509 token exchange with a client certificate) to the simulated AMS,
//! pulled back, verified and acknowledged; and the AMS refusals (413, 403, unbound DN,
//! untrusted server) arriving as the right error classes.

use messaging::ams::{self, AmsClient, AmsError, Auth, ErrorClass, OutgoingMessage};
use sim::ams::{DEFAULT_PROJECT, DEFAULT_SUBSCRIPTION, DEFAULT_TOPIC, TEST_CLIENT_DN};
use smime::{Signer, Verifier};

const RECORD: &str =
    "APEL-cloud-message: v0.4\nVMUUID: 11111111-1111-4111-8111-111111111111\nSiteName: TEST-SITE\n%%\n";

async fn start(cert_dir: &std::path::Path, tweak: impl FnOnce(&mut sim::AmsConfig)) -> sim::SimHandle {
    let scenario = sim::scenario::builtin("tiny").unwrap().generate();
    let mut cfg = sim::SimConfig::new(scenario);
    let mut ams_cfg = sim::AmsConfig::new(cert_dir);
    tweak(&mut ams_cfg);
    cfg.ams = Some(ams_cfg);
    sim::start(cfg).await.expect("sim with AMS starts")
}

/// The client as a site configures it: X.509 token exchange with the host cert, sim CA trusted.
fn x509_client(sim: &sim::SimHandle, cert: &std::path::Path, key: &std::path::Path) -> AmsClient {
    let a = sim.ams().unwrap();
    let auth = Auth::X509 {
        authn_base: a.authn_url().parse().unwrap(),
        host: "localhost".into(),
        cert: cert.to_owned(),
        key: key.to_owned(),
    };
    let mut cfg = ams::AmsConfig::new(&a.url(), DEFAULT_PROJECT, auth).unwrap();
    cfg.ca = Some(a.ca_pem_path());
    AmsClient::new(cfg).unwrap()
}

fn token_client(sim: &sim::SimHandle, user: &str) -> AmsClient {
    let a = sim.ams().unwrap();
    let mut cfg = ams::AmsConfig::new(&a.url(), DEFAULT_PROJECT, Auth::Token(a.token(user).unwrap())).unwrap();
    cfg.ca = Some(a.ca_pem_path());
    AmsClient::new(cfg).unwrap()
}

#[tokio::test]
async fn signed_messages_travel_through_the_simulated_ams_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path(), |_| {}).await;
    let a = sim.ams().unwrap();
    let signer = Signer::new(a.client_cert_path(), a.client_key_path()).unwrap();
    assert_eq!(signer.subject_dn(), TEST_CLIENT_DN);

    let msgs: Vec<OutgoingMessage> = (0..3)
        .map(|i| OutgoingMessage::ssm(&format!("6b0bfb60/6b0bfb8c5f250{i}"), &signer.sign(RECORD.as_bytes()).unwrap()))
        .collect();
    let client = x509_client(&sim, &a.client_cert_path(), &a.client_key_path());
    let ids: Vec<String> = client.publish(DEFAULT_TOPIC, &msgs).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(ids, ["0", "1", "2"]);
    assert_eq!(client.token_exchanges(), 1);

    let stored = a.published(DEFAULT_PROJECT, DEFAULT_TOPIC);
    assert_eq!(stored.len(), 3);
    for (m, s) in msgs.iter().zip(&stored) {
        assert_eq!(s.attributes.get("empaid"), Some(&m.attributes[0].1));
        assert_eq!(s.data.as_deref(), Some(&m.data[..]));
        assert_eq!(s.publisher, "sender");
    }
    let counts = a.counts();
    assert_eq!((counts.publish_requests, counts.messages_published, counts.token_exchanges), (1, 3, 1));

    // The receiver side: pull, verify against the CA, acknowledge.
    let receiver = token_client(&sim, "receiver");
    let verifier = Verifier::new(a.ca_pem_path()).unwrap();
    let pulled = receiver.pull(DEFAULT_SUBSCRIPTION, 10, true).await.unwrap();
    assert_eq!(pulled.len(), 3);
    for (p, m) in pulled.iter().zip(&msgs) {
        assert_eq!(p.attributes.get("empaid"), Some(&m.attributes[0].1));
        let v = verifier.verify(p.data.as_ref().unwrap()).unwrap();
        assert_eq!(v.signer_dn, TEST_CLIENT_DN);
        assert_eq!(v.body, RECORD.as_bytes());
    }
    let acks: Vec<String> = pulled.iter().map(|p| p.ack_id.clone()).collect();
    receiver.acknowledge(DEFAULT_SUBSCRIPTION, &acks).await.unwrap();
    assert_eq!(a.subscription_offset(DEFAULT_PROJECT, DEFAULT_SUBSCRIPTION), Some(3));
    assert!(receiver.pull(DEFAULT_SUBSCRIPTION, 10, true).await.unwrap().is_empty());
    sim.stop().await;
}

#[tokio::test]
async fn oversize_message_is_413_too_large_and_others_still_go() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path(), |c| c.max_message_bytes = 4_000).await;
    let client = token_client(&sim, "sender");
    let small = OutgoingMessage::ssm("d/small", b"small");
    let big = OutgoingMessage::ssm("d/big", &[b'x'; 3_500]); // 4668 bytes of base64
    let mut cfg = client.config().clone();
    cfg.max_request_bytes = 16 + big.to_json().len(); // big fits alone; each message alone
    let client = AmsClient::new(cfg).unwrap();
    let r = client.publish(DEFAULT_TOPIC, &[small.clone(), big, small]).await;
    assert!(r[0].is_ok() && r[2].is_ok());
    let err = r[1].as_ref().unwrap_err();
    assert_eq!((err.status(), err.class()), (Some(413), ErrorClass::TooLarge));
    assert!(matches!(err, AmsError::Http { message, .. } if message == "Message size is too large"), "{err}");
    assert_eq!(sim.ams().unwrap().counts().too_large, 1);
    assert_eq!(sim.ams().unwrap().published(DEFAULT_PROJECT, DEFAULT_TOPIC).len(), 2);
    sim.stop().await;
}

#[tokio::test]
async fn refusals_are_permanent_or_network_errors() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path(), |_| {}).await;
    let a = sim.ams().unwrap();
    let msg = [OutgoingMessage::ssm("d/e", b"x")];

    // A consumer is not in the topic's ACL.
    let err = token_client(&sim, "receiver").publish(DEFAULT_TOPIC, &msg).await.remove(0).unwrap_err();
    assert_eq!((err.status(), err.class()), (Some(403), ErrorClass::Permanent), "{err}");

    // A certificate from the right CA but bound to no AMS user.
    let (cert, key) = a.issue_client_cert("nobody", "/C=XX/O=Test/CN=nobody.example.org").unwrap();
    let err = x509_client(&sim, &cert, &key).token().await.unwrap_err();
    assert_eq!((err.status(), err.class()), (Some(404), ErrorClass::Permanent), "{err}");
    assert!(err.to_string().contains("Binding was not found"), "{err}");

    // A static token AMS does not know.
    let mut cfg = ams::AmsConfig::new(&a.url(), DEFAULT_PROJECT, Auth::Token("bogus".into())).unwrap();
    cfg.ca = Some(a.ca_pem_path());
    let err = AmsClient::new(cfg).unwrap().publish(DEFAULT_TOPIC, &msg).await.remove(0).unwrap_err();
    assert_eq!((err.status(), err.class()), (Some(401), ErrorClass::Permanent), "{err}");

    // The sim's certificate is not trusted without its CA.
    let cfg = ams::AmsConfig::new(&a.url(), DEFAULT_PROJECT, Auth::Token(a.token("sender").unwrap())).unwrap();
    let err = AmsClient::new(cfg).unwrap().publish(DEFAULT_TOPIC, &msg).await.remove(0).unwrap_err();
    assert!(matches!(err, AmsError::Network { .. }) && err.is_retryable(), "{err}");
    assert!(a.published(DEFAULT_PROJECT, DEFAULT_TOPIC).is_empty());
    sim.stop().await;
}
