//! Inline SVG charts built in Rust (no JavaScript chart library): pool gauges and horizontal
//! bar charts.
//!
//! The markup is assembled here and placed in templates with `|safe`, so THIS module is where
//! dump text (module names, tags) is escaped: every label goes through [`escape`]. An [`Svg`]
//! can only be made by the builders below, which is why templates may trust it.

use super::format;
use std::fmt::{self, Write};

/// SVG markup made by this module's builders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Svg(String);

impl Svg {
    #[cfg(test)]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Svg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// XML escaping for text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0 text at all.
            c if c.is_control() && c != '\t' && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// How full a pool is, for the gauge's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Danger,
    Unknown,
}

impl Level {
    /// Danger when the analyzer says "near exhaustion" (WinDbg's `!vm` rule, one definition in
    /// `analyzer::pool::vm::near_exhaustion`, so the red gauge and the warning always agree) or
    /// the pool is over its maximum; warning from 75%.
    pub fn of(fraction: Option<f64>, near_exhaustion: bool) -> Level {
        match fraction {
            _ if near_exhaustion => Level::Danger,
            Some(f) if f.is_finite() && f > 1.0 => Level::Danger,
            Some(f) if f.is_finite() && f >= 0.75 => Level::Warn,
            Some(f) if f.is_finite() => Level::Ok,
            _ => Level::Unknown,
        }
    }

    fn class(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Danger => "danger",
            Level::Unknown => "unknown",
        }
    }
}

const GAUGE_W: f64 = 320.0;
const GAUGE_H: f64 = 18.0;

/// A horizontal gauge: `in_use` against `max`. Without a maximum the bar is left empty and the
/// caption says so (a fill without a maximum would be invented).
pub fn gauge(label: &str, in_use: u64, max: Option<u64>, near_exhaustion: bool) -> Svg {
    let fraction = match max {
        Some(m) if m > 0 => Some(in_use as f64 / m as f64),
        _ => None,
    };
    let level = Level::of(fraction, near_exhaustion);
    let fill = fraction
        .map(|f| (f.clamp(0.0, 1.0) * GAUGE_W).round())
        .unwrap_or(0.0);
    let caption = match (max, fraction) {
        (Some(m), Some(f)) => format!(
            "{label}: {} of {} ({})",
            format::bytes_short(in_use),
            format::bytes_short(m),
            format::percent(Some(f), "the maximum")
        ),
        _ => format!(
            "{label}: {} in use (maximum unknown)",
            format::bytes_short(in_use)
        ),
    };
    let caption = escape(&caption);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"gauge gauge-{cls}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{caption}\"><title>{caption}</title>\
         <text x=\"0\" y=\"14\" class=\"gauge-caption\">{caption}</text>\
         <rect class=\"gauge-track\" x=\"0\" y=\"22\" width=\"{GAUGE_W}\" height=\"{GAUGE_H}\" rx=\"3\"/>\
         <rect class=\"gauge-fill\" x=\"0\" y=\"22\" width=\"{fill}\" height=\"{GAUGE_H}\" rx=\"3\"/></svg>",
        cls = level.class(),
        w = GAUGE_W,
        h = 22.0 + GAUGE_H,
    );
    Svg(s)
}

/// One bar of a [`bar_chart`]: a label and up to two stacked values (paged, nonpaged).
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub paged: u64,
    pub nonpaged: u64,
}

const BAR_LABEL_W: f64 = 150.0;
const BAR_W: f64 = 330.0;
const BAR_H: f64 = 16.0;
const BAR_GAP: f64 = 6.0;
const BAR_VALUE_W: f64 = 90.0;

