//! `central::plan`: `central run | serve`'s settings from their flags (the only layer besides
//! the sites folder and central's defaults): one test per flag that changes a default, and
//! the errors naming the flag or file.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use central::plan::{self, DEFAULT_RUN_LEDGER, PlanError, TaskFlags};
use central::run::{Secrets, Task};

fn secret_file(dir: &Path, name: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, "s3cret\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// The flags with clap's defaults, an empty sites folder and a private client secret.
fn flags(dir: &Path) -> TaskFlags {
    let sites = dir.join("sites");
    std::fs::create_dir_all(&sites).unwrap();
    TaskFlags {
        sites_dir: sites,
        tasks: ["info", "images", "accounting", "send"].map(String::from).to_vec(),
        max_sites: 8,
        site_timeout_secs: 600,
        checkin_discovery: "https://aai.example/.well-known/openid-configuration".into(),
        client_id: "robot".into(),
        client_secret_file: secret_file(dir, "client-secret", 0o600),
        gocdb_url: "https://gocdb.example/gocdbpi/public/".into(),
        info_dir: dir.join("info"),
        image_cache: dir.join("cache"),
        image_tag: "fedsite".into(),
        image_name_prefix: "registry.egi.eu ".into(),
        spool_dir: dir.join("spool"),
        ams_host: "msg.argo.grnet.gr".into(),
        ams_project: "accounting".into(),
        ..Default::default()
    }
}

#[test]
fn defaults_a_run_ledger_per_site_no_images_no_send_no_secrets_and_the_info_directory_made() {
    let dir = tempfile::tempdir().unwrap();
    let f = flags(dir.path());
    let (tasks, folder) = plan::tasks_and_folder(&f).unwrap();
    assert_eq!(tasks, [Task::Info, Task::Images, Task::Accounting, Task::Send]);
    assert_eq!(folder.files, 0);
    let c = plan::central(&f, DEFAULT_RUN_LEDGER).unwrap();
    let a = c.accounting.as_ref().unwrap();
    assert_eq!((a.ledger.as_str(), a.ams_host.as_deref()), (DEFAULT_RUN_LEDGER, Some("msg.argo.grnet.gr")));
    assert!(a.send.is_none(), "no --ams-cert/--ams-key: the send task is skipped");
    assert!(c.images.is_none() && c.info_swift.is_none());
    assert!(matches!(c.secrets, Secrets::None));
    assert!(f.info_dir.is_dir(), "the info directory is created");
    assert_eq!((c.max_sites, c.site_timeout.as_secs()), (8, 600));
}

#[test]
fn flags_win_over_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let f = TaskFlags {
        accounting_ledger: Some("postgresql://flag/ledger".into()),
        ams_cert: Some("/flag/cert.pem".into()),
        ams_key: Some("/flag/key.pem".into()),
        ams_token_file: Some(secret_file(dir.path(), "ams-token", 0o600)),
        registry_url: Some("https://registry.example".into()),
        registry_user: Some("robot$x".into()),
        secrets_dir: Some(dir.path().join("secrets")),
        info_swift_container: Some("info".into()),
        max_sites: 0,
        site_timeout_secs: 0,
        ..flags(dir.path())
    };
    let c = plan::central(&f, "postgresql://serve/ledger").unwrap();
    let a = c.accounting.as_ref().unwrap();
    assert_eq!(a.ledger, "postgresql://flag/ledger", "--accounting-ledger over serve's --ledger");
    let send = a.send.as_ref().unwrap();
    assert_eq!((send.cert.as_path(), send.token.as_deref()), (Path::new("/flag/cert.pem"), Some("s3cret")));
    let images = c.images.as_ref().unwrap();
    assert_eq!(images.registry.username.as_deref(), Some("robot$x"));
    assert!(matches!(c.secrets, Secrets::Dir(_)));
    let swift = c.info_swift.as_ref().unwrap();
    assert_eq!((swift.container.as_str(), swift.central.is_none()), ("info", true));
    assert_eq!((c.max_sites, c.site_timeout.as_secs()), (1, 1), "at least one site, one second");
    // Without --accounting-ledger, serve's ledger is the accounting's.
    let f = TaskFlags { accounting_ledger: None, ..f };
    assert_eq!(
        plan::central(&f, "postgresql://serve/ledger").unwrap().accounting.unwrap().ledger,
        "postgresql://serve/ledger"
    );
}

#[test]
fn errors_name_the_flag_or_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = TaskFlags { tasks: vec!["info".into(), "bogus".into()], ..flags(dir.path()) };
    let e = plan::tasks_and_folder(&f).unwrap_err();
    assert_eq!(e.to_string(), "--task \"bogus\": not a task (info, images, accounting, send)");
    let f = TaskFlags { sites_dir: dir.path().join("nope"), ..flags(dir.path()) };
    assert!(matches!(plan::tasks_and_folder(&f), Err(PlanError::Folder(_))));
    let f = TaskFlags { client_secret_file: secret_file(dir.path(), "open-secret", 0o644), ..flags(dir.path()) };
    let e = plan::central(&f, DEFAULT_RUN_LEDGER).unwrap_err();
    assert!(e.to_string().contains("open-secret"), "{e}");
    assert_eq!(
        plan::serve_ledger("/var/lib/fedsite/ledger.sqlite").unwrap_err().to_string(),
        "--ledger \"/var/lib/fedsite/ledger.sqlite\": central serve needs a PostgreSQL ledger (postgresql://…)"
    );
    assert_eq!(plan::serve_ledger("postgres://h/db").unwrap(), "postgres://h/db");
}

#[test]
fn a_replica_flag_wins_over_the_host_and_process_name() {
    assert_eq!(plan::replica_name(Some("r1")), "r1");
    let own = plan::replica_name(None);
    assert!(own.ends_with(&format!(":{}", std::process::id())), "{own}");
}
