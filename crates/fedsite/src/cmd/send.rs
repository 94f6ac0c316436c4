//! `fedsite send`: one pass over the outgoing spool to AMS, as cron runs `ssmsend` (SSM's
//! `sender.cfg` honoured, every key overridable by a flag); `--dry-run` prints the exact
//! publish request bodies. Also `deliver_via_sim`, the demo's send → AMS sim → receive step.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use messaging::ams::{AmsClient, AmsConfig, Auth};
use messaging::config::{PathType, SenderCfg};
use messaging::receiver::{self, CloudSummary, ReceiveReport, ReceiverOptions, RecordStore, Sink};
use messaging::sender::{self, RetryPolicy, SendReport, SenderOptions};
use smime::{Recipient, Signer, Verifier};

/// How to reach AMS (shared by send and receive).
#[derive(Debug, Args, Clone, Default)]
pub struct AmsArgs {
    /// AMS data API base URL (default `https://{[broker] host}`).
    #[arg(long, value_name = "URL")]
    pub ams_url: Option<String>,
    /// X.509 token exchange base URL (default `https://{host name}:8443`).
    #[arg(long, value_name = "URL")]
    pub authn_url: Option<String>,
    /// AMS project (`[messaging] ams_project`).
    #[arg(long)]
    pub project: Option<String>,
    /// Static AMS token (`[messaging] token`); without it, the host certificate gets one.
    #[arg(long, env = "FEDSITE_AMS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Host certificate (`[certificates] certificate`).
    #[arg(long, value_name = "PEM")]
    pub cert: Option<PathBuf>,
    /// Host key (`[certificates] key`).
    #[arg(long, value_name = "PEM")]
    pub key: Option<PathBuf>,
    /// CAs trusted for AMS's TLS (PEM bundle or directory; default REQUESTS_CA_BUNDLE, else the
    /// system roots).
    #[arg(long, value_name = "PATH")]
    pub ca: Option<PathBuf>,
    /// Publish/pull requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Per-request timeout.
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
}

impl AmsArgs {
    /// The AMS client: flags over the configuration file's values.
    pub fn client(&self, host: Option<&str>, project: Option<&str>, cfg_token: Option<&str>) -> Result<AmsClient> {
        let project =
            self.project.as_deref().or(project).context("no AMS project: --project or [messaging] ams_project")?;
        let base = match (&self.ams_url, host) {
            (Some(u), _) => u.clone(),
            (None, Some(h)) => format!("https://{h}"),
            (None, None) => {
                bail!("no AMS address: --ams-url, --sender-cfg with [broker] host, or fedsite.toml [ams] host")
            }
        };
        let auth = match self.token.as_deref().or(cfg_token) {
            Some(t) => Auth::Token(t.to_owned()),
            None => {
                let name = host_name(&base).with_context(|| format!("AMS URL {base} has no host"))?;
                let authn = self.authn_url.clone().unwrap_or_else(|| format!("https://{name}:8443"));
                Auth::X509 {
                    authn_base: authn.parse().with_context(|| format!("authn URL {authn}"))?,
                    host: name,
                    cert: self.cert.clone().context("X.509 token exchange needs --cert (or a static --token)")?,
                    key: self.key.clone().context("X.509 token exchange needs --key")?,
                }
            }
        };
        let mut cfg = AmsConfig::new(&base, project, auth)?;
        cfg.ca = self.ca.clone().or_else(|| std::env::var_os("REQUESTS_CA_BUNDLE").map(PathBuf::from));
        cfg.concurrency = self.concurrency.max(1);
        cfg.timeout = Duration::from_secs(self.timeout_secs.max(1));
        Ok(AmsClient::new(cfg)?)
    }
}

