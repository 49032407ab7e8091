//! The order of the entries inside a pack (`docs/format/xtar.md`, A2):
//! smallest first, as the pack cut takes them, but placed against 2 KiB
//! sectors so that as few files as the bytes allow have their data in one
//! sector more than their length needs, and no local header is split by a
//! sector boundary past its signature.
//!
//! Scattered damage (bad sectors of a disc) costs a file when it hits a
//! sector holding its data. A 300-byte file packed back to back straddles
//! a sector boundary about one time in seven, and then two bad sectors
//! instead of one can cost it. Choosing each next entry among those that
//! follow in length order, so that a boundary falls between entries or
//! where a file's data starts, takes many of those straddles away, at no
//! cost in bytes (stdlib: 14,949 boundaries inside data that the sizes did
//! not need, 11,786 placed).
//!
//! A boundary is never put on purpose inside a local header past its
//! 4-byte signature: a bad sector after it would leave a header whose
//! signature reads and whose fields, name or extra field are noise, and
//! Info-ZIP's `zip -FF` gives up its whole scan at such a header (or dies
//! of a heap assertion), and bsdtar's stream read stops there. A first
//! form of this placement, which put boundaries in headers on purpose,
//! cost the stock recipe most of an archive; strict length order splits
//! about one header in twenty at random (`docs/architecture.md`, "Placing
//! entries against sectors").

/// The sector the order aims at: a CD's, a DVD's or a BD's (2 KiB), and
/// a whole number of the 512-byte sectors of disks.
pub use crate::format::SECTOR;
/// Candidates for the next entry, at most: the first ones left in length
/// order.
pub const WINDOW: usize = 256;
/// Bytes of a local header a sector boundary may fall after without
/// making it a header that reads as one (its signature).
pub const SIGNATURE: u64 = 4;
/// How much longer than the shortest entry left a candidate may be:
/// entries come out of length order by no more than this, which keeps the
/// tail-cut promise (A6) and lets salvage still check the order (A6).
pub use crate::format::PLACE_SLACK as SLACK;

/// One entry of a pack, in length order.
#[derive(Clone, Copy, Debug)]
pub struct Item {
    /// The length the pack is sorted by (A2).
    pub key: u64,
    /// Bytes of its data (after the local header).
    pub data: u64,
}

/// Whether a local header of `len` bytes written at `at` would have a
/// sector boundary past its signature: damage of the sector after it
/// would leave a header whose signature reads and whose fields, name or
/// extra field are noise.
pub fn splits_header(at: u64, len: u64) -> bool {
    let d = (SECTOR - at % SECTOR) % SECTOR;
    SIGNATURE <= d && d < len
}

/// Sectors the data `[start, start + len)` touches beyond the fewest its
/// length needs: 0 or 1.
pub fn extra_sectors(start: u64, len: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    let touched = (start + len - 1) / SECTOR - start / SECTOR + 1;
    touched - len.div_ceil(SECTOR)
}

