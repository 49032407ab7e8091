//! Sealing the members of an archive: one age header per archive, one age
//! payload per member.
//!
//! An encrypted archive holds one age header (made by the `age` crate: a
//! random file key wrapped to each recipient, and the header's MAC) and,
//! for every member, an age *payload* under that file key: a 16-byte nonce,
//! then the plaintext in 64 KiB chunks, each sealed with ChaCha20-Poly1305
//! under a key derived from the file key and the nonce (age's STREAM
//! construction, `docs/format/xtar.md` §A9). `cat HEADER PAYLOAD` is an
//! ordinary age file, which `age -d -i KEY` opens.
//!
//! Unlike a plain age file, the nonce is not random: it is the first 16
//! bytes of HKDF-SHA256 of the file key, with the member's name in its
//! info string. Names are unique in an archive and file
//! keys unique to it, so nonces never repeat; and a reader that knows
//! where a member was found recomputes its nonce, so a member moved to
//! another name, or taken from another archive, is refused even though it
//! decrypts.
//!
//! Nothing here is a primitive of our own: the header and the key wrapping
//! are the `age` crate's, the AEAD is RustCrypto's `chacha20poly1305`, the
//! key derivations are age's HKDF-SHA256 and RustCrypto's HMAC.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Mutex;

use age::secrecy::ExposeSecret;
use age_core::format::{FileKey, Stanza};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use zeroize::Zeroizing;

/// Plaintext bytes of a chunk (all but the last are full).
pub const CHUNK: usize = 64 << 10;
/// Bytes of a payload's nonce, at its start.
pub const NONCE: usize = 16;
/// Bytes of a chunk's authentication tag.
pub const TAG: usize = 16;
/// Bytes of a full sealed chunk.
pub const SEALED_CHUNK: usize = CHUNK + TAG;

/// What can go wrong opening an archive's key or a member.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// None of the identities given is a recipient of the archive.
    #[error("none of the keys given opens it (it was encrypted to other keys)")]
    WrongKey,
    /// The header cannot be read or its MAC does not check.
    #[error("its age header is damaged: {0}")]
    BadHeader(String),
    /// A recipient that is not an age X25519 recipient.
    #[error("`{0}` is not an age recipient (age1…)")]
    BadRecipient(String),
    /// Encrypting failed (age's own error).
    #[error("age: {0}")]
    Age(String),
    /// A payload too short, or of a length no payload has.
    #[error("a sealed member of {0} bytes cannot be an age payload")]
    BadLength(u64),
    /// The nonce of a payload is not the one of its name.
    #[error("its nonce belongs to another member or archive (moved, swapped or replayed)")]
    Moved,
    /// A chunk that does not authenticate.
    #[error("chunk {0} does not authenticate (damaged or tampered with)")]
    Chunk(u64),
}

/// An archive's file key, its header, and the keys derived from it.
pub struct ArchiveKey {
    file_key: Zeroizing<[u8; 16]>,
    header: Vec<u8>,
}

impl std::fmt::Debug for ArchiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        write!(f, "ArchiveKey({} header bytes)", self.header.len())
    }
}

/// Parses `age1…` recipients.
pub fn parse_recipients<S: AsRef<str>>(list: &[S]) -> Result<Vec<age::x25519::Recipient>, SealError> {
    list.iter()
        .map(|s| {
            let s = s.as_ref().trim();
            age::x25519::Recipient::from_str(s).map_err(|_| SealError::BadRecipient(s.to_string()))
        })
        .collect()
}

/// Wraps the file key to every recipient, keeping a copy of it.
struct Capture<'a> {
    to: &'a [age::x25519::Recipient],
    key: Mutex<Option<Zeroizing<[u8; 16]>>>,
}

impl age::Recipient for Capture<'_> {
    fn wrap_file_key(&self, file_key: &FileKey) -> Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        if let Ok(mut k) = self.key.lock() {
            *k = Some(Zeroizing::new(*file_key.expose_secret()));
        }
        let mut stanzas = Vec::new();
        for r in self.to {
            stanzas.extend(age::Recipient::wrap_file_key(r, file_key)?.0);
        }
        Ok((stanzas, HashSet::new()))
    }
}

