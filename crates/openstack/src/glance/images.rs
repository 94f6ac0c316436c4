//! Glance images: `GET /v2/images` (follows `next`), `GET /v2/images/{id}`,
//! `GET /v2/schemas/image`. Custom properties stay flat in `properties`.

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
pub struct Image {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub visibility: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub virtual_size: Option<u64>,
    #[serde(default)]
    pub disk_format: Option<String>,
    #[serde(default)]
    pub container_format: Option<String>,
    #[serde(default)]
    pub checksum: Option<String>,
    #[serde(default)]
    pub os_hash_algo: Option<String>,
    #[serde(default)]
    pub os_hash_value: Option<String>,
    #[serde(default)]
    pub min_disk: Option<u64>,
    #[serde(default)]
    pub min_ram: Option<u64>,
    #[serde(default)]
    pub protected: Option<bool>,
    #[serde(default)]
    pub os_hidden: Option<bool>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "time::de_opt")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "time::de_opt")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(rename = "self", default)]
    pub self_link: Option<String>,
    /// Custom properties (`vmcatcher_event_ad_mpuri`, `os_distro`, ...).
    #[serde(flatten)]
    pub properties: Map<String, Value>,
}

impl Image {
    /// A string property.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).and_then(Value::as_str)
    }
}

/// `GET /v2/images`. `properties` become `key=value` filters.
#[derive(Debug, Clone, Default)]
pub struct ListImages {
    pub visibility: Option<String>,
    pub owner: Option<String>,
    pub status: Option<String>,
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub member_status: Option<String>,
    pub properties: BTreeMap<String, String>,
    pub limit: Option<u32>,
    pub marker: Option<String>,
    pub sort_key: Option<String>,
    pub sort_dir: Option<String>,
}

impl Paged for ListImages {
    type Item = Image;

    fn pager(&self) -> Pager {
        let mut q = Query::new()
            .opt("visibility", self.visibility.as_ref())
            .opt("owner", self.owner.as_ref())
            .opt("status", self.status.as_ref())
            .opt("name", self.name.as_ref())
            .opt("member_status", self.member_status.as_ref());
        for t in &self.tags {
            q = q.set("tag", t);
        }
        for (k, v) in &self.properties {
            q = q.set(k, v);
        }
        let q = q
            .opt("sort_key", self.sort_key.as_ref())
            .opt("sort_dir", self.sort_dir.as_ref())
            .opt("limit", self.limit)
            .opt("marker", self.marker.as_ref());
        let call = Call::get(Service::Image, "/images", "/images").query(q.into_vec());
        Pager::new(call, "/images", Next::Field("next"))
    }
}

/// `GET /v2/images/{id}`.
pub async fn get(s: &Session, id: &str) -> Result<Image> {
    s.json(Call::get(Service::Image, "/images/{id}", format!("/images/{id}"))).await
}

/// `GET /v2/schemas/image` (JSON Schema of an image).
pub async fn schema(s: &Session) -> Result<Value> {
    s.json(Call::get(Service::Image, "/schemas/image", "/schemas/image")).await
}
