//! messaging::dirq against its spec and against the REAL python dirq 1.8 (the venv of
//! scripts/test, `$FEDSITE_VENV/bin/python`): names, layout, lock/get/remove, purge,
//! concurrent producers/consumers across processes, and the spool cASO's ssm messenger writes.

use messaging::dirq::{ElementName, Error, Options, QueueSimple};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// ---------- helpers ----------

/// A python driver around the real `dirq.QueueSimple`; subcommand in argv[1].
const PY: &str = r#"
import errno, hashlib, os, sys, time
from dirq.QueueSimple import QueueSimple
cmd, path, args = sys.argv[1], sys.argv[2], sys.argv[3:]
q = QueueSimple(path)
out = sys.stdout
def h(b): return hashlib.sha256(b).hexdigest()
if cmd == "add":              # files...: add each file's bytes
    for f in args:
        out.write(q.add(open(f, "rb").read()) + "\n")
elif cmd == "addstr":         # a str, like cASO's json messages (utf-8 path)
    out.write(q.add(args[0]) + "\n")
elif cmd == "add_many":       # n tag: add b"<tag>-<i>" n times
    for i in range(int(args[0])):
        out.write(q.add(("%s-%d" % (args[1], i)).encode()) + "\n")
elif cmd == "read":           # lock, get, unlock every element: "name sha"
    for n in q:
        assert q.lock(n), n
        out.write("%s %s\n" % (n, h(q.get(n))))
        q.unlock(n)
elif cmd == "lock":
    out.write("%s\n" % q.lock(args[0]))
elif cmd == "lock_strict":
    try:
        out.write("%s\n" % q.lock(args[0], permissive=False))
    except OSError as e:
        out.write("errno %d\n" % e.errno)
elif cmd == "unlock":
    out.write("%s\n" % q.unlock(args[0]))
elif cmd == "count":
    out.write("%d\n" % q.count())
elif cmd == "purge":          # maxtemp maxlock
    q.purge(int(args[0]), int(args[1]))
elif cmd == "consume":        # like ssmsend, until <done-file> exists and the queue is empty
    done, seen = args[0], 0
    while True:
        finished = os.path.exists(done)
        for n in q:
            if not q.lock(n):
                continue
            out.write("%s %s\n" % (n, h(q.get(n))))
            q.remove(n)
        q.purge()
        if finished and q.count() == 0:
            break
        time.sleep(0.001)
elif cmd == "caso":           # the real cASO ssm messenger pushes the vector messages
    import json
    import xml.etree.ElementTree as ET
    from oslo_config import cfg
    import caso.messenger.ssm as ssm
    cfg.CONF([], project="caso")
    cfg.CONF.set_override("output_path", path, group="ssm")
    d = args[0]
    cloud = open(d + "/cloud-message.txt", encoding="utf-8").read()
    cloud = cloud.split("\n", 1)[1][:-1].split("\n%%\n")
    js = lambda f: [json.dumps(r) for r in json.load(open(d + "/" + f))["UsageRecords"]]
    ET.register_namespace("sr", "http://eu-emi.eu/namespaces/2011/02/storagerecord")
    st = [ET.tostring(c) for c in ET.fromstring(open(d + "/storage-message.xml", "rb").read())]
    ssm.SSMMessenger()._push(cloud, js("ip-message.json"), js("accelerator-message.json"), st)
else:
    sys.exit("unknown command " + cmd)
"#;

/// The venv python of scripts/test; never skipped: no python is a failure.
fn python() -> PathBuf {
    match std::env::var_os("FEDSITE_VENV") {
        Some(v) => {
            let p = Path::new(&v).join("bin/python");
            assert!(p.exists(), "FEDSITE_VENV={} has no bin/python", Path::new(&v).display());
            p
        }
        None => {
            let p = PathBuf::from("/tmp/pyprobe/venv/bin/python");
            assert!(
                p.exists(),
                "no python with dirq 1.8: FEDSITE_VENV is unset (run via scripts/test) \
                 and the fallback {} does not exist",
                p.display()
            );
            p
        }
    }
}

fn py_cmd(cmd: &str, queue: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(python());
    c.arg("-c").arg(PY).arg(cmd).arg(queue).args(args);
    c.env("PYTHONWARNINGS", "ignore");
    c
}

