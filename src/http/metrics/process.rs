//! The standard `process_*` metrics every exporter has, read from `/proc/self` at scrape time as
//! the Prometheus Go client does (the same names, units and sources; CPU ticks at the kernel's
//! fixed USER_HZ of 100). A file that cannot be read leaves its metrics out rather than failing
//! the scrape.

use std::fs;

use super::text::{Format, Kind, Number, family, sample};

/// The kernel reports CPU times and the start time in ticks of USER_HZ, which is 100 on every
/// architecture Linux supports for user space (prometheus/procfs hard-codes the same).
const USER_HZ: f64 = 100.0;

/// What `/proc/self` says about this process.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Process {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub virtual_max_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
    pub threads: Option<u64>,
}

impl Process {
    pub fn read() -> Process {
        let mut process = Process::default();
        if let Ok(stat) = fs::read_to_string("/proc/self/stat") {
            process.read_stat(&stat, boot_time());
        }
        if let Ok(limits) = fs::read_to_string("/proc/self/limits") {
            process.max_fds = limit(&limits, "Max open files");
            process.virtual_max_bytes = limit(&limits, "Max address space");
        }
        process.open_fds = fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64);
        process
    }

    /// Fields of `/proc/self/stat` (see proc(5)); the command name in parentheses may hold spaces,
    /// so the fields are counted from its closing parenthesis.
    fn read_stat(&mut self, stat: &str, boot_time: Option<u64>) {
        let Some((_, rest)) = stat.rsplit_once(')') else { return };
        // Field 3 (state) is the first after the name.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        if let (Some(user), Some(system)) = (field(14), field(15)) {
            self.cpu_seconds = Some((user + system) as f64 / USER_HZ);
        }
        self.threads = field(20);
        if let (Some(boot), Some(start)) = (boot_time, field(22)) {
            self.start_time_seconds = Some(boot as f64 + start as f64 / USER_HZ);
        }
        self.virtual_bytes = field(23);
        self.resident_bytes = field(24).map(|pages| pages * page_size());
    }

    /// The `process_*` families.
    pub fn write(&self, out: &mut String, format: Format) {
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                self.resident_bytes.map(Number::Count),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                self.virtual_bytes.map(Number::Count),
            ),
            (
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes",
                self.virtual_max_bytes.map(Number::Count),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                self.open_fds.map(Number::Count),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                self.max_fds.map(Number::Count),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                self.start_time_seconds.map(Number::Float),
            ),
            (
                "process_threads",
                "Number of OS threads in the process",
                self.threads.map(Number::Count),
            ),
        ];
        if let Some(cpu) = self.cpu_seconds {
            let name = "process_cpu_seconds";
            family(
                out,
                format,
                name,
                "Total user and system CPU time spent in seconds",
                Kind::Counter,
            );
            sample(out, "process_cpu_seconds_total", &[], Number::Float(cpu));
        }
        for (name, help, value) in gauges {
            if let Some(value) = value {
                family(out, format, name, help, Kind::Gauge);
                sample(out, name, &[], value);
            }
        }
    }
}

/// The soft limit of a `/proc/self/limits` row; `unlimited` is the largest value, as the Go
/// client reports it.
fn limit(limits: &str, row: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with(row))?;
    match line[row.len()..].split_whitespace().next()? {
        "unlimited" => Some(u64::MAX),
        soft => soft.parse().ok(),
    }
}

/// The boot time in Unix seconds (`btime` of `/proc/stat`).
fn boot_time() -> Option<u64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The memory page size, from the kernel's auxiliary vector as the C library gives it.
fn page_size() -> u64 {
    // `/proc/self/smaps` would say it too; the 4 KiB fallback is the size on nearly every system.
    fs::read("/proc/self/auxv")
        .ok()
        .and_then(|auxv| {
            // Pairs of native-endian words; AT_PAGESZ is 6.
            let word = std::mem::size_of::<usize>();
            auxv.chunks_exact(2 * word).find_map(|pair| {
                let (key, value) = pair.split_at(word);
                let key = usize::from_ne_bytes(key.try_into().ok()?);
                let value = usize::from_ne_bytes(value.try_into().ok()?);
                (key == 6).then_some(value as u64)
            })
        })
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_in_the_name_is_read_by_field() {
        let stat = "4242 (iac watch) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1000 \
                    123456789 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let mut p = Process::default();
        p.read_stat(stat, Some(1_700_000_000));
        assert_eq!(p.cpu_seconds, Some(3.0));
        assert_eq!(p.threads, Some(7));
        assert_eq!(p.start_time_seconds, Some(1_700_000_010.0));
        assert_eq!(p.virtual_bytes, Some(123_456_789));
        assert_eq!(p.resident_bytes, Some(300 * page_size()));
    }

    #[test]
    fn limits_read_the_soft_value() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n\
                      Max address space         unlimited            unlimited            bytes     \n";
        assert_eq!(limit(limits, "Max open files"), Some(1024));
        assert_eq!(limit(limits, "Max address space"), Some(u64::MAX));
        assert_eq!(limit(limits, "Max processes"), None);
    }

    #[test]
    fn the_metrics_agree_with_proc() {
        let p = Process::read();
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let kib = |key: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(key)).unwrap();
            line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
        };
        // Memory moves while the test runs: within a few MiB of what the kernel says now.
        let near = |a: u64, b: u64| a.abs_diff(b) < 16 << 20;
        assert!(near(p.resident_bytes.unwrap(), kib("VmRSS:")), "{p:?}");
        assert!(near(p.virtual_bytes.unwrap(), kib("VmSize:")), "{p:?}");
        assert!(p.threads.unwrap() >= 1);
        let fds = fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        assert!(p.open_fds.unwrap().abs_diff(fds) <= 8, "{p:?} vs {fds}");
        let soft = limit(&fs::read_to_string("/proc/self/limits").unwrap(), "Max open files");
        assert_eq!(p.max_fds, soft);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = p.start_time_seconds.unwrap();
        assert!(start <= now + 1.0 && start > now - 3600.0, "started {start}, now {now}");
        assert!(p.cpu_seconds.unwrap() >= 0.0);
        let mut out = String::new();
        p.write(&mut out, Format::Text);
        assert!(
            out.contains("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total "),
            "{out}"
        );
        assert!(out.contains("\nprocess_max_fds "), "{out}");
    }
}
