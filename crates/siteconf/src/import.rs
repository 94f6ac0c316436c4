//! `fedsite config import`: an equivalent `fedsite.toml` from the files a
//! site already has — cASO's `caso.conf`, SSM's `sender.cfg` and the EGI
//! catch-all `sites/<SITE>.yaml` — plus the list of everything that could not
//! be carried over and why. The original files are read with the same code
//! that runs fedsite from them directly, so both paths give the same records.

use std::path::Path;

use accounting::casoconf::CasoConf;
use ini::Ini;
use messaging::config::{PathType, SenderCfg};
use openstack::{Credentials, DomainRef, Interface, ProjectRef, Scope, UserRef};

use accounting::casoconf::PLUGIN_KEYS;

use crate::Error;
use crate::model::{Accelerator, Ams, Auth, Benchmark, Destination, FedsiteToml, Prometheus};

/// What an import produced.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub config: FedsiteToml,
    /// Keys of the original files fedsite does not carry over, each with the reason.
    pub not_carried: Vec<String>,
}

impl Imported {
    /// Signs with this host certificate and key instead of sender.cfg's (a copy the service user
    /// owns), and says so in the list of what was not carried over.
    pub fn use_host_credentials(&mut self, certificate: &Path, key: &Path) {
        let ams = self.config.ams.get_or_insert_with(Default::default);
        if let Some(old) = ams.key.replace(key.to_path_buf()) {
            self.not_carried.push(format!(
                "sender.cfg's host key {} replaced by {} (--key)",
                old.display(),
                key.display()
            ));
        }
        ams.certificate = Some(certificate.to_path_buf());
    }
}

/// caso.conf keys fedsite reads (section, key).
const CASO_READ: &[(&str, &str)] = &[
    ("DEFAULT", "site_name"),
    ("DEFAULT", "service_name"),
    ("DEFAULT", "projects"),
    ("DEFAULT", "caso_tag"),
    ("DEFAULT", "vo_property"),
    ("DEFAULT", "mapping_file"),
    ("DEFAULT", "extractor"),
    ("DEFAULT", "region_name"),
    ("benchmark", "name_key"),
    ("benchmark", "value_key"),
    ("accelerator", "type_key"),
    ("accelerator", "vendor_key"),
    ("accelerator", "model_key"),
    ("accelerator", "number_key"),
    ("prometheus", "prometheus_endpoint"),
    ("keystone_auth", "auth_section"),
    ("keystone_auth", "cafile"),
    ("keystone_auth", "insecure"),
    ("keystone_auth", "interface"),
    ("ssm", "output_path"),
    ("ssm", "max_size"),
];

/// caso.conf keys with no meaning for fedsite, and why.
fn caso_reason(section: &str, key: &str) -> Option<&'static str> {
    Some(match (section, key) {
        ("DEFAULT", "spooldir" | "lock_path") => {
            "fedsite keeps its checkpoints and locks in the ledger ([ledger] path)"
        }
        ("DEFAULT", "extract_from" | "extract_to" | "dry_run") => "per-run settings: use --from, --to and --dry-run",
        (
            "DEFAULT",
            "debug" | "verbose" | "log_file" | "log_dir" | "use_stderr" | "use_syslog" | "log_config_append",
        ) => "logging is set with --log / FEDSITE_LOG",
        ("DEFAULT", "system_scope") => {
            "newer cASO's scope of its project-listing token: fedsite lists with a system-scoped token unless [keystone_auth] names a scope (an OIDC identity: the first of projects)"
        }
        ("logstash", _) => "the logstash messenger is not supported",
        (s, "record_types") if s.starts_with("messenger_") => {
            "only the record_types of an ssm / ssmv4 messenger named in [DEFAULT] messengers are carried (as a [[destination]]); this messenger is not enabled or has no fedsite equivalent"
        }
        ("prometheus", _) => {
            "only prometheus_endpoint is read from caso.conf; set the others under [accounting.prometheus]"
        }
        ("keystone_auth", "certfile" | "keyfile") => "client-certificate authentication to Keystone is not supported",
        ("keystone_auth", "timeout" | "collect_timing" | "split_loggers") => {
            "fedsite's HTTP client has its own timeouts and logging"
        }
        _ => return None,
    })
}

