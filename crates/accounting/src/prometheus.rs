//! Energy records from Prometheus: cASO 5.2.2's `prometheus` extractor
//! (cASO 5.2.2 `caso/extract/prometheus.py`) — one `query_range` per server per chunk of ≤ 11,001
//! points, Σ µW × step / 3600 / 1e6 — over the servers the Nova path lists
//! (deleted ones included), with the fixes in COMPAT-NOTES.md (rows 23–31).

use std::time::Duration;

use apel::{ApelText, EnergyRecord, Fqan, Record, VmUuid, Window};
use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use openstack::nova::Server;
use serde_json::Value;

use crate::access::{Access, ProjectAccess};
use crate::config::{ExtractConfig, PrometheusConfig};
use crate::error::ExtractError;
use crate::nova::{in_window, server_end};
use crate::suspend::suspended_seconds;

/// Points per query at most: Prometheus refuses more than 11,000 steps.
pub const MAX_STEPS: i64 = 11_000;

/// The evaluation grid of a window: points `from + k·step`, `k < count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub from: DateTime<Utc>,
    pub step_s: i64,
    pub count: i64,
}

impl Grid {
    /// cASO's points (`count_window_end`: every `from + k·step ≤ to`) or
    /// ours (`< to`).
    pub fn new(w: &Window, step_s: u32, count_window_end: bool) -> Grid {
        let step_s = step_s.max(1) as i64;
        let span = (w.to() - w.from()).num_seconds().max(0);
        let count = if count_window_end { span / step_s + 1 } else { (span + step_s - 1) / step_s };
        Grid { from: w.from(), step_s, count }
    }
    pub fn at(&self, k: i64) -> DateTime<Utc> {
        self.from + TimeDelta::seconds(k * self.step_s)
    }
    /// The chunks `(first, last)` point indices, each ≤ 11,001 points (≤
    /// 11,000 steps), as cASO's `_split_time_chunks`.
    pub fn chunks(&self) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let mut k = 0;
        while k < self.count {
            let last = (k + MAX_STEPS).min(self.count - 1);
            out.push((k, last));
            k = last + 1;
        }
        out
    }
}

/// cASO's selector: `<metric>{<labels>,<uuid label>="<uuid>"}`.
pub fn selector(p: &PrometheusConfig, vm_uuid: &str, warn: &mut dyn FnMut(&str, String)) -> String {
    let mut labels: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match labels.iter_mut().find(|(x, _)| x == k) {
        Some(e) => e.1 = v.to_string(),
        None => labels.push((k.to_string(), v.to_string())),
    };
    for l in &p.labels {
        match l.split_once(':') {
            Some((k, v)) => set(k.trim(), v.trim()),
            None => warn(&format!("promlabel:{l}"), format!("invalid label filter {l:?}, expected key:value; ignored")),
        }
    }
    set(&p.vm_uuid_label_name, vm_uuid);
    let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", esc(v))).collect();
    format!("{}{{{}}}", p.prometheus_metric_name, inner.join(","))
}

fn unix(t: DateTime<Utc>) -> String {
    t.timestamp().to_string()
}

/// Why one `query_range` gave no samples; each names the request URL.
#[derive(Debug, thiserror::Error)]
enum QueryError {
    #[error("GET {url}: {source}")]
    Request { url: String, source: reqwest::Error },
    #[error("GET {url}: reading the answer: {source}")]
    Read { url: String, source: reqwest::Error },
    #[error("GET {url}: HTTP {status}: {message}")]
    Status { url: String, status: u16, message: String },
    #[error("GET {url}: not JSON: {source}")]
    NotJson { url: String, source: serde_json::Error },
    #[error("GET {url}: status {status} ({error})")]
    NotSuccess { url: String, status: Value, error: Value },
    #[error("GET {url}: no data.result array")]
    NoResult { url: String },
}

