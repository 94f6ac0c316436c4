//! Authentication per method and scope (the body sent), auth-URL discovery,
//! catalog lookup, rescope, re-authentication near expiry and on 401.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use openstack::{Credentials, DomainRef, Error, Interface, ProjectRef, Scope, Secret, Service, Session, UserRef};
use serde_json::json;

async fn body_for(creds: Credentials, scope: Scope) -> serde_json::Value {
    let m = mock(|r| keystone(r).unwrap_or_else(|| Reply::json(404, json!({}))));
    let m = m.await;
    let mut cfg = config(&m.auth_url(), scope);
    cfg.credentials = creds;
    Session::builder(cfg).retry(fast_retry()).connect().await.unwrap();
    let reqs = m.requests();
    assert_eq!(reqs.len(), 1, "one token request");
    assert!(reqs[0].is("POST", "/identity/v3/auth/tokens"));
    reqs[0].body.clone()
}

fn password() -> Credentials {
    Credentials::Password {
        user: UserRef::Name { name: "admin".into(), domain: DomainRef::Name("Default".into()) },
        password: Secret::new("pw"),
    }
}

#[tokio::test]
async fn password_with_project_id_scope_sends_keystone_v3_body() {
    let b = body_for(password(), Scope::project_id(PID)).await;
    assert_eq!(
        b,
        json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": "pw"}}},
            "scope": {"project": {"id": PID}}
        }})
    );
}

#[tokio::test]
async fn password_by_user_id_with_project_name_scope() {
    let creds = Credentials::Password { user: UserRef::Id("u1".into()), password: Secret::new("pw") };
    let b = body_for(
        creds,
        Scope::Project(ProjectRef::Name { name: "demo".into(), domain: DomainRef::Id("default".into()) }),
    )
    .await;
    assert_eq!(b["auth"]["identity"]["password"]["user"], json!({"id": "u1", "password": "pw"}));
    assert_eq!(b["auth"]["scope"], json!({"project": {"name": "demo", "domain": {"id": "default"}}}));
}

#[tokio::test]
async fn system_domain_and_unscoped_scopes() {
    assert_eq!(body_for(password(), Scope::System).await["auth"]["scope"], json!({"system": {"all": true}}));
    assert_eq!(
        body_for(password(), Scope::Domain(DomainRef::Name("D".into()))).await["auth"]["scope"],
        json!({"domain": {"name": "D"}})
    );
    assert!(body_for(password(), Scope::Unscoped).await["auth"].get("scope").is_none());
}

#[tokio::test]
async fn application_credential_sends_no_scope() {
    let creds =
        Credentials::ApplicationCredential { id: Some("ac1".into()), name: None, user: None, secret: Secret::new("s") };
    let b = body_for(creds, Scope::project_id("ignored")).await;
    assert_eq!(
        b,
        json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"id": "ac1", "secret": "s"}}}})
    );
    let creds = Credentials::ApplicationCredential {
        id: None,
        name: Some("acn".into()),
        user: Some(UserRef::Name { name: "bob".into(), domain: DomainRef::Id("default".into()) }),
        secret: Secret::new("s"),
    };
    let b = body_for(creds, Scope::Unscoped).await;
    assert_eq!(
        b["auth"]["identity"]["application_credential"],
        json!({"name": "acn", "user": {"name": "bob", "domain": {"id": "default"}}, "secret": "s"})
    );
}

#[tokio::test]
async fn token_method_rescopes_an_existing_token() {
    let b = body_for(Credentials::Token { token: Secret::new("tk") }, Scope::System).await;
    assert_eq!(
        b,
        json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "tk"}}, "scope": {"system": {"all": true}}}})
    );
}

#[tokio::test]
async fn token_details_are_kept() {
    let m = mock(|r| keystone(r).unwrap()).await;
    let s = session(&m).await;
    let t = s.token().await.unwrap();
    assert_eq!(t.id.expose(), "tok-1");
    assert_eq!(t.project.as_ref().unwrap().id, PID);
    assert_eq!(t.user.name.as_deref(), Some("admin"));
    assert_eq!(t.roles[0].name.as_deref(), Some("reader"));
    assert!(t.expires_at > chrono::Utc::now() + chrono::Duration::minutes(59));
    assert_eq!(s.project_id().await.unwrap().as_deref(), Some(PID));
    assert!(!format!("{t:?}").contains("tok-1"), "token id hidden in Debug");
}

