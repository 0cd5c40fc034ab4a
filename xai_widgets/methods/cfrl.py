"""Counterfactuals in one forward pass (CFRL, Samoilescu et al. 2021), in torch.

An actor network maps the latent code z = enc(x) of an autoencoder, the model's
probabilities for x and a one-hot desired class to a new code z′; the counterfactual is
x′ = clip(x + dec(z′) − dec(z)): the change the decoder sees between the two codes, laid
over x itself so that untouched pixels stay exactly as they were. Changes smaller than
``min_change`` are dropped (a sparser x′). After one training per model (``train_cfrl``),
every counterfactual costs one actor + decoder pass; ``all_classes`` gives x′ for every
other class in one batched pass.

Training objective: the paper trains the actor with DDPG because it treats the model as a
black box. Our models are differentiable torch modules, so the actor is trained by backprop
through decoder and classifier: a margin loss on the logits toward the desired class, an L1
term to x (sparsity), the autoencoder's reconstruction error of x′ (in-distribution) and the
latent consistency ‖enc(x′) − z′‖² of the paper. Exact gradients instead of a learnt critic:
stable, seeded, and minutes on two CPU cores.

>>> from xai_widgets.methods.cfrl import all_classes
>>> from xai_widgets.zoo.cfrl_actor import load_cfrl_actor
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> actor = load_cfrl_actor("mnist")
>>> found = all_classes(model, images[0], actor=actor)
>>> sorted(found) == [c for c in range(10) if c != int(model(images[:1]).argmax())]
True
>>> sum(cf.success for cf in found.values()) >= 8
True
"""

from __future__ import annotations

import copy
import hashlib
import time
import weakref
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xai_widgets.errors import Cancelled, InputError
from xai_widgets.methods.registry import Param

TRAIN_PARAMS = (
    Param("steps", "int", 3000, 1, 100000, 1, label="training steps"),
    Param("batch_size", "int", 128, 1, 4096, 1, label="batch size"),
    Param("learning_rate", "float", 1e-3, 1e-5, 0.1, 1e-5, label="learning rate"),
    Param("margin", "float", 2.0, 0.0, 20.0, 0.1, label="κ (margin)",
          help="logit margin of the desired class over the others"),
    Param("sparsity", "float", 4.0, 0.0, 100.0, 0.1, label="λ (L1)",
          help="weight of the mean |x′ − x|"),
    Param("reconstruction", "float", 10.0, 0.0, 1000.0, 0.1, label="γ (autoencoder)",
          help="weight of the autoencoder's reconstruction error of x′: in distribution"),
    Param("consistency", "float", 0.1, 0.0, 100.0, 0.01, label="consistency",
          help="weight of ‖enc(x′) − z′‖² (z normalised)"),
)
PARAMS = (Param("min_change", "float", 0.05, 0.0, 0.5, 0.01, label="min change",
                help="pixel changes below this are dropped: a sparser x′"),)
HINT = ("train one first: actor = xai_widgets.methods.cfrl.train_cfrl(model, images) "
        "(images: (N,1,28,28) training digits in 0..1), then pass actor=actor to "
        "counterfactual() or ExplainWidget(model, x, actor=actor); the shipped demo actor is "
        "reproduced by python -m xai_widgets.zoo.train_cfrl")

_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fingerprint(module: nn.Module) -> str:
    """sha256 of the module's state_dict (names and values): which weights an actor fits."""
    live = [*module.named_parameters(), *module.named_buffers()]
    key = tuple((name, id(t), t.data_ptr(), t._version) for name, t in live)
    cached = _FINGERPRINTS.get(module)
    if cached is not None and cached[0] == key:
        return cached[1]
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    _FINGERPRINTS[module] = (key, digest.hexdigest())
    return digest.hexdigest()


