//! The keyring: one master key that everything is encrypted to, opened by
//! any of several ways in.
//!
//! Archives and repositories are encrypted to the master key's recipient
//! only, so a machine that makes backups needs nothing secret, and adding
//! or removing a way in rewrites the keyring, never an archive. Each way
//! in is a recipient (the owner's key, a recovery key, a friend's key) to
//! which the master key's identity is encrypted, as an ordinary age file:
//! `age -d -i WAY-KEY` opens it without pybackup.
//!
//! ```text
//! #pybackup-keyring 1
//! #recipient age1…                 (the master key's recipient)
//! way LABEL age1…                  (a way in, and the recipient it opens with)
//! -----BEGIN AGE ENCRYPTED FILE-----
//! …                                (the master key file, encrypted to that recipient)
//! -----END AGE ENCRYPTED FILE-----
//! …                                (more ways)
//! #end SHA256                      (of every byte before this line)
//! ```

use std::io::{Read, Write};
use std::str::FromStr;

use sha2::Digest;
use zeroize::Zeroizing;

use crate::{Error, RecoveryKey, Result};

/// The first line of a keyring.
pub const KEYRING_MAGIC: &str = "#pybackup-keyring 1";

/// One way in: a label, the recipient it opens with, and the master key
/// encrypted to it (armored age).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Way {
    /// A name for people (`owner`, `recovery`, `alice`): no spaces.
    pub label: String,
    /// The recipient (`age1…`) whose identity opens this way.
    pub recipient: String,
    armored: String,
}

/// A master key and the ways into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    /// The master key's recipient: what archives are encrypted to.
    pub recipient: String,
    ways: Vec<Way>,
}

impl Keyring {
    /// A new master key, and a keyring with one way in per `(label,
    /// recipient)`. Returns the keyring and the master key (to be used now
    /// and dropped: it is in the keyring, encrypted, for later).
    pub fn create(ways: &[(&str, &str)]) -> Result<(Keyring, RecoveryKey)> {
        if ways.is_empty() {
            return Err(Error::Keyring("a keyring needs at least one way in".into()));
        }
        let master = RecoveryKey::generate();
        let mut ring = Keyring { recipient: master.recipient(), ways: Vec::new() };
        for (label, recipient) in ways {
            ring.add(&master, label, recipient)?;
        }
        Ok((ring, master))
    }

    /// The ways in.
    pub fn ways(&self) -> &[Way] {
        &self.ways
    }

