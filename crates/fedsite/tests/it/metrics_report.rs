//! Operator views end to end against the simulated site and its AMS: the Prometheus textfiles of
//! `accounting extract` and `send` (values checked against the ledger and the sim's request
//! log), `fedsite serve --metrics` running a cycle, and `fedsite report` loaded in headless
//! Chromium (charts drawn, totals equal to the ledger's, hostile text inert).

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ledger::{Ledger, MessageState, SnapshotFilter};

const FEDSITE: &str = env!("CARGO_BIN_EXE_fedsite");

async fn start_sim(dir: &Path) -> sim::SimHandle {
    let scenario = sim::scenario::builtin("tiny").unwrap().generate();
    let mut cfg = sim::SimConfig::new(scenario);
    cfg.ams = Some(sim::AmsConfig::new(dir.join("ams")));
    sim::start(cfg).await.expect("sim with AMS starts")
}

async fn fedsite(args: &[String], clouds: &Path) -> (i32, String, String) {
    let out = tokio::process::Command::new(FEDSITE)
        .args(args)
        .env("OS_CLIENT_CONFIG_FILE", clouds)
        .env_remove("OS_CLOUD")
        .env_remove("FEDSITE_LEDGER")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The extract arguments of the tiny site over a window.
fn extract_args(d: &Path, from: &str, to: &str) -> Vec<String> {
    let mut a = s(&["--os-cloud", "sim-accounting", "--site-name", "TEST-SITE", "--from", from, "--to", to]);
    a.extend([
        "--spool".into(),
        d.join("spool").display().to_string(),
        "--ledger".into(),
        d.join("ledger.sqlite").display().to_string(),
    ]);
    a
}

/// Only tiny's two tagged projects with a VO (proj1, egi-proj).
fn vo_projects() -> Vec<String> {
    s(&["--tag", "", "--project", "0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b", "--project", "e91c0a2f4b7c4d1e8f9a0b1c2d3e4f51"])
}

fn send_args(sim: &sim::SimHandle, d: &Path) -> Vec<String> {
    let a = sim.ams().unwrap();
    let mut v =
        s(&["--project", sim::ams::DEFAULT_PROJECT, "--topic", sim::ams::DEFAULT_TOPIC, "--retry-initial-ms", "100"]);
    for (k, p) in [
        ("--ams-url", a.url()),
        ("--authn-url", a.authn_url()),
        ("--cert", a.client_cert_path().display().to_string()),
        ("--key", a.client_key_path().display().to_string()),
        ("--ca", a.ca_pem_path().display().to_string()),
        ("--spool", d.join("spool").display().to_string()),
        ("--ledger", d.join("ledger.sqlite").display().to_string()),
    ] {
        v.push(k.into());
        v.push(p);
    }
    v
}

/// Parsed text exposition: (name, sorted labels) → value. Checks every line's syntax.
fn parse_prom(text: &str) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), vec![]),
            Some((n, rest)) => {
                let rest = rest.strip_suffix('}').unwrap_or_else(|| panic!("bad labels in {line:?}"));
                let mut labels = vec![];
                let mut chars = rest.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "{line:?}");
                    let mut v = String::new();
                    loop {
                        match chars.next().unwrap_or_else(|| panic!("unterminated label in {line:?}")) {
                            '\\' => match chars.next() {
                                Some('n') => v.push('\n'),
                                Some(c) => v.push(c),
                                None => panic!("{line:?}"),
                            },
                            '"' => break,
                            c => v.push(c),
                        }
                    }
                    labels.push((key, v));
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                }
                labels.sort();
                (n.to_string(), labels)
            }
        };
        assert!(out.insert((name, labels), value).is_none(), "duplicate series {line:?}");
    }
    out
}

fn get(m: &BTreeMap<(String, Vec<(String, String)>), f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut l: Vec<(String, String)> = labels.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    l.sort();
    m.get(&(name.to_string(), l)).copied()
}

fn sum(m: &BTreeMap<(String, Vec<(String, String)>), f64>, name: &str) -> f64 {
    m.iter().filter(|((n, _), _)| n == name).map(|(_, v)| v).sum()
}

