//! The `fedsite` command line: parses arguments and wires the library crates
//! together. Each subcommand lives in its own module under `cmd/`; nothing
//! here knows an API or a format.

mod cmd;
mod stages;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// The heading of the options every subcommand takes, apart from its own.
const GLOBAL: &str = "Global options";

/// fedsite: make an OpenStack site a well-behaved member of the EGI
/// Federated Cloud.
#[derive(Debug, Parser)]
#[command(name = "fedsite", version, about, long_about = None)]
struct Cli {
    /// Log level filter (error, warn, info, debug, trace, or a
    /// tracing-subscriber directive). Logs go to stderr.
    #[arg(long, global = true, help_heading = GLOBAL, env = "FEDSITE_LOG", default_value = "info")]
    log: String,
    /// Log format: text on a terminal, JSON lines otherwise (auto), or forced.
    #[arg(long, global = true, help_heading = GLOBAL, env = "FEDSITE_LOG_FORMAT", value_enum, default_value = "auto")]
    log_format: LogFormat,
    /// Only errors (same as --log error).
    #[arg(short, long, global = true, help_heading = GLOBAL, conflicts_with = "verbose")]
    quiet: bool,
    /// More detail: -v debug, -vv trace.
    #[arg(short, long, global = true, help_heading = GLOBAL, action = clap::ArgAction::Count)]
    verbose: u8,
    /// fedsite.toml (docs/configuration.md); flags override its values.
    #[arg(long, global = true, help_heading = GLOBAL, env = "FEDSITE_CONFIG", value_name = "PATH")]
    config: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a simulated OpenStack site and print a clouds.yaml for it.
    Sim(cmd::sim::SimArgs),
    /// Start the simulated site in-process and run the pipeline against it.
    Demo(cmd::demo::DemoArgs),
    /// Accounting: extract APEL records into the ledger and the spool,
    /// republish a period, inspect the ledger.
    Accounting(cmd::accounting::AccountingArgs),
    /// Show what a site holds: projects, VOs, flavors, servers, volumes,
    /// floating IPs and images, read through the OpenStack APIs.
    Inventory(cmd::inventory::InventoryArgs),
    /// Send the outgoing spool to AMS once, as cron runs ssmsend (reads SSM's sender.cfg).
    Send(cmd::send::SendArgs),
    /// Pull accounting messages from an AMS subscription, verify and store them.
    Receive(cmd::receive::ReceiveArgs),
    /// Inspect the outgoing spool and its quarantine.
    Spool(cmd::spool::SpoolArgs),
    /// VM images: sync from the OCI registry and signed HEPiX lists into Glance.
    Images(cmd::images::ImagesArgs),
    /// The site's GLUE 2.1 JSON description (cloud-info-provider), to
    /// stdout, a file or a Swift container.
    Info(cmd::info::InfoArgs),
    /// Check the site against what EGI requires (exit 0 ok, 1 warning, 2 critical).
    Check(cmd::check::CheckArgs),
    /// One of ARGO's probes of the site (vm, swift, info, accounting, keystone, ports) as a
    /// Nagios plugin: a status line with perfdata, exit 0 ok, 1 warning, 2 critical, 3 unknown.
    Probe(cmd::probe::ProbeArgs),
    /// Keystone OIDC federation with EGI Check-in: generate, apply, lint.
    Keystone(cmd::keystone::KeystoneArgs),
    /// Serve Prometheus metrics of the ledger and spool; run extract + send on an interval.
    Serve(cmd::serve::ServeArgs),
    /// Render the ledger's usage, deliveries and run warnings as one self-contained HTML page.
    Report(cmd::report::ReportArgs),
    /// Benchmark fedsite against cASO and SSM on the simulated site (docs/performance.md):
    /// runs the separate fedsite-bench program (`cargo build --release -p bench`).
    Bench(cmd::external::BenchArgs),
    /// Write fedsite.toml from caso.conf / sender.cfg / sites yaml, or check one.
    Config(cmd::config::ConfigArgs),
    /// One fedsite for every site of a federation, from the catch-all sites
    /// folder: validate it (docs/central.md).
    Central(cmd::central::CentralArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (fedsite.1 and one per subcommand) into a directory.
    Man {
        #[arg(value_name = "DIR")]
        dir: std::path::PathBuf,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Auto,
    Text,
    Json,
}

/// The `--log-format` value as written on a command line.
fn log_format_name(f: LogFormat) -> &'static str {
    match f {
        LogFormat::Auto => "auto",
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    }
}

/// A command whose output goes into `head` ends quietly when the reader goes away (as
/// cat does), not with a panic on EPIPE. Long-running servers keep Rust's default
/// (SIGPIPE ignored); sockets never raise it on Linux (send with MSG_NOSIGNAL).
fn default_sigpipe() {
    // SAFETY: called once, before any thread is started; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    // Run as cloud-info-provider-service (the packages' symlink): the original's command line.
    if cmd::info::invoked_as_original(std::env::args_os().next().as_deref()) {
        return cmd::info::cloud_info_provider_main(std::env::args_os().collect());
    }
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        // `probe` and `check --nagios` answer a usage error with Nagios's UNKNOWN (3).
        Err(e) => match cmd::probe::usage_error(&e, &argv) {
            Some(code) => return code,
            None => e.exit(),
        },
    };
    if !matches!(cli.command, Command::Serve(_) | Command::Sim(_) | Command::Bench(_) | Command::Demo(_)) {
        default_sigpipe();
    }
    let debug = matches!(&cli.command, Command::Info(a) if a.debug);
    let filter = match (cli.quiet, cli.verbose) {
        (true, _) => "error".to_string(),
        (false, 0) if debug => "debug".to_string(),
        (false, 0) => cli.log.clone(),
        (false, 1) => "debug".to_string(),
        (false, _) => "trace".to_string(),
    };
    // `bench` (fedsite-bench) is not measured: its measuring helper would overwrite the child's file.
    let stages = !matches!(cli.command, Command::Bench(_));
    let stage_cpu = init_logging(&filter, cli.log_format, stages);
    cmd::set_config_path(cli.config.clone());
    if let Command::Bench(args) = cli.command {
        return match cmd::external::exec_bench(args, &filter, log_format_name(cli.log_format)) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("fedsite: error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "fedsite", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man { dir } => {
            return match write_man_pages(dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("fedsite: error: writing man pages into {}: {e}", dir.display());
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fedsite: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sim(args) => cmd::sim::run(args).await,
            Command::Demo(args) => cmd::demo::run(args).await,
            Command::Inventory(args) => cmd::inventory::run(args).await,
            Command::Accounting(args) => cmd::accounting::run(args).await,
            Command::Send(args) => cmd::send::run(args).await,
            Command::Receive(args) => cmd::receive::run(args).await,
            Command::Spool(args) => cmd::spool::run(args).await,
            Command::Images(args) => cmd::images::run(args).await,
            Command::Info(args) => cmd::info::run(args).await,
            Command::Check(args) => cmd::check::run(args).await,
            Command::Probe(args) => cmd::probe::run(args).await,
            Command::Keystone(args) => cmd::keystone::run(args).await,
            Command::Config(args) => cmd::config::run(args).await,
            Command::Central(args) => cmd::central::run(args).await,
            Command::Serve(args) => cmd::serve::run(args).await,
            Command::Report(args) => cmd::report::run(args),
            Command::Completions { .. } | Command::Man { .. } | Command::Bench(_) => {
                unreachable!("handled before the runtime")
            }
        }
    });
    if let Some(s) = &stage_cpu {
        s.write_if_asked();
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fedsite: error: {e:#}");
            cmd::error_exit_code(&e)
        }
    }
}