/// Unwraps the file key with any of the identities, keeping a copy of it.
struct Unwrap<'a> {
    ids: &'a [&'a age::x25519::Identity],
    key: Mutex<Option<Zeroizing<[u8; 16]>>>,
}

impl age::Identity for Unwrap<'_> {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, age::DecryptError>> {
        for id in self.ids {
            if let Some(r) = age::Identity::unwrap_stanzas(*id, stanzas) {
                if let Ok(fk) = &r {
                    if let Ok(mut k) = self.key.lock() {
                        *k = Some(Zeroizing::new(*fk.expose_secret()));
                    }
                }
                return Some(r);
            }
        }
        None
    }
}

/// The length of an age header at the start of `bytes`: up to and with
/// the line `--- MAC`.
pub fn header_len(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        at += line.len();
        if line.starts_with(b"--- ") && line.ends_with(b"\n") {
            return Some(at);
        }
    }
    None
}

impl ArchiveKey {
    /// A new random file key, wrapped to every recipient in a new age
    /// header.
    pub fn new(to: &[age::x25519::Recipient]) -> Result<ArchiveKey, SealError> {
        if to.is_empty() {
            return Err(SealError::Age("no recipients".into()));
        }
        let capture = Capture { to, key: Mutex::new(None) };
        let enc = age::Encryptor::with_recipients(std::iter::once(&capture as &dyn age::Recipient))
            .map_err(|e| SealError::Age(e.to_string()))?;
        let mut out = Vec::new();
        let w = enc.wrap_output(&mut out).map_err(|e| SealError::Age(e.to_string()))?;
        w.finish().map_err(|e| SealError::Age(e.to_string()))?;
        let len = header_len(&out).ok_or_else(|| SealError::Age("age wrote no header".into()))?;
        out.truncate(len);
        let file_key = capture
            .key
            .into_inner()
            .ok()
            .flatten()
            .ok_or_else(|| SealError::Age("age did not wrap a file key".into()))?;
        Ok(ArchiveKey::from_parts(file_key, out))
    }

    /// Opens the age header `header` with any of `ids` (checking its MAC).
    pub fn open(header: &[u8], ids: &[&age::x25519::Identity]) -> Result<ArchiveKey, SealError> {
        let len = header_len(header).ok_or_else(|| SealError::BadHeader("no `---` line".into()))?;
        if len != header.len() {
            return Err(SealError::BadHeader("bytes after the header".into()));
        }
        let mut file = header.to_vec();
        // The age crate reads a payload nonce after the header; none is used.
        file.extend_from_slice(&[0u8; NONCE]);
        let dec = age::Decryptor::new(&file[..]).map_err(|e| SealError::BadHeader(e.to_string()))?;
        if dec.is_scrypt() {
            return Err(SealError::BadHeader("a passphrase header, not one of recipients".into()));
        }
        let unwrap = Unwrap { ids, key: Mutex::new(None) };
        match dec.decrypt(std::iter::once(&unwrap as &dyn age::Identity)) {
            Ok(_) => {}
            Err(age::DecryptError::NoMatchingKeys) => return Err(SealError::WrongKey),
            Err(e) => return Err(SealError::BadHeader(e.to_string())),
        }
        let file_key = unwrap.key.into_inner().ok().flatten().ok_or(SealError::WrongKey)?;
        Ok(ArchiveKey::from_parts(file_key, header.to_vec()))
    }

    fn from_parts(file_key: Zeroizing<[u8; 16]>, header: Vec<u8>) -> ArchiveKey {
        ArchiveKey { file_key, header }
    }

    /// The age header: what is stored as `.xtar-age`.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// The nonce of the member named `name`.
    pub fn nonce(&self, name: &[u8]) -> [u8; NONCE] {
        let mut info = b"xtar member nonce\0".to_vec();
        info.extend_from_slice(name);
        let tag = Zeroizing::new(age_core::primitives::hkdf(&[], &info, &self.file_key[..]));
        let mut n = [0u8; NONCE];
        n.copy_from_slice(&tag[..NONCE]);
        n
    }

