//! A simulated OCI registry, the registry.egi.eu content: the distribution
//! API v2 (`/v2/`, `_catalog`, `tags/list`, manifests, blobs with `Range`)
//! holding small real qcow2 disk images the scenario generates (the shared
//! project `egi_vm_images` + one per VO), pushed as EGI's `upload.sh` pushes
//! them (oras 1.2.2 layout). Who may read what is [`crate::harbor`]'s
//! (Harbor mode, the default) or nobody's (lenient mode: anonymous pull).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::SimHandle;
use crate::model::Site;
use crate::state::AppState;

/// The Harbor project holding the images shared with every VO.
pub const SHARED_PROJECT: &str = "egi_vm_images";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The layer media type of EGI's images (`upload.sh`: a compressed qcow2).
pub const DISK_LAYER_MEDIA_TYPE: &str = "application/x-qemu-disk";
/// oras 1.2.2's default `artifactType`.
pub const ARTIFACT_TYPE: &str = "application/vnd.unknown.artifact.v1";

/// Registry content: repositories with their tags, manifests and blobs by digest.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// repository name → tag → manifest digest.
    pub repositories: BTreeMap<String, BTreeMap<String, String>>,
    /// manifest digest → manifest bytes.
    pub manifests: BTreeMap<String, Arc<Vec<u8>>>,
    /// blob digest → bytes.
    pub blobs: BTreeMap<String, Arc<Vec<u8>>>,
    /// `<repository>@<manifest digest>` → push sequence number (Harbor's
    /// `push_time` is derived from it: a later push is a later time).
    pub pushed: BTreeMap<String, u64>,
}

/// One disk image to push: where, and what its annotations say.
#[derive(Debug, Clone)]
pub struct RegistryImage {
    pub repository: String,
    pub tag: String,
    pub os_distro: String,
    pub os_version: String,
    pub description: String,
    /// `org.opencontainers.image.created` (RFC 3339).
    pub created: String,
    /// Virtual disk size in MiB (1..=64).
    pub virtual_mib: u32,
    /// Bytes written at the start of the disk (distinguishes versions).
    pub marker: String,
    /// Whether the manifest carries `eu.egi.cloud.tag` (atrope skips images without).
    pub egi_tag: bool,
    /// `org.openstack.glance.disk_format` of the layer (the data is always qcow2;
    /// another value makes a lying artifact).
    pub disk_format: String,
}

impl RegistryImage {
    pub fn new(repository: &str, tag: &str, os_distro: &str, os_version: &str) -> RegistryImage {
        RegistryImage {
            repository: repository.into(),
            tag: tag.into(),
            os_distro: os_distro.into(),
            os_version: os_version.into(),
            description: format!("EGI {os_distro} {os_version} image"),
            created: "2023-05-01T00:00:00Z".into(),
            virtual_mib: 1,
            marker: format!("{repository}:{tag}"),
            egi_tag: true,
            disk_format: "qcow2".into(),
        }
    }
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A minimal valid qcow2 v3 image (512-byte clusters) of `virtual_size`
/// bytes whose first cluster holds `marker` (the rest reads as zeros).
pub fn qcow2_image(virtual_size: u64, marker: &[u8]) -> Vec<u8> {
    const CL: usize = 512;
    let l2_entries = (CL / 8) as u64;
    let l1_size = virtual_size.div_ceil(CL as u64 * l2_entries).max(1) as u32;
    assert!((l1_size as usize) * 8 <= CL, "qcow2_image: virtual size too large for one L1 cluster");
    // clusters: 0 header, 1 refcount table, 2 refcount block, 3 L1, 4 L2, 5 data
    let mut img = vec![0u8; 6 * CL];
    let put32 = |b: &mut [u8], off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_be_bytes());
    let put64 = |b: &mut [u8], off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_be_bytes());
    img[0..4].copy_from_slice(b"QFI\xfb");
    put32(&mut img, 4, 3); // version
    put32(&mut img, 20, 9); // cluster_bits
    put64(&mut img, 24, virtual_size);
    put32(&mut img, 36, l1_size);
    put64(&mut img, 40, 3 * CL as u64); // l1_table_offset
    put64(&mut img, 48, CL as u64); // refcount_table_offset
    put32(&mut img, 56, 1); // refcount_table_clusters
    put32(&mut img, 96, 4); // refcount_order: 16-bit refcounts
    put32(&mut img, 100, 104); // header_length
    put64(&mut img, CL, 2 * CL as u64); // refcount table → block at cluster 2
    for c in 0..6 {
        img[2 * CL + c * 2..2 * CL + c * 2 + 2].copy_from_slice(&1u16.to_be_bytes());
    }
    const COPIED: u64 = 1 << 63;
    put64(&mut img, 3 * CL, (4 * CL as u64) | COPIED); // L1[0] → L2
    put64(&mut img, 4 * CL, (5 * CL as u64) | COPIED); // L2[0] → data
    let n = marker.len().min(CL);
    img[5 * CL..5 * CL + n].copy_from_slice(&marker[..n]);
    img
}

