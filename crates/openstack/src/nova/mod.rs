//! Nova v2.1 (microversion negotiated up to 2.79, see `microversion`):
//! servers, flavors + extra specs, os-simple-tenant-usage, instance actions,
//! quota sets and limits.

pub mod actions;
pub mod flavors;
pub mod limits;
pub mod server_ops;
pub mod servers;
pub mod usage;

pub use actions::{InstanceAction, ListInstanceActions};
pub use flavors::{Flavor, FlavorVisibility, ListFlavors};
pub use limits::{AbsoluteLimits, QuotaSet, QuotaUsage};
pub use servers::{Address, ImageRef, ListServers, Server, ServerFlavor};
pub use usage::{GetTenantUsage, ListTenantUsages, ServerUsage, TenantUsage};

use serde::{Deserialize, Deserializer};

/// Flavor `swap`: `""` (no swap, before 2.75) or MiB.
pub(crate) fn de_swap<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_u64().unwrap_or(0),
        serde_json::Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}
