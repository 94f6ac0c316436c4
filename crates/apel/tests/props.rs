//! Property tests: render → parse round-trips every format, `batch` keeps
//! every record in order, and `parse_message` never panics on any input.

use apel::*;
use chrono::{DateTime, Utc};
use proptest::option::of;
use proptest::prelude::*;

/// Text that the loader reads back unchanged: printable ASCII, no surrounding
/// whitespace, not a null spelling, no "%%".
fn text() -> impl Strategy<Value = ApelText> {
    "[!-~]([ -~]{0,30}[!-~])?"
        .prop_filter("loader-stable", |s| {
            !s.contains("%%") && !["none", "null"].contains(&s.to_ascii_lowercase().as_str())
        })
        .prop_map(|s| ApelText::new(s).unwrap())
}
fn site() -> impl Strategy<Value = SiteName> {
    text().prop_map(|t| SiteName::new(t.into_string()).unwrap())
}
fn fqan() -> impl Strategy<Value = Fqan> {
    text().prop_map(|t| Fqan::new(t.into_string()).unwrap())
}
fn uuid() -> impl Strategy<Value = VmUuid> {
    "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".prop_map(|s| VmUuid::new(s).unwrap())
}
fn secs() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
}
fn micros() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800, 0u32..1_000_000).prop_map(|(s, us)| DateTime::from_timestamp(s, us * 1000).unwrap())
}
fn status() -> impl Strategy<Value = VmStatus> {
    proptest::sample::select(VmStatus::ALL.to_vec())
}
fn decimal() -> impl Strategy<Value = f64> {
    -9_999_999.0f64..9_999_999.0
}
fn finite() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("finite", |f| f.is_finite())
}

prop_compose! {
    fn cloud()(
        (vm_uuid, site_name, cloud_compute_service, cloud_type, machine_name, local_user_id, local_group_id, global_user_name, fqan_v, status_v)
            in (uuid(), site(), of(text()), of(text()), of(text()), of(text()), of(text()), of(text()), of(fqan()), of(status())),
        (start_time, end_time, record_create_time, suspend_duration, wall_duration, cpu_duration, cpu_count, network_type, network_inbound, network_outbound)
            in (of(secs()), of(secs()), of(secs()), of(any::<u64>()), of(any::<u64>()), of(any::<u64>()), of(0u32..9_999_999), of(text()), of(any::<u64>()), of(any::<u64>())),
        (public_ip_count, memory, disk, storage_record_id, image_id, benchmark_type, benchmark)
            in (of(any::<u32>()), of(any::<u64>()), of(any::<u64>()), of(text()), of(text()), of("[!-~]{1,50}".prop_map(|s| ApelText::new(s).unwrap())), of(decimal())),
    ) -> CloudRecord {
        let benchmark_type = benchmark_type.filter(|b| !b.as_str().contains("%%") && !["none", "null"].contains(&b.as_str().to_ascii_lowercase().as_str()));
        CloudRecord {
            vm_uuid, site_name, cloud_compute_service, cloud_type, machine_name, local_user_id, local_group_id,
            global_user_name, fqan: fqan_v, status: status_v, start_time, end_time, suspend_duration, wall_duration,
            cpu_duration, cpu_count, network_type, network_inbound, network_outbound, public_ip_count, memory, disk,
            storage_record_id, image_id, benchmark_type, benchmark, record_create_time,
        }
    }
}

prop_compose! {
    fn ip()((measurement_time, site_name, cloud_compute_service, cloud_type, uuid_v, local_user, global_user_name, local_group, fqan_v, ip_version, ip_count)
        in (secs(), site(), of(text()), text(), of(text()), of(text()), of(text()), text(), fqan(), prop_oneof![Just(4u8), Just(6u8)], any::<u32>())
    ) -> IpRecord {
        IpRecord { measurement_time, site_name, cloud_compute_service, cloud_type, uuid: uuid_v.map(ApelText::into_string),
            local_user, global_user_name, local_group, fqan: fqan_v, ip_version, ip_count }
    }
}

prop_compose! {
    fn accelerator()(
        (measurement_month, measurement_year, associated_record_type, associated_record, global_user_name, fqan_v, site_name, count, cores)
            in (1u32..=12, 1i32..=9999, text(), text(), of(text()), fqan(), site(), any::<u32>(), of(any::<u32>())),
        (active_duration, available_duration, benchmark_type, benchmark, accelerator_type, model, cloud_compute_service, cloud_type)
            in (of(any::<u64>()), any::<u64>(), of("[!-~]{1,50}".prop_map(|s| ApelText::new(s).unwrap())), of(finite()), text(), text(), of(text()), of(text())),
    ) -> AcceleratorRecord {
        AcceleratorRecord { measurement_month, measurement_year, associated_record_type, associated_record, global_user_name,
            fqan: fqan_v, site_name, count, cores, active_duration, available_duration, benchmark_type, benchmark,
            accelerator_type, model, cloud_compute_service, cloud_type }
    }
}

prop_compose! {
    fn storage()(
        (record_id, create_time, storage_system, site_v, storage_share, storage_media, storage_class, local_user)
            in (text(), micros(), text(), of(text()), of(text()), of(text()), of(text()), of(text())),
        (local_group, user_identity, group, start_time, end_time, resource_capacity_used, resource_capacity_allocated)
            in (of(text()), of(text()), of(text()), micros(), micros(), any::<u64>(), of(any::<u64>())),
    ) -> StorageRecord {
        StorageRecord { record_id, create_time, storage_system, site: site_v, storage_share, storage_media, storage_class,
            local_user, local_group, user_identity, group, start_time, end_time, resource_capacity_used, resource_capacity_allocated }
    }
}

