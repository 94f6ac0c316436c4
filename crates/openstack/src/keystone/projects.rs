//! Keystone projects: `GET /v3/projects` (tag filters), `GET /v3/projects/{id}`,
//! `GET /v3/auth/projects`. Extra properties (e.g. `egi.VO`) are kept flat.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::catalog::Service;
use crate::error::Result;
use crate::paging::{Next, Paged, Pager, Query};
use crate::session::{Call, Session};

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Project {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub domain_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub is_domain: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing)]
    pub links: Option<Value>,
    #[serde(default)]
    pub options: Option<Value>,
    /// Extra properties, flat as Keystone returns them (`"egi.VO": "..."`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn yes() -> bool {
    true
}

impl Project {
    /// A string extra property (e.g. `project.property("egi.VO")`).
    pub fn property(&self, key: &str) -> Option<&str> {
        self.extra.get(key).and_then(Value::as_str)
    }
}

/// `GET /v3/projects`. Tag filters take all (`tags`), any (`tags-any`) and
/// their negations.
#[derive(Debug, Clone, Default)]
pub struct ListProjects {
    pub domain_id: Option<String>,
    pub name: Option<String>,
    pub parent_id: Option<String>,
    pub enabled: Option<bool>,
    pub is_domain: Option<bool>,
    pub tags: Vec<String>,
    pub tags_any: Vec<String>,
    pub not_tags: Vec<String>,
    pub not_tags_any: Vec<String>,
}

fn tags(v: &[String]) -> Option<String> {
    (!v.is_empty()).then(|| v.join(","))
}

impl ListProjects {
    /// Projects with all of `tags`.
    pub fn tagged(tag: impl Into<String>) -> Self {
        ListProjects { tags: vec![tag.into()], ..Default::default() }
    }
}

impl Paged for ListProjects {
    type Item = Project;

    fn pager(&self) -> Pager {
        let q = Query::new()
            .opt("domain_id", self.domain_id.as_ref())
            .opt("name", self.name.as_ref())
            .opt("parent_id", self.parent_id.as_ref())
            .opt("enabled", self.enabled)
            .opt("is_domain", self.is_domain)
            .opt("tags", tags(&self.tags))
            .opt("tags-any", tags(&self.tags_any))
            .opt("not-tags", tags(&self.not_tags))
            .opt("not-tags-any", tags(&self.not_tags_any));
        Pager::new(Call::get(Service::Identity, "/projects", "/projects").query(q.into_vec()), "/projects", Next::None)
    }
}

/// `GET /v3/projects/{id}`.
pub async fn get(s: &Session, id: &str) -> Result<Project> {
    #[derive(Deserialize)]
    struct W {
        project: Project,
    }
    let w: W = s.json(Call::get(Service::Identity, "/projects/{id}", format!("/projects/{id}"))).await?;
    Ok(w.project)
}

/// `GET /v3/auth/projects`: the projects the token's user can scope to.
pub async fn list_for_token(s: &Session) -> Result<Vec<Project>> {
    Pager::new(Call::get(Service::Identity, "/auth/projects", "/auth/projects"), "/projects", Next::None)
        .collect(s)
        .await
}