/// Builds the import from any of the three files.
pub fn import(caso: Option<&Path>, ssm: Option<&Path>, site_yaml: Option<&Path>) -> Result<Imported, Error> {
    let mut out = Imported::default();
    if let Some(p) = caso {
        import_caso(p, &mut out)?;
    }
    if let Some(p) = ssm {
        import_ssm(p, &mut out)?;
    }
    if let Some(p) = site_yaml {
        import_site_yaml(p, &mut out)?;
    }
    Ok(out)
}

fn import_caso(path: &Path, out: &mut Imported) -> Result<(), Error> {
    // cASO's own caso.conf is often 0644 (cASO runs as root): `--caso-conf` refuses it, but
    // the import reads it, says so, and writes fedsite.toml 0600.
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e.to_string()))?;
    let conf = CasoConf::parse(&path.display().to_string(), &text).map_err(|e| Error::file(path, e.message))?;
    if let Err(why) = openstack::secret::check_private_file(path) {
        out.not_carried.push(format!(
            "{}: read for this import although {why}; fedsite.toml is written 0600, and `fedsite accounting extract --caso-conf` refuses the file until it is private",
            path.display()
        ));
    }
    let c = &mut out.config;
    let x = &conf.extract;
    c.site.name = Some(x.site_name.as_str().to_string());
    c.site.service = (x.service_name.as_str() != x.site_name.as_str()).then(|| x.service_name.as_str().to_string());
    let a = &mut c.accounting;
    a.projects = x.projects.clone();
    a.tag = x.project_tag.clone();
    a.vo_properties = Some(x.vo_properties.clone());
    a.voms_json = x.voms_json.clone();
    a.extractors = Some(x.extractors.iter().map(|e| e.as_str().to_string()).collect());
    a.max_records = Some(conf.max_records);
    let defaults = accounting::ExtractConfig::new(x.site_name.clone(), x.service_name.clone());
    if x.benchmark != defaults.benchmark {
        a.benchmark = Some(Benchmark {
            name_key: Some(x.benchmark.name_key.clone()),
            value_key: Some(x.benchmark.value_key.clone()),
        });
    }
    if x.accelerator != defaults.accelerator {
        a.accelerator = Some(Accelerator {
            type_key: Some(x.accelerator.type_key.clone()),
            vendor_key: Some(x.accelerator.vendor_key.clone()),
            model_key: Some(x.accelerator.model_key.clone()),
            number_key: Some(x.accelerator.number_key.clone()),
        });
    }
    if x.prometheus.prometheus_endpoint != defaults.prometheus.prometheus_endpoint {
        a.prometheus =
            Some(Prometheus { endpoint: Some(x.prometheus.prometheus_endpoint.clone()), ..Default::default() });
    }
    c.spool.path = Some(conf.spool.clone());
    // The kinds cASO's ssm messengers spool: a destination of its own when they are not the
    // ssm messenger's default (fedsite's, without [[destination]]).
    if conf.record_types != accounting::pipeline::SSM_KINDS {
        c.spool.path = None;
        c.destinations = vec![Destination {
            name: "ssm".into(),
            record_types: conf.record_types.clone(),
            spool: conf.spool.clone(),
            quarantine: None,
            host: None,
            url: None,
            authn_url: None,
            project: None,
            topic: None,
            token_file: None,
        }];
    }
    for n in &conf.messenger_notes {
        out.not_carried.push(format!("{}: {n}", path.display()));
    }

    // [keystone_auth] becomes the inline clouds.yaml keys of [cloud].
    let cloud = &conf.cloud;
    let mut auth = Auth { auth_url: Some(cloud.auth_url.clone()), ..Default::default() };
    let domain = |d: &DomainRef| match d {
        DomainRef::Id(id) => (Some(id.clone()), None),
        DomainRef::Name(n) => (None, Some(n.clone())),
    };
    let user_keys = |auth: &mut Auth, user: &UserRef| match user {
        UserRef::Id(id) => auth.user_id = Some(id.clone()),
        UserRef::Name { name, domain: d } => {
            auth.username = Some(name.clone());
            (auth.user_domain_id, auth.user_domain_name) = domain(d);
        }
    };
    // Each secret is copied (fedsite.toml is written 0600 and refused otherwise).
    let auth_type = match &cloud.credentials {
        Credentials::Password { user, password } => {
            user_keys(&mut auth, user);
            auth.password = Some(password.expose().to_string());
            "password"
        }
        Credentials::ApplicationCredential { id, name, user, secret } => {
            if let Some(u) = user {
                user_keys(&mut auth, u);
            }
            auth.application_credential_id = id.clone();
            auth.application_credential_name = name.clone();
            auth.application_credential_secret = Some(secret.expose().to_string());
            "v3applicationcredential"
        }
        Credentials::Token { token } => {
            auth.token = Some(token.expose().to_string());
            out.not_carried.push(format!(
                "{}: [keystone_auth] token copied into [cloud.auth] token: a Keystone token expires (hours), so this fedsite.toml stops working with it",
                path.display()
            ));
            "v3token"
        }
        Credentials::OidcAccessToken { identity_provider, protocol, access_token } => {
            auth.identity_provider = Some(identity_provider.clone());
            auth.protocol = Some(protocol.clone());
            auth.access_token = Some(access_token.expose().to_string());
            out.not_carried.push(format!(
                "{}: [keystone_auth] access_token copied into [cloud.auth] access_token: an OIDC access token expires (often within the hour); v3oidcclientcredentials gets a fresh one each run",
                path.display()
            ));
            "v3oidcaccesstoken"
        }
        Credentials::OidcClientCredentials {
            identity_provider,
            protocol,
            client_id,
            client_secret,
            discovery_endpoint,
            access_token_endpoint,
            openid_scope,
        } => {
            auth.identity_provider = Some(identity_provider.clone());
            auth.protocol = Some(protocol.clone());
            auth.client_id = Some(client_id.clone());
            auth.client_secret = Some(client_secret.expose().to_string());
            auth.discovery_endpoint = discovery_endpoint.clone();
            auth.access_token_endpoint = access_token_endpoint.clone();
            auth.openid_scope = Some(openid_scope.clone());
            "v3oidcclientcredentials"
        }
    };
    match &cloud.scope {
        Scope::Project(ProjectRef::Id(id)) => auth.project_id = Some(id.clone()),
        Scope::Project(ProjectRef::Name { name, domain: d }) => {
            auth.project_name = Some(name.clone());
            (auth.project_domain_id, auth.project_domain_name) = domain(d);
        }
        Scope::Domain(d) => (auth.domain_id, auth.domain_name) = domain(d),
        Scope::System => auth.system_scope = Some("all".into()),
        // An application credential's own project.
        Scope::Unscoped => {}
    }
    c.cloud.auth_type = Some(auth_type.into());
    c.cloud.auth = Some(auth);
    c.cloud.region_name = cloud.region_name.clone();
    c.cloud.interface = (cloud.interface != Interface::Public).then(|| cloud.interface.as_str().to_string());
    c.cloud.cacert = cloud.cacert.clone();
    c.cloud.verify = cloud.insecure.then_some(false);
    if cloud.insecure {
        out.not_carried.push(format!(
            "{}: [keystone_auth] insecure = true carried as [cloud] verify = false: Keystone's certificate is NOT verified; set [cloud] cacert instead",
            path.display()
        ));
    }

    // Everything else in the file, with the reason it is not carried.
    let ini = Ini::load_from_file(path).map_err(|e| Error::file(path, e.to_string()))?;
    // The section holding auth_type and the plugin's options ([keystone_auth] unless auth_section says).
    let auth_section = ini
        .get_from(Some("keystone_auth"), "auth_section")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("keystone_auth");
    let messengers: Vec<String> = ini
        .get_from(Some("DEFAULT"), "messengers")
        .or_else(|| ini.general_section().get("messengers"))
        .map(|v| v.split(',').map(|m| m.trim().to_string()).filter(|m| !m.is_empty()).collect())
        .unwrap_or_default();
    for m in messengers.iter().filter(|m| !["ssm", "ssmv4", "noop"].contains(&m.as_str())) {
        out.not_carried.push(format!(
            "{}: [DEFAULT] messengers: {m}: no fedsite equivalent (only ssm / ssmv4, to an AMS topic through the spool); the records cASO sends it are not sent",
            path.display()
        ));
    }
    let read_messenger_key = |section: &str, key: &str| {
        (section == "DEFAULT" && key == "messengers")
            || (key == "record_types"
                && section
                    .strip_prefix("messenger_")
                    .is_some_and(|m| ["ssm", "ssmv4"].contains(&m) && messengers.iter().any(|e| e == m)))
    };
    for (section, props) in ini.iter() {
        let section = section.unwrap_or("DEFAULT");
        for (key, _) in props.iter() {
            if read_messenger_key(section, key) {
                continue;
            }
            let plugin_key = key == "auth_type" || key == "access_token_type" || PLUGIN_KEYS.contains(&key);
            if CASO_READ.contains(&(section, key)) || (section == auth_section && plugin_key) {
                continue;
            }
            let reason = caso_reason(section, key).unwrap_or("fedsite has no such setting");
            out.not_carried.push(format!("{}: [{section}] {key}: {reason}", path.display()));
        }
    }
    Ok(())
}

