//! Reads every stored physical page of a dump and prints the page count and a checksum
//! (wrapping sum of the little-endian u64 words of all pages). The benchmark runs this side by
//! side with kdmp-parser reading the same pages; the checksums must agree.
//!
//! Usage: cargo run --release -p pooltriage-analyzer --example read_all_pages -- DUMP

use std::process::ExitCode;
use std::time::Instant;

use analyzer::dump::Dump;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: read_all_pages DUMP");
        return ExitCode::from(2);
    };
    let start = Instant::now();
    let dump = match Dump::open(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let opened = start.elapsed();
    dump.advise_sequential();
    let mut pages = 0u64;
    let mut sum = 0u64;
    // Pages already read are released from the resident set as the scan goes (Dump::release),
    // so a full read of a dump larger than memory keeps its resident memory bounded.
    dump.for_each_stored_page(|_pfn, page| {
        for w in page.chunks_exact(8) {
            sum = sum.wrapping_add(u64::from_le_bytes([
                w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
            ]));
        }
        pages += 1;
    });
    if pages != dump.stored_page_count() {
        eprintln!(
            "error: read {pages} pages, the dump says it stores {}",
            dump.stored_page_count()
        );
        return ExitCode::from(1);
    }
    println!("format: {}", dump.format());
    println!("pages: {pages}");
    println!("checksum: {sum:#018x}");
    eprintln!(
        "open: {:.3}s, total: {:.3}s",
        opened.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
