//! Data disks that can fill up: each node's data directory on a tmpfs of
//! its own, so the `disk-full` fault fills one node's disk and no other's
//! (and never the machine's). At the end of a run the contents are copied
//! back into a plain directory, so the run's output keeps every node's data.
//! Each tmpfs is named after the run (`hsmc<pid>`, as its namespaces are),
//! so a later run unmounts those a dead run left ([`remove_leftovers`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The size of each node's disk.
const SIZE: &str = "512m";
/// The file that fills a disk.
const FILLER: &str = "chaos-filler";

/// The mounted disks; dropping them copies their contents out and
/// unmounts them.
#[derive(Debug, Default)]
pub struct Disks {
    mounted: Vec<PathBuf>,
}

fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The name a run's disks are mounted under.
fn source() -> String {
    format!("{}{}", super::net::PREFIX, std::process::id())
}

/// Unmounts the disks of runs whose process is gone (their contents are
/// lost: the run died before it could copy them out). Returns how many.
pub fn remove_leftovers() -> usize {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut removed = 0;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(source), Some(path), Some("tmpfs")) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Some(pid) = source
            .strip_prefix(super::net::PREFIX)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("umount").arg("-l").arg(path).status();
            removed += 1;
        }
    }
    removed
}

/// `dir` with `suffix` appended to its last component.
fn beside(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

impl Disks {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.mounted.is_empty()
    }

    /// Moves `dir` (a node's data directory, its node not running) onto a
    /// tmpfs of its own mounted at the same path.
    ///
    /// # Errors
    /// If the tmpfs cannot be mounted or the files copied.
    pub fn mount(&mut self, dir: &Path) -> Result<()> {
        let aside = beside(dir, ".before-tmpfs");
        std::fs::rename(dir, &aside)
            .with_context(|| format!("cannot move {} aside", dir.display()))?;
        std::fs::create_dir(dir)?;
        run(
            "mount",
            &[
                "-t".as_ref(),
                "tmpfs".as_ref(),
                "-o".as_ref(),
                format!("size={SIZE},mode=0700").as_ref(),
                source().as_ref(),
                dir.as_os_str(),
            ],
        )?;
        self.mounted.push(dir.to_owned());
        let mut from = aside.clone().into_os_string();
        from.push("/.");
        run("cp", &["-a".as_ref(), &from, dir.as_os_str()])?;
        std::fs::remove_dir_all(&aside)?;
        Ok(())
    }

    /// Fills the disk at `dir` to the last byte. Returns the bytes written.
    ///
    /// # Errors
    /// If `dir` is not one of these disks or the filler cannot be made.
    pub fn fill(&self, dir: &Path) -> Result<u64> {
        if !self.mounted.iter().any(|m| m == dir) {
            bail!("{} is not a disk of the run", dir.display());
        }
        let mut f = std::fs::File::create(dir.join(FILLER)).context("cannot make the filler")?;
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => return Err(e).context("cannot fill the disk"),
            }
        }
        // The last partial pages too.
        let _ = f.flush();
        Ok(written)
    }

    /// Frees what [`Disks::fill`] took.
    ///
    /// # Errors
    /// If the filler cannot be removed.
    pub fn free(dir: &Path) -> Result<()> {
        match std::fs::remove_file(dir.join(FILLER)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).context("cannot remove the filler")
            }
            _ => Ok(()),
        }
    }

    /// Copies every disk's contents into a plain directory at the same
    /// path and unmounts it (the nodes stopped).
    ///
    /// # Errors
    /// If a copy fails (the disk then stays mounted).
    pub fn unmount_all(&mut self) -> Result<()> {
        while let Some(dir) = self.mounted.pop() {
            if let Err(e) = Self::keep(&dir) {
                self.mounted.push(dir);
                return Err(e);
            }
        }
        Ok(())
    }

    fn keep(dir: &Path) -> Result<()> {
        Self::free(dir)?;
        let aside = beside(dir, ".from-tmpfs");
        let mut from = dir.to_owned().into_os_string();
        from.push("/.");
        std::fs::create_dir_all(&aside)?;
        run("cp", &["-a".as_ref(), &from, aside.as_os_str()])?;
        run("umount", &["-l".as_ref(), dir.as_os_str()])?;
        std::fs::remove_dir(dir)?;
        std::fs::rename(&aside, dir)?;
        Ok(())
    }
}

impl Drop for Disks {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_all() {
            eprintln!("cannot keep the nodes' disks: {e:#}");
        }
        for dir in std::mem::take(&mut self.mounted) {
            let _ = Command::new("umount").arg("-l").arg(&dir).status();
        }
    }
}
