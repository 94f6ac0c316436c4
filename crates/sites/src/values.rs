//! The checked values of a site file: each newtype has a private field and
//! one constructor (`new`) that says what it checks, so an unchecked string
//! never becomes a `ProjectId` or a `KeystoneUrl`. Serde goes through the
//! same constructor (`try_from = "String"`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::InvalidValue;

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The value as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, InvalidValue> {
                $name::new(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

fn token_chars(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

string_newtype!(
    /// A GOCDB site name (`gocdb`).
    GocdbName
);

impl GocdbName {
    /// Checks: 1 to 100 characters, ASCII letters, digits, `-`, `_` and `.`,
    /// starting with a letter or digit (GOCDB's own rule for site names).
    pub fn new(s: &str) -> Result<GocdbName, InvalidValue> {
        if s.is_empty() {
            return Err(InvalidValue::new("empty: the GOCDB site name is required"));
        }
        if s.len() > 100 || !token_chars(s) || !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(InvalidValue::new(format!(
                "{s:?} is not a GOCDB site name (letters, digits, '-', '_', '.'; up to 100)"
            )));
        }
        Ok(GocdbName(s.to_string()))
    }
}

string_newtype!(
    /// A Keystone v3 URL (`endpoint`), kept as written: GLUE identifiers are
    /// built from it verbatim.
    KeystoneUrl
);

impl KeystoneUrl {
    /// Checks: an absolute `https://` (or `http://`) URL with a host, no
    /// user, query or fragment, whose path ends in `/v3` (a trailing `/` is
    /// allowed): the Keystone v3 API.
    pub fn new(s: &str) -> Result<KeystoneUrl, InvalidValue> {
        let u = url::Url::parse(s).map_err(|e| InvalidValue::new(format!("{s:?} is not a URL: {e}")))?;
        if !matches!(u.scheme(), "https" | "http") {
            return Err(InvalidValue::new(format!("{s:?}: scheme {}: expected https", u.scheme())));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err(InvalidValue::new(format!("{s:?}: no host")));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(InvalidValue::new(format!("{s:?}: a user name in the URL (credentials do not belong here)")));
        }
        if u.query().is_some() || u.fragment().is_some() {
            return Err(InvalidValue::new(format!("{s:?}: a query or fragment in a Keystone URL")));
        }
        if !u.path().trim_end_matches('/').ends_with("/v3") {
            return Err(InvalidValue::new(format!(
                "{s:?}: path {:?} does not end in /v3 (the Keystone v3 API, e.g. https://keystone.example.org:5000/v3)",
                u.path()
            )));
        }
        Ok(KeystoneUrl(s.to_string()))
    }

    /// Plain `http://` (tokens and secrets travel unencrypted).
    pub fn is_plain_http(&self) -> bool {
        self.0.starts_with("http://")
    }

    /// The URL compared across files: scheme and host lower-cased, default
    /// port dropped, no trailing `/`.
    pub fn normalized(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(u) => format!(
                "{}://{}{}{}",
                u.scheme(),
                u.host_str().unwrap_or_default().to_ascii_lowercase(),
                u.port().map(|p| format!(":{p}")).unwrap_or_default(),
                u.path().trim_end_matches('/')
            ),
            Err(_) => self.0.trim_end_matches('/').to_string(),
        }
    }

    /// The host (as in the central deployment's Vault path `cloudmon/<keystone host>/<vo>`).
    pub fn host(&self) -> String {
        url::Url::parse(&self.0).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default()
    }
}

string_newtype!(
    /// A VO name (`vos[].name`): a VO (`vo.access.egi.eu`) or a FQAN-style
    /// group (`/biomed/vip`, `/VO=biomed/...`).
    VoName
);

impl VoName {
    /// Checks: 1 to 255 characters, no whitespace or control characters.
    pub fn new(s: &str) -> Result<VoName, InvalidValue> {
        if s.is_empty() {
            return Err(InvalidValue::new("empty VO name"));
        }
        if s.len() > 255 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidValue::new(format!("{s:?} is not a VO name (no spaces; up to 255 characters)")));
        }
        Ok(VoName(s.to_string()))
    }

    /// The VO itself: the name, or for a FQAN (`/vo/group`, `/VO=vo/...`) its
    /// first element, as the central deployment's generator reads it.
    pub fn vo(&self) -> &str {
        match self.0.strip_prefix('/') {
            Some(rest) => {
                let first = rest.split('/').next().unwrap_or(rest);
                first.strip_prefix("VO=").unwrap_or(first)
            }
            None => &self.0,
        }
    }
}

string_newtype!(
    /// A Keystone project id (`vos[].auth.project_id`).
    ProjectId
);

impl ProjectId {
    /// Checks: exactly 32 lowercase hexadecimal digits, the form Keystone
    /// gives project ids (`uuid4().hex`); every id of the catch-all's real
    /// files has it.
    pub fn new(s: &str) -> Result<ProjectId, InvalidValue> {
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Ok(ProjectId(s.to_string()));
        }
        let hint = if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            " (Keystone ids are lower case)"
        } else if s.len() == 36 && s.matches('-').count() == 4 {
            " (Keystone ids have no dashes)"
        } else {
            ""
        };
        Err(InvalidValue::new(format!("{s:?} is not a Keystone project id (32 lowercase hex digits){hint}")))
    }
}

