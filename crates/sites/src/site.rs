//! One catch-all site file (`sites/<NAME>.yaml`) as a validated [`Site`]:
//! the keys of the shared files (`gocdb`, `endpoint`, `protocol`, `auth`,
//! `region`, `images`, `vos`) plus the per-site `accounting` block, read from
//! the YAML tree key by key so every problem is reported with its key path.
//! Serialising a `Site` gives a file this parser reads back to the same value.

use std::path::Path;

use serde::Serialize;
use serde_yaml::{Mapping, Value};

use crate::finding::{Finding, Findings};
use crate::values::{
    AmsHost, DiskFormat, GocdbName, KeystoneUrl, ProjectId, Protocol, Region, SiteName, Topic, VoName,
};

/// One site of the federation, as its file describes it (defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    /// `gocdb`: the GOCDB site name (required). Two files may share it when
    /// they describe two Keystone endpoints of one GOCDB site.
    pub gocdb: GocdbName,
    /// `endpoint`: the Keystone v3 URL (required).
    pub endpoint: KeystoneUrl,
    /// `protocol`: Keystone federation protocol of the `egi.eu` IdP (default `openid`).
    pub protocol: Protocol,
    /// `auth`: how the central deployment logs in (default: the federation's OIDC robot).
    #[serde(skip_serializing_if = "AuthMethod::is_oidc")]
    pub auth: AuthMethod,
    /// `region`: the OpenStack region for every VO, unless a VO names its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    /// `images`: image sync.
    pub images: Images,
    /// `vos`: the VO shares (may be empty).
    pub vos: Vec<VoShare>,
    /// `accounting`: central accounting (default: disabled).
    pub accounting: Accounting,
}

/// `auth`: how a site is logged in to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum AuthMethod {
    /// No `auth` (or `v3oidcclientcredentials` / `v3oidcaccesstoken`): a
    /// Check-in access token exchanged through OS-FEDERATION, scoped to each
    /// VO's `project_id`.
    #[default]
    #[serde(rename = "v3oidcclientcredentials")]
    Oidc,
    /// `v3applicationcredential`: per-VO application credentials kept as
    /// secrets (a secrets directory or Vault), each scoped to its project.
    #[serde(rename = "v3applicationcredential")]
    ApplicationCredential,
}

impl AuthMethod {
    /// True for the OIDC methods (`v3oidcclientcredentials`, `v3oidcaccesstoken`).
    pub fn is_oidc(&self) -> bool {
        *self == AuthMethod::Oidc
    }

    fn parse(s: &str) -> Option<AuthMethod> {
        match s {
            "v3applicationcredential" => Some(AuthMethod::ApplicationCredential),
            "v3oidcclientcredentials" | "v3oidcaccesstoken" => Some(AuthMethod::Oidc),
            _ => None,
        }
    }
}

/// `images`: whether to sync images, and the disk formats the site takes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Images {
    /// `images.sync` (default false).
    pub sync: bool,
    /// `images.formats`: the first is the conversion target; empty: no conversion.
    pub formats: Vec<DiskFormat>,
}

/// One entry of `vos`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoShare {
    /// `vos[].name`: the VO (a name or a FQAN `/vo/...`).
    pub name: VoName,
    /// `vos[].auth`: where the VO's share lives at the site.
    pub auth: VoAuth,
}

/// `vos[].auth`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct VoAuth {
    /// The project the VO uses at the site; absent on application-credential
    /// sites (the credential is scoped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    /// `vos[].auth.region`: the VO's own region; absent: the site's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
}

/// An accounting run type of the central deployment and its default topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunType {
    /// Nova servers (plus Neutron public IPs): cloud records.
    Compute,
    /// Cinder volumes: storage records.
    Block,
}

impl RunType {
    /// Every run type, compute first.
    pub const ALL: [RunType; 2] = [RunType::Compute, RunType::Block];

