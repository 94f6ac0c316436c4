//! `fedsite sim`: run the simulated site standalone, print a `clouds:` YAML
//! document for it on stdout, and serve until interrupted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use sim::{ExternalKeystone, Service, ServiceProfile, SimConfig};

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Built-in scenario: tiny, small, medium or large.
    #[arg(long, default_value = "tiny", conflicts_with = "scenario_file")]
    pub scenario: String,
    /// A scenario TOML file instead of a built-in one.
    #[arg(long, value_name = "PATH")]
    pub scenario_file: Option<PathBuf>,
    /// Reference time ("now" of the site), RFC 3339; the scenario's own by
    /// default, so every answer is reproducible.
    #[arg(long)]
    pub now: Option<DateTime<Utc>>,
    /// Move the whole scenario to the host's clock: its reference time becomes now and every
    /// time of its history moves with it (a VM that ran 3 days at the reference has run 3
    /// days now), so an extract without --from/--to sees VMs of their real age.
    #[arg(long, conflicts_with = "now")]
    pub anchor_now: bool,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Also write the clouds.yaml document to this file.
    #[arg(long, value_name = "PATH")]
    pub clouds_yaml: Option<PathBuf>,
    #[command(flatten)]
    pub behaviour: BehaviourArgs,
    /// Hybrid mode: validate tokens against this real Keystone (v3 URL)
    /// instead of the simulated one.
    #[arg(long, value_name = "URL", requires = "keystone_token")]
    pub keystone_url: Option<String>,
    /// Token the simulated services use to validate tokens in hybrid mode.
    #[arg(long, env = "FEDSITE_SIM_KEYSTONE_TOKEN", hide_env_values = true)]
    pub keystone_token: Option<String>,
    /// The registry: `harbor` (registry.egi.eu's rules: token service,
    /// private VO projects, `_catalog` for the admin) or `lenient` (a plain
    /// registry, anonymous pull).
    #[arg(long, value_name = "MODE", default_value = "harbor", value_parser = ["harbor", "lenient"])]
    pub registry: String,
    #[command(flatten)]
    pub ams: AmsSimArgs,
    #[command(flatten)]
    pub federation: FederationArgs,
}

/// A simulated federation (`--federation`): one simulated site per site file of a catch-all
/// sites folder, and a simulated Check-in they all trust (docs/central.md).
#[derive(Debug, Args, Clone, Default)]
pub struct FederationArgs {
    /// Simulate the sites of this folder (`sites/*.yaml`) instead of one site; the scenario
    /// (`--scenario`) is every site's template.
    #[arg(long, value_name = "SITES_DIR", conflicts_with_all = ["clouds_yaml", "ams"])]
    pub federation: Option<PathBuf>,
    /// How many sites (the files in turn, copies named `<file>-copy2`, …); default one per file.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "federation")]
    pub sites: usize,
    /// Where the simulated sites folder, the secrets and the Check-in client secret go.
    #[arg(long, value_name = "DIR", default_value = "fedsite-federation", requires = "federation")]
    pub federation_dir: PathBuf,
    /// Break one site on purpose: SITE=KIND, SITE a file name without .yaml (or a copy's
    /// `<file>-copyN`), KIND one of down, forbidden-vo:VO, slow:FACTOR, broken-flavors,
    /// swift-read-only; repeatable (docs/sim.md).
    #[arg(long = "fault", value_name = "SITE=KIND", requires = "federation",
          value_parser = sim::federation::SiteFault::parse_assignment)]
    pub faults: Vec<(String, sim::federation::SiteFault)>,
}

/// The simulated ARGO Messaging Service (`--ams`).
#[derive(Debug, Args, Clone, Default)]
pub struct AmsSimArgs {
    /// Also run the simulated AMS (data API + X.509 token exchange, HTTPS).
    #[arg(long)]
    pub ams: bool,
    /// Where the AMS CA, server and client certificates are written.
    #[arg(long, value_name = "DIR", default_value = "fedsite-sim-ams")]
    pub ams_cert_dir: PathBuf,
    /// AMS data API port (0 = any free one).
    #[arg(long, default_value_t = 0)]
    pub ams_port: u16,
    /// AMS token exchange (authx509) port (0 = any free one).
    #[arg(long, default_value_t = 0)]
    pub ams_authn_port: u16,
    /// Largest base64 `data` a message may have (larger → 413).
    #[arg(long, default_value_t = sim::ams::DEFAULT_MAX_MESSAGE_BYTES)]
    pub ams_max_message_bytes: usize,
    /// Fraction of AMS requests answered 500/503/429.
    #[arg(long, default_value_t = 0.0)]
    pub ams_error_rate: f64,
    /// Write an SSM sender.cfg for the simulated AMS here (mode 0600: it holds the sender
    /// token): `REQUESTS_CA_BUNDLE=<CA> fedsite send --sender-cfg FILE` sends the spool to it.
    #[arg(long, value_name = "PATH", requires = "ams")]
    pub sender_cfg: Option<PathBuf>,
    /// The spool the written sender.cfg names (`[messaging] path`).
    #[arg(long, value_name = "DIR", default_value = "outgoing", requires = "sender_cfg")]
    pub spool: PathBuf,
}

