//! `fedsite bench`: fedsite side by side with the tools it replaces, on a simulated site with
//! latency: `accounting extract` vs real cASO 5.2.2, and `send` vs SSM's one-message-per-request
//! argo-ams-library path. Wall, CPU, peak RSS (wait4), HTTP requests by endpoint, the round-trip
//! floor; a table on stdout and JSON (docs/performance.md).

use openstack::Paged;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};

/// The Python side of the sending comparison (SSM's send loop).
const SSM_DRIVER: &str = include_str!("bench_ssm.py");
/// The Keystone tag both extractors select projects by.
const TAG: &str = "caso";
/// Project properties holding the VO, in fedsite's default order.
const VO_KEYS: [&str; 3] = ["egi.VO", "egi.eu:VO", "VO"];
/// The VO given (through voms.json, to both tools) to tagged projects with none.
const NO_VO: &str = "bench.novo";
/// The tools' names in the report.
const FEDSITE: &str = "fedsite";
const FEDSITE_NO_SUSPEND: &str = "fedsite --no-suspend-duration";
/// The default extraction again, on the first run's ledger and spool, same window: what an
/// hourly run gains from the ledger (the instance-action cache).
const FEDSITE_SECOND: &str = "fedsite (second run, same ledger)";
const CASO: &str = "caso";

/// Largest page Nova, Cinder and Glance give by default (`osapi_max_limit`, `api_limit_max`).
const MAX_PAGE: usize = 1000;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Built-in scenario of the sim: tiny, small, medium or large.
    #[arg(long, default_value = "medium")]
    pub scenario: String,
    /// Latency the sim adds to every request (every service, AMS included).
    #[arg(long, default_value_t = 10)]
    pub latency_ms: u64,
    /// Requests each simulated service serves at once.
    #[arg(long, default_value_t = 8)]
    pub max_concurrent: usize,
    /// Runs of each tool (alternating fedsite, cASO); medians are reported.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Extraction window: this many days before the sim's reference time.
    #[arg(long, default_value_t = 30)]
    pub window_days: i64,
    /// Also write the results as JSON here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Spooled messages sent by each sender.
    #[arg(long, default_value_t = 10_000)]
    pub messages: usize,
    /// Cloud records per spooled message.
    #[arg(long, default_value_t = 5)]
    pub message_records: usize,
    /// Skip real cASO (fedsite's extraction only).
    #[arg(long)]
    pub no_caso: bool,
    /// Skip the sending comparison.
    #[arg(long)]
    pub no_send: bool,
    /// Skip the Python (SSM) sender; fedsite send still runs.
    #[arg(long)]
    pub no_ssm: bool,
    /// A cASO or SSM run taking longer is killed (and reported as such).
    #[arg(long, default_value_t = 3600)]
    pub peer_timeout_secs: u64,
    /// The Python venv holding cASO 5.2.2 and argo-ams-library (scripts/peers.sh venv).
    #[arg(long, env = "FEDSITE_VENV", default_value = ".venv")]
    pub venv: PathBuf,
    /// `fedsite accounting extract --concurrency` (projects at once).
    #[arg(long, default_value_t = 8)]
    pub extract_concurrency: usize,
    /// `fedsite send --concurrency` (publish requests in flight); the sim's cap by default.
    #[arg(long)]
    pub send_concurrency: Option<usize>,
    /// The fedsite binary whose `accounting extract` and `send` are measured (another build,
    /// e.g. a baseline); this one by default. The sim is always this binary.
    #[arg(long, value_name = "PATH")]
    pub fedsite_bin: Option<PathBuf>,
    /// Working directory (spools, ledgers, logs); a temporary one, removed at the end, by default.
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Internal: run the command after `--` as a child, wait4 it and write its usage (JSON)
    /// here. Every measured tool runs under this small helper process: Linux counts the RSS
    /// of the process that forked a child into the child's ru_maxrss, and the bench itself
    /// holds the census.
    #[arg(long, hide = true, value_name = "PATH")]
    pub measure_child: Option<PathBuf>,
    #[arg(long, hide = true, default_value_t = 3600)]
    pub measure_timeout_secs: u64,
    /// Instead of accounting: the information task of a simulated federation (issue #15),
    /// `fedsite central run` against real cloud-info-provider 1.2 once per site, one after
    /// another (`bench_central`).
    #[arg(long)]
    pub central_info: bool,
    /// `--central-info`: how many simulated sites.
    #[arg(long, default_value_t = 100)]
    pub central_sites: usize,
    /// `--central-info`: the site files the federation is made from.
    #[arg(long, value_name = "DIR", default_value = "testdata/catchall-2026-07/sites")]
    pub central_sites_dir: PathBuf,
    /// `--central-info`: `fedsite central run --max-sites`.
    #[arg(long, default_value_t = 32)]
    pub central_max_sites: usize,
    /// Instead of accounting: one `fedsite central run --task info` over a simulated federation
    /// (`--central-sites`, `--central-sites-dir`) with four sites broken (down, 403 on one VO's
    /// project, 20× slower, Swift refusing writes), against the slowest healthy site's own
    /// `fedsite info` run: the run's wall and the bound, 1.5 × that plus the timeout.
    #[arg(long, conflicts_with = "central_info")]
    pub central_faults: bool,
    /// `--central-faults`: the run's `--site-timeout`, seconds.
    #[arg(long, default_value_t = 10)]
    pub central_site_timeout: u64,
    #[arg(last = true, hide = true)]
    pub child: Vec<String>,
}

// ------------------------------------------------------------------ measuring a child

/// What one child process used.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Usage {
    pub wall_s: f64,
    pub user_s: f64,
    pub sys_s: f64,
    pub cpu_s: f64,
    /// ru_maxrss of the child (and the children it waited for), MiB.
    pub max_rss_mib: f64,
    /// Exit code, or -signal.
    pub exit: i32,
    pub timed_out: bool,
    /// CPU the sim process spent meanwhile (answering this tool), s.
    #[serde(default)]
    pub sim_cpu_s: f64,
}

/// user+sys CPU seconds of a running process, from /proc (0 when unreadable).
fn process_cpu_s(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}

/// Runs `cmd` (stdout/stderr to `log_base`.out/.err) under the measuring helper
/// (`fedsite-bench --measure-child`), which waits for it with wait4; killed after `timeout`.
pub(crate) fn run_measured(cmd: Command, log_base: &Path, timeout: Duration) -> Result<(Usage, String, String)> {
    let out_path = log_base.with_extension("out");
    let err_path = log_base.with_extension("err");
    let usage_path = log_base.with_extension("usage.json");
    let _ = std::fs::remove_file(&usage_path);
    let mut helper = Command::new(std::env::current_exe().context("locating the fedsite-bench binary")?);
    helper
        .args(["--log", "warn", "--measure-timeout-secs", &timeout.as_secs().max(1).to_string()])
        .arg("--measure-child")
        .arg(&usage_path)
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => helper.env(k, v),
            None => helper.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        helper.current_dir(d);
    }
    helper
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).with_context(|| format!("creating {}", out_path.display()))?)
        .stderr(std::fs::File::create(&err_path).with_context(|| format!("creating {}", err_path.display()))?);
    let outer = wait_measured(helper, timeout + Duration::from_secs(60))?;
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let usage = match std::fs::read_to_string(&usage_path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("parsing {}", usage_path.display()))?,
        Err(_) => bail!("the measuring helper wrote no usage (exit {}):\n{}", outer.exit, tail(&read(&err_path), 20)),
    };
    Ok((usage, read(&out_path), read(&err_path)))
}

