//! Where every block and recovery block is, and the descriptor that says so.

use crate::{Error, Redundancy, Result, SECTOR};

/// Version of the descriptor and parity volume layout.
pub const VERSION: u32 = 1;
/// Data blocks per group, at most.
pub const GROUP_MAX: u64 = 8192;
/// Checksums per table packet.
pub const TABLE_RUN: u64 = 1024;

/// A protected file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    /// Its file name (no directory), raw bytes.
    pub name: Vec<u8>,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: [u8; 32],
    /// Index of its first block.
    pub first: u64,
}

/// A parity volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParityVolume {
    /// Its file name.
    pub name: Vec<u8>,
    /// Index of its first recovery block.
    pub first: u64,
    /// Recovery blocks it holds.
    pub count: u64,
    /// Offset of the first recovery block in the file.
    pub offset: u64,
    /// The file's size.
    pub size: u64,
}

/// The geometry of a protected set: what the descriptor holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Identifies the set (parity volumes of other sets are ignored).
    pub set: [u8; 16],
    /// Block size in bytes.
    pub block: u64,
    /// Number of groups (independent codes); block `i` is in group `i % groups`.
    pub groups: u64,
    /// Recovery blocks per group.
    pub per_group: u64,
    /// The redundancy asked for, in percent.
    pub percent: u32,
    /// The protected files, in block order.
    pub files: Vec<Protected>,
    /// The parity volumes.
    pub parity: Vec<ParityVolume>,
}

impl Layout {
    /// Data blocks.
    pub fn data_blocks(&self) -> u64 {
        self.files.last().map_or(0, |f| f.first + f.size.div_ceil(self.block))
    }
    /// Recovery blocks.
    pub fn recovery_blocks(&self) -> u64 {
        self.groups * self.per_group
    }
    /// Data blocks of group `g`.
    pub fn group_len(&self, g: u64) -> u64 {
        let n = self.data_blocks();
        n / self.groups + u64::from(g < n % self.groups)
    }
    /// The largest group.
    pub fn group_max(&self) -> u64 {
        self.data_blocks().div_ceil(self.groups)
    }

    /// Plans a set: groups and recovery blocks for files of `sizes` at
    /// redundancy `r`, with blocks of `block` bytes: `r.percent` of a
    /// group's data blocks, plus what the `r.volumes` largest files hold
    /// in one group (so that they can be lost whole).
    pub fn plan(names: Vec<Vec<u8>>, sizes: &[u64], shas: Vec<[u8; 32]>, block: u64, r: Redundancy) -> Result<Layout> {
        let percent = r.percent;
        if percent > 1000 || (percent == 0 && r.volumes == 0) {
            return Err(Error::Redundancy(percent));
        }
        if block == 0 || !block.is_multiple_of(64) {
            return Err(Error::BlockSize(block));
        }
        let mut files = Vec::new();
        let mut first = 0;
        for ((name, &size), sha256) in names.into_iter().zip(sizes).zip(shas) {
            files.push(Protected { name, size, sha256, first });
            first += size.div_ceil(block);
        }
        let n = first;
        if n == 0 {
            return Err(Error::NothingToProtect);
        }
        let groups = n.div_ceil(GROUP_MAX).max(1);
        let mut l = Layout { set: [0; 16], block, groups, per_group: 0, percent, files, parity: Vec::new() };
        l.per_group = ((n.div_ceil(groups) * u64::from(percent)).div_ceil(100) + l.whole_file_blocks(r.volumes)).max(1);
        l.check_rate()?;
        Ok(l)
    }

    /// Whether GF(2^16) allows the set's recovery blocks per group.
    pub(crate) fn check_rate(&self) -> Result<()> {
        if !reed_solomon_simd::ReedSolomonEncoder::supports(self.group_max() as usize, self.per_group as usize) {
            return Err(Error::TooManyBlocks { percent: self.percent, blocks: self.group_max() });
        }
        Ok(())
    }

