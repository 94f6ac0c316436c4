//! `fedsite probe NAME`'s settings besides the login: ARGO's flags over sitecheck's defaults
//! (docs/sitecheck.md). The age thresholds `-w` / `-c` are the information document's for the
//! `info` probe and the last send's for every other; the document is `--info`, else the Swift
//! object `--swift-container` / `--swift-object`. What the probes do is `sitecheck::probe`'s.

use std::time::Duration;

use sitecheck::VoSpec;
use sitecheck::probe::{InfoSource, Probe, Settings};

use crate::Error;

/// What the command line says.
#[derive(Debug, Clone, Default)]
pub struct ProbeFlags<'a> {
    /// `-t`, seconds (at least 1 is used).
    pub timeout_secs: u64,
    pub vo: &'a str,
    pub region: Option<&'a str>,
    pub swift: bool,
    /// `--connect-timeout`, seconds (at least 1 is used).
    pub connect_timeout_secs: u64,
    pub image: Option<&'a str>,
    pub flavor: Option<&'a str>,
    pub network: Option<&'a str>,
    /// `--vm-poll`, seconds (kept within 0.05 and 60).
    pub vm_poll_secs: f64,
    pub ledger: Option<&'a str>,
    /// `--publishes-vo`, in order.
    pub publishes_vo: &'a [String],
    pub info: Option<&'a str>,
    pub swift_container: Option<&'a str>,
    pub swift_object: Option<&'a str>,
    /// `-w`, days.
    pub warning_days: Option<f64>,
    /// `-c`, days.
    pub critical_days: Option<f64>,
}

/// The settings of `probe` from `flags`.
pub fn probe_settings(probe: Probe, flags: &ProbeFlags<'_>) -> Result<Settings, Error> {
    let mut settings = Settings {
        timeout: Duration::from_secs(flags.timeout_secs.max(1)),
        vo: flags.vo.to_string(),
        ..Default::default()
    };
    let c = &mut settings.check;
    c.region = flags.region.map(str::to_string);
    c.swift = flags.swift;
    c.connect_timeout = Duration::from_secs(flags.connect_timeout_secs.max(1));
    c.probe.image = flags.image.map(str::to_string);
    c.probe.flavor = flags.flavor.map(str::to_string);
    c.probe.network = flags.network.map(str::to_string);
    c.probe.poll_interval = Duration::from_secs_f64(flags.vm_poll_secs.clamp(0.05, 60.0));
    c.accounting.ledger = flags.ledger.map(str::to_string);
    for vo in flags.publishes_vo {
        c.vos
            .push(VoSpec::parse(vo).map_err(|e| Error::Flag { flag: "--publishes-vo".into(), reason: e.to_string() })?);
    }
    settings.info = match (flags.info, flags.swift_container, flags.swift_object) {
        (Some(loc), _, _) => Some(InfoSource::Location(loc.to_string())),
        (None, Some(container), Some(object)) => {
            Some(InfoSource::Swift { container: container.to_string(), object: object.to_string() })
        }
        _ => None,
    };
    let (warn, crit) = match probe {
        Probe::Info => (&mut settings.info_warn, &mut settings.info_crit),
        _ => (&mut settings.accounting_warn, &mut settings.accounting_crit),
    };
    if let Some(w) = flags.warning_days {
        *warn = days(w);
    }
    if let Some(c) = flags.critical_days {
        *crit = days(c);
    }
    Ok(settings)
}

fn days(d: f64) -> chrono::Duration {
    chrono::Duration::seconds((d.max(0.0) * 86_400.0) as i64)
}
