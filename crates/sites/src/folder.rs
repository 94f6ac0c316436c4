//! A sites folder read as it is: every `*.yaml` file parsed on its own (a
//! broken file is an error for that site only), then the checks across files
//! (the same GOCDB site and endpoint twice) and against `vo-mappings.yaml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::LoadError;
use crate::finding::{Finding, Severity};
use crate::site::{Site, parse};
use crate::vomap::VoMappings;

/// One site that was read without error.
#[derive(Debug, Clone)]
pub struct LoadedSite {
    /// The file name without `.yaml`: unique in the folder, the site's key
    /// (two files may describe two endpoints of one GOCDB site).
    pub id: String,
    /// The site file.
    pub file: PathBuf,
    /// What the file says.
    pub site: Site,
}

/// What reading a folder gave.
#[derive(Debug, Clone)]
pub struct Folder {
    /// The folder read (the one holding `sites/` and `vo-mappings.yaml`).
    pub dir: PathBuf,
    /// The `*.yaml` files read.
    pub files: usize,
    /// Every site whose file has no error, in file-name order.
    pub sites: Vec<LoadedSite>,
    /// Every finding, file by file (vo-mappings first).
    pub findings: Vec<Finding>,
}

impl Folder {
    /// How many findings are errors (each keeps its file's site out of `sites`).
    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.is_error()).count()
    }

    /// How many findings are warnings.
    pub fn warnings(&self) -> usize {
        self.findings.len() - self.errors()
    }
}

/// How strictly to read a folder.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Check every VO against these mappings.
    pub vo_mappings: Option<&'a VoMappings>,
    /// A VO missing from `vo_mappings` is an error, not a warning.
    pub strict_vos: bool,
}

struct FileState {
    file: PathBuf,
    id: String,
    site: Option<Site>,
    findings: Vec<Finding>,
}

impl FileState {
    fn add(&mut self, severity: Severity, key: &str, reason: String) {
        self.findings.push(Finding { severity, file: self.file.clone(), key: Some(key.into()), reason });
        if severity == Severity::Error {
            self.site = None;
        }
    }
}

/// Reads every `*.yaml` file of `dir` (not recursively; hidden files skipped).
/// Only a folder that cannot be listed is an `Err`.
pub fn load(dir: &Path, opts: &Options<'_>) -> Result<Folder, LoadError> {
    let listing = std::fs::read_dir(dir).map_err(|source| LoadError::Dir { dir: dir.to_path_buf(), source })?;
    let mut names = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|source| LoadError::Dir { dir: dir.to_path_buf(), source })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_file() {
            continue;
        }
        names.push(name);
    }
    names.sort();
    let mut states = Vec::new();
    let mut other = Vec::new();
    for name in names {
        let file = dir.join(&name);
        if let Some(stem) = name.strip_suffix(".yml") {
            other.push(Finding {
                severity: Severity::Warning,
                file,
                key: None,
                reason: format!("not read: the central deployment reads *.yaml only (rename it {stem}.yaml)"),
            });
            continue;
        }
        let Some(id) = name.strip_suffix(".yaml") else { continue };
        let mut st = FileState { file: file.clone(), id: id.to_string(), site: None, findings: Vec::new() };
        match std::fs::read(&file).map(String::from_utf8) {
            Err(e) => st.findings.push(Finding {
                severity: Severity::Error,
                file,
                key: None,
                reason: format!("cannot read: {e}"),
            }),
            Ok(Err(_)) => st.findings.push(Finding {
                severity: Severity::Error,
                file,
                key: None,
                reason: "not UTF-8 text".into(),
            }),
            Ok(Ok(text)) => {
                let parsed = parse(&text, &file);
                st.site = parsed.site;
                st.findings = parsed.findings;
            }
        }
        states.push(st);
    }
    let files = states.len();
    cross_checks(&mut states);
    if let Some(m) = opts.vo_mappings {
        vo_checks(&mut states, m, opts.strict_vos);
    }
    let sites = states
        .iter()
        .filter_map(|s| Some(LoadedSite { id: s.id.clone(), file: s.file.clone(), site: s.site.clone()? }))
        .collect();
    let mut findings = other;
    findings.extend(states.into_iter().flat_map(|s| s.findings));
    Ok(Folder { dir: dir.to_path_buf(), files, sites, findings })
}

/// One (GOCDB name, endpoint) per file: a second file with both is an
/// error (and is not loaded); one endpoint under two GOCDB names is a warning.
fn cross_checks(states: &mut [FileState]) {
    let mut by_pair: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
    let mut by_endpoint: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
    for st in states.iter_mut() {
        let Some(site) = &st.site else { continue };
        let (gocdb, endpoint) = (site.gocdb.to_string(), site.endpoint.normalized());
        if let Some(first) = by_pair.get(&(gocdb.clone(), endpoint.clone())) {
            let reason = format!(
                "{gocdb} with endpoint {} is already described by {}: one file per GOCDB site and endpoint",
                site.endpoint,
                first.display()
            );
            st.add(Severity::Error, "gocdb", reason);
            continue;
        }
        by_pair.insert((gocdb.clone(), endpoint.clone()), st.file.clone());
        match by_endpoint.get(&endpoint) {
            Some((first, other)) if *other != gocdb => {
                let reason = format!("{endpoint} is also the endpoint of {other} in {}", first.display());
                st.add(Severity::Warning, "endpoint", reason);
            }
            Some(_) => {}
            None => {
                by_endpoint.insert(endpoint, (st.file.clone(), gocdb));
            }
        }
    }
}

fn vo_checks(states: &mut [FileState], m: &VoMappings, strict: bool) {
    let severity = if strict { Severity::Error } else { Severity::Warning };
    let mapfile = m.file().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    for st in states.iter_mut() {
        let Some(site) = st.site.clone() else { continue };
        for (i, vo) in site.vos.iter().enumerate() {
            if m.entitlement(&vo.name).is_none() {
                let reason = format!(
                    "VO {} is not in {mapfile}: no Check-in entitlement maps to it (Keystone mappings cannot be generated)",
                    vo.name
                );
                st.add(severity, &format!("vos[{i}].name"), reason);
            }
        }
    }
}