string_newtype!(
    /// An OpenStack region name (`region`, `vos[].auth.region`).
    Region
);

impl Region {
    /// Checks: 1 to 255 characters, no whitespace or control characters.
    pub fn new(s: &str) -> Result<Region, InvalidValue> {
        if s.is_empty() || s.len() > 255 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidValue::new(format!("{s:?} is not a region name")));
        }
        Ok(Region(s.to_string()))
    }
}

string_newtype!(
    /// The Keystone federation protocol of the `egi.eu` identity provider (`protocol`).
    Protocol
);

impl Protocol {
    /// The default when the file names none.
    pub const DEFAULT: &str = "openid";

    /// Checks: a token of ASCII letters, digits, `-`, `_`, `.` (it becomes a
    /// URL path segment), up to 64 characters.
    pub fn new(s: &str) -> Result<Protocol, InvalidValue> {
        if s.is_empty() || s.len() > 64 || !token_chars(s) {
            return Err(InvalidValue::new(format!(
                "{s:?} is not a protocol name (letters, digits, '-', '_', '.'), e.g. openid"
            )));
        }
        Ok(Protocol(s.to_string()))
    }

    /// `openid`, the protocol EGI's sites register Check-in under.
    pub fn openid() -> Protocol {
        Protocol(Self::DEFAULT.to_string())
    }
}

string_newtype!(
    /// An APEL site name (`accounting.site_name`): what the records are published under.
    SiteName
);

impl SiteName {
    /// Checks: 1 to 255 printable ASCII characters without spaces (the APEL
    /// loader's limit for `Site`).
    pub fn new(s: &str) -> Result<SiteName, InvalidValue> {
        if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidValue::new(format!(
                "{s:?} is not an APEL site name (printable ASCII, no spaces, up to 255)"
            )));
        }
        Ok(SiteName(s.to_string()))
    }
}

impl From<&GocdbName> for SiteName {
    fn from(g: &GocdbName) -> SiteName {
        SiteName(g.0.clone())
    }
}

string_newtype!(
    /// An AMS host (`accounting.ams_host`): a host name, optionally `:port`.
    AmsHost
);

impl AmsHost {
    /// Checks: a host name or address with an optional `:port`, no scheme or
    /// path (SSM's `host`), e.g. `msg.argo.grnet.gr`.
    pub fn new(s: &str) -> Result<AmsHost, InvalidValue> {
        if s.contains("://") || s.contains('/') {
            return Err(InvalidValue::new(format!(
                "{s:?}: a host name is expected (e.g. msg.argo.grnet.gr), not a URL"
            )));
        }
        match url::Url::parse(&format!("https://{s}/")) {
            Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) && u.username().is_empty() => {
                Ok(AmsHost(s.to_string()))
            }
            _ => Err(InvalidValue::new(format!("{s:?} is not a host name"))),
        }
    }
}

string_newtype!(
    /// An AMS topic (`accounting.destination`), e.g. `eu-egi-cloud-accounting`.
    Topic
);

impl Topic {
    /// Checks: 1 to 255 ASCII letters, digits, `-`, `_`, `.` (AMS topic names).
    pub fn new(s: &str) -> Result<Topic, InvalidValue> {
        if s.is_empty() || s.len() > 255 || !token_chars(s) {
            return Err(InvalidValue::new(format!("{s:?} is not an AMS topic (letters, digits, '-', '_', '.')")));
        }
        Ok(Topic(s.to_string()))
    }

    /// A topic fedsite itself names (the defaults), unchecked.
    pub(crate) fn known(s: &'static str) -> Topic {
        Topic(s.to_string())
    }
}

/// A Glance disk format a site accepts (`images.formats`); written in any
/// case, kept in lower case as the image sync does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DiskFormat {
    /// Amazon machine image.
    Ami,
    /// Amazon ramdisk image.
    Ari,
    /// Amazon kernel image.
    Aki,
    /// Microsoft VHD.
    Vhd,
    /// Microsoft VHDX.
    Vhdx,
    /// VMware VMDK.
    Vmdk,
    /// A raw disk.
    Raw,
    /// QEMU copy-on-write v2.
    Qcow2,
    /// VirtualBox VDI.
    Vdi,
    /// An ISO 9660 image.
    Iso,
    /// Virtuozzo ploop.
    Ploop,
}

impl DiskFormat {
    /// Glance's `disk_format` values (its default `disk_formats` option):
    /// the image sync uploads with one of these.
    pub const ALL: [DiskFormat; 11] = [
        DiskFormat::Ami,
        DiskFormat::Ari,
        DiskFormat::Aki,
        DiskFormat::Vhd,
        DiskFormat::Vhdx,
        DiskFormat::Vmdk,
        DiskFormat::Raw,
        DiskFormat::Qcow2,
        DiskFormat::Vdi,
        DiskFormat::Iso,
        DiskFormat::Ploop,
    ];

