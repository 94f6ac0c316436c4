//! `fedsite central validate`, run as the binary on the twenty real catch-all
//! site files (testdata/catchall-2026-07) and on broken copies of them: each
//! broken variant is named by file, key and reason, and the exit code is 1 on
//! any error, 0 with warnings only.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn real() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/catchall-2026-07")
}

fn validate(dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let o: Output = Command::new(env!("CARGO_BIN_EXE_fedsite"))
        .env_remove("FEDSITE_CONFIG")
        .env_remove("FEDSITE_LOG")
        .args(["central", "validate", "--sites-dir"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn vo_mappings() -> String {
    real().join("vo-mappings.yaml").display().to_string()
}

/// A temporary copy of the real folder with `edit` applied.
fn broken(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(real().join("sites")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    edit(dir.path());
    dir
}

fn replace(dir: &Path, file: &str, from: &str, to: &str) {
    let p = dir.join(file);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{file} has no {from:?}");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

/// The one line of `stdout` for this severity, file and key, whose reason contains `why`.
fn line<'a>(stdout: &'a str, severity: &str, dir: &Path, file: &str, key: &str, why: &str) -> &'a str {
    let prefix = format!("{severity}: {}: {key}", dir.join(file).display());
    stdout
        .lines()
        .find(|l| l.starts_with(&prefix) && l.contains(why))
        .unwrap_or_else(|| panic!("no line {prefix}…{why}… in\n{stdout}"))
}

#[test]
fn the_twenty_real_site_files_are_accepted_with_vo_mappings() {
    let sites = real().join("sites");
    let (code, out, err) = validate(&sites, &["--vo-mappings", &vo_mappings()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.lines().last().unwrap().starts_with("20 sites, 0 errors, "), "{out}");
    assert!(out.lines().all(|l| l.starts_with("warning: ") || l.starts_with("20 sites")), "{out}");
    // A VO the mappings do not list is named with its file and key.
    line(&out, "warning", &sites, "CENI.yaml", "vos[2].name", "VO vo.cnic.cn is not in vo-mappings.yaml");
    // Without the mappings there is nothing to say.
    let (code, out, _) = validate(&sites, &[]);
    assert_eq!((code, out.as_str()), (0, "20 sites, 0 errors, 0 warnings\n"));
    // --strict-vos: those VOs are errors.
    let (code, out, _) = validate(&sites, &["--vo-mappings", &vo_mappings(), "--strict-vos"]);
    assert_eq!(code, 1, "{out}");
    line(&out, "error", &sites, "CENI.yaml", "vos[2].name", "VO vo.cnic.cn is not in vo-mappings.yaml");
}

#[test]
fn each_broken_variant_is_rejected_with_file_key_and_reason() {
    type Edit = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Edit, &str, &str, &str)> = vec![
        (
            "bad YAML",
            Box::new(|d| replace(d, "ELKH-CLOUD.yaml", "images:\n", "images:\n sync: [\n")),
            "ELKH-CLOUD.yaml",
            "line ",
            "not valid YAML",
        ),
        (
            "missing gocdb",
            Box::new(|d| replace(d, "GRNET-OPENSTACK.yaml", "gocdb: GRNET-OPENSTACK\n", "")),
            "GRNET-OPENSTACK.yaml",
            "gocdb",
            "missing: the GOCDB site name is required",
        ),
        (
            "malformed project id",
            Box::new(|d| {
                replace(d, "CLOUDIFIN.yaml", "8a1b196acaa84927b8a33676f7f3be06", "8a1b196a-caa8-4927-b8a3-3676f7f3be06")
            }),
            "CLOUDIFIN.yaml",
            "vos[1].auth.project_id",
            "is not a Keystone project id (32 lowercase hex digits) (Keystone ids have no dashes)",
        ),
        (
            "duplicate GOCDB site and endpoint in two files",
            Box::new(|d| {
                std::fs::copy(d.join("WALTON-CLOUD.yaml"), d.join("WALTON-CLOUD-2.yaml")).unwrap();
            }),
            "WALTON-CLOUD.yaml",
            "gocdb",
            "WALTON-CLOUD with endpoint https://egi.waltoncloud.eu:5000/v3 is already described by",
        ),
        (
            "bad endpoint URL",
            Box::new(|d| {
                replace(
                    d,
                    "CENI.yaml",
                    "https://openstack.ceni.org.cn:5000/v3",
                    "https://openstack.ceni.org.cn:5000/v2.0",
                )
            }),
            "CENI.yaml",
            "endpoint",
            "does not end in /v3",
        ),
        (
            "endpoint without a scheme",
            Box::new(|d| replace(d, "CENI.yaml", "https://openstack.ceni.org.cn:5000/v3", "openstack.ceni.org.cn/v3")),
            "CENI.yaml",
            "endpoint",
            "is not a URL",
        ),
        (
            "unsupported image format",
            Box::new(|d| replace(d, "TR-FC1-ULAKBIM.yaml", "- qcow2", "- qcow3")),
            "TR-FC1-ULAKBIM.yaml",
            "images.formats[0]",
            "\"qcow3\" is not a disk format",
        ),
    ];
    for (what, edit, file, key, why) in cases {
        let dir = broken(edit);
        let (code, out, err) = validate(dir.path(), &["--vo-mappings", &vo_mappings()]);
        assert_eq!(code, 1, "{what}: {out}{err}");
        line(&out, "error", dir.path(), file, key, why);
        let errors = out.lines().filter(|l| l.starts_with("error: ")).count();
        assert_eq!(errors, 1, "{what}: one error only\n{out}");
        assert!(out.lines().last().unwrap().contains(", 1 error, "), "{what}: {out}");
    }
}

#[test]
fn a_vo_unknown_to_vo_mappings_is_named_and_strict_makes_it_an_error() {
    let dir = broken(|d| replace(d, "ELKH-CLOUD.yaml", "- name: ops", "- name: vo.acess.egi.eu"));
    let (code, out, _) = validate(dir.path(), &["--vo-mappings", &vo_mappings(), "--strict-vos"]);
    assert_eq!(code, 1, "{out}");
    line(&out, "error", dir.path(), "ELKH-CLOUD.yaml", "vos[0].name", "VO vo.acess.egi.eu is not in vo-mappings.yaml");
    let (code, out, _) = validate(dir.path(), &["--vo-mappings", &vo_mappings()]);
    assert_eq!(code, 0, "{out}");
    line(
        &out,
        "warning",
        dir.path(),
        "ELKH-CLOUD.yaml",
        "vos[0].name",
        "VO vo.acess.egi.eu is not in vo-mappings.yaml",
    );
}

#[test]
fn an_unknown_key_is_a_warning_only() {
    let dir = broken(|d| {
        replace(
            d,
            "IN2P3-IRES.yaml",
            "      project_id: 2490c27604904357b9e50c5e77aaeedf",
            "      projet_id: 2490c27604904357b9e50c5e77aaeedf",
        )
    });
    let (code, out, err) = validate(dir.path(), &[]);
    assert_eq!(code, 0, "{out}{err}");
    line(&out, "warning", dir.path(), "IN2P3-IRES.yaml", "vos[3].auth.projet_id", "unknown key");
    // The VO has no project left: said too, as a warning.
    line(&out, "warning", dir.path(), "IN2P3-IRES.yaml", "vos[3].auth.project_id", "missing");
    assert!(out.ends_with("20 sites, 0 errors, 2 warnings\n"), "{out}");
}

#[test]
fn one_broken_file_does_not_hide_the_others_findings() {
    let dir = broken(|d| {
        std::fs::write(d.join("CENI.yaml"), "gocdb: CENI\nendpoint: [\n").unwrap();
        replace(d, "CLOUDIFIN.yaml", "gocdb: CLOUDIFIN\n", "");
        replace(d, "IFCA-LCG2.yaml", "c7db08b907ef4f0fae73bdd6587bc79e", "C7DB08B907EF4F0FAE73BDD6587BC79E");
        replace(d, "WALTON-CLOUD.yaml", "images:", "image:");
    });
    let (code, out, _) = validate(dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    line(&out, "error", dir.path(), "CENI.yaml", "line ", "not valid YAML");
    line(&out, "error", dir.path(), "CLOUDIFIN.yaml", "gocdb", "missing");
    line(&out, "error", dir.path(), "IFCA-LCG2.yaml", "vos[0].auth.project_id", "lower case");
    line(&out, "warning", dir.path(), "WALTON-CLOUD.yaml", "image", "unknown key");
    assert!(out.ends_with("20 sites, 3 errors, 1 warning (17 usable)\n"), "{out}");
}

#[test]
fn json_for_tools() {
    let dir = broken(|d| {
        replace(
            d,
            "CENI.yaml",
            "gocdb: CENI\n",
            "gocdb: CENI\naccounting:\n  enabled: true\n  destination: {block: storage-devel}\n",
        )
    });
    let (code, out, err) = validate(dir.path(), &["--json", "--vo-mappings", &vo_mappings()]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["files"], 20);
    assert_eq!(v["usable"], 20);
    assert_eq!(v["errors"], 0);
    assert_eq!(v["warnings"].as_u64(), Some(v["findings"].as_array().unwrap().len() as u64));
    let f = &v["findings"][1];
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["key"], "vos[2].name");
    assert!(f["file"].as_str().unwrap().ends_with("CENI.yaml"));
    let ceni = v["sites"].as_array().unwrap().iter().find(|s| s["id"] == "CENI").unwrap();
    assert_eq!(ceni["accounting"]["enabled"], true);
    assert_eq!(ceni["accounting_site_name"], "CENI");
    assert_eq!(ceni["accounting"]["destination"]["compute"], "eu-egi-cloud-accounting");
    assert_eq!(ceni["accounting"]["destination"]["block"], "storage-devel");
    let creodias = v["sites"].as_array().unwrap().iter().find(|s| s["id"] == "CREODIAS").unwrap();
    assert_eq!(creodias["auth"], "v3applicationcredential");
}

#[test]
fn a_missing_folder_or_mappings_file_fails_with_its_name() {
    let (code, _, err) = validate(Path::new("/nonexistent/sites"), &[]);
    assert_eq!(code, 1);
    assert!(err.contains("reading the sites folder /nonexistent/sites: No such file"), "{err}");
    let (code, _, err) = validate(&real().join("sites"), &["--vo-mappings", "/nonexistent/vo-mappings.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/vo-mappings.yaml: cannot read"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn gocdb_checks_each_file_and_lists_the_services_without_one() {
    let scenario = sim::scenario::builtin("tiny").unwrap().generate();
    let sim = sim::start(sim::SimConfig::new(scenario)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, gocdb: &str, endpoint: &str| {
        std::fs::write(
            d.join(name),
            format!("gocdb: {gocdb}\nendpoint: {endpoint}\nvos:\n  - name: ops\n    auth:\n      project_id: 0123456789abcdef0123456789abcdef\n"),
        )
        .unwrap();
    };
    write("SIM-CLOUD.yaml", "SIM-CLOUD", &format!("{}/identity/v3", sim.base_url()));
    write("OTHER-SITE.yaml", "OTHER-SITE", "https://keystone.other.example/v3");
    write("NOT-IN-GOCDB.yaml", "NOT-IN-GOCDB", "https://k.example/v3");
    let gocdb = format!("{}/gocdb/gocdbpi/public/", sim.base_url());
    let (code, out, err) = tokio::task::spawn_blocking({
        let d = d.to_path_buf();
        move || validate(&d, &["--gocdb", &gocdb])
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{out}{err}");
    line(&out, "warning", d, "SIM-CLOUD.yaml", "endpoint", "plain http");
    line(
        &out,
        "error",
        d,
        "OTHER-SITE.yaml",
        "endpoint",
        "is not among OTHER-SITE's org.openstack.nova URLs in GOCDB: https://keystone.other.example:5000/v3",
    );
    line(&out, "error", d, "NOT-IN-GOCDB.yaml", "gocdb", "NOT-IN-GOCDB has no org.openstack.nova service in GOCDB");
    let missing: Vec<&str> = out.lines().filter(|l| l.starts_with("missing: ")).collect();
    assert_eq!(missing.len(), 2, "{out}");
    assert!(
        missing[0].starts_with("missing: GOCDB site OTHER-SITE (https://keystone.other.example:5000/v3): no file in "),
        "{out}"
    );
    assert!(
        missing[1].starts_with("missing: GOCDB site THIRD-SITE (https://cloud.third.example:5000/v3): no file in "),
        "{out}"
    );
    assert!(out.ends_with("3 sites, 2 errors, 1 warning (1 usable); 2 services in GOCDB without a file\n"), "{out}");
    // GOCDB not answering is an error of the command, naming it.
    let (code, _, err) = validate(d, &["--gocdb", "http://127.0.0.1:9/gocdbpi/public/"]);
    assert_eq!(code, 1);
    assert!(err.contains("reading GOCDB http://127.0.0.1:9/gocdbpi/public/"), "{err}");
}

// ---- central run (issue #15 item 2): every site at once, each isolated ----

mod central_run {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};
    use std::time::{Duration, Instant};

    use serde_json::Value;

    /// `fedsite info SITE` alone, as the central deployment runs cloud-info-provider per site:
    /// the access token in OS_* (v3oidcaccesstoken).
    fn info_alone(site: &Path, auth_url: &str, token: &str, gocdb: &str) -> (Output, Duration) {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_fedsite"))
            .arg("info")
            .arg(site)
            .args(["--gocdb-url", gocdb])
            .env("OS_AUTH_TYPE", "v3oidcaccesstoken")
            .env("OS_AUTH_URL", auth_url)
            .env("OS_ACCESS_TOKEN", token)
            .env("OS_IDENTITY_PROVIDER", "egi.eu")
            .env("OS_PROTOCOL", "openid")
            .env_remove("OS_CLOUD")
            .env_remove("OS_CLIENT_CONFIG_FILE")
            .output()
            .unwrap();
        (out, started.elapsed())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_healthy_site_gets_the_document_fedsite_info_gives_it_alone_and_broken_ones_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let tiny = || sim::scenario::builtin("tiny").unwrap().generate();
        let a = sim::start(sim::SimConfig::new(tiny())).await.unwrap();
        // B answers slowly: 100 ms on every request.
        let mut cb = sim::SimConfig::new(tiny());
        for s in [
            sim::Service::Identity,
            sim::Service::Compute,
            sim::Service::Image,
            sim::Service::Volume,
            sim::Service::Network,
        ] {
            cb.profiles.insert(s, sim::ServiceProfile { latency_ms: 100, ..Default::default() });
        }
        let b = sim::start(cb).await.unwrap();
        let issuer = format!("{}/identity/oidc", a.base_url());
        let project = tiny().site.projects.into_iter().find(|p| p.extra.contains_key("VO")).unwrap();
        let vo = project.extra["VO"].as_str().unwrap().to_string();
        for s in [&a, &b] {
            s.federate_egi(&issuer, &vo, &project.name).await.unwrap();
        }
        // C is down; D accepts connections and never answers.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let hung_port = hung.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for c in hung.incoming() {
                held.push(c);
            }
        });
        let sites_dir = dir.path().join("sites");
        std::fs::create_dir_all(&sites_dir).unwrap();
        let site_file = |id: &str, endpoint: &str| -> PathBuf {
            let p = sites_dir.join(format!("{id}.yaml"));
            std::fs::write(
                &p,
                format!(
                    "gocdb: {id}\nendpoint: {endpoint}\nvos:\n  - name: {vo}\n    auth:\n      project_id: \"{}\"\n",
                    project.id
                ),
            )
            .unwrap();
            p
        };
        let fa = site_file("SITE-A", a.auth_url().trim_end_matches('/'));
        let fb = site_file("SITE-B", b.auth_url().trim_end_matches('/'));
        site_file("SITE-C", &format!("http://127.0.0.1:{closed}/identity/v3"));
        site_file("SITE-D", &format!("http://127.0.0.1:{hung_port}/identity/v3"));
        let secret = dir.path().join("client-secret");
        std::fs::write(&secret, "secret\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let gocdb = format!("{}/gocdb/gocdbpi/public/", a.base_url());
        let out_dir = dir.path().join("info");
        let timeout = 8u64;

        let started = Instant::now();
        let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"))
            .args(["central", "run", "--task", "info", "--json", "--client-id", "fedsite-sim"])
            .arg("--sites-dir")
            .arg(&sites_dir)
            .arg("--checkin-discovery")
            .arg(format!("{issuer}/.well-known/openid-configuration"))
            .arg("--client-secret-file")
            .arg(&secret)
            .args(["--gocdb-url", &gocdb, "--site-timeout", &timeout.to_string()])
            .arg("--info-dir")
            .arg(&out_dir)
            .output()
            .await
            .unwrap();
        let wall = started.elapsed();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert_eq!(
            run.status.code(),
            Some(1),
            "broken sites make the run fail: {stdout}\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let v: Value = serde_json::from_str(&stdout).unwrap();
        let row = |site: &str| {
            v["results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["site"] == site)
                .cloned()
                .unwrap_or_else(|| panic!("{site}: {v}"))
        };
        for s in ["SITE-A", "SITE-B"] {
            assert_eq!(row(s)["outcome"], "ok", "{}", row(s));
        }
        assert_eq!(row("SITE-C")["outcome"], "failed", "{}", row("SITE-C"));
        assert!(row("SITE-C")["detail"].as_str().unwrap().contains("every VO share failed"), "{}", row("SITE-C"));
        assert!(
            row("SITE-C")["detail"].as_str().unwrap().contains(&format!("127.0.0.1:{closed}")),
            "the failing request is named: {}",
            row("SITE-C")
        );
        assert_eq!(row("SITE-D")["outcome"], "failed");
        assert!(row("SITE-D")["detail"].as_str().unwrap().contains("site timeout"), "{}", row("SITE-D"));
        assert!(!stdout.contains("eyJ"), "no token in the output");

        // Each healthy site's document, byte for byte, is what `fedsite info` gives it alone.
        let token = a.oidc_access_token().await.unwrap();
        let mut slowest = Duration::ZERO;
        for (id, file, sim) in [("SITE-A", &fa, &a), ("SITE-B", &fb, &b)] {
            let (file, auth, token, gocdb) = (file.clone(), sim.auth_url(), token.clone(), gocdb.clone());
            let (alone, took) =
                tokio::task::spawn_blocking(move || info_alone(&file, &auth, &token, &gocdb)).await.unwrap();
            assert!(alone.status.success(), "{}", String::from_utf8_lossy(&alone.stderr));
            slowest = slowest.max(took);
            let central = std::fs::read(out_dir.join(format!("{id}.json"))).unwrap();
            assert_eq!(
                crate::common::mask_creation_time(&central),
                crate::common::mask_creation_time(&alone.stdout),
                "{id}"
            );
        }
        // Nobody waited for the broken sites beyond the hung one's timeout.
        let bound = slowest.mul_f64(1.5) + Duration::from_secs(timeout) + Duration::from_secs(3);
        assert!(wall < bound, "central run took {wall:?}, bound {bound:?}");
        a.stop().await;
        b.stop().await;
    }
}

/// The simulated federation generated from the twenty real site files (one simulated site
/// per file, the Check-in robot a member of every VO, CREODIAS's application credentials in
/// a secrets directory): the folder it writes passes `central validate` and one
/// `central run --task info` publishes a document for every site, every VO share included.
mod simulated_federation {
    use std::path::Path;

    use serde_json::Value;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_federation_of_the_real_files_runs_clean() {
        let dir = tempfile::tempdir().unwrap();
        let fed = sim::federation::start(sim::federation::FederationConfig {
            sites_dir: super::real().join("sites"),
            count: 0,
            out_dir: dir.path().join("federation"),
            template: sim::scenario::builtin("tiny").unwrap().generate(),
            profiles: Default::default(),
            faults: Default::default(),
        })
        .await
        .unwrap();
        assert_eq!(fed.sites.len(), 20);
        let (code, out, err) = super::validate(&fed.sites_dir, &[]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("20 sites, 0 errors"), "{out}");

        let secret = dir.path().join("client-secret");
        std::fs::write(&secret, format!("{}\n", sim::OIDC_CLIENT_SECRET)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let info_dir = dir.path().join("info");
        let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"))
            .args(["central", "run", "--task", "info", "--json", "--client-id", sim::OIDC_CLIENT_ID])
            .arg("--sites-dir")
            .arg(&fed.sites_dir)
            .arg("--secrets-dir")
            .arg(&fed.secrets_dir)
            .arg("--checkin-discovery")
            .arg(format!("{}/.well-known/openid-configuration", fed.issuer()))
            .arg("--client-secret-file")
            .arg(&secret)
            .args(["--gocdb-url", &fed.gocdb_url(), "--site-timeout", "120"])
            .arg("--info-dir")
            .arg(&info_dir)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
        let v: Value = serde_json::from_str(&stdout).unwrap();
        let rows = v["results"].as_array().unwrap();
        assert_eq!(rows.len(), 20, "{v}");
        for site in &fed.sites {
            let row = rows.iter().find(|r| r["site"] == site.id.as_str()).unwrap_or_else(|| panic!("{}: {v}", site.id));
            assert_eq!(row["outcome"], "ok", "{row}");
            assert!(row["failed_vos"].as_array().is_none_or(|f| f.is_empty()), "{row}");
            // The document describes every VO share of the site's file.
            let doc: Value =
                serde_json::from_slice(&std::fs::read(info_dir.join(format!("{}.json", site.id))).unwrap()).unwrap();
            let text = doc.to_string();
            for (vo, _) in &site.shares {
                assert!(text.contains(&format!("\"{vo}\"")), "{}: no share of {vo}", site.id);
            }
        }
        assert!(
            Path::new(&fed.secrets_dir)
                .join(fed.sites.iter().find(|s| s.id == "CREODIAS").unwrap().handle.addr().ip().to_string())
                .is_dir()
        );
        fed.stop().await;
    }
}

/// The images task over a simulated federation of three real site files (two with OIDC, one
/// with application credentials): every site's Glance gets the registry's images in its ops
/// VO's project, shared with (and accepted by) each other VO's project; a second run changes
/// nothing.
mod central_images {
    use std::collections::BTreeSet;

    use openstack::Paged;
    use serde_json::Value;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_site_gets_the_images_shared_with_its_vos_and_a_second_run_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("real");
        std::fs::create_dir_all(&folder).unwrap();
        for f in ["CENI.yaml", "CREODIAS.yaml", "ELKH-CLOUD.yaml"] {
            std::fs::copy(super::real().join("sites").join(f), folder.join(f)).unwrap();
        }
        let fed = sim::federation::start(sim::federation::FederationConfig {
            sites_dir: folder,
            count: 0,
            out_dir: dir.path().join("federation"),
            template: sim::scenario::builtin("tiny").unwrap().generate(),
            profiles: Default::default(),
            faults: Default::default(),
        })
        .await
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        let private = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            p
        };
        let secret = private("client-secret", &format!("{}\n", sim::OIDC_CLIENT_SECRET));
        let robot = private("robot-password", &format!("{}\n", sim::harbor::ROBOT_PASSWORD));
        let run = || {
            let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"));
            c.args(["central", "run", "--task", "images", "--json", "--client-id", sim::OIDC_CLIENT_ID])
                .arg("--sites-dir")
                .arg(&fed.sites_dir)
                .arg("--secrets-dir")
                .arg(&fed.secrets_dir)
                .arg("--checkin-discovery")
                .arg(format!("{}/.well-known/openid-configuration", fed.issuer()))
                .arg("--client-secret-file")
                .arg(&secret)
                .args(["--registry-url", fed.checkin.base_url(), "--registry-user", sim::harbor::ROBOT_USER])
                .arg("--registry-password-file")
                .arg(&robot)
                .arg("--image-cache")
                .arg(dir.path().join("cache"))
                .args(["--site-timeout", "120"]);
            c
        };
        let rows = |out: &std::process::Output| -> Vec<Value> {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
            let v: Value = serde_json::from_str(&stdout).unwrap();
            v["results"].as_array().unwrap().clone()
        };
        let first = rows(&run().output().await.unwrap());
        assert_eq!(first.len(), 3, "{first:?}");
        for site in &fed.sites {
            let row = first.iter().find(|r| r["site"] == site.id.as_str()).unwrap();
            assert_eq!(row["outcome"], "ok", "{row}");
            // The site's Glance, as its admin sees it.
            let c = openstack::CloudConfig::from_clouds_yaml(&site.handle.clouds_yaml(), None, "sim", "clouds.yaml")
                .unwrap();
            let admin = openstack::Session::connect(&c).await.unwrap();
            let images = openstack::glance::ListImages { tags: vec!["fedsite".into()], ..Default::default() }
                .list(&admin)
                .await
                .unwrap();
            assert!(!images.is_empty(), "{}: no image synced: {row}", site.id);
            let ops = site.shares.iter().find(|(vo, _)| vo == "ops").map(|(_, p)| p.clone()).unwrap();
            let others: BTreeSet<&String> = site.shares.iter().filter(|(vo, _)| vo != "ops").map(|(_, p)| p).collect();
            for i in &images {
                assert_eq!(
                    i.owner.as_deref(),
                    Some(ops.as_str()),
                    "{}: {:?} is in the ops VO's project",
                    site.id,
                    i.name
                );
                let members = match i.visibility.as_deref() {
                    Some("shared") => openstack::glance::members::list(&admin, &i.id).await.unwrap(),
                    _ => Vec::new(),
                };
                let accepted: BTreeSet<&String> =
                    members.iter().filter(|m| m.status == "accepted").map(|m| &m.member_id).collect();
                // The shared Harbor project's images go to every VO; a VO-named project's to that VO.
                let name = i.name.clone().unwrap_or_default();
                let harbor_project = name.trim_start_matches("registry.egi.eu ").split('/').next().unwrap().to_string();
                let want: BTreeSet<&String> = if harbor_project == sim::oci::SHARED_PROJECT {
                    others.clone()
                } else {
                    site.shares.iter().filter(|(vo, _)| *vo == harbor_project && vo != "ops").map(|(_, p)| p).collect()
                };
                assert_eq!(accepted, want, "{}: {name} shared with, and accepted by, its VOs", site.id);
            }
        }
        let second = rows(&run().output().await.unwrap());
        for r in &second {
            assert!(r["detail"].as_str().unwrap().starts_with("0 planned, 0 errors"), "{r}");
        }
        fed.stop().await;
    }
}

/// More simulated sites than files: every copy gets its own file (the real folder has
/// `fedcloud.srce.hr.yaml` and `fedcloud.srce.hr-2.yaml`, so a copy must not be named `-2`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federation_larger_than_the_folder_gives_every_site_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let fed = sim::federation::start(sim::federation::FederationConfig {
        sites_dir: real().join("sites"),
        count: 45,
        out_dir: dir.path().join("federation"),
        template: sim::scenario::builtin("tiny").unwrap().generate(),
        profiles: Default::default(),
        faults: Default::default(),
    })
    .await
    .unwrap();
    assert_eq!(fed.sites.len(), 45);
    assert_eq!(std::fs::read_dir(&fed.sites_dir).unwrap().count(), 45, "one file per site");
    let ids: std::collections::BTreeSet<&str> = fed.sites.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), 45);
    assert!(ids.contains("fedcloud.srce.hr-2") && ids.contains("fedcloud.srce.hr-copy2"), "{ids:?}");
    fed.stop().await;
}

/// Issue #15's federation test: thirty simulated sites (the twenty real files and ten
/// copies), four broken on purpose — down, 403 on one VO's project, 20× slower than the
/// others under a site timeout it exceeds, Swift refusing writes — and four opted in to
/// central accounting (two healthy, the 403 one, the down one). One
/// `central run --task info,images,accounting,send` publishing to each site's own Swift and
/// sending to one simulated AMS: every healthy site's
/// document is in its Swift and byte-equal (CreationTime masked) to `fedsite info` run alone on
/// it, every healthy site has the images, each broken site's row names its cause, the 403
/// site's other VOs are published and accept the images, and the exit code is the worst's;
/// the opted-in sites' records reach AMS each once on its run type's topic (storage records
/// only on the storage topic), the 403 site's without its refused VO, the down site's row
/// names its endpoint, the other sites' accounting is skipped.
mod thirty_sites {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use futures::StreamExt as _;
    use openstack::Paged;
    use serde_json::Value;
    use sim::federation::SiteFault;

    const DOWN: &str = "GRNET-OPENSTACK";
    const FORBIDDEN: &str = "WALTON-CLOUD";
    const FORBIDDEN_VO: &str = "vo.imagine-ai.eu";
    const SLOW: &str = "IN2P3-IRES";
    const READ_ONLY: &str = "ILIFU-UCT";
    /// Every site's latency; the slow site's is 20× this (400 ms a request).
    const LATENCY_MS: u64 = 20;
    /// The site timeout (each task's): beyond any healthy site's task on a loaded 2-core
    /// machine (CESNET-MCCG2's 22 VO shares one after another in a debug build took up to 15 s
    /// under a load of 10 with no latency), far below the slow site's (its info alone, fourteen
    /// shares, about 110 requests one after another: 45 s).
    const TIMEOUT_S: u64 = 25;
    const CONTAINER: &str = "cloud-info";
    /// The sites that opt in to central accounting besides the down one: two healthy sites
    /// (CREODIAS logs in with application credentials) and the 403 site.
    const ACCOUNTED: [&str; 3] = ["CENI", "CREODIAS", FORBIDDEN];
    const STORAGE_TOPIC: &str = "eu-egi-storage-accounting";

    /// `fedsite info SITE` alone, the Check-in token in OS_* (as cloud-info-provider is run
    /// per site by the central deployment).
    async fn info_alone(file: &Path, token: &str, gocdb: &str) -> std::process::Output {
        let text = std::fs::read_to_string(file).unwrap();
        let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).map(|v| v.trim().to_string());
        tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"))
            .arg("info")
            .arg(file)
            .args(["--gocdb-url", gocdb])
            .env("OS_AUTH_TYPE", "v3oidcaccesstoken")
            .env("OS_AUTH_URL", field("endpoint: ").unwrap())
            .env("OS_ACCESS_TOKEN", token)
            .env("OS_IDENTITY_PROVIDER", "egi.eu")
            .env("OS_PROTOCOL", field("protocol: ").unwrap_or_else(|| "openid".into()))
            .env_remove("OS_CLOUD")
            .env_remove("OS_CLIENT_CONFIG_FILE")
            .env_remove("FEDSITE_CONFIG")
            .output()
            .await
            .unwrap()
    }

    /// The site file as `fedsite info` reads it alone: an `auth: v3applicationcredential` site's
    /// with each VO's application credential (`<secrets>/<keystone host>/<vo>`) in `vos[].auth`;
    /// any other site's as it is.
    fn with_app_credentials(site: &sim::federation::FederatedSite, secrets: &Path, out: &Path) -> std::path::PathBuf {
        let text = std::fs::read_to_string(&site.file).unwrap();
        if !text.contains("v3applicationcredential") {
            return site.file.clone();
        }
        let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let host = site.handle.addr().ip().to_string();
        for vo in doc["vos"].as_sequence_mut().unwrap() {
            let name = vo["name"].as_str().unwrap().to_string();
            let secret = std::fs::read_to_string(secrets.join(&host).join(&name)).unwrap();
            for line in secret.lines() {
                let (k, v) = line.split_once(" = ").unwrap();
                vo["auth"][k] = serde_yaml::Value::String(v.to_string());
            }
        }
        let path = out.join(format!("{}.yaml", site.id));
        crate::common::write_private(&path, serde_yaml::to_string(&doc).unwrap());
        path
    }

    /// The site's admin session (the simulator's well-known `sim` cloud).
    async fn admin(site: &sim::federation::FederatedSite) -> openstack::Session {
        let c =
            openstack::CloudConfig::from_clouds_yaml(&site.handle.clouds_yaml(), None, "sim", "clouds.yaml").unwrap();
        openstack::Session::connect(&c).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_run_over_thirty_sites_four_broken_does_every_healthy_site_and_names_each_cause() {
        let dir = tempfile::tempdir().unwrap();
        let fed = sim::federation::start(sim::federation::FederationConfig {
            sites_dir: super::real().join("sites"),
            count: 30,
            out_dir: dir.path().join("federation"),
            // Anchored to now: the accounting task extracts from last month to now.
            template: sim::scenario::builtin("tiny").unwrap().generate().anchored_at(chrono::Utc::now()),
            profiles: sim::Service::ALL
                .into_iter()
                .map(|s| (s, sim::ServiceProfile { latency_ms: LATENCY_MS, ..Default::default() }))
                .collect(),
            faults: BTreeMap::from([
                (DOWN.to_string(), vec![SiteFault::Down]),
                (FORBIDDEN.to_string(), vec![SiteFault::ForbiddenVo(FORBIDDEN_VO.into())]),
                (SLOW.to_string(), vec![SiteFault::Slow(20)]),
                (READ_ONLY.to_string(), vec![SiteFault::SwiftReadOnly]),
            ]),
        })
        .await
        .unwrap();
        assert_eq!(fed.sites.len(), 30);
        let private = |name: &str, text: &str| {
            let p = dir.path().join(name);
            crate::common::write_private(&p, text);
            p
        };
        let secret = private("client-secret", &format!("{}\n", sim::OIDC_CLIENT_SECRET));
        let robot = private("robot-password", &format!("{}\n", sim::harbor::ROBOT_PASSWORD));
        let info_dir = dir.path().join("info");
        // One AMS with both accounting topics; four sites opt in to central accounting: two
        // healthy ones (one with application credentials), the 403 site and the down one.
        let ams = {
            let mut cfg = sim::SimConfig::new(sim::scenario::builtin("tiny").unwrap().generate());
            let mut a = sim::AmsConfig::new(dir.path().join("ams"));
            a.topics.push(sim::ams::AmsTopicSpec { name: STORAGE_TOPIC.into(), acl: vec!["sender".into()] });
            cfg.ams = Some(a);
            sim::start(cfg).await.unwrap()
        };
        let a = ams.ams().unwrap();
        let ams_host = a.url().trim_start_matches("https://").to_string();
        for id in ACCOUNTED.iter().chain([&DOWN]) {
            let path = fed.sites_dir.join(format!("{id}.yaml"));
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, format!("{text}accounting:\n  enabled: true\n  ams_host: \"{ams_host}\"\n")).unwrap();
        }
        let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"))
            .args(["central", "run", "--task", "info,images,accounting,send", "--json"])
            .args(["--client-id", sim::OIDC_CLIENT_ID])
            .arg("--accounting-ledger")
            .arg(dir.path().join("ledger"))
            .arg("--spool-dir")
            .arg(dir.path().join("spool"))
            .args(["--ams-project", sim::ams::DEFAULT_PROJECT, "--ams-authn-url", &a.authn_url()])
            .arg("--ams-cert")
            .arg(a.client_cert_path())
            .arg("--ams-key")
            .arg(a.client_key_path())
            .arg("--ams-ca")
            .arg(a.ca_pem_path())
            .arg("--sites-dir")
            .arg(&fed.sites_dir)
            .arg("--secrets-dir")
            .arg(&fed.secrets_dir)
            .arg("--checkin-discovery")
            .arg(format!("{}/.well-known/openid-configuration", fed.issuer()))
            .arg("--client-secret-file")
            .arg(&secret)
            .args(["--gocdb-url", &fed.gocdb_url(), "--site-timeout", &TIMEOUT_S.to_string()])
            .arg("--info-dir")
            .arg(&info_dir)
            .args(["--info-swift-container", CONTAINER])
            .args(["--registry-url", fed.checkin.base_url(), "--registry-user", sim::harbor::ROBOT_USER])
            .arg("--registry-password-file")
            .arg(&robot)
            .arg("--image-cache")
            .arg(dir.path().join("cache"))
            .env_remove("FEDSITE_CONFIG")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        let stderr = String::from_utf8_lossy(&run.stderr);
        // The worst row is a failure: the exit code says so.
        assert_eq!(run.status.code(), Some(1), "{stdout}\n{stderr}");
        let v: Value = serde_json::from_str(&stdout).unwrap();
        let rows = v["results"].as_array().unwrap();
        assert_eq!(rows.len(), 120, "a row per site and task: {v}");
        let row = |site: &str, task: &str| -> &Value {
            rows.iter().find(|r| r["site"] == site && r["task"] == task).unwrap_or_else(|| panic!("{site} {task}: {v}"))
        };
        let text = |r: &Value, k: &str| r[k].as_str().unwrap_or_default().to_string();

        // Down: nothing answers at its endpoint, which the row names.
        let down_file = std::fs::read_to_string(fed.sites_dir.join(format!("{DOWN}.yaml"))).unwrap();
        let down_url = down_file.lines().find_map(|l| l.strip_prefix("endpoint: ")).unwrap().trim().to_string();
        let down_host = down_url.trim_start_matches("http://").split('/').next().unwrap().to_string();
        for task in ["info", "images"] {
            let r = row(DOWN, task);
            assert_eq!(r["outcome"], "failed", "{r}");
            assert!(text(r, "detail").contains(&down_host), "the closed endpoint is named: {r}");
        }
        // Slow: given up at the site timeout (it ended, and not before the timeout).
        for task in ["info", "images"] {
            let r = row(SLOW, task);
            assert_eq!(r["outcome"], "failed", "{r}");
            assert!(text(r, "detail").contains("site timeout"), "{r}");
            assert!(r["duration_seconds"].as_f64().unwrap() >= TIMEOUT_S as f64, "{r}");
        }
        // Swift refusing writes: the info row fails naming the refusal; the images are synced.
        let r = row(READ_ONLY, "info");
        assert_eq!(r["outcome"], "failed", "{r}");
        assert!(text(r, "detail").contains("HTTP 405"), "{r}");
        assert!(text(r, "fix").contains("refuses writes"), "{r}");
        assert_eq!(row(READ_ONLY, "images")["outcome"], "ok", "{}", row(READ_ONLY, "images"));
        // 403 on one VO: its info is published, and its images synced, without that VO, which
        // each row names.
        for task in ["info", "images"] {
            let r = row(FORBIDDEN, task);
            assert_eq!(r["outcome"], "ok", "{r}");
            let failed = r["failed_vos"].as_array().unwrap();
            assert_eq!(failed.len(), 1, "{r}");
            assert_eq!(failed[0]["vo"], FORBIDDEN_VO, "{r}");
            assert!(failed[0]["error"].as_str().unwrap().contains("403"), "{r}");
        }

        let broken = [DOWN, SLOW, READ_ONLY];
        let token = fed.checkin.oidc_access_token().await.unwrap();
        // `fedsite info` alone on every site whose info is ok, four at once; an
        // application-credential site's file with each VO's credential in its `auth`, as the
        // central deployment hands cloud-info-provider the secrets it read.
        let alone_sites: Vec<&sim::federation::FederatedSite> =
            fed.sites.iter().filter(|s| row(&s.id, "info")["outcome"] == "ok").collect();
        let gocdb = fed.gocdb_url();
        let alone_dir = dir.path().join("alone");
        std::fs::create_dir_all(&alone_dir).unwrap();
        let alone: BTreeMap<String, std::process::Output> = futures::stream::iter(alone_sites)
            .map(|s| {
                let (token, gocdb) = (&token, &gocdb);
                let file = with_app_credentials(s, &fed.secrets_dir, &alone_dir);
                async move { (s.id.clone(), info_alone(&file, token, gocdb).await) }
            })
            .buffer_unordered(4)
            .collect()
            .await;
        for site in &fed.sites {
            let id = site.id.as_str();
            if !broken.contains(&id) && id != FORBIDDEN {
                for task in ["info", "images"] {
                    let r = row(id, task);
                    assert_eq!(r["outcome"], "ok", "{r}");
                    assert!(r["failed_vos"].as_array().unwrap().is_empty(), "{r}");
                }
            }
            let admin = admin(site).await;
            if row(id, "info")["outcome"] == "ok" {
                // The document in the site's own Swift (the ops VO's project) is the file's bytes.
                let file = std::fs::read(info_dir.join(format!("{id}.json"))).unwrap();
                let ops = site.shares.iter().find(|(vo, _)| vo == "ops").map(|(_, p)| p.clone()).unwrap();
                let mut store = openstack::swift::ObjectStore::new(&admin).await.unwrap();
                store.account_url = format!("{}/object-store/v1/AUTH_{ops}", site.handle.base_url());
                let object = store.get_object(CONTAINER, &format!("{}.json", site.gocdb)).await.unwrap();
                assert_eq!(object.data, file, "{id}: Swift holds the published bytes");
                // …and equal to what `fedsite info` gives the site alone.
                if let Some(alone) = alone.get(id) {
                    assert!(alone.status.success(), "{id}: {}", String::from_utf8_lossy(&alone.stderr));
                    assert_eq!(
                        crate::common::mask_creation_time(&file),
                        crate::common::mask_creation_time(&alone.stdout),
                        "{id}"
                    );
                }
            }
            if id == DOWN || id == SLOW {
                continue;
            }
            // The images are in the site's Glance, in the ops VO's project.
            let images = openstack::glance::ListImages { tags: vec!["fedsite".into()], ..Default::default() }
                .list(&admin)
                .await
                .unwrap();
            assert!(!images.is_empty(), "{id}: no image synced");
            if id == FORBIDDEN {
                let refused = site.shares.iter().find(|(vo, _)| vo == FORBIDDEN_VO).map(|(_, p)| p.clone()).unwrap();
                let others: BTreeSet<String> = site
                    .shares
                    .iter()
                    .filter(|(vo, _)| vo != "ops" && vo != FORBIDDEN_VO)
                    .map(|(_, p)| p.clone())
                    .collect();
                // An image of the Harbor project every VO gets.
                let shared = images
                    .iter()
                    .find(|i| i.name.as_deref().is_some_and(|n| n.contains(&format!(" {}/", sim::oci::SHARED_PROJECT))))
                    .expect("an image of the shared project");
                let members = openstack::glance::members::list(&admin, &shared.id).await.unwrap();
                let accepted: BTreeSet<String> =
                    members.iter().filter(|m| m.status == "accepted").map(|m| m.member_id.clone()).collect();
                assert!(others.is_subset(&accepted), "{id}: the working VOs accepted {accepted:?}, want {others:?}");
                assert!(!accepted.contains(&refused), "{id}: the refused VO accepted nothing");
            }
        }
        // Every site whose info is ok was compared: 30 − 3 broken (2 of application credentials).
        assert_eq!(alone.len(), 27);

        // Accounting: the opted-in sites extracted and sent, the 403 site without its refused
        // VO (named), the down site failed naming its endpoint, every other site skipped.
        for site in &fed.sites {
            let id = site.id.as_str();
            for task in ["accounting", "send"] {
                let r = row(id, task);
                if ACCOUNTED.contains(&id) {
                    assert_eq!(r["outcome"], "ok", "{r}");
                } else if id == DOWN {
                    assert_eq!(r["outcome"], if task == "accounting" { "failed" } else { "ok" }, "{r}");
                } else {
                    assert_eq!(r["outcome"], "skipped", "{r}");
                    assert!(text(r, "detail").contains("accounting.enabled"), "{r}");
                }
            }
        }
        assert!(text(row(DOWN, "accounting"), "detail").contains(&down_host), "{}", row(DOWN, "accounting"));
        let refused = row(FORBIDDEN, "accounting");
        assert_eq!(refused["failed_vos"][0]["vo"], FORBIDDEN_VO, "{refused}");
        let on_storage = crate::common::ams_published(&ams, STORAGE_TOPIC);
        let on_cloud = crate::common::ams_published(&ams, sim::ams::DEFAULT_TOPIC);
        assert!(!on_storage.is_empty() && on_storage.iter().all(|(k, _)| *k == apel::RecordKind::Storage));
        assert!(on_cloud.iter().any(|(k, _)| *k == apel::RecordKind::Cloud));
        assert!(on_cloud.iter().all(|(k, _)| *k != apel::RecordKind::Storage));
        // Every record of the opted-in sites' ledgers reached AMS exactly once; the 403 site's
        // records are of its working VOs' projects only.
        let mut want: BTreeMap<(String, String), usize> = BTreeMap::new();
        for id in ACCOUNTED {
            let l = ledger::LedgerOptions {
                mode: ledger::OpenMode::MustExist,
                namespace: Some(id.into()),
                ..Default::default()
            }
            .open(dir.path().join("ledger"))
            .unwrap();
            let snaps = l.latest_snapshots(&ledger::SnapshotFilter::default()).unwrap();
            assert!(snaps.iter().any(|s| s.snapshot.kind == "cloud"), "{id}: records extracted");
            if id == FORBIDDEN {
                let site = fed.sites.iter().find(|s| s.id == id).unwrap();
                let refused = site.shares.iter().find(|(vo, _)| vo == FORBIDDEN_VO).map(|(_, p)| p.clone()).unwrap();
                assert!(snaps.iter().all(|s| s.snapshot.project_id != refused), "{id}: nothing of the refused VO");
            }
            for s in snaps {
                *want.entry((s.snapshot.kind, s.snapshot.key)).or_default() += 1;
            }
        }
        let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
        for (kind, key) in on_storage.into_iter().chain(on_cloud) {
            *got.entry((kind.as_str().to_string(), key)).or_default() += 1;
        }
        assert_eq!(got, want, "each record of the opted-in sites published once, on its own topic");
        ams.stop().await;
        assert!(!stdout.contains("eyJ"), "no token in the output");
        fed.stop().await;
    }
}

/// `--info-swift-cloud`: every site's document in one central Swift account, one object
/// `<site id>.json` per site, the same bytes as the info directory's file (two of the sites
/// share a GOCDB name, so the objects are named by file).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_central_swift_holds_one_object_per_site() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("real");
    std::fs::create_dir_all(&folder).unwrap();
    for f in ["fedcloud.srce.hr.yaml", "fedcloud.srce.hr-2.yaml", "ELKH-CLOUD.yaml"] {
        std::fs::copy(real().join("sites").join(f), folder.join(f)).unwrap();
    }
    let fed = sim::federation::start(sim::federation::FederationConfig {
        sites_dir: folder,
        count: 0,
        out_dir: dir.path().join("federation"),
        template: sim::scenario::builtin("tiny").unwrap().generate(),
        profiles: Default::default(),
        faults: Default::default(),
    })
    .await
    .unwrap();
    let secret = dir.path().join("client-secret");
    common::write_private(&secret, format!("{}\n", sim::OIDC_CLIENT_SECRET));
    // The central Swift: the Check-in simulator's own, as its admin (`sim` in clouds.yaml).
    let clouds = dir.path().join("clouds.yaml");
    common::write_private(&clouds, fed.checkin.clouds_yaml());
    let info_dir = dir.path().join("info");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"))
        .args(["central", "run", "--task", "info", "--json", "--client-id", sim::OIDC_CLIENT_ID])
        .arg("--sites-dir")
        .arg(&fed.sites_dir)
        .arg("--checkin-discovery")
        .arg(format!("{}/.well-known/openid-configuration", fed.issuer()))
        .arg("--client-secret-file")
        .arg(&secret)
        .args(["--gocdb-url", &fed.gocdb_url(), "--site-timeout", "120"])
        .arg("--info-dir")
        .arg(&info_dir)
        .args(["--info-swift-container", "glue", "--info-swift-cloud", "sim"])
        .env("OS_CLIENT_CONFIG_FILE", &clouds)
        .env_remove("OS_CLOUD")
        .env_remove("FEDSITE_CONFIG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    let cfg = openstack::CloudConfig::from_clouds_yaml(&fed.checkin.clouds_yaml(), None, "sim", "clouds.yaml").unwrap();
    let store = openstack::swift::ObjectStore::new(&openstack::Session::connect(&cfg).await.unwrap()).await.unwrap();
    assert_eq!(fed.sites.len(), 3);
    for site in &fed.sites {
        let object = store.get_object("glue", &format!("{}.json", site.id)).await.unwrap();
        let file = std::fs::read(info_dir.join(format!("{}.json", site.id))).unwrap();
        assert_eq!(object.data, file, "{}", site.id);
        assert!(String::from_utf8_lossy(&file).contains(&format!("\"{}\"", site.gocdb)), "{}", site.id);
    }
    // The two files of one GOCDB site are two objects with different documents.
    let a = store.get_object("glue", "fedcloud.srce.hr.json").await.unwrap().data;
    let b = store.get_object("glue", "fedcloud.srce.hr-2.json").await.unwrap().data;
    assert_ne!(a, b);
    fed.stop().await;
}
