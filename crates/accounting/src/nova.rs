//! Cloud and accelerator records from Nova: cASO 5.2.2's algorithm
//! (cASO 5.2.2 `caso/extract/openstack/nova.py`) over plain values — the servers changed since
//! the window start plus the servers only os-simple-tenant-usage knows —
//! with the fixes listed in COMPAT-NOTES.md. The gathering is at the end.

use std::collections::{HashMap, HashSet};

use apel::{AcceleratorRecord, ApelText, CloudRecord, Fqan, Record, VmStatus, VmUuid, Window};
use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use futures::StreamExt;
use openstack::nova::{InstanceAction, Server, ServerUsage};

use crate::access::{Access, FlavorFacts, ProjectAccess};
use crate::action_cache::{ActionCacheUpdate, ProjectCache};
use crate::config::ExtractConfig;
use crate::error::ExtractError;
use crate::suspend::suspended_seconds;

/// What one server's records are built from.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    pub server: Server,
    pub flavor: FlavorFacts,
    /// `vmcatcher_event_ad_mpuri` of the image, else the image id; None
    /// when booted from volume.
    pub image_id: Option<String>,
    /// Keystone user name.
    pub user_name: Option<String>,
    /// Instance actions (None: not asked).
    pub actions: Option<Vec<InstanceAction>>,
}

/// The project-level values every record carries.
#[derive(Debug, Clone)]
pub struct RecordCtx<'a> {
    pub cfg: &'a ExtractConfig,
    pub project_id: &'a str,
    pub fqan: Fqan,
    pub window: Window,
}

/// cASO's end time: `terminated_at`; else `created` if never launched;
/// else `updated` if DELETED; else none.
pub fn server_end(s: &Server) -> Option<DateTime<Utc>> {
    if let Some(t) = s.terminated_at {
        return Some(t);
    }
    if s.launched_at.is_none() {
        return Some(s.created);
    }
    if s.status.eq_ignore_ascii_case("DELETED") {
        return s.updated;
    }
    None
}

/// cASO's filter of the changes-since list: created after the window, or
/// ended before it (deleted earlier, updated inside).
pub fn in_window(s: &Server, w: &Window) -> bool {
    !(s.created > w.to() || server_end(s).is_some_and(|e| e < w.from()))
}

fn secs(a: DateTime<Utc>, b: DateTime<Utc>) -> u64 {
    (a - b).num_seconds().max(0) as u64
}

fn text(s: &str) -> ApelText {
    ApelText::lossy(s)
}

struct Pending {
    rec: CloudRecord,
    /// Explicit wall time (cASO's `_wall_duration`).
    wall: Option<u64>,
    /// CPU multiplier fixed when the wall time was (None: lazy, the final CpuCount).
    cpu_mult: Option<u32>,
    actions: Option<Vec<InstanceAction>>,
}

/// Benchmark type and value from the flavor's extra specs.
fn benchmark(ctx: &RecordCtx, f: &FlavorFacts, warn: &mut dyn FnMut(&str, String)) -> (Option<ApelText>, Option<f64>) {
    let keys = &ctx.cfg.benchmark;
    let name = f.extra_specs.get(&keys.name_key);
    let value = f.extra_specs.get(&keys.value_key);
    if name.is_none() || value.is_none() {
        warn(
            &format!("bench:{}", f.label),
            format!(
                "flavor {:?} has no benchmark (extra specs {} and {}); its cloud records carry none",
                f.label, keys.name_key, keys.value_key
            ),
        );
    }
    let value = value.and_then(|v| match v.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Some(x),
        _ => {
            warn(
                &format!("benchval:{}", f.label),
                format!("flavor {:?}: benchmark value {v:?} is not a number; left out", f.label),
            );
            None
        }
    });
    // Both or neither: a BenchmarkType without its Benchmark says nothing (compat row 14).
    match value {
        Some(v) => (name.map(|n| text(n)), Some(v).filter(|_| name.is_some())),
        None => (None, None),
    }
}

/// Maps a Nova API server `status` to the APEL status as cASO 5.2.2 does
/// (`caso/extract/openstack/nova.py`), case-insensitively. Anything not listed (SHELVED, SOFT_DELETED, ...)
/// is `Unknown`.
pub fn vm_status_from_nova(status: &str) -> VmStatus {
    match status.to_ascii_lowercase().as_str() {
        "active" | "build" | "confirming_resize" | "hard_reboot" | "migrating" | "reboot" | "rebuild" | "rescue"
        | "resize" | "revert_resize" | "verify_resize" | "saving" | "password" => VmStatus::Started,
        "deleted" | "shutoff" | "terminated" => VmStatus::Completed,
        "error" => VmStatus::Error,
        "paused" => VmStatus::Paused,
        "suspended" => VmStatus::Suspended,
        "stopped" => VmStatus::Stopped,
        _ => VmStatus::Unknown,
    }
}

