//! The bytes on disk. `docs/format/xtar.md` is the normative description;
//! this module implements it and nothing else.

pub mod gz;
pub mod sealed;
pub mod tar;
pub mod tree;
pub mod zip;

/// The newest format version this program reads and writes.
pub const FORMAT_VERSION: u32 = 6;
/// The version of the packed layout (Part A) unencrypted.
pub const PACKED_VERSION: u32 = 3;
/// The version of the packed layout encrypted (§A9): readers of version 3
/// alone refuse it, rather than restore files named by numbers.
pub const SEALED_VERSION: u32 = 4;
/// The version of the packed layout with zstd frames and a dictionary
/// (§A11): readers of versions 3 and 4 refuse it, rather than restore
/// files as their frames.
pub const ZSTD_VERSION: u32 = 5;
/// Version 6, what zstd archives are written as: version 5 with a
/// dictionary of the tree's own files (raw content, up to 4 MiB) whose
/// copies hold it as one zstd frame (§A11).
pub const ZSTD_FRAMED_DICT_VERSION: u32 = 6;
/// Version 5: the first copy of the dictionary, after the header.
pub const ZSTD_DICT_NAME: &[u8] = b".xtar-zstd.dict.gz";
/// Version 5: its second copy, after the tree tar's copy.
pub const ZSTD_DICT_END_NAME: &[u8] = b".xtar-zstd.2.dict.gz";
/// Version 5: copy `k` of the dictionary (1: the first, 2: at the end,
/// 3 and 4: among the packs).
pub fn zstd_dict_name(k: u32) -> Vec<u8> {
    if k <= 1 {
        ZSTD_DICT_NAME.to_vec()
    } else {
        format!(".xtar-zstd.{k}.dict.gz").into_bytes()
    }
}
/// Version 5: whether `name` is a copy of the dictionary.
pub fn is_zstd_dict_name(name: &[u8]) -> bool {
    name == ZSTD_DICT_NAME
        || name
            .strip_prefix(b".xtar-zstd.")
            .and_then(|r| r.strip_suffix(b".dict.gz"))
            .is_some_and(|k| !k.is_empty() && k.len() <= 3 && k.iter().all(u8::is_ascii_digit))
}
/// Version 5: the header line that names the dictionary.
pub const ZSTD_DICT_LINE: &[u8] = b"#zstd-dict ";
/// Version 5: the SHA-256 of a dictionary, as the header names it.
pub fn zstd_dict_sum(dict: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(dict).into()
}
/// Version 5: the header line for `dict` (empty: `-`, none).
pub fn zstd_dict_line(dict: &[u8]) -> Vec<u8> {
    let sum = if dict.is_empty() { "-".to_string() } else { hex::encode(zstd_dict_sum(dict)) };
    [ZSTD_DICT_LINE, sum.as_bytes()].concat()
}
/// Version 5: what the header says of the dictionary: `Some(None)` for no
/// dictionary, `Some(Some(sha))`, or `None` when it says nothing valid.
pub fn zstd_dict_of(header: &[u8]) -> Option<Option<[u8; 32]>> {
    let v = header.split(|&b| b == b'\n').find_map(|l| l.strip_prefix(ZSTD_DICT_LINE))?;
    if v == b"-" {
        return Some(None);
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(v, &mut out).ok()?;
    Some(Some(out))
}
/// The version a header's first line (`#xtar N`) names, if it names one.
pub fn version_of(header: &[u8]) -> Option<u32> {
    let first = header.split(|&b| b == b'\n').next()?;
    let v = first.strip_prefix(HEADER_MAGIC.as_bytes())?.strip_prefix(b" ")?;
    std::str::from_utf8(v).ok()?.parse().ok()
}
/// The version of the nested layout (one container per directory), which
/// [`crate::ArchiveWriter`] writes: volume sets and backup sets use it.
pub const NESTED_VERSION: u32 = 2;
/// The oldest format version readers accept.
pub const OLDEST_VERSION: u32 = 1;
/// Whether a version string from an archive is one this program reads.
pub fn version_supported(v: &str) -> bool {
    v.parse::<u32>().is_ok_and(|v| (OLDEST_VERSION..=FORMAT_VERSION).contains(&v))
}
/// Whether a version string names the nested layout (versions 1 and 2).
pub fn nested_version(v: &str) -> bool {
    v.parse::<u32>().is_ok_and(|v| (OLDEST_VERSION..=NESTED_VERSION).contains(&v))
}
/// Version 3: the guard between the manifest and the first index.
pub const GUARD: u64 = 64 << 10;
/// Version 3: the manifest, a chain of gzip members, after the header.
pub const MANIFEST_GZ_NAME: &[u8] = b".xtar-manifest.gz";
/// Version 3: everything without data (directories, symlinks, hard links,
/// empty files) as a gzip-compressed tar, after the manifest.
pub const TREE_TAR_NAME: &[u8] = b".xtar-tree.tar.gz";
/// Version 3: the second copy of the tree tar, at the end.
pub const TREE_TAR_END_NAME: &[u8] = b".xtar-tree.2.tar.gz";
/// Version 3: the name of pack `k`, a zip of regular files.
pub fn pack_name(k: u32) -> Vec<u8> {
    format!(".xtar-pack.{k:06}.zip").into_bytes()
}
/// Bytes at the end of an archive that hold no index (version 2 on): the
/// manifest and, for small archives, a pad member fill them.
pub const TAIL_GUARD: u64 = 64 << 10;
/// The data length of the `.xtar-pad` member that makes a guarded region
/// of `have` bytes (a multiple of 512) reach [`TAIL_GUARD`] (= [`GUARD`])
/// bytes with its own header block; `None` when it is long enough.
pub fn guard_pad(have: u64) -> Option<u64> {
    (have < TAIL_GUARD).then(|| (TAIL_GUARD - have).saturating_sub(512).div_ceil(512) * 512)
}
/// Version 3: the sector packs are placed against (A2); the first pack's
/// tar header starts at a multiple of it (A5).
pub const SECTOR: u64 = 2048;
/// Version 3: how much longer an entry may be than one written after it
/// in the same pack (A2): placing entries against sectors takes them out
/// of length order by no more than this.
pub const PLACE_SLACK: u64 = SECTOR;
/// The data length of the `.xtar-pad` member after the tree tar at `pos`
/// (a multiple of 512), `have` bytes after the manifest: the head guard
/// ([`guard_pad`]) and, when packs follow (`packs`), the smallest
/// lengthening that starts the first pack at a multiple of [`SECTOR`];
/// `None` when neither needs one.
pub fn head_pad(pos: u64, have: u64, packs: bool) -> Option<u64> {
    let guard = guard_pad(have);
    if !packs || (guard.is_none() && pos.is_multiple_of(SECTOR)) {
        return guard;
    }
    let mut pad = guard.unwrap_or(0);
    while !(pos + 512 + pad).is_multiple_of(SECTOR) {
        pad += 512;
    }
    Some(pad)
}
/// Name of the zero-filled member that completes the tail guard.
pub const PAD_NAME: &[u8] = b".xtar-pad";
/// Name of the first member of an archive.
pub const HEADER_NAME: &[u8] = b".xtar-header";
/// Last component of a directory's index member.
pub const INDEX_NAME: &[u8] = b".xtar-index";
/// Name of the last member of an archive: the whole manifest.
pub const MANIFEST_NAME: &[u8] = b".xtar-manifest";
/// Suffix of a file member (a zip with one entry).
pub const FILE_SUFFIX: &[u8] = b".zip";
/// Suffix of a directory's container.
pub const CONTAINER_SUFFIX: &[u8] = b".xtar";
/// Suffix of a part of a file member split across volumes
/// (`PATH.zip.K.xtar-part`, K from 1).
pub const PART_SUFFIX: &[u8] = b".xtar-part";
/// Name of the table of a volume set, in every volume of the set.
pub const VOLUMES_NAME: &[u8] = b".xtar-volumes";
/// First line of an index member, before the version.
pub const INDEX_MAGIC: &str = "#xtar-index";
/// First line of the header member, before the version.
pub const HEADER_MAGIC: &str = "#xtar";

/// What a tar member name says the member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberName {
    /// `.xtar-header` at the root.
    Header,
    /// `.xtar-manifest` at the root.
    Manifest,
    /// `.xtar-pad` at the root: zeros that complete the tail guard.
    Pad,
    /// `DIR/.xtar-index`: the index of `DIR` (empty for the root).
    Index(Vec<u8>),
    /// `PATH.zip`: the file (or symlink) at `PATH`.
    File(Vec<u8>),
    /// `PATH.xtar`: the container of the directory at `PATH`.
    Container(Vec<u8>),
    /// `PATH.zip.K.xtar-part`: part `K` (from 1) of the file member of
    /// `PATH`, split across the volumes of a set.
    Part(Vec<u8>, u32),
    /// `.xtar-volumes` at the root: the table of a volume set.
    Volumes,
    /// Version 3: `.xtar-manifest.gz`.
    ManifestGz,
    /// Version 3: `.xtar-tree.tar.gz` or its copy `.xtar-tree.2.tar.gz`.
    TreeTar,
    /// Version 3: `.xtar-pack.K.zip`, pack `K`.
    Pack(u32),
    /// Anything else; readers skip it.
    Other(Vec<u8>),
}

