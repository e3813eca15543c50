//! Mesos's `system/*` metrics (libprocess's `System` process in
//! `process/system.hpp`, over stout's `os::cpus`, `os::memory` and
//! `os::loadavg`): what the Mesos CLI and the web UIs read
//! from `/metrics/snapshot` on masters and agents. Read from `/proc` and
//! `/sys` on every request; nothing is cached or owned here.

use std::path::Path;

/// The `system/*` gauges, by Mesos's names. A value the machine does not
/// expose is left out rather than reported as zero.
pub fn metrics() -> Vec<(&'static str, f64)> {
    let mut out = Vec::with_capacity(6);
    if let Some(cpus) = online_cpus(Path::new("/sys/devices/system/cpu/online")) {
        out.push(("system/cpus_total", cpus as f64));
    }
    if let Ok(text) = std::fs::read_to_string("/proc/meminfo") {
        let memory = parse_meminfo(&text);
        if let Some(total) = memory.total {
            out.push(("system/mem_total_bytes", total as f64));
        }
        if let Some(free) = memory.free {
            out.push(("system/mem_free_bytes", free as f64));
        }
    }
    if let Some([one, five, fifteen]) = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| parse_loadavg(&text))
    {
        out.push(("system/load_1min", one));
        out.push(("system/load_5min", five));
        out.push(("system/load_15min", fifteen));
    }
    out
}

/// Total and free main memory in bytes: `MemTotal` and `MemFree`, which
/// are the `totalram` and `freeram` of `sysinfo(2)` that Mesos reports.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// `MemTotal`.
    pub total: Option<u64>,
    /// `MemFree`.
    pub free: Option<u64>,
}

/// Parses `/proc/meminfo` (`MemTotal:  16318748 kB` lines).
pub fn parse_meminfo(text: &str) -> Memory {
    let mut memory = Memory::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut memory.total,
            "MemFree" => &mut memory.free,
            _ => continue,
        };
        let mut words = rest.split_whitespace();
        let Some(Ok(n)) = words.next().map(str::parse::<u64>) else {
            continue;
        };
        let scale = match words.next() {
            Some("kB") => 1024,
            None => 1,
            Some(_) => continue,
        };
        *slot = n.checked_mul(scale);
    }
    memory
}

/// Parses `/proc/loadavg` (`0.52 0.58 0.59 1/389 12345`).
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    let one = fields.next()?.ok()?;
    let five = fields.next()?.ok()?;
    let fifteen = fields.next()?.ok()?;
    Some([one, five, fifteen])
}

/// The number of online CPUs (`sysconf(_SC_NPROCESSORS_ONLN)`, which
/// reads this file): a list of ranges such as `0-3,6,8-9`.
fn online_cpus(path: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok();
    match text.as_deref().and_then(parse_cpu_list) {
        Some(n) => Some(n),
        None => std::thread::available_parallelism().ok().map(|n| n.get()),
    }
}

/// Counts the CPUs in a kernel CPU list (`0-3,6`).
pub fn parse_cpu_list(text: &str) -> Option<usize> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut count = 0usize;
    for part in text.split(',') {
        match part.split_once('-') {
            Some((low, high)) => {
                let low: usize = low.parse().ok()?;
                let high: usize = high.parse().ok()?;
                count += high.checked_sub(low)? + 1;
            }
            None => {
                part.parse::<usize>().ok()?;
                count += 1;
            }
        }
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_gives_total_and_free_in_bytes() {
        let text = "MemTotal:       16318748 kB\nMemFree:         1234567 kB\nMemAvailable:    9999999 kB\n";
        assert_eq!(
            parse_meminfo(text),
            Memory {
                total: Some(16318748 * 1024),
                free: Some(1234567 * 1024),
            }
        );
    }

    #[test]
    fn malformed_meminfo_lines_are_skipped() {
        let text = "MemTotal: lots kB\nMemFree: 12 MB\ngarbage\nMemTotal\n";
        assert_eq!(parse_meminfo(text), Memory::default());
    }

    #[test]
    fn loadavg_gives_three_averages() {
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 1/389 12345\n"),
            Some([0.52, 0.58, 0.59])
        );
        assert_eq!(parse_loadavg("0.52 x 0.59"), None);
        assert_eq!(parse_loadavg(""), None);
    }

    #[test]
    fn cpu_lists_count_ranges_and_singles() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("a-b"), None);
    }

    #[test]
    fn this_machine_reports_every_system_metric() {
        let names: Vec<&str> = metrics().into_iter().map(|(n, _)| n).collect();
        for name in [
            "system/cpus_total",
            "system/mem_total_bytes",
            "system/mem_free_bytes",
            "system/load_1min",
            "system/load_5min",
            "system/load_15min",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
    }
}
