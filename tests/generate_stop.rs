//! Stop conditions and generation options, without a model: a scripted fake session plays
//! the model's part in the loop the real session will run.

use std::sync::mpsc;
use std::thread;

use kiln::generate::{
    CancelHandle, GenerateError, GenerateOptions, StopChecker, StopReason, StopStrings,
};
use kiln::sampling::{SamplingError, TokenId};

/// Streams `pieces` through a matcher; returns the released text and the match.
fn stream(stops: &[&str], pieces: &[&str]) -> (String, Option<usize>, Vec<String>) {
    let mut s = StopStrings::new(stops.iter().copied()).unwrap();
    let mut all = String::new();
    let mut per_piece = Vec::new();
    for p in pieces {
        let mut out = String::new();
        let m = s.push(p, &mut out);
        all.push_str(&out);
        per_piece.push(out);
        if m.is_some() {
            return (all, m, per_piece);
        }
    }
    let mut out = String::new();
    s.flush(&mut out);
    all.push_str(&out);
    per_piece.push(out);
    (all, None, per_piece)
}

#[test]
fn stop_string_split_across_two_tokens() {
    let (text, m, per) = stream(&["###"], &["Hello", " world#", "##", "rest"]);
    assert_eq!(text, "Hello world");
    assert_eq!(m, Some(0));
    // The '#' that might start the stop string was held back, never released.
    assert_eq!(per, ["Hello", " world", ""]);
}

#[test]
fn stop_string_across_many_tokens_and_at_the_start() {
    let (text, m, _) = stream(&["<|end|>"], &["ok", "<", "|e", "nd", "|>", "after"]);
    assert_eq!((text.as_str(), m), ("ok", Some(0)));
    let (text, m, _) = stream(&["<|end|>"], &["<|end|>tail"]);
    assert_eq!((text.as_str(), m), ("", Some(0)));
    // Text after the stop string inside the same piece is dropped too.
    let (text, m, _) = stream(&["STOP"], &["abcSTOPdef"]);
    assert_eq!((text.as_str(), m), ("abc", Some(0)));
}

#[test]
fn partial_match_released_when_it_fails() {
    let (text, m, per) = stream(&["###"], &["a#", "#b", "c"]);
    assert_eq!(text, "a##bc");
    assert_eq!(m, None);
    assert_eq!(per, ["a", "##b", "c", ""]);
    // Held at the end of the stream: released by flush.
    let (text, m, per) = stream(&["###"], &["x", "y##"]);
    assert_eq!((text.as_str(), m), ("xy##", None));
    assert_eq!(per, ["x", "y", "##"]);
    // A failed partial match that overlaps the start of a real one.
    let (text, m, _) = stream(&["aab"], &["a", "a", "a", "b"]);
    assert_eq!((text.as_str(), m), ("a", Some(0)));
}

#[test]
fn first_occurring_stop_string_wins() {
    let (text, m, _) = stream(&["world", "lo w"], &["hel", "lo wor", "ld"]);
    assert_eq!((text.as_str(), m), ("hel", Some(1)));
    let (text, m, _) = stream(&["\n\n", "User:"], &["Sure.\n", "\nUser:"]);
    assert_eq!((text.as_str(), m), ("Sure.", Some(0)));
}

#[test]
fn no_stop_strings_release_everything_at_once() {
    let (_, _, per) = stream(&[], &["a#", "b"]);
    assert_eq!(per, ["a#", "b", ""]);
}

/// A scripted stand-in for the model session: returns one-hot-ish logits that make greedy
/// decoding produce `script`, and counts how often it was asked.
struct FakeSession {
    n_vocab: usize,
    script: Vec<TokenId>,
    step: usize,
    logits: Vec<f32>,
}

impl FakeSession {
    fn new(n_vocab: usize, script: &[TokenId]) -> Self {
        Self {
            n_vocab,
            script: script.to_vec(),
            step: 0,
            logits: vec![0.0; n_vocab],
        }
    }

