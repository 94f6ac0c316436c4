//! `fedsite check`: the site self-check — every requirement of an EGI
//! FedCloud site, one line per check with its status, what was tested and
//! the fix; `--json`; exit code by the worst status (0 ok, 1 warning, 2 critical).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use openstack::{CloudConfig, Session};
use sitecheck::config::{AccountingTarget, CheckConfig, ProbeConfig, Sessions, SpoolFacts, VoSpec};
use sitecheck::{Check, Report};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Site account (admin or system reader) of clouds.yaml; OS_* variables
    /// when neither this nor OS_CLOUD is set.
    #[arg(long, env = "OS_CLOUD")]
    pub os_cloud: Option<String>,
    /// Keystone URL of a remote site: log in as the VO robot with an OIDC access token
    /// (--access-token FILE or OS_ACCESS_TOKEN) through OS-FEDERATION instead of
    /// --os-cloud, scoped to the project of --probe-vo (docs/sitecheck.md).
    #[arg(long, alias = "endpoint", value_name = "URL")]
    pub os_auth_url: Option<String>,
    /// A file holding the OIDC access token (its first line).
    #[arg(long, value_name = "FILE", requires = "os_auth_url")]
    pub access_token: Option<PathBuf>,
    /// The OIDC access token (prefer --access-token FILE).
    #[arg(long, env = "OS_ACCESS_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub os_access_token: Option<String>,
    /// The site's identity provider for EGI Check-in.
    #[arg(long, default_value = "egi.eu")]
    pub os_identity_provider: String,
    /// The federation protocol.
    #[arg(long, default_value = "openid")]
    pub os_protocol: String,
    /// The accounting account (cASO's) whose permissions are checked.
    #[arg(long, value_name = "CLOUD")]
    pub accounting_cloud: Option<String>,
    /// Account the VM probe runs as (a member of the ops VO's project);
    /// default: the site account scoped to that project.
    #[arg(long, value_name = "CLOUD")]
    pub probe_cloud: Option<String>,
    /// A VO the site supports and its project (name or id; the VO's name by
    /// default). Repeat for each VO.
    #[arg(long = "vo", value_name = "VO[=PROJECT]")]
    pub vos: Vec<String>,
    /// Project property holding the VO (default: egi.VO, egi.eu:VO, egi.eu_VO or VO).
    #[arg(long)]
    pub vo_property: Option<String>,
    /// Region of the catalog endpoints (default: the cloud's, else any).
    #[arg(long)]
    pub region: Option<String>,
    /// Object storage is offered: require Swift in the catalog.
    #[arg(long)]
    pub swift: bool,
    /// SSM's sender.cfg: AMS host, host certificate and key, spool.
    #[arg(long = "sender-cfg", alias = "sender-config", value_name = "PATH")]
    pub sender_config: Option<PathBuf>,
    /// AMS host (default: sender.cfg's, else msg.argo.grnet.gr).
    #[arg(long)]
    pub ams_host: Option<String>,
    /// AMS ports to reach (default 443 and 8443). Repeatable.
    #[arg(long = "ams-port", value_name = "PORT")]
    pub ams_ports: Vec<u16>,
    /// CA bundle (PEM) AMS's certificate is verified with (default: the system's).
    #[arg(long, value_name = "PEM")]
    pub ams_ca: Option<PathBuf>,
    /// The accounting ledger (SQLite path or postgresql:// URL).
    #[arg(long)]
    pub ledger: Option<String>,
    /// The outgoing spool (default: sender.cfg's [messaging] path).
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// The quarantine directory (default <spool>.quarantine).
    #[arg(long, value_name = "DIR")]
    pub quarantine: Option<PathBuf>,
    /// A spool element older than this many hours is stuck.
    #[arg(long, default_value_t = 24)]
    pub stuck_hours: i64,
    /// Host certificate (default: sender.cfg's).
    #[arg(long, value_name = "PEM")]
    pub cert: Option<PathBuf>,
    /// Host key (default: sender.cfg's).
    #[arg(long, value_name = "PEM")]
    pub key: Option<PathBuf>,
    /// Do not boot a VM.
    #[arg(long)]
    pub no_vm_probe: bool,
    /// VO the VM probe runs as.
    #[arg(long, default_value = "ops")]
    pub probe_vo: String,
    /// Image for the probe (name or id; default: the monitoring image).
    #[arg(long)]
    pub probe_image: Option<String>,
    /// Flavor for the probe (default: the smallest that fits).
    #[arg(long)]
    pub probe_flavor: Option<String>,
    /// Network for the probe (default: the project's own, else a shared one).
    #[arg(long)]
    pub probe_network: Option<String>,
    /// Seconds to wait for the probe VM to become ACTIVE.
    #[arg(long, default_value_t = 300)]
    pub vm_timeout: u64,
    /// Seconds between two looks at the probe VM.
    #[arg(long, default_value_t = 2.0)]
    pub vm_poll: f64,
    /// The site's information document (GLUE 2.1 JSON): file or URL.
    #[arg(long, value_name = "FILE|URL")]
    pub info: Option<String>,
    /// Only these families (catalog, ports, ams, permissions, projects,
    /// flavors, accounting, certificate, vm, info). Repeatable or comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Seconds per connection attempt.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
    /// Print JSON instead of text.
    #[arg(long, conflicts_with = "nagios")]
    pub json: bool,
    /// Print as a Nagios plugin: one status line with perfdata, a line per check; exit
    /// 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the check could not run).
    #[arg(long)]
    pub nagios: bool,
    /// Seconds the whole check may take (default: no limit); past it, CRITICAL (exit 2).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

