//! The redirect policy: at most `max_redirects` hops, only to http/https.

use reqwest::redirect::Policy;

/// Why a redirect was not followed; found in the source chain of reqwest's error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedirectError {
    /// The location is not http or https (`file:`, `ftp:` …).
    #[error("redirect to {location} refused: only http and https are followed")]
    Scheme { location: String },
    /// More hops than allowed.
    #[error("too many redirects (more than {max}), the last to {location}")]
    TooMany { max: usize, location: String },
}

/// Follows at most `max` redirects, only to http/https.
pub(crate) fn policy(max: usize) -> Policy {
    Policy::custom(move |attempt| {
        let url = attempt.url();
        let location = crate::classify::shown(url.as_str()).into_owned();
        if !matches!(url.scheme(), "http" | "https") {
            return attempt.error(RedirectError::Scheme { location });
        }
        // `previous` starts with the original URL, so it holds one entry per hop taken.
        if attempt.previous().len() > max {
            return attempt.error(RedirectError::TooMany { max, location });
        }
        attempt.follow()
    })
}
