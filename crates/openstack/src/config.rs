//! `CloudConfig`: where and how to authenticate, read like
//! python-openstackclient does: a named cloud from clouds.yaml (+ secure.yaml)
//! when a cloud name or `OS_CLOUD` is given, the `OS_*` variables otherwise.
//! Everything here is a pure function of an env map and a working directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value as Yaml;

use crate::error::ConfigError;
use crate::secret::Secret;

/// Environment variables as a map, so tests never touch the process env.
pub type Env = BTreeMap<String, String>;

/// The process environment (all variables).
pub fn process_env() -> Env {
    std::env::vars().collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainRef {
    Id(String),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    Id(String),
    Name { name: String, domain: DomainRef },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectRef {
    Id(String),
    Name { name: String, domain: DomainRef },
}

/// What a token is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Project(ProjectRef),
    Domain(DomainRef),
    /// `{"system": {"all": true}}`
    System,
    Unscoped,
}

impl Scope {
    /// Project scope by id, the common case for per-project work.
    pub fn project_id(id: impl Into<String>) -> Scope {
        Scope::Project(ProjectRef::Id(id.into()))
    }
}

/// How to prove who we are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Password {
        user: UserRef,
        password: Secret,
    },
    /// By `id`, or by `name` + `user`.
    ApplicationCredential {
        id: Option<String>,
        name: Option<String>,
        user: Option<UserRef>,
        secret: Secret,
    },
    /// An existing token, exchanged for a (re)scoped one.
    Token {
        token: Secret,
    },
    /// keystoneauth's `v3oidcaccesstoken`: an OIDC access token presented to
    /// `OS-FEDERATION/identity_providers/{identity_provider}/protocols/{protocol}/auth`.
    OidcAccessToken {
        identity_provider: String,
        protocol: String,
        access_token: Secret,
    },
    /// keystoneauth's `v3oidcclientcredentials`: an access token first obtained
    /// from the OIDC provider with the `client_credentials` grant.
    OidcClientCredentials {
        identity_provider: String,
        protocol: String,
        client_id: String,
        client_secret: Secret,
        /// The provider's `.well-known/openid-configuration`, or…
        discovery_endpoint: Option<String>,
        /// …its token endpoint directly.
        access_token_endpoint: Option<String>,
        /// OIDC scope (keystoneauth's `openid_scope`, default `openid profile`).
        openid_scope: String,
    },
}

impl Credentials {
    /// The password, application-credential secret, token, OIDC access token or
    /// OIDC client secret.
    pub fn secret(&self) -> &Secret {
        match self {
            Credentials::Password { password, .. } => password,
            Credentials::ApplicationCredential { secret, .. } => secret,
            Credentials::Token { token } => token,
            Credentials::OidcAccessToken { access_token, .. } => access_token,
            Credentials::OidcClientCredentials { client_secret, .. } => client_secret,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interface {
    #[default]
    Public,
    Internal,
    Admin,
}

impl Interface {
    pub fn as_str(&self) -> &'static str {
        match self {
            Interface::Public => "public",
            Interface::Internal => "internal",
            Interface::Admin => "admin",
        }
    }
    /// `public`, `publicURL`, `internal`, `admin` ...
    pub fn parse(s: &str) -> Option<Interface> {
        match s.trim().trim_end_matches("URL").to_ascii_lowercase().as_str() {
            "public" => Some(Interface::Public),
            "internal" => Some(Interface::Internal),
            "admin" => Some(Interface::Admin),
            _ => None,
        }
    }
}

/// A resolved cloud: everything a `Session` needs. `Debug` hides secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudConfig {
    /// The clouds.yaml cloud name; None for `OS_*` variables.
    pub name: Option<String>,
    /// Where it came from: the file (`~/...`) or `environment`.
    pub source: String,
    /// As configured, with or without `/v3`.
    pub auth_url: String,
    pub credentials: Credentials,
    pub scope: Scope,
    pub region_name: Option<String>,
    pub interface: Interface,
    pub cacert: Option<PathBuf>,
    pub insecure: bool,
}

impl CloudConfig {
    /// python-openstackclient's choice: `cloud` or `OS_CLOUD` selects a
    /// clouds.yaml entry; otherwise the `OS_*` variables. Reads the process
    /// environment and working directory.
    pub fn load(cloud: Option<&str>) -> Result<CloudConfig, ConfigError> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Self::load_with(cloud, &process_env(), &cwd)
    }

