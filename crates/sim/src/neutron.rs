//! The simulated Neutron API. PLACEHOLDER: being written.

use std::sync::Arc;

use axum::Router;

use crate::state::AppState;

/// Routes of this service, mounted under `Service::Network.prefix()`.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
}
