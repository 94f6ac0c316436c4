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
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser};

use crate::cmd::accounting::ExtractArgs;
use crate::cmd::send::SendArgs;
use sitereport::metrics::{self, Metrics, Stage};

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

#[derive(Default)]
struct Runs {
    /// Metrics of the last extract and send runs (gauges).
    last: BTreeMap<Stage, Metrics>,
    /// API counters over every run of this process.
    api: BTreeMap<openstack::RouteKey, openstack::CallStats>,
    cycles: u64,
    failed_cycles: u64,
}

struct App {
    ledger: PathBuf,
    spool: Option<PathBuf>,
    /// Every destination's spool when there are several (then `spool` is not read).
    destination_spools: Vec<siteconf::resolve::DestinationSpool>,
    runs: Mutex<Runs>,
}

impl App {
    fn metrics(&self) -> Result<String> {
        let ledger = crate::cmd::accounting::open_ledger(&self.ledger)?;
        let mut m = Metrics::new();
        for stage in [Stage::Extract, Stage::Send] {
            metrics::stage_from_ledger(&mut m, &ledger, stage)?;
        }
        metrics::ledger_records(&mut m, &ledger)?;
        metrics::project_successes(&mut m, &ledger)?;
        metrics::ledger_messages(&mut m, &ledger)?;
        if self.destination_spools.is_empty()
            && let Some(spool) = &self.spool
        {
            let q = messaging::sender::default_quarantine(spool);
            let st = messaging::sender::spool_status(spool, messaging::config::PathType::Dirq, &q)
                .with_context(|| format!("spool {}", spool.display()))?;
            metrics::spool(&mut m, &st, None);
        }
        for d in &self.destination_spools {
            let q = d.quarantine.clone().unwrap_or_else(|| messaging::sender::default_quarantine(&d.spool));
            let st = messaging::sender::spool_status(&d.spool, messaging::config::PathType::Dirq, &q)
                .with_context(|| format!("destination {} spool {}", d.name, d.spool.display()))?;
            metrics::spool(&mut m, &st, Some(&d.name));
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

pub async fn run(args: ServeArgs) -> Result<std::process::ExitCode> {
    let file = super::site_config()?;
    let plan = siteconf::resolve::serve::serve_plan(
        &siteconf::resolve::serve::ServeFlags {
            ledger: args.ledger.as_deref(),
            spool: args.spool.as_deref(),
            extract_args: &args.extract_args,
            send_args: &args.send_args,
        },
        file.as_ref(),
    );
    // Parse the stages' arguments once, now, so a mistake stops the start, not the first
    // cycle; each cycle builds its arguments from these matches.
    let extract = plan.extract_argv.as_ref().map(|v| stage_matches::<ExtractCli>(v, "--extract-arg")).transpose()?;
    let send = plan.send_argv.as_ref().map(|v| stage_matches::<SendCli>(v, "--send-arg")).transpose()?;
    plan.check_schedule(args.every)?;
    let ledger_path = plan.ledger.clone();
    // The ledger must open now, or every scrape would fail. Only a serve that runs extract
    // may create it; one that only reads says it does not exist.
    match &extract {
        Some(_) => drop(crate::cmd::accounting::open_ledger(&ledger_path)?),
        None => drop(crate::cmd::accounting::open_existing_ledger(&ledger_path)?),
    }
    let app = Arc::new(App {
        ledger: ledger_path.clone(),
        spool: plan.spool.clone(),
        destination_spools: plan.destination_spools.clone(),
        runs: Mutex::default(),
    });
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
            let ok = cycle(&app, extract.as_ref(), send.as_ref()).await;
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

/// A stage's arguments parsed as its command parses them (`--extract-arg: <clap's error>`).
fn stage_matches<C: CommandFactory>(argv: &[String], what: &str) -> Result<ArgMatches> {
    C::command().try_get_matches_from(argv).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

/// One extract + send; true when both went through.
async fn cycle(app: &App, extract: Option<&ArgMatches>, send: Option<&ArgMatches>) -> bool {
    let mut ok = true;
    if let Some(m) = extract {
        match ExtractCli::from_arg_matches(m) {
            Ok(cli) => match crate::cmd::accounting::extract_run(cli.a).await {
                Ok(done) => {
                    let mut m = Metrics::new();
                    if let Some(report) = &done.report {
                        metrics::extract_run(&mut m, report);
                    }
                    ok &= done.code == std::process::ExitCode::SUCCESS;
                    let mut r = app.runs.lock().unwrap_or_else(|e| e.into_inner());
                    r.last.insert(Stage::Extract, m);
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
    if let Some(m) = send {
        match SendCli::from_arg_matches(m) {
            Ok(cli) => match crate::cmd::send::run_report(cli.a).await {
                Ok((code, report)) => {
                    let mut m = Metrics::new();
                    if let Some(report) = &report {
                        metrics::send_run(&mut m, report);
                    }
                    ok &= code == std::process::ExitCode::SUCCESS;
                    app.runs.lock().unwrap_or_else(|e| e.into_inner()).last.insert(Stage::Send, m);
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
