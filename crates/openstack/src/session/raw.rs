//! Requests whose body is not JSON: Glance's JSON-patch (`PATCH` with
//! `application/openstack-images-v2.1-json-patch`) and image data uploads
//! (`PUT .../file`, `application/octet-stream`, streamed from a file).

use std::path::PathBuf;

use reqwest::Method;

use super::{RouteKey, Session, error_chain, redact};
use crate::error::{Error, RequestInfo, Result, extract_message};
use crate::session::{Call, Response};

/// A non-JSON request body.
#[derive(Debug, Clone)]
pub enum RawBody {
    /// Bytes in memory with their content type.
    Bytes { content_type: &'static str, data: Vec<u8> },
    /// A file streamed from disk (`application/octet-stream`).
    File { path: PathBuf },
}

impl RawBody {
    fn content_type(&self) -> &'static str {
        match self {
            RawBody::Bytes { content_type, .. } => content_type,
            RawBody::File { .. } => "application/octet-stream",
        }
    }

    async fn to_body(&self, request: &RequestInfo) -> Result<(reqwest::Body, Option<u64>)> {
        match self {
            RawBody::Bytes { data, .. } => Ok((reqwest::Body::from(data.clone()), Some(data.len() as u64))),
            RawBody::File { path } => {
                let file = tokio::fs::File::open(path).await.map_err(|e| Error::Transport {
                    request: request.clone(),
                    message: format!("opening {}: {e}", path.display()),
                    attempts: 0,
                    timeout: false,
                })?;
                let len = file.metadata().await.ok().map(|m| m.len());
                let stream = futures::stream::unfold(file, |mut f| async move {
                    use tokio::io::AsyncReadExt;
                    let mut buf = vec![0u8; 256 * 1024];
                    match f.read(&mut buf).await {
                        Ok(0) => None,
                        Ok(n) => {
                            buf.truncate(n);
                            Some((Ok::<_, std::io::Error>(buf), f))
                        }
                        Err(e) => Some((Err(e), f)),
                    }
                });
                Ok((reqwest::Body::wrap_stream(stream), len))
            }
        }
    }
}

fn retryable(e: &Error) -> bool {
    match e {
        Error::Api { status, .. } => matches!(status, 429 | 500 | 502 | 503 | 504),
        Error::Transport { attempts, .. } => *attempts > 0,
        _ => false,
    }
}

impl Session {
    /// Sends `call` (its `body` is ignored) with `body` as the request body:
    /// token, endpoint, one attempt (these requests are not idempotent), one
    /// re-authentication on 401, the same counters and errors as
    /// [`Session::send`].
    pub async fn send_raw(&self, call: Call, body: RawBody) -> Result<Response> {
        let token = self.token().await?;
        let base = self.base_for(call.service, &token).await?;
        let url = if call.path.starts_with("http://") || call.path.starts_with("https://") {
            call.path.clone()
        } else {
            format!("{}{}", base.trim_end_matches('/'), call.path)
        };
        let key = RouteKey {
            service: call.service.as_str().into(),
            method: call.method.as_str().into(),
            route: call.route.into(),
        };
        let mut token = token;
        let mut reauthenticated = false;
        let max = self.shared.retry.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.raw_once(&key, call.method.clone(), &url, &call.query, token.id.expose(), &body).await;
            match result {
                Err(e) if e.is_unauthorized() && !reauthenticated => {
                    token = self.reauthenticate(&token).await?;
                    reauthenticated = true;
                }
                // A server error or a connection failure: the whole body is
                // sent again (Glance returns a failed upload to `queued`, and
                // these patches set values, so repeating them is harmless).
                Err(e) if attempt < max && retryable(&e) => {
                    tokio::time::sleep(self.shared.retry.backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn raw_once(
        &self,
        key: &RouteKey,
        method: Method,
        url: &str,
        query: &[(String, String)],
        token: &str,
        body: &RawBody,
    ) -> Result<Response> {
        let request = RequestInfo { service: key.service.clone(), method: method.to_string(), url: redact(url) };
        let (payload, len) = body.to_body(&request).await?;
        let mut rb = self
            .shared
            .http
            .request(method, url)
            .header("Accept", "application/json")
            .header("Content-Type", body.content_type())
            .header("X-Auth-Token", token)
            .body(payload);
        if let Some(n) = len {
            rb = rb.header("Content-Length", n);
        }
        if !query.is_empty() {
            rb = rb.query(query);
        }
        if matches!(body, RawBody::Bytes { .. }) {
            rb = rb.timeout(self.shared.retry.timeout);
        }
        let result = match rb.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                match resp.bytes().await {
                    Ok(b) if status < 400 => {
                        Ok(Response { status, headers, body: b.to_vec(), microversion: None, request: request.clone() })
                    }
                    Ok(b) => Err(Error::Api {
                        request: request.clone(),
                        status,
                        message: extract_message(&b),
                        request_id: headers
                            .get("x-openstack-request-id")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string),
                    }),
                    Err(e) => Err(Error::Transport {
                        request: request.clone(),
                        message: error_chain(&e),
                        attempts: 1,
                        timeout: e.is_timeout(),
                    }),
                }
            }
            Err(e) => Err(Error::Transport {
                request: request.clone(),
                message: error_chain(&e),
                attempts: 1,
                timeout: e.is_timeout(),
            }),
        };
        let mut counters = self.shared.counters.lock().unwrap();
        let c = counters.entry(key.clone()).or_default();
        c.calls += 1;
        c.attempts += 1;
        c.failures += result.is_err() as u64;
        result
    }
}
