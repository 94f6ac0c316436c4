//! cloud-info-provider-service's credentials: its `--os-*` flags, the `OS_*`
//! variables and clouds.yaml, layered as os-client-config 2.3 (openstacksdk's
//! loader under keystoneauth's argparse options) layers them for the original
//! (the table in docs/cloudinfo.md). Owns only that precedence; `openstack`
//! reads the files and resolves the final options.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use openstack::CloudConfig;
use openstack::config::Env;

use crate::Error;

/// keystoneauth's plugin options as cloud-info-provider's command line
/// registers them (`--os-<name>`, by option name with `_`) for the plugins
/// fedsite resolves, and the `OS_*` variable each defaults from.
pub const PLUGIN_OPTIONS: &[&str] = &[
    "auth_url",
    "system_scope",
    "domain_id",
    "domain_name",
    "project_id",
    "project_name",
    "project_domain_id",
    "project_domain_name",
    "trust_id",
    "default_domain_id",
    "default_domain_name",
    "user_id",
    "username",
    "user_domain_id",
    "user_domain_name",
    "password",
    "application_credential_id",
    "application_credential_name",
    "application_credential_secret",
    "token",
    "identity_provider",
    "protocol",
    "access_token",
    "client_id",
    "client_secret",
    "discovery_endpoint",
    "access_token_endpoint",
    "openid_scope",
    "access_token_type",
];

/// The deprecated spellings keystoneauth still reads (`--os-tenant-id`,
/// `OS_TENANT_ID`, `--os-user-name`, ...): option → its older name.
const DEPRECATED: &[(&str, &str)] =
    &[("project_id", "tenant_id"), ("project_name", "tenant_name"), ("username", "user_name")];

/// Variables that only select a cloud or a file; alone they do not make the
/// environment a cloud of its own (openstacksdk's `selectors`).
const SELECTORS: &[&str] =
    &["OS_CLOUD", "OS_REGION_NAME", "OS_CLIENT_CONFIG_FILE", "OS_CLIENT_SECURE_FILE", "OS_CLOUD_NAME"];

/// The `--os-*` and session flags as given on the command line (absent when
/// not given: the variables are read here, not by the parser).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsFlags {
    /// `--os-cloud`
    pub cloud: Option<String>,
    /// `--os-auth-type` / `--os-auth-plugin`
    pub auth_type: Option<String>,
    /// `--os-<option>` for the [`PLUGIN_OPTIONS`] (deprecated spellings already mapped).
    pub auth: BTreeMap<String, String>,
    /// `--os-region-name`
    pub region_name: Option<String>,
    /// `--os-interface`
    pub interface: Option<String>,
    /// `--os-cacert`
    pub cacert: Option<PathBuf>,
    /// `--insecure`
    pub insecure: bool,
}

/// The credentials `fedsite info` reads a site with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoCloud {
    pub cloud: CloudConfig,
    /// The auth plugin's name as the original holds it in `os_auth_type`
    /// (the Endpoint's `Authentication`).
    pub auth_type: String,
    /// Options given (flag, variable or cloud) that fedsite does not use
    /// ([`UNUSED`]), for a warning.
    pub unused: Vec<String>,
}

/// keystoneauth options the original uses and fedsite does not: a trust
/// scope, and the OIDC token type (fedsite presents the `access_token`).
pub const UNUSED: &[&str] = &["trust_id", "access_token_type"];

