//! `fedsite info`: the site's GLUE 2.1 JSON description (cloud-info-provider
//! 1.2's `cloud-info-provider-service`, same options and output), published
//! to stdout, a file, or a Swift container; and the binary run under the name
//! `cloud-info-provider-service` ([`cloud_info_provider_main`]). Parses and
//! prints only: the credentials' precedence is `siteconf::resolve::os_cli`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches, ValueEnum};
use cloudinfo::{Fixes, FlavorKeys, FlavorSelect, ImageKeys, Options, SiteConfig};
use openstack::{CloudConfig, Session};
use siteconf::resolve::os_cli::{self, OsFlags};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SelectFlavors {
    All,
    Public,
    Private,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The site's YAML file (as in fedcloud-catchall-operations `sites/`).
    pub site_config: PathBuf,
    /// Middleware used (cloud-info-provider's; only openstack).
    #[arg(long, value_name = "MIDDLEWARE", default_value = "openstack", value_parser = ["openstack"])]
    pub middleware: String,
    /// Output format (cloud-info-provider's; only glue21json).
    #[arg(long, value_name = "FORMAT", default_value = "glue21json", value_parser = ["glue21json"])]
    pub format: String,
    /// Where to publish (cloud-info-provider's; only stdout: see --output and --swift-container).
    #[arg(long, value_name = "PUBLISHER", default_value = "stdout", value_parser = ["stdout"])]
    pub publisher: String,
    /// Debug logging (as --log debug).
    #[arg(long)]
    pub debug: bool,
    /// The credentials, as cloud-info-provider takes them (docs/cloudinfo.md, "Drop-in").
    #[command(flatten)]
    pub os: OsArgs,
    /// Publish all, only public or only private flavors.
    #[arg(long, value_enum, default_value = "all")]
    pub select_flavors: SelectFlavors,
    /// Publish only images with marketplace metadata.
    #[arg(long)]
    pub only_appdb_images: bool,
    #[arg(long, default_value = "infiniband", value_name = "PROPERTY_KEY")]
    pub property_flavor_infiniband: String,
    #[arg(long, default_value = "true", value_name = "PROPERTY_VALUE")]
    pub property_flavor_infiniband_value: String,
    #[arg(long, default_value = "Accelerator:Number", value_name = "PROPERTY_KEY")]
    pub property_flavor_gpu_number: String,
    #[arg(long, default_value = "Accelerator:Memory", value_name = "PROPERTY_KEY")]
    pub property_flavor_gpu_memory: String,
    #[arg(long, default_value = "Accelerator:VirtualizationType", value_name = "PROPERTY_KEY")]
    pub property_flavor_gpu_virt_type: String,
    #[arg(long, default_value = "Accelerator:Vendor", value_name = "PROPERTY_KEY")]
    pub property_flavor_gpu_vendor: String,
    #[arg(long, default_value = "Accelerator:Model", value_name = "PROPERTY_KEY")]
    pub property_flavor_gpu_model: String,
    #[arg(long, default_value = "gpu_driver", value_name = "PROPERTY_KEY")]
    pub property_image_gpu_driver: String,
    #[arg(long, default_value = "gpu_cuda", value_name = "PROPERTY_KEY")]
    pub property_image_gpu_cuda: String,
    #[arg(long, default_value = "gpu_cudnn", value_name = "PROPERTY_KEY")]
    pub property_image_gpu_cudnn: String,
    /// Cloud of clouds.yaml to test the auditor role (list users) with.
    #[arg(long, value_name = "AUDITOR_CLOUD")]
    pub auditor_role_cloud: Option<String>,
    /// Fail when a share cannot be read (default: skip it, endpoint `warning`).
    #[arg(long)]
    pub exit_on_share_errors: bool,
    /// Timeout of the GOCDB request, seconds.
    #[arg(long, default_value_t = 600.0, value_name = "SECONDS", value_parser = positive_seconds)]
    pub timeout: f64,
    /// GOCDB public API URL.
    #[arg(long, env = "FEDSITE_GOCDB_URL", default_value = cloudinfo::gocdb::DEFAULT_URL)]
    pub gocdb_url: String,
    /// CA bundle (PEM) verifying the endpoint in the CA probe (default: system CAs).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Fix: Manager sizes over all shares (the original: last share, min 0).
    #[arg(long)]
    pub fix_manager_sizes: bool,
    /// Fix: publish InfiniBand, GPU memory/virtualization type and image GPU properties.
    #[arg(long)]
    pub publish_extra_properties: bool,
    /// Fix: a failed share's HealthStateInfo names the error.
    #[arg(long)]
    pub share_error_details: bool,
    /// Also publish a share for every project carrying a VO property
    /// (`egi.VO`, `VO`, `egi.eu:VO`) the site file does not list (needs a
    /// credential that may list projects; the file wins).
    #[arg(long)]
    pub vos_from_projects: bool,
    /// Write the document to this file (atomically) instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Upload the document into this Swift container (created if missing).
    #[arg(long)]
    pub swift_container: Option<String>,
    /// Object name in the container (default `<gocdb site>.json`).
    #[arg(long)]
    pub swift_object: Option<String>,
    /// Cloud of clouds.yaml owning the container (default: OS_* / --os-cloud).
    #[arg(long)]
    pub swift_cloud: Option<String>,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s} is not a positive number of seconds")),
    }
}

