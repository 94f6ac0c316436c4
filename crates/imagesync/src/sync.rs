//! The reconciler: reads the sources, reads what Glance holds under our tag,
//! plans add / update / metadata / share / unshare / remove per image and VO,
//! and applies the plan one image at a time (an error stays with its image).
//! New data is uploaded private and hidden, checked, and only then shown.

use openstack::Paged;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use openstack::glance::manage::{self, CreateImage, PatchOp};
use openstack::glance::{Image, ListImages, members};
use openstack::{Scope, Session};
use serde_json::{Map, Value, json};

use crate::config::{RegistryKind, SyncConfig, Visibility};
use crate::download::{self, Cache};
use crate::error::SyncError;
use crate::source::SourceImage;
use crate::{harbor, hepix, oci};

/// Property keys fedsite writes besides atrope's.
pub const KEY_PROP: &str = "fedsite_key";
pub const SOURCE_PROP: &str = "fedsite_source";
pub const FORMAT_PROP: &str = "fedsite_format";

/// One step of the plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Upload a new image (converting from `from` to `format` when they differ).
    Add { key: String, name: String, from: String, format: String, vos: Vec<String> },
    /// A new version: upload it, then remove the old image(s).
    Update { key: String, name: String, from: String, format: String, replaces: Vec<String>, vos: Vec<String> },
    /// Same data, other properties / name / visibility.
    Metadata { key: String, image_id: String, name: String, fields: Vec<String> },
    /// Add the VO's project as a member (and accept for it).
    Share { key: String, image_id: String, name: String, vo: String, project: String },
    /// Accept a pending membership for the project.
    Accept { key: String, image_id: String, name: String, vo: String, project: String },
    /// Remove a project that no VO maps to any more.
    Unshare { key: String, image_id: String, name: String, project: String },
    /// Delete (or, failing that, deactivate and hide) an image.
    Remove { image_id: String, name: String, reason: String },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let conv = |from: &str, to: &str| if from == to { to.to_string() } else { format!("{from}→{to}") };
        match self {
            Action::Add { name, from, format, vos, .. } => {
                write!(f, "add      {name} ({}) for {}", conv(from, format), list(vos))
            }
            Action::Update { name, from, format, replaces, vos, .. } => write!(
                f,
                "update   {name} ({}) for {}, replacing {}",
                conv(from, format),
                list(vos),
                replaces.join(", ")
            ),
            Action::Metadata { name, image_id, fields, .. } => {
                write!(f, "metadata {name} ({image_id}): {}", fields.join(", "))
            }
            Action::Share { name, image_id, vo, project, .. } => {
                write!(f, "share    {name} ({image_id}) with {vo} ({project})")
            }
            Action::Accept { name, image_id, vo, project, .. } => {
                write!(f, "accept   {name} ({image_id}) for {vo} ({project})")
            }
            Action::Unshare { name, image_id, project, .. } => {
                write!(f, "unshare  {name} ({image_id}) from {project}")
            }
            Action::Remove { name, image_id, reason } => write!(f, "remove   {name} ({image_id}): {reason}"),
        }
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() { "no VO".into() } else { v.join(", ") }
}

/// A problem with one image (or one source, or one image and VO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    pub item: String,
    pub message: String,
}

/// What a sync did (or, dry, would do), with counters.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub plan: Vec<Action>,
    pub dry_run: bool,
    /// Sources read and trusted.
    pub sources_ok: Vec<String>,
    /// Per-source and per-image errors.
    pub errors: Vec<ItemError>,
    /// Entries a source skipped (no EGI tag, expired, missing fields...).
    pub skipped: Vec<ItemError>,
    pub downloads: u64,
    pub downloaded_bytes: u64,
    pub resumed_downloads: u64,
    pub cache_hits: u64,
    pub conversions: u64,
    pub uploads: u64,
    pub uploaded_bytes: u64,
    pub created: u64,
    pub deleted: u64,
    pub deactivated: u64,
    pub patched: u64,
    pub members_added: u64,
    pub members_accepted: u64,
    pub members_removed: u64,
}

