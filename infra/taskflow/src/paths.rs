//! Where the project's files are, found the same way from the CLI and from tests.

use std::path::{Path, PathBuf};

/// The repository root: `TASKFLOW_ROOT`, else the nearest ancestor of the working directory
/// holding `infra/template.yaml`, else the root this crate was built from.
pub fn project_root() -> PathBuf {
    if let Some(root) = std::env::var_os("TASKFLOW_ROOT") {
        return PathBuf::from(root);
    }
    if let Ok(cwd) = std::env::current_dir() {
        if let Some(found) = cwd.ancestors().find(|d| d.join("infra/template.yaml").is_file()) {
            return found.to_path_buf();
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("crate sits in the repository")
}

/// Where the function binaries are: `TASKFLOW_BIN_DIR`, else beside the running executable
/// (one level up when it is a test binary in `deps/`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TASKFLOW_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the running executable has a path");
    let dir = exe.parent().expect("an executable lives in a directory").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") { dir.parent().unwrap().to_path_buf() } else { dir }
}

/// The project's Python environment (made by `make setup`).
pub fn venv_bin(root: &Path, tool: &str) -> PathBuf {
    root.join(".venv/bin").join(tool)
}
