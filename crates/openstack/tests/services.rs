//! Service calls against small mocks: paging (Nova links, Glance next,
//! Neutron links, usage pages), microversion negotiation and headers,
//! retries and counters, error message extraction, typed fields.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use common::*;
use futures::TryStreamExt;
use openstack::Paged;
use openstack::{Microversion, Service, cinder, glance, keystone, neutron, nova};
use serde_json::{Value, json};

fn server(id: &str, i: usize) -> Value {
    json!({
        "id": id, "name": format!("vm-{i}"), "status": "ACTIVE", "tenant_id": PID, "user_id": "u-alice",
        "created": "2023-05-20T10:00:00Z", "updated": "2023-05-21T10:00:00Z",
        "OS-SRV-USG:launched_at": "2023-05-20T10:01:00.000000", "OS-SRV-USG:terminated_at": null,
        "OS-EXT-STS:vm_state": "active", "OS-EXT-AZ:availability_zone": "nova",
        "flavor": {"original_name": "m1.small", "vcpus": 2, "ram": 4096, "disk": 20, "ephemeral": 10, "swap": 0,
                   "extra_specs": {"accounting:benchmark_type": "HEPscore23"}},
        "image": if i == 0 { json!("") } else { json!({"id": "img-1", "links": []}) },
        "addresses": {"net": [
            {"addr": "10.0.0.5", "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"},
            {"addr": "192.0.2.10", "version": 4, "OS-EXT-IPS:type": "floating"}
        ]},
        "metadata": {}, "links": [], "config_drive": ""
    })
}

/// Servers s0..s4, paged by `limit`, with servers_links like Nova's.
fn servers_page(r: &Req) -> Reply {
    let all: Vec<String> = (0..5).map(|i| format!("s{i}")).collect();
    let limit: usize = r.param("limit").and_then(|l| l.parse().ok()).unwrap_or(1000);
    let start = r.param("marker").map(|m| all.iter().position(|x| *x == m).unwrap() + 1).unwrap_or(0);
    let page: Vec<Value> = all.iter().enumerate().skip(start).take(limit).map(|(i, id)| server(id, i)).collect();
    let mut body = json!({"servers": page});
    if page.len() == limit {
        let last = &all[start + limit - 1];
        body["servers_links"] = json!([{"rel": "next", "href": format!("http://proxy.invalid/compute/v2.1/servers/detail?limit={limit}&marker={last}")}]);
    }
    Reply::json(200, body)
}

#[tokio::test]
async fn nova_servers_detail_pages_with_marker_and_parses_accounting_fields() {
    let m = mock(|r| {
        keystone(r).or_else(|| version_docs(r)).unwrap_or_else(|| {
            assert!(r.is("GET", "/compute/v2.1/servers/detail"), "{}", r.path);
            servers_page(r)
        })
    })
    .await;
    let s = session(&m).await;
    let since = Utc.with_ymd_and_hms(2023, 5, 21, 0, 0, 0).unwrap();
    let q = nova::ListServers {
        changes_since: Some(since),
        limit: Some(2),
        all_tenants: true,
        project_id: Some(PID.into()),
        ..Default::default()
    };
    let servers = q.list(&s).await.unwrap();
    assert_eq!(servers.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["s0", "s1", "s2", "s3", "s4"]);

    let reqs: Vec<Req> = m.requests().into_iter().filter(|r| r.path == "/compute/v2.1/servers/detail").collect();
    assert_eq!(reqs.len(), 3, "pages of 2, 2, 1");
    assert_eq!(reqs[0].param("marker"), None);
    assert_eq!(reqs[1].param("marker").as_deref(), Some("s1"));
    assert_eq!(reqs[2].param("marker").as_deref(), Some("s3"));
    for r in &reqs {
        assert_eq!(r.param("changes-since").as_deref(), Some("2023-05-21T00:00:00Z"));
        assert_eq!(r.param("all_tenants").as_deref(), Some("1"));
        assert_eq!(r.param("project_id").as_deref(), Some(PID));
        assert_eq!(r.param("limit").as_deref(), Some("2"));
    }

    let v = &servers[1];
    assert_eq!(v.launched_at, Some(Utc.with_ymd_and_hms(2023, 5, 20, 10, 1, 0).unwrap()), "naive time read as UTC");
    assert_eq!(v.terminated_at, None);
    assert_eq!(v.created, Utc.with_ymd_and_hms(2023, 5, 20, 10, 0, 0).unwrap());
    assert_eq!(v.image.as_ref().unwrap().id, "img-1");
    assert_eq!(servers[0].image, None, "boot from volume");
    assert_eq!(v.floating_ips().count(), 1);
    let f = v.flavor.as_ref().unwrap();
    assert_eq!((f.vcpus, f.ram, f.disk, f.ephemeral), (Some(2), Some(4096), Some(20), Some(10)));
    assert_eq!(f.extra_specs.as_ref().unwrap()["accounting:benchmark_type"], "HEPscore23");
    assert_eq!(v.vm_state.as_deref(), Some("active"));
    assert_eq!(v.extra.get("config_drive"), Some(&json!("")), "unknown fields kept");
}

