//! Keystone v3: projects (tags, flat extra properties), users, role
//! assignments, groups and grants, OS-FEDERATION. Keystone does not page;
//! each list is one request.

pub mod federation;
pub mod groups;
pub mod projects;
pub mod role_assignments;
pub mod users;

pub use projects::{ListProjects, Project};
pub use role_assignments::{ListRoleAssignments, RoleAssignment};
pub use users::{ListUsers, User};
