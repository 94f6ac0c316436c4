//! The windows of an extraction run as every command runs it (`accounting extract`,
//! `serve`, the central accounting task): a fixed `--from/--to`, or each project from its
//! checkpoint to now; the end never in the future; a run that was interrupted resumed with
//! its own window end, so it renders the same messages and adopts what it had already
//! spooled instead of queueing an older copy beside a newer one.

use apel::Window;
use chrono::{DateTime, Datelike as _, TimeZone as _, Utc};
use ledger::Ledger;

use crate::pipeline::Windows;

/// What a run asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request {
    /// `--from`: one window for every project (None: from each project's checkpoint).
    pub from: Option<DateTime<Utc>>,
    /// `--to` (None: now).
    pub to: Option<DateTime<Utc>>,
}

/// The windows a run uses, and why its end is what it is.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    pub windows: Windows,
    /// The end of the interrupted run this one resumes.
    pub resumed: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error("{0}")]
    Ledger(#[from] ledger::Error),
    #[error("--from/--to: {0}")]
    Window(apel::Error),
}

/// The windows of a run at `now` (whole seconds); the end as [`end`] says (without its
/// warning: a command gives that once, as soon as it has parsed its arguments).
pub fn plan(ledger: &Ledger, req: Request, now: DateTime<Utc>) -> Result<Planned, WindowError> {
    // Clamped silently: the command warned with [`end`] before it logged in.
    let to = req.to.map_or(now, |t| t.min(now));
    let (to, resumed) = match (req.from, req.to, interrupted_run_end(ledger)?) {
        (None, None, Some(end)) if end <= to => {
            tracing::info!("resuming the interrupted run that ended its window at {end}");
            (end, Some(end))
        }
        _ => (to, None),
    };
    let windows = match req.from {
        Some(from) => Windows::Fixed(Window::new(from, to).map_err(WindowError::Window)?),
        None => Windows::FromCheckpoints { to, default_from: previous_month_start(to) },
    };
    Ok(Planned { windows, resumed })
}

/// A run's window end: `to`, or `now` when it is absent or in the future (with a warning:
/// usage past now would be counted).
pub fn end(to: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
    match to {
        Some(t) if t > now => {
            tracing::warn!("--to {t} is in the future; using now ({now})");
            now
        }
        Some(t) => t,
        None => now,
    }
}

/// The window end of the last extract run when it never finished.
pub fn interrupted_run_end(ledger: &Ledger) -> Result<Option<DateTime<Utc>>, ledger::Error> {
    let last = ledger.last_run(ledger::runs::EXTRACT, None)?;
    Ok(last.filter(|r| r.outcome.is_none() && r.window_from.is_none()).and_then(|r| r.window_to))
}

/// The start of the month before `t`: where a project without a checkpoint starts.
pub fn previous_month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 1 { (t.year() - 1, 12) } else { (t.year(), t.month() - 1) };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().expect("day 1 at 00:00 of an existing month")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, d, h, 0, 0).unwrap()
    }

    fn ledger() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(dir.path().join("l.sqlite")).unwrap();
        (dir, l)
    }

    #[test]
    fn from_checkpoints_to_now_starting_the_month_before() {
        let (_d, l) = ledger();
        let p = plan(&l, Request::default(), t(5, 10)).unwrap();
        let Windows::FromCheckpoints { to, default_from } = p.windows else { panic!("{p:?}") };
        assert_eq!((to, default_from), (t(5, 10), Utc.with_ymd_and_hms(2025, 12, 1, 0, 0, 0).unwrap()));
        assert!(p.resumed.is_none());
    }

    #[test]
    fn a_future_end_is_now_and_an_interrupted_run_is_resumed_with_its_end() {
        let (_d, mut l) = ledger();
        let p = plan(&l, Request { from: Some(t(1, 0)), to: Some(t(9, 0)) }, t(5, 10)).unwrap();
        let Windows::Fixed(w) = p.windows else { panic!("{p:?}") };
        assert_eq!((w.from(), w.to()), (t(1, 0), t(5, 10)));
        l.begin_run(&ledger::NewRun {
            command: ledger::runs::EXTRACT.into(),
            window_from: None,
            window_to: Some(t(4, 0)),
        })
        .unwrap();
        let p = plan(&l, Request::default(), t(5, 10)).unwrap();
        assert_eq!(p.resumed, Some(t(4, 0)));
        let Windows::FromCheckpoints { to, .. } = p.windows else { panic!("{p:?}") };
        assert_eq!(to, t(4, 0));
        // An explicit window is never replaced by the interrupted run's.
        let p = plan(&l, Request { from: None, to: Some(t(5, 0)) }, t(5, 10)).unwrap();
        assert!(p.resumed.is_none());
    }

    #[test]
    fn an_empty_window_is_refused() {
        let (_d, l) = ledger();
        let err = plan(&l, Request { from: Some(t(5, 0)), to: Some(t(5, 0)) }, t(6, 0)).unwrap_err();
        assert!(err.to_string().starts_with("--from/--to:"), "{err}");
    }
}
