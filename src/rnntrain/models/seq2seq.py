r"""Encoder-decoder networks: read a source sequence, then emit a target sequence of its own
length (Sutskever, Vinyals & Le 2014; Cho et al. 2014), optionally attending over the
source's states (Bahdanau, Cho & Bengio 2015; Luong, Pham & Manning 2015).

Shapes: N sequences, S source steps, T target steps, D = 2 for a bidirectional encoder,
H hidden units per encoder direction, so the decoder has D*H units (it matches the states
it reads), V target symbols (or C values per step for numeric targets)::

    m_1..m_S, h_enc = Encoder(source)                 (N, S, D*H): every state, the memory
    s_0 = bridge(h_enc)                               per layer [h_fwd; h_bwd] -> tanh(W .) | copy | zeros
    s_t = Decoder(e(y_{t-1}) [; h~_{t-1}], s_{t-1})   e: target embedding; h~ fed back = input feeding
    c_t, a_t = Attention(s_t, m, source mask)         (optional; models/attention.py)
    h~_t = tanh(W_c [c_t; s_t])  (attention)  or  s_t  (without)
    o_t = W_o h~_t                                    logits over V (or C values)

The wiring is Luong's (attention reads the decoder's new state; any score function,
Bahdanau's additive one included). ``y_0`` is the start symbol (numeric: the last observed
value). Training reads the teacher's ``y_{t-1}`` (teacher forcing); with scheduled sampling
(Bengio et al. 2015) each sequence reads, at each step, the model's own sample instead with
probability ``1 - forcing``. Without input feeding and with full forcing, the decoder runs
as one call of its core over all T steps (the fused kernel) and attention as one batched
product; otherwise step by step through :meth:`Recurrent.step`.

Decoding: greedy, or beam search (width K, scores divided by length^alpha when choosing
among finished hypotheses; a finished hypothesis keeps its score), both stopping at the
stop symbol or after ``max_length`` steps. Beam width 1 is greedy decoding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from ..core import Recurrent
from ..core.lengths import valid_mask
from ..core.unroll import stack_steps
from ..errors import UserError
from ..tasks.base import PAD_ID
from .attention import Attention

BRIDGES = ("linear", "copy", "zero")


class Bridge(nn.Module):
    """The encoder's final state (layers*D, N, H) (LSTM: (h, c)) -> the decoder's initial
    state (layers, N, D*H): per layer the directions side by side, [h_fwd; h_bwd], then
    ``linear``: tanh(W h + b) for h, W c + b for an LSTM's c (one map per state part, shared
    by the layers); ``copy``: as it is; ``zero``: zeros (the decoder starts from nothing and
    sees the source only through attention)."""

    def __init__(self, kind: str, layers: int, directions: int, hidden: int, arity: int) -> None:
        super().__init__()
        self.kind, self.layers, self.directions = kind, layers, directions
        if kind == "linear":
            size = directions * hidden
            self.maps = nn.ModuleList(nn.Linear(size, size) for _ in range(arity))

    def forward(self, final):
        parts = final if isinstance(final, tuple) else (final,)
        out = []
        for i, s in enumerate(parts):
            _, N, H = s.shape
            s = s.reshape(self.layers, self.directions, N, H).permute(0, 2, 1, 3)
            s = s.reshape(self.layers, N, self.directions * H)
            if self.kind == "zero":
                s = torch.zeros_like(s)
            elif self.kind == "linear":
                s = self.maps[i](s)
                s = torch.tanh(s) if i == 0 else s
            out.append(s)
        return tuple(out) if len(out) == 2 else out[0]


@dataclass
class Decoded:
    """What decoding returns. tokens (N, T) long (token targets; after a sequence's stop
    symbol: padding), values (N, T, C) (numeric targets), lengths (N,) steps emitted
    including the stop symbol, attention (N, T, S) weights (None without attention),
    scores (N,) log-probability of each chosen sequence (token targets)."""

    tokens: Optional[Tensor]
    values: Optional[Tensor]
    lengths: Tensor
    attention: Optional[Tensor]
    scores: Optional[Tensor] = None


class EncoderDecoder(nn.Module):
    """See the module docstring. The model protocol of :class:`SequenceModel` where it
    applies: ``forward(inputs, state, *, lengths, final_state, decoder)`` (teacher-forced
    outputs (N, T, V)), ``outputs_and_states``, ``cores()`` (two: encoder and decoder),
    ``parameters_of``, ``population_forward``; plus :meth:`decode`."""

    per_step = False  # one target sequence per source, not a prediction per source step
    reads_all_steps = True  # attention and the loss read every step

    def __init__(self, source: nn.Module, encoder: Recurrent, bridge: Bridge, target: nn.Module,
                 decoder: Recurrent, output: nn.Module, attention: Optional[Attention] = None, *,
                 input_feeding: bool = False, tokens: bool = True, start: int = 0, stop: int = 0) -> None:
        super().__init__()
        self.source, self.encoder, self.bridge = source, encoder, bridge
        self.target, self.decoder, self.output = target, decoder, output
        self.attention = attention
        size = decoder.hidden_size
        self.combine = nn.Linear(encoder.hidden_size * (2 if encoder.bidirectional else 1) + size,
                                 size) if attention is not None else None
        self.input_feeding, self.tokens = input_feeding, tokens
        self.start, self.stop = start, stop

    # -- protocol -----------------------------------------------------------------------
    def cores(self) -> Dict[str, Recurrent]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    def core(self, purpose: str = "this") -> Recurrent:
        raise UserError(f"{purpose} needs a model with one recurrent core; an encoder-decoder has "
                        "two (encoder, decoder): use --algorithm bptt or a population method")

    def parameters_of(self, part: str) -> List[nn.Parameter]:
        """"encoder": the source and target embeddings; "core": both recurrent cores;
        "readout": bridge, attention and output layers."""
        parts = {"encoder": [self.source, self.target], "core": [self.encoder, self.decoder],
                 "readout": [self.bridge, self.attention, self.combine, self.output]}
        if part not in parts:
            raise ValueError(f"part must be one of {', '.join(parts)}, got {part!r}")
        return [p for m in parts[part] if m is not None for p in m.parameters()]

    def forward(self, inputs: Tensor, state=None, *, lengths: Optional[Tensor] = None,
                final_state: bool = True, decoder=None):
        """inputs (N, S[, F]) source, lengths (N,), decoder: the teacher's
        :class:`~rnntrain.tasks.base.DecoderInputs` -> ((N, T, V) outputs, None)."""
        return self.outputs_and_states(inputs, lengths, decoder)[0], None

    def outputs_and_states(self, inputs: Tensor, lengths: Optional[Tensor] = None, decoder=None):
        """(teacher-forced outputs (N, T, V), the decoder's top-layer states (N, T, D*H))."""
        if decoder is None:
            raise ValueError("an encoder-decoder is trained on source and target: pass "
                             "decoder=DecoderInputs(...) (tasks put it in batch.decoder)")
        memory, mask, keys, state = self._read_source(inputs, lengths)
        return self._teacher_forced(memory, mask, keys, state, decoder)

    def read_core(self, name: str, states: Tensor, *, lengths: Optional[Tensor] = None,
                  decoder=None) -> Tensor:
        """Teacher-forced outputs from the encoder's flat states at every source step (N, S,
        ·) (:meth:`Recurrent.flat_state` layout): the gradient flow through the encoder.
        The decoder's inputs depend on its own outputs, so it is analysed by dynamics only."""
        if name != "encoder":
            raise UserError("gradient flow is measured through the encoder of an encoder-decoder "
                            "(the decoder's steps read its own outputs): use --core encoder")
        from .sequence_model import top_layer  # local: sequence_model imports this module
        source = self._source(top_layer(self.encoder, states), self.encoder.unflat_state(states[:, -1]), lengths)
        return self._teacher_forced(*source, decoder)[0]

    def encode(self, inputs: Tensor) -> Tensor:
        """The encoder core's inputs (N, S, I) (the source embedded)."""
        return self.source(inputs)

    def _teacher_forced(self, memory, mask, keys, state, decoder):
        forcing = decoder.forcing if self.training else 1.0
        if not self.input_feeding and forcing >= 1.0:  # every step at once
            # without lengths: the decoder is causal, so the steps after a target's end change
            # no output before it (their outputs are masked by the loss), and the unmasked
            # kernel is faster; the states returned are zero there, as padding's are
            states, _ = self.decoder(self.target(decoder.inputs), state, final_state=False)
            out = self._emit(states, memory, mask, keys)[0]
            if decoder.lengths is not None:
                states = states * valid_mask(decoder.lengths, states.shape[1], states.device)[..., None]
            return out, states
        teacher = decoder.inputs
        prev, feed = teacher[:, 0], self._no_feed(memory)
        outs, tops = [], []
        for t in range(teacher.shape[1]):
            if t > 0:
                prev = teacher[:, t] if forcing >= 1.0 else self._sampled(teacher[:, t], outs[-1], forcing)
            out, feed, _, state = self._step(prev, feed, state, memory, mask, keys)
            outs.append(out)
            tops.append(self._top(state))
        return stack_steps(outs, 1), stack_steps(tops, 1)

    def population_forward(self, params: Dict[str, Tensor], inputs: Tensor,
                           lengths: Optional[Tensor] = None, decoder=None) -> Tensor:
        """Teacher-forced outputs of P weight sets, (P, N, T, V): vmap of the model itself."""
        def one(p):
            return functional_call(self, p, (inputs, None), {"lengths": lengths, "decoder": decoder})[0]
        return vmap(one)(params)

    # -- pieces -------------------------------------------------------------------------
    def _read_source(self, inputs: Tensor, lengths: Optional[Tensor]):
        """memory (N, S, D*H), mask (N, S) or None, precomputed attention keys, s_0."""
        memory, final = self.encoder(self.source(inputs), None, lengths=lengths)
        return self._source(memory, final, lengths)

    def _source(self, memory: Tensor, final, lengths: Optional[Tensor]):
        """What the decoder reads of an encoded source: (memory, mask, keys, s_0)."""
        mask = None if lengths is None else valid_mask(lengths, memory.shape[1], memory.device)
        keys = self.attention.keys(memory) if self.attention is not None else None
        return memory, mask, keys, self.bridge(final)

    def _no_feed(self, memory: Tensor) -> Optional[Tensor]:
        return memory.new_zeros(memory.shape[0], self.decoder.hidden_size) if self.input_feeding else None

    @staticmethod
    def _top(state) -> Tensor:
        return (state[0] if isinstance(state, tuple) else state)[-1]

    def _emit(self, s: Tensor, memory: Tensor, mask, keys) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """decoder state(s) s (N, [T,] D*H) -> (outputs, h~ (the attentional state), weights)."""
        if self.attention is None:
            return self.output(s), s, None
        context, weights = self.attention(s, memory, mask, keys)
        h = torch.tanh(self.combine(torch.cat([context, s], -1)))
        return self.output(h), h, weights

    def _step(self, prev: Tensor, feed, state, memory, mask, keys):
        """One decoder step from the previous symbol (N,) / value (N, C)."""
        x = self.target(prev[:, None])[:, 0]  # (N, E)
        if self.input_feeding:
            x = torch.cat([x, feed], -1)
        state = self.decoder.step(x, state)
        out, h, weights = self._emit(self._top(state), memory, mask, keys)
        return out, h, weights, state

    def _sampled(self, teacher: Tensor, out: Tensor, forcing: float) -> Tensor:
        """Scheduled sampling: per sequence, the teacher's input with probability ``forcing``,
        else the model's own (a symbol sampled from its distribution; its predicted value)."""
        if self.tokens:  # a symbol drawn from the model's distribution (never <pad> or <s>)
            own = torch.multinomial(self._emittable(out.detach().log_softmax(-1)).exp(), 1)[:, 0]
        else:
            own = out.detach()
        coin = torch.rand(teacher.shape[0], device=teacher.device) < forcing
        return torch.where(coin.view(-1, *([1] * (teacher.dim() - 1))), teacher, own)

    # -- decoding -----------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, inputs: Tensor, lengths: Optional[Tensor] = None, *, max_length: int,
               start: Optional[Tensor] = None, beam_width: int = 1,
               length_penalty: float = 1.0) -> Decoded:
        """Decode every source of the batch: greedy (``beam_width`` 1) or beam search.
        ``start`` (N, C): numeric targets' first input (token targets start at the start
        symbol). Numeric targets decode greedily for exactly ``max_length`` steps."""
        if beam_width > 1:
            if not self.tokens:
                raise UserError("beam search chooses among symbol sequences; numeric targets "
                                "decode greedily: use beam width 1")
            return self._beam(inputs, lengths, max_length, beam_width, length_penalty)
        memory, mask, keys, state = self._read_source(inputs, lengths)
        N = memory.shape[0]
        prev = torch.full((N,), self.start, dtype=torch.long, device=memory.device) if self.tokens else start
        feed = self._no_feed(memory)
        outs, weights = [], []
        done = torch.zeros(N, dtype=torch.bool, device=memory.device)
        score = memory.new_zeros(N)
        for _ in range(max_length):
            out, feed, w, state = self._step(prev, feed, state, memory, mask, keys)
            weights.append(w)
            if self.tokens:
                logp = self._emittable(out.log_softmax(-1))
                prev = logp.argmax(-1)
                score += torch.where(done, 0.0, logp.gather(1, prev[:, None])[:, 0])
                prev = torch.where(done, PAD_ID, prev)  # padding after the stop symbol
                done = done | (prev == self.stop)
                outs.append(prev)
                if bool(done.all()):
                    break
            else:
                outs.append(out)
                prev = out
        attention = torch.stack(weights, 1) if self.attention is not None else None
        if not self.tokens:
            values = torch.stack(outs, 1)
            return Decoded(None, values, torch.full((N,), values.shape[1]), attention)
        tokens = torch.stack(outs, 1)
        return Decoded(tokens, None, emitted_lengths(tokens, self.stop), attention, score)

    def _emittable(self, logp: Tensor) -> Tensor:
        """Log-probabilities with padding (id 0) and the start symbol never chosen."""
        banned = torch.zeros(logp.shape[-1], dtype=torch.bool, device=logp.device)
        banned[PAD_ID] = banned[self.start] = True
        return logp.masked_fill(banned, float("-inf"))

    def _beam(self, inputs, lengths, max_length: int, K: int, alpha: float) -> Decoded:
        memory, mask, keys, state = self._read_source(inputs, lengths)
        N, dev = memory.shape[0], memory.device
        rep = lambda t: None if t is None else t.repeat_interleave(K, 0)
        memory, mask, keys = rep(memory), rep(mask), rep(keys)
        state = tuple(s.repeat_interleave(K, 1) for s in state) if isinstance(state, tuple) \
            else state.repeat_interleave(K, 1)
        scores = torch.full((N, K), float("-inf"), dtype=memory.dtype, device=dev)
        scores[:, 0] = 0.0  # one live hypothesis to start with
        finished = torch.zeros(N, K, dtype=torch.bool, device=dev)
        steps = torch.zeros(N, K, dtype=torch.long, device=dev)
        prev = torch.full((N * K,), self.start, dtype=torch.long, device=dev)
        feed = self._no_feed(memory)
        hist = torch.zeros(N * K, 0, dtype=torch.long, device=dev)
        attn = memory.new_zeros(N * K, 0, memory.shape[1])
        base = (torch.arange(N, device=dev) * K)[:, None]
        for _ in range(max_length):
            out, feed, w, state = self._step(prev, feed, state, memory, mask, keys)
            logp = self._emittable(out.log_softmax(-1)).view(N, K, -1)
            V = logp.shape[-1]
            stay = torch.full((V,), float("-inf"), dtype=logp.dtype, device=dev)
            stay[PAD_ID] = 0.0  # a finished hypothesis only pads on, at no cost
            logp = torch.where(finished[..., None], stay, logp)
            top, idx = (scores[..., None] + logp).view(N, K * V).topk(K, dim=1)
            beam, tok = idx // V, idx % V
            flat = (base + beam).view(-1)
            was = finished.gather(1, beam)
            steps = steps.gather(1, beam) + (~was).long()
            finished = was | (tok == self.stop)
            scores = top
            hist = torch.cat([hist.index_select(0, flat), tok.view(-1, 1)], 1)
            if w is not None:
                attn = torch.cat([attn.index_select(0, flat), w.index_select(0, flat)[:, None]], 1)
            state = tuple(s.index_select(1, flat) for s in state) if isinstance(state, tuple) \
                else state.index_select(1, flat)
            feed = None if feed is None else feed.index_select(0, flat)
            prev = tok.view(-1)
            if bool(finished.all()):
                break
        ranked = scores / steps.clamp(min=1).to(scores.dtype) ** alpha if alpha else scores
        best = (base[:, 0] + ranked.argmax(1))
        tokens = hist.index_select(0, best)
        attention = attn.index_select(0, best) if self.attention is not None else None
        return Decoded(tokens, None, emitted_lengths(tokens, self.stop), attention,
                       scores.view(-1).index_select(0, best))


def emitted_lengths(tokens: Tensor, stop: int) -> Tensor:
    """(N,) steps up to and including the first stop symbol (all T when there is none)."""
    T = tokens.shape[1]
    is_stop = tokens == stop
    first = torch.where(is_stop.any(1), is_stop.float().argmax(1) + 1, torch.full_like(tokens[:, 0], T))
    return first.cpu()
