//! The JSON messages: `APEL Public IP message` v0.2, `APEL-accelerator-message`
//! v0.1 (envelope `{"Type", "Version", "UsageRecords"}`) and cASO's energy
//! records (a bare JSON array, as posted to GreenDIGIT CIM). Rendered with
//! Python `json.dumps` layout and cASO's key order; nulls are left out.

use crate::fields::from_epoch;
use crate::{AcceleratorRecord, ApelText, EnergyRecord, Error, Fqan, IpRecord, RecordKind, SiteName, VmUuid};
use chrono::{DateTime, NaiveDateTime, Utc};
use pyjson::Json;
use serde_json::{Map, Value};

pub(crate) const IP_TYPE: &str = "APEL Public IP message";
pub(crate) const IP_VERSION: &str = "0.2";
pub(crate) const ACC_TYPE: &str = "APEL-accelerator-message";
pub(crate) const ACC_VERSION: &str = "0.1";
/// Energy times: `%Y-%m-%dT%H:%M:%SZ`.
const ENERGY_TIME: &str = "%Y-%m-%dT%H:%M:%SZ";

/// A record's keys in cASO's order, nulls left out.
pub(crate) type Fields = Vec<(&'static str, Json)>;

/// One record as `json.dumps` writes it.
pub(crate) fn render(f: &Fields) -> String {
    let mut out = String::new();
    pyjson::write_object(&mut out, f);
    out
}

fn s(v: impl ToString) -> Json {
    Json::Str(v.to_string())
}
fn i(v: impl Into<i128>) -> Json {
    Json::Int(v.into())
}
fn opt(f: &mut Fields, k: &'static str, v: Option<Json>) {
    if let Some(v) = v {
        f.push((k, v));
    }
}

pub(crate) fn ip_fields(r: &IpRecord) -> Fields {
    let mut f: Fields = vec![("SiteName", s(&r.site_name)), ("CloudType", s(&r.cloud_type))];
    opt(&mut f, "CloudComputeService", r.cloud_compute_service.as_ref().map(s));
    opt(&mut f, "uuid", r.uuid.as_ref().map(s));
    opt(&mut f, "LocalUser", r.local_user.as_ref().map(s));
    opt(&mut f, "GlobalUserName", r.global_user_name.as_ref().map(s));
    f.push(("LocalGroup", s(&r.local_group)));
    f.push(("FQAN", s(&r.fqan)));
    f.push(("IPVersion", i(r.ip_version)));
    f.push(("IPCount", i(r.ip_count)));
    f.push(("MeasurementTime", i(r.measurement_time.timestamp())));
    f
}

pub(crate) fn accelerator_fields(r: &AcceleratorRecord) -> Fields {
    let mut f: Fields = vec![("SiteName", s(&r.site_name))];
    opt(&mut f, "CloudType", r.cloud_type.as_ref().map(s));
    opt(&mut f, "CloudComputeService", r.cloud_compute_service.as_ref().map(s));
    f.push(("AssociatedRecord", s(&r.associated_record)));
    opt(&mut f, "GlobalUserName", r.global_user_name.as_ref().map(s));
    f.push(("FQAN", s(&r.fqan)));
    f.push(("Count", i(r.count)));
    f.push(("AvailableDuration", i(r.available_duration)));
    f.push(("MeasurementMonth", i(r.measurement_month)));
    f.push(("MeasurementYear", i(r.measurement_year)));
    f.push(("AssociatedRecordType", s(&r.associated_record_type)));
    f.push(("Type", s(&r.accelerator_type)));
    opt(&mut f, "Cores", r.cores.map(i));
    f.push(("Model", s(&r.model)));
    opt(&mut f, "Benchmark", r.benchmark.map(Json::Float));
    opt(&mut f, "BenchmarkType", r.benchmark_type.as_ref().map(s));
    opt(&mut f, "ActiveDuration", r.active_duration.map(i));
    f
}

pub(crate) fn energy_fields(r: &EnergyRecord) -> Fields {
    let mut f: Fields = vec![("SiteName", s(&r.site_name)), ("CloudType", s(&r.cloud_type))];
    opt(&mut f, "CloudComputeService", r.cloud_compute_service.as_ref().map(s));
    f.extend([
        ("ExecUnitID", s(&r.exec_unit_id)),
        ("StartExecTime", s(r.start_exec_time.format(ENERGY_TIME))),
        ("EndExecTime", s(r.end_exec_time.format(ENERGY_TIME))),
        ("EnergyWh", Json::Float(r.energy_wh)),
        ("Work", Json::Float(r.work)),
        ("Efficiency", Json::Float(r.efficiency)),
        ("WallClockTime_s", i(r.wall_clock_time_s)),
        ("CpuDuration_s", i(r.cpu_duration_s)),
        ("SuspendDuration_s", i(r.suspend_duration_s)),
        ("CPUNormalizationFactor", Json::Float(r.cpu_normalization_factor)),
        ("ExecUnitFinished", i(r.exec_unit_finished as u8)),
        ("Status", s(&r.status)),
        ("Owner", s(&r.owner)),
    ]);
    f
}

/// The JSON message prefix (before the first record) and suffix.
pub(crate) fn envelope(kind: RecordKind) -> (String, &'static str) {
    let head = |t: &str, v: &str| format!("{{\"Type\": \"{t}\", \"Version\": \"{v}\", \"UsageRecords\": [");
    match kind {
        RecordKind::Ip => (head(IP_TYPE, IP_VERSION), "]}"),
        RecordKind::Accelerator => (head(ACC_TYPE, ACC_VERSION), "]}"),
        _ => ("[".to_string(), "]"),
    }
}

pub(crate) const SEPARATOR: &str = ", ";

pub(crate) fn assemble(kind: RecordKind, parts: &[String]) -> String {
    let (head, tail) = envelope(kind);
    format!("{head}{}{tail}", parts.join(SEPARATOR))
}

/// Parses a JSON message: an enveloped IP or accelerator message, or a bare
/// array of energy records.
pub(crate) fn parse(text: &str) -> Result<(RecordKind, Vec<crate::Record>), Error> {
    let v: Value = serde_json::from_str(text).map_err(|e| Error::Json(e.to_string()))?;
    let (kind, items) = match &v {
        Value::Array(items) => (RecordKind::Energy, items),
        Value::Object(m) => {
            for k in m.keys() {
                if !["Type", "Version", "UsageRecords"].contains(&k.as_str()) {
                    return Err(Error::UnknownField { key: k.clone() });
                }
            }
            let t = m.get("Type").and_then(Value::as_str).ok_or_else(|| Error::missing("Type"))?;
            let kind = match t {
                IP_TYPE => RecordKind::Ip,
                ACC_TYPE => RecordKind::Accelerator,
                other => return Err(Error::UnknownMessageType(other.to_string())),
            };
            match m.get("Version") {
                Some(Value::String(_)) => {}
                Some(other) => return Err(Error::invalid("Version", other, "expected a string")),
                None => return Err(Error::missing("Version")),
            }
            match m.get("UsageRecords") {
                Some(Value::Array(items)) => (kind, items),
                Some(other) => {
                    return Err(Error::invalid("UsageRecords", other, "expected an array"));
                }
                None => return Err(Error::missing("UsageRecords")),
            }
        }
        other => {
            return Err(Error::Json(format!("expected an object or an array, got {other}")));
        }
    };
    if items.is_empty() {
        return Err(Error::NoRecords);
    }
    let records = items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let obj = Obj::new(item)?;
            match kind {
                RecordKind::Ip => parse_ip(&obj).map(crate::Record::Ip),
                RecordKind::Accelerator => parse_accelerator(&obj).map(crate::Record::Accelerator),
                _ => parse_energy(&obj).map(crate::Record::Energy),
            }
            .map_err(|e| e.in_record(index))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok((kind, records))
}

/// One JSON record object, with typed getters whose errors name the key.
struct Obj<'a>(&'a Map<String, Value>);

