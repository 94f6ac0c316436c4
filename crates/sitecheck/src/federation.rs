//! Keystone OIDC federation with EGI Check-in: generate the identity
//! provider, the mapping (one rule per VO: its Check-in entitlement → a group
//! with a role on the VO's project) and the protocol; apply them through the
//! Keystone API idempotently; lint an existing setup; print the Apache
//! `mod_auth_openidc` and `keystone.conf` fragments.

use openstack::Paged;
use std::collections::BTreeSet;

use openstack::Session;
use openstack::keystone::{self, ListProjects, ListRoleAssignments, federation as fed, groups};
use serde::Serialize;
use serde_json::{Value, json};

use crate::check::Check;
use crate::error::FederationError;

pub const EGI_ISSUER: &str = "https://aai.egi.eu/auth/realms/egi";
pub const EGI_DEMO_ISSUER: &str = "https://aai-demo.egi.eu/auth/realms/egi";
/// The claim mod_auth_openidc passes the entitlements in (`OIDCClaimPrefix "OIDC-"`).
pub const ENTITLEMENT_CLAIM: &str = "OIDC-eduperson_entitlement";

/// One VO: its project, the Check-in entitlement that admits a user, the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FedVo {
    pub vo: String,
    pub project: String,
    pub entitlement: String,
    pub group: String,
}

impl FedVo {
    /// EGI's usual entitlement, `urn:mace:egi.eu:group:<vo>:role=vm_operator#aai.egi.eu`.
    pub fn new(vo: &str, project: &str) -> FedVo {
        FedVo { vo: vo.into(), project: project.into(), entitlement: default_entitlement(vo), group: vo.into() }
    }
}

pub fn default_entitlement(vo: &str) -> String {
    format!("urn:mace:egi.eu:group:{vo}:role=vm_operator#aai.egi.eu")
}

/// What to generate.
#[derive(Debug, Clone, Serialize)]
pub struct FederationSpec {
    /// Identity provider id (`egi.eu`).
    pub idp: String,
    /// Check-in issuer (the IdP's remote id and `HTTP_OIDC_ISS`).
    pub issuer: String,
    pub mapping: String,
    /// `openid` (EGI's docs) or `oidc`.
    pub protocol: String,
    /// Role the VO groups get on their projects.
    pub role: String,
    /// Domain id of the groups.
    pub group_domain: String,
    pub vos: Vec<FedVo>,
}

impl Default for FederationSpec {
    fn default() -> Self {
        FederationSpec {
            idp: "egi.eu".into(),
            issuer: EGI_ISSUER.into(),
            mapping: "egi-mapping".into(),
            protocol: "openid".into(),
            role: "member".into(),
            group_domain: "default".into(),
            vos: Vec::new(),
        }
    }
}

