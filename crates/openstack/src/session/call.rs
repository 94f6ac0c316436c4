//! What one HTTP call is and what it gives back: the retry policy, the route key the
//! counters are kept under and their figures, the call description, the response.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::catalog::Service;
use crate::error::{Error, RequestInfo, Result};
use crate::microversion::Microversion;

/// Retries of idempotent requests (GET/HEAD/PUT/DELETE and token POSTs) on
/// 5xx/429/connect errors/timeouts, with exponential backoff and jitter.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, including the first (1 = no retries).
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Per-attempt timeout (connect + response + body).
    pub timeout: Duration,
    /// A `Retry-After` longer than this is capped to it.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            timeout: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << (attempt.saturating_sub(1)).min(16));
        let capped = exp.min(self.max_delay);
        let jitter: f64 = 0.5 + rand::random::<f64>() * 0.5;
        capped.mul_f64(jitter)
    }
}

/// A counter key: service type, method and route template
/// (`compute GET /servers/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteKey {
    pub service: String,
    pub method: String,
    pub route: String,
}

impl std::fmt::Display for RouteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.service, self.method, self.route)
    }
}

/// Counts for one route: logical calls, HTTP attempts, retries, failures,
/// and the summed wall time of the calls (all attempts and backoff included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    pub calls: u64,
    pub attempts: u64,
    pub retries: u64,
    pub failures: u64,
    pub latency_micros: u64,
}

/// One API call: service, method, route template (for counters), path
/// relative to the service's API base (or an absolute URL), query, body,
/// and whether it carries the negotiated microversion.
#[derive(Debug, Clone)]
pub struct Call {
    pub service: Service,
    pub method: Method,
    pub route: &'static str,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    pub versioned: bool,
}

impl Call {
    pub fn new(service: Service, method: Method, route: &'static str, path: impl Into<String>) -> Call {
        Call { service, method, route, path: path.into(), query: Vec::new(), body: None, versioned: false }
    }
    pub fn get(service: Service, route: &'static str, path: impl Into<String>) -> Call {
        Call::new(service, Method::GET, route, path)
    }
    pub fn query(mut self, q: Vec<(String, String)>) -> Call {
        self.query = q;
        self
    }
    pub fn json(mut self, body: Value) -> Call {
        self.body = Some(body);
        self
    }
    /// Send the service's negotiated microversion.
    pub fn versioned(mut self) -> Call {
        self.versioned = true;
        self
    }
}

/// A successful response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The microversion sent, if any.
    pub microversion: Option<Microversion>,
    pub request: RequestInfo,
}

impl Response {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::Decode { request: self.request.clone(), message: e.to_string() })
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
