//! The `openstack` client crate against the simulated site: auth and
//! scopes, catalog, microversion negotiation, pagination and typed answers,
//! checked against the `tiny` and `small` scenarios' known contents.

use crate::common;

use chrono::{TimeZone, Utc};
use openstack::Paged;
use openstack::{CloudConfig, Scope, Service, Session, cinder, glance, keystone, neutron, nova};

const PROJ1: &str = "0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b";

async fn session(sim: &sim::SimHandle, cloud: &str) -> Session {
    let cfg = CloudConfig::from_clouds_yaml(&sim.clouds_yaml(), None, cloud, "sim clouds.yaml").unwrap();
    Session::connect(&cfg).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn reader_account_reads_projects_vos_and_a_projects_resources() {
    let sim = common::start_sim().await;
    let system = session(&sim, "sim-accounting").await;
    let tagged = keystone::ListProjects::tagged("caso").list(&system).await.unwrap();
    let mut names: Vec<&str> = tagged.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["egi-proj", "novo", "proj1"]);
    let proj1 = tagged.iter().find(|p| p.id == PROJ1).unwrap();
    assert_eq!(proj1.property("VO"), Some("vo.example.org"));

    // One rescoped token per project, sharing the counters.
    let project = system.rescope(Scope::project_id(PROJ1)).await.unwrap();
    assert_eq!(project.microversion(Service::Compute).await.unwrap().map(|m| (m.major, m.minor)), Some((2, 79)));
    let since = Utc.with_ymd_and_hms(2023, 5, 21, 0, 0, 0).unwrap();
    let changed = nova::ListServers { changes_since: Some(since), limit: Some(1), ..Default::default() }
        .list(&project)
        .await
        .unwrap();
    let mut changed_names: Vec<&str> = changed.iter().filter_map(|s| s.name.as_deref()).collect();
    changed_names.sort();
    // Paged one server at a time, the deleted server included.
    assert_eq!(changed_names, ["vm-deleted", "vm-running"]);
    let running = changed.iter().find(|s| s.name.as_deref() == Some("vm-running")).unwrap();
    assert_eq!(running.launched_at, Some(Utc.with_ymd_and_hms(2023, 5, 20, 10, 1, 0).unwrap()));
    assert_eq!(running.floating_ips().map(|a| a.addr.as_str()).collect::<Vec<_>>(), ["192.0.2.10"]);
    let flavor = running.flavor.as_ref().unwrap();
    assert_eq!((flavor.vcpus, flavor.ram), (Some(2), Some(4096)), "embedded flavor from 2.47");

    let usage = nova::GetTenantUsage {
        project_id: PROJ1.into(),
        start: since,
        end: Utc.with_ymd_and_hms(2023, 5, 25, 0, 0, 0).unwrap(),
        limit: None,
    }
    .get(&project)
    .await
    .unwrap();
    let quiet = usage.server_usages.iter().find(|u| u.name.as_deref() == Some("vm-quiet")).unwrap();
    assert_eq!((quiet.vcpus, quiet.memory_mb, quiet.local_gb), (4, 8192, 40), "the old flavor's snapshot");

    let volumes = cinder::ListVolumes { limit: Some(1), ..Default::default() }.list(&project).await.unwrap();
    let mut sizes: Vec<(String, u64)> = volumes.iter().map(|v| (v.name.clone().unwrap_or_default(), v.size)).collect();
    sizes.sort();
    assert_eq!(sizes, [("data-vol".to_string(), 50), ("scratch".to_string(), 10)]);

    let fips = neutron::ListFloatingIps::default().list(&project).await.unwrap();
    let mut versions: Vec<u8> = fips.iter().map(|f| f.ip_version()).collect();
    versions.sort();
    assert_eq!(versions, [4, 4, 6], "only proj1's floating IPs");

    let images = glance::ListImages { limit: Some(1), ..Default::default() }.list(&project).await.unwrap();
    let ubuntu = images.iter().find(|i| i.name.as_deref() == Some("ubuntu")).unwrap();
    assert_eq!(ubuntu.property("vmcatcher_event_ad_mpuri"), Some("https://appdb.example/img/1"));

    // The counters saw both sessions' calls; two tokens in all.
    let tokens: u64 = system
        .counters()
        .iter()
        .filter(|(k, _)| k.method == "POST" && k.route.contains("auth/tokens"))
        .map(|(_, c)| c.calls)
        .sum();
    assert_eq!(tokens, 2);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_project_reader_gets_a_403_naming_the_policy_rule() {
    let sim = common::start_sim().await;
    let system = session(&sim, "sim-accounting").await;
    let project = system.rescope(Scope::project_id(PROJ1)).await.unwrap();
    let err = keystone::ListUsers::default().list(&project).await.unwrap_err();
    assert!(err.is_forbidden(), "{err}");
    assert!(err.to_string().contains("identity:list_users"), "{err}");
    // The system-scoped reader may list users.
    assert!(keystone::ListUsers::default().list(&system).await.unwrap().iter().any(|u| u.name == "accounting"));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn all_projects_listings_page_through_the_small_site() {
    let sim = common::start_sim_scenario("small").await;
    let admin = session(&sim, "sim").await;
    let servers =
        nova::ListServers { all_tenants: true, limit: Some(25), ..Default::default() }.list(&admin).await.unwrap();
    let mut ids: Vec<&str> = servers.iter().map(|s| s.id.as_str()).collect();
    let listed = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), listed, "no server twice across pages");
    let pages = admin
        .counters()
        .iter()
        .filter(|(k, _)| k.route.ends_with("/servers/detail"))
        .map(|(_, c)| c.calls)
        .sum::<u64>();
    assert_eq!(pages as usize, listed / 25 + 1);
    // The inventory agrees with the listing.
    let inv = sitecheck::inventory::gather(&admin).await.unwrap();
    assert_eq!(inv.servers_by_status.values().sum::<usize>(), listed);
    sim.stop().await;
}