/// Horizontal stacked bars (paged, then nonpaged), scaled to the largest total; each bar is
/// followed by its total in bytes. Labels are truncated to 24 characters (the full text is in
/// the bar's `<title>`).
pub fn bar_chart(title: &str, bars: &[Bar]) -> Svg {
    let max_total = bars
        .iter()
        .map(|b| b.paged.saturating_add(b.nonpaged))
        .max()
        .unwrap_or(0);
    let rows = bars.len() as f64;
    let legend_h = 20.0;
    let height = legend_h + rows * (BAR_H + BAR_GAP);
    let width = BAR_LABEL_W + BAR_W + BAR_VALUE_W;
    let title = escape(title);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"bars\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{title}\"><title>{title}</title>\
         <rect class=\"bar-paged\" x=\"{BAR_LABEL_W}\" y=\"4\" width=\"10\" height=\"10\"/>\
         <text x=\"{lx1}\" y=\"13\">paged</text>\
         <rect class=\"bar-nonpaged\" x=\"{lx2}\" y=\"4\" width=\"10\" height=\"10\"/>\
         <text x=\"{lx3}\" y=\"13\">nonpaged</text>",
        lx1 = BAR_LABEL_W + 14.0,
        lx2 = BAR_LABEL_W + 70.0,
        lx3 = BAR_LABEL_W + 84.0,
    );
    for (i, b) in bars.iter().enumerate() {
        let y = legend_h + i as f64 * (BAR_H + BAR_GAP);
        let total = b.paged.saturating_add(b.nonpaged);
        let scale = |v: u64| {
            if max_total == 0 {
                0.0
            } else {
                (v as f64 / max_total as f64 * BAR_W).round()
            }
        };
        let wp = scale(b.paged);
        let wn = scale(total) - wp;
        let short: String = if b.label.chars().count() > 24 {
            b.label
                .chars()
                .take(23)
                .chain(std::iter::once('…'))
                .collect()
        } else {
            b.label.clone()
        };
        let full = escape(&format!(
            "{}: {} paged, {} nonpaged",
            b.label,
            format::bytes(b.paged),
            format::bytes(b.nonpaged)
        ));
        let _ = write!(
            s,
            "<g class=\"bar\"><title>{full}</title>\
             <text class=\"bar-label\" x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>\
             <rect class=\"bar-paged\" x=\"{BAR_LABEL_W}\" y=\"{y}\" width=\"{wp}\" height=\"{BAR_H}\"/>\
             <rect class=\"bar-nonpaged\" x=\"{nx}\" y=\"{y}\" width=\"{wn}\" height=\"{BAR_H}\"/>\
             <text class=\"bar-value\" x=\"{vx}\" y=\"{ty}\">{value}</text></g>",
            lx = BAR_LABEL_W - 6.0,
            ty = y + BAR_H - 4.0,
            label = escape(&short),
            nx = BAR_LABEL_W + wp,
            vx = BAR_LABEL_W + wp + wn + 6.0,
            value = escape(&format::bytes_short(total)),
        );
    }
    s.push_str("</svg>");
    Svg(s)
}

/// Horizontal bars of one series of counts (e.g. dumps per driver), scaled to the largest,
/// each followed by `value_label(count)`. Labels as in [`bar_chart`].
pub fn count_chart(title: &str, bars: &[(String, u64)], value_label: fn(u64) -> String) -> Svg {
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0);
    let height = bars.len() as f64 * (BAR_H + BAR_GAP);
    let width = BAR_LABEL_W + BAR_W + BAR_VALUE_W;
    let title = escape(title);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"bars counts\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{title}\"><title>{title}</title>"
    );
    for (i, (label, count)) in bars.iter().enumerate() {
        let y = i as f64 * (BAR_H + BAR_GAP);
        let w = if max == 0 {
            0.0
        } else {
            (*count as f64 / max as f64 * BAR_W).round()
        };
        let short: String = if label.chars().count() > 24 {
            label.chars().take(23).chain(std::iter::once('…')).collect()
        } else {
            label.clone()
        };
        let value = escape(&value_label(*count));
        let _ = write!(
            s,
            "<g class=\"bar\"><title>{full}: {value}</title>\
             <text class=\"bar-label\" x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>\
             <rect class=\"bar-count\" x=\"{BAR_LABEL_W}\" y=\"{y}\" width=\"{w}\" height=\"{BAR_H}\"/>\
             <text class=\"bar-value\" x=\"{vx}\" y=\"{ty}\">{value}</text></g>",
            full = escape(label),
            lx = BAR_LABEL_W - 6.0,
            ty = y + BAR_H - 4.0,
            label = escape(&short),
            vx = BAR_LABEL_W + w + 6.0,
        );
    }
    s.push_str("</svg>");
    Svg(s)
}