/// The helper's side: runs `child` (stdio inherited), waits with wait4, writes the usage.
fn measure_child(out: &Path, child: &[String], timeout: Duration) -> Result<ExitCode> {
    let (program, args) = child.split_first().context("--measure-child needs a command after --")?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    let usage = wait_measured(cmd, timeout)?;
    std::fs::write(out, serde_json::to_string(&usage)?).with_context(|| format!("writing {}", out.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// Spawns `cmd` as it is set up, waits for it with wait4 for its rusage; killed after `timeout`.
fn wait_measured(mut cmd: Command, timeout: Duration) -> Result<Usage> {
    let started = Instant::now();
    let child = cmd.spawn().with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut status: libc::c_int = 0;
        // SAFETY: plain FFI call with valid pointers to locals; `pid` is our unreaped child.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        let wall = started.elapsed();
        let _ = tx.send((r, status, ru, wall));
    });
    let mut timed_out = false;
    let (r, status, ru, wall) = match rx.recv_timeout(timeout) {
        Ok(v) => v,
        Err(_) => {
            timed_out = true;
            // SAFETY: signalling our own child, not yet reaped (the waiter thread holds it).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            rx.recv().context("waiting for a killed child")?
        }
    };
    drop(child);
    if r < 0 {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let exit = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -libc::WTERMSIG(status) };
    let usage = Usage {
        wall_s: wall.as_secs_f64(),
        user_s: tv(ru.ru_utime),
        sys_s: tv(ru.ru_stime),
        cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
        max_rss_mib: ru.ru_maxrss as f64 / 1024.0,
        exit,
        timed_out,
        sim_cpu_s: 0.0,
    };
    Ok(usage)
}

// ------------------------------------------------------------------ the sim process

/// `fedsite sim` as a child; killed when dropped.
struct SimChild {
    child: std::process::Child,
    base_url: String,
    clouds_yaml: PathBuf,
    ams_data: String,
    ams_authn_port: u16,
    ams_dir: PathBuf,
}

impl Drop for SimChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim(args: &BenchArgs, work: &Path) -> Result<SimChild> {
    let profile = work.join("sim-profile.toml");
    let mut p = String::new();
    for s in ["identity", "compute", "volume", "network", "image", "prometheus", "ams", "ams-authn"] {
        p.push_str(&format!("[{s}]\nlatency_ms = {}\nmax_concurrent = {}\n", args.latency_ms, args.max_concurrent));
    }
    std::fs::write(&profile, p)?;
    let clouds_yaml = work.join("clouds.yaml");
    let ams_dir = work.join("ams");
    let exe = crate::fedsite_exe()?;
    let mut child = Command::new(exe)
        .args(["sim", "--scenario", &args.scenario, "--ams", "--log", "warn"])
        .arg("--profile-file")
        .arg(&profile)
        .arg("--ams-cert-dir")
        .arg(&ams_dir)
        .arg("--clouds-yaml")
        .arg(&clouds_yaml)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting fedsite sim")?;
    // stderr carries the AMS addresses (and later warnings: keep draining it).
    let stderr = child.stderr.take().context("sim stderr")?;
    let (atx, arx) = std::sync::mpsc::channel::<(String, String)>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("AMS data API:") {
                let _ = atx.send(("data".into(), rest.split_whitespace().next().unwrap_or("").to_string()));
            } else if let Some(rest) = line.strip_prefix("AMS authn URL:") {
                let _ = atx.send(("authn".into(), rest.split_whitespace().next().unwrap_or("").to_string()));
            } else if !line.trim().is_empty() {
                eprintln!("[sim] {line}");
            }
        }
    });
    let stdout = child.stdout.take().context("sim stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut clouds = 0;
    let mut auth_url = None;
    while clouds < 2 {
        match lines.next() {
            Some(Ok(line)) => {
                let t = line.trim_start();
                if t.starts_with("identity_api_version:") {
                    clouds += 1;
                } else if let Some(u) = t.strip_prefix("auth_url:") {
                    auth_url = Some(u.trim().to_string());
                }
            }
            _ => {
                let _ = child.kill();
                bail!("fedsite sim --scenario {} exited before printing its clouds.yaml", args.scenario);
            }
        }
    }
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    let auth_url = auth_url.context("the sim's clouds.yaml has no auth_url")?;
    let base_url = auth_url.trim_end_matches('/').trim_end_matches("/identity/v3").to_string();
    let (mut data, mut authn) = (None, None);
    while data.is_none() || authn.is_none() {
        match arx.recv_timeout(Duration::from_secs(30)) {
            Ok((k, v)) if k == "data" => data = Some(v),
            Ok((_, v)) => authn = Some(v),
            Err(_) => bail!("fedsite sim --ams printed no AMS addresses"),
        }
    }
    let (data, authn) = (data.unwrap_or_default(), authn.unwrap_or_default());
    let ams_data = data.trim_start_matches("https://").trim_end_matches('/').to_string();
    let ams_authn_port = authn
        .trim_start_matches("https://")
        .split('/')
        .next()
        .and_then(|hp| hp.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .with_context(|| format!("AMS authn URL {authn:?} has no port"))?;
    Ok(SimChild { child, base_url, clouds_yaml, ams_data, ams_authn_port, ams_dir })
}

/// The control API of the sim (`/sim/*`).
struct Control {
    http: reqwest::Client,
    base: String,
}

impl Control {
    async fn now(&self) -> Result<DateTime<Utc>> {
        let v: Value = self.http.get(format!("{}/sim/now", self.base)).send().await?.error_for_status()?.json().await?;
        let s = v["now"].as_str().context("/sim/now has no `now`")?;
        Ok(DateTime::parse_from_rfc3339(s).with_context(|| format!("/sim/now: {s:?}"))?.with_timezone(&Utc))
    }
    async fn clear(&self) -> Result<()> {
        self.http.delete(format!("{}/sim/requests", self.base)).send().await?.error_for_status()?;
        Ok(())
    }
    /// The request log since the last clear, by endpoint and by service.
    async fn requests(&self) -> Result<Requests> {
        let log: Vec<Value> =
            self.http.get(format!("{}/sim/requests", self.base)).send().await?.error_for_status()?.json().await?;
        let mut r = Requests::default();
        for e in &log {
            let method = e["method"].as_str().unwrap_or("?");
            let uri = e["uri"].as_str().unwrap_or("");
            let service = e["service"].as_str().unwrap_or("other").to_string();
            let endpoint = format!("{method} {}", endpoint_template(uri));
            let cpu_s = e["cpu_us"].as_u64().context("a sim request log line without cpu_us")? as f64 / 1e6;
            *r.sim_cpu_by_endpoint.entry(endpoint.clone()).or_default() += cpu_s;
            *r.by_endpoint.entry(endpoint).or_default() += 1;
            *r.by_service.entry(service).or_default() += 1;
            if e["status"].as_u64().is_some_and(|s| s >= 400) {
                r.errors += 1;
            }
            r.total += 1;
        }
        Ok(r)
    }
}

/// Requests of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Requests {
    pub total: u64,
    /// Answers ≥ 400.
    pub errors: u64,
    pub by_service: BTreeMap<String, u64>,
    pub by_endpoint: BTreeMap<String, u64>,
    /// CPU seconds the sim spent answering each endpoint (its handlers, not the latency).
    pub sim_cpu_by_endpoint: BTreeMap<String, f64>,
}

