"""Attention rollout and attention relevance (Chefer) on torchvision's ViT-B/16 and Hugging
Face ViTs: patch-grid maps, hand-computed references, class dependence, a weight
randomisation check, the copy's logits, and the user's model left untouched."""

import copy

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from tests import real_models
from tests.conftest import checksum
from tests.real_models import blocks_of, hf_vit, import_torchvision, rgb_image
from xai_widgets import explain, methods
from xai_widgets.adapter import ModelAdapter
from xai_widgets.errors import InputError
from xai_widgets.methods.attention_methods import Probe

NAMES = ("attention_rollout", "attention_relevance")


@pytest.fixture(scope="module")
def vit_b_16():
    return real_models.vit_b_16()


@pytest.fixture(scope="module")
def hf_vit_224():
    """A narrow Hugging Face ViT with ViT-B/16's geometry: 224 px, patches of 16 (14 × 14)."""
    hf_vit(32)  # imports torchvision safely, skips without transformers
    import transformers

    config = transformers.ViTConfig(image_size=224, patch_size=16, hidden_size=32,
                                    num_hidden_layers=3, num_attention_heads=2,
                                    intermediate_size=64, num_labels=10)
    torch.manual_seed(0)
    return transformers.ViTForImageClassification(config).eval()


def tiny_tv_vit() -> nn.Module:
    """torchvision's VisionTransformer, 32 px, patches of 8 (4 × 4), 3 blocks."""
    torchvision = import_torchvision()
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=3,
                                                 num_heads=2, hidden_dim=16, mlp_dim=32,
                                                 num_classes=5)
    nn.init.normal_(model.heads.head.weight, std=0.5)
    return model.eval()


def state(model: nn.Module) -> tuple:
    return (checksum(model), tuple(m.training for m in model.modules()),
            tuple(p.grad is None for p in model.parameters()),
            sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()))


@pytest.fixture(scope="module")
def maps_of(request):
    """``maps_of(arch, name)``: the (2, 224, 224) maps of targets 0 and 1 with 'nearest'
    upsampling, computed once per module. Relevance runs one explain per target: a single
    target skips the budget's measuring passes (three ViT-B/16 passes on two cores)."""
    cache = {}

    def maps(arch: str, name: str) -> np.ndarray:
        if (arch, name) not in cache:
            model, x = request.getfixturevalue(arch), rgb_image(224)
            groups = [[0, 1]] if name == "attention_rollout" else [[0], [1]]
            cache[arch, name] = np.concatenate([explain(model, x, name, targets=targets,
                                                        upsample="nearest").attributions
                                                for targets in groups])
        return cache[arch, name]

    return maps


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("arch", ["vit_b_16", "hf_vit_224"])
def test_maps_are_14_by_14_patches_upsampled_to_224(arch, name, request, maps_of):
    assert methods.available(request.getfixturevalue(arch))[name] is None
    maps = maps_of(arch, name)
    assert maps.shape == (2, 224, 224) and np.isfinite(maps).all()
    for cam in maps:
        patches = blocks_of(cam, 16)
        assert patches.shape == (14, 14) and np.ptp(patches) > 0
    same = np.array_equal(maps[0], maps[1])
    assert same if name == "attention_rollout" else not same  # rollout: class-independent


def test_a_cnn_is_refused_with_a_reason(model, image):
    reasons = methods.available(model)  # the MNIST demo CNN
    for name in NAMES:
        assert reasons[name].startswith(f"{name} needs a vision transformer")
        assert "no attention layers" in reasons[name]
        with pytest.raises(InputError, match=f"{name} cannot explain this model"):
            explain(model, image, name, targets=[0])


def test_another_attention_layer_is_named_in_the_reason():
    class MyAttention(nn.Module):
        def forward(self, x):
            return x

    reason = methods.available(nn.Sequential(nn.Flatten(), MyAttention()))["attention_rollout"]
    assert "1 (MyAttention)" in reason and "grad_cam" in reason


def test_tokens_off_a_square_grid_are_refused():
    class Odd(nn.Module):  # 1 + 6 tokens
        def __init__(self):
            super().__init__()
            self.embed, self.attention = nn.Linear(4, 8), nn.MultiheadAttention(8, 2)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            tokens = self.embed(x.reshape(x.shape[0], 3, 6, 4)[:, 0]).transpose(0, 1)
            tokens = torch.cat([tokens.mean(0, keepdim=True), tokens])  # (T, N, E)
            return self.head(self.attention(tokens, tokens, tokens, need_weights=False)[0][0])

    with pytest.raises(InputError, match="square patch grid"):
        explain(Odd(), torch.rand(3, 6, 4), "attention_rollout", targets=[0])


def test_the_copy_gives_the_original_logits(vit_b_16, hf_vit_224):
    x = rgb_image(224)[None]
    for model in (vit_b_16, hf_vit_224):
        scores, probs, grid = Probe(ModelAdapter(model)).run(x, grad=False)
        with torch.no_grad():
            out = model(x)
        reference = getattr(out, "logits", out)
        torch.testing.assert_close(scores, reference, rtol=1e-4, atol=1e-4)
        assert grid == (1, 14) and len(probs) == (12 if model is vit_b_16 else 3)
        torch.testing.assert_close(probs[0].sum(-1), torch.ones(1, probs[0].shape[1], 197))


