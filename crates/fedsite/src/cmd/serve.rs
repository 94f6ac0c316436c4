//! `fedsite serve --metrics ADDR`: a long-running process serving Prometheus `/metrics` from the
//! ledger and the spool (read at each scrape), optionally running `accounting extract` then
//! `send` in-process every `--every`, whose run metrics and API counters it adds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use clap::{Args, Parser};

use crate::cmd::accounting::ExtractArgs;
use crate::cmd::send::SendArgs;
use crate::metrics::{self, Metrics};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464; port 0 picks one,
    /// printed on stdout).
    #[arg(long, value_name = "ADDR")]
    pub metrics: SocketAddr,
    /// The ledger: a SQLite file, or a postgresql:// URL (default: fedsite.toml's [ledger]
    /// path, else /var/lib/fedsite/ledger.sqlite). It must exist unless `--extract-arg` is given.
    #[arg(long, env = "FEDSITE_LEDGER")]
    pub ledger: Option<PathBuf>,
    /// The outgoing spool, for its message counts (and `<spool>.quarantine`); default:
    /// fedsite.toml's [spool].
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Run extract (if `--extract-arg` is given) then send (if `--send-arg` is given) every
    /// this long: `90s`, `30m`, `1h`, `1d`.
    #[arg(long, value_parser = parse_every)]
    pub every: Option<Duration>,
    /// An argument of the extract run, as `fedsite accounting extract` takes it (repeat:
    /// `--extract-arg=--caso-conf=/etc/caso/caso.conf`). `--ledger` is added.
    #[arg(long = "extract-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub extract_args: Vec<String>,
    /// An argument of the send run, as `fedsite send` takes it (repeat:
    /// `--send-arg=--sender-cfg=/etc/apel/sender.cfg`). `--ledger` is added.
    #[arg(long = "send-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub send_args: Vec<String>,
    /// Stop running (but keep serving) after this many cycles; 0: never.
    #[arg(long, default_value_t = 0)]
    pub cycles: u64,
}

/// `90s`, `30m`, `1h`, `1d` (or plain seconds).
fn parse_every(s: &str) -> Result<Duration> {
    let (num, unit) = s.trim().split_at(s.trim().find(|c: char| !c.is_ascii_digit()).unwrap_or(s.trim().len()));
    let n: u64 = num.parse().map_err(|_| anyhow::anyhow!("{s:?} is not a duration (90s, 30m, 1h, 1d)"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86400),
        _ => bail!("{s:?}: unknown unit {unit:?} (s, m, h, d)"),
    };
    if secs == 0 {
        bail!("the interval must be above 0");
    }
    Ok(Duration::from_secs(secs))
}

#[derive(Parser)]
#[command(no_binary_name = true, name = "--extract-arg")]
struct ExtractCli {
    #[command(flatten)]
    a: ExtractArgs,
}

#[derive(Parser)]
#[command(no_binary_name = true, name = "--send-arg")]
struct SendCli {
    #[command(flatten)]
    a: SendArgs,
}

/// The stage's arguments, with `--ledger` added unless given.
fn with_ledger(args: &[String], ledger: &std::path::Path) -> Vec<String> {
    let mut v = args.to_vec();
    if !v.iter().any(|a| a == "--ledger" || a.starts_with("--ledger=")) {
        v.push(format!("--ledger={}", ledger.display()));
    }
    v
}

#[derive(Default)]
struct Runs {
    /// Metrics of the last extract and send runs (gauges).
    last: BTreeMap<&'static str, Metrics>,
    /// API counters over every run of this process.
    api: BTreeMap<openstack::RouteKey, openstack::CallStats>,
    cycles: u64,
    failed_cycles: u64,
}

struct App {
    ledger: PathBuf,
    spool: Option<PathBuf>,
    runs: Mutex<Runs>,
}

impl App {
    fn metrics(&self) -> Result<String> {
        let ledger = crate::cmd::accounting::open_ledger(&self.ledger)?;
        let mut m = Metrics::new();
        for stage in ["extract", "send"] {
            metrics::stage_from_ledger(&mut m, &ledger, stage)?;
        }
        metrics::ledger_records(&mut m, &ledger)?;
        metrics::project_successes(&mut m, &ledger)?;
        metrics::ledger_messages(&mut m, &ledger)?;
        if let Some(spool) = &self.spool {
            let q = messaging::sender::default_quarantine(spool);
            let st = messaging::sender::spool_status(spool, messaging::config::PathType::Dirq, &q)
                .with_context(|| format!("spool {}", spool.display()))?;
            metrics::spool(&mut m, &st);
        }
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        for last in runs.last.values() {
            m.merge(last);
        }
        metrics::api(&mut m, &runs.api);
        m.counter("fedsite_serve_cycles_total", "Extract/send cycles this process ran.", &[], runs.cycles as f64);
        m.counter(
            "fedsite_serve_failed_cycles_total",
            "Cycles with a failed or partial stage.",
            &[],
            runs.failed_cycles as f64,
        );
        Ok(m.render())
    }
}