fn base_record(
    ctx: &RecordCtx,
    f: &ServerFacts,
    end: Option<DateTime<Utc>>,
    warn: &mut dyn FnMut(&str, String),
) -> Result<CloudRecord, ExtractError> {
    let s = &f.server;
    let cfg = ctx.cfg;
    let uuid = VmUuid::new(s.id.clone()).map_err(|e| ExtractError::record(format!("server {}", s.id), e))?;
    let mut r = CloudRecord::new(uuid, cfg.site_name.clone());
    r.cloud_compute_service = Some(cfg.service_name.clone());
    r.cloud_type = Some(cfg.cloud_type.clone());
    r.machine_name = Some(text(s.name.as_deref().unwrap_or("")));
    r.local_user_id = Some(text(s.user_id.as_deref().unwrap_or("")));
    r.local_group_id = Some(text(s.tenant_id.as_deref().unwrap_or(ctx.project_id)));
    r.global_user_name = f.user_name.as_deref().map(text);
    r.fqan = Some(ctx.fqan.clone());
    r.status = Some(vm_status_from_nova(&s.status));
    r.start_time = Some(s.created);
    r.end_time = end;
    r.cpu_count = Some(f.flavor.vcpus);
    r.memory = Some(f.flavor.ram);
    r.disk = Some(f.flavor.disk);
    r.public_ip_count = Some(s.floating_ips().count() as u32);
    r.image_id = f.image_id.as_deref().map(text);
    let (bt, bv) = benchmark(ctx, &f.flavor, warn);
    r.benchmark_type = bt;
    r.benchmark = bv;
    Ok(r)
}

fn first_of_month(t: DateTime<Utc>) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(t.year(), t.month(), 1)
        .unwrap_or_default()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
}

/// cASO's monthly accelerator records (cASO 5.2.2 `caso/extract/openstack/nova.py`, `caso/record.py`).
fn accelerator_records(
    ctx: &RecordCtx,
    f: &ServerFacts,
    rec: &CloudRecord,
    warn: &mut dyn FnMut(&str, String),
) -> Vec<AcceleratorRecord> {
    let k = &ctx.cfg.accelerator;
    let spec = |key: &String| f.flavor.extra_specs.get(key).filter(|v| !v.is_empty());
    let (Some(ty), Some(vendor), Some(model), Some(number)) =
        (spec(&k.type_key), spec(&k.vendor_key), spec(&k.model_key), spec(&k.number_key))
    else {
        return vec![];
    };
    let Ok(count) = number.trim().parse::<u32>() else {
        warn(
            &format!("accnum:{}", f.flavor.label),
            format!(
                "flavor {:?}: accelerator number {number:?} is not an integer; no accelerator records",
                f.flavor.label
            ),
        );
        return vec![];
    };
    let (from, to) = (ctx.window.from(), ctx.window.to());
    let Some(start) = rec.start_time else { return vec![] };
    let end = rec.end_time;
    let mut month = first_of_month(start.max(from));
    let last = first_of_month(end.map_or(to, |e| e.min(to)));
    let mut out = Vec::new();
    while month <= last {
        let Some(next) = month.checked_add_months(Months::new(1)) else { break };
        let rs = month.max(start);
        let mut re = next.min(to);
        if let Some(e) = end {
            re = re.min(e);
        }
        if re >= rs {
            out.push(AcceleratorRecord {
                measurement_month: month.month(),
                measurement_year: month.year(),
                associated_record_type: text("cloud"),
                associated_record: text(&f.server.id),
                global_user_name: rec.global_user_name.clone(),
                fqan: ctx.fqan.clone(),
                site_name: ctx.cfg.site_name.clone(),
                count,
                cores: None,
                active_duration: Some(secs(re, rs)),
                available_duration: secs(re, rs),
                benchmark_type: None,
                benchmark: None,
                accelerator_type: text(ty),
                model: text(&format!("{vendor} {model}")),
                cloud_compute_service: Some(ctx.cfg.service_name.clone()),
                cloud_type: Some(ctx.cfg.cloud_type.clone()),
            });
        }
        month = next;
    }
    out
}