fn import_ssm(path: &Path, out: &mut Imported) -> Result<(), Error> {
    let cfg = SenderCfg::load(path).map_err(|e| Error::file(path, e.to_string()))?;
    let c = &mut out.config;
    // caso.conf's spool: its [spool] path, or the destination its ssm messengers map to.
    let caso_spool = c.destinations.first().map(|d| d.spool.clone()).or_else(|| c.spool.path.clone());
    match &caso_spool {
        Some(p) if *p != cfg.path => out.not_carried.push(format!(
            "{}: [messaging] path {} differs from caso.conf's [ssm] output_path {}: fedsite extracts into and sends from the same spool, kept as caso.conf's",
            path.display(),
            cfg.path.display(),
            p.display()
        )),
        Some(_) => {}
        None => c.spool.path = Some(cfg.path.clone()),
    }
    c.spool.path_type = (cfg.path_type == PathType::Directory).then(|| "directory".into());
    if cfg.token.is_some() {
        out.not_carried.push(format!(
            "{}: [messaging] token: a static AMS token is not copied into fedsite.toml; put it in a file readable only by its owner and set [ams] token_file",
            path.display()
        ));
    }
    c.ams = Some(Ams {
        host: Some(cfg.host.clone()),
        project: Some(cfg.ams_project.clone()),
        topic: Some(cfg.destination.clone()),
        certificate: cfg.certificate.clone(),
        key: cfg.key.clone(),
        capath: cfg.capath.clone(),
        server_cert: cfg.server_cert.clone(),
        verify_server_cert: (!cfg.verify_server_cert).then_some(false),
        ..Default::default()
    });
    for note in &cfg.notes {
        out.not_carried.push(format!("{}: {note}", path.display()));
    }
    // Keys of the sections fedsite reads that it does not use.
    let ini = Ini::load_from_file(path).map_err(|e| Error::file(path, e.to_string()))?;
    for (section, props) in ini.iter() {
        let Some(section) = section else { continue };
        for (key, _) in props.iter() {
            if let Some(reason) = ssm_reason(section, key) {
                out.not_carried.push(format!("{}: [{section}] {key}: {reason}", path.display()));
            }
        }
    }
    Ok(())
}

