"""CODDataset on a miniature COD10K / CAMO."""
import numpy as np
import pytest
from test_datasets.miniature import COD_TRAIN, cod_mask, make_cod
from mmseg.registry import DATASETS

import mmsamptx  # noqa: F401
from mmsamptx.datasets.cod import camel_to_words, parse_cod10k_name

META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction',
             'reduce_zero_label', 'class_name')
PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs', meta_keys=META_KEYS)
]


def test_parse_names():
    assert parse_cod10k_name('COD10K-CAM-1-Aquatic-1-BatFish-1') == \
        (True, 'aquatic', 'bat fish')
    assert parse_cod10k_name('COD10K-NonCAM-5-Background-1-Grass-7')[0] is False
    assert parse_cod10k_name('camourflage_00012') is None
    assert camel_to_words('LeafySeaDragon') == 'leafy sea dragon'
    assert camel_to_words('Stick_Insect') == 'stick insect'


def test_train_split_excludes_noncam_and_packs_class_name(tmp_path):
    root = make_cod(str(tmp_path))
    ds = DATASETS.build(dict(type='CODDataset', data_root=root, split='train',
                             pipeline=PIPELINE))
    assert len(ds) == 3
    assert [ds.get_data_info(i)['class_name'] for i in range(len(ds))] == \
        ['bat fish', 'crab', 'stick insect']
    for i in range(3):
        s = ds[i]['data_samples']
        assert s.class_name == ds.get_data_info(i)['class_name']
        gt = s.gt_sem_seg.data.numpy()[0]
        np.testing.assert_array_equal(gt, cod_mask(i) // 255)
        assert set(np.unique(gt)) <= {0, 1}


def test_include_noncam_and_test_split(tmp_path):
    root = make_cod(str(tmp_path))
    ds = DATASETS.build(dict(type='CODDataset', data_root=root, split='train',
                             include_noncam=True, pipeline=PIPELINE))
    assert len(ds) == 4
    assert ds.get_data_info(3)['is_camouflaged'] is False
    test = DATASETS.build(dict(type='CODDataset', data_root=root, split='test',
                               test_mode=True, pipeline=PIPELINE))
    assert len(test) == 1 and test.get_data_info(0)['class_name'] == 'bird'


def test_fallback_class_name_for_camo(tmp_path):
    root = make_cod(str(tmp_path), train=['camourflage_00001'],
                    test=['camourflage_00002'])
    ds = DATASETS.build(dict(type='CODDataset', data_root=root, split='test',
                             fallback_class_name='camouflaged animal',
                             pipeline=PIPELINE))
    assert ds[0]['data_samples'].class_name == 'camouflaged animal'


def test_bad_inputs(tmp_path):
    root = make_cod(str(tmp_path))
    with pytest.raises(ValueError, match="split must be one of"):
        DATASETS.build(dict(type='CODDataset', data_root=root, split='val'))
    (tmp_path / 'Train' / 'GT_Object' / f'{COD_TRAIN[1]}.png').unlink()
    with pytest.raises(FileNotFoundError, match=COD_TRAIN[1]):
        DATASETS.build(dict(type='CODDataset', data_root=root, split='train'))
    empty = tmp_path / 'e'
    (empty / 'Train' / 'Image').mkdir(parents=True)
    (empty / 'Train' / 'GT_Object').mkdir(parents=True)
    with pytest.raises(ValueError, match='is empty'):
        DATASETS.build(dict(type='CODDataset', data_root=str(empty),
                            split='train'))


def test_split_file(tmp_path):
    root = make_cod(str(tmp_path))
    split = tmp_path / 'labeled.txt'
    split.write_text(COD_TRAIN[2] + '\n')
    ds = DATASETS.build(dict(type='CODDataset', data_root=root, split='train',
                             ann_file=str(split), pipeline=PIPELINE))
    assert len(ds) == 1 and ds[0]['data_samples'].class_name == 'stick insect'
    split.write_text('COD10K-CAM-1-Aquatic-1-Nothing-9\n')
    with pytest.raises(FileNotFoundError, match='Nothing-9'):
        DATASETS.build(dict(type='CODDataset', data_root=root, split='train',
                            ann_file=str(split)))


# ------------------------------------------------------------- authors' text
def test_authors_text_cod10k_class_as_written():
    from mmsamptx.datasets.cod import authors_class_text
    assert authors_class_text('COD10K-CAM-1-Aquatic-1-BatFish-1') == 'BatFish'
    assert authors_class_text('COD10K-CAM-1-Aquatic-13-LeafySeaDragon-42') == 'LeafySeaDragon'
    assert authors_class_text('COD10K-CAM-2-Terrestrial-23-Stick_Insect-5') == 'Stick_Insect'


@pytest.mark.parametrize('stem', ['COD10K-CAM-4-Other-67-Crab-1',
                                  'COD10K-CAM-1-Aquatic-2-Other-9'])
def test_authors_text_other_is_camouflaged_object(stem):
    from mmsamptx.datasets.cod import authors_class_text
    assert authors_class_text(stem) == 'Camouflaged object'


def test_authors_text_camo_chameleon_and_others():
    from mmsamptx.datasets.cod import authors_class_text
    assert authors_class_text('camourflage_00012') == 'Camouflaged object'
    assert authors_class_text('animal-7') == 'Camouflaged animal'
    assert authors_class_text('animal-76') == 'Camouflaged animal'
    assert authors_class_text('animal_7') == 'Camouflaged object'
    assert authors_class_text('nc4k_1234') == 'Camouflaged object'
    assert authors_class_text('COD10K-NonCAM-5-Background-1-Grass-7') == 'Camouflaged object'


@pytest.mark.parametrize('stem', ['COD10K-CAM-1-Aquatic-1--1', 'COD10K-CAM-1--1-Crab-1',
                                  'COD10K-CAM-1-Aquatic-1', 'COD10K-CAM-1-Aquatic-x-Crab-1'])
def test_authors_text_cod10k_name_without_class_raises(stem):
    from mmsamptx.datasets.cod import authors_class_text
    with pytest.raises(ValueError, match=f'COD10K file name {stem!r} yields no class'):
        authors_class_text(stem)


def test_dataset_authors_rule(tmp_path):
    root = make_cod(str(tmp_path), test=['COD10K-CAM-3-Flying-53-Bird-3',
                                         'COD10K-CAM-4-Other-68-Other-2',
                                         'camourflage_00001', 'animal-3'])
    ds = DATASETS.build(dict(type='CODDataset', data_root=root, split='test',
                             text_rule='authors', pipeline=PIPELINE))
    by_stem = {ds.get_data_info(i)['img_path'].rsplit('/', 1)[1][:-4]:
               ds.get_data_info(i)['class_name'] for i in range(len(ds))}
    assert by_stem == {'COD10K-CAM-3-Flying-53-Bird-3': 'Bird',
                       'COD10K-CAM-4-Other-68-Other-2': 'Camouflaged object',
                       'camourflage_00001': 'Camouflaged object',
                       'animal-3': 'Camouflaged animal'}
    assert ds[0]['data_samples'].class_name == ds.get_data_info(0)['class_name']
    # The default rule is unchanged.
    words = DATASETS.build(dict(type='CODDataset', data_root=root, split='test'))
    assert 'bird' in [words.get_data_info(i)['class_name'] for i in range(len(words))]


def test_dataset_authors_rule_errors(tmp_path):
    root = make_cod(str(tmp_path), test=['COD10K-CAM-3-Flying-53--3'])
    with pytest.raises(ValueError, match=r"Image/COD10K-CAM-3-Flying-53--3.jpg: COD10K file "
                                         r"name 'COD10K-CAM-3-Flying-53--3' yields no class"):
        DATASETS.build(dict(type='CODDataset', data_root=root, split='test',
                            text_rule='authors'))
    with pytest.raises(ValueError, match=r"text_rule must be one of \('words', 'authors'\)"):
        DATASETS.build(dict(type='CODDataset', data_root=root, split='test', text_rule='paper'))
