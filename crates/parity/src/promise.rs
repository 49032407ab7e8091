//! Redundancy as people think of it: whole volumes (discs) that may be
//! lost, plus a share of scattered damage; and what a set's recovery data
//! can in fact rebuild.

use std::fmt;
use std::str::FromStr;

use crate::layout::Layout;

/// How much recovery data to make: enough to rebuild any `volumes` whole
/// files (volumes, discs) lost, plus `percent` of the data blocks for
/// scattered damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redundancy {
    /// Whole files that may be lost.
    pub volumes: u32,
    /// Percent of the data blocks, for scattered damage.
    pub percent: u32,
}

impl Default for Redundancy {
    fn default() -> Self {
        Redundancy { volumes: 0, percent: 10 }
    }
}

impl FromStr for Redundancy {
    type Err = String;

    /// `10` or `10%` (percent), `1vol` (one whole volume), `1vol+5%`.
    fn from_str(s: &str) -> Result<Redundancy, String> {
        let bad = || format!("`{s}` is not a redundancy like 10, 10%, 1vol or 1vol+5%");
        let mut r = Redundancy { volumes: 0, percent: 0 };
        let mut seen = (false, false);
        for part in s.split('+') {
            let part = part.trim();
            if let Some(n) = part.strip_suffix("vol").or_else(|| part.strip_suffix("vols")) {
                if seen.0 {
                    return Err(bad());
                }
                seen.0 = true;
                r.volumes = n.trim().parse().map_err(|_| bad())?;
            } else {
                if seen.1 {
                    return Err(bad());
                }
                seen.1 = true;
                r.percent = part.strip_suffix('%').unwrap_or(part).trim().parse().map_err(|_| bad())?;
            }
        }
        if r.percent > 1000 {
            return Err(format!("redundancy {}% is outside 0..=1000", r.percent));
        }
        if r == (Redundancy { volumes: 0, percent: 0 }) {
            return Err(format!("`{s}` asks for no recovery data"));
        }
        Ok(r)
    }
}

impl fmt::Display for Redundancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.volumes, self.percent) {
            (0, p) => write!(f, "{p}%"),
            (v, 0) => write!(f, "{v}vol"),
            (v, p) => write!(f, "{v}vol+{p}%"),
        }
    }
}

/// What a set's recovery data can rebuild, computed from its layout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Promise {
    /// Any this many of the files (protected files and parity volumes
    /// together) can be lost whole and everything rebuilt.
    pub volumes: u32,
    /// Out of this many files.
    pub of: u32,
    /// Or this percentage of the blocks (sectors), scattered evenly, in
    /// the worst group.
    pub scattered_percent: f64,
}

impl fmt::Display for Promise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = match self.volumes {
            0 => format!("no whole file of {}", self.of),
            n if n >= self.of => format!("all {} files", self.of),
            n => format!("any {n} of {} files", self.of),
        };
        write!(f, "{whole}, or {:.0} % of scattered sectors", self.scattered_percent.floor())
    }
}

/// Blocks `i` in `[start, start + len)` with `i % groups == g`.
fn in_group(start: u64, len: u64, groups: u64, g: u64) -> u64 {
    let below = |x: u64| (x + groups - 1 - g) / groups;
    below(start + len) - below(start)
}

impl Layout {
    /// The blocks each file (protected files, then parity volumes) holds
    /// in group `g`: what losing it costs that group.
    fn costs(&self, g: u64) -> Vec<u64> {
        let data = self.files.iter().map(|f| in_group(f.first, f.size.div_ceil(self.block), self.groups, g));
        let parity = self.parity.iter().map(|p| in_group(p.first, p.count, self.groups, g));
        data.chain(parity).collect()
    }

    /// What this set's recovery data can rebuild: the largest number of
    /// files (data and parity alike) whose loss, whichever they are,
    /// leaves every group with no more missing blocks than intact recovery
    /// blocks; and the share of scattered damage the worst group absorbs.
    pub fn promise(&self) -> Promise {
        let of = (self.files.len() + self.parity.len()) as u32;
        let mut volumes = of;
        let mut scattered = f64::INFINITY;
        for g in 0..self.groups {
            let mut c = self.costs(g);
            c.sort_unstable_by(|a, b| b.cmp(a));
            let mut lost = 0;
            let mut n = 0u32;
            for x in c {
                lost += x;
                if lost > self.per_group {
                    break;
                }
                n += 1;
            }
            volumes = volumes.min(n);
            let total = self.group_len(g) + self.per_group;
            scattered = scattered.min(100.0 * self.per_group as f64 / total.max(1) as f64);
        }
        Promise { volumes, of, scattered_percent: if scattered.is_finite() { scattered } else { 0.0 } }
    }

    /// The recovery blocks per group that rebuild any `volumes` of the
    /// protected files lost whole: the blocks the largest of them hold in
    /// one group.
    pub(crate) fn whole_file_blocks(&self, volumes: u32) -> u64 {
        let mut per_file: Vec<u64> =
            self.files.iter().map(|f| f.size.div_ceil(self.block).div_ceil(self.groups)).collect();
        per_file.sort_unstable_by(|a, b| b.cmp(a));
        per_file.iter().take(volumes as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redundancy_parses_as_people_write_it() {
        let r = |s: &str| s.parse::<Redundancy>();
        assert_eq!(r("10"), Ok(Redundancy { volumes: 0, percent: 10 }));
        assert_eq!(r("10%"), Ok(Redundancy { volumes: 0, percent: 10 }));
        assert_eq!(r("1vol"), Ok(Redundancy { volumes: 1, percent: 0 }));
        assert_eq!(r("2vols"), Ok(Redundancy { volumes: 2, percent: 0 }));
        assert_eq!(r("1vol+5%"), Ok(Redundancy { volumes: 1, percent: 5 }));
        assert_eq!(r("5%+1vol"), Ok(Redundancy { volumes: 1, percent: 5 }));
        for bad in ["", "x", "1vol+2vol", "0", "0vol", "2000", "1 disc", "5%+5%"] {
            assert!(r(bad).is_err(), "{bad}");
        }
        assert_eq!(Redundancy { volumes: 1, percent: 5 }.to_string(), "1vol+5%");
    }

    #[test]
    fn blocks_are_counted_per_group() {
        // Blocks 3..10 in 4 groups: 3,7 → group 3; 4,8 → 0; 5,9 → 1; 6 → 2.
        assert_eq!((0..4).map(|g| in_group(3, 7, 4, g)).collect::<Vec<_>>(), vec![2, 2, 1, 2]);
        assert_eq!(in_group(0, 0, 4, 0), 0);
        assert_eq!((0..3).map(|g| in_group(0, 9, 3, g)).sum::<u64>(), 9);
    }
}
