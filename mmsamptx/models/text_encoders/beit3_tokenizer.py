"""BEiT-3's tokenizer on sentencepiece alone: XLM-R's id layout over ``beit3.spm``.

EVF-SAM tokenises with transformers' slow ``XLMRobertaTokenizer`` over BEiT-3's
64,000-piece sentencepiece model (docs/methods/evf-sam.md §5). The ids follow
fairseq's layout:

=====================  ==========================
``<s>`` / ``<pad>``    0 / 1
``</s>`` / ``<unk>``   2 / 3 (every spm id 0, the unknown piece, becomes 3)
spm piece ``p``        ``p + 1``
``<mask>``             ``len(spm) + 1`` (64001)
added tokens           ``len(spm) + 2`` ... in order (``[semantic]`` = 64002)
=====================  ==========================

Added and special tokens are split out of the text first (longest match), the
whitespace around them dropped; each remaining piece of text is encoded by
sentencepiece; every expression becomes ``[0] + ids + [2]``. A batch is padded
on the right with 1 and a mask that is True at the padding. Nothing is
truncated: an expression longer than ``max_length`` (the caller passes
BEiT-3's position table size) is an error naming it, as is an empty one.
"""
import hashlib
import os
import re
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .beit3_checkpoint import BEIT3_URL_BASE, resolve_file

BEIT3_SPM_URL = f'{BEIT3_URL_BASE}/beit3.spm'
# sha256 of beit3.spm; EVF-SAM's sentencepiece.bpe.model is the same file renamed.
BEIT3_SPM_SHA256 = '6f5e2fefcf793761a76a6bfb8ad35489f9c203b25557673284b6d032f41043f4'
_KNOWN_FILES = {'beit3.spm': BEIT3_SPM_URL}

BOS, PAD, EOS, UNK = 0, 1, 2, 3
FAIRSEQ_OFFSET = 1


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


class BEiT3Tokenizer:
    """Expressions -> BEiT-3 token ids and padding mask.

    Args:
        model_file: the sentencepiece model: a path, or a URL downloaded once
            into the torch hub cache (default: BEiT-3's ``beit3.spm``). It is
            read on first use, so building a model that holds a tokenizer reads
            no file.
        added_tokens: tokens after ``<mask>``, in id order (EVF-SAM's multitask
            checkpoints: ``('[semantic]',)`` = 64002).
        sha256: the file's expected sha256; ``'auto'`` checks the known hash of
            ``beit3.spm`` when ``model_file`` is its URL and nothing otherwise;
            None checks nothing.
    """

    def __init__(self, model_file: str = BEIT3_SPM_URL, added_tokens: Sequence[str] = ('[semantic]',),
                 sha256: Optional[str] = 'auto') -> None:
        self.model_file = os.fspath(model_file)
        self.added_tokens = tuple(added_tokens)
        if sha256 == 'auto':
            sha256 = BEIT3_SPM_SHA256 if self.model_file == BEIT3_SPM_URL else None
        self.sha256 = sha256
        self._sp = None

    @property
    def sp(self):
        """The loaded ``SentencePieceProcessor`` (loaded, and its hash checked, on first use)."""
        if self._sp is None:
            import sentencepiece as spm
            path = resolve_file(self.model_file, 'BEiT-3 tokenizer file', _KNOWN_FILES)
            if self.sha256 is not None:
                actual = sha256_of(path)
                if actual != self.sha256:
                    raise ValueError(f'BEiT-3 tokenizer file {path} has sha256 {actual}, expected '
                                     f'{self.sha256}; delete it and download {BEIT3_SPM_URL} again')
            try:
                sp = spm.SentencePieceProcessor(model_file=path)
            except Exception as e:
                raise ValueError(f'{path} is not a sentencepiece model ({type(e).__name__}: {e})') from e
            self._sp = sp
            self._build_specials(len(sp))
        return self._sp

    def _build_specials(self, num_pieces: int) -> None:
        specials = {'<s>': BOS, '<pad>': PAD, '</s>': EOS, '<unk>': UNK,
                    '<mask>': num_pieces + FAIRSEQ_OFFSET}
        for i, token in enumerate(self.added_tokens):
            if token in specials:
                raise ValueError(f'added token {token!r} is already a special token')
            specials[token] = num_pieces + FAIRSEQ_OFFSET + 1 + i
        self.special_ids = specials
        # Longest first: the regex alternation then takes the longest match at each position.
        alternatives = sorted(specials, key=len, reverse=True)
        self._split = re.compile('(' + '|'.join(re.escape(t) for t in alternatives) + ')')

    @property
    def vocab_size(self) -> int:
        """Ids in use: pieces + ``<mask>`` + the added tokens (+1 for the offset)."""
        return len(self.sp) + FAIRSEQ_OFFSET + 1 + len(self.added_tokens)

    def encode(self, text: str) -> List[int]:
        """One expression -> ``[0] + ids + [2]``; an empty expression is an error naming it."""
        sp = self.sp
        ids = []
        for part in self._split.split(text):
            if part in self.special_ids:
                ids.append(self.special_ids[part])
                continue
            part = part.strip()  # whitespace next to a special token is dropped
            if part:
                ids.extend(p + FAIRSEQ_OFFSET if p != 0 else UNK for p in sp.encode(part))
        if not ids:
            raise ValueError(f'empty expression {text!r}: give at least one word')
        return [BOS] + ids + [EOS]

    def __call__(self, texts: Sequence[str], max_length: Optional[int] = None) -> Tuple[Tensor, Tensor]:
        """Tokenise a batch.

        Args:
            texts: B expressions (a single string is one expression).
            max_length: the most tokens one expression may take (with ``<s>``
                and ``</s>``), e.g. ``BEiT3.max_text_len``; None for no limit.
                Longer expressions are an error, never truncated.

        Returns:
            ids: (B, L) int64, right-padded with 1; L = the longest expression.
            padding_mask: (B, L) bool, True at padding.
        """
        if isinstance(texts, str):
            texts = [texts]
        if len(texts) == 0:
            raise ValueError('no expressions to tokenise')
        encoded = [self.encode(t) for t in texts]
        if max_length is not None:
            for text, ids in zip(texts, encoded):
                if len(ids) > max_length:
                    shown = text if len(text) <= 80 else text[:80] + '...'
                    raise ValueError(f'expression {shown!r} has {len(ids)} tokens, more than the '
                                     f'{max_length} that BEiT-3\'s position table holds')
        length = max(len(ids) for ids in encoded)
        out = torch.full((len(encoded), length), PAD, dtype=torch.long)
        mask = torch.ones(len(encoded), length, dtype=torch.bool)
        for i, ids in enumerate(encoded):
            out[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[i, :len(ids)] = False
        return out, mask

    def __repr__(self) -> str:
        return f'{type(self).__name__}(model_file={self.model_file!r}, added_tokens={self.added_tokens!r})'
