//! The usage report: what the ledger holds, gathered ([`gather`]) into per-VO, per-month usage
//! (VM, CPU and GPU hours, storage, public IPs), message states, pending and quarantined
//! messages and the last runs' warnings, and rendered ([`render`]) as ONE self-contained HTML
//! page: inline CSS, inline SVG charts drawn here, a few lines of inline script, no network.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use apel::Record;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use ledger::{Ledger, Message, MessageCount, MessageState, Run, RunWarning, SnapshotFilter};

/// Why the report could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A ledger query failed.
    #[error(transparent)]
    Ledger(#[from] ledger::Error),
    /// A stored record body does not parse as an APEL message.
    #[error("ledger {kind} record {key}: stored body")]
    Body {
        /// The record kind.
        kind: String,
        /// The record key.
        key: String,
        /// Why it does not parse.
        #[source]
        source: apel::Error,
    },
    /// A stored record body holds no record.
    #[error("ledger {kind} record {key}: stored body holds no record")]
    Empty {
        /// The record kind.
        kind: String,
        /// The record key.
        key: String,
    },
}

type Result<T, E = ReportError> = std::result::Result<T, E>;

/// The usage of one VO in one month.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// VM-months: cloud records (one per VM and month).
    pub vms: u64,
    /// Wall time of the VMs in the month, hours: the increase of each VM's WallDuration over its
    /// previous month's record (APEL's SummariseVMs); for a VM's first record in the ledger,
    /// only its time within that month (a VM the ledger first sees years after it started does
    /// not put its whole life into one month).
    pub vm_hours: f64,
    /// Same for CpuDuration (a first record's CPU scaled by the same fraction as its wall).
    pub cpu_hours: f64,
    /// Accelerator records: AvailableDuration × Count, hours (each record's own duration, at
    /// most the month's length per device).
    pub gpu_hours: f64,
    /// Storage records measured in the month (latest state of each volume): capacity, GiB.
    pub storage_gib: f64,
    /// Public IP records measured in the month (latest per project and IP version): IP count.
    pub ips: u64,
}

impl Usage {
    fn add(&mut self, o: &Usage) {
        self.vms += o.vms;
        self.vm_hours += o.vm_hours;
        self.cpu_hours += o.cpu_hours;
        self.gpu_hours += o.gpu_hours;
        self.storage_gib += o.storage_gib;
        self.ips += o.ips;
    }
}

/// The metrics charted, in order: (id, title, unit, value).
const METRICS: [(&str, &str, &str, fn(&Usage) -> f64); 5] = [
    ("vm-hours", "VM-hours", "h", |u| u.vm_hours),
    ("cpu-hours", "CPU-hours", "h", |u| u.cpu_hours),
    ("gpu-hours", "GPU-hours", "h", |u| u.gpu_hours),
    ("storage", "Storage", "GiB", |u| u.storage_gib),
    ("ips", "Public IPs", "IPs", |u| u.ips as f64),
];

/// Messages sent per month (by the time AMS took them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentMonth {
    /// Messages AMS took in the month.
    pub messages: u64,
    /// Records those messages carried.
    pub records: u64,
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct ReportData {
    /// When the report was gathered.
    pub generated_at: DateTime<Utc>,
    /// Where the ledger read lives (its file path or connection description).
    pub ledger: String,
    /// The months shown start here (`--from`), if given.
    pub from: Option<DateTime<Utc>>,
    /// And end here (`--to`), if given.
    pub to: Option<DateTime<Utc>>,
    /// (VO, month "YYYY-MM") → usage; VO "" = records without a VO.
    pub usage: BTreeMap<(String, String), Usage>,
    /// Messages per state.
    pub messages: Vec<MessageCount>,
    /// Messages sent per month.
    pub sent_by_month: BTreeMap<String, SentMonth>,
    /// Spooled, not sent yet (oldest first).
    pub spooled: Vec<Message>,
    /// Latest record states that are in no live message.
    pub unsent_records: u64,
    /// Quarantined messages, newest first.
    pub quarantined: Vec<Message>,
    /// The last runs, newest first, with their warnings.
    pub runs: Vec<(Run, Vec<RunWarning>)>,
}

impl ReportData {
    /// The VOs with usage ("" for records without a VO).
    pub fn vos(&self) -> BTreeSet<&str> {
        self.usage.keys().map(|(vo, _)| vo.as_str()).collect()
    }
    /// The months with usage ("YYYY-MM").
    pub fn months(&self) -> BTreeSet<&str> {
        self.usage.keys().map(|(_, m)| m.as_str()).collect()
    }
    /// The usage of every VO and month added up.
    pub fn total(&self) -> Usage {
        let mut t = Usage::default();
        for u in self.usage.values() {
            t.add(u);
        }
        t
    }
}

