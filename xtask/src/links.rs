//! Every link in the repository's Markdown (README.md, docs/, the crates' READMEs) points inside
//! the repository, at a file or folder that exists, or to an http(s) address: no `../shared/…`
//! that works only beside a checkout, no absolute path, no `file:` address.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::bench::root;

/// The Markdown files under `dir` (recursively), skipping hidden folders and `target`.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                files.extend(markdown_files(&path));
            }
        } else if name.ends_with(".md") {
            files.push(path);
        }
    }
    files
}

/// The link targets of `text` with their line numbers: inline links and images `[text](target)`
/// and reference definitions `[label]: target`, outside code spans and fenced code blocks.
fn targets(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut fence: Option<&str> = None;
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        let trimmed = line.trim_start();
        if let Some(open) = fence {
            if trimmed.starts_with(open) {
                fence = None;
            }
            continue;
        }
        if let Some(marker) = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m)) {
            fence = Some(marker);
            continue;
        }
        let definition = trimmed
            .strip_prefix('[')
            .and_then(|rest| rest.split_once(']'))
            .and_then(|(_, after)| after.strip_prefix(':'));
        if let Some(after) = definition {
            if let Some(target) = after.split_whitespace().next() {
                found.push((number, target.trim_matches(['<', '>']).to_owned()));
            }
            continue;
        }
        let chars: Vec<char> = line.chars().collect();
        let mut at = 0;
        while at < chars.len() {
            if chars[at] == '`' {
                // Skip the code span: up to a run of as many backticks (or the line's end).
                let run = chars[at..].iter().take_while(|&&c| c == '`').count();
                let mut end = at + run;
                loop {
                    match chars[end..].iter().position(|&c| c == '`') {
                        None => {
                            end = chars.len();
                            break;
                        }
                        Some(p) => {
                            let start = end + p;
                            let closing = chars[start..].iter().take_while(|&&c| c == '`').count();
                            end = start + closing;
                            if closing == run {
                                break;
                            }
                        }
                    }
                }
                at = end;
            } else if chars[at] == ']' && chars.get(at + 1) == Some(&'(') {
                let (target, end) = destination(&chars, at + 2);
                found.push((number, target));
                at = end;
            } else {
                at += 1;
            }
        }
    }
    found
}

/// The link destination starting at `chars[start]` (after `](`), and where it ends: `<…>`, or up
/// to white space (a title follows) or the `)` that balances the opening one.
fn destination(chars: &[char], start: usize) -> (String, usize) {
    if chars.get(start) == Some(&'<') {
        let end = chars[start..]
            .iter()
            .position(|&c| c == '>')
            .map_or(chars.len(), |p| start + p);
        return (chars[start + 1..end].iter().collect(), end);
    }
    let mut depth = 0usize;
    let mut end = start;
    while let Some(&c) = chars.get(end) {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => break,
            ')' => depth -= 1,
            c if c.is_whitespace() => break,
            _ => {}
        }
        end += 1;
    }
    (chars[start..end].iter().collect(), end)
}

/// Why `target`, linked from `file`, is not allowed (`None` when it is): it must be an http(s)
/// address, an anchor, or a relative path to something that exists inside `root`.
fn problem(root: &Path, file: &Path, target: &str) -> Option<String> {
    if target.is_empty() {
        return Some("an empty link".into());
    }
    if let Some((scheme, _)) = target.split_once(':') {
        let is_scheme = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if is_scheme {
            return match scheme.to_ascii_lowercase().as_str() {
                "http" | "https" => None,
                other => Some(format!("a {other}: address (only http and https leave the repository)")),
            };
        }
    }
    if target.starts_with('#') {
        return None;
    }
    let path = target.split(['#', '?']).next().unwrap_or_default().replace("%20", " ");
    if path.starts_with('/') {
        return Some("an absolute path (link relative to the file)".into());
    }
    let dir = file.parent().expect("a file has a folder");
    let mut resolved = PathBuf::new();
    for part in dir.join(&path).components() {
        match part {
            Component::ParentDir => {
                if !resolved.pop() {
                    return Some("a path above the file system's root".into());
                }
            }
            Component::CurDir => {}
            other => resolved.push(other),
        }
    }
    if !resolved.starts_with(root) {
        return Some(format!("outside the repository ({})", resolved.display()));
    }
    match resolved.canonicalize() {
        Err(_) => Some(format!("{} does not exist", resolved.display())),
        Ok(real) if !real.starts_with(root.canonicalize().expect("the root exists")) => {
            Some(format!("a link out of the repository ({})", real.display()))
        }
        Ok(_) => None,
    }
}