/// Ledger snapshots per (kind, project).
fn ledger_counts(l: &Ledger) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for st in l.latest_snapshots(&SnapshotFilter::default()).unwrap() {
        *out.entry((st.snapshot.kind.clone(), st.snapshot.project_id.clone())).or_insert(0.0) += 1.0;
    }
    out
}

struct Site {
    sim: sim::SimHandle,
    _dir: tempfile::TempDir,
    d: PathBuf,
    clouds: PathBuf,
    /// The sim's request counts of the second extract run.
    served2: BTreeMap<String, u64>,
    /// Projects without a VO in the first run.
    no_vo: usize,
}

/// Extract (all projects: novo fails, a partial run) over May 1–25, then (the VO projects only:
/// a successful run) May 25 – June 1, then send; each with its textfile.
async fn extract_twice_and_send() -> (Site, [String; 3]) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let sim = start_sim(&d).await;
    let clouds = d.join("clouds.yaml");
    common::write_private(&clouds, sim.clouds_yaml());
    let prom = |n: &str| d.join(n).display().to_string();

    let mut a = extract_args(&d, "2023-05-01", "2023-05-25");
    a.splice(0..0, s(&["accounting", "extract", "--metrics-textfile"]).into_iter().chain([prom("extract1.prom")]));
    let (code, _, err) = fedsite(&a, &clouds).await;
    assert_eq!(code, 1, "novo has no VO: a partial run\n{err}");
    let no_vo = err.matches("no VO mapping").count();
    assert!(no_vo >= 1, "{err}");
    let first = std::fs::read_to_string(d.join("extract1.prom")).unwrap();

    sim.clear_requests();
    let mut a = extract_args(&d, "2023-05-25", "2023-06-01");
    a.extend(vo_projects());
    a.splice(0..0, s(&["accounting", "extract", "--metrics-textfile"]).into_iter().chain([prom("extract2.prom")]));
    let (code, _, err) = fedsite(&a, &clouds).await;
    assert_eq!(code, 0, "{err}");
    let second = std::fs::read_to_string(d.join("extract2.prom")).unwrap();
    let served2 = sim.request_counts();

    let mut a = s(&["send", "--metrics-textfile", &prom("send.prom")]);
    a.extend(send_args(&sim, &d));
    let (code, out, err) = fedsite(&a, &clouds).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let send = std::fs::read_to_string(d.join("send.prom")).unwrap();
    (Site { sim, _dir: dir, d, clouds, served2, no_vo }, [first, second, send])
}

