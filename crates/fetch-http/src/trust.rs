//! Trust: extra CA certificates from PEM files, and certificate errors told
//! apart in reqwest's source chain.

use std::error::Error;
use std::path::Path;

use rustls::CertificateError;

use crate::BuildError;

/// The certificates of the PEM file at `path` (one or more).
pub(crate) fn load(path: &Path) -> Result<Vec<reqwest::Certificate>, BuildError> {
    let invalid = |reason: String| BuildError::CaCert {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|error| invalid(format!("cannot read it: {error}")))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|error| invalid(format!("not PEM certificates: {}", crate::classify::chain(&error))))?;
    if certificates.is_empty() {
        return Err(invalid(
            "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    Ok(certificates)
}

/// What was wrong with the server's certificate, when `error` (or one of its
/// sources) is rustls refusing it.
pub(crate) fn certificate_problem(error: &(dyn Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(cause) = next {
        if let Some(rustls::Error::InvalidCertificate(problem)) = cause.downcast_ref::<rustls::Error>() {
            return Some(describe(problem));
        }
        // `io::Error::source` skips the error it wraps (itself maybe another
        // `io::Error`): step into it instead.
        next = match cause.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => cause.source(),
        };
    }
    None
}

/// A certificate problem in words.
fn describe(problem: &CertificateError) -> String {
    use CertificateError as E;
    let words = match problem {
        E::UnknownIssuer => "unknown issuer (not signed by a trusted CA; --ca-cert or SSL_CERT_FILE adds one)",
        E::Expired | E::ExpiredContext { .. } => "certificate expired",
        E::NotValidYet | E::NotValidYetContext { .. } => "certificate not valid yet",
        E::NotValidForName | E::NotValidForNameContext { .. } => "name mismatch (not valid for this host)",
        E::Revoked => "certificate revoked",
        E::BadSignature => "bad signature",
        E::BadEncoding => "badly encoded certificate",
        E::InvalidPurpose | E::InvalidPurposeContext { .. } => "certificate not valid for a server",
        _ => return format!("invalid certificate: {problem}"),
    };
    words.to_owned()
}
