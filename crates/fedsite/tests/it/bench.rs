//! `fedsite bench` on `tiny` with one run of each tool (real cASO and the SSM send loop from
//! the peers' venv): the table and the JSON have their structure and count real work. The
//! speeds are not checked here (docs/performance.md). `fedsite bench` runs the `fedsite-bench`
//! beside the binary: `cargo build -p bench` first (scripts/test does).

use crate::common;

use std::process::Command;

use serde_json::Value;

#[test]
fn bench_on_tiny_prints_the_table_and_writes_the_json() {
    let venv = common::venv();
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_fedsite"))
        .args(["bench", "--scenario", "tiny", "--runs", "1", "--latency-ms", "1", "--max-concurrent", "8"])
        .args(["--messages", "30", "--message-records", "2", "--log", "warn"])
        .arg("--venv")
        .arg(&venv)
        .arg("--json")
        .arg(&json_path)
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .output()
        .expect("running fedsite bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "fedsite bench failed:\n{stdout}\n{stderr}");

    for needle in [
        "fedsite bench: scenario tiny, latency 1 ms, 8 concurrent per service",
        "extraction (nova, cinder, neutron)",
        "fedsite/cASO: wall ",
        "fedsite (second run, same ledger)/cASO: wall ",
        "fedsite (second run, same ledger) requests by endpoint",
        "fedsite --no-suspend-duration/cASO: wall ",
        "round-trip floor with SuspendDuration: ",
        "round-trip floor without (--no-suspend-duration): ",
        "POST /identity/v3/auth/tokens",
        "sending (signed, to AMS)",
        "fedsite/SSM: wall ",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in:\n{stdout}");
    }

    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(r["scenario"], "tiny");
    assert_eq!(r["latency_ms"], 1);
    let ex = r["extraction"].as_array().unwrap();
    assert_eq!(
        ex.iter().map(|s| s["tool"].as_str().unwrap()).collect::<Vec<_>>(),
        ["fedsite", "fedsite (second run, same ledger)", "fedsite --no-suspend-duration", "caso"]
    );
    for s in ex {
        assert_eq!(s["runs"], 1, "{s}");
        assert!(s["wall_s"].as_f64().unwrap() > 0.0 && s["cpu_s"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["max_rss_mib"].as_f64().unwrap() > 1.0, "{s}");
        assert!(s["requests"].as_f64().unwrap() >= 3.0, "{s}");
        if s["tool"] == "fedsite (second run, same ledger)" {
            // Same window, same ledger: every record unchanged, nothing spooled again.
            assert_eq!((s["output"].as_u64(), s["messages"].as_u64()), (Some(0), Some(0)), "{s}");
            continue;
        }
        // tiny's tagged projects give records of every kind on both sides.
        assert!(s["output"].as_u64().unwrap() >= 10, "{s}");
        assert!(s["messages"].as_u64().unwrap() >= 4, "{s}");
    }
    for ratios in ["extraction_ratios", "extraction_ratios_no_suspend", "extraction_ratios_second_run"] {
        for k in ["wall", "cpu", "max_rss", "requests", "speedup"] {
            assert!(r[ratios][k].as_f64().is_some_and(|x| x > 0.0), "{ratios} {k}: {}", r[ratios]);
        }
    }
    let floor = &r["floor"];
    assert!(floor["requests"].as_u64().unwrap() >= 7, "{floor}");
    assert!(floor["tagged_projects"].as_u64().unwrap() >= 2, "{floor}");
    let by_service: u64 = floor["requests_by_service"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(by_service, floor["requests"].as_u64().unwrap());
    let want_floor = floor["requests"].as_f64().unwrap() * 0.001 / 8.0;
    assert!((floor["floor_s"].as_f64().unwrap() - want_floor).abs() < 1e-9, "{floor}");
    // Without instance actions the floor is smaller by exactly them and their project tokens.
    let (with, without) = (&floor["with_suspend"], &floor["without_suspend"]);
    assert_eq!(
        with["requests"].as_u64().unwrap() - without["requests"].as_u64().unwrap(),
        floor["instance_actions"].as_u64().unwrap() + floor["projects_with_actions"].as_u64().unwrap()
    );
    assert!(r["fedsite_vs_floor"].as_f64().unwrap() > 0.0 && r["fedsite_no_suspend_vs_floor"].as_f64().unwrap() > 0.0);

    let send = r["sending"].as_array().unwrap();
    assert_eq!(
        send.iter().map(|s| s["tool"].as_str().unwrap()).collect::<Vec<_>>(),
        ["fedsite send", "ssm (argo-ams-library)"]
    );
    for s in send {
        assert_eq!(s["output"], 30, "{s}");
    }
    // One publish per message on the SSM path (+ the token exchange); fedsite batches.
    let runs = r["runs"].as_array().unwrap();
    let ssm = runs.iter().find(|x| x["tool"] == "ssm (argo-ams-library)").unwrap();
    let publishes: u64 = ssm["requests"]["by_endpoint"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.ends_with(":publish"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(publishes, 30, "{}", ssm["requests"]);
    let fed = runs.iter().find(|x| x["tool"] == "fedsite send").unwrap();
    assert!(fed["requests"]["total"].as_u64().unwrap() < 30, "{}", fed["requests"]);
    // The second run on the same ledger lists the actions of no unchanged server (tiny's
    // histories end before the sim's reference time: none changed).
    let actions = |tool: &str| {
        let run = runs.iter().find(|x| x["tool"] == tool).unwrap();
        run["requests"]["by_endpoint"]["GET /compute/v2.1/servers/{id}/os-instance-actions"].as_u64().unwrap_or(0)
    };
    assert!(actions("fedsite") >= 8, "{}", runs[0]["requests"]);
    assert_eq!(actions("fedsite (second run, same ledger)"), 0);
    // fedsite's CPU by stage, from its own spans: a first run lists, builds, compares and
    // spools; the stages and the rest add up to its CPU time.
    let first = runs.iter().find(|x| x["tool"] == "fedsite").unwrap();
    let stages = first["cpu_by_stage"].as_object().unwrap_or_else(|| panic!("no cpu_by_stage: {first}"));
    for stage in ["listing", "building", "ledger", "spool"] {
        assert!(stages.get(stage).and_then(|v| v.as_f64()).is_some_and(|v| v > 0.0), "{stage}: {first}");
    }
    let sum: f64 = stages.values().map(|v| v.as_f64().unwrap()).sum();
    assert!((sum - first["usage"]["cpu_s"].as_f64().unwrap()).abs() < 0.01, "{first}");
    // The sim's CPU per endpoint, for the endpoints it answered.
    let sim_cpu = first["requests"]["sim_cpu_by_endpoint"].as_object().unwrap();
    assert_eq!(
        sim_cpu.keys().collect::<Vec<_>>(),
        first["requests"]["by_endpoint"].as_object().unwrap().keys().collect::<Vec<_>>()
    );
    assert!(sim_cpu["GET /compute/v2.1/servers/detail"].as_f64().unwrap() > 0.0, "{sim_cpu:?}");
    let caso = runs.iter().find(|x| x["tool"] == "caso").unwrap();
    assert!(
        caso["requests"]["by_endpoint"]["POST /identity/v3/auth/tokens"].as_u64().unwrap() > 1,
        "{}",
        caso["requests"]
    );
}
