//! The APEL loader's rules as `parse_message` applies them, `validate`,
//! the newtypes, energy JSON and `batch`.

use apel::*;
use chrono::DateTime;

const U1: &str = "11111111-1111-4111-8111-111111111111";

fn parse_err(text: &str) -> String {
    parse_message(text.as_bytes()).unwrap_err().to_string()
}

fn cloud(text: &str) -> Vec<CloudRecord> {
    let (kind, recs) = parse_message(text.as_bytes()).unwrap();
    assert_eq!(kind, RecordKind::Cloud);
    recs.into_iter()
        .map(|r| match r {
            Record::Cloud(c) => c,
            _ => unreachable!(),
        })
        .collect()
}

#[test]
fn cloud_parse_accepts_any_header_version_apel_client_trailing_separators_and_null_spellings() {
    let text = format!(
        "\n  APEL-cloud-message: v9.9\nVMUUID: {U1}\nSiteName: S\nMemory: null\nDisk: NONE\nCloudType:\nMachineName: a:b: c \n%%\n\n%%\nVMUUID: {U1}\nSiteName: T\n%%\n"
    );
    let recs = cloud(&text);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].memory, None);
    assert_eq!(recs[0].disk, None);
    assert_eq!(recs[0].cloud_type, None);
    assert_eq!(recs[0].machine_name.as_ref().unwrap(), "a:b: c");
    assert_eq!(recs[1].site_name, "T");
}

#[test]
fn cloud_parse_ignores_measurement_keys_and_reads_record_create_time() {
    let recs = cloud(&format!(
        "APEL-cloud-message: v0.4\nVMUUID: {U1}\nSiteName: S\nUpdateTime: x\nMeasurementTime: y\nMeasurementMonth: 5\nMeasurementYear: 2023\nRecordCreateTime: 2023-05-21T00:00:00Z\n"
    ));
    assert_eq!(recs[0].record_create_time, DateTime::from_timestamp(1684627200, 0));
}

#[test]
fn cloud_parse_rejects_unknown_key_naming_it_and_its_line() {
    let e = parse_err(&format!("APEL-cloud-message: v0.4\nVMUUID: {U1}\nSiteName: S\nFlavour: big\n"));
    assert_eq!(e, "record 0: line 4: unknown field: Flavour");
}

#[test]
fn cloud_parse_rejects_non_int_durations_with_field_and_line() {
    let e = parse_err(&format!(
        "APEL-cloud-message: v0.4\nVMUUID: {U1}\nSiteName: S\n%%\nVMUUID: {U1}\nSiteName: S\nWallDuration: 1.5\n"
    ));
    assert!(e.starts_with("record 1: line 7: WallDuration: invalid int value"), "{e}");
    let e = parse_err(&format!("APEL-cloud-message: v0.4\nVMUUID: {U1}\nSiteName: S\nMemory: -1\n"));
    assert!(e.contains("Memory: negative value"), "{e}");
}

#[test]
fn cloud_parse_requires_vmuuid_and_site_name() {
    let e = parse_err("APEL-cloud-message: v0.4\nSiteName: S\nMemory: 3\n");
    assert_eq!(e, "record 0: line 2: missing mandatory field VMUUID");
    let e = parse_err(&format!("APEL-cloud-message: v0.4\nVMUUID: {U1}\nSiteName: None\n"));
    assert_eq!(e, "record 0: line 2: missing mandatory field SiteName");
}

#[test]
fn cloud_parse_rejects_a_line_without_colon_and_non_ascii() {
    let e = parse_err(&format!("APEL-cloud-message: v0.4\nVMUUID: {U1}\nSiteName S\n"));
    assert_eq!(e, "record 0: line 3: no ':' separator in \"SiteName S\"");
    let e = parse_message(format!("APEL-cloud-message: v0.4\nVMUUID: {U1}\nSiteName: Sé\n").as_bytes()).unwrap_err();
    assert!(matches!(e, Error::NotAscii { line: 3, byte: 0xc3, .. }), "{e}");
}

