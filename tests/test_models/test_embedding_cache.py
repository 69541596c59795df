"""The image-embedding cache: filled once, read afterwards, never stale, refused where it would be."""
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmsamptx  # noqa: F401
from mmsamptx.models.utils.embedding_cache import ImageEmbeddingCache

DEMO = 'configs/ptsam/demo/ptsam-decoder_demo.py'


def demo_model(**overrides):
    cfg = Config.fromfile(DEMO).model
    cfg.data_preprocessor = None
    cfg.update(overrides)
    return MODELS.build(cfg)


def samples(n, size=128, **meta):
    out = []
    for i in range(n):
        gt = torch.zeros(size, size, dtype=torch.long)
        gt[10 + 5 * i:60 + 5 * i, 20:80] = 1
        ds = SegDataSample(metainfo=dict(dict(img_path=f'img_{i}.png', ori_shape=(size, size),
                                              img_shape=(size, size), flip=False), **meta))
        ds.gt_sem_seg = PixelData(data=gt[None])
        out.append(ds)
    return out


def count_encoder_calls(model):
    calls = []
    model.backbone.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    return calls


def test_second_epoch_skips_the_encoder_and_keeps_the_losses():
    torch.manual_seed(0)
    cached = demo_model()
    plain = demo_model(embedding_cache=None)
    plain.load_state_dict(cached.state_dict())
    calls = count_encoder_calls(cached)
    x, data = torch.randn(3, 3, 128, 128), samples(3)
    epochs = [cached.loss(x, data) for _ in range(2)]
    assert calls == [3]                              # epoch 1 filled it, epoch 2 only read
    assert cached.embedding_cache.hits == 3 and cached.embedding_cache.misses == 3
    reference = plain.loss(x, data)
    for name in reference:
        assert torch.equal(epochs[0][name], epochs[1][name])           # a hit is what a miss gave
        assert torch.allclose(epochs[1][name], reference[name], rtol=2e-2, atol=2e-3), name  # bf16
    sum(epochs[1].values()).backward()
    assert cached.decode_head.prompt_tokens.tokens.grad.abs().sum() > 0


def test_keys_follow_file_transform_pixels_and_weights():
    cache = ImageEmbeddingCache()
    x = torch.randn(3, 16, 16)
    meta = dict(img_path='a/img.png', img_shape=(16, 16), ori_shape=(20, 20), flip=False,
                scale_factor=(0.8, 0.8), seg_map_path='ignored.png')
    key = cache.sample_key(meta, x, 'w0')
    assert key == cache.sample_key(dict(meta, seg_map_path='other.png'), x.clone(), 'w0')
    changed = [dict(meta, img_path='b/img.png'), dict(meta, flip=True, flip_direction='horizontal'),
               dict(meta, img_shape=(16, 12)), dict(meta, scale_factor=(0.5, 0.5))]
    assert all(cache.sample_key(m, x, 'w0') != key for m in changed)
    y = x.clone()
    y[0, 0, 0] += 1e-3                               # an unrecorded pixel change (crop, colour)
    assert cache.sample_key(meta, y, 'w0') != key
    assert cache.sample_key(meta, x, 'w1') != key


def _ptsam_cfg(path, cache_dir):
    return dict(
        type='ClassPromptedSAM', class_names='FewShotBinaryDataset',
        backbone=dict(type='SAMImageEncoder', arch='tiny', img_size=64, checkpoint=path),
        neck=dict(type='SAMNeck', in_channels=64, checkpoint=path),
        decode_head=dict(type='SAMPromptableHead', image_size=64, frozen_decoder=True, checkpoint=path,
                         prompt_cfg=dict(type='DecoderPromptTokens', num_tokens=2)),
        train_cfg=dict(num_points=0), test_cfg=dict(mode='auto'),
        embedding_cache=dict(type='disk', dir=str(cache_dir)))


def _loaded(path, cache_dir):
    model = MODELS.build(_ptsam_cfg(path, cache_dir))
    model.init_weights()
    return model


