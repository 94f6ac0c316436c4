//! Nova quotas and limits: `GET /os-quota-sets/{project}[/detail]` and
//! `GET /limits[?tenant_id=]`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::catalog::Service;
use crate::error::Result;
use crate::paging::Query;
use crate::session::{Call, Session};

/// A project's quota limits (`-1` = unlimited).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct QuotaSet {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub cores: Option<i64>,
    #[serde(default)]
    pub instances: Option<i64>,
    #[serde(default)]
    pub ram: Option<i64>,
    /// The other quotas (key_pairs, server_groups, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One quota of the detailed view.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct QuotaUsage {
    #[serde(default)]
    pub in_use: i64,
    #[serde(default)]
    pub limit: i64,
    #[serde(default)]
    pub reserved: i64,
}

/// `GET /os-quota-sets/{project_id}`.
pub async fn quota_set(s: &Session, project_id: &str) -> Result<QuotaSet> {
    #[derive(Deserialize)]
    struct W {
        quota_set: QuotaSet,
    }
    let w: W = s
        .json(Call::get(Service::Compute, "/os-quota-sets/{id}", format!("/os-quota-sets/{project_id}")).versioned())
        .await?;
    Ok(w.quota_set)
}

/// `GET /os-quota-sets/{project_id}/detail`: limit, in use, reserved per quota.
pub async fn quota_detail(s: &Session, project_id: &str) -> Result<BTreeMap<String, QuotaUsage>> {
    #[derive(Deserialize)]
    struct W {
        quota_set: Map<String, Value>,
    }
    let call = Call::get(Service::Compute, "/os-quota-sets/{id}/detail", format!("/os-quota-sets/{project_id}/detail"))
        .versioned();
    let w: W = s.json(call).await?;
    Ok(w.quota_set
        .into_iter()
        .filter_map(|(k, v)| serde_json::from_value::<QuotaUsage>(v).ok().map(|q| (k, q)))
        .collect())
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct AbsoluteLimits {
    #[serde(rename = "maxTotalCores", default)]
    pub max_total_cores: Option<i64>,
    #[serde(rename = "maxTotalInstances", default)]
    pub max_total_instances: Option<i64>,
    #[serde(rename = "maxTotalRAMSize", default)]
    pub max_total_ram_size: Option<i64>,
    #[serde(rename = "totalCoresUsed", default)]
    pub total_cores_used: Option<i64>,
    #[serde(rename = "totalInstancesUsed", default)]
    pub total_instances_used: Option<i64>,
    #[serde(rename = "totalRAMUsed", default)]
    pub total_ram_used: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /limits`; `project_id` (admin) asks for another project's.
pub async fn limits(s: &Session, project_id: Option<&str>) -> Result<AbsoluteLimits> {
    #[derive(Deserialize)]
    struct W {
        limits: L,
    }
    #[derive(Deserialize)]
    struct L {
        #[serde(default)]
        absolute: AbsoluteLimits,
    }
    let q = Query::new().opt("tenant_id", project_id);
    let w: W = s.json(Call::get(Service::Compute, "/limits", "/limits").query(q.into_vec()).versioned()).await?;
    Ok(w.limits.absolute)
}
