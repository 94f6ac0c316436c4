//! Neutron floating IPs: `GET /v2.0/floatingips`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::catalog::Service;
use crate::paging::{Next, Paged, Pager, Query};
use crate::session::Call;
use crate::time;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct FloatingIp {
    pub id: String,
    pub floating_ip_address: String,
    #[serde(default)]
    pub fixed_ip_address: Option<String>,
    #[serde(default)]
    pub floating_network_id: Option<String>,
    #[serde(default)]
    pub port_id: Option<String>,
    #[serde(default)]
    pub router_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "time::de_opt")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "time::de_opt")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FloatingIp {
    /// 4 or 6, from the address.
    pub fn ip_version(&self) -> u8 {
        if self.floating_ip_address.contains(':') { 6 } else { 4 }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListFloatingIps {
    pub project_id: Option<String>,
    pub status: Option<String>,
    pub floating_network_id: Option<String>,
    pub port_id: Option<String>,
    pub limit: Option<u32>,
    pub marker: Option<String>,
}

impl Paged for ListFloatingIps {
    type Item = FloatingIp;

    fn pager(&self) -> Pager {
        let q = Query::new()
            .opt("project_id", self.project_id.as_ref())
            .opt("status", self.status.as_ref())
            .opt("floating_network_id", self.floating_network_id.as_ref())
            .opt("port_id", self.port_id.as_ref())
            .opt("limit", self.limit)
            .opt("marker", self.marker.as_ref());
        let call = Call::get(Service::Network, "/floatingips", "/floatingips").query(q.into_vec());
        Pager::new(call, "/floatingips", Next::Links("floatingips_links"))
    }
}