/// The accounting check's view of a spool, read by `messaging` (sitecheck does not know
/// the spool's layout).
fn read_spool(
    spool: &Path,
    directory: bool,
    quarantine: Option<&Path>,
) -> std::result::Result<SpoolFacts, Box<dyn std::error::Error + Send + Sync>> {
    use messaging::config::PathType;
    let ty = if directory { PathType::Directory } else { PathType::Dirq };
    let qdir = quarantine.map_or_else(|| messaging::sender::default_quarantine(spool), Path::to_path_buf);
    let st = messaging::sender::spool_status(spool, ty, &qdir)?;
    Ok(SpoolFacts { elements: st.elements, locked: st.locked, oldest: st.oldest, quarantine: st.quarantine })
}

async fn connect(cloud: Option<&str>, what: &str) -> Result<Session, Check> {
    let cfg = CloudConfig::load(cloud).map_err(|e| {
        Check::critical(
            format!("account.{what}"),
            format!("the {what} account's configuration"),
            e.to_string(),
            "fix clouds.yaml / OS_*",
        )
    })?;
    Session::connect(&cfg).await.map_err(|e| {
        Check::critical(
            format!("account.{what}"),
            format!("the {what} account authenticates at {}", cfg.auth_url),
            e.to_string(),
            "check the account's credentials and that Keystone answers",
        )
    })
}