class CFRLActor(nn.Module):
    """The actor: (z, p(x), one-hot class) → z′ = z + σ·mlp(...), σ the latent scale.

    ``model_fingerprint`` and ``autoencoder_fingerprint`` name the weights it was trained
    for; ``history`` holds (step, validity) of its training; ``autoencoder`` is attached.
    """

    def __init__(self, latent_shape: Sequence[int] = (8, 7, 7), n_classes: int = 10,
                 hidden: int = 192, image_shape: Sequence[int] = (1, 28, 28)):
        super().__init__()
        self.latent_shape, self.n_classes, self.hidden = tuple(latent_shape), n_classes, hidden
        self.image_shape = tuple(image_shape)
        latent = int(np.prod(self.latent_shape))
        self.net = nn.Sequential(nn.Linear(latent + 2 * n_classes, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, latent))
        self.register_buffer("mean", torch.zeros(latent))
        self.register_buffer("scale", torch.ones(latent))
        self.model_fingerprint = self.autoencoder_fingerprint = ""
        self.history: list = []
        self.train_params: dict = {}
        self.autoencoder = None

    def forward(self, z: torch.Tensor, probabilities: torch.Tensor,
                onehot: torch.Tensor) -> torch.Tensor:
        inputs = torch.cat([(z - self.mean) / self.scale, probabilities, onehot], 1)
        return z + self.scale * self.net(inputs)

    def propose(self, x: torch.Tensor, z: torch.Tensor, probabilities: torch.Tensor,
                targets: torch.Tensor, min_change: float = 0.0) -> tuple:
        """(x′, z′) for images x (N,C,H,W), their codes and probabilities, classes (N,)."""
        z_new = self(z, probabilities, F.one_hot(targets, self.n_classes).to(z.dtype))
        codes = torch.cat([z, z_new]).view(-1, *self.latent_shape)
        decoded = self.autoencoder.decoder(codes)[..., : x.shape[-2], : x.shape[-1]]
        delta = decoded[len(x):] - decoded[: len(x)]
        if min_change > 0:
            delta = delta * (delta.abs() >= min_change)
        return (x + delta).clamp(0.0, 1.0), z_new

    def save(self, path) -> None:
        """Weights, fingerprints, training parameters and curve in one torch file."""
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()
                 if not k.startswith("autoencoder.")}
        torch.save({"state": state,
                    "config": {"latent_shape": list(self.latent_shape),
                               "n_classes": self.n_classes, "hidden": self.hidden,
                               "image_shape": list(self.image_shape)},
                    "model": self.model_fingerprint, "autoencoder": self.autoencoder_fingerprint,
                    "train_params": self.train_params, "history": self.history}, path)

    @classmethod
    def load(cls, path, autoencoder: nn.Module | None = None) -> CFRLActor:
        """The saved actor with its autoencoder (default: the shipped MNIST one), checked
        against the fingerprint it was trained with."""
        saved = torch.load(path, weights_only=True)
        actor = cls(**saved["config"])
        actor.load_state_dict({k: v.float() for k, v in saved["state"].items()})
        actor.model_fingerprint = saved["model"]
        actor.autoencoder_fingerprint = saved["autoencoder"]
        actor.train_params, actor.history = saved["train_params"], saved["history"]
        if autoencoder is None:
            from xai_widgets.zoo import load_autoencoder
            autoencoder = load_autoencoder("mnist")
        if fingerprint(autoencoder) != actor.autoencoder_fingerprint:
            raise InputError(f"{path} was trained with another autoencoder: pass the one it "
                             "was trained with (autoencoder=)")
        actor.autoencoder = autoencoder.eval()
        return actor.eval()


def _frozen(module: nn.Module) -> nn.Module:
    module = copy.deepcopy(module).eval()
    return module.requires_grad_(False)


