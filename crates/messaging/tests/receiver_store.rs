//! The receiver's stores: python dirq's `Queue` layout (read back by the REAL python dirq),
//! and the records store with APEL's semantics (latest per VM per month; summaries with deltas).

use std::path::PathBuf;

use apel::{CloudRecord, Fqan, Record, SiteName, VmStatus, VmUuid};
use chrono::{TimeZone, Utc};
use messaging::receiver::{DirQueue, RecordStore, parse_fqan};

fn python() -> PathBuf {
    let v = std::env::var("FEDSITE_VENV").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("/tmp/pyprobe/venv"));
    let p = v.join("bin/python");
    assert!(p.exists(), "no python venv with dirq at {} (set FEDSITE_VENV)", v.display());
    p
}

#[test]
fn incoming_queue_is_readable_by_python_dirq_queue() {
    let dir = tempfile::tempdir().unwrap();
    let q = DirQueue::open(dir.path().join("incoming")).unwrap();
    let name = q
        .add(&[
            ("body", b"APEL-cloud-message: v0.4\n"),
            ("signer", b"/C=XX/CN=a"),
            ("empaid", b"6b0bf3a4/6b0bf3de56c97b"),
        ])
        .unwrap();
    assert!(name.starts_with("00000000/"));
    assert!(dir.path().join("incoming/temporary").is_dir() && dir.path().join("incoming/obsolete").is_dir());
    let script = "import sys\nfrom dirq.queue import Queue\n\
q = Queue(sys.argv[1], schema={'body': 'string', 'signer': 'string?', 'empaid': 'string?'})\n\
for n in q:\n    q.lock(n); d = q.get(n); print(n, d['signer'], d['empaid'], repr(d['body']))\n";
    let out =
        std::process::Command::new(python()).arg("-c").arg(script).arg(dir.path().join("incoming")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("{name} /C=XX/CN=a 6b0bf3a4/6b0bf3de56c97b 'APEL-cloud-message: v0.4\\n'")
    );
}

fn vm(uuid: &str, month: u32, wall: u64, fqan: &str) -> Record {
    let mut r = CloudRecord::new(VmUuid::new(uuid).unwrap(), SiteName::new("S").unwrap());
    r.status = Some(VmStatus::Started);
    r.fqan = Some(Fqan::new(fqan).unwrap());
    r.start_time = Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    r.record_create_time = Some(Utc.with_ymd_and_hms(2026, month, 20, 0, 0, 0).unwrap());
    r.wall_duration = Some(wall);
    r.cpu_duration = Some(wall / 2);
    r.cpu_count = Some(1);
    Record::Cloud(r)
}

#[test]
fn latest_record_per_vm_and_month_wins_and_summaries_use_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = RecordStore::open(dir.path().join("r.sqlite")).unwrap();
    let a = "11111111-1111-4111-8111-111111111111";
    // January: two states of the same VM (the second replaces the first), then February.
    s.load("0", "e0", "/CN=x", b"", &[vm(a, 1, 100, "vo.a")]).unwrap();
    s.load("1", "e1", "/CN=x", b"", &[vm(a, 1, 1000, "vo.a")]).unwrap();
    s.load("2", "e2", "/CN=x", b"", &[vm(a, 2, 2500, "vo.a")]).unwrap();
    let again = s.load("2", "e2", "/CN=x", b"", &[vm(a, 2, 2500, "vo.a")]).unwrap();
    assert!(again.redelivered);
    let c = s.counts().unwrap();
    assert_eq!((c.messages, c.redeliveries, c.cloud_records), (3, 1, 2));
    let sums = s.cloud_summaries().unwrap();
    let got: Vec<(u32, i64, i64, u64, &str)> =
        sums.iter().map(|r| (r.month, r.wall_duration, r.cpu_duration, r.number_of_vms, r.vo.as_str())).collect();
    assert_eq!(got, [(1, 1000, 500, 1, "vo.a"), (2, 1500, 750, 1, "vo.a")]);
    assert_eq!(
        parse_fqan(Some("/atlas/higgs/Role=pilot/Capability=NULL")),
        ("atlas".into(), Some("/atlas/higgs".into()), Some("Role=pilot".into()))
    );
}

/// Element and field names can never leave the incoming queue's directory.
#[test]
fn incoming_queue_refuses_names_that_leave_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), b"outside").unwrap();
    let q = messaging::receiver::DirQueue::open(dir.path().join("incoming")).unwrap();
    let name = q.add(&[("body", b"x")]).unwrap();
    assert_eq!(q.field(&name, "body").unwrap(), b"x");
    for (n, k) in [
        ("..", "secret"),
        ("../..", "secret"),
        (name.as_str(), "../../secret"),
        ("/etc", "passwd"),
        (name.as_str(), ""),
    ] {
        let e = q.field(n, k).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{n:?} {k:?}: {e}");
    }
    assert!(q.add(&[("../escape", b"x")]).is_err());
    assert!(!dir.path().join("escape").exists());
}
