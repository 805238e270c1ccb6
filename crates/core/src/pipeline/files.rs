//! The output folder (SPEC §6): safe file names, partial files, and atomic
//! no-replace placement with fsync.
//!
//! Every folder and file beneath the output folder is opened relative to the
//! folder's descriptor without following symbolic links (`openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` where the kernel has it,
//! `O_NOFOLLOW` on each component otherwise), so a link inside it never
//! sends a write elsewhere: it is reported as [`FileError::Link`].

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

/// Longest encoded component kept whole, in bytes.
const MAX_COMPONENT: usize = 200;
/// Bytes of the encoded component kept before `~` and the hash.
const KEEP_PREFIX: usize = 150;
/// The partial-file folder, relative to the output folder.
const PARTIAL_DIR: &str = ".oncefetch/partial";

/// One id as one file-name component: `%`, `/`, `\`, `~`, NUL, control
/// characters and a leading `.` percent-encoded; a result over 200 bytes
/// shortened to its first 150 bytes (no UTF-8 character or `%XX` escape
/// split), `~` and 16 hex digits of the id's SHA-256. Only a shortened name
/// carries a bare `~`, so no two ids share a name.
pub fn encode_component(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for (i, c) in id.chars().enumerate() {
        let escape = matches!(c, '%' | '/' | '\\' | '~') || c.is_control() || (i == 0 && c == '.');
        if escape {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if out.len() <= MAX_COMPONENT {
        return out;
    }
    let mut cut = KEEP_PREFIX;
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    // Do not split a `%XX` escape: a `%` in the last two kept bytes starts one.
    if let Some(pos) = out[..cut].rfind('%') {
        if pos + 3 > cut {
            cut = pos;
        }
    }
    let digest = hex::encode(Sha256::digest(id.as_bytes()));
    format!("{}~{}", &out[..cut], &digest[..16])
}

/// A file error the pipeline tells apart from other I/O errors; it travels
/// inside an [`io::Error`] (see [`FileError::of`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// A symbolic link stands where a folder or file beneath the output
    /// folder goes; it was not followed.
    #[error("{} is a symbolic link; links inside the output folder are never followed", .0.display())]
    Link(PathBuf),
    /// A copy made across filesystems does not hash to the recorded SHA-256.
    #[error("the copy of {} does not match the recorded sha256 {expected}", .from.display())]
    CopyMismatch {
        /// The file copied.
        from: PathBuf,
        /// The recorded hash.
        expected: String,
    },
}

impl FileError {
    /// The file error inside `err`, if it carries one.
    pub fn of(err: &io::Error) -> Option<&FileError> {
        err.get_ref()?.downcast_ref()
    }
}

impl From<FileError> for io::Error {
    fn from(err: FileError) -> Self {
        io::Error::other(err)
    }
}

/// The output folder and its `.oncefetch/partial/` area.
#[derive(Debug, Clone)]
pub struct OutDir {
    root: PathBuf,
    partial: PathBuf,
    /// The root, open: everything beneath is resolved from it.
    root_fd: Arc<OwnedFd>,
}

/// A partial file's name, parsed: `<job_key>.<epoch>.<tag>.part`, where
/// `tag` identifies the validator the bytes were downloaded under (see
/// `resume::validator_tag`), or `<job_key>.<epoch>.part` for bytes
/// downloaded without a validator (never resumed). A split download's
/// file, written at any offset (not a prefix), is
/// `<job_key>.<epoch>.<tag>.split.part`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialName {
    /// Job key.
    pub job_key: String,
    /// Epoch that wrote it.
    pub epoch: i64,
    /// Tag of the validator of the bytes, if they had one.
    pub validator_tag: Option<String>,
    /// A split download's file: the bytes its ledger records name are
    /// written, anywhere in it; never resumed as a prefix.
    pub split: bool,
}