/// sender.cfg keys fedsite does not use, and why (the sections it does not read at all are
/// listed by `SenderCfg`'s notes).
fn ssm_reason(section: &str, key: &str) -> Option<&'static str> {
    Some(match (section, key.to_ascii_lowercase().as_str()) {
        ("broker", "port") => {
            "STOMP's port; AMS is reached on 443 (data) and 8443 (token exchange): write host:port in [ams] host if AMS listens elsewhere"
        }
        ("broker", "use_ssl") => "AMS is always HTTPS",
        ("broker", "bdii" | "network") => "broker discovery through a BDII is STOMP's; set [ams] host",
        ("broker", "port_ssl" | "host_ssl") => "STOMP only",
        ("messaging", "ams_project" | "destination" | "path" | "path_type" | "token") => return None,
        ("messaging", "bulk") => "fedsite publishes several messages per request on its own (under AMS's size limit)",
        ("messaging", _) => "fedsite has no such setting",
        ("certificates", "certificate" | "key" | "capath" | "server_cert" | "verify_server_cert") => return None,
        ("certificates", _) => "fedsite has no such setting",
        ("sender", "protocol") => return None,
        ("sender", _) => "fedsite has no such setting",
        ("broker", "host") => return None,
        ("broker", _) => "fedsite has no such setting",
        _ => return None,
    })
}