#[tokio::test]
async fn nova_stream_yields_items_lazily_across_pages() {
    let m = mock(|r| keystone(r).or_else(|| version_docs(r)).unwrap_or_else(|| servers_page(r))).await;
    let s = session(&m).await;
    let mut st = nova::ListServers { limit: Some(2), ..Default::default() }.stream(&s);
    assert_eq!(st.try_next().await.unwrap().unwrap().id, "s0");
    assert_eq!(st.try_next().await.unwrap().unwrap().id, "s1");
    assert_eq!(m.count("GET", "/compute/v2.1/servers/detail"), 1, "second page not fetched yet");
    let rest: Vec<_> = st.try_collect().await.unwrap();
    assert_eq!(rest.len(), 3);
}

#[tokio::test]
async fn a_bad_item_or_a_repeated_marker_is_an_error_and_other_keys_are_skipped() {
    // Page 1: extra keys around the items; page 2 repeats page 1's marker; the
    // `bad` listing holds an item whose `created` is not a time.
    let m = mock(|r| {
        keystone(r).or_else(|| version_docs(r)).unwrap_or_else(|| {
            let link = json!([{"rel": "next", "href": "http://x/compute/v2.1/servers/detail?marker=s0"}]);
            match (r.param("name").as_deref(), r.param("marker").as_deref()) {
                (Some("bad"), _) => {
                    let mut broken = server("s1", 1);
                    broken["created"] = json!(12);
                    Reply::json(200, json!({"servers": [server("s0", 0), broken]}))
                }
                (_, None) => Reply::json(
                    200,
                    json!({"before": {"servers": 1}, "servers": [server("s0", 0)], "servers_links": link, "after": [1, "x"]}),
                ),
                (_, Some(_)) => Reply::json(200, json!({"servers": [server("s1", 1)], "servers_links": link})), // refused whole
            }
        })
    })
    .await;
    let s = session(&m).await;
    let mut st = nova::ListServers::default().stream(&s);
    assert_eq!(st.try_next().await.unwrap().unwrap().id, "s0", "keys other than the items and links are skipped");
    let err = st.try_next().await.unwrap_err().to_string();
    assert!(err.contains("pagination loop: marker s0 returned twice"), "{err}");
    let err = nova::ListServers { name: Some("bad".into()), ..Default::default() }.list(&s).await.unwrap_err();
    assert!(err.to_string().contains("an item of /servers"), "{err}");
}

