"""A zoo of tiny real models, built from configs or code (nothing downloaded), each with a
learnable synthetic task: for benchmarking and testing initialization on real architectures.

Every :class:`Spec` builds a model with its family's own init (the caller seeds torch first),
samples a batch deterministically from a ``torch.Generator`` and computes a cross-entropy loss
over ``classes`` outputs, so ``ln(classes)`` is the loss of a model that knows nothing.

Tasks:
    - ``lm``: next token of sequences from a fixed sparse random Markov chain over the vocabulary
      (:class:`MarkovChain`; its entropy rate is far below ``ln V``).
    - ``mlm``: the masked tokens of the same sequences.
    - ``seq2seq``: the chain's continuation of an encoder prefix (T5), or the transcription of a
      mel-like "recording" of the tokens (Whisper).
    - ``vision``: the argmax class of a fixed random teacher network on smooth random images.

Hugging Face models need ``transformers``; the timm models need ``timm``, whose import needs
:func:`torchvision_placeholders` when the installed torchvision's compiled ops do not load
(a CUDA build beside a CPU build of torch).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CLASSES",
    "SEQ",
    "VOCAB",
    "ZOO",
    "MarkovChain",
    "NanoGPT",
    "Spec",
    "import_timm",
    "import_transformers",
    "torchvision_placeholders",
    "unavailable",
]

VOCAB = 256  # LM vocabulary; token 0 is reserved (start / mask / pad), the chain uses 1..V-1
SEQ = 32  # tokens a causal LM sees
CLASSES = 10  # vision classes
IMAGE = 32  # image side
HIDDEN = 64
LAYERS = 2
HEADS = 4
MASK = 0


@dataclass(frozen=True)
class Spec:
    """One model of the zoo and its task.

    Attributes:
        name: e.g. ``"hf-gpt2"``, ``"timm-resnet18"``, ``"nanogpt"``.
        kind: ``"lm"``, ``"mlm"``, ``"seq2seq"`` or ``"vision"``.
        build: the model with its family's own init; seed torch before calling.
        batch: ``(generator, batch_size) -> (model input, targets)``; the input is a tensor, a
            tuple of positional inputs or a dict of keyword inputs.
        loss: ``(model, input, targets) -> scalar`` cross-entropy over ``classes`` outputs.
        classes: the vocabulary or the number of classes.
        requires: the package the model needs: ``"transformers"``, ``"timm"`` or ``""``.
    """

    name: str
    kind: str
    build: Callable[[], nn.Module]
    batch: Callable[[torch.Generator, int], tuple[Any, torch.Tensor]]
    loss: Callable[[nn.Module, Any, torch.Tensor], torch.Tensor]
    classes: int
    requires: str


# --- optional packages ---------------------------------------------------------------------

_TORCHVISION_LIB: list[torch.library.Library] = []  # kept alive: dropping it removes the ops


def torchvision_placeholders() -> None:
    """Define schemas for torchvision's ``nms`` and ``qnms`` where its compiled ops are missing.

    torchvision's Python import registers fake kernels for these two operators and fails with
    "operator torchvision::nms does not exist" when its C++ library does not load (PyPI's CUDA
    build beside the CPU build of torch). Defining the schemas first lets ``import torchvision``
    (and so timm, and transformers, which imports torchvision when it is installed) succeed; the
    operators themselves stay unusable. Idempotent; does nothing without torchvision.
    """
    if _TORCHVISION_LIB or importlib.util.find_spec("torchvision") is None:
        return
    schema = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
    missing = [op for op in ("nms", "qnms") if not hasattr(torch.ops.torchvision, op)]
    if missing:
        lib = torch.library.Library("torchvision", "FRAGMENT")  # type: ignore[no-untyped-call]
        for op in missing:
            lib.define(op + schema)  # type: ignore[no-untyped-call]
        _TORCHVISION_LIB.append(lib)


def import_transformers() -> Any:
    """``transformers``, importable beside a broken torchvision."""
    torchvision_placeholders()
    return importlib.import_module("transformers")


def import_timm() -> Any:
    """``timm``, importable beside a torchvision whose compiled ops do not load."""
    torchvision_placeholders()
    return importlib.import_module("timm")


_IMPORTERS: dict[str, Callable[[], Any]] = {
    "transformers": import_transformers,
    "timm": import_timm,
}


def unavailable(spec: Spec) -> str | None:
    """Why ``spec`` cannot be built here (its package is missing or fails to import), or None."""
    if not spec.requires:
        return None
    if importlib.util.find_spec(spec.requires) is None:
        return f"{spec.name} needs {spec.requires}, which is not installed"
    try:
        _IMPORTERS[spec.requires]()
    except Exception as error:  # any import failure makes the spec unavailable, with its reason
        return f"{spec.name}: importing {spec.requires} failed: {type(error).__name__}: {error}"
    return None


# --- data ------------------------------------------------------------------------------------


class MarkovChain:
    """A fixed random Markov chain over tokens ``1..V-1``: each state moves to one of ``fanout``
    successors with Dirichlet(1) probabilities, so a model that learns the chain reaches a loss
    near its entropy rate (about 1 nat for ``fanout=4``) instead of ``ln V``."""

    def __init__(self, vocab: int = VOCAB, fanout: int = 4, seed: int = 1234) -> None:
        g = torch.Generator().manual_seed(seed)
        states = vocab - 1
        self.transition = torch.zeros(states, states)
        successors = torch.rand(states, states, generator=g).argsort(dim=1)[:, :fanout]
        weights = -torch.rand(states, fanout, generator=g).log()  # Dirichlet(1) via exponentials
        self.transition.scatter_(1, successors, weights / weights.sum(1, keepdim=True))

    def sample(self, g: torch.Generator, batch: int, length: int) -> torch.Tensor:
        """``(batch, length)`` token ids in ``1..V-1``; the first token is uniform."""
        states = self.transition.shape[0]
        current = torch.randint(0, states, (batch,), generator=g)
        tokens = [current]
        for _ in range(length - 1):
            current = torch.multinomial(self.transition[current], 1, generator=g).squeeze(1)
            tokens.append(current)
        return torch.stack(tokens, dim=1) + 1


@cache
def _chain() -> MarkovChain:
    return MarkovChain()


def _lm_batch(g: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = _chain().sample(g, n, SEQ + 1)
    return tokens[:, :-1], tokens[:, 1:]


def _hf_lm_batch(g: torch.Generator, n: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    ids, targets = _lm_batch(g, n)
    return {"input_ids": ids}, targets


def _mlm_batch(g: torch.Generator, n: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """15% of the positions of each row (5 of 32) masked; targets -100 elsewhere."""
    tokens = _chain().sample(g, n, SEQ)
    masked = torch.zeros_like(tokens, dtype=torch.bool)
    masked.scatter_(1, torch.rand(n, SEQ, generator=g).argsort(dim=1)[:, : SEQ * 15 // 100], True)
    targets = torch.where(masked, tokens, torch.full_like(tokens, -100))
    return {"input_ids": tokens.masked_fill(masked, MASK)}, targets


def _shift_right(targets: torch.Tensor) -> torch.Tensor:
    """Decoder inputs for teacher forcing: token 0 as start, then the targets but the last."""
    return F.pad(targets[:, :-1], (1, 0), value=0)


def _continuation_batch(g: torch.Generator, n: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Encoder: the first half of a chain sequence; decoder: predict the second half."""
    tokens = _chain().sample(g, n, SEQ)
    prefix, continuation = tokens[:, : SEQ // 2], tokens[:, SEQ // 2 :]
    return {"input_ids": prefix, "decoder_input_ids": _shift_right(continuation)}, continuation


MEL_BINS = 16


@cache
def _mel_codebook() -> torch.Tensor:
    return torch.randn(VOCAB, MEL_BINS, generator=torch.Generator().manual_seed(4321))


def _transcription_batch(
    g: torch.Generator, n: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A mel-like ``(n, 16 bins, 32 frames)`` recording (one fixed random spectrum per token,
    plus noise) and the decoder's task: transcribe its tokens."""
    tokens = _chain().sample(g, n, SEQ)
    frames = _mel_codebook()[tokens] + 0.1 * torch.randn(n, SEQ, MEL_BINS, generator=g)
    features = frames.transpose(1, 2).contiguous()
    return {"input_features": features, "decoder_input_ids": _shift_right(tokens)}, tokens


class _Teacher(nn.Module):
    """A fixed random conv net (5x5 conv, ReLU, global mean, linear) whose logits are
    standardized on a reference batch, so its argmax classes are roughly balanced."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, seed: int = 99) -> None:
        super().__init__()
        torch_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 32, 5, padding=2)
        self.head = nn.Linear(32, CLASSES)
        torch.random.set_rng_state(torch_state)
        with torch.no_grad():
            reference = self.raw(_images(torch.Generator().manual_seed(seed), 2048))
        self.register_buffer("mean", reference.mean(0))
        self.register_buffer("std", reference.std(0))

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(F.relu(self.conv(x)).mean((2, 3)))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.raw(x) - self.mean) / self.std


def _images(g: torch.Generator, n: int) -> torch.Tensor:
    """Smooth random images: 8x8 Gaussian noise upsampled bilinearly to 32x32."""
    coarse = torch.randn(n, 3, IMAGE // 4, IMAGE // 4, generator=g)
    return F.interpolate(coarse, size=(IMAGE, IMAGE), mode="bilinear", align_corners=False)


@cache
def _teacher() -> _Teacher:
    return _Teacher()


def _vision_batch(g: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = _images(g, n)
    with torch.no_grad():
        labels = _teacher()(images).argmax(1)
    return images, labels


def _hf_vision_batch(g: torch.Generator, n: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    images, labels = _vision_batch(g, n)
    return {"pixel_values": images}, labels


# --- losses ----------------------------------------------------------------------------------


def _call(model: nn.Module, inputs: Any) -> Any:
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, tuple | list):
        return model(*inputs)
    return model(inputs)


def _cross_entropy(model: nn.Module, inputs: Any, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the model's logits (a tensor or ``output.logits``); -100 ignored."""
    out = _call(model, inputs)
    logits: torch.Tensor = out if isinstance(out, torch.Tensor) else out.logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))