/// An entitlement as an anchored regex with `.`, `#` and the other
/// metacharacters escaped.
pub fn entitlement_regex(ent: &str) -> String {
    let mut out = String::from("^");
    for c in ent.chars() {
        if "\\.^$*+?()[]{}|#".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('$');
    out
}

/// The rule of one VO. `group` is `{"id": ..}` or `{"name": .., "domain": {"id": ..}}`.
pub fn rule(spec: &FederationSpec, vo: &FedVo, group: Value) -> Value {
    json!({
        "local": [
            {"user": {"name": "{0}", "email": "{1}"}},
            {"group": group},
        ],
        "remote": [
            {"type": "HTTP_OIDC_SUB"},
            {"type": "HTTP_OIDC_EMAIL"},
            {"type": "HTTP_OIDC_ISS", "any_one_of": [spec.issuer]},
            {"type": ENTITLEMENT_CLAIM, "regex": true, "any_one_of": [entitlement_regex(&vo.entitlement)]},
        ],
    })
}

/// The mapping rules; groups by id when `group_ids` has them (vo → id), else by name and domain.
pub fn rules(spec: &FederationSpec, group_ids: &[(String, String)]) -> Value {
    Value::Array(
        spec.vos
            .iter()
            .map(|v| {
                let g = match group_ids.iter().find(|(vo, _)| *vo == v.vo) {
                    Some((_, id)) => json!({"id": id}),
                    None => json!({"name": v.group, "domain": {"id": spec.group_domain}}),
                };
                rule(spec, v, g)
            })
            .collect(),
    )
}

/// The three objects as `--apply` would create them (groups by name).
pub fn generate(spec: &FederationSpec) -> Value {
    json!({
        "identity_provider": {"id": spec.idp, "remote_ids": [spec.issuer], "enabled": true, "description": "EGI Check-in"},
        "mapping": {"id": spec.mapping, "rules": rules(spec, &[])},
        "protocol": {"id": spec.protocol, "idp_id": spec.idp, "mapping_id": spec.mapping},
        "groups": spec.vos.iter().map(|v| json!({"name": v.group, "domain_id": spec.group_domain, "role": spec.role, "project": v.project})).collect::<Vec<_>>(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

/// What `apply` did to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub object: String,
    pub change: Change,
}

fn e(what: &'static str, source: openstack::Error) -> FederationError {
    FederationError::Request { what, source }
}

/// Creates or updates the IdP, the groups and their role assignments, the
/// mapping and the protocol so that they match `spec`; a second run changes
/// nothing. Fails before changing anything when a project or the role is missing.
pub async fn apply(s: &Session, spec: &FederationSpec) -> Result<Vec<Action>, FederationError> {
    let mut actions = Vec::new();
    let mut act = |object: String, change: Change| actions.push(Action { object, change });
    let role = groups::list_roles(s, Some(&spec.role))
        .await
        .map_err(|x| e("listing roles", x))?
        .into_iter()
        .find(|r| r.name == spec.role)
        .ok_or_else(|| FederationError::NoRole(spec.role.clone()))?;
    let projects = ListProjects::default().list(s).await.map_err(|x| e("listing projects", x))?;
    let mut targets = Vec::new();
    for v in &spec.vos {
        let p = projects
            .iter()
            .find(|p| p.id == v.project)
            .or_else(|| projects.iter().find(|p| p.name == v.project))
            .ok_or_else(|| FederationError::NoProject { project: v.project.clone(), vo: v.vo.clone() })?;
        targets.push((v, p.id.clone()));
    }

    // Identity provider.
    match fed::get_identity_provider(s, &spec.idp).await.map_err(|x| e("reading the identity provider", x))? {
        None => {
            let body = json!({"remote_ids": [spec.issuer], "enabled": true, "description": "EGI Check-in"});
            fed::create_identity_provider(s, &spec.idp, body)
                .await
                .map_err(|x| e("creating the identity provider", x))?;
            act(format!("identity provider {}", spec.idp), Change::Created);
        }
        Some(idp) if idp.remote_ids != [spec.issuer.clone()] || !idp.enabled => {
            let body = json!({"remote_ids": [spec.issuer], "enabled": true});
            fed::update_identity_provider(s, &spec.idp, body)
                .await
                .map_err(|x| e("updating the identity provider", x))?;
            act(format!("identity provider {}", spec.idp), Change::Updated);
        }
        Some(_) => act(format!("identity provider {}", spec.idp), Change::Unchanged),
    }

    // Groups and their roles.
    let mut group_ids = Vec::new();
    for (v, pid) in &targets {
        let existing = groups::list_groups(s, Some(&v.group), Some(&spec.group_domain))
            .await
            .map_err(|x| e("listing groups", x))?
            .into_iter()
            .find(|g| g.name == v.group);
        let gid = match existing {
            Some(g) => {
                act(format!("group {}", v.group), Change::Unchanged);
                g.id
            }
            None => {
                let g = groups::create_group(s, &v.group, &spec.group_domain, &format!("EGI VO {}", v.vo))
                    .await
                    .map_err(|x| e("creating a group", x))?;
                act(format!("group {}", v.group), Change::Created);
                g.id
            }
        };
        let has = ListRoleAssignments {
            group_id: Some(gid.clone()),
            scope_project_id: Some(pid.clone()),
            role_id: Some(role.id.clone()),
            ..Default::default()
        }
        .list(s)
        .await
        .map_err(|x| e("listing role assignments", x))?;
        let what = format!("role {} of group {} on project {}", spec.role, v.group, v.project);
        if has.is_empty() {
            groups::grant_group_project_role(s, pid, &gid, &role.id).await.map_err(|x| e("granting a role", x))?;
            act(what, Change::Created);
        } else {
            act(what, Change::Unchanged);
        }
        group_ids.push((v.vo.clone(), gid));
    }

    // Mapping.
    let want = rules(spec, &group_ids);
    match fed::get_mapping(s, &spec.mapping).await.map_err(|x| e("reading the mapping", x))? {
        None => {
            fed::create_mapping(s, &spec.mapping, &want).await.map_err(|x| e("creating the mapping", x))?;
            act(format!("mapping {}", spec.mapping), Change::Created);
        }
        Some(m) if m.rules != want => {
            fed::update_mapping(s, &spec.mapping, &want).await.map_err(|x| e("updating the mapping", x))?;
            act(format!("mapping {}", spec.mapping), Change::Updated);
        }
        Some(_) => act(format!("mapping {}", spec.mapping), Change::Unchanged),
    }

    // Protocol.
    let what = format!("protocol {} of {}", spec.protocol, spec.idp);
    match fed::get_protocol(s, &spec.idp, &spec.protocol).await.map_err(|x| e("reading the protocol", x))? {
        None => {
            fed::create_protocol(s, &spec.idp, &spec.protocol, &spec.mapping)
                .await
                .map_err(|x| e("creating the protocol", x))?;
            act(what, Change::Created);
        }
        Some(p) if p.mapping_id != spec.mapping => {
            fed::update_protocol(s, &spec.idp, &spec.protocol, &spec.mapping)
                .await
                .map_err(|x| e("updating the protocol", x))?;
            act(what, Change::Updated);
        }
        Some(_) => act(what, Change::Unchanged),
    }
    Ok(actions)
}

// ---------------------------------------------------------------- lint

/// A regex value back to the literal entitlement (`^`, `$` and escapes dropped).
pub fn unregex(s: &str) -> String {
    let s = s.strip_prefix('^').unwrap_or(s);
    let s = s.strip_suffix('$').unwrap_or(s);
    let mut out = String::new();
    let mut esc = false;
    for c in s.chars() {
        if esc {
            out.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// What is wrong with one entitlement value of a rule (empty: nothing).
pub fn entitlement_problems(value: &str, is_regex: bool) -> Vec<String> {
    let mut p = Vec::new();
    if value.chars().any(char::is_whitespace) {
        p.push(format!("{value:?} contains a stray space"));
    }
    if is_regex {
        if !value.starts_with('^') || !value.ends_with('$') {
            p.push(format!("{value:?} is not anchored (^…$): it also admits longer entitlements"));
        }
        let b = value.as_bytes();
        if (0..b.len()).any(|i| b[i] == b'.' && (i == 0 || b[i - 1] != b'\\')) {
            p.push(format!("{value:?} has unescaped dots (any character matches)"));
        }
        if regex::Regex::new(value).is_err() {
            p.push(format!("{value:?} is not a valid regular expression"));
        }
    }
    let literal = if is_regex { unregex(value) } else { value.to_string() };
    static FORM: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"^urn:mace:egi\.eu:group:[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+)*:role=[A-Za-z_]+#aai(-demo|-dev)?\.egi\.eu$",
        )
        .expect("static regex")
    });
    let form = &*FORM;
    if !literal.chars().any(char::is_whitespace) && !form.is_match(&literal) {
        p.push(format!(
            "{literal:?} is not an EGI Check-in entitlement (urn:mace:egi.eu:group:<vo>:role=<role>#aai.egi.eu)"
        ));
    }
    p
}

/// (claim type, values, regex) of every remote entry of a rule.
fn remotes(rule: &Value) -> Vec<(String, Vec<String>, bool)> {
    rule.get("remote")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let ty = r.get("type").and_then(Value::as_str).unwrap_or("").to_string();
            let vals: Vec<String> = ["any_one_of", "not_any_of", "blacklist", "whitelist"]
                .iter()
                .filter_map(|k| r.get(*k).and_then(Value::as_array))
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            (ty, vals, r.get("regex").and_then(Value::as_bool).unwrap_or(false))
        })
        .collect()
}

/// The local group references of a rule: (`id` or `name`, value).
fn local_groups(rule: &Value) -> Vec<(String, String)> {
    rule.get("local")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| l.get("group"))
        .filter_map(|g| {
            g.get("id")
                .and_then(Value::as_str)
                .map(|id| ("id".to_string(), id.to_string()))
                .or_else(|| g.get("name").and_then(Value::as_str).map(|n| ("name".to_string(), n.to_string())))
        })
        .collect()
}

/// What the mapping rules say, read without Keystone: entitlement problems
/// (`rule N: …`, `VO v: no rule admits …`), the issuers the rules accept
/// (`HTTP_OIDC_ISS`), the number of entitlement values and the local groups
/// (`id` or `name`, value; each once, in rule order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleLint {
    pub problems: Vec<String>,
    pub issuers: BTreeSet<String>,
    pub entitlements: usize,
    pub groups: Vec<(String, String)>,
}

