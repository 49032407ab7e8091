//! Times clustering of one million records (no file system involved).

use std::time::Instant;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    // Deterministic pseudo-random times over a year, in bursts.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut r = activity::Records::default();
    let mut path = Vec::new();
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let session = (x % 2000) as i64 * 4 * 3_600_000_000_000;
        let within = ((x >> 20) % 1_800_000_000_000) as i64;
        path.clear();
        path.extend_from_slice(format!("dir{:03}/sub{:03}/file{i}", i % 200, (i / 200) % 200).as_bytes());
        r.push(1_700_000_000_000_000_000 + session + within, x % 100_000, &path);
    }
    let mut times = Vec::new();
    for _ in 0..5 {
        let mut c = r.clone();
        let t = Instant::now();
        let groups = c.cluster(3_600_000_000_000);
        let tops: usize = groups.iter().map(|g| g.top_dirs(&c, 3).len()).sum();
        times.push(t.elapsed().as_secs_f64());
        std::hint::black_box((groups.len(), tops));
    }
    times.sort_by(f64::total_cmp);
    println!(
        "clustered {n} records (with top directories of every group): median {:.3} s, min {:.3} s; {} bytes per record",
        times[2],
        times[0],
        r.memory() / n
    );
}