/// keystoneauth's and os-client-config's options as cloud-info-provider 1.2
/// registers them: `--os-cloud`, `--os-auth-type`, one `--os-<option>` per
/// plugin option of [`os_cli::PLUGIN_OPTIONS`] (deprecated spellings too), the
/// session's and the adapter's. No defaults here: the `OS_*` variables and
/// clouds.yaml are layered by [`os_cli::info_cloud`].
#[derive(Debug, Clone, Default)]
pub struct OsArgs {
    pub flags: OsFlags,
}

/// Accepted as cloud-info-provider accepts them; its OpenStack session reads
/// none of them, and neither does fedsite (docs/cloudinfo.md).
const ACCEPTED_ONLY: &[(&str, &str, &str)] = &[
    ("os-cert", "CERTIFICATE", "Client certificate (PEM); accepted, not used (nor by the original)"),
    ("os-key", "KEY", "Client key (PEM); accepted, not used (nor by the original)"),
    ("tls-ciphers", "CIPHERS", "OpenSSL cipher string; accepted, not used (nor by the original)"),
    ("os-service-type", "NAME", "Catalog service type; accepted, not used (nor by the original)"),
    ("os-service-name", "NAME", "Catalog service name; accepted, not used (nor by the original)"),
    ("os-endpoint-override", "URL", "Endpoint instead of the catalog's; accepted, not used (nor by the original)"),
    ("os-api-version", "VERSION", "Service API version; accepted, not used (nor by the original)"),
    ("http-timeout", "SECONDS", "Legacy; accepted, not used"),
    ("endpoint-type", "INTERFACE", "Legacy; accepted, not used"),
];

/// The deprecated option spellings keystoneauth accepts: (alias, option).
const ALIASES: &[(&str, &str)] =
    &[("tenant_id", "project_id"), ("tenant_name", "project_name"), ("user_name", "username")];

fn dashed(option: &str) -> String {
    option.replace('_', "-")
}

