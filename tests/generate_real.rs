//! The generation API on the real models: determinism over seeds and thread counts, a stop
//! string split across two tokens, and a three-turn chat with SmolLM2's own Jinja template
//! that evaluates only the new tokens of each turn.

mod common;

use std::sync::Arc;

use kiln::chat::ChatMessage;
use kiln::generate::{GenerateOptions, StopReason};
use kiln::{LoadOptions, Model};

fn smollm2(threads: usize) -> Option<Arc<Model>> {
    let p = common::model(common::SMOLLM2)?;
    let opts = LoadOptions::new().threads(threads).context(512);
    Some(Model::load_with(p, &opts).unwrap())
}

#[test]
fn same_seed_same_text_and_greedy_ignores_seed_and_threads() {
    let Some(m1) = smollm2(1) else { return };
    let m2 = smollm2(2).unwrap();
    let prompt = "Once upon a time";
    let sampled = |m: &Arc<Model>, seed: u64| {
        let opts = GenerateOptions::builder()
            .max_tokens(20)
            .temperature(0.9)
            .seed(seed)
            .build()
            .unwrap();
        m.generate(prompt, &opts).unwrap()
    };
    assert_eq!(sampled(&m2, 42), sampled(&m2, 42));
    assert_eq!(sampled(&m1, 42), sampled(&m1, 42));
    // The forward pass is bit-identical across thread counts, so even sampling agrees.
    assert_eq!(sampled(&m1, 42), sampled(&m2, 42));

    let greedy = |m: &Arc<Model>, seed: u64| {
        let opts = GenerateOptions::builder()
            .max_tokens(20)
            .greedy()
            .seed(seed)
            .build()
            .unwrap();
        m.generate(prompt, &opts).unwrap()
    };
    let g = greedy(&m1, 1);
    assert_eq!(greedy(&m2, 1), g);
    assert_eq!(greedy(&m1, 2), g);
    assert_eq!(greedy(&m2, 3), g);
}

#[test]
fn stop_string_split_across_two_tokens() {
    let Some(m) = smollm2(0) else { return };
    let tok = m.tokenizer().unwrap();
    let prompt = "The capital of France is";
    let mut g = m.generator().unwrap();
    g.feed_text(prompt, true).unwrap();
    let n = g.n_past();
    let opts = GenerateOptions::builder()
        .max_tokens(24)
        .greedy()
        .build()
        .unwrap();
    let full = g.complete(&opts).unwrap();
    let pieces: Vec<String> = g.tokens()[n..]
        .iter()
        .map(|&id| String::from_utf8(tok.token_to_piece(id, false).unwrap()).unwrap())
        .collect();
    // The last two characters of one piece and the first of the next, first found at that
    // boundary.
    let mut offset = 0;
    let mut stop = None;
    for w in pieces.windows(2) {
        offset += w[0].len();
        let a: String = {
            let cs: Vec<char> = w[0].chars().collect();
            cs[cs.len().saturating_sub(2)..].iter().collect()
        };
        let Some(b) = w[1].chars().next() else {
            continue;
        };
        if a.chars().count() < 2 || a.trim().is_empty() {
            continue;
        }
        let s = format!("{a}{b}");
        if full.find(&s) == Some(offset - a.len()) {
            stop = Some(s);
            break;
        }
    }
    let stop = stop.expect("a stop string across a token boundary");
    let opts = GenerateOptions::builder()
        .max_tokens(24)
        .greedy()
        .stop(stop.clone())
        .build()
        .unwrap();
    let mut g = m.generator().unwrap();
    g.feed_text(prompt, true).unwrap();
    let mut stream = g.stream(&opts).unwrap();
    let mut text = String::new();
    for t in &mut stream {
        let t = t.unwrap();
        assert!(!t.text.contains(&stop));
        text.push_str(&t.text);
    }
    assert_eq!(stream.stop_reason(), Some(StopReason::StopString(0)));
    assert_eq!(text, full[..full.find(&stop).unwrap()], "stop {stop:?}");
}

#[test]
fn three_turn_chat_evaluates_only_new_tokens() {
    let Some(m) = smollm2(0) else { return };
    let tok = m.tokenizer().unwrap();
    let opts = GenerateOptions::builder()
        .max_tokens(12)
        .greedy()
        .build()
        .unwrap();
    let mut chat = m.chat().unwrap();
    let mut msgs: Vec<ChatMessage> = Vec::new();
    for user in [
        "What is the capital of France?",
        "And of Italy?",
        "Thank you!",
    ] {
        let hist_before = chat.generator().tokens().to_vec();
        let kv_before = chat.generator().session().n_past();
        msgs.push(ChatMessage::new("user", user));
        let rendered = chat.template().render(&msgs, true).unwrap();
        let full = tok.encode(&rendered, true, true).unwrap();
        let mut stream = chat.send(user, &opts).unwrap();
        let evaluated = stream.stats().prompt_tokens;
        let tokens = stream.generator().tokens().to_vec();
        // Nothing of the history was dropped; only what the cache lacked was evaluated.
        assert_eq!(&tokens[..hist_before.len()], &hist_before[..], "{user}");
        assert_eq!(evaluated, tokens.len() - kv_before, "{user}");
        if hist_before.is_empty() {
            assert_eq!(tokens, full);
        } else {
            assert!(evaluated < full.len() / 2, "{evaluated} of {}", full.len());
            // The new tokens are the closing of the last answer and the new turn.
            assert_eq!(
                &tokens[hist_before.len()..],
                &tok.encode(&chat_delta(&rendered, &msgs), false, true)
                    .unwrap()[..],
                "{user}"
            );
        }
        let mut answer = String::new();
        for t in &mut stream {
            answer.push_str(&t.unwrap().text);
        }
        drop(stream);
        assert!(!answer.is_empty());
        msgs.push(ChatMessage::new("assistant", answer));
    }
    assert_eq!(chat.messages(), &msgs[..]);
}

/// The text of the prompt after the previous answer: from the end of that answer's content.
fn chat_delta(prompt: &str, msgs: &[ChatMessage]) -> String {
    let answer = &msgs[msgs.len() - 2].content;
    let at = prompt.rfind(answer.as_str()).expect("the previous answer") + answer.len();
    prompt[at..].to_string()
}
