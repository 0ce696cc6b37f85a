//! Scheduler statistics for the choice of decode pool (`Adapt` in [`super::session`]): how long
//! a pool's worker threads waited for a CPU while runnable, and how idle the CPUs this process
//! may run on were.
//!
//! Linux only: `/proc/thread-self/schedstat` (second field: nanoseconds the thread spent
//! runnable in a run queue while another task held its CPU), `/proc/stat` (per-CPU idle
//! time in clock ticks) and `/proc/self/status` (`Cpus_allowed_list`). Elsewhere, or when a
//! file is missing, unreadable or not in the expected shape, readings are `None` and the
//! caller decides by timing alone. Reading never allocates (buffers are sized on creation)
//! and never panics on what the files contain.

use std::sync::{Arc, Mutex, PoisonError};

/// Run-queue wait of the worker threads of one pool.
///
/// Each worker registers itself from the pool's start handler ([`PoolWaits::register`]);
/// [`PoolWaits::total`] sums their waits. A worker's statistics file is opened once and read
/// with `pread` (a few microseconds per worker).
#[derive(Clone, Debug, Default)]
pub(crate) struct PoolWaits {
    /// Statistics files of the registered threads.
    threads: Arc<Mutex<Vec<imp::ThreadStat>>>,
}

impl PoolWaits {
    /// An empty set with room for `n` threads.
    pub(crate) fn new(n: usize) -> PoolWaits {
        PoolWaits {
            threads: Arc::new(Mutex::new(Vec::with_capacity(n))),
        }
    }

    /// Registers the calling thread (call it from each worker, e.g. a pool's start handler).
    /// Does nothing where the statistics cannot be read.
    pub(crate) fn register(&self) {
        if let Some(t) = imp::ThreadStat::current() {
            self.threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(t);
        }
    }

    /// Total nanoseconds the registered threads have waited for a CPU, and how many threads
    /// that covers; `None` if a reading failed.
    pub(crate) fn total(&self) -> Option<(u64, usize)> {
        let threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        let mut sum = 0u64;
        for t in threads.iter() {
            sum = sum.saturating_add(t.wait_ns()?);
        }
        Some((sum, threads.len()))
    }
}

/// Idle and total time of the CPUs this process may run on, since boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    /// Idle time (idle + iowait), clock ticks summed over the CPUs counted.
    pub(crate) idle: u64,
    /// All time (idle or busy, guest time excluded as it is part of user time), clock ticks.
    pub(crate) total: u64,
    /// CPUs counted.
    pub(crate) cpus: u32,
}

impl CpuTimes {
    /// Idle CPUs on average between `earlier` and `self` (e.g. 1.0: one CPU's worth of idle
    /// time); `None` if the sets of CPUs differ or no time passed.
    pub(crate) fn idle_cpus_since(&self, earlier: &CpuTimes) -> Option<f64> {
        if self.cpus != earlier.cpus || self.cpus == 0 {
            return None;
        }
        let idle = self.idle.checked_sub(earlier.idle)?;
        let total = self.total.checked_sub(earlier.total)?;
        if total == 0 || idle > total {
            return None;
        }
        Some(idle as f64 / total as f64 * f64::from(self.cpus))
    }
}

/// Reads [`CpuTimes`] from `/proc/stat`, counting only the CPUs in this process's affinity
/// mask as it was at creation.
#[derive(Debug)]
pub(crate) struct CpuIdle {
    inner: imp::CpuIdle,
}

impl CpuIdle {
    /// `None` where the statistics cannot be read.
    pub(crate) fn new() -> Option<CpuIdle> {
        let mut inner = imp::CpuIdle::new()?;
        inner.sample()?;
        Some(CpuIdle { inner })
    }

    /// The current totals; `None` if the reading failed.
    pub(crate) fn sample(&mut self) -> Option<CpuTimes> {
        self.inner.sample()
    }
}

/// Parses a CPU list such as `0-3,8,10-11` into inclusive ranges (`None` if malformed or
/// empty; at most `max` ranges).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_cpu_list(s: &str, max: usize) -> Option<Vec<(u32, u32)>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for item in s.split(',') {
        if out.len() >= max {
            return None;
        }
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let a = item.trim().parse().ok()?;
                (a, a)
            }
        };
        if a > b {
            return None;
        }
        out.push((a, b));
    }
    Some(out)
}