/// One query_range: adds each `value × factor` to `energy` in answer order
/// (cASO's running sum, so the result is bit-identical); the sample count.
#[allow(clippy::too_many_arguments)]
async fn query_chunk(
    http: &reqwest::Client,
    p: &PrometheusConfig,
    query: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    factor: f64,
    energy: &mut f64,
    warn: &(dyn Fn(&str, String) + Sync),
) -> Result<u64, QueryError> {
    let url = format!("{}/api/v1/query_range", p.prometheus_endpoint.trim_end_matches('/'));
    let params = [
        ("query", query.to_string()),
        ("start", unix(start)),
        ("end", unix(end)),
        ("step", p.prometheus_step_seconds.to_string()),
    ];
    let mut attempt = 0;
    let body: Value = loop {
        attempt += 1;
        let r = http.get(&url).query(&params).send().await;
        let retry = match &r {
            Ok(resp) => resp.status().is_server_error() || resp.status().as_u16() == 429,
            Err(e) => e.is_connect() || e.is_timeout() || e.is_request() || e.is_body(),
        };
        if retry && attempt < 3 {
            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            continue;
        }
        let resp = r.map_err(|source| QueryError::Request { url: url.clone(), source })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|source| QueryError::Read { url: url.clone(), source })?;
        if !status.is_success() {
            let msg = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| text.chars().take(300).collect());
            return Err(QueryError::Status { url, status: status.as_u16(), message: msg });
        }
        break serde_json::from_str(&text).map_err(|source| QueryError::NotJson { url: url.clone(), source })?;
    };
    if body["status"] != "success" {
        return Err(QueryError::NotSuccess { url, status: body["status"].clone(), error: body["error"].clone() });
    }
    let Some(result) = body["data"]["result"].as_array() else {
        return Err(QueryError::NoResult { url });
    };
    let mut n = 0u64;
    for series in result {
        for point in series["values"].as_array().into_iter().flatten() {
            match point[1].as_str().and_then(|s| s.parse::<f64>().ok()).filter(|v| v.is_finite()) {
                Some(v) => {
                    *energy += v * factor;
                    n += 1;
                }
                None => warn(
                    &format!("promvalue:{query}"),
                    format!("{query}: sample {point} is not a finite number; left out"),
                ),
            }
        }
    }
    Ok(n)
}

/// The energy (Wh, before the normalization factor) of one server over the
/// grid: chunks outside `[created, end]` are not asked.
#[allow(clippy::too_many_arguments)]
pub async fn energy_wh(
    http: &reqwest::Client,
    p: &PrometheusConfig,
    grid: &Grid,
    vm_uuid: &str,
    alive: (DateTime<Utc>, Option<DateTime<Utc>>),
    warn: &(dyn Fn(&str, String) + Sync),
) -> Result<(f64, u64), ExtractError> {
    let mut w = |k: &str, m: String| warn(k, m);
    let query = selector(p, vm_uuid, &mut w);
    let factor = p.prometheus_step_seconds as f64 / 3600.0 / 1_000_000.0;
    let (mut energy, mut samples) = (0.0, 0u64);
    for (a, b) in grid.chunks() {
        let (start, end) = (grid.at(a), grid.at(b));
        if end < alive.0 || alive.1.is_some_and(|e| start > e) {
            continue;
        }
        samples += query_chunk(http, p, &query, start, end, factor, &mut energy, warn).await.map_err(|e| {
            ExtractError::Prometheus {
                what: format!("server {vm_uuid}: energy {start} → {end}"),
                message: e.to_string(),
            }
        })?;
    }
    Ok((energy, samples))
}

/// A server as the energy records need it: from the changes-since listing
/// (current status, flavor) or, for servers unchanged since the window
/// start, from its os-simple-tenant-usage entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Vm {
    pub id: String,
    pub created: DateTime<Utc>,
    /// Deletion (or Nova's end) time, None while it exists.
    pub end: Option<DateTime<Utc>>,
    /// Lower-cased Nova status (usage entries: the vm_state).
    pub status: String,
    pub vcpus: u32,
    /// Seconds suspended in the window, when known without asking Nova.
    pub suspended: Option<u64>,
}

/// The figures of an energy record besides the energy.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub finished: bool,
    pub wall: u64,
    pub suspend: u64,
    pub cpu: u64,
    /// `CpuDuration / (wall × vCPUs)`: the share of the wall time not suspended.
    pub efficiency: f64,
}

