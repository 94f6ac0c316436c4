//! CPU time per stage of a run, for `fedsite bench`: a tracing layer that charges the CPU time
//! of the calling thread to the innermost entered span named after a stage (`accounting::stage`
//! names them). Async spans are entered on every poll, so a task that moves between worker
//! threads is charged poll by poll, on the thread that ran it; time in a nested stage counts
//! for that stage only. Written as JSON (`{"stage": seconds}`) to the file
//! `FEDSITE_CPU_STAGES` names, when the command ends; without it nothing is measured.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::Subscriber;
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The environment variable naming the output file.
pub const ENV: &str = accounting::stage::CPU_ENV;

thread_local! {
    /// The stages entered on this thread, innermost last, each with the thread CPU time at
    /// which it was last charged.
    static STACK: RefCell<Vec<(&'static str, Duration)>> = const { RefCell::new(Vec::new()) };
}

/// The layer; its totals are shared with the handle that writes them.
#[derive(Clone, Default)]
pub struct StageCpu {
    totals: Arc<Mutex<BTreeMap<&'static str, Duration>>>,
}

/// A span that is a stage carries this in its extensions.
struct Stage(&'static str);

impl StageCpu {
    /// CPU seconds by stage so far.
    pub fn seconds(&self) -> BTreeMap<&'static str, f64> {
        self.totals.lock().unwrap().iter().map(|(k, v)| (*k, v.as_secs_f64())).collect()
    }

    fn charge(&self, stage: &'static str, d: Duration) {
        *self.totals.lock().unwrap().entry(stage).or_default() += d;
    }

    /// Writes the totals to the file `FEDSITE_CPU_STAGES` names, if set.
    pub fn write_if_asked(&self) {
        let Some(path) = std::env::var_os(ENV) else { return };
        let json = serde_json::to_string(&self.seconds()).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, json) {
            eprintln!("fedsite: writing the CPU time by stage to {}: {e}", std::path::Path::new(&path).display());
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for StageCpu {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let name = attrs.metadata().name();
        if accounting::stage::ALL.contains(&name)
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(Stage(name));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(stage) = ctx.span(id).and_then(|s| s.extensions().get::<Stage>().map(|s| s.0)) else { return };
        let now = thread_cpu();
        STACK.with_borrow_mut(|stack| {
            if let Some((outer, since)) = stack.last_mut() {
                self.charge(outer, now.saturating_sub(*since));
            }
            stack.push((stage, now));
        });
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if ctx.span(id).is_none_or(|s| s.extensions().get::<Stage>().is_none()) {
            return;
        }
        let now = thread_cpu();
        STACK.with_borrow_mut(|stack| {
            if let Some((stage, since)) = stack.pop() {
                self.charge(stage, now.saturating_sub(since));
            }
            if let Some((_, since)) = stack.last_mut() {
                *since = now;
            }
        });
    }
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu() -> Duration {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}
