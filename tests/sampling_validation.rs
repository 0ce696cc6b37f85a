//! Every validation error: typed, raised before any sampling work, never a panic.

use kiln::sampling::{
    Candidates, Greedy, LogitBias, MinP, MirostatParams, MirostatV2, Penalties, SamplerChain,
    SamplingError, SamplingParams, Temperature, TopK, TopP, Typical,
};

fn build_err(p: SamplingParams) -> SamplingError {
    match p.build(0) {
        Ok(_) => panic!("accepted invalid params"),
        Err(e) => e,
    }
}

#[test]
fn temperature() {
    for t in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.1] {
        assert!(matches!(
            Temperature::new(t),
            Err(SamplingError::InvalidTemperature(_))
        ));
        let e = build_err(SamplingParams {
            temperature: t,
            ..Default::default()
        });
        assert!(matches!(e, SamplingError::InvalidTemperature(_)), "{e}");
    }
    assert!(Temperature::new(0.0).is_ok());
}

#[test]
fn top_k() {
    assert!(matches!(TopK::new(0), Err(SamplingError::InvalidTopK)));
    let e = build_err(SamplingParams {
        top_k: Some(0),
        ..Default::default()
    });
    assert!(matches!(e, SamplingError::InvalidTopK));
    assert!(TopK::new(1).is_ok());
}

#[test]
fn top_p() {
    for p in [0.0, -0.1, 1.0001, f32::NAN, f32::INFINITY] {
        assert!(
            matches!(TopP::new(p, 0), Err(SamplingError::InvalidTopP(_))),
            "{p}"
        );
        let e = build_err(SamplingParams {
            top_p: p,
            ..Default::default()
        });
        assert!(matches!(e, SamplingError::InvalidTopP(_)));
    }
    assert!(TopP::new(1.0, 0).is_ok());
    assert!(TopP::new(f32::MIN_POSITIVE, 0).is_ok());
}

#[test]
fn min_p_and_typical() {
    for p in [-0.1, 1.5, f32::NAN, f32::NEG_INFINITY] {
        assert!(matches!(
            MinP::new(p, 0),
            Err(SamplingError::InvalidMinP(_))
        ));
        assert!(matches!(
            Typical::new(p, 0),
            Err(SamplingError::InvalidTypicalP(_))
        ));
        assert!(matches!(
            build_err(SamplingParams {
                min_p: p,
                ..Default::default()
            }),
            SamplingError::InvalidMinP(_)
        ));
        assert!(matches!(
            build_err(SamplingParams {
                typical_p: p,
                ..Default::default()
            }),
            SamplingError::InvalidTypicalP(_)
        ));
    }
    assert!(MinP::new(0.0, 0).is_ok() && MinP::new(1.0, 0).is_ok());
}

#[test]
fn penalties() {
    for r in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert!(matches!(
            Penalties::new(64, r, 0.0, 0.0),
            Err(SamplingError::InvalidPenalty {
                name: "repeat penalty",
                ..
            })
        ));
    }
    for x in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        assert!(matches!(
            Penalties::new(64, 1.1, x, 0.0),
            Err(SamplingError::InvalidPenalty {
                name: "frequency penalty",
                ..
            })
        ));
        assert!(matches!(
            Penalties::new(64, 1.1, 0.0, x),
            Err(SamplingError::InvalidPenalty {
                name: "presence penalty",
                ..
            })
        ));
        // Invalid even when the penalties would be off (last_n = 0).
        assert!(matches!(
            build_err(SamplingParams {
                presence_penalty: x,
                penalty_last_n: 0,
                ..Default::default()
            }),
            SamplingError::InvalidPenalty { .. }
        ));
    }
    // Negative frequency / presence are allowed; a huge last_n does not allocate hugely.
    assert!(Penalties::new(usize::MAX, 1.1, -0.5, -0.5).is_ok());
}

#[test]
fn logit_bias() {
    for b in [f32::NAN, f32::INFINITY] {
        assert!(matches!(
            LogitBias::new([(3, b)]),
            Err(SamplingError::InvalidLogitBias { token: 3, .. })
        ));
    }
    assert!(matches!(
        LogitBias::new([(1, 3e38), (1, 3e38)]),
        Err(SamplingError::InvalidLogitBias { token: 1, .. })
    ));
    assert!(LogitBias::new([(3, f32::NEG_INFINITY), (3, 1.0)]).is_ok());
    assert!(matches!(
        build_err(SamplingParams {
            logit_bias: vec![(0, 1.0), (5, f32::NAN)],
            ..Default::default()
        }),
        SamplingError::InvalidLogitBias { token: 5, .. }
    ));
}

