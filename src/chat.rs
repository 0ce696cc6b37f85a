//! Chat templates: the model's Jinja template in a sandbox, or a built-in format.
//!
//! A GGUF file may carry `tokenizer.chat_template`, a Hugging Face chat template (Jinja). kiln
//! renders it with [minijinja] configured like `transformers`' `apply_chat_template`:
//! `trim_blocks` and `lstrip_blocks` on, no autoescaping, the globals `raise_exception` and
//! `strftime_now`, a `tojson` filter with Python's `json.dumps` output, the variables
//! `messages`, `add_generation_prompt`, `bos_token`, `eos_token`, `unk_token`, `pad_token`, and
//! the common Python string and dict methods (`strip`, `split`, `startswith`, `items`, `get` ...).
//!
//! Templates come from the internet, so rendering is bounded: a fuel budget (instructions),
//! a recursion limit and an output size limit turn a hostile template into an error instead of
//! a hang. minijinja has no file or network access. Not bounded: memory used by a template that
//! doubles a string a few dozen times (`{% set ns.s = ns.s ~ ns.s %}` in a loop) before the
//! output limit is reached.
//!
//! Without a template (Gemma 3's GGUF has none), a built-in format is chosen from the
//! architecture and model name ([`BuiltinFormat::detect`]); [`ChatTemplate::format`] tells which
//! one is used.

use std::fmt::Write as _;
use std::sync::Arc;

use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State};

use crate::gguf::Gguf;
use crate::tokenizer::Tokenizer;

/// Fuel (minijinja instructions) one render may use. Real templates need a few hundred per
/// message.
pub const TEMPLATE_FUEL: u64 = 20_000_000;
/// Recursion limit for one render (macros, nested blocks).
pub const TEMPLATE_RECURSION: usize = 100;
/// Longest rendered prompt, in bytes.
pub const TEMPLATE_MAX_OUTPUT: usize = 64 << 20;

const RAISE_TAG: &str = "\u{0}kiln-raise\u{0}";