/// Runs the python driver; returns its stdout lines (panics with stderr on failure).
fn py(cmd: &str, queue: &Path, args: &[&str]) -> Vec<String> {
    let out = py_cmd(cmd, queue, args).output().expect("run python");
    assert!(out.status.success(), "python dirq {cmd} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Deterministic pseudo-random bytes.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

fn payloads() -> Vec<Vec<u8>> {
    vec![
        b"APEL-cloud-message: v0.4\nVMUUID: x\n".to_vec(),
        Vec::new(),
        b"\n".to_vec(),
        "UTF-8 caf\u{e9} \u{1f600}".as_bytes().to_vec(),
        vec![0xff, 0xfe, 0x00, 0x80, b'\n', 0x00],
        bytes(1, 1 << 20),
        bytes(2, 4097),
    ]
}

/// Every file under `root`, relative, sorted ("d/" for directories).
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for d in fs::read_dir(root).unwrap().flatten() {
        let dn = d.file_name().into_string().unwrap();
        if d.file_type().unwrap().is_dir() {
            out.push(format!("{dn}/"));
            for f in fs::read_dir(d.path()).unwrap().flatten() {
                out.push(format!("{dn}/{}", f.file_name().into_string().unwrap()));
            }
        } else {
            out.push(dn);
        }
    }
    out.sort();
    out
}

fn set_mtime_ago(p: &Path, secs: u64) {
    let t = SystemTime::now() - Duration::from_secs(secs);
    File::open(p).unwrap().set_times(fs::FileTimes::new().set_modified(t).set_accessed(t)).unwrap();
}

fn mtime(p: &Path) -> SystemTime {
    fs::metadata(p).unwrap().modified().unwrap()
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

// ---------- names and layout ----------

#[test]
fn element_names_accept_only_dir_slash_14_lowercase_hex() {
    let ok = ElementName::parse("6b0bf3a4/6b0bf3de56c97b").unwrap();
    assert_eq!(ok.dir(), "6b0bf3a4");
    assert_eq!(ok.file(), "6b0bf3de56c97b");
    assert_eq!(ok, "6b0bf3a4/6b0bf3de56c97b");
    for bad in [
        "",
        "..",
        "../6b0bf3de56c97b",
        "6b0bf3a4/..",
        "6b0bf3a4/../../../etc/passwd",
        "/6b0bf3a4/6b0bf3de56c97b",
        "6b0bf3a4//6b0bf3de56c97b",
        "6b0bf3a4/6b0bf3de56c97b/",
        "6b0bf3a4/6b0bf3de56c97b/x",
        "6b0bf3a4/6b0bf3de56c97b.lck",
        "6b0bf3a4/6b0bf3de56c97b.tmp",
        "6B0BF3A4/6b0bf3de56c97b",
        "6b0bf3a4/6b0bf3de56c97B",
        "6b0bf3a/6b0bf3de56c97b",
        "6b0bf3a4/6b0bf3de56c97",
        "6b0bf3a4/6b0bf3de56c97b\n",
        "6b0bf3a4/6b0bf3de56c9\x007b",
        "6b0bf3a4\\6b0bf3de56c97b",
        "6b0bf3a4",
    ] {
        assert!(matches!(ElementName::parse(bad), Err(Error::InvalidName { .. })), "{bad:?} accepted");
    }
}

#[test]
fn operations_reject_names_that_escape_the_queue() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("secret"), b"x").unwrap();
    let q = QueueSimple::open(t.path().join("q")).unwrap();
    for bad in ["../secret", "..", "/etc/passwd", "6b0bf3a4/../../secret"] {
        assert!(matches!(q.lock(bad, true), Err(Error::InvalidName { .. })), "{bad}");
        assert!(matches!(q.get(bad), Err(Error::InvalidName { .. })), "{bad}");
        assert!(matches!(q.remove(bad), Err(Error::InvalidName { .. })), "{bad}");
        assert!(matches!(q.unlock(bad, true), Err(Error::InvalidName { .. })), "{bad}");
    }
    assert!(t.path().join("secret").exists());
    let err = ElementName::parse("../secret").unwrap_err().to_string();
    assert!(err.contains("../secret"), "{err}");
}