impl<'a> Obj<'a> {
    fn new(v: &'a Value) -> Result<Obj<'a>, Error> {
        v.as_object().map(Obj).ok_or_else(|| Error::Json(format!("a record must be an object, got {v}")))
    }
    fn only(&self, keys: &[&str]) -> Result<(), Error> {
        match self.0.keys().find(|k| !keys.contains(&k.as_str())) {
            Some(k) => Err(Error::UnknownField { key: k.clone() }),
            None => Ok(()),
        }
    }
    fn get(&self, k: &str) -> Option<&'a Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }
    fn req<T>(&self, k: &str, f: impl Fn(&Self, &str) -> Result<Option<T>, Error>) -> Result<T, Error> {
        f(self, k)?.ok_or_else(|| Error::missing(k))
    }
    fn str(&self, k: &str) -> Result<Option<&'a str>, Error> {
        self.get(k).map(|v| v.as_str().ok_or_else(|| Error::invalid(k, v, "expected a string"))).transpose()
    }
    fn text(&self, k: &str) -> Result<Option<ApelText>, Error> {
        self.str(k)?.map(|s| ApelText::for_field(k, s)).transpose()
    }
    fn int<T: TryFrom<i128>>(&self, k: &str) -> Result<Option<T>, Error> {
        self.get(k)
            .map(|v| {
                let n = v.as_i64().map(i128::from).or(v.as_u64().map(i128::from));
                let n = n.ok_or_else(|| Error::invalid(k, v, "invalid int value"))?;
                if n < 0 {
                    return Err(Error::invalid(k, v, "negative value"));
                }
                T::try_from(n).map_err(|_| Error::invalid(k, v, "out of range"))
            })
            .transpose()
    }
    fn float(&self, k: &str) -> Result<Option<f64>, Error> {
        self.get(k).map(|v| v.as_f64().ok_or_else(|| Error::invalid(k, v, "invalid float value"))).transpose()
    }
    fn site(&self) -> Result<SiteName, Error> {
        SiteName::new(self.req("SiteName", Self::str)?)
    }
    fn fqan(&self) -> Result<Fqan, Error> {
        Fqan::new(self.req("FQAN", Self::str)?)
    }
}

