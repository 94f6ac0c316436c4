//! The typed APEL records (cloud v0.4, public IP v0.2, accelerator v0.1,
//! StAR storage, energy v0.1), the `Record` sum type, its `RecordKind` and
//! the ledger key of each record.

use crate::types::{ApelText, Fqan, SiteName, VmStatus, VmUuid};
use chrono::{DateTime, Datelike, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An `APEL-cloud-message` v0.4 record. Field names follow the loader keys
/// (APEL `apel/db/records/cloud.py`); `None` fields are not sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudRecord {
    /// `VMUUID`: the server id (mandatory).
    pub vm_uuid: VmUuid,
    /// `SiteName`: the GOCDB site (mandatory).
    pub site_name: SiteName,
    /// `CloudComputeService`: the service name in GOCDB.
    pub cloud_compute_service: Option<ApelText>,
    /// `CloudType`: the middleware (`caso/…`).
    pub cloud_type: Option<ApelText>,
    /// `MachineName`: the server name.
    pub machine_name: Option<ApelText>,
    /// `LocalUserId`: the Keystone user id.
    pub local_user_id: Option<ApelText>,
    /// `LocalGroupId`: the project id.
    pub local_group_id: Option<ApelText>,
    /// `GlobalUserName`: the Keystone user's name, when it can be read.
    pub global_user_name: Option<ApelText>,
    /// `FQAN`: the VO (`/vo/Role=NULL/Capability=NULL`).
    pub fqan: Option<Fqan>,
    /// `Status`: the VM state in APEL's words.
    pub status: Option<VmStatus>,
    /// `StartTime`: launch time.
    pub start_time: Option<DateTime<Utc>>,
    /// In `Style::CasoCompat` a `None` renders as `EndTime: 0`; in the fedsite style it is left out.
    pub end_time: Option<DateTime<Utc>>,
    /// `SuspendDuration`: seconds paused or suspended in the window.
    pub suspend_duration: Option<u64>,
    /// `WallDuration`: seconds run in the window.
    pub wall_duration: Option<u64>,
    /// `CpuDuration`: wall seconds × vCPUs.
    pub cpu_duration: Option<u64>,
    /// `CpuCount`: vCPUs.
    pub cpu_count: Option<u32>,
    /// `NetworkType`.
    pub network_type: Option<ApelText>,
    /// `NetworkInbound`, GB.
    pub network_inbound: Option<u64>,
    /// `NetworkOutbound`, GB.
    pub network_outbound: Option<u64>,
    /// `PublicIPCount`.
    pub public_ip_count: Option<u32>,
    /// MiB.
    pub memory: Option<u64>,
    /// GB.
    pub disk: Option<u64>,
    /// `StorageRecordId`.
    pub storage_record_id: Option<ApelText>,
    /// `ImageId`: the marketplace id, else the Glance image id.
    pub image_id: Option<ApelText>,
    /// `BenchmarkType` (e.g. `HEPSPEC06`); sent only with `benchmark`.
    pub benchmark_type: Option<ApelText>,
    /// `Benchmark`: the per-core value of `benchmark_type`.
    pub benchmark: Option<f64>,
    /// `RecordCreateTime`: accepted by the loader; cASO never sends it. When
    /// set (and Status is not `completed`) it is the APEL measurement time.
    #[serde(default)]
    pub record_create_time: Option<DateTime<Utc>>,
}

impl CloudRecord {
    /// A record with only the two mandatory fields set.
    pub fn new(vm_uuid: VmUuid, site_name: SiteName) -> CloudRecord {
        CloudRecord {
            vm_uuid,
            site_name,
            cloud_compute_service: None,
            cloud_type: None,
            machine_name: None,
            local_user_id: None,
            local_group_id: None,
            global_user_name: None,
            fqan: None,
            status: None,
            start_time: None,
            end_time: None,
            suspend_duration: None,
            wall_duration: None,
            cpu_duration: None,
            cpu_count: None,
            network_type: None,
            network_inbound: None,
            network_outbound: None,
            public_ip_count: None,
            memory: None,
            disk: None,
            storage_record_id: None,
            image_id: None,
            benchmark_type: None,
            benchmark: None,
            record_create_time: None,
        }
    }

    /// The measurement time APEL derives (`ReplaceCloudRecord` in APEL's `schemas/cloud.sql`):
    /// `completed` → EndTime; else RecordCreateTime; else StartTime + SuspendDuration +
    /// WallDuration. `None` where APEL would get a NULL / zero date.
    pub fn measurement_time(&self) -> Option<DateTime<Utc>> {
        if self.status == Some(VmStatus::Completed) {
            return self.end_time;
        }
        if let Some(t) = self.record_create_time {
            return Some(t);
        }
        let secs = self.suspend_duration.unwrap_or(0).saturating_add(self.wall_duration.unwrap_or(0));
        let delta = TimeDelta::try_seconds(i64::try_from(secs).ok()?)?;
        self.start_time?.checked_add_signed(delta)
    }
}

