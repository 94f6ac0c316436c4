//! The extractor against the in-process sim's `tiny` scenario, window
//! 2023-05-21 → 2023-05-25: the records must equal what real cASO 5.2.2
//! produced (crates/sim/scenarios/tiny.toml, testdata/caso-5.2.2,
//! crates/fedsite/tests/it/caso_against_sim.rs) field by field, except the
//! deviations of COMPAT-NOTES.md, which are asserted as such.

use std::collections::BTreeMap;

use accounting::{ExtractConfig, ExtractError, Extraction};
use apel::{ApelText, CloudRecord, Record, SiteName, VmStatus, Window};
use chrono::{DateTime, Utc};

const PROJ1: &str = "0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b";
const EGI_PROJ: &str = "e91c0a2f4b7c4d1e8f9a0b1c2d3e4f51";
const NOVO: &str = "5d1e2f3a4b5c6d7e8f90a1b2c3d4e5f6";
const UNTAGGED: &str = "9a8b7c6d5e4f30211203a4b5c6d7e8f9";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn window() -> Window {
    Window::new(t("2023-05-21T00:00:00Z"), t("2023-05-25T00:00:00Z")).unwrap()
}

fn cfg() -> ExtractConfig {
    ExtractConfig::new(SiteName::new("TEST-SITE").unwrap(), ApelText::new("TEST-SITE-cloud").unwrap())
}

async fn start(scenario: &str) -> sim::SimHandle {
    let spec = sim::scenario::builtin(scenario).unwrap();
    sim::start(sim::SimConfig::new(spec.generate())).await.unwrap()
}

async fn session(sim: &sim::SimHandle, cloud: &str) -> openstack::Session {
    let yaml = sim.clouds_yaml();
    let c = openstack::CloudConfig::from_clouds_yaml(&yaml, None, cloud, "clouds.yaml").unwrap();
    openstack::Session::connect(&c).await.unwrap()
}

/// The `accounting` user scoped to one project (not system): no
/// all-projects listing, Keystone tag listing refused.
async fn project_reader_session(sim: &sim::SimHandle, project: &str) -> openstack::Session {
    let yaml = format!(
        "clouds:\n  acc:\n    auth:\n      auth_url: {}\n      username: {}\n      password: {}\n      user_domain_name: Default\n      project_id: {project}\n    region_name: {}\n    interface: public\n    identity_api_version: 3\n",
        sim.auth_url(),
        sim::scenario::ACCOUNTING_USER,
        sim::scenario::PASSWORD,
        sim.region()
    );
    let c = openstack::CloudConfig::from_clouds_yaml(&yaml, None, "acc", "clouds.yaml").unwrap();
    openstack::Session::connect(&c).await.unwrap()
}

/// A cloud record as cASO 5.2.2 renders it: `Key → value` (cASO-compat:
/// EndTime 0 when none, 0 durations as 1, floats Python-style).
fn caso_fields(r: &CloudRecord) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    };
    let s = |v: &Option<ApelText>| v.as_ref().map(|x| x.to_string());
    let dur = |v: Option<u64>| v.map(|d| d.max(1).to_string());
    put("VMUUID", Some(r.vm_uuid.to_string()));
    put("SiteName", Some(r.site_name.to_string()));
    put("CloudComputeService", s(&r.cloud_compute_service));
    put("CloudType", s(&r.cloud_type));
    put("MachineName", s(&r.machine_name));
    put("LocalUserId", s(&r.local_user_id));
    put("LocalGroupId", s(&r.local_group_id));
    put("GlobalUserName", s(&r.global_user_name));
    put("FQAN", r.fqan.as_ref().map(|f| f.to_string()));
    put("Status", r.status.map(|x| x.as_str().to_string()));
    put("StartTime", r.start_time.map(|x| x.timestamp().to_string()));
    put("EndTime", Some(r.end_time.map_or(0, |x| x.timestamp()).to_string()));
    put("SuspendDuration", r.suspend_duration.map(|d| d.to_string()));
    put("WallDuration", dur(r.wall_duration));
    put("CpuDuration", dur(r.cpu_duration));
    put("CpuCount", r.cpu_count.map(|x| x.to_string()));
    put("PublicIPCount", r.public_ip_count.map(|x| x.to_string()));
    put("Memory", r.memory.map(|x| x.to_string()));
    put("Disk", r.disk.map(|x| x.to_string()));
    put("ImageId", s(&r.image_id));
    put("BenchmarkType", s(&r.benchmark_type));
    put("Benchmark", r.benchmark.map(|b| if b.fract() == 0.0 { format!("{b:.1}") } else { b.to_string() }));
    m
}

