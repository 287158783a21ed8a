//! FRAMEDATA program strings: the reverse-Polish programs an x86 PDB attaches to a function's
//! frame record to compute its caller's registers, e.g. for a function with an EBP frame
//! `$T0 $ebp = $eip $T0 4 + ^ = $ebp $T0 ^ = $esp $T0 8 + =` and for one without
//! `$T0 .raSearch = $eip $T0 ^ = $esp $T0 4 + = $esi $T0 4 - ^ =`.
//!
//! Tokens are separated by blanks. Numbers (decimal, an optional leading `-`) and names are
//! pushed; `$` names are registers (`$eip`, `$esp`, `$ebp`, `$ebx`, ...) and temporaries
//! (`$T0`...), `.` names constants of the frame (`.raSearch`, `.cbLocals`, ...). Operators pop
//! their operands: `+ - * / %` (32-bit, wrapping), `@` (align the left operand down to the
//! right one, a power of two), `^` (read the 32-bit word at the address), `=` (assign the value
//! on top to the `$` name below it). A program leaves nothing on its stack. MSVC's LTCG output
//! sometimes glues `=` to the next token (`=$eip`); it is split as WinDbg and breakpad do.
//!
//! Nothing here trusts the program: an operator without its operands, a division by zero, an
//! unknown name, an unreadable address or a program longer than [`MAX_TOKENS`] is a
//! [`ProgramError`], never a panic; a program has no jumps, so it always ends.

use crate::memory::VirtualMemory;
use thiserror::Error;

/// Longest program evaluated, in tokens (real ones have under 40).
pub const MAX_TOKENS: usize = 256;
/// Most distinct names one evaluation may hold (registers, temporaries and constants).
const MAX_NAMES: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProgramError {
    #[error("`{0}` has too few operands on the stack")]
    Underflow(String),
    #[error("division by zero at `{0}`")]
    DivideByZero(String),
    #[error("alignment {0} is not a power of two")]
    BadAlignment(u32),
    #[error("`{0}` is neither a number nor a name")]
    BadToken(String),
    #[error("`{0}` is read before it is set")]
    Unset(String),
    #[error("`{0}` cannot be assigned (only `$` names can)")]
    NotAssignable(String),
    #[error("the word at {0:#x} is not in the dump")]
    Unreadable(u64),
    #[error("the program leaves {0} value(s) on its stack")]
    LeftOver(usize),
    #[error("the program has more than {MAX_TOKENS} tokens")]
    TooLong,
    #[error("the program uses more than {MAX_NAMES} names")]
    TooManyNames,
    #[error("the program does not set {0}")]
    Missing(&'static str),
    /// The PDB's record names a program string that could not be read.
    #[error("no usable program string: {0}")]
    Unusable(String),
}

/// The names an evaluation reads and writes, with which `$` names it assigned.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    values: Vec<(String, u32, bool)>,
}

impl Variables {
    /// Sets `name` before the evaluation (not counted as assigned by the program).
    pub fn define(&mut self, name: &str, value: u32) -> Result<(), ProgramError> {
        self.put(name, value, false)
    }

    pub fn get(&self, name: &str) -> Option<u32> {
        self.values.iter().find(|v| v.0 == name).map(|v| v.1)
    }

    /// The value of `name` if the program assigned it.
    pub fn assigned(&self, name: &str) -> Option<u32> {
        self.values.iter().find(|v| v.0 == name && v.2).map(|v| v.1)
    }

    fn put(&mut self, name: &str, value: u32, assigned: bool) -> Result<(), ProgramError> {
        if let Some(v) = self.values.iter_mut().find(|v| v.0 == name) {
            v.1 = value;
            v.2 |= assigned;
            return Ok(());
        }
        if self.values.len() >= MAX_NAMES {
            return Err(ProgramError::TooManyNames);
        }
        self.values.push((name.to_string(), value, assigned));
        Ok(())
    }
}