/// `/compute/v2.1/servers/<id>?x` → `/compute/v2.1/servers/{id}`: ids (hex-ish segments, and
/// the segment after a collection name) become `{id}`.
pub fn endpoint_template(uri: &str) -> String {
    let path = uri.split('?').next().unwrap_or("");
    let mut out = Vec::new();
    let mut prev = "";
    for seg in path.split('/') {
        let hexish = seg.len() >= 8
            && seg.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
            && seg.chars().any(|c| c.is_ascii_digit());
        let after_collection =
            matches!(prev, "users" | "projects" | "servers" | "flavors" | "images" | "os-simple-tenant-usage")
                && !matches!(seg, "" | "detail");
        out.push(if hexish || after_collection { "{id}" } else { seg });
        prev = seg;
    }
    out.join("/")
}

// ------------------------------------------------------------------ census and floor

/// What the data of the window is, read with the fewest requests (an admin pass before the
/// timed runs), and the round-trip floor derived from it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Floor {
    pub tagged_projects: usize,
    pub flavors: usize,
    pub images: usize,
    /// Servers changed since the window start (all projects; deleted ones included).
    pub servers_changed: usize,
    /// Servers listed without changes-since (alive now).
    pub servers_alive: usize,
    pub usage_entries: usize,
    /// Usage entries of tagged projects whose server is not in the changes-since list.
    pub usage_only: usize,
    pub volumes: usize,
    pub floating_ips: usize,
    /// Servers of tagged projects with records whose instance actions are needed
    /// (SuspendDuration; those never launched or not updated since launch are not).
    pub instance_actions: usize,
    /// Projects owning those servers: Nova shows a server's actions to its project (or an
    /// admin), so each needs a project-scoped token.
    pub projects_with_actions: usize,
    /// The records fedsite writes by default (SuspendDuration from instance actions).
    pub with_suspend: FloorVariant,
    /// The records cASO writes (no SuspendDuration: no instance actions).
    pub without_suspend: FloorVariant,
    // The default variant's figures, flat (what the table's floor line shows).
    pub requests_by_service: BTreeMap<String, usize>,
    pub requests: usize,
    pub floor_s: f64,
    pub per_service_bound_s: f64,
    pub chain_bound_s: f64,
}

/// Minimal requests per service: the token, projects, one user list; listings in pages of
/// 1,000; the usage-only servers by id or by one more listing, whichever is fewer; for
/// SuspendDuration one project token per project and one instance-action list per server
/// that needs it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FloorVariant {
    pub requests_by_service: BTreeMap<String, usize>,
    pub requests: usize,
    /// requests × latency ÷ concurrency (the definition).
    pub floor_s: f64,
    /// A tighter lower bound: max over services of (their requests × latency ÷ concurrency).
    pub per_service_bound_s: f64,
    /// The dependent chain: token, the longest listing's pages one after another, one
    /// per-object call.
    pub chain_bound_s: f64,
}

fn pages(n: usize) -> usize {
    n.div_ceil(MAX_PAGE).max(1)
}

async fn census(
    clouds_yaml: &Path,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    latency_ms: u64,
    conc: usize,
) -> Result<(Floor, BTreeMap<String, String>)> {
    use openstack::cinder::ListVolumes;
    use openstack::glance::ListImages;
    use openstack::keystone::ListProjects;
    use openstack::neutron::ListFloatingIps;
    use openstack::nova::{FlavorVisibility, ListFlavors, ListServers, ListTenantUsages};
    let text = std::fs::read_to_string(clouds_yaml)?;
    let cfg =
        openstack::CloudConfig::from_clouds_yaml(&text, None, "sim-accounting", &clouds_yaml.display().to_string())?;
    let s = openstack::Session::connect(&cfg).await.context("authenticating to the sim (sim-accounting)")?;
    let projects = ListProjects::tagged(TAG.to_string()).list(&s).await?;
    let mut vo_of = BTreeMap::new();
    for p in &projects {
        let vo = VO_KEYS
            .iter()
            .find_map(|k| p.extra.get(*k).and_then(Value::as_str).filter(|v| !v.is_empty()))
            .unwrap_or(NO_VO);
        vo_of.insert(p.id.clone(), vo.to_string());
    }
    let tagged: HashSet<&str> = projects.iter().map(|p| p.id.as_str()).collect();
    let flavors = ListFlavors { is_public: Some(FlavorVisibility::All), ..Default::default() }.list(&s).await?.len();
    let images = ListImages::default().list(&s).await?.len();
    let changed = ListServers { all_tenants: true, changes_since: Some(from), ..Default::default() }.list(&s).await?;
    let alive = ListServers { all_tenants: true, ..Default::default() }.list(&s).await?;
    let usages = ListTenantUsages { start: from, end: to, detailed: true, limit: None }.list(&s).await?;
    let volumes = ListVolumes { all_tenants: true, ..Default::default() }.list(&s).await?.len();
    let fips = ListFloatingIps::default().list(&s).await?.len();

    let window = apel::Window::new(from, to).map_err(|e| anyhow::anyhow!("{e}"))?;
    let in_records: Vec<&openstack::nova::Server> = changed
        .iter()
        .filter(|sv| sv.tenant_id.as_deref().is_some_and(|t| tagged.contains(t)))
        .filter(|sv| accounting::nova::in_window(sv, &window))
        .collect();
    let seen: HashSet<&str> = in_records.iter().map(|sv| sv.id.as_str()).collect();
    let alive_by_id: HashMap<&str, &openstack::nova::Server> = alive.iter().map(|sv| (sv.id.as_str(), sv)).collect();
    let mut usage_entries = 0;
    let mut usage_only: Vec<&openstack::nova::Server> = Vec::new();
    let mut asked = HashSet::new();
    for t in &usages {
        usage_entries += t.server_usages.len();
        if !tagged.contains(t.tenant_id.as_str()) {
            continue;
        }
        for u in &t.server_usages {
            if !seen.contains(u.instance_id.as_str())
                && asked.insert(u.instance_id.as_str())
                && let Some(sv) = alive_by_id.get(u.instance_id.as_str()).filter(|sv| sv.created <= to)
            {
                usage_only.push(sv);
            }
        }
    }
    let instance_actions =
        in_records.iter().chain(usage_only.iter()).filter(|sv| accounting::nova::needs_actions(sv)).count();

    let projects_with_actions = in_records
        .iter()
        .chain(usage_only.iter())
        .filter(|sv| accounting::nova::needs_actions(sv))
        .filter_map(|sv| sv.tenant_id.as_deref())
        .collect::<HashSet<_>>()
        .len();
    let l = latency_ms as f64 / 1000.0;
    let c = conc.max(1) as f64;
    let longest = [pages(changed.len()), pages(usage_entries), pages(alive.len()), pages(volumes), pages(images)]
        .into_iter()
        .max()
        .unwrap_or(1);
    let variant = |suspend: bool| {
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        // token, projects?tags, users (+ project tokens for the instance actions)
        by.insert("identity".into(), 3 + if suspend { projects_with_actions } else { 0 });
        by.insert(
            "compute".into(),
            pages(flavors)
                + pages(changed.len())
                + pages(usage_entries)
                + asked.len().min(pages(alive.len()))
                + if suspend { instance_actions } else { 0 },
        );
        by.insert("image".into(), pages(images));
        by.insert("volume".into(), pages(volumes));
        by.insert("network".into(), 1);
        let requests: usize = by.values().sum();
        FloorVariant {
            per_service_bound_s: by.values().map(|n| *n as f64 * l / c).fold(0.0, f64::max),
            chain_bound_s: (1 + longest + 1) as f64 * l,
            requests_by_service: by,
            requests,
            floor_s: requests as f64 * l / c,
        }
    };
    let (with_suspend, without_suspend) = (variant(true), variant(false));
    let floor = Floor {
        tagged_projects: projects.len(),
        flavors,
        images,
        servers_changed: changed.len(),
        servers_alive: alive.len(),
        usage_entries,
        usage_only: asked.len(),
        volumes,
        floating_ips: fips,
        instance_actions,
        projects_with_actions,
        requests_by_service: with_suspend.requests_by_service.clone(),
        requests: with_suspend.requests,
        floor_s: with_suspend.floor_s,
        per_service_bound_s: with_suspend.per_service_bound_s,
        chain_bound_s: with_suspend.chain_bound_s,
        with_suspend,
        without_suspend,
    };
    Ok((floor, vo_of))
}