/// `name` of `https://name:port/path`.
fn host_name(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next()?;
    let name = authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority);
    (!name.is_empty()).then(|| name.to_owned())
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// SSM's sender.cfg (flags override its values); without it, fedsite.toml's
    /// [ams] and [spool] (global --config).
    #[arg(long, value_name = "PATH")]
    pub sender_cfg: Option<PathBuf>,
    #[command(flatten)]
    pub ams: AmsArgs,
    /// AMS topic (`[messaging] destination`).
    #[arg(long)]
    pub topic: Option<String>,
    /// Send only this `[[destination]]` of fedsite.toml (default: every one, each spool on its
    /// own).
    #[arg(long, value_name = "NAME")]
    pub destination: Option<String>,
    /// Outgoing spool (`[messaging] path`).
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// `dirq` or `directory` (`[messaging] path_type`).
    #[arg(long)]
    pub path_type: Option<String>,
    /// Where refused messages go (default `<spool>.quarantine`).
    #[arg(long, value_name = "DIR")]
    pub quarantine: Option<PathBuf>,
    /// The ledger (SQLite file or postgresql:// URL): sent messages are recorded, superseded
    /// records left out, the run and its errors kept (for `fedsite report` and metrics).
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
    /// Encrypt to this certificate (`[certificates] server_cert`).
    #[arg(long, value_name = "PEM")]
    pub server_cert: Option<PathBuf>,
    /// Retries of a message after retryable errors (5xx, 408, 429, network).
    #[arg(long, default_value_t = 6)]
    pub max_retries: u32,
    /// First backoff delay; doubles per retry round, with jitter.
    #[arg(long, default_value_t = 1000)]
    pub retry_initial_ms: u64,
    #[arg(long, default_value_t = 60_000)]
    pub retry_max_ms: u64,
    /// No retry round starts after this long.
    #[arg(long, default_value_t = 600)]
    pub retry_max_elapsed_secs: u64,
    /// Messages signed and published per round.
    #[arg(long, default_value_t = 200)]
    pub chunk: usize,
    /// Locks older than this are released by the final purge (dirq default 600).
    #[arg(long, default_value_t = 600)]
    pub purge_maxlock_secs: u64,
    /// Print the exact publish request bodies (one JSON per line) and do nothing else.
    #[arg(long)]
    pub dry_run: bool,
    /// Send every element as it is, without checking it with the APEL loader's rules first
    /// (SSM's behaviour). By default an element APEL would refuse is quarantined, not sent.
    #[arg(long)]
    pub no_validate: bool,
    /// Wait up to this many seconds for another fedsite send on the same spool to finish
    /// (default: exit at once with code 75).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub wait: u64,
    /// After the run, write its Prometheus metrics here (atomically; for node_exporter's
    /// textfile collector, e.g. /var/lib/node_exporter/textfile/fedsite_send.prom).
    #[arg(long, value_name = "PATH")]
    pub metrics_textfile: Option<PathBuf>,
}

fn path_type(s: &str) -> Result<PathType> {
    match s {
        "dirq" => Ok(PathType::Dirq),
        "directory" => Ok(PathType::Directory),
        o => bail!("--path-type {o:?}: expected dirq or directory"),
    }
}

pub async fn run(args: SendArgs) -> Result<ExitCode> {
    run_report(args).await.map(|(code, _)| code)
}

/// One spool and where it goes, as resolved from sender.cfg or fedsite.toml.
struct Target {
    /// The `[[destination]]` name (None: the one spool of sender.cfg, flags or `[spool]`).
    name: Option<String>,
    cfg: Option<SenderCfg>,
    quarantine: Option<PathBuf>,
    url: Option<String>,
    authn_url: Option<String>,
}

