//! Prompts: templates a client fetches with `prompts/get`, the four
//! built-in ones pgEdge's server ships (`explore-database`,
//! `setup-semantic-search`, `diagnose-query-issue`, `design-schema`, in
//! `builtin_prompts.yaml`) and the operator's own.
//!
//! Two forms are accepted: pgEdge's (`messages:` with a `role` and a
//! `content: {type: text, text: ...}`) and a short one (`template:`, a
//! single user message). `{{name}}` in a text is replaced by the argument of
//! that name; it must name a declared argument. Any other `{{` is text.
//! MCP prompts have two roles, `user` and `assistant`; pgEdge's `system` is
//! sent as `user`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::yaml::EntryList;

/// One prompt, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub name: String,
    pub description: Option<String>,
    pub arguments: Vec<Argument>,
    pub messages: Vec<Message>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Argument {
    pub name: String,
    pub description: Option<String>,
    pub required: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One message: its role and its text, in parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    /// The index of a declared argument.
    Arg(usize),
}

impl Prompt {
    /// The messages with `args` filled in. An argument the prompt does not
    /// declare, or a required one missing, is an error naming it; a missing
    /// optional one is empty.
    pub fn render(&self, args: &BTreeMap<String, String>) -> Result<Vec<(Role, String)>, String> {
        for name in args.keys() {
            if !self.arguments.iter().any(|a| &a.name == name) {
                let known: Vec<&str> = self.arguments.iter().map(|a| a.name.as_str()).collect();
                return Err(format!(
                    "prompt {} has no argument {name:?} (it takes: {})",
                    self.name,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
        for a in &self.arguments {
            if a.required && args.get(&a.name).is_none_or(|v| v.trim().is_empty()) {
                return Err(format!(
                    "prompt {}: argument {} is required",
                    self.name, a.name
                ));
            }
        }
        Ok(self
            .messages
            .iter()
            .map(|m| {
                let text = m
                    .parts
                    .iter()
                    .map(|p| match p {
                        Part::Text(t) => t.as_str(),
                        Part::Arg(i) => args
                            .get(&self.arguments[*i].name)
                            .map_or("", String::as_str),
                    })
                    .collect();
                (m.role, text)
            })
            .collect())
    }
}

impl Prompt {
    /// The names of `tools` this prompt's description or messages mention
    /// as a word of their own (not inside a longer name): the tools it
    /// leads a caller to, which the server shows it only alongside.
    pub fn named_tools(&self, tools: &[&str]) -> Vec<String> {
        let texts = self.description.iter().map(String::as_str).chain(
            self.messages
                .iter()
                .flat_map(|m| m.parts.iter())
                .filter_map(|p| match p {
                    Part::Text(t) => Some(t.as_str()),
                    Part::Arg(_) => None,
                }),
        );
        let texts: Vec<&str> = texts.collect();
        let mut named: Vec<String> = tools
            .iter()
            .filter(|tool| !tool.is_empty() && texts.iter().any(|t| mentions(t, tool)))
            .map(|t| t.to_string())
            .collect();
        named.sort();
        named.dedup();
        named
    }
}

/// Whether `name` occurs in `text` with no name character (letter, digit,
/// `_`, `-`) right before or after it.
fn mentions(text: &str, name: &str) -> bool {
    let is_name = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
    text.match_indices(name).any(|(at, _)| {
        !is_name(text[..at].chars().next_back()) && !is_name(text[at + name.len()..].chars().next())
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrompt {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    arguments: Vec<RawArgument>,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    messages: Option<Vec<RawMessage>>,
}

impl RawPrompt {
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArgument {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    required: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessage {
    role: String,
    content: RawContent,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContent {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    text: Option<String>,
    // pgEdge's image and resource contents, refused with a reason.
    #[serde(default)]
    data: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "mimeType")]
    mime_type: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    uri: Option<serde::de::IgnoredAny>,
}

/// Check one prompt named `name`.
pub(crate) fn declare(name: String, raw: RawPrompt) -> Result<Prompt, String> {
    if !super::valid_entry_name(&name) {
        return Err(format!(
            "prompt {name:?}: a name is 1 to 64 letters, digits, `_`, `-` or `.`"
        ));
    }
    let mut arguments: Vec<Argument> = Vec::with_capacity(raw.arguments.len());
    for a in raw.arguments {
        if !super::params::valid_name(&a.name) {
            return Err(format!(
                "prompt {name}: argument {:?}: a name is a letter or `_` then letters, digits or `_`",
                a.name
            ));
        }
        if arguments.iter().any(|b| b.name == a.name) {
            return Err(format!(
                "prompt {name}: argument {} is declared twice",
                a.name
            ));
        }
        arguments.push(Argument {
            name: a.name,
            description: a.description.filter(|d| !d.trim().is_empty()),
            required: a.required,
        });
    }
    let texts: Vec<(Role, String)> = match (raw.template, raw.messages) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "prompt {name}: give `template` or `messages`, not both"
            ));
        }
        (Some(t), None) => vec![(Role::User, t)],
        (None, Some(messages)) if !messages.is_empty() => messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| message(&name, i, m))
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(format!(
                "prompt {name}: needs a `template` or at least one of `messages`"
            ));
        }
    };
    let messages = texts
        .into_iter()
        .map(|(role, text)| {
            Ok(Message {
                role,
                parts: template(&text, &arguments).map_err(|e| format!("prompt {name}: {e}"))?,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Prompt {
        name,
        description: raw.description.filter(|d| !d.trim().is_empty()),
        arguments,
        messages,
    })
}

fn message(name: &str, i: usize, m: RawMessage) -> Result<(Role, String), String> {
    let at = format!("prompt {name}: message {}", i + 1);
    let role = match m.role.as_str() {
        "user" | "system" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(format!(
                "{at}: role {other:?} is not user, assistant or system"
            ));
        }
    };
    let c = m.content;
    if c.ty != "text" || c.data.is_some() || c.mime_type.is_some() || c.uri.is_some() {
        return Err(format!(
            "{at}: only text content is served (type: text, text: ...)"
        ));
    }
    let text = c
        .text
        .ok_or_else(|| format!("{at}: text content needs `text`"))?;
    Ok((role, text))
}

/// Split a text at its `{{name}}` placeholders, each naming a declared
/// argument.
fn template(text: &str, arguments: &[Argument]) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    let mut literal = String::new();
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let placeholder = after.find("}}").and_then(|close| {
            let inner = after[..close].trim();
            super::params::valid_name(inner).then_some((inner, close))
        });
        match placeholder {
            Some((inner, close)) => {
                let Some(i) = arguments.iter().position(|a| a.name == inner) else {
                    return Err(format!("{{{{{inner}}}}} names no declared argument"));
                };
                literal.push_str(&rest[..open]);
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(Part::Arg(i));
                rest = &after[close + 2..];
            }
            None => {
                literal.push_str(&rest[..open + 2]);
                rest = after;
            }
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Text(literal));
    }
    Ok(parts)
}

/// The four built-in prompts.
pub fn builtin() -> &'static [Prompt] {
    static BUILTIN: OnceLock<Vec<Prompt>> = OnceLock::new();
    BUILTIN.get_or_init(|| parse_builtin().unwrap_or_default())
}

fn parse_builtin() -> Result<Vec<Prompt>, String> {
    #[derive(Deserialize)]
    struct Doc {
        prompts: EntryList<RawPrompt>,
    }
    let doc: Doc = serde_norway::from_str(include_str!("builtin_prompts.yaml"))
        .map_err(|e| crate::yaml::describe(&e))?;
    doc.prompts
        .0
        .into_iter()
        .map(|e| {
            let name = e.value.name.clone().unwrap_or_default();
            declare(name, e.value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(yaml: &str) -> RawPrompt {
        serde_norway::from_str(yaml).unwrap()
    }

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_builtin_prompts_parse() {
        assert_eq!(parse_builtin().map(|p| p.len()), Ok(4));
        let names: Vec<&str> = builtin().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "explore-database",
                "setup-semantic-search",
                "diagnose-query-issue",
                "design-schema"
            ]
        );
        let design = &builtin()[3];
        let text = design
            .render(&args(&[
                ("requirements", "a library"),
                ("use_case", "oltp"),
            ]))
            .unwrap();
        assert!(text[0].1.contains("a library") && text[0].1.contains("oltp"));
        assert!(
            design
                .render(&args(&[]))
                .unwrap_err()
                .contains("requirements is required")
        );
    }

    #[test]
    fn templates_and_pgedge_messages() {
        let p = declare(
            "analyze-table".into(),
            raw("arguments: [{name: table_name, required: true}, {name: note}]\n\
                 messages:\n  - role: system\n    content: {type: text, text: 'You are a DBA.'}\n  \
                 - role: user\n    content: {type: text, text: 'Analyze {{ table_name }}. {{note}} {{not an arg}} {k}'}\n"),
        )
        .unwrap();
        let out = p.render(&args(&[("table_name", "users")])).unwrap();
        assert_eq!(out[0], (Role::User, "You are a DBA.".to_string()));
        assert_eq!(out[1].1, "Analyze users.  {{not an arg}} {k}");
        assert!(
            p.render(&args(&[("table_name", "x"), ("other", "y")]))
                .unwrap_err()
                .contains("no argument \"other\"")
        );
        let short = declare(
            "s".into(),
            raw("template: 'Hello {{who}}'\narguments: [{name: who}]\n"),
        )
        .unwrap();
        assert_eq!(
            short.render(&args(&[("who", "you")])).unwrap()[0].1,
            "Hello you"
        );
        for (bad, says) in [
            ("template: '{{who}}'\n", "names no declared argument"),
            ("description: x\n", "needs a `template`"),
            (
                "messages: [{role: tool, content: {type: text, text: x}}]\n",
                "role \"tool\"",
            ),
            (
                "messages: [{role: user, content: {type: image, data: abc, mimeType: image/png}}]\n",
                "only text",
            ),
            (
                "template: x\narguments: [{name: a}, {name: a}]\n",
                "declared twice",
            ),
        ] {
            let e = declare("p".into(), raw(bad)).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn the_tools_a_prompt_names_are_whole_words() {
        let p = declare(
            "p".into(),
            raw("description: Uses count_rows.\ntemplate: \"Call get_schema_info, then query_database_v2 and my-count_rows.\"\n"),
        )
        .unwrap();
        let tools = [
            "get_schema_info",
            "query_database",
            "count_rows",
            "search_knowledgebase",
        ];
        assert_eq!(p.named_tools(&tools), ["count_rows", "get_schema_info"]);
        let kb = builtin()
            .iter()
            .find(|p| p.name == "explore-database")
            .unwrap();
        assert!(
            kb.named_tools(&tools)
                .contains(&"get_schema_info".to_string())
        );
    }
}
