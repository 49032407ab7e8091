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

    /// The same as an SVG bar chart, with a date axis, a count axis (log
    /// scale) and each group marked and numbered.
    pub fn svg(&self, r: &Records, groups: &[Group]) -> String {
        let (w, h) = (960.0f64, 300.0f64);
        let (l, rt, top, bottom) = (64.0f64, 16.0f64, 40.0f64, 48.0f64);
        let (pw, ph) = (w - l - rt, h - top - bottom);
        let n = self.counts.len().max(1) as f64;
        let bw = pw / n;
        let end = self.start.saturating_add(self.bin.saturating_mul(self.counts.len() as i64));
        let span = (i128::from(end) - i128::from(self.start)).max(1) as f64;
        let x_of = |t: i64| l + ((i128::from(t) - i128::from(self.start)) as f64 / span * pw).clamp(0.0, pw);
        let max = self.counts.iter().copied().max().unwrap_or(0);
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"{l}\" y=\"16\" font-size=\"13\">files per {} (log scale); shaded: groups of activity</text>\n",
            self.column()
        );
        // Groups: shaded bands, numbered.
        let mut last_label = f64::MIN;
        let mut sorted: Vec<&Group> = groups.iter().collect();
        sorted.sort_by_key(|g| g.start);
        for g in sorted {
            let (x0, x1) = (x_of(g.start), x_of(g.end));
            let gw = (x1 - x0).max(2.0);
            let dirs: Vec<String> =
                g.top_dirs(r, 3).iter().map(|d| String::from_utf8_lossy(&d.dir).into_owned()).collect();
            s.push_str(&format!(
                "<rect class=\"group\" x=\"{x0:.1}\" y=\"{top}\" width=\"{gw:.1}\" height=\"{ph}\" fill=\"#ffaa00\" fill-opacity=\"0.22\"><title>group #{} — {} files, {} .. {}: {}</title></rect>\n",
                g.number,
                g.files,
                local(g.start, "%Y-%m-%d %H:%M"),
                local(g.end, "%Y-%m-%d %H:%M"),
                xml(&dirs.join(", "))
            ));
            if x0 > last_label {
                s.push_str(&format!(
                    "<text x=\"{x0:.1}\" y=\"{:.1}\" fill=\"#7a4a00\">#{}</text>\n",
                    top - 4.0,
                    g.number
                ));
                last_label = x0 + 28.0;
            }
        }
        let y_of = |c: u64| top + ph - self.level(c, 1000) as f64 / 1000.0 * ph;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let y = y_of(c);
            let x = l + i as f64 * bw;
            let t = self.start.saturating_add(self.bin.saturating_mul(i as i64));
            s.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#3b7dd8\"><title>{} — {c} files</title></rect>\n",
                (bw - 1.0).max(1.0),
                top + ph - y,
                local(t, "%Y-%m-%d %H:%M")
            ));
        }
        // Axes: counts (powers of ten up to the busiest bin), dates.
        s.push_str(&format!(
            "<path d=\"M{l} {top} V{:.1} H{:.1}\" stroke=\"black\" fill=\"none\"/>\n",
            top + ph,
            l + pw
        ));
        let mut tick = 1u64;
        let mut ys = vec![max];
        while tick < max {
            ys.push(tick);
            tick = tick.saturating_mul(10);
        }
        for c in ys {
            let y = y_of(c);
            s.push_str(&format!(
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{l}\" y2=\"{y:.1}\" stroke=\"black\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{c}</text>\n",
                l - 4.0,
                l - 6.0,
                y + 4.0
            ));
        }
        let ticks = 6;
        for k in 0..=ticks {
            let t = self.start.saturating_add(((i128::from(end) - i128::from(self.start)) * k / ticks) as i64);
            let x = x_of(t);
            let anchor = match k {
                0 => "start",
                k if k == ticks => "end",
                _ => "middle",
            };
            s.push_str(&format!(
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"black\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>\n",
                top + ph,
                top + ph + 4.0,
                top + ph + 18.0,
                local(t, "%Y-%m-%d %H:%M")
            ));
        }
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">time ({})</text>\n</svg>\n",
            l + pw / 2.0,
            h - 6.0,
            local(self.start, "%Z")
        ));
        s
    }
}

/// Text for XML.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
