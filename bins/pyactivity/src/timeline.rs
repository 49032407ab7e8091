//! The timeline: files per hour or per day over the scanned period, as one
//! line of block characters in the terminal, or as an SVG bar chart.

use activity::{Group, Records};

use crate::report::local;

const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * HOUR;

/// Counts of files per bin.
pub struct Timeline {
    start: i64,
    bin: i64,
    unit: &'static str,
    counts: Vec<u64>,
}

impl Timeline {
    /// Bins the files of `groups`: by hour when the period is at most three
    /// days, else by day; neighbouring bins are merged so that there are at
    /// most `max_bins`.
    pub fn of(r: &Records, groups: &[Group], max_bins: usize) -> Timeline {
        let min = groups.iter().map(|g| g.start).min().unwrap_or(0);
        let max = groups.iter().map(|g| g.end).max().unwrap_or(0);
        let width = i128::from(max) - i128::from(min);
        let base = if width <= i128::from(3 * DAY) { HOUR } else { DAY };
        let start = min.div_euclid(base).saturating_mul(base);
        let bins = ((i128::from(max) - i128::from(start)) / i128::from(base) + 1).max(1);
        let merge = (bins + max_bins as i128 - 1) / max_bins as i128;
        let bin = i64::try_from(merge * i128::from(base)).unwrap_or(i64::MAX);
        let n = usize::try_from((bins + merge - 1) / merge).unwrap_or(max_bins).min(max_bins);
        let mut counts = vec![0u64; n.max(1)];
        for g in groups {
            for i in g.members.clone() {
                let t = r.get(i).0;
                let k = ((i128::from(t) - i128::from(start)) / i128::from(bin)) as usize;
                let last = counts.len() - 1;
                counts[k.min(last)] += 1;
            }
        }
        let unit = match (base == HOUR, merge) {
            (true, 1) => "1 hour",
            (true, _) => "hours",
            (false, 1) => "1 day",
            (false, _) => "days",
        };
        Timeline { start, bin, unit, counts }
    }

    fn level(&self, c: u64, levels: u64) -> u64 {
        let max = self.counts.iter().copied().max().unwrap_or(0);
        if c == 0 || max == 0 {
            return 0;
        }
        // Log scale: activity is bursty, and a linear scale hides the small sessions.
        let l = ((1.0 + c as f64).ln() / (1.0 + max as f64).ln() * levels as f64).ceil() as u64;
        l.clamp(1, levels)
    }

    fn column(&self) -> String {
        let per = self.bin / if self.unit.contains("hour") { HOUR } else { DAY };
        let word = if self.unit.contains("hour") { "hour" } else { "day" };
        if per == 1 {
            format!("1 {word}")
        } else {
            format!("{per} {word}s")
        }
    }

    /// One line of bars with the dates under it.
    pub fn terminal(&self) -> String {
        const BARS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
        let bars: String = self.counts.iter().map(|&c| BARS[self.level(c, 8) as usize]).collect();
        let max = self.counts.iter().copied().max().unwrap_or(0);
        let end = self.start.saturating_add(self.bin.saturating_mul(self.counts.len() as i64));
        format!(
            "files per {} (log scale, busiest column {max} files)\n|{bars}|\n {} .. {}\n",
            self.column(),
            local(self.start, "%Y-%m-%d %H:%M"),
            local(end, "%Y-%m-%d %H:%M"),
        )
    }

    /// The same as an SVG bar chart.
    pub fn svg(&self) -> String {
        let (w, h, pad) = (960.0f64, 240.0f64, 40.0f64);
        let n = self.counts.len().max(1) as f64;
        let bw = (w - 2.0 * pad) / n;
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"{pad}\" y=\"20\">files per {} (log scale)</text>\n",
            self.column()
        );
        for (i, &c) in self.counts.iter().enumerate() {
            let l = self.level(c, 100) as f64 / 100.0;
            if l == 0.0 {
                continue;
            }
            let bh = l * (h - 2.0 * pad - 10.0);
            let x = pad + i as f64 * bw;
            let t = self.start.saturating_add(self.bin.saturating_mul(i as i64));
            s.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#3b7dd8\"><title>{} — {c} files</title></rect>\n",
                h - pad - bh,
                (bw - 1.0).max(1.0),
                local(t, "%Y-%m-%d %H:%M")
            ));
        }
        let end = self.start.saturating_add(self.bin.saturating_mul(self.counts.len() as i64));
        s.push_str(&format!(
            "<line x1=\"{pad}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"black\"/>\n\
             <text x=\"{pad}\" y=\"{ty}\">{}</text>\n<text x=\"{x2}\" y=\"{ty}\" text-anchor=\"end\">{}</text>\n</svg>\n",
            local(self.start, "%Y-%m-%d %H:%M"),
            local(end, "%Y-%m-%d %H:%M"),
            y = h - pad,
            x2 = w - pad,
            ty = h - pad + 16.0,
        ));
        s
    }
}