impl AmsSimArgs {
    /// Sets `config.ams` (and the AMS fault profile) when `--ams` is given.
    pub fn apply(&self, config: &mut SimConfig) -> Result<()> {
        if !self.ams {
            return Ok(());
        }
        if !(0.0..=1.0).contains(&self.ams_error_rate) {
            bail!("--ams-error-rate must be between 0 and 1, got {}", self.ams_error_rate);
        }
        std::fs::create_dir_all(&self.ams_cert_dir)
            .with_context(|| format!("creating {}", self.ams_cert_dir.display()))?;
        let dir = std::fs::canonicalize(&self.ams_cert_dir)?;
        let mut ams = sim::AmsConfig::new(dir);
        ams.bind.set_port(self.ams_port);
        ams.authn_bind.set_port(self.ams_authn_port);
        ams.max_message_bytes = self.ams_max_message_bytes;
        config.ams = Some(ams);
        if self.ams_error_rate > 0.0 {
            let p = config.profiles.entry(Service::Ams).or_default();
            p.error_rate = self.ams_error_rate;
        }
        Ok(())
    }

    /// What a client needs, on stderr (and the sender.cfg, when asked for).
    pub fn print(&self, handle: &sim::SimHandle) -> Result<()> {
        if let Some(a) = handle.ams() {
            eprintln!(
                "AMS data API:      {}  (project {}, topic {}, subscription {})",
                a.url(),
                sim::ams::DEFAULT_PROJECT,
                sim::ams::DEFAULT_TOPIC,
                sim::ams::DEFAULT_SUBSCRIPTION
            );
            eprintln!(
                "AMS authn URL:     {}  (fedsite send --authn-url; the token exchange is {})",
                a.authn_url(),
                a.authx509_url("localhost")
            );
            eprintln!("AMS CA:            {}", a.ca_pem_path().display());
            eprintln!(
                "client cert / key: {} / {}  ({})",
                a.client_cert_path().display(),
                a.client_key_path().display(),
                sim::ams::TEST_CLIENT_DN
            );
            for user in ["sender", "receiver", "admin"] {
                eprintln!("token {user:<9}  {}", a.token(user).unwrap_or_default());
            }
            if let Some(path) = &self.sender_cfg {
                let spool = std::path::absolute(&self.spool)?;
                let cfg = format!(
                    "# SSM sender.cfg for the simulated AMS (fedsite sim --ams --sender-cfg).\n\
                     [sender]\nprotocol: AMS\n\n[broker]\nhost: localhost:{}\n\n\
                     [certificates]\ncertificate: {}\nkey: {}\n\n\
                     [messaging]\nams_project: {}\ndestination: {}\ntoken: {}\npath: {}\npath_type: dirq\n",
                    a.port(),
                    a.client_cert_path().display(),
                    a.client_key_path().display(),
                    sim::ams::DEFAULT_PROJECT,
                    sim::ams::DEFAULT_TOPIC,
                    a.token("sender").unwrap_or_default(),
                    spool.display()
                );
                write_private(path, &cfg)?;
                eprintln!(
                    "sender.cfg:        {}  (REQUESTS_CA_BUNDLE={} fedsite send --sender-cfg {})",
                    path.display(),
                    a.ca_pem_path().display(),
                    path.display()
                );
            }
        }
        Ok(())
    }
}