/// One send pass over every destination (fedsite.toml's `[[destination]]` tables, each spool
/// locked and sent on its own: one failing does not stop the others, and makes the exit code
/// non-zero); with `--ledger` each is recorded as a run (command "send") with its errors as
/// warnings. Returns the report of all destinations together (None for a dry run) for
/// `fedsite serve`'s metrics.
pub async fn run_report(args: SendArgs) -> Result<(ExitCode, Option<SendReport>)> {
    let file = if args.sender_cfg.is_none() { super::site_config()? } else { None };
    let file_ams = file.as_ref().and_then(|f| f.toml.ams.clone()).unwrap_or_default();
    let targets = match (args.sender_cfg.as_deref(), &file) {
        (Some(p), _) => {
            vec![Target { name: None, cfg: Some(SenderCfg::load(p)?), quarantine: None, url: None, authn_url: None }]
        }
        // fedsite.toml's destinations, unless --spool names the one spool.
        (None, Some(f)) if args.spool.is_none() => {
            let named = !f.toml.destinations.is_empty();
            let mut all = f.deliveries()?;
            if let Some(want) = &args.destination {
                all.retain(|d| &d.name == want);
                if all.is_empty() {
                    let names: Vec<String> = f.deliveries()?.into_iter().map(|d| d.name).collect();
                    bail!(
                        "--destination {want}: {} has no such destination (it has: {})",
                        f.file.display(),
                        names.join(", ")
                    );
                }
            }
            all.into_iter()
                .map(|d| Target {
                    name: named.then_some(d.name),
                    cfg: Some(d.sender),
                    quarantine: d.quarantine,
                    url: d.url,
                    authn_url: d.authn_url,
                })
                .collect()
        }
        (None, Some(f)) => vec![Target {
            name: None,
            cfg: Some(f.sender_cfg()?),
            quarantine: f.quarantine(),
            url: file_ams.url.clone(),
            authn_url: file_ams.authn_url.clone(),
        }],
        (None, None) => vec![Target { name: None, cfg: None, quarantine: None, url: None, authn_url: None }],
    };
    if args.destination.is_some() && targets.iter().all(|t| t.name.is_none()) {
        bail!("--destination needs fedsite.toml [[destination]] tables (and no --sender-cfg / --spool)");
    }
    let ledger_path = args.ledger.clone().or_else(|| file.as_ref().map(|f| PathBuf::from(f.ledger())));
    let started = chrono::Utc::now();
    let (mut total, mut codes, mut spools) = (None::<SendReport>, Vec::new(), Vec::new());
    let several = targets.len() > 1;
    for t in targets {
        let label = t.name.clone().map(|n| format!("destination {n}"));
        match send_one(&args, t, file_ams.ca.clone(), ledger_path.as_deref()).await {
            Ok(None) => codes.push(0),
            Ok(Some((code, report, spool))) => {
                codes.push(code);
                spools.push(spool);
                match (&mut total, &label) {
                    (Some(all), Some(l)) => all.merge(report, l),
                    (None, Some(l)) => {
                        let mut all = SendReport::default();
                        all.merge(report, l);
                        total = Some(all);
                    }
                    (_, None) => total = Some(report),
                }
            }
            // One destination's failure is reported; the others are still sent.
            Err(e) if several => {
                eprintln!("fedsite send: {}: {e:#}", label.as_deref().unwrap_or("spool"));
                codes.push(super::error_code(&e));
            }
            Err(e) => return Err(e),
        }
    }
    // The worst outcome of any destination: a failure, then a stop, then a busy lock.
    let code = [1, super::EXIT_STOPPED, super::EXIT_LOCKED].into_iter().find(|c| codes.contains(c)).unwrap_or(0);
    if let (Some(path), Some(report)) = (&args.metrics_textfile, &total) {
        let mut m = crate::metrics::Metrics::new();
        let ledger = ledger_path
            .as_deref()
            .map(|p| ledger::LedgerOptions::mode(ledger::OpenMode::CreateIfMissing).open(p))
            .transpose()?;
        match ledger.as_ref() {
            Some(l) => {
                crate::metrics::stage_from_ledger(&mut m, l, crate::metrics::Stage::Send)?;
                crate::metrics::ledger_messages(&mut m, l)?;
            }
            None => crate::metrics::stage_without_ledger(&mut m, crate::metrics::Stage::Send, started, code == 0, path),
        }
        crate::metrics::send_run(&mut m, report);
        // The spool gauges of the first destination's spool (docs/metrics.md).
        if let Some((spool, path_type, quarantine)) = spools.first()
            && let Ok(st) = sender::spool_status(spool, *path_type, quarantine)
        {
            crate::metrics::spool(&mut m, &st);
        }
        m.write_textfile(path)?;
    }
    Ok((ExitCode::from(code), total))
}

