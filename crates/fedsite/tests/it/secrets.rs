//! Secrets never reach logs or error messages, and files holding them must be private:
//! a full trace-level run (extract with a password and with an application credential, a
//! refused password, send with the X.509 token exchange, receive with a token, a refused AMS
//! token) against the simulated site and AMS, whose every line is searched for each password,
//! application-credential secret, Keystone token and AMS token involved; and `fedsite` refusing
//! a clouds.yaml, caso.conf or sender.cfg with secrets that its group or others can read.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use sim::ams::{DEFAULT_PROJECT, DEFAULT_SUBSCRIPTION, DEFAULT_TOPIC, TEST_CLIENT_DN};

fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}{:x}{:x}", n, std::process::id())
}

/// Runs fedsite at trace level; all it printed (both streams) and whether it succeeded.
fn fedsite(args: &[&str], clouds: Option<&Path>) -> (bool, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fedsite"));
    c.args(["--log", "trace"]).args(args).env("FEDSITE_LOG", "trace").env_remove("OS_CLOUD").stdin(Stdio::null());
    if let Some(p) = clouds {
        c.env("OS_CLIENT_CONFIG_FILE", p);
    }
    let out = c.output().expect("running fedsite");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn a_trace_level_run_logs_no_secret() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let password = unique("pw-");
    let wrong_password = unique("wrong-pw-");
    let app_secret = unique("ac-secret-");
    let mut scenario = sim::scenario::builtin("tiny").unwrap().generate();
    let user = scenario.site.users.iter_mut().find(|u| u.name == sim::scenario::ACCOUNTING_USER).unwrap();
    user.password = password.clone();
    let user_id = user.id.clone();
    let project = scenario.site.projects[0].id.clone();
    scenario.site.application_credentials.push(sim::model::ApplicationCredential {
        id: "ac-leak-test".into(),
        name: "leak-test".into(),
        secret: app_secret.clone(),
        user_id,
        project_id: project,
        roles: vec!["reader".into()],
        expires_at: None,
    });
    let mut cfg = sim::SimConfig::new(scenario);
    cfg.ams = Some(sim::AmsConfig::new(d.join("pki")));
    let sim = rt.block_on(sim::start(cfg)).unwrap();
    let a = sim.ams().unwrap();
    let auth = sim.auth_url();
    let clouds = d.join("clouds.yaml");
    common::write_private(
        &clouds,
        format!(
            "clouds:\n  acc:\n    auth:\n      auth_url: {auth}\n      username: accounting\n      password: {password}\n      \
             user_domain_name: Default\n      system_scope: all\n  wrong:\n    auth:\n      auth_url: {auth}\n      \
             username: accounting\n      password: {wrong_password}\n      user_domain_name: Default\n      system_scope: all\n  \
             appcred:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: {auth}\n      \
             application_credential_id: ac-leak-test\n      application_credential_secret: {app_secret}\n"
        ),
    );
    let spool = d.join("spool");
    let ledger = d.join("ledger.sqlite");
    let (s, p) = (spool.to_str().unwrap(), ledger.to_str().unwrap());
    let window = ["--from", "2023-05-01", "--to", "2023-06-01"];
    let mut logs = Vec::new();
    let mut run = |what: &str, args: Vec<&str>, clouds: Option<&Path>, must_succeed: Option<bool>| {
        let (ok, text) = fedsite(&args, clouds);
        if let Some(want) = must_succeed {
            assert_eq!(ok, want, "{what}:\n{text}");
        }
        logs.push((what.to_string(), text));
    };
    let extract = |cloud: &'static str| {
        let mut v = vec!["accounting", "extract", "--os-cloud", cloud, "--site-name", "TEST-SITE"];
        v.extend(window);
        v.extend(["--spool", s, "--ledger", p]);
        v
    };
    // tiny has a project without a VO: the extraction reports it and exits 1.
    run("extract (password)", extract("acc"), Some(&clouds), None);
    run("extract (application credential)", extract("appcred"), Some(&clouds), None);
    run("extract (wrong password)", extract("wrong"), Some(&clouds), Some(false));
    run("projects (password)", vec!["accounting", "projects", "--os-cloud", "acc"], Some(&clouds), None);
    let (url, authn) = (a.url(), a.authn_url());
    let (cert, key, ca) = (a.client_cert_path(), a.client_key_path(), a.ca_pem_path());
    let (cert, key, ca) = (cert.to_str().unwrap(), key.to_str().unwrap(), ca.to_str().unwrap());
    let send = vec![
        "send",
        "--ams-url",
        &url,
        "--authn-url",
        &authn,
        "--project",
        DEFAULT_PROJECT,
        "--topic",
        DEFAULT_TOPIC,
        "--cert",
        cert,
        "--key",
        key,
        "--ca",
        ca,
        "--spool",
        s,
        "--ledger",
        p,
    ];
    run("send (X.509 token exchange)", send, None, Some(true));
    let dns = d.join("dns");
    std::fs::write(&dns, format!("{TEST_CLIENT_DN}\n")).unwrap();
    let records = d.join("received.sqlite");
    let receiver_token = a.token("receiver").unwrap();
    let wrong_token = unique("wrong-ams-token-");
    for (what, token, ok) in
        [("receive", receiver_token.as_str(), true), ("receive (wrong token)", wrong_token.as_str(), false)]
    {
        let receive = vec![
            "receive",
            "--once",
            "--ams-url",
            &url,
            "--project",
            DEFAULT_PROJECT,
            "--subscription",
            DEFAULT_SUBSCRIPTION,
            "--token",
            token,
            "--ca",
            ca,
            "--capath",
            ca,
            "--dns",
            dns.to_str().unwrap(),
            "--records",
            records.to_str().unwrap(),
        ];
        run(what, receive, None, Some(ok));
    }

    // The runs really used the secrets: records went all the way; the refusals are 401s.
    let text = |what: &str| logs.iter().find(|(w, _)| w == what).map(|(_, t)| t.as_str()).unwrap();
    let summary =
        |what: &str, start: &str| text(what).lines().find(|l| l.starts_with(start)).unwrap_or_default().to_string();
    let sent = summary("send (X.509 token exchange)", "sent ");
    assert!(sent.starts_with("sent ") && !sent.starts_with("sent 0,"), "{}", text("send (X.509 token exchange)"));
    let received = summary("receive", "pulled ");
    assert!(received.contains("accepted") && !received.contains("accepted 0 "), "{}", text("receive"));
    assert!(text("extract (wrong password)").contains("401"), "{}", text("extract (wrong password)"));
    assert!(text("receive (wrong token)").contains("401") || text("receive (wrong token)").contains("403"));
    let tokens = sim.issued_tokens();
    assert!(tokens.len() >= 3, "the runs got tokens: {tokens:?}");
    let mut secrets: Vec<(String, String)> = vec![
        ("the password".into(), password),
        ("a wrong password".into(), wrong_password),
        ("the application credential secret".into(), app_secret),
        ("a wrong AMS token".into(), wrong_token),
    ];
    secrets.extend(tokens.into_iter().map(|t| ("a Keystone token".to_string(), t)));
    for user in ["sender", "receiver", "admin"] {
        secrets.push((format!("the AMS {user} token"), a.token(user).unwrap()));
    }
    let lines: usize = logs.iter().map(|(_, t)| t.lines().count()).sum();
    assert!(lines > 200, "a trace-level run logs plenty: {lines} lines");
    assert!(logs.iter().any(|(_, t)| t.contains("TRACE")), "trace level is on");
    for (what, text) in &logs {
        for (name, secret) in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{what}: {name} is in its output:\n{}",
                text.lines().filter(|l| l.contains(secret.as_str())).take(3).collect::<Vec<_>>().join("\n")
            );
        }
    }
    eprintln!("{} runs, {lines} log lines, {} secrets, none found", logs.len(), secrets.len());
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn files_with_secrets_readable_by_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // clouds.yaml holding a password.
    let clouds = d.join("clouds.yaml");
    std::fs::write(
        &clouds,
        "clouds:\n  c:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: u\n      password: pw\n",
    )
    .unwrap();
    chmod(&clouds, 0o644);
    let (ok, text) = fedsite(&["inventory", "--os-cloud", "c"], Some(&clouds));
    assert!(!ok);
    assert!(text.contains("readable by its group or others (mode 0644)") && text.contains("chmod 600"), "{text}");
    // The secret in secure.yaml only: clouds.yaml may be world-readable, secure.yaml not.
    std::fs::write(&clouds, "clouds:\n  c:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: u\n")
        .unwrap();
    let secure = d.join("secure.yaml");
    std::fs::write(&secure, "clouds:\n  c:\n    auth:\n      password: pw\n").unwrap();
    chmod(&secure, 0o640);
    let inventory = || {
        Command::new(env!("CARGO_BIN_EXE_fedsite"))
            .args(["inventory", "--os-cloud", "c"])
            .env("OS_CLIENT_CONFIG_FILE", &clouds)
            .env("OS_CLIENT_SECURE_FILE", &secure)
            .env("HOME", d)
            .current_dir(d)
            .output()
            .unwrap()
    };
    let out = inventory();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("secure.yaml") && text.contains("(mode 0640)"), "{text}");
    // Private: it gets past the check (and fails on the unreachable Keystone instead).
    chmod(&secure, 0o600);
    let out = inventory();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !text.contains("readable by its group"), "{text}");

    // caso.conf (always holds [keystone_auth] password).
    let conf = d.join("caso.conf");
    std::fs::write(
        &conf,
        "[DEFAULT]\nsite_name = S\n[keystone_auth]\nauth_url = http://127.0.0.1:9/v3\nusername = u\npassword = pw\n",
    )
    .unwrap();
    chmod(&conf, 0o604);
    let (ok, text) = fedsite(&["accounting", "extract", "--caso-conf", conf.to_str().unwrap(), "--dry-run"], None);
    assert!(!ok && text.contains("caso.conf") && text.contains("(mode 0604)"), "{text}");

    // sender.cfg with an AMS token; the host key.
    let cfg = d.join("sender.cfg");
    std::fs::write(
        &cfg,
        format!(
            "[sender]\nprotocol: AMS\n[broker]\nhost: localhost:9\n[certificates]\ncertificate: {d}/cert.pem\nkey: {d}/key.pem\n\
             [messaging]\nams_project: p\ndestination: t\ntoken: tok\npath: {d}/spool\n",
            d = d.display()
        ),
    )
    .unwrap();
    chmod(&cfg, 0o644);
    let (ok, text) = fedsite(&["send", "--sender-cfg", cfg.to_str().unwrap(), "--dry-run"], None);
    assert!(!ok && text.contains("sender.cfg") && text.contains("(mode 0644)"), "{text}");
    assert!(!text.contains("tok\n") && !text.contains("token: tok"), "{text}");
}

/// Every program fedsite runs (qemu-img, ...) gets an argument vector, never a shell command
/// line: no source file of any crate starts a shell.
#[test]
fn no_crate_runs_a_program_through_a_shell() {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for c in std::fs::read_dir(&crates).unwrap().flatten() {
        if c.path().join("src").is_dir() {
            walk(&c.path().join("src"), &mut files);
        }
    }
    assert!(files.len() > 50, "{} source files", files.len());
    let shells = [
        "Command::new(\"sh\")",
        "Command::new(\"bash\")",
        "Command::new(\"/bin/sh\")",
        "Command::new(\"/bin/bash\")",
        ".arg(\"-c\")",
        "\"sh\", \"-c\"",
        "\"bash\", \"-c\"",
    ];
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for s in shells {
            assert!(!text.contains(s), "{} runs a shell ({s}): pass an argument vector instead", f.display());
        }
    }
}
