//! The docs/compat.md rows that had no test: 5 (a usage-only server that ended inside the
//! window gets its own wall time), 14 (a benchmark value that is not a number is
//! left out, one warning per flavor), 15 (an accelerator `Number` that is not an integer: no
//! accelerator record for that flavor, one warning), 16 (those warnings once per flavor and
//! run, not per server) and 21 (a window that ends in the future is refused).

use accounting::ExtractConfig;
use accounting::pipeline::{RunReport, SpoolConfig, Windows};
use apel::{ApelText, Record, RecordKind, SiteName, Window};

fn window() -> Window {
    Window::new("2023-05-21T00:00:00Z".parse().unwrap(), "2023-05-25T00:00:00Z".parse().unwrap()).unwrap()
}

/// `tiny` with flavor gpu.small's current extra specs as `edit` leaves them: one pipeline
/// run (fresh ledger and spool); its report and every record spooled.
async fn run(
    edit: impl FnOnce(&mut std::collections::BTreeMap<String, String>),
    window: Window,
) -> (RunReport, Vec<Record>) {
    let mut sc = sim::scenario::builtin("tiny").unwrap().generate();
    let f1 = sc.site.flavors.iter_mut().find(|f| f.name == "gpu.small").unwrap();
    edit(&mut f1.extra_specs);
    let sim = sim::start(sim::SimConfig::new(sc)).await.unwrap();
    let c =
        openstack::CloudConfig::from_clouds_yaml(&sim.clouds_yaml(), None, "sim-accounting", "clouds.yaml").unwrap();
    let session = openstack::Session::connect(&c).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger::Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let spool = SpoolConfig::new(dir.path().join("spool"));
    let cfg = ExtractConfig::new(SiteName::new("TEST-SITE").unwrap(), ApelText::new("TEST-SITE-cloud").unwrap());
    let (report, _) = accounting::pipeline::run(&session, &cfg, ledger, Windows::Fixed(window), &spool).await.unwrap();
    let mut records = Vec::new();
    for p in &report.projects {
        for e in &p.messages {
            let (_, rs) = apel::parse_message(&std::fs::read(spool.spool().join(e)).unwrap()).unwrap();
            records.extend(rs);
        }
    }
    sim.stop().await;
    (report, records)
}