def train_cfrl(model: nn.Module, data: torch.Tensor, autoencoder: nn.Module | None = None,
               steps: int = 3000, seed: int = 0, sparsity: float = 4.0,
               consistency: float = 0.1, reconstruction: float = 10.0, margin: float = 2.0,
               batch_size: int = 128, learning_rate: float = 1e-3,
               progress: Callable[[int, int, float], None] | None = None,
               cancelled: Callable[[], bool] | None = None) -> CFRLActor:
    """Train an actor for ``model`` (images → logits) on ``data`` (N,C,H,W in 0..1).

    Each step draws images and a desired class ≠ the model's prediction; the loss is
    relu(max_other − logit_t + margin) + sparsity·mean|x′ − x| + reconstruction·‖AE(x′) −
    x′‖² + consistency·‖enc(x′) − z′‖². ``progress(step, steps, validity)`` reports the
    fraction of the last batch the model assigns to its desired class; ``cancelled()``
    returning True raises ``Cancelled``. The model and data are not modified.

    >>> from xai_widgets.zoo import load_demo
    >>> model, images, _, _ = load_demo("mnist")
    >>> actor = train_cfrl(model, images[:64], steps=2, batch_size=8)
    >>> len(actor.history), actor.model_fingerprint == fingerprint(model)
    (2, True)
    """
    given = {"steps": steps, "batch_size": batch_size, "learning_rate": learning_rate,
             "margin": margin, "sparsity": sparsity, "reconstruction": reconstruction,
             "consistency": consistency}
    p = {spec.name: spec.validate(given[spec.name]) for spec in TRAIN_PARAMS}
    if autoencoder is None:
        from xai_widgets.zoo import load_autoencoder
        autoencoder = load_autoencoder("mnist")
    data = torch.as_tensor(data).detach().float().cpu()
    if data.ndim != 4:
        raise InputError(f"data must be an (N,C,H,W) image batch in 0..1, got {tuple(data.shape)}")
    net, ae = _frozen(model), _frozen(autoencoder)
    with torch.no_grad():
        codes = ae.encoder(data[:1])
        z_all = codes.new_zeros(len(data), codes[0].numel())
        probabilities = z_all.new_zeros(len(data), net(data[:1]).shape[1])
        for start in range(0, len(data), 512):
            chunk = data[start:start + 512]
            z_all[start:start + 512] = ae.encode(chunk)
            probabilities[start:start + 512] = torch.softmax(net(chunk), 1)
    predicted = probabilities.argmax(1)
    n_classes = probabilities.shape[1]
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        actor = CFRLActor(tuple(codes.shape[1:]), n_classes, image_shape=tuple(data.shape[1:]))
    with torch.no_grad():
        actor.net[-1].weight.mul_(0.1)
        actor.net[-1].bias.zero_()
        actor.mean.copy_(z_all.mean(0))
        actor.scale.copy_(z_all.std(0).clamp_min(1e-3))
    actor.autoencoder = ae
    optimiser = torch.optim.Adam(actor.net.parameters(), lr=p["learning_rate"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, p["steps"])
    for step in range(1, p["steps"] + 1):
        if cancelled is not None and cancelled():
            raise Cancelled()
        batch = torch.randint(len(data), (p["batch_size"],), generator=generator)
        shift = torch.randint(1, n_classes, (len(batch),), generator=generator)
        targets = (predicted[batch] + shift) % n_classes
        x = data[batch]
        x_new, z_new = actor.propose(x, z_all[batch], probabilities[batch], targets)
        logits = net(x_new)
        target_logit = logits.gather(1, targets[:, None])[:, 0]
        other = logits.scatter(1, targets[:, None], float("-inf")).max(1).values
        encoded = ae.encoder(x_new)
        rebuilt = ae.decoder(encoded)[..., : x.shape[-2], : x.shape[-1]]
        loss = (torch.relu(other - target_logit + p["margin"]).mean()
                + p["sparsity"] * (x_new - x).abs().mean()
                + p["reconstruction"] * (rebuilt - x_new).pow(2).mean()
                + p["consistency"] * ((encoded.flatten(1) - z_new) / actor.scale).pow(2).mean())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        validity = float((logits.argmax(1) == targets).float().mean())
        actor.history.append((step, validity))
        if progress is not None and (step % 25 == 0 or step == p["steps"]):
            progress(step, p["steps"], validity)
    actor.model_fingerprint, actor.autoencoder_fingerprint = fingerprint(model), fingerprint(
        autoencoder)
    actor.train_params = {**p, "seed": seed, "n_images": len(data)}
    actor.autoencoder = autoencoder.eval()
    return actor.eval()


def resolve_actor(model: nn.Module, actor: CFRLActor | None) -> CFRLActor:
    """``actor``, or the shipped one when ``model`` is the MNIST demo CNN; InputError when
    the actor was trained for other weights."""
    if actor is None:
        from xai_widgets.zoo.cfrl_actor import load_cfrl_actor

        shipped = load_cfrl_actor("mnist")
        if fingerprint(model) != shipped.model_fingerprint:
            raise InputError("method='cfrl' needs an actor trained for this model (the shipped "
                             f"one fits the MNIST demo CNN only): {HINT}")
        return shipped
    if not isinstance(actor, CFRLActor):
        raise InputError(f"actor must be a CFRLActor, got {type(actor).__name__}: {HINT}")
    if fingerprint(model) != actor.model_fingerprint:
        raise InputError("this CFRL actor was trained for other model weights (its "
                         f"fingerprint differs): {HINT}")
    return actor


def cfrl_counterfactuals(adapter, image: torch.Tensor, targets: Sequence[int],
                         actor: CFRLActor | None = None, params: dict | None = None,
                         probabilities: torch.Tensor | None = None) -> list:
    """``Counterfactual``s of ``image`` (1,C,H,W) for each of ``targets``: one batched
    actor + decoder pass and one batched model pass for all their morph paths. Each
    result's ``seconds`` is the batch's time divided by the number of targets;
    ``probabilities`` (1, n_classes), when the caller has them, saves a model pass."""
    from xai_widgets.methods.counterfactuals import (
        CHANGED,
        PATH_STEPS,
        Counterfactual,
        morph_path,
        resolve,
    )

    start = time.perf_counter()
    p = resolve("cfrl", dict(params or {}))
    actor = resolve_actor(adapter.model, actor)
    if tuple(image.shape[1:]) != actor.image_shape:
        raise InputError(f"the CFRL actor takes {'×'.join(map(str, actor.image_shape))} images, "
                         f"got {'×'.join(map(str, image.shape[1:]))}")
    if actor.mean.device != image.device:
        actor.to(image.device)
    ae = actor.autoencoder
    if probabilities is None:
        with torch.no_grad():
            probabilities = adapter.probabilities(image)
    prediction = int(probabilities[0].argmax())
    targets = [int(t) for t in targets]
    index = torch.tensor(targets, device=image.device)
    n = len(targets)
    with torch.no_grad():
        results, _ = actor.propose(image.expand(n, -1, -1, -1), ae.encode(image).expand(n, -1),
                                   probabilities.expand(n, -1), index, p["min_change"])
        same = index == prediction
        results[same] = image[0]
        paths = torch.stack([morph_path(image, r[None]) for r in results])
        moved = adapter.probabilities(paths[:, 1:].flatten(0, 1)).view(n, PATH_STEPS - 1, -1)
        path_probabilities = torch.cat([probabilities.expand(n, 1, -1), moved], 1)
        errors = (ae(results) - results).pow(2).flatten(1).mean(1)
    seconds = (time.perf_counter() - start) / n
    out = []
    for i, target in enumerate(targets):
        final = int(path_probabilities[i, -1].argmax())
        success = final == target
        if target == prediction:
            message = (f"the model already assigns class {target} to x: the counterfactual is "
                       "x itself")
        elif success:
            message = f"class {prediction} → {target} in one forward pass of the CFRL actor"
        else:
            message = (f"the CFRL actor's x′ for class {target} is still class {final} "
                       f"(p = {float(path_probabilities[i, -1, target]):.2f}): the one-pass "
                       "actor misses this image; try method='prototype' (a search)")
        change = (results[i] - image[0]).abs().amax(0)
        out.append(Counterfactual(
            image=results[i].cpu().numpy(), original=image[0].cpu().numpy(), target=target,
            method="cfrl", success=success, message=message, path=paths[i].cpu().numpy(),
            path_probabilities=path_probabilities[i].cpu().numpy(),
            l1=float((results[i] - image[0]).abs().sum()), l0=int((change > CHANGED).sum()),
            seconds=seconds, params=dict(p), reconstruction_error=float(errors[i])))
    return out


def all_classes(model: nn.Module, x, actor: CFRLActor | None = None, *,
                preprocess: Callable | None = None, **params) -> dict:
    """{class: Counterfactual} of ``x`` for every class but the predicted one, in one
    batched actor + decoder pass (``actor``: default the shipped one for the demo CNN)."""
    from xai_widgets.adapter import ModelAdapter

    adapter = ModelAdapter(model, preprocess=preprocess)
    image, _ = adapter.image(x)
    with torch.no_grad():
        prediction = int(adapter.logits(image).argmax(1)[0])
    targets = [c for c in range(adapter.n_classes) if c != prediction]
    with adapter.eval_mode():
        found = cfrl_counterfactuals(adapter, image, targets, actor, params)
    return dict(zip(targets, found, strict=True))
