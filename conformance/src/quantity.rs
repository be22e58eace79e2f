//! Validation of Kubernetes resource quantities (`"20"`, `"100Gi"`, `"500m"`, `"1e3"`) and of
//! the Go platform names used for `operating_system` / `architecture`.
//!
//! The grammar follows `k8s.io/apimachinery/pkg/api/resource`:
//!
//! ```text
//! quantity        ::= signedNumber suffix
//! suffix          ::= binarySI | decimalExponent | decimalSI
//! binarySI        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! decimalSI       ::= n | u | m | "" | k | M | G | T | P | E
//! decimalExponent ::= "e" signedNumber | "E" signedNumber
//! ```

/// Parses a Kubernetes quantity and returns its approximate value.
pub fn parse_quantity(input: &str) -> Result<f64, String> {
    let bad = |why: &str| Err(format!("{input:?} is not a Kubernetes quantity: {why}"));
    if input.is_empty() {
        return bad("empty");
    }
    let (sign, body) = match input.as_bytes()[0] {
        b'+' => (1.0, &input[1..]),
        b'-' => (-1.0, &input[1..]),
        _ => (1.0, input),
    };
    let num_len = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let number = &body[..num_len];
    if number.is_empty()
        || !number.chars().any(|c| c.is_ascii_digit())
        || number.matches('.').count() > 1
    {
        return bad("expected a number");
    }
    let value: f64 = match number.parse::<f64>() {
        Ok(v) => v,
        Err(_) => return bad("expected a number"),
    };
    let suffix = &body[num_len..];
    let multiplier = match suffix {
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        s if s.starts_with(['e', 'E']) => {
            let exp = &s[1..];
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                return bad("bad exponent");
            }
            match exp.parse::<i32>() {
                Ok(e) => 10f64.powi(e),
                Err(_) => return bad("exponent out of range"),
            }
        }
        _ => return bad("unknown suffix"),
    };
    Ok(sign * value * multiplier)
}

/// Known `GOOS` values (Go's `go/build/syslist.go`).
pub const KNOWN_GOOS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
];

/// Known `GOARCH` values (Go's `go/build/syslist.go`).
pub const KNOWN_GOARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "ppc64",
    "ppc64le",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kubernetes_quantities() {
        for q in [
            "20", "100Gi", "110", "500m", "1.5", "1e3", "2E-2", "+4k", "0", ".5", "1.", "8Ei", "3E",
        ] {
            assert!(parse_quantity(q).is_ok(), "{q}");
        }
        assert_eq!(parse_quantity("1Ki"), Ok(1024.0));
        assert_eq!(parse_quantity("1e3"), Ok(1000.0));
        assert_eq!(parse_quantity("3E"), Ok(3e18));
    }

    #[test]
    fn rejects_garbage() {
        for q in [
            "", "abc", "1GB", "1 Gi", "1..2", "Gi", "1e", "1ki", "1.2.3", "--1", "1e+",
        ] {
            assert!(parse_quantity(q).is_err(), "{q}");
        }
    }
}