// ------------------------------------------------------------------ runs

/// One run of one tool.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub tool: String,
    pub usage: Usage,
    pub requests: Requests,
    /// Records in the messages it spooled (extraction) or messages it sent (sending).
    pub output: usize,
    pub messages: usize,
    /// fedsite's CPU seconds by stage (`accounting::stage`, measured from its tracing spans;
    /// `other`: the rest of `usage.cpu_s`: the runtime, HTTP and TLS, start and exit).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cpu_by_stage: BTreeMap<String, f64>,
    /// Anything else worth keeping (the SSM driver's timings).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub extra: Value,
}

/// The CPU seconds by stage a fedsite child wrote (fedsite's `stages`), with `other`: the rest of
/// its `cpu_s`. Empty when it wrote none (a `--fedsite-bin` build without the measurement).
fn cpu_by_stage(path: &Path, cpu_s: f64) -> BTreeMap<String, f64> {
    let Ok(text) = std::fs::read_to_string(path) else { return BTreeMap::new() };
    let Ok(mut m) = serde_json::from_str::<BTreeMap<String, f64>>(&text) else { return BTreeMap::new() };
    let staged: f64 = m.values().sum();
    m.insert("other".into(), (cpu_s - staged).max(0.0));
    m
}

/// Records and messages in a dirq spool: parsed with the APEL loader rules, else (cASO writes
/// non-ASCII user names the loader refuses) counted by their separators.
fn spool_contents(dir: &Path) -> Result<(usize, usize)> {
    if !dir.exists() {
        return Ok((0, 0));
    }
    let q = messaging::dirq::QueueSimple::open(dir)?;
    let (mut records, mut messages) = (0, 0);
    for name in q.iter()? {
        let path = dir.join(name.as_str());
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        records += match apel::parse_message(&bytes) {
            Ok((_, recs)) => recs.len(),
            Err(_) => count_records(&String::from_utf8_lossy(&bytes)),
        };
        messages += 1;
    }
    Ok((records, messages))
}

/// Records in an APEL message without validating them.
fn count_records(text: &str) -> usize {
    let t = text.trim_start();
    if t.starts_with('{') {
        serde_json::from_str::<Value>(t).ok().and_then(|v| v["UsageRecords"].as_array().map(Vec::len)).unwrap_or(0)
    } else if t.starts_with('<') {
        t.matches("<sr:StorageUsageRecord>").count() + t.matches("<sr:StorageUsageRecord ").count()
    } else {
        t.trim_end().split("\n%%\n").filter(|r| r.contains(':')).count()
    }
}

/// Which `fedsite accounting extract` run (see [`Ctx::fedsite_extract`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extract {
    First,
    NoSuspend,
    Second,
}

struct Ctx<'a> {
    args: &'a BenchArgs,
    sim: &'a SimChild,
    control: &'a Control,
    rt: &'a tokio::runtime::Handle,
    work: &'a Path,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    voms_json: PathBuf,
    venv: PathBuf,
}

