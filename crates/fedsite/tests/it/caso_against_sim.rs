//! Real cASO 5.2.2 (from the peers' venv) against the in-process sim's `tiny`
//! scenario: the dirq messages it writes must equal the vectors captured from
//! cASO against the reference emulator (testdata/caso-5.2.2/), and its records
//! for tiny's edge-case projects must carry the hand-checked values.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

const PROJ1: &str = "0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b";
const EGI_PROJ: &str = "e91c0a2f4b7c4d1e8f9a0b1c2d3e4f51";
const UNTAGGED: &str = "9a8b7c6d5e4f30211203a4b5c6d7e8f9";

fn vector(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/caso-5.2.2").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The messages of one cASO run, by type.
#[derive(Debug, Default)]
struct Messages {
    cloud: Vec<String>,
    ip: Vec<String>,
    accelerator: Vec<String>,
    storage: Vec<String>,
    log: String,
}

/// Runs `caso-extract` once against `sim` over the vectors' window with a
/// fresh spool; returns the dirq elements it wrote, sorted by type.
async fn run_caso(sim: &sim::SimHandle, vo_property: &str, projects: Option<&str>) -> Messages {
    let run = common::CasoRun { vo_property, projects, caso_tag: "caso", from: "2023-05-21", to: "2023-05-25" };
    let out = common::run_caso(sim, &run).await;
    let mut msgs = Messages { log: out.log.clone(), ..Default::default() };
    for path in common::dirq_elements(&out.outgoing()) {
        let text = std::fs::read_to_string(&path).unwrap();
        if text.starts_with("APEL-cloud-message:") {
            msgs.cloud.push(text);
        } else if text.starts_with("{\"Type\": \"APEL Public IP message\"") {
            msgs.ip.push(text);
        } else if text.starts_with("{\"Type\": \"APEL-accelerator-message\"") {
            msgs.accelerator.push(text);
        } else if text.starts_with("<sr:StorageUsageRecords") {
            msgs.storage.push(text);
        } else {
            panic!("unexpected dirq element {}: {text}", path.display());
        }
    }
    msgs
}

/// A cloud message's records, by VMUUID, each as key → value.
fn cloud_records(msg: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let body = msg.strip_prefix("APEL-cloud-message: v0.4\n").expect("cloud message header");
    body.trim_end_matches('\n')
        .split("\n%%\n")
        .map(|rec| {
            let fields: BTreeMap<String, String> = rec
                .lines()
                .map(|l| {
                    let (k, v) = l.split_once(": ").unwrap_or_else(|| panic!("bad line {l:?}"));
                    (k.to_string(), v.to_string())
                })
                .collect();
            (fields["VMUUID"].clone(), fields)
        })
        .collect()
}

/// The `UsageRecords` of a JSON message, without the fields that carry the
/// time of the run (`uuid`, `MeasurementTime`).
fn usage_records(msg: &str) -> Value {
    let mut v: Value = serde_json::from_str(msg).unwrap();
    for r in v["UsageRecords"].as_array_mut().unwrap() {
        let r = r.as_object_mut().unwrap();
        r.remove("uuid");
        r.remove("MeasurementTime");
    }
    v
}

/// Storage XML with the run-time stamps (`createTime`, `EndTime`) blanked.
fn storage_without_now(xml: &str) -> String {
    fn blank(s: &str, open: &str, close: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find(open) {
            out.push_str(&rest[..i + open.len()]);
            let after = &rest[i + open.len()..];
            out.push_str("NOW");
            rest = &after[after.find(close).expect("closed")..];
        }
        out.push_str(rest);
        out
    }
    blank(&blank(xml, "sr:createTime=\"", "\""), "<sr:EndTime>", "</sr:EndTime>")
}

#[test]
fn storage_xml_comparison_blanks_only_the_run_time_stamps() {
    let a = "<x sr:createTime=\"2026-01-01T00:00:00.1\" sr:recordId=\"v\" /><sr:EndTime>2026-01-01</sr:EndTime><sr:StartTime>s</sr:StartTime>";
    assert_eq!(
        storage_without_now(a),
        "<x sr:createTime=\"NOW\" sr:recordId=\"v\" /><sr:EndTime>NOW</sr:EndTime><sr:StartTime>s</sr:StartTime>"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caso_on_proj1_writes_the_vector_messages() {
    let sim = common::start_sim().await;
    let m = run_caso(&sim, "VO", Some(PROJ1)).await;
    let ctx = format!("cASO log:\n{}", m.log);
    assert_eq!(
        (m.cloud.len(), m.ip.len(), m.accelerator.len(), m.storage.len()),
        (1, 1, 1, 1),
        "one message per record type\n{ctx}"
    );
    assert_eq!(m.cloud[0], vector("cloud-message.txt"), "cloud message, byte for byte\n{ctx}");
    assert_eq!(usage_records(&m.ip[0]), usage_records(&vector("ip-message.json")), "IP message\n{ctx}");
    assert_eq!(m.accelerator[0], vector("accelerator-message.json").trim_end(), "accelerator message\n{ctx}");
    assert_eq!(
        storage_without_now(&m.storage[0]),
        storage_without_now(vector("storage-message.xml").trim_end()),
        "storage message\n{ctx}"
    );
    sim.stop().await;
}

/// tiny's edge cases (see crates/sim/scenarios/tiny.toml): egi-proj's VO is
/// under `egi.VO`; proj1 and novo have none there, so cASO drops their
/// records (its bug 7: FQAN None fails validation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caso_on_all_caso_tagged_projects_reports_the_edge_cases_by_hand() {
    let sim = common::start_sim().await;
    let m = run_caso(&sim, "egi.VO", None).await;
    let ctx = format!("cASO log:\n{}", m.log);
    assert_eq!(m.cloud.len(), 1, "{ctx}");
    let recs = cloud_records(&m.cloud[0]);
    // (uuid, MachineName, Status, StartTime, EndTime, WallDuration, CpuCount)
    let want: &[(&str, &str, &str, i64, i64, i64, i64)] = &[
        ("e0000001-0000-4000-8000-000000000001", "vm-paused", "paused", 1684108800, 0, 864000, 2),
        ("e0000002-0000-4000-8000-000000000002", "vm-suspended", "suspended", 1684195200, 0, 777600, 2),
        ("e0000003-0000-4000-8000-000000000003", "vm-shelved", "unknown", 1683676800, 0, 1296000, 2),
        ("e0000004-0000-4000-8000-000000000004", "vm-error", "error", 1684281600, 0, 691200, 2),
        ("e0000005-0000-4000-8000-000000000005", "vm-never", "error", 1684724400, 1684724400, 1, 2),
        ("e0000006-0000-4000-8000-000000000006", "vm-resized", "started", 1683849600, 0, 1123200, 4),
        ("e0000007-0000-4000-8000-000000000007", "vm-bfv", "started", 1684022400, 0, 950400, 1),
        ("e0000008-0000-4000-8000-000000000008", "vm-and", "started", 1684659600, 0, 313200, 4),
        ("e0000011-0000-4000-8000-000000000011", "vm-ended-after", "started", 1684368000, 0, 604800, 2),
        ("e0000012-0000-4000-8000-000000000012", "vm-stopped", "started", 1684411200, 0, 561600, 2),
    ];
    let mut got_ids: Vec<&str> = recs.keys().map(String::as_str).collect();
    got_ids.sort();
    let want_ids: Vec<&str> = want.iter().map(|w| w.0).collect();
    assert_eq!(got_ids, want_ids, "exactly egi-proj's servers in the window (not vm-gone, vm-future)\n{ctx}");
    for (id, name, status, start, end, wall, cpus) in want {
        let r = &recs[*id];
        let field = |k: &str| r.get(k).map(String::as_str).unwrap_or("<absent>").to_string();
        let got = (field("MachineName"), field("Status"), field("StartTime"), field("EndTime"));
        assert_eq!(got, (name.to_string(), status.to_string(), start.to_string(), end.to_string()), "{name}: {r:?}");
        assert_eq!(field("WallDuration"), wall.to_string(), "{name}: {r:?}");
        assert_eq!(field("CpuCount"), cpus.to_string(), "{name}: {r:?}");
        // A wall time of 0 is rendered as 1, and so is the CPU time derived
        // from it (0 × cpus), as cASO does.
        let cpu_duration = if *wall == 1 { 1 } else { wall * cpus };
        assert_eq!(field("CpuDuration"), cpu_duration.to_string(), "{name}: {r:?}");
        assert_eq!(field("FQAN"), "vo.access.egi.eu", "{name}");
        assert_eq!(field("LocalGroupId"), EGI_PROJ, "{name}");
    }
    let paused = &recs["e0000001-0000-4000-8000-000000000001"];
    assert_eq!(paused["PublicIPCount"], "1", "vm-paused holds 198.51.100.20");
    assert_eq!(paused["GlobalUserName"], "carol@example.org");
    assert_eq!(paused["ImageId"], "https://appdb.example/img/1");
    assert_eq!((paused["BenchmarkType"].as_str(), paused["Benchmark"].as_str()), ("HEPscore23", "12.5"));
    let resized = &recs["e0000006-0000-4000-8000-000000000006"];
    assert_eq!(resized["Benchmark"], "99.0", "f-int's benchmark \"99\" prints as a float");
    let bfv = &recs["e0000007-0000-4000-8000-000000000007"];
    assert!(!bfv.contains_key("ImageId") && !bfv.contains_key("Benchmark"), "boot from volume: {bfv:?}");
    let nandu = &recs["e0000008-0000-4000-8000-000000000008"];
    assert_eq!(nandu["GlobalUserName"], "zo@example.org", "non-ASCII dropped");
    assert_eq!(nandu["ImageId"], "8c3d9f6b-4a2e-4d7c-8b1f-6e5a4d3c2b1a", "no mpuri: the raw image id");

    // IP: egi-proj has 198.51.100.20 and 2001:db8::20; the v6 record wins.
    assert_eq!(m.ip.len(), 1, "{ctx}");
    let ip = usage_records(&m.ip[0]);
    let ips = ip["UsageRecords"].as_array().unwrap();
    assert_eq!(ips.len(), 1, "{ip}");
    assert_eq!(ips[0]["LocalGroup"], EGI_PROJ);
    assert_eq!(ips[0]["FQAN"], "vo.access.egi.eu");
    assert_eq!((ips[0]["IPVersion"].as_i64(), ips[0]["IPCount"].as_i64()), (Some(6), Some(1)), "{ip}");

    // Storage: only bfv-root (tmp-vol was deleted before the run).
    assert_eq!(m.storage.len(), 1, "{ctx}");
    let st = &m.storage[0];
    assert_eq!(st.matches("<sr:StorageUsageRecord>").count(), 1, "{st}");
    for part in [
        "sr:recordId=\"e1000001-0000-4000-8000-000000000001\"",
        "<sr:LocalUser>u-carol</sr:LocalUser>",
        "<sr:UserIdentity>carol@example.org</sr:UserIdentity>",
        "<sr:Group>vo.access.egi.eu</sr:Group>",
        "<sr:StartTime>2023-05-21T00:00:00</sr:StartTime>",
        "<sr:ResourceCapacityUsed>21474836480</sr:ResourceCapacityUsed>",
    ] {
        assert!(st.contains(part), "{part} not in {st}");
    }

    // Accelerators: f1 servers only; vm-paused's May runs 05-15 → 05-25.
    assert_eq!(m.accelerator.len(), 1, "{ctx}");
    let acc: Value = serde_json::from_str(&m.accelerator[0]).unwrap();
    let paused_acc = acc["UsageRecords"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["AssociatedRecord"] == "e0000001-0000-4000-8000-000000000001")
        .unwrap_or_else(|| panic!("no accelerator record for vm-paused: {acc}"));
    assert_eq!(paused_acc["AvailableDuration"], 864000);
    assert_eq!(paused_acc["Model"], "NVIDIA A100");
    for r in acc["UsageRecords"].as_array().unwrap() {
        let id = r["AssociatedRecord"].as_str().unwrap();
        assert!(!["e0000006", "e0000007", "e0000008"].iter().any(|p| id.starts_with(p)), "no GPU flavor: {r}");
    }
    sim.stop().await;
}

/// An untagged project named with `--projects`, its VO under `egi.eu:VO`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caso_on_an_untagged_project_named_explicitly_reports_its_server() {
    let sim = common::start_sim().await;
    let m = run_caso(&sim, "egi.eu:VO", Some(UNTAGGED)).await;
    assert_eq!(m.cloud.len(), 1, "cASO log:\n{}", m.log);
    let recs = cloud_records(&m.cloud[0]);
    let r = &recs["b0000001-0000-4000-8000-000000000001"];
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(r["MachineName"], "vm-untagged");
    assert_eq!(r["FQAN"], "vo.untagged.eu");
    assert_eq!(r["GlobalUserName"], "dave@example.org");
    assert_eq!(r["Status"], "started");
    // created 2023-05-19T00:00Z → extract_to 2023-05-25T00:00Z
    assert_eq!((r["StartTime"].as_str(), r["WallDuration"].as_str()), ("1684454400", "518400"));
    sim.stop().await;
}
