//! Keystone users: `GET /v3/users`, `GET /v3/users/{id}`.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::catalog::Service;
use crate::error::Result;
use crate::paging::{Next, Paged, Pager, Query};
use crate::session::{Call, Session};

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct User {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub domain_id: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub default_project_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default, skip_serializing)]
    pub links: Option<Value>,
    /// Other properties (federation data, options, extra attributes).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default)]
pub struct ListUsers {
    pub domain_id: Option<String>,
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub idp_id: Option<String>,
}

impl Paged for ListUsers {
    type Item = User;

    fn pager(&self) -> Pager {
        let q = Query::new()
            .opt("domain_id", self.domain_id.as_ref())
            .opt("name", self.name.as_ref())
            .opt("enabled", self.enabled)
            .opt("idp_id", self.idp_id.as_ref());
        Pager::new(Call::get(Service::Identity, "/users", "/users").query(q.into_vec()), "/users", Next::None)
    }
}

/// `GET /v3/users/{id}` (needs reader on the system or the user's domain).
pub async fn get(s: &Session, id: &str) -> Result<User> {
    #[derive(Deserialize)]
    struct W {
        user: User,
    }
    let w: W = s.json(Call::get(Service::Identity, "/users/{id}", format!("/users/{id}"))).await?;
    Ok(w.user)
}
