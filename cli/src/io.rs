//! Data in (a file, standard input, text or base64) and out (a file, or
//! base64 in the output).

use std::io::{Read, Write};
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::args::{BinaryDataArgs, DataArgs};
use crate::error::{CliError, Result};

/// Most bytes read as input: the cluster takes requests up to 64 MiB, and
/// one operation's data is far smaller in practice.
pub const MAX_INPUT_BYTES: u64 = 32 * 1024 * 1024;

/// Base64 of `bytes`, as the JSON output carries binary values.
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes base64 given for `what`.
pub fn from_b64(text: &str, what: &str) -> Result<Vec<u8>> {
    STANDARD
        .decode(text.trim())
        .map_err(|e| CliError::invalid(format!("{what} is not valid base64: {e}")))
}

/// Reads a whole file (`-`: standard input), at most [`MAX_INPUT_BYTES`].
/// The buffer is zeroized on drop (it may hold key material).
pub fn read_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::new());
    let limit = MAX_INPUT_BYTES + 1;
    let read = if path == Path::new("-") {
        std::io::stdin().lock().take(limit).read_to_end(&mut buf)
    } else {
        let file = std::fs::File::open(path).map_err(|e| CliError::io(path, "read", &e))?;
        file.take(limit).read_to_end(&mut buf)
    };
    read.map_err(|e| CliError::io(path, "read", &e))?;
    if buf.len() as u64 > MAX_INPUT_BYTES {
        return Err(CliError::invalid(format!(
            "{} is larger than {MAX_INPUT_BYTES} bytes",
            path.display()
        )));
    }
    Ok(buf)
}

/// The bytes of `--data-path` or `--data` (text).
pub fn data(args: &DataArgs) -> Result<Zeroizing<Vec<u8>>> {
    match (&args.data_path, &args.data) {
        (Some(path), _) => read_file(path),
        (None, Some(text)) => Ok(Zeroizing::new(text.as_bytes().to_vec())),
        // clap's argument group requires one of the two.
        (None, None) => Err(CliError::usage("give --data-path FILE or --data TEXT")),
    }
}

/// The bytes of `--data-path` or `--data` (base64).
pub fn binary_data(args: &BinaryDataArgs) -> Result<Zeroizing<Vec<u8>>> {
    match (&args.data_path, &args.data) {
        (Some(path), _) => read_file(path),
        (None, Some(text)) => Ok(Zeroizing::new(from_b64(text, "--data")?)),
        (None, None) => Err(CliError::usage("give --data-path FILE or --data BASE64")),
    }
}

/// Writes `bytes` to `path`, replacing it. With `private`, a new file is
/// readable by its owner only (on Unix).
pub fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    if path == Path::new("-") {
        return Err(CliError::usage(
            "cannot write binary output to standard output (`-`): give a file, or leave the \
             path out for base64 in the output",
        ));
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options
        .open(path)
        .map_err(|e| CliError::io(path, "write", &e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::io(path, "write", &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_comes_from_text_files_or_base64() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d");
        write_file(&path, b"\x00\x01bytes", false).expect("write");
        let from_file = data(&DataArgs {
            data_path: Some(path.clone()),
            data: None,
        })
        .expect("read");
        assert_eq!(from_file.as_slice(), b"\x00\x01bytes");
        let text = data(&DataArgs {
            data_path: None,
            data: Some("hi".into()),
        })
        .expect("text");
        assert_eq!(text.as_slice(), b"hi");
        let bin = binary_data(&BinaryDataArgs {
            data_path: None,
            data: Some(b64(b"\xff\x00")),
        })
        .expect("base64");
        assert_eq!(bin.as_slice(), b"\xff\x00");
        let bad = binary_data(&BinaryDataArgs {
            data_path: None,
            data: Some("not base64!".into()),
        });
        assert!(bad.expect_err("refused").message.contains("base64"));
        let missing = read_file(&dir.path().join("absent")).expect_err("missing");
        assert_eq!(missing.class.exit_code(), 4);
        assert!(missing.message.contains("absent"), "{}", missing.message);
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        write_file(&path, b"k", true).expect("write");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