    /// The name Glance uses (`qcow2`, `raw`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Ami => "ami",
            DiskFormat::Ari => "ari",
            DiskFormat::Aki => "aki",
            DiskFormat::Vhd => "vhd",
            DiskFormat::Vhdx => "vhdx",
            DiskFormat::Vmdk => "vmdk",
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Vdi => "vdi",
            DiskFormat::Iso => "iso",
            DiskFormat::Ploop => "ploop",
        }
    }

    /// Checks: one of Glance's disk formats, in any case (`ova`, `ovf`,
    /// `bare`, `docker` are container formats, named as such in the error).
    pub fn new(s: &str) -> Result<DiskFormat, InvalidValue> {
        let lower = s.trim().to_ascii_lowercase();
        if let Some(f) = DiskFormat::ALL.into_iter().find(|f| f.as_str() == lower) {
            return Ok(f);
        }
        let names: Vec<&str> = DiskFormat::ALL.iter().map(|f| f.as_str()).collect();
        let container = matches!(lower.as_str(), "ova" | "ovf" | "bare" | "docker" | "compressed");
        Err(InvalidValue::new(format!(
            "{s:?} is not a disk format{}; expected one of {}",
            if container { " (it is a Glance container format)" } else { "" },
            names.join(", ")
        )))
    }
}

impl TryFrom<String> for DiskFormat {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, InvalidValue> {
        DiskFormat::new(&s)
    }
}

impl From<DiskFormat> for String {
    fn from(f: DiskFormat) -> String {
        f.as_str().to_string()
    }
}

impl fmt::Display for DiskFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystone_url_needs_a_v3_path_and_https_or_http() {
        for ok in [
            "https://api.cloud.ifca.es:5000/v3/",
            "https://identity.brno.openstack.cloud.e-infra.cz/v3",
            "http://127.0.0.1:8080/identity/v3",
        ] {
            KeystoneUrl::new(ok).unwrap();
        }
        for (bad, why) in [
            ("api.cloud.ifca.es:5000/v3", "scheme"),
            ("keystone/v3", "not a URL"),
            ("https://k:5000/v2.0", "does not end in /v3"),
            ("https://k:5000/", "does not end in /v3"),
            ("ftp://k/v3", "scheme ftp"),
            ("https://u:p@k/v3", "user name"),
            ("https://k/v3?x=1", "query"),
        ] {
            let e = KeystoneUrl::new(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let u = KeystoneUrl::new("https://API.Cloud.ifca.es:443/v3/").unwrap();
        assert_eq!(u.normalized(), "https://api.cloud.ifca.es/v3");
        assert_eq!(u.as_str(), "https://API.Cloud.ifca.es:443/v3/");
    }

    #[test]
    fn project_ids_are_32_lowercase_hex_and_errors_say_why() {
        ProjectId::new("a372c1e2fba040e58fd0cb524a3ccd34").unwrap();
        assert!(ProjectId::new("A372C1E2FBA040E58FD0CB524A3CCD34").unwrap_err().reason.contains("lower case"));
        assert!(ProjectId::new("a372c1e2-fba0-40e5-8fd0-cb524a3ccd34").unwrap_err().reason.contains("no dashes"));
        assert!(ProjectId::new("a372").is_err());
        assert!(ProjectId::new("").is_err());
    }

    #[test]
    fn vo_of_a_fqan_is_its_first_element() {
        assert_eq!(VoName::new("/biomed/vip").unwrap().vo(), "biomed");
        assert_eq!(VoName::new("/VO=biomed/x").unwrap().vo(), "biomed");
        assert_eq!(VoName::new("ops").unwrap().vo(), "ops");
        assert!(VoName::new("o ps").is_err());
        assert!(VoName::new("").is_err());
    }

    #[test]
    fn formats_are_glance_disk_formats_in_any_case() {
        assert_eq!(DiskFormat::new("RAW").unwrap(), DiskFormat::Raw);
        assert!(DiskFormat::new("ova").unwrap_err().reason.contains("container format"));
        assert!(DiskFormat::new("qcow3").unwrap_err().reason.contains("expected one of"));
    }

    #[test]
    fn small_tokens() {
        GocdbName::new("fedcloud.srce.hr").unwrap();
        assert!(GocdbName::new("-X").is_err());
        assert!(GocdbName::new("A B").is_err());
        Protocol::new("openid").unwrap();
        assert!(Protocol::new("open id").is_err());
        AmsHost::new("msg.argo.grnet.gr").unwrap();
        AmsHost::new("msg-devel.argo.grnet.gr:8443").unwrap();
        assert!(AmsHost::new("https://msg.argo.grnet.gr").unwrap_err().reason.contains("not a URL"));
        Topic::new("eu-egi-cloud-accounting").unwrap();
        assert!(Topic::new("eu egi").is_err());
        assert!(SiteName::new("").is_err());
    }
}