fn import_site_yaml(path: &Path, out: &mut Imported) -> Result<(), Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e.to_string()))?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| Error::file(path, format!("invalid YAML: {e}")))?;
    let gocdb = doc.get("gocdb").and_then(|v| v.as_str()).ok_or_else(|| Error::key(path, "gocdb", "is missing"))?;
    let accounting_name = doc.get("accounting").and_then(|a| a.get("site_name")).and_then(|v| v.as_str());
    let name = accounting_name.unwrap_or(gocdb);
    let c = &mut out.config;
    match &c.site.name {
        Some(n) if n != name => out
            .not_carried
            .push(format!("{}: gocdb {name} differs from caso.conf's site_name {n}: kept {n}", path.display())),
        _ => c.site.name = Some(name.to_string()),
    }
    c.site.catchall_yaml = Some(path.to_path_buf());
    if let Some(endpoint) = doc.get("endpoint").and_then(|v| v.as_str()) {
        let auth_url = c.cloud.auth.as_ref().and_then(|a| a.auth_url.as_deref());
        if auth_url.is_some_and(|u| u.trim_end_matches('/') != endpoint.trim_end_matches('/')) {
            out.not_carried.push(format!(
                "{}: endpoint {endpoint} differs from caso.conf's [keystone_auth] auth_url: kept caso.conf's",
                path.display()
            ));
        }
    }
    for key in ["images", "auth", "protocol"] {
        if doc.get(key).is_some() {
            out.not_carried.push(format!(
                "{}: {key}: read from the site file at run time by the commands that use it (fedsite reads [site] catchall_yaml)",
                path.display()
            ));
        }
    }
    Ok(())
}

/// The TOML text of an import, with a header naming its sources.
pub fn render(imported: &Imported, sources: &[&Path]) -> Result<String, Error> {
    let body =
        toml::to_string_pretty(&imported.config).map_err(|e| Error::Other(format!("rendering fedsite.toml: {e}")))?;
    let mut text = String::from("# fedsite.toml written by `fedsite config import`");
    if !sources.is_empty() {
        let names: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
        text.push_str(&format!(" from {}", names.join(", ")));
    }
    text.push_str(".\n# Every key is described in docs/configuration.md; check it with `fedsite config check`.\n");
    if !imported.not_carried.is_empty() {
        text.push_str("#\n# Not carried over:\n");
        for n in &imported.not_carried {
            text.push_str(&format!("#   {n}\n"));
        }
    }
    text.push('\n');
    text.push_str(&body);
    Ok(text)
}