/// A chat-template failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// The template does not parse.
    #[error("chat template syntax error: {0}")]
    Syntax(String),
    /// Rendering failed (undefined value, bad operation, unknown filter ...).
    #[error("chat template error: {0}")]
    Render(String),
    /// The template called `raise_exception(message)`.
    #[error("chat template raised an exception: {0}")]
    Raised(String),
    /// The template exceeded the fuel, recursion or output limit.
    #[error("chat template exceeded a limit: {0}")]
    Limit(String),
    /// Reading the model's metadata failed.
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
}

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` (or any role the template knows).
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Built-in prompt formats (the same strings llama.cpp's `llm_chat_apply_template` produces).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuiltinFormat {
    /// `<|im_start|>role\ncontent<|im_end|>\n`.
    ChatMl,
    /// `<start_of_turn>user\n...<end_of_turn>\n`, assistant as `model`, system text prepended to
    /// the first user turn followed by a blank line.
    Gemma,
    /// `[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST]...</s>`.
    Llama2,
    /// `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`.
    Llama3,
    /// Mistral v3: `[INST] ...[/INST] answer</s>`.
    Mistral,
    /// `<|role|>\ncontent<|end|>\n`.
    Phi3,
    /// `<|role|>\ncontent<|endoftext|>\n`.
    Zephyr,
}

impl BuiltinFormat {
    /// The format's name (`chatml`, `gemma`, `llama2`, `llama3`, `mistral`, `phi3`, `zephyr`).
    pub fn name(self) -> &'static str {
        match self {
            BuiltinFormat::ChatMl => "chatml",
            BuiltinFormat::Gemma => "gemma",
            BuiltinFormat::Llama2 => "llama2",
            BuiltinFormat::Llama3 => "llama3",
            BuiltinFormat::Mistral => "mistral",
            BuiltinFormat::Phi3 => "phi3",
            BuiltinFormat::Zephyr => "zephyr",
        }
    }

    /// The format with this name.
    pub fn from_name(name: &str) -> Option<BuiltinFormat> {
        [
            BuiltinFormat::ChatMl,
            BuiltinFormat::Gemma,
            BuiltinFormat::Llama2,
            BuiltinFormat::Llama3,
            BuiltinFormat::Mistral,
            BuiltinFormat::Phi3,
            BuiltinFormat::Zephyr,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }

    /// The format for a model without a template, from `general.architecture` and
    /// `general.name`: Gemma architectures -> gemma, phi3 -> phi3, names mentioning Llama 3 /
    /// Llama 2 / Mistral or Mixtral / Zephyr -> those, anything else -> chatml.
    pub fn detect(architecture: &str, model_name: &str) -> BuiltinFormat {
        let arch = architecture.to_ascii_lowercase();
        let name = model_name.to_ascii_lowercase();
        let has = |keys: &[&str]| keys.iter().any(|k| name.contains(k));
        if arch.starts_with("gemma") || has(&["gemma"]) {
            BuiltinFormat::Gemma
        } else if arch == "phi3" || has(&["phi-3", "phi3"]) {
            BuiltinFormat::Phi3
        } else if has(&["llama-3", "llama 3", "llama3"]) {
            BuiltinFormat::Llama3
        } else if has(&["llama-2", "llama 2", "llama2"]) {
            BuiltinFormat::Llama2
        } else if has(&["mistral", "mixtral"]) {
            BuiltinFormat::Mistral
        } else if has(&["zephyr"]) {
            BuiltinFormat::Zephyr
        } else {
            BuiltinFormat::ChatMl
        }
    }

    /// Renders messages in this format.
    pub fn render(self, messages: &[ChatMessage], add_generation_prompt: bool) -> String {
        let mut s = String::new();
        match self {
            BuiltinFormat::ChatMl => {
                for m in messages {
                    let _ = write!(s, "<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content);
                }
                if add_generation_prompt {
                    s += "<|im_start|>assistant\n";
                }
            }
            BuiltinFormat::Gemma => {
                let mut system = String::new();
                for m in messages {
                    if m.role == "system" {
                        system += m.content.trim();
                        continue;
                    }
                    let role = if m.role == "assistant" {
                        "model"
                    } else {
                        m.role.as_str()
                    };
                    let _ = writeln!(s, "<start_of_turn>{role}");
                    if !system.is_empty() && role != "model" {
                        s += &system;
                        s += "\n\n";
                        system.clear();
                    }
                    s += m.content.trim();
                    s += "<end_of_turn>\n";
                }
                if add_generation_prompt {
                    s += "<start_of_turn>model\n";
                }
            }
            BuiltinFormat::Llama2 => {
                let mut inside_turn = true;
                s += "[INST] ";
                for m in messages {
                    if !inside_turn {
                        inside_turn = true;
                        s += "[INST] ";
                    }
                    match m.role.as_str() {
                        "system" => {
                            let _ = write!(s, "<<SYS>>\n{}\n<</SYS>>\n\n", m.content);
                        }
                        "user" => {
                            let _ = write!(s, "{} [/INST]", m.content);
                        }
                        _ => {
                            let _ = write!(s, "{}</s>", m.content);
                            inside_turn = false;
                        }
                    }
                }
            }
            BuiltinFormat::Llama3 => {
                for m in messages {
                    let _ = write!(
                        s,
                        "<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>",
                        m.role,
                        m.content.trim()
                    );
                }
                if add_generation_prompt {
                    s += "<|start_header_id|>assistant<|end_header_id|>\n\n";
                }
            }
            BuiltinFormat::Mistral => {
                let mut inside_turn = false;
                for m in messages {
                    if !inside_turn {
                        s += "[INST] ";
                        inside_turn = true;
                    }
                    match m.role.as_str() {
                        "system" => {
                            s += &m.content;
                            s += "\n\n";
                        }
                        "user" => {
                            s += &m.content;
                            s += "[/INST]";
                        }
                        _ => {
                            let _ = write!(s, " {}</s>", m.content.trim());
                            inside_turn = false;
                        }
                    }
                }
            }
            BuiltinFormat::Phi3 => {
                for m in messages {
                    let _ = write!(s, "<|{}|>\n{}<|end|>\n", m.role, m.content);
                }
                if add_generation_prompt {
                    s += "<|assistant|>\n";
                }
            }
            BuiltinFormat::Zephyr => {
                for m in messages {
                    let _ = write!(s, "<|{}|>\n{}<|endoftext|>\n", m.role, m.content);
                }
                if add_generation_prompt {
                    s += "<|assistant|>\n";
                }
            }
        }
        s
    }
}

/// Which format a [`ChatTemplate`] renders with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatFormat {
    /// The model's own Jinja template (`tokenizer.chat_template`).
    Template,
    /// A built-in format.
    Builtin(BuiltinFormat),
}

impl std::fmt::Display for ChatFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChatFormat::Template => f.write_str("model template (tokenizer.chat_template)"),
            ChatFormat::Builtin(b) => write!(f, "built-in {}", b.name()),
        }
    }
}

/// A model's chat format: its Jinja template or a built-in format, with the special-token texts
/// templates refer to.
#[derive(Clone, Debug)]
pub struct ChatTemplate {
    source: Option<String>,
    builtin: BuiltinFormat,
    bos_token: String,
    eos_token: String,
    unk_token: String,
    pad_token: String,
}

impl ChatTemplate {
    /// A Jinja template (Hugging Face chat-template semantics) with the given BOS / EOS texts.
    pub fn from_jinja(source: impl Into<String>, bos_token: &str, eos_token: &str) -> ChatTemplate {
        ChatTemplate {
            source: Some(source.into()),
            builtin: BuiltinFormat::ChatMl,
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
            unk_token: String::new(),
            pad_token: String::new(),
        }
    }

    /// A built-in format.
    pub fn builtin(format: BuiltinFormat) -> ChatTemplate {
        ChatTemplate {
            source: None,
            builtin: format,
            bos_token: String::new(),
            eos_token: String::new(),
            unk_token: String::new(),
            pad_token: String::new(),
        }
    }

    /// The chat format of a model: `tokenizer.chat_template` when present, else the built-in
    /// format [`BuiltinFormat::detect`] picks from `general.architecture` and `general.name`.
    /// Special-token texts come from `tokenizer`.
    pub fn from_gguf(g: &Gguf<'_>, tokenizer: &Tokenizer) -> Result<ChatTemplate, ChatError> {
        let opt_str = |key: &str| g.get(key).map(|_| g.get_str(key)).transpose();
        let text = |id: Option<u32>| {
            id.and_then(|id| tokenizer.token_text(id))
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .unwrap_or_default()
        };
        let sp = tokenizer.special_tokens();
        let mut t = match opt_str("tokenizer.chat_template")? {
            Some(src) => ChatTemplate::from_jinja(src, "", ""),
            None => {
                let arch = opt_str("general.architecture")?.unwrap_or("");
                let name = opt_str("general.name")?.unwrap_or("");
                ChatTemplate::builtin(BuiltinFormat::detect(arch, name))
            }
        };
        t.bos_token = text(sp.bos);
        t.eos_token = text(sp.eos);
        t.unk_token = text(sp.unk);
        t.pad_token = text(sp.pad);
        Ok(t)
    }

    /// Which format [`ChatTemplate::render`] uses.
    pub fn format(&self) -> ChatFormat {
        if self.source.is_some() {
            ChatFormat::Template
        } else {
            ChatFormat::Builtin(self.builtin)
        }
    }

    /// The Jinja source, if the model has one.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// Renders a conversation to the prompt text (special tokens as text: tokenize it with
    /// special-token parsing on). `add_generation_prompt` appends the assistant turn header.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, ChatError> {
        match &self.source {
            None => Ok(self.builtin.render(messages, add_generation_prompt)),
            Some(src) => self.render_jinja(src, messages, add_generation_prompt),
        }
    }

    fn render_jinja(
        &self,
        src: &str,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, ChatError> {
        let env = environment();
        let tmpl = env.template_from_str(src).map_err(|e| classify(&e))?;
        let msgs: Vec<Value> = messages
            .iter()
            .map(|m| {
                Value::from_object(Message {
                    role: Value::from(m.role.as_str()),
                    content: Value::from(m.content.as_str()),
                })
            })
            .collect();
        let ctx = Value::from_iter([
            ("messages", Value::from(msgs)),
            ("add_generation_prompt", Value::from(add_generation_prompt)),
            ("bos_token", Value::from(self.bos_token.as_str())),
            ("eos_token", Value::from(self.eos_token.as_str())),
            ("unk_token", Value::from(self.unk_token.as_str())),
            ("pad_token", Value::from(self.pad_token.as_str())),
        ]);
        let mut out = LimitedWriter {
            buf: Vec::new(),
            limit: TEMPLATE_MAX_OUTPUT,
        };
        tmpl.render_captured_to(ctx, &mut out)
            .map_err(|e| classify(&e))?;
        String::from_utf8(out.buf).map_err(|_| ChatError::Render("output is not UTF-8".into()))
    }
}

/// A message as the template sees it: a map with keys `role` and `content` in that order.
#[derive(Debug)]
struct Message {
    role: Value,
    content: Value,
}

impl Object for Message {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "role" => Some(self.role.clone()),
            "content" => Some(self.content.clone()),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["role", "content"])
    }
}

/// Writer that fails past `limit` bytes.
struct LimitedWriter {
    buf: Vec<u8>,
    limit: usize,
}

impl std::io::Write for LimitedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + b.len() > self.limit {
            return Err(std::io::Error::other("output limit"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn classify(e: &Error) -> ChatError {
    let detail = e.detail().unwrap_or_default();
    if let Some(msg) = detail.strip_prefix(RAISE_TAG) {
        return ChatError::Raised(msg.to_owned());
    }
    match e.kind() {
        ErrorKind::SyntaxError | ErrorKind::BadEscape => ChatError::Syntax(e.to_string()),
        ErrorKind::OutOfFuel => {
            ChatError::Limit(format!("out of fuel ({TEMPLATE_FUEL} instructions)"))
        }
        ErrorKind::WriteFailure => {
            ChatError::Limit(format!("output longer than {TEMPLATE_MAX_OUTPUT} bytes"))
        }
        _ if detail.contains("recursion") => ChatError::Limit(e.to_string()),
        _ => ChatError::Render(e.to_string()),
    }
}

/// The sandboxed environment with Hugging Face's settings.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_recursion_limit(TEMPLATE_RECURSION);
    env.set_unknown_method_callback(py_method);
    env.add_function(
        "raise_exception",
        |msg: Option<String>| -> Result<Value, Error> {
            Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("{RAISE_TAG}{}", msg.unwrap_or_default()),
            ))
        },
    );
    env.add_function("strftime_now", |fmt: String| -> Result<Value, Error> {
        Ok(Value::from(strftime_now(&fmt)))
    });
    env.add_filter("tojson", tojson);
    env
}

/// Python's `str.isspace` characters.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn arg_str(args: &[Value], i: usize) -> Result<Option<&str>, Error> {
    match args.get(i) {
        None => Ok(None),
        Some(v) if v.is_none() || v.is_undefined() => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "expected a string argument")),
    }
}

/// Python string/dict methods that chat templates use (`minijinja` has none of them).
fn py_method(_state: &State, value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        let strip =
            |c: char, set: Option<&str>| set.map_or_else(|| py_space(c), |set| set.contains(c));
        return Ok(match method {
            "strip" => {
                let set = arg_str(args, 0)?;
                Value::from(s.trim_matches(|c| strip(c, set)))
            }
            "lstrip" => {
                let set = arg_str(args, 0)?;
                Value::from(s.trim_start_matches(|c| strip(c, set)))
            }
            "rstrip" => {
                let set = arg_str(args, 0)?;
                Value::from(s.trim_end_matches(|c| strip(c, set)))
            }
            "upper" => Value::from(s.to_uppercase()),
            "lower" => Value::from(s.to_lowercase()),
            "title" => Value::from(title(s)),
            "capitalize" => {
                let mut c = s.chars();
                Value::from(
                    c.next()
                        .map(|f| {
                            f.to_uppercase()
                                .chain(c.flat_map(char::to_lowercase))
                                .collect::<String>()
                        })
                        .unwrap_or_default(),
                )
            }
            "startswith" | "endswith" => {
                let test = |p: &str| {
                    if method == "startswith" {
                        s.starts_with(p)
                    } else {
                        s.ends_with(p)
                    }
                };
                let arg = args
                    .first()
                    .ok_or_else(|| Error::new(ErrorKind::MissingArgument, "prefix"))?;
                Value::from(match arg.as_str() {
                    Some(p) => test(p),
                    None => arg.try_iter()?.any(|p| p.as_str().is_some_and(test)),
                })
            }
            "split" => {
                let max = args
                    .get(1)
                    .and_then(|v| i64::try_from(v.clone()).ok())
                    .unwrap_or(-1);
                let parts: Vec<Value> = match arg_str(args, 0)? {
                    None => {
                        let it = s.split(py_space).filter(|p| !p.is_empty()).map(Value::from);
                        if max >= 0 {
                            // Python keeps the rest after `max` splits (left-stripped).
                            let mut v: Vec<Value> = Vec::new();
                            let mut rest = s.trim_start_matches(py_space);
                            while !rest.is_empty() && (v.len() as i64) < max {
                                let end = rest.find(py_space).unwrap_or(rest.len());
                                v.push(Value::from(&rest[..end]));
                                rest = rest[end..].trim_start_matches(py_space);
                            }
                            if !rest.is_empty() {
                                v.push(Value::from(rest));
                            }
                            v
                        } else {
                            it.collect()
                        }
                    }
                    Some("") => {
                        return Err(Error::new(ErrorKind::InvalidOperation, "empty separator"));
                    }
                    Some(sep) if max >= 0 => s
                        .splitn((max as usize).saturating_add(1), sep)
                        .map(Value::from)
                        .collect(),
                    Some(sep) => s.split(sep).map(Value::from).collect(),
                };
                Value::from(parts)
            }
            "splitlines" => Value::from(s.lines().map(Value::from).collect::<Vec<_>>()),
            "replace" => {
                let (Some(old), Some(new)) = (arg_str(args, 0)?, arg_str(args, 1)?) else {
                    return Err(Error::new(ErrorKind::MissingArgument, "replace(old, new)"));
                };
                match args.get(2).and_then(|v| i64::try_from(v.clone()).ok()) {
                    Some(n) if n >= 0 => Value::from(s.replacen(old, new, n as usize)),
                    _ => Value::from(s.replace(old, new)),
                }
            }
            "find" => {
                let sub = arg_str(args, 0)?.unwrap_or("");
                Value::from(s.find(sub).map_or(-1, |b| s[..b].chars().count() as i64))
            }
            "count" => Value::from(s.matches(arg_str(args, 0)?.unwrap_or("")).count()),
            "isdigit" => Value::from(!s.is_empty() && s.chars().all(|c| c.is_ascii_digit())),
            "isalpha" => Value::from(!s.is_empty() && s.chars().all(char::is_alphabetic)),
            "isspace" => Value::from(!s.is_empty() && s.chars().all(py_space)),
            "join" => {
                let parts: Vec<String> = args
                    .first()
                    .ok_or_else(|| Error::new(ErrorKind::MissingArgument, "join(iterable)"))?
                    .try_iter()?
                    .map(|v| v.to_string())
                    .collect();
                Value::from(parts.join(s))
            }
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        });
    }
    if value.kind() == ValueKind::Map {
        return Ok(match method {
            "items" => Value::from(
                value
                    .try_iter()?
                    .map(|k| {
                        let v = value.get_item(&k).unwrap_or_default();
                        Value::from(vec![k, v])
                    })
                    .collect::<Vec<_>>(),
            ),
            "keys" => Value::from(value.try_iter()?.collect::<Vec<_>>()),
            "values" => Value::from(
                value
                    .try_iter()?
                    .map(|k| value.get_item(&k).unwrap_or_default())
                    .collect::<Vec<_>>(),
            ),
            "get" => {
                let key = args
                    .first()
                    .ok_or_else(|| Error::new(ErrorKind::MissingArgument, "get(key)"))?;
                match value.get_item(key) {
                    Ok(v) if !v.is_undefined() => v,
                    _ => args.get(1).cloned().unwrap_or(Value::from(())),
                }
            }
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        });
    }
    Err(Error::from(ErrorKind::UnknownMethod))
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_cased = false;
    for c in s.chars() {
        if prev_cased {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        prev_cased = c.is_alphabetic();
    }
    out
}

/// `tojson` as Hugging Face defines it: `json.dumps(value, ensure_ascii=False, indent=indent,
/// separators=separators, sort_keys=sort_keys)`.
fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let separators: Option<Value> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => Some(match v.as_str() {
            Some(s) => s.to_owned(),
            None => " ".repeat(i64::try_from(v).unwrap_or(0).clamp(0, 64) as usize),
        }),
    };
    let (item_sep, key_sep) = match separators {
        Some(v) if !v.is_none() => {
            let parts: Vec<Value> = v.try_iter()?.collect();
            match (
                parts.first().and_then(Value::as_str),
                parts.get(1).and_then(Value::as_str),
            ) {
                (Some(a), Some(b)) => (a.to_owned(), b.to_owned()),
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "separators must be two strings",
                    ));
                }
            }
        }
        _ => (
            (if indent.is_some() { "," } else { ", " }).to_owned(),
            ": ".to_owned(),
        ),
    };
    let opts = JsonOpts {
        indent,
        item_sep,
        key_sep,
        sort_keys: sort_keys.unwrap_or(false),
        ensure_ascii: ensure_ascii.unwrap_or(false),
    };
    let mut out = String::new();
    write_json(&mut out, value, &opts, 0)?;
    Ok(Value::from(out))
}