/// One series of a [`line_chart`]: (hours, bytes) points and, optionally, its fitted line's two
/// ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub fit: Option<[(f64, f64); 2]>,
}

const LINE_W: f64 = 640.0;
const LINE_H: f64 = 300.0;
const LINE_LEFT: f64 = 84.0;
const LINE_RIGHT: f64 = 16.0;
const LINE_TOP: f64 = 28.0;
const LINE_BOTTOM: f64 = 36.0;
/// Series drawn, most (their classes `line-0` .. `line-5` colour them).
pub const MAX_LINES: usize = 6;

/// A line chart of bytes over hours: one polyline per series (class `line-N`), its fitted line
/// dashed (class `fit line-N`), axes with five ticks each, a legend under the title. Every
/// label is escaped; the full label of a series is its `<title>`.
pub fn line_chart(title: &str, lines: &[Line]) -> Svg {
    let lines = &lines[..lines.len().min(MAX_LINES)];
    let all = || {
        lines
            .iter()
            .flat_map(|l| l.points.iter().chain(l.fit.iter().flatten()))
    };
    let x_max = all().map(|p| p.0).fold(0.0_f64, f64::max).max(1e-9);
    let y_max = nice_ceiling(all().map(|p| p.1).fold(0.0_f64, f64::max));
    let (pw, ph) = (
        LINE_W - LINE_LEFT - LINE_RIGHT,
        LINE_H - LINE_TOP - LINE_BOTTOM,
    );
    let x = |h: f64| LINE_LEFT + h / x_max * pw;
    let y = |v: f64| LINE_TOP + ph - v.max(0.0) / y_max * ph;
    let title = escape(title);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"lines\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{LINE_W}\" height=\"{LINE_H}\" \
         viewBox=\"0 0 {LINE_W} {LINE_H}\" role=\"img\" aria-label=\"{title}\"><title>{title}</title>\
         <text class=\"chart-title\" x=\"{LINE_LEFT}\" y=\"14\">{title}</text>"
    );
    axes(&mut s, x_max, y_max, &x, &y);
    for (i, l) in lines.iter().enumerate() {
        let pts: Vec<String> = l
            .points
            .iter()
            .map(|&(h, v)| format!("{:.1},{:.1}", x(h), y(v)))
            .collect();
        let label = escape(&l.label);
        let _ = write!(
            s,
            "<g class=\"series\"><title>{label}</title><polyline class=\"line line-{i}\" fill=\"none\" points=\"{}\"/>",
            pts.join(" ")
        );
        if let Some([(h0, v0), (h1, v1)]) = l.fit {
            let _ = write!(
                s,
                "<line class=\"fit line-{i}\" stroke-dasharray=\"4 3\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>",
                x(h0), y(v0), x(h1), y(v1)
            );
        }
        let short: String = l.label.chars().take(40).collect();
        let _ = write!(
            s,
            "<text class=\"legend line-{i}\" x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
            LINE_LEFT + 8.0,
            LINE_TOP + 14.0 + 14.0 * i as f64,
            escape(&short)
        );
    }
    s.push_str("</svg>");
    Svg(s)
}

