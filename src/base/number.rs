//! A number from a user, quoted back in a message.

/// Shown as typed when it is of a usual size (`1000`, `2.5`) and in
/// exponent form beyond (`1e308`, not 309 digits), so an error quoting a
/// hostile number stays one short line.
#[derive(Debug, Clone, Copy)]
pub struct Shown(pub f64);

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let size = self.0.abs();
        if size >= 1e15 || (size > 0.0 && size < 1e-6) { write!(f, "{:e}", self.0) } else { write!(f, "{}", self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::Shown;

    #[test]
    fn usual_numbers_as_typed_and_huge_or_tiny_ones_in_exponent_form() {
        for (x, shown) in [
            (1000.0, "1000"),
            (2.5, "2.5"),
            (-0.5, "-0.5"),
            (0.0, "0"),
            (1e308, "1e308"),
            (-1e300, "-1e300"),
            (1e-9, "1e-9"),
            (f64::MAX, "1.7976931348623157e308"),
        ] {
            assert_eq!(Shown(x).to_string(), shown);
        }
    }
}