def test_disk_cache_is_reused_by_a_new_model_and_invalidated_by_transform_and_weights(
        tiny_sam_checkpoint, tmp_path):
    path, _ = tiny_sam_checkpoint
    cache_dir = tmp_path / 'cache'
    x, data = torch.randn(2, 3, 64, 64), samples(2, size=64)
    first = _loaded(path, cache_dir)
    with torch.no_grad():
        ref = first.image_embeddings(x, data)
    assert len(os.listdir(cache_dir)) == 2 and ref.dtype == torch.float32

    again = _loaded(path, cache_dir)                   # a new process would do the same
    calls = count_encoder_calls(again)
    with torch.no_grad():
        assert torch.equal(again.image_embeddings(x, data), ref)
        assert calls == []
        flipped = samples(2, size=64, flip=True, flip_direction='horizontal')
        again.image_embeddings(x, flipped)             # same tensor, another transform: a miss
        assert calls == [2]
        again.image_embeddings(x.flip(-1), data)       # same metainfo, other pixels: a miss
        assert calls == [2, 2]

    # another weight file: its embeddings, not the cached ones
    state = torch.load(path, weights_only=True)
    state['image_encoder.blocks.0.mlp.lin1.weight'] += 0.05
    other_path = str(tmp_path / 'other_sam.pth')
    torch.save(state, other_path)
    other = _loaded(other_path, cache_dir)
    calls = count_encoder_calls(other)
    with torch.no_grad():
        fresh = other.image_embeddings(x, data)
        assert calls == [2] and (fresh - ref).abs().max() > 1e-3
        expected = other.extract_feat(x)[0]
    assert torch.allclose(fresh, expected, rtol=1e-2, atol=2e-2)

    # weights loaded into a live model (a checkpoint) make its weights hash stale, too
    calls = count_encoder_calls(first)
    first.load_state_dict(other.state_dict())
    with torch.no_grad():
        assert torch.equal(first.image_embeddings(x, data), fresh)   # other's entries, not ref
    assert calls == []


def test_truncated_or_foreign_cache_file_is_recomputed_with_a_warning(tiny_sam_checkpoint, tmp_path):
    path, _ = tiny_sam_checkpoint
    model = _loaded(path, tmp_path / 'cache')
    x, data = torch.randn(1, 3, 64, 64), samples(1, size=64)
    with torch.no_grad():
        ref = model.image_embeddings(x, data)
    entry = os.path.join(tmp_path / 'cache', os.listdir(tmp_path / 'cache')[0])
    with open(entry, 'rb') as f:
        blob = f.read()
    with open(entry, 'wb') as f:
        f.write(blob[:len(blob) // 2])                 # a torn write by some other tool
    calls = count_encoder_calls(model)
    with pytest.warns(UserWarning, match='embedding cache entry .* is unreadable .* recomputing'):
        with torch.no_grad():
            got = model.image_embeddings(x, data)
    assert calls == [1] and torch.equal(got, ref)
    assert torch.load(entry, weights_only=True)['embedding'].dtype == torch.bfloat16  # rewritten whole
    torch.save(dict(key='some other key', embedding=torch.zeros(256, 4, 4, dtype=torch.bfloat16)),
               entry)
    with pytest.warns(UserWarning, match='stored key differs'):
        with torch.no_grad():
            assert torch.equal(model.image_embeddings(x, data), ref)


def test_unwritable_cache_dir_is_named(tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    bad = blocker / 'cache'
    with pytest.raises(ValueError, match=f"embedding_cache dir '{bad}' is not a writable folder"):
        demo_model(embedding_cache=dict(type='disk', dir=str(bad)))
    if os.geteuid() != 0:                              # root writes through permission bits
        ro = tmp_path / 'read_only'
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(ValueError, match=f"embedding_cache dir '{ro}' is not a writable folder"):
            demo_model(embedding_cache=dict(type='disk', dir=str(ro)))
    with pytest.raises(ValueError, match="type='disk' needs dir="):
        ImageEmbeddingCache('disk')
    with pytest.raises(ValueError, match=r"embedding_cache.type must be one of .* got 'redis'"):
        ImageEmbeddingCache('redis')


@pytest.mark.parametrize('backbone,why', [
    (dict(adapter_cfg=dict(type='ParallelAdapter', bottleneck=4)), 'its blocks carry adapters'),
    (dict(prompt_cfg=dict(type='EncoderPromptTokens', num_tokens=2)), 'it has encoder prompt tokens'),
    (dict(frozen=False), 'it has trainable parameters'),
])
def test_cache_is_refused_for_an_encoder_that_changes(backbone, why):
    with pytest.raises(ValueError, match='needs a frozen, unadapted SAM image encoder, but ' + why):
        demo_model(backbone=dict(type='SAMImageEncoder', arch='tiny', img_size=128, **backbone))
