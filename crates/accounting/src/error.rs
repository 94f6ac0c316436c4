//! Extraction errors: what was being done, for which project, and on a 403
//! the policy rule the service named plus the role the account is missing.

use crate::vo::VoConfigError;

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The project has no VO in any configured source.
    #[error(
        "project {project}: no VO mapping (no catch-all site YAML entry, none of the Keystone properties {properties:?}, no voms.json entry); its records are not extracted"
    )]
    NoVo { project: String, properties: Vec<String> },
    /// The service refused the call (HTTP 403).
    #[error(
        "{what}: forbidden{}: {message}. The accounting account needs {missing_role}",
        rule.as_ref().map(|r| format!(" by policy rule {r}")).unwrap_or_default()
    )]
    Forbidden { what: String, rule: Option<String>, missing_role: String, message: String },
    /// Any other failure of an API call.
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: openstack::Error,
    },
    /// A value the API returned cannot go into an APEL record.
    #[error("{what}: {source}")]
    Record {
        what: String,
        #[source]
        source: apel::Error,
    },
    /// A Prometheus query failed (energy records).
    #[error("{what}: {message}")]
    Prometheus { what: String, message: String },
    /// The caller's records of the project's volumes could not be read (`Extract::known_volumes`):
    /// a volume gone since would get no closing record.
    #[error("project {project}: the last records of its volumes cannot be read: {message}")]
    KnownVolumes { project: String, message: String },
    /// The window is unusable (from ≥ to, or in the future).
    #[error("project {project}: invalid window: {message}")]
    Window { project: String, message: String },
    #[error(transparent)]
    Config(#[from] VoConfigError),
    /// A run-wide listing failed (shared by every project that needed it).
    #[error("{0}")]
    Shared(std::sync::Arc<ExtractError>),
}

impl ExtractError {
    /// Wraps an API error; a 403 becomes [`ExtractError::Forbidden`] naming
    /// the policy rule from the server's message and `missing_role`.
    pub fn api(what: impl Into<String>, e: openstack::Error, missing_role: &str) -> ExtractError {
        let what = what.into();
        if e.is_forbidden() {
            let message = e.message().unwrap_or_default().to_string();
            return ExtractError::Forbidden {
                rule: policy_rule(&message),
                what,
                missing_role: missing_role.into(),
                message,
            };
        }
        ExtractError::Api { what, source: e }
    }
    pub fn record(what: impl Into<String>, e: apel::Error) -> ExtractError {
        ExtractError::Record { what: what.into(), source: e }
    }
}

/// The policy rule named in a 403 message, in each service's wording:
/// Nova/Cinder "Policy doesn't allow R to be performed.", Neutron
/// "(rule:R) is disallowed by policy", Keystone "You are not authorized to
/// perform the requested action: R.", Glance "... not allowed by policy R".
pub fn policy_rule(message: &str) -> Option<String> {
    let clean = |s: &str| {
        let s = s.trim().trim_end_matches('.').trim();
        (!s.is_empty() && !s.contains(' ')).then(|| s.to_string())
    };
    if let Some(rest) = message.split("Policy doesn't allow ").nth(1) {
        return rest.split(" to be performed").next().and_then(clean);
    }
    if let Some(rest) = message.split("(rule:").nth(1) {
        return rest.split(')').next().and_then(clean);
    }
    if let Some(rest) = message.split("perform the requested action: ").nth(1) {
        return rest.split(['.', ' ', ',']).next().and_then(clean);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::policy_rule;

    #[test]
    fn policy_rules_are_read_from_each_services_wording() {
        assert_eq!(
            policy_rule("Policy doesn't allow os_compute_api:servers:detail:get_all_tenants to be performed.")
                .as_deref(),
            Some("os_compute_api:servers:detail:get_all_tenants")
        );
        assert_eq!(policy_rule("(rule:get_floatingip) is disallowed by policy").as_deref(), Some("get_floatingip"));
        assert_eq!(
            policy_rule("You are not authorized to perform the requested action: identity:list_projects.").as_deref(),
            Some("identity:list_projects")
        );
        assert_eq!(policy_rule("Forbidden"), None);
    }
}