    fn cipher(&self, nonce: &[u8; NONCE]) -> ChaCha20Poly1305 {
        let key = Zeroizing::new(age_core::primitives::hkdf(nonce, b"payload", &self.file_key[..]));
        ChaCha20Poly1305::new((&*key).into())
    }

    /// Seals `plain` as the payload of member `name`, appending it to `out`.
    pub fn seal(&self, name: &[u8], plain: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        out.reserve(sealed_len(plain.len() as u64) as usize);
        let mut s = self.sealer(name, out);
        s.update(plain, out)?;
        s.finish(out)
    }

    /// A streaming sealer for member `name`: its nonce starts `out`.
    pub fn sealer(&self, name: &[u8], out: &mut Vec<u8>) -> Sealer {
        let nonce = self.nonce(name);
        out.extend_from_slice(&nonce);
        Sealer { cipher: self.cipher(&nonce), index: 0, start: out.len() }
    }

    /// An opener for the payload of member `name`, `sealed` bytes long.
    /// The nonce is recomputed from the name, not read: damage to the
    /// stored nonce costs nothing, and a payload moved from another name
    /// or archive does not authenticate.
    pub fn opener(&self, name: &[u8], sealed: u64) -> Result<Opener, SealError> {
        let chunks = plain_len(sealed).ok_or(SealError::BadLength(sealed)).map(chunks_of)?;
        Ok(Opener { cipher: self.cipher(&self.nonce(name)), chunks })
    }

    /// Whether `stored` is the nonce of member `name` (to tell a member
    /// moved from another name or archive from plain damage).
    pub fn nonce_matches(&self, name: &[u8], stored: &[u8]) -> bool {
        stored == self.nonce(name)
    }

    /// Opens the whole payload of member `name`.
    pub fn open_member(&self, name: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let op = self.opener(name, sealed.len() as u64)?;
        if !self.nonce_matches(name, &sealed[..NONCE]) {
            return Err(SealError::Moved);
        }
        let mut out = Vec::with_capacity(sealed.len());
        for (i, c) in sealed[NONCE..].chunks(SEALED_CHUNK).enumerate() {
            out.extend_from_slice(&op.open_chunk(i as u64, c)?);
        }
        Ok(out)
    }

    /// Opens what can be opened of member `name`: each chunk on its own,
    /// `None` for those that do not authenticate. `Err` when the length is
    /// not one of a payload.
    pub fn open_chunks(&self, name: &[u8], sealed: &[u8]) -> Result<Vec<Option<Vec<u8>>>, SealError> {
        let op = self.opener(name, sealed.len() as u64)?;
        Ok(sealed[NONCE..].chunks(SEALED_CHUNK).enumerate().map(|(i, c)| op.open_chunk(i as u64, c).ok()).collect())
    }
}

/// Seals a payload given in pieces (see [`ArchiveKey::sealer`]): the same
/// bytes as [`ArchiveKey::seal`] of the whole. The chunk being filled is
/// the plaintext at the end of `out`, sealed there in place when the next
/// byte comes (or at [`Sealer::finish`]): each byte is copied once.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    index: u64,
    /// Where in `out` the chunk being filled starts: `out[..start]` is final.
    start: usize,
}

