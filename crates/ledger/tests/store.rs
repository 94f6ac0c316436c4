//! Behaviour of the ledger operations, the same suite on every backend (SQLite file and
//! PostgreSQL database, see `suite!` at the end): snapshots never regress, commit_project is
//! atomic, checkpoints only move forward, republish queries, message state machine, usage
//! summary, reopening, two connections at once.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::Place;
use ledger::*;

fn t(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, d, h, 0, 0).unwrap()
}

fn cloud(vm: &str, month: &str, project: &str, vo: &str, at: DateTime<Utc>, wall: u64) -> Snapshot {
    Snapshot {
        kind: "cloud".into(),
        key: format!("{vm}/{month}"),
        project_id: project.into(),
        vo: Some(vo.into()),
        site: "SITE-A".into(),
        measured_at: at,
        month: Some(month.into()),
        start_time: Some(t(1, 0)),
        end_time: None,
        wall_seconds: Some(wall),
        cpu_seconds: Some(wall / 2),
        status: Some("started".into()),
        body: format!("VMUUID: {vm}\nWallDuration: {wall}\n"),
        fingerprint: None,
    }
}

fn msg(element: &str, snaps: &[&Snapshot], at: DateTime<Utc>) -> NewMessage {
    NewMessage {
        element: element.into(),
        kind: "cloud".into(),
        created_at: at,
        records: snaps.iter().map(|s| RecordRef::of(s)).collect(),
    }
}

fn newer_snapshot_replaces_and_older_is_kept_out(p: &Place) {
    let mut l = p.open();
    let s10 = cloud("vm1", "2026-10", "p1", "vo.a", t(10, 0), 1000);
    let s20 = cloud("vm1", "2026-10", "p1", "vo.a", t(20, 0), 2000);
    let s15 = cloud("vm1", "2026-10", "p1", "vo.a", t(15, 0), 1500);
    assert_eq!(l.upsert_snapshot(&s10, None).unwrap(), Upsert::Inserted);
    assert_eq!(l.upsert_snapshot(&s20, None).unwrap(), Upsert::Replaced);
    assert_eq!(l.upsert_snapshot(&s15, None).unwrap(), Upsert::KeptNewer);
    assert_eq!(l.upsert_snapshot(&s20, None).unwrap(), Upsert::Unchanged);
    let got = l.snapshot("cloud", "vm1/2026-10").unwrap().unwrap();
    assert_eq!(got.snapshot, s20);
    assert_eq!(got.body_sha256, s20.body_sha256());
}

fn identical_body_measured_later_moves_measured_at_so_a_late_older_state_is_refused(p: &Place) {
    let mut l = p.open();
    let a1 = cloud("vm1", "2026-10", "p1", "vo.a", t(1, 0), 500);
    let mut a3 = a1.clone();
    a3.measured_at = t(3, 0);
    let b2 = cloud("vm1", "2026-10", "p1", "vo.a", t(2, 0), 700);
    assert_eq!(l.upsert_snapshot(&a1, None).unwrap(), Upsert::Inserted);
    assert_eq!(l.upsert_snapshot(&a3, None).unwrap(), Upsert::Unchanged);
    assert_eq!(l.snapshot("cloud", "vm1/2026-10").unwrap().unwrap().snapshot.measured_at, t(3, 0));
    assert_eq!(l.upsert_snapshot(&b2, None).unwrap(), Upsert::KeptNewer);
    assert_eq!(l.snapshot("cloud", "vm1/2026-10").unwrap().unwrap().snapshot.wall_seconds, Some(500));
}

fn equal_measured_at_with_different_body_is_replaced_last_loaded_wins(p: &Place) {
    let mut l = p.open();
    let a = cloud("vm1", "2026-10", "p1", "vo.a", t(5, 0), 10);
    let b = cloud("vm1", "2026-10", "p1", "vo.a", t(5, 0), 20);
    l.upsert_snapshot(&a, None).unwrap();
    assert_eq!(l.upsert_snapshot(&b, None).unwrap(), Upsert::Replaced);
    assert_eq!(l.snapshot("cloud", "vm1/2026-10").unwrap().unwrap().snapshot.wall_seconds, Some(20));
}

fn preview_reports_what_upsert_would_do_without_writing(p: &Place) {
    let mut l = p.open();
    l.upsert_snapshot(&cloud("vm1", "2026-10", "p1", "vo.a", t(20, 0), 2000), None).unwrap();
    let batch = [
        cloud("vm1", "2026-10", "p1", "vo.a", t(10, 0), 1000), // older than stored
        cloud("vm2", "2026-10", "p1", "vo.a", t(10, 0), 1000), // new
        cloud("vm2", "2026-10", "p1", "vo.a", t(9, 0), 900),   // older than the previous entry
    ];
    assert_eq!(l.preview_snapshots(&batch).unwrap(), vec![Upsert::KeptNewer, Upsert::Inserted, Upsert::KeptNewer]);
    assert!(l.snapshot("cloud", "vm2/2026-10").unwrap().is_none());
}

fn preview_says_which_snapshots_a_commit_would_write(p: &Place) {
    let mut l = p.open();
    let stored = [
        cloud("vm1", "2026-10", "p1", "vo.a", t(20, 0), 2000),
        cloud("vm2", "2026-10", "p1", "vo.a", t(20, 0), 2000),
        cloud("vm3", "2026-10", "p2", "vo.a", t(20, 0), 2000),
    ];
    for s in &stored {
        l.upsert_snapshot(s, None).unwrap();
    }
    let mut moved = stored[1].clone();
    moved.measured_at = t(21, 0);
    // vm3 is stored under p2: found all the same.
    let mut elsewhere = stored[2].clone();
    elsewhere.project_id = "p1".into();
    let batch = [
        stored[0].clone(),                                     // same body, same time: nothing to write
        moved,                                                 // same body, later: measured_at moves
        cloud("vm4", "2026-10", "p1", "vo.a", t(20, 0), 1000), // new
        cloud("vm1", "2026-10", "p1", "vo.a", t(10, 0), 900),  // older than stored
        elsewhere,                                             // same body under another project
    ];
    let got = l.preview(&batch).unwrap();
    let upserts: Vec<Upsert> = got.iter().map(|v| v.upsert).collect();
    assert_eq!(upserts, l.preview_snapshots(&batch).unwrap());
    assert_eq!(upserts, [Upsert::Unchanged, Upsert::Unchanged, Upsert::Inserted, Upsert::KeptNewer, Upsert::Unchanged]);
    // A backend may say a snapshot writes when it does not (the default), never the reverse:
    // those it says do not write leave the stored snapshot as it was.
    for (s, v) in batch.iter().zip(&got) {
        if !v.writes {
            let before = l.snapshot(&s.kind, &s.key).unwrap().unwrap();
            l.upsert_snapshot(s, None).unwrap();
            assert_eq!(l.snapshot(&s.kind, &s.key).unwrap().unwrap(), before, "{}", s.key);
        }
    }
    if matches!(p, Place::Sqlite(..)) {
        let writes: Vec<bool> = got.iter().map(|v| v.writes).collect();
        assert_eq!(writes, [false, true, true, false, false]);
    }
}

