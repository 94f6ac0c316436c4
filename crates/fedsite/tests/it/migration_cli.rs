//! What a site admin following docs/deploy.md meets (issue #21): every command reads
//! fedsite.toml (`--config`), commands that only read a ledger never create one, `check`
//! reads `host:port` as `send` does, output into a closed pipe ends quietly, text logs to a
//! file carry no colours, and the man pages and `--help` say what an admin needs.

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn fedsite(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fedsite"))
        .args(args)
        .env_remove("FEDSITE_CONFIG")
        .env_remove("FEDSITE_LEDGER")
        .stdin(Stdio::null())
        .output()
        .expect("running fedsite")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A ledger with one finished extract run, and a fedsite.toml naming it and a spool.
fn configured(dir: &Path) -> std::path::PathBuf {
    let ledger_path = dir.join("state").join("ledger.sqlite");
    std::fs::create_dir_all(ledger_path.parent().unwrap()).unwrap();
    let mut l = ledger::Ledger::open(&ledger_path).unwrap();
    let run = l.begin_run(&ledger::NewRun { command: "extract".into(), ..Default::default() }).unwrap();
    l.finish_run(run, ledger::RunOutcome::Succeeded, Some("test")).unwrap();
    messaging::dirq::QueueSimple::open(dir.join("spool")).unwrap();
    let config = dir.join("fedsite.toml");
    common::write_private(
        &config,
        format!(
            "[site]\nname = \"TEST-SITE\"\n[ledger]\npath = \"{}\"\n[spool]\npath = \"{}\"\n",
            ledger_path.display(),
            dir.join("spool").display()
        ),
    );
    config
}

#[test]
fn commands_that_read_a_ledger_say_it_is_missing_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere").join("ledger.sqlite");
    let m = missing.to_str().unwrap();
    for args in [
        vec!["accounting", "records", "--summary", "--ledger", m],
        vec!["report", "--ledger", m],
        vec!["serve", "--metrics", "127.0.0.1:0", "--ledger", m],
    ] {
        let out = fedsite(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"), "{args:?}: {}", text(&out));
        assert!(!missing.exists() && !missing.parent().unwrap().exists(), "{args:?} created the ledger");
    }
}

#[test]
fn report_and_check_read_the_ledger_and_spool_of_fedsite_toml() {
    let dir = tempfile::tempdir().unwrap();
    let config = configured(dir.path());
    let c = config.to_str().unwrap();
    let page = dir.path().join("report.html");
    let out = fedsite(&["--config", c, "report", "-o", page.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(std::fs::read_to_string(&page).unwrap().contains("extract"), "the configured ledger's run is on the page");

    let out = fedsite(&["--config", c, "check", "--only", "accounting", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let checks = v["checks"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert!(!checks.is_empty(), "{v}");
    let all = v.to_string();
    assert!(checks.iter().all(|c| c["status"] != "skipped"), "nothing skipped for lack of a ledger or spool: {all}");
    let spool = checks.iter().find(|c| c["id"] == "accounting.spool").unwrap_or_else(|| panic!("{all}"));
    assert_eq!(spool["status"], "ok", "{all}");
    assert!(spool["tested"].as_str().unwrap().contains(dir.path().join("spool").to_str().unwrap()), "{all}");
    let last = checks.iter().find(|c| c["id"] == "accounting.last-send").unwrap();
    assert!(
        last["message"].as_str().unwrap().contains("the ledger holds no message"),
        "the configured ledger was read: {all}"
    );
}

#[test]
fn check_reads_an_ams_host_with_a_port_as_send_does() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg = dir.path().join("sender.cfg");
    common::write_private(
        &cfg,
        format!(
            "[sender]\nprotocol: AMS\n[broker]\nhost: localhost:{port}\n[messaging]\nams_project: accounting\ndestination: t\npath: {}\n",
            dir.path().join("spool").display()
        ),
    );
    let out =
        fedsite(&["check", "--only", "ams", "--sender-cfg", cfg.to_str().unwrap(), "--json", "--connect-timeout", "2"]);
    let all = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(all.contains(&format!("ams.{port}")), "the data port of host:port is tested: {}", text(&out));
    assert!(all.contains("ams.8443"), "the token exchange port is tested: {}", text(&out));
    assert!(!all.contains("ams.443\""), "not the default 443: {}", text(&out));
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `spool status | head -1` over a quarantine of 4,000 elements: far more output than a
    // pipe holds, so fedsite writes into the pipe after head has gone.
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    messaging::dirq::QueueSimple::open(&spool).unwrap();
    let quarantine = messaging::sender::default_quarantine(&spool);
    std::fs::create_dir_all(&quarantine).unwrap();
    for i in 0..4000 {
        let name = format!("6b16711c_{i:014x}");
        std::fs::write(quarantine.join(&name), "x").unwrap();
        std::fs::write(
            quarantine.join(format!("{name}.error")),
            format!("element: 6b16711c/{i:014x}\nreason: reason number {i}\n"),
        )
        .unwrap();
    }
    let full = fedsite(&["spool", "status", "--spool", spool.to_str().unwrap()]);
    assert!(full.stdout.len() > 3 * 65_536, "{} bytes", full.stdout.len());
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("'{}' spool status --spool '{}' | head -1", env!("CARGO_BIN_EXE_fedsite"), spool.display()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
}

#[test]
fn text_logs_to_a_file_carry_no_colours() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_fedsite"))
        .args(["--log-format", "text", "--log", "debug", "demo", "--scenario", "tiny"])
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .unwrap();
    assert!(status.success());
    let logged = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(logged.lines().count() > 3, "the demo logs: {logged}");
    assert!(!logged.contains('\u{1b}'), "no ANSI escapes in a log file: {logged}");
}

#[test]
fn man_pages_say_exit_status_and_files_and_help_keeps_global_options_apart() {
    let dir = tempfile::tempdir().unwrap();
    let out = fedsite(&["man", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    for page in ["fedsite.1", "fedsite-send.1", "fedsite-accounting-extract.1"] {
        let roff = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(roff.contains(".SH \"EXIT STATUS\"") && roff.contains("\\fB75\\fR"), "{page}");
        assert!(roff.contains(".SH FILES") && roff.contains("/etc/fedsite/fedsite.toml"), "{page}");
    }
    let help = String::from_utf8_lossy(&fedsite(&["send", "--help"]).stdout).to_string();
    let global = help.find("Global options:").unwrap_or_else(|| panic!("{help}"));
    let config = help.find("--config <PATH>").unwrap();
    let topic = help.find("--topic <TOPIC>").unwrap();
    assert!(topic < global && global < config, "the command's own options first, then the global ones:\n{help}");
}

/// README's "Using it": the simulated site with its AMS and the sender.cfg it writes; the
/// extract and send commands as printed there (run in a scratch directory).
#[test]
fn the_readme_commands_for_the_simulated_ams_work_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Command::new(env!("CARGO_BIN_EXE_fedsite"))
        .args(["sim", "--scenario", "tiny", "--ams", "--clouds-yaml", "clouds.yaml", "--sender-cfg", "sender.cfg"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let clouds = dir.path().join("clouds.yaml");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&clouds).map_or(true, |y| y.matches("identity_api_version").count() < 2) {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "the sim wrote no clouds.yaml");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    use std::os::unix::fs::PermissionsExt;
    for f in ["clouds.yaml", "sender.cfg"] {
        let mode = std::fs::metadata(dir.path().join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let run = |line: &str| {
        Command::new("bash")
            .args(["-c", line])
            .current_dir(dir.path())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    Path::new(env!("CARGO_BIN_EXE_fedsite")).parent().unwrap().display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env_remove("FEDSITE_CONFIG")
            .env_remove("OS_CLOUD")
            .env_remove("REQUESTS_CA_BUNDLE")
            .output()
            .unwrap()
    };
    let extract = run("fedsite accounting extract --os-cloud sim-accounting --site-name TEST-SITE \
                       --spool outgoing --ledger ledger.sqlite --from 2023-05-01 --to 2023-06-01");
    // tiny has a project without a VO: reported, the others extracted (README says so).
    assert_eq!(extract.status.code(), Some(1), "{}", text(&extract));
    assert!(String::from_utf8_lossy(&extract.stderr).contains("no VO mapping"), "{}", text(&extract));
    let send =
        run("REQUESTS_CA_BUNDLE=fedsite-sim-ams/ca.pem fedsite send --sender-cfg sender.cfg --ledger ledger.sqlite");
    let _ = sim.kill();
    let _ = sim.wait();
    assert_eq!(send.status.code(), Some(0), "{}", text(&send));
    let summary = String::from_utf8_lossy(&send.stdout);
    let sent: usize =
        summary.strip_prefix("sent ").and_then(|r| r.split(',').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(sent > 0, "{summary}");
}

/// `check`'s quarantine count (issue #21 item 9): an element counts once, whether the ledger,
/// the quarantine folder or both hold it, and one whose records went out since (republish and
/// send, or requeue) no longer counts.
#[test]
fn the_quarantine_check_counts_each_element_once_and_forgets_settled_ones() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    messaging::dirq::QueueSimple::open(&spool).unwrap();
    let ledger_path = dir.path().join("ledger.sqlite");
    let mut l = ledger::Ledger::open(&ledger_path).unwrap();
    let t = |h: u32| chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 1, h, 0, 0).unwrap();
    let rec =
        |key: &str, h: u32| ledger::RecordRef { key: key.into(), measured_at: t(h), body_sha256: format!("{key}-{h}") };
    let msg = |element: &str, refs: Vec<ledger::RecordRef>| ledger::NewMessage {
        element: element.into(),
        kind: "cloud".into(),
        created_at: t(1),
        records: refs,
    };
    // Settled: quarantined, then its record sent in a republished message.
    l.record_message(&msg("6b16711c/00000000000001", vec![rec("vm1/2026-11", 1)]), None).unwrap();
    l.quarantine("6b16711c/00000000000001", "HTTP 400").unwrap();
    l.record_message(&msg("6b16711c/00000000000002", vec![rec("vm1/2026-11", 2)]), None).unwrap();
    l.mark_sent("6b16711c/00000000000002", "ams-1").unwrap();
    // Still waiting for a human.
    l.record_message(&msg("6b16711c/00000000000003", vec![rec("vm2/2026-11", 1)]), None).unwrap();
    l.quarantine("6b16711c/00000000000003", "HTTP 400: bad").unwrap();
    drop(l);
    let quarantine = messaging::sender::default_quarantine(&spool);
    for e in ["6b16711c/00000000000001", "6b16711c/00000000000003"] {
        messaging::quarantine::write(&quarantine, &spool, e, b"x", "HTTP 400").unwrap();
    }
    let out = fedsite(&[
        "check",
        "--only",
        "accounting",
        "--json",
        "--ledger",
        ledger_path.to_str().unwrap(),
        "--spool",
        spool.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let q = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "accounting.quarantine")
        .unwrap_or_else(|| panic!("{v}"));
    let message = q["message"].as_str().unwrap();
    assert!(message.starts_with("1 message(s) quarantined"), "{q}");
    assert!(message.contains("00000000000003") && !message.contains("00000000000001"), "{q}");
    assert!(q["fix"].as_str().unwrap().contains("fedsite spool requeue"), "{q}");
}

/// A project known to have no VO (issue #21 item 10): with `--unmapped-ok` it is skipped with
/// a warning, the run succeeds (exit 0, outcome succeeded, the stage's last success written),
/// and every project's own last success is a metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_known_to_be_unmapped_does_not_fail_the_run() {
    let sim = sim::start(sim::SimConfig::new(sim::scenario::builtin("tiny").unwrap().generate())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    common::write_private(&clouds, sim.clouds_yaml());
    let extract = |extra: &[&str], tag: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_fedsite"))
            .args(["accounting", "extract", "--os-cloud", "sim-accounting", "--site-name", "TEST-SITE"])
            .args(["--from", "2023-05-21", "--to", "2023-05-25"])
            .arg("--spool")
            .arg(dir.path().join(format!("spool-{tag}")))
            .arg("--ledger")
            .arg(dir.path().join(format!("{tag}.sqlite")))
            .arg("--metrics-textfile")
            .arg(dir.path().join(format!("{tag}.prom")))
            .args(extra)
            .env("OS_CLIENT_CONFIG_FILE", &clouds)
            .env_remove("OS_CLOUD")
            .env_remove("FEDSITE_CONFIG")
            .output()
            .unwrap();
        (out, std::fs::read_to_string(dir.path().join(format!("{tag}.prom"))).unwrap())
    };
    let (plain, plain_prom) = extract(&[], "plain");
    assert_eq!(plain.status.code(), Some(1), "novo has no VO: {}", text(&plain));
    assert!(!plain_prom.contains("fedsite_last_success_timestamp_seconds{stage=\"extract\"}"), "{plain_prom}");
    let (ok, prom) = extract(&["--unmapped-ok", "novo"], "ok");
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("skipped: project"), "{}", text(&ok));
    assert!(prom.contains("fedsite_last_success_timestamp_seconds{stage=\"extract\"}"), "{prom}");
    let l = ledger::Ledger::open(dir.path().join("ok.sqlite")).unwrap();
    let run = l.last_run(ledger::runs::EXTRACT, None).unwrap().unwrap();
    assert_eq!(run.outcome, Some(ledger::RunOutcome::Succeeded));
    assert!(l.run_warnings(run.id).unwrap().iter().any(|w| w.message.contains("unmapped_ok")));
    // Every extracted project has its own last success; the skipped one none (no checkpoint).
    let checkpoints = l.checkpoints().unwrap();
    assert!(!checkpoints.is_empty());
    for c in &checkpoints {
        assert!(
            prom.contains(&format!(
                "fedsite_project_last_success_timestamp_seconds{{project=\"{}\",kind=\"{}\"}}",
                c.project_id, c.kind
            )),
            "{prom}"
        );
    }
    let novo = sim::scenario::builtin("tiny")
        .unwrap()
        .generate()
        .site
        .projects
        .into_iter()
        .find(|p| p.name == "novo")
        .unwrap()
        .id;
    assert!(checkpoints.iter().all(|c| c.project_id != novo));
    sim.stop().await;
}