impl Report {
    /// Whether the run changed nothing in Glance.
    pub fn unchanged(&self) -> bool {
        self.created
            + self.uploads
            + self.deleted
            + self.deactivated
            + self.patched
            + self.members_added
            + self.members_accepted
            + self.members_removed
            == 0
    }
    pub fn summary(&self) -> String {
        format!(
            "{} planned, {} errors; downloads {} ({} bytes, {} resumed, {} from cache), conversions {}, uploads {} ({} bytes), created {}, deleted {}, deactivated {}, patched {}, members +{} ~{} -{}",
            self.plan.len(),
            self.errors.len(),
            self.downloads,
            self.downloaded_bytes,
            self.resumed_downloads,
            self.cache_hits,
            self.conversions,
            self.uploads,
            self.uploaded_bytes,
            self.created,
            self.deleted,
            self.deactivated,
            self.patched,
            self.members_added,
            self.members_accepted,
            self.members_removed
        )
    }
    /// Adds what a VO's syncer did (its plan, errors and counters) to this report.
    fn absorb(&mut self, o: Report) {
        self.plan.extend(o.plan);
        self.errors.extend(o.errors);
        for (a, b) in [
            (&mut self.downloads, o.downloads),
            (&mut self.downloaded_bytes, o.downloaded_bytes),
            (&mut self.resumed_downloads, o.resumed_downloads),
            (&mut self.cache_hits, o.cache_hits),
            (&mut self.conversions, o.conversions),
            (&mut self.uploads, o.uploads),
            (&mut self.uploaded_bytes, o.uploaded_bytes),
            (&mut self.created, o.created),
            (&mut self.deleted, o.deleted),
            (&mut self.deactivated, o.deactivated),
            (&mut self.patched, o.patched),
            (&mut self.members_added, o.members_added),
            (&mut self.members_accepted, o.members_accepted),
            (&mut self.members_removed, o.members_removed),
        ] {
            *a += b;
        }
    }

    fn err(&mut self, item: impl Into<String>, e: impl std::fmt::Display) {
        let item = item.into();
        let message = e.to_string();
        tracing::warn!(target: "imagesync", %item, %message, "image sync error");
        self.errors.push(ItemError { item, message });
    }
}

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub dry_run: bool,
    /// "Now" for list and image expiry (default: the clock).
    pub now: Option<DateTime<Utc>>,
}

/// What we want in Glance for one source image.
#[derive(Debug, Clone)]
struct Desired {
    src: SourceImage,
    name: String,
    format: String,
    properties: BTreeMap<String, String>,
    /// VO → project (owner's project left out); only for [`Visibility::Shared`].
    members: BTreeMap<String, String>,
    visibility: Visibility,
}

impl Desired {
    /// Glance's `visibility` for the image once shown.
    fn glance_visibility(&self) -> &'static str {
        match self.visibility {
            Visibility::Shared if self.members.is_empty() => "private",
            v => v.as_str(),
        }
    }
}

fn desired(cfg: &SyncConfig, src: SourceImage, owner: &str) -> Desired {
    let format = if cfg.formats.is_empty() || cfg.formats.contains(&src.disk_format) {
        src.disk_format.clone()
    } else {
        cfg.formats[0].clone()
    };
    let mut p = BTreeMap::new();
    p.insert("vmcatcher_event_dc_description".into(), src.description.clone());
    p.insert("vmcatcher_event_ad_mpuri".into(), src.identifier.clone());
    p.insert("appdb_id".into(), src.identifier.clone());
    p.insert("image_hash".into(), src.digest.to_string());
    p.insert("image_list".into(), src.source.clone());
    p.insert("APPLIANCE_ATTRIBUTES".into(), src.attributes.to_string());
    for (k, v) in [("os_distro", &src.os_distro), ("os_version", &src.os_version), ("architecture", &src.architecture)]
    {
        if let Some(v) = v {
            p.insert(k.into(), v.clone());
        }
    }
    p.insert(KEY_PROP.into(), src.key.clone());
    p.insert(SOURCE_PROP.into(), src.source.clone());
    p.insert(FORMAT_PROP.into(), format.clone());
    let visibility = cfg.visibility_of(&src.source);
    let members = match visibility {
        Visibility::Shared => src
            .vos
            .iter()
            .filter_map(|vo| cfg.vos.get(vo).map(|p| (vo.clone(), p.clone())))
            .filter(|(_, p)| p != owner)
            .collect(),
        _ => BTreeMap::new(),
    };
    Desired { name: format!("{}{}", cfg.name_prefix, src.title), src, format, properties: p, members, visibility }
}