    /// [`CloudConfig::load`] with an explicit environment and directory.
    pub fn load_with(cloud: Option<&str>, env: &Env, cwd: &Path) -> Result<CloudConfig, ConfigError> {
        let name = cloud.map(str::to_string).or_else(|| env.get("OS_CLOUD").filter(|s| !s.is_empty()).cloned());
        match name {
            Some(name) => Self::from_clouds_files(
                &name,
                &clouds_yaml_candidates(env, cwd),
                &secure_yaml_candidates(env, cwd),
                env,
            ),
            None => Self::from_env(env),
        }
    }

    /// The cloud `name` from the first existing clouds file among
    /// `candidates`, with the first existing secure file merged over it.
    pub fn from_clouds_files(
        name: &str,
        candidates: &[PathBuf],
        secure_candidates: &[PathBuf],
        env: &Env,
    ) -> Result<CloudConfig, ConfigError> {
        let Some(path) = candidates.iter().find(|p| p.is_file()) else {
            let searched = candidates.iter().map(|p| display_path(p, env)).collect::<Vec<_>>().join(", ");
            return Err(ConfigError::new(
                "clouds.yaml",
                format!("cloud '{name}' requested but no clouds.yaml found (searched {searched})"),
            ));
        };
        let label = display_path(path, env);
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(&label, e.to_string()))?;
        let secure = match secure_candidates.iter().find(|p| p.is_file()) {
            Some(p) => Some((
                display_path(p, env),
                std::fs::read_to_string(p).map_err(|e| ConfigError::new(display_path(p, env), e.to_string()))?,
            )),
            None => None,
        };
        let cfg = Self::from_clouds_yaml(&text, secure.as_ref().map(|(l, t)| (l.as_str(), t.as_str())), name, &label)?;
        // A file holding the cloud's password, application-credential
        // secret or token must not be readable by others.
        let secret = cfg.credentials.secret().expose();
        if !secret.is_empty() {
            let mut files = vec![(path, &label, text.as_str())];
            if let (Some(p), Some((l, t))) = (secure_candidates.iter().find(|p| p.is_file()), &secure) {
                files.push((p, l, t.as_str()));
            }
            for (p, l, t) in files {
                if t.contains(secret) {
                    crate::secret::check_private_file(p).map_err(|e| ConfigError::new(l, e.to_string()))?;
                }
            }
        }
        Ok(cfg)
    }

    /// Parses clouds.yaml text (and optional `(label, text)` of secure.yaml)
    /// and resolves cloud `name`. `label` names the file in errors.
    pub fn from_clouds_yaml(
        text: &str,
        secure: Option<(&str, &str)>,
        name: &str,
        label: &str,
    ) -> Result<CloudConfig, ConfigError> {
        let (raw, _) = cloud_raw(text, secure, name, label)?;
        let cloud_name = name.to_string();
        resolve(
            raw,
            label,
            Some(name.to_string()),
            &move |k, in_auth| {
                if in_auth {
                    format!("cloud '{cloud_name}' has no auth.{k}")
                } else {
                    format!("cloud '{cloud_name}' has no {k}")
                }
            },
            &|k, in_auth| {
                if in_auth { format!("auth.{k}") } else { k.to_string() }
            },
        )
    }

    /// The cloud `name` of the first existing clouds file (secure.yaml merged
    /// over it) as one flat map of keystoneauth option names (`auth.*` and the
    /// cloud's own keys: `auth_type`, `region_name`, `interface`, `cacert`,
    /// `insecure`), for a caller that layers flags and variables over it and
    /// resolves the result with [`CloudConfig::from_auth_options`]. A file
    /// holding a secret must be private, as for [`CloudConfig::from_clouds_files`].
    pub fn cloud_options(name: &str, env: &Env, cwd: &Path) -> Result<CloudOptions, ConfigError> {
        let candidates = clouds_yaml_candidates(env, cwd);
        let secure_candidates = secure_yaml_candidates(env, cwd);
        let Some(path) = candidates.iter().find(|p| p.is_file()) else {
            let searched = candidates.iter().map(|p| display_path(p, env)).collect::<Vec<_>>().join(", ");
            return Err(ConfigError::new(
                "clouds.yaml",
                format!("cloud '{name}' requested but no clouds.yaml found (searched {searched})"),
            ));
        };
        let label = display_path(path, env);
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(&label, e.to_string()))?;
        let secure_path = secure_candidates.iter().find(|p| p.is_file());
        let secure = match secure_path {
            Some(p) => Some((
                display_path(p, env),
                std::fs::read_to_string(p).map_err(|e| ConfigError::new(display_path(p, env), e.to_string()))?,
            )),
            None => None,
        };
        let (raw, regions) = cloud_raw(&text, secure.as_ref().map(|(l, t)| (l.as_str(), t.as_str())), name, &label)?;
        let secrets: Vec<&String> =
            SECRET_KEYS.iter().filter_map(|k| raw.auth.get(*k)).filter(|v| !v.is_empty()).collect();
        let mut files = vec![(path, &label, text.as_str())];
        if let (Some(p), Some((l, t))) = (secure_path, &secure) {
            files.push((p, l, t.as_str()));
        }
        for (p, l, t) in files {
            if secrets.iter().any(|s| t.contains(s.as_str())) {
                crate::secret::check_private_file(p).map_err(|e| ConfigError::new(l, e.to_string()))?;
            }
        }
        let mut options = raw.top;
        options.extend(raw.auth);
        Ok(CloudOptions { label, options, regions })
    }

    /// The names of the clouds in the first existing clouds file, with its
    /// label; `None` when there is no clouds file.
    pub fn cloud_names(env: &Env, cwd: &Path) -> Result<Option<(String, Vec<String>)>, ConfigError> {
        let Some(path) = clouds_yaml_candidates(env, cwd).into_iter().find(|p| p.is_file()) else {
            return Ok(None);
        };
        let label = display_path(&path, env);
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::new(&label, e.to_string()))?;
        let doc: Yaml =
            serde_yaml::from_str(&text).map_err(|e| ConfigError::new(&label, format!("invalid YAML: {e}")))?;
        let names = doc
            .get("clouds")
            .and_then(Yaml::as_mapping)
            .map(|m| m.keys().filter_map(|k| k.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        Ok(Some((label, names)))
    }

    /// From `OS_*` variables.
    pub fn from_env(env: &Env) -> Result<CloudConfig, ConfigError> {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let mut raw = Raw::default();
        for k in AUTH_KEYS {
            if let Some(v) = get(&format!("OS_{}", k.to_ascii_uppercase())) {
                raw.auth.insert(k.to_string(), v);
            }
        }
        if let Some(v) = get("OS_TENANT_NAME") {
            raw.auth.entry("project_name".into()).or_insert(v);
        }
        if let Some(v) = get("OS_TENANT_ID") {
            raw.auth.entry("project_id".into()).or_insert(v);
        }
        if let Some(v) = get("OS_DEFAULT_DOMAIN") {
            raw.auth.entry("default_domain_id".into()).or_insert(v);
        }
        for (var, key) in [
            ("OS_AUTH_TYPE", "auth_type"),
            ("OS_REGION_NAME", "region_name"),
            ("OS_INTERFACE", "interface"),
            ("OS_ENDPOINT_TYPE", "interface"),
            ("OS_CACERT", "cacert"),
            ("OS_INSECURE", "insecure"),
        ] {
            if let Some(v) = get(var) {
                raw.top.entry(key.into()).or_insert(v);
            }
        }
        resolve(raw, "environment", None, &|k, _| format!("OS_{} is not set", k.to_ascii_uppercase()), &|k, _| {
            format!("OS_{}", k.to_ascii_uppercase())
        })
    }
}

