//! `istio-demo validate` end to end: the repository's manifests pass, and broken copies of them
//! (made at test time from the real files, so the tests follow the manifests) fail with a message
//! naming the file, the object, the field and the problem.
//!
//! Needs `kubectl` (with kustomize) on PATH or in $KUBECTL, and the pinned schemas in
//! `$ISTIO_DEMO_SCHEMAS` or `<repo>/../shared/schemas`.

use std::path::{Path, PathBuf};
use std::process::Command;

mod canary;
mod command;
mod flux;
mod gate;
mod render;
mod schema;
mod stream;
mod workloads;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn schemas() -> PathBuf {
    match std::env::var_os("ISTIO_DEMO_SCHEMAS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo().join("../shared/schemas"),
    }
}

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// A scratch copy of some of the repository's manifest directories.
struct Copy {
    dir: tempfile::TempDir,
}

impl Copy {
    fn of(dirs: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in dirs {
            copy_tree(&repo().join(d), &dir.path().join(d));
        }
        Copy { dir }
    }

    /// A copy of every manifest directory: what `validate` without PATH checks.
    fn whole() -> Self {
        Self::of(istio_demo::manifests::MANIFEST_DIRS)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Replaces `from` (which must be present, so a changed manifest breaks the test loudly) by `to`.
    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.path(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(from),
            "{file} no longer contains {from:?}: update this test"
        );
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.path(file), text).unwrap();
    }

    /// Runs `istio-demo validate` on the given directories of this copy.
    fn validate(&self, dirs: &[&str]) -> (i32, String) {
        let paths: Vec<PathBuf> = dirs.iter().map(|d| self.path(d)).collect();
        run(&paths, self.dir.path())
    }
}

fn run(paths: &[PathBuf], cwd: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_istio-demo"))
        .arg("validate")
        .arg("--schemas")
        .arg(schemas())
        .args(paths)
        .current_dir(cwd)
        .output()
        .expect("run istio-demo");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The error lines of `output` that contain every one of `parts`.
fn expect_error(output: &str, parts: &[&str]) {
    let hit = output
        .lines()
        .any(|l| l.starts_with("error") && parts.iter().all(|p| l.contains(p)));
    assert!(hit, "no error line with {parts:?} in:\n{output}");
}
