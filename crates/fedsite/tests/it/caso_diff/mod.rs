//! The comparison of cASO 5.2.2's records with fedsite's for the same site and window, under
//! the documented deviations: each [`Rule`] is one entry of crates/accounting/COMPAT-NOTES.md
//! (docs/compat.md), and nothing else may differ. Used by the differential tests
//! (`differential.rs`, cASO and fedsite on the in-process sim) and by the executable
//! migration doc (`docs_executable.rs`, the host's caso.conf and fedsite's `--caso-compatible`
//! dry run on a simulated site anchored to today).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use apel::{Record, RecordKind};
use chrono::{DateTime, Utc};
use serde_json::Value;

pub type Key = (RecordKind, String);

/// Why a record or a field may differ between cASO and fedsite. Each is one
/// entry of crates/accounting/COMPAT-NOTES.md; nothing else may differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// #3: cASO keeps one IP record per project, the v6 one overwriting v4.
    IpV6OverwritesV4,
    /// #4: IP `uuid` random per cASO run, `MeasurementTime` = now; fedsite:
    /// stable id, window end.
    IpRunStamps,
    /// #5: a usage-only server ended inside the window: cASO's `wall` is
    /// undefined (NameError loses the project's nova records) or stale.
    UndefinedWall,
    /// #8: fedsite sends SuspendDuration and subtracts it from WallDuration
    /// (CpuDuration scaled likewise); cASO never computes it.
    SuspendDuration,
    /// #10: storage `createTime` / `EndTime`: cASO now, fedsite window end.
    StorageRunStamps,
    /// #11: volumes created after the window end: cASO reports, fedsite skips.
    VolumeAfterWindow,
    /// #13: the server's flavor snapshot differs from the current flavor of
    /// the same id (or there is none the project can see): cASO reads the
    /// current flavor by id (zeros when missing), fedsite the snapshot.
    FlavorSnapshot,
}

/// What the rules need to know of the site both tools read: the sim's model
/// ([`Facts`]) or, for the hybrid real site, what its real APIs answer
/// (`hybrid_site.rs`).
pub trait SiteFacts {
    /// A name for the log lines.
    fn label(&self) -> &str;
    /// The window's end.
    fn window_end(&self) -> DateTime<Utc>;
    /// Rule FlavorSnapshot: the server's flavor snapshot differs from the
    /// current flavor of that id its project sees (or there is none).
    fn flavor_drift(&self, server_id: &str) -> bool;
    /// vCPUs of the server's flavor snapshot (None: not a server of the site).
    fn snapshot_vcpus(&self, server_id: &str) -> Option<u64>;
    /// vCPUs of the current flavor of the snapshot's id its project sees.
    fn current_vcpus(&self, server_id: &str) -> Option<u64>;
    /// The server's flavor snapshot as APEL sizes: [vCPUs, RAM MB, root + ephemeral GB].
    fn snapshot_sizes(&self, server_id: &str) -> Option<[u64; 3]>;
    /// The same sizes of the current flavor of the snapshot's id its project sees.
    fn current_sizes(&self, server_id: &str) -> Option<[u64; 3]>;
    /// How a drifted flavor differs, for the log.
    fn flavor_note(&self, server_id: &str) -> String;
    /// Rule IpV6OverwritesV4: the project has IPs of both versions cASO counts.
    fn both_ip_versions(&self, project: &str) -> bool;
    /// Rule VolumeAfterWindow: the volume was created after the window end.
    fn volume_after_window(&self, id: &str) -> bool;
    /// The project of a server.
    fn project_of_server(&self, id: &str) -> Option<String>;
    /// Rule UndefinedWall: the project's usage-only servers (not changed since
    /// the window start) whose usage ended inside the window.
    fn usage_only_ended_in_window(&self, project: &str) -> Vec<String>;
}

/// What the scenario model says, for deriving the rules.
pub struct Facts {
    pub scenario: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub site: sim::model::Site,
    pub reference: DateTime<Utc>,
}

