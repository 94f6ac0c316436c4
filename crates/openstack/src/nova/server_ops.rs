//! Nova server lifecycle for probes: `POST /servers` (boot) and
//! `DELETE /servers/{id}`; read back with [`super::servers::get`].

use serde::Deserialize;
use serde_json::json;

use crate::catalog::Service;
use crate::error::Result;
use crate::session::{Call, Session};
use reqwest::Method;

/// What to boot: one server from an image on one network.
#[derive(Debug, Clone)]
pub struct CreateServer {
    pub name: String,
    pub image_id: String,
    pub flavor_id: String,
    /// Network id; None lets Nova pick (`"auto"`).
    pub network_id: Option<String>,
    pub metadata: Vec<(String, String)>,
}

impl CreateServer {
    /// `POST /servers`: returns the new server's id (it starts in BUILD).
    pub async fn send(&self, s: &Session) -> Result<String> {
        #[derive(Deserialize)]
        struct Created {
            id: String,
        }
        #[derive(Deserialize)]
        struct W {
            server: Created,
        }
        let networks = match &self.network_id {
            Some(n) => json!([{"uuid": n}]),
            None => json!("auto"),
        };
        let metadata: serde_json::Map<String, serde_json::Value> =
            self.metadata.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let body = json!({"server": {
            "name": self.name,
            "imageRef": self.image_id,
            "flavorRef": self.flavor_id,
            "networks": networks,
            "metadata": metadata,
        }});
        let c = Call::new(Service::Compute, Method::POST, "/servers", "/servers").json(body).versioned();
        Ok(s.json::<W>(c).await?.server.id)
    }
}

/// `DELETE /servers/{id}` (202/204; deletion goes on asynchronously).
pub async fn delete(s: &Session, id: &str) -> Result<()> {
    let c = Call::new(Service::Compute, Method::DELETE, "/servers/{id}", format!("/servers/{id}")).versioned();
    s.send(c).await?;
    Ok(())
}
