//! The generation API on the tiny random model (`kiln::testing`): validation, streaming,
//! stop conditions through the real loop, cancellation, determinism, and a multi-turn chat
//! that evaluates only the new tokens of each turn.

mod common;

use std::sync::Arc;
use std::sync::mpsc;

use kiln::chat::ChatMessage;
use kiln::generate::{GenerateError, GenerateOptions, GenerationStats, Generator, StopReason};
use kiln::testing::{self, SPECIALS};
use kiln::{CancelHandle, Error, LoadOptions, Model};

/// Id of the byte token for `b` in the tiny vocabulary.
fn byte_id(b: u8) -> u32 {
    SPECIALS.len() as u32 + u32::from(b)
}

fn tiny(opts: &LoadOptions) -> Arc<Model> {
    testing::tiny_model_with(1, opts).unwrap()
}

fn greedy(n: usize) -> GenerateOptions {
    GenerateOptions::builder()
        .max_tokens(n)
        .greedy()
        .build()
        .unwrap()
}

/// Runs a stream to the end: (items, stats).
fn run(g: &mut Generator, opts: &GenerateOptions) -> (Vec<kiln::Token>, GenerationStats) {
    let mut s = g.stream(opts).unwrap();
    let items: Vec<_> = (&mut s).map(|t| t.unwrap()).collect();
    (items, s.stats().clone())
}

fn text(items: &[kiln::Token]) -> String {
    items.iter().map(|t| t.text.as_str()).collect()
}

fn generate_err(e: Error) -> GenerateError {
    match e {
        Error::Generate(g) => g,
        other => panic!("expected a GenerateError, got {other:?}"),
    }
}

#[test]
fn validation_happens_before_any_work() {
    let model = tiny(&LoadOptions::new().context(16));
    let opts = greedy(4);
    assert!(matches!(
        generate_err(model.generate("", &opts).unwrap_err()),
        GenerateError::EmptyPrompt
    ));
    let long = "a b c d e f g h i j k l m n o p q r s t";
    assert!(matches!(
        generate_err(model.generate(long, &opts).unwrap_err()),
        GenerateError::PromptTooLong { n_ctx: 16, .. }
    ));

    let mut g = model.generator().unwrap();
    assert!(matches!(
        generate_err(g.feed_tokens(&[]).unwrap_err()),
        GenerateError::EmptyPrompt
    ));
    assert!(matches!(
        generate_err(g.feed_text("", true).unwrap_err()),
        GenerateError::EmptyPrompt
    ));
    let n_vocab = g.n_vocab() as u32;
    assert!(matches!(
        generate_err(g.feed_tokens(&[byte_id(b'a'), n_vocab]).unwrap_err()),
        GenerateError::InvalidToken { token, .. } if token == n_vocab
    ));
    assert!(matches!(
        generate_err(g.feed_text(long, true).unwrap_err()),
        GenerateError::PromptTooLong { n_ctx: 16, .. }
    ));
    // Nothing was evaluated, nothing joined the history.
    assert_eq!(
        (g.n_evaluated(), g.n_past(), g.session().n_past()),
        (0, 0, 0)
    );
    // Generating from an empty history is an error too.
    assert!(matches!(
        generate_err(g.stream(&opts).unwrap_err()),
        GenerateError::EmptyPrompt
    ));
    // Invalid options are rejected before the prompt is looked at.
    let bad = GenerateOptions::builder().temperature(-1.0).build();
    assert!(bad.is_err());

    // A model file without a tokenizer cannot generate.
    let bytes = testing::tiny_model_bytes_without_tokenizer(1).unwrap();
    let m = Model::from_bytes(bytes, &LoadOptions::new()).unwrap();
    assert!(matches!(
        generate_err(m.generate("hi", &opts).unwrap_err()),
        GenerateError::NoTokenizer
    ));
    assert!(matches!(
        generate_err(m.generator().unwrap_err()),
        GenerateError::NoTokenizer
    ));
}

