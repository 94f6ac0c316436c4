//! APEL's `SummariseVMs` arithmetic, the one place fedsite computes it: cloud records carry a
//! VM's cumulative counters (WallDuration, CpuDuration, network in/out), so what one record
//! adds to its month is its counters minus the VM's previous record's. The receiver's
//! `CloudSummaries` and `fedsite report` both take their per-VM usage from [`vm_deltas`].

/// What one cloud record adds, as `SummariseVMs` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmDelta<const N: usize> {
    /// The record's counters minus the VM's previous record's; the counters whole when the VM
    /// has no previous record. Negative when a counter went down (APEL keeps it so).
    pub delta: [i64; N],
    /// The VM had no previous record: `delta` is the record's counters whole.
    pub first: bool,
}

/// The deltas of ONE VM's cloud records, given in measurement order, each with its cumulative
/// counters and whether it may be a later record's previous one (APEL skips the records of
/// month or year 0). One delta per record, in the same order.
pub fn vm_deltas<const N: usize>(records: impl IntoIterator<Item = ([i64; N], bool)>) -> Vec<VmDelta<N>> {
    let mut prev: Option<[i64; N]> = None;
    records
        .into_iter()
        .map(|(counters, can_be_previous)| {
            let base = prev.unwrap_or([0; N]);
            let out = VmDelta { delta: std::array::from_fn(|i| counters[i] - base[i]), first: prev.is_none() };
            if can_be_previous {
                prev = Some(counters);
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_record_adds_its_increase_over_the_previous_one_and_the_first_its_whole_counters() {
        let d = vm_deltas([([3600, 1800], true), ([7200, 2000], true), ([10_000, 2000], true)]);
        assert_eq!(d.iter().map(|d| d.delta).collect::<Vec<_>>(), vec![[3600, 1800], [3600, 200], [2800, 0]]);
        assert_eq!(d.iter().map(|d| d.first).collect::<Vec<_>>(), vec![true, false, false]);
    }

    #[test]
    fn a_month_zero_record_is_never_a_previous_one_and_a_counter_going_down_stays_negative() {
        let d = vm_deltas([([100], false), ([300], true), ([250], true)]);
        assert_eq!(
            d,
            vec![
                VmDelta { delta: [100], first: true },
                VmDelta { delta: [300], first: true },
                VmDelta { delta: [-50], first: false },
            ]
        );
    }
}
