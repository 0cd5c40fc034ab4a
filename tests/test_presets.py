"""``weights=`` from timm and Hugging Face: a timm data config (or ``pretrained_cfg``) and an
image processor give the shown image their own eval transform gives (before normalisation),
the model's logits on their full transform, class names, and maps in image space.

Random weights, nothing downloaded. The exact comparisons give the libraries float tensors
(the same resize kernels as ours); the PIL and uint8 paths round to 8 bits, so they are
compared within a couple of grey levels."""

import numpy as np
import pytest
import torch
from PIL import Image

from tests.real_models import import_torchvision
from xai_widgets import CompareWidget, DatasetWidget, InputError, explain
from xai_widgets.adapter import ModelAdapter
from xai_widgets.presets import Normalise, read_preset

import_torchvision()  # timm and transformers import torchvision: the CPU shim first
timm = pytest.importorskip("timm")
timm_data = pytest.importorskip("timm.data")
transformers = pytest.importorskip("transformers")

LABELS = {0: "cat", 1: "dog", 2: "fox"}


@pytest.fixture(scope="module")
def chelsea() -> np.ndarray:
    from skimage import data

    return data.chelsea()  # (300, 451, 3) uint8: not square


@pytest.fixture(scope="module")
def mid() -> np.ndarray:
    """Random mid-grey pixels (64..191): bicubic overshoot stays inside 0..1, so the
    libraries' unclipped float resize is the reference as it is."""
    return np.random.default_rng(0).integers(64, 192, size=(300, 400, 3), dtype=np.uint8)


def as_float(photo: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(photo).permute(2, 0, 1).float() / 255


@pytest.fixture(scope="module")
def timm_models():
    torch.manual_seed(0)
    return {name: timm.create_model(name, pretrained=False).eval()
            for name in ("resnet18", "vit_tiny_patch16_224")}


@pytest.fixture(scope="module")
def hf_vit():
    config = transformers.ViTConfig(image_size=64, patch_size=16, num_labels=3, id2label=LABELS,
                                    label2id={v: k for k, v in LABELS.items()}, hidden_size=32,
                                    num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64)
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification(config).eval()
    return model, transformers.ViTImageProcessor(size={"height": 64, "width": 64})


# -- timm -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet18", "vit_tiny_patch16_224"])
def test_timm_image_and_logits_equal_timms_eval_transform(timm_models, chelsea, name):
    model = timm_models[name]
    config = (timm_data.resolve_model_data_config(model) if name == "resnet18"
              else timm_data.resolve_data_config({}, model=model))
    transform = timm_data.create_transform(**config)
    geometry = type(transform)(transform.transforms[:-1])  # without its Normalize
    adapter = ModelAdapter(model, weights=config)
    image, notes = adapter.image(chelsea)
    assert tuple(image.shape) == (1, 3, 224, 224)
    assert any("as timm's eval transform does" in n for n in notes), notes
    assert adapter.classes[:3] == ["tench", "goldfish", "great white shark"]
    assert len(adapter.classes) == 1000
    # the same kernels on a float tensor: equal (bicubic overshoot clipped to 0..1, as PIL does)
    torch.testing.assert_close(image[0], geometry(as_float(chelsea)).clamp(0, 1), rtol=0,
                               atol=1e-6)
    # timm's transform on the PIL photo rounds to 8 bits: within ~1 grey level
    pil = Image.fromarray(chelsea)
    difference = (image[0] - geometry(pil)).abs()
    assert difference.max() <= 2.5 / 255 and difference.mean() <= 0.5 / 255, difference.max()
    # the normalisation is inside the explained model, and the logits are the model's
    assert isinstance(adapter.preset.normalise, Normalise) and float(image.min()) >= 0
    with torch.no_grad():
        ours, theirs = adapter.logits(image), model(transform(pil)[None])
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0.05 * float(theirs.std()))
    assert int(ours.argmax()) == int(theirs.argmax())


