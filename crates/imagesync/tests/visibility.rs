//! Image sync where the sync's own credentials cannot be rescoped (issue #18): each VO logs
//! in with its own application credential, and a source's `visibility` decides who sees its
//! images: `private` (one copy per VO, in the VO's own project, seen by no other project),
//! `community` and `public` (one image, owned by the sync's project), `shared` (membership,
//! accepted with the VO's own credentials). Against the simulated Harbor and Glance.

use openstack::Paged;
use std::collections::{BTreeMap, BTreeSet};

use imagesync::config::{RegistryConfig, Secret, SyncConfig, Visibility};
use imagesync::sync::{Report, RunOptions, Syncer};
use openstack::glance::{Image, ListImages};
use openstack::{CloudConfig, Credentials, Session};
use sim::harbor::{ROBOT_PASSWORD, ROBOT_USER};

/// The site, its VOs (VO → project) and each VO's application credential (VO → (id, secret)),
/// made for the admin user with `member` on the VO's project, as a site admin hands them out.
struct Site {
    sim: sim::SimHandle,
    vos: BTreeMap<String, String>,
    creds: BTreeMap<String, (String, String)>,
}

async fn start() -> Site {
    let mut scenario = sim::scenario::builtin("tiny").unwrap().generate();
    let mut vos = BTreeMap::new();
    for p in &scenario.site.projects {
        if let Some(vo) = ["VO", "egi.VO", "egi.eu:VO"].iter().find_map(|k| p.extra.get(*k)).and_then(|v| v.as_str())
            && !vo.contains([',', '/'])
        {
            vos.insert(vo.to_string(), p.id.clone());
        }
    }
    assert!(vos.len() >= 2, "two VOs at least, to see one's images hidden from the other: {vos:?}");
    let site = &mut scenario.site;
    let admin = site.users.iter().find(|u| u.name == sim::scenario::ADMIN_USER).unwrap().id.clone();
    let member = site.roles.iter().find(|r| r.name == "member").unwrap().id.clone();
    let mut creds = BTreeMap::new();
    for (i, (vo, p)) in vos.iter().enumerate() {
        site.assignments.push(sim::model::Assignment {
            user_id: admin.clone(),
            role_id: member.clone(),
            scope: sim::model::AssignmentScope::Project(p.clone()),
        });
        let (id, secret) = (format!("{i:032x}"), format!("secret-of-{vo}"));
        site.application_credentials.push(sim::model::ApplicationCredential {
            id: id.clone(),
            name: format!("image-sync-{vo}"),
            secret: secret.clone(),
            user_id: admin.clone(),
            project_id: p.clone(),
            roles: vec!["member".into()],
            expires_at: None,
        });
        creds.insert(vo.clone(), (id, secret));
    }
    Site { sim: sim::start(sim::SimConfig::new(scenario)).await.unwrap(), vos, creds }
}

impl Site {
    /// The sync's own session (the admin, scoped to the admin project).
    async fn session(&self) -> Session {
        let c = CloudConfig::from_clouds_yaml(&self.sim.clouds_yaml(), None, "sim", "clouds.yaml").unwrap();
        Session::connect(&c).await.unwrap()
    }

    /// Each VO's session, from its application credential alone.
    async fn vo_sessions(&self) -> BTreeMap<String, Session> {
        let base = CloudConfig::from_clouds_yaml(&self.sim.clouds_yaml(), None, "sim", "clouds.yaml").unwrap();
        let mut out = BTreeMap::new();
        for (vo, (id, secret)) in &self.creds {
            let mut c = base.clone();
            c.credentials = Credentials::ApplicationCredential {
                id: Some(id.clone()),
                name: None,
                user: None,
                secret: openstack::Secret::new(secret.clone()),
            };
            c.scope = openstack::Scope::Unscoped;
            let s = Session::connect(&c).await.unwrap();
            assert_eq!(s.project_id().await.unwrap().as_deref(), Some(self.vos[vo].as_str()), "{vo}");
            out.insert(vo.clone(), s);
        }
        out
    }
}

fn config(site: &Site, cache: &std::path::Path, visibility: Visibility) -> SyncConfig {
    let mut c = SyncConfig::build(None, None).unwrap();
    c.enabled = true;
    c.formats = vec!["qcow2".into()];
    c.vos = site.vos.clone();
    c.name_prefix = "registry.test ".into();
    c.cache_dir = cache.to_path_buf();
    c.progress = false;
    let mut r = RegistryConfig::new(site.sim.base_url());
    r.username = Some(ROBOT_USER.into());
    r.password = Some(Secret::new(ROBOT_PASSWORD));
    r.visibility = visibility;
    c.registry = Some(r);
    c
}