impl Registry {
    /// Pushes a disk image: its blob, the empty config, the manifest with the
    /// EGI annotations, and the tag (moved if it existed). Returns the manifest digest.
    pub fn push(&mut self, image: &RegistryImage) -> String {
        let disk = qcow2_image(u64::from(image.virtual_mib.clamp(1, 64)) << 20, image.marker.as_bytes());
        let disk_digest = sha256_digest(&disk);
        let config = b"{}".to_vec(); // oras: application/vnd.oci.empty.v1+json, size 2
        let config_digest = sha256_digest(&config);
        let file = format!("{}.qcow2", image.repository.rsplit('/').next().unwrap_or("image"));
        // As upload.sh: the EGI keys on the layer (keyed by the file name),
        // only revision / source / created on the manifest.
        let mut layer = serde_json::Map::new();
        for (k, v) in [
            ("eu.egi.cloud.description", image.description.as_str()),
            ("org.openstack.glance.os_distro", &image.os_distro),
            ("org.openstack.glance.os_version", &image.os_version),
            ("org.openstack.glance.architecture", "x86_64"),
            ("org.openstack.glance.disk_format", &image.disk_format),
            ("org.openstack.glance.container_format", "bare"),
        ] {
            layer.insert(k.into(), json!(v));
        }
        if image.egi_tag {
            layer.insert("eu.egi.cloud.tag".into(), json!(image.tag));
        }
        layer.insert("org.opencontainers.image.title".into(), json!(file));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": {"mediaType": EMPTY_CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len()},
            "layers": [{
                "mediaType": DISK_LAYER_MEDIA_TYPE,
                "digest": disk_digest,
                "size": disk.len(),
                "annotations": layer,
            }],
            "annotations": {
                "org.opencontainers.image.created": image.created,
                "org.opencontainers.image.source": "https://github.com/EGI-Federation/fedcloud-vmi-templates",
                "org.opencontainers.image.revision": image.marker,
            },
        });
        let bytes = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        let digest = sha256_digest(&bytes);
        self.blobs.insert(disk_digest, Arc::new(disk));
        self.blobs.insert(config_digest, Arc::new(config));
        self.manifests.insert(digest.clone(), Arc::new(bytes));
        let seq = self.pushed.values().max().copied().unwrap_or(0) + 1;
        self.pushed.insert(format!("{}@{digest}", image.repository), seq);
        self.repositories.entry(image.repository.clone()).or_default().insert(image.tag.clone(), digest.clone());
        digest
    }

    /// Removes a tag (and the repository when it was the last one).
    pub fn untag(&mut self, repository: &str, tag: &str) -> bool {
        let Some(tags) = self.repositories.get_mut(repository) else { return false };
        let found = tags.remove(tag).is_some();
        if tags.is_empty() {
            self.repositories.remove(repository);
        }
        found
    }

    /// The disk layer digest of `repository:tag`.
    pub fn disk_digest(&self, repository: &str, tag: &str) -> Option<String> {
        let m = self.manifests.get(self.repositories.get(repository)?.get(tag)?)?;
        let v: Value = serde_json::from_slice(m).ok()?;
        v.pointer("/layers/0/digest")?.as_str().map(str::to_string)
    }
}

/// The VO names of the site (project properties `VO`, `egi.VO`, `egi.eu:VO`).
fn site_vos(site: &Site) -> BTreeSet<String> {
    site.projects
        .iter()
        .flat_map(|p| ["VO", "egi.VO", "egi.eu:VO"].into_iter().filter_map(|k| p.extra.get(k)))
        .filter_map(|v| v.as_str())
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .collect()
}