    /// Spreads the recovery blocks over parity volumes of at most
    /// `max_size` bytes (one volume if `None`), computing their offsets.
    pub fn place_parity(&mut self, base_name: &[u8], max_size: Option<u64>) -> Result<()> {
        let total = self.recovery_blocks();
        let mut volumes = 1u64;
        loop {
            self.parity = (0..volumes)
                .map(|k| {
                    let mut name = base_name.to_vec();
                    name.extend_from_slice(format!(".p{:02}{}", k + 1, crate::SUFFIX).as_bytes());
                    ParityVolume { name, first: 0, count: 0, offset: 0, size: 0 }
                })
                .collect();
            let meta = self.meta_size();
            let head = meta.div_ceil(self.block) * self.block;
            let per = match max_size {
                Some(max) => (max.saturating_sub(head + meta) / self.block).min(total),
                None => total,
            };
            if per == 0 {
                return Err(Error::VolumeTooSmall { size: max_size.unwrap_or(0), needed: head + meta + self.block });
            }
            if per * volumes >= total {
                // Spread evenly.
                let each = total.div_ceil(volumes);
                let mut first = 0;
                for v in &mut self.parity {
                    v.first = first;
                    v.count = each.min(total - first);
                    v.offset = head;
                    v.size = head + v.count * self.block + meta;
                    first += v.count;
                }
                return Ok(());
            }
            volumes = total.div_ceil(per);
        }
    }

    /// Bytes of the metadata written at each end of a parity volume:
    /// descriptor, volume packet and table.
    pub fn meta_size(&self) -> u64 {
        let entries = self.data_blocks() + self.recovery_blocks();
        let runs = entries.div_ceil(TABLE_RUN);
        let full = crate::packet::size(12 + 4 * TABLE_RUN as usize) as u64;
        let last = crate::packet::size(12 + 4 * (entries - (runs - 1) * TABLE_RUN) as usize) as u64;
        (crate::packet::size(self.descriptor().len()) + crate::packet::size(8)) as u64 + (runs - 1) * full + last
    }

    /// The descriptor text (recovery.md §2). Numbers in parity lines have a
    /// fixed width, so that its size does not depend on them.
    pub fn descriptor(&self) -> Vec<u8> {
        let mut t = format!(
            "#xtar-rs {VERSION}\nset {}\nblock {}\ngroups {}\nper-group {}\npercent {}\nsector {SECTOR}\n",
            hex::encode(self.set),
            self.block,
            self.groups,
            self.per_group,
            self.percent
        )
        .into_bytes();
        for f in &self.files {
            t.extend_from_slice(format!("file {} {} {} ", f.first, f.size, hex::encode(f.sha256)).as_bytes());
            manifest::escape_path(&mut t, &f.name);
            t.push(b'\n');
        }
        for p in &self.parity {
            t.extend_from_slice(
                format!("parity {:016} {:016} {:016} {:016} ", p.first, p.count, p.offset, p.size).as_bytes(),
            );
            manifest::escape_path(&mut t, &p.name);
            t.push(b'\n');
        }
        t
    }

    /// Parses a descriptor.
    pub fn parse(text: &[u8]) -> Option<Layout> {
        let text = std::str::from_utf8(text).ok()?;
        let mut lines = text.lines();
        if lines.next()? != format!("#xtar-rs {VERSION}") {
            return None;
        }
        let mut l =
            Layout { set: [0; 16], block: 0, groups: 0, per_group: 0, percent: 0, files: vec![], parity: vec![] };
        for line in lines {
            let (key, rest) = line.split_once(' ')?;
            match key {
                "set" => l.set = hex::decode(rest).ok()?.try_into().ok()?,
                "block" => l.block = rest.parse().ok()?,
                "groups" => l.groups = rest.parse().ok()?,
                "per-group" => l.per_group = rest.parse().ok()?,
                "percent" => l.percent = rest.parse().ok()?,
                "file" => {
                    let mut f = rest.splitn(4, ' ');
                    let first = f.next()?.parse().ok()?;
                    let size = f.next()?.parse().ok()?;
                    let sha256 = hex::decode(f.next()?).ok()?.try_into().ok()?;
                    let name = manifest::unescape_path(f.next()?.as_bytes()).ok()?;
                    l.files.push(Protected { name, size, sha256, first });
                }
                "parity" => {
                    let mut f = rest.splitn(5, ' ');
                    let first = f.next()?.parse().ok()?;
                    let count = f.next()?.parse().ok()?;
                    let offset = f.next()?.parse().ok()?;
                    let size = f.next()?.parse().ok()?;
                    let name = manifest::unescape_path(f.next()?.as_bytes()).ok()?;
                    l.parity.push(ParityVolume { name, first, count, offset, size });
                }
                _ => {}
            }
        }
        // Refuse what cannot be a consistent layout.
        let ok = l.block >= 64
            && l.block.is_multiple_of(64)
            && l.groups >= 1
            && l.per_group >= 1
            && !l.files.is_empty()
            && l.files.windows(2).all(|w| w[1].first == w[0].first + w[0].size.div_ceil(l.block))
            && l.files[0].first == 0
            && l.data_blocks().div_ceil(l.groups) <= 32768
            && l.per_group <= 65535
            && l.parity.iter().map(|p| p.count).sum::<u64>() == l.recovery_blocks()
            && l.parity
                .iter()
                .all(|p| p.offset.checked_add(p.count.saturating_mul(l.block)).is_some_and(|e| e <= p.size));
        ok.then_some(l)
    }
}

