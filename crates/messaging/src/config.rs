//! SSM's `sender.cfg` and `receiver.cfg` read as they are (Python `configparser` semantics:
//! `key: value` or `key = value`, option names case-insensitive, `#`/`;` comment lines,
//! indented continuation lines, `%%` for `%`). Owns [`SenderCfg`] and [`ReceiverCfg`]; every
//! error names the file, the section and the key.

use std::path::{Path, PathBuf};

use ini::{Ini, ParseOption};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {reason}")]
    File { file: PathBuf, reason: String },
    #[error("{file}: [{section}] {key}: {reason}")]
    Key { file: PathBuf, section: String, key: String, reason: String },
}

/// Refuses a file holding a secret (an AMS token, a private key) that its group or others may
/// read, as ssh does.
pub fn check_private_file(file: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |reason: String| ConfigError::File { file: file.to_owned(), reason };
    let mode = std::fs::metadata(file).map_err(|e| err(e.to_string()))?.permissions().mode() & 0o7777;
    if mode & 0o044 != 0 {
        return Err(err(format!(
            "holds a secret but is readable by its group or others (mode {mode:04o}); run `chmod 600 {}`",
            file.display()
        )));
    }
    Ok(())
}

/// Where the outgoing messages are (`[messaging] path_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathType {
    /// python-dirq `QueueSimple` (SSM's default).
    Dirq,
    /// A flat directory: every regular file is one message (SSM's `MessageDirectory`).
    Directory,
}

/// `sender.cfg` (SSM 4.0 keys; only the AMS protocol).
#[derive(Debug, Clone, PartialEq)]
pub struct SenderCfg {
    pub file: PathBuf,
    /// `[broker] host`: `name` or `name:port`, used verbatim in `https://{host}/…`.
    pub host: String,
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub capath: Option<PathBuf>,
    /// Encrypt to this certificate (`[certificates] server_cert`).
    pub server_cert: Option<PathBuf>,
    pub verify_server_cert: bool,
    pub ams_project: String,
    /// `[messaging] destination`: the AMS topic.
    pub destination: String,
    /// `[messaging] token`: empty or absent → X.509 token exchange.
    pub token: Option<String>,
    pub path: PathBuf,
    pub path_type: PathType,
    /// What was read but is not used (e.g. `[logging]`), for the operator.
    pub notes: Vec<String>,
}

/// `receiver.cfg` (SSM 4.0 keys; only the AMS protocol).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverCfg {
    pub file: PathBuf,
    pub host: String,
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub capath: Option<PathBuf>,
    pub check_crls: bool,
    pub ams_project: String,
    /// `[messaging] destination`: the AMS subscription.
    pub destination: String,
    pub token: Option<String>,
    /// `incoming/` and `reject/` are created under it.
    pub path: PathBuf,
    pub notes: Vec<String>,
}

/// A parsed INI file with configparser's lookups.
struct Cfg {
    file: PathBuf,
    ini: Ini,
}

impl Cfg {
    fn load(file: &Path) -> Result<Cfg, ConfigError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| ConfigError::File { file: file.to_owned(), reason: format!("cannot read: {e}") })?;
        Cfg::parse(file, &text)
    }

    fn parse(file: &Path, text: &str) -> Result<Cfg, ConfigError> {
        let opt = ParseOption {
            enabled_quote: false,
            enabled_escape: false,
            enabled_indented_mutiline_value: true,
            enabled_preserve_key_leading_whitespace: false,
        };
        let ini = Ini::load_from_str_opt(text, opt)
            .map_err(|e| ConfigError::File { file: file.to_owned(), reason: format!("not an INI file: {e}") })?;
        Ok(Cfg { file: file.to_owned(), ini })
    }

    fn has_section(&self, section: &str) -> bool {
        self.ini.section(Some(section)).is_some()
    }

    fn err(&self, section: &str, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Key { file: self.file.clone(), section: section.into(), key: key.into(), reason: reason.into() }
    }

    /// The value (stripped, `%%` → `%`), option names compared case-insensitively.
    fn get(&self, section: &str, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(props) = self.ini.section(Some(section)) else {
            return Ok(None);
        };
        let Some((_, v)) = props.iter().rfind(|(k, _)| k.trim().eq_ignore_ascii_case(key)) else {
            return Ok(None);
        };
        let v = v.trim();
        if v.contains("%(") {
            return Err(self.err(section, key, "%(name)s interpolation is not supported"));
        }
        Ok(Some(v.replace("%%", "%")))
    }

    fn required(&self, section: &str, key: &str) -> Result<String, ConfigError> {
        match self.get(section, key)? {
            Some(v) if !v.is_empty() => Ok(v),
            Some(_) => Err(self.err(section, key, "is empty")),
            None if !self.has_section(section) => {
                Err(self.err(section, key, format!("missing (no [{section}] section)")))
            }
            None => Err(self.err(section, key, "missing")),
        }
    }

    fn path(&self, section: &str, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.get(section, key)?.filter(|v| !v.is_empty()).map(PathBuf::from))
    }

    /// configparser's `getboolean`.
    fn boolean(&self, section: &str, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(section, key)? {
            None => Ok(default),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "yes" | "true" | "on" => Ok(true),
                "0" | "no" | "false" | "off" => Ok(false),
                _ => Err(self.err(section, key, format!("not a boolean: {v:?}"))),
            },
        }
    }

    /// `[<agent>] protocol` must be AMS (SSM: missing → STOMP, which fedsite does not speak).
    fn protocol(&self, agent: &str) -> Result<(), ConfigError> {
        match self.get(agent, "protocol")?.as_deref() {
            Some("AMS") => Ok(()),
            Some("STOMP") => Err(self.err(
                agent,
                "protocol",
                "STOMP is not supported (EGI's brokers are retired); set `protocol: AMS`",
            )),
            None => Err(self.err(
                agent,
                "protocol",
                "missing (SSM would default to STOMP, which is not supported); set `protocol: AMS`",
            )),
            Some(other) => {
                Err(self.err(agent, "protocol", format!("{other:?} is neither AMS nor STOMP (case-sensitive)")))
            }
        }
    }

    fn notes(&self, used: &[&str]) -> Vec<String> {
        let mut notes = Vec::new();
        for s in self.ini.sections().flatten() {
            if !used.contains(&s) {
                notes.push(format!("[{s}] ignored by fedsite (logs go to stderr; see --log)"));
            }
        }
        notes
    }
}

