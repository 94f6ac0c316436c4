//! Keystone role assignments: `GET /v3/role_assignments`.

use serde::Deserialize;

use crate::catalog::Service;
use crate::paging::{Next, Paged, Pager, Query};
use crate::session::{Call, NamedRef};

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct RoleAssignment {
    pub role: NamedRef,
    #[serde(default)]
    pub user: Option<NamedRef>,
    #[serde(default)]
    pub group: Option<NamedRef>,
    #[serde(default)]
    pub scope: AssignmentScope,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct AssignmentScope {
    #[serde(default)]
    pub project: Option<NamedRef>,
    #[serde(default)]
    pub domain: Option<NamedRef>,
    /// `{"all": true}` for system assignments.
    #[serde(default)]
    pub system: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default)]
pub struct ListRoleAssignments {
    pub user_id: Option<String>,
    pub group_id: Option<String>,
    pub role_id: Option<String>,
    pub scope_project_id: Option<String>,
    pub scope_domain_id: Option<String>,
    /// `scope.system=all`
    pub scope_system: bool,
    /// Expand group memberships and inherited roles.
    pub effective: bool,
    pub include_names: bool,
    pub include_subtree: bool,
}

impl Paged for ListRoleAssignments {
    type Item = RoleAssignment;

    fn pager(&self) -> Pager {
        let q = Query::new()
            .opt("user.id", self.user_id.as_ref())
            .opt("group.id", self.group_id.as_ref())
            .opt("role.id", self.role_id.as_ref())
            .opt("scope.project.id", self.scope_project_id.as_ref())
            .opt("scope.domain.id", self.scope_domain_id.as_ref())
            .flag("scope.system", self.scope_system, "all")
            .flag("effective", self.effective, "true")
            .flag("include_names", self.include_names, "true")
            .flag("include_subtree", self.include_subtree, "true");
        Pager::new(
            Call::get(Service::Identity, "/role_assignments", "/role_assignments").query(q.into_vec()),
            "/role_assignments",
            Next::None,
        )
    }
}
