//! Image sync against the REAL Glance and Keystone of `scripts/test`, from
//! the sim's registry as a Harbor (REST API listing, token flow, the robot
//! account as the EGI central deployment uses): upload with properties and members, a second run
//! that changes nothing, a new tag replacing its image, a withdrawn image
//! removed, qcow2 → raw conversion, and per-image errors (tampered blob,
//! unreachable registry, Glance refusing the data) that leave nothing behind.

use crate::common;
#[path = "../../../imagesync/tests/pki/mod.rs"]
mod pki;

use openstack::Paged;
use std::collections::{BTreeMap, BTreeSet};

use imagesync::config::{RegistryConfig, Secret, SyncConfig};
use imagesync::sync::{Action, RunOptions, Syncer};
use openstack::glance::{Image, ListImages, members};
use openstack::{CloudConfig, Scope, Session};
use serde_json::{Value, json};

const VO1: &str = "vo.access.egi.eu";
const VO2: &str = "ops";

/// A service account (`member` on the owner project and on two VO projects)
/// on the real Keystone; its session scoped to the owner project.
struct Site {
    owner: String,
    vo1: String,
    vo2: String,
    session: Session,
}

async fn ks_admin_token(http: &reqwest::Client) -> String {
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": common::real_admin_password()}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}});
    let r = http.post(format!("{}/auth/tokens", common::real_keystone())).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201, "admin token: {}", r.text().await.unwrap());
    r.headers()["x-subject-token"].to_str().unwrap().to_string()
}

async fn ks_post(http: &reqwest::Client, tok: &str, path: &str, body: Value) -> Value {
    let r = http
        .post(format!("{}{path}", common::real_keystone()))
        .header("X-Auth-Token", tok)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "POST {path}: {v}");
    v
}