/// The servers on gpu.small (`f1`) that have cloud records.
fn f1_servers(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Cloud(c) if c.benchmark == Some(12.5) => Some(c.vm_uuid.to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_benchmark_or_accelerator_number_leaves_that_out_with_one_warning_per_flavor() {
    let (clean, clean_records) = run(|_| {}, window()).await;
    let f1 = f1_servers(&clean_records);
    assert!(f1.len() >= 2, "several servers on gpu.small, so 'once per flavor' means something: {f1:?}");
    let accelerated = |rs: &[Record]| -> Vec<String> {
        rs.iter()
            .filter_map(|r| match r {
                Record::Accelerator(a) if f1.contains(&a.associated_record.to_string()) => {
                    Some(a.associated_record.to_string())
                }
                _ => None,
            })
            .collect()
    };
    assert!(!accelerated(&clean_records).is_empty());
    let (report, records) = run(
        |s| {
            s.insert("accounting:benchmark_value".into(), "fast".into());
            s.insert("Accelerator:Number".into(), "two".into());
        },
        window(),
    )
    .await;
    // The project goes through (a site's flavor typo is not a reason to send nothing).
    assert_eq!(
        report.projects.iter().filter(|p| p.error.is_some()).count(),
        clean.projects.iter().filter(|p| p.error.is_some()).count(),
        "{:?}",
        report.projects
    );
    // Row 14: those servers' cloud records carry no benchmark; everything else of them is kept.
    for id in &f1 {
        let c = records
            .iter()
            .find_map(|r| match r {
                Record::Cloud(c) if c.vm_uuid.to_string() == *id => Some(c),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{id} lost its cloud record"));
        assert_eq!((c.benchmark, c.benchmark_type.as_ref()), (None, None), "{id}");
        assert!(c.wall_duration.is_some() && c.cpu_count == Some(2), "{c:?}");
    }
    // Row 15: no accelerator record for gpu.small's servers; others' kinds untouched.
    assert!(accelerated(&records).is_empty(), "{:?}", accelerated(&records));
    let kinds = |rs: &[Record], k: RecordKind| rs.iter().filter(|r| r.kind() == k).count();
    for k in [RecordKind::Storage, RecordKind::Ip, RecordKind::Cloud] {
        assert_eq!(kinds(&records, k), kinds(&clean_records, k), "{k:?}");
    }
    // Row 16: one warning per flavor and problem, not one per server.
    let about =
        |what: &str| report.warnings.iter().filter(|(_, w)| w.contains("gpu.small") && w.contains(what)).count();
    assert_eq!(about("benchmark"), 1, "{:?}", report.warnings);
    assert_eq!(about("accelerator number"), 1, "{:?}", report.warnings);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_window_that_ends_in_the_future_is_refused() {
    let now = chrono::Utc::now();
    let future = Window::new(now - chrono::TimeDelta::days(1), now + chrono::TimeDelta::hours(1)).unwrap();
    let (report, records) = run(|_| {}, future).await;
    assert!(records.is_empty(), "nothing spooled");
    assert!(!report.projects.is_empty());
    for p in &report.projects {
        let e = p.error.as_deref().unwrap_or_else(|| panic!("{} ran: {p:?}", p.project_id));
        assert!(e.contains("after now") || e.contains("no VO mapping"), "{e}");
    }
    assert!(report.projects.iter().any(|p| p.error.as_deref().is_some_and(|e| e.contains("after now"))));
    // Within the margin for clock skew it runs.
    let edge = Window::new(now - chrono::TimeDelta::days(1), now + chrono::TimeDelta::minutes(1)).unwrap();
    let (report, _) = run(|_| {}, edge).await;
    assert!(report.projects.iter().all(|p| p.error.as_deref().is_none_or(|e| !e.contains("after now"))));
}

/// Row 5: a server only the usage report names (not in the changes-since listing) whose usage
/// entry ended inside the window: WallDuration = ended_at − created, CpuDuration = that × the
/// entry's vCPUs, EndTime = ended_at (cASO: a NameError loses the project, or a stale `wall`).
/// Built directly (`nova::build`): no simulated event ends a server without moving `updated`.
#[test]
fn a_usage_only_server_that_ended_inside_the_window_has_its_own_wall_time() {
    let cfg = ExtractConfig::new(SiteName::new("TEST-SITE").unwrap(), ApelText::new("TEST-SITE-cloud").unwrap());
    let w = window(); // 05-21 → 05-25
    let ctx = accounting::nova::RecordCtx {
        cfg: &cfg,
        project_id: "p1",
        fqan: apel::Fqan::new("vo.example.org").unwrap(),
        window: w,
    };
    let id = "5a5a5a5a-0000-4000-8000-000000000005";
    let server: openstack::nova::Server = serde_json::from_value(serde_json::json!({
        "id": id, "name": "ended", "status": "ACTIVE", "tenant_id": "p1", "user_id": "u1",
        "created": "2023-05-20T00:00:00Z", "updated": "2023-05-20T00:00:00Z",
        "OS-SRV-USG:launched_at": "2023-05-20T00:00:00Z",
    }))
    .unwrap();
    let usage: openstack::nova::usage::ServerUsage = serde_json::from_value(serde_json::json!({
        "instance_id": id, "tenant_id": "p1", "vcpus": 2, "memory_mb": 2048, "local_gb": 20,
        "started_at": "2023-05-20T00:00:00", "ended_at": "2023-05-22T12:00:00",
    }))
    .unwrap();
    let flavor = accounting::FlavorFacts {
        label: "m1".into(),
        vcpus: 2,
        ram: 2048,
        disk: 20,
        extra_specs: Default::default(),
        known: true,
    };
    let facts = accounting::nova::ServerFacts { server, flavor, image_id: None, user_name: None, actions: None };
    let (cloud, _) = accounting::nova::build(
        &ctx,
        vec![],
        vec![(facts, usage.clone())],
        std::slice::from_ref(&usage),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(cloud.len(), 1);
    let r = &cloud[0];
    let ended: chrono::DateTime<chrono::Utc> = "2023-05-22T12:00:00Z".parse().unwrap();
    let wall = 2 * 86_400 + 12 * 3_600; // 05-20 00:00 → 05-22 12:00
    assert_eq!((r.end_time, r.wall_duration, r.cpu_duration), (Some(ended), Some(wall), Some(2 * wall)));
    assert!(r.end_time.unwrap() < w.to() && r.end_time.unwrap() > w.from(), "ended inside the window");
}