def test_the_copy_applies_the_adapters_preprocessing_and_unwraps_compile():
    model = tiny_tv_vit()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    normalise = lambda batch: (batch - 0.45) / 0.25  # noqa: E731
    for wrapped in (model, torch.compile(model, backend="eager")):
        adapter = ModelAdapter(wrapped, preprocess=normalise)
        scores, probs, _ = Probe(adapter).run(x, grad=False)
        torch.testing.assert_close(scores, adapter.logits(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(scores, model(normalise(x)).detach(), rtol=1e-4, atol=1e-5)
        assert len(probs) == 3
    plain = explain(model, x[0], "attention_relevance", targets=[1], preprocess=normalise)
    raw = explain(model, x[0], "attention_relevance", targets=[1])
    assert not np.allclose(plain.attributions, raw.attributions)  # the maps see the normalising


def reference_attentions(model: nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    """Each block's (heads, T, T) attention from torch's own MHA with need_weights=True."""
    inputs = []
    hooks = [block.ln_1.register_forward_hook(lambda m, a, out: inputs.append(out))
             for block in model.encoder.layers]
    with torch.no_grad():
        model(x)
        for hook in hooks:
            hook.remove()
        return [block.self_attention(t, t, t, need_weights=True, average_attn_weights=False)[1][0]
                .double().numpy() for block, t in zip(model.encoder.layers, inputs, strict=True)]


@pytest.mark.parametrize("fusion,discard", [("mean", 0.0), ("max", 0.5), ("min", 0.0)])
def test_rollout_matches_a_hand_computation(fusion, discard):
    model = tiny_tv_vit()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    rolled = np.eye(17)
    for heads in reference_attentions(model, x):
        a = getattr(heads, fusion)(axis=0)
        if discard:
            a = a.copy()
            a.flat[np.argsort(a, axis=None)[:int(discard * a.size)]] = 0.0
        a = a + np.eye(17)
        rolled = (a / a.sum(1, keepdims=True)) @ rolled
    e = explain(model, x[0], "attention_rollout", targets=[0, 3], head_fusion=fusion,
                discard_ratio=discard, upsample="nearest")
    for target in (0, 3):
        np.testing.assert_allclose(blocks_of(e.map(target), 8), rolled[0, 1:].reshape(4, 4),
                                   rtol=1e-4)


def test_relevance_matches_a_hand_computation_from_output_attentions():
    model = hf_vit(32)  # 4 × 4 patches of 8, 10 classes
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    out = eager(x, output_attentions=True)
    e = explain(model, x[0], "attention_relevance", targets=[2, 7], upsample="nearest")
    for target in (2, 7):
        grads = torch.autograd.grad(out.logits[0, target], out.attentions, retain_graph=True)
        relevance = np.eye(17)
        for a, g in zip(out.attentions, grads, strict=True):
            weighted = np.maximum((a * g)[0].detach().double().numpy(), 0).mean(0)
            relevance = relevance + weighted @ relevance
        np.testing.assert_allclose(blocks_of(e.map(target), 8),
                                   relevance[0, 1:].reshape(4, 4), rtol=1e-4)


def test_randomising_the_last_blocks_changes_the_relevance(vit_b_16, maps_of):
    """The last two blocks' weight matrices (attention projections, MLP) drawn at random.
    Their LayerNorms stay: gains drawn at ±0.05 would shrink each block to nearly the
    identity (a residual pass-through), which switches the blocks off rather than
    randomising them. Rollout barely moves under this change (a random ViT's attention is
    nearly uniform); the relevance, which follows the gradient through those blocks, must."""
    before = maps_of("vit_b_16", "attention_relevance")[0]
    scrambled = copy.deepcopy(vit_b_16)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for block in list(scrambled.encoder.layers)[-2:]:
            for parameter in block.parameters():
                if parameter.ndim > 1:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    after = explain(scrambled, rgb_image(224), "attention_relevance", targets=[0],
                    upsample="nearest").map(0)
    correlation = spearmanr(blocks_of(before, 16).ravel(), blocks_of(after, 16).ravel()).statistic
    assert correlation < 0.5, correlation


@pytest.mark.parametrize("arch", ["torchvision", "hugging_face"])
def test_the_users_model_is_untouched(arch):
    model = tiny_tv_vit() if arch == "torchvision" else hf_vit(32)
    model.train()  # a user's model in training mode stays so
    if arch == "hugging_face":
        config = (model.config._attn_implementation, model.config.output_attentions)
    before = state(model)
    for name in NAMES:
        explain(model, torch.rand(3, 32, 32), name, targets=[0, 1])
    assert state(model) == before
    if arch == "hugging_face":
        assert (model.config._attn_implementation, model.config.output_attentions) == config
    else:
        assert "forward" not in vars(model.encoder.layers[0].self_attention)  # not patched
