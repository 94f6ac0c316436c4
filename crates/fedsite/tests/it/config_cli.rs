//! `fedsite config import | check`, the global `--config fedsite.toml`, and the
//! conventions of the command line (JSON logs off a terminal, -q, shell
//! completions, man pages), run as the binary against the simulated site.

use std::path::Path;
use std::process::Output;

fn fedsite() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"));
    c.env_remove("OS_CLOUD").env_remove("FEDSITE_CONFIG").env_remove("FEDSITE_LOG").env_remove("FEDSITE_LOG_FORMAT");
    c
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Every record of a dirq spool, rendered alone, by (kind, key).
fn spool_records(spool: &Path) -> std::collections::BTreeMap<(String, String), String> {
    let mut out = std::collections::BTreeMap::new();
    for dir in std::fs::read_dir(spool).unwrap().flatten() {
        for f in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let (kind, records) = apel::parse_message(&std::fs::read(f.path()).unwrap()).unwrap();
            for r in records {
                let one = apel::render_message(kind, std::slice::from_ref(&r), apel::Style::Fedsite).unwrap();
                out.insert((kind.as_str().to_string(), r.key()), String::from_utf8(one).unwrap());
            }
        }
    }
    out
}

fn private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn imported_config_gives_the_same_records_as_the_original_files() {
    let scenario = sim::scenario::builtin("tiny").unwrap().generate();
    let sim = sim::start(sim::SimConfig::new(scenario)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The reference documents' caso.conf and sender.cfg, pointed at the simulated site.
    let caso = d.join("caso.conf");
    private(
        &caso,
        &format!(
            "[DEFAULT]\nsite_name = TEST-SITE\nservice_name = TEST-SITE-cloud\nmessengers = ssm,noop\n\
             spooldir = {d}/spool\nlock_path = {d}/spool\nextractor = nova,cinder,neutron\nvo_property = VO\n\
             mapping_file = {d}/nonexistent-voms.json\ndebug = true\n\n[keystone_auth]\nauth_type = v3password\n\
             auth_url = {auth}\nusername = accounting\npassword = secret\nuser_domain_id = default\n\
             project_domain_id = default\n\n[ssm]\noutput_path = {d}/outgoing\nmax_size = 100\n",
            d = d.display(),
            auth = sim.auth_url()
        ),
    );
    let ssm = d.join("sender.cfg");
    private(
        &ssm,
        &format!(
            "[sender]\nprotocol: AMS\n\n[broker]\nhost: localhost\n\n[certificates]\ncertificate: {d}/client-cert.pem\n\
             key: {d}/client-key.pem\ncapath: {d}/capath\n\n[messaging]\nams_project: accounting\n\
             destination: eu-egi-cloud-accounting\npath: {d}/outgoing\npath_type: dirq\n\n\
             [logging]\nlogfile: {d}/ssmsend.log\nlevel: DEBUG\nconsole: true\n",
            d = d.display()
        ),
    );
    let toml = d.join("fedsite.toml");
    let out = fedsite()
        .args(["config", "import", "--caso"])
        .arg(&caso)
        .arg("--ssm")
        .arg(&ssm)
        .arg("-o")
        .arg(&toml)
        .output()
        .await
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // `messengers = ssm,noop` is carried (the ssm messenger's default kinds: the one [spool]).
    assert!(stderr.contains("not carried over") && stderr.contains("[DEFAULT] debug"), "{stderr}");
    assert!(!stderr.contains("messengers"), "{stderr}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&toml).unwrap().permissions().mode() & 0o777, 0o600);
    // A second import does not overwrite without --force.
    let again = fedsite().args(["config", "import", "--caso"]).arg(&caso).arg("-o").arg(&toml).output().await.unwrap();
    assert!(!again.status.success() && text(&again).1.contains("--force"));

    let extract = |spool: &str, ledger: &str, global: Vec<String>, local: Vec<String>| {
        let mut c = fedsite();
        c.args(global)
            .args(["accounting", "extract", "--from", "2023-05-21", "--to", "2023-05-25"])
            .args(local)
            .arg("--spool")
            .arg(d.join(spool))
            .arg("--ledger")
            .arg(d.join(ledger));
        async move { c.output().await.unwrap() }
    };
    let original =
        extract("from-originals", "a.sqlite", vec![], vec!["--caso-conf".into(), caso.display().to_string()]).await;
    let imported =
        extract("from-import", "b.sqlite", vec!["--config".into(), toml.display().to_string()], vec![]).await;
    for out in [&original, &imported] {
        let (stdout, stderr) = text(out);
        // novo has no VO in tiny: the one expected failure.
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(!stderr.contains("secret") && !stdout.contains("secret"), "{stderr}");
    }
    let a = spool_records(&d.join("from-originals"));
    // (caso.conf's vo_property = VO, as cASO reads it: the projects under the other spellings
    // are not accounted, by either path.)
    assert!(a.len() > 5, "{a:?}");
    assert_eq!(a, spool_records(&d.join("from-import")));

    // The ledger reads back the same through fedsite.toml's [ledger]-less default override.
    let records = |ledger: &str| {
        let mut c = fedsite();
        c.args(["accounting", "records", "--json", "--ledger"]).arg(d.join(ledger));
        async move { c.output().await.unwrap() }
    };
    assert_eq!(text(&records("a.sqlite").await).0, text(&records("b.sqlite").await).0);

    // `send` reads the imported [ams]/[spool]: --dry-run needs the host key it names.
    let send = fedsite().arg("--config").arg(&toml).args(["send", "--dry-run"]).output().await.unwrap();
    let (_, stderr) = text(&send);
    assert!(!send.status.success() && stderr.contains("client-cert.pem"), "{stderr}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn config_check_names_each_wrong_key_and_passes_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad = d.join("bad.toml");
    private(
        &bad,
        "[site]\nname = \"S\"\n[accounting]\nextractors = [\"nova\", \"novva\"]\ninactive_time = \"never\"\n[spool]\npath_type = \"tree\"\n",
    );
    let out = fedsite().arg("--config").arg(&bad).args(["config", "check"]).output().await.unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("error: [accounting] extractors:") && stdout.contains("\"novva\""), "{stdout}");
    assert!(stdout.contains("error: [spool] path_type:") && stdout.contains("\"tree\""), "{stdout}");

    let typo = d.join("typo.toml");
    private(&typo, "[site]\nname = \"S\"\n[ledgr]\npath = \"x\"\n");
    let out = fedsite().arg("--config").arg(&typo).args(["config", "check"]).output().await.unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("typo.toml") && stderr.contains("unknown field `ledgr`"), "{stderr}");

    let good = d.join("good.toml");
    private(
        &good,
        &format!(
            "[site]\nname = \"S\"\n[cloud]\nauth_type = \"password\"\n[cloud.auth]\nauth_url = \"http://127.0.0.1:1/v3\"\n\
             username = \"u\"\npassword = \"p\"\nsystem_scope = \"all\"\n[ledger]\npath = \"{d}/l.sqlite\"\n[spool]\npath = \"{d}/out\"\n",
            d = d.display()
        ),
    );
    let out = fedsite().env("FEDSITE_CONFIG", &good).args(["config", "check", "--json"]).output().await.unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["findings"].as_array().map(Vec::len), Some(0), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_are_json_lines_off_a_terminal_and_quiet_silences_them() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // A harmless command that logs at info: an empty spool's status does not, so use
    // a missing config (an error printed by main, not a log) and a warning-producing run.
    let out = fedsite()
        .args(["accounting", "extract", "--dry-run", "--site-name", "S", "--to", "2999-01-01"])
        .env("OS_AUTH_URL", "http://127.0.0.1:9/v3")
        .env("OS_USERNAME", "u")
        .env("OS_PASSWORD", "pw")
        .env("OS_PROJECT_ID", "p")
        .arg("--spool")
        .arg(&spool)
        .output()
        .await
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    let log_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!log_lines.is_empty(), "no JSON log line in:\n{stderr}");
    for l in &log_lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string() && v["message"].is_string(), "{v}");
    }
    assert!(log_lines.iter().any(|l| l.contains("is in the future")), "{stderr}");
    assert!(stderr.contains("fedsite: error:"), "{stderr}");

    let quiet = fedsite()
        .args(["-q", "accounting", "extract", "--dry-run", "--site-name", "S", "--to", "2999-01-01"])
        .env("OS_AUTH_URL", "http://127.0.0.1:9/v3")
        .env("OS_USERNAME", "u")
        .env("OS_PASSWORD", "pw")
        .env("OS_PROJECT_ID", "p")
        .output()
        .await
        .unwrap();
    let (_, stderr) = text(&quiet);
    assert!(!stderr.contains("is in the future") && stderr.contains("fedsite: error:"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn completions_and_man_pages_are_generated_from_the_command_line() {
    let out = fedsite().args(["completions", "bash"]).output().await.unwrap();
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(
        stdout.contains("_fedsite()") && stdout.contains("accounting") && stdout.contains("--caso-conf"),
        "{}",
        &stdout[..stdout.len().min(400)]
    );
    let dir = tempfile::tempdir().unwrap();
    let out = fedsite().arg("man").arg(dir.path()).output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let page = std::fs::read_to_string(dir.path().join("fedsite-accounting-extract.1")).unwrap();
    assert!(page.contains(".TH fedsite-accounting-extract") && page.contains("caso\\-conf"), "{page}");
    assert!(dir.path().join("fedsite.1").is_file() && dir.path().join("fedsite-config-import.1").is_file());
}
