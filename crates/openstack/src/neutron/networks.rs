//! Neutron networks: `GET /v2.0/networks` (limit/marker + `networks_links`).

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::catalog::Service;
use crate::paging::{Next, Paged, Pager, Query};
use crate::session::Call;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Network {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub shared: bool,
    #[serde(rename = "router:external", default)]
    pub external: bool,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default)]
pub struct ListNetworks {
    pub project_id: Option<String>,
    pub shared: Option<bool>,
    pub external: Option<bool>,
    pub limit: Option<u32>,
}

impl Paged for ListNetworks {
    type Item = Network;

    fn pager(&self) -> Pager {
        let q = Query::new()
            .opt("project_id", self.project_id.as_ref())
            .opt("shared", self.shared)
            .opt("router:external", self.external)
            .opt("limit", self.limit);
        Pager::new(
            Call::get(Service::Network, "/networks", "/networks").query(q.into_vec()),
            "/networks",
            Next::Links("networks_links"),
        )
    }
}
