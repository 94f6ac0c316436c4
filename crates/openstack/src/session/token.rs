//! Keystone tokens: the token as a session holds it, its wire form (`POST /v3/auth/tokens`'s
//! answer) and the request body built from credentials and scope.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::Catalog;
use crate::config::{Credentials, DomainRef, ProjectRef, Scope, UserRef};
use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct NamedRef {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TokenUser {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub domain: Option<NamedRef>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TokenProject {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub domain: Option<NamedRef>,
}

/// A Keystone token: the secret, expiry, who and what it is for, catalog.
#[derive(Debug, Clone)]
pub struct Token {
    pub id: Secret,
    pub expires_at: DateTime<Utc>,
    pub issued_at: Option<DateTime<Utc>>,
    pub methods: Vec<String>,
    pub user: TokenUser,
    pub project: Option<TokenProject>,
    pub domain: Option<NamedRef>,
    pub system: bool,
    pub roles: Vec<NamedRef>,
    pub catalog: Catalog,
}

#[derive(Deserialize)]
pub(super) struct TokenBody {
    pub(super) token: TokenWire,
}

#[derive(Deserialize)]
pub(super) struct TokenWire {
    #[serde(deserialize_with = "crate::time::de")]
    pub(super) expires_at: DateTime<Utc>,
    #[serde(default, deserialize_with = "crate::time::de_opt")]
    pub(super) issued_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(super) methods: Vec<String>,
    pub(super) user: TokenUser,
    #[serde(default)]
    pub(super) project: Option<TokenProject>,
    #[serde(default)]
    pub(super) domain: Option<NamedRef>,
    #[serde(default)]
    pub(super) system: Option<Value>,
    #[serde(default)]
    pub(super) roles: Vec<NamedRef>,
    #[serde(default)]
    pub(super) catalog: Catalog,
}

fn domain_json(d: &DomainRef) -> Value {
    match d {
        DomainRef::Id(id) => json!({"id": id}),
        DomainRef::Name(n) => json!({"name": n}),
    }
}

fn user_json(u: &UserRef) -> serde_json::Map<String, Value> {
    let v = match u {
        UserRef::Id(id) => json!({"id": id}),
        UserRef::Name { name, domain } => json!({"name": name, "domain": domain_json(domain)}),
    };
    v.as_object().cloned().unwrap_or_default()
}

/// The body of `POST /v3/auth/tokens`.
pub fn auth_body(creds: &Credentials, scope: &Scope) -> Value {
    let identity = match creds {
        Credentials::Password { user, password } => {
            let mut u = user_json(user);
            u.insert("password".into(), json!(password.expose()));
            json!({"methods": ["password"], "password": {"user": u}})
        }
        Credentials::ApplicationCredential { id, name, user, secret } => {
            let mut ac = serde_json::Map::new();
            match (id, name) {
                (Some(id), _) => {
                    ac.insert("id".into(), json!(id));
                }
                (None, Some(n)) => {
                    ac.insert("name".into(), json!(n));
                    if let Some(u) = user {
                        ac.insert("user".into(), Value::Object(user_json(u)));
                    }
                }
                (None, None) => {}
            }
            ac.insert("secret".into(), json!(secret.expose()));
            json!({"methods": ["application_credential"], "application_credential": ac})
        }
        Credentials::Token { token } => {
            json!({"methods": ["token"], "token": {"id": token.expose()}})
        }
        // A federated login is not a body of its own: the Session first trades
        // the access token for an unscoped token (oidc.rs), then scopes that.
        Credentials::OidcAccessToken { .. } | Credentials::OidcClientCredentials { .. } => {
            json!({"methods": ["token"], "token": {"id": ""}})
        }
    };
    let scope = match scope {
        Scope::Project(ProjectRef::Id(id)) => Some(json!({"project": {"id": id}})),
        Scope::Project(ProjectRef::Name { name, domain }) => {
            Some(json!({"project": {"name": name, "domain": domain_json(domain)}}))
        }
        Scope::Domain(d) => Some(json!({"domain": domain_json(d)})),
        Scope::System => Some(json!({"system": {"all": true}})),
        Scope::Unscoped => None,
    };
    let mut auth = json!({"identity": identity});
    // Application credentials fix their own scope; Keystone rejects another.
    if let (Some(s), false) = (scope, matches!(creds, Credentials::ApplicationCredential { .. })) {
        auth["scope"] = s;
    }
    json!({"auth": auth})
}