/// True if month "YYYY-MM" overlaps [from, to).
fn month_in(month: &str, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> bool {
    let Some(start) = month_start(month) else { return false };
    let end = if start.month() == 12 {
        NaiveDate::from_ymd_opt(start.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(start.year(), start.month() + 1, 1)
    };
    let (Some(start), Some(end)) = (start.and_hms_opt(0, 0, 0), end.and_then(|e| e.and_hms_opt(0, 0, 0))) else {
        return false;
    };
    from.is_none_or(|f| end.and_utc() > f) && to.is_none_or(|t| start.and_utc() < t)
}

fn month_start(month: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()
}

/// [start, end) of month "YYYY-MM", UTC.
fn month_bounds(month: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = month_start(month)?;
    let next = if start.month() == 12 {
        NaiveDate::from_ymd_opt(start.year() + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(start.year(), start.month() + 1, 1)?
    };
    Some((start.and_hms_opt(0, 0, 0)?.and_utc(), next.and_hms_opt(0, 0, 0)?.and_utc()))
}

/// Seconds in month "YYYY-MM".
fn month_seconds(month: &str) -> Option<f64> {
    month_bounds(month).map(|(a, b)| (b - a).num_seconds() as f64)
}

/// Seconds of [start, end] within month "YYYY-MM" (None without a start time).
fn month_overlap(month: &str, start: Option<DateTime<Utc>>, end: DateTime<Utc>) -> Option<i64> {
    let (ms, me) = month_bounds(month)?;
    let (a, b) = (start?.max(ms), end.min(me));
    Some((b - a).num_seconds().max(0))
}

/// A VM's first record: its wall and CPU within the month (`within`: the seconds of its life
/// in the month), CPU scaled by the same fraction; the whole values when the start is unknown.
fn first_month(wall: u64, cpu: u64, within: Option<i64>) -> (f64, f64) {
    match within {
        Some(w) if (w as u64) < wall && wall > 0 => {
            let f = w as f64 / wall as f64;
            (w as f64, cpu as f64 * f)
        }
        _ => (wall as f64, cpu as f64),
    }
}

fn parse_one(body: &str, kind: &str, key: &str) -> Result<Record> {
    let (_, mut records) = apel::parse_message(body.as_bytes()).map_err(|source| ReportError::Body {
        kind: kind.into(),
        key: key.into(),
        source,
    })?;
    records.pop().ok_or_else(|| ReportError::Empty { kind: kind.into(), key: key.into() })
}

/// Reads the report's data from the ledger; usage of the months overlapping [from, to).
pub fn gather(
    ledger: &Ledger,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    runs: usize,
) -> Result<ReportData> {
    let mut usage: BTreeMap<(String, String), Usage> = BTreeMap::new();
    let snaps = |kind: &str| ledger.latest_snapshots(&SnapshotFilter { kind: Some(kind.into()), ..Default::default() });

    // Cloud: per VM, the month records in order; each month counts its increase, the first
    // only the VM's time within that month.
    let mut vms: HashMap<String, Vec<(String, Option<String>, u64, u64, Option<i64>)>> = HashMap::new();
    for s in snaps("cloud")? {
        let s = s.snapshot;
        let vm = s.key.split_once('/').map_or(s.key.as_str(), |(v, _)| v).to_string();
        let month = s.month.clone().unwrap_or_else(|| ledger::month_of(s.measured_at));
        let within = month_overlap(&month, s.start_time, s.end_time.unwrap_or(s.measured_at));
        vms.entry(vm).or_default().push((month, s.vo, s.wall_seconds.unwrap_or(0), s.cpu_seconds.unwrap_or(0), within));
    }
    let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for recs in vms.values_mut() {
        recs.sort_by(|a, b| a.0.cmp(&b.0));
        // APEL's per-VM deltas, except that a VM's first record counts only its time within the
        // month and a counter going down counts nothing (docs/report.md).
        let deltas = apel::summary::vm_deltas(recs.iter().map(|r| ([signed(r.2), signed(r.3)], true)));
        for ((month, vo, wall, cpu, within), d) in recs.iter().zip(deltas) {
            let (dw, dc) = if d.first {
                first_month(*wall, *cpu, *within)
            } else {
                (d.delta[0].max(0) as f64, d.delta[1].max(0) as f64)
            };
            if month_in(month, from, to) {
                let u = usage.entry((vo.clone().unwrap_or_default(), month.clone())).or_default();
                u.vms += 1;
                u.vm_hours += dw / 3600.0;
                u.cpu_hours += dc / 3600.0;
            }
        }
    }
    // Accelerators: AvailableDuration × Count of the month's record (cASO measures it within the
    // extraction window, not cumulatively), at most the month's length for each device.
    for s in snaps("accelerator")? {
        let s = s.snapshot;
        let month = s.month.clone().unwrap_or_else(|| ledger::month_of(s.measured_at));
        if !month_in(&month, from, to) {
            continue;
        }
        if let Record::Accelerator(a) = parse_one(&s.body, "accelerator", &s.key)? {
            let count = f64::from(a.count);
            let secs = (a.available_duration as f64).min(month_seconds(&month).unwrap_or(f64::INFINITY));
            usage.entry((s.vo.clone().unwrap_or_default(), month)).or_default().gpu_hours += secs * count / 3600.0;
        }
    }
    for kind in ["storage", "ip"] {
        for s in snaps(kind)? {
            let s = s.snapshot;
            let month = s.month.clone().unwrap_or_else(|| ledger::month_of(s.measured_at));
            if !month_in(&month, from, to) {
                continue;
            }
            let u = usage.entry((s.vo.clone().unwrap_or_default(), month)).or_default();
            match parse_one(&s.body, kind, &s.key)? {
                Record::Storage(st) => {
                    u.storage_gib +=
                        st.resource_capacity_allocated.unwrap_or(st.resource_capacity_used) as f64 / 1024f64.powi(3)
                }
                Record::Ip(ip) => u.ips += u64::from(ip.ip_count),
                _ => {}
            }
        }
    }

    let mut sent_by_month: BTreeMap<String, SentMonth> = BTreeMap::new();
    for state in [MessageState::Sent, MessageState::Acknowledged] {
        for m in ledger.messages_in_state(state)? {
            let Some(at) = m.sent_at else { continue };
            if from.is_some_and(|f| at < f) || to.is_some_and(|t| at >= t) {
                continue;
            }
            let e = sent_by_month.entry(ledger::month_of(at)).or_default();
            e.messages += 1;
            e.records += m.record_count;
        }
    }
    let mut quarantined = ledger.messages_in_state(MessageState::Quarantined)?;
    quarantined.sort_by_key(|m| std::cmp::Reverse(m.quarantined_at));
    let runs = ledger
        .runs(runs)?
        .into_iter()
        .map(|r| {
            let w = ledger.run_warnings(r.id)?;
            Ok((r, w))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ReportData {
        generated_at: Utc::now(),
        ledger: ledger.location().to_string(),
        from,
        to,
        usage,
        messages: ledger.message_counts()?,
        sent_by_month,
        spooled: ledger.messages_in_state(MessageState::Spooled)?,
        unsent_records: ledger
            .unsent_snapshots(&SnapshotFilter::default())?
            .iter()
            .filter(|s| s.snapshot.kind != "energy")
            .count() as u64,
        quarantined,
        runs,
    })
}

/// HTML-escapes text for element content and quoted attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn vo_label(vo: &str) -> &str {
    if vo.is_empty() { "(no VO)" } else { vo }
}

/// One decimal for hours and GiB, none for counts.
fn fmt_num(v: f64, unit: &str) -> String {
    let s = if unit == "IPs" { format!("{v:.0}") } else { format!("{v:.1}") };
    // Thousands separators for readability.
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(a, b)| (a, Some(b)));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

fn fmt_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "–".into(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

const PALETTE: [&str; 10] =
    ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

/// A "nice" axis maximum and step for `max`.
fn axis(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.25);
    }
    let raw = max / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

/// A stacked bar chart (months × VOs) of one metric, as inline SVG.
fn chart(out: &mut String, d: &ReportData, id: &str, title: &str, unit: &str, value: fn(&Usage) -> f64) {
    let months: Vec<&str> = d.months().into_iter().collect();
    let vos: Vec<&str> = d.vos().into_iter().collect();
    let totals: Vec<f64> = months
        .iter()
        .map(|m| vos.iter().map(|vo| d.usage.get(&(vo.to_string(), m.to_string())).map_or(0.0, value)).sum())
        .collect();
    let total: f64 = totals.iter().sum();
    let (ymax, step) = axis(totals.iter().copied().fold(0.0, f64::max));
    // The left margin holds the widest tick label (about 7 px a character at the tick size).
    let widest =
        (0..=((ymax / step).round() as usize)).map(|i| fmt_num(i as f64 * step, unit).len()).max().unwrap_or(1);
    let (w, h, right, top, bottom) = (560.0, 260.0, 12.0, 28.0, 44.0);
    let left = (widest as f64 * 7.0 + 14.0).max(40.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let _ = write!(
        out,
        r#"<figure class="chart"><figcaption>{t} <span class="unit">({u})</span> per month and VO</figcaption><svg class="chart" id="chart-{id}" data-metric="{id}" data-total="{total}" role="img" aria-label="{t} per month and VO" viewBox="0 0 {w} {h}" width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">"#,
        t = esc(title),
        u = esc(unit),
        id = esc(id),
    );
    // Axis and grid.
    let mut y = 0.0;
    while y <= ymax + step / 2.0 {
        let py = top + plot_h - y / ymax * plot_h;
        let _ = write!(
            out,
            r##"<line x1="{left}" x2="{x2}" y1="{py:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end" class="tick">{v}</text>"##,
            x2 = w - right,
            tx = left - 6.0,
            ty = py + 4.0,
            v = esc(&fmt_num(y, unit)),
        );
        y += step;
    }
    let band = plot_w / months.len().max(1) as f64;
    let bar_w = (band * 0.6).min(60.0);
    for (i, m) in months.iter().enumerate() {
        let x = left + band * i as f64 + (band - bar_w) / 2.0;
        let mut base = top + plot_h;
        for (j, vo) in vos.iter().enumerate() {
            let v = d.usage.get(&(vo.to_string(), m.to_string())).map_or(0.0, value);
            if v <= 0.0 {
                continue;
            }
            let bh = v / ymax * plot_h;
            base -= bh;
            let _ = write!(
                out,
                r#"<rect class="bar" x="{x:.1}" y="{base:.1}" width="{bar_w:.1}" height="{bh:.1}" fill="{c}" data-vo="{vo}" data-month="{m}" data-value="{v}"><title>{vo}, {m}: {vf} {u}</title></rect>"#,
                c = PALETTE[j % PALETTE.len()],
                vo = esc(vo_label(vo)),
                m = esc(m),
                vf = esc(&fmt_num(v, unit)),
                u = esc(unit),
            );
        }
        let _ = write!(
            out,
            r#"<text x="{cx:.1}" y="{ly}" text-anchor="middle" class="tick">{m}</text>"#,
            cx = left + band * i as f64 + band / 2.0,
            ly = top + plot_h + 18.0,
            m = esc(m),
        );
    }
    if total <= 0.0 {
        let _ = write!(
            out,
            r#"<text x="{cx}" y="{cy}" text-anchor="middle" class="empty">none in this period</text>"#,
            cx = left + plot_w / 2.0,
            cy = top + plot_h / 2.0
        );
    }
    let _ = write!(
        out,
        r##"<line x1="{left}" x2="{left}" y1="{top}" y2="{yb}" stroke="#888"/><line x1="{left}" x2="{x2}" y1="{yb}" y2="{yb}" stroke="#888"/></svg></figure>"##,
        yb = top + plot_h,
        x2 = w - right,
    );
}

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ccc;padding-bottom:.2em}
.meta{color:#666}.charts{display:flex;flex-wrap:wrap;gap:1em}figure.chart{margin:0;border:1px solid #e5e5e5;border-radius:6px;padding:.5em}
figcaption{font-weight:600;margin-bottom:.3em}.unit{color:#777;font-weight:400}svg .tick{font-size:11px;fill:#555}svg .empty{font-size:13px;fill:#999}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}th,td{border:1px solid #ddd;padding:.25em .6em}th{background:#f4f4f4;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}tr.total td{font-weight:700;background:#fafafa}
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-.1em}
.warn{color:#8a6d00}.error{color:#b00020}.ok{color:#2e7d32}code{font-size:.9em;word-break:break-all}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #e5e5e5;border-radius:6px;padding:.6em 1em;min-width:9em}.card b{display:block;font-size:1.5em}
"#;

/// Measures the charts once laid out and records it on each (`data-rendered-*`), so a headless
/// browser's DOM dump shows they were drawn.
const SCRIPT: &str = r#"
document.querySelectorAll('svg.chart').forEach(function(s){var r=s.getBoundingClientRect();s.setAttribute('data-rendered-width',Math.round(r.width));s.setAttribute('data-rendered-height',Math.round(r.height));var n=0;s.querySelectorAll('rect.bar').forEach(function(b){var q=b.getBoundingClientRect();if(q.width>0&&q.height>0)n++;});s.setAttribute('data-rendered-bars',n);});
document.body.setAttribute('data-rendered','yes');
"#;

/// The whole page.
pub fn render(d: &ReportData) -> String {
    let mut o = String::with_capacity(64 * 1024);
    header(&mut o, d);
    let total = d.total();
    cards(&mut o, &total);
    charts(&mut o, d);
    usage_table(&mut o, d, &total);
    sent(&mut o, d);
    pending(&mut o, d);
    runs(&mut o, d);
    let _ = writeln!(o, "</tbody></table><script>{SCRIPT}</script></body></html>");
    o
}

/// The page's head (style, title) and what it covers.
fn header(o: &mut String, d: &ReportData) {
    let period = match (d.from, d.to) {
        (None, None) => "all months".to_string(),
        (f, t) => format!(
            "{} to {}",
            f.map_or("the beginning".into(), |f| f.format("%Y-%m-%d").to_string()),
            t.map_or("now".into(), |t| t.format("%Y-%m-%d").to_string())
        ),
    };
    let _ = write!(
        o,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"><title>fedsite usage report</title><style>{STYLE}</style></head><body><h1>Usage report</h1><p class="meta">Ledger <code>{l}</code> · period {p} · generated {g}</p>"#,
        l = esc(&d.ledger),
        p = esc(&period),
        g = esc(&fmt_time(Some(d.generated_at))),
    );
}

/// The summary cards: each metric's total.
fn cards(o: &mut String, total: &Usage) {
    o.push_str(r#"<div class="cards">"#);
    for (id, title, unit, value) in METRICS {
        let v = value(total);
        let _ = write!(
            o,
            r#"<div class="card"><span>{t}</span><b id="total-{id}" data-value="{v}">{vf}</b><span class="unit">{u}</span></div>"#,
            t = esc(title),
            vf = esc(&fmt_num(v, unit)),
            u = esc(unit)
        );
    }
    let _ = write!(
        o,
        r#"<div class="card"><span>VM-months</span><b id="total-vms" data-value="{v}">{v}</b><span class="unit">records</span></div></div>"#,
        v = total.vms
    );
}

/// The legend and one chart per metric.
fn charts(o: &mut String, d: &ReportData) {
    o.push_str("<h2>Usage per VO and month</h2>");
    if d.usage.is_empty() {
        o.push_str("<p>No usage records in this period.</p>");
    }
    o.push_str(r#"<p class="legend">"#);
    for (j, vo) in d.vos().iter().enumerate() {
        let _ =
            write!(o, r#"<span><i style="background:{}"></i>{}</span>"#, PALETTE[j % PALETTE.len()], esc(vo_label(vo)));
    }
    o.push_str(r#"</p><div class="charts">"#);
    for (id, title, unit, value) in METRICS {
        chart(o, d, id, title, unit, value);
    }
    o.push_str("</div>");
}

/// The usage table per VO and month, with its total row and how it counts.
fn usage_table(o: &mut String, d: &ReportData, total: &Usage) {
    o.push_str(r#"<table id="usage"><thead><tr><th>VO</th><th>Month</th><th>VM-months</th>"#);
    for (_, title, unit, _) in METRICS {
        let _ = write!(o, "<th>{} ({})</th>", esc(title), esc(unit));
    }
    o.push_str("</tr></thead><tbody>");
    for ((vo, month), u) in &d.usage {
        let _ = write!(o, r#"<tr><td>{}</td><td>{}</td><td class="n">{}</td>"#, esc(vo_label(vo)), esc(month), u.vms);
        for (_, _, unit, value) in METRICS {
            let _ = write!(o, r#"<td class="n">{}</td>"#, esc(&fmt_num(value(u), unit)));
        }
        o.push_str("</tr>");
    }
    let _ = write!(o, r#"<tr class="total"><td colspan="2">Total</td><td class="n">{}</td>"#, total.vms);
    for (id, _, unit, value) in METRICS {
        let _ = write!(o, r#"<td class="n" id="table-total-{id}">{}</td>"#, esc(&fmt_num(value(total), unit)));
    }
    o.push_str("</tr></tbody></table>");
    o.push_str(r#"<p class="meta">VM and CPU hours count each VM's increase over its previous month's record, as APEL summarises them; a VM's first month in the ledger counts only its time within that month (its record carries its whole life since it started, which APEL would count in that month). GPU hours are each accelerator record's own duration in its month. Storage and IPs are the latest record of each volume / project measured in the month.</p>"#);
}

/// Message states and messages sent per month.
fn sent(o: &mut String, d: &ReportData) {
    o.push_str("<h2>Sent</h2>");
    o.push_str(r#"<p class="meta">A message is sent once AMS has returned its id (only then is it removed from the spool); APEL's loader does not report back to sites.</p>"#);
    o.push_str(r#"<table id="messages"><thead><tr><th>Kind</th><th>State</th><th>Messages</th><th>Records</th></tr></thead><tbody>"#);
    for c in &d.messages {
        let _ = write!(
            o,
            r#"<tr data-kind="{k}" data-state="{s}"><td>{k}</td><td>{s}</td><td class="n">{m}</td><td class="n">{r}</td></tr>"#,
            k = esc(&c.kind),
            s = esc(c.state.as_str()),
            m = c.messages,
            r = c.records
        );
    }
    if d.messages.is_empty() {
        o.push_str(r#"<tr><td colspan="4">No messages recorded.</td></tr>"#);
    }
    o.push_str("</tbody></table>");
    o.push_str(r#"<table id="sent-by-month"><thead><tr><th>Month sent</th><th>Messages</th><th>Records</th></tr></thead><tbody>"#);
    for (m, s) in &d.sent_by_month {
        let _ = write!(
            o,
            r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            esc(m),
            s.messages,
            s.records
        );
    }
    if d.sent_by_month.is_empty() {
        o.push_str(r#"<tr><td colspan="3">Nothing sent in this period.</td></tr>"#);
    } else {
        let (m, r) = d.sent_by_month.values().fold((0, 0), |(m, r), s| (m + s.messages, r + s.records));
        let _ = write!(
            o,
            r#"<tr><td>Total</td><td class="n" id="sent-total" data-value="{m}">{m}</td><td class="n">{r}</td></tr>"#
        );
    }
    o.push_str("</tbody></table>");
}

/// Spooled and quarantined messages.
fn pending(o: &mut String, d: &ReportData) {
    o.push_str("<h2>Pending</h2>");
    let _ = write!(
        o,
        r#"<ul><li><b id="pending-spooled">{}</b> messages spooled, not sent yet</li><li><b id="pending-records">{}</b> record states in no message yet</li></ul>"#,
        d.spooled.len(),
        d.unsent_records
    );
    if !d.spooled.is_empty() {
        o.push_str(r#"<table id="spooled"><thead><tr><th>Spool element</th><th>Kind</th><th>Records</th><th>Spooled at</th></tr></thead><tbody>"#);
        for m in d.spooled.iter().take(100) {
            let _ = write!(
                o,
                r#"<tr><td><code>{}</code></td><td>{}</td><td class="n">{}</td><td>{}</td></tr>"#,
                esc(&m.element),
                esc(&m.kind),
                m.record_count,
                esc(&fmt_time(Some(m.created_at)))
            );
        }
        if d.spooled.len() > 100 {
            let _ = write!(o, r#"<tr><td colspan="4">… and {} more</td></tr>"#, d.spooled.len() - 100);
        }
        o.push_str("</tbody></table>");
    }
    if !d.quarantined.is_empty() {
        let _ = write!(
            o,
            r#"<h3>Quarantined ({})</h3><table id="quarantined"><thead><tr><th>Spool element</th><th>Kind</th><th>Records</th><th>When</th><th>Reason</th></tr></thead><tbody>"#,
            d.quarantined.len()
        );
        for m in d.quarantined.iter().take(50) {
            let _ = write!(
                o,
                r#"<tr><td><code>{}</code></td><td>{}</td><td class="n">{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&m.element),
                esc(&m.kind),
                m.record_count,
                esc(&fmt_time(m.quarantined_at)),
                esc(m.reason.as_deref().unwrap_or(""))
            );
        }
        o.push_str("</tbody></table>");
    }
}

/// The last runs with their warnings (the table is closed by the caller, before the script).
fn runs(o: &mut String, d: &ReportData) {
    o.push_str(r#"<h2>Last runs</h2><table id="runs"><thead><tr><th>Run</th><th>Command</th><th>Started</th><th>Finished</th><th>Outcome</th><th>Window</th><th>Detail and warnings</th></tr></thead><tbody>"#);
    for (r, warnings) in &d.runs {
        let outcome = r.outcome.map_or("unfinished", |o| o.as_str());
        let class = match r.outcome {
            Some(ledger::RunOutcome::Succeeded) => "ok",
            Some(ledger::RunOutcome::Partial) | None => "warn",
            Some(ledger::RunOutcome::Failed) => "error",
        };
        let window = match (r.window_from, r.window_to) {
            (None, None) => "–".to_string(),
            (f, t) => format!(
                "{} → {}",
                f.map_or("checkpoints".into(), |f| f.format("%Y-%m-%d %H:%M").to_string()),
                t.map_or("–".into(), |t| t.format("%Y-%m-%d %H:%M").to_string())
            ),
        };
        let _ = write!(
            o,
            r#"<tr data-run="{id}"><td>{id}</td><td>{c}</td><td>{s}</td><td>{f}</td><td class="{class}">{out}</td><td>{w}</td><td>"#,
            id = r.id,
            c = esc(&r.command),
            s = esc(&fmt_time(Some(r.started_at))),
            f = esc(&fmt_time(r.finished_at)),
            out = esc(outcome),
            w = esc(&window),
        );
        if let Some(detail) = &r.detail {
            let _ = write!(o, "<div>{}</div>", esc(detail));
        }
        if !warnings.is_empty() {
            o.push_str(r#"<ul class="warnings">"#);
            for w in warnings {
                let class = if w.level == "error" { "error" } else { "warn" };
                let _ = write!(o, r#"<li class="{class}">{}: {}</li>"#, esc(&w.level), esc(&w.message));
            }
            o.push_str("</ul>");
        }
        o.push_str("</td></tr>");
    }
    if d.runs.is_empty() {
        o.push_str(r#"<tr><td colspan="7">No runs recorded.</td></tr>"#);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> ReportData {
        let mut usage = BTreeMap::new();
        usage.insert(
            ("<script>alert(1)</script>".to_string(), "2026-01".to_string()),
            Usage { vms: 2, vm_hours: 10.0, cpu_hours: 20.0, gpu_hours: 1.5, storage_gib: 3.0, ips: 1 },
        );
        usage.insert(
            ("vo.b\"'&".to_string(), "2026-02".to_string()),
            Usage { vms: 1, vm_hours: 1234.56, ..Default::default() },
        );
        ReportData {
            generated_at: Utc::now(),
            ledger: "/x/<ledger>".into(),
            from: None,
            to: None,
            usage,
            messages: vec![],
            sent_by_month: BTreeMap::new(),
            spooled: vec![],
            unsent_records: 0,
            quarantined: vec![],
            runs: vec![],
        }
    }

    #[test]
    fn every_value_is_escaped() {
        let html = render(&data());
        assert!(!html.contains("<script>alert"), "VO name must be escaped");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("vo.b&quot;&#39;&amp;"));
        assert!(html.contains("/x/&lt;ledger&gt;"));
        assert_eq!(html.matches("<script>").count(), 1, "only the page's own script");
    }

    #[test]
    fn totals_and_bars() {
        let d = data();
        let html = render(&d);
        assert!(html.contains(r#"id="total-vm-hours" data-value="1244.56">1,244.6<"#), "{html}");
        assert!(html.contains(r#"id="total-vms" data-value="3">3<"#));
        // VM-hours: one bar per (VO, month) with a value; GPU-hours: one.
        let vm_chart = html.split(r#"id="chart-vm-hours""#).nth(1).unwrap().split("</svg>").next().unwrap();
        assert_eq!(vm_chart.matches(r#"<rect class="bar""#).count(), 2);
        let gpu_chart = html.split(r#"id="chart-gpu-hours""#).nth(1).unwrap().split("</svg>").next().unwrap();
        assert_eq!(gpu_chart.matches(r#"<rect class="bar""#).count(), 1);
    }

    #[test]
    fn months_overlapping_the_period() {
        let t = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
        assert!(month_in("2026-01", t("2026-01-31T23:00:00Z"), t("2026-02-01T00:00:00Z")));
        assert!(!month_in("2026-02", t("2026-01-01T00:00:00Z"), t("2026-02-01T00:00:00Z")));
        assert!(!month_in("2025-12", t("2026-01-01T00:00:00Z"), None));
        assert!(month_in("2025-12", None, None));
        assert!(!month_in("garbage", None, None));
    }

    fn snapshot(
        kind: &str,
        key: &str,
        month: &str,
        start: &str,
        measured: &str,
        wall: u64,
        body: String,
    ) -> ledger::Snapshot {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        ledger::Snapshot {
            kind: kind.into(),
            key: key.into(),
            project_id: "p1".into(),
            vo: Some("vo.a".into()),
            site: "SITE".into(),
            measured_at: t(measured),
            month: Some(month.into()),
            start_time: Some(t(start)),
            end_time: None,
            wall_seconds: Some(wall),
            cpu_seconds: Some(wall / 2),
            status: Some("started".into()),
            body,
            fingerprint: None,
        }
    }

    fn gpu_body(vm: &str, month: u32, available: u64) -> String {
        let r = apel::AcceleratorRecord {
            measurement_month: month,
            measurement_year: 2023,
            associated_record_type: apel::ApelText::new("cloud").unwrap(),
            associated_record: apel::ApelText::new(vm).unwrap(),
            global_user_name: None,
            fqan: apel::Fqan::new("vo.a").unwrap(),
            site_name: apel::SiteName::new("SITE").unwrap(),
            count: 2,
            cores: None,
            active_duration: None,
            available_duration: available,
            benchmark_type: None,
            benchmark: None,
            accelerator_type: apel::ApelText::new("GPU").unwrap(),
            model: apel::ApelText::new("A100").unwrap(),
            cloud_compute_service: None,
            cloud_type: None,
        };
        String::from_utf8(
            apel::render_message(apel::RecordKind::Accelerator, &[Record::Accelerator(r)], apel::Style::Fedsite)
                .unwrap(),
        )
        .unwrap()
    }

    /// A VM the ledger first sees in 2023-05, running since 2021: that month counts its time
    /// in May only (not two years), June its increase; its GPUs the same way.
    #[test]
    fn a_vms_first_month_counts_only_its_time_in_that_month() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path().join("l.sqlite")).unwrap();
        let may_end = 1_685_577_600u64 - 1_609_459_200; // 2021-01-01 → 2023-06-01
        let june = 30 * 86_400;
        for (month, measured, wall) in
            [("2023-05", "2023-06-01T00:00:00Z", may_end), ("2023-06", "2023-07-01T00:00:00Z", may_end + june)]
        {
            let m: u32 = month[5..].parse().unwrap();
            l.upsert_snapshot(
                &snapshot("cloud", &format!("vm1/{month}"), month, "2021-01-01T00:00:00Z", measured, wall, "x".into()),
                None,
            )
            .unwrap();
            l.upsert_snapshot(
                &snapshot(
                    "accelerator",
                    &format!("vm1/{month}"),
                    month,
                    "2021-01-01T00:00:00Z",
                    measured,
                    wall,
                    gpu_body("vm1", m, wall),
                ),
                None,
            )
            .unwrap();
        }
        let d = gather(&l, None, None, 5).unwrap();
        let may = d.usage[&("vo.a".to_string(), "2023-05".to_string())];
        let june_u = d.usage[&("vo.a".to_string(), "2023-06".to_string())];
        assert_eq!(may.vm_hours, 31.0 * 24.0, "May's own hours, not the VM's life");
        assert!((may.cpu_hours - 31.0 * 12.0).abs() < 1e-6, "{}", may.cpu_hours);
        assert_eq!(june_u.vm_hours, 30.0 * 24.0);
        // An accelerator record carrying more than its month (a malformed or cumulative one) is
        // held to the month: 2 GPUs × 31 days, and June's 30.
        assert_eq!(may.gpu_hours, 2.0 * 31.0 * 24.0, "2 GPUs, at most May's hours");
        assert_eq!(june_u.gpu_hours, 2.0 * 30.0 * 24.0);
        assert!(render(&d).contains("first month in the ledger counts only its time within that month"));
    }

    /// docs/report.md: a counter lower than the previous month's counts nothing (APEL would
    /// add the negative difference); the month after counts its increase over the lower value.
    #[test]
    fn a_counter_that_went_down_counts_zero() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path().join("l.sqlite")).unwrap();
        let (may, day) = (31 * 86_400u64, 86_400u64);
        // Started 2023-05-01: May counts its 31 days; June's counter fell to 1 day (the VM's
        // counters were reset); July's rose by 30 days over June's.
        for (month, measured, wall) in [
            ("2023-05", "2023-06-01T00:00:00Z", may),
            ("2023-06", "2023-07-01T00:00:00Z", day),
            ("2023-07", "2023-08-01T00:00:00Z", day + 30 * day),
        ] {
            l.upsert_snapshot(
                &snapshot("cloud", &format!("vm1/{month}"), month, "2023-05-01T00:00:00Z", measured, wall, "x".into()),
                None,
            )
            .unwrap();
        }
        let d = gather(&l, None, None, 5).unwrap();
        let at = |m: &str| d.usage[&("vo.a".to_string(), m.to_string())];
        assert_eq!(at("2023-05").vm_hours, 31.0 * 24.0);
        assert_eq!(at("2023-06").vm_hours, 0.0, "a decrease counts zero, not negative");
        assert_eq!(at("2023-06").cpu_hours, 0.0, "CPU too");
        assert_eq!(at("2023-06").vms, 1, "the VM-month is still counted");
        assert_eq!(at("2023-07").vm_hours, 30.0 * 24.0, "July: its increase over June's lower counter");
        assert_eq!(at("2023-07").cpu_hours, 15.0 * 24.0);
        assert_eq!(d.total().vm_hours, 61.0 * 24.0);
    }

    #[test]
    fn tick_labels_fit_left_of_the_axis() {
        let mut d = data();
        d.usage.insert(("vo.c".into(), "2026-03".into()), Usage { vm_hours: 1_234_567.0, ..Default::default() });
        let mut out = String::new();
        chart(&mut out, &d, "vm-hours", "VM-hours", "h", |u| u.vm_hours);
        // The widest label, 1,500,000.0, ends 6 px left of the axis and starts right of 0.
        let axis_x: f64 = out.split(r#"<line x1=""#).nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
        assert!(axis_x - 6.0 >= "1,500,000.0".len() as f64 * 6.5, "axis at {axis_x}");
    }

    #[test]
    fn axis_is_round() {
        assert_eq!(axis(0.0), (1.0, 0.25));
        assert_eq!(axis(9.0), (10.0, 2.5));
        assert_eq!(axis(1234.0), (1500.0, 500.0));
    }
}
