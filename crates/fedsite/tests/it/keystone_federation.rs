//! Against the REAL Keystone (scripts/test starts it): `fedsite keystone
//! federation --apply` creates the identity provider, groups, roles, mapping
//! and protocol, a second `--apply` changes nothing, `fedsite keystone lint`
//! passes and then finds a planted entitlement typo; and `fedsite check`'s
//! permission checks tell a project-only reader from a system reader.

use crate::common;

use std::path::Path;

use openstack::keystone::{federation as fed, groups};
use openstack::{CloudConfig, Session};
use serde_json::{Value, json};

fn clouds_yaml(dir: &Path, extra: &[(&str, &str, &str, Option<&str>)]) -> std::path::PathBuf {
    let mut y = String::from("clouds:\n");
    let pw = common::real_admin_password();
    let mut all = vec![("admin", "admin", pw.as_str(), Some("admin"))];
    all.extend(extra.iter().map(|(c, u, p, proj)| (*c, *u, *p, *proj)));
    for (cloud, user, password, project) in all {
        y.push_str(&format!(
            "  {cloud}:\n    auth:\n      auth_url: {}\n      username: {user}\n      password: {password}\n      user_domain_name: Default\n",
            common::real_keystone()
        ));
        match project {
            Some(p) => y.push_str(&format!("      project_name: {p}\n      project_domain_name: Default\n")),
            None => y.push_str("      system_scope: all\n"),
        }
        y.push_str("    region_name: RegionOne\n    interface: public\n    identity_api_version: 3\n");
    }
    let path = dir.join("clouds.yaml");
    common::write_private(&path, y);
    path
}

