//! Glance v2 image members: list (`GET /v2/images/{id}/members`), add,
//! set the status (`accepted` / `rejected` / `pending`, by the member), remove.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::catalog::Service;
use crate::error::Result;
use crate::session::{Call, Session};

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Member {
    pub image_id: String,
    pub member_id: String,
    /// `pending`, `accepted`, `rejected`.
    pub status: String,
}

#[derive(Deserialize)]
struct Members {
    members: Vec<Member>,
}

/// `GET /v2/images/{id}/members`.
pub async fn list(s: &Session, image_id: &str) -> Result<Vec<Member>> {
    let m: Members =
        s.json(Call::get(Service::Image, "/images/{id}/members", format!("/images/{image_id}/members"))).await?;
    Ok(m.members)
}

/// `POST /v2/images/{id}/members` (status `pending`). The image must be `shared`.
pub async fn add(s: &Session, image_id: &str, member_id: &str) -> Result<Member> {
    s.json(
        Call::new(Service::Image, Method::POST, "/images/{id}/members", format!("/images/{image_id}/members"))
            .json(json!({"member": member_id})),
    )
    .await
}

/// `PUT /v2/images/{id}/members/{member}`: the member project sets its status.
pub async fn set_status(s: &Session, image_id: &str, member_id: &str, status: &str) -> Result<Member> {
    s.json(
        Call::new(
            Service::Image,
            Method::PUT,
            "/images/{id}/members/{member}",
            format!("/images/{image_id}/members/{member_id}"),
        )
        .json(json!({"status": status})),
    )
    .await
}

/// `DELETE /v2/images/{id}/members/{member}`.
pub async fn remove(s: &Session, image_id: &str, member_id: &str) -> Result<()> {
    s.send(Call::new(
        Service::Image,
        Method::DELETE,
        "/images/{id}/members/{member}",
        format!("/images/{image_id}/members/{member_id}"),
    ))
    .await?;
    Ok(())
}