#[tokio::test]
async fn auth_url_without_v3_is_discovered_from_the_version_document() {
    let m = mock(|r| {
        if r.is("GET", "/identity") {
            return Reply::json(
                300,
                json!({"versions": {"values": [
                    {"id": "v3.14", "status": "stable", "links": [{"rel": "self", "href": format!("{}/identity/v3/", r.base)}]}
                ]}}),
            );
        }
        keystone(r).unwrap_or_else(|| Reply::json(404, json!({})))
    })
    .await;
    Session::builder(config(&format!("{}/identity", m.base), Scope::System))
        .retry(fast_retry())
        .connect()
        .await
        .unwrap();
    let paths: Vec<String> = m.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(paths, vec!["GET /identity", "POST /identity/v3/auth/tokens"]);
}

#[tokio::test]
async fn auth_url_discovery_falls_back_to_appending_v3() {
    let m = mock(|r| keystone(r).unwrap_or_else(|| Reply::json(404, json!({"error": {"message": "nope"}})))).await;
    Session::builder(config(&format!("{}/identity/", m.base), Scope::System))
        .retry(fast_retry())
        .connect()
        .await
        .unwrap();
    assert_eq!(m.count("POST", "/identity/v3/auth/tokens"), 1);
}

#[tokio::test]
async fn failed_authentication_reports_keystone_message_without_the_password() {
    let m = mock(|_| Reply::json(401, json!({"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}))).await;
    let err = Session::builder(config(&m.auth_url(), Scope::System)).retry(fast_retry()).connect().await.unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.status(), Some(401));
    assert!(msg.contains("identity POST"), "{msg}");
    assert!(msg.contains("/identity/v3/auth/tokens"), "{msg}");
    assert!(msg.contains("requires authentication"), "{msg}");
    assert!(!msg.contains("s3cret-pw") && !format!("{err:?}").contains("s3cret-pw"));
}

#[tokio::test]
async fn catalog_lookup_by_type_alias_interface_and_region() {
    let m = mock(|r| keystone(r).unwrap()).await;
    let s = session(&m).await;
    let b = &m.base;
    assert_eq!(s.endpoint(Service::Compute).await.unwrap(), format!("{b}/compute/v2.1"));
    assert_eq!(
        s.endpoint(Service::Volume).await.unwrap(),
        format!("{b}/volume/v3/{PID}"),
        "volumev3 alias, URL as given"
    );
    assert_eq!(s.endpoint(Service::Network).await.unwrap(), format!("{b}/network/v2.0"));
    assert_eq!(s.endpoint(Service::Image).await.unwrap(), format!("{b}/image/v2"));
    assert_eq!(s.endpoint(Service::Identity).await.unwrap(), format!("{b}/identity/v3"));

    let mut cfg = config(&m.auth_url(), Scope::project_id(PID));
    cfg.interface = Interface::Internal;
    let s = Session::builder(cfg).connect().await.unwrap();
    assert_eq!(s.endpoint(Service::Compute).await.unwrap(), "http://internal.example:8774/v2.1");
    let err = s.endpoint(Service::Image).await.unwrap_err();
    assert!(matches!(err, Error::NoEndpoint { .. }));
    assert!(
        err.to_string().starts_with(
            "no image endpoint with interface internal in the catalog (catalog has: identity public RegionOne"
        ),
        "{err}"
    );

    let mut cfg = config(&m.auth_url(), Scope::project_id("p2"));
    cfg.region_name = Some("RegionTwo".into());
    let s = Session::builder(cfg).connect().await.unwrap();
    assert_eq!(
        s.endpoint(Service::Compute).await.unwrap(),
        format!("{b}/r2/compute/v2.1/p2"),
        "project template filled"
    );
    assert!(s.endpoint(Service::Network).await.unwrap_err().to_string().contains("in region RegionTwo"));
}

#[test]
fn api_base_appends_missing_version_suffixes_only() {
    use openstack::catalog::api_base;
    assert_eq!(api_base(Service::Image, "http://h/image/", None), "http://h/image/v2");
    assert_eq!(api_base(Service::Image, "http://h:9292/v2", None), "http://h:9292/v2");
    assert_eq!(api_base(Service::Network, "http://h:9696", None), "http://h:9696/v2.0");
    assert_eq!(api_base(Service::Network, "http://h:9696/v2.0/", None), "http://h:9696/v2.0");
    assert_eq!(api_base(Service::Compute, "http://h:8774/", None), "http://h:8774/v2.1");
    assert_eq!(api_base(Service::Compute, "http://h:8774/v2/%(tenant_id)s", Some("p")), "http://h:8774/v2/p");
    assert_eq!(api_base(Service::Volume, "http://h/volume/v3/$(project_id)s", Some("p")), "http://h/volume/v3/p");
    assert_eq!(api_base(Service::Volume, "http://h:8776", Some("p")), "http://h:8776/v3/p");
    assert_eq!(api_base(Service::Identity, "http://h/identity", None), "http://h/identity/v3");
}

#[tokio::test]
async fn rescope_gets_a_new_token_and_shares_counters() {
    let m =
        mock(|r| keystone(r).unwrap_or_else(|| Reply::json(200, json!({"project": {"id": "x", "name": "n"}})))).await;
    let s = Session::builder(config(&m.auth_url(), Scope::System)).retry(fast_retry()).connect().await.unwrap();
    assert!(s.token().await.unwrap().system);
    let p = s.rescope(Scope::project_id("p7")).await.unwrap();
    assert_eq!(p.project_id().await.unwrap().as_deref(), Some("p7"));
    assert_eq!(s.project_id().await.unwrap(), None, "the original session keeps its scope");
    let reqs = m.requests();
    assert_eq!(reqs[1].body["auth"]["scope"], json!({"project": {"id": "p7"}}));
    assert_eq!(reqs[1].body["auth"]["identity"], reqs[0].body["auth"]["identity"], "same credentials");
    openstack::keystone::projects::get(&p, "x").await.unwrap();
    let c = s.counters();
    let tokens = c.iter().find(|(k, _)| k.to_string() == "identity POST /auth/tokens").unwrap().1;
    assert_eq!(tokens.calls, 2);
    assert_eq!(c.iter().find(|(k, _)| k.to_string() == "identity GET /projects/{id}").unwrap().1.calls, 1);
}

#[tokio::test]
async fn unauthorized_request_reauthenticates_once_and_retries() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let tokens = Arc::new(AtomicUsize::new(0));
    let t = tokens.clone();
    let m = mock(move |r| {
        if r.is("POST", "/identity/v3/auth/tokens") {
            let n = t.fetch_add(1, Ordering::SeqCst) + 1;
            return token_reply(r, &format!("tok-{n}"), 3600);
        }
        if h.fetch_add(1, Ordering::SeqCst) == 0 {
            assert_eq!(r.header("x-auth-token").as_deref(), Some("tok-1"));
            return Reply::json(401, json!({"error": {"message": "token expired"}}));
        }
        assert_eq!(r.header("x-auth-token").as_deref(), Some("tok-2"));
        Reply::json(200, json!({"user": {"id": "u1", "name": "alice"}}))
    })
    .await;
    let s = session(&m).await;
    let u = openstack::keystone::users::get(&s, "u1").await.unwrap();
    assert_eq!(u.name, "alice");
    assert_eq!(m.count("POST", "/identity/v3/auth/tokens"), 2);
    assert_eq!(m.count("GET", "/identity/v3/users/u1"), 2);
}

#[tokio::test]
async fn persistent_unauthorized_gives_up_after_one_reauthentication() {
    let m = mock(|r| keystone(r).unwrap_or_else(|| Reply::json(401, json!({"error": {"message": "no"}})))).await;
    let s = session(&m).await;
    let err = openstack::keystone::users::get(&s, "u1").await.unwrap_err();
    assert!(err.is_unauthorized());
    assert_eq!(m.count("POST", "/identity/v3/auth/tokens"), 2);
    assert_eq!(m.count("GET", "/identity/v3/users/u1"), 2);
}

#[tokio::test]
async fn token_near_expiry_is_renewed_before_the_request() {
    let m = mock(|r| {
        if r.is("POST", "/identity/v3/auth/tokens") {
            return token_reply(r, "short", 30); // inside the 60 s margin
        }
        Reply::json(200, json!({"user": {"id": "u1", "name": "alice"}}))
    })
    .await;
    let s = session(&m).await;
    openstack::keystone::users::get(&s, "u1").await.unwrap();
    assert_eq!(m.count("POST", "/identity/v3/auth/tokens"), 2);
}