impl Facts {
    /// The built-in scenario `scenario` as the in-process sim serves it, window [from, to).
    pub fn new(scenario: &str, from: &str, to: &str) -> Facts {
        Facts::of(sim::scenario::builtin(scenario).unwrap().generate(), from, to)
    }

    /// A generated (possibly anchored) scenario, window [from, to) (dates, UTC).
    pub fn of(sc: sim::scenario::Scenario, from: &str, to: &str) -> Facts {
        Facts {
            scenario: sc.name,
            from: parse_utc(from),
            to: parse_utc(to),
            reference: sc.reference_time,
            site: sc.site,
        }
    }

    fn server(&self, id: &str) -> Option<&sim::model::Server> {
        self.site.servers.iter().find(|s| s.id == id)
    }

    /// The flavor cASO finds for the server: the one of its snapshot's id
    /// that its project sees (public, or shared with it).
    fn current_flavor(&self, server_id: &str) -> Option<&sim::model::Flavor> {
        let v = self.server(server_id)?.view_at(self.reference)?;
        let project = &v.server.project_id;
        self.site.flavors.iter().find(|f| f.id == v.flavor.id && (f.is_public || f.access.contains(project)))
    }
}

impl SiteFacts for Facts {
    /// Rule FlavorSnapshot: the flavor the server shows now (its snapshot,
    /// after resizes) is not the current flavor of that id its project sees.
    fn flavor_drift(&self, server_id: &str) -> bool {
        let Some(s) = self.server(server_id) else { return false };
        let Some(view) = s.view_at(self.reference) else { return false };
        let snap = view.flavor;
        match self.current_flavor(server_id) {
            None => true,
            Some(f) => {
                (f.vcpus, f.ram, f.disk, f.ephemeral, &f.extra_specs)
                    != (snap.vcpus, snap.ram, snap.disk, snap.ephemeral, &snap.extra_specs)
            }
        }
    }

    fn label(&self) -> &str {
        &self.scenario
    }

    fn window_end(&self) -> DateTime<Utc> {
        self.to
    }

    fn snapshot_vcpus(&self, server_id: &str) -> Option<u64> {
        self.server(server_id).and_then(|s| s.view_at(self.reference)).map(|v| u64::from(v.flavor.vcpus))
    }

    fn current_vcpus(&self, server_id: &str) -> Option<u64> {
        self.current_flavor(server_id).map(|f| u64::from(f.vcpus))
    }

    fn snapshot_sizes(&self, server_id: &str) -> Option<[u64; 3]> {
        let f = self.server(server_id)?.view_at(self.reference)?.flavor;
        Some([u64::from(f.vcpus), f.ram, f.disk + f.ephemeral])
    }

    fn current_sizes(&self, server_id: &str) -> Option<[u64; 3]> {
        self.current_flavor(server_id).map(|f| [u64::from(f.vcpus), f.ram, f.disk + f.ephemeral])
    }

    /// How a drifted flavor differs, for the log.
    fn flavor_note(&self, server_id: &str) -> String {
        let Some(v) = self.server(server_id).and_then(|s| s.view_at(self.reference)) else { return "?".into() };
        let f = v.flavor;
        let current = self.site.flavors.iter().find(|c| c.id == f.id);
        format!(
            "snapshot {} {:?} ({} vCPUs, {} specs) vs current: {}",
            f.id,
            f.name,
            f.vcpus,
            f.extra_specs.len(),
            match current {
                None => "none of that id".to_string(),
                Some(c) if !(c.is_public || c.access.contains(&v.server.project_id)) => {
                    format!("{:?}, private, not shared with {}", c.name, v.server.project_id)
                }
                Some(c) => format!("{:?} ({} vCPUs, {} specs)", c.name, c.vcpus, c.extra_specs.len()),
            }
        )
    }

