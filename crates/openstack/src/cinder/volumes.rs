//! Cinder volumes: `GET /volumes/detail` (all_tenants, project_id,
//! limit/marker + `volumes_links`) and `GET /volumes/{id}`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::catalog::Service;
use crate::error::Result;
use crate::paging::{Next, Paged, Pager, Query};
use crate::session::{Call, Session};
use crate::time;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Volume {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: String,
    /// GiB.
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(rename = "os-vol-tenant-attr:tenant_id", default)]
    pub project_id: Option<String>,
    #[serde(deserialize_with = "time::de")]
    pub created_at: DateTime<Utc>,
    #[serde(default, deserialize_with = "time::de_opt")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub attachments: Vec<VolumeAttachment>,
    #[serde(default)]
    pub volume_type: Option<String>,
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// `"true"`/`"false"` as Cinder sends it.
    #[serde(default)]
    pub bootable: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct VolumeAttachment {
    #[serde(default)]
    pub server_id: Option<String>,
    #[serde(default)]
    pub attachment_id: Option<String>,
    #[serde(default, deserialize_with = "time::de_opt")]
    pub attached_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub host_name: Option<String>,
    #[serde(default)]
    pub volume_id: Option<String>,
}

/// `GET /volumes/detail`. `all_tenants` (admin) with `project_id` lists
/// another project's volumes.
#[derive(Debug, Clone, Default)]
pub struct ListVolumes {
    pub all_tenants: bool,
    pub project_id: Option<String>,
    pub status: Option<String>,
    pub name: Option<String>,
    /// `updated_at=gte:<t>` (3.60+).
    pub updated_since: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
    pub marker: Option<String>,
}

impl Paged for ListVolumes {
    type Item = Volume;

    fn pager(&self) -> Pager {
        let q = Query::new()
            .flag("all_tenants", self.all_tenants, "1")
            .opt("project_id", self.project_id.as_ref())
            .opt("status", self.status.as_ref())
            .opt("name", self.name.as_ref())
            .opt("updated_at", self.updated_since.as_ref().map(|t| format!("gte:{}", time::format_z(t))))
            .opt("limit", self.limit)
            .opt("marker", self.marker.as_ref());
        let call = Call::get(Service::Volume, "/volumes/detail", "/volumes/detail").query(q.into_vec()).versioned();
        Pager::new(call, "/volumes", Next::Links("volumes_links"))
    }
}

/// `GET /volumes/{id}`.
pub async fn get(s: &Session, id: &str) -> Result<Volume> {
    #[derive(Deserialize)]
    struct W {
        volume: Volume,
    }
    let w: W = s.json(Call::get(Service::Volume, "/volumes/{id}", format!("/volumes/{id}")).versioned()).await?;
    Ok(w.volume)
}