const IP_KEYS: [&str; 11] = [
    "SiteName",
    "CloudType",
    "CloudComputeService",
    "uuid",
    "LocalUser",
    "GlobalUserName",
    "LocalGroup",
    "FQAN",
    "IPVersion",
    "IPCount",
    "MeasurementTime",
];

fn parse_ip(o: &Obj) -> Result<IpRecord, Error> {
    o.only(&IP_KEYS)?;
    let mt = o.get("MeasurementTime").ok_or_else(|| Error::missing("MeasurementTime"))?;
    let secs = mt.as_i64().ok_or_else(|| Error::invalid("MeasurementTime", mt, "invalid int value"))?;
    let ip_version: u8 = o.req("IPVersion", Obj::int)?;
    if ip_version != 4 && ip_version != 6 {
        return Err(Error::invalid("IPVersion", ip_version, "must be 4 or 6"));
    }
    Ok(IpRecord {
        measurement_time: from_epoch("MeasurementTime", &mt.to_string(), secs.into())?,
        site_name: o.site()?,
        cloud_compute_service: o.text("CloudComputeService")?,
        cloud_type: o.req("CloudType", Obj::text)?,
        uuid: o.text("uuid")?.map(ApelText::into_string),
        local_user: o.text("LocalUser")?,
        global_user_name: o.text("GlobalUserName")?,
        local_group: o.req("LocalGroup", Obj::text)?,
        fqan: o.fqan()?,
        ip_version,
        ip_count: o.req("IPCount", Obj::int)?,
    })
}

const ACC_KEYS: [&str; 18] = [
    "SiteName",
    "CloudType",
    "CloudComputeService",
    "AssociatedRecord",
    "GlobalUserName",
    "FQAN",
    "Count",
    "AvailableDuration",
    "MeasurementMonth",
    "MeasurementYear",
    "AssociatedRecordType",
    "Type",
    "Cores",
    "Model",
    "Benchmark",
    "benchmark_value",
    "BenchmarkType",
    "ActiveDuration",
];