/// Lints mapping `rules` (Keystone's JSON, outside data) against `spec.vos`.
pub fn lint_rules(rules: &[Value], spec: &FederationSpec) -> RuleLint {
    let mut problems = Vec::new();
    let mut issuers = BTreeSet::new();
    let mut entitlements = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        for (ty, vals, is_regex) in remotes(r) {
            if ty.to_ascii_lowercase().contains("entitlement") {
                for v in &vals {
                    entitlements.push((i, v.clone(), is_regex));
                    for p in entitlement_problems(v, is_regex) {
                        problems.push(format!("rule {}: {p}", i + 1));
                    }
                }
            }
            if ty == "HTTP_OIDC_ISS" || ty.ends_with("OIDC-iss") {
                issuers.extend(vals);
            }
        }
    }
    for v in &spec.vos {
        let matched = entitlements.iter().any(|(_, val, is_regex)| {
            if *is_regex {
                regex::Regex::new(val).is_ok_and(|re| re.is_match(&v.entitlement))
            } else {
                *val == v.entitlement
            }
        });
        if !matched {
            problems.push(format!("VO {}: no rule admits its entitlement {}", v.vo, v.entitlement));
        }
    }
    let mut seen = BTreeSet::new();
    let groups = rules.iter().flat_map(local_groups).filter(|g| seen.insert(g.clone())).collect();
    RuleLint { problems, issuers, entitlements: entitlements.len(), groups }
}

