//! Deployment artefacts: the systemd units and timers pass
//! `systemd-analyze verify` and every command they run is a valid fedsite
//! command line; `scripts/package` (cargo-deb) builds a package holding the
//! binary, units, man pages, completions and docs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn units() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(root().join("packaging/systemd")).unwrap().flatten().map(|e| e.path()).collect();
    v.sort();
    v
}

#[test]
fn systemd_units_verify_and_run_real_fedsite_commands() {
    let bin = env!("CARGO_BIN_EXE_fedsite");
    let dir = tempfile::tempdir().unwrap();
    let mut services = 0;
    for unit in units() {
        let text = std::fs::read_to_string(&unit).unwrap();
        let name = unit.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with(".service") {
            services += 1;
            assert!(
                name.strip_suffix(".service")
                    .is_some_and(|n| root().join(format!("packaging/systemd/{n}.timer")).is_file()),
                "{name} has no timer"
            );
            for line in text.lines().filter_map(|l| l.strip_prefix("ExecStart=")) {
                let args: Vec<&str> = line.split_whitespace().collect();
                assert_eq!(args[0], "/usr/bin/fedsite", "{name}: {line}");
                // The same command line with --help parses: the subcommand exists.
                let out = Command::new(bin).args(&args[1..]).arg("--help").output().unwrap();
                assert!(
                    out.status.success(),
                    "{name}: `{line}` is not a fedsite command: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(
                text.contains("FEDSITE_CONFIG=/etc/fedsite/fedsite.toml") && text.contains("User=fedsite"),
                "{name}"
            );
        }
        std::fs::write(dir.path().join(&name), text.replace("/usr/bin/fedsite", bin)).unwrap();
    }
    assert_eq!(services, 4);
    let files: Vec<PathBuf> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.path()).collect();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&files)
        .output()
        .expect("systemd-analyze (Debian's systemd) is required");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // verify exits 0 on warnings (unknown keys, bad values): they must be absent too.
    assert!(out.status.success() && report.trim().is_empty(), "{report}");
}

#[test]
fn cargo_deb_builds_the_package_with_binary_units_and_man_pages() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(root().join("scripts/package"))
        .args(["--profile", "dev", "--no-build", "--fast", "-o"])
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deb = std::fs::read_dir(out_dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");
    let list = Command::new("dpkg-deb").arg("-c").arg(&deb).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for path in [
        "./usr/bin/fedsite",
        "./lib/systemd/system/fedsite-extract.timer",
        "./lib/systemd/system/fedsite-send.service",
        "./usr/share/man/man1/fedsite.1.gz",
        "./usr/share/man/man1/fedsite-accounting-extract.1.gz",
        "./usr/share/bash-completion/completions/fedsite",
        "./usr/share/doc/fedsite/examples/fedsite.toml",
        "./usr/share/doc/fedsite/configuration.md",
    ] {
        assert!(list.contains(path), "{path} missing from the package:\n{list}");
    }
    // The drop-in for cloud-info-provider: a relative symlink to the binary (docs/cloudinfo.md).
    let link = list
        .lines()
        .find(|l| l.contains("./usr/bin/cloud-info-provider-service"))
        .unwrap_or_else(|| panic!("no cloud-info-provider-service in the package:\n{list}"));
    assert!(link.starts_with('l') && link.ends_with("./usr/bin/cloud-info-provider-service -> fedsite"), "{link}");
    let info = Command::new("dpkg-deb").arg("-I").arg(&deb).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("Package: fedsite") && info.contains("postinst") && info.contains("adduser"), "{info}");
}
