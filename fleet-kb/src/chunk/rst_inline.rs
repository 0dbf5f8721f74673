//! reStructuredText inline markup → plain words: literals, emphasis, roles,
//! links, substitutions, footnote references and escapes.

/// Characters after which inline markup may start.
fn markup_may_start(prev: Option<char>) -> bool {
    prev.is_none_or(|p| p.is_whitespace() || "'\"([{<-/:\u{2018}\u{201c}".contains(p))
}

fn find_from(chars: &[char], from: usize, pat: &[char]) -> Option<usize> {
    if pat.is_empty() || chars.len() < pat.len() {
        return None;
    }
    (from..=chars.len() - pat.len()).find(|&k| chars[k..k + pat.len()] == *pat)
}

/// Remove common reStructuredText inline markup: ``` ``literal`` ```,
/// `*emphasis*`, `**strong**`, `` :role:`text` ``, `` `link <url>`_ ``,
/// `|substitution|`, footnote references `[1]_` and backslash escapes.
pub(super) fn strip_rst_inline(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1).copied();
        let may_start = markup_may_start(prev);
        match c {
            '\\' => {
                if let Some(n) = next.filter(|n| !n.is_whitespace()) {
                    out.push(n);
                }
                i += 2;
                continue;
            }
            '`' if next == Some('`') => {
                if let Some(j) = find_from(&chars, i + 2, &['`', '`']) {
                    out.extend(&chars[i + 2..j]);
                    i = j + 2;
                    continue;
                }
            }
            '`' if next.is_some_and(|n| !n.is_whitespace()) => {
                if let Some(j) = find_from(&chars, i + 1, &['`']) {
                    let inner: String = chars[i + 1..j].iter().collect();
                    out.push_str(&interpreted_text(&inner));
                    i = j + 1;
                    // `text`_ / `text`__ / `text`:role:
                    while chars.get(i) == Some(&'_') {
                        i += 1;
                    }
                    if chars.get(i) == Some(&':')
                        && let Some(k) = role_end(&chars, i)
                    {
                        i = k;
                    }
                    continue;
                }
            }
            ':' if may_start => {
                if let Some(k) = role_end(&chars, i)
                    && chars.get(k) == Some(&'`')
                {
                    i = k;
                    continue;
                }
            }
            '*' if may_start => {
                let (marker, len): (&[char], usize) = if next == Some('*') {
                    (&['*', '*'], 2)
                } else {
                    (&['*'], 1)
                };
                let body_start = i + len;
                if chars
                    .get(body_start)
                    .is_some_and(|n| !n.is_whitespace() && *n != '*')
                    && let Some(j) = find_from(&chars, body_start + 1, marker)
                        .filter(|&j| !chars[j - 1].is_whitespace())
                {
                    out.extend(&chars[body_start..j]);
                    i = j + len;
                    continue;
                }
            }
            '|' if may_start && next.is_some_and(|n| !n.is_whitespace() && n != '|') => {
                if let Some(j) = find_from(&chars, i + 1, &['|']).filter(|&j| {
                    !chars[j - 1].is_whitespace()
                        && chars
                            .get(j + 1)
                            .is_none_or(|a| a.is_whitespace() || a.is_ascii_punctuation())
                }) {
                    out.extend(&chars[i + 1..j]);
                    i = j + 1;
                    while chars.get(i) == Some(&'_') {
                        i += 1;
                    }
                    continue;
                }
            }
            '[' if may_start => {
                // Footnote / citation reference: [1]_, [#]_, [#note]_, [CIT2002]_.
                if let Some(j) = find_from(&chars, i + 1, &[']', '_'])
                    && j > i + 1
                    && chars[i + 1..j]
                        .iter()
                        .all(|c| !c.is_whitespace() && *c != '[')
                {
                    while out.ends_with(' ') {
                        out.pop();
                    }
                    i = j + 2;
                    continue;
                }
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    out
}

/// At `chars[i] == ':'`, the index just after a role name `:name:` (names may
/// contain `:`, as in `:py:func:`), if there is one.
fn role_end(chars: &[char], i: usize) -> Option<usize> {
    let mut k = i + 1;
    while k < chars.len() && (chars[k].is_ascii_alphanumeric() || "-_.+:".contains(chars[k])) {
        k += 1;
    }
    (k > i + 2 && chars[k - 1] == ':').then_some(k)
}

/// The readable part of interpreted text: `title <target>` gives the title,
/// `~mod.func` gives `func`.
fn interpreted_text(inner: &str) -> String {
    let inner = inner.trim();
    if let Some(stripped) = inner.strip_suffix('>')
        && let Some((title, target)) = stripped.rsplit_once('<')
    {
        let title = title.trim();
        return if title.is_empty() {
            target.trim()
        } else {
            title
        }
        .to_string();
    }
    if let Some(path) = inner.strip_prefix('~') {
        return path.rsplit('.').next().unwrap_or(path).to_string();
    }
    inner.trim_start_matches('!').to_string()
}
