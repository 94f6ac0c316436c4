//! Neutron ports: `GET /v2.0/ports`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::catalog::Service;
use crate::paging::{Next, Paged, Pager, Query};
use crate::session::Call;
use crate::time;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Port {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub network_id: Option<String>,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub device_owner: Option<String>,
    #[serde(default)]
    pub mac_address: Option<String>,
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default, deserialize_with = "time::de_opt")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "time::de_opt")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct FixedIp {
    #[serde(default)]
    pub subnet_id: Option<String>,
    pub ip_address: String,
}

#[derive(Debug, Clone, Default)]
pub struct ListPorts {
    pub project_id: Option<String>,
    pub device_id: Option<String>,
    pub device_owner: Option<String>,
    pub network_id: Option<String>,
    pub limit: Option<u32>,
    pub marker: Option<String>,
}

impl Paged for ListPorts {
    type Item = Port;

    fn pager(&self) -> Pager {
        let q = Query::new()
            .opt("project_id", self.project_id.as_ref())
            .opt("device_id", self.device_id.as_ref())
            .opt("device_owner", self.device_owner.as_ref())
            .opt("network_id", self.network_id.as_ref())
            .opt("limit", self.limit)
            .opt("marker", self.marker.as_ref());
        let call = Call::get(Service::Network, "/ports", "/ports").query(q.into_vec());
        Pager::new(call, "/ports", Next::Links("ports_links"))
    }
}
