//! Chat templates for the in-process engine, chosen by the special tokens the tokenizer has.
//! (Servers apply their own template for `/v1/chat/completions`.)

use super::Message;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<start_of_turn>user … <end_of_turn>` (Gemma; system text is folded into the first turn).
    Gemma,
    /// `<|im_start|>role … <|im_end|>` (ChatML: SmolLM2, Qwen2).
    ChatMl,
    /// No chat tokens: `User:` / `Assistant:` lines.
    Plain,
}

impl ChatTemplate {
    pub fn detect(tokenizer: &tokenizers::Tokenizer) -> ChatTemplate {
        if tokenizer.token_to_id("<start_of_turn>").is_some() {
            ChatTemplate::Gemma
        } else if tokenizer.token_to_id("<|im_start|>").is_some() {
            ChatTemplate::ChatMl
        } else {
            ChatTemplate::Plain
        }
    }

    /// The prompt text for `messages`, ending where the assistant's answer starts.
    /// BOS is not included (the tokenizer adds it).
    pub fn render(self, messages: &[Message]) -> String {
        let mut out = String::new();
        match self {
            ChatTemplate::Gemma => {
                let mut system = String::new();
                for m in messages {
                    match m.role.as_str() {
                        "system" => {
                            system.push_str(&m.content);
                            system.push_str("\n\n");
                        }
                        role => {
                            let role = if role == "assistant" { "model" } else { "user" };
                            out.push_str("<start_of_turn>");
                            out.push_str(role);
                            out.push('\n');
                            out.push_str(&std::mem::take(&mut system));
                            out.push_str(m.content.trim());
                            out.push_str("<end_of_turn>\n");
                        }
                    }
                }
                out.push_str("<start_of_turn>model\n");
            }
            ChatTemplate::ChatMl => {
                for m in messages {
                    out.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content));
                }
                out.push_str("<|im_start|>assistant\n");
            }
            ChatTemplate::Plain => {
                for m in messages {
                    let role = match m.role.as_str() {
                        "system" => "System",
                        "assistant" => "Assistant",
                        _ => "User",
                    };
                    out.push_str(&format!("{role}: {}\n", m.content));
                }
                out.push_str("Assistant:");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs() -> Vec<Message> {
        vec![
            Message { role: "system".into(), content: "Be brief.".into() },
            Message { role: "user".into(), content: "Hi".into() },
        ]
    }

    #[test]
    fn gemma_folds_system_into_the_first_user_turn() {
        assert_eq!(
            ChatTemplate::Gemma.render(&msgs()),
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn chatml_renders_roles() {
        assert_eq!(
            ChatTemplate::ChatMl.render(&msgs()),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
