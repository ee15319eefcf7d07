//! `resource.Quantity`: parsing, exact comparison, milli-scale rounding and the canonical
//! string form kube-apiserver serialises (`0.5` → `500m`, `1024Mi` → `1Gi`).
//!
//! A quantity is held exactly as `mantissa × 10^exp` in an `i128` (values with more than
//! nano precision are rounded up to nano, as `ParseQuantity` does).

use std::cmp::Ordering;

/// How the quantity was written, which decides how it is printed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `Ki`, `Mi`, ... suffixes.
    BinarySI,
    /// No suffix, or `n u m k M G T P E`.
    DecimalSI,
    /// `1e3`, `5E-3`.
    DecimalExponent,
}

/// A parsed quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quantity {
    mantissa: i128,
    exp: i32,
    format: Format,
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

fn pow1024(n: u32) -> Option<i128> {
    1024i128.checked_pow(n)
}

impl Quantity {
    /// Parses Kubernetes' quantity grammar: `<signedNumber><suffix>`.
    pub(crate) fn parse(s: &str) -> Option<Quantity> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        let (negative, rest) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(num_end);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        let digits: String = format!("{int_part}{frac_part}");
        let mut mantissa: i128 = 0;
        for d in digits.bytes() {
            mantissa = mantissa
                .checked_mul(10)?
                .checked_add(i128::from(d - b'0'))?;
        }
        let mut exp = -(i32::try_from(frac_part.len()).ok()?);
        let format;
        match suffix {
            "" => format = Format::DecimalSI,
            "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
                format = Format::BinarySI;
                let power = match suffix {
                    "Ki" => 1,
                    "Mi" => 2,
                    "Gi" => 3,
                    "Ti" => 4,
                    "Pi" => 5,
                    _ => 6,
                };
                mantissa = mantissa.checked_mul(pow1024(power)?)?;
            }
            "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => {
                format = Format::DecimalSI;
                exp += match suffix {
                    "n" => -9,
                    "u" => -6,
                    "m" => -3,
                    "k" => 3,
                    "M" => 6,
                    "G" => 9,
                    "T" => 12,
                    "P" => 15,
                    _ => 18,
                };
            }
            _ => {
                let e = suffix.strip_prefix(['e', 'E'])?;
                let e_digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if e_digits.is_empty() || !e_digits.chars().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                format = Format::DecimalExponent;
                exp = exp.checked_add(e.parse::<i32>().ok()?)?;
            }
        }
        if negative {
            mantissa = -mantissa;
        }
        let mut q = Quantity {
            mantissa,
            exp,
            format,
        };
        q.round_up_to(-9)?;
        q.normalize();
        Some(q)
    }

    /// Drops trailing decimal zeros from the mantissa (keeps the value).
    fn normalize(&mut self) {
        if self.mantissa == 0 {
            self.exp = 0;
            return;
        }
        while self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.exp += 1;
        }
    }

    /// Rounds up (towards +∞) to a scale of `10^scale`; `None` on overflow.
    fn round_up_to(&mut self, scale: i32) -> Option<()> {
        if self.exp >= scale {
            return Some(());
        }
        let shift = u32::try_from(scale - self.exp).ok()?;
        let Some(div) = pow10(shift) else {
            // Far below the scale: the value rounds to one unit (or zero).
            self.mantissa = i128::from(self.mantissa > 0);
            self.exp = scale;
            return Some(());
        };
        let q = self.mantissa.div_euclid(div);
        let r = self.mantissa.rem_euclid(div);
        self.mantissa = if r > 0 { q + 1 } else { q };
        self.exp = scale;
        Some(())
    }

    /// `RoundUp(-3)`: what `SetDefaults_ResourceList` does to every resource quantity.
    pub(crate) fn round_up_to_milli(mut self) -> Quantity {
        if self.round_up_to(-3).is_some() {
            self.normalize();
        }
        self
    }

    /// The sign of the value.
    pub(crate) fn signum(&self) -> i32 {
        self.mantissa.signum() as i32
    }

    /// Exact comparison (falls back to floating point only beyond `i128`).
    pub(crate) fn cmp_value(&self, other: &Quantity) -> Ordering {
        let e = self.exp.min(other.exp);
        let scale = |q: &Quantity| -> Option<i128> {
            let shift = u32::try_from(q.exp - e).ok()?;
            q.mantissa.checked_mul(pow10(shift)?)
        };
        match (scale(self), scale(other)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self
                .as_f64()
                .partial_cmp(&other.as_f64())
                .unwrap_or(Ordering::Equal),
        }
    }

    fn as_f64(&self) -> f64 {
        self.mantissa as f64 * 10f64.powi(self.exp)
    }

    /// The sum (keeps `self`'s format, as `Quantity.Add` does).
    pub(crate) fn add(&self, other: &Quantity) -> Quantity {
        let e = self.exp.min(other.exp);
        let scale = |q: &Quantity| -> Option<i128> {
            let shift = u32::try_from(q.exp - e).ok()?;
            q.mantissa.checked_mul(pow10(shift)?)
        };
        match (scale(self), scale(other)) {
            (Some(a), Some(b)) => match a.checked_add(b) {
                Some(m) => {
                    let mut q = Quantity {
                        mantissa: m,
                        exp: e,
                        format: self.format,
                    };
                    q.normalize();
                    q
                }
                None => *self,
            },
            _ => *self,
        }
    }

    /// The canonical string (`Quantity.String()`).
    pub(crate) fn canonical(&self) -> String {
        if self.mantissa == 0 {
            return "0".to_string();
        }
        if self.format == Format::BinarySI {
            let small = self.cmp_value(&Quantity::int(1024)) == Ordering::Less
                && self.cmp_value(&Quantity::int(-1024)) == Ordering::Greater;
            if !small {
                if let Some(s) = self.binary_string() {
                    return s;
                }
            }
        }
        let mut m = self.mantissa;
        let mut e = self.exp;
        let r = e.rem_euclid(3);
        if r != 0 {
            match pow10(r as u32).and_then(|p| m.checked_mul(p)) {
                Some(v) => {
                    m = v;
                    e -= r;
                }
                None => return format!("{m}e{e}"),
            }
        }
        let suffix = match (self.format, e) {
            (Format::DecimalExponent, 0) => String::new(),
            (Format::DecimalExponent, e) => format!("e{e}"),
            (_, -9) => "n".into(),
            (_, -6) => "u".into(),
            (_, -3) => "m".into(),
            (_, 0) => String::new(),
            (_, 3) => "k".into(),
            (_, 6) => "M".into(),
            (_, 9) => "G".into(),
            (_, 12) => "T".into(),
            (_, 15) => "P".into(),
            (_, 18) => "E".into(),
            (_, e) => format!("e{e}"),
        };
        format!("{m}{suffix}")
    }

    /// `Ki`/`Mi`/... form when the value is a whole number of bytes.
    fn binary_string(&self) -> Option<String> {
        if self.exp < 0 {
            return None;
        }
        let mut v = self.mantissa.checked_mul(pow10(self.exp as u32)?)?;
        let mut power = 0;
        while power < 6 && v % 1024 == 0 {
            v /= 1024;
            power += 1;
        }
        let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
        Some(format!("{v}{suffix}"))
    }

    fn int(v: i128) -> Quantity {
        Quantity {
            mantissa: v,
            exp: 0,
            format: Format::DecimalSI,
        }
    }
}