#[tokio::test(flavor = "multi_thread")]
async fn extract_and_send_textfiles_carry_the_runs_numbers() {
    let t0 = chrono::Utc::now().timestamp() as f64;
    let (site, [first, second, send]) = extract_twice_and_send().await;
    let l = Ledger::open(site.d.join("ledger.sqlite")).unwrap();
    let runs = l.runs(10).unwrap();
    assert_eq!(
        runs.iter().map(|r| r.command.as_str()).collect::<Vec<_>>(),
        ["send", "accounting extract", "accounting extract"]
    );
    let (send_run, run2, run1) = (&runs[0], &runs[1], &runs[2]);

    // First run: everything new, so extracted = spooled = what the ledger got, per kind and project.
    let m1 = parse_prom(&first);
    let mut extracted = BTreeMap::new();
    for ((name, labels), v) in &m1 {
        if name == "fedsite_extract_records" {
            let get = |k: &str| labels.iter().find(|(a, _)| a == k).unwrap().1.clone();
            extracted.insert((get("kind"), get("project")), *v);
            assert_eq!(get_l(&m1, "fedsite_extract_records_spooled", labels), Some(*v), "{labels:?}");
        }
    }
    // (the ledger now also holds the second run's records: compare with run 1's snapshots)
    let mut run1_counts: BTreeMap<(String, String), f64> = BTreeMap::new();
    for st in l.latest_snapshots(&SnapshotFilter::default()).unwrap() {
        if st.first_seen_at <= run1.finished_at.unwrap() {
            *run1_counts.entry((st.snapshot.kind.clone(), st.snapshot.project_id.clone())).or_insert(0.0) += 1.0;
        }
    }
    assert!(extracted.len() >= 4, "cloud, storage, ip... of two projects: {extracted:?}");
    assert_eq!(extracted, run1_counts);
    assert_eq!(get(&m1, "fedsite_extract_projects", &[("result", "failed")]), Some(site.no_vo as f64));
    assert_eq!(get(&m1, "fedsite_extract_projects", &[("result", "ok")]), Some(2.0));
    assert_eq!(get(&m1, "fedsite_last_run_success", &[("stage", "extract")]), Some(0.0));
    assert_eq!(
        get(&m1, "fedsite_last_success_timestamp_seconds", &[("stage", "extract")]),
        None,
        "no run succeeded yet"
    );
    let w1 = l.run_warnings(run1.id).unwrap();
    assert!(w1.iter().any(|w| w.level == "error" && w.message.contains("no VO")), "{w1:?}");
    assert_eq!(get(&m1, "fedsite_last_run_warnings", &[("stage", "extract")]), Some(w1.len() as f64));
    // (send quarantined some as superseded by the second run's newer versions: count every state)
    let of_run = |run: ledger::RunId| -> Vec<ledger::Message> {
        [MessageState::Spooled, MessageState::Sent, MessageState::Acknowledged, MessageState::Quarantined]
            .into_iter()
            .flat_map(|st| l.messages_in_state(st).unwrap())
            .filter(|m| m.run_id == Some(run))
            .collect()
    };
    let spooled1 = of_run(run1.id).len();
    assert_eq!(get(&m1, "fedsite_extract_messages_spooled", &[]), Some(spooled1 as f64));

    // Second run: succeeded; its API calls are exactly what the sim served.
    let m2 = parse_prom(&second);
    assert_eq!(get(&m2, "fedsite_last_run_success", &[("stage", "extract")]), Some(1.0));
    let ok_at = get(&m2, "fedsite_last_success_timestamp_seconds", &[("stage", "extract")]).unwrap();
    assert!(ok_at >= t0 && ok_at <= chrono::Utc::now().timestamp() as f64 + 1.0, "{ok_at}");
    assert_eq!(get(&m2, "fedsite_extract_projects", &[("result", "ok")]), Some(2.0));
    assert_eq!(get(&m2, "fedsite_extract_projects", &[("result", "failed")]), Some(0.0));
    let msgs2 = of_run(run2.id);
    assert_eq!(sum(&m2, "fedsite_extract_records_spooled"), msgs2.iter().map(|m| m.record_count).sum::<u64>() as f64);
    let ledger_records: BTreeMap<(String, String), f64> = ledger_counts(&l);
    for ((kind, project), n) in &ledger_records {
        let vo = l
            .latest_snapshots(&SnapshotFilter {
                kind: Some(kind.clone()),
                project: Some(project.clone()),
                ..Default::default()
            })
            .unwrap()[0]
            .snapshot
            .vo
            .clone()
            .unwrap_or_default();
        assert_eq!(
            get(&m2, "fedsite_ledger_records", &[("kind", kind), ("project", project), ("vo", &vo)]),
            Some(*n),
            "{kind} {project}"
        );
    }
    let served = &site.served2;
    assert_eq!(sum(&m2, "fedsite_api_request_attempts_total"), served.values().sum::<u64>() as f64, "{served:?}");
    let detail = served.get("GET /compute/v2.1/servers/detail").copied().unwrap_or(0);
    assert!(detail > 0);
    assert_eq!(
        get(
            &m2,
            "fedsite_api_request_attempts_total",
            &[("service", "compute"), ("method", "GET"), ("route", "/servers/detail")]
        ),
        Some(detail as f64)
    );
    let calls = get(
        &m2,
        "fedsite_api_request_duration_seconds_count",
        &[("service", "compute"), ("method", "GET"), ("route", "/servers/detail")],
    );
    assert_eq!(
        calls,
        get(
            &m2,
            "fedsite_api_requests_total",
            &[("service", "compute"), ("method", "GET"), ("route", "/servers/detail")]
        )
    );
    assert!(
        get(
            &m2,
            "fedsite_api_request_duration_seconds_sum",
            &[("service", "compute"), ("method", "GET"), ("route", "/servers/detail")]
        )
        .unwrap()
            > 0.0
    );

    // Send: every spooled message sent or (superseded by run 2) dropped; the ledger's states;
    // the spool empty.
    let ms = parse_prom(&send);
    let sent: Vec<_> = l.messages_in_state(MessageState::Sent).unwrap();
    let dropped: Vec<_> = l.messages_in_state(MessageState::Quarantined).unwrap();
    assert!(!sent.is_empty());
    assert!(dropped.iter().all(|m| m.reason.as_deref().unwrap_or("").starts_with("superseded")), "{dropped:?}");
    assert_eq!(get(&ms, "fedsite_send_messages", &[("result", "sent")]), Some(sent.len() as f64));
    assert_eq!(get(&ms, "fedsite_send_messages", &[("result", "superseded")]), Some(dropped.len() as f64));
    assert_eq!(get(&ms, "fedsite_send_messages", &[("result", "quarantined")]), Some(0.0));
    assert_eq!(sum(&ms, "fedsite_ledger_messages"), (sent.len() + dropped.len()) as f64);
    for kind in ["cloud", "ip", "storage", "accelerator"] {
        for (state, list) in [("sent", &sent), ("quarantined", &dropped)] {
            let n = list.iter().filter(|m| m.kind == kind).count() as f64;
            assert_eq!(
                get(&ms, "fedsite_ledger_messages", &[("kind", kind), ("state", state)]),
                Some(n),
                "{kind} {state}"
            );
        }
        assert_eq!(get(&ms, "fedsite_ledger_messages", &[("kind", kind), ("state", "spooled")]), Some(0.0), "{kind}");
    }
    assert_eq!(
        sum(&ms, "fedsite_ledger_message_records"),
        sent.iter().chain(&dropped).map(|m| m.record_count).sum::<u64>() as f64
    );
    assert_eq!(get(&ms, "fedsite_spool_messages", &[]), Some(0.0));
    assert_eq!(get(&ms, "fedsite_last_run_success", &[("stage", "send")]), Some(1.0));
    assert!(get(&ms, "fedsite_last_success_timestamp_seconds", &[("stage", "send")]).unwrap() >= t0);
    assert_eq!(send_run.outcome, Some(ledger::RunOutcome::Succeeded));
    // node_exporter reads exactly one series per name+labels across the files.
    for (name, labels) in parse_prom(&second).keys() {
        assert!(!ms.contains_key(&(name.clone(), labels.clone())), "{name} {labels:?} in both files");
    }
    site.sim.stop().await;
}