#[test]
fn stream_callback_and_one_line_agree() {
    let model = tiny(&LoadOptions::new());
    let opts = greedy(12);
    let one_line = model.generate("The quick brown fox", &opts).unwrap();

    let mut g = model.generator().unwrap();
    let n = g.feed_text("The quick brown fox", true).unwrap();
    assert_eq!(n, g.n_past());
    assert_eq!(g.tokens()[0], 0, "BOS first (add_bos_token)");
    let (items, stats) = run(&mut g, &opts);
    assert_eq!(text(&items), one_line);
    assert_eq!(items.len(), 12);
    assert_eq!(stats.generated_tokens, 12);
    assert_eq!(stats.prompt_tokens, n);
    assert_eq!(stats.stop_reason, Some(StopReason::MaxTokens));
    // Every generated token joined the history; the last one waits to be evaluated.
    assert_eq!(g.n_past(), n + 12);
    assert_eq!(g.session().n_past(), n + 11);
    let ids: Vec<u32> = items.iter().map(|t| t.id).collect();
    assert_eq!(&g.tokens()[n..], &ids[..]);

    let mut g2 = model.generator().unwrap();
    g2.feed_text("The quick brown fox", true).unwrap();
    let mut seen = Vec::new();
    let stats = g2
        .generate(&opts, |t| {
            seen.push(t.id);
            true
        })
        .unwrap();
    assert_eq!(seen, ids);
    assert_eq!(stats.generated_tokens, 12);
}

#[test]
fn continuing_and_truncating_reuse_exact_logits() {
    let model = tiny(&LoadOptions::new());
    let mut g = model.generator().unwrap();
    let n = g.feed_text("Hello there", true).unwrap();
    let first = g.complete(&greedy(6)).unwrap();
    // Back to the prompt: the cached logits of the prompt are still valid.
    g.truncate(n);
    assert_eq!(g.complete(&greedy(6)).unwrap(), first);
    // Drop the prompt's last token and feed it again.
    let last = g.tokens()[n - 1];
    g.truncate(n - 1);
    g.feed_tokens(&[last]).unwrap();
    assert_eq!(g.complete(&greedy(6)).unwrap(), first);
    // Continuing evaluates the pending token, then goes on: the same as 12 at once.
    g.truncate(n);
    let a = g.complete(&greedy(6)).unwrap();
    let b = g.complete(&greedy(6)).unwrap();
    let mut h = model.generator().unwrap();
    h.feed_text("Hello there", true).unwrap();
    assert_eq!(h.complete(&greedy(12)).unwrap(), a + &b);
}

#[test]
fn streamed_text_never_splits_a_character() {
    let model = tiny(&LoadOptions::new());
    let mut g = model.generator().unwrap();
    g.feed_text("x", true).unwrap();
    // Only the bytes of "é" and "😀" may be sampled, in random order.
    let allowed: Vec<u32> = [0xC3, 0xA9, 0xF0, 0x9F, 0x98, 0x80]
        .into_iter()
        .map(byte_id)
        .collect();
    let mut b = GenerateOptions::builder()
        .max_tokens(200)
        .temperature(1.0)
        .top_k(None)
        .top_p(1.0)
        .min_p(0.0)
        .seed(3);
    for id in 0..g.n_vocab() as u32 {
        if !allowed.contains(&id) {
            b = b.logit_bias(id, f32::NEG_INFINITY);
        }
    }
    let (items, _) = run(&mut g, &b.build().unwrap());
    let mut bytes = Vec::new();
    for t in &items {
        bytes.extend(
            model
                .tokenizer()
                .unwrap()
                .token_to_piece(t.id, false)
                .unwrap(),
        );
    }
    // Streaming gives exactly the text of the whole byte sequence.
    assert_eq!(text(&items), String::from_utf8_lossy(&bytes));
    // "é" appears whole with its second byte.
    assert!(
        items.windows(2).any(|w| w[0].id == byte_id(0xC3)
            && w[1].id == byte_id(0xA9)
            && w[1].text.ends_with('é')),
        "{:?}",
        text(&items)
    );
}

