import pytest

from xai_widgets import InputError, methods

EXPECTED = {"saliency", "input_x_gradient", "integrated_gradients", "deeplift", "gradient_shap",
            "guided_backprop", "occlusion", "grad_cam", "lrp", "deep_shap", "gradient_explainer",
            "kernel_shap", "lime", "attention_rollout", "attention_relevance"}


def test_all_methods_are_registered():
    assert EXPECTED <= set(methods.names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_specs_are_complete(name):
    spec = methods.spec(name)
    assert spec.label and spec.description and spec.backend in ("captum", "shap", "lime", "torch")
    for param in spec.params:
        assert param.validate(param.default) == param.default
        if param.kind in ("int", "float"):
            assert param.low <= param.default <= param.high and param.step
        if param.kind == "choice":
            assert param.default in param.choices
    as_dict = spec.as_dict()
    assert [p["name"] for p in as_dict["params"]] == [p.name for p in spec.params]


def test_occlusion_spec_has_window_and_stride():
    spec = methods.spec("occlusion")
    assert spec.param("window").kind == "int" and spec.param("stride").kind == "int"
    assert spec.resolve({"window": 7}) == {"window": 7, "stride": 2, "batch_size": 256}


def test_gradient_methods_offer_noise_tunnel():
    for name in ("saliency", "input_x_gradient", "integrated_gradients", "guided_backprop"):
        assert "smoothgrad" in methods.spec(name).param("smoothing").choices


def test_resolve_rejects_bad_values():
    spec = methods.spec("integrated_gradients")
    with pytest.raises(InputError, match=r"must be in 1..1000"):
        spec.resolve({"n_steps": 0})
    with pytest.raises(InputError, match="integration must be one of"):
        spec.resolve({"integration": "simpson"})


def test_superpixel_methods_carry_segmentation_parameters():
    for name in ("lime", "kernel_shap"):
        spec = methods.spec(name)
        assert spec.superpixels and spec.param("segmentation").default == "slic"
        assert spec.param("n_segments").hidden({"segmentation": "grid"})
        assert not spec.param("cell").hidden({"segmentation": "grid"})


def test_available_on_the_demo_model(model):
    transformer_only = {"attention_rollout", "attention_relevance"}  # the demo is a CNN
    reasons = methods.available(model)
    assert all(reasons[name] is None for name in reasons if name not in transformer_only)
    assert all("no attention layers" in reasons[name] for name in transformer_only)