/// The registry every scenario starts with: two shared images, one image
/// per VO in its own project, a pre-release tag (with `-`) and an image
/// without `eu.egi.cloud.tag`.
pub fn generate(site: &Site) -> Registry {
    let mut r = Registry::default();
    r.push(&RegistryImage::new(&format!("{SHARED_PROJECT}/ubuntu.22.04"), "2023.05.01", "ubuntu", "22.04"));
    let mut alma = RegistryImage::new(&format!("{SHARED_PROJECT}/almalinux.9"), "2023.05.02", "almalinux", "9");
    alma.virtual_mib = 2;
    r.push(&alma);
    let mut rc = RegistryImage::new(&format!("{SHARED_PROJECT}/almalinux.9"), "2023.05.20-rc1", "almalinux", "9");
    rc.created = "2023-05-20T00:00:00Z".into();
    r.push(&rc);
    let mut untagged = RegistryImage::new(&format!("{SHARED_PROJECT}/scratch"), "2023.01.01", "debian", "12");
    untagged.egi_tag = false;
    r.push(&untagged);
    for vo in site_vos(site) {
        let repo = format!("{}/tools", vo.to_ascii_lowercase());
        r.push(&RegistryImage::new(&repo, "2023.04.01", "ubuntu", "20.04"));
    }
    r
}

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new().route("/", get(root)).route("/{*rest}", get(dispatch).head(dispatch))
}

pub(crate) fn oci_error(status: StatusCode, code: &str, message: String) -> Response {
    let mut r =
        (status, axum::Json(json!({"errors": [{"code": code, "message": message, "detail": null}]}))).into_response();
    r.headers_mut().insert("docker-distribution-api-version", HeaderValue::from_static("registry/2.0"));
    r
}

pub(crate) async fn root(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(refused) = crate::harbor::v2_gate(&state, "", &headers) {
        return refused;
    }
    let mut r = axum::Json(json!({})).into_response();
    r.headers_mut().insert("docker-distribution-api-version", HeaderValue::from_static("registry/2.0"));
    r
}

/// `?n=&last=` pagination of a sorted list, with the `Link` header of the next page.
fn page(items: Vec<String>, q: &BTreeMap<String, String>, path: &str) -> (Vec<String>, Option<String>) {
    let after: Vec<String> = match q.get("last") {
        Some(last) => items.into_iter().filter(|i| i > last).collect(),
        None => items,
    };
    match q.get("n").and_then(|n| n.parse::<usize>().ok()).filter(|n| *n > 0) {
        Some(n) if after.len() > n => {
            let page: Vec<String> = after[..n].to_vec();
            let link = format!("<{path}?last={}&n={n}>; rel=\"next\"", page[n - 1]);
            (page, Some(link))
        }
        _ => (after, None),
    }
}

fn with_link(body: Value, link: Option<String>) -> Response {
    let mut r = axum::Json(body).into_response();
    if let Some(l) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        r.headers_mut().insert(header::LINK, l);
    }
    r
}

async fn dispatch(
    State(state): State<Arc<AppState>>,
    method: Method,
    Path(rest): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = crate::harbor::v2_gate(&state, &rest, &headers) {
        return refused;
    }
    let site = state.site.read().unwrap();
    let reg = &site.registry;
    if rest == "_catalog" {
        let (repos, link) = page(reg.repositories.keys().cloned().collect(), &q, "/v2/_catalog");
        return with_link(json!({"repositories": repos}), link);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        let Some(tags) = reg.repositories.get(name) else {
            return oci_error(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                format!("repository name not known to registry: {name}"),
            );
        };
        let (tags, link) = page(tags.keys().cloned().collect(), &q, &format!("/v2/{name}/tags/list"));
        return with_link(json!({"name": name, "tags": tags}), link);
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        let Some(tags) = reg.repositories.get(name) else {
            return oci_error(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                format!("repository name not known to registry: {name}"),
            );
        };
        let digest = if reference.starts_with("sha256:") {
            tags.values().find(|d| *d == reference).cloned()
        } else {
            tags.get(reference).cloned()
        };
        let Some(bytes) = digest.as_ref().and_then(|d| reg.manifests.get(d)) else {
            return oci_error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                format!("manifest unknown: {name}:{reference}"),
            );
        };
        let body = if method == Method::HEAD { Body::empty() } else { Body::from(bytes.as_ref().clone()) };
        return Response::builder()
            .header(header::CONTENT_TYPE, MANIFEST_MEDIA_TYPE)
            .header(header::CONTENT_LENGTH, bytes.len())
            .header("docker-content-digest", digest.unwrap_or_default())
            .body(body)
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        if !reg.repositories.contains_key(name) {
            return oci_error(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                format!("repository name not known to registry: {name}"),
            );
        }
        let Some(blob) = reg.blobs.get(digest).cloned() else {
            return oci_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", format!("blob unknown to registry: {digest}"));
        };
        drop(site);
        return blob_response(&method, &headers, digest, &blob);
    }
    oci_error(StatusCode::NOT_FOUND, "UNSUPPORTED", format!("no such registry API: /v2/{rest}"))
}

