//! `fedsite bench --central-info`: the information task of a federation (issue #15), fedsite
//! central against the way the central deployment runs it today: real cloud-info-provider 1.2
//! once per site, one after another. Both read the same simulated federation (`fedsite sim
//! --federation`, a child process, every site with the same latency) with the same Check-in
//! access token; wall, CPU and peak RSS of each tool (under the measuring helper), requests
//! summed over the sites' request logs. Sites that log in with application credentials are
//! left out for both (cloud-info-provider reads those from Vault through the deployment's
//! own wrapper, which is not here).
//!
//! `fedsite bench --central-faults`: one central run over a federation with four sites broken
//! (`fedsite sim --federation --fault`), its wall against the bound: 1.5 × the slowest
//! healthy site's own `fedsite info` run plus the site timeout.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;

use super::bench::{BenchArgs, Usage, run_measured};

/// Runs the real cloud-info-provider-service unchanged but for the GOCDB URL it hard-codes
/// (`FEDSITE_GOCDB_URL`, the simulated Check-in's GOCDB); the same launcher the tests use.
const CIP_LAUNCHER: &str = include_str!("../../fedsite/tests/data/run_cloud_info_provider.py");

/// One tool's figures.
#[derive(Debug, Serialize)]
pub struct CentralRun {
    pub tool: String,
    pub sites: usize,
    pub sites_ok: usize,
    pub usage: Usage,
    pub requests: u64,
}

/// The simulated federation as a child process; killed when dropped.
struct Federation {
    child: std::process::Child,
    issuer: String,
    gocdb: String,
    sites_dir: PathBuf,
    /// Each site's base URL (its request log is read there).
    bases: Vec<String>,
}

impl Drop for Federation {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real folder without the application-credential sites, copied into `into`.
fn oidc_sites(from: &Path, into: &Path) -> Result<usize> {
    std::fs::create_dir_all(into).with_context(|| format!("creating {}", into.display()))?;
    let mut n = 0;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let p = e?.path();
        if p.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        if text.lines().any(|l| l.trim() == "auth: v3applicationcredential") {
            continue;
        }
        std::fs::write(into.join(p.file_name().unwrap_or_default()), text)?;
        n += 1;
    }
    Ok(n)
}

fn start_federation(args: &BenchArgs, work: &Path, sites: usize, faults: &[String]) -> Result<Federation> {
    let folder = work.join("real-oidc-sites");
    if oidc_sites(&args.central_sites_dir, &folder)? == 0 {
        bail!("{}: no site file that logs in with OIDC", args.central_sites_dir.display());
    }
    let out = work.join("federation");
    let mut child = Command::new(crate::fedsite_exe()?)
        .args(["--log", "warn", "sim", "--scenario", "tiny", "--federation"])
        .arg(&folder)
        .args(["--sites", &sites.to_string(), "--latency-ms", &args.latency_ms.to_string()])
        .args(["--max-concurrent", &args.max_concurrent.to_string()])
        .args(faults.iter().flat_map(|f| ["--fault", f.as_str()]))
        .arg("--federation-dir")
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(work.join("federation.err"))?)
        .spawn()
        .context("starting fedsite sim --federation")?;
    let stdout = child.stdout.take().context("the federation's stdout")?;
    let (mut issuer, mut gocdb) = (None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(rest) = line.split("Check-in ").nth(1) {
            issuer = Some(rest.trim().to_string());
        }
        if let Some(rest) = line.trim().strip_prefix("--gocdb-url ") {
            gocdb = Some(rest.trim().to_string());
            break;
        }
    }
    let (Some(issuer), Some(gocdb)) = (issuer, gocdb) else {
        bail!("fedsite sim --federation did not start; see {}", work.join("federation.err").display())
    };
    let sites_dir = out.join("sites");
    let mut bases = Vec::new();
    for e in std::fs::read_dir(&sites_dir)? {
        let text = std::fs::read_to_string(e?.path())?;
        if let Some(ep) = text.lines().find_map(|l| l.strip_prefix("endpoint: ")) {
            bases.push(ep.trim().trim_end_matches("/identity/v3").to_string());
        }
    }
    Ok(Federation { child, issuer, gocdb, sites_dir, bases })
}