/// Every disallowed link under `root`, as `file:line: target: why`.
fn bad_links(root: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    for file in markdown_files(root) {
        let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        for (line, target) in targets(&text) {
            if let Some(why) = problem(root, &file, &target) {
                let shown = file.strip_prefix(root).unwrap_or(&file).display().to_string();
                bad.push(format!("{shown}:{line}: ({target}): {why}"));
            }
        }
    }
    bad
}

#[test]
fn no_markdown_link_points_outside_the_repository() {
    let root = root();
    let files = markdown_files(&root);
    for expected in ["README.md", "docs/SPEC.md", "docs/guide.md"] {
        assert!(files.contains(&root.join(expected)), "checks {expected}: {files:?}");
    }
    let bad = bad_links(&root);
    assert!(bad.is_empty(), "links that leave the repository:\n{}", bad.join("\n"));
}

#[test]
fn links_are_found_outside_code() {
    let text = "see [a](a.md) and ![img](pics/x.png \"title\") and [`v/`](v/)\n\
                `[not](code.md)` and ``[nor](this.md)``\n\
                ```\n[fenced](no.md)\n```\n\
                [ref]: ../shared/ref.md\n\
                [p](dir/(x).md) [angle](<with space.md>)\n";
    let found = targets(text);
    let found: Vec<(usize, &str)> = found.iter().map(|(n, t)| (*n, t.as_str())).collect();
    assert_eq!(
        found,
        [
            (1, "a.md"),
            (1, "pics/x.png"),
            (1, "v/"),
            (6, "../shared/ref.md"),
            (7, "dir/(x).md"),
            (7, "with space.md"),
        ]
    );
}

#[test]
fn only_links_to_existing_paths_inside_the_root_pass() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    fs::create_dir_all(root.join("docs/vectors")).unwrap();
    fs::write(root.join("docs/SPEC.md"), "").unwrap();
    fs::write(dir.path().join("outside.md"), "").unwrap();
    let readme = root.join("README.md");
    let spec = root.join("docs/SPEC.md");
    fs::write(&readme, "").unwrap();
    for (file, ok) in [
        (&readme, "docs/SPEC.md"),
        (&readme, "./docs/SPEC.md#keys"),
        (&readme, "docs/vectors/"),
        (&spec, "vectors/"),
        (&spec, "../README.md"),
        (&spec, "#section"),
        (&spec, "https://example.org/x"),
        (&spec, "HTTP://example.org/x"),
    ] {
        assert_eq!(problem(&root, file, ok), None, "{ok}");
    }
    for (file, bad, why) in [
        (&readme, "../outside.md", "outside the repository"),
        (&readme, "../shared/notes.md", "outside the repository"),
        (&spec, "../../outside.md", "outside the repository"),
        (&readme, "docs/NOPE.md", "does not exist"),
        (&readme, "/etc/passwd", "absolute path"),
        (&readme, "file:///etc/passwd", "file: address"),
        (&readme, "", "empty"),
    ] {
        let why_not = problem(&root, file, bad).unwrap_or_else(|| panic!("{bad} passed"));
        assert!(why_not.contains(why), "{bad}: {why_not}");
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.path().join("outside.md"), root.join("link.md")).unwrap();
        let why_not = problem(&root, &readme, "link.md").expect("a symlink out fails");
        assert!(why_not.contains("out of the repository"), "{why_not}");
    }
    fs::write(&readme, "[s](docs/SPEC.md)\n[o](../outside.md)\n").unwrap();
    let bad = bad_links(&root);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].starts_with("README.md:2: (../outside.md)"), "{bad:?}");
}