#[test]
fn cloud_parse_datetimes_epoch_or_iso_with_zone() {
    let recs = cloud(&format!(
        "APEL-cloud-message: v0.4\nVMUUID: {U1}\nSiteName: S\nStartTime: 2023-05-19T00:00:00UTC\nEndTime: 1684735200\n"
    ));
    assert_eq!(recs[0].start_time, DateTime::from_timestamp(1684454400, 0));
    assert_eq!(recs[0].end_time, DateTime::from_timestamp(1684735200, 0));
    let e =
        parse_err(&format!("APEL-cloud-message: v0.4\nVMUUID: {U1}\nSiteName: S\nStartTime: 2023-05-19 00:00:00\n"));
    assert!(e.contains("line 4: StartTime: Unknown datetime format"), "{e}");
}

#[test]
fn unknown_message_types_are_rejected_by_name() {
    assert_eq!(
        parse_err("APEL-summary-job-message: v0.3\nSite: X\n"),
        "message type not recognised: \"APEL-summary-job-message: v0.3\""
    );
    assert!(parse_err("{\"Type\": \"APEL-foo\", \"Version\": \"1\", \"UsageRecords\": []}").contains("APEL-foo"));
    assert!(parse_err("<x:Foo xmlns:x=\"urn:other\"/>").contains("XML format not recognised"));
    assert_eq!(parse_message(b"  \n").unwrap_err(), Error::NoRecords);
    assert_eq!(parse_message(b"APEL-cloud-message: v0.4\n%%\n").unwrap_err(), Error::NoRecords);
}

#[test]
fn json_records_reject_unknown_keys_and_wrong_types_naming_the_key() {
    let base = r#"{"Type": "APEL Public IP message", "Version": "0.2", "UsageRecords": [REC]}"#;
    let ok = r#"{"SiteName": "S", "CloudType": "c", "LocalGroup": "p", "FQAN": "vo", "IPVersion": 4, "IPCount": 2, "MeasurementTime": 1700000000}"#;
    let (kind, recs) = parse_message(base.replace("REC", ok).as_bytes()).unwrap();
    assert_eq!(kind, RecordKind::Ip);
    assert_eq!(recs[0].key(), "p/4");
    let e = parse_err(&base.replace("REC", &ok.replace("\"IPCount\": 2", "\"IPCount\": 2, \"Colour\": 1")));
    assert_eq!(e, "record 0: unknown field: Colour");
    let e = parse_err(&base.replace("REC", &ok.replace("\"IPCount\": 2", "\"IPCount\": 2.5")));
    assert!(e.starts_with("record 0: IPCount: invalid int value"), "{e}");
    let e = parse_err(&base.replace("REC", &ok.replace("\"IPVersion\": 4", "\"IPVersion\": 5")));
    assert!(e.contains("IPVersion: must be 4 or 6"), "{e}");
    let e = parse_err(&base.replace("REC", &ok.replace("\"FQAN\": \"vo\", ", "")));
    assert_eq!(e, "record 0: missing mandatory field FQAN");
}

#[test]
fn star_parse_requires_mandatory_elements_and_reads_offsets() {
    let msg = r#"<sr:StorageUsageRecords xmlns:sr="http://eu-emi.eu/namespaces/2011/02/storagerecord">
      <sr:StorageUsageRecord>
        <sr:RecordIdentity sr:createTime="2024-01-01T02:00:00+02:00" sr:recordId="v1"/>
        <sr:StorageSystem>sys &amp; co</sr:StorageSystem>
        <sr:StartTime>2024-01-01T00:00:00Z</sr:StartTime>
        <sr:EndTime>2024-01-02T00:00:00Z</sr:EndTime>
        <sr:ResourceCapacityUsed>42</sr:ResourceCapacityUsed>
        <sr:FileCount>3</sr:FileCount>
      </sr:StorageUsageRecord>
    </sr:StorageUsageRecords>"#;
    let (_, recs) = parse_message(msg.as_bytes()).unwrap();
    let Record::Storage(r) = &recs[0] else { panic!() };
    assert_eq!(r.create_time, DateTime::from_timestamp(1704067200, 0).unwrap());
    assert_eq!(r.storage_system, "sys & co");
    assert_eq!(r.resource_capacity_used, 42);
    assert_eq!(recs[0].key(), "v1");
    let e = parse_err(&msg.replace("<sr:ResourceCapacityUsed>42</sr:ResourceCapacityUsed>", ""));
    assert_eq!(e, "record 0: missing mandatory field ResourceCapacityUsed");
    let e = parse_err(&msg.replace(">42<", ">4.2<"));
    assert!(e.contains("ResourceCapacityUsed: invalid int value"), "{e}");
}

