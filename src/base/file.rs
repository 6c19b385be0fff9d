//! Opening files a user names without hanging on what is not a file.

use std::path::Path;

/// Opens `path` for reading if it is a regular file (a symbolic link to
/// one is fine). A FIFO, a device or a directory is refused with an error
/// saying so: opening a FIFO waits for a writer, reading a device may never
/// end, and either would hang whoever asked. The file is opened without
/// blocking, then checked through its descriptor, so it cannot be swapped
/// for a FIFO between the check and the read.
pub fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if std::os::unix::fs::FileTypeExt::is_fifo(&kind) {
            "a FIFO (named pipe)"
        } else {
            "a device or socket"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it is {what}, not a regular file; only regular files are read"),
        ));
    }
    Ok(file)
}
