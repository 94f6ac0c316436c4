//! Accounting freshness, judged as EGI's `eu.egi.cloud.APEL-Pub` probe does
//! (warning after 7 days without a publication, critical after 30): the last
//! send AMS acknowledged with a message id (ledger), and the outgoing spool —
//! no element stuck, nothing quarantined.

use chrono::{DateTime, Duration, Utc};
use ledger::{Ledger, MessageState};

use crate::check::Check;
use crate::config::{CheckConfig, SpoolReader};
use crate::error::LedgerFactsError;
use std::path::Path;

pub const WARN_DAYS: i64 = 7;
pub const CRIT_DAYS: i64 = 30;

/// What the ledger says about delivery.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LedgerFacts {
    /// Latest `sent_at` of a message AMS took (sent or acknowledged).
    pub last_sent: Option<DateTime<Utc>>,
    pub sent: usize,
    /// Spooled, not yet sent: (element, created_at) oldest first.
    pub pending: Vec<(String, DateTime<Utc>)>,
    /// (element, reason)
    pub quarantined: Vec<(String, String)>,
    /// Quarantined messages whose every record was delivered since by a sent message (a
    /// republish and send, or a requeue): settled, not counted, also in the quarantine folder.
    pub settled: Vec<String>,
}

/// Reads the ledger (blocking).
pub fn ledger_facts(target: &str) -> Result<LedgerFacts, LedgerFactsError> {
    let is_pg = ledger::is_postgres_url(target);
    if !is_pg && !std::path::Path::new(target).exists() {
        return Err(LedgerFactsError::Missing(target.to_string()));
    }
    let l = Ledger::open(target)?;
    let mut facts = LedgerFacts::default();
    for st in [MessageState::Sent, MessageState::Acknowledged] {
        for m in l.messages_in_state(st)? {
            facts.sent += 1;
            if let Some(t) = m.sent_at {
                facts.last_sent = facts.last_sent.max(Some(t));
            }
        }
    }
    facts.pending = l
        .pending()?
        .into_iter()
        .filter(|m| m.state == MessageState::Spooled)
        .map(|m| (m.element, m.created_at))
        .collect();
    for m in l.messages_in_state(MessageState::Quarantined)? {
        // Split or superseded originals are bookkeeping, not failures.
        let r = m.reason.as_deref().unwrap_or("");
        if r.starts_with(ledger::SPLIT_REASON) || r.starts_with(ledger::SUPERSEDED_REASON) {
            continue;
        }
        if delivered_since(&l, &m)? {
            facts.settled.push(m.element);
        } else {
            facts.quarantined.push((m.element, m.reason.unwrap_or_default()));
        }
    }
    Ok(facts)
}

/// True when every record of the quarantined message `m` went out since in a message AMS
/// took (sent or acknowledged), the same version or a later one.
fn delivered_since(l: &Ledger, m: &ledger::Message) -> Result<bool, ledger::Error> {
    let refs = l.message_records(&m.element)?;
    if refs.is_empty() {
        return Ok(false);
    }
    for r in &refs {
        let delivered = l.deliveries(&m.kind, &r.key)?.into_iter().any(|d| {
            d.element != m.element
                && matches!(d.state, MessageState::Sent | MessageState::Acknowledged)
                && d.measured_at >= r.measured_at
        });
        if !delivered {
            return Ok(false);
        }
    }
    Ok(true)
}

fn days(d: Duration) -> String {
    let h = d.num_hours();
    if h < 48 { format!("{h} h") } else { format!("{} days", d.num_days()) }
}

const SEND_FIX: &str = "run `fedsite send --config /etc/apel/sender.cfg` (cron every 4-6 h, after the extraction) and read its errors; `fedsite spool status` shows what waits";

/// The last-send check from ledger facts.
pub fn last_send_check(cfg: &CheckConfig, f: &LedgerFacts) -> Check {
    let tested = format!(
        "the last send AMS acknowledged is under {WARN_DAYS} days old (warning) and {CRIT_DAYS} days (critical), as EGI's APEL-Pub probe"
    );
    let id = "accounting.last-send";
    match f.last_sent {
        None if f.pending.is_empty() => Check::warning(
            id,
            tested,
            "the ledger holds no message: nothing was ever extracted or sent",
            "run `fedsite accounting extract` then `fedsite send` (both from cron)",
        ),
        None => {
            Check::critical(id, tested, format!("nothing was ever sent; {} message(s) wait", f.pending.len()), SEND_FIX)
        }
        Some(t) => {
            let age = cfg.now - t;
            let msg = format!("last send {} ago ({})", days(age), t.format("%Y-%m-%dT%H:%M:%SZ"));
            if age > Duration::days(CRIT_DAYS) {
                Check::critical(id, tested, msg, SEND_FIX)
            } else if age > Duration::days(WARN_DAYS) {
                Check::warning(id, tested, msg, SEND_FIX)
            } else {
                Check::ok(id, tested, msg)
            }
        }
    }
}