/// Writes `contents` to `path` with mode 0600 (it holds a password or a token).
fn write_private(path: &std::path::Path, contents: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

/// Latency, concurrency and faults, for every service; a profile file can
/// set them per service.
#[derive(Debug, Args, Clone, Default)]
pub struct BehaviourArgs {
    /// Fixed delay added to every request.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Random extra delay, uniform in [0, jitter].
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// Requests served at once per service (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    pub max_concurrent: usize,
    /// Fraction of requests answered 500/503/429.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fraction of requests that hang, then drop the connection.
    #[arg(long, default_value_t = 0.0)]
    pub timeout_rate: f64,
    /// How long an injected timeout hangs.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// Fraction of answers cut in half.
    #[arg(long, default_value_t = 0.0)]
    pub truncate_rate: f64,
    /// Fraction of answers sent as 200 with malformed JSON.
    #[arg(long, default_value_t = 0.0)]
    pub malformed_rate: f64,
    /// Fraction of answers whose body trickles in over --slow-body-ms.
    #[arg(long, default_value_t = 0.0)]
    pub slow_body_rate: f64,
    #[arg(long, default_value_t = 2_000)]
    pub slow_body_ms: u64,
    /// Seed of the fault and jitter generator.
    #[arg(long, default_value_t = 0)]
    pub fault_seed: u64,
    /// TOML file with a table per service (identity, compute, volume,
    /// network, image, prometheus, ams, ams-authn) holding the same keys as
    /// the flags (`error_rate`, `malformed_rate`, ...); it overrides them.
    #[arg(long, value_name = "PATH")]
    pub profile_file: Option<PathBuf>,
}

impl BehaviourArgs {
    /// The per-service profiles these arguments describe.
    pub fn profiles(&self) -> Result<BTreeMap<Service, ServiceProfile>> {
        for (name, rate) in [
            ("--error-rate", self.error_rate),
            ("--timeout-rate", self.timeout_rate),
            ("--truncate-rate", self.truncate_rate),
            ("--malformed-rate", self.malformed_rate),
            ("--slow-body-rate", self.slow_body_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                bail!("{name} must be between 0 and 1, got {rate}");
            }
        }
        let base = ServiceProfile {
            latency_ms: self.latency_ms,
            jitter_ms: self.jitter_ms,
            max_concurrent: self.max_concurrent,
            error_rate: self.error_rate,
            timeout_rate: self.timeout_rate,
            timeout_ms: self.timeout_ms,
            truncate_rate: self.truncate_rate,
            malformed_rate: self.malformed_rate,
            slow_body_rate: self.slow_body_rate,
            slow_body_ms: self.slow_body_ms,
        };
        let mut profiles: BTreeMap<Service, ServiceProfile> =
            Service::ALL.into_iter().map(|s| (s, base.clone())).collect();
        if let Some(path) = &self.profile_file {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let table: BTreeMap<String, ServiceProfile> =
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            for (name, profile) in table {
                let service = Service::parse(&name).with_context(|| {
                    format!(
                        "{}: unknown service [{name}] (known: identity, compute, volume, network, image, prometheus, ams, ams-authn)",
                        path.display()
                    )
                })?;
                profiles.insert(service, profile);
            }
        }
        Ok(profiles)
    }
}

/// Loads the scenario named by the arguments.
pub fn load_scenario(name: &str, file: Option<&PathBuf>) -> Result<sim::Scenario> {
    let spec = match file {
        Some(path) => sim::ScenarioSpec::load(path)?,
        None => sim::scenario::builtin(name)?,
    };
    Ok(spec.generate())
}

pub async fn run(args: SimArgs) -> Result<ExitCode> {
    let mut scenario = load_scenario(&args.scenario, args.scenario_file.as_ref())?;
    if args.anchor_now {
        scenario = scenario.anchored_at(Utc::now());
    }
    if let Some(folder) = &args.federation.federation {
        return federation(&args, folder, scenario).await;
    }
    let mut config = SimConfig::new(scenario);
    config.now = args.now;
    config.bind = args.listen;
    config.profiles = args.behaviour.profiles()?;
    config.fault_seed = args.behaviour.fault_seed;
    if args.registry == "lenient" {
        config.registry = sim::harbor::RegistryMode::Lenient;
    }
    config.external_keystone = match (args.keystone_url, args.keystone_token) {
        (Some(auth_url), Some(service_token)) => Some(ExternalKeystone { auth_url, service_token }),
        _ => None,
    };
    args.ams.apply(&mut config)?;
    let handle = sim::start(config).await?;
    args.ams.print(&handle)?;
    let yaml = handle.clouds_yaml();
    if let Some(path) = &args.clouds_yaml {
        // It holds the well-known accounts' password: private, as fedsite requires.
        write_private(path, &yaml)?;
    }
    print!("{yaml}");
    use std::io::Write;
    std::io::stdout().flush()?;
    tracing::info!(url = handle.base_url(), now = %handle.now(), "simulated site ready; Ctrl-C stops it");
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    handle.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// `--federation`: starts the simulated federation, prints how to run `fedsite central`
/// against it, and serves until Ctrl-C.
async fn federation(args: &SimArgs, folder: &std::path::Path, template: sim::Scenario) -> Result<ExitCode> {
    let out = &args.federation.federation_dir;
    let fed = sim::federation::start(sim::federation::FederationConfig {
        sites_dir: folder.to_path_buf(),
        count: args.federation.sites,
        out_dir: out.clone(),
        template,
        profiles: args.behaviour.profiles()?,
        faults: args.federation.faults.iter().fold(Default::default(), |mut m, (site, f)| {
            m.entry(site.clone()).or_insert_with(Vec::new).push(f.clone());
            m
        }),
    })
    .await?;
    let secret = out.join("client-secret");
    write_private(&secret, &format!("{}\n", sim::OIDC_CLIENT_SECRET))?;
    println!("simulated federation: {} sites, Check-in {}", fed.sites.len(), fed.issuer());
    println!("sites folder: {}", fed.sites_dir.display());
    for (site, f) in &args.federation.faults {
        println!("fault: {site} {f:?}");
    }
    println!(
        "run: fedsite central run --task info --sites-dir {} --secrets-dir {} \\",
        fed.sites_dir.display(),
        fed.secrets_dir.display()
    );
    println!(
        "       --checkin-discovery {}/.well-known/openid-configuration --client-id {} --client-secret-file {} \\",
        fed.issuer(),
        sim::OIDC_CLIENT_ID,
        secret.display()
    );
    println!("       --gocdb-url {}", fed.gocdb_url());
    use std::io::Write;
    std::io::stdout().flush()?;
    tracing::info!(sites = fed.sites.len(), "simulated federation ready; Ctrl-C stops it");
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    fed.stop().await;
    Ok(ExitCode::SUCCESS)
}