/// Clears every site's request log; returns how many requests they had logged.
fn take_requests(rt: &tokio::runtime::Handle, bases: &[String]) -> Result<u64> {
    rt.block_on(async {
        let http = reqwest::Client::new();
        let mut total = 0;
        for b in bases {
            let counts: Value = http.get(format!("{b}/sim/requests/counts")).send().await?.json().await?;
            total += counts.as_object().map_or(0, |m| m.values().filter_map(Value::as_u64).sum::<u64>());
            http.delete(format!("{b}/sim/requests")).send().await?;
        }
        Ok(total)
    })
}

fn access_token(rt: &tokio::runtime::Handle, issuer: &str) -> Result<String> {
    rt.block_on(async {
        let v: Value = reqwest::Client::new()
            .post(format!("{issuer}/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&client_id={}&client_secret={}",
                sim::OIDC_CLIENT_ID,
                sim::OIDC_CLIENT_SECRET
            ))
            .send()
            .await?
            .json()
            .await?;
        v["access_token"].as_str().map(str::to_string).context("the Check-in sim gave no access token")
    })
}

/// Writes the Check-in client secret (private) where `central run` reads it.
fn write_secret(path: &Path) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{}\n", sim::OIDC_CLIENT_SECRET).as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

/// The four broken sites of `--central-faults` (all OIDC sites of the real folder).
const BROKEN: [(&str, &str); 4] = [
    ("GRNET-OPENSTACK", "down"),
    ("WALTON-CLOUD", "forbidden-vo:vo.imagine-ai.eu"),
    ("IN2P3-IRES", "slow:20"),
    ("ILIFU-UCT", "swift-read-only"),
];

/// `--central-faults`' figures.
#[derive(Debug, Serialize)]
pub struct FaultsRun {
    pub sites: usize,
    pub broken: Vec<String>,
    pub site_timeout_s: u64,
    pub central: Usage,
    pub rows_ok: usize,
    pub rows_failed: usize,
    /// Each healthy site's own `fedsite info` run, the slowest.
    pub slowest_alone_site: String,
    pub slowest_alone_s: f64,
    /// 1.5 × the slowest alone + the site timeout.
    pub bound_s: f64,
}

/// `fedsite central run --task info --json` over the federation `fed`, logged in as its
/// Check-in robot (the secret in `secret`), at most `--central-max-sites` sites at once.
fn central_info(args: &BenchArgs, fed: &Federation, secret: &Path, info_dir: &Path) -> Result<Command> {
    let mut cmd = Command::new(args.fedsite_bin.clone().map_or_else(crate::fedsite_exe, Ok)?);
    cmd.args(["--log", "warn", "central", "run", "--task", "info", "--json", "--client-id", sim::OIDC_CLIENT_ID])
        .arg("--sites-dir")
        .arg(&fed.sites_dir)
        .arg("--checkin-discovery")
        .arg(format!("{}/.well-known/openid-configuration", fed.issuer))
        .arg("--client-secret-file")
        .arg(secret)
        .args(["--gocdb-url", &fed.gocdb, "--max-sites", &args.central_max_sites.to_string()])
        .arg("--info-dir")
        .arg(info_dir);
    Ok(cmd)
}

