//! Charts drawn on the server as inline SVG, shared by every page that charts something.
//!
//! - [`time_chart`]: one or more series over the same time buckets, as lines (optionally
//!   filled as areas), with a legend, a y axis rounded to a readable maximum, and a few time
//!   labels;
//! - [`bar_chart`]: named values as horizontal bars, each labelled with its value.
//!
//! Every point and bar carries a `<title>` (the browser shows its numbers on hover) and
//! `data-` attributes with the exact value, and a time chart is followed by a table of the
//! same numbers, so that nothing is only in the picture. Every label is escaped.

use std::fmt::Write as _;

use super::escape;

/// Series colors, in order.
const COLORS: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f",
];

/// One named series of a [`time_chart`]: a value per time bucket.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) values: Vec<f64>,
}

/// How a [`time_chart`] draws its series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    /// Lines with a dot per value.
    Line,
    /// Lines over a lightly filled area.
    Area,
}

/// A value as people read it: whole numbers without decimals, others with up to two.
pub(crate) fn number(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    if (v - v.round()).abs() < 1e-9 {
        return format!("{}", v.round() as i64);
    }
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The smallest 1, 2 or 5 times a power of ten at or above `v` (at least 1).
fn nice_max(v: f64) -> f64 {
    if !v.is_finite() || v <= 1.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// Series over time buckets labelled `labels` (each series has one value per label), as an
/// SVG with a legend, followed by a table of the numbers. `id` names the chart's elements
/// (`{id}` on the SVG, `{id}-table` on the table); `unit` says what the values count.
pub(crate) fn time_chart(
    id: &str,
    labels: &[String],
    series: &[Series],
    unit: &str,
    style: Style,
) -> String {
    let mut out = String::new();
    let id = escape(id);
    let _ = write!(
        out,
        "<div class=\"chart\" id=\"{id}-chart\"><p class=\"legend\">"
    );
    for (i, s) in series.iter().enumerate() {
        let _ = write!(
            out,
            "<span class=\"key\" style=\"border-left:14px solid {};padding-left:4px;margin-right:1em\">{}</span>",
            COLORS[i % COLORS.len()],
            escape(&s.name)
        );
    }
    out.push_str("</p>");
    let max = nice_max(
        series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max),
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let n = labels.len();
    // Points are inset from the plot's edges, so that their labels fit under them.
    const INSET: f64 = 36.0;
    let x = |i: usize| {
        if n <= 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + INSET + (plot_w - 2.0 * INSET) * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| TOP + plot_h - (v.max(0.0) / max) * plot_h;
    let _ = write!(
        out,
        "<svg id=\"{id}\" class=\"time-chart\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"{}\">",
        escape(unit)
    );
    for k in 0..=4 {
        let v = max * f64::from(k) / 4.0;
        let yy = y(v);
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e4e4e4\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#666\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            number(v)
        );
    }
    // At most eight time labels, evenly spread, the last one included.
    let step = n.div_ceil(8).max(1);
    for (i, label) in labels.iter().enumerate() {
        // The last label always, and no other too close to it.
        if i + 1 == n || (i % step == 0 && i + step / 2 < n - 1) {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#666\">{}</text>",
                x(i),
                HEIGHT - 8.0,
                escape(label)
            );
        }
    }
    for (si, s) in series.iter().enumerate() {
        let color = COLORS[si % COLORS.len()];
        let points: Vec<String> = s
            .values
            .iter()
            .take(n)
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            out,
            "<g class=\"series\" data-series=\"{}\">",
            escape(&s.name)
        );
        if style == Style::Area && points.len() > 1 {
            let _ = write!(
                out,
                "<polygon points=\"{:.1},{:.1} {} {:.1},{:.1}\" fill=\"{color}\" fill-opacity=\"0.12\" stroke=\"none\"/>",
                x(0),
                y(0.0),
                points.join(" "),
                x(points.len() - 1),
                y(0.0)
            );
        }
        let _ = write!(
            out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
            points.join(" ")
        );
        for (i, v) in s.values.iter().take(n).enumerate() {
            let label = labels.get(i).map_or("", String::as_str);
            let _ = write!(
                out,
                "<circle class=\"point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{color}\" data-x=\"{}\" data-value=\"{}\">\
                 <title>{} · {}: {} {}</title></circle>",
                x(i),
                y(*v),
                escape(label),
                number(*v),
                escape(&s.name),
                escape(label),
                number(*v),
                escape(unit)
            );
        }
        out.push_str("</g>");
    }
    let _ = write!(
        out,
        "</svg><details><summary>Numbers</summary><table class=\"chart-data\" id=\"{id}-table\"><tr><th>time</th>"
    );
    for s in series {
        let _ = write!(out, "<th>{}</th>", escape(&s.name));
    }
    out.push_str("</tr>");
    for (i, label) in labels.iter().enumerate() {
        let _ = write!(out, "<tr><td>{}</td>", escape(label));
        for s in series {
            let _ = write!(
                out,
                "<td>{}</td>",
                number(s.values.get(i).copied().unwrap_or(0.0))
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</table></details></div>");
    out
}

/// Named values as horizontal bars, longest first as given, each labelled with its value
/// (and `unit` on hover). `id` names the SVG.
pub(crate) fn bar_chart(id: &str, bars: &[(String, f64)], unit: &str) -> String {
    const LABEL: f64 = 240.0;
    const BAR: f64 = 440.0;
    const ROW: f64 = 22.0;
    let max = bars
        .iter()
        .map(|(_, v)| *v)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let height = ROW * bars.len() as f64 + 8.0;
    let mut out = format!(
        "<svg id=\"{}\" class=\"bar-chart\" width=\"{}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"{}\">",
        escape(id),
        LABEL + BAR + 80.0,
        escape(unit)
    );
    for (i, (name, v)) in bars.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        let w = if v.is_finite() {
            (v.max(0.0) / max * BAR).max(1.0)
        } else {
            1.0
        };
        let _ = write!(
            out,
            "<g class=\"bar\" data-name=\"{}\" data-value=\"{}\"><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"16\" fill=\"{}\"><title>{}: {} {}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
            escape(name),
            number(*v),
            LABEL - 8.0,
            y + 12.0,
            escape(&truncate(name, 34)),
            COLORS[0],
            escape(name),
            number(*v),
            escape(unit),
            LABEL + w + 6.0,
            y + 12.0,
            number(*v)
        );
    }
    out.push_str("</svg>");
    out
}

/// `s` cut to `n` characters, with an ellipsis when cut.
pub(crate) fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(n).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_axes_read_well() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(1.0 / 3.0), "0.33");
        assert_eq!(number(f64::NAN), "0");
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(13.0), 20.0);
        assert_eq!(nice_max(41.0), 50.0);
    }

    #[test]
    fn labels_are_escaped_and_numbers_are_in_the_table() {
        let evil = "<script>alert(1)</script>";
        let svg = time_chart(
            "c",
            &["t1".into(), evil.into()],
            &[Series {
                name: evil.into(),
                values: vec![1.0, 2.0],
            }],
            "users",
            Style::Area,
        );
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains("<td>2</td>"));
        assert!(svg.contains("data-value=\"2\""));
        let bars = bar_chart("b", &[(evil.into(), 5.0)], "users");
        assert!(!bars.contains("<script>") && bars.contains("data-value=\"5\""));
        // No data: still a valid chart.
        let empty = time_chart("e", &[], &[], "users", Style::Line);
        assert!(empty.contains("</svg>"));
    }
}