pub async fn run(args: CheckArgs) -> Result<ExitCode> {
    let limit = args.timeout.map(|t| Duration::from_secs(t.max(1)));
    let result = match limit {
        Some(l) => match tokio::time::timeout(l, report(&args)).await {
            Ok(r) => r,
            Err(_) => {
                let o = sitecheck::nagios::Outcome::critical(
                    "FEDSITE",
                    format!("the check did not finish within {} s (--timeout)", l.as_secs()),
                );
                if args.nagios {
                    print!("{}", o.render());
                } else {
                    eprintln!("fedsite: error: {}", o.summary);
                }
                return Ok(ExitCode::from(o.exit_code()));
            }
        },
        None => report(&args).await,
    };
    let report = match (result, args.nagios) {
        (Ok(r), _) => r,
        (Err(e), true) => {
            let o = sitecheck::nagios::Outcome::unknown("FEDSITE", format!("{e:#}"));
            print!("{}", o.render());
            return Ok(ExitCode::from(o.exit_code()));
        }
        (Err(e), false) => return Err(e),
    };
    if args.nagios {
        let o = sitecheck::nagios::from_report("FEDSITE", &report);
        print!("{}", o.render());
        return Ok(ExitCode::from(o.exit_code()));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// Resolves the settings, logs in and runs the checks.
async fn report(args: &CheckArgs) -> Result<Report> {
    // The AMS, ledger, spool and certificate: flags, else sender.cfg, else fedsite.toml.
    let settings = siteconf::resolve::check::check_settings(
        &siteconf::resolve::check::CheckFlags {
            sender_cfg: args.sender_config.as_deref(),
            ams_host: args.ams_host.as_deref(),
            ams_ports: &args.ams_ports,
            ams_ca: args.ams_ca.as_deref(),
            ledger: args.ledger.as_deref(),
            spool: args.spool.as_deref(),
            quarantine: args.quarantine.as_deref(),
            cert: args.cert.as_deref(),
            key: args.key.as_deref(),
        },
        super::config_path().as_deref(),
    )?;
    let mut vos = Vec::new();
    for v in &args.vos {
        vos.push(VoSpec::parse(v).map_err(|e| anyhow::anyhow!("--vo {e}"))?);
    }
    for f in &args.only {
        if !sitecheck::config::FAMILIES.contains(&f.as_str()) {
            anyhow::bail!("--only {f}: unknown family (known: {})", sitecheck::config::FAMILIES.join(", "));
        }
    }
    let cfg = CheckConfig {
        only: args.only.clone(),
        vos,
        vo_property: args.vo_property.clone(),
        region: args.region.clone(),
        swift: args.swift,
        ams: settings.ams,
        accounting: AccountingTarget { read_spool: Some(read_spool), ..settings.accounting },
        cert: settings.cert,
        key: settings.key,
        probe: ProbeConfig {
            enabled: !args.no_vm_probe,
            vo: args.probe_vo.clone(),
            image: args.probe_image.clone(),
            flavor: args.probe_flavor.clone(),
            network: args.probe_network.clone(),
            vm_timeout: Duration::from_secs(args.vm_timeout),
            poll_interval: Duration::from_secs_f64(args.vm_poll.clamp(0.05, 60.0)),
        },
        info: args.info.clone(),
        now: chrono::Utc::now(),
        stuck_after: chrono::Duration::hours(args.stuck_hours.max(0)),
        connect_timeout: Duration::from_secs(args.connect_timeout.max(1)),
    };

    let mut early = Vec::new();
    let needs = |fams: &[&str]| fams.iter().any(|f| cfg.runs(f));
    let mut sessions = Sessions::default();
    if needs(&["catalog", "ports", "projects", "flavors", "vm", "permissions"]) {
        if let Some(url) = &args.os_auth_url {
            // A remote site, as ARGO sees it: the VO robot's login is the site session.
            let token =
                siteconf::resolve::token::access_token(args.access_token.as_deref(), args.os_access_token.as_deref())?;
            let robot = sitecheck::probe::Robot {
                auth_url: url.clone(),
                access_token: openstack::Secret::new(token.unwrap_or_default()),
                identity_provider: args.os_identity_provider.clone(),
                protocol: args.os_protocol.clone(),
                region: args.region.clone(),
                ..Default::default()
            };
            let cloud = sitecheck::probe::resolve_login(Some(&robot), None)?;
            match sitecheck::probe::login(&cloud, &args.probe_vo, cfg.connect_timeout * 3).await {
                Ok(s) => {
                    // Scoped to the probe VO's project already: the VM probe runs as it.
                    sessions.probe = Some(s.clone());
                    sessions.admin = Some(s);
                }
                // Could not run at all (Keystone unreachable): an error, UNKNOWN with --nagios.
                Err(e) if e.state() == sitecheck::nagios::State::Unknown => return Err(e.into()),
                Err(e) => early.push(Check::critical(
                    "account.site",
                    format!("the VO robot logs in at {url}"),
                    e.to_string(),
                    "check the site's OS-FEDERATION set-up (fedsite keystone federation) and the VO's project",
                )),
            }
        } else {
            match connect(args.os_cloud.as_deref(), "site").await {
                Ok(s) => sessions.admin = Some(s),
                Err(c) => early.push(c),
            }
        }
    }
    if cfg.runs("permissions")
        && let Some(c) = &args.accounting_cloud
    {
        match connect(Some(c), "accounting").await {
            Ok(s) => sessions.accounting = Some(s),
            Err(c) => early.push(c),
        }
    }
    if cfg.runs("vm")
        && cfg.probe.enabled
        && let Some(c) = &args.probe_cloud
    {
        match connect(Some(c), "probe").await {
            Ok(s) => sessions.probe = Some(s),
            Err(c) => early.push(c),
        }
    }
    let mut cfg = cfg;
    if cfg.region.is_none() {
        cfg.region = sessions.admin.as_ref().and_then(|s| s.config().region_name.clone());
    }
    let mut report = sitecheck::run::run(&cfg, &sessions).await;
    early.append(&mut report.checks);
    Ok(Report { checks: early })
}