/// Runs `--central-faults`.
pub fn faults(args: &BenchArgs, rt: &tokio::runtime::Handle, work: &Path) -> Result<FaultsRun> {
    let specs: Vec<String> = BROKEN.iter().map(|(site, kind)| format!("{site}={kind}")).collect();
    let fed = start_federation(args, work, args.central_sites, &specs)?;
    let secret = work.join("client-secret");
    write_secret(&secret)?;
    let mut cmd = central_info(args, &fed, &secret, &work.join("info-faults"))?;
    cmd.args(["--site-timeout", &args.central_site_timeout.to_string(), "--info-swift-container", "cloud-info"]);
    let (central, out, err) =
        run_measured(cmd, &work.join("fedsite-central-faults"), Duration::from_secs(args.peer_timeout_secs))?;
    let v: Value = serde_json::from_str(&out).with_context(|| {
        format!("fedsite central run printed no JSON:\n{}", err.lines().rev().take(20).collect::<Vec<_>>().join("\n"))
    })?;
    let rows = v["results"].as_array().cloned().context("fedsite central run's JSON has no results array")?;
    let count = |o: &str| rows.iter().filter(|r| r["outcome"] == o).count();
    // Each healthy site alone, one after another, with the same token.
    let token = access_token(rt, &fed.issuer)?;
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&fed.sites_dir)?.map(|e| e.map(|e| e.path())).collect::<std::io::Result<_>>()?;
    files.sort();
    let (mut slowest, mut slowest_site) = (0.0f64, String::new());
    for f in &files {
        let id = f.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        if BROKEN.iter().any(|(b, _)| *b == id) {
            continue;
        }
        let text = std::fs::read_to_string(f)?;
        let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).map(|v| v.trim().to_string());
        let started = std::time::Instant::now();
        let alone = Command::new(args.fedsite_bin.clone().map_or_else(crate::fedsite_exe, Ok)?)
            .args(["--log", "warn", "info"])
            .arg(f)
            .args(["--gocdb-url", &fed.gocdb])
            .env("OS_AUTH_TYPE", "v3oidcaccesstoken")
            .env("OS_AUTH_URL", field("endpoint: ").with_context(|| format!("{}: no endpoint", f.display()))?)
            .env("OS_ACCESS_TOKEN", &token)
            .env("OS_IDENTITY_PROVIDER", "egi.eu")
            .env("OS_PROTOCOL", field("protocol: ").unwrap_or_else(|| "openid".into()))
            .env_remove("OS_CLOUD")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running fedsite info")?;
        let took = started.elapsed().as_secs_f64();
        if !alone.success() {
            bail!("fedsite info {} alone failed", f.display());
        }
        if took > slowest {
            (slowest, slowest_site) = (took, id);
        }
    }
    Ok(FaultsRun {
        sites: files.len(),
        broken: specs,
        site_timeout_s: args.central_site_timeout,
        central,
        rows_ok: count("ok"),
        rows_failed: count("failed"),
        slowest_alone_site: slowest_site,
        slowest_alone_s: slowest,
        bound_s: 1.5 * slowest + args.central_site_timeout as f64,
    })
}

/// `--central-faults`' lines.
pub fn render_faults(r: &FaultsRun) -> String {
    format!(
        "  {} sites, broken: {}\n  fedsite central run --task info: wall {:.2} s, cpu {:.2} s, rss {:.1} MiB; rows ok {}, failed {}\n  slowest healthy site alone ({}): {:.2} s; site timeout {} s\n  bound 1.5 × {:.2} + {} = {:.2} s: the run took {:.2} of it\n",
        r.sites,
        r.broken.join(", "),
        r.central.wall_s,
        r.central.cpu_s,
        r.central.max_rss_mib,
        r.rows_ok,
        r.rows_failed,
        r.slowest_alone_site,
        r.slowest_alone_s,
        r.site_timeout_s,
        r.slowest_alone_s,
        r.site_timeout_s,
        r.bound_s,
        if r.bound_s > 0.0 { r.central.wall_s / r.bound_s } else { f64::NAN }
    )
}

