//! clouds.yaml / secure.yaml / OS_* parsing and precedence, as pure
//! functions of an env map and a working directory.

use std::path::Path;

use openstack::Secret;
use openstack::config::{CloudConfig, Credentials, DomainRef, Env, Interface, ProjectRef, Scope, UserRef};

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

const CLOUDS: &str = r#"
clouds:
  site:
    auth:
      auth_url: https://keystone.example:5000
      username: caso
      password: from-clouds
      user_domain_name: Default
      project_name: admin
      project_domain_id: default
    region_name: RegionTwo
    interface: internal
    verify: false
  appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.example:5000/v3
      application_credential_id: ac-1
      application_credential_secret: ac-secret
      project_name: ignored
  sys:
    auth:
      auth_url: https://k/v3
      user_id: u-1
      password: pw
      system_scope: all
  broken:
    auth:
      username: x
      password: y
"#;

#[test]
fn clouds_yaml_password_cloud_resolves_user_project_region_interface() {
    let c = CloudConfig::from_clouds_yaml(CLOUDS, None, "site", "clouds.yaml").unwrap();
    assert_eq!(c.auth_url, "https://keystone.example:5000");
    assert_eq!(
        c.credentials,
        Credentials::Password {
            user: UserRef::Name { name: "caso".into(), domain: DomainRef::Name("Default".into()) },
            password: Secret::new("from-clouds"),
        }
    );
    assert_eq!(
        c.scope,
        Scope::Project(ProjectRef::Name { name: "admin".into(), domain: DomainRef::Id("default".into()) })
    );
    assert_eq!(c.region_name.as_deref(), Some("RegionTwo"));
    assert_eq!(c.interface, Interface::Internal);
    assert!(c.insecure, "verify: false means insecure");
    assert_eq!(c.name.as_deref(), Some("site"));
}