fn energy() -> EnergyRecord {
    EnergyRecord {
        exec_unit_id: VmUuid::new(U1).unwrap(),
        start_exec_time: DateTime::from_timestamp(1684627200, 0).unwrap(),
        end_exec_time: DateTime::from_timestamp(1684972800, 0).unwrap(),
        energy_wh: 5.0 * 30.0 / 3600.0 / 1e6,
        work: 2.0,
        efficiency: 1.0,
        wall_clock_time_s: 345600,
        cpu_duration_s: 691200,
        suspend_duration_s: 0,
        cpu_normalization_factor: 1.0,
        exec_unit_finished: false,
        status: ApelText::new("active").unwrap(),
        owner: ApelText::new("vo.example.org").unwrap(),
        site_name: SiteName::new("TEST-SITE").unwrap(),
        cloud_type: ApelText::new("caso/5.2.2 (OpenStack)").unwrap(),
        cloud_compute_service: Some(ApelText::new("TEST-SITE-cloud").unwrap()),
    }
}

#[test]
fn energy_renders_as_a_python_json_array_and_parses_back() {
    let recs = vec![Record::Energy(energy())];
    let bytes = render_message(RecordKind::Energy, &recs, Style::CasoCompat).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert_eq!(
        text,
        format!(
            "[{{\"SiteName\": \"TEST-SITE\", \"CloudType\": \"caso/5.2.2 (OpenStack)\", \"CloudComputeService\": \"TEST-SITE-cloud\", \"ExecUnitID\": \"{U1}\", \"StartExecTime\": \"2023-05-21T00:00:00Z\", \"EndExecTime\": \"2023-05-25T00:00:00Z\", \"EnergyWh\": 4.166666666666666e-08, \"Work\": 2.0, \"Efficiency\": 1.0, \"WallClockTime_s\": 345600, \"CpuDuration_s\": 691200, \"SuspendDuration_s\": 0, \"CPUNormalizationFactor\": 1.0, \"ExecUnitFinished\": 0, \"Status\": \"active\", \"Owner\": \"vo.example.org\"}}]"
        )
    );
    assert_eq!(parse_message(&bytes).unwrap(), (RecordKind::Energy, recs.clone()));
    assert_eq!(recs[0].key(), format!("{U1}/2023-05-25T00:00:00Z"));
}

#[test]
fn validate_applies_loader_limits() {
    let mut r = CloudRecord::new(VmUuid::new(U1).unwrap(), SiteName::new("S").unwrap());
    r.benchmark = Some(f64::NAN);
    assert!(validate(&Record::Cloud(r.clone())).unwrap_err().to_string().starts_with("Benchmark: not a finite number"));
    r.benchmark = Some(1e7);
    assert!(validate(&Record::Cloud(r.clone())).unwrap_err().to_string().contains("DECIMAL(10,3)"));
    r.benchmark = None;
    r.benchmark_type = Some(ApelText::new("x".repeat(51)).unwrap());
    assert!(validate(&Record::Cloud(r.clone())).unwrap_err().to_string().starts_with("BenchmarkType:"));
    r.benchmark_type = None;
    r.machine_name = Some(ApelText::new("a%%b").unwrap());
    let e = render_message(RecordKind::Cloud, &[Record::Cloud(r.clone())], Style::Fedsite).unwrap_err();
    assert!(e.to_string().starts_with("record 0: MachineName: contains \"%%\""), "{e}");
    r.machine_name = None;
    assert_eq!(validate(&Record::Cloud(r)), Ok(()));
    let mut e = energy();
    e.work = f64::INFINITY;
    assert!(validate(&Record::Energy(e)).unwrap_err().to_string().starts_with("Work:"));
}

