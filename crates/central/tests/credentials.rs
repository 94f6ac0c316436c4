//! The federation's credentials against the simulated site: the Check-in token (client
//! credentials, signature checked against the JWKS, cached, refreshed within the margin), the
//! Vault (JWT login, the KV v1 path per site and VO, a missing secret skips the VO, another
//! user's path refused), the secrets directory (private files only), and the CloudConfig of
//! a VO share logging in through OS-FEDERATION and with an application credential.

use std::collections::BTreeMap;
use std::time::Duration;

use central::credentials::{self, CheckinConfig, CheckinToken, CredentialError, SecretsDir, Vault, VoLogin};
use openstack::{Secret, Session};
use serde_json::{Value, json};

const SUB: &str = "fedsite-sim@sim";

async fn start(vault: BTreeMap<String, BTreeMap<String, String>>) -> sim::SimHandle {
    let mut cfg = sim::SimConfig::new(sim::scenario::builtin("tiny").unwrap().generate());
    cfg.vault = vault;
    sim::start(cfg).await.unwrap()
}

fn checkin(sim: &sim::SimHandle, secret: &str) -> CheckinConfig {
    CheckinConfig::discovery(
        &format!("{}/identity/oidc/.well-known/openid-configuration", sim.base_url()),
        "fedsite-sim",
        Secret::new(secret),
    )
}

fn keystone_host(sim: &sim::SimHandle) -> String {
    url::Url::parse(&sim.auth_url()).unwrap().host_str().unwrap().to_string()
}

#[tokio::test]
async fn the_checkin_token_is_verified_cached_and_refreshed_within_the_margin() {
    let sim = start(BTreeMap::new()).await;
    let t = CheckinToken::new(checkin(&sim, "secret")).unwrap();
    let a = t.get().await.unwrap();
    assert_eq!(a.sub, SUB);
    let left = a.expires_at - chrono::Utc::now();
    assert!(left > chrono::Duration::minutes(55) && left <= chrono::Duration::hours(1), "{left}");
    let b = t.get().await.unwrap();
    assert_eq!((t.fetches(), a.token.expose()), (1, b.token.expose()), "the second get is served from the cache");

    // A margin longer than the token's life: every get fetches a new one.
    let mut cfg = checkin(&sim, "secret");
    cfg.refresh_margin = Duration::from_secs(2 * 3600);
    let t = CheckinToken::new(cfg).unwrap();
    let (a, b) = (t.get().await.unwrap(), t.get().await.unwrap());
    assert_eq!(t.fetches(), 2);
    assert_ne!(a.token.expose(), b.token.expose());

    // A wrong secret: refused, and the secret appears nowhere.
    let err = CheckinToken::new(checkin(&sim, "wrong-secret-value")).unwrap().get().await.unwrap_err();
    assert!(matches!(err, CredentialError::Status { status: 401, .. }), "{err}");
    assert!(!err.to_string().contains("wrong-secret-value") && !format!("{err:?}").contains("wrong-secret-value"));
    sim.stop().await;
}

#[tokio::test]
async fn a_token_whose_signing_key_is_not_in_the_jwks_is_refused() {
    let sim = start(BTreeMap::new()).await;
    // A JWKS without the provider's key.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/jwks", axum::routing::get(|| async { axum::Json(json!({"keys": []})) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut cfg = checkin(&sim, "secret");
    cfg.discovery_endpoint = None;
    cfg.token_endpoint = Some(format!("{}/identity/oidc/token", sim.base_url()));
    cfg.jwks_uri = Some(format!("http://{addr}/jwks"));
    let err = CheckinToken::new(cfg).unwrap().get().await.unwrap_err();
    assert!(matches!(&err, CredentialError::Token { detail, .. } if detail.contains("no key")), "{err}");
    sim.stop().await;
}

