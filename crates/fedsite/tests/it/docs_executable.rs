//! The docs are executable (issue #21): the command blocks of README.md's quick start, marked
//! `<!-- doc-test: readme -->` in the Markdown, run here in order, literally, in a scratch
//! directory, and every command must end as the docs say. A block is the fenced block right
//! after its marker; within it:
//! * a command continues over lines ending in `\`;
//! * a command ending in `&` starts in the background (its own process group, killed at the
//!   end); when it names `--clouds-yaml FILE`, the next command waits until FILE is written
//!   (the simulated site is serving then), as a reader waits for the sim's output;
//! * a trailing `# exit N` says the command exits N (default 0), as the docs explain next to it;
//! * `cargo run --release --` is the `fedsite` built for the tests (the release build the
//!   README shows is the same program).
//!
//! Changing a documented command without the code (or the reverse) fails this test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::caso_diff;
use crate::common;

/// One command of a doc block.
#[derive(Debug, Clone)]
struct DocCommand {
    /// Where it is: `README.md:57`.
    at: String,
    text: String,
    background: bool,
    exit: i32,
}

/// The commands of every block marked `<!-- doc-test: NAME -->` in `doc`, in order.
fn commands(doc: &Path, name: &str) -> Vec<DocCommand> {
    let text = std::fs::read_to_string(doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
    let file = doc.file_name().unwrap().to_string_lossy().to_string();
    let marker = format!("<!-- doc-test: {name} -->");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != marker {
            i += 1;
            continue;
        }
        i += 1;
        while i < lines.len() && lines[i].trim().is_empty() {
            i += 1;
        }
        assert!(
            i < lines.len() && lines[i].trim_start().starts_with("```"),
            "{file}:{i}: {marker} is not followed by a fenced block"
        );
        i += 1;
        let mut pending: Option<(usize, String)> = None;
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            let line = lines[i];
            let (start, mut cmd) = pending.take().unwrap_or((i + 1, String::new()));
            if let Some(cont) = line.trim_end().strip_suffix('\\') {
                cmd.push_str(cont);
                cmd.push(' ');
                pending = Some((start, cmd));
            } else {
                cmd.push_str(line);
                if !cmd.trim().is_empty() && !cmd.trim_start().starts_with('#') {
                    out.push(parse(format!("{file}:{start}"), &cmd));
                }
            }
            i += 1;
        }
        assert!(pending.is_none(), "{file}: a command of the {name} block ends in a continuation");
    }
    assert!(!out.is_empty(), "{file} has no {marker} block");
    out
}

/// A command line: its expected exit (`# exit N`), whether it runs in the background.
fn parse(at: String, line: &str) -> DocCommand {
    let (cmd, comment) = match line.find(" #") {
        Some(i) => (&line[..i], &line[i + 2..]),
        None => (line, ""),
    };
    let exit = comment
        .trim()
        .strip_prefix("exit ")
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let cmd = cmd.trim();
    let (text, background) = match cmd.strip_suffix('&') {
        Some(c) => (c.trim().to_string(), true),
        None => (cmd.to_string(), false),
    };
    let text = text.replace("cargo run --release --", "fedsite");
    DocCommand { at, text, background, exit }
}

/// The value of `--flag VALUE` in a command.
fn flag_value(cmd: &str, flag: &str) -> Option<String> {
    let mut words = cmd.split_whitespace();
    while let Some(w) = words.next() {
        if w == flag {
            return words.next().map(str::to_string);
        }
    }
    None
}

/// Runs the commands in `dir`; background ones are killed at the end, also on failure.
struct Runner {
    dir: PathBuf,
    path: String,
    background: Vec<(String, Child)>,
    /// More environment for every command (the migration's mapped paths).
    env: Vec<(String, String)>,
    /// `FEDSITE_CONFIG` for the commands that start once this file exists (the mapped
    /// /etc/fedsite/fedsite.toml every command reads by default).
    config_when_exists: Option<PathBuf>,
}