#[tokio::test]
async fn pre_2_47_flavor_id_and_string_swap_are_accepted() {
    let m = mock(|r| {
        keystone(r).unwrap_or_else(|| {
            if r.path.ends_with("/servers/s9") {
                let mut v = server("s9", 1);
                v["flavor"] = json!({"id": "f1", "links": []});
                v["OS-SRV-USG:terminated_at"] = json!("2023-05-22T06:00:00.000000");
                return Reply::json(200, json!({"server": v}));
            }
            if r.path.ends_with("/flavors/detail") {
                return Reply::json(200, json!({"flavors": [{"id": "f1", "name": "m1", "ram": 4096, "vcpus": 2, "disk": 20,
                    "OS-FLV-EXT-DATA:ephemeral": 10, "swap": "", "os-flavor-access:is_public": true, "rxtx_factor": 1.0}]}));
            }
            if r.path.ends_with("/os-extra_specs") {
                return Reply::json(200, json!({"extra_specs": {"Accelerator:Number": "1", "accounting:benchmark_value": "12.5"}}));
            }
            Reply::json(404, json!({"itemNotFound": {"code": 404, "message": "The resource could not be found."}}))
        })
    })
    .await;
    let s = session(&m).await;
    let v = nova::servers::get(&s, "s9").await.unwrap();
    assert_eq!(v.flavor.unwrap().id.as_deref(), Some("f1"));
    assert_eq!(v.terminated_at, Some(Utc.with_ymd_and_hms(2023, 5, 22, 6, 0, 0).unwrap()));
    let flavors = nova::ListFlavors { is_public: Some(nova::FlavorVisibility::All), ..Default::default() }
        .list(&s)
        .await
        .unwrap();
    assert_eq!((flavors[0].ephemeral, flavors[0].swap, flavors[0].is_public), (10, 0, true));
    assert_eq!(
        m.requests().iter().find(|r| r.path.ends_with("/flavors/detail")).unwrap().param("is_public").as_deref(),
        Some("none")
    );
    let specs = nova::flavors::extra_specs(&s, "f1").await.unwrap();
    assert_eq!(specs["accounting:benchmark_value"], "12.5");
    // no version document (404) -> no microversion header at all
    assert!(
        m.requests()
            .iter()
            .filter(|r| r.path.contains("/servers/"))
            .all(|r| r.header("openstack-api-version").is_none())
    );
    assert_eq!(s.microversion(Service::Compute).await.unwrap(), None);
}

#[tokio::test]
async fn microversion_is_negotiated_once_and_sent_in_both_headers() {
    let m = mock(|r| {
        keystone(r).or_else(|| version_docs(r)).unwrap_or_else(|| {
            if r.path.starts_with("/compute") {
                Reply::json(200, json!({"servers": []}))
            } else {
                Reply::json(200, json!({"volumes": []}))
            }
        })
    })
    .await;
    let s = session(&m).await;
    nova::ListServers::default().list(&s).await.unwrap();
    nova::ListServers::default().list(&s).await.unwrap();
    cinder::ListVolumes { all_tenants: true, ..Default::default() }.list(&s).await.unwrap();
    assert_eq!(m.count("GET", "/compute/v2.1/"), 1, "version document read once");
    assert_eq!(m.count("GET", "/volume/v3/"), 1);
    for r in m.requests().iter().filter(|r| r.path == "/compute/v2.1/servers/detail") {
        assert_eq!(r.header("openstack-api-version").as_deref(), Some("compute 2.79"));
        assert_eq!(r.header("x-openstack-nova-api-version").as_deref(), Some("2.79"));
    }
    let vol = m.requests().into_iter().find(|r| r.path == format!("/volume/v3/{PID}/volumes/detail")).unwrap();
    assert_eq!(vol.header("openstack-api-version").as_deref(), Some("volume 3.60"));
    assert_eq!(vol.param("all_tenants").as_deref(), Some("1"));
    assert_eq!(s.microversion(Service::Compute).await.unwrap(), Some(Microversion::new(2, 79)));
    assert_eq!(s.microversion(Service::Network).await.unwrap(), None);
}

#[tokio::test]
async fn microversion_is_capped_at_an_older_servers_max() {
    let m = mock(|r| {
        if r.is("GET", "/compute/v2.1/") {
            return Reply::json(200, json!({"version": {"id": "v2.1", "version": "2.60", "min_version": "2.1"}}));
        }
        keystone(r).unwrap_or_else(|| Reply::json(200, json!({"servers": []})))
    })
    .await;
    let s = session(&m).await;
    nova::ListServers::default().list(&s).await.unwrap();
    let r = m.requests().into_iter().find(|r| r.path.ends_with("/servers/detail")).unwrap();
    assert_eq!(r.header("openstack-api-version").as_deref(), Some("compute 2.60"));
}

