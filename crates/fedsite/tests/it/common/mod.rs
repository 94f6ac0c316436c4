//! Shared helpers of fedsite's integration tests: where the real peers are
//! (exported by `scripts/test`), the in-process sim, and running programs of
//! the peers' Python venv. A test that needs a peer FAILS when it is absent.
#![allow(dead_code)]

pub mod shape;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Reads a variable `scripts/test` exports; panics (the test fails) without it.
fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("run scripts/test: {name} is not set"),
    }
}

/// The Python venv holding cASO, openstackclient, Keystone, Glance, dirq.
pub fn venv() -> PathBuf {
    let v = PathBuf::from(required_env("FEDSITE_VENV"));
    assert!(v.join("bin/python").exists(), "FEDSITE_VENV={} has no bin/python", v.display());
    v
}

/// `<venv>/bin/<name>`.
pub fn venv_bin(name: &str) -> PathBuf {
    venv().join("bin").join(name)
}

/// The real Keystone's v3 URL, e.g. `http://127.0.0.1:15000/v3`.
pub fn real_keystone() -> String {
    required_env("FEDSITE_REAL_KEYSTONE").trim_end_matches('/').to_string()
}

/// The real Glance's root URL, e.g. `http://127.0.0.1:19292`.
pub fn real_glance() -> String {
    required_env("FEDSITE_REAL_GLANCE").trim_end_matches('/').to_string()
}

/// Password of the real Keystone's `admin` (and of `contract-reader`).
pub fn real_admin_password() -> String {
    required_env("FEDSITE_REAL_ADMIN_PASSWORD")
}

/// The real Nova API's base URL, e.g. `http://127.0.0.1:18774/v2.1`.
pub fn real_nova() -> String {
    required_env("FEDSITE_REAL_NOVA").trim_end_matches('/').to_string()
}

/// The real Cinder API's v3 URL (no project id), e.g. `http://127.0.0.1:18776/v3`.
pub fn real_cinder() -> String {
    required_env("FEDSITE_REAL_CINDER").trim_end_matches('/').to_string()
}

/// The real Neutron server's root URL, e.g. `http://127.0.0.1:19696`.
pub fn real_neutron() -> String {
    required_env("FEDSITE_REAL_NEUTRON").trim_end_matches('/').to_string()
}

/// What scripts/peers_seed_nova.py made in the real Nova and Cinder: ids by
/// name under `projects`, `users`, `servers`, `flavors` (flavor ids), `volumes`,
/// `ports` (of the servers alive), `floating_ips`, `networks`.
pub fn real_nova_seed() -> serde_json::Value {
    let path = required_env("FEDSITE_REAL_NOVA_SEED");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e} (run scripts/peers.sh start)"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Seeded on the real Keystone by scripts/peers_seed.py: a user with the
/// `reader` role on project `contract` only.
pub const REAL_READER_USER: &str = "contract-reader";
pub const REAL_READER_PROJECT: &str = "contract";

/// Starts the sim in-process with a built-in scenario.
pub async fn start_sim_scenario(name: &str) -> sim::SimHandle {
    let scenario = sim::scenario::builtin(name).unwrap_or_else(|e| panic!("{e}")).generate();
    sim::start(sim::SimConfig::new(scenario)).await.expect("starting the sim")
}

/// Starts the sim in-process with the `tiny` scenario.
pub async fn start_sim() -> sim::SimHandle {
    start_sim_scenario("tiny").await
}

/// A short suffix unique to this process and call, for names on the real
/// peers (their state lives as long as `scripts/test` runs).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{nanos:x}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Writes a file holding secrets (clouds.yaml, caso.conf, sender.cfg with a
/// token) with mode 0600, as fedsite requires of them.
pub fn write_private(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = path.as_ref();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    f.write_all(contents.as_ref()).unwrap();
}

