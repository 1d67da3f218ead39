//! Package sidecar checks for `violet verify`: `<pkg>.sha256` (sha256sum format) and `<pkg>.sig`
//! (detached OpenPGP signature, binary or armored) checked against a keyring of public keys.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use pgp::composed::{Deserializable, SignedPublicKey, StandaloneSignature};
use pgp::packet::{PublicKey, PublicSubkey, Signature};
use pgp::types::KeyDetails;

use crate::digest::{Digest, Hasher};
use crate::error::{ExitCode, Fail};

/// Sidecars and keyrings are small; anything bigger is not what we expect and is refused rather
/// than read into memory.
const SIDECAR_LIMIT: u64 = 1 << 20;
const KEYRING_LIMIT: u64 = 16 << 20;

/// Why a sidecar check failed. Each message names the sidecar or keyring at fault.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{sidecar}: {message}")]
    BadSidecar { sidecar: PathBuf, message: String },
    #[error("checksum mismatch: {sidecar} expects sha256 {expected}, the file has {actual}")]
    ChecksumMismatch {
        sidecar: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{sig}: signed by key {keys}, which is not in the keyring {keyring}")]
    UnknownKey {
        sig: PathBuf,
        keys: String,
        keyring: PathBuf,
    },
    #[error("{sig}: bad signature: the file does not match the signature made by key {key}")]
    BadSignature { sig: PathBuf, key: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckError + '_ {
    move |source| CheckError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a small file whole, refusing one larger than `limit`.
fn read_small(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)?.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(buf)
}

/// The sha256 of a file, read by streaming.
pub fn sha256_file(path: &Path) -> std::io::Result<Digest> {
    let mut file = File::open(path)?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// Finds the sha256 hex for `file_name` in a sidecar: sha256sum lines (`<hex>  <name>`,
/// `<hex> *<name>`; the name may carry a directory), BSD lines (`SHA256 (<name>) = <hex>`), or a
/// bare hex digest. Returns the lowercase hex, or a message saying what is wrong.
pub fn parse_sha256_sidecar(text: &str, file_name: &str) -> Result<String, String> {
    let is_hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let base = |n: &str| n.rsplit(['/', '\\']).next().unwrap_or(n).to_string();
    let mut named = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (hex, name) = if let Some(rest) = line.strip_prefix("SHA256 (") {
            match rest.rsplit_once(") = ") {
                Some((name, hex)) => (hex.trim(), Some(name)),
                None => return Err(format!("cannot read line {line:?}")),
            }
        } else {
            match line.split_once(char::is_whitespace) {
                Some((hex, name)) => {
                    let name = name.trim_start();
                    (hex, Some(name.strip_prefix('*').unwrap_or(name)))
                }
                None => (line, None),
            }
        };
        if !is_hex(hex) {
            return Err(format!("{hex:?} is not a sha256 digest (64 hex digits)"));
        }
        match name {
            None => return Ok(hex.to_ascii_lowercase()),
            Some(n) if base(n) == file_name => return Ok(hex.to_ascii_lowercase()),
            Some(n) => named.push(n.to_string()),
        }
    }
    if named.is_empty() {
        Err("no sha256 digest in the file".into())
    } else {
        Err(format!("names {}, not {file_name}", named.join(", ")))
    }
}

/// Checks `file` against its sha256sum sidecar, returning the digest that matched.
pub fn verify_checksum(file: &Path, sidecar: &Path) -> Result<Digest, CheckError> {
    let bytes = read_small(sidecar, SIDECAR_LIMIT).map_err(io_err(sidecar))?;
    let bad = |message: String| CheckError::BadSidecar {
        sidecar: sidecar.to_path_buf(),
        message,
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("not a text file".into()))?;
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let expected = parse_sha256_sidecar(text, &file_name).map_err(bad)?;
    let actual = sha256_file(file).map_err(io_err(file))?;
    if actual.hex() != expected {
        return Err(CheckError::ChecksumMismatch {
            sidecar: sidecar.to_path_buf(),
            expected,
            actual: actual.hex().to_string(),
        });
    }
    Ok(actual)
}

/// Trusted OpenPGP public keys (a `--keyring` file: armored or binary, one or several keys).
#[derive(Debug)]
pub struct Keyring {
    path: PathBuf,
    keys: Vec<SignedPublicKey>,
}

/// A key that can have made a signature: a primary key or a subkey.
enum Signer<'a> {
    Primary(&'a PublicKey),
    Sub(&'a PublicSubkey),
}

impl Signer<'_> {
    fn details(&self) -> &dyn KeyDetails {
        match self {
            Signer::Primary(k) => *k,
            Signer::Sub(k) => *k,
        }
    }

    fn verify(&self, sig: &Signature, data: impl Read) -> pgp::errors::Result<()> {
        match self {
            Signer::Primary(k) => sig.verify(*k, data),
            Signer::Sub(k) => sig.verify(*k, data),
        }
    }
}

fn fingerprint_hex(key: &dyn KeyDetails) -> String {
    hex::encode_upper(key.fingerprint().as_bytes())
}

impl Keyring {
    /// Loads and self-checks the keys; a key whose self-signatures do not verify is left out (with
    /// a warning returned to the caller), since trusting it would trust whoever altered it.
    pub fn load(path: &Path) -> Result<(Keyring, Vec<String>), Fail> {
        let input = |msg: String| {
            Fail::new(ExitCode::Input, format!("keyring {}: {msg}", path.display()))
                .with_hint("pass an OpenPGP public key file (armored or binary), e.g. from 'gpg --export --armor KEYID'")
        };
        let bytes = read_small(path, KEYRING_LIMIT).map_err(|e| input(e.to_string()))?;
        let (parsed, _) = SignedPublicKey::from_reader_many(&bytes[..])
            .map_err(|e| input(format!("not an OpenPGP key: {e}")))?;
        let mut keys = Vec::new();
        let mut warnings = Vec::new();
        for key in parsed {
            let key = key.map_err(|e| input(format!("not an OpenPGP key: {e}")))?;
            match key.verify() {
                Ok(()) => keys.push(key),
                Err(e) => warnings.push(format!(
                    "keyring {}: ignoring key {}: its self-signature does not verify ({e})",
                    path.display(),
                    fingerprint_hex(&key.primary_key)
                )),
            }
        }
        if keys.is_empty() {
            return Err(input("no usable public key".into()));
        }
        Ok((
            Keyring {
                path: path.to_path_buf(),
                keys,
            },
            warnings,
        ))
    }

    /// Keys named by the signature's issuer subpackets; every key when it names none.
    fn candidates(&self, sig: &Signature) -> Vec<Signer<'_>> {
        let (ids, fps) = (sig.issuer(), sig.issuer_fingerprint());
        let all = self.keys.iter().flat_map(|k| {
            std::iter::once(Signer::Primary(&k.primary_key))
                .chain(k.public_subkeys.iter().map(|s| Signer::Sub(&s.key)))
        });
        if ids.is_empty() && fps.is_empty() {
            return all.collect();
        }
        all.filter(|s| {
            let d = s.details();
            ids.contains(&&d.key_id()) || fps.contains(&&d.fingerprint())
        })
        .collect()
    }
}

