//! READMEs to safe HTML, at generation time: Markdown through `pulldown-cmark`, then
//! `ammonia`'s allow-list sanitizer, so nothing a README holds (raw `<script>`, event
//! handler attributes, `javascript:` links) survives into a page.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// `markdown` as sanitized HTML. Headings move down so the README's top level is an
/// `<h3>`: the page's `<h1>` is the repository's name and `<h2>` its "README" section.
pub fn to_safe_html(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES;
    let events: Vec<Event> = Parser::new_ext(markdown, options).collect();
    let top = events
        .iter()
        .filter_map(|event| match event {
            Event::Start(Tag::Heading { level, .. }) => Some(*level as usize),
            _ => None,
        })
        .min()
        .unwrap_or(1);
    let shift = 3usize.saturating_sub(top);
    let events = events.into_iter().map(|event| match event {
        Event::Start(Tag::Heading {
            level,
            id,
            classes,
            attrs,
        }) => Event::Start(Tag::Heading {
            level: moved(level, shift),
            id,
            classes,
            attrs,
        }),
        Event::End(TagEnd::Heading(level)) => Event::End(TagEnd::Heading(moved(level, shift))),
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&html)
        .to_string()
}

fn moved(level: HeadingLevel, shift: usize) -> HeadingLevel {
    HeadingLevel::try_from((level as usize + shift).min(6)).unwrap_or(HeadingLevel::H6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_with_headings_under_the_readme_section() {
        let html =
            to_safe_html("# Title\n\nSome *text* and `code`.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n");
        assert!(html.contains("<h3>Title</h3>"), "{html}");
        assert!(html.contains("<em>text</em>"), "{html}");
        assert!(html.contains("<table>"), "{html}");
    }

    #[test]
    fn heading_levels_keep_their_order_whatever_the_readme_starts_with() {
        let html = to_safe_html("## Usage\n\n### Flags\n");
        assert!(
            html.contains("<h3>Usage</h3>") && html.contains("<h4>Flags</h4>"),
            "{html}"
        );
    }

    #[test]
    fn injection_attempts_are_removed() {
        let html = to_safe_html(concat!(
            "<script>window.pwned = 1</script>\n\n",
            "<img src=x onerror=\"window.pwned = 2\">\n\n",
            "[click](javascript:window.pwned=3) ",
            "<a href=\"javascript:alert(1)\">raw</a> ",
            "<iframe src=\"https://example.com\"></iframe>",
            "<div style=\"background:url(javascript:x)\" onclick=\"x()\">d</div>\n"
        ));
        for forbidden in [
            "<script",
            "onerror",
            "javascript:",
            "<iframe",
            "onclick",
            "style=",
        ] {
            assert!(!html.contains(forbidden), "{forbidden} survived: {html}");
        }
    }
}
