//! The `calculate` tool's arithmetic: numbers, `+ - * /`, unary minus and parentheses, nothing else.

/// Evaluates `expression`; a message saying what is wrong otherwise.
pub fn evaluate(expression: &str) -> Result<f64, String> {
    if let Some(bad) = expression.chars().find(|c| !"0123456789+-*/(). ".contains(*c)) {
        return Err(format!("Invalid characters in expression: {bad:?}"));
    }
    let tokens: Vec<char> = expression.chars().filter(|c| *c != ' ').collect();
    let mut parser = Parser { tokens, at: 0 };
    let value = parser.sum()?;
    if parser.at != parser.tokens.len() {
        return Err(format!(
            "unexpected {:?} at position {}",
            parser.tokens[parser.at], parser.at
        ));
    }
    if !value.is_finite() {
        return Err("the result is not a finite number (division by zero?)".to_owned());
    }
    Ok(value)
}

/// Rounds to two decimals and writes the number as Python's `str(float)` would for ordinary magnitudes:
/// `4.0`, `2.5`, `0.33`.
pub fn format_rounded(value: f64) -> String {
    let rounded = (value * 100.0).round() / 100.0;
    let rounded = if rounded == 0.0 { 0.0 } else { rounded };
    if rounded.fract() == 0.0 {
        format!("{rounded:.1}")
    } else {
        format!("{rounded}")
    }
}

/// Precedence climbing over the characters, blanks removed.
struct Parser {
    tokens: Vec<char>,
    at: usize,
}

/// How deep parentheses and signs may nest before the expression is refused rather than the stack risked.
const MAX_DEPTH: usize = 200;

impl Parser {
    fn peek(&self) -> Option<char> {
        self.tokens.get(self.at).copied()
    }

    fn sum(&mut self) -> Result<f64, String> {
        self.sum_at(0)
    }

    fn sum_at(&mut self, depth: usize) -> Result<f64, String> {
        let mut value = self.product(depth)?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.at += 1;
            let right = self.product(depth)?;
            value = if op == '+' { value + right } else { value - right };
        }
        Ok(value)
    }

    fn product(&mut self, depth: usize) -> Result<f64, String> {
        let mut value = self.unary(depth)?;
        while let Some(op @ ('*' | '/')) = self.peek() {
            self.at += 1;
            let right = self.unary(depth)?;
            value = if op == '*' { value * right } else { value / right };
        }
        Ok(value)
    }

    fn unary(&mut self, depth: usize) -> Result<f64, String> {
        if depth > MAX_DEPTH {
            return Err("the expression nests too deeply".to_owned());
        }
        match self.peek() {
            Some('-') => {
                self.at += 1;
                Ok(-self.unary(depth + 1)?)
            }
            Some('+') => {
                self.at += 1;
                self.unary(depth + 1)
            }
            Some('(') => {
                self.at += 1;
                let value = self.sum_at(depth + 1)?;
                if self.peek() != Some(')') {
                    return Err("a parenthesis is not closed".to_owned());
                }
                self.at += 1;
                Ok(value)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => self.number(),
            Some(c) => Err(format!("unexpected {c:?} at position {}", self.at)),
            None => Err("the expression ends too early".to_owned()),
        }
    }

    fn number(&mut self) -> Result<f64, String> {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
            self.at += 1;
        }
        let text: String = self.tokens[start..self.at].iter().collect();
        text.parse().map_err(|_| format!("{text:?} is not a number"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn evaluates_with_precedence_and_parentheses() {
        assert_eq!(evaluate("2 + 3 * 4").unwrap(), 14.0);
        assert_eq!(evaluate("(2 + 3) * 4").unwrap(), 20.0);
        assert_eq!(evaluate("-(1.5 - 4) / 2").unwrap(), 1.25);
        assert_eq!(format_rounded(evaluate("10 / 3").unwrap()), "3.33");
        assert_eq!(format_rounded(evaluate("8276.23 - 0").unwrap()), "8276.23");
        assert_eq!(format_rounded(4.0), "4.0");
    }

    #[test]
    fn refuses_what_is_not_arithmetic() {
        assert!(evaluate("__import__('os')").unwrap_err().contains("Invalid characters"));
        assert!(evaluate("1 / 0").is_err());
        assert!(evaluate("(1 + 2").is_err());
        assert!(evaluate("1 +").is_err());
        assert!(evaluate("1.2.3").is_err());
        assert!(evaluate(&"(".repeat(10_000)).is_err());
    }

    proptest! {
        #[test]
        fn sums_of_integers_are_exact(terms in proptest::collection::vec(-1000i64..1000, 1..20)) {
            let expression = terms.iter().map(|t| format!("({t})")).collect::<Vec<_>>().join(" + ");
            prop_assert_eq!(evaluate(&expression).unwrap(), terms.iter().sum::<i64>() as f64);
        }

        #[test]
        fn never_panics_on_any_input(expression in "[0-9+*/(). -]{0,40}") {
            let _ = evaluate(&expression);
        }
    }
}
