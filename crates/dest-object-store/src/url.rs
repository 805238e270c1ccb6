//! `s3://bucket/prefix`: the bucket, and the key prefix artifacts go under.

use std::fmt;
use std::io;

/// A parsed `--out s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketUrl {
    /// The bucket.
    pub bucket: String,
    /// The prefix, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl BucketUrl {
    /// Parses `s3://bucket[/prefix]`; the error names what is wrong.
    pub fn parse(url: &str) -> io::Result<Self> {
        let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("--out {url}: {why}"));
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("expected s3://bucket/prefix"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket named"));
        }
        let valid = bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'));
        if !valid || bucket.len() < 3 || bucket.len() > 63 {
            return Err(bad(&format!(
                "{bucket:?} is not a bucket name (3 to 63 lowercase letters, digits, '-' and '.')"
            )));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|part| part.is_empty() && !prefix.is_empty()) {
            return Err(bad("the prefix has an empty segment (`//`)"));
        }
        if prefix.split('/').any(|part| part == "." || part == "..") {
            return Err(bad("the prefix has a `.` or `..` segment"));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The key of `rest` under the prefix.
    pub fn join(&self, rest: &str) -> String {
        if self.prefix.is_empty() {
            rest.to_owned()
        } else {
            format!("{}/{rest}", self.prefix)
        }
    }

    /// `s3://bucket/<prefix>/<rest>`: the location recorded for a key.
    pub fn location(&self, rest: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.join(rest))
    }

    /// The key of a location under this bucket and prefix.
    pub fn key_of<'a>(&self, location: &'a str) -> Option<&'a str> {
        let key = location
            .strip_prefix("s3://")?
            .strip_prefix(self.bucket.as_str())?
            .strip_prefix('/')?;
        if self.prefix.is_empty() {
            return (!key.is_empty()).then_some(key);
        }
        key.strip_prefix(self.prefix.as_str())?.strip_prefix('/')?;
        Some(key)
    }
}

impl fmt::Display for BucketUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_prefix() {
        let url = BucketUrl::parse("s3://my-bucket/a/b/").unwrap();
        assert_eq!((url.bucket.as_str(), url.prefix.as_str()), ("my-bucket", "a/b"));
        assert_eq!(url.location("w/x"), "s3://my-bucket/a/b/w/x");
        assert_eq!(url.key_of("s3://my-bucket/a/b/w/x"), Some("a/b/w/x"));
        assert_eq!(url.key_of("s3://my-bucket/a/bc/w"), None, "another prefix");
        assert_eq!(url.key_of("s3://other/a/b/w"), None);
        assert_eq!(url.to_string(), "s3://my-bucket/a/b");
        let bare = BucketUrl::parse("s3://bkt").unwrap();
        assert_eq!(bare.location("w/x"), "s3://bkt/w/x");
        assert_eq!(bare.key_of("s3://bkt/w/x"), Some("w/x"));
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, why) in [
            ("/tmp/x", "expected s3://"),
            ("s3:///p", "no bucket"),
            ("s3://Bad_Bucket/p", "not a bucket name"),
            ("s3://bkt/a//b", "empty segment"),
            ("s3://bkt/a/../b", "`..`"),
        ] {
            let err = BucketUrl::parse(url).unwrap_err().to_string();
            assert!(err.contains(why) && err.contains(url), "{url}: {err}");
        }
    }
}
