//! Nova os-simple-tenant-usage: one project (`GET /os-simple-tenant-usage/{id}`)
//! or all (`GET /os-simple-tenant-usage?detailed=1`), paged from 2.40
//! (`tenant_usage(s)_links`); pages are merged into whole tenants.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::Value;

use crate::catalog::Service;
use crate::error::{Error, RequestInfo, Result};
use crate::paging::{Next, Paged, Pager, Query};
use crate::session::{Call, Session};
use crate::time;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct TenantUsage {
    #[serde(default)]
    pub tenant_id: String,
    #[serde(default)]
    pub server_usages: Vec<ServerUsage>,
    #[serde(default)]
    pub total_hours: f64,
    #[serde(default)]
    pub total_vcpus_usage: f64,
    #[serde(default)]
    pub total_memory_mb_usage: f64,
    #[serde(default)]
    pub total_local_gb_usage: f64,
    #[serde(default, deserialize_with = "time::de_opt")]
    pub start: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "time::de_opt")]
    pub stop: Option<DateTime<Utc>>,
}

impl TenantUsage {
    fn absorb(&mut self, other: TenantUsage) {
        self.server_usages.extend(other.server_usages);
        self.total_hours += other.total_hours;
        self.total_vcpus_usage += other.total_vcpus_usage;
        self.total_memory_mb_usage += other.total_memory_mb_usage;
        self.total_local_gb_usage += other.total_local_gb_usage;
        if self.tenant_id.is_empty() {
            self.tenant_id = other.tenant_id;
        }
        self.start = self.start.or(other.start);
        self.stop = self.stop.or(other.stop);
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ServerUsage {
    pub instance_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub hours: f64,
    #[serde(default)]
    pub vcpus: u32,
    #[serde(default)]
    pub memory_mb: u64,
    #[serde(default)]
    pub local_gb: u64,
    /// Flavor name.
    #[serde(default)]
    pub flavor: Option<String>,
    #[serde(default, deserialize_with = "time::de_opt")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "time::de_opt")]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub uptime: Option<i64>,
}

fn decode(v: Value, what: &str) -> Result<TenantUsage> {
    serde_json::from_value(v).map_err(|e| Error::Decode {
        request: RequestInfo { service: "compute".into(), method: "GET".into(), url: what.into() },
        message: e.to_string(),
    })
}

/// `GET /os-simple-tenant-usage/{project_id}?start&end`: one project's
/// usage in `[start, end]`, every page merged.
#[derive(Debug, Clone)]
pub struct GetTenantUsage {
    pub project_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Page size (2.40+).
    pub limit: Option<u32>,
}

impl GetTenantUsage {
    pub async fn get(&self, s: &Session) -> Result<TenantUsage> {
        let q = Query::new()
            .set("start", time::format_naive(&self.start))
            .set("end", time::format_naive(&self.end))
            .opt("limit", self.limit);
        let call = Call::get(
            Service::Compute,
            "/os-simple-tenant-usage/{id}",
            format!("/os-simple-tenant-usage/{}", self.project_id),
        )
        .query(q.into_vec())
        .versioned();
        let mut pages = Pager::new(call, "/tenant_usage/server_usages", Next::Links("tenant_usage_links")).pages(s);
        let mut total = TenantUsage::default();
        while let Some(mut page) = pages.try_next().await? {
            let tu = page.get_mut("tenant_usage").map(Value::take).unwrap_or(Value::Null);
            if tu.is_object() {
                total.absorb(decode(tu, "/os-simple-tenant-usage/{id}")?);
            }
        }
        if total.tenant_id.is_empty() {
            total.tenant_id = self.project_id.clone();
        }
        Ok(total)
    }
}

/// `GET /os-simple-tenant-usage?detailed=1&start&end`: every project
/// (admin); tenants split across pages are merged.
#[derive(Debug, Clone)]
pub struct ListTenantUsages {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Include `server_usages`.
    pub detailed: bool,
    pub limit: Option<u32>,
}

impl Paged for ListTenantUsages {
    type Item = TenantUsage;

    /// Pages as Nova sends them: a project whose servers span pages comes once per page in
    /// [`Paged::stream`] (its `list` merges them). Decoded straight from each page's
    /// bytes (no `Value` tree of the page).
    fn pager(&self) -> Pager {
        let q = Query::new()
            .flag("detailed", self.detailed, "1")
            .set("start", time::format_naive(&self.start))
            .set("end", time::format_naive(&self.end))
            .opt("limit", self.limit);
        let call = Call::get(Service::Compute, "/os-simple-tenant-usage", "/os-simple-tenant-usage")
            .query(q.into_vec())
            .versioned();
        Pager::new(call, "/tenant_usages", Next::Links("tenant_usages_links"))
    }

    /// Every project's usage, the pieces of a project split across pages merged.
    fn list(&self, s: &Session) -> impl Future<Output = Result<Vec<TenantUsage>>> + Send {
        let mut items = self.stream(s);
        async move {
            let mut out: Vec<TenantUsage> = Vec::new();
            let mut at: HashMap<String, usize> = HashMap::new();
            while let Some(tu) = items.try_next().await? {
                match at.get(&tu.tenant_id) {
                    Some(&i) => out[i].absorb(tu),
                    None => {
                        at.insert(tu.tenant_id.clone(), out.len());
                        out.push(tu);
                    }
                }
            }
            Ok(out)
        }
    }
}