impl PartialName {
    /// Parses a file name; `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(".part")?;
        let (stem, split) = match stem.strip_suffix(".split") {
            Some(stem) => (stem, true),
            None => (stem, false),
        };
        let (head, last) = stem.rsplit_once('.')?;
        if super::resume::is_tag(last) {
            if let Some((job_key, epoch)) = head.rsplit_once('.') {
                if let Ok(epoch) = epoch.parse() {
                    return Some(Self {
                        job_key: job_key.to_owned(),
                        epoch,
                        validator_tag: Some(last.to_owned()),
                        split,
                    });
                }
            }
        }
        if split {
            // A split download always has a validator.
            return None;
        }
        Some(Self {
            job_key: head.to_owned(),
            epoch: last.parse().ok()?,
            validator_tag: None,
            split: false,
        })
    }

    /// The file name.
    pub fn file_name(&self) -> String {
        let split = if self.split { ".split" } else { "" };
        match &self.validator_tag {
            Some(tag) => format!("{}.{}.{tag}{split}.part", self.job_key, self.epoch),
            None => format!("{}.{}{split}.part", self.job_key, self.epoch),
        }
    }
}

/// How [`OutDir::place`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The file now stands at the final path, a hard link to the source.
    Placed,
    /// The source is on another filesystem: a verified copy of it now
    /// stands at the final path.
    Copied,
    /// The final path already held exactly these bytes.
    AlreadyThere,
    /// The final path holds other bytes; nothing was touched.
    Occupied,
}

/// Whether `openat2` answered ENOSYS once (then every open walks the
/// components).
#[cfg(any(target_os = "linux", target_os = "android"))]
static NO_OPENAT2: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Opens `rel` beneath `dir` without following any symbolic link: `openat2`
/// with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or [`open_each`] where the
/// kernel lacks it.
fn open_beneath(dir: BorrowedFd<'_>, rel: &Path, flags: OFlags, mode: Mode) -> rustix::io::Result<OwnedFd> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::sync::atomic::Ordering;
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            let resolve = rustix::fs::ResolveFlags::BENEATH | rustix::fs::ResolveFlags::NO_SYMLINKS;
            match rustix::fs::openat2(dir, rel, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, mode, resolve) {
                Err(Errno::NOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
                opened => return opened,
            }
        }
    }
    open_each(dir, rel, flags, mode)
}

/// Opens `rel` beneath `dir` one component at a time, each with
/// `O_NOFOLLOW`; only plain names are accepted (no `..`, no root).
fn open_each(dir: BorrowedFd<'_>, rel: &Path, flags: OFlags, mode: Mode) -> rustix::io::Result<OwnedFd> {
    let mut names = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(name) => names.push(name),
            Component::CurDir => {}
            _ => return Err(Errno::XDEV),
        }
    }
    let Some((last, folders)) = names.split_last() else {
        return Err(Errno::NOENT);
    };
    let mut current: Option<OwnedFd> = None;
    for name in folders {
        let at = current.as_ref().map_or(dir, AsFd::as_fd);
        let folder_flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        current = Some(rustix::fs::openat(at, *name, folder_flags, Mode::empty())?);
    }
    let at = current.as_ref().map_or(dir, AsFd::as_fd);
    rustix::fs::openat(at, *last, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, mode)
}

fn is_link(dir: BorrowedFd<'_>, name: impl rustix::path::Arg) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
}

/// A folder, opened to resolve names in it.
fn open_folder(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn split_name(path: &Path) -> io::Result<(&Path, &OsStr)> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(io::Error::other(format!("{} names no file", path.display()))),
    }
}

/// Removes a temporary name when dropped.
struct TempName<'a> {
    dir: BorrowedFd<'a>,
    name: String,
}

impl Drop for TempName<'_> {
    fn drop(&mut self) {
        let _ = rustix::fs::unlinkat(self.dir, &self.name, AtFlags::empty());
    }
}

impl OutDir {
    /// Creates (if needed) and opens `root`, made absolute, and its partial
    /// folder (which must not be reached through a link).
    pub fn create(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        let root = fs::canonicalize(root)?;
        let root_fd = Arc::new(open_folder(&root)?);
        let out = Self {
            partial: root.join(PARTIAL_DIR),
            root,
            root_fd,
        };
        out.make_folder(Path::new(PARTIAL_DIR))?;
        Ok(out)
    }

    /// The absolute root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the root this value opened is gone: its path names no folder
    /// now, or another one (deleted, moved or unmounted, perhaps made again
    /// under the same name).
    pub fn is_gone(&self) -> bool {
        let Ok(opened) = rustix::fs::fstat(&*self.root_fd) else {
            return true;
        };
        match rustix::fs::stat(&self.root) {
            Ok(now) => opened.st_nlink == 0 || (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino),
            Err(_) => true,
        }
    }