async fn admin(clouds: &Path) -> Session {
    let env: openstack::Env =
        [("OS_CLIENT_CONFIG_FILE".to_string(), clouds.display().to_string())].into_iter().collect();
    let cfg = CloudConfig::load_with(Some("admin"), &env, clouds.parent().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    Session::connect(&cfg).await.expect("admin session on the real Keystone")
}

async fn fedsite(clouds: &Path, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"))
        .args(args)
        .env("OS_CLIENT_CONFIG_FILE", clouds)
        .env("FEDSITE_LOG", "warn")
        .env_remove("OS_CLOUD")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {report:#}"))
}

async fn vo_project(s: &Session, vo: &str) -> String {
    let extra = [("egi.VO".to_string(), json!(vo))].into_iter().collect();
    groups::create_project(s, vo, "default", extra).await.expect("creating a VO project")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_is_idempotent_and_lint_finds_a_planted_typo() {
    let dir = tempfile::tempdir().unwrap();
    let clouds = clouds_yaml(dir.path(), &[]);
    let s = admin(&clouds).await;
    let (vo1, vo2) = (common::unique("vo-a"), common::unique("vo-b"));
    let (idp, mapping) = (common::unique("idp"), common::unique("map"));
    // Remote ids are unique across identity providers: one issuer per test run.
    let issuer = format!("https://aai.egi.eu/auth/realms/{}", common::unique("egi"));
    vo_project(&s, &vo1).await;
    vo_project(&s, &vo2).await;
    let (v1, v2) = (format!("{vo1}={vo1}"), format!("{vo2}={vo2}"));
    let spec =
        ["--os-cloud", "admin", "--vo", &v1, "--vo", &v2, "--idp", &idp, "--mapping", &mapping, "--issuer", &issuer];
    let apply = |json: bool| {
        let mut a = vec!["keystone", "federation"];
        a.extend(spec);
        a.push("--apply");
        if json {
            a.push("--json");
        }
        a
    };

    let (code, out, err) = fedsite(&clouds, &apply(true)).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let actions: Vec<Value> = serde_json::from_str(&out).unwrap();
    let created: Vec<&str> =
        actions.iter().filter(|a| a["change"] == "created").map(|a| a["object"].as_str().unwrap()).collect();
    assert_eq!(
        created,
        vec![
            format!("identity provider {idp}"),
            format!("group {vo1}"),
            format!("role member of group {vo1} on project {vo1}"),
            format!("group {vo2}"),
            format!("role member of group {vo2} on project {vo2}"),
            format!("mapping {mapping}"),
            format!("protocol openid of {idp}"),
        ],
        "{out}"
    );

    // What Keystone now holds.
    let i = fed::get_identity_provider(&s, &idp).await.unwrap().expect("the identity provider");
    assert_eq!((i.enabled, i.remote_ids.clone()), (true, vec![issuer.clone()]));
    let p = fed::get_protocol(&s, &idp, "openid").await.unwrap().expect("the protocol");
    assert_eq!(p.mapping_id, mapping);
    let m = fed::get_mapping(&s, &mapping).await.unwrap().expect("the mapping");
    let rules = m.rules.as_array().unwrap().clone();
    assert_eq!(rules.len(), 2);
    let g1 = groups::list_groups(&s, Some(&vo1), Some("default")).await.unwrap();
    assert_eq!(rules[0]["local"][1], json!({"group": {"id": g1[0].id}}));
    assert_eq!(
        rules[0]["remote"][3]["any_one_of"][0],
        json!(format!("^urn:mace:egi\\.eu:group:{}:role=vm_operator\\#aai\\.egi\\.eu$", vo1.replace('.', "\\.")))
    );

    // A second apply changes nothing.
    let (code, out, err) = fedsite(&clouds, &apply(true)).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let actions: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(actions.len(), 7);
    assert!(actions.iter().all(|a| a["change"] == "unchanged"), "{out}");
    let (_, text, _) = fedsite(&clouds, &apply(false)).await;
    assert!(text.ends_with("0 change(s)\n"), "{text}");

    // The lint passes, and prints the fragments.
    let mut lint = vec!["keystone", "lint"];
    lint.extend(spec);
    let (code, out, err) = fedsite(&clouds, &lint).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("<Location ~ \"/v3/OS-FEDERATION/identity_providers/{idp}/protocols/openid/auth\">")),
        "{out}"
    );
    assert!(out.contains(&format!("OIDCProviderMetadataURL {issuer}/.well-known/openid-configuration")), "{out}");
    assert!(
        out.contains("[auth]\nmethods = password, token, openid\n\n[openid]\nremote_id_attribute = HTTP_OIDC_ISS"),
        "{out}"
    );

    // Plant the typo seen in fedcloud-catchall-operations: a stray space.
    let mut planted = m.rules.clone();
    let ent = planted[1]["remote"][3]["any_one_of"][0].as_str().unwrap().replace("egi\\.eu:group:", "egi\\.eu: group:");
    planted[1]["remote"][3]["any_one_of"][0] = json!(ent);
    fed::update_mapping(&s, &mapping, &planted).await.unwrap();
    let mut lint_json = lint.clone();
    lint_json.push("--json");
    let (code, out, _) = fedsite(&clouds, &lint_json).await;
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(code, 2, "{out}");
    let c = check(&report, "federation.entitlements");
    assert_eq!(c["status"], "critical");
    let msg = c["message"].as_str().unwrap();
    assert!(msg.contains(&format!("rule 2: \"{}\" contains a stray space", ent.replace('\\', "\\\\"))), "{msg}");
    assert!(
        msg.contains(&format!(
            "VO {vo2}: no rule admits its entitlement urn:mace:egi.eu:group:{vo2}:role=vm_operator#aai.egi.eu"
        )),
        "{msg}"
    );
    assert_eq!(check(&report, "federation.groups")["status"], "ok");

    // Apply repairs it.
    let (_, out, _) = fedsite(&clouds, &apply(true)).await;
    let actions: Vec<Value> = serde_json::from_str(&out).unwrap();
    let changed: Vec<&Value> = actions.iter().filter(|a| a["change"] != "unchanged").collect();
    assert_eq!(changed, vec![&json!({"object": format!("mapping {mapping}"), "change": "updated"})]);
    let (code, _, _) = fedsite(&clouds, &lint).await;
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_check_tells_a_project_reader_from_a_system_reader() {
    let dir = tempfile::tempdir().unwrap();
    let pw = common::real_admin_password();
    let sysreader = common::unique("sysreader");
    let clouds = clouds_yaml(
        dir.path(),
        &[
            ("project-reader", common::REAL_READER_USER, &pw, Some(common::REAL_READER_PROJECT)),
            ("system-reader", &sysreader, &pw, None),
        ],
    );
    let s = admin(&clouds).await;
    // The system reader: reader on the system and on the VO project it accounts.
    let vo = common::unique("vo-acct");
    let project = vo_project(&s, &vo).await;
    let uid = groups::create_user(&s, &sysreader, "default", &pw).await.unwrap();
    let reader = groups::list_roles(&s, Some("reader")).await.unwrap()[0].id.clone();
    groups::grant_user_system_role(&s, &uid, &reader).await.unwrap();
    groups::grant_user_project_role(&s, &project, &uid, &reader).await.unwrap();

    let vo_arg = format!("{vo}={vo}");
    let run = |acct: &'static str| {
        let clouds = clouds.clone();
        let vo_arg = vo_arg.clone();
        async move {
            let (code, out, err) = fedsite(
                &clouds,
                &[
                    "check",
                    "--os-cloud",
                    "admin",
                    "--accounting-cloud",
                    acct,
                    "--vo",
                    &vo_arg,
                    "--only",
                    "permissions",
                    "--json",
                ],
            )
            .await;
            let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
            (code, report)
        }
    };

    let (code, report) = run("project-reader").await;
    assert_eq!(code, 2, "{report:#}");
    for (id, rule) in
        [("permissions.list-users", "identity:list_users"), ("permissions.list-projects", "identity:list_projects")]
    {
        let c = check(&report, id);
        assert_eq!(c["status"], "critical", "{c:#}");
        assert!(c["message"].as_str().unwrap().starts_with(&format!("{rule} refused for contract-reader")), "{c:#}");
        assert!(c["message"].as_str().unwrap().contains("HTTP 403"), "{c:#}");
        assert_eq!(c["fix"], "openstack role add --user contract-reader --user-domain Default --system all reader");
    }
    let c = check(&report, "permissions.projects");
    assert_eq!(c["status"], "critical");
    assert!(c["message"].as_str().unwrap().starts_with("contract-reader cannot read 1 of 1 projects"), "{c:#}");

    let (code, report) = run("system-reader").await;
    assert_eq!(code, 0, "{report:#}");
    for id in ["permissions.list-users", "permissions.list-projects", "permissions.projects"] {
        assert_eq!(check(&report, id)["status"], "ok", "{report:#}");
    }
    assert!(
        check(&report, "permissions.list-users")["message"]
            .as_str()
            .unwrap()
            .starts_with("identity:list_users allowed with system scope")
    );
}
