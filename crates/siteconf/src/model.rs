//! The `fedsite.toml` schema: one serde struct per section, every key
//! optional with its default applied when resolved, unknown keys refused
//! (all of them at once, each with its line: `serde_ignored` collects them).
//! Owns loading the file (TOML errors name the line and key; a file holding
//! a secret must not be readable by group or others). docs/configuration.md
//! documents every key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// A whole `fedsite.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FedsiteToml {
    #[serde(default)]
    pub site: Site,
    #[serde(default)]
    pub cloud: Cloud,
    #[serde(default)]
    pub accounting: Accounting,
    #[serde(default)]
    pub ledger: Ledger,
    #[serde(default)]
    pub spool: Spool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ams: Option<Ams>,
    /// `[images]`: image sync (registry, HEPiX lists, cache, formats); its keys
    /// are read and checked by `imagesync` (docs/imagesync.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<toml::Table>,
    /// `[[destination]]`: each record kind to its own spool and AMS topic. None: the one
    /// `[spool]` and `[ams]` destination, for cloud, ip, accelerator and storage records.
    #[serde(default, rename = "destination", skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<Destination>,
}

/// `[[destination]]`: an AMS destination with its own spool, for the record kinds it names
/// (cASO's per-messenger `record_types`; the central deployment's compute and block topics).
/// The AMS keys left out are `[ams]`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    /// Unique among the destinations (reports, `fedsite send --destination`).
    pub name: String,
    /// Record kinds sent there: cloud, ip, accelerator, storage, energy; each kind in one
    /// destination at most.
    pub record_types: Vec<apel::RecordKind>,
    /// Its own dirq spool (not another destination's).
    pub spool: PathBuf,
    /// Refused messages (default `<spool>.quarantine`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<PathBuf>,
    /// AMS host (default `[ams] host`); a destination naming its own host does not inherit
    /// `[ams] url` / `authn_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authn_url: Option<String>,
    /// AMS project (default `[ams] project`, else `accounting`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// AMS topic (default `[ams] topic`, else `eu-egi-cloud-accounting`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// A static AMS token for this destination (default `[ams] token_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

/// `[site]`: who the site is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Site {
    /// GOCDB site name (APEL SiteName).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// APEL CloudComputeService; `name` by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The EGI catch-all `sites/<SITE>.yaml` (VO ↔ project mapping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catchall_yaml: Option<PathBuf>,
}

/// `[cloud]`: how to reach Keystone. Either `os_cloud` (a cloud of
/// clouds.yaml) or the clouds.yaml keys themselves (`auth_type`, `[cloud.auth]`,
/// `region_name`, `interface`, `cacert`, `verify`); `OS_*` variables when
/// neither is given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cloud {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_cloud: Option<String>,
    /// The clouds.yaml holding `os_cloud` (default: the usual search path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clouds_yaml: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cacert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
}

/// `[cloud.auth]`, with keystoneauth's names.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Auth {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_domain_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_domain_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_domain_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_domain_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_credential_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_credential_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_credential_secret: Option<String>,
    /// `token` / `v3token`: an existing Keystone token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `v3oidcaccesstoken`, `v3oidcclientcredentials`: the Keystone
    /// OS-FEDERATION identity provider and protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// `v3oidcaccesstoken`: the OIDC access token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// `v3oidcclientcredentials`: the OIDC client, and where its token comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_endpoint: Option<String>,
    /// OIDC scope requested (default `openid profile`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openid_scope: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hide = |v: &Option<String>| v.as_ref().map(|_| "<hidden>");
        f.debug_struct("Auth")
            .field("auth_url", &self.auth_url)
            .field("username", &self.username)
            .field("user_id", &self.user_id)
            .field("password", &hide(&self.password))
            .field("project_id", &self.project_id)
            .field("project_name", &self.project_name)
            .field("system_scope", &self.system_scope)
            .field("application_credential_id", &self.application_credential_id)
            .field("application_credential_secret", &hide(&self.application_credential_secret))
            .field("token", &hide(&self.token))
            .field("identity_provider", &self.identity_provider)
            .field("protocol", &self.protocol)
            .field("access_token", &hide(&self.access_token))
            .field("client_id", &self.client_id)
            .field("client_secret", &hide(&self.client_secret))
            .field("discovery_endpoint", &self.discovery_endpoint)
            .field("access_token_endpoint", &self.access_token_endpoint)
            .finish_non_exhaustive()
    }
}

