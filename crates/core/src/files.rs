//! The file helpers every stage needs: opening only regular files, reading a small file whole
//! with a bound, and SHA-256 of bytes.
//!
//! A FIFO, a device or a socket given where a file is expected (a dataset image named `x.png`,
//! `/dev/zero` as weights) would block or never end: [`open_regular`] refuses it before reading.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Opens `path` for reading if it is a regular file after following symlinks; anything else is
/// an `InvalidInput` error that says what it is. The open itself cannot block: it is
/// non-blocking (a FIFO opened so returns at once), and the type is checked on the opened
/// handle, so a file swapped for a FIFO between a check and the open is refused too.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    check_regular(&file)?;
    Ok(file)
}

/// Opens (creating it if missing) a lock file for reading and writing, never through a
/// symlink: a planted `.drift-pipeline.lock -> /some/victim` is refused instead of truncated.
pub fn open_lock_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|error| match error.raw_os_error() {
            Some(libc::ELOOP) => io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symlink: a lock file is never followed (remove it)",
            ),
            _ => error,
        })?;
    check_regular(&file)?;
    Ok(file)
}

fn check_regular(file: &File) -> io::Result<()> {
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a regular file ({})", describe_file_type(kind)),
    ))
}

/// Whether `name` is one plain file name: not empty, no separator (`/` or `\`), not `.` or
/// `..`, nothing a path join could turn into another folder. Every name read from a file that
/// the tool then opens, renames or removes inside a folder must be one.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// The most bytes a record or settings file (`drift.json`, a scenario, a class mapping) may
/// hold: far more than any real one, little enough that `/dev/zero` or a runaway file given as
/// one is refused instead of filling memory.
pub const METADATA_LIMIT: u64 = 64 << 20;

/// Reads a small text file whole: a regular file (see [`open_regular`]) of at most `limit`
/// bytes, in UTF-8. Anything longer is an `InvalidData` error, read no further than the limit.
pub fn read_small_text(path: &Path, limit: u64) -> io::Result<String> {
    let file = open_regular(path)?;
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes: not a file this tool writes or reads whole"),
        ));
    }
    Ok(text)
}

/// What a file type is, in words (`a FIFO`, `a character device`, ...).
pub fn describe_file_type(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "not a file"
    }
}

/// Lowercase hex SHA-256 of everything `reader` yields.
pub fn sha256_hex(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.bin");
        std::fs::write(&file, b"abc").unwrap();
        assert!(open_regular(&file).is_ok());
        let error = open_regular(dir.path()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(error.to_string().contains("a folder"), "{error}");
        let error = open_regular(Path::new("/dev/zero")).unwrap_err();
        assert!(error.to_string().contains("character device"), "{error}");
    }

    #[test]
    fn fifos_and_symlinked_locks_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|status| status.success()) {
            let error = open_regular(&fifo).unwrap_err();
            assert!(error.to_string().contains("a FIFO"), "{error}");
            let error = read_small_text(&fifo, 10).unwrap_err();
            assert!(error.to_string().contains("a FIFO"), "{error}");
        }
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, b"keep").unwrap();
        let lock = dir.path().join(".lock");
        std::os::unix::fs::symlink(&victim, &lock).unwrap();
        let error = open_lock_file(&lock).unwrap_err();
        assert!(error.to_string().contains("symlink"), "{error}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let error = read_small_text(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(error.to_string().contains("character device"), "{error}");
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; 11]).unwrap();
        let error = read_small_text(&big, 10).unwrap_err();
        assert!(
            error.to_string().contains("larger than 10 bytes"),
            "{error}"
        );
    }

    #[test]
    fn plain_names_cannot_leave_their_folder() {
        for name in ["drift.json", "a b.png", ".drift-pipeline.lock"] {
            assert!(is_plain_name(name), "{name}");
        }
        for name in [
            "",
            ".",
            "..",
            "../victim.txt",
            "/etc/hostname",
            "a/b",
            "w\\..\\evil",
        ] {
            assert!(!is_plain_name(name), "{name}");
        }
    }

    #[test]
    fn sha256_of_known_bytes() {
        assert_eq!(
            sha256_hex(&b"abc"[..]).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
