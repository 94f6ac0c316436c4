//! What a source offers: one [`SourceImage`] per image slot (a registry
//! repository, a HEPiX list entry) with its current version, where to get
//! it, how to check it, what to call it and which VOs get it.

use std::collections::{BTreeMap, BTreeSet};

use crate::download::ContentDigest;

/// One image as a source wants it in Glance.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceImage {
    /// Stable slot key (`oci:<host>/<repo>`, `hepix:<list id>:<image id>`):
    /// a new version of the same slot replaces the old image.
    pub key: String,
    /// Source name (`image_list` property).
    pub source: String,
    /// Image name in Glance (without the global prefix).
    pub title: String,
    /// Versioned identifier (`appdb_id`, `vmcatcher_event_ad_mpuri`).
    pub identifier: String,
    pub description: String,
    /// Where the data is.
    pub url: String,
    pub digest: ContentDigest,
    pub size: Option<u64>,
    /// Disk format of the data (`qcow2`, `raw`, ...), lowercase.
    pub disk_format: String,
    pub container_format: String,
    pub os_distro: Option<String>,
    pub os_version: Option<String>,
    pub architecture: Option<String>,
    /// `APPLIANCE_ATTRIBUTES`: the OCI annotations or the HEPiX image entry.
    pub attributes: serde_json::Value,
    /// VO names it is shared with.
    pub vos: BTreeSet<String>,
}

/// What one source yielded: images, and per-image problems that did not
/// stop the source (skipped entries).
#[derive(Debug, Clone, Default)]
pub struct SourceListing {
    pub images: Vec<SourceImage>,
    pub skipped: Vec<(String, String)>,
}

/// Extra properties written besides the atrope set.
pub type Properties = BTreeMap<String, String>;
