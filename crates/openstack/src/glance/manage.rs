//! Glance v2 image writes: create (`POST /v2/images`), upload data
//! (`PUT /v2/images/{id}/file`, streamed), JSON-patch (`PATCH`), delete,
//! deactivate / reactivate.

use std::path::Path;

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::images::Image;
use crate::catalog::Service;
use crate::error::Result;
use crate::session::{Call, RawBody, Session};

/// `POST /v2/images`: the image record (status `queued`). `properties` are
/// custom string properties; they sit flat next to the standard fields.
#[derive(Debug, Clone, Default)]
pub struct CreateImage {
    pub name: String,
    pub disk_format: String,
    pub container_format: String,
    /// `private` (default), `shared`, `community`, `public`.
    pub visibility: Option<String>,
    /// Hidden from default listings (`os_hidden`).
    pub os_hidden: Option<bool>,
    pub min_disk: Option<u64>,
    pub min_ram: Option<u64>,
    pub tags: Vec<String>,
    pub properties: Map<String, Value>,
}

impl CreateImage {
    pub fn body(&self) -> Value {
        let mut b = Map::new();
        b.insert("name".into(), json!(self.name));
        b.insert("disk_format".into(), json!(self.disk_format));
        b.insert("container_format".into(), json!(self.container_format));
        if let Some(v) = &self.visibility {
            b.insert("visibility".into(), json!(v));
        }
        if let Some(h) = self.os_hidden {
            b.insert("os_hidden".into(), json!(h));
        }
        if let Some(v) = self.min_disk {
            b.insert("min_disk".into(), json!(v));
        }
        if let Some(v) = self.min_ram {
            b.insert("min_ram".into(), json!(v));
        }
        if !self.tags.is_empty() {
            b.insert("tags".into(), json!(self.tags));
        }
        for (k, v) in &self.properties {
            b.insert(k.clone(), v.clone());
        }
        Value::Object(b)
    }

    pub async fn create(&self, s: &Session) -> Result<Image> {
        let resp = s.send(Call::new(Service::Image, Method::POST, "/images", "/images").json(self.body())).await?;
        resp.json()
    }
}

/// `PUT /v2/images/{id}/file`: uploads the file's bytes (streamed).
pub async fn upload_file(s: &Session, id: &str, path: &Path) -> Result<()> {
    s.send_raw(
        Call::new(Service::Image, Method::PUT, "/images/{id}/file", format!("/images/{id}/file")),
        RawBody::File { path: path.to_owned() },
    )
    .await?;
    Ok(())
}

/// One JSON-patch operation on an image (RFC 6902 subset Glance accepts).
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOp {
    /// `add` (creates or replaces a property).
    Add(String, Value),
    /// `replace` (the property must exist).
    Replace(String, Value),
    /// `remove` (the property must exist).
    Remove(String),
}

impl PatchOp {
    fn json(&self) -> Value {
        // JSON pointer escaping: ~ → ~0, / → ~1.
        let ptr = |k: &str| format!("/{}", k.replace('~', "~0").replace('/', "~1"));
        match self {
            PatchOp::Add(k, v) => json!({"op": "add", "path": ptr(k), "value": v}),
            PatchOp::Replace(k, v) => json!({"op": "replace", "path": ptr(k), "value": v}),
            PatchOp::Remove(k) => json!({"op": "remove", "path": ptr(k)}),
        }
    }
}

/// `PATCH /v2/images/{id}` with `application/openstack-images-v2.1-json-patch`.
pub async fn patch(s: &Session, id: &str, ops: &[PatchOp]) -> Result<Image> {
    let body: Vec<Value> = ops.iter().map(PatchOp::json).collect();
    let data = serde_json::to_vec(&body).unwrap_or_default();
    let resp = s
        .send_raw(
            Call::new(Service::Image, Method::PATCH, "/images/{id}", format!("/images/{id}")),
            RawBody::Bytes { content_type: "application/openstack-images-v2.1-json-patch", data },
        )
        .await?;
    resp.json()
}

/// `DELETE /v2/images/{id}`.
pub async fn delete(s: &Session, id: &str) -> Result<()> {
    s.send(Call::new(Service::Image, Method::DELETE, "/images/{id}", format!("/images/{id}"))).await?;
    Ok(())
}

/// `POST /v2/images/{id}/actions/deactivate` (an active image becomes
/// `deactivated`: its data can no longer be downloaded or booted).
pub async fn deactivate(s: &Session, id: &str) -> Result<()> {
    s.send(Call::new(
        Service::Image,
        Method::POST,
        "/images/{id}/actions/deactivate",
        format!("/images/{id}/actions/deactivate"),
    ))
    .await?;
    Ok(())
}

/// `POST /v2/images/{id}/actions/reactivate`.
pub async fn reactivate(s: &Session, id: &str) -> Result<()> {
    s.send(Call::new(
        Service::Image,
        Method::POST,
        "/images/{id}/actions/reactivate",
        format!("/images/{id}/actions/reactivate"),
    ))
    .await?;
    Ok(())
}