    /// `compute` or `block`, as in configuration and run names.
    pub fn as_str(self) -> &'static str {
        match self {
            RunType::Compute => "compute",
            RunType::Block => "block",
        }
    }

    /// `eu-egi-cloud-accounting` for compute, `eu-egi-storage-accounting` for block.
    pub fn default_topic(self) -> Topic {
        Topic::known(match self {
            RunType::Compute => "eu-egi-cloud-accounting",
            RunType::Block => "eu-egi-storage-accounting",
        })
    }
}

/// Where each run type's records go (`accounting.destination`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destinations {
    /// The topic of cloud (and public IP) records.
    pub compute: Topic,
    /// The topic of storage records.
    pub block: Topic,
}

impl Default for Destinations {
    fn default() -> Destinations {
        Destinations { compute: RunType::Compute.default_topic(), block: RunType::Block.default_topic() }
    }
}

impl Destinations {
    /// The topic of `run`'s records.
    pub fn topic(&self, run: RunType) -> &Topic {
        match run {
            RunType::Compute => &self.compute,
            RunType::Block => &self.block,
        }
    }
}

/// `accounting`: whether the central deployment runs accounting for the
/// site, and under which name, to which AMS and topics.
///
/// `destination` is written either as one topic, which is the **compute**
/// topic (the central deployment's single SSM destination; block keeps
/// `eu-egi-storage-accounting`), or as a map by run type:
/// `destination: {compute: <topic>, block: <topic>}` (either key may be left out).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Accounting {
    /// `accounting.enabled` (default false).
    pub enabled: bool,
    /// `accounting.site_name`: the APEL site name; default: `gocdb`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_name: Option<SiteName>,
    /// `accounting.ams_host`: default: the central configuration's AMS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ams_host: Option<AmsHost>,
    /// `accounting.destination`: the topic per run type.
    #[serde(rename = "destination")]
    pub destinations: Destinations,
}

impl Site {
    /// The APEL site name the records are published under: `accounting.site_name`, else `gocdb`.
    pub fn accounting_site_name(&self) -> SiteName {
        self.accounting.site_name.clone().unwrap_or_else(|| SiteName::from(&self.gocdb))
    }

    /// The site file this value serialises to (read back by [`parse`] to an equal `Site`).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }
}

impl VoShare {
    /// The VO's region: its own, else the site's.
    pub fn region<'a>(&'a self, site: &'a Site) -> Option<&'a Region> {
        self.auth.region.as_ref().or(site.region.as_ref())
    }
}

/// The site of one file, when it has no error, and everything found in it.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The site; None when a finding is an error.
    pub site: Option<Site>,
    /// Every problem found in the file, errors and warnings.
    pub findings: Vec<Finding>,
}

/// Keys of `vos[].auth` that hold secrets: they belong in the secrets
/// directory or Vault, never in the (public) sites folder.
const SECRET_KEYS: &[&str] = &[
    "application_credential_secret",
    "application_credential_id",
    "password",
    "client_secret",
    "access_token",
    "refresh_token",
    "token",
    "secret",
];

/// Reads one site file's text; `file` names it in the findings.
pub fn parse(text: &str, file: &Path) -> Parsed {
    let mut f = Findings::new(file.to_path_buf());
    let site = match serde_yaml::from_str::<Value>(text) {
        Ok(Value::Null) => {
            f.file_error("empty file: a site file is a mapping with at least gocdb and endpoint");
            None
        }
        Ok(Value::Mapping(m)) => read_site(&m, &mut f),
        Ok(other) => {
            f.file_error(format!("the file is {}, not a mapping of keys (gocdb, endpoint, vos, ...)", kind(&other)));
            None
        }
        Err(e) => {
            let msg = e.to_string();
            // A number YAML cannot hold (a 32-digit project id) fails the whole document;
            // serde_yaml names the key path first.
            let (key, reason) = match msg.split_once(": ") {
                Some((path, rest)) if !path.contains(' ') && rest.starts_with("invalid type: integer") => (
                    Some(path.to_string()),
                    format!("a number too large for YAML, not the text as written: put it in quotes ({rest})"),
                ),
                _ => (
                    e.location().map(|l| format!("line {} column {}", l.line(), l.column())),
                    format!("not valid YAML: {msg}"),
                ),
            };
            f.list.push(Finding { severity: crate::Severity::Error, file: file.to_path_buf(), key, reason });
            None
        }
    };
    let site = if f.has_errors() { None } else { site };
    Parsed { site, findings: f.list }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The keys of a mapping as text, each with its value; a key that is not
/// text is reported (and skipped).
fn entries<'a>(m: &'a Mapping, path: &str, f: &mut Findings) -> Vec<(String, &'a Value)> {
    let mut out = Vec::new();
    for (k, v) in m {
        match k {
            Value::String(s) => out.push((s.clone(), v)),
            Value::Number(n) => out.push((n.to_string(), v)),
            Value::Bool(b) => out.push((b.to_string(), v)),
            other => f.warn(join(path, "?"), format!("a key that is {}: ignored", kind(other))),
        }
    }
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn unknown(f: &mut Findings, key: &str, known: &[&str]) {
    f.warn(key, format!("unknown key (ignored; known here: {})", known.join(", ")));
}

/// A text value; `None` (and an error) for anything else. Null is `None` without an error.
fn text(v: &Value, key: &str, f: &mut Findings) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        Value::Number(n) => {
            f.error(key, format!("{n} is a number in YAML, not the text as written: put it in quotes"));
            None
        }
        other => {
            f.error(key, format!("expected text, found {}", kind(other)));
            None
        }
    }
}