#[test]
fn version_documents_of_each_shape() {
    use openstack::microversion::{VersionRange, negotiate, parse_version_doc};
    let nova = json!({"version": {"id": "v2.1", "version": "2.96", "min_version": "2.1"}});
    let r = parse_version_doc(&nova, 2).unwrap();
    assert_eq!(r, VersionRange { min: Microversion::new(2, 1), max: Microversion::new(2, 96) });
    assert_eq!(negotiate(Microversion::new(2, 79), Some(r)), Some(Microversion::new(2, 79)));
    let old = json!({"version": {"id": "v2.0", "version": "", "min_version": ""}});
    assert_eq!(parse_version_doc(&old, 2), None);
    assert_eq!(negotiate(Microversion::new(2, 79), None), None);
    let cinder = json!({"versions": [{"id": "v2.0", "version": "", "min_version": ""}, {"id": "v3.0", "version": "3.70", "min_version": "3.0"}]});
    assert_eq!(parse_version_doc(&cinder, 3).unwrap().max, Microversion::new(3, 70));
}

#[tokio::test]
async fn retries_a_503_then_succeeds_and_counts_the_retry() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let m = mock(move |r| {
        keystone(r).unwrap_or_else(|| {
            if h.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::text(503, "<html><body><h1>503 Service Unavailable</h1>busy</body></html>")
            } else {
                Reply::json(200, json!({"floatingips": [{"id": "f1", "floating_ip_address": "2001:db8::1", "created_at": "2023-05-20T10:00:00Z"}]}))
            }
        })
    })
    .await;
    let s = session(&m).await;
    let ips = neutron::ListFloatingIps::default().list(&s).await.unwrap();
    assert_eq!(ips[0].ip_version(), 6);
    assert_eq!(ips[0].created_at, Some(Utc.with_ymd_and_hms(2023, 5, 20, 10, 0, 0).unwrap()));
    assert_eq!(m.count("GET", "/network/v2.0/floatingips"), 2);
    let c = s.counters();
    let st = c.iter().find(|(k, _)| k.to_string() == "network GET /floatingips").unwrap().1;
    assert_eq!((st.calls, st.attempts, st.retries, st.failures), (1, 2, 1, 0));
    assert!(st.latency_micros > 0, "the call's wall time is summed: {st:?}");
}

#[tokio::test]
async fn retry_after_is_honoured_on_429() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let m = mock(move |r| {
        keystone(r).unwrap_or_else(|| {
            if h.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::json(429, json!({"message": "slow down"})).header("Retry-After", "1")
            } else {
                Reply::json(200, json!({"images": []}))
            }
        })
    })
    .await;
    let s = session(&m).await;
    let t = Instant::now();
    glance::ListImages::default().list(&s).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(950), "waited {:?}", t.elapsed());
    assert_eq!(m.count("GET", "/image/v2/images"), 2);
}

#[tokio::test]
async fn bad_request_is_not_retried_and_keeps_the_nova_message() {
    let m = mock(|r| {
        keystone(r).or_else(|| version_docs(r)).unwrap_or_else(|| {
            Reply::json(
                400,
                json!({"badRequest": {"code": 400, "message": "Invalid input for query parameters changes-since."}}),
            )
            .header("x-compute-request-id", "req-123")
        })
    })
    .await;
    let s = session(&m).await;
    let err = nova::ListServers::default().list(&s).await.unwrap_err();
    assert_eq!(m.count("GET", "/compute/v2.1/servers/detail"), 1);
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.message(), Some("Invalid input for query parameters changes-since."));
    let text = err.to_string();
    assert_eq!(
        text,
        format!(
            "compute GET {}/compute/v2.1/servers/detail: HTTP 400: Invalid input for query parameters changes-since.",
            m.base
        )
    );
    assert!(matches!(err, openstack::Error::Api { ref request_id, .. } if request_id.as_deref() == Some("req-123")));
    let st = *s.counters().iter().find(|(k, _)| k.route == "/servers/detail").unwrap().1;
    assert_eq!((st.attempts, st.retries, st.failures), (1, 0, 1));
}