/// Rounds a quantity string up to milli scale and prints it canonically; `None` when the
/// string is not a quantity (left for decoding to reject).
pub(crate) fn canonical_milli(s: &str) -> Option<String> {
    Quantity::parse(s).map(|q| q.round_up_to_milli().canonical())
}

impl Quantity {
    /// The value scaled by `10^-scale`, rounded up (towards +∞) to a whole number, saturating
    /// at `i64`'s bounds: `Quantity.ScaledValue`.
    fn scaled_value(&self, scale: i32) -> i64 {
        let mut q = *self;
        if q.round_up_to(scale).is_none() {
            return if q.mantissa < 0 { i64::MIN } else { i64::MAX };
        }
        let shift = q.exp - scale;
        let v = u32::try_from(shift)
            .ok()
            .and_then(pow10)
            .and_then(|p| q.mantissa.checked_mul(p));
        match v {
            Some(v) => i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX }),
            None if q.mantissa < 0 => i64::MIN,
            None => i64::MAX,
        }
    }
}

/// `Quantity.MilliValue()`: the value in thousandths, rounded up (`100m` → 100, `1` → 1000,
/// `0.0001` → 1). `None` when `s` is not a quantity.
pub fn milli_value(s: &str) -> Option<i64> {
    Quantity::parse(s).map(|q| q.scaled_value(-3))
}

/// `Quantity.Value()`: the value rounded up to a whole number (`1Ki` → 1024, `1500m` → 2).
/// `None` when `s` is not a quantity.
pub fn int_value(s: &str) -> Option<i64> {
    Quantity::parse(s).map(|q| q.scaled_value(0))
}

#[cfg(test)]
mod value_tests {
    use super::*;

    #[test]
    fn milli_and_whole_values_round_up_as_kubernetes_does() {
        assert_eq!(milli_value("100m"), Some(100));
        assert_eq!(milli_value("1"), Some(1000));
        assert_eq!(milli_value("0.5"), Some(500));
        assert_eq!(milli_value("0.0001"), Some(1));
        assert_eq!(milli_value("2k"), Some(2_000_000));
        assert_eq!(int_value("1Ki"), Some(1024));
        assert_eq!(int_value("128Mi"), Some(134_217_728));
        assert_eq!(int_value("1500m"), Some(2));
        assert_eq!(int_value("1e3"), Some(1000));
        assert_eq!(int_value("110"), Some(110));
        assert_eq!(int_value("-1"), Some(-1));
        assert_eq!(int_value("99E"), Some(i64::MAX));
        assert_eq!(milli_value("junk"), None);
    }
}