/// A required text value checked by `check`.
fn checked<T>(
    v: Option<&Value>,
    key: &str,
    f: &mut Findings,
    check: impl Fn(&str) -> Result<T, crate::InvalidValue>,
) -> Option<T> {
    let s = text(v?, key, f)?;
    match check(&s) {
        Ok(t) => Some(t),
        Err(e) => {
            f.error(key, e.reason);
            None
        }
    }
}

fn boolean(v: &Value, key: &str, default: bool, f: &mut Findings) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Null => default,
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "yes" | "on" | "true" | "y" => {
                f.warn(key, format!("{s:?} read as true (a YAML 1.1 boolean): write true"));
                true
            }
            "no" | "off" | "false" | "n" => {
                f.warn(key, format!("{s:?} read as false (a YAML 1.1 boolean): write false"));
                false
            }
            _ => {
                f.error(key, format!("{s:?}: expected true or false"));
                default
            }
        },
        other => {
            f.error(key, format!("expected true or false, found {}", kind(other)));
            default
        }
    }
}

const SITE_KEYS: &[&str] = &["gocdb", "endpoint", "protocol", "auth", "region", "images", "vos", "accounting"];

fn read_site(m: &Mapping, f: &mut Findings) -> Option<Site> {
    let mut gocdb_v = None;
    let mut endpoint_v = None;
    let mut protocol = Protocol::openid();
    let mut auth: Option<AuthMethod> = None;
    let mut auth_type: Option<AuthMethod> = None;
    let mut region = None;
    let mut images = Images::default();
    let mut vos_v = None;
    let mut accounting = Accounting::default();
    for (k, v) in entries(m, "", f) {
        match k.as_str() {
            "gocdb" => gocdb_v = Some(v),
            "endpoint" => endpoint_v = Some(v),
            "protocol" => {
                if let Some(p) = checked(Some(v), "protocol", f, Protocol::new) {
                    protocol = p;
                }
            }
            "auth" | "auth_type" => {
                let Some(s) = text(v, &k, f) else { continue };
                match AuthMethod::parse(&s) {
                    Some(a) if k == "auth" => auth = Some(a),
                    Some(a) => {
                        f.warn("auth_type", "the older name of `auth` (schema.json): write `auth:`");
                        auth_type = Some(a);
                    }
                    None => f.error(
                        k.as_str(),
                        format!(
                            "{s:?} is not an auth method the central deployment uses: \
                             v3applicationcredential, or no `auth` for the federation's OIDC login"
                        ),
                    ),
                }
            }
            "region" => region = checked(Some(v), "region", f, Region::new),
            "images" => images = read_images(v, f),
            "vos" => vos_v = Some(v),
            "accounting" => accounting = read_accounting(v, f),
            _ => unknown(f, &k, SITE_KEYS),
        }
    }
    if let (Some(a), Some(b)) = (auth, auth_type)
        && a != b
    {
        f.error("auth_type", "says another auth method than `auth`: keep only `auth`");
    }
    let auth = auth.or(auth_type).unwrap_or_default();
    let gocdb = match gocdb_v {
        None | Some(Value::Null) => {
            f.error("gocdb", "missing: the GOCDB site name is required");
            None
        }
        v => checked(v, "gocdb", f, GocdbName::new),
    };
    let endpoint = match endpoint_v {
        None | Some(Value::Null) => {
            f.error("endpoint", "missing: the Keystone v3 URL is required");
            None
        }
        v => checked(v, "endpoint", f, KeystoneUrl::new),
    };
    if endpoint.as_ref().is_some_and(KeystoneUrl::is_plain_http) {
        f.warn("endpoint", "plain http: tokens and credentials would travel unencrypted");
    }
    let vos = read_vos(vos_v, auth, f);
    Some(Site { gocdb: gocdb?, endpoint: endpoint?, protocol, auth, region, images, vos, accounting })
}

