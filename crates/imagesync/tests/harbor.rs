//! Image sync against the simulated Harbor (sim's default registry mode)
//! into the sim's Glance: anonymous pulls of the public project through the
//! token service, private VO projects with robot credentials (the same
//! images as the lenient plain registry gives), a token refused mid-sync and
//! renewed, `_catalog` refused to all but the admin, REST paging and a
//! repository name with a slash (double URL-encoded).

use openstack::Paged;
use std::collections::{BTreeMap, BTreeSet};

use imagesync::config::{RegistryConfig, RegistryKind, Secret, SyncConfig};
use imagesync::sync::{Report, RunOptions, Syncer};
use openstack::glance::ListImages;
use sim::harbor::{ADMIN_PASSWORD, ADMIN_USER, HarborConfig, ROBOT_PASSWORD, ROBOT_USER, RegistryMode};

/// A `tiny` sim with `mode`, and the VO → project id map of its site; the
/// admin (who runs the sync) is a member of every VO project, to accept
/// the shares.
async fn start(mode: RegistryMode) -> (sim::SimHandle, BTreeMap<String, String>) {
    let mut scenario = sim::scenario::builtin("tiny").unwrap().generate();
    let mut vos = BTreeMap::new();
    for p in &scenario.site.projects {
        if let Some(vo) = ["VO", "egi.VO", "egi.eu:VO"].iter().find_map(|k| p.extra.get(*k)).and_then(|v| v.as_str())
            && !vo.contains([',', '/'])
        {
            vos.insert(vo.to_string(), p.id.clone());
        }
    }
    assert!(!vos.is_empty(), "the tiny scenario has VO projects");
    let site = &mut scenario.site;
    let admin = site.users.iter().find(|u| u.name == sim::scenario::ADMIN_USER).unwrap().id.clone();
    let member = site.roles.iter().find(|r| r.name == "member").unwrap().id.clone();
    for p in vos.values() {
        site.assignments.push(sim::model::Assignment {
            user_id: admin.clone(),
            role_id: member.clone(),
            scope: sim::model::AssignmentScope::Project(p.clone()),
        });
    }
    let mut cfg = sim::SimConfig::new(scenario);
    cfg.registry = mode;
    (sim::start(cfg).await.unwrap(), vos)
}

async fn session(sim: &sim::SimHandle) -> openstack::Session {
    let c = openstack::CloudConfig::from_clouds_yaml(&sim.clouds_yaml(), None, "sim", "clouds.yaml").unwrap();
    openstack::Session::connect(&c).await.unwrap()
}

fn sync_config(vos: &BTreeMap<String, String>, cache: &std::path::Path, registry: RegistryConfig) -> SyncConfig {
    let mut c = SyncConfig::build(None, None).unwrap();
    c.enabled = true;
    c.formats = vec!["qcow2".into()];
    c.vos = vos.clone();
    c.name_prefix = "registry.test ".into();
    c.cache_dir = cache.to_path_buf();
    c.progress = false;
    c.registry = Some(registry);
    c
}

fn robot(mut r: RegistryConfig) -> RegistryConfig {
    r.username = Some(ROBOT_USER.into());
    r.password = Some(Secret::new(ROBOT_PASSWORD));
    r
}

/// What a synced image is, independent of the registry's host: name →
/// (image_hash, disk format, os_distro/version, the VOs it is shared with,
/// the registry reference without the host).
type Synced = BTreeMap<String, (String, String, String, BTreeSet<String>, String)>;

async fn synced(sim: &sim::SimHandle, session: &openstack::Session, vos: &BTreeMap<String, String>) -> Synced {
    let by_project: BTreeMap<&String, &String> = vos.iter().map(|(v, p)| (p, v)).collect();
    let images = ListImages { tags: vec!["fedsite".into()], ..Default::default() }.list(session).await.unwrap();
    let mut out = BTreeMap::new();
    for i in images {
        let members = openstack::glance::members::list(session, &i.id).await.unwrap();
        let shared: BTreeSet<String> =
            members.iter().filter_map(|m| by_project.get(&m.member_id).map(|v| v.to_string())).collect();
        let appdb = i.property("appdb_id").unwrap_or_default().replace(&sim.registry_host(), "HOST");
        let os = format!("{}/{}", i.property("os_distro").unwrap_or(""), i.property("os_version").unwrap_or(""));
        let value = (
            i.property("image_hash").unwrap_or_default().to_string(),
            i.disk_format.clone().unwrap_or_default(),
            os,
            shared,
            appdb,
        );
        out.insert(i.name.clone().unwrap_or_default(), value);
    }
    out
}

