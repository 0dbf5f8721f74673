//! `prompts/list` and `prompts/get` from the live catalog: the built-in
//! prompts not switched off, then the operator's, each only to a caller
//! who sees every tool it names ([`super::gate::visible_prompts`] gives the
//! names `shown`). Arguments arrive as JSON; strings, numbers and booleans
//! are taken as their text.

use std::collections::BTreeMap;

use fleet_common::tools_file::prompts::Role as PromptRole;
use rmcp::ErrorData;
use rmcp::model::{GetPromptResult, JsonObject, Prompt, PromptArgument, PromptMessage, Role};
use serde_json::Value;

use super::Catalog;

/// What `prompts/list` shows, of the prompts named in `shown`.
pub fn list(catalog: &Catalog, shown: &[String]) -> Vec<Prompt> {
    catalog
        .prompts()
        .filter(|p| shown.contains(&p.name))
        .map(|p| {
            let arguments = p
                .arguments
                .iter()
                .map(|a| {
                    let mut arg = PromptArgument::new(&a.name).with_required(a.required);
                    if let Some(d) = &a.description {
                        arg = arg.with_description(d);
                    }
                    arg
                })
                .collect::<Vec<_>>();
            Prompt::new(
                &p.name,
                p.description.as_deref(),
                (!arguments.is_empty()).then_some(arguments),
            )
        })
        .collect()
}

/// What `prompts/get` answers for `name` with `args`, to a caller shown the
/// prompts named in `shown`.
pub fn get(
    catalog: &Catalog,
    shown: &[String],
    name: &str,
    args: Option<&JsonObject>,
) -> Result<GetPromptResult, ErrorData> {
    let Some(prompt) = catalog.prompts().find(|p| p.name == name) else {
        let builtin = fleet_common::tools_file::prompts::builtin()
            .iter()
            .any(|p| p.name == name);
        let why = if builtin {
            format!(
                "the prompt {name} is switched off on this server (builtins.prompts in tools.yaml)"
            )
        } else {
            format!("no prompt is named {name:?}")
        };
        return Err(ErrorData::invalid_params(why, None));
    };
    if !shown.contains(&prompt.name) {
        return Err(ErrorData::invalid_params(
            format!(
                "this credential may not use the prompt {name}: it names a tool the credential \
                 may not call"
            ),
            None,
        ));
    }
    let mut text_args = BTreeMap::new();
    for (k, v) in args.into_iter().flatten() {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            _ => {
                return Err(ErrorData::invalid_params(
                    format!("prompt argument {k} must be text"),
                    None,
                ));
            }
        };
        text_args.insert(k.clone(), text);
    }
    let messages = prompt
        .render(&text_args)
        .map_err(|e| ErrorData::invalid_params(e, None))?
        .into_iter()
        .map(|(role, text)| {
            let role = match role {
                PromptRole::User => Role::User,
                PromptRole::Assistant => Role::Assistant,
            };
            PromptMessage::new_text(role, text)
        })
        .collect();
    let mut result = GetPromptResult::new(messages);
    result.description = prompt.description.clone();
    Ok(result)
}
