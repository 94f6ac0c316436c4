//! Compact forms of what the run-wide listings hold until each project is
//! extracted (on a site of 200,000 servers, tens of thousands of servers,
//! usage entries and volumes): only the fields records read, and values
//! many servers share — flavor snapshots, users, statuses, images, projects —
//! stored once. A project's servers are expanded back into
//! [`openstack::nova::Server`]s only while that project is extracted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use openstack::cinder::Volume;
use openstack::nova::servers::de_image;
use openstack::nova::{Address, ImageRef, Server, ServerFlavor, ServerUsage};
use openstack::time;
use serde::{Deserialize, Serialize};

/// A flavor snapshot's (id, original name).
type FlavorKey = (Option<String>, Option<String>);

/// Values seen many times in one listing, each stored once.
#[derive(Default)]
pub(crate) struct Interner {
    strs: HashSet<Arc<str>>,
    /// Flavor snapshots by (id, name); equal snapshots share one Arc.
    flavors: HashMap<FlavorKey, Vec<Arc<ServerFlavor>>>,
}

impl Interner {
    fn str(&mut self, s: String) -> Arc<str> {
        if let Some(a) = self.strs.get(s.as_str()) {
            return a.clone();
        }
        let a: Arc<str> = s.into();
        self.strs.insert(a.clone());
        a
    }

    fn flavor(&mut self, f: ServerFlavor) -> Arc<ServerFlavor> {
        let same = self.flavors.entry((f.id.clone(), f.original_name.clone())).or_default();
        if let Some(a) = same.iter().find(|a| ***a == f) {
            return a.clone();
        }
        let a = Arc::new(f);
        same.push(a.clone());
        a
    }
}

/// A `servers/detail` item as the run-wide listings decode it: the fields of
/// [`Server`] without its catch-all of unknown fields (which makes serde buffer
/// every item whole before decoding it). The fields no record reads are still
/// decoded, so an item decodes here exactly when it decodes as a [`Server`].
#[derive(Debug, Deserialize)]
pub(crate) struct ListedServer {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(deserialize_with = "time::de")]
    created: DateTime<Utc>,
    #[serde(default, deserialize_with = "time::de_opt")]
    updated: Option<DateTime<Utc>>,
    #[serde(rename = "OS-SRV-USG:launched_at", default, deserialize_with = "time::de_opt")]
    launched_at: Option<DateTime<Utc>>,
    #[serde(rename = "OS-SRV-USG:terminated_at", default, deserialize_with = "time::de_opt")]
    terminated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    flavor: Option<ServerFlavor>,
    #[serde(default, deserialize_with = "de_image")]
    image: Option<ImageRef>,
    #[serde(default)]
    addresses: BTreeMap<String, Vec<Address>>,
    // Decoded for their types only (see above).
    #[serde(default, rename = "metadata")]
    _metadata: BTreeMap<String, String>,
    #[serde(rename = "OS-EXT-STS:vm_state", default)]
    _vm_state: Option<String>,
    #[serde(rename = "OS-EXT-STS:task_state", default)]
    _task_state: Option<String>,
    #[serde(rename = "OS-EXT-STS:power_state", default)]
    _power_state: Option<i64>,
    #[serde(rename = "OS-EXT-SRV-ATTR:host", default)]
    _host: Option<String>,
    #[serde(rename = "OS-EXT-SRV-ATTR:hypervisor_hostname", default)]
    _hypervisor_hostname: Option<String>,
    #[serde(rename = "OS-EXT-AZ:availability_zone", default)]
    _availability_zone: Option<String>,
    #[serde(rename = "key_name", default)]
    _key_name: Option<String>,
    #[serde(rename = "locked", default)]
    _locked: Option<bool>,
    #[serde(rename = "tags", default)]
    _tags: Option<Vec<String>>,
}