impl CloudConfig {
    /// From keystoneauth plugin and session options given as one flat map, as
    /// an oslo.config section holds them (cASO's `[keystone_auth]`):
    /// `auth_type`, the plugin's options (`auth_url`, `username`, `project_id`,
    /// `client_secret`, ...) and `region_name`, `interface`, `cacert`,
    /// `insecure`. Resolved by the same rules as clouds.yaml; `key_name`
    /// spells a key in messages (e.g. `[keystone_auth] password`).
    pub fn from_auth_options(
        options: &BTreeMap<String, String>,
        source: &str,
        key_name: &dyn Fn(&str) -> String,
    ) -> Result<CloudConfig, ConfigError> {
        let mut raw = Raw::default();
        for (k, v) in options {
            if AUTH_KEYS.contains(&k.as_str()) {
                raw.auth.insert(k.clone(), v.clone());
            } else {
                raw.top.insert(k.clone(), v.clone());
            }
        }
        resolve(raw, source, None, &|k, _| format!("{} is missing", key_name(k)), &|k, _| key_name(k))
    }
}

const AUTH_KEYS: &[&str] = &[
    "auth_url",
    "username",
    "user_id",
    "password",
    "user_domain_name",
    "user_domain_id",
    "project_name",
    "project_id",
    "tenant_name",
    "tenant_id",
    "project_domain_name",
    "project_domain_id",
    "domain_name",
    "domain_id",
    "system_scope",
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
    "default_domain_id",
    "default_domain_name",
];