#[tokio::test]
async fn persistent_5xx_stops_after_the_attempt_limit() {
    let m = mock(|r| {
        keystone(r).unwrap_or_else(|| {
            Reply::json(500, json!({"NeutronError": {"type": "X", "message": "db down", "detail": ""}}))
        })
    })
    .await;
    let s = session(&m).await;
    let err = neutron::ListPorts::default().list(&s).await.unwrap_err();
    assert_eq!(err.message(), Some("db down"));
    assert_eq!(m.count("GET", "/network/v2.0/ports"), 3, "fast_retry allows 3 attempts");
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    let m = mock(|r| {
        let mut reply = token_reply(r, "t", 3600);
        // point compute at a closed port
        let mut v: Value = serde_json::from_str(&reply.body).unwrap();
        v["token"]["catalog"][1]["endpoints"][0]["url"] = json!("http://127.0.0.1:9/compute/v2.1");
        reply.body = v.to_string();
        reply
    })
    .await;
    let s = session(&m).await;
    let err = nova::flavors::get(&s, "f1").await.unwrap_err();
    match &err {
        openstack::Error::Transport { attempts, request, .. } => {
            assert_eq!(*attempts, 3);
            assert_eq!(request.url, "http://127.0.0.1:9/compute/v2.1/flavors/f1");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn error_messages_of_each_service_shape() {
    let m = mock(|r| {
        keystone(r).unwrap_or_else(|| match r.path.as_str() {
            "/identity/v3/projects" => Reply::json(
                403,
                json!({"error": {"code": 403, "title": "Forbidden", "message": "You are not authorized to perform the requested action: identity:list_projects."}}),
            ),
            "/network/v2.0/ports" => Reply::json(404, json!({"NeutronError": {"type": "HTTPNotFound", "message": "The resource could not be found.", "detail": ""}})),
            _ => Reply::text(403, "<html>\n <head>\n  <title>403 Forbidden</title>\n </head>\n <body>\n  <h1>403 Forbidden</h1>\n  You are not authorized to get image.<br /><br />\n\n\n </body>\n</html>"),
        })
    })
    .await;
    let s = session(&m).await;
    let e = keystone::ListProjects::tagged("caso").list(&s).await.unwrap_err();
    assert!(e.is_forbidden());
    assert_eq!(e.message(), Some("You are not authorized to perform the requested action: identity:list_projects."));
    let e = neutron::ListPorts::default().list(&s).await.unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(e.message(), Some("The resource could not be found."));
    let e = glance::images::get(&s, "i1").await.unwrap_err();
    assert_eq!(e.message(), Some("403 Forbidden 403 Forbidden You are not authorized to get image."));
}

#[tokio::test]
async fn glance_follows_next_and_keeps_properties_flat() {
    let m = mock(|r| {
        keystone(r).unwrap_or_else(|| {
            if r.path == "/image/v2/schemas/image" {
                return Reply::json(200, json!({"name": "image", "properties": {"id": {"type": "string"}}}));
            }
            assert_eq!(r.path, "/image/v2/images");
            assert_eq!(r.param("os_distro").as_deref(), Some("ubuntu"));
            let img = |id: &str| json!({"id": id, "name": id, "status": "active", "visibility": "public", "size": 1024,
                "created_at": "2023-05-01T00:00:00Z", "tags": [], "self": format!("/v2/images/{id}"),
                "vmcatcher_event_ad_mpuri": format!("https://appdb.example/{id}"), "os_distro": "ubuntu"});
            match r.param("marker").as_deref() {
                None => Reply::json(200, json!({"images": [img("a"), img("b")], "next": "/v2/images?os_distro=ubuntu&limit=2&marker=b", "first": "/v2/images"})),
                Some("b") => Reply::json(200, json!({"images": [img("c")], "first": "/v2/images"})),
                Some(other) => panic!("unexpected marker {other}"),
            }
        })
    })
    .await;
    let s = session(&m).await;
    let q = glance::ListImages {
        limit: Some(2),
        properties: BTreeMap::from([("os_distro".into(), "ubuntu".into())]),
        ..Default::default()
    };
    let images = q.list(&s).await.unwrap();
    assert_eq!(images.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(images[2].property("vmcatcher_event_ad_mpuri"), Some("https://appdb.example/c"));
    assert!(!images[0].properties.contains_key("id"), "known fields are not in properties");
    assert_eq!(images[0].self_link.as_deref(), Some("/v2/images/a"));
    assert_eq!(m.count("GET", "/image/v2/images"), 2);
    let schema = glance::images::schema(&s).await.unwrap();
    assert_eq!(schema["name"], "image");
}

#[tokio::test]
async fn keystone_projects_with_tags_and_flat_properties() {
    let m = mock(|r| {
        keystone(r).unwrap_or_else(|| {
            assert_eq!(r.path, "/identity/v3/projects");
            assert_eq!(r.param("tags").as_deref(), Some("caso"));
            assert_eq!(r.param("not-tags-any").as_deref(), Some("a,b"));
            Reply::json(
                200,
                json!({"projects": [{"id": "p1", "name": "vo1", "domain_id": "default", "enabled": true,
                "tags": ["caso"], "egi.VO": "vo.example.org", "links": {"self": "x"}}], "links": {"next": null}}),
            )
        })
    })
    .await;
    let s = session(&m).await;
    let q = keystone::ListProjects {
        tags: vec!["caso".into()],
        not_tags_any: vec!["a".into(), "b".into()],
        ..Default::default()
    };
    let p = q.list(&s).await.unwrap();
    assert_eq!(p[0].property("egi.VO"), Some("vo.example.org"));
    assert_eq!(p[0].tags, ["caso"]);
    assert!(!p[0].extra.contains_key("links"));
}

#[tokio::test]
async fn role_assignments_query_names() {
    let m = mock(|r| {
        keystone(r).unwrap_or_else(|| {
            assert_eq!(r.param("scope.system").as_deref(), Some("all"));
            assert_eq!(r.param("user.id").as_deref(), Some("u1"));
            assert_eq!(r.param("effective").as_deref(), Some("true"));
            Reply::json(200, json!({"role_assignments": [{"role": {"id": "r1", "name": "reader"}, "user": {"id": "u1"}, "scope": {"system": {"all": true}}}]}))
        })
    })
    .await;
    let s = session(&m).await;
    let q = keystone::ListRoleAssignments {
        user_id: Some("u1".into()),
        scope_system: true,
        effective: true,
        ..Default::default()
    };
    let ra = q.list(&s).await.unwrap();
    assert_eq!(ra[0].role.name.as_deref(), Some("reader"));
    assert!(ra[0].scope.system.is_some());
}

#[tokio::test]
async fn tenant_usage_pages_are_merged() {
    let m = mock(|r| {
        keystone(r).or_else(|| version_docs(r)).unwrap_or_else(|| {
            assert_eq!(r.path, format!("/compute/v2.1/os-simple-tenant-usage/{PID}"));
            assert_eq!(r.param("start").as_deref(), Some("2023-05-21T00:00:00"));
            assert_eq!(r.param("end").as_deref(), Some("2023-05-25T00:00:00"));
            let su = |id: &str| json!({"instance_id": id, "name": id, "hours": 96.0, "vcpus": 4, "memory_mb": 8192, "local_gb": 40,
                "flavor": "m1.large", "started_at": "2023-04-01T00:00:00.000000", "ended_at": null, "state": "stopped", "tenant_id": PID, "uptime": 1000});
            match r.param("marker").as_deref() {
                None => Reply::json(200, json!({"tenant_usage": {"tenant_id": PID, "server_usages": [su("a")], "total_hours": 96.0, "total_vcpus_usage": 384.0,
                    "total_memory_mb_usage": 1.0, "total_local_gb_usage": 1.0, "start": "2023-05-21T00:00:00.000000", "stop": "2023-05-25T00:00:00.000000"},
                    "tenant_usage_links": [{"rel": "next", "href": "http://x/os-simple-tenant-usage/p?marker=a"}]})),
                Some("a") => Reply::json(200, json!({"tenant_usage": {"tenant_id": PID, "server_usages": [su("b")], "total_hours": 4.0,
                    "total_vcpus_usage": 16.0, "total_memory_mb_usage": 1.0, "total_local_gb_usage": 1.0}})),
                _ => Reply::json(200, json!({"tenant_usage": {}})),
            }
        })
    })
    .await;
    let s = session(&m).await;
    let q = nova::GetTenantUsage {
        project_id: PID.into(),
        start: Utc.with_ymd_and_hms(2023, 5, 21, 0, 0, 0).unwrap(),
        end: Utc.with_ymd_and_hms(2023, 5, 25, 0, 0, 0).unwrap(),
        limit: None,
    };
    let u = q.get(&s).await.unwrap();
    assert_eq!(u.server_usages.iter().map(|x| x.instance_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(u.total_hours, 100.0);
    assert_eq!(u.server_usages[0].started_at, Some(Utc.with_ymd_and_hms(2023, 4, 1, 0, 0, 0).unwrap()));
    assert_eq!(u.server_usages[0].ended_at, None);
    assert_eq!((u.server_usages[0].vcpus, u.server_usages[0].memory_mb, u.server_usages[0].local_gb), (4, 8192, 40));
}

#[tokio::test]
async fn cinder_volumes_with_attachments_and_neutron_links_paging() {
    let m = mock(|r| {
        keystone(r).or_else(|| version_docs(r)).unwrap_or_else(|| match r.path.as_str() {
            p if p.ends_with("/volumes/detail") => Reply::json(200, json!({"volumes": [{"id": "v1", "name": null, "status": "in-use", "size": 50,
                "user_id": "u-bob", "created_at": "2023-05-20T10:00:00.000000", "updated_at": null, "os-vol-tenant-attr:tenant_id": PID,
                "bootable": "false", "metadata": {},
                "attachments": [{"server_id": "s1", "attachment_id": "a1", "attached_at": "2023-05-20T11:00:00.000000", "device": "/dev/vdb"}]}]})),
            "/network/v2.0/ports" => match r.param("marker").as_deref() {
                None => Reply::json(200, json!({"ports": [{"id": "p1", "fixed_ips": [{"subnet_id": "sn", "ip_address": "10.0.0.5"}]}],
                    "ports_links": [{"rel": "next", "href": format!("{}/network/v2.0/ports?limit=1&marker=p1", r.base)}]})),
                Some("p1") => Reply::json(200, json!({"ports": [{"id": "p2"}], "ports_links": [{"rel": "previous", "href": "x?marker=p2&page_reverse=True"}]})),
                _ => panic!(),
            },
            other => panic!("{other}"),
        })
    })
    .await;
    let s = session(&m).await;
    let v = cinder::ListVolumes::default().list(&s).await.unwrap();
    assert_eq!(v[0].size, 50);
    assert_eq!(v[0].attachments[0].server_id.as_deref(), Some("s1"));
    assert_eq!(v[0].attachments[0].attached_at, Some(Utc.with_ymd_and_hms(2023, 5, 20, 11, 0, 0).unwrap()));
    assert_eq!(v[0].project_id.as_deref(), Some(PID));
    let q = neutron::ListPorts { project_id: Some(PID.into()), limit: Some(1), ..Default::default() };
    let ports = q.list(&s).await.unwrap();
    assert_eq!(ports.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["p1", "p2"]);
    assert_eq!(ports[0].fixed_ips[0].ip_address, "10.0.0.5");
    assert!(
        m.requests()
            .iter()
            .filter(|r| r.path == "/network/v2.0/ports")
            .all(|r| r.param("project_id").as_deref() == Some(PID))
    );
}

#[test]
fn timestamps_in_every_form_are_utc() {
    use openstack::time::parse;
    let t = Utc.with_ymd_and_hms(2023, 5, 20, 10, 0, 0).unwrap();
    assert_eq!(parse("2023-05-20T10:00:00Z"), Some(t));
    assert_eq!(parse("2023-05-20T10:00:00.000000"), Some(t));
    assert_eq!(parse("2023-05-20T10:00:00+00:00"), Some(t));
    assert_eq!(parse("2023-05-20T12:00:00+02:00"), Some(t));
    assert_eq!(parse("2023-05-20 10:00:00"), Some(t));
    assert_eq!(parse("2023-05-20T10:00:00.000000Z"), Some(t));
    assert_eq!(parse("2023-05-20T10:00:00+0000"), Some(t));
    assert_eq!(parse("yesterday"), None);
}

#[test]
fn error_message_extraction_shapes() {
    use openstack::error::extract_message;
    assert_eq!(extract_message(br#"{"error": {"message": "k", "code": 404}}"#), "k");
    assert_eq!(extract_message(br#"{"itemNotFound": {"message": "n", "code": 404}}"#), "n");
    assert_eq!(extract_message(br#"{"NeutronError": {"message": "q", "type": "T"}}"#), "q");
    assert_eq!(extract_message(br#"{"message": "plain"}"#), "plain");
    assert_eq!(
        extract_message(b"404 Not Found\n\nThe resource could not be found.\n\n   "),
        "404 Not Found The resource could not be found."
    );
    assert_eq!(extract_message(b""), "(empty body)");
}

#[tokio::test]
async fn all_tenant_usage_actions_quotas_and_limits() {
    let m = mock(|r| {
        keystone(r).or_else(|| version_docs(r)).unwrap_or_else(|| match r.path.as_str() {
            "/compute/v2.1/os-simple-tenant-usage" => {
                assert_eq!(r.param("detailed").as_deref(), Some("1"));
                let tu = |t: &str, id: &str| json!({"tenant_id": t, "total_hours": 1.0, "server_usages": [{"instance_id": id, "vcpus": 1}]});
                match r.param("marker").as_deref() {
                    None => Reply::json(200, json!({"tenant_usages": [tu("t1", "a"), tu("t2", "b")],
                        "tenant_usages_links": [{"rel": "next", "href": "/x?marker=b"}]})),
                    _ => Reply::json(200, json!({"tenant_usages": [tu("t2", "c")]})),
                }
            }
            "/compute/v2.1/servers/s1/os-instance-actions" => Reply::json(200, json!({"instanceActions": [
                {"action": "create", "instance_uuid": "s1", "request_id": "req-1", "user_id": "u", "project_id": "p",
                 "start_time": "2023-05-20T10:00:00.000000", "updated_at": "2023-05-20T10:01:00.000000", "message": null}]})),
            "/compute/v2.1/os-quota-sets/p1" => Reply::json(200, json!({"quota_set": {"id": "p1", "cores": 20, "instances": 10, "ram": 51200, "key_pairs": 100}})),
            "/compute/v2.1/limits" => {
                assert_eq!(r.param("tenant_id").as_deref(), Some("p1"));
                Reply::json(200, json!({"limits": {"absolute": {"maxTotalCores": 20, "totalCoresUsed": 4, "maxServerMeta": 128}, "rate": []}}))
            }
            other => panic!("{other}"),
        })
    })
    .await;
    let s = session(&m).await;
    let day = |d| Utc.with_ymd_and_hms(2023, 5, d, 0, 0, 0).unwrap();
    let all =
        nova::ListTenantUsages { start: day(21), end: day(25), detailed: true, limit: Some(2) }.list(&s).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].tenant_id, "t2");
    assert_eq!(all[1].server_usages.len(), 2, "t2 split across pages is merged");
    assert_eq!(all[1].total_hours, 2.0);
    let acts = nova::ListInstanceActions::new("s1").list(&s).await.unwrap();
    assert_eq!(acts[0].action, "create");
    assert_eq!(acts[0].start_time, Some(Utc.with_ymd_and_hms(2023, 5, 20, 10, 0, 0).unwrap()));
    let q = nova::limits::quota_set(&s, "p1").await.unwrap();
    assert_eq!((q.cores, q.instances, q.ram), (Some(20), Some(10), Some(51200)));
    assert_eq!(q.extra["key_pairs"], 100);
    let l = nova::limits::limits(&s, Some("p1")).await.unwrap();
    assert_eq!((l.max_total_cores, l.total_cores_used), (Some(20), Some(4)));
    assert_eq!(l.extra["maxServerMeta"], 128);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_slow_attempt_times_out_and_is_retried() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let m = mock(move |r| {
        keystone(r).unwrap_or_else(|| {
            if h.fetch_add(1, Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(600));
            }
            Reply::json(200, json!({"user": {"id": "u1", "name": "alice"}}))
        })
    })
    .await;
    let mut retry = fast_retry();
    retry.timeout = Duration::from_millis(200);
    let s = openstack::Session::builder(config(&m.auth_url(), openstack::Scope::project_id(PID)))
        .retry(retry)
        .connect()
        .await
        .unwrap();
    let u = keystone::users::get(&s, "u1").await.unwrap();
    assert_eq!(u.name, "alice");
    let st = *s.counters().iter().find(|(k, _)| k.route == "/users/{id}").unwrap().1;
    assert_eq!((st.attempts, st.retries, st.failures), (2, 1, 0));
}
