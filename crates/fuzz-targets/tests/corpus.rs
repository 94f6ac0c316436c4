//! Runs every committed fuzz input (`fuzz/corpus/<target>/*`, and the regression inputs in
//! `fuzz/regressions/<target>/*`) through its target, in the normal test suite: what cargo
//! fuzz once found or was seeded with can never panic again.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn every_target_has_a_corpus_and_a_cargo_fuzz_binary() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    for (name, _) in fuzz_targets::TARGETS {
        assert!(inputs(&root().join("corpus").join(name)).len() >= 3, "fuzz/corpus/{name} holds fewer than 3 inputs");
        assert!(
            root().join("fuzz_targets").join(format!("{name}.rs")).is_file(),
            "fuzz/fuzz_targets/{name}.rs is missing"
        );
        assert!(manifest.contains(&format!("name = \"{name}\"")), "fuzz/Cargo.toml has no [[bin]] {name}");
    }
}

#[test]
fn the_committed_corpus_and_regressions_pass_every_target() {
    let mut total = 0;
    for (name, f) in fuzz_targets::TARGETS {
        for sub in ["corpus", "regressions"] {
            for input in inputs(&root().join(sub).join(name)) {
                let data = std::fs::read(&input).unwrap();
                if let Err(e) = std::panic::catch_unwind(|| f(&data)) {
                    let msg =
                        e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
                    panic!("{name} panics on {}: {}", input.display(), msg.unwrap_or_default());
                }
                total += 1;
            }
        }
    }
    assert!(total >= 3 * fuzz_targets::TARGETS.len(), "only {total} inputs");
    println!("{total} inputs through {} targets", fuzz_targets::TARGETS.len());
}
