//! A look at how deeply a source nests, before a parser that recurses reads it: a source
//! nested ten thousand deep is no template but an attempt on the stack. Both scans are one
//! forward pass (each byte is looked at a bounded number of times).

use crate::MAX_NESTING;

/// Elements that are never opened (mrml compares names as written: `<BR>` opens one).
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

fn too_deep() -> String {
    format!("tags or template blocks nest more than {MAX_NESTING} deep")
}

/// Counts the tags an MJML source leaves open (its comments skipped, quoted attribute values
/// read as values), and refuses more than [`MAX_NESTING`] at once. A tag never closed counts
/// to the end; mrml's parser recurses once per open tag.
pub(crate) fn check_tags(src: &str) -> Result<(), String> {
    let b = src.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        if b[i..].starts_with(b"<!--") {
            i = find(b, i + 4, b"-->").map_or(b.len(), |e| e + 3);
            continue;
        }
        let closing = b.get(i + 1) == Some(&b'/');
        let name_at = if closing { i + 2 } else { i + 1 };
        if !b.get(name_at).is_some_and(u8::is_ascii_alphabetic) {
            i += 1;
            continue;
        }
        let name_end = b[name_at..]
            .iter()
            .position(|c| !(c.is_ascii_alphanumeric() || *c == b'-'))
            .map_or(b.len(), |p| name_at + p);
        let Some(end) = tag_end(b, name_end) else {
            // No end: the rest is one unfinished tag, opening nothing more.
            return Ok(());
        };
        let name = &src[name_at..name_end];
        if closing {
            depth = depth.saturating_sub(1);
        } else if b[end - 1] != b'/' && !VOID.contains(&name) {
            depth += 1;
            if depth > MAX_NESTING {
                return Err(too_deep());
            }
        }
        i = end + 1;
    }
    Ok(())
}

