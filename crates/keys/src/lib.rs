//! Ways back into encrypted backups that do not depend on one secret.
//!
//! A **recovery key** is an age X25519 identity (`AGE-SECRET-KEY-1…`) meant
//! to be printed and kept apart: with it alone, no passphrase, whatever was
//! encrypted to its recipient (`age1…`) opens. A recovery key can also be
//! **split into shares**, `k` of `n` of which give it back (Shamir's scheme
//! over GF(2^8) with the polynomial 0x11d, by the `blahaj` crate), to be
//! given to friends or kept in
//! different places; fewer than `k` tell nothing about it.
//!
//! A share is one line of text, made to be printed and typed back:
//!
//! ```text
//! pybackup-share-1 SET KofN X YYYYYYYY-YYYYYYYY-…(8 groups) CHECK
//! ```
//!
//! `SET` is the first 4 bytes (hex) of the SHA-256 of the key's recipient,
//! so that shares of different keys are never combined and the combined
//! key is checked against it; `X` is the share's number (1 to 255); `Y` the
//! 32 bytes of the share; `CHECK` the first 4 bytes of the SHA-256 of
//! everything before it on the line, so that a mistyped share is named.
//!
//! ```
//! let key = keys::RecoveryKey::generate();
//! let shares = keys::split(&key, 2, 3).unwrap();
//! let lines: Vec<String> = shares.iter().map(keys::Share::to_line).collect();
//! let back: Vec<keys::Share> = lines[1..].iter().map(|l| keys::Share::parse(l).unwrap()).collect();
//! assert_eq!(keys::combine(&back).unwrap().recipient(), key.recipient());
//! ```

use std::str::FromStr;

pub use age;

mod keyring;
pub mod seal;
pub use keyring::{decrypt_with, encrypt_stream_to, encrypt_to, Keyring, Way, KEYRING_MAGIC};

use age::secrecy::ExposeSecret;
use sha2::Digest;
use zeroize::Zeroizing;

/// The first word of a share line.
pub const SHARE_MAGIC: &str = "pybackup-share-1";
const HRP: &str = "age-secret-key-";

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Text that holds no usable age identity.
    #[error("no age identity (a line `AGE-SECRET-KEY-1…`) found{0}")]
    NoKey(String),
    /// A share line that cannot be read.
    #[error("share line {line}: {reason}")]
    BadShare {
        /// The line (1-based), in the input it came from.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Shares asked for that the scheme cannot give.
    #[error("cannot split into {shares} shares with a threshold of {threshold}: need 2 <= threshold <= shares <= 255")]
    Parameters {
        /// Shares needed to combine.
        threshold: usize,
        /// Shares made.
        shares: usize,
    },
    /// Not enough distinct shares.
    #[error("{have} distinct share(s) given; this key needs {need}")]
    NotEnough {
        /// Distinct shares given.
        have: usize,
        /// Shares needed.
        need: usize,
    },
    /// Shares of different keys, or of different splits.
    #[error("the shares belong to different keys or splits (sets {0} and {1})")]
    MixedSets(String, String),
    /// A passphrase-protected key file that the passphrase does not open.
    #[error("the passphrase does not open this key file (or it is damaged)")]
    WrongPassphrase,
    /// No passphrase could be had (the caller says why).
    #[error("{0}")]
    NoPassphrase(String),
    /// Encrypting or decrypting a key file.
    #[error("key file: {0}")]
    Age(String),
    /// A keyring that cannot be used as asked.
    #[error("keyring: {0}")]
    Keyring(String),
    /// None of the keyring's ways in opens with the key given.
    #[error("this key is none of the keyring's ways in")]
    NoWayIn,
    /// The combined key is not the one the shares were made from.
    #[error("the shares combine to a key that is not the one they were made from (a share is wrong)")]
    Mismatch,
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A recovery key: an age X25519 identity, kept as its 32 secret bytes
/// (zeroed when dropped) and as the `age` crate's identity.
pub struct RecoveryKey {
    secret: Zeroizing<[u8; 32]>,
    identity: age::x25519::Identity,
}

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "RecoveryKey({})", self.recipient())
    }
}