/// What a finished program printed.
#[derive(Debug)]
pub struct Output {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics with both streams unless the program exited 0.
    pub fn assert_success(&self, what: &str) -> &Self {
        assert!(
            self.status.success(),
            "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `<venv>/bin/<program> args` with `envs` added (the venv's bin first
/// on PATH, TZ=UTC unless given), in `cwd` when given, without blocking the
/// tokio runtime (so an in-process sim keeps serving). Killed after `timeout`.
pub async fn run_venv(
    program: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    cwd: Option<&Path>,
    timeout: Duration,
) -> Output {
    let venv = venv();
    let path = format!("{}:{}", venv.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = tokio::process::Command::new(venv.join("bin").join(program));
    cmd.args(args)
        .env("PATH", path)
        .env("VIRTUAL_ENV", &venv)
        .env("TZ", "UTC")
        .env("PYTHONWARNINGS", "ignore")
        .env_remove("OS_CLOUD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {program}: {e}"));
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish within {timeout:?}"))
        .unwrap_or_else(|e| panic!("waiting for {program}: {e}"));
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Finished elements of a dirq QueueSimple: `<dir>/<8 hex>/<14 hex>`, in
/// queue order (no `.tmp` / `.lck`).
pub fn dirq_elements(queue: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(buckets) = std::fs::read_dir(queue) else {
        return out;
    };
    for bucket in buckets.flatten() {
        let name = bucket.file_name().to_string_lossy().into_owned();
        if name.len() != 8 || !name.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        for el in std::fs::read_dir(bucket.path()).unwrap().flatten() {
            let n = el.file_name().to_string_lossy().into_owned();
            if n.len() == 14 && n.chars().all(|c| c.is_ascii_hexdigit()) {
                out.push(el.path());
            }
        }
    }
    out.sort();
    out
}

/// One `caso-extract` run against the sim: which projects, how their VO is
/// read, over which window.
pub struct CasoRun<'a> {
    /// cASO's `vo_property` (one per run).
    pub vo_property: &'a str,
    /// `--projects` (none: only the tagged ones).
    pub projects: Option<&'a str>,
    /// `caso_tag`: the Keystone tag selecting projects besides `--projects`.
    pub caso_tag: &'a str,
    /// `--extract-from`, `--extract-to` (dates or ISO times, read as UTC).
    pub from: &'a str,
    pub to: &'a str,
}

/// What a `caso-extract` run left: its working directory (spool in
/// `outgoing/`, the SSM dirq) and its log.
pub struct CasoOutput {
    pub dir: tempfile::TempDir,
    pub log: String,
}

impl CasoOutput {
    /// The SSM outgoing queue cASO wrote.
    pub fn outgoing(&self) -> PathBuf {
        self.dir.path().join("outgoing")
    }
}

/// Runs real cASO 5.2.2 (`caso-extract`, TZ=UTC, SSM messenger into a fresh
/// dirq, max 100 records per message) once against `sim`; fails unless it
/// exits 0.
pub async fn run_caso(sim: &sim::SimHandle, run: &CasoRun<'_>) -> CasoOutput {
    let auth = sim.auth_url();
    run_caso_at(&auth, sim::scenario::ACCOUNTING_USER, sim::scenario::PASSWORD, run).await
}

/// [`run_caso`] against any Keystone (`auth_url`, user and password in the
/// default domain), e.g. the hybrid real site's.
pub async fn run_caso_at(auth_url: &str, user: &str, password: &str, run: &CasoRun<'_>) -> CasoOutput {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let conf = work.join("caso.conf");
    write_private(
        &conf,
        format!(
            "[DEFAULT]\nsite_name = TEST-SITE\nservice_name = TEST-SITE-cloud\nmessengers = ssm,noop\n\
             spooldir = {w}/spool\nlock_path = {w}/spool\nextractor = nova,cinder,neutron\n\
             vo_property = {vo}\ncaso_tag = {tag}\nmapping_file = {w}/nonexistent-voms.json\ndebug = true\n\n\
             [keystone_auth]\nauth_type = v3password\nauth_url = {auth}\nusername = {user}\n\
             password = {pw}\nuser_domain_id = default\nproject_domain_id = default\n\n\
             [ssm]\noutput_path = {w}/outgoing\nmax_size = 100\n",
            w = work.display(),
            vo = run.vo_property,
            tag = run.caso_tag,
            auth = auth_url,
            pw = password,
        ),
    );
    let conf_s = conf.to_str().unwrap().to_string();
    let mut args = vec!["--config-file", &conf_s, "--extract-from", run.from, "--extract-to", run.to];
    if let Some(p) = run.projects {
        args.extend(["--projects", p]);
    }
    let out = run_venv("caso-extract", &args, &[], Some(work), Duration::from_secs(300)).await;
    out.assert_success("caso-extract");
    CasoOutput { dir, log: out.stderr }
}

/// `fedsite sim` running as a child process; killed when dropped.
pub struct SimProcess {
    pub child: std::process::Child,
    /// The clouds.yaml it wrote (clouds `sim` and `sim-accounting`).
    pub clouds_yaml: PathBuf,
}

impl SimProcess {
    /// Starts `fedsite sim --clouds-yaml <dir>/clouds.yaml --log warn <args>`
    /// and returns once it printed its clouds.yaml (it is serving then).
    pub fn start(dir: &Path, args: &[&str]) -> SimProcess {
        use std::io::{BufRead, BufReader};
        let clouds_yaml = dir.join("clouds.yaml");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fedsite"))
            .arg("sim")
            .args(args)
            .arg("--clouds-yaml")
            .arg(&clouds_yaml)
            .args(["--log", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting fedsite sim");
        // The document ends with the second cloud's last key.
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut clouds = 0;
        while clouds < 2 {
            match lines.next() {
                Some(Ok(line)) if line.trim_start().starts_with("identity_api_version:") => clouds += 1,
                Some(Ok(_)) => {}
                _ => {
                    let _ = child.kill();
                    panic!("fedsite sim {args:?} exited before printing its clouds.yaml");
                }
            }
        }
        assert!(clouds_yaml.exists(), "fedsite sim did not write {}", clouds_yaml.display());
        SimProcess { child, clouds_yaml }
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// splitmix64: a seeded generator for the crash and fault tests, so a failing
/// seed can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A numeric test knob from the environment (e.g. the full crash-run count).
pub fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        _ => default,
    }
}

/// Waits for `child`, killing it and failing the test when it takes longer than `timeout`
/// (`what` names it in the failure).
pub fn wait_child(child: &mut std::process::Child, what: &str, timeout: Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every record the simulated AMS holds on `topic` of its default project, in publishing
/// order, each message's signature verified against the sim CA: (kind, record key).
pub fn ams_published(ams: &sim::SimHandle, topic: &str) -> Vec<(apel::RecordKind, String)> {
    let a = ams.ams().expect("the sim runs AMS");
    let verifier = smime::Verifier::new(a.ca_pem_path()).unwrap();
    let mut out = Vec::new();
    for m in a.published(sim::ams::DEFAULT_PROJECT, topic) {
        let v = verifier.verify(m.data.as_deref().unwrap()).unwrap();
        let (kind, records) = apel::parse_message(&v.body).unwrap();
        out.extend(records.iter().map(|r| (kind, r.key())));
    }
    out
}

/// A GLUE document with every `CreationTime` value replaced by `T`: two runs of the same site
/// differ only there (the central run and `fedsite info` alone compare equal after it).
pub fn mask_creation_time(doc: &[u8]) -> String {
    let text = String::from_utf8_lossy(doc).to_string();
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("\"CreationTime\": \"") {
        let j = i + "\"CreationTime\": \"".len();
        out.push_str(&rest[..j]);
        let end = rest[j..].find('"').unwrap();
        out.push('T');
        rest = &rest[j + end..];
    }
    out.push_str(rest);
    out
}