    /// Adds a way in (the master key, already opened, is encrypted to it).
    pub fn add(&mut self, master: &RecoveryKey, label: &str, recipient: &str) -> Result<()> {
        if master.recipient() != self.recipient {
            return Err(Error::Keyring("that is not this keyring's master key".into()));
        }
        if label.is_empty() || label.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::Keyring(format!("bad label `{label}`: a word without spaces")));
        }
        if self.ways.iter().any(|w| w.label == label) {
            return Err(Error::Keyring(format!("there is already a way in called `{label}`")));
        }
        let to = age::x25519::Recipient::from_str(recipient)
            .map_err(|e| Error::Keyring(format!("`{recipient}` is not an age X25519 recipient: {e}")))?;
        let armored = encrypt_armored(&to, master.to_keygen_file().as_bytes())?;
        self.ways.push(Way { label: label.to_string(), recipient: to.to_string(), armored });
        Ok(())
    }

    /// Removes a way in; the last one is never removed. (Copies of the
    /// keyring made before, in older archives, still hold it.)
    pub fn remove(&mut self, label: &str) -> Result<()> {
        let i = self
            .ways
            .iter()
            .position(|w| w.label == label)
            .ok_or_else(|| Error::Keyring(format!("no way in called `{label}`")))?;
        if self.ways.len() == 1 {
            return Err(Error::Keyring("the last way in is never removed: the data would be lost".into()));
        }
        self.ways.remove(i);
        Ok(())
    }

    /// The master key, opened with `key` through whichever way it opens.
    pub fn open(&self, key: &RecoveryKey) -> Result<RecoveryKey> {
        let mine = key.recipient();
        let way = self.ways.iter().find(|w| w.recipient == mine).ok_or(Error::NoWayIn)?;
        let text = Zeroizing::new(decrypt_armored(key.identity(), &way.armored)?);
        let master = RecoveryKey::parse(std::str::from_utf8(&text).map_err(|_| Error::NoWayIn)?)?;
        if master.recipient() != self.recipient {
            return Err(Error::Keyring(format!("way `{}` holds another key than this keyring's", way.label)));
        }
        Ok(master)
    }

    /// The keyring's text.
    pub fn to_text(&self) -> String {
        let mut out = format!("{KEYRING_MAGIC}\n#recipient {}\n", self.recipient);
        for w in &self.ways {
            out.push_str(&format!("way {} {}\n{}", w.label, w.recipient, w.armored));
            if !w.armored.ends_with('\n') {
                out.push('\n');
            }
        }
        let sum = hex::encode(sha2::Sha256::digest(out.as_bytes()));
        out.push_str(&format!("#end {sum}\n"));
        out
    }

    /// Reads a keyring's text, checked.
    pub fn parse(text: &str) -> Result<Keyring> {
        let bad = |m: &str| Error::Keyring(m.to_string());
        let body_end = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
        let sum = text[body_end..].trim_end().strip_prefix("#end ").ok_or_else(|| bad("cut short (no #end line)"))?;
        if sum != hex::encode(sha2::Sha256::digest(&text.as_bytes()[..body_end])) {
            return Err(bad("damaged: its checksum does not match"));
        }
        let mut lines = text[..body_end].lines();
        if lines.next() != Some(KEYRING_MAGIC) {
            return Err(bad("not a pybackup keyring, or of a version this pybackup does not read"));
        }
        let recipient = lines
            .next()
            .and_then(|l| l.strip_prefix("#recipient "))
            .ok_or_else(|| bad("no #recipient line"))?
            .to_string();
        let mut ways = Vec::new();
        while let Some(l) = lines.next() {
            let mut words = l.split(' ');
            let (Some("way"), Some(label), Some(to), None) = (words.next(), words.next(), words.next(), words.next())
            else {
                return Err(bad(&format!("expected `way LABEL RECIPIENT`, found `{l}`")));
            };
            let mut armored = String::new();
            for a in lines.by_ref() {
                armored.push_str(a);
                armored.push('\n');
                if a == "-----END AGE ENCRYPTED FILE-----" {
                    break;
                }
            }
            ways.push(Way { label: label.to_string(), recipient: to.to_string(), armored });
        }
        if ways.is_empty() {
            return Err(bad("no way in"));
        }
        Ok(Keyring { recipient, ways })
    }
}

fn encrypt_armored(to: &age::x25519::Recipient, plain: &[u8]) -> Result<String> {
    String::from_utf8(encrypt(to, plain, age::armor::Format::AsciiArmor)?).map_err(|e| Error::Age(e.to_string()))
}

fn encrypt(to: &age::x25519::Recipient, plain: &[u8], format: age::armor::Format) -> Result<Vec<u8>> {
    let enc = age::Encryptor::with_recipients(std::iter::once(to as &dyn age::Recipient))
        .map_err(|e| Error::Age(e.to_string()))?;
    let mut out = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, format).map_err(|e| Error::Age(e.to_string()))?;
    let mut w = enc.wrap_output(armor).map_err(|e| Error::Age(e.to_string()))?;
    w.write_all(plain).map_err(|e| Error::Age(e.to_string()))?;
    w.finish().and_then(|a| a.finish()).map_err(|e| Error::Age(e.to_string()))?;
    Ok(out)
}

fn decrypt_armored(identity: &age::x25519::Identity, armored: &str) -> Result<Vec<u8>> {
    decrypt(identity, armored.as_bytes()).map(|z| z.to_vec())
}

fn decrypt(identity: &age::x25519::Identity, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let dec =
        age::Decryptor::new_buffered(age::armor::ArmoredReader::new(bytes)).map_err(|e| Error::Age(e.to_string()))?;
    let mut r = dec.decrypt(std::iter::once(identity as &dyn age::Identity)).map_err(|e| match e {
        age::DecryptError::NoMatchingKeys => Error::NoWayIn,
        e => Error::Age(e.to_string()),
    })?;
    let mut out = Zeroizing::new(Vec::new());
    r.read_to_end(&mut out).map_err(|e| Error::Age(e.to_string()))?;
    Ok(out)
}