    /// Creates and removes an empty file in the partial folder: fails when
    /// the folder no longer takes new files (read-only, no permission).
    pub fn probe(&self) -> io::Result<()> {
        static PROBES: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            ".write-probe-{}-{}",
            std::process::id(),
            PROBES.fetch_add(1, Ordering::Relaxed)
        );
        drop(self.create_partial(&name)?);
        match self.remove_file(&self.partial.join(name)) {
            // `recover` may have swept it meanwhile: it was created, which is what counts.
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            removed => removed,
        }
    }

    /// Removes the write probes ([`OutDir::probe`](Self::probe)) that a process killed
    /// between creating and removing one left in the partial folder: those whose
    /// process no longer runs on this host. (A probe removed under a live
    /// process on another host sharing the folder costs it nothing: its probe
    /// counts the creation.)
    pub fn sweep_write_probes(&self) {
        let Ok(entries) = std::fs::read_dir(self.partial_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(".write-probe-"))
                .and_then(|rest| rest.split_once('-'))
                .and_then(|(pid, n)| n.parse::<u64>().ok().and(pid.parse::<u32>().ok()))
            else {
                continue;
            };
            if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
                continue;
            }
            match self.remove_file(&entry.path()) {
                Ok(()) => tracing::info!(file = %entry.path().display(), "removed the write probe of a process gone"),
                Err(err) => tracing::warn!(file = %entry.path().display(), error = %err, "cannot remove a write probe"),
            }
        }
    }

    /// The partial-file folder.
    pub fn partial_dir(&self) -> &Path {
        &self.partial
    }

    /// `DIR/<work_id>/<artifact_id>`, encoded.
    pub fn final_path(&self, work_id: &str, artifact_id: &str) -> PathBuf {
        self.root
            .join(encode_component(work_id))
            .join(encode_component(artifact_id))
    }

    /// The partial file of `job_key` under `epoch`, for bytes downloaded
    /// under the validator tagged `validator_tag`.
    pub fn partial_path(&self, job_key: &str, epoch: i64, validator_tag: Option<&str>) -> PathBuf {
        self.partial.join(
            PartialName {
                job_key: job_key.to_owned(),
                epoch,
                validator_tag: validator_tag.map(str::to_owned),
                split: false,
            }
            .file_name(),
        )
    }

    /// Every partial file of one job, with its parsed name and length, by
    /// epoch (none when the partial folder is gone).
    pub fn partials_of(&self, job_key: &str) -> io::Result<Vec<(PartialName, PathBuf, u64)>> {
        let mut found: Vec<_> = self
            .all_partials()?
            .into_iter()
            .filter(|(name, _)| name.job_key == job_key)
            .map(|(name, path)| {
                let len = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
                (name, path, len)
            })
            .collect();
        found.sort_by_key(|(name, _, _)| name.epoch);
        Ok(found)
    }

    /// Every partial file in the folder (none when the folder is gone).
    pub fn all_partials(&self) -> io::Result<Vec<(PartialName, PathBuf)>> {
        let entries = match fs::read_dir(&self.partial) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            entries => entries?,
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry?;
            if let Some(parsed) = entry.file_name().to_str().and_then(PartialName::parse) {
                found.push((parsed, entry.path()));
            }
        }
        Ok(found)
    }

    /// Creates (or truncates) the partial file `name`, making the partial
    /// folder again if it was deleted.
    pub(crate) fn create_partial(&self, name: &str) -> io::Result<File> {
        let rel = Path::new(PARTIAL_DIR).join(name);
        let flags = OFlags::CREATE | OFlags::TRUNC | OFlags::RDWR;
        let mode = Mode::from_raw_mode(0o666);
        match self.open(&rel, flags, mode) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                self.make_folder(Path::new(PARTIAL_DIR))?;
                Ok(File::from(self.open(&rel, flags, mode)?))
            }
            opened => Ok(File::from(opened?)),
        }
    }

    /// Removes the partial file `name` when it holds no byte (a failed
    /// write's leftover, useless for a resume).
    pub(crate) fn remove_partial_if_empty(&self, name: &str) -> io::Result<()> {
        let rel = Path::new(PARTIAL_DIR).join(name);
        let file = match self.open(&rel, OFlags::RDONLY, Mode::empty()) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            file => File::from(file?),
        };
        if file.metadata()?.len() == 0 {
            self.remove_file(&self.partial.join(name))?;
        }
        Ok(())
    }

    /// Opens a file to read: beneath the root without following links, or,
    /// outside it, without following a link at its last component.
    pub fn open_file(&self, path: &Path) -> io::Result<File> {
        match path.strip_prefix(&self.root) {
            Ok(rel) => Ok(File::from(self.open(rel, OFlags::RDONLY, Mode::empty())?)),
            Err(_) => Ok(File::from(rustix::fs::open(
                path,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?)),
        }
    }

    /// Removes a file beneath the root (a link is removed, never followed);
    /// a missing file is `NotFound`.
    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        let (folder, name) = self.parent_of(path)?;
        Ok(rustix::fs::unlinkat(&folder, name, AtFlags::empty())?)
    }

    /// Opens `rel` beneath the root; a link on the way is a
    /// [`FileError::Link`] naming it.
    fn open(&self, rel: &Path, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        open_beneath(self.root_fd.as_fd(), rel, flags, mode).map_err(|errno| self.explain(rel, errno))
    }

    /// Names the first link on `rel` when `errno` may come from one.
    fn explain(&self, rel: &Path, errno: Errno) -> io::Error {
        if matches!(errno, Errno::LOOP | Errno::NOTDIR) {
            let mut prefix = PathBuf::new();
            for component in rel.components() {
                prefix.push(component);
                if is_link(self.root_fd.as_fd(), &prefix) {
                    return FileError::Link(self.root.join(prefix)).into();
                }
            }
        }
        errno.into()
    }

    /// Makes every folder of `rel` beneath the root (each one checked not
    /// to be a link) and opens the last.
    fn make_folder(&self, rel: &Path) -> io::Result<OwnedFd> {
        let mut current = Arc::clone(&self.root_fd);
        let mut path = self.root.clone();
        for component in rel.components() {
            let Component::Normal(name) = component else {
                return Err(io::Error::other(format!(
                    "{} is not a plain folder name",
                    rel.display()
                )));
            };
            path.push(name);
            match rustix::fs::mkdirat(&*current, name, Mode::from_raw_mode(0o777)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(errno) => return Err(errno.into()),
            }
            let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            current = match rustix::fs::openat(&*current, name, flags, Mode::empty()) {
                Ok(fd) => Arc::new(fd),
                Err(Errno::LOOP | Errno::NOTDIR) if is_link(current.as_fd(), name) => {
                    return Err(FileError::Link(path).into());
                }
                Err(errno) => return Err(errno.into()),
            };
        }
        Arc::try_unwrap(current).or_else(|shared| shared.try_clone())
    }

    /// The open folder of `path` and its last name: beneath the root
    /// without following links, elsewhere as the system resolves it.
    fn parent_of<'p>(&self, path: &'p Path) -> io::Result<(OwnedFd, &'p OsStr)> {
        let (parent, name) = split_name(path)?;
        let folder = match parent.strip_prefix(&self.root) {
            Ok(rel) if rel.as_os_str().is_empty() => self.root_fd.try_clone()?,
            Ok(rel) => self.open(rel, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty())?,
            Err(_) => open_folder(parent)?,
        };
        Ok((folder, name))
    }

    /// The folder of `dest` (made if needed) and its last name; `dest` must
    /// lie beneath the root.
    fn dest_folder<'p>(&self, dest: &'p Path) -> io::Result<(OwnedFd, &'p OsStr)> {
        let (parent, name) = split_name(dest)?;
        let rel = parent
            .strip_prefix(&self.root)
            .map_err(|_| io::Error::other(format!("{} lies outside {}", dest.display(), self.root.display())))?;
        Ok((self.make_folder(rel)?, name))
    }

    /// Places `source` at `dest` (beneath the root) without ever replacing
    /// a file: makes the source's bytes durable first (when `durable`: one
    /// `syncfs` shared with the jobs finishing at the same time, see
    /// `filesync`), links it (`link(2)` never replaces), and fsyncs the
    /// destination folder after (shared likewise). A source on
    /// another filesystem is copied instead: to a temporary file in the
    /// destination folder, fsynced, re-hashed against `sha256`, then linked
    /// the same way. A file already at `dest` with the same SHA-256 counts as
    /// placed; a link there is a [`FileError::Link`].
    pub fn place(&self, source: &Path, dest: &Path, sha256: &str, durable: bool) -> io::Result<Placement> {
        let (folder, name) = self.dest_folder(dest)?;
        let (source_folder, source_name) = self.parent_of(source)?;
        let source_file = self.open_file(source)?;
        if durable {
            super::filesync::sync_file(&source_file)?;
        }
        match rustix::fs::linkat(&source_folder, source_name, &folder, name, AtFlags::empty()) {
            Ok(()) => {
                if durable {
                    super::dirsync::sync_dir(split_name(dest)?.0)?;
                }
                Ok(Placement::Placed)
            }
            Err(Errno::EXIST) => occupant(folder.as_fd(), name, dest, &source_file, sha256),
            Err(Errno::XDEV) => copy_into(folder.as_fd(), name, dest, source, source_file, sha256, durable),
            Err(errno) => Err(errno.into()),
        }
    }

    /// Makes `dest` — a file this job placed, with the same verified bytes as
    /// `first` — a hard link to `first`: link to a temporary name beside
    /// `dest`, then `rename` over it, so `dest` always holds the same complete
    /// bytes. Returns false (touching nothing) when the sizes differ, either
    /// path is a link, or `first` is on another filesystem.
    pub fn relink_to_first(&self, first: &Path, dest: &Path, durable: bool) -> io::Result<bool> {
        let (folder, name) = self.dest_folder(dest)?;
        let (first_folder, first_name) = self.parent_of(first)?;
        let stat = |dir: &OwnedFd, name: &OsStr| rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW);
        let (a, b) = (stat(&first_folder, first_name)?, stat(&folder, name)?);
        let regular = |st: &rustix::fs::Stat| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile;
        if !regular(&a) || !regular(&b) || a.st_size != b.st_size {
            return Ok(false);
        }
        if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) {
            return Ok(true);
        }
        let temp = TempName {
            dir: folder.as_fd(),
            name: format!(".oncefetch-link-{:016x}", fastrand::u64(..)),
        };
        match rustix::fs::linkat(&first_folder, first_name, &folder, &temp.name, AtFlags::empty()) {
            Err(Errno::XDEV) => return Ok(false),
            linked => linked?,
        }
        rustix::fs::renameat(&folder, &temp.name, &folder, name)?;
        if durable {
            super::dirsync::sync_dir(split_name(dest)?.0)?;
        }
        Ok(true)
    }
}