#[test]
fn secure_yaml_overrides_and_adds_keys() {
    let secure = "clouds:\n  site:\n    auth:\n      password: from-secure\n";
    let c = CloudConfig::from_clouds_yaml(CLOUDS, Some(("secure.yaml", secure)), "site", "clouds.yaml").unwrap();
    match c.credentials {
        Credentials::Password { password, .. } => assert_eq!(password.expose(), "from-secure"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn application_credential_cloud_is_unscoped_by_id() {
    let c = CloudConfig::from_clouds_yaml(CLOUDS, None, "appcred", "clouds.yaml").unwrap();
    assert_eq!(
        c.credentials,
        Credentials::ApplicationCredential {
            id: Some("ac-1".into()),
            name: None,
            user: None,
            secret: Secret::new("ac-secret")
        }
    );
    assert_eq!(c.scope, Scope::Unscoped);
}

#[test]
fn system_scope_and_user_id() {
    let c = CloudConfig::from_clouds_yaml(CLOUDS, None, "sys", "clouds.yaml").unwrap();
    assert_eq!(c.scope, Scope::System);
    assert!(matches!(c.credentials, Credentials::Password { user: UserRef::Id(ref id), .. } if id == "u-1"));
}

#[test]
fn missing_auth_url_error_names_file_and_key() {
    let home = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let dir = home.path().join(".config/openstack");
    std::fs::create_dir_all(&dir).unwrap();
    write(&dir, "clouds.yaml", CLOUDS);
    let e = env(&[("HOME", home.path().to_str().unwrap())]);
    let err = CloudConfig::load_with(Some("broken"), &e, cwd.path()).unwrap_err();
    assert_eq!(err.to_string(), "reading ~/.config/openstack/clouds.yaml: cloud 'broken' has no auth.auth_url");
}

#[test]
fn unknown_cloud_lists_the_clouds_in_the_file() {
    let err = CloudConfig::from_clouds_yaml(CLOUDS, None, "nope", "/x/clouds.yaml").unwrap_err();
    assert_eq!(err.to_string(), "reading /x/clouds.yaml: no cloud 'nope' (clouds: site, appcred, sys, broken)");
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
    // Files with passwords must be private (CloudConfig refuses them otherwise).
    std::fs::set_permissions(dir.join(name), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

fn one_cloud(url: &str) -> String {
    format!(
        "clouds:\n  c:\n    auth:\n      auth_url: {url}\n      username: u\n      password: p\n      project_id: p1\n"
    )
}

#[test]
fn search_path_prefers_cwd_then_xdg_then_home() {
    let cwd = tempfile::tempdir().unwrap();
    let xdg = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    write(&home.path().join(".config/openstack"), "clouds.yaml", &one_cloud("http://home"));
    let e = env(&[("HOME", home.path().to_str().unwrap())]);
    assert_eq!(CloudConfig::load_with(Some("c"), &e, cwd.path()).unwrap().auth_url, "http://home");
    assert_eq!(CloudConfig::load_with(Some("c"), &e, cwd.path()).unwrap().source, "~/.config/openstack/clouds.yaml");

    write(&xdg.path().join("openstack"), "clouds.yaml", &one_cloud("http://xdg"));
    let e = env(&[("HOME", home.path().to_str().unwrap()), ("XDG_CONFIG_HOME", xdg.path().to_str().unwrap())]);
    assert_eq!(CloudConfig::load_with(Some("c"), &e, cwd.path()).unwrap().auth_url, "http://xdg");

    write(cwd.path(), "clouds.yaml", &one_cloud("http://cwd"));
    assert_eq!(CloudConfig::load_with(Some("c"), &e, cwd.path()).unwrap().auth_url, "http://cwd");

    let explicit = tempfile::tempdir().unwrap();
    write(explicit.path(), "mine.yaml", &one_cloud("http://explicit"));
    let mut e2 = e.clone();
    e2.insert("OS_CLIENT_CONFIG_FILE".into(), explicit.path().join("mine.yaml").to_str().unwrap().into());
    assert_eq!(CloudConfig::load_with(Some("c"), &e2, cwd.path()).unwrap().auth_url, "http://explicit");
}

#[test]
fn secure_yaml_is_found_next_to_clouds_yaml() {
    let cwd = tempfile::tempdir().unwrap();
    write(cwd.path(), "clouds.yaml", &one_cloud("http://cwd"));
    write(cwd.path(), "secure.yaml", "clouds:\n  c:\n    auth:\n      password: merged\n");
    let c = CloudConfig::load_with(Some("c"), &env(&[]), cwd.path()).unwrap();
    assert!(matches!(c.credentials, Credentials::Password { ref password, .. } if password.expose() == "merged"));
}

fn os_env() -> Env {
    env(&[
        ("OS_AUTH_URL", "http://env/v3"),
        ("OS_USERNAME", "envuser"),
        ("OS_PASSWORD", "envpw"),
        ("OS_PROJECT_NAME", "envproj"),
        ("OS_REGION_NAME", "R1"),
    ])
}

#[test]
fn os_cloud_selects_clouds_yaml_over_os_variables() {
    let cwd = tempfile::tempdir().unwrap();
    write(cwd.path(), "clouds.yaml", &one_cloud("http://cwd"));
    let mut e = os_env();
    e.insert("OS_CLOUD".into(), "c".into());
    let c = CloudConfig::load_with(None, &e, cwd.path()).unwrap();
    assert_eq!(c.auth_url, "http://cwd");
    assert_eq!(c.scope, Scope::project_id("p1"));
    // explicit name beats OS_CLOUD; no OS_CLOUD -> OS_* variables
    let e2 = os_env();
    let c2 = CloudConfig::load_with(None, &e2, cwd.path()).unwrap();
    assert_eq!(c2.auth_url, "http://env/v3");
    assert_eq!(c2.source, "environment");
    assert_eq!(c2.name, None);
}

#[test]
fn os_variables_default_the_domains_to_default() {
    let c = CloudConfig::from_env(&os_env()).unwrap();
    assert_eq!(
        c.credentials,
        Credentials::Password {
            user: UserRef::Name { name: "envuser".into(), domain: DomainRef::Id("default".into()) },
            password: Secret::new("envpw")
        }
    );
    assert_eq!(
        c.scope,
        Scope::Project(ProjectRef::Name { name: "envproj".into(), domain: DomainRef::Id("default".into()) })
    );
    assert_eq!(c.region_name.as_deref(), Some("R1"));
    assert_eq!(c.interface, Interface::Public);
}

#[test]
fn os_variables_for_each_auth_type_and_scope() {
    let mut e = env(&[
        ("OS_AUTH_URL", "http://k"),
        ("OS_AUTH_TYPE", "v3applicationcredential"),
        ("OS_APPLICATION_CREDENTIAL_NAME", "acn"),
        ("OS_APPLICATION_CREDENTIAL_SECRET", "acs"),
        ("OS_USER_ID", "u9"),
    ]);
    let c = CloudConfig::from_env(&e).unwrap();
    assert_eq!(
        c.credentials,
        Credentials::ApplicationCredential {
            id: None,
            name: Some("acn".into()),
            user: Some(UserRef::Id("u9".into())),
            secret: Secret::new("acs")
        }
    );

    e = env(&[
        ("OS_AUTH_URL", "http://k"),
        ("OS_TOKEN", "tkn"),
        ("OS_DOMAIN_NAME", "Dom"),
        ("OS_INTERFACE", "adminURL"),
    ]);
    let c = CloudConfig::from_env(&e).unwrap();
    assert_eq!(c.credentials, Credentials::Token { token: Secret::new("tkn") });
    assert_eq!(c.scope, Scope::Domain(DomainRef::Name("Dom".into())));
    assert_eq!(c.interface, Interface::Admin);

    e = env(&[
        ("OS_AUTH_URL", "http://k"),
        ("OS_USER_ID", "u1"),
        ("OS_PASSWORD", "p"),
        ("OS_SYSTEM_SCOPE", "all"),
        ("OS_CACERT", "/etc/ca.pem"),
        ("OS_INSECURE", "true"),
    ]);
    let c = CloudConfig::from_env(&e).unwrap();
    assert_eq!(c.scope, Scope::System);
    assert_eq!(c.cacert.as_deref(), Some(Path::new("/etc/ca.pem")));
    assert!(c.insecure);

    e = env(&[
        ("OS_AUTH_URL", "http://k"),
        ("OS_USER_ID", "u1"),
        ("OS_PASSWORD", "p"),
        ("OS_PROJECT_ID", "p1"),
        ("OS_PROJECT_DOMAIN_NAME", "D"),
    ]);
    assert_eq!(CloudConfig::from_env(&e).unwrap().scope, Scope::project_id("p1"));
}

#[test]
fn os_variable_errors_name_the_variable() {
    assert_eq!(
        CloudConfig::from_env(&env(&[])).unwrap_err().to_string(),
        "reading environment: OS_AUTH_URL is not set"
    );
    let e = env(&[("OS_AUTH_URL", "http://k"), ("OS_USERNAME", "u")]);
    assert_eq!(CloudConfig::from_env(&e).unwrap_err().to_string(), "reading environment: OS_PASSWORD is not set");
    let e = env(&[
        ("OS_AUTH_URL", "http://k"),
        ("OS_USERNAME", "u"),
        ("OS_PASSWORD", "p"),
        ("OS_PROJECT_ID", "x"),
        ("OS_SYSTEM_SCOPE", "all"),
    ]);
    assert!(CloudConfig::from_env(&e).unwrap_err().to_string().contains("more than one scope"));
    let e = env(&[("OS_AUTH_URL", "http://k"), ("OS_AUTH_TYPE", "oidc"), ("OS_USERNAME", "u")]);
    assert!(CloudConfig::from_env(&e).unwrap_err().to_string().contains("OS_AUTH_TYPE 'oidc' is not supported"));
}

#[test]
fn secrets_never_show_in_debug_or_errors() {
    let s = Secret::new("hunter2");
    assert_eq!(format!("{s:?}"), "***");
    assert_eq!(format!("{s}"), "***");
    let c = CloudConfig::from_clouds_yaml(CLOUDS, None, "site", "clouds.yaml").unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("from-clouds"), "{dbg}");
    assert!(dbg.contains("***"));
    let a = CloudConfig::from_clouds_yaml(CLOUDS, None, "appcred", "clouds.yaml").unwrap();
    assert!(!format!("{a:?}").contains("ac-secret"));
}
