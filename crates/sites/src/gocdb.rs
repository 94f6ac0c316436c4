//! The sites folder against GOCDB's list of `org.openstack.nova` services:
//! each file's GOCDB site and endpoint must be one of them (as the central
//! deployment's own validation checks), and the services no file describes
//! are listed. Fetching GOCDB is the caller's business: this module compares.

use crate::finding::{Finding, Severity};
use crate::folder::Folder;

/// One `org.openstack.nova` service of GOCDB: its site and its URLs (`URL`
/// and every `ENDPOINTS/ENDPOINT/URL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GocdbService {
    /// The GOCDB site name (`SITENAME`).
    pub site: String,
    /// `URL`, then every `ENDPOINTS/ENDPOINT/URL`, as GOCDB writes them.
    pub urls: Vec<String>,
}

/// A GOCDB service no file of the folder describes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Missing {
    /// The GOCDB site name.
    pub site: String,
    /// The service URL no site file's `endpoint` matches.
    pub url: String,
}

/// A URL compared: scheme and host lower-cased, default port dropped, no trailing `/`.
fn normalized(u: &str) -> String {
    match url::Url::parse(u.trim()) {
        Ok(p) => format!(
            "{}://{}{}{}",
            p.scheme(),
            p.host_str().unwrap_or_default().to_ascii_lowercase(),
            p.port().map(|n| format!(":{n}")).unwrap_or_default(),
            p.path().trim_end_matches('/')
        ),
        Err(_) => u.trim().trim_end_matches('/').to_string(),
    }
}

/// Adds to `folder` an error for each file whose GOCDB site has no service
/// in `services` or whose endpoint is none of that site's service URLs (the
/// site is then not usable), and returns the services no file describes.
/// `source` names GOCDB in the reasons.
pub fn compare(folder: &mut Folder, services: &[GocdbService], source: &str) -> Vec<Missing> {
    let mut covered = vec![false; services.len()];
    let mut bad: Vec<(std::path::PathBuf, &'static str, String)> = Vec::new();
    for s in &folder.sites {
        let gocdb = s.site.gocdb.as_str();
        let endpoint = s.site.endpoint.normalized();
        let of_site: Vec<usize> = (0..services.len()).filter(|&i| services[i].site == gocdb).collect();
        if of_site.is_empty() {
            bad.push((s.file.clone(), "gocdb", format!("{gocdb} has no org.openstack.nova service in {source}")));
            continue;
        }
        let hit: Vec<usize> =
            of_site.iter().copied().filter(|&i| services[i].urls.iter().any(|u| normalized(u) == endpoint)).collect();
        if hit.is_empty() {
            let urls: Vec<&str> = of_site.iter().flat_map(|&i| services[i].urls.iter().map(String::as_str)).collect();
            bad.push((
                s.file.clone(),
                "endpoint",
                format!(
                    "{} is not among {gocdb}'s org.openstack.nova URLs in {source}: {}",
                    s.site.endpoint,
                    urls.join(", ")
                ),
            ));
        }
        for i in hit {
            covered[i] = true;
        }
    }
    for (file, key, reason) in bad {
        folder.sites.retain(|s| s.file != file);
        folder.findings.push(Finding { severity: Severity::Error, file, key: Some(key.into()), reason });
    }
    // Each file's findings together (a stable sort keeps their order).
    folder.findings.sort_by(|a, b| a.file.cmp(&b.file));
    services
        .iter()
        .zip(covered)
        .filter(|(_, c)| !c)
        .map(|(s, _)| Missing { site: s.site.clone(), url: s.urls.first().cloned().unwrap_or_default() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::{Options, load};

    #[test]
    fn files_are_checked_against_gocdb_and_the_rest_listed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("A.yaml"), "gocdb: A\nendpoint: https://a.example:5000/v3/\nvos: []\n").unwrap();
        std::fs::write(d.join("B.yaml"), "gocdb: B\nendpoint: https://b.example/v3\nvos: []\n").unwrap();
        std::fs::write(d.join("Z.yaml"), "gocdb: Z\nendpoint: https://z.example/v3\nvos: []\n").unwrap();
        let mut folder = load(d, &Options::default()).unwrap();
        let services = vec![
            GocdbService { site: "A".into(), urls: vec!["https://A.example:5000/v3".into()] },
            GocdbService { site: "B".into(), urls: vec!["https://b.example:5000/v3".into()] },
            GocdbService { site: "C".into(), urls: vec!["https://c.example/v3".into()] },
        ];
        let missing = compare(&mut folder, &services, "GOCDB");
        assert_eq!(
            missing,
            vec![
                Missing { site: "B".into(), url: "https://b.example:5000/v3".into() },
                Missing { site: "C".into(), url: "https://c.example/v3".into() },
            ]
        );
        let errors: Vec<String> = folder.findings.iter().filter(|f| f.is_error()).map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("B.yaml: endpoint: https://b.example/v3 is not among B's"), "{errors:?}");
        assert!(errors[1].contains("Z.yaml: gocdb: Z has no org.openstack.nova service in GOCDB"), "{errors:?}");
        assert_eq!(folder.sites.len(), 1);
    }
}