#[test]
fn add_writes_python_layout_dir_rounded_to_60s_name_secs_micros_rndhex() {
    let t = tempfile::tempdir().unwrap();
    let q =
        QueueSimple::open_with(t.path().join("a/b/q"), Options { rndhex: Some(0x1b), ..Default::default() }).unwrap();
    assert_eq!(q.rndhex(), 0xb, "rndhex is taken mod 16");
    let before = now_secs();
    let name = q.add(b"hello").unwrap();
    let after = now_secs();
    let secs = u64::from_str_radix(&name.file()[..8], 16).unwrap();
    let micros = u64::from_str_radix(&name.file()[8..13], 16).unwrap();
    assert!((before..=after).contains(&secs), "{name}");
    assert!(micros <= 999_999, "{name}");
    assert_eq!(&name.file()[13..], "b");
    // the directory is computed just before the name (python too): it may be one tick older
    let dirs: Vec<String> = (before..=after).map(|s| format!("{:08x}", s - s % 60)).collect();
    assert!(dirs.iter().any(|d| d == name.dir()), "{name} not in {dirs:?}");
    assert_eq!(tree(q.path()), vec![format!("{}/", name.dir()), name.to_string()], "no .tmp left");
    assert_eq!(fs::read(q.path().join(name.as_str())).unwrap(), b"hello");
}

#[test]
fn granularity_one_gives_one_directory_per_second() {
    let t = tempfile::tempdir().unwrap();
    let q = QueueSimple::open_with(t.path(), Options { granularity: 1, ..Default::default() }).unwrap();
    let before = now_secs();
    let n = q.add(b"x").unwrap();
    let dir = u64::from_str_radix(n.dir(), 16).unwrap();
    let secs = u64::from_str_radix(&n.file()[..8], 16).unwrap();
    assert!((before..=secs).contains(&dir), "{n}");
}

#[test]
fn default_permissions_follow_the_process_umask_like_python() {
    let t = tempfile::tempdir().unwrap();
    let q = QueueSimple::open(t.path().join("q")).unwrap();
    let n = q.add(b"x").unwrap();
    let py_q = t.path().join("py");
    let pn = py("addstr", &py_q, &["x"]).remove(0);
    let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(q.path().join(n.as_str())), mode(py_q.join(&pn)));
    assert_eq!(mode(q.path().join(n.dir())), mode(py_q.join(&pn[..8])));
    assert_eq!(mode(q.path().to_path_buf()), mode(py_q.clone()));
}

#[test]
fn explicit_umask_gives_the_modes_python_gives() {
    let t = tempfile::tempdir().unwrap();
    let q = QueueSimple::open_with(t.path().join("q"), Options { umask: Some(0o027), ..Default::default() }).unwrap();
    let n = q.add(b"x").unwrap();
    let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(q.path().join(n.as_str())), 0o640);
    assert_eq!(mode(q.path().join(n.dir())), 0o750);
    assert_eq!(mode(q.path().to_path_buf()), 0o750);
    // python with umask=0o027 produces the same modes
    let py_q = t.path().join("py");
    let script = format!(
        "from dirq.QueueSimple import QueueSimple; print(QueueSimple({:?}, umask=0o027).add(b'x'))",
        py_q.to_str().unwrap()
    );
    let out = Command::new(python()).arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pn = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(mode(py_q.join(&pn)), 0o640);
    assert_eq!(mode(py_q.join(&pn[..8])), 0o750);
}

#[test]
fn names_sort_in_insertion_order() {
    let t = tempfile::tempdir().unwrap();
    let q = QueueSimple::open(t.path()).unwrap();
    let added: Vec<ElementName> = (0..500).map(|i| q.add(format!("{i}").as_bytes()).unwrap()).collect();
    let mut sorted = added.clone();
    sorted.sort();
    assert_eq!(sorted, added, "names increase within a process");
    assert_eq!(sorted.iter().collect::<BTreeSet<_>>().len(), 500, "names are unique");
    assert_eq!(q.iter().unwrap(), added);
    assert_eq!(q.count().unwrap(), 500);
}

