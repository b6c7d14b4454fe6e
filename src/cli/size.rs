//! Byte sizes on the command line (`--memory-limit 2GiB`).

/// A `--memory-limit`: a size, or `none` for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimit(pub Option<usize>);

/// Parses a `--memory-limit`: `none` (or `unlimited`), or a size as
/// [`parse_size`] reads it.
pub fn parse_memory_limit(text: &str) -> Result<MemoryLimit, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "none" | "unlimited" => Ok(MemoryLimit(None)),
        _ => parse_size(text)
            .map(|b| MemoryLimit(Some(b)))
            .map_err(|e| format!("{e} (or `none` for no limit)")),
    }
}

/// Parses a byte size: a number (decimals allowed) and an optional unit,
/// case-insensitive: `B`; binary `K`/`KiB`, `M`/`MiB`, `G`/`GiB`, `T`/`TiB`
/// (powers of 1024, so `1G` is `1GiB`, as in `ulimit` and JVM flags); decimal
/// `KB`, `MB`, `GB`, `TB` (powers of 1000). Plain numbers are bytes.
/// The error says what was expected; clap prefixes it with the flag.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = (&s[..split], s[split..].trim());
    let expected =
        || format!("expected a size such as 512MiB, 2GiB, 1G or a number of bytes, got {text:?}");
    if number.is_empty() {
        return Err(expected());
    }
    let value: f64 = number.parse().map_err(|_| expected())?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return Err(format!("unknown unit {unit:?}: {}", expected())),
    };
    let bytes = (value * scale).round();
    if bytes < 1.0 {
        return Err(format!("{text:?} is less than one byte"));
    }
    // `usize::MAX as f64` rounds up, so `>=` keeps the cast in range.
    if !bytes.is_finite() || bytes >= usize::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn memory_limits() {
        use super::{parse_memory_limit, MemoryLimit};
        assert_eq!(parse_memory_limit("none"), Ok(MemoryLimit(None)));
        assert_eq!(parse_memory_limit("Unlimited"), Ok(MemoryLimit(None)));
        assert_eq!(parse_memory_limit("2GiB"), Ok(MemoryLimit(Some(2 << 30))));
        let err = parse_memory_limit("lots").err().unwrap_or_default();
        assert!(err.ends_with("(or `none` for no limit)"), "{err}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("2 GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("7b"), Ok(7));
    }

    #[test]
    fn bad_sizes() {
        for bad in ["", "GiB", "2XB", "-1G", "1..2G", "0", "0.1", "1e400", "abc"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
