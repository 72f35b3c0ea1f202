//! Turning a file name chosen by the remote side into a safe name in the downloads folder.
//!
//! The offered name (RFC 5547 `a=file-selector` name) is text from a stranger: it may hold path
//! separators of any platform, `..`, control characters, names Windows reserves for devices,
//! or simply be empty. It is reduced to one plain file name component; the file is then
//! created inside the downloads folder with `create_new`, and the finished file is linked
//! under a name that does not exist yet — an existing file is never overwritten.

use std::io;
use std::path::{Path, PathBuf};

/// Longest name we create, in bytes (most file systems allow 255).
const MAX_NAME_BYTES: usize = 180;

/// Device names Windows reserves whatever the extension (`CON.txt` is the console).
const RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// One safe file name component derived from `offered`.
pub(crate) fn safe_file_name(offered: &str) -> String {
    // Only the last component of any path, whichever separator the sender's OS uses.
    let last = offered.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut name: String = last
        .chars()
        .map(|c| match c {
            c if c.is_control() => '_',
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c => c,
        })
        .collect();
    // Leading dots would hide the file (or be `..`); trailing dots and spaces are dropped by
    // Windows, which would make two different names collide.
    name = name
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' '])
        .to_owned();
    if name.is_empty() {
        name = "received-file".to_owned();
    }
    let stem = name.split('.').next().unwrap_or_default();
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem.trim())) {
        name.insert(0, '_');
    }
    if name.len() > MAX_NAME_BYTES {
        let (stem, ext) = split_extension(&name);
        let ext: String = ext.chars().take(16).collect();
        let mut cut = MAX_NAME_BYTES.saturating_sub(ext.len());
        while !stem.is_char_boundary(cut.min(stem.len())) {
            cut -= 1;
        }
        name = format!("{}{ext}", &stem[..cut.min(stem.len())]);
    }
    name
}

/// `("photo", ".jpg")`; names without a dot have an empty extension.
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

/// The `n`-th candidate: `name`, `name (1).ext`, `name (2).ext`, ...
fn candidate(dir: &Path, name: &str, n: u32) -> PathBuf {
    if n == 0 {
        return dir.join(name);
    }
    let (stem, ext) = split_extension(name);
    dir.join(format!("{stem} ({n}){ext}"))
}

/// Bytes free for us in the file system holding `dir` (or its nearest existing ancestor):
/// what an unprivileged user may still write (statvfs on Unix, GetDiskFreeSpaceEx on Windows),
/// not the root reserve; `None` where the platform or the file system does not say.
pub(crate) fn free_space(dir: &Path) -> Option<u64> {
    let existing = dir.ancestors().find(|d| d.exists())?;
    fs4::available_space(existing).ok()
}

/// Whether `path` names a partial file [`create_partial`] made (`.name.part`,
/// `.name (1).part`, ...): hidden, so never a name [`safe_file_name`] gives a finished file.
pub(crate) fn is_partial(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with('.') && name.ends_with(".part") && name.len() > 6)
}

/// Creates a new, empty partial file for `name` in `dir` (never an existing one).
pub(crate) fn create_partial(dir: &Path, name: &str) -> io::Result<(PathBuf, std::fs::File)> {
    std::fs::create_dir_all(dir)?;
    for n in 0..1000 {
        let path = candidate(dir, &format!(".{name}.part"), n);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free name for a partial file"))
}

/// Gives the finished partial file its final name without replacing anything: a hard link
/// fails if the name exists, so the first free candidate wins atomically.
pub(crate) fn publish(partial: &Path, dir: &Path, name: &str) -> io::Result<PathBuf> {
    for n in 0..1000 {
        let path = candidate(dir, name, n);
        match std::fs::hard_link(partial, &path) {
            Ok(()) => {
                std::fs::remove_file(partial)?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free name for the received file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_plain_names() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("..\\..\\Windows\\win.ini"), "win.ini");
        assert_eq!(safe_file_name(".."), "received-file");
        assert_eq!(safe_file_name(""), "received-file");
        assert_eq!(safe_file_name("/"), "received-file");
        assert_eq!(safe_file_name(".bashrc"), "bashrc");
        assert_eq!(safe_file_name("a\u{0}b\nc\u{1b}.txt"), "a_b_c_.txt");
        assert_eq!(safe_file_name("CON.txt"), "_CON.txt");
        assert_eq!(safe_file_name("lpt1"), "_lpt1");
        assert_eq!(safe_file_name("what?.txt "), "what_.txt");
        let long = format!("{}.bin", "é".repeat(300));
        let safe = safe_file_name(&long);
        assert!(safe.len() <= MAX_NAME_BYTES && safe.ends_with(".bin"));
    }

    #[test]
    fn only_our_partial_files_count_as_partial() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = create_partial(dir.path(), "report.pdf").unwrap();
        let (second, _) = create_partial(dir.path(), "report.pdf").unwrap();
        assert!(
            is_partial(&first) && is_partial(&second),
            "{first:?} {second:?}"
        );
        // A finished file, even one a sender named like a partial file, is never one.
        assert!(!is_partial(Path::new("/downloads/report.pdf")));
        assert!(!is_partial(&dir.path().join(safe_file_name(".evil.part"))));
        assert!(!is_partial(Path::new("/downloads/.part")));
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"old").unwrap();
        let (part, _) = create_partial(dir.path(), "a.txt").unwrap();
        std::fs::write(&part, b"new").unwrap();
        let published = publish(&part, dir.path(), "a.txt").unwrap();
        assert_eq!(published, dir.path().join("a (1).txt"));
        assert_eq!(std::fs::read(dir.path().join("a.txt")).unwrap(), b"old");
        assert_eq!(std::fs::read(&published).unwrap(), b"new");
        assert!(!part.exists());
    }
}