/// One item of the evaluation stack: a value, or a name not yet read (the left side of `=`).
#[derive(Debug, Clone, Copy)]
enum Item<'p> {
    Value(u32),
    Name(&'p str),
}

/// Runs `program` over `vars`, reading words from `mem`.
pub fn evaluate(
    program: &str,
    vars: &mut Variables,
    mem: &dyn VirtualMemory,
) -> Result<(), ProgramError> {
    let mut stack: Vec<Item<'_>> = Vec::new();
    let mut count = 0usize;
    for raw in program.split_ascii_whitespace() {
        let parts = match raw.strip_prefix('=') {
            Some(rest) if !rest.is_empty() => [Some("="), Some(rest)],
            _ => [Some(raw), None],
        };
        for token in parts.into_iter().flatten() {
            count += 1;
            if count > MAX_TOKENS {
                return Err(ProgramError::TooLong);
            }
            apply(token, &mut stack, vars, mem)?;
        }
    }
    match stack.len() {
        0 => Ok(()),
        n => Err(ProgramError::LeftOver(n)),
    }
}

fn apply<'p>(
    token: &'p str,
    stack: &mut Vec<Item<'p>>,
    vars: &mut Variables,
    mem: &dyn VirtualMemory,
) -> Result<(), ProgramError> {
    match token {
        "+" | "-" | "*" | "/" | "%" | "@" => {
            let b = pop_value(token, stack, vars)?;
            let a = pop_value(token, stack, vars)?;
            stack.push(Item::Value(binary(token, a, b)?));
        }
        "^" => {
            let at = u64::from(pop_value(token, stack, vars)?);
            let word = mem.read_u32(at).map_err(|_| ProgramError::Unreadable(at))?;
            stack.push(Item::Value(word));
        }
        "=" => {
            let value = pop_value(token, stack, vars)?;
            match stack.pop() {
                Some(Item::Name(name)) if name.starts_with('$') => vars.put(name, value, true)?,
                Some(Item::Name(name)) => return Err(ProgramError::NotAssignable(name.into())),
                Some(Item::Value(v)) => return Err(ProgramError::NotAssignable(v.to_string())),
                None => return Err(ProgramError::Underflow(token.into())),
            }
        }
        _ => stack.push(operand(token)?),
    }
    Ok(())
}

fn binary(op: &str, a: u32, b: u32) -> Result<u32, ProgramError> {
    Ok(match op {
        "+" => a.wrapping_add(b),
        "-" => a.wrapping_sub(b),
        "*" => a.wrapping_mul(b),
        "/" => a
            .checked_div(b)
            .ok_or_else(|| ProgramError::DivideByZero(op.into()))?,
        "%" => a
            .checked_rem(b)
            .ok_or_else(|| ProgramError::DivideByZero(op.into()))?,
        _ => {
            if !b.is_power_of_two() {
                return Err(ProgramError::BadAlignment(b));
            }
            a & !(b - 1)
        }
    })
}

/// A number or a name, as pushed.
fn operand(token: &str) -> Result<Item<'_>, ProgramError> {
    if token.starts_with('$') || token.starts_with('.') {
        if token.len() > 1 {
            return Ok(Item::Name(token));
        }
        return Err(ProgramError::BadToken(token.into()));
    }
    let (negative, digits) = match token.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, token),
    };
    let n: u32 = digits
        .parse()
        .map_err(|_| ProgramError::BadToken(token.into()))?;
    Ok(Item::Value(if negative { n.wrapping_neg() } else { n }))
}