prop_compose! {
    fn energy()(
        (exec_unit_id, start_exec_time, end_exec_time, energy_wh, work, efficiency, wall_clock_time_s, cpu_duration_s)
            in (uuid(), secs(), secs(), finite(), finite(), finite(), any::<u64>(), any::<u64>()),
        (suspend_duration_s, cpu_normalization_factor, exec_unit_finished, status_v, owner, site_name, cloud_type, cloud_compute_service)
            in (any::<u64>(), finite(), any::<bool>(), text(), text(), site(), text(), of(text())),
    ) -> EnergyRecord {
        EnergyRecord { exec_unit_id, start_exec_time, end_exec_time, energy_wh, work, efficiency, wall_clock_time_s,
            cpu_duration_s, suspend_duration_s, cpu_normalization_factor, exec_unit_finished, status: status_v, owner,
            site_name, cloud_type, cloud_compute_service }
    }
}

fn any_kind_records() -> impl Strategy<Value = (RecordKind, Vec<Record>)> {
    prop_oneof![
        prop::collection::vec(cloud().prop_map(Record::Cloud), 1..6).prop_map(|v| (RecordKind::Cloud, v)),
        prop::collection::vec(ip().prop_map(Record::Ip), 1..6).prop_map(|v| (RecordKind::Ip, v)),
        prop::collection::vec(accelerator().prop_map(Record::Accelerator), 1..6)
            .prop_map(|v| (RecordKind::Accelerator, v)),
        prop::collection::vec(storage().prop_map(Record::Storage), 1..6).prop_map(|v| (RecordKind::Storage, v)),
        prop::collection::vec(energy().prop_map(Record::Energy), 1..6).prop_map(|v| (RecordKind::Energy, v)),
    ]
}

/// What the loader reads from a cASO-compat rendering: EndTime 0 is the
/// epoch, 0 durations were sent as 1.
fn as_compat_reads(r: &Record) -> Record {
    match r {
        Record::Cloud(c) => {
            let mut c = c.clone();
            c.end_time.get_or_insert(DateTime::from_timestamp(0, 0).unwrap());
            c.wall_duration = c.wall_duration.map(|d| d.max(1));
            c.cpu_duration = c.cpu_duration.map(|d| d.max(1));
            Record::Cloud(c)
        }
        // StAR compat times are naive (read as UTC): no change; JSON: none.
        other => other.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn fedsite_render_then_parse_round_trips((kind, records) in any_kind_records()) {
        let bytes = render_message(kind, &records, Style::Fedsite).unwrap();
        prop_assert_eq!(parse_message(&bytes).unwrap(), (kind, records));
    }

    #[test]
    fn compat_render_then_parse_gives_what_apel_reads((kind, records) in any_kind_records()) {
        let bytes = render_message(kind, &records, Style::CasoCompat).unwrap();
        let want: Vec<Record> = records.iter().map(as_compat_reads).collect();
        prop_assert_eq!(parse_message(&bytes).unwrap(), (kind, want));
    }

    #[test]
    fn batch_keeps_every_record_in_order_within_limits(
        (kind, records) in any_kind_records(), max_records in 1usize..4, extra in 0usize..3000
    ) {
        let limit = signed_size_estimate(3000) + extra;
        let msgs = batch(kind, &records, Style::Fedsite, max_records, limit).unwrap();
        let mut back = Vec::new();
        for m in &msgs {
            prop_assert!(signed_size_estimate(m.len()) <= limit);
            let (k, recs) = parse_message(m).unwrap();
            prop_assert_eq!(k, kind);
            prop_assert!(recs.len() <= max_records);
            back.extend(recs);
        }
        prop_assert_eq!(back, records);
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_message(&bytes);
    }

    #[test]
    fn parse_never_panics_on_near_valid_messages(
        prefix in prop_oneof![
            Just("APEL-cloud-message: v0.4\n"),
            Just("{\"Type\": \"APEL Public IP message\", \"Version\": \"0.2\", \"UsageRecords\": ["),
            Just("{\"Type\": \"APEL-accelerator-message\", \"Version\": \"0.1\", \"UsageRecords\": ["),
            Just("<sr:StorageUsageRecords xmlns:sr=\"http://eu-emi.eu/namespaces/2011/02/storagerecord\"><sr:StorageUsageRecord>"),
            Just("["),
        ],
        body in "([A-Za-z]{1,12}: [ -~]{0,20}\n|%%\n|<sr:[A-Za-z]{1,10}>[ -~]{0,10}</sr:[A-Za-z]{1,10}>|\\{\"[A-Za-z]{1,10}\": [0-9a-z\".-]{0,12}\\}|[ -~\n]{0,20}){0,20}",
    ) {
        let _ = parse_message(format!("{prefix}{body}").as_bytes());
    }

    #[test]
    fn corrupting_one_byte_of_a_valid_message_never_panics(
        (kind, records) in any_kind_records(), pos in any::<prop::sample::Index>(), byte in any::<u8>()
    ) {
        let mut bytes = render_message(kind, &records, Style::CasoCompat).unwrap();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        let _ = parse_message(&bytes);
    }
}