/// Lints the federation of `spec.idp` (and `spec.vos`, when given).
pub async fn lint(s: &Session, spec: &FederationSpec, vo_properties: &[String]) -> Vec<Check> {
    let mut out = Vec::new();
    let apply_fix = "fedsite keystone federation --vo … --apply";
    let idp = match fed::get_identity_provider(s, &spec.idp).await {
        Ok(Some(i)) => i,
        Ok(None) => {
            out.push(Check::critical(
                "federation.idp",
                format!("identity provider {} exists", spec.idp),
                format!("no identity provider {}", spec.idp),
                apply_fix,
            ));
            return out;
        }
        Err(x) => {
            out.push(Check::critical(
                "federation.idp",
                "reading the identity provider",
                x.to_string(),
                "run with an admin account",
            ));
            return out;
        }
    };
    let tested = format!("identity provider {} is enabled with remote id {}", spec.idp, spec.issuer);
    out.push(if idp.enabled && idp.remote_ids.contains(&spec.issuer) {
        Check::ok("federation.idp", tested, format!("remote ids {}", idp.remote_ids.join(", ")))
    } else {
        Check::critical(
            "federation.idp",
            tested,
            format!("enabled {}, remote ids [{}]", idp.enabled, idp.remote_ids.join(", ")),
            format!("openstack identity provider set --remote-id {} --enable {}", spec.issuer, spec.idp),
        )
    });
    let protocols = fed::list_protocols(s, &spec.idp).await.unwrap_or_default();
    let tested = format!("protocol {} of {} exists with its mapping", spec.protocol, spec.idp);
    let Some(proto) = protocols.iter().find(|p| p.id == spec.protocol) else {
        out.push(Check::critical(
            "federation.protocol",
            tested,
            format!(
                "no protocol {} (it has: {})",
                spec.protocol,
                if protocols.is_empty() {
                    "none".to_string()
                } else {
                    protocols.iter().map(|p| p.id.clone()).collect::<Vec<_>>().join(", ")
                }
            ),
            format!(
                "openstack federation protocol create --identity-provider {} --mapping {} {}",
                spec.idp, spec.mapping, spec.protocol
            ),
        ));
        return out;
    };
    let mapping = match fed::get_mapping(s, &proto.mapping_id).await {
        Ok(Some(m)) => m,
        other => {
            out.push(Check::critical(
                "federation.protocol",
                tested,
                format!(
                    "protocol {} names mapping {}, which cannot be read ({:?})",
                    proto.id,
                    proto.mapping_id,
                    other.err().map(|x| x.to_string())
                ),
                apply_fix,
            ));
            return out;
        }
    };
    out.push(Check::ok("federation.protocol", tested, format!("protocol {} uses mapping {}", proto.id, mapping.id)));
    let rules: Vec<Value> = mapping.rules.as_array().cloned().unwrap_or_default();

    // Entitlements.
    let RuleLint { problems, issuers, entitlements, groups: mapped_groups } = lint_rules(&rules, spec);
    let tested = format!("entitlements of mapping {} are well-formed, anchored EGI Check-in entitlements", mapping.id);
    out.push(if problems.is_empty() {
        Check::ok("federation.entitlements", tested, format!("{entitlements} entitlement(s) in {} rule(s)", rules.len()))
    } else {
        Check::critical(
            "federation.entitlements",
            tested,
            problems.join("; "),
            format!("correct the rules (as in vo-mappings.yaml) and `openstack mapping set --rules mapping.json {}`, or regenerate them: {apply_fix}", mapping.id),
        )
    });
    let tested =
        format!("the mapping's HTTP_OIDC_ISS values include the IdP's remote ids ({})", idp.remote_ids.join(", "));
    out.push(if idp.remote_ids.iter().all(|r| issuers.contains(r)) && !issuers.is_empty() {
        Check::ok("federation.issuer", tested, "issuer consistent")
    } else {
        Check::warning(
            "federation.issuer",
            tested,
            format!(
                "mapping issuers [{}], IdP remote ids [{}]",
                issuers.into_iter().collect::<Vec<_>>().join(", "),
                idp.remote_ids.join(", ")
            ),
            "use the same issuer in the IdP's --remote-id and the mapping's HTTP_OIDC_ISS (demo vs production)",
        )
    });

    let (groups_check, mapped_projects) = check_groups(s, &mapped_groups).await;
    out.push(groups_check);

    out.push(check_projects(s, spec, vo_properties, &mapped_projects, apply_fix).await);
    out
}

