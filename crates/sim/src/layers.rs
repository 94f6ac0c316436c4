//! The behaviour layer in front of every service: latency (fixed + jitter),
//! a cap on concurrent requests, injected faults (500/503/429, timeouts,
//! truncated bodies, malformed JSON, slow bodies) and the request log.
//!
//! Fault decisions come from a seeded generator and a request counter, so a
//! run with the same seed and the same request order injects the same faults.
//! Each logged request carries the CPU time its handler took (`LoggedRequest::cpu_us`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::ApiError;
use crate::state::{AppState, LoggedRequest, Service};

/// axum middleware applying the service's profile and logging the request.
pub async fn service_layer(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/sim/") || path == "/sim" {
        return next.run(req).await;
    }
    let service = Service::from_path(&path);
    apply_profile(state, service, req, next).await
}

/// The same middleware for a server that is one service on its own port
/// (AMS, AMS authn): every request belongs to `service`.
pub async fn fixed_service_layer(
    State((state, service)): State<(Arc<AppState>, Service)>,
    req: Request,
    next: Next,
) -> Response {
    apply_profile(state, Some(service), req, next).await
}

async fn apply_profile(state: Arc<AppState>, service: Option<Service>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().to_string();
    let uri = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or(path.clone());
    let microversion = req
        .headers()
        .get("openstack-api-version")
        .or_else(|| req.headers().get("x-openstack-nova-api-version"))
        .and_then(|v| v.to_str().ok())
        .map(String::from);

    let profile = service.and_then(|s| state.profiles.get(&s)).cloned().unwrap_or_default();
    let _permit = match service.and_then(|s| state.limits.get(&s)) {
        Some(sem) => Some(sem.clone().acquire_owned().await.expect("semaphore never closed")),
        None => None,
    };
    let n = state.fault_counter.fetch_add(1, Ordering::Relaxed);
    let mut rng = ChaCha8Rng::seed_from_u64(state.rng_seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let delay = profile.latency_ms + if profile.jitter_ms > 0 { rng.random_range(0..=profile.jitter_ms) } else { 0 };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }

    let roll: f64 = rng.random();
    let mut injected = None;
    let endpoint_fault = service.and_then(|svc| {
        let faults = state.endpoint_faults.read().unwrap();
        faults.iter().find(|f| f.matches(&method, &path)).map(|f| (svc, f.status))
    });
    let (response, cpu) = cpu_timed(async {
        if let Some((svc, status)) = endpoint_fault {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            injected = Some(format!("endpoint fault {}", status.as_u16()));
            ApiError::new(svc, status, "injected fault on this endpoint").into_response()
        } else if let (Some(svc), true) = (service, roll < profile.error_rate) {
            let status =
                [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::SERVICE_UNAVAILABLE, StatusCode::TOO_MANY_REQUESTS]
                    [rng.random_range(0..3)];
            injected = Some(format!("status {}", status.as_u16()));
            let mut resp = ApiError::new(svc, status, "injected fault").into_response();
            if status == StatusCode::TOO_MANY_REQUESTS {
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            resp
        } else if roll < profile.error_rate + profile.timeout_rate {
            injected = Some("timeout".into());
            tokio::time::sleep(Duration::from_millis(profile.timeout_ms.max(1))).await;
            // A body that fails makes hyper drop the connection mid-answer.
            let stream = futures::stream::once(async {
                Err::<bytes::Bytes, std::io::Error>(std::io::Error::other("injected timeout"))
            });
            Response::builder().status(StatusCode::OK).body(Body::from_stream(stream)).unwrap()
        } else if roll < profile.error_rate + profile.timeout_rate + profile.truncate_rate {
            injected = Some("truncated".into());
            let resp = next.run(req).await;
            let (mut parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
            let cut = bytes.slice(0..bytes.len() / 2);
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(cut))
        } else if roll < profile.error_rate + profile.timeout_rate + profile.truncate_rate + profile.malformed_rate {
            injected = Some("malformed".into());
            let resp = next.run(req).await;
            let (mut parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(malform(&bytes, &mut rng)))
        } else if roll
            < profile.error_rate
                + profile.timeout_rate
                + profile.truncate_rate
                + profile.malformed_rate
                + profile.slow_body_rate
        {
            injected = Some("slow body".into());
            let resp = next.run(req).await;
            let (mut parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, slow_body(bytes, profile.slow_body_ms))
        } else {
            next.run(req).await
        }
    })
    .await;

    state.log.lock().unwrap().push(LoggedRequest {
        service,
        method,
        uri,
        status: response.status().as_u16(),
        microversion,
        injected,
        cpu_us: cpu.as_micros() as u64,
    });
    response
}

/// Runs `f`, adding up the CPU time of the thread that runs each of its polls (a tokio task
/// may move between worker threads, so each poll is measured where it runs).
async fn cpu_timed<F: Future>(f: F) -> (F::Output, Duration) {
    let mut f = std::pin::pin!(f);
    let mut spent = Duration::ZERO;
    let out = std::future::poll_fn(|cx| {
        let t0 = thread_cpu();
        let r = f.as_mut().poll(cx);
        spent += thread_cpu().saturating_sub(t0);
        r
    })
    .await;
    (out, spent)
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu() -> Duration {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The answer with its JSON broken in one of several ways a faulty proxy or
/// a crashing worker produces: a stray byte, an unterminated string, an HTML
/// error page under a 200, or nothing at all.
fn malform(body: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    match rng.random_range(0..4) {
        0 if !body.is_empty() => {
            let mut b = body.to_vec();
            let at = rng.random_range(0..b.len());
            b.insert(at, b'}');
            b.insert(0, b'#');
            b
        }
        1 => {
            let cut = body.iter().position(|&c| c == b'"').map_or(body.len(), |i| i + 1);
            let mut b = body[..cut].to_vec();
            b.extend_from_slice(b"\\u12");
            b
        }
        2 => b"<html><body><h1>502 Bad Gateway</h1></body></html>".to_vec(),
        _ => Vec::new(),
    }
}

/// `bytes` in 8 pieces, the last one `total_ms` after the first.
fn slow_body(bytes: bytes::Bytes, total_ms: u64) -> Body {
    let pieces = 8usize;
    let step = bytes.len().div_ceil(pieces).max(1);
    let delay = Duration::from_millis(total_ms / pieces as u64);
    let chunks: Vec<bytes::Bytes> =
        (0..bytes.len()).step_by(step).map(|i| bytes.slice(i..(i + step).min(bytes.len()))).collect();
    let stream = futures::stream::iter(chunks).then(move |c| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, std::io::Error>(c)
    });
    Body::from_stream(stream)
}
