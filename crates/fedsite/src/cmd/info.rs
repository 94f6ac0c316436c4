//! `fedsite info`: the site's GLUE 2.1 JSON description (cloud-info-provider
//! 1.2's `cloud-info-provider-service`, same options and output), published
//! to stdout, a file, or a Swift container.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::{Args, ValueEnum};
use cloudinfo::{Fixes, FlavorKeys, FlavorSelect, ImageKeys, Options, SiteConfig};
use openstack::{CloudConfig, Session};

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
    /// Cloud of clouds.yaml with the base credentials; OS_* variables when
    /// neither this nor OS_CLOUD is set (OS_AUTH_URL defaults to the site endpoint).
    #[arg(long, env = "OS_CLOUD")]
    pub os_cloud: Option<String>,
    /// The Endpoint's `Authentication` (default: the credentials' auth type).
    #[arg(long, env = "OS_AUTH_TYPE")]
    pub os_auth_type: Option<String>,
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
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// No TLS verification for GOCDB and the CA probe.
    #[arg(long)]
    pub insecure: bool,
    /// GOCDB public API URL.
    #[arg(long, default_value = cloudinfo::gocdb::DEFAULT_URL)]
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

fn base_config(args: &InfoArgs, site: &SiteConfig) -> Result<CloudConfig> {
    let mut env = openstack::config::process_env();
    if args.os_cloud.is_none() && env.get("OS_AUTH_URL").is_none_or(|v| v.is_empty()) {
        env.insert("OS_AUTH_URL".into(), site.endpoint.clone());
    }
    if let Some(r) = &site.region {
        env.entry("OS_REGION_NAME".into()).or_insert_with(|| r.clone());
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    Ok(CloudConfig::load_with(args.os_cloud.as_deref(), &env, &cwd)?)
}

pub async fn run(args: InfoArgs) -> Result<ExitCode> {
    let started = chrono::Utc::now();
    let mut site = SiteConfig::load(&args.site_config).map_err(|e| anyhow!("{e}"))?;
    let cloud = base_config(&args, &site)?;
    if args.vos_from_projects {
        let s = Session::connect(&cloud)
            .await
            .with_context(|| format!("authenticating to {} to list projects", cloud.auth_url))?;
        let found = cloudinfo::discover::vos_from_projects(&s).await.map_err(|e| anyhow!("{e}"))?;
        cloudinfo::discover::merge_vos(&mut site, found);
    }
    let auth_type = args
        .os_auth_type
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| cloudinfo::discover::auth_type_of(&cloud).to_string());
    let mut opts = Options::new(cloud, auth_type);
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
    opts.auditor =
        args.auditor_role_cloud.as_deref().filter(|s| !s.is_empty()).map(|name| CloudConfig::load(Some(name)));
    opts.timeout = Duration::from_secs(args.timeout.max(1));
    opts.insecure = args.insecure;
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
    if let Some(container) = &args.swift_container {
        let cfg = match &args.swift_cloud {
            Some(name) => CloudConfig::load(Some(name))?,
            None => opts.cloud.clone(),
        };
        let session =
            Session::connect(&cfg).await.with_context(|| format!("authenticating to {} for Swift", cfg.auth_url))?;
        let object = args.swift_object.clone().unwrap_or_else(|| format!("{}.json", site.gocdb));
        let up = cloudinfo::publish::to_swift(&session, container, &object, &data).await.map_err(|e| anyhow!("{e}"))?;
        tracing::info!("published {} (etag {})", up.url, up.etag);
    }
    if args.output.is_none() && args.swift_container.is_none() {
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