/// `[accounting]`: what `fedsite accounting extract` accounts and how.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accounting {
    /// nova, cinder, neutron, prometheus (default nova, cinder, neutron).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extractors: Option<Vec<String>>,
    /// Project ids accounted besides the tagged ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
    /// Keystone tag of the projects to account (default `caso`; "" for none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Project properties holding the VO, tried in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vo_properties: Option<Vec<String>>,
    /// Legacy cASO voms.json.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voms_json: Option<PathBuf>,
    /// Projects extracted at once (default 8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// APEL CloudType (default `fedsite/<version> (OpenStack)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_type: Option<String>,
    /// `fedsite` or `caso` message rendering (default fedsite).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    /// Records per message (default 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_records: Option<usize>,
    /// `running` (cASO's way) or `suspended`: how SHUTOFF/SHELVED time counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inactive_time: Option<String>,
    /// Compute SuspendDuration from instance actions (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspend_duration: Option<bool>,
    /// Reuse the instance actions cached in the ledger for servers not updated since (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_cache: Option<bool>,
    /// Take an hourly run's usage-only servers from the ledger's listed servers when they are
    /// proved current, instead of listing every live server (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cache: Option<bool>,
    /// Projects known to have no VO (ids or names, `"*"` for all): skipped with a warning, not
    /// failed, so the run (and its metrics) count as a success.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmapped_ok: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<Benchmark>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<Accelerator>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<Prometheus>,
}

/// `[accounting.benchmark]`: flavor extra-spec keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Benchmark {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_key: Option<String>,
}

/// `[accounting.accelerator]`: flavor extra-spec keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accelerator {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_key: Option<String>,
}

/// `[accounting.prometheus]`: the energy extractor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Prometheus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_normalization_factor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_ssl: Option<bool>,
}

/// `[ledger]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// A SQLite file or a `postgresql://` URL (default /var/lib/fedsite/ledger.sqlite).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `[spool]`: the outgoing queue shared with SSM.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spool {
    /// Default /var/spool/apel/outgoing/openstack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// `dirq` (default) or `directory`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_type: Option<String>,
    /// Refused messages (default `<path>.quarantine`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<PathBuf>,
}

/// `[ams]`: delivery to the ARGO Messaging Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ams {
    /// AMS host name, as SSM's `[broker] host` (e.g. msg.argo.grnet.gr).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Data API base URL (default `https://<host>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// X.509 token exchange base URL (default `https://<host>:8443`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authn_url: Option<String>,
    /// AMS project (default `accounting`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// AMS topic (default `eu-egi-cloud-accounting`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// A file holding a static AMS token (instead of the X.509 exchange).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Host certificate and key (signing, X.509 token exchange).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Hashed CA directory (SSM's `capath`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capath: Option<PathBuf>,
    /// CAs trusted for AMS's TLS (default REQUESTS_CA_BUNDLE, else system roots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Encrypt to this certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_server_cert: Option<bool>,
}