fn read_images(v: &Value, f: &mut Findings) -> Images {
    let mut images = Images::default();
    let m = match v {
        Value::Null => return images,
        Value::Mapping(m) => m,
        other => {
            f.error("images", format!("expected a mapping (sync, formats), found {}", kind(other)));
            return images;
        }
    };
    for (k, v) in entries(m, "images", f) {
        match k.as_str() {
            "sync" => images.sync = boolean(v, "images.sync", false, f),
            "formats" => match v {
                Value::Null => {}
                Value::Sequence(list) => {
                    for (i, item) in list.iter().enumerate() {
                        let key = format!("images.formats[{i}]");
                        if let Some(fmt) = checked(Some(item), &key, f, DiskFormat::new) {
                            if images.formats.contains(&fmt) {
                                f.warn(key, format!("{fmt} is listed twice"));
                            } else {
                                images.formats.push(fmt);
                            }
                        }
                    }
                }
                other => f.error("images.formats", format!("expected a list of disk formats, found {}", kind(other))),
            },
            _ => unknown(f, &format!("images.{k}"), &["sync", "formats"]),
        }
    }
    images
}

fn read_vos(v: Option<&Value>, auth: AuthMethod, f: &mut Findings) -> Vec<VoShare> {
    let list = match v {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Sequence(list)) => list,
        Some(other) => {
            f.error("vos", format!("expected a list of VOs (name, auth), found {}", kind(other)));
            return Vec::new();
        }
    };
    if list.is_empty() {
        f.warn("vos", "no VO: nothing to publish, sync or account for this site");
    }
    let mut out: Vec<(usize, VoShare)> = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let base = format!("vos[{i}]");
        let Value::Mapping(m) = item else {
            f.error(base, format!("expected a mapping (name, auth), found {}", kind(item)));
            continue;
        };
        let mut name = None;
        let mut name_seen = false;
        let mut vo_auth = VoAuth::default();
        let mut pid_written = false;
        for (k, v) in entries(m, &base, f) {
            let key = format!("{base}.{k}");
            match k.as_str() {
                "name" => {
                    name_seen = true;
                    name = checked(Some(v), &key, f, VoName::new);
                    if matches!(v, Value::Null) {
                        f.error(key, "empty: the VO name is required");
                    }
                }
                "auth" => {
                    pid_written = v.get("project_id").is_some_and(|p| !p.is_null());
                    vo_auth = read_vo_auth(v, &key, f);
                }
                _ => unknown(f, &key, &["name", "auth"]),
            }
        }
        if !name_seen {
            f.error(format!("{base}.name"), "missing: every VO needs its name");
        }
        let Some(name) = name else { continue };
        if let Some((j, _)) = out.iter().find(|(_, s)| s.name == name) {
            f.error(format!("{base}.name"), format!("VO {name} is listed twice (also vos[{j}])"));
            continue;
        }
        if let Some(pid) = &vo_auth.project_id
            && let Some((j, other)) = out.iter().find(|(_, s)| s.auth.project_id.as_ref() == Some(pid))
        {
            f.error(
                format!("{base}.auth.project_id"),
                format!(
                    "project {pid} is also the project of vos[{j}] ({}): accounting could not tell the two VOs apart",
                    other.name
                ),
            );
        }
        if !pid_written && auth == AuthMethod::Oidc {
            f.warn(
                format!("{base}.auth.project_id"),
                format!("missing: the federation's OIDC login has no project to scope to for VO {name}"),
            );
        }
        out.push((i, VoShare { name, auth: vo_auth }));
    }
    out.into_iter().map(|(_, s)| s).collect()
}

