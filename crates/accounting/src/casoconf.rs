//! Reading an existing cASO `caso.conf` (oslo.config INI), so a site can
//! run fedsite from the file it already has: the site and service names,
//! the project selection and VO mapping, the extra-spec keys, the
//! `[keystone_auth]` credentials and the `[ssm]` spool.
//!
//! oslo.config semantics kept: `[DEFAULT]` keys, comma-separated lists,
//! `service_name` defaulting to `site_name`. Options fedsite has no use for
//! (`messengers`, `spooldir`, `lock_path`, logging) are ignored; options it
//! cannot honour are errors naming the file, section and key.

use std::path::{Path, PathBuf};

use apel::{ApelText, RecordKind, SiteName};
use ini::Ini;
use openstack::{CloudConfig, Credentials, Scope};

use crate::{ExtractConfig, Extractor};

/// What a `caso.conf` says.
#[derive(Debug)]
pub struct CasoConf {
    pub extract: ExtractConfig,
    pub cloud: CloudConfig,
    /// `[ssm] output_path`
    pub spool: PathBuf,
    /// `[ssm] max_size`
    pub max_records: usize,
    /// The record kinds cASO's ssm messenger(s) would write to `[ssm] output_path`:
    /// `[DEFAULT] messengers` and each ssm messenger's `[messenger_<name>] record_types`
    /// ([`ssm_record_types`]).
    pub record_types: Vec<RecordKind>,
    /// What of the messengers' settings fedsite does differently, one line each.
    pub messenger_notes: Vec<String>,
}

/// cASO's ssm-like messengers: both write the one `[ssm] output_path`.
const SSM_MESSENGERS: [&str; 2] = ["ssm", "ssmv4"];

