//! `fedsite probe NAME` and `fedsite check --nagios` as ARGO runs them against
//! the simulated site (testdata/sitecheck/healthy.toml): centrally, with only
//! Keystone's URL and an OIDC access token of the ops VO robot (through the
//! site's OS-FEDERATION). Each probe prints OK and exits 0 on the healthy
//! site; each breakage (no VM ACTIVE, Swift refusing writes, a stale
//! information document, stale accounting, a closed port) prints its cause
//! and exits 2; no credentials or an unreachable Keystone exit 3 (UNKNOWN).
//! The token never appears in the output.

use crate::common;

use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};

const HEALTHY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/sitecheck/healthy.toml");

fn healthy() -> sim::Scenario {
    sim::ScenarioSpec::load(HEALTHY).unwrap_or_else(|e| panic!("{e}")).generate()
}

struct Site {
    sim: sim::SimHandle,
    dir: tempfile::TempDir,
    /// The ops robot's OIDC access token, and the file holding it (mode 0600).
    token: String,
    token_file: PathBuf,
}

/// Starts the site, federates it with the sim's OIDC provider (members of the ops VO get
/// `member` on project ops) and fetches the robot's access token.
async fn start(scenario: sim::Scenario) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim::start(sim::SimConfig::new(scenario)).await.expect("starting the sim");
    let issuer = format!("{}/identity/oidc", sim.base_url());
    sim.federate_egi_with_role(&issuer, "ops", "ops", "member").await.expect("federating the site");
    let token = sim.oidc_access_token().await.expect("an access token");
    let token_file = dir.path().join("access_token");
    common::write_private(&token_file, format!("{token}\n"));
    Site { sim, dir, token, token_file }
}

struct Run {
    code: i32,
    stdout: String,
}

impl Run {
    fn first_line(&self) -> &str {
        self.stdout.lines().next().unwrap_or("")
    }
}

/// Runs `fedsite <args>` with a clean OpenStack environment.
async fn fedsite(args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"))
        .args(args)
        .env("FEDSITE_LOG", "error")
        .env_remove("OS_CLOUD")
        .env_remove("OS_AUTH_URL")
        .env_remove("OS_ACCESS_TOKEN")
        .env("OS_CLIENT_CONFIG_FILE", "/nonexistent/clouds.yaml")
        .output()
        .await
        .expect("running fedsite");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Run { code: out.status.code().expect("an exit code"), stdout }
}

/// `fedsite probe NAME --os-auth-url <keystone> --access-token <file> <extra>`, as ARGO
/// runs it centrally; the token never shows.
async fn probe(site: &Site, name: &str, extra: &[&str]) -> Run {
    let auth_url = site.sim.auth_url();
    let mut args = vec!["probe", name, "--os-auth-url", &auth_url, "--access-token", site.token_file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let run = fedsite(&args).await;
    assert!(!run.stdout.contains(&site.token), "the access token was printed:\n{}", run.stdout);
    run
}

/// A GLUE 2.1 document as cloud-info writes it, every object stamped `created`.
fn glue(created: chrono::DateTime<Utc>, vos: &[&str]) -> Vec<u8> {
    let t = created.to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    let policies: Vec<serde_json::Value> = vos
        .iter()
        .map(|vo| {
            serde_json::json!({"ID": format!("share_{vo}_Policy"), "CreationTime": t, "Validity": 3600,
            "Scheme": "org.glite.standard", "Rule": [format!("VO:{vo}")], "Associations": {"PolicyUserDomain": [vo]}})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "CloudComputingService": [{"ID": "https://site.example/v3_cloud.compute", "CreationTime": t, "Validity": 3600,
            "Type": "org.openstack.nova", "QualityLevel": "production"}],
        "MappingPolicy": policies,
    }))
    .unwrap()
}

/// A ledger whose one message AMS took `age` ago.
fn ledger_sent(path: &Path, age: Duration) {
    let mut l = ledger::Ledger::open(path).unwrap();
    let msg = ledger::NewMessage {
        element: "5f000000/5f000000000000".into(),
        kind: "cloud".into(),
        created_at: Utc::now() - age,
        records: vec![],
    };
    l.record_message(&msg, None).unwrap();
    l.mark_sent(&msg.element, "ams-1").unwrap();
    drop(l);
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute("UPDATE messages SET sent_at = ?1", [ledger::format_time(Utc::now() - age)]).unwrap();
}