# --- nanoGPT ---------------------------------------------------------------------------------


class _Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(width, 3 * width)
        self.c_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)  # (B, T, C) each
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, C/H)
        out: torch.Tensor = self.c_proj(y.transpose(1, 2).reshape(b, t, c))
        return out


class _Block(nn.Module):
    """Pre-LN: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))`` with a GELU MLP of width 4C."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = _Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        out: torch.Tensor = x + self.mlp(self.ln_2(x))
        return out


class NanoGPT(nn.Module):
    """nanoGPT's GPT (Karpathy, ``model.py``): learned positions, pre-LN blocks, a final
    LayerNorm and an LM head tied to the token embedding. Init as nanoGPT: every Linear and
    Embedding N(0, 0.02), biases zero, and each residual projection ``c_proj`` N(0, 0.02/√(2L))
    (GPT-2's scaling for the L blocks' 2L residual additions)."""

    def __init__(
        self,
        vocab: int = VOCAB,
        block_size: int = SEQ,
        width: int = HIDDEN,
        layers: int = LAYERS,
        heads: int = HEADS,
    ) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(block_size, width)
        self.h = nn.ModuleList(_Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, vocab, bias=False)
        self.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(positions)  # (B, T, C)
        for block in self.h:
            x = block(x)
        logits: torch.Tensor = self.lm_head(self.ln_f(x))  # (B, T, V)
        return logits


# --- Hugging Face builders -------------------------------------------------------------------

_IDS = {"pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0}
_DECODER = {
    "vocab_size": VOCAB,
    "hidden_size": HIDDEN,
    "intermediate_size": 2 * HIDDEN,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS,
    "max_position_embeddings": 2 * SEQ,
    **_IDS,
}


def _hf(model: str, config: str, **kwargs: Any) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        transformers = import_transformers()
        built: nn.Module = getattr(transformers, model)(getattr(transformers, config)(**kwargs))
        return built

    return build


def _hf_lm(name: str, model: str, config: str, **kwargs: Any) -> Spec:
    return Spec(
        name,
        "lm",
        _hf(model, config, **{**_DECODER, **kwargs}),
        _hf_lm_batch,
        _cross_entropy,
        VOCAB,
        "transformers",
    )


def _timm(name: str, **kwargs: Any) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        model: nn.Module = import_timm().create_model(
            name, pretrained=False, num_classes=CLASSES, **kwargs
        )
        return model

    return build


def _timm_spec(name: str, model: str, **kwargs: Any) -> Spec:
    return Spec(
        name, "vision", _timm(model, **kwargs), _vision_batch, _cross_entropy, CLASSES, "timm"
    )


def _efficientnet_b0_half() -> nn.Module:
    """EfficientNet-B0's blocks at half the channels and half the depth: timm's registered
    ``efficientnet_b0`` fixes both multipliers, so this calls the generator behind it."""
    import_timm()
    efficientnet = importlib.import_module("timm.models.efficientnet")
    model: nn.Module = efficientnet._gen_efficientnet(
        "efficientnet_b0", channel_multiplier=0.5, depth_multiplier=0.5, num_classes=CLASSES
    )
    return model


_SPECS = [
    _hf_lm("hf-gpt2", "GPT2LMHeadModel", "GPT2Config", n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS),
    _hf_lm(
        "hf-llama",
        "LlamaForCausalLM",
        "LlamaConfig",
        num_key_value_heads=2,
        tie_word_embeddings=False,
    ),
    _hf_lm(
        "hf-qwen2",
        "Qwen2ForCausalLM",
        "Qwen2Config",
        num_key_value_heads=2,
        tie_word_embeddings=True,
    ),
    _hf_lm("hf-gpt-neox", "GPTNeoXForCausalLM", "GPTNeoXConfig"),
    _hf_lm("hf-phi", "PhiForCausalLM", "PhiConfig"),
    _hf_lm(
        "hf-mixtral",
        "MixtralForCausalLM",
        "MixtralConfig",
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
    ),
    Spec(
        "hf-t5",
        "seq2seq",
        _hf(
            "T5ForConditionalGeneration",
            "T5Config",
            vocab_size=VOCAB,
            d_model=HIDDEN,
            d_kv=HIDDEN // HEADS,
            d_ff=2 * HIDDEN,
            num_layers=LAYERS,
            num_heads=HEADS,
            decoder_start_token_id=0,
            **_IDS,
        ),
        _continuation_batch,
        _cross_entropy,
        VOCAB,
        "transformers",
    ),
    Spec(
        "hf-whisper",
        "seq2seq",
        _hf(
            "WhisperForConditionalGeneration",
            "WhisperConfig",
            vocab_size=VOCAB,
            num_mel_bins=MEL_BINS,
            d_model=HIDDEN,
            encoder_layers=LAYERS,
            decoder_layers=LAYERS,
            encoder_attention_heads=HEADS,
            decoder_attention_heads=HEADS,
            encoder_ffn_dim=2 * HIDDEN,
            decoder_ffn_dim=2 * HIDDEN,
            max_source_positions=SEQ // 2,  # the encoder's stride-2 conv halves the 32 frames
            max_target_positions=SEQ,
            decoder_start_token_id=0,
            suppress_tokens=None,
            begin_suppress_tokens=None,
            **_IDS,
        ),
        _transcription_batch,
        _cross_entropy,
        VOCAB,
        "transformers",
    ),
    Spec(
        "hf-distilbert",
        "mlm",
        _hf(
            "DistilBertForMaskedLM",
            "DistilBertConfig",
            vocab_size=VOCAB,
            dim=HIDDEN,
            hidden_dim=2 * HIDDEN,
            n_layers=LAYERS,
            n_heads=HEADS,
            max_position_embeddings=2 * SEQ,
            pad_token_id=0,
        ),
        _mlm_batch,
        _cross_entropy,
        VOCAB,
        "transformers",
    ),
    Spec(
        "hf-vit",
        "vision",
        _hf(
            "ViTForImageClassification",
            "ViTConfig",
            image_size=IMAGE,
            patch_size=4,
            hidden_size=HIDDEN,
            num_hidden_layers=LAYERS,
            num_attention_heads=HEADS,
            intermediate_size=2 * HIDDEN,
            num_labels=CLASSES,
        ),
        _hf_vision_batch,
        _cross_entropy,
        CLASSES,
        "transformers",
    ),
    # timm: the published depths, narrower stages where the constructor takes them (CPU speed)
    _timm_spec("timm-resnet18", "resnet18", channels=(16, 32, 64, 128), stem_width=16),
    _timm_spec("timm-resnet50", "resnet50", channels=(8, 16, 32, 64), stem_width=8),
    _timm_spec("timm-convnext", "convnext_atto", dims=(16, 32, 64, 128)),
    _timm_spec(
        "timm-vit-tiny",
        "vit_tiny_patch16_224",
        img_size=IMAGE,
        patch_size=4,
        depth=LAYERS,
    ),
    Spec(
        "timm-efficientnet-b0",
        "vision",
        _efficientnet_b0_half,
        _vision_batch,
        _cross_entropy,
        CLASSES,
        "timm",
    ),
    _timm_spec("timm-mobilenetv3", "mobilenetv3_small_050"),
    _timm_spec("timm-regnet", "regnetx_002", w0=16, wa=24.0, depth=10),
    Spec("nanogpt", "lm", NanoGPT, _lm_batch, _cross_entropy, VOCAB, ""),
]

ZOO: dict[str, Spec] = {spec.name: spec for spec in _SPECS}
