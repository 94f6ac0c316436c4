//! caso.conf with each `[keystone_auth]` auth type the federation's central
//! deployment and sites use (issue #18 item 2), against the simulated site:
//! `fedsite accounting extract --caso-conf` authenticates with it and prints
//! the same records as the password account given by flags for the same
//! project, and `fedsite config import --caso` of the same file gives a
//! fedsite.toml resolving to the same credentials that runs the same way.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use openstack::{CloudConfig, Scope, Session};
use reqwest::Method;
use serde_json::{Value, json};

const WINDOW: [&str; 4] = ["--from", "2023-05-01", "--to", "2023-06-01"];
const APP_CRED: (&str, &str) = ("ac-caso-auth", "app-cred-secret");

fn fedsite() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"));
    c.env_remove("OS_CLOUD").env_remove("FEDSITE_CONFIG");
    c
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A project of `tiny` with a VO property: (name, id, vo, the property's key).
fn vo_project(scenario: &sim::scenario::Scenario) -> (String, String, String, String) {
    scenario
        .site
        .projects
        .iter()
        .find_map(|p| {
            let (key, vo) = ["VO", "egi.VO"]
                .iter()
                .find_map(|k| p.extra.get(*k)?.as_str().map(|vo| (k.to_string(), vo.to_string())))?;
            Some((p.name.clone(), p.id.clone(), vo, key))
        })
        .expect("tiny has a project with a VO property")
}

fn admin(sim: &sim::SimHandle) -> CloudConfig {
    CloudConfig::from_clouds_yaml(&sim.clouds_yaml(), None, "sim", "sim clouds.yaml").unwrap()
}

/// IdP `egi.eu` (the sim's OIDC issuer), protocol `openid`, and a mapping
/// granting `reader` on `project` to members of `vo` (as oidc_login.rs).
async fn federate(sim: &sim::SimHandle, vo: &str, project: &str) {
    let s = Session::connect(&admin(sim)).await.unwrap();
    let issuer = format!("{}/identity/oidc", sim.base_url());
    let put = |path: &str, body: Value| {
        let (s, path) = (&s, path.to_string());
        async move {
            s.send(openstack::Call::new(openstack::Service::Identity, Method::PUT, "/OS-FEDERATION", path).json(body))
                .await
                .unwrap();
        }
    };
    put(
        "/OS-FEDERATION/identity_providers/egi.eu",
        json!({"identity_provider": {"enabled": true, "remote_ids": [issuer]}}),
    )
    .await;
    let entitlement = format!("urn:mace:egi.eu:group:{vo}:role=member#aai.egi.eu");
    let rules = json!([{
        "local": [{"user": {"name": "{0}"}}, {"projects": [{"name": project, "roles": [{"name": "reader"}]}]}],
        "remote": [{"type": "OIDC-sub"}, {"type": "OIDC-eduperson_entitlement", "any_one_of": [entitlement]}],
    }]);
    put("/OS-FEDERATION/mappings/egi-mapping", json!({"mapping": {"rules": rules}})).await;
    put(
        "/OS-FEDERATION/identity_providers/egi.eu/protocols/openid",
        json!({"protocol": {"mapping_id": "egi-mapping"}}),
    )
    .await;
}

/// An access token from the sim's OIDC provider (client credentials grant).
async fn oidc_access_token(sim: &sim::SimHandle) -> String {
    sim.oidc_access_token().await.unwrap()
}

/// An unscoped Keystone token of the accounting user.
async fn keystone_token(sim: &sim::SimHandle) -> String {
    let mut cfg = CloudConfig::from_clouds_yaml(&sim.clouds_yaml(), None, "sim-accounting", "sim clouds.yaml").unwrap();
    cfg.scope = Scope::Unscoped;
    let s = Session::connect(&cfg).await.unwrap();
    s.token().await.unwrap().id.expose().to_string()
}

/// The `[keystone_auth]` of each auth type, as the central deployment
/// (OIDC robot, application credentials from Vault) or a site writes it.
fn keystone_auths(
    sim: &sim::SimHandle,
    project: &str,
    access_token: &str,
    token: &str,
) -> Vec<(&'static str, bool, String)> {
    let (auth, base) = (sim.auth_url(), sim.base_url().to_string());
    vec![
        (
            "v3password",
            true,
            format!(
                "auth_type = v3password\nauth_url = {auth}\nusername = accounting\npassword = secret\nuser_domain_id = default\n"
            ),
        ),
        (
            "password",
            true,
            format!(
                "auth_type = password\nauth_url = {auth}\nusername = accounting\npassword = secret\nuser_domain_name = Default\nsystem_scope = all\n"
            ),
        ),
        (
            "v3applicationcredential",
            false,
            format!(
                "auth_type = v3applicationcredential\nauth_url = {auth}\napplication_credential_id = {}\napplication_credential_secret = {}\n",
                APP_CRED.0, APP_CRED.1
            ),
        ),
        (
            "v3oidcclientcredentials",
            false,
            format!(
                "auth_type = v3oidcclientcredentials\nauth_url = {auth}\nprotocol = openid\nidentity_provider = egi.eu\n\
                 client_id = fedsite-sim\nclient_secret = secret\nscope = openid profile eduperson_entitlement email\n\
                 discovery_endpoint = {base}/identity/oidc/.well-known/openid-configuration\nproject_id = {project}\n\
                 access_token_type = access_token\n"
            ),
        ),
        (
            "v3oidcclientcredentials (token endpoint)",
            false,
            format!(
                "auth_type = v3oidcclientcredentials\nauth_url = {auth}\nprotocol = openid\nidentity_provider = egi.eu\n\
                 client_id = fedsite-sim\nclient_secret = secret\naccess_token_endpoint = {base}/identity/oidc/token\nproject_id = {project}\n"
            ),
        ),
        (
            "v3oidcclientcredentials (no scope keys: the first of projects)",
            false,
            format!(
                "auth_type = v3oidcclientcredentials\nauth_url = {auth}\nprotocol = openid\nidentity_provider = egi.eu\n\
                 client_id = fedsite-sim\nclient_secret = secret\naccess_token_endpoint = {base}/identity/oidc/token\n"
            ),
        ),
        (
            "v3oidcaccesstoken",
            false,
            format!(
                "auth_type = v3oidcaccesstoken\nauth_url = {auth}\nprotocol = openid\nidentity_provider = egi.eu\naccess_token = {access_token}\nproject_id = {project}\n"
            ),
        ),
        (
            "v3token",
            false,
            format!("auth_type = v3token\nauth_url = {auth}\ntoken = {token}\nproject_id = {project}\n"),
        ),
        ("token", true, format!("auth_type = token\nauth_url = {auth}\ntoken = {token}\nsystem_scope = all\n")),
    ]
}

/// `messages` without the user names (GlobalUserName of cloud and accelerator
/// records, UserIdentity of storage records).
fn without_user_names(messages: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for line in messages.lines() {
        if line.starts_with("GlobalUserName: ") {
            continue;
        }
        let mut l = line.to_string();
        while let Some(i) = l.find("\"GlobalUserName\": \"") {
            let end = i + l[i..].find("\", ").unwrap() + 3;
            l.replace_range(i..end, "");
        }
        while let Some(i) = l.find("<sr:UserIdentity>") {
            let end = i + l[i..].find("</sr:UserIdentity>").unwrap() + "</sr:UserIdentity>".len();
            l.replace_range(i..end, "");
        }
        out.push(l);
    }
    let mut s = out.join("\n");
    if messages.ends_with('\n') {
        s.push('\n');
    }
    s
}

fn caso_conf(dir: &Path, project: &str, vo_property: &str, keystone_auth: &str) -> PathBuf {
    let conf = dir.join("caso.conf");
    common::write_private(
        &conf,
        format!(
            "[DEFAULT]\nsite_name = TEST-SITE\nservice_name = TEST-SITE-cloud\nmessengers = ssm\nprojects = {project}\n\
             caso_tag = no-project-has-this-tag\nvo_property = {vo_property}\nmapping_file = {d}/nonexistent-voms.json\n\
             extractor = nova,cinder,neutron\n\n[keystone_auth]\n{keystone_auth}\n[ssm]\noutput_path = {d}/outgoing\n",
            d = dir.display()
        ),
    );
    conf
}

#[tokio::test(flavor = "multi_thread")]
async fn every_keystone_auth_type_extracts_the_same_records_and_imports_to_the_same_credentials() {
    let mut scenario = sim::scenario::builtin("tiny").unwrap().generate();
    // An application credential of the accounting user on the VO project (as Vault holds one per VO).
    let acc = scenario.site.users.iter().find(|u| u.name == sim::scenario::ACCOUNTING_USER).unwrap().id.clone();
    let (name, id, vo, key) = vo_project(&scenario);
    scenario.site.application_credentials.push(sim::model::ApplicationCredential {
        id: APP_CRED.0.into(),
        name: "caso".into(),
        secret: APP_CRED.1.into(),
        user_id: acc,
        project_id: id.clone(),
        roles: vec!["reader".into()],
        expires_at: None,
    });
    let sim = sim::start(sim::SimConfig::new(scenario)).await.unwrap();
    federate(&sim, &vo, &name).await;
    let (access_token, token) = (oidc_access_token(&sim).await, keystone_token(&sim).await);

    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    common::write_private(&clouds, sim.clouds_yaml());
    // The password account, by flags, for the same project only.
    let out = fedsite()
        .args(["accounting", "extract", "--dry-run", "--os-cloud", "sim-accounting", "--tag", "", "--project", &id])
        .args(["--vo-property", &key, "--site-name", "TEST-SITE", "--service-name", "TEST-SITE-cloud"])
        .args(WINDOW)
        .env("OS_CLIENT_CONFIG_FILE", &clouds)
        .output()
        .await
        .unwrap();
    let (reference, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        reference.contains("APEL-cloud-message") && reference.contains(&format!("LocalGroupId: {id}")),
        "{reference}"
    );

    for (what, system_reader, keys) in keystone_auths(&sim, &id, &access_token, &token) {
        let expected = if system_reader { reference.clone() } else { without_user_names(&reference) };
        let d = dir.path().join(what.replace([' ', '(', ')', ':'], "_"));
        std::fs::create_dir(&d).unwrap();
        let conf = caso_conf(&d, &id, &key, &keys);
        let out = fedsite()
            .args(["accounting", "extract", "--dry-run", "--caso-conf"])
            .arg(&conf)
            .args(WINDOW)
            .output()
            .await
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{what}: --caso-conf\n{stderr}");
        assert_eq!(stdout, expected, "{what}: --caso-conf gives other records\n{stderr}");
        // Why the project-scoped credentials' records have no user names.
        assert_eq!(!system_reader, stderr.contains("cannot read Keystone users"), "{what}: {stderr}");
        for secret in ["secret", APP_CRED.1, &access_token, &token] {
            assert!(!stderr.contains(secret) && !stdout.contains(secret), "{what}: a secret is printed\n{stderr}");
        }

        // config import --caso: a 0600 fedsite.toml with the same credentials, that runs.
        let toml = d.join("fedsite.toml");
        let out =
            fedsite().args(["config", "import", "--caso"]).arg(&conf).arg("-o").arg(&toml).output().await.unwrap();
        assert!(out.status.success(), "{what}: import\n{}", text(&out).1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&toml).unwrap().permissions().mode() & 0o777, 0o600, "{what}");
        let original = accounting::casoconf::CasoConf::load(&conf).unwrap().cloud;
        let mut imported = siteconf::Config::load(&toml).unwrap().cloud_config(&Default::default(), &d).unwrap();
        imported.source = original.source.clone();
        assert_eq!(imported, original, "{what}");
        assert_eq!(imported.credentials.secret(), original.credentials.secret(), "{what}");
        let out = fedsite()
            .arg("--config")
            .arg(&toml)
            .args(["accounting", "extract", "--dry-run"])
            .args(WINDOW)
            .output()
            .await
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{what}: --config fedsite.toml\n{stderr}");
        assert_eq!(stdout, expected, "{what}: the imported fedsite.toml gives other records\n{stderr}");
    }
    sim.stop().await;
}