impl Ctx<'_> {
    fn fedsite_bin(&self) -> Result<PathBuf> {
        match &self.args.fedsite_bin {
            Some(p) => Ok(std::path::absolute(p)?),
            None => crate::fedsite_exe(),
        }
    }

    fn measured(
        &self,
        tool: &str,
        cmd: Command,
        dir: &Path,
        timeout: Duration,
    ) -> Result<(Usage, Requests, String, String)> {
        self.rt.block_on(self.control.clear())?;
        let sim_before = process_cpu_s(self.sim.child.id());
        let (mut usage, out, err) = run_measured(cmd, &dir.join(tool), timeout)?;
        usage.sim_cpu_s = process_cpu_s(self.sim.child.id()) - sim_before;
        let requests = self.rt.block_on(self.control.requests())?;
        // Kept at once, so a later failure loses nothing measured.
        let line = json!({"tool": tool, "dir": dir, "usage": usage, "requests": requests}).to_string() + "\n";
        let log = self.work.join("measurements.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        std::io::Write::write_all(&mut f, line.as_bytes())?;
        Ok((usage, requests, out, err))
    }

    /// `fedsite accounting extract`: the default (with SuspendDuration) on a fresh ledger and
    /// spool, `--no-suspend-duration` on its own, or the default again on the default run's
    /// ledger and spool (`Extract::Second`; its records and messages are those it added).
    fn fedsite_extract(&self, i: usize, mode: Extract) -> Result<Run> {
        let suspend = mode != Extract::NoSuspend;
        let (tool, log) = match mode {
            Extract::First => (FEDSITE, "fedsite"),
            Extract::NoSuspend => (FEDSITE_NO_SUSPEND, "fedsite"),
            Extract::Second => (FEDSITE_SECOND, "fedsite-second"),
        };
        let dir = self.work.join(format!("run{i}-fedsite{}", if suspend { "" } else { "-nosuspend" }));
        std::fs::create_dir_all(&dir)?;
        let before = spool_contents(&dir.join("outgoing"))?;
        let stages = dir.join(format!("{log}-cpu-stages.json"));
        let _ = std::fs::remove_file(&stages);
        let mut cmd = Command::new(self.fedsite_bin()?);
        cmd.args(["accounting", "extract", "--os-cloud", "sim-accounting", "--site-name", "TEST-SITE"])
            .args(["--service-name", "TEST-SITE-cloud", "--log", "warn"])
            .args(["--from", &fmt_time(self.from), "--to", &fmt_time(self.to)])
            .args(["--concurrency", &self.args.extract_concurrency.to_string()])
            .arg("--voms-json")
            .arg(&self.voms_json)
            .arg("--spool")
            .arg(dir.join("outgoing"))
            .arg("--ledger")
            .arg(dir.join("ledger.sqlite"))
            .env("OS_CLIENT_CONFIG_FILE", &self.sim.clouds_yaml)
            .env(accounting::stage::CPU_ENV, &stages)
            .env_remove("OS_CLOUD")
            .current_dir(&dir);
        if !suspend {
            cmd.arg("--no-suspend-duration");
        }
        let (usage, requests, _out, err) =
            self.measured(log, cmd, &dir, Duration::from_secs(self.args.peer_timeout_secs))?;
        if usage.exit != 0 {
            bail!("fedsite accounting extract failed ({}):\n{}", usage.exit, tail(&err, 40));
        }
        let (records, messages) = spool_contents(&dir.join("outgoing"))?;
        let (records, messages) = (records.saturating_sub(before.0), messages.saturating_sub(before.1));
        let cpu_by_stage = cpu_by_stage(&stages, usage.cpu_s);
        Ok(Run { tool: tool.into(), usage, requests, output: records, messages, cpu_by_stage, extra: Value::Null })
    }

    fn caso_extract(&self, i: usize) -> Result<Run> {
        let dir = self.work.join(format!("run{i}-caso"));
        std::fs::create_dir_all(&dir)?;
        let conf = dir.join("caso.conf");
        let w = dir.display();
        let auth_url = format!("{}/identity/v3", self.sim.base_url);
        std::fs::write(
            &conf,
            format!(
                "[DEFAULT]\nsite_name = TEST-SITE\nservice_name = TEST-SITE-cloud\nmessengers = ssm\n\
                 spooldir = {w}/spool\nlock_path = {w}/spool\nextractor = nova,cinder,neutron\n\
                 vo_property = {vo}\ncaso_tag = {TAG}\nmapping_file = {map}\ndebug = false\n\n\
                 [keystone_auth]\nauth_type = v3password\nauth_url = {auth_url}\nusername = {user}\n\
                 password = {pw}\nuser_domain_id = default\nproject_domain_id = default\n\n\
                 [ssm]\noutput_path = {w}/outgoing\nmax_size = 100\n",
                vo = VO_KEYS[0],
                map = self.voms_json.display(),
                user = sim::scenario::ACCOUNTING_USER,
                pw = sim::scenario::PASSWORD,
            ),
        )?;
        let bin = self.venv.join("bin");
        let mut cmd = Command::new(bin.join("caso-extract"));
        cmd.arg("--config-file")
            .arg(&conf)
            .args(["--extract-from", &fmt_time(self.from), "--extract-to", &fmt_time(self.to)])
            .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
            .env("VIRTUAL_ENV", &self.venv)
            .env("TZ", "UTC")
            .env("PYTHONWARNINGS", "ignore")
            .env_remove("OS_CLOUD")
            .current_dir(&dir);
        let (usage, requests, _out, err) =
            self.measured("caso", cmd, &dir, Duration::from_secs(self.args.peer_timeout_secs))?;
        if usage.exit != 0 && !usage.timed_out {
            bail!("caso-extract failed ({}):\n{}", usage.exit, tail(&err, 40));
        }
        let (records, messages) = spool_contents(&dir.join("outgoing"))?;
        Ok(Run {
            tool: CASO.into(),
            usage,
            requests,
            output: records,
            messages,
            cpu_by_stage: BTreeMap::new(),
            extra: Value::Null,
        })
    }

    /// A spool of `n` cloud messages of `k` records each (distinct VMUUIDs).
    fn make_spool(&self, dir: &Path) -> Result<()> {
        let q = messaging::dirq::QueueSimple::open(dir)?;
        let start = self.to.timestamp() - 86_400;
        for m in 0..self.args.messages {
            let mut text = String::from("APEL-cloud-message: v0.4\n");
            for r in 0..self.args.message_records.max(1) {
                if r > 0 {
                    text.push_str("%%\n");
                }
                let n = m * self.args.message_records.max(1) + r;
                text.push_str(&format!(
                    "VMUUID: {:08x}-0000-4000-8000-{n:012x}\nSiteName: TEST-SITE\nCloudComputeService: TEST-SITE-cloud\n\
                     MachineName: vm-{n}\nLocalUserId: u-{u}\nLocalGroupId: 0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b\n\
                     GlobalUserName: user{u}@example.org\nFQAN: vo.example.org\nStatus: started\nStartTime: {start}\n\
                     EndTime: 0\nWallDuration: 86400\nCpuDuration: 172800\nCpuCount: 2\nNetworkType: None\n\
                     NetworkInbound: 0\nNetworkOutbound: 0\nPublicIPCount: 1\nMemory: 4096\nDisk: 30\n\
                     BenchmarkType: HEPscore23\nBenchmark: 12.5\nStorageRecordId: None\nImageId: img-{i}\n\
                     CloudType: fedsite/bench (OpenStack)\n",
                    n as u32,
                    u = n % 50,
                    i = n % 40,
                ));
            }
            q.add(text.as_bytes())?;
        }
        Ok(())
    }

    fn fedsite_send(&self, i: usize) -> Result<Run> {
        let dir = self.work.join(format!("send{i}-fedsite"));
        let spool = dir.join("outgoing");
        std::fs::create_dir_all(&spool)?;
        self.make_spool(&spool)?;
        let a = &self.sim.ams_dir;
        let mut cmd = Command::new(self.fedsite_bin()?);
        cmd.args(["send", "--log", "warn", "--project", sim::ams::DEFAULT_PROJECT, "--topic", sim::ams::DEFAULT_TOPIC])
            .args(["--ams-url", &format!("https://{}", self.sim.ams_data)])
            .args(["--authn-url", &format!("https://localhost:{}", self.sim.ams_authn_port)])
            .arg("--cert")
            .arg(a.join("client-cert.pem"))
            .arg("--key")
            .arg(a.join("client-key.pem"))
            .arg("--ca")
            .arg(a.join("ca.pem"))
            .args(["--concurrency", &self.args.send_concurrency.unwrap_or(self.args.max_concurrent).to_string()])
            .arg("--spool")
            .arg(&spool)
            .env_remove("FEDSITE_AMS_TOKEN")
            .current_dir(&dir);
        let (usage, requests, out, err) =
            self.measured("fedsite-send", cmd, &dir, Duration::from_secs(self.args.peer_timeout_secs))?;
        if usage.exit != 0 {
            bail!("fedsite send failed ({}):\n{out}\n{}", usage.exit, tail(&err, 40));
        }
        let left = messaging::dirq::QueueSimple::open(&spool)?.count()?;
        if left != 0 {
            bail!("fedsite send left {left} of {} messages in the spool:\n{out}", self.args.messages);
        }
        Ok(Run {
            tool: "fedsite send".into(),
            usage,
            requests,
            output: self.args.messages,
            messages: self.args.messages,
            cpu_by_stage: BTreeMap::new(),
            extra: json!({"summary": out.trim()}),
        })
    }

    fn ssm_send(&self, i: usize) -> Result<Run> {
        let dir = self.work.join(format!("send{i}-ssm"));
        let spool = dir.join("outgoing");
        std::fs::create_dir_all(&spool)?;
        self.make_spool(&spool)?;
        let script = dir.join("ssm_send.py");
        std::fs::write(&script, SSM_DRIVER)?;
        let a = &self.sim.ams_dir;
        let bin = self.venv.join("bin");
        let mut cmd = Command::new(bin.join("python"));
        cmd.arg(&script)
            .arg(&spool)
            .arg(self.sim.ams_authn_port.to_string())
            .arg(&self.sim.ams_data)
            .arg(a.join("client-cert.pem"))
            .arg(a.join("client-key.pem"))
            .args([sim::ams::DEFAULT_PROJECT, sim::ams::DEFAULT_TOPIC])
            .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
            .env("REQUESTS_CA_BUNDLE", a.join("ca.pem"))
            .env("NO_PROXY", "localhost,127.0.0.1")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env("PYTHONWARNINGS", "ignore")
            .current_dir(&dir);
        let (usage, requests, out, err) =
            self.measured("ssm-send", cmd, &dir, Duration::from_secs(self.args.peer_timeout_secs))?;
        if usage.exit != 0 && !usage.timed_out {
            bail!("the SSM send loop failed ({}):\n{}", usage.exit, tail(&err, 40));
        }
        let extra: Value = out.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
        let sent = extra["sent"].as_u64().unwrap_or(0) as usize;
        if !usage.timed_out && sent != self.args.messages {
            bail!("the SSM send loop sent {sent} of {} messages:\n{out}\n{}", self.args.messages, tail(&err, 20));
        }
        Ok(Run {
            tool: "ssm (argo-ams-library)".into(),
            usage,
            requests,
            output: sent,
            messages: sent,
            cpu_by_stage: BTreeMap::new(),
            extra,
        })
    }
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ------------------------------------------------------------------ report

/// Medians of one tool's runs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub tool: String,
    pub runs: usize,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub max_rss_mib: f64,
    /// CPU the sim spent answering (median).
    pub sim_cpu_s: f64,
    pub requests: f64,
    pub output: usize,
    pub messages: usize,
    pub timed_out: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn summarise(tool: &str, runs: &[Run]) -> Summary {
    Summary {
        tool: tool.into(),
        runs: runs.len(),
        wall_s: median(runs.iter().map(|r| r.usage.wall_s).collect()),
        cpu_s: median(runs.iter().map(|r| r.usage.cpu_s).collect()),
        max_rss_mib: median(runs.iter().map(|r| r.usage.max_rss_mib).collect()),
        sim_cpu_s: median(runs.iter().map(|r| r.usage.sim_cpu_s).collect()),
        requests: median(runs.iter().map(|r| r.requests.total as f64).collect()),
        output: runs.first().map_or(0, |r| r.output),
        messages: runs.first().map_or(0, |r| r.messages),
        timed_out: runs.iter().any(|r| r.usage.timed_out),
    }
}

/// Everything one `fedsite bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: &'static str,
    pub started: DateTime<Utc>,
    pub scenario: String,
    pub latency_ms: u64,
    pub max_concurrent: usize,
    pub window: [DateTime<Utc>; 2],
    pub host: Value,
    pub extraction: Vec<Summary>,
    /// fedsite ÷ cASO (wall, cpu, rss, requests); cASO ÷ fedsite as `speedup`.
    pub extraction_ratios: Value,
    /// The same for `fedsite --no-suspend-duration` (the data cASO reads).
    pub extraction_ratios_no_suspend: Value,
    /// The same for the second run on the first run's ledger (instance actions cached).
    pub extraction_ratios_second_run: Value,
    pub floor: Floor,
    /// fedsite's wall time ÷ the floor (with SuspendDuration).
    pub fedsite_vs_floor: f64,
    /// `--no-suspend-duration`'s wall time ÷ its floor.
    pub fedsite_no_suspend_vs_floor: f64,
    pub sending: Vec<Summary>,
    pub sending_ratios: Value,
    pub runs: Vec<Run>,
}