fn read_vo_auth(v: &Value, path: &str, f: &mut Findings) -> VoAuth {
    let mut a = VoAuth::default();
    let m = match v {
        Value::Null => return a,
        Value::Mapping(m) => m,
        other => {
            f.error(path, format!("expected a mapping (project_id, region), found {}", kind(other)));
            return a;
        }
    };
    for (k, v) in entries(m, path, f) {
        let key = format!("{path}.{k}");
        match k.as_str() {
            "project_id" => a.project_id = checked(Some(v), &key, f, ProjectId::new),
            "region" => a.region = checked(Some(v), &key, f, Region::new),
            s if SECRET_KEYS.contains(&s) => {
                f.error(key, "a secret in the sites folder, which is public: keep it in the secrets directory or Vault")
            }
            _ => unknown(f, &key, &["project_id", "region"]),
        }
    }
    a
}

fn read_accounting(v: &Value, f: &mut Findings) -> Accounting {
    let mut a = Accounting::default();
    let m = match v {
        Value::Null => return a,
        Value::Mapping(m) => m,
        other => {
            f.error(
                "accounting",
                format!("expected a mapping (enabled, site_name, ams_host, destination), found {}", kind(other)),
            );
            return a;
        }
    };
    for (k, v) in entries(m, "accounting", f) {
        let key = format!("accounting.{k}");
        match k.as_str() {
            "enabled" => a.enabled = boolean(v, &key, false, f),
            "site_name" => a.site_name = checked(Some(v), &key, f, SiteName::new),
            "ams_host" => a.ams_host = checked(Some(v), &key, f, AmsHost::new),
            "destination" => match v {
                Value::Null => {}
                Value::Mapping(dm) => {
                    for (run, t) in entries(dm, &key, f) {
                        let tkey = format!("{key}.{run}");
                        let Some(run_type) = RunType::ALL.into_iter().find(|r| r.as_str() == run) else {
                            f.error(tkey, "unknown run type: expected compute or block");
                            continue;
                        };
                        if let Some(topic) = checked(Some(t), &tkey, f, Topic::new) {
                            match run_type {
                                RunType::Compute => a.destinations.compute = topic,
                                RunType::Block => a.destinations.block = topic,
                            }
                        }
                    }
                }
                _ => {
                    if let Some(topic) = checked(Some(v), &key, f, Topic::new) {
                        a.destinations.compute = topic;
                    }
                }
            },
            _ => unknown(f, &key, &["enabled", "site_name", "ams_host", "destination"]),
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn p(text: &str) -> Parsed {
        parse(text, Path::new("sites/X.yaml"))
    }

    fn lines(parsed: &Parsed) -> Vec<String> {
        parsed.findings.iter().map(ToString::to_string).collect()
    }

    const IFCA: &str = "---\ngocdb: IFCA-LCG2\nendpoint: https://api.cloud.ifca.es:5000/v3/\nimages:\n  sync: true\n  formats:\n    - qcow2\n    - raw\nvos:\n  - name: ops\n    auth:\n      project_id: a372c1e2fba040e58fd0cb524a3ccd34\n";

    #[test]
    fn a_real_site_file_reads_with_defaults() {
        let r = p(IFCA);
        assert!(r.findings.is_empty(), "{:?}", lines(&r));
        let s = r.site.unwrap();
        assert_eq!(s.gocdb.as_str(), "IFCA-LCG2");
        assert_eq!(s.protocol.as_str(), "openid");
        assert_eq!(s.auth, AuthMethod::Oidc);
        assert_eq!(s.images.formats, vec![DiskFormat::Qcow2, DiskFormat::Raw]);
        assert!(!s.accounting.enabled);
        assert_eq!(s.accounting_site_name().as_str(), "IFCA-LCG2");
        assert_eq!(s.accounting.destinations.topic(RunType::Compute).as_str(), "eu-egi-cloud-accounting");
        assert_eq!(s.accounting.destinations.topic(RunType::Block).as_str(), "eu-egi-storage-accounting");
    }

    #[test]
    fn application_credential_sites_need_no_project_id() {
        let r = p(
            "gocdb: CREODIAS\nendpoint: https://keystone.cloudferro.com:5000/v3\nauth: v3applicationcredential\nvos:\n  - name: ops\n    auth:\n      region: \"WAW4-1\"\n",
        );
        assert!(r.findings.is_empty(), "{:?}", lines(&r));
        let s = r.site.unwrap();
        assert_eq!(s.auth, AuthMethod::ApplicationCredential);
        assert_eq!(s.vos[0].region(&s).unwrap().as_str(), "WAW4-1");
        // The same VO without a project on an OIDC site is a warning.
        let r = p("gocdb: X\nendpoint: https://k/v3\nvos:\n  - name: ops\n    auth: {}\n");
        assert_eq!(
            lines(&r),
            [
                "warning: sites/X.yaml: vos[0].auth.project_id: missing: the federation's OIDC login has no project to scope to for VO ops"
            ]
        );
        assert!(r.site.is_some());
    }

    #[test]
    fn unknown_keys_are_warnings_with_their_path() {
        let r = p(&format!(
            "{IFCA}  - name: dteam\n    auth:\n      projet_id: 5eb8959a799240a98f4f303f5fbd80be\n    comment: x\nimage:\n  sync: true\naccounting:\n  enable: true\n"
        ));
        let l = lines(&r);
        assert!(l.iter().any(|x| x.starts_with("warning: sites/X.yaml: vos[1].auth.projet_id: unknown key")), "{l:?}");
        assert!(l.iter().any(|x| x.starts_with("warning: sites/X.yaml: vos[1].comment: unknown key")), "{l:?}");
        assert!(l.iter().any(|x| x.starts_with("warning: sites/X.yaml: image: unknown key")), "{l:?}");
        assert!(l.iter().any(|x| x.starts_with("warning: sites/X.yaml: accounting.enable: unknown key")), "{l:?}");
        assert!(r.findings.iter().all(|f| !f.is_error()));
        assert!(r.site.is_some());
    }

    #[test]
    fn broken_values_are_errors_with_key_and_reason() {
        let cases = [
            (
                "gocdb: X\nendpoint: https://k/v3\nvos:\n  - name: ops\n    auth:\n      project_id: 12ab\n",
                "vos[0].auth.project_id",
                "not a Keystone project id",
            ),
            ("endpoint: https://k/v3\n", "gocdb", "missing"),
            ("gocdb: X\n", "endpoint", "missing"),
            ("gocdb: X\nendpoint: https://k:5000/v2.0\n", "endpoint", "does not end in /v3"),
            ("gocdb: X\nendpoint: k:5000/v3\n", "endpoint", "expected https"),
            (
                "gocdb: X\nendpoint: https://k/v3\nimages:\n  formats: [qcow2, ova]\n",
                "images.formats[1]",
                "container format",
            ),
            ("gocdb: X\nendpoint: https://k/v3\nvos:\n  - name: ops\n  - name: ops\n", "vos[1].name", "listed twice"),
            ("gocdb: X\nendpoint: https://k/v3\nvos:\n  - auth: {}\n", "vos[0].name", "missing"),
            ("gocdb: X\nendpoint: https://k/v3\nprotocol: open id\n", "protocol", "not a protocol name"),
            ("gocdb: X\nendpoint: https://k/v3\nauth: v3password\n", "auth", "not an auth method"),
            ("gocdb: X\nendpoint: https://k/v3\nimages:\n  sync: maybe\n", "images.sync", "expected true or false"),
            (
                "gocdb: X\nendpoint: https://k/v3\nvos:\n  - name: ops\n    auth:\n      project_id: 12345678901234567890123456789012\n",
                "vos[0].auth.project_id",
                "put it in quotes",
            ),
            (
                "gocdb: X\nendpoint: https://k/v3\nvos:\n  - name: a\n    auth: {project_id: a372c1e2fba040e58fd0cb524a3ccd34}\n  - name: b\n    auth: {project_id: a372c1e2fba040e58fd0cb524a3ccd34}\n",
                "vos[1].auth.project_id",
                "also the project of vos[0] (a)",
            ),
            (
                "gocdb: X\nendpoint: https://k/v3\nvos:\n  - name: a\n    auth: {application_credential_secret: s3cret}\n",
                "vos[0].auth.application_credential_secret",
                "a secret",
            ),
            (
                "gocdb: X\nendpoint: https://k/v3\naccounting:\n  destination: {storage: x}\n",
                "accounting.destination.storage",
                "unknown run type",
            ),
            (
                "gocdb: X\nendpoint: https://k/v3\naccounting:\n  ams_host: https://msg.argo.grnet.gr\n",
                "accounting.ams_host",
                "not a URL",
            ),
        ];
        for (text, key, why) in cases {
            let r = p(text);
            assert!(r.site.is_none(), "{text}");
            let hit = r.findings.iter().find(|f| f.is_error() && f.key.as_deref() == Some(key));
            assert!(hit.is_some_and(|f| f.reason.contains(why)), "{text}\n{:?}", lines(&r));
        }
    }

    #[test]
    fn whole_file_problems() {
        let r = p("gocdb: X\n  endpoint: [\n");
        assert!(r.site.is_none());
        assert!(r.findings[0].reason.starts_with("not valid YAML"), "{:?}", lines(&r));
        assert!(r.findings[0].key.as_deref().unwrap().starts_with("line "));
        assert!(p("").findings[0].reason.starts_with("empty file"));
        assert!(p("- a\n").findings[0].reason.contains("not a mapping"));
        assert!(p("gocdb: X\ngocdb: Y\nendpoint: https://k/v3\n").findings[0].reason.contains("duplicate"));
    }

    #[test]
    fn accounting_block_destination_as_topic_or_map() {
        let base = "gocdb: X-SITE\nendpoint: https://k/v3\nvos: []\n";
        let r = p(&format!(
            "{base}accounting:\n  enabled: true\n  site_name: X-CLOUD\n  ams_host: msg-devel.argo.grnet.gr\n  destination: eu-egi-cloud-accounting-devel\n"
        ));
        let s = r.site.unwrap();
        assert!(s.accounting.enabled);
        assert_eq!(s.accounting_site_name().as_str(), "X-CLOUD");
        assert_eq!(s.accounting.ams_host.as_ref().unwrap().as_str(), "msg-devel.argo.grnet.gr");
        assert_eq!(s.accounting.destinations.compute.as_str(), "eu-egi-cloud-accounting-devel");
        assert_eq!(s.accounting.destinations.block.as_str(), "eu-egi-storage-accounting");
        let r = p(&format!("{base}accounting:\n  enabled: yes\n  destination:\n    block: storage-devel\n"));
        assert_eq!(lines(&r).len(), 2, "{:?}", lines(&r)); // vos: [] and the YAML 1.1 boolean
        let s = r.site.unwrap();
        assert!(s.accounting.enabled);
        assert_eq!(s.accounting.destinations.compute.as_str(), "eu-egi-cloud-accounting");
        assert_eq!(s.accounting.destinations.block.as_str(), "storage-devel");
    }

    #[test]
    fn the_default_topics_are_valid_topics() {
        for run in RunType::ALL {
            assert_eq!(Topic::new(run.default_topic().as_str()).unwrap(), run.default_topic());
        }
    }

    #[test]
    fn a_site_written_out_reads_back_equal() {
        let s = p(IFCA).site.unwrap();
        let again = parse(&s.to_yaml(), &PathBuf::from("again.yaml"));
        assert!(again.findings.is_empty(), "{}\n{:?}", s.to_yaml(), again.findings);
        assert_eq!(again.site.unwrap(), s);
    }
}
