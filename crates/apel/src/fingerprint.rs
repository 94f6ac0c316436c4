//! A record's fingerprint: SHA-256 over every field of the record in a fixed binary encoding,
//! salted with [`VERSION`] and truncated to 128 bits (32 hex digits). Records with the same
//! fingerprint render to the same bytes in every style, so the ledger can tell an unchanged
//! record without rendering it (accounting's pipeline stores it beside each snapshot).
//!
//! Written by hand: every field is fed through a destructuring pattern without `..`, so a field
//! added to a record does not compile until it is fed here too; a serde-based hash would depend
//! on formats (times, floats) that are not promised to stay stable. A change to how records
//! render must bump [`VERSION`] (the `rendering_is_pinned` test fails until it is), so that a
//! ledger written by an older build renders and compares its records again.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::records::{AcceleratorRecord, CloudRecord, EnergyRecord, IpRecord, Record, StorageRecord};
use crate::types::{ApelText, Fqan, SiteName, VmUuid};

/// The version of the rendering (and of this encoding) the fingerprints stand for.
pub const VERSION: u32 = 1;

/// The encoding: each value length-prefixed or fixed-width, each `Option` tagged.
struct Feed(Vec<u8>);

impl Feed {
    fn str(&mut self, s: &str) {
        self.0.extend_from_slice(&(s.len() as u64).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    fn time(&mut self, t: &DateTime<Utc>) {
        self.i64(t.timestamp());
        self.u64(u64::from(t.timestamp_subsec_nanos()));
    }
    fn opt<T>(&mut self, v: &Option<T>, f: impl FnOnce(&mut Feed, &T)) {
        match v {
            None => self.0.push(0),
            Some(x) => {
                self.0.push(1);
                f(self, x);
            }
        }
    }
    fn text(&mut self, v: &Option<ApelText>) {
        self.opt(v, |f, t| f.str(t.as_str()));
    }
    fn site(&mut self, v: &SiteName) {
        self.str(v.as_str());
    }
    fn fqan(&mut self, v: &Fqan) {
        self.str(v.as_str());
    }
    fn uuid(&mut self, v: &VmUuid) {
        self.str(v.as_str());
    }
}

impl Record {
    /// The record's fingerprint, 32 lowercase hex digits (see the module doc).
    pub fn fingerprint(&self) -> String {
        let mut f = Feed(Vec::with_capacity(512));
        f.u64(u64::from(VERSION));
        f.str(self.kind().as_str());
        match self {
            Record::Cloud(r) => cloud(&mut f, r),
            Record::Ip(r) => ip(&mut f, r),
            Record::Accelerator(r) => accelerator(&mut f, r),
            Record::Storage(r) => storage(&mut f, r),
            Record::Energy(r) => energy(&mut f, r),
        }
        let digest = Sha256::digest(&f.0);
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(32);
        for b in &digest[..16] {
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
        out
    }
}

fn cloud(f: &mut Feed, r: &CloudRecord) {
    let CloudRecord {
        vm_uuid,
        site_name,
        cloud_compute_service,
        cloud_type,
        machine_name,
        local_user_id,
        local_group_id,
        global_user_name,
        fqan,
        status,
        start_time,
        end_time,
        suspend_duration,
        wall_duration,
        cpu_duration,
        cpu_count,
        network_type,
        network_inbound,
        network_outbound,
        public_ip_count,
        memory,
        disk,
        storage_record_id,
        image_id,
        benchmark_type,
        benchmark,
        record_create_time,
    } = r;
    f.uuid(vm_uuid);
    f.site(site_name);
    f.text(cloud_compute_service);
    f.text(cloud_type);
    f.text(machine_name);
    f.text(local_user_id);
    f.text(local_group_id);
    f.text(global_user_name);
    f.opt(fqan, Feed::fqan);
    f.opt(status, |f, s| f.str(s.as_str()));
    f.opt(start_time, Feed::time);
    f.opt(end_time, Feed::time);
    f.opt(suspend_duration, |f, v| f.u64(*v));
    f.opt(wall_duration, |f, v| f.u64(*v));
    f.opt(cpu_duration, |f, v| f.u64(*v));
    f.opt(cpu_count, |f, v| f.u64(u64::from(*v)));
    f.text(network_type);
    f.opt(network_inbound, |f, v| f.u64(*v));
    f.opt(network_outbound, |f, v| f.u64(*v));
    f.opt(public_ip_count, |f, v| f.u64(u64::from(*v)));
    f.opt(memory, |f, v| f.u64(*v));
    f.opt(disk, |f, v| f.u64(*v));
    f.text(storage_record_id);
    f.text(image_id);
    f.text(benchmark_type);
    f.opt(benchmark, |f, v| f.f64(*v));
    f.opt(record_create_time, Feed::time);
}

fn ip(f: &mut Feed, r: &IpRecord) {
    let IpRecord {
        measurement_time,
        site_name,
        cloud_compute_service,
        cloud_type,
        uuid,
        local_user,
        global_user_name,
        local_group,
        fqan,
        ip_version,
        ip_count,
    } = r;
    f.time(measurement_time);
    f.site(site_name);
    f.text(cloud_compute_service);
    f.str(cloud_type.as_str());
    f.opt(uuid, |f, u| f.str(u));
    f.text(local_user);
    f.text(global_user_name);
    f.str(local_group.as_str());
    f.fqan(fqan);
    f.u64(u64::from(*ip_version));
    f.u64(u64::from(*ip_count));
}

fn accelerator(f: &mut Feed, r: &AcceleratorRecord) {
    let AcceleratorRecord {
        measurement_month,
        measurement_year,
        associated_record_type,
        associated_record,
        global_user_name,
        fqan,
        site_name,
        count,
        cores,
        active_duration,
        available_duration,
        benchmark_type,
        benchmark,
        accelerator_type,
        model,
        cloud_compute_service,
        cloud_type,
    } = r;
    f.u64(u64::from(*measurement_month));
    f.i64(i64::from(*measurement_year));
    f.str(associated_record_type.as_str());
    f.str(associated_record.as_str());
    f.text(global_user_name);
    f.fqan(fqan);
    f.site(site_name);
    f.u64(u64::from(*count));
    f.opt(cores, |f, v| f.u64(u64::from(*v)));
    f.opt(active_duration, |f, v| f.u64(*v));
    f.u64(*available_duration);
    f.text(benchmark_type);
    f.opt(benchmark, |f, v| f.f64(*v));
    f.str(accelerator_type.as_str());
    f.str(model.as_str());
    f.text(cloud_compute_service);
    f.text(cloud_type);
}

fn storage(f: &mut Feed, r: &StorageRecord) {
    let StorageRecord {
        record_id,
        create_time,
        storage_system,
        site,
        storage_share,
        storage_media,
        storage_class,
        local_user,
        local_group,
        user_identity,
        group,
        start_time,
        end_time,
        resource_capacity_used,
        resource_capacity_allocated,
    } = r;
    f.str(record_id.as_str());
    f.time(create_time);
    f.str(storage_system.as_str());
    f.text(site);
    f.text(storage_share);
    f.text(storage_media);
    f.text(storage_class);
    f.text(local_user);
    f.text(local_group);
    f.text(user_identity);
    f.text(group);
    f.time(start_time);
    f.time(end_time);
    f.u64(*resource_capacity_used);
    f.opt(resource_capacity_allocated, |f, v| f.u64(*v));
}

fn energy(f: &mut Feed, r: &EnergyRecord) {
    let EnergyRecord {
        exec_unit_id,
        start_exec_time,
        end_exec_time,
        energy_wh,
        work,
        efficiency,
        wall_clock_time_s,
        cpu_duration_s,
        suspend_duration_s,
        cpu_normalization_factor,
        exec_unit_finished,
        status,
        owner,
        site_name,
        cloud_type,
        cloud_compute_service,
    } = r;
    f.uuid(exec_unit_id);
    f.time(start_exec_time);
    f.time(end_exec_time);
    f.f64(*energy_wh);
    f.f64(*work);
    f.f64(*efficiency);
    f.u64(*wall_clock_time_s);
    f.u64(*cpu_duration_s);
    f.u64(*suspend_duration_s);
    f.f64(*cpu_normalization_factor);
    f.u64(u64::from(*exec_unit_finished));
    f.str(status.as_str());
    f.str(owner.as_str());
    f.site(site_name);
    f.str(cloud_type.as_str());
    f.text(cloud_compute_service);
}