/// A clouds.yaml cloud as flat keystoneauth options ([`CloudConfig::cloud_options`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudOptions {
    /// The file, for messages (`~/...`).
    pub label: String,
    pub options: BTreeMap<String, String>,
    /// The names its `regions` list gives (empty when it has none).
    pub regions: Vec<String>,
}

/// The auth options that hold a secret.
const SECRET_KEYS: &[&str] = &["password", "application_credential_secret", "token", "access_token", "client_secret"];

#[derive(Default)]
struct Raw {
    top: BTreeMap<String, String>,
    auth: BTreeMap<String, String>,
}

type Namer<'a> = &'a dyn Fn(&str, bool) -> String;

fn resolve(
    raw: Raw,
    source: &str,
    name: Option<String>,
    missing: Namer,
    key_name: Namer,
) -> Result<CloudConfig, ConfigError> {
    let r = Resolver { raw: &raw, source, missing, key_name };
    let err = |m: String| r.err(m);
    let a = |k: &str| r.a(k);
    let auth_url = a("auth_url").ok_or_else(|| err(missing("auth_url", true)))?;
    let default_domain = a("default_domain_id")
        .map(DomainRef::Id)
        .or_else(|| a("default_domain_name").map(DomainRef::Name))
        .unwrap_or_else(|| DomainRef::Id("default".into()));
    let user_domain = a("user_domain_id")
        .map(DomainRef::Id)
        .or_else(|| a("user_domain_name").map(DomainRef::Name))
        .unwrap_or_else(|| default_domain.clone());
    let user =
        a("user_id").map(UserRef::Id).or_else(|| a("username").map(|name| UserRef::Name { name, domain: user_domain }));

    let auth_type = raw.top.get("auth_type").map(|s| s.to_ascii_lowercase()).unwrap_or_else(|| {
        if a("application_credential_secret").is_some() {
            "v3applicationcredential".into()
        } else if a("token").is_some() && a("password").is_none() {
            "token".into()
        } else {
            "password".into()
        }
    });
    let credentials = r.credentials(&auth_type, user)?;
    let scope = if matches!(credentials, Credentials::ApplicationCredential { .. }) {
        Scope::Unscoped // the credential fixes the project
    } else {
        r.scope(&default_domain)?
    };
    let interface = match raw.top.get("interface") {
        Some(s) => Interface::parse(s)
            .ok_or_else(|| err(format!("{} '{s}' is not public, internal or admin", key_name("interface", false))))?,
        None => Interface::Public,
    };
    Ok(CloudConfig {
        name,
        source: source.to_string(),
        auth_url,
        credentials,
        scope,
        region_name: raw.top.get("region_name").filter(|s| !s.is_empty()).cloned(),
        interface,
        cacert: raw.top.get("cacert").filter(|s| !s.is_empty()).map(PathBuf::from),
        insecure: raw
            .top
            .get("insecure")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes")),
    })
}