/// The vector cloud message's records by VMUUID.
fn vector_cloud() -> BTreeMap<String, BTreeMap<String, String>> {
    let msg =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/caso-5.2.2/cloud-message.txt"))
            .or_else(|_| {
                std::fs::read_to_string(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../testdata/caso-5.2.2/cloud-message.txt"
                ))
            })
            .expect("cASO cloud vector");
    msg.strip_prefix("APEL-cloud-message: v0.4\n")
        .unwrap()
        .trim_end()
        .split("\n%%\n")
        .map(|rec| {
            let f: BTreeMap<String, String> = rec
                .lines()
                .map(|l| {
                    let (k, v) = l.split_once(": ").unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect();
            (f["VMUUID"].clone(), f)
        })
        .collect()
}

fn project<'a>(x: &'a Extraction, id: &str) -> &'a accounting::ProjectOutcome {
    x.projects.iter().find(|p| p.project_id == id).unwrap_or_else(|| panic!("no outcome for {id}: {x:#?}"))
}

fn records<'a>(x: &'a Extraction, id: &str) -> &'a [Record] {
    match &project(x, id).result {
        Ok(r) => r,
        Err(e) => panic!("project {id} failed: {e}"),
    }
}

fn clouds(recs: &[Record]) -> BTreeMap<String, &CloudRecord> {
    recs.iter()
        .filter_map(|r| match r {
            Record::Cloud(c) => Some((c.vm_uuid.to_string(), c)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proj1_cloud_records_equal_the_caso_vector_except_the_embedded_flavor_of_vm_quiet() {
    let sim = start("tiny").await;
    let s = session(&sim, "sim-accounting").await;
    let x = accounting::Extract::new(&s, &cfg(), |_| window()).run().await;
    let got = clouds(records(&x, PROJ1));
    let want = vector_cloud();
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (id, w) in &want {
        let mut w = w.clone();
        if id.starts_with("33333333") {
            // Deviation (COMPAT-NOTES "flavor"): vm-quiet runs on a snapshot
            // of an old flavor ("old", no extra specs); cASO took the
            // benchmark of the current flavor with the same id.
            w.remove("Benchmark");
            w.remove("BenchmarkType");
        }
        assert_eq!(caso_fields(got[id]), w, "record {id}");
    }
    // Record order as cASO: changes-since servers by creation, then usage-only.
    let order: Vec<&str> = records(&x, PROJ1)
        .iter()
        .filter_map(|r| if let Record::Cloud(c) = r { Some(&c.vm_uuid.as_str()[..8]) } else { None })
        .collect();
    assert_eq!(order, ["22222222", "11111111", "33333333"]);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proj1_accelerator_ip_and_storage_records() {
    let sim = start("tiny").await;
    let s = session(&sim, "sim-accounting").await;
    let x = accounting::Extract::new(&s, &cfg(), |_| window()).run().await;
    let recs = records(&x, PROJ1);

    let acc: Vec<_> = recs.iter().filter_map(|r| if let Record::Accelerator(a) = r { Some(a) } else { None }).collect();
    // cASO also reports vm-quiet (2073600) from the current flavor; its own
    // flavor snapshot has no accelerator (COMPAT-NOTES "flavor").
    let got: Vec<(String, u64, u32, i32, String, String, u32)> = acc
        .iter()
        .map(|a| {
            (
                a.associated_record.to_string(),
                a.available_duration,
                a.measurement_month,
                a.measurement_year,
                a.model.to_string(),
                a.accelerator_type.to_string(),
                a.count,
            )
        })
        .collect();
    let row = |id: &str, d| (id.to_string(), d, 5, 2023, "NVIDIA A100".to_string(), "GPU".to_string(), 1);
    assert_eq!(
        got,
        vec![row("22222222-2222-4222-8222-222222222222", 280800), row("11111111-1111-4111-8111-111111111111", 396000)]
    );
    for a in &acc {
        assert_eq!(a.active_duration, Some(a.available_duration));
        assert_eq!(a.fqan.as_str(), "vo.example.org");
        assert_eq!(a.global_user_name.as_ref().unwrap().as_str(), "alice@example.org");
    }

    // IP: IPv4 (2) AND IPv6 (1) records; cASO keeps only the IPv6 one.
    let ips: Vec<(u8, u32, String, String)> = recs
        .iter()
        .filter_map(|r| if let Record::Ip(i) = r { Some(i) } else { None })
        .map(|i| (i.ip_version, i.ip_count, i.local_group.to_string(), i.fqan.to_string()))
        .collect();
    assert_eq!(
        ips,
        vec![
            (4, 2, PROJ1.to_string(), "vo.example.org".to_string()),
            (6, 1, PROJ1.to_string(), "vo.example.org".to_string())
        ]
    );
    for r in recs {
        if let Record::Ip(i) = r {
            assert_eq!(i.measurement_time, window().to());
            assert!(i.local_user.is_none() && i.global_user_name.is_none());
            assert_eq!(i.uuid.as_ref().unwrap().len(), 36);
        }
    }

    // Storage: the vector's values; EndTime / createTime = window end (cASO: now).
    let st: Vec<_> = recs.iter().filter_map(|r| if let Record::Storage(s) = r { Some(s) } else { None }).collect();
    let got: Vec<(String, u64, DateTime<Utc>, DateTime<Utc>, Option<String>, Option<String>, Option<String>)> = st
        .iter()
        .map(|s| {
            (
                s.record_id.to_string(),
                s.resource_capacity_used,
                s.start_time,
                s.end_time,
                s.local_user.as_ref().map(|x| x.to_string()),
                s.user_identity.as_ref().map(|x| x.to_string()),
                s.group.as_ref().map(|x| x.to_string()),
            )
        })
        .collect();
    let to = window().to();
    assert_eq!(
        got,
        vec![
            (
                "44444444-4444-4444-8444-444444444444".into(),
                53687091200,
                t("2023-05-21T00:00:00Z"),
                to,
                Some("u-alice".into()),
                Some("alice@example.org".into()),
                Some("vo.example.org".into())
            ),
            (
                "55555555-5555-4555-8555-555555555555".into(),
                10737418240,
                t("2023-05-23T00:00:00Z"),
                to,
                Some("u-bob".into()),
                Some("bob@example.org".into()),
                Some("vo.example.org".into())
            ),
        ]
    );
    for s in &st {
        assert_eq!(s.storage_system.as_str(), "TEST-SITE-cloud");
        assert_eq!(s.site.as_ref().unwrap().as_str(), "TEST-SITE");
        assert_eq!(s.local_group.as_ref().unwrap().as_str(), PROJ1);
        assert_eq!(s.create_time, to);
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egi_proj_edge_cases_match_caso_except_suspended_time() {
    let sim = start("tiny").await;
    let s = session(&sim, "sim-accounting").await;
    let x = accounting::Extract::new(&s, &cfg(), |_| window()).run().await;
    let recs = records(&x, EGI_PROJ);
    let got = clouds(recs);
    // (uuid, MachineName, Status, StartTime, EndTime, Wall, CpuCount, SuspendDuration)
    // cASO's values (tiny.toml), except vm-paused/vm-suspended: their paused
    // and suspended time is SuspendDuration, not wall (COMPAT-NOTES "suspend").
    let want: &[(&str, &str, &str, i64, i64, u64, u32, Option<u64>)] = &[
        (
            "e0000001-0000-4000-8000-000000000001",
            "vm-paused",
            "paused",
            1684108800,
            0,
            864000 - 230400,
            2,
            Some(230400),
        ),
        (
            "e0000002-0000-4000-8000-000000000002",
            "vm-suspended",
            "suspended",
            1684195200,
            0,
            777600 - 172800,
            2,
            Some(172800),
        ),
        ("e0000003-0000-4000-8000-000000000003", "vm-shelved", "unknown", 1683676800, 0, 1296000, 2, None),
        ("e0000004-0000-4000-8000-000000000004", "vm-error", "error", 1684281600, 0, 691200, 2, None),
        ("e0000005-0000-4000-8000-000000000005", "vm-never", "error", 1684724400, 1684724400, 0, 2, None),
        ("e0000006-0000-4000-8000-000000000006", "vm-resized", "started", 1683849600, 0, 1123200, 4, None),
        ("e0000007-0000-4000-8000-000000000007", "vm-bfv", "started", 1684022400, 0, 950400, 1, None),
        ("e0000008-0000-4000-8000-000000000008", "vm-and", "started", 1684659600, 0, 313200, 4, None),
        ("e0000011-0000-4000-8000-000000000011", "vm-ended-after", "started", 1684368000, 0, 604800, 2, None),
        ("e0000012-0000-4000-8000-000000000012", "vm-stopped", "started", 1684411200, 0, 561600, 2, None),
    ];
    assert_eq!(
        got.keys().map(String::as_str).collect::<Vec<_>>(),
        want.iter().map(|w| w.0).collect::<Vec<_>>(),
        "not vm-gone, vm-future"
    );
    for (id, name, status, start, end, wall, cpus, suspend) in want {
        let r = got[*id];
        let f = caso_fields(r);
        assert_eq!(
            (f["MachineName"].as_str(), f["Status"].as_str(), f["StartTime"].as_str(), f["EndTime"].as_str()),
            (*name, *status, start.to_string().as_str(), end.to_string().as_str()),
            "{name}"
        );
        assert_eq!(r.wall_duration, Some(*wall), "{name}");
        assert_eq!(r.cpu_count, Some(*cpus), "{name}");
        assert_eq!(r.cpu_duration, Some(wall * *cpus as u64), "{name}");
        assert_eq!(r.suspend_duration, *suspend, "{name}");
        assert_eq!(f["FQAN"], "vo.access.egi.eu");
        assert_eq!(f["LocalGroupId"], EGI_PROJ);
    }
    let f = |id: &str| caso_fields(got[id]);
    let paused = f("e0000001-0000-4000-8000-000000000001");
    assert_eq!(paused["PublicIPCount"], "1");
    assert_eq!(paused["GlobalUserName"], "carol@example.org");
    assert_eq!(paused["ImageId"], "https://appdb.example/img/1");
    assert_eq!((paused["BenchmarkType"].as_str(), paused["Benchmark"].as_str()), ("HEPscore23", "12.5"));
    assert_eq!(f("e0000005-0000-4000-8000-000000000005")["WallDuration"], "1", "0 renders as 1 in cASO style");
    assert_eq!(f("e0000006-0000-4000-8000-000000000006")["Benchmark"], "99.0", "HEPscore23 \"99\" unscaled");
    let bfv = f("e0000007-0000-4000-8000-000000000007");
    assert!(!bfv.contains_key("ImageId") && !bfv.contains_key("Benchmark"), "{bfv:?}");
    let nandu = f("e0000008-0000-4000-8000-000000000008");
    assert_eq!(nandu["GlobalUserName"], "zo@example.org");
    assert_eq!(nandu["ImageId"], "8c3d9f6b-4a2e-4d7c-8b1f-6e5a4d3c2b1a");

    // IP: both records (cASO: only the v6 one).
    let ips: Vec<(u8, u32)> = recs
        .iter()
        .filter_map(|r| if let Record::Ip(i) = r { Some((i.ip_version, i.ip_count)) } else { None })
        .collect();
    assert_eq!(ips, vec![(4, 1), (6, 1)]);
    // Storage: only bfv-root (tmp-vol is gone at run time).
    let st: Vec<_> = recs.iter().filter_map(|r| if let Record::Storage(s) = r { Some(s) } else { None }).collect();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].record_id.as_str(), "e1000001-0000-4000-8000-000000000001");
    assert_eq!(st[0].resource_capacity_used, 21474836480);
    assert_eq!(st[0].start_time, t("2023-05-21T00:00:00Z"));
    assert_eq!(st[0].user_identity.as_ref().unwrap().as_str(), "carol@example.org");
    // Accelerators: f1 servers only; vm-paused 05-15 → 05-25.
    let acc: BTreeMap<String, u64> = recs
        .iter()
        .filter_map(|r| {
            if let Record::Accelerator(a) = r {
                Some((a.associated_record.to_string(), a.available_duration))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(acc["e0000001-0000-4000-8000-000000000001"], 864000);
    assert!(acc.keys().all(|k| !["e0000006", "e0000007", "e0000008"].iter().any(|p| k.starts_with(p))), "{acc:?}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_without_vo_fails_alone_and_the_others_go_on() {
    let sim = start("tiny").await;
    let s = session(&sim, "sim-accounting").await;
    let x = accounting::Extract::new(&s, &cfg(), |_| window()).run().await;
    assert_eq!(
        x.projects.iter().map(|p| p.project_id.as_str()).collect::<Vec<_>>(),
        {
            let mut v = vec![PROJ1, EGI_PROJ, NOVO];
            v.sort();
            v
        },
        "tagged projects, sorted; untagged not selected"
    );
    let novo = project(&x, NOVO);
    let err = novo.result.as_ref().unwrap_err();
    assert!(matches!(err.errors[0].1, ExtractError::NoVo { .. }), "{err}");
    assert!(err.to_string().contains(NOVO), "{err}");
    assert!(project(&x, PROJ1).result.is_ok() && project(&x, EGI_PROJ).result.is_ok());
    assert!(!x.is_complete());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_projects_are_added_and_the_tag_can_be_turned_off() {
    let sim = start("tiny").await;
    let s = session(&sim, "sim-accounting").await;
    let mut c = cfg();
    c.project_tag = None;
    c.projects = vec![UNTAGGED.into()];
    let x = accounting::Extract::new(&s, &c, |_| window()).run().await;
    assert_eq!(x.projects.len(), 1);
    let r = clouds(records(&x, UNTAGGED));
    let f = caso_fields(r["b0000001-0000-4000-8000-000000000001"]);
    assert_eq!(f["FQAN"], "vo.untagged.eu", "egi.eu:VO property");
    assert_eq!(f["GlobalUserName"], "dave@example.org");
    assert_eq!((f["StartTime"].as_str(), f["WallDuration"].as_str()), ("1684454400", "518400"));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_scoped_reader_falls_back_to_one_token_per_project_and_names_missing_roles() {
    let sim = start("tiny").await;
    let admin = session(&sim, "sim").await;
    let admin_project = admin.project_id().await.unwrap().unwrap();
    let s = project_reader_session(&sim, PROJ1).await;
    let mut c = cfg();
    c.projects = vec![PROJ1.into(), EGI_PROJ.into(), admin_project.clone()];
    s.reset_counters();
    let x = accounting::Extract::new(&s, &c, |_| window()).run().await;
    // Keystone refused the tag listing: only the configured projects.
    assert_eq!(x.projects.len(), 3);
    // Same cloud records as with the system reader.
    let got = clouds(records(&x, PROJ1));
    assert_eq!(got.len(), 3);
    assert_eq!(caso_fields(got["11111111-1111-4111-8111-111111111111"])["WallDuration"], "396000");
    assert_eq!(clouds(records(&x, EGI_PROJ)).len(), 10);
    // The admin project: no role there → an error naming the role.
    let err = project(&x, &admin_project).result.as_ref().unwrap_err().to_string();
    assert!(err.contains("reader role on project") && err.contains(&admin_project), "{err}");
    // One token per project scope (+ none for the refused ones beyond one try).
    let tokens = s.counters().iter().filter(|(k, _)| k.route == "/auth/tokens").map(|(_, v)| v.calls).sum::<u64>();
    assert!(tokens <= 4, "tokens: {tokens}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_session_gives_the_same_records_as_the_system_reader() {
    let sim = start("tiny").await;
    let a = session(&sim, "sim").await;
    let r = session(&sim, "sim-accounting").await;
    let xa = accounting::Extract::new(&a, &cfg(), |_| window()).run().await;
    let xr = accounting::Extract::new(&r, &cfg(), |_| window()).run().await;
    for p in [PROJ1, EGI_PROJ] {
        assert_eq!(records(&xa, p), records(&xr, p), "{p}");
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_volumes_known_to_the_caller_get_a_closing_record() {
    let sim = start("tiny").await;
    let s = session(&sim, "sim-accounting").await;
    let w0 = Window::new(t("2023-05-19T00:00:00Z"), t("2023-05-21T00:00:00Z")).unwrap();
    sim.set_now(t("2023-05-21T00:00:00Z"));
    let before = accounting::Extract::new(&s, &cfg(), |_| w0).run().await;
    let tmp: apel::StorageRecord = records(&before, EGI_PROJ)
        .iter()
        .find_map(|r| match r {
            Record::Storage(s) if s.record_id.as_str().starts_with("e1000002") => Some(s.clone()),
            _ => None,
        })
        .expect("tmp-vol exists before 05-23");
    sim.set_now(t("2023-06-01T00:00:00Z"));
    let x = accounting::Extract::new(&s, &cfg(), |_| window())
        .known_volumes(|p, _| Ok(if p == EGI_PROJ { vec![tmp.clone()] } else { vec![] }))
        .run()
        .await;
    let eg = project(&x, EGI_PROJ);
    assert_eq!(eg.closed_volumes, vec!["e1000002-0000-4000-8000-000000000002".to_string()]);
    let closing = records(&x, EGI_PROJ)
        .iter()
        .find_map(|r| match r {
            Record::Storage(s) if s.record_id.as_str().starts_with("e1000002") => Some(s),
            _ => None,
        })
        .unwrap();
    assert_eq!(closing.end_time, tmp.end_time, "deletion time unknown: no usage claimed past the last record");
    assert_eq!(closing.resource_capacity_used, 5 << 30);
    sim.stop().await;
}

/// Through the ledger (`pipeline::run`): a volume Cinder no longer lists gets one closing
/// record, and a run that changes nothing tells every record unchanged by its fingerprint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_ledger_a_gone_volume_is_closed_once_and_unchanged_records_are_not_spooled() {
    use accounting::pipeline::{self, SpoolConfig, Windows};
    let sim = start("tiny").await;
    let s = session(&sim, "sim-accounting").await;
    let dir = tempfile::tempdir().unwrap();
    let spool = SpoolConfig::new(dir.path().join("spool"));
    let kind = |r: &pipeline::RunReport, what: fn(&pipeline::ProjectReport) -> &BTreeMap<&'static str, usize>, k| {
        r.projects
            .iter()
            .filter(|p| p.project_id == EGI_PROJ)
            .map(|p| what(p).get(k).copied().unwrap_or(0))
            .sum::<usize>()
    };
    let tmp = "e1000002-0000-4000-8000-000000000002";
    let w0 = Window::new(t("2023-05-19T00:00:00Z"), t("2023-05-21T00:00:00Z")).unwrap();
    sim.set_now(t("2023-05-21T00:00:00Z"));
    let l = ledger::Ledger::open(dir.path().join("l.sqlite")).unwrap();
    let (first, l) = pipeline::run(&s, &cfg(), l, Windows::Fixed(w0), &spool).await.unwrap();
    // (novo has no VO mapping: an error of its own, the others are extracted.)
    assert!(first.projects.iter().any(|p| p.project_id == EGI_PROJ && p.error.is_none()), "{first:?}");
    assert!(l.snapshot("storage", tmp).unwrap().is_some(), "tmp-vol recorded while it exists");
    // The same window again: every record unchanged, found by its fingerprint.
    let (again, l) = pipeline::run(&s, &cfg(), l, Windows::Fixed(w0), &spool).await.unwrap();
    let extracted: usize = again.projects.iter().flat_map(|p| p.extracted.values()).sum();
    let unchanged: usize = again.projects.iter().map(|p| p.unchanged).sum();
    assert!(extracted > 0 && unchanged == extracted, "{again:?}");
    assert!(again.projects.iter().all(|p| p.spooled.is_empty()), "{again:?}");
    for k in ["cloud", "storage"] {
        assert!(!l.fingerprints(k, EGI_PROJ).unwrap().is_empty(), "{k} snapshots carry their fingerprints");
    }
    // tmp-vol is deleted on 05-23: the next run closes it, the one after does not again.
    sim.set_now(t("2023-06-01T00:00:00Z"));
    let (closing, l) = pipeline::run(&s, &cfg(), l, Windows::Fixed(window()), &spool).await.unwrap();
    let stored = l.snapshot("storage", tmp).unwrap().unwrap();
    assert_eq!(stored.snapshot.status.as_deref(), Some("closed"));
    let (after, l) = pipeline::run(&s, &cfg(), l, Windows::Fixed(window()), &spool).await.unwrap();
    let extracted = |r| kind(r, |p| &p.extracted, "storage");
    assert_eq!(extracted(&closing), extracted(&after) + 1, "one closing record, made once");
    assert_eq!(kind(&after, |p| &p.spooled, "storage"), 0);
    assert_eq!(l.snapshot("storage", tmp).unwrap().unwrap().snapshot.status.as_deref(), Some("closed"));
    sim.stop().await;
}

/// A stored storage body that cannot be read fails the project (no closing record dropped
/// quietly): its error names the volume, and its checkpoint stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_stored_volume_fails_the_project_instead_of_losing_its_closing_record() {
    use accounting::pipeline::{self, SpoolConfig, Windows};
    let sim = start("tiny").await;
    let s = session(&sim, "sim-accounting").await;
    let dir = tempfile::tempdir().unwrap();
    let spool = SpoolConfig::new(dir.path().join("spool"));
    let tmp = "e1000002-0000-4000-8000-000000000002";
    let w0 = Window::new(t("2023-05-19T00:00:00Z"), t("2023-05-21T00:00:00Z")).unwrap();
    sim.set_now(t("2023-05-21T00:00:00Z"));
    let l = ledger::Ledger::open(dir.path().join("l.sqlite")).unwrap();
    let (_, mut l) = pipeline::run(&s, &cfg(), l, Windows::Fixed(w0), &spool).await.unwrap();
    let mut stored = l.snapshot("storage", tmp).unwrap().unwrap().snapshot;
    stored.body = "not a StAR message".into();
    stored.measured_at = t("2023-05-22T00:00:00Z");
    assert_eq!(l.upsert_snapshot(&stored, None).unwrap(), ledger::Upsert::Replaced);
    sim.set_now(t("2023-06-01T00:00:00Z"));
    let (r, l) = pipeline::run(&s, &cfg(), l, Windows::Fixed(window()), &spool).await.unwrap();
    let eg = r.projects.iter().find(|p| p.project_id == EGI_PROJ).unwrap();
    let err = eg.error.as_deref().unwrap_or_default();
    assert!(err.contains("cannot be read") && err.contains(tmp), "{err}");
    assert!(!r.is_complete());
    assert_eq!(l.checkpoint(EGI_PROJ, "accounting").unwrap(), Some(w0.to()), "checkpoint kept");
    sim.stop().await;
}

#[test]
fn vm_status_map_is_casos() {
    assert_eq!(accounting::vm_status_from_nova("SHELVED_OFFLOADED"), VmStatus::Unknown);
    assert_eq!(accounting::vm_status_from_nova("SHUTOFF"), VmStatus::Completed);
    assert_eq!(accounting::vm_status_from_nova("Password"), VmStatus::Started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proj1_cloud_message_renders_as_the_caso_vector_bytes_but_vm_quiets_benchmark() {
    let sim = start("tiny").await;
    let s = session(&sim, "sim-accounting").await;
    let x = accounting::Extract::new(&s, &cfg(), |_| window()).run().await;
    let cloud: Vec<Record> = records(&x, PROJ1).iter().filter(|r| matches!(r, Record::Cloud(_))).cloned().collect();
    let got = apel::render_message(apel::RecordKind::Cloud, &cloud, apel::Style::CasoCompat).unwrap();
    let want =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/caso-5.2.2/cloud-message.txt"))
            .unwrap();
    // vm-quiet is the last record: drop its two benchmark lines (COMPAT-NOTES 13).
    let (head, quiet) = want.rsplit_once("%%\n").unwrap();
    let quiet: String = quiet.lines().filter(|l| !l.starts_with("Benchmark")).map(|l| format!("{l}\n")).collect();
    let want = format!("{head}%%\n{quiet}");
    assert_eq!(String::from_utf8(got).unwrap().trim_end(), want.trim_end());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_run_reports_each_project_to_the_progress_hook_as_it_is_committed() {
    use accounting::pipeline::{SpoolConfig, Windows};
    let sim = start("tiny").await;
    let s = session(&sim, "sim-accounting").await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger::Ledger::open(dir.path().join("l.sqlite")).unwrap();
    let spool = SpoolConfig::new(dir.path().join("spool"));
    let seen = std::sync::Mutex::new(Vec::new());
    let hook =
        |p: &accounting::pipeline::ProjectReport| seen.lock().unwrap().push((p.project_id.clone(), p.error.is_some()));
    let (report, _) =
        accounting::pipeline::run_with_progress(&s, &cfg(), ledger, Windows::Fixed(window()), &spool, &hook)
            .await
            .unwrap();
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    let mut want: Vec<(String, bool)> =
        report.projects.iter().map(|p| (p.project_id.clone(), p.error.is_some())).collect();
    want.sort();
    // Once per project, failed ones (novo has no VO) included.
    assert_eq!(seen, want);
    assert!(
        seen.iter().any(|(id, _)| id == PROJ1) && seen.iter().any(|(id, failed)| id == NOVO && *failed),
        "{seen:?}"
    );
}

/// A dry run never prints part of a project: a project whose records cannot be rendered
/// (here every record is over the message size limit) has none of its messages printed and
/// is named as unrendered; the others print in full.
#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_names_a_project_it_cannot_render_and_prints_none_of_it() {
    use accounting::pipeline::SpoolConfig;
    let sim = start("tiny").await;
    let s = session(&sim, "sim-accounting").await;
    let spool = |max_signed_bytes| {
        let mut s = SpoolConfig::new("unused");
        s.max_signed_bytes = max_signed_bytes;
        s
    };
    let ok = accounting::pipeline::dry_run(&s, &cfg(), window(), &spool(apel::DEFAULT_MAX_SIGNED_BYTES)).await;
    assert!(ok.unrendered.is_empty(), "{:?}", ok.unrendered);
    assert!(ok.messages.iter().any(|(p, _, _)| p == PROJ1), "proj1 has messages");
    let tight = accounting::pipeline::dry_run(&s, &cfg(), window(), &spool(10)).await;
    assert!(tight.messages.is_empty(), "no message fits in 10 bytes, none printed");
    let named: Vec<&str> = tight.unrendered.iter().map(|(p, _)| p.as_str()).collect();
    assert!(named.contains(&PROJ1), "{named:?}");
    assert!(
        tight.unrendered.iter().all(|(_, e)| matches!(e, apel::Error::RecordTooLarge { .. })),
        "{:?}",
        tight.unrendered
    );
    sim.stop().await;
}

/// Every ledger snapshot carries the configured site, also when the project's run has no
/// cloud record to take it from (here: only the cinder and neutron extractors).
#[tokio::test(flavor = "multi_thread")]
async fn snapshots_carry_the_site_whatever_records_a_project_has() {
    use accounting::pipeline::{SpoolConfig, Windows};
    let sim = start("tiny").await;
    let s = session(&sim, "sim-accounting").await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger::Ledger::open(dir.path().join("l.sqlite")).unwrap();
    let spool = SpoolConfig::new(dir.path().join("spool"));
    let mut c = cfg();
    c.extractors = vec![accounting::Extractor::Cinder, accounting::Extractor::Neutron];
    let (report, ledger) = accounting::pipeline::run(&s, &c, ledger, Windows::Fixed(window()), &spool).await.unwrap();
    assert!(report.projects.iter().any(|p| p.extracted.contains_key("storage")), "{:?}", report.projects);
    let snaps = ledger.latest_snapshots(&ledger::SnapshotFilter::default()).unwrap();
    assert!(!snaps.is_empty());
    assert!(snaps.iter().all(|s| s.snapshot.kind != "cloud"), "no cloud records in this run");
    for s in &snaps {
        assert_eq!(s.snapshot.site, "TEST-SITE", "{} {}", s.snapshot.kind, s.snapshot.key);
    }
    sim.stop().await;
}