@pytest.mark.parametrize("crop_mode, input_size, crop_pct", [
    ("center", (3, 160, 224), 0.9),   # non-square: timm's ResizeKeepRatio to the shorter side
    ("squash", (3, 192, 192), 0.95),  # both sides to size / crop_pct, then the crop
    ("border", (3, 192, 192), 1.0),   # the longer side to the size, padded with the mean colour
])
def test_timm_crop_modes(mid, chelsea, crop_mode, input_size, crop_pct):
    config = {"input_size": input_size, "interpolation": "bicubic", "crop_pct": crop_pct,
              "crop_mode": crop_mode, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    transform = timm_data.create_transform(**config)
    geometry = type(transform)(transform.transforms[:-1])
    preset = read_preset(config)
    for photo in (mid, chelsea):
        shown, _ = preset.geometry(as_float(photo)[None])
        assert tuple(shown.shape[-2:]) == input_size[1:]
        difference = (shown[0] - geometry(Image.fromarray(photo))).abs()
        assert difference.max() <= 2.5 / 255 and difference.mean() <= 0.5 / 255
    if crop_mode != "border":  # timm pads float tensors with 0..255 fill values: PIL only
        torch.testing.assert_close(preset.geometry(as_float(mid)[None])[0][0],
                                   geometry(as_float(mid)), rtol=0, atol=1e-6)
    else:
        top_row = preset.geometry(as_float(chelsea)[None])[0][0, :, 0, 0]
        torch.testing.assert_close(top_row, torch.tensor([124, 116, 104]) / 255)


def test_timm_pretrained_cfg_and_classes(timm_models, mid):
    model = timm_models["resnet18"]
    config = timm_data.resolve_model_data_config(model)
    from_cfg = ModelAdapter(model, weights=model.pretrained_cfg)
    from_config = ModelAdapter(model, weights=config)
    torch.testing.assert_close(from_cfg.image(mid)[0], from_config.image(mid)[0])
    assert from_cfg.classes[0] == "tench"
    names = [f"class {i}" for i in range(1000)]
    assert ModelAdapter(model, weights=config, classes=names).classes == names
    torch.manual_seed(0)
    five = timm.create_model("resnet18", pretrained=False, num_classes=5).eval()
    assert ModelAdapter(five, weights=config).classes is None  # not an ImageNet head: numbered
    assert ModelAdapter(five, weights=config, classes=list("abcde")).classes == list("abcde")


# -- Hugging Face -----------------------------------------------------------------------------
def test_hf_processor_classes_normalisation_and_logits(hf_vit, mid):
    model, processor = hf_vit
    adapter = ModelAdapter(model, weights=processor)
    assert adapter.classes == ["cat", "dog", "fox"]  # the model's config.id2label
    assert ModelAdapter(model, weights=(processor, model.config)).classes == ["cat", "dog", "fox"]
    assert ModelAdapter(model, weights=processor, classes=list("abc")).classes == list("abc")
    image, notes = adapter.image(mid)
    assert tuple(image.shape) == (1, 3, 64, 64)
    assert any("as the image processor does" in n for n in notes), notes
    # the shown image is in image space (0..1); the normalisation is part of the model
    assert 0.2 < float(image.min()) and float(image.max()) < 0.8
    assert repr(adapter.preprocess) == "Normalise(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])"
    # the processor takes 0..255 pixels and rescales them by 1/255; given floats, it does not
    # round, so its pixel values equal ours
    floats = processor(torch.from_numpy(mid).permute(2, 0, 1).float(), return_tensors="pt")
    torch.testing.assert_close(adapter.preprocess(image), floats["pixel_values"], rtol=0,
                               atol=1e-5)
    with torch.no_grad():
        ours = adapter.logits(image)
        theirs = model(**processor(mid, return_tensors="pt")).logits  # uint8: rounded
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0.02 * float(theirs.abs().max()))
    # maps in image space: the same as explaining the shown image with the normalisation
    e = explain(model, mid, method="saliency", weights=processor)
    reference = explain(model, image[0], method="saliency", preprocess=lambda b: (b - 0.5) / 0.5)
    assert e.classes == ["cat", "dog", "fox"]
    np.testing.assert_allclose(e.raw, reference.raw, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kwargs", [
    {"cls": "ConvNextImageProcessor", "size": {"shortest_edge": 224}},  # crop_pct, crop
    {"cls": "ConvNextImageProcessor"},                                   # ≥ 384: warped
    {"cls": "DeiTImageProcessor"},                  # 256×256, then a centre crop to 224×224
    {"cls": "ViTImageProcessor", "size": {"height": 67, "width": 70}, "do_center_crop": True,
     "crop_size": {"height": 64, "width": 63}},     # crop offsets 1.5, 3.5: floored, not rounded
    {"cls": "ViTImageProcessor", "size": {"shortest_edge": 100}, "resample": 0},
    {"cls": "ViTImageProcessor", "size": {"height": 48, "width": 40}, "do_rescale": False},
    {"cls": "ViTImageProcessor", "rescale_factor": 1 / 127.5, "do_normalize": False},
    {"cls": "ViTImageProcessor", "do_resize": False, "image_mean": 0.4, "image_std": 0.2},
], ids=lambda kwargs: "-".join(f"{k}={v}" for k, v in kwargs.items()))
def test_hf_processor_geometry_and_rescale(mid, kwargs):
    kwargs = dict(kwargs)
    processor = getattr(transformers, kwargs.pop("cls"))(**kwargs)
    preset = read_preset(processor)
    pixels = torch.from_numpy(mid).permute(2, 0, 1).float()
    given = pixels if processor.do_rescale else pixels / 255  # what each convention expects
    theirs = processor(given, return_tensors="pt")["pixel_values"]
    shown, _ = preset.geometry(pixels[None] / 255)
    ours = preset.normalise(shown) if preset.normalise is not None else shown
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-5)


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("weights, match", [
    ("IMAGENET1K_V1", (r"weights must be a torchvision weights member.*timm data config.*"
                       r"Hugging Face image processor.*not its name.*preprocess=.*classes=")),
    (object(), r"weights must be a torchvision.*got object.*preprocess=.*classes="),
    ({"resolution": 224}, r"timm data config or pretrained_cfg.*got dict"),
    ({"input_size": (3, 224, 224), "crop_pct": 0.9},
     r"timm data config has no mean, std.*resolve_model_data_config.*preprocess="),
    ({"input_size": (3, 224, 224), "mean": (0.5,) * 3, "std": (0.5,) * 3, "crop_mode": "zoom"},
     r"crop_mode 'zoom'"),
    ({"input_size": (3, 224, 224), "mean": (0.5,) * 3, "std": (0.5,) * 3,
      "interpolation": "lanczos"}, r"'lanczos' interpolation.*preprocess="),
])
def test_bad_weights_say_what_is_accepted(hf_vit, weights, match):
    with pytest.raises(InputError, match=match):
        ModelAdapter(hf_vit[0], weights=weights)


