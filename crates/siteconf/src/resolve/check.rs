//! `fedsite check`'s settings: the AMS it reaches, the ledger and spools it inspects (every
//! `[[destination]]`'s, unless `--spool` or a sender.cfg names one) and the
//! host certificate it reads, each from its flag, else SSM's sender.cfg (`--sender-cfg`),
//! else fedsite.toml's `[ams]`, `[ledger]`, `[spool]`, else sitecheck's defaults
//! (docs/configuration.md). A named sender.cfg replaces fedsite.toml for this command: the
//! file is then not read at all. Owns only that precedence; the checks are `sitecheck`'s.

use std::path::{Path, PathBuf};

use messaging::config::{PathType, SenderCfg};
use sitecheck::config::{AccountingTarget, AmsTarget, NamedSpool};

use crate::Error;
use crate::resolve::Config;

/// What `fedsite check`'s command line says about these settings.
#[derive(Debug, Clone, Default)]
pub struct CheckFlags<'a> {
    /// `--sender-cfg`.
    pub sender_cfg: Option<&'a Path>,
    /// `--ams-host`: a host, or `host:port` as sender.cfg's `[broker] host`.
    pub ams_host: Option<&'a str>,
    /// `--ams-port` (repeatable); empty when not given.
    pub ams_ports: &'a [u16],
    pub ams_ca: Option<&'a Path>,
    pub ledger: Option<&'a str>,
    pub spool: Option<&'a Path>,
    pub quarantine: Option<&'a Path>,
    pub cert: Option<&'a Path>,
    pub key: Option<&'a Path>,
}

/// The resolved settings; `accounting.read_spool` is left for the caller to give (the
/// spool's reader is `messaging`'s, which sitecheck does not know).
#[derive(Debug, Clone)]
pub struct CheckSettings {
    pub ams: AmsTarget,
    pub accounting: AccountingTarget,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Reads `--sender-cfg` when given, else fedsite.toml (`config`, the global `--config` or the
/// default file when it exists), and resolves [`CheckSettings`] from them and `flags`.
pub fn check_settings(flags: &CheckFlags<'_>, config: Option<&Path>) -> Result<CheckSettings, Error> {
    let file = match (flags.sender_cfg, config) {
        (None, Some(p)) => Some(Config::load(p)?),
        _ => None,
    };
    let sender = match (flags.sender_cfg, &file) {
        (Some(p), _) => Some(SenderCfg::load(p).map_err(|source| Error::Ssm { file: p.to_path_buf(), source })?),
        (None, Some(f)) if f.toml.ams.is_some() => Some(f.sender_cfg()?),
        _ => None,
    };
    Ok(resolve(flags, sender.as_ref(), file.as_ref()))
}

/// The precedence itself, over sources already read.
pub fn resolve(flags: &CheckFlags<'_>, sender: Option<&SenderCfg>, file: Option<&Config>) -> CheckSettings {
    let file_ams = file.and_then(|f| f.toml.ams.as_ref());
    // `[broker] host` may be `name:port`, as `send` reads it: the data API on that port, the
    // token exchange on 8443 (or the port of fedsite.toml's [ams] authn_url).
    let (host, port) = match flags.ams_host.map(str::to_string).or_else(|| sender.map(|s| s.host.clone())) {
        Some(h) => match h.rsplit_once(':') {
            Some((name, port)) if port.parse::<u16>().is_ok() => (name.to_string(), port.parse::<u16>().ok()),
            _ => (h, None),
        },
        None => (AmsTarget::default().host, None),
    };
    let authn_port =
        file_ams.and_then(|a| a.authn_url.as_deref()).and_then(url_port).unwrap_or(messaging::ams::DEFAULT_AUTHN_PORT);
    let ports = match (flags.ams_ports.is_empty(), port) {
        (false, _) => flags.ams_ports.to_vec(),
        (true, Some(p)) => vec![p, authn_port],
        (true, None) => AmsTarget::default().ports,
    };
    let ams = AmsTarget {
        host,
        ports,
        ca: flags.ams_ca.map(Path::to_path_buf).or_else(|| file_ams.and_then(|a| a.ca.clone())),
    };
    let accounting = AccountingTarget {
        ledger: flags.ledger.map(str::to_string).or_else(|| file.map(Config::ledger)),
        spool: flags
            .spool
            .map(Path::to_path_buf)
            .or_else(|| sender.map(|s| s.path.clone()))
            .or_else(|| file.map(Config::spool)),
        directory_spool: sender.is_some_and(|s| s.path_type == PathType::Directory),
        quarantine: flags.quarantine.map(Path::to_path_buf).or_else(|| file.and_then(Config::quarantine)),
        read_spool: None,
        // Every destination's spool, unless a flag or sender.cfg names the one to check.
        more_spools: match (flags.spool, flags.sender_cfg, file) {
            (None, None, Some(f)) => f
                .destination_spools()
                .into_iter()
                .skip(1)
                .map(|d| NamedSpool { name: d.name, spool: d.spool, quarantine: d.quarantine })
                .collect(),
            _ => Vec::new(),
        },
    };
    CheckSettings {
        ams,
        accounting,
        cert: flags.cert.map(Path::to_path_buf).or_else(|| sender.and_then(|s| s.certificate.clone())),
        key: flags.key.map(Path::to_path_buf).or_else(|| sender.and_then(|s| s.key.clone())),
    }
}

/// The explicit port of `scheme://host:port/...`.
fn url_port(u: &str) -> Option<u16> {
    let authority = u.split_once("://")?.1.split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}
