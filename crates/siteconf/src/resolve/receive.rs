//! `fedsite receive`'s settings: each from its flag, else SSM's receiver.cfg
//! (`--receiver-cfg`), as ssmreceive reads it (docs/delivery.md). fedsite.toml has no receiver
//! section. Owns only that precedence; pulling and storing are `messaging::receiver`'s.

use std::path::{Path, PathBuf};

use messaging::config::ReceiverCfg;

use crate::Error;

/// What `fedsite receive`'s command line says.
#[derive(Debug, Clone, Default)]
pub struct ReceiveFlags<'a> {
    pub subscription: Option<&'a str>,
    pub cert: Option<&'a Path>,
    pub key: Option<&'a Path>,
    pub capath: Option<&'a Path>,
    /// `--queue DIR`.
    pub queue: Option<&'a Path>,
    /// `--records PATH` (wins over `--queue` and `[messaging] path`).
    pub records: Option<&'a Path>,
}

/// Where received messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// The records SQLite file with APEL's semantics (`--records`).
    Records(PathBuf),
    /// A python dirq `Queue` (`--queue`, else `[messaging] path`).
    Queue(PathBuf),
}

/// The resolved settings. The CA directory and the store are checked when the command comes
/// to them ([`ReceivePlan::capath`], [`ReceivePlan::store`]), so that the first missing
/// setting is the one reported, in the order the command needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivePlan {
    /// The AMS subscription (`[messaging] destination`).
    pub subscription: String,
    /// The host certificate and key (`[certificates]`): the AMS token and decryption.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    capath: Option<PathBuf>,
    store: Option<Store>,
}

impl ReceivePlan {
    /// The CAs signer certificates must chain to (`[certificates] capath`).
    pub fn capath(&self) -> Result<&Path, Error> {
        self.capath
            .as_deref()
            .ok_or(Error::Missing { what: "CA to verify signers", sources: "--capath or [certificates] capath" })
    }

    /// Where the messages are stored.
    pub fn store(&self) -> Result<&Store, Error> {
        self.store.as_ref().ok_or(Error::Missing { what: "store", sources: "--queue, --records or [messaging] path" })
    }
}

/// The flags over receiver.cfg's values.
pub fn receive_plan(flags: &ReceiveFlags<'_>, cfg: Option<&ReceiverCfg>) -> Result<ReceivePlan, Error> {
    let subscription = flags
        .subscription
        .map(str::to_string)
        .or_else(|| cfg.map(|c| c.destination.clone()))
        .ok_or(Error::Missing { what: "subscription", sources: "--subscription or [messaging] destination" })?;
    let pick = |flag: Option<&Path>, file: Option<&PathBuf>| flag.map(Path::to_path_buf).or_else(|| file.cloned());
    let store = match (flags.records, flags.queue) {
        (Some(r), _) => Some(Store::Records(r.to_path_buf())),
        (None, Some(q)) => Some(Store::Queue(q.to_path_buf())),
        (None, None) => cfg.map(|c| Store::Queue(c.path.clone())),
    };
    Ok(ReceivePlan {
        subscription,
        cert: pick(flags.cert, cfg.and_then(|c| c.certificate.as_ref())),
        key: pick(flags.key, cfg.and_then(|c| c.key.as_ref())),
        capath: pick(flags.capath, cfg.and_then(|c| c.capath.as_ref())),
        store,
    })
}