/// An `APEL Public IP message` v0.2 record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpRecord {
    /// `MeasurementTime`: when the addresses were counted.
    pub measurement_time: DateTime<Utc>,
    /// `SiteName`: the GOCDB site.
    pub site_name: SiteName,
    /// `CloudComputeService`.
    pub cloud_compute_service: Option<ApelText>,
    /// `CloudType`: the middleware.
    pub cloud_type: ApelText,
    /// cASO's lowercase `uuid` key (a random uuid4 per run in cASO).
    pub uuid: Option<String>,
    /// `LocalUser`: the Keystone user id.
    pub local_user: Option<ApelText>,
    /// `GlobalUserName`.
    pub global_user_name: Option<ApelText>,
    /// The project id.
    pub local_group: ApelText,
    /// `FQAN`: the VO.
    pub fqan: Fqan,
    /// 4 or 6.
    pub ip_version: u8,
    /// `IPCount`: addresses of this version held.
    pub ip_count: u32,
}

/// An `APEL-accelerator-message` v0.1 record (one VM, one month).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceleratorRecord {
    /// 1..=12.
    pub measurement_month: u32,
    /// The year of `measurement_month`.
    pub measurement_year: i32,
    /// `"cloud"`.
    pub associated_record_type: ApelText,
    /// The VM uuid.
    pub associated_record: ApelText,
    /// `GlobalUserName`.
    pub global_user_name: Option<ApelText>,
    /// `FQAN`: the VO.
    pub fqan: Fqan,
    /// `SiteName`: the GOCDB site.
    pub site_name: SiteName,
    /// `Count`: accelerators attached.
    pub count: u32,
    /// `Cores`: cores per accelerator, when known.
    pub cores: Option<u32>,
    /// `ActiveDuration`: seconds in use, when known.
    pub active_duration: Option<u64>,
    /// `AvailableDuration`: seconds attached in the month.
    pub available_duration: u64,
    /// `BenchmarkType`.
    pub benchmark_type: Option<ApelText>,
    /// `Benchmark`.
    pub benchmark: Option<f64>,
    /// JSON `Type` (e.g. `GPU`).
    pub accelerator_type: ApelText,
    /// `Model` (e.g. `A100`).
    pub model: ApelText,
    /// `CloudComputeService`.
    pub cloud_compute_service: Option<ApelText>,
    /// `CloudType`: the middleware.
    pub cloud_type: Option<ApelText>,
}

/// An EMI StAR storage record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageRecord {
    /// The volume uuid (`sr:recordId`).
    pub record_id: ApelText,
    /// `sr:createTime`: when the record was measured.
    pub create_time: DateTime<Utc>,
    /// `sr:StorageSystem`: the service name (cASO's `service_name`, as `CloudComputeService`).
    pub storage_system: ApelText,
    /// `sr:Site`: the GOCDB site.
    pub site: Option<ApelText>,
    /// `sr:StorageShare`.
    pub storage_share: Option<ApelText>,
    /// `sr:StorageMedia`.
    pub storage_media: Option<ApelText>,
    /// `sr:StorageClass`.
    pub storage_class: Option<ApelText>,
    /// `sr:LocalUser`: the Keystone user id.
    pub local_user: Option<ApelText>,
    /// `sr:LocalGroup`: the project id.
    pub local_group: Option<ApelText>,
    /// `sr:UserIdentity`: the Keystone user's name, when it can be read.
    pub user_identity: Option<ApelText>,
    /// `sr:Group`: the VO.
    pub group: Option<ApelText>,
    /// `sr:StartTime`: the volume's creation, or the window start if later.
    pub start_time: DateTime<Utc>,
    /// `sr:EndTime`: the window end (for a deleted volume's closing record, its deletion).
    pub end_time: DateTime<Utc>,
    /// Bytes.
    pub resource_capacity_used: u64,
    /// Bytes.
    pub resource_capacity_allocated: Option<u64>,
}

