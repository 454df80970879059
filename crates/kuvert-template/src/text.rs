//! The text part of a copy, from its HTML, when the template gives none.
//!
//! Our own small reader, not an HTML parser crate: it needs no tree, only the text in reading
//! order with paragraphs, line breaks, list items and each link's address, and it must be
//! linear in the HTML whatever the HTML is (it is fuzzed). MJML's output is mostly layout
//! tables; the head, styles, scripts and comments (Outlook's conditional ones too) carry no
//! text.

/// Elements whose content is not text.
const SKIP: &[&str] = &["head", "style", "script", "title", "template"];
/// Elements that end a paragraph.
const PARAGRAPH: &[&str] = &[
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "ul",
    "ol",
    "blockquote",
    "pre",
    "hr",
];
/// Elements that end a line.
const LINE: &[&str] = &["br", "div", "tr", "li", "dd", "dt", "section", "article"];

pub fn html_to_text(html: &str) -> String {
    let mut w = Writer::default();
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        w.text(&rest[..lt]);
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |e| &after[e + 3..]);
            continue;
        }
        let gt = match tag_end(rest) {
            TagEnd::At(gt) => gt,
            TagEnd::NoTag => {
                w.text("<");
                rest = &rest[1..];
                continue;
            }
            // No '>' follows: the rest is text (reading on from each '<' after it would be
            // quadratic).
            TagEnd::Never => break,
        };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let (closing, tag) = match tag.strip_prefix('/') {
            Some(t) => (true, t),
            None => (false, tag),
        };
        let name_len = tag
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(tag.len());
        if name_len == 0 {
            continue; // <!doctype>, <?xml?> and the like
        }
        let name = tag[..name_len].to_ascii_lowercase();
        if !closing && SKIP.contains(&name.as_str()) {
            // Skip to the end tag (or to the end, if there is none).
            let close = format!("</{name}");
            rest = find_ignore_case(rest, &close).map_or("", |i| {
                rest[i..].find('>').map_or("", |e| &rest[i + e + 1..])
            });
            continue;
        }
        match name.as_str() {
            "a" if !closing => w.link_start(attribute(tag, "href")),
            "a" => w.link_end(),
            "li" if !closing => {
                w.line();
                w.raw("- ");
            }
            "img" if !closing => {
                if let Some(alt) = attribute(tag, "alt") {
                    w.text(&alt);
                }
            }
            "td" | "th" => w.space(),
            n if PARAGRAPH.contains(&n) => w.paragraph(),
            n if LINE.contains(&n) => w.line(),
            _ => {}
        }
    }
    w.text(rest);
    w.finish()
}

enum TagEnd {
    At(usize),
    /// The '<' opens no tag: it is text.
    NoTag,
    /// A tag that the text ends before its '>'.
    Never,
}

/// Where the tag that starts `s` (at its '<') ends.
fn tag_end(s: &str) -> TagEnd {
    let Some(next) = s[1..].chars().next() else {
        return TagEnd::NoTag;
    };
    if !(next.is_ascii_alphabetic() || next == '/' || next == '!' || next == '?') {
        return TagEnd::NoTag;
    }
    // Quoted attribute values (after '=') may hold '>'.
    let mut quote = None;
    let mut last = ' ';
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (None, '>') => return TagEnd::At(i),
            (None, '"' | '\'') if last == '=' => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
        if !c.is_whitespace() {
            last = c;
        }
    }
    TagEnd::Never
}

fn find_ignore_case(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    // The needle starts with '<' and has no letter repeated at a shift that matters much: a
    // plain scan from each '<' keeps this linear in practice (each '<' compares at most the
    // needle's length).
    (0..=h.len() - n.len())
        .filter(|&i| h[i] == b'<')
        .find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// The value of attribute `name` in a tag's inside (`a href="x" ...`), entities decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok = at > 0 && lower.as_bytes()[at - 1].is_ascii_whitespace();
        let after = lower[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value_at = tag.len() - after.len() + 1;
        let value = tag[value_at..].trim_start();
        let raw = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or_default(),
            _ => value
                .split(|c: char| c.is_ascii_whitespace() || c == '>')
                .next()
                .unwrap_or_default(),
        };
        return Some(decode(raw));
    }
    None
}