fn snapshot_without_month_stores_month_of_measurement_and_bad_month_is_refused(p: &Place) {
    let mut l = p.open();
    let mut s = cloud("vol1", "2026-10", "p1", "vo.a", t(31, 23), 0);
    s.kind = "storage".into();
    s.key = "vol1".into();
    s.month = None;
    l.upsert_snapshot(&s, None).unwrap();
    assert_eq!(l.snapshot("storage", "vol1").unwrap().unwrap().snapshot.month.as_deref(), Some("2026-10"));
    s.month = Some("2026-13".into());
    let err = l.upsert_snapshot(&s, None).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("2026-13") && err.to_string().contains(l.location()), "{err}");
}

fn checkpoints_only_move_forward_unless_reset(p: &Place) {
    let mut l = p.open();
    assert_eq!(l.checkpoint("p1", "nova").unwrap(), None);
    assert!(l.advance_checkpoint("p1", "nova", t(10, 0), None).unwrap());
    assert!(!l.advance_checkpoint("p1", "nova", t(5, 0), None).unwrap());
    assert!(!l.advance_checkpoint("p1", "nova", t(10, 0), None).unwrap());
    assert_eq!(l.checkpoint("p1", "nova").unwrap(), Some(t(10, 0)));
    assert!(l.advance_checkpoint("p1", "nova", t(11, 0), None).unwrap());
    assert_eq!(l.checkpoint("p1", "nova").unwrap(), Some(t(11, 0)));
    // Per (project, kind).
    assert_eq!(l.checkpoint("p1", "cinder").unwrap(), None);
    assert_eq!(l.checkpoint("p2", "nova").unwrap(), None);
    l.reset_checkpoint("p1", "nova", Some(t(2, 0))).unwrap();
    assert_eq!(l.checkpoint("p1", "nova").unwrap(), Some(t(2, 0)));
    l.reset_checkpoint("p1", "nova", None).unwrap();
    assert_eq!(l.checkpoint("p1", "nova").unwrap(), None);
}

fn commit_project_stores_snapshots_messages_and_checkpoint_together(p: &Place) {
    let mut l = p.open();
    let run = l
        .begin_run(&NewRun { command: "extract".into(), window_from: Some(t(1, 0)), window_to: Some(t(2, 0)) })
        .unwrap();
    let a = cloud("vm1", "2026-10", "p1", "vo.a", t(2, 0), 100);
    let b = cloud("vm2", "2026-10", "p1", "vo.a", t(2, 0), 200);
    let c = ProjectCommit {
        run: Some(run),
        project_id: "p1".into(),
        checkpoint_kind: "nova".into(),
        snapshots: vec![a.clone(), b.clone()],
        messages: vec![msg("00000001/aaa", &[&a, &b], t(2, 0))],
        unchanged: Vec::new(),
        checkpoint_to: Some(t(2, 0)),
    };
    let r = l.commit_project(&c).unwrap();
    assert_eq!(r.upserts, vec![Upsert::Inserted, Upsert::Inserted]);
    assert_eq!((r.messages, r.checkpoint_advanced), (1, true));
    assert_eq!(l.checkpoint("p1", "nova").unwrap(), Some(t(2, 0)));
    let m = l.message("00000001/aaa").unwrap().unwrap();
    assert_eq!((m.state, m.record_count, m.run_id), (MessageState::Spooled, 2, Some(run)));
    assert_eq!(l.snapshot("cloud", "vm1/2026-10").unwrap().unwrap().run_id, Some(run));
    assert_eq!(
        l.message_records("00000001/aaa").unwrap().iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["vm1/2026-10", "vm2/2026-10"]
    );
}