/// `federation.groups`: every group the mapping names (as ("id" or "name",
/// value)) exists and has a role assignment. Also returns the projects those
/// groups have roles on.
async fn check_groups(s: &Session, mapped_groups: &[(String, String)]) -> (Check, BTreeSet<String>) {
    let all_groups = groups::list_groups(s, None, None).await.unwrap_or_default();
    let mut group_problems = Vec::new();
    let mut mapped_projects = BTreeSet::new();
    for (kind, val) in mapped_groups {
        let g = all_groups.iter().find(|g| if kind == "id" { g.id == *val } else { g.name == *val });
        let Some(g) = g else {
            group_problems.push(format!("rule maps to group {kind} {val}, which does not exist"));
            continue;
        };
        let roles = ListRoleAssignments { group_id: Some(g.id.clone()), ..Default::default() }
            .list(s)
            .await
            .unwrap_or_default();
        let on_projects: Vec<String> =
            roles.iter().filter_map(|a| a.scope.project.as_ref().map(|p| p.id.clone())).collect();
        if roles.is_empty() {
            group_problems
                .push(format!("group {} ({}) has no role assignment: its users reach no project", g.name, g.id));
        }
        mapped_projects.extend(on_projects);
    }
    let tested = "every group the mapping names exists and has a role assignment".to_string();
    let check = if group_problems.is_empty() {
        Check::ok("federation.groups", tested, format!("{} group(s), all with roles", mapped_groups.len()))
    } else {
        Check::critical(
            "federation.groups",
            tested,
            group_problems.join("; "),
            "openstack role add --group <group> --project <VO project> member (or fix the group id in the mapping)",
        )
    };
    (check, mapped_projects)
}