/// Bans every token whose text is not printable ASCII and every control token but
/// `<|im_end|>`: then the answer text is exactly the text of the generated tokens.
fn ascii_only(
    model: &Model,
    mut b: kiln::generate::GenerateOptionsBuilder,
) -> kiln::generate::GenerateOptionsBuilder {
    let tok = model.tokenizer().unwrap();
    for id in 0..tok.n_vocab() as u32 {
        let ascii = tok
            .token_to_piece(id, false)
            .unwrap()
            .iter()
            .all(|c| (0x20..0x7F).contains(c));
        if (id != 2 && (id as usize) < SPECIALS.len()) || !ascii {
            b = b.logit_bias(id, f32::NEG_INFINITY);
        }
    }
    b
}

/// Greedy ids and their pieces for a prompt.
fn greedy_pieces(model: &Arc<Model>, prompt: &str, n: usize) -> Vec<(u32, String)> {
    let mut g = model.generator().unwrap();
    g.feed_text(prompt, true).unwrap();
    let opts = ascii_only(model, GenerateOptions::builder().max_tokens(n).greedy());
    let (items, _) = run(&mut g, &opts.build().unwrap());
    let tok = model.tokenizer().unwrap();
    items
        .iter()
        .map(|t| {
            let p = tok.token_to_piece(t.id, false).unwrap();
            (t.id, String::from_utf8(p).unwrap())
        })
        .collect()
}

#[test]
fn stop_string_split_across_two_tokens() {
    let model = tiny(&LoadOptions::new());
    let prompt = "The rain in Spain";
    let pieces = greedy_pieces(&model, prompt, 40);
    let full: String = pieces.iter().map(|(_, p)| p.as_str()).collect();
    // A stop string made of the last character of one piece and the first of the next,
    // whose first occurrence in the text is exactly at that boundary.
    let mut found = None;
    let mut offset = 0;
    for w in pieces.windows(2) {
        offset += w[0].1.len();
        let (Some(a), Some(b)) = (w[0].1.chars().last(), w[1].1.chars().next()) else {
            continue;
        };
        let stop = format!("{a}{b}");
        if full.find(&stop) == Some(offset - a.len_utf8()) {
            found = Some(stop);
            break;
        }
    }
    let stop = found.expect("a boundary-spanning stop string in 40 tokens");
    let opts = ascii_only(&model, GenerateOptions::builder().max_tokens(40).greedy())
        .stop("never appears \u{1F600}")
        .stop(stop.clone())
        .build()
        .unwrap();
    let mut g = model.generator().unwrap();
    g.feed_text(prompt, true).unwrap();
    let (items, stats) = run(&mut g, &opts);
    assert_eq!(stats.stop_reason, Some(StopReason::StopString(1)));
    assert_eq!(text(&items), full[..full.find(&stop).unwrap()]);
    for t in &items {
        assert!(!t.text.contains(&stop));
    }
}

#[test]
fn end_of_generation_and_ignore_eos() {
    let model = tiny(&LoadOptions::new());
    let im_end = 2;
    assert!(model.tokenizer().unwrap().is_eog(im_end));
    let mut g = model.generator().unwrap();
    g.feed_text("Hi", true).unwrap();
    let before = g.n_past();
    let opts = GenerateOptions::builder()
        .max_tokens(10)
        .greedy()
        .logit_bias(im_end, 1000.0)
        .build()
        .unwrap();
    let (items, stats) = run(&mut g, &opts);
    assert_eq!(stats.stop_reason, Some(StopReason::EndOfGeneration(im_end)));
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id, im_end);
    assert_eq!(items[0].text, "", "the EOG token's text is never shown");
    assert_eq!(g.n_past(), before, "EOG does not join the history");

    let opts = GenerateOptions::builder()
        .max_tokens(10)
        .greedy()
        .logit_bias(im_end, 1000.0)
        .ignore_eos(true)
        .build()
        .unwrap();
    let (items, stats) = run(&mut g, &opts);
    assert_eq!(stats.stop_reason, Some(StopReason::MaxTokens));
    assert_eq!(items.len(), 10);
    assert!(
        items
            .iter()
            .all(|t| !model.tokenizer().unwrap().is_eog(t.id))
    );
}