impl FedsiteToml {
    /// Reads and parses `path`. Refuses a file holding a secret
    /// (`[cloud.auth] password`, `application_credential_secret`, `token`,
    /// `access_token`, `client_secret`) that group or others can read.
    pub fn load(path: &Path) -> Result<FedsiteToml, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e.to_string()))?;
        let config = Self::parse(path, &text)?;
        if let Some(key) = config.secret_key() {
            check_private(path, key)?;
        }
        Ok(config)
    }

    /// Parses TOML text; `path` names the file in errors. Every unknown key is reported, with
    /// its line, in one error.
    pub fn parse(path: &Path, text: &str) -> Result<FedsiteToml, Error> {
        let err = |e: toml::de::Error| Error::file(path, e.to_string().trim_end().to_string());
        let de = toml::Deserializer::parse(text).map_err(err)?;
        let mut unknown = Vec::new();
        let config: FedsiteToml = serde_ignored::deserialize(de, |key| unknown.push(key.to_string())).map_err(err)?;
        if unknown.is_empty() {
            config.check_destinations(path)?;
            return Ok(config);
        }
        // serde_ignored writes an Option's Some as `?` (`ams.?.hots`).
        let mut found: Vec<(usize, String)> = unknown.iter().map(|k| unknown_key(text, &k.replace(".?", ""))).collect();
        found.sort();
        let found: Vec<String> = found.into_iter().map(|(_, s)| s).collect();
        Err(Error::file(path, found.join("; ")))
    }

    /// The `[[destination]]` tables together: each names kinds, and no name, spool or kind twice.
    fn check_destinations(&self, path: &Path) -> Result<(), Error> {
        if self.destinations.is_empty() {
            return Ok(());
        }
        if let Some(d) = self.destinations.iter().find(|d| d.record_types.is_empty()) {
            return Err(Error::key(
                path,
                &format!("[[destination]] {} record_types", d.name),
                "is empty: name at least one of cloud, ip, accelerator, storage, energy",
            ));
        }
        accounting::pipeline::SpoolConfig::with_routes(self.routes())
            .map(|_| ())
            .map_err(|e| Error::key(path, "[[destination]]", e.to_string()))
    }

    /// The `[[destination]]` tables as the pipeline's routes (none without them).
    pub(crate) fn routes(&self) -> Vec<accounting::pipeline::Route> {
        self.destinations
            .iter()
            .map(|d| accounting::pipeline::Route {
                name: d.name.clone(),
                spool: d.spool.clone(),
                kinds: d.record_types.clone(),
            })
            .collect()
    }

    /// The first key holding a secret, if any.
    pub fn secret_key(&self) -> Option<&'static str> {
        let auth = self.cloud.auth.as_ref()?;
        [
            (&auth.password, "[cloud.auth] password"),
            (&auth.application_credential_secret, "[cloud.auth] application_credential_secret"),
            (&auth.token, "[cloud.auth] token"),
            (&auth.access_token, "[cloud.auth] access_token"),
            (&auth.client_secret, "[cloud.auth] client_secret"),
        ]
        .into_iter()
        .find_map(|(v, key)| v.is_some().then_some(key))
    }
}

/// Err when `path` (holding `what`) can be read by group or others: the
/// same rule as clouds.yaml's (`openstack::secret::check_private_file`).
pub fn check_private(path: &Path, what: &str) -> Result<(), Error> {
    openstack::secret::check_private_file(path).map_err(|m| Error::file(path, format!("{what}: {m}")))
}

/// `line N: unknown field `key` in [table]` for the dotted path serde_ignored gives
/// (`accounting.extractor`): the line is that of the first `key =` (or `[table.key]`) after the
/// table's header.
fn unknown_key(text: &str, path: &str) -> (usize, String) {
    let (table, key) = path.rsplit_once('.').unwrap_or(("", path));
    let mut in_table = table.is_empty();
    let mut line = None;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if let Some(h) = t.strip_prefix('[').and_then(|h| h.split(']').next()) {
            let h = h.trim_matches(['[', ' ']);
            if h == path || (table.is_empty() && h.split('.').next() == Some(key)) {
                line = Some(i + 1);
                break;
            }
            in_table = h == table;
            continue;
        }
        if in_table && t.split(['=', ' ']).next() == Some(key) {
            line = Some(i + 1);
            break;
        }
    }
    let at = line.map(|n| format!("line {n}: ")).unwrap_or_default();
    let within = if table.is_empty() { String::new() } else { format!(" in [{table}]") };
    (line.unwrap_or(usize::MAX), format!("{at}unknown field `{key}`{within}"))
}