/// Resolves the original's precedence (each rule pinned by a test below):
///
/// - the cloud: `--os-cloud`, else `OS_CLOUD`; else, when an `OS_*` variable
///   other than a selector is set, the flags and variables alone; else the
///   only cloud of the clouds file, if it holds exactly one;
/// - with a cloud, its `auth` options win over flags and variables, which only
///   fill what it lacks, except the project (`project_id`, `project_name`),
///   where the flag or variable wins; `auth_url` falls back to the site's
///   `endpoint`;
/// - without one, each option is its flag, else its `OS_*` variable
///   (`OS_AUTH_URL` else the site's `endpoint`; the region else the site's
///   `region`);
/// - `auth_type`: flag, `OS_AUTH_TYPE`, `OS_AUTH_PLUGIN`, the cloud's, `password`;
/// - region: flag, `OS_REGION_NAME`, the cloud's; with a cloud it must be one
///   of the cloud's regions; interface: flag, `OS_INTERFACE`, `public` (a
///   cloud's own `interface` is never used); cacert: flag, `OS_CACERT`, the
///   cloud's; insecure: the flag, `OS_INSECURE` or the cloud's `verify: false`.
pub fn info_cloud(
    flags: &OsFlags,
    env: &Env,
    cwd: &Path,
    site_endpoint: &str,
    site_region: Option<&str>,
) -> Result<InfoCloud, Error> {
    let var = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
    let nonempty = |v: Option<&String>| v.filter(|v| !v.is_empty()).cloned();
    // An option as the original's parser holds it: the flag, else its variable.
    let arg = |key: &str| {
        nonempty(flags.auth.get(key)).or_else(|| var(&format!("OS_{}", key.to_ascii_uppercase()))).or_else(|| {
            DEPRECATED
                .iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, old)| var(&format!("OS_{}", old.to_ascii_uppercase())))
        })
    };
    let flag_or_var = |flag: Option<&String>, name: &str| nonempty(flag).or_else(|| var(name));
    let cloud_name = match flag_or_var(flags.cloud.as_ref(), "OS_CLOUD") {
        Some(name) => Some(name),
        None if env_is_a_cloud(env) => None,
        None => match CloudConfig::cloud_names(env, cwd)? {
            Some((_, names)) if names.len() == 1 => names.into_iter().next(),
            _ => None,
        },
    };
    let auth_type_given =
        nonempty(flags.auth_type.as_ref()).or_else(|| var("OS_AUTH_TYPE")).or_else(|| var("OS_AUTH_PLUGIN"));
    let region = flag_or_var(flags.region_name.as_ref(), "OS_REGION_NAME");
    let mut options: BTreeMap<String, String>;
    let source: String;
    match &cloud_name {
        Some(name) => {
            let cloud = CloudConfig::cloud_options(name, env, cwd)?;
            options = cloud.options;
            for key in PLUGIN_OPTIONS {
                let given = arg(key);
                let project = matches!(*key, "project_id" | "project_name");
                let lacking = options.get(*key).is_none_or(|v| v.is_empty());
                if let Some(v) = given
                    && (project || lacking)
                {
                    options.insert(key.to_string(), v);
                }
            }
            let valid: Vec<String> = if cloud.regions.is_empty() {
                options.get("region_name").filter(|r| !r.is_empty()).cloned().into_iter().collect()
            } else {
                cloud.regions
            };
            if let Some(r) = region {
                if !valid.is_empty() && !valid.contains(&r) {
                    return Err(Error::Flag {
                        flag: "--os-region-name / OS_REGION_NAME".into(),
                        reason: format!(
                            "{r} is not a region of cloud '{name}' in {} (regions: {})",
                            cloud.label,
                            valid.join(", ")
                        ),
                    });
                }
                options.insert("region_name".into(), r);
            }
            source = format!("{} cloud '{name}'", cloud.label);
        }
        None => {
            options = PLUGIN_OPTIONS.iter().filter_map(|k| arg(k).map(|v| (k.to_string(), v))).collect();
            if let Some(r) = region.or_else(|| site_region.filter(|r| !r.is_empty()).map(str::to_string)) {
                options.insert("region_name".into(), r);
            }
            source = "command line and environment".into();
        }
    }
    if options.get("auth_url").is_none_or(|v| v.is_empty()) {
        options.insert("auth_url".into(), site_endpoint.to_string());
    }
    let auth_type = auth_type_given
        .or_else(|| options.get("auth_type").filter(|v| !v.is_empty()).cloned())
        .unwrap_or_else(|| "password".into());
    options.insert("auth_type".into(), auth_type.clone());
    options
        .insert("interface".into(), flag_or_var(flags.interface.as_ref(), "OS_INTERFACE").unwrap_or("public".into()));
    if let Some(c) = flags.cacert.as_ref().map(|p| p.display().to_string()).or_else(|| var("OS_CACERT")) {
        options.insert("cacert".into(), c);
    }
    let truthy = |v: &str| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes");
    let insecure = flags.insecure
        || var("OS_INSECURE").is_some_and(|v| truthy(&v))
        || options.get("insecure").is_some_and(|v| truthy(v));
    options.insert("insecure".into(), insecure.to_string());
    let unused =
        UNUSED.iter().filter(|k| options.get(**k).is_some_and(|v| !v.is_empty())).map(|k| k.to_string()).collect();
    let via_cloud = cloud_name.is_some();
    let cloud = CloudConfig::from_auth_options(&options, &source, &|k| {
        let dashed = k.replace('_', "-");
        let upper = k.to_ascii_uppercase();
        if via_cloud {
            format!("auth.{k} (or --os-{dashed} / OS_{upper})")
        } else {
            format!("--os-{dashed} / OS_{upper}")
        }
    })?;
    Ok(InfoCloud { cloud, auth_type, unused })
}

