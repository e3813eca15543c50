//! Detection of the machine's resources for the parts of `--resources` the
//! operator left out, computed the way Mesos does: all CPUs, total memory
//! minus min(1GB, half), free disk of the work directory minus min(5GB,
//! half), and ports 31000-32000.

use std::path::Path;

const MB: u64 = 1 << 20;
const GB: u64 = 1 << 30;

/// Memory offered, in MB, for a machine with `total` bytes.
pub fn mem_mb(total: u64) -> u64 {
    total.saturating_sub((total / 2).min(GB)) / MB
}

/// Disk offered, in MB, for a work directory with `available` bytes free.
pub fn disk_mb(available: u64) -> u64 {
    available.saturating_sub((available / 2).min(5 * GB)) / MB
}

/// Number of online CPUs.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Total memory in bytes, from `/proc/meminfo`.
pub fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo_total(&text)
}

fn parse_meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Bytes available to unprivileged users on the file system of `path`.
pub fn available_disk(path: &Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    #[allow(clippy::useless_conversion)]
    let blocks = u64::from(stat.blocks_available());
    #[allow(clippy::useless_conversion)]
    let size = u64::from(stat.fragment_size());
    blocks.checked_mul(size)
}

/// Names of the resources an operator's `--resources` value mentions, in
/// either the text form (`cpus(role):2;mem:1024`) or the JSON array form.
pub fn named_resources(text: &str) -> Vec<String> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        return serde_json::from_str::<Vec<serde_json::Value>>(trimmed)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.get("name").and_then(|n| n.as_str()).map(String::from))
                    .collect()
            })
            .unwrap_or_default();
    }
    trimmed
        .split(';')
        .filter_map(|item| {
            let name = item.split(':').next()?.trim();
            let name = name.split('(').next()?.trim();
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

/// The `--resources` text with every missing standard resource appended
/// from detection. `work_dir` must exist.
pub fn complete_resources(given: Option<&str>, work_dir: &Path) -> String {
    let given = given.unwrap_or("").trim();
    let named = named_resources(given);
    let has = |n: &str| named.iter().any(|x| x == n);
    if given.starts_with('[') {
        // JSON form: append detected resources as JSON objects.
        let mut items: Vec<serde_json::Value> = serde_json::from_str(given).unwrap_or_default();
        for (name, text) in detected(&has, work_dir) {
            items.push(match name {
                "ports" => serde_json::json!({"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 32000}]}}),
                _ => serde_json::json!({"name": name, "type": "SCALAR", "scalar": {"value": text.parse::<f64>().unwrap_or(0.0)}}),
            });
        }
        return serde_json::Value::Array(items).to_string();
    }
    let mut parts: Vec<String> = if given.is_empty() {
        Vec::new()
    } else {
        vec![given.trim_end_matches(';').to_string()]
    };
    for (name, text) in detected(&has, work_dir) {
        parts.push(format!("{name}:{text}"));
    }
    parts.join(";")
}

fn detected(has: &dyn Fn(&str) -> bool, work_dir: &Path) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if !has("cpus") {
        out.push(("cpus", cpus().to_string()));
    }
    if !has("mem") {
        out.push(("mem", mem_mb(total_memory().unwrap_or(0)).to_string()));
    }
    if !has("disk") {
        out.push((
            "disk",
            disk_mb(available_disk(work_dir).unwrap_or(0)).to_string(),
        ));
    }
    if !has("ports") {
        out.push(("ports", "[31000-32000]".to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_keeps_back_min_of_1gb_and_half() {
        assert_eq!(mem_mb(16 * GB), 15 * 1024);
        assert_eq!(mem_mb(GB), 512);
        assert_eq!(mem_mb(0), 0);
    }

    #[test]
    fn disk_keeps_back_min_of_5gb_and_half() {
        assert_eq!(disk_mb(100 * GB), 95 * 1024);
        assert_eq!(disk_mb(4 * GB), 2 * 1024);
    }

    #[test]
    fn meminfo_is_parsed() {
        assert_eq!(
            parse_meminfo_total("MemTotal:       16384 kB\nMemFree: 1 kB\n"),
            Some(16384 * 1024)
        );
        assert_eq!(parse_meminfo_total("garbage"), None);
    }

    #[test]
    fn only_missing_resources_are_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = complete_resources(Some("cpus:2;mem(role1):100"), dir.path());
        assert!(text.starts_with("cpus:2;mem(role1):100;disk:"), "{text}");
        assert!(text.ends_with(";ports:[31000-32000]"), "{text}");
        assert!(!text.contains(";cpus:"), "{text}");
        let all = complete_resources(None, dir.path());
        let names = named_resources(&all);
        assert_eq!(names, vec!["cpus", "mem", "disk", "ports"]);
        assert!(cpus() >= 1);
        let json = complete_resources(
            Some(r#"[{"name":"cpus","type":"SCALAR","scalar":{"value":1}}]"#),
            dir.path(),
        );
        assert_eq!(named_resources(&json), vec!["cpus", "mem", "disk", "ports"]);
    }
}
