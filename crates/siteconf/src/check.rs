//! `fedsite config check`: every problem of a `fedsite.toml` a run would hit,
//! found without running — each finding names the key, says what is wrong
//! and is an error (the run would fail) or a warning (it would run, maybe
//! not as meant). Network reachability is `fedsite check`'s job, not this.

use std::path::Path;

use crate::resolve::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// `[section] key`
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.key, self.message)
    }
}

/// All findings for `config` (resolving with the process environment).
pub fn check(config: &Config, env: &openstack::config::Env, cwd: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |level, key: &str, message: String| out.push(Finding { level, key: key.into(), message });
    // Each resolution step reports its first problem.
    let e = |r: Result<(), crate::Error>| r.err().map(|e| e.to_string());
    if let Err(err) = config.extract_config("fedsite") {
        let key = match &err {
            crate::Error::Key { key, .. } => key.clone(),
            _ => "[accounting]".into(),
        };
        push(Level::Error, &key, err.to_string());
    }
    for (m, key) in [
        (e(config.style().map(|_| ())), "[accounting] style"),
        (e(config.max_records().map(|_| ())), "[accounting] max_records"),
        (e(config.path_type().map(|_| ())), "[spool] path_type"),
    ] {
        if let Some(m) = m {
            push(Level::Error, key, m);
        }
    }
    match config.cloud_config(env, cwd) {
        Ok(cloud) => {
            if cloud.insecure {
                push(
                    Level::Warning,
                    "[cloud] verify",
                    "TLS verification of the OpenStack APIs is off; every run will warn".into(),
                );
            }
        }
        Err(err) => push(Level::Error, "[cloud]", err.to_string()),
    }
    let t = &config.toml;
    let files = [
        ("[site] catchall_yaml", t.site.catchall_yaml.as_deref()),
        ("[accounting] voms_json", t.accounting.voms_json.as_deref()),
        ("[cloud] cacert", t.cloud.cacert.as_deref()),
        ("[cloud] clouds_yaml", t.cloud.clouds_yaml.as_deref()),
    ];
    for (key, path) in files {
        if let Some(p) = path.filter(|p| !p.is_file()) {
            push(Level::Error, key, format!("{} is not a readable file", p.display()));
        }
    }
    if let Some(p) = &t.site.catchall_yaml
        && p.is_file()
    {
        match std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|t| accounting::vo::parse_site_yaml(&t).map_err(|e| e.to_string()))
        {
            Ok(_) => {}
            Err(err) => push(Level::Error, "[site] catchall_yaml", format!("{}: {err}", p.display())),
        }
    }
    let ledger = config.ledger();
    if !ledger::is_postgres_url(&ledger)
        && let Some(dir) = Path::new(&ledger).parent().filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        push(
            Level::Warning,
            "[ledger] path",
            format!("directory {} does not exist yet; the first run creates it", dir.display()),
        );
    }
    if let Some(dir) = config.spool().parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        push(
            Level::Warning,
            "[spool] path",
            format!("directory {} does not exist yet; the first run creates it", dir.display()),
        );
    }
    // Kinds the configured extractors produce that no destination sends: kept in the ledger.
    if let Ok(kinds) = config.unrouted_kinds()
        && !kinds.is_empty()
    {
        let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let (key, hint) = if t.destinations.is_empty() {
            ("[accounting] extractors", "route them with a [[destination]] to send them")
        } else {
            ("[[destination]]", "add them to a destination's record_types to send them")
        };
        push(
            Level::Warning,
            key,
            format!(
                "{} records are extracted but go to no destination: kept in the ledger only; {hint}",
                names.join(", ")
            ),
        );
    }
    if !t.destinations.is_empty() {
        // What `send` would resolve per destination (a missing host only matters when the
        // file sends at all: with an [ams] section).
        if let Err(err) = config.deliveries() {
            let key = match &err {
                crate::Error::Key { key, .. } => key.clone(),
                _ => "[[destination]]".into(),
            };
            if t.ams.is_some() || !key.ends_with(" host") {
                push(Level::Error, &key, err.to_string());
            }
        }
        for d in &t.destinations {
            if let Some(dir) = d.spool.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
                push(
                    Level::Warning,
                    &format!("[[destination]] {} spool", d.name),
                    format!("directory {} does not exist yet; the first run creates it", dir.display()),
                );
            }
        }
    }
    if let Some(ams) = &t.ams {
        if ams.host.is_none() && ams.url.is_none() {
            push(Level::Error, "[ams] host", "is missing (e.g. msg.argo.grnet.gr)".into());
        }
        if let Some(p) = &ams.token_file
            && let Err(err) = crate::model::check_private(p, "the AMS token")
        {
            push(Level::Error, "[ams] token_file", err.to_string());
        }
        match (&ams.certificate, &ams.key) {
            (Some(cert), Some(key)) => {
                if let Err(err) = smime::Signer::new(cert, key) {
                    push(Level::Error, "[ams] certificate", format!("{} / {}: {err:#}", cert.display(), key.display()));
                } else if let Err(err) = crate::model::check_private(key, "the host key") {
                    push(Level::Error, "[ams] key", err.to_string());
                }
            }
            _ => push(
                Level::Error,
                "[ams] certificate",
                "signing needs the host certificate and key ([ams] certificate and key)".into(),
            ),
        }
        for (key, path) in [("[ams] ca", &ams.ca), ("[ams] server_cert", &ams.server_cert)] {
            if let Some(p) = path.as_deref().filter(|p| !p.exists()) {
                push(Level::Error, key, format!("{} does not exist", p.display()));
            }
        }
        // SSM's capath: only `fedsite receive` uses it (the CAs signers chain to); sending
        // trusts [ams] ca or REQUESTS_CA_BUNDLE for AMS's TLS, as SSM does.
        if let Some(p) = ams.capath.as_deref().filter(|p| !p.exists()) {
            push(
                Level::Warning,
                "[ams] capath",
                format!(
                    "{} does not exist; sending does not use it (AMS's TLS is verified with [ams] ca, REQUESTS_CA_BUNDLE or the system roots), receiving does: fix the path or remove the key",
                    p.display()
                ),
            );
        }
    }
    if t.images.is_some()
        && let Err(err) = std::fs::read_to_string(&config.file).map_err(|e| e.to_string()).and_then(|text| {
            imagesync::config::parse_toml(&text, &config.file.display().to_string()).map_err(|e| e.to_string())
        })
    {
        push(Level::Error, "[images]", err);
    }
    out.sort_by(|a, b| b.level.cmp(&a.level).then(a.key.cmp(&b.key)));
    out
}