/// What stands at `name` in `folder` when a placement found it taken.
fn occupant(folder: BorrowedFd<'_>, name: &OsStr, dest: &Path, source: &File, sha256: &str) -> io::Result<Placement> {
    let st = rustix::fs::statat(folder, name, AtFlags::SYMLINK_NOFOLLOW)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Symlink => return Err(FileError::Link(dest.to_owned()).into()),
        FileType::RegularFile => {}
        _ => return Ok(Placement::Occupied),
    }
    let ours = source.metadata()?;
    if (ours.dev(), ours.ino()) == (st.st_dev, st.st_ino) {
        return Ok(Placement::AlreadyThere);
    }
    let there = File::from(rustix::fs::openat(
        folder,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?);
    if hash_reader(there)?.0 == sha256 {
        Ok(Placement::AlreadyThere)
    } else {
        Ok(Placement::Occupied)
    }
}

/// The verified copy of [`OutDir::place`] across filesystems.
fn copy_into(
    folder: BorrowedFd<'_>,
    name: &OsStr,
    dest: &Path,
    source: &Path,
    mut source_file: File,
    sha256: &str,
    durable: bool,
) -> io::Result<Placement> {
    let temp = TempName {
        dir: folder,
        name: format!(".oncefetch-copy-{:016x}", fastrand::u64(..)),
    };
    let mut copy = File::from(rustix::fs::openat(
        folder,
        &temp.name,
        OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o666),
    )?);
    io::copy(&mut source_file, &mut copy)?;
    if durable {
        copy.sync_all()?;
    }
    copy.rewind()?;
    if hash_reader(&copy)?.0 != sha256 {
        return Err(FileError::CopyMismatch {
            from: source.to_owned(),
            expected: sha256.to_owned(),
        }
        .into());
    }
    match rustix::fs::linkat(folder, &temp.name, folder, name, AtFlags::empty()) {
        Ok(()) => {}
        Err(Errno::EXIST) => return occupant(folder, name, dest, &copy, sha256),
        Err(errno) => return Err(errno.into()),
    }
    drop(temp);
    if durable {
        super::dirsync::sync_dir(split_name(dest)?.0)?;
    }
    Ok(Placement::Copied)
}

