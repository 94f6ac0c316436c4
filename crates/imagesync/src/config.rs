//! Image sync configuration: the catch-all `sites/<SITE>.yaml` (`images.sync`,
//! `images.formats`, `vos[].name` / `vos[].auth.project_id`) merged with a
//! `fedsite.toml` `[images]` section (registry, HEPiX lists, cache, tag).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::SyncError;

/// Everything one sync needs to know.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// `images.sync` of the site file (false: nothing is done).
    pub enabled: bool,
    /// Disk formats the site accepts; the first is the conversion target.
    /// Empty: no conversion.
    pub formats: Vec<String>,
    /// VO name → project id the images are shared with.
    pub vos: BTreeMap<String, String>,
    /// The Glance tag marking images this tool manages.
    pub tag: String,
    /// Prefix of every image name (atrope's global `prefix`).
    pub name_prefix: String,
    /// Local cache directory (downloads by digest, converted variants).
    pub cache_dir: PathBuf,
    pub registry: Option<RegistryConfig>,
    pub hepix: Vec<HepixConfig>,
    /// `qemu-img` program.
    pub qemu_img: PathBuf,
    /// Draw progress bars on stderr (when it is a terminal).
    pub progress: bool,
    /// VO name → the clouds.yaml cloud with that VO's own credentials (`images.vo_clouds`);
    /// the binary turns them into the sessions of `Syncer::with_vo_sessions`.
    pub vo_clouds: BTreeMap<String, String>,
}

/// What kind of registry a source is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistryKind {
    /// A Harbor (registry.egi.eu): listed through its REST API v2.0, pulled
    /// with tokens from its token service.
    #[default]
    Harbor,
    /// A plain OCI registry: listed through `/v2/_catalog` and `tags/list`.
    Oci,
}

/// A password or token: never shown by `Debug` (nor logged).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Who sees a source's images in Glance (per source; `shared` by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// One image, owned by the sync's project, shared with each of its VOs' projects
    /// (membership, accepted in the VO's project).
    #[default]
    Shared,
    /// One image, visible to every project that asks for it (Glance `community`).
    Community,
    /// One image, visible to every project (Glance `public`; Glance's policy usually wants
    /// an admin for it).
    Public,
    /// One image per VO, uploaded into the VO's own project with the VO's credentials, and
    /// private there (atrope's per-project Glance sections). Needs each VO's credentials.
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Shared => "shared",
            Visibility::Community => "community",
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }
}

/// An OCI registry source: one shared project plus one project per VO.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL, e.g. `https://registry.egi.eu` (`/v2/...` is appended).
    pub url: String,
    /// `harbor` (default) or `oci`.
    #[serde(default)]
    pub kind: RegistryKind,
    /// Harbor's REST API (default `<url>/api/v2.0`).
    #[serde(default)]
    pub api_url: Option<String>,
    /// The host images are referenced by (default: the URL's host[:port];
    /// atrope's `registry_host`).
    #[serde(default, alias = "registry_host")]
    pub host: Option<String>,
    /// The Harbor project shared with every VO (atrope's `project`).
    #[serde(default = "default_shared_project", alias = "project")]
    pub shared_project: String,
    /// Also take the project named like each VO (shared with that VO only).
    #[serde(default = "yes")]
    pub vo_projects: bool,
    /// Tags considered (atrope/catch-all: tags without `-`); empty = any tag.
    #[serde(default = "default_tag_pattern")]
    pub tag_pattern: String,
    /// Harbor: tags or artifact digests to take (atrope's
    /// `subscribed_images`); when set, `tag_pattern` is not used.
    #[serde(default)]
    pub subscribed_images: Vec<String>,
    /// Only these repositories (`project/name`); empty = all.
    #[serde(default)]
    pub repositories: Vec<String>,
    /// HTTP Basic user (a robot account `robot$…`, or a user with its CLI
    /// secret; atrope's `auth_user`).
    #[serde(default, alias = "auth_user")]
    pub username: Option<String>,
    /// The password itself (prefer `password_file` or `password_env`;
    /// atrope's `auth_password`).
    #[serde(default, alias = "auth_password")]
    pub password: Option<Secret>,
    /// A file holding the password (trailing newline dropped).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Harbor REST API `page_size` (1..=100; atrope's default 50).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Source name stored in `image_list` (default `registry`).
    #[serde(default = "default_registry_name")]
    pub name: String,
    /// Who sees the images ([`Visibility`]).
    #[serde(default)]
    pub visibility: Visibility,
}

