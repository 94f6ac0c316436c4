//! Runs the check families in order and collects their results.

use crate::check::{Check, Report};
use crate::config::{CheckConfig, FAMILIES, Sessions};

fn needs_admin(family: &str) -> Check {
    Check::skipped(
        family.to_string(),
        format!("the {family} checks"),
        "no site account (--os-cloud) to read the site with",
    )
}

/// Runs every family `cfg` selects.
pub async fn run(cfg: &CheckConfig, sessions: &Sessions) -> Report {
    let mut report = Report::default();
    let admin = sessions.admin.as_ref();
    for family in FAMILIES {
        if !cfg.runs(family) {
            continue;
        }
        let checks = match (family, admin) {
            ("catalog", Some(a)) => crate::catalog::run(cfg, a).await,
            ("ports", Some(a)) => crate::ports::inbound(cfg, a).await,
            ("projects", Some(a)) => crate::projects::run(cfg, a).await,
            ("flavors", Some(a)) => crate::flavors::run(cfg, a).await,
            ("catalog" | "ports" | "projects" | "flavors", None) => vec![needs_admin(family)],
            ("ams", _) => crate::ports::outbound_ams(cfg).await,
            ("permissions", _) => match &sessions.accounting {
                Some(acct) => crate::permissions::run(cfg, acct, admin).await,
                None => vec![Check::skipped(
                    "permissions",
                    "the accounting account's permissions",
                    "no accounting account given (--accounting-cloud)",
                )],
            },
            ("accounting", _) => crate::accounting::run(cfg).await,
            ("certificate", _) => crate::certificate::run(cfg),
            ("vm", _) => crate::vmprobe::run(cfg, sessions.probe.as_ref(), admin).await,
            ("info", _) => crate::info::run(cfg).await,
            _ => Vec::new(),
        };
        report.checks.extend(checks);
    }
    report
}