/// openstacksdk makes a cloud of the `OS_*` variables when one is set
/// besides the selectors (whatever its value), and that cloud is the default.
fn env_is_a_cloud(env: &Env) -> bool {
    env.keys().any(|k| {
        k.starts_with("OS_")
            && !k.starts_with("OS_TEST")
            && !k.starts_with("OS_STD")
            && !k.starts_with("OS_LOG")
            && !SELECTORS.contains(&k.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openstack::{Credentials, DomainRef, Interface, ProjectRef, Scope, UserRef};

    const SITE: &str = "https://site.example:5000/v3";

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn flags(auth: &[(&str, &str)]) -> OsFlags {
        OsFlags { auth: auth.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), ..OsFlags::default() }
    }

    /// A directory holding `clouds.yaml` (mode 0600) with `text`.
    fn dir_with(text: &str) -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("clouds.yaml");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        d
    }

    const ONE_CLOUD: &str = "clouds:\n  c1:\n    auth:\n      auth_url: https://yaml.example/v3\n      username: yamluser\n      password: yamlpw\n      project_id: yamlproj\n    region_name: YR\n    interface: internal\n    cacert: /yaml.pem\n";

    fn user(cfg: &CloudConfig) -> (String, String) {
        match &cfg.credentials {
            Credentials::Password { user: UserRef::Name { name, .. }, password } => {
                (name.clone(), password.expose().to_string())
            }
            other => panic!("not a password by name: {other:?}"),
        }
    }

    #[test]
    fn without_a_cloud_a_flag_wins_over_its_variable_and_the_site_endpoint_is_the_auth_url() {
        let empty = tempfile::tempdir().unwrap();
        let e = env(&[("OS_USERNAME", "envu"), ("OS_PASSWORD", "envp"), ("OS_PROJECT_ID", "envproj")]);
        let r = info_cloud(&flags(&[("username", "flagu")]), &e, empty.path(), SITE, None).unwrap();
        assert_eq!(user(&r.cloud), ("flagu".into(), "envp".into()));
        assert_eq!(r.cloud.auth_url, SITE);
        assert_eq!(r.cloud.scope, Scope::project_id("envproj"));
        assert_eq!(r.auth_type, "password");
        assert_eq!(r.cloud.interface, Interface::Public);
        // OS_AUTH_URL wins over the site's endpoint, the flag over both.
        let e2 = env(&[("OS_USERNAME", "u"), ("OS_PASSWORD", "p"), ("OS_AUTH_URL", "https://env.example/v3")]);
        assert_eq!(
            info_cloud(&OsFlags::default(), &e2, empty.path(), SITE, None).unwrap().cloud.auth_url,
            "https://env.example/v3"
        );
        let f = flags(&[("auth_url", "https://flag.example/v3")]);
        assert_eq!(info_cloud(&f, &e2, empty.path(), SITE, None).unwrap().cloud.auth_url, "https://flag.example/v3");
    }

    #[test]
    fn the_catchall_wrapper_variables_give_an_oidc_access_token_login() {
        let empty = tempfile::tempdir().unwrap();
        let e = env(&[
            ("OS_AUTH_TYPE", "v3oidcaccesstoken"),
            ("OS_IDENTITY_PROVIDER", "egi.eu"),
            ("OS_PROTOCOL", "openid"),
            ("OS_ACCESS_TOKEN", "tok"),
        ]);
        let r = info_cloud(&OsFlags::default(), &e, empty.path(), SITE, None).unwrap();
        assert_eq!(r.auth_type, "v3oidcaccesstoken");
        match &r.cloud.credentials {
            Credentials::OidcAccessToken { identity_provider, protocol, access_token } => {
                assert_eq!((identity_provider.as_str(), protocol.as_str()), ("egi.eu", "openid"));
                assert_eq!(access_token.expose(), "tok");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.cloud.auth_url, SITE);
        // The flag's auth type wins over OS_AUTH_TYPE (and is what the Endpoint says).
        let f = OsFlags { auth_type: Some("v3oidcaccesstoken".into()), ..flags(&[("protocol", "oidc")]) };
        let e2 = env(&[("OS_AUTH_TYPE", "password"), ("OS_IDENTITY_PROVIDER", "egi.eu"), ("OS_ACCESS_TOKEN", "t")]);
        let r = info_cloud(&f, &e2, empty.path(), SITE, None).unwrap();
        assert_eq!(r.auth_type, "v3oidcaccesstoken");
        assert!(matches!(&r.cloud.credentials, Credentials::OidcAccessToken { protocol, .. } if protocol == "oidc"));
    }

    #[test]
    fn a_trust_or_token_type_given_is_reported_as_unused() {
        let empty = tempfile::tempdir().unwrap();
        let e = env(&[("OS_USERNAME", "u"), ("OS_PASSWORD", "p"), ("OS_ACCESS_TOKEN_TYPE", "id_token")]);
        let r = info_cloud(&flags(&[("trust_id", "t")]), &e, empty.path(), SITE, None).unwrap();
        assert_eq!(r.unused, ["trust_id", "access_token_type"]);
        let e = env(&[("OS_USERNAME", "u"), ("OS_PASSWORD", "p")]);
        assert!(info_cloud(&OsFlags::default(), &e, empty.path(), SITE, None).unwrap().unused.is_empty());
    }

    #[test]
    fn deprecated_tenant_and_user_name_variables_still_count() {
        let empty = tempfile::tempdir().unwrap();
        let e = env(&[("OS_USER_NAME", "u"), ("OS_PASSWORD", "p"), ("OS_TENANT_NAME", "tn")]);
        let r = info_cloud(&OsFlags::default(), &e, empty.path(), SITE, None).unwrap();
        assert_eq!(user(&r.cloud).0, "u");
        assert_eq!(
            r.cloud.scope,
            Scope::Project(ProjectRef::Name { name: "tn".into(), domain: DomainRef::Id("default".into()) })
        );
    }

    #[test]
    fn with_a_cloud_its_auth_wins_over_flags_and_variables_except_the_project() {
        let d = dir_with(ONE_CLOUD);
        let e =
            env(&[("OS_PASSWORD", "envpw"), ("OS_AUTH_URL", "https://env.example/v3"), ("OS_PROJECT_ID", "envproj")]);
        let f = OsFlags {
            cloud: Some("c1".into()),
            ..flags(&[("username", "flagu"), ("auth_url", "https://flag.example/v3")])
        };
        let r = info_cloud(&f, &e, d.path(), SITE, None).unwrap();
        assert_eq!(user(&r.cloud), ("yamluser".into(), "yamlpw".into()));
        assert_eq!(r.cloud.auth_url, "https://yaml.example/v3");
        assert_eq!(r.cloud.scope, Scope::project_id("envproj"));
        assert_eq!(r.cloud.region_name.as_deref(), Some("YR"));
    }

    #[test]
    fn with_a_cloud_flags_and_variables_fill_what_it_lacks() {
        let d = dir_with("clouds:\n  c2:\n    auth:\n      username: yamluser\n      project_id: p\n");
        let e = env(&[("OS_CLOUD", "c2"), ("OS_PASSWORD", "envpw")]);
        let r = info_cloud(&OsFlags::default(), &e, d.path(), SITE, None).unwrap();
        assert_eq!(user(&r.cloud), ("yamluser".into(), "envpw".into()));
        // No auth_url anywhere: the site's endpoint.
        assert_eq!(r.cloud.auth_url, SITE);
    }

    #[test]
    fn the_cloud_flag_wins_over_os_cloud() {
        let d = dir_with(
            "clouds:\n  a:\n    auth: {auth_url: 'https://a/v3', username: ua, password: pa}\n  b:\n    auth: {auth_url: 'https://b/v3', username: ub, password: pb}\n",
        );
        let e = env(&[("OS_CLOUD", "a")]);
        let r =
            info_cloud(&OsFlags { cloud: Some("b".into()), ..OsFlags::default() }, &e, d.path(), SITE, None).unwrap();
        assert_eq!(user(&r.cloud).0, "ub");
        assert_eq!(user(&info_cloud(&OsFlags::default(), &e, d.path(), SITE, None).unwrap().cloud).0, "ua");
    }

    #[test]
    fn the_only_cloud_of_the_file_is_used_unless_os_variables_make_a_cloud() {
        let d = dir_with(ONE_CLOUD);
        // Only a selector set (and flags, which do not count): the file's only cloud.
        let e = env(&[("OS_REGION_NAME", "YR")]);
        let r = info_cloud(&flags(&[("username", "flagu"), ("password", "fp")]), &e, d.path(), SITE, None).unwrap();
        assert_eq!(user(&r.cloud).0, "yamluser");
        // Any other OS_* variable: the flags and variables alone.
        let e = env(&[("OS_USERNAME", "envu"), ("OS_PASSWORD", "envp")]);
        let r = info_cloud(&OsFlags::default(), &e, d.path(), SITE, None).unwrap();
        assert_eq!(user(&r.cloud).0, "envu");
        assert_eq!(r.cloud.auth_url, SITE);
        // Two clouds and no choice: nothing is picked (the variables are missing).
        let two = dir_with("clouds:\n  a:\n    auth: {username: a}\n  b:\n    auth: {username: b}\n");
        let err = info_cloud(&OsFlags::default(), &env(&[]), two.path(), SITE, None).unwrap_err().to_string();
        assert!(err.contains("--os-username / OS_USERNAME"), "{err}");
    }

    #[test]
    fn auth_type_flag_then_variable_then_the_clouds_then_password() {
        let d = dir_with(
            "clouds:\n  c:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: https://y/v3\n      application_credential_id: i\n      application_credential_secret: s\n",
        );
        let f = OsFlags { cloud: Some("c".into()), ..OsFlags::default() };
        assert_eq!(info_cloud(&f, &env(&[]), d.path(), SITE, None).unwrap().auth_type, "v3applicationcredential");
        let e = env(&[("OS_AUTH_TYPE", "v3password"), ("OS_USERNAME", "u"), ("OS_PASSWORD", "p")]);
        let r = info_cloud(&f, &e, d.path(), SITE, None).unwrap();
        assert_eq!(r.auth_type, "v3password");
        assert_eq!(user(&r.cloud), ("u".into(), "p".into()));
        let e = env(&[("OS_USERNAME", "u"), ("OS_PASSWORD", "p")]);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(info_cloud(&OsFlags::default(), &e, empty.path(), SITE, None).unwrap().auth_type, "password");
    }

    #[test]
    fn region_flag_then_variable_then_the_clouds_and_it_must_be_one_of_the_clouds() {
        let d = dir_with(ONE_CLOUD);
        let f = OsFlags { cloud: Some("c1".into()), region_name: Some("YR".into()), ..OsFlags::default() };
        assert_eq!(info_cloud(&f, &env(&[]), d.path(), SITE, None).unwrap().cloud.region_name.as_deref(), Some("YR"));
        let err = info_cloud(
            &OsFlags { cloud: Some("c1".into()), ..OsFlags::default() },
            &env(&[("OS_REGION_NAME", "ZZ")]),
            d.path(),
            SITE,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("ZZ is not a region of cloud 'c1'") && err.contains("regions: YR"), "{err}");
        // Without a cloud: flag, variable, then the site file's region.
        let empty = tempfile::tempdir().unwrap();
        let e = env(&[("OS_USERNAME", "u"), ("OS_PASSWORD", "p")]);
        let site = Some("SITE-R");
        assert_eq!(
            info_cloud(&OsFlags::default(), &e, empty.path(), SITE, site).unwrap().cloud.region_name.as_deref(),
            site
        );
        let mut e2 = e.clone();
        e2.insert("OS_REGION_NAME".into(), "ER".into());
        assert_eq!(
            info_cloud(&OsFlags::default(), &e2, empty.path(), SITE, site).unwrap().cloud.region_name.as_deref(),
            Some("ER")
        );
        let f = OsFlags { region_name: Some("FR".into()), ..OsFlags::default() };
        assert_eq!(info_cloud(&f, &e2, empty.path(), SITE, site).unwrap().cloud.region_name.as_deref(), Some("FR"));
    }

    #[test]
    fn interface_is_flag_then_variable_then_public_never_the_clouds_own() {
        let d = dir_with(ONE_CLOUD);
        let f = OsFlags { cloud: Some("c1".into()), ..OsFlags::default() };
        assert_eq!(info_cloud(&f, &env(&[]), d.path(), SITE, None).unwrap().cloud.interface, Interface::Public);
        assert_eq!(
            info_cloud(&f, &env(&[("OS_INTERFACE", "admin")]), d.path(), SITE, None).unwrap().cloud.interface,
            Interface::Admin
        );
        let f2 = OsFlags { interface: Some("internal".into()), ..f };
        assert_eq!(
            info_cloud(&f2, &env(&[("OS_INTERFACE", "admin")]), d.path(), SITE, None).unwrap().cloud.interface,
            Interface::Internal
        );
    }

    #[test]
    fn cacert_is_flag_then_variable_then_the_clouds_and_insecure_any_of_them() {
        let d = dir_with(ONE_CLOUD);
        let f = OsFlags { cloud: Some("c1".into()), ..OsFlags::default() };
        let r = info_cloud(&f, &env(&[]), d.path(), SITE, None).unwrap();
        assert_eq!((r.cloud.cacert, r.cloud.insecure), (Some(PathBuf::from("/yaml.pem")), false));
        let e = env(&[("OS_CACERT", "/env.pem")]);
        assert_eq!(info_cloud(&f, &e, d.path(), SITE, None).unwrap().cloud.cacert, Some(PathBuf::from("/env.pem")));
        let f2 = OsFlags { cacert: Some("/flag.pem".into()), insecure: true, ..f };
        let r = info_cloud(&f2, &e, d.path(), SITE, None).unwrap();
        assert_eq!((r.cloud.cacert, r.cloud.insecure), (Some(PathBuf::from("/flag.pem")), true));
    }

    #[test]
    fn a_cloud_that_is_missing_names_the_file_and_the_cloud() {
        let d = dir_with(ONE_CLOUD);
        let f = OsFlags { cloud: Some("nope".into()), ..OsFlags::default() };
        let err = info_cloud(&f, &env(&[]), d.path(), SITE, None).unwrap_err().to_string();
        assert!(err.contains("no cloud 'nope'") && err.contains("clouds.yaml"), "{err}");
    }
}
