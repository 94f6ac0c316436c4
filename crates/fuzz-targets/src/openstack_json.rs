//! OpenStack API JSON: every response type of the `openstack` crate (Keystone, Nova, Cinder,
//! Neutron, Glance, the token catalog), the version documents, the error bodies and the time
//! stamps. The first byte picks what the rest is read as, so one corpus covers them all.

use openstack::{Catalog, Interface, Service};
use serde_json::Value;

fn de<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<T>(json) {
        let _ = format!("{v:?}");
    }
    // Lists arrive as arrays under a key; paging reads them item by item.
    if let Ok(items) = serde_json::from_slice::<Vec<T>>(json) {
        let _ = items.len();
    }
}

pub fn openstack_json(data: &[u8]) {
    let Some((&pick, json)) = data.split_first() else { return };
    match pick % 16 {
        0 => de::<openstack::nova::Server>(json),
        1 => de::<openstack::nova::Flavor>(json),
        2 => de::<openstack::nova::TenantUsage>(json),
        3 => de::<openstack::nova::InstanceAction>(json),
        4 => {
            de::<openstack::nova::QuotaSet>(json);
            de::<openstack::nova::AbsoluteLimits>(json);
        }
        5 => de::<openstack::cinder::Volume>(json),
        6 => de::<openstack::neutron::Port>(json),
        7 => de::<openstack::neutron::FloatingIp>(json),
        8 => de::<openstack::glance::Image>(json),
        9 => de::<openstack::keystone::Project>(json),
        10 => de::<openstack::keystone::User>(json),
        11 => de::<openstack::keystone::RoleAssignment>(json),
        12 => {
            if let Ok(c) = serde_json::from_slice::<Catalog>(json) {
                for s in [Service::Identity, Service::Compute, Service::Volume, Service::Network, Service::Image] {
                    for i in [Interface::Public, Interface::Internal, Interface::Admin] {
                        if let Ok(url) = c.url(s, i, None) {
                            let base = openstack::catalog::api_base(s, &url, Some("p1"));
                            let _ = openstack::catalog::version_doc_url(&base, Some("p1"));
                        }
                    }
                }
            }
        }
        13 => {
            if let Ok(doc) = serde_json::from_slice::<Value>(json) {
                for major in [1, 2, 3] {
                    if let Some(range) = openstack::microversion::parse_version_doc(&doc, major) {
                        let _ = format!("{range:?}");
                    }
                }
            }
        }
        14 => {
            let _ = openstack::error::extract_message(json);
        }
        _ => {
            if let Ok(s) = std::str::from_utf8(json) {
                if let Some(t) = openstack::time::parse(s) {
                    // What parses is a UTC time that formats back.
                    let _ = openstack::time::format_z(&t);
                }
                let _ = openstack::catalog::fill_project_templates(s, Some("p1"));
            }
        }
    }
}

/// OpenID Connect answers (`openstack::oidc`): the bytes as the provider's discovery document
/// (an accepted token endpoint is an absolute http(s) URL) and as the token endpoint's answer,
/// accepted (a non-empty `access_token`, the one in the JSON) or refused.
pub fn oidc_json(data: &[u8]) {
    if let Ok(url) = openstack::oidc::token_endpoint(data) {
        let u = url::Url::parse(&url).expect("an accepted token endpoint parses");
        assert!(matches!(u.scheme(), "http" | "https"), "{url}");
    }
    let json: Option<Value> = serde_json::from_slice(data).ok();
    match openstack::oidc::access_token(reqwest::StatusCode::OK, data) {
        Ok(t) => {
            assert!(!t.expose().is_empty());
            assert_eq!(json.as_ref().and_then(|j| j.get("access_token")).and_then(Value::as_str), Some(t.expose()));
        }
        Err(e) => assert!(e.to_string().starts_with("the OIDC token response has "), "{e}"),
    }
    let e = openstack::oidc::access_token(reqwest::StatusCode::BAD_REQUEST, data).expect_err("a 400 is refused");
    assert!(e.to_string().starts_with("OIDC token request refused (400 Bad Request): "), "{e}");
}
