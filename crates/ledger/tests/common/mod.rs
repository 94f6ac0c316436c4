//! Test places for a ledger on each backend: a SQLite file in a temp dir, or a fresh
//! PostgreSQL database (CREATE DATABASE per test, dropped at the end) on the server named by
//! FEDSITE_TEST_PG, which scripts/test (scripts/peers.sh) starts and exports.
#![allow(dead_code)]

use ledger::Ledger;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

pub const PG_ENV: &str = "FEDSITE_TEST_PG";

/// Where one test's ledger lives; dropping it removes it.
pub enum Place {
    Sqlite(tempfile::TempDir, PathBuf),
    Pg(PgDb),
}

impl Place {
    pub fn sqlite() -> Place {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        Place::Sqlite(dir, path)
    }
    pub fn pg() -> Place {
        Place::Pg(PgDb::create())
    }
    /// What `Ledger::open` takes for this place (path or URL).
    pub fn target(&self) -> String {
        match self {
            Place::Sqlite(_, p) => p.display().to_string(),
            Place::Pg(db) => db.url.clone(),
        }
    }
    pub fn open(&self) -> Ledger {
        Ledger::open(self.target()).unwrap()
    }
}

/// The admin URL of the test server; a missing one fails the test (never skips it).
pub fn admin_url() -> String {
    pg_url_from(std::env::var(PG_ENV).ok())
}

pub fn pg_url_from(value: Option<String>) -> String {
    match value {
        Some(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "{PG_ENV} is not set: the PostgreSQL ledger tests need a server. Run them through \
             scripts/test (it starts a throwaway PostgreSQL via scripts/peers.sh and exports \
             {PG_ENV}), or `scripts/peers.sh pg-start && eval \"$(scripts/peers.sh env)\"`."
        ),
    }
}

pub fn admin() -> postgres::Client {
    let url = admin_url();
    postgres::Client::connect(&url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("{PG_ENV}={url}: cannot connect ({e}); run scripts/test"))
}

/// A database of its own for one test, so parallel tests never collide.
pub struct PgDb {
    pub name: String,
    /// postgresql://... URL of this database.
    pub url: String,
}

impl PgDb {
    pub fn create() -> PgDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let admin_url = admin_url();
        let name = format!(
            "ledger_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
        );
        admin().batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let mut url =
            url::Url::parse(&admin_url).unwrap_or_else(|e| panic!("{PG_ENV} must be a postgresql:// URL: {e}"));
        url.set_path(&format!("/{name}"));
        PgDb { name, url: url.to_string() }
    }

    /// A raw connection to this database.
    pub fn raw(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&admin_url(), postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}