#[tokio::test]
async fn vault_gives_each_vos_application_credential_and_skips_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    // The sim's Keystone host is 127.0.0.1, known before it starts.
    let path = credentials::secret_path(SUB, "127.0.0.1", "vo.example.org");
    let secret = BTreeMap::from([
        ("application_credential_id".to_string(), "ac-id".to_string()),
        ("application_credential_secret".to_string(), "ac-secret".to_string()),
    ]);
    let other = credentials::secret_path("someone-else", "127.0.0.1", "vo.example.org");
    let sim = start(BTreeMap::from([(path, secret.clone()), (other, secret)])).await;
    assert_eq!(keystone_host(&sim), "127.0.0.1");
    let token = CheckinToken::new(checkin(&sim, "secret")).unwrap().get().await.unwrap();
    let vault = Vault::new(&format!("{}/vault", sim.base_url())).unwrap();
    let vt = vault.login(&token).await.unwrap();
    let ac = vault.app_credential(&vt, SUB, "127.0.0.1", "vo.example.org").await.unwrap().expect("the VO's secret");
    assert_eq!((ac.id.as_str(), ac.secret.expose()), ("ac-id", "ac-secret"));
    assert!(
        vault.app_credential(&vt, SUB, "127.0.0.1", "vo.absent.eu").await.unwrap().is_none(),
        "a missing secret skips the VO"
    );
    let err = vault.app_credential(&vt, "someone-else", "127.0.0.1", "vo.example.org").await.unwrap_err();
    assert!(matches!(err, CredentialError::Status { status: 403, .. }), "{err}");
    let err = vault.app_credential(&Secret::new("hvs.bogus"), SUB, "127.0.0.1", "vo.example.org").await.unwrap_err();
    assert!(matches!(err, CredentialError::Status { status: 403, .. }), "{err}");

    // The same secret as a private file; a file others can read is refused.
    let secrets = SecretsDir::new(dir.path());
    let file = secrets.path("127.0.0.1", "vo.example.org");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        "# from Vault\napplication_credential_id = ac-id\napplication_credential_secret: ac-secret\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(secrets.app_credential("127.0.0.1", "vo.example.org").unwrap().unwrap(), ac);
    assert!(secrets.app_credential("127.0.0.1", "vo.absent.eu").unwrap().is_none());
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(secrets.app_credential("127.0.0.1", "vo.example.org"), Err(CredentialError::File { .. })));
    sim.stop().await;
}

#[tokio::test]
async fn a_vo_share_logs_in_through_the_federation_scoped_to_its_project() {
    let sim = start(BTreeMap::new()).await;
    let site = sim::scenario::builtin("tiny").unwrap().generate().site;
    let project = site.projects.iter().find(|p| p.extra.contains_key("VO")).expect("tiny has a VO project");
    let vo = project.extra["VO"].as_str().unwrap().to_string();
    sim.federate_egi(&format!("{}/identity/oidc", sim.base_url()), &vo, &project.name).await.unwrap();
    let yaml = format!(
        "gocdb: SIM-SITE\nendpoint: {}\nvos:\n  - name: {vo}\n    auth:\n      project_id: \"{}\"\n",
        sim.auth_url().trim_end_matches('/'),
        project.id
    );
    let parsed = sites::parse(&yaml, std::path::Path::new("sites/SIM-SITE.yaml"));
    let s = parsed.site.unwrap_or_else(|| panic!("{:?}", parsed.findings));
    let token = CheckinToken::new(checkin(&sim, "secret")).unwrap().get().await.unwrap();
    let cfg = central::vo_cloud_config(&s, &s.vos[0], VoLogin::Oidc(token));
    assert!(!format!("{cfg:?}").contains("eyJ"), "no token in Debug output");
    let session = Session::connect(&cfg).await.unwrap();
    let v: Value = session
        .json(openstack::Call::get(openstack::Service::Identity, "/auth/projects", "/auth/projects"))
        .await
        .unwrap();
    let ids: Vec<&str> = v["projects"].as_array().unwrap().iter().filter_map(|p| p["id"].as_str()).collect();
    assert!(ids.contains(&project.id.as_str()), "{v}");
    sim.stop().await;
}