def test_bad_processor_pairs_and_conflicts(hf_vit):
    model, processor = hf_vit
    with pytest.raises(InputError, match=r"second element must be the model's config"):
        ModelAdapter(model, weights=(processor, 5))
    with pytest.raises(InputError, match=r"either weights=.*or preprocess=, not both"):
        ModelAdapter(model, weights=processor, preprocess=lambda b: b)
    odd = transformers.ViTImageProcessor(size={"longest_edge": 64})
    with pytest.raises(InputError, match="has no height and width"):
        ModelAdapter(model, weights=odd)


# -- explain() and the widgets ----------------------------------------------------------------
@pytest.mark.parametrize("source", ["timm", "hf"])
def test_explain_with_each_source_gives_finite_maps_of_the_shown_size(
        timm_models, hf_vit, chelsea, source):
    if source == "hf":
        model, weights, method = hf_vit[0], hf_vit[1], "integrated_gradients"
    else:
        model = timm_models["resnet18"]
        weights, method = timm_data.resolve_model_data_config(model), "saliency"
    options = {"n_steps": 4} if method == "integrated_gradients" else {}
    e = explain(model, chelsea, method=method, weights=weights, targets=[0, 2], **options)
    size = 64 if source == "hf" else 224
    assert e.attributions.shape == (2, size, size) and np.isfinite(e.attributions).all()
    assert np.abs(e.attributions).max() > 0
    assert e.classes[:3] == (["cat", "dog", "fox"] if source == "hf"
                             else ["tench", "goldfish", "great white shark"])


def test_compare_and_dataset_widgets_take_weights(hf_vit, mid, chelsea):
    model, processor = hf_vit
    cw = CompareWidget(model, mid, methods=["saliency", "input_x_gradient"],
                       weights=processor, data=[chelsea]).wait(60)
    assert cw.error == "" and sorted(cw.explanations) == ["input_x_gradient", "saliency"]
    assert cw.explanations["saliency"].attributions.shape[-2:] == (64, 64)
    cw.close()
    photos = [np.roll(mid, 37 * i, axis=1) for i in range(6)]
    dw = DatasetWidget(model, photos, weights=processor, method="saliency", n_clusters=2).wait(60)
    assert dw.error == "" and dw.explanations.shape == (6, 64, 64)
    dw.selected = 0
    assert dw._detail.children and dw._classes == ["cat", "dog", "fox"]
    dw.close()


def test_compare_widget_takes_layout():
    class ChannelsLast(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
                                           torch.nn.Flatten(), torch.nn.Linear(4 * 14 * 14, 3))

        def forward(self, x):  # (N, H, W, C)
            return self.net(x.permute(0, 3, 1, 2))

    x = torch.rand(3, 16, 16)
    cw = CompareWidget(ChannelsLast().eval(), x, methods=["saliency"], layout="NHWC").wait(60)
    assert cw.error == "" and cw.explanations["saliency"].attributions.shape[-2:] == (16, 16)
    cw.close()
