//! `fedsite accounting extract` and the ledger's instance-action cache, end to end against
//! `fedsite sim` (tiny): the second run on the same ledger lists no instance actions and
//! finds every record unchanged; `--no-action-cache` lists them all again.

use crate::common;

use std::path::Path;
use tokio::process::Command;

/// One extract run (window 2023-05-21 → 05-25) into `dir`'s ledger and spool; the sim's
/// instance-action requests it made, and its stdout.
async fn extract(sim: &common::SimProcess, base: &str, dir: &Path, extra: &[&str]) -> (usize, String) {
    let http = reqwest::Client::new();
    http.delete(format!("{base}/sim/requests")).send().await.unwrap().error_for_status().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fedsite"))
        .args(["accounting", "extract", "--os-cloud", "sim-accounting", "--site-name", "TEST-SITE"])
        .args(["--from", "2023-05-21", "--to", "2023-05-25", "--log", "warn"])
        .arg("--ledger")
        .arg(dir.join("ledger.sqlite"))
        .arg("--spool")
        .arg(dir.join("outgoing"))
        .args(extra)
        .env("OS_CLIENT_CONFIG_FILE", &sim.clouds_yaml)
        .env_remove("OS_CLOUD")
        .env_remove("FEDSITE_CONFIG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // novo has no VO: exit 1 by design; the other two projects must have gone through.
    assert!(
        stdout.contains("(proj1)") && stdout.contains("(egi-proj)"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log: Vec<serde_json::Value> =
        http.get(format!("{base}/sim/requests")).send().await.unwrap().json().await.unwrap();
    let actions = log
        .iter()
        .filter(|r| r["method"] == "GET" && r["uri"].as_str().is_some_and(|u| u.contains("/os-instance-actions")))
        .count();
    (actions, stdout)
}

#[tokio::test]
async fn a_second_extract_on_the_same_ledger_lists_no_instance_actions_unless_told_not_to_cache() {
    let dir = tempfile::tempdir().unwrap();
    let sim = common::SimProcess::start(dir.path(), &["--scenario", "tiny"]);
    let yaml = std::fs::read_to_string(&sim.clouds_yaml).unwrap();
    let auth = yaml.lines().find_map(|l| l.trim().strip_prefix("auth_url: ")).unwrap();
    let base = auth.trim_end_matches("/identity/v3").to_string();

    let (first, out1) = extract(&sim, &base, dir.path(), &[]).await;
    assert!(first >= 8, "tiny's suspended, paused, stopped... servers: {first}\n{out1}");
    assert!(out1.contains(" spooled in "), "{out1}");
    let (second, out2) = extract(&sim, &base, dir.path(), &[]).await;
    assert_eq!(second, 0, "{out2}");
    assert!(out2.contains("(proj1) VO vo.example.org: nothing spooled in 0 messages, 9 unchanged"), "{out2}");
    let (third, out3) = extract(&sim, &base, dir.path(), &["--no-action-cache"]).await;
    assert_eq!(third, first, "{out3}");
    assert!(out3.contains("nothing spooled in 0 messages, 9 unchanged"), "same records: {out3}");
}
