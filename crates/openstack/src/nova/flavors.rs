//! Nova flavors: `GET /flavors/detail` (is_public, flavors_links),
//! `GET /flavors/{id}`, `GET /flavors/{id}/os-extra_specs`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::catalog::Service;
use crate::error::Result;
use crate::paging::{Next, Paged, Pager, Query};
use crate::session::{Call, Session};

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub ram: u64,
    pub vcpus: u32,
    pub disk: u64,
    #[serde(rename = "OS-FLV-EXT-DATA:ephemeral", default)]
    pub ephemeral: u64,
    #[serde(default, deserialize_with = "super::de_swap")]
    pub swap: u64,
    #[serde(rename = "os-flavor-access:is_public", default = "yes")]
    pub is_public: bool,
    #[serde(rename = "OS-FLV-DISABLED:disabled", default)]
    pub disabled: bool,
    #[serde(default)]
    pub rxtx_factor: Option<f64>,
    #[serde(default)]
    pub description: Option<String>,
    /// Embedded from 2.61.
    #[serde(default)]
    pub extra_specs: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn yes() -> bool {
    true
}

/// `is_public` of the flavor list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlavorVisibility {
    Public,
    Private,
    /// Public and private (admin).
    All,
}

/// `GET /flavors/detail`. Without `is_public` Nova lists public flavors
/// plus the private ones the project can access.
#[derive(Debug, Clone, Default)]
pub struct ListFlavors {
    pub is_public: Option<FlavorVisibility>,
    pub min_disk: Option<u64>,
    pub min_ram: Option<u64>,
    pub limit: Option<u32>,
    pub marker: Option<String>,
}

impl Paged for ListFlavors {
    type Item = Flavor;

    fn pager(&self) -> Pager {
        let vis = self.is_public.map(|v| match v {
            FlavorVisibility::Public => "true",
            FlavorVisibility::Private => "false",
            FlavorVisibility::All => "none",
        });
        let q = Query::new()
            .opt("is_public", vis)
            .opt("minDisk", self.min_disk)
            .opt("minRam", self.min_ram)
            .opt("limit", self.limit)
            .opt("marker", self.marker.as_ref());
        let call = Call::get(Service::Compute, "/flavors/detail", "/flavors/detail").query(q.into_vec()).versioned();
        Pager::new(call, "/flavors", Next::Links("flavors_links"))
    }
}

/// `GET /flavors/{id}`.
pub async fn get(s: &Session, id: &str) -> Result<Flavor> {
    #[derive(Deserialize)]
    struct W {
        flavor: Flavor,
    }
    let w: W = s.json(Call::get(Service::Compute, "/flavors/{id}", format!("/flavors/{id}")).versioned()).await?;
    Ok(w.flavor)
}

/// A flavor's extra specs: key → value.
pub type ExtraSpecs = BTreeMap<String, String>;

/// `GET /flavors/{id}/os-extra_specs`.
pub async fn extra_specs(s: &Session, flavor_id: &str) -> Result<ExtraSpecs> {
    #[derive(Deserialize)]
    struct W {
        extra_specs: BTreeMap<String, Value>,
    }
    let call =
        Call::get(Service::Compute, "/flavors/{id}/os-extra_specs", format!("/flavors/{flavor_id}/os-extra_specs"))
            .versioned();
    let w: W = s.json(call).await?;
    Ok(w.extra_specs
        .into_iter()
        .map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
        .collect())
}
