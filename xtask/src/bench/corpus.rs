//! The benchmark corpus: small files and one large file of deterministic pseudo-random bytes with
//! their SHA-256, the input file each client reads, and the check of a client's output against it.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::thread;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Seed of the PRNG that picks the small files' sizes and seeds their contents.
const SEED: u64 = 0x0CEF_E7C4_B3E4_C400;
/// Seed of the split workload's file when it is not the large file.
const SPLIT_SEED: u64 = 0x5B17_0CEF_E7C4_0016;
/// Smallest and largest small file.
const SMALL_SIZES: (u64, u64) = (1024, 64 * 1024);
/// The large file is generated and hashed in pieces of this size.
const CHUNK: usize = 4 << 20;

/// One file of the corpus.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Path below the served root and below every client's output folder, e.g. `small/000042`.
    pub(crate) rel: String,
    /// Length in bytes.
    pub(crate) size: u64,
    /// Lowercase hex SHA-256 of the content.
    pub(crate) sha256: String,
}

impl Entry {
    /// The manifest `work_id` (the folder) and `artifact_id` (the file name) that make oncefetch
    /// write this entry to `OUT/<rel>`.
    fn ids(&self) -> (&str, &str) {
        self.rel.split_once('/').expect("corpus paths have one folder")
    }
}

/// What [`Corpus::generate`] wrote, for the checks of every run.
#[derive(Debug)]
pub(crate) struct Corpus {
    /// The small files, in manifest order.
    pub(crate) small: Vec<Entry>,
    /// The large file, if one was asked for.
    pub(crate) large: Option<Entry>,
}

impl Corpus {
    /// Writes `small` files of 1–64 KiB and, unless `large_size` is 0, one file of `large_size`
    /// bytes under `www`, the same bytes on every run.
    pub(crate) fn generate(www: &Path, small: usize, large_size: u64) -> Result<Corpus> {
        let dir = www.join("small");
        fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
        let mut rng = SEED;
        let mut entries = Vec::with_capacity(small);
        for i in 0..small {
            let (lo, hi) = SMALL_SIZES;
            let size = lo + splitmix64(&mut rng) % (hi - lo + 1);
            let seed = splitmix64(&mut rng);
            let bytes = oncefetch_test_server::content(seed, usize::try_from(size)?);
            let rel = format!("small/{i:06}");
            let path = www.join(&rel);
            fs::write(&path, &bytes).with_context(|| format!("could not write {}", path.display()))?;
            entries.push(Entry {
                rel,
                size,
                sha256: hex(&Sha256::digest(&bytes)),
            });
        }
        let large = if large_size == 0 {
            None
        } else {
            Some(write_large(www, "large/file.bin", large_size, splitmix64(&mut rng))?)
        };
        Ok(Corpus { small: entries, large })
    }

    /// The split workload's file of `size` bytes: the large file when it has that size (no second
    /// copy on the disk), else `split/file.bin`, written under `www` now.
    pub(crate) fn split_file(&self, www: &Path, size: u64) -> Result<Entry> {
        match &self.large {
            Some(large) if large.size == size => Ok(large.clone()),
            _ => write_large(www, "split/file.bin", size, SPLIT_SEED),
        }
    }

    /// Total bytes of the small files.
    pub(crate) fn small_bytes(&self) -> u64 {
        self.small.iter().map(|e| e.size).sum()
    }
}

