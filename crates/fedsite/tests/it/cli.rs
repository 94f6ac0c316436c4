//! The `fedsite` binary end to end: `demo` starts the simulated site
//! in-process and reports its inventory (the figures must equal the
//! scenario's own); `sim` prints a clouds.yaml that clients can use as it is.

use crate::common;

use openstack::Paged;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn demo_reports_the_scenarios_inventory() {
    let out = Command::new(env!("CARGO_BIN_EXE_fedsite"))
        .args(["demo", "--scenario", "tiny"])
        .output()
        .expect("running fedsite demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));

    let scenario = sim::scenario::builtin("tiny").unwrap().generate();
    let now = scenario.reference_time;
    let site = &scenario.site;
    let alive = site.servers.iter().filter_map(|s| s.view_at(now)).filter(|v| !v.deleted).count();
    let volumes: Vec<_> = site.volumes.iter().filter(|v| v.visible_at(now)).collect();
    let gib: u64 = volumes.iter().map(|v| v.size).sum();
    let fips = site.floating_ips.iter().filter(|f| f.visible_at(now)).count();
    let headline = format!(
        "{} projects, {alive} servers, {} volumes ({gib} GiB), {fips} floating IPs, {} flavors, {} images",
        site.projects.len(),
        volumes.len(),
        site.flavors.len(),
        site.images.len()
    );
    assert!(stdout.contains(&headline), "expected {headline:?} in:\n{stdout}");
    assert!(stdout.contains("0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b   proj1"), "{stdout}");
    assert!(stdout.contains("vo.example.org"), "{stdout}");
    // The accounting part: proj1 and egi-proj extract, novo (no VO) does not.
    assert!(stdout.contains("2 of 3 projects extracted"), "{stdout}");
    assert!(stdout.contains("no VO mapping"), "{stdout}");
    let spooled = stdout.lines().find(|l| l.starts_with("records spooled: ")).expect("a spool summary");
    assert!(spooled.contains(" cloud") && spooled.contains(" storage"), "{spooled}");
    // The images part: the simulated Harbor read with its robot account,
    // the private VO projects included, nothing failing.
    assert!(
        stdout.contains("registry.egi.eu vo.example.org/tools:2023.04.01 (qcow2→raw) for vo.example.org"),
        "{stdout}"
    );
    assert!(stdout.contains("entries skipped, 0 errors)"), "{stdout}");
    // Delivery: every spooled message is sent, received, verified and stored.
    let messages: usize = stdout
        .lines()
        .find_map(|l| l.split(" messages spooled").next().filter(|_| l.contains("messages spooled")))
        .and_then(|l| l.rsplit(", ").next())
        .and_then(|n| n.trim().parse().ok())
        .expect("a message count");
    assert!(stdout.contains(&format!("sent {messages}, retried 0")), "{stdout}");
    assert!(stdout.contains(&format!("pulled {messages}, accepted {messages}")), "{stdout}");
    assert!(stdout.contains("APEL's view"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sim_prints_a_clouds_yaml_that_the_client_uses_as_it_is() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fedsite"))
        .args(["sim", "--scenario", "tiny", "--now", "2023-06-11T00:00:00Z", "--log", "warn"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting fedsite sim");
    // The document ends with the second cloud's last key.
    let mut yaml = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut clouds = 0;
    while let Some(Ok(line)) = lines.next() {
        yaml.push_str(&line);
        yaml.push('\n');
        if line.trim_start().starts_with("identity_api_version:") {
            clouds += 1;
            if clouds == 2 {
                break;
            }
        }
    }
    let result = async {
        let cfg = openstack::CloudConfig::from_clouds_yaml(&yaml, None, "sim-accounting", "fedsite sim stdout")?;
        let session = openstack::Session::connect(&cfg).await?;
        openstack::nova::ListServers { all_tenants: true, ..Default::default() }.list(&session).await
    }
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let servers = result.unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let names: Vec<&str> = servers.iter().filter_map(|s| s.name.as_deref()).collect();
    // --now moved the site past 2023-06-10, when vm-running is deleted.
    assert!(names.contains(&"vm-quiet") && !names.contains(&"vm-running"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn extract_output_does_not_depend_on_the_host_time_zone() {
    let scenario = sim::scenario::builtin("tiny").unwrap().generate();
    let sim = sim::start(sim::SimConfig::new(scenario)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    common::write_private(&clouds, sim.clouds_yaml());
    let mut outputs = Vec::new();
    for tz in ["UTC", "America/New_York", "Asia/Kolkata"] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"))
            .args(["accounting", "extract", "--dry-run", "--os-cloud", "sim-accounting"])
            .args(["--site-name", "TEST-SITE", "--from", "2023-05-21", "--to", "2023-05-25"])
            .env("OS_CLIENT_CONFIG_FILE", &clouds)
            .env("TZ", tz)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        // novo has no VO: the run reports it and exits non-zero, the rest is printed.
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("StartTime: 1684576800"), "vm-running's creation in UTC epoch\n{stdout}");
        outputs.push(stdout);
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
    sim.stop().await;
}

/// Every record of a spool, rendered, by (kind, key).
fn spool_records(spool: &std::path::Path) -> std::collections::BTreeMap<(String, String), String> {
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

#[tokio::test(flavor = "multi_thread")]
async fn extract_from_an_existing_caso_conf_gives_the_same_records_as_the_flags() {
    let scenario = sim::scenario::builtin("tiny").unwrap().generate();
    let sim = sim::start(sim::SimConfig::new(scenario)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clouds = d.join("clouds.yaml");
    common::write_private(&clouds, sim.clouds_yaml());
    // The reference's caso.conf, pointed at the simulated site.
    let conf = d.join("caso.conf");
    common::write_private(
        &conf,
        format!(
            "[DEFAULT]\nsite_name = TEST-SITE\nservice_name = TEST-SITE-cloud\nmessengers = ssm,noop\n\
             spooldir = {d}/spool\nextractor = nova,cinder,neutron\nvo_property = VO\n\
             mapping_file = {d}/nonexistent-voms.json\n\n[keystone_auth]\nauth_type = v3password\n\
             auth_url = {auth}\nusername = accounting\npassword = secret\nuser_domain_id = default\n\
             project_domain_id = default\n\n[ssm]\noutput_path = {d}/from-caso-conf\nmax_size = 100\n",
            d = d.display(),
            auth = sim.auth_url()
        ),
    );
    let run = |args: Vec<String>| {
        let clouds = clouds.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"))
                .args(["accounting", "extract", "--from", "2023-05-21", "--to", "2023-05-25"])
                .args(args)
                .env("OS_CLIENT_CONFIG_FILE", &clouds)
                .env_remove("OS_CLOUD")
                .output()
                .await
                .unwrap()
        }
    };
    let a = run(vec![
        "--caso-conf".into(),
        conf.display().to_string(),
        "--ledger".into(),
        d.join("a.sqlite").display().to_string(),
    ])
    .await;
    let b = run([
        "--os-cloud",
        "sim-accounting",
        "--site-name",
        "TEST-SITE",
        "--service-name",
        "TEST-SITE-cloud",
        "--vo-property",
        "VO",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["--spool".into(), d.join("from-flags").display().to_string()])
    .chain(["--ledger".into(), d.join("b.sqlite").display().to_string()])
    .collect())
    .await;
    for out in [&a, &b] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // novo has no VO in tiny: the one expected failure.
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(!stderr.contains("secret") && !String::from_utf8_lossy(&out.stdout).contains("secret"));
    }
    let from_conf = spool_records(&d.join("from-caso-conf"));
    assert!(from_conf.len() > 5, "{from_conf:?}");
    let from_flags = spool_records(&d.join("from-flags"));
    let only = |a: &std::collections::BTreeMap<(String, String), String>,
                b: &std::collections::BTreeMap<(String, String), String>| {
        a.iter().filter(|(k, v)| b.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        from_conf,
        from_flags,
        "only from caso.conf: {:?}\nonly from the flags: {:?}",
        only(&from_conf, &from_flags),
        only(&from_flags, &from_conf)
    );
    sim.stop().await;
}

/// `--caso-compatible` is exactly cASO's switches: `--style caso`, cASO's CloudType, no
/// SuspendDuration, inactive time counted as running (the dry-run messages are identical),
/// and it differs from the default where those switches matter (tiny has suspended VMs).
#[tokio::test(flavor = "multi_thread")]
async fn caso_compatible_is_casos_switches_together() {
    let scenario = sim::scenario::builtin("tiny").unwrap().generate();
    let sim = sim::start(sim::SimConfig::new(scenario)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    common::write_private(&clouds, sim.clouds_yaml());
    let dry = |extra: &'static [&'static str]| {
        let clouds = clouds.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"))
                .args(["accounting", "extract", "--dry-run", "--os-cloud", "sim-accounting"])
                .args(["--site-name", "TEST-SITE", "--from", "2023-05-21", "--to", "2023-05-25"])
                .args(extra)
                .env("OS_CLIENT_CONFIG_FILE", &clouds)
                .output()
                .await
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "novo has no VO: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        }
    };
    let compatible = dry(&["--caso-compatible"]).await;
    let spelled = dry(&[
        "--style",
        "caso",
        "--cloud-type",
        "caso/5.2.2 (OpenStack)",
        "--no-suspend-duration",
        "--inactive-time",
        "running",
    ])
    .await;
    assert_eq!(compatible, spelled);
    assert!(
        compatible.contains("CloudType: caso/5.2.2 (OpenStack)") && !compatible.contains("SuspendDuration"),
        "{compatible}"
    );
    let default = dry(&[]).await;
    assert!(default.contains("SuspendDuration") && default.contains("CloudType: fedsite/"), "{default}");
    sim.stop().await;
}

/// `accounting projects` says where each VO came from in words, and which projects have none.
#[tokio::test(flavor = "multi_thread")]
async fn projects_name_the_vo_and_where_it_came_from() {
    let sim = sim::start(sim::SimConfig::new(sim::scenario::builtin("tiny").unwrap().generate())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    common::write_private(&clouds, sim.clouds_yaml());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"))
        .args(["accounting", "projects", "--os-cloud", "sim-accounting", "--site-name", "TEST-SITE"])
        .env("OS_CLIENT_CONFIG_FILE", &clouds)
        .env_remove("FEDSITE_CONFIG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "novo has no VO: {stdout}");
    assert!(stdout.contains("(proj1) mapped to VO 'vo.example.org' (from Keystone project property VO)"), "{stdout}");
    assert!(
        stdout.contains("(egi-proj) mapped to VO 'vo.access.egi.eu' (from Keystone project property egi.VO)"),
        "{stdout}"
    );
    assert!(stdout.contains("(novo) has no VO") && !stdout.contains("Property(\""), "{stdout}");
    sim.stop().await;
}
