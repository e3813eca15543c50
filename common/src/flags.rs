//! Flag helpers shared by every binary: Mesos's duration and byte-size
//! syntax, `file://` values, and the one-line-and-exit-1 handling of bad
//! flags.

use std::time::Duration;

/// Why a flag value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlagError {
    /// Not a Mesos duration such as `15secs` or `100ms`.
    #[error("invalid duration '{0}': expected a number followed by ns, us, ms, secs, mins, hrs, days or weeks")]
    Duration(String),
    /// Not a Mesos byte size such as `512MB`.
    #[error("invalid byte size '{0}': expected a number followed by B, KB, MB, GB or TB")]
    Bytes(String),
}

/// Parses a Mesos duration (`15secs`, `1mins`, `100ms`, `2.5hrs`).
pub fn parse_duration(text: &str) -> Result<Duration, FlagError> {
    let err = || FlagError::Duration(text.to_string());
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(err)?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| err())?;
    let seconds = match unit {
        "ns" => 1e-9,
        "us" => 1e-6,
        "ms" => 1e-3,
        "secs" | "sec" | "s" => 1.0,
        "mins" | "min" => 60.0,
        "hrs" | "hr" => 3600.0,
        "days" | "day" => 86400.0,
        "weeks" | "week" => 604800.0,
        _ => return Err(err()),
    };
    Duration::try_from_secs_f64(value * seconds).map_err(|_| err())
}

/// Prints a duration the way Mesos's `/flags` shows it.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs == 0.0 {
        "0ns".into()
    } else if secs < 1e-3 {
        format!("{}us", d.as_micros())
    } else if secs < 1.0 {
        format!("{}ms", d.as_millis())
    } else if d.as_secs().is_multiple_of(86400) && d.subsec_nanos() == 0 && secs >= 86400.0 {
        format!("{}days", d.as_secs() / 86400)
    } else if d.as_secs().is_multiple_of(3600) && d.subsec_nanos() == 0 {
        format!("{}hrs", d.as_secs() / 3600)
    } else if d.as_secs().is_multiple_of(60) && d.subsec_nanos() == 0 {
        format!("{}mins", d.as_secs() / 60)
    } else {
        format!("{secs}secs")
    }
}

/// Parses a Mesos byte size (`512MB`, `1GB`) into bytes.
pub fn parse_bytes(text: &str) -> Result<u64, FlagError> {
    let err = || FlagError::Bytes(text.to_string());
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (number, unit) = text.split_at(split);
    let value: u64 = number.parse().map_err(|_| err())?;
    let factor: u64 = match unit {
        "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return Err(err()),
    };
    value.checked_mul(factor).ok_or_else(err)
}

/// A clap value parser for durations.
pub fn duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

/// Parses a Mesos boolean: `true`/`false` or `1`/`0` (the workshop sets
/// `MESOS_AUTHENTICATE_AGENTS=1`).
pub fn bool_arg(text: &str) -> Result<bool, String> {
    match text {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(format!(
            "invalid boolean '{other}': expected true, false, 1 or 0"
        )),
    }
}

/// Resolves Mesos's `file:///path` (or `/path` for flags that take files)
/// convention: returns the file's contents, or the value itself.
pub fn read_value(value: &str) -> std::io::Result<String> {
    match value.strip_prefix("file://") {
        Some(path) => std::fs::read_to_string(path),
        None => Ok(value.to_string()),
    }
}

/// Parses flags with clap; `--help`/`--version` print and exit 0, anything
/// else wrong is one line on stderr and exit code 1.
pub fn parse_or_exit<T: clap::Parser>() -> T {
    match T::try_parse() {
        Ok(flags) => flags,
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp
            | clap::error::ErrorKind::DisplayVersion
            | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = e.print();
                std::process::exit(0);
            }
            _ => {
                let rendered = e.to_string();
                let line = rendered
                    .lines()
                    .find(|l| l.starts_with("error:"))
                    .unwrap_or_else(|| rendered.lines().next().unwrap_or("invalid flags"));
                eprintln!(
                    "Failed to load flags: {}",
                    line.trim_start_matches("error: ")
                );
                std::process::exit(1);
            }
        },
    }
}

/// Exits with one line and code 1: for flag combinations clap cannot check.
pub fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("Failed to load flags: {message}");
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_mesos_units() {
        assert_eq!(parse_duration("15secs"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1mins"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("0.5hrs"), Ok(Duration::from_secs(1800)));
        for bad in [
            "",
            "15",
            "secs",
            "1.2.3secs",
            "-1secs",
            "1 secs",
            "1parsecs",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_format_back() {
        assert_eq!(format_duration(Duration::from_secs(15)), "15secs");
        assert_eq!(format_duration(Duration::from_secs(600)), "10mins");
        assert_eq!(format_duration(Duration::from_secs(1)), "1secs");
        assert_eq!(format_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(format_duration(Duration::from_secs(7 * 86400)), "7days");
    }

    #[test]
    fn byte_sizes_parse() {
        assert_eq!(parse_bytes("512MB"), Ok(512 << 20));
        assert!(parse_bytes("12XB").is_err());
        assert!(parse_bytes("99999999999999TB").is_err());
    }
}