fn ok(r: &Report) {
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

/// GETs the sim logged whose path contains `part`, with their status.
fn logged(sim: &sim::SimHandle, part: &str) -> Vec<(String, u16)> {
    sim.requests().into_iter().filter(|r| r.uri.contains(part)).map(|r| (r.uri, r.status)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_sync_of_the_public_project_goes_through_the_token_service() {
    let (sim, vos) = start(RegistryMode::default()).await;
    let s = session(&sim).await;
    let cache = tempfile::tempdir().unwrap();
    let cfg = sync_config(&vos, cache.path(), RegistryConfig::new(sim.base_url()));
    let r = Syncer::new(&cfg, &s).run(&RunOptions::default()).await.unwrap();
    ok(&r);
    let got = synced(&sim, &s, &vos).await;
    let all: BTreeSet<String> = vos.keys().cloned().collect();
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        [
            "registry.test egi_vm_images/almalinux.9:2023.05.02".to_string(),
            "registry.test egi_vm_images/ubuntu.22.04:2023.05.01".to_string()
        ]
        .into(),
        "the public project only: the VO projects are private"
    );
    assert!(got.values().all(|v| v.3 == all), "shared with every VO: {got:?}");
    assert!(
        r.skipped.iter().any(|s| s.item.contains("scratch") && s.message.contains("eu.egi.cloud.tag")),
        "{:?}",
        r.skipped
    );
    // Every manifest and blob GET without a token was answered 401 first,
    // then pulled with one from /service/token; _catalog was never asked.
    let tokens = logged(&sim, "/service/token");
    assert!(
        tokens.len() >= 2 && tokens.iter().all(|(u, s)| *s == 200 && u.contains("scope=repository%3Aegi_vm_images%2F")),
        "{tokens:?}"
    );
    let manifests = logged(&sim, "/manifests/");
    assert!(manifests.iter().any(|(_, s)| *s == 401) && manifests.iter().any(|(_, s)| *s == 200), "{manifests:?}");
    assert!(logged(&sim, "/blobs/").iter().filter(|(_, s)| *s == 200).count() >= 2);
    assert!(logged(&sim, "_catalog").is_empty());
    assert!(logged(&sim, "/api/v2.0/projects/egi_vm_images/repositories").iter().all(|(_, s)| *s == 200));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn private_projects_with_credentials_give_the_images_of_the_lenient_registry() {
    // Before: a plain registry listed through _catalog, anonymous.
    let (lenient, vos) = start(RegistryMode::Lenient).await;
    let s1 = session(&lenient).await;
    let cache1 = tempfile::tempdir().unwrap();
    let mut plain = RegistryConfig::new(lenient.base_url());
    plain.kind = RegistryKind::Oci;
    ok(&Syncer::new(&sync_config(&vos, cache1.path(), plain), &s1).run(&RunOptions::default()).await.unwrap());
    let before = synced(&lenient, &s1, &vos).await;
    lenient.stop().await;

    // Now: the Harbor, REST API + tokens, with the robot account.
    let (harbor, vos2) = start(RegistryMode::default()).await;
    assert_eq!(vos, vos2);
    let s2 = session(&harbor).await;
    let cache2 = tempfile::tempdir().unwrap();
    let cfg = sync_config(&vos, cache2.path(), robot(RegistryConfig::new(harbor.base_url())));
    ok(&Syncer::new(&cfg, &s2).run(&RunOptions::default()).await.unwrap());
    let after = synced(&harbor, &s2, &vos).await;

    assert_eq!(after, before);
    let vo_images: Vec<&String> = after.keys().filter(|n| n.ends_with("/tools:2023.04.01")).collect();
    assert_eq!(vo_images.len(), vos.len(), "one image per VO from its private project: {:?}", after.keys());
    assert_eq!(after.len(), 2 + vos.len());
    // The tokens were asked for with the robot's credentials (the VO
    // projects are private: anonymous tokens would grant nothing).
    assert!(logged(&harbor, "/service/token").iter().any(|(u, s)| *s == 200 && u.contains("%2Ftools%3Apull")));
    harbor.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_refused_mid_sync_is_renewed() {
    // Each token is good for one registry request: the one the manifest
    // GET used is stale by the time the blob is downloaded.
    let mode = RegistryMode::Harbor(HarborConfig { token_max_uses: Some(1), ..Default::default() });
    let (sim, vos) = start(mode).await;
    let s = session(&sim).await;
    let cache = tempfile::tempdir().unwrap();
    let cfg = sync_config(&vos, cache.path(), robot(RegistryConfig::new(sim.base_url())));
    let r = Syncer::new(&cfg, &s).run(&RunOptions::default()).await.unwrap();
    ok(&r);
    assert_eq!(r.downloads, 2 + vos.len() as u64, "{}", r.summary());
    let blobs = logged(&sim, "/blobs/");
    let refused = blobs.iter().filter(|(_, s)| *s == 401).count();
    assert_eq!(refused, r.downloads as usize, "every download met its stale token once: {blobs:?}");
    assert_eq!(blobs.iter().filter(|(_, s)| *s == 200).count(), r.downloads as usize);
    // One token per manifest read (scratch's too: it is skipped after), one renewal per download.
    let manifests = logged(&sim, "/manifests/").iter().filter(|(_, s)| *s == 200).count();
    assert_eq!(manifests, r.downloads as usize + 1);
    assert_eq!(logged(&sim, "/service/token").len(), manifests + r.downloads as usize);
    assert_eq!(synced(&sim, &s, &vos).await.len(), 2 + vos.len());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_is_refused_to_all_but_the_system_admin() {
    let (sim, vos) = start(RegistryMode::default()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v2/_catalog", sim.base_url());
    let anon = http.get(&url).send().await.unwrap();
    assert_eq!(anon.status().as_u16(), 401);
    assert_eq!(anon.headers()["www-authenticate"], "Basic realm=\"harbor\"");
    let robot_answer = http.get(&url).basic_auth(ROBOT_USER, Some(ROBOT_PASSWORD)).send().await.unwrap();
    assert_eq!(robot_answer.status().as_u16(), 401);
    // A token is never accepted for the catalog, not even an admin's.
    let tok: serde_json::Value = http
        .get(format!("{}/service/token?service=harbor-registry&scope=registry:catalog:*", sim.base_url()))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tok["access_token"], "");
    assert_eq!(tok["expires_in"], 1800);
    let bearer = http.get(&url).bearer_auth(tok["token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(bearer.status().as_u16(), 401);
    let admin: serde_json::Value =
        http.get(&url).basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD)).send().await.unwrap().json().await.unwrap();
    assert!(admin["repositories"].as_array().unwrap().iter().any(|r| r == "egi_vm_images/ubuntu.22.04"), "{admin}");

    // A source configured as a plain registry fails there, named, with nothing synced.
    let s = session(&sim).await;
    let cache = tempfile::tempdir().unwrap();
    let mut plain = robot(RegistryConfig::new(sim.base_url()));
    plain.kind = RegistryKind::Oci;
    let r = Syncer::new(&sync_config(&vos, cache.path(), plain), &s).run(&RunOptions::default()).await.unwrap();
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    let e = &r.errors[0];
    assert!(e.item == "source registry" && e.message.contains("/v2/_catalog") && e.message.contains("401"), "{e:?}");
    assert!(!e.message.contains(ROBOT_PASSWORD), "{e:?}");
    assert!(synced(&sim, &s, &vos).await.is_empty());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_paging_and_a_repository_name_with_a_slash() {
    let (sim, vos) = start(RegistryMode::default()).await;
    sim.registry_push(&sim::oci::RegistryImage::new("egi_vm_images/nested/cirros", "0.6", "cirros", "0.6"));
    let http = reqwest::Client::new();
    // Harbor routes on the once-decoded path: a single-encoded slash is not found.
    let api = format!("{}/api/v2.0/projects/egi_vm_images/repositories", sim.base_url());
    assert_eq!(http.get(format!("{api}/nested%2Fcirros/artifacts")).send().await.unwrap().status().as_u16(), 404);
    let arts = http.get(format!("{api}/nested%252Fcirros/artifacts")).send().await.unwrap();
    assert_eq!(arts.status().as_u16(), 200);
    let arts: serde_json::Value = arts.json().await.unwrap();
    assert_eq!(arts[0]["tags"][0]["name"], "0.6");
    assert_eq!(arts[0]["extra_attrs"], serde_json::json!({}));
    assert!(arts[0]["annotations"].get("eu.egi.cloud.tag").is_none(), "the EGI keys are on the layer only");
    let vo_project = vos.keys().next().unwrap().to_ascii_lowercase();
    let private =
        http.get(format!("{}/api/v2.0/projects/{vo_project}/repositories", sim.base_url())).send().await.unwrap();
    assert_eq!(private.status().as_u16(), 401, "a private project, anonymous");

    let s = session(&sim).await;
    let cache = tempfile::tempdir().unwrap();
    let mut reg = robot(RegistryConfig::new(sim.base_url()));
    reg.page_size = 1;
    let r = Syncer::new(&sync_config(&vos, cache.path(), reg), &s).run(&RunOptions::default()).await.unwrap();
    ok(&r);
    let got = synced(&sim, &s, &vos).await;
    assert!(got.contains_key("registry.test egi_vm_images/nested/cirros:0.6"), "{:?}", got.keys());
    assert_eq!(got.len(), 3 + vos.len());
    // page_size=1 over four repositories: pages 1..=4 by Link, then none.
    let pages = logged(&sim, "/api/v2.0/projects/egi_vm_images/repositories?");
    assert!((1..=4).all(|p| pages.iter().any(|(u, _)| u.contains(&format!("page={p}&page_size=1")))), "{pages:?}");
    assert!(logged(&sim, "nested%252Fcirros/artifacts").iter().all(|(_, s)| *s == 200));
    sim.stop().await;
}