    /// Rule IpV6OverwritesV4: the project has IPs of both versions that cASO
    /// counts (listed now, created by the window end).
    fn both_ip_versions(&self, project: &str) -> bool {
        let versions: BTreeSet<u8> = self
            .site
            .floating_ips
            .iter()
            .filter(|f| f.project_id == project && f.visible_at(self.reference) && f.created_at <= self.to)
            .map(|f| f.version)
            .collect();
        versions.len() == 2
    }

    /// Rule VolumeAfterWindow.
    fn volume_after_window(&self, id: &str) -> bool {
        self.site.volumes.iter().any(|v| v.id == id && v.created_at > self.to)
    }

    fn project_of_server(&self, id: &str) -> Option<String> {
        self.server(id).map(|s| s.project_id.clone())
    }

    /// Rule UndefinedWall: usage-only servers (not changed since the window
    /// start, so not in cASO's changes-since list) whose usage ended inside
    /// the window.
    fn usage_only_ended_in_window(&self, project: &str) -> Vec<String> {
        self.site
            .servers
            .iter()
            .filter(|s| s.project_id == project)
            .filter_map(|s| s.view_at(self.reference))
            .filter(|v| v.updated < self.from)
            .filter(|v| v.terminated_at.is_some_and(|t| t >= self.from && t <= self.to))
            .map(|v| v.server.id.clone())
            .collect()
    }
}

pub fn parse_utc(s: &str) -> DateTime<Utc> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc()
}

/// Every record of a dirq spool by (kind, key), each element parsed with
/// apel::parse_message; a key seen twice is an error.
pub fn spool_records(elements: &[PathBuf], who: &str) -> BTreeMap<Key, Record> {
    message_records(elements.iter().map(|p| (p.display().to_string(), std::fs::read(p).unwrap())), who)
}

/// Every record of some APEL messages (where each came from, its bytes) by (kind, key); a
/// message that does not parse or a key seen twice is an error.
pub fn message_records(messages: impl IntoIterator<Item = (String, Vec<u8>)>, who: &str) -> BTreeMap<Key, Record> {
    let mut out = BTreeMap::new();
    for (from, bytes) in messages {
        let (kind, records) = apel::parse_message(&bytes).unwrap_or_else(|e| {
            panic!("{who}'s message {from} does not parse: {e}\n{}", String::from_utf8_lossy(&bytes))
        });
        for r in records {
            assert_eq!(r.kind(), kind, "{who}: {from}");
            let key = (kind, r.key());
            if let Some(old) = out.insert(key.clone(), r.clone()) {
                panic!("{who} sent {key:?} twice:\n{old:?}\n{r:?}");
            }
        }
    }
    out
}

/// Records per kind, for the log.
pub fn per_kind(m: &BTreeMap<Key, Record>) -> BTreeMap<RecordKind, usize> {
    let mut n: BTreeMap<RecordKind, usize> = BTreeMap::new();
    for k in m.keys() {
        *n.entry(k.0).or_default() += 1;
    }
    n
}