#[test]
fn iteration_sorts_dirs_then_names_and_skips_tmp_lck_and_foreign_entries() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    for (d, files) in [
        ("ffffff00", vec!["00000000000001", "00000000000000"]),
        ("00000000", vec!["ffffffffffffff", "0000000000000a", "0000000000000b.tmp", "0000000000000c.lck"]),
        ("0000003c", vec!["README", "0000000000000A", "0000000000000d~", ".hidden"]),
    ] {
        fs::create_dir(root.join(d)).unwrap();
        for f in files {
            fs::write(root.join(d).join(f), f).unwrap();
        }
    }
    fs::create_dir(root.join("0000003c/00000000000009")).unwrap(); // a directory named like an element
    fs::create_dir(root.join("notadir")).unwrap();
    fs::write(root.join("00000078"), b"a file named like a dir").unwrap();
    fs::create_dir(root.join("ABCDEF00")).unwrap();
    fs::write(root.join("ABCDEF00/00000000000003"), b"").unwrap();
    let q = QueueSimple::open(root).unwrap();
    let names: Vec<String> = q.iter().unwrap().into_iter().map(String::from).collect();
    assert_eq!(
        names,
        [
            "00000000/0000000000000a",
            "00000000/ffffffffffffff",
            "0000003c/00000000000009",
            "ffffff00/00000000000000",
            "ffffff00/00000000000001"
        ]
    );
    assert_eq!(q.count().unwrap(), 5);
    // python crashes (NotADirectoryError) on a file named like a directory; fedsite skips it
    fs::remove_file(root.join("00000078")).unwrap();
    assert_eq!(q.iter().unwrap().len(), 5);
    // python sees the same elements in the same order (it lists the element-named directory too)
    let py_names: Vec<String> = {
        let s = format!(
            "from dirq.QueueSimple import QueueSimple\nfor n in QueueSimple({:?}): print(n)",
            root.to_str().unwrap()
        );
        let o = Command::new(python()).arg("-c").arg(s).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().lines().map(str::to_string).collect()
    };
    assert_eq!(py_names, names);
}

#[test]
fn lock_get_unlock_remove_follow_python_semantics() {
    let t = tempfile::tempdir().unwrap();
    let q = QueueSimple::open(t.path()).unwrap();
    let n = q.add(b"payload").unwrap();
    let elt = t.path().join(n.as_str());
    let lck = t.path().join(format!("{n}.lck"));

    let e = q.get(&n).unwrap_err();
    assert_eq!(e.io_kind(), Some(ErrorKind::NotFound), "get reads the .lck: {e}");
    assert!(e.to_string().contains(".lck") && e.to_string().contains("read"), "{e}");

    set_mtime_ago(&elt, 1000);
    assert!(q.lock(&n, true).unwrap());
    assert!(mtime(&elt) > SystemTime::now() - Duration::from_secs(60), "lock touches the element");
    assert_eq!(fs::metadata(&lck).unwrap().len(), 7);
    assert!(!q.lock(&n, true).unwrap(), "already locked, permissive");
    let e = q.lock(&n, false).unwrap_err();
    assert_eq!(e.io_kind(), Some(ErrorKind::AlreadyExists));
    assert!(e.to_string().contains(&lck.display().to_string()), "{e}");
    assert_eq!(q.get(&n).unwrap(), b"payload");
    assert_eq!(q.count().unwrap(), 1, "locked elements are counted");
    assert_eq!(q.iter().unwrap(), vec![n.clone()], "locked elements are listed");

    assert!(q.unlock(&n, false).unwrap());
    assert!(!q.unlock(&n, true).unwrap());
    assert_eq!(q.unlock(&n, false).unwrap_err().io_kind(), Some(ErrorKind::NotFound));

    assert!(q.lock(&n, true).unwrap());
    q.remove(&n).unwrap();
    assert!(!elt.exists() && !lck.exists());
    assert_eq!(q.count().unwrap(), 0);
    assert!(!q.lock(&n, true).unwrap(), "vanished element, permissive");
    assert_eq!(q.lock(&n, false).unwrap_err().io_kind(), Some(ErrorKind::NotFound));
    assert_eq!(q.remove(&n).unwrap_err().io_kind(), Some(ErrorKind::NotFound));
}

