//! Keystone OS-FEDERATION: identity providers, mappings and protocols
//! (`/v3/OS-FEDERATION/...`): list, get, create (PUT), update (PATCH),
//! delete. Bodies stay JSON values: the mapping rules are free-form.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::Service;
use crate::error::Result;
use crate::session::{Call, Session};
use reqwest::Method;

const F: &str = "/OS-FEDERATION";

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct IdentityProvider {
    pub id: String,
    #[serde(default)]
    pub domain_id: Option<String>,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub remote_ids: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Mapping {
    pub id: String,
    #[serde(default)]
    pub rules: Value,
    #[serde(default)]
    pub schema_version: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Protocol {
    pub id: String,
    pub mapping_id: String,
    #[serde(default)]
    pub remote_id_attribute: Option<String>,
}

fn call(method: Method, route: &'static str, path: String) -> Call {
    Call::new(Service::Identity, method, route, path)
}

/// `GET /v3/OS-FEDERATION/identity_providers`.
pub async fn list_identity_providers(s: &Session) -> Result<Vec<IdentityProvider>> {
    #[derive(Deserialize)]
    struct W {
        identity_providers: Vec<IdentityProvider>,
    }
    let w: W = s
        .json(Call::get(Service::Identity, "/OS-FEDERATION/identity_providers", format!("{F}/identity_providers")))
        .await?;
    Ok(w.identity_providers)
}

/// `GET /v3/OS-FEDERATION/identity_providers/{id}`; None on 404.
pub async fn get_identity_provider(s: &Session, id: &str) -> Result<Option<IdentityProvider>> {
    #[derive(Deserialize)]
    struct W {
        identity_provider: IdentityProvider,
    }
    let c =
        Call::get(Service::Identity, "/OS-FEDERATION/identity_providers/{id}", format!("{F}/identity_providers/{id}"));
    match s.json::<W>(c).await {
        Ok(w) => Ok(Some(w.identity_provider)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// `PUT /v3/OS-FEDERATION/identity_providers/{id}` (create). `body` is the
/// `identity_provider` object (`remote_ids`, `enabled`, `description`, `domain_id`).
pub async fn create_identity_provider(s: &Session, id: &str, body: Value) -> Result<IdentityProvider> {
    #[derive(Deserialize)]
    struct W {
        identity_provider: IdentityProvider,
    }
    let c = call(Method::PUT, "/OS-FEDERATION/identity_providers/{id}", format!("{F}/identity_providers/{id}"))
        .json(json!({"identity_provider": body}));
    Ok(s.json::<W>(c).await?.identity_provider)
}

/// `PATCH /v3/OS-FEDERATION/identity_providers/{id}`.
pub async fn update_identity_provider(s: &Session, id: &str, body: Value) -> Result<IdentityProvider> {
    #[derive(Deserialize)]
    struct W {
        identity_provider: IdentityProvider,
    }
    let c = call(Method::PATCH, "/OS-FEDERATION/identity_providers/{id}", format!("{F}/identity_providers/{id}"))
        .json(json!({"identity_provider": body}));
    Ok(s.json::<W>(c).await?.identity_provider)
}

/// `DELETE /v3/OS-FEDERATION/identity_providers/{id}` (also its protocols).
pub async fn delete_identity_provider(s: &Session, id: &str) -> Result<()> {
    s.send(call(Method::DELETE, "/OS-FEDERATION/identity_providers/{id}", format!("{F}/identity_providers/{id}")))
        .await?;
    Ok(())
}

/// `GET /v3/OS-FEDERATION/mappings`.
pub async fn list_mappings(s: &Session) -> Result<Vec<Mapping>> {
    #[derive(Deserialize)]
    struct W {
        mappings: Vec<Mapping>,
    }
    let w: W = s.json(Call::get(Service::Identity, "/OS-FEDERATION/mappings", format!("{F}/mappings"))).await?;
    Ok(w.mappings)
}

/// `GET /v3/OS-FEDERATION/mappings/{id}`; None on 404.
pub async fn get_mapping(s: &Session, id: &str) -> Result<Option<Mapping>> {
    #[derive(Deserialize)]
    struct W {
        mapping: Mapping,
    }
    match s.json::<W>(Call::get(Service::Identity, "/OS-FEDERATION/mappings/{id}", format!("{F}/mappings/{id}"))).await
    {
        Ok(w) => Ok(Some(w.mapping)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// `PUT /v3/OS-FEDERATION/mappings/{id}` with `{"rules": ...}`.
pub async fn create_mapping(s: &Session, id: &str, rules: &Value) -> Result<Mapping> {
    #[derive(Deserialize)]
    struct W {
        mapping: Mapping,
    }
    let c = call(Method::PUT, "/OS-FEDERATION/mappings/{id}", format!("{F}/mappings/{id}"))
        .json(json!({"mapping": {"rules": rules}}));
    Ok(s.json::<W>(c).await?.mapping)
}

/// `PATCH /v3/OS-FEDERATION/mappings/{id}` with `{"rules": ...}`.
pub async fn update_mapping(s: &Session, id: &str, rules: &Value) -> Result<Mapping> {
    #[derive(Deserialize)]
    struct W {
        mapping: Mapping,
    }
    let c = call(Method::PATCH, "/OS-FEDERATION/mappings/{id}", format!("{F}/mappings/{id}"))
        .json(json!({"mapping": {"rules": rules}}));
    Ok(s.json::<W>(c).await?.mapping)
}

/// `DELETE /v3/OS-FEDERATION/mappings/{id}`.
pub async fn delete_mapping(s: &Session, id: &str) -> Result<()> {
    s.send(call(Method::DELETE, "/OS-FEDERATION/mappings/{id}", format!("{F}/mappings/{id}"))).await?;
    Ok(())
}

/// `GET /v3/OS-FEDERATION/identity_providers/{idp}/protocols`.
pub async fn list_protocols(s: &Session, idp: &str) -> Result<Vec<Protocol>> {
    #[derive(Deserialize)]
    struct W {
        protocols: Vec<Protocol>,
    }
    let c = Call::get(
        Service::Identity,
        "/OS-FEDERATION/identity_providers/{id}/protocols",
        format!("{F}/identity_providers/{idp}/protocols"),
    );
    Ok(s.json::<W>(c).await?.protocols)
}

/// `GET .../identity_providers/{idp}/protocols/{id}`; None on 404.
pub async fn get_protocol(s: &Session, idp: &str, id: &str) -> Result<Option<Protocol>> {
    #[derive(Deserialize)]
    struct W {
        protocol: Protocol,
    }
    let c = Call::get(
        Service::Identity,
        "/OS-FEDERATION/identity_providers/{id}/protocols/{id}",
        format!("{F}/identity_providers/{idp}/protocols/{id}"),
    );
    match s.json::<W>(c).await {
        Ok(w) => Ok(Some(w.protocol)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// `PUT .../identity_providers/{idp}/protocols/{id}` with the mapping id.
pub async fn create_protocol(s: &Session, idp: &str, id: &str, mapping_id: &str) -> Result<Protocol> {
    #[derive(Deserialize)]
    struct W {
        protocol: Protocol,
    }
    let c = call(
        Method::PUT,
        "/OS-FEDERATION/identity_providers/{id}/protocols/{id}",
        format!("{F}/identity_providers/{idp}/protocols/{id}"),
    )
    .json(json!({"protocol": {"mapping_id": mapping_id}}));
    Ok(s.json::<W>(c).await?.protocol)
}

/// `PATCH .../identity_providers/{idp}/protocols/{id}` with the mapping id.
pub async fn update_protocol(s: &Session, idp: &str, id: &str, mapping_id: &str) -> Result<Protocol> {
    #[derive(Deserialize)]
    struct W {
        protocol: Protocol,
    }
    let c = call(
        Method::PATCH,
        "/OS-FEDERATION/identity_providers/{id}/protocols/{id}",
        format!("{F}/identity_providers/{idp}/protocols/{id}"),
    )
    .json(json!({"protocol": {"mapping_id": mapping_id}}));
    Ok(s.json::<W>(c).await?.protocol)
}
