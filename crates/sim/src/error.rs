//! Error answers in each service's own JSON shape.
//!
//! Keystone: `{"error": {"code", "message", "title"}}`; Nova and Cinder:
//! `{"itemNotFound": {"code", "message"}}` and friends; Neutron:
//! `{"NeutronError": {"type", "message", "detail"}}`; Glance: a short
//! text/html page, as the real WSGI app writes it. An unauthenticated request
//! gets keystonemiddleware's 401 with `WWW-Authenticate` on every OpenStack
//! service. AMS: `{"error": {"code", "message", "status"}}` (Go MarshalIndent,
//! 3 spaces); AMS authn: `{"error": {"message", "code", "status"}}` (1 space).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::Service;

/// An error answer of one service.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub service: Service,
    pub status: StatusCode,
    pub message: String,
    /// Neutron's error type (e.g. `FloatingIPNotFound`); ignored elsewhere.
    pub neutron_type: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(service: Service, status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { service, status, message: message.into(), neutron_type: None }
    }
    pub fn not_found(service: Service, message: impl Into<String>) -> Self {
        Self::new(service, StatusCode::NOT_FOUND, message)
    }
    pub fn bad_request(service: Service, message: impl Into<String>) -> Self {
        Self::new(service, StatusCode::BAD_REQUEST, message)
    }
    pub fn forbidden(service: Service, message: impl Into<String>) -> Self {
        Self::new(service, StatusCode::FORBIDDEN, message)
    }
    pub fn conflict(service: Service, message: impl Into<String>) -> Self {
        Self::new(service, StatusCode::CONFLICT, message)
    }
    pub fn unauthorized(service: Service) -> Self {
        Self::new(service, StatusCode::UNAUTHORIZED, "The request you have made requires authentication.")
    }
    /// Sets Neutron's error type.
    pub fn neutron(mut self, kind: &str) -> Self {
        self.neutron_type = Some(kind.to_string());
        self
    }
}

fn title(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

/// Nova/Cinder fault key for a status.
fn fault_key(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 => "overLimit",
        429 => "overLimit",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.status.as_u16();
        match self.service {
            Service::Ams => {
                return ams_error_response(self.status, &self.message, &ams_status_kind(self.status));
            }
            Service::AmsAuthn => {
                let kind = ams_status_kind(self.status).replace('_', " ");
                return authn_error_response(self.status, &self.message, &kind);
            }
            _ => {}
        }
        // 401 always comes from keystonemiddleware / keystone itself.
        if code == 401 || self.service == Service::Identity {
            let body = json!({"error": {"code": code, "message": self.message, "title": title(self.status)}});
            let mut resp = (self.status, axum::Json(body)).into_response();
            if code == 401 {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Keystone uri=\"/identity\""));
            }
            return resp;
        }
        match self.service {
            Service::Compute | Service::Volume => {
                let body = json!({fault_key(self.status): {"code": code, "message": self.message}});
                (self.status, axum::Json(body)).into_response()
            }
            Service::Network => {
                let kind = self.neutron_type.clone().unwrap_or_else(|| match code {
                    404 => "HTTPNotFound".into(),
                    403 => "HTTPForbidden".into(),
                    409 => "Conflict".into(),
                    _ => "HTTPBadRequest".into(),
                });
                let body = json!({"NeutronError": {"type": kind, "message": self.message, "detail": ""}});
                (self.status, axum::Json(body)).into_response()
            }
            Service::Prometheus => {
                let kind = match code {
                    400 => "bad_data",
                    422 => "execution",
                    503 => "unavailable",
                    _ => "internal",
                };
                let body = json!({"status": "error", "errorType": kind, "error": self.message});
                (self.status, axum::Json(body)).into_response()
            }
            Service::Image | Service::Identity | Service::Ams | Service::AmsAuthn => {
                let t = title(self.status);
                let body = format!(
                    "<html>\n <head>\n  <title>{code} {t}</title>\n </head>\n <body>\n  <h1>{code} {t}</h1>\n  {}<br /><br />\n\n\n\n </body>\n</html>",
                    self.message
                );
                (self.status, [(header::CONTENT_TYPE, "text/html; charset=UTF-8")], body).into_response()
            }
        }
    }
}

/// AMS's default `status` string for an HTTP status (`NOT_FOUND`, ...).
pub fn ams_status_kind(status: StatusCode) -> String {
    match status.as_u16() {
        400 => "BAD_REQUEST".into(),
        401 => "UNAUTHORIZED".into(),
        403 => "FORBIDDEN".into(),
        404 => "NOT_FOUND".into(),
        408 => "TIMEOUT".into(),
        409 => "ALREADY_EXISTS".into(),
        413 => "INVALID_ARGUMENT".into(),
        500 => "INTERNAL_SERVER_ERROR".into(),
        _ => title(status).to_ascii_uppercase().replace([' ', '-'], "_"),
    }
}

/// JSON pretty-printed with `indent`, as Go's `json.MarshalIndent(v, "", indent)`.
pub fn go_indent<T: serde::Serialize>(value: &T, indent: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serialising plain data into memory cannot fail.
    let _ = value.serialize(&mut ser);
    out
}

/// `application/json; charset=utf-8` answer with a ready body.
pub fn json_utf8(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body).into_response()
}

/// An AMS error: `{"error": {"code": 404, "message": "Topic doesn't exist", "status": "NOT_FOUND"}}`.
pub fn ams_error_response(status: StatusCode, message: &str, kind: &str) -> Response {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        code: u16,
        message: &'a str,
        status: &'a str,
    }
    let body = json!({"error": Body { code: status.as_u16(), message, status: kind }});
    json_utf8(status, go_indent(&body, "   "))
}

/// An argo-api-authn error: `{"error": {"message", "code", "status"}}`, 1-space indent.
pub fn authn_error_response(status: StatusCode, message: &str, kind: &str) -> Response {
    #[derive(serde::Serialize)]
    struct Inner<'a> {
        message: &'a str,
        code: u16,
        status: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Body<'a> {
        error: Inner<'a>,
    }
    let body = Body { error: Inner { message, code: status.as_u16(), status: kind } };
    json_utf8(status, go_indent(&body, " "))
}