impl RecoveryKey {
    /// A new random key.
    pub fn generate() -> RecoveryKey {
        loop {
            let id = age::x25519::Identity::generate();
            // age's own encoding always decodes; were it ever not to, the
            // next key would be tried rather than a broken one returned.
            if let Ok(key) = RecoveryKey::from_identity_str(id.to_string().expose_secret()) {
                return key;
            }
        }
    }

    /// The key of the first `AGE-SECRET-KEY-1…` line of `text` (the format
    /// of `age-keygen` files: `#` comment lines allowed).
    pub fn parse(text: &str) -> Result<RecoveryKey> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-1"))
            .ok_or_else(|| Error::NoKey(String::new()))?;
        RecoveryKey::from_identity_str(line)
    }

    fn from_identity_str(s: &str) -> Result<RecoveryKey> {
        let (hrp, data) = bech32::decode(s).map_err(|e| Error::NoKey(format!(": {e}")))?;
        let data = Zeroizing::new(data);
        if hrp.as_str().to_ascii_lowercase() != HRP || data.len() != 32 {
            return Err(Error::NoKey(": not an X25519 identity".into()));
        }
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&data);
        RecoveryKey::from_secret(secret)
    }

    fn from_secret(secret: Zeroizing<[u8; 32]>) -> Result<RecoveryKey> {
        let text = encode_identity(&secret);
        let identity = age::x25519::Identity::from_str(&text).map_err(|e| Error::NoKey(format!(": {e}")))?;
        Ok(RecoveryKey { secret, identity })
    }

    /// The identity in age's text form, `AGE-SECRET-KEY-1…`.
    pub fn to_identity_string(&self) -> Zeroizing<String> {
        encode_identity(&self.secret)
    }

    /// The identity, for the `age` crate.
    pub fn identity(&self) -> &age::x25519::Identity {
        &self.identity
    }

    /// The recipient (`age1…`) that this key opens.
    pub fn recipient(&self) -> String {
        self.identity.to_public().to_string()
    }

    /// The key as an `age-keygen` file: comments with the public key, then
    /// the identity line.
    pub fn to_keygen_file(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "# pybackup recovery key: with this line alone, no passphrase, whatever was encrypted to it opens.\n\
             # public key: {}\n{}\n",
            self.recipient(),
            self.to_identity_string().as_str()
        ))
    }

    /// The key file, encrypted with a passphrase (age's scrypt recipient):
    /// what `age -d -i FILE` reads, asking for the passphrase.
    pub fn to_protected_file(&self, passphrase: &age::secrecy::SecretString) -> Result<Vec<u8>> {
        let recipient = age::scrypt::Recipient::new(passphrase.clone());
        age::encrypt(&recipient, self.to_keygen_file().as_bytes()).map_err(|e| Error::Age(e.to_string()))
    }

    /// The key of a passphrase-protected key file.
    pub fn open_protected(file: &[u8], passphrase: &age::secrecy::SecretString) -> Result<RecoveryKey> {
        let mut identity = age::scrypt::Identity::new(passphrase.clone());
        // age's default ceiling is the work of about 16 s on a slow machine;
        // a file that asks for more is refused rather than waited for.
        identity.set_max_work_factor(22);
        let text = Zeroizing::new(age::decrypt(&identity, file).map_err(|e| match e {
            age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed => Error::WrongPassphrase,
            other => Error::Age(other.to_string()),
        })?);
        let text = std::str::from_utf8(&text).map_err(|_| Error::NoKey(": the decrypted file is not text".into()))?;
        RecoveryKey::parse(text)
    }

    /// The key of a key file, plain (`AGE-SECRET-KEY-1…`) or protected by
    /// a passphrase, which `passphrase` is asked for only then.
    pub fn open(file: &[u8], passphrase: impl FnOnce() -> Result<age::secrecy::SecretString>) -> Result<RecoveryKey> {
        if is_age_file(file) {
            return RecoveryKey::open_protected(file, &passphrase()?);
        }
        let text = Zeroizing::new(String::from_utf8_lossy(file).into_owned());
        RecoveryKey::parse(&text)
    }

    /// The set a split of this key is named by.
    fn set_id(&self) -> String {
        hex::encode(&sha2::Sha256::digest(self.recipient().as_bytes())[..4])
    }
}