/// Writes `rel` (`FOLDER/NAME`), generated and hashed a chunk at a time so it never sits in memory
/// whole.
fn write_large(www: &Path, rel: &str, size: u64, seed: u64) -> Result<Entry> {
    let rel = rel.to_owned();
    let path = www.join(&rel);
    fs::create_dir_all(path.parent().expect("a parent")).context("could not create the large file's folder")?;
    let mut out = File::create(&path).with_context(|| format!("could not create {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut left = size;
    let mut chunk_seed = seed;
    while left > 0 {
        let len = usize::try_from(left.min(CHUNK as u64))?;
        let bytes = oncefetch_test_server::content(splitmix64(&mut chunk_seed), len);
        hasher.update(&bytes);
        out.write_all(&bytes)
            .with_context(|| format!("could not write {}", path.display()))?;
        left -= len as u64;
    }
    Ok(Entry {
        rel,
        size,
        sha256: hex(&hasher.finalize()),
    })
}

/// The inputs of one workload (the small files, or the large file) for every client.
#[derive(Debug)]
pub(crate) struct Inputs {
    /// JSON Lines manifest for `oncefetch fetch` (`work_id` = folder, `artifact_id` = file name).
    pub(crate) manifest: PathBuf,
    /// `aria2c -i` list: the URL, then `  out=REL`.
    pub(crate) aria2_list: PathBuf,
    /// `curl -K` config: `url = …` / `output = REL` pairs, relative to curl's working folder.
    pub(crate) curl_config: PathBuf,
}

/// Writes the inputs for `entries` served at `base` (`http://127.0.0.1:PORT`) into `dir`, named
/// after `name`.
pub(crate) fn write_inputs(dir: &Path, name: &str, base: &str, entries: &[Entry]) -> Result<Inputs> {
    let inputs = Inputs {
        manifest: dir.join(format!("{name}.jsonl")),
        aria2_list: dir.join(format!("{name}.aria2")),
        curl_config: dir.join(format!("{name}.curl")),
    };
    let mut manifest = create(&inputs.manifest)?;
    let mut aria2 = create(&inputs.aria2_list)?;
    let mut curl = create(&inputs.curl_config)?;
    for entry in entries {
        let url = format!("{base}/{}", entry.rel);
        let (work, artifact) = entry.ids();
        let line = serde_json::json!({ "work_id": work, "artifact_id": artifact, "url": url });
        writeln!(manifest, "{line}")?;
        writeln!(aria2, "{url}\n  out={}", entry.rel)?;
        writeln!(curl, "url = \"{url}\"\noutput = \"{}\"", entry.rel)?;
    }
    for mut file in [manifest, aria2, curl] {
        file.flush()?;
    }
    Ok(inputs)
}

/// Writes a manifest of `lines` distinct artifacts on 16 hosts, for the planning benchmark (nothing
/// is fetched).
pub(crate) fn write_plan_manifest(path: &Path, lines: u64) -> Result<()> {
    let mut out = create(path)?;
    for i in 0..lines {
        writeln!(
            out,
            r#"{{"work_id":"work-{}","artifact_id":"file-{}.pdf","url":"https://mirror{}.example.org/records/{}/file-{}.pdf"}}"#,
            i / 4,
            i % 4,
            i % 16,
            i / 4,
            i % 4
        )?;
    }
    out.flush()?;
    Ok(())
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    let file = File::create(path).with_context(|| format!("could not create {}", path.display()))?;
    Ok(BufWriter::with_capacity(1 << 20, file))
}

/// Checks that `out` holds exactly `expected` (ignoring the top-level folders in `ignore`) and that
/// every file has the expected SHA-256; fails naming the first problems found.
pub(crate) fn verify(out: &Path, expected: &[Entry], ignore: &[&str]) -> Result<()> {
    let mut found = BTreeSet::new();
    walk(out, out, ignore, &mut found)?;
    let wanted: BTreeSet<&str> = expected.iter().map(|e| e.rel.as_str()).collect();
    let missing: Vec<&&str> = wanted.iter().filter(|rel| !found.contains(**rel)).collect();
    let extra: Vec<&String> = found.iter().filter(|rel| !wanted.contains(rel.as_str())).collect();
    if !missing.is_empty() || !extra.is_empty() {
        bail!(
            "{}: {} files, expected {}; {} missing (e.g. {:?}), {} unexpected (e.g. {:?})",
            out.display(),
            found.len(),
            wanted.len(),
            missing.len(),
            missing.iter().take(3).collect::<Vec<_>>(),
            extra.len(),
            extra.iter().take(3).collect::<Vec<_>>()
        );
    }
    // Two threads: hashing is not timed, but gigabytes of it add up.
    let halves = expected.split_at(expected.len() / 2);
    let bad: Vec<String> = thread::scope(|scope| {
        let workers = [halves.0, halves.1].map(|part| scope.spawn(move || check_hashes(out, part)));
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a hashing thread panicked"))
            .collect()
    });
    if !bad.is_empty() {
        bail!(
            "{}: {} files differ from the corpus: {}",
            out.display(),
            bad.len(),
            bad.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        );
    }
    Ok(())
}

/// The problems of `entries` under `out`, one line each.
fn check_hashes(out: &Path, entries: &[Entry]) -> Vec<String> {
    let mut bad = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    for entry in entries {
        let path = out.join(&entry.rel);
        match hash_file(&path, &mut buf) {
            Ok((size, sha)) if size == entry.size && sha == entry.sha256 => {}
            Ok((size, sha)) => bad.push(format!(
                "{}: {size} bytes sha256 {sha}, expected {} bytes {}",
                entry.rel, entry.size, entry.sha256
            )),
            Err(e) => bad.push(format!("{}: {e:#}", entry.rel)),
        }
    }
    bad
}

fn hash_file(path: &Path, buf: &mut [u8]) -> Result<(u64, String)> {
    let mut file = File::open(path).with_context(|| format!("could not open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut size = 0;
    loop {
        let n = file.read(buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex(&hasher.finalize())))
}

/// Collects the regular files below `dir` as `/`-separated paths relative to `root`; anything else
/// (a symlink, a special file) is an error.
fn walk(root: &Path, dir: &Path, ignore: &[&str], found: &mut BTreeSet<String>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("could not list {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if dir != root || !ignore.contains(&rel.as_str()) {
                walk(root, &path, ignore, found)?;
            }
        } else if kind.is_file() {
            found.insert(rel);
        } else {
            bail!("{} is neither a file nor a folder", path.display());
        }
    }
    Ok(())
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The splitmix64 PRNG step.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("oncefetch-xtask-corpus-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_corpus_is_deterministic_and_verifies_against_itself() {
        let a = scratch("a");
        let b = scratch("b");
        let first = Corpus::generate(&a, 20, 5 << 20).unwrap();
        let second = Corpus::generate(&b, 20, 5 << 20).unwrap();
        let hashes = |c: &Corpus| c.small.iter().map(|e| e.sha256.clone()).collect::<Vec<_>>();
        assert_eq!(hashes(&first), hashes(&second));
        assert!(first.small.iter().all(|e| (1024..=65536).contains(&e.size)));
        let large = first.large.clone().unwrap();
        assert_eq!(large.sha256, second.large.as_ref().unwrap().sha256);
        assert_eq!(fs::metadata(a.join(&large.rel)).unwrap().len(), 5 << 20);

        let mut all = first.small.clone();
        all.push(large);
        verify(&a, &all, &[]).unwrap();

        // A flipped byte, a missing file and a stray file are each caught.
        let victim = a.join(&first.small[3].rel);
        let mut bytes = fs::read(&victim).unwrap();
        bytes[0] ^= 1;
        fs::write(&victim, bytes).unwrap();
        assert!(format!("{:#}", verify(&a, &all, &[]).unwrap_err()).contains("differ"));
        fs::remove_file(&victim).unwrap();
        assert!(format!("{:#}", verify(&a, &all, &[]).unwrap_err()).contains("missing"));
        fs::create_dir_all(b.join(".oncefetch/partial")).unwrap();
        fs::write(b.join(".oncefetch/partial/x"), b"x").unwrap();
        let mut all_b = second.small.clone();
        all_b.push(second.large.clone().unwrap());
        verify(&b, &all_b, &[".oncefetch"]).unwrap();
        fs::write(b.join("small/stray"), b"x").unwrap();
        assert!(format!("{:#}", verify(&b, &all_b, &[".oncefetch"]).unwrap_err()).contains("unexpected"));

        fs::remove_dir_all(&a).unwrap();
        fs::remove_dir_all(&b).unwrap();
    }

    #[test]
    fn the_split_file_is_the_large_file_when_their_sizes_agree() {
        let dir = scratch("split");
        let corpus = Corpus::generate(&dir, 0, 1 << 20).unwrap();
        let same = corpus.split_file(&dir, 1 << 20).unwrap();
        assert_eq!(same.rel, "large/file.bin");
        assert!(!dir.join("split").exists(), "no second copy");
        let other = corpus.split_file(&dir, 3 << 20).unwrap();
        assert_eq!((other.rel.as_str(), other.size), ("split/file.bin", 3 << 20));
        assert_eq!(other.sha256, corpus.split_file(&dir, 3 << 20).unwrap().sha256);
        verify(&dir, &[same, other], &["small"]).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0xAB, 0x7f]), "00ab7f");
    }
}
