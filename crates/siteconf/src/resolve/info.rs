//! `fedsite info`'s settings apart from the credentials (`os_cli`): where the document is
//! published in Swift and which account reads the auditor's view, as cloud-info-provider's
//! flags say (docs/cloudinfo.md).

/// A Swift upload of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwiftTarget {
    pub container: String,
    /// `--swift-object`, else `<GOCDB site>.json`.
    pub object: String,
    /// `--swift-cloud`; `None`: the cloud the document was read with.
    pub cloud: Option<String>,
}

/// The upload, when `--swift-container` is given.
pub fn swift_target(
    container: Option<&str>,
    object: Option<&str>,
    cloud: Option<&str>,
    gocdb: &str,
) -> Option<SwiftTarget> {
    container.map(|c| SwiftTarget {
        container: c.to_string(),
        object: object.map_or_else(|| format!("{gocdb}.json"), str::to_string),
        cloud: cloud.map(str::to_string),
    })
}

/// `--auditor-role-cloud`: an empty value is none, as the original reads it.
pub fn auditor_cloud(flag: Option<&str>) -> Option<&str> {
    flag.filter(|s| !s.is_empty())
}