async fn metrics_handler(State(app): State<Arc<App>>) -> impl IntoResponse {
    let rendered = tokio::task::spawn_blocking(move || app.metrics()).await;
    match rendered {
        Ok(Ok(text)) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
        }
        Ok(Err(e)) => {
            tracing::error!("metrics: {e:#}");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("fedsite metrics: {e:#}\n")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("fedsite metrics: {e}\n")).into_response(),
    }
}

pub async fn run(mut args: ServeArgs) -> Result<std::process::ExitCode> {
    let file = super::site_config()?;
    let ledger_path = siteconf::resolve::ledger_path(args.ledger.as_deref(), file.as_ref());
    if args.spool.is_none() {
        args.spool = file.as_ref().map(|f| f.spool());
    }
    // Parse the stages' arguments now, so a mistake stops the start, not the first cycle.
    let extract_argv = (!args.extract_args.is_empty()).then(|| with_ledger(&args.extract_args, &ledger_path));
    let send_argv = (!args.send_args.is_empty()).then(|| with_ledger(&args.send_args, &ledger_path));
    if let Some(v) = &extract_argv {
        ExtractCli::try_parse_from(v).map_err(|e| anyhow::anyhow!("--extract-arg: {e}"))?;
    }
    if let Some(v) = &send_argv {
        SendCli::try_parse_from(v).map_err(|e| anyhow::anyhow!("--send-arg: {e}"))?;
    }
    if args.every.is_none() && (extract_argv.is_some() || send_argv.is_some()) {
        bail!("--extract-arg/--send-arg need --every");
    }
    if args.every.is_some() && extract_argv.is_none() && send_argv.is_none() {
        bail!("--every needs --extract-arg and/or --send-arg (what to run)");
    }
    // The ledger must open now, or every scrape would fail. Only a serve that runs extract
    // may create it; one that only reads says it does not exist.
    match &extract_argv {
        Some(_) => drop(crate::cmd::accounting::open_ledger(&ledger_path)?),
        None => drop(crate::cmd::accounting::open_existing_ledger(&ledger_path)?),
    }
    let app = Arc::new(App { ledger: ledger_path.clone(), spool: args.spool.clone(), runs: Mutex::default() });
    let listener =
        tokio::net::TcpListener::bind(args.metrics).await.with_context(|| format!("binding {}", args.metrics))?;
    let addr = listener.local_addr()?;
    println!("serving metrics on http://{addr}/metrics");
    let router = Router::new().route("/metrics", get(metrics_handler)).with_state(app.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    if let Some(every) = args.every {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let ok = cycle(&app, extract_argv.as_deref(), send_argv.as_deref()).await;
            let n = {
                let mut r = app.runs.lock().unwrap_or_else(|e| e.into_inner());
                r.cycles += 1;
                r.failed_cycles += u64::from(!ok);
                r.cycles
            };
            println!("cycle {n} done ({})", if ok { "ok" } else { "failed" });
            if args.cycles > 0 && n >= args.cycles {
                break;
            }
        }
    }
    server.await.context("metrics server task")?.context("metrics server")?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// One extract + send; true when both went through.
async fn cycle(app: &App, extract: Option<&[String]>, send: Option<&[String]>) -> bool {
    let mut ok = true;
    if let Some(argv) = extract {
        match ExtractCli::try_parse_from(argv) {
            Ok(cli) => match crate::cmd::accounting::extract_run(cli.a).await {
                Ok(done) => {
                    let mut m = Metrics::new();
                    if let Some(report) = &done.report {
                        metrics::extract_run(&mut m, report);
                    }
                    ok &= done.code == std::process::ExitCode::SUCCESS;
                    let mut r = app.runs.lock().unwrap_or_else(|e| e.into_inner());
                    r.last.insert("extract", m);
                    metrics::add_counters(&mut r.api, &done.counters);
                }
                Err(e) => {
                    tracing::error!("extract: {e:#}");
                    ok = false;
                }
            },
            Err(e) => {
                tracing::error!("--extract-arg: {e}");
                ok = false;
            }
        }
    }
    if let Some(argv) = send {
        match SendCli::try_parse_from(argv) {
            Ok(cli) => match crate::cmd::send::run_report(cli.a).await {
                Ok((code, report)) => {
                    let mut m = Metrics::new();
                    if let Some(report) = &report {
                        metrics::send_run(&mut m, report);
                    }
                    ok &= code == std::process::ExitCode::SUCCESS;
                    app.runs.lock().unwrap_or_else(|e| e.into_inner()).last.insert("send", m);
                }
                Err(e) => {
                    tracing::error!("send: {e:#}");
                    ok = false;
                }
            },
            Err(e) => {
                tracing::error!("--send-arg: {e}");
                ok = false;
            }
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_every("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_every("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_every("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_every("2d").unwrap(), Duration::from_secs(172800));
        assert_eq!(parse_every("15").unwrap(), Duration::from_secs(15));
        assert!(parse_every("0s").is_err());
        assert!(parse_every("1w").unwrap_err().to_string().contains("unknown unit"));
        assert!(parse_every("h").is_err());
    }
}
