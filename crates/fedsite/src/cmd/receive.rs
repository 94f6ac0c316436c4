//! `fedsite receive`: pull from an AMS subscription, verify, store (python dirq `Queue` as
//! ssmreceive writes it, or the APEL-semantics records store), acknowledge only after the
//! write is durable. `--once` drains and exits; otherwise runs until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use messaging::config::{ReceiverCfg, load_dns};
use messaging::receiver::{self, CloudSummary, ReceiverOptions, RecordStore, Sink};
use siteconf::resolve::receive::Store;
use smime::{Signer, Verifier};

use super::send::AmsArgs;

#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// SSM's receiver.cfg (flags override its values).
    #[arg(long, value_name = "PATH")]
    pub receiver_cfg: Option<PathBuf>,
    #[command(flatten)]
    pub ams: AmsArgs,
    /// AMS subscription (`[messaging] destination`).
    #[arg(long)]
    pub subscription: Option<String>,
    /// CAs that signer certificates must chain to: PEM file or hashed directory
    /// (`[certificates] capath`).
    #[arg(long, value_name = "PATH")]
    pub capath: Option<PathBuf>,
    /// Allowed signer DNs, SSM's `dns` file format.
    #[arg(long, value_name = "PATH", default_value = "/etc/apel/dns")]
    pub dns: PathBuf,
    /// Store into a python dirq Queue at DIR/incoming and DIR/reject (`[messaging] path`).
    #[arg(long, value_name = "DIR", conflicts_with = "records")]
    pub queue: Option<PathBuf>,
    /// Store into the records SQLite file with APEL's semantics instead.
    #[arg(long, value_name = "PATH")]
    pub records: Option<PathBuf>,
    /// Messages per pull.
    #[arg(long, default_value_t = 100)]
    pub batch: u32,
    /// Drain the subscription and exit.
    #[arg(long)]
    pub once: bool,
    /// With --records: print APEL's cloud summaries per VO and month at the end.
    #[arg(long)]
    pub summaries: bool,
    /// After the run, write its Prometheus metrics here (atomically; for node_exporter's
    /// textfile collector).
    #[arg(long, value_name = "PATH")]
    pub metrics_textfile: Option<PathBuf>,
    /// Wait up to this many seconds for another fedsite receive into the same store to finish
    /// (default: exit at once with code 75).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub wait: u64,
}

pub async fn run(args: ReceiveArgs) -> Result<ExitCode> {
    let started = chrono::Utc::now();
    let textfile = args.metrics_textfile.clone();
    let result = receive(args).await;
    if let Some(path) = &textfile {
        let mut m = sitereport::metrics::Metrics::new();
        sitereport::metrics::stage_without_ledger(
            &mut m,
            sitereport::metrics::Stage::Receive,
            started,
            result.is_ok(),
            path,
        );
        if let Ok(report) = &result {
            sitereport::metrics::receive_run(&mut m, report);
        }
        m.write_textfile(path)?;
    }
    result.map(|_| ExitCode::SUCCESS)
}

async fn receive(args: ReceiveArgs) -> Result<receiver::ReceiveReport> {
    let cfg = args.receiver_cfg.as_deref().map(ReceiverCfg::load).transpose()?;
    let plan = siteconf::resolve::receive::receive_plan(
        &siteconf::resolve::receive::ReceiveFlags {
            subscription: args.subscription.as_deref(),
            cert: args.ams.cert.as_deref(),
            key: args.ams.key.as_deref(),
            capath: args.capath.as_deref(),
            queue: args.queue.as_deref(),
            records: args.records.as_deref(),
        },
        cfg.as_ref(),
    )?;
    let sub = plan.subscription.clone();
    let mut ams = args.ams.clone();
    ams.cert = plan.cert.clone();
    ams.key = plan.key.clone();
    let client = ams.client(
        cfg.as_ref().map(|c| c.host.as_str()),
        cfg.as_ref().map(|c| c.ams_project.as_str()),
        cfg.as_ref().and_then(|c| c.token.as_deref()),
    )?;
    let capath = plan.capath()?;
    let verifier = Verifier::new(capath).with_context(|| format!("CAs {}", capath.display()))?;
    let decryptor = match (&ams.cert, &ams.key) {
        (Some(c), Some(k)) => Some(Signer::new(c, k)?),
        _ => None,
    };
    let opts = ReceiverOptions { batch: args.batch.max(1), ..ReceiverOptions::new(&sub, load_dns(&args.dns)?) };
    let wait = Duration::from_secs(args.wait);
    // One receive at a time per store (docs/delivery.md): AMS acknowledgements are cumulative,
    // so a second puller could acknowledge what the first has not stored yet.
    let (mut sink, _lock) = match plan.store()? {
        Store::Records(r) => {
            let lock = receiver::lock_store(r, false, wait)?;
            (Sink::Records(RecordStore::open(r)?), lock)
        }
        Store::Queue(q) => {
            let sink = Sink::queue(q)?;
            (sink, receiver::lock_store(q, true, wait)?)
        }
    };
    let report = if args.once {
        receiver::receive_once(&opts, &client, &verifier, decryptor.as_ref(), &mut sink).await?
    } else {
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        receiver::receive_loop(&opts, &client, &verifier, decryptor.as_ref(), &mut sink, Duration::from_secs(1), stop)
            .await?
    };
    println!("{}", report.summary());
    if let (true, Sink::Records(store)) = (args.summaries, &sink) {
        print_summaries(&store.cloud_summaries()?);
    }
    Ok(report)
}

/// APEL's cloud summaries folded per VO and month: VMs, wall and CPU hours (deltas).
pub fn print_summaries(rows: &[CloudSummary]) {
    let mut by: std::collections::BTreeMap<(String, i32, u32), (u64, i64, i64)> = Default::default();
    for r in rows {
        let e = by.entry((r.vo.clone(), r.year, r.month)).or_default();
        e.0 += r.number_of_vms;
        e.1 += r.wall_duration;
        e.2 += r.cpu_duration;
    }
    println!("{:<24} {:<8} {:>6} {:>12} {:>12}", "VO", "MONTH", "VMS", "WALL h", "CPU h");
    for ((vo, y, m), (n, w, c)) in by {
        println!("{:<24} {:04}-{:02}  {:>6} {:>12.1} {:>12.1}", vo, y, m, n, w as f64 / 3600.0, c as f64 / 3600.0);
    }
}
