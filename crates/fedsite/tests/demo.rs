//! `fedsite demo` end to end: the binary starts the simulated site in-process
//! and reports its inventory; the figures must equal the scenario's own.

use std::process::Command;

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
}
