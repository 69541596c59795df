"""BEiT3Tokenizer on a tiny sentencepiece model trained here: XLM-R's id layout
(docs/methods/evf-sam.md §5), padding, added tokens, limits, files; equal to transformers'
XLMRobertaTokenizer over the same model."""
import io

import pytest
import sentencepiece as spm
import torch

from mmsamptx.models.text_encoders.beit3_tokenizer import BEiT3Tokenizer, sha256_of

CORPUS = ['the man on the left', 'a red square above the circle', 'the blue circle on the right',
          'zebra top left', 'two small dogs', 'the woman with a hat', 'left right top bottom']


@pytest.fixture(scope='module')
def spm_dir(tmp_path_factory):
    """A folder holding a tiny sentencepiece model as ``sentencepiece.bpe.model`` (EVF-SAM's name)."""
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS * 20), model_writer=buf, vocab_size=60,
                                   character_coverage=1.0, hard_vocab_limit=False, minloglevel=2)
    folder = tmp_path_factory.mktemp('spm')
    (folder / 'sentencepiece.bpe.model').write_bytes(buf.getvalue())
    return folder


@pytest.fixture(scope='module')
def tok(spm_dir):
    return BEiT3Tokenizer(str(spm_dir / 'sentencepiece.bpe.model'))


def test_ids_follow_the_xlmr_layout(tok, spm_dir):
    sp = spm.SentencePieceProcessor(model_file=str(spm_dir / 'sentencepiece.bpe.model'))
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2)
    pieces = sp.encode('the man on the left')
    assert 0 not in pieces
    assert tok.encode('the man on the left') == [0] + [p + 1 for p in pieces] + [2]
    # An unseen character is spm's unknown piece 0 -> 3.
    assert sp.encode('Q')[-1] == 0
    assert tok.encode('Q')[-1 - 1] == 3
    n = len(sp)
    assert tok.encode('<mask>') == [0, n + 1, 2]
    assert tok.encode('[semantic] hat') == [0, n + 2] + [p + 1 for p in sp.encode('hat')] + [2]
    # Split out first (no spm pieces of its characters), spaces around it dropped.
    assert tok.encode('red   [semantic]hat ') == tok.encode('red [semantic] hat')
    assert tok.encode('<s>a</s>') == [0, 0] + [p + 1 for p in sp.encode('a')] + [2, 2]
    assert tok.vocab_size == n + 3


def test_batch_is_right_padded_with_a_mask(tok):
    ids, mask = tok(['the man on the left', 'hat', '[semantic] dogs'])
    lengths = [len(tok.encode(t)) for t in ('the man on the left', 'hat', '[semantic] dogs')]
    assert ids.dtype == torch.long and mask.dtype == torch.bool and ids.shape == (3, max(lengths))
    for row, n in enumerate(lengths):
        assert ids[row, :n].tolist() == tok.encode(['the man on the left', 'hat', '[semantic] dogs'][row])
        assert (ids[row, n:] == 1).all() and mask[row, n:].all() and not mask[row, :n].any()


def test_limits_and_empty_expressions_are_named(tok):
    ids, _ = tok(['a ' * 1020], max_length=1022)  # 1022 tokens: not truncated
    assert ids.shape == (1, 1022)
    with pytest.raises(ValueError, match=r"expression 'a a a .*\.\.\.' has 1023 tokens, more than the 1022"):
        tok(['hat', 'a ' * 1021], max_length=1022)
    assert tok(['a ' * 1021])[0].shape == (1, 1023)  # no limit, no truncation
    with pytest.raises(ValueError, match=r"empty expression '  '"):
        tok(['hat', '  '])


def test_files_are_checked(spm_dir, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match='beit3.spm.*https://github.com/addf400/files'):
        BEiT3Tokenizer(str(tmp_path / 'beit3.spm'))(['hat'])
    path = str(spm_dir / 'sentencepiece.bpe.model')
    assert BEiT3Tokenizer(path, sha256=sha256_of(path)).encode('hat')
    with pytest.raises(ValueError, match=f'{path} has sha256 .*, expected 0000'):
        BEiT3Tokenizer(path, sha256='0' * 64).encode('hat')
    (tmp_path / 'junk.model').write_bytes(b'not a model')
    with pytest.raises(ValueError, match='junk.model is not a sentencepiece model'):
        BEiT3Tokenizer(str(tmp_path / 'junk.model')).encode('hat')
    # The default: beit3.spm by URL into the hub cache; offline, the URL and destination named.
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))

    def offline(*args, **kwargs):
        raise OSError('network unreachable')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)
    default = BEiT3Tokenizer()  # reads nothing until used
    dest = tmp_path / 'hub' / 'checkpoints' / 'beit3.spm'
    with pytest.raises(RuntimeError, match=f'https://github.com/addf400/files/releases/download/beit3/'
                                           f'beit3.spm .*put it at {dest}'):
        default.encode('hat')
    # A cached file of other content fails the known hash.
    dest.write_bytes((spm_dir / 'sentencepiece.bpe.model').read_bytes())
    with pytest.raises(ValueError, match='expected 6f5e2fef'):
        default.encode('hat')


def test_equal_to_xlm_roberta_tokenizer(tok, spm_dir):
    """transformers' XLMRobertaTokenizer (EVF-SAM's class) over the same model and added token."""
    from transformers import XLMRobertaTokenizer
    ref = XLMRobertaTokenizer.from_pretrained(str(spm_dir))
    ref.add_tokens(['[semantic]'])
    texts = CORPUS + ['[semantic] hat', 'the Zebra!', 'a <mask> b', 'red [semantic]dogs', '  two   dogs  ']
    for text in texts:
        assert tok.encode(text) == ref(text)['input_ids'], text
    ids, mask = tok(texts)
    want = ref(texts, padding=True)
    assert ids.tolist() == want['input_ids']
    assert (~mask).long().tolist() == want['attention_mask']
