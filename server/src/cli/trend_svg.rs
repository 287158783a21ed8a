//! `trend --svg DIR`: the trend as SVG files, drawn as the service's system page draws them
//! (server/src/http/pages/trend_charts.rs, every label escaped): `pool-paged.svg`,
//! `pool-nonpaged.svg` and `tags.svg`, the fastest-growing tags.

use crate::http::pages::svg::{line_chart, standalone, Svg};
use crate::http::pages::trend_charts::{pool_chart, tags_chart};
use analyzer::report::analysis::PoolName;
use analyzer::report::trend::TrendReport;
use std::path::Path;

pub fn write_all(dir: &Path, r: &TrendReport) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for pool in [PoolName::Paged, PoolName::Nonpaged] {
        write(
            dir,
            &format!("pool-{}.svg", pool.as_str()),
            &pool_chart(r, pool),
        )?;
    }
    let tags = tags_chart(r).unwrap_or_else(|| line_chart("Fastest-growing tags (bytes)", &[]));
    write(dir, "tags.svg", &tags)
}

fn write(dir: &Path, name: &str, chart: &Svg) -> Result<(), String> {
    let path = dir.join(name);
    std::fs::write(&path, standalone(chart)).map_err(|e| format!("{}: {e}", path.display()))
}
