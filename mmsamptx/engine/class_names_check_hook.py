"""Refuse to train or test when the model's class names do not match the dataset's."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS


def check_class_names(model_names, dataset, what: str) -> None:
    """Raise ValueError naming the first class where ``model_names`` and ``dataset`` disagree."""
    data_names = list(getattr(dataset, 'metainfo', {}).get('classes', ()))
    if not data_names or list(model_names) == data_names:
        return
    n = min(len(model_names), len(data_names))
    first = next((i for i in range(n) if model_names[i] != data_names[i]), n)
    detail = (f'first difference at label {first}: model {model_names[first]!r}, '
              f'dataset {data_names[first]!r}' if first < n else
              f'the first {n} agree')
    raise ValueError(
        f"the model's class_names ({len(model_names)}) do not match the {what} dataset's classes "
        f'({len(data_names)}, {type(dataset).__name__}); {detail}. A model prompted with the wrong '
        'names would learn or predict wrong labels: set model.class_names to the dataset type or '
        'its list of classes.')


@HOOKS.register_module()
class ClassNamesCheckHook(Hook):
    """Before training, validation and testing, compare ``model.class_names`` with the dataset's.

    Models without ``class_names`` are left alone.
    """

    priority = 'VERY_HIGH'

    @staticmethod
    def _names(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        return getattr(model, 'class_names', None)

    def before_train(self, runner) -> None:
        names = self._names(runner)
        if names is not None:
            check_class_names(names, runner.train_dataloader.dataset, 'training')

    def before_val(self, runner) -> None:
        names = self._names(runner)
        if names is not None:
            check_class_names(names, runner.val_dataloader.dataset, 'validation')

    def before_test(self, runner) -> None:
        names = self._names(runner)
        if names is not None:
            check_class_names(names, runner.test_dataloader.dataset, 'test')