fn get_l(m: &BTreeMap<(String, Vec<(String, String)>), f64>, name: &str, labels: &[(String, String)]) -> Option<f64> {
    m.get(&(name.to_string(), labels.to_vec())).copied()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_runs_a_cycle_and_exposes_its_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sim = start_sim(d).await;
    let clouds = d.join("clouds.yaml");
    common::write_private(&clouds, sim.clouds_yaml());
    let mut args = s(&["serve", "--metrics", "127.0.0.1:0", "--every", "1h", "--cycles", "1"]);
    args.extend(["--ledger".into(), d.join("ledger.sqlite").display().to_string()]);
    args.extend(["--spool".into(), d.join("spool").display().to_string()]);
    let mut e = extract_args(d, "2023-05-01", "2023-06-01");
    e.retain(|a| !a.contains("ledger.sqlite") && a != "--ledger");
    e.extend(vo_projects());
    args.extend(e.into_iter().map(|a| format!("--extract-arg={a}")));
    let mut sa = send_args(&sim, d);
    let i = sa.iter().position(|a| a == "--ledger").unwrap();
    sa.drain(i..i + 2);
    args.extend(sa.into_iter().map(|a| format!("--send-arg={a}")));
    let mut child = Command::new(FEDSITE)
        .args(&args)
        .env("OS_CLIENT_CONFIG_FILE", &clouds)
        .env_remove("OS_CLOUD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (url, cycle) = tokio::task::spawn_blocking(move || {
        let mut url = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(u) = line.strip_prefix("serving metrics on ") {
                url = Some(u.to_string());
            }
            if line.starts_with("cycle 1 done") {
                return (url, line);
            }
        }
        (url, "exited".into())
    })
    .await
    .unwrap();
    let result = async {
        let url = url.expect("the address printed");
        reqwest::get(&url).await?.error_for_status()?.text().await
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(cycle, "cycle 1 done (ok)");
    let m = parse_prom(&result.unwrap());
    let l = Ledger::open(d.join("ledger.sqlite")).unwrap();
    assert_eq!(get(&m, "fedsite_serve_cycles_total", &[]), Some(1.0));
    assert_eq!(get(&m, "fedsite_last_run_success", &[("stage", "extract")]), Some(1.0));
    assert_eq!(get(&m, "fedsite_last_run_success", &[("stage", "send")]), Some(1.0));
    let counts = ledger_counts(&l);
    assert_eq!(sum(&m, "fedsite_extract_records"), counts.values().sum::<f64>());
    assert_eq!(sum(&m, "fedsite_ledger_records"), counts.values().sum::<f64>());
    let sent = l.messages_in_state(MessageState::Sent).unwrap().len() as f64;
    assert!(sent > 0.0);
    assert_eq!(get(&m, "fedsite_send_messages", &[("result", "sent")]), Some(sent));
    assert_eq!(sum(&m, "fedsite_ledger_messages"), sent);
    assert_eq!(get(&m, "fedsite_spool_messages", &[]), Some(0.0));
    // The sim's log also holds the send's AMS requests (/v1/...): not OpenStack API calls.
    let served: u64 = sim.request_counts().iter().filter(|(k, _)| !k.contains(" /v1/")).map(|(_, n)| n).sum();
    assert_eq!(sum(&m, "fedsite_api_request_attempts_total"), served as f64);
    sim.stop().await;
}