/// The accounting family.
pub async fn run(cfg: &CheckConfig) -> Vec<Check> {
    let acc = &cfg.accounting;
    let mut out = Vec::new();
    let mut quarantined: Vec<(String, String)> = Vec::new();
    let mut settled: Vec<String> = Vec::new();
    match &acc.ledger {
        None => out.push(Check::skipped(
            "accounting.last-send",
            "the last send AMS acknowledged",
            "no ledger given (--ledger)",
        )),
        Some(target) => {
            let t = target.clone();
            let facts = tokio::task::spawn_blocking(move || ledger_facts(&t))
                .await
                .unwrap_or_else(|e| Err(LedgerFactsError::Join(e)));
            match facts {
                Ok(f) => {
                    out.push(last_send_check(cfg, &f));
                    quarantined.extend(f.quarantined);
                    settled.extend(f.settled);
                }
                Err(e) => out.push(Check::critical(
                    "accounting.last-send",
                    "the last send AMS acknowledged",
                    format!("cannot read the ledger: {e}"),
                    "point --ledger at the ledger `fedsite accounting extract` writes",
                )),
            }
        }
    }
    let mut quarantine = |q: Vec<(String, String)>| {
        for (n, r) in q {
            // The folder names an element `dir_file`, the ledger `dir/file`.
            let same = |q: &str| q.replace('/', "_") == n || q == n;
            if !quarantined.iter().any(|(q, _)| same(q)) && !settled.iter().any(|q| same(q)) {
                quarantined.push((n, r));
            }
        }
    };
    match (&acc.spool, acc.read_spool) {
        (None, _) => out.push(Check::skipped(
            "accounting.spool",
            "no spool element is stuck",
            "no spool given (--spool or --sender-config)",
        )),
        (Some(_), None) => {
            out.push(Check::skipped("accounting.spool", "no spool element is stuck", "no spool reader given"))
        }
        (Some(spool), Some(read_spool)) => {
            let one = SpoolToCheck { id: "accounting.spool".into(), spool, quarantine: acc.quarantine.as_deref() };
            out.push(spool_check(cfg, &one, acc.directory_spool, read_spool, &mut quarantine));
            for more in &acc.more_spools {
                let id = format!("accounting.spool.{}", more.name);
                let one = SpoolToCheck { id, spool: &more.spool, quarantine: more.quarantine.as_deref() };
                out.push(spool_check(cfg, &one, false, read_spool, &mut quarantine));
            }
        }
    }
    if acc.ledger.is_some() || acc.spool.is_some() {
        let tested = "no message quarantined (refused by AMS or unreadable)".to_string();
        out.push(if quarantined.is_empty() {
            Check::ok("accounting.quarantine", tested, "nothing quarantined")
        } else {
            let shown: Vec<String> = quarantined.iter().take(5).map(|(n, r)| format!("{n}: {r}")).collect();
            Check::warning(
                "accounting.quarantine",
                tested,
                format!("{} message(s) quarantined: {}", quarantined.len(), shown.join("; ")),
                "read the reasons (`fedsite spool status`), fix the cause (record format, size, AMS topic), then put them back with `fedsite spool requeue` (or re-spool the period with `fedsite accounting republish`) and send",
            )
        });
    }
    out
}

/// One spool to check and the id its check is reported under.
struct SpoolToCheck<'a> {
    id: String,
    spool: &'a Path,
    quarantine: Option<&'a Path>,
}

/// The check of one spool: no element older than `stuck_after`, no stale lock; the quarantine
/// it reads is handed to `quarantine`.
fn spool_check(
    cfg: &CheckConfig,
    one: &SpoolToCheck<'_>,
    directory_spool: bool,
    read_spool: SpoolReader,
    quarantine: &mut impl FnMut(Vec<(String, String)>),
) -> Check {
    let (id, spool) = (one.id.as_str(), one.spool);
    let tested =
        format!("no element of {} older than {} h, no stale lock", spool.display(), cfg.stuck_after.num_hours());
    if !spool.exists() {
        return Check::critical(
            id,
            tested,
            format!("spool {} does not exist", spool.display()),
            "point --spool at the outgoing spool the extraction writes (sender.cfg [messaging] path)",
        );
    }
    match read_spool(spool, directory_spool, one.quarantine) {
        Err(e) => Check::critical(id, tested, e.to_string(), "fix the spool's permissions"),
        Ok(st) => {
            quarantine(st.quarantine);
            let stuck = st.oldest.as_ref().filter(|(_, t)| cfg.now - *t > cfg.stuck_after);
            match stuck {
                Some((name, t)) => {
                    let age = cfg.now - *t;
                    let msg = format!(
                        "{} element(s) wait in {}; the oldest, {name}, for {} ({} locked)",
                        st.elements,
                        spool.display(),
                        days(age),
                        st.locked
                    );
                    if age > Duration::days(WARN_DAYS) {
                        Check::critical(id, tested, msg, SEND_FIX)
                    } else {
                        Check::warning(id, tested, msg, SEND_FIX)
                    }
                }
                None => Check::ok(
                    id,
                    tested,
                    format!("{} element(s) waiting, none stuck ({} locked)", st.elements, st.locked),
                ),
            }
        }
    }
}