/// Logs go to stderr: text on a terminal, JSON lines (one object per event)
/// when stderr is a file or pipe, as journald and log shippers want. With
/// `FEDSITE_CPU_STAGES` set, the CPU time of each stage is measured too
/// (`stages`; the log filter then applies to the log output only).
fn init_logging(filter: &str, format: LogFormat, stages: bool) -> Option<stages::StageCpu> {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    if stages && std::env::var_os(stages::ENV).is_some() {
        use tracing_subscriber::prelude::*;
        let stage_cpu = stages::StageCpu::default();
        let fmt =
            tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
        let fmt: Box<dyn tracing_subscriber::Layer<_> + Send + Sync> =
            if json { Box::new(fmt.json().flatten_event(true)) } else { Box::new(fmt) };
        let stage_spans =
            tracing_subscriber::filter::filter_fn(|m| m.is_span() && accounting::stage::ALL.contains(&m.name()))
                .with_max_level_hint(tracing::level_filters::LevelFilter::INFO);
        tracing_subscriber::registry()
            .with(fmt.with_filter(filter))
            .with(stage_cpu.clone().with_filter(stage_spans))
            .init();
        return Some(stage_cpu);
    }
    // Colours only on a terminal: a log file or the journal gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
    None
}

/// The EXIT STATUS and FILES sections every man page ends with (docs/cli.md).
const MAN_EXIT_STATUS_AND_FILES: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success: everything the command was asked to do was done.
.TP
\fB1\fR
The command ran and something failed: a project not extracted (the others were), a message not sent (quarantined, deferred, skipped), a configuration error, a failing check.
.TP
\fB2\fR
The command line is wrong (unknown option or value).
.TP
\fB3\fR
\fBsend\fR stopped at a failure every message would meet (token exchange, credentials, no such AMS project or topic, AMS unreachable, untrusted certificate): nothing was quarantined, every element is left in the spool.
.TP
\fB75\fR
Another run holds the lock of the ledger, spool or store; nothing was done (\fB\-\-wait\fR waits for it).
.TP
\fB130\fR, \fB143\fR
Interrupted (SIGINT, SIGTERM); a rerun resumes.
.PP
\fBcheck\fR exits with the worst status of its checks: 0 ok, 1 warning, 2 critical.
\fBprobe\fR and \fBcheck \-\-nagios\fR follow the Nagios plugin contract: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the probe could not run: no credentials, endpoint unreachable, wrong command line).
.SH FILES
.TP
\fI/etc/fedsite/fedsite.toml\fR
The configuration (\fB\-\-config\fR, \fBFEDSITE_CONFIG\fR); owned by the service user, mode 0600.
.TP
\fI/var/lib/fedsite/ledger.sqlite\fR
The ledger of runs, checkpoints, record snapshots and message states (\fB\-\-ledger\fR, \fB[ledger] path\fR).
.TP
\fI/var/spool/apel/outgoing/openstack\fR
The outgoing spool (dirq), read by \fBfedsite send\fR or ssmsend; refused messages go to \fI<spool>.quarantine/\fR.
.TP
\fI/etc/apel/sender.cfg\fR, \fI/etc/apel/receiver.cfg\fR, \fI/etc/caso/caso.conf\fR
The original tools' files, read as they are (\fB\-\-sender\-cfg\fR, \fB\-\-receiver\-cfg\fR, \fB\-\-caso\-conf\fR).
.SH "SEE ALSO"
The documentation in /usr/share/doc/fedsite (docs/cli.md, docs/delivery.md, docs/configuration.md).
"#;

/// fedsite.1 and fedsite-<sub>.1 (recursively) into `dir`.
fn write_man_pages(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    fn walk(cmd: clap::Command, name: String, dir: &std::path::Path) -> std::io::Result<()> {
        let cmd = cmd.name(name.clone());
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
        out.extend_from_slice(MAN_EXIT_STATUS_AND_FILES.as_bytes());
        std::fs::write(dir.join(format!("{name}.1")), out)?;
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
            walk(sub.clone(), format!("{name}-{}", sub.get_name()), dir)?;
        }
        Ok(())
    }
    let mut root = Cli::command();
    root.build();
    walk(root, "fedsite".into(), dir)
}
