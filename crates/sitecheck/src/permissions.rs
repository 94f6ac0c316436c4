//! Permission checks of the accounting account (cASO's): it can do
//! `identity:list_users` and `identity:list_projects` (reader with system
//! scope, as cASO documents) and read every project it must account.

use openstack::Paged;
use openstack::keystone::{ListProjects, ListUsers, Project};
use openstack::{Scope, Session};

use crate::check::Check;
use crate::config::CheckConfig;

fn who(s: &openstack::Token) -> (String, String) {
    let name = s.user.name.clone().unwrap_or_else(|| s.user.id.clone());
    let domain = s.user.domain.as_ref().and_then(|d| d.name.clone()).unwrap_or_else(|| "Default".into());
    (name, domain)
}

/// The permissions family. `admin` (when given) resolves the projects the
/// account must read; otherwise the account's own listing is used.
pub async fn run(cfg: &CheckConfig, acct: &Session, admin: Option<&Session>) -> Vec<Check> {
    let token = match acct.token().await {
        Ok(t) => t,
        Err(e) => {
            return vec![Check::critical(
                "permissions.auth",
                "the accounting account authenticates",
                e.to_string(),
                "check the accounting account's credentials (--accounting-cloud)",
            )];
        }
    };
    let (user, domain) = who(&token);
    let system_fix = format!("openstack role add --user {user} --user-domain {domain} --system all reader");
    // cASO asks for a system-scoped token for these calls.
    let system =
        if token.system { Ok(acct.clone()) } else { acct.rescope(Scope::System).await.map_err(|e| e.to_string()) };
    let (listing, scope_note) = match &system {
        Ok(s) => (s.clone(), "system scope".to_string()),
        Err(e) => (acct.clone(), format!("no system-scoped token ({e}); tried its own scope")),
    };
    let mut out = Vec::new();
    for (rule, id) in
        [("identity:list_users", "permissions.list-users"), ("identity:list_projects", "permissions.list-projects")]
    {
        let tested = format!("{user} may do {rule} (reader with system scope)");
        let r = if rule.ends_with("users") {
            ListUsers::default().list(&listing).await.map(|v| v.len())
        } else {
            ListProjects::default().list(&listing).await.map(|v| v.len())
        };
        out.push(match r {
            Ok(n) => Check::ok(id, tested, format!("{rule} allowed with {scope_note} ({n} listed)")),
            Err(e) => Check::critical(
                id,
                tested,
                format!("{rule} refused for {user} with {scope_note}: {e}"),
                system_fix.clone(),
            ),
        });
    }

    // Which projects it must read.
    let lister = admin.cloned().unwrap_or(listing.clone());
    let all: Vec<Project> = ListProjects::default().list(&lister).await.unwrap_or_default();
    let mut targets: Vec<(String, String)> = Vec::new();
    if cfg.vos.is_empty() {
        for p in &all {
            if crate::projects::vo_of(cfg, p).is_some() {
                targets.push((p.id.clone(), p.name.clone()));
            }
        }
    } else {
        for (vo, p) in crate::projects::resolve(cfg, &all) {
            match p {
                Some(p) => targets.push((p.id.clone(), p.name.clone())),
                None => targets.push((vo.project.clone(), vo.project.clone())),
            }
        }
    }
    let tested = format!("{user} can scope to and read each project it accounts (reader on the project)");
    if targets.is_empty() {
        out.push(Check::skipped(
            "permissions.projects",
            tested,
            "no projects to account (no --vo and no project with a VO property)",
        ));
        return out;
    }
    let mut refused = Vec::new();
    for (id, name) in &targets {
        let scoped = match acct.rescope(Scope::project_id(id.clone())).await {
            Ok(s) => s,
            Err(e) => {
                refused.push(format!("{name} ({e})"));
                continue;
            }
        };
        if let Err(e) = openstack::keystone::projects::get(&scoped, id).await {
            refused.push(format!("{name} (reading it: {e})"));
        }
    }
    out.push(if refused.is_empty() {
        Check::ok("permissions.projects", tested, format!("all {} projects readable", targets.len()))
    } else {
        Check::critical(
            "permissions.projects",
            tested,
            format!("{user} cannot read {} of {} projects: {}", refused.len(), targets.len(), refused.join("; ")),
            format!(
                "openstack role add --user {user} --user-domain {domain} --project <project> reader (for each listed)"
            ),
        )
    });
    out
}