/// SHA-256 (hex) and length of a file; a link at `path` is not followed.
pub fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    let file = rustix::fs::open(path, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
    hash_reader(File::from(file))
}

/// SHA-256 (hex) and length of what `reader` reads to its end.
fn hash_reader(mut reader: impl Read) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_unsafe_characters() {
        assert_eq!(encode_component("a/b"), "a%2Fb");
        assert_eq!(encode_component("50%"), "50%25");
        assert_eq!(encode_component("a\\b"), "a%5Cb");
        assert_eq!(encode_component("nul\0x"), "nul%00x");
        assert_eq!(encode_component("tab\tid"), "tab%09id");
        assert_eq!(encode_component("."), "%2E");
        assert_eq!(encode_component(".."), "%2E.");
        assert_eq!(encode_component(".hidden"), "%2Ehidden");
        assert_eq!(encode_component("a.b"), "a.b");
        assert_eq!(encode_component("論文"), "論文");
        assert_eq!(encode_component("\u{85}"), "%C2%85", "C1 controls are Cc too");
        assert_eq!(
            encode_component("a~b"),
            "a%7Eb",
            "only a shortened name carries a bare ~"
        );
    }

    #[test]
    fn shortens_long_components_without_splitting() {
        let long = "é".repeat(150);
        let enc = encode_component(&long);
        assert!(enc.len() <= 150 + 1 + 16, "{}", enc.len());
        assert!(enc.contains('~'));
        let escapes = "/".repeat(100);
        let enc = encode_component(&escapes);
        let (prefix, hash) = enc.split_once('~').unwrap();
        assert_eq!(prefix.len() % 3, 0, "no %XX split: {prefix}");
        assert_eq!(hash.len(), 16);
        assert_ne!(
            encode_component(&"x".repeat(300)),
            encode_component(&format!("{}y", "x".repeat(299)))
        );
        assert_eq!(encode_component(&"x".repeat(200)), "x".repeat(200));
        let shortened = encode_component(&"x".repeat(300));
        let digest = hex::encode(Sha256::digest("x".repeat(300).as_bytes()));
        assert_eq!(shortened, format!("{}~{}", "x".repeat(150), &digest[..16]));
        let lookalike = format!("{}~{}", "x".repeat(150), &digest[..16]);
        assert_ne!(
            encode_component(&lookalike),
            shortened,
            "an id shaped like a shortened name"
        );
        assert_eq!(
            encode_component(&"~".repeat(70)).len(),
            150 + 1 + 16,
            "70 escaped ~ (210 bytes) are shortened"
        );
    }

    #[test]
    fn partial_names_round_trip() {
        let tag = Some("0123456789abcdef".to_owned());
        for (validator_tag, split) in [(None, false), (tag.clone(), false), (tag, true)] {
            let name = PartialName {
                job_key: "ab".repeat(32),
                epoch: 7,
                validator_tag,
                split,
            };
            assert_eq!(PartialName::parse(&name.file_name()), Some(name));
        }
        assert!(PartialName::parse("k.7.0123456789abcdef.split.part").unwrap().split);
        assert_eq!(
            PartialName::parse("k.7.split.part"),
            None,
            "a split file has a validator"
        );
        // An epoch that looks like a tag is still an epoch.
        let name = PartialName::parse("k.1234567890123456.part").unwrap();
        assert_eq!((name.epoch, name.validator_tag), (1_234_567_890_123_456, None));
        assert_eq!(PartialName::parse("junk.txt"), None);
        assert_eq!(PartialName::parse("k.x.part"), None);
    }

    #[test]
    fn placement_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutDir::create(dir.path()).unwrap();
        let src = out.partial_path("k", 1, None);
        fs::write(&src, b"hello").unwrap();
        let (sha, _) = hash_file(&src).unwrap();
        let dest = out.final_path("w", "a");
        assert_eq!(out.place(&src, &dest, &sha, true).unwrap(), Placement::Placed);
        assert_eq!(out.place(&src, &dest, &sha, true).unwrap(), Placement::AlreadyThere);
        let other = out.partial_path("k", 2, None);
        fs::write(&other, b"other").unwrap();
        let (other_sha, _) = hash_file(&other).unwrap();
        assert_eq!(out.place(&other, &dest, &other_sha, true).unwrap(), Placement::Occupied);
        assert_eq!(fs::read(&dest).unwrap(), b"hello");
        // Same bytes placed by another job: relinked to the first copy.
        fs::write(&other, b"hello").unwrap();
        let second = out.final_path("w2", "a");
        assert_eq!(out.place(&other, &second, &sha, false).unwrap(), Placement::Placed);
        assert!(out.relink_to_first(&dest, &second, true).unwrap());
        let (a, b) = (fs::metadata(&dest).unwrap(), fs::metadata(&second).unwrap());
        assert_eq!(a.ino(), b.ino());
        let names: Vec<_> = fs::read_dir(second.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary link is left");
    }

    fn link_of(err: &io::Error) -> Option<&Path> {
        match FileError::of(err) {
            Some(FileError::Link(path)) => Some(path),
            _ => None,
        }
    }

    #[test]
    fn links_beneath_the_root_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let out = OutDir::create(&dir.path().join("out")).unwrap();
        let src = out.partial_path("k", 1, None);
        fs::write(&src, b"bytes").unwrap();
        let (sha, _) = hash_file(&src).unwrap();
        // A linked job folder.
        std::os::unix::fs::symlink(&elsewhere, out.root().join("w")).unwrap();
        let err = out.place(&src, &out.final_path("w", "a"), &sha, false).unwrap_err();
        assert_eq!(link_of(&err), Some(out.root().join("w").as_path()), "{err}");
        assert!(!elsewhere.join("a").exists());
        // A dangling link at the final path.
        fs::create_dir(out.root().join("v")).unwrap();
        let dest = out.final_path("v", "a");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dest).unwrap();
        let err = out.place(&src, &dest, &sha, false).unwrap_err();
        assert_eq!(link_of(&err), Some(dest.as_path()), "{err}");
        assert!(!dir.path().join("nowhere").exists());
        // Reading through a linked folder.
        fs::write(elsewhere.join("f"), b"x").unwrap();
        let err = out.open_file(&out.root().join("w").join("f")).unwrap_err();
        assert_eq!(link_of(&err), Some(out.root().join("w").as_path()), "{err}");
        // The per-component walk (kernels without openat2) refuses the same.
        let walked = open_each(out.root_fd.as_fd(), Path::new("w/f"), OFlags::RDONLY, Mode::empty());
        // O_NOFOLLOW on a linked folder: ELOOP, or ENOTDIR with O_DIRECTORY.
        assert!(matches!(walked.unwrap_err(), Errno::LOOP | Errno::NOTDIR));
        let walked = open_each(out.root_fd.as_fd(), Path::new("v/a"), OFlags::RDONLY, Mode::empty());
        assert_eq!(walked.unwrap_err(), Errno::LOOP, "a link at the last component");
        let walked = open_each(
            out.root_fd.as_fd(),
            Path::new("../out/v"),
            OFlags::RDONLY,
            Mode::empty(),
        );
        assert_eq!(walked.unwrap_err(), Errno::XDEV, "nothing outside the root");
        assert!(open_each(
            out.root_fd.as_fd(),
            Path::new(".oncefetch/partial/k.1.part"),
            OFlags::RDONLY,
            Mode::empty()
        )
        .is_ok());
    }

    #[test]
    fn a_deleted_partial_folder_lists_nothing_and_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutDir::create(dir.path()).unwrap();
        fs::remove_dir_all(out.partial_dir()).unwrap();
        assert!(out.partials_of("k").unwrap().is_empty());
        assert!(out.all_partials().unwrap().is_empty());
        let name = PartialName {
            job_key: "k".into(),
            epoch: 1,
            validator_tag: None,
            split: false,
        }
        .file_name();
        drop(out.create_partial(&name).unwrap());
        assert_eq!(out.partials_of("k").unwrap().len(), 1);
        out.remove_partial_if_empty(&name).unwrap();
        assert!(
            out.partials_of("k").unwrap().is_empty(),
            "an empty partial file is removed"
        );
    }
}