fn commit_project_failing_midway_rolls_back_everything(p: &Place) {
    let mut l = p.open();
    let a = cloud("vm1", "2026-10", "p1", "vo.a", t(2, 0), 100);
    l.commit_project(&ProjectCommit {
        project_id: "p1".into(),
        checkpoint_kind: "nova".into(),
        snapshots: vec![a.clone()],
        messages: vec![msg("el/1", &[&a], t(2, 0))],
        unchanged: Vec::new(),
        checkpoint_to: Some(t(2, 0)),
        ..Default::default()
    })
    .unwrap();

    // Second commit: a newer snapshot of vm1, a new vm2, a fine message, then a message
    // reusing an existing spool element name -> the whole commit must roll back.
    let a2 = cloud("vm1", "2026-10", "p1", "vo.a", t(3, 0), 150);
    let b = cloud("vm2", "2026-10", "p1", "vo.a", t(3, 0), 50);
    let err = l
        .commit_project(&ProjectCommit {
            project_id: "p1".into(),
            checkpoint_kind: "nova".into(),
            snapshots: vec![a2, b],
            messages: vec![msg("el/2", &[], t(3, 0)), msg("el/1", &[], t(3, 0))],
            unchanged: Vec::new(),
            checkpoint_to: Some(t(3, 0)),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("el/1"), "{err}");
    assert_eq!(l.checkpoint("p1", "nova").unwrap(), Some(t(2, 0)));
    assert_eq!(l.snapshot("cloud", "vm1/2026-10").unwrap().unwrap().snapshot, a);
    assert!(l.snapshot("cloud", "vm2/2026-10").unwrap().is_none());
    assert!(l.message("el/2").unwrap().is_none());
    assert_eq!(l.pending().unwrap().len(), 1);

    // Two messages with the same name inside one commit fail the same way.
    let c = cloud("vm3", "2026-10", "p1", "vo.a", t(4, 0), 1);
    assert!(
        l.commit_project(&ProjectCommit {
            project_id: "p1".into(),
            checkpoint_kind: "nova".into(),
            snapshots: vec![c],
            messages: vec![msg("el/3", &[], t(4, 0)), msg("el/3", &[], t(4, 0))],
            unchanged: Vec::new(),
            checkpoint_to: Some(t(4, 0)),
            ..Default::default()
        })
        .is_err()
    );
    assert!(l.snapshot("cloud", "vm3/2026-10").unwrap().is_none());
    assert_eq!(l.checkpoint("p1", "nova").unwrap(), Some(t(2, 0)));
}

fn commit_project_refuses_snapshots_of_another_project(p: &Place) {
    let mut l = p.open();
    let err = l
        .commit_project(&ProjectCommit {
            project_id: "p1".into(),
            checkpoint_kind: "nova".into(),
            snapshots: vec![cloud("vm1", "2026-10", "p2", "vo.a", t(2, 0), 1)],
            unchanged: Vec::new(),
            checkpoint_to: Some(t(2, 0)),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("p2"), "{err}");
    assert_eq!(l.checkpoint("p1", "nova").unwrap(), None);
}

fn republish_query_returns_latest_per_key_in_period(p: &Place) {
    let mut l = p.open();
    for s in [
        cloud("vm1", "2026-10", "p1", "vo.a", t(10, 0), 1),
        cloud("vm1", "2026-10", "p1", "vo.a", t(20, 0), 2), // latest of vm1/10
        cloud("vm2", "2026-10", "p2", "vo.b", t(15, 0), 3),
        cloud("vm3", "2026-09", "p1", "vo.a", Utc.with_ymd_and_hms(2026, 9, 30, 0, 0, 0).unwrap(), 4),
    ] {
        l.upsert_snapshot(&s, None).unwrap();
    }
    let oct = SnapshotFilter {
        from: Some(t(1, 0)),
        to: Some(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()),
        ..Default::default()
    };
    let got = l.latest_snapshots(&oct).unwrap();
    let keys: Vec<_> = got.iter().map(|s| (s.snapshot.key.as_str(), s.snapshot.wall_seconds)).collect();
    assert_eq!(keys, [("vm1/2026-10", Some(2)), ("vm2/2026-10", Some(3))]);

    let vo_a = SnapshotFilter { vo: Some("vo.a".into()), ..Default::default() };
    assert_eq!(l.latest_snapshots(&vo_a).unwrap().len(), 2);
    let p2 = SnapshotFilter { project: Some("p2".into()), kind: Some("cloud".into()), ..Default::default() };
    assert_eq!(l.latest_snapshots(&p2).unwrap()[0].snapshot.key, "vm2/2026-10");
    let sep = SnapshotFilter { month: Some("2026-09".into()), ..Default::default() };
    assert_eq!(l.latest_snapshots(&sep).unwrap()[0].snapshot.key, "vm3/2026-09");
    // `to` is exclusive.
    let until_15 = SnapshotFilter { to: Some(t(15, 0)), kind: Some("cloud".into()), ..Default::default() };
    assert_eq!(l.latest_snapshots(&until_15).unwrap()[0].snapshot.key, "vm3/2026-09");
    assert_eq!(l.latest_snapshots(&until_15).unwrap().len(), 1);
}

fn unsent_and_deliveries_tell_which_version_went_in_which_message(p: &Place) {
    let mut l = p.open();
    let v1 = cloud("vm1", "2026-10", "p1", "vo.a", t(10, 0), 1);
    let w1 = cloud("vm2", "2026-10", "p1", "vo.a", t(10, 0), 5);
    l.upsert_snapshot(&v1, None).unwrap();
    l.upsert_snapshot(&w1, None).unwrap();
    l.record_message(&msg("m/1", &[&v1, &w1], t(10, 0)), None).unwrap();
    assert!(l.unsent_snapshots(&SnapshotFilter::default()).unwrap().is_empty());

    let v2 = cloud("vm1", "2026-10", "p1", "vo.a", t(11, 0), 2);
    l.upsert_snapshot(&v2, None).unwrap();
    let unsent = l.unsent_snapshots(&SnapshotFilter::default()).unwrap();
    assert_eq!(unsent.iter().map(|s| s.snapshot.key.as_str()).collect::<Vec<_>>(), ["vm1/2026-10"]);

    l.record_message(&msg("m/2", &[&v2], t(11, 0)), None).unwrap();
    l.quarantine("m/2", "413 too large").unwrap();
    // A quarantined message does not count as delivered.
    assert_eq!(l.unsent_snapshots(&SnapshotFilter::default()).unwrap().len(), 1);

    let d = l.deliveries("cloud", "vm1/2026-10").unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!((d[0].element.as_str(), d[0].is_current, d[0].measured_at), ("m/1", false, t(10, 0)));
    assert_eq!((d[1].element.as_str(), d[1].is_current, d[1].state), ("m/2", true, MessageState::Quarantined));
}

fn message_states_follow_spooled_sent_acknowledged(p: &Place) {
    let mut l = p.open();
    l.record_message(&msg("a", &[], t(1, 0)), None).unwrap();
    l.record_message(&msg("b", &[], t(1, 1)), None).unwrap();
    l.record_message(&msg("c", &[], t(1, 2)), None).unwrap();
    assert_eq!(l.pending().unwrap().iter().map(|m| m.element.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);

    l.mark_sent("a", "ams-17").unwrap();
    let a = l.message("a").unwrap().unwrap();
    assert_eq!((a.state, a.ams_id.as_deref()), (MessageState::Sent, Some("ams-17")));
    assert!(a.sent_at.is_some());
    l.mark_acknowledged("a").unwrap();
    assert_eq!(l.message("a").unwrap().unwrap().state, MessageState::Acknowledged);
    assert!(l.message("a").unwrap().unwrap().acknowledged_at.is_some());

    l.mark_sent("b", "ams-18").unwrap();
    l.quarantine("b", "rejected by AMS: 413").unwrap();
    let b = l.message("b").unwrap().unwrap();
    assert_eq!((b.state, b.reason.as_deref()), (MessageState::Quarantined, Some("rejected by AMS: 413")));

    assert_eq!(l.pending().unwrap().iter().map(|m| m.element.as_str()).collect::<Vec<_>>(), ["c"]);
    assert_eq!(l.messages_in_state(MessageState::Acknowledged).unwrap()[0].element, "a");
}

fn invalid_message_transitions_are_refused_and_change_nothing(p: &Place) {
    let mut l = p.open();
    l.record_message(&msg("a", &[], t(1, 0)), None).unwrap();
    let bad = |e: Error, from, to| {
        assert!(
            matches!(&e, Error::InvalidTransition { from: f, to: t, element, .. } if *f == from && *t == to && element == "a"),
            "{e}"
        )
    };
    bad(l.mark_acknowledged("a").unwrap_err(), MessageState::Spooled, MessageState::Acknowledged);
    l.mark_sent("a", "ams-1").unwrap();
    bad(l.mark_sent("a", "ams-2").unwrap_err(), MessageState::Sent, MessageState::Sent);
    assert_eq!(l.message("a").unwrap().unwrap().ams_id.as_deref(), Some("ams-1"));
    l.mark_acknowledged("a").unwrap();
    bad(l.quarantine("a", "late").unwrap_err(), MessageState::Acknowledged, MessageState::Quarantined);
    bad(l.mark_sent("a", "ams-3").unwrap_err(), MessageState::Acknowledged, MessageState::Sent);
    assert_eq!(l.message("a").unwrap().unwrap().state, MessageState::Acknowledged);

    l.record_message(&msg("q", &[], t(1, 0)), None).unwrap();
    l.quarantine("q", "bad").unwrap();
    assert!(matches!(l.mark_sent("q", "x").unwrap_err(), Error::InvalidTransition { .. }));
    assert!(matches!(l.mark_sent("nope", "x").unwrap_err(), Error::UnknownMessage { .. }));
    assert!(matches!(l.mark_sent("q", "").unwrap_err(), Error::Invalid { .. }));
    // A message may not list the same record twice.
    let s = cloud("vm1", "2026-10", "p1", "vo.a", t(1, 0), 1);
    assert!(matches!(l.record_message(&msg("d", &[&s, &s], t(1, 0)), None).unwrap_err(), Error::Invalid { .. }));
    assert!(l.message("d").unwrap().is_none());
}

fn runs_record_window_and_outcome_once(p: &Place) {
    let mut l = p.open();
    let r1 = l
        .begin_run(&NewRun { command: "extract".into(), window_from: Some(t(1, 0)), window_to: Some(t(2, 0)) })
        .unwrap();
    let r2 = l.begin_run(&NewRun { command: "send".into(), ..Default::default() }).unwrap();
    let open_run = l.run(r1).unwrap().unwrap();
    assert_eq!((open_run.outcome, open_run.finished_at, open_run.window_to), (None, None, Some(t(2, 0))));
    l.finish_run(r1, RunOutcome::Partial, Some("project p3: 403")).unwrap();
    let done = l.run(r1).unwrap().unwrap();
    assert_eq!((done.outcome, done.detail.as_deref()), (Some(RunOutcome::Partial), Some("project p3: 403")));
    assert!(done.finished_at.unwrap() >= done.started_at);
    assert!(matches!(l.finish_run(r1, RunOutcome::Succeeded, None).unwrap_err(), Error::RunAlreadyFinished { .. }));
    assert!(matches!(
        l.finish_run(RunId(999), RunOutcome::Failed, None).unwrap_err(),
        Error::UnknownRun { run: 999, .. }
    ));
    assert_eq!(l.runs(10).unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), [r2, r1]);
}

fn seen_keys_lists_what_the_ledger_saw_per_project(p: &Place) {
    let mut l = p.open();
    for (vol, p, status) in [("vol-b", "p1", "online"), ("vol-a", "p1", "deleted"), ("vol-c", "p2", "online")] {
        let mut s = cloud(vol, "2026-10", p, "vo.a", t(3, 0), 0);
        s.kind = "storage".into();
        s.key = vol.into();
        s.status = Some(status.into());
        l.upsert_snapshot(&s, None).unwrap();
    }
    assert_eq!(l.seen_keys("storage", "p1").unwrap(), ["vol-a", "vol-b"]);
    assert_eq!(l.seen("storage", "p1").unwrap()[0].status.as_deref(), Some("deleted"));
    assert!(l.seen_keys("cloud", "p1").unwrap().is_empty());
}

fn usage_summary_sums_latest_cloud_snapshot_per_key(p: &Place) {
    let mut l = p.open();
    for s in [
        cloud("vm1", "2026-10", "p1", "vo.a", t(10, 0), 100),
        cloud("vm1", "2026-10", "p1", "vo.a", t(20, 0), 300), // replaces 100
        cloud("vm2", "2026-10", "p1", "vo.a", t(20, 0), 40),
        cloud("vm3", "2026-10", "p2", "vo.b", t(20, 0), 1000),
        cloud("vm1", "2026-09", "p1", "vo.a", t(1, 0), 10),
    ] {
        l.upsert_snapshot(&s, None).unwrap();
    }
    let mut vol = cloud("vol1", "2026-10", "p1", "vo.a", t(20, 0), 99999);
    vol.kind = "storage".into();
    vol.key = "vol1".into();
    l.upsert_snapshot(&vol, None).unwrap();

    let all = l.usage_summary(&SnapshotFilter::default(), SummaryGroup::ALL).unwrap();
    let row = |vo: &str, p: &str, m: &str, n, w, c| UsageRow {
        vo: Some(vo.into()),
        project_id: Some(p.into()),
        month: Some(m.into()),
        records: n,
        wall_seconds: w,
        cpu_seconds: c,
    };
    assert_eq!(
        all,
        [
            row("vo.a", "p1", "2026-09", 1, 10, 5),
            row("vo.a", "p1", "2026-10", 2, 340, 170),
            row("vo.b", "p2", "2026-10", 1, 1000, 500)
        ]
    );
    let by_vo = l
        .usage_summary(
            &SnapshotFilter { month: Some("2026-10".into()), ..Default::default() },
            SummaryGroup { vo: true, ..Default::default() },
        )
        .unwrap();
    assert_eq!(
        by_vo.iter().map(|r| (r.vo.as_deref(), r.month.as_deref(), r.wall_seconds)).collect::<Vec<_>>(),
        [(Some("vo.a"), None, 340), (Some("vo.b"), None, 1000)]
    );
    let total = l.usage_summary(&SnapshotFilter::default(), SummaryGroup::default()).unwrap();
    assert_eq!((total.len(), total[0].records, total[0].wall_seconds), (1, 4, 1350));
    assert!(
        l.usage_summary(&SnapshotFilter { vo: Some("none".into()), ..Default::default() }, SummaryGroup::default())
            .unwrap()
            .is_empty()
    );
}

fn times_are_kept_to_the_microsecond_and_truncated_below(p: &Place) {
    let mut l = p.open();
    let at = t(2, 0) + Duration::nanoseconds(1_500_123_999);
    assert!(l.advance_checkpoint("p1", "nova", at, None).unwrap());
    let want = t(2, 0) + Duration::microseconds(1_500_123);
    assert_eq!(l.checkpoint("p1", "nova").unwrap(), Some(want));
    // The truncated time is the same checkpoint: not "forward".
    assert!(!l.advance_checkpoint("p1", "nova", want, None).unwrap());
    let s = cloud("vm1", "2026-10", "p1", "vo.a", at, 1);
    l.upsert_snapshot(&s, None).unwrap();
    assert_eq!(l.snapshot("cloud", "vm1/2026-10").unwrap().unwrap().snapshot.measured_at, want);
}

fn reopen_keeps_everything(p: &Place) {
    let (run, s) = {
        let mut l = p.open();
        let run = l
            .begin_run(&NewRun { command: "extract".into(), window_from: Some(t(1, 0)), window_to: Some(t(2, 0)) })
            .unwrap();
        let s = cloud("vm1", "2026-10", "p1", "vo.a", t(2, 0), 42);
        l.commit_project(&ProjectCommit {
            run: Some(run),
            project_id: "p1".into(),
            checkpoint_kind: "nova".into(),
            snapshots: vec![s.clone()],
            messages: vec![msg("e/1", &[&s], t(2, 0))],
            unchanged: Vec::new(),
            checkpoint_to: Some(t(2, 0) + Duration::microseconds(1_500_123)),
        })
        .unwrap();
        l.mark_sent("e/1", "ams-9").unwrap();
        l.finish_run(run, RunOutcome::Succeeded, None).unwrap();
        (run, s)
    };
    let l = p.open();
    assert_eq!(l.checkpoint("p1", "nova").unwrap(), Some(t(2, 0) + Duration::microseconds(1_500_123)));
    assert_eq!(l.snapshot("cloud", "vm1/2026-10").unwrap().unwrap().snapshot, s);
    let m = l.message("e/1").unwrap().unwrap();
    assert_eq!(
        (m.state, m.ams_id.as_deref(), m.record_count, m.run_id),
        (MessageState::Sent, Some("ams-9"), 1, Some(run))
    );
    let r = l.run(run).unwrap().unwrap();
    assert_eq!((r.outcome, r.window_from, r.window_to), (Some(RunOutcome::Succeeded), Some(t(1, 0)), Some(t(2, 0))));
    assert_eq!(l.message_records("e/1").unwrap(), [RecordRef::of(&s)]);
}

fn extract_and_send_connections_work_concurrently(p: &Place) {
    drop(p.open());
    const N: u32 = 60;
    let start = t(1, 0);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let mut l = p.open();
            for i in 1..=N {
                let at = start + Duration::minutes(i as i64);
                let s = cloud(&format!("vm{i}"), "2026-10", "p1", "vo.a", at, i as u64);
                l.commit_project(&ProjectCommit {
                    project_id: "p1".into(),
                    checkpoint_kind: "nova".into(),
                    snapshots: vec![s.clone()],
                    messages: vec![msg(&format!("e/{i:04}"), &[&s], at)],
                    unchanged: Vec::new(),
                    checkpoint_to: Some(at),
                    ..Default::default()
                })
                .unwrap();
            }
        });
        sc.spawn(|| {
            let mut l = p.open();
            let mut acked = 0;
            while acked < N {
                // Consistency across connections: a checkpoint at minute k means at least k
                // snapshots are visible (commit_project is one transaction).
                let cp = l.checkpoint("p1", "nova").unwrap();
                let snaps = l.latest_snapshots(&SnapshotFilter::default()).unwrap().len() as i64;
                let k = cp.map(|c| (c - start).num_minutes()).unwrap_or(0);
                assert!(snaps >= k, "checkpoint {k} but only {snaps} snapshots visible");
                for m in l.pending().unwrap() {
                    if m.state == MessageState::Spooled {
                        l.mark_sent(&m.element, &format!("ams-{}", m.element)).unwrap();
                    } else {
                        l.mark_acknowledged(&m.element).unwrap();
                        acked += 1;
                    }
                }
                std::thread::yield_now();
            }
        });
    });

    let l = p.open();
    assert_eq!(l.messages_in_state(MessageState::Acknowledged).unwrap().len(), N as usize);
    assert_eq!(l.latest_snapshots(&SnapshotFilter::default()).unwrap().len(), N as usize);
    assert_eq!(l.checkpoint("p1", "nova").unwrap(), Some(start + Duration::minutes(N as i64)));
    assert!(l.unsent_snapshots(&SnapshotFilter::default()).unwrap().is_empty());
}

