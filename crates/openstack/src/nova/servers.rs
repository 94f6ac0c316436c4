//! Nova servers: `GET /servers/detail` (changes-since, all_tenants,
//! limit/marker + `servers_links`) and `GET /servers/{id}`, with every field
//! accounting needs (`OS-SRV-USG:*`, `OS-EXT-IPS:type`, flavor in both forms).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::catalog::Service;
use crate::error::Result;
use crate::paging::{Next, Paged, Pager, Query};
use crate::session::{Call, Session};
use crate::time;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Server {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(deserialize_with = "time::de")]
    pub created: DateTime<Utc>,
    #[serde(default, deserialize_with = "time::de_opt")]
    pub updated: Option<DateTime<Utc>>,
    #[serde(rename = "OS-SRV-USG:launched_at", default, deserialize_with = "time::de_opt")]
    pub launched_at: Option<DateTime<Utc>>,
    #[serde(rename = "OS-SRV-USG:terminated_at", default, deserialize_with = "time::de_opt")]
    pub terminated_at: Option<DateTime<Utc>>,
    /// `{"id"}` before 2.47, the embedded flavor from 2.47.
    #[serde(default)]
    pub flavor: Option<ServerFlavor>,
    /// None when booted from volume (`"image": ""`).
    #[serde(default, deserialize_with = "de_image")]
    pub image: Option<ImageRef>,
    #[serde(default)]
    pub addresses: BTreeMap<String, Vec<Address>>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(rename = "OS-EXT-STS:vm_state", default)]
    pub vm_state: Option<String>,
    #[serde(rename = "OS-EXT-STS:task_state", default)]
    pub task_state: Option<String>,
    #[serde(rename = "OS-EXT-STS:power_state", default)]
    pub power_state: Option<i64>,
    #[serde(rename = "OS-EXT-SRV-ATTR:host", default)]
    pub host: Option<String>,
    #[serde(rename = "OS-EXT-SRV-ATTR:hypervisor_hostname", default)]
    pub hypervisor_hostname: Option<String>,
    #[serde(rename = "OS-EXT-AZ:availability_zone", default)]
    pub availability_zone: Option<String>,
    #[serde(default)]
    pub key_name: Option<String>,
    #[serde(default)]
    pub locked: Option<bool>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Everything else the server returned.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Server {
    /// Addresses of `OS-EXT-IPS:type == "floating"`.
    pub fn floating_ips(&self) -> impl Iterator<Item = &Address> {
        self.addresses.values().flatten().filter(|a| a.ip_type.as_deref() == Some("floating"))
    }
}

/// The server's flavor: `id` (before 2.47) or the embedded copy (2.47+).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct ServerFlavor {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub original_name: Option<String>,
    #[serde(default)]
    pub vcpus: Option<u32>,
    #[serde(default)]
    pub ram: Option<u64>,
    #[serde(default)]
    pub disk: Option<u64>,
    #[serde(default)]
    pub ephemeral: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_swap")]
    pub swap: Option<u64>,
    #[serde(default)]
    pub extra_specs: Option<BTreeMap<String, String>>,
}

fn de_opt_swap<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    super::de_swap(d).map(Some)
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ImageRef {
    pub id: String,
}

/// Serde: a server's `image`, None when booted from volume (`""`) or without an id.
pub fn de_image<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ImageRef>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Object(m) => m.get("id").and_then(Value::as_str).map(|id| ImageRef { id: id.to_string() }),
        _ => None,
    })
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Address {
    pub addr: String,
    #[serde(default)]
    pub version: Option<u8>,
    /// `fixed` or `floating`.
    #[serde(rename = "OS-EXT-IPS:type", default)]
    pub ip_type: Option<String>,
    #[serde(rename = "OS-EXT-IPS-MAC:mac_addr", default)]
    pub mac_addr: Option<String>,
}

/// `GET /servers/detail`. `changes_since` makes Nova include deleted
/// servers; `all_tenants` (admin) lists every project, narrowed by
/// `project_id`.
#[derive(Debug, Clone, Default)]
pub struct ListServers {
    pub all_tenants: bool,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub changes_since: Option<DateTime<Utc>>,
    pub changes_before: Option<DateTime<Utc>>,
    /// Page size (the server caps it at `osapi_max_limit`).
    pub limit: Option<u32>,
    /// Start after this server id.
    pub marker: Option<String>,
    pub deleted: Option<bool>,
    pub status: Option<String>,
    pub name: Option<String>,
    pub host: Option<String>,
}

impl Paged for ListServers {
    type Item = Server;

    fn pager(&self) -> Pager {
        let q = Query::new()
            .flag("all_tenants", self.all_tenants, "1")
            .opt("project_id", self.project_id.as_ref())
            .opt("user_id", self.user_id.as_ref())
            .opt("changes-since", self.changes_since.as_ref().map(time::format_z))
            .opt("changes-before", self.changes_before.as_ref().map(time::format_z))
            .opt("deleted", self.deleted)
            .opt("status", self.status.as_ref())
            .opt("name", self.name.as_ref())
            .opt("host", self.host.as_ref())
            .opt("limit", self.limit)
            .opt("marker", self.marker.as_ref());
        let call = Call::get(Service::Compute, "/servers/detail", "/servers/detail").query(q.into_vec()).versioned();
        Pager::new(call, "/servers", Next::Links("servers_links"))
    }
}

impl ListServers {
    /// The items decoded as `T` instead of [`Server`]: a caller that reads a few fields
    /// decodes only those, skipping the rest as the page is read.
    pub fn stream_as<T: DeserializeOwned + Send + 'static>(&self, s: &Session) -> BoxStream<'static, Result<T>> {
        self.pager().items(s)
    }
}

/// `GET /servers/{id}`.
pub async fn get(s: &Session, id: &str) -> Result<Server> {
    #[derive(Deserialize)]
    struct W {
        server: Server,
    }
    let w: W = s.json(Call::get(Service::Compute, "/servers/{id}", format!("/servers/{id}")).versioned()).await?;
    Ok(w.server)
}
