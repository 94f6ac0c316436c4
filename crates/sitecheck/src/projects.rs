//! Project checks: every project mapped to a VO exists and carries its VO
//! property (what accounting reads to name the VO of each record).

use openstack::Paged;
use openstack::keystone::{ListProjects, Project};
use openstack::{Session, keystone};

use crate::check::Check;
use crate::config::{CheckConfig, VoSpec};

/// The configured VOs with their projects as found (None: no such project).
pub fn resolve<'a>(cfg: &'a CheckConfig, projects: &'a [Project]) -> Vec<(&'a VoSpec, Option<&'a Project>)> {
    cfg.vos
        .iter()
        .map(|v| {
            (v, projects.iter().find(|p| p.id == v.project).or_else(|| projects.iter().find(|p| p.name == v.project)))
        })
        .collect()
}

/// The VO a project's properties name, and the property it is in.
pub fn vo_of(cfg: &CheckConfig, p: &Project) -> Option<(String, String)> {
    cfg.vo_properties().into_iter().find_map(|k| p.property(&k).map(|v| (v.to_string(), k)))
}

/// The projects family.
pub async fn run(cfg: &CheckConfig, admin: &Session) -> Vec<Check> {
    if cfg.vos.is_empty() {
        return vec![Check::skipped(
            "projects.vo-property",
            "every project mapped to a VO carries its VO property",
            "no VOs configured (give --vo VO[=PROJECT])",
        )];
    }
    let projects = match ListProjects::default().list(admin).await {
        Ok(p) => p,
        Err(e) => {
            return vec![Check::critical(
                "projects.list",
                "listing the projects",
                e.to_string(),
                "run the check with an admin or system-reader account (--os-cloud)",
            )];
        }
    };
    let props = cfg.vo_properties();
    let prop = props.first().cloned().unwrap_or_else(|| "egi.VO".into());
    let mut out = Vec::new();
    for (vo, project) in resolve(cfg, &projects) {
        let id = format!("projects.{}", vo.vo);
        let tested = format!("project {} of VO {} carries {}={}", vo.project, vo.vo, props.join(" or "), vo.vo);
        let Some(p) = project else {
            out.push(Check::critical(
                id,
                tested,
                format!("VO {} is mapped to project {}, which does not exist", vo.vo, vo.project),
                format!("openstack project create --property {prop}={} {}", vo.vo, vo.project),
            ));
            continue;
        };
        match vo_of(cfg, p) {
            Some((v, k)) if v == vo.vo => {
                out.push(Check::ok(id, tested, format!("project {} ({}) has {k}={v}", p.name, p.id)))
            }
            Some((v, k)) => out.push(Check::critical(
                id,
                tested,
                format!("project {} ({}) has {k}={v}, not VO {}", p.name, p.id, vo.vo),
                format!("openstack project set --property {k}={} {}", vo.vo, p.id),
            )),
            None => out.push(Check::critical(
                id,
                tested,
                format!(
                    "project {} ({}) of VO {} has no VO property ({}): its usage is not accounted to the VO",
                    p.name,
                    p.id,
                    vo.vo,
                    props.join(", ")
                ),
                format!("openstack project set --property {prop}={} {}", vo.vo, p.id),
            )),
        }
    }
    out
}

/// Reads one project, for callers that only hold an id.
pub async fn get(s: &Session, id: &str) -> openstack::Result<Project> {
    keystone::projects::get(s, id).await
}