fn run_warnings_last_run_and_message_counts(p: &Place) {
    let mut l = p.open();
    let run = |l: &mut Ledger, c: &str| l.begin_run(&NewRun { command: c.into(), ..Default::default() }).unwrap();
    let e1 = run(&mut l, "accounting extract");
    l.finish_run(e1, RunOutcome::Succeeded, None).unwrap();
    let s1 = run(&mut l, "send");
    let e2 = run(&mut l, "accounting extract");
    l.add_run_warning(e2, "warn", "flavor \"m1\": <b>bad</b> benchmark").unwrap();
    l.add_run_warning(e2, "error", "project p2: no VO").unwrap();
    l.finish_run(e2, RunOutcome::Partial, Some("1 project failed")).unwrap();
    let w = l.run_warnings(e2).unwrap();
    assert_eq!(
        w.iter().map(|w| (w.run, w.level.as_str(), w.message.as_str())).collect::<Vec<_>>(),
        [(e2, "warn", "flavor \"m1\": <b>bad</b> benchmark"), (e2, "error", "project p2: no VO")]
    );
    assert!(l.run_warnings(e1).unwrap().is_empty());
    assert!(matches!(l.add_run_warning(RunId(9999), "warn", "x"), Err(Error::UnknownRun { .. })));
    assert!(matches!(l.add_run_warning(e2, "", "x"), Err(Error::Invalid { .. })));

    assert_eq!(l.last_run("accounting extract", None).unwrap().unwrap().id, e2);
    assert_eq!(l.last_run("accounting extract", Some(RunOutcome::Succeeded)).unwrap().unwrap().id, e1);
    assert_eq!(l.last_run("send", None).unwrap().unwrap().id, s1);
    assert_eq!(l.last_run("send", Some(RunOutcome::Succeeded)).unwrap(), None);
    assert_eq!(l.last_run("receive", None).unwrap(), None);

    let a = cloud("vm1", "2026-10", "p1", "vo.a", t(2, 0), 10);
    let b = cloud("vm2", "2026-10", "p1", "vo.a", t(2, 0), 20);
    let c = cloud("vm3", "2026-10", "p1", "vo.a", t(2, 0), 30);
    l.record_message(&msg("m1", &[&a, &b], t(2, 0)), None).unwrap();
    l.record_message(&msg("m2", &[&c], t(2, 1)), None).unwrap();
    l.record_message(&msg("m3", &[&c], t(2, 2)), None).unwrap();
    l.mark_sent("m1", "id-1").unwrap();
    l.quarantine("m3", "refused").unwrap();
    let counts: Vec<_> =
        l.message_counts().unwrap().into_iter().map(|c| (c.kind, c.state, c.messages, c.records)).collect();
    let mut counts = counts;
    counts.sort_by_key(|c| c.1.as_str());
    assert_eq!(
        counts,
        [
            ("cloud".to_string(), MessageState::Quarantined, 1, 1),
            ("cloud".to_string(), MessageState::Sent, 1, 2),
            ("cloud".to_string(), MessageState::Spooled, 1, 1),
        ]
    );
}

