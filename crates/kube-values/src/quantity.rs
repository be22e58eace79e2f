//! Kubernetes resource quantities (`250m`, `1.5Gi`, `129e6`), parsed exactly as
//! `k8s.io/apimachinery/pkg/api/resource` does, and the rounded-up integer views the kubelet
//! uses (`Value()`, `MilliValue()`).
//!
//! ```text
//! quantity        ::= signedNumber suffix
//! suffix          ::= binarySI | decimalExponent | decimalSI
//! binarySI        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! decimalSI       ::= n | u | m | "" | k | M | G | T | P | E
//! decimalExponent ::= "e" signedNumber | "E" signedNumber
//! ```

/// Why a quantity was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not in the quantity grammar.
    #[error("quantity {0:?} is invalid")]
    Invalid(String),
    /// More digits than an exact 128-bit mantissa holds.
    #[error("quantity {0:?} has too many digits")]
    TooManyDigits(String),
    /// A negative value where only non-negative ones make sense (CPU, memory).
    #[error("quantity {0:?} is negative")]
    Negative(String),
}

/// An exact quantity: `mantissa × 10^exp10 × 2^exp2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exp10: i32,
    exp2: u32,
}

impl Quantity {
    /// Zero.
    pub const ZERO: Quantity = Quantity {
        mantissa: 0,
        exp10: 0,
        exp2: 0,
    };
    /// One.
    pub const ONE: Quantity = Quantity {
        mantissa: 1,
        exp10: 0,
        exp2: 0,
    };

    /// `value × 10^exp10`.
    pub fn new(value: i64, exp10: i32) -> Self {
        Quantity {
            mantissa: i128::from(value),
            exp10,
            exp2: 0,
        }
    }

