//! Collects the warnings and errors logged while a run goes on (a scoped `tracing` dispatcher
//! that forwards every event to the process's subscriber unchanged), so the pipeline can keep
//! them in the ledger with the run, where `fedsite report` shows them.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};

/// At most this many warnings are kept per run (the rest are counted).
pub const MAX_KEPT: usize = 200;

/// One captured event: "warn" or "error", and its message with its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub level: &'static str,
    pub message: String,
}

#[derive(Default)]
struct Sink {
    kept: Vec<Captured>,
    dropped: usize,
}

/// Wraps the current default dispatcher; use [`Capture::dispatch`] with
/// `tracing::instrument::WithSubscriber::with_subscriber` on the run's future.
#[derive(Clone)]
pub struct Capture {
    inner: Dispatch,
    sink: Arc<Mutex<Sink>>,
    hint: LevelFilter,
}

impl Default for Capture {
    fn default() -> Self {
        Capture::new()
    }
}

impl Capture {
    /// Captures on top of the dispatcher that is the default now.
    pub fn new() -> Capture {
        let inner = tracing::dispatcher::get_default(|d| d.clone());
        Capture { inner, sink: Arc::default(), hint: LevelFilter::current().max(LevelFilter::WARN) }
    }

    pub fn dispatch(&self) -> Dispatch {
        Dispatch::new(self.clone())
    }

    /// What was captured so far, in order (repeats of the same message kept once), and how
    /// many more were left out past [`MAX_KEPT`].
    pub fn take(&self) -> (Vec<Captured>, usize) {
        let mut s = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let kept = std::mem::take(&mut s.kept);
        (kept, std::mem::take(&mut s.dropped))
    }
}

fn captured(m: &Metadata<'_>) -> bool {
    m.is_event() && *m.level() <= Level::WARN
}

/// "message; key=value, key=value".
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            if !self.fields.is_empty() {
                self.fields.push_str(", ");
            }
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.record_debug(field, &value)
        }
    }
}

impl Subscriber for Capture {
    fn register_callsite(&self, m: &'static Metadata<'static>) -> Interest {
        let inner = self.inner.register_callsite(m);
        if captured(m) { Interest::always() } else { inner }
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.hint)
    }
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        captured(m) || self.inner.enabled(m)
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.inner.new_span(span)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        self.inner.record(span, values)
    }
    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.inner.record_follows_from(span, follows)
    }
    fn event(&self, event: &Event<'_>) {
        let m = event.metadata();
        if captured(m) {
            let mut t = Text::default();
            event.record(&mut t);
            let message = match (t.message.is_empty(), t.fields.is_empty()) {
                (_, true) => t.message,
                (true, false) => t.fields,
                (false, false) => format!("{}; {}", t.message, t.fields),
            };
            let level = if *m.level() == Level::ERROR { "error" } else { "warn" };
            let mut s = self.sink.lock().unwrap_or_else(|e| e.into_inner());
            if !s.kept.iter().any(|c| c.message == message) {
                if s.kept.len() < MAX_KEPT {
                    s.kept.push(Captured { level, message });
                } else {
                    s.dropped += 1;
                }
            }
        }
        if self.inner.enabled(m) {
            self.inner.event(event)
        }
    }
    fn enter(&self, span: &Id) {
        self.inner.enter(span)
    }
    fn exit(&self, span: &Id) {
        self.inner.exit(span)
    }
    fn clone_span(&self, id: &Id) -> Id {
        self.inner.clone_span(id)
    }
    fn try_close(&self, id: Id) -> bool {
        self.inner.try_close(id)
    }
}
