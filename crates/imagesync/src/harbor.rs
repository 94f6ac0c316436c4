//! Listing a Harbor as the EGI central deployment (atrope 2.1.0) does:
//! `GET /api/v2.0/projects` (VO-named projects), `…/projects/{p}/repositories`
//! and `…/repositories/{r}/artifacts?with_tag=true…` through the REST API
//! (Basic credentials when configured; `page`/`page_size` on every request,
//! `Link rel="next"` followed, an empty page ends), the tag of each artifact
//! chosen as atrope does, then the manifest pulled through the registry's
//! token flow and its first layer's annotations merged over the artifact's
//! `extra_attrs.annotations`.

use std::collections::{BTreeMap, BTreeSet};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::RegistryConfig;
use crate::download::chain;
use crate::error::SyncError;
use crate::oci::{Registry, RegistryError, error_message, image_from_layer, link_next, single_layer};
use crate::source::SourceListing;

/// Everything but RFC 3986's unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A repository name below its project as Harbor's swagger wants it in a
/// path: URL-encoded twice (`a/b` → `a%252Fb`).
pub fn encode_repository(name: &str) -> String {
    let once = utf8_percent_encode(name, PATH_SEGMENT).to_string();
    utf8_percent_encode(&once, PATH_SEGMENT).to_string()
}

#[derive(Debug, Deserialize)]
struct Project {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Repository {
    /// `project/repo`.
    name: String,
}

#[derive(Debug, Deserialize)]
struct Tag {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct Artifact {
    digest: String,
    #[serde(default)]
    tags: Option<Vec<Tag>>,
    #[serde(default)]
    push_time: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    extra_attrs: Option<Map<String, Value>>,
}

/// The tag atrope takes of an artifact: with `subscribed` set, the first
/// tag listed there (or any tag when the artifact digest is); else with a
/// pattern, the first tag it matches at its start (Python's `re.match`);
/// else the first tag. None: the artifact is not taken.
pub fn select_tag<'a>(
    tags: &'a [String],
    digest: &str,
    subscribed: &[String],
    pattern: Option<&regex::Regex>,
) -> Option<&'a str> {
    let chosen = if !subscribed.is_empty() {
        tags.iter().find(|t| subscribed.contains(t) || subscribed.iter().any(|s| s == digest))
    } else if let Some(p) = pattern {
        tags.iter().find(|t| p.find(t).is_some_and(|m| m.start() == 0))
    } else {
        tags.first()
    };
    chosen.map(String::as_str)
}

/// The REST API client: the API base, Basic credentials, paging.
struct Api<'a> {
    reg: &'a Registry,
    base: String,
    origin: url::Url,
    page_size: u32,
}

impl Api<'_> {
    async fn get_json(&self, url: &str) -> Result<(Value, Option<String>), RegistryError> {
        let mut req = self.reg.http().get(url).header("Accept", "application/json");
        if let Some(h) = self.reg.auth().basic_header() {
            req = req.header("Authorization", h);
        }
        let resp = req.send().await.map_err(|e| RegistryError::Request { url: url.into(), chain: chain(&e) })?;
        let status = resp.status().as_u16();
        let next = resp.headers().get("link").and_then(|v| v.to_str().ok()).and_then(link_next);
        if !(200..300).contains(&status) {
            let body = resp.text().await.unwrap_or_default();
            return Err(RegistryError::Status { url: url.into(), status, message: error_message(&body) });
        }
        let v = resp.json().await.map_err(|source| RegistryError::NotJson { path: url.into(), source })?;
        Ok((v, next))
    }

    /// Every item of a paged list (`path` below the API base, `query` without paging).
    async fn list<T: serde::de::DeserializeOwned>(&self, path: &str, query: &str) -> Result<Vec<T>, RegistryError> {
        let first = format!("{}{path}?page=1&page_size={}{query}", self.base, self.page_size);
        let mut next = Some(first.clone());
        let mut out = Vec::new();
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(RegistryError::TooManyPages { first });
            }
            let (v, link) = self.get_json(&url).await?;
            let items: Vec<T> = serde_json::from_value(v).map_err(|e| RegistryError::Status {
                url: url.clone(),
                status: 200,
                message: format!("not the expected list: {e}"),
            })?;
            if items.is_empty() {
                break;
            }
            out.extend(items);
            // Harbor's links are path-only: joined onto the API's origin.
            next = link.and_then(|l| self.origin.join(&l).ok()).map(|u| u.to_string());
        }
        Ok(out)
    }
}

