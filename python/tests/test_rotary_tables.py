"""flashmlir.rotary_tables: RoPE tables from a base and transformers'
scaling rules, checked against transformers' own rope init functions (its
inverse frequencies and attention factor) and a float64 evaluation of the
tables; and the tables driving the fused RoPE of flashmlir.attention on the
CPU against rotate-then-attend."""

import numpy as np
import pytest

import flashmlir
from flashmlir._rotary import inv_freq


def _hf(kind, params, head_dim=128, max_pos=4096, seq_len=None, partial=1.0):
    transformers = pytest.importorskip("transformers")
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    rope = {"rope_type": kind, "rope_theta": 500000.0, **params}
    if partial != 1.0:
        rope["partial_rotary_factor"] = partial
    cfg = transformers.LlamaConfig(hidden_size=head_dim * 4, num_attention_heads=4,
                                   head_dim=head_dim, max_position_embeddings=max_pos,
                                   rope_parameters=rope)
    f, att = ROPE_INIT_FUNCTIONS[kind](cfg, "cpu", seq_len=seq_len)
    return cfg, f.double().numpy(), float(att)


CASES = [
    ("linear", {"factor": 4.0}, None),
    ("dynamic", {"factor": 2.0}, 3000),    # below max_position_embeddings: unscaled
    ("dynamic", {"factor": 2.0}, 16384),
    ("yarn", {"factor": 8.0, "original_max_position_embeddings": 4096}, None),
    ("yarn", {"factor": 4.0, "original_max_position_embeddings": 2048, "beta_fast": 16,
              "beta_slow": 2, "mscale": 1.0, "mscale_all_dim": 0.5}, None),
    ("yarn", {"factor": 4.0, "original_max_position_embeddings": 2048,
              "attention_factor": 1.3, "truncate": False}, None),
    ("llama3", {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}, None),
]