/// Decodes the character references mail HTML uses; others stay as written.
fn decode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest
            .char_indices()
            .take(12)
            .find(|(_, c)| *c == ';')
            .map(|(i, _)| i);
        let decoded = end.and_then(|e| {
            let entity = &rest[1..e];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                    .ok()
                    .and_then(char::from_u32),
                e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[derive(Default)]
struct Writer {
    out: String,
    space: bool,
    /// The link being read: its address and where its text starts in `out`.
    link: Option<(String, usize)>,
}

impl Writer {
    fn at_line_start(&self) -> bool {
        self.out.is_empty() || self.out.ends_with('\n')
    }

    fn text(&mut self, html: &str) {
        if html.is_empty() {
            return;
        }
        for c in decode(html).chars() {
            if c.is_whitespace() {
                self.space = true;
            } else {
                if self.space && !self.at_line_start() {
                    self.out.push(' ');
                }
                self.space = false;
                self.out.push(c);
            }
        }
    }

    fn raw(&mut self, s: &str) {
        self.out.push_str(s);
        self.space = false;
    }

    fn space(&mut self) {
        self.space = true;
    }

    fn line(&mut self) {
        self.breaks(1);
    }

    fn paragraph(&mut self) {
        self.breaks(2);
    }

    /// Ends the line so that `n` line breaks end the text (never more: layout tables nest).
    fn breaks(&mut self, n: usize) {
        self.space = false;
        while self.out.ends_with(' ') {
            self.out.pop();
        }
        if self.out.is_empty() {
            return;
        }
        let have = self.out.len() - self.out.trim_end_matches('\n').len();
        for _ in have..n {
            self.out.push('\n');
        }
    }

    fn link_start(&mut self, href: Option<String>) {
        self.link = href.map(|h| (h, self.out.len()));
    }

    fn link_end(&mut self) {
        let Some((href, start)) = self.link.take() else {
            return;
        };
        let href = href.trim();
        if href.is_empty() || href.starts_with('#') {
            return;
        }
        let shown = self.out.get(start..).unwrap_or_default().trim();
        let bare = href.strip_prefix("mailto:").unwrap_or(href);
        if shown == href || shown == bare {
            return;
        }
        if shown.is_empty() {
            self.text(bare);
        } else {
            self.out.push_str(" (");
            self.out.push_str(bare);
            self.out.push(')');
        }
        self.space = false;
    }

    fn finish(self) -> String {
        let mut out = String::with_capacity(self.out.len());
        for line in self.out.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_links_and_lists() {
        let html = r#"<!doctype html><html><head><title>T</title><style>p{color:red}</style></head>
<body><!--[if mso]><table><tr><td><![endif]-->
<h1>Hello&nbsp;Ada</h1><p>Read   <a href="https://a.example/x?y=1&amp;z=2">the news</a>.<br>Bye</p>
<ul><li>one</li><li>two</li></ul><p><a href="https://b.example/">https://b.example/</a>
<a href="mailto:x@y.example">x@y.example</a> <img src="i.png" alt="Logo"> 3 &lt; 4 &#x263A; &bogus;</p>
<table><tr><td>a</td><td>b</td></tr></table></body></html>"#;
        assert_eq!(
            html_to_text(html),
            "Hello Ada\n\nRead the news (https://a.example/x?y=1&z=2).\nBye\n\n- one\n- two\n\nhttps://b.example/ x@y.example Logo 3 < 4 \u{263A} &bogus;\n\na b"
        );
    }

    #[test]
    fn odd_input_is_text_not_a_panic() {
        for s in [
            "<",
            "a < b",
            "<a href=\"x",
            "<style>",
            "<!--",
            "&",
            "&#xFFFFFFFF;",
            "<a>x</a>",
            "</a>",
            "<a href=#top>top</a>",
            "é<é>é",
            "<p>\u{0}</p>",
        ] {
            let _ = html_to_text(s);
        }
        assert_eq!(html_to_text("a < b"), "a < b");
        // A quote in text is no attribute value: the text after it stays.
        assert_eq!(html_to_text("x<y, don't stop</y> here"), "x here");
        assert_eq!(html_to_text("x <b>don't</b> stop"), "x don't stop");
        assert_eq!(html_to_text("a <b and no end"), "a <b and no end");
        assert_eq!(html_to_text("<a href=#top>top</a>"), "top");
    }
}
