//! The output folder (SPEC §6): safe file names, partial files, and atomic
//! no-replace placement with fsync.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Longest encoded component kept whole, in bytes.
const MAX_COMPONENT: usize = 200;
/// Bytes of the encoded component kept before `~` and the hash.
const KEEP_PREFIX: usize = 150;

/// One id as one file-name component: `%`, `/`, `\`, NUL, control characters
/// and a leading `.` percent-encoded; a long result shortened to 150 bytes,
/// `~` and 16 hex digits of the id's SHA-256.
pub fn encode_component(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for (i, c) in id.chars().enumerate() {
        let escape = matches!(c, '%' | '/' | '\\') || c.is_control() || (i == 0 && c == '.');
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

/// The output folder and its `.oncefetch/partial/` area.
#[derive(Debug, Clone)]
pub struct OutDir {
    root: PathBuf,
    partial: PathBuf,
}

/// A partial file's name, parsed: `<job_key>.<epoch>.<tag>.part`, where
/// `tag` identifies the validator the bytes were downloaded under (see
/// `resume::validator_tag`), or `<job_key>.<epoch>.part` for bytes
/// downloaded without a validator (never resumed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialName {
    /// Job key.
    pub job_key: String,
    /// Epoch that wrote it.
    pub epoch: i64,
    /// Tag of the validator of the bytes, if they had one.
    pub validator_tag: Option<String>,
}

impl PartialName {
    /// Parses a file name; `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(".part")?;
        let (head, last) = stem.rsplit_once('.')?;
        if super::resume::is_tag(last) {
            if let Some((job_key, epoch)) = head.rsplit_once('.') {
                if let Ok(epoch) = epoch.parse() {
                    return Some(Self {
                        job_key: job_key.to_owned(),
                        epoch,
                        validator_tag: Some(last.to_owned()),
                    });
                }
            }
        }
        Some(Self {
            job_key: head.to_owned(),
            epoch: last.parse().ok()?,
            validator_tag: None,
        })
    }

    /// The file name.
    pub fn file_name(&self) -> String {
        match &self.validator_tag {
            Some(tag) => format!("{}.{}.{tag}.part", self.job_key, self.epoch),
            None => format!("{}.{}.part", self.job_key, self.epoch),
        }
    }
}

impl OutDir {
    /// Creates (if needed) and opens `root`, made absolute.
    pub fn create(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        let root = fs::canonicalize(root)?;
        let partial = root.join(".oncefetch").join("partial");
        fs::create_dir_all(&partial)?;
        Ok(Self { root, partial })
    }

    /// The absolute root.
    pub fn root(&self) -> &Path {
        &self.root
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
            }
            .file_name(),
        )
    }

    /// Every partial file of one job, with its parsed name and length, by
    /// epoch.
    pub fn partials_of(&self, job_key: &str) -> io::Result<Vec<(PartialName, PathBuf, u64)>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.partial)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(parsed) = name.to_str().and_then(PartialName::parse) else {
                continue;
            };
            if parsed.job_key == job_key {
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                found.push((parsed, entry.path(), len));
            }
        }
        found.sort_by_key(|(name, _, _)| name.epoch);
        Ok(found)
    }

    /// Every partial file in the folder.
    pub fn all_partials(&self) -> io::Result<Vec<(PartialName, PathBuf)>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.partial)? {
            let entry = entry?;
            if let Some(parsed) = entry.file_name().to_str().and_then(PartialName::parse) {
                found.push((parsed, entry.path()));
            }
        }
        Ok(found)
    }
}

/// How [`place_no_replace`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The file now stands at the final path.
    Placed,
    /// The final path already held exactly these bytes.
    AlreadyThere,
    /// The final path holds other bytes; nothing was touched.
    Occupied,
}

/// Places `source` at `dest` with `link(2)`, which never replaces: fsyncs the
/// source first (when `durable`) and the destination folder after. A file
/// already at `dest` with the same SHA-256 counts as placed.
pub fn place_no_replace(source: &Path, dest: &Path, sha256: &str, durable: bool) -> io::Result<Placement> {
    let parent = dest
        .parent()
        .ok_or_else(|| io::Error::other("final path has no parent"))?;
    fs::create_dir_all(parent)?;
    if durable {
        File::open(source)?.sync_all()?;
    }
    match fs::hard_link(source, dest) {
        Ok(()) => {
            if durable {
                super::dirsync::sync_dir(parent)?;
            }
            Ok(Placement::Placed)
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            if same_file(source, dest)? || hash_file(dest)?.0 == sha256 {
                Ok(Placement::AlreadyThere)
            } else {
                Ok(Placement::Occupied)
            }
        }
        Err(err) => Err(err),
    }
}

/// Makes `dest` — a file this job placed, with the same verified bytes as
/// `first` — a hard link to `first`: link to a temporary name beside `dest`,
/// then `rename` over it, so `dest` always holds the same complete bytes.
/// Returns false (touching nothing) when the sizes differ.
pub fn relink_to_first(first: &Path, dest: &Path, durable: bool) -> io::Result<bool> {
    if same_file(first, dest)? {
        return Ok(true);
    }
    if fs::metadata(first)?.len() != fs::metadata(dest)?.len() {
        return Ok(false);
    }
    let parent = dest
        .parent()
        .ok_or_else(|| io::Error::other("final path has no parent"))?;
    let temp = parent.join(format!(".oncefetch-link-{:016x}", fastrand::u64(..)));
    fs::hard_link(first, &temp)?;
    if let Err(err) = fs::rename(&temp, dest) {
        let _ = fs::remove_file(&temp);
        return Err(err);
    }
    if durable {
        super::dirsync::sync_dir(parent)?;
    }
    Ok(true)
}

/// Whether two paths name one inode.
pub fn same_file(a: &Path, b: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (ma, mb) = (fs::metadata(a)?, fs::metadata(b)?);
    Ok(ma.dev() == mb.dev() && ma.ino() == mb.ino())
}

/// SHA-256 (hex) and length of a file.
pub fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
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
    }

    #[test]
    fn partial_names_round_trip() {
        for validator_tag in [None, Some("0123456789abcdef".to_owned())] {
            let name = PartialName {
                job_key: "ab".repeat(32),
                epoch: 7,
                validator_tag,
            };
            assert_eq!(PartialName::parse(&name.file_name()), Some(name));
        }
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
        assert_eq!(place_no_replace(&src, &dest, &sha, true).unwrap(), Placement::Placed);
        assert_eq!(
            place_no_replace(&src, &dest, &sha, true).unwrap(),
            Placement::AlreadyThere
        );
        let other = out.partial_path("k", 2, None);
        fs::write(&other, b"other").unwrap();
        let (other_sha, _) = hash_file(&other).unwrap();
        assert_eq!(
            place_no_replace(&other, &dest, &other_sha, true).unwrap(),
            Placement::Occupied
        );
        assert_eq!(fs::read(&dest).unwrap(), b"hello");
    }
}