fn acts(
    server: &str,
    project: &str,
    updated: DateTime<Utc>,
    fetched_at: DateTime<Utc>,
    names: &[&str],
) -> CachedActions {
    CachedActions {
        server_id: server.into(),
        project_id: project.into(),
        updated,
        fetched_at,
        actions: names
            .iter()
            .enumerate()
            .map(|(i, n)| CachedAction {
                action: n.to_string(),
                start_time: t(1, i as u32) + Duration::microseconds(7),
            })
            .collect(),
    }
}

fn by_server(mut v: Vec<StoredActions>) -> Vec<StoredActions> {
    v.sort_by(|a, b| a.cached.server_id.cmp(&b.cached.server_id));
    v
}

fn cached_actions_are_looked_up_per_project_batch_and_replaced_by_later_fetches(p: &Place) {
    let mut l = p.open();
    let s1 = acts("s1", "p1", t(1, 0), t(1, 1), &["create", "suspend", "resume"]);
    let s2 = acts("s2", "p1", t(1, 0), t(1, 1), &[]);
    let other = acts("s3", "p2", t(1, 0), t(1, 1), &["pause"]);
    l.store_cached_actions("p1", &[s1.clone(), s2.clone()], &[], t(2, 0)).unwrap();
    l.store_cached_actions("p2", std::slice::from_ref(&other), &[], t(2, 0)).unwrap();
    let got = by_server(l.cached_actions("p1", &["s1", "s2", "s3", "nope"]).unwrap());
    assert_eq!(
        got,
        [StoredActions { cached: s1.clone(), seen_at: t(2, 0) }, StoredActions { cached: s2, seen_at: t(2, 0) }]
    );
    assert_eq!(l.cached_actions("p1", &[]).unwrap(), []);
    assert_eq!(l.cached_actions("p2", &["s1"]).unwrap(), [], "a list under another project is not returned");

    // A later fetch replaces it; an earlier one (a slower concurrent run) does not.
    let newer = acts("s1", "p1", t(3, 0), t(3, 1), &["create"]);
    l.store_cached_actions("p1", std::slice::from_ref(&newer), &[], t(3, 2)).unwrap();
    let older = acts("s1", "p1", t(2, 0), t(2, 1), &["create", "pause"]);
    l.store_cached_actions("p1", &[older], &[], t(3, 3)).unwrap();
    assert_eq!(l.cached_actions("p1", &["s1"]).unwrap(), [StoredActions { cached: newer, seen_at: t(3, 2) }]);

    // Lists of another project, or without a server id, are refused and nothing is stored.
    let e = l.store_cached_actions("p1", &[acts("s9", "p1", t(1, 0), t(1, 1), &[]), other], &[], t(4, 0)).unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }) && e.to_string().contains("s3"), "{e}");
    assert!(l.store_cached_actions("p1", &[acts("", "p1", t(1, 0), t(1, 1), &[])], &[], t(4, 0)).is_err());
    assert!(l.store_cached_actions("", &[], &[], t(4, 0)).is_err());
    assert_eq!(l.cached_actions("p1", &["s9"]).unwrap(), []);
    // Reopened, it is all still there.
    drop(l);
    assert_eq!(p.open().cached_actions("p2", &["s3"]).unwrap().len(), 1);
}