/// The kinds cASO 5.2.2's ssm messengers write to its spool, and notes on what fedsite does
/// differently. `messengers` is `[DEFAULT] messengers` (empty when the key is absent: cASO's
/// default, `noop`, spools nothing, but a file without the key is taken as the ssm messenger's,
/// without a note);
/// `record_types(m)` the raw `[messenger_<m>] record_types`, if the key is present. As cASO:
/// the default of ssm / ssmv4 is cloud, ip, accelerator, storage; an empty list, or one naming
/// no known kind, means every kind; unknown names are ignored; ssm and ssmv4 together write
/// the same spool (fedsite spools the union, once). Unlike cASO, energy is not taken: cASO's
/// ssm messenger fails on an energy record ("Unexpected record format!") and spools nothing.
pub fn ssm_record_types(
    messengers: &[String],
    record_types: &dyn Fn(&str) -> Option<String>,
) -> (Vec<RecordKind>, Vec<String>) {
    let mut notes = Vec::new();
    let mut kinds: Vec<RecordKind> = Vec::new();
    let ssm: Vec<&str> = messengers.iter().map(String::as_str).filter(|m| SSM_MESSENGERS.contains(m)).collect();
    if ssm.is_empty() && messengers.is_empty() {
        return (crate::pipeline::SSM_KINDS.to_vec(), notes);
    }
    if ssm.is_empty() {
        notes.push(format!(
            "[DEFAULT] messengers = {}: no ssm messenger, so cASO spools nothing; fedsite spools cloud, ip, accelerator and storage records as the ssm messenger would",
            messengers.join(",")
        ));
        return (crate::pipeline::SSM_KINDS.to_vec(), notes);
    }
    if ssm.len() > 1 {
        notes.push(
            "[DEFAULT] messengers: ssm and ssmv4 both write [ssm] output_path, so cASO spools the kinds they share twice; fedsite spools each record once".into(),
        );
    }
    for m in &ssm {
        let wanted: Vec<RecordKind> = match record_types(m) {
            None => crate::pipeline::SSM_KINDS.to_vec(),
            Some(raw) => {
                let names: Vec<&str> = raw.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
                let known: Vec<RecordKind> = names.iter().filter_map(|n| n.parse().ok()).collect();
                for n in names.iter().filter(|n| n.parse::<RecordKind>().is_err()) {
                    notes.push(format!(
                        "[messenger_{m}] record_types: {n:?} is not a record kind; ignored, as cASO does"
                    ));
                }
                if known.is_empty() { RecordKind::ALL.to_vec() } else { known }
            }
        };
        for k in wanted {
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
    }
    if let Some(i) = kinds.iter().position(|k| *k == RecordKind::Energy) {
        kinds.remove(i);
        notes.push(format!(
            "[messenger_{}] record_types takes energy records: cASO's ssm messenger fails on them (\"Unexpected record format!\") and spools nothing; fedsite keeps them in the ledger (route them with a [[destination]] to send them)",
            ssm[0]
        ));
    }
    if kinds.is_empty() {
        notes.push("the ssm messengers take no record kind fedsite spools: cloud, ip, accelerator and storage are spooled as the ssm messenger's default".into());
        kinds = crate::pipeline::SSM_KINDS.to_vec();
    }
    kinds.sort();
    (kinds, notes)
}

/// A `caso.conf` that cannot be used, naming the file, section and key.
#[derive(Debug, thiserror::Error)]
#[error("reading {path}: {message}")]
pub struct CasoConfError {
    pub path: String,
    pub message: String,
}

impl CasoConf {
    pub fn load(path: &Path) -> Result<CasoConf, CasoConfError> {
        let label = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| CasoConfError { path: label.clone(), message: e.to_string() })?;
        let conf = Self::parse(&label, &text)?;
        // It holds the [keystone_auth] password: refuse it when others can read it.
        openstack::secret::check_private_file(path)
            .map_err(|e| CasoConfError { path: label, message: e.to_string() })?;
        Ok(conf)
    }

    /// Parses caso.conf text; `label` names the file in errors.
    pub fn parse(label: &str, text: &str) -> Result<CasoConf, CasoConfError> {
        let err = |message: String| CasoConfError { path: label.to_string(), message };
        let ini = Ini::load_from_str(text).map_err(|e| err(e.to_string()))?;
        // `[DEFAULT]` is a section like any other to rust-ini; keys before
        // any header count as DEFAULT too.
        let get = |section: &str, key: &str| -> Option<String> {
            let value = match ini.section(Some(section)).and_then(|s| s.get(key)) {
                Some(v) => Some(v),
                None if section == "DEFAULT" => ini.general_section().get(key),
                None => None,
            };
            value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
        };
        let list = |section: &str, key: &str| -> Vec<String> {
            get(section, key)
                .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default()
        };

        let site = get("DEFAULT", "site_name").ok_or_else(|| err("[DEFAULT] site_name is missing".into()))?;
        let site_name = SiteName::new(&site).map_err(|e| err(format!("[DEFAULT] site_name: {e}")))?;
        let service = get("DEFAULT", "service_name").unwrap_or_else(|| site.clone());
        let service = ApelText::for_field("service_name", &service).map_err(|e| err(format!("[DEFAULT] {e}")))?;
        let mut extract = ExtractConfig::new(site_name, service);
        extract.projects = list("DEFAULT", "projects");
        extract.project_tag = Some(get("DEFAULT", "caso_tag").unwrap_or_else(|| "caso".into()));
        // cASO reads one property (default `VO`), and so does a run from its file: the other
        // spellings fedsite accepts by default would account projects cASO does not.
        let vo_property = get("DEFAULT", "vo_property").unwrap_or_else(|| "VO".into());
        extract.vo_properties = vec![vo_property];
        let mapping = get("DEFAULT", "mapping_file").unwrap_or_else(|| "/etc/caso/voms.json".into());
        extract.voms_json = Some(PathBuf::from(mapping)).filter(|p| p.exists());
        if let Some(extractors) = get("DEFAULT", "extractor") {
            extract.extractors = extractors
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|e| {
                    Extractor::parse(e).ok_or_else(|| err(format!("[DEFAULT] extractor: unknown extractor {e:?}")))
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = get("benchmark", "name_key") {
            extract.benchmark.name_key = v;
        }
        if let Some(v) = get("benchmark", "value_key") {
            extract.benchmark.value_key = v;
        }
        for (key, field) in [
            ("type_key", &mut extract.accelerator.type_key),
            ("vendor_key", &mut extract.accelerator.vendor_key),
            ("model_key", &mut extract.accelerator.model_key),
            ("number_key", &mut extract.accelerator.number_key),
        ] {
            if let Some(v) = get("accelerator", key) {
                *field = v;
            }
        }
        if let Some(v) = get("prometheus", "prometheus_endpoint") {
            extract.prometheus.prometheus_endpoint = v;
        }

        let cloud = keystone_auth(label, &get, &extract.projects)?;
        let spool =
            PathBuf::from(get("ssm", "output_path").unwrap_or_else(|| "/var/spool/apel/outgoing/openstack".into()));
        let max_records = match get("ssm", "max_size") {
            Some(v) => v.parse().map_err(|_| err(format!("[ssm] max_size {v:?} is not a number")))?,
            None => apel::DEFAULT_MAX_RECORDS,
        };
        let messengers = list("DEFAULT", "messengers");
        let raw = |m: &str| {
            let section = format!("messenger_{m}");
            ini.section(Some(section.as_str())).and_then(|s| s.get("record_types")).map(|v| v.trim().to_string())
        };
        let (record_types, messenger_notes) = ssm_record_types(&messengers, &raw);
        Ok(CasoConf { extract, cloud, spool, max_records, record_types, messenger_notes })
    }
}

/// The `auth_type`s a `[keystone_auth]` may name: keystoneauth's plugin names
/// whose flows fedsite implements.
pub const AUTH_TYPES: &[&str] = &[
    "password",
    "v3password",
    "v3applicationcredential",
    "v3oidcclientcredentials",
    "v3oidcaccesstoken",
    "token",
    "v3token",
];

/// The plugin options fedsite reads from the auth section, by keystoneauth's
/// option `dest` names (what oslo.config reads from the file). `scope` is
/// `openid-scope`'s dest; `user_name`, `tenant_id` and `tenant_name` are
/// deprecated spellings keystoneauth still reads.
pub const PLUGIN_KEYS: &[&str] = &[
    "auth_url",
    "username",
    "user_name",
    "user_id",
    "user_domain_id",
    "user_domain_name",
    "password",
    "project_id",
    "project_name",
    "tenant_id",
    "tenant_name",
    "project_domain_id",
    "project_domain_name",
    "domain_id",
    "domain_name",
    "system_scope",
    "default_domain_id",
    "default_domain_name",
    "application_credential_id",
    "application_credential_name",
    "application_credential_secret",
    "token",
    "identity_provider",
    "protocol",
    "access_token",
    "client_id",
    "client_secret",
    "discovery_endpoint",
    "access_token_endpoint",
    "scope",
    "openid_scope",
];

/// `[keystone_auth]` as keystoneauth's `load_auth_from_conf_options` and
/// `load_session_from_conf_options` read it: `auth_section` (when set) names
/// the section holding `auth_type` and the plugin's options; the session's
/// `cafile` and `insecure` stay in `[keystone_auth]`. With no project, domain
/// or system scope the token is system-scoped, as cASO's project listing is
/// (an application credential keeps its own project), except for an OIDC
/// identity: its roles come from the federation mapping, on projects, so it is
/// scoped to the first of `projects` (cASO scopes each project's token to it).
fn keystone_auth(
    label: &str,
    get: &dyn Fn(&str, &str) -> Option<String>,
    projects: &[String],
) -> Result<CloudConfig, CasoConfError> {
    let err = |message: String| CasoConfError { path: label.to_string(), message };
    let section = get("keystone_auth", "auth_section").unwrap_or_else(|| "keystone_auth".into());
    let at = |key: &str| format!("[{section}] {key}");
    let auth_type = get(&section, "auth_type").map(|t| t.to_ascii_lowercase()).unwrap_or_else(|| "password".into());
    if !AUTH_TYPES.contains(&auth_type.as_str()) {
        return Err(err(format!(
            "{} {auth_type:?} is not supported (use one of {})",
            at("auth_type"),
            AUTH_TYPES.join(", ")
        )));
    }
    if get(&section, "trust_id").is_some() {
        return Err(err(format!("{}: trust-scoped tokens are not supported", at("trust_id"))));
    }
    let mut options = std::collections::BTreeMap::new();
    options.insert("auth_type".to_string(), auth_type.clone());
    for key in PLUGIN_KEYS {
        if let Some(v) = get(&section, key) {
            options.insert(key.to_string(), v);
        }
    }
    if let Some(v) = options.remove("user_name") {
        options.entry("username".into()).or_insert(v);
    }
    // keystoneauth reads the OIDC scope from `scope` (openid-scope's dest); `openid_scope`, the
    // clouds.yaml spelling, is taken too when it agrees.
    match (options.remove("scope"), options.get("openid_scope")) {
        (Some(s), Some(o)) if s != *o => {
            return Err(err(format!("{} {s:?} and {} {o:?} disagree: give one", at("scope"), at("openid_scope"))));
        }
        (Some(s), _) => {
            options.insert("openid_scope".into(), s);
        }
        _ => {}
    }
    if auth_type == "v3oidcclientcredentials" {
        match get(&section, "access_token_type").as_deref() {
            None | Some("access_token") => {}
            Some("id_token") => {
                return Err(err(format!(
                    "{} \"id_token\" is not supported: fedsite presents the access token",
                    at("access_token_type")
                )));
            }
            Some(o) => return Err(err(format!("{} {o:?} is not access_token or id_token", at("access_token_type")))),
        }
    }
    // Session and endpoint options: always [keystone_auth]'s own; region_name is cASO's [DEFAULT] one.
    if let Some(v) = get("keystone_auth", "cafile") {
        options.insert("cacert".into(), v);
    }
    if let Some(v) = get("keystone_auth", "insecure") {
        let b = oslo_bool(&v)
            .ok_or_else(|| err(format!("[keystone_auth] insecure {v:?} is not a boolean (true or false)")))?;
        options.insert("insecure".into(), b.to_string());
    }
    if let Some(v) = get("keystone_auth", "interface") {
        options.insert("interface".into(), v);
    }
    if let Some(v) = get("DEFAULT", "region_name") {
        options.insert("region_name".into(), v);
    }
    let session_key = |k: &str| matches!(k, "cacert" | "insecure" | "interface" | "region_name");
    let name = |k: &str| match k {
        "cacert" => "[keystone_auth] cafile".to_string(),
        "region_name" => "[DEFAULT] region_name".to_string(),
        k if session_key(k) => format!("[keystone_auth] {k}"),
        k => at(k),
    };
    let mut cloud = CloudConfig::from_auth_options(&options, label, &name).map_err(|e| err(e.message))?;
    if cloud.scope == Scope::Unscoped {
        cloud.scope = match (&cloud.credentials, projects.first()) {
            (Credentials::ApplicationCredential { .. }, _) => Scope::Unscoped,
            (Credentials::OidcAccessToken { .. } | Credentials::OidcClientCredentials { .. }, Some(p)) => {
                Scope::project_id(p)
            }
            // cASO lists projects with a system-scoped token.
            _ => Scope::System,
        };
    }
    Ok(cloud)
}

/// oslo.config's boolean spellings.
fn oslo_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openstack::{DomainRef, UserRef};

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("caso.conf");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        (dir, p)
    }

    #[test]
    fn the_reference_example_reads_as_caso_does() {
        let (_d, p) = write(
            "[DEFAULT]\nsite_name = TEST-SITE\nservice_name = TEST-SITE-cloud\nmessengers = ssm,noop\n\
             extractor = nova,cinder,neutron\nvo_property = VO\nmapping_file = /nonexistent.json\n\n\
             [keystone_auth]\nauth_type = v3password\nauth_url = http://127.0.0.1:35357/v3\nusername = caso\n\
             password = secret\nuser_domain_id = default\nproject_domain_id = default\n\n\
             [ssm]\noutput_path = /tmp/outgoing\nmax_size = 50\n",
        );
        let c = CasoConf::load(&p).unwrap();
        assert_eq!(c.extract.site_name.as_str(), "TEST-SITE");
        assert_eq!(c.extract.service_name.as_str(), "TEST-SITE-cloud");
        assert_eq!(c.extract.vo_properties[0], "VO");
        assert_eq!(c.extract.project_tag.as_deref(), Some("caso"));
        assert_eq!(c.extract.extractors, vec![Extractor::Nova, Extractor::Cinder, Extractor::Neutron]);
        assert_eq!((c.spool.as_path(), c.max_records), (Path::new("/tmp/outgoing"), 50));
        assert_eq!(c.cloud.scope, Scope::System);
        assert!(
            matches!(&c.cloud.credentials, Credentials::Password { user: UserRef::Name { name, domain: DomainRef::Id(d) }, .. } if name == "caso" && d == "default")
        );
        // The password never prints.
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn missing_and_unusable_keys_name_the_section_and_key() {
        let (_d, p) = write("[DEFAULT]\nservice_name = x\n");
        assert!(CasoConf::load(&p).unwrap_err().to_string().ends_with("[DEFAULT] site_name is missing"));
        let (_d, p) =
            write("[DEFAULT]\nsite_name = S\n[keystone_auth]\nauth_url = http://k/v3\nauth_type = v3oidcpassword\n");
        assert!(
            CasoConf::load(&p)
                .unwrap_err()
                .to_string()
                .contains("[keystone_auth] auth_type \"v3oidcpassword\" is not supported")
        );
        let (_d, p) = write(
            "[DEFAULT]\nsite_name = S\nextractor = nova,bogus\n[keystone_auth]\nauth_url = http://k/v3\nusername = u\npassword = p\n",
        );
        let e = CasoConf::load(&p).unwrap_err().to_string();
        assert!(e.contains("caso.conf") && e.contains("[DEFAULT] extractor: unknown extractor \"bogus\""), "{e}");
    }

    /// `[keystone_auth]` of each auth type, as caso.conf (`site_name` added).
    fn auth(keys: &str) -> Result<CloudConfig, String> {
        CasoConf::parse("caso.conf", &format!("[DEFAULT]\nsite_name = S\nregion_name = R1\n\n[keystone_auth]\n{keys}"))
            .map(|c| c.cloud)
            .map_err(|e| e.to_string())
    }

    const OIDC: &str = "auth_type = v3oidcclientcredentials\nauth_url = https://k/v3\nidentity_provider = egi.eu\nprotocol = openid\n\
                        client_id = cid\nclient_secret = csecret\ndiscovery_endpoint = https://aai/.well-known/openid-configuration\n\
                        scope = openid profile eduperson_entitlement\naccess_token_type = access_token\nproject_id = p1\n";

    #[test]
    fn each_auth_type_maps_to_its_credentials_and_scope() {
        use openstack::ProjectRef;
        let c = auth(OIDC).unwrap();
        assert_eq!(
            c.credentials,
            Credentials::OidcClientCredentials {
                identity_provider: "egi.eu".into(),
                protocol: "openid".into(),
                client_id: "cid".into(),
                client_secret: "csecret".into(),
                discovery_endpoint: Some("https://aai/.well-known/openid-configuration".into()),
                access_token_endpoint: None,
                openid_scope: "openid profile eduperson_entitlement".into(),
            }
        );
        assert_eq!(
            (c.scope, c.auth_url.as_str(), c.region_name.as_deref()),
            (Scope::project_id("p1"), "https://k/v3", Some("R1"))
        );
        // keystoneauth's default scope, and the token endpoint instead of discovery.
        let c = auth("auth_type = v3oidcclientcredentials\nauth_url = https://k/v3\nidentity_provider = egi.eu\nprotocol = oidc\n\
                      client_id = cid\nclient_secret = x\naccess_token_endpoint = https://aai/token\n")
        .unwrap();
        assert!(
            matches!(&c.credentials, Credentials::OidcClientCredentials { openid_scope, access_token_endpoint: Some(e), discovery_endpoint: None, protocol, .. }
            if openid_scope == "openid profile" && e == "https://aai/token" && protocol == "oidc")
        );
        assert_eq!(c.scope, Scope::System);
        // An OIDC identity with no scope keys: the first configured project.
        let c = CasoConf::parse(
            "caso.conf",
            &format!(
                "[DEFAULT]\nsite_name = S\nprojects = p2, p3\n[keystone_auth]\n{}",
                OIDC.replace("project_id = p1\n", "")
            ),
        )
        .unwrap();
        assert_eq!(c.cloud.scope, Scope::project_id("p2"));
        let c =
            CasoConf::parse("caso.conf", &format!("[DEFAULT]\nsite_name = S\nprojects = p2\n[keystone_auth]\n{OIDC}"))
                .unwrap();
        assert_eq!(c.cloud.scope, Scope::project_id("p1"), "an explicit scope wins");
        let c = CasoConf::parse("caso.conf", "[DEFAULT]\nsite_name = S\nprojects = p2\n[keystone_auth]\nauth_url = https://k/v3\nuser_id = u\npassword = p\n").unwrap();
        assert_eq!(c.cloud.scope, Scope::System, "a password account lists projects system-scoped");

        let c = auth("auth_type = v3oidcaccesstoken\nauth_url = https://k/v3\nidentity_provider = egi.eu\nprotocol = openid\naccess_token = eyJ\nproject_name = vo\nproject_domain_name = fed\n").unwrap();
        assert_eq!(
            c.credentials,
            Credentials::OidcAccessToken {
                identity_provider: "egi.eu".into(),
                protocol: "openid".into(),
                access_token: "eyJ".into()
            }
        );
        assert_eq!(
            c.scope,
            Scope::Project(ProjectRef::Name { name: "vo".into(), domain: DomainRef::Name("fed".into()) })
        );

        let c = auth("auth_type = v3applicationcredential\nauth_url = https://k/v3\napplication_credential_id = ac1\napplication_credential_secret = acs\n").unwrap();
        assert_eq!(
            c.credentials,
            Credentials::ApplicationCredential { id: Some("ac1".into()), name: None, user: None, secret: "acs".into() }
        );
        assert_eq!(c.scope, Scope::Unscoped, "the credential's own project");
        let c = auth("auth_type = v3applicationcredential\nauth_url = https://k/v3\napplication_credential_name = acc\nusername = u\nuser_domain_name = D\napplication_credential_secret = acs\n").unwrap();
        assert!(
            matches!(&c.credentials, Credentials::ApplicationCredential { id: None, name: Some(n), user: Some(UserRef::Name { name, domain: DomainRef::Name(d) }), .. } if n == "acc" && name == "u" && d == "D")
        );

        for t in ["v3token", "token"] {
            let c = auth(&format!("auth_type = {t}\nauth_url = https://k/v3\ntoken = gAAAA\nsystem_scope = all\ncafile = /etc/ca.pem\ninsecure = False\n")).unwrap();
            assert_eq!((c.credentials, c.scope), (Credentials::Token { token: "gAAAA".into() }, Scope::System));
            assert_eq!((c.cacert.as_deref(), c.insecure), (Some(Path::new("/etc/ca.pem")), false));
        }
        for t in ["password", "v3password", "V3Password"] {
            let c = auth(&format!("auth_type = {t}\nauth_url = https://k/v3\nuser_id = u1\npassword = pw\ndomain_name = D\ninsecure = yes\ninterface = internal\n")).unwrap();
            assert_eq!(
                (c.credentials, c.scope),
                (
                    Credentials::Password { user: UserRef::Id("u1".into()), password: "pw".into() },
                    Scope::Domain(DomainRef::Name("D".into()))
                )
            );
            assert_eq!((c.insecure, c.interface), (true, openstack::Interface::Internal));
        }
        // None of the secrets prints.
        let c = CasoConf::parse("caso.conf", &format!("[DEFAULT]\nsite_name = S\n[keystone_auth]\n{OIDC}")).unwrap();
        assert!(!format!("{c:?}").contains("csecret"));
    }

    #[test]
    fn auth_section_names_where_the_plugin_options_are() {
        let text = "[DEFAULT]\nsite_name = S\n[keystone_auth]\nauth_section = egi\ncafile = /ca.pem\nauth_url = http://ignored/v3\n\
                    [egi]\nauth_type = v3token\nauth_url = https://k/v3\ntoken = t\n";
        let c = CasoConf::parse("caso.conf", text).unwrap().cloud;
        assert_eq!((c.auth_url.as_str(), c.cacert.as_deref()), ("https://k/v3", Some(Path::new("/ca.pem"))));
        let e = CasoConf::parse("caso.conf", &text.replace("token = t\n", "")).unwrap_err().to_string();
        assert!(e.ends_with("[egi] token is missing"), "{e}");
    }

    #[test]
    fn a_missing_or_contradictory_auth_key_is_one_error_naming_it() {
        let without = |key: &str| {
            OIDC.lines().filter(|l| !l.starts_with(&format!("{key} ="))).map(|l| format!("{l}\n")).collect::<String>()
        };
        for (keys, want) in [
            (without("client_secret"), "[keystone_auth] client_secret is missing"),
            (without("client_id"), "[keystone_auth] client_id is missing"),
            (without("identity_provider"), "[keystone_auth] identity_provider is missing"),
            (without("protocol"), "[keystone_auth] protocol is missing"),
            (without("auth_url"), "[keystone_auth] auth_url is missing"),
            (without("discovery_endpoint"), "[keystone_auth] discovery_endpoint or [keystone_auth] access_token_endpoint is required"),
            (OIDC.replace("auth_type = v3oidcclientcredentials", "auth_type = v3oidcpassword"), "[keystone_auth] auth_type \"v3oidcpassword\" is not supported (use one of password, v3password, v3applicationcredential, v3oidcclientcredentials, v3oidcaccesstoken, token, v3token)"),
            (format!("{OIDC}system_scope = all\n"), "more than one scope given: use only one of project ([keystone_auth] project_id/[keystone_auth] project_name), domain ([keystone_auth] domain_id/[keystone_auth] domain_name) or [keystone_auth] system_scope"),
            (OIDC.replace("access_token_type = access_token", "access_token_type = id_token"), "[keystone_auth] access_token_type \"id_token\" is not supported"),
            (format!("{OIDC}openid_scope = openid\n"), "[keystone_auth] scope \"openid profile eduperson_entitlement\" and [keystone_auth] openid_scope \"openid\" disagree"),
            (format!("{OIDC}trust_id = t1\n"), "[keystone_auth] trust_id: trust-scoped tokens are not supported"),
            (format!("{OIDC}insecure = maybe\n"), "[keystone_auth] insecure \"maybe\" is not a boolean"),
            ("auth_type = v3oidcaccesstoken\nauth_url = https://k/v3\nidentity_provider = egi.eu\nprotocol = openid\n".into(), "[keystone_auth] access_token is missing"),
            ("auth_type = v3token\nauth_url = https://k/v3\n".into(), "[keystone_auth] token is missing"),
            ("auth_type = v3applicationcredential\nauth_url = https://k/v3\napplication_credential_id = a\n".into(), "[keystone_auth] application_credential_secret is missing"),
            ("auth_type = v3applicationcredential\nauth_url = https://k/v3\napplication_credential_secret = s\n".into(), "[keystone_auth] application_credential_id or [keystone_auth] application_credential_name is required"),
            ("auth_type = v3password\nauth_url = https://k/v3\nusername = u\n".into(), "[keystone_auth] password is missing"),
            ("auth_type = v3password\nauth_url = https://k/v3\nproject_id = p\nsystem_scope = all\nuser_id = u\npassword = p\n".into(), "use only one of project"),
            ("auth_type = v3token\nauth_url = https://k/v3\ntoken = t\nsystem_scope = domain\n".into(), "[keystone_auth] system_scope must be 'all'"),
        ] {
            let e = auth(&keys).unwrap_err();
            assert!(e.starts_with("reading caso.conf: ") && e.contains(want), "{keys}\n=> {e}\nwant {want}");
            // One error: one sentence, not a list of everything.
            assert_eq!(e.matches("reading").count(), 1, "{e}");
            assert!(!e.contains("csecret"), "{e}");
        }
    }
}