#[test]
fn newtypes_validate_and_serde_goes_through_them() {
    assert_eq!(VmUuid::new("22222222-2222-4222-8222-22222222222A").unwrap(), "22222222-2222-4222-8222-22222222222a");
    assert!(VmUuid::new("2222").unwrap_err().to_string().starts_with("VMUUID:"));
    assert!(ApelText::new("é").is_err());
    assert!(ApelText::new("a\nb").is_err());
    assert!(ApelText::new("x".repeat(256)).is_err());
    assert_eq!(ApelText::lossy("vm-é\n1"), "vm-1");
    assert!(SiteName::new("").is_err() && SiteName::new("None").is_err() && SiteName::new(" S").is_err());
    assert!(Fqan::new("/vo.example.org/Role=NULL").is_ok());
    assert!(serde_json::from_str::<VmUuid>("\"nope\"").is_err());
    assert!(serde_json::from_str::<Window>(r#"{"from":"2023-05-02T00:00:00Z","to":"2023-05-01T00:00:00Z"}"#).is_err());
    let rec = Record::Energy(energy());
    let back: Record = serde_json::from_str(&serde_json::to_string(&rec).unwrap()).unwrap();
    assert_eq!(back, rec);
}

#[test]
fn cloud_key_uses_apel_measurement_month() {
    let mut r = CloudRecord::new(VmUuid::new(U1).unwrap(), SiteName::new("S").unwrap());
    assert_eq!(Record::Cloud(r.clone()).key(), format!("{U1}/0000-00"));
    r.start_time = DateTime::from_timestamp(1685491200, 0); // 2023-05-31
    r.wall_duration = Some(86400);
    assert_eq!(Record::Cloud(r.clone()).key(), format!("{U1}/2023-06"));
    r.status = Some(VmStatus::Completed);
    r.end_time = DateTime::from_timestamp(1685491300, 0);
    assert_eq!(Record::Cloud(r).key(), format!("{U1}/2023-05"));
}

fn many(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut r = CloudRecord::new(
                VmUuid::new(format!("11111111-1111-4111-8111-{i:012}")).unwrap(),
                SiteName::new("S").unwrap(),
            );
            r.machine_name = Some(ApelText::new("m".repeat(200)).unwrap());
            Record::Cloud(r)
        })
        .collect()
}

#[test]
fn batch_splits_by_record_count_in_order() {
    let recs = many(250);
    let msgs =
        batch(RecordKind::Cloud, &recs, Style::CasoCompat, DEFAULT_MAX_RECORDS, DEFAULT_MAX_SIGNED_BYTES).unwrap();
    let counts: Vec<usize> = msgs.iter().map(|m| parse_message(m).unwrap().1.len()).collect();
    assert_eq!(counts, vec![100, 100, 50]);
    let back: Vec<Record> = msgs.iter().flat_map(|m| parse_message(m).unwrap().1).collect();
    assert_eq!(back.len(), 250);
    assert_eq!(back[249].key(), recs[249].key());
    assert!(batch(RecordKind::Cloud, &[], Style::Fedsite, 100, DEFAULT_MAX_SIGNED_BYTES).unwrap().is_empty());
}

#[test]
fn batch_keeps_every_message_under_the_signed_size_limit() {
    let recs = many(300);
    let limit = 40_000;
    let msgs = batch(RecordKind::Cloud, &recs, Style::Fedsite, 1000, limit).unwrap();
    assert!(msgs.len() > 1);
    for m in &msgs {
        assert!(signed_size_estimate(m.len()) <= limit, "{}", m.len());
    }
    // Greedy: adding the next record's size would have crossed the limit.
    let first = parse_message(&msgs[0]).unwrap().1.len();
    let one_more = render_message(RecordKind::Cloud, &recs[..first + 1], Style::Fedsite).unwrap();
    assert!(signed_size_estimate(one_more.len()) > limit);
    assert_eq!(msgs.iter().map(|m| parse_message(m).unwrap().1.len()).sum::<usize>(), 300);
    let e = batch(RecordKind::Cloud, &recs, Style::Fedsite, 1000, 100).unwrap_err();
    assert!(matches!(e, Error::RecordTooLarge { index: 0, .. }), "{e}");
}

#[test]
fn messages_refuse_records_of_another_kind() {
    let e = render_message(RecordKind::Ip, &many(1), Style::Fedsite).unwrap_err();
    assert_eq!(e.to_string(), "a ip message cannot hold a cloud record (record 0)");
}