impl Sealer {
    /// Seals the chunks that `data` completes, appending to `out` (the same
    /// vector every call, as [`ArchiveKey::sealer`] began it, less what
    /// [`Sealer::drained`] took). A full chunk is kept back until more data
    /// shows it is not the last.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        while !data.is_empty() {
            if out.len() - self.start == CHUNK {
                self.emit(false, out)?;
            }
            let n = (CHUNK - (out.len() - self.start)).min(data.len());
            out.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        Ok(())
    }

    /// How many bytes at the start of `out` are sealed for good (the rest
    /// is the plaintext of the chunk being filled).
    pub fn ready(&self) -> usize {
        self.start
    }

    /// Says that the first `n` bytes of `out` (at most [`Sealer::ready`])
    /// were taken away (written out).
    pub fn drained(&mut self, n: usize) {
        self.start -= n.min(self.start);
    }

    /// Seals the last chunk.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), SealError> {
        self.emit(true, out)
    }

    fn emit(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), SealError> {
        let tag = self
            .cipher
            .encrypt_in_place_detached(&chunk_nonce(self.index, last).into(), &[], &mut out[self.start..])
            .map_err(|e| SealError::Age(e.to_string()))?;
        out.extend_from_slice(&tag);
        self.start = out.len();
        self.index += 1;
        Ok(())
    }
}

/// Decrypts the chunks of one payload, each on its own.
pub struct Opener {
    cipher: ChaCha20Poly1305,
    chunks: u64,
}

impl Opener {
    /// How many chunks the payload has.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Opens chunk `index` (sealed bytes, tag included).
    pub fn open_chunk(&self, index: u64, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut buf = sealed.to_vec();
        self.open_in_place(index, &mut buf)?;
        Ok(buf)
    }

    /// Opens chunk `index` in place: `buf` holds it sealed, then plain.
    pub fn open_in_place(&self, index: u64, buf: &mut Vec<u8>) -> Result<(), SealError> {
        if index >= self.chunks {
            return Err(SealError::Chunk(index));
        }
        let last = index + 1 == self.chunks;
        let expect = if last { buf.len() } else { SEALED_CHUNK };
        if buf.len() != expect || buf.len() < TAG {
            return Err(SealError::Chunk(index));
        }
        self.cipher.decrypt_in_place(&chunk_nonce(index, last).into(), &[], buf).map_err(|_| SealError::Chunk(index))
    }
}

