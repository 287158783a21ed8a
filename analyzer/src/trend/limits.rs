//! Every bound the trend inputs are read under, one place, each with its reason. A log is a
//! customer's file: a line, a header or a sample count beyond these is refused with an error
//! naming the line, never read into unbounded memory.

/// Longest line read (bytes). A typeperf header naming every process's pool counters is the
/// longest honest line: 2 000 processes x 2 counters x ~70 bytes is under 300 KiB.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// Most lines read from one log: a typeperf log sampled every second for a year is 31.5 M
/// lines; anything longer is thinned with `relog -t N` first.
pub const MAX_LINES: usize = 64 << 20;

/// Most columns of a typeperf/relog CSV header. Performance Monitor logs of every counter of a
/// busy server reach a few thousand; a million is an attack or another format.
pub const MAX_COLUMNS: usize = 16_384;

/// Most samples (one column's value at one time) kept from counter logs in all: 4 Mi samples
/// of 16 bytes is 64 MiB. Only the pool counters are kept, so this is rows x pool columns.
pub const MAX_COUNTER_SAMPLES: usize = 4 << 20;

/// Most tag snapshots in all (dumps and poolmon/poolsnap snapshots): a snapshot every 5
/// minutes for a month is 8 640.
pub const MAX_SNAPSHOTS: usize = 65_536;

/// Most rows of one tag snapshot: the kernel tracks a few thousand tags (busy servers 8 192
/// tracker entries); a table longer than this is not poolmon's.
pub const MAX_TAGS_PER_SNAPSHOT: usize = 65_536;

/// Most (tag, pool) cells kept over all snapshots (snapshots x tags): 8 Mi cells of 32 bytes
/// is 256 MiB at worst.
pub const MAX_TAG_CELLS: usize = 8 << 20;

/// Longest Mapped_Driver text kept per row (poolmon pads pooltag.txt descriptions; a longer
/// one is cut).
pub const MAX_DRIVER_TEXT: usize = 256;

/// Most warnings kept per input; the rest are counted in one last line.
pub const MAX_WARNINGS: usize = 200;