async fn site() -> Site {
    let http = reqwest::Client::new();
    let tok = ks_admin_token(&http).await;
    let mut ids = vec![];
    for p in ["owner", "vo1", "vo2"] {
        let v =
            ks_post(&http, &tok, "/projects", json!({"project": {"name": common::unique(p), "domain_id": "default"}}))
                .await;
        ids.push(v["project"]["id"].as_str().unwrap().to_string());
    }
    let user = common::unique("imagesync");
    let password = common::real_admin_password();
    let u =
        ks_post(&http, &tok, "/users", json!({"user": {"name": user, "domain_id": "default", "password": password}}))
            .await;
    let uid = u["user"]["id"].as_str().unwrap().to_string();
    let roles: Value = http
        .get(format!("{}/roles?name=member", common::real_keystone()))
        .header("X-Auth-Token", &tok)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let member = roles["roles"][0]["id"].as_str().unwrap().to_string();
    for p in &ids {
        let r = http
            .put(format!("{}/projects/{p}/users/{uid}/roles/{member}", common::real_keystone()))
            .header("X-Auth-Token", &tok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
    }
    let yaml = format!(
        "clouds:\n  svc:\n    auth:\n      auth_url: {}\n      username: {user}\n      password: {password}\n      user_domain_name: Default\n      project_id: {}\n    region_name: RegionOne\n    interface: public\n    identity_api_version: 3\n",
        common::real_keystone(),
        ids[0]
    );
    let cloud = CloudConfig::from_clouds_yaml(&yaml, None, "svc", "test clouds.yaml").unwrap();
    let session = Session::connect(&cloud).await.unwrap();
    Site { owner: ids[0].clone(), vo1: ids[1].clone(), vo2: ids[2].clone(), session }
}

fn config(site: &Site, sim: &sim::SimHandle, formats: &[&str], cache: &std::path::Path) -> SyncConfig {
    let mut c = SyncConfig::build(None, None).unwrap();
    c.enabled = true;
    c.formats = formats.iter().map(|s| s.to_string()).collect();
    c.vos = [(VO1.to_string(), site.vo1.clone()), (VO2.to_string(), site.vo2.clone())].into();
    c.tag = common::unique("fedsite");
    c.name_prefix = "registry.test ".into();
    c.cache_dir = cache.to_path_buf();
    c.progress = false;
    c.registry = Some(RegistryConfig {
        shared_project: sim::oci::SHARED_PROJECT.into(),
        username: Some(sim::harbor::ROBOT_USER.into()),
        password: Some(Secret::new(sim::harbor::ROBOT_PASSWORD)),
        ..RegistryConfig::new(sim.base_url())
    });
    c
}

/// Our images in Glance (by name), hidden ones included.
async fn glance_images(site: &Site, tag: &str) -> BTreeMap<String, Image> {
    let mut q = ListImages { tags: vec![tag.into()], owner: Some(site.owner.clone()), ..Default::default() };
    let mut out: BTreeMap<String, Image> =
        q.list(&site.session).await.unwrap().into_iter().map(|i| (i.name.clone().unwrap(), i)).collect();
    q.properties.insert("os_hidden".into(), "true".into());
    for i in q.list(&site.session).await.unwrap() {
        out.insert(i.name.clone().unwrap(), i);
    }
    out
}

async fn member_map(site: &Site, id: &str) -> BTreeMap<String, String> {
    members::list(&site.session, id).await.unwrap().into_iter().map(|m| (m.member_id, m.status)).collect()
}

fn blob_gets(sim: &sim::SimHandle) -> u64 {
    sim.request_counts().iter().filter(|(k, _)| k.contains("/blobs/")).map(|(_, n)| n).sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_sync_uploads_shares_is_idempotent_replaces_and_removes() {
    let site = site().await;
    let sim = common::start_sim_scenario("tiny").await;
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(&site, &sim, &["qcow2", "raw"], cache.path());
    let host = sim.registry_host();
    let syncer = Syncer::new(&cfg, &site.session);

    // Dry run: the plan, nothing done.
    let dry = syncer.run(&RunOptions { dry_run: true, ..Default::default() }).await.unwrap();
    assert!(dry.errors.is_empty(), "{:?}", dry.errors);
    let adds: BTreeSet<String> = dry
        .plan
        .iter()
        .filter_map(|a| match a {
            Action::Add { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    let ubuntu1 = "registry.test egi_vm_images/ubuntu.22.04:2023.05.01".to_string();
    let alma = "registry.test egi_vm_images/almalinux.9:2023.05.02".to_string();
    let tools = format!("registry.test {VO1}/tools:2023.04.01");
    assert_eq!(adds, [ubuntu1.clone(), alma.clone(), tools.clone()].into(), "{:?}", dry.plan);
    assert!(
        dry.skipped.iter().any(|s| s.item.contains("scratch") && s.message.contains("eu.egi.cloud.tag")),
        "{:?}",
        dry.skipped
    );
    assert!(dry.unchanged() && glance_images(&site, &cfg.tag).await.is_empty());

    // First sync: three images, properties, members accepted.
    let r1 = syncer.run(&RunOptions::default()).await.unwrap();
    assert!(r1.errors.is_empty(), "{:?}", r1.errors);
    // (A Glance 5xx makes the sync delete the half-made image and start over:
    // counts are net of such retries.)
    assert_eq!((r1.created - r1.deleted, r1.downloads, r1.conversions), (3, 3, 0), "{}", r1.summary());
    let imgs = glance_images(&site, &cfg.tag).await;
    assert_eq!(imgs.keys().cloned().collect::<BTreeSet<_>>(), adds);
    let u = &imgs[&ubuntu1];
    let reg = sim.registry();
    let digest = reg.disk_digest("egi_vm_images/ubuntu.22.04", "2023.05.01").unwrap();
    assert_eq!(u.status, "active");
    assert_eq!(u.visibility.as_deref(), Some("shared"));
    assert_eq!(u.os_hidden, Some(false));
    assert_eq!(u.disk_format.as_deref(), Some("qcow2"));
    assert_eq!(u.size, Some(reg.blobs[&digest].len() as u64));
    assert_eq!(u.property("image_hash"), Some(digest.as_str()));
    assert_eq!(u.property("os_distro"), Some("ubuntu"));
    assert_eq!(u.property("os_version"), Some("22.04"));
    assert_eq!(u.property("architecture"), Some("x86_64"));
    assert_eq!(u.property("image_list"), Some("registry"));
    assert_eq!(u.property("vmcatcher_event_dc_description"), Some("EGI ubuntu 22.04 image"));
    let appdb = u.property("appdb_id").unwrap();
    assert!(appdb.starts_with(&format!("{host}/egi_vm_images/ubuntu.22.04:2023.05.01-sha256:")), "{appdb}");
    assert_eq!(u.property("vmcatcher_event_ad_mpuri"), Some(appdb));
    let attrs: Value = serde_json::from_str(u.property("APPLIANCE_ATTRIBUTES").unwrap()).unwrap();
    assert_eq!(attrs["eu.egi.cloud.tag"], "2023.05.01");
    assert_eq!(attrs["eu.egi.cloud.image_ref"], json!(format!("{host}/egi_vm_images/ubuntu.22.04:2023.05.01")));
    assert!(u.tags.contains(&cfg.tag));
    let accepted =
        |ps: &[&String]| ps.iter().map(|p| (p.to_string(), "accepted".to_string())).collect::<BTreeMap<_, _>>();
    assert_eq!(member_map(&site, &u.id).await, accepted(&[&site.vo1, &site.vo2]));
    assert_eq!(member_map(&site, &imgs[&tools].id).await, accepted(&[&site.vo1]));
    // The VO project sees the shared images in its default listing (accepted).
    let vo2 = site.session.rescope(Scope::project_id(site.vo2.clone())).await.unwrap();
    let seen: BTreeSet<String> = ListImages { tags: vec![cfg.tag.clone()], ..Default::default() }
        .list(&vo2)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name.unwrap())
        .collect();
    assert_eq!(seen, [ubuntu1.clone(), alma.clone()].into());

    // Second sync: nothing to do, nothing downloaded or uploaded.
    let blobs_before = blob_gets(&sim);
    let r2 = syncer.run(&RunOptions::default()).await.unwrap();
    assert!(r2.errors.is_empty(), "{:?}", r2.errors);
    assert!(r2.plan.is_empty(), "{:?}", r2.plan);
    assert!(r2.unchanged(), "{}", r2.summary());
    assert_eq!((r2.downloads, r2.uploads, r2.cache_hits), (0, 0, 0));
    assert_eq!(blob_gets(&sim), blobs_before, "no blob fetched");
    let again = glance_images(&site, &cfg.tag).await;
    assert_eq!(
        again.values().map(|i| (&i.id, &i.updated_at)).collect::<Vec<_>>(),
        imgs.values().map(|i| (&i.id, &i.updated_at)).collect::<Vec<_>>()
    );

    // A new tag replaces the ubuntu image; the VO's tools image is withdrawn.
    let mut newer = sim::oci::RegistryImage::new("egi_vm_images/ubuntu.22.04", "2023.06.01", "ubuntu", "22.04");
    newer.marker = "ubuntu 2023.06.01".into();
    sim.registry_push(&newer);
    assert!(sim.registry_untag(&format!("{VO1}/tools"), "2023.04.01"));
    let r3 = syncer.run(&RunOptions::default()).await.unwrap();
    assert!(r3.errors.is_empty(), "{:?}", r3.errors);
    assert!(
        r3.plan.iter().any(|a| matches!(a, Action::Update { replaces, .. } if replaces == &vec![u.id.clone()])),
        "{:?}",
        r3.plan
    );
    assert!(r3.plan.iter().any(|a| matches!(a, Action::Remove { image_id, reason, .. } if image_id == &imgs[&tools].id && reason.contains("withdrawn"))));
    // One image created (net of retries); the old ubuntu and the tools image deleted.
    assert!(r3.uploads >= 1 && r3.deleted == r3.created + 1, "{}", r3.summary());
    let after = glance_images(&site, &cfg.tag).await;
    let ubuntu2 = "registry.test egi_vm_images/ubuntu.22.04:2023.06.01".to_string();
    assert_eq!(after.keys().cloned().collect::<BTreeSet<_>>(), [ubuntu2.clone(), alma.clone()].into());
    assert_eq!(after[&alma].id, imgs[&alma].id, "the unchanged image kept its id");
    let new_digest = sim.registry().disk_digest("egi_vm_images/ubuntu.22.04", "2023.06.01").unwrap();
    assert_eq!(after[&ubuntu2].property("image_hash"), Some(new_digest.as_str()));
    assert_eq!(member_map(&site, &after[&ubuntu2].id).await, accepted(&[&site.vo1, &site.vo2]));
    let gone = openstack::glance::images::get(&site.session, &u.id).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone}");

    // An unreachable registry: an error, and nothing of it is removed.
    let mut down = cfg.clone();
    down.registry.as_mut().unwrap().url = "http://127.0.0.1:9".into();
    let r4 = Syncer::new(&down, &site.session).run(&RunOptions::default()).await.unwrap();
    assert_eq!(r4.errors.len(), 1, "{:?}", r4.errors);
    assert!(r4.errors[0].item == "source registry" && r4.errors[0].message.contains("127.0.0.1:9"), "{:?}", r4.errors);
    assert!(r4.plan.is_empty() && r4.unchanged(), "{:?}", r4.plan);
    assert_eq!(glance_images(&site, &cfg.tag).await.len(), 2);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_only_site_gets_converted_images_once() {
    let site = site().await;
    let sim = common::start_sim_scenario("tiny").await;
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = config(&site, &sim, &["raw"], cache.path());
    cfg.registry.as_mut().unwrap().repositories = vec!["egi_vm_images/ubuntu.22.04".into()];
    let syncer = Syncer::new(&cfg, &site.session);
    let dry = syncer.run(&RunOptions { dry_run: true, ..Default::default() }).await.unwrap();
    assert_eq!(dry.plan.len(), 1);
    assert!(dry.plan[0].to_string().contains("(qcow2→raw)"), "{}", dry.plan[0]);
    let r1 = syncer.run(&RunOptions::default()).await.unwrap();
    assert!(r1.errors.is_empty(), "{:?}", r1.errors);
    assert_eq!((r1.conversions, r1.created - r1.deleted), (1, 1), "{}", r1.summary());
    let imgs = glance_images(&site, &cfg.tag).await;
    let img = imgs.values().next().unwrap();
    assert_eq!(img.disk_format.as_deref(), Some("raw"));
    assert_eq!(img.property("fedsite_format"), Some("raw"));
    assert_eq!(img.size, Some(1 << 20), "raw = the virtual size");
    // The data is the disk's content: the marker, then zeros.
    let ep = site.session.endpoint(openstack::Service::Image).await.unwrap();
    let tok = site.session.token().await.unwrap();
    let data = reqwest::Client::new()
        .get(format!("{ep}/images/{}/file", img.id))
        .header("X-Auth-Token", tok.id.expose())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let marker = b"egi_vm_images/ubuntu.22.04:2023.05.01";
    assert_eq!(&data[..marker.len()], marker);
    assert!(data[marker.len()..].iter().all(|b| *b == 0));
    // Unchanged: no conversion, no upload.
    let r2 = syncer.run(&RunOptions::default()).await.unwrap();
    assert!(r2.unchanged() && r2.conversions == 0 && r2.uploads == 0, "{}", r2.summary());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_blob_and_glance_refusal_fail_alone_and_leave_nothing() {
    let site = site().await;
    let sim = common::start_sim_scenario("tiny").await;
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(&site, &sim, &["qcow2", "vmdk"], cache.path());
    // A tampered blob (its digest no longer matches) and an artifact whose
    // data (qcow2) is not what it claims (vmdk): Glance refuses the upload.
    let reg = sim.registry();
    assert!(sim.registry_corrupt_blob(&reg.disk_digest("egi_vm_images/almalinux.9", "2023.05.02").unwrap()));
    let mut liar = sim::oci::RegistryImage::new("egi_vm_images/liar", "2023.05.05", "cirros", "0.6");
    liar.disk_format = "vmdk".into();
    sim.registry_push(&liar);
    let r = Syncer::new(&cfg, &site.session).run(&RunOptions::default()).await.unwrap();
    let errs: BTreeMap<&str, &str> = r.errors.iter().map(|e| (e.item.as_str(), e.message.as_str())).collect();
    assert_eq!(errs.len(), 2, "{:?}", r.errors);
    let alma = errs["registry.test egi_vm_images/almalinux.9:2023.05.02"];
    assert!(alma.contains("checksum mismatch") && alma.contains("expected sha256:"), "{alma}");
    let liar_err = errs["registry.test egi_vm_images/liar:2023.05.05"];
    assert!(liar_err.contains("Glance") && liar_err.contains("HTTP 4"), "{liar_err}");
    // The others went on; nothing half-made is left (hidden or not).
    let imgs = glance_images(&site, &cfg.tag).await;
    assert_eq!(
        imgs.keys().cloned().collect::<BTreeSet<_>>(),
        [
            "registry.test egi_vm_images/ubuntu.22.04:2023.05.01".to_string(),
            format!("registry.test {VO1}/tools:2023.04.01")
        ]
        .into()
    );
    assert!(imgs.values().all(|i| i.status == "active" && i.os_hidden == Some(false)));
    assert_eq!(r.created - r.deleted, 2, "everything else created was deleted: {}", r.summary());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_hepix_list_uploads_and_a_tampered_or_foreign_list_uploads_nothing() {
    let site = site().await;
    // The listed URI is fetched anonymously, as from any web server: the
    // sim's registry in its lenient mode serves it so.
    let scenario = sim::scenario::builtin("tiny").unwrap().generate();
    let mut sim_cfg = sim::SimConfig::new(scenario);
    sim_cfg.registry = sim::harbor::RegistryMode::Lenient;
    let sim = sim::start(sim_cfg).await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut pki = pki::Pki::new(dir.path());
    let (dn, signer) = pki.signer("appdb.test");
    let (_, intruder) = pki.signer("intruder.test");
    // The list points at a blob the sim serves; sha512 and size as listed.
    let reg = sim.registry();
    let digest = reg.disk_digest("egi_vm_images/ubuntu.22.04", "2023.05.01").unwrap();
    let blob = reg.blobs[&digest].clone();
    let sha512 = {
        use openssl::sha::sha512;
        sha512(&blob).iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let uri = format!("{}/v2/egi_vm_images/ubuntu.22.04/blobs/{digest}", sim.base_url());
    let far = (chrono::Utc::now() + chrono::Duration::days(30)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let body = serde_json::to_vec(&pki::image_list(
        &dn,
        &far,
        Some(VO2),
        vec![pki::image("img-1", "CentOS 9 [hepix]", &uri, &sha512, blob.len() as u64, "QCOW2")],
    ))
    .unwrap();
    let signed = signer.sign(&body).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let tampered = String::from_utf8(signed.clone()).unwrap().replacen("CentOS 9", "CentOS 8", 1);
    let lists = [
        ("tampered", write("tampered.list", tampered.as_bytes())),
        ("foreign", write("foreign.list", &intruder.sign(&body).unwrap())),
        ("good", write("good.list", &signed)),
    ];
    let mut cfg = config(&site, &sim, &["qcow2"], cache.path());
    cfg.registry = None;
    for (name, path) in &lists {
        cfg.hepix.push(imagesync::config::HepixConfig {
            name: name.to_string(),
            url: path.clone(),
            ca_dir: pki.ca_dir.clone(),
            endorser_dn: dn.clone(),
            endorser_ca: Some(pki::CA_DN.into()),
            vos: vec![],
            images: vec![],
            visibility: Default::default(),
        });
    }
    // Only the good list: the two bad ones are refused, nothing from them.
    let r = Syncer::new(&cfg, &site.session).run(&RunOptions::default()).await.unwrap();
    assert_eq!(r.sources_ok, vec!["good".to_string()]);
    let errs: BTreeMap<&str, &str> = r.errors.iter().map(|e| (e.item.as_str(), e.message.as_str())).collect();
    assert_eq!(errs.len(), 2, "{:?}", r.errors);
    assert!(errs["source tampered"].contains("signature refused"), "{errs:?}");
    assert!(errs["source foreign"].contains("signed by /DC=org/DC=test/O=Hosts/CN=intruder.test"), "{errs:?}");
    let imgs = glance_images(&site, &cfg.tag).await;
    assert_eq!(imgs.len(), 1, "{:?}", imgs.keys());
    let img = &imgs["registry.test CentOS 9 [hepix]"];
    assert_eq!(img.property("image_hash"), Some(format!("sha512:{sha512}").as_str()));
    assert_eq!(img.property("image_list"), Some("good"));
    assert_eq!(img.property("vmcatcher_event_ad_mpuri"), Some("https://appdb.example/store/vm/image/img-1:1/"));
    assert_eq!(img.os_hash_value.as_deref(), Some(sha512.as_str()), "Glance holds exactly the listed bytes");
    assert_eq!(
        member_map(&site, &img.id).await,
        [(site.vo2.clone(), "accepted".to_string())].into(),
        "ad:vo = ops only"
    );
    sim.stop().await;
}