/// One share of a recovery key.
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    /// The key's set id (hex).
    set: String,
    /// Shares needed.
    threshold: u8,
    /// Shares made.
    shares: u8,
    /// The share's number (its x coordinate, 1 to 255).
    x: u8,
    /// Its 32 bytes.
    y: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Share(set {}, {} of {}, #{})", self.set, self.threshold, self.shares, self.x)
    }
}

impl Share {
    /// The share's number.
    pub fn number(&self) -> u8 {
        self.x
    }

    /// Shares needed to combine.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// The share as one printable line (no newline).
    pub fn to_line(&self) -> String {
        let groups: Vec<String> = self.y.chunks(4).map(hex::encode).collect();
        let body =
            format!("{SHARE_MAGIC} {} {}of{} {} {}", self.set, self.threshold, self.shares, self.x, groups.join("-"));
        let check = hex::encode(&sha2::Sha256::digest(body.as_bytes())[..4]);
        format!("{body} {check}")
    }

    /// Reads a share line (case and spacing as typed are forgiven; the
    /// check must match).
    pub fn parse(line: &str) -> Result<Share> {
        Share::parse_numbered(line, 1)
    }

    fn parse_numbered(line: &str, n: usize) -> Result<Share> {
        let bad = |reason: &str| Error::BadShare { line: n, reason: reason.to_string() };
        let words: Vec<String> = line.split_whitespace().map(str::to_ascii_lowercase).collect();
        let [magic, set, kofn, x, y, check] = words.as_slice() else {
            return Err(bad("expected 6 words: pybackup-share-1 SET KofN NUMBER BYTES CHECK"));
        };
        if magic != SHARE_MAGIC {
            return Err(bad("does not start with `pybackup-share-1`"));
        }
        let body = format!("{magic} {set} {kofn} {x} {y}");
        if *check != hex::encode(&sha2::Sha256::digest(body.as_bytes())[..4]) {
            return Err(bad("its check does not match: a character is wrong or missing"));
        }
        let (k, of) = kofn.split_once("of").ok_or_else(|| bad("bad KofN word"))?;
        let threshold: u8 = k.parse().map_err(|_| bad("bad threshold"))?;
        let shares: u8 = of.parse().map_err(|_| bad("bad number of shares"))?;
        let x: u8 = x.parse().map_err(|_| bad("bad share number"))?;
        let y = Zeroizing::new(hex::decode(y.replace('-', "")).map_err(|_| bad("bad share bytes"))?);
        if set.len() != 8 || hex::decode(set).is_err() || y.len() != 32 || x == 0 || threshold < 2 || threshold > shares
        {
            return Err(bad("values out of range"));
        }
        Ok(Share { set: set.clone(), threshold, shares, x, y })
    }

    /// Every share line of `text` (lines that are empty or start with `#`
    /// are skipped), each error naming its line.
    pub fn parse_all(text: &str) -> Result<Vec<Share>> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|(i, l)| Share::parse_numbered(l, i + 1))
            .collect()
    }
}

/// Splits a recovery key into `shares` shares, any `threshold` of which
/// give it back.
pub fn split(key: &RecoveryKey, threshold: usize, shares: usize) -> Result<Vec<Share>> {
    if threshold < 2 || shares < threshold || shares > 255 {
        return Err(Error::Parameters { threshold, shares });
    }
    let set = key.set_id();
    let dealer = blahaj::Sharks(threshold as u8).dealer(&key.secret[..]);
    Ok(dealer
        .take(shares)
        .map(|s| {
            let bytes = Zeroizing::new(Vec::from(&s));
            Share {
                set: set.clone(),
                threshold: threshold as u8,
                shares: shares as u8,
                x: bytes[0],
                y: Zeroizing::new(bytes[1..].to_vec()),
            }
        })
        .collect())
}