/// What the steps of [`resolve`] share: the raw options, the source named in
/// errors, and how an option is spelled in messages (a clouds.yaml key or an
/// `OS_*` variable).
struct Resolver<'a> {
    raw: &'a Raw,
    source: &'a str,
    missing: Namer<'a>,
    key_name: Namer<'a>,
}

impl Resolver<'_> {
    /// An auth option, None when absent or blank.
    fn a(&self, k: &str) -> Option<String> {
        self.raw.auth.get(k).filter(|v| !v.trim().is_empty()).cloned()
    }

    fn err(&self, m: String) -> ConfigError {
        ConfigError::new(self.source, m)
    }

    /// The credentials of `auth_type` (lowercase), with `user` for the kinds
    /// that name one.
    fn credentials(&self, auth_type: &str, user: Option<UserRef>) -> Result<Credentials, ConfigError> {
        Ok(match auth_type {
            "password" | "v3password" => Credentials::Password {
                user: user.ok_or_else(|| {
                    self.err(format!(
                        "{} or {} is required for password auth",
                        (self.key_name)("username", true),
                        (self.key_name)("user_id", true)
                    ))
                })?,
                password: Secret::new(self.a("password").ok_or_else(|| self.err((self.missing)("password", true)))?),
            },
            "v3applicationcredential" | "applicationcredential" | "application_credential" => {
                let id = self.a("application_credential_id");
                let cname = self.a("application_credential_name");
                if id.is_none() && cname.is_none() {
                    return Err(self.err(format!(
                        "{} or {} is required for application credential auth",
                        (self.key_name)("application_credential_id", true),
                        (self.key_name)("application_credential_name", true)
                    )));
                }
                if id.is_none() && user.is_none() {
                    return Err(self.err(format!(
                        "an application credential given by name needs {} or {}",
                        (self.key_name)("username", true),
                        (self.key_name)("user_id", true)
                    )));
                }
                Credentials::ApplicationCredential {
                    id,
                    name: cname,
                    user,
                    secret: Secret::new(
                        self.a("application_credential_secret")
                            .ok_or_else(|| self.err((self.missing)("application_credential_secret", true)))?,
                    ),
                }
            }
            "token" | "v3token" => Credentials::Token {
                token: Secret::new(self.a("token").ok_or_else(|| self.err((self.missing)("token", true)))?),
            },
            "v3oidcaccesstoken" | "v3oidcclientcredentials" => {
                let need = |k: &str| self.a(k).ok_or_else(|| self.err((self.missing)(k, true)));
                let (identity_provider, protocol) = (need("identity_provider")?, need("protocol")?);
                if auth_type == "v3oidcaccesstoken" {
                    Credentials::OidcAccessToken {
                        identity_provider,
                        protocol,
                        access_token: Secret::new(need("access_token")?),
                    }
                } else {
                    let (discovery_endpoint, access_token_endpoint) =
                        (self.a("discovery_endpoint"), self.a("access_token_endpoint"));
                    if discovery_endpoint.is_none() && access_token_endpoint.is_none() {
                        return Err(self.err(format!(
                            "{} or {} is required for OIDC client credentials",
                            (self.key_name)("discovery_endpoint", true),
                            (self.key_name)("access_token_endpoint", true)
                        )));
                    }
                    Credentials::OidcClientCredentials {
                        identity_provider,
                        protocol,
                        client_id: need("client_id")?,
                        client_secret: Secret::new(need("client_secret")?),
                        discovery_endpoint,
                        access_token_endpoint,
                        openid_scope: self.a("openid_scope").unwrap_or_else(|| "openid profile".into()),
                    }
                }
            }
            other => {
                return Err(self.err(format!(
                    "{} '{other}' is not supported (password, v3password, v3applicationcredential, token, v3token, v3oidcaccesstoken, v3oidcclientcredentials)",
                    (self.key_name)("auth_type", false)
                )));
            }
        })
    }

    /// The token scope: at most one of project, domain or `system_scope: all`;
    /// a project's domain defaults to `default_domain`.
    fn scope(&self, default_domain: &DomainRef) -> Result<Scope, ConfigError> {
        let project_domain = self
            .a("project_domain_id")
            .map(DomainRef::Id)
            .or_else(|| self.a("project_domain_name").map(DomainRef::Name))
            .unwrap_or_else(|| default_domain.clone());
        let project = self.a("project_id").or_else(|| self.a("tenant_id")).map(ProjectRef::Id).or_else(|| {
            self.a("project_name")
                .or_else(|| self.a("tenant_name"))
                .map(|name| ProjectRef::Name { name, domain: project_domain })
        });
        let domain = self.a("domain_id").map(DomainRef::Id).or_else(|| self.a("domain_name").map(DomainRef::Name));
        let system = self.a("system_scope");
        let n = project.is_some() as u8 + domain.is_some() as u8 + system.is_some() as u8;
        if n > 1 {
            return Err(self.err(format!(
                "more than one scope given: use only one of project ({}/{}), domain ({}/{}) or {}",
                (self.key_name)("project_id", true),
                (self.key_name)("project_name", true),
                (self.key_name)("domain_id", true),
                (self.key_name)("domain_name", true),
                (self.key_name)("system_scope", true)
            )));
        }
        Ok(match (project, domain, system) {
            (Some(p), _, _) => Scope::Project(p),
            (_, Some(d), _) => Scope::Domain(d),
            (_, _, Some(s)) if s == "all" => Scope::System,
            (_, _, Some(s)) => {
                return Err(self.err(format!("{} must be 'all', not '{s}'", (self.key_name)("system_scope", true))));
            }
            _ => Scope::Unscoped,
        })
    }
}