#[test]
fn context_full_ends_generation() {
    let model = tiny(&LoadOptions::new().context(16));
    let mut g = model.generator().unwrap();
    let n = g.feed_text("abc def", true).unwrap();
    let opts = GenerateOptions::builder()
        .greedy()
        .ignore_eos(true)
        .build()
        .unwrap();
    let (items, stats) = run(&mut g, &opts);
    assert_eq!(stats.stop_reason, Some(StopReason::ContextFull));
    // Every position filled, plus the last token sampled from the last position.
    assert_eq!(items.len(), 16 - n + 1);
    assert_eq!(g.n_past(), 16);
    // Nothing more fits: generating again says so at once.
    let (items, stats) = run(&mut g, &opts);
    assert_eq!(stats.stop_reason, Some(StopReason::ContextFull));
    assert_eq!(items.len(), 1);
}

#[test]
fn cancellation_from_another_thread() {
    let model = tiny(&LoadOptions::new());
    let handle = CancelHandle::new();
    let opts = GenerateOptions::builder()
        .greedy()
        .ignore_eos(true)
        .max_tokens(100)
        .cancel_handle(handle.clone())
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let canceller = std::thread::spawn(move || {
        rx.recv().unwrap();
        handle.cancel();
        done_tx.send(()).unwrap();
    });
    let mut g = model.generator().unwrap();
    g.feed_text("Go", true).unwrap();
    let mut n = 0;
    let stats = g
        .generate(&opts, |_| {
            n += 1;
            if n == 3 {
                tx.send(()).unwrap();
                done_rx.recv().unwrap(); // the other thread has cancelled
            }
            true
        })
        .unwrap();
    canceller.join().unwrap();
    assert_eq!(stats.stop_reason, Some(StopReason::Cancelled));
    assert_eq!(stats.generated_tokens, 3);

    // A callback returning false stops too.
    let mut g = model.generator().unwrap();
    g.feed_text("Go", true).unwrap();
    let stats = g.generate(&greedy(50), |_| false).unwrap();
    assert_eq!(stats.stop_reason, Some(StopReason::Cancelled));
    assert_eq!(stats.generated_tokens, 1);
}

#[test]
fn same_seed_same_text_and_greedy_ignores_seed_and_threads() {
    let sampled = |threads: usize, seed: u64| {
        let model = tiny(&LoadOptions::new().threads(threads));
        let opts = GenerateOptions::builder()
            .max_tokens(24)
            .temperature(1.0)
            .seed(seed)
            .build()
            .unwrap();
        model.generate("Once upon", &opts).unwrap()
    };
    assert_eq!(sampled(2, 42), sampled(2, 42));
    assert_eq!(sampled(1, 7), sampled(1, 7));
    // The draw does depend on the seed (over a few seeds, at least one differs).
    let a = sampled(1, 1);
    assert!((2..6).any(|s| sampled(1, s) != a));

    let greedy_text = |threads: usize, seed: u64| {
        let model = tiny(&LoadOptions::new().threads(threads));
        let opts = GenerateOptions::builder()
            .max_tokens(24)
            .greedy()
            .seed(seed)
            .build()
            .unwrap();
        model.generate("Once upon", &opts).unwrap()
    };
    let g = greedy_text(1, 1);
    assert_eq!(greedy_text(2, 1), g);
    assert_eq!(greedy_text(1, 99), g);
    assert_eq!(greedy_text(2, 12345), g);
}