/// `federation.projects`: every VO project (those of `spec.vos`, else every
/// project with one of `vo_properties`) is among `mapped_projects`.
async fn check_projects(
    s: &Session,
    spec: &FederationSpec,
    vo_properties: &[String],
    mapped_projects: &BTreeSet<String>,
    apply_fix: &str,
) -> Check {
    let tested = "every VO project (given with --vo, else with a VO property) is reached by a mapping rule (a mapped group has a role on it)".to_string();
    let projects = match ListProjects::default().list(s).await {
        Ok(p) => p,
        Err(e) => {
            return Check::critical(
                "federation.projects",
                tested,
                format!("cannot list the projects: {e}"),
                "give the account the reader role on the system (identity:list_projects)",
            );
        }
    };
    let mut unmapped = Vec::new();
    // With VOs given, their projects; otherwise every project with a VO property.
    for p in &projects {
        let configured = spec.vos.iter().find(|v| v.project == p.id || v.project == p.name).map(|v| v.vo.clone());
        let vo = if spec.vos.is_empty() {
            vo_properties.iter().find_map(|k| p.property(k)).map(str::to_string)
        } else {
            configured
        };
        if let Some(vo) = vo
            && !mapped_projects.contains(&p.id)
        {
            unmapped.push(format!("{} (VO {vo})", p.name));
        }
    }
    if unmapped.is_empty() {
        Check::ok("federation.projects", tested, "every VO project is mapped")
    } else {
        Check::warning(
            "federation.projects",
            tested,
            format!("{} project(s) without a mapping: {}", unmapped.len(), unmapped.join(", ")),
            format!("add the VO with --vo VO=PROJECT and run {apply_fix}"),
        )
    }
}

/// Reads one project (re-exported for callers).
pub async fn project(s: &Session, id: &str) -> openstack::Result<keystone::Project> {
    keystone::projects::get(s, id).await
}

/// The Apache `mod_auth_openidc` fragment for Keystone (EGI's documented settings).
pub fn apache_fragment(spec: &FederationSpec, keystone_url: &str) -> String {
    let k = keystone_url.trim_end_matches('/').trim_end_matches("/v3");
    let (idp, proto, iss) = (&spec.idp, &spec.protocol, &spec.issuer);
    format!(
        r#"# mod_auth_openidc for Keystone federation with EGI Check-in ({iss})
OIDCResponseType "code"
OIDCClaimPrefix "OIDC-"
OIDCClaimDelimiter ;
OIDCScope "openid profile email eduperson_entitlement"
OIDCProviderMetadataURL {iss}/.well-known/openid-configuration
OIDCPKCEMethod S256
OIDCClientID <client id from the EGI Federation Registry>
OIDCClientSecret <client secret>
OIDCCryptoPassphrase <a random passphrase>
OIDCRedirectURI {k}/v3/auth/OS-FEDERATION/websso/{proto}/redirect
OIDCOAuthIntrospectionEndpoint {iss}/protocol/openid-connect/token/introspect
OIDCOAuthClientID <client id>
OIDCOAuthClientSecret <client secret>
OIDCCacheShmEntrySizeMax 65536

<Location ~ "/v3/auth/OS-FEDERATION/websso/{proto}">
    AuthType openid-connect
    Require valid-user
</Location>
<Location ~ "/v3/OS-FEDERATION/identity_providers/{idp}/protocols/{proto}/auth">
    AuthType oauth20
    Require valid-user
</Location>
"#
    )
}