impl RegistryConfig {
    /// A Harbor source at `url` with every other key at its default.
    pub fn new(url: &str) -> RegistryConfig {
        RegistryConfig {
            url: url.into(),
            kind: RegistryKind::default(),
            api_url: None,
            host: None,
            shared_project: default_shared_project(),
            vo_projects: true,
            tag_pattern: default_tag_pattern(),
            subscribed_images: vec![],
            repositories: vec![],
            username: None,
            password: None,
            password_file: None,
            password_env: None,
            page_size: default_page_size(),
            name: default_registry_name(),
            visibility: Visibility::default(),
        }
    }

    /// The REST API base (`api_url`, or `<url>/api/v2.0`), without a trailing `/`.
    pub fn api_base(&self) -> String {
        match &self.api_url {
            Some(a) => a.trim_end_matches('/').to_string(),
            None => format!("{}/api/v2.0", self.url.trim_end_matches('/')),
        }
    }

    /// Reads `password_file` / `password_env` into `password` and clears
    /// them (at most one of the three may be set; a user needs a password
    /// and the reverse).
    pub fn resolve_password(&mut self) -> Result<(), SyncError> {
        let set = [self.password.is_some(), self.password_file.is_some(), self.password_env.is_some()];
        if set.iter().filter(|s| **s).count() > 1 {
            return Err(SyncError::Config(
                "images.registry: set only one of password, password_file and password_env".into(),
            ));
        }
        if let Some(f) = self.password_file.take() {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| SyncError::Config(format!("images.registry.password_file {}: {e}", f.display())))?;
            self.password = Some(Secret::new(text.trim_end_matches(['\n', '\r'])));
        } else if let Some(var) = self.password_env.take() {
            let v = std::env::var(&var)
                .map_err(|e| SyncError::Config(format!("images.registry.password_env {var}: {e}")))?;
            self.password = Some(Secret::new(v));
        }
        match (&self.username, &self.password) {
            (Some(_), None) => Err(SyncError::Config("images.registry: username without a password".into())),
            (None, Some(_)) => Err(SyncError::Config("images.registry: a password without username".into())),
            _ => Ok(()),
        }
    }
}

/// A signed HEPiX image list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HepixConfig {
    /// Source name stored in `image_list`.
    pub name: String,
    /// `https://...` or a local file path.
    pub url: String,
    /// Trusted CAs: an OpenSSL hashed directory or a PEM file.
    #[serde(default = "default_ca_dir")]
    pub ca_dir: PathBuf,
    /// Expected signer DN (`/DC=../CN=..`), also required in `hv:endorser`.
    pub endorser_dn: String,
    /// Expected signer issuer DN (`hv:ca`), when pinned.
    #[serde(default)]
    pub endorser_ca: Option<String>,
    /// VOs the images are shared with (default: the list's `ad:vo`, else all VOs).
    #[serde(default)]
    pub vos: Vec<String>,
    /// Subscribed image identifiers (`dc:identifier`); empty = all.
    #[serde(default)]
    pub images: Vec<String>,
    /// Who sees the images ([`Visibility`]).
    #[serde(default)]
    pub visibility: Visibility,
}