struct JsonOpts {
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
    ensure_ascii: bool,
}

fn write_json(out: &mut String, v: &Value, o: &JsonOpts, depth: usize) -> Result<(), Error> {
    if depth > 64 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson: value nested too deeply",
        ));
    }
    let newline = |out: &mut String, level: usize| {
        if let Some(ind) = &o.indent {
            out.push('\n');
            for _ in 0..level {
                out.push_str(ind);
            }
        }
    };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if let Ok(i) = i64::try_from(v.clone()) {
                let _ = write!(out, "{i}");
            } else if let Ok(f) = f64::try_from(v.clone()) {
                out.push_str(&py_float(f));
            } else {
                out.push_str(&v.to_string());
            }
        }
        ValueKind::String | ValueKind::Bytes => json_string(out, &v.to_string(), o.ensure_ascii),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&o.item_sep);
                }
                newline(out, depth + 1);
                write_json(out, item, o, depth + 1)?;
            }
            newline(out, depth);
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if o.sort_keys {
                keys.sort();
            }
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(&o.item_sep);
                }
                newline(out, depth + 1);
                json_string(out, &k.to_string(), o.ensure_ascii);
                out.push_str(&o.key_sep);
                write_json(out, &v.get_item(k)?, o, depth + 1)?;
            }
            newline(out, depth);
            out.push('}');
        }
        _ => json_string(out, &v.to_string(), o.ensure_ascii),
    }
    Ok(())
}