impl ListedServer {
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A listed server, as kept for the run (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct KeptServer {
    id: Box<str>,
    name: Option<Box<str>>,
    status: Arc<str>,
    tenant_id: Option<Arc<str>>,
    user_id: Option<Arc<str>>,
    created: DateTime<Utc>,
    updated: Option<DateTime<Utc>>,
    launched_at: Option<DateTime<Utc>>,
    terminated_at: Option<DateTime<Utc>>,
    flavor: Option<Arc<ServerFlavor>>,
    image: Option<Arc<str>>,
    /// Only the floating addresses (PublicIPCount); fixed ones are dropped.
    floating: Box<[(Arc<str>, Address)]>,
}

impl KeptServer {
    pub fn new(s: ListedServer, i: &mut Interner) -> KeptServer {
        let mut floating = Vec::new();
        for (net, list) in s.addresses {
            for a in list {
                if a.ip_type.as_deref() == Some("floating") {
                    floating.push((i.str(net.clone()), a));
                }
            }
        }
        KeptServer {
            id: s.id.into(),
            name: s.name.map(Into::into),
            status: i.str(s.status),
            tenant_id: s.tenant_id.map(|t| i.str(t)),
            user_id: s.user_id.map(|u| i.str(u)),
            created: s.created,
            updated: s.updated,
            launched_at: s.launched_at,
            terminated_at: s.terminated_at,
            flavor: s.flavor.map(|f| i.flavor(f)),
            image: s.image.map(|r| i.str(r.id)),
            floating: floating.into_boxed_slice(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn tenant_id(&self) -> Option<&str> {
        self.tenant_id.as_deref()
    }

    pub fn updated(&self) -> Option<DateTime<Utc>> {
        self.updated
    }

    /// The server as Nova listed it, less what no record reads (metadata,
    /// tags, fixed addresses, extended status and host attributes).
    pub fn server(&self) -> Server {
        let mut addresses: BTreeMap<String, Vec<Address>> = Default::default();
        for (net, a) in self.floating.iter() {
            addresses.entry(net.to_string()).or_default().push(a.clone());
        }
        Server {
            id: self.id.to_string(),
            name: self.name.as_deref().map(str::to_string),
            status: self.status.to_string(),
            tenant_id: self.tenant_id.as_deref().map(str::to_string),
            user_id: self.user_id.as_deref().map(str::to_string),
            created: self.created,
            updated: self.updated,
            launched_at: self.launched_at,
            terminated_at: self.terminated_at,
            flavor: self.flavor.as_deref().cloned(),
            image: self.image.as_deref().map(|id| ImageRef { id: id.to_string() }),
            addresses,
            metadata: Default::default(),
            vm_state: None,
            task_state: None,
            power_state: None,
            host: None,
            hypervisor_hostname: None,
            availability_zone: None,
            key_name: None,
            locked: None,
            tags: None,
            extra: Default::default(),
        }
    }
}

/// The stored form of a [`KeptServer`] in the ledger's listed-server cache
/// (`crate::server_cache`): every kept field but the id (the entry's key), short names, absent
/// values left out, times as RFC 3339 with every fractional digit (exact round trip).
#[derive(Serialize, Deserialize)]
struct StoredServer {
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(rename = "s")]
    status: String,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(rename = "c")]
    created: DateTime<Utc>,
    #[serde(rename = "up", default, skip_serializing_if = "Option::is_none")]
    updated: Option<DateTime<Utc>>,
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    launched_at: Option<DateTime<Utc>>,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    terminated_at: Option<DateTime<Utc>>,
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    flavor: Option<StoredFlavor>,
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    #[serde(rename = "a", default, skip_serializing_if = "Vec::is_empty")]
    floating: Vec<(String, StoredAddress)>,
}

#[derive(Serialize, Deserialize)]
struct StoredFlavor {
    id: Option<String>,
    name: Option<String>,
    vcpus: Option<u32>,
    ram: Option<u64>,
    disk: Option<u64>,
    ephemeral: Option<u64>,
    swap: Option<u64>,
    specs: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize)]
struct StoredAddress {
    addr: String,
    version: Option<u8>,
    ip_type: Option<String>,
    mac: Option<String>,
}

impl KeptServer {
    /// Whether Nova listed it as deleted (status `DELETED`): the live-server listing leaves it out.
    pub fn is_deleted(&self) -> bool {
        &*self.status == "DELETED"
    }

    /// The stored form (see [`StoredServer`]).
    pub fn encode(&self) -> String {
        let f = self.flavor.as_deref().map(|f| StoredFlavor {
            id: f.id.clone(),
            name: f.original_name.clone(),
            vcpus: f.vcpus,
            ram: f.ram,
            disk: f.disk,
            ephemeral: f.ephemeral,
            swap: f.swap,
            specs: f.extra_specs.clone(),
        });
        let stored = StoredServer {
            name: self.name.as_deref().map(str::to_string),
            status: self.status.to_string(),
            tenant_id: self.tenant_id.as_deref().map(str::to_string),
            user_id: self.user_id.as_deref().map(str::to_string),
            created: self.created,
            updated: self.updated,
            launched_at: self.launched_at,
            terminated_at: self.terminated_at,
            flavor: f,
            image: self.image.as_deref().map(str::to_string),
            floating: self
                .floating
                .iter()
                .map(|(net, a)| {
                    (
                        net.to_string(),
                        StoredAddress {
                            addr: a.addr.clone(),
                            version: a.version,
                            ip_type: a.ip_type.clone(),
                            mac: a.mac_addr.clone(),
                        },
                    )
                })
                .collect(),
        };
        // Strings, integers, maps and times always serialize.
        serde_json::to_string(&stored).unwrap_or_default()
    }

    /// A server back from its stored form, sharing values through `i`.
    pub fn decode(id: &str, body: &str, i: &mut Interner) -> Result<KeptServer, serde_json::Error> {
        let s: StoredServer = serde_json::from_str(body)?;
        Ok(KeptServer {
            id: id.into(),
            name: s.name.map(Into::into),
            status: i.str(s.status),
            tenant_id: s.tenant_id.map(|t| i.str(t)),
            user_id: s.user_id.map(|u| i.str(u)),
            created: s.created,
            updated: s.updated,
            launched_at: s.launched_at,
            terminated_at: s.terminated_at,
            flavor: s.flavor.map(|f| {
                i.flavor(ServerFlavor {
                    id: f.id,
                    original_name: f.name,
                    vcpus: f.vcpus,
                    ram: f.ram,
                    disk: f.disk,
                    ephemeral: f.ephemeral,
                    swap: f.swap,
                    extra_specs: f.specs,
                })
            }),
            image: s.image.map(|id| i.str(id)),
            floating: s
                .floating
                .into_iter()
                .map(|(net, a)| {
                    (i.str(net), Address { addr: a.addr, version: a.version, ip_type: a.ip_type, mac_addr: a.mac })
                })
                .collect(),
        })
    }
}

/// Servers kept in id order, found by binary search (no per-entry hash
/// table: the usage-only servers of a large site are tens of thousands).
#[derive(Debug, Default)]
pub(crate) struct ServersById(Vec<KeptServer>);

impl ServersById {
    pub fn new(mut v: Vec<KeptServer>) -> Self {
        v.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        v.dedup_by(|a, b| a.id == b.id);
        v.shrink_to_fit();
        ServersById(v)
    }

    pub fn get(&self, id: &str) -> Option<&KeptServer> {
        self.0.binary_search_by(|s| (*s.id).cmp(id)).ok().map(|i| &self.0[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &KeptServer> {
        self.0.iter()
    }
}

/// An os-simple-tenant-usage entry, as kept for the run: what records read
/// (not the name, the project — the map's key —, the flavor name, hours).
#[derive(Debug, Clone)]
pub(crate) struct KeptUsage {
    instance_id: Box<str>,
    state: Option<Arc<str>>,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    memory_mb: u64,
    local_gb: u64,
    vcpus: u32,
}

impl KeptUsage {
    pub fn new(u: ServerUsage, i: &mut Interner) -> KeptUsage {
        KeptUsage {
            instance_id: u.instance_id.into(),
            state: u.state.map(|s| i.str(s)),
            started_at: u.started_at,
            ended_at: u.ended_at,
            memory_mb: u.memory_mb,
            local_gb: u.local_gb,
            vcpus: u.vcpus,
        }
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    pub fn usage(&self) -> ServerUsage {
        ServerUsage {
            instance_id: self.instance_id.to_string(),
            name: None,
            tenant_id: None,
            hours: 0.0,
            vcpus: self.vcpus,
            memory_mb: self.memory_mb,
            local_gb: self.local_gb,
            flavor: None,
            started_at: self.started_at,
            ended_at: self.ended_at,
            state: self.state.as_deref().map(str::to_string),
            uptime: None,
        }
    }
}

/// A listed volume less what no record reads (metadata, description,
/// attachments, unknown fields).
pub(crate) fn slim_volume(mut v: Volume) -> Volume {
    v.extra = serde_json::Map::new();
    v.metadata.clear();
    v.description = None;
    v.attachments = Vec::new();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: &str, extra_specs: &[(&str, &str)]) -> Server {
        serde_json::from_value(item(id, extra_specs)).unwrap()
    }

    fn listed(id: &str, extra_specs: &[(&str, &str)]) -> ListedServer {
        serde_json::from_value(item(id, extra_specs)).unwrap()
    }

    fn item(id: &str, extra_specs: &[(&str, &str)]) -> serde_json::Value {
        serde_json::json!({
            "id": id, "name": format!("vm-{id}"), "status": "ACTIVE", "tenant_id": "p1", "user_id": "u1",
            "created": "2023-05-01T00:00:00Z", "updated": "2023-05-02T00:00:00Z",
            "OS-SRV-USG:launched_at": "2023-05-01T00:01:00.000000", "OS-SRV-USG:terminated_at": null,
            "flavor": {"original_name": "m1.small", "vcpus": 2, "ram": 4096, "disk": 20, "ephemeral": 0, "swap": 0,
                       "extra_specs": extra_specs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>()},
            "image": {"id": "img-1"},
            "addresses": {"net": [
                {"addr": "10.0.0.5", "version": 4, "OS-EXT-IPS:type": "fixed"},
                {"addr": "192.0.2.7", "version": 4, "OS-EXT-IPS:type": "floating"}
            ]},
            "metadata": {"k": "v"}, "OS-EXT-STS:vm_state": "active", "key_name": "mykey",
            "OS-EXT-SRV-ATTR:user_data": null, "security_groups": [{"name": "default"}]
        })
    }

    #[test]
    fn a_listed_server_decodes_exactly_when_a_server_does() {
        let ok = |v: &serde_json::Value| {
            let (a, b) = (
                serde_json::from_value::<Server>(v.clone()).is_ok(),
                serde_json::from_value::<ListedServer>(v.clone()).is_ok(),
            );
            assert_eq!(a, b, "{v}");
            a
        };
        assert!(ok(&item("a", &[])));
        for (field, bad) in [
            ("metadata", serde_json::json!({"k": 1})),
            ("OS-EXT-STS:power_state", serde_json::json!("on")),
            ("locked", serde_json::json!("no")),
            ("tags", serde_json::json!([1])),
            ("created", serde_json::json!("yesterday")),
            ("addresses", serde_json::json!({"net": [{"version": 4}]})),
        ] {
            let mut v = item("a", &[]);
            v[field] = bad;
            assert!(!ok(&v), "{field}");
        }
        let mut v = item("a", &[]);
        v.as_object_mut().unwrap().remove("created");
        assert!(!ok(&v), "created is required");
    }

    #[test]
    fn a_kept_server_gives_back_every_field_records_read() {
        let mut i = Interner::default();
        let s = server("a", &[("gpu", "1")]);
        let back = KeptServer::new(listed("a", &[("gpu", "1")]), &mut i).server();
        assert_eq!(back.id, s.id);
        assert_eq!(back.name, s.name);
        assert_eq!(back.status, s.status);
        assert_eq!(back.tenant_id, s.tenant_id);
        assert_eq!(back.user_id, s.user_id);
        assert_eq!(
            (back.created, back.updated, back.launched_at, back.terminated_at),
            (s.created, s.updated, s.launched_at, s.terminated_at)
        );
        assert_eq!(back.flavor, s.flavor);
        assert_eq!(back.image, s.image);
        assert_eq!(back.floating_ips().map(|a| a.addr.as_str()).collect::<Vec<_>>(), ["192.0.2.7"]);
        assert_eq!(back.addresses.values().flatten().count(), 1, "fixed addresses are dropped");
        assert!(back.metadata.is_empty() && back.key_name.is_none() && back.extra.is_empty());
    }

    #[test]
    fn equal_flavor_snapshots_and_repeated_strings_are_shared() {
        let mut i = Interner::default();
        let a = KeptServer::new(listed("a", &[("gpu", "1")]), &mut i);
        let b = KeptServer::new(listed("b", &[("gpu", "1")]), &mut i);
        let c = KeptServer::new(listed("c", &[("gpu", "2")]), &mut i);
        assert!(Arc::ptr_eq(a.flavor.as_ref().unwrap(), b.flavor.as_ref().unwrap()));
        assert!(
            !Arc::ptr_eq(a.flavor.as_ref().unwrap(), c.flavor.as_ref().unwrap()),
            "a changed extra spec is its own snapshot"
        );
        assert_eq!(c.server().flavor.unwrap().extra_specs.unwrap()["gpu"], "2");
        assert!(Arc::ptr_eq(a.user_id.as_ref().unwrap(), b.user_id.as_ref().unwrap()));
        assert!(Arc::ptr_eq(&a.status, &c.status));
    }

    #[test]
    fn a_kept_usage_gives_back_what_records_read() {
        let u: ServerUsage = serde_json::from_value(serde_json::json!({
            "instance_id": "i-1", "name": "vm", "tenant_id": "p1", "hours": 3.5, "vcpus": 4, "memory_mb": 8192,
            "local_gb": 40, "flavor": "m1.large", "started_at": "2023-05-01T00:00:00.000000",
            "ended_at": "2023-05-03T00:00:00.000000", "state": "terminated", "uptime": 12
        }))
        .unwrap();
        let back = KeptUsage::new(u.clone(), &mut Interner::default()).usage();
        assert_eq!(back.instance_id, u.instance_id);
        assert_eq!((back.vcpus, back.memory_mb, back.local_gb), (4, 8192, 40));
        assert_eq!((back.started_at, back.ended_at), (u.started_at, u.ended_at));
        assert_eq!(back.state.as_deref(), Some("terminated"));
    }

    #[test]
    fn servers_by_id_finds_each_and_only_those() {
        let mut i = Interner::default();
        let by =
            ServersById::new(["c", "a", "b", "a"].iter().map(|id| KeptServer::new(listed(id, &[]), &mut i)).collect());
        for id in ["a", "b", "c"] {
            assert_eq!(by.get(id).map(KeptServer::id), Some(id));
        }
        assert!(by.get("d").is_none() && by.get("").is_none());
        assert_eq!(by.0.len(), 3);
    }
}
