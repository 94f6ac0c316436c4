//! OIDC federated login as keystoneauth's `v3oidcclientcredentials` and
//! `v3oidcaccesstoken` do it, from clouds.yaml, against the simulated site:
//! its OIDC provider issues the access token, Keystone's OS-FEDERATION
//! `.../auth` maps the entitlements, and the scoped token reads the project.

use openstack::{CloudConfig, Session};
use reqwest::Method;
use serde_json::{Value, json};

/// Creates IdP `egi.eu` (the sim's issuer), a mapping granting `reader` on
/// `project` to members of `vo`, and protocol `openid`, as the sim's admin.
async fn federate(sim: &sim::SimHandle, vo: &str, project: &str) {
    let admin = CloudConfig::from_clouds_yaml(&sim.clouds_yaml(), None, "sim", "sim clouds.yaml").unwrap();
    let s = Session::connect(&admin).await.unwrap();
    let issuer = format!("{}/identity/oidc", sim.base_url());
    let put = |path: String, body: Value| {
        let s = &s;
        async move {
            s.send(openstack::Call::new(openstack::Service::Identity, Method::PUT, "/OS-FEDERATION", path).json(body))
                .await
                .unwrap();
        }
    };
    put(
        "/OS-FEDERATION/identity_providers/egi.eu".into(),
        json!({"identity_provider": {"enabled": true, "remote_ids": [issuer]}}),
    )
    .await;
    let entitlement = format!("urn:mace:egi.eu:group:{vo}:role=member#aai.egi.eu");
    let rules = json!([{
        "local": [{"user": {"name": "{0}"}}, {"projects": [{"name": project, "roles": [{"name": "reader"}]}]}],
        "remote": [{"type": "OIDC-sub"}, {"type": "OIDC-eduperson_entitlement", "any_one_of": [entitlement]}],
    }]);
    put("/OS-FEDERATION/mappings/egi-mapping".into(), json!({"mapping": {"rules": rules}})).await;
    put(
        "/OS-FEDERATION/identity_providers/egi.eu/protocols/openid".into(),
        json!({"protocol": {"mapping_id": "egi-mapping"}}),
    )
    .await;
}

/// A project of `tiny` with a VO property: (name, id, vo).
async fn vo_project(sim: &sim::SimHandle) -> (String, String, String) {
    let admin = CloudConfig::from_clouds_yaml(&sim.clouds_yaml(), None, "sim", "sim clouds.yaml").unwrap();
    let s = Session::connect(&admin).await.unwrap();
    let v: Value = s.json(openstack::Call::get(openstack::Service::Identity, "/projects", "/projects")).await.unwrap();
    v["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|p| {
            let vo = ["VO", "egi.VO"].iter().find_map(|k| p[*k].as_str())?;
            Some((p["name"].as_str()?.to_string(), p["id"].as_str()?.to_string(), vo.to_string()))
        })
        .expect("tiny has a project with a VO property")
}

fn clouds_yaml(auth_type: &str, auth: &str) -> String {
    format!("clouds:\n  fed:\n    auth_type: {auth_type}\n    auth:\n{auth}")
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_and_access_token_log_in_through_the_federation_mapping() {
    let sim = common_start().await;
    let (name, id, vo) = vo_project(&sim).await;
    federate(&sim, &vo, &name).await;
    let base = sim.base_url().to_string();
    let auth = format!(
        "      auth_url: {}\n      identity_provider: egi.eu\n      protocol: openid\n      client_id: fedsite-sim\n      client_secret: secret\n      discovery_endpoint: {base}/identity/oidc/.well-known/openid-configuration\n      project_id: {id}\n",
        sim.auth_url()
    );
    let cfg =
        CloudConfig::from_clouds_yaml(&clouds_yaml("v3oidcclientcredentials", &auth), None, "fed", "test").unwrap();
    assert!(!format!("{cfg:?}").contains("\"secret\""), "the client secret must not print: {cfg:?}");
    let s = Session::connect(&cfg).await.unwrap();
    assert_eq!(s.project_id().await.unwrap().as_deref(), Some(id.as_str()));
    // The scoped token reads the project's servers (reader role from the mapping).
    let servers: Value =
        s.json(openstack::Call::get(openstack::Service::Compute, "/servers", "/servers")).await.unwrap();
    assert!(servers["servers"].is_array(), "{servers}");

    // v3oidcaccesstoken with a token from the provider's token endpoint.
    let token: Value = reqwest::Client::new()
        .post(format!("{base}/identity/oidc/token"))
        .basic_auth("fedsite-sim", Some("secret"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=openid")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap();
    let auth = format!(
        "      auth_url: {}\n      identity_provider: egi.eu\n      protocol: openid\n      access_token: {access}\n      project_id: {id}\n",
        sim.auth_url()
    );
    let cfg = CloudConfig::from_clouds_yaml(&clouds_yaml("v3oidcaccesstoken", &auth), None, "fed", "test").unwrap();
    let s = Session::connect(&cfg).await.unwrap();
    assert_eq!(s.project_id().await.unwrap().as_deref(), Some(id.as_str()));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_secret_unmapped_vo_and_unknown_protocol_are_refused_with_the_reason() {
    let sim = common_start().await;
    let (name, id, _) = vo_project(&sim).await;
    // A mapping for a VO the client is not a member of.
    federate(&sim, "vo.nobody.eu", &name).await;
    let base = sim.base_url().to_string();
    let login = |secret: &str, protocol: &str| {
        let auth = format!(
            "      auth_url: {}\n      identity_provider: egi.eu\n      protocol: {protocol}\n      client_id: fedsite-sim\n      client_secret: {secret}\n      access_token_endpoint: {base}/identity/oidc/token\n      project_id: {id}\n",
            sim.auth_url()
        );
        CloudConfig::from_clouds_yaml(&clouds_yaml("v3oidcclientcredentials", &auth), None, "fed", "test").unwrap()
    };
    let e = Session::connect(&login("wrong", "openid")).await.unwrap_err().to_string();
    assert!(
        e.contains("OIDC token request refused (401") && e.contains("wrong secret") && !e.contains("wrong\n"),
        "{e}"
    );
    let e = Session::connect(&login("secret", "openid")).await.unwrap_err().to_string();
    assert!(e.contains("federated login refused (401") && e.contains("Could not map"), "{e}");
    let e = Session::connect(&login("secret", "oidc")).await.unwrap_err().to_string();
    assert!(e.contains("federated login refused (404") && e.contains("oidc"), "{e}");
    // A missing key names itself.
    let auth = format!(
        "      auth_url: {}\n      identity_provider: egi.eu\n      protocol: openid\n      client_id: x\n      client_secret: y\n",
        sim.auth_url()
    );
    let e = CloudConfig::from_clouds_yaml(&clouds_yaml("v3oidcclientcredentials", &auth), None, "fed", "test")
        .unwrap_err()
        .to_string();
    assert!(e.contains("auth.discovery_endpoint or auth.access_token_endpoint"), "{e}");
    sim.stop().await;
}

async fn common_start() -> sim::SimHandle {
    let scenario = sim::scenario::builtin("tiny").unwrap().generate();
    sim::start(sim::SimConfig::new(scenario)).await.unwrap()
}
