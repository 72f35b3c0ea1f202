//! Every seed and every crash reproducer of every target through its harness: the corpus
//! keeps what fuzzing learned, and each crash ever found stays fixed.

use std::path::{Path, PathBuf};

use lyrebird_fuzz::TARGETS;

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.is_file() && path.file_name().is_some_and(|n| n != ".gitkeep"))
        .collect();
    files.sort();
    files
}

/// Runs every input of `kind` (`corpus` or `crashes`) through its target's harness, one
/// thread per target (each harness measures the heap of its own thread); returns how many ran.
fn replay(kind: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::thread::scope(|scope| {
        let runs: Vec<_> = TARGETS
            .iter()
            .map(|target| {
                let dir = root.join(kind).join(target.name);
                scope.spawn(move || {
                    let files = inputs(&dir);
                    for path in &files {
                        let data = std::fs::read(path).expect("a readable input");
                        let outcome = std::panic::catch_unwind(|| (target.run)(&data));
                        assert!(
                            outcome.is_ok(),
                            "{} failed on {}",
                            target.name,
                            path.display()
                        );
                    }
                    files.len()
                })
            })
            .collect();
        runs.into_iter()
            .map(|run| run.join().expect("a replay thread reports"))
            .sum()
    })
}

#[test]
fn every_corpus_input_runs_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for target in TARGETS {
        assert!(
            !inputs(&root.join("corpus").join(target.name)).is_empty(),
            "{} has no seed corpus",
            target.name
        );
    }
    assert!(replay("corpus") > 0);
}

#[test]
fn every_crash_reproducer_stays_fixed() {
    replay("crashes");
}

#[test]
fn every_target_has_a_libfuzzer_entry_point() {
    let bins = Path::new(env!("CARGO_MANIFEST_DIR")).join("libfuzzer/src/bin");
    for target in TARGETS {
        assert!(
            bins.join(format!("{}.rs", target.name)).is_file(),
            "no libfuzzer/src/bin/{}.rs",
            target.name
        );
    }
}