/// A cASO energy record v0.1 (cASO 5.2.2 `caso/extract/prometheus.py`), sent as JSON to GreenDIGIT CIM
/// (not through SSM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyRecord {
    /// `ExecUnitID`: the VM uuid.
    pub exec_unit_id: VmUuid,
    /// `StartExecTime`, sent as `%Y-%m-%dT%H:%M:%SZ`.
    pub start_exec_time: DateTime<Utc>,
    /// `EndExecTime`, sent as `%Y-%m-%dT%H:%M:%SZ`.
    pub end_exec_time: DateTime<Utc>,
    /// `EnergyWh`: energy used in the window, watt-hours.
    pub energy_wh: f64,
    /// `Work`: `cpu_duration_s / energy_wh`.
    pub work: f64,
    /// `Efficiency`: core time used / core time allocated, 0..=1.
    pub efficiency: f64,
    /// `WallClockTime_s`: seconds.
    pub wall_clock_time_s: u64,
    /// `CpuDuration_s`: (wall − suspended) × vCPUs, seconds.
    pub cpu_duration_s: u64,
    /// `SuspendDuration_s`: seconds.
    pub suspend_duration_s: u64,
    /// `CpuNormalizationFactor`: the benchmark value, 1 when none.
    pub cpu_normalization_factor: f64,
    /// Sent as 1 / 0.
    pub exec_unit_finished: bool,
    /// Lower-cased Nova status.
    pub status: ApelText,
    /// The VO.
    pub owner: ApelText,
    /// `SiteName`: the GOCDB site.
    pub site_name: SiteName,
    /// `CloudType`: the middleware.
    pub cloud_type: ApelText,
    /// `CloudComputeService`.
    pub cloud_compute_service: Option<ApelText>,
}

/// Any APEL record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "record", rename_all = "lowercase")]
pub enum Record {
    /// A cloud (VM) record.
    Cloud(CloudRecord),
    /// A public IP record.
    Ip(IpRecord),
    /// An accelerator record.
    Accelerator(AcceleratorRecord),
    /// A StAR storage record.
    Storage(StorageRecord),
    /// An energy record.
    Energy(EnergyRecord),
}

/// The record types (one message type each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// `APEL-cloud-message`.
    Cloud,
    /// `APEL Public IP message`.
    Ip,
    /// `APEL-accelerator-message`.
    Accelerator,
    /// StAR storage XML.
    Storage,
    /// cASO energy JSON.
    Energy,
}

impl RecordKind {
    /// Every kind, in message order.
    pub const ALL: [RecordKind; 5] =
        [RecordKind::Cloud, RecordKind::Ip, RecordKind::Accelerator, RecordKind::Storage, RecordKind::Energy];

    /// `cloud`, `ip`, `accelerator`, `storage` or `energy`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RecordKind::Cloud => "cloud",
            RecordKind::Ip => "ip",
            RecordKind::Accelerator => "accelerator",
            RecordKind::Storage => "storage",
            RecordKind::Energy => "energy",
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RecordKind {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<RecordKind, crate::Error> {
        RecordKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            crate::Error::invalid("record kind", s, "not one of cloud, ip, accelerator, storage, energy")
        })
    }
}

fn year_month(t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => format!("{:04}-{:02}", t.year(), t.month()),
        None => "0000-00".to_string(),
    }
}

impl Record {
    /// Which kind of record this is.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Cloud(_) => RecordKind::Cloud,
            Record::Ip(_) => RecordKind::Ip,
            Record::Accelerator(_) => RecordKind::Accelerator,
            Record::Storage(_) => RecordKind::Storage,
            Record::Energy(_) => RecordKind::Energy,
        }
    }

    /// The ledger key: cloud `<VMUUID>/<YYYY>-<MM>` of APEL's measurement month
    /// (`0000-00` where APEL would get no date); accelerator `<uuid>/<YYYY>-<MM>`;
    /// storage `<volume uuid>`; ip `<project>/<ipversion>`; energy
    /// `<uuid>/<window end as %Y-%m-%dT%H:%M:%SZ>`.
    pub fn key(&self) -> String {
        match self {
            Record::Cloud(r) => format!("{}/{}", r.vm_uuid, year_month(r.measurement_time())),
            Record::Accelerator(r) => {
                format!("{}/{:04}-{:02}", r.associated_record, r.measurement_year, r.measurement_month)
            }
            Record::Storage(r) => r.record_id.to_string(),
            Record::Ip(r) => format!("{}/{}", r.local_group, r.ip_version),
            Record::Energy(r) => format!("{}/{}", r.exec_unit_id, r.end_exec_time.format("%Y-%m-%dT%H:%M:%SZ")),
        }
    }
}

macro_rules! from_record {
    ($($v:ident($t:ty)),*) => {$(
        impl From<$t> for Record { fn from(r: $t) -> Record { Record::$v(r) } }
    )*};
}
from_record!(
    Cloud(CloudRecord),
    Ip(IpRecord),
    Accelerator(AcceleratorRecord),
    Storage(StorageRecord),
    Energy(EnergyRecord)
);
