//! What the ledger-cache tests (`action_cache.rs`, `server_cache.rs`) share: the in-process
//! sim on `tiny` with an admin token for Nova writes, the accounting session, and a site's
//! ledger and spool in a temporary directory.
#![allow(dead_code)]

use accounting::pipeline::SpoolConfig;
use chrono::{DateTime, TimeZone, Utc};
use sim::state::{TokenInfo, TokenScope};

/// A project-scoped admin token the sim knows, for the tests' Nova writes.
pub const ADMIN_TOKEN: &str = "ledger-cache-test-admin-token";

/// An RFC 3339 time.
pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The sim on the `tiny` scenario, knowing [`ADMIN_TOKEN`].
pub async fn start() -> sim::SimHandle {
    let spec = sim::scenario::builtin("tiny").unwrap();
    let sim = sim::start(sim::SimConfig::new(spec.generate())).await.unwrap();
    sim.insert_token(
        ADMIN_TOKEN,
        TokenInfo {
            user_id: "admin".into(),
            user_name: "admin".into(),
            user_domain_id: "default".into(),
            scope: TokenScope::Project { id: "admin".into(), name: "admin".into(), domain_id: "default".into() },
            roles: vec!["admin".into(), "member".into(), "reader".into()],
            methods: vec!["password".into()],
            issued_at: Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap(),
            expires_at: Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).unwrap(),
        },
    );
    sim
}

/// The accounting account's session (`sim-accounting` of the sim's clouds.yaml).
pub async fn session(sim: &sim::SimHandle) -> openstack::Session {
    let c =
        openstack::CloudConfig::from_clouds_yaml(&sim.clouds_yaml(), None, "sim-accounting", "clouds.yaml").unwrap();
    openstack::Session::connect(&c).await.unwrap()
}

/// A site's ledger and spool, in a directory removed with it.
pub struct Site {
    _dir: tempfile::TempDir,
    pub ledger: std::path::PathBuf,
    pub spool: SpoolConfig,
}

/// A fresh [`Site`].
pub fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let spool = SpoolConfig::new(dir.path().join("spool"));
    Site { ledger: dir.path().join("ledger.sqlite"), spool, _dir: dir }
}