/// One spool to its destination: exit code, report and (spool, type, quarantine); None for a
/// dry run.
async fn send_one(
    args: &SendArgs,
    t: Target,
    ams_ca: Option<PathBuf>,
    ledger_path: Option<&Path>,
) -> Result<Option<(u8, SendReport, (PathBuf, PathType, PathBuf))>> {
    let cfg = t.cfg;
    if let Some(c) = &cfg {
        for n in &c.notes {
            tracing::info!("{}: {n}", c.file.display());
        }
    }
    let spool =
        args.spool.clone().or(cfg.as_ref().map(|c| c.path.clone())).context("no spool: --spool or [messaging] path")?;
    let topic = args
        .topic
        .clone()
        .or(cfg.as_ref().map(|c| c.destination.clone()))
        .context("no topic: --topic or [messaging] destination")?;
    let mut opts = SenderOptions::new(&spool, &topic);
    opts.path_type = match &args.path_type {
        Some(p) => path_type(p)?,
        None => cfg.as_ref().map(|c| c.path_type).unwrap_or(PathType::Dirq),
    };
    if let Some(q) = args.quarantine.clone().or(t.quarantine) {
        opts.quarantine = q;
    }
    opts.retry = RetryPolicy {
        max_retries: args.max_retries,
        initial: Duration::from_millis(args.retry_initial_ms),
        max_delay: Duration::from_millis(args.retry_max_ms),
        max_elapsed: Duration::from_secs(args.retry_max_elapsed_secs),
    };
    opts.chunk = args.chunk.max(1);
    opts.purge_maxlock = Duration::from_secs(args.purge_maxlock_secs);
    opts.validate = !args.no_validate;
    let mut ams = args.ams.clone();
    ams.ca = ams.ca.or(ams_ca);
    ams.ams_url = ams.ams_url.or(t.url);
    ams.authn_url = ams.authn_url.or(t.authn_url);
    ams.cert = ams.cert.or(cfg.as_ref().and_then(|c| c.certificate.clone()));
    ams.key = ams.key.or(cfg.as_ref().and_then(|c| c.key.clone()));
    let (cert, key) = (
        ams.cert.clone().context("signing needs --cert or [certificates] certificate")?,
        ams.key.clone().context("signing needs --key or [certificates] key")?,
    );
    let signer = Signer::new(&cert, &key)
        .with_context(|| format!("host certificate {} / key {}", cert.display(), key.display()))?;
    let server_cert = args.server_cert.clone().or(cfg.as_ref().and_then(|c| c.server_cert.clone()));
    let recipient = server_cert.as_deref().map(Recipient::from_pem_file).transpose()?;

    if args.dry_run {
        if let Some(n) = &t.name {
            eprintln!("fedsite send: destination {n}: topic {topic}, spool {}", spool.display());
        }
        for body in sender::dry_run(&opts, &signer, recipient.as_ref(), messaging::ams::DEFAULT_MAX_REQUEST_BYTES)? {
            println!("{body}");
        }
        return Ok(None);
    }
    let client = ams.client(
        cfg.as_ref().map(|c| c.host.as_str()),
        cfg.as_ref().map(|c| c.ams_project.as_str()),
        cfg.as_ref().and_then(|c| c.token.as_deref()),
    )?;
    // One send at a time per spool (docs/delivery.md); held until this function returns.
    let _lock = sender::lock_spool(&opts, Duration::from_secs(args.wait))?;
    let mut ledger =
        ledger_path.map(|p| ledger::LedgerOptions::mode(ledger::OpenMode::CreateIfMissing).open(p)).transpose()?;
    let run = match ledger.as_mut() {
        Some(l) => Some(l.begin_run(&ledger::NewRun { command: ledger::runs::SEND.into(), ..Default::default() })?),
        None => None,
    };
    let result = sender::send_all(&opts, &client, &signer, recipient.as_ref(), ledger.as_mut()).await;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            if let (Some(l), Some(run)) = (ledger.as_mut(), run) {
                let _ = l.add_run_warning(run, "error", &e.to_string());
                let _ = l.finish_run(run, ledger::RunOutcome::Failed, Some(&e.to_string()));
            }
            return Err(e.into());
        }
    };
    let prefix = t.name.as_ref().map(|n| format!("destination {n}: ")).unwrap_or_default();
    println!("{prefix}{}", report.summary());
    for line in sender::problems(&report, &opts) {
        eprintln!("fedsite send: {prefix}{line}");
    }
    // Anything not delivered makes the exit code non-zero, so cron reports it (docs/cli.md).
    let ok = report.complete();
    if let (Some(l), Some(run)) = (ledger.as_mut(), run) {
        for e in &report.errors {
            l.add_run_warning(run, "error", &format!("{prefix}{e}"))?;
        }
        if let Some(why) = &report.stopped {
            l.add_run_warning(run, "error", &format!("{prefix}stopped, every element left in the spool: {why}"))?;
        }
        if report.deferred > 0 {
            l.add_run_warning(
                run,
                "warn",
                &format!("{prefix}{} messages deferred to the next run (retries exhausted)", report.deferred),
            )?;
        }
        if report.quarantined > 0 {
            l.add_run_warning(
                run,
                "warn",
                &format!(
                    "{prefix}{} messages quarantined ({} refused by the APEL loader's rules before sending)",
                    report.quarantined, report.invalid
                ),
            )?;
        }
        let outcome = if ok {
            ledger::RunOutcome::Succeeded
        } else if report.sent > 0 {
            ledger::RunOutcome::Partial
        } else {
            ledger::RunOutcome::Failed
        };
        let summary = format!("{prefix}{}", report.summary());
        l.finish_run(run, outcome, Some(&summary))?;
    }
    let code = if ok {
        0
    } else if report.stopped.is_some() {
        super::EXIT_STOPPED
    } else {
        1
    };
    Ok(Some((code, report, (opts.spool.clone(), opts.path_type, opts.quarantine.clone()))))
}