/// The styles a chart carries when it is a file of its own (the pages style it with
/// static/style.css): the pages' palette.
const STANDALONE_STYLE: &str = "<style>text{font:12px system-ui,sans-serif;fill:#1d2330}\
.axis{stroke:#5b6475}.line{stroke-width:2}.fit{stroke-width:1}\
.line-0{stroke:#3d7dd8;fill:#3d7dd8}.line-1{stroke:#e08a2e;fill:#e08a2e}.line-2{stroke:#2e8540;fill:#2e8540}\
.line-3{stroke:#c62828;fill:#c62828}.line-4{stroke:#7a4fb5;fill:#7a4fb5}.line-5{stroke:#5b6475;fill:#5b6475}\
polyline.line,line.fit{fill:none}.chart-title{font-weight:bold}</style>";

/// A chart as an SVG file: the XML declaration and its styles inside.
pub fn standalone(svg: &Svg) -> String {
    let s = &svg.0;
    let at = s.find('>').map_or(0, |i| i + 1);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}{STANDALONE_STYLE}{}\n",
        &s[..at],
        &s[at..]
    )
}

/// The axes: hours along the bottom, bytes up the left, five ticks each.
fn axes(s: &mut String, x_max: f64, y_max: f64, x: &dyn Fn(f64) -> f64, y: &dyn Fn(f64) -> f64) {
    let (x0, y0) = (x(0.0), y(0.0));
    let _ = write!(
        s,
        "<line class=\"axis\" x1=\"{x0}\" y1=\"{y0}\" x2=\"{:.1}\" y2=\"{y0}\"/>\
         <line class=\"axis\" x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{LINE_TOP}\"/>",
        x(x_max)
    );
    for k in 0..=4 {
        let (h, v) = (x_max * k as f64 / 4.0, y_max * k as f64 / 4.0);
        let _ = write!(
            s,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.1} h</text>\
             <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x(h),
            y0 + 16.0,
            h,
            LINE_LEFT - 6.0,
            y(v) + 4.0,
            escape(&format::bytes_short(v.round() as u64))
        );
    }
}