#[test]
fn purge_removes_stale_tmp_unlocks_stale_locks_and_drops_empty_dirs_but_the_newest() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    build_purge_fixture(root);
    let q = QueueSimple::open(root).unwrap();
    let r = q.purge_default().unwrap();
    assert_eq!(r.removed_temp, vec!["000000c0/0000000000000a.tmp"]);
    assert_eq!(
        r.unlocked.iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([&"00000120/0000000000000b.lck".to_string(), &"000001e0/0000000000000e.lck".to_string()])
    );
    assert_eq!(r.removed_dirs, vec!["00000060", "000000c0"]);
    assert_eq!(tree(root), expected_after_default_purge());
    // foreign "*.tmp" files are never touched (python would delete this one)
    assert!(root.join("00000240/notes.tmp").exists());
}

#[test]
fn purge_with_zero_limits_keeps_tmp_and_locks() {
    let t = tempfile::tempdir().unwrap();
    build_purge_fixture(t.path());
    let q = QueueSimple::open(t.path()).unwrap();
    let r = q.purge(Duration::ZERO, Duration::ZERO).unwrap();
    assert!(r.removed_temp.is_empty() && r.unlocked.is_empty());
    assert_eq!(r.removed_dirs, vec!["00000060"]);
}

/// Old empty dir, a dir holding only a stale tmp, stale and fresh locks, a fresh tmp,
/// a foreign old `notes.tmp`, and an empty newest dir.
fn build_purge_fixture(root: &Path) {
    let mk = |d: &str| fs::create_dir_all(root.join(d)).unwrap();
    let file = |p: &str, age: u64| {
        fs::write(root.join(p), p).unwrap();
        set_mtime_ago(&root.join(p), age);
    };
    let lock = |p: &str, age: u64| {
        fs::hard_link(root.join(p), root.join(format!("{p}.lck"))).unwrap();
        set_mtime_ago(&root.join(p), age);
    };
    mk("00000060");
    mk("000000c0");
    file("000000c0/0000000000000a.tmp", 400);
    mk("00000120");
    file("00000120/0000000000000b", 5000);
    lock("00000120/0000000000000b", 700);
    mk("00000180");
    file("00000180/0000000000000c", 5000);
    lock("00000180/0000000000000c", 100);
    file("00000180/0000000000000d.tmp", 10);
    mk("000001e0");
    file("000001e0/0000000000000e", 5000);
    lock("000001e0/0000000000000e", 601);
    mk("00000240");
    file("00000240/notes.tmp", 5000);
    mk("6fffffc0");
    fs::write(root.join("README"), b"not part of the queue").unwrap();
}

fn expected_after_default_purge() -> Vec<&'static str> {
    vec![
        "00000120/",
        "00000120/0000000000000b",
        "00000180/",
        "00000180/0000000000000c",
        "00000180/0000000000000c.lck",
        "00000180/0000000000000d.tmp",
        "000001e0/",
        "000001e0/0000000000000e",
        "00000240/",
        "00000240/notes.tmp",
        "6fffffc0/",
        "README",
    ]
}

#[test]
fn concurrent_adds_from_threads_are_all_distinct() {
    let t = tempfile::tempdir().unwrap();
    let q = QueueSimple::open_with(t.path(), Options { rndhex: Some(3), ..Default::default() }).unwrap();
    let names: Vec<ElementName> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|k| {
                let q = &q;
                s.spawn(move || (0..100).map(|i| q.add(format!("{k}-{i}").as_bytes()).unwrap()).collect::<Vec<_>>())
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), 400);
    assert_eq!(q.count().unwrap(), 400);
    assert!(tree(t.path()).iter().all(|p| !p.ends_with(".tmp")));
}

// ---------- interop with the real python dirq ----------

#[test]
fn python_dirq_reads_every_element_fedsite_added_byte_for_byte() {
    let t = tempfile::tempdir().unwrap();
    let q = QueueSimple::open(t.path().join("q")).unwrap();
    let mut expected = Vec::new();
    for p in payloads() {
        let n = q.add(&p).unwrap();
        expected.push(format!("{n} {}", sha(&p)));
    }
    assert_eq!(py("read", q.path(), &[]), expected);
    assert_eq!(py("count", q.path(), &[]), vec![expected.len().to_string()]);
    // python's reads left no locks behind; fedsite can still lock everything
    for n in q.iter().unwrap() {
        assert!(q.lock(&n, true).unwrap());
    }
}