#[test]
fn mirostat() {
    assert!(matches!(
        MirostatV2::new(0, f32::NAN, 0.1),
        Err(SamplingError::InvalidMirostat { name: "tau", .. })
    ));
    assert!(matches!(
        MirostatV2::new(0, 5.0, -0.1),
        Err(SamplingError::InvalidMirostat { name: "eta", .. })
    ));
    assert!(matches!(
        build_err(SamplingParams {
            mirostat: Some(MirostatParams {
                tau: f32::INFINITY,
                eta: 0.1
            }),
            ..Default::default()
        }),
        SamplingError::InvalidMirostat { .. }
    ));
}

#[test]
fn bad_logits_are_errors() {
    let mut chain = SamplingParams::default().build(1).unwrap();
    let mut l = vec![0.5f32; 100];
    l[37] = f32::NAN;
    match chain.sample(&l) {
        Err(SamplingError::NonFiniteLogit {
            index: 37,
            token: 37,
            stage: "input",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    l[37] = f32::INFINITY;
    assert!(matches!(
        chain.sample(&l),
        Err(SamplingError::NonFiniteLogit { index: 37, .. })
    ));
    // -inf is a mask, not an error.
    l[37] = f32::NEG_INFINITY;
    let t = chain.sample(&l).unwrap();
    assert_ne!(t, 37);
    // Everything masked, or nothing at all.
    assert!(matches!(
        chain.sample(&[f32::NEG_INFINITY; 10]),
        Err(SamplingError::AllMasked(_))
    ));
    assert!(matches!(
        chain.sample(&[]),
        Err(SamplingError::NoCandidates)
    ));
    let mut greedy = SamplerChain::new().with(Greedy::new());
    assert!(matches!(
        greedy.sample(&[f32::NEG_INFINITY; 10]),
        Err(SamplingError::AllMasked(10))
    ));
    // Caller-built lists are validated too.
    let mut c = Candidates::new();
    c.fill_from_logits(&[1.0, 2.0]).unwrap();
    c.as_mut_slice()[0].logit = f32::NAN;
    assert!(matches!(
        greedy.sample_candidates(&mut c),
        Err(SamplingError::NonFiniteLogit { index: 0, .. })
    ));
}

#[test]
fn rejected_logits_leave_the_chain_untouched() {
    // An error before any work: no penalty history, no random number consumed.
    let params = SamplingParams {
        repeat_penalty: 1.5,
        temperature: 1.5,
        ..Default::default()
    };
    let good: Vec<Vec<f32>> = (0..20)
        .map(|s| {
            (0..500)
                .map(|i| ((i * 31 + s * 17) % 101) as f32 * 0.05)
                .collect()
        })
        .collect();
    let mut bad = good[0].clone();
    bad[250] = f32::NAN;
    let mut a = params.build(11).unwrap();
    let mut b = params.build(11).unwrap();
    for g in &good {
        assert!(a.sample(&bad).is_err());
        assert_eq!(a.sample(g).unwrap(), b.sample(g).unwrap());
    }
}

#[test]
fn overflow_inside_the_chain_is_an_error() {
    let mut chain = SamplerChain::new()
        .with(Temperature::new(1e-10).unwrap())
        .with(Greedy::new());
    assert!(matches!(
        chain.sample(&[1e30, 0.0]),
        Err(SamplingError::NonFiniteLogit {
            stage: "temperature",
            ..
        })
    ));
    let mut pen = Penalties::new(4, 0.5, 0.0, 0.0).unwrap();
    kiln::sampling::Sampler::accept(&mut pen, 0);
    let mut chain = SamplerChain::new().with(pen).with(Greedy::new());
    assert!(matches!(
        chain.sample(&[3e38, 0.0]),
        Err(SamplingError::NonFiniteLogit {
            stage: "penalties",
            ..
        })
    ));
    let mut chain = SamplerChain::new()
        .with(LogitBias::new([(0, 3e38)]).unwrap())
        .with(Greedy::new());
    assert!(matches!(
        chain.sample(&[3e38, 0.0]),
        Err(SamplingError::NonFiniteLogit {
            stage: "logit-bias",
            ..
        })
    ));
}

#[test]
fn chain_without_selector() {
    let mut chain = SamplerChain::new().with(TopK::new(3).unwrap());
    assert!(matches!(
        chain.sample(&[1.0, 2.0, 3.0, 4.0]),
        Err(SamplingError::NoTokenSelected)
    ));
    let mut empty = SamplerChain::new();
    assert!(matches!(
        empty.sample(&[1.0]),
        Err(SamplingError::NoTokenSelected)
    ));
}

#[test]
fn messages_name_the_problem() {
    let e = TopP::new(1.5, 0).unwrap_err();
    assert_eq!(e.to_string(), "top-p must be in (0, 1], got 1.5");
    let e: kiln::Error = TopK::new(0).unwrap_err().into();
    assert!(e.to_string().contains("top-k"));
}
