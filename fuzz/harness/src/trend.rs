//! Trend logs: poolmon `-n` and poolsnap/memsnap snapshots (one parser, the tag log), and
//! typeperf/relog counter logs (CSV or TSV); each parsed log is then analysed alone, as
//! `pooltriage trend` does with one input.

use analyzer::trend::{analyze, counters, detect, tagtable, Source, SourceData, TrendOptions};

fn analyse(data: SourceData) {
    let s = Source {
        name: "log".into(),
        data,
    };
    let _ = analyze(&[s], &TrendOptions::default());
}

pub fn tag_log(data: &[u8]) {
    let _ = detect::detect(data);
    if let Ok(log) = tagtable::parse(std::io::Cursor::new(data.to_vec())) {
        analyse(SourceData::Tags(log));
    }
}

pub fn counter_log(data: &[u8]) {
    let _ = detect::detect(data);
    if let Ok(log) = counters::parse(std::io::Cursor::new(data.to_vec())) {
        analyse(SourceData::Counters(log));
    }
}
