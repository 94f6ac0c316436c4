//! The EGI catch-all sites folder (`sites/*.yaml` and `vo-mappings.yaml`,
//! as EGI-Federation/fedcloud-catchall-operations keeps them) read as it is,
//! into validated domain types: [`Site`] for one file ([`parse`]), [`Folder`]
//! for a whole folder ([`load`]) with every problem as a [`Finding`] that
//! names the file, the key and the reason.
//!
//! Not for: talking to a site (that is `openstack`), or running anything for
//! it (the `fedsite central` commands build on this crate). The file format
//! and every decision about it are in docs/central.md.

#![warn(missing_docs)]

pub mod error;
pub mod finding;
pub mod folder;
pub mod gocdb;
pub mod site;
pub mod values;
pub mod vomap;

pub use error::{InvalidValue, LoadError};
pub use finding::{Finding, Severity};
pub use folder::{Folder, LoadedSite, Options, load};
pub use gocdb::{GocdbService, Missing};
pub use site::{Accounting, AuthMethod, Destinations, Images, Parsed, RunType, Site, VoAuth, VoShare, parse};
pub use values::{AmsHost, DiskFormat, GocdbName, KeystoneUrl, ProjectId, Protocol, Region, SiteName, Topic, VoName};
pub use vomap::VoMappings;
