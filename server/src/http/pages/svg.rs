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
            format::bytes(in_use),
            format::bytes(m),
            format::percent(Some(f))
        ),
        _ => format!(
            "{label}: {} in use (maximum unknown)",
            format::bytes(in_use)
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
            value = escape(&format::bytes(total)),
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
        assert!(g.as_str().contains("250 B of 1000 B (25.0%)"));
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
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;.sys: 1 B paged"));
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
}