impl MemberName {
    /// Classifies a tar member name of a version 3 archive, whose members
    /// all have names of the format (no user name is a tar name).
    pub fn parse_v3(name: &[u8]) -> MemberName {
        let numbered = |prefix: &[u8], suffix: &[u8]| -> Option<u32> {
            let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
            if digits.len() < 6 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(digits).ok()?.parse::<u32>().ok().filter(|&k| k > 0)
        };
        match name {
            HEADER_NAME => MemberName::Header,
            PAD_NAME => MemberName::Pad,
            MANIFEST_GZ_NAME => MemberName::ManifestGz,
            TREE_TAR_NAME | TREE_TAR_END_NAME => MemberName::TreeTar,
            _ => match numbered(b".xtar-pack.", b".zip") {
                Some(k) => MemberName::Pack(k),
                None => MemberName::Other(name.to_vec()),
            },
        }
    }

    /// Classifies a tar member name of a version 1 or 2 archive.
    pub fn parse(name: &[u8]) -> MemberName {
        if name == HEADER_NAME {
            return MemberName::Header;
        }
        if name == MANIFEST_NAME {
            return MemberName::Manifest;
        }
        if name == PAD_NAME {
            return MemberName::Pad;
        }
        if name == VOLUMES_NAME {
            return MemberName::Volumes;
        }
        if let Some(rest) = name.strip_suffix(PART_SUFFIX) {
            let part = rest.iter().rposition(|&b| b == b'.').and_then(|dot| {
                let k = std::str::from_utf8(&rest[dot + 1..]).ok()?.parse::<u32>().ok().filter(|&k| k > 0)?;
                let path = rest[..dot].strip_suffix(FILE_SUFFIX).filter(|p| !p.is_empty())?;
                Some((path.to_vec(), k))
            });
            return match part {
                Some((path, k)) => MemberName::Part(path, k),
                None => MemberName::Other(name.to_vec()),
            };
        }
        if name == INDEX_NAME {
            return MemberName::Index(Vec::new());
        }
        if let Some(dir) = name.strip_suffix(INDEX_NAME).and_then(|d| d.strip_suffix(b"/")) {
            return MemberName::Index(dir.to_vec());
        }
        if let Some(p) = name.strip_suffix(FILE_SUFFIX).filter(|p| !p.is_empty()) {
            return MemberName::File(p.to_vec());
        }
        if let Some(p) = name.strip_suffix(CONTAINER_SUFFIX).filter(|p| !p.is_empty()) {
            return MemberName::Container(p.to_vec());
        }
        MemberName::Other(name.to_vec())
    }
}