/// The records of one project: `changed` are the changes-since servers kept
/// by [`in_window`], sorted by `created`; `usage_only` the servers fetched
/// for usage entries not among them (cASO step 4), with their entry;
/// `usage` every usage entry (sizes overwrite).
pub fn build(
    ctx: &RecordCtx,
    changed: Vec<ServerFacts>,
    usage_only: Vec<(ServerFacts, ServerUsage)>,
    usage: &[ServerUsage],
    warn: &mut dyn FnMut(&str, String),
) -> Result<(Vec<CloudRecord>, Vec<AcceleratorRecord>), ExtractError> {
    let to = ctx.window.to();
    let mut order: Vec<String> = Vec::new();
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut accs = Vec::new();

    for f in changed {
        let start = f.server.created;
        let end = server_end(&f.server);
        let mut rec = base_record(ctx, &f, end, warn)?;
        accs.extend(accelerator_records(ctx, &f, &rec, warn));
        let (mut wall, mut cpu_mult) = (None, None);
        if end.is_none_or(|e| e > to) {
            wall = Some(secs(to, start));
            rec.end_time = None;
            if rec.status == Some(VmStatus::Completed) {
                rec.status = Some(VmStatus::Started);
            }
            cpu_mult = Some(f.flavor.vcpus);
        }
        order.push(f.server.id.clone());
        pending.insert(f.server.id.clone(), Pending { rec, wall, cpu_mult, actions: f.actions });
    }

    for (f, u) in usage_only {
        if pending.contains_key(&f.server.id) || f.server.created > to {
            continue;
        }
        let start = f.server.created;
        let mut rec = base_record(ctx, &f, server_end(&f.server), warn)?;
        accs.extend(accelerator_records(ctx, &f, &rec, warn));
        if let Some(e) = u.ended_at {
            rec.end_time = Some(e);
        }
        let mut wall = None;
        if u.ended_at.is_none_or(|e| e > to) {
            wall = Some(secs(to, start));
            if rec.status == Some(VmStatus::Completed) {
                rec.status = Some(VmStatus::Started);
            }
        }
        // cASO leaves `wall` undefined when ended_at <= extract_to (its bug
        // 4); the wall time is then the record's own, ended_at - created.
        order.push(f.server.id.clone());
        pending.insert(f.server.id.clone(), Pending { rec, wall, cpu_mult: Some(u.vcpus), actions: f.actions });
    }

    for u in usage {
        if let Some(p) = pending.get_mut(&u.instance_id) {
            p.rec.memory = Some(u.memory_mb);
            p.rec.cpu_count = Some(u.vcpus);
            p.rec.disk = Some(u.local_gb);
        }
    }

    let compat = &ctx.cfg.compat;
    let mut out = Vec::with_capacity(order.len());
    for id in order {
        let Some(p) = pending.remove(&id) else { continue };
        let mut rec = p.rec;
        let start = rec.start_time.unwrap_or(to);
        let mut wall = p.wall.or_else(|| rec.end_time.map(|e| secs(e, start)));
        let mult = p.cpu_mult.or(rec.cpu_count.filter(|c| *c != 0));
        if compat.suspend_duration
            && let Some(actions) = &p.actions
        {
            let horizon = rec.end_time.map_or(to, |e| e.min(to));
            let suspended = suspended_seconds(actions, start, horizon, compat.inactive_time);
            if suspended > 0 {
                rec.suspend_duration = Some(suspended);
                wall = wall.map(|w| w.saturating_sub(suspended));
            }
        }
        rec.wall_duration = wall;
        rec.cpu_duration = match (wall, mult) {
            (Some(w), Some(m)) => Some(w * m as u64),
            _ => None,
        };
        out.push(rec);
    }
    Ok((out, accs))
}

// ------------------------------------------------------------- gathering

/// Whether SuspendDuration needs the server's instance actions: a server
/// never launched, or not updated since its launch, has no action that
/// could have suspended it.
pub fn needs_actions(server: &Server) -> bool {
    let quiet = match (server.launched_at, server.updated) {
        (None, _) => true,
        (Some(l), Some(u)) => u <= l + chrono::TimeDelta::seconds(60),
        _ => false,
    };
    !quiet
}