/// Start `max(created, from)`; end the deletion (finished) when inside the
/// window, else `to`; CPU = (wall − suspended) × vCPUs.
pub fn span(vm: &Vm, w: &Window, suspend: u64) -> Span {
    let start = vm.created.max(w.from());
    let ended = vm.end.filter(|e| *e <= w.to());
    let end = ended.unwrap_or(w.to()).max(start);
    let wall = (end - start).num_seconds().max(0) as u64;
    let suspend = suspend.min(wall);
    let vcpus = vm.vcpus.max(1);
    let cpu = (wall - suspend) * vcpus as u64;
    let efficiency = if wall > 0 { cpu as f64 / (wall as f64 * vcpus as f64) } else { 0.0 };
    Span { start, end, finished: ended.is_some(), wall, suspend, cpu, efficiency }
}

/// The servers of a project that can have used energy in `w`, by creation:
/// the changes-since ones kept by [`in_window`], then the usage entries of
/// servers not among them (unchanged since `from`: their state held all window).
async fn servers(
    a: &Access,
    p: &ProjectAccess,
    cfg: &ExtractConfig,
    w: &Window,
) -> Result<Vec<(Vm, Option<Server>)>, ExtractError> {
    let mut changed = a.project_servers(p, w.from()).await?;
    changed.retain(|s| s.created < w.to() && in_window(s, w));
    let usage = a.project_usage(p, w.from(), w.to()).await?;
    let mut out: Vec<(Vm, Option<Server>)> = Vec::new();
    for s in changed {
        let f = a.flavor_facts(s.flavor.as_ref()).await?;
        let end = if s.launched_at.is_some() { server_end(&s) } else { Some(s.created) };
        let vm = Vm {
            id: s.id.clone(),
            created: s.created,
            end,
            status: s.status.to_lowercase(),
            vcpus: f.vcpus.max(1),
            suspended: None,
        };
        out.push((vm, Some(s)));
    }
    let inactive = cfg.compat.inactive_time == crate::config::InactiveTime::CountAsSuspended;
    for u in usage {
        let Some(started) = u.started_at else { continue };
        if started >= w.to() || out.iter().any(|(v, _)| v.id == u.instance_id) {
            continue;
        }
        let state = u.state.clone().unwrap_or_default().to_lowercase();
        let held = match state.as_str() {
            "paused" | "suspended" => true,
            "stopped" | "shelved" | "shelved_offloaded" => inactive,
            _ => false,
        };
        let vm = Vm {
            id: u.instance_id.clone(),
            created: started,
            end: u.ended_at,
            status: state,
            vcpus: u.vcpus.max(1),
            suspended: None,
        };
        let suspended = if held && cfg.compat.suspend_duration { Some(span(&vm, w, 0).wall) } else { Some(0) };
        out.push((Vm { suspended, ..vm }, None));
    }
    out.sort_by_key(|(v, _)| v.created);
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn one_server(
    a: &Access,
    p: &ProjectAccess,
    cfg: &ExtractConfig,
    http: &reqwest::Client,
    grid: &Grid,
    window: &Window,
    fqan: &Fqan,
    (vm, server): (Vm, Option<Server>),
) -> Result<Option<EnergyRecord>, ExtractError> {
    let pc = &cfg.prometheus;
    let warn = |k: &str, m: String| a.warn_once(k, || m);
    let (energy, _) = energy_wh(http, pc, grid, &vm.id, (vm.created, vm.end), &warn).await?;
    if energy.is_nan() || energy <= 0.0 {
        return Ok(None);
    }
    let suspend = match (vm.suspended, &server) {
        (Some(s), _) => s,
        (None, Some(s)) if cfg.compat.suspend_duration => {
            // Never launched, or not updated since: nothing to ask.
            let quiet = match (s.launched_at, s.updated) {
                (None, _) => true,
                (Some(l), Some(u)) => u <= l + TimeDelta::seconds(60),
                _ => false,
            };
            let sp = span(&vm, window, 0);
            match if quiet { None } else { a.instance_actions(p, &vm.id).await? } {
                Some(actions) => suspended_seconds(&actions, sp.start, sp.end, cfg.compat.inactive_time),
                None => 0,
            }
        }
        _ => 0,
    };
    let sp = span(&vm, window, suspend);
    let energy_wh = energy * pc.cpu_normalization_factor;
    let uuid = VmUuid::new(vm.id.clone()).map_err(|e| ExtractError::record(format!("server {}", vm.id), e))?;
    Ok(Some(EnergyRecord {
        exec_unit_id: uuid,
        start_exec_time: sp.start,
        end_exec_time: sp.end,
        energy_wh,
        work: if energy_wh > 0.0 { sp.cpu as f64 / energy_wh } else { 0.0 },
        efficiency: sp.efficiency,
        wall_clock_time_s: sp.wall,
        cpu_duration_s: sp.cpu,
        suspend_duration_s: sp.suspend,
        cpu_normalization_factor: pc.cpu_normalization_factor,
        exec_unit_finished: sp.finished,
        status: ApelText::lossy(&vm.status),
        owner: ApelText::lossy(fqan.as_str()),
        site_name: cfg.site_name.clone(),
        cloud_type: cfg.cloud_type.clone(),
        cloud_compute_service: Some(cfg.service_name.clone()),
    }))
}

/// Energy records for one project over `window`.
pub(crate) async fn extract(
    a: &Access,
    p: &ProjectAccess,
    cfg: &ExtractConfig,
    fqan: &Fqan,
    window: Window,
) -> Result<Vec<Record>, ExtractError> {
    let pc = &cfg.prometheus;
    if pc.prometheus_step_seconds == 0 {
        return Err(ExtractError::Prometheus { what: "prometheus_step_seconds".into(), message: "must be > 0".into() });
    }
    if !pc.prometheus_verify_ssl {
        tracing::warn!(endpoint = %pc.prometheus_endpoint, "Prometheus client: TLS certificate verification is DISABLED (prometheus_verify_ssl = false)");
    }
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(!pc.prometheus_verify_ssl)
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| ExtractError::Prometheus { what: "building the HTTP client".into(), message: e.to_string() })?;
    let vms = servers(a, p, cfg, &window).await?;
    let grid = Grid::new(&window, pc.prometheus_step_seconds, pc.count_window_end);
    let (http, grid, window) = (&http, &grid, &window);
    let got: Vec<Result<Option<EnergyRecord>, ExtractError>> =
        futures::stream::iter(vms.into_iter().map(|v| one_server(a, p, cfg, http, grid, window, fqan, v)))
            .buffered(cfg.per_project_concurrency.max(1))
            .collect()
            .await;
    let mut out = Vec::new();
    for r in got {
        if let Some(rec) = r? {
            out.push(Record::Energy(rec));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(from: i64, to: i64) -> Window {
        Window::new(DateTime::from_timestamp(from, 0).unwrap(), DateTime::from_timestamp(to, 0).unwrap()).unwrap()
    }

    #[test]
    fn grids_follow_casos_chunks_or_exclude_the_window_end() {
        let g = Grid::new(&w(0, 600), 30, true);
        assert_eq!((g.count, g.chunks()), (21, vec![(0, 20)]));
        let g = Grid::new(&w(0, 600), 30, false);
        assert_eq!((g.count, g.chunks()), (20, vec![(0, 19)]));
        // 11,000 steps + 1: cASO's chunks [0, 11000 steps], [11001 steps, end].
        let g = Grid::new(&w(0, 30 * 11_001), 30, true);
        assert_eq!(g.chunks(), vec![(0, 11_000), (11_001, 11_001)]);
    }

    #[test]
    fn the_selector_is_casos() {
        let p = PrometheusConfig::default();
        let mut warn = |_: &str, _: String| {};
        assert_eq!(
            selector(&p, "u-1", &mut warn),
            r#"prometheus_value{type_instance="scaph_process_power_microwatts",uuid="u-1"}"#
        );
    }
}