/// Python's `repr(float)` as `json.dumps` writes it.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let sci = format!("{f:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let s = format!("{f}");
        if s.contains('.') { s } else { s + ".0" }
    } else {
        format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

fn json_string(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && (c as u32) > 0x7E) => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The current UTC time formatted with a `strftime` subset (`%Y %m %d %H %M %S %y %e %j %B %b
/// %A %a %p %I %%`). UTC: kiln has no time-zone database.
fn strftime_now(fmt: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    strftime(fmt, secs)
}

fn strftime(fmt: &str, secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let days = (secs / 86_400) as i64;
    let tod = secs % 86_400;
    let (h, mi, se) = (tod / 3600, tod / 60 % 60, tod % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy_mar = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy_mar + 2) / 153;
    let d = doy_mar - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let cum = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cum[(m - 1) as usize] + d + i64::from(leap && m > 2);
    let wd = DAYS[days.rem_euclid(7) as usize];
    let month = MONTHS[(m - 1) as usize];
    let mut out = String::new();
    let mut it = fmt.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let _ = match it.next() {
            Some('Y') => write!(out, "{y}"),
            Some('y') => write!(out, "{:02}", y.rem_euclid(100)),
            Some('m') => write!(out, "{m:02}"),
            Some('d') => write!(out, "{d:02}"),
            Some('e') => write!(out, "{d:2}"),
            Some('j') => write!(out, "{yday:03}"),
            Some('H') => write!(out, "{h:02}"),
            Some('I') => write!(out, "{:02}", if h % 12 == 0 { 12 } else { h % 12 }),
            Some('p') => write!(out, "{}", if h < 12 { "AM" } else { "PM" }),
            Some('M') => write!(out, "{mi:02}"),
            Some('S') => write!(out, "{se:02}"),
            Some('B') => write!(out, "{month}"),
            Some('b') => write!(out, "{}", &month[..3]),
            Some('A') => write!(out, "{wd}"),
            Some('a') => write!(out, "{}", &wd[..3]),
            Some('%') => write!(out, "%"),
            Some(o) => write!(out, "%{o}"),
            None => write!(out, "%"),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(v: &[(&str, &str)]) -> Vec<ChatMessage> {
        v.iter().map(|(r, c)| ChatMessage::new(*r, *c)).collect()
    }

    #[test]
    fn strftime_formats_known_dates() {
        // 2024-02-29 13:05:09 UTC, a Thursday.
        assert_eq!(
            strftime("%Y-%m-%d %H:%M:%S %A %b %j %I%p %%", 1_709_211_909),
            "2024-02-29 13:05:09 Thursday Feb 060 01PM %"
        );
        assert_eq!(strftime("%d %B %Y", 0), "01 January 1970");
    }

    #[test]
    fn jinja_features_hugging_face_templates_use() {
        let t = ChatTemplate::from_jinja(
            "{% for m in messages %}{{ m['role'] | upper }}:{{ m.content.strip() }}|{{ m | tojson }}\n{% endfor %}\
             {% if add_generation_prompt %}{{ bos_token }}GO{% endif %}",
            "<s>",
            "</s>",
        );
        let out = t.render(&msgs(&[("user", "  hi \"x\"\n ")]), true).unwrap();
        assert_eq!(
            out,
            "USER:hi \"x\"|{\"role\": \"user\", \"content\": \"  hi \\\"x\\\"\\n \"}\n<s>GO"
        );
        let t = ChatTemplate::from_jinja(
            "{{ {'b': [1, 2.5, none, true], 'a': 'é'} | tojson(indent=2, sort_keys=true) }}",
            "",
            "",
        );
        assert_eq!(
            t.render(&[], false).unwrap(),
            "{\n  \"a\": \"é\",\n  \"b\": [\n    1,\n    2.5,\n    null,\n    true\n  ]\n}"
        );
        let t = ChatTemplate::from_jinja(
            "{{ 'a,b,,c'.split(',') | length }}{{ ' x y '.split() | join('+') }}{{ 'Ab'.startswith(('a', 'A')) }}\
             {% for k, v in {'q': 1}.items() %}{{ k }}={{ v }}{% endfor %}{{ {'q': 1}.get('z', 'd') }}",
            "",
            "",
        );
        assert_eq!(t.render(&[], false).unwrap(), "4x+yTrueq=1d");
    }

    #[test]
    fn raise_exception_is_an_error() {
        let t = ChatTemplate::from_jinja(
            "{% if messages[0].role != 'user' %}{{ raise_exception('Roles must alternate') }}{% endif %}",
            "",
            "",
        );
        match t.render(&msgs(&[("assistant", "x")]), false) {
            Err(ChatError::Raised(m)) => assert_eq!(m, "Roles must alternate"),
            other => panic!("{other:?}"),
        }
        assert!(t.render(&msgs(&[("user", "x")]), false).is_ok());
    }

    #[test]
    fn hostile_templates_stop() {
        let loops = ChatTemplate::from_jinja(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "",
            "",
        );
        assert!(
            matches!(loops.render(&[], false), Err(ChatError::Limit(_))),
            "nested loops"
        );
        let rec = ChatTemplate::from_jinja(
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "",
            "",
        );
        assert!(
            matches!(rec.render(&[], false), Err(ChatError::Limit(_))),
            "recursion"
        );
        let big = ChatTemplate::from_jinja(
            "{% for i in range(1000) %}{{ 'x' * 90000000 }}{% endfor %}",
            "",
            "",
        );
        assert!(
            matches!(big.render(&[], false), Err(ChatError::Limit(_))),
            "output"
        );
        let bad = ChatTemplate::from_jinja("{% for %}", "", "");
        assert!(matches!(bad.render(&[], false), Err(ChatError::Syntax(_))));
    }

    #[test]
    fn builtin_formats() {
        let m = msgs(&[
            ("system", "Be brief."),
            ("user", "Hello"),
            ("assistant", "Hi"),
            ("user", "Bye"),
        ]);
        assert_eq!(
            BuiltinFormat::Gemma.render(&m, true),
            "<start_of_turn>user\nBe brief.\n\nHello<end_of_turn>\n<start_of_turn>model\nHi<end_of_turn>\n\
             <start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
        );
        assert_eq!(
            BuiltinFormat::ChatMl.render(&m[1..2], true),
            "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            BuiltinFormat::Llama3.render(&m[1..2], true),
            "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        assert_eq!(
            BuiltinFormat::Llama2.render(&m, false),
            "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHello [/INST]Hi</s>[INST] Bye [/INST]"
        );
        assert_eq!(
            BuiltinFormat::Mistral.render(&m, false),
            "[INST] Be brief.\n\nHello[/INST] Hi</s>[INST] Bye[/INST]"
        );
        assert_eq!(
            BuiltinFormat::Phi3.render(&m[1..2], true),
            "<|user|>\nHello<|end|>\n<|assistant|>\n"
        );
        assert_eq!(
            BuiltinFormat::Zephyr.render(&m[1..2], true),
            "<|user|>\nHello<|endoftext|>\n<|assistant|>\n"
        );
        assert_eq!(
            BuiltinFormat::detect("gemma3", "Gemma 3 270m"),
            BuiltinFormat::Gemma
        );
        assert_eq!(
            BuiltinFormat::detect("llama", "Meta-Llama-3-8B-Instruct"),
            BuiltinFormat::Llama3
        );
        assert_eq!(
            BuiltinFormat::detect("llama", "Mistral 7B Instruct"),
            BuiltinFormat::Mistral
        );
        assert_eq!(
            BuiltinFormat::detect("qwen2", "Qwen2.5"),
            BuiltinFormat::ChatMl
        );
        for f in [
            "chatml", "gemma", "llama2", "llama3", "mistral", "phi3", "zephyr",
        ] {
            assert_eq!(
                BuiltinFormat::from_name(f).map(BuiltinFormat::name),
                Some(f)
            );
        }
    }
}