fn reused_lists_are_marked_seen_and_unseen_ones_pruned(p: &Place) {
    let mut l = p.open();
    let a = acts("a", "p1", t(1, 0), t(1, 1), &["suspend"]);
    let b = acts("b", "p1", t(1, 0), t(1, 1), &["pause"]);
    l.store_cached_actions("p1", &[a, b], &[], t(1, 2)).unwrap();
    // `a` reused by a later run (and by an earlier clock: seen_at never goes back).
    l.store_cached_actions("p1", &[], &["a", "zzz"], t(10, 0)).unwrap();
    l.store_cached_actions("p1", &[], &["a"], t(5, 0)).unwrap();
    l.store_cached_actions("p2", &[], &["b"], t(10, 0)).unwrap(); // not p2's: untouched
    let seen: Vec<_> = by_server(l.cached_actions("p1", &["a", "b"]).unwrap()).into_iter().map(|s| s.seen_at).collect();
    assert_eq!(seen, [t(10, 0), t(1, 2)]);
    assert_eq!(l.prune_cached_actions(t(1, 2)).unwrap(), 0, "seen exactly then: kept");
    assert_eq!(l.prune_cached_actions(t(9, 0)).unwrap(), 1);
    let left: Vec<_> = l.cached_actions("p1", &["a", "b"]).unwrap().into_iter().map(|s| s.cached.server_id).collect();
    assert_eq!(left, ["a"]);
}