/// The `keystone.conf` fragment.
pub fn keystone_conf_fragment(spec: &FederationSpec, horizon_url: &str) -> String {
    let proto = &spec.protocol;
    format!(
        "[auth]\nmethods = password, token, {proto}\n\n[{proto}]\nremote_id_attribute = HTTP_OIDC_ISS\n\n[federation]\ntrusted_dashboard = {}/auth/websso/\n# and install /etc/keystone/sso_callback_template.html\n",
        horizon_url.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored_and_escaped_and_round_trips() {
        let e = default_entitlement("vo.access.egi.eu");
        let r = entitlement_regex(&e);
        assert_eq!(r, r"^urn:mace:egi\.eu:group:vo\.access\.egi\.eu:role=vm_operator\#aai\.egi\.eu$");
        assert!(regex::Regex::new(&r).unwrap().is_match(&e));
        assert!(!regex::Regex::new(&r).unwrap().is_match(&e.replace("egi.eu:group", "egiXeu:group")));
        assert_eq!(unregex(&r), e);
        assert!(entitlement_problems(&r, true).is_empty(), "{:?}", entitlement_problems(&r, true));
    }

    #[test]
    fn lint_finds_typos() {
        let p = entitlement_problems(
            "^urn:mace:egi\\.eu: group:vo\\.imagine-ai\\.eu:role=vm_operator\\#aai\\.egi\\.eu$",
            true,
        );
        assert!(p.iter().any(|m| m.contains("stray space")), "{p:?}");
        let p = entitlement_problems("urn:mace:egi.eu:group:ops:role=vm_operator#aai.egi.eu", true);
        assert!(p.iter().any(|m| m.contains("not anchored")), "{p:?}");
        assert!(p.iter().any(|m| m.contains("unescaped dots")), "{p:?}");
        let p = entitlement_problems("^urn:mace:egi\\.eu:grup:ops:role=vm_operator\\#aai\\.egi\\.eu$", true);
        assert!(p.iter().any(|m| m.contains("not an EGI Check-in entitlement")), "{p:?}");
        // Subgroup forms are valid.
        assert!(
            entitlement_problems(
                "urn:mace:egi.eu:group:demo.fedcloud.egi.eu:vm_operator:role=member#aai.egi.eu",
                false
            )
            .is_empty()
        );
    }

    #[test]
    fn rules_name_groups_by_id_when_known() {
        let spec = FederationSpec { vos: vec![FedVo::new("ops", "ops")], ..Default::default() };
        let r = rules(&spec, &[("ops".into(), "g1".into())]);
        assert_eq!(r[0]["local"][1], json!({"group": {"id": "g1"}}));
        assert_eq!(r[0]["remote"][2]["any_one_of"][0], EGI_ISSUER);
        let r = rules(&spec, &[]);
        assert_eq!(r[0]["local"][1], json!({"group": {"name": "ops", "domain": {"id": "default"}}}));
    }

    #[test]
    fn lint_rules_reads_keystone_rules_without_keystone() {
        let spec = FederationSpec {
            vos: vec![FedVo::new("ops", "p1"), FedVo::new("vo.access.egi.eu", "p2")],
            ..Default::default()
        };
        let generated = rules(&spec, &[("ops".into(), "g1".into())]);
        let lint = lint_rules(generated.as_array().unwrap(), &spec);
        assert_eq!(lint.problems, Vec::<String>::new());
        assert_eq!(lint.entitlements, 2);
        assert_eq!(
            lint.groups,
            vec![("id".to_string(), "g1".to_string()), ("name".to_string(), "vo.access.egi.eu".to_string())]
        );
        assert_eq!(lint.issuers, [EGI_ISSUER.to_string()].into());
        // A stray space, an unanchored regex with open dots; the second VO then has no rule.
        let bad = json!([{"local": [{"group": {"id": "g1"}}, {"group": {"id": "g1"}}], "remote": [
            {"type": "OIDC-eduperson_entitlement", "regex": true, "any_one_of": ["urn:mace:egi.eu:group:ops:role=vm_operator#aai.egi.eu "]},
            {"type": "HTTP_OIDC_ISS", "any_one_of": ["https://aai-demo.egi.eu/auth/realms/egi"]}]}]);
        let lint = lint_rules(bad.as_array().unwrap(), &spec);
        assert_eq!(lint.groups, vec![("id".to_string(), "g1".to_string())], "each group once");
        assert!(
            lint.problems.iter().any(|p| p.starts_with("rule 1: ") && p.contains("stray space")),
            "{:?}",
            lint.problems
        );
        assert!(
            lint.problems.iter().any(|p| p.starts_with("rule 1: ") && p.contains("not anchored")),
            "{:?}",
            lint.problems
        );
        assert!(lint.problems.contains(&format!(
            "VO vo.access.egi.eu: no rule admits its entitlement {}",
            default_entitlement("vo.access.egi.eu")
        )));
        assert_eq!(lint.issuers, ["https://aai-demo.egi.eu/auth/realms/egi".to_string()].into());
    }
}