/// The order in which to write `items` (given in length order, as the
/// pack cut took them), the first local header at archive offset `pos`.
/// `header(slot, i)` is the length of item `i`'s local header when it is
/// written `slot`-th (an encrypted pack names entries by their place).
/// Returns item indices, a permutation of `0..items.len()`.
///
/// At each slot, the candidates are the first [`WINDOW`] items left whose
/// key is at most the first one's plus [`SLACK`]. Each is scored by
/// whether its own header would be split (`split` 2, [`splits_header`])
/// and whether a header as short as the shortest of the next slot would
/// be split where it ends (`split` + 1), the
/// sectors its data would touch beyond the fewest (`extra`), whether no
/// other candidate could then be written in the next slot without an extra
/// sector (`next`, 0 or 1; 0 when it is the only candidate), and the bytes
/// from its end to the next sector boundary (`gap`, counted when `extra`
/// is 0); the smallest `(split, extra + next, extra, gap, rank)` is written,
/// `rank` being its place among the items left.
pub fn order(pos: u64, items: &[Item], header: impl Fn(usize, usize) -> u64) -> Vec<usize> {
    let mut left: Vec<usize> = (0..items.len()).collect();
    let mut out = Vec::with_capacity(items.len());
    let mut pos = pos;
    // (split, extra, gap, rank, end) of each candidate; `split` is 2 when
    // its own header would be split, plus 1 when the next one would be,
    // whichever candidate came next.
    let mut scored: Vec<(u8, u64, u64, usize, u64)> = Vec::with_capacity(WINDOW);
    let mut fits = vec![0i32; SECTOR as usize + 1];
    while let Some(&first) = left.first() {
        let slot = out.len();
        let limit = items[first].key.saturating_add(SLACK);
        let cands = left.iter().take(WINDOW).take_while(|&&i| items[i].key <= limit).count();
        let shortest_next = left[..cands].iter().map(|&j| header(slot + 1, j)).min().unwrap_or(0);
        scored.clear();
        for (rank, &i) in left[..cands].iter().enumerate() {
            let h = header(slot, i);
            let start = pos + h;
            let end = start + items[i].data;
            let extra = extra_sectors(start, items[i].data);
            let gap = if extra == 0 { (SECTOR - end % SECTOR) % SECTOR } else { 0 };
            let split = 2 * u8::from(splits_header(pos, h)) + u8::from(splits_header(end, shortest_next));
            scored.push((split, extra, gap, rank, end));
        }
        scored.sort_unstable();
        // For each offset in a sector, how many candidates written next,
        // after an entry ending there, would touch no extra sector: the
        // data of `j` at `x` touches none when `x % SECTOR + t <= SECTOR`,
        // `t` being the bytes of its last sector, so the offsets that suit
        // it are a (cyclic) run of `SECTOR - t + 1` from `-h % SECTOR`.
        let suits = |j: usize| {
            let t = if items[j].data == 0 { 1 } else { (items[j].data - 1) % SECTOR + 1 };
            ((SECTOR - header(slot + 1, j) % SECTOR) % SECTOR, SECTOR - t + 1)
        };
        let runs: Vec<(u64, u64)> = left[..cands].iter().map(|&j| suits(j)).collect();
        fits.fill(0);
        for &(lo, len) in &runs {
            let hi = lo + len;
            fits[lo as usize] += 1;
            if hi <= SECTOR {
                fits[hi as usize] -= 1;
            } else {
                fits[SECTOR as usize] -= 1;
                fits[0] += 1;
                fits[(hi - SECTOR) as usize] -= 1;
            }
        }
        for u in 1..SECTOR as usize {
            fits[u] += fits[u - 1];
        }
        // Whether another candidate could be written next with no extra
        // sector, after the one of `rank` ending at `end`.
        let next_fits = |rank: usize, end: u64| {
            let u = end % SECTOR;
            let (lo, len) = runs[rank];
            let own = i32::from((u + SECTOR - lo) % SECTOR < len);
            cands == 1 || fits[u as usize] - own > 0
        };
        // The smallest (split, extra + next, extra, gap, rank), without
        // scoring `next` for every candidate: among those of the least
        // `split`, those with no extra sector (in the order of their gap,
        // then rank), the first whose successor can fit; else the first of
        // them; else the first by rank whose successor can fit, or the
        // first.
        let least = scored.first().map_or(0, |c| c.0);
        let among = &scored[..scored.iter().take_while(|c| c.0 == least).count()];
        let no_extra = among.iter().take_while(|c| c.1 == 0);
        let pick = no_extra
            .clone()
            .find(|c| next_fits(c.3, c.4))
            .or_else(|| no_extra.clone().next())
            .or_else(|| among.iter().find(|c| next_fits(c.3, c.4)))
            .or_else(|| among.first());
        let Some(&(_, _, _, rank, end)) = pick else { break };
        out.push(left.remove(rank));
        pos = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When `items` are written in `order` from `pos`, with local headers
    /// of `header(slot, i)` bytes: the boundaries inside data the sizes did
    /// not need, and the headers split past their signature.
    fn layout(pos: u64, items: &[Item], order: &[usize], header: impl Fn(usize, usize) -> u64) -> (u64, u64) {
        let (mut pos, mut straddles, mut splits) = (pos, 0, 0);
        for (slot, &i) in order.iter().enumerate() {
            let h = header(slot, i);
            straddles += extra_sectors(pos + h, items[i].data);
            splits += u64::from(splits_header(pos, h));
            pos += h + items[i].data;
        }
        (straddles, splits)
    }

    fn sample(n: usize, seed: u64) -> Vec<Item> {
        // Sizes spread like a source tree's small files: 40 to 3,000 bytes.
        let mut x = seed;
        let mut v: Vec<Item> = (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let data = 40 + (x >> 33) % 2960;
                Item { key: data + 60, data }
            })
            .collect();
        v.sort_by_key(|i| i.key);
        v
    }

    #[test]
    fn extra_sectors_counts_boundaries_the_length_does_not_need() {
        assert_eq!(extra_sectors(0, 2048), 0);
        assert_eq!(extra_sectors(1, 2048), 1);
        assert_eq!(extra_sectors(2000, 48), 0);
        assert_eq!(extra_sectors(2000, 49), 1);
        assert_eq!(extra_sectors(2047, 4096), 1);
        assert_eq!(extra_sectors(2047, 4097), 0);
        assert_eq!(extra_sectors(5, 0), 0);
    }

    #[test]
    fn the_order_is_a_permutation_that_keeps_within_the_slack() {
        let items = sample(1000, 7);
        let order = order(512, &items, |_, _| 60);
        let mut seen = order.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..items.len()).collect::<Vec<_>>());
        // Every entry is at most SLACK longer than any written after it.
        for (a, &i) in order.iter().enumerate() {
            for &j in &order[a + 1..] {
                assert!(items[i].key <= items[j].key + SLACK, "{i} before {j}");
            }
        }
    }

    #[test]
    fn placing_leaves_far_fewer_boundaries_inside_data_than_length_order() {
        for seed in 1..5 {
            let items = sample(1000, seed);
            let sorted: Vec<usize> = (0..items.len()).collect();
            let placed = order(512, &items, |_, _| 60);
            let h = |_, _| 60;
            let (before, after) = (layout(512, &items, &sorted, h).0, layout(512, &items, &placed, h).0);
            assert!(after * 2 < before, "seed {seed}: {before} boundaries inside data in length order, {after} placed");
        }
    }

    #[test]
    fn the_header_of_each_slot_is_the_one_asked_for() {
        // Headers that grow with the slot (an encrypted pack's numbered
        // names): the order must place against them, not a fixed length.
        let items = sample(300, 3);
        let header = |slot: usize, _| 30 + (slot as u64 % 7) * 40;
        let n = layout(0, &items, &order(0, &items, header), header).0;
        let m = layout(0, &items, &order(0, &items, |_, _| 30), header).0;
        assert!(n < m, "placed against the real headers: {n}, against others: {m}");
    }

    #[test]
    fn a_header_is_split_by_a_boundary_past_its_signature() {
        assert!(!splits_header(0, 60) && !splits_header(2048, 60) && !splits_header(2046, 60));
        assert!(!splits_header(2045, 60), "a boundary inside the signature leaves none that reads");
        assert!(splits_header(2044, 60) && splits_header(1989, 60) && splits_header(4096 - 4, 60));
        assert!(!splits_header(1988, 60), "the header ends on the boundary");
        assert!(!splits_header(1000, 60));
    }

    #[test]
    fn no_boundary_falls_inside_a_local_header_past_its_signature() {
        // Length order splits some headers (about one in 40); the placed
        // order hardly any (0 to 2 of 2,000 here), with
        // names long enough to take the boundaries (60-byte headers) and
        // short (an encrypted pack's 36 to 40).
        for (seed, h) in [(1u64, 60u64), (2, 60), (3, 36), (4, 40)] {
            let items = sample(2000, seed);
            let sorted: Vec<usize> = (0..items.len()).collect();
            let hdr = |_, _| h;
            let before = layout(512, &items, &sorted, hdr).1;
            let placed = order(512, &items, hdr);
            assert!(before > 0, "seed {seed}: the sample should split a header in length order");
            let after = layout(512, &items, &placed, hdr).1;
            assert!(
                after * 10 < before,
                "seed {seed}, headers of {h} bytes: {before} split in length order, {after} placed"
            );
        }
    }
}
