"""``SequenceModel``: input encoder -> ``Recurrent`` -> readout, and its validated config."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from ..config.schema import check
from ..core import Noise, Recurrent
from ..core import Cell, get_cell
from ..core.variants import CT_METHODS, ctrnn_cell, indrnn_cell
from ..errors import UserError
from ..tasks.base import START_ID, STOP_ID, TaskSpec
from .attention import ALIASES, ATTENTION, Attention
from .encoders import make_encoder
from .seq2seq import BRIDGES, Bridge, EncoderDecoder
from .readouts import READOUTS, mlp
from .reservoir import ReservoirConfig

# CLI/config cell names -> (core cell name, nonlinearity); core/cells.py, core/variants.py
CELL_NAMES = {"rnn": ("RNN", "tanh"), "rnn-relu": ("RNN", "relu"),
              "lstm": ("LSTM", "tanh"), "gru": ("GRU", "tanh"),
              "esn": ("RESERVOIR", "tanh"),  # esn: fixed reservoir + closed-form readout (models/esn.py)
              "local": ("LOCAL", "tanh"),  # locally recurrent: each unit feeds back to itself only
              "ln-lstm": ("ln_lstm", "tanh"), "ln-gru": ("ln_gru", "tanh"),  # layer-normalised
              "peephole": ("peephole", "tanh"),  # LSTM whose gates read the cell state
              "indrnn": ("indrnn", "relu"),  # independently recurrent (ReLU, |u| <= recurrent_max)
              "ctrnn": ("ctrnn", "tanh")}  # continuous-time, Euler or RK4 steps of ct_dt
# the cells with a forget gate, and those that take a projection: read from the cells themselves
FORGET_GATE_CELLS = tuple(n for n, (m, f) in CELL_NAMES.items() if get_cell(m, f).forget_gate is not None)
PROJECTABLE_CELLS = tuple(n for n, (m, f) in CELL_NAMES.items() if get_cell(m, f).projectable)
# the regularisers that act while training (core/regularize.py), beside model.dropout
NOISE_KEYS = ("input_dropout", "output_dropout", "recurrent_dropout", "zoneout", "weight_drop")


@dataclass(frozen=True)
class ModelConfig:
    cell: str = "rnn"  # rnn (Elman tanh) | rnn-relu | lstm | gru | local (diagonal recurrence) | esn (reservoir)
    hidden: int = 64  # hidden units per layer and direction (the seed example's 64)
    layers: int = 1  # stacked recurrent layers
    bidirectional: bool = False  # also read every sequence backwards (not for streams)
    dropout: float = 0.0  # dropout between stacked layers, in [0, 1)
    bias: bool = True  # biases in the recurrent layers
    init: str = "default"  # default | orthogonal | identity | spectral | esn | sparse (recurrent weights)
    spectral_radius: float = 1.0  # for init = "spectral" (and a scale for "identity")
    connections: int = 15  # init = "sparse": incoming recurrent weights per unit (Sutskever et al. 2013: 15)
    input_scale: float = 0.0  # init = "sparse": input weights N(0, input_scale^2); 0 keeps the default
    output_scale: float = 0.0  # readout's last layer N(0, output_scale^2), bias 0; 0 keeps the default
    # lstm: the forget gate's effective bias after any init (Gers et al. 2000; Jozefowicz et al.
    # 2015: 1); 0 keeps the scheme's bias
    forget_bias: float = 0.0
    # auto (the task decides) | last (many-to-one) | mean (pooled over steps) | attention
    # (pooled by learned attention weights) | every (many-to-many)
    readout: str = "auto"
    # attention: none | additive | general | dot | scaled-dot (models/attention.py): inside an
    # encoder-decoder's decoder, and the score of readout = "attention" (none there: additive)
    attention: str = "none"
    input_feeding: bool = False  # encoder-decoder: feed the attentional state to the next step (Luong)
    bridge: str = "linear"  # encoder-decoder: linear (tanh(W h)) | copy | zero, encoder state -> decoder's
    readout_hidden: Tuple[int, ...] = ()  # hidden sizes of an MLP readout (() = linear)
    embedding: int = 0  # token inputs: embedding size, 0 = one-hot
    path: str = "auto"  # auto | fused | step: how the core runs (see rnntrain.Recurrent)
    proj: int = 0  # lstm: project h to this many units (Sak et al. 2014; torch's proj_size), 0: none
    recurrent_max: float = 1.0  # indrnn: |recurrent weight| <= this (Li et al. 2018's bound)
    ct_method: str = "euler"  # ctrnn: euler | rk4, integrating each step
    # ctrnn: each step's length in time units (time constants start in [1, 10]); 0: each step's
    # own, read from the data's time column (task.time_column: irregular sampling)
    ct_dt: float = 1.0
    # regularisers while training (core/regularize.py); bptt only, off in evaluation
    input_dropout: float = 0.0  # dropout on the core's input features
    output_dropout: float = 0.0  # dropout on the top layer's outputs (before the readout)
    recurrent_dropout: float = 0.0  # one mask per sequence on h(t-1) into W_hh (Gal & Ghahramani 2016)
    zoneout: float = 0.0  # each state unit keeps its previous value with this probability (Krueger et al. 2017)
    weight_drop: float = 0.0  # DropConnect on W_hh, one mask per batch (Merity et al. 2018, AWD-LSTM)
    variational: bool = False  # input, between-layer and output dropout: one mask per sequence
    # cell = "esn" (and init = "esn"): the fixed reservoir's weights; spectral_radius above is W's
    reservoir: ReservoirConfig = field(default_factory=ReservoirConfig)

    def __post_init__(self) -> None:
        check(self.cell in CELL_NAMES, f"unknown cell '{self.cell}': choose one of "
              f"{', '.join(CELL_NAMES)} (--cell)")
        check(self.hidden > 0, f"hidden must be a positive number of units, got {self.hidden} (--hidden)")
        check(self.layers > 0, f"layers must be at least 1, got {self.layers} (--layers)")
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        check(self.spectral_radius > 0, f"spectral_radius must be positive, got {self.spectral_radius}")
        check(self.connections > 0, f"connections must be a positive count, got {self.connections} (model.connections)")
        check(self.input_scale >= 0 and self.output_scale >= 0,
              "input_scale and output_scale must be >= 0 (0 keeps the default init)")
        check(math.isfinite(self.forget_bias), f"forget_bias must be a finite number, got {self.forget_bias}")
        check(self.forget_bias == 0 or self.cell in FORGET_GATE_CELLS,
              f"forget_bias is an LSTM forget gate's bias, and the cell is '{self.cell}': "
              f"use --cell {', '.join(FORGET_GATE_CELLS)}, or drop model.forget_bias")
        check(self.forget_bias == 0 or self.bias,
              "forget_bias needs the LSTM's biases: drop model.bias = false or model.forget_bias")
        check(self.readout in ("auto", *READOUTS), f"unknown readout '{self.readout}': choose "
              f"auto, {', '.join(READOUTS)}")
        check(all(h > 0 for h in self.readout_hidden),
              f"readout_hidden sizes must be positive, got {list(self.readout_hidden)}")
        check(self.embedding >= 0, f"embedding must be >= 0 (0 = one-hot), got {self.embedding}")
        check(self.path in ("auto", "fused", "step", "compiled"), f"path must be auto, compiled, fused or step, got '{self.path}'")
        object.__setattr__(self, "attention", ALIASES.get(self.attention, self.attention))
        check(self.attention in ("none", *ATTENTION), f"unknown attention '{self.attention}': choose "
              f"none, {', '.join(ATTENTION)} (or bahdanau = additive, luong = general) (--attention)")
        check(self.bridge in BRIDGES, f"unknown bridge '{self.bridge}': choose {', '.join(BRIDGES)}")
        check(self.proj >= 0, f"proj must be >= 0 units (0: no projection), got {self.proj} (--proj)")
        check(self.proj == 0 or self.cell in PROJECTABLE_CELLS, f"proj is an LSTM's projection of h; the "
              f"cell is '{self.cell}': use --cell {', '.join(PROJECTABLE_CELLS)}, or drop --proj")
        check(self.proj < self.hidden, f"proj must be fewer units than hidden ({self.hidden}), got {self.proj}")
        check(self.recurrent_max > 0 and math.isfinite(self.recurrent_max),
              f"recurrent_max must be a positive number, got {self.recurrent_max}")
        check(self.ct_method in CT_METHODS, f"ct_method must be one of {', '.join(CT_METHODS)}, "
              f"got '{self.ct_method}'")
        check(self.ct_dt >= 0 and math.isfinite(self.ct_dt), f"ct_dt must be a positive step length (0: from "
              f"the data's time column), got {self.ct_dt}")
        check(not (self.core_cell().reads_dt and self.bidirectional),
              "model.ct_dt = 0 integrates each step over the gap before it, forwards in time; a "
              "bidirectional core would read the gaps backwards: drop --bidirectional")
        for key in NOISE_KEYS:
            value = getattr(self, key)
            check(0.0 <= value < 1.0, f"{key} must be a probability in [0, 1), got {value} (model.{key})")
        check(not (self.fixed_reservoir and self.regularizers),
              f"cell 'esn' is a fixed reservoir with a fitted readout; {', '.join(self.regularizers)} "
              f"{'acts' if len(self.regularizers) == 1 else 'act'} while a network trains: drop "
              f"{'it' if len(self.regularizers) == 1 else 'them'}, or choose a trained cell")

    @property
    def regularizers(self) -> List[str]:
        """The ``model.*`` regularisers that are switched on (they act while training only)."""
        return [f"model.{k}" for k in NOISE_KEYS if getattr(self, k) > 0] + (
            ["model.variational"] if self.variational else [])

    def noise(self) -> Noise:
        return Noise(self.input_dropout, self.output_dropout, self.variational,
                     self.recurrent_dropout, self.zoneout, self.weight_drop)

    def core_cell(self) -> Cell:
        """The core's cell (core/cells.py, core/variants.py), configured by this config."""
        if self.cell == "indrnn":
            return indrnn_cell(self.recurrent_max)
        if self.cell == "ctrnn":
            return ctrnn_cell(self.ct_method, self.ct_dt or 1.0, timed=self.ct_dt == 0)
        return get_cell(*CELL_NAMES[self.cell])

    @property
    def fixed_reservoir(self) -> bool:
        """The recurrent core is a fixed random reservoir (an echo state network): only the
        readout has weights to learn."""
        return self.cell == "esn"