#[test]
fn fedsite_reads_every_element_python_added_byte_for_byte() {
    let t = tempfile::tempdir().unwrap();
    let qp = t.path().join("q");
    let mut files = Vec::new();
    for (i, p) in payloads().iter().enumerate() {
        let f = t.path().join(format!("in{i}"));
        fs::write(&f, p).unwrap();
        files.push(f.to_str().unwrap().to_string());
    }
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let mut names = py("add", &qp, &args);
    names.extend(py("addstr", &qp, &["{\"Type\": \"caf\u{e9}\"}"]));
    let mut want = payloads();
    want.push("{\"Type\": \"caf\u{e9}\"}".as_bytes().to_vec());

    let q = QueueSimple::open(&qp).unwrap();
    let listed: Vec<String> = q.iter().unwrap().into_iter().map(String::from).collect();
    assert_eq!(listed, names, "same names, python's insertion order");
    assert_eq!(q.count().unwrap(), want.len());
    for (n, w) in names.iter().zip(&want) {
        assert!(q.lock(n, false).unwrap());
        assert_eq!(sha(&q.get(n).unwrap()), sha(w), "{n}");
        q.remove(n).unwrap();
    }
    assert_eq!(py("count", &qp, &[]), vec!["0"]);
}

#[test]
fn python_lock_blocks_fedsite_lock_and_vice_versa() {
    let t = tempfile::tempdir().unwrap();
    let q = QueueSimple::open(t.path()).unwrap();
    let n = q.add(b"x").unwrap();
    assert_eq!(py("lock", q.path(), &[&n]), vec!["True"]);
    assert!(!q.lock(&n, true).unwrap());
    assert_eq!(q.lock(&n, false).unwrap_err().io_kind(), Some(ErrorKind::AlreadyExists));
    assert_eq!(py("unlock", q.path(), &[&n]), vec!["True"]);

    assert!(q.lock(&n, true).unwrap());
    assert_eq!(py("lock", q.path(), &[&n]), vec!["False"]);
    assert_eq!(py("lock_strict", q.path(), &[&n]), vec![format!("errno {}", libc_eexist())]);
    assert!(q.unlock(&n, false).unwrap());
    assert_eq!(py("lock", q.path(), &[&n]), vec!["True"]);
    assert!(!q.lock(&n, true).unwrap(), "python holds it again");
}

fn libc_eexist() -> i32 {
    std::io::Error::from(ErrorKind::AlreadyExists).raw_os_error().unwrap_or(17)
}

#[test]
fn purge_gives_the_same_tree_as_python_purge() {
    for (maxtemp, maxlock) in [(300u64, 600u64), (0, 600), (300, 0), (5, 50)] {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("py"), t.path().join("rs"));
        for r in [&a, &b] {
            fs::create_dir(r).unwrap();
            build_purge_fixture(r);
            fs::remove_file(r.join("00000240/notes.tmp")).unwrap(); // python deletes foreign .tmp; we don't
        }
        py("purge", &a, &[&maxtemp.to_string(), &maxlock.to_string()]);
        QueueSimple::open(&b).unwrap().purge(Duration::from_secs(maxtemp), Duration::from_secs(maxlock)).unwrap();
        assert_eq!(tree(&b), tree(&a), "purge({maxtemp}, {maxlock})");
    }
}

