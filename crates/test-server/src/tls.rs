//! TLS mode: a certificate authority of a test's own and the server
//! certificates it issues.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// A certificate authority generated for one test; trust it through its
/// [`pem`](TestCa::pem).
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A server certificate and its key.
#[derive(Debug, Clone)]
pub struct ServerCert {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivatePkcs8KeyDer<'static>>,
}

/// How long an issued certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From 2000 to 2999.
    Current,
    /// 2000 to 2001: long expired.
    Expired,
}

impl TestCa {
    /// A new CA with a fresh key.
    ///
    /// # Panics
    ///
    /// When rcgen cannot generate (it does not).
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "oncefetch test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-signed CA");
        Self { cert, key }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses) signed by
    /// this CA.
    ///
    /// # Panics
    ///
    /// When a name is not a DNS name or an IP address.
    pub fn issue(&self, names: &[&str], validity: Validity) -> ServerCert {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("server certificate names");
        params
            .distinguished_name
            .push(DnType::CommonName, "oncefetch test server");
        let (from, to) = match validity {
            Validity::Current => (2000, 2999),
            Validity::Expired => (2000, 2001),
        };
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(to, 1, 1);
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("server certificate");
        ServerCert {
            chain: vec![cert.der().clone()],
            key: Arc::new(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// The acceptor that presents `cert`.
pub(crate) fn acceptor(cert: &ServerCert) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(cert.key.clone_key());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), key)
        .expect("server certificate and key");
    TlsAcceptor::from(Arc::new(config))
}
