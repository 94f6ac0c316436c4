//! Nova instance actions: `GET /servers/{id}/os-instance-actions` (paged
//! with `links` from 2.58) and `GET /servers/{id}/os-instance-actions/{req}`.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::catalog::Service;
use crate::error::Result;
use crate::paging::{Next, Paged, Pager, Query};
use crate::session::{Call, Session};
use crate::time;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct InstanceAction {
    pub action: String,
    #[serde(default)]
    pub instance_uuid: Option<String>,
    pub request_id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default, deserialize_with = "time::de_opt")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "time::de_opt")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub message: Option<String>,
    /// Only from the single-action GET.
    #[serde(default)]
    pub events: Option<Vec<ActionEvent>>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ActionEvent {
    pub event: String,
    #[serde(default, deserialize_with = "time::de_opt")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "time::de_opt")]
    pub finish_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ListInstanceActions {
    pub server_id: String,
    pub limit: Option<u32>,
    pub marker: Option<String>,
    pub changes_since: Option<DateTime<Utc>>,
    pub changes_before: Option<DateTime<Utc>>,
}

impl ListInstanceActions {
    pub fn new(server_id: impl Into<String>) -> Self {
        ListInstanceActions { server_id: server_id.into(), ..Default::default() }
    }
}

impl Paged for ListInstanceActions {
    type Item = InstanceAction;

    fn pager(&self) -> Pager {
        let q = Query::new()
            .opt("limit", self.limit)
            .opt("marker", self.marker.as_ref())
            .opt("changes-since", self.changes_since.as_ref().map(time::format_z))
            .opt("changes-before", self.changes_before.as_ref().map(time::format_z));
        let call = Call::get(
            Service::Compute,
            "/servers/{id}/os-instance-actions",
            format!("/servers/{}/os-instance-actions", self.server_id),
        )
        .query(q.into_vec())
        .versioned();
        Pager::new(call, "/instanceActions", Next::Links("links"))
    }
}

/// `GET /servers/{id}/os-instance-actions/{request_id}` with its events.
pub async fn get(s: &Session, server_id: &str, request_id: &str) -> Result<InstanceAction> {
    #[derive(Deserialize)]
    struct W {
        #[serde(rename = "instanceAction")]
        action: InstanceAction,
    }
    let call = Call::get(
        Service::Compute,
        "/servers/{id}/os-instance-actions/{request_id}",
        format!("/servers/{server_id}/os-instance-actions/{request_id}"),
    )
    .versioned();
    let w: W = s.json(call).await?;
    Ok(w.action)
}
