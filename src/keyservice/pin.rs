//! Certificate pinning: the key service's identity is the SHA-256 fingerprint of its leaf
//! certificate, checked like an SSH host key instead of through a CA and a hostname.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

/// SHA-256 of a certificate's DER encoding, shown as `SHA256:<64 lowercase hex>`. SHA-256
/// rather than BLAKE3 so an admin can compare it with `openssl x509 -fingerprint -sha256`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "not a certificate fingerprint: expected SHA256: followed by 64 hex digits (colons allowed)"
)]
pub struct FingerprintParseError;

impl Fingerprint {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Fingerprint(bytes)
    }

    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(der).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SHA256:{}", hex::encode(self.0))
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = FingerprintParseError;

    /// Accepts our `SHA256:<hex>` and, so an admin can paste it, OpenSSL's
    /// `sha256 Fingerprint=AB:CD:...`; case and colons do not matter.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let lower = s.to_ascii_lowercase();
        let rest = ["sha256:", "sha256 fingerprint=", "sha2-256:"]
            .iter()
            .find_map(|p| lower.strip_prefix(p))
            .unwrap_or(&lower);
        let digits: String = rest.chars().filter(|c| *c != ':').collect();
        let mut out = [0u8; 32];
        hex::decode_to_slice(&digits, &mut out).map_err(|_| FingerprintParseError)?;
        Ok(Fingerprint(out))
    }
}

/// The one crypto provider of server and client (ring: no C toolchain beyond `cc`).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What the verifier does with the presented certificate.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PinMode {
    /// Accept exactly this certificate.
    Pin(Fingerprint),
    /// Record the certificate and abort the handshake (first contact: show it to the user).
    Probe,
}

/// A `ServerCertVerifier` that trusts one certificate by fingerprint and still checks the
/// handshake signatures, so a peer must hold that certificate's private key.
#[derive(Debug)]
pub(crate) struct PinVerifier {
    mode: PinMode,
    provider: Arc<CryptoProvider>,
    /// The fingerprint of the last certificate refused or probed, for the error message.
    seen: Mutex<Option<Fingerprint>>,
}

impl PinVerifier {
    pub(crate) fn new(mode: PinMode) -> Arc<Self> {
        Arc::new(PinVerifier {
            mode,
            provider: provider(),
            seen: Mutex::new(None),
        })
    }

    /// The certificate the last refused or probed handshake presented.
    pub(crate) fn seen(&self) -> Option<Fingerprint> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Like [`Self::seen`], and forgets it, so a later, unrelated failure is not blamed on
    /// this certificate.
    pub(crate) fn take_seen(&self) -> Option<Fingerprint> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn record(&self, fp: Fingerprint) {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(fp);
    }

