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

use apel::{ApelText, SiteName};
use ini::Ini;
use openstack::{CloudConfig, Credentials, DomainRef, Interface, ProjectRef, Scope, Secret, UserRef};

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
        let text = std::fs::read_to_string(path)
            .map_err(|e| CasoConfError { path: label.clone(), message: e.to_string() })?;
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
                .map(|e| Extractor::parse(e).ok_or_else(|| err(format!("[DEFAULT] extractor: unknown extractor {e:?}"))))
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

        let auth_url = get("keystone_auth", "auth_url").ok_or_else(|| err("[keystone_auth] auth_url is missing".into()))?;
        if let Some(t) = get("keystone_auth", "auth_type").filter(|t| !matches!(t.as_str(), "password" | "v3password")) {
            return Err(err(format!("[keystone_auth] auth_type {t:?}: only password and v3password can be read from caso.conf; use clouds.yaml for others")));
        }
        let domain = |id: &str, name: &str| -> DomainRef {
            match (get("keystone_auth", id), get("keystone_auth", name)) {
                (Some(id), _) => DomainRef::Id(id),
                (None, Some(name)) => DomainRef::Name(name),
                (None, None) => DomainRef::Id("default".into()),
            }
        };
        let user = match (get("keystone_auth", "user_id"), get("keystone_auth", "username")) {
            (Some(id), _) => UserRef::Id(id),
            (None, Some(name)) => UserRef::Name { name, domain: domain("user_domain_id", "user_domain_name") },
            (None, None) => return Err(err("[keystone_auth] username (or user_id) is missing".into())),
        };
        let password = get("keystone_auth", "password").ok_or_else(|| err("[keystone_auth] password is missing".into()))?;
        let scope = match (get("keystone_auth", "project_id"), get("keystone_auth", "project_name")) {
            (Some(id), _) => Scope::Project(ProjectRef::Id(id)),
            (None, Some(name)) => {
                Scope::Project(ProjectRef::Name { name, domain: domain("project_domain_id", "project_domain_name") })
            }
            // cASO lists projects with a system-scoped token.
            (None, None) => Scope::System,
        };
        let cloud = CloudConfig {
            name: None,
            source: label.to_string(),
            auth_url,
            credentials: Credentials::Password { user, password: Secret::new(password) },
            scope,
            region_name: get("DEFAULT", "region_name"),
            interface: Interface::Public,
            cacert: get("keystone_auth", "cafile").map(PathBuf::from),
            insecure: get("keystone_auth", "insecure").is_some_and(|v| v.eq_ignore_ascii_case("true")),
        };
        let spool = PathBuf::from(get("ssm", "output_path").unwrap_or_else(|| "/var/spool/apel/outgoing/openstack".into()));
        let max_records = match get("ssm", "max_size") {
            Some(v) => v.parse().map_err(|_| err(format!("[ssm] max_size {v:?} is not a number")))?,
            None => apel::DEFAULT_MAX_RECORDS,
        };
        Ok(CasoConf { extract, cloud, spool, max_records })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(matches!(&c.cloud.credentials, Credentials::Password { user: UserRef::Name { name, domain: DomainRef::Id(d) }, .. } if name == "caso" && d == "default"));
        // The password never prints.
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn missing_and_unusable_keys_name_the_section_and_key() {
        let (_d, p) = write("[DEFAULT]\nservice_name = x\n");
        assert!(CasoConf::load(&p).unwrap_err().to_string().ends_with("[DEFAULT] site_name is missing"));
        let (_d, p) = write("[DEFAULT]\nsite_name = S\n[keystone_auth]\nauth_url = http://k/v3\nauth_type = token\n");
        assert!(CasoConf::load(&p).unwrap_err().to_string().contains("[keystone_auth] auth_type \"token\""));
        let (_d, p) = write("[DEFAULT]\nsite_name = S\nextractor = nova,bogus\n[keystone_auth]\nauth_url = http://k/v3\nusername = u\npassword = p\n");
        let e = CasoConf::load(&p).unwrap_err().to_string();
        assert!(e.contains("caso.conf") && e.contains("[DEFAULT] extractor: unknown extractor \"bogus\""), "{e}");
    }
}