/// With several fedsite.toml `[[destination]]` tables, `serve` gives each destination's spool
/// its own gauges, labelled with its name (a message stuck in the second is seen).
#[tokio::test(flavor = "multi_thread")]
async fn serve_exposes_every_destinations_spool() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let block = d.join("block");
    let q = messaging::dirq::QueueSimple::open(&block).unwrap();
    q.add(b"<sr:StorageUsageRecords/>").unwrap();
    q.add(b"<sr:StorageUsageRecords/>").unwrap();
    std::fs::create_dir_all(d.join("compute")).unwrap();
    let toml = d.join("fedsite.toml");
    common::write_private(
        &toml,
        format!(
            "[site]\nname = \"TEST-SITE\"\n\n[ledger]\npath = \"{d}/ledger.sqlite\"\n\n\
             [[destination]]\nname = \"compute\"\nrecord_types = [\"cloud\"]\nspool = \"{d}/compute\"\n\n\
             [[destination]]\nname = \"block\"\nrecord_types = [\"storage\"]\nspool = \"{d}/block\"\n",
            d = d.display()
        ),
    );
    drop(Ledger::open(d.join("ledger.sqlite")).unwrap());
    let mut child = Command::new(FEDSITE)
        .args(["--config", toml.to_str().unwrap(), "serve", "--metrics", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::task::spawn_blocking(move || {
        lines.by_ref().map_while(Result::ok).find_map(|l| l.strip_prefix("serving metrics on ").map(str::to_string))
    })
    .await
    .unwrap();
    let text = async { reqwest::get(url.expect("the address printed")).await?.error_for_status()?.text().await }.await;
    let _ = child.kill();
    let _ = child.wait();
    let m = parse_prom(&text.unwrap());
    assert_eq!(get(&m, "fedsite_spool_messages", &[("destination", "block")]), Some(2.0));
    assert_eq!(get(&m, "fedsite_spool_messages", &[("destination", "compute")]), Some(0.0));
    assert_eq!(get(&m, "fedsite_spool_messages", &[]), None, "no unlabelled series beside them");
    assert!(get(&m, "fedsite_spool_oldest_timestamp_seconds", &[("destination", "block")]).is_some());
}

/// `<attr>="value"` of the element with `id="<id>"` in a DOM dump.
fn attr_of(dom: &str, id: &str, attr: &str) -> String {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id}"));
    let start = dom[..at].rfind('<').unwrap();
    let end = at + dom[at..].find('>').unwrap();
    let tag = &dom[start..end];
    let key = format!("{attr}=\"");
    let v = tag.find(&key).unwrap_or_else(|| panic!("#{id} has no {attr}: {tag}"));
    tag[v + key.len()..].split('"').next().unwrap().to_string()
}

