//! The key service's TLS identity: a self-signed certificate made on first start (or one
//! the admin supplies), and the rustls server configuration (TLS 1.3 preferred, 1.2 allowed).

use crate::keyservice::pin::{Fingerprint, provider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {why}")]
    Read { path: PathBuf, why: String },
    #[error("cannot write {path}: {why}")]
    Write { path: PathBuf, why: String },
    #[error(
        "{present} exists but {missing} does not: restore the missing file, or remove both to \
         make a new certificate (clients will then see a new fingerprint)"
    )]
    HalfPair { present: PathBuf, missing: PathBuf },
    #[error("cannot make a certificate: {0}")]
    Generate(String),
    #[error("the certificate or key is not usable: {0}")]
    Config(#[from] rustls::Error),
}

/// The server's certificate chain and key, with the leaf's fingerprint.
pub(crate) struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub fingerprint: Fingerprint,
}

fn load(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
    let read = |p: &Path, e: &dyn std::fmt::Display| TlsError::Read {
        path: p.to_path_buf(),
        why: e.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| read(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(cert, &e))?;
    let leaf = chain
        .first()
        .ok_or_else(|| read(cert, &"no CERTIFICATE block"))?;
    let fingerprint = Fingerprint::of_der(leaf);
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| read(key, &e))?;
    Ok(Identity {
        chain,
        key,
        fingerprint,
    })
}

/// Names in a new certificate. Clients pin the fingerprint and ignore names; these are
/// for tools such as `openssl s_client` or a browser.
fn subject_names(listen: IpAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !listen.is_unspecified() && !names.contains(&listen.to_string()) {
        names.push(listen.to_string());
    }
    names
}

fn generate(cert: &Path, key: &Path, listen: IpAddr) -> Result<(), TlsError> {
    let made = rcgen::generate_simple_self_signed(subject_names(listen))
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let write = |p: &Path, data: &[u8]| {
        crate::fsutil::write_atomic(p, data).map_err(|e| TlsError::Write {
            path: p.to_path_buf(),
            why: e.to_string(),
        })
    };
    // Key first: a crash between the two writes leaves a key without a certificate,
    // which the next start reports instead of silently pairing a new cert with it.
    let key_pem = zeroize::Zeroizing::new(made.signing_key.serialize_pem());
    write(key, key_pem.as_bytes())?;
    write(cert, made.cert.pem().as_bytes())?;
    log::info!("created a self-signed certificate in {}", cert.display());
    Ok(())
}

/// The identity from `--cert/--key`, or DATA/`subdir`/{cert,key}.pem, made on first start
/// (`tls` for the API, whose fingerprint devices pin; the web front has its own).
pub(crate) fn identity(
    data: &Path,
    given: Option<(&Path, &Path)>,
    listen: IpAddr,
    subdir: &str,
) -> Result<Identity, TlsError> {
    if let Some((cert, key)) = given {
        return load(cert, key);
    }
    let dir = data.join(subdir);
    let mkdir_err = |e: std::io::Error| TlsError::Write {
        path: dir.clone(),
        why: e.to_string(),
    };
    std::fs::create_dir_all(&dir).map_err(mkdir_err)?;
    // The key file is 0600 anyway; a private directory also hides when it changes.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(mkdir_err)?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    match (cert.exists(), key.exists()) {
        (true, true) => {}
        (false, false) => generate(&cert, &key, listen)?,
        (true, false) => {
            return Err(TlsError::HalfPair {
                present: cert,
                missing: key,
            });
        }
        (false, true) => {
            return Err(TlsError::HalfPair {
                present: key,
                missing: cert,
            });
        }
    }
    load(&cert, &key)
}

/// rustls offers only TLS 1.2 and 1.3; listing 1.3 first makes it the one negotiated
/// whenever the client has it.
pub(crate) fn server_config(id: Identity) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(id.chain, id.key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_is_made_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = identity(dir.path(), None, ip, "tls").unwrap();
        let b = identity(dir.path(), None, ip, "tls").unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        let mode = std::fs::metadata(dir.path().join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(server_config(a).is_ok());
        std::fs::remove_file(dir.path().join("tls/cert.pem")).unwrap();
        assert!(matches!(
            identity(dir.path(), None, ip, "tls"),
            Err(TlsError::HalfPair { .. })
        ));
    }
}