    fn next_logits(&mut self) -> &[f32] {
        self.logits.fill(0.0);
        let t = self.script[self.step % self.script.len()] as usize;
        self.logits[t] = 10.0;
        self.step += 1;
        &self.logits[..self.n_vocab]
    }
}

const VOCAB: [&str; 8] = ["<eos>", "Hello", ",", " wor", "ld", "#", "##", "!"];
const EOS: TokenId = 0;

/// The loop the real session will run, on the fake one. Returns the text as the callback
/// saw it (pieces joined), the reason, and how many tokens were sampled.
fn generate(opts: &GenerateOptions, script: &[TokenId]) -> (Vec<String>, StopReason, usize) {
    let mut session = FakeSession::new(VOCAB.len(), script);
    let mut chain = opts.sampler_chain(&[EOS]).unwrap();
    let mut stop = opts.stop_checker(&[EOS]).unwrap();
    let mut shown = Vec::new();
    let mut out = String::new();
    let mut sampled = 0;
    let reason = loop {
        if let Some(r) = stop.before_step() {
            break r;
        }
        let tok = chain.sample(session.next_logits()).unwrap();
        sampled += 1;
        out.clear();
        let r = stop.on_token(tok, VOCAB[tok as usize], &mut out);
        shown.push(out.clone());
        if let Some(r) = r {
            break r;
        }
    };
    out.clear();
    stop.finish(&mut out);
    shown.push(out.clone());
    (shown, reason, sampled)
}

#[test]
fn loop_stops_at_end_of_generation() {
    let opts = GenerateOptions::builder().greedy().build().unwrap();
    let (shown, reason, n) = generate(&opts, &[1, 2, 3, 4, 5, EOS, 7]);
    assert_eq!(reason, StopReason::EndOfGeneration(EOS));
    assert_eq!(n, 6);
    assert_eq!(shown.concat(), "Hello, world#");
}

#[test]
fn loop_stops_at_token_limit_keeping_the_last_token() {
    let opts = GenerateOptions::builder()
        .greedy()
        .max_tokens(4)
        .stop("##!")
        .build()
        .unwrap();
    // "Hello" "," " wor" "#": the last '#' could start "##!" but the limit releases it.
    let (shown, reason, n) = generate(&opts, &[1, 2, 3, 5, 6, 7]);
    assert_eq!(reason, StopReason::MaxTokens);
    assert_eq!(n, 4);
    assert_eq!(shown.concat(), "Hello, wor#");
    assert_eq!(shown[3], "#", "held text is released with the last token");
}

#[test]
fn loop_stops_at_stop_string_split_across_tokens() {
    let opts = GenerateOptions::builder()
        .greedy()
        .stop("###")
        .max_tokens(100)
        .build()
        .unwrap();
    let (shown, reason, n) = generate(&opts, &[1, 5, 6, 7]);
    assert_eq!(reason, StopReason::StopString(0));
    assert_eq!(n, 3);
    assert_eq!(shown, ["Hello", "", "", ""]);
}

#[test]
fn ignore_eos_bans_and_does_not_stop() {
    let opts = GenerateOptions::builder()
        .greedy()
        .ignore_eos(true)
        .max_tokens(3)
        .build()
        .unwrap();
    // The script asks for EOS first; it is banned, so the next best token (id 1: ties at
    // logit 0 go to the first) is chosen instead, and generation runs to the limit.
    let (shown, reason, n) = generate(&opts, &[EOS, EOS, EOS]);
    assert_eq!(reason, StopReason::MaxTokens);
    assert_eq!(n, 3);
    assert_eq!(shown.concat(), "HelloHelloHello");
}