/// Checks a detached signature (`sig`, binary or armored, possibly several signatures) over
/// `file`. Returns the fingerprint of the key that verified it.
pub fn verify_signature(keyring: &Keyring, file: &Path, sig: &Path) -> Result<String, CheckError> {
    let bytes = read_small(sig, SIDECAR_LIMIT).map_err(io_err(sig))?;
    let bad_file = |message: String| CheckError::BadSidecar {
        sidecar: sig.to_path_buf(),
        message,
    };
    let (parsed, _) = StandaloneSignature::from_reader_many(&bytes[..])
        .map_err(|e| bad_file(format!("not an OpenPGP signature: {e}")))?;
    let sigs: Vec<StandaloneSignature> = parsed
        .collect::<Result<_, _>>()
        .map_err(|e| bad_file(format!("not an OpenPGP signature: {e}")))?;
    if sigs.is_empty() {
        return Err(bad_file("no OpenPGP signature in the file".into()));
    }
    let mut failure = None;
    let mut issuers = Vec::new();
    for s in &sigs {
        issuers.extend(
            s.signature
                .issuer_fingerprint()
                .iter()
                .map(|f| hex::encode_upper(f.as_bytes())),
        );
        // A v4 key id is the tail of the fingerprint: name each key once.
        for id in s.signature.issuer() {
            let id = hex::encode_upper(id.as_ref());
            if !issuers.iter().any(|i: &String| i.ends_with(&id)) {
                issuers.push(id);
            }
        }
        for signer in keyring.candidates(&s.signature) {
            let data = BufReader::new(File::open(file).map_err(io_err(file))?);
            let key = fingerprint_hex(signer.details());
            match signer.verify(&s.signature, data) {
                Ok(()) => return Ok(key),
                Err(e) => {
                    // rpgp's own text is a multi-line assertion dump; it helps debugging only.
                    tracing::debug!("{}: signature check with key {key}: {e}", sig.display());
                    failure.get_or_insert(CheckError::BadSignature {
                        sig: sig.to_path_buf(),
                        key,
                    });
                }
            }
        }
    }
    Err(failure.unwrap_or_else(|| CheckError::UnknownKey {
        sig: sig.to_path_buf(),
        keys: if issuers.is_empty() {
            "(unnamed)".into()
        } else {
            issuers.join(", ")
        },
        keyring: keyring.path.clone(),
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use pgp::composed::{KeyType, SecretKeyParamsBuilder, SignedSecretKey};
    use pgp::packet::{SignatureConfig, SignatureType, Subpacket, SubpacketData};
    use pgp::types::Password;

    pub(crate) fn keypair(uid: &str) -> SignedSecretKey {
        let mut rng = rand08::thread_rng();
        let params = SecretKeyParamsBuilder::default()
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .primary_user_id(uid.into())
            .build()
            .unwrap();
        params
            .generate(&mut rng)
            .unwrap()
            .sign(&mut rng, &Password::empty())
            .unwrap()
    }

    pub(crate) fn sign(key: &SignedSecretKey, data: &[u8]) -> StandaloneSignature {
        let mut config = SignatureConfig::from_key(
            rand08::thread_rng(),
            &key.primary_key,
            SignatureType::Binary,
        )
        .unwrap();
        config.hashed_subpackets = vec![
            Subpacket::regular(SubpacketData::IssuerFingerprint(
                key.primary_key.fingerprint(),
            ))
            .unwrap(),
        ];
        config.unhashed_subpackets =
            vec![Subpacket::regular(SubpacketData::Issuer(key.primary_key.key_id())).unwrap()];
        StandaloneSignature::new(
            config
                .sign(&key.primary_key, &Password::empty(), data)
                .unwrap(),
        )
    }

    pub(crate) fn write_keyring(
        dir: &Path,
        name: &str,
        key: &SignedSecretKey,
        armored: bool,
    ) -> PathBuf {
        let public = key.signed_public_key();
        let path = dir.join(name);
        let bytes = if armored {
            public.to_armored_bytes(Default::default()).unwrap()
        } else {
            pgp::ser::Serialize::to_bytes(&public).unwrap()
        };
        std::fs::write(&path, bytes).unwrap();
        path
    }

    struct Fixture {
        dir: tempfile::TempDir,
        file: PathBuf,
        key: SignedSecretKey,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("redis-operator.stable.ALL.v1.0.0.tgz");
        std::fs::write(&file, b"package bytes".repeat(10_000)).unwrap();
        Fixture {
            dir,
            file,
            key: keypair("Release <release@example.com>"),
        }
    }

    #[test]
    fn good_signature_binary_and_armored() {
        let f = fixture();
        let data = std::fs::read(&f.file).unwrap();
        let sig = sign(&f.key, &data);
        for (armored_key, armored_sig) in [(false, false), (true, true), (true, false)] {
            let keyring = write_keyring(f.dir.path(), "keys", &f.key, armored_key);
            let sig_path = f.dir.path().join("x.sig");
            let bytes = if armored_sig {
                sig.to_armored_bytes(Default::default()).unwrap()
            } else {
                pgp::ser::Serialize::to_bytes(&sig).unwrap()
            };
            std::fs::write(&sig_path, bytes).unwrap();
            let (ring, warnings) = Keyring::load(&keyring).unwrap();
            assert!(warnings.is_empty());
            let fp = verify_signature(&ring, &f.file, &sig_path).unwrap();
            assert_eq!(
                fp,
                hex::encode_upper(f.key.primary_key.fingerprint().as_bytes())
            );
        }
    }

    #[test]
    fn flipped_byte_is_a_bad_signature() {
        let f = fixture();
        let sig = sign(&f.key, &std::fs::read(&f.file).unwrap());
        let sig_path = f.dir.path().join("x.sig");
        std::fs::write(&sig_path, pgp::ser::Serialize::to_bytes(&sig).unwrap()).unwrap();
        let mut data = std::fs::read(&f.file).unwrap();
        data[5000] ^= 1;
        std::fs::write(&f.file, data).unwrap();
        let (ring, _) = Keyring::load(&write_keyring(f.dir.path(), "k", &f.key, true)).unwrap();
        let e = verify_signature(&ring, &f.file, &sig_path).unwrap_err();
        assert!(matches!(e, CheckError::BadSignature { .. }), "{e}");
        assert!(e.to_string().contains("bad signature"), "{e}");
    }

    #[test]
    fn wrong_key_is_named() {
        let f = fixture();
        let sig = sign(&f.key, &std::fs::read(&f.file).unwrap());
        let sig_path = f.dir.path().join("x.sig");
        std::fs::write(&sig_path, sig.to_armored_bytes(Default::default()).unwrap()).unwrap();
        let other = keypair("Other <other@example.com>");
        let (ring, _) = Keyring::load(&write_keyring(f.dir.path(), "k", &other, false)).unwrap();
        let e = verify_signature(&ring, &f.file, &sig_path).unwrap_err();
        let fp = hex::encode_upper(f.key.primary_key.fingerprint().as_bytes());
        assert!(matches!(e, CheckError::UnknownKey { .. }), "{e}");
        assert!(e.to_string().contains(&format!("key {fp}, which")), "{e}");
    }

    #[test]
    fn keyring_with_two_keys() {
        let f = fixture();
        let other = keypair("Other <other@example.com>");
        let mut bytes = pgp::ser::Serialize::to_bytes(&other.signed_public_key()).unwrap();
        bytes.extend(pgp::ser::Serialize::to_bytes(&f.key.signed_public_key()).unwrap());
        let keyring = f.dir.path().join("ring.gpg");
        std::fs::write(&keyring, bytes).unwrap();
        let sig_path = f.dir.path().join("x.sig");
        let sig = sign(&f.key, &std::fs::read(&f.file).unwrap());
        std::fs::write(&sig_path, pgp::ser::Serialize::to_bytes(&sig).unwrap()).unwrap();
        let (ring, _) = Keyring::load(&keyring).unwrap();
        assert!(verify_signature(&ring, &f.file, &sig_path).is_ok());
    }

    #[test]
    fn garbage_signature_and_keyring() {
        let f = fixture();
        let junk = f.dir.path().join("junk");
        std::fs::write(&junk, b"not pgp at all").unwrap();
        let e = Keyring::load(&junk).unwrap_err();
        assert_eq!(e.code, ExitCode::Input);
        assert!(e.message.contains("keyring"), "{}", e.message);
        let (ring, _) = Keyring::load(&write_keyring(f.dir.path(), "k", &f.key, true)).unwrap();
        let e = verify_signature(&ring, &f.file, &junk).unwrap_err();
        assert!(matches!(e, CheckError::BadSidecar { .. }), "{e}");
    }

    #[test]
    fn sidecar_formats() {
        let h = "a".repeat(64);
        let hu = "A".repeat(64);
        assert_eq!(
            parse_sha256_sidecar(&format!("{h}  x.tgz\n"), "x.tgz"),
            Ok(h.clone())
        );
        assert_eq!(
            parse_sha256_sidecar(&format!("{h} *x.tgz"), "x.tgz"),
            Ok(h.clone())
        );
        assert_eq!(
            parse_sha256_sidecar(&format!("{h}  ./dl/x.tgz"), "x.tgz"),
            Ok(h.clone())
        );
        assert_eq!(
            parse_sha256_sidecar(&format!("{hu}\n"), "x.tgz"),
            Ok(h.clone())
        );
        assert_eq!(
            parse_sha256_sidecar(&format!("SHA256 (x.tgz) = {h}"), "x.tgz"),
            Ok(h.clone())
        );
        let many = format!("{}  y.tgz\n{h}  x.tgz\n", "b".repeat(64));
        assert_eq!(parse_sha256_sidecar(&many, "x.tgz"), Ok(h.clone()));
        assert!(
            parse_sha256_sidecar(&format!("{h}  y.tgz"), "x.tgz")
                .unwrap_err()
                .contains("y.tgz")
        );
        assert!(parse_sha256_sidecar("abc  x.tgz", "x.tgz").is_err());
        assert!(
            parse_sha256_sidecar("\n# c\n", "x.tgz")
                .unwrap_err()
                .contains("no sha256")
        );
    }

    #[test]
    fn checksum_good_and_bad() {
        let f = fixture();
        let digest = sha256_file(&f.file).unwrap();
        let sidecar = f.dir.path().join("x.sha256");
        let name = f.file.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::write(&sidecar, format!("{}  {name}\n", digest.hex())).unwrap();
        assert_eq!(verify_checksum(&f.file, &sidecar).unwrap(), digest);
        std::fs::write(&sidecar, format!("{}  {name}\n", "0".repeat(64))).unwrap();
        let e = verify_checksum(&f.file, &sidecar).unwrap_err();
        assert!(matches!(e, CheckError::ChecksumMismatch { .. }), "{e}");
        assert!(e.to_string().contains(digest.hex()), "{e}");
        std::fs::write(&sidecar, format!("{}  other.tgz\n", digest.hex())).unwrap();
        let e = verify_checksum(&f.file, &sidecar).unwrap_err();
        assert!(e.to_string().contains("other.tgz"), "{e}");
    }
}