/// The next 1, 2 or 5 times a power of ten at or above `v` (a chart's top).
fn nice_ceiling(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numeric attribute `name` of every element that has it, in document order.
    fn attrs(svg: &str, element_class: &str, name: &str) -> Vec<f64> {
        svg.split('<')
            .filter(|el| el.contains(&format!("class=\"{element_class}\"")))
            .filter_map(|el| {
                let start = el.find(&format!(" {name}=\""))? + name.len() + 3;
                let rest = el.get(start..)?;
                rest.get(..rest.find('"')?)?.parse().ok()
            })
            .collect()
    }

    #[test]
    fn escape_covers_markup_and_attribute_quotes() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(escape("a\u{0}b"), "a\u{fffd}b");
    }

    #[test]
    fn gauge_fill_is_the_fraction_of_the_track() {
        let g = gauge("Paged pool", 250, Some(1000), false);
        assert_eq!(attrs(g.as_str(), "gauge-fill", "width"), [80.0]);
        assert_eq!(attrs(g.as_str(), "gauge-track", "width"), [GAUGE_W]);
        assert!(g.as_str().contains("gauge-ok"));
        assert!(g
            .as_str()
            .contains("250 bytes of 1000 bytes (25.0 % of the maximum)"));
        // Over the maximum: clamped to the track, flagged as danger.
        let g = gauge("Paged pool", 2000, Some(1000), false);
        assert_eq!(attrs(g.as_str(), "gauge-fill", "width"), [GAUGE_W]);
        assert!(g.as_str().contains("gauge-danger"));
        // 80% and 94% without the analyzer's near-exhaustion flag: warning; near exhaustion
        // wins over a low fraction.
        for in_use in [80, 94] {
            assert!(gauge("p", in_use, Some(100), false)
                .as_str()
                .contains("gauge-warn"));
        }
        assert!(gauge("p", 10, Some(100), true)
            .as_str()
            .contains("gauge-danger"));
    }

    #[test]
    fn gauge_without_a_maximum_invents_no_fill() {
        for max in [None, Some(0)] {
            let g = gauge("Nonpaged pool", 4096, max, false);
            assert_eq!(attrs(g.as_str(), "gauge-fill", "width"), [0.0]);
            assert!(g.as_str().contains("4.00 KiB in use (maximum unknown)"));
            assert!(g.as_str().contains("gauge-unknown"));
        }
    }

    #[test]
    fn bars_scale_to_the_largest_total_and_stack() {
        let bars = [
            Bar {
                label: "big.sys".into(),
                paged: 300,
                nonpaged: 100,
            },
            Bar {
                label: "half.sys".into(),
                paged: 0,
                nonpaged: 200,
            },
            Bar {
                label: "none.sys".into(),
                paged: 0,
                nonpaged: 0,
            },
        ];
        let c = bar_chart("Top drivers", &bars);
        let paged = attrs(c.as_str(), "bar-paged", "width");
        let nonpaged = attrs(c.as_str(), "bar-nonpaged", "width");
        // The first of each class is the legend swatch (10 wide).
        assert_eq!(paged, [10.0, 247.5_f64.round(), 0.0, 0.0]);
        assert_eq!(nonpaged, [10.0, 330.0 - 248.0, 165.0, 0.0]);
        // Bars go down the chart one row each.
        let ys = attrs(c.as_str(), "bar-paged", "y");
        assert_eq!(ys, [4.0, 20.0, 42.0, 64.0]);
    }

    #[test]
    fn hostile_labels_are_escaped_and_truncated() {
        let c = bar_chart(
            "<b>t</b>",
            &[Bar {
                label: "<script>alert(1)</script>.sys".into(),
                paged: 1,
                nonpaged: 0,
            }],
        );
        assert!(!c.as_str().contains("<script"));
        assert!(!c.as_str().contains("<b>"));
        assert!(c.as_str().contains("&lt;script&gt;alert(1)&lt;/scrip…"));
        assert!(c
            .as_str()
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;.sys: 1 byte paged"));
        let g = gauge("\"><script>", 1, Some(2), false);
        assert!(!g.as_str().contains("<script"));
        assert!(g.as_str().contains("&quot;&gt;&lt;script&gt;"));
    }

    #[test]
    fn count_bars_scale_to_the_largest_and_escape() {
        let bars = [
            ("<x>.sys".to_string(), 4),
            ("b.sys".to_string(), 1),
            ("c.sys".to_string(), 0),
        ];
        let c = count_chart("Verdicts", &bars, |n| format!("{n} dumps"));
        assert_eq!(attrs(c.as_str(), "bar-count", "width"), [330.0, 83.0, 0.0]);
        assert_eq!(attrs(c.as_str(), "bar-count", "y"), [0.0, 22.0, 44.0]);
        assert!(c.as_str().contains("&lt;x&gt;.sys: 4 dumps"));
        assert!(!c.as_str().contains("<x>"));
        let empty = count_chart("none", &[], |n| n.to_string());
        assert!(empty.as_str().ends_with("</svg>"));
    }

    #[test]
    fn empty_chart_is_valid() {
        let c = bar_chart("nothing", &[]);
        assert!(c.as_str().starts_with("<svg") && c.as_str().ends_with("</svg>"));
    }

    #[test]
    fn line_chart_escapes_and_scales() {
        let svg = line_chart(
            "pool <&> growth",
            &[Line {
                label: "Leak \"x\" <tag>".into(),
                points: vec![(0.0, 0.0), (2.0, 1000.0), (4.0, 2000.0)],
                fit: Some([(0.0, 0.0), (4.0, 2000.0)]),
            }],
        );
        let s = svg.as_str();
        assert!(s.contains("pool &lt;&amp;&gt; growth"));
        assert!(s.contains("Leak &quot;x&quot; &lt;tag&gt;"));
        assert!(!s.contains("<tag>"));
        // Top of the axis is 2000 (nice ceiling), the last point at the plot's top right.
        assert!(s.contains(&format!("{:.1},{:.1}", LINE_W - LINE_RIGHT, LINE_TOP)));
        assert_eq!(nice_ceiling(1234.0), 2000.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
    }
}