#[test]
fn concurrent_adds_from_fedsite_and_python_processes_all_arrive_in_order() {
    let t = tempfile::tempdir().unwrap();
    let q = QueueSimple::open(t.path()).unwrap();
    let child = py_cmd("add_many", q.path(), &["300", "py"]).stdout(Stdio::piped()).spawn().unwrap();
    let mine: Vec<ElementName> = (0..300).map(|i| q.add(format!("rs-{i}").as_bytes()).unwrap()).collect();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let theirs: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
    assert_eq!(theirs.len(), 300);

    let all = q.iter().unwrap();
    assert_eq!(all.len(), 600);
    let pos: BTreeMap<&str, usize> = all.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let rank = |names: &[&str]| names.iter().map(|n| pos[n]).collect::<Vec<_>>();
    let mine_s: Vec<&str> = mine.iter().map(|n| n.as_str()).collect();
    let theirs_s: Vec<&str> = theirs.iter().map(String::as_str).collect();
    assert!(rank(&mine_s).is_sorted(), "fedsite's elements in its insertion order");
    assert!(rank(&theirs_s).is_sorted(), "python's elements in its insertion order");
    for n in &all {
        assert!(q.lock(n, false).unwrap());
        let data = String::from_utf8(q.get(n).unwrap()).unwrap();
        let (who, i) = data.split_once('-').unwrap();
        let i: usize = i.parse().unwrap();
        let expect = if who == "rs" { mine[i].as_str() } else { theirs[i].as_str() };
        assert_eq!(n.as_str(), expect);
        q.unlock(n, false).unwrap();
    }
    let got: BTreeSet<String> = py("read", q.path(), &[]).into_iter().collect();
    assert_eq!(got.len(), 600);
}

#[test]
fn fedsite_and_python_consumers_race_on_one_queue_and_each_element_is_taken_once() {
    let t = tempfile::tempdir().unwrap();
    let q = QueueSimple::open(t.path().join("q")).unwrap();
    let done = t.path().join("done");
    let consumer = py_cmd("consume", q.path(), &[done.to_str().unwrap()]).stdout(Stdio::piped()).spawn().unwrap();

    let mut produced = BTreeMap::new();
    let mut taken_by_us = BTreeMap::new();
    for i in 0..400 {
        let p = format!("msg-{i}-").into_bytes().repeat(1 + i % 7);
        let n = q.add(&p).unwrap();
        produced.insert(n.to_string(), sha(&p));
        if i % 20 == 0 {
            std::thread::sleep(Duration::from_millis(5)); // let python start and compete
        }
        if i % 3 == 0 {
            // a fedsite consumer competing with python for whatever is there
            for n in q.iter().unwrap() {
                if q.lock(&n, true).unwrap() {
                    let data = q.get(&n).unwrap();
                    q.remove(&n).unwrap();
                    taken_by_us.insert(n.to_string(), sha(&data));
                }
            }
        }
    }
    fs::write(&done, b"").unwrap();
    let out = consumer.wait_with_output().unwrap();
    assert!(out.status.success(), "python consumer failed");
    let taken_by_py: BTreeMap<String, String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (n, h) = l.split_once(' ').unwrap();
            (n.to_string(), h.to_string())
        })
        .collect();
    assert!(taken_by_us.keys().all(|n| !taken_by_py.contains_key(n)), "an element was taken twice");
    assert!(!taken_by_us.is_empty() && !taken_by_py.is_empty(), "both consumers took elements");
    let mut all = taken_by_us.clone();
    all.extend(taken_by_py);
    assert_eq!(all, produced, "every element consumed once with its bytes");
    assert_eq!(q.count().unwrap(), 0);
    assert!(tree(q.path()).iter().all(|p| p.ends_with('/')), "no tmp/lck left: {:?}", tree(q.path()));
}

#[test]
fn fedsite_reads_the_spool_the_real_caso_ssm_messenger_writes() {
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/caso-5.2.2");
    let t = tempfile::tempdir().unwrap();
    let qp = t.path().join("outgoing");
    py("caso", &qp, &[vectors.to_str().unwrap()]);
    let q = QueueSimple::open(&qp).unwrap();
    let names = q.iter().unwrap();
    assert_eq!(names.len(), 4, "one message per record type: {:?}", tree(&qp));
    let mut got = Vec::new();
    for n in &names {
        assert!(q.lock(n, false).unwrap());
        got.push(q.get(n).unwrap());
    }
    // cASO writes cloud, ip, accelerator, storage in that order, byte for byte the vectors
    for (data, f) in
        got.iter().zip(["cloud-message.txt", "ip-message.json", "accelerator-message.json", "storage-message.xml"])
    {
        assert_eq!(String::from_utf8_lossy(data), fs::read_to_string(vectors.join(f)).unwrap(), "{f}");
    }
}