fn ratio(a: f64, b: f64) -> Value {
    if b > 0.0 { json!(a / b) } else { Value::Null }
}

fn ratios(fed: &Summary, other: &Summary) -> Value {
    json!({
        "wall": ratio(fed.wall_s, other.wall_s),
        "cpu": ratio(fed.cpu_s, other.cpu_s),
        "max_rss": ratio(fed.max_rss_mib, other.max_rss_mib),
        "requests": ratio(fed.requests, other.requests),
        "speedup": ratio(other.wall_s, fed.wall_s),
    })
}

fn fmt_ratio(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |x| if x >= 10.0 { format!("{x:.0}") } else { format!("{x:.3}") })
}

/// The table printed on stdout.
pub fn render_table(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "fedsite bench: scenario {}, latency {} ms, {} concurrent per service, window {} → {}\n\n",
        r.scenario,
        r.latency_ms,
        r.max_concurrent,
        r.window[0].format("%Y-%m-%d"),
        r.window[1].format("%Y-%m-%d")
    ));
    let table = |s: &mut String, title: &str, rows: &[Summary], out: &str| {
        s.push_str(&format!("{title}\n"));
        s.push_str(&format!(
            "  {:<34} {:>4} {:>9} {:>8} {:>8} {:>10} {:>9} {:>8} {:>8}\n",
            "tool", "runs", "wall s", "cpu s", "rss MiB", "sim cpu s", "requests", out, "messages"
        ));
        for x in rows {
            s.push_str(&format!(
                "  {:<34} {:>4} {:>9.2} {:>8.2} {:>8.1} {:>10.2} {:>9.0} {:>8} {:>8}{}\n",
                x.tool,
                x.runs,
                x.wall_s,
                x.cpu_s,
                x.max_rss_mib,
                x.sim_cpu_s,
                x.requests,
                x.output,
                x.messages,
                if x.timed_out { "  (killed at the timeout)" } else { "" }
            ));
        }
    };
    table(&mut s, "extraction (nova, cinder, neutron)", &r.extraction, "records");
    for (name, x) in [
        (FEDSITE, &r.extraction_ratios),
        (FEDSITE_SECOND, &r.extraction_ratios_second_run),
        (FEDSITE_NO_SUSPEND, &r.extraction_ratios_no_suspend),
    ] {
        if x.is_null() {
            continue;
        }
        s.push_str(&format!(
            "  {name}/cASO: wall {}  cpu {}  rss {}  requests {}  (cASO takes {}× as long)\n",
            fmt_ratio(&x["wall"]),
            fmt_ratio(&x["cpu"]),
            fmt_ratio(&x["max_rss"]),
            fmt_ratio(&x["requests"]),
            fmt_ratio(&x["speedup"])
        ));
    }
    let f = &r.floor;
    for (name, v, vs) in [
        ("with SuspendDuration", &f.with_suspend, r.fedsite_vs_floor),
        ("without (--no-suspend-duration)", &f.without_suspend, r.fedsite_no_suspend_vs_floor),
    ] {
        s.push_str(&format!(
            "  round-trip floor {name}: {} requests × {} ms ÷ {} = {:.3} s (per service {:.3} s, chain {:.3} s); fedsite = {:.2}× the floor\n",
            v.requests, r.latency_ms, r.max_concurrent, v.floor_s, v.per_service_bound_s, v.chain_bound_s, vs
        ));
    }
    s.push_str(&format!(
        "    data: {} tagged projects, {} servers changed in the window, {} alive, {} usage entries ({} usage-only), {} instance-action lists ({} projects), {} volumes, {} floating IPs, {} flavors, {} images\n",
        f.tagged_projects, f.servers_changed, f.servers_alive, f.usage_entries, f.usage_only, f.instance_actions, f.projects_with_actions, f.volumes, f.floating_ips, f.flavors, f.images
    ));
    if let Some(fed) = r.runs.iter().find(|x| x.tool == FEDSITE) {
        s.push_str("  fedsite requests by endpoint (first run):\n");
        for (k, v) in top(&fed.requests.by_endpoint, 12) {
            s.push_str(&format!("    {v:>7}  {k}\n"));
        }
    }
    if let Some(fed) = r.runs.iter().find(|x| x.tool == FEDSITE_SECOND) {
        s.push_str(&format!("  {FEDSITE_SECOND} requests by endpoint (first run):\n"));
        for (k, v) in top(&fed.requests.by_endpoint, 12) {
            s.push_str(&format!("    {v:>7}  {k}\n"));
        }
    }
    for tool in [FEDSITE, FEDSITE_SECOND, FEDSITE_NO_SUSPEND] {
        let Some(run) = r.runs.iter().find(|x| x.tool == tool) else { continue };
        if !run.cpu_by_stage.is_empty() {
            let stages: Vec<String> = accounting::stage::ALL
                .iter()
                .chain(["other"].iter())
                .map(|k| format!("{k} {:.2}", run.cpu_by_stage.get(*k).copied().unwrap_or(0.0)))
                .collect();
            s.push_str(&format!("  {tool} cpu s by stage (first run): {}\n", stages.join(", ")));
        }
        let mut sim: Vec<(&String, &f64)> = run.requests.sim_cpu_by_endpoint.iter().collect();
        sim.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        if !sim.is_empty() {
            s.push_str(&format!("  {tool} sim cpu s by endpoint (first run):\n"));
            for (k, v) in sim.into_iter().take(6) {
                let n = run.requests.by_endpoint.get(k).copied().unwrap_or(0);
                s.push_str(&format!("    {v:>7.2}  {k} ({n} requests)\n"));
            }
        }
    }
    if let Some(c) = r.runs.iter().find(|x| x.tool == CASO) {
        s.push_str("  cASO requests by endpoint (first run):\n");
        for (k, v) in top(&c.requests.by_endpoint, 12) {
            s.push_str(&format!("    {v:>7}  {k}\n"));
        }
    }
    if !r.sending.is_empty() {
        s.push('\n');
        table(&mut s, "sending (signed, to AMS)", &r.sending, "sent");
        if !r.sending_ratios.is_null() {
            let x = &r.sending_ratios;
            s.push_str(&format!(
                "  fedsite/SSM: wall {}  cpu {}  requests {}  (SSM takes {}× as long)\n",
                fmt_ratio(&x["wall"]),
                fmt_ratio(&x["cpu"]),
                fmt_ratio(&x["requests"]),
                fmt_ratio(&x["speedup"])
            ));
        }
    }
    s
}