impl Args for OsArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let heading = "OpenStack options (cloud-info-provider's; OS_* variables and clouds.yaml as it layers them)";
        let mut cmd = cmd
            .next_help_heading(heading)
            .arg(
                Arg::new("os_cloud")
                    .long("os-cloud")
                    .value_name("NAME")
                    .help("Cloud of clouds.yaml (default: OS_CLOUD)"),
            )
            .arg(Arg::new("os_auth_type").long("os-auth-type").alias("os-auth-plugin").value_name("NAME").help(
                "keystoneauth plugin; the Endpoint's Authentication (default: OS_AUTH_TYPE, the cloud's, password)",
            ));
        for option in os_cli::PLUGIN_OPTIONS {
            let mut arg = Arg::new(format!("os_{option}"))
                .long(format!("os-{}", dashed(option)))
                .value_name(option.to_ascii_uppercase())
                .help(format!("keystoneauth option {option} (default: OS_{})", option.to_ascii_uppercase()));
            for (alias, to) in ALIASES {
                if to == option {
                    arg = arg.alias(format!("os-{}", dashed(alias)));
                }
            }
            cmd = cmd.arg(arg);
        }
        cmd = cmd
            .arg(
                Arg::new("os_region_name")
                    .long("os-region-name")
                    .value_name("NAME")
                    .help("Region (default: OS_REGION_NAME, the cloud's, the site file's region)"),
            )
            .arg(
                Arg::new("os_interface")
                    .long("os-interface")
                    .alias("os-endpoint-type")
                    .value_name("NAME")
                    .help("public, internal or admin (default: OS_INTERFACE, public)"),
            )
            .arg(
                Arg::new("os_cacert")
                    .long("os-cacert")
                    .value_name("CA_CERTIFICATE")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("CA bundle verifying the OpenStack endpoints (default: OS_CACERT, the cloud's)"),
            )
            .arg(
                Arg::new("insecure")
                    .long("insecure")
                    .action(ArgAction::SetTrue)
                    .help("No TLS verification (OpenStack, GOCDB, the CA probe)"),
            )
            .arg(
                Arg::new("collect_timing")
                    .long("collect-timing")
                    .action(ArgAction::SetTrue)
                    .help("Accepted, not used (nor by the original)"),
            )
            .arg(
                Arg::new("tls_min_version")
                    .long("tls-min-version")
                    .value_name("VERSION")
                    .value_parser(["None", "1.2", "1.3"])
                    .help("Accepted, not used (nor by the original)"),
            );
        for (long, value, help) in ACCEPTED_ONLY {
            let hidden = matches!(*long, "http-timeout" | "endpoint-type");
            cmd = cmd.arg(Arg::new(long.replace('-', "_")).long(*long).value_name(*value).help(*help).hide(hidden));
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for OsArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut s = OsArgs::default();
        s.update_from_arg_matches(m)?;
        Ok(s)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        let get = |id: &str| m.get_one::<String>(id).cloned();
        let f = &mut self.flags;
        f.cloud = get("os_cloud");
        f.auth_type = get("os_auth_type");
        for option in os_cli::PLUGIN_OPTIONS {
            if let Some(v) = get(&format!("os_{option}")) {
                f.auth.insert(option.to_string(), v);
            }
        }
        f.region_name = get("os_region_name");
        f.interface = get("os_interface");
        f.cacert = m.get_one::<PathBuf>("os_cacert").cloned();
        f.insecure = m.get_flag("insecure");
        Ok(())
    }
}