#[test]
fn three_turn_chat_evaluates_only_new_tokens() {
    let model = tiny(&LoadOptions::new());
    let tok = model.tokenizer().unwrap();
    let opts = ascii_only(&model, GenerateOptions::builder().max_tokens(6).greedy())
        .build()
        .unwrap();
    let mut chat = model.chat().unwrap();
    chat.set_system("Be brief.");
    let template = chat.template().clone();

    let mut total_evaluated = 0;
    let mut prev_prompt: Option<String> = None;
    for (turn, user) in ["Hello!", "What is the capital of France?", "Thanks."]
        .iter()
        .enumerate()
    {
        let hist_before = chat.generator().tokens().to_vec();
        let kv_before = chat.generator().session().n_past();
        let mut msgs = chat.messages().to_vec();
        msgs.push(ChatMessage::new("user", *user));
        let prompt = template.render(&msgs, true).unwrap();
        // The tokens this turn must add: the whole prompt at first, then only the text after
        // the previous prompt and answer (closing of the answer, the new user message, the
        // assistant header).
        let expected_new = match &prev_prompt {
            None => tok.encode(&prompt, true, true).unwrap(),
            Some(prev) => {
                let answer = &chat.messages().last().unwrap().content;
                let seen = format!("{prev}{answer}");
                assert!(prompt.starts_with(&seen));
                tok.encode(&prompt[seen.len()..], false, true).unwrap()
            }
        };
        let mut stream = chat.send(user, &opts).unwrap();
        let evaluated = stream.stats().prompt_tokens;
        let tokens = stream.generator().tokens().to_vec();
        assert_eq!(
            &tokens[..hist_before.len()],
            &hist_before[..],
            "turn {turn}"
        );
        assert_eq!(
            &tokens[hist_before.len()..],
            &expected_new[..],
            "turn {turn}"
        );
        // Evaluated: what the cache did not hold (the answer's last token, pending) and the
        // new tokens; nothing else.
        assert_eq!(evaluated, tokens.len() - kv_before, "turn {turn}");
        assert_eq!(
            evaluated,
            hist_before.len() - kv_before + expected_new.len(),
            "turn {turn}"
        );
        assert!(hist_before.len() - kv_before <= 1);
        let mut answer = String::new();
        for t in &mut stream {
            answer.push_str(&t.unwrap().text);
        }
        let generated = stream.stats().generated_tokens;
        drop(stream);
        total_evaluated += evaluated + generated.saturating_sub(1);
        assert_eq!(chat.messages().last().unwrap().content, answer);
        prev_prompt = Some(prompt);
    }
    assert_eq!(chat.messages().len(), 7);
    assert_eq!(chat.generator().n_evaluated(), total_evaluated);

    // /reset: the system message stays, the context empties.
    chat.reset();
    assert_eq!(chat.n_past(), 0);
    assert_eq!(chat.messages().len(), 1);
    let again = chat.reply("Hello!", &opts).unwrap();
    assert!(!again.contains("<|im_end|>"));
}

#[test]
fn chat_after_a_stop_string_keeps_the_common_prefix() {
    let model = tiny(&LoadOptions::new());
    let tok = model.tokenizer().unwrap();
    let mut chat = model.chat().unwrap();
    let first_prompt = chat
        .template()
        .render(&[ChatMessage::new("user", "Hi")], true)
        .unwrap();
    let first_prompt_len = tok.encode(&first_prompt, true, true).unwrap().len();
    let plain = GenerateOptions::builder()
        .max_tokens(8)
        .greedy()
        .ignore_eos(true)
        .build()
        .unwrap();
    let first = chat.reply("Hi", &plain).unwrap();
    let c = first.chars().nth(2).expect("three characters").to_string();
    let opts = GenerateOptions::builder()
        .max_tokens(8)
        .greedy()
        .ignore_eos(true)
        .stop(c.clone())
        .build()
        .unwrap();
    chat.reset();
    let cut = chat.reply("Hi", &opts).unwrap();
    assert!(!cut.contains(&c));
    let stream = chat.send("More", &plain).unwrap();
    // The answer text no longer matches its tokens: the context is kept up to the first
    // difference, which lies after the first prompt.
    let evaluated = stream.stats().prompt_tokens;
    let total = stream.generator().tokens().len();
    assert!(evaluated < total, "{evaluated} of {total}");
    assert!(total - evaluated >= first_prompt_len);
}