#[test]
fn cancel_from_another_thread() {
    let handle = CancelHandle::new();
    let opts = GenerateOptions::builder()
        .greedy()
        .cancel_handle(handle.clone())
        .build()
        .unwrap();
    let (progress_tx, progress_rx) = mpsc::channel::<usize>();
    let (ack_tx, ack_rx) = mpsc::channel::<()>();
    let canceller = thread::spawn(move || {
        // Cancel when the generator reports its 5th token, then let it go on.
        for n in progress_rx {
            if n == 5 {
                handle.cancel();
            }
            ack_tx.send(()).unwrap();
        }
    });
    let mut session = FakeSession::new(VOCAB.len(), &[1, 2, 3, 4]);
    let mut chain = opts.sampler_chain(&[EOS]).unwrap();
    let mut stop = opts.stop_checker(&[EOS]).unwrap();
    let mut out = String::new();
    let reason = loop {
        if let Some(r) = stop.before_step() {
            break r;
        }
        let tok = chain.sample(session.next_logits()).unwrap();
        if let Some(r) = stop.on_token(tok, VOCAB[tok as usize], &mut out) {
            break r;
        }
        progress_tx.send(stop.generated()).unwrap();
        ack_rx.recv().unwrap();
    };
    drop(progress_tx);
    canceller.join().unwrap();
    assert_eq!(reason, StopReason::Cancelled);
    assert_eq!(stop.generated(), 5);
    assert_eq!(
        out, "Hello, worldHello",
        "the script cycles: 5 tokens were delivered"
    );
    assert!(opts.cancel_handle().unwrap().is_cancelled());
    opts.cancel_handle().unwrap().reset();
    assert!(!opts.cancel_handle().unwrap().is_cancelled());
}

#[test]
fn checker_is_terminal_and_resettable() {
    let stops = StopStrings::new(["!"]).unwrap();
    let mut c = StopChecker::new(Some(10), &[0], stops, None);
    let mut out = String::new();
    assert_eq!(
        c.on_token(3, "hi!", &mut out),
        Some(StopReason::StopString(0))
    );
    assert_eq!(
        c.on_token(3, "more", &mut out),
        Some(StopReason::StopString(0))
    );
    assert_eq!(c.before_step(), Some(StopReason::StopString(0)));
    c.finish(&mut out);
    assert_eq!(out, "hi");
    c.reset();
    assert_eq!(c.before_step(), None);
    assert!(c.is_eog(0) && !c.is_eog(3));
}

#[test]
fn options_validation() {
    assert!(matches!(
        GenerateOptions::builder().max_tokens(0).build(),
        Err(GenerateError::ZeroMaxTokens)
    ));
    assert!(matches!(
        GenerateOptions::builder().stop("a").stop("").build(),
        Err(GenerateError::EmptyStopString { index: 1 })
    ));
    assert!(matches!(
        GenerateOptions::builder().temperature(f32::NAN).build(),
        Err(GenerateError::Sampling(SamplingError::InvalidTemperature(
            _
        )))
    ));
    assert!(matches!(
        GenerateOptions::builder().top_p(0.0).build(),
        Err(GenerateError::Sampling(SamplingError::InvalidTopP(_)))
    ));
    assert!(matches!(
        GenerateOptions::builder()
            .logit_bias(3, f32::INFINITY)
            .build(),
        Err(GenerateError::Sampling(SamplingError::InvalidLogitBias {
            token: 3,
            ..
        }))
    ));
    let e: kiln::Error = GenerateOptions::builder()
        .max_tokens(0)
        .build()
        .unwrap_err()
        .into();
    assert_eq!(e.to_string(), "max_tokens must be at least 1");

    let d = GenerateOptions::default();
    assert_eq!(d.max_tokens(), None);
    assert_eq!(d.seed(), None);
    assert!(d.validate().is_ok());
    let o = GenerateOptions::builder()
        .seed(9)
        .mirostat_v2(5.0, 0.1)
        .stop_strings(["a", "b"])
        .build()
        .unwrap();
    assert_eq!(o.seed(), Some(9));
    assert_eq!(o.stop_strings(), ["a", "b"]);
    assert!(o.sampling().mirostat.is_some());
}

#[test]
fn seeded_options_reproduce() {
    let opts = GenerateOptions::builder()
        .seed(123)
        .temperature(1.5)
        .build()
        .unwrap();
    let l: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
    let run = || {
        let mut chain = opts.sampler_chain(&[]).unwrap();
        (0..30)
            .map(|_| chain.sample(&l).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}