/// Lists the shared project (for every VO) and each VO-named project found
/// in `/projects` (for that VO): per repository the newest taken artifact
/// (atrope takes every one; a repository is one image slot here). A failed
/// project or repository listing fails the source; a failed artifact list
/// or manifest skips that repository.
pub async fn list(reg: &Registry, cfg: &RegistryConfig, vos: &BTreeSet<String>) -> Result<SourceListing, SyncError> {
    let src_err = |m: String| SyncError::Source { source_name: cfg.name.clone(), message: m };
    let pattern = match cfg.tag_pattern.as_str() {
        "" => None,
        p => Some(regex::Regex::new(p).map_err(|e| src_err(format!("tag_pattern: {e}")))?),
    };
    let base = cfg.api_base();
    let origin = url::Url::parse(&base).map_err(|e| src_err(format!("api_url {base:?}: {e}")))?;
    let api = Api { reg, base, origin, page_size: cfg.page_size };
    let mut projects: BTreeMap<String, BTreeSet<String>> = [(cfg.shared_project.clone(), vos.clone())].into();
    if cfg.vo_projects {
        let by_name: BTreeMap<String, &String> = vos.iter().map(|v| (v.to_ascii_lowercase(), v)).collect();
        let all: Vec<Project> = api.list("/projects", "").await.map_err(|e| src_err(e.to_string()))?;
        for p in all {
            if let Some(vo) = by_name.get(&p.name.to_ascii_lowercase())
                && p.name != cfg.shared_project
            {
                projects.insert(p.name, [(*vo).clone()].into());
            }
        }
    }
    let mut out = SourceListing::default();
    for (project, share) in projects {
        let repos: Vec<Repository> =
            api.list(&format!("/projects/{project}/repositories"), "").await.map_err(|e| src_err(e.to_string()))?;
        for repo in repos {
            let Some((_, short)) = repo.name.split_once('/') else { continue };
            if !cfg.repositories.is_empty() && !cfg.repositories.contains(&repo.name) {
                continue;
            }
            let path = format!("/projects/{project}/repositories/{}/artifacts", encode_repository(short));
            let query = "&with_tag=true&with_scan_overview=false&with_label=false&with_accessory=true";
            let artifacts: Vec<Artifact> = match api.list(&path, query).await {
                Ok(a) => a,
                Err(e) => {
                    out.skipped.push((repo.name.clone(), e.to_string()));
                    continue;
                }
            };
            let mut taken: Vec<(&Artifact, String)> = artifacts
                .iter()
                .filter_map(|a| {
                    let tags: Vec<String> = a.tags.iter().flatten().map(|t| t.name.clone()).collect();
                    select_tag(&tags, &a.digest, &cfg.subscribed_images, pattern.as_ref()).map(|t| (a, t.to_string()))
                })
                .collect();
            // Newest push first (stable: Harbor's order among equals).
            taken.sort_by_key(|t| std::cmp::Reverse(t.0.push_time));
            let Some((artifact, tag)) = taken.first() else {
                let why = if cfg.subscribed_images.is_empty() {
                    format!("no tag matches {}", cfg.tag_pattern)
                } else {
                    "no subscribed tag or digest".to_string()
                };
                out.skipped.push((repo.name.clone(), why));
                continue;
            };
            for (older, t) in &taken[1..] {
                out.skipped.push((
                    format!("{}:{t}", repo.name),
                    format!("an older artifact ({}) than {tag}; one image per repository", older.digest),
                ));
            }
            let item = format!("{}:{tag}", repo.name);
            let (digest, manifest) = match reg.manifest(&repo.name, tag).await {
                Ok(m) => m,
                Err(e) => {
                    out.skipped.push((item, e.to_string()));
                    continue;
                }
            };
            let layer = match single_layer(&manifest) {
                Ok(l) => l,
                Err(e) => {
                    out.skipped.push((item, e.to_string()));
                    continue;
                }
            };
            // atrope: extra_attrs.annotations, the first layer's over them.
            let mut ann: Map<String, Value> = artifact
                .extra_attrs
                .as_ref()
                .and_then(|x| x.get("annotations"))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for (k, v) in &layer.annotations {
                ann.insert(k.clone(), v.clone());
            }
            if digest != artifact.digest {
                out.skipped.push((item, format!("manifest digest {digest} is not the artifact's {}", artifact.digest)));
                continue;
            }
            match image_from_layer(reg, cfg, &repo.name, tag, &digest, layer, ann, share.clone()) {
                Ok(img) => out.images.push(img),
                Err(e) => out.skipped.push((item, e.to_string())),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn repository_names_are_encoded_twice() {
        assert_eq!(encode_repository("a/b"), "a%252Fb");
        assert_eq!(encode_repository("ubuntu.22.04"), "ubuntu.22.04");
        assert_eq!(encode_repository("x y"), "x%2520y");
    }

    #[test]
    fn tag_selection_as_atrope() {
        let egi = regex::Regex::new("^[^-]*$").unwrap();
        let t = tags(&["2024-05-01-abcdef12", "24.04"]);
        assert_eq!(select_tag(&t, "sha256:1", &[], Some(&egi)), Some("24.04"));
        // Only dated tags: the artifact is not taken (no fallback to any tag).
        assert_eq!(select_tag(&tags(&["2024-05-01-abcdef12"]), "sha256:1", &[], Some(&egi)), None);
        // No pattern: the first tag.
        assert_eq!(select_tag(&t, "sha256:1", &[], None), Some("2024-05-01-abcdef12"));
        // Subscribed wins over the pattern; a subscribed digest takes the first tag.
        let sub = tags(&["2024-05-01-abcdef12"]);
        assert_eq!(select_tag(&t, "sha256:1", &sub, Some(&egi)), Some("2024-05-01-abcdef12"));
        assert_eq!(select_tag(&t, "sha256:1", &tags(&["sha256:1"]), Some(&egi)), Some("2024-05-01-abcdef12"));
        assert_eq!(select_tag(&t, "sha256:2", &tags(&["nope"]), None), None);
        // re.match: anchored at the start only.
        let p = regex::Regex::new("2[0-9]").unwrap();
        assert_eq!(select_tag(&tags(&["v24", "24.04"]), "d", &[], Some(&p)), Some("24.04"));
    }
}