/// Sums the `cpuN` lines of `/proc/stat` text for CPUs in `allowed` (all if `None`); only
/// complete lines (ending in a newline) count. `None` if a counted line is malformed or no
/// CPU was counted.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_proc_stat(text: &[u8], allowed: Option<&[(u32, u32)]>) -> Option<CpuTimes> {
    let mut t = CpuTimes {
        idle: 0,
        total: 0,
        cpus: 0,
    };
    let mut rest = text;
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..nl];
        rest = &rest[nl + 1..];
        let Some(after) = line.strip_prefix(b"cpu") else {
            // The CPU lines come first; anything else ends them.
            if t.cpus > 0 {
                break;
            }
            continue;
        };
        // `cpu` alone (followed by spaces) is the sum over all CPUs: skipped.
        if !after.first().is_some_and(u8::is_ascii_digit) {
            continue;
        }
        let line = std::str::from_utf8(after).ok()?;
        let mut fields = line.split_ascii_whitespace();
        let id = fields.next()?.parse::<u32>().ok()?;
        if let Some(ranges) = allowed
            && !ranges.iter().any(|&(a, b)| (a..=b).contains(&id))
        {
            continue;
        }
        // user nice system idle iowait irq softirq steal [guest guest_nice]
        let mut v = [0u64; 8];
        let mut n = 0;
        for (slot, f) in v.iter_mut().zip(fields) {
            *slot = f.parse().ok()?;
            n += 1;
        }
        if n < 4 {
            return None;
        }
        let idle = v[3].saturating_add(v[4]);
        let total = v.iter().fold(0u64, |s, &x| s.saturating_add(x));
        t.idle = t.idle.saturating_add(idle);
        t.total = t.total.saturating_add(total);
        t.cpus += 1;
    }
    (t.cpus > 0).then_some(t)
}

#[cfg(target_os = "linux")]
mod imp {
    use std::fs::File;
    use std::io::Read;
    use std::os::unix::fs::FileExt;

    use super::{CpuTimes, parse_cpu_list, parse_proc_stat};

    /// One thread's `schedstat` file.
    #[derive(Debug)]
    pub(super) struct ThreadStat(File);

    impl ThreadStat {
        /// The calling thread's statistics (the file stays bound to this thread).
        pub(super) fn current() -> Option<ThreadStat> {
            let f = File::open("/proc/thread-self/schedstat").ok()?;
            let t = ThreadStat(f);
            t.wait_ns()?;
            Some(t)
        }

        /// Nanoseconds spent waiting in a run queue (the second of three numbers).
        pub(super) fn wait_ns(&self) -> Option<u64> {
            let mut buf = [0u8; 96];
            let n = self.0.read_at(&mut buf, 0).ok()?;
            let s = std::str::from_utf8(&buf[..n]).ok()?;
            let mut f = s.split_ascii_whitespace();
            f.next()?.parse::<u64>().ok()?;
            f.next()?.parse().ok()
        }
    }

    /// `/proc/stat`, kept open, with a buffer for its CPU lines.
    #[derive(Debug)]
    pub(super) struct CpuIdle {
        file: File,
        /// Allowed CPUs (inclusive ranges); `None`: count every CPU listed.
        allowed: Option<Vec<(u32, u32)>>,
        buf: Vec<u8>,
    }

    impl CpuIdle {
        pub(super) fn new() -> Option<CpuIdle> {
            let file = File::open("/proc/stat").ok()?;
            let allowed = allowed_cpus();
            // Room for the CPU lines (up to ~200 bytes each) of every allowed CPU.
            let cpus = match &allowed {
                Some(r) => r
                    .iter()
                    .map(|&(a, b)| (b - a) as usize + 1)
                    .fold(0usize, usize::saturating_add),
                None => 256,
            };
            let len = cpus
                .saturating_add(2)
                .saturating_mul(200)
                .clamp(4096, 1 << 20);
            Some(CpuIdle {
                file,
                allowed,
                buf: vec![0; len],
            })
        }

