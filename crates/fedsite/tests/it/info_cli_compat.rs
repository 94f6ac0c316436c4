//! fedsite as a drop-in `cloud-info-provider-service` (issue #18 item 1): the
//! central deployment's wrapper line (an EGI Check-in access token in `OS_*`,
//! `--middleware openstack --format glue21json SITE.yaml`) run through the real
//! cloud-info-provider 1.2 and through a `cloud-info-provider-service` symlink
//! to fedsite gives the same bytes and exit code; and every option the
//! original's `--help` lists, for each auth plugin fedsite resolves, is
//! accepted by the symlink with a value of the same form.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Output;

/// A directory with `bin/cloud-info-provider-service` → the fedsite under test.
fn symlinked_fedsite(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("cloud-info-provider-service");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_fedsite"), &link).unwrap();
    link
}

/// Runs `program args` with exactly `envs` (plus PATH with the venv first,
/// HOME in `dir`, TZ=UTC), in `dir`: neither side sees the caller's `OS_*`.
async fn run_clean(program: &Path, args: &[String], envs: &[(&str, &str)], dir: &Path) -> Output {
    let venv = common::venv();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", venv.join("bin").display()))
        .env("HOME", dir)
        .env("TZ", "UTC")
        .env("PYTHONWARNINGS", "ignore")
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{} {args:?} did not finish", program.display()))
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The real cloud-info-provider-service 1.2 with `args` (through the launcher
/// that only sends its GOCDB request to FEDSITE_GOCDB_URL).
async fn original(args: &[String], envs: &[(&str, &str)], dir: &Path) -> Output {
    let launcher = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/run_cloud_info_provider.py");
    let mut all = vec![launcher.display().to_string()];
    all.extend_from_slice(args);
    run_clean(&common::venv_bin("python"), &all, envs, dir).await
}

/// Every `"CreationTime": "<time>"` value replaced by `T` (the one field that
/// is the time of the run).
fn mask_times(doc: &str) -> String {
    common::mask_creation_time(doc.as_bytes())
}

/// A Check-in–like access token from the sim's OIDC provider (client credentials).
async fn access_token(sim: &sim::SimHandle) -> String {
    sim.oidc_access_token().await.expect("an access token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_central_wrapper_line_gives_the_same_bytes_through_the_original_and_the_symlink() {
    let sim = common::start_sim_scenario("tiny").await;
    let tiny = sim::scenario::builtin("tiny").unwrap().generate();
    let project = tiny.site.projects.into_iter().find(|p| p.extra.contains_key("VO")).expect("a VO project");
    let vo = project.extra["VO"].as_str().unwrap().to_string();
    let issuer = format!("{}/identity/oidc", sim.base_url());
    sim.federate_egi(&issuer, &vo, &project.name).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // sites/SITE.yaml as the catch-all keeps it: the VO's project by id.
    std::fs::write(
        d.join("SITE.yaml"),
        format!(
            "gocdb: {}\nendpoint: {}\nvos:\n  - name: {vo}\n    auth:\n      project_id: \"{}\"\n",
            sim::gocdb::SITE_NAME,
            sim.auth_url().trim_end_matches('/'),
            project.id
        ),
    )
    .unwrap();
    let link = symlinked_fedsite(d);
    let token = access_token(&sim).await;
    let gocdb = format!("{}/gocdb/gocdbpi/public/", sim.base_url());
    // publisher.sh: the token and the federation's IdP in OS_*, then the line.
    let envs = [
        ("OS_AUTH_TYPE", "v3oidcaccesstoken"),
        ("OS_IDENTITY_PROVIDER", "egi.eu"),
        ("OS_PROTOCOL", "openid"),
        ("OS_ACCESS_TOKEN", token.as_str()),
        ("FEDSITE_GOCDB_URL", gocdb.as_str()),
    ];
    let line: Vec<String> =
        ["--middleware", "openstack", "--format", "glue21json", "SITE.yaml"].iter().map(|s| s.to_string()).collect();
    let theirs = original(&line, &envs, d).await;
    theirs.assert_success("cloud-info-provider-service (the original)");
    let ours = run_clean(&link, &line, &envs, d).await;
    ours.assert_success("cloud-info-provider-service (fedsite)");
    assert_eq!(
        mask_times(&theirs.stdout),
        mask_times(&ours.stdout),
        "--- original\n{}\n--- fedsite\n{}",
        theirs.stdout,
        ours.stdout
    );
    // The document is the site read through the federation (not an empty shell).
    let doc: serde_json::Value = serde_json::from_str(&ours.stdout).unwrap();
    assert_eq!(doc["CloudComputingEndpoint"][0]["Authentication"], "v3oidcaccesstoken");
    assert_eq!(doc["CloudComputingEndpoint"][0]["HealthState"], "ok");
    assert_eq!(doc["Share"].as_array().map(Vec::len), Some(1), "{}", ours.stdout);
    assert_eq!(doc["AccessPolicy"][0]["Rule"], serde_json::json!([format!("VO:{vo}")]));

    // The same line with the flags instead of the variables (flag over variable:
    // OS_PROTOCOL says a protocol the site does not have), and `--opt=value`.
    let mut envs2 = envs.to_vec();
    envs2.retain(|(k, _)| *k != "OS_PROTOCOL" && *k != "OS_IDENTITY_PROVIDER");
    envs2.push(("OS_PROTOCOL", "saml2"));
    let flags: Vec<String> = [
        "--os-identity-provider",
        "egi.eu",
        "--os-protocol=openid",
        "--os-auth-url",
        sim.auth_url().trim_end_matches('/'),
        "--publisher",
        "stdout",
        "SITE.yaml",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let theirs2 = original(&flags, &envs2, d).await;
    theirs2.assert_success("the original, flags");
    let ours2 = run_clean(&link, &flags, &envs2, d).await;
    ours2.assert_success("fedsite, flags");
    assert_eq!(mask_times(&theirs2.stdout), mask_times(&ours2.stdout));
    assert_eq!(mask_times(&ours2.stdout), mask_times(&ours.stdout));

    // A token Keystone refuses: the share is skipped on both sides, same bytes, same exit code.
    let mut bad = envs.to_vec();
    bad.retain(|(k, _)| *k != "OS_ACCESS_TOKEN");
    bad.push(("OS_ACCESS_TOKEN", "not-a-token"));
    let theirs3 = original(&line, &bad, d).await;
    let ours3 = run_clean(&link, &line, &bad, d).await;
    assert_eq!(theirs3.status.code(), ours3.status.code(), "original:\n{}\nfedsite:\n{}", theirs3.stderr, ours3.stderr);
    assert_eq!(mask_times(&theirs3.stdout), mask_times(&ours3.stdout));
    sim.stop().await;
}

/// One option of the original's `--help`: its spellings, and the value its
/// help shows (`None` for a flag without a value).
#[derive(Debug, Clone)]
struct HelpOption {
    names: Vec<String>,
    value: Option<String>,
}

/// The options of argparse's help text, from the lines that start an option
/// (`  --name VALUE, --alias VALUE   help ... (default: X)`), with a value of
/// the form it asks for: one of its `{choices}`, else its non-empty default,
/// else a word.
fn help_options(help: &str) -> Vec<HelpOption> {
    let lines: Vec<&str> = help.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if !l.starts_with("  -") {
            i += 1;
            continue;
        }
        // The option's text runs until the next option or heading.
        let mut block = l.to_string();
        let mut j = i + 1;
        while j < lines.len() && lines[j].starts_with("   ") && !lines[j].trim_start().starts_with('-') {
            block.push(' ');
            block.push_str(lines[j].trim());
            j += 1;
        }
        i = j;
        // The spellings: "--a VALUE, --b VALUE" before two spaces of the help.
        let spec = l.trim_start().split("  ").next().unwrap_or_default();
        let mut names = Vec::new();
        let mut metavar = None;
        for part in spec.split(", ") {
            let mut words = part.split_whitespace();
            if let Some(n) = words.next() {
                names.push(n.to_string());
            }
            metavar = words.next().map(str::to_string);
        }
        let default = block
            .rsplit_once("(default: ")
            .map(|(_, d)| d.trim_end_matches(')').trim().to_string())
            .filter(|d| !d.is_empty() && d != "None" && d != "False" && d != "True");
        let value = metavar.map(|m| {
            if let Some(choices) = m.strip_prefix('{').and_then(|c| c.strip_suffix('}')) {
                choices.split(',').rfind(|c| *c != "None").unwrap_or("x").to_string()
            } else {
                default.clone().unwrap_or_else(|| "x".into())
            }
        });
        out.push(HelpOption { names, value });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_option_the_originals_help_lists_is_accepted_by_the_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let link = symlinked_fedsite(d);
    // A site file that is not there: a command line both accept fails on it (exit 1);
    // one they refuse is a usage error (exit 2) before it.
    let missing = "no-such-site.yaml".to_string();
    let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
    for auth_type in ["password", "v3applicationcredential", "v3oidcaccesstoken", "v3oidcclientcredentials", "v3token"]
    {
        let envs = [("OS_AUTH_TYPE", auth_type)];
        let help = original(&["--help".to_string()], &envs, d).await;
        help.assert_success("cloud-info-provider-service --help");
        let options = help_options(&help.stdout);
        assert!(options.len() > 40, "{auth_type}: too few options parsed from:\n{}", help.stdout);
        // The original takes them all at once, as `--opt=value` (checks the values' form),
        // except the ones it lists with a `_` (`--os-application_credential_id`): its
        // os-client-config rewrites them to `-` in argv before parsing, so it refuses
        // them (docs/cloudinfo.md); fedsite takes both spellings.
        let mut all = Vec::new();
        let mut underscored = Vec::new();
        for o in options.iter().filter(|o| !matches!(o.names[0].as_str(), "-h" | "--version" | "--os-cloud")) {
            let arg = match &o.value {
                Some(v) => format!("{}={v}", o.names[0]),
                None => o.names[0].clone(),
            };
            if o.names[0].contains('_') { underscored.push(arg) } else { all.push(arg) }
        }
        all.push(missing.clone());
        let theirs = original(&all, &envs, d).await;
        assert_eq!(theirs.status.code(), Some(1), "the original refused {all:?}:\n{}", theirs.stderr);
        let ours = run_clean(&link, &all, &envs, d).await;
        assert_eq!(ours.status.code(), Some(1), "fedsite refused {all:?}:\n{}", ours.stderr);
        assert!(ours.stderr.contains(&missing), "fedsite stopped before the site file:\n{}", ours.stderr);
        if !underscored.is_empty() {
            let mut args = underscored.clone();
            args.push(missing.clone());
            let theirs = original(&args, &envs, d).await;
            assert_eq!(theirs.status.code(), Some(2), "the original now takes {underscored:?}: {}", theirs.stderr);
            let ours = run_clean(&link, &args, &envs, d).await;
            assert_eq!(ours.status.code(), Some(1), "fedsite refused {args:?}:\n{}", ours.stderr);
            assert!(ours.stderr.contains(&missing), "{}", ours.stderr);
        }
        for o in options {
            for n in &o.names {
                seen.insert(n.clone(), o.value.clone());
            }
        }
    }
    // Each spelling alone, `--opt value`, through the symlink.
    for (name, value) in &seen {
        let mut args = vec![name.clone()];
        args.extend(value.clone());
        if name == "-h" || name == "--help" || name == "--version" {
            let ours = run_clean(&link, &args, &[], d).await;
            assert_eq!(ours.status.code(), Some(0), "{name}:\n{}", ours.stderr);
            continue;
        }
        args.push(missing.clone());
        let ours = run_clean(&link, &args, &[], d).await;
        assert_eq!(ours.status.code(), Some(1), "fedsite {args:?}:\n{}", ours.stderr);
        assert!(ours.stderr.contains(&missing), "fedsite {args:?} stopped before the site file:\n{}", ours.stderr);
    }
    for must in
        ["--os-auth-url", "--os-access-token", "--os-cacert", "--tls-min-version", "--os-tenant-id", "--os-auth-plugin"]
    {
        assert!(seen.contains_key(must), "{must} not found in the original's help: {:?}", seen.keys());
    }
    // argparse's ways of writing a command line: `@FILE` (one argument a line), a unique
    // prefix of a long option, os-client-config's `_` for `-`.
    std::fs::write(d.join("args.txt"), "--format\nglue21json\n--select-flavors=public\n").unwrap();
    for args in [
        vec!["@args.txt".to_string(), missing.clone()],
        vec!["--midd".to_string(), "openstack".to_string(), missing.clone()],
        vec!["--os_auth_url".to_string(), "https://x.example/v3".to_string(), missing.clone()],
    ] {
        let theirs = original(&args, &[], d).await;
        assert_eq!(theirs.status.code(), Some(1), "the original {args:?}:\n{}", theirs.stderr);
        let ours = run_clean(&link, &args, &[], d).await;
        assert_eq!(ours.status.code(), Some(1), "fedsite {args:?}:\n{}", ours.stderr);
        assert!(ours.stderr.contains(&missing), "fedsite {args:?}:\n{}", ours.stderr);
    }
    // A usage error is one on both sides (exit 2), so the checks above can fail.
    let wrong = vec!["--no-such-option".to_string(), missing.clone()];
    assert_eq!(original(&wrong, &[], d).await.status.code(), Some(2));
    assert_eq!(run_clean(&link, &wrong, &[], d).await.status.code(), Some(2));
    let wrong = vec!["--tls-min-version".to_string(), "1.1".to_string(), missing];
    assert_eq!(original(&wrong, &[], d).await.status.code(), Some(2));
    assert_eq!(run_clean(&link, &wrong, &[], d).await.status.code(), Some(2));
}