impl SenderCfg {
    /// Reads the file; one holding an AMS `token` must not be group/world-readable.
    pub fn load(file: impl AsRef<Path>) -> Result<SenderCfg, ConfigError> {
        let cfg = Self::from_cfg(Cfg::load(file.as_ref())?)?;
        if cfg.token.is_some() {
            check_private_file(file.as_ref())?;
        }
        Ok(cfg)
    }

    /// Parses `text` as if read from `file` (used in errors).
    pub fn parse(file: impl AsRef<Path>, text: &str) -> Result<SenderCfg, ConfigError> {
        Self::from_cfg(Cfg::parse(file.as_ref(), text)?)
    }

    fn from_cfg(c: Cfg) -> Result<SenderCfg, ConfigError> {
        c.protocol("sender")?;
        let path_type = match c.get("messaging", "path_type")?.as_deref() {
            None | Some("") | Some("dirq") => PathType::Dirq,
            Some("directory") => PathType::Directory,
            Some(o) => {
                return Err(c.err("messaging", "path_type", format!("{o:?}: expected dirq or directory")));
            }
        };
        let certificate = c.path("certificates", "certificate")?;
        let server_cert = c.path("certificates", "server_cert")?;
        if server_cert.is_some() && server_cert == certificate {
            return Err(c.err("certificates", "server_cert", "must not be the host certificate (SSM refuses it too)"));
        }
        Ok(SenderCfg {
            host: c.required("broker", "host")?,
            certificate,
            key: c.path("certificates", "key")?,
            capath: c.path("certificates", "capath")?,
            server_cert,
            verify_server_cert: c.boolean("certificates", "verify_server_cert", true)?,
            ams_project: c.required("messaging", "ams_project")?,
            destination: c.required("messaging", "destination")?,
            token: c.get("messaging", "token")?.filter(|t| !t.is_empty()),
            path: PathBuf::from(c.required("messaging", "path")?),
            path_type,
            notes: c.notes(&["sender", "broker", "certificates", "messaging"]),
            file: c.file,
        })
    }
}

impl ReceiverCfg {
    /// Reads the file; one holding an AMS `token` must not be group/world-readable.
    pub fn load(file: impl AsRef<Path>) -> Result<ReceiverCfg, ConfigError> {
        let cfg = Self::from_cfg(Cfg::load(file.as_ref())?)?;
        if cfg.token.is_some() {
            check_private_file(file.as_ref())?;
        }
        Ok(cfg)
    }

    pub fn parse(file: impl AsRef<Path>, text: &str) -> Result<ReceiverCfg, ConfigError> {
        Self::from_cfg(Cfg::parse(file.as_ref(), text)?)
    }

    fn from_cfg(c: Cfg) -> Result<ReceiverCfg, ConfigError> {
        c.protocol("receiver")?;
        Ok(ReceiverCfg {
            host: c.required("broker", "host")?,
            certificate: c.path("certificates", "certificate")?,
            key: c.path("certificates", "key")?,
            capath: c.path("certificates", "capath")?,
            check_crls: c.boolean("certificates", "check_crls", false)?,
            ams_project: c.required("messaging", "ams_project")?,
            destination: c.required("messaging", "destination")?,
            token: c.get("messaging", "token")?.filter(|t| !t.is_empty()),
            path: PathBuf::from(c.required("messaging", "path")?),
            notes: c.notes(&["receiver", "broker", "certificates", "messaging"]),
            file: c.file,
        })
    }
}

/// SSM's allowed-DN file (`/etc/apel/dns`): one DN per line, `#` comments, blank lines skipped.
pub fn load_dns(file: impl AsRef<Path>) -> Result<Vec<String>, ConfigError> {
    let file = file.as_ref();
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError::File {
        file: file.to_owned(),
        reason: format!("cannot read the allowed-DN list: {e}"),
    })?;
    Ok(parse_dns(&text))
}

pub fn parse_dns(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect()
}
