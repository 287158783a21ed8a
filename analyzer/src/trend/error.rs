//! What goes wrong reading trend inputs, as typed errors naming the file and line, and the
//! warnings a readable input may still carry.

use thiserror::Error;

/// Why an input cannot be used at all. Each names the line it is about where there is one.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    #[error("line {line}: longer than {max} bytes (not a log line)")]
    LineTooLong { line: usize, max: usize },
    #[error("more than {max} lines: thin the log first (relog FILE -t N -f csv -o OUT)")]
    TooManyLines { max: usize },
    #[error("line {line}: {columns} columns, more than the {max} read")]
    TooManyColumns {
        line: usize,
        columns: usize,
        max: usize,
    },
    #[error("more than {max} samples of pool counters: thin the log first (relog FILE -t N -f csv -o OUT)")]
    TooManySamples { max: usize },
    #[error("more than {max} snapshots")]
    TooManySnapshots { max: usize },
    #[error("line {line}: more than {max} rows in one snapshot")]
    TooManyRows { line: usize, max: usize },
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error(
        "line {line}: time {time} is before the previous sample's {previous}: samples out of order"
    )]
    OutOfOrder {
        line: usize,
        time: String,
        previous: String,
    },
    #[error("line {line}: counters of two machines in one log ({first} and {second})")]
    TwoHosts {
        line: usize,
        first: String,
        second: String,
    },
    #[error("no snapshot: {0}")]
    Empty(String),
    #[error("{0}")]
    NoCounters(String),
    #[error("cannot read: {0}")]
    Io(String),
}

/// Why a set of inputs cannot be analysed together.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TrendError {
    #[error("no input")]
    NoInput,
    #[error("{first} and {second} are not the same machine: {reason}")]
    TwoMachines {
        first: String,
        second: String,
        reason: String,
    },
    #[error("{name}: {reason}")]
    Unusable { name: String, reason: String },
}

/// Warnings of one input, bounded ([`crate::trend::limits::MAX_WARNINGS`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Warnings {
    pub lines: Vec<String>,
    pub dropped: usize,
}

impl Warnings {
    pub fn push(&mut self, w: String) {
        if self.lines.len() < crate::trend::limits::MAX_WARNINGS {
            self.lines.push(w);
        } else {
            self.dropped += 1;
        }
    }

    /// The lines, with one more saying how many were left out.
    pub fn into_lines(self) -> Vec<String> {
        let mut v = self.lines;
        if self.dropped > 0 {
            v.push(format!("{} more warnings left out", self.dropped));
        }
        v
    }
}
