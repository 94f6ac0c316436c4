//! The GLUE 2.1 objects cloud-info-provider 1.2 emits, with its identifiers,
//! defaults and attribute order, and the document they form: a JSON object
//! keyed by class name (`Share`, not `CloudComputingShare`) in first-use
//! order, each object's null attributes dropped.

use chrono::{DateTime, SecondsFormat, Utc};

use pyjson::{Json, Object, dumps};

/// 12 hours, the `Validity` of every object.
pub const VALIDITY: i64 = 43200;

/// Python `datetime.isoformat()` of an aware UTC time: microseconds only
/// when non-zero, `+00:00` offset.
pub fn iso_time(t: DateTime<Utc>) -> String {
    let fmt = if t.timestamp_subsec_micros() == 0 { SecondsFormat::Secs } else { SecondsFormat::Micros };
    t.to_rfc3339_opts(fmt, false)
}

/// What every GLUE object carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    pub id: String,
    pub name: Option<String>,
    pub creation_time: String,
    pub validity: i64,
    pub other_info: Object,
    /// Class or relation name → list of ids/names.
    pub associations: Object,
}

impl Common {
    pub fn new(id: impl Into<String>, name: Option<String>, creation_time: &str) -> Common {
        Common {
            id: id.into(),
            name,
            creation_time: creation_time.to_string(),
            validity: VALIDITY,
            other_info: Object::new(),
            associations: Object::new(),
        }
    }
    /// Appends `value` to the association list `name`.
    pub fn associate(&mut self, name: &str, value: &str) {
        match self.associations.0.iter_mut().find(|(k, _)| k == name) {
            Some((_, Json::List(l))) => l.push(Json::from(value)),
            _ => self.associations.insert(name, Json::List(vec![Json::from(value)])),
        }
    }
    fn render(&self, o: &mut Object) {
        o.insert("ID", self.id.as_str());
        o.insert("Validity", Json::Int(self.validity as i128));
        o.insert("CreationTime", self.creation_time.as_str());
        o.opt("Name", self.name.as_deref());
        if !self.other_info.is_empty() {
            o.insert("OtherInfo", self.other_info.clone());
        }
        if !self.associations.is_empty() {
            o.insert("Associations", self.associations.clone());
        }
    }
}

/// `true` / `false` / `"UNKNOWN"` (cloud-info-provider's BoolEnum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tristate {
    True,
    False,
    Unknown,
}

impl From<Tristate> for Json {
    fn from(t: Tristate) -> Json {
        match t {
            Tristate::True => Json::Bool(true),
            Tristate::False => Json::Bool(false),
            Tristate::Unknown => Json::from("UNKNOWN"),
        }
    }
}

fn int(v: Option<i64>) -> Option<Json> {
    v.map(|n| Json::Int(n as i128))
}

#[derive(Debug, Clone, PartialEq)]
pub struct CloudComputingService {
    pub common: Common,
    pub service_type: String,
    pub quality_level: String,
    pub status_info: String,
    pub service_aup: String,
    pub complexity: Option<String>,
    pub capability: Vec<String>,
    pub total_vm: Option<i64>,
    pub running_vm: Option<i64>,
    pub suspended_vm: Option<i64>,
    pub halted_vm: Option<i64>,
}

impl CloudComputingService {
    pub fn render(&self) -> Object {
        let mut o = Object::new();
        self.common.render(&mut o);
        o.insert("Type", self.service_type.as_str());
        o.insert("QualityLevel", self.quality_level.as_str());
        o.insert("StatusInfo", self.status_info.as_str());
        o.insert("ServiceAUP", self.service_aup.as_str());
        o.opt("Complexity", self.complexity.as_deref());
        o.insert("Capability", self.capability.clone());
        o.opt("TotalVM", int(self.total_vm));
        o.opt("RunningVM", int(self.running_vm));
        o.opt("SuspendedVM", int(self.suspended_vm));
        o.opt("HaltedVM", int(self.halted_vm));
        o
    }
}

/// Only the Instance* sizes are ever filled (by the original and here).
#[derive(Debug, Clone, PartialEq)]
pub struct CloudComputingManager {
    pub common: Common,
    pub instance_max_cpu: Option<i64>,
    pub instance_min_cpu: Option<i64>,
    pub instance_max_ram: Option<i64>,
    pub instance_min_ram: Option<i64>,
}