/// Gives the recovery key back from at least its threshold of distinct
/// shares, checked against the set they name.
pub fn combine(shares: &[Share]) -> Result<RecoveryKey> {
    let first = shares.first().ok_or(Error::NotEnough { have: 0, need: 2 })?;
    if let Some(other) = shares.iter().find(|s| s.set != first.set || s.threshold != first.threshold) {
        return Err(Error::MixedSets(first.set.clone(), other.set.clone()));
    }
    let mut distinct: Vec<&Share> = Vec::new();
    for s in shares {
        if !distinct.iter().any(|d| d.x == s.x) {
            distinct.push(s);
        }
    }
    let need = usize::from(first.threshold);
    if distinct.len() < need {
        return Err(Error::NotEnough { have: distinct.len(), need });
    }
    let parsed: Vec<blahaj::Share> = distinct
        .iter()
        .filter_map(|s| {
            let mut bytes = Zeroizing::new(vec![s.x]);
            bytes.extend_from_slice(&s.y);
            blahaj::Share::try_from(&bytes[..]).ok()
        })
        .collect();
    let secret = Zeroizing::new(
        blahaj::Sharks(first.threshold).recover(parsed.iter()).map_err(|_| Error::NotEnough { have: 0, need })?,
    );
    if secret.len() != 32 {
        return Err(Error::Mismatch);
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    bytes.copy_from_slice(&secret);
    let key = RecoveryKey::from_secret(bytes)?;
    if key.set_id() != first.set {
        return Err(Error::Mismatch);
    }
    Ok(key)
}

/// Whether bytes are an age file (binary or armored), not a plain key.
pub fn is_age_file(bytes: &[u8]) -> bool {
    bytes.starts_with(b"age-encryption.org/") || bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
}

/// 32 secret bytes as age writes them: bech32, upper case.
fn encode_identity(secret: &[u8; 32]) -> Zeroizing<String> {
    let hrp = bech32::Hrp::parse_unchecked(HRP);
    let lower = Zeroizing::new(bech32::encode::<bech32::Bech32>(hrp, &secret[..]).unwrap_or_default());
    Zeroizing::new(lower.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Our encoding of the identity is age's own.
    #[test]
    fn identities_round_trip_through_age() {
        let id = age::x25519::Identity::generate();
        let text = id.to_string();
        let key = RecoveryKey::parse(&format!("# comment\n{}\n", text.expose_secret())).unwrap();
        assert_eq!(key.to_identity_string().as_str(), text.expose_secret());
        assert_eq!(key.recipient(), id.to_public().to_string());
        assert!(RecoveryKey::parse("# nothing here\n").is_err());
        assert!(RecoveryKey::parse("AGE-SECRET-KEY-1QQQQ\n").is_err());
        assert!(!format!("{key:?}").contains("AGE-SECRET"), "Debug shows no secret");
    }

    /// A second implementation of the combination: Lagrange interpolation
    /// at 0 over GF(2^8) with the polynomial x^8+x^4+x^3+x^2+1 (0x11d, the
    /// field of `blahaj`, as of Reed-Solomon codes), written here from the
    /// textbook and nowhere else, so that a share set made by `blahaj` is
    /// known to be plain Shamir (anyone can combine it with another tool).
    fn reference_combine(points: &[(u8, Vec<u8>)]) -> Vec<u8> {
        fn mul(mut a: u8, mut b: u8) -> u8 {
            let mut p = 0u8;
            while b != 0 {
                if b & 1 != 0 {
                    p ^= a;
                }
                let carry = a & 0x80 != 0;
                a <<= 1;
                if carry {
                    a ^= 0x1d;
                }
                b >>= 1;
            }
            p
        }
        fn inv(a: u8) -> u8 {
            (1..=255u8).find(|&b| mul(a, b) == 1).unwrap_or(0)
        }
        let len = points[0].1.len();
        (0..len)
            .map(|i| {
                let mut acc = 0u8;
                for (j, (xj, yj)) in points.iter().enumerate() {
                    // l_j(0) = prod over m != j of x_m / (x_m - x_j); minus is xor.
                    let mut l = 1u8;
                    for (m, (xm, _)) in points.iter().enumerate() {
                        if m != j {
                            l = mul(l, mul(*xm, inv(xm ^ xj)));
                        }
                    }
                    acc ^= mul(l, yj[i]);
                }
                acc
            })
            .collect()
    }

    #[test]
    fn every_k_of_n_combines_and_fewer_do_not() {
        let key = RecoveryKey::generate();
        for (k, n) in [(2usize, 3usize), (3, 5), (2, 2), (5, 7)] {
            let shares = split(&key, k, n).unwrap();
            assert_eq!(shares.len(), n);
            // Through text, every subset of size k (and k + 1) combines.
            let lines: Vec<String> = shares.iter().map(Share::to_line).collect();
            let parsed = Share::parse_all(&lines.join("\n")).unwrap();
            for mask in 0u32..(1 << n) {
                let subset: Vec<Share> =
                    parsed.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, s)| s.clone()).collect();
                if subset.len() == k || subset.len() == k + 1 {
                    assert_eq!(combine(&subset).unwrap().recipient(), key.recipient(), "{k} of {n}, mask {mask:b}");
                    let points: Vec<(u8, Vec<u8>)> = subset.iter().map(|s| (s.x, s.y.to_vec())).collect();
                    assert_eq!(reference_combine(&points), key.secret.to_vec(), "second implementation");
                } else if subset.len() < k && !subset.is_empty() {
                    assert!(matches!(combine(&subset), Err(Error::NotEnough { .. })), "{k} of {n}, {mask:b}");
                }
            }
        }
    }

    #[test]
    fn a_protected_key_file_opens_with_its_passphrase_only() {
        let key = RecoveryKey::generate();
        let pass = age::secrecy::SecretString::from("correct horse battery staple".to_string());
        let file = key.to_protected_file(&pass).unwrap();
        assert!(is_age_file(&file));
        assert!(!String::from_utf8_lossy(&file).contains("AGE-SECRET-KEY"));
        let back = RecoveryKey::open(&file, || Ok(pass.clone())).unwrap();
        assert_eq!(back.recipient(), key.recipient());
        let wrong = age::secrecy::SecretString::from("correct horse battery stapler".to_string());
        assert!(matches!(RecoveryKey::open_protected(&file, &wrong), Err(Error::WrongPassphrase)));
        // A plain key file is read without asking.
        let plain = RecoveryKey::open(key.to_keygen_file().as_bytes(), || panic!("asked")).unwrap();
        assert_eq!(plain.recipient(), key.recipient());
    }

    #[test]
    fn wrong_shares_are_named() {
        let key = RecoveryKey::generate();
        let other = RecoveryKey::generate();
        let shares = split(&key, 2, 3).unwrap();
        let line = shares[0].to_line();
        // A mistyped character: the check catches it, naming the line.
        // (Character 40 is a hex digit of the share's bytes.)
        let mut typo = line.clone().into_bytes();
        typo[40] = if typo[40] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        match Share::parse_all(&format!("# shares\n\n{typo}\n")) {
            Err(Error::BadShare { line: 3, reason }) => assert!(reason.contains("check"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // Typed back in upper case with extra spaces: fine.
        let loose = line.to_ascii_uppercase().replace(' ', "   ");
        assert_eq!(Share::parse(&loose).unwrap(), shares[0]);
        // Shares of two keys never combine.
        let mixed = vec![shares[0].clone(), split(&other, 2, 3).unwrap()[1].clone()];
        assert!(matches!(combine(&mixed), Err(Error::MixedSets(..))));
        // The same share twice is one share.
        assert!(matches!(combine(&[shares[1].clone(), shares[1].clone()]), Err(Error::NotEnough { have: 1, need: 2 })));
        // Bad parameters.
        for (k, n) in [(1, 3), (4, 3), (2, 256)] {
            assert!(matches!(split(&key, k, n), Err(Error::Parameters { .. })));
        }
    }
}