/// One `#[test]` per body per backend: `sqlite::<name>` and `postgres::<name>`.
fn entry(id: &str, project: &str, body: &str) -> ListedServerEntry {
    ListedServerEntry { server_id: id.into(), project_id: project.into(), body: body.into() }
}

fn found(l: &ledger::Ledger, ids: &[&str]) -> (Option<DateTime<Utc>>, Vec<ListedServerEntry>) {
    let mut got = l.listed_servers(ids).unwrap();
    got.found.sort_by(|a, b| a.server_id.cmp(&b.server_id));
    (got.valid_at, got.found)
}

fn listed_servers_are_replaced_removed_and_reset_with_valid_at_in_one_update(p: &Place) {
    let mut l = p.open();
    assert_eq!(found(&l, &["a"]), (None, vec![]), "never stored: no valid_at");
    let (a, b, c) = (entry("a", "p1", r#"{"s":"ACTIVE"}"#), entry("b", "p2", "{}"), entry("c", "p1", "{}"));
    l.store_listed_servers(&ListedServersUpdate {
        valid_at: t(2, 0),
        reset: false,
        put: vec![a.clone(), b.clone(), c.clone()],
        remove: vec!["nope".into()],
    })
    .unwrap();
    assert_eq!(found(&l, &["a", "b", "zzz"]), (Some(t(2, 0)), vec![a.clone(), b.clone()]));
    assert_eq!(found(&l, &[]).0, Some(t(2, 0)));
    // Replaced (another project and body), removed, valid_at moved.
    let a2 = entry("a", "p3", r#"{"s":"SHUTOFF"}"#);
    l.store_listed_servers(&ListedServersUpdate {
        valid_at: t(3, 0),
        reset: false,
        put: vec![a2.clone()],
        remove: vec!["b".into()],
    })
    .unwrap();
    assert_eq!(found(&l, &["a", "b", "c"]), (Some(t(3, 0)), vec![a2.clone(), c.clone()]));
    // A reset deletes every older entry first.
    l.store_listed_servers(&ListedServersUpdate {
        valid_at: t(4, 0),
        reset: true,
        put: vec![b.clone()],
        remove: vec![],
    })
    .unwrap();
    assert_eq!(found(&l, &["a", "b", "c"]), (Some(t(4, 0)), vec![b.clone()]));
    // Refused whole: nothing changes.
    for bad in [
        ListedServersUpdate { valid_at: t(5, 0), put: vec![entry("", "p1", "{}")], ..Default::default() },
        ListedServersUpdate { valid_at: t(5, 0), put: vec![entry("x", "", "{}")], ..Default::default() },
        ListedServersUpdate { valid_at: t(5, 0), put: vec![a.clone(), a.clone()], ..Default::default() },
        ListedServersUpdate { valid_at: t(5, 0), put: vec![a.clone()], remove: vec!["a".into()], reset: false },
    ] {
        assert!(l.store_listed_servers(&bad).is_err(), "{bad:?}");
    }
    assert_eq!(found(&p.open(), &["a", "b", "c"]), (Some(t(4, 0)), vec![b]));
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(&crate::Place::sqlite()) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(&crate::Place::pg()) })*
        }
    };
}

fn requeue_puts_a_quarantined_message_back_to_spooled_and_refuses_other_states(p: &Place) {
    let mut l = p.open();
    l.record_message(&msg("q", &[], t(1, 0)), None).unwrap();
    l.record_message(&msg("s", &[], t(1, 1)), None).unwrap();
    l.mark_sent("q", "ams-1").unwrap();
    l.quarantine("q", "HTTP 400").unwrap();
    l.requeue("q").unwrap();
    let q = l.message("q").unwrap().unwrap();
    assert_eq!(q.state, MessageState::Spooled);
    assert_eq!((q.reason, q.ams_id, q.sent_at, q.quarantined_at), (None, None, None, None));
    // Sendable again through the normal path.
    l.mark_sent("q", "ams-2").unwrap();
    for (element, from) in [("s", MessageState::Spooled), ("q", MessageState::Sent)] {
        let err = l.requeue(element).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidTransition { from: f, to: MessageState::Spooled, .. } if *f == from),
            "{err}"
        );
    }
    assert!(matches!(l.requeue("nope").unwrap_err(), Error::UnknownMessage { .. }));
    assert_eq!(l.message("s").unwrap().unwrap().state, MessageState::Spooled);
}