impl CloudComputingManager {
    pub fn render(&self) -> Object {
        let mut o = Object::new();
        self.common.render(&mut o);
        o.opt("InstanceMaxCPU", int(self.instance_max_cpu));
        o.opt("InstanceMinCPU", int(self.instance_min_cpu));
        o.opt("InstanceMaxRAM", int(self.instance_max_ram));
        o.opt("InstanceMinRAM", int(self.instance_min_ram));
        o
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CloudComputingEndpoint {
    pub common: Common,
    pub url: String,
    pub capability: Vec<String>,
    pub quality_level: String,
    pub serving_state: String,
    pub interface_name: String,
    pub interface_version: Option<String>,
    pub health_state: String,
    pub health_state_info: Option<String>,
    pub technology: String,
    pub implementor: Option<String>,
    pub implementation_name: Option<String>,
    pub implementation_version: Option<String>,
    pub downtime_info: Option<String>,
    pub semantics: Option<String>,
    pub authentication: Option<String>,
    pub issuer_ca: Option<String>,
    pub trusted_cas: Option<Vec<String>>,
}

impl CloudComputingEndpoint {
    pub fn render(&self) -> Object {
        let mut o = Object::new();
        self.common.render(&mut o);
        o.insert("Capability", self.capability.clone());
        o.insert("QualityLevel", self.quality_level.as_str());
        o.insert("InterfaceName", self.interface_name.as_str());
        o.opt("InterfaceVersion", self.interface_version.as_deref());
        o.insert("HealthState", self.health_state.as_str());
        o.opt("HealthStateInfo", self.health_state_info.as_deref());
        o.insert("ServingState", self.serving_state.as_str());
        o.insert("Technology", self.technology.as_str());
        o.opt("Implementor", self.implementor.as_deref());
        o.opt("ImplementationName", self.implementation_name.as_deref());
        o.opt("ImplementationVersion", self.implementation_version.as_deref());
        o.opt("DowntimeInfo", self.downtime_info.as_deref());
        o.opt("Semantics", self.semantics.as_deref());
        o.opt("Authentication", self.authentication.as_deref());
        o.opt("IssuerCA", self.issuer_ca.as_deref());
        o.opt("TrustedCA", self.trusted_cas.clone());
        o.insert("URL", self.url.as_str());
        o
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    pub common: Common,
    pub instance_max_cpu: Option<i64>,
    pub instance_max_ram: Option<i64>,
    /// Computed, never emitted (as in the original).
    pub instance_min_cpu: Option<i64>,
    pub instance_min_ram: Option<i64>,
    pub total_vm: Option<i64>,
    pub running_vm: Option<i64>,
    pub suspended_vm: Option<i64>,
    pub halted_vm: Option<i64>,
    pub max_vm: Option<i64>,
    pub project_id: Option<String>,
}

impl Share {
    pub fn render(&self) -> Object {
        let mut o = Object::new();
        self.common.render(&mut o);
        o.opt("InstanceMaxCPU", int(self.instance_max_cpu));
        o.opt("InstanceMaxRAM", int(self.instance_max_ram));
        o.opt("TotalVM", int(self.total_vm));
        o.opt("RunningVM", int(self.running_vm));
        o.opt("SuspendedVM", int(self.suspended_vm));
        o.opt("HaltedVM", int(self.halted_vm));
        o.opt("MaxVM", int(self.max_vm));
        o.opt("ProjectID", self.project_id.as_deref());
        o
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CloudComputingImage {
    pub common: Common,
    pub marketplace_url: Option<String>,
    pub os_platform: String,
    pub os_name: String,
    pub os_version: Option<String>,
    pub description: Option<String>,
    pub access_info: String,
}

impl CloudComputingImage {
    pub fn render(&self) -> Object {
        let mut o = Object::new();
        self.common.render(&mut o);
        o.opt("MarketplaceURL", self.marketplace_url.as_deref());
        o.insert("OSPlatform", self.os_platform.as_str());
        o.insert("OSName", self.os_name.as_str());
        o.opt("OSVersion", self.os_version.as_deref());
        o.opt("Description", self.description.as_deref());
        o.insert("AccessInfo", self.access_info.as_str());
        o
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CloudComputingInstanceType {
    pub common: Common,
    pub platform: String,
    pub cpu: i64,
    pub ram: i64,
    pub disk: i64,
    pub network_in: Tristate,
    pub network_out: Tristate,
    pub network_info: Option<String>,
}

impl CloudComputingInstanceType {
    pub fn render(&self) -> Object {
        let mut o = Object::new();
        self.common.render(&mut o);
        o.insert("Platform", self.platform.as_str());
        o.insert("CPU", Json::Int(self.cpu as i128));
        o.insert("RAM", Json::Int(self.ram as i128));
        o.insert("Disk", Json::Int(self.disk as i128));
        o.insert("NetworkIn", self.network_in);
        o.insert("NetworkOut", self.network_out);
        o.opt("NetworkInfo", self.network_info.as_deref());
        o
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CloudComputingVirtualAccelerator {
    pub common: Common,
    pub accelerator_type: String,
    pub number: i64,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub memory: Option<i64>,
    pub compute_capability: Vec<String>,
    pub virtualization_type: Option<String>,
}

impl CloudComputingVirtualAccelerator {
    pub fn render(&self) -> Object {
        let mut o = Object::new();
        self.common.render(&mut o);
        o.insert("Type", self.accelerator_type.as_str());
        o.insert("Number", Json::Int(self.number as i128));
        o.opt("Vendor", self.vendor.as_deref());
        o.opt("Model", self.model.as_deref());
        o.opt("Memory", int(self.memory));
        o.insert("ComputeCapability", self.compute_capability.clone());
        o.opt("VirtualizationType", self.virtualization_type.as_deref());
        o
    }
}

/// MappingPolicy and AccessPolicy (same shape).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub common: Common,
    pub scheme: String,
    pub rule: Vec<String>,
}

impl Policy {
    pub fn new(common: Common, rule: Vec<String>) -> Policy {
        Policy { common, scheme: "org.glite.standard".into(), rule }
    }
    pub fn render(&self) -> Object {
        let mut o = Object::new();
        self.common.render(&mut o);
        o.insert("Rule", self.rule.clone());
        o.insert("Scheme", self.scheme.as_str());
        o
    }
}

/// One object of any class.
#[derive(Debug, Clone, PartialEq)]
pub enum Glue {
    Service(CloudComputingService),
    Manager(CloudComputingManager),
    Endpoint(CloudComputingEndpoint),
    Share(Share),
    Image(CloudComputingImage),
    InstanceType(CloudComputingInstanceType),
    Accelerator(CloudComputingVirtualAccelerator),
    MappingPolicy(Policy),
    AccessPolicy(Policy),
}

impl Glue {
    /// The document key (Python class name).
    pub fn class(&self) -> &'static str {
        match self {
            Glue::Service(_) => "CloudComputingService",
            Glue::Manager(_) => "CloudComputingManager",
            Glue::Endpoint(_) => "CloudComputingEndpoint",
            Glue::Share(_) => "Share",
            Glue::Image(_) => "CloudComputingImage",
            Glue::InstanceType(_) => "CloudComputingInstanceType",
            Glue::Accelerator(_) => "CloudComputingVirtualAccelerator",
            Glue::MappingPolicy(_) => "MappingPolicy",
            Glue::AccessPolicy(_) => "AccessPolicy",
        }
    }
    pub fn render(&self) -> Object {
        match self {
            Glue::Service(x) => x.render(),
            Glue::Manager(x) => x.render(),
            Glue::Endpoint(x) => x.render(),
            Glue::Share(x) => x.render(),
            Glue::Image(x) => x.render(),
            Glue::InstanceType(x) => x.render(),
            Glue::Accelerator(x) => x.render(),
            Glue::MappingPolicy(x) | Glue::AccessPolicy(x) => x.render(),
        }
    }
}

/// The whole site description: objects grouped by class, classes in the
/// order they were first added (Python dict order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    pub classes: Vec<(&'static str, Vec<Glue>)>,
}

impl Document {
    pub fn add(&mut self, g: Glue) {
        let class = g.class();
        match self.classes.iter_mut().find(|(c, _)| *c == class) {
            Some((_, list)) => list.push(g),
            None => self.classes.push((class, vec![g])),
        }
    }
    pub fn objects(&self, class: &str) -> &[Glue] {
        self.classes.iter().find(|(c, _)| *c == class).map(|(_, l)| l.as_slice()).unwrap_or(&[])
    }
    pub fn to_json(&self) -> Json {
        let mut top = Object::new();
        for (class, list) in &self.classes {
            top.insert(*class, Json::List(list.iter().map(|g| Json::Object(g.render())).collect()));
        }
        Json::Object(top)
    }
    /// The document exactly as `cloud-info-provider-service` prints it
    /// (without print's trailing newline).
    pub fn render(&self) -> String {
        dumps(&self.to_json())
    }
    pub fn service(&self) -> Option<&CloudComputingService> {
        self.objects("CloudComputingService").iter().find_map(|g| match g {
            Glue::Service(s) => Some(s),
            _ => None,
        })
    }
    pub fn endpoint(&self) -> Option<&CloudComputingEndpoint> {
        self.objects("CloudComputingEndpoint").iter().find_map(|g| match g {
            Glue::Endpoint(e) => Some(e),
            _ => None,
        })
    }
    pub fn shares(&self) -> Vec<&Share> {
        self.objects("Share")
            .iter()
            .filter_map(|g| match g {
                Glue::Share(s) => Some(s),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_time_like_python() {
        let t = DateTime::parse_from_rfc3339("2026-01-10T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(iso_time(t), "2026-01-10T10:00:00+00:00");
        let t = DateTime::parse_from_rfc3339("2026-01-10T10:00:00.000120Z").unwrap().with_timezone(&Utc);
        assert_eq!(iso_time(t), "2026-01-10T10:00:00.000120+00:00");
    }
}