impl Drop for Runner {
    fn drop(&mut self) {
        for (_, child) in &mut self.background {
            // The whole process group: `bash -c` and what it started.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGTERM);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Runner {
    fn new(dir: &Path) -> Runner {
        let bin = Path::new(env!("CARGO_BIN_EXE_fedsite")).parent().unwrap().to_path_buf();
        let venv = common::venv().join("bin");
        let path = format!("{}:{}:{}", bin.display(), venv.display(), std::env::var("PATH").unwrap_or_default());
        Runner { dir: dir.to_path_buf(), path, background: Vec::new(), env: Vec::new(), config_when_exists: None }
    }

    fn command(&self, text: &str) -> Command {
        let mut c = Command::new("bash");
        c.args(["-c", text])
            .current_dir(&self.dir)
            .env("PATH", &self.path)
            .env_remove("FEDSITE_CONFIG")
            .env_remove("FEDSITE_LEDGER")
            .env_remove("FEDSITE_SPOOL")
            .env_remove("OS_CLOUD")
            .env_remove("OS_CLIENT_CONFIG_FILE")
            .env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("STATE_DIRECTORY")
            .stdin(Stdio::null());
        c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(cfg) = self.config_when_exists.as_ref().filter(|p| p.exists()) {
            c.env("FEDSITE_CONFIG", cfg);
        }
        c
    }

    /// Runs `c` as the docs say; a foreground command's stdout and stderr are returned.
    fn run(&mut self, c: &DocCommand) -> (String, String) {
        if c.background {
            use std::os::unix::process::CommandExt;
            // A file the command writes when ready: gone first, so an older one does not pass.
            if let Some(file) = flag_value(&c.text, "--clouds-yaml") {
                let _ = std::fs::remove_file(self.dir.join(file));
            }
            let log = std::fs::File::create(self.dir.join(format!("bg-{}.log", self.background.len()))).unwrap();
            let child = self
                .command(&c.text)
                .process_group(0)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("{}: `{}`: {e}", c.at, c.text));
            self.background.push((c.text.clone(), child));
            if let Some(file) = flag_value(&c.text, "--clouds-yaml") {
                let file = self.dir.join(file);
                let started = Instant::now();
                while std::fs::read_to_string(&file).map_or(true, |y| y.matches("identity_api_version").count() < 2) {
                    let (_, child) = self.background.last_mut().unwrap();
                    assert!(
                        child.try_wait().unwrap().is_none(),
                        "{}: `{}` exited before writing {}",
                        c.at,
                        c.text,
                        file.display()
                    );
                    assert!(
                        started.elapsed() < Duration::from_secs(120),
                        "{}: `{}` wrote no {}",
                        c.at,
                        c.text,
                        file.display()
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            return Default::default();
        }
        let mut child = self.command(&c.text).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let status = common::wait_child(&mut child, &c.at, Duration::from_secs(600));
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            status.code(),
            Some(c.exit),
            "{}: `{}` exited {:?}, the docs say {}\n--- stdout\n{}\n--- stderr\n{}",
            c.at,
            c.text,
            status.code(),
            c.exit,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The words bash makes of `cmd` (quotes and `$(…)` evaluated), without running it.
fn shell_words(runner: &Runner, cmd: &str) -> Vec<String> {
    let (_, rest) = cmd.split_once(' ').unwrap();
    let out = runner.command(&format!("printf '%s\\n' {rest}")).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

/// The messages `accounting extract --dry-run` printed: each after its `# project …` line.
fn dry_run_messages(stdout: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in stdout.split_inclusive('\n') {
        if line.starts_with("# project ") {
            out.push((line.trim_end().to_string(), String::new()));
        } else if let Some((_, m)) = out.last_mut() {
            m.push_str(line);
        }
    }
    // println! ended each message with one more newline.
    out.into_iter().map(|(h, m)| (h, m.strip_suffix('\n').unwrap_or(&m).as_bytes().to_vec())).collect()
}

/// The simulated site's reference time (`/sim/now`), from its Keystone URL.
fn sim_now(auth_url: &str) -> chrono::DateTime<chrono::Utc> {
    let base = auth_url.split("/identity").next().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let v: serde_json::Value =
        rt.block_on(async { reqwest::get(format!("{base}/sim/now")).await.unwrap().json().await.unwrap() });
    v["now"].as_str().unwrap().parse().unwrap()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_readme_quick_start_runs_as_printed() {
    let cmds = commands(&repo().join("README.md"), "readme");
    assert!(cmds.iter().any(|c| c.text == "fedsite demo"), "the README's first command is among them: {cmds:#?}");
    let dir = tempfile::tempdir().unwrap();
    let mut runner = Runner::new(dir.path());
    for c in &cmds {
        runner.run(c);
    }
    // What the last block documents: the simulated AMS took the spooled messages.
    let status = runner.command("fedsite spool status --spool outgoing --json").output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["elements"], 0, "everything sent: {v}");
    let ledger = ledger::Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    assert!(!ledger.messages_in_state(ledger::MessageState::Sent).unwrap().is_empty());
}

#[test]
fn a_changed_command_is_caught() {
    // The harness itself: a command that fails where the docs say it succeeds is reported with
    // its place, and an `# exit N` annotation is honoured.
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("DOC.md");
    std::fs::write(&doc, "x\n<!-- doc-test: t -->\n```sh\nfedsite --version\nfedsite no-such-command   # exit 2: a usage error\nfedsite accounting records --ledger \\\n    missing.sqlite\n```\n").unwrap();
    let cmds = commands(&doc, "t");
    assert_eq!(cmds.len(), 3);
    assert_eq!((cmds[1].exit, cmds[2].at.as_str()), (2, "DOC.md:6"));
    assert_eq!(cmds[2].text, "fedsite accounting records --ledger      missing.sqlite");
    let mut runner = Runner::new(dir.path());
    runner.run(&cmds[0]);
    runner.run(&cmds[1]);
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.run(&cmds[2])));
    let msg = failed.expect_err("the missing ledger fails").downcast::<String>().unwrap();
    assert!(msg.contains("DOC.md:6") && msg.contains("does not exist"), "{msg}");
}

/// `/etc/…` and `/var/…` in a command, mapped under `root` (after a space, `=` or at the start).
fn map_paths(cmd: &str, root: &Path) -> String {
    let r = root.display().to_string();
    let mut out = String::with_capacity(cmd.len());
    let mut prev = ' ';
    let mut i = 0;
    let b = cmd.as_bytes();
    while i < b.len() {
        let rest = &cmd[i..];
        if (prev == ' ' || prev == '=') && (rest.starts_with("/etc/") || rest.starts_with("/var/")) {
            out.push_str(&r);
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        prev = c;
        i += c.len_utf8();
    }
    out
}

/// The stand-ins for what a test cannot do to the machine: `chown` to the service user (a
/// no-op), `install -o/-g` (owner dropped), `systemctl enable --now X.timer` (each timer's
/// service command run once as systemd would start it: its `Environment=` lines, its state
/// directory, paths under the scratch root; the first failing unit fails it), `journalctl -u`
/// (those units' output).
const SHIMS: &[(&str, &str)] = &[
    ("chown", "#!/bin/sh\nexit 0\n"),
    (
        "install",
        "#!/bin/bash\nargs=()\nwhile [[ $# -gt 0 ]]; do\n  case \"$1\" in\n    -o|-g) shift 2;;\n    *) args+=(\"$1\"); shift;;\n  esac\ndone\nexec /usr/bin/install \"${args[@]}\"\n",
    ),
    (
        "systemctl",
        r#"#!/bin/bash
set -u
[[ "${1:-}" == enable && "${2:-}" == --now ]] || { echo "systemctl (test): only 'enable --now' is mapped" >&2; exit 1; }
shift 2
for timer in "$@"; do
  unit="${timer%.timer}"
  file="$DOCTEST_ROOT/lib/systemd/system/$unit.service"
  [[ -f "$file" ]] || { echo "systemctl (test): no unit $unit" >&2; exit 1; }
  envs=(); cmd=""
  while IFS= read -r line; do
    case "$line" in
      Environment=*) envs+=("${line#Environment=}");;
      ExecStart=*) cmd="${line#ExecStart=}";;
    esac
  done < "$file"
  cmd="${cmd/\/usr\/bin\/fedsite/fedsite}"
  if ! env "${envs[@]}" STATE_DIRECTORY="$DOCTEST_ROOT/var/lib/fedsite" bash -c "$cmd" >> "$DOCTEST_ROOT/var/log/$unit.log" 2>&1; then
    echo "systemctl (test): $unit failed:" >&2; cat "$DOCTEST_ROOT/var/log/$unit.log" >&2; exit 1
  fi
done
"#,
    ),
    (
        "journalctl",
        "#!/bin/bash\nwhile [[ $# -gt 0 ]]; do\n  if [[ \"$1\" == -u ]]; then cat \"$DOCTEST_ROOT/var/log/$2.log\"; shift 2; else shift; fi\ndone\n",
    ),
];

/// docs/deploy.md's migration, literally, against a simulated site and AMS standing in for
/// the host's cloud: the host's caso.conf (0644, as cASO's often is) and sender.cfg (X.509
/// token exchange at the AMS host's port 8443, as SSM's) made for it, `/etc` and `/var` under a
/// scratch root, the package's units run by the `systemctl` stand-in. The dry run's records
/// must equal those of the doc's own `caso-extract` run (real cASO 5.2.2, the same caso.conf and
/// window) but where docs/compat.md says they differ; it ends with every record the ledger
/// sent received by `fedsite receive` from the simulated AMS.
#[test]
fn the_deploy_migration_runs_as_printed() {
    use std::os::unix::fs::PermissionsExt;
    let cmds = commands(&repo().join("docs/deploy.md"), "migration");
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    for d in [
        "etc/caso",
        "etc/apel",
        "etc/grid-security",
        "etc/fedsite",
        "var/lib/fedsite",
        "var/spool/apel/outgoing/openstack",
        "var/log",
        "lib/systemd/system",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    // The package's units, paths under the root.
    for e in std::fs::read_dir(repo().join("packaging/systemd")).unwrap() {
        let e = e.unwrap();
        let text = std::fs::read_to_string(e.path()).unwrap();
        std::fs::write(root.join("lib/systemd/system").join(e.file_name()), map_paths(&text, &root)).unwrap();
    }
    let shims = scratch.path().join("shims");
    std::fs::create_dir_all(&shims).unwrap();
    for (name, body) in SHIMS {
        let p = shims.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The site: the tiny scenario at today's date, its AMS's token exchange on 8443 as EGI's.
    let mut runner = Runner::new(scratch.path());
    // (anchored to the host's clock, as a real site's: the units' extract has no --from/--to)
    let sim = DocCommand {
        at: "harness".into(),
        text: "fedsite sim --scenario tiny --anchor-now --ams --ams-authn-port 8443 --ams-cert-dir sim-ams --clouds-yaml sim-clouds.yaml".into(),
        background: true,
        exit: 0,
    };
    runner.run(&sim);
    let ams_log = std::fs::read_to_string(scratch.path().join("bg-0.log")).unwrap();
    let ams_url = ams_log
        .lines()
        .find_map(|l| l.strip_prefix("AMS data API:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let ams_host = ams_url.trim_start_matches("https://").trim_end_matches('/').to_string();
    let yaml = std::fs::read_to_string(scratch.path().join("sim-clouds.yaml")).unwrap();
    let auth_url = yaml.lines().find_map(|l| l.trim().strip_prefix("auth_url: ")).unwrap().to_string();
    let tiny = sim::scenario::builtin("tiny").unwrap().generate();
    let proj1 = tiny.site.projects.iter().find(|p| p.extra.contains_key("VO")).unwrap().id.clone();
    // The host's own files, as cASO and SSM have them.
    std::fs::copy(scratch.path().join("sim-ams/client-cert.pem"), root.join("etc/grid-security/hostcert.pem")).unwrap();
    std::fs::copy(scratch.path().join("sim-ams/client-key.pem"), root.join("etc/grid-security/hostkey.pem")).unwrap();
    std::fs::set_permissions(root.join("etc/grid-security/hostkey.pem"), std::fs::Permissions::from_mode(0o600))
        .unwrap();
    let spool = root.join("var/spool/apel/outgoing/openstack");
    std::fs::write(
        root.join("etc/caso/caso.conf"),
        format!(
            "[DEFAULT]\nsite_name = TEST-SITE\nprojects = {proj1}\ncaso_tag = nobody-has-this-tag\nvo_property = VO\nextractor = nova,cinder,neutron\n\n\
             [keystone_auth]\nauth_type = password\nauth_url = {auth_url}\nusername = {user}\npassword = {pw}\nuser_domain_name = Default\nsystem_scope = all\n\n\
             [ssm]\noutput_path = {spool}\n",
            user = sim::scenario::ACCOUNTING_USER,
            pw = sim::scenario::PASSWORD,
            spool = spool.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(root.join("etc/caso/caso.conf"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(
        root.join("etc/apel/sender.cfg"),
        format!(
            "[sender]\nprotocol: AMS\n\n[broker]\nhost: {ams_host}\nport: 443\n\n[certificates]\ncertificate: {r}/etc/grid-security/hostcert.pem\nkey: {r}/etc/grid-security/hostkey.pem\ncapath: /etc/grid-security/certificates\n\n\
             [messaging]\nams_project: accounting\ndestination: eu-egi-cloud-accounting\npath: {spool}\npath_type: dirq\n",
            r = root.display(),
            spool = spool.display()
        ),
    )
    .unwrap();
    runner.path = format!("{}:{}", shims.display(), runner.path);
    runner.env = vec![
        ("DOCTEST_ROOT".into(), root.display().to_string()),
        ("STATE_DIRECTORY".into(), root.join("var/lib/fedsite").display().to_string()),
        ("REQUESTS_CA_BUNDLE".into(), scratch.path().join("sim-ams/ca.pem").display().to_string()),
        // cASO's records depend on the host's time zone (docs/compat.md row 1); the host is on UTC.
        ("TZ".into(), "UTC".into()),
    ];
    runner.config_when_exists = Some(root.join("etc/fedsite/fedsite.toml"));
    let started = chrono::Utc::now();
    let mut outputs = Vec::new();
    for c in &cmds {
        let mapped = DocCommand { text: map_paths(&c.text, &root), ..c.clone() };
        let out = runner.run(&mapped);
        outputs.push((mapped, out));
    }
    // The records of the dry run equal cASO's for the same caso.conf and window, but where
    // docs/compat.md says they differ.
    let (dry_run, (fed_stdout, _)) =
        outputs.iter().find(|(c, _)| c.text.contains(" --dry-run")).expect("the migration shows a dry run");
    let (caso_cmd, (_, caso_log)) = outputs
        .iter()
        .find(|(c, _)| c.text.starts_with("caso-extract "))
        .expect("the migration runs cASO for the same window");
    let window = |c: &DocCommand, from: &str, to: &str| {
        let argv = shell_words(&runner, &c.text);
        let value = |flag: &str| argv.iter().position(|a| a == flag).map(|i| argv[i + 1].clone()).unwrap();
        (value(from), value(to))
    };
    let (from, to) = window(dry_run, "--from", "--to");
    assert_eq!(window(caso_cmd, "--extract-from", "--extract-to"), (from.clone(), to.clone()), "the same window");
    // Where the doc's scratch config sent cASO's messages (its `output_path`, mapped).
    let scratch_conf = std::fs::read_to_string(root.join("var/tmp/caso-compare/scratch.conf")).unwrap();
    let caso_out = PathBuf::from(scratch_conf.lines().find_map(|l| l.strip_prefix("output_path = ")).unwrap());
    let caso = caso_diff::spool_records(&common::dirq_elements(&caso_out), "cASO");
    let fed = caso_diff::message_records(dry_run_messages(fed_stdout), "fedsite --dry-run");
    let now = sim_now(&auth_url);
    let facts = caso_diff::Facts::of(sim::scenario::builtin("tiny").unwrap().generate().anchored_at(now), &from, &to);
    assert!(
        caso.len() >= 3 && fed.len() >= 3,
        "both sides have records for {from} .. {to}: cASO {:?}, fedsite {:?}\ncASO log:\n{caso_log}",
        caso_diff::per_kind(&caso),
        caso_diff::per_kind(&fed)
    );
    let failures = caso_diff::caso_extractor_failures(caso_log);
    assert!(failures.is_empty(), "cASO's extractors failed (extractor, project): {failures:?}\n{caso_log}");
    let c = caso_diff::compare(&facts, &caso, &fed, caso_log, started);
    eprintln!(
        "migration dry run {from} .. {to}: cASO {:?}, fedsite {:?}; rules applied {:?}",
        caso_diff::per_kind(&caso),
        caso_diff::per_kind(&fed),
        c.applied
    );
    assert!(c.findings.is_empty(), "{} undocumented differences:\n{}", c.findings.len(), c.report());
    // The AMS side: every record the ledger sent arrived, once.
    let ledger = ledger::Ledger::open(root.join("var/lib/fedsite/ledger.sqlite")).unwrap();
    let sent = ledger.messages_in_state(ledger::MessageState::Sent).unwrap();
    assert!(!sent.is_empty(), "the send unit sent the extract unit's messages");
    assert!(ledger.messages_in_state(ledger::MessageState::Spooled).unwrap().is_empty());
    let mut want = std::collections::BTreeSet::new();
    for m in &sent {
        for r in ledger.message_records(&m.element).unwrap() {
            want.insert((m.kind.clone(), r.key));
        }
    }
    let dns = scratch.path().join("dns");
    std::fs::write(&dns, format!("{}\n", sim::ams::TEST_CLIENT_DN)).unwrap();
    let receive = runner
        .command(&format!(
            "fedsite receive --ams-url {ams_url} --project accounting --subscription {sub} --token {tok} --capath sim-ams/ca.pem --dns {dns} --records received.sqlite --once",
            sub = sim::ams::DEFAULT_SUBSCRIPTION,
            tok = sim::ams::RECEIVER_TOKEN,
            dns = dns.display()
        ))
        .output()
        .unwrap();
    assert!(receive.status.success(), "{}", String::from_utf8_lossy(&receive.stderr));
    let store = messaging::receiver::RecordStore::open(scratch.path().join("received.sqlite")).unwrap();
    let got: std::collections::BTreeSet<(String, String)> =
        store.receipts().unwrap().into_iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(got, want, "every record sent was received");
    assert!(store.receipts().unwrap().iter().all(|r| r.3 == 1), "once");
}