fn default_shared_project() -> String {
    "egi_vm_images".into()
}
fn default_tag_pattern() -> String {
    "^[^-]*$".into()
}
fn default_page_size() -> u32 {
    50
}
fn default_registry_name() -> String {
    "registry".into()
}
fn default_ca_dir() -> PathBuf {
    PathBuf::from("/etc/grid-security/certificates")
}
fn default_tag() -> String {
    "fedsite".into()
}
fn default_cache() -> PathBuf {
    PathBuf::from("/var/cache/fedsite/images")
}
fn default_qemu_img() -> PathBuf {
    PathBuf::from("qemu-img")
}
fn yes() -> bool {
    true
}

/// The `[images]` section of `fedsite.toml` (every key optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesToml {
    pub sync: Option<bool>,
    pub formats: Option<Vec<String>>,
    pub tag: Option<String>,
    pub name_prefix: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub qemu_img: Option<PathBuf>,
    /// VO name → project id (overrides nothing the site file sets).
    #[serde(default)]
    pub vos: BTreeMap<String, String>,
    /// VO name → the clouds.yaml cloud holding that VO's own credentials (e.g. an
    /// application credential of the VO's project): used to accept shares and, for
    /// `visibility = "private"` sources, to upload into the VO's project. Where there is
    /// none, the sync's own credentials are rescoped to the VO's project.
    #[serde(default)]
    pub vo_clouds: BTreeMap<String, String>,
    pub registry: Option<RegistryConfig>,
    #[serde(default)]
    pub hepix: Vec<HepixConfig>,
}

#[derive(Deserialize)]
struct TomlFile {
    #[serde(default)]
    images: Option<ImagesToml>,
}

/// What the image sync reads of a catch-all site file.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SiteImages {
    #[serde(default)]
    pub sync: bool,
    #[serde(default)]
    pub formats: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct SiteVoAuth {
    #[serde(default)]
    project_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct SiteVo {
    name: String,
    #[serde(default)]
    auth: Option<SiteVoAuth>,
}

#[derive(Debug, Clone, Deserialize)]
struct SiteFile {
    #[serde(default)]
    images: Option<SiteImages>,
    #[serde(default)]
    vos: Vec<SiteVo>,
}

/// VO name → the project id the VO uses at the site.
pub type VoProjects = BTreeMap<String, String>;

/// The `images` and VO mapping of a site file.
pub fn read_site(path: &Path) -> Result<(SiteImages, VoProjects), SyncError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| SyncError::Config(format!("reading {}: {e}", path.display())))?;
    let site: SiteFile =
        serde_yaml::from_str(&text).map_err(|e| SyncError::Config(format!("{}: {e}", path.display())))?;
    let mut vos = BTreeMap::new();
    for (i, vo) in site.vos.iter().enumerate() {
        match vo.auth.as_ref().and_then(|a| a.project_id.clone()) {
            Some(p) if !p.is_empty() => {
                vos.insert(vo.name.clone(), p);
            }
            _ => {
                return Err(SyncError::Config(format!(
                    "{}: vos[{i}] ({}) has no auth.project_id",
                    path.display(),
                    vo.name
                )));
            }
        }
    }
    Ok((site.images.unwrap_or_default(), vos))
}

/// The `[images]` section of a fedsite.toml (None when the file has none).
pub fn read_toml(path: &Path) -> Result<Option<ImagesToml>, SyncError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| SyncError::Config(format!("reading {}: {e}", path.display())))?;
    parse_toml(&text, &path.display().to_string())
}

pub fn parse_toml(text: &str, origin: &str) -> Result<Option<ImagesToml>, SyncError> {
    let f: TomlFile = toml::from_str(text).map_err(|e| SyncError::Config(format!("{origin}: {e}")))?;
    Ok(f.images)
}

impl SyncConfig {
    /// The visibility of the images of source `source` (its `name`); `shared` for a source
    /// the configuration does not name.
    pub fn visibility_of(&self, source: &str) -> Visibility {
        if let Some(r) = self.registry.as_ref().filter(|r| r.name == source) {
            return r.visibility;
        }
        self.hepix.iter().find(|h| h.name == source).map(|h| h.visibility).unwrap_or_default()
    }

