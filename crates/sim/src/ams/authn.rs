//! argo-api-authn's X.509 → AMS token exchange:
//! `GET /v1/service-types/{type}/hosts/{host}:authx509` with a TLS client
//! certificate (checked against the trusted CAs during the handshake, as Go's
//! `VerifyClientCertIfGiven`), the subject bound to an AMS user → its token.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AmsState;
use super::tls::{PeerCert, cert_subject, parse_dn};
use crate::error::{authn_error_response, go_indent, json_utf8};

pub(crate) fn router(state: Arc<AmsState>) -> Router {
    Router::new()
        .route("/v1/service-types/{service_type}/hosts/{host}", get(auth_x509))
        .fallback(|| async { authn_error_response(StatusCode::NOT_FOUND, "Not Found", "NOT FOUND") })
        .with_state(state)
}

fn not_found(what: &str) -> Response {
    authn_error_response(StatusCode::NOT_FOUND, &format!("{what} was not found"), "NOT FOUND")
}

/// Attribute pairs compared without regard to case of the type.
fn same_dn(a: &[(String, String)], b: &[(String, String)]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|((ka, va), (kb, vb))| ka.eq_ignore_ascii_case(kb) && va == vb)
}

async fn auth_x509(
    State(st): State<Arc<AmsState>>,
    Path((service_type, host)): Path<(String, String)>,
    peer: Option<Extension<PeerCert>>,
) -> Response {
    let Some(host) = host.strip_suffix(":authx509") else {
        return not_found("Route");
    };
    let Some(der) = peer.and_then(|Extension(PeerCert(c))| c) else {
        return authn_error_response(StatusCode::BAD_REQUEST, "No certificate provided", "BAD REQUEST");
    };
    if service_type != "ams" {
        return not_found("Service-type");
    }
    if !st.authn_hosts.iter().any(|h| h == host) {
        return not_found("Host");
    }
    let Some(subject) = cert_subject(&der) else {
        return authn_error_response(StatusCode::BAD_REQUEST, "Could not parse the certificate", "BAD REQUEST");
    };
    let Some(user) = st.users.iter().find(|u| u.dn.as_deref().is_some_and(|dn| same_dn(&parse_dn(dn), &subject)))
    else {
        return not_found("Binding");
    };
    st.store.lock().unwrap().counts.token_exchanges += 1;
    json_utf8(StatusCode::OK, go_indent(&serde_json::json!({"token": user.token}), " ")).into_response()
}