class SequenceModel(nn.Module):
    """encoder -> Recurrent (batch first) -> readout, behind the model protocol.

    The protocol is what algorithms, analyses, tasks and generation may ask of a model;
    only ``models/`` knows how one is put together (nothing outside reads ``.rnn``,
    ``.encoder`` or ``.readout``), so a model with several recurrent cores or a model
    wrapped for data-parallel training answers the same calls::

        forward(inputs, state=None, *, lengths=None, final_state=True, decoder=None) -> (outputs, state)
        encode(inputs) -> features (N, L, F)            the core's input
        unroll(features, state=None, *, lengths=None, final_state=True)
                       -> (states (N, L, D*H), final state)   every step of the top layer
        read(states, lengths=None) -> outputs           (N, O) many-to-one, (N, L, O) per step
        outputs_and_states(inputs, lengths=None, decoder=None) -> (outputs, states)   (Hessian-free)
        cores() -> {name: Recurrent}; core(purpose) -> the one core, or a UserError
        parameters_of(part) -> [Parameter]              part: "encoder" | "core" | "readout"
        population_forward(params, inputs, lengths, decoder=None) -> (P, ...) outputs of P weight sets

    with ``inputs`` (N, L, F) features or (N, L) token ids, ``lengths`` (N,) valid steps (None:
    all L; a many-to-one readout reads each sequence's last valid step), ``state`` the core's
    state in torch's layout, (layers*D, N, H) or a tuple (h, c). ``final_state=False`` lets
    the core skip computing a final state nobody reads (returned as None). ``decoder`` is an
    encoder-decoder's teacher-forced target side (:class:`~rnntrain.tasks.base.DecoderInputs`,
    models/seq2seq.py); one-core models take None.
    """

    def __init__(self, encoder: nn.Module, rnn: Recurrent, readout: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.rnn = rnn
        self.readout = readout

    @property
    def per_step(self) -> bool:
        return self.readout.per_step

    @property
    def reads_all_steps(self) -> bool:
        """Whether the readout reads every step's state (per-step or pooled), not only each
        sequence's final state."""
        return self.readout.reads_all_steps

    # -- the three stages ---------------------------------------------------------------
    def encode(self, inputs: Tensor) -> Tensor:
        return self.encoder(inputs)

    def unroll(self, features: Tensor, state=None, *, lengths=None, final_state: bool = True):
        return self.rnn(features, state, lengths=lengths, final_state=final_state)

    def read(self, states: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        return self.readout(states, lengths)

    def forward(self, inputs: Tensor, state=None, *, lengths=None, final_state: bool = True,
                decoder=None):
        if decoder is not None:
            raise ValueError("this model has no decoder; decoder inputs are for encoder-decoders")
        states, state = self.unroll(self.encode(inputs), state, lengths=lengths,
                                    final_state=final_state)  # (N, L, D*H)
        return self.read(states, lengths), state

    def outputs_and_states(self, inputs: Tensor, lengths: Optional[Tensor] = None, decoder=None):
        """(outputs, every hidden state of the top layer (N, L, D*H)) from the zero state."""
        states, _ = self.unroll(self.encode(inputs), None, lengths=lengths, final_state=False)
        return self.read(states, lengths), states

    def read_core(self, name: str, states: Tensor, *, lengths: Optional[Tensor] = None,
                  decoder=None) -> Tensor:
        """Outputs from core ``name``'s flat states at every step, (N, L, S) in
        :meth:`Recurrent.flat_state`'s layout (what the analyses differentiate)."""
        return self.read(top_layer(self.cores()[name], states), lengths)

    def attention_weights(self, inputs: Tensor, lengths: Optional[Tensor] = None) -> Optional[Tensor]:
        """(N, L) attention weights of an attention-pooling readout over each sequence's
        steps (for plots); None for other readouts."""
        if not hasattr(self.readout, "attend"):
            return None
        states, _ = self.unroll(self.encode(inputs), None, lengths=lengths, final_state=False)
        return self.readout.attend(states, lengths)[1]

    # -- structure ----------------------------------------------------------------------
    def cores(self) -> Dict[str, Recurrent]:
        """The recurrent cores, by name (one here; an encoder-decoder has two)."""
        return {"rnn": self.rnn}

    def core(self, purpose: str = "this") -> Recurrent:
        """The model's only recurrent core; a UserError naming ``purpose`` when it has several."""
        cores = self.cores()
        if len(cores) != 1:
            raise UserError(f"{purpose} needs a model with one recurrent core; this one has "
                            f"{len(cores)} ({', '.join(cores)})")
        return next(iter(cores.values()))

    def parameters_of(self, part: str) -> List[nn.Parameter]:
        """The parameters of one part: "encoder", "core" or "readout"."""
        modules = {"encoder": self.encoder, "core": self.rnn, "readout": self.readout}
        if part not in modules:
            raise ValueError(f"part must be one of {', '.join(modules)}, got {part!r}")
        return list(modules[part].parameters())

    # -- P networks at once ------------------------------------------------------------------
    def population_forward(self, params: Dict[str, Tensor], inputs: Tensor,
                           lengths: Optional[Tensor] = None, decoder=None) -> Tensor:
        """Outputs of P weight sets at once: ``params`` {name: (P, *shape)} (names as in
        ``named_parameters()``) -> (P, N, O) or (P, N, L, O).

        The time loop calls the cell's own ``recur`` with stacked weights (one batched
        matmul per step, no vmap dispatch per step: :meth:`Recurrent.population_unroll`);
        the encoder runs under vmap, the readout by its own :meth:`Readout.population`. A
        bidirectional core runs each direction that way, the backward one on the sequences
        reversed (:func:`.core.population.population_unroll`)."""
        enc = {k[len("encoder."):]: v for k, v in params.items() if k.startswith("encoder.")}
        core = {k[len("rnn."):]: v for k, v in params.items() if k.startswith("rnn.")}
        ro = {k[len("readout."):]: v for k, v in params.items() if k.startswith("readout.")}
        if enc:  # learned embeddings: features differ per individual
            feats = vmap(lambda p: functional_call(self.encoder, p, (inputs,)))(enc)  # (P, N, L, F)
            seq = feats.permute(2, 0, 1, 3)  # (L, P, N, F)
        else:
            seq = self.encoder(inputs).transpose(0, 1)  # (L, N, F), shared by all
        final_only = not self.reads_all_steps and not self.rnn.bidirectional  # (a backward direction ends at step 0)
        states = self.rnn.population_unroll(core, seq.contiguous(), lengths,
                                            final_only=final_only)  # (P, N, L or 1, D*H)
        # final_only: (P, N, 1, H) holds each sequence's final (frozen) state, the last step read
        read_lengths = None if final_only else lengths
        return self.readout.population(ro, states, read_lengths)


def top_layer(core: Recurrent, states: Tensor) -> Tensor:
    """The top layer's h (N, L, H) of flat states (N, L, S) (:meth:`Recurrent.flat_state`)."""
    N, L, S = states.shape
    layout = core.unflat_state(states.reshape(N * L, S))
    h = layout[0] if isinstance(layout, tuple) else layout
    return h[-1].reshape(N, L, -1)


def build_model(config: ModelConfig, spec: TaskSpec, *, generator: Optional[torch.Generator] = None,
                device=None, dtype=None) -> SequenceModel:
    """The model a task needs (input/output sizes from ``spec``), initialised per ``config``."""
    check(not config.core_cell().reads_dt or spec.time_input,
          "model.ct_dt = 0 reads each step's length from the data's time column: name it with "
          "--set task.time_column=COLUMN (a forecast of your file), or give model.ct_dt a step length")
    if config.cell == "esn":
        check(not spec.decoder, "an encoder-decoder trains both of its cores; cell 'esn' is a fixed "
              "reservoir: choose --cell rnn, rnn-relu, lstm, gru or local")
        check(config.layers == 1 and not config.bidirectional,
              "cell 'esn' is one reservoir layer, read forwards: drop --layers/--bidirectional")
        check(config.readout in ("auto", "last", "every"),
              f"cell 'esn' fits a linear readout of the last or of every state; readout "
              f"'{config.readout}' is for trained cells: use readout = \"auto\"")
        from .esn import build_esn  # local: esn subclasses SequenceModel
        return build_esn(config.hidden, config.spectral_radius, config.reservoir, spec,
                         embedding=config.embedding, readout=config.readout, generator=generator,
                         device=device, dtype=dtype)

    if spec.decoder:
        return _encoder_decoder(config, spec, generator).to(device=device, dtype=dtype)
    readout = config.readout
    if readout == "auto":
        readout = "every" if spec.per_step else "last"
    if spec.per_step != (readout == "every"):
        raise UserError(f"this task predicts {'at every step' if spec.per_step else 'once per sequence'}; "
                        f"readout '{readout}' cannot: use readout = \"auto\"")
    encoder = make_encoder(spec.input_size, spec.tokens, config.embedding)
    rnn = _core(config, encoder.out_features, config.hidden, config.bidirectional, generator)
    head = READOUTS[readout](rnn.output_size, 2 if config.bidirectional else 1, spec.output_size,
                             config.readout_hidden, attention=config.attention)
    if config.output_scale > 0:  # Sutskever et al. 2013 sec. 4: small Gaussian output weights
        last = [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
        with torch.no_grad():
            last.weight.copy_(torch.randn(last.weight.shape, generator=generator) * config.output_scale)
            last.bias.zero_()
    model = SequenceModel(encoder, rnn, head)
    return model.to(device=device, dtype=dtype)


def _core(config: ModelConfig, input_size: int, hidden: int, bidirectional: bool,
          generator: Optional[torch.Generator]) -> Recurrent:
    """A recurrent core of ``config``'s cell, layers and init."""
    from .init import initialize  # local: init imports the core only

    rnn = Recurrent(config.core_cell(), input_size, hidden, config.layers, bias=config.bias,
                    batch_first=True, dropout=config.dropout if config.layers > 1 else 0.0,
                    bidirectional=bidirectional, nonlinearity=CELL_NAMES[config.cell][1],
                    proj_size=config.proj, path=config.path, noise=config.noise())
    initialize(rnn, config.init, spectral_radius=config.spectral_radius, generator=generator,
               density=config.reservoir.density, input_scaling=config.reservoir.input_scaling,
               input_density=config.reservoir.input_density, connections=config.connections,
               input_scale=config.input_scale, forget_bias=config.forget_bias)
    return rnn


def _encoder_decoder(config: ModelConfig, spec: TaskSpec,
                     generator: Optional[torch.Generator]) -> EncoderDecoder:
    """Encoder (config's cell, layers, direction) -> bridge -> decoder of D*hidden units
    (models/seq2seq.py); target ids as tasks.base: PAD_ID, UNK_ID, START_ID, STOP_ID."""
    check(config.readout in ("auto", "every"), f"an encoder-decoder emits a sequence through its "
          f"decoder; readout '{config.readout}' is for one-core models: use readout = \"auto\"")
    check(config.proj == 0, "an encoder-decoder's bridge maps whole states of hidden units; model.proj "
                            "projects them: drop --proj")
    D = 2 if config.bidirectional else 1
    source = make_encoder(spec.input_size, spec.tokens, config.embedding)
    encoder = _core(config, source.out_features, config.hidden, config.bidirectional, generator)
    target = make_encoder(spec.output_size, spec.target_tokens, config.embedding)
    feed = D * config.hidden if config.input_feeding else 0
    check(not config.input_feeding or config.attention != "none",
          "input feeding feeds the attentional state back: choose an --attention or drop input_feeding")
    decoder = _core(config, target.out_features + feed, D * config.hidden, False, generator)
    attention = None
    if config.attention != "none":
        attention = Attention(config.attention, D * config.hidden, D * config.hidden)
    bridge = Bridge(config.bridge, config.layers, D, config.hidden, encoder.state_arity)
    output = mlp(D * config.hidden, config.readout_hidden, spec.output_size)
    return EncoderDecoder(source, encoder, bridge, target, decoder, output, attention,
                          input_feeding=config.input_feeding, tokens=spec.target_tokens,
                          start=START_ID, stop=STOP_ID)
