//! `fedsite send`: one pass over the outgoing spool to AMS, as cron runs `ssmsend` (SSM's
//! `sender.cfg` honoured, every key overridable by a flag); `--dry-run` prints the exact
//! publish request bodies. Also `deliver_via_sim`, the demo's send → AMS sim → receive step.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use messaging::ams::AmsClient;
use messaging::config::PathType;
use messaging::receiver::{self, CloudSummary, ReceiveReport, ReceiverOptions, RecordStore, Sink};
use messaging::sender::{self, RetryPolicy, SendReport, SenderOptions};
use siteconf::resolve::send::{AmsSettings, SendFlags, SendTarget, send_plan};
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
    /// The flags as siteconf's resolver takes them.
    pub fn settings(&self) -> AmsSettings {
        AmsSettings {
            ams_url: self.ams_url.clone(),
            authn_url: self.authn_url.clone(),
            project: self.project.clone(),
            token: self.token.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            ca: self.ca.clone(),
            concurrency: self.concurrency,
            timeout_secs: self.timeout_secs,
        }
    }

    /// The AMS client: flags over the configuration file's values.
    pub fn client(&self, host: Option<&str>, project: Option<&str>, cfg_token: Option<&str>) -> Result<AmsClient> {
        let cfg = self.settings().config(host, project, cfg_token, &openstack::config::process_env())?;
        Ok(AmsClient::new(cfg)?)
    }
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

pub async fn run(args: SendArgs) -> Result<ExitCode> {
    run_report(args).await.map(|(code, _)| code)
}

impl SendArgs {
    /// The flags as siteconf's resolver takes them.
    fn flags(&self) -> SendFlags<'_> {
        SendFlags {
            sender_cfg: self.sender_cfg.as_deref(),
            ams: self.ams.settings(),
            topic: self.topic.as_deref(),
            destination: self.destination.as_deref(),
            spool: self.spool.as_deref(),
            path_type: self.path_type.as_deref(),
            quarantine: self.quarantine.as_deref(),
            ledger: self.ledger.as_deref(),
            server_cert: self.server_cert.as_deref(),
            retry: RetryPolicy {
                max_retries: self.max_retries,
                initial: Duration::from_millis(self.retry_initial_ms),
                max_delay: Duration::from_millis(self.retry_max_ms),
                max_elapsed: Duration::from_secs(self.retry_max_elapsed_secs),
            },
            chunk: self.chunk,
            purge_maxlock: Duration::from_secs(self.purge_maxlock_secs),
            no_validate: self.no_validate,
        }
    }
}

/// One send pass over every destination (fedsite.toml's `[[destination]]` tables, each spool
/// locked and sent on its own: one failing does not stop the others, and makes the exit code
/// non-zero); with a ledger each is recorded as a run (`messaging::sender::send_recorded`).
/// Returns the report of all destinations together (None for a dry run) for `fedsite serve`'s
/// metrics.
pub async fn run_report(args: SendArgs) -> Result<(ExitCode, Option<SendReport>)> {
    let file = if args.sender_cfg.is_none() { super::site_config()? } else { None };
    let flags = args.flags();
    let plan = send_plan(&flags, file.as_ref())?;
    let started = chrono::Utc::now();
    let (mut total, mut codes, mut spools) = (None::<SendReport>, Vec::new(), Vec::new());
    let several = plan.targets.len() > 1;
    for t in &plan.targets {
        let label = t.name.clone().map(|n| format!("destination {n}"));
        match send_one(&args, &flags, t, plan.ledger.as_deref()).await {
            Ok(None) => codes.push(0),
            Ok(Some((code, report, spool))) => {
                codes.push(code);
                spools.push((t.name.clone(), spool));
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
        let mut m = sitereport::metrics::Metrics::new();
        let ledger = plan
            .ledger
            .as_deref()
            .map(|p| ledger::LedgerOptions::mode(ledger::OpenMode::CreateIfMissing).open(p))
            .transpose()?;
        match ledger.as_ref() {
            Some(l) => {
                sitereport::metrics::stage_from_ledger(&mut m, l, sitereport::metrics::Stage::Send)?;
                sitereport::metrics::ledger_messages(&mut m, l)?;
            }
            None => sitereport::metrics::stage_without_ledger(
                &mut m,
                sitereport::metrics::Stage::Send,
                started,
                code == 0,
                path,
            ),
        }
        sitereport::metrics::send_run(&mut m, report);
        // The spool gauges of each spool sent, labelled with the destination when there are
        // several (docs/metrics.md).
        for (name, (spool, path_type, quarantine)) in &spools {
            if let Ok(st) = sender::spool_status(spool, *path_type, quarantine) {
                sitereport::metrics::spool(&mut m, &st, name.as_deref().filter(|_| several));
            }
        }
        m.write_textfile(path)?;
    }
    Ok((ExitCode::from(code), total))
}

/// One spool to its destination: exit code, report and (spool, type, quarantine); None for a
/// dry run.
async fn send_one(
    args: &SendArgs,
    flags: &SendFlags<'_>,
    t: &SendTarget,
    ledger_path: Option<&Path>,
) -> Result<Option<(u8, SendReport, (PathBuf, PathType, PathBuf))>> {
    for n in t.notes() {
        tracing::info!("{n}");
    }
    let plan = t.resolve(flags)?;
    let opts = &plan.options;
    let (cert, key) = (&plan.cert, &plan.key);
    let signer = Signer::new(cert, key)
        .with_context(|| format!("host certificate {} / key {}", cert.display(), key.display()))?;
    let recipient = plan.server_cert.as_deref().map(Recipient::from_pem_file).transpose()?;

    if args.dry_run {
        if let Some(n) = &t.name {
            eprintln!("fedsite send: destination {n}: topic {}, spool {}", opts.topic, opts.spool.display());
        }
        for body in sender::dry_run(opts, &signer, recipient.as_ref(), messaging::ams::DEFAULT_MAX_REQUEST_BYTES)? {
            println!("{body}");
        }
        return Ok(None);
    }
    let client = AmsClient::new(plan.ams_config(&openstack::config::process_env())?)?;
    // One send at a time per spool (docs/delivery.md); held until this function returns.
    let _lock = sender::lock_spool(opts, Duration::from_secs(args.wait))?;
    let mut ledger =
        ledger_path.map(|p| ledger::LedgerOptions::mode(ledger::OpenMode::CreateIfMissing).open(p)).transpose()?;
    let prefix = t.name.as_ref().map(|n| format!("destination {n}: ")).unwrap_or_default();
    let report = sender::send_recorded(opts, &client, &signer, recipient.as_ref(), ledger.as_mut(), &prefix).await?;
    println!("{prefix}{}", report.summary());
    for line in sender::problems(&report, opts) {
        eprintln!("fedsite send: {prefix}{line}");
    }
    // Anything not delivered makes the exit code non-zero, so cron reports it (docs/cli.md).
    let code = if report.complete() {
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