/// The block size for files of `sizes` at redundancy `r`: the divisor of the
/// sector size (512, 1024 or 2048 bytes) that gives the least recovery
/// data plus metadata; a larger block wins a tie. A damaged sector then
/// costs whole blocks only.
pub fn choose_block_size(sizes: &[u64], r: Redundancy) -> u64 {
    let mut best: Option<(u64, u64)> = None;
    for block in [2048u64, 1024, 512] {
        let Ok(mut l) = Layout::plan(vec![Vec::new(); sizes.len()], sizes, vec![[0; 32]; sizes.len()], block, r) else {
            continue;
        };
        if l.place_parity(b"x", None).is_err() {
            continue;
        }
        let cost = l.parity.iter().map(|p| p.size).sum::<u64>();
        if best.is_none_or(|(c, _)| cost < c) {
            best = Some((cost, block));
        }
    }
    best.map_or(SECTOR, |(_, b)| b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(percent: u32) -> Redundancy {
        Redundancy { volumes: 0, percent }
    }

    #[test]
    fn one_whole_volume_is_promised_and_sized_by_the_largest_file() {
        // Seven "volumes" of 10 MB and a last of 3 MB, in 2048-byte blocks.
        let sizes = [10_000_000u64, 10_000_000, 10_000_000, 10_000_000, 10_000_000, 10_000_000, 10_000_000, 3_000_000];
        let names = (0..sizes.len()).map(|i| format!("s.{:03}.xtar", i + 1).into_bytes()).collect();
        let mut l =
            Layout::plan(names, &sizes, vec![[0; 32]; sizes.len()], 2048, Redundancy { volumes: 1, percent: 0 })
                .expect("plan");
        l.place_parity(b"s", Some(10_000_000)).expect("place");
        let p = l.promise();
        assert_eq!(p.volumes, 1, "{p:?}");
        assert_eq!(p.of as usize, sizes.len() + l.parity.len());
        // One volume's blocks, spread over the groups: about 1/8 of the data.
        let blocks: u64 = sizes.iter().map(|s| s.div_ceil(2048)).sum();
        assert!(l.recovery_blocks() * 100 / blocks < 15, "{} of {blocks}", l.recovery_blocks());
        // Percent alone at the same cost does not promise a whole volume.
        let names = (0..sizes.len()).map(|i| format!("s.{:03}.xtar", i + 1).into_bytes()).collect();
        let mut q = Layout::plan(names, &sizes, vec![[0; 32]; sizes.len()], 2048, pct(10)).expect("plan");
        q.place_parity(b"s", Some(10_000_000)).expect("place");
        assert_eq!(q.promise().volumes, 0);
        assert!((q.promise().scattered_percent - 100.0 / 11.0).abs() < 0.2, "{:?}", q.promise());
    }

    #[test]
    fn descriptors_round_trip() {
        let mut l = Layout::plan(
            vec![b"a b.001.xtar".to_vec(), b"x\n".to_vec()],
            &[10_000_000, 5],
            vec![[3; 32], [4; 32]],
            2048,
            pct(10),
        )
        .expect("plan");
        l.set = [9; 16];
        l.place_parity(b"set", Some(400_000)).expect("place");
        assert!(l.parity.len() > 1);
        assert!(l.parity.iter().all(|p| p.size <= 400_000), "{:?}", l.parity);
        assert_eq!(Layout::parse(&l.descriptor()), Some(l.clone()));
        assert_eq!(l.groups, 1);
        assert_eq!(l.per_group, (4884u64 * 10).div_ceil(100));
    }

    #[test]
    fn block_size_follows_the_size() {
        assert_eq!(choose_block_size(&[300 << 20], pct(10)), 2048);
        // A small file: smaller blocks keep the rounding of the recovery
        // block count from dominating.
        assert!(choose_block_size(&[40_000], pct(10)) < 2048);
    }
}
