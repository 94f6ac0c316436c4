//! `validate`: the APEL loader's rules that the record types alone do not
//! enforce (DB column sizes, finite numbers, value sets, text that would
//! break the cloud `%%` framing), applied before a record is spooled.

use crate::{ApelText, Error, Record};

/// The loader's DECIMAL(10,3) columns (CpuCount, Benchmark) hold < 10^7.
const DECIMAL_10_3_MAX: f64 = 10_000_000.0;
/// `BenchmarkType` is VARCHAR(50).
const BENCHMARK_TYPE_MAX: usize = 50;

fn finite(field: &str, v: Option<f64>) -> Result<(), Error> {
    match v {
        Some(f) if !f.is_finite() => Err(Error::invalid(field, f, "not a finite number")),
        _ => Ok(()),
    }
}

fn decimal(field: &str, v: Option<f64>) -> Result<(), Error> {
    finite(field, v)?;
    match v {
        Some(f) if f.abs() >= DECIMAL_10_3_MAX => Err(Error::invalid(field, f, "does not fit DECIMAL(10,3)")),
        _ => Ok(()),
    }
}

fn benchmark_type(v: &Option<ApelText>) -> Result<(), Error> {
    match v {
        Some(t) if t.as_str().len() > BENCHMARK_TYPE_MAX => {
            Err(Error::invalid("BenchmarkType", t, format!("longer than {BENCHMARK_TYPE_MAX} characters")))
        }
        _ => Ok(()),
    }
}

/// Checks one record against the loader's rules; the error names the field.
pub fn validate(record: &Record) -> Result<(), Error> {
    match record {
        Record::Cloud(r) => {
            // The loader splits the message on "%%" anywhere, so a value holding it breaks the message.
            let texts: [(&str, Option<&str>); 14] = [
                ("SiteName", Some(r.site_name.as_str())),
                ("CloudComputeService", r.cloud_compute_service.as_ref().map(ApelText::as_str)),
                ("CloudType", r.cloud_type.as_ref().map(ApelText::as_str)),
                ("MachineName", r.machine_name.as_ref().map(ApelText::as_str)),
                ("LocalUserId", r.local_user_id.as_ref().map(ApelText::as_str)),
                ("LocalGroupId", r.local_group_id.as_ref().map(ApelText::as_str)),
                ("GlobalUserName", r.global_user_name.as_ref().map(ApelText::as_str)),
                ("FQAN", r.fqan.as_ref().map(|f| f.as_str())),
                ("NetworkType", r.network_type.as_ref().map(ApelText::as_str)),
                ("StorageRecordId", r.storage_record_id.as_ref().map(ApelText::as_str)),
                ("ImageId", r.image_id.as_ref().map(ApelText::as_str)),
                ("BenchmarkType", r.benchmark_type.as_ref().map(ApelText::as_str)),
                ("VMUUID", Some(r.vm_uuid.as_str())),
                ("Status", r.status.map(|s| s.as_str())),
            ];
            for (field, v) in texts {
                if let Some(v) = v.filter(|v| v.contains("%%")) {
                    return Err(Error::invalid(field, v, "contains \"%%\", the cloud record separator"));
                }
            }
            benchmark_type(&r.benchmark_type)?;
            decimal("Benchmark", r.benchmark)?;
            decimal("CpuCount", r.cpu_count.map(f64::from))?;
            Ok(())
        }
        Record::Ip(r) => {
            if r.ip_version != 4 && r.ip_version != 6 {
                return Err(Error::invalid("IPVersion", r.ip_version, "must be 4 or 6"));
            }
            if let Some(u) = &r.uuid {
                ApelText::for_field("uuid", u.as_str())?;
            }
            Ok(())
        }
        Record::Accelerator(r) => {
            if !(1..=12).contains(&r.measurement_month) {
                return Err(Error::invalid("MeasurementMonth", r.measurement_month, "must be 1..=12"));
            }
            if !(1..=9999).contains(&r.measurement_year) {
                return Err(Error::invalid("MeasurementYear", r.measurement_year, "must be 1..=9999"));
            }
            benchmark_type(&r.benchmark_type)?;
            finite("Benchmark", r.benchmark)
        }
        Record::Storage(r) => {
            if r.record_id.as_str().is_empty() {
                return Err(Error::missing("recordId"));
            }
            if r.storage_system.as_str().is_empty() {
                return Err(Error::missing("StorageSystem"));
            }
            Ok(())
        }
        Record::Energy(r) => {
            finite("EnergyWh", Some(r.energy_wh))?;
            finite("Work", Some(r.work))?;
            finite("Efficiency", Some(r.efficiency))?;
            finite("CPUNormalizationFactor", Some(r.cpu_normalization_factor))
        }
    }
}