    /// A client config (TLS 1.3 first, then 1.2) that uses this verifier.
    pub(crate) fn client_config(self: &Arc<Self>) -> Result<rustls::ClientConfig, rustls::Error> {
        Ok(
            rustls::ClientConfig::builder_with_provider(self.provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
                .dangerous()
                .with_custom_certificate_verifier(self.clone())
                .with_no_client_auth(),
        )
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        // The pin is the identity: names and CA chains do not matter (as with SSH).
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Fingerprint::of_der(end_entity);
        match self.mode {
            PinMode::Pin(want) if crate::crypto::ct_eq(&got.0, &want.0) => {
                Ok(ServerCertVerified::assertion())
            }
            PinMode::Pin(_) => {
                self.record(got);
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ))
            }
            PinMode::Probe => {
                self.record(got);
                Err(rustls::Error::General(
                    "probe only: certificate recorded".into(),
                ))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert() -> rcgen::CertifiedKey<rcgen::KeyPair> {
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap()
    }

    #[test]
    fn fingerprint_text_roundtrip_and_openssl_form() {
        let fp = Fingerprint::of_der(b"not really a certificate");
        let text = fp.to_string();
        assert!(
            text.starts_with("SHA256:") && text.len() == 7 + 64,
            "{text}"
        );
        assert_eq!(text[7..], text[7..].to_ascii_lowercase());
        assert_eq!(text.parse::<Fingerprint>(), Ok(fp));
        let openssl = format!(
            "sha256 Fingerprint={}",
            fp.0.iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        );
        assert_eq!(openssl.parse::<Fingerprint>(), Ok(fp));
        assert!("SHA256:abcd".parse::<Fingerprint>().is_err());
        assert!(
            format!("SHA256:{}", "g".repeat(64))
                .parse::<Fingerprint>()
                .is_err()
        );
    }

    #[test]
    fn pin_accepts_only_its_certificate() {
        let a = cert();
        let b = cert();
        let name = ServerName::try_from("localhost").unwrap();
        let v = PinVerifier::new(PinMode::Pin(Fingerprint::of_der(a.cert.der())));
        assert!(
            v.verify_server_cert(a.cert.der(), &[], &name, &[], UnixTime::now())
                .is_ok()
        );
        assert_eq!(v.seen(), None);
        let err = v
            .verify_server_cert(b.cert.der(), &[], &name, &[], UnixTime::now())
            .unwrap_err();
        assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err}");
        assert_eq!(v.seen(), Some(Fingerprint::of_der(b.cert.der())));
    }

    #[test]
    fn probe_records_and_refuses() {
        let a = cert();
        let name = ServerName::try_from("localhost").unwrap();
        let v = PinVerifier::new(PinMode::Probe);
        assert!(
            v.verify_server_cert(a.cert.der(), &[], &name, &[], UnixTime::now())
                .is_err()
        );
        assert_eq!(v.seen(), Some(Fingerprint::of_der(a.cert.der())));
    }

    /// Serves one TLS handshake presenting `cert` but signing with `key`.
    fn one_handshake_server(
        cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
        key: &rcgen::KeyPair,
    ) -> std::net::SocketAddr {
        #[derive(Debug)]
        struct Fixed(Arc<rustls::sign::CertifiedKey>);
        impl rustls::server::ResolvesServerCert for Fixed {
            fn resolve(
                &self,
                _: rustls::server::ClientHello<'_>,
            ) -> Option<Arc<rustls::sign::CertifiedKey>> {
                Some(self.0.clone())
            }
        }
        let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let signer = provider().key_provider.load_private_key(der).unwrap();
        // `CertifiedKey::new` does not check that key and certificate match: that is the
        // point, a server that has the certificate but not its key.
        let ck = rustls::sign::CertifiedKey::new(vec![cert.cert.der().clone()], signer);
        let cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(Arc::new(ck))));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut tcp, _)) = listener.accept() {
                let mut conn = rustls::ServerConnection::new(Arc::new(cfg)).unwrap();
                while conn.is_handshaking() {
                    if conn.complete_io(&mut tcp).is_err() {
                        break;
                    }
                }
            }
        });
        addr
    }

    fn client_handshake(addr: std::net::SocketAddr, pin: Fingerprint) -> Result<(), String> {
        let v = PinVerifier::new(PinMode::Pin(pin));
        let cfg = Arc::new(v.client_config().unwrap());
        let name = ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(cfg, name).unwrap();
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    #[test]
    fn pinned_certificate_without_its_private_key_is_refused() {
        let a = cert();
        let other = rcgen::KeyPair::generate().unwrap();
        let pin = Fingerprint::of_der(a.cert.der());
        // control: the real key completes the handshake
        let good = one_handshake_server(&a, &a.signing_key);
        assert_eq!(client_handshake(good, pin), Ok(()));
        // the pinned certificate, but the handshake signed by another key
        let bad = one_handshake_server(&a, &other);
        let err = client_handshake(bad, pin).unwrap_err();
        assert!(
            err.to_lowercase().contains("signature"),
            "expected a signature failure, got: {err}"
        );
    }
}
