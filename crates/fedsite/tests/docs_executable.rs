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

mod common;

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
        Runner { dir: dir.to_path_buf(), path, background: Vec::new() }
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
            .stdin(Stdio::null());
        c
    }

    fn run(&mut self, c: &DocCommand) {
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
            return;
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
    }
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
    let ledger = ledger::Ledger::open_sqlite(dir.path().join("ledger.sqlite")).unwrap();
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