/// age's chunk nonce: an 11-byte big-endian counter and the last-chunk flag.
fn chunk_nonce(index: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Chunks of a plaintext of `len` bytes (an empty one has one empty chunk).
pub fn chunks_of(len: u64) -> u64 {
    len.div_ceil(CHUNK as u64).max(1)
}

/// Bytes of the payload of a plaintext of `len` bytes.
pub fn sealed_len(len: u64) -> u64 {
    NONCE as u64 + len + TAG as u64 * chunks_of(len)
}

/// Bytes of the plaintext of a payload of `sealed` bytes, if any
/// plaintext gives that length.
pub fn plain_len(sealed: u64) -> Option<u64> {
    let body = sealed.checked_sub(NONCE as u64)?;
    let n = body.div_ceil(SEALED_CHUNK as u64).max(1);
    let plain = body.checked_sub(TAG as u64 * n)?;
    (sealed_len(plain) == sealed).then_some(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RecoveryKey;

    fn key() -> (RecoveryKey, ArchiveKey) {
        let k = RecoveryKey::generate();
        let to = parse_recipients(&[k.recipient()]).unwrap();
        let a = ArchiveKey::new(&to).unwrap();
        (k, a)
    }

    /// `cat HEADER PAYLOAD` is an age file that Debian's `age` opens.
    #[test]
    fn debian_age_opens_header_and_payload() {
        let Ok(out) = std::process::Command::new("age").arg("--version").output() else {
            panic!("the `age` tool is needed (apt-get install age)");
        };
        assert!(out.status.success());
        let (k, a) = key();
        let dir = tempfile::tempdir().unwrap();
        let plain: Vec<u8> = (0..150_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let mut file = a.header().to_vec();
        a.seal(b"12", &plain, &mut file).unwrap();
        std::fs::write(dir.path().join("m.age"), &file).unwrap();
        std::fs::write(dir.path().join("key"), k.to_keygen_file().as_bytes()).unwrap();
        let out = std::process::Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(dir.path().join("key"))
            .arg(dir.path().join("m.age"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, plain);
    }

    #[test]
    fn streaming_seals_the_same_bytes() {
        let (_, a) = key();
        for len in [0usize, 5, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 77] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 13) as u8).collect();
            let mut whole = Vec::new();
            a.seal(b"x", &plain, &mut whole).unwrap();
            let mut parts = Vec::new();
            let mut s = a.sealer(b"x", &mut parts);
            for piece in plain.chunks(1000) {
                s.update(piece, &mut parts).unwrap();
            }
            s.finish(&mut parts).unwrap();
            assert_eq!(parts, whole, "{len}");
        }
    }

    #[test]
    fn lengths_round_trip() {
        for len in [0u64, 1, 100, 65535, 65536, 65537, 131072, 131073, 1 << 20] {
            assert_eq!(plain_len(sealed_len(len)), Some(len), "{len}");
        }
        // Lengths no payload has: shorter than a nonce and a tag, or a last
        // chunk of nothing after full ones.
        for bad in [0u64, 15, 31, 16 + 65552 + 1, 16 + 65552 + 16] {
            assert_eq!(plain_len(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_payload_sealed_in_pieces_and_drained_is_the_payload_sealed_whole() {
        let (_, a) = key();
        for len in [0usize, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 200_000] {
            let plain: Vec<u8> = (0..len as u32).map(|i| (i % 253) as u8).collect();
            let mut whole = Vec::new();
            a.seal(b"9", &plain, &mut whole).unwrap();
            // In odd pieces, handing out what is ready now and then.
            let (mut out, mut taken) = (Vec::new(), Vec::new());
            let mut s = a.sealer(b"9", &mut out);
            for (i, piece) in plain.chunks(7_777).enumerate() {
                s.update(piece, &mut out).unwrap();
                if i % 3 == 2 {
                    let r = s.ready();
                    taken.extend_from_slice(&out[..r]);
                    out.drain(..r);
                    s.drained(r);
                }
            }
            s.finish(&mut out).unwrap();
            taken.extend_from_slice(&out);
            assert_eq!(taken, whole, "{len} bytes");
        }
    }

    #[test]
    fn sealed_members_open_with_the_key_and_their_name_only() {
        let (k, a) = key();
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut sealed = Vec::new();
        a.seal(b"7", &plain, &mut sealed).unwrap();
        assert_eq!(sealed.len() as u64, sealed_len(plain.len() as u64));
        let b = ArchiveKey::open(a.header(), &[k.identity()]).unwrap();
        assert_eq!(b.open_member(b"7", &sealed).unwrap(), plain);
        assert!(matches!(b.open_member(b"8", &sealed), Err(SealError::Moved)));
        // Another archive's key, even for the same recipients.
        let other = ArchiveKey::new(&parse_recipients(&[k.recipient()]).unwrap()).unwrap();
        assert!(other.open_member(b"7", &sealed).is_err());
        // A wrong identity.
        let wrong = RecoveryKey::generate();
        assert!(matches!(ArchiveKey::open(a.header(), &[wrong.identity()]), Err(SealError::WrongKey)));
    }

    #[test]
    fn every_flipped_byte_is_detected_and_costs_its_chunk_only() {
        let (k, a) = key();
        let plain = vec![7u8; 3 * CHUNK + 10];
        let mut sealed = Vec::new();
        a.seal(b"m", &plain, &mut sealed).unwrap();
        for at in [NONCE, NONCE + SEALED_CHUNK + 5, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            assert!(a.open_member(b"m", &bad).is_err());
            let parts = a.open_chunks(b"m", &bad).unwrap();
            assert_eq!(parts.iter().filter(|p| p.is_none()).count(), 1, "flip at {at}");
        }
        // A truncated payload (the last chunk dropped) does not pass.
        let cut = &sealed[..NONCE + 3 * SEALED_CHUNK];
        assert!(a.open_member(b"m", cut).is_err());
        // A flipped header byte breaks its MAC or a stanza.
        let mut h = a.header().to_vec();
        let mid = h.len() / 2;
        h[mid] ^= 1;
        assert!(ArchiveKey::open(&h, &[k.identity()]).is_err());
    }
}