/// Everything a sync needs besides the configuration.
pub struct Syncer<'a> {
    pub cfg: &'a SyncConfig,
    /// Scoped to the project that owns the images.
    pub session: &'a Session,
    pub http: reqwest::Client,
    /// The registry client of the last read, with its tokens (downloads use them); shared
    /// with the per-VO syncers of private images.
    registry: std::sync::Arc<std::sync::OnceLock<oci::Registry>>,
    /// Each VO's own credentials (VO → a session scoped to its project), when the site gives
    /// them: shares are accepted with them, and private images are uploaded with them.
    vo_sessions: BTreeMap<String, &'a Session>,
    /// Which images this syncer handles: all but the private ones (the site's syncer), or the
    /// private images of one VO (a VO's syncer).
    only: Only,
}

/// One wanted image: what it should be, the managed copy to keep (None: upload one),
/// and the copies to remove.
type Work = (Desired, Option<Image>, Vec<Image>);

#[derive(Debug, Clone, PartialEq)]
enum Only {
    NotPrivate,
    PrivateOf(String),
}

impl<'a> Syncer<'a> {
    pub fn new(cfg: &'a SyncConfig, session: &'a Session) -> Syncer<'a> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("fedsite-imagesync/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Syncer {
            cfg,
            session,
            http,
            registry: Default::default(),
            vo_sessions: BTreeMap::new(),
            only: Only::NotPrivate,
        }
    }

    /// With each VO's own credentials (VO → session scoped to the VO's project).
    pub fn with_vo_sessions(mut self, sessions: BTreeMap<String, &'a Session>) -> Syncer<'a> {
        self.vo_sessions = sessions;
        self
    }

    /// Reads every source; a failing source is an error and is left out
    /// (its images in Glance are then left alone).
    pub async fn read_sources(&self, report: &mut Report, now: DateTime<Utc>) -> Vec<SourceImage> {
        let vos: BTreeSet<String> = self.cfg.vos.keys().cloned().collect();
        let mut out = Vec::new();
        if let Some(rc) = &self.cfg.registry {
            let reg = match self.registry.get() {
                Some(r) => Ok(r),
                None => oci::Registry::new(rc, self.http.clone()).map(|r| self.registry.get_or_init(|| r)),
            };
            let listed = match reg {
                Ok(reg) if reg.kind == RegistryKind::Harbor => harbor::list(reg, rc, &vos).await,
                Ok(reg) => oci::list(reg, rc, &vos).await,
                Err(e) => Err(e),
            };
            match listed {
                Ok(l) => {
                    report.sources_ok.push(rc.name.clone());
                    report.skipped.extend(l.skipped.into_iter().map(|(item, message)| ItemError { item, message }));
                    out.extend(l.images);
                }
                Err(e) => report.err(format!("source {}", rc.name), e),
            }
        }
        for hc in &self.cfg.hepix {
            let verified = match hepix::fetch_list(hc, &self.http).await {
                Ok(bytes) => hepix::verify(hc, &bytes, now),
                Err(e) => Err(e),
            };
            match verified {
                Ok(v) => {
                    let l = hepix::images(hc, &v, &vos, now);
                    report.sources_ok.push(hc.name.clone());
                    report.skipped.extend(l.skipped.into_iter().map(|(item, message)| ItemError { item, message }));
                    out.extend(l.images);
                }
                Err(e) => report.err(format!("source {}", hc.name), e),
            }
        }
        out
    }

    /// Images under our tag owned by our project, hidden ones included.
    async fn managed(&self, owner: &str) -> Result<Vec<Image>, SyncError> {
        let mut q =
            ListImages { tags: vec![self.cfg.tag.clone()], owner: Some(owner.to_string()), ..Default::default() };
        let mut all = q.list(self.session).await?;
        q.properties.insert("os_hidden".into(), "true".into());
        let hidden = q.list(self.session).await?;
        let seen: BTreeSet<String> = all.iter().map(|i| i.id.clone()).collect();
        all.extend(hidden.into_iter().filter(|i| !seen.contains(&i.id)));
        all.retain(|i| i.property(KEY_PROP).is_some());
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(all)
    }

    /// Plans, and (unless dry) applies.
    pub async fn run(&self, opts: &RunOptions) -> Result<Report, SyncError> {
        let now = opts.now.unwrap_or_else(Utc::now);
        let mut report = Report { dry_run: opts.dry_run, ..Default::default() };
        if !self.cfg.enabled {
            return Ok(report);
        }
        let sources = self.read_sources(&mut report, now).await;
        self.reconcile(opts, &sources, report).await
    }

    /// Plans (and unless dry, applies) what `sources` want of this syncer's images.
    async fn reconcile(
        &self,
        opts: &RunOptions,
        sources: &[SourceImage],
        mut report: Report,
    ) -> Result<Report, SyncError> {
        let owner = self.session.project_id().await?.ok_or_else(|| {
            SyncError::Config("the cloud credentials must be scoped to the project owning the images".into())
        })?;
        let managed = self.managed(&owner).await?;
        let mut by_key: BTreeMap<String, Vec<Image>> = BTreeMap::new();
        for img in managed {
            by_key.entry(img.property(KEY_PROP).unwrap_or_default().to_string()).or_default().push(img);
        }
        let (wanted, private_vos) = self.wanted(sources, &owner);
        let (mut plan, work) = self.plan(&wanted, &mut by_key).await?;
        let mut withdrawn = Vec::new();
        for imgs in by_key.into_values() {
            for img in imgs {
                let source = img.property(SOURCE_PROP).unwrap_or_default().to_string();
                if report.sources_ok.contains(&source) {
                    plan.push(Action::Remove {
                        image_id: img.id.clone(),
                        name: name_of(&img),
                        reason: format!("withdrawn from {source}"),
                    });
                    withdrawn.push(img);
                }
            }
        }
        report.plan = plan;
        // Private images: one syncer per VO, with that VO's own credentials; also for a VO
        // with credentials and no private image now (its copies of a source that is no
        // longer private are withdrawn).
        if self.only == Only::NotPrivate {
            self.reconcile_private(opts, sources, &owner, private_vos, &mut report).await?;
        }
        if opts.dry_run {
            return Ok(report);
        }
        self.apply(work, withdrawn, &mut report).await;
        Ok(report)
    }

    /// What this syncer keeps, by source key (the first source of a key wins),
    /// and the configured VOs some source makes private.
    fn wanted(&self, sources: &[SourceImage], owner: &str) -> (BTreeMap<String, Desired>, BTreeSet<String>) {
        let mut wanted: BTreeMap<String, Desired> = BTreeMap::new();
        let mut private_vos: BTreeSet<String> = BTreeSet::new();
        for s in sources {
            let visibility = self.cfg.visibility_of(&s.source);
            let mine = match &self.only {
                Only::NotPrivate => visibility != Visibility::Private,
                Only::PrivateOf(vo) => visibility == Visibility::Private && s.vos.contains(vo),
            };
            if visibility == Visibility::Private {
                private_vos.extend(s.vos.iter().filter(|v| self.cfg.vos.contains_key(*v)).cloned());
            }
            if mine && !wanted.contains_key(&s.key) {
                wanted.insert(s.key.clone(), desired(self.cfg, s.clone(), owner));
            }
        }
        (wanted, private_vos)
    }

    /// The actions for the wanted images against the managed ones of the same
    /// key (taken out of `by_key`; what is left there is not wanted), and per
    /// wanted image what to keep (None: upload) and what to remove.
    async fn plan(
        &self,
        wanted: &BTreeMap<String, Desired>,
        by_key: &mut BTreeMap<String, Vec<Image>>,
    ) -> Result<(Vec<Action>, Vec<Work>), SyncError> {
        let mut work: Vec<Work> = Vec::new();
        let mut plan = Vec::new();
        for (key, d) in wanted {
            let existing = by_key.remove(key).unwrap_or_default();
            let (good, stale): (Vec<Image>, Vec<Image>) = existing.into_iter().partition(|i| {
                i.status == "active"
                    && i.property("image_hash") == Some(&d.src.digest.to_string())
                    && i.property(FORMAT_PROP) == Some(&d.format)
            });
            let mut good = good.into_iter();
            let keep = good.next();
            let mut remove: Vec<Image> = good.collect();
            let vos: Vec<String> = d.src.vos.iter().cloned().collect();
            match &keep {
                Some(img) => {
                    let fields = metadata_ops(d, img).into_iter().map(|(f, _)| f).collect::<Vec<_>>();
                    if !fields.is_empty() {
                        plan.push(Action::Metadata {
                            key: key.clone(),
                            image_id: img.id.clone(),
                            name: d.name.clone(),
                            fields,
                        });
                    }
                    plan.extend(self.member_plan(d, img).await?);
                    remove.extend(stale);
                    for r in &remove {
                        plan.push(Action::Remove {
                            image_id: r.id.clone(),
                            name: name_of(r),
                            reason: "superseded".into(),
                        });
                    }
                }
                None => {
                    let replaces: Vec<String> = stale.iter().map(|i| i.id.clone()).collect();
                    if stale.iter().any(|i| i.status == "active") {
                        plan.push(Action::Update {
                            key: key.clone(),
                            name: d.name.clone(),
                            from: d.src.disk_format.clone(),
                            format: d.format.clone(),
                            replaces,
                            vos,
                        });
                    } else {
                        plan.push(Action::Add {
                            key: key.clone(),
                            name: d.name.clone(),
                            from: d.src.disk_format.clone(),
                            format: d.format.clone(),
                            vos,
                        });
                        for r in &stale {
                            plan.push(Action::Remove {
                                image_id: r.id.clone(),
                                name: name_of(r),
                                reason: format!("left over ({})", r.status),
                            });
                        }
                    }
                    remove = stale;
                }
            }
            work.push((d.clone(), keep, remove));
        }
        Ok((plan, work))
    }

    /// Runs one syncer per VO of `private_vos`, and per VO with credentials,
    /// with that VO's own credentials, folding their reports into `report`.
    async fn reconcile_private(
        &self,
        opts: &RunOptions,
        sources: &[SourceImage],
        owner: &str,
        mut private_vos: BTreeSet<String>,
        report: &mut Report,
    ) -> Result<(), SyncError> {
        let has_private = private_vos.clone();
        private_vos.extend(self.vo_sessions.keys().filter(|v| self.cfg.vos.contains_key(*v)).cloned());
        for vo in &private_vos {
            // A VO whose credentials are the sync's own project owns nothing apart from
            // the site's images: its syncer would withdraw them.
            if let Some(s) = self.vo_sessions.get(vo)
                && s.project_id().await?.as_deref() == Some(owner)
            {
                if has_private.contains(vo) {
                    report.err(
                        format!("private images for {vo}"),
                        "the VO's credentials are scoped to the sync's own project: give the VO's own project (images.vo_clouds)",
                    );
                }
                continue;
            }
            let Some(session) = self.vo_sessions.get(vo) else {
                report.err(
                    format!("private images for {vo}"),
                    "a source's visibility is private: the VO's own credentials are needed (images.vo_clouds)",
                );
                continue;
            };
            let sub = Syncer {
                cfg: self.cfg,
                session,
                http: self.http.clone(),
                registry: self.registry.clone(),
                vo_sessions: BTreeMap::new(),
                only: Only::PrivateOf(vo.clone()),
            };
            let fresh = Report { dry_run: opts.dry_run, sources_ok: report.sources_ok.clone(), ..Default::default() };
            match Box::pin(sub.reconcile(opts, sources, fresh)).await {
                Ok(r) => report.absorb(r),
                Err(e) => report.err(format!("private images for {vo}"), e),
            }
        }
        Ok(())
    }

    /// Applies the plan, one image at a time: patches or uploads, members,
    /// then removals; each failure is recorded and the rest goes on.
    async fn apply(&self, work: Vec<Work>, withdrawn: Vec<Image>, report: &mut Report) {
        let cache = Cache::new(&self.cfg.cache_dir);
        let mut scoped: BTreeMap<String, Session> = BTreeMap::new();
        for (d, keep, remove) in work {
            let item = d.name.clone();
            match keep {
                Some(img) => {
                    let ops = metadata_ops(&d, &img);
                    if !ops.is_empty() {
                        let ops: Vec<PatchOp> = ops.into_iter().map(|(_, o)| o).collect();
                        match manage::patch(self.session, &img.id, &ops).await {
                            Ok(_) => report.patched += 1,
                            Err(e) => report.err(&item, format!("updating properties: {e}")),
                        }
                    }
                    self.apply_members(&d, &img.id, &mut scoped, report).await;
                    for r in remove {
                        self.remove(&r, report).await;
                    }
                }
                None => match self.upload(&d, &cache, report).await {
                    Ok(id) => {
                        self.apply_members(&d, &id, &mut scoped, report).await;
                        for r in remove {
                            self.remove(&r, report).await;
                        }
                    }
                    Err(e) => report.err(&item, e),
                },
            }
        }
        for img in withdrawn {
            self.remove(&img, report).await;
        }
    }

    async fn member_plan(&self, d: &Desired, img: &Image) -> Result<Vec<Action>, SyncError> {
        let mut out = Vec::new();
        let current = if img.visibility.as_deref() == Some("shared") {
            members::list(self.session, &img.id).await?
        } else {
            vec![]
        };
        let have: BTreeMap<&str, &str> = current.iter().map(|m| (m.member_id.as_str(), m.status.as_str())).collect();
        for (vo, project) in &d.members {
            let (key, image_id, name, vo, project) =
                (d.src.key.clone(), img.id.clone(), d.name.clone(), vo.clone(), project.clone());
            match have.get(project.as_str()) {
                None => out.push(Action::Share { key, image_id, name, vo, project }),
                Some(&"accepted") => {}
                Some(_) => out.push(Action::Accept { key, image_id, name, vo, project }),
            }
        }
        let wanted: BTreeSet<&str> = d.members.values().map(String::as_str).collect();
        for m in &current {
            if !wanted.contains(m.member_id.as_str()) {
                out.push(Action::Unshare {
                    key: d.src.key.clone(),
                    image_id: img.id.clone(),
                    name: d.name.clone(),
                    project: m.member_id.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Makes the members of `image_id` exactly the VO projects, all accepted.
    async fn apply_members(
        &self,
        d: &Desired,
        image_id: &str,
        scoped: &mut BTreeMap<String, Session>,
        report: &mut Report,
    ) {
        let current = match members::list(self.session, image_id).await {
            Ok(m) => m,
            Err(e) if e.status() == Some(403) || e.status() == Some(404) => vec![],
            Err(e) => {
                report.err(&d.name, format!("listing members: {e}"));
                return;
            }
        };
        let have: BTreeMap<String, String> = current.iter().map(|m| (m.member_id.clone(), m.status.clone())).collect();
        for (vo, project) in &d.members {
            let item = format!("{} for {vo}", d.name);
            let status = have.get(project).cloned();
            if status.is_none() {
                match members::add(self.session, image_id, project).await {
                    Ok(_) => report.members_added += 1,
                    Err(e) => {
                        report.err(&item, format!("sharing with project {project}: {e}"));
                        continue;
                    }
                }
            }
            if status.as_deref() != Some("accepted") {
                if let Some(own) = self.vo_sessions.get(vo) {
                    match members::set_status(own, image_id, project, "accepted").await {
                        Ok(_) => report.members_accepted += 1,
                        Err(e) => report.err(&item, format!("accepting the share with {vo}'s credentials: {e}")),
                    }
                    continue;
                }
                if !scoped.contains_key(project) {
                    match self.session.rescope(Scope::project_id(project.clone())).await {
                        Ok(s) => {
                            scoped.insert(project.clone(), s);
                        }
                        Err(e) => {
                            report.err(&item, format!("authenticating in project {project} to accept the share: {e}"));
                            continue;
                        }
                    }
                }
                match members::set_status(&scoped[project], image_id, project, "accepted").await {
                    Ok(_) => report.members_accepted += 1,
                    Err(e) => report.err(&item, format!("accepting the share in project {project}: {e}")),
                }
            }
        }
        let wanted: BTreeSet<&String> = d.members.values().collect();
        for m in current.iter().filter(|m| !wanted.contains(&m.member_id)) {
            match members::remove(self.session, image_id, &m.member_id).await {
                Ok(()) => report.members_removed += 1,
                Err(e) => report.err(&d.name, format!("unsharing from project {}: {e}", m.member_id)),
            }
        }
    }

    /// Download (or cache), convert (or cache), create hidden + private,
    /// upload, check, then show. A failure deletes what was created.
    async fn upload(&self, d: &Desired, cache: &Cache, report: &mut Report) -> Result<String, SyncError> {
        let (file, fetched) = self.fetch(d, cache).await?;
        if fetched.cached {
            report.cache_hits += 1;
        } else {
            report.downloads += 1;
            report.downloaded_bytes += fetched.bytes;
            report.resumed_downloads += fetched.resumed as u64;
        }
        let data = if d.format == d.src.disk_format {
            file
        } else {
            let out = cache.converted(&d.src.digest, &d.format);
            if !out.exists() {
                convert(&self.cfg.qemu_img, &file, &d.src.disk_format, &out, &d.format).await?;
                report.conversions += 1;
            }
            out
        };
        let size = std::fs::metadata(&data).map_err(|e| SyncError::io(format!("reading {}", data.display()), e))?.len();
        let sha512 = download::file_digest(&data, "sha512")?;
        // A server-side failure (Glance on SQLite answers 500 "database is
        // locked" under load) deletes the half-made image and starts over.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.create_and_upload(d, &data, size, &sha512, report).await {
                Err(SyncError::Glance(e)) if attempt < 3 && transient(&e) => {
                    tracing::info!(target: "imagesync", image = %d.name, error = %e, "retrying the upload");
                    tokio::time::sleep(std::time::Duration::from_millis(500 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// Downloads an image's data, with the registry's authorization when it
    /// comes from the registry; a refused token (401) is renewed once.
    async fn fetch(&self, d: &Desired, cache: &Cache) -> Result<(PathBuf, download::Fetched), SyncError> {
        let reg = self.registry.get().filter(|_| self.cfg.registry.as_ref().is_some_and(|r| r.name == d.src.source));
        let mut renewed = false;
        loop {
            let authorization = match reg {
                Some(r) => r.authorization(&d.src.url).await.map_err(|e| SyncError::Download {
                    url: d.src.url.clone(),
                    message: format!("authorization: {e}"),
                })?,
                None => None,
            };
            let got = download::fetch(
                &self.http,
                cache,
                &d.src.url,
                authorization.as_deref(),
                &d.src.digest,
                d.src.size,
                self.cfg.progress,
                &d.name,
            )
            .await;
            match (got, reg) {
                (Err(SyncError::DownloadStatus { status: 401, .. }), Some(r)) if !renewed => {
                    tracing::info!(target: "imagesync", image = %d.name, "registry token refused: renewing it");
                    r.refused(&d.src.url);
                    renewed = true;
                }
                (other, _) => return other,
            }
        }
    }

    async fn create_and_upload(
        &self,
        d: &Desired,
        data: &Path,
        size: u64,
        sha512: &str,
        report: &mut Report,
    ) -> Result<String, SyncError> {
        let mut props: Map<String, Value> = d.properties.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        props.remove("visibility");
        let created = CreateImage {
            name: d.name.clone(),
            disk_format: d.format.clone(),
            container_format: d.src.container_format.clone(),
            visibility: Some("private".into()),
            os_hidden: Some(true),
            tags: vec![self.cfg.tag.clone()],
            properties: props,
            ..Default::default()
        }
        .create(self.session)
        .await?;
        report.created += 1;
        let id = created.id.clone();
        let result = self.upload_and_show(d, &id, data, size, sha512, report).await;
        if let Err(e) = result {
            match manage::delete(self.session, &id).await {
                Ok(()) => report.deleted += 1,
                Err(de) => report.err(&d.name, format!("deleting the half-made image {id}: {de}")),
            }
            return Err(e);
        }
        Ok(id)
    }

    async fn upload_and_show(
        &self,
        d: &Desired,
        id: &str,
        data: &Path,
        size: u64,
        sha512: &str,
        report: &mut Report,
    ) -> Result<(), SyncError> {
        manage::upload_file(self.session, id, data).await?;
        report.uploads += 1;
        report.uploaded_bytes += size;
        let got = openstack::glance::images::get(self.session, id).await?;
        if got.status != "active" {
            return Err(SyncError::Config(format!("image {id} is {} after the upload, not active", got.status)));
        }
        if got.size != Some(size) {
            return Err(SyncError::Size {
                what: format!("Glance image {id}"),
                expected: size,
                actual: got.size.unwrap_or(0),
            });
        }
        if let (Some("sha512"), Some(v)) = (got.os_hash_algo.as_deref(), got.os_hash_value.as_deref())
            && v != sha512
        {
            return Err(SyncError::Checksum {
                what: format!("Glance image {id}"),
                expected: format!("sha512:{sha512}"),
                actual: format!("sha512:{v}"),
            });
        }
        let visibility = d.glance_visibility();
        manage::patch(
            self.session,
            id,
            &[
                PatchOp::Replace("os_hidden".into(), json!(false)),
                PatchOp::Replace("visibility".into(), json!(visibility)),
            ],
        )
        .await?;
        report.patched += 1;
        Ok(())
    }

    /// Deletes; when Glance refuses (e.g. protected or in use), deactivates and hides.
    async fn remove(&self, img: &Image, report: &mut Report) {
        match manage::delete(self.session, &img.id).await {
            Ok(()) => report.deleted += 1,
            Err(e) => {
                let name = name_of(img);
                let hide = [
                    PatchOp::Replace("visibility".into(), json!("private")),
                    PatchOp::Replace("os_hidden".into(), json!(true)),
                ];
                let deact =
                    if img.status == "active" { manage::deactivate(self.session, &img.id).await } else { Ok(()) };
                match (deact, manage::patch(self.session, &img.id, &hide).await) {
                    (Ok(()), Ok(_)) => {
                        report.deactivated += 1;
                        report.err(&name, format!("could not delete {} ({e}); deactivated and hidden instead", img.id));
                    }
                    (a, b) => report.err(
                        &name,
                        format!(
                            "could not delete {} ({e}) nor hide it ({})",
                            img.id,
                            a.err().map(|x| x.to_string()).or(b.err().map(|x| x.to_string())).unwrap_or_default()
                        ),
                    ),
                }
            }
        }
    }
}

fn transient(e: &openstack::Error) -> bool {
    matches!(e, openstack::Error::Transport { .. }) || e.status().is_some_and(|s| s >= 500 || s == 409)
}

fn name_of(i: &Image) -> String {
    i.name.clone().unwrap_or_else(|| i.id.clone())
}

/// Field name and patch op for each difference between wanted and actual metadata.
fn metadata_ops(d: &Desired, img: &Image) -> Vec<(String, PatchOp)> {
    let mut out = Vec::new();
    if img.name.as_deref() != Some(d.name.as_str()) {
        out.push(("name".into(), PatchOp::Replace("name".into(), json!(d.name))));
    }
    for (k, v) in &d.properties {
        if img.property(k) != Some(v.as_str()) {
            out.push((k.clone(), PatchOp::Add(k.clone(), json!(v))));
        }
    }
    let visibility = d.glance_visibility();
    if img.visibility.as_deref() != Some(visibility) {
        out.push(("visibility".into(), PatchOp::Replace("visibility".into(), json!(visibility))));
    }
    if img.os_hidden == Some(true) {
        out.push(("os_hidden".into(), PatchOp::Replace("os_hidden".into(), json!(false))));
    }
    out
}

/// `qemu-img convert -f <from> -O <to> <in> <out>` (argument vector), into
/// a temporary name renamed into place when it succeeded.
pub async fn convert(qemu_img: &Path, input: &Path, from: &str, output: &Path, to: &str) -> Result<(), SyncError> {
    let err = |m: String| SyncError::Convert { path: input.display().to_string(), format: to.to_string(), message: m };
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir).map_err(|e| SyncError::io(format!("creating {}", dir.display()), e))?;
    }
    let tmp: PathBuf = output.with_extension(format!("{to}.tmp"));
    let out = tokio::process::Command::new(qemu_img)
        .arg("convert")
        .args(["-f", from, "-O", to])
        .arg(input)
        .arg(&tmp)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| err(format!("running {}: {e}", qemu_img.display())))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(format!(
            "{} exited with {}: {}",
            qemu_img.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    std::fs::rename(&tmp, output).map_err(|e| SyncError::io(format!("moving {} into place", tmp.display()), e))?;
    Ok(())
}