/// The cloud `name` of clouds.yaml text (secure.yaml merged over it) as raw
/// option maps, with the names of its `regions`.
fn cloud_raw(
    text: &str,
    secure: Option<(&str, &str)>,
    name: &str,
    label: &str,
) -> Result<(Raw, Vec<String>), ConfigError> {
    let mut doc: Yaml =
        serde_yaml::from_str(text).map_err(|e| ConfigError::new(label, format!("invalid YAML: {e}")))?;
    if let Some((slabel, stext)) = secure {
        let sdoc: Yaml =
            serde_yaml::from_str(stext).map_err(|e| ConfigError::new(slabel, format!("invalid YAML: {e}")))?;
        merge_yaml(&mut doc, sdoc);
    }
    let clouds =
        doc.get("clouds").and_then(Yaml::as_mapping).ok_or_else(|| ConfigError::new(label, "no 'clouds' mapping"))?;
    let cloud = clouds.get(name).ok_or_else(|| {
        let names: Vec<String> = clouds.keys().filter_map(|k| k.as_str().map(str::to_string)).collect();
        ConfigError::new(label, format!("no cloud '{name}' (clouds: {})", names.join(", ")))
    })?;
    let mut raw = Raw::default();
    let mut regions = Vec::new();
    if let Some(m) = cloud.as_mapping() {
        for (k, v) in m {
            if let (Some(k), Some(v)) = (k.as_str(), scalar(v)) {
                raw.top.insert(k.to_string(), v);
            }
        }
        if let Some(auth) = m.get("auth").and_then(Yaml::as_mapping) {
            for (k, v) in auth {
                if let (Some(k), Some(v)) = (k.as_str(), scalar(v)) {
                    raw.auth.insert(k.to_string(), v);
                }
            }
        }
        for r in m.get("regions").and_then(Yaml::as_sequence).into_iter().flatten() {
            if let Some(r) = r.get("name").and_then(scalar).or_else(|| scalar(r)) {
                regions.push(r);
            }
        }
        if !raw.top.contains_key("region_name")
            && let Some(first) = regions.first()
        {
            raw.top.insert("region_name".into(), first.clone());
        }
    }
    // Known auth keys given at the cloud's top level count as auth keys.
    for k in AUTH_KEYS {
        if !raw.auth.contains_key(*k)
            && let Some(v) = raw.top.get(*k).cloned()
        {
            raw.auth.insert(k.to_string(), v);
        }
    }
    if let Some(v) = raw.top.get("verify") {
        let insecure = matches!(v.to_ascii_lowercase().as_str(), "false" | "no" | "0");
        raw.top.insert("insecure".into(), insecure.to_string());
    }
    Ok((raw, regions))
}

fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn merge_yaml(base: &mut Yaml, over: Yaml) {
    match (base, over) {
        (Yaml::Mapping(b), Yaml::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge_yaml(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn config_dirs(env: &Env, cwd: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![cwd.to_path_buf()];
    match (env.get("XDG_CONFIG_HOME").filter(|s| !s.is_empty()), env.get("HOME").filter(|s| !s.is_empty())) {
        (Some(x), _) => dirs.push(Path::new(x).join("openstack")),
        (None, Some(h)) => dirs.push(Path::new(h).join(".config/openstack")),
        _ => {}
    }
    dirs.push(PathBuf::from("/etc/openstack"));
    dirs
}

/// Where clouds.yaml is looked for, in order: `OS_CLIENT_CONFIG_FILE`,
/// `./clouds.yaml`, `$XDG_CONFIG_HOME/openstack` (or `~/.config/openstack`),
/// `/etc/openstack`. The first existing file wins.
pub fn clouds_yaml_candidates(env: &Env, cwd: &Path) -> Vec<PathBuf> {
    candidates(env, cwd, "OS_CLIENT_CONFIG_FILE", "clouds")
}

/// Where secure.yaml is looked for (`OS_CLIENT_SECURE_FILE` first).
pub fn secure_yaml_candidates(env: &Env, cwd: &Path) -> Vec<PathBuf> {
    candidates(env, cwd, "OS_CLIENT_SECURE_FILE", "secure")
}

fn candidates(env: &Env, cwd: &Path, var: &str, stem: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(f) = env.get(var).filter(|s| !s.is_empty()) {
        out.push(PathBuf::from(f));
    }
    for d in config_dirs(env, cwd) {
        out.push(d.join(format!("{stem}.yaml")));
        out.push(d.join(format!("{stem}.yml")));
    }
    out
}

/// A path for messages, with `~` for `$HOME`.
pub fn display_path(p: &Path, env: &Env) -> String {
    if let Some(home) = env.get("HOME").filter(|h| !h.is_empty() && *h != "/")
        && let Ok(rest) = p.strip_prefix(home)
    {
        return format!("~/{}", rest.display());
    }
    p.display().to_string()
}
