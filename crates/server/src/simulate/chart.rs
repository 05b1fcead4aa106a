//! The simulation's chart, as one SVG image: messages per day (bars stacked by channel) above
//! the funnel (enrollments that entered each node). Plain SVG that any browser or image viewer
//! shows; no I/O here.

use std::fmt::Write;

const WIDTH: f64 = 900.0;
const MARGIN: f64 = 60.0;
const DAYS_HEIGHT: f64 = 260.0;
const ROW: f64 = 24.0;
const COLOURS: [&str; 3] = ["#2f6fde", "#e08a1e", "#6a9f3a"];
const CHANNELS: [&str; 3] = ["email", "sms", "webhook"];

/// One funnel row: a node and how many entered it.
pub struct FunnelRow<'a> {
    pub node: &'a str,
    pub kind: &'a str,
    pub entered: i64,
}

/// `days[d][c]`: messages sent on day `d` on channel `c` (email, SMS, webhook); `day_labels`
/// names each day (`12-01`).
pub fn svg(
    title: &str,
    days: &[[u64; 3]],
    day_labels: &[String],
    funnel: &[FunnelRow<'_>],
) -> String {
    let funnel_top = MARGIN + DAYS_HEIGHT + 70.0;
    let height = funnel_top + ROW * funnel.len() as f64 + MARGIN;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = write!(
        s,
        r#"<text x="{MARGIN}" y="24" font-size="16" font-weight="bold">{}</text>"#,
        escape(title)
    );

    // Messages per day.
    let top = MARGIN;
    let plot_width = WIDTH - 2.0 * MARGIN;
    let max = days
        .iter()
        .map(|d| d.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let _ = write!(
        s,
        r#"<text x="{MARGIN}" y="{}" font-weight="bold">Messages sent per day</text>"#,
        top - 8.0
    );
    let axis_y = top + DAYS_HEIGHT;
    let _ = write!(
        s,
        r##"<line x1="{MARGIN}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#444"/>"##,
        WIDTH - MARGIN
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end">{max}</text><text x="{}" y="{axis_y}" text-anchor="end">0</text>"#,
        MARGIN - 6.0,
        top + 4.0,
        MARGIN - 6.0
    );
    let slot = plot_width / days.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    let label_every = (days.len() / 10).max(1);
    for (d, counts) in days.iter().enumerate() {
        let x = MARGIN + slot * d as f64 + (slot - bar) / 2.0;
        let mut y = axis_y;
        for (c, n) in counts.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            let h = DAYS_HEIGHT * *n as f64 / max as f64;
            y -= h;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}" fill="{}"><title>{}: {n} {}</title></rect>"#,
                COLOURS[c],
                escape(day_labels.get(d).map_or("", String::as_str)),
                CHANNELS[c]
            );
        }
        if d % label_every == 0 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x + bar / 2.0,
                axis_y + 16.0,
                escape(day_labels.get(d).map_or("", String::as_str))
            );
        }
    }
    for (c, name) in CHANNELS.iter().enumerate() {
        let x = WIDTH - MARGIN - 240.0 + 80.0 * c as f64;
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{name}</text>"#,
            top - 18.0,
            COLOURS[c],
            x + 14.0,
            top - 8.0
        );
    }

    // The funnel.
    let _ = write!(
        s,
        r#"<text x="{MARGIN}" y="{}" font-weight="bold">Entered per node</text>"#,
        funnel_top - 10.0
    );
    let widest = funnel.iter().map(|r| r.entered).max().unwrap_or(0).max(1);
    let label_width = 200.0;
    let bars_width = plot_width - label_width - 80.0;
    for (i, row) in funnel.iter().enumerate() {
        let y = funnel_top + ROW * i as f64;
        let w = bars_width * row.entered.max(0) as f64 / widest as f64;
        let _ = write!(
            s,
            r##"<text x="{MARGIN}" y="{:.1}">{} <tspan fill="#777">{}</tspan></text><rect x="{:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="#2f6fde"/><text x="{:.1}" y="{:.1}">{}</text>"##,
            y + 15.0,
            escape(row.node),
            escape(row.kind),
            MARGIN + label_width,
            ROW - 6.0,
            MARGIN + label_width + w + 6.0,
            y + 15.0,
            row.entered
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_draws_a_bar_per_channel_and_day_and_a_row_per_node() {
        let svg = svg(
            "Cart <test>",
            &[[3, 1, 0], [0, 0, 0], [6, 0, 2]],
            &["12-01".into(), "12-02".into(), "12-03".into()],
            &[
                FunnelRow {
                    node: "added",
                    kind: "trigger",
                    entered: 10,
                },
                FunnelRow {
                    node: "mail",
                    kind: "send_email",
                    entered: 5,
                },
            ],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("Cart &lt;test&gt;"));
        // Four non-empty bars: day 1 email and SMS, day 3 email and webhook.
        assert_eq!(svg.matches("<title>").count(), 4);
        assert!(svg.contains("<title>12-03: 6 email</title>"));
        // The tallest day (8) fills the plot's 260 pixels: 6 emails take 195 of them.
        assert!(svg.contains(r##"height="195.0" fill="#2f6fde"><title>12-03: 6 email"##));
        assert!(svg.contains(r##"height="65.0" fill="#6a9f3a"><title>12-03: 2 webhook"##));
        assert!(svg.contains(">added <tspan"));
        assert!(svg.contains(">10</text>"));
    }
}