fn run_lock_admits_one_holder_per_kind_until_it_is_released(p: &Place) {
    let mut a = p.open();
    let mut b = p.open();
    let held = a.run_lock(RUN_LOCK_EXTRACT, std::time::Duration::ZERO).unwrap();
    let started = std::time::Instant::now();
    let err = b.run_lock(RUN_LOCK_EXTRACT, std::time::Duration::from_millis(500)).unwrap_err();
    assert!(started.elapsed() >= std::time::Duration::from_millis(500), "waited before giving up");
    assert!(matches!(err, LockError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("in use by another fedsite run"), "{err}");
    // Another kind is independent.
    let other = b.run_lock("send", std::time::Duration::ZERO).unwrap();
    // Released: SQLite when the guard drops, PostgreSQL when the holder's session closes.
    drop(held);
    drop(a);
    let again = b.run_lock(RUN_LOCK_EXTRACT, std::time::Duration::from_secs(5)).unwrap();
    assert!(again.what().contains("extract runs"));
    drop(other);
}

fn checkpoints_list_every_project_and_kind_with_when_they_moved(p: &Place) {
    let mut l = p.open();
    assert!(l.checkpoints().unwrap().is_empty());
    let before = Utc::now() - Duration::seconds(1);
    l.advance_checkpoint("p2", "cloud", t(2, 0), None).unwrap();
    l.advance_checkpoint("p1", "storage", t(3, 0), None).unwrap();
    l.advance_checkpoint("p1", "cloud", t(4, 0), None).unwrap();
    let c = l.checkpoints().unwrap();
    let got: Vec<(&str, &str, DateTime<Utc>)> =
        c.iter().map(|c| (c.project_id.as_str(), c.kind.as_str(), c.checkpoint)).collect();
    assert_eq!(got, [("p1", "cloud", t(4, 0)), ("p1", "storage", t(3, 0)), ("p2", "cloud", t(2, 0))]);
    assert!(c.iter().all(|c| c.updated_at >= before && c.updated_at <= Utc::now()));
}

fn fingerprints_are_stored_and_unchanged_records_only_move_measured_at(p: &Place) {
    let mut l = p.open();
    let fp = |s: &Snapshot, f: &str| Snapshot { fingerprint: Some(f.into()), ..s.clone() };
    let a = fp(&cloud("vm1", "2026-10", "p1", "vo.a", t(2, 0), 500), "f1");
    let b = cloud("vm2", "2026-10", "p1", "vo.a", t(2, 0), 700);
    let commit = |l: &mut Ledger, snapshots: Vec<Snapshot>, unchanged: Vec<Unchanged>| {
        l.commit_project(&ProjectCommit {
            project_id: "p1".into(),
            checkpoint_kind: "nova".into(),
            snapshots,
            unchanged,
            ..Default::default()
        })
        .unwrap()
    };
    commit(&mut l, vec![a.clone(), b.clone()], vec![]);
    let got = l.fingerprints("cloud", "p1").unwrap();
    // Stored without a fingerprint: not listed (its record is rendered and compared again).
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got["vm1/2026-10"], StoredFingerprint { measured_at: t(2, 0), fingerprint: "f1".into() });
    assert!(l.fingerprints("cloud", "p2").unwrap().is_empty() && l.fingerprints("ip", "p1").unwrap().is_empty());
    assert_eq!(l.snapshot("cloud", "vm1/2026-10").unwrap().unwrap().snapshot, a, "read back with it");
    // The same body with another fingerprint (a new fingerprint version): written to store it.
    let a2 = fp(&a, "f2");
    let v = l.preview(std::slice::from_ref(&a2)).unwrap();
    assert_eq!((v[0].upsert, v[0].writes), (Upsert::Unchanged, true));
    commit(&mut l, vec![a2.clone()], vec![]);
    assert_eq!(l.fingerprints("cloud", "p1").unwrap()["vm1/2026-10"].fingerprint, "f2");
    // Unchanged by fingerprint: measured_at moves forward, never back; the body stays.
    let moved = |at| Unchanged { kind: "cloud".into(), key: "vm1/2026-10".into(), measured_at: at };
    commit(&mut l, vec![], vec![moved(t(5, 0))]);
    commit(&mut l, vec![], vec![moved(t(3, 0))]);
    let got = l.snapshot("cloud", "vm1/2026-10").unwrap().unwrap();
    assert_eq!((got.snapshot.measured_at, got.snapshot.body.as_str()), (t(5, 0), a.body.as_str()));
    assert_eq!(l.fingerprints("cloud", "p1").unwrap()["vm1/2026-10"].measured_at, t(5, 0));
    // A state measured before that is now older than the ledger's: kept out.
    let older = fp(&cloud("vm1", "2026-10", "p1", "vo.a", t(4, 0), 450), "f3");
    assert_eq!(l.preview(std::slice::from_ref(&older)).unwrap()[0].upsert, Upsert::KeptNewer);
}

suite!(
    newer_snapshot_replaces_and_older_is_kept_out,
    fingerprints_are_stored_and_unchanged_records_only_move_measured_at,
    identical_body_measured_later_moves_measured_at_so_a_late_older_state_is_refused,
    equal_measured_at_with_different_body_is_replaced_last_loaded_wins,
    preview_reports_what_upsert_would_do_without_writing,
    preview_says_which_snapshots_a_commit_would_write,
    snapshot_without_month_stores_month_of_measurement_and_bad_month_is_refused,
    checkpoints_only_move_forward_unless_reset,
    commit_project_stores_snapshots_messages_and_checkpoint_together,
    commit_project_failing_midway_rolls_back_everything,
    commit_project_refuses_snapshots_of_another_project,
    republish_query_returns_latest_per_key_in_period,
    unsent_and_deliveries_tell_which_version_went_in_which_message,
    message_states_follow_spooled_sent_acknowledged,
    invalid_message_transitions_are_refused_and_change_nothing,
    runs_record_window_and_outcome_once,
    seen_keys_lists_what_the_ledger_saw_per_project,
    usage_summary_sums_latest_cloud_snapshot_per_key,
    times_are_kept_to_the_microsecond_and_truncated_below,
    reopen_keeps_everything,
    extract_and_send_connections_work_concurrently,
    run_warnings_last_run_and_message_counts,
    cached_actions_are_looked_up_per_project_batch_and_replaced_by_later_fetches,
    reused_lists_are_marked_seen_and_unseen_ones_pruned,
    listed_servers_are_replaced_removed_and_reset_with_valid_at_in_one_update,
    requeue_puts_a_quarantined_message_back_to_spooled_and_refuses_other_states,
    run_lock_admits_one_holder_per_kind_until_it_is_released,
    checkpoints_list_every_project_and_kind_with_when_they_moved,
);