/// Where the tag whose attributes start at `from` ends (its `>`), quoted values skipped.
fn tag_end(b: &[u8], from: usize) -> Option<usize> {
    let mut quote = None;
    let mut last = b' ';
    for (i, &c) in b.iter().enumerate().skip(from) {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'>' => return Some(i),
            None if (c == b'"' || c == b'\'') && last == b'=' => quote = Some(c),
            None => {}
        }
        if !c.is_ascii_whitespace() {
            last = c;
        }
    }
    None
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// Counts how deeply Handlebars nests: open blocks (`{{#`, `{{^name`, with `~`), each
/// `{{else}}` of a block (an `else if` chain nests in the parsed template), and brackets and
/// parentheses inside one `{{ }}` (subexpressions and literals, which the parser recurses
/// on). Comments and raw blocks are skipped. Refuses more than [`MAX_NESTING`].
pub(crate) fn check_blocks(src: &str) -> Result<(), String> {
    let b = src.as_bytes();
    // Per open block, the `else` branches it has had.
    let mut blocks: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i..].starts_with(b"{{") {
            i += 1;
            continue;
        }
        if b[i..].starts_with(b"{{{{") {
            // A raw block: nothing inside is read as a template.
            i = find(b, i + 4, b"{{{{/")
                .map_or(b.len(), |e| find(b, e, b"}}}}").map_or(b.len(), |c| c + 4));
            continue;
        }
        let mut j = i + 2;
        while b.get(j).is_some_and(|c| *c == b'~' || *c == b'{') {
            j += 1;
        }
        if b[j..].starts_with(b"!--") {
            i = find(b, j, b"--}}").map_or(b.len(), |e| e + 4);
            continue;
        }
        if b.get(j) == Some(&b'!') {
            i = find(b, j, b"}}").map_or(b.len(), |e| e + 2);
            continue;
        }
        // The inside of this `{{ }}`: its brackets, and where it ends.
        let mut k = j;
        let mut inner = 0usize;
        let mut quote = None;
        while k < b.len() {
            let c = b[k];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == b'"' || c == b'\'' => quote = Some(c),
                None if c == b'(' || c == b'[' => {
                    inner += 1;
                    if inner > MAX_NESTING {
                        return Err(too_deep());
                    }
                }
                None if c == b')' || c == b']' => inner = inner.saturating_sub(1),
                None if b[k..].starts_with(b"}}") => break,
                None => {}
            }
            k += 1;
        }
        let word = &b[j..k];
        let trimmed = word.strip_suffix(b"~").unwrap_or(word);
        match trimmed.first() {
            Some(b'#') => blocks.push(0),
            Some(b'^') if trimmed.len() > 1 => blocks.push(0),
            Some(b'/') => {
                blocks.pop();
            }
            Some(b'^') => {
                if let Some(top) = blocks.last_mut() {
                    *top += 1;
                }
            }
            _ if trimmed.starts_with(b"else") => {
                if let Some(top) = blocks.last_mut() {
                    *top += 1;
                }
            }
            _ => {}
        }
        // At most MAX_NESTING blocks are ever open, so this sum is bounded.
        if blocks.len() + blocks.iter().sum::<usize>() > MAX_NESTING {
            return Err(too_deep());
        }
        i = k + 2;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_left_open_are_counted_once_each() {
        let ok = "<p>".repeat(MAX_NESTING) + &"</p>".repeat(MAX_NESTING);
        assert!(check_tags(&ok).is_ok());
        assert!(check_tags(&"<br><img src=x/><mj-image />".repeat(10_000)).is_ok());
        assert!(check_tags(&"<div>".repeat(MAX_NESTING + 1)).is_err());
        // mrml opens <BR>; a closing tag in a comment or an attribute closes nothing.
        assert!(check_tags(&"<BR>".repeat(MAX_NESTING + 1)).is_err());
        assert!(check_tags(&"<div><!--</div>-->".repeat(MAX_NESTING + 1)).is_err());
        assert!(check_tags(&"<div title=\"/>\">".repeat(MAX_NESTING + 1)).is_err());
        assert!(check_tags("<").is_ok());
        assert!(check_tags("<a").is_ok());
    }

    #[test]
    fn a_scan_is_linear() {
        // Each '<' once: 256K unfinished tags with no '>' anywhere (a scan from each '<' to
        // the end would take minutes here; the fuzz target's timeout guards this too).
        let many = "<a".repeat(256 * 1024) + "/";
        assert!(check_tags(&many).is_ok());
        // One mustache never closed: read once, to the end.
        let many = "{{#".repeat(256 * 1024);
        assert!(check_blocks(&many).is_ok());
        assert!(check_blocks(&"{{#a}}".repeat(256 * 1024)).is_err());
        let many = "{{x ".repeat(256 * 1024);
        assert!(check_blocks(&many).is_ok());
    }

    #[test]
    fn blocks_chains_and_brackets_are_counted() {
        assert!(check_blocks(&"{{#if a}}".repeat(MAX_NESTING + 1)).is_err());
        assert!(check_blocks(&"{{~#if a~}}".repeat(MAX_NESTING + 1)).is_err());
        assert!(check_blocks(&"{{#if a}}{{/if}}".repeat(10_000)).is_ok());
        // A closing tag in a comment closes nothing.
        assert!(check_blocks(&"{{#if a}}{{!-- {{/if}} --}}".repeat(MAX_NESTING + 1)).is_err());
        // An else-if chain nests.
        let chain = "{{#if a}}".to_owned() + &"{{else if b}}".repeat(MAX_NESTING + 1) + "{{/if}}";
        assert!(check_blocks(&chain).is_err());
        // Many blocks with an else each, one after the other, do not.
        assert!(check_blocks(&"{{#if a}}x{{else}}y{{/if}}".repeat(1000)).is_ok());
        assert!(check_blocks(&"{{#if a}}x{{^}}y{{/if}}".repeat(1000)).is_ok());
        // Subexpressions and literals.
        let deep = "{{x ".to_owned() + &"(".repeat(MAX_NESTING + 1) + "}}";
        assert!(check_blocks(&deep).is_err());
        let deep = "{{x ".to_owned() + &"[".repeat(MAX_NESTING + 1) + "}}";
        assert!(check_blocks(&deep).is_err());
        assert!(check_blocks("{{x \"((((\"}}").is_ok());
        assert!(check_blocks("{{{{raw}}}}{{#if}}{{#if}}{{{{/raw}}}}").is_ok());
    }
}
