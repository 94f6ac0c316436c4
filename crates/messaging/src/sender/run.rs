//! A send pass as a run of the ledger (command `send`): begun before the pass, its errors,
//! stop, deferred and quarantined messages kept as the run's warnings, finished as
//! succeeded, partial or failed with the pass's summary (what `fedsite report` and the
//! metrics read). Owns that bookkeeping; the pass itself is [`super::send_all`].

use ledger::{Ledger, NewRun, RunOutcome};
use smime::{Recipient, Signer};

use super::{SendError, SendReport, SenderOptions, send_all};
use crate::ams::AmsClient;

/// [`send_all`], recorded as a run in `ledger` when one is given; `label` (e.g.
/// `destination compute: `, or empty) prefixes each warning and the summary. A pass that
/// fails is recorded as failed with its error before the error is returned.
pub async fn send_recorded(
    opts: &SenderOptions,
    client: &AmsClient,
    signer: &Signer,
    encrypt: Option<&Recipient>,
    mut ledger: Option<&mut Ledger>,
    label: &str,
) -> Result<SendReport, SendError> {
    let run = match ledger.as_deref_mut() {
        Some(l) => Some(l.begin_run(&NewRun { command: ledger::runs::SEND.into(), ..Default::default() })?),
        None => None,
    };
    let report = match send_all(opts, client, signer, encrypt, ledger.as_deref_mut()).await {
        Ok(r) => r,
        Err(e) => {
            // The pass's own error is returned (and printed, exit non-zero); recording it in the
            // ledger is best effort, and a failure to record is logged beside it.
            if let (Some(l), Some(run)) = (ledger.as_deref_mut(), run) {
                let recorded = l
                    .add_run_warning(run, "error", &e.to_string())
                    .and_then(|()| l.finish_run(run, RunOutcome::Failed, Some(&e.to_string())));
                if let Err(le) = recorded {
                    tracing::warn!(target: "messaging", "the failed send could not be recorded in the ledger: {le}");
                }
            }
            return Err(e);
        }
    };
    if let (Some(l), Some(run)) = (ledger, run) {
        for (level, message) in warnings(&report, label) {
            l.add_run_warning(run, level, &message)?;
        }
        l.finish_run(run, outcome(&report), Some(&format!("{label}{}", report.summary())))?;
    }
    Ok(report)
}

/// The run's outcome: succeeded when everything was delivered, partial when some was, else
/// failed.
pub fn outcome(report: &SendReport) -> RunOutcome {
    if report.complete() {
        RunOutcome::Succeeded
    } else if report.sent > 0 {
        RunOutcome::Partial
    } else {
        RunOutcome::Failed
    }
}

/// The run's warnings, (level, message), each prefixed with `label`.
pub fn warnings(report: &SendReport, label: &str) -> Vec<(&'static str, String)> {
    let mut w: Vec<(&'static str, String)> = report.errors.iter().map(|e| ("error", format!("{label}{e}"))).collect();
    if let Some(why) = &report.stopped {
        w.push(("error", format!("{label}stopped, every element left in the spool: {why}")));
    }
    if report.deferred > 0 {
        w.push(("warn", format!("{label}{} messages deferred to the next run (retries exhausted)", report.deferred)));
    }
    if report.quarantined > 0 {
        w.push((
            "warn",
            format!(
                "{label}{} messages quarantined ({} refused by the APEL loader's rules before sending)",
                report.quarantined, report.invalid
            ),
        ));
    }
    w
}