        pub(super) fn sample(&mut self) -> Option<CpuTimes> {
            let mut n = 0;
            while n < self.buf.len() {
                match self.file.read_at(&mut self.buf[n..], n as u64) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(_) => return None,
                }
                // The CPU lines come first; once something else has started, stop.
                if self.buf[..n].windows(5).any(|w| w == b"\nintr") {
                    break;
                }
            }
            parse_proc_stat(&self.buf[..n], self.allowed.as_deref())
        }
    }

    /// This process's `Cpus_allowed_list` (`None` if unreadable).
    fn allowed_cpus() -> Option<Vec<(u32, u32)>> {
        let mut s = String::new();
        File::open("/proc/self/status")
            .ok()?
            .take(1 << 20)
            .read_to_string(&mut s)
            .ok()?;
        let line = s
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
        parse_cpu_list(line, 4096)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::CpuTimes;

    /// Not available on this system.
    #[derive(Debug)]
    pub(super) struct ThreadStat;

    impl ThreadStat {
        pub(super) fn current() -> Option<ThreadStat> {
            None
        }

        pub(super) fn wait_ns(&self) -> Option<u64> {
            None
        }
    }

    /// Not available on this system.
    #[derive(Debug)]
    pub(super) struct CpuIdle;

    impl CpuIdle {
        pub(super) fn new() -> Option<CpuIdle> {
            None
        }

        pub(super) fn sample(&mut self) -> Option<CpuTimes> {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_reject_garbage() {
        assert_eq!(parse_cpu_list("0-1\n", 8), Some(vec![(0, 1)]));
        assert_eq!(
            parse_cpu_list("0-3,8,10-11", 8),
            Some(vec![(0, 3), (8, 8), (10, 11)])
        );
        assert_eq!(parse_cpu_list("", 8), None);
        assert_eq!(parse_cpu_list("3-1", 8), None);
        assert_eq!(parse_cpu_list("0-x", 8), None);
        assert_eq!(parse_cpu_list("1,2,3", 2), None);
        assert_eq!(parse_cpu_list("99999999999", 8), None);
    }

    #[test]
    fn proc_stat_sums_allowed_cpus_only() {
        let text = b"cpu  10 0 10 100 5 0 0 0 0 0\n\
                     cpu0 1 2 3 40 1 0 0 0 0 0\n\
                     cpu1 5 0 5 50 2 1 1 1 3 0\n\
                     cpu2 100 0 0 0 0 0 0 0 0 0\n\
                     intr 123 4 5\n\
                     cpu3 this is not a CPU line\n";
        let all = parse_proc_stat(text, None).unwrap();
        assert_eq!(all.cpus, 3);
        assert_eq!(all.idle, 41 + 52);
        assert_eq!(all.total, 47 + 65 + 100);
        let some = parse_proc_stat(text, Some(&[(1, 2)])).unwrap();
        assert_eq!((some.idle, some.total, some.cpus), (52, 165, 2));
        // A truncated last line does not count; malformed numbers reject the reading.
        assert_eq!(
            parse_proc_stat(b"cpu0 1 2 3 4\ncpu1 5 6", None)
                .unwrap()
                .cpus,
            1
        );
        assert_eq!(parse_proc_stat(b"cpu0 1 2 x 4\n", None), None);
        assert_eq!(parse_proc_stat(b"cpu0 1 2\n", None), None);
        assert_eq!(parse_proc_stat(b"garbage\n\0\xff\n", None), None);
        assert_eq!(parse_proc_stat(b"", None), None);
    }

    #[test]
    fn idle_cpus_between_two_readings() {
        let a = CpuTimes {
            idle: 100,
            total: 200,
            cpus: 2,
        };
        let b = CpuTimes {
            idle: 150,
            total: 300,
            cpus: 2,
        };
        assert_eq!(b.idle_cpus_since(&a), Some(1.0));
        assert_eq!(a.idle_cpus_since(&a), None);
        assert_eq!(a.idle_cpus_since(&b), None);
        assert_eq!(b.idle_cpus_since(&CpuTimes { cpus: 3, ..a }), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_system_readings_work() {
        // Where /proc has these files (Linux CI), the readings work.
        let waits = PoolWaits::new(1);
        let w = waits.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .start_handler(move |_| w.register())
            .build()
            .unwrap();
        // The worker registered before it ran this.
        pool.install(|| {});
        if std::path::Path::new("/proc/thread-self/schedstat").exists() {
            assert_eq!(waits.total().unwrap().1, 1);
        }
        if std::path::Path::new("/proc/stat").exists() {
            let mut idle = CpuIdle::new().unwrap();
            let a = idle.sample().unwrap();
            assert!(a.cpus >= 1 && a.idle <= a.total);
        }
    }
}
