//! `fedsite probe NAME`: one of ARGO's probes of a cloud site (vm, swift,
//! info, accounting, keystone, ports) in the Nagios plugin contract: one
//! status line with perfdata, long output, exit 0/1/2/3. Parses the options
//! ARGO's probes take (`--endpoint`, `--access-token FILE`, `-t`) besides
//! fedsite's own; `sitecheck::probe` decides everything.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use sitecheck::nagios::Outcome;
use sitecheck::probe::{LoginError, Probe, Robot};

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The probe: vm, swift, info, accounting, keystone, ports.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Keystone URL of the site; with an OIDC access token the probe logs in as the VO
    /// robot through OS-FEDERATION (v3oidcaccesstoken). ARGO's probes call it --endpoint.
    #[arg(long, alias = "endpoint", value_name = "URL")]
    pub os_auth_url: Option<String>,
    /// The OIDC access token (prefer --access-token FILE or OS_ACCESS_TOKEN: a command
    /// line is visible to every user of the host).
    #[arg(long, env = "OS_ACCESS_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub os_access_token: Option<String>,
    /// A file holding the OIDC access token (its first line), as ARGO's probes take it.
    #[arg(long, value_name = "FILE")]
    pub access_token: Option<PathBuf>,
    /// The site's identity provider for EGI Check-in.
    #[arg(long, alias = "identity-provider", default_value = "egi.eu")]
    pub os_identity_provider: String,
    /// The federation protocol.
    #[arg(long, alias = "protocol", default_value = "openid")]
    pub os_protocol: String,
    /// Project to scope to (default: the VO's project, found among those the token may use).
    #[arg(long)]
    pub os_project_id: Option<String>,
    /// Project to scope to, by name (in the default domain).
    #[arg(long)]
    pub os_project_name: Option<String>,
    /// CA bundle (PEM) the site's certificates are verified with.
    #[arg(long, value_name = "PEM")]
    pub os_cacert: Option<PathBuf>,
    /// A clouds.yaml cloud to log in with instead of --os-auth-url (OS_* when neither is given).
    #[arg(long, env = "OS_CLOUD")]
    pub os_cloud: Option<String>,
    /// Region of the catalog endpoints.
    #[arg(long, alias = "os-region-name")]
    pub region: Option<String>,
    /// The VO the robot acts for (its project is the one scoped to).
    #[arg(long, default_value = "ops")]
    pub vo: String,
    /// Seconds the whole probe may take, login included.
    #[arg(short = 't', long, default_value_t = 120)]
    pub timeout: u64,
    /// Seconds per connection attempt.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
    /// vm: image name or id (default: the monitoring image, ad:appid 1017).
    #[arg(long)]
    pub image: Option<String>,
    /// vm: flavor name or id (default: the smallest that fits the image).
    #[arg(long)]
    pub flavor: Option<String>,
    /// vm: network (default: the project's own, else a shared one).
    #[arg(long)]
    pub network: Option<String>,
    /// vm: seconds between two looks at the server.
    #[arg(long, default_value_t = 2.0)]
    pub vm_poll: f64,
    /// info: the GLUE 2.1 JSON document, a file or an http(s) URL.
    #[arg(long, value_name = "FILE|URL", conflicts_with = "swift_container")]
    pub info: Option<String>,
    /// info: read the document from this Swift container of the robot's project.
    #[arg(long, value_name = "CONTAINER", requires = "swift_object")]
    pub swift_container: Option<String>,
    /// info: the object in --swift-container (fedsite info publishes `<gocdb site>.json`).
    #[arg(long, value_name = "OBJECT")]
    pub swift_object: Option<String>,
    /// info: a VO the document must publish. Repeatable.
    #[arg(long = "publishes-vo", value_name = "VO")]
    pub publishes_vo: Vec<String>,
    /// accounting: the ledger (SQLite path or postgresql:// URL).
    #[arg(long)]
    pub ledger: Option<String>,
    /// info, accounting: age in days for WARNING (info 1, accounting 7).
    #[arg(short = 'w', long, alias = "warning-treshold", value_name = "DAYS")]
    pub warning_threshold: Option<f64>,
    /// info, accounting: age in days for CRITICAL (info 5, accounting 30).
    #[arg(short = 'c', long, alias = "critical-treshold", value_name = "DAYS")]
    pub critical_threshold: Option<f64>,
    /// keystone, ports: object storage is offered, Swift must be in the catalog.
    #[arg(long)]
    pub swift: bool,
}

pub async fn run(args: ProbeArgs) -> Result<ExitCode> {
    let probe: Probe = match args.name.parse() {
        Ok(p) => p,
        Err(e) => return Ok(print(Outcome::unknown("FEDSITE", e.to_string()))),
    };
    let token =
        match siteconf::resolve::token::access_token(args.access_token.as_deref(), args.os_access_token.as_deref()) {
            Ok(t) => t,
            Err(e) => return Ok(print(Outcome::unknown(probe.service(), e.to_string()))),
        };
    let robot = args.os_auth_url.as_ref().map(|url| Robot {
        auth_url: url.clone(),
        access_token: openstack::Secret::new(token.clone().unwrap_or_default()),
        identity_provider: args.os_identity_provider.clone(),
        protocol: args.os_protocol.clone(),
        project_id: args.os_project_id.clone(),
        project_name: args.os_project_name.clone(),
        region: args.region.clone(),
        cacert: args.os_cacert.clone(),
    });
    let settings = siteconf::resolve::probe::probe_settings(
        probe,
        &siteconf::resolve::probe::ProbeFlags {
            timeout_secs: args.timeout,
            vo: &args.vo,
            region: args.region.as_deref(),
            swift: args.swift,
            connect_timeout_secs: args.connect_timeout,
            image: args.image.as_deref(),
            flavor: args.flavor.as_deref(),
            network: args.network.as_deref(),
            vm_poll_secs: args.vm_poll,
            ledger: args.ledger.as_deref(),
            publishes_vo: &args.publishes_vo,
            info: args.info.as_deref(),
            swift_container: args.swift_container.as_deref(),
            swift_object: args.swift_object.as_deref(),
            warning_days: args.warning_threshold,
            critical_days: args.critical_threshold,
        },
    )?;
    let login = if probe.needs_login(&settings) {
        sitecheck::probe::resolve_login(robot.as_ref(), args.os_cloud.as_deref())
    } else {
        Err(LoginError::NoCredentials("not needed".into()))
    };
    let mut out = sitecheck::probe::run(probe, login.as_ref(), &settings).await;
    if let Some(t) = &token {
        out = out.redact(&[t.as_str()]);
    }
    Ok(print(out))
}

fn print(o: Outcome) -> ExitCode {
    print!("{}", o.render());
    ExitCode::from(o.exit_code())
}

/// A usage error of a command run as a Nagios plugin (`probe`, `check --nagios`): exit 3,
/// UNKNOWN, not clap's 2 (which Nagios reads as CRITICAL). None for other commands, help
/// and version.
pub fn usage_error(e: &clap::Error, args: &[std::ffi::OsString]) -> Option<ExitCode> {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return None;
    }
    let words: Vec<&str> = args.iter().skip(1).filter_map(|a| a.to_str()).collect();
    let nagios = words.contains(&"probe") || (words.contains(&"check") && words.contains(&"--nagios"));
    if !nagios {
        return None;
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid command line").trim_start_matches("error: ");
    Some(print(Outcome::unknown("FEDSITE", format!("command line: {first}"))))
}