async fn facts(
    a: &Access,
    p: &ProjectAccess,
    cfg: &ExtractConfig,
    cache: Option<&ProjectCache>,
    server: Server,
) -> Result<ServerFacts, ExtractError> {
    let flavor = a.flavor_facts(server.flavor.as_ref()).await?;
    let image_id = match &server.image {
        Some(img) => {
            let found = a.image(p, &img.id).await?;
            Some(
                found
                    .and_then(|i| i.property("vmcatcher_event_ad_mpuri").map(str::to_string))
                    .unwrap_or_else(|| img.id.clone()),
            )
        }
        None => None,
    };
    let user_name = match &server.user_id {
        Some(u) => a.user_name(u).await?,
        None => None,
    };
    let actions = if cfg.compat.suspend_duration && needs_actions(&server) {
        match cache.and_then(|c| c.reuse(&server)) {
            Some(cached) => Some(cached),
            None => {
                let fetched_at = Utc::now();
                let got = a.instance_actions(p, &server.id).await?;
                if let (Some(c), Some(list)) = (cache, &got) {
                    c.fetched(&server, fetched_at, list);
                }
                got
            }
        }
    } else {
        None
    };
    Ok(ServerFacts { server, flavor, image_id, user_name, actions })
}

/// Nova's records for one project over `window`; with `caches.actions`, instance actions come
/// from the cache when still complete (`action_cache`), and what to store comes back with them;
/// with `caches.servers`, usage-only servers may come from the listed-server cache
/// (`server_cache`).
pub(crate) async fn extract(
    a: &Access,
    p: &ProjectAccess,
    cfg: &ExtractConfig,
    fqan: &Fqan,
    window: Window,
    caches: crate::Caches<'_>,
) -> Result<(Vec<Record>, ActionCacheUpdate), ExtractError> {
    let conc = cfg.per_project_concurrency.max(1);
    let mut changed = a.project_servers(p, window.from()).await?;
    changed.sort_by_key(|s| s.created);
    changed.retain(|s| in_window(s, &window));
    let usage = a.project_usage(p, window.from(), window.to()).await?;

    let wanted: Vec<&ServerUsage> = {
        let seen: HashSet<&str> = changed.iter().map(|s| s.id.as_str()).collect();
        let mut asked: HashSet<&str> = HashSet::new();
        usage
            .iter()
            .filter(|u| !seen.contains(u.instance_id.as_str()) && asked.insert(u.instance_id.as_str()))
            .collect()
    };

    // One batch lookup of the cached action lists: the changed servers that need theirs and
    // every usage-only candidate (its server is not known yet; a hit is used only if it needs it).
    let project_cache = caches.actions.filter(|_| cfg.compat.suspend_duration).map(|lookup| {
        let ids: Vec<&str> = changed
            .iter()
            .filter(|s| needs_actions(s))
            .map(|s| s.id.as_str())
            .chain(wanted.iter().map(|u| u.instance_id.as_str()))
            .collect();
        ProjectCache::load(lookup, &p.id, &ids)
    });
    let cache = project_cache.as_ref();

    // The changed servers' facts (mostly their instance actions) are read
    // while the usage-only servers are still being looked up.
    let changed_facts = futures::stream::iter(changed.into_iter().map(|s| facts(a, p, cfg, cache, s)))
        .buffered(conc)
        .collect::<Vec<_>>();
    let usage_facts = async {
        let ids: Vec<&str> = wanted.iter().map(|u| u.instance_id.as_str()).collect();
        let fetched = a.usage_only_servers(p, &ids, conc, caches.servers).await;
        let mut usage_only_servers = Vec::new();
        for (u, r) in wanted.iter().zip(fetched) {
            if let Some(s) = r?
                && s.created <= window.to()
            {
                usage_only_servers.push(((*u).clone(), s));
            }
        }
        let usage_facts: Vec<Result<(ServerFacts, ServerUsage), ExtractError>> = futures::stream::iter(
            usage_only_servers
                .into_iter()
                .map(|(u, s)| async move { facts(a, p, cfg, cache, s).await.map(|f| (f, u)) }),
        )
        .buffered(conc)
        .collect()
        .await;
        usage_facts.into_iter().collect::<Result<Vec<_>, _>>()
    };
    let (changed_facts, usage_facts) = futures::join!(changed_facts, usage_facts);
    let changed_facts = changed_facts.into_iter().collect::<Result<Vec<_>, _>>()?;
    let usage_facts = usage_facts?;

    let ctx = RecordCtx { cfg, project_id: &p.id, fqan: fqan.clone(), window };
    let mut warn = |key: &str, msg: String| a.warn_once(key, || msg);
    let (clouds, accs) = build(&ctx, changed_facts, usage_facts, &usage, &mut warn)?;
    let records = clouds.into_iter().map(Record::Cloud).chain(accs.into_iter().map(Record::Accelerator)).collect();
    Ok((records, project_cache.map(ProjectCache::finish).unwrap_or_default()))
}