@pytest.mark.parametrize("kind,params,seq_len", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("partial", [1.0, 0.5])
def test_inv_freq_matches_transformers(kind, params, seq_len, partial):
    cfg, ref, ref_att = _hf(kind, params, seq_len=seq_len, partial=partial)
    R = int(128 * partial)
    scaling = {"rope_type": kind, **params}
    if kind == "dynamic":
        scaling["max_position_embeddings"] = 4096
    got, att = inv_freq(R, 500000.0, scaling, seq_len)
    # transformers forms them in float32.
    np.testing.assert_allclose(np.asarray(got), ref, rtol=2e-6, atol=0)
    assert att == pytest.approx(ref_att, rel=1e-6)
    cos, sin = flashmlir.rotary_tables_from_config(cfg, 64, seq_len=seq_len)
    assert cos.shape == (64, R // 2) and cos.dtype == np.float32
    np.testing.assert_allclose(cos, np.cos(np.arange(64)[:, None] * np.asarray(got)) * att,
                               rtol=0, atol=1e-6)


def test_default_tables_float64_exact_at_128k():
    """Row p is cos / sin(p * base^(-2i/R)) to float32 rounding even at 128k
    (phases in float64), where a float32 phase is off by ~1e-2 rad."""
    R, P = 128, 131072
    cos, sin = flashmlir.rotary_tables(P, R, base=10000.0)
    assert cos.shape == (P, R // 2)
    rows = np.array([0, 1, 4095, 65537, P - 1])
    f = 10000.0 ** (-np.arange(0, R, 2, dtype=np.float64) / R)
    ph = rows[:, None].astype(np.float64) * f[None, :]
    np.testing.assert_allclose(cos[rows], np.cos(ph), rtol=0, atol=2 ** -23)
    np.testing.assert_allclose(sin[rows], np.sin(ph), rtol=0, atol=2 ** -23)
    ph32 = rows[:, None].astype(np.float32) * f[None, :].astype(np.float32)
    assert np.abs(np.cos(ph32.astype(np.float64)) - np.cos(ph)).max() > 1e-3


def test_linear_equals_interpolated_positions():
    """Linear scaling by f is the default tables at positions p / f."""
    c1, s1 = flashmlir.rotary_tables(64, 32, scaling={"rope_type": "linear", "factor": 4.0})
    f = 10000.0 ** (-np.arange(0, 32, 2) / 32)
    np.testing.assert_allclose(c1, np.cos((np.arange(64) / 4.0)[:, None] * f), atol=1e-6)
    np.testing.assert_allclose(s1, np.sin((np.arange(64) / 4.0)[:, None] * f), atol=1e-6)


def test_tables_drive_fused_rope_cpu():
    """YaRN tables through flashmlir.attention's fused RoPE equal rotating q /
    k in float64 with the same tables and attending (the attention factor
    scales both, so the scores by its square)."""
    torch = pytest.importorskip("torch")
    from reference import rope_reference
    g = torch.Generator().manual_seed(7)
    B, H, N, D = 1, 2, 40, 64
    q, k, v = (torch.randn(B, H, N, D, generator=g, dtype=torch.float32) for _ in range(3))
    cos, sin = flashmlir.rotary_tables(
        N, D, base=10000.0, device="cpu",
        scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16})
    o = flashmlir.attention(q, k, v, causal=True, rotary_cos=cos, rotary_sin=sin)
    do = np.zeros((B, H, N, D))
    ref = rope_reference(q.numpy(), k.numpy(), v.numpy(), do, cos.numpy(), sin.numpy(), False,
                         causal=True)[0]
    err = np.linalg.norm(o.double().numpy() - ref) / np.linalg.norm(ref)
    assert err < 1e-5, err


def test_scaling_dict_as_transformers_writes_it():
    """transformers' rope_parameters dict as it stands: its rope_theta is the
    base; a base that disagrees, or a partial_rotary_factor (the rotary dim
    is the caller's), is an error."""
    rp = {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e6}
    c1, _ = flashmlir.rotary_tables(8, 64, scaling=rp)
    c2, _ = flashmlir.rotary_tables(8, 64, base=1e6, scaling={"rope_type": "linear",
                                                              "factor": 2.0})
    np.testing.assert_array_equal(c1, c2)
    with pytest.raises(ValueError, match="disagree"):
        flashmlir.rotary_tables(8, 64, base=1e4, scaling=rp)
    with pytest.raises(ValueError, match="partial_rotary_factor"):
        flashmlir.rotary_tables(8, 64, scaling={**rp, "partial_rotary_factor": 0.5})


def test_from_config_per_layer_type_and_defaults():
    """Per-layer-type parameters (Gemma 3) need layer_type and match
    transformers there; a YaRN config without original_max_position_embeddings
    takes max_position_embeddings, as transformers does."""
    transformers = pytest.importorskip("transformers")
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    cfg = transformers.Gemma3TextConfig(
        hidden_size=256, num_attention_heads=4, head_dim=64, num_hidden_layers=2,
        max_position_embeddings=8192,
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
                         "full_attention": {"rope_type": "linear", "factor": 8.0,
                                            "rope_theta": 1e6}})
    with pytest.raises(ValueError, match="per layer type"):
        flashmlir.rotary_tables_from_config(cfg, 16)
    cos, _ = flashmlir.rotary_tables_from_config(cfg, 16, layer_type="full_attention")
    f, _ = ROPE_INIT_FUNCTIONS["linear"](cfg, "cpu", layer_type="full_attention")
    np.testing.assert_allclose(cos, np.cos(np.arange(16)[:, None] * f.double().numpy()),
                               atol=1e-6)
    ycfg = transformers.LlamaConfig(hidden_size=256, num_attention_heads=4, head_dim=64,
                                    max_position_embeddings=4096,
                                    rope_parameters={"rope_type": "yarn", "factor": 4.0,
                                                     "rope_theta": 1e4})
    f, att = ROPE_INIT_FUNCTIONS["yarn"](ycfg, "cpu")
    cos, _ = flashmlir.rotary_tables_from_config(ycfg, 16)
    np.testing.assert_allclose(cos, np.cos(np.arange(16)[:, None] * f.double().numpy()) * att,
                               atol=1e-6)


@pytest.mark.parametrize("kwargs,msg", [
    (dict(positions=0, rotary_dim=64), "positions must be an int >= 1"),
    (dict(positions=8, rotary_dim=63), "rotary_dim must be even"),
    (dict(positions=8, rotary_dim=64, base=-1.0), "base must be > 0"),
    (dict(positions=8, rotary_dim=64, scaling={"rope_type": "ntk-by-parts"}),
     "unknown rope_type 'ntk-by-parts'"),
    (dict(positions=8, rotary_dim=64, scaling={"rope_type": "linear"}),
     "rope_type 'linear' needs 'factor'"),
    (dict(positions=8, rotary_dim=64, scaling={"rope_type": "yarn", "factor": 2.0}),
     "needs 'original_max_position_embeddings'"),
    (dict(positions=8, rotary_dim=64, scaling={"rope_type": "llama3", "factor": 8.0,
                                               "low_freq_factor": 4.0, "high_freq_factor": 1.0,
                                               "original_max_position_embeddings": 8192}),
     "high_freq_factor must be > low_freq_factor"),
])
def test_errors(kwargs, msg):
    P = kwargs.pop("positions")
    R = kwargs.pop("rotary_dim")
    with pytest.raises((ValueError, TypeError), match=msg):
        flashmlir.rotary_tables(P, R, **kwargs)