/// A blob, whole or the `Range: bytes=N-` / `bytes=N-M` part of it.
fn blob_response(method: &Method, headers: &HeaderMap, digest: &str, blob: &[u8]) -> Response {
    let len = blob.len() as u64;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| {
            let start: u64 = a.parse().ok()?;
            let end: u64 =
                if b.is_empty() { len.checked_sub(1)? } else { b.parse::<u64>().ok()?.min(len.saturating_sub(1)) };
            Some((start, end))
        });
    let b = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header("docker-content-digest", digest);
    let resp = match range {
        Some((start, end)) if start <= end && start < len => {
            let part = blob[start as usize..=end as usize].to_vec();
            b.status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))
                .header(header::CONTENT_LENGTH, part.len())
                .body(if method == Method::HEAD { Body::empty() } else { Body::from(part) })
        }
        Some(_) => b
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{len}"))
            .body(Body::empty()),
        None => b.header(header::CONTENT_LENGTH, len).body(if method == Method::HEAD {
            Body::empty()
        } else {
            Body::from(blob.to_vec())
        }),
    };
    resp.unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

impl SimHandle {
    /// The registry host as image references name it (`127.0.0.1:<port>`).
    pub fn registry_host(&self) -> String {
        self.addr.to_string()
    }
    /// A copy of the registry content.
    pub fn registry(&self) -> Registry {
        self.state.site.read().unwrap().registry.clone()
    }
    /// Pushes an image (a new tag, or moves an existing one); returns the manifest digest.
    pub fn registry_push(&self, image: &RegistryImage) -> String {
        self.state.site.write().unwrap().registry.push(image)
    }
    /// Withdraws `repository:tag`; false when it did not exist.
    pub fn registry_untag(&self, repository: &str, tag: &str) -> bool {
        self.state.site.write().unwrap().registry.untag(repository, tag)
    }
    /// Flips one byte of a stored blob (its digest no longer matches).
    pub fn registry_corrupt_blob(&self, digest: &str) -> bool {
        let mut site = self.state.site.write().unwrap();
        match site.registry.blobs.get_mut(digest) {
            Some(b) if !b.is_empty() => {
                let mut v = b.as_ref().clone();
                let i = v.len() / 2;
                v[i] ^= 0xff;
                *b = Arc::new(v);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qcow2_header_fields() {
        let img = qcow2_image(1 << 20, b"hello");
        assert_eq!(&img[0..4], b"QFI\xfb");
        assert_eq!(u64::from_be_bytes(img[24..32].try_into().unwrap()), 1 << 20);
        assert_eq!(img.len(), 3072);
        assert_eq!(&img[2560..2565], b"hello");
    }

    #[test]
    fn pagination_links_the_next_page() {
        let q: BTreeMap<String, String> = [("n".to_string(), "2".to_string())].into();
        let (p, link) = page(vec!["a".into(), "b".into(), "c".into()], &q, "/v2/_catalog");
        assert_eq!(p, vec!["a", "b"]);
        assert_eq!(link.as_deref(), Some("</v2/_catalog?last=b&n=2>; rel=\"next\""));
        let q2: BTreeMap<String, String> = [("n".into(), "2".into()), ("last".into(), "b".into())].into();
        assert_eq!(page(vec!["a".into(), "b".into(), "c".into()], &q2, "/x"), (vec!["c".to_string()], None));
    }
}