fn pop_value(op: &str, stack: &mut Vec<Item<'_>>, vars: &Variables) -> Result<u32, ProgramError> {
    match stack.pop() {
        Some(Item::Value(v)) => Ok(v),
        Some(Item::Name(name)) => vars
            .get(name)
            .ok_or_else(|| ProgramError::Unset(name.into())),
        None => Err(ProgramError::Underflow(op.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::pe::SliceMemory;

    fn stack_at_1000() -> Vec<u8> {
        // 0x1000: 0x2000 (saved EBP), 0x1004: 0x8050_1234 (return address).
        let mut s = vec![0u8; 0x20];
        s[0..4].copy_from_slice(&0x2000u32.to_le_bytes());
        s[4..8].copy_from_slice(&0x8050_1234u32.to_le_bytes());
        s
    }

    fn run(program: &str, vars: &mut Variables) -> Result<(), ProgramError> {
        let s = stack_at_1000();
        evaluate(program, vars, &SliceMemory::new(0x1000, &s, 4))
    }

    #[test]
    fn the_standard_ebp_frame_program() {
        let mut v = Variables::default();
        v.define("$ebp", 0x1000).unwrap();
        v.define("$esp", 0xff0).unwrap();
        run(
            "$T0 $ebp = $eip $T0 4 + ^ = $ebp $T0 ^ = $esp $T0 8 + =",
            &mut v,
        )
        .unwrap();
        assert_eq!(v.assigned("$eip"), Some(0x8050_1234));
        assert_eq!(v.assigned("$ebp"), Some(0x2000));
        assert_eq!(v.assigned("$esp"), Some(0x1008));
        // Glued `=` (MSVC LTCG) reads the same.
        let mut w = Variables::default();
        w.define("$ebp", 0x1000).unwrap();
        run(
            "$T0 $ebp = $eip $T0 4 + ^ =$ebp $T0 ^ =$esp $T0 8 + =",
            &mut w,
        )
        .unwrap();
        assert_eq!(w.assigned("$esp"), Some(0x1008));
    }

    #[test]
    fn arithmetic_alignment_and_negative_numbers() {
        let mut v = Variables::default();
        run(
            "$a 7 3 * 2 - = $b 17 5 % = $c 4119 16 @ = $d 5 -8 + = $e 9 2 / =",
            &mut v,
        )
        .unwrap();
        assert_eq!(v.assigned("$a"), Some(19));
        assert_eq!(v.assigned("$b"), Some(2));
        assert_eq!(v.assigned("$c"), Some(0x1010));
        assert_eq!(v.assigned("$d"), Some(u32::MAX - 2));
        assert_eq!(v.assigned("$e"), Some(4));
    }

    #[test]
    fn hostile_programs_are_errors() {
        let cases: &[(&str, ProgramError)] = &[
            ("+", ProgramError::Underflow("+".into())),
            ("^", ProgramError::Underflow("^".into())),
            ("$x 1 0 / =", ProgramError::DivideByZero("/".into())),
            ("$x 1 0 % =", ProgramError::DivideByZero("%".into())),
            ("$x 16 3 @ =", ProgramError::BadAlignment(3)),
            ("$x $nope =", ProgramError::Unset("$nope".into())),
            (
                ".cbLocals 4 =",
                ProgramError::NotAssignable(".cbLocals".into()),
            ),
            ("4 4 =", ProgramError::NotAssignable("4".into())),
            ("$x 64 ^ =", ProgramError::Unreadable(64)),
            ("$x 1 2", ProgramError::LeftOver(3)),
            ("$x 1 # =", ProgramError::BadToken("#".into())),
            ("$ 1 =", ProgramError::BadToken("$".into())),
            (
                "$x 99999999999 =",
                ProgramError::BadToken("99999999999".into()),
            ),
        ];
        for (program, want) in cases {
            let mut v = Variables::default();
            assert_eq!(run(program, &mut v).as_ref(), Err(want), "{program}");
        }
        let long = "$x 1 = ".repeat(MAX_TOKENS);
        assert_eq!(
            run(&long, &mut Variables::default()),
            Err(ProgramError::TooLong)
        );
        let many: String = (0..60).map(|i| format!("$t{i} 1 = ")).collect();
        assert_eq!(
            run(&many, &mut Variables::default()),
            Err(ProgramError::TooManyNames)
        );
    }
}