fn parse_accelerator(o: &Obj) -> Result<AcceleratorRecord, Error> {
    o.only(&ACC_KEYS)?;
    let month: u32 = o.req("MeasurementMonth", Obj::int)?;
    if !(1..=12).contains(&month) {
        return Err(Error::invalid("MeasurementMonth", month, "must be 1..=12"));
    }
    let year = o.get("MeasurementYear").ok_or_else(|| Error::missing("MeasurementYear"))?;
    let year = year
        .as_i64()
        .and_then(|y| i32::try_from(y).ok())
        .ok_or_else(|| Error::invalid("MeasurementYear", year, "invalid int value"))?;
    Ok(AcceleratorRecord {
        measurement_month: month,
        measurement_year: year,
        associated_record_type: o.req("AssociatedRecordType", Obj::text)?,
        associated_record: o.req("AssociatedRecord", Obj::text)?,
        global_user_name: o.text("GlobalUserName")?,
        fqan: o.fqan()?,
        site_name: o.site()?,
        count: o.req("Count", Obj::int)?,
        cores: o.int("Cores")?,
        active_duration: o.int("ActiveDuration")?,
        available_duration: o.req("AvailableDuration", Obj::int)?,
        benchmark_type: o.text("BenchmarkType")?,
        benchmark: match o.float("Benchmark")? {
            Some(b) => Some(b),
            None => o.float("benchmark_value")?,
        },
        accelerator_type: o.req("Type", Obj::text)?,
        model: o.req("Model", Obj::text)?,
        cloud_compute_service: o.text("CloudComputeService")?,
        cloud_type: o.text("CloudType")?,
    })
}

const ENERGY_KEYS: [&str; 16] = [
    "SiteName",
    "CloudType",
    "CloudComputeService",
    "ExecUnitID",
    "StartExecTime",
    "EndExecTime",
    "EnergyWh",
    "Work",
    "Efficiency",
    "WallClockTime_s",
    "CpuDuration_s",
    "SuspendDuration_s",
    "CPUNormalizationFactor",
    "ExecUnitFinished",
    "Status",
    "Owner",
];

fn parse_energy(o: &Obj) -> Result<EnergyRecord, Error> {
    o.only(&ENERGY_KEYS)?;
    let time = |k: &str| -> Result<DateTime<Utc>, Error> {
        let v = o.req(k, Obj::str)?;
        NaiveDateTime::parse_from_str(v, ENERGY_TIME)
            .map(|t| t.and_utc())
            .map_err(|_| Error::invalid(k, v, "expected %Y-%m-%dT%H:%M:%SZ"))
    };
    let finished: u8 = match o.get("ExecUnitFinished") {
        Some(Value::Bool(b)) => *b as u8,
        _ => o.req("ExecUnitFinished", Obj::int)?,
    };
    if finished > 1 {
        return Err(Error::invalid("ExecUnitFinished", finished, "must be 0 or 1"));
    }
    Ok(EnergyRecord {
        exec_unit_id: VmUuid::new(o.req("ExecUnitID", Obj::str)?).map_err(|e| rename(e, "ExecUnitID"))?,
        start_exec_time: time("StartExecTime")?,
        end_exec_time: time("EndExecTime")?,
        energy_wh: o.req("EnergyWh", Obj::float)?,
        work: o.req("Work", Obj::float)?,
        efficiency: o.req("Efficiency", Obj::float)?,
        wall_clock_time_s: o.req("WallClockTime_s", Obj::int)?,
        cpu_duration_s: o.req("CpuDuration_s", Obj::int)?,
        suspend_duration_s: o.req("SuspendDuration_s", Obj::int)?,
        cpu_normalization_factor: o.req("CPUNormalizationFactor", Obj::float)?,
        exec_unit_finished: finished == 1,
        status: o.req("Status", Obj::text)?,
        owner: o.req("Owner", Obj::text)?,
        site_name: o.site()?,
        cloud_type: o.req("CloudType", Obj::text)?,
        cloud_compute_service: o.text("CloudComputeService")?,
    })
}

/// Re-labels a newtype error with the wire key it came from.
pub(crate) fn rename(e: Error, field: &str) -> Error {
    match e {
        Error::InvalidValue { value, reason, .. } => Error::InvalidValue { field: field.to_string(), value, reason },
        e => e,
    }
}
