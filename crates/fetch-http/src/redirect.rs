//! The redirect policy: at most `max_redirects` hops, only to http/https;
//! and the trail of one request, so that a failure of a redirect target
//! can name it (reqwest's error names the original URL only).

use std::cell::RefCell;
use std::future::Future;

use reqwest::redirect::Policy;
use reqwest::Url;

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

tokio::task_local! {
    /// The last redirect target the policy followed for the request being
    /// sent by this task ([`tracked`]).
    static FOLLOWED: RefCell<Option<Url>>;
}

/// Runs `send` (a request's send future) and returns its output with the
/// last redirect target followed on the way, if any. The policy runs where
/// the future is polled, so it sees this request's cell and no other's.
pub(crate) async fn tracked<F: Future>(send: F) -> (F::Output, Option<Url>) {
    FOLLOWED
        .scope(RefCell::new(None), async move {
            let output = send.await;
            (output, FOLLOWED.with(RefCell::take))
        })
        .await
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
        // Outside `tracked` (no cell) there is nothing to record.
        let _ = FOLLOWED.try_with(|followed| *followed.borrow_mut() = Some(url.clone()));
        attempt.follow()
    })
}