/// Wrong values reach the service and come back as the service's reason,
/// naming the file; a bad key never gets that far.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_keystone_auth_fails_before_extracting_naming_the_file_and_key() {
    let sim = sim::start(sim::SimConfig::new(sim::scenario::builtin("tiny").unwrap().generate())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (auth, base) = (sim.auth_url(), sim.base_url().to_string());
    let oidc = format!(
        "auth_type = v3oidcclientcredentials\nauth_url = {auth}\nprotocol = openid\nidentity_provider = egi.eu\n\
         client_id = fedsite-sim\nclient_secret = not-the-secret\naccess_token_endpoint = {base}/identity/oidc/token\nproject_id = p\n"
    );
    for (what, keys, want) in [
        ("wrong client secret", oidc.clone(), "OIDC token request refused (401"),
        (
            "missing client_secret",
            oidc.replace("client_secret = not-the-secret\n", ""),
            "[keystone_auth] client_secret is missing",
        ),
        (
            "unknown auth_type",
            oidc.replace("v3oidcclientcredentials", "v3samlpassword"),
            "[keystone_auth] auth_type \"v3samlpassword\" is not supported",
        ),
        ("project and system scope", format!("{oidc}system_scope = all\n"), "[keystone_auth] system_scope"),
        (
            "wrong app cred secret",
            format!(
                "auth_type = v3applicationcredential\nauth_url = {auth}\napplication_credential_id = nope\napplication_credential_secret = x\n"
            ),
            "401",
        ),
    ] {
        let d = dir.path().join(what.replace(' ', "_"));
        std::fs::create_dir(&d).unwrap();
        let conf = caso_conf(&d, "p", "VO", &keys);
        let out = fedsite()
            .args(["accounting", "extract", "--dry-run", "--caso-conf"])
            .arg(&conf)
            .args(WINDOW)
            .output()
            .await
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success() && stdout.is_empty(), "{what}: {stdout}");
        assert!(stderr.contains(want) && stderr.contains("caso.conf"), "{what}: want {want:?}\n{stderr}");
        assert!(!stderr.contains("not-the-secret"), "{what}: {stderr}");
        let out = fedsite()
            .args(["config", "import", "--caso"])
            .arg(&conf)
            .arg("-o")
            .arg(d.join("fedsite.toml"))
            .output()
            .await
            .unwrap();
        // The import refuses what the run refuses before authenticating.
        if want.starts_with('[') {
            assert!(!out.status.success() && text(&out).1.contains(want), "{what}: import\n{}", text(&out).1);
        }
    }
    sim.stop().await;
}