    /// Parses the Kubernetes quantity syntax: a signed decimal number and a suffix, binary
    /// (`Ki` … `Ei`), decimal (`n u m k M G T P E`) or an exponent (`e3`, `E-2`).
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let invalid = || QuantityError::Invalid(s.to_string());
        let t = s.trim();
        let (negative, t) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        let number_len = t
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (number, suffix) = t.split_at(number_len);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
            return Err(invalid());
        }
        let mut mantissa: i128 = 0;
        for b in int_part.bytes().chain(frac_part.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(b - b'0')))
                .ok_or_else(|| QuantityError::TooManyDigits(s.to_string()))?;
        }
        let mut exp10 = -i32::try_from(frac_part.len()).map_err(|_| invalid())?;
        let mut exp2 = 0;
        match suffix {
            "" => {}
            "Ki" => exp2 = 10,
            "Mi" => exp2 = 20,
            "Gi" => exp2 = 30,
            "Ti" => exp2 = 40,
            "Pi" => exp2 = 50,
            "Ei" => exp2 = 60,
            "n" => exp10 -= 9,
            "u" => exp10 -= 6,
            "m" => exp10 -= 3,
            "k" => exp10 += 3,
            "M" => exp10 += 6,
            "G" => exp10 += 9,
            "T" => exp10 += 12,
            "P" => exp10 += 15,
            "E" => exp10 += 18,
            _ if suffix.starts_with(['e', 'E']) => {
                let e: i32 = suffix[1..].parse().map_err(|_| invalid())?;
                exp10 = exp10.checked_add(e).ok_or_else(invalid)?;
            }
            _ => return Err(invalid()),
        }
        if negative {
            mantissa = -mantissa;
        }
        Ok(Quantity {
            mantissa,
            exp10,
            exp2,
        })
    }

    /// Whether the quantity is zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// `self × 10^scale`, rounded up away from zero like Go's `Quantity.ScaledValue`, saturated to
    /// the `i64` range.
    pub fn scaled_ceil(&self, scale: i32) -> i64 {
        let saturate = |negative: bool| if negative { i64::MIN } else { i64::MAX };
        let negative = self.mantissa < 0;
        let Some(mut n) = self.mantissa.checked_mul(1i128 << self.exp2.min(100)) else {
            return saturate(negative);
        };
        if self.exp2 > 100 && n != 0 {
            return saturate(negative);
        }
        let e = self.exp10.saturating_add(scale);
        if e >= 0 {
            for _ in 0..e {
                match n.checked_mul(10) {
                    Some(v) => n = v,
                    None => return saturate(negative),
                }
            }
        } else {
            let mut divisor: i128 = 1;
            for _ in 0..e.unsigned_abs() {
                match divisor.checked_mul(10) {
                    Some(d) => divisor = d,
                    // |n| < divisor: a non-zero value rounds up to ±1.
                    None => {
                        return if n == 0 {
                            0
                        } else if negative {
                            -1
                        } else {
                            1
                        };
                    }
                }
            }
            let (q, r) = (n / divisor, n % divisor);
            n = if r == 0 { q } else { q + n.signum() };
        }
        i64::try_from(n).unwrap_or_else(|_| saturate(negative))
    }

    /// The value in units, rounded up (Go's `Value()`).
    pub fn value(&self) -> i64 {
        self.scaled_ceil(0)
    }

    /// The value in thousandths, rounded up (Go's `MilliValue()`).
    pub fn milli_value(&self) -> i64 {
        self.scaled_ceil(3)
    }

    /// The value as a float (approximate; for reports and sanity checks, not for arithmetic).
    pub fn as_f64(&self) -> f64 {
        let exp2 = i32::try_from(self.exp2).unwrap_or(i32::MAX);
        self.mantissa as f64 * 10f64.powi(self.exp10) * 2f64.powi(exp2)
    }

    /// Whether the quantity is below zero.
    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A CPU quantity in millicores, rounded up like the kubelet (`250m` → 250, `0.5` → 500,
/// `2` → 2000, `0.0001` → 1).
pub fn millicores(s: &str) -> Result<u64, QuantityError> {
    non_negative(s, |q| q.milli_value())
}

/// A memory or storage quantity in bytes, rounded up (`64Mi`, `1G`, `1000`).
pub fn bytes(s: &str) -> Result<u64, QuantityError> {
    non_negative(s, |q| q.value())
}

fn non_negative(s: &str, view: impl Fn(&Quantity) -> i64) -> Result<u64, QuantityError> {
    let q = Quantity::parse(s)?;
    u64::try_from(view(&q)).map_err(|_| QuantityError::Negative(s.to_string()))
}

/// `ceil(a / b)` (toward +∞, like Go's `math.Ceil` of the quotient); `None` if `b` is zero.
pub fn ceil_div(a: i64, b: i64) -> Option<i64> {
    if b == 0 {
        return None;
    }
    let (a, b) = (i128::from(a), i128::from(b));
    let q = a / b;
    let q = if a % b != 0 && ((a < 0) == (b < 0)) {
        q + 1
    } else {
        q
    };
    Some(i64::try_from(q).unwrap_or(if q < 0 { i64::MIN } else { i64::MAX }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn values_round_up() {
        let cases = [
            ("0", 0, 0),
            ("1", 1, 1000),
            ("250m", 1, 250),
            ("1500m", 2, 1500),
            ("0.5", 1, 500),
            ("1.5", 2, 1500),
            (".5", 1, 500),
            ("5.", 5, 5000),
            ("1n", 1, 1),
            ("1u", 1, 1),
            ("100k", 100_000, 100_000_000),
            ("1M", 1_000_000, 1_000_000_000),
            ("1Ki", 1024, 1_024_000),
            ("128Mi", 134_217_728, 134_217_728_000),
            ("1.5Gi", 1_610_612_736, 1_610_612_736_000),
            ("1e3", 1000, 1_000_000),
            ("1E3", 1000, 1_000_000),
            ("129e6", 129_000_000, 129_000_000_000),
            ("12e-1", 2, 1200),
            ("1E", 1_000_000_000_000_000_000, i64::MAX),
            ("1Ei", 1 << 60, i64::MAX),
            ("+2", 2, 2000),
            ("-250m", -1, -250),
        ];
        for (input, value, milli) in cases {
            let v = q(input);
            assert_eq!(v.value(), value, "value of {input}");
            assert_eq!(v.milli_value(), milli, "milli of {input}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "abc", "1Qi", "1.2.3", "m", "1e", "1ee", "-", "1 Gi"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(q("0").is_zero() && q("0Gi").is_zero() && !q("1m").is_zero());
    }

    #[test]
    fn provider_conversions_round_up_and_refuse_negatives() {
        assert_eq!(millicores("250m"), Ok(250));
        assert_eq!(millicores("0.5"), Ok(500));
        assert_eq!(millicores("2"), Ok(2000));
        assert_eq!(millicores("0.0001"), Ok(1));
        assert_eq!(bytes("64Mi"), Ok(64 << 20));
        assert_eq!(bytes("1G"), Ok(1_000_000_000));
        assert_eq!(bytes("1.5Gi"), Ok(1_610_612_736));
        assert!(matches!(millicores("-1"), Err(QuantityError::Negative(_))));
        assert!(matches!(bytes("lots"), Err(QuantityError::Invalid(_))));
    }

    #[test]
    fn floats_approximate() {
        assert_eq!(q("1Ki").as_f64(), 1024.0);
        assert_eq!(q("1e3").as_f64(), 1000.0);
        assert_eq!(q("3E").as_f64(), 3e18);
        assert!((q("250m").as_f64() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn accepts_every_form_of_the_grammar() {
        for s in [
            "20", "100Gi", "110", "500m", "1.5", "1e3", "2E-2", "+4k", "0", ".5", "1.", "8Ei", "3E",
        ] {
            assert!(Quantity::parse(s).is_ok(), "{s}");
        }
        for s in ["1GB", "1..2", "Gi", "1ki", "--1", "1e+"] {
            assert!(Quantity::parse(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn ceiling_division() {
        assert_eq!(ceil_div(250, 1000), Some(1));
        assert_eq!(ceil_div(2000, 1000), Some(2));
        assert_eq!(ceil_div(0, 1000), Some(0));
        assert_eq!(ceil_div(-250, 1000), Some(0));
        assert_eq!(ceil_div(5, 0), None);
    }
}
