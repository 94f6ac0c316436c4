//! The real python-openstackclient (from the peers' venv) against the
//! in-process sim's `tiny` scenario: each command must succeed and print the
//! scenario's values (`-f json`), not just exit 0.

use crate::common;

use std::time::Duration;

use serde_json::Value;

const PROJ1: &str = "0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b";
const EGI_PROJ: &str = "e91c0a2f4b7c4d1e8f9a0b1c2d3e4f51";
const NOVO: &str = "5d1e2f3a4b5c6d7e8f90a1b2c3d4e5f6";
const UNTAGGED: &str = "9a8b7c6d5e4f30211203a4b5c6d7e8f9";

/// Runs `openstack <args> -f json` as cloud `sim` (admin on project admin)
/// against a fresh tiny sim; returns the parsed JSON it printed.
async fn openstack(args: &[&str]) -> Value {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    common::write_private(&clouds, sim.clouds_yaml());
    let mut argv = args.to_vec();
    argv.extend(["-f", "json"]);
    let out = common::run_venv(
        "openstack",
        &argv,
        &[("OS_CLIENT_CONFIG_FILE", clouds.to_str().unwrap()), ("OS_CLOUD", "sim")],
        Some(dir.path()),
        Duration::from_secs(120),
    )
    .await;
    out.assert_success(&format!("openstack {}", argv.join(" ")));
    sim.stop().await;
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("openstack {argv:?} printed no JSON ({e}):\n{}", out.stdout))
}

fn column<'a>(rows: &'a Value, key: &str) -> Vec<&'a str> {
    rows.as_array()
        .unwrap_or_else(|| panic!("not a list: {rows}"))
        .iter()
        .map(|r| r[key].as_str().unwrap_or_else(|| panic!("no string {key} in {r}")))
        .collect()
}

fn row<'a>(rows: &'a Value, key: &str, value: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r[key] == value)
        .unwrap_or_else(|| panic!("no row with {key} = {value} in {rows:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_list_with_tag_caso_lists_exactly_the_tagged_projects() {
    let rows = openstack(&["project", "list", "--tags", "caso"]).await;
    let mut ids = column(&rows, "ID");
    ids.sort();
    let mut want = vec![PROJ1, EGI_PROJ, NOVO];
    want.sort();
    assert_eq!(ids, want, "{rows:#}");
    assert!(!ids.contains(&UNTAGGED));
    assert_eq!(row(&rows, "ID", PROJ1)["Name"], "proj1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_list_all_projects_shows_the_servers_alive_at_the_reference_time() {
    let rows = openstack(&["server", "list", "--all-projects"]).await;
    let names = column(&rows, "Name");
    for alive in ["vm-running", "vm-quiet", "vm-paused", "vm-suspended", "vm-ñandú", "vm-novo", "vm-untagged"] {
        assert!(names.contains(&alive), "{alive} missing from {names:?}");
    }
    // Deleted before the reference time (2023-06-01): not listed.
    for gone in ["vm-deleted", "vm-gone", "vm-ended-after"] {
        assert!(!names.contains(&gone), "{gone} listed: {names:?}");
    }
    let running = row(&rows, "Name", "vm-running");
    assert_eq!(running["ID"], "11111111-1111-4111-8111-111111111111");
    assert_eq!(running["Status"], "ACTIVE");
    assert_eq!(running["Flavor"], "gpu.small", "{running}");
    assert_eq!(row(&rows, "Name", "vm-quiet")["Status"], "SHUTOFF");
    assert_eq!(row(&rows, "Name", "vm-paused")["Status"], "PAUSED");
    let networks = running["Networks"].to_string();
    assert!(networks.contains("10.0.0.5"), "vm-running's fixed address: {networks}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flavor_show_f1_prints_its_size_and_extra_specs() {
    let f = openstack(&["flavor", "show", "f1"]).await;
    assert_eq!(f["id"], "f1", "{f:#}");
    assert_eq!(f["name"], "gpu.small");
    assert_eq!(f["vcpus"], 2);
    assert_eq!(f["ram"], 4096);
    assert_eq!(f["disk"], 20);
    assert_eq!(f["OS-FLV-EXT-DATA:ephemeral"], 10);
    assert_eq!(f["os-flavor-access:is_public"], true);
    assert_eq!(f["properties"]["accounting:benchmark_type"], "HEPscore23", "{f:#}");
    assert_eq!(f["properties"]["Accelerator:Model"], "A100", "{f:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_list_shows_the_ubuntu_image() {
    let rows = openstack(&["image", "list"]).await;
    let ubuntu = row(&rows, "Name", "ubuntu");
    assert_eq!(ubuntu["ID"], "7b2c8e5a-3f1d-4c6b-9a0e-5d4f3c2b1a09");
    assert_eq!(ubuntu["Status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_list_all_projects_shows_data_vol_in_use_50_gib() {
    let rows = openstack(&["volume", "list", "--all-projects"]).await;
    let v = row(&rows, "Name", "data-vol");
    assert_eq!(v["ID"], "44444444-4444-4444-8444-444444444444", "{v}");
    assert_eq!(v["Size"], 50);
    assert_eq!(v["Status"], "in-use");
    // "Attached to <server name, or id when the lookup fails> on <device>"
    let attached = v["Attached to"].to_string();
    assert!(attached.contains("vm-running") || attached.contains("11111111-1111-4111-8111-111111111111"), "{v}");
    assert!(attached.contains("/dev/vdb"), "{v}");
    let scratch = row(&rows, "Name", "scratch");
    assert_eq!(scratch["Size"], 10);
    assert_eq!(scratch["Status"], "available");
    // Deleted 2023-05-23, before the reference time.
    assert!(!column(&rows, "Name").contains(&"tmp-vol"), "{rows:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_issue_returns_a_token_scoped_to_the_admin_project() {
    let t = openstack(&["token", "issue"]).await;
    for key in ["id", "expires", "project_id", "user_id"] {
        assert!(t[key].as_str().is_some_and(|s| !s.is_empty()), "{key} in {t:#}");
    }
    let expires = t["expires"].as_str().unwrap();
    // OSC prints `%Y-%m-%dT%H:%M:%S%z`, e.g. 2026-11-29T11:46:44+0000.
    assert!(
        chrono::DateTime::parse_from_str(expires, "%Y-%m-%dT%H:%M:%S%z").is_ok(),
        "expires is a timestamp: {expires}"
    );
}