/// The tar name of the member for a file at `path`.
pub fn file_member_name(path: &[u8]) -> Vec<u8> {
    [path, FILE_SUFFIX].concat()
}

/// The tar name of part `k` (from 1) of the file member of `path`.
pub fn part_name(path: &[u8], k: u32) -> Vec<u8> {
    [path, FILE_SUFFIX, format!(".{k:03}").as_bytes(), PART_SUFFIX].concat()
}

/// The tar name of the container for the directory at `path` (not the root).
pub fn container_name(path: &[u8]) -> Vec<u8> {
    [path, CONTAINER_SUFFIX].concat()
}

/// The tar name of the index of the directory at `dir`.
pub fn index_name(dir: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        INDEX_NAME.to_vec()
    } else {
        [dir, b"/", INDEX_NAME].concat()
    }
}

/// Checks that a path from an archive is safe to create below a
/// destination: relative, not empty, no NUL, no empty, `.` or `..`
/// component. Returns the reason when it is not.
pub fn check_member_path(path: &[u8]) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.contains(&0) {
        return Err("NUL byte in path");
    }
    if path[0] == b'/' {
        return Err("absolute path");
    }
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" => return Err("empty path component"),
            b"." => return Err("`.` component in path"),
            b".." => return Err("`..` component in path"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_classify() {
        assert_eq!(MemberName::parse(b"a/b.txt.zip"), MemberName::File(b"a/b.txt".to_vec()));
        assert_eq!(MemberName::parse(b"a/b.xtar"), MemberName::Container(b"a/b".to_vec()));
        assert_eq!(MemberName::parse(b"a/.xtar-index"), MemberName::Index(b"a".to_vec()));
        assert_eq!(MemberName::parse(b".xtar-index"), MemberName::Index(Vec::new()));
        assert_eq!(MemberName::parse(b"a/.xtar-index.zip"), MemberName::File(b"a/.xtar-index".to_vec()));
        assert_eq!(MemberName::parse(b".zip"), MemberName::Other(b".zip".to_vec()));
        assert_eq!(MemberName::parse(b"a/big.zip.002.xtar-part"), MemberName::Part(b"a/big".to_vec(), 2));
        assert_eq!(MemberName::parse(&part_name(b"a/big", 12)), MemberName::Part(b"a/big".to_vec(), 12));
        assert_eq!(MemberName::parse(b".xtar-volumes"), MemberName::Volumes);
        // A user's file with these names is stored with `.zip` appended.
        assert_eq!(MemberName::parse(b"x.xtar-part.zip"), MemberName::File(b"x.xtar-part".to_vec()));
        for odd in [&b"a.zip.0.xtar-part"[..], b"a.zip.x.xtar-part", b".zip.1.xtar-part", b"a.1.xtar-part"] {
            assert_eq!(MemberName::parse(odd), MemberName::Other(odd.to_vec()), "{odd:?}");
        }
    }

    #[test]
    fn version_3_names_classify() {
        assert_eq!(MemberName::parse_v3(&pack_name(7)), MemberName::Pack(7));
        assert_eq!(MemberName::parse_v3(&pack_name(1_234_567)), MemberName::Pack(1_234_567));
        assert_eq!(MemberName::parse_v3(b".xtar-manifest.gz"), MemberName::ManifestGz);
        assert_eq!(MemberName::parse_v3(b".xtar-tree.tar.gz"), MemberName::TreeTar);
        for odd in
            [&b".xtar-pack.000000.zip"[..], b".xtar-pack.12.zip", b"a/.xtar-pack.000001.zip", b"x.zip", b".xtar-index"]
        {
            assert_eq!(MemberName::parse_v3(odd), MemberName::Other(odd.to_vec()), "{odd:?}");
        }
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for p in [&b"/etc/passwd"[..], b"a/../b", b"..", b"a//b", b"./a", b"a\0b", b""] {
            assert!(check_member_path(p).is_err(), "{}", String::from_utf8_lossy(p));
        }
        assert!(check_member_path(b"a/b..c/.d").is_ok());
    }
}