    /// Merges a site file's `images` + VOs with the TOML section: the site
    /// file wins for `sync`, `formats` (when it sets them) and VO projects.
    pub fn build(
        site: Option<(SiteImages, BTreeMap<String, String>)>,
        toml: Option<ImagesToml>,
    ) -> Result<SyncConfig, SyncError> {
        let t = toml.unwrap_or_default();
        let (enabled, formats, mut vos) = match site {
            Some((img, vos)) => {
                let formats = if img.formats.is_empty() { t.formats.clone().unwrap_or_default() } else { img.formats };
                (img.sync, formats, vos)
            }
            None => (t.sync.unwrap_or(false), t.formats.clone().unwrap_or_default(), BTreeMap::new()),
        };
        for (vo, p) in &t.vos {
            vos.entry(vo.clone()).or_insert_with(|| p.clone());
        }
        let formats: Vec<String> = formats.iter().map(|f| f.trim().to_ascii_lowercase()).collect();
        if let Some(bad) = formats.iter().find(|f| f.is_empty() || !f.chars().all(|c| c.is_ascii_alphanumeric())) {
            return Err(SyncError::Config(format!("images.formats: {bad:?} is not a disk format name")));
        }
        let mut registry = t.registry;
        if let Some(r) = &mut registry {
            r.resolve_password()?;
            if !(1..=100).contains(&r.page_size) {
                return Err(SyncError::Config(format!("images.registry.page_size {}: not in 1..=100", r.page_size)));
            }
            url::Url::parse(&r.api_base())
                .map_err(|e| SyncError::Config(format!("images.registry.api_url {:?}: {e}", r.api_base())))?;
            regex::Regex::new(&r.tag_pattern)
                .map_err(|e| SyncError::Config(format!("images.registry.tag_pattern: {e}")))?;
            url::Url::parse(&r.url).map_err(|e| SyncError::Config(format!("images.registry.url {:?}: {e}", r.url)))?;
        }
        if let Some(vo) = t.vo_clouds.keys().find(|v| !vos.contains_key(*v)) {
            return Err(SyncError::Config(format!(
                "images.vo_clouds: VO {vo} is not one of the site's VOs ({})",
                vos.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(SyncConfig {
            enabled,
            formats,
            vos,
            tag: t.tag.unwrap_or_else(default_tag),
            name_prefix: t.name_prefix.unwrap_or_default(),
            cache_dir: t.cache_dir.unwrap_or_else(default_cache),
            registry,
            hepix: t.hepix,
            qemu_img: t.qemu_img.unwrap_or_else(default_qemu_img),
            progress: true,
            vo_clouds: t.vo_clouds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_per_source_and_vo_clouds_only_for_the_sites_vos() {
        let toml = "[images]\nvos = { ops = \"p1\" }\n[images.vo_clouds]\nops = \"c-ops\"\n\
                    [images.registry]\nurl = \"https://r.example\"\nvisibility = \"private\"\n";
        let c = SyncConfig::build(None, parse_toml(toml, "t").unwrap()).unwrap();
        assert_eq!(c.visibility_of("registry"), Visibility::Private);
        assert_eq!(c.visibility_of("other"), Visibility::Shared);
        assert_eq!(c.vo_clouds.get("ops").map(String::as_str), Some("c-ops"));
        let bad = toml.replace("ops = \"c-ops\"", "biomed = \"c\"");
        let e = SyncConfig::build(None, parse_toml(&bad, "t").unwrap()).unwrap_err().to_string();
        assert!(e.contains("images.vo_clouds: VO biomed is not one of the site's VOs"), "{e}");
        let e = parse_toml(&toml.replace("\"private\"", "\"secret\""), "t").unwrap_err().to_string();
        assert!(e.contains("visibility"), "{e}");
    }

    #[test]
    fn site_file_wins_for_formats_and_vos() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("SITE.yaml");
        std::fs::write(
            &p,
            "gocdb: X\nendpoint: https://k:5000/v3/\nimages:\n  sync: true\n  formats: [RAW, qcow2]\nvos:\n  - name: ops\n    auth:\n      project_id: p1\n",
        )
        .unwrap();
        let site = read_site(&p).unwrap();
        let toml = parse_toml(
            "[images]\nformats = [\"qcow2\"]\ntag = \"t\"\n[images.vos]\nops = \"other\"\nextra = \"p2\"\n[images.registry]\nurl = \"http://r:5000\"\n",
            "t",
        )
        .unwrap();
        let c = SyncConfig::build(Some(site), toml).unwrap();
        assert!(c.enabled);
        assert_eq!(c.formats, vec!["raw", "qcow2"]);
        assert_eq!(c.vos.get("ops").map(String::as_str), Some("p1"));
        assert_eq!(c.vos.get("extra").map(String::as_str), Some("p2"));
        assert_eq!(c.tag, "t");
        assert_eq!(c.registry.unwrap().tag_pattern, "^[^-]*$");
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("S.yaml");
        std::fs::write(&p, "vos:\n  - name: ops\n").unwrap();
        let e = read_site(&p).unwrap_err().to_string();
        assert!(e.contains("S.yaml") && e.contains("vos[0] (ops) has no auth.project_id"), "{e}");
        let e = parse_toml("[images]\nbogus = 1\n", "fedsite.toml").unwrap_err().to_string();
        assert!(e.contains("fedsite.toml") && e.contains("bogus"), "{e}");
        let t = parse_toml("[images.registry]\nurl = \"http://r\"\ntag_pattern = \"(\"\n", "f").unwrap();
        let e = SyncConfig::build(None, t).unwrap_err().to_string();
        assert!(e.contains("tag_pattern"), "{e}");
    }

    #[test]
    fn harbor_password_from_a_file_or_the_environment_never_shows() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "from-file\n").unwrap();
        let toml = format!(
            "[images.registry]\nurl = \"https://r\"\nproject = \"p\"\nauth_user = \"robot$x\"\npassword_file = \"{}\"\n",
            f.display()
        );
        let c = SyncConfig::build(None, parse_toml(&toml, "t").unwrap()).unwrap();
        let r = c.registry.as_ref().unwrap();
        assert_eq!(r.kind, RegistryKind::Harbor);
        assert_eq!(r.shared_project, "p");
        assert_eq!(r.api_base(), "https://r/api/v2.0");
        assert_eq!(r.username.as_deref(), Some("robot$x"));
        assert_eq!(r.password.as_ref().map(Secret::expose), Some("from-file"));
        assert!(!format!("{c:?}").contains("from-file"), "{c:?}");
        // A variable nothing sets.
        let var = "FEDSITE_TEST_HARBOR_PASSWORD_UNSET";
        let t = parse_toml(
            &format!("[images.registry]\nurl = \"https://r\"\nusername = \"u\"\npassword_env = \"{var}\"\n"),
            "t",
        )
        .unwrap();
        let e = SyncConfig::build(None, t).unwrap_err().to_string();
        assert!(e.contains("password_env") && e.contains(var), "{e}");
        let both = format!(
            "[images.registry]\nurl = \"https://r\"\nusername = \"u\"\npassword = \"x\"\npassword_file = \"{}\"\n",
            f.display()
        );
        let e = SyncConfig::build(None, parse_toml(&both, "t").unwrap()).unwrap_err().to_string();
        assert!(e.contains("only one of"), "{e}");
        let e = SyncConfig::build(
            None,
            parse_toml("[images.registry]\nurl = \"https://r\"\nusername = \"u\"\n", "t").unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("username without a password"), "{e}");
    }
}