/// What the demo's delivery step did.
pub struct Delivery {
    pub sent: SendReport,
    pub received: ReceiveReport,
    pub summaries: Vec<CloudSummary>,
}

/// The demo's delivery step against a sim started with `SimConfig.ams`: sends `spool` (signed
/// with the sim's client certificate, X.509 token exchange), marking messages in `ledger`,
/// then receives everything with the sim's receiver token into `<work>/received.sqlite`
/// (signatures checked against the sim CA, allowed DN = the sim client's) and returns APEL's
/// cloud summaries. Print them with [`super::receive::print_summaries`].
pub async fn deliver_via_sim(
    handle: &sim::SimHandle,
    spool: &Path,
    ledger: Option<&mut ledger::Ledger>,
    work: &Path,
) -> Result<Delivery> {
    let a = handle.ams().context("the simulated site runs without AMS (SimConfig.ams)")?;
    let signer = Signer::new(a.client_cert_path(), a.client_key_path())?;
    let sender_args = AmsArgs {
        ams_url: Some(a.url()),
        authn_url: Some(a.authn_url()),
        cert: Some(a.client_cert_path()),
        key: Some(a.client_key_path()),
        ca: Some(a.ca_pem_path()),
        concurrency: 4,
        timeout_secs: 10,
        ..Default::default()
    };
    let client = sender_args.client(None, Some(sim::ams::DEFAULT_PROJECT), None)?;
    let mut opts = SenderOptions::new(spool, sim::ams::DEFAULT_TOPIC);
    opts.retry.initial = Duration::from_millis(100);
    let sent = sender::send_all(&opts, &client, &signer, None, ledger).await?;

    let receiver_args = AmsArgs { token: a.token("receiver"), cert: None, key: None, ..sender_args };
    let rclient = receiver_args.client(None, Some(sim::ams::DEFAULT_PROJECT), None)?;
    let verifier = Verifier::new(a.ca_pem_path())?;
    let ropts = ReceiverOptions::new(sim::ams::DEFAULT_SUBSCRIPTION, vec![sim::ams::TEST_CLIENT_DN.to_string()]);
    let mut sink = Sink::Records(RecordStore::open(work.join("received.sqlite"))?);
    let received = receiver::receive_once(&ropts, &rclient, &verifier, None, &mut sink).await?;
    let Sink::Records(store) = &sink else { unreachable!() };
    Ok(Delivery { sent, received, summaries: store.cloud_summaries()? })
}