/// `plain` as an ordinary (binary) age file encrypted to `recipient`
/// (`age1…`): what `age -d -i KEY` opens.
pub fn encrypt_to(recipient: &str, plain: &[u8]) -> Result<Vec<u8>> {
    let to = age::x25519::Recipient::from_str(recipient)
        .map_err(|e| Error::Keyring(format!("`{recipient}` is not an age X25519 recipient: {e}")))?;
    encrypt(&to, plain, age::armor::Format::Binary)
}

/// Like [`encrypt_to`], streaming: the age file (binary) of everything
/// `plain` gives, written to `out` (a text too large to hold in memory).
pub fn encrypt_stream_to(recipient: &str, plain: &mut dyn std::io::Read, out: &mut dyn Write) -> Result<()> {
    let to = age::x25519::Recipient::from_str(recipient)
        .map_err(|e| Error::Keyring(format!("`{recipient}` is not an age X25519 recipient: {e}")))?;
    let enc = age::Encryptor::with_recipients(std::iter::once(&to as &dyn age::Recipient))
        .map_err(|e| Error::Age(e.to_string()))?;
    let mut w = enc.wrap_output(out).map_err(|e| Error::Age(e.to_string()))?;
    std::io::copy(plain, &mut w).map_err(|e| Error::Age(e.to_string()))?;
    w.finish().map_err(|e| Error::Age(e.to_string()))?;
    Ok(())
}

/// Opens an age file (binary or armored) encrypted to `key`:
/// [`Error::NoWayIn`] when it was encrypted to other keys, [`Error::Age`]
/// when it is damaged.
pub fn decrypt_with(key: &RecoveryKey, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    decrypt(key.identity(), bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn any_way_in_opens_the_master_key_and_only_those() {
        let owner = RecoveryKey::generate();
        let recovery = RecoveryKey::generate();
        let stranger = RecoveryKey::generate();
        let (mut ring, master) =
            Keyring::create(&[("owner", &owner.recipient()), ("recovery", &recovery.recipient())]).unwrap();
        let text = ring.to_text();
        assert!(!text.contains("AGE-SECRET-KEY"), "no secret in the clear");
        let ring2 = Keyring::parse(&text).unwrap();
        assert_eq!(ring2, ring);
        for way in [&owner, &recovery] {
            assert_eq!(ring2.open(way).unwrap().recipient(), master.recipient());
        }
        assert!(matches!(ring2.open(&stranger), Err(Error::NoWayIn)));
        // Shares of the recovery key open it too, once combined.
        let shares = crate::split(&recovery, 2, 3).unwrap();
        let back = crate::combine(&shares[1..]).unwrap();
        assert_eq!(ring2.open(&back).unwrap().recipient(), master.recipient());
        // A way added with the opened master key; one removed; never the last.
        let friend = RecoveryKey::generate();
        let opened = ring.open(&owner).unwrap();
        ring.add(&opened, "friend", &friend.recipient()).unwrap();
        ring.remove("owner").unwrap();
        let ring3 = Keyring::parse(&ring.to_text()).unwrap();
        assert_eq!(ring3.recipient, master.recipient(), "the master key never changes");
        assert!(matches!(ring3.open(&owner), Err(Error::NoWayIn)));
        assert_eq!(ring3.open(&friend).unwrap().recipient(), master.recipient());
        ring.remove("recovery").unwrap();
        assert!(ring.remove("friend").is_err(), "the last way in stays");
        assert!(ring.add(&opened, "friend", &stranger.recipient()).is_err(), "labels are unique");
        assert!(ring.add(&stranger, "x", &stranger.recipient()).is_err(), "only with the master key");
        assert!(Keyring::create(&[]).is_err());
    }

    #[test]
    fn a_damaged_keyring_is_refused() {
        let owner = RecoveryKey::generate();
        let (ring, _) = Keyring::create(&[("owner", &owner.recipient())]).unwrap();
        let text = ring.to_text();
        let flipped = text.replacen("owner", "ownex", 1);
        assert!(Keyring::parse(&flipped).unwrap_err().to_string().contains("checksum"));
        let cut = &text[..text.len() / 2];
        assert!(Keyring::parse(cut).is_err());
    }
}
