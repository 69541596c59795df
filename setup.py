"""Install mmsamptx, an OpenMMLab plugin for text-guided, parameter-efficient SAM."""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements(name):
    """Return the requirement lines of ``requirements/<name>.txt``."""
    with open(osp.join(HERE, 'requirements', name + '.txt')) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith('#')]


def read_version():
    namespace = {}
    with open(osp.join(HERE, 'mmsamptx', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


setup(
    name='mmsamptx',
    version=read_version(),
    description='Text-guided, parameter-efficient Segment Anything for '
    'OpenMMLab (SAM-PTx, CLIP-Guided SAM, PTSAM, EVF-SAM)',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    package_data={'mmsamptx.models.text_encoders': ['model_configs/*.json']},
    python_requires='>=3.10',
    install_requires=read_requirements('runtime'),
    extras_require={'tests': read_requirements('tests')},
    license='Apache-2.0',
)