/// [start, end) of month "YYYY-MM".
fn month_range(month: &str) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    let start = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").unwrap();
    let end = start.checked_add_months(chrono::Months::new(1)).unwrap();
    (start.and_hms_opt(0, 0, 0).unwrap().and_utc(), end.and_hms_opt(0, 0, 0).unwrap().and_utc())
}

/// The report's figures computed here from the ledger, independently of `fedsite report`.
/// Over all months, a VM's hours are its last record's total, minus what its first record
/// carries from before its first month (the page counts a first month's own time only).
fn expected_totals(l: &Ledger) -> HashMap<&'static str, f64> {
    let snaps = l.latest_snapshots(&SnapshotFilter::default()).unwrap();
    // Per VM: (month, wall, cpu, seconds of its life within that month).
    let mut by_vm: BTreeMap<String, Vec<(String, u64, u64, u64)>> = BTreeMap::new();
    let (mut gpu, mut storage, mut ips, mut vms) = (0.0, 0.0, 0.0, 0.0);
    for st in &snaps {
        let s = &st.snapshot;
        match s.kind.as_str() {
            "cloud" => {
                let vm = s.key.split('/').next().unwrap().to_string();
                let month = s.month.clone().unwrap();
                let (ms, me) = month_range(&month);
                let within = match s.start_time {
                    Some(start) => {
                        (s.end_time.unwrap_or(s.measured_at).min(me) - start.max(ms)).num_seconds().max(0) as u64
                    }
                    None => u64::MAX,
                };
                by_vm.entry(vm).or_default().push((
                    month,
                    s.wall_seconds.unwrap_or(0),
                    s.cpu_seconds.unwrap_or(0),
                    within,
                ));
                vms += 1.0;
            }
            "accelerator" | "storage" | "ip" => match apel::parse_message(s.body.as_bytes()).unwrap().1.remove(0) {
                apel::Record::Accelerator(a) => {
                    let (ms, me) = month_range(s.month.as_deref().unwrap());
                    gpu += (a.available_duration as f64).min((me - ms).num_seconds() as f64) * a.count as f64 / 3600.0;
                }
                apel::Record::Storage(v) => {
                    storage += v.resource_capacity_allocated.unwrap_or(v.resource_capacity_used) as f64 / 1073741824.0
                }
                apel::Record::Ip(i) => ips += i.ip_count as f64,
                _ => unreachable!(),
            },
            _ => {}
        }
    }
    let (mut wall, mut cpu) = (0.0, 0.0);
    for recs in by_vm.values_mut() {
        recs.sort();
        let (first, last) = (recs[0].clone(), recs.last().unwrap().clone());
        let kept = if first.3 < first.1 && first.1 > 0 { first.3 as f64 / first.1 as f64 } else { 1.0 };
        wall += (last.1 as f64 - first.1 as f64 + first.1 as f64 * kept) / 3600.0;
        cpu += (last.2 as f64 - first.2 as f64 + first.2 as f64 * kept) / 3600.0;
        let mut prev = 0;
        for r in recs.iter() {
            assert!(r.1 >= prev, "cumulative wall time never decreases");
            prev = r.1;
        }
    }
    HashMap::from([
        ("vm-hours", wall),
        ("cpu-hours", cpu),
        ("gpu-hours", gpu),
        ("storage", storage),
        ("ips", ips),
        ("vms", vms),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn report_renders_in_headless_chromium_with_the_ledgers_totals() {
    let (site, _) = extract_twice_and_send().await;
    let d = &site.d;
    let ledger_path = d.join("ledger.sqlite");
    // Hostile text where operators cannot control it: a run warning quoting a project name.
    let hostile = r#"project "<img src=x onerror=document.body.setAttribute('data-pwned','1')>": <script>document.body.setAttribute('data-pwned','2')</script>"#;
    {
        let mut l = Ledger::open(&ledger_path).unwrap();
        let run = l.begin_run(&ledger::NewRun { command: "accounting extract".into(), ..Default::default() }).unwrap();
        l.add_run_warning(run, "warn", hostile).unwrap();
        l.finish_run(run, ledger::RunOutcome::Partial, Some("</td></tr></table><h1>injected</h1>")).unwrap();
    }
    let html = d.join("report.html");
    let (code, _, err) = fedsite(
        &s(&["report", "--ledger", &ledger_path.display().to_string(), "-o", &html.display().to_string()]),
        &site.clouds,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    site.sim.stop().await;

    let profile = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--window-size=1280,2400", "--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("file://{}", html.display()))
        .output()
        .await
        .expect("chromium must be installed (apt-get install chromium; scripts/peers.sh venv does it)");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("data-rendered=\"yes\""), "the page's script ran\n{}", String::from_utf8_lossy(&out.stderr));

    // Five charts, laid out with a size, each drawn with bars where there is usage.
    let l = Ledger::open(&ledger_path).unwrap();
    let want = expected_totals(&l);
    for id in ["vm-hours", "cpu-hours", "gpu-hours", "storage", "ips"] {
        let chart = format!("chart-{id}");
        let w: f64 = attr_of(&dom, &chart, "data-rendered-width").parse().unwrap();
        let h: f64 = attr_of(&dom, &chart, "data-rendered-height").parse().unwrap();
        assert!(w > 100.0 && h > 100.0, "{id}: {w}x{h}");
        let bars: u32 = attr_of(&dom, &chart, "data-rendered-bars").parse().unwrap();
        assert!(want[id] <= 0.0 || bars > 0, "{id}: no bar drawn for {}", want[id]);
        // The page's totals are the ledger's.
        let shown: f64 = attr_of(&dom, &format!("total-{id}"), "data-value").parse().unwrap();
        assert!((shown - want[id]).abs() < 1e-6 * want[id].max(1.0), "{id}: page {shown}, ledger {}", want[id]);
        let chart_total: f64 = attr_of(&dom, &chart, "data-total").parse().unwrap();
        assert!((chart_total - want[id]).abs() < 1e-6 * want[id].max(1.0), "{id}: chart {chart_total}");
    }
    for id in ["vm-hours", "cpu-hours", "storage", "ips"] {
        assert!(want[id] > 0.0, "tiny has {id}");
    }
    assert_eq!(attr_of(&dom, "total-vms", "data-value").parse::<f64>().unwrap(), want["vms"]);
    // What was sent: every message, none pending.
    let sent = l.messages_in_state(MessageState::Sent).unwrap().len();
    assert!(dom.contains(r#"<b id="pending-spooled">0</b>"#));
    assert!(sent > 0);
    assert_eq!(
        attr_of(&dom, "sent-total", "data-value").parse::<usize>().unwrap(),
        sent,
        "every sent message is counted by month"
    );
    assert!(!dom.contains("acknowledg"), "no state without a producer is shown");
    // Warnings shown, as text: nothing injected ran or became markup.
    assert!(!dom.contains("data-pwned=\""), "hostile text ran");
    assert!(!dom.contains("<h1>injected</h1>"));
    assert!(dom.contains("&lt;script&gt;document.body.setAttribute"), "the warning is shown as text");
    assert!(dom.contains("no VO"), "the partial run's warning is listed");
    assert_eq!(dom.matches("<script>").count(), 1, "only the page's own script");
}
