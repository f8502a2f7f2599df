//! The colours of the overview page, one set a status, coloured like the dashboard (failed red,
//! drifted orange, apply_needed yellow, provisioning and destroying blue, active green, inactive
//! grey). Kept here rather than in the stylesheet so that a test can check every text colour
//! against the background it is drawn on (WCAG AA: 4.5:1).

use std::fmt::Write as _;

use crate::model::Status;

/// The colours of one status: `accent` marks (stripes, dots: decoration, the status is always in
/// text beside them), `text` is drawn on `tint` (badges) and on white (card labels).
#[derive(Clone, Copy, Debug)]
pub struct Colours {
    pub accent: &'static str,
    pub tint: &'static str,
    pub text: &'static str,
}

pub fn colours(status: Status) -> Colours {
    const BLUE: Colours = Colours {
        accent: "#2563eb",
        tint: "#e8f0fe",
        text: "#1e40af",
    };
    match status {
        Status::Destroying | Status::Provisioning => BLUE,
        Status::Failed => Colours {
            accent: "#dc2626",
            tint: "#fdecec",
            text: "#991b1b",
        },
        Status::Drifted => Colours {
            accent: "#ea7a0c",
            tint: "#fff1e3",
            text: "#9a3412",
        },
        Status::ApplyNeeded => Colours {
            accent: "#eab308",
            tint: "#fef8d8",
            text: "#854d0e",
        },
        Status::Active => Colours {
            accent: "#16a34a",
            tint: "#e7f6ec",
            text: "#166534",
        },
        Status::Inactive => Colours {
            accent: "#9ca3af",
            tint: "#eef0f3",
            text: "#4b5563",
        },
    }
}

/// Page background, surfaces, body text and secondary text.
pub const BACKGROUND: &str = "#f5f6f8";
pub const SURFACE: &str = "#ffffff";
pub const TEXT: &str = "#1f2937";
pub const MUTED: &str = "#5b6472";
pub const LINK: &str = "#1d4ed8";

/// CSS custom properties for the stylesheet: `--bg`, `--text`, ..., and per status
/// `--failed-accent`, `--failed-tint`, `--failed-text`.
pub fn css_variables() -> String {
    let mut out = format!(":root{{--bg:{BACKGROUND};--surface:{SURFACE};--text:{TEXT};--muted:{MUTED};--link:{LINK};");
    for status in Status::ALL {
        let c = colours(status);
        let s = status.as_str();
        let _ = write!(
            out,
            "--{s}-accent:{};--{s}-tint:{};--{s}-text:{};",
            c.accent, c.tint, c.text
        );
    }
    out.push_str("}\n");
    out
}

/// The WCAG contrast ratio of two `#rrggbb` colours (the tests hold the palette to AA with it).
#[cfg(test)]
fn contrast(a: &str, b: &str) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

#[cfg(test)]
fn luminance(hex: &str) -> f64 {
    let channel = |i: usize| {
        let v = f64::from(u8::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).unwrap_or(0)) / 255.0;
        if v <= 0.03928 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AA: f64 = 4.5;

    #[test]
    fn contrast_of_black_on_white_is_21() {
        assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 1e-9);
        assert!((contrast("#777777", "#777777") - 1.0).abs() < 1e-9);
    }

    #[test]
    fn every_status_text_passes_aa_on_its_tint_on_white_and_on_the_page() {
        for status in Status::ALL {
            let c = colours(status);
            for background in [c.tint, SURFACE, BACKGROUND] {
                let ratio = contrast(c.text, background);
                assert!(ratio >= AA, "{status}: {} on {background} is {ratio:.2}:1", c.text);
            }
        }
    }

    #[test]
    fn body_muted_and_link_text_pass_aa() {
        for fg in [TEXT, MUTED, LINK] {
            for bg in [SURFACE, BACKGROUND] {
                let ratio = contrast(fg, bg);
                assert!(ratio >= AA, "{fg} on {bg} is {ratio:.2}:1");
            }
        }
    }
}