fn top(m: &BTreeMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = m.iter().map(|(k, v)| (k.clone(), *v)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

fn host_info() -> Value {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_string()));
    json!({"cpus": cpus, "loadavg_at_start": load.trim(), "cpu_model": model})
}

// ------------------------------------------------------------------ entry

pub async fn run(args: BenchArgs) -> Result<ExitCode> {
    if let Some(out) = &args.measure_child {
        let timeout = Duration::from_secs(args.measure_timeout_secs.max(1));
        let (out, child) = (out.clone(), args.child.clone());
        return tokio::task::spawn_blocking(move || measure_child(&out, &child, timeout)).await.context("measuring")?;
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let rt = tokio::runtime::Handle::current();
    if args.central_faults {
        return tokio::task::spawn_blocking(move || central_faults(&args, &rt))
            .await
            .context("the bench thread panicked")?;
    }
    if args.central_info {
        return tokio::task::spawn_blocking(move || central_info(&args, &rt))
            .await
            .context("the bench thread panicked")?;
    }
    let report = tokio::task::spawn_blocking(move || bench(&args, &rt).map(|r| (r, args)))
        .await
        .context("the bench thread panicked")??;
    let (report, args) = report;
    print!("{}", render_table(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("\nJSON: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The work directory: `--work-dir` (created, kept), else a temporary one removed when the
/// returned guard drops.
fn work_dir(args: &BenchArgs) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    match &args.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            Ok((d.clone(), None))
        }
        None => {
            let tmp = tempfile::tempdir()?;
            Ok((tmp.path().to_path_buf(), Some(tmp)))
        }
    }
}

/// A central mode's JSON (`--json`): the host, the latency and its figures under `key`.
fn write_central_json(args: &BenchArgs, key: &str, figures: &impl serde::Serialize) -> Result<()> {
    if let Some(path) = &args.json {
        let doc = serde_json::json!({"host": host_info(), "latency_ms": args.latency_ms, key: figures});
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("\nJSON: {}", path.display());
    }
    Ok(())
}

/// `--central-faults`: the figures, and the JSON when asked.
fn central_faults(args: &BenchArgs, rt: &tokio::runtime::Handle) -> Result<ExitCode> {
    let (work, _tmp) = work_dir(args)?;
    let run = super::bench_central::faults(args, rt, &work)?;
    print!("{}", super::bench_central::render_faults(&run));
    write_central_json(args, "faults", &run)?;
    Ok(ExitCode::SUCCESS)
}

/// `--central-info`: the table, and the JSON when asked.
fn central_info(args: &BenchArgs, rt: &tokio::runtime::Handle) -> Result<ExitCode> {
    let (work, _tmp) = work_dir(args)?;
    let runs = super::bench_central::bench(args, rt, &work)?;
    print!("{}", super::bench_central::render(&runs));
    write_central_json(args, "runs", &runs)?;
    Ok(ExitCode::SUCCESS)
}

fn bench(args: &BenchArgs, rt: &tokio::runtime::Handle) -> Result<Report> {
    let started = Utc::now();
    let host = host_info();
    let tmp;
    let work = match &args.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            std::fs::canonicalize(d)?
        }
        None => {
            tmp = tempfile::Builder::new().prefix("fedsite-bench-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let venv = std::path::absolute(&args.venv)?;
    let need_venv = !args.no_caso || (!args.no_send && !args.no_ssm);
    if need_venv && !venv.join("bin/python").exists() {
        bail!(
            "no Python venv at {} (cASO 5.2.2, argo-ams-library): run scripts/peers.sh venv, set FEDSITE_VENV, or pass --no-caso --no-ssm",
            venv.display()
        );
    }
    eprintln!("bench: starting fedsite sim --scenario {} (work dir {})", args.scenario, work.display());
    let t0 = Instant::now();
    let sim = start_sim(args, &work)?;
    eprintln!("bench: sim ready in {:.1} s at {}", t0.elapsed().as_secs_f64(), sim.base_url);
    let control = Control { http: reqwest::Client::new(), base: sim.base_url.clone() };
    let to = rt.block_on(control.now())?;
    let from = to - chrono::Duration::days(args.window_days.max(1));

    eprintln!("bench: census of the data (the round-trip floor)");
    let (floor, vo_of) = rt.block_on(census(&sim.clouds_yaml, from, to, args.latency_ms, args.max_concurrent))?;
    let mut voms: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (p, vo) in &vo_of {
        voms.entry(vo.as_str()).or_default().insert(p.as_str());
    }
    let voms_json = work.join("voms.json");
    let voms_value: BTreeMap<&str, Value> = voms.iter().map(|(vo, ps)| (*vo, json!({"projects": ps}))).collect();
    std::fs::write(&voms_json, serde_json::to_string_pretty(&voms_value)?)?;

    let ctx = Ctx { args, sim: &sim, control: &control, rt, work: &work, from, to, voms_json, venv };
    let mut runs = Vec::new();
    for i in 0..args.runs {
        eprintln!("bench: run {}/{}: fedsite accounting extract", i + 1, args.runs);
        let r = ctx.fedsite_extract(i, Extract::First)?;
        eprintln!("bench:   {:.2} s, {} requests, {} records", r.usage.wall_s, r.requests.total, r.output);
        runs.push(r);
        eprintln!("bench: run {}/{}: fedsite accounting extract again (same ledger and window)", i + 1, args.runs);
        let r = ctx.fedsite_extract(i, Extract::Second)?;
        eprintln!("bench:   {:.2} s, {} requests, {} new records", r.usage.wall_s, r.requests.total, r.output);
        runs.push(r);
        eprintln!("bench: run {}/{}: fedsite accounting extract --no-suspend-duration", i + 1, args.runs);
        let r = ctx.fedsite_extract(i, Extract::NoSuspend)?;
        eprintln!("bench:   {:.2} s, {} requests, {} records", r.usage.wall_s, r.requests.total, r.output);
        runs.push(r);
        if !args.no_caso {
            eprintln!("bench: run {}/{}: caso-extract", i + 1, args.runs);
            let r = ctx.caso_extract(i)?;
            eprintln!("bench:   {:.2} s, {} requests, {} records", r.usage.wall_s, r.requests.total, r.output);
            runs.push(r);
        }
    }
    if !args.no_send {
        for i in 0..args.runs {
            eprintln!("bench: run {}/{}: fedsite send ({} messages)", i + 1, args.runs, args.messages);
            let r = ctx.fedsite_send(i)?;
            eprintln!("bench:   {:.2} s, {} requests", r.usage.wall_s, r.requests.total);
            runs.push(r);
            if !args.no_ssm {
                eprintln!("bench: run {}/{}: SSM send loop ({} messages)", i + 1, args.runs, args.messages);
                let r = ctx.ssm_send(i)?;
                eprintln!("bench:   {:.2} s, {} requests", r.usage.wall_s, r.requests.total);
                runs.push(r);
            }
        }
    }
    drop(sim);

    let of = |tool: &str| runs.iter().filter(|r| r.tool == tool).cloned().collect::<Vec<_>>();
    let fed = summarise(FEDSITE, &of(FEDSITE));
    let fed_ns = summarise(FEDSITE_NO_SUSPEND, &of(FEDSITE_NO_SUSPEND));
    let fed_2 = summarise(FEDSITE_SECOND, &of(FEDSITE_SECOND));
    let mut extraction = vec![fed.clone(), fed_2.clone(), fed_ns.clone()];
    let mut extraction_ratios = Value::Null;
    let mut extraction_ratios_no_suspend = Value::Null;
    let mut extraction_ratios_second_run = Value::Null;
    if !args.no_caso {
        let caso = summarise(CASO, &of(CASO));
        extraction_ratios = ratios(&fed, &caso);
        extraction_ratios_no_suspend = ratios(&fed_ns, &caso);
        extraction_ratios_second_run = ratios(&fed_2, &caso);
        extraction.push(caso);
    }
    let mut sending = Vec::new();
    let mut sending_ratios = Value::Null;
    if !args.no_send {
        let fs = summarise("fedsite send", &of("fedsite send"));
        sending.push(fs.clone());
        if !args.no_ssm {
            let ssm = summarise("ssm (argo-ams-library)", &of("ssm (argo-ams-library)"));
            sending_ratios = ratios(&fs, &ssm);
            sending.push(ssm);
        }
    }
    Ok(Report {
        version: env!("CARGO_PKG_VERSION"),
        started,
        scenario: args.scenario.clone(),
        latency_ms: args.latency_ms,
        max_concurrent: args.max_concurrent,
        window: [from, to],
        host,
        fedsite_vs_floor: if floor.floor_s > 0.0 { fed.wall_s / floor.floor_s } else { 0.0 },
        fedsite_no_suspend_vs_floor: if floor.without_suspend.floor_s > 0.0 {
            fed_ns.wall_s / floor.without_suspend.floor_s
        } else {
            0.0
        },
        extraction,
        extraction_ratios,
        extraction_ratios_no_suspend,
        extraction_ratios_second_run,
        floor,
        sending,
        sending_ratios,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_group_ids() {
        assert_eq!(endpoint_template("/compute/v2.1/servers/detail?all_tenants=1"), "/compute/v2.1/servers/detail");
        assert_eq!(
            endpoint_template("/compute/v2.1/servers/11111111-1111-4111-8111-111111111111/os-instance-actions"),
            "/compute/v2.1/servers/{id}/os-instance-actions"
        );
        assert_eq!(endpoint_template("/identity/v3/users/u-alice"), "/identity/v3/users/{id}");
        assert_eq!(endpoint_template("/identity/v3/auth/tokens"), "/identity/v3/auth/tokens");
        assert_eq!(
            endpoint_template("/volume/v3/0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b/volumes/detail"),
            "/volume/v3/{id}/volumes/detail"
        );
    }

    #[test]
    fn pages_of_a_thousand_at_least_one() {
        assert_eq!((pages(0), pages(1), pages(1000), pages(1001), pages(12_909)), (1, 1, 1, 2, 13));
    }

    #[test]
    fn records_are_counted_without_the_loader() {
        assert_eq!(count_records("APEL-cloud-message: v0.4\nVMUUID: a\n%%\nVMUUID: b\n"), 2);
        assert_eq!(count_records("{\"Type\": \"x\", \"UsageRecords\": [{}, {}, {}]}"), 3);
        let xml = "<sr:StorageUsageRecords xmlns:sr=\"n\"><sr:StorageUsageRecord><a/></sr:StorageUsageRecord><sr:StorageUsageRecord><a/></sr:StorageUsageRecord></sr:StorageUsageRecords>";
        assert_eq!(count_records(xml), 2);
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn a_child_is_measured_by_wait4() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("python3");
        cmd.args(["-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"])
            .stdout(std::fs::File::create(dir.path().join("o")).unwrap());
        let u = wait_measured(cmd, Duration::from_secs(30)).unwrap();
        assert_eq!((u.exit, u.timed_out), (3, false));
        assert_eq!(std::fs::read_to_string(dir.path().join("o")).unwrap(), "out\n");
        assert!(u.max_rss_mib > 0.0 && u.wall_s > 0.0);
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let u = wait_measured(cmd, Duration::from_millis(200)).unwrap();
        assert_eq!((u.exit, u.timed_out), (-libc::SIGKILL, true));
    }
}