/// Runs the comparison; returns fedsite's and cloud-info-provider's figures.
pub fn bench(args: &BenchArgs, rt: &tokio::runtime::Handle, work: &Path) -> Result<Vec<CentralRun>> {
    let sites = args.central_sites;
    let fed = start_federation(args, work, sites, &[])?;
    let secret = work.join("client-secret");
    write_secret(&secret)?;
    take_requests(rt, &fed.bases)?;
    let timeout = Duration::from_secs(args.peer_timeout_secs);
    let mut runs = Vec::new();

    // fedsite: one central run over the whole folder.
    let info_dir = work.join("info-fedsite");
    let cmd = central_info(args, &fed, &secret, &info_dir)?;
    let (usage, out, err) = run_measured(cmd, &work.join("fedsite-central"), timeout)?;
    let ok = serde_json::from_str::<Value>(&out)
        .ok()
        .and_then(|v| v["results"].as_array().map(|r| r.iter().filter(|x| x["outcome"] == "ok").count()))
        .unwrap_or(0);
    if ok == 0 {
        bail!("fedsite central run published nothing:\n{}", err.lines().rev().take(20).collect::<Vec<_>>().join("\n"));
    }
    runs.push(CentralRun {
        tool: "fedsite central run".into(),
        sites,
        sites_ok: ok,
        usage,
        requests: take_requests(rt, &fed.bases)?,
    });

    // cloud-info-provider 1.2: once per site, one after another, the token in OS_*.
    let python = args.venv.join("bin/python");
    if !args.venv.join("bin/cloud-info-provider-service").exists() {
        bail!("{} has no cloud-info-provider-service (scripts/peers.sh venv)", args.venv.display());
    }
    let launcher = work.join("run_cloud_info_provider.py");
    std::fs::write(&launcher, CIP_LAUNCHER)?;
    let token = access_token(rt, &fed.issuer)?;
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&fed.sites_dir)?.map(|e| e.map(|e| e.path())).collect::<std::io::Result<_>>()?;
    files.sort();
    let mut total = Usage {
        wall_s: 0.0,
        user_s: 0.0,
        sys_s: 0.0,
        cpu_s: 0.0,
        max_rss_mib: 0.0,
        exit: 0,
        timed_out: false,
        sim_cpu_s: 0.0,
    };
    let mut cip_ok = 0;
    for (i, f) in files.iter().enumerate() {
        let text = std::fs::read_to_string(f)?;
        let endpoint = text.lines().find_map(|l| l.strip_prefix("endpoint: ")).unwrap_or_default().trim().to_string();
        let mut cmd = Command::new(&python);
        cmd.arg(&launcher)
            .args(["--middleware", "openstack", "--format", "glue21json"])
            .arg(f)
            .env("OS_AUTH_TYPE", "v3oidcaccesstoken")
            .env("OS_AUTH_URL", &endpoint)
            .env("OS_ACCESS_TOKEN", &token)
            .env("OS_IDENTITY_PROVIDER", "egi.eu")
            .env("OS_PROTOCOL", "openid")
            .env("FEDSITE_GOCDB_URL", &fed.gocdb)
            .env_remove("OS_CLOUD");
        let (u, _, _) = run_measured(cmd, &work.join(format!("cip-{i}")), timeout)?;
        cip_ok += usize::from(u.exit == 0);
        total.wall_s += u.wall_s;
        total.user_s += u.user_s;
        total.sys_s += u.sys_s;
        total.cpu_s += u.cpu_s;
        total.max_rss_mib = total.max_rss_mib.max(u.max_rss_mib);
        total.exit = total.exit.max(u.exit);
    }
    runs.push(CentralRun {
        tool: "cloud-info-provider 1.2, per site".into(),
        sites,
        sites_ok: cip_ok,
        usage: total,
        requests: take_requests(rt, &fed.bases)?,
    });
    Ok(runs)
}

/// The table, fedsite's ratios to cloud-info-provider's below it.
pub fn render(runs: &[CentralRun]) -> String {
    let mut s = format!(
        "  {:<36} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9}\n",
        "tool", "sites", "ok", "wall s", "cpu s", "rss MiB", "requests"
    );
    for r in runs {
        s.push_str(&format!(
            "  {:<36} {:>6} {:>6} {:>9.2} {:>9.2} {:>9.1} {:>9}\n",
            r.tool, r.sites, r.sites_ok, r.usage.wall_s, r.usage.cpu_s, r.usage.max_rss_mib, r.requests
        ));
    }
    if let [f, c] = runs {
        let div = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        s.push_str(&format!(
            "  fedsite/cloud-info-provider: wall {:.3}  cpu {:.3}  rss {:.3}  requests {:.3}  (cloud-info-provider takes {:.0}× as long)\n",
            div(f.usage.wall_s, c.usage.wall_s),
            div(f.usage.cpu_s, c.usage.cpu_s),
            div(f.usage.max_rss_mib, c.usage.max_rss_mib),
            div(f.requests as f64, c.requests as f64),
            div(c.usage.wall_s, f.usage.wall_s)
        ));
    }
    s
}
