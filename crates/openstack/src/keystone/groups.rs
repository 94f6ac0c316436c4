//! Keystone groups, roles and grants: `GET/POST /v3/groups`,
//! `GET /v3/roles?name=`, `PUT /v3/projects/{p}/groups/{g}/roles/{r}`,
//! `PUT /v3/system/users/{u}/roles/{r}`, plus user and project creation
//! (what federation setup and its tests need).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::catalog::Service;
use crate::error::Result;
use crate::paging::Query;
use crate::session::{Call, Session};
use reqwest::Method;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Group {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub domain_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Role {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub domain_id: Option<String>,
}

/// `GET /v3/groups` (optionally by name and domain).
pub async fn list_groups(s: &Session, name: Option<&str>, domain_id: Option<&str>) -> Result<Vec<Group>> {
    #[derive(Deserialize)]
    struct W {
        groups: Vec<Group>,
    }
    let q = Query::new().opt("name", name).opt("domain_id", domain_id);
    let w: W = s.json(Call::get(Service::Identity, "/groups", "/groups").query(q.into_vec())).await?;
    Ok(w.groups)
}

/// `POST /v3/groups`.
pub async fn create_group(s: &Session, name: &str, domain_id: &str, description: &str) -> Result<Group> {
    #[derive(Deserialize)]
    struct W {
        group: Group,
    }
    let c = Call::new(Service::Identity, Method::POST, "/groups", "/groups")
        .json(json!({"group": {"name": name, "domain_id": domain_id, "description": description}}));
    Ok(s.json::<W>(c).await?.group)
}

/// `GET /v3/roles` (optionally by name).
pub async fn list_roles(s: &Session, name: Option<&str>) -> Result<Vec<Role>> {
    #[derive(Deserialize)]
    struct W {
        roles: Vec<Role>,
    }
    let q = Query::new().opt("name", name);
    let w: W = s.json(Call::get(Service::Identity, "/roles", "/roles").query(q.into_vec())).await?;
    Ok(w.roles)
}

/// `PUT /v3/projects/{project}/groups/{group}/roles/{role}` (idempotent).
pub async fn grant_group_project_role(s: &Session, project: &str, group: &str, role: &str) -> Result<()> {
    let c = Call::new(
        Service::Identity,
        Method::PUT,
        "/projects/{id}/groups/{id}/roles/{id}",
        format!("/projects/{project}/groups/{group}/roles/{role}"),
    );
    s.send(c).await?;
    Ok(())
}

/// `PUT /v3/projects/{project}/users/{user}/roles/{role}` (idempotent).
pub async fn grant_user_project_role(s: &Session, project: &str, user: &str, role: &str) -> Result<()> {
    let c = Call::new(
        Service::Identity,
        Method::PUT,
        "/projects/{id}/users/{id}/roles/{id}",
        format!("/projects/{project}/users/{user}/roles/{role}"),
    );
    s.send(c).await?;
    Ok(())
}

/// `PUT /v3/system/users/{user}/roles/{role}` (idempotent).
pub async fn grant_user_system_role(s: &Session, user: &str, role: &str) -> Result<()> {
    let c = Call::new(
        Service::Identity,
        Method::PUT,
        "/system/users/{id}/roles/{id}",
        format!("/system/users/{user}/roles/{role}"),
    );
    s.send(c).await?;
    Ok(())
}

/// `POST /v3/users`: returns the new user's id.
pub async fn create_user(s: &Session, name: &str, domain_id: &str, password: &str) -> Result<String> {
    #[derive(Deserialize)]
    struct U {
        id: String,
    }
    #[derive(Deserialize)]
    struct W {
        user: U,
    }
    let c = Call::new(Service::Identity, Method::POST, "/users", "/users")
        .json(json!({"user": {"name": name, "domain_id": domain_id, "password": password, "enabled": true}}));
    Ok(s.json::<W>(c).await?.user.id)
}

/// `POST /v3/projects` with flat extra properties (e.g. `egi.VO`); returns its id.
pub async fn create_project(s: &Session, name: &str, domain_id: &str, extra: Map<String, Value>) -> Result<String> {
    #[derive(Deserialize)]
    struct P {
        id: String,
    }
    #[derive(Deserialize)]
    struct W {
        project: P,
    }
    let mut p = extra;
    p.insert("name".into(), json!(name));
    p.insert("domain_id".into(), json!(domain_id));
    p.insert("enabled".into(), json!(true));
    let c = Call::new(Service::Identity, Method::POST, "/projects", "/projects").json(json!({"project": p}));
    Ok(s.json::<W>(c).await?.project.id)
}
