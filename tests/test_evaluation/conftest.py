"""Metric tests build mmseg components by name: use mmseg's default scope."""
import pytest
from mmengine.registry import init_default_scope

import mmsamptx  # noqa: F401  (registers the metrics)


@pytest.fixture(autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')