fn ok(r: &Report) {
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

/// Our images (tag `fedsite`) that `session` lists, by id.
async fn seen_by(session: &Session) -> BTreeMap<String, Image> {
    let images = ListImages { tags: vec!["fedsite".into()], ..Default::default() }.list(session).await.unwrap();
    images.into_iter().map(|i| (i.id.clone(), i)).collect()
}

async fn sync(site: &Site, own: &Session, vo_sessions: &BTreeMap<String, Session>, cfg: &SyncConfig) -> Report {
    let refs: BTreeMap<String, &Session> = vo_sessions.iter().map(|(k, v)| (k.clone(), v)).collect();
    let _ = site;
    Syncer::new(cfg, own).with_vo_sessions(refs).run(&RunOptions::default()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn private_images_live_in_each_vos_project_and_no_other_sees_them() {
    let site = start().await;
    let own = site.session().await;
    let vo_sessions = site.vo_sessions().await;
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(&site, cache.path(), Visibility::Private);
    let r = sync(&site, &own, &vo_sessions, &cfg).await;
    ok(&r);
    assert!(r.created >= 2, "{}", r.summary());
    let owner = own.project_id().await.unwrap().unwrap();
    // Each VO sees its own private copies, owned by its project, and none of another VO's.
    let mut per_vo: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (vo, s) in &vo_sessions {
        let seen = seen_by(s).await;
        let project = &site.vos[vo];
        assert!(!seen.is_empty(), "{vo} sees no image");
        for i in seen.values() {
            assert_eq!(i.owner.as_deref(), Some(project.as_str()), "{vo} sees {:?} of another project", i.name);
            assert_eq!(i.visibility.as_deref(), Some("private"), "{:?}", i.name);
        }
        per_vo.insert(vo.clone(), seen.values().filter_map(|i| i.name.clone()).collect());
    }
    // The shared project's images went to every VO; a VO's own project's image only to it.
    let common: BTreeSet<String> = per_vo
        .values()
        .skip(1)
        .fold(per_vo.values().next().unwrap().clone(), |a, b| a.intersection(b).cloned().collect());
    assert!(!common.is_empty(), "the shared project's images are in every VO's project: {per_vo:?}");
    assert!(per_vo.values().any(|n| n.len() > common.len()), "some VO has an image of its own: {per_vo:?}");
    // Nothing of it is in the sync's own project.
    assert!(seen_by(&own).await.values().all(|i| i.owner.as_deref() != Some(owner.as_str())));
    // A second run changes nothing.
    let again = sync(&site, &own, &vo_sessions, &cfg).await;
    ok(&again);
    assert!(again.unchanged() && again.plan.is_empty(), "{:?}", again.plan);
    // The same source made community: one image per slot in the sync's project, every VO
    // sees it, the private copies are gone.
    let community = config(&site, cache.path(), Visibility::Community);
    let r = sync(&site, &own, &vo_sessions, &community).await;
    ok(&r);
    let mine: Vec<Image> = seen_by(&own).await.into_values().filter(|i| i.owner.as_deref() == Some(&owner)).collect();
    assert!(!mine.is_empty());
    assert!(mine.iter().all(|i| i.visibility.as_deref() == Some("community")), "{mine:?}");
    for (vo, s) in &vo_sessions {
        let project = &site.vos[vo];
        assert!(seen_by(s).await.values().all(|i| i.owner.as_deref() != Some(project.as_str())), "{vo}'s copies gone");
        for i in &mine {
            openstack::glance::images::get(s, &i.id).await.unwrap_or_else(|e| panic!("{vo} reads {}: {e}", i.id));
        }
    }
    site.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn public_images_are_one_public_image_and_shared_ones_are_accepted_with_the_vos_own_credentials() {
    let site = start().await;
    let own = site.session().await;
    let vo_sessions = site.vo_sessions().await;
    let cache = tempfile::tempdir().unwrap();
    let owner = own.project_id().await.unwrap().unwrap();
    let r = sync(&site, &own, &vo_sessions, &config(&site, cache.path(), Visibility::Public)).await;
    ok(&r);
    let mine: Vec<Image> = seen_by(&own).await.into_values().filter(|i| i.owner.as_deref() == Some(&owner)).collect();
    assert!(!mine.is_empty() && mine.iter().all(|i| i.visibility.as_deref() == Some("public")), "{mine:?}");
    // Shared: memberships, accepted through each VO's own session (no rescoping of ours).
    let before = site.sim.requests().len();
    let r = sync(&site, &own, &vo_sessions, &config(&site, cache.path(), Visibility::Shared)).await;
    ok(&r);
    assert!(r.members_accepted > 0, "{}", r.summary());
    let rescoped =
        site.sim.requests()[before..].iter().filter(|q| q.method == "POST" && q.uri.contains("/auth/tokens")).count();
    assert_eq!(rescoped, 0, "no token was asked for: the VOs' own sessions accepted the shares");
    for (vo, s) in &vo_sessions {
        let seen = seen_by(s).await;
        assert!(seen.values().any(|i| i.visibility.as_deref() == Some("shared")), "{vo} sees its shared images");
    }
    site.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn private_images_without_the_vos_credentials_are_an_error_naming_the_setting() {
    let site = start().await;
    let own = site.session().await;
    let cache = tempfile::tempdir().unwrap();
    let r = sync(&site, &own, &BTreeMap::new(), &config(&site, cache.path(), Visibility::Private)).await;
    assert!(r.created == 0, "{}", r.summary());
    assert!(!r.errors.is_empty());
    for e in &r.errors {
        assert!(e.item.starts_with("private images for ") && e.message.contains("images.vo_clouds"), "{e:?}");
    }
    site.sim.stop().await;
}