fn assert_state(run: &Run, service: &str, state: &str, code: i32) {
    assert!(run.first_line().starts_with(&format!("{service} {state} - ")), "{}", run.stdout);
    assert_eq!(run.code, code, "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_probe_boots_and_deletes_as_the_ops_robot() {
    let site = start(healthy()).await;
    let run = probe(&site, "vm", &["--vm-poll", "0.2", "-t", "60"]).await;
    assert_state(&run, "VM", "OK", 0);
    let line = run.first_line();
    assert!(
        line.contains("fedsite-probe-")
            && line.contains("EGI Small Ubuntu for Monitoring")
            && line.contains("ACTIVE in"),
        "{line}"
    );
    assert!(line.contains(" | 'active'=") && line.contains("'time'="), "{line}");
    let counts = site.sim.request_counts();
    assert_eq!(counts.get("POST /compute/v2.1/servers"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("DELETE /compute/v2.1/servers/{id}"), Some(&1), "{counts:?}");
    site.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_probe_is_critical_when_no_vm_becomes_active_within_the_timeout() {
    let mut sc = healthy();
    sc.site.faults.boot_never_active = true;
    let site = start(sc).await;
    // -t 6: the wait for ACTIVE gets under half of what the login leaves, the rest deletes
    // the server; the probe reports the cause, not its own timeout.
    let run = probe(&site, "vm", &["--vm-poll", "0.2", "-t", "6"]).await;
    assert_state(&run, "VM", "CRITICAL", 2);
    let line = run.first_line();
    assert!(line.contains(": still BUILD, not ACTIVE within ") && line.contains("it was deleted"), "{line}");
    assert!(run.stdout.contains("\nfix: look at why the server does not start"), "{}", run.stdout);
    let counts = site.sim.request_counts();
    assert_eq!(counts.get("DELETE /compute/v2.1/servers/{id}"), Some(&1), "{counts:?}");
    site.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swift_probe_writes_reads_back_and_deletes() {
    let site = start(healthy()).await;
    let run = probe(&site, "swift", &[]).await;
    assert_state(&run, "SWIFT", "OK", 0);
    assert!(run.first_line().contains("written, read back and deleted"), "{}", run.stdout);
    // (method, container or object) of every Swift request: the sim logs raw paths.
    let swift: Vec<(String, &str)> = site
        .sim
        .request_counts()
        .into_iter()
        .filter_map(|(k, n)| {
            let (method, path) = k.split_once(' ')?;
            let rest = path.strip_prefix("/object-store/v1/AUTH_")?;
            let depth = if rest.split('/').count() == 3 { "object" } else { "container" };
            Some(std::iter::repeat_n((method.to_string(), depth), n as usize))
        })
        .flatten()
        .collect();
    let want =
        [("PUT", "container"), ("PUT", "object"), ("GET", "object"), ("DELETE", "object"), ("DELETE", "container")];
    let mut got: Vec<(&str, &str)> = swift.iter().map(|(m, d)| (m.as_str(), *d)).collect();
    got.sort();
    let mut want = want.to_vec();
    want.sort();
    assert_eq!(got, want);
    site.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swift_probe_is_critical_when_swift_refuses_writes() {
    let mut sc = healthy();
    sc.site.faults.swift_read_only = true;
    let site = start(sc).await;
    let run = probe(&site, "swift", &[]).await;
    assert_state(&run, "SWIFT", "CRITICAL", 2);
    let line = run.first_line();
    assert!(line.contains("could not create container fedsite-probe-") && line.contains("HTTP 405"), "{line}");
    site.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_probe_judges_the_documents_age() {
    let site = start(healthy()).await;
    // Published in the robot's project's Swift, as `fedsite info --swift-container` does.
    let robot = sitecheck::probe::Robot {
        auth_url: site.sim.auth_url(),
        access_token: openstack::Secret::new(site.token.clone()),
        ..Default::default()
    };
    let session =
        sitecheck::probe::login(&robot.cloud().unwrap(), "ops", std::time::Duration::from_secs(10)).await.unwrap();
    let fresh = glue(Utc::now() - Duration::hours(3), &["ops", "vo.access.egi.eu"]);
    cloudinfo::publish::to_swift(&session, "cloud-info", "SITE.json", &fresh).await.unwrap();
    let run = probe(
        &site,
        "info",
        &["--swift-container", "cloud-info", "--swift-object", "SITE.json", "--publishes-vo", "ops"],
    )
    .await;
    assert_state(&run, "INFO", "OK", 0);
    assert!(run.first_line().contains("Swift cloud-info/SITE.json produced 3 h ago"), "{}", run.stdout);
    assert!(run.first_line().contains("'vos'=2"), "{}", run.stdout);

    // A file 2 days old: WARNING (over 1 day); 6 days: CRITICAL (over 5), as ARGO's probe.
    let file = site.dir.path().join("glue.json");
    std::fs::write(&file, glue(Utc::now() - Duration::days(2) - Duration::hours(1), &["ops"])).unwrap();
    let run = fedsite(&["probe", "info", "--info", file.to_str().unwrap()]).await;
    assert_state(&run, "INFO", "WARNING", 1);
    std::fs::write(&file, glue(Utc::now() - Duration::days(6) - Duration::hours(1), &["ops"])).unwrap();
    let run = fedsite(&["probe", "info", "--info", file.to_str().unwrap()]).await;
    assert_state(&run, "INFO", "CRITICAL", 2);
    assert!(
        run.first_line().contains("is 6 days old") && run.first_line().contains("over the 5 days limit"),
        "{}",
        run.stdout
    );
    // Thresholds are options; a VO the document lacks is critical too.
    let run = fedsite(&["probe", "info", "--info", file.to_str().unwrap(), "-w", "7", "-c", "10"]).await;
    assert_state(&run, "INFO", "OK", 0);
    let run = fedsite(&[
        "probe",
        "info",
        "--info",
        file.to_str().unwrap(),
        "-w",
        "7",
        "-c",
        "10",
        "--publishes-vo",
        "biomed",
    ])
    .await;
    assert_state(&run, "INFO", "CRITICAL", 2);
    assert!(run.first_line().contains("it lacks VO(s) biomed"), "{}", run.stdout);
    // The same document, old, where the site publishes it: its CreationTime counts, not
    // when the object was written.
    let old = glue(Utc::now() - Duration::days(6) - Duration::hours(1), &["ops"]);
    cloudinfo::publish::to_swift(&session, "cloud-info", "OLD.json", &old).await.unwrap();
    let run = probe(&site, "info", &["--swift-container", "cloud-info", "--swift-object", "OLD.json"]).await;
    assert_state(&run, "INFO", "CRITICAL", 2);
    assert!(run.first_line().contains("Swift cloud-info/OLD.json is 6 days old"), "{}", run.stdout);
    // A document that is not there.
    let run = probe(&site, "info", &["--swift-container", "cloud-info", "--swift-object", "MISSING.json"]).await;
    assert_state(&run, "INFO", "CRITICAL", 2);
    assert!(run.first_line().contains("HTTP 404"), "{}", run.stdout);
    site.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_probe_judges_the_last_send() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str, age: Duration| {
        let p = dir.path().join(name);
        ledger_sent(&p, age);
        p.to_str().unwrap().to_string()
    };
    let fresh = at("fresh.sqlite", Duration::hours(5));
    let run = fedsite(&["probe", "accounting", "--ledger", &fresh]).await;
    assert_state(&run, "ACCOUNTING", "OK", 0);
    assert!(run.first_line().contains("last send 5 h ago"), "{}", run.stdout);
    let run = fedsite(&["probe", "accounting", "--ledger", &at("week.sqlite", Duration::days(10))]).await;
    assert_state(&run, "ACCOUNTING", "WARNING", 1);
    let run = fedsite(&["probe", "accounting", "--ledger", &at("stale.sqlite", Duration::days(40))]).await;
    assert_state(&run, "ACCOUNTING", "CRITICAL", 2);
    assert!(run.first_line().contains("accounting data is 40 days old"), "{}", run.stdout);
    assert!(run.first_line().contains("'age'=3456000s;604800;2592000;0"), "{}", run.stdout);
    // No ledger: the probe could not run.
    let run = fedsite(&["probe", "accounting", "--ledger", dir.path().join("none.sqlite").to_str().unwrap()]).await;
    assert_state(&run, "ACCOUNTING", "UNKNOWN", 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_and_ports_probes_and_a_closed_port() {
    let site = start(healthy()).await;
    let run = probe(&site, "keystone", &["--connect-timeout", "3"]).await;
    assert_state(&run, "KEYSTONE", "OK", 0);
    assert!(run.stdout.contains("\nOK catalog.compute: compute "), "{}", run.stdout);
    let run = probe(&site, "ports", &["--connect-timeout", "3"]).await;
    assert_state(&run, "PORTS", "OK", 0);
    site.sim.stop().await;

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut sc = healthy();
    sc.site.faults.catalog_urls.insert("network".into(), format!("http://127.0.0.1:{closed}/network"));
    let site = start(sc).await;
    let run = probe(&site, "ports", &["--connect-timeout", "3"]).await;
    assert_state(&run, "PORTS", "CRITICAL", 2);
    assert!(
        run.first_line().contains(&format!("ports.network: cannot connect to 127.0.0.1:{closed}")),
        "{}",
        run.stdout
    );
    let run = probe(&site, "keystone", &["--connect-timeout", "3"]).await;
    assert_state(&run, "KEYSTONE", "CRITICAL", 2);
    site.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_when_the_probe_cannot_run() {
    let site = start(healthy()).await;
    // No credentials at all.
    let run = fedsite(&["probe", "swift"]).await;
    assert_state(&run, "SWIFT", "UNKNOWN", 3);
    assert!(run.first_line().contains("no credentials"), "{}", run.stdout);
    // A Keystone URL without a token.
    let auth_url = site.sim.auth_url();
    let run = fedsite(&["probe", "vm", "--os-auth-url", &auth_url]).await;
    assert_state(&run, "VM", "UNKNOWN", 3);
    // An unreachable Keystone (nothing listens), the token given on the command line.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{closed}/identity/v3");
    let run = fedsite(&["probe", "swift", "--endpoint", &url, "--os-access-token", &site.token, "-t", "20"]).await;
    assert_state(&run, "SWIFT", "UNKNOWN", 3);
    assert!(run.first_line().contains("unreachable"), "{}", run.stdout);
    assert!(!run.stdout.contains(&site.token), "{}", run.stdout);
    // A token Keystone refuses is the site's answer: CRITICAL.
    let run = fedsite(&["probe", "swift", "--os-auth-url", &auth_url, "--os-access-token", "not-a-token"]).await;
    assert_state(&run, "SWIFT", "CRITICAL", 2);
    assert!(run.first_line().contains("refused the login"), "{}", run.stdout);
    // A Keystone that takes the connection and never answers: the probe ends at -t, UNKNOWN.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/identity/v3", silent.local_addr().unwrap());
    let run = fedsite(&[
        "probe",
        "vm",
        "--os-auth-url",
        &url,
        "--access-token",
        site.token_file.to_str().unwrap(),
        "-t",
        "2",
    ])
    .await;
    assert_state(&run, "VM", "UNKNOWN", 3);
    assert!(run.first_line().contains("the login did not finish within 2 s (--timeout)"), "{}", run.stdout);
    drop(silent);
    // A wrong command line is UNKNOWN (3), not clap's 2.
    let run = fedsite(&["probe", "swift", "--no-such-option"]).await;
    assert_state(&run, "FEDSITE", "UNKNOWN", 3);
    let run = fedsite(&["probe", "nfs"]).await;
    assert_state(&run, "FEDSITE", "UNKNOWN", 3);
    site.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_nagios_is_one_status_line_with_perfdata() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut sc = healthy();
    sc.site.faults.catalog_urls.insert("network".into(), format!("http://127.0.0.1:{closed}/network"));
    let site = start(sc).await;
    let clouds = site.dir.path().join("clouds.yaml");
    common::write_private(&clouds, site.sim.clouds_yaml());
    let check = |only: &'static str| {
        let clouds = clouds.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"))
                .args(["check", "--os-cloud", "sim", "--nagios", "--connect-timeout", "3", "--timeout", "60"])
                .args(["--only", only])
                .env("OS_CLIENT_CONFIG_FILE", &clouds)
                .env("FEDSITE_LOG", "error")
                .output()
                .await
                .unwrap();
            Run { code: out.status.code().unwrap(), stdout: String::from_utf8_lossy(&out.stdout).into_owned() }
        }
    };
    let run = check("flavors").await;
    assert_state(&run, "FEDSITE", "OK", 0);
    assert!(run.first_line().contains(" | 'ok'=2;;;0;2 'warning'=0;;;0;2 'critical'=0;;;0;2"), "{}", run.stdout);
    let run = check("ports").await;
    assert_state(&run, "FEDSITE", "CRITICAL", 2);
    assert!(
        run.first_line().contains(&format!("ports.network: cannot connect to 127.0.0.1:{closed}")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("\nOK ports.identity: "), "{}", run.stdout);
    // An option it cannot use: UNKNOWN.
    let run = fedsite(&["check", "--nagios", "--only", "nonsense"]).await;
    assert_state(&run, "FEDSITE", "UNKNOWN", 3);
    site.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_nagios_runs_centrally_with_only_the_endpoint_and_a_token() {
    let site = start(healthy()).await;
    let auth_url = site.sim.auth_url();
    let token_file = site.token_file.to_str().unwrap();
    let run = fedsite(&[
        "check",
        "--nagios",
        "--os-auth-url",
        &auth_url,
        "--access-token",
        token_file,
        "--only",
        "catalog,ports,vm",
        "--vm-poll",
        "0.2",
        "--connect-timeout",
        "3",
    ])
    .await;
    assert_state(&run, "FEDSITE", "OK", 0);
    assert!(run.stdout.contains("\nOK vm.start: fedsite-probe-"), "{}", run.stdout);
    assert!(run.stdout.contains("\nOK catalog.object-store: "), "{}", run.stdout);
    assert!(!run.stdout.contains(&site.token), "{}", run.stdout);
    // Keystone unreachable: the check could not run.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{closed}/identity/v3");
    let run =
        fedsite(&["check", "--nagios", "--os-auth-url", &url, "--access-token", token_file, "--only", "catalog"]).await;
    assert_state(&run, "FEDSITE", "UNKNOWN", 3);
    assert!(run.first_line().contains("unreachable"), "{}", run.stdout);
    site.sim.stop().await;
}

/// The Nagios `command_line`s and NRPE `command[…]=` lines of docs/sitecheck.md.
fn documented_command_lines() -> Vec<String> {
    let doc = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/sitecheck.md");
    let text = std::fs::read_to_string(doc).unwrap();
    let lines: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("command_line")
                .map(|c| c.trim().to_string())
                .or_else(|| l.strip_prefix("command[").and_then(|c| c.split_once("]=")).map(|(_, c)| c.to_string()))
        })
        .collect();
    assert!(lines.len() >= 8, "docs/sitecheck.md lost its command definitions: {lines:#?}");
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_command_definitions_run_as_printed() {
    let site = start(healthy()).await;
    // What the host runs them against: the document published, a fresh ledger, the site
    // account in clouds.yaml as `mysite`.
    let robot = sitecheck::probe::Robot {
        auth_url: site.sim.auth_url(),
        access_token: openstack::Secret::new(site.token.clone()),
        ..Default::default()
    };
    let session =
        sitecheck::probe::login(&robot.cloud().unwrap(), "ops", std::time::Duration::from_secs(10)).await.unwrap();
    let doc = glue(Utc::now() - Duration::hours(1), &["ops"]);
    cloudinfo::publish::to_swift(&session, "cloud-info", "SITE.json", &doc).await.unwrap();
    let ledger = site.dir.path().join("ledger.sqlite");
    ledger_sent(&ledger, Duration::hours(2));
    let clouds = site.dir.path().join("clouds.yaml");
    common::write_private(&clouds, site.sim.clouds_yaml().replacen("  sim:\n", "  mysite:\n", 1));
    let auth_url = site.sim.auth_url();
    let token_file = site.token_file.to_str().unwrap();
    for line in documented_command_lines() {
        let cmd = line
            .replace("/usr/bin/fedsite", env!("CARGO_BIN_EXE_fedsite"))
            .replace("$_HOSTOS_AUTH_URL$", &auth_url)
            .replace("$USER3$", token_file)
            .replace("$_HOSTGOCDB_SITE$", "SITE")
            .replace("/var/lib/fedsite/ledger.sqlite", ledger.to_str().unwrap());
        assert!(!cmd.contains('$'), "a macro the test does not know: {line}");
        let out = tokio::process::Command::new("bash")
            .args(["-c", &cmd])
            .env("OS_CLIENT_CONFIG_FILE", &clouds)
            .env("FEDSITE_LOG", "error")
            .env_remove("OS_CLOUD")
            .env_remove("FEDSITE_CONFIG")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let first = stdout.lines().next().unwrap_or("");
        assert!(
            first.split(' ').nth(1) == Some("OK") && out.status.code() == Some(0),
            "{line}\nexited {:?}:\n{stdout}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.contains(&site.token), "{stdout}");
    }
    site.sim.stop().await;
}