pub async fn run(args: InfoArgs) -> Result<ExitCode> {
    let started = chrono::Utc::now();
    let mut site = SiteConfig::load(&args.site_config).map_err(|e| anyhow!("{e}"))?;
    let env = openstack::config::process_env();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let resolved = os_cli::info_cloud(&args.os.flags, &env, &cwd, &site.endpoint, site.region.as_deref())?;
    for option in &resolved.unused {
        tracing::warn!("{option} is given but fedsite does not use it (docs/cloudinfo.md, Drop-in)");
    }
    let cloud = resolved.cloud;
    if args.vos_from_projects {
        let s = Session::connect(&cloud)
            .await
            .with_context(|| format!("authenticating to {} to list projects", cloud.auth_url))?;
        let found = cloudinfo::discover::vos_from_projects(&s).await.map_err(|e| anyhow!("{e}"))?;
        cloudinfo::discover::merge_vos(&mut site, found);
    }
    let mut opts = Options::new(cloud, resolved.auth_type);
    opts.creation_time = started;
    opts.select_flavors = match args.select_flavors {
        SelectFlavors::All => FlavorSelect::All,
        SelectFlavors::Public => FlavorSelect::Public,
        SelectFlavors::Private => FlavorSelect::Private,
    };
    opts.only_appdb_images = args.only_appdb_images;
    opts.flavor_keys = FlavorKeys {
        infiniband: args.property_flavor_infiniband.clone(),
        infiniband_value: args.property_flavor_infiniband_value.clone(),
        gpu_number: args.property_flavor_gpu_number.clone(),
        gpu_vendor: args.property_flavor_gpu_vendor.clone(),
        gpu_model: args.property_flavor_gpu_model.clone(),
        gpu_memory: args.property_flavor_gpu_memory.clone(),
        gpu_virt_type: args.property_flavor_gpu_virt_type.clone(),
    };
    opts.image_keys = ImageKeys {
        gpu_driver: args.property_image_gpu_driver.clone(),
        gpu_cuda: args.property_image_gpu_cuda.clone(),
        gpu_cudnn: args.property_image_gpu_cudnn.clone(),
    };
    opts.exit_on_share_errors = args.exit_on_share_errors;
    opts.auditor = siteconf::resolve::info::auditor_cloud(args.auditor_role_cloud.as_deref())
        .map(|name| CloudConfig::load(Some(name)));
    opts.timeout = Duration::from_secs_f64(args.timeout);
    opts.insecure = args.os.flags.insecure;
    opts.gocdb_url = args.gocdb_url.clone();
    opts.ca_file = args.ca_file.clone();
    opts.fixes = Fixes {
        manager_sizes: args.fix_manager_sizes,
        extra_properties: args.publish_extra_properties,
        share_error_details: args.share_error_details,
    };
    let (doc, report) = cloudinfo::discover(&site, &opts).await?;
    for (vo, e) in &report.failed_shares {
        tracing::warn!("share {vo} skipped: {e}");
    }
    let data = cloudinfo::publish::payload(&doc.render());
    if let Some(path) = &args.output {
        cloudinfo::publish::to_file(path, &data).map_err(|e| anyhow!("{e}"))?;
    }
    let swift = siteconf::resolve::info::swift_target(
        args.swift_container.as_deref(),
        args.swift_object.as_deref(),
        args.swift_cloud.as_deref(),
        &site.gocdb,
    );
    if let Some(target) = &swift {
        let cfg = match &target.cloud {
            Some(name) => CloudConfig::load(Some(name))?,
            None => opts.cloud.clone(),
        };
        let session =
            Session::connect(&cfg).await.with_context(|| format!("authenticating to {} for Swift", cfg.auth_url))?;
        let up = cloudinfo::publish::to_swift(&session, &target.container, &target.object, &data)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        tracing::info!("published {} (etag {})", up.url, up.etag);
    }
    if args.output.is_none() && swift.is_none() {
        use std::io::Write;
        std::io::stdout().write_all(&data).context("writing stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `fedsite demo`'s section: the document of the simulated site (shares
/// found by VO property, read with the accounting account), published to
/// the sim's Swift with the admin account, summed up on one screen.
pub async fn demo_summary(handle: &sim::SimHandle) -> Result<()> {
    let yaml = handle.clouds_yaml();
    let reader = CloudConfig::from_clouds_yaml(&yaml, None, "sim-accounting", "simulator clouds.yaml")?;
    let admin = CloudConfig::from_clouds_yaml(&yaml, None, "sim", "simulator clouds.yaml")?;
    let session = Session::connect(&reader).await?;
    let mut site = SiteConfig::parse(
        &format!("gocdb: {}\nendpoint: {}\nvos: []\n", sim::gocdb::SITE_NAME, handle.auth_url()),
        "demo site",
    )
    .map_err(|e| anyhow!("{e}"))?;
    let found = cloudinfo::discover::vos_from_projects(&session).await.map_err(|e| anyhow!("{e}"))?;
    cloudinfo::discover::merge_vos(&mut site, found);
    let mut opts = Options::new(reader.clone(), "password");
    opts.gocdb_url = format!("{}/gocdb/gocdbpi/public/", handle.base_url());
    opts.timeout = Duration::from_secs(30);
    let (doc, report) = cloudinfo::discover(&site, &opts).await?;
    let data = cloudinfo::publish::payload(&doc.render());
    let up = cloudinfo::publish::to_swift(&Session::connect(&admin).await?, "cloud-info", "SIM-CLOUD.json", &data)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let n = |c: &str| doc.objects(c).len();
    let ep = doc.endpoint();
    println!(
        "{} shares ({} failed), {} images, {} instance types, {} GPU accelerators; endpoint {} ({})",
        n("Share"),
        report.failed_shares.len(),
        n("CloudComputingImage"),
        n("CloudComputingInstanceType"),
        n("CloudComputingVirtualAccelerator"),
        ep.map(|e| e.health_state.as_str()).unwrap_or("?"),
        ep.and_then(|e| e.implementation_version.as_deref()).unwrap_or("?"),
    );
    if let Some(s) = doc.service() {
        println!(
            "VMs: {} total, {} running, {} suspended, {} halted; GOCDB {}",
            s.total_vm.unwrap_or(0),
            s.running_vm.unwrap_or(0),
            s.suspended_vm.unwrap_or(0),
            s.halted_vm.unwrap_or(0),
            pyjson::dumps(&pyjson::Json::Object(s.common.other_info.clone()))
        );
    }
    for s in doc.shares() {
        println!(
            "  {:<40} VMs {:>3}/{:<5} max {} vCPU {} MiB",
            s.common.name.as_deref().unwrap_or("?"),
            s.total_vm.unwrap_or(0),
            s.max_vm.map(|m| m.to_string()).unwrap_or_default(),
            s.instance_max_cpu.unwrap_or(0),
            s.instance_max_ram.unwrap_or(0)
        );
    }
    println!("published {} bytes to {} (etag {})", data.len(), up.url, up.etag);
    Ok(())
}

/// The name the binary answers to as cloud-info-provider 1.2 (a symlink the
/// packages install next to `fedsite`).
pub const ORIGINAL_NAME: &str = "cloud-info-provider-service";

/// cloud-info-provider-service's command line: `fedsite info`'s options, at the top.
#[derive(Debug, clap::Parser)]
#[command(
    name = ORIGINAL_NAME,
    version,
    about = "Cloud Information System provider (fedsite's cloud-info-provider-service; docs/cloudinfo.md)",
    infer_long_args = true
)]
struct Original {
    #[command(flatten)]
    info: InfoArgs,
}

/// Whether the program was run under [`ORIGINAL_NAME`] (the basename of argv[0]).
pub fn invoked_as_original(argv0: Option<&std::ffi::OsStr>) -> bool {
    argv0.and_then(|a| std::path::Path::new(a).file_name()).is_some_and(|n| n == ORIGINAL_NAME)
}

/// argparse's `fromfile_prefix_chars="@"`: `@FILE` is replaced by the file's
/// lines, one argument each (and `@` in them expanded again).
fn expand_argfiles(args: Vec<std::ffi::OsString>, depth: usize) -> Result<Vec<std::ffi::OsString>> {
    let mut out = Vec::new();
    for a in args {
        match a.to_str().and_then(|s| s.strip_prefix('@')) {
            Some(file) if depth < 16 => {
                let text =
                    std::fs::read_to_string(file).with_context(|| format!("reading the argument file {file}"))?;
                out.extend(expand_argfiles(text.lines().map(Into::into).collect(), depth + 1)?);
            }
            Some(file) => anyhow::bail!("argument file {file}: nested too deep"),
            None => out.push(a),
        }
    }
    Ok(out)
}

/// os-client-config's `_fix_argv`: `--os_auth_url` is `--os-auth-url`.
fn dash_option_names(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.into_iter()
        .map(|a| match a.to_str() {
            Some(s) if s.starts_with("--") && s.contains('_') => {
                let (name, value) = s.split_once('=').map_or((s, None), |(n, v)| (n, Some(v)));
                let name = name.replace('_', "-");
                value.map_or(name.clone(), |v| format!("{name}={v}")).into()
            }
            _ => a,
        })
        .collect()
}

/// The program run as `cloud-info-provider-service`: the original's options
/// and output; logs (warnings, or everything with `--debug`) as text on stderr.
pub fn cloud_info_provider_main(args: Vec<std::ffi::OsString>) -> ExitCode {
    let mut args = args.into_iter();
    let argv0 = args.next().unwrap_or_else(|| ORIGINAL_NAME.into());
    let rest = match expand_argfiles(args.collect(), 0) {
        Ok(a) => dash_option_names(a),
        Err(e) => {
            eprintln!("{ORIGINAL_NAME}: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let cli = match <Original as clap::Parser>::try_parse_from(std::iter::once(argv0).chain(rest)) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let filter = if cli.info.debug {
        "debug".to_string()
    } else {
        std::env::var("FEDSITE_LOG").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| "warn".into())
    };
    crate::default_sigpipe();
    let _ = crate::init_logging(&filter, crate::LogFormat::Text, false);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{ORIGINAL_NAME}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.info)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{ORIGINAL_NAME}: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