/// A record's fields by name (serde names; `null` where absent).
fn fields(r: &Record) -> BTreeMap<String, Value> {
    let v = serde_json::to_value(r).unwrap();
    v["record"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// One difference no rule explains.
pub struct Finding {
    key: Key,
    field: String,
    caso: String,
    fedsite: String,
}

/// The outcome of comparing both sides: undocumented differences and how
/// often each rule applied.
#[derive(Default)]
pub struct Comparison {
    pub findings: Vec<Finding>,
    pub applied: BTreeMap<Rule, usize>,
}

impl Comparison {
    fn finding(&mut self, key: &Key, field: &str, caso: impl std::fmt::Display, fedsite: impl std::fmt::Display) {
        self.findings.push(Finding {
            key: key.clone(),
            field: field.into(),
            caso: caso.to_string(),
            fedsite: fedsite.to_string(),
        });
    }
    fn apply(&mut self, rule: Rule) {
        *self.applied.entry(rule).or_default() += 1;
    }

    pub fn report(&self) -> String {
        let mut s = String::new();
        for f in &self.findings {
            s.push_str(&format!(
                "  {} {:<48} {:<22} cASO {:<40} fedsite {}\n",
                f.key.0, f.key.1, f.field, f.caso, f.fedsite
            ));
        }
        s
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "<absent>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn uint(f: &BTreeMap<String, Value>, k: &str) -> Option<u64> {
    f.get(k).and_then(Value::as_u64)
}

/// Projects whose nova extractor cASO's log shows failing on the undefined
/// `wall` (bug 4), by the traceback that follows its error line.
pub fn caso_wall_failures(log: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let marker = "Extractor nova: cannot extract records for '";
    let mut rest = log;
    while let Some(i) = rest.find(marker) {
        let after = &rest[i + marker.len()..];
        let project = after.split('\'').next().unwrap_or_default().to_string();
        let tb_end = after.find("Extractor ").unwrap_or(after.len());
        if after[..tb_end].contains("NameError") && after[..tb_end].contains("'wall'") {
            out.insert(project);
        }
        rest = after;
    }
    out
}

/// Every nova/cinder/neutron extractor failure in cASO's log: (extractor, project).
pub fn caso_extractor_failures(log: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for line in log.lines() {
        if let Some(i) = line.find("Extractor ")
            && let Some(j) = line[i..].find(": cannot extract records for '")
        {
            let ex = line[i + "Extractor ".len()..i + j].to_string();
            let p = line[i + j + ": cannot extract records for '".len()..].split('\'').next().unwrap_or_default();
            out.insert((ex, p.to_string()));
        }
    }
    out
}

/// Rule FlavorSnapshot's bounds on a drifted server's cloud record: fedsite's `cpu_count`,
/// `memory` and `disk` are the flavor snapshot's (vCPUs, RAM, root + ephemeral disk);
/// cASO's are the current flavor's of that id, the snapshot's (usage path), or absent.
fn check_flavor_sizes(
    facts: &dyn SiteFacts,
    c: &mut Comparison,
    key: &Key,
    server_id: &str,
    cf: &BTreeMap<String, Value>,
    ff: &BTreeMap<String, Value>,
) {
    let Some(snap) = facts.snapshot_sizes(server_id) else {
        c.finding(key, "<server>", "-", "not a server of the site");
        return;
    };
    let current = facts.current_sizes(server_id);
    for (i, k) in ["cpu_count", "memory", "disk"].into_iter().enumerate() {
        let want_fed = snap[i];
        if uint(ff, k) != Some(want_fed) {
            c.finding(
                key,
                &format!("{k} (fedsite: the flavor snapshot's)"),
                show(cf.get(k)),
                format!("{}, want {want_fed}", show(ff.get(k))),
            );
        }
        let caso = uint(cf, k);
        let want_caso = current.map(|c| c[i]);
        if !(caso.is_none() || caso == want_caso || caso == Some(want_fed)) {
            c.finding(
                key,
                &format!("{k} (cASO: the current flavor's)"),
                show(cf.get(k)),
                format!("current {want_caso:?}"),
            );
        }
    }
}

/// Rules SuspendDuration and FlavorSnapshot on a cloud record's durations:
/// fedsite Wall + SuspendDuration == cASO Wall; each side's CpuDuration is
/// its Wall × vCPUs, fedsite's from the flavor snapshot, cASO's from the
/// snapshot too (usage path: usage vCPUs) or, for a drifted flavor, from the
/// current flavor of that id (0 when there is none, changes-since path).
/// 0 is sent as 1 (Style::CasoCompat), for Wall and CPU alike.
#[allow(clippy::too_many_arguments)]
fn check_wall_and_cpu(
    facts: &dyn SiteFacts,
    c: &mut Comparison,
    key: &Key,
    server: &str,
    suspend: Option<u64>,
    drift: bool,
    cf: &BTreeMap<String, Value>,
    ff: &BTreeMap<String, Value>,
) {
    let sent = |x: u64| x.max(1);
    let (cw, fw) = (uint(cf, "wall_duration").unwrap_or(0), uint(ff, "wall_duration").unwrap_or(0));
    let (cc, fc) = (uint(cf, "cpu_duration").unwrap_or(0), uint(ff, "cpu_duration").unwrap_or(0));
    let s = suspend.unwrap_or(0);
    if suspend.is_some() {
        c.apply(Rule::SuspendDuration);
    }
    // fedsite's real wall: what it sent, or 0 when it sent 1.
    let Some(fw_real) =
        [fw, 0].into_iter().filter(|w| sent(*w) == fw).find(|w| w + s == cw || (s == 0 && sent(*w) == cw))
    else {
        c.finding(key, "wall_duration (cASO = fedsite + SuspendDuration)", cw, format!("{fw} + {s}"));
        return;
    };
    let k_fed = facts.snapshot_vcpus(server).expect("a server of the site");
    if fc != sent(fw_real * k_fed) {
        c.finding(key, "cpu_duration (fedsite: Wall × snapshot vCPUs)", cc, format!("{fc}, want {fw_real} × {k_fed}"));
    }
    let mut k_caso = vec![k_fed];
    if drift {
        k_caso.push(facts.current_vcpus(server).unwrap_or(0));
    }
    let caso_wall = if cw == 1 { [1, 0] } else { [cw, cw] };
    if !k_caso.iter().any(|k| caso_wall.iter().any(|w| sent(w * k) == cc)) {
        c.finding(key, "cpu_duration (cASO: Wall × vCPUs)", cc, format!("{fc}, cASO vCPUs one of {k_caso:?}"));
    } else if drift && cc != sent(cw * k_fed) {
        c.apply(Rule::FlavorSnapshot);
        eprintln!("[{}] rule FlavorSnapshot: {} cpu_duration: cASO {cc} fedsite {fc}", facts.label(), key.1);
    }
}

/// Compares both sides record by record, field by field, under the rules.
pub fn compare(
    facts: &dyn SiteFacts,
    caso: &BTreeMap<Key, Record>,
    fed: &BTreeMap<Key, Record>,
    caso_log: &str,
    run_started: DateTime<Utc>,
) -> Comparison {
    let mut c = Comparison::default();
    let wall_lost = caso_wall_failures(caso_log);
    let server_of = |key: &Key| key.1.split('/').next().unwrap_or_default().to_string();

    // The sets of keys.
    for key in caso.keys().filter(|k| !fed.contains_key(*k)) {
        let rule = match key.0 {
            RecordKind::Storage if facts.volume_after_window(&key.1) => Some(Rule::VolumeAfterWindow),
            RecordKind::Accelerator if facts.flavor_drift(&server_of(key)) => Some(Rule::FlavorSnapshot),
            _ => None,
        };
        match rule {
            Some(r) => c.apply(r),
            None => c.finding(key, "<record>", "present", "<absent>"),
        }
    }
    for key in fed.keys().filter(|k| !caso.contains_key(*k)) {
        let project = match key.0 {
            RecordKind::Ip => Some(key.1.split('/').next().unwrap().to_string()),
            RecordKind::Cloud | RecordKind::Accelerator => facts.project_of_server(&server_of(key)),
            _ => None,
        };
        let rule = match key.0 {
            RecordKind::Ip
                if key.1.ends_with("/4")
                    && facts.both_ip_versions(project.as_deref().unwrap())
                    && caso.contains_key(&(RecordKind::Ip, key.1.replace("/4", "/6"))) =>
            {
                Some(Rule::IpV6OverwritesV4)
            }
            RecordKind::Cloud | RecordKind::Accelerator
                if project
                    .as_ref()
                    .is_some_and(|p| wall_lost.contains(p) && !facts.usage_only_ended_in_window(p).is_empty()) =>
            {
                Some(Rule::UndefinedWall)
            }
            RecordKind::Accelerator if facts.flavor_drift(&server_of(key)) => Some(Rule::FlavorSnapshot),
            _ => None,
        };
        match rule {
            Some(r) => c.apply(r),
            None => c.finding(key, "<record>", "<absent>", "present"),
        }
    }

    // The fields of the records on both sides.
    for (key, cr) in caso.iter().filter(|(k, _)| fed.contains_key(*k)) {
        let mut cf = fields(cr);
        let mut ff = fields(&fed[key]);
        match key.0 {
            RecordKind::Cloud => {
                let server = server_of(key);
                let drift = facts.flavor_drift(&server);
                let suspend =
                    uint(&ff, "suspend_duration").filter(|s| *s > 0 && uint(&cf, "suspend_duration").is_none());
                if suspend.is_some() || drift {
                    check_wall_and_cpu(facts, &mut c, key, &server, suspend, drift, &cf, &ff);
                    for k in ["suspend_duration", "wall_duration", "cpu_duration"] {
                        cf.remove(k);
                        ff.remove(k);
                    }
                }
                if facts.flavor_drift(&server) {
                    let mut applied = false;
                    // The exception is narrow: fedsite's size fields are the snapshot's,
                    // cASO's the current flavor's of that id (or none), nothing else.
                    check_flavor_sizes(facts, &mut c, key, &server, &cf, &ff);
                    for k in ["benchmark", "benchmark_type", "cpu_count", "memory", "disk"] {
                        if cf.get(k) != ff.get(k) {
                            applied = true;
                            eprintln!(
                                "[{}] rule FlavorSnapshot: {} {k}: cASO {} fedsite {} ({})",
                                facts.label(),
                                key.1,
                                show(cf.get(k)),
                                show(ff.get(k)),
                                facts.flavor_note(&server)
                            );
                        }
                        cf.remove(k);
                        ff.remove(k);
                    }
                    if applied {
                        c.apply(Rule::FlavorSnapshot);
                    }
                }
            }
            RecordKind::Ip => {
                c.apply(Rule::IpRunStamps);
                let fm = ff.remove("measurement_time");
                cf.remove("measurement_time");
                if fm != Some(Value::String(facts.window_end().format("%Y-%m-%dT%H:%M:%SZ").to_string())) {
                    c.finding(key, "measurement_time (fedsite: window end)", "-", show(fm.as_ref()));
                }
                let (cu, fu) = (cf.remove("uuid"), ff.remove("uuid"));
                if cu == fu {
                    c.finding(key, "uuid (cASO random per run)", show(cu.as_ref()), show(fu.as_ref()));
                }
            }
            RecordKind::Storage => {
                c.apply(Rule::StorageRunStamps);
                for k in ["create_time", "end_time"] {
                    let (cv, fv) = (cf.remove(k), ff.remove(k));
                    let parse = |v: &Option<Value>| {
                        v.as_ref().and_then(Value::as_str).and_then(|s| s.parse::<DateTime<Utc>>().ok())
                    };
                    if parse(&fv) != Some(facts.window_end()) {
                        c.finding(key, &format!("{k} (fedsite: window end)"), show(cv.as_ref()), show(fv.as_ref()));
                    }
                    // cASO writes the time of its run (naive UTC, TZ=UTC).
                    if parse(&cv).is_none_or(|t| t < run_started - chrono::Duration::seconds(1)) {
                        c.finding(key, &format!("{k} (cASO: now)"), show(cv.as_ref()), show(fv.as_ref()));
                    }
                }
            }
            RecordKind::Accelerator => {
                if facts.flavor_drift(&server_of(key)) {
                    let differs = ["model", "accelerator_type", "count", "benchmark", "benchmark_type"]
                        .iter()
                        .any(|k| cf.get(*k) != ff.get(*k));
                    if differs {
                        c.apply(Rule::FlavorSnapshot);
                        for k in ["model", "accelerator_type", "count", "benchmark", "benchmark_type"] {
                            cf.remove(k);
                            ff.remove(k);
                        }
                    }
                }
            }
            RecordKind::Energy => {}
        }
        let names: BTreeSet<&String> = cf.keys().chain(ff.keys()).collect();
        for k in names {
            if cf.get(k) != ff.get(k) {
                c.finding(key, k, show(cf.get(k)), show(ff.get(k)));
            }
        }
    }
    c
}
